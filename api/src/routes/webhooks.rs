//! `POST /webhooks/clerk`: Clerk's webhooks, delivered by Svix, keep the directory (workspaces,
//! users, memberships) in sync with Clerk, the source of truth for who exists and who belongs
//! where.
//!
//! - Authenticated by the Svix signature over the raw body, not by a bearer token. Nothing is
//!   read from the database or written before the signature, its headers and its timestamp
//!   have been checked.
//! - Each `svix-id` is applied once: it is recorded in the transaction that applies its effect,
//!   so a redelivery answers 200 and changes nothing.
//! - Deliveries arrive out of order: see [`crate::tenant::lifecycle`] for how an older version
//!   never overwrites a newer one, and how deletions stay final.
//! - Unknown event types answer 200 and are ignored (logged), so Clerk does not retry them.

use actix_web::{HttpRequest, HttpResponse, http::header::HeaderMap, web};
use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::Utc;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use utoipa::ToSchema;

use crate::{
    config::webhook_signing_key,
    error::{ApiError, ProblemDetails},
    server::AppState,
    tenant::{
        lifecycle::{Applied, MembershipRecord, OrganizationRecord, TenantAdmin, UserRecord},
        permissions::normalize_role,
    },
};

/// How far `svix-timestamp` may be from now, either way (Svix's own tolerance): a captured
/// delivery cannot be replayed later, after its id has been forgotten or on another instance.
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 5 * 60;

// Verification is done here rather than with the `svix` crate: that crate is Svix's whole API
// client (an HTTP stack, hundreds of generated models) for what is one HMAC-SHA256 check. The
// scheme is small and documented (see shared CLERK.md); `hmac`, `sha2` and `base64` are
// RustCrypto's well-kept crates the service already builds, and `Mac::verify_slice` compares
// in constant time.
type HmacSha256 = Hmac<Sha256>;

fn rejected(code: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, detail)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, ApiError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            rejected(
                "webhook_headers_missing",
                format!("the {name} header is missing or empty"),
            )
        })
}

/// Checks a delivery as Svix signs it: base64 HMAC-SHA256 with the key over
/// `"{svix-id}.{svix-timestamp}.{body}"`, any one `v1,<signature>` of the space-separated
/// `svix-signature` matching, and `svix-timestamp` (unix seconds) within
/// [`TIMESTAMP_TOLERANCE_SECS`] of `now`. Returns the `svix-id`.
pub fn verify(key: &[u8], headers: &HeaderMap, body: &[u8], now: i64) -> Result<String, ApiError> {
    let id = header(headers, "svix-id")?;
    let timestamp_text = header(headers, "svix-timestamp")?;
    let signatures = header(headers, "svix-signature")?;
    if id.len() > 255 {
        return Err(rejected("webhook_headers_invalid", "svix-id is too long"));
    }
    let timestamp: i64 = timestamp_text.parse().map_err(|_| {
        rejected(
            "webhook_headers_invalid",
            "svix-timestamp is not a unix time in seconds",
        )
    })?;
    if (now - timestamp).abs() > TIMESTAMP_TOLERANCE_SECS {
        return Err(rejected(
            "webhook_timestamp_out_of_tolerance",
            "svix-timestamp is more than 5 minutes from now",
        ));
    }

    let mut mac = HmacSha256::new_from_slice(key).map_err(ApiError::internal)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_text.as_bytes());
    mac.update(b".");
    mac.update(body);
    let matched = signatures
        .split(' ')
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, signature)| STANDARD.decode(signature).ok())
        .any(|signature| mac.clone().verify_slice(&signature).is_ok());
    if !matched {
        return Err(rejected(
            "webhook_signature_invalid",
            "no svix-signature matches this delivery",
        ));
    }
    Ok(id.to_owned())
}

/// A Clerk event, as delivered (only what the sync reads).
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct ClerkEvent {
    /// `organization.created`, `user.deleted`, `organizationMembership.updated`, …
    #[serde(rename = "type")]
    pub event_type: String,
    /// `event`.
    #[serde(default)]
    pub object: Option<String>,
    /// The object the event is about (an organization, user or membership).
    #[schema(value_type = Object)]
    pub data: Value,
    /// When Clerk created the event (milliseconds since the epoch).
    #[serde(default)]
    pub timestamp: Option<i64>,
}

/// What became of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryOutcome {
    /// The change is stored.
    Applied,
    /// Already superseded by a newer version, or about a deleted object: nothing changed.
    Stale,
    /// This `svix-id` was applied before: nothing changed.
    Duplicate,
    /// An event type this service does not use.
    Ignored,
}

impl From<Applied> for DeliveryOutcome {
    fn from(applied: Applied) -> Self {
        match applied {
            Applied::Yes => DeliveryOutcome::Applied,
            Applied::Stale => DeliveryOutcome::Stale,
        }
    }
}

