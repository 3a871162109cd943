//! `/v1/voices`: the shared system voices and a workspace's custom voices.
//!
//! System voices (`tenant_id` NULL) are listed for everyone and refuse every write with 403.
//! Custom voices are created from a multipart form with a reference sample, which is checked
//! by its content (format, size, duration, completeness) before anything is stored.

use actix_multipart::{Multipart, MultipartError};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, Select, Set};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::{
    entities::voice,
    error::{ApiError, FieldError, ProblemDetails},
    events::ResourceEvent,
    limits::quota,
    rest::{self, Page, PageRequest, Precondition, nullable},
    routes::audio,
    speech::{
        Speech,
        audio::{AudioInfo, inspect},
        storage::AudioStorage,
    },
    state::AppState,
    tenant::{TenantContext, permissions, scoped::ScopedDb},
    timestamp,
};

pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_DESCRIPTION_CHARS: usize = 1_000;
pub const MAX_QUERY_CHARS: usize = 200;
/// Largest text field of the multipart form.
const MAX_TEXT_FIELD_BYTES: usize = 16 * 1024;
/// Most parts a creation form may have (it needs six); bounds the work a hostile form causes.
const MAX_FORM_PARTS: usize = 16;

/// What a voice is for; filters the library.
pub const CATEGORIES: &[&str] = &[
    "general",
    "narration",
    "conversational",
    "news",
    "characters",
    "education",
];
pub const GENDERS: &[&str] = &["female", "male", "neutral"];
pub const VARIANTS: &[&str] = &["system", "custom"];

/// A string schema that admits exactly `values` (and null when `nullable`).
fn choice(values: &[&str], nullable: bool, description: &str) -> utoipa::openapi::Object {
    use utoipa::openapi::{ObjectBuilder, Type, schema::SchemaType};
    let mut allowed: Vec<serde_json::Value> = values.iter().map(|v| (*v).into()).collect();
    let types = if nullable {
        allowed.push(serde_json::Value::Null);
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::new(Type::String)
    };
    ObjectBuilder::new()
        .schema_type(types)
        .enum_values(Some(allowed))
        .description(Some(description))
        .build()
}

fn category_schema() -> utoipa::openapi::Object {
    choice(CATEGORIES, false, "What the voice is for.")
}

fn category_update_schema() -> utoipa::openapi::Object {
    choice(
        CATEGORIES,
        true,
        "What the voice is for; null leaves it unchanged.",
    )
}

fn gender_schema() -> utoipa::openapi::Object {
    choice(GENDERS, false, "The voice's gender.")
}

fn gender_update_schema() -> utoipa::openapi::Object {
    choice(GENDERS, true, "The voice's gender; null clears it.")
}

fn variant_schema() -> utoipa::openapi::Object {
    choice(
        VARIANTS,
        false,
        "`system` (shared, read-only) or `custom` (this workspace's); both when absent.",
    )
}

/// A voice's reference sample.
#[derive(Debug, Serialize, ToSchema)]
pub struct VoiceSample {
    /// The sample's real type, as found in its content (`audio/wav`, `audio/mpeg`, …).
    pub content_type: String,
    pub size_bytes: i64,
    pub duration_ms: i64,
    /// Streams the sample (supports `Range`).
    pub url: String,
}

/// A voice.
#[derive(Debug, Serialize, ToSchema)]
pub struct Voice {
    pub id: Uuid,
    /// `system` (shared, read-only) or `custom` (this workspace's).
    #[schema(example = "custom")]
    pub variant: String,
    pub name: String,
    pub description: Option<String>,
    /// One of general, narration, conversational, news, characters, education.
    pub category: String,
    /// BCP 47 language tag (`en-US`).
    pub language: String,
    /// female, male or neutral.
    pub gender: Option<String>,
    /// The reference sample (custom voices).
    pub sample: Option<VoiceSample>,
    /// Null for system voices.
    pub created_by_user_id: Option<String>,
    #[serde(serialize_with = "timestamp::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "timestamp::serialize")]
    pub updated_at: DateTime<Utc>,
}

