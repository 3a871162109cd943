//! Tasks as a client sees them: lifecycle, filters, validation, ETags and conditional requests,
//! who may write, and pagination under concurrent inserts.

use std::collections::HashSet;

use reqwest::Method;
use resonance_tests::{
    Reply, TestApp, TokenSpec,
    fixtures::{admin, create_project, create_task, id, ids},
};
use serde_json::{Value, json};

#[tokio::test]
async fn task_lifecycle_in_a_project_and_the_inbox() {
    let app = TestApp::spawn().await;
    let token = app.token(admin("org_acme"));
    let project = create_project(&app, &token, "  Launch  ").await;
    assert_eq!(project["name"], "Launch", "names are trimmed");

    let created = app
        .post(
            "/v1/tasks",
            &token,
            json!({
                "title": "Write the announcement",
                "description": "Two paragraphs",
                "project_id": project["id"],
                "due_at": "2026-12-01T09:00:00Z",
                "assignee_user_id": "user_bob",
            }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.json);
    let task = &created.json;
    let id = task["id"].as_str().unwrap();
    assert_eq!(
        created.header("location"),
        Some(format!("/v1/tasks/{id}").as_str())
    );
    assert!(created.header("etag").is_some());
    assert_eq!(task["project_id"], project["id"]);
    assert_eq!(task["completed"], false);
    assert_eq!(task["completed_at"], Value::Null);
    assert_eq!(task["due_at"], "2026-12-01T09:00:00Z");
    assert_eq!(task["created_by_user_id"], "user_alice");

    // Complete it: completed_at is set; reopen: cleared.
    let done = app
        .patch(
            &format!("/v1/tasks/{id}"),
            &token,
            json!({ "completed": true }),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.json);
    assert_eq!(done.json["completed"], true);
    assert!(done.json["completed_at"].is_string());
    let reopened = app
        .patch(
            &format!("/v1/tasks/{id}"),
            &token,
            json!({ "completed": false }),
        )
        .await;
    assert_eq!(reopened.json["completed_at"], Value::Null);

    // Move to the inbox, clear the description, keep the rest.
    let moved = app
        .patch(
            &format!("/v1/tasks/{id}"),
            &token,
            json!({ "project_id": null, "description": null, "title": " Announce " }),
        )
        .await;
    assert_eq!(moved.status, 200, "{}", moved.json);
    assert_eq!(moved.json["project_id"], Value::Null);
    assert_eq!(moved.json["description"], Value::Null);
    assert_eq!(moved.json["title"], "Announce");
    assert_eq!(moved.json["assignee_user_id"], "user_bob");

    let fetched = app.get(&format!("/v1/tasks/{id}"), &token).await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.json["title"], "Announce");

    let deleted = app.delete(&format!("/v1/tasks/{id}"), &token).await;
    assert_eq!(deleted.status, 204);
    app.get(&format!("/v1/tasks/{id}"), &token)
        .await
        .assert_problem(404, "not_found");
    app.delete(&format!("/v1/tasks/{id}"), &token)
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test]
async fn filters_select_the_right_tasks() {
    let app = TestApp::spawn().await;
    let token = app.token(admin("org_acme"));
    let project = create_project(&app, &token, "P").await;
    let a = create_task(
        &app,
        &token,
        json!({ "title": "Buy MILK", "project_id": project["id"] }),
    )
    .await;
    let b = create_task(
        &app,
        &token,
        json!({ "title": "100% done_ish", "assignee_user_id": "user_bob" }),
    )
    .await;
    let c = create_task(
        &app,
        &token,
        json!({ "title": "milkshake", "assignee_user_id": "user_bob" }),
    )
    .await;
    app.patch(
        &format!("/v1/tasks/{}", c["id"].as_str().unwrap()),
        &token,
        json!({ "completed": true }),
    )
    .await;

    let query = |q: &str| {
        let token = token.clone();
        let app = &app;
        let q = q.to_owned();
        async move { ids(&app.get(&format!("/v1/tasks?{q}"), &token).await.json) }
    };
    assert_eq!(query("inbox=true").await, vec![id(&c), id(&b)]);
    assert_eq!(
        query(&format!("project_id={}", id(&project))).await,
        vec![id(&a)]
    );
    // Filters narrow one another: an inbox task has no project, so both together match nothing.
    assert_eq!(
        query(&format!("inbox=true&project_id={}", id(&project))).await,
        Vec::<String>::new()
    );
    assert_eq!(query("completed=true").await, vec![id(&c)]);
    assert_eq!(query("completed=false").await, vec![id(&b), id(&a)]);
    assert_eq!(
        query("q=milk").await,
        vec![id(&c), id(&a)],
        "case-insensitive"
    );
    assert_eq!(query("q=%25").await, vec![id(&b)], "% is taken literally");
    assert_eq!(query("q=_").await, vec![id(&b)], "_ is taken literally");
    assert_eq!(
        query("assignee_user_id=user_bob&completed=false").await,
        vec![id(&b)]
    );
}