/// The answer to an accepted delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAck {
    pub outcome: DeliveryOutcome,
}

/// Receive a Clerk webhook (user, organization and membership changes).
#[utoipa::path(
    post, path = "/webhooks/clerk", tag = "webhooks",
    params(
        ("svix-id" = String, Header, description = "The delivery's id (the same for redeliveries)"),
        ("svix-timestamp" = i64, Header, description = "Unix seconds; at most 5 minutes from now"),
        ("svix-signature" = String, Header, description = "Space-separated `v1,<base64 HMAC-SHA256>` signatures"),
    ),
    request_body(content = ClerkEvent, content_type = "application/json"),
    responses(
        (status = 200, description = "Accepted (applied, stale, duplicate or ignored)", body = WebhookAck),
        (status = 400, description = "Missing or invalid signature headers, a bad signature, a timestamp out of tolerance, or a malformed event", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDetails, content_type = "application/problem+json"),
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
    let Some(key) = webhook_signing_key(secret) else {
        tracing::error!("CLERK_WEBHOOK_SECRET is not whsec_ followed by base64");
        return Err(not_configured());
    };
    let svix_id = verify(&key, req.headers(), &body, Utc::now().timestamp())?;
    let event: ClerkEvent = serde_json::from_slice(&body).map_err(|e| {
        rejected(
            "invalid_event",
            format!("the body is not a Clerk event: {e}"),
        )
    })?;
    let outcome = apply(&state, &svix_id, &event).await?;
    tracing::info!(
        target: "resonance::webhooks",
        svix_id = %svix_id,
        event_type = %event.event_type,
        outcome = ?outcome,
        "clerk webhook"
    );
    Ok(HttpResponse::Ok().json(WebhookAck { outcome }))
}

#[derive(Deserialize)]
struct OrganizationData {
    id: String,
    name: Option<String>,
    slug: Option<String>,
    updated_at: i64,
}

#[derive(Deserialize)]
struct DeletedData {
    id: String,
}

#[derive(Deserialize)]
struct EmailAddress {
    id: String,
    email_address: String,
}

#[derive(Deserialize)]
struct UserData {
    id: String,
    first_name: Option<String>,
    last_name: Option<String>,
    username: Option<String>,
    image_url: Option<String>,
    primary_email_address_id: Option<String>,
    #[serde(default)]
    email_addresses: Vec<EmailAddress>,
    updated_at: i64,
}

#[derive(Deserialize)]
struct MembershipOrganization {
    id: String,
}

#[derive(Deserialize)]
struct PublicUserData {
    user_id: String,
    first_name: Option<String>,
    last_name: Option<String>,
    image_url: Option<String>,
    /// The user's primary identifier (usually the email address).
    identifier: Option<String>,
}

#[derive(Deserialize)]
struct MembershipData {
    id: Option<String>,
    role: String,
    organization: MembershipOrganization,
    public_user_data: PublicUserData,
    updated_at: Option<i64>,
}

fn parse<T: serde::de::DeserializeOwned>(event: &ClerkEvent) -> Result<T, ApiError> {
    T::deserialize(&event.data).map_err(|e| {
        rejected(
            "invalid_event",
            format!("{} data is not as Clerk sends it: {e}", event.event_type),
        )
    })
}

fn check_id(id: &str, prefix: &str) -> Result<(), ApiError> {
    let valid = id.starts_with(prefix)
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(rejected(
            "invalid_event",
            format!("'{id}' is not a Clerk id starting with {prefix}"),
        ))
    }
}

/// "First Last", or whichever part exists.
fn full_name(first: Option<&str>, last: Option<&str>) -> Option<String> {
    let name = [first, last]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (!name.is_empty()).then_some(name)
}

