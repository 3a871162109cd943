//! What a workspace has used of its plan in one calendar month (UTC): one row per
//! (workspace, month), written only by `tenant::ScopedDb::reserve_characters` and
//! `release_characters` (single conditional updates, so concurrent requests never overspend).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "usage")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    /// The first day of the month (UTC).
    #[sea_orm(primary_key, auto_increment = false)]
    pub period_start: Date,
    /// Characters reserved by generations this month (given back when a synthesis fails).
    pub characters_used: i64,
    /// Whose request created the row (the first use of the month).
    pub created_by_user_id: String,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

tenant_owned!("usage");

from_pg_row!(
    tenant_id,
    period_start,
    characters_used,
    created_by_user_id,
    updated_at,
);
