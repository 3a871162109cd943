//! Clerk authentication as a client sees it: which tokens get in, with what context, and what a
//! refused client is told. Tokens are real RS256 JWTs checked against a JWKS stand-in on
//! loopback; machine tokens against a stand-in of the Backend API verify endpoints.

use std::{
    collections::BTreeSet,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use resonance_api::{
    auth::{
        dev::{self, DevTokenSpec},
        inspect::{self, TokenCommand},
    },
    config::{Config, ConfigArgs, Environment},
    server,
};
use resonance_tests::{
    ClerkStandIn, Reply, TestApp, TestDatabase, TokenSpec, clerk, fixtures::now,
};
use serde_json::{Value, json};

const ALL: &[&str] = &[
    "org:billing:manage",
    "org:generations:create",
    "org:generations:read",
    "org:members:read",
    "org:projects:read",
    "org:projects:write",
    "org:tasks:read",
    "org:tasks:write",
    "org:voices:delete",
    "org:voices:read",
    "org:voices:write",
];

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn permissions(me: &Value) -> BTreeSet<String> {
    me["permissions"]
        .as_array()
        .expect("permissions is a list")
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect()
}

/// `GET /v1/me` must answer 200; returns the context.
async fn me(app: &TestApp, token: &str) -> Value {
    let reply = app.get("/v1/me", token).await;
    assert_eq!(reply.status, 200, "GET /v1/me: {}", reply.json);
    reply.json
}

/// A 401 problem whose `WWW-Authenticate` says `invalid_token`, describes the problem with
/// `expected` and points at the resource metadata, without echoing the token.
#[track_caller]
fn assert_invalid_token(reply: &Reply, token: &str, expected: &str, case: &str) {
    assert_eq!(reply.status, 401, "{case}: {}", reply.json);
    reply.assert_problem(401, "unauthorized");
    let challenge = reply
        .header("www-authenticate")
        .unwrap_or_else(|| panic!("{case}: no WWW-Authenticate"));
    assert!(challenge.starts_with("Bearer "), "{case}: {challenge}");
    assert!(
        challenge.contains("error=\"invalid_token\""),
        "{case}: {challenge}"
    );
    let description = challenge
        .split("error_description=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("{case}: no error_description in {challenge}"));
    assert!(
        description.to_lowercase().contains(expected),
        "{case}: description {description:?} should mention {expected:?}"
    );
    assert!(
        challenge.contains("resource_metadata=\"http://127.0.0.1:")
            && challenge.contains("/.well-known/oauth-protected-resource\""),
        "{case}: {challenge}"
    );
    assert!(!token.is_empty());
    let body = String::from_utf8_lossy(&reply.bytes);
    let signature = token.rsplit('.').next().unwrap_or(token);
    if signature.len() > 8 {
        assert!(
            !challenge.contains(signature),
            "{case}: the token is echoed"
        );
        assert!(!body.contains(signature), "{case}: the token is echoed");
    }
}

#[tokio::test]
async fn missing_token_is_a_401_bearer_challenge_with_resource_metadata() {
    let app = TestApp::spawn().await;
    let reply = Reply::send(app.client.get(app.url("/v1/me"))).await;
    reply.assert_problem(401, "unauthorized");
    let metadata_url = app.url("/.well-known/oauth-protected-resource");
    assert_eq!(
        reply.header("www-authenticate"),
        Some(format!("Bearer resource_metadata=\"{metadata_url}\"").as_str())
    );

    let metadata = Reply::send(app.client.get(&metadata_url)).await;
    assert_eq!(metadata.status, 200);
    assert_eq!(metadata.json["resource"], app.address);
    assert_eq!(
        metadata.json["authorization_servers"],
        json!([app.clerk.issuer()])
    );
    assert_eq!(metadata.json["bearer_methods_supported"], json!(["header"]));

    let reply = Reply::send(
        app.client
            .get(app.url("/v1/me"))
            .header("authorization", "Basic dXNlcjpwYXNz"),
    )
    .await;
    assert_invalid_token(&reply, "Basic dXNlcjpwYXNz", "bearer", "basic scheme");
}

#[tokio::test]
async fn session_token_gives_the_organization_context() {
    let app = TestApp::spawn().await;
    let token = app.token(TokenSpec::org("org_acme", "admin"));
    let me = me(&app, &token).await;
    assert_eq!(me["tenant_id"], "org_acme");
    assert_eq!(me["tenant_kind"], "organization");
    assert_eq!(me["user_id"], "user_alice");
    assert_eq!(me["session_id"], "sess_test");
    assert_eq!(me["org_role"], "admin");
    assert_eq!(me["org_slug"], "acme");
    assert_eq!(me["token_kind"], "session_token");
    assert_eq!(me["actor"], Value::Null);
    assert_eq!(permissions(&me), set(ALL));
    assert!(
        me.get("principal").is_none(),
        "internal fields stay internal"
    );
}

#[tokio::test]
async fn every_bad_session_token_is_a_401_saying_what_was_wrong() {
    let app = TestApp::spawn().await;
    let clerk = &app.clerk;
    let spec = TokenSpec::org("org_acme", "admin");
    let claims = |extra: Value| spec.clone().extra(extra).claims(&clerk.issuer());
    let good = clerk.sign_claims(&claims(json!({})));
    me(&app, &good).await;

    // The payload of another org, glued to the good token's header and signature.
    let tampered = {
        use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
        let parts: Vec<&str> = good.split('.').collect();
        let forged = URL_SAFE_NO_PAD
            .encode(claims(json!({"o": {"id": "org_victim", "rol": "admin"}})).to_string());
        format!("{}.{}.{}", parts[0], forged, parts[2])
    };
    let oversized = clerk.sign_claims(&claims(json!({"padding": "x".repeat(9000)})));
    let no_kid = clerk.current_key().sign_with_header(
        jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims(json!({})),
    );
    let mut weird_typ = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    weird_typ.kid = Some(clerk.current_key().kid);
    weird_typ.typ = Some("dpop+jwt".into());
    let weird_typ = clerk
        .current_key()
        .sign_with_header(weird_typ, &claims(json!({})));

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "alg none",
            clerk.unsigned_token(&claims(json!({}))),
            "algorithm none",
        ),
        (
            "HS256 with the public key as HMAC secret",
            clerk.hs256_with_public_key(&claims(json!({}))),
            "algorithm hs256",
        ),
        (
            "expired",
            clerk.sign_claims(&claims(json!({"exp": now() - 60}))),
            "expired",
        ),
        (
            "expired exactly at the skew",
            clerk.sign_claims(&claims(json!({"exp": now() - 5}))),
            "expired",
        ),
        (
            "not yet valid",
            clerk.sign_claims(&claims(json!({"nbf": now() + 60}))),
            "not yet valid",
        ),
        (
            "issued in the future",
            clerk.sign_claims(&claims(json!({"iat": now() + 60}))),
            "issued in the future",
        ),
        (
            "wrong issuer",
            clerk.sign_claims(&claims(json!({"iss": "https://evil.example"}))),
            "wrong issuer",
        ),
        (
            "no issuer",
            clerk.sign_claims(&claims(json!({"iss": null}))),
            "no iss",
        ),
        (
            "no subject",
            clerk.sign_claims(&claims(json!({"sub": null}))),
            "no sub",
        ),
        (
            "no expiry",
            clerk.sign_claims(&claims(json!({"exp": null}))),
            "no exp",
        ),
        (
            "unknown kid",
            clerk.sign_with_kid(&claims(json!({})), "ins_rotated_away"),
            "unknown signing key",
        ),
        ("no kid", no_kid, "no kid"),
        ("tampered payload", tampered, "bad signature"),
        ("not a JWT", "not-a-jwt".into(), "malformed"),
        ("garbage segments", "abc.def.ghi".into(), "malformed"),
        ("oversized", oversized, "larger than 8192 bytes"),
        (
            "pending session",
            clerk.sign_claims(&claims(json!({"sts": "pending"}))),
            "pending",
        ),
        ("unexpected typ", weird_typ, "typ"),
        (
            "claims of the wrong type",
            clerk.sign_claims(&claims(json!({"exp": "tomorrow"}))),
            "malformed claims",
        ),
    ];
    for (case, token, expected) in cases {
        let reply = app.get("/v1/me", &token).await;
        assert_invalid_token(&reply, &token, expected, case);
    }

    // Within the skew: a token that expired 3 s ago still counts (skew is 5 s).
    let lenient = clerk.sign_claims(&claims(json!({"exp": now() - 3, "iat": now() + 3})));
    me(&app, &lenient).await;
    // The good token is unaffected by all of the above.
    me(&app, &good).await;
}