impl From<voice::Model> for Voice {
    fn from(m: voice::Model) -> Self {
        let sample = match (&m.sample_key, &m.sample_content_type) {
            (Some(_), Some(content_type)) => Some(VoiceSample {
                content_type: content_type.clone(),
                size_bytes: m.sample_bytes.unwrap_or(0),
                duration_ms: m.sample_duration_ms.unwrap_or(0),
                url: format!("/v1/voices/{}/sample", m.id),
            }),
            _ => None,
        };
        Voice {
            id: m.id,
            variant: if m.is_system() { "system" } else { "custom" }.into(),
            name: m.name,
            description: m.description,
            category: m.category,
            language: m.language,
            gender: m.gender,
            sample,
            created_by_user_id: m.created_by_user_id,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// The multipart form that creates a custom voice (documentation of the form's fields; each
/// field at most once, no others).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Narrator", "description": "Warm and slow", "category": "narration", "language": "en-US", "gender": "female", "sample": "(a WAV, MP3, OGG, FLAC or WebM recording)"}))]
#[allow(dead_code)]
pub struct CreateVoiceForm {
    /// At most 100 characters, not blank; stored trimmed.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"[^\t\n\u000B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][\s\S]*$"
    )]
    name: String,
    /// At most 1 000 characters; stored trimmed, and blank means none.
    #[schema(required = false, max_length = 1000)]
    description: String,
    /// What the voice is for (default general).
    #[schema(required = false, schema_with = category_schema)]
    category: String,
    /// BCP 47 language tag (`en-US`, `de`, `zh-Hant-TW`).
    #[schema(pattern = r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8}){0,3}$")]
    language: String,
    #[schema(required = false, schema_with = gender_schema)]
    gender: String,
    /// The reference recording: WAV, MP3, OGG (Opus/Vorbis), FLAC or WebM, recognised by its
    /// content; at most 20 MiB and within the configured duration bounds by default.
    #[schema(value_type = String, format = Binary)]
    sample: Vec<u8>,
}

/// A partial update of a custom voice's details: absent fields stay; `null` clears
/// `description` and `gender`, and leaves `name`, `category` and `language` unchanged.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Narrator (slow)", "description": null, "gender": "neutral"}))]
pub struct UpdateVoice {
    /// At most 100 characters, not blank; stored trimmed.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"[^\t\n\u000B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][\s\S]*$"
    )]
    pub name: Option<String>,
    /// At most 1 000 characters; stored trimmed, and blank means none.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 1000)]
    pub description: Option<Option<String>>,
    #[schema(schema_with = category_update_schema)]
    pub category: Option<String>,
    /// BCP 47 language tag (`en-US`, `de`, `zh-Hant-TW`).
    #[schema(pattern = r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8}){0,3}$")]
    pub language: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = gender_update_schema)]
    pub gender: Option<Option<String>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListVoices {
    #[param(schema_with = variant_schema)]
    pub variant: Option<String>,
    /// A language tag; `en` also matches `en-US`, `en-GB`, ….
    #[param(pattern = r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8}){0,3}$")]
    pub language: Option<String>,
    #[param(schema_with = category_schema)]
    pub category: Option<String>,
    /// Case-insensitive match on the name.
    #[param(max_length = 200)]
    pub q: Option<String>,
    /// Page size (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^([A-Za-z0-9_-]{21}[AQgw])?$")]
    pub cursor: Option<String>,
}

impl ListVoices {
    /// Checks the filters; the query they select, newest first from the page's cursor.
    fn validate(&self) -> Result<(PageRequest, Select<voice::Entity>), ApiError> {
        let mut errors = vec![];
        let page = PageRequest::parse(self.limit, self.cursor.as_deref(), &mut errors);
        if let Some(variant) = &self.variant {
            rest::check_choice("variant", variant, VARIANTS, &mut errors);
        }
        if let Some(category) = &self.category {
            rest::check_choice("category", category, CATEGORIES, &mut errors);
        }
        let language = self
            .language
            .as_deref()
            .map(|l| check_language(l, &mut errors));
        if let Some(q) = &self.q {
            rest::check_max_chars("q", q, MAX_QUERY_CHARS, &mut errors);
        }
        rest::reject_invalid(errors)?;

        let mut select = page.select(voice::Entity::find(), voice::Column::Id);
        match self.variant.as_deref() {
            Some("system") => select = select.filter(voice::Column::TenantId.is_null()),
            Some("custom") => select = select.filter(voice::Column::TenantId.is_not_null()),
            _ => {}
        }
        if let Some(category) = &self.category {
            select = select.filter(voice::Column::Category.eq(category.as_str()));
        }
        if let Some(language) = language {
            select = select.filter(
                Condition::any()
                    .add(voice::Column::Language.eq(language.as_str()))
                    .add(voice::Column::Language.like(format!("{language}-%"))),
            );
        }
        if let Some(q) = self.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            select = select.filter(rest::contains_ignoring_case(voice::Column::Name, q));
        }
        Ok((page, select))
    }
}

