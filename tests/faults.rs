//! Surviving database faults without a 500, and the isolation audit at start.
//!
//! PostgreSQL only (`TEST_DATABASE_URL`); on SQLite each test says why it has nothing to do
//! and passes: there is no server to take away and no row-level security to audit.
//! - The App reaches PostgreSQL through a TCP proxy the test cuts and restores: while it is
//!   cut, requests answer 503 `database_unavailable` with `Retry-After`; once restored, they
//!   succeed at once, the first one included, even on pooled connections that died meanwhile.
//! - At start the App audits row-level security as its runtime role; production refuses to
//!   start on a finding.

use std::time::Duration;

use resonance_api::{
    config::{Config, ConfigArgs, Environment},
    server,
    tenant::audit,
};
use resonance_tests::{
    ClerkStandIn, TestApp, TestDatabase,
    fixtures::{admin, create_task},
    proxy::TcpProxy,
};
use sea_orm::ConnectionTrait;
use serde_json::json;

/// An App whose database connection goes through `proxy`; `None` on SQLite.
async fn app_behind_a_proxy() -> Option<(TestApp, TcpProxy)> {
    let db = TestDatabase::create().await;
    let Some(host) = db.postgres_host() else {
        eprintln!("needs PostgreSQL (TEST_DATABASE_URL) to take the database away");
        return None;
    };
    let proxy = TcpProxy::start(&host).await;
    let via_proxy = db.app_url_via(&proxy.address);
    let app = TestApp::spawn_on(ClerkStandIn::start().await, db, |args| {
        args.database_url = Some(via_proxy);
    })
    .await;
    Some((app, proxy))
}

/// Fires `n` list requests at once (so each worker's pool holds several connections); returns
/// their statuses.
async fn burst(app: &TestApp, token: &str, n: usize) -> Vec<u16> {
    let requests = (0..n).map(|_| app.get("/v1/tasks", token)).collect();
    join_all(requests)
        .await
        .into_iter()
        .map(|reply| reply.status)
        .collect()
}

/// Awaits every future concurrently, in order.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}

#[tokio::test]
async fn requests_answer_503_database_unavailable_while_the_database_is_gone() {
    let Some((app, proxy)) = app_behind_a_proxy().await else {
        return;
    };
    let token = app.token(admin("org_faults"));
    create_task(&app, &token, json!({"title": "Before the outage"})).await;
    assert!(burst(&app, &token, 8).await.iter().all(|s| *s == 200));

    // Mid-traffic: requests in flight while the connections are cut answer 200 or 503,
    // never 500.
    let in_flight = join_all(vec![
        Box::pin(burst(&app, &token, 6)) as std::pin::Pin<Box<dyn Future<Output = Vec<u16>>>>,
        Box::pin(async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            proxy.cut();
            vec![]
        }),
    ])
    .await;
    for status in &in_flight[0] {
        assert!(
            [200, 503].contains(status),
            "in flight at the cut: {status}"
        );
    }

    for path in ["/v1/tasks", "/v1/projects"] {
        let down = app.get(path, &token).await;
        let problem = down.assert_problem(503, "database_unavailable");
        assert_eq!(problem["type"], "/problems/database_unavailable");
        let retry_after: u64 = down
            .header("retry-after")
            .expect("a Retry-After header")
            .parse()
            .expect("Retry-After in seconds");
        assert!((1..=5).contains(&retry_after), "Retry-After: {retry_after}");
        let detail = problem["detail"].as_str().unwrap();
        for internal in ["sqlx", "pool", "127.0.0.1", "error communicating"] {
            assert!(
                !detail.contains(internal),
                "detail says nothing internal: {detail}"
            );
        }
        eprintln!(
            "while the database is gone: {} retry-after={retry_after} {}",
            down.status, down.json
        );
    }
    let write = app
        .post("/v1/tasks", &token, json!({"title": "During the outage"}))
        .await;
    write.assert_problem(503, "database_unavailable");

    proxy.restore();
    let first = app.get("/v1/tasks", &token).await;
    assert_eq!(
        first.status, 200,
        "the first request after the restore: {}",
        first.json
    );
    assert_eq!(
        first.json["data"].as_array().unwrap().len(),
        1,
        "{}",
        first.json
    );
    let created = app
        .post("/v1/tasks", &token, json!({"title": "After the outage"}))
        .await;
    assert_eq!(created.status, 201, "{}", created.json);
    assert!(burst(&app, &token, 8).await.iter().all(|s| *s == 200));
}

/// The connections a pool holds die (the server restarted, or something between dropped
/// them) while no request is using them: the next requests' `BEGIN` fails on them, and is
/// retried once on a live connection instead of answering 503.
#[tokio::test]
async fn connections_that_died_while_idle_are_replaced_without_an_error() {
    let Some((app, proxy)) = app_behind_a_proxy().await else {
        return;
    };
    let token = app.token(admin("org_faults"));
    create_task(&app, &token, json!({"title": "Kept"})).await;
    for _ in 0..3 {
        let statuses = burst(&app, &token, 8).await;
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    }

    // Every pooled connection dies; the database is back before the next request.
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.restore();

    let first = app.get("/v1/tasks", &token).await;
    assert_eq!(
        first.status, 200,
        "the first request after the restore: {}",
        first.json
    );
    for _ in 0..4 {
        let one = app.get("/v1/tasks", &token).await;
        assert_eq!(one.status, 200, "{}", one.json);
    }
    let statuses = burst(&app, &token, 8).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let created = app
        .post("/v1/tasks", &token, json!({"title": "After"}))
        .await;
    assert_eq!(created.status, 201, "{}", created.json);
}