#[tokio::test]
async fn authorized_parties_are_enforced_only_when_configured() {
    let app = TestApp::spawn_with(|args| {
        args.clerk_authorized_parties = vec![
            "http://localhost:5173".into(),
            "https://app.example.test".into(),
        ];
    })
    .await;
    let spec = TokenSpec::org("org_acme", "member");
    me(&app, &app.token(spec.clone())).await;
    me(
        &app,
        &app.token(
            spec.clone()
                .extra(json!({"azp": "https://app.example.test"})),
        ),
    )
    .await;
    let wrong = app.token(spec.clone().extra(json!({"azp": "https://evil.example"})));
    assert_invalid_token(&app.get("/v1/me", &wrong).await, &wrong, "azp", "wrong azp");
    let missing = app.token(spec.clone().extra(json!({"azp": null})));
    assert_invalid_token(
        &app.get("/v1/me", &missing).await,
        &missing,
        "no azp",
        "missing azp",
    );

    let open = TestApp::spawn().await;
    me(
        &open,
        &open.token(
            spec.clone()
                .extra(json!({"azp": "https://anything.example"})),
        ),
    )
    .await;
    me(&open, &open.token(spec.extra(json!({"azp": null})))).await;
}

#[tokio::test]
async fn roles_get_their_default_permissions() {
    let app = TestApp::spawn().await;
    let admin = me(&app, &app.token(TokenSpec::org("org_acme", "admin"))).await;
    assert_eq!(permissions(&admin), set(ALL));

    let member = me(&app, &app.token(TokenSpec::org("org_acme", "member"))).await;
    let mut expected = set(ALL);
    expected.remove("org:voices:delete");
    expected.remove("org:billing:manage");
    assert_eq!(
        permissions(&member),
        expected,
        "members cannot delete custom voices nor manage billing"
    );

    let reader = me(&app, &app.token(TokenSpec::org("org_acme", "reader"))).await;
    assert_eq!(
        permissions(&reader),
        set(&[
            "org:generations:read",
            "org:members:read",
            "org:projects:read",
            "org:tasks:read",
            "org:voices:read",
        ])
    );
    assert_eq!(reader["org_role"], "reader");

    let billing = me(&app, &app.token(TokenSpec::org("org_acme", "billing"))).await;
    assert_eq!(permissions(&billing), set(&["org:members:read"]));
    let billing = me(
        &app,
        &app.token(TokenSpec::org("org_acme", "billing").permissions(&["org:tasks:read"])),
    )
    .await;
    assert_eq!(
        permissions(&billing),
        set(&["org:members:read", "org:tasks:read"])
    );
}

