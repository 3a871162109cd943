//! The `TenantContext` extractor: no `/v1` handler runs without a verified token.

use std::{future::Future, pin::Pin};

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, http::header, web};

use super::Authenticator;
use crate::{
    error::{ApiError, Unauthorized},
    http::LoggedTenant,
    limits::Limits,
    telemetry::metrics,
    tenant::{TenantContext, TenantRegistry},
};

/// The token of an `Authorization: Bearer <token>` header.
fn bearer_token(req: &HttpRequest) -> Result<String, ApiError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Err(ApiError::Unauthorized(Unauthorized::missing()));
    };
    let value = value.to_str().map_err(|_| {
        ApiError::Unauthorized(Unauthorized::invalid("malformed Authorization header"))
    })?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::Unauthorized(Unauthorized::invalid(
            "the Authorization scheme must be Bearer",
        )));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(ApiError::Unauthorized(Unauthorized::invalid(
            "empty bearer token",
        )));
    }
    Ok(token.to_owned())
}

impl FromRequest for TenantContext {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<TenantContext, ApiError>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        // Already authenticated by a middleware (`idempotency`): reuse its context.
        if let Some(ctx) = req.extensions().get::<TenantContext>() {
            let ctx = ctx.clone();
            return Box::pin(async move { Ok(ctx) });
        }
        let req = req.clone();
        Box::pin(async move {
            let token = bearer_token(&req).inspect_err(|err| {
                let outcome = match err {
                    ApiError::Unauthorized(Unauthorized { error: None, .. }) => "missing",
                    _ => "malformed",
                };
                metrics::record_auth_verification("none", outcome);
            })?;
            let auth = req
                .app_data::<web::Data<Authenticator>>()
                .ok_or_else(|| ApiError::internal("the Authenticator is not registered"))?;
            // The TCP peer, never `X-Forwarded-For`: a header any client can write must not
            // pick the bucket its Backend API verifications are counted in.
            let client = req.peer_addr().map(|peer| peer.ip());
            let mut ctx = auth.authenticate(&token, client).await?;
            // The tenant id selects rows and reaches PostgreSQL as a setting: an id no
            // organization or user could have is refused here, not failed on in the database.
            if ctx.tenant_id.is_empty() || ctx.tenant_id.chars().any(char::is_control) {
                return Err(ApiError::Unauthorized(Unauthorized::invalid(
                    "the token names no valid workspace",
                )));
            }
            req.extensions_mut()
                .insert(LoggedTenant(ctx.tenant_id.clone()));
            // The workspace's request rate, right after authentication: its key is the
            // workspace, whichever token or address the request came with.
            if let Some(limits) = req.app_data::<web::Data<Limits>>() {
                // The plan the workspace pays for wins over the token's (billing configured).
                if let Some(tenants) = req.app_data::<web::Data<TenantRegistry>>() {
                    ctx.subscribed_plan = limits.subscribed_plan(&ctx, tenants).await;
                }
                match limits.admit(&ctx).await {
                    Ok(state) => {
                        req.extensions_mut().insert(state);
                    }
                    Err((state, refused)) => {
                        req.extensions_mut().insert(state);
                        return Err(refused);
                    }
                }
            }
            Ok(ctx)
        })
    }
}
