//! Several instances as one service: a change applied by one instance reaches the caches of
//! every other at once (PostgreSQL `LISTEN/NOTIFY`; on SQLite the Apps of one process share
//! an in-process bus), and a lost listener connection leaves nothing stale behind.

use std::time::{Duration, Instant};

use resonance_tests::{
    TestApp, TokenSpec,
    fixtures::{self, admin},
    proxy::TcpProxy,
    webhooks::{add_member, deleted, deliver_ok, membership, remove_member, secret, user},
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

// ---- membership changes revoke session tokens already issued -------------------------------

/// `user`'s session token for `org` as `role`, issued now.
fn member_token(app: &TestApp, org: &str, user: &str, role: &str) -> String {
    app.token(TokenSpec::org(org, role).user(user))
}

/// Waits until a whole second has begun since now: a token minted then has a later `iat`
/// (whole seconds) than anything that happened before.
async fn next_second() {
    let now = chrono::Utc::now();
    let into = now.timestamp_subsec_millis() as u64;
    tokio::time::sleep(Duration::from_millis(1_000 - into + 20)).await;
}

#[tokio::test]
async fn a_removed_members_session_token_is_refused_by_every_instance_within_a_second() {
    let (a, b, c) = three_instances().await;
    add_member(&a, "org_a", "user_bob", "admin").await;
    add_member(&a, "org_a", "user_ann", "admin").await;
    let bob = member_token(&a, "org_a", "user_bob", "admin");
    let ann = member_token(&a, "org_a", "user_ann", "admin");
    // Bob in another organization, and in his personal workspace.
    let bob_elsewhere = member_token(&a, "org_other", "user_bob", "admin");
    let bob_personal = a.token(TokenSpec::personal("user_bob"));
    for token in [&bob, &ann, &bob_elsewhere, &bob_personal] {
        served_everywhere(&[&a, &b, &c], token).await;
    }

    remove_member(&a, "org_a", "user_bob", "admin").await;
    let at = Instant::now();
    refused_within(&b, &bob, at, "B").await;
    refused_within(&c, &bob, at, "C").await;
    refused_within(&a, &bob, at, "A").await;
    let reply = b.get("/v1/projects", &bob).await;
    let problem = reply.assert_problem(401, "unauthorized");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("membership changed"),
        "{problem}"
    );
    assert!(
        reply
            .header("www-authenticate")
            .is_some_and(|h| h.contains("invalid_token")),
        "{:?}",
        reply.header("www-authenticate")
    );
    // Only Bob, only in that organization.
    for token in [&ann, &bob_elsewhere, &bob_personal] {
        served_everywhere(&[&a, &b, &c], token).await;
    }

    // An instance that starts after the removal refuses the token as well (read from the
    // database), and so does one whose verified-token cache was emptied.
    let d = TestApp::spawn_on(a.clerk.clone(), a.db.shared(), |_| {}).await;
    d.get("/v1/projects", &bob)
        .await
        .assert_problem(401, "unauthorized");
    served_everywhere(&[&d], &ann).await;
}

#[tokio::test]
async fn a_role_change_revokes_older_session_tokens_and_newer_ones_work() {
    let (a, b, c) = three_instances().await;
    add_member(&a, "org_a", "user_bob", "admin").await;
    let before = member_token(&a, "org_a", "user_bob", "admin");
    served_everywhere(&[&a, &b, &c], &before).await;

    let demoted = membership(
        "organizationMembership.updated",
        "org_a",
        "user_bob",
        "reader",
        3_000,
    );
    deliver_ok(&a, &demoted, "applied").await;
    let at = Instant::now();
    refused_within(&b, &before, at, "B").await;
    refused_within(&c, &before, at, "C").await;
    refused_within(&a, &before, at, "A").await;

    // Clerk's next token names the new role; issued after the change, it works everywhere,
    // with what the new role allows.
    next_second().await;
    let after = member_token(&a, "org_a", "user_bob", "reader");
    served_everywhere(&[&a, &b, &c], &after).await;
    let write = b
        .post("/v1/projects", &after, serde_json::json!({ "name": "No" }))
        .await;
    write.assert_problem(403, "forbidden");
    // The old token stays refused.
    c.get("/v1/projects", &before)
        .await
        .assert_problem(401, "unauthorized");

    // A redelivery of the same change is stale and revokes nothing new.
    deliver_ok(&a, &demoted, "stale").await;
    served_everywhere(&[&a, &b, &c], &after).await;
}

