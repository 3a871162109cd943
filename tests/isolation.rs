//! Isolation between workspaces: another tenant's tasks, projects, voices and generations answer
//! 404 everywhere, personal and organization workspaces stay apart, tricky tenant ids select
//! only their own workspace, and on PostgreSQL row-level security holds by itself in raw SQL and
//! in pipelined reads.

use resonance_api::tenant::pipelined::{APPLICATION_NAME, PipelinedReads};
use resonance_tests::{
    TestApp, TokenSpec,
    fixtures::{
        admin, audio_files, create_project, create_task, create_voice, get_with_range,
        require_espeak, wav,
    },
};
use serde_json::{Value, json};

#[tokio::test]
async fn another_tenants_ids_answer_404_everywhere() {
    let app = TestApp::spawn().await;
    let owner = app.token(admin("org_owner"));
    let project = create_project(&app, &owner, "Secret project").await;
    let task = create_task(
        &app,
        &owner,
        json!({ "title": "Secret task", "project_id": project["id"] }),
    )
    .await;
    let project_path = format!("/v1/projects/{}", project["id"].as_str().unwrap());
    let task_path = format!("/v1/tasks/{}", task["id"].as_str().unwrap());

    let intruders = [
        app.token(admin("org_intruder")),
        app.token(TokenSpec::personal("user_alice")), // the owner's own user, personal workspace
    ];
    for intruder in &intruders {
        for path in [&project_path, &task_path] {
            app.get(path, intruder)
                .await
                .assert_problem(404, "not_found");
            app.patch(path, intruder, json!({}))
                .await
                .assert_problem(404, "not_found");
            app.delete(path, intruder)
                .await
                .assert_problem(404, "not_found");
        }
        assert_eq!(
            app.get("/v1/projects", intruder).await.json["data"],
            json!([])
        );
        assert_eq!(app.get("/v1/tasks", intruder).await.json["data"], json!([]));
        assert_eq!(
            app.get(
                &format!("/v1/tasks?project_id={}", project["id"].as_str().unwrap()),
                intruder
            )
            .await
            .json["data"],
            json!([])
        );
        app.post(
            "/v1/tasks",
            intruder,
            json!({ "title": "x", "project_id": project["id"] }),
        )
        .await
        .assert_problem(422, "validation_failed");
    }
    // The owner still sees everything, unchanged.
    assert_eq!(
        app.get(&task_path, &owner).await.json["title"],
        "Secret task"
    );
    assert_eq!(
        app.get(&project_path, &owner).await.json["name"],
        "Secret project"
    );
}

