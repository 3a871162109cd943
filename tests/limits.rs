//! Plans and limits: the per-workspace rate limit (in process and in Redis, shared by two
//! Apps, failing open when Redis goes away), monthly character quotas under concurrency and
//! across two Apps on one database, the custom-voice allowance, and what `/v1/me` and
//! `/v1/usage` show.
//!
//! Redis: `TEST_REDIS_URL` (default `redis://127.0.0.1:6379`). When it is set, a Redis test
//! fails if Redis is unreachable; when it is not, those tests are skipped with a note.

use std::io::Write;

use futures_util::future::join_all;
use resonance_api::config::{ConfigArgs, TtsProvider};
use resonance_tests::{
    Reply, TestApp, TokenSpec,
    fixtures::{create_voice, form, post_form, require_espeak, system_voice, wav},
    proxy::TcpProxy,
};
use serde_json::{Value, json};

/// A plans file for this test (kept until the test ends).
fn plans_file(plans: Value) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(plans.to_string().as_bytes()).unwrap();
    file
}

fn plan(rps: u32, burst: u32, characters: i64, voices: i64) -> Value {
    json!({"requests_per_second": rps, "burst": burst, "characters_per_month": characters,
           "max_custom_voices": voices, "features": []})
}

fn with_plans(args: &mut ConfigArgs, file: &tempfile::NamedTempFile) {
    args.plans_file = Some(file.path().to_owned());
}

fn token(app: &TestApp, org: &str) -> String {
    app.token(TokenSpec::org(org, "admin"))
}

#[tokio::test]
async fn a_workspace_over_its_rate_gets_429_and_another_workspace_does_not() {
    let plans = plans_file(json!({"default": "tiny", "plans": {"tiny": plan(1, 5, 1000, 1)}}));
    let app = TestApp::spawn_with(|args| with_plans(args, &plans)).await;
    let busy = token(&app, "org_busy");
    let calm = token(&app, "org_calm");
    for left in (0..5).rev() {
        let reply = app.get("/v1/me", &busy).await;
        assert_eq!(reply.status, 200, "{}", reply.json);
        assert_eq!(reply.header("ratelimit-policy"), Some("\"tiny\";q=5;w=5"));
        let expected = format!("\"tiny\";r={left};t=");
        let current = reply.header("ratelimit").unwrap();
        assert!(
            current.starts_with(&expected),
            "{current} after one more request"
        );
    }
    // Another token of the same workspace shares its bucket.
    let same_workspace = app.token(TokenSpec::org("org_busy", "member").user("user_bob"));
    let refused = app.get("/v1/projects", &same_workspace).await;
    let problem = refused.assert_problem(429, "rate_limited");
    assert_eq!(problem["type"], "/problems/rate_limited");
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_eq!(refused.header("ratelimit-policy"), Some("\"tiny\";q=5;w=5"));
    assert!(
        refused
            .header("ratelimit")
            .unwrap()
            .starts_with("\"tiny\";r=0;")
    );

    let other = app.get("/v1/projects", &calm).await;
    assert_eq!(other.status, 200, "{}", other.json);
    assert!(
        other
            .header("ratelimit")
            .unwrap()
            .starts_with("\"tiny\";r=4;")
    );
    // Routes outside /v1 are not counted.
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert!(health.headers().get("ratelimit").is_none());
}

