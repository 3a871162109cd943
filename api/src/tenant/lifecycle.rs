//! The system path: the storage operations of workspace lifecycle and directory sync
//! ([`super::directory_sync`]), for work no request's
//! [`TenantContext`](crate::tenant::TenantContext) covers (Clerk webhooks).
//!
//! Why a separate handle: a webhook is not a user acting in a workspace, so [`ScopedDb`]
//! (which is built from a verified token) does not apply; yet the same walls must hold:
//! - Every unit of work is one transaction, begun with [`TenantAdmin::begin`] for exactly one
//!   affected tenant (or none, for directory rows that belong to no tenant). On PostgreSQL the
//!   transaction sets `app.tenant_id` to that tenant, so row-level security confines every
//!   tenant-owned statement to it: even a bug here cannot touch another workspace.
//! - The handle never hands out its connection; it offers only the operations the sync needs.
//! - Out-of-order deliveries: each synced row stores Clerk's `updated_at` (`source_updated_at`),
//!   and every upsert is conditional (`… ON CONFLICT DO UPDATE … WHERE stored < incoming`), so an
//!   older version never overwrites a newer one, even with concurrent deliveries.
//! - Deletion is final: a deleted workspace leaves a tombstone (`deleted_tenants`) and a deleted
//!   user keeps a row with `deleted_at`, so a late `created`/`updated` cannot bring either back.
//!
//! [`ScopedDb`]: crate::tenant::scoped::ScopedDb

use chrono::Utc;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    sea_query::{Alias, Expr, ExprTrait, IntoIden, OnConflict, Query},
};
use uuid::Uuid;

use super::{TenantRegistry, connection::RequestTransaction};
use crate::{
    entities::{membership, tenant, user},
    error::ApiError,
};

/// `created_by_user_id` of rows the sync writes.
pub const SYSTEM_PRINCIPAL: &str = "system:clerk-webhook";

/// Every tenant-owned table, children before parents: deleting a tenant empties each of these
/// for it. A test compares this list with the schema (every table with a `tenant_id` column),
/// so a new tenant-owned table cannot be forgotten here.
pub const TENANT_OWNED_TABLES: &[&str] =
    &["generations", "voices", "tasks", "projects", "memberships"];

/// Whether a conditional write took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The row now reflects this version.
    Yes,
    /// A newer (or the same) version was already stored, or the object was deleted: unchanged.
    Stale,
}

impl Applied {
    fn from_rows(rows: u64) -> Applied {
        if rows > 0 {
            Applied::Yes
        } else {
            Applied::Stale
        }
    }
}

/// An organization as Clerk describes it.
#[derive(Debug, Clone)]
pub struct OrganizationRecord {
    pub id: String,
    pub name: Option<String>,
    pub slug: Option<String>,
    pub updated_at: i64,
}

/// A user as Clerk describes it.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub image_url: Option<String>,
    pub updated_at: i64,
}

/// A membership as Clerk describes it (the tenant is the handle's).
#[derive(Debug, Clone)]
pub struct MembershipRecord {
    pub user_id: String,
    pub clerk_membership_id: Option<String>,
    pub role: String,
    pub user_name: Option<String>,
    pub user_email: Option<String>,
    pub user_image_url: Option<String>,
    pub updated_at: i64,
}

