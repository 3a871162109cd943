//! Deleting a workspace when Clerk says an organization or a user is gone: every row and stored
//! object the workspace owns goes, nothing of anyone else's does, and the deletion is final.

use resonance_tests::{
    TestApp, TokenSpec,
    fixtures::{
        count_for, create_generation, create_project, create_task, create_voice, scalar, stored,
        stored_objects, wav,
    },
    webhooks::{
        add_member, add_organization, add_user, deleted, deliver_ok, membership, organization,
        spawn_with_webhooks, user,
    },
};
use sea_orm::ConnectionTrait;
use serde_json::json;

/// Creates a project with a task in it and an inbox task, through the API.
async fn seed_workspace(app: &TestApp, token: &str) {
    let project = create_project(app, token, "Launch").await;
    create_task(
        app,
        token,
        json!({"title": "In the project", "project_id": project["id"]}),
    )
    .await;
    // Sent with an Idempotency-Key: the workspace also owns a kept answer.
    let inbox = app
        .request(reqwest::Method::POST, "/v1/tasks", token)
        .header("idempotency-key", "\"seed-inbox\"")
        .json(&json!({"title": "In the inbox"}))
        .send()
        .await
        .unwrap();
    assert_eq!(inbox.status(), 201);
}

/// Gives the workspace a billing record (written by the Polar webhook in production, see
/// tests/billing.rs; inserted directly here, where billing is not configured).
async fn seed_billing(app: &TestApp, tenant: &str) {
    app.db
        .owner()
        .await
        .execute_unprepared(&format!(
            "INSERT INTO billing_accounts (tenant_id, polar_customer_id, subscription_id, \
             product_id, status, cancel_at_period_end, source_modified_at, created_by_user_id, \
             created_at, updated_at) VALUES ('{tenant}', 'cus_1', 'sub_1', 'prod_1', 'active', \
             FALSE, 1, 'system:polar-webhook', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        ))
        .await
        .unwrap();
}

/// Creates a custom voice (a stored sample) and a generation (stored audio), through the API.
async fn seed_audio(app: &TestApp, token: &str) {
    create_voice(app, token, "Narrator", &wav(16_000, 2.0)).await;
    let system = app.get("/v1/voices?variant=system&limit=1", token).await;
    assert_eq!(system.status, 200, "{}", system.json);
    let voice_id = system.json["data"][0]["id"].clone();
    create_generation(
        app,
        token,
        json!({"voice_id": voice_id, "text": "Goodbye."}),
    )
    .await;
}

#[tokio::test]
async fn deleting_an_organization_removes_everything_it_owns_and_nothing_else() {
    let app = spawn_with_webhooks().await;
    let a = app.token(TokenSpec::org("org_a", "admin"));
    let b = app.token(TokenSpec::org("org_b", "admin"));
    seed_workspace(&app, &a).await;
    seed_workspace(&app, &b).await;
    seed_audio(&app, &a).await;
    seed_audio(&app, &b).await;
    seed_billing(&app, "org_a").await;
    seed_billing(&app, "org_b").await;
    for org in ["org_a", "org_b"] {
        add_organization(&app, org, org).await;
        add_member(&app, org, "user_alice", "admin").await;
    }
    let tables = resonance_api::tenant::lifecycle::TENANT_OWNED_TABLES;
    let mut before_b = vec![];
    for table in tables {
        before_b.push(count_for(&app, table, "org_b").await);
    }
    for table in tables {
        assert!(
            count_for(&app, table, "org_a").await > 0,
            "{table} seeded for org_a"
        );
    }
    assert_eq!(
        stored_objects(&app, "org_a"),
        2,
        "a sample and a generation"
    );
    let objects_b = stored_objects(&app, "org_b");
    assert_eq!(objects_b, 2);
    let system_voices = "SELECT COUNT(*) FROM voices WHERE tenant_id IS NULL";
    let system_voices_before = scalar(&app, system_voices).await;
    assert!(system_voices_before > 0);

    deliver_ok(
        &app,
        &deleted("organization.deleted", "org_a", "organization"),
        "applied",
    )
    .await;

    for (table, before) in tables.iter().zip(before_b) {
        assert_eq!(count_for(&app, table, "org_a").await, 0, "{table} of org_a");
        assert_eq!(
            count_for(&app, table, "org_b").await,
            before,
            "{table} of org_b"
        );
    }
    assert_eq!(stored_objects(&app, "org_a"), 0, "no audio of org_a stays");
    assert_eq!(stored_objects(&app, "org_b"), objects_b);
    assert_eq!(
        scalar(&app, system_voices).await,
        system_voices_before,
        "shared system voices stay"
    );
    assert_eq!(
        stored(&app, "SELECT id FROM tenants WHERE id = 'org_a'").await,
        None
    );
    assert!(
        stored(&app, "SELECT id FROM tenants WHERE id = 'org_b'")
            .await
            .is_some()
    );
    // Nothing stays reachable through the API, and a token issued before the deletion cannot
    // bring the workspace back.
    app.get("/v1/tasks", &a)
        .await
        .assert_problem(401, "unauthorized");
    app.post("/v1/projects", &a, json!({"name": "Resurrected"}))
        .await
        .assert_problem(401, "unauthorized");
    assert_eq!(count_for(&app, "projects", "org_a").await, 0);
    let list = app.get("/v1/tasks", &b).await;
    assert_eq!(list.json["data"].as_array().unwrap().len(), 2);

    // Deletion is final: late deliveries about the organization change nothing.
    deliver_ok(
        &app,
        &organization("organization.updated", "org_a", "Back", 9_000),
        "stale",
    )
    .await;
    deliver_ok(
        &app,
        &membership(
            "organizationMembership.created",
            "org_a",
            "user_bob",
            "member",
            9_000,
        ),
        "stale",
    )
    .await;
    assert_eq!(
        stored(&app, "SELECT id FROM tenants WHERE id = 'org_a'").await,
        None
    );
    assert_eq!(count_for(&app, "memberships", "org_a").await, 0);
}

#[tokio::test]
async fn deleting_a_user_removes_their_personal_workspace_and_keeps_org_rows() {
    let app = spawn_with_webhooks().await;
    let personal = app.token(TokenSpec::personal("user_dora"));
    let in_org = app.token(TokenSpec::org("org_team", "member").user("user_dora"));
    seed_workspace(&app, &personal).await;
    seed_workspace(&app, &in_org).await;
    seed_audio(&app, &personal).await;
    seed_audio(&app, &in_org).await;
    assert_eq!(stored_objects(&app, "user_dora"), 2);
    add_user(&app, "user_dora", "Dora").await;
    add_member(&app, "org_team", "user_dora", "member").await;
    assert_eq!(count_for(&app, "tasks", "user_dora").await, 2);

    deliver_ok(
        &app,
        &deleted("user.deleted", "user_dora", "user"),
        "applied",
    )
    .await;

    for table in resonance_api::tenant::lifecycle::TENANT_OWNED_TABLES {
        assert_eq!(count_for(&app, table, "user_dora").await, 0, "{table}");
    }
    assert_eq!(
        count_for(&app, "tasks", "org_team").await,
        2,
        "the org owns them"
    );
    assert_eq!(count_for(&app, "projects", "org_team").await, 1);
    assert_eq!(count_for(&app, "voices", "org_team").await, 1);
    assert_eq!(
        stored_objects(&app, "user_dora"),
        0,
        "personal audio is gone"
    );
    assert_eq!(stored_objects(&app, "org_team"), 2, "the org's audio stays");
    assert_eq!(
        scalar(
            &app,
            "SELECT COUNT(*) FROM users WHERE id = 'user_dora' AND deleted_at IS NOT NULL"
        )
        .await,
        1,
        "the user is shown as deleted"
    );
    assert_eq!(
        stored(&app, "SELECT email FROM users WHERE id = 'user_dora'").await,
        Some(None),
        "the profile is cleared"
    );
    // A late update does not bring the user back.
    deliver_ok(
        &app,
        &user("user.updated", "user_dora", "Dora", 9_000),
        "stale",
    )
    .await;

    let reader = app.token(TokenSpec::org("org_team", "reader").user("user_erin"));
    let members = app.get("/v1/members", &reader).await;
    assert_eq!(members.status, 200, "{}", members.json);
    assert_eq!(members.json["data"][0]["user_id"], "user_dora");
    assert_eq!(members.json["data"][0]["deleted"], true);
}

// ---- the deletion list matches the schema --------------------------------------------------

#[tokio::test]
async fn every_tenant_owned_table_is_deleted_with_its_tenant() {
    let app = spawn_with_webhooks().await;
    let db = app.db.owner().await;
    let sql = if app.db.is_postgres() {
        "SELECT table_name AS name FROM information_schema.columns \
         WHERE table_schema = 'public' AND column_name = 'tenant_id' ORDER BY 1"
    } else {
        "SELECT m.name AS name FROM sqlite_master m JOIN pragma_table_info(m.name) c \
         WHERE m.type = 'table' AND c.name = 'tenant_id' ORDER BY 1"
    };
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            sql,
        ))
        .await
        .unwrap();
    let mut tables: Vec<String> = rows
        .iter()
        .map(|r| r.try_get::<String>("", "name").unwrap())
        .collect();
    tables.sort();
    let mut listed: Vec<String> = resonance_api::tenant::lifecycle::TENANT_OWNED_TABLES
        .iter()
        .map(|t| t.to_string())
        .collect();
    listed.sort();
    assert_eq!(
        tables, listed,
        "lifecycle::TENANT_OWNED_TABLES must name every table with a tenant_id"
    );
}
