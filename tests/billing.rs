//! Billing with Polar, through HTTP against the real App and a Polar stand-in on loopback:
//! checkouts and the portal (who may, what Polar is sent, what the client gets), subscription
//! webhooks setting the workspace's effective plan (signatures, replays, out-of-order
//! deliveries, unknown types and customers), deletion, and billing left unconfigured.

use std::io::Write;

use resonance_api::config::TtsProvider;
use resonance_tests::{
    TestApp, TokenSpec,
    fixtures::{require_espeak, system_voice},
    polar::{
        self, PolarStandIn, Subscription, WEBHOOK_SECRET, deliver, deliver_ok, post_raw, sign,
    },
    webhooks,
};
use serde_json::{Value, json};

const ORIGIN: &str = "http://localhost:5173";
const PRO: &str = "prod_pro_monthly";
const TEAM_MONTHLY: &str = "prod_team_monthly";
const TEAM_YEARLY: &str = "prod_team_yearly";

struct Billing {
    app: TestApp,
    polar: PolarStandIn,
    _plans: tempfile::NamedTempFile,
}

fn plans_file() -> tempfile::NamedTempFile {
    let plan = |characters: i64, products: &[&str]| {
        json!({"requests_per_second": 1000, "burst": 1000, "characters_per_month": characters,
               "max_custom_voices": 1, "features": [], "polar_product_ids": products})
    };
    let catalogue = json!({"default": "free", "plans": {
        "free": plan(5, &[]),
        "pro": plan(1000, &[PRO]),
        "team": plan(5000, &[TEAM_MONTHLY, TEAM_YEARLY]),
    }});
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(catalogue.to_string().as_bytes()).unwrap();
    file
}

/// An App with billing configured against a fresh Polar stand-in, the SPA at [`ORIGIN`],
/// Clerk webhooks and espeak-ng.
async fn spawn() -> Billing {
    let polar = PolarStandIn::start();
    let plans = plans_file();
    let app = TestApp::spawn_with(|args| {
        polar.configure(args);
        args.plans_file = Some(plans.path().to_owned());
        args.cors_origins = vec![ORIGIN.into()];
        args.clerk_webhook_secret = Some(webhooks::secret());
        args.tts_provider = TtsProvider::Espeak;
    })
    .await;
    Billing {
        app,
        polar,
        _plans: plans,
    }
}

fn admin(app: &TestApp, org: &str) -> String {
    app.token(TokenSpec::org(org, "admin"))
}

fn checkout_body(plan: &str) -> Value {
    json!({"plan": plan, "success_url": format!("{ORIGIN}/billing/done?checkout_id={{CHECKOUT_ID}}")})
}

/// The effective plan as `/v1/usage` and `/v1/billing/subscription` show it.
async fn plan_of(app: &TestApp, token: &str) -> (String, i64, Value) {
    let usage = app.get("/v1/usage", token).await;
    assert_eq!(usage.status, 200, "{}", usage.json);
    let subscription = app.get("/v1/billing/subscription", token).await;
    assert_eq!(subscription.status, 200, "{}", subscription.json);
    assert_eq!(subscription.json["plan"], usage.json["plan"]);
    (
        usage.json["plan"].as_str().unwrap().to_owned(),
        usage.json["characters_limit"].as_i64().unwrap(),
        subscription.json,
    )
}

