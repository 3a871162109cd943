//! A Clerk user as last synced by webhook. Not tenant-owned: one row per user, shared by
//! every workspace the user belongs to. A deleted user keeps the row (so the rows they created
//! in organizations can show them as deleted) with the profile cleared.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The primary email address.
    pub email: Option<String>,
    pub name: Option<String>,
    pub image_url: Option<String>,
    /// Clerk's `updated_at` (ms) of the version stored.
    pub source_updated_at: Option<i64>,
    pub deleted_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
