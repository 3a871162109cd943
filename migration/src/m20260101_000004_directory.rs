//! The directory synced from Clerk's webhooks: users, organization memberships, the svix ids
//! already applied, and tombstones of deleted workspaces.
//!
//! `source_updated_at` columns hold Clerk's own `updated_at` (milliseconds since the epoch) of
//! the version a row reflects: deliveries arrive out of order, and an older version never
//! overwrites a newer one.

use sea_orm_migration::{prelude::*, schema::*};

use crate::rls;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    SourceUpdatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    Name,
    ImageUrl,
    SourceUpdatedAt,
    DeletedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Memberships {
    Table,
    Id,
    TenantId,
    UserId,
    ClerkMembershipId,
    Role,
    /// Clerk's `public_user_data` as of the membership event, shown until the user syncs.
    UserName,
    UserEmail,
    UserImageUrl,
    SourceUpdatedAt,
    DeletedAt,
    CreatedByUserId,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    SvixId,
    EventType,
    ReceivedAt,
}

#[derive(DeriveIden)]
enum DeletedTenants {
    Table,
    Id,
    DeletedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Tenants::Table)
                    .add_column(big_integer_null(Tenants::SourceUpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .if_not_exists()
                    .col(string(Users::Id).primary_key())
                    .col(string_null(Users::Email))
                    .col(string_null(Users::Name))
                    .col(string_null(Users::ImageUrl))
                    .col(big_integer_null(Users::SourceUpdatedAt))
                    .col(timestamp_with_time_zone_null(Users::DeletedAt))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .col(timestamp_with_time_zone(Users::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        rls::grant(manager, "users").await?;

        manager
            .create_table(
                Table::create()
                    .table(Memberships::Table)
                    .if_not_exists()
                    .col(uuid(Memberships::Id).primary_key())
                    .col(string(Memberships::TenantId))
                    .col(string(Memberships::UserId))
                    .col(string_null(Memberships::ClerkMembershipId))
                    .col(string(Memberships::Role))
                    .col(string_null(Memberships::UserName))
                    .col(string_null(Memberships::UserEmail))
                    .col(string_null(Memberships::UserImageUrl))
                    .col(big_integer(Memberships::SourceUpdatedAt))
                    .col(timestamp_with_time_zone_null(Memberships::DeletedAt))
                    .col(string(Memberships::CreatedByUserId))
                    .col(timestamp_with_time_zone(Memberships::CreatedAt))
                    .col(timestamp_with_time_zone(Memberships::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        // One row per (workspace, user): the upsert target, and the assignee check's lookup.
        manager
            .create_index(
                Index::create()
                    .name("memberships_tenant_id_user_id")
                    .table(Memberships::Table)
                    .col(Memberships::TenantId)
                    .col(Memberships::UserId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("memberships_tenant_id_id")
                    .table(Memberships::Table)
                    .col(Memberships::TenantId)
                    .col(Memberships::Id)
                    .to_owned(),
            )
            .await?;
        rls::protect_tenant_table(manager, "memberships").await?;

        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .if_not_exists()
                    .col(string(WebhookDeliveries::SvixId).primary_key())
                    .col(string(WebhookDeliveries::EventType))
                    .col(timestamp_with_time_zone(WebhookDeliveries::ReceivedAt))
                    .to_owned(),
            )
            .await?;
        rls::grant(manager, "webhook_deliveries").await?;

        manager
            .create_table(
                Table::create()
                    .table(DeletedTenants::Table)
                    .if_not_exists()
                    .col(string(DeletedTenants::Id).primary_key())
                    .col(timestamp_with_time_zone(DeletedTenants::DeletedAt))
                    .to_owned(),
            )
            .await?;
        rls::grant(manager, "deleted_tenants").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(DeletedTenants::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(
                Table::drop()
                    .table(WebhookDeliveries::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(
                Table::drop()
                    .table(Memberships::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Users::Table).if_exists().to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Tenants::Table)
                    .drop_column(Tenants::SourceUpdatedAt)
                    .to_owned(),
            )
            .await
    }
}