#[tokio::test]
async fn explicit_permissions_replace_role_defaults_per_feature() {
    let app = TestApp::spawn().await;
    for spec in [
        TokenSpec::org("org_acme", "admin").permissions(&["org:tasks:read"]),
        TokenSpec::org("org_acme", "admin")
            .permissions(&["org:tasks:read"])
            .v1(),
    ] {
        let me = me(&app, &app.token(spec.clone())).await;
        let got = permissions(&me);
        assert!(got.contains("org:tasks:read"), "{spec:?}");
        assert!(
            !got.contains("org:tasks:write"),
            "the token speaks for tasks: {spec:?}"
        );
        assert!(
            got.contains("org:projects:write"),
            "other features keep the role defaults"
        );
        assert!(got.contains("org:voices:delete"));
    }
}

#[tokio::test]
async fn v1_and_v2_claims_mean_the_same() {
    let app = TestApp::spawn().await;
    for role in ["admin", "member", "reader"] {
        let v2 = me(&app, &app.token(TokenSpec::org("org_acme", role))).await;
        let v1 = me(&app, &app.token(TokenSpec::org("org_acme", role).v1())).await;
        assert_eq!(v1["org_role"], role, "org:{role} is normalised");
        for field in [
            "tenant_id",
            "tenant_kind",
            "org_role",
            "org_slug",
            "permissions",
            "user_id",
        ] {
            assert_eq!(v1[field], v2[field], "{role}: {field}");
        }
    }
}

