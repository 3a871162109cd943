//! What every endpoint shares: health, readiness, docs, the OpenAPI contract, request ids,
//! CORS and problem+json for everything a client can get wrong.

use resonance_tests::{Reply, TestApp};

#[tokio::test]
async fn healthz_answers_without_the_database() {
    let app = TestApp::spawn().await;
    let reply = Reply::from(app.client.get(app.url("/healthz")).send().await.unwrap()).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json["status"], "ok");
    assert!(reply.header("x-request-id").is_some());
}

#[tokio::test]
async fn readyz_is_ready_with_a_database() {
    let app = TestApp::spawn().await;
    let reply = Reply::from(app.client.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json["status"], "ready");
}

#[tokio::test]
async fn committed_openapi_document_is_current() {
    let generated = resonance_api::openapi::document_json();
    let committed = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json"),
    )
    .expect("openapi/openapi.json is committed");
    assert!(
        committed == generated,
        "openapi/openapi.json is stale: run `cargo run -- openapi > openapi/openapi.json`"
    );
}

#[tokio::test]
async fn openapi_json_is_served_with_a_bearer_scheme() {
    let app = TestApp::spawn().await;
    let reply = Reply::from(
        app.client
            .get(app.url("/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json["openapi"], "3.1.0");
    assert_eq!(
        reply.json["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(reply.json["paths"]["/v1/me"]["get"].is_object());
}

#[tokio::test]
async fn docs_work_offline_from_vendored_assets() {
    let app = TestApp::spawn().await;
    let page = Reply::from(app.client.get(app.url("/docs")).send().await.unwrap()).await;
    assert_eq!(page.status, 200);
    let html = String::from_utf8(page.bytes.clone()).unwrap();
    assert!(html.contains("/docs/swagger-ui-bundle.js"));
    assert!(!html.contains("https://"), "no CDN links");
    for asset in ["/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css"] {
        let reply = Reply::from(app.client.get(app.url(asset)).send().await.unwrap()).await;
        assert_eq!(reply.status, 200, "{asset}");
        assert!(reply.bytes.len() > 10_000, "{asset} is the real asset");
    }
}

#[tokio::test]
async fn unknown_path_is_a_404_problem() {
    let app = TestApp::spawn().await;
    let reply = Reply::from(
        app.client
            .get(app.url("/no/such/thing"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    reply.assert_problem(404, "not_found");
}

#[tokio::test]
async fn wrong_method_is_a_405_problem() {
    let app = TestApp::spawn().await;
    let reply = Reply::from(app.client.delete(app.url("/healthz")).send().await.unwrap()).await;
    reply.assert_problem(405, "method_not_allowed");
}

#[tokio::test]
async fn client_request_id_is_echoed_and_bad_ones_replaced() {
    let app = TestApp::spawn().await;
    let reply = Reply::from(
        app.client
            .get(app.url("/healthz"))
            .header("x-request-id", "client-abc-123")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.header("x-request-id"), Some("client-abc-123"));

    let reply = Reply::from(
        app.client
            .get(app.url("/nowhere"))
            .header("x-request-id", "bad id with spaces")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let id = reply.header("x-request-id").unwrap().to_owned();
    assert_ne!(id, "bad id with spaces");
    assert_eq!(reply.json["request_id"], id);
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let app = TestApp::spawn_with(|args| {
        args.cors_origins = vec!["http://app.example.test".into()];
    })
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/v1/me"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let allowed = preflight("http://app.example.test").await.unwrap();
    assert_eq!(allowed.status().as_u16(), 200);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "http://app.example.test"
    );
    let refused = Reply::from(preflight("http://evil.example.test").await.unwrap()).await;
    assert!(refused.headers.get("access-control-allow-origin").is_none());
    assert!(refused.status >= 400 && refused.status < 500);
    assert_eq!(
        refused.header("content-type"),
        Some("application/problem+json")
    );
}

#[tokio::test]
async fn no_cors_origins_by_default() {
    let app = TestApp::spawn().await;
    let reply = app
        .client
        .get(app.url("/healthz"))
        .header("origin", "http://app.example.test")
        .send()
        .await
        .unwrap();
    assert!(reply.headers().get("access-control-allow-origin").is_none());
}

/// PostgreSQL only: the App reaches the database through a proxy the test cuts and restores.
#[tokio::test]
async fn readyz_goes_503_while_the_database_is_gone_and_recovers() {
    use resonance_tests::{ClerkStandIn, TestDatabase, proxy::TcpProxy};

    let db = TestDatabase::create().await;
    let Some(host) = db.postgres_host() else {
        eprintln!("needs PostgreSQL (TEST_DATABASE_URL) to take the database away");
        return;
    };
    let proxy = TcpProxy::start(&host).await;
    let via_proxy = db.app_url_via(&proxy.address);
    let app = TestApp::spawn_on(ClerkStandIn::start().await, db, |args| {
        args.database_url = Some(via_proxy);
    })
    .await;
    let readyz =
        || async { Reply::from(app.client.get(app.url("/readyz")).send().await.unwrap()).await };

    assert_eq!(readyz().await.status, 200);
    proxy.cut();
    let down = readyz().await;
    down.assert_problem(503, "service_unavailable");
    assert!(down.header("retry-after").is_some());
    assert_eq!(
        Reply::from(app.client.get(app.url("/healthz")).send().await.unwrap())
            .await
            .status,
        200,
        "liveness does not depend on the database"
    );
    proxy.restore();
    let mut status = 0;
    for _ in 0..20 {
        status = readyz().await.status;
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(status, 200, "ready again without a restart");
}