/// A BCP 47 tag in its usual case (`en-US`, `zh-Hant-TW`, `es-419`), or None if it is not one:
/// a 2–3 letter language and at most three subtags (the contract's `pattern` for it is
/// [`rest::LANGUAGE_PATTERN`]).
pub fn normalize_language(tag: &str) -> Option<String> {
    if tag.split(['-', '_']).count() > 4 {
        return None;
    }
    let mut parts = tag.split(['-', '_']);
    let primary = parts.next()?;
    if !(2..=3).contains(&primary.len()) || !primary.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let mut out = primary.to_ascii_lowercase();
    for part in parts {
        let alpha = part.bytes().all(|b| b.is_ascii_alphabetic());
        let normalized = match part.len() {
            2 if alpha => part.to_ascii_uppercase(),
            3 if part.bytes().all(|b| b.is_ascii_digit()) => part.to_owned(),
            4 if alpha => {
                let lower = part.to_ascii_lowercase();
                lower[..1].to_ascii_uppercase() + &lower[1..]
            }
            1..=8 if part.bytes().all(|b| b.is_ascii_alphanumeric()) => part.to_ascii_lowercase(),
            _ => return None,
        };
        out.push('-');
        out.push_str(&normalized);
    }
    Some(out)
}

/// The espeak-ng voice that speaks for a custom voice: its language (regional where espeak
/// has the region) with a male or female variant.
pub fn espeak_voice_for(language: &str, gender: Option<&str>) -> String {
    const REGIONAL: &[&str] = &[
        "en-us", "en-gb", "en-029", "es-419", "pt-br", "fr-be", "fr-ch",
    ];
    let lower = language.to_ascii_lowercase();
    let primary = lower.split('-').next().unwrap_or("en");
    let base = if REGIONAL.contains(&lower.as_str()) {
        lower.clone()
    } else if primary == "zh" {
        "cmn".to_owned()
    } else {
        primary.to_owned()
    };
    match gender {
        Some("female") => format!("{base}+f3"),
        Some("male") => format!("{base}+m3"),
        _ => base,
    }
}

fn check_language(value: &str, errors: &mut Vec<FieldError>) -> String {
    normalize_language(value).unwrap_or_else(|| {
        errors.push(FieldError::new(
            "language",
            "must be a BCP 47 language tag such as en-US or de",
        ));
        String::new()
    })
}

impl UpdateVoice {
    /// Checks the fields; returns them with the trimmed name and normalised language.
    #[allow(clippy::type_complexity)]
    fn validate(self) -> Result<(UpdateVoice, Option<String>, Option<String>), Vec<FieldError>> {
        let mut errors = vec![];
        let name = self
            .name
            .as_deref()
            .map(|n| rest::trimmed("name", n, MAX_NAME_CHARS, &mut errors));
        if let Some(Some(description)) = &self.description {
            rest::check_max_chars(
                "description",
                description,
                MAX_DESCRIPTION_CHARS,
                &mut errors,
            );
        }
        if let Some(category) = &self.category {
            rest::check_choice("category", category, CATEGORIES, &mut errors);
        }
        let language = self
            .language
            .as_deref()
            .map(|l| check_language(l, &mut errors));
        if let Some(Some(gender)) = &self.gender {
            rest::check_choice("gender", gender, GENDERS, &mut errors);
        }
        if errors.is_empty() {
            Ok((self, name, language))
        } else {
            Err(errors)
        }
    }
}

/// A custom voice of this workspace for a conditional write: 404 when there is none, 403 for
/// a system voice, 412 when `If-Match` names another version.
async fn custom_voice(
    db: &ScopedDb,
    id: Uuid,
    precondition: Precondition,
) -> Result<voice::Model, ApiError> {
    let found = db
        .get::<voice::Entity>(id)
        .await?
        .ok_or(ApiError::NotFound("voice"))?;
    if found.is_system() {
        return Err(read_only_system_voice());
    }
    precondition.check(found.version)?;
    Ok(found)
}

