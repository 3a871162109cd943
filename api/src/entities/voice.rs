//! A voice: a shared system voice (`tenant_id` NULL, seeded by a migration) or a workspace's
//! custom voice with its reference sample.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "voices")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// None: a system voice, shared by every workspace and writable by none.
    pub tenant_id: Option<String>,
    pub name: String,
    pub description: Option<String>,
    pub category: String,
    /// A BCP 47 language tag (`en-US`, `de-DE`, …).
    pub language: String,
    /// `female`, `male` or `neutral`, when known.
    pub gender: Option<String>,
    /// The espeak-ng voice that speaks for it (`en-us+f3`).
    pub espeak_voice: String,
    /// The voice name sent to OpenAI-compatible APIs, when it has one of its own.
    pub remote_voice: Option<String>,
    /// Object key of the reference sample (custom voices).
    pub sample_key: Option<String>,
    pub sample_content_type: Option<String>,
    pub sample_bytes: Option<i64>,
    pub sample_duration_ms: Option<i64>,
    /// Bumped on every update; the ETag.
    pub version: i32,
    /// None for system voices.
    pub created_by_user_id: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

tenant_owned!("voice", shared);

impl Model {
    pub fn is_system(&self) -> bool {
        self.tenant_id.is_none()
    }
}

versioned!();

from_pg_row!(
    id,
    tenant_id,
    name,
    description,
    category,
    language,
    gender,
    espeak_voice,
    remote_voice,
    sample_key,
    sample_content_type,
    sample_bytes,
    sample_duration_ms,
    version,
    created_by_user_id,
    created_at,
    updated_at,
);
