//! Idempotent retries: `Idempotency-Key` on every creating POST. The first answer per
//! workspace, route and key is kept and replayed byte for byte; a different request under the
//! same key, a duplicate still running, and malformed keys are refused.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use actix_web::{HttpResponse, web};
use resonance_api::config::TtsProvider;
use resonance_tests::{
    Reply, TestApp, TokenSpec,
    fixtures::{BOUNDARY, count_for, form, scalar, system_voice, wav},
    serve_on_loopback,
};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

/// `POST path` with a JSON body and an `Idempotency-Key` header value.
async fn post_keyed(app: &TestApp, path: &str, token: &str, key: &str, body: &Value) -> Reply {
    Reply::send(
        app.request(reqwest::Method::POST, path, token)
            .header("idempotency-key", key)
            .json(body),
    )
    .await
}

/// The second answer is the first one again, marked as a replay.
#[track_caller]
fn assert_replay(first: &Reply, again: &Reply) {
    assert_eq!(again.status, first.status, "{}", again.json);
    assert_eq!(again.bytes, first.bytes, "the body, byte for byte");
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(first.header("idempotent-replayed"), None);
    for name in ["content-type", "location", "etag"] {
        assert_eq!(again.header(name), first.header(name), "{name}");
    }
    assert_ne!(
        again.header("x-request-id"),
        first.header("x-request-id"),
        "the replay is its own request"
    );
}

async fn keys_of(app: &TestApp, tenant: &str) -> i64 {
    count_for(app, "idempotency_keys", tenant).await
}

#[tokio::test]
async fn the_same_key_replays_the_first_answer_and_creates_once() {
    let app = TestApp::spawn().await;
    let token = app.token(TokenSpec::org("org_a", "member"));
    let body = json!({"name": "Launch"});

    let first = post_keyed(&app, "/v1/projects", &token, "\"key-1\"", &body).await;
    assert_eq!(first.status, 201, "{}", first.json);
    assert!(first.header("location").is_some() && first.header("etag").is_some());
    // The quoted form of the draft and a bare token name the same key.
    let again = post_keyed(&app, "/v1/projects", &token, "key-1", &body).await;
    assert_replay(&first, &again);
    let third = post_keyed(&app, "/v1/projects", &token, "\"key-1\"", &body).await;
    assert_replay(&first, &third);
    assert_eq!(count_for(&app, "projects", "org_a").await, 1);
    assert_eq!(keys_of(&app, "org_a").await, 1);

    // Without a key nothing is kept, and every request creates.
    for _ in 0..2 {
        let plain = app.post("/v1/projects", &token, body.clone()).await;
        assert_eq!(plain.status, 201);
        assert_eq!(plain.header("idempotent-replayed"), None);
    }
    assert_eq!(count_for(&app, "projects", "org_a").await, 3);
    assert_eq!(keys_of(&app, "org_a").await, 1);

    // Tasks too, with the same key (another route).
    let task = json!({"title": "Write the plan"});
    let first = post_keyed(&app, "/v1/tasks", &token, "\"key-1\"", &task).await;
    assert_eq!(first.status, 201, "{}", first.json);
    let again = post_keyed(&app, "/v1/tasks", &token, "\"key-1\"", &task).await;
    assert_replay(&first, &again);
    assert_eq!(count_for(&app, "tasks", "org_a").await, 1);
    assert_eq!(keys_of(&app, "org_a").await, 2);
}

#[tokio::test]
async fn a_key_used_for_a_different_request_is_refused() {
    let app = TestApp::spawn().await;
    let token = app.token(TokenSpec::org("org_a", "member").user("user_ann"));
    let first = post_keyed(&app, "/v1/tasks", &token, "\"k\"", &json!({"title": "A"})).await;
    assert_eq!(first.status, 201, "{}", first.json);

    let other = post_keyed(&app, "/v1/tasks", &token, "\"k\"", &json!({"title": "B"})).await;
    other.assert_problem(422, "idempotency_key_reused");
    // Another member of the workspace sending the same body is another request too.
    let colleague = app.token(TokenSpec::org("org_a", "member").user("user_bob"));
    let theirs = post_keyed(
        &app,
        "/v1/tasks",
        &colleague,
        "\"k\"",
        &json!({"title": "A"}),
    )
    .await;
    theirs.assert_problem(422, "idempotency_key_reused");
    assert_eq!(count_for(&app, "tasks", "org_a").await, 1);
    // The kept answer is still there for the real retry.
    let retry = post_keyed(&app, "/v1/tasks", &token, "\"k\"", &json!({"title": "A"})).await;
    assert_replay(&first, &retry);
}

