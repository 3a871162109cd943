//! What every request handler shares. Built once by `server::prepare`; each HTTP worker gets a
//! copy with a database pool of its own. Only `server` and `routes` read it: the layers below
//! take the one piece they need (a connection, the tenant registry, the authenticator).

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::{
    auth::Authenticator,
    billing::Polar,
    config::Config,
    limits::Limits,
    speech::Speech,
    tenant::{TenantRegistry, pipelined::PipelinedReads},
};

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    /// For health checks only; tenant data is reached through `tenants`.
    pub db: DatabaseConnection,
    /// Opens tenant-scoped transactions ([`crate::tenant::ScopedDb`]) and system ones
    /// ([`crate::tenant::TenantAdmin`]).
    pub tenants: TenantRegistry,
    pub auth: Arc<Authenticator>,
    /// Speech provider, audio storage and synthesis limits.
    pub speech: Arc<Speech>,
    /// Plans, the per-workspace rate limiter, quotas.
    pub limits: Arc<Limits>,
    /// The Polar API (checkouts, the customer portal); unconfigured without a token.
    pub polar: Arc<Polar>,
}

impl AppState {
    /// The same state on other connection pools (one HTTP worker's own).
    pub fn with_connection(
        &self,
        db: DatabaseConnection,
        reads: Option<PipelinedReads>,
    ) -> AppState {
        AppState {
            tenants: self.tenants.with_connection(db.clone(), reads),
            db,
            ..self.clone()
        }
    }
}
