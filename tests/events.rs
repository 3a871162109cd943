//! Several instances as one service: a change applied by one instance reaches the caches of
//! every other at once (PostgreSQL `LISTEN/NOTIFY`; on SQLite the Apps of one process share
//! an in-process bus), and a lost listener connection leaves nothing stale behind.

use std::time::{Duration, Instant};

use resonance_tests::{
    TestApp,
    fixtures::admin,
    proxy::TcpProxy,
    webhooks::{deleted, deliver_ok, secret, user},
};

/// How soon every instance must refuse what was revoked on one.
const WITHIN: Duration = Duration::from_secs(1);

/// Three instances on one database; the first accepts Clerk's webhooks.
async fn three_instances() -> (TestApp, TestApp, TestApp) {
    let a = TestApp::spawn_with(|args| args.clerk_webhook_secret = Some(secret())).await;
    let b = TestApp::spawn_on(a.clerk.clone(), a.db.shared(), |_| {}).await;
    let c = TestApp::spawn_on(a.clerk.clone(), a.db.shared(), |_| {}).await;
    (a, b, c)
}

/// Waits until `app` answers `token` with 401, failing after [`WITHIN`] from `since`.
async fn refused_within(app: &TestApp, token: &str, since: Instant, which: &str) {
    loop {
        let reply = app.get("/v1/projects", token).await;
        if reply.status == 401 {
            reply.assert_problem(401, "unauthorized");
            return;
        }
        assert_eq!(reply.status, 200, "{which}: {}", reply.json);
        assert!(
            since.elapsed() < WITHIN,
            "instance {which} still accepts the token {:?} after the change",
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Each instance has served `token` (so it cached the token and the workspace).
async fn served_everywhere(apps: &[&TestApp], token: &str) {
    for app in apps {
        let reply = app.get("/v1/projects", token).await;
        assert_eq!(reply.status, 200, "{}", reply.json);
    }
}

#[tokio::test]
async fn a_deleted_workspace_is_refused_by_every_instance_within_a_second() {
    let (a, b, c) = three_instances().await;
    let acme = a.token(admin("org_acme"));
    let other = a.token(admin("org_other"));
    served_everywhere(&[&a, &b, &c], &acme).await;
    served_everywhere(&[&a, &b, &c], &other).await;

    deliver_ok(
        &a,
        &deleted("organization.deleted", "org_acme", "organization"),
        "applied",
    )
    .await;
    let at = Instant::now();
    refused_within(&b, &acme, at, "B").await;
    refused_within(&c, &acme, at, "C").await;
    refused_within(&a, &acme, at, "A").await;
    // Only that workspace: another one's tokens still work everywhere.
    served_everywhere(&[&a, &b, &c], &other).await;
}

#[tokio::test]
async fn a_deleted_users_personal_workspace_is_refused_everywhere() {
    let (a, b, c) = three_instances().await;
    deliver_ok(
        &a,
        &user("user.created", "user_ann", "Ann", 2_000),
        "applied",
    )
    .await;
    let personal = a.token(resonance_tests::TokenSpec::personal("user_ann"));
    served_everywhere(&[&b, &c], &personal).await;

    deliver_ok(&a, &deleted("user.deleted", "user_ann", "user"), "applied").await;
    let at = Instant::now();
    refused_within(&b, &personal, at, "B").await;
    refused_within(&c, &personal, at, "C").await;
}

#[tokio::test]
async fn a_lost_listener_connection_leaves_no_stale_access() {
    let a = TestApp::spawn_with(|args| args.clerk_webhook_secret = Some(secret())).await;
    let Some(host) = a.db.postgres_host() else {
        return; // SQLite: one process, no listener connection to lose.
    };
    // C hears events through a proxy the test cuts; its requests reach PostgreSQL directly.
    let proxy = TcpProxy::start(&host).await;
    let via_proxy = a.db.app_url_via(&proxy.address);
    let c = TestApp::spawn_on(a.clerk.clone(), a.db.shared(), |args| {
        args.events_database_url = Some(via_proxy);
    })
    .await;
    let acme = a.token(admin("org_acme"));
    let other = a.token(admin("org_other"));
    served_everywhere(&[&a, &c], &acme).await;

    // The workspace is deleted while C cannot hear it.
    proxy.cut();
    deliver_ok(
        &a,
        &deleted("organization.deleted", "org_acme", "organization"),
        "applied",
    )
    .await;
    let at = Instant::now();
    refused_within(&c, &acme, at, "C (listener cut)").await;
    // The service stays up meanwhile.
    served_everywhere(&[&c], &other).await;

    proxy.restore();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let reply = c.get("/v1/projects", &acme).await;
    reply.assert_problem(401, "unauthorized");
    served_everywhere(&[&c], &other).await;

    // Listening again: the next deletion reaches C as fast as ever.
    deliver_ok(
        &a,
        &deleted("organization.deleted", "org_other", "organization"),
        "applied",
    )
    .await;
    let at = Instant::now();
    refused_within(&c, &other, at, "C (listener restored)").await;
}
