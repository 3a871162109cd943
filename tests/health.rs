//! Liveness and readiness: `/healthz` answers without the database, `/readyz` only with it.

use resonance_tests::{Reply, TestApp};

#[tokio::test]
async fn healthz_answers_without_the_database() {
    let app = TestApp::spawn().await;
    let reply = Reply::send(app.client.get(app.url("/healthz"))).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json["status"], "ok");
    assert!(reply.header("x-request-id").is_some());
}

#[tokio::test]
async fn readyz_is_ready_with_a_database() {
    let app = TestApp::spawn().await;
    let reply = Reply::send(app.client.get(app.url("/readyz"))).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json["status"], "ready");
}

/// PostgreSQL only: the App reaches the database through a proxy the test cuts and restores.
#[tokio::test]
async fn readyz_goes_503_while_the_database_is_gone_and_recovers() {
    use resonance_tests::{ClerkStandIn, TestDatabase, proxy::TcpProxy};

    let db = TestDatabase::create().await;
    let Some(host) = db.postgres_host() else {
        eprintln!("needs PostgreSQL (TEST_DATABASE_URL) to take the database away");
        return;
    };
    let proxy = TcpProxy::start(&host).await;
    let via_proxy = db.app_url_via(&proxy.address);
    let app = TestApp::spawn_on(ClerkStandIn::start().await, db, |args| {
        args.database_url = Some(via_proxy);
    })
    .await;
    let readyz = || async { Reply::send(app.client.get(app.url("/readyz"))).await };

    assert_eq!(readyz().await.status, 200);
    proxy.cut();
    let down = readyz().await;
    down.assert_problem(503, "service_unavailable");
    assert!(down.header("retry-after").is_some());
    assert_eq!(
        Reply::send(app.client.get(app.url("/healthz")))
            .await
            .status,
        200,
        "liveness does not depend on the database"
    );
    proxy.restore();
    let mut status = 0;
    for _ in 0..20 {
        status = readyz().await.status;
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(status, 200, "ready again without a restart");
}
