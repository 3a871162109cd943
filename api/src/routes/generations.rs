//! `/v1/generations`: text turned into speech with a system or custom voice.
//!
//! Creation synthesizes (bounded by the synthesis timeout and the concurrency limits),
//! encodes to the requested format, stores the audio and answers 201. With `"stream": true`
//! it answers 200 with the audio as it is produced instead, and stores the same generation
//! when synthesis ends, whether or not the client is still listening. A failed synthesis is
//! recorded as `failed` with its reason and leaves no audio object; it answers 502 when
//! nothing was sent yet, and cuts a stream short otherwise (the record says why).

use std::sync::Arc;

use actix_web::{
    HttpRequest, HttpResponse,
    http::{StatusCode, header},
    web,
};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::{
    entities::{generation, voice},
    error::{ApiError, FieldError, ProblemDetails},
    events::ResourceEvent,
    idempotency::AnswerLater,
    limits::quota,
    rest::{self, ListPage, Page},
    routes::audio,
    speech::{OutputFormat, SpeechProvider, SynthesisRequest, encode, storage::AudioStorage},
    state::AppState,
    tenant::{TenantContext, permissions, scoped::ScopedDb},
    timestamp,
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
    /// `mp3`, `opus`, `flac`, `wav` or `pcm`.
    pub format: String,
    pub speed: f64,
    pub pitch: i32,
    /// The audio's content type (succeeded generations).
    pub content_type: Option<String>,
    /// The audio's size in bytes.
    pub size_bytes: Option<i64>,
    pub duration_ms: Option<i64>,
    /// Samples per second of the stored audio (for `pcm`, the only place it is said).
    pub sample_rate: Option<i32>,
    /// Streams the audio (supports `Range`); null for failed generations.
    pub audio_url: Option<String>,
    pub created_by_user_id: String,
    #[serde(serialize_with = "timestamp::serialize")]
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
    /// Default `mp3`. `opus` is Ogg Opus; `pcm` is raw 16-bit little-endian mono samples at
    /// `sample_rate`.
    pub format: Option<OutputFormat>,
    /// Samples per second (default: the voice's own rate, for `opus` the next rate Opus
    /// encodes at, 8, 12, 16, 24 or 48 kHz, which 22 050 and 44 100 are rounded up to).
    pub sample_rate: Option<SampleRate>,
    /// kbit/s for `mp3` (default 64) and `opus` (default 32); ignored by the lossless formats.
    pub bitrate: Option<Bitrate>,
    /// Answer `200` with the audio while it is produced (chunked) instead of `201` with the
    /// record once it is stored. The generation is stored either way.
    pub stream: Option<bool>,
}

/// A sample rate a generation can be encoded at.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct SampleRate(pub u32);

impl utoipa::PartialSchema for SampleRate {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        integer_choice(&encode::SAMPLE_RATES, "Samples per second")
    }
}
impl ToSchema for SampleRate {}

/// A bitrate a lossy generation can be encoded at, in kbit/s.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Bitrate(pub u32);

impl utoipa::PartialSchema for Bitrate {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        integer_choice(&encode::BITRATES, "kbit/s")
    }
}
impl ToSchema for Bitrate {}

/// The schema of an integer that must be one of `values`.
fn integer_choice(
    values: &[u32],
    description: &str,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Integer)
        .enum_values(Some(values.iter().copied()))
        .description(Some(description))
        .into()
}

