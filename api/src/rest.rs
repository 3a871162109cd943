//! Conventions every resource shares: cursor pages, ETags with `If-Match`/`If-None-Match`, the
//! versioned write (read → 404 → `If-Match` → write at that version → 412), PATCH's difference
//! between an absent field and an explicit `null`, and field checks.

use actix_web::{HttpRequest, HttpResponse, http::header, mime};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect, Select,
    sea_query::{Expr, ExprTrait, Func, LikeExpr},
};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    entities::{TenantOwned, Versioned},
    error::{ApiError, FieldError},
    events::ResourceEvent,
    tenant::{ScopedDb, TenantContext, TenantRegistry},
};

pub const DEFAULT_PAGE_SIZE: u64 = 50;

/// The `pattern` of a text that must not be blank: it contains a character that `str::trim`
/// keeps (Unicode `White_Space` spelled out, so every regex dialect, ECMA-262 and Python's
/// included, reads it the same way). The trailing `[\s\S]*$` changes nothing for a search,
/// but keeps schemathesis 4 from folding `minLength`/`maxLength` into a bare character class
/// as if the pattern were anchored (which would forbid every space). `#[schema(pattern = …)]`
/// takes only a literal: the schemas repeat this text, and a test checks that they do.
pub const NOT_BLANK_PATTERN: &str =
    r"[^\t\n\u000B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][\s\S]*$";

/// The `pattern` the published contract states for a not-blank text: no NUL anywhere (see
/// [`NO_NUL_PATTERN`]) and at least one character `str::trim` keeps, the same class as
/// [`NOT_BLANK_PATTERN`], anchored. `openapi::TextWithoutNul` puts it in place of that one.
pub const NOT_BLANK_TEXT_PATTERN: &str = r"^[^\u0000]*[^\t\n\u000B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000\u0000][^\u0000]*$";

/// The `pattern` of any other text the API takes: no U+0000, which PostgreSQL cannot store
/// (`http::guard_input` answers 422 for it).
pub const NO_NUL_PATTERN: &str = r"^[^\u0000]*$";

/// The `pattern` of a BCP 47 language tag as [`crate::routes::voices::normalize_language`]
/// accepts it: a 2–3 letter language and at most three subtags (30 characters at most, so no
/// `maxLength`).
pub const LANGUAGE_PATTERN: &str = r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8}){0,3}$";
pub const MAX_PAGE_SIZE: u64 = 200;

/// One page of a list, newest first. Pass `next_cursor` back as `cursor` for the next page;
/// it is null on the last page.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

/// The query of a list without filters of its own.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListPage {
    /// Page size (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^([A-Za-z0-9_-]{21}[AQgw])?$")]
    pub cursor: Option<String>,
}

impl ListPage {
    pub fn validate(&self) -> Result<PageRequest, ApiError> {
        let mut errors = vec![];
        let page = PageRequest::parse(self.limit, self.cursor.as_deref(), &mut errors);
        reject_invalid(errors)?;
        Ok(page)
    }
}

/// Where a list resumes: rows with ids below the cursor's. Ids are UUIDv7, so id order is
/// creation order and rows inserted while a client pages never shift later pages.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub limit: u64,
    pub after: Option<Uuid>,
}

impl PageRequest {
    /// Validates `limit` (1..=200, default 50) and decodes `cursor`.
    pub fn parse(
        limit: Option<u64>,
        cursor: Option<&str>,
        errors: &mut Vec<FieldError>,
    ) -> PageRequest {
        let limit = match limit {
            None => DEFAULT_PAGE_SIZE,
            Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
            Some(_) => {
                errors.push(FieldError::new(
                    "limit",
                    format!("must be between 1 and {MAX_PAGE_SIZE}"),
                ));
                DEFAULT_PAGE_SIZE
            }
        };
        let after = match cursor.filter(|c| !c.is_empty()) {
            None => None,
            Some(text) => match decode_cursor(text) {
                Some(id) => Some(id),
                None => {
                    errors.push(FieldError::new("cursor", "is not a cursor this API issued"));
                    None
                }
            },
        };
        PageRequest { limit, after }
    }

    /// `select` ordered newest first by `id`, from the cursor on, one row more than the page
    /// (to know whether another page follows).
    pub fn select<E: EntityTrait>(&self, select: Select<E>, id: E::Column) -> Select<E> {
        let select = select.order_by_desc(id).limit(self.fetch());
        match self.after {
            Some(after) => select.filter(id.lt(after)),
            None => select,
        }
    }

