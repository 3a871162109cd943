//! Reads in one round trip on PostgreSQL.
//!
//! sqlx sends a statement only once the one before it has answered, so a read in a request
//! transaction costs three round trips: `BEGIN` with the tenant setting, the query, and the
//! `ROLLBACK` the pool sends with its release ping. Each one wakes the service and a
//! PostgreSQL backend on the same few cores. tokio-postgres pipelines instead: `BEGIN READ
//! ONLY`, `set_config('app.tenant_id', …, true)`, the query and `COMMIT` are written
//! together and PostgreSQL answers them together (see `bench/run.sh`, where pgbench runs
//! the same four statements both ways).
//!
//! The walls do not move: the statement is the one `ScopedDb` built and filtered on the
//! tenant column, and row-level security checks the `app.tenant_id` set in the same
//! transaction. If any statement fails, PostgreSQL answers the `COMMIT` with a rollback.
//!
//! These connections are opened without TLS, so the pool exists only where that is what
//! sqlx would do or the server is on this host: `sslmode=disable`, or the default `prefer`
//! towards loopback addresses and Unix sockets. Elsewhere reads stay on sqlx.

use std::{error::Error as _, net::IpAddr, time::Duration};

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use sea_orm::{ConnAcquireErr, DbErr, RuntimeErr, sea_query::PostgresQueryBuilder};
use sea_query_postgres::PostgresBinder;
use tokio_postgres::{
    NoTls, Row,
    config::{Host, SslMode},
};

/// Sets the tenant row-level security checks, until the transaction ends.
const SET_TENANT: &str = "SELECT set_config('app.tenant_id', $1, true)";

/// A pool of pipelining connections, for one HTTP worker (see `db::connect_worker_pools`).
#[derive(Clone)]
pub struct PipelinedReads {
    pool: Pool,
}

impl PipelinedReads {
    /// A pool of up to `max_connections` for `url`, opened lazily; `None` when the URL asks
    /// for TLS (see the module comment) or is not one tokio-postgres reads.
    pub fn new(
        url: &str,
        max_connections: u32,
        connect_timeout: Duration,
        acquire_timeout: Duration,
    ) -> Option<PipelinedReads> {
        let mut config: tokio_postgres::Config = url.parse().ok()?;
        if !plaintext_is_what_was_asked(&config) {
            return None;
        }
        // As on the sqlx pool: every query is led by a `tenant_id` index, so the generic plan
        // is the one a custom plan would pick, without planning each execution.
        config
            .options("-c plan_cache_mode=force_generic_plan")
            .connect_timeout(connect_timeout);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                // A connection whose socket closed is dropped on the way out of the pool; no
                // query is spent checking the others.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Pool::builder(manager)
            .max_size(max_connections.max(1) as usize)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(acquire_timeout))
            .create_timeout(Some(connect_timeout))
            .build()
            .ok()
            .map(|pool| PipelinedReads { pool })
    }

    /// How many connections the pool holds, for the metrics.
    pub fn status(&self) -> deadpool_postgres::Status {
        self.pool.status()
    }

    /// The rows of `select` (already filtered on `tenant_id`'s rows), each decoded by
    /// `decode`, read in a read-only transaction confined to `tenant_id`. A connection found
    /// closed is replaced once: nothing was written, so the read is safe to repeat.
    pub async fn read<T>(
        &self,
        tenant_id: &str,
        select: &sea_orm::sea_query::SelectStatement,
        decode: fn(&Row) -> Result<T, tokio_postgres::Error>,
    ) -> Result<Vec<T>, DbErr> {
        let (sql, values) = select.build_postgres(PostgresQueryBuilder);
        let params = values.as_params();
        let mut retried = false;
        loop {
            let client = self.pool.get().await.map_err(pool_err)?;
            let run = async {
                let set_tenant = client.prepare_cached(SET_TENANT).await?;
                let query = client.prepare_cached(&sql).await?;
                let tenant: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&tenant_id];
                // Each future sends its messages when first polled, in this order; the
                // connection writes them out together.
                let (begin, set, rows, commit) = tokio::join!(
                    client.batch_execute("BEGIN READ ONLY"),
                    client.query(&set_tenant, &tenant),
                    client.query(&query, &params),
                    client.batch_execute("COMMIT"),
                );
                begin?;
                set?;
                let rows = rows?;
                commit?;
                Ok::<_, tokio_postgres::Error>(rows)
            };
            match run.await {
                Ok(rows) => {
                    return rows
                        .iter()
                        .map(decode)
                        .collect::<Result<_, _>>()
                        .map_err(|err| DbErr::Type(err.to_string()));
                }
                Err(err) if client.is_closed() && !retried => {
                    tracing::info!(error = %err, "pipelined read on a closed connection; retrying once");
                    retried = true;
                }
                Err(err) => return Err(query_err(&err)),
            }
        }
    }
}

/// Whether a plaintext connection is what sqlx would make of the same URL, or goes no
/// further than this host.
fn plaintext_is_what_was_asked(config: &tokio_postgres::Config) -> bool {
    match config.get_ssl_mode() {
        SslMode::Disable => true,
        SslMode::Prefer => config.get_hosts().iter().all(|host| match host {
            Host::Unix(_) => true,
            Host::Tcp(name) => {
                name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
            }
        }),
        _ => false,
    }
}

/// No connection: a 503 (see `error::database_unavailable`).
fn pool_err(err: PoolError) -> DbErr {
    tracing::warn!(error = %err, "no connection for a pipelined read");
    match err {
        PoolError::Timeout(_) => DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
        _ => DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
    }
}

/// A failed read: a 503 when the server went away or refused the session, a 500 otherwise.
fn query_err(err: &tokio_postgres::Error) -> DbErr {
    let lost = match err.code() {
        Some(state) => crate::error::unavailable_sqlstate(state.code()),
        None => err.is_closed() || err.source().is_some_and(|s| s.is::<std::io::Error>()),
    };
    if lost {
        tracing::warn!(error = %err, "pipelined read lost its connection");
        DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed)
    } else {
        DbErr::Query(RuntimeErr::Internal(err.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plaintext(url: &str) -> bool {
        plaintext_is_what_was_asked(&url.parse().unwrap())
    }

    #[test]
    fn connections_without_tls_only_where_sqlx_would_not_use_it_or_on_this_host() {
        assert!(plaintext(
            "postgres://app@db.internal:5432/resonance?sslmode=disable"
        ));
        assert!(plaintext("postgres://app@127.0.0.1:5432/resonance"));
        assert!(plaintext(
            "postgres://app@localhost/resonance?sslmode=prefer"
        ));
        assert!(plaintext("postgres://app@[::1]:5432/resonance"));
        assert!(plaintext(
            "postgres://app@%2Fvar%2Frun%2Fpostgresql/resonance"
        ));
        // TLS asked for, or likely to be used (prefer towards another host): sqlx reads.
        assert!(!plaintext("postgres://app@db.internal:5432/resonance"));
        assert!(!plaintext(
            "postgres://app@10.0.0.5/resonance?sslmode=prefer"
        ));
        assert!(!plaintext(
            "postgres://app@127.0.0.1/resonance?sslmode=require"
        ));
    }

    #[test]
    fn urls_tokio_postgres_cannot_read_leave_reads_on_sqlx() {
        let none = PipelinedReads::new(
            "postgres://app@127.0.0.1/resonance?sslrootcert=/etc/ca.pem",
            4,
            Duration::from_secs(1),
            Duration::from_secs(1),
        );
        assert!(none.is_none());
    }
}
