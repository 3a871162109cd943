//! Hostile input that must never reach the database or cost us much: text PostgreSQL cannot
//! store (U+0000) in any string input of the contract, and oversized request heads.

use resonance_tests::{
    Reply, TestApp,
    fixtures::{admin, create_project, create_task, form, id, post_form, wav},
};
use serde_json::{Value, json};

/// Follows a `$ref` into the document's components.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.rsplit('/').next().unwrap();
            &document["components"]["schemas"][name]
        }
        None => schema,
    }
}

fn is_string(schema: &Value) -> bool {
    match &schema["type"] {
        Value::String(t) => t == "string",
        Value::Array(types) => types.iter().any(|t| t == "string"),
        _ => schema["oneOf"]
            .as_array()
            .is_some_and(|options| options.iter().any(is_string)),
    }
}

#[tokio::test]
async fn every_string_input_with_a_nul_is_a_422_naming_it_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let token = app.token(admin("org_nul"));
    let project = create_project(&app, &token, "Kept").await;
    let task = create_task(&app, &token, json!({ "title": "kept" })).await;
    let document = Reply::send(app.client.get(app.url("/openapi.json")))
        .await
        .json;

    let mut checked = vec![];
    for (path, item) in document["paths"].as_object().unwrap() {
        if path.starts_with("/webhooks/") {
            continue; // signed raw bytes; covered by the webhook tests
        }
        // Any id will do: the check comes before routing and authentication.
        let concrete = path.replace("{id}", &id(&task));
        for (method, operation) in item.as_object().unwrap() {
            let method: reqwest::Method = method.to_uppercase().parse().unwrap();
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                if parameter["in"] != "query"
                    || !is_string(resolve(&document, &parameter["schema"]))
                {
                    continue;
                }
                let name = parameter["name"].as_str().unwrap();
                let url = app.url(&format!("{concrete}?{name}=a%00b"));
                let reply =
                    Reply::send(app.client.request(method.clone(), url).bearer_auth(&token)).await;
                let problem = reply.assert_problem(422, "validation_failed");
                assert_eq!(
                    problem["errors"][0]["field"], name,
                    "{method} {path} ?{name}"
                );
                checked.push(format!("{method} {path} ?{name}"));
            }
            let body = &operation["requestBody"]["content"]["application/json"]["schema"];
            if body.is_null() {
                continue;
            }
            let schema = resolve(&document, body);
            for (name, property) in schema["properties"].as_object().into_iter().flatten() {
                if !is_string(resolve(&document, property)) {
                    continue;
                }
                let reply = Reply::send(
                    app.client
                        .request(method.clone(), app.url(&concrete))
                        .bearer_auth(&token)
                        .json(&json!({ name: "a\u{0}b" })),
                )
                .await;
                let problem = reply.assert_problem(422, "validation_failed");
                assert_eq!(
                    problem["errors"][0]["field"],
                    name.as_str(),
                    "{method} {path} {name}"
                );
                checked.push(format!("{method} {path} {name}"));
            }
        }
    }
    for expected in [
        "POST /v1/tasks title",
        "POST /v1/tasks description",
        "PATCH /v1/tasks/{id} title",
        "POST /v1/projects name",
        "GET /v1/tasks ?q",
        "GET /v1/voices ?q",
        "POST /v1/generations text",
    ] {
        assert!(
            checked.iter().any(|c| c == expected),
            "swept {expected}: {checked:?}"
        );
    }

    // Nothing changed.
    let tasks = app.get("/v1/tasks", &token).await.json;
    assert_eq!(tasks["data"].as_array().unwrap().len(), 1);
    assert_eq!(tasks["data"][0]["title"], "kept");
    let projects = app.get("/v1/projects", &token).await.json;
    assert_eq!(projects["data"].as_array().unwrap().len(), 1);
    assert_eq!(projects["data"][0]["name"], project["name"]);

    // A NUL in a path parameter is a malformed id, never a server fault.
    let reply = app.get("/v1/tasks/a%00b", &token).await;
    assert!(
        [400, 404].contains(&reply.status),
        "a NUL in a path: {}",
        reply.status
    );
}

#[tokio::test]
async fn a_nul_in_any_text_field_of_the_voice_form_is_a_422_naming_it() {
    let app = TestApp::spawn().await;
    let token = app.token(admin("org_nul_form"));
    let sample = wav(16_000, 2.0);
    let valid = [
        ("name", "Narrator"),
        ("description", "Warm"),
        ("category", "narration"),
        ("language", "en-US"),
        ("gender", "female"),
    ];
    for (field, _) in valid {
        let fields: Vec<(&str, &str)> = valid
            .iter()
            .map(|(name, value)| (*name, if *name == field { "a\0b" } else { *value }))
            .collect();
        let body = form(&fields, Some(("s.wav", "audio/wav", &sample)));
        let reply = post_form(&app, &token, body).await;
        let problem = reply.assert_problem(422, "validation_failed");
        assert_eq!(problem["errors"][0]["field"], field);
    }
    let voices = app.get("/v1/voices?variant=custom", &token).await.json;
    assert_eq!(
        voices["data"].as_array().unwrap().len(),
        0,
        "nothing stored"
    );
}

#[tokio::test]
async fn a_request_head_over_16_kib_is_a_431_problem() {
    let app = TestApp::spawn().await;
    let token = app.token(admin("org_heads"));
    let big = "x".repeat(20 * 1024);
    let reply = Reply::send(
        app.client
            .get(app.url("/v1/tasks"))
            .bearer_auth(&token)
            .header("x-padding", &big),
    )
    .await;
    reply.assert_problem(431, "request_headers_too_large");

    // A Clerk token's size (up to 8 KiB) plus ordinary headers is well within the limit.
    let reply = Reply::send(
        app.client
            .get(app.url("/v1/tasks"))
            .bearer_auth(&token)
            .header("x-padding", "x".repeat(8 * 1024)),
    )
    .await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn a_json_body_that_is_not_an_object_is_a_422_and_creates_nothing() {
    let app = TestApp::spawn().await;
    let token = app.token(admin("org_shapes"));
    for body in [json!(["Launch"]), json!("Launch"), json!(7)] {
        let reply = app.post("/v1/projects", &token, body).await;
        let problem = reply.assert_problem(422, "validation_failed");
        assert_eq!(problem["errors"][0]["field"], "body");
    }
    let projects = app.get("/v1/projects", &token).await.json;
    assert_eq!(projects["data"].as_array().unwrap().len(), 0);
}
