//! What every endpoint shares: request ids, the access log, problem+json for every error
//! (ours, actix-web's and the extractors'), body limits and CORS.

use std::time::Instant;

use actix_cors::Cors;
use actix_web::{
    Error, HttpMessage, HttpRequest,
    body::{BoxBody, MessageBody},
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
};

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of the current request, as echoed in `x-request-id` and in problem bodies.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The tenant a request acted for, recorded by the auth extractor for the access log.
#[derive(Debug, Clone)]
pub struct LoggedTenant(pub String);

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
/// problem+json carrying that id, sets `x-request-id`, and writes one access-log line.
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
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "-".into());
    let tenant = response
        .request()
        .extensions()
        .get::<LoggedTenant>()
        .map(|t| t.0.clone())
        .unwrap_or_default();
    tracing::info!(
        target: "resonance::access",
        method = %method,
        route = %route,
        status,
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        request_id = %request_id,
        tenant = %tenant,
        "request"
    );
    Ok(response)
}

/// Re-renders any error response as problem+json with the request id, keeping the headers
/// the inner layers set on it (CORS, `Allow`, …).
fn as_problem(response: ServiceResponse<BoxBody>, request_id: &str) -> ServiceResponse<BoxBody> {
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
pub const EXPOSED_HEADERS: [&str; 13] = [
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
];

/// Request headers a browser client may send (beyond the CORS-safelisted ones).
pub const ALLOWED_HEADERS: [&str; 7] = [
    "authorization",
    "content-type",
    "if-match",
    "if-none-match",
    "idempotency-key",
    "x-request-id",
    "range",
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
