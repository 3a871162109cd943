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
    sea_query::{Alias, Expr, ExprTrait, InsertStatement, OnConflict, Query},
};
use uuid::Uuid;

use super::{TenantRegistry, connection::RequestTransaction};
use crate::{
    entities::{billing_account, tenant, user},
    error::ApiError,
    events::{self, Notice, Outbox},
};

/// `created_by_user_id` of rows the sync writes.
pub const SYSTEM_PRINCIPAL: &str = "system:clerk-webhook";

/// Every tenant-owned table, children before parents: deleting a tenant empties each of these
/// for it. A test compares this list with the schema (every table with a `tenant_id` column),
/// so a new tenant-owned table cannot be forgotten here.
pub const TENANT_OWNED_TABLES: &[&str] = &[
    "events",
    "billing_accounts",
    "idempotency_keys",
    "generations",
    "voices",
    "tasks",
    "projects",
    "memberships",
    "usage",
];

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

/// A workspace's subscription as Polar describes it (the tenant is the handle's).
#[derive(Debug, Clone)]
pub struct SubscriptionRecord {
    pub customer_id: Option<String>,
    /// None: the customer has no subscription (its state says so).
    pub subscription_id: Option<String>,
    pub product_id: Option<String>,
    pub status: String,
    pub current_period_end: Option<chrono::DateTime<Utc>>,
    pub cancel_at_period_end: bool,
    pub ends_at: Option<chrono::DateTime<Utc>>,
    /// Polar's `modified_at` (microseconds since the epoch): the version of this state.
    pub modified_at: i64,
    /// The customer's whole state (`customer.state_changed`): it replaces whatever is stored.
    /// A single subscription's event never ends another subscription that still grants a
    /// plan (an old one revoked after the customer subscribed anew).
    pub authoritative: bool,
}

/// `created_by_user_id` of billing rows.
pub const BILLING_PRINCIPAL: &str = "system:polar-webhook";

impl SubscriptionRecord {
    fn to_model(&self, tenant_id: &str) -> billing_account::Model {
        let now = Utc::now();
        billing_account::Model {
            tenant_id: tenant_id.to_owned(),
            polar_customer_id: self.customer_id.clone(),
            subscription_id: self.subscription_id.clone(),
            product_id: self.product_id.clone(),
            status: self.status.clone(),
            current_period_end: self.current_period_end,
            cancel_at_period_end: self.cancel_at_period_end,
            ends_at: self.ends_at,
            source_modified_at: self.modified_at,
            created_by_user_id: BILLING_PRINCIPAL.to_owned(),
            created_at: now,
            updated_at: now,
        }
    }
}

