//! What every endpoint shares over HTTP: problem+json for unknown paths, wrong methods and
//! malformed requests, request ids, CORS and the body limit.

use reqwest::Method;
use resonance_tests::{
    Reply, TestApp,
    fixtures::{admin, create_task, id},
};
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

const ORIGIN: &str = "http://app.example.test";

/// The headers a browser client reads; CORS must expose each on every response.
const EXPOSED: [&str; 13] = [
    "etag",
    "location",
    "retry-after",
    "www-authenticate",
    "x-request-id",
    "content-range",
    "accept-ranges",
    "content-length",
    "allow",
    "ratelimit",
    "ratelimit-policy",
    "idempotent-replayed",
    "x-character-count",
];

/// The comma-separated values of a header, lowercased.
fn listed(reply: &Reply, name: &str) -> Vec<String> {
    reply
        .headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .collect()
}

#[track_caller]
fn assert_cors(reply: &Reply, what: &str) {
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some(ORIGIN),
        "{what} ({}) carries Access-Control-Allow-Origin",
        reply.status
    );
    let exposed = listed(reply, "access-control-expose-headers");
    for name in EXPOSED {
        assert!(
            exposed.contains(&name.to_string()),
            "{what} exposes {name}: {exposed:?}"
        );
    }
    assert!(listed(reply, "vary").contains(&"origin".to_string()));
}

/// One error response of each kind, requested with `origin`, as (what, expected status, reply).
async fn errors_from(app: &TestApp, origin: &str) -> Vec<(&'static str, u16, Reply)> {
    let token = app.token(admin("org_acme"));
    let other = app.token(admin("org_other"));
    let task = create_task(app, &token, json!({ "title": "v1" })).await;
    let path = format!("/v1/tasks/{}", id(&task));
    let etag = app
        .get(&path, &token)
        .await
        .header("etag")
        .unwrap()
        .to_owned();
    let updated = app.patch(&path, &token, json!({ "title": "v2" })).await;
    assert_eq!(updated.status, 200);
    let send = |request: reqwest::RequestBuilder| Reply::send(request.header("origin", origin));
    let huge = format!("{{\"title\":\"{}\"}}", "a".repeat(1024 * 1024 + 10));
    vec![
        (
            "no token",
            401,
            send(app.client.get(app.url("/v1/me"))).await,
        ),
        (
            "unknown path",
            404,
            send(app.request(Method::GET, "/no/such/thing", &token)).await,
        ),
        (
            "another workspace's task",
            404,
            send(app.request(Method::GET, &path, &other)).await,
        ),
        (
            "unsupported method",
            405,
            send(app.request(Method::PUT, "/v1/tasks", &token)).await,
        ),
        (
            "stale If-Match",
            412,
            send(
                app.request(Method::PATCH, &path, &token)
                    .header("if-match", &etag)
                    .json(&json!({ "title": "lost" })),
            )
            .await,
        ),
        (
            "body too large",
            413,
            send(
                app.request(Method::POST, "/v1/tasks", &token)
                    .header("content-type", "application/json")
                    .body(huge),
            )
            .await,
        ),
        (
            "not JSON",
            415,
            send(
                app.request(Method::POST, "/v1/tasks", &token)
                    .header("content-type", "text/plain")
                    .body("{}"),
            )
            .await,
        ),
        (
            "invalid fields",
            422,
            send(
                app.request(Method::POST, "/v1/tasks", &token)
                    .json(&json!({ "title": "" })),
            )
            .await,
        ),
        (
            "malformed path parameter",
            400,
            send(app.request(Method::GET, "/v1/tasks/not-a-uuid", &token)).await,
        ),
        (
            "success",
            200,
            send(app.request(Method::GET, &path, &token)).await,
        ),
    ]
}

#[tokio::test]
async fn every_response_to_an_allowed_origin_carries_cors_headers() {
    let app = TestApp::spawn_with(|args| args.cors_origins = vec![ORIGIN.into()]).await;
    for (what, status, reply) in errors_from(&app, ORIGIN).await {
        assert_eq!(reply.status, status, "{what}: {}", reply.json);
        assert_cors(&reply, what);
        if status >= 400 {
            assert_eq!(
                reply.header("content-type"),
                Some("application/problem+json"),
                "{what}"
            );
            assert!(reply.header("x-request-id").is_some(), "{what}");
        }
    }
}