#[tokio::test]
async fn an_admin_gets_the_hosted_checkout_for_the_plans_products_and_workspace() {
    let Billing { app, polar, .. } = spawn().await;
    let token = admin(&app, "org_acme");
    let reply = app
        .post("/v1/billing/checkout", &token, checkout_body("team"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    let url = reply.json["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/checkout/polar_c_", polar.base_url)),
        "{url}"
    );
    let sent = polar.received();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].path, "/v1/checkouts/");
    assert_eq!(
        sent[0].authorization.as_deref(),
        Some(format!("Bearer {}", polar::ACCESS_TOKEN).as_str())
    );
    assert_eq!(sent[0].body["products"], json!([TEAM_MONTHLY, TEAM_YEARLY]));
    assert_eq!(sent[0].body["external_customer_id"], "org_acme");
    assert_eq!(
        sent[0].body["success_url"],
        checkout_body("team")["success_url"]
    );

    // The owner of a personal workspace manages its billing; the user is the customer.
    let personal = app.token(TokenSpec::personal("user_solo"));
    let reply = app
        .post("/v1/billing/checkout", &personal, checkout_body("pro"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    let sent = polar.received();
    assert_eq!(sent[1].body["products"], json!([PRO]));
    assert_eq!(sent[1].body["external_customer_id"], "user_solo");
}

#[tokio::test]
async fn members_may_read_the_subscription_but_not_manage_billing() {
    let Billing { app, polar, .. } = spawn().await;
    let member = app.token(TokenSpec::org("org_acme", "member").user("user_bob"));
    app.post("/v1/billing/checkout", &member, checkout_body("pro"))
        .await
        .assert_problem(403, "forbidden");
    app.post("/v1/billing/portal", &member, json!({}))
        .await
        .assert_problem(403, "forbidden");
    let reader = app.token(TokenSpec::org("org_acme", "reader").user("user_rae"));
    app.post("/v1/billing/checkout", &reader, checkout_body("pro"))
        .await
        .assert_problem(403, "forbidden");
    assert!(polar.received().is_empty());

    let reply = app.get("/v1/billing/subscription", &member).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(
        reply.json,
        json!({"plan": "free", "status": "none", "current_period_end": null, "cancel_at_period_end": false})
    );
    // The permission can be granted explicitly, as any other.
    let granted = app.token(
        TokenSpec::org("org_acme", "member")
            .user("user_bob")
            .permissions(&["org:billing:manage"]),
    );
    let reply = app
        .post("/v1/billing/checkout", &granted, checkout_body("pro"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
}

#[tokio::test]
async fn checkouts_go_only_to_known_plans_and_back_to_the_spa() {
    let Billing { app, polar, .. } = spawn().await;
    let token = admin(&app, "org_acme");
    for success_url in [
        "https://evil.example/phish",
        "http://localhost:5174/billing",
        "https://localhost:5173/billing",
        "//localhost:5173/billing",
        "/billing/done",
        "javascript:alert(1)",
        "not a url",
    ] {
        let reply = app
            .post(
                "/v1/billing/checkout",
                &token,
                json!({"plan": "pro", "success_url": success_url}),
            )
            .await;
        let problem = reply.assert_problem(422, "validation_failed");
        assert_eq!(
            problem["errors"][0]["field"], "success_url",
            "{success_url}"
        );
    }
    for plan in ["gold", "free", ""] {
        let reply = app
            .post("/v1/billing/checkout", &token, checkout_body(plan))
            .await;
        let problem = reply.assert_problem(422, "validation_failed");
        assert_eq!(problem["errors"][0]["field"], "plan", "{plan}");
    }
    assert!(polar.received().is_empty(), "nothing reached Polar");
}

#[tokio::test]
async fn the_portal_needs_a_completed_checkout() {
    let Billing { app, polar, .. } = spawn().await;
    let token = admin(&app, "org_acme");
    app.post("/v1/billing/portal", &token, json!({}))
        .await
        .assert_problem(404, "no_billing_account");
    assert!(polar.received().is_empty());

    // The checkout completes: Polar creates the customer and reports the subscription.
    polar.add_customer("org_acme");
    deliver_ok(
        &app,
        &Subscription::active("org_acme", PRO, polar_now()).event("subscription.created"),
        "applied",
    )
    .await;
    let reply = app.post("/v1/billing/portal", &token, json!({})).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    let url = reply.json["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!(
            "{}/portal?customer_session_token=",
            polar.base_url
        )),
        "{url}"
    );
    let sent = polar.received();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].path, "/v1/customer-sessions/");
    assert_eq!(sent[0].body, json!({"external_customer_id": "org_acme"}));
}

