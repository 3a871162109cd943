//! Clerk webhooks (Svix-signed): verification, idempotency, ordering, the directory they sync,
//! workspace deletion, `/v1/members` and the assignee check.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use resonance_tests::{Reply, TestApp, TokenSpec};
use serde_json::{Value, json};
use sha2::Sha256;

const KEY: &[u8] = b"resonance-webhook-test-key-0123456789abcdef";

fn secret() -> String {
    format!("whsec_{}", STANDARD.encode(KEY))
}

/// base64 HMAC-SHA256 over `{id}.{timestamp}.{body}`, exactly as Svix signs.
fn sign_with(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn spawn() -> TestApp {
    TestApp::spawn_with(|args| args.clerk_webhook_secret = Some(secret())).await
}

/// Posts `body` with exactly these headers.
async fn post_raw(app: &TestApp, headers: &[(&str, String)], body: &str) -> Reply {
    let mut request = app
        .client
        .post(app.url("/webhooks/clerk"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    Reply::from(request.send().await.unwrap()).await
}

/// Delivers `event` as Svix would: signed now, with this `svix-id`.
async fn deliver(app: &TestApp, svix_id: &str, event: &Value) -> Reply {
    let body = event.to_string();
    let ts = now();
    let signature = format!("v1,{}", sign_with(KEY, svix_id, ts, &body));
    post_raw(
        app,
        &[
            ("svix-id", svix_id.into()),
            ("svix-timestamp", ts.to_string()),
            ("svix-signature", signature),
        ],
        &body,
    )
    .await
}

/// Delivers and expects 200 with `outcome`.
async fn deliver_ok(app: &TestApp, event: &Value, outcome: &str) {
    let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
    let reply = deliver(app, &id, event).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.json["outcome"], outcome, "{event}");
}

fn event(kind: &str, data: Value) -> Value {
    json!({
        "type": kind,
        "object": "event",
        "data": data,
        "timestamp": chrono::Utc::now().timestamp_millis(),
        "instance_id": "ins_test",
    })
}

fn organization(kind: &str, id: &str, name: &str, updated_at: i64) -> Value {
    event(
        kind,
        json!({
            "id": id,
            "object": "organization",
            "name": name,
            "slug": name.to_lowercase().replace(' ', "-"),
            "image_url": "https://img.clerk.com/org.png",
            "created_at": 1_000,
            "updated_at": updated_at,
            "members_count": 1,
            "public_metadata": {},
        }),
    )
}

fn user(kind: &str, id: &str, first: &str, updated_at: i64) -> Value {
    event(
        kind,
        json!({
            "id": id,
            "object": "user",
            "first_name": first,
            "last_name": "Tester",
            "username": null,
            "image_url": format!("https://img.clerk.com/{id}.png"),
            "primary_email_address_id": "idn_primary",
            "email_addresses": [
                {"id": "idn_other", "object": "email_address", "email_address": "other@example.com"},
                {"id": "idn_primary", "object": "email_address", "email_address": format!("{}@example.com", first.to_lowercase())},
            ],
            "created_at": 1_000,
            "updated_at": updated_at,
        }),
    )
}

fn deleted(kind: &str, id: &str, object: &str) -> Value {
    event(kind, json!({"id": id, "object": object, "deleted": true}))
}

fn membership(kind: &str, org: &str, user: &str, role: &str, updated_at: i64) -> Value {
    event(
        kind,
        json!({
            "id": format!("orgmem_{org}_{user}"),
            "object": "organization_membership",
            "role": format!("org:{role}"),
            "permissions": [],
            "organization": {"id": org, "object": "organization", "name": org, "slug": org},
            "public_user_data": {
                "user_id": user,
                "first_name": "Pub",
                "last_name": user,
                "image_url": format!("https://img.clerk.com/{user}.png"),
                "identifier": format!("{user}@example.com"),
                "has_image": true,
            },
            "created_at": 1_000,
            "updated_at": updated_at,
        }),
    )
}

/// One column of one row, as text (as the schema owner, so row-level security hides nothing).
async fn stored(app: &TestApp, sql: &str) -> Option<Option<String>> {
    let db = app.db.owner().await;
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            sql.to_owned(),
        ))
        .await
        .unwrap();
    db.close().await.ok();
    row.map(|r| r.try_get_by_index::<Option<String>>(0).unwrap())
}