#[tokio::test]
async fn another_tenants_voices_and_generations_are_invisible() {
    require_espeak();
    let app = TestApp::spawn().await;
    let a = app.token(TokenSpec::org("org_a", "admin"));
    let b = app.token(TokenSpec::org("org_b", "admin").user("user_bob"));

    let voice = create_voice(&app, &a, "Private voice", &wav(16_000, 1.5)).await;
    let voice_id = voice["id"].as_str().unwrap().to_owned();
    let made = app
        .post(
            "/v1/generations",
            &a,
            json!({"voice_id": voice_id, "text": "Only for org A."}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.json);
    assert_eq!(made.json["voice_id"], voice_id.as_str());
    let generation_id = made.json["id"].as_str().unwrap().to_owned();

    for path in [
        format!("/v1/voices/{voice_id}"),
        format!("/v1/voices/{voice_id}/sample"),
        format!("/v1/generations/{generation_id}"),
        format!("/v1/generations/{generation_id}/audio"),
    ] {
        app.get(&path, &b).await.assert_problem(404, "not_found");
        get_with_range(&app, &path, &b, "bytes=0-10")
            .await
            .assert_problem(404, "not_found");
    }
    app.patch(
        &format!("/v1/voices/{voice_id}"),
        &b,
        json!({"name": "Stolen"}),
    )
    .await
    .assert_problem(404, "not_found");
    app.delete(&format!("/v1/voices/{voice_id}"), &b)
        .await
        .assert_problem(404, "not_found");
    app.delete(&format!("/v1/generations/{generation_id}"), &b)
        .await
        .assert_problem(404, "not_found");
    app.post(
        "/v1/generations",
        &b,
        json!({"voice_id": voice_id, "text": "Borrowing a voice."}),
    )
    .await
    .assert_problem(422, "validation_failed");
    let b_custom = app.get("/v1/voices?variant=custom", &b).await;
    assert_eq!(b_custom.json["data"], json!([]));
    let b_generations = app.get("/v1/generations", &b).await;
    assert_eq!(b_generations.json["data"], json!([]));
    // A personal workspace is a tenant of its own too.
    let personal = app.token(TokenSpec::personal("user_alice"));
    app.get(&format!("/v1/voices/{voice_id}"), &personal)
        .await
        .assert_problem(404, "not_found");

    // Org A still has everything, and the objects live under its own prefix.
    assert_eq!(
        app.get(&format!("/v1/voices/{voice_id}"), &a).await.status,
        200
    );
    assert_eq!(
        app.get(&format!("/v1/generations/{generation_id}/audio"), &a)
            .await
            .status,
        200
    );
    let files = audio_files(&app);
    assert_eq!(files.len(), 2);
    let prefix = app.data_path().join("audio").join("tenants").join("org_a");
    assert!(files.iter().all(|f| f.starts_with(&prefix)), "{files:?}");

    // Deleting a tenant's objects (as the webhooks do for a deleted workspace).
    let removed = app
        .state
        .speech
        .storage
        .delete_tenant("org_a")
        .await
        .unwrap();
    assert_eq!(removed, 2);
    assert!(audio_files(&app).is_empty());
}

#[tokio::test]
async fn personal_workspace_and_orgs_do_not_see_each_other() {
    let app = TestApp::spawn().await;
    let personal = app.token(TokenSpec::personal("user_alice"));
    let org = app.token(admin("org_acme").user("user_alice"));
    create_task(&app, &personal, json!({ "title": "mine" })).await;
    create_task(&app, &org, json!({ "title": "ours" })).await;
    let personal_titles = app.get("/v1/tasks", &personal).await.json["data"].clone();
    let org_titles = app.get("/v1/tasks", &org).await.json["data"].clone();
    assert_eq!(personal_titles.as_array().unwrap().len(), 1);
    assert_eq!(personal_titles[0]["title"], "mine");
    assert_eq!(org_titles.as_array().unwrap().len(), 1);
    assert_eq!(org_titles[0]["title"], "ours");
}

/// On PostgreSQL the tenant id travels as a quoted literal in the request's BEGIN; ids with
/// quotes and backslashes must still select exactly their own workspace.
#[tokio::test]
async fn tenant_ids_with_quotes_and_backslashes_stay_apart() {
    let app = TestApp::spawn().await;
    let tricky = app.token(admin(r"org_it's\"));
    let plain = app.token(admin("org_its"));
    let other = app.token(admin(r"org_it's\' OR true --"));
    create_task(&app, &tricky, json!({ "title": "tricky" })).await;
    create_task(&app, &plain, json!({ "title": "plain" })).await;
    for (token, expected) in [
        (&tricky, json!(["tricky"])),
        (&plain, json!(["plain"])),
        (&other, json!([])),
    ] {
        let titles: Vec<Value> = app.get("/v1/tasks", token).await.json["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["title"].clone())
            .collect();
        assert_eq!(Value::from(titles), expected);
    }
}

/// A signed token whose organization id no workspace could have (a control character) is
/// refused with 401, not failed on in the database.
#[tokio::test]
async fn a_token_naming_an_impossible_workspace_is_refused() {
    let app = TestApp::spawn().await;
    let token = app.token(admin("org_a\u{0}b"));
    app.get("/v1/tasks", &token)
        .await
        .assert_problem(401, "unauthorized");
    let write = app
        .post("/v1/tasks", &token, json!({ "title": "nowhere" }))
        .await;
    write.assert_problem(401, "unauthorized");
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL's second wall

/// PostgreSQL only: row-level security holds by itself, without the API's own filter.
#[tokio::test]
async fn row_level_security_walls_tenants_apart_in_raw_sql() {
    use sea_orm::{ConnectionTrait, Database, DbBackend, Statement, TransactionTrait};

    let app = TestApp::spawn().await;
    if !app.db.is_postgres() {
        eprintln!(
            "row-level security exists only on PostgreSQL; set TEST_DATABASE_URL to run this test"
        );
        return;
    }
    let a = app.token(admin("org_a"));
    let b = app.token(admin("org_b"));
    create_task(&app, &a, json!({ "title": "a's task" })).await;
    let b_task = create_task(&app, &b, json!({ "title": "b's task" })).await;
    let b_id = b_task["id"].as_str().unwrap().to_owned();

    let app_role = Database::connect(&app.db.app_url).await.unwrap();
    let txn = app_role.begin().await.unwrap();
    let raw = |sql: String| Statement::from_string(DbBackend::Postgres, sql);
    txn.execute_raw(raw(
        "SELECT set_config('app.tenant_id', 'org_a', true)".into()
    ))
    .await
    .unwrap();
    let visible = txn
        .query_all_raw(raw("SELECT tenant_id FROM tasks".into()))
        .await
        .unwrap();
    assert_eq!(visible.len(), 1);
    assert_eq!(
        visible[0].try_get::<String>("", "tenant_id").unwrap(),
        "org_a"
    );
    let updated = txn
        .execute_raw(raw(format!(
            "UPDATE tasks SET title = 'pwned' WHERE id = '{b_id}'"
        )))
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 0);
    let deleted = txn
        .execute_raw(raw(format!("DELETE FROM tasks WHERE id = '{b_id}'")))
        .await
        .unwrap();
    assert_eq!(deleted.rows_affected(), 0);
    let smuggled = txn
        .execute_raw(raw(
            "INSERT INTO tasks (id, tenant_id, title, version, created_by_user_id, created_at, updated_at) \
             VALUES (gen_random_uuid(), 'org_b', 'smuggled', 1, 'user_x', now(), now())"
                .into(),
        ))
        .await;
    assert!(
        smuggled.is_err(),
        "inserting into another tenant violates the policy"
    );
    drop(txn);

    // With no tenant set at all, nothing is visible.
    let none = app_role
        .query_all_raw(raw("SELECT id FROM tasks".into()))
        .await
        .unwrap();
    assert!(none.is_empty());
    assert_eq!(
        app.get(&format!("/v1/tasks/{b_id}"), &b).await.json["title"],
        "b's task"
    );
}

/// The titles of every task `tenant` reads through `reads` with a query that has no tenant
/// filter: only row-level security confines it.
async fn unfiltered_titles(reads: &PipelinedReads, tenant: &str) -> Vec<String> {
    use resonance_api::entities::{FromPgRow, task};
    use sea_orm::{EntityTrait, QueryTrait};

    let rows = reads
        .read(
            tenant,
            &task::Entity::find().into_query(),
            task::Model::from_pipelined_row,
        )
        .await
        .unwrap();
    rows.into_iter().map(|t| t.title).collect()
}

/// Pipelined reads on one connection, so successive reads for different tenants share it.
fn one_connection_reads(url: &str) -> PipelinedReads {
    let timeout = std::time::Duration::from_secs(5);
    PipelinedReads::new(url, 1, timeout, timeout).expect("this URL gets pipelined reads")
}

/// The app on PostgreSQL, or `None` (with a note) on SQLite, which has no pipelined reads.
async fn pipelined_app() -> Option<TestApp> {
    let app = TestApp::spawn().await;
    if app.db.is_postgres() {
        return Some(app);
    }
    eprintln!("pipelined reads exist only on PostgreSQL; set TEST_DATABASE_URL to run this test");
    None
}

/// PostgreSQL only: a pipelined read (list and get) sets the tenant in the same round trip as
/// its query, so row-level security confines it even to a statement with no tenant filter,
/// and reads for two tenants through one connection never see each other's rows.
#[tokio::test]
async fn pipelined_reads_are_confined_by_row_level_security() {
    let Some(app) = pipelined_app().await else {
        return;
    };
    let a = app.token(admin("org_a"));
    let b = app.token(admin("org_b"));
    create_task(&app, &a, json!({ "title": "a's task" })).await;
    create_task(&app, &b, json!({ "title": "b's task" })).await;

    let reads = one_connection_reads(&app.db.app_url);
    for (tenant, title) in [
        ("org_a", "a's task"),
        ("org_b", "b's task"),
        ("org_a", "a's task"),
    ] {
        assert_eq!(unfiltered_titles(&reads, tenant).await, [title], "{tenant}");
    }
    // A tenant that owns nothing sees nothing.
    assert!(unfiltered_titles(&reads, "org_nobody").await.is_empty());
}

/// PostgreSQL only: with `sslmode=require` the pipelined reads speak TLS to the server (which
/// this checks from the server's side) and still answer the tenant's rows.
#[tokio::test]
async fn pipelined_reads_speak_tls_when_asked() {
    let Some(app) = pipelined_app().await else {
        return;
    };
    let ssl = app.db.query_one("SHOW ssl").await.unwrap();
    if ssl.try_get_by_index::<String>(0).unwrap() != "on" {
        eprintln!("this PostgreSQL has ssl = off: nothing to check");
        return;
    }
    let a = app.token(admin("org_a"));
    create_task(&app, &a, json!({ "title": "a's task" })).await;

    let separator = if app.db.app_url.contains('?') {
        '&'
    } else {
        '?'
    };
    let reads = one_connection_reads(&format!("{}{separator}sslmode=require", app.db.app_url));
    assert_eq!(unfiltered_titles(&reads, "org_a").await, ["a's task"]);

    // The pooled connection, idle now, is encrypted.
    let encrypted = app
        .db
        .query_one(&format!(
            "SELECT COUNT(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = '{APPLICATION_NAME}' AND a.datname = current_database() AND s.ssl"
        ))
        .await
        .unwrap();
    assert_eq!(encrypted.try_get_by_index::<i64>(0).unwrap(), 1);
}

/// On PostgreSQL the application role itself cannot read another tenant's voices nor write
/// system voices, whatever SQL it runs (SQLite has no row-level security: nothing to check).
#[tokio::test]
async fn row_level_security_shares_system_voices_read_only() {
    use sea_orm::{ConnectionTrait, Database, DbBackend, Statement, TransactionTrait};

    let app = TestApp::spawn().await;
    if !app.db.is_postgres() {
        return;
    }
    let a = app.token(TokenSpec::org("org_a", "admin"));
    create_voice(&app, &a, "Org A only", &wav(16_000, 1.5)).await;
    let system_rows = app.db.count("voices").await - 1;

    let db = Database::connect(&app.db.app_url).await.unwrap();
    let txn = db.begin().await.unwrap();
    let sql = |s: &str| Statement::from_string(DbBackend::Postgres, s.to_owned());
    txn.execute_raw(sql("SELECT set_config('app.tenant_id', 'org_b', true)"))
        .await
        .unwrap();
    let row = txn
        .query_one_raw(sql("SELECT COUNT(*) AS n FROM voices"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get::<i64>("", "n").unwrap(), system_rows);
    let updated = txn
        .execute_raw(sql("UPDATE voices SET name = 'Hijacked'"))
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 0);
    let deleted = txn.execute_raw(sql("DELETE FROM voices")).await.unwrap();
    assert_eq!(deleted.rows_affected(), 0);
    txn.rollback().await.unwrap();

    for tenant in ["NULL", "'org_a'"] {
        let txn = db.begin().await.unwrap();
        txn.execute_raw(sql("SELECT set_config('app.tenant_id', 'org_b', true)"))
            .await
            .unwrap();
        let insert = txn
            .execute_raw(sql(&format!(
                "INSERT INTO voices (id, tenant_id, name, category, language, espeak_voice, version, created_at, updated_at)
                 VALUES (gen_random_uuid(), {tenant}, 'Sneaky', 'general', 'en', 'en', 1, now(), now())"
            )))
            .await;
        assert!(
            insert.is_err(),
            "inserting a voice for tenant {tenant} must fail"
        );
        txn.rollback().await.unwrap();
    }
    db.close().await.ok();
}