#[tokio::test]
async fn simultaneous_duplicates_create_once() {
    let app = TestApp::spawn().await;
    let token = app.token(TokenSpec::org("org_a", "member"));
    let body = json!({"name": "Raced"});
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let request = app
                .request(reqwest::Method::POST, "/v1/projects", &token)
                .header("idempotency-key", "\"race\"")
                .json(&body);
            tokio::spawn(async move { Reply::send(request).await })
        })
        .collect();
    let mut created = 0;
    for racer in racers {
        let reply = racer.await.unwrap();
        match reply.status {
            201 => created += 1,
            409 => {
                reply.assert_problem(409, "idempotency_in_progress");
            }
            other => panic!("unexpected {other}: {}", reply.json),
        }
    }
    assert!(created >= 1);
    assert_eq!(count_for(&app, "projects", "org_a").await, 1);
    assert_eq!(keys_of(&app, "org_a").await, 1);
}

#[tokio::test]
async fn keys_are_scoped_to_the_workspace_and_the_route() {
    let app = TestApp::spawn().await;
    let a = app.token(TokenSpec::org("org_a", "member"));
    let b = app.token(TokenSpec::org("org_b", "member"));
    let body = json!({"name": "Same"});
    let in_a = post_keyed(&app, "/v1/projects", &a, "\"shared\"", &body).await;
    let in_b = post_keyed(&app, "/v1/projects", &b, "\"shared\"", &body).await;
    assert_eq!((in_a.status, in_b.status), (201, 201));
    assert_eq!(in_b.header("idempotent-replayed"), None);
    assert_ne!(in_a.json["id"], in_b.json["id"]);
    assert_eq!(count_for(&app, "projects", "org_a").await, 1);
    assert_eq!(count_for(&app, "projects", "org_b").await, 1);
    assert_eq!(
        (keys_of(&app, "org_a").await, keys_of(&app, "org_b").await),
        (1, 1)
    );

    let task = post_keyed(&app, "/v1/tasks", &a, "\"shared\"", &json!({"title": "T"})).await;
    assert_eq!(task.status, 201, "{}", task.json);
    assert_eq!(task.header("idempotent-replayed"), None);
    assert_eq!(keys_of(&app, "org_a").await, 2);
}

