//! `/v1/generations`: text turned into speech with a system or custom voice.
//!
//! Creation synthesizes synchronously (bounded by the synthesis timeout and the concurrency
//! limits), stores the audio and answers 201. A failed synthesis is recorded as `failed` with
//! its reason, leaves no audio object, and answers 502.

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::{
    entities::{generation, voice},
    error::{ApiError, FieldError, ProblemDetails},
    events::ResourceEvent,
    limits::quota,
    rest::{self, ListPage, Page},
    routes::audio,
    speech::{OutputFormat, SpeechProvider, SynthesisRequest, storage::AudioStorage},
    state::AppState,
    tenant::{TenantContext, permissions, scoped::ScopedDb},
};

pub const MAX_TEXT_CHARS: usize = 5_000;
pub const MIN_SPEED: f64 = 0.5;
pub const MAX_SPEED: f64 = 2.0;
pub const MAX_PITCH: i32 = 50;

/// A speech generation.
#[derive(Debug, Serialize, ToSchema)]
pub struct Generation {
    pub id: Uuid,
    pub voice_id: Uuid,
    pub text: String,
    /// `succeeded` or `failed`.
    #[schema(example = "succeeded")]
    pub status: String,
    /// Why synthesis failed (failed generations only).
    pub failure_reason: Option<String>,
    /// The provider that synthesized it (`espeak`, `openai-compatible`).
    pub provider: String,
    /// `wav`, `mp3`, `opus` or `flac`.
    pub format: String,
    pub speed: f64,
    pub pitch: i32,
    /// The audio's content type (succeeded generations).
    pub content_type: Option<String>,
    /// The audio's size in bytes.
    pub size_bytes: Option<i64>,
    pub duration_ms: Option<i64>,
    pub sample_rate: Option<i32>,
    /// Streams the audio (supports `Range`); null for failed generations.
    pub audio_url: Option<String>,
    pub created_by_user_id: String,
    pub created_at: DateTime<Utc>,
}

impl From<generation::Model> for Generation {
    fn from(m: generation::Model) -> Self {
        Generation {
            audio_url: m
                .audio_key
                .as_ref()
                .map(|_| format!("/v1/generations/{}/audio", m.id)),
            id: m.id,
            voice_id: m.voice_id,
            text: m.text,
            status: m.status,
            failure_reason: m.failure_reason,
            provider: m.provider,
            format: m.format,
            speed: m.speed,
            pitch: m.pitch,
            content_type: m.content_type,
            size_bytes: m.audio_bytes,
            duration_ms: m.duration_ms,
            sample_rate: m.sample_rate,
            created_by_user_id: m.created_by_user_id,
            created_at: m.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"voice_id": "01900000-0000-7000-8000-000000000001", "text": "Hello from Resonance.", "speed": 1.0}))]
pub struct CreateGeneration {
    /// A system voice (the example is the first of the shared library) or one of this
    /// workspace's custom voices.
    pub voice_id: Uuid,
    /// At most 5 000 characters, not blank; spoken trimmed.
    #[schema(
        min_length = 1,
        max_length = 5000,
        pattern = r"[^\t\n\u000B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][\s\S]*$"
    )]
    pub text: String,
    /// Speaking rate (default 1.0).
    #[schema(minimum = 0.5, maximum = 2.0)]
    pub speed: Option<f64>,
    /// Offset from the voice's normal pitch (default 0). Only the espeak provider supports a
    /// non-zero pitch; others answer 422.
    #[schema(minimum = -50, maximum = 50)]
    pub pitch: Option<i32>,
    /// Default `wav`. The espeak provider produces only `wav`; others answer 422.
    pub format: Option<OutputFormat>,
}

/// A generation request checked against the provider that will speak it.
pub struct NewGeneration {
    pub voice_id: Uuid,
    pub text: String,
    pub speed: f64,
    pub pitch: i32,
    pub format: OutputFormat,
}