#[tokio::test]
async fn a_revocation_missed_by_a_deaf_listener_is_read_from_the_database() {
    let a = TestApp::spawn_with(|args| args.clerk_webhook_secret = Some(secret())).await;
    let Some(host) = a.db.postgres_host() else {
        return; // SQLite: one process, no listener connection to lose.
    };
    let proxy = TcpProxy::start(&host).await;
    let via_proxy = a.db.app_url_via(&proxy.address);
    let c = TestApp::spawn_on(a.clerk.clone(), a.db.shared(), |args| {
        args.events_database_url = Some(via_proxy);
    })
    .await;
    add_member(&a, "org_a", "user_bob", "admin").await;
    let bob = member_token(&a, "org_a", "user_bob", "admin");
    let other = a.token(admin("org_other"));
    served_everywhere(&[&a, &c], &bob).await;

    // C cannot hear the removal: it forgets its cached tokens, and the self-contained token
    // would verify again, but the revocation is read from the database.
    proxy.cut();
    remove_member(&a, "org_a", "user_bob", "admin").await;
    let at = Instant::now();
    refused_within(&c, &bob, at, "C (listener cut)").await;
    served_everywhere(&[&c], &other).await;

    proxy.restore();
    tokio::time::sleep(Duration::from_millis(600)).await;
    c.get("/v1/projects", &bob)
        .await
        .assert_problem(401, "unauthorized");
}

// ---- live events (`GET /v1/events`) --------------------------------------------------------

/// One received Server-Sent Event.
#[derive(Debug)]
struct Event {
    id: String,
    kind: String,
    data: serde_json::Value,
}

/// An open event stream.
struct Stream {
    response: reqwest::Response,
    buffer: String,
}

/// Opens `GET /v1/events` on `app` (resuming after `last` when given).
async fn open(app: &TestApp, token: &str, last: Option<&str>) -> Stream {
    let mut request = app.request(reqwest::Method::GET, "/v1/events", token);
    if let Some(last) = last {
        request = request.header("Last-Event-ID", last);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    Stream {
        response,
        buffer: String::new(),
    }
}

impl Stream {
    /// The next event within `wait` (comments skipped), or None.
    async fn next_within(&mut self, wait: Duration) -> Option<Event> {
        let until = tokio::time::Instant::now() + wait;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut kind, mut data) = (String::new(), String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        kind = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = v.to_owned();
                    }
                }
                if kind.is_empty() {
                    continue; // a comment (keep-alive)
                }
                let data = serde_json::from_str(&data).expect("JSON data");
                return Some(Event { id, kind, data });
            }
            let chunk = tokio::time::timeout_at(until, self.response.chunk()).await;
            match chunk {
                Ok(Ok(Some(bytes))) => self.buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
                _ => return None,
            }
        }
    }

    /// The next event, which must come within 2 s, and belong to `tenant`.
    async fn next(&mut self, tenant: &str) -> Event {
        let event = self
            .next_within(Duration::from_secs(2))
            .await
            .expect("an event within 2 s");
        if event.kind != "resync" {
            assert_eq!(event.data["tenant_id"], tenant, "{event:?}");
        }
        event
    }

    /// No further event for a moment.
    async fn quiet(&mut self) {
        if let Some(event) = self.next_within(Duration::from_millis(400)).await {
            panic!("unexpected event {event:?}");
        }
    }
}

async fn create_task(app: &TestApp, token: &str, title: &str) -> serde_json::Value {
    let reply = app
        .post("/v1/tasks", token, serde_json::json!({ "title": title }))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.json);
    reply.json
}

