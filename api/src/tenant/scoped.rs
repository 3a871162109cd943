//! The tenant-scoped data handle: the only way handlers reach tenant-owned data.
//!
//! How isolation is enforced:
//! - Each tenant-owned entity implements [`TenantOwned`] (in `entities`), naming its `tenant_id` and
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

use std::collections::HashMap;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, DeleteMany,
    EntityTrait, FromQueryResult, IntoActiveModel, PaginatorTrait, QueryFilter, QuerySelect,
    QueryTrait, Select, Set, Statement, Value,
    sea_query::{Expr, ExprTrait, OnConflict},
};

use super::{TenantContext, TenantRegistry, connection::RequestTransaction};
use crate::{
    entities::{FromPgRow, TenantOwned, usage, user},
    error::ApiError,
    events::{self, LoggedEvent, Notice, Outbox, ResourceEvent},
};

/// The first key of the per-workspace advisory lock that orders event log writes (`EVNT`).
const EVENT_LOG_LOCK: i32 = 0x4556_4e54;

// The event-log INSERTs. On PostgreSQL each first takes a per-workspace advisory lock held
// until the commit: one writer of the workspace's log at a time, so its ids increase in
// commit order and a stream reading "after the last id sent" can never skip a row that
// commits late (the two-key form keeps clear of the synthesis slots' one-key locks; the lock
// is held only from this last statement to COMMIT). Then it notifies every instance (id and
// tenant only) in the same statement.

/// One event: `$1`–`$7` the row, `$8` the channel, `$9` the lock's first key.
const LOG_ONE_POSTGRES: &str = "WITH l AS (SELECT pg_advisory_xact_lock($9, hashtext($1))), \
     e AS (INSERT INTO events (tenant_id, event_type, resource_id, version, \
     body, created_by_user_id, created_at) SELECT $1, $2, $3, $4, $5, $6, $7 \
     FROM l RETURNING id, tenant_id) SELECT pg_notify($8, json_build_object(\
     'type', 'logged', 'tenant_id', e.tenant_id, 'id', e.id)::text) FROM e";

const LOG_ONE_SQLITE: &str = "INSERT INTO events (tenant_id, event_type, resource_id, version, \
     body, created_by_user_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id";

/// Events from the JSON array `$2`, ids drawn in its order; `$5` the channel, `$6` the lock's
/// first key.
const LOG_MANY_POSTGRES: &str = "WITH l AS (SELECT pg_advisory_xact_lock($6, hashtext($1))), \
     e AS (INSERT INTO events (tenant_id, event_type, resource_id, version, \
     body, created_by_user_id, created_at) SELECT $1, r.x->>'event_type', \
     r.x->>'resource_id', (r.x->>'version')::bigint, r.x->>'body', $3, $4 \
     FROM l, json_array_elements($2::json) WITH ORDINALITY AS r(x, n) \
     ORDER BY r.n RETURNING id) \
     SELECT pg_notify($5, json_build_object('type', 'logged', \
     'tenant_id', $1::text, 'id', MAX(e.id))::text) FROM e";

const LOG_MANY_SQLITE: &str = "INSERT INTO events (tenant_id, event_type, resource_id, version, \
     body, created_by_user_id, created_at) SELECT ?1, json_extract(r.value, '$.event_type'), \
     json_extract(r.value, '$.resource_id'), json_extract(r.value, '$.version'), \
     json_extract(r.value, '$.body'), ?3, ?4 FROM json_each(?2) AS r \
     ORDER BY r.key RETURNING id";

/// One request's database work, confined to one tenant.
pub struct ScopedDb {
    txn: RequestTransaction,
    tenant_id: String,
    principal: String,
    /// Event notices to hand to this process's bus after the commit (SQLite).
    outbox: Outbox,
}

