//! Polar's webhooks (`POST /webhooks/polar`) keep each workspace's subscription state.
//!
//! - Each `webhook-id` is applied once: it is recorded (as `polar:<id>`, beside Clerk's
//!   deliveries) in the transaction that applies its effect, so a redelivery changes nothing.
//! - Deliveries arrive out of order: each state carries Polar's `modified_at`, and an older one
//!   never overwrites a newer one (`TenantAdmin::apply_subscription`).
//! - `customer.external_id` names the workspace; an id that is no workspace of ours (never
//!   seen, or deleted) is recorded and ignored, and so are event types this service does not
//!   use, so Polar does not retry them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::{
    error::ApiError,
    events::Notice,
    limits::PlanCatalogue,
    tenant::{
        TenantAdmin, TenantRegistry,
        directory_sync::DeliveryOutcome,
        lifecycle::{Applied, SubscriptionRecord},
    },
};

/// A Polar webhook event, as delivered (only what the sync reads).
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct PolarEvent {
    /// `subscription.created`, `subscription.updated`, `subscription.active`,
    /// `subscription.canceled`, `subscription.uncanceled`, `subscription.revoked`,
    /// `customer.state_changed`; other types are accepted and ignored.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When Polar sent the event.
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
    /// The subscription or the customer state the event is about.
    #[schema(value_type = Object)]
    pub data: Value,
}

#[derive(Deserialize)]
struct CustomerRef {
    id: String,
    external_id: Option<String>,
}

/// A subscription as Polar describes it, in `subscription.*` events (with its customer) and in a
/// customer state's `active_subscriptions`.
#[derive(Deserialize)]
struct StateSubscription {
    id: String,
    created_at: DateTime<Utc>,
    modified_at: Option<DateTime<Utc>>,
    status: String,
    current_period_end: Option<DateTime<Utc>>,
    #[serde(default)]
    cancel_at_period_end: bool,
    ends_at: Option<DateTime<Utc>>,
    product_id: String,
}

#[derive(Deserialize)]
struct SubscriptionData {
    #[serde(flatten)]
    subscription: StateSubscription,
    ended_at: Option<DateTime<Utc>>,
    customer: CustomerRef,
}

#[derive(Deserialize)]
struct CustomerState {
    id: String,
    external_id: Option<String>,
    created_at: DateTime<Utc>,
    modified_at: Option<DateTime<Utc>>,
    #[serde(default)]
    active_subscriptions: Vec<StateSubscription>,
}

fn rejected(detail: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_event", detail)
}

fn parse<T: serde::de::DeserializeOwned>(event: &PolarEvent) -> Result<T, ApiError> {
    T::deserialize(&event.data).map_err(|e| {
        rejected(format!(
            "{} data is not as Polar sends it: {e}",
            event.event_type
        ))
    })
}

fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// The workspace an external id names, if it could be one (`org_…` or `user_…`).
fn workspace_of(external_id: Option<&str>) -> Option<&str> {
    let id = external_id?;
    let valid = (id.starts_with("org_") || id.starts_with("user_"))
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    valid.then_some(id)
}

/// What a verified delivery did, and to which workspace (for cache invalidation).
pub struct Outcome {
    pub outcome: DeliveryOutcome,
    pub workspace: Option<String>,
}

/// Where verified deliveries are applied.
pub struct BillingSync<'a> {
    pub tenants: &'a TenantRegistry,
    pub plans: &'a PlanCatalogue,
}

