//! Database migrations for the Resonance API. They run on SQLite and PostgreSQL alike; on
//! PostgreSQL they also set up the application role and row-level security (see [`rls`]).

pub use sea_orm_migration::prelude::*;

mod m20260101_000001_tenants;
mod m20260101_000002_projects_tasks;
mod m20260101_000003_voices_generations;
mod m20260101_000004_directory;
mod m20261125_000005_usage;
mod m20261125_000006_idempotency;
mod m20261204_000007_billing;
mod m20261204_000008_events;
mod m20261204_000009_session_revocations;
pub mod rls;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20260101_000001_tenants::Migration),
            Box::new(m20260101_000002_projects_tasks::Migration),
            Box::new(m20260101_000003_voices_generations::Migration),
            Box::new(m20260101_000004_directory::Migration),
            Box::new(m20261125_000005_usage::Migration),
            Box::new(m20261125_000006_idempotency::Migration),
            Box::new(m20261204_000007_billing::Migration),
            Box::new(m20261204_000008_events::Migration),
            Box::new(m20261204_000009_session_revocations::Migration),
        ]
    }
}