/// A generation request checked against the provider that will speak it.
pub struct NewGeneration {
    pub voice_id: Uuid,
    pub text: String,
    pub speed: f64,
    pub pitch: i32,
    pub encoding: encode::Settings,
    pub stream: bool,
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
        let mut sample_rate = self.sample_rate.map(|r| r.0);
        if let Some(rate) = sample_rate {
            if !encode::SAMPLE_RATES.contains(&rate) {
                errors.push(FieldError::new(
                    "sample_rate",
                    format!("must be one of {:?}", encode::SAMPLE_RATES),
                ));
            } else if format == OutputFormat::Opus {
                sample_rate = encode::OPUS_RATES.into_iter().find(|r| *r >= rate);
            }
        }
        let bitrate = self.bitrate.map(|b| b.0);
        if bitrate.is_some_and(|b| !encode::BITRATES.contains(&b)) {
            errors.push(FieldError::new(
                "bitrate",
                format!("must be one of {:?}", encode::BITRATES),
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
            encoding: encode::Settings {
                format,
                sample_rate,
                bitrate_kbps: bitrate.filter(|_| format.has_bitrate()),
            },
            stream: self.stream.unwrap_or(false),
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
    components(schemas(Generation, CreateGeneration, OutputFormat, SampleRate, Bitrate)),
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
        (status = 200, description = "`\"stream\": true`: the audio, sent while it is produced (chunked). The generation is stored when synthesis ends; a stream that ends without its final chunk (the connection closes early) means synthesis failed, and the record (`x-generation-id`) says why",
            content(
                (Vec<u8> = "audio/mpeg"), (Vec<u8> = "audio/ogg; codecs=opus"), (Vec<u8> = "audio/flac"),
                (Vec<u8> = "audio/wav"), (Vec<u8> = "audio/pcm"),
            ),
            headers(("x-generation-id" = Uuid, description = "The generation being stored"),
                ("x-character-count" = u64, description = "Characters this generation was charged"),
                ("x-sample-rate" = u32, description = "Samples per second of the audio"))),
        (status = 201, description = "Synthesized and stored", body = Generation, headers(("Location" = String, description = "The generation's URL"), ("x-character-count" = u64, description = "Characters this generation was charged: the Unicode scalar values of the trimmed text"))),
        (status = 303, description = "A retry, with the same `Idempotency-Key`, of a streamed request: the generation it made (`idempotent-replayed: true`)",
            headers(("Location" = String, description = "The generation's URL"))),
        (status = 402, description = "`quota_exceeded`: the text needs more characters than the workspace has left this month (`characters_remaining` says how many); nothing was synthesized or charged", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "Needs org:generations:create", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, a voice this workspace cannot use, or a non-zero `pitch` the configured provider cannot produce", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "Too many syntheses in progress (see Retry-After)", body = ProblemDetails, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        (status = 502, description = "Synthesis or encoding failed before any audio was sent; recorded as a failed generation", body = ProblemDetails, content_type = "application/problem+json"),
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
    // Reserved (and committed) before synthesizing; given back if anything fails.
    let reservation = quota::reserve(&db, &plan, characters).await?;
    db.commit().await?;

    let job = Job {
        state: state.clone(),
        ctx,
        provider,
        voice,
        input,
        reservation,
        id: Uuid::now_v7(),
    };
    if job.input.stream {
        return stream(job, characters).await;
    }
    let created = job.run(None).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/v1/generations/{}", created.id)))
        .insert_header((CHARACTER_COUNT, characters))
        .json(Generation::from(created)))
}

/// The characters a generation was charged (`POST /v1/generations`).
pub const CHARACTER_COUNT: &str = "x-character-count";
/// The generation a streamed answer is storing.
pub const GENERATION_ID: &str = "x-generation-id";
/// Samples per second of a streamed answer.
pub const SAMPLE_RATE: &str = "x-sample-rate";

/// The streamed answer: waits for the first audio (so a failure before it is still a plain
/// 502 or 429), then sends each chunk as it is encoded. The job runs on its own task: a
/// client that goes away stops receiving, not the generation.
async fn stream(job: Job, characters: i64) -> Result<HttpResponse, ApiError> {
    let (id, format) = (job.id, job.input.encoding.format);
    let (audio, mut chunks) = mpsc::unbounded_channel();
    let (ended, answer_later) = oneshot::channel();
    let mut running = tokio::spawn(async move {
        let outcome = job.run(Some(audio)).await;
        // The kept answer of an idempotent request: the record, however it ended.
        let recorded = match &outcome {
            Ok(_) | Err(ApiError::BadGateway { .. }) => Some(id),
            Err(_) => None,
        };
        let _ = ended.send(recorded.map(|id| {
            let location = format!("/v1/generations/{id}");
            (
                StatusCode::SEE_OTHER,
                vec![("location".to_owned(), location)],
            )
        }));
        outcome.map(|_| ())
    });
    let first = tokio::select! {
        biased;
        first = chunks.recv() => first,
        outcome = &mut running => {
            return match outcome {
                Ok(Err(err)) => Err(err),
                _ => Err(ApiError::internal("a streamed generation ended without audio")),
            };
        }
    };
    let Some(first) = first else {
        return match running.await {
            Ok(Err(err)) => Err(err),
            _ => Err(ApiError::internal(
                "a streamed generation ended without audio",
            )),
        };
    };
    let (rate, first) = first;
    let rest = futures_util::stream::unfold(Some((chunks, running)), |state| async move {
        let (mut chunks, running) = state?;
        match chunks.recv().await {
            Some((_, chunk)) => Some((Ok(chunk), Some((chunks, running)))),
            // Every chunk is out: the job stored the generation or recorded its failure.
            None => match running.await {
                Ok(Ok(())) => None,
                _ => Some((Err(std::io::Error::other("synthesis failed")), None)),
            },
        }
    });
    let body =
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(first) }).chain(rest);
    let mut response = HttpResponse::Ok()
        .content_type(format.content_type())
        .insert_header((GENERATION_ID, id.to_string()))
        .insert_header((CHARACTER_COUNT, characters))
        .insert_header((SAMPLE_RATE, rate))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(body);
    response.extensions_mut().insert(AnswerLater(answer_later));
    Ok(response)
}

/// One generation to synthesize, encode, store and record, with the quota reserved for it.
struct Job {
    state: web::Data<AppState>,
    ctx: TenantContext,
    provider: Arc<dyn SpeechProvider>,
    voice: voice::Model,
    input: NewGeneration,
    reservation: quota::Reservation,
    id: Uuid,
}

/// An encoded chunk on its way to a streamed answer, with the audio's sample rate.
type Chunk = (u32, Bytes);

impl Job {
    /// Runs the job, sending each chunk to `audio` (if any) as it is encoded; the quota is
    /// given back if it fails.
    async fn run(
        self,
        audio: Option<mpsc::UnboundedSender<Chunk>>,
    ) -> Result<generation::Model, ApiError> {
        let (state, ctx, reservation) = (self.state.clone(), self.ctx.clone(), self.reservation);
        let outcome = self.synthesize_and_store(audio).await;
        if outcome.is_err() {
            quota::release(&state.tenants, &ctx, reservation).await;
        }
        outcome
    }