async fn scalar(app: &TestApp, sql: &str) -> i64 {
    let db = app.db.owner().await;
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            sql.to_owned(),
        ))
        .await
        .unwrap()
        .unwrap();
    db.close().await.ok();
    row.try_get_by_index::<i64>(0).unwrap()
}

async fn count_for(app: &TestApp, table: &str, tenant: &str) -> i64 {
    scalar(
        app,
        &format!("SELECT COUNT(*) FROM {table} WHERE tenant_id = '{tenant}'"),
    )
    .await
}

use sea_orm::ConnectionTrait;

// ---- verification -------------------------------------------------------------------------

#[tokio::test]
async fn without_a_secret_the_endpoint_is_not_configured() {
    let app = TestApp::spawn().await;
    let body = organization("organization.created", "org_a", "A", 2_000).to_string();
    let ts = now();
    let reply = post_raw(
        &app,
        &[
            ("svix-id", "msg_1".into()),
            ("svix-timestamp", ts.to_string()),
            (
                "svix-signature",
                format!("v1,{}", sign_with(KEY, "msg_1", ts, &body)),
            ),
        ],
        &body,
    )
    .await;
    reply.assert_problem(503, "service_unavailable");
    assert_eq!(app.db.count("webhook_deliveries").await, 0);
}

#[tokio::test]
async fn a_good_signature_is_applied() {
    let app = spawn().await;
    deliver_ok(
        &app,
        &organization("organization.created", "org_acme", "Acme Corp", 2_000),
        "applied",
    )
    .await;
    assert_eq!(
        stored(&app, "SELECT name FROM tenants WHERE id = 'org_acme'").await,
        Some(Some("Acme Corp".into()))
    );
    assert_eq!(
        stored(&app, "SELECT slug FROM tenants WHERE id = 'org_acme'").await,
        Some(Some("acme-corp".into()))
    );
    assert_eq!(
        stored(&app, "SELECT kind FROM tenants WHERE id = 'org_acme'").await,
        Some(Some("organization".into()))
    );
    assert_eq!(app.db.count("webhook_deliveries").await, 1);
}

#[tokio::test]
async fn bad_signatures_are_rejected_with_no_side_effect() {
    let app = spawn().await;
    let body = organization("organization.created", "org_a", "A", 2_000).to_string();
    let ts = now();
    let headers = |signature: String| {
        vec![
            ("svix-id", "msg_bad".to_string()),
            ("svix-timestamp", ts.to_string()),
            ("svix-signature", signature),
        ]
    };
    let cases = [
        // Another key.
        format!("v1,{}", sign_with(b"some-other-key", "msg_bad", ts, &body)),
        // Signed over another id.
        format!("v1,{}", sign_with(KEY, "msg_other", ts, &body)),
        // Signed over another timestamp.
        format!("v1,{}", sign_with(KEY, "msg_bad", ts - 1, &body)),
        // Signed over another body.
        format!(
            "v1,{}",
            sign_with(KEY, "msg_bad", ts, &body.replace("\"A\"", "\"B\""))
        ),
        // The right signature under another version tag.
        format!("v2,{}", sign_with(KEY, "msg_bad", ts, &body)),
        // Not base64, empty, no version.
        "v1,!!!not-base64!!!".into(),
        "v1,".into(),
        sign_with(KEY, "msg_bad", ts, &body),
    ];
    for signature in cases {
        let reply = post_raw(&app, &headers(signature.clone()), &body).await;
        reply.assert_problem(400, "webhook_signature_invalid");
    }
    // The right signature over a tampered body.
    let good = format!("v1,{}", sign_with(KEY, "msg_bad", ts, &body));
    let tampered = body.replace("\"A\"", "\"Evil\"");
    post_raw(&app, &headers(good), &tampered)
        .await
        .assert_problem(400, "webhook_signature_invalid");

    assert_eq!(app.db.count("webhook_deliveries").await, 0);
    assert_eq!(app.db.count("tenants").await, 0);
}

