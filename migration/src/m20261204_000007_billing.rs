//! Billing: one row per workspace with what Polar last told us of its subscription (see
//! `api/src/billing`). The workspace is Polar's customer (its external id is the tenant id),
//! so there is no customer table; the row exists once Polar has reported on the customer.
//! Tenant-owned, under row-level security like every other tenant table.

use sea_orm_migration::{prelude::*, schema::*};

use crate::rls;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum BillingAccounts {
    Table,
    TenantId,
    /// Polar's customer id (`customer.id`).
    PolarCustomerId,
    /// The subscription the row describes; NULL when the customer has none.
    SubscriptionId,
    ProductId,
    /// Polar's status: `active`, `trialing`, `past_due`, `canceled`, …; `none` without one.
    Status,
    CurrentPeriodEnd,
    CancelAtPeriodEnd,
    /// When a canceled subscription stops granting its plan (`ends_at`, or `ended_at`).
    EndsAt,
    /// Polar's `modified_at` of the state stored, in microseconds since the epoch (an integer
    /// compares exactly on both backends): an older delivery never overwrites it.
    SourceModifiedAt,
    CreatedByUserId,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(BillingAccounts::Table)
                    .if_not_exists()
                    // One row per workspace: the primary key starts with tenant_id.
                    .col(string(BillingAccounts::TenantId).primary_key())
                    .col(string_null(BillingAccounts::PolarCustomerId))
                    .col(string_null(BillingAccounts::SubscriptionId))
                    .col(string_null(BillingAccounts::ProductId))
                    .col(string(BillingAccounts::Status))
                    .col(timestamp_with_time_zone_null(
                        BillingAccounts::CurrentPeriodEnd,
                    ))
                    .col(boolean(BillingAccounts::CancelAtPeriodEnd))
                    .col(timestamp_with_time_zone_null(BillingAccounts::EndsAt))
                    .col(big_integer(BillingAccounts::SourceModifiedAt))
                    .col(string(BillingAccounts::CreatedByUserId))
                    .col(timestamp_with_time_zone(BillingAccounts::CreatedAt))
                    .col(timestamp_with_time_zone(BillingAccounts::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        rls::protect_tenant_table(manager, "billing_accounts").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(BillingAccounts::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
