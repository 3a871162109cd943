//! Speech generations: real espeak-ng synthesis that streams with Range requests, input
//! validation, an OpenAI-compatible provider stand-in, and the per-tenant concurrency limit.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use resonance_api::config::TtsProvider;
use resonance_tests::{
    Reply, TestApp, TokenSpec,
    fixtures::{audio_files, decode, get_with_range, require_espeak, system_voice, wav, wav_facts},
    serve_on_loopback,
};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// An OpenAI-compatible speech API on loopback

#[derive(Default)]
struct SpeechStandIn {
    calls: AtomicUsize,
    last: std::sync::Mutex<Option<(Option<String>, Value)>>,
    delay: std::sync::Mutex<Duration>,
}

impl SpeechStandIn {
    /// Counts a call and keeps what it sent: its `Authorization` header and its body.
    fn record(&self, req: &HttpRequest, body: &Value) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let auth = req.headers().get("authorization");
        let auth = auth.and_then(|v| v.to_str().ok()).map(str::to_owned);
        *self.last.lock().unwrap() = Some((auth, body.clone()));
    }
}

/// `POST /v1/audio/speech`: a tone as WAV, or a failure, a delay or garbage when the input
/// asks for it.
async fn speech_endpoint(
    req: HttpRequest,
    state: web::Data<SpeechStandIn>,
    body: web::Json<Value>,
) -> HttpResponse {
    state.record(&req, &body);
    let input = body["input"].as_str().unwrap_or_default().to_owned();
    let delay = *state.delay.lock().unwrap();
    if input.contains("slow") {
        tokio::time::sleep(delay).await;
    }
    if input.contains("fail") {
        return HttpResponse::InternalServerError()
            .json(json!({"error": {"message": "model overloaded"}}));
    }
    if input.contains("break") {
        // Half a second of audio, then the connection breaks mid-answer.
        let audio = wav(24_000, 3.0);
        let head = web::Bytes::copy_from_slice(&audio[..24_000]);
        let body =
            futures_util::stream::iter([Ok(head), Err(std::io::Error::other("the model crashed"))])
                .then(|item| async move {
                    // Time for the first chunk to be written out before the failure.
                    if item.is_err() {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    item
                });
        return HttpResponse::Ok().content_type("audio/wav").streaming(body);
    }
    if input.contains("garbage") {
        return HttpResponse::Ok()
            .content_type("audio/wav")
            .body("this is not audio at all, only text");
    }
    HttpResponse::Ok()
        .content_type("audio/wav")
        .body(wav(24_000, 0.5 + input.len() as f64 / 50.0))
}

async fn start_speech_stand_in(delay: Duration) -> (String, Arc<SpeechStandIn>) {
    let state = Arc::new(SpeechStandIn::default());
    *state.delay.lock().unwrap() = delay;
    let data = web::Data::from(state.clone());
    let base = serve_on_loopback(2, move |routes| {
        routes
            .app_data(data.clone())
            .route("/v1/audio/speech", web::post().to(speech_endpoint));
    });
    (base, state)
}

async fn spawn_with_http_provider(
    delay: Duration,
    timeout_secs: u64,
    per_tenant: usize,
) -> (TestApp, Arc<SpeechStandIn>) {
    let (base, stand_in) = start_speech_stand_in(delay).await;
    let app = TestApp::spawn_with(move |args| {
        args.tts_provider = TtsProvider::OpenAiCompatible;
        args.tts_base_url = Some(base);
        args.tts_api_key = Some("sk-speech-test".into());
        args.tts_model = "tts-test".into();
        args.tts_timeout_secs = timeout_secs;
        args.tts_max_per_tenant = per_tenant;
    })
    .await;
    (app, stand_in)
}

// ---------------------------------------------------------------------------------------------
// Real synthesis with espeak-ng

#[tokio::test]
async fn espeak_synthesizes_real_speech_that_streams_with_ranges() {
    require_espeak();
    let app = TestApp::spawn().await;
    let token = app.token(TokenSpec::org("org_a", "member"));
    let voice = system_voice(&app, &token, "Aria").await;

    let short = app
        .post(
            "/v1/generations",
            &token,
            json!({"voice_id": voice["id"], "text": "Hello there.", "format": "wav"}),
        )
        .await;
    assert_eq!(short.status, 201, "{}", short.json);
    assert_eq!(short.json["status"], "succeeded");
    assert_eq!(short.json["provider"], "espeak");
    assert_eq!(short.json["format"], "wav");
    assert_eq!(short.json["content_type"], "audio/wav");
    let id = short.json["id"].as_str().unwrap().to_owned();
    assert_eq!(
        short.json["audio_url"],
        format!("/v1/generations/{id}/audio")
    );
    assert_eq!(
        short.header("location"),
        Some(format!("/v1/generations/{id}").as_str())
    );

    let long = app
        .post(
            "/v1/generations",
            &token,
            json!({
                "voice_id": voice["id"],
                "text": "Hello there. This sentence is a good deal longer, so the speech that \
                         comes out of it must last noticeably longer than the greeting alone.",
                "speed": 1.2,
                "pitch": 10,
                "format": "wav",
            }),
        )
        .await;
    assert_eq!(long.status, 201, "{}", long.json);

    let audio = app
        .get(&format!("/v1/generations/{id}/audio"), &token)
        .await;
    assert_eq!(audio.status, 200);
    assert_eq!(audio.header("content-type"), Some("audio/wav"));
    assert_eq!(audio.header("accept-ranges"), Some("bytes"));
    assert_eq!(
        audio.header("content-length"),
        Some(audio.bytes.len().to_string().as_str())
    );
    let (rate, short_secs) = wav_facts(&audio.bytes);
    assert!(rate >= 8_000, "sample rate {rate}");
    assert!(short_secs > 0.2, "duration {short_secs}");
    assert_eq!(short.json["size_bytes"], audio.bytes.len());
    assert_eq!(short.json["sample_rate"], rate);
    assert!((short.json["duration_ms"].as_f64().unwrap() / 1000.0 - short_secs).abs() < 0.01);

    let long_id = long.json["id"].as_str().unwrap();
    let long_audio = app
        .get(&format!("/v1/generations/{long_id}/audio"), &token)
        .await;
    let (_, long_secs) = wav_facts(&long_audio.bytes);
    assert!(long_secs > short_secs * 2.0, "{long_secs} vs {short_secs}");

    // Ranges return exactly the requested bytes.
    let path = format!("/v1/generations/{id}/audio");
    let part = get_with_range(&app, &path, &token, "bytes=0-43").await;
    assert_eq!(part.status, 206);
    assert_eq!(part.bytes, &audio.bytes[..44]);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 0-43/{}", audio.bytes.len()).as_str())
    );
    let tail = get_with_range(&app, &path, &token, "bytes=-100").await;
    assert_eq!(tail.bytes, &audio.bytes[audio.bytes.len() - 100..]);
    get_with_range(&app, &path, &token, "bytes=999999999-")
        .await
        .assert_problem(416, "range_not_satisfiable");

    // List, filter, get, delete.
    let list = app.get("/v1/generations?limit=1", &token).await;
    assert_eq!(list.json["data"][0]["id"], long_id);
    let next = list.json["next_cursor"].as_str().unwrap().to_owned();
    let page2 = app
        .get(&format!("/v1/generations?limit=1&cursor={next}"), &token)
        .await;
    assert_eq!(page2.json["data"][0]["id"], id.as_str());
    let by_voice = app
        .get(
            &format!("/v1/generations?voice_id={}", voice["id"].as_str().unwrap()),
            &token,
        )
        .await;
    assert_eq!(by_voice.json["data"].as_array().unwrap().len(), 2);
    assert_eq!(audio_files(&app).len(), 2);
    assert_eq!(
        app.delete(&format!("/v1/generations/{id}"), &token)
            .await
            .status,
        204
    );
    assert_eq!(audio_files(&app).len(), 1);
    app.get(&path, &token)
        .await
        .assert_problem(404, "not_found");
    app.get(&format!("/v1/generations/{id}"), &token)
        .await
        .assert_problem(404, "not_found");
    assert_eq!(app.db.count("generations").await, 1);
}