fn polar_now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn an_upgrade_raises_the_quota_from_the_next_generation() {
    require_espeak();
    let Billing { app, .. } = spawn().await;
    let token = admin(&app, "org_acme");
    let voice = system_voice(&app, &token, "Aria").await;
    let text = "Twenty characters!!";
    let refused = app
        .post(
            "/v1/generations",
            &token,
            json!({"voice_id": voice["id"], "text": text}),
        )
        .await;
    refused.assert_problem(402, "quota_exceeded");
    assert_eq!(plan_of(&app, &token).await.0, "free");

    deliver_ok(
        &app,
        &Subscription::active("org_acme", PRO, polar_now()).event("subscription.active"),
        "applied",
    )
    .await;
    let created = app
        .post(
            "/v1/generations",
            &token,
            json!({"voice_id": voice["id"], "text": text}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.json);
    let (plan, limit, subscription) = plan_of(&app, &token).await;
    assert_eq!((plan.as_str(), limit), ("pro", 1000));
    assert_eq!(subscription["status"], "active");
    assert_eq!(subscription["cancel_at_period_end"], false);
    assert!(subscription["current_period_end"].is_string());
    // The paid plan wins over the token's own.
    let claimed = app.token(TokenSpec::org("org_acme", "admin").extra(json!({"pla": "o:free"})));
    assert_eq!(plan_of(&app, &claimed).await.0, "pro");
    let me = app.get("/v1/me", &claimed).await;
    assert_eq!(me.json["plan_limits"]["name"], "pro", "{}", me.json);
}

#[tokio::test]
async fn a_revoked_subscription_drops_the_workspace_to_the_default_plan() {
    let Billing { app, .. } = spawn().await;
    let token = admin(&app, "org_acme");
    assert_eq!(plan_of(&app, &token).await.0, "free");
    let t = polar_now();
    let mut sub = Subscription::active("org_acme", TEAM_YEARLY, t - 100);
    deliver_ok(&app, &sub.event("subscription.created"), "applied").await;
    assert_eq!(plan_of(&app, &token).await.0, "team");

    // Canceled at the period's end: still served until then.
    sub.cancel_at_period_end = true;
    sub.ends_in = Some(86_400);
    sub.modified_at = t - 50;
    deliver_ok(&app, &sub.event("subscription.canceled"), "applied").await;
    let (plan, _, subscription) = plan_of(&app, &token).await;
    assert_eq!(plan, "team");
    assert_eq!(subscription["cancel_at_period_end"], true);

    // Revoked: the period is over.
    sub.status = "canceled".into();
    sub.ends_in = None;
    sub.ended_ago = Some(1);
    sub.modified_at = t;
    deliver_ok(&app, &sub.event("subscription.revoked"), "applied").await;
    let (plan, limit, subscription) = plan_of(&app, &token).await;
    assert_eq!((plan.as_str(), limit), ("free", 5));
    assert_eq!(subscription["status"], "canceled");
}

#[tokio::test]
async fn replays_and_older_deliveries_do_not_regress_the_state() {
    let Billing { app, .. } = spawn().await;
    let token = admin(&app, "org_acme");
    assert_eq!(plan_of(&app, &token).await.0, "free");
    let t = polar_now();
    let active = Subscription::active("org_acme", PRO, t);
    let first = deliver(&app, "msg_active", &active.event("subscription.active")).await;
    assert_eq!(first.json["outcome"], "applied", "{}", first.json);
    // The same delivery again: nothing changes.
    let again = deliver(&app, "msg_active", &active.event("subscription.active")).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json["outcome"], "duplicate");

    // An older state arriving late (created before it was active, or an earlier revocation of
    // the same subscription): stale.
    let mut older = active.clone();
    older.status = "incomplete".into();
    older.modified_at = t - 60;
    deliver_ok(&app, &older.event("subscription.created"), "stale").await;
    let mut older_revoked = active.clone();
    older_revoked.status = "canceled".into();
    older_revoked.ended_ago = Some(30);
    older_revoked.modified_at = t - 30;
    deliver_ok(&app, &older_revoked.event("subscription.revoked"), "stale").await;
    // The same version again under another id: stale too.
    deliver_ok(&app, &active.event("subscription.updated"), "stale").await;
    assert_eq!(plan_of(&app, &token).await.0, "pro");

    // An old subscription revoked after the customer subscribed anew does not end the new one.
    let mut old = Subscription::active("org_acme", TEAM_MONTHLY, t + 10);
    old.id = "sub_old".into();
    old.status = "canceled".into();
    old.ended_ago = Some(1);
    deliver_ok(&app, &old.event("subscription.revoked"), "stale").await;
    assert_eq!(plan_of(&app, &token).await.0, "pro");

    // The customer's whole state is authoritative when newer: no active subscription.
    let state = json!({
        "type": "customer.state_changed",
        "timestamp": chrono::Utc::now() + chrono::Duration::seconds(20),
        "data": {
            "id": "cus_polar_1", "external_id": "org_acme", "email": "billing@example.com",
            "created_at": "2026-01-01T00:00:00Z", "modified_at": null, "metadata": {},
            "active_subscriptions": [], "granted_benefits": [], "active_meters": []
        }
    });
    deliver_ok(&app, &state, "applied").await;
    let (plan, _, subscription) = plan_of(&app, &token).await;
    assert_eq!(plan, "free");
    assert_eq!(subscription["status"], "none");
}