impl CreateGeneration {
    pub fn validate(self, provider: &dyn SpeechProvider) -> Result<NewGeneration, Vec<FieldError>> {
        let mut errors = vec![];
        let text = rest::trimmed("text", &self.text, MAX_TEXT_CHARS, &mut errors);
        let speed = self.speed.unwrap_or(1.0);
        if !(MIN_SPEED..=MAX_SPEED).contains(&speed) {
            errors.push(FieldError::new(
                "speed",
                format!("must be between {MIN_SPEED} and {MAX_SPEED}"),
            ));
        }
        let pitch = self.pitch.unwrap_or(0);
        if !(-MAX_PITCH..=MAX_PITCH).contains(&pitch) {
            errors.push(FieldError::new(
                "pitch",
                format!("must be between -{MAX_PITCH} and {MAX_PITCH}"),
            ));
        } else if pitch != 0 && !provider.supports_pitch() {
            errors.push(FieldError::new(
                "pitch",
                format!("the {} provider does not support pitch", provider.name()),
            ));
        }
        let format = self.format.unwrap_or_default();
        if !provider.supports(format) {
            errors.push(FieldError::new(
                "format",
                format!(
                    "the {} provider cannot produce {}",
                    provider.name(),
                    format.name()
                ),
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(NewGeneration {
            voice_id: self.voice_id,
            text,
            speed,
            pitch,
            format,
        })
    }
}

/// A generation's outcome.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GenerationStatus {
    Succeeded,
    Failed,
}

impl GenerationStatus {
    fn as_str(self) -> &'static str {
        match self {
            GenerationStatus::Succeeded => generation::STATUS_SUCCEEDED,
            GenerationStatus::Failed => generation::STATUS_FAILED,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListGenerations {
    /// Only generations made with this voice.
    pub voice_id: Option<Uuid>,
    /// Only generations with this outcome.
    #[param(inline)]
    pub status: Option<GenerationStatus>,
    /// Page size (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^([A-Za-z0-9_-]{21}[AQgw])?$")]
    pub cursor: Option<String>,
}

/// The routes of this resource.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/generations")
            .get(list)
            .route(crate::idempotency::post(create)),
    )
    .service(
        web::resource("/v1/generations/{id}")
            .get(get)
            .delete(delete),
    )
    .service(web::resource("/v1/generations/{id}/audio").get(audio));
}

#[derive(OpenApi)]
#[openapi(
    paths(list, create, get, delete, audio),
    components(schemas(Generation, CreateGeneration, OutputFormat)),
    tags((name = "generations", description = "Text-to-speech generations and their audio")),
)]
pub struct GenerationsApi;

fn no_provider() -> ApiError {
    ApiError::ServiceUnavailable {
        detail: "no speech provider is configured: install espeak-ng (apt-get install espeak-ng) \
                 and leave RESONANCE_TTS_PROVIDER unset or set it to espeak, or set \
                 RESONANCE_TTS_PROVIDER=openai-compatible with RESONANCE_TTS_BASE_URL \
                 (and RESONANCE_TTS_API_KEY, RESONANCE_TTS_MODEL)"
            .into(),
        retry_after: None,
    }
}