#[tokio::test]
async fn malformed_keys_answer_400_and_create_nothing() {
    let app = TestApp::spawn().await;
    let token = app.token(TokenSpec::org("org_a", "member"));
    let body = json!({"name": "P"});
    let too_long = format!("\"{}\"", "k".repeat(256));
    for key in ["", "\"\"", too_long.as_str(), "two words", "\"unterminated"] {
        let reply = post_keyed(&app, "/v1/projects", &token, key, &body).await;
        reply.assert_problem(400, "invalid_idempotency_key");
    }
    let two = Reply::send(
        app.request(reqwest::Method::POST, "/v1/projects", &token)
            .header("idempotency-key", "\"a\"")
            .header("idempotency-key", "\"b\"")
            .json(&body),
    )
    .await;
    two.assert_problem(400, "invalid_idempotency_key");
    assert_eq!(count_for(&app, "projects", "org_a").await, 0);
    assert_eq!(keys_of(&app, "org_a").await, 0);

    let longest = format!("\"{}\"", "k".repeat(255));
    let ok = post_keyed(&app, "/v1/projects", &token, &longest, &body).await;
    assert_eq!(ok.status, 201, "{}", ok.json);
    // Authentication comes first: no token, no key.
    let anonymous = Reply::send(
        app.client
            .post(app.url("/v1/projects"))
            .header("idempotency-key", "\"x\"")
            .json(&body),
    )
    .await;
    anonymous.assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn a_4xx_answer_is_kept_and_replayed() {
    let app = TestApp::spawn().await;
    let token = app.token(TokenSpec::org("org_a", "member"));
    let body = json!({"title": ""});
    let first = post_keyed(&app, "/v1/tasks", &token, "\"bad\"", &body).await;
    first.assert_problem(422, "validation_failed");
    let again = post_keyed(&app, "/v1/tasks", &token, "\"bad\"", &body).await;
    assert_replay(&first, &again);
    assert_eq!(
        again.json["request_id"], first.json["request_id"],
        "the kept problem names the request that answered it"
    );
    assert_eq!(count_for(&app, "tasks", "org_a").await, 0);
    assert_eq!(keys_of(&app, "org_a").await, 1);
}

#[tokio::test]
async fn expired_keys_are_purged_and_can_be_used_again() {
    let app = TestApp::spawn().await;
    let token = app.token(TokenSpec::org("org_a", "member"));
    let other = app.token(TokenSpec::org("org_b", "member"));
    let body = json!({"name": "P"});
    let first = post_keyed(&app, "/v1/projects", &token, "\"old\"", &body).await;
    assert_eq!(first.status, 201);
    post_keyed(&app, "/v1/projects", &other, "\"old\"", &body).await;
    let expiry = scalar(
        &app,
        "SELECT COUNT(*) FROM idempotency_keys WHERE expires_at > created_at",
    )
    .await;
    assert_eq!(expiry, 2, "kept answers expire after they were made");

    // 24 hours later (the stored expiry moved into the past).
    let db = app.db.owner().await;
    db.execute_unprepared(
        "UPDATE idempotency_keys SET expires_at = '2000-01-01 00:00:00+00:00' \
         WHERE tenant_id = 'org_a'",
    )
    .await
    .unwrap();
    // Any new key of the workspace purges its expired ones, and only its own.
    let next = post_keyed(&app, "/v1/projects", &token, "\"new\"", &body).await;
    assert_eq!(next.status, 201);
    assert_eq!(
        scalar(
            &app,
            "SELECT COUNT(*) FROM idempotency_keys WHERE tenant_id = 'org_a' AND idempotency_key = 'old'"
        )
        .await,
        0
    );
    assert_eq!(keys_of(&app, "org_b").await, 1);
    // The expired key is free: a new request with it creates again.
    db.execute_unprepared(
        "UPDATE idempotency_keys SET expires_at = '2000-01-01 00:00:00+00:00' \
         WHERE tenant_id = 'org_a'",
    )
    .await
    .unwrap();
    let reused = post_keyed(&app, "/v1/projects", &token, "\"new\"", &body).await;
    assert_eq!(reused.status, 201);
    assert_eq!(reused.header("idempotent-replayed"), None);
    assert_ne!(reused.json["id"], next.json["id"]);
    assert_eq!(count_for(&app, "projects", "org_a").await, 3);
}

#[tokio::test]
async fn voice_uploads_replay_whatever_boundary_the_retry_uses() {
    let app = TestApp::spawn().await;
    let token = app.token(TokenSpec::org("org_a", "admin"));
    let sample = wav(16_000, 2.0);
    let fields = |name| {
        form(
            &[
                ("name", name),
                ("description", "A test voice"),
                ("category", "narration"),
                ("language", "en-us"),
                ("gender", "female"),
            ],
            Some(("me.wav", "audio/wav", &sample)),
        )
    };
    let body = fields("Narrator");
    let send = |boundary: &str, body: Vec<u8>| {
        app.request(reqwest::Method::POST, "/v1/voices", &token)
            .header("idempotency-key", "\"voice-1\"")
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
    };
    let first = Reply::send(send(BOUNDARY, body.clone())).await;
    assert_eq!(first.status, 201, "{}", first.json);
    let other_boundary = "another-boundary-0123456789";
    let mut again_body = Vec::new();
    let mut rest = &body[..];
    while let Some(at) = rest
        .windows(BOUNDARY.len())
        .position(|w| w == BOUNDARY.as_bytes())
    {
        again_body.extend_from_slice(&rest[..at]);
        again_body.extend_from_slice(other_boundary.as_bytes());
        rest = &rest[at + BOUNDARY.len()..];
    }
    again_body.extend_from_slice(rest);
    let again = Reply::send(send(other_boundary, again_body)).await;
    assert_replay(&first, &again);
    assert_eq!(count_for(&app, "voices", "org_a").await, 1);

    Reply::send(send(BOUNDARY, fields("Someone else")))
        .await
        .assert_problem(422, "idempotency_key_reused");
}

// ---- generations: a replay never synthesizes again ------------------------------------------

/// An OpenAI-compatible speech API on loopback that counts its calls; inputs with `slow` take
/// the configured delay, inputs with `fail` answer 500.
#[derive(Default)]
struct SpeechStandIn {
    calls: AtomicUsize,
    delay: std::sync::Mutex<Duration>,
}

async fn speech_endpoint(state: web::Data<SpeechStandIn>, body: web::Json<Value>) -> HttpResponse {
    state.calls.fetch_add(1, Ordering::SeqCst);
    let input = body["input"].as_str().unwrap_or_default().to_owned();
    if input.contains("slow") {
        let delay = *state.delay.lock().unwrap();
        tokio::time::sleep(delay).await;
    }
    if input.contains("fail") {
        return HttpResponse::InternalServerError()
            .json(json!({"error": {"message": "model overloaded"}}));
    }
    HttpResponse::Ok()
        .content_type("audio/wav")
        .body(wav(24_000, 0.5))
}

async fn spawn_with_speech(delay: Duration) -> (TestApp, Arc<SpeechStandIn>) {
    let state = Arc::new(SpeechStandIn::default());
    *state.delay.lock().unwrap() = delay;
    let data = web::Data::from(state.clone());
    let base = serve_on_loopback(2, move |routes| {
        routes
            .app_data(data.clone())
            .route("/v1/audio/speech", web::post().to(speech_endpoint));
    });
    let app = TestApp::spawn_with(move |args| {
        args.tts_provider = TtsProvider::OpenAiCompatible;
        args.tts_base_url = Some(base);
        args.tts_api_key = Some("sk-speech-test".into());
        args.tts_model = "tts-test".into();
        args.tts_timeout_secs = 10;
        args.tts_max_per_tenant = 4;
    })
    .await;
    (app, state)
}

#[tokio::test]
async fn concurrent_duplicates_answer_409_and_replays_never_synthesize() {
    let (app, stand_in) = spawn_with_speech(Duration::from_millis(1500)).await;
    let token = app.token(TokenSpec::org("org_a", "member"));
    let voice = system_voice(&app, &token, "Jack").await;
    let body = json!({"voice_id": voice["id"], "text": "slow and steady"});

    let first = {
        let request = app
            .request(reqwest::Method::POST, "/v1/generations", &token)
            .header("idempotency-key", "\"gen-1\"")
            .json(&body);
        tokio::spawn(async move { Reply::send(request).await })
    };
    for _ in 0..100 {
        if stand_in.calls.load(Ordering::SeqCst) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stand_in.calls.load(Ordering::SeqCst), 1);
    // Duplicates while the first is synthesizing.
    let duplicates: Vec<_> = (0..3)
        .map(|_| {
            let request = app
                .request(reqwest::Method::POST, "/v1/generations", &token)
                .header("idempotency-key", "\"gen-1\"")
                .json(&body);
            tokio::spawn(async move { Reply::send(request).await })
        })
        .collect();
    for duplicate in duplicates {
        let reply = duplicate.await.unwrap();
        let problem = reply.assert_problem(409, "idempotency_in_progress");
        assert!(problem["detail"].as_str().unwrap().contains("in progress"));
    }

    let first = first.await.unwrap();
    assert_eq!(first.status, 201, "{}", first.json);
    let again = post_keyed(&app, "/v1/generations", &token, "\"gen-1\"", &body).await;
    assert_replay(&first, &again);
    assert_eq!(
        stand_in.calls.load(Ordering::SeqCst),
        1,
        "synthesized once: duplicates and the replay never reached the provider"
    );
    assert_eq!(count_for(&app, "generations", "org_a").await, 1);
}

#[tokio::test]
async fn a_server_error_releases_the_key_for_a_retry() {
    let (app, stand_in) = spawn_with_speech(Duration::ZERO).await;
    let token = app.token(TokenSpec::org("org_a", "member"));
    let voice = system_voice(&app, &token, "Jack").await;
    let body = json!({"voice_id": voice["id"], "text": "please fail"});
    let first = post_keyed(&app, "/v1/generations", &token, "\"gen-2\"", &body).await;
    assert!(first.status >= 500, "{} {}", first.status, first.json);
    assert_eq!(keys_of(&app, "org_a").await, 0, "not kept");
    let retry = post_keyed(&app, "/v1/generations", &token, "\"gen-2\"", &body).await;
    assert_eq!(retry.status, first.status);
    assert_eq!(retry.header("idempotent-replayed"), None);
    assert_eq!(
        stand_in.calls.load(Ordering::SeqCst),
        2,
        "the retry ran again"
    );
}

#[tokio::test]
async fn the_contract_documents_the_key_on_every_creating_post() {
    let document: Value = serde_json::from_str(&resonance_api::openapi::document_json()).unwrap();
    let mut keyed = vec![];
    for (path, item) in document["paths"].as_object().unwrap() {
        let Some(post) = item.get("post") else {
            continue;
        };
        let has_key = post["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header");
        if has_key {
            keyed.push(path.clone());
            assert_eq!(
                post["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|p| p["name"] == "Idempotency-Key")
                    .unwrap()["schema"]["maxLength"],
                255
            );
            assert!(post["responses"]["201"]["headers"]["idempotent-replayed"].is_object());
            assert!(post["responses"]["409"].is_object());
        }
    }
    keyed.sort();
    assert_eq!(
        keyed,
        ["/v1/generations", "/v1/projects", "/v1/tasks", "/v1/voices"]
    );
}