#[tokio::test]
async fn a_change_through_one_instance_reaches_streams_of_another() {
    let (a, b, c) = three_instances().await;
    let acme = a.token(admin("org_acme"));
    let other = a.token(admin("org_other"));
    let mut acme_stream = open(&c, &acme, None).await;
    let mut other_stream = open(&c, &other, None).await;

    let created = create_task(&b, &acme, "Write the announcement").await;
    let id = created["id"].as_str().unwrap().to_owned();
    let event = acme_stream.next("org_acme").await;
    assert_eq!(event.kind, "task.created");
    assert_eq!(event.data["id"], id.as_str());
    assert_eq!(event.data["version"], 1);
    assert_eq!(event.data["resource"], created);

    let updated = a
        .patch(
            &format!("/v1/tasks/{id}"),
            &acme,
            serde_json::json!({ "completed": true }),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.json);
    let event = acme_stream.next("org_acme").await;
    assert_eq!(event.kind, "task.updated");
    assert_eq!(event.data["version"], 2);
    assert_eq!(event.data["resource"], updated.json);

    let deleted = b.delete(&format!("/v1/tasks/{id}"), &acme).await;
    assert_eq!(deleted.status, 204);
    let event = acme_stream.next("org_acme").await;
    assert_eq!(event.kind, "task.deleted");
    assert_eq!(event.data["id"], id.as_str());
    assert!(event.data.get("resource").is_none(), "{event:?}");
    acme_stream.quiet().await;

    // The other workspace heard none of it, only its own change.
    let mine = create_task(&a, &other, "Theirs").await;
    let event = other_stream.next("org_other").await;
    assert_eq!(event.kind, "task.created");
    assert_eq!(event.data["resource"], mine);
    other_stream.quiet().await;
    acme_stream.quiet().await;
}

#[tokio::test]
async fn a_client_resuming_with_last_event_id_gets_exactly_what_it_missed() {
    let (a, b, c) = three_instances().await;
    let acme = a.token(admin("org_acme"));
    let other = a.token(admin("org_other"));
    let mut stream = open(&c, &acme, None).await;
    create_task(&a, &acme, "one").await;
    let first = stream.next("org_acme").await;
    drop(stream);

    let mut missed = vec![];
    for title in ["two", "three", "four"] {
        missed.push(create_task(&b, &acme, title).await);
        create_task(&b, &other, title).await; // never seen by acme
    }
    let mut stream = open(&c, &acme, Some(&first.id)).await;
    let mut last_id: i64 = first.id.parse().unwrap();
    for expected in &missed {
        let event = stream.next("org_acme").await;
        assert_eq!(event.kind, "task.created");
        assert_eq!(&event.data["resource"], expected);
        let id: i64 = event.id.parse().unwrap();
        assert!(id > last_id, "ids increase");
        last_id = id;
    }
    stream.quiet().await;

    // An id the log does not hold (purged, or never this workspace's): refetch.
    let mut stream = open(&a, &acme, Some("999999999")).await;
    assert_eq!(stream.next("org_acme").await.kind, "resync");
    let mut stream = open(&a, &acme, Some("not-a-number")).await;
    assert_eq!(stream.next("org_acme").await.kind, "resync");
}

#[tokio::test]
async fn a_stream_carries_only_what_the_caller_may_read() {
    let a = TestApp::spawn().await;
    let admin_token = a.token(admin("org_acme"));
    let projects_only = a.token(
        resonance_tests::TokenSpec::org("org_acme", "guest").permissions(&["org:projects:read"]),
    );
    let mut stream = open(&a, &projects_only, None).await;

    create_task(&a, &admin_token, "hidden").await;
    let project = a
        .post(
            "/v1/projects",
            &admin_token,
            serde_json::json!({ "name": "Launch" }),
        )
        .await;
    assert_eq!(project.status, 201, "{}", project.json);
    let event = stream.next("org_acme").await;
    assert_eq!(event.kind, "project.created");
    assert_eq!(event.data["resource"], project.json);
    stream.quiet().await;

    // No read permission at all: 403.
    let nothing = a.token(resonance_tests::TokenSpec::org("org_acme", "guest"));
    a.get("/v1/events", &nothing)
        .await
        .assert_problem(403, "forbidden");
}

