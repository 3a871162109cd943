//! `GET /v1/events`: the workspace's changes as Server-Sent Events.
//!
//! Each stream follows its workspace's event log (`events` table, written in the transaction
//! of each change): a notice on the bus (PostgreSQL `NOTIFY` from any instance, or the
//! in-process bus on SQLite) says the log grew, and the stream reads the rows after the last
//! one it sent. So a notice lost or out of order costs nothing, and `Last-Event-ID` resumes
//! from the log. Each stream has a small bounded queue: a client that does not keep up is
//! disconnected (it resumes with `Last-Event-ID`) rather than buffered for.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::stream;
use serde_json::json;
use tokio::sync::{broadcast::error::RecvError, mpsc};
use utoipa::OpenApi;

use crate::{
    error::{ApiError, ProblemDetails},
    events::{LoggedEvent, Notice},
    state::AppState,
    tenant::{TenantContext, permissions, scoped::ScopedDb},
};

/// Between heartbeat comments (proxies close idle connections).
const HEARTBEAT: Duration = Duration::from_secs(15);
/// The longest a stream stays open, even for a token that lives longer (or names no expiry):
/// the client reconnects with a fresh token and `Last-Event-ID`.
pub const MAX_STREAM: Duration = Duration::from_secs(10 * 60);
/// How long the log keeps events: a client away for longer gets `resync`.
pub const RETENTION: Duration = Duration::from_secs(10 * 60);
/// Messages queued for one client before it is disconnected as too slow.
const QUEUE: usize = 64;
/// Rows read from the log at a time.
const BATCH: u64 = 100;

/// Which event types the caller may receive, by the read permission of each resource.
fn readable_prefixes(ctx: &TenantContext) -> Vec<&'static str> {
    [
        ("task.", permissions::TASKS_READ),
        ("project.", permissions::PROJECTS_READ),
        ("voice.", permissions::VOICES_READ),
        ("generation.", permissions::GENERATIONS_READ),
    ]
    .into_iter()
    .filter(|(_, permission)| ctx.has(permission))
    .map(|(prefix, _)| prefix)
    .collect()
}

fn format_event(event: &LoggedEvent) -> String {
    let resource = event
        .body
        .as_deref()
        .and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok());
    let mut data = json!({
        "id": event.resource_id,
        "tenant_id": event.tenant_id,
        "version": event.version,
    });
    if let Some(resource) = resource {
        data["resource"] = resource;
    }
    format!(
        "id: {}\nevent: {}\ndata: {}\n\n",
        event.id, event.event_type, data
    )
}

fn resync(cursor: i64) -> String {
    format!("id: {cursor}\nevent: resync\ndata: {{}}\n\n")
}

/// The routes of this resource.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/events").get(stream_events));
}

#[derive(OpenApi)]
#[openapi(
    paths(stream_events),
    tags((name = "events", description = "Live changes of the workspace (Server-Sent Events)")),
)]
pub struct EventsApi;