#[tokio::test]
async fn customer_state_sets_the_plan_of_its_active_subscription() {
    let Billing { app, .. } = spawn().await;
    let token = admin(&app, "org_acme");
    assert_eq!(plan_of(&app, &token).await.0, "free");
    let state = json!({
        "type": "customer.state_changed",
        "timestamp": chrono::Utc::now(),
        "data": {
            "id": "cus_polar_1", "external_id": "org_acme", "email": "billing@example.com",
            "created_at": "2026-01-01T00:00:00Z", "modified_at": "2026-01-02T00:00:00Z",
            "metadata": {},
            "active_subscriptions": [{
                "id": "sub_9", "created_at": "2026-01-01T00:00:00Z", "modified_at": null,
                "status": "active", "amount": 2000, "currency": "usd",
                "recurring_interval": "month",
                "current_period_start": "2026-01-01T00:00:00Z",
                "current_period_end": chrono::Utc::now() + chrono::Duration::days(20),
                "cancel_at_period_end": false, "canceled_at": null,
                "started_at": "2026-01-01T00:00:00Z", "ends_at": null,
                "product_id": TEAM_MONTHLY, "discount_id": null, "metadata": {}, "meters": []
            }],
            "granted_benefits": [], "active_meters": []
        }
    });
    deliver_ok(&app, &state, "applied").await;
    let (plan, limit, subscription) = plan_of(&app, &token).await;
    assert_eq!((plan.as_str(), limit), ("team", 5000));
    assert_eq!(subscription["status"], "active");
}

