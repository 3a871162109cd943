//! Directory sync: Clerk's events (delivered by Svix to `POST /webhooks/clerk`) keep
//! workspaces, users and memberships in step with Clerk, the source of truth for who exists
//! and who belongs where.
//!
//! - Each `svix-id` is applied once: it is recorded in the transaction that applies its effect
//!   ([`TenantAdmin::begin_delivery`]), so a redelivery changes nothing.
//! - Deliveries arrive out of order: see [`super::lifecycle`] for how an older version never
//!   overwrites a newer one, and how deletions stay final.
//! - Unknown event types are recorded and ignored, so Clerk does not retry them.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::{
    TenantRegistry,
    lifecycle::{Applied, MembershipRecord, OrganizationRecord, TenantAdmin, UserRecord},
    permissions::normalize_role,
};
use crate::{error::ApiError, events::Notice, speech::storage::AudioStorage};

/// How long revocation rows are kept: far longer than any session token can outlive its
/// revocation (`auth::revocations` needs them for its longest token lifetime plus skew).
const REVOCATIONS_KEPT: Duration = Duration::from_secs(3600);

/// How far ahead of ours Clerk's clock is believed, at most (the default clock skew).
const CLERK_CLOCK_AHEAD: i64 = 5_000;

/// When a membership change revokes the member's older session tokens (Unix milliseconds):
/// now, or Clerk's time of the event when that is later. A token's `iat` is Clerk's clock, so
/// with Clerk's clock ahead of ours a token issued just before the change could otherwise
/// look newer than the revocation.
fn revocation_time(event_time: Option<i64>) -> i64 {
    let now = chrono::Utc::now().timestamp_millis();
    event_time.map_or(now, |t| t.clamp(now, now + CLERK_CLOCK_AHEAD))
}