#[tokio::test]
async fn v2_permissions_are_rebuilt_from_the_feature_bitmask() {
    let app = TestApp::spawn().await;
    let with = |fea: &str, per: &str, fpm: &str| {
        app.token(TokenSpec::org("org_acme", "member").extra(json!({
            "fea": fea,
            "pla": "o:pro_org",
            "o": {"id": "org_acme", "rol": "member", "slg": "acme", "per": per, "fpm": fpm},
        })))
    };
    let tasks = |me: &Value| -> BTreeSet<String> {
        permissions(me)
            .into_iter()
            .filter(|p| p.starts_with("org:tasks:"))
            .collect()
    };

    let both = me(&app, &with("o:tasks", "read,write", "3")).await;
    assert_eq!(tasks(&both), set(&["org:tasks:read", "org:tasks:write"]));
    let read = me(&app, &with("o:tasks", "read,write", "2")).await;
    assert_eq!(tasks(&read), set(&["org:tasks:read"]), "2 = 10: read only");
    let write = me(&app, &with("o:tasks", "read,write", "1")).await;
    assert_eq!(
        tasks(&write),
        set(&["org:tasks:write"]),
        "1 = 01: write only"
    );
    let none = me(&app, &with("o:tasks", "read,write", "0")).await;
    assert_eq!(
        tasks(&none),
        set(&[]),
        "the token speaks for tasks and grants nothing"
    );

    let several = me(
        &app,
        &with(
            "o:tasks,u:ai_assistant,o:projects,o:voices",
            "read,write,delete",
            "4,6,7",
        ),
    )
    .await;
    let got = permissions(&several);
    for p in [
        "org:tasks:read",
        "org:projects:read",
        "org:projects:write",
        "org:voices:read",
        "org:voices:write",
        "org:voices:delete",
    ] {
        assert!(got.contains(p), "{p} in {got:?}");
    }
    for p in ["org:tasks:write", "org:tasks:delete", "org:projects:delete"] {
        assert!(!got.contains(p), "{p} not in {got:?}");
    }
    assert!(
        got.contains("org:generations:create"),
        "uncovered features keep member defaults"
    );
    assert_eq!(
        several["features"],
        json!(["o:projects", "o:tasks", "o:voices", "u:ai_assistant"])
    );
    assert_eq!(several["plan"], "o:pro_org");
}

#[tokio::test]
async fn personal_workspace_and_impersonation() {
    let app = TestApp::spawn().await;
    let me_ = me(&app, &app.token(TokenSpec::personal("user_bob"))).await;
    assert_eq!(me_["tenant_id"], "user_bob");
    assert_eq!(me_["tenant_kind"], "personal");
    assert_eq!(me_["user_id"], "user_bob");
    assert_eq!(me_["org_role"], Value::Null);
    assert_eq!(permissions(&me_), set(ALL));

    let v1 = me(&app, &app.token(TokenSpec::personal("user_bob").v1())).await;
    assert_eq!(v1["tenant_id"], "user_bob");
    assert_eq!(permissions(&v1), set(ALL));

    let acted = me(
        &app,
        &app.token(
            TokenSpec::org("org_acme", "member").extra(json!({"act": {"sub": "user_support"}})),
        ),
    )
    .await;
    assert_eq!(acted["actor"], "user_support");
    assert_eq!(acted["user_id"], "user_alice");
}

#[tokio::test]
async fn rotated_keys_are_picked_up_without_restart() {
    let app = TestApp::spawn().await;
    let spec = TokenSpec::org("org_acme", "admin");
    me(&app, &app.token(spec.clone())).await;
    let old_key = app.clerk.current_key();

    app.clerk.publish(vec![clerk::key(1)]);
    let rotated = app.token(spec.clone().user("user_rotated"));
    let me_ = me(&app, &rotated).await;
    assert_eq!(me_["user_id"], "user_rotated");

    // The retired key no longer verifies fresh tokens.
    let retired = old_key.sign(&spec.clone().user("user_late").claims(&app.clerk.issuer()));
    assert_invalid_token(
        &app.get("/v1/me", &retired).await,
        &retired,
        "unknown signing key",
        "retired key",
    );
}

#[tokio::test]
async fn cached_keys_keep_working_while_the_jwks_endpoint_is_down() {
    let app = TestApp::spawn().await;
    let spec = TokenSpec::org("org_acme", "admin");
    me(&app, &app.token(spec.clone())).await;
    assert_eq!(app.clerk.jwks_fetches(), 1);

    app.clerk.set_failing(true);
    // A token never seen before, signed with the cached key.
    me(&app, &app.token(spec.clone().user("user_during_outage"))).await;

    // A key we cannot look up during the outage: not accepted, and not blamed on the client.
    let unknown = app
        .clerk
        .sign_with_kid(&spec.claims(&app.clerk.issuer()), "ins_new_key");
    let reply = app.get("/v1/me", &unknown).await;
    reply.assert_problem(503, "service_unavailable");
    assert_eq!(reply.header("retry-after"), Some("5"));
    assert_eq!(
        app.clerk.jwks_fetches(),
        2,
        "one refresh attempt for the unknown kid"
    );

    // The failed refresh did not drop the cached keys.
    me(&app, &app.token(spec.clone().user("user_still_fine"))).await;
    app.clerk.set_failing(false);
    me(&app, &app.token(spec.user("user_after"))).await;
}

