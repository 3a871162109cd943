//! What every endpoint shares: request ids, the access log and request metrics, problem+json
//! for every error (ours, actix-web's and the extractors'), body limits and CORS.

use std::time::Instant;

use actix_cors::Cors;
use actix_web::{
    Error, HttpMessage, HttpRequest,
    body::{BoxBody, EitherBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    error::{JsonPayloadError, PathError, QueryPayloadError},
    http::{ConnectionType, Method, StatusCode, header},
    middleware::Next,
    web,
};
use uuid::Uuid;

use crate::{
    config::Config,
    error::{ApiError, FieldError, PROBLEM_JSON, render_problem},
    shutdown::Drain,
    telemetry::metrics,
};

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of the current request, as echoed in `x-request-id` and in problem bodies.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl RequestId {
    /// The id `request_context` gave `req` (empty outside that middleware).
    pub fn of(req: &HttpRequest) -> String {
        let extensions = req.extensions();
        extensions
            .get::<Self>()
            .map(|id| id.0.clone())
            .unwrap_or_default()
    }
}

/// The tenant a request acted for, recorded by the auth extractor for the access log.
#[derive(Debug, Clone)]
pub struct LoggedTenant(pub String);

impl LoggedTenant {
    /// The tenant recorded for `req` (empty when no extractor ran).
    fn of(req: &HttpRequest) -> String {
        let extensions = req.extensions();
        extensions
            .get::<Self>()
            .map(|t| t.0.clone())
            .unwrap_or_default()
    }
}

/// Public base URL of the API, for links such as the RFC 9728 resource metadata.
pub fn public_base(req: &HttpRequest) -> String {
    if let Some(config) = req.app_data::<web::Data<Config>>()
        && let Some(url) = &config.public_url
    {
        return url.clone();
    }
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

pub fn resource_metadata_url(req: &HttpRequest) -> String {
    format!("{}/.well-known/oauth-protected-resource", public_base(req))
}

/// A client-sent request id is kept when it is short and plain; otherwise a new one is made.
fn request_id_from(req: &ServiceRequest) -> String {
    req.headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| Uuid::now_v7().to_string())
}

/// Middleware around every request: assigns the request id, turns every error into
/// problem+json carrying that id, sets `x-request-id`, writes one access-log line and records
/// the request's metrics (`http_requests_total`, `http_request_duration_seconds`).
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let drain = req
        .app_data::<web::Data<Drain>>()
        .map(|d| d.clone().into_inner());
    let _in_flight = drain.as_ref().map(Drain::enter);
    let request_id = request_id_from(&req);
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let method = req.method().clone();

    // Errors that escape inner middleware are rendered by actix itself; ours render as
    // responses, so the request is still at hand here.
    let response = next.call(req).await?.map_into_boxed_body();
    let mut response = as_problem(response, &request_id);
    let headers = response.headers_mut();
    if !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        // CORS lists the exposed headers on every response; without an allowed origin the
        // list means nothing, so no CORS header at all is sent.
        headers.remove(header::ACCESS_CONTROL_EXPOSE_HEADERS);
    }

    if let Ok(value) = header::HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(header::HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    if drain.is_some_and(|d| d.is_draining()) {
        // Shutting down: this connection ends after this response.
        response
            .response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }

    let status = response.status().as_u16();
    let latency = started.elapsed();
    let pattern = response.request().match_pattern();
    let method_label = metrics::method_label(method.as_str());
    metrics::record_request(pattern.as_deref(), method_label, status, latency);
    let route = pattern.unwrap_or_else(|| "-".into());
    let tenant = LoggedTenant::of(response.request());
    tracing::info!(
        target: "resonance::access",
        method = %method,
        route = %route,
        status,
        latency_ms = latency.as_secs_f64() * 1000.0,
        request_id = %request_id,
        tenant = %tenant,
        "request"
    );
    Ok(response)
}

/// Re-renders any error response as problem+json with the request id, keeping the headers
/// the inner layers set on it (CORS, `Allow`, …).
pub fn as_problem(
    response: ServiceResponse<BoxBody>,
    request_id: &str,
) -> ServiceResponse<BoxBody> {
    let status = response.status();
    if status.as_u16() < 400 {
        return response;
    }
    let error = match response.response().error() {
        Some(err) => Some(match err.as_error::<ApiError>() {
            Some(api) => api.clone(),
            None => from_status(status, err.to_string()),
        }),
        None => {
            let is_problem = response
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|ct| ct.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
            (!is_problem).then(|| from_status(status, String::new()))
        }
    };
    let Some(error) = error else {
        return response;
    };
    let (req, original) = response.into_parts();
    let mut rendered = render_problem(&error, request_id, &resource_metadata_url(&req));
    keep_headers(original.headers(), rendered.headers_mut());
    ServiceResponse::new(req, rendered)
}

/// Headers that describe the body being replaced, so the problem body does not inherit them.
const BODY_HEADERS: [header::HeaderName; 9] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CONTENT_ENCODING,
    header::CONTENT_LANGUAGE,
    header::CONTENT_DISPOSITION,
    header::CONTENT_RANGE,
    header::TRANSFER_ENCODING,
    header::ETAG,
    header::LAST_MODIFIED,
];

