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

/// Every creation links to the operations on what it created (the stateful fuzzer follows
/// these), and each link names an operation of the document by `operationId`.
#[tokio::test]
async fn creations_link_to_the_operations_on_the_created_resource() {
    let document: serde_json::Value =
        serde_json::from_str(&resonance_api::openapi::document_json()).unwrap();
    let mut operation_ids = std::collections::BTreeSet::new();
    let mut links = vec![];
    for item in document["paths"].as_object().unwrap().values() {
        for operation in item.as_object().unwrap().values() {
            operation_ids.insert(operation["operationId"].as_str().unwrap().to_owned());
            for (status, response) in operation["responses"].as_object().unwrap() {
                for link in response["links"]
                    .as_object()
                    .into_iter()
                    .flat_map(|l| l.values())
                {
                    links.push((
                        operation["operationId"].clone(),
                        status.clone(),
                        link.clone(),
                    ));
                }
            }
        }
    }
    for (source, status, link) in &links {
        let target = link["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{link}"));
        assert!(
            operation_ids.contains(target),
            "{source} {status} → {target}"
        );
        assert!(link["parameters"]["id"].is_string(), "{link}");
    }
    for (create, target) in [
        ("createProject", "deleteProject"),
        ("createTask", "updateTask"),
        ("createVoice", "getVoice"),
        ("createGeneration", "getGeneration"),
    ] {
        assert!(
            links.iter().any(|(s, status, l)| s == create
                && status == "201"
                && l["operationId"] == target
                && l["parameters"]["id"] == "$response.body#/id"),
            "{create} → {target}"
        );
    }
}

/// Texts that must not be blank say so with the one pattern the server's trimming agrees with.
#[tokio::test]
async fn not_blank_texts_share_one_pattern() {
    let json = resonance_api::openapi::document_json();
    let pattern = serde_json::to_string(resonance_api::rest::NOT_BLANK_TEXT_PATTERN).unwrap();
    assert!(json.matches(&pattern).count() >= 6, "{pattern}");
    let no_nul = serde_json::to_string(resonance_api::rest::NO_NUL_PATTERN).unwrap();
    assert!(json.matches(&no_nul).count() >= 5, "{no_nul}");
    assert!(
        !json.contains(r#""pattern": "\\S""#),
        "a bare \\S reads differently per dialect"
    );
    let language = serde_json::to_string(resonance_api::rest::LANGUAGE_PATTERN).unwrap();
    assert_eq!(json.matches(&language).count(), 3, "{language}");
}

/// Generated clients name their functions after `operationId`: every operation has one, no two
/// share it, and each reads `<verb><Resource>` in camelCase (`listTasks`, `getVoiceSample`).
#[tokio::test]
async fn operation_ids_are_unique_verb_resource_names() {
    let document: serde_json::Value =
        serde_json::from_str(&resonance_api::openapi::document_json()).unwrap();
    // `stream`: a Server-Sent Events stream (`streamEvents`).
    let verbs = [
        "list", "get", "create", "update", "delete", "receive", "stream",
    ];
    let mut seen = std::collections::BTreeMap::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            let verb = verbs.iter().find(|v| id.starts_with(*v));
            let rest = verb.map(|v| &id[v.len()..]).unwrap_or_default();
            assert!(
                verb.is_some()
                    && rest.starts_with(|c: char| c.is_ascii_uppercase())
                    && rest.chars().all(|c| c.is_ascii_alphanumeric()),
                "{method} {path}: operationId {id:?} is not <verb><Resource>"
            );
            if let Some(other) = seen.insert(id.to_owned(), format!("{method} {path}")) {
                panic!("operationId {id:?} names both {other} and {method} {path}");
            }
        }
    }
    assert!(seen.len() >= 28, "{} operations", seen.len());
}