#[tokio::test]
async fn a_flood_of_unknown_kids_causes_at_most_one_refresh() {
    let app = TestApp::spawn().await;
    let spec = TokenSpec::org("org_acme", "admin");
    me(&app, &app.token(spec.clone())).await;
    let before = app.clerk.jwks_fetches();
    assert_eq!(before, 1);

    let claims = spec.claims(&app.clerk.issuer());
    let tokens: Vec<String> = (0..50)
        .map(|_| {
            app.clerk
                .sign_with_kid(&claims, &format!("kid_{}", uuid::Uuid::new_v4()))
        })
        .collect();
    let mut requests = tokio::task::JoinSet::new();
    for token in tokens.clone() {
        let request = app.request(reqwest::Method::GET, "/v1/me", &token);
        requests.spawn(async move { (Reply::send(request).await, token) });
    }
    while let Some(done) = requests.join_next().await {
        let (reply, token) = done.unwrap();
        assert_invalid_token(&reply, &token, "unknown signing key", "random kid");
    }
    assert!(
        app.clerk.jwks_fetches() <= before + 1,
        "{} JWKS fetches for 50 unknown kids",
        app.clerk.jwks_fetches()
    );
    me(&app, &app.token(spec.user("user_after_flood"))).await;
}

#[tokio::test]
async fn a_cached_token_still_expires_on_time() {
    let app = TestApp::spawn_with(|args| args.clerk_clock_skew_secs = 0).await;
    let mut spec = TokenSpec::org("org_acme", "admin");
    spec.lifetime_secs = 2;
    let token = app.token(spec);
    me(&app, &token).await;
    me(&app, &token).await;
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_invalid_token(
        &app.get("/v1/me", &token).await,
        &token,
        "expired",
        "after exp",
    );
}

#[tokio::test]
async fn oauth_access_tokens_in_jwt_form_are_verified_locally() {
    let app = TestApp::spawn().await;
    let claims = json!({
        "iss": app.clerk.issuer(),
        "sub": "user_bob",
        "client_id": "client_abc",
        "scope": "tasks:read org:projects:write",
        "iat": now(),
        "exp": now() + 300,
        "jti": "oat_jwt_1",
    });
    let token = app.clerk.access_token_jwt(&claims);
    let me_ = me(&app, &token).await;
    assert_eq!(me_["token_kind"], "oauth_token");
    assert_eq!(me_["tenant_id"], "user_bob");
    assert_eq!(me_["tenant_kind"], "personal");
    assert_eq!(
        permissions(&me_),
        set(&["org:projects:write", "org:tasks:read"])
    );
    assert_eq!(app.clerk.verify_calls(), 0, "no Backend API call for a JWT");

    let mut expired = claims.clone();
    expired["exp"] = json!(now() - 60);
    let expired = app.clerk.access_token_jwt(&expired);
    assert_invalid_token(
        &app.get("/v1/me", &expired).await,
        &expired,
        "expired",
        "oauth jwt",
    );
}

