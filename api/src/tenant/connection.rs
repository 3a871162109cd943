//! The transaction one request's database work runs in.
//!
//! On SQLite it is sea-orm's own transaction. On PostgreSQL it is a sqlx transaction whose
//! `BEGIN` carries the tenant setting in the same message
//! (`BEGIN; SELECT set_config('app.tenant_id', …, true)`): row-level security is armed before
//! the first query for one round trip instead of two. sea-orm's query builders run on either
//! through [`ConnectionTrait`], so the scoped handle is written once for both.

use futures_util::TryStreamExt;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    QueryResult, RuntimeErr, SqliteTransactionMode, Statement, TransactionOptions,
    TransactionTrait,
    sea_query::Values,
    sqlx::{
        self, Connection, Executor, PgPool, Postgres, SqlSafeStr, SqlStr, pool::PoolConnection,
        postgres::PgRow,
    },
};
use sea_query_sqlx::SqlxValues;
use tokio::sync::Mutex;

use crate::error::connection_lost;

/// One request's open transaction. Dropping it rolls the work back.
pub(super) enum RequestTransaction {
    Orm(DatabaseTransaction),
    /// sea-orm's connection trait takes `&self`; the lock is never contended (one request
    /// runs its queries one after another).
    Postgres(Mutex<sqlx::Transaction<'static, Postgres>>),
}

impl RequestTransaction {
    /// Opens a transaction in which only `tenant_id`'s rows are visible (on PostgreSQL;
    /// `None`: no tenant's rows, only rows that belong to no tenant).
    ///
    /// On PostgreSQL a `BEGIN` that fails because its pooled connection was dead (the server
    /// restarted, or something between us dropped the connection while it sat idle) is
    /// retried once, on a connection that answers (see [`live_connection`]). Nothing has run
    /// in the transaction yet, so the retry is safe; statements inside a transaction are
    /// never retried. The first attempt is the plain `begin`, so the retry costs nothing
    /// while connections are healthy.
    pub async fn begin(db: &DatabaseConnection, tenant_id: Option<&str>) -> Result<Self, DbErr> {
        if db.get_database_backend() != DbBackend::Postgres {
            // IMMEDIATE: the write lock is taken (or waited for, up to the busy timeout) at
            // BEGIN. A deferred transaction that read first cannot take it once another
            // process on the same file has written (SQLITE_BUSY at once, no waiting), so two
            // instances on one file would fail each other's writes. Within one instance
            // nothing is lost: its pool has one connection.
            let options = TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            };
            return Ok(Self::Orm(db.begin_with_options(options).await?));
        }
        let pool = db.get_postgres_connection_pool();
        // A simple-protocol message takes no parameters, so the tenant id goes in as a
        // quoted literal; the transaction-local setting ends with the transaction.
        let begin = |tenant_id: &str| -> Result<SqlStr, DbErr> {
            let sql = format!(
                "BEGIN; SELECT set_config('app.tenant_id', {}, true)",
                quote_literal(tenant_id)?
            );
            Ok(sqlx::AssertSqlSafe(sql).into_sql_str())
        };
        let first = match tenant_id {
            Some(tenant_id) => pool.begin_with(begin(tenant_id)?).await,
            None => pool.begin().await,
        };
        let txn = match first {
            Err(err) if connection_lost(&err) => {
                tracing::info!(error = %err, "BEGIN failed on a dead pooled connection; retrying once");
                let conn = live_connection(pool).await.map_err(conn_err)?;
                sqlx::Transaction::begin(conn, tenant_id.map(begin).transpose()?).await
            }
            other => other,
        };
        Ok(Self::Postgres(Mutex::new(txn.map_err(conn_err)?)))
    }

    /// Runs `stmt` and decodes each row with `decode` as it arrives, with no sea-orm
    /// `QueryResult` in between (see `entities::FromPgRow`). PostgreSQL only:
    /// `Ok(None)` on other backends, which read through the models.
    pub async fn fetch_decoded<T>(
        &self,
        stmt: &Statement,
        decode: impl Fn(&PgRow) -> Result<T, sqlx::Error>,
    ) -> Result<Option<Vec<T>>, DbErr> {
        let Self::Postgres(txn) = self else {
            return Ok(None);
        };
        let mut txn = txn.lock().await;
        let mut rows = bind(stmt).fetch(&mut **txn);
        let mut decoded = Vec::new();
        while let Some(row) = rows.try_next().await.map_err(query_err)? {
            decoded.push(decode(&row).map_err(query_err)?);
        }
        Ok(Some(decoded))
    }

