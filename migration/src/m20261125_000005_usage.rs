//! Monthly usage per workspace: the characters its generations reserved, one row per
//! (workspace, calendar month in UTC). Tenant-owned, with row-level security like the others.

use sea_orm_migration::{prelude::*, schema::*};

use crate::rls;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Usage {
    Table,
    TenantId,
    PeriodStart,
    CharactersUsed,
    CreatedByUserId,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Usage::Table)
                    .if_not_exists()
                    .col(string(Usage::TenantId))
                    .col(date(Usage::PeriodStart))
                    .col(big_integer(Usage::CharactersUsed).default(0))
                    .col(string(Usage::CreatedByUserId))
                    .col(timestamp_with_time_zone(Usage::UpdatedAt))
                    .primary_key(Index::create().col(Usage::TenantId).col(Usage::PeriodStart))
                    .to_owned(),
            )
            .await?;
        rls::protect_tenant_table(manager, "usage").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Usage::Table).if_exists().to_owned())
            .await
    }
}