/// Carries the headers the inner layers set on an error response over to its problem
/// rendering: the CORS headers (`Access-Control-*`, `Vary`), `Allow` on a 405, and anything a
/// handler added. The rendering's own headers (`WWW-Authenticate` with the public URL,
/// `Retry-After`, …) win; headers about the replaced body are dropped.
fn keep_headers(original: &header::HeaderMap, rendered: &mut header::HeaderMap) {
    let own: Vec<header::HeaderName> = rendered.keys().cloned().collect();
    for (name, value) in original {
        if !own.contains(name) && !BODY_HEADERS.contains(name) {
            rendered.append(name.clone(), value.clone());
        }
    }
}

/// An error response actix-web produced without one of ours (unknown route, wrong method,
/// CORS refusal, …), mapped to the nearest problem.
fn from_status(status: StatusCode, message: String) -> ApiError {
    match status {
        StatusCode::NOT_FOUND => ApiError::NotFound("resource"),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge { limit: 0 },
        s if s.is_server_error() => ApiError::Internal(message),
        _ if message.is_empty() => {
            ApiError::bad_request("bad_request", "the request was not accepted")
        }
        _ => ApiError::bad_request("bad_request", message),
    }
}

/// Answers routes that do not exist.
pub async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound("resource"))
}

/// Extractor settings: body limit and problem+json errors for JSON, paths and queries.
pub fn extractor_configs(config: &Config) -> (web::JsonConfig, web::PathConfig, web::QueryConfig) {
    let limit = config.body_limit_bytes;
    let json = web::JsonConfig::default()
        .limit(limit)
        .error_handler(move |err, _req| json_error(err, limit).into());
    let path = web::PathConfig::default().error_handler(|err: PathError, _req| {
        let detail = match &err {
            PathError::Deserialize(e) => format!("malformed path parameter: {e}"),
            _ => "malformed path parameter".to_string(),
        };
        ApiError::bad_request("invalid_path_parameter", detail).into()
    });
    let query = web::QueryConfig::default().error_handler(|err: QueryPayloadError, _req| {
        let detail = match &err {
            QueryPayloadError::Deserialize(e) => format!("invalid query parameter: {e}"),
            _ => "invalid query string".to_string(),
        };
        ApiError::bad_request("invalid_query", detail).into()
    });
    (json, path, query)
}

fn json_error(err: JsonPayloadError, limit: usize) -> ApiError {
    match err {
        JsonPayloadError::ContentType => {
            ApiError::UnsupportedMediaType("send the body as application/json".into())
        }
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            ApiError::PayloadTooLarge { limit }
        }
        JsonPayloadError::Deserialize(e) if e.is_data() => {
            // Well-formed JSON of the wrong shape: a missing field or a wrong type.
            let message = e.to_string();
            let message = message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .to_owned();
            ApiError::Validation(vec![FieldError::new("body", message)])
        }
        JsonPayloadError::Deserialize(_) => {
            ApiError::bad_request("malformed_json", "the request body is not valid JSON")
        }
        _ => ApiError::bad_request("malformed_body", "the request body could not be read"),
    }
}

/// Headers a browser client may read from any response (CORS hides the others from
/// `fetch()`). Some are not sent yet (rate limits, idempotent replays, character counts): they
/// are listed now so clients can rely on them as soon as they are.
pub const EXPOSED_HEADERS: [&str; 15] = [
    "etag",
    "location",
    "retry-after",
    "www-authenticate",
    "x-request-id",
    "content-range",
    "accept-ranges",
    "content-length",
    "allow",
    "ratelimit",
    "ratelimit-policy",
    "idempotent-replayed",
    "x-character-count",
    "x-generation-id",
    "x-sample-rate",
];

/// Request headers a browser client may send (beyond the CORS-safelisted ones).
pub const ALLOWED_HEADERS: [&str; 8] = [
    "authorization",
    "content-type",
    "if-match",
    "if-none-match",
    "idempotency-key",
    "x-request-id",
    "range",
    // A fetch-based SSE reader resuming `GET /v1/events`.
    "last-event-id",
];

/// Methods a browser client may use: every method the API serves (a test checks them against
/// the OpenAPI document).
pub const ALLOWED_METHODS: [Method; 4] = [Method::GET, Method::POST, Method::PATCH, Method::DELETE];

/// CORS for the single-page app: only the configured origins, none by default.
///
/// It must run inside [`request_context`] (`wrap` it first): every response, errors included,
/// passes through it on the way out, and `request_context` keeps the headers it set when it
/// renders an error as problem+json (see [`keep_headers`]). Its own refusals (a preflight
/// from an origin not allowed) are then rendered as problem+json with a request id too.
pub fn cors(config: &Config) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods(ALLOWED_METHODS)
        .allowed_headers(ALLOWED_HEADERS)
        .expose_headers(EXPOSED_HEADERS)
        .max_age(600);
    for origin in &config.cors_origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

