//! Idempotent retries of creating `POST`s: the `Idempotency-Key` request header of the IETF
//! draft (draft-ietf-httpapi-idempotency-key-header), with Stripe's semantics.
//!
//! [`idempotent`] wraps each creating route (`Route::wrap` in the resources' `configure`) and
//! does nothing unless the request carries the header. With it:
//! - The key is a Structured Field string (`Idempotency-Key: "8e03978e-…"`); a bare token is
//!   accepted too. Empty, longer than [`MAX_KEY_LENGTH`] characters, or malformed: 400
//!   `invalid_idempotency_key`.
//! - The caller is authenticated here (the context is left in the request's extensions, where
//!   the handler's own `TenantContext` extraction finds it) and the body is read in full
//!   (within the JSON limit, or the voice sample limit plus 1 MiB for multipart forms) to
//!   fingerprint it: SHA-256 of the caller, the media type without parameters and the body,
//!   with a multipart boundary hashed as a fixed marker (clients pick a new boundary for each
//!   attempt).
//! - The key is claimed per workspace and route (method and route template) in a short
//!   committed transaction of its own, before the handler runs, in the tenant-owned
//!   `idempotency_keys` table (row-level security like every tenant table). A key already
//!   claimed answers: 422 `idempotency_key_reused` when the fingerprint differs, 409
//!   `idempotency_in_progress` while the first request runs, and otherwise a byte-for-byte
//!   replay of the first answer (status, body, and its `Content-Type`, `Location`, `ETag`,
//!   `x-character-count`) with `idempotent-replayed: true`. A replay never reaches the handler:
//!   nothing is created, synthesized or charged again.
//! - What is kept: answers below 500 for [`REPLAY_TTL`] (24 h), 4xx included as Stripe does (a
//!   retry of a refused request is refused the same way, even if e.g. a permission was granted
//!   in between; a new key starts over). Not kept (the key is released, so a retry runs
//!   again): 5xx, 429 (a transient refusal), a handler cancelled before it answered (the client
//!   went away), and an answer larger than [`MAX_RESPONSE_BYTES`].
//! - A streamed answer (a generation with `"stream": true`) is not kept byte for byte: the
//!   key stays in progress until the generation is recorded, then a retry answers `303 See
//!   Other` to it (succeeded or failed), with `idempotent-replayed: true`.
//! - Expired rows of a workspace are purged by each new claim in that workspace (an indexed
//!   delete on `(tenant_id, expires_at)`). A claim whose request never finishes (the process
//!   died) expires after twice the synthesis timeout plus a minute, then the key is free again.

use std::{rc::Rc, time::Duration};

use actix_web::{
    Error, FromRequest, Handler, HttpMessage, HttpResponse, Responder, Route,
    body::{self, BoxBody, MessageBody},
    dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready},
    http::{StatusCode, header},
    web::{self, Bytes},
};
use chrono::Utc;
use futures_util::{StreamExt, future::LocalBoxFuture};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, Set, Unchanged};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::{
    config::{Config, DEFAULT_BODY_LIMIT},
    entities::idempotency_key::{self as row, Entity as Keys},
    error::ApiError,
    http::{RequestId, as_problem},
    tenant::{ScopedDb, TenantContext, TenantRegistry},
};

/// The request header.
pub const KEY_HEADER: &str = "idempotency-key";
/// Set to `true` on a replayed answer.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// The longest key accepted, in characters.
pub const MAX_KEY_LENGTH: usize = 255;
/// How long an answer is replayed.
pub const REPLAY_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// The largest answer kept for replay (creating `POST`s answer with a small JSON document).
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// The headers of an answer that are replayed with it.
const REPLAYED_HEADERS: [&str; 4] = ["content-type", "location", "etag", "x-character-count"];
/// Room for a multipart form's other fields and framing beyond the voice sample.
const FORM_OVERHEAD: usize = 1024 * 1024;

/// A creating `POST` route whose requests may carry an `Idempotency-Key`:
/// `web::resource("/v1/tasks").route(idempotency::post(create))`.
pub fn post<F, Args>(handler: F) -> Route
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    web::post().to(handler).wrap(Idempotent)
}

/// See the module documentation.
pub struct Idempotent;

impl<S, B> Transform<S, ServiceRequest> for Idempotent
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = Error;
    type Transform = IdempotentService<S>;
    type InitError = ();
    type Future = std::future::Ready<Result<IdempotentService<S>, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        std::future::ready(Ok(IdempotentService {
            service: Rc::new(service),
        }))
    }
}

pub struct IdempotentService<S> {
    service: Rc<S>,
}

