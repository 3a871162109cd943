//! What every endpoint shares over HTTP: problem+json for unknown paths, wrong methods and
//! malformed requests, request ids, CORS and the body limit.

use reqwest::Method;
use resonance_tests::{Reply, TestApp, fixtures::admin};
use serde_json::json;

#[tokio::test]
async fn unknown_path_is_a_404_problem() {
    let app = TestApp::spawn().await;
    let reply = Reply::send(app.client.get(app.url("/no/such/thing"))).await;
    reply.assert_problem(404, "not_found");
}

#[tokio::test]
async fn wrong_method_is_a_405_problem() {
    let app = TestApp::spawn().await;
    let reply = Reply::send(app.client.delete(app.url("/healthz"))).await;
    reply.assert_problem(405, "method_not_allowed");
}

#[tokio::test]
async fn client_request_id_is_echoed_and_bad_ones_replaced() {
    let app = TestApp::spawn().await;
    let reply = Reply::send(
        app.client
            .get(app.url("/healthz"))
            .header("x-request-id", "client-abc-123"),
    )
    .await;
    assert_eq!(reply.header("x-request-id"), Some("client-abc-123"));

    let reply = Reply::send(
        app.client
            .get(app.url("/nowhere"))
            .header("x-request-id", "bad id with spaces"),
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

#[tokio::test]
async fn malformed_requests_are_4xx_problems() {
    let app = TestApp::spawn().await;
    let token = app.token(admin("org_acme"));
    let send = |method: Method, path: &str, content_type: Option<&str>, body: Vec<u8>| {
        let mut request = app.request(method, path, &token).body(body);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        async move { Reply::send(request).await }
    };
    send(
        Method::POST,
        "/v1/tasks",
        Some("application/json"),
        b"{\"title\": ".to_vec(),
    )
    .await
    .assert_problem(400, "malformed_json");
    send(
        Method::POST,
        "/v1/tasks",
        Some("text/plain"),
        b"{\"title\":\"x\"}".to_vec(),
    )
    .await
    .assert_problem(415, "unsupported_media_type");
    send(
        Method::POST,
        "/v1/tasks",
        None,
        b"{\"title\":\"x\"}".to_vec(),
    )
    .await
    .assert_problem(415, "unsupported_media_type");
    let huge = format!(
        "{{\"title\":\"x\",\"description\":\"{}\"}}",
        "a".repeat(1024 * 1024 + 10)
    );
    send(
        Method::POST,
        "/v1/tasks",
        Some("application/json"),
        huge.into_bytes(),
    )
    .await
    .assert_problem(413, "payload_too_large");
    send(Method::GET, "/v1/tasks/not-a-uuid", None, vec![])
        .await
        .assert_problem(400, "invalid_path_parameter");
    send(Method::PUT, "/v1/tasks", None, vec![])
        .await
        .assert_problem(405, "method_not_allowed");
    assert_eq!(app.db.count("tasks").await, 0);
}

#[tokio::test]
async fn body_limit_is_configurable() {
    let app = TestApp::spawn_with(|args| args.body_limit_bytes = 64).await;
    let token = app.token(admin("org_acme"));
    app.post("/v1/tasks", &token, json!({ "title": "t".repeat(100) }))
        .await
        .assert_problem(413, "payload_too_large");
    let ok = app
        .post("/v1/tasks", &token, json!({ "title": "short" }))
        .await;
    assert_eq!(ok.status, 201);
}
