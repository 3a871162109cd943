//! The caller's own context, and the OAuth protected-resource metadata (RFC 9728).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    http::public_base,
    state::AppState,
    tenant::{TenantContext, permissions},
};

/// Who the caller is, in which workspace, and what they may do, so a client can show or hide
/// actions the way Clerk's `has()` does.
#[utoipa::path(
    get,
    path = "/v1/me",
    tag = "me",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's context", body = TenantContext),
        (status = 401, description = "Missing or invalid token", body = crate::error::ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn me(ctx: TenantContext) -> HttpResponse {
    HttpResponse::Ok().json(ctx)
}

/// RFC 9728 protected-resource metadata.
#[derive(Serialize, ToSchema)]
pub struct ProtectedResourceMetadata {
    pub resource: String,
    pub authorization_servers: Vec<String>,
    pub bearer_methods_supported: Vec<String>,
    pub scopes_supported: Vec<String>,
    pub resource_name: String,
    pub resource_documentation: String,
}

/// Tells OAuth clients where to get tokens for this API (RFC 9728).
#[utoipa::path(
    get,
    path = "/.well-known/oauth-protected-resource",
    tag = "me",
    responses((status = 200, description = "Resource metadata", body = ProtectedResourceMetadata))
)]
pub async fn protected_resource_metadata(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> HttpResponse {
    let base = public_base(&req);
    HttpResponse::Ok().json(ProtectedResourceMetadata {
        resource: base.clone(),
        authorization_servers: state.auth.issuer().into_iter().collect(),
        bearer_methods_supported: vec!["header".into()],
        scopes_supported: permissions::ALL.iter().map(|p| p.to_string()).collect(),
        resource_name: "Resonance API".into(),
        resource_documentation: format!("{base}/docs"),
    })
}
