//! Session tokens revoked by a membership change: one row per (organization, user) whose
//! membership was removed or whose role changed, with when. Every instance refuses the
//! member's session tokens for that organization issued earlier (they still carry the old
//! membership); an instance that starts, or that may have missed notices, reads the recent
//! rows here. Rows matter only for as long as a token issued before them can be valid, and
//! are purged after that.
//!
//! Not tenant-owned (no `tenant_id` column, no row-level security): like the deleted-workspace
//! tombstones, these are facts about Clerk identities that every instance reads across all
//! workspaces, not a workspace's data; they hold only ids and a time.

use sea_orm_migration::{prelude::*, schema::*};

use crate::rls;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SessionRevocations {
    Table,
    OrganizationId,
    UserId,
    /// Tokens issued before this are refused; Unix milliseconds (compared with token `iat`s,
    /// and ordered the same on SQLite, whose timestamps are text).
    RevokedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SessionRevocations::Table)
                    .if_not_exists()
                    .col(string(SessionRevocations::OrganizationId))
                    .col(string(SessionRevocations::UserId))
                    .col(big_integer(SessionRevocations::RevokedAt))
                    .primary_key(
                        Index::create()
                            .col(SessionRevocations::OrganizationId)
                            .col(SessionRevocations::UserId),
                    )
                    .to_owned(),
            )
            .await?;
        // Loading the recent rows and purging the old ones read by time.
        manager
            .create_index(
                Index::create()
                    .name("session_revocations_revoked_at")
                    .table(SessionRevocations::Table)
                    .col(SessionRevocations::RevokedAt)
                    .to_owned(),
            )
            .await?;
        rls::grant(manager, "session_revocations").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(SessionRevocations::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
