//! Reads in one round trip on PostgreSQL.
//!
//! sqlx sends a statement only once the one before it has answered, so a read in a request
//! transaction costs three round trips: `BEGIN` with the tenant setting, the query, and the
//! `ROLLBACK` the pool sends with its release ping. Each one wakes the service and a
//! PostgreSQL backend on the same few cores. tokio-postgres pipelines instead: `BEGIN READ
//! ONLY`, `set_config('app.tenant_id', …, true)`, the query and `COMMIT` are written
//! together and PostgreSQL answers them together (the README's Benchmark section compares
//! pgbench running the same four statements both ways: `bench/pgbench-list*.sql`).
//!
//! The walls do not move: the statement is the one `ScopedDb` built and filtered on the
//! tenant column, and row-level security checks the `app.tenant_id` set in the same
//! transaction. If any statement fails, PostgreSQL answers the `COMMIT` with a rollback.
//!
//! TLS follows `sslmode` as sqlx reads it: none for `disable`; for `prefer` (the default)
//! and `require`, an encrypted connection whose certificate is not checked, which is what
//! those modes mean to libpq and sqlx. URLs tokio-postgres does not read (`verify-ca`,
//! `verify-full`, `sslrootcert`) get no pool here, and their reads stay on sqlx, which checks
//! the certificate as asked.

use std::{error::Error as _, sync::Arc, time::Duration};

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use rustls::{
    DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature},
    pki_types::{CertificateDer, ServerName, UnixTime},
};
use sea_orm::{ConnAcquireErr, DbErr, RuntimeErr, sea_query::PostgresQueryBuilder};
use sea_query_postgres::PostgresBinder;
use tokio_postgres::{Row, config::SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

/// What these connections call themselves in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "resonance-pipelined-reads";

/// Sets the tenant row-level security checks, until the transaction ends.
const SET_TENANT: &str = "SELECT set_config('app.tenant_id', $1, true)";

/// A pool of pipelining connections, for one HTTP worker (see `db::connect_worker_pools`).
#[derive(Clone)]
pub struct PipelinedReads {
    pool: Pool,
}

impl PipelinedReads {
    /// A pool of up to `max_connections` for `url`, opened lazily; `None` when the URL is not
    /// one tokio-postgres reads (see the module comment).
    pub fn new(
        url: &str,
        max_connections: u32,
        connect_timeout: Duration,
        acquire_timeout: Duration,
    ) -> Option<PipelinedReads> {
        let mut config: tokio_postgres::Config = url.parse().ok()?;
        if !matches!(
            config.get_ssl_mode(),
            SslMode::Disable | SslMode::Prefer | SslMode::Require
        ) {
            return None;
        }
        // As on the sqlx pool: every query is led by a `tenant_id` index, so the generic plan
        // is the one a custom plan would pick, without planning each execution.
        config
            .options("-c plan_cache_mode=force_generic_plan")
            .application_name(APPLICATION_NAME)
            .connect_timeout(connect_timeout);
        let manager = Manager::from_config(
            config,
            unverified_tls(),
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

/// TLS for `prefer` and `require`: encrypted, with the handshake's signatures checked, but
/// any certificate accepted, as sqlx does for those modes.
fn unverified_tls() -> MakeRustlsConnect {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("the default provider supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    MakeRustlsConnect::new(config)
}

/// Accepts the server's certificate unchecked (see [`unverified_tls`]).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
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

    fn pool(url: &str) -> Option<PipelinedReads> {
        PipelinedReads::new(url, 4, Duration::from_secs(1), Duration::from_secs(1))
    }

    #[test]
    fn sslmodes_sqlx_reads_without_checking_certificates_get_a_pool() {
        for mode in ["disable", "prefer", "require"] {
            let url = format!("postgres://app@db.internal:5432/resonance?sslmode={mode}");
            assert!(pool(&url).is_some(), "{mode}");
        }
        assert!(pool("postgres://app@db.internal/resonance").is_some());
    }

    #[test]
    fn certificate_checks_leave_reads_on_sqlx() {
        assert!(pool("postgres://app@db.internal/resonance?sslmode=verify-full").is_none());
        assert!(pool("postgres://app@db.internal/resonance?sslmode=verify-ca").is_none());
        assert!(pool("postgres://app@db.internal/resonance?sslrootcert=/etc/ca.pem").is_none());
    }
}