    pub async fn commit(self) -> Result<(), DbErr> {
        match self {
            Self::Orm(txn) => txn.commit().await,
            Self::Postgres(txn) => txn.into_inner().commit().await.map_err(exec_err),
        }
    }
}

/// `value` as a PostgreSQL escape-string literal (`E'…'`): quotes and backslashes are
/// escaped, and the meaning does not depend on `standard_conforming_strings`.
fn quote_literal(value: &str) -> Result<String, DbErr> {
    if value.contains('\0') {
        return Err(DbErr::Custom("tenant id contains a NUL character".into()));
    }
    let mut quoted = String::with_capacity(value.len() + 3);
    quoted.push_str("E'");
    for c in value.chars() {
        match c {
            '\'' => quoted.push_str("''"),
            '\\' => quoted.push_str("\\\\"),
            c => quoted.push(c),
        }
    }
    quoted.push('\'');
    Ok(quoted)
}

/// A pooled connection that answers a ping. After a database restart every idle connection
/// of the pool may be as dead as the one that just failed; each one met is closed (not
/// returned) until a live one, or a newly opened one, turns up. Bounded by the pool's size.
async fn live_connection(pool: &PgPool) -> Result<PoolConnection<Postgres>, sqlx::Error> {
    let mut attempts = pool.size() + 1;
    loop {
        let mut conn = pool.acquire().await?;
        match conn.ping().await {
            Ok(()) => return Ok(conn),
            Err(err) if connection_lost(&err) && attempts > 1 => {
                conn.close_on_drop();
                attempts -= 1;
            }
            Err(err) => {
                conn.close_on_drop();
                return Err(err);
            }
        }
    }
}

fn conn_err(err: sqlx::Error) -> DbErr {
    DbErr::Conn(RuntimeErr::SqlxError(err.into()))
}

fn exec_err(err: sqlx::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(err.into()))
}

fn query_err(err: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(err.into()))
}

fn bind(stmt: &Statement) -> sqlx::query::Query<'_, Postgres, SqlxValues> {
    let values = stmt.values.clone().unwrap_or(Values(Vec::new()));
    sqlx::query_with(sqlx::AssertSqlSafe(stmt.sql.as_str()), SqlxValues(values))
}

#[async_trait::async_trait]
impl ConnectionTrait for RequestTransaction {
    fn get_database_backend(&self) -> DbBackend {
        match self {
            Self::Orm(txn) => txn.get_database_backend(),
            Self::Postgres(_) => DbBackend::Postgres,
        }
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        match self {
            Self::Orm(txn) => txn.execute_raw(stmt).await,
            Self::Postgres(txn) => {
                let mut txn = txn.lock().await;
                let done = bind(&stmt).execute(&mut **txn).await.map_err(exec_err)?;
                Ok(done.into())
            }
        }
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        match self {
            Self::Orm(txn) => txn.execute_unprepared(sql).await,
            Self::Postgres(txn) => {
                let mut txn = txn.lock().await;
                let done = txn
                    .execute(sqlx::AssertSqlSafe(sql.to_owned()))
                    .await
                    .map_err(exec_err)?;
                Ok(done.into())
            }
        }
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        match self {
            Self::Orm(txn) => txn.query_one_raw(stmt).await,
            Self::Postgres(txn) => {
                let mut txn = txn.lock().await;
                let row = bind(&stmt)
                    .fetch_optional(&mut **txn)
                    .await
                    .map_err(query_err)?;
                Ok(row.map(QueryResult::from))
            }
        }
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match self {
            Self::Orm(txn) => txn.query_all_raw(stmt).await,
            Self::Postgres(txn) => {
                let mut txn = txn.lock().await;
                let rows = bind(&stmt).fetch_all(&mut **txn).await.map_err(query_err)?;
                Ok(rows.into_iter().map(QueryResult::from).collect())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::quote_literal;

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(quote_literal("org_2abc").unwrap(), "E'org_2abc'");
        assert_eq!(quote_literal("a'b\\c").unwrap(), "E'a''b\\\\c'");
        assert!(quote_literal("a\0b").is_err());
    }
}