/// Stream the workspace's changes as Server-Sent Events.
///
/// Events: `task.created|updated|deleted`, `project.created|updated|deleted`,
/// `voice.created|updated|deleted`, `generation.created|deleted`, each with `id:` (send the
/// last one in `Last-Event-ID` to resume) and `data:` `{"id", "tenant_id", "version",
/// "resource"}` (`resource` as the REST API returns it; absent, and `version` null, for
/// deletes). Only types the caller may read are sent. `event: resync` says events were missed
/// (the id is older than the retention of 10 minutes, or unknown): refetch. A `: keep-alive`
/// comment comes every 15 s; the stream ends when the token expires (after 10 minutes at the
/// latest), when the workspace is deleted, or when the client does not keep up; reconnect
/// with a fresh token and `Last-Event-ID`.
#[utoipa::path(
    get, path = "/v1/events", tag = "events", operation_id = "streamEvents",
    security(("bearer" = [])),
    params(("Last-Event-ID" = Option<String>, Header, description = "The id of the last event received, to resume after it")),
    responses(
        (status = 200, description = "An endless stream of events", content_type = "text/event-stream", body = String, headers(
            ("Cache-Control" = String, description = "no-cache"),
            ("X-Accel-Buffering" = String, description = "no: proxies must not buffer the stream"))),
        (status = 401, description = "No valid token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "Needs a read permission of at least one resource (org:tasks:read, org:projects:read, org:voices:read or org:generations:read)", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn stream_events(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: TenantContext,
) -> Result<HttpResponse, ApiError> {
    let prefixes = readable_prefixes(&ctx);
    if prefixes.is_empty() {
        // Any one read permission opens the stream; the answer names them all.
        return Err(ApiError::Forbidden {
            permission: permissions::TASKS_READ.to_owned(),
            detail: "this stream needs a read permission: org:tasks:read, org:projects:read, \
                     org:voices:read or org:generations:read"
                .into(),
        });
    }
    let last_event_id = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().parse::<i64>().ok());

    // Subscribe before reading the log, so nothing committed in between is missed.
    let mut notices = state.tenants.subscribe_events();
    let db = ScopedDb::begin(&state.tenants, &ctx).await?;
    let retention = chrono::Duration::from_std(RETENTION).unwrap_or_default();
    db.purge_events(chrono::Utc::now() - retention).await?;
    let (mut cursor, mut first) = match last_event_id {
        None => (db.last_event_id().await?.unwrap_or(0), None),
        Some(Some(id)) if id >= 0 && db.event_exists(id).await? => (id, None),
        // Purged, unknown or not a number: the client must refetch.
        Some(_) => {
            let newest = db.last_event_id().await?.unwrap_or(0);
            (newest, Some(resync(newest)))
        }
    };
    db.commit().await?;

    let (tx, rx) = mpsc::channel::<String>(QUEUE);
    let tenant_id = ctx.tenant_id.clone();
    actix_web::rt::spawn(async move {
        if let Some(message) = first.take()
            && tx.try_send(message).is_err()
        {
            return;
        }
        // A stream lasts as long as its token, and MAX_STREAM at the most.
        let lifetime = ctx.expires_at.map_or(MAX_STREAM, |exp| {
            let left = (exp - chrono::Utc::now().timestamp()).max(0);
            MAX_STREAM.min(Duration::from_secs(left as u64))
        });
        let deadline = tokio::time::sleep(lifetime);
        tokio::pin!(deadline);
        let mut heartbeat =
            tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
        // A resumed stream first sends what was missed.
        let mut behind = last_event_id.is_some();
        loop {
            if behind {
                behind = false;
                match send_after(&state, &ctx, &prefixes, &mut cursor, &tx).await {
                    Ok(true) => {}
                    // Too slow, gone, or the log is unreachable: the client resumes later.
                    Ok(false) | Err(_) => return,
                }
            }
            tokio::select! {
                notice = notices.recv() => match notice {
                    Ok(Notice::Logged { tenant_id: t, .. }) if t == tenant_id => behind = true,
                    Ok(Notice::TenantDeleted { tenant_id: t }) if t == tenant_id => return,
                    Ok(Notice::MembershipChanged { tenant_id: t, user_id, .. })
                        if t == tenant_id && ctx.user_id.as_deref() == Some(user_id.as_str()) => return,
                    // Notices may have been missed: the log says what happened.
                    Ok(Notice::Resync) | Err(RecvError::Lagged(_)) => behind = true,
                    Ok(_) => {}
                    Err(RecvError::Closed) => return,
                },
                _ = heartbeat.tick() => {
                    // A revocation this instance learnt without its notice (loaded after a
                    // gap) ends the stream too.
                    if state.auth.is_revoked(&ctx) {
                        return;
                    }
                    if tx.try_send(": keep-alive\n\n".to_owned()).is_err() {
                        return;
                    }
                }
                _ = &mut deadline => return,
                _ = tx.closed() => return,
            }
        }
    });

    let body = stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|message| (Ok::<_, actix_web::Error>(web::Bytes::from(message)), rx))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

/// Sends the log's events after `cursor` the caller may read, advancing it. False when the
/// client's queue is full or closed.
async fn send_after(
    state: &AppState,
    ctx: &TenantContext,
    prefixes: &[&str],
    cursor: &mut i64,
    tx: &mpsc::Sender<String>,
) -> Result<bool, ApiError> {
    loop {
        let db = ScopedDb::begin(&state.tenants, ctx).await?;
        let rows = db.events_after(*cursor, BATCH).await?;
        db.finish_read();
        for event in &rows {
            *cursor = event.id;
            // The log is read as the caller's workspace; checked again all the same.
            if event.tenant_id != ctx.tenant_id
                || !prefixes.iter().any(|p| event.event_type.starts_with(p))
            {
                continue;
            }
            if tx.try_send(format_event(event)).is_err() {
                return Ok(false);
            }
        }
        if (rows.len() as u64) < BATCH {
            return Ok(true);
        }
    }
}