impl ScopedDb {
    /// Starts the request's transaction for the context's tenant (registering the tenant the
    /// first time it is seen).
    pub async fn begin(
        tenants: &TenantRegistry,
        ctx: &TenantContext,
    ) -> Result<ScopedDb, ApiError> {
        tenants.register(ctx).await?;
        let txn = tenants.transaction(Some(&ctx.tenant_id)).await?;
        Ok(ScopedDb {
            txn,
            tenant_id: ctx.tenant_id.clone(),
            principal: ctx.principal.clone(),
            outbox: Outbox::new(tenants.bus()),
        })
    }

    /// The rows of `select` (built by the caller with any filters, order and limit) among
    /// the context's tenant's readable rows, in a read-only transaction of its own: for a
    /// request that reads once. On PostgreSQL the whole transaction is one round trip where
    /// the worker has pipelined reads (see `tenant::pipelined`).
    pub async fn read_all<E: TenantOwned>(
        tenants: &TenantRegistry,
        ctx: &TenantContext,
        select: Select<E>,
    ) -> Result<Vec<E::Model>, ApiError> {
        if let Some(reads) = tenants.pipelined_reads() {
            tenants.register(ctx).await?;
            let select = select.filter(readable::<E>(&ctx.tenant_id));
            let rows = reads
                .read(
                    &ctx.tenant_id,
                    select.as_query(),
                    E::Model::from_pipelined_row,
                )
                .await?;
            return Ok(rows);
        }
        let db = ScopedDb::begin(tenants, ctx).await?;
        let rows = db.all(select).await?;
        db.finish_read();
        Ok(rows)
    }

    /// A row by primary key, if the context's tenant may read it, read as [`Self::read_all`]
    /// reads.
    pub async fn read_one<E: TenantOwned>(
        tenants: &TenantRegistry,
        ctx: &TenantContext,
        id: <E::PrimaryKey as sea_orm::PrimaryKeyTrait>::ValueType,
    ) -> Result<Option<E::Model>, ApiError> {
        let rows = Self::read_all(tenants, ctx, E::find_by_id(id).limit(1)).await?;
        Ok(rows.into_iter().next())
    }

    /// Ends a request that only read. The transaction is rolled back without waiting: the
    /// ROLLBACK travels with the connection's next statement, saving a round trip.
    pub fn finish_read(self) {
        drop(self.txn);
    }

    /// Makes the request's writes durable. Dropping the handle instead rolls them back.
    pub async fn commit(self) -> Result<(), ApiError> {
        self.txn.commit().await?;
        self.outbox.committed();
        Ok(())
    }

    /// Logs `event` in this workspace's event log with the request's writes, and makes every
    /// instance hear of it once they commit. One statement: on PostgreSQL the INSERT and its
    /// `pg_notify` (id and tenant only) go together in one CTE. Call it last, just before
    /// [`ScopedDb::commit`]: it locks the workspace's log until the commit.
    pub async fn publish(&self, event: ResourceEvent) -> Result<(), DbErr> {
        let values: Vec<Value> = vec![
            self.tenant_id.clone().into(),
            event.event_type.into(),
            event.resource_id.into(),
            event.version.into(),
            event.body.map(|b| b.to_string()).into(),
            self.principal.clone().into(),
            chrono::Utc::now().into(),
        ];
        self.log_events(values, LOG_ONE_POSTGRES, LOG_ONE_SQLITE)
            .await
    }

