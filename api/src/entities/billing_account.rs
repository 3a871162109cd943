//! What Polar last reported of a workspace's subscription: one row per workspace, written only
//! by the Polar webhook (`tenant::TenantAdmin::apply_subscription`), read by the effective
//! plan (`limits`) and `GET /v1/billing/subscription`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "billing_accounts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    pub polar_customer_id: Option<String>,
    pub subscription_id: Option<String>,
    pub product_id: Option<String>,
    /// Polar's subscription status, or `none` when the customer has no subscription.
    pub status: String,
    pub current_period_end: Option<DateTimeUtc>,
    pub cancel_at_period_end: bool,
    /// When a canceled subscription stops granting its plan.
    pub ends_at: Option<DateTimeUtc>,
    /// Polar's `modified_at` of this state, microseconds since the epoch (deliveries older
    /// than it change nothing).
    pub source_modified_at: i64,
    pub created_by_user_id: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

tenant_owned!("billing account");

impl Model {
    /// Whether the subscription grants its product's plan at `now`: active (or trialing, or
    /// past due while Polar retries the payment), or canceled but not yet ended.
    pub fn grants_plan(&self, now: DateTimeUtc) -> bool {
        if self.product_id.is_none() {
            return false;
        }
        match self.status.as_str() {
            "active" | "trialing" | "past_due" => self.ends_at.is_none_or(|end| end > now),
            "canceled" => self
                .ends_at
                .or(self.current_period_end)
                .is_some_and(|end| end > now),
            _ => false,
        }
    }
}

from_pg_row!(
    tenant_id,
    polar_customer_id,
    subscription_id,
    product_id,
    status,
    current_period_end,
    cancel_at_period_end,
    ends_at,
    source_modified_at,
    created_by_user_id,
    created_at,
    updated_at,
);