#[tokio::test]
async fn bad_signatures_are_refused_and_change_nothing() {
    let Billing { app, .. } = spawn().await;
    let token = admin(&app, "org_acme");
    assert_eq!(plan_of(&app, &token).await.0, "free");
    let body = Subscription::active("org_acme", PRO, polar_now())
        .event("subscription.active")
        .to_string();
    let ts = polar_now();
    let headers = |signature: String| {
        vec![
            ("webhook-id", "msg_bad".to_string()),
            ("webhook-timestamp", ts.to_string()),
            ("webhook-signature", signature),
        ]
    };
    // Keyed with the secret's base64-decoded bytes (the `whsec_` convention), not Polar's.
    let decoded_key = {
        use base64::Engine;
        let encoded = WEBHOOK_SECRET.trim_start_matches("polar_whs_");
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap_or_default()
    };
    let with_decoded = {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&decoded_key).unwrap();
        mac.update(format!("msg_bad.{ts}.{body}").as_bytes());
        use base64::Engine;
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        )
    };
    for signature in [
        sign("another-secret", "msg_bad", ts, &body),
        sign(WEBHOOK_SECRET, "msg_other", ts, &body),
        sign(WEBHOOK_SECRET, "msg_bad", ts - 1, &body),
        with_decoded,
        "v1,".into(),
    ] {
        post_raw(&app, &headers(signature), &body)
            .await
            .assert_problem(400, "webhook_signature_invalid");
    }
    // The right signature over a tampered body.
    let tampered = body.replace(PRO, TEAM_MONTHLY);
    post_raw(
        &app,
        &headers(sign(WEBHOOK_SECRET, "msg_bad", ts, &body)),
        &tampered,
    )
    .await
    .assert_problem(400, "webhook_signature_invalid");
    // Too old, and missing headers.
    let old = ts - 301;
    post_raw(
        &app,
        &[
            ("webhook-id", "msg_bad".into()),
            ("webhook-timestamp", old.to_string()),
            (
                "webhook-signature",
                sign(WEBHOOK_SECRET, "msg_bad", old, &body),
            ),
        ],
        &body,
    )
    .await
    .assert_problem(400, "webhook_timestamp_out_of_tolerance");
    post_raw(&app, &headers(String::new())[..2], &body)
        .await
        .assert_problem(400, "webhook_headers_missing");

    assert_eq!(app.db.count("billing_accounts").await, 0);
    assert_eq!(app.db.count("webhook_deliveries").await, 0);
    assert_eq!(plan_of(&app, &token).await.0, "free");

    // Several signatures: one good one is enough.
    let good = sign(WEBHOOK_SECRET, "msg_bad", ts, &body);
    let reply = post_raw(
        &app,
        &headers(format!(
            "{} {good}",
            sign("rotated-away", "msg_bad", ts, &body)
        )),
        &body,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(plan_of(&app, &token).await.0, "pro");
}

#[tokio::test]
async fn unknown_types_and_strangers_are_accepted_and_ignored() {
    let Billing { app, .. } = spawn().await;
    let token = admin(&app, "org_acme");
    assert_eq!(plan_of(&app, &token).await.0, "free");
    deliver_ok(
        &app,
        &json!({"type": "order.paid", "timestamp": chrono::Utc::now(), "data": {"id": "ord_1"}}),
        "ignored",
    )
    .await;
    // A customer whose external id is no workspace of ours, or no workspace id at all.
    for stranger in ["org_never_seen", "cus-external-42"] {
        deliver_ok(
            &app,
            &Subscription::active(stranger, PRO, polar_now()).event("subscription.active"),
            "ignored",
        )
        .await;
    }
    assert_eq!(app.db.count("billing_accounts").await, 0);
    assert_eq!(app.db.count("webhook_deliveries").await, 3, "recorded");
    // A signed but malformed event of a handled type is refused.
    let reply = deliver(
        &app,
        "msg_malformed",
        &json!({"type": "subscription.active", "data": {"id": "sub_1"}}),
    )
    .await;
    reply.assert_problem(400, "invalid_event");
    assert_eq!(plan_of(&app, &token).await.0, "free");
}

#[tokio::test]
async fn deleting_the_workspace_removes_its_billing_record() {
    let Billing { app, .. } = spawn().await;
    let token = admin(&app, "org_gone");
    assert_eq!(plan_of(&app, &token).await.0, "free");
    let other = admin(&app, "org_stays");
    assert_eq!(plan_of(&app, &other).await.0, "free");
    for org in ["org_gone", "org_stays"] {
        deliver_ok(
            &app,
            &Subscription::active(org, PRO, polar_now()).event("subscription.active"),
            "applied",
        )
        .await;
    }
    assert_eq!(app.db.count("billing_accounts").await, 2);
    webhooks::deliver_ok(
        &app,
        &webhooks::deleted("organization.deleted", "org_gone", "organization"),
        "applied",
    )
    .await;
    assert_eq!(app.db.count("billing_accounts").await, 1);
    assert_eq!(plan_of(&app, &other).await.0, "pro");
    // A late Polar delivery about the deleted workspace does not bring the record back.
    let mut late = Subscription::active("org_gone", PRO, polar_now() + 5);
    late.id = "sub_late".into();
    deliver_ok(&app, &late.event("subscription.updated"), "ignored").await;
    assert_eq!(app.db.count("billing_accounts").await, 1);
}