    /// Rows to fetch: one more than the page, to know whether another page follows.
    pub fn fetch(&self) -> u64 {
        self.limit + 1
    }

    /// Cuts the fetched rows to a page and computes the next cursor.
    pub fn page<M, T: ToSchema>(
        &self,
        mut rows: Vec<M>,
        id: impl Fn(&M) -> Uuid,
        view: impl Fn(M) -> T,
    ) -> Page<T> {
        let more = rows.len() as u64 > self.limit;
        rows.truncate(self.limit as usize);
        let next_cursor = if more {
            rows.last().map(|row| encode_cursor(id(row)))
        } else {
            None
        };
        Page {
            data: rows.into_iter().map(view).collect(),
            next_cursor,
        }
    }
}

fn encode_cursor(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

fn decode_cursor(text: &str) -> Option<Uuid> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    Uuid::from_slice(&bytes).ok()
}

/// The ETag of a row at `version`.
pub fn etag(version: i32) -> String {
    format!("\"{version}\"")
}

/// What `If-Match` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// No `If-Match`: no precondition.
    None,
    /// `If-Match: *`: the resource must exist.
    Exists,
    /// The row must still be at one of these versions (only the first is kept: clients send one).
    Version(i32),
    /// An ETag this API never issued: it cannot match.
    Unmatchable,
}

impl Precondition {
    pub fn from_request(req: &HttpRequest) -> Precondition {
        let Some(value) = req.headers().get(header::IF_MATCH) else {
            return Precondition::None;
        };
        let Ok(text) = value.to_str() else {
            return Precondition::Unmatchable;
        };
        let text = text.trim();
        if text == "*" {
            return Precondition::Exists;
        }
        text.split(',')
            .map(|tag| tag.trim().trim_start_matches("W/").trim_matches('"'))
            .find_map(|tag| tag.parse::<i32>().ok())
            .map(Precondition::Version)
            .unwrap_or(Precondition::Unmatchable)
    }

    /// 412 unless a row at `version` satisfies the precondition.
    pub fn check(self, version: i32) -> Result<(), ApiError> {
        match self {
            Precondition::None | Precondition::Exists => Ok(()),
            Precondition::Version(expected) if expected == version => Ok(()),
            _ => Err(ApiError::PreconditionFailed),
        }
    }
}

/// Sets the `ETag` of a row at `version` on a response.
pub fn with_etag(response: HttpResponse, version: i32) -> HttpResponse {
    set_etag(response, &etag(version))
}