#[tokio::test]
async fn machine_tokens_are_verified_by_the_backend_api() {
    let app = TestApp::spawn().await;
    let clerk = &app.clerk;
    clerk.add_machine_token(
        "ak_org_key",
        "org_acme",
        &["tasks:read", "org:projects:write"],
    );
    clerk.add_machine_token("oat_user_token", "user_bob", &[]);
    clerk.set_machine_token(
        "mt_machine",
        json!({
            "object": "m2m_token", "id": "mt_id_1", "subject": "mch_worker",
            "scopes": ["tasks:write"], "claims": {"org_id": "org_acme"},
            "revoked": false, "expired": false, "expiration": null,
        }),
    );
    clerk.set_machine_token(
        "mt_orphan",
        json!({
            "object": "m2m_token", "id": "mt_id_2", "subject": "mch_lonely",
            "scopes": [], "claims": null, "revoked": false, "expired": false, "expiration": null,
        }),
    );

    let key = me(&app, "ak_org_key").await;
    assert_eq!(key["tenant_id"], "org_acme");
    assert_eq!(key["tenant_kind"], "organization");
    assert_eq!(key["token_kind"], "api_key");
    assert_eq!(key["user_id"], Value::Null);
    assert_eq!(
        permissions(&key),
        set(&["org:projects:write", "org:tasks:read"])
    );

    let oauth = me(&app, "oat_user_token").await;
    assert_eq!(oauth["tenant_id"], "user_bob");
    assert_eq!(oauth["tenant_kind"], "personal");
    assert_eq!(oauth["token_kind"], "oauth_token");
    assert_eq!(
        permissions(&oauth),
        set(&[
            "org:generations:read",
            "org:members:read",
            "org:projects:read",
            "org:tasks:read",
            "org:voices:read",
        ]),
        "no scopes = read-only"
    );

    let machine = me(&app, "mt_machine").await;
    assert_eq!(machine["tenant_id"], "org_acme");
    assert_eq!(machine["token_kind"], "m2m_token");
    assert_eq!(permissions(&machine), set(&["org:tasks:write"]));

    let orphan = app.get("/v1/me", "mt_orphan").await;
    assert_invalid_token(
        &orphan,
        "mt_orphan",
        "no organization",
        "machine without org",
    );

    // Results are cached: a second request does not ask Clerk again.
    let calls = clerk.verify_calls();
    me(&app, "ak_org_key").await;
    assert_eq!(clerk.verify_calls(), calls);
}

#[tokio::test]
async fn revoked_expired_and_unknown_machine_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let clerk = &app.clerk;
    clerk.add_machine_token("ak_revoked", "org_acme", &["tasks:read"]);
    clerk.revoke("ak_revoked");
    clerk.set_machine_token(
        "mt_expired",
        json!({
            "object": "m2m_token", "id": "mt_id", "subject": "org_acme", "scopes": [],
            "claims": null, "revoked": false, "expired": true,
            "expiration": chrono::Utc::now().timestamp_millis() - 1000,
        }),
    );
    for (token, expected) in [
        ("ak_revoked", "revoked"),
        ("mt_expired", "expired"),
        ("ak_unknown", "unknown token"),
        ("oat_unknown", "unknown token"),
    ] {
        let reply = app.get("/v1/me", token).await;
        assert_invalid_token(&reply, token, expected, token);
    }
}

#[tokio::test]
async fn machine_tokens_answer_503_when_clerk_is_unreachable() {
    let app = TestApp::spawn().await;
    app.clerk
        .add_machine_token("ak_fine", "org_acme", &["tasks:read"]);
    app.clerk.set_failing(true);
    let reply = app.get("/v1/me", "ak_fine").await;
    reply.assert_problem(503, "service_unavailable");
    assert_eq!(reply.header("retry-after"), Some("5"));
    // The failure is not cached: once Clerk answers, the token works.
    app.clerk.set_failing(false);
    me(&app, "ak_fine").await;

    // A Backend API that is not there at all.
    let gone = TestApp::spawn_with(|args| args.clerk_api_url = "http://127.0.0.1:9".into()).await;
    let reply = gone.get("/v1/me", "ak_fine").await;
    reply.assert_problem(503, "service_unavailable");
    assert!(reply.header("retry-after").is_some());
}

#[tokio::test]
async fn a_revoked_machine_token_stops_working_within_the_cache_ttl() {
    let app = TestApp::spawn_with(|args| args.clerk_machine_token_cache_secs = 1).await;
    app.clerk
        .add_machine_token("ak_soon_revoked", "org_acme", &["tasks:read"]);
    me(&app, "ak_soon_revoked").await;
    app.clerk.revoke("ak_soon_revoked");
    me(&app, "ak_soon_revoked").await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let reply = app.get("/v1/me", "ak_soon_revoked").await;
    assert_invalid_token(&reply, "ak_soon_revoked", "revoked", "after the TTL");
}

/// One flood request: a random, well-formed API key no one issued.
async fn random_api_key(client: &reqwest::Client, url: &str) -> Reply {
    let token = format!("ak_{:032x}", rand::random::<u128>());
    Reply::send(client.get(url).bearer_auth(token)).await
}

