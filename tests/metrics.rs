//! `GET /metrics`: the series a scrape shows after real requests, that no tenant or user id
//! ever appears in it, and who may read it (token, separate address, production default).
//!
//! The recorder is one per process, shared by every App this file starts, and the tests run
//! in parallel: counts are compared before and after the requests, as "at least".

use std::{collections::BTreeMap, net::TcpListener};

use resonance_api::config::Environment;
use resonance_tests::{
    ClerkStandIn, Reply, TestApp, TestDatabase, TokenSpec,
    fixtures::{admin, require_espeak, system_voice},
};
use serde_json::json;

/// One sample of a scrape: metric name, labels, value.
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The samples of a Prometheus text exposition (label values here hold no `,` or `"`).
fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').expect("label=value");
                    (key.to_owned(), value.trim_matches('"').to_owned())
                })
                .collect();
            Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().expect("a number"),
            }
        })
        .collect()
}

/// A scrape, read as samples.
struct Scrape {
    text: String,
    samples: Vec<Sample>,
}

impl Scrape {
    async fn of(app: &TestApp) -> Scrape {
        let reply = Reply::send(app.client.get(app.url("/metrics"))).await;
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.bytes)
        );
        assert_eq!(
            reply.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        let text = String::from_utf8(reply.bytes).unwrap();
        Scrape {
            samples: samples(&text),
            text,
        }
    }

    /// The sum of the samples of `name` carrying every label in `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }
}

/// Asserts that the series grew by at least `at_least` between two scrapes.
#[track_caller]
fn grew(before: &Scrape, after: &Scrape, name: &str, labels: &[(&str, &str)], at_least: f64) {
    let delta = after.value(name, labels) - before.value(name, labels);
    assert!(
        delta >= at_least,
        "{name}{labels:?} grew by {delta}, expected at least {at_least}; scrape:\n{}",
        after.text
    );
}