/// Rows removed with a tenant, per table.
pub type DeletedRows = Vec<(&'static str, u64)>;

/// One unit of system work on the directory and at most one tenant.
pub struct TenantAdmin {
    txn: RequestTransaction,
    tenant_id: Option<String>,
    /// Notices to deliver once committed (SQLite; PostgreSQL sends them with the commit).
    outbox: Outbox,
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
            outbox: Outbox::new(tenants.bus()),
        })
    }

    /// Makes the work durable, and its published notices heard. Dropping the handle instead
    /// rolls both back.
    pub async fn commit(self) -> Result<(), ApiError> {
        self.txn.commit().await?;
        self.outbox.committed();
        Ok(())
    }

    /// Publishes `notice` with this work: every instance hears it if, and once, the work
    /// commits. On PostgreSQL one `pg_notify` statement in the transaction.
    pub async fn publish(&self, notice: Notice) -> Result<(), DbErr> {
        if self.outbox.publishes_in_transaction() {
            events::notify(&self.txn, &notice).await
        } else {
            self.outbox.hold(notice);
            Ok(())
        }
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

    /// Records that `user_id`'s session tokens for the handle's tenant issued before `at_ms`
    /// (Unix milliseconds) are revoked (a membership removed or its role changed), and purges
    /// revocations older than `purge_before_ms`, which no valid token can predate any more.
    pub async fn record_revocation(
        &self,
        user_id: &str,
        at_ms: i64,
        purge_before_ms: i64,
    ) -> Result<(), ApiError> {
        let tenant_id = self.tenant()?;
        let table = || Alias::new("session_revocations");
        let revoked_at = || Alias::new("revoked_at");
        let purge = Query::delete()
            .from_table(table())
            .and_where(Expr::col(revoked_at()).lt(purge_before_ms))
            .to_owned();
        self.txn.execute(&purge).await?;
        let insert = Query::insert()
            .into_table(table())
            .columns([
                Alias::new("organization_id"),
                Alias::new("user_id"),
                revoked_at(),
            ])
            .values_panic([tenant_id.into(), user_id.into(), at_ms.into()])
            .on_conflict(
                OnConflict::columns([Alias::new("organization_id"), Alias::new("user_id")])
                    .update_column(revoked_at())
                    .to_owned(),
            )
            .to_owned();
        self.txn.execute(&insert).await?;
        Ok(())
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
        let insert = SyncedRow {
            table: "tenants",
            key: &["id"],
            insert_only: &[],
            keep_first: &[],
            values: vec![
                ("id", org.id.clone().into()),
                ("kind", "organization".into()),
                ("name", org.name.clone().into()),
                ("slug", org.slug.clone().into()),
                ("source_updated_at", org.updated_at.into()),
            ],
        }
        .upsert(Some(newer_than_stored("tenants")));
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

    /// True when the workspace is one of ours: recorded (by a token or Clerk) and not deleted.
    pub async fn is_known_tenant(&self) -> Result<bool, ApiError> {
        let tenant_id = self.tenant()?;
        if self.is_deleted_tenant(tenant_id).await? {
            return Ok(false);
        }
        Ok(tenant::Entity::find_by_id(tenant_id.to_owned())
            .one(&self.txn)
            .await?
            .is_some())
    }

    /// Stores the handle's workspace's subscription state, unless a newer state is stored (or
    /// the record would end another subscription that still grants a plan, see
    /// [`SubscriptionRecord::authoritative`]).
    pub async fn apply_subscription(
        &self,
        record: &SubscriptionRecord,
    ) -> Result<Applied, ApiError> {
        let tenant_id = self.tenant()?;
        let incoming = record.to_model(tenant_id);
        let stored = billing_account::Entity::find_by_id(tenant_id.to_owned())
            .one(&self.txn)
            .await?;
        if let Some(stored) = &stored {
            let now = Utc::now();
            let older = stored.source_modified_at >= record.modified_at;
            let ends_another = !record.authoritative
                && stored.subscription_id != record.subscription_id
                && stored.grants_plan(now)
                && !incoming.grants_plan(now);
            if older || ends_another {
                return Ok(Applied::Stale);
            }
        }
        let insert = SyncedRow {
            table: "billing_accounts",
            key: &["tenant_id"],
            insert_only: &["created_by_user_id"],
            keep_first: &[],
            values: vec![
                ("tenant_id", tenant_id.into()),
                ("polar_customer_id", incoming.polar_customer_id.into()),
                ("subscription_id", incoming.subscription_id.into()),
                ("product_id", incoming.product_id.into()),
                ("status", incoming.status.into()),
                ("current_period_end", incoming.current_period_end.into()),
                ("cancel_at_period_end", incoming.cancel_at_period_end.into()),
                ("ends_at", incoming.ends_at.into()),
                ("source_modified_at", incoming.source_modified_at.into()),
                ("created_by_user_id", BILLING_PRINCIPAL.into()),
            ],
        }
        // The same rule in the statement, for two deliveries applied at once.
        .upsert(Some(Expr::cust(
            "billing_accounts.source_modified_at < excluded.source_modified_at",
        )));
        Ok(Applied::from_rows(
            self.txn.execute(&insert).await?.rows_affected(),
        ))
    }

    /// Creates or updates a user's directory row, unless a newer version is stored or the
    /// user was deleted.
    pub async fn upsert_user(&self, record: &UserRecord) -> Result<Applied, DbErr> {
        let guard = newer_than_stored("users").and(Expr::cust("users.deleted_at IS NULL"));
        let insert = SyncedRow {
            table: "users",
            key: &["id"],
            insert_only: &[],
            keep_first: &[],
            values: vec![
                ("id", record.id.clone().into()),
                ("email", record.email.clone().into()),
                ("name", record.name.clone().into()),
                ("image_url", record.image_url.clone().into()),
                ("source_updated_at", record.updated_at.into()),
            ],
        }
        .upsert(Some(guard));
        Ok(Applied::from_rows(
            self.txn.execute(&insert).await?.rows_affected(),
        ))
    }

    /// Marks a user deleted and clears their profile. The row stays so that what they created
    /// in organization workspaces (which the organizations own) shows them as deleted.
    pub async fn mark_user_deleted(&self, user_id: &str) -> Result<(), DbErr> {
        let no_text = || Option::<String>::None.into();
        let insert = SyncedRow {
            table: "users",
            key: &["id"],
            insert_only: &[],
            // The first deletion time is kept.
            keep_first: &["deleted_at"],
            values: vec![
                ("id", user_id.into()),
                ("email", no_text()),
                ("name", no_text()),
                ("image_url", no_text()),
                ("deleted_at", Utc::now().into()),
            ],
        }
        .upsert(None);
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
        let insert = SyncedRow {
            table: "memberships",
            key: &["tenant_id", "user_id"],
            insert_only: &["id", "created_by_user_id"],
            keep_first: &[],
            values: vec![
                ("id", Uuid::now_v7().into()),
                ("tenant_id", tenant_id.into()),
                ("user_id", record.user_id.clone().into()),
                (
                    "clerk_membership_id",
                    record.clerk_membership_id.clone().into(),
                ),
                ("role", record.role.clone().into()),
                ("user_name", record.user_name.clone().into()),
                ("user_email", record.user_email.clone().into()),
                ("user_image_url", record.user_image_url.clone().into()),
                ("source_updated_at", record.updated_at.into()),
                ("deleted_at", deleted_at.into()),
                ("created_by_user_id", SYSTEM_PRINCIPAL.into()),
            ],
        }
        .upsert(Some(newer_than_stored("memberships")));
        Ok(Applied::from_rows(
            self.txn.execute(&insert).await?.rows_affected(),
        ))
    }
}

/// A row the directory sync writes: inserted, or on conflict on `key` updated in every column
/// but the key, `created_at` and `insert_only`; a `keep_first` column keeps a stored value
/// over the incoming one. `created_at` and `updated_at` are added here.
struct SyncedRow {
    table: &'static str,
    key: &'static [&'static str],
    insert_only: &'static [&'static str],
    keep_first: &'static [&'static str],
    values: Vec<(&'static str, Expr)>,
}