/// Total size of a request's head (request line and headers) that the API accepts. Clerk
/// tokens are at most 8 KiB; anything far beyond is refused before any work is done.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Input no handler should see: a head larger than [`MAX_HEAD_BYTES`] (431), text the
/// database cannot store (U+0000, which PostgreSQL refuses in `text`) in a query parameter or
/// a JSON body (422 naming the field), and a JSON body that is not an object (422). Checked here, once for every endpoint; a request
/// without a NUL pays only a scan of its query and body for the escape.
pub async fn guard_input<B: MessageBody + 'static>(
    mut req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    // Refusals are responses (not `Err`), so CORS and the problem rendering see them.
    let refuse =
        |req: ServiceRequest, err: ApiError| Ok(req.error_response(err).map_into_right_body());
    let head_bytes = req.path().len()
        + req.query_string().len()
        + req
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>();
    if head_bytes > MAX_HEAD_BYTES {
        let limit = MAX_HEAD_BYTES;
        return refuse(req, ApiError::HeadersTooLarge { limit });
    }
    if let Some(field) = nul_query_parameter(req.query_string()) {
        return refuse(req, nul_field(&field));
    }
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    // Webhooks are verified over their raw bytes first; their handler makes the same check
    // after the signature (a bad signature must answer 400, whatever the body holds).
    if is_json && !req.path().starts_with("/webhooks/") {
        let limit = req
            .app_data::<web::Data<Config>>()
            .map_or(crate::config::DEFAULT_BODY_LIMIT, |c| c.body_limit_bytes);
        let body = match read_bounded(req.take_payload(), limit).await {
            Ok(body) => body,
            Err(err) => return refuse(req, err),
        };
        if let Some(field) = nul_json_field(&body) {
            return refuse(req, nul_field(&field));
        }
        // Every JSON body the API takes is an object; serde would also read a struct from an
        // array of its fields in order, which the contract does not allow.
        if !body.is_empty() && body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            let error = FieldError::new("body", "must be a JSON object");
            return refuse(req, ApiError::Validation(vec![error]));
        }
        req.set_payload(actix_web::dev::Payload::from(body));
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

fn nul_field(field: &str) -> ApiError {
    ApiError::Validation(vec![FieldError::new(
        field,
        "must not contain the NUL character (U+0000)",
    )])
}

/// Reads a body of at most `limit` bytes (413 beyond it, without reading further).
async fn read_bounded(
    mut payload: actix_web::dev::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    use futures_util::StreamExt;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request("invalid_body", e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The first query parameter whose name or value decodes to a NUL.
fn nul_query_parameter(query: &str) -> Option<String> {
    if !query.contains("%00") {
        return None;
    }
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (name.contains("%00") || value.contains("%00")).then(|| name.replace("%00", ""))
    })
}

/// The path (`title`, `items[2].name`) of the first string in a JSON body that holds a NUL.
/// A NUL can only appear in JSON as the escape `\u0000`, so bodies without it are not parsed.
pub fn nul_json_field(body: &[u8]) -> Option<String> {
    let escaped = body
        .windows(6)
        .any(|w| w[0] == b'\\' && w[1] == b'u' && w[2..].iter().all(|b| *b == b'0'));
    if !escaped {
        return None;
    }
    // Malformed JSON is left to the extractor, which answers 400.
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    find_nul(&value, String::new())
}

fn find_nul(value: &serde_json::Value, path: String) -> Option<String> {
    use serde_json::Value;
    let field = |path: &str| {
        if path.is_empty() {
            "body".to_owned()
        } else {
            path.to_owned()
        }
    };
    match value {
        Value::String(text) => text.contains('\0').then(|| field(&path)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| find_nul(item, format!("{}[{i}]", field(&path)))),
        Value::Object(members) => members.iter().find_map(|(name, member)| {
            if name.contains('\0') {
                return Some(field(&path));
            }
            let path = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            find_nul(member, path)
        }),
        _ => None,
    }
}

#[cfg(test)]
mod input_tests {
    use super::*;

    #[test]
    fn nul_in_json_names_the_field() {
        assert_eq!(
            nul_json_field(br#"{"title":"a\u0000b"}"#).as_deref(),
            Some("title")
        );
        assert_eq!(
            nul_json_field(br#"{"a":{"b":["x","\u0000"]}}"#).as_deref(),
            Some("a.b[1]")
        );
        assert_eq!(
            nul_json_field(br#"{"title":"a\\u0000"}"#),
            None,
            "an escaped backslash"
        );
        assert_eq!(nul_json_field(br#"{"title":"plain"}"#), None);
    }

    #[test]
    fn nul_in_a_query_names_the_parameter() {
        assert_eq!(nul_query_parameter("q=a%00b&limit=5").as_deref(), Some("q"));
        assert_eq!(nul_query_parameter("limit=5&q=%00").as_deref(), Some("q"));
        assert_eq!(nul_query_parameter("q=a%2500"), None);
        assert_eq!(nul_query_parameter("q=plain"), None);
    }
}