#[tokio::test]
async fn a_flood_of_random_machine_tokens_costs_clerk_a_few_calls() {
    // The defaults: 10 verifications a second per address, bursts of 20.
    let app = TestApp::spawn().await;
    let clerk = &app.clerk;
    clerk.add_machine_token("ak_legit", "org_acme", &["tasks:read"]);
    clerk.add_machine_token("ak_elsewhere", "org_acme", &["tasks:read"]);
    // The legitimate key was verified (and cached) before the flood: cache hits are never
    // limited. (A key first seen during the flood from the flooding address would wait for
    // the bucket like any other token from there.)
    me(&app, "ak_legit").await;
    let before = clerk.verify_calls();

    const FLOOD: usize = 5_000;
    const AT_ONCE: usize = 32;
    let url = app.url("/v1/me");
    let sent = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..AT_ONCE {
        let (client, url, sent) = (app.client.clone(), url.clone(), sent.clone());
        flood.spawn(async move {
            let (mut unauthorized, mut limited) = (0, 0);
            while sent.fetch_add(1, Ordering::Relaxed) < FLOOD {
                let reply = random_api_key(&client, &url).await;
                match reply.status {
                    401 => unauthorized += 1,
                    429 => {
                        reply.assert_problem(429, "too_many_requests");
                        let wait: u64 = (reply.header("retry-after"))
                            .and_then(|v| v.parse().ok())
                            .expect("429 carries Retry-After in seconds");
                        assert!((1..=5).contains(&wait), "Retry-After {wait}");
                        limited += 1;
                    }
                    other => panic!("a flood request answered {other}: {}", reply.json),
                }
            }
            (unauthorized, limited)
        });
    }
    // Meanwhile the cached key keeps working from the flooding address, and a key first seen
    // from another address is verified: that address has a bucket of its own.
    let elsewhere = reqwest::Client::builder()
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .build()
        .unwrap();
    let mut legit_ok = 0;
    while sent.load(Ordering::Relaxed) < FLOOD {
        me(&app, "ak_legit").await;
        legit_ok += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let other = Reply::send(elsewhere.get(&url).bearer_auth("ak_elsewhere")).await;
    assert_eq!(other.status, 200, "another address: {}", other.json);

    let (mut unauthorized, mut limited) = (0, 0);
    while let Some(counts) = flood.join_next().await {
        let (u, l) = counts.unwrap();
        unauthorized += u;
        limited += l;
    }
    let elapsed = started.elapsed();
    let calls = clerk.verify_calls() - before;
    // The burst, what refilled while the flood lasted, the other address's key, some slack.
    let allowed = 20 + (10.0 * elapsed.as_secs_f64()).ceil() as usize + 1 + 3;
    println!(
        "flood of {FLOOD} random API keys in {elapsed:?}: {unauthorized} × 401, {limited} × 429, \
         {calls} Backend API calls (allowed {allowed}); the cached key answered {legit_ok} times"
    );
    assert_eq!(unauthorized + limited, FLOOD);
    assert!(calls <= allowed, "{calls} Backend API calls for the flood");
    assert_eq!(
        unauthorized,
        calls - 1,
        "each 401 was one call, each 429 none"
    );
    assert!(legit_ok > 0);

    // A refused token is refused from the cache, even from an address with an empty bucket.
    let calls = clerk.verify_calls();
    let unknown = "ak_never_issued";
    let _ = app.get("/v1/me", unknown).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let first = app.get("/v1/me", unknown).await;
    let calls_after_first = clerk.verify_calls();
    for _ in 0..50 {
        let again = app.get("/v1/me", unknown).await;
        assert_invalid_token(&again, unknown, "unknown token", "cached refusal");
    }
    assert_invalid_token(&first, unknown, "unknown token", "refusal");
    assert!(clerk.verify_calls() - calls <= 1);
    assert_eq!(clerk.verify_calls(), calls_after_first);
}

/// An App with no Clerk settings at all (a fresh clone on a laptop).
async fn spawn_without_clerk() -> TestApp {
    let clerk = ClerkStandIn::start().await;
    let db = TestDatabase::create().await;
    TestApp::spawn_on(clerk, db, |args| {
        args.clerk_secret_key = None;
        args.clerk_issuer = None;
        args.clerk_jwks_url = None;
        args.clerk_api_url = ConfigArgs::default().clerk_api_url;
    })
    .await
}

#[tokio::test]
async fn development_tokens_work_end_to_end_without_clerk() {
    let app = spawn_without_clerk().await;
    let key = dev::load_or_create(&app.data_path()).expect("the dev key");
    assert!(app.data_path().join(dev::KEY_FILE).exists());
    let spec = DevTokenSpec {
        org: Some("org_demo".into()),
        role: "admin".into(),
        user: "user_dev".into(),
        perms: vec![],
        v1: false,
        ttl: 600,
    };
    let token = dev::mint(&key, &spec, now()).unwrap();
    let me_ = me(&app, &token).await;
    assert_eq!(me_["tenant_id"], "org_demo");
    assert_eq!(me_["org_role"], "admin");
    assert_eq!(me_["user_id"], "user_dev");
    assert_eq!(me_["token_kind"], "development_token");
    assert_eq!(permissions(&me_), set(ALL));

    let reader = dev::mint(
        &key,
        &DevTokenSpec {
            role: "reader".into(),
            perms: vec!["org:tasks:write".into(), "tasks:read".into()],
            v1: true,
            ..spec.clone()
        },
        now(),
    )
    .unwrap();
    let reader = me(&app, &reader).await;
    assert_eq!(reader["org_role"], "reader");
    let got = permissions(&reader);
    assert!(got.contains("org:tasks:write") && got.contains("org:tasks:read"));
    assert!(!got.contains("org:projects:write"));

    let personal = dev::mint(
        &key,
        &DevTokenSpec {
            org: None,
            ..spec.clone()
        },
        now(),
    )
    .unwrap();
    assert_eq!(me(&app, &personal).await["tenant_id"], "user_dev");

    // A Clerk session token means nothing to a server without Clerk settings.
    let clerk_token = app.token(TokenSpec::org("org_acme", "admin"));
    assert_eq!(app.get("/v1/me", &clerk_token).await.status, 401);

    // The same development token is refused as soon as Clerk is configured.
    let with_clerk = TestApp::spawn().await;
    let reply = with_clerk.get("/v1/me", &token).await;
    assert_invalid_token(
        &reply,
        &token,
        "development tokens are accepted only",
        "dev token",
    );
    assert_eq!(
        with_clerk.clerk.jwks_fetches(),
        0,
        "refused before any key lookup"
    );
}

#[tokio::test]
async fn production_without_a_way_to_verify_tokens_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let args = ConfigArgs {
        environment: Environment::Production,
        database_url: Some(format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("p.db").display()
        )),
        data_dir: dir.path().to_owned(),
        ..ConfigArgs::default()
    };
    let config = Config::from_args(&args).unwrap();
    let Err(err) = server::prepare(config).await else {
        panic!("production started without Clerk");
    };
    let message = format!("{err:#}");
    assert!(!message.contains('\n'), "one line: {message}");
    assert!(message.contains("CLERK_PUBLISHABLE_KEY"), "{message}");
    assert!(
        !dir.path().join(dev::KEY_FILE).exists(),
        "no development key in production"
    );
}

