//! The event log behind `GET /v1/events`: one row per change of a workspace's resources,
//! written in the transaction that makes the change. `NOTIFY` carries only a row's id and
//! tenant (its payload is capped at 8000 bytes); listeners read the body here, and a client
//! reconnecting with `Last-Event-ID` reads what it missed. Rows are purged after a retention
//! period. Tenant-owned, under row-level security like every other tenant table.

use sea_orm_migration::{prelude::*, schema::*, sea_orm::DbBackend};

use crate::rls;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Events {
    Table,
    /// Increasing; the SSE event id.
    Id,
    TenantId,
    /// `task.created`, `project.deleted`, …
    EventType,
    ResourceId,
    /// The resource's version after the change (NULL for deletes).
    Version,
    /// The resource as the REST API returns it (NULL for deletes), as JSON text.
    Body,
    CreatedByUserId,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Events::Table)
                    .if_not_exists()
                    .col(big_integer(Events::Id).auto_increment().primary_key())
                    .col(string(Events::TenantId))
                    .col(string(Events::EventType))
                    .col(string(Events::ResourceId))
                    .col(big_integer_null(Events::Version))
                    .col(text_null(Events::Body))
                    .col(string(Events::CreatedByUserId))
                    .col(timestamp_with_time_zone(Events::CreatedAt))
                    .to_owned(),
            )
            .await?;
        // Resume and purge read one workspace's rows by id and by age.
        manager
            .create_index(
                Index::create()
                    .name("events_tenant_id")
                    .table(Events::Table)
                    .col(Events::TenantId)
                    .col(Events::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("events_tenant_created_at")
                    .table(Events::Table)
                    .col(Events::TenantId)
                    .col(Events::CreatedAt)
                    .to_owned(),
            )
            .await?;
        rls::protect_tenant_table(manager, "events").await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            // The application role inserts rows, so it draws ids from the sequence.
            manager
                .get_connection()
                .execute_unprepared(&format!(
                    "GRANT USAGE, SELECT ON SEQUENCE events_id_seq TO {};",
                    rls::APP_ROLE
                ))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Events::Table).if_exists().to_owned())
            .await
    }
}