#[tokio::test]
async fn me_and_usage_show_the_plan_and_machine_tokens_use_the_plan_last_seen() {
    let plans = plans_file(json!({"default": "free", "plans": {
        "free": plan(100, 100, 1000, 1),
        "pro": plan(100, 100, 50_000, 10),
    }}));
    let app = TestApp::spawn_with(|args| with_plans(args, &plans)).await;

    // No plan yet: a machine token of the workspace gets the default.
    app.clerk.add_machine_token("ak_acme", "org_acme", &[]);
    let me = app.get("/v1/me", "ak_acme").await;
    assert_eq!(me.status, 200, "{}", me.json);
    assert_eq!(me.json["plan_limits"]["name"], "free");

    let pro = app.token(TokenSpec::org("org_acme", "admin").extra(json!({"pla": "o:pro"})));
    let me = app.get("/v1/me", &pro).await;
    assert_eq!(me.json["plan"], "o:pro", "the existing fields stay");
    assert_eq!(me.json["tenant_id"], "org_acme");
    assert_eq!(
        me.json["plan_limits"],
        json!({"name": "pro", "requests_per_second": 100, "burst": 100,
               "characters_per_month": 50_000, "max_custom_voices": 10, "features": []})
    );
    // The machine token now gets the workspace's plan.
    let me = app.get("/v1/me", "ak_acme").await;
    assert_eq!(me.json["plan_limits"]["name"], "pro");
    // A plan the catalogue does not know: the default.
    let unknown = app.token(TokenSpec::org("org_other", "admin").extra(json!({"pla": "o:gold"})));
    let me = app.get("/v1/me", &unknown).await;
    assert_eq!(me.json["plan_limits"]["name"], "free");

    let usage = app.get("/v1/usage", &pro).await;
    assert_eq!(usage.status, 200, "{}", usage.json);
    let today = chrono::Utc::now().date_naive();
    let start: chrono::NaiveDate = usage.json["period_start"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let end: chrono::NaiveDate = usage.json["period_end"].as_str().unwrap().parse().unwrap();
    assert!(start <= today && today < end, "{}", usage.json);
    assert_eq!(usage.json["plan"], "pro");
    assert_eq!(usage.json["characters_used"], 0);
    assert_eq!(usage.json["characters_limit"], 50_000);
    assert_eq!(usage.json["custom_voices"], 0);
    assert_eq!(usage.json["custom_voices_limit"], 10);
}

/// One generation of `text` with `voice` on `app`.
async fn generate(app: &TestApp, token: &str, voice: &Value, text: &str) -> Reply {
    app.post(
        "/v1/generations",
        token,
        json!({"voice_id": voice["id"], "text": text}),
    )
    .await
}

fn espeak(args: &mut ConfigArgs) {
    args.tts_provider = TtsProvider::Espeak;
    args.tts_max_concurrency = 32;
    args.tts_max_per_tenant = 32;
}

#[tokio::test]
async fn twenty_concurrent_generations_on_two_apps_spend_exactly_the_allowance() {
    require_espeak();
    // Three characters a month; each generation costs one ("a", trimmed from " a ").
    let plans = plans_file(json!({"default": "tiny", "plans": {"tiny": plan(1000, 1000, 3, 1)}}));
    let first = TestApp::spawn_with(|args| {
        with_plans(args, &plans);
        espeak(args);
    })
    .await;
    // Two Apps on one database, as two replicas. SQLite is one process's database (two
    // processes writing one file at once meet "database is locked"): there, one App.
    let second = if first.db.is_postgres() {
        Some(
            TestApp::spawn_on(first.clerk.clone(), first.db.shared(), |args| {
                with_plans(args, &plans);
                espeak(args);
            })
            .await,
        )
    } else {
        None
    };
    let second = second.as_ref().unwrap_or(&first);
    let token = token(&first, "org_quota");
    let voice = system_voice(&first, &token, "Aria").await;

    let replies = join_all((0..20).map(|i| {
        let app = if i % 2 == 0 { &first } else { second };
        generate(app, &token, &voice, " a ")
    }))
    .await;
    let created: Vec<&Reply> = replies.iter().filter(|r| r.status == 201).collect();
    assert_eq!(
        created.len(),
        3,
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for reply in &created {
        assert_eq!(reply.header("x-character-count"), Some("1"));
    }
    for reply in replies.iter().filter(|r| r.status != 201) {
        let problem = reply.assert_problem(402, "quota_exceeded");
        assert_eq!(problem["characters_remaining"], 0);
        assert!(reply.header("x-character-count").is_none());
    }
    let used = first
        .db
        .query_one("SELECT characters_used FROM usage WHERE tenant_id = 'org_quota'")
        .await
        .unwrap();
    let used: i64 = used.try_get_by_index(0).unwrap();
    assert_eq!(used, 3);
    assert_eq!(first.db.count("generations").await, 3);
    let usage = second.get("/v1/usage", &token).await;
    assert_eq!(usage.json["characters_used"], 3);
    assert_eq!(usage.json["characters_limit"], 3);
    // Another workspace has an allowance of its own.
    let other = token_for(second, "org_other_quota");
    let reply = generate(second, &other, &voice, "Hi").await;
    assert_eq!(reply.status, 201, "{}", reply.json);
    assert_eq!(reply.header("x-character-count"), Some("2"));
}

fn token_for(app: &TestApp, org: &str) -> String {
    token(app, org)
}

#[tokio::test]
async fn a_failed_synthesis_gives_its_characters_back_and_too_long_a_text_is_refused() {
    let plans = plans_file(json!({"default": "tiny", "plans": {"tiny": plan(1000, 1000, 10, 1)}}));
    // A speech program that always fails.
    let app = TestApp::spawn_with(|args| {
        with_plans(args, &plans);
        args.tts_provider = TtsProvider::Espeak;
        args.espeak_path = "false".into();
    })
    .await;
    let token = token(&app, "org_fail");
    let voice = system_voice(&app, &token, "Aria").await;
    let failed = generate(&app, &token, &voice, "Grüße").await;
    failed.assert_problem(502, "upstream_failed");
    let usage = app.get("/v1/usage", &token).await;
    assert_eq!(
        usage.json["characters_used"], 0,
        "given back: {}",
        usage.json
    );

    let too_long = generate(&app, &token, &voice, "eleven char").await;
    let problem = too_long.assert_problem(402, "quota_exceeded");
    assert_eq!(problem["characters_remaining"], 10);
    assert_eq!(app.db.count("generations").await, 1, "only the failed one");
}

#[tokio::test]
async fn a_custom_voice_beyond_the_plan_answers_402() {
    let plans = plans_file(json!({"default": "one", "plans": {"one": plan(1000, 1000, 10, 1)}}));
    let app = TestApp::spawn_with(|args| with_plans(args, &plans)).await;
    let token = token(&app, "org_voices");
    create_voice(&app, &token, "First", &wav(16_000, 2.0)).await;
    let body = form(
        &[("name", "Mine"), ("language", "en-US")],
        Some(("sample.wav", "audio/wav", &wav(16_000, 2.0))),
    );
    let reply = post_form(&app, &token, body).await;
    reply.assert_problem(402, "plan_limit_reached");
    assert_eq!(app.db.count("voices WHERE tenant_id IS NOT NULL").await, 1);
    let usage = app.get("/v1/usage", &token).await;
    assert_eq!(usage.json["custom_voices"], 1);
    assert_eq!(usage.json["custom_voices_limit"], 1);
}

// ---- Redis ----------------------------------------------------------------------------------

/// The Redis to test against, or `None` (skip) when none is configured and none answers.
async fn redis_url() -> Option<String> {
    let configured = std::env::var("TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.trim().is_empty());
    let url = configured
        .clone()
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let address = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .rsplit('@')
        .next()
        .unwrap()
        .to_owned();
    match tokio::net::TcpStream::connect(&address).await {
        Ok(_) => Some(url),
        Err(e) if configured.is_some() => {
            panic!("TEST_REDIS_URL is set but Redis is unreachable: {e}")
        }
        Err(_) => {
            eprintln!("skipped: no Redis at {url} (set TEST_REDIS_URL to require one)");
            None
        }
    }
}

fn unique_prefix() -> String {
    format!("resonance-test:{}:", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn with_redis_two_apps_share_one_rate_budget() {
    let Some(redis) = redis_url().await else {
        return;
    };
    let plans = plans_file(json!({"default": "tiny", "plans": {"tiny": plan(1, 4, 1000, 1)}}));
    let prefix = unique_prefix();
    let configure = |args: &mut ConfigArgs| {
        with_plans(args, &plans);
        args.redis_url = Some(redis.clone());
        args.redis_key_prefix = prefix.clone();
    };
    let first = TestApp::spawn_with(configure).await;
    let second = TestApp::spawn_on(first.clerk.clone(), first.db.shared(), configure).await;
    let token = token(&first, "org_shared");
    let mut remaining = vec![];
    for app in [&first, &second, &first, &second] {
        let reply = app.get("/v1/me", &token).await;
        assert_eq!(reply.status, 200, "{}", reply.json);
        remaining.push(reply.header("ratelimit").unwrap().to_owned());
    }
    let left: Vec<&str> = remaining
        .iter()
        .map(|v| v.split(';').nth(1).unwrap())
        .collect();
    assert_eq!(left, ["r=3", "r=2", "r=1", "r=0"], "{remaining:?}");
    // The budget is spent on both Apps.
    for app in [&first, &second] {
        let refused = app.get("/v1/projects", &token).await;
        refused.assert_problem(429, "rate_limited");
        assert!(refused.header("retry-after").is_some());
    }
    // Another workspace is unaffected.
    let other = token_for(&second, "org_elsewhere");
    assert_eq!(second.get("/v1/projects", &other).await.status, 200);
}

#[tokio::test]
async fn when_redis_goes_away_requests_are_still_served() {
    let Some(redis) = redis_url().await else {
        return;
    };
    let target = redis
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let proxy = TcpProxy::start(&target).await;
    let plans = plans_file(json!({"default": "tiny", "plans": {"tiny": plan(1, 100, 1000, 1)}}));
    let prefix = unique_prefix();
    let app = TestApp::spawn_with(|args| {
        with_plans(args, &plans);
        args.redis_url = Some(format!("redis://{}/", proxy.address));
        args.redis_key_prefix = prefix.clone();
    })
    .await;
    let token = token(&app, "org_outage");
    for _ in 0..3 {
        assert_eq!(app.get("/v1/me", &token).await.status, 200);
    }
    proxy.cut();
    let started = std::time::Instant::now();
    for _ in 0..20 {
        let reply = app.get("/v1/projects", &token).await;
        assert_eq!(reply.status, 200, "{}", reply.json);
        assert!(reply.header("ratelimit").is_some());
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "served without waiting on Redis: {:?}",
        started.elapsed()
    );
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    proxy.restore();
}