#[tokio::test]
async fn validation_errors_list_the_fields_and_change_nothing() {
    let app = TestApp::spawn().await;
    let token = app.token(admin("org_acme"));
    let other = app.token(admin("org_other"));
    let foreign_project = create_project(&app, &other, "Theirs").await;

    let cases = [
        (json!({ "title": "   " }), "title"),
        (json!({ "title": "x".repeat(501) }), "title"),
        (
            json!({ "title": "ok", "description": "d".repeat(10_001) }),
            "description",
        ),
        (
            json!({ "title": "ok", "project_id": foreign_project["id"] }),
            "project_id",
        ),
        (
            json!({ "title": "ok", "assignee_user_id": "bob" }),
            "assignee_user_id",
        ),
    ];
    for (body, field) in cases {
        let reply = app.post("/v1/tasks", &token, body.clone()).await;
        let problem = reply.assert_problem(422, "validation_failed");
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
    }
    // Wrong shapes: unknown fields, wrong types, missing title.
    for body in [
        json!({ "title": "ok", "priority": 1 }),
        json!({ "title": 5 }),
        json!({}),
        json!({ "title": "ok", "due_at": "tomorrow" }),
    ] {
        app.post("/v1/tasks", &token, body)
            .await
            .assert_problem(422, "validation_failed");
    }
    let project = app
        .post("/v1/projects", &token, json!({ "name": "" }))
        .await;
    assert_eq!(
        project.assert_problem(422, "validation_failed")["errors"][0]["field"],
        "name"
    );
    let long = app
        .post("/v1/projects", &token, json!({ "name": "n".repeat(201) }))
        .await;
    long.assert_problem(422, "validation_failed");

    // Several problems at once are all listed.
    let reply = app
        .post(
            "/v1/tasks",
            &token,
            json!({ "title": "", "description": "d".repeat(10_001) }),
        )
        .await;
    let fields: Vec<&str> = reply.assert_problem(422, "validation_failed")["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["title", "description"]);

    for q in ["limit=0", "limit=201", "cursor=not-a-cursor"] {
        app.get(&format!("/v1/tasks?{q}"), &token)
            .await
            .assert_problem(422, "validation_failed");
    }
    app.get("/v1/tasks?completed=maybe", &token)
        .await
        .assert_problem(400, "invalid_query");
    assert_eq!(app.db.count("tasks").await, 0, "nothing was stored");
    assert_eq!(app.db.count("projects").await, 1);
}

#[tokio::test]
async fn etags_and_if_match_guard_against_lost_updates() {
    let app = TestApp::spawn().await;
    let token = app.token(admin("org_acme"));
    let task = create_task(&app, &token, json!({ "title": "v1" })).await;
    let path = format!("/v1/tasks/{}", task["id"].as_str().unwrap());
    let read = app.get(&path, &token).await;
    let etag = read.header("etag").unwrap().to_owned();

    let not_modified = app
        .request(Method::GET, &path, &token)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status().as_u16(), 304);

    let first = Reply::send(
        app.request(Method::PATCH, &path, &token)
            .header("if-match", &etag)
            .json(&json!({ "title": "v2" })),
    )
    .await;
    assert_eq!(first.status, 200);
    let new_etag = first.header("etag").unwrap().to_owned();
    assert_ne!(new_etag, etag);

    let stale = Reply::send(
        app.request(Method::PATCH, &path, &token)
            .header("if-match", &etag)
            .json(&json!({ "title": "lost update" })),
    )
    .await;
    stale.assert_problem(412, "precondition_failed");
    let stale_delete = Reply::send(
        app.request(Method::DELETE, &path, &token)
            .header("if-match", &etag),
    )
    .await;
    stale_delete.assert_problem(412, "precondition_failed");
    assert_eq!(
        app.get(&path, &token).await.json["title"],
        "v2",
        "stale writes changed nothing"
    );

    let fresh_delete = app
        .request(Method::DELETE, &path, &token)
        .header("if-match", &new_etag)
        .send()
        .await
        .unwrap();
    assert_eq!(fresh_delete.status().as_u16(), 204);
}