/// The routes of this resource.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/voices")
            .get(list)
            .route(crate::idempotency::post(create)),
    )
    .service(
        web::resource("/v1/voices/{id}")
            .get(get)
            .patch(update)
            .delete(delete),
    )
    .service(web::resource("/v1/voices/{id}/sample").get(sample));
}

#[derive(OpenApi)]
#[openapi(
    paths(list, create, get, update, delete, sample),
    components(schemas(Voice, VoiceSample, CreateVoiceForm, UpdateVoice)),
    tags((name = "voices", description = "System voices shared by all workspaces, and a workspace's custom voices with their samples")),
)]
pub struct VoicesApi;

fn read_only_system_voice() -> ApiError {
    ApiError::Forbidden {
        permission: "none (system voices are read-only)".into(),
        detail: "system voices are shared by every workspace and cannot be changed or deleted"
            .into(),
    }
}

fn multipart_error(err: MultipartError) -> ApiError {
    match err {
        MultipartError::ContentTypeMissing
        | MultipartError::ContentTypeParse
        | MultipartError::ContentTypeIncompatible
        | MultipartError::BoundaryMissing => {
            ApiError::UnsupportedMediaType("send the voice as multipart/form-data".into())
        }
        other => ApiError::bad_request("malformed_multipart", format!("malformed form: {other}")),
    }
}

/// The fields of the creation form as sent.
#[derive(Default)]
struct VoiceForm {
    text: std::collections::HashMap<String, String>,
    sample: Option<Bytes>,
    sample_too_large: bool,
}

/// A custom voice as validated for creation.
struct NewVoice {
    name: String,
    description: Option<String>,
    category: String,
    language: String,
    gender: Option<String>,
    sample: Bytes,
    info: AudioInfo,
}

impl VoiceForm {
    /// Checks every field and the sample (by its content: format, size, duration).
    fn validate(self, limits: &Speech) -> Result<NewVoice, Vec<FieldError>> {
        let text = |name: &str| self.text.get(name).map(String::as_str);

        let mut errors = vec![];
        let name = match text("name") {
            Some(name) => rest::trimmed("name", name, MAX_NAME_CHARS, &mut errors),
            None => {
                errors.push(FieldError::new("name", "is required"));
                String::new()
            }
        };
        if let Some(description) = text("description") {
            rest::check_max_chars(
                "description",
                description,
                MAX_DESCRIPTION_CHARS,
                &mut errors,
            );
        }
        let description = text("description")
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(str::to_owned);
        let category = text("category").unwrap_or("general").to_owned();
        rest::check_choice("category", &category, CATEGORIES, &mut errors);
        let language = match text("language") {
            Some(language) => check_language(language, &mut errors),
            None => {
                errors.push(FieldError::new("language", "is required"));
                String::new()
            }
        };
        let gender = text("gender").map(str::to_owned);
        if let Some(gender) = &gender {
            rest::check_choice("gender", gender, GENDERS, &mut errors);
        }

        let mut sample_info = None;
        if self.sample_too_large {
            errors.push(FieldError::new(
                "sample",
                format!("is larger than {} bytes", limits.sample_max_bytes),
            ));
        } else {
            match &self.sample {
                None => errors.push(FieldError::new("sample", "is required (an audio file)")),
                Some(bytes) if bytes.is_empty() => {
                    errors.push(FieldError::new("sample", "is empty"))
                }
                Some(bytes) => match inspect(bytes) {
                    Err(why) => errors.push(FieldError::new("sample", why.0)),
                    Ok(info) if info.duration < limits.sample_min => errors.push(FieldError::new(
                        "sample",
                        format!(
                            "is {:.1} s long; at least {} s is needed",
                            info.duration.as_secs_f64(),
                            limits.sample_min.as_secs()
                        ),
                    )),
                    Ok(info) if info.duration > limits.sample_max => errors.push(FieldError::new(
                        "sample",
                        format!(
                            "is {:.1} s long; at most {} s is accepted",
                            info.duration.as_secs_f64(),
                            limits.sample_max.as_secs()
                        ),
                    )),
                    Ok(info) => sample_info = Some(info),
                },
            }
        }
        match (sample_info, self.sample) {
            (Some(info), Some(sample)) if errors.is_empty() => Ok(NewVoice {
                name,
                description,
                category,
                language,
                gender,
                sample,
                info,
            }),
            _ => Err(errors),
        }
    }
}