/// Rows removed with a tenant, per table.
pub type DeletedRows = Vec<(&'static str, u64)>;

/// One unit of system work on the directory and at most one tenant.
pub struct TenantAdmin {
    txn: RequestTransaction,
    tenant_id: Option<String>,
}

impl TenantAdmin {
    /// Begins a transaction for work affecting `tenant` (None: only directory rows that belong
    /// to no tenant: users, webhook deliveries).
    pub async fn begin(
        tenants: &TenantRegistry,
        tenant: Option<&str>,
    ) -> Result<TenantAdmin, ApiError> {
        let txn = tenants.transaction(tenant).await?;
        Ok(TenantAdmin {
            txn,
            tenant_id: tenant.map(str::to_owned),
        })
    }

    /// Makes the work durable. Dropping the handle instead rolls it back.
    pub async fn commit(self) -> Result<(), ApiError> {
        self.txn.commit().await?;
        Ok(())
    }

    fn tenant(&self) -> Result<&str, ApiError> {
        self.tenant_id
            .as_deref()
            .ok_or_else(|| ApiError::internal("tenant operation on a TenantAdmin without a tenant"))
    }

    /// Records a delivery's `svix-id`. False when it was recorded before (a redelivery): the
    /// caller then changes nothing. Recorded in the same transaction as the delivery's effect,
    /// so an id is marked applied exactly when its effect is committed.
    pub async fn record_delivery(&self, svix_id: &str, event_type: &str) -> Result<bool, DbErr> {
        let insert = Query::insert()
            .into_table(Alias::new("webhook_deliveries"))
            .columns([
                Alias::new("svix_id"),
                Alias::new("event_type"),
                Alias::new("received_at"),
            ])
            .values_panic([svix_id.into(), event_type.into(), Utc::now().into()])
            .on_conflict(
                OnConflict::column(Alias::new("svix_id"))
                    .do_nothing()
                    .to_owned(),
            )
            .to_owned();
        Ok(self.txn.execute(&insert).await?.rows_affected() > 0)
    }

    /// True when the workspace was deleted (its id is never used again).
    pub async fn is_deleted_tenant(&self, tenant_id: &str) -> Result<bool, DbErr> {
        is_deleted_tenant(&self.txn, tenant_id).await
    }

    /// Creates or updates the organization's workspace row, unless a newer version is stored
    /// or the organization was deleted.
    pub async fn upsert_organization(&self, org: &OrganizationRecord) -> Result<Applied, ApiError> {
        if self.is_deleted_tenant(&org.id).await? {
            return Ok(Applied::Stale);
        }
        let now = Utc::now();
        let source = Alias::new("source_updated_at");
        let insert = Query::insert()
            .into_table(tenant::Entity)
            .columns([
                tenant::Column::Id.into_iden(),
                tenant::Column::Kind.into_iden(),
                tenant::Column::Name.into_iden(),
                tenant::Column::Slug.into_iden(),
                source.clone().into_iden(),
                tenant::Column::CreatedAt.into_iden(),
                tenant::Column::UpdatedAt.into_iden(),
            ])
            .values_panic([
                org.id.clone().into(),
                "organization".into(),
                org.name.clone().into(),
                org.slug.clone().into(),
                org.updated_at.into(),
                now.into(),
                now.into(),
            ])
            .on_conflict(
                OnConflict::column(tenant::Column::Id)
                    .update_columns([
                        tenant::Column::Kind,
                        tenant::Column::Name,
                        tenant::Column::Slug,
                        tenant::Column::UpdatedAt,
                    ])
                    .update_column(source.clone())
                    .action_and_where(newer_than_stored(Alias::new("tenants"), source))
                    .to_owned(),
            )
            .to_owned();
        Ok(Applied::from_rows(
            self.txn.execute(&insert).await?.rows_affected(),
        ))
    }

    /// Removes the handle's tenant and everything it owns (every table in
    /// [`TENANT_OWNED_TABLES`]; shared system voices have no tenant and are untouched), and
    /// leaves a tombstone so it cannot come back. Stored objects (audio) are the caller's to
    /// delete before committing.
    pub async fn delete_tenant(&self) -> Result<DeletedRows, ApiError> {
        let tenant_id = self.tenant()?.to_owned();
        let mut deleted = Vec::with_capacity(TENANT_OWNED_TABLES.len());
        for table in TENANT_OWNED_TABLES {
            let delete = Query::delete()
                .from_table(Alias::new(*table))
                .and_where(Expr::col(Alias::new("tenant_id")).eq(tenant_id.as_str()))
                .to_owned();
            deleted.push((*table, self.txn.execute(&delete).await?.rows_affected()));
        }
        tenant::Entity::delete_by_id(tenant_id.clone())
            .exec(&self.txn)
            .await?;
        let tombstone = Query::insert()
            .into_table(Alias::new("deleted_tenants"))
            .columns([Alias::new("id"), Alias::new("deleted_at")])
            .values_panic([tenant_id.into(), Utc::now().into()])
            .on_conflict(OnConflict::column(Alias::new("id")).do_nothing().to_owned())
            .to_owned();
        self.txn.execute(&tombstone).await?;
        Ok(deleted)
    }

    /// Creates or updates a user's directory row, unless a newer version is stored or the
    /// user was deleted.
    pub async fn upsert_user(&self, record: &UserRecord) -> Result<Applied, DbErr> {
        let now = Utc::now();
        let insert = Query::insert()
            .into_table(user::Entity)
            .columns([
                user::Column::Id,
                user::Column::Email,
                user::Column::Name,
                user::Column::ImageUrl,
                user::Column::SourceUpdatedAt,
                user::Column::CreatedAt,
                user::Column::UpdatedAt,
            ])
            .values_panic([
                record.id.clone().into(),
                record.email.clone().into(),
                record.name.clone().into(),
                record.image_url.clone().into(),
                record.updated_at.into(),
                now.into(),
                now.into(),
            ])
            .on_conflict(
                OnConflict::column(user::Column::Id)
                    .update_columns([
                        user::Column::Email,
                        user::Column::Name,
                        user::Column::ImageUrl,
                        user::Column::SourceUpdatedAt,
                        user::Column::UpdatedAt,
                    ])
                    .action_and_where(
                        newer_than_stored(Alias::new("users"), Alias::new("source_updated_at"))
                            .and(
                                Expr::col((Alias::new("users"), user::Column::DeletedAt)).is_null(),
                            ),
                    )
                    .to_owned(),
            )
            .to_owned();
        Ok(Applied::from_rows(
            self.txn.execute(&insert).await?.rows_affected(),
        ))
    }

    /// Marks a user deleted and clears their profile. The row stays so that what they created
    /// in organization workspaces (which the organizations own) shows them as deleted.
    pub async fn mark_user_deleted(&self, user_id: &str) -> Result<(), DbErr> {
        let now = Utc::now();
        let insert = Query::insert()
            .into_table(user::Entity)
            .columns([
                user::Column::Id,
                user::Column::Email,
                user::Column::Name,
                user::Column::ImageUrl,
                user::Column::DeletedAt,
                user::Column::CreatedAt,
                user::Column::UpdatedAt,
            ])
            .values_panic([
                user_id.into(),
                Option::<String>::None.into(),
                Option::<String>::None.into(),
                Option::<String>::None.into(),
                now.into(),
                now.into(),
                now.into(),
            ])
            .on_conflict(
                OnConflict::column(user::Column::Id)
                    .update_columns([
                        user::Column::Email,
                        user::Column::Name,
                        user::Column::ImageUrl,
                        user::Column::UpdatedAt,
                    ])
                    // The first deletion time is kept.
                    .value(
                        user::Column::DeletedAt,
                        Expr::cust("COALESCE(users.deleted_at, excluded.deleted_at)"),
                    )
                    .to_owned(),
            )
            .to_owned();
        self.txn.execute(&insert).await?;
        Ok(())
    }

    /// True when the directory knows the user as deleted.
    pub async fn is_deleted_user(&self, user_id: &str) -> Result<bool, DbErr> {
        Ok(user::Entity::find_by_id(user_id.to_owned())
            .filter(user::Column::DeletedAt.is_not_null())
            .one(&self.txn)
            .await?
            .is_some())
    }

    /// Creates, updates or revives the user's membership of the handle's tenant, unless a
    /// newer version is stored.
    pub async fn upsert_membership(&self, record: &MembershipRecord) -> Result<Applied, ApiError> {
        let tenant_id = self.tenant()?;
        if self.is_deleted_tenant(tenant_id).await? || self.is_deleted_user(&record.user_id).await?
        {
            return Ok(Applied::Stale);
        }
        self.write_membership(tenant_id, record, None).await
    }

    /// Marks the user's membership of the handle's tenant removed, unless a newer version
    /// is stored. The row stays (hidden from lists) so an older, late delivery cannot revive it.
    pub async fn remove_membership(&self, record: &MembershipRecord) -> Result<Applied, ApiError> {
        let tenant_id = self.tenant()?;
        if self.is_deleted_tenant(tenant_id).await? {
            return Ok(Applied::Stale);
        }
        self.write_membership(tenant_id, record, Some(Utc::now()))
            .await
    }

    async fn write_membership(
        &self,
        tenant_id: &str,
        record: &MembershipRecord,
        deleted_at: Option<chrono::DateTime<Utc>>,
    ) -> Result<Applied, ApiError> {
        let now = Utc::now();
        let insert = Query::insert()
            .into_table(membership::Entity)
            .columns([
                membership::Column::Id,
                membership::Column::TenantId,
                membership::Column::UserId,
                membership::Column::ClerkMembershipId,
                membership::Column::Role,
                membership::Column::UserName,
                membership::Column::UserEmail,
                membership::Column::UserImageUrl,
                membership::Column::SourceUpdatedAt,
                membership::Column::DeletedAt,
                membership::Column::CreatedByUserId,
                membership::Column::CreatedAt,
                membership::Column::UpdatedAt,
            ])
            .values_panic([
                Uuid::now_v7().into(),
                tenant_id.into(),
                record.user_id.clone().into(),
                record.clerk_membership_id.clone().into(),
                record.role.clone().into(),
                record.user_name.clone().into(),
                record.user_email.clone().into(),
                record.user_image_url.clone().into(),
                record.updated_at.into(),
                deleted_at.into(),
                SYSTEM_PRINCIPAL.into(),
                now.into(),
                now.into(),
            ])
            .on_conflict(
                OnConflict::columns([membership::Column::TenantId, membership::Column::UserId])
                    .update_columns([
                        membership::Column::ClerkMembershipId,
                        membership::Column::Role,
                        membership::Column::UserName,
                        membership::Column::UserEmail,
                        membership::Column::UserImageUrl,
                        membership::Column::SourceUpdatedAt,
                        membership::Column::DeletedAt,
                        membership::Column::UpdatedAt,
                    ])
                    .action_and_where(newer_than_stored(
                        Alias::new("memberships"),
                        Alias::new("source_updated_at"),
                    ))
                    .to_owned(),
            )
            .to_owned();
        Ok(Applied::from_rows(
            self.txn.execute(&insert).await?.rows_affected(),
        ))
    }
}

/// True when the workspace was deleted: it has a tombstone, and its id is never used again.
pub async fn is_deleted_tenant(db: &impl ConnectionTrait, tenant_id: &str) -> Result<bool, DbErr> {
    let select = Query::select()
        .expr(Expr::val(1))
        .from(Alias::new("deleted_tenants"))
        .and_where(Expr::col(Alias::new("id")).eq(tenant_id))
        .to_owned();
    Ok(db.query_one(&select).await?.is_some())
}

/// `<table>.<column> IS NULL OR <table>.<column> < excluded.<column>`: the upsert's guard.
fn newer_than_stored(table: Alias, column: Alias) -> Expr {
    Expr::col((table.clone(), column.clone()))
        .is_null()
        .or(Expr::col((table, column.clone())).lt(Expr::col((Alias::new("excluded"), column))))
}
