//! The tenant-scoped data handle: the only way handlers reach tenant-owned data.
//!
//! How isolation is enforced:
//! - Each tenant-owned entity implements [`TenantOwned`], naming its `tenant_id` and
//!   `created_by_user_id` columns.
//! - [`ScopedDb::begin`] opens a transaction for one request's database work and, on
//!   PostgreSQL, sets `app.tenant_id` transaction-locally in the same message, which
//!   row-level security checks (the second wall; see `migration::rls` and `connection.rs`).
//! - The handle never hands out its connection. Every read, update and delete goes through a
//!   method that ANDs `tenant_id = <ctx tenant>` onto whatever query the caller built, so a
//!   query without the filter cannot be executed through it; inserts are stamped with the
//!   tenant and creator, overwriting anything the caller set.
//! - Entities whose rows may be shared (`tenant_id` NULL, e.g. system voices) opt in with
//!   [`TenantOwned::SHARED_ROWS`]: reads then also see shared rows, writes never touch them.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseConnection, DbErr, DeleteMany, EntityTrait,
    IntoActiveModel, PaginatorTrait, QueryFilter, Select, sea_query::OnConflict,
};

use super::connection::RequestTransaction;

use crate::{
    entities::tenant,
    error::ApiError,
    server::AppState,
    tenant::{TenantContext, TenantKind},
};

/// A tenant-owned entity.
pub trait TenantOwned: EntityTrait {
    /// The `tenant_id` column.
    const TENANT: Self::Column;
    /// The `created_by_user_id` column.
    const CREATED_BY: Self::Column;
    /// Rows with a NULL tenant are shared: readable by every tenant, writable by none.
    const SHARED_ROWS: bool = false;
}

/// One request's database work, confined to one tenant.
pub struct ScopedDb {
    txn: RequestTransaction,
    tenant_id: String,
    principal: String,
}

impl ScopedDb {
    /// Starts the request's transaction for the context's tenant (registering the tenant the
    /// first time it is seen).
    pub async fn begin(state: &AppState, ctx: &TenantContext) -> Result<ScopedDb, ApiError> {
        register_tenant(state, ctx).await?;
        let txn = RequestTransaction::begin(&state.db, Some(&ctx.tenant_id)).await?;
        Ok(ScopedDb {
            txn,
            tenant_id: ctx.tenant_id.clone(),
            principal: ctx.principal.clone(),
        })
    }

    /// Ends a request that only read. The transaction is rolled back without waiting: the
    /// ROLLBACK travels with the connection's next statement, saving a round trip.
    pub fn finish_read(self) {
        drop(self.txn);
    }

    /// Makes the request's writes durable. Dropping the handle instead rolls them back.
    pub async fn commit(self) -> Result<(), ApiError> {
        self.txn.commit().await?;
        Ok(())
    }

    /// Rows this tenant owns (for updates and deletes).
    fn owned<E: TenantOwned>(&self) -> Condition {
        Condition::all().add(E::TENANT.eq(self.tenant_id.as_str()))
    }

    /// Rows this tenant may read: its own, plus shared rows where the entity has them.
    fn readable<E: TenantOwned>(&self) -> Condition {
        if E::SHARED_ROWS {
            Condition::any()
                .add(E::TENANT.eq(self.tenant_id.as_str()))
                .add(E::TENANT.is_null())
        } else {
            self.owned::<E>()
        }
    }

    /// Runs `select` (built by the caller with any filters, order and limit) on this tenant's
    /// readable rows.
    pub async fn all<E: TenantOwned>(&self, select: Select<E>) -> Result<Vec<E::Model>, DbErr> {
        select.filter(self.readable::<E>()).all(&self.txn).await
    }

    /// The first row of `select` among this tenant's readable rows.
    pub async fn one<E: TenantOwned>(&self, select: Select<E>) -> Result<Option<E::Model>, DbErr> {
        select.filter(self.readable::<E>()).one(&self.txn).await
    }

    /// Counts the rows of `select` among this tenant's readable rows.
    pub async fn count<E: TenantOwned>(&self, select: Select<E>) -> Result<u64, DbErr>
    where
        E::Model: Sync,
    {
        select.filter(self.readable::<E>()).count(&self.txn).await
    }

    /// A row by primary key, if this tenant may read it.
    pub async fn get<E: TenantOwned>(
        &self,
        id: <E::PrimaryKey as sea_orm::PrimaryKeyTrait>::ValueType,
    ) -> Result<Option<E::Model>, DbErr> {
        self.one(E::find_by_id(id)).await
    }

    /// Inserts a row owned by this tenant and created by the caller.
    pub async fn insert<E, A>(&self, mut model: A) -> Result<E::Model, DbErr>
    where
        E: TenantOwned,
        A: ActiveModelTrait<Entity = E> + sea_orm::ActiveModelBehavior + Send,
        E::Model: IntoActiveModel<A>,
    {
        model.set(E::TENANT, self.tenant_id.clone().into());
        model.set(E::CREATED_BY, self.principal.clone().into());
        model.insert(&self.txn).await
    }

    /// Updates one of this tenant's rows (by the primary key set in `model`) when it also
    /// matches `condition` (e.g. an expected version). `None` when no such row exists.
    pub async fn update<E, A>(
        &self,
        model: A,
        condition: Condition,
    ) -> Result<Option<E::Model>, DbErr>
    where
        E: TenantOwned,
        A: ActiveModelTrait<Entity = E> + Send,
        E::Model: IntoActiveModel<A>,
    {
        let update = E::update(model)
            .validate()?
            .filter(self.owned::<E>())
            .filter(condition);
        match update.exec(&self.txn).await {
            Ok(model) => Ok(Some(model)),
            Err(DbErr::RecordNotUpdated) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Deletes this tenant's rows matching `delete`; returns how many went.
    pub async fn delete<E: TenantOwned>(&self, delete: DeleteMany<E>) -> Result<u64, DbErr> {
        Ok(delete
            .filter(self.owned::<E>())
            .exec(&self.txn)
            .await?
            .rows_affected)
    }
}

/// Records a tenant the first time this process sees it (idempotent upsert, then cached).
/// A workspace deleted through Clerk's webhooks is refused, so a token issued before the
/// deletion cannot bring it back (see `tenant::lifecycle`).
async fn register_tenant(state: &AppState, ctx: &TenantContext) -> Result<(), ApiError> {
    if state.seen_tenants.contains_key(&ctx.tenant_id) {
        return Ok(());
    }
    if super::lifecycle::is_deleted_tenant(&state.db, &ctx.tenant_id).await? {
        return Err(ApiError::Unauthorized(crate::error::Unauthorized::invalid(
            "the workspace of this token has been deleted",
        )));
    }
    upsert_tenant(&state.db, ctx).await?;
    state.seen_tenants.insert(ctx.tenant_id.clone(), ());
    Ok(())
}

async fn upsert_tenant(db: &DatabaseConnection, ctx: &TenantContext) -> Result<(), DbErr> {
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