#[tokio::test]
async fn generation_input_is_validated() {
    require_espeak();
    let app = TestApp::spawn().await;
    let token = app.token(TokenSpec::org("org_a", "admin"));
    let voice = system_voice(&app, &token, "Felix").await;
    let too_long = "a".repeat(5001);
    for body in [
        json!({"voice_id": voice["id"], "text": "   "}),
        json!({"voice_id": voice["id"], "text": too_long}),
        json!({"voice_id": voice["id"], "text": "Hi", "speed": 3.0}),
        json!({"voice_id": voice["id"], "text": "Hi", "pitch": 80}),
        json!({"voice_id": voice["id"], "text": "Hi", "format": "aiff"}),
        json!({"voice_id": voice["id"], "text": "Hi", "sample_rate": 12_345}),
        json!({"voice_id": voice["id"], "text": "Hi", "sample_rate": "fast"}),
        json!({"voice_id": voice["id"], "text": "Hi", "bitrate": 100}),
        json!({"voice_id": voice["id"], "text": "Hi", "stream": "yes"}),
        json!({"voice_id": "0190a000-0000-7000-8000-00000000ffff", "text": "Hi"}),
        json!({"text": "Hi"}),
    ] {
        app.post("/v1/generations", &token, body.clone())
            .await
            .assert_problem(422, "validation_failed");
    }
    let reader = app.token(TokenSpec::org("org_a", "reader"));
    app.post(
        "/v1/generations",
        &reader,
        json!({"voice_id": voice["id"], "text": "Hi"}),
    )
    .await
    .assert_problem(403, "forbidden");
    assert_eq!(app.db.count("generations").await, 0);
    assert!(audio_files(&app).is_empty());
    // 5 000 characters exactly is accepted.
    let max = app
        .post(
            "/v1/generations",
            &token,
            json!({"voice_id": voice["id"], "text": format!("Ja{}ja", " ".repeat(4996))}),
        )
        .await;
    assert_eq!(max.status, 201, "{}", max.json);
}

