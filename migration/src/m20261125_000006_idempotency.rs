//! Idempotency keys: the first answer to a creating `POST` per workspace, route and
//! `Idempotency-Key`, kept 24 hours and replayed to retries (see `api/src/idempotency.rs`).
//! Tenant-owned, under row-level security like every other tenant table.

use sea_orm_migration::{prelude::*, schema::*};

use crate::rls;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    Id,
    TenantId,
    /// `POST /v1/tasks`: the method and the route template.
    Route,
    IdempotencyKey,
    /// SHA-256 (hex) of the caller, the media type and the body.
    Fingerprint,
    /// The answer's status; NULL while the first request is still running.
    ResponseStatus,
    /// The answer's replayed headers, as a JSON array of `[name, value]` pairs.
    ResponseHeaders,
    ResponseBody,
    CreatedByUserId,
    CreatedAt,
    UpdatedAt,
    /// When the row may be purged: 24 h after the answer, or shortly after a start whose
    /// request never finished (a crashed process), so the key is not held forever.
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(IdempotencyKeys::Table)
                    .if_not_exists()
                    .col(uuid(IdempotencyKeys::Id).primary_key())
                    .col(string(IdempotencyKeys::TenantId))
                    .col(string(IdempotencyKeys::Route))
                    .col(string(IdempotencyKeys::IdempotencyKey))
                    .col(string(IdempotencyKeys::Fingerprint))
                    .col(integer_null(IdempotencyKeys::ResponseStatus))
                    .col(text_null(IdempotencyKeys::ResponseHeaders))
                    .col(blob_null(IdempotencyKeys::ResponseBody))
                    .col(string(IdempotencyKeys::CreatedByUserId))
                    .col(timestamp_with_time_zone(IdempotencyKeys::CreatedAt))
                    .col(timestamp_with_time_zone(IdempotencyKeys::UpdatedAt))
                    .col(timestamp_with_time_zone(IdempotencyKeys::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        // The claim's conflict target: one row per (workspace, route, key).
        manager
            .create_index(
                Index::create()
                    .name("idempotency_keys_tenant_id_route_key")
                    .table(IdempotencyKeys::Table)
                    .col(IdempotencyKeys::TenantId)
                    .col(IdempotencyKeys::Route)
                    .col(IdempotencyKeys::IdempotencyKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The purge of a workspace's expired keys, run with each new claim.
        manager
            .create_index(
                Index::create()
                    .name("idempotency_keys_tenant_id_expires_at")
                    .table(IdempotencyKeys::Table)
                    .col(IdempotencyKeys::TenantId)
                    .col(IdempotencyKeys::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        rls::protect_tenant_table(manager, "idempotency_keys").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(IdempotencyKeys::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