#[tokio::test]
async fn the_headers_an_error_is_read_by_survive_cors() {
    let app = TestApp::spawn_with(|args| args.cors_origins = vec![ORIGIN.into()]).await;
    let errors = errors_from(&app, ORIGIN).await;
    let reply = |what: &str| &errors.iter().find(|(w, ..)| *w == what).unwrap().2;
    let unauthorized = reply("no token").header("www-authenticate").unwrap();
    assert!(
        unauthorized.starts_with("Bearer resource_metadata=\"http"),
        "{unauthorized}"
    );
    assert_eq!(
        reply("unsupported method").header("allow"),
        Some("GET, POST")
    );
    assert_eq!(reply("invalid fields").json["errors"][0]["field"], "title");
}

#[tokio::test]
async fn disallowed_origins_get_no_cors_headers() {
    let app = TestApp::spawn_with(|args| args.cors_origins = vec![ORIGIN.into()]).await;
    for (what, _, reply) in errors_from(&app, "http://evil.example.test").await {
        assert!(
            reply.header("access-control-allow-origin").is_none(),
            "{what}"
        );
        assert!(
            reply.header("access-control-expose-headers").is_none(),
            "{what}"
        );
    }
}

/// The methods of each path in the published contract, uppercase and sorted.
async fn documented_methods(app: &TestApp) -> Vec<(String, Vec<String>)> {
    let document = Reply::send(app.client.get(app.url("/openapi.json"))).await;
    assert_eq!(document.status, 200);
    let paths = document.json["paths"].as_object().expect("paths");
    assert!(!paths.is_empty());
    paths
        .iter()
        .map(|(path, item)| {
            let mut methods: Vec<String> = item
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| {
                    [
                        "get", "put", "post", "delete", "options", "head", "patch", "trace",
                    ]
                    .contains(&k.as_str())
                })
                .map(|k| k.to_ascii_uppercase())
                .collect();
            methods.sort();
            (path.clone(), methods)
        })
        .collect()
}

#[tokio::test]
async fn every_405_names_the_documented_methods_in_allow() {
    let app = TestApp::spawn().await;
    let token = app.token(admin("org_acme"));
    for (path, documented) in documented_methods(&app).await {
        let concrete = path.replace("{id}", "0190a5c8-0000-7000-8000-000000000000");
        assert!(!concrete.contains('{'), "a test value for {path}");
        // HEAD is not served (a GET answers it) and OPTIONS only as a CORS preflight, so both
        // are 405s too, and Allow lists neither.
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] {
            if documented.iter().any(|m| m == method) {
                continue;
            }
            let reply = Reply::send(app.request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                &concrete,
                &token,
            ))
            .await;
            assert_eq!(reply.status, 405, "{method} {path}");
            if method != "HEAD" {
                reply.assert_problem(405, "method_not_allowed");
            }
            let mut allow: Vec<String> = reply
                .header("allow")
                .unwrap_or_else(|| panic!("{method} {path}: a 405 without Allow"))
                .split(',')
                .map(|m| m.trim().to_owned())
                .collect();
            allow.sort();
            assert_eq!(allow, documented, "Allow of {method} {path}");
        }
    }
}

#[tokio::test]
async fn preflight_allows_every_documented_method_and_the_request_headers() {
    let app = TestApp::spawn_with(|args| args.cors_origins = vec![ORIGIN.into()]).await;
    let headers = "authorization, content-type, if-match, if-none-match, idempotency-key, \
                   x-request-id, range";
    for (path, methods) in documented_methods(&app).await {
        let concrete = path.replace("{id}", "0190a5c8-0000-7000-8000-000000000000");
        for method in methods {
            let reply = Reply::send(
                app.client
                    .request(Method::OPTIONS, app.url(&concrete))
                    .header("origin", ORIGIN)
                    .header("access-control-request-method", &method)
                    .header("access-control-request-headers", headers),
            )
            .await;
            assert_eq!(reply.status, 200, "preflight of {method} {path}");
            assert_eq!(reply.header("access-control-allow-origin"), Some(ORIGIN));
            let allowed = listed(&reply, "access-control-allow-methods");
            assert!(
                allowed.contains(&method.to_ascii_lowercase()),
                "{allowed:?}"
            );
            let allowed = listed(&reply, "access-control-allow-headers");
            for header in headers.split(',').map(str::trim) {
                assert!(
                    allowed.contains(&header.to_string()),
                    "{header}: {allowed:?}"
                );
            }
        }
    }
}