    /// Logs several events, in this order, as [`ScopedDb::publish`] logs one: still one
    /// statement (the events go in as one JSON array parameter, `INSERT … SELECT` from it) and
    /// one notice with the last id (streams read everything after the id they sent last). Call
    /// it last, just before [`ScopedDb::commit`], like `publish`. (`publish` keeps its own
    /// single-row statement: through the array, creates lost 7 % of their throughput.)
    pub async fn publish_all(&self, events: Vec<ResourceEvent>) -> Result<(), DbErr> {
        let rows: Vec<serde_json::Value> = events
            .into_iter()
            .map(|event| {
                serde_json::json!({
                    "event_type": event.event_type,
                    "resource_id": event.resource_id,
                    "version": event.version,
                    // Stored as the JSON text `publish` stores.
                    "body": event.body.map(|b| b.to_string()),
                })
            })
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        let values: Vec<Value> = vec![
            self.tenant_id.clone().into(),
            serde_json::Value::Array(rows).to_string().into(),
            self.principal.clone().into(),
            chrono::Utc::now().into(),
        ];
        self.log_events(values, LOG_MANY_POSTGRES, LOG_MANY_SQLITE)
            .await
    }

    /// Runs one of the event-log INSERTs with `values`. On PostgreSQL the statement also takes
    /// the notify channel and the log lock (its last two parameters) and notifies in the same
    /// statement; elsewhere it returns the new ids, and a notice with the last one waits in
    /// the outbox for the commit.
    async fn log_events(
        &self,
        mut values: Vec<Value>,
        postgres: &str,
        sqlite: &str,
    ) -> Result<(), DbErr> {
        let backend = self.txn.get_database_backend();
        if backend == DbBackend::Postgres {
            values.push(events::CHANNEL.into());
            values.push(EVENT_LOG_LOCK.into());
            self.txn
                .execute_raw(Statement::from_sql_and_values(backend, postgres, values))
                .await?;
            return Ok(());
        }
        let rows = self
            .txn
            .query_all_raw(Statement::from_sql_and_values(backend, sqlite, values))
            .await?;
        let mut last: Option<i64> = None;
        for row in rows {
            let id: i64 = row.try_get("", "id")?;
            last = Some(last.map_or(id, |l| Ord::max(l, id)));
        }
        if let Some(id) = last {
            self.outbox.hold(Notice::Logged {
                tenant_id: self.tenant_id.clone(),
                id,
            });
        }
        Ok(())
    }

    /// This workspace's logged events after `after`, oldest first, at most `limit`.
    pub async fn events_after(&self, after: i64, limit: u64) -> Result<Vec<LoggedEvent>, DbErr> {
        let backend = self.txn.get_database_backend();
        let sql = match backend {
            DbBackend::Postgres => {
                "SELECT id, tenant_id, event_type, resource_id, version, body FROM events \
                 WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
            }
            _ => {
                "SELECT id, tenant_id, event_type, resource_id, version, body FROM events \
                 WHERE tenant_id = ? AND id > ? ORDER BY id LIMIT ?"
            }
        };
        LoggedEvent::find_by_statement(Statement::from_sql_and_values(
            backend,
            sql,
            [
                self.tenant_id.clone().into(),
                after.into(),
                (limit as i64).into(),
            ],
        ))
        .all(&self.txn)
        .await
    }

