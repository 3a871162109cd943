//! Clerk webhooks (Svix-signed): verification, idempotency, ordering and the directory they
//! sync. What the synced directory is used for lives with its resource: members.rs (members and
//! assignees) and workspaces.rs (deleting a workspace).

use resonance_tests::{
    Reply, TestApp,
    fixtures::{now, scalar, stored},
    webhooks::{
        KEY, deliver, deliver_ok, event, membership, organization, post_raw, sign_with,
        spawn_with_webhooks, user,
    },
};
use serde_json::json;

// ---- verification -------------------------------------------------------------------------

#[tokio::test]
async fn without_a_secret_the_endpoint_is_not_configured() {
    let app = TestApp::spawn().await;
    let body = organization("organization.created", "org_a", "A", 2_000).to_string();
    let ts = now();
    let reply = post_raw(
        &app,
        &[
            ("svix-id", "msg_1".into()),
            ("svix-timestamp", ts.to_string()),
            (
                "svix-signature",
                format!("v1,{}", sign_with(KEY, "msg_1", ts, &body)),
            ),
        ],
        &body,
    )
    .await;
    reply.assert_problem(503, "service_unavailable");
    assert_eq!(app.db.count("webhook_deliveries").await, 0);
}

#[tokio::test]
async fn a_good_signature_is_applied() {
    let app = spawn_with_webhooks().await;
    deliver_ok(
        &app,
        &organization("organization.created", "org_acme", "Acme Corp", 2_000),
        "applied",
    )
    .await;
    assert_eq!(
        stored(&app, "SELECT name FROM tenants WHERE id = 'org_acme'").await,
        Some(Some("Acme Corp".into()))
    );
    assert_eq!(
        stored(&app, "SELECT slug FROM tenants WHERE id = 'org_acme'").await,
        Some(Some("acme-corp".into()))
    );
    assert_eq!(
        stored(&app, "SELECT kind FROM tenants WHERE id = 'org_acme'").await,
        Some(Some("organization".into()))
    );
    assert_eq!(app.db.count("webhook_deliveries").await, 1);
}

#[tokio::test]
async fn bad_signatures_are_rejected_with_no_side_effect() {
    let app = spawn_with_webhooks().await;
    let body = organization("organization.created", "org_a", "A", 2_000).to_string();
    let ts = now();
    let headers = |signature: String| {
        vec![
            ("svix-id", "msg_bad".to_string()),
            ("svix-timestamp", ts.to_string()),
            ("svix-signature", signature),
        ]
    };
    let cases = [
        // Another key.
        format!("v1,{}", sign_with(b"some-other-key", "msg_bad", ts, &body)),
        // Signed over another id.
        format!("v1,{}", sign_with(KEY, "msg_other", ts, &body)),
        // Signed over another timestamp.
        format!("v1,{}", sign_with(KEY, "msg_bad", ts - 1, &body)),
        // Signed over another body.
        format!(
            "v1,{}",
            sign_with(KEY, "msg_bad", ts, &body.replace("\"A\"", "\"B\""))
        ),
        // The right signature under another version tag.
        format!("v2,{}", sign_with(KEY, "msg_bad", ts, &body)),
        // Not base64, empty, no version.
        "v1,!!!not-base64!!!".into(),
        "v1,".into(),
        sign_with(KEY, "msg_bad", ts, &body),
    ];
    for signature in cases {
        let reply = post_raw(&app, &headers(signature.clone()), &body).await;
        reply.assert_problem(400, "webhook_signature_invalid");
    }
    // The right signature over a tampered body.
    let good = format!("v1,{}", sign_with(KEY, "msg_bad", ts, &body));
    let tampered = body.replace("\"A\"", "\"Evil\"");
    post_raw(&app, &headers(good), &tampered)
        .await
        .assert_problem(400, "webhook_signature_invalid");

    assert_eq!(app.db.count("webhook_deliveries").await, 0);
    assert_eq!(app.db.count("tenants").await, 0);
}

