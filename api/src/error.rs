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
    /// Characters the workspace has left this month (`quota_exceeded` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub characters_remaining: Option<i64>,
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
    /// A 404 with a code of its own (`no_billing_account`).
    #[error("{detail}")]
    Absent { code: &'static str, detail: String },
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
    /// The workspace is over its plan's request rate (see `limits::rate`).
    #[error("this workspace is over its plan's request rate; retry after the Retry-After delay")]
    RateLimited { retry_after: Duration },
    /// A generation needs more characters than the workspace has left this month.
    #[error(
        "this generation needs {requested} characters and the workspace has {remaining} left this month"
    )]
    QuotaExceeded { requested: i64, remaining: i64 },
    /// The plan allows no more of something (custom voices).
    #[error("{0}")]
    PlanLimitReached(String),
    #[error("{detail}")]
    BadGateway { detail: String },
    #[error("{detail}")]
    ServiceUnavailable {
        detail: String,
        retry_after: Option<Duration>,
    },
    /// A 503 with a code of its own (`billing_not_configured`, `billing_unavailable`).
    #[error("{detail}")]
    Unavailable {
        code: &'static str,
        detail: String,
        retry_after: Option<Duration>,
    },
    /// The database cannot be reached or is not accepting work right now (see
    /// [`database_unavailable`]): worth retrying. `cause` is logged, never sent.
    #[error("the database is unavailable")]
    DatabaseUnavailable { cause: String },
    /// Our own fault. The message is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
    #[error("the request's headers take more than {limit} bytes")]
    HeadersTooLarge { limit: usize },
    /// A request with the `Idempotency-Key` of one still running (see `idempotency`).
    #[error("a request with this Idempotency-Key is still in progress; retry once it has finished")]
    IdempotencyInProgress,
    /// The `Idempotency-Key` of an earlier, different request (another body or caller).
    #[error("this Idempotency-Key was already used for a different request; use a new key")]
    IdempotencyKeyReused,
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
            ApiError::NotFound(_) | ApiError::Absent { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::TooManyRequests { .. } | ApiError::RateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::QuotaExceeded { .. } | ApiError::PlanLimitReached(_) => {
                StatusCode::PAYMENT_REQUIRED
            }
            ApiError::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            ApiError::ServiceUnavailable { .. }
            | ApiError::Unavailable { .. }
            | ApiError::DatabaseUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::IdempotencyInProgress => StatusCode::CONFLICT,
            ApiError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. } => code,
            ApiError::Validation(_) => "validation_failed",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Absent { code, .. } | ApiError::Unavailable { code, .. } => code,
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::PreconditionFailed => "precondition_failed",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::QuotaExceeded { .. } => "quota_exceeded",
            ApiError::PlanLimitReached(_) => "plan_limit_reached",
            ApiError::BadGateway { .. } => "upstream_failed",
            ApiError::ServiceUnavailable { .. } => "service_unavailable",
            ApiError::DatabaseUnavailable { .. } => "database_unavailable",
            ApiError::Internal(_) => "internal_error",
            ApiError::HeadersTooLarge { .. } => "request_headers_too_large",
            ApiError::IdempotencyInProgress => "idempotency_in_progress",
            ApiError::IdempotencyKeyReused => "idempotency_key_reused",
        }
    }

    /// The detail a client may see.
    pub fn public_detail(&self) -> String {
        match self {
            ApiError::Internal(_) => {
                "the server failed to handle this request; quote the request id when reporting it"
                    .into()
            }
            ApiError::DatabaseUnavailable { .. } => {
                "the service cannot reach its database right now; retry after the Retry-After delay"
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
            characters_remaining: match self {
                ApiError::QuotaExceeded { remaining, .. } => Some(*remaining),
                _ => None,
            },
        }
    }
}