#[tokio::test]
async fn without_a_polar_token_billing_answers_503_and_the_rest_works() {
    let app = TestApp::spawn().await;
    let token = admin(&app, "org_acme");
    for reply in [
        app.post("/v1/billing/checkout", &token, checkout_body("standard"))
            .await,
        app.post("/v1/billing/portal", &token, json!({})).await,
        app.get("/v1/billing/subscription", &token).await,
    ] {
        reply.assert_problem(503, "billing_not_configured");
        assert_eq!(reply.header("retry-after"), None, "retrying will not help");
    }
    let reply = polar::deliver(
        &app,
        "msg_1",
        &Subscription::active("org_acme", PRO, polar_now()).event("subscription.active"),
    )
    .await;
    reply.assert_problem(503, "service_unavailable");
    let usage = app.get("/v1/usage", &token).await;
    assert_eq!(usage.status, 200, "{}", usage.json);
    assert_eq!(usage.json["plan"], "standard");
}

#[tokio::test]
async fn a_polar_outage_answers_503_with_retry_after() {
    let Billing { app, polar, .. } = spawn().await;
    let token = admin(&app, "org_acme");
    for status in [500, 502, 429] {
        polar.set_failing(Some(status));
        let reply = app
            .post("/v1/billing/checkout", &token, checkout_body("pro"))
            .await;
        reply.assert_problem(503, "billing_unavailable");
        assert_eq!(reply.header("retry-after"), Some("5"));
    }
    // Polar refusing our credentials is our fault, not the client's: 502, nothing retried.
    polar.set_failing(Some(401));
    app.post("/v1/billing/checkout", &token, checkout_body("pro"))
        .await
        .assert_problem(502, "upstream_failed");
    polar.set_failing(None);

    // Nothing listening at all.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let plans = plans_file();
    let unreachable = TestApp::spawn_with(|args| {
        polar.configure(args);
        args.polar_api_url = address.clone();
        args.plans_file = Some(plans.path().to_owned());
        args.cors_origins = vec![ORIGIN.into()];
    })
    .await;
    let token = admin(&unreachable, "org_acme");
    let reply = unreachable
        .post("/v1/billing/checkout", &token, checkout_body("pro"))
        .await;
    reply.assert_problem(503, "billing_unavailable");
    assert_eq!(reply.header("retry-after"), Some("5"));
}

#[tokio::test]
async fn another_instance_serves_the_new_plan_within_a_second() {
    let Billing {
        app: first,
        polar,
        _plans: plans,
    } = spawn().await;
    let second = TestApp::spawn_on(first.clerk.clone(), first.db.shared(), |args| {
        polar.configure(args);
        args.plans_file = Some(plans.path().to_owned());
    })
    .await;
    let token = admin(&first, "org_acme");
    assert_eq!(plan_of(&first, &token).await.0, "free");
    // The second instance has read (and cached) the workspace's subscription: none.
    assert_eq!(plan_of(&second, &token).await.0, "free");

    deliver_ok(
        &first,
        &Subscription::active("org_acme", PRO, polar_now()).event("subscription.active"),
        "applied",
    )
    .await;
    let changed = std::time::Instant::now();
    assert_eq!(
        plan_of(&first, &token).await.0,
        "pro",
        "at once where delivered"
    );
    loop {
        // One request a round: two could straddle the moment the cache expires.
        let usage = second.get("/v1/usage", &token).await;
        let plan = usage.json["plan"].as_str().unwrap().to_owned();
        if plan == "pro" {
            break;
        }
        assert!(
            changed.elapsed() < std::time::Duration::from_millis(1500),
            "the other instance still serves {plan} after {:?}",
            changed.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