#[tokio::test]
async fn token_inspect_explains_acceptance_and_rejection_offline() {
    let clerk = ClerkStandIn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let jwks_file = dir.path().join("jwks.json");
    std::fs::write(
        &jwks_file,
        json!({"keys": [clerk.current_key().jwk]}).to_string(),
    )
    .unwrap();
    let config = Config::from_args(&ConfigArgs {
        data_dir: dir.path().to_owned(),
        ..ConfigArgs::default()
    })
    .unwrap();
    let inspect = |token: &str, at: Option<i64>, issuer: Option<&str>| {
        inspect::inspect(
            TokenCommand::Inspect {
                token: token.to_owned(),
                jwks: Some(jwks_file.display().to_string()),
                at,
                issuer: issuer.map(str::to_owned),
            },
            &config,
        )
    };
    // A token copied from a log an hour after it expired.
    let mut spec = TokenSpec::org("org_acme", "member");
    spec.lifetime_secs = 60;
    let token = clerk.session_token(&spec);
    let ctx = inspect(&token, Some(now() + 30), Some(&clerk.issuer()))
        .await
        .unwrap()
        .expect("valid at that time");
    assert_eq!(ctx.tenant_id, "org_acme");
    assert_eq!(ctx.org_role.as_deref(), Some("member"));

    let refused = inspect(&token, Some(now() + 3600), Some(&clerk.issuer()))
        .await
        .unwrap()
        .unwrap_err();
    assert!(refused.to_string().contains("expired"), "{refused}");
    let refused = inspect(&token, None, Some("https://clerk.other.example"))
        .await
        .unwrap()
        .unwrap_err();
    assert!(refused.to_string().contains("wrong issuer"), "{refused}");
    let other_key = clerk::key(1).sign(&spec.claims(&clerk.issuer()));
    let refused = inspect(&other_key, None, None).await.unwrap().unwrap_err();
    assert!(
        refused.to_string().contains("unknown signing key"),
        "{refused}"
    );
}
