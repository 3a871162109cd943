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
pub trait TenantOwned: EntityTrait {
    /// The `tenant_id` column.
    const TENANT: Self::Column;
    /// The `created_by_user_id` column.
    const CREATED_BY: Self::Column;
    /// What the API calls one row, for "no such …" answers.
    const NAME: &'static str;
    /// Rows with a NULL tenant are shared: readable by every tenant, writable by none.
    const SHARED_ROWS: bool = false;
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