/// GET with `If-None-Match` → (status, ETag, body bytes).
async fn conditional_get(
    app: &TestApp,
    path: &str,
    token: &str,
    etag: &str,
) -> (u16, String, usize) {
    let response = app
        .request(Method::GET, path, token)
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let tag = response.headers()["etag"].to_str().unwrap().to_owned();
    (status, tag, response.bytes().await.unwrap().len())
}

#[tokio::test]
async fn list_pages_answer_304_until_a_row_on_them_changes() {
    let app = TestApp::spawn().await;
    let token = app.token(admin("org_acme"));
    let task = create_task(&app, &token, json!({ "title": "poll me" })).await;
    create_project(&app, &token, "Polled").await;

    let list = app.get("/v1/tasks", &token).await;
    assert_eq!(list.status, 200);
    let etag = list.header("etag").expect("list ETag").to_owned();
    assert!(etag.starts_with("W/\""), "weak validator: {etag}");
    assert_eq!(
        conditional_get(&app, "/v1/tasks", &token, &etag).await,
        (304, etag.clone(), 0),
        "unchanged page: 304 with the same ETag and no body"
    );
    // A filter is a different page: its own representation, its own ETag.
    let completed = app.get("/v1/tasks?completed=true", &token).await;
    assert_ne!(completed.header("etag").unwrap(), etag);

    // Completing the task changes the page it is on.
    let path = format!("/v1/tasks/{}", task["id"].as_str().unwrap());
    let patched = app.patch(&path, &token, json!({ "completed": true })).await;
    assert_eq!(patched.status, 200, "{}", patched.json);
    let (status, new_etag, len) = conditional_get(&app, "/v1/tasks", &token, &etag).await;
    assert_eq!(status, 200, "a changed page answers 200");
    assert!(len > 0);
    assert_ne!(new_etag, etag);

    // The other list endpoints follow the same rule.
    let projects = app.get("/v1/projects", &token).await;
    let projects_etag = projects.header("etag").expect("projects ETag").to_owned();
    let (status, _, _) = conditional_get(&app, "/v1/projects", &token, &projects_etag).await;
    assert_eq!(status, 304);
    create_project(&app, &token, "Another").await;
    let (status, _, _) = conditional_get(&app, "/v1/projects", &token, &projects_etag).await;
    assert_eq!(status, 200, "a new project changes the first page");
}

