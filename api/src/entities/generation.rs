//! A speech generation: text spoken by a voice, with its stored audio, or the reason it failed.

use sea_orm::entity::prelude::*;

pub const STATUS_SUCCEEDED: &str = "succeeded";
pub const STATUS_FAILED: &str = "failed";

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "generations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: String,
    /// A system voice or one of the workspace's custom voices (kept when the voice is deleted).
    pub voice_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub text: String,
    /// `succeeded` or `failed`.
    pub status: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub failure_reason: Option<String>,
    /// The provider that synthesized it (`espeak`, `openai-compatible`).
    pub provider: String,
    /// `wav`, `mp3`, `opus` or `flac`.
    pub format: String,
    pub speed: f64,
    pub pitch: i32,
    /// Object key of the audio (None for failed generations).
    pub audio_key: Option<String>,
    pub content_type: Option<String>,
    pub audio_bytes: Option<i64>,
    pub duration_ms: Option<i64>,
    pub sample_rate: Option<i32>,
    pub created_by_user_id: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

tenant_owned!("generation");

from_pg_row!(
    id,
    tenant_id,
    voice_id,
    text,
    status,
    failure_reason,
    provider,
    format,
    speed,
    pitch,
    audio_key,
    content_type,
    audio_bytes,
    duration_ms,
    sample_rate,
    created_by_user_id,
    created_at,
    updated_at,
);