/// Synthesize speech.
#[utoipa::path(
    post, path = "/v1/generations", tag = "generations", operation_id = "createGeneration",
    security(("bearer" = [])),
    request_body = CreateGeneration,
    responses(
        (status = 201, description = "Synthesized and stored", body = Generation, headers(("Location" = String, description = "The generation's URL"), ("x-character-count" = u64, description = "Characters this generation was charged: the Unicode scalar values of the trimmed text"))),
        (status = 402, description = "`quota_exceeded`: the text needs more characters than the workspace has left this month (`characters_remaining` says how many); nothing was synthesized or charged", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "Needs org:generations:create", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, a voice this workspace cannot use, or a `format` or non-zero `pitch` the configured provider cannot produce", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "Too many syntheses in progress (see Retry-After)", body = ProblemDetails, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        (status = 502, description = "Synthesis failed; recorded as a failed generation", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "No speech provider is configured", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    ctx: TenantContext,
    body: web::Json<CreateGeneration>,
) -> Result<HttpResponse, ApiError> {
    ctx.require(permissions::GENERATIONS_CREATE)?;
    let input = body.into_inner();
    let speech = state.speech.clone();
    let provider = speech.provider.clone().ok_or_else(no_provider)?;

    let input = input.validate(provider.as_ref())?;

    // What the generation costs: the characters of the text as spoken (trimmed).
    let characters = quota::characters(&input.text);
    let plan = state.limits.plan_for(&ctx).clone();
    let db = ScopedDb::begin(&state.tenants, &ctx).await?;
    let voice = db
        .get::<voice::Entity>(input.voice_id)
        .await?
        .ok_or_else(|| ApiError::field("voice_id", "no such voice for this workspace"))?;
    // Reserved (and committed) before synthesizing; given back below if anything fails.
    let reservation = quota::reserve(&db, &plan, characters).await?;
    db.commit().await?;

    let created = synthesize_and_store(&state, &ctx, provider, voice, input).await;
    match created {
        Ok(created) => Ok(HttpResponse::Created()
            .insert_header((header::LOCATION, format!("/v1/generations/{}", created.id)))
            .insert_header((CHARACTER_COUNT, characters))
            .json(Generation::from(created))),
        Err(err) => {
            quota::release(&state.tenants, &ctx, reservation).await;
            Err(err)
        }
    }
}

/// The characters a generation was charged (`POST /v1/generations`).
pub const CHARACTER_COUNT: &str = "x-character-count";

/// Synthesizes a checked generation request and stores its audio and row (or a failed row).
async fn synthesize_and_store(
    state: &AppState,
    ctx: &TenantContext,
    provider: std::sync::Arc<dyn SpeechProvider>,
    voice: voice::Model,
    input: NewGeneration,
) -> Result<generation::Model, ApiError> {
    let speech = state.speech.clone();
    // Held until the audio is stored; the database is not held while synthesizing.
    let _permit = speech.limiter.acquire(&ctx.tenant_id).await?;
    let NewGeneration {
        text,
        speed,
        pitch,
        format,
        ..
    } = input;
    let request = SynthesisRequest {
        text: text.clone(),
        espeak_voice: voice.espeak_voice.clone(),
        remote_voice: voice.remote_voice.clone(),
        speed,
        pitch,
        format,
    };
    let outcome = speech.synthesize(provider.as_ref(), request).await;

    let id = Uuid::now_v7();
    let now = Utc::now();
    let mut row = generation::ActiveModel {
        id: Set(id),
        voice_id: Set(voice.id),
        text: Set(text),
        provider: Set(provider.name().to_owned()),
        format: Set(format.name().to_owned()),
        speed: Set(speed),
        pitch: Set(pitch),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    let synthesized = match outcome {
        Ok(synthesized) => synthesized,
        Err(reason) => {
            tracing::warn!(generation = %id, provider = provider.name(), %reason, "synthesis failed");
            row.status = Set(generation::STATUS_FAILED.to_owned());
            row.failure_reason = Set(Some(reason.clone()));
            row.audio_key = Set(None);
            row.content_type = Set(None);
            row.audio_bytes = Set(None);
            row.duration_ms = Set(None);
            row.sample_rate = Set(None);
            let db = ScopedDb::begin(&state.tenants, ctx).await?;
            let failed = db.insert(row).await?;
            db.publish(generation_created(&failed)).await?;
            db.commit().await?;
            return Err(ApiError::BadGateway {
                detail: format!(
                    "speech synthesis failed: {reason} (recorded as failed generation {id})"
                ),
            });
        }
    };

    let key = AudioStorage::generation_key(&ctx.tenant_id, id, format.name())
        .map_err(ApiError::internal)?;
    row.status = Set(generation::STATUS_SUCCEEDED.to_owned());
    row.failure_reason = Set(None);
    row.audio_key = Set(Some(key.clone()));
    row.content_type = Set(Some(synthesized.info.format.content_type().to_owned()));
    row.audio_bytes = Set(Some(synthesized.bytes.len() as i64));
    row.duration_ms = Set(Some(synthesized.info.duration.as_millis() as i64));
    row.sample_rate = Set(synthesized.info.sample_rate.map(|r| r as i32));
    let record = async {
        let db = ScopedDb::begin(&state.tenants, ctx).await?;
        let created = db.insert(row).await?;
        db.publish(generation_created(&created)).await?;
        db.commit().await?;
        Ok::<_, ApiError>(created)
    };
    speech
        .storage
        .put_then(&key, synthesized.bytes, record)
        .await
}

/// List generations, newest first.
#[utoipa::path(
    get, path = "/v1/generations", tag = "generations", operation_id = "listGenerations",
    security(("bearer" = [])),
    params(ListGenerations, ("If-None-Match" = Option<String>, Header, description = "ETag of a page read earlier; 304 while that page is unchanged")),
    responses(
        (status = 200, description = "A page of generations", body = Page<Generation>, headers(("ETag" = String, description = "Weak validator of this page; send it in If-None-Match"))),
        (status = 403, description = "Needs org:generations:read", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: TenantContext,
    query: web::Query<ListGenerations>,
) -> Result<HttpResponse, ApiError> {
    ctx.require(permissions::GENERATIONS_READ)?;
    let page = ListPage {
        limit: query.limit,
        cursor: query.cursor.clone(),
    }
    .validate()?;
    let mut select = page.select(generation::Entity::find(), generation::Column::Id);
    if let Some(voice_id) = query.voice_id {
        select = select.filter(generation::Column::VoiceId.eq(voice_id));
    }
    if let Some(status) = query.status {
        select = select.filter(generation::Column::Status.eq(status.as_str()));
    }
    let db = ScopedDb::begin(&state.tenants, &ctx).await?;
    let rows = db.all(select).await?;
    db.finish_read();
    rest::page_response(&req, &page.page(rows, |m| m.id, Generation::from))
}

/// Get a generation.
#[utoipa::path(
    get, path = "/v1/generations/{id}", tag = "generations", operation_id = "getGeneration",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Generation id")),
    responses(
        (status = 200, description = "The generation", body = Generation),
        (status = 403, description = "Needs org:generations:read", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    ctx: TenantContext,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    ctx.require(permissions::GENERATIONS_READ)?;
    let found = rest::read_one::<generation::Entity>(&state.tenants, &ctx, *id).await?;
    Ok(HttpResponse::Ok().json(Generation::from(found)))
}

/// Delete a generation and its audio.
#[utoipa::path(
    delete, path = "/v1/generations/{id}", tag = "generations", operation_id = "deleteGeneration",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Generation id")),
    responses(
        (status = 204, description = "Deleted, with its audio"),
        (status = 403, description = "Needs org:generations:create", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn delete(
    state: web::Data<AppState>,
    ctx: TenantContext,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    ctx.require(permissions::GENERATIONS_CREATE)?;
    let db = ScopedDb::begin(&state.tenants, &ctx).await?;
    let current = db
        .get::<generation::Entity>(*id)
        .await?
        .ok_or(ApiError::NotFound("generation"))?;
    // The audio goes first: a failure leaves the generation in place for a retry.
    if let Some(key) = &current.audio_key {
        state
            .speech
            .storage
            .delete(key)
            .await
            .map_err(ApiError::internal)?;
    }
    db.delete(generation::Entity::delete_many().filter(generation::Column::Id.eq(current.id)))
        .await?;
    db.publish(ResourceEvent::deleted("generation.deleted", current.id))
        .await?;
    db.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Stream a generation's audio (`Range` supported).
#[utoipa::path(
    get, path = "/v1/generations/{id}/audio", tag = "generations", operation_id = "getGenerationAudio",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Generation id"),
        ("Range" = Option<String>, Header, description = "`bytes=start-end`, `bytes=start-` or `bytes=-suffix`"),
    ),
    responses(
        (status = 200, description = "The whole audio", content_type = "audio/*", body = Vec<u8>,
            headers(("Content-Length" = u64), ("Accept-Ranges" = String, description = "`bytes`"),
                ("Content-Disposition" = String, description = "`inline` with a file name"),
                ("Cache-Control" = String, description = "`private, max-age=3600`"))),
        (status = 206, description = "The requested range", content_type = "audio/*", body = Vec<u8>,
            headers(("Content-Range" = String, description = "`bytes start-end/size`"), ("Content-Length" = u64),
                ("Accept-Ranges" = String, description = "`bytes`"),
                ("Content-Disposition" = String, description = "`inline` with a file name"),
                ("Cache-Control" = String, description = "`private, max-age=3600`"))),
        (status = 403, description = "Needs org:generations:read", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such generation, or it has no audio (failed)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 416, description = "The range is outside the audio", body = ProblemDetails, content_type = "application/problem+json",
            headers(("Content-Range" = String, description = "`bytes */size`"))),
    )
)]
pub async fn audio(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: TenantContext,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    ctx.require(permissions::GENERATIONS_READ)?;
    let found = rest::read_one::<generation::Entity>(&state.tenants, &ctx, *id).await?;
    let (Some(key), Some(content_type)) = (&found.audio_key, &found.content_type) else {
        return Err(ApiError::NotFound("generation audio"));
    };
    audio::serve(
        &req,
        &state.speech.storage,
        key,
        content_type,
        &format!("{}.{}", found.id, found.format),
    )
    .await
}

/// Generations never change, so they have no version: theirs is always 1.
fn generation_created(created: &generation::Model) -> ResourceEvent {
    ResourceEvent::changed(
        "generation.created",
        created.id,
        1,
        &Generation::from(created.clone()),
    )
}