#[tokio::test]
async fn deleting_a_project_sends_task_deleted_for_each_of_its_tasks() {
    let (a, b, c) = three_instances().await;
    let acme = a.token(admin("org_acme"));
    let project = a
        .post(
            "/v1/projects",
            &acme,
            serde_json::json!({ "name": "Launch" }),
        )
        .await;
    assert_eq!(project.status, 201, "{}", project.json);
    let project_id = project.json["id"].as_str().unwrap().to_owned();
    let mut in_project = vec![];
    for title in ["one", "two", "three"] {
        let body = serde_json::json!({ "title": title, "project_id": project_id });
        let reply = b.post("/v1/tasks", &acme, body).await;
        assert_eq!(reply.status, 201, "{}", reply.json);
        in_project.push(reply.json["id"].as_str().unwrap().to_owned());
    }
    let elsewhere = create_task(&a, &acme, "not in the project").await;

    let mut stream = open(&c, &acme, None).await;
    let deleted = b.delete(&format!("/v1/projects/{project_id}"), &acme).await;
    assert_eq!(deleted.status, 204, "{}", deleted.json);

    let mut tasks_heard = vec![];
    for _ in &in_project {
        let event = stream.next("org_acme").await;
        assert_eq!(event.kind, "task.deleted", "{event:?}");
        assert!(event.data["version"].is_null(), "{event:?}");
        assert!(event.data.get("resource").is_none(), "{event:?}");
        tasks_heard.push(event.data["id"].as_str().unwrap().to_owned());
    }
    let event = stream.next("org_acme").await;
    assert_eq!(event.kind, "project.deleted", "{event:?}");
    assert_eq!(event.data["id"], project_id.as_str());
    stream.quiet().await;
    tasks_heard.sort();
    in_project.sort();
    assert_eq!(tasks_heard, in_project);

    // The task outside the project is still there; the others are gone.
    let reply = a
        .get(
            &format!("/v1/tasks/{}", elsewhere["id"].as_str().unwrap()),
            &acme,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    for id in &in_project {
        let reply = a.get(&format!("/v1/tasks/{id}"), &acme).await;
        assert_eq!(reply.status, 404, "{}", reply.json);
    }

    // A project without tasks: only its own event.
    let empty = a
        .post(
            "/v1/projects",
            &acme,
            serde_json::json!({ "name": "Empty" }),
        )
        .await;
    let empty_id = empty.json["id"].as_str().unwrap().to_owned();
    assert_eq!(stream.next("org_acme").await.kind, "project.created");
    let deleted = a.delete(&format!("/v1/projects/{empty_id}"), &acme).await;
    assert_eq!(deleted.status, 204, "{}", deleted.json);
    let event = stream.next("org_acme").await;
    assert_eq!(event.kind, "project.deleted", "{event:?}");
    assert_eq!(event.data["id"], empty_id.as_str());
    stream.quiet().await;
}

/// Writes through several instances at once all commit (on SQLite too: two Apps on one file
/// wait for its write lock instead of failing with "database is locked") and all reach a
/// stream, in the log's id order.
#[tokio::test]
async fn concurrent_changes_on_several_instances_all_reach_a_stream() {
    let (a, b, c) = three_instances().await;
    let acme = a.token(admin("org_acme"));
    let mut stream = open(&c, &acme, None).await;
    let writes = (0..12).map(|i| {
        let (app, token) = (if i % 2 == 0 { &a } else { &b }, acme.clone());
        async move { create_task(app, &token, &format!("task {i}")).await }
    });
    let created = futures_util::future::join_all(writes).await;
    let mut expected: Vec<String> = created.iter().map(|t| t["id"].to_string()).collect();
    let mut received = vec![];
    let mut last_id = 0i64;
    for _ in 0..created.len() {
        let event = stream.next("org_acme").await;
        assert_eq!(event.kind, "task.created");
        let id: i64 = event.id.parse().unwrap();
        assert!(id > last_id, "event ids increase");
        last_id = id;
        received.push(event.data["id"].to_string());
    }
    stream.quiet().await;
    expected.sort();
    received.sort();
    assert_eq!(received, expected);
}

/// A stream outlives neither its token nor a revocation: it ends at the token's `exp`.
#[tokio::test]
async fn a_stream_ends_when_its_token_expires() {
    let app = TestApp::spawn().await;
    let mut spec = admin("org_acme");
    spec.lifetime_secs = 2;
    let token = app.token(spec);
    let mut stream = open(&app, &token, None).await;
    let opened = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(6), async {
        while let Ok(Some(_)) = stream.response.chunk().await {}
    })
    .await;
    assert!(
        ended.is_ok(),
        "the stream is still open 6 s after it opened"
    );
    assert!(
        opened.elapsed() >= Duration::from_millis(500),
        "ended before the token expired: {:?}",
        opened.elapsed()
    );
}