impl SyncedRow {
    /// The upsert; with a `guard`, a conflicting row is updated only where the guard holds.
    fn upsert(self, guard: Option<Expr>) -> InsertStatement {
        let now = Utc::now();
        let mut values = self.values;
        values.push(("created_at", now.into()));
        values.push(("updated_at", now.into()));
        let updated = values
            .iter()
            .map(|(column, _)| *column)
            .filter(|c| {
                ![self.key, self.insert_only, self.keep_first, &["created_at"]]
                    .iter()
                    .any(|skip| skip.contains(c))
            })
            .map(Alias::new);
        let mut on_conflict = OnConflict::columns(self.key.iter().copied().map(Alias::new));
        on_conflict.update_columns(updated);
        for column in self.keep_first {
            let table = self.table;
            on_conflict.value(
                Alias::new(*column),
                Expr::cust(format!("COALESCE({table}.{column}, excluded.{column})")),
            );
        }
        if let Some(guard) = guard {
            on_conflict.action_and_where(guard);
        }
        let (columns, values): (Vec<_>, Vec<_>) = values
            .into_iter()
            .map(|(column, value)| (Alias::new(column), value))
            .unzip();
        Query::insert()
            .into_table(Alias::new(self.table))
            .columns(columns)
            .values_panic(values)
            .on_conflict(on_conflict)
            .to_owned()
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

/// `<table>.source_updated_at IS NULL OR … < excluded.source_updated_at`: an upsert's guard,
/// so an older version never overwrites a newer one.
fn newer_than_stored(table: &str) -> Expr {
    let stored = || Expr::col((Alias::new(table), Alias::new("source_updated_at")));
    stored().is_null().or(stored().lt(Expr::col((
        Alias::new("excluded"),
        Alias::new("source_updated_at"),
    ))))
}

/// A member's session tokens for an organization issued before `revoked_at_ms` are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRevocation {
    pub organization_id: String,
    pub user_id: String,
    pub revoked_at_ms: i64,
}

/// The revocations recorded at or after `since_ms` (Unix milliseconds), across workspaces.
pub(super) async fn session_revocations_since(
    db: &impl ConnectionTrait,
    since_ms: i64,
) -> Result<Vec<SessionRevocation>, DbErr> {
    let select = Query::select()
        .columns([
            Alias::new("organization_id"),
            Alias::new("user_id"),
            Alias::new("revoked_at"),
        ])
        .from(Alias::new("session_revocations"))
        .and_where(Expr::col(Alias::new("revoked_at")).gte(since_ms))
        .to_owned();
    db.query_all(&select)
        .await?
        .iter()
        .map(|row| {
            Ok(SessionRevocation {
                organization_id: row.try_get("", "organization_id")?,
                user_id: row.try_get("", "user_id")?,
                revoked_at_ms: row.try_get("", "revoked_at")?,
            })
        })
        .collect()
}