// ---------------------------------------------------------------------------------------------
// The OpenAI-compatible provider

#[tokio::test]
async fn http_provider_success_error_and_timeout() {
    let (app, stand_in) = spawn_with_http_provider(Duration::from_secs(5), 1, 2).await;
    let token = app.token(TokenSpec::org("org_a", "member"));
    let voice = system_voice(&app, &token, "Aria").await;

    let ok = app
        .post(
            "/v1/generations",
            &token,
            json!({"voice_id": voice["id"], "text": "Hello from the stand-in.", "speed": 1.5, "format": "wav"}),
        )
        .await;
    assert_eq!(ok.status, 201, "{}", ok.json);
    assert_eq!(ok.json["provider"], "openai-compatible");
    assert_eq!(ok.json["sample_rate"], 24_000);
    let (auth, sent) = stand_in.last.lock().unwrap().clone().unwrap();
    assert_eq!(auth.as_deref(), Some("Bearer sk-speech-test"));
    assert_eq!(sent["model"], "tts-test");
    assert_eq!(sent["voice"], "nova");
    assert_eq!(sent["input"], "Hello from the stand-in.");
    assert_eq!(sent["response_format"], "wav");
    assert_eq!(sent["speed"], 1.5);
    let audio = app
        .get(
            &format!("/v1/generations/{}/audio", ok.json["id"].as_str().unwrap()),
            &token,
        )
        .await;
    assert_eq!(wav_facts(&audio.bytes).0, 24_000);
    assert_eq!(audio_files(&app).len(), 1);

    // Upstream error: 502, recorded as failed with the reason, no audio object.
    let failed = app
        .post(
            "/v1/generations",
            &token,
            json!({"voice_id": voice["id"], "text": "please fail"}),
        )
        .await;
    let problem = failed.assert_problem(502, "upstream_failed");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("model overloaded"),
        "{problem}"
    );
    // Audio that is not audio is a failure too.
    app.post(
        "/v1/generations",
        &token,
        json!({"voice_id": voice["id"], "text": "garbage please"}),
    )
    .await
    .assert_problem(502, "upstream_failed");
    // Timeout.
    let slow = app
        .post(
            "/v1/generations",
            &token,
            json!({"voice_id": voice["id"], "text": "slow down"}),
        )
        .await;
    slow.assert_problem(502, "upstream_failed");

    let recorded = app.get("/v1/generations?status=failed", &token).await;
    let failures = recorded.json["data"].as_array().unwrap();
    assert_eq!(failures.len(), 3, "{}", recorded.json);
    assert!(
        failures
            .iter()
            .all(|f| f["audio_url"].is_null() && f["size_bytes"].is_null())
    );
    let reasons: Vec<&str> = failures
        .iter()
        .map(|f| f["failure_reason"].as_str().unwrap())
        .collect();
    assert!(reasons[0].contains("time"), "{reasons:?}");
    assert!(reasons[1].contains("unusable audio"), "{reasons:?}");
    assert!(reasons[2].contains("500"), "{reasons:?}");
    let failed_id = failures[0]["id"].as_str().unwrap();
    app.get(&format!("/v1/generations/{failed_id}/audio"), &token)
        .await
        .assert_problem(404, "not_found");
    assert_eq!(
        audio_files(&app).len(),
        1,
        "no audio for failed generations"
    );
    assert_eq!(app.db.count("generations").await, 4);

    // Pitch is an espeak setting.
    app.post(
        "/v1/generations",
        &token,
        json!({"voice_id": voice["id"], "text": "Hi", "pitch": 5}),
    )
    .await
    .assert_problem(422, "validation_failed");
    // Every format is encoded here from the provider's WAV.
    let mp3 = app
        .post(
            "/v1/generations",
            &token,
            json!({"voice_id": voice["id"], "text": "Hi there, in mp3", "format": "mp3"}),
        )
        .await;
    assert_eq!(mp3.status, 201, "{}", mp3.json);
    assert_eq!(mp3.json["content_type"], "audio/mpeg");
    let (_, sent) = stand_in.last.lock().unwrap().clone().unwrap();
    assert_eq!(sent["response_format"], "wav");
    let audio = app
        .get(
            &format!("/v1/generations/{}/audio", mp3.json["id"].as_str().unwrap()),
            &token,
        )
        .await;
    let decoded = decode("mp3", &audio.bytes, 0);
    assert_eq!(decoded.sample_rate, 24_000);
    let expected = 0.5 + "Hi there, in mp3".len() as f64 / 50.0;
    assert!((decoded.seconds - expected).abs() < 0.1, "{decoded:?}");
}