    /// Synthesizes and stores the audio and its row (or a failed row).
    async fn synthesize_and_store(
        self,
        audio: Option<mpsc::UnboundedSender<Chunk>>,
    ) -> Result<generation::Model, ApiError> {
        let Job {
            state,
            ctx,
            provider,
            voice,
            input,
            id,
            ..
        } = self;
        let speech = state.speech.clone();
        // Held until the audio is stored; the database is not held while synthesizing.
        let _permit = speech.limiter.acquire(&ctx.tenant_id).await?;
        let NewGeneration {
            text,
            speed,
            pitch,
            encoding,
            ..
        } = input;
        let request = SynthesisRequest {
            text: text.clone(),
            espeak_voice: voice.espeak_voice.clone(),
            remote_voice: voice.remote_voice.clone(),
            speed,
            pitch,
        };
        let mut synthesis = speech.start(provider.as_ref(), request, encoding);
        let outcome = async {
            if let Some(audio) = &audio {
                while let Some(chunk) = synthesis.next().await? {
                    // A listener that went away misses the rest; the generation goes on.
                    let _ = audio.send((synthesis.sample_rate().unwrap_or_default(), chunk));
                }
            }
            synthesis.finish().await
        }
        .await;

        let now = Utc::now();
        let mut row = generation::ActiveModel {
            id: Set(id),
            voice_id: Set(voice.id),
            text: Set(text),
            provider: Set(provider.name().to_owned()),
            format: Set(encoding.format.name().to_owned()),
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
                let db = ScopedDb::begin(&state.tenants, &ctx).await?;
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

        let key = AudioStorage::generation_key(&ctx.tenant_id, id, encoding.format.name())
            .map_err(ApiError::internal)?;
        row.status = Set(generation::STATUS_SUCCEEDED.to_owned());
        row.failure_reason = Set(None);
        row.audio_key = Set(Some(key.clone()));
        row.content_type = Set(Some(synthesized.format.content_type().to_owned()));
        row.audio_bytes = Set(Some(synthesized.bytes.len() as i64));
        row.duration_ms = Set(Some(synthesized.duration.as_millis() as i64));
        row.sample_rate = Set(Some(synthesized.sample_rate as i32));
        let record = async {
            let db = ScopedDb::begin(&state.tenants, &ctx).await?;
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
    let rows = ScopedDb::read_all(&state.tenants, &ctx, select).await?;
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
    rest::commit_deleted(db, "generation.deleted", current.id).await
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
