//! The tenant registry: the database connection tenant work runs on, and which tenants this
//! process has already recorded in the `tenants` table.
//!
//! It is the one door to tenant data: [`ScopedDb::begin`] (a request acting in its workspace)
//! and [`TenantAdmin::begin`] (system work such as Clerk webhooks) both take it, and it never
//! hands out its connection.
//!
//! [`ScopedDb::begin`]: super::ScopedDb::begin
//! [`TenantAdmin::begin`]: super::TenantAdmin::begin

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, sea_query::OnConflict};

use super::{TenantContext, TenantKind, connection::RequestTransaction, pipelined::PipelinedReads};
use crate::{
    entities::tenant,
    error::{ApiError, Unauthorized},
    events::Bus,
};

#[derive(Clone)]
pub struct TenantRegistry {
    db: DatabaseConnection,
    /// Tenants already registered by this process.
    seen: moka::sync::Cache<String, ()>,
    /// Where system work publishes what other instances must hear about.
    bus: Bus,
    /// One-round-trip reads, where the database allows them (see `tenant::pipelined`).
    reads: Option<PipelinedReads>,
}

impl TenantRegistry {
    pub fn new(db: DatabaseConnection, bus: Bus) -> TenantRegistry {
        TenantRegistry {
            db,
            seen: moka::sync::Cache::new(100_000),
            bus,
            reads: None,
        }
    }

    /// The same registry (shared memory of seen tenants) on other connection pools.
    pub fn with_connection(
        &self,
        db: DatabaseConnection,
        reads: Option<PipelinedReads>,
    ) -> TenantRegistry {
        TenantRegistry {
            db,
            seen: self.seen.clone(),
            bus: self.bus.clone(),
            reads,
        }
    }

    pub(super) fn pipelined_reads(&self) -> Option<&PipelinedReads> {
        self.reads.as_ref()
    }

    /// Notices this instance hears (event streams follow their workspace's log with them).
    pub fn subscribe_events(&self) -> tokio::sync::broadcast::Receiver<crate::events::Notice> {
        self.bus.subscribe()
    }

    pub(super) fn bus(&self) -> &Bus {
        &self.bus
    }

    /// Opens a transaction confined to `tenant` (on PostgreSQL, `app.tenant_id` is set for
    /// row-level security), or to no tenant at all.
    pub(super) async fn transaction(
        &self,
        tenant: Option<&str>,
    ) -> Result<RequestTransaction, DbErr> {
        RequestTransaction::begin(&self.db, tenant).await
    }

    /// Records a tenant the first time this process sees it (idempotent upsert, then cached).
    /// A workspace deleted through Clerk's webhooks is refused, so a token issued before the
    /// deletion cannot bring it back (see `tenant::directory_sync`).
    pub(super) async fn register(&self, ctx: &TenantContext) -> Result<(), ApiError> {
        if self.seen.contains_key(&ctx.tenant_id) {
            return Ok(());
        }
        // In a transaction of its own, for its retry on a dead pooled connection: a miss is
        // common right after a lost connection, when every instance forgets its tenants.
        let txn = self.transaction(None).await?;
        if super::lifecycle::is_deleted_tenant(&txn, &ctx.tenant_id).await? {
            return Err(ApiError::Unauthorized(Unauthorized::invalid(
                "the workspace of this token has been deleted",
            )));
        }
        upsert_tenant(&txn, ctx).await?;
        txn.commit().await?;
        self.seen.insert(ctx.tenant_id.clone(), ());
        Ok(())
    }

    /// The session revocations recorded at or after `since_ms` (Unix milliseconds), for an
    /// instance that starts or may have missed notices.
    pub async fn session_revocations_since(
        &self,
        since_ms: i64,
    ) -> Result<Vec<super::lifecycle::SessionRevocation>, DbErr> {
        let txn = self.transaction(None).await?;
        let rows = super::lifecycle::session_revocations_since(&txn, since_ms).await?;
        txn.commit().await?;
        Ok(rows)
    }

    /// Forgets a tenant (after its deletion, here or on another instance), so its next
    /// request checks the tombstone.
    pub fn forget(&self, tenant_id: &str) {
        self.seen.invalidate(tenant_id);
    }

    /// Forgets every tenant (events may have been missed): each one's next request checks
    /// its tombstone again.
    pub fn forget_all(&self) {
        self.seen.invalidate_all();
    }
}

async fn upsert_tenant(db: &impl ConnectionTrait, ctx: &TenantContext) -> Result<(), DbErr> {
    let now = chrono::Utc::now();
    let row = tenant::ActiveModel {
        id: sea_orm::Set(ctx.tenant_id.clone()),
        kind: sea_orm::Set(ctx.tenant_kind.as_str().to_owned()),
        name: sea_orm::Set(None),
        slug: sea_orm::Set(ctx.org_slug.clone()),
        created_at: sea_orm::Set(now),
        updated_at: sea_orm::Set(now),
    };
    let mut on_conflict = OnConflict::column(tenant::Column::Id);
    if ctx.tenant_kind == TenantKind::Organization && ctx.org_slug.is_some() {
        on_conflict.update_column(tenant::Column::Slug);
    } else {
        on_conflict.do_nothing();
    }
    match tenant::Entity::insert(row)
        .on_conflict(on_conflict)
        .exec_without_returning(db)
        .await
    {
        Ok(_) | Err(DbErr::RecordNotInserted) => Ok(()),
        Err(err) => Err(err),
    }
}