impl<S, B> Service<ServiceRequest> for IdempotentService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<ServiceResponse<BoxBody>, Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        Box::pin(idempotent(req, self.service.clone()))
    }
}

async fn idempotent<S, B>(
    mut req: ServiceRequest,
    next: Rc<S>,
) -> Result<ServiceResponse<BoxBody>, Error>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody + 'static,
{
    let key = {
        let mut values = req.headers().get_all(KEY_HEADER);
        let Some(first) = values.next() else {
            return next
                .call(req)
                .await
                .map(ServiceResponse::map_into_boxed_body);
        };
        if values.next().is_some() {
            Err(invalid_key("send one Idempotency-Key header"))
        } else {
            parse_key(first.as_bytes())
        }
    };
    let key = match key {
        Ok(key) => key,
        Err(err) => return refuse(req, err),
    };
    let ctx = match TenantContext::extract(req.request()).await {
        Ok(ctx) => ctx,
        Err(err) => return refuse(req, err),
    };
    req.extensions_mut().insert(ctx.clone());
    let Some(tenants) = req
        .app_data::<web::Data<TenantRegistry>>()
        .map(|t| t.get_ref().clone())
    else {
        return refuse(
            req,
            ApiError::internal("the tenant registry is not registered"),
        );
    };
    let config = req
        .app_data::<web::Data<Config>>()
        .map(|c| c.clone().into_inner());
    let route = format!(
        "{} {}",
        req.method(),
        req.match_pattern().unwrap_or_else(|| req.path().to_owned())
    );
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let chunks = match read_body(&mut req, body_limit(config.as_deref(), &content_type)).await {
        Ok(chunks) => chunks,
        Err(err) => return refuse(req, err),
    };
    let fingerprint = fingerprint(&ctx.principal, &content_type, &chunks);
    req.set_payload(Payload::Stream {
        payload: Box::pin(futures_util::stream::iter(chunks.into_iter().map(Ok))),
    });

    let claimed = claim(
        &tenants,
        &ctx,
        &route,
        &key,
        &fingerprint,
        config.as_deref(),
    )
    .await;
    let id = match claimed {
        Ok(Claim::Started(id)) => id,
        Ok(Claim::Replay(row)) => return Ok(replay(req, *row)),
        Ok(Claim::InProgress) => return refuse(req, ApiError::IdempotencyInProgress),
        Ok(Claim::Reused) => return refuse(req, ApiError::IdempotencyKeyReused),
        Err(err) => return refuse(req, err),
    };
    // From here the key is ours: it ends up answered or released, even if this future is
    // dropped (see `Drop for Pending`).
    let mut pending = Pending {
        tenants,
        ctx,
        id,
        armed: true,
    };
    let mut response = match next.call(req).await {
        Ok(response) => response.map_into_boxed_body(),
        Err(err) => {
            pending.release().await;
            return Err(err);
        }
    };
    let answer_later = response
        .response_mut()
        .extensions_mut()
        .remove::<AnswerLater>();
    if let Some(AnswerLater(later)) = answer_later {
        // A streamed answer: its body is not kept; what is kept is decided when its work
        // ends, and until then a retry finds the key in progress.
        pending.armed = false;
        tokio::spawn(async move {
            match later.await {
                Ok(Some((status, headers))) => {
                    pending.armed = true;
                    if let Err(err) = pending.complete(status, &headers, &Bytes::new()).await {
                        tracing::warn!(error = %err, "could not keep the answer of an idempotent request");
                        pending.release().await;
                    }
                }
                _ => {
                    pending.armed = true;
                    pending.release().await;
                }
            }
        });
        return Ok(response);
    }
    // Errors are rendered now (as `request_context` would), so what is kept is what is sent.
    let request_id = RequestId::of(response.request());
    let response = as_problem(response, &request_id);
    let status = response.status();
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        pending.release().await;
        return Ok(response);
    }
    let (request, response) = response.into_parts();
    let (head, body) = response.into_parts();
    let bytes = match body::to_bytes_limited(body, MAX_RESPONSE_BYTES).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(err)) => {
            pending.release().await;
            let err = ApiError::internal(format!("reading the answer to keep it: {err}"));
            return Ok(ServiceResponse::new(request, HttpResponse::from_error(err)));
        }
        Err(_) => {
            pending.release().await;
            let err = ApiError::internal("the answer is too large to keep for replay");
            return Ok(ServiceResponse::new(request, HttpResponse::from_error(err)));
        }
    };
    let headers: Vec<(String, String)> = REPLAYED_HEADERS
        .iter()
        .filter_map(|name| {
            let value = head.headers().get(*name)?.to_str().ok()?;
            Some(((*name).to_owned(), value.to_owned()))
        })
        .collect();
    if let Err(err) = pending.complete(status, &headers, &bytes).await {
        // The work is done and answered; only its replay is lost.
        tracing::warn!(error = %err, "could not keep the answer of an idempotent request");
        pending.release().await;
    }
    Ok(ServiceResponse::new(
        request,
        head.set_body(BoxBody::new(bytes)),
    ))
}

