//! PostgreSQL's second wall: the application role and row-level security.
//!
//! The API connects as `resonance_app`, which owns nothing and is not a superuser, so the
//! policies apply to it. Every tenant-owned table gets `FORCE ROW LEVEL SECURITY` and a policy
//! that admits only rows whose `tenant_id` equals the transaction-local setting
//! `app.tenant_id`, which the API sets at the start of each request's transaction. With the
//! setting absent, no tenant row is visible at all.
//!
//! Operators: migrations create the role (NOLOGIN is not used so local trust setups work);
//! give it a password (`ALTER ROLE resonance_app PASSWORD '…'`) and point `DATABASE_URL` at
//! it. Migrations run as the schema owner (`RESONANCE_MIGRATION_DATABASE_URL`), who needs
//! CREATEROLE unless the role already exists.

use sea_orm_migration::{
    prelude::*,
    sea_orm::{ConnectionTrait, DbBackend},
};

pub const APP_ROLE: &str = "resonance_app";

/// Creates the application role when missing (PostgreSQL only).
pub async fn ensure_app_role(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    if manager.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    manager
        .get_connection()
        .execute_unprepared(&format!(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                 CREATE ROLE {APP_ROLE} LOGIN;
               END IF;
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
             END $$;
             GRANT USAGE ON SCHEMA public TO {APP_ROLE};"
        ))
        .await
        .map(|_| ())
}

/// Lets the application role read and write a table that is not tenant-owned.
pub async fn grant(manager: &SchemaManager<'_>, table: &str) -> Result<(), DbErr> {
    if manager.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    manager
        .get_connection()
        .execute_unprepared(&format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE};"
        ))
        .await
        .map(|_| ())
}

/// Row-level security on a tenant-owned table: every command sees and writes only rows of
/// the transaction's tenant.
pub async fn protect_tenant_table(manager: &SchemaManager<'_>, table: &str) -> Result<(), DbErr> {
    if manager.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    grant(manager, table).await?;
    manager
        .get_connection()
        .execute_unprepared(&format!(
            "ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
             ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
             CREATE POLICY tenant_isolation ON {table}
               USING (tenant_id = current_setting('app.tenant_id', true))
               WITH CHECK (tenant_id = current_setting('app.tenant_id', true));"
        ))
        .await
        .map(|_| ())
}

/// Row-level security on a table whose rows with a NULL `tenant_id` are shared (system
/// voices): every tenant reads its own rows and the shared ones, but inserts, updates and
/// deletes only its own, so shared rows are writable by no tenant.
pub async fn protect_shared_table(manager: &SchemaManager<'_>, table: &str) -> Result<(), DbErr> {
    if manager.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    grant(manager, table).await?;
    manager
        .get_connection()
        .execute_unprepared(&format!(
            "ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
             ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
             CREATE POLICY shared_read ON {table} FOR SELECT
               USING (tenant_id IS NULL OR tenant_id = current_setting('app.tenant_id', true));
             CREATE POLICY tenant_insert ON {table} FOR INSERT
               WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
             CREATE POLICY tenant_update ON {table} FOR UPDATE
               USING (tenant_id = current_setting('app.tenant_id', true))
               WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
             CREATE POLICY tenant_delete ON {table} FOR DELETE
               USING (tenant_id = current_setting('app.tenant_id', true));"
        ))
        .await
        .map(|_| ())
}
