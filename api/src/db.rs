//! Database connections: embedded SQLite by default, PostgreSQL in production.

use std::{
    path::Path,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use futures_util::FutureExt;
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseConnectionType, DbErr,
    sqlx::{
        postgres::PgConnectOptions,
        sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous},
    },
};

use crate::{config::DbPoolConfig, tenant::pipelined::PipelinedReads};

/// Opens a pool. For SQLite the file's folder is created and the file opened in WAL mode, so
/// readers never wait on a writer.
pub async fn connect(url: &str, pool: &DbPoolConfig) -> Result<DatabaseConnection, DbErr> {
    if let Some(path) = sqlite_path(url)
        && let Some(dir) = Path::new(&path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| DbErr::Custom(format!("cannot create {}: {e}", dir.display())))?;
    }
    // SQLite allows one writer at a time and a read transaction cannot always be upgraded to a
    // write under concurrency (SQLITE_BUSY_SNAPSHOT), so the embedded database gets one
    // connection: requests queue instead of failing. PostgreSQL uses the configured pool.
    let max_connections = if url.starts_with("sqlite:") {
        1
    } else {
        pool.max_connections
    };
    Database::connect(options(url, pool, max_connections)).await
}

/// One HTTP worker's PostgreSQL pools, with its share of the configured connections: a sqlx
/// pool for request transactions and, where the URL allows it, a pool for one-round-trip
/// reads (see `tenant::pipelined`), half of the share each. `None` for SQLite, whose one
/// connection every worker must share.
///
/// Each actix worker runs its own single-threaded runtime, and a connection's socket belongs
/// to the runtime that opened it. With one pool for all workers, a worker using a connection
/// another worker opened waits on that worker's thread to be woken for every round trip.
/// Connections are opened lazily, so each is opened on the worker that uses it.
pub fn connect_worker_pools(
    url: &str,
    pool: &DbPoolConfig,
    workers: usize,
) -> Option<Result<(DatabaseConnection, Option<PipelinedReads>), DbErr>> {
    if url.starts_with("sqlite:") {
        return None;
    }
    let share = pool.max_connections.div_ceil(workers.max(1) as u32).max(1);
    let reads_share = share / 2;
    let reads = if reads_share > 0 {
        PipelinedReads::new(url, reads_share, pool.connect_timeout, pool.acquire_timeout)
    } else {
        None
    };
    let transactions_share = if reads.is_some() {
        share - reads_share
    } else {
        share
    };
    let mut options = options(url, pool, transactions_share);
    options.connect_lazy(true);
    // A lazy connect does no I/O, so it completes on its first poll.
    let connecting = Database::connect(options).now_or_never();
    Some(
        connecting
            .unwrap_or_else(|| Err(DbErr::Custom("lazy pool did not complete".into())))
            .map(|db| (db, reads)),
    )
}

fn options(url: &str, pool: &DbPoolConfig, max_connections: u32) -> ConnectOptions {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(max_connections)
        .connect_timeout(pool.connect_timeout)
        .acquire_timeout(pool.acquire_timeout)
        .idle_timeout(Duration::from_secs(300))
        // Pinging every connection on checkout costs a round trip per request; only
        // connections idle long enough to have been dropped by a server or proxy are checked.
        .test_before_acquire_if_idle_for(Duration::from_secs(30))
        .sqlx_logging(false)
        // Every query here is tenant-scoped and led by an index on `tenant_id`, so a prepared
        // statement's generic plan is the plan a custom one would pick. PostgreSQL's default
        // re-plans each execution when a bound LIMIT makes the generic estimate look worse
        // (it guesses 10% of the rows): that was about 0.1 ms of PostgreSQL CPU per list
        // request in bench/run.sh, for the same index scan.
        .map_sqlx_postgres_opts(|o: PgConnectOptions| {
            o.options([("plan_cache_mode", "force_generic_plan")])
        })
        .map_sqlx_sqlite_opts(|o: SqliteConnectOptions| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        });
    options
}

/// How many connections pools hold, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Open connections, idle or in use.
    pub open: u64,
    pub idle: u64,
    /// How many the pools may open.
    pub max: u64,
}

impl PoolStats {
    /// The connections of a pool of pipelined reads.
    pub fn of_reads(reads: &PipelinedReads) -> PoolStats {
        let status = reads.status();
        PoolStats {
            open: status.size as u64,
            idle: status.available as u64,
            max: status.max_size as u64,
        }
    }

    /// The connections of one pool (none for connections that are not sqlx pools).
    pub fn of(db: &DatabaseConnection) -> PoolStats {
        match &db.inner {
            DatabaseConnectionType::SqlxPostgresPoolConnection(_) => {
                PoolStats::of_pool(db.get_postgres_connection_pool())
            }
            DatabaseConnectionType::SqlxSqlitePoolConnection(_) => {
                PoolStats::of_pool(db.get_sqlite_connection_pool())
            }
            _ => PoolStats::default(),
        }
    }

    fn of_pool<DB: sea_orm::sqlx::Database>(pool: &sea_orm::sqlx::Pool<DB>) -> PoolStats {
        PoolStats {
            open: u64::from(pool.size()),
            idle: pool.num_idle() as u64,
            max: u64::from(pool.options().get_max_connections()),
        }
    }
}

/// Every connection pool of a process (the shared one and each HTTP worker's), so the metrics
/// can sum them at scrape time.
#[derive(Default)]
pub struct Pools {
    transactions: Mutex<Vec<DatabaseConnection>>,
    reads: Mutex<Vec<PipelinedReads>>,
}

impl Pools {
    pub fn add(&self, db: &DatabaseConnection) {
        lock(&self.transactions).push(db.clone());
    }

    pub fn add_reads(&self, reads: &PipelinedReads) {
        lock(&self.reads).push(reads.clone());
    }

    /// The pools' connections, summed.
    pub fn stats(&self) -> PoolStats {
        let transactions = lock(&self.transactions);
        let reads = lock(&self.reads);
        transactions
            .iter()
            .map(PoolStats::of)
            .chain(reads.iter().map(PoolStats::of_reads))
            .fold(PoolStats::default(), |a, b| PoolStats {
                open: a.open + b.open,
                idle: a.idle + b.idle,
                max: a.max + b.max,
            })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The file path of a `sqlite://` URL (None for in-memory databases and other backends).
pub fn sqlite_path(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| path.to_owned())
}

/// Applies every pending migration.
pub async fn migrate_up(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// Names of migrations not yet applied.
pub async fn pending_migrations(db: &DatabaseConnection) -> Result<Vec<String>, DbErr> {
    Ok(Migrator::get_pending_migrations(db)
        .await?
        .iter()
        .map(|m| m.name().to_owned())
        .collect())
}

/// Is the database answering? Used by `/readyz`.
pub async fn ping(db: &DatabaseConnection) -> Result<(), DbErr> {
    db.execute_unprepared("SELECT 1").await.map(|_| ())
}