#[tokio::test]
async fn requests_tokens_syntheses_and_pools_show_in_the_scrape() {
    require_espeak();
    let app = TestApp::spawn().await;
    let tenant = "org_metricstenant7f3a";
    let token = app.token(admin(tenant).user("user_metricsuser9c2e"));
    let before = Scrape::of(&app).await;

    let created = app
        .post("/v1/tasks", &token, json!({"title": "Counted"}))
        .await;
    assert_eq!(created.status, 201, "{}", created.json);
    let task_id = created.json["id"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        assert_eq!(app.get("/v1/tasks", &token).await.status, 200);
    }
    let task = app.get(&format!("/v1/tasks/{task_id}"), &token).await;
    assert_eq!(task.status, 200);
    let unknown = Reply::send(app.client.get(app.url("/no/such/path"))).await;
    assert_eq!(unknown.status, 404);
    let brew = Reply::send(app.client.request(
        reqwest::Method::from_bytes(b"BREW").unwrap(),
        app.url("/healthz"),
    ))
    .await;
    assert_eq!(brew.status, 405);
    let anonymous = Reply::send(app.client.get(app.url("/v1/tasks"))).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(app.get("/v1/tasks", "not-a-jwt").await.status, 401);
    assert_eq!(app.get("/v1/tasks", "ak_never_issued").await.status, 401);

    let voice = system_voice(&app, &token, "Aria").await;
    let spoken = app
        .post(
            "/v1/generations",
            &token,
            json!({"voice_id": voice["id"], "text": "Counted."}),
        )
        .await;
    assert_eq!(spoken.status, 201, "{}", spoken.json);

    let after = Scrape::of(&app).await;
    let requests = "http_requests_total";
    let get_tasks = [("route", "/v1/tasks"), ("method", "GET"), ("status", "200")];
    grew(&before, &after, requests, &get_tasks, 3.0);
    let get_task = [
        ("route", "/v1/tasks/{id}"),
        ("method", "GET"),
        ("status", "200"),
    ];
    grew(&before, &after, requests, &get_task, 1.0);
    let post = [
        ("route", "/v1/tasks"),
        ("method", "POST"),
        ("status", "201"),
    ];
    grew(&before, &after, requests, &post, 1.0);
    let unmatched = [("route", "unmatched"), ("method", "GET"), ("status", "404")];
    grew(&before, &after, requests, &unmatched, 1.0);
    let other_method = [
        ("route", "/healthz"),
        ("method", "other"),
        ("status", "405"),
    ];
    grew(&before, &after, requests, &other_method, 1.0);
    let unauthorized = [("route", "/v1/tasks"), ("method", "GET"), ("status", "401")];
    grew(&before, &after, requests, &unauthorized, 3.0);
    let scrape = [("route", "/metrics"), ("method", "GET"), ("status", "200")];
    grew(&before, &after, requests, &scrape, 1.0);

    let duration = "http_request_duration_seconds_count";
    grew(
        &before,
        &after,
        duration,
        &[("route", "/v1/tasks"), ("method", "GET")],
        6.0,
    );
    let bucket = after.value(
        "http_request_duration_seconds_bucket",
        &[("route", "/v1/tasks"), ("method", "GET"), ("le", "+Inf")],
    );
    let count = after.value(duration, &[("route", "/v1/tasks"), ("method", "GET")]);
    assert_eq!(bucket, count, "the +Inf bucket holds every request");
    assert!(
        after.value(
            "http_request_duration_seconds_sum",
            &[("route", "/v1/tasks")]
        ) > 0.0
    );

    let verifications = "auth_verifications_total";
    let accepted = [("kind", "session"), ("outcome", "accepted")];
    grew(&before, &after, verifications, &accepted, 7.0);
    let missing = [("kind", "none"), ("outcome", "missing")];
    grew(&before, &after, verifications, &missing, 1.0);
    let malformed = [("kind", "session"), ("outcome", "malformed")];
    grew(&before, &after, verifications, &malformed, 1.0);
    let unknown_key = [("kind", "api_key"), ("outcome", "unknown")];
    grew(&before, &after, verifications, &unknown_key, 1.0);
    grew(&before, &after, "auth_token_cache_hits_total", &[], 6.0);
    grew(&before, &after, "auth_token_cache_misses_total", &[], 2.0);
    assert!(after.value("auth_jwks_refreshes_total", &[("outcome", "success")]) >= 1.0);

    let synthesized = [("provider", "espeak"), ("outcome", "success")];
    grew(&before, &after, "speech_syntheses_total", &synthesized, 1.0);
    let synthesis_count = "speech_synthesis_duration_seconds_count";
    grew(
        &before,
        &after,
        synthesis_count,
        &[("provider", "espeak")],
        1.0,
    );

    let open = after.value("db_pool_connections", &[]);
    let idle = after.value("db_pool_idle_connections", &[]);
    let max = after.value("db_pool_max_connections", &[]);
    assert!(
        open >= 1.0 && idle <= open && open <= max,
        "{open} {idle} {max}"
    );

    // Label values are route templates, methods, statuses and reasons: never an id.
    for id in [
        tenant,
        "user_metricsuser9c2e",
        &task_id,
        "org_",
        "user_",
        "ak_never",
    ] {
        assert!(
            !after.text.contains(id),
            "{id} in the scrape:\n{}",
            after.text
        );
    }
}

