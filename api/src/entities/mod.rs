//! sea-orm entities, one file each, and the traits that tell the tenant-scoped handle how an
//! entity is owned and versioned.

/// Declares this module's `Entity` tenant-owned through its `tenant_id` and
/// `created_by_user_id` columns and named `$name` in answers ("no such $name"); `shared` when
/// rows with a NULL tenant are readable by every tenant (see [`TenantOwned`]).
macro_rules! tenant_owned {
    ($name:literal $(, $shared:ident)?) => {
        impl super::TenantOwned for Entity {
            const TENANT: Column = Column::TenantId;
            const CREATED_BY: Column = Column::CreatedByUserId;
            const NAME: &'static str = $name;
            const SHARED_ROWS: bool = tenant_owned!(@shared $($shared)?);
        }
    };
    (@shared shared) => { true };
    (@shared) => { false };
}

/// Declares this module's `Entity` versioned by its `id` and `version` columns (see
/// [`Versioned`]).
macro_rules! versioned {
    () => {
        impl super::Versioned for Entity {
            const ID: Column = Column::Id;
            const VERSION: Column = Column::Version;
            fn version(model: &Model) -> i32 {
                model.version
            }
        }
    };
}

/// Implements [`FromPgRow`] for this module's `Model`, for both PostgreSQL drivers. List
/// every field in declaration order, which is the order of `Column` and of the columns
/// `Entity::find()` selects; `rows_decode_in_column_order` checks each list against `Column`.
macro_rules! from_pg_row {
    ($($field:ident),+ $(,)?) => {
        impl super::FromPgRow for Model {
            const FIELDS: &'static [&'static str] = &[$(stringify!($field)),+];

            fn from_pg_row(
                row: &sea_orm::sqlx::postgres::PgRow,
            ) -> Result<Self, sea_orm::sqlx::Error> {
                use sea_orm::sqlx::Row;
                from_pg_row!(@fields row, $($field),+)
            }

            fn from_pipelined_row(
                row: &tokio_postgres::Row,
            ) -> Result<Self, tokio_postgres::Error> {
                from_pg_row!(@fields row, $($field),+)
            }
        }
    };
    (@fields $row:ident, $($field:ident),+) => {{
        let mut column = 0usize;
        let mut next = || {
            column += 1;
            column - 1
        };
        // Fields are initialised in the order written: column 0, 1, 2, …
        Ok(Model {
            $($field: $row.try_get(next())?),+
        })
    }};
}

pub mod billing_account;
pub mod generation;
pub mod idempotency_key;
pub mod membership;
pub mod project;
pub mod task;
pub mod tenant;
pub mod usage;
pub mod user;
pub mod voice;

use sea_orm::EntityTrait;

/// A tenant-owned entity: `tenant::ScopedDb` filters every read, update and delete on
/// [`TenantOwned::TENANT`] and stamps it (and the creator) on inserts.
pub trait TenantOwned: EntityTrait<Model: FromPgRow> {
    /// The `tenant_id` column.
    const TENANT: Self::Column;
    /// The `created_by_user_id` column.
    const CREATED_BY: Self::Column;
    /// What the API calls one row, for "no such …" answers.
    const NAME: &'static str;
    /// Rows with a NULL tenant are shared: readable by every tenant, writable by none.
    const SHARED_ROWS: bool = false;
}

/// A model read from a PostgreSQL row by column position. sea-orm's `FromQueryResult` looks
/// each column up by name and formats an error message for every NULL it reads; on a list of
/// fifty rows that was a fifth of the request's CPU. `tenant::ScopedDb` reads lists and single
/// rows through this on PostgreSQL (see [`from_pg_row!`]).
pub trait FromPgRow: Sized {
    /// The fields, in the order they are decoded.
    const FIELDS: &'static [&'static str];

    /// Decodes a whole row, as `Entity::find()` selects it.
    fn from_pg_row(row: &sea_orm::sqlx::postgres::PgRow) -> Result<Self, sea_orm::sqlx::Error>;

    /// The same, for a row read by a pipelined read (`tenant::pipelined`).
    fn from_pipelined_row(row: &tokio_postgres::Row) -> Result<Self, tokio_postgres::Error>;
}

/// An entity whose rows carry a `version`, bumped on every update: the ETag clients send back
/// in `If-Match`.
pub trait Versioned: TenantOwned {
    /// The primary key column (a UUID).
    const ID: Self::Column;
    /// The `version` column.
    const VERSION: Self::Column;
    fn version(model: &Self::Model) -> i32;
}

#[cfg(test)]
mod tests {
    use sea_orm::{IdenStatic, Iterable};

    use super::*;

    /// `E`'s rows decode in the order `E::find()` selects its columns.
    fn decodes_in_column_order<E: TenantOwned>()
    where
        E::Column: IdenStatic,
    {
        let columns: Vec<&str> = E::Column::iter().map(|c| c.as_str()).collect();
        assert_eq!(columns, E::Model::FIELDS, "{}", E::NAME);
    }

    #[test]
    fn rows_decode_in_column_order() {
        decodes_in_column_order::<task::Entity>();
        decodes_in_column_order::<project::Entity>();
        decodes_in_column_order::<voice::Entity>();
        decodes_in_column_order::<generation::Entity>();
        decodes_in_column_order::<membership::Entity>();
        decodes_in_column_order::<usage::Entity>();
        decodes_in_column_order::<idempotency_key::Entity>();
        decodes_in_column_order::<billing_account::Entity>();
    }
}
