//! A user's membership of an organization workspace, synced from Clerk's
//! `organizationMembership.*` webhooks. Tenant-owned: handlers read it through `ScopedDb`.
//! A removed membership keeps its row with `deleted_at` set, so a late, older delivery cannot
//! bring it back.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "memberships")]
pub struct Model {
    /// Our id (UUIDv7: list order and cursor).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: String,
    pub user_id: String,
    /// Clerk's `orgmem_…` id.
    pub clerk_membership_id: Option<String>,
    /// Normalised role: `admin`, `member`, `reader`, …
    pub role: String,
    /// Clerk's `public_user_data` at the time of the membership event.
    pub user_name: Option<String>,
    pub user_email: Option<String>,
    pub user_image_url: Option<String>,
    /// Clerk's `updated_at` (ms) of the version stored.
    pub source_updated_at: i64,
    pub deleted_at: Option<DateTimeUtc>,
    /// `system:clerk-webhook`: memberships are written by the sync, not by a user.
    pub created_by_user_id: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

tenant_owned!("member");

from_pg_row!(
    id,
    tenant_id,
    user_id,
    clerk_membership_id,
    role,
    user_name,
    user_email,
    user_image_url,
    source_updated_at,
    deleted_at,
    created_by_user_id,
    created_at,
    updated_at,
);