/// Every write of projects, voices and generations is logged with what the API answered:
/// the kind, the id, the version and the body for a change, no body for a delete.
#[tokio::test]
async fn writes_of_every_resource_reach_the_stream_as_answered() {
    resonance_tests::fixtures::require_espeak();
    let app = TestApp::spawn().await;
    let token = app.token(admin("org_acme"));
    let mut stream = open(&app, &token, None).await;
    let changed = |event: &Event, kind: &str, reply: &serde_json::Value, version: i64| {
        assert_eq!(event.kind, kind, "{event:?}");
        assert_eq!(event.data["id"], reply["id"], "{event:?}");
        assert_eq!(event.data["version"], version, "{event:?}");
        assert_eq!(event.data["resource"], *reply, "{event:?}");
    };
    let deleted = |event: &Event, kind: &str, id: &serde_json::Value| {
        assert_eq!(event.kind, kind, "{event:?}");
        assert_eq!(event.data["id"], *id, "{event:?}");
        assert!(event.data.get("resource").is_none(), "{event:?}");
    };

    let project = fixtures::create_project(&app, &token, "Launch").await;
    changed(
        &stream.next("org_acme").await,
        "project.created",
        &project,
        1,
    );
    let path = format!("/v1/projects/{}", project["id"].as_str().unwrap());
    let renamed = app
        .patch(&path, &token, serde_json::json!({ "name": "Relaunch" }))
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.json);
    changed(
        &stream.next("org_acme").await,
        "project.updated",
        &renamed.json,
        2,
    );

    let voice = fixtures::create_voice(&app, &token, "Narrator", &fixtures::wav(22_050, 2.0)).await;
    changed(&stream.next("org_acme").await, "voice.created", &voice, 1);
    let path = format!("/v1/voices/{}", voice["id"].as_str().unwrap());
    let updated = app
        .patch(&path, &token, serde_json::json!({ "name": "Storyteller" }))
        .await;
    assert_eq!(updated.status, 200, "{}", updated.json);
    changed(
        &stream.next("org_acme").await,
        "voice.updated",
        &updated.json,
        2,
    );
    assert_eq!(app.delete(&path, &token).await.status, 204);
    deleted(
        &stream.next("org_acme").await,
        "voice.deleted",
        &voice["id"],
    );

    let system = fixtures::system_voice(&app, &token, "Aria").await;
    let generation = fixtures::create_generation(
        &app,
        &token,
        serde_json::json!({ "voice_id": system["id"], "text": "Hello.", "format": "wav" }),
    )
    .await;
    changed(
        &stream.next("org_acme").await,
        "generation.created",
        &generation,
        1,
    );
    let path = format!("/v1/generations/{}", generation["id"].as_str().unwrap());
    assert_eq!(app.delete(&path, &token).await.status, 204);
    deleted(
        &stream.next("org_acme").await,
        "generation.deleted",
        &generation["id"],
    );
    stream.quiet().await;
}
