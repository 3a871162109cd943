//! The isolation audit at start (PostgreSQL): is the second wall actually standing for the
//! role the service runs as?
//!
//! Row-level security protects nothing when it is off for a table, when it is not forced
//! (a table's owner bypasses unforced policies), when writes are not checked, or when the
//! connecting role escapes it (a superuser, a role with `BYPASSRLS`, or the owner, who can turn
//! it off). Each of these is one statement away from a working migration, so the service
//! checks them, as its runtime role (`DATABASE_URL`'s connection), every time it starts:
//! - the role is not a superuser and has no `BYPASSRLS`;
//! - every tenant-owned table ([`TENANT_OWNED_TABLES`] and any table of the schema with a
//!   `tenant_id` column) exists, has row-level security enabled and forced, has policies with
//!   an explicit `WITH CHECK` expression for `INSERT` and for `UPDATE` that apply to the role,
//!   and is not owned by the role (or a role it is a member of).
//!
//! Production refuses to start on a finding; development logs it as a warning and goes on.
//! SQLite has no row-level security: nothing to audit.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};

use super::lifecycle::TENANT_OWNED_TABLES;

/// What the audit found wrong, as one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("row-level security audit: {}", .findings.join("; "))]
pub struct AuditFailure {
    /// One entry per problem, e.g. `table tasks is not FORCE ROW LEVEL SECURITY`.
    pub findings: Vec<String>,
}

/// Runs the audit at start: a finding refuses the start when `strict` (production), and is
/// logged as a warning otherwise.
pub async fn check_at_start(db: &DatabaseConnection, strict: bool) -> Result<(), AuditFailure> {
    match audit(db).await {
        Ok(()) => Ok(()),
        Err(failure) if strict => Err(failure),
        Err(failure) => {
            tracing::warn!("{failure} (development continues; production would refuse to start)");
            Ok(())
        }
    }
}

/// Checks row-level security as the role `db` connects as (no-op on SQLite).
pub async fn audit(db: &DatabaseConnection) -> Result<(), AuditFailure> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let findings = findings(db).await.unwrap_or_else(|err| {
        vec![format!(
            "cannot read the catalog to check row-level security: {err}"
        )]
    });
    if findings.is_empty() {
        Ok(())
    } else {
        Err(AuditFailure { findings })
    }
}

/// The problems, role first: when the role escapes row-level security altogether, that is
/// the finding (every table-level one would follow from it).
async fn findings(db: &DatabaseConnection) -> Result<Vec<String>, DbErr> {
    let role = query(
        db,
        "SELECT current_user::text AS name, rolsuper, rolbypassrls
           FROM pg_roles WHERE rolname = current_user",
    )
    .await?;
    let role = role
        .first()
        .ok_or_else(|| DbErr::Custom("the current role is not in pg_roles".into()))?;
    let name: String = role.try_get("", "name")?;
    let mut found = vec![];
    if role.try_get::<bool>("", "rolsuper")? {
        found.push(format!(
            "the database role {name} is a superuser (row-level security does not apply to it)"
        ));
    }
    // A superuser has BYPASSRLS as well; the first finding says it all.
    else if role.try_get::<bool>("", "rolbypassrls")? {
        found.push(format!(
            "the database role {name} has BYPASSRLS (row-level security does not apply to it)"
        ));
    }
    if !found.is_empty() {
        return Ok(found);
    }

    // Every table of the schema with a `tenant_id` column, plus those the code names; a named
    // table that is missing has an `oid` of NULL.
    let listed = TENANT_OWNED_TABLES
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "WITH owned AS (
           SELECT c.relname::text AS name FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_attribute a ON a.attrelid = c.oid
            WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
              AND a.attname = 'tenant_id' AND a.attnum > 0 AND NOT a.attisdropped
           UNION SELECT unnest(ARRAY[{listed}]::text[])
         )
         SELECT owned.name,
                c.oid IS NOT NULL AS present,
                COALESCE(c.relrowsecurity, false) AS enabled,
                COALESCE(c.relforcerowsecurity, false) AS forced,
                pg_get_userbyid(c.relowner)::text AS owner,
                COALESCE(pg_has_role(current_user, c.relowner, 'MEMBER'), false) AS owned_by_us,
                EXISTS (SELECT 1 FROM pg_policies p
                         WHERE p.schemaname = current_schema() AND p.tablename = owned.name
                           AND p.cmd IN ('ALL', 'INSERT') AND p.with_check IS NOT NULL
                           AND p.permissive = 'PERMISSIVE' AND {applies}) AS insert_checked,
                EXISTS (SELECT 1 FROM pg_policies p
                         WHERE p.schemaname = current_schema() AND p.tablename = owned.name
                           AND p.cmd IN ('ALL', 'UPDATE') AND p.with_check IS NOT NULL
                           AND p.permissive = 'PERMISSIVE' AND {applies}) AS update_checked
           FROM owned
           LEFT JOIN pg_class c ON c.relname = owned.name AND c.relkind IN ('r', 'p')
                AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
          ORDER BY owned.name",
        applies = "EXISTS (SELECT 1 FROM unnest(p.roles) r
                            WHERE CASE WHEN r = 'public' THEN true
                                       ELSE pg_has_role(current_user, r, 'MEMBER') END)",
    );
    for table in query(db, &sql).await? {
        let t: String = table.try_get("", "name")?;
        if !table.try_get::<bool>("", "present")? {
            found.push(format!("table {t} does not exist"));
            continue;
        }
        if !table.try_get::<bool>("", "enabled")? {
            found.push(format!(
                "table {t} does not have ROW LEVEL SECURITY enabled"
            ));
        }
        if !table.try_get::<bool>("", "forced")? {
            found.push(format!("table {t} is not FORCE ROW LEVEL SECURITY"));
        }
        for command in ["insert", "update"] {
            if !table.try_get::<bool>("", &format!("{command}_checked"))? {
                found.push(format!(
                    "table {t} has no policy with a WITH CHECK expression for {} by {name}",
                    command.to_uppercase()
                ));
            }
        }
        if table.try_get::<bool>("", "owned_by_us")? {
            let owner: String = table.try_get("", "owner")?;
            found.push(if owner == name {
                format!("the database role {name} owns table {t} (an owner can turn row-level security off)")
            } else {
                format!(
                    "the database role {name} owns table {t} through role {owner} (an owner can turn row-level security off)"
                )
            });
        }
    }
    Ok(found)
}

async fn query(db: &DatabaseConnection, sql: &str) -> Result<Vec<sea_orm::QueryResult>, DbErr> {
    db.query_all_raw(Statement::from_string(DbBackend::Postgres, sql.to_owned()))
        .await
}

#[cfg(test)]
mod tests {
    use super::AuditFailure;

    #[test]
    fn findings_are_one_line() {
        let failure = AuditFailure {
            findings: vec![
                "table tasks is not FORCE ROW LEVEL SECURITY".into(),
                "table voices does not have ROW LEVEL SECURITY enabled".into(),
            ],
        };
        assert_eq!(
            failure.to_string(),
            "row-level security audit: table tasks is not FORCE ROW LEVEL SECURITY; \
             table voices does not have ROW LEVEL SECURITY enabled"
        );
    }
}
