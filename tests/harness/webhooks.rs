//! Clerk webhooks as Svix delivers them: an App with a signing secret, signed deliveries, and
//! the events Clerk sends (organizations, users, memberships, deletions).

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::{Reply, TestApp, fixtures::now};

/// The signing key behind [`secret`].
pub const KEY: &[u8] = b"resonance-webhook-test-key-0123456789abcdef";

/// The webhook signing secret, as Clerk's dashboard shows it.
pub fn secret() -> String {
    format!("whsec_{}", STANDARD.encode(KEY))
}

/// base64 HMAC-SHA256 over `{id}.{timestamp}.{body}`, exactly as Svix signs.
pub fn sign_with(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// An App that accepts webhooks signed with [`KEY`].
pub async fn spawn_with_webhooks() -> TestApp {
    TestApp::spawn_with(|args| args.clerk_webhook_secret = Some(secret())).await
}

/// Posts `body` to the Clerk webhook endpoint with exactly these headers.
pub async fn post_raw(app: &TestApp, headers: &[(&str, String)], body: &str) -> Reply {
    post_raw_to(app, "/webhooks/clerk", headers, body).await
}

/// Posts `body` to a webhook endpoint (`path`) with exactly these headers.
pub async fn post_raw_to(
    app: &TestApp,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> Reply {
    let mut request = app
        .client
        .post(app.url(path))
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    Reply::from(request.send().await.unwrap()).await
}

/// Delivers `event` as Svix would: signed now, with this `svix-id`.
pub async fn deliver(app: &TestApp, svix_id: &str, event: &Value) -> Reply {
    let body = event.to_string();
    let ts = now();
    let signature = format!("v1,{}", sign_with(KEY, svix_id, ts, &body));
    post_raw(
        app,
        &[
            ("svix-id", svix_id.into()),
            ("svix-timestamp", ts.to_string()),
            ("svix-signature", signature),
        ],
        &body,
    )
    .await
}

/// Delivers `event` under a fresh `svix-id` and expects 200 with `outcome`.
pub async fn deliver_ok(app: &TestApp, event: &Value, outcome: &str) {
    let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
    let reply = deliver(app, &id, event).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.json["outcome"], outcome, "{event}");
}

/// An event envelope of type `kind` around `data`.
pub fn event(kind: &str, data: Value) -> Value {
    json!({
        "type": kind,
        "object": "event",
        "data": data,
        "timestamp": chrono::Utc::now().timestamp_millis(),
        "instance_id": "ins_test",
    })
}

/// `organization.created` / `organization.updated`.
pub fn organization(kind: &str, id: &str, name: &str, updated_at: i64) -> Value {
    event(
        kind,
        json!({
            "id": id,
            "object": "organization",
            "name": name,
            "slug": name.to_lowercase().replace(' ', "-"),
            "image_url": "https://img.clerk.com/org.png",
            "created_at": 1_000,
            "updated_at": updated_at,
            "members_count": 1,
            "public_metadata": {},
        }),
    )
}

/// `user.created` / `user.updated`: `{first} Tester`, primary email `{first}@example.com`.
pub fn user(kind: &str, id: &str, first: &str, updated_at: i64) -> Value {
    event(
        kind,
        json!({
            "id": id,
            "object": "user",
            "first_name": first,
            "last_name": "Tester",
            "username": null,
            "image_url": format!("https://img.clerk.com/{id}.png"),
            "primary_email_address_id": "idn_primary",
            "email_addresses": [
                {"id": "idn_other", "object": "email_address", "email_address": "other@example.com"},
                {"id": "idn_primary", "object": "email_address", "email_address": format!("{}@example.com", first.to_lowercase())},
            ],
            "created_at": 1_000,
            "updated_at": updated_at,
        }),
    )
}

/// `organization.deleted` / `user.deleted`.
pub fn deleted(kind: &str, id: &str, object: &str) -> Value {
    event(kind, json!({"id": id, "object": object, "deleted": true}))
}

/// `organizationMembership.created` / `.updated` / `.deleted`: `user` in `org` as `role`.
pub fn membership(kind: &str, org: &str, user: &str, role: &str, updated_at: i64) -> Value {
    event(
        kind,
        json!({
            "id": format!("orgmem_{org}_{user}"),
            "object": "organization_membership",
            "role": format!("org:{role}"),
            "permissions": [],
            "organization": {"id": org, "object": "organization", "name": org, "slug": org},
            "public_user_data": {
                "user_id": user,
                "first_name": "Pub",
                "last_name": user,
                "image_url": format!("https://img.clerk.com/{user}.png"),
                "identifier": format!("{user}@example.com"),
                "has_image": true,
            },
            "created_at": 1_000,
            "updated_at": updated_at,
        }),
    )
}

/// Clerk says organization `id` named `name` was created (updated at 2 000), and the App
/// applies it.
pub async fn add_organization(app: &TestApp, id: &str, name: &str) {
    let event = organization("organization.created", id, name, 2_000);
    deliver_ok(app, &event, "applied").await;
}

/// Clerk says user `id` (`{first} Tester`) signed up (`user.created`, updated at 2 000), and the
/// App applies it.
pub async fn add_user(app: &TestApp, id: &str, first: &str) {
    let event = user("user.created", id, first, 2_000);
    deliver_ok(app, &event, "applied").await;
}

/// Clerk says `user` joined `org` as `role` (`organizationMembership.created`, updated at 2 000),
/// and the App applies it.
pub async fn add_member(app: &TestApp, org: &str, user: &str, role: &str) {
    let event = membership("organizationMembership.created", org, user, role, 2_000);
    deliver_ok(app, &event, "applied").await;
}

/// Clerk says `user` left `org` (`organizationMembership.deleted`, updated at 3 000), and the
/// App applies it.
pub async fn remove_member(app: &TestApp, org: &str, user: &str, role: &str) {
    let event = membership("organizationMembership.deleted", org, user, role, 3_000);
    deliver_ok(app, &event, "applied").await;
}