#[tokio::test]
async fn one_good_signature_among_several_is_enough() {
    let app = spawn().await;
    let body = organization("organization.created", "org_multi", "Multi", 2_000).to_string();
    let ts = now();
    let good = sign_with(KEY, "msg_multi", ts, &body);
    let bad = sign_with(b"rotated-away-key", "msg_multi", ts, &body);
    let reply = post_raw(
        &app,
        &[
            ("svix-id", "msg_multi".into()),
            ("svix-timestamp", ts.to_string()),
            ("svix-signature", format!("v1,{bad} v2,{good} v1,{good}")),
        ],
        &body,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.json["outcome"], "applied");
    assert_eq!(app.db.count("tenants").await, 1);
}

#[tokio::test]
async fn stale_and_future_timestamps_are_rejected() {
    let app = spawn().await;
    let body = organization("organization.created", "org_t", "T", 2_000).to_string();
    // Future by a margin: a slow request must not slide it back into tolerance.
    for ts in [now() - 301, now() + 330, now() - 3600, 0] {
        let reply = post_raw(
            &app,
            &[
                ("svix-id", "msg_t".into()),
                ("svix-timestamp", ts.to_string()),
                (
                    "svix-signature",
                    format!("v1,{}", sign_with(KEY, "msg_t", ts, &body)),
                ),
            ],
            &body,
        )
        .await;
        reply.assert_problem(400, "webhook_timestamp_out_of_tolerance");
    }
    assert_eq!(app.db.count("webhook_deliveries").await, 0);
    // Within tolerance (a delivery a few minutes old) is fine.
    let ts = now() - 240;
    let reply = post_raw(
        &app,
        &[
            ("svix-id", "msg_t".into()),
            ("svix-timestamp", ts.to_string()),
            (
                "svix-signature",
                format!("v1,{}", sign_with(KEY, "msg_t", ts, &body)),
            ),
        ],
        &body,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
}

#[tokio::test]
async fn missing_or_malformed_headers_are_rejected() {
    let app = spawn().await;
    let body = organization("organization.created", "org_h", "H", 2_000).to_string();
    let ts = now();
    let signature = format!("v1,{}", sign_with(KEY, "msg_h", ts, &body));
    let all = [
        ("svix-id", "msg_h".to_string()),
        ("svix-timestamp", ts.to_string()),
        ("svix-signature", signature.clone()),
    ];
    for skip in 0..all.len() {
        let headers: Vec<_> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, h)| h.clone())
            .collect();
        post_raw(&app, &headers, &body)
            .await
            .assert_problem(400, "webhook_headers_missing");
    }
    post_raw(&app, &[], &body)
        .await
        .assert_problem(400, "webhook_headers_missing");
    let reply = post_raw(
        &app,
        &[
            ("svix-id", "msg_h".into()),
            ("svix-timestamp", "yesterday".into()),
            ("svix-signature", signature),
        ],
        &body,
    )
    .await;
    reply.assert_problem(400, "webhook_headers_invalid");
    assert_eq!(app.db.count("webhook_deliveries").await, 0);
    assert_eq!(app.db.count("tenants").await, 0);
}

#[tokio::test]
async fn signed_garbage_is_a_400_not_a_500() {
    let app = spawn().await;
    for body in [
        "not json".to_string(),
        json!({"type": "user.created", "data": {"id": "user_x"}}).to_string(),
        json!({"type": "organization.created", "data": {"id": "evil'; DROP TABLE tenants; --", "updated_at": 1}}).to_string(),
    ] {
        let ts = now();
        let reply = post_raw(
            &app,
            &[
                ("svix-id", "msg_g".into()),
                ("svix-timestamp", ts.to_string()),
                ("svix-signature", format!("v1,{}", sign_with(KEY, "msg_g", ts, &body))),
            ],
            &body,
        )
        .await;
        reply.assert_problem(400, "invalid_event");
    }
    assert_eq!(app.db.count("webhook_deliveries").await, 0);
}

