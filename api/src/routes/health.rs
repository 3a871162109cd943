//! Liveness and readiness probes.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::{db, error::ApiError, state::AppState};

#[derive(Serialize, ToSchema)]
pub struct HealthStatus {
    /// `ok` (alive) or `ready` (database reachable).
    pub status: &'static str,
}

/// The routes of this resource.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/healthz").get(healthz))
        .service(web::resource("/readyz").get(readyz));
}

#[derive(OpenApi)]
#[openapi(
    paths(healthz, readyz),
    tags((name = "health", description = "Liveness and readiness")),
)]
pub struct HealthApi;

/// The process is alive. Does not touch the database.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health", operation_id = "getHealth",
    responses((status = 200, description = "Alive", body = HealthStatus))
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(HealthStatus { status: "ok" })
}

/// The service can serve traffic: the database answers.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health", operation_id = "getReadiness",
    responses(
        (status = 200, description = "Ready", body = HealthStatus),
        (status = 503, description = "The database is unreachable", body = crate::error::ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let unavailable = |why: String| {
        tracing::warn!(reason = %why, "readiness check failed");
        ApiError::ServiceUnavailable {
            detail: "the database is unreachable".into(),
            retry_after: Some(Duration::from_secs(5)),
        }
    };
    match tokio::time::timeout(Duration::from_secs(3), db::ping(&state.db)).await {
        Ok(Ok(())) => Ok(HttpResponse::Ok().json(HealthStatus { status: "ready" })),
        Ok(Err(err)) => Err(unavailable(err.to_string())),
        Err(_) => Err(unavailable("timed out".into())),
    }
}