/// Renders an error as problem+json with the headers its status calls for.
/// `resource_metadata` is the RFC 9728 metadata URL named in `WWW-Authenticate`.
pub fn render_problem(err: &ApiError, request_id: &str, resource_metadata: &str) -> HttpResponse {
    match err {
        ApiError::Internal(message) => {
            tracing::error!(request_id, error = %message, "internal error")
        }
        ApiError::DatabaseUnavailable { cause } => {
            tracing::warn!(request_id, error = %cause, "database unavailable")
        }
        _ => {}
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
        | ApiError::RateLimited { retry_after }
        | ApiError::ServiceUnavailable {
            retry_after: Some(retry_after),
            ..
        }
        | ApiError::Unavailable {
            retry_after: Some(retry_after),
            ..
        } => {
            response.insert_header((
                header::RETRY_AFTER,
                retry_after.as_secs().max(1).to_string(),
            ));
        }
        ApiError::DatabaseUnavailable { .. } => {
            response.insert_header((
                header::RETRY_AFTER,
                DATABASE_RETRY_AFTER.as_secs().to_string(),
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

/// How long a client should wait before retrying a `database_unavailable` answer: long enough
/// for a pool to reconnect or a failover to finish, short enough not to stall a client.
pub const DATABASE_RETRY_AFTER: Duration = Duration::from_secs(2);

/// Every database error a request meets becomes an `ApiError` here: a transient failure of
/// the database or of the way to it ([`database_unavailable`]) is a 503 the client may retry,
/// anything else (a syntax error, a constraint we did not expect, a decoding error) is our
/// defect, a 500.
impl From<sea_orm::DbErr> for ApiError {
    fn from(err: sea_orm::DbErr) -> Self {
        if database_unavailable(&err) {
            ApiError::DatabaseUnavailable {
                cause: format!("database: {err}"),
            }
        } else {
            ApiError::Internal(format!("database: {err}"))
        }
    }
}

/// Whether `err` says the database is unreachable or not accepting work right now, rather
/// than that the statement or our code is wrong:
/// - no connection could be had: the pool's acquire timed out (sqlx `PoolTimedOut`, which is
///   also what a refused or failing connect ends in) or the pool is closed;
/// - the connection failed under us: any I/O error (refused, reset, broken pipe, EOF), or
///   it was closed while being opened (see [`closed_during_handshake`]);
/// - the server refused or ended the session: SQLSTATE class `08` (connection exception),
///   `57P01` admin_shutdown, `57P02` crash_shutdown, `57P03` cannot_connect_now (starting
///   up or shutting down), `53300` too_many_connections;
/// - SQLite's file is locked by another process for longer than its busy timeout
///   (`SQLITE_BUSY`, `SQLITE_LOCKED`, with their extended codes): another instance on the same
///   file is writing.
pub fn database_unavailable(err: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr};
    match err {
        DbErr::ConnectionAcquire(_) => true,
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => sqlx_unavailable(e),
        _ => false,
    }
}

/// [`database_unavailable`] for a sqlx error.
pub fn sqlx_unavailable(err: &sea_orm::sqlx::Error) -> bool {
    use sea_orm::sqlx::Error;
    match err {
        Error::PoolTimedOut | Error::PoolClosed => true,
        Error::Protocol(message) => closed_during_handshake(message),
        Error::Database(db) if sqlite_busy(db.as_ref()) => true,
        other => connection_lost(other),
    }
}

/// `SQLITE_BUSY` (5) or `SQLITE_LOCKED` (6), whatever the extended code: the file is being
/// written by another connection. The same work may succeed a moment later.
fn sqlite_busy(err: &dyn sea_orm::sqlx::error::DatabaseError) -> bool {
    use sea_orm::sqlx::sqlite::SqliteError;
    err.try_downcast_ref::<SqliteError>().is_some()
        && err
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .is_some_and(|code| matches!(code & 0xff, 5 | 6))
}

/// sqlx's report of a connection closed by the other end as soon as it was opened, before
/// PostgreSQL's first answer: it reads the one-byte answer to its `SSLRequest` without
/// checking for end of file, and reports the zero byte it finds as a protocol error. That is
/// what a TCP proxy or load balancer in front of a database that is down does.
fn closed_during_handshake(message: &str) -> bool {
    message.starts_with("unexpected response from SSLRequest: 0x00")
}

/// Whether `err` means the connection it happened on is unusable (the server went away, was
/// restarted, or ended the session), so the same work may succeed on a new connection.
pub fn connection_lost(err: &sea_orm::sqlx::Error) -> bool {
    use sea_orm::sqlx::Error;
    match err {
        Error::Io(_) => true,
        Error::Database(db) => db.code().is_some_and(|code| unavailable_sqlstate(&code)),
        _ => false,
    }
}

pub fn unavailable_sqlstate(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
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

#[cfg(test)]
mod tests {
    use std::{borrow::Cow, io, sync::Arc};

    use sea_orm::{
        ConnAcquireErr, DbErr, RuntimeErr,
        sqlx::{self, error::DatabaseError},
    };

    use super::*;

    /// A server error with a SQLSTATE, as PostgreSQL reports it.
    #[derive(Debug, thiserror::Error)]
    #[error("{message}")]
    struct ServerError {
        code: &'static str,
        message: &'static str,
    }

    impl DatabaseError for ServerError {
        fn message(&self) -> &str {
            self.message
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.code))
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            match self.code {
                "23505" => sqlx::error::ErrorKind::UniqueViolation,
                _ => sqlx::error::ErrorKind::Other,
            }
        }
    }

    fn server(code: &'static str) -> sqlx::Error {
        sqlx::Error::Database(Box::new(ServerError {
            code,
            message: "message from the server",
        }))
    }

    fn io(kind: io::ErrorKind) -> sqlx::Error {
        sqlx::Error::Io(io::Error::new(kind, "socket"))
    }

    /// The three ways sea-orm wraps a sqlx error.
    fn wrapped(make: impl Fn() -> sqlx::Error) -> [DbErr; 3] {
        [
            DbErr::Conn(RuntimeErr::SqlxError(Arc::new(make()))),
            DbErr::Exec(RuntimeErr::SqlxError(Arc::new(make()))),
            DbErr::Query(RuntimeErr::SqlxError(Arc::new(make()))),
        ]
    }

    fn api(err: DbErr) -> ApiError {
        ApiError::from(err)
    }

    #[test]
    fn transient_failures_are_503_database_unavailable() {
        let transient: Vec<Box<dyn Fn() -> sqlx::Error>> = vec![
            Box::new(|| io(io::ErrorKind::ConnectionRefused)),
            Box::new(|| io(io::ErrorKind::ConnectionReset)),
            Box::new(|| io(io::ErrorKind::BrokenPipe)),
            Box::new(|| io(io::ErrorKind::UnexpectedEof)),
            Box::new(|| sqlx::Error::PoolTimedOut),
            Box::new(|| sqlx::Error::PoolClosed),
            Box::new(|| server("57P01")), // admin_shutdown
            Box::new(|| server("57P02")), // crash_shutdown
            Box::new(|| server("57P03")), // cannot_connect_now: starting up
            Box::new(|| server("08006")), // connection_failure
            Box::new(|| server("08001")), // sqlclient_unable_to_establish_sqlconnection
            Box::new(|| server("08003")), // connection_does_not_exist
            Box::new(|| server("53300")), // too_many_connections
            Box::new(|| {
                let eof =
                    "unexpected response from SSLRequest: 0x00 (sqlx_postgres::connection::tls:95)";
                sqlx::Error::Protocol(eof.into())
            }),
        ];
        answers_each_as(
            &transient,
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
        );
        for acquire in [ConnAcquireErr::Timeout, ConnAcquireErr::ConnectionClosed] {
            let api = api(DbErr::ConnectionAcquire(acquire));
            assert_eq!(api.code(), "database_unavailable");
        }
    }

    /// Every error `makers` make, however sea-orm wraps it, answers `status` with `code`.
    fn answers_each_as(makers: &[Box<dyn Fn() -> sqlx::Error>], status: StatusCode, code: &str) {
        for make in makers {
            for err in wrapped(make) {
                let shown = err.to_string();
                let api = api(err);
                assert_eq!(api.status(), status, "{shown}");
                assert_eq!(api.code(), code, "{shown}");
            }
        }
    }

    #[test]
    fn defects_stay_500() {
        let defects: Vec<Box<dyn Fn() -> sqlx::Error>> = vec![
            Box::new(|| server("42601")), // syntax_error
            Box::new(|| server("23505")), // unique_violation we did not expect
            Box::new(|| server("42501")), // insufficient_privilege (e.g. a row-level security refusal)
            Box::new(|| server("22P02")), // invalid_text_representation
            Box::new(|| sqlx::Error::RowNotFound),
            Box::new(|| sqlx::Error::ColumnNotFound("title".into())),
            Box::new(|| sqlx::Error::Protocol("unexpected message".into())),
        ];
        answers_each_as(
            &defects,
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
        );
        for err in [
            DbErr::Custom("oops".into()),
            DbErr::Type("not a number".into()),
            DbErr::Conn(RuntimeErr::Internal("lazy pool did not complete".into())),
            DbErr::RecordNotFound("task".into()),
        ] {
            assert_eq!(api(err).code(), "internal_error");
        }
    }

    #[test]
    fn only_a_lost_connection_is_worth_a_new_connection() {
        assert!(connection_lost(&io(io::ErrorKind::UnexpectedEof)));
        assert!(connection_lost(&server("57P01")));
        // The pool had no connection to give: a new one would wait the same.
        assert!(!connection_lost(&sqlx::Error::PoolTimedOut));
        assert!(!connection_lost(&server("42601")));
    }

    /// A real `SQLITE_BUSY`: a second connection asks for the write lock another holds.
    #[tokio::test]
    async fn a_locked_sqlite_file_is_503_database_unavailable() {
        use sea_orm::sqlx::{Connection, Executor, sqlite::SqliteConnectOptions};
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("busy.db"))
            .create_if_missing(true)
            .busy_timeout(std::time::Duration::ZERO);
        let mut writer = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        let mut other = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        writer.execute("CREATE TABLE t (x INTEGER)").await.unwrap();
        writer.execute("BEGIN IMMEDIATE").await.unwrap();
        let busy = other.execute("BEGIN IMMEDIATE").await.unwrap_err();
        assert!(sqlx_unavailable(&busy), "{busy}");
        let api = api(DbErr::Exec(RuntimeErr::SqlxError(Arc::new(busy))));
        assert_eq!(api.code(), "database_unavailable");
        // Other SQLite errors stay defects.
        let missing = other.execute("SELECT * FROM nowhere").await.unwrap_err();
        assert!(!sqlx_unavailable(&missing), "{missing}");
    }

    #[test]
    fn database_unavailable_says_nothing_internal_and_asks_for_a_retry() {
        let refused = io(io::ErrorKind::ConnectionRefused);
        let err = api(DbErr::Conn(RuntimeErr::SqlxError(Arc::new(refused))));
        let response = render_problem(&err, "req-1", "/meta");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER).unwrap(),
            DATABASE_RETRY_AFTER.as_secs().to_string().as_str()
        );
        let problem = err.problem("req-1");
        assert_eq!(problem.code, "database_unavailable");
        assert_eq!(problem.problem_type, "/problems/database_unavailable");
        assert!(!problem.detail.contains("socket"), "{}", problem.detail);
        assert!(!problem.detail.contains("sqlx"), "{}", problem.detail);
    }
}