/// Reads the form, keeping at most `max_sample` bytes of the sample. A larger sample is
/// drained (up to a bound) so the client sees the 422 instead of a reset connection.
async fn read_form(mut form: Multipart, max_sample: usize) -> Result<VoiceForm, ApiError> {
    let drain_limit = max_sample.saturating_mul(2).saturating_add(1024 * 1024);
    let mut out = VoiceForm::default();
    let mut errors = vec![];
    let mut parts = 0usize;
    while let Some(mut field) = form.try_next().await.map_err(multipart_error)? {
        parts += 1;
        if parts > MAX_FORM_PARTS {
            return Err(ApiError::field(
                "form",
                format!("has more than {MAX_FORM_PARTS} parts"),
            ));
        }
        let name = field.name().unwrap_or_default().to_owned();
        let limit = if name == "sample" {
            max_sample
        } else {
            MAX_TEXT_FIELD_BYTES
        };
        let mut buffer = BytesMut::new();
        let mut seen = 0usize;
        while let Some(chunk) = field.try_next().await.map_err(multipart_error)? {
            seen += chunk.len();
            if seen <= limit {
                buffer.extend_from_slice(&chunk);
            } else if seen > drain_limit {
                return Err(ApiError::PayloadTooLarge { limit: max_sample });
            }
        }
        match name.as_str() {
            "sample" if seen > limit => out.sample_too_large = true,
            "sample" => out.sample = Some(buffer.freeze()),
            "name" | "description" | "category" | "language" | "gender" => {
                if seen > limit {
                    errors.push(FieldError::new(&name, "is too long"));
                    continue;
                }
                match String::from_utf8(buffer.to_vec()) {
                    // JSON bodies and queries are checked for NUL by `http::guard_input`; a
                    // form's text fields are checked here, where they are read.
                    Ok(text) if text.contains('\0') => errors.push(FieldError::new(
                        &name,
                        "must not contain the NUL character (U+0000)",
                    )),
                    Ok(text) => {
                        out.text.insert(name, text);
                    }
                    Err(_) => errors.push(FieldError::new(&name, "must be UTF-8 text")),
                }
            }
            other => errors.push(FieldError::new(
                if other.is_empty() { "form" } else { other },
                "is not a field of this form (expected name, description, category, language, gender, sample)",
            )),
        }
    }
    rest::reject_invalid(errors)?;
    Ok(out)
}