fn refuse(req: ServiceRequest, err: ApiError) -> Result<ServiceResponse<BoxBody>, Error> {
    Ok(req.error_response(err))
}

fn invalid_key(detail: &str) -> ApiError {
    ApiError::bad_request("invalid_idempotency_key", detail.to_owned())
}

/// The key of an `Idempotency-Key` value: a Structured Field string (`"…"`, with `\"` and
/// `\\` escapes), or a bare token of visible ASCII.
fn parse_key(value: &[u8]) -> Result<String, ApiError> {
    let value = value.trim_ascii();
    let key = if let Some(rest) = value.strip_prefix(b"\"") {
        let mut key = Vec::with_capacity(rest.len());
        let mut bytes = rest.iter();
        let mut closed = false;
        while let Some(&b) = bytes.next() {
            match b {
                b'\\' => match bytes.next() {
                    Some(&escaped @ (b'"' | b'\\')) => key.push(escaped),
                    _ => return Err(invalid_key("the Idempotency-Key has an invalid escape")),
                },
                b'"' => {
                    closed = true;
                    break;
                }
                0x20..=0x7e => key.push(b),
                _ => {
                    return Err(invalid_key("the Idempotency-Key must be printable ASCII"));
                }
            }
        }
        if !closed || bytes.next().is_some() {
            return Err(invalid_key(
                "the Idempotency-Key must be one quoted string (\"…\") or a bare token",
            ));
        }
        key
    } else {
        if value
            .iter()
            .any(|b| !(0x21..=0x7e).contains(b) || *b == b'"' || *b == b'\\')
        {
            return Err(invalid_key(
                "the Idempotency-Key must be a quoted string (\"…\") or a token of visible ASCII",
            ));
        }
        value.to_vec()
    };
    if key.is_empty() {
        return Err(invalid_key("the Idempotency-Key is empty"));
    }
    if key.len() > MAX_KEY_LENGTH {
        return Err(invalid_key(
            "the Idempotency-Key is longer than 255 characters",
        ));
    }
    String::from_utf8(key).map_err(|_| invalid_key("the Idempotency-Key must be ASCII"))
}

/// The media type without parameters, lowercased, and a multipart boundary if any.
fn media_type(content_type: &str) -> (String, Option<&str>) {
    let mut parts = content_type.split(';');
    let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let boundary = parts.find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"'))
    });
    let boundary = boundary.filter(|b| media.starts_with("multipart/") && !b.is_empty());
    (media, boundary)
}

/// The most body read for a fingerprint: the JSON limit, or for a multipart form the voice
/// sample limit plus room for the other fields.
fn body_limit(config: Option<&Config>, content_type: &str) -> usize {
    let limit = config.map_or(DEFAULT_BODY_LIMIT, |c| c.body_limit_bytes);
    if media_type(content_type).0 == "multipart/form-data" {
        let sample = config.map_or(20 * 1024 * 1024, |c| c.speech.sample_max_bytes);
        limit.max(sample.saturating_add(FORM_OVERHEAD))
    } else {
        limit
    }
}

/// The request body as it arrived, in chunks (413 beyond `limit`, without reading further).
async fn read_body(req: &mut ServiceRequest, limit: usize) -> Result<Vec<Bytes>, ApiError> {
    let mut payload = req.take_payload();
    let mut chunks = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request("invalid_body", e.to_string()))?;
        total += chunk.len();
        if total > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        chunks.push(chunk);
    }
    Ok(chunks)
}