#[tokio::test]
async fn roles_decide_who_may_write() {
    let app = TestApp::spawn().await;
    let admin_token = app.token(admin("org_acme"));
    let task = create_task(&app, &admin_token, json!({ "title": "shared" })).await;
    let task_path = format!("/v1/tasks/{}", task["id"].as_str().unwrap());
    let project = create_project(&app, &admin_token, "P").await;
    let project_path = format!("/v1/projects/{}", project["id"].as_str().unwrap());

    // Members write.
    let member = app.token(TokenSpec::org("org_acme", "member").user("user_bob"));
    assert_eq!(
        app.post("/v1/tasks", &member, json!({ "title": "by member" }))
            .await
            .status,
        201
    );
    assert_eq!(
        app.patch(&task_path, &member, json!({ "completed": true }))
            .await
            .status,
        200
    );
    assert_eq!(
        app.post("/v1/projects", &member, json!({ "name": "M" }))
            .await
            .status,
        201
    );

    // Readers read, and get 403 naming the permission on every write.
    for reader in [
        app.token(TokenSpec::org("org_acme", "reader").user("user_carol")),
        app.token(TokenSpec::org("org_acme", "reader").user("user_carol").v1()),
    ] {
        assert_eq!(app.get("/v1/tasks", &reader).await.status, 200);
        assert_eq!(app.get(&task_path, &reader).await.status, 200);
        assert_eq!(app.get("/v1/projects", &reader).await.status, 200);
        let denied = app
            .post("/v1/tasks", &reader, json!({ "title": "nope" }))
            .await;
        assert!(
            denied.assert_problem(403, "forbidden")["detail"]
                .as_str()
                .unwrap()
                .contains("org:tasks:write")
        );
        app.patch(&task_path, &reader, json!({ "title": "nope" }))
            .await
            .assert_problem(403, "forbidden");
        app.delete(&task_path, &reader)
            .await
            .assert_problem(403, "forbidden");
        app.post("/v1/projects", &reader, json!({ "name": "nope" }))
            .await
            .assert_problem(403, "forbidden");
        app.patch(&project_path, &reader, json!({ "name": "nope" }))
            .await
            .assert_problem(403, "forbidden");
        app.delete(&project_path, &reader)
            .await
            .assert_problem(403, "forbidden");
    }

    // Explicit token permissions win over role defaults for that feature.
    let limited = app.token(TokenSpec::org("org_acme", "member").permissions(&["org:tasks:read"]));
    assert_eq!(app.get("/v1/tasks", &limited).await.status, 200);
    app.post("/v1/tasks", &limited, json!({ "title": "nope" }))
        .await
        .assert_problem(403, "forbidden");
    assert_eq!(
        app.post("/v1/projects", &limited, json!({ "name": "still ok" }))
            .await
            .status,
        201
    );

    // API keys: scopes grant exactly what they name.
    app.clerk
        .add_machine_token("ak_reader_key", "org_acme", &["tasks:read"]);
    app.clerk.add_machine_token(
        "ak_writer_key",
        "org_acme",
        &["org:tasks:read", "org:tasks:write"],
    );
    assert_eq!(
        app.get("/v1/tasks", "ak_reader_key").await.json["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    app.post("/v1/tasks", "ak_reader_key", json!({ "title": "nope" }))
        .await
        .assert_problem(403, "forbidden");
    app.get("/v1/projects", "ak_reader_key")
        .await
        .assert_problem(403, "forbidden");
    let by_key = app
        .post("/v1/tasks", "ak_writer_key", json!({ "title": "by key" }))
        .await;
    assert_eq!(by_key.status, 201, "{}", by_key.json);

    // Personal workspace: everything on its own data.
    let personal = app.token(TokenSpec::personal("user_dave"));
    assert_eq!(
        app.post("/v1/projects", &personal, json!({ "name": "Home" }))
            .await
            .status,
        201
    );
    assert_eq!(
        app.post("/v1/tasks", &personal, json!({ "title": "Groceries" }))
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn pagination_neither_skips_nor_repeats_while_others_insert() {
    let app = TestApp::spawn().await;
    let token = app.token(admin("org_acme"));
    let mut seeded = HashSet::new();
    for i in 0..60 {
        seeded.insert(
            create_task(&app, &token, json!({ "title": format!("seed {i}") })).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }

    let writer = {
        let client = app.client.clone();
        let url = app.url("/v1/tasks");
        let token = token.clone();
        tokio::spawn(async move {
            for i in 0..30 {
                let reply = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({ "title": format!("concurrent {i}") }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(reply.status().as_u16(), 201);
            }
        })
    };

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let first_page_start;
    {
        let page = app.get("/v1/tasks?limit=7", &token).await;
        first_page_start = page.json["data"][0]["id"].as_str().unwrap().to_owned();
        seen.extend(ids(&page.json));
        cursor = page.json["next_cursor"]
            .as_str()
            .map(str::to_owned)
            .or(cursor);
    }
    while let Some(c) = cursor.take() {
        let page = app
            .get(&format!("/v1/tasks?limit=7&cursor={c}"), &token)
            .await;
        assert_eq!(page.status, 200, "{}", page.json);
        seen.extend(ids(&page.json));
        cursor = page.json["next_cursor"].as_str().map(str::to_owned);
    }
    writer.await.unwrap();

    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no row repeated");
    // Everything older than the first row seen is present: nothing skipped.
    let older_than_start: HashSet<String> = seeded
        .iter()
        .filter(|id| id.as_str() <= first_page_start.as_str())
        .cloned()
        .collect();
    assert!(older_than_start.is_subset(&unique), "no seeded row skipped");
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first, stable order");
    assert_eq!(
        app.get("/v1/tasks?limit=200", &token).await.json["data"]
            .as_array()
            .unwrap()
            .len(),
        90
    );
}