fn set_etag(mut response: HttpResponse, tag: &str) -> HttpResponse {
    if let Ok(value) = header::HeaderValue::from_str(tag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// 201 Created for a new versioned row: its `Location` and `ETag`, and the row as the body.
pub fn created(location: String, version: i32, body: impl Serialize) -> HttpResponse {
    let response = HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(body);
    with_etag(response, version)
}

/// The end of a create: logs `event` with the new row as the API shows it, commits, and
/// answers 201 with the row's `Location` (`{collection}/{id}`) and `ETag`.
pub async fn commit_created(
    db: ScopedDb,
    event: &'static str,
    collection: &str,
    id: Uuid,
    version: i32,
    body: impl Serialize,
) -> Result<HttpResponse, ApiError> {
    let location = format!("{collection}/{id}");
    commit_changed(db, ResourceEvent::changed(event, id, version, &body)).await?;
    Ok(created(location, version, body))
}

/// The end of an update: logs `event` with the row as the API shows it, commits, and answers
/// 200 with the row and its new `ETag`.
pub async fn commit_updated(
    db: ScopedDb,
    event: &'static str,
    id: Uuid,
    version: i32,
    body: impl Serialize,
) -> Result<HttpResponse, ApiError> {
    commit_changed(db, ResourceEvent::changed(event, id, version, &body)).await?;
    Ok(with_etag(HttpResponse::Ok().json(body), version))
}

async fn commit_changed(db: ScopedDb, event: ResourceEvent) -> Result<(), ApiError> {
    db.publish(event).await?;
    db.commit().await
}

/// The end of a delete: logs `event`, commits, and answers 204.
pub async fn commit_deleted(
    db: ScopedDb,
    event: &'static str,
    id: Uuid,
) -> Result<HttpResponse, ApiError> {
    commit_changed(db, ResourceEvent::deleted(event, id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The answer to a read of a versioned row: 304 when `If-None-Match` already names this
/// version, else 200 with the body; both carry the `ETag`.
pub fn read_response(req: &HttpRequest, version: i32, body: impl Serialize) -> HttpResponse {
    let response = if not_modified(req, &etag(version)) {
        HttpResponse::NotModified().finish()
    } else {
        HttpResponse::Ok().json(body)
    };
    with_etag(response, version)
}

/// The answer to a list read. A page has no version of its own, so its `ETag` is a weak one
/// derived from the serialized page: a client polling a list sends it back in `If-None-Match`
/// and gets a bodiless 304 until a row on the page (or the page's extent) changes.
pub fn page_response<T: ToSchema + Serialize>(
    req: &HttpRequest,
    page: &Page<T>,
) -> Result<HttpResponse, ApiError> {
    // Sized for the page up front (a task row is about 300 bytes): growing from empty
    // copied the body over and over.
    let mut body = Vec::with_capacity(512 + page.data.len() * 384);
    serde_json::to_writer(&mut body, page).map_err(|err| ApiError::Internal(err.to_string()))?;
    let tag = format!("W/\"{:032x}\"", xxhash_rust::xxh3::xxh3_128(&body));
    let response = if not_modified(req, &tag) {
        HttpResponse::NotModified().finish()
    } else {
        HttpResponse::Ok()
            .content_type(mime::APPLICATION_JSON)
            .body(body)
    };
    Ok(set_etag(response, &tag))
}

/// True when `If-None-Match` names `current` or is `*` (answer 304). The comparison is weak
/// (RFC 9110 §13.1.2): a `W/` prefix on either side is ignored.
pub fn not_modified(req: &HttpRequest, current: &str) -> bool {
    let current = current.trim_start_matches("W/");
    req.headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == "*" || tag.trim().trim_start_matches("W/") == current)
        })
}

/// For PATCH fields that may be cleared: absent → `None`, `null` → `Some(None)`,
/// a value → `Some(Some(value))`. Use with `#[serde(default, deserialize_with = "nullable")]`.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Checks a required text: at most `max_chars` characters, not blank (see
/// [`NOT_BLANK_PATTERN`]). Returns it trimmed.
pub fn trimmed(field: &str, value: &str, max_chars: usize, errors: &mut Vec<FieldError>) -> String {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        errors.push(FieldError::new(field, "must not be empty"));
    } else if value.chars().count() > max_chars {
        errors.push(FieldError::new(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    trimmed.to_owned()
}

/// `Err(422)` listing every field error, if there are any.
pub fn reject_invalid(errors: Vec<FieldError>) -> Result<(), ApiError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// Checks a Clerk user id (`user_…`) as sent by a client.
pub fn check_user_id(field: &str, value: &str, errors: &mut Vec<FieldError>) {
    let valid = value.starts_with("user_")
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid {
        errors.push(FieldError::new(field, "must be a Clerk user id (user_…)"));
    }
}

/// One row this workspace may read, in a read-only transaction of its own: 404 when there is
/// none.
pub async fn read_one<E>(
    tenants: &TenantRegistry,
    ctx: &TenantContext,
    id: Uuid,
) -> Result<E::Model, ApiError>
where
    E: TenantOwned,
    <E::PrimaryKey as sea_orm::PrimaryKeyTrait>::ValueType: From<Uuid>,
{
    let found = ScopedDb::read_one::<E>(tenants, ctx, id.into()).await?;
    found.ok_or(ApiError::NotFound(E::NAME))
}

/// The row a conditional write targets: 404 when this workspace has no such row, 412 when
/// `If-Match` names another version.
pub async fn current<E>(
    db: &ScopedDb,
    id: Uuid,
    precondition: Precondition,
) -> Result<E::Model, ApiError>
where
    E: Versioned,
    <E::PrimaryKey as sea_orm::PrimaryKeyTrait>::ValueType: From<Uuid>,
{
    let row = db
        .get::<E>(id.into())
        .await?
        .ok_or(ApiError::NotFound(E::NAME))?;
    precondition.check(E::version(&row))?;
    Ok(row)
}

/// Writes `changes` to a row read at `version` (the caller bumps `version` in `changes`): 412
/// when another write came in between.
pub async fn update_at<E, A>(db: &ScopedDb, changes: A, version: i32) -> Result<E::Model, ApiError>
where
    E: Versioned,
    A: ActiveModelTrait<Entity = E> + Send,
    E::Model: IntoActiveModel<A>,
{
    db.update(changes, Condition::all().add(E::VERSION.eq(version)))
        .await?
        .ok_or(ApiError::PreconditionFailed)
}

/// Deletes a row read at `version`: 412 when another write came in between.
pub async fn delete_at<E: Versioned>(
    db: &ScopedDb,
    id: Uuid,
    version: i32,
) -> Result<(), ApiError> {
    let delete = E::delete_many()
        .filter(E::ID.eq(id))
        .filter(E::VERSION.eq(version));
    match db.delete(delete).await? {
        0 => Err(ApiError::PreconditionFailed),
        _ => Ok(()),
    }
}

/// Deletes a row as `If-Match` allows: without a version to compare, in one statement (404
/// when nothing went); with one, read, compare and delete at that version.
pub async fn delete_versioned<E>(
    db: &ScopedDb,
    id: Uuid,
    precondition: Precondition,
) -> Result<(), ApiError>
where
    E: Versioned,
    <E::PrimaryKey as sea_orm::PrimaryKeyTrait>::ValueType: From<Uuid>,
{
    match precondition {
        Precondition::None | Precondition::Exists => {
            match db.delete(E::delete_many().filter(E::ID.eq(id))).await? {
                0 => Err(ApiError::NotFound(E::NAME)),
                _ => Ok(()),
            }
        }
        _ => {
            let row = current::<E>(db, id, precondition).await?;
            delete_at::<E>(db, id, E::version(&row)).await
        }
    }
}

/// `LOWER(column) LIKE '%q%'`: a case-insensitive substring match with the client's `%`, `_`
/// and `\` taken literally.
pub fn contains_ignoring_case(column: impl ColumnTrait, q: &str) -> Condition {
    let escaped = q
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    Condition::all().add(
        Expr::expr(Func::lower(Expr::col(column)))
            .like(LikeExpr::new(format!("%{escaped}%")).escape('\\')),
    )
}

/// Records a field error when an optional text is longer than `max_chars` characters.
pub fn check_max_chars(field: &str, value: &str, max_chars: usize, errors: &mut Vec<FieldError>) {
    if value.chars().count() > max_chars {
        errors.push(FieldError::new(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
}

/// Records a field error unless `value` is one of `allowed`.
pub fn check_choice(field: &str, value: &str, allowed: &[&str], errors: &mut Vec<FieldError>) {
    if !allowed.contains(&value) {
        errors.push(FieldError::new(
            field,
            format!("must be one of: {}", allowed.join(", ")),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The characters [`NOT_BLANK_PATTERN`] excludes are exactly those `str::trim` removes.
    #[test]
    fn the_not_blank_pattern_spells_out_unicode_white_space() {
        let class = NOT_BLANK_PATTERN
            .strip_prefix("[^")
            .and_then(|p| p.strip_suffix(r"][\s\S]*$"))
            .unwrap();
        let mut listed = std::collections::BTreeSet::new();
        let unescape = |item: &str| -> char {
            match item {
                "\\t" => '\t',
                "\\n" => '\n',
                "\\f" => '\u{0C}',
                "\\r" => '\r',
                " " => ' ',
                hex => char::from_u32(u32::from_str_radix(&hex[2..], 16).unwrap()).unwrap(),
            }
        };
        let mut items = vec![];
        let mut rest = class;
        while !rest.is_empty() {
            let len = if rest.starts_with("\\u") {
                6
            } else if rest.starts_with('\\') {
                2
            } else {
                1
            };
            items.push(&rest[..len]);
            rest = &rest[len..];
        }
        let mut i = 0;
        while i < items.len() {
            if items.get(i + 1) == Some(&"-") {
                let (from, to) = (unescape(items[i]), unescape(items[i + 2]));
                listed.extend((from..=to).collect::<Vec<_>>());
                i += 3;
            } else {
                listed.insert(unescape(items[i]));
                i += 1;
            }
        }
        let white: std::collections::BTreeSet<char> = (0..=0x10FFFF)
            .filter_map(char::from_u32)
            .filter(|c| c.is_whitespace())
            .collect();
        assert_eq!(listed, white);
    }
}