#[tokio::test]
async fn one_good_signature_among_several_is_enough() {
    let app = spawn_with_webhooks().await;
    let body = organization("organization.created", "org_multi", "Multi", 2_000).to_string();
    let ts = now();
    let good = sign_with(KEY, "msg_multi", ts, &body);
    let bad = sign_with(b"rotated-away-key", "msg_multi", ts, &body);
    let reply = post_raw(
        &app,
        &[
            ("svix-id", "msg_multi".into()),
            ("svix-timestamp", ts.to_string()),
            ("svix-signature", format!("v1,{bad} v2,{good} v1,{good}")),
        ],
        &body,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.json["outcome"], "applied");
    assert_eq!(app.db.count("tenants").await, 1);
}

#[tokio::test]
async fn stale_and_future_timestamps_are_rejected() {
    let app = spawn_with_webhooks().await;
    let body = organization("organization.created", "org_t", "T", 2_000).to_string();
    // Future by a margin: a slow request must not slide it back into tolerance. The extremes
    // of i64 are well-formed too (found by schemathesis: `now - i64::MIN` overflowed).
    for ts in [
        now() - 301,
        now() + 330,
        now() - 3600,
        0,
        i64::MIN,
        i64::MAX,
    ] {
        let reply = post_raw(
            &app,
            &[
                ("svix-id", "msg_t".into()),
                ("svix-timestamp", ts.to_string()),
                (
                    "svix-signature",
                    format!("v1,{}", sign_with(KEY, "msg_t", ts, &body)),
                ),
            ],
            &body,
        )
        .await;
        reply.assert_problem(400, "webhook_timestamp_out_of_tolerance");
    }
    assert_eq!(app.db.count("webhook_deliveries").await, 0);
    // Within tolerance (a delivery a few minutes old) is fine.
    let ts = now() - 240;
    let reply = post_raw(
        &app,
        &[
            ("svix-id", "msg_t".into()),
            ("svix-timestamp", ts.to_string()),
            (
                "svix-signature",
                format!("v1,{}", sign_with(KEY, "msg_t", ts, &body)),
            ),
        ],
        &body,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
}

#[tokio::test]
async fn missing_or_malformed_headers_are_rejected() {
    let app = spawn_with_webhooks().await;
    let body = organization("organization.created", "org_h", "H", 2_000).to_string();
    let ts = now();
    let signature = format!("v1,{}", sign_with(KEY, "msg_h", ts, &body));
    let all = [
        ("svix-id", "msg_h".to_string()),
        ("svix-timestamp", ts.to_string()),
        ("svix-signature", signature.clone()),
    ];
    for skip in 0..all.len() {
        let headers: Vec<_> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, h)| h.clone())
            .collect();
        post_raw(&app, &headers, &body)
            .await
            .assert_problem(400, "webhook_headers_missing");
    }
    post_raw(&app, &[], &body)
        .await
        .assert_problem(400, "webhook_headers_missing");
    let reply = post_raw(
        &app,
        &[
            ("svix-id", "msg_h".into()),
            ("svix-timestamp", "yesterday".into()),
            ("svix-signature", signature),
        ],
        &body,
    )
    .await;
    reply.assert_problem(400, "webhook_headers_invalid");
    assert_eq!(app.db.count("webhook_deliveries").await, 0);
    assert_eq!(app.db.count("tenants").await, 0);
}

#[tokio::test]
async fn signed_garbage_is_a_400_not_a_500() {
    let app = spawn_with_webhooks().await;
    for body in [
        "not json".to_string(),
        json!({"type": "user.created", "data": {"id": "user_x"}}).to_string(),
        json!({"type": "organization.created", "data": {"id": "evil'; DROP TABLE tenants; --", "updated_at": 1}}).to_string(),
    ] {
        let ts = now();
        let reply = post_raw(
            &app,
            &[
                ("svix-id", "msg_g".into()),
                ("svix-timestamp", ts.to_string()),
                ("svix-signature", format!("v1,{}", sign_with(KEY, "msg_g", ts, &body))),
            ],
            &body,
        )
        .await;
        reply.assert_problem(400, "invalid_event");
    }
    assert_eq!(app.db.count("webhook_deliveries").await, 0);
}

#[tokio::test]
async fn only_post_is_allowed() {
    let app = spawn_with_webhooks().await;
    let reply = Reply::send(app.client.get(app.url("/webhooks/clerk"))).await;
    reply.assert_problem(405, "method_not_allowed");
}

// ---- idempotency and ordering -------------------------------------------------------------