/// Create a custom voice from a reference sample.
#[utoipa::path(
    post, path = "/v1/voices", tag = "voices", operation_id = "createVoice",
    security(("bearer" = [])),
    request_body(content = CreateVoiceForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Created", body = Voice, headers(
            ("ETag" = String, description = "The voice's version; send it in If-Match"),
            ("Location" = String, description = "The voice's URL"))),
        (status = 400, description = "Malformed form", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 402, description = "`plan_limit_reached`: the workspace has as many custom voices as its plan allows", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "Needs org:voices:write", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "Far larger than the sample limit", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "Not multipart/form-data", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or a sample that is not accepted audio (format, size, duration, truncated)", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    ctx: TenantContext,
    form: Multipart,
) -> Result<HttpResponse, ApiError> {
    ctx.require(permissions::VOICES_WRITE)?;
    let speech = &state.speech;
    // The plan's allowance, before the upload is read (checked again, under a lock, when
    // the voice is recorded).
    let plan = state.limits.plan_for(&ctx).clone();
    let db = ScopedDb::begin(&state.tenants, &ctx).await?;
    let have = quota::custom_voices(&db).await?;
    db.finish_read();
    if have >= plan.max_custom_voices {
        return Err(ApiError::PlanLimitReached(format!(
            "the {} plan allows {} custom voices and this workspace has {have}; delete one or change plans",
            plan.name, plan.max_custom_voices
        )));
    }
    let form = read_form(form, speech.sample_max_bytes).await?;
    let input = form.validate(speech)?;

    let NewVoice {
        name,
        description,
        category,
        language,
        gender,
        sample,
        info,
    } = input;
    let id = Uuid::now_v7();
    let key = AudioStorage::voice_sample_key(&ctx.tenant_id, id)?;
    let size = sample.len() as i64;

    let now = Utc::now();
    let row = voice::ActiveModel {
        id: Set(id),
        name: Set(name),
        description: Set(description),
        category: Set(category),
        espeak_voice: Set(espeak_voice_for(&language, gender.as_deref())),
        language: Set(language),
        gender: Set(gender),
        remote_voice: Set(None),
        sample_key: Set(Some(key.clone())),
        sample_content_type: Set(Some(info.format.content_type().to_owned())),
        sample_bytes: Set(Some(size)),
        sample_duration_ms: Set(Some(info.duration.as_millis() as i64)),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    let record = async {
        let db = ScopedDb::begin(&state.tenants, &ctx).await?;
        quota::check_custom_voice_allowance(&db, &plan).await?;
        let created = db.insert(row).await?;
        let body = Voice::from(created.clone());
        db.publish(ResourceEvent::changed(
            "voice.created",
            created.id,
            created.version,
            &body,
        ))
        .await?;
        db.commit().await?;
        Ok::<_, ApiError>(created)
    };
    let created = speech.storage.put_then(&key, sample, record).await?;
    Ok(rest::created(
        format!("/v1/voices/{}", created.id),
        created.version,
        Voice::from(created),
    ))
}
/// List the system voices and this workspace's custom voices, newest first (custom voices
/// come before the system library).
#[utoipa::path(
    get, path = "/v1/voices", tag = "voices", operation_id = "listVoices",
    security(("bearer" = [])),
    params(ListVoices, ("If-None-Match" = Option<String>, Header, description = "ETag of a page read earlier; 304 while that page is unchanged")),
    responses(
        (status = 200, description = "A page of voices", body = Page<Voice>, headers(("ETag" = String, description = "Weak validator of this page; send it in If-None-Match"))),
        (status = 403, description = "Needs org:voices:read", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: TenantContext,
    query: web::Query<ListVoices>,
) -> Result<HttpResponse, ApiError> {
    ctx.require(permissions::VOICES_READ)?;
    let (page, select) = query.validate()?;
    let rows = ScopedDb::read_all(&state.tenants, &ctx, select).await?;
    rest::page_response(&req, &page.page(rows, |m| m.id, Voice::from))
}

/// Get a voice (a system voice or one of this workspace's).
#[utoipa::path(
    get, path = "/v1/voices/{id}", tag = "voices", operation_id = "getVoice",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Voice id"),
        ("If-None-Match" = Option<String>, Header, description = "ETag from an earlier read; 304 while unchanged"),
    ),
    responses(
        (status = 200, description = "The voice", body = Voice, headers(("ETag" = String, description = "The voice's version; send it in If-Match"))),
        (status = 403, description = "Needs org:voices:read", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: TenantContext,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    ctx.require(permissions::VOICES_READ)?;
    let found = rest::read_one::<voice::Entity>(&state.tenants, &ctx, *id).await?;
    Ok(rest::read_response(&req, found.version, Voice::from(found)))
}

/// Update a custom voice's details (the sample stays; create a new voice for a new sample).
#[utoipa::path(
    patch, path = "/v1/voices/{id}", tag = "voices", operation_id = "updateVoice",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Voice id"),
        ("If-Match" = Option<String>, Header, description = "ETag from a read; 412 when the voice changed since"),
    ),
    request_body = UpdateVoice,
    responses(
        (status = 200, description = "Updated", body = Voice, headers(("ETag" = String, description = "The voice's new version"))),
        (status = 403, description = "Needs org:voices:write; system voices are read-only", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: TenantContext,
    id: web::Path<Uuid>,
    body: web::Json<UpdateVoice>,
) -> Result<HttpResponse, ApiError> {
    ctx.require(permissions::VOICES_WRITE)?;
    let precondition = Precondition::from_request(&req);
    let (input, name, language) = body.into_inner().validate()?;

    let db = ScopedDb::begin(&state.tenants, &ctx).await?;
    let current = custom_voice(&db, *id, precondition).await?;
    let mut changes = voice::ActiveModel {
        id: Set(current.id),
        version: Set(current.version + 1),
        updated_at: Set(Utc::now()),
        ..Default::default()
    };
    if let Some(name) = name {
        changes.name = Set(name);
    }
    if let Some(description) = input.description {
        changes.description = Set(description
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty()));
    }
    if let Some(category) = input.category {
        changes.category = Set(category);
    }
    let new_language = language.unwrap_or_else(|| current.language.clone());
    let new_gender = input
        .gender
        .clone()
        .unwrap_or_else(|| current.gender.clone());
    changes.espeak_voice = Set(espeak_voice_for(&new_language, new_gender.as_deref()));
    changes.language = Set(new_language);
    changes.gender = Set(new_gender);
    let updated = rest::update_at(&db, changes, current.version).await?;
    rest::commit_updated(
        db,
        "voice.updated",
        updated.id,
        updated.version,
        Voice::from(updated),
    )
    .await
}

/// Delete a custom voice and its stored sample. Generations made with it keep their audio.
#[utoipa::path(
    delete, path = "/v1/voices/{id}", tag = "voices", operation_id = "deleteVoice",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Voice id"),
        ("If-Match" = Option<String>, Header, description = "ETag from a read; 412 when the voice changed since"),
    ),
    responses(
        (status = 204, description = "Deleted, with its sample"),
        (status = 403, description = "Needs org:voices:delete; system voices are read-only", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: TenantContext,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    ctx.require(permissions::VOICES_DELETE)?;
    let precondition = Precondition::from_request(&req);
    let db = ScopedDb::begin(&state.tenants, &ctx).await?;
    let current = custom_voice(&db, *id, precondition).await?;
    // The sample goes first: a failure leaves the voice in place, and the delete can be retried.
    if let Some(key) = &current.sample_key {
        state.speech.storage.delete(key).await?;
    }
    rest::delete_at::<voice::Entity>(&db, current.id, current.version).await?;
    rest::commit_deleted(db, "voice.deleted", current.id).await
}

/// Stream a custom voice's reference sample (`Range` supported).
#[utoipa::path(
    get, path = "/v1/voices/{id}/sample", tag = "voices", operation_id = "getVoiceSample",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Voice id"),
        ("Range" = Option<String>, Header, description = "`bytes=start-end`, `bytes=start-` or `bytes=-suffix`"),
    ),
    responses(
        (status = 200, description = "The whole sample", content_type = "audio/*", body = Vec<u8>,
            headers(("Content-Length" = u64), ("Accept-Ranges" = String, description = "`bytes`"),
                ("Content-Disposition" = String, description = "`inline` with a file name"),
                ("Cache-Control" = String, description = "`private, max-age=3600`"))),
        (status = 206, description = "The requested range", content_type = "audio/*", body = Vec<u8>,
            headers(("Content-Range" = String, description = "`bytes start-end/size`"), ("Content-Length" = u64),
                ("Accept-Ranges" = String, description = "`bytes`"),
                ("Content-Disposition" = String, description = "`inline` with a file name"),
                ("Cache-Control" = String, description = "`private, max-age=3600`"))),
        (status = 403, description = "Needs org:voices:read", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such voice, or it has no sample", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 416, description = "The range is outside the sample", body = ProblemDetails, content_type = "application/problem+json",
            headers(("Content-Range" = String, description = "`bytes */size`"))),
    )
)]
pub async fn sample(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: TenantContext,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    ctx.require(permissions::VOICES_READ)?;
    let found = rest::read_one::<voice::Entity>(&state.tenants, &ctx, *id).await?;
    let (Some(key), Some(content_type)) = (&found.sample_key, &found.sample_content_type) else {
        return Err(ApiError::NotFound("voice sample"));
    };
    audio::serve(
        &req,
        &state.speech.storage,
        key,
        content_type,
        &format!("{}-sample", found.id),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_tags_are_normalised() {
        assert_eq!(normalize_language("en-us").as_deref(), Some("en-US"));
        assert_eq!(normalize_language("DE").as_deref(), Some("de"));
        assert_eq!(
            normalize_language("zh-hant-tw").as_deref(),
            Some("zh-Hant-TW")
        );
        assert_eq!(normalize_language("es-419").as_deref(), Some("es-419"));
        assert_eq!(normalize_language("english"), None);
        assert_eq!(normalize_language("en-US; rm -rf"), None);
        assert_eq!(
            normalize_language(" en-US"),
            None,
            "exact, as the pattern says"
        );
        assert_eq!(
            normalize_language("sl-latn-it-nedis").as_deref(),
            Some("sl-Latn-IT-nedis")
        );
        assert_eq!(
            normalize_language("en-a-b-c-d"),
            None,
            "at most three subtags"
        );
    }

    #[test]
    fn espeak_voices_follow_language_and_gender() {
        assert_eq!(espeak_voice_for("en-US", Some("female")), "en-us+f3");
        assert_eq!(espeak_voice_for("de-DE", Some("male")), "de+m3");
        assert_eq!(espeak_voice_for("fr", None), "fr");
    }
}
