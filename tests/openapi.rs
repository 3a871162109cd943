//! The API contract: the committed OpenAPI document, the served copy and the offline docs.

use resonance_tests::{Reply, TestApp};

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
    let reply = Reply::send(app.client.get(app.url("/openapi.json"))).await;
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
    let page = Reply::send(app.client.get(app.url("/docs"))).await;
    assert_eq!(page.status, 200);
    let html = String::from_utf8(page.bytes.clone()).unwrap();
    assert!(html.contains("/docs/swagger-ui-bundle.js"));
    assert!(!html.contains("https://"), "no CDN links");
    for asset in ["/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css"] {
        let reply = Reply::send(app.client.get(app.url(asset))).await;
        assert_eq!(reply.status, 200, "{asset}");
        assert!(reply.bytes.len() > 10_000, "{asset} is the real asset");
    }
}
