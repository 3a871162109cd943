//! `/v1/members`: the workspace's members as Clerk webhooks synced them, and the assignee check
//! on tasks that follows from them.

use resonance_tests::{
    Reply, TokenSpec,
    webhooks::{add_member, add_user, remove_member, spawn_with_webhooks},
};
use serde_json::{Value, json};

#[tokio::test]
async fn members_lists_the_workspace_members_page_by_page() {
    let app = spawn_with_webhooks().await;
    for (i, user_id) in ["user_m1", "user_m2", "user_m3"].iter().enumerate() {
        add_member(
            &app,
            "org_m",
            user_id,
            if i == 0 { "admin" } else { "member" },
        )
        .await;
    }
    add_user(&app, "user_m1", "Mona").await;
    add_member(&app, "org_other", "user_x", "admin").await;

    let token = app.token(TokenSpec::org("org_m", "reader").user("user_m3"));
    let first = app.get("/v1/members?limit=2", &token).await;
    assert_eq!(first.status, 200, "{}", first.json);
    let data = first.json["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    let cursor = first.json["next_cursor"].as_str().expect("a next page");
    let second = app
        .get(&format!("/v1/members?limit=2&cursor={cursor}"), &token)
        .await;
    assert_eq!(second.status, 200, "{}", second.json);
    assert!(second.json["next_cursor"].is_null());
    let mut all: Vec<Value> = data.clone();
    all.extend(second.json["data"].as_array().unwrap().iter().cloned());
    let ids: Vec<&str> = all.iter().map(|m| m["user_id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        ["user_m3", "user_m2", "user_m1"],
        "newest first, no other org"
    );

    let mona = &all[2];
    assert_eq!(mona["role"], "admin");
    assert_eq!(mona["name"], "Mona Tester", "the synced user profile wins");
    assert_eq!(mona["email"], "mona@example.com");
    assert_eq!(mona["deleted"], false);
    let m2 = &all[1];
    assert_eq!(m2["role"], "member");
    assert_eq!(
        m2["name"], "Pub user_m2",
        "membership public data until the user syncs"
    );
    assert_eq!(m2["email"], "user_m2@example.com");
    assert_eq!(m2["image_url"], "https://img.clerk.com/user_m2.png");

    // A removed membership disappears.
    remove_member(&app, "org_m", "user_m2", "member").await;
    let list = app.get("/v1/members", &token).await;
    let ids: Vec<&str> = list.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["user_m3", "user_m1"]);

    app.get("/v1/members?limit=0", &token)
        .await
        .assert_problem(422, "validation_failed");
    let unauthenticated = Reply::send(app.client.get(app.url("/v1/members"))).await;
    unauthenticated.assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn tasks_can_only_be_assigned_to_members_once_memberships_are_known() {
    let app = spawn_with_webhooks().await;
    let token = app.token(TokenSpec::org("org_as", "admin"));
    // No membership data yet: any well-formed user id is accepted.
    let task = app
        .post(
            "/v1/tasks",
            &token,
            json!({"title": "Early", "assignee_user_id": "user_anyone"}),
        )
        .await;
    assert_eq!(task.status, 201, "{}", task.json);

    add_member(&app, "org_as", "user_alice", "admin").await;
    add_member(&app, "org_as", "user_bob", "member").await;
    add_member(&app, "org_elsewhere", "user_carol", "member").await;

    let ok = app
        .post(
            "/v1/tasks",
            &token,
            json!({"title": "Bob's", "assignee_user_id": "user_bob"}),
        )
        .await;
    assert_eq!(ok.status, 201, "{}", ok.json);
    let id = ok.json["id"].as_str().unwrap().to_owned();

    for stranger in ["user_carol", "user_nobody"] {
        let reply = app
            .post(
                "/v1/tasks",
                &token,
                json!({"title": "No", "assignee_user_id": stranger}),
            )
            .await;
        let problem = reply.assert_problem(422, "validation_failed");
        assert_eq!(problem["errors"][0]["field"], "assignee_user_id");
        let reply = app
            .patch(
                &format!("/v1/tasks/{id}"),
                &token,
                json!({"assignee_user_id": stranger}),
            )
            .await;
        let problem = reply.assert_problem(422, "validation_failed");
        assert_eq!(problem["errors"][0]["field"], "assignee_user_id");
    }
    let reply = app
        .patch(
            &format!("/v1/tasks/{id}"),
            &token,
            json!({"assignee_user_id": "user_alice"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    let reply = app
        .patch(
            &format!("/v1/tasks/{id}"),
            &token,
            json!({"assignee_user_id": null}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);

    // A removed member can no longer be assigned.
    remove_member(&app, "org_as", "user_bob", "member").await;
    let reply = app
        .post(
            "/v1/tasks",
            &token,
            json!({"title": "Gone", "assignee_user_id": "user_bob"}),
        )
        .await;
    reply.assert_problem(422, "validation_failed");
}