// ---- the isolation audit at start ------------------------------------------------------------

/// A migrated PostgreSQL test database; `None` on SQLite.
async fn migrated_postgres() -> Option<TestDatabase> {
    let db = TestDatabase::create().await;
    if !db.is_postgres() {
        eprintln!("needs PostgreSQL (TEST_DATABASE_URL): SQLite has no row-level security");
        return None;
    }
    let owner = db.owner().await;
    resonance_api::db::migrate_up(&owner)
        .await
        .expect("migrations");
    owner.close().await.ok();
    Some(db)
}

/// A production configuration as the tests start it, with the App connecting as `database_url`.
fn production(
    db: &TestDatabase,
    clerk: &ClerkStandIn,
    data_dir: &tempfile::TempDir,
    database_url: &str,
) -> Config {
    let mut args = ConfigArgs {
        database_url: Some(database_url.to_owned()),
        migration_database_url: Some(db.owner_url.clone()),
        environment: Environment::Production,
        data_dir: data_dir.path().to_owned(),
        workers: Some(1),
        db_max_connections: 2,
        db_acquire_timeout_secs: 2,
        db_connect_timeout_secs: 2,
        ..ConfigArgs::default()
    };
    clerk.configure(&mut args);
    Config::from_args(&args).expect("a valid configuration")
}

/// Runs `sql` as the schema owner.
async fn as_owner(db: &TestDatabase, sql: &str) {
    let owner = db.owner().await;
    owner
        .execute_unprepared(sql)
        .await
        .expect("the owner's statement");
    owner.close().await.ok();
}

async fn app_connection(db: &TestDatabase) -> sea_orm::DatabaseConnection {
    sea_orm::Database::connect(&db.app_url)
        .await
        .expect("connect as resonance_app")
}

#[tokio::test]
async fn the_runtime_role_passes_the_audit_and_production_starts() {
    let Some(db) = migrated_postgres().await else {
        return;
    };
    let conn = app_connection(&db).await;
    assert_eq!(audit::audit(&conn).await, Ok(()));
    conn.close().await.ok();

    let clerk = ClerkStandIn::start().await;
    let data_dir = tempfile::tempdir().unwrap();
    let config = production(&db, &clerk, &data_dir, &db.app_url);
    let started = server::prepare(config).await;
    assert!(
        started.is_ok(),
        "production starts as resonance_app: {:#}",
        started.err().unwrap()
    );
}

#[tokio::test]
async fn production_refuses_to_start_as_a_superuser() {
    let Some(db) = migrated_postgres().await else {
        return;
    };
    let clerk = ClerkStandIn::start().await;
    let data_dir = tempfile::tempdir().unwrap();
    // The test server's administrator (the schema owner here) is a superuser.
    let config = production(&db, &clerk, &data_dir, &db.owner_url);
    let error = match server::prepare(config).await {
        Ok(_) => panic!("production started as a superuser"),
        Err(error) => format!("{error:#}"),
    };
    let user = db
        .query_one("SELECT current_user::text")
        .await
        .unwrap()
        .try_get_by_index::<String>(0)
        .unwrap();
    assert_eq!(
        error,
        format!(
            "row-level security audit: the database role {user} is a superuser \
             (row-level security does not apply to it)"
        )
    );
    assert!(!error.contains('\n'), "one line: {error}");
}

#[tokio::test]
async fn a_table_whose_row_level_security_is_not_forced_is_reported() {
    let Some(db) = migrated_postgres().await else {
        return;
    };
    as_owner(&db, "ALTER TABLE tasks NO FORCE ROW LEVEL SECURITY").await;
    let conn = app_connection(&db).await;
    let failure = audit::audit(&conn).await.expect_err("the audit fails");
    assert_eq!(
        failure.findings,
        ["table tasks is not FORCE ROW LEVEL SECURITY"]
    );
    // Development warns and goes on; production refuses with the same line.
    assert_eq!(audit::check_at_start(&conn, false).await, Ok(()));
    conn.close().await.ok();

    let clerk = ClerkStandIn::start().await;
    let data_dir = tempfile::tempdir().unwrap();
    let config = production(&db, &clerk, &data_dir, &db.app_url);
    let error = format!(
        "{:#}",
        server::prepare(config).await.err().expect("refused")
    );
    assert_eq!(
        error,
        "row-level security audit: table tasks is not FORCE ROW LEVEL SECURITY"
    );
}

#[tokio::test]
async fn a_table_without_row_level_security_or_write_checks_is_reported() {
    let Some(db) = migrated_postgres().await else {
        return;
    };
    as_owner(
        &db,
        "ALTER TABLE projects DISABLE ROW LEVEL SECURITY;
         DROP POLICY tenant_isolation ON memberships;
         CREATE POLICY reads_only ON memberships FOR SELECT
           USING (tenant_id = current_setting('app.tenant_id', true));",
    )
    .await;
    let conn = app_connection(&db).await;
    let failure = audit::audit(&conn).await.expect_err("the audit fails");
    assert_eq!(
        failure.findings,
        [
            "table memberships has no policy with a WITH CHECK expression for INSERT by resonance_app",
            "table memberships has no policy with a WITH CHECK expression for UPDATE by resonance_app",
            "table projects does not have ROW LEVEL SECURITY enabled",
        ]
    );
    conn.close().await.ok();
}
