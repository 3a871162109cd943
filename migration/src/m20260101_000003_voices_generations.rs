//! Voices and speech generations.
//!
//! `voices` holds both the shared system voices (`tenant_id` NULL, seeded here, each mapped to
//! an espeak-ng voice and to a voice name of OpenAI-compatible APIs) and each workspace's custom
//! voices. `generations` is tenant-owned. List indexes start with `tenant_id`.
//!
//! System voices are seeded before row-level security is switched on: with FORCE ROW LEVEL
//! SECURITY a non-superuser schema owner could not insert rows without a tenant.

use sea_orm_migration::{
    prelude::*,
    schema::*,
    sea_orm::prelude::{ChronoDateTimeUtc, Uuid},
};

use crate::rls;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Voices {
    Table,
    Id,
    TenantId,
    Name,
    Description,
    Category,
    Language,
    Gender,
    EspeakVoice,
    RemoteVoice,
    SampleKey,
    SampleContentType,
    SampleBytes,
    SampleDurationMs,
    Version,
    CreatedByUserId,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Generations {
    Table,
    Id,
    TenantId,
    VoiceId,
    Text,
    Status,
    FailureReason,
    Provider,
    Format,
    Speed,
    Pitch,
    AudioKey,
    ContentType,
    AudioBytes,
    DurationMs,
    SampleRate,
    CreatedByUserId,
    CreatedAt,
    UpdatedAt,
}

/// One seeded system voice: (id suffix, name, description, category, language, gender,
/// espeak-ng voice, OpenAI-compatible voice).
type Seed = (
    u8,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

/// The system voice library: several languages, both genders.
const SYSTEM_VOICES: &[Seed] = &[
    (
        1,
        "Aria",
        "Warm American English narrator",
        "narration",
        "en-US",
        "female",
        "en-us+f3",
        "nova",
    ),
    (
        2,
        "Jack",
        "Relaxed American English conversationalist",
        "conversational",
        "en-US",
        "male",
        "en-us+m3",
        "onyx",
    ),
    (
        3,
        "Olivia",
        "Clear British English presenter",
        "news",
        "en-GB",
        "female",
        "en-gb+f3",
        "shimmer",
    ),
    (
        4,
        "Henry",
        "Calm British English storyteller",
        "narration",
        "en-GB",
        "male",
        "en-gb+m3",
        "fable",
    ),
    (
        5,
        "Lena",
        "Friendly German voice",
        "conversational",
        "de-DE",
        "female",
        "de+f3",
        "nova",
    ),
    (
        6,
        "Felix",
        "Steady German narrator",
        "narration",
        "de-DE",
        "male",
        "de+m3",
        "echo",
    ),
    (
        7,
        "Camille",
        "Bright French presenter",
        "news",
        "fr-FR",
        "female",
        "fr+f3",
        "shimmer",
    ),
    (
        8,
        "Louis",
        "Deep French narrator",
        "narration",
        "fr-FR",
        "male",
        "fr+m3",
        "onyx",
    ),
    (
        9,
        "Sofia",
        "Lively Spanish voice",
        "conversational",
        "es-ES",
        "female",
        "es+f3",
        "nova",
    ),
    (
        10,
        "Mateo",
        "Measured Spanish presenter",
        "news",
        "es-ES",
        "male",
        "es+m3",
        "echo",
    ),
    (
        11,
        "Giulia",
        "Expressive Italian voice",
        "characters",
        "it-IT",
        "female",
        "it+f3",
        "alloy",
    ),
    (
        12,
        "Marco",
        "Warm Italian narrator",
        "narration",
        "it-IT",
        "male",
        "it+m3",
        "onyx",
    ),
    (
        13,
        "Beatriz",
        "Brazilian Portuguese conversationalist",
        "conversational",
        "pt-BR",
        "female",
        "pt-br+f3",
        "nova",
    ),
    (
        14,
        "Tiago",
        "Brazilian Portuguese presenter",
        "news",
        "pt-BR",
        "male",
        "pt-br+m3",
        "echo",
    ),
    (
        15,
        "Sanne",
        "Dutch educational voice",
        "education",
        "nl-NL",
        "female",
        "nl+f3",
        "shimmer",
    ),
    (
        16,
        "Piotr",
        "Polish narrator",
        "narration",
        "pl-PL",
        "male",
        "pl+m3",
        "onyx",
    ),
    (
        17,
        "Ananya",
        "Hindi conversationalist",
        "conversational",
        "hi-IN",
        "female",
        "hi+f3",
        "nova",
    ),
];

/// The fixed id of a system voice: UUIDv7-shaped and older than any id the API mints, so
/// lists (newest first) show custom voices before the library.
pub fn system_voice_id(n: u8) -> Uuid {
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | n as u128)
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Voices::Table)
                    .if_not_exists()
                    .col(uuid(Voices::Id).primary_key())
                    .col(string_null(Voices::TenantId))
                    .col(string(Voices::Name))
                    .col(text_null(Voices::Description))
                    .col(string(Voices::Category))
                    .col(string(Voices::Language))
                    .col(string_null(Voices::Gender))
                    .col(string(Voices::EspeakVoice))
                    .col(string_null(Voices::RemoteVoice))
                    .col(string_null(Voices::SampleKey))
                    .col(string_null(Voices::SampleContentType))
                    .col(big_integer_null(Voices::SampleBytes))
                    .col(big_integer_null(Voices::SampleDurationMs))
                    .col(integer(Voices::Version))
                    .col(string_null(Voices::CreatedByUserId))
                    .col(timestamp_with_time_zone(Voices::CreatedAt))
                    .col(timestamp_with_time_zone(Voices::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("voices_tenant_id_id")
                    .table(Voices::Table)
                    .col(Voices::TenantId)
                    .col(Voices::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Generations::Table)
                    .if_not_exists()
                    .col(uuid(Generations::Id).primary_key())
                    .col(string(Generations::TenantId))
                    .col(uuid(Generations::VoiceId))
                    .col(text(Generations::Text))
                    .col(string(Generations::Status))
                    .col(text_null(Generations::FailureReason))
                    .col(string(Generations::Provider))
                    .col(string(Generations::Format))
                    .col(double(Generations::Speed))
                    .col(integer(Generations::Pitch))
                    .col(string_null(Generations::AudioKey))
                    .col(string_null(Generations::ContentType))
                    .col(big_integer_null(Generations::AudioBytes))
                    .col(big_integer_null(Generations::DurationMs))
                    .col(integer_null(Generations::SampleRate))
                    .col(string(Generations::CreatedByUserId))
                    .col(timestamp_with_time_zone(Generations::CreatedAt))
                    .col(timestamp_with_time_zone(Generations::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            (
                "generations_tenant_id_id",
                vec![Generations::TenantId, Generations::Id],
            ),
            (
                "generations_tenant_id_voice_id_id",
                vec![Generations::TenantId, Generations::VoiceId, Generations::Id],
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table(Generations::Table);
            for col in cols {
                index.col(col);
            }
            manager.create_index(index.to_owned()).await?;
        }

        seed_system_voices(manager).await?;

        rls::protect_shared_table(manager, "voices").await?;
        rls::protect_tenant_table(manager, "generations").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Generations::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Voices::Table).to_owned())
            .await
    }
}

async fn seed_system_voices(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    // A fixed moment, so seeded rows are the same on every database.
    // 2026-01-01T00:00:00Z
    let seeded_at = ChronoDateTimeUtc::from_timestamp(1_767_225_600, 0).unwrap_or_default();
    let mut insert = Query::insert();
    insert.into_table(Voices::Table).columns([
        Voices::Id,
        Voices::TenantId,
        Voices::Name,
        Voices::Description,
        Voices::Category,
        Voices::Language,
        Voices::Gender,
        Voices::EspeakVoice,
        Voices::RemoteVoice,
        Voices::Version,
        Voices::CreatedAt,
        Voices::UpdatedAt,
    ]);
    for &(n, name, description, category, language, gender, espeak, remote) in SYSTEM_VOICES {
        insert.values_panic([
            system_voice_id(n).into(),
            Option::<String>::None.into(),
            name.into(),
            description.into(),
            category.into(),
            language.into(),
            gender.into(),
            espeak.into(),
            remote.into(),
            1.into(),
            seeded_at.into(),
            seeded_at.into(),
        ]);
    }
    manager.exec_stmt(insert).await
}