#[tokio::test]
async fn a_stream_that_fails_is_cut_short_and_recorded_as_failed() {
    let (app, _) = spawn_with_http_provider(Duration::from_secs(5), 5, 2).await;
    let token = app.token(TokenSpec::org("org_a", "member"));
    let voice = system_voice(&app, &token, "Aria").await;

    // A failure before any audio is a plain 502, recorded.
    let refused = app
        .post(
            "/v1/generations",
            &token,
            json!({"voice_id": voice["id"], "text": "please fail", "stream": true}),
        )
        .await;
    refused.assert_problem(502, "upstream_failed");

    // A failure after audio went out: the answer began as a 200 and does not end cleanly.
    let response = app
        .request(reqwest::Method::POST, "/v1/generations", &token)
        .json(&json!({"voice_id": voice["id"], "text": "break, please", "stream": true, "format": "wav"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let id = response.headers()["x-generation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        response.bytes().await.is_err(),
        "a failed stream must not look complete"
    );
    let record = app.get(&format!("/v1/generations/{id}"), &token).await;
    assert_eq!(record.json["status"], "failed", "{}", record.json);
    assert!(
        record.json["failure_reason"]
            .as_str()
            .unwrap()
            .contains("provider"),
        "{}",
        record.json
    );
    assert!(audio_files(&app).is_empty(), "no partial audio is kept");
    assert_eq!(app.db.count("generations").await, 2);
}

#[tokio::test]
async fn concurrency_limit_answers_429_per_tenant() {
    let (app, stand_in) = spawn_with_http_provider(Duration::from_millis(1500), 10, 1).await;
    let a = app.token(TokenSpec::org("org_a", "member"));
    let b = app.token(TokenSpec::org("org_b", "member"));
    let voice = system_voice(&app, &a, "Jack").await;
    let body = json!({"voice_id": voice["id"], "text": "slow and steady"});

    let first = {
        let request = app
            .request(reqwest::Method::POST, "/v1/generations", &a)
            .json(&body);
        tokio::spawn(async move { Reply::send(request).await })
    };
    // Wait until the first synthesis is under way at the provider.
    for _ in 0..100 {
        if stand_in.calls.load(Ordering::SeqCst) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stand_in.calls.load(Ordering::SeqCst), 1);

    let second = app.post("/v1/generations", &a, body.clone()).await;
    second.assert_problem(429, "too_many_requests");
    assert!(second.header("retry-after").is_some());
    // Another workspace is not starved by the first.
    let other = app.post("/v1/generations", &b, body.clone()).await;
    assert_eq!(other.status, 201, "{}", other.json);

    assert_eq!(first.await.unwrap().status, 201);
    // The permit is released: the tenant can synthesize again.
    let again = app.post("/v1/generations", &a, body).await;
    assert_eq!(again.status, 201, "{}", again.json);
    assert_eq!(app.db.count("generations").await, 3);
}

#[tokio::test]
async fn the_per_workspace_limit_holds_across_two_instances() {
    let (first, stand_in) = spawn_with_http_provider(Duration::from_millis(1500), 10, 1).await;
    if !first.db.is_postgres() {
        return; // SQLite is one process: one instance, covered above.
    }
    let (base, _) = start_speech_stand_in(Duration::from_millis(1500)).await;
    let second = TestApp::spawn_on(first.clerk.clone(), first.db.shared(), move |args| {
        args.tts_provider = TtsProvider::OpenAiCompatible;
        args.tts_base_url = Some(base);
        args.tts_api_key = Some("sk-speech-test".into());
        args.tts_model = "tts-test".into();
        args.tts_max_per_tenant = 1;
    })
    .await;
    let a = first.token(TokenSpec::org("org_a", "member"));
    let b = first.token(TokenSpec::org("org_b", "member"));
    let voice = system_voice(&first, &a, "Jack").await;
    let body = json!({"voice_id": voice["id"], "text": "slow and steady"});

    let running = {
        let request = first
            .request(reqwest::Method::POST, "/v1/generations", &a)
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

    // The workspace's one slot is taken on the first instance: the second refuses too.
    let refused = second.post("/v1/generations", &a, body.clone()).await;
    refused.assert_problem(429, "too_many_requests");
    assert!(refused.header("retry-after").is_some());
    // Another workspace is not held back by it.
    let other = second.post("/v1/generations", &b, body.clone()).await;
    assert_eq!(other.status, 201, "{}", other.json);

    assert_eq!(running.await.unwrap().status, 201);
    // Released: the workspace synthesizes again, on either instance.
    let mut again = second.post("/v1/generations", &a, body.clone()).await;
    for _ in 0..20 {
        if again.status != 429 {
            break;
        }
        // The slot is unlocked just after the first answer is sent.
        tokio::time::sleep(Duration::from_millis(50)).await;
        again = second.post("/v1/generations", &a, body.clone()).await;
    }
    assert_eq!(again.status, 201, "{}", again.json);
    assert_eq!(first.db.count("generations").await, 3);
}

#[tokio::test]
async fn no_provider_answers_503_with_how_to_configure_one() {
    let app = TestApp::spawn_with(|args| args.tts_provider = TtsProvider::None).await;
    let token = app.token(TokenSpec::org("org_a", "admin"));
    let voice = system_voice(&app, &token, "Lena").await;
    let reply = app
        .post(
            "/v1/generations",
            &token,
            json!({"voice_id": voice["id"], "text": "Hallo"}),
        )
        .await;
    let problem = reply.assert_problem(503, "service_unavailable");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("RESONANCE_TTS_PROVIDER"),
        "{problem}"
    );
    assert_eq!(app.db.count("generations").await, 0);
}
