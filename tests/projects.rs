//! Projects as a client sees them: create, rename, list, and delete with their tasks.

use std::collections::HashSet;

use resonance_tests::{
    TestApp,
    fixtures::{admin, create_project, create_task, ids},
};
use serde_json::json;

#[tokio::test]
async fn project_crud_and_deleting_a_project_deletes_its_tasks() {
    let app = TestApp::spawn().await;
    let token = app.token(admin("org_acme"));
    let doomed = create_project(&app, &token, "Doomed").await;
    let kept = create_project(&app, &token, "Kept").await;
    for i in 0..3 {
        create_task(
            &app,
            &token,
            json!({ "title": format!("doomed {i}"), "project_id": doomed["id"] }),
        )
        .await;
    }
    create_task(
        &app,
        &token,
        json!({ "title": "kept", "project_id": kept["id"] }),
    )
    .await;
    create_task(&app, &token, json!({ "title": "inbox" })).await;
    assert_eq!(app.db.count("tasks").await, 5);

    let renamed = app
        .patch(
            &format!("/v1/projects/{}", doomed["id"].as_str().unwrap()),
            &token,
            json!({ "name": "Doomed!" }),
        )
        .await;
    assert_eq!(renamed.status, 200);
    assert_eq!(renamed.json["name"], "Doomed!");

    let list = app.get("/v1/projects", &token).await;
    assert_eq!(list.status, 200);
    assert_eq!(
        ids(&list.json),
        vec![kept["id"].as_str().unwrap(), doomed["id"].as_str().unwrap()]
    );

    let deleted = app
        .delete(
            &format!("/v1/projects/{}", doomed["id"].as_str().unwrap()),
            &token,
        )
        .await;
    assert_eq!(deleted.status, 204);
    assert_eq!(
        app.db.count("tasks").await,
        2,
        "the project's tasks went with it"
    );
    assert_eq!(app.db.count("projects").await, 1);
    let remaining = app.get("/v1/tasks", &token).await;
    let titles: HashSet<&str> = remaining.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, HashSet::from(["kept", "inbox"]));
}
