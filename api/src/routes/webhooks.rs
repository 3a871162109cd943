//! `POST /webhooks/clerk`: Clerk's webhooks, delivered by Svix, and `POST /webhooks/polar`:
//! Polar's (Standard Webhooks). Authenticated by the signature over the raw body, not by a
//! bearer token; the handlers only verify ([`crate::auth::svix`]), parse and hand the event
//! to [`crate::tenant::directory_sync`] or [`crate::billing::sync`].

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use utoipa::OpenApi;

use crate::{
    auth::svix,
    billing::sync::{BillingSync, PolarEvent},
    error::{ApiError, ProblemDetails},
    state::AppState,
    tenant::directory_sync::{self, ClerkEvent, WebhookAck},
};

/// The routes of this resource.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        // Raw bytes: the Svix signature covers the body exactly as sent.
        web::resource("/webhooks/clerk")
            .app_data(web::PayloadConfig::new(crate::config::DEFAULT_BODY_LIMIT))
            .post(clerk),
    )
    .service(
        web::resource("/webhooks/polar")
            .app_data(web::PayloadConfig::new(crate::config::DEFAULT_BODY_LIMIT))
            .post(polar),
    );
}

#[derive(OpenApi)]
#[openapi(
    paths(clerk, polar),
    components(schemas(PolarEvent)),
    tags((name = "webhooks", description = "Clerk webhooks (Svix-signed) and Polar webhooks (Standard Webhooks); no bearer token")),
)]
pub struct WebhooksApi;

/// Receive a Clerk webhook (user, organization and membership changes).
#[utoipa::path(
    post, path = "/webhooks/clerk", tag = "webhooks", operation_id = "receiveClerkWebhook",
    params(
        ("svix-id" = String, Header, description = "The delivery's id (the same for redeliveries)"),
        ("svix-timestamp" = i64, Header, description = "Unix seconds; at most 5 minutes from now"),
        ("svix-signature" = String, Header, description = "Space-separated `v1,<base64 HMAC-SHA256>` signatures"),
    ),
    request_body(content = ClerkEvent, content_type = "application/json"),
    responses(
        (status = 200, description = "Accepted (applied, stale, duplicate or ignored)", body = WebhookAck),
        (status = 400, description = "Missing or invalid signature headers, a bad signature, a timestamp out of tolerance, or a malformed event", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "CLERK_WEBHOOK_SECRET is not configured", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn clerk(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let not_configured = || ApiError::ServiceUnavailable {
        detail: "Clerk webhooks are not configured on this server (CLERK_WEBHOOK_SECRET)".into(),
        retry_after: None,
    };
    let secret = state
        .config
        .clerk
        .webhook_secret
        .as_deref()
        .ok_or_else(not_configured)?;
    let Some(key) = crate::config::webhook_signing_key(secret) else {
        tracing::error!("CLERK_WEBHOOK_SECRET is not whsec_ followed by base64");
        return Err(not_configured());
    };
    let svix_id = svix::verify(&key, req.headers(), &body, Utc::now().timestamp())?;
    let event: ClerkEvent = parse_event(&body, "Clerk")?;
    let sync = directory_sync::DirectorySync {
        tenants: &state.tenants,
        storage: &state.speech.storage,
    };
    let outcome = sync.apply(&svix_id, &event).await?;
    tracing::info!(
        target: "resonance::webhooks",
        svix_id = %svix_id,
        event_type = %event.event_type,
        outcome = ?outcome,
        "clerk webhook"
    );
    Ok(HttpResponse::Ok().json(WebhookAck { outcome }))
}

/// Receive a Polar webhook (subscription and customer state changes).
#[utoipa::path(
    post, path = "/webhooks/polar", tag = "webhooks", operation_id = "receivePolarWebhook",
    params(
        ("webhook-id" = String, Header, description = "The delivery's id (the same for redeliveries); at most 200 characters"),
        ("webhook-timestamp" = i64, Header, description = "Unix seconds; at most 5 minutes from now"),
        ("webhook-signature" = String, Header, description = "Space-separated `v1,<base64 HMAC-SHA256>` signatures, keyed with the UTF-8 bytes of POLAR_WEBHOOK_SECRET"),
    ),
    request_body(content = PolarEvent, content_type = "application/json"),
    responses(
        (status = 200, description = "Accepted (applied, stale, duplicate or ignored)", body = WebhookAck),
        (status = 400, description = "Missing or invalid signature headers, a bad signature, a timestamp out of tolerance, or a malformed event", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "POLAR_WEBHOOK_SECRET is not configured, or the database is unavailable (with Retry-After)", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn polar(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let secret = state
        .config
        .billing
        .webhook_secret
        .as_deref()
        .ok_or_else(|| ApiError::ServiceUnavailable {
            detail: "Polar webhooks are not configured on this server (POLAR_WEBHOOK_SECRET)"
                .into(),
            retry_after: None,
        })?;
    // Polar's SDKs (`validateEvent`) key the HMAC with the secret's UTF-8 bytes as they are,
    // prefix and all, unlike Svix's base64 `whsec_` secrets.
    let webhook_id = svix::verify_scheme(
        &svix::STANDARD_WEBHOOKS,
        secret.as_bytes(),
        req.headers(),
        &body,
        Utc::now().timestamp(),
    )?;
    if webhook_id.len() > 200 {
        return Err(ApiError::bad_request(
            "webhook_headers_invalid",
            "webhook-id is too long",
        ));
    }
    let event: PolarEvent = parse_event(&body, "Polar")?;
    let sync = BillingSync {
        tenants: &state.tenants,
        plans: &state.limits.plans,
    };
    let applied = sync.apply(&webhook_id, &event).await?;
    if let Some(workspace) = &applied.workspace {
        // This instance serves the new plan from the next request; others within the TTL.
        state.limits.forget_subscription(workspace).await;
    }
    tracing::info!(
        target: "resonance::webhooks",
        webhook_id = %webhook_id,
        event_type = %event.event_type,
        outcome = ?applied.outcome,
        "polar webhook"
    );
    Ok(HttpResponse::Ok().json(WebhookAck {
        outcome: applied.outcome,
    }))
}

/// A verified delivery's body as the sender's event type: 400 `invalid_event` for text the
/// database cannot store (a NUL, checked after the signature, so unsigned noise costs nothing)
/// or a body that is not such an event.
fn parse_event<T: serde::de::DeserializeOwned>(body: &[u8], sender: &str) -> Result<T, ApiError> {
    if let Some(field) = crate::http::nul_json_field(body) {
        return Err(ApiError::bad_request(
            "invalid_event",
            format!("{field} holds a NUL character (U+0000), which cannot be stored"),
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "invalid_event",
            format!("the body is not a {sender} event: {e}"),
        )
    })
}