impl BillingSync<'_> {
    /// Applies one verified delivery in one transaction, recording its id in it.
    pub async fn apply(&self, webhook_id: &str, event: &PolarEvent) -> Result<Outcome, ApiError> {
        let delivery = format!("polar:{webhook_id}");
        let kind = event.event_type.as_str();
        let (external_id, record) = match kind {
            "subscription.created"
            | "subscription.updated"
            | "subscription.active"
            | "subscription.canceled"
            | "subscription.uncanceled"
            | "subscription.revoked" => {
                let data: SubscriptionData = parse(event)?;
                let sub = data.subscription;
                let record = SubscriptionRecord {
                    customer_id: Some(data.customer.id),
                    subscription_id: Some(sub.id),
                    product_id: Some(sub.product_id),
                    status: sub.status,
                    current_period_end: sub.current_period_end,
                    cancel_at_period_end: sub.cancel_at_period_end,
                    // Once ended, the end is when it ended; before, when it will.
                    ends_at: data.ended_at.or(sub.ends_at),
                    modified_at: micros(sub.modified_at.unwrap_or(sub.created_at)),
                    authoritative: false,
                };
                (data.customer.external_id, record)
            }
            "customer.state_changed" => {
                let data: CustomerState = parse(event)?;
                (
                    data.external_id.clone(),
                    self.state_record(data, event.timestamp),
                )
            }
            other => {
                tracing::info!(
                    target: "resonance::webhooks",
                    webhook_id,
                    event_type = other,
                    "ignoring a Polar event type this service does not use"
                );
                return self.ignore(&delivery, other).await;
            }
        };
        let Some(workspace) = workspace_of(external_id.as_deref()) else {
            tracing::info!(
                target: "resonance::webhooks",
                webhook_id,
                external_id = ?external_id,
                "ignoring a Polar customer whose external id is no workspace id"
            );
            return self.ignore(&delivery, kind).await;
        };
        let admin = TenantAdmin::begin(self.tenants, Some(workspace)).await?;
        if !admin.record_delivery(&delivery, kind).await? {
            return Ok(Outcome {
                outcome: DeliveryOutcome::Duplicate,
                workspace: None,
            });
        }
        let outcome = if admin.is_known_tenant().await? {
            let applied = admin.apply_subscription(&record).await?;
            if applied == Applied::Yes {
                // Every instance reads the new plan from its next request.
                admin
                    .publish(Notice::SubscriptionChanged {
                        tenant_id: workspace.to_owned(),
                    })
                    .await?;
            }
            applied.into()
        } else {
            tracing::info!(
                target: "resonance::webhooks",
                webhook_id,
                workspace,
                "ignoring a Polar customer that is no workspace of ours"
            );
            DeliveryOutcome::Ignored
        };
        admin.commit().await?;
        Ok(Outcome {
            workspace: (outcome == DeliveryOutcome::Applied).then(|| workspace.to_owned()),
            outcome,
        })
    }

    /// A customer's whole state: its subscription that grants a plan of the catalogue (else
    /// its first), or none at all.
    fn state_record(&self, data: CustomerState, sent: Option<DateTime<Utc>>) -> SubscriptionRecord {
        let mut version = data.modified_at.unwrap_or(data.created_at);
        if let Some(sent) = sent {
            version = version.max(sent);
        }
        let chosen = data
            .active_subscriptions
            .iter()
            .position(|s| self.plans.for_polar_product(&s.product_id).is_some())
            .or((!data.active_subscriptions.is_empty()).then_some(0));
        let Some(index) = chosen else {
            return SubscriptionRecord {
                customer_id: Some(data.id),
                subscription_id: None,
                product_id: None,
                status: "none".into(),
                current_period_end: None,
                cancel_at_period_end: false,
                ends_at: None,
                modified_at: micros(version),
                authoritative: true,
            };
        };
        let s = &data.active_subscriptions[index];
        version = version.max(s.modified_at.unwrap_or(s.created_at));
        SubscriptionRecord {
            customer_id: Some(data.id.clone()),
            subscription_id: Some(s.id.clone()),
            product_id: Some(s.product_id.clone()),
            status: s.status.clone(),
            current_period_end: s.current_period_end,
            cancel_at_period_end: s.cancel_at_period_end,
            ends_at: s.ends_at,
            modified_at: micros(version),
            authoritative: true,
        }
    }

    /// Records the delivery and changes nothing else.
    async fn ignore(&self, delivery: &str, kind: &str) -> Result<Outcome, ApiError> {
        let admin = TenantAdmin::begin(self.tenants, None).await?;
        let outcome = if admin.record_delivery(delivery, kind).await? {
            DeliveryOutcome::Ignored
        } else {
            DeliveryOutcome::Duplicate
        };
        admin.commit().await?;
        Ok(Outcome {
            outcome,
            workspace: None,
        })
    }
}