/// Applies one verified delivery in one transaction, recording its `svix-id` in it.
async fn apply(
    state: &AppState,
    svix_id: &str,
    event: &ClerkEvent,
) -> Result<DeliveryOutcome, ApiError> {
    match event.event_type.as_str() {
        "organization.created" | "organization.updated" => {
            let data: OrganizationData = parse(event)?;
            check_id(&data.id, "org_")?;
            let admin = TenantAdmin::begin(state, Some(&data.id)).await?;
            if !admin.record_delivery(svix_id, &event.event_type).await? {
                return Ok(DeliveryOutcome::Duplicate);
            }
            let applied = admin
                .upsert_organization(&OrganizationRecord {
                    id: data.id,
                    name: data.name,
                    slug: data.slug,
                    updated_at: data.updated_at,
                })
                .await?;
            admin.commit().await?;
            Ok(applied.into())
        }
        "organization.deleted" => {
            let data: DeletedData = parse(event)?;
            check_id(&data.id, "org_")?;
            delete_tenant(state, svix_id, event, &data.id, None).await
        }
        "user.created" | "user.updated" => {
            let data: UserData = parse(event)?;
            check_id(&data.id, "user_")?;
            let email = data
                .primary_email_address_id
                .as_deref()
                .and_then(|primary| data.email_addresses.iter().find(|e| e.id == primary))
                .or(data.email_addresses.first())
                .map(|e| e.email_address.clone());
            let name = full_name(data.first_name.as_deref(), data.last_name.as_deref())
                .or(data.username.clone());
            let admin = TenantAdmin::begin(state, None).await?;
            if !admin.record_delivery(svix_id, &event.event_type).await? {
                return Ok(DeliveryOutcome::Duplicate);
            }
            let applied = admin
                .upsert_user(&UserRecord {
                    id: data.id,
                    name,
                    email,
                    image_url: data.image_url,
                    updated_at: data.updated_at,
                })
                .await?;
            admin.commit().await?;
            Ok(applied.into())
        }
        "user.deleted" => {
            let data: DeletedData = parse(event)?;
            check_id(&data.id, "user_")?;
            // The personal workspace's tenant id is the user id.
            delete_tenant(state, svix_id, event, &data.id, Some(&data.id)).await
        }
        "organizationMembership.created"
        | "organizationMembership.updated"
        | "organizationMembership.deleted" => {
            let data: MembershipData = parse(event)?;
            check_id(&data.organization.id, "org_")?;
            check_id(&data.public_user_data.user_id, "user_")?;
            let removed = event.event_type == "organizationMembership.deleted";
            // A removal is newer than the version it removes: order it by the later of the
            // membership's `updated_at` and the event's own time.
            let updated_at = match (data.updated_at, event.timestamp, removed) {
                (Some(u), Some(t), true) => u.max(t),
                (Some(u), _, _) => u,
                (None, Some(t), _) => t,
                (None, None, _) => {
                    return Err(rejected(
                        "invalid_event",
                        "the membership has no updated_at",
                    ));
                }
            };
            let user = &data.public_user_data;
            let record = MembershipRecord {
                user_id: user.user_id.clone(),
                clerk_membership_id: data.id.clone(),
                role: normalize_role(&data.role),
                user_name: full_name(user.first_name.as_deref(), user.last_name.as_deref()),
                user_email: user.identifier.clone(),
                user_image_url: user.image_url.clone(),
                updated_at,
            };
            let admin = TenantAdmin::begin(state, Some(&data.organization.id)).await?;
            if !admin.record_delivery(svix_id, &event.event_type).await? {
                return Ok(DeliveryOutcome::Duplicate);
            }
            let applied = if removed {
                admin.remove_membership(&record).await?
            } else {
                admin.upsert_membership(&record).await?
            };
            admin.commit().await?;
            Ok(applied.into())
        }
        other => {
            let admin = TenantAdmin::begin(state, None).await?;
            if !admin.record_delivery(svix_id, other).await? {
                return Ok(DeliveryOutcome::Duplicate);
            }
            admin.commit().await?;
            tracing::info!(
                target: "resonance::webhooks",
                svix_id,
                event_type = other,
                "ignored a Clerk event type this service does not use"
            );
            Ok(DeliveryOutcome::Ignored)
        }
    }
}

/// Removes a workspace and everything it owns; for `user.deleted` (`deleted_user` set) also
/// marks the user deleted in the directory.
async fn delete_tenant(
    state: &AppState,
    svix_id: &str,
    event: &ClerkEvent,
    tenant_id: &str,
    deleted_user: Option<&str>,
) -> Result<DeliveryOutcome, ApiError> {
    let admin = TenantAdmin::begin(state, Some(tenant_id)).await?;
    if !admin.record_delivery(svix_id, &event.event_type).await? {
        return Ok(DeliveryOutcome::Duplicate);
    }
    let deleted = admin.delete_tenant().await?;
    if let Some(user_id) = deleted_user {
        admin.mark_user_deleted(user_id).await?;
    }
    // Objects go before the rows commit: if storage fails, the rows stay, the delivery answers
    // 5xx, and Svix redelivers until both are gone.
    delete_tenant_objects(state, tenant_id).await?;
    admin.commit().await?;
    state.seen_tenants.invalidate(tenant_id);
    tracing::info!(
        target: "resonance::webhooks",
        tenant = tenant_id,
        deleted = ?deleted,
        "deleted a workspace and everything it owned"
    );
    Ok(DeliveryOutcome::Applied)
}

/// Deletes every stored object (voice samples and generated audio) under the tenant's prefix.
async fn delete_tenant_objects(state: &AppState, tenant_id: &str) -> Result<(), ApiError> {
    let objects = state
        .speech
        .storage
        .delete_tenant(tenant_id)
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(target: "resonance::webhooks", tenant = tenant_id, objects, "deleted stored audio");
    Ok(())
}