#[tokio::test]
async fn a_replayed_svix_id_changes_nothing() {
    let app = spawn_with_webhooks().await;
    let first = organization("organization.created", "org_r", "Original", 2_000);
    let reply = deliver(&app, "msg_replay", &first).await;
    assert_eq!(reply.json["outcome"], "applied");
    // The same delivery again.
    let reply = deliver(&app, "msg_replay", &first).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json["outcome"], "duplicate");
    // Even a (validly signed) newer payload under the same id is not applied twice.
    let newer = organization("organization.updated", "org_r", "Changed", 3_000);
    let reply = deliver(&app, "msg_replay", &newer).await;
    assert_eq!(reply.json["outcome"], "duplicate");
    assert_eq!(
        stored(&app, "SELECT name FROM tenants WHERE id = 'org_r'").await,
        Some(Some("Original".into()))
    );
    assert_eq!(app.db.count("webhook_deliveries").await, 1);
}

#[tokio::test]
async fn an_older_update_never_overwrites_a_newer_one() {
    let app = spawn_with_webhooks().await;
    // Organizations.
    deliver_ok(
        &app,
        &organization("organization.updated", "org_o", "Newer", 3_000),
        "applied",
    )
    .await;
    deliver_ok(
        &app,
        &organization("organization.created", "org_o", "Older", 1_000),
        "stale",
    )
    .await;
    deliver_ok(
        &app,
        &organization("organization.updated", "org_o", "Same", 3_000),
        "stale",
    )
    .await;
    assert_eq!(
        stored(&app, "SELECT name FROM tenants WHERE id = 'org_o'").await,
        Some(Some("Newer".into()))
    );
    deliver_ok(
        &app,
        &organization("organization.updated", "org_o", "Newest", 4_000),
        "applied",
    )
    .await;
    assert_eq!(
        stored(&app, "SELECT name FROM tenants WHERE id = 'org_o'").await,
        Some(Some("Newest".into()))
    );

    // Users.
    deliver_ok(
        &app,
        &user("user.updated", "user_o", "Second", 5_000),
        "applied",
    )
    .await;
    deliver_ok(
        &app,
        &user("user.created", "user_o", "First", 4_000),
        "stale",
    )
    .await;
    assert_eq!(
        stored(&app, "SELECT name FROM users WHERE id = 'user_o'").await,
        Some(Some("Second Tester".into()))
    );
    assert_eq!(
        stored(&app, "SELECT email FROM users WHERE id = 'user_o'").await,
        Some(Some("second@example.com".into())),
        "the primary email address"
    );

    // Memberships: a late `created` does not undo a newer role change or a removal.
    deliver_ok(
        &app,
        &membership(
            "organizationMembership.updated",
            "org_o",
            "user_o",
            "admin",
            7_000,
        ),
        "applied",
    )
    .await;
    deliver_ok(
        &app,
        &membership(
            "organizationMembership.created",
            "org_o",
            "user_o",
            "member",
            6_000,
        ),
        "stale",
    )
    .await;
    assert_eq!(
        stored(
            &app,
            "SELECT role FROM memberships WHERE user_id = 'user_o'"
        )
        .await,
        Some(Some("admin".into()))
    );
    deliver_ok(
        &app,
        &membership(
            "organizationMembership.deleted",
            "org_o",
            "user_o",
            "admin",
            7_000,
        ),
        "applied",
    )
    .await;
    deliver_ok(
        &app,
        &membership(
            "organizationMembership.updated",
            "org_o",
            "user_o",
            "admin",
            7_500,
        ),
        "stale",
    )
    .await;
    assert_eq!(
        scalar(
            &app,
            "SELECT COUNT(*) FROM memberships WHERE deleted_at IS NULL"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn unknown_event_types_are_accepted_and_ignored() {
    let app = spawn_with_webhooks().await;
    deliver_ok(
        &app,
        &event(
            "session.created",
            json!({"id": "sess_1", "object": "session"}),
        ),
        "ignored",
    )
    .await;
    deliver_ok(
        &app,
        &event("email.created", json!({"id": "ema_1"})),
        "ignored",
    )
    .await;
    assert_eq!(app.db.count("tenants").await, 0);
    assert_eq!(app.db.count("users").await, 0);
}