fn rejected(detail: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_event", detail)
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

impl UserData {
    fn into_record(self) -> UserRecord {
        let email = self
            .primary_email_address_id
            .as_deref()
            .and_then(|primary| self.email_addresses.iter().find(|e| e.id == primary))
            .or(self.email_addresses.first())
            .map(|e| e.email_address.clone());
        let name =
            full_name(self.first_name.as_deref(), self.last_name.as_deref()).or(self.username);
        UserRecord {
            id: self.id,
            name,
            email,
            image_url: self.image_url,
            updated_at: self.updated_at,
        }
    }
}

impl MembershipData {
    fn to_record(
        &self,
        removed: bool,
        event_time: Option<i64>,
    ) -> Result<MembershipRecord, ApiError> {
        // A removal is newer than the version it removes: order it by the later of the
        // membership's `updated_at` and the event's own time.
        let updated_at = match (self.updated_at, event_time, removed) {
            (Some(u), Some(t), true) => u.max(t),
            (Some(u), _, _) => u,
            (None, Some(t), _) => t,
            (None, None, _) => return Err(rejected("the membership has no updated_at")),
        };
        let user = &self.public_user_data;
        Ok(MembershipRecord {
            user_id: user.user_id.clone(),
            clerk_membership_id: self.id.clone(),
            role: normalize_role(&self.role),
            user_name: full_name(user.first_name.as_deref(), user.last_name.as_deref()),
            user_email: user.identifier.clone(),
            user_image_url: user.image_url.clone(),
            updated_at,
        })
    }
}

fn parse<T: serde::de::DeserializeOwned>(event: &ClerkEvent) -> Result<T, ApiError> {
    T::deserialize(&event.data).map_err(|e| {
        rejected(format!(
            "{} data is not as Clerk sends it: {e}",
            event.event_type
        ))
    })
}

fn check_id(id: &str, prefix: &str) -> Result<(), ApiError> {
    let valid = id.starts_with(prefix)
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(rejected(format!(
            "'{id}' is not a Clerk id starting with {prefix}"
        )))
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

/// Where a verified delivery is applied: the tenant registry for the transaction, and the
/// audio storage a workspace's objects are deleted from.
pub struct DirectorySync<'a> {
    pub tenants: &'a TenantRegistry,
    pub storage: &'a AudioStorage,
}

impl DirectorySync<'_> {
    /// Applies one verified delivery in one transaction, recording its `svix-id` in it.
    pub async fn apply(
        &self,
        svix_id: &str,
        event: &ClerkEvent,
    ) -> Result<DeliveryOutcome, ApiError> {
        let kind = event.event_type.as_str();
        match kind {
            "organization.created" | "organization.updated" => {
                let data: OrganizationData = parse(event)?;
                check_id(&data.id, "org_")?;
                let record = OrganizationRecord {
                    id: data.id,
                    name: data.name,
                    slug: data.slug,
                    updated_at: data.updated_at,
                };
                let tenant = record.id.clone();
                self.once(Some(&tenant), svix_id, kind, async |admin| {
                    Ok(admin.upsert_organization(&record).await?.into())
                })
                .await
            }
            "organization.deleted" => {
                let data: DeletedData = parse(event)?;
                check_id(&data.id, "org_")?;
                self.delete_tenant(svix_id, kind, &data.id, None).await
            }
            "user.created" | "user.updated" => {
                let data: UserData = parse(event)?;
                check_id(&data.id, "user_")?;
                let record = data.into_record();
                self.once(None, svix_id, kind, async |admin| {
                    Ok(admin.upsert_user(&record).await?.into())
                })
                .await
            }
            "user.deleted" => {
                let data: DeletedData = parse(event)?;
                check_id(&data.id, "user_")?;
                // The personal workspace's tenant id is the user id.
                self.delete_tenant(svix_id, kind, &data.id, Some(&data.id))
                    .await
            }
            "organizationMembership.created"
            | "organizationMembership.updated"
            | "organizationMembership.deleted" => {
                let data: MembershipData = parse(event)?;
                check_id(&data.organization.id, "org_")?;
                check_id(&data.public_user_data.user_id, "user_")?;
                let removed = kind == "organizationMembership.deleted";
                let record = data.to_record(removed, event.timestamp)?;
                let org = data.organization.id;
                let user = record.user_id.clone();
                let at = revocation_time(event.timestamp);
                self.once(Some(&org), svix_id, kind, async |admin| {
                    let applied = if removed {
                        admin.remove_membership(&record).await?
                    } else {
                        admin.upsert_membership(&record).await?
                    };
                    // The member's session tokens issued before now still carry the old
                    // membership: every instance refuses them (recorded for instances that
                    // start later or miss the notice), and whoever cached what this member
                    // may do looks again.
                    if applied == Applied::Yes && kind != "organizationMembership.created" {
                        let purge_before = at - REVOCATIONS_KEPT.as_millis() as i64;
                        admin.record_revocation(&user, at, purge_before).await?;
                        admin
                            .publish(Notice::MembershipChanged {
                                tenant_id: org.clone(),
                                user_id: user.clone(),
                                revoked_at: Some(at),
                            })
                            .await?;
                    }
                    Ok(applied.into())
                })
                .await
            }
            other => {
                tracing::info!(
                    target: "resonance::webhooks",
                    svix_id,
                    event_type = other,
                    "ignoring a Clerk event type this service does not use"
                );
                self.once(None, svix_id, other, async |_| Ok(DeliveryOutcome::Ignored))
                    .await
            }
        }
    }

    /// What every delivery shares: one transaction for `tenant` that records the delivery's
    /// id and does `work`, committed together. A redelivered id changes nothing: `Duplicate`.
    async fn once(
        &self,
        tenant: Option<&str>,
        svix_id: &str,
        event_type: &str,
        work: impl AsyncFnOnce(&TenantAdmin) -> Result<DeliveryOutcome, ApiError>,
    ) -> Result<DeliveryOutcome, ApiError> {
        let admin = TenantAdmin::begin(self.tenants, tenant).await?;
        if !admin.record_delivery(svix_id, event_type).await? {
            return Ok(DeliveryOutcome::Duplicate);
        }
        let outcome = work(&admin).await?;
        admin.commit().await?;
        Ok(outcome)
    }

    /// Removes a workspace and everything it owns, stored audio included; for `user.deleted`
    /// (`deleted_user` set) also marks the user deleted in the directory.
    async fn delete_tenant(
        &self,
        svix_id: &str,
        event_type: &str,
        tenant_id: &str,
        deleted_user: Option<&str>,
    ) -> Result<DeliveryOutcome, ApiError> {
        let outcome = self
            .once(Some(tenant_id), svix_id, event_type, async |admin| {
                let deleted = admin.delete_tenant().await?;
                if let Some(user_id) = deleted_user {
                    admin.mark_user_deleted(user_id).await?;
                }
                // Every instance forgets the workspace (and the user) once this commits.
                let notice = match deleted_user {
                    Some(user_id) => Notice::UserDeleted {
                        user_id: user_id.to_owned(),
                    },
                    None => Notice::TenantDeleted {
                        tenant_id: tenant_id.to_owned(),
                    },
                };
                admin.publish(notice).await?;
                // Objects go before the rows commit: if storage fails, the rows stay, the
                // delivery answers 5xx, and Svix redelivers until both are gone.
                let objects = self.storage.delete_tenant(tenant_id).await?;
                tracing::info!(
                    target: "resonance::webhooks",
                    tenant = tenant_id,
                    deleted = ?deleted,
                    objects,
                    "deleting a workspace and everything it owns"
                );
                Ok(DeliveryOutcome::Applied)
            })
            .await?;
        self.tenants.forget(tenant_id);
        Ok(outcome)
    }
}
