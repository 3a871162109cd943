//! The caller's own context, and the OAuth protected-resource metadata (RFC 9728).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::{
    http::public_base,
    limits::Plan,
    state::AppState,
    tenant::{TenantContext, TenantKind, TokenKind, permissions},
};

/// The routes of this resource.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/me").get(me)).service(
        web::resource("/.well-known/oauth-protected-resource").get(protected_resource_metadata),
    );
}

#[derive(OpenApi)]
#[openapi(
    paths(me, protected_resource_metadata),
    components(schemas(Me, TenantContext, TenantKind, TokenKind, Plan, ProtectedResourceMetadata)),
    tags((name = "me", description = "The caller's identity and permissions")),
)]
pub struct MeApi;

/// The caller's context and the plan its workspace is served with.
#[derive(Serialize, ToSchema)]
pub struct Me {
    #[serde(flatten)]
    pub context: TenantContext,
    /// The plan this request was served with and its limits: the plan `plan` names when the
    /// catalogue knows it, else (machine tokens) the one last seen for the workspace, else
    /// the catalogue's default.
    pub plan_limits: Plan,
}

/// Who the caller is, in which workspace, and what they may do, so a client can show or hide
/// actions the way Clerk's `has()` does.
#[utoipa::path(
    get,
    path = "/v1/me",
    tag = "me", operation_id = "getMe",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's context", body = Me),
    )
)]
pub async fn me(state: web::Data<AppState>, ctx: TenantContext) -> HttpResponse {
    let plan_limits = Plan::clone(state.limits.plan_for(&ctx));
    HttpResponse::Ok().json(Me {
        context: ctx,
        plan_limits,
    })
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
    tag = "me", operation_id = "getProtectedResourceMetadata",
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