    /// The id of this workspace's newest logged event, if any.
    pub async fn last_event_id(&self) -> Result<Option<i64>, DbErr> {
        let backend = self.txn.get_database_backend();
        let sql = match backend {
            DbBackend::Postgres => "SELECT MAX(id) AS id FROM events WHERE tenant_id = $1",
            _ => "SELECT MAX(id) AS id FROM events WHERE tenant_id = ?",
        };
        let row = self
            .txn
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [self.tenant_id.clone().into()],
            ))
            .await?;
        Ok(match row {
            Some(row) => row.try_get::<Option<i64>>("", "id")?,
            None => None,
        })
    }

    /// Whether this workspace's log still holds event `id`.
    pub async fn event_exists(&self, id: i64) -> Result<bool, DbErr> {
        let backend = self.txn.get_database_backend();
        let sql = match backend {
            DbBackend::Postgres => "SELECT id FROM events WHERE tenant_id = $1 AND id = $2",
            _ => "SELECT id FROM events WHERE tenant_id = ? AND id = ?",
        };
        Ok(self
            .txn
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [self.tenant_id.clone().into(), id.into()],
            ))
            .await?
            .is_some())
    }

    /// Deletes this workspace's logged events older than `before`.
    pub async fn purge_events(&self, before: chrono::DateTime<chrono::Utc>) -> Result<(), DbErr> {
        let backend = self.txn.get_database_backend();
        let sql = match backend {
            DbBackend::Postgres => "DELETE FROM events WHERE tenant_id = $1 AND created_at < $2",
            _ => "DELETE FROM events WHERE tenant_id = ? AND created_at < ?",
        };
        self.txn
            .execute_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [self.tenant_id.clone().into(), before.into()],
            ))
            .await?;
        Ok(())
    }

    /// Rows this tenant owns (for updates and deletes).
    fn owned<E: TenantOwned>(&self) -> Condition {
        owned::<E>(&self.tenant_id)
    }

    /// Rows this tenant may read: its own, plus shared rows where the entity has them.
    fn readable<E: TenantOwned>(&self) -> Condition {
        readable::<E>(&self.tenant_id)
    }

    /// Runs `select` (built by the caller with any filters, order and limit) on this tenant's
    /// readable rows.
    pub async fn all<E: TenantOwned>(&self, select: Select<E>) -> Result<Vec<E::Model>, DbErr> {
        let select = select.filter(self.readable::<E>());
        match self.decoded(&select).await? {
            Some(rows) => Ok(rows),
            None => select.all(&self.txn).await,
        }
    }

    /// The first row of `select` among this tenant's readable rows.
    pub async fn one<E: TenantOwned>(&self, select: Select<E>) -> Result<Option<E::Model>, DbErr> {
        let select = select.filter(self.readable::<E>()).limit(1);
        match self.decoded(&select).await? {
            Some(rows) => Ok(rows.into_iter().next()),
            None => select.one(&self.txn).await,
        }
    }

    /// On PostgreSQL, the rows of an already filtered `select`, decoded by position as they
    /// arrive (see `FromPgRow`); `None` elsewhere, where sea-orm reads them.
    async fn decoded<E: TenantOwned>(
        &self,
        select: &Select<E>,
    ) -> Result<Option<Vec<E::Model>>, DbErr> {
        let stmt = select.build(DbBackend::Postgres);
        self.txn.fetch_decoded(&stmt, E::Model::from_pg_row).await
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

    /// Inserts a row owned by this tenant and created by the caller unless one with the same
    /// `conflict` columns (a unique index, starting with the tenant) exists; whether it was
    /// inserted. Concurrent callers wait for each other on the index instead of failing.
    pub async fn insert_unless_exists<E, A>(
        &self,
        mut model: A,
        conflict: impl IntoIterator<Item = E::Column>,
    ) -> Result<bool, DbErr>
    where
        E: TenantOwned,
        A: ActiveModelTrait<Entity = E> + Send,
    {
        model.set(E::TENANT, self.tenant_id.clone().into());
        model.set(E::CREATED_BY, self.principal.clone().into());
        let insert =
            E::insert(model).on_conflict(OnConflict::columns(conflict).do_nothing().to_owned());
        match insert.exec_without_returning(&self.txn).await {
            Ok(rows) => Ok(rows > 0),
            Err(DbErr::RecordNotInserted) => Ok(false),
            Err(err) => Err(err),
        }
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

    /// Directory profiles of these users (users are not tenant-owned: one row per user).
    /// Callers pass ids they already read through this handle (e.g. its memberships), so this
    /// reveals nothing of other workspaces.
    pub async fn user_profiles(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, user::Model>, DbErr> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        Ok(user::Entity::find()
            .filter(user::Column::Id.is_in(ids.iter().cloned()))
            .all(&self.txn)
            .await?
            .into_iter()
            .map(|u| (u.id.clone(), u))
            .collect())
    }

    /// Deletes this tenant's rows matching `delete`; returns how many went.
    pub async fn delete<E: TenantOwned>(&self, delete: DeleteMany<E>) -> Result<u64, DbErr> {
        Ok(delete
            .filter(self.owned::<E>())
            .exec(&self.txn)
            .await?
            .rows_affected)
    }

    /// Deletes this tenant's rows matching `delete`; returns the rows that went (one
    /// `DELETE … RETURNING`, so exactly those, whatever commits meanwhile).
    pub async fn delete_returning<E: TenantOwned>(
        &self,
        delete: DeleteMany<E>,
    ) -> Result<Vec<E::Model>, DbErr> {
        delete
            .filter(self.owned::<E>())
            .exec_with_returning(&self.txn)
            .await
    }

    /// Reserves `characters` of this tenant's month starting `period_start`, if its use stays
    /// within `limit`: the month's row is created when missing, then one conditional
    /// `UPDATE … SET characters_used = characters_used + n WHERE … AND characters_used + n <=
    /// limit`, so concurrent reservations (in any process) never overspend. `Ok(Ok(used))`:
    /// reserved, the month's use is now `used`; `Ok(Err(used))`: refused, nothing changed.
    /// With `characters` 0 it only locks the month's row until the transaction ends.
    pub async fn reserve_characters(
        &self,
        period_start: chrono::NaiveDate,
        characters: i64,
        limit: i64,
    ) -> Result<Result<i64, i64>, DbErr> {
        let now = chrono::Utc::now();
        let row = usage::ActiveModel {
            tenant_id: Set(self.tenant_id.clone()),
            period_start: Set(period_start),
            characters_used: Set(0),
            created_by_user_id: Set(self.principal.clone()),
            updated_at: Set(now),
        };
        let create = usage::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([usage::Column::TenantId, usage::Column::PeriodStart])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&self.txn)
            .await;
        match create {
            Ok(_) | Err(DbErr::RecordNotInserted) => {}
            Err(err) => return Err(err),
        }
        let used = Expr::col(usage::Column::CharactersUsed);
        let updated = usage::Entity::update_many()
            .col_expr(usage::Column::CharactersUsed, used.clone().add(characters))
            .col_expr(usage::Column::UpdatedAt, Expr::value(now))
            .filter(self.owned::<usage::Entity>())
            .filter(usage::Column::PeriodStart.eq(period_start))
            .filter(used.add(characters).lte(limit))
            .exec_with_returning(&self.txn)
            .await?;
        if let Some(row) = updated.first() {
            return Ok(Ok(row.characters_used));
        }
        let current = self
            .one(usage::Entity::find().filter(usage::Column::PeriodStart.eq(period_start)))
            .await?;
        Ok(Err(current.map_or(0, |row| row.characters_used)))
    }

    /// Gives back `characters` reserved in the month starting `period_start` (a synthesis
    /// that failed); never below zero.
    pub async fn release_characters(
        &self,
        period_start: chrono::NaiveDate,
        characters: i64,
    ) -> Result<(), DbErr> {
        let used = Expr::col(usage::Column::CharactersUsed);
        usage::Entity::update_many()
            .col_expr(usage::Column::CharactersUsed, used.clone().sub(characters))
            .filter(self.owned::<usage::Entity>())
            .filter(usage::Column::PeriodStart.eq(period_start))
            .filter(used.gte(characters))
            .exec(&self.txn)
            .await?;
        Ok(())
    }
}

/// Rows `tenant_id` owns.
fn owned<E: TenantOwned>(tenant_id: &str) -> Condition {
    Condition::all().add(E::TENANT.eq(tenant_id))
}

/// Rows `tenant_id` may read: its own, plus shared rows where the entity has them.
fn readable<E: TenantOwned>(tenant_id: &str) -> Condition {
    if E::SHARED_ROWS {
        Condition::any()
            .add(E::TENANT.eq(tenant_id))
            .add(E::TENANT.is_null())
    } else {
        owned::<E>(tenant_id)
    }
}