#[tokio::test]
async fn only_post_is_allowed() {
    let app = spawn().await;
    let reply = Reply::from(
        app.client
            .get(app.url("/webhooks/clerk"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    reply.assert_problem(405, "method_not_allowed");
}

// ---- idempotency and ordering -------------------------------------------------------------

#[tokio::test]
async fn a_replayed_svix_id_changes_nothing() {
    let app = spawn().await;
    let first = organization("organization.created", "org_r", "Original", 2_000);
    let reply = deliver(&app, "msg_replay", &first).await;
    assert_eq!(reply.json["outcome"], "applied");
    // The same delivery again.
    let reply = deliver(&app, "msg_replay", &first).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json["outcome"], "duplicate");
    // Even a (validly signed) newer payload under the same id is not applied twice.
    let newer = organization("organization.updated", "org_r", "Changed", 3_000);
    let reply = deliver(&app, "msg_replay", &newer).await;
    assert_eq!(reply.json["outcome"], "duplicate");
    assert_eq!(
        stored(&app, "SELECT name FROM tenants WHERE id = 'org_r'").await,
        Some(Some("Original".into()))
    );
    assert_eq!(app.db.count("webhook_deliveries").await, 1);
}

#[tokio::test]
async fn an_older_update_never_overwrites_a_newer_one() {
    let app = spawn().await;
    // Organizations.
    deliver_ok(
        &app,
        &organization("organization.updated", "org_o", "Newer", 3_000),
        "applied",
    )
    .await;
    deliver_ok(
        &app,
        &organization("organization.created", "org_o", "Older", 1_000),
        "stale",
    )
    .await;
    deliver_ok(
        &app,
        &organization("organization.updated", "org_o", "Same", 3_000),
        "stale",
    )
    .await;
    assert_eq!(
        stored(&app, "SELECT name FROM tenants WHERE id = 'org_o'").await,
        Some(Some("Newer".into()))
    );
    deliver_ok(
        &app,
        &organization("organization.updated", "org_o", "Newest", 4_000),
        "applied",
    )
    .await;
    assert_eq!(
        stored(&app, "SELECT name FROM tenants WHERE id = 'org_o'").await,
        Some(Some("Newest".into()))
    );

    // Users.
    deliver_ok(
        &app,
        &user("user.updated", "user_o", "Second", 5_000),
        "applied",
    )
    .await;
    deliver_ok(
        &app,
        &user("user.created", "user_o", "First", 4_000),
        "stale",
    )
    .await;
    assert_eq!(
        stored(&app, "SELECT name FROM users WHERE id = 'user_o'").await,
        Some(Some("Second Tester".into()))
    );
    assert_eq!(
        stored(&app, "SELECT email FROM users WHERE id = 'user_o'").await,
        Some(Some("second@example.com".into())),
        "the primary email address"
    );

    // Memberships: a late `created` does not undo a newer role change or a removal.
    deliver_ok(
        &app,
        &membership(
            "organizationMembership.updated",
            "org_o",
            "user_o",
            "admin",
            7_000,
        ),
        "applied",
    )
    .await;
    deliver_ok(
        &app,
        &membership(
            "organizationMembership.created",
            "org_o",
            "user_o",
            "member",
            6_000,
        ),
        "stale",
    )
    .await;
    assert_eq!(
        stored(
            &app,
            "SELECT role FROM memberships WHERE user_id = 'user_o'"
        )
        .await,
        Some(Some("admin".into()))
    );
    deliver_ok(
        &app,
        &membership(
            "organizationMembership.deleted",
            "org_o",
            "user_o",
            "admin",
            7_000,
        ),
        "applied",
    )
    .await;
    deliver_ok(
        &app,
        &membership(
            "organizationMembership.updated",
            "org_o",
            "user_o",
            "admin",
            7_500,
        ),
        "stale",
    )
    .await;
    assert_eq!(
        scalar(
            &app,
            "SELECT COUNT(*) FROM memberships WHERE deleted_at IS NULL"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn unknown_event_types_are_accepted_and_ignored() {
    let app = spawn().await;
    deliver_ok(
        &app,
        &event(
            "session.created",
            json!({"id": "sess_1", "object": "session"}),
        ),
        "ignored",
    )
    .await;
    deliver_ok(
        &app,
        &event("email.created", json!({"id": "ema_1"})),
        "ignored",
    )
    .await;
    assert_eq!(app.db.count("tenants").await, 0);
    assert_eq!(app.db.count("users").await, 0);
}

// ---- deletion -----------------------------------------------------------------------------

/// Creates a project with a task in it and an inbox task, through the API.
async fn seed_workspace(app: &TestApp, token: &str) {
    let project = app
        .post("/v1/projects", token, json!({"name": "Launch"}))
        .await;
    assert_eq!(project.status, 201, "{}", project.json);
    let project_id = project.json["id"].as_str().unwrap().to_owned();
    for body in [
        json!({"title": "In the project", "project_id": project_id}),
        json!({"title": "In the inbox"}),
    ] {
        let task = app.post("/v1/tasks", token, body).await;
        assert_eq!(task.status, 201, "{}", task.json);
    }
}

/// A mono 16-bit PCM WAV tone of `secs` seconds (a valid voice sample).
fn wav(secs: f64) -> Vec<u8> {
    let rate: u32 = 16_000;
    let n = (rate as f64 * secs) as usize;
    let data: Vec<u8> = (0..n)
        .flat_map(|i| (((i as f64 * 0.07).sin() * 9000.0) as i16).to_le_bytes())
        .collect();
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    out
}

/// Creates a custom voice (a stored sample) and a generation (stored audio), through the API.
async fn seed_audio(app: &TestApp, token: &str) {
    const BOUNDARY: &str = "resonance-webhooks-boundary";
    let mut body = Vec::new();
    for (name, value) in [("name", "Narrator"), ("language", "en-us")] {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"sample\"; filename=\"me.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(&wav(2.0));
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let voice = Reply::from(
        app.request(reqwest::Method::POST, "/v1/voices", token)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(voice.status, 201, "{}", voice.json);
    let system = app.get("/v1/voices?variant=system&limit=1", token).await;
    assert_eq!(system.status, 200, "{}", system.json);
    let voice_id = system.json["data"][0]["id"].as_str().unwrap().to_owned();
    let generation = app
        .post(
            "/v1/generations",
            token,
            json!({"voice_id": voice_id, "text": "Goodbye."}),
        )
        .await;
    assert_eq!(generation.status, 201, "{}", generation.json);
}

/// Stored objects of a tenant (files of the local audio store under the data directory).
fn stored_objects(app: &TestApp, tenant: &str) -> usize {
    fn walk(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| {
                        let path = e.path();
                        if path.is_dir() { walk(&path) } else { 1 }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(&app.data_path().join("audio").join("tenants").join(tenant))
}

#[tokio::test]
async fn deleting_an_organization_removes_everything_it_owns_and_nothing_else() {
    let app = spawn().await;
    let a = app.token(TokenSpec::org("org_a", "admin"));
    let b = app.token(TokenSpec::org("org_b", "admin"));
    seed_workspace(&app, &a).await;
    seed_workspace(&app, &b).await;
    seed_audio(&app, &a).await;
    seed_audio(&app, &b).await;
    for org in ["org_a", "org_b"] {
        deliver_ok(
            &app,
            &organization("organization.created", org, org, 2_000),
            "applied",
        )
        .await;
        deliver_ok(
            &app,
            &membership(
                "organizationMembership.created",
                org,
                "user_alice",
                "admin",
                2_000,
            ),
            "applied",
        )
        .await;
    }
    let tables = resonance_api::tenant::lifecycle::TENANT_OWNED_TABLES;
    let mut before_b = vec![];
    for table in tables {
        before_b.push(count_for(&app, table, "org_b").await);
    }
    for table in tables {
        assert!(
            count_for(&app, table, "org_a").await > 0,
            "{table} seeded for org_a"
        );
    }
    assert_eq!(
        stored_objects(&app, "org_a"),
        2,
        "a sample and a generation"
    );
    let objects_b = stored_objects(&app, "org_b");
    assert_eq!(objects_b, 2);
    let system_voices = "SELECT COUNT(*) FROM voices WHERE tenant_id IS NULL";
    let system_voices_before = scalar(&app, system_voices).await;
    assert!(system_voices_before > 0);

    deliver_ok(
        &app,
        &deleted("organization.deleted", "org_a", "organization"),
        "applied",
    )
    .await;

    for (table, before) in tables.iter().zip(before_b) {
        assert_eq!(count_for(&app, table, "org_a").await, 0, "{table} of org_a");
        assert_eq!(
            count_for(&app, table, "org_b").await,
            before,
            "{table} of org_b"
        );
    }
    assert_eq!(stored_objects(&app, "org_a"), 0, "no audio of org_a stays");
    assert_eq!(stored_objects(&app, "org_b"), objects_b);
    assert_eq!(
        scalar(&app, system_voices).await,
        system_voices_before,
        "shared system voices stay"
    );
    assert_eq!(
        stored(&app, "SELECT id FROM tenants WHERE id = 'org_a'").await,
        None
    );
    assert!(
        stored(&app, "SELECT id FROM tenants WHERE id = 'org_b'")
            .await
            .is_some()
    );
    // Nothing stays reachable through the API, and a token issued before the deletion cannot
    // bring the workspace back.
    app.get("/v1/tasks", &a)
        .await
        .assert_problem(401, "unauthorized");
    app.post("/v1/projects", &a, json!({"name": "Resurrected"}))
        .await
        .assert_problem(401, "unauthorized");
    assert_eq!(count_for(&app, "projects", "org_a").await, 0);
    let list = app.get("/v1/tasks", &b).await;
    assert_eq!(list.json["data"].as_array().unwrap().len(), 2);

    // Deletion is final: late deliveries about the organization change nothing.
    deliver_ok(
        &app,
        &organization("organization.updated", "org_a", "Back", 9_000),
        "stale",
    )
    .await;
    deliver_ok(
        &app,
        &membership(
            "organizationMembership.created",
            "org_a",
            "user_bob",
            "member",
            9_000,
        ),
        "stale",
    )
    .await;
    assert_eq!(
        stored(&app, "SELECT id FROM tenants WHERE id = 'org_a'").await,
        None
    );
    assert_eq!(count_for(&app, "memberships", "org_a").await, 0);
}

#[tokio::test]
async fn deleting_a_user_removes_their_personal_workspace_and_keeps_org_rows() {
    let app = spawn().await;
    let personal = app.token(TokenSpec::personal("user_dora"));
    let in_org = app.token(TokenSpec::org("org_team", "member").user("user_dora"));
    seed_workspace(&app, &personal).await;
    seed_workspace(&app, &in_org).await;
    seed_audio(&app, &personal).await;
    seed_audio(&app, &in_org).await;
    assert_eq!(stored_objects(&app, "user_dora"), 2);
    deliver_ok(
        &app,
        &user("user.created", "user_dora", "Dora", 2_000),
        "applied",
    )
    .await;
    deliver_ok(
        &app,
        &membership(
            "organizationMembership.created",
            "org_team",
            "user_dora",
            "member",
            2_000,
        ),
        "applied",
    )
    .await;
    assert_eq!(count_for(&app, "tasks", "user_dora").await, 2);

    deliver_ok(
        &app,
        &deleted("user.deleted", "user_dora", "user"),
        "applied",
    )
    .await;

    for table in resonance_api::tenant::lifecycle::TENANT_OWNED_TABLES {
        assert_eq!(count_for(&app, table, "user_dora").await, 0, "{table}");
    }
    assert_eq!(
        count_for(&app, "tasks", "org_team").await,
        2,
        "the org owns them"
    );
    assert_eq!(count_for(&app, "projects", "org_team").await, 1);
    assert_eq!(count_for(&app, "voices", "org_team").await, 1);
    assert_eq!(
        stored_objects(&app, "user_dora"),
        0,
        "personal audio is gone"
    );
    assert_eq!(stored_objects(&app, "org_team"), 2, "the org's audio stays");
    assert_eq!(
        scalar(
            &app,
            "SELECT COUNT(*) FROM users WHERE id = 'user_dora' AND deleted_at IS NOT NULL"
        )
        .await,
        1,
        "the user is shown as deleted"
    );
    assert_eq!(
        stored(&app, "SELECT email FROM users WHERE id = 'user_dora'").await,
        Some(None),
        "the profile is cleared"
    );
    // A late update does not bring the user back.
    deliver_ok(
        &app,
        &user("user.updated", "user_dora", "Dora", 9_000),
        "stale",
    )
    .await;

    let reader = app.token(TokenSpec::org("org_team", "reader").user("user_erin"));
    let members = app.get("/v1/members", &reader).await;
    assert_eq!(members.status, 200, "{}", members.json);
    assert_eq!(members.json["data"][0]["user_id"], "user_dora");
    assert_eq!(members.json["data"][0]["deleted"], true);
}

// ---- members and assignees ----------------------------------------------------------------

#[tokio::test]
async fn members_lists_the_workspace_members_page_by_page() {
    let app = spawn().await;
    for (i, user_id) in ["user_m1", "user_m2", "user_m3"].iter().enumerate() {
        deliver_ok(
            &app,
            &membership(
                "organizationMembership.created",
                "org_m",
                user_id,
                if i == 0 { "admin" } else { "member" },
                2_000,
            ),
            "applied",
        )
        .await;
    }
    deliver_ok(
        &app,
        &user("user.created", "user_m1", "Mona", 2_000),
        "applied",
    )
    .await;
    deliver_ok(
        &app,
        &membership(
            "organizationMembership.created",
            "org_other",
            "user_x",
            "admin",
            2_000,
        ),
        "applied",
    )
    .await;

    let token = app.token(TokenSpec::org("org_m", "reader").user("user_m3"));
    let first = app.get("/v1/members?limit=2", &token).await;
    assert_eq!(first.status, 200, "{}", first.json);
    let data = first.json["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    let cursor = first.json["next_cursor"].as_str().expect("a next page");
    let second = app
        .get(&format!("/v1/members?limit=2&cursor={cursor}"), &token)
        .await;
    assert_eq!(second.status, 200, "{}", second.json);
    assert!(second.json["next_cursor"].is_null());
    let mut all: Vec<Value> = data.clone();
    all.extend(second.json["data"].as_array().unwrap().iter().cloned());
    let ids: Vec<&str> = all.iter().map(|m| m["user_id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        ["user_m3", "user_m2", "user_m1"],
        "newest first, no other org"
    );

    let mona = &all[2];
    assert_eq!(mona["role"], "admin");
    assert_eq!(mona["name"], "Mona Tester", "the synced user profile wins");
    assert_eq!(mona["email"], "mona@example.com");
    assert_eq!(mona["deleted"], false);
    let m2 = &all[1];
    assert_eq!(m2["role"], "member");
    assert_eq!(
        m2["name"], "Pub user_m2",
        "membership public data until the user syncs"
    );
    assert_eq!(m2["email"], "user_m2@example.com");
    assert_eq!(m2["image_url"], "https://img.clerk.com/user_m2.png");

    // A removed membership disappears.
    deliver_ok(
        &app,
        &membership(
            "organizationMembership.deleted",
            "org_m",
            "user_m2",
            "member",
            3_000,
        ),
        "applied",
    )
    .await;
    let list = app.get("/v1/members", &token).await;
    let ids: Vec<&str> = list.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["user_m3", "user_m1"]);

    app.get("/v1/members?limit=0", &token)
        .await
        .assert_problem(422, "validation_failed");
    let unauthenticated =
        Reply::from(app.client.get(app.url("/v1/members")).send().await.unwrap()).await;
    unauthenticated.assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn tasks_can_only_be_assigned_to_members_once_memberships_are_known() {
    let app = spawn().await;
    let token = app.token(TokenSpec::org("org_as", "admin"));
    // No membership data yet: any well-formed user id is accepted.
    let task = app
        .post(
            "/v1/tasks",
            &token,
            json!({"title": "Early", "assignee_user_id": "user_anyone"}),
        )
        .await;
    assert_eq!(task.status, 201, "{}", task.json);

    deliver_ok(
        &app,
        &membership(
            "organizationMembership.created",
            "org_as",
            "user_alice",
            "admin",
            2_000,
        ),
        "applied",
    )
    .await;
    deliver_ok(
        &app,
        &membership(
            "organizationMembership.created",
            "org_as",
            "user_bob",
            "member",
            2_000,
        ),
        "applied",
    )
    .await;
    deliver_ok(
        &app,
        &membership(
            "organizationMembership.created",
            "org_elsewhere",
            "user_carol",
            "member",
            2_000,
        ),
        "applied",
    )
    .await;

    let ok = app
        .post(
            "/v1/tasks",
            &token,
            json!({"title": "Bob's", "assignee_user_id": "user_bob"}),
        )
        .await;
    assert_eq!(ok.status, 201, "{}", ok.json);
    let id = ok.json["id"].as_str().unwrap().to_owned();

    for stranger in ["user_carol", "user_nobody"] {
        let reply = app
            .post(
                "/v1/tasks",
                &token,
                json!({"title": "No", "assignee_user_id": stranger}),
            )
            .await;
        let problem = reply.assert_problem(422, "validation_failed");
        assert_eq!(problem["errors"][0]["field"], "assignee_user_id");
        let reply = app
            .patch(
                &format!("/v1/tasks/{id}"),
                &token,
                json!({"assignee_user_id": stranger}),
            )
            .await;
        let problem = reply.assert_problem(422, "validation_failed");
        assert_eq!(problem["errors"][0]["field"], "assignee_user_id");
    }
    let reply = app
        .patch(
            &format!("/v1/tasks/{id}"),
            &token,
            json!({"assignee_user_id": "user_alice"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    let reply = app
        .patch(
            &format!("/v1/tasks/{id}"),
            &token,
            json!({"assignee_user_id": null}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);

    // A removed member can no longer be assigned.
    deliver_ok(
        &app,
        &membership(
            "organizationMembership.deleted",
            "org_as",
            "user_bob",
            "member",
            3_000,
        ),
        "applied",
    )
    .await;
    let reply = app
        .post(
            "/v1/tasks",
            &token,
            json!({"title": "Gone", "assignee_user_id": "user_bob"}),
        )
        .await;
    reply.assert_problem(422, "validation_failed");
}

// ---- the deletion list matches the schema --------------------------------------------------

#[tokio::test]
async fn every_tenant_owned_table_is_deleted_with_its_tenant() {
    let app = spawn().await;
    let db = app.db.owner().await;
    let sql = if app.db.is_postgres() {
        "SELECT table_name AS name FROM information_schema.columns \
         WHERE table_schema = 'public' AND column_name = 'tenant_id' ORDER BY 1"
    } else {
        "SELECT m.name AS name FROM sqlite_master m JOIN pragma_table_info(m.name) c \
         WHERE m.type = 'table' AND c.name = 'tenant_id' ORDER BY 1"
    };
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            sql,
        ))
        .await
        .unwrap();
    let mut tables: Vec<String> = rows
        .iter()
        .map(|r| r.try_get::<String>("", "name").unwrap())
        .collect();
    tables.sort();
    let mut listed: Vec<String> = resonance_api::tenant::lifecycle::TENANT_OWNED_TABLES
        .iter()
        .map(|t| t.to_string())
        .collect();
    listed.sort();
    assert_eq!(
        tables, listed,
        "lifecycle::TENANT_OWNED_TABLES must name every table with a tenant_id"
    );
}