/// SHA-256 (hex) of who sends, the media type and the body, with each multipart delimiter
/// hashed as the same marker whatever boundary the client chose.
fn fingerprint(principal: &str, content_type: &str, chunks: &[Bytes]) -> String {
    let (media, boundary) = media_type(content_type);
    let mut hasher = Sha256::new();
    hasher.update(principal.as_bytes());
    hasher.update([0]);
    hasher.update(media.as_bytes());
    hasher.update([0]);
    match boundary {
        Some(boundary) => hash_replacing(&mut hasher, chunks, format!("--{boundary}").as_bytes()),
        None => chunks.iter().for_each(|chunk| hasher.update(chunk)),
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Hashes the concatenated `chunks` with every occurrence of `delimiter` (not empty) replaced
/// by a fixed marker, also across chunk borders.
fn hash_replacing(hasher: &mut Sha256, chunks: &[Bytes], delimiter: &[u8]) {
    let finder = memchr::memmem::Finder::new(delimiter);
    let mut pending: Vec<u8> = Vec::new();
    for chunk in chunks {
        pending.extend_from_slice(chunk);
        let mut start = 0;
        for at in finder.find_iter(&pending) {
            hasher.update(&pending[start..at]);
            hasher.update(b"\0--boundary\0");
            start = at + delimiter.len();
        }
        // The tail may be the start of a delimiter that the next chunk completes.
        let keep = pending.len().saturating_sub(delimiter.len() - 1).max(start);
        hasher.update(&pending[start..keep]);
        pending.drain(..keep);
    }
    hasher.update(&pending);
}

enum Claim {
    /// The key is new (or had expired): this request runs, under the row with this id.
    Started(Uuid),
    /// The first request's answer.
    Replay(Box<row::Model>),
    InProgress,
    /// Used before for a different request.
    Reused,
}

/// Claims the key in a transaction of its own, committed before the handler runs, so
/// concurrent duplicates see the claim.
async fn claim(
    tenants: &TenantRegistry,
    ctx: &TenantContext,
    route: &str,
    key: &str,
    fingerprint: &str,
    config: Option<&Config>,
) -> Result<Claim, ApiError> {
    let now = Utc::now();
    // A request that never finishes gives its key up after this (the process died).
    let running =
        config.map_or(Duration::from_secs(30), |c| c.speech.timeout) * 2 + Duration::from_secs(60);
    let db = ScopedDb::begin(tenants, ctx).await?;
    // The purge goes first: as the transaction's first statement a write, it also takes
    // SQLite's write lock before anything is read, so concurrent claims queue up.
    db.delete(Keys::delete_many().filter(row::Column::ExpiresAt.lte(now)))
        .await?;
    let id = Uuid::now_v7();
    let started = db
        .insert_unless_exists(
            row::ActiveModel {
                id: Set(id),
                tenant_id: Set(ctx.tenant_id.clone()),
                route: Set(route.to_owned()),
                idempotency_key: Set(key.to_owned()),
                fingerprint: Set(fingerprint.to_owned()),
                response_status: Set(None),
                response_headers: Set(None),
                response_body: Set(None),
                created_by_user_id: Set(ctx.principal.clone()),
                created_at: Set(now),
                updated_at: Set(now),
                expires_at: Set(now + chrono_duration(running)),
            },
            [
                row::Column::TenantId,
                row::Column::Route,
                row::Column::IdempotencyKey,
            ],
        )
        .await?;
    if started {
        db.commit().await?;
        return Ok(Claim::Started(id));
    }
    let existing = db
        .one(
            Keys::find()
                .filter(row::Column::Route.eq(route))
                .filter(row::Column::IdempotencyKey.eq(key)),
        )
        .await?;
    db.commit().await?;
    Ok(match existing {
        // Released by its request between the two statements: it is being retried.
        None => Claim::InProgress,
        Some(row) if row.fingerprint != fingerprint => Claim::Reused,
        Some(row) if row.response_status.is_none() => Claim::InProgress,
        Some(row) => Claim::Replay(Box::new(row)),
    })
}

fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

/// The kept answer, as it was first sent, marked as a replay.
fn replay(req: ServiceRequest, row: row::Model) -> ServiceResponse<BoxBody> {
    let status = row
        .response_status
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers: Vec<(String, String)> = row
        .response_headers
        .as_deref()
        .and_then(|h| serde_json::from_str(h).ok())
        .unwrap_or_default();
    let mut response = HttpResponse::build(status);
    for (name, value) in headers {
        response.append_header((name, value));
    }
    response.insert_header((REPLAYED_HEADER, "true"));
    req.into_response(response.body(row.response_body.unwrap_or_default()))
}

/// Put in a response's extensions by a handler whose answer cannot be kept as sent (a
/// streamed body): the answer to keep for retries once the work ends (status and
/// headers, no body), or None to release the key.
pub struct AnswerLater(pub oneshot::Receiver<Option<KeptAnswer>>);

/// The status and headers of an answer kept for replay (its body is empty).
pub type KeptAnswer = (StatusCode, Vec<(String, String)>);

/// A claimed key whose request is running.
struct Pending {
    tenants: TenantRegistry,
    ctx: TenantContext,
    id: Uuid,
    /// Still to be answered or released.
    armed: bool,
}

impl Pending {
    /// Keeps the answer for [`REPLAY_TTL`].
    async fn complete(
        &mut self,
        status: StatusCode,
        headers: &[(String, String)],
        body: &Bytes,
    ) -> Result<(), ApiError> {
        self.armed = false;
        let now = Utc::now();
        let headers = serde_json::to_string(headers).map_err(ApiError::internal)?;
        let db = ScopedDb::begin(&self.tenants, &self.ctx).await?;
        let answered = row::ActiveModel {
            id: Unchanged(self.id),
            response_status: Set(Some(i32::from(status.as_u16()))),
            response_headers: Set(Some(headers)),
            response_body: Set(Some(body.to_vec())),
            updated_at: Set(now),
            expires_at: Set(now + chrono_duration(REPLAY_TTL)),
            ..Default::default()
        };
        let kept = db
            .update(
                answered,
                Condition::all().add(row::Column::ResponseStatus.is_null()),
            )
            .await?;
        db.commit().await?;
        if kept.is_none() {
            tracing::warn!(
                "an idempotency key expired before its request answered; the answer is not kept"
            );
        }
        Ok(())
    }

    /// Gives the key up: the next request with it runs.
    async fn release(&mut self) {
        self.armed = false;
        if let Err(err) = release(&self.tenants, &self.ctx, self.id).await {
            tracing::warn!(error = %err, "could not release an idempotency key; it expires on its own");
        }
    }
}

impl Drop for Pending {
    /// The request was dropped before it answered (the client went away): its transaction
    /// rolled back with it, so the key is released for a retry.
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (tenants, ctx, id) = (self.tenants.clone(), self.ctx.clone(), self.id);
        runtime.spawn(async move {
            if let Err(err) = release(&tenants, &ctx, id).await {
                tracing::warn!(error = %err, "could not release an idempotency key; it expires on its own");
            }
        });
    }
}

async fn release(tenants: &TenantRegistry, ctx: &TenantContext, id: Uuid) -> Result<(), ApiError> {
    let db = ScopedDb::begin(tenants, ctx).await?;
    db.delete(
        Keys::delete_many()
            .filter(row::Column::Id.eq(id))
            .filter(row::Column::ResponseStatus.is_null()),
    )
    .await?;
    db.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_quoted_strings_or_tokens() {
        assert_eq!(parse_key(br#""8e03978e-40d5""#).unwrap(), "8e03978e-40d5");
        assert_eq!(parse_key(b"  8e03978e-40d5 ").unwrap(), "8e03978e-40d5");
        assert_eq!(parse_key(br#""a \"b\" \\c""#).unwrap(), r#"a "b" \c"#);
        for bad in [
            &b""[..],
            b"\"\"",
            b"\"open",
            b"\"a\" b",
            b"a b",
            b"\"a\\x\"",
            b"a\"b",
        ] {
            assert!(
                parse_key(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(parse_key(&[b'k'; 255]).is_ok());
        assert!(parse_key(&[b'k'; 256]).is_err());
    }

    #[test]
    fn multipart_fingerprints_ignore_the_boundary() {
        let form = |boundary: &str| {
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nAda\r\n--{boundary}--\r\n"
            )
        };
        let a = form("aaaaaaaa");
        let b = form("bbbbbbbbbbbb");
        let split = |s: &str| -> Vec<Bytes> {
            s.as_bytes().chunks(5).map(Bytes::copy_from_slice).collect()
        };
        let fp = |boundary: &str, body: Vec<Bytes>| {
            fingerprint(
                "user_1",
                &format!("multipart/form-data; boundary={boundary}"),
                &body,
            )
        };
        let whole = fp("aaaaaaaa", vec![Bytes::from(a.clone())]);
        assert_eq!(whole, fp("aaaaaaaa", split(&a)));
        assert_eq!(whole, fp("bbbbbbbbbbbb", split(&b)));
        assert_ne!(whole, fp("aaaaaaaa", split(&a.replace("Ada", "Bob"))));
        assert_ne!(
            fingerprint("user_1", "application/json", &[Bytes::from("{}")]),
            fingerprint("user_2", "application/json", &[Bytes::from("{}")]),
        );
        assert_eq!(
            fingerprint("user_1", "application/json", &[Bytes::from("{}")]),
            fingerprint(
                "user_1",
                "Application/JSON; charset=utf-8",
                &[Bytes::from("{}")]
            ),
        );
    }
}