#[tokio::test]
async fn synthesis_limits_count_their_rejections() {
    require_espeak();
    let app = TestApp::spawn_with(|args| args.tts_max_per_tenant = 1).await;
    let token = app.token(admin("org_metricsbusy"));
    let voice = system_voice(&app, &token, "Aria").await;
    let before = Scrape::of(&app).await;
    // A synthesis of this workspace in progress: the next one is refused.
    let busy = app
        .state
        .speech
        .limiter
        .acquire("org_metricsbusy")
        .await
        .unwrap();
    let refused = app
        .post(
            "/v1/generations",
            &token,
            json!({"voice_id": voice["id"], "text": "Refused."}),
        )
        .await;
    refused.assert_problem(429, "too_many_requests");
    drop(busy);
    let after = Scrape::of(&app).await;
    let tenant_limit = [("reason", "tenant_limit")];
    grew(
        &before,
        &after,
        "speech_rejections_total",
        &tenant_limit,
        1.0,
    );
    let limiter = [("limiter", "speech_per_tenant")];
    grew(
        &before,
        &after,
        "rate_limit_rejections_total",
        &limiter,
        1.0,
    );
}

const METRICS_TOKEN: &str = "metrics-scraper-token-0123456789";

#[tokio::test]
async fn a_metrics_token_is_required_once_configured() {
    let app = TestApp::spawn_with(|args| args.metrics_token = Some(METRICS_TOKEN.into())).await;
    let scrape = |token: Option<&str>| {
        let request = app.client.get(app.url("/metrics"));
        Reply::send(match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        })
    };
    scrape(None).await.assert_problem(401, "unauthorized");
    let wrong = scrape(Some("metrics-scraper-token-9876543210")).await;
    wrong.assert_problem(401, "unauthorized");
    let right = scrape(Some(METRICS_TOKEN)).await;
    assert_eq!(right.status, 200);
    assert!(String::from_utf8_lossy(&right.bytes).contains("http_requests_total"));
}

/// A loopback address nothing listens on now.
fn free_address() -> std::net::SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[tokio::test]
async fn a_separate_metrics_address_serves_only_metrics() {
    let bind = free_address();
    let app = TestApp::spawn_with(move |args| {
        args.metrics_bind = Some(bind);
        args.metrics_token = Some(METRICS_TOKEN.into());
    })
    .await;
    // Not on the API's port.
    let on_api = Reply::send(
        app.client
            .get(app.url("/metrics"))
            .bearer_auth(METRICS_TOKEN),
    )
    .await;
    on_api.assert_problem(404, "not_found");

    let url = format!("http://{bind}/metrics");
    let anonymous = Reply::send(app.client.get(&url)).await;
    anonymous.assert_problem(401, "unauthorized");
    let scraped = Reply::send(app.client.get(&url).bearer_auth(METRICS_TOKEN)).await;
    assert_eq!(scraped.status, 200);
    let text = String::from_utf8(scraped.bytes).unwrap();
    assert!(text.contains("db_pool_max_connections"), "{text}");
    // Only metrics there.
    let other = Reply::send(app.client.get(format!("http://{bind}/healthz"))).await;
    other.assert_problem(404, "not_found");
}

#[tokio::test]
async fn production_does_not_serve_metrics_without_a_token_or_address() {
    let clerk = ClerkStandIn::start().await;
    let db = TestDatabase::create().await;
    let owner = db.owner().await;
    resonance_api::db::migrate_up(&owner)
        .await
        .expect("migrations");
    owner.close().await.ok();
    let app = TestApp::spawn_on(clerk, db, |args| {
        args.environment = Environment::Production;
    })
    .await;
    assert_eq!(
        Reply::send(app.client.get(app.url("/healthz")))
            .await
            .status,
        200
    );
    let reply = Reply::send(app.client.get(app.url("/metrics"))).await;
    reply.assert_problem(404, "not_found");
}

#[tokio::test]
async fn a_token_spec_for_a_personal_workspace_is_not_a_label_either() {
    let app = TestApp::spawn().await;
    let token = app.token(TokenSpec::personal("user_metricspersonal42"));
    assert_eq!(app.get("/v1/me", &token).await.status, 200);
    let scrape = Scrape::of(&app).await;
    assert!(
        !scrape.text.contains("metricspersonal42"),
        "{}",
        scrape.text
    );
    assert!(scrape.value("http_requests_total", &[("route", "/v1/me")]) >= 1.0);
}
