//! One error type for every endpoint, rendered as RFC 9457 `application/problem+json`.
//!
//! Handlers return `Result<_, ApiError>`. The request middleware (`http::middleware`) renders
//! every error, ours or actix-web's, through [`render_problem`], so each problem carries the
//! request id and nothing internal: 5xx details are logged, never sent.

use std::time::Duration;

use actix_web::{
    HttpResponse, ResponseError,
    http::{StatusCode, header},
};
use serde::Serialize;
use utoipa::ToSchema;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid field of a request.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    /// The field, as named in the request (`title`, `project_id`, …).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// RFC 9457 problem details, as every error response carries them.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemDetails {
    /// A URI reference naming the problem type (`/problems/<code>`).
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short, human summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// Human explanation of this occurrence.
    pub detail: String,
    /// Stable machine-readable code (`not_found`, `validation_failed`, …).
    pub code: String,
    /// The request id (also in the `x-request-id` header); quote it when reporting a problem.
    pub request_id: String,
    /// Invalid fields (validation errors only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

/// Everything that can go wrong in a request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    #[error("the request has invalid fields")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    Unauthorized(Unauthorized),
    #[error("missing permission {permission}")]
    Forbidden { permission: String, detail: String },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    #[error("the resource has changed since it was read")]
    PreconditionFailed,
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A `Range` outside the resource; `size` is its length in bytes.
    #[error("the requested range is outside the {size} bytes of this resource")]
    RangeNotSatisfiable { size: u64 },
    #[error("{detail}")]
    TooManyRequests {
        detail: String,
        retry_after: Duration,
    },
    #[error("{detail}")]
    BadGateway { detail: String },
    #[error("{detail}")]
    ServiceUnavailable {
        detail: String,
        retry_after: Option<Duration>,
    },
    /// Our own fault. The message is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Why a request was not authenticated; becomes `WWW-Authenticate` (RFC 6750, RFC 9728).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{description}")]
pub struct Unauthorized {
    /// `invalid_token`, or `None` when no credentials were sent at all.
    pub error: Option<&'static str>,
    pub description: String,
}

impl Unauthorized {
    pub fn missing() -> Self {
        Unauthorized {
            error: None,
            description: "no bearer token: send Authorization: Bearer <token>".into(),
        }
    }
    pub fn invalid(description: impl Into<String>) -> Self {
        Unauthorized {
            error: Some("invalid_token"),
            description: description.into(),
        }
    }
}

impl ApiError {
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            detail: detail.into(),
        }
    }

    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::new(field, message)])
    }

    pub fn internal(err: impl std::fmt::Display) -> Self {
        ApiError::Internal(err.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            ApiError::ServiceUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. } => code,
            ApiError::Validation(_) => "validation_failed",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::PreconditionFailed => "precondition_failed",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::BadGateway { .. } => "upstream_failed",
            ApiError::ServiceUnavailable { .. } => "service_unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }

    /// The detail a client may see.
    pub fn public_detail(&self) -> String {
        match self {
            ApiError::Internal(_) => {
                "the server failed to handle this request; quote the request id when reporting it"
                    .into()
            }
            ApiError::Forbidden { detail, .. } => detail.clone(),
            ApiError::Validation(fields) if fields.len() == 1 => {
                format!("{}: {}", fields[0].field, fields[0].message)
            }
            other => other.to_string(),
        }
    }

    pub fn problem(&self, request_id: &str) -> ProblemDetails {
        let status = self.status();
        ProblemDetails {
            problem_type: format!("/problems/{}", self.code()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.public_detail(),
            code: self.code().to_owned(),
            request_id: request_id.to_owned(),
            errors: match self {
                ApiError::Validation(fields) => Some(fields.clone()),
                _ => None,
            },
        }
    }
}

/// Renders an error as problem+json with the headers its status calls for.
/// `resource_metadata` is the RFC 9728 metadata URL named in `WWW-Authenticate`.
pub fn render_problem(err: &ApiError, request_id: &str, resource_metadata: &str) -> HttpResponse {
    if let ApiError::Internal(message) = err {
        tracing::error!(request_id, error = %message, "internal error");
    }
    let mut response = HttpResponse::build(err.status());
    response.insert_header((header::CONTENT_TYPE, PROBLEM_JSON));
    match err {
        ApiError::Unauthorized(why) => {
            let value = match why.error {
                Some(error) => format!(
                    "Bearer error=\"{error}\", error_description=\"{}\", resource_metadata=\"{resource_metadata}\"",
                    why.description.replace(['"', '\\'], "'")
                ),
                None => format!("Bearer resource_metadata=\"{resource_metadata}\""),
            };
            response.insert_header((header::WWW_AUTHENTICATE, value));
        }
        ApiError::TooManyRequests { retry_after, .. }
        | ApiError::ServiceUnavailable {
            retry_after: Some(retry_after),
            ..
        } => {
            response.insert_header((
                header::RETRY_AFTER,
                retry_after.as_secs().max(1).to_string(),
            ));
        }
        ApiError::RangeNotSatisfiable { size } => {
            response.insert_header((header::CONTENT_RANGE, format!("bytes */{size}")));
        }
        _ => {}
    }
    response.json(err.problem(request_id))
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    /// Rendered again by the request middleware with the request id and public URL; this
    /// plain rendering only shows when an error escapes it.
    fn error_response(&self) -> HttpResponse {
        render_problem(self, "", "/.well-known/oauth-protected-resource")
    }
}

/// How long clients are asked to wait when the database cannot be reached.
pub const DATABASE_RETRY_AFTER: Duration = Duration::from_secs(5);

impl From<sea_orm::DbErr> for ApiError {
    /// No connection to the database (none free in time, or it cannot be opened) is a
    /// temporary outage: 503 with `Retry-After`. Anything else is our fault: 500.
    fn from(err: sea_orm::DbErr) -> Self {
        match err {
            sea_orm::DbErr::ConnectionAcquire(_) | sea_orm::DbErr::Conn(_) => {
                tracing::warn!(error = %err, "database unreachable");
                ApiError::ServiceUnavailable {
                    detail: "the database is unreachable; retry shortly".into(),
                    retry_after: Some(DATABASE_RETRY_AFTER),
                }
            }
            err => ApiError::Internal(format!("database: {err}")),
        }
    }
}

impl From<sea_orm::TransactionError<ApiError>> for ApiError {
    fn from(err: sea_orm::TransactionError<ApiError>) -> Self {
        match err {
            sea_orm::TransactionError::Connection(db) => db.into(),
            sea_orm::TransactionError::Transaction(api) => api,
        }
    }
}

impl From<Vec<FieldError>> for ApiError {
    fn from(errors: Vec<FieldError>) -> Self {
        ApiError::Validation(errors)
    }
}
