//! `/v1/billing`: the workspace's Polar billing. Admins start a checkout for a plan and open the
//! customer portal (payment methods, invoices, cancellation); every member may read the
//! subscription. The workspace is Polar's customer: its id is the external customer id.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use sea_orm::EntityTrait;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::{
    billing::polar::no_billing_account,
    entities::billing_account,
    error::{ApiError, FieldError, ProblemDetails},
    state::AppState,
    tenant::{TenantContext, permissions, scoped::ScopedDb},
    timestamp,
};

/// Longest `success_url` accepted.
pub const MAX_URL_CHARS: usize = 2048;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"plan": "pro", "success_url": "https://app.example.com/billing/done"}))]
pub struct CreateCheckout {
    /// The plan to subscribe to: a plan of the server's catalogue (`RESONANCE_PLANS_FILE`)
    /// that lists Polar products (`polar_product_ids`). The catalogue is configuration, so its
    /// names are not listed here: `GET /v1/me` shows the current plan; an unknown plan, or
    /// one no Polar product grants, answers 422.
    #[schema(min_length = 1, max_length = 64, example = "pro")]
    pub plan: String,
    /// Where Polar sends the customer after paying: an absolute http(s) URL on one of the
    /// origins in `RESONANCE_CORS_ORIGINS` (the SPA's), else 422, so the API is no open
    /// redirect.
    #[schema(format = Uri, min_length = 1, max_length = 2048)]
    pub success_url: String,
}

/// A Polar-hosted page to send the user to.
#[derive(Debug, Serialize, ToSchema)]
pub struct BillingRedirect {
    /// The hosted checkout or customer portal (short-lived).
    #[schema(format = Uri, example = "https://polar.sh/checkout/polar_c_…")]
    pub url: String,
}

/// The workspace's subscription and the plan it is served with.
#[derive(Debug, Serialize, ToSchema)]
pub struct BillingSubscription {
    /// The effective plan: the subscription's when it is active (or canceled but not yet
    /// ended), else the token's plan, else the catalogue's default.
    #[schema(example = "pro")]
    pub plan: String,
    /// Polar's subscription status (`active`, `trialing`, `past_due`, `canceled`, …); `none`
    /// when the workspace has no subscription.
    #[schema(example = "active")]
    pub status: String,
    /// End of the current billing period, when subscribed.
    #[serde(serialize_with = "timestamp::serialize_option")]
    pub current_period_end: Option<DateTime<Utc>>,
    /// True when the subscription ends at the end of the period (canceled in the portal).
    pub cancel_at_period_end: bool,
}

impl CreateCheckout {
    /// The plan's Polar products and the checked success URL.
    fn validate(self, state: &AppState) -> Result<(Vec<String>, String), Vec<FieldError>> {
        let mut errors = vec![];
        let products = match state.limits.plans.by_name(&self.plan) {
            Some(plan) if !plan.polar_product_ids.is_empty() => plan.polar_product_ids.clone(),
            Some(_) => {
                errors.push(FieldError::new("plan", "no Polar product grants this plan"));
                vec![]
            }
            None => {
                errors.push(FieldError::new("plan", "no such plan in the catalogue"));
                vec![]
            }
        };
        if let Err(message) = allowed_return_url(&self.success_url, &state.config.cors_origins) {
            errors.push(FieldError::new("success_url", message));
        }
        if errors.is_empty() {
            Ok((products, self.success_url))
        } else {
            Err(errors)
        }
    }
}

/// An absolute http(s) URL whose origin is one of `origins`.
fn allowed_return_url(text: &str, origins: &[String]) -> Result<(), String> {
    if text.chars().count() > MAX_URL_CHARS {
        return Err(format!("at most {MAX_URL_CHARS} characters"));
    }
    let url = url::Url::parse(text).map_err(|e| format!("not an absolute URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http(s) URL".into());
    }
    let origin = url.origin().ascii_serialization();
    if origins.contains(&origin) {
        Ok(())
    } else {
        Err(format!(
            "the origin {origin} is not one of RESONANCE_CORS_ORIGINS"
        ))
    }
}

/// The routes of this resource.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/billing/checkout").post(checkout))
        .service(web::resource("/v1/billing/portal").post(portal))
        .service(web::resource("/v1/billing/subscription").get(subscription));
}

#[derive(OpenApi)]
#[openapi(
    paths(checkout, portal, subscription),
    components(schemas(CreateCheckout, BillingRedirect, BillingSubscription)),
    tags((name = "billing", description = "The workspace's subscription, billed through Polar")),
)]
pub struct BillingApi;

/// Start a checkout for a plan (Polar's hosted checkout).
#[utoipa::path(
    post, path = "/v1/billing/checkout", tag = "billing", operation_id = "createBillingCheckout",
    security(("bearer" = [])),
    request_body = CreateCheckout,
    responses(
        (status = 200, description = "The hosted checkout to send the user to", body = BillingRedirect),
        (status = 403, description = "Needs org:billing:manage (admins; the owner of a personal workspace)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "An unknown plan, a plan no Polar product grants, or a success_url outside RESONANCE_CORS_ORIGINS", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 502, description = "`upstream_failed`: Polar refused the request (the server's billing configuration is wrong)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "`billing_not_configured` (no POLAR_ACCESS_TOKEN; no Retry-After), `billing_unavailable` (Polar cannot be reached; with Retry-After), or `database_unavailable`", body = ProblemDetails, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying (not with billing_not_configured)"))),
    )
)]
pub async fn checkout(
    state: web::Data<AppState>,
    ctx: TenantContext,
    body: web::Json<CreateCheckout>,
) -> Result<HttpResponse, ApiError> {
    ctx.require(permissions::BILLING_MANAGE)?;
    state.polar.require_configured()?;
    let (products, success_url) = body.into_inner().validate(&state)?;
    let url = state
        .polar
        .create_checkout(&products, &ctx.tenant_id, &success_url)
        .await?;
    Ok(HttpResponse::Ok().json(BillingRedirect { url }))
}

/// Open the customer portal (payment methods, invoices, cancellation).
#[utoipa::path(
    post, path = "/v1/billing/portal", tag = "billing", operation_id = "createBillingPortalSession",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The customer portal to send the user to", body = BillingRedirect),
        (status = 403, description = "Needs org:billing:manage (admins; the owner of a personal workspace)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "`no_billing_account`: the workspace has not completed a checkout yet", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 502, description = "`upstream_failed`: Polar refused the request (the server's billing configuration is wrong)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "`billing_not_configured` (no POLAR_ACCESS_TOKEN; no Retry-After), `billing_unavailable` (Polar cannot be reached; with Retry-After), or `database_unavailable`", body = ProblemDetails, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying (not with billing_not_configured)"))),
    )
)]
pub async fn portal(
    state: web::Data<AppState>,
    ctx: TenantContext,
) -> Result<HttpResponse, ApiError> {
    ctx.require(permissions::BILLING_MANAGE)?;
    state.polar.require_configured()?;
    // Polar knows the customer once a checkout completed, and then has told us (webhook).
    if account_of(&state, &ctx).await?.is_none() {
        return Err(no_billing_account());
    }
    let url = state.polar.create_portal_session(&ctx.tenant_id).await?;
    Ok(HttpResponse::Ok().json(BillingRedirect { url }))
}

/// The workspace's subscription and effective plan.
#[utoipa::path(
    get, path = "/v1/billing/subscription", tag = "billing", operation_id = "getBillingSubscription",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The subscription (status `none` without one)", body = BillingSubscription),
        (status = 503, description = "`billing_not_configured` (no POLAR_ACCESS_TOKEN; no Retry-After), or `database_unavailable`", body = ProblemDetails, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying (not with billing_not_configured)"))),
    )
)]
pub async fn subscription(
    state: web::Data<AppState>,
    ctx: TenantContext,
) -> Result<HttpResponse, ApiError> {
    state.polar.require_configured()?;
    let plan = state.limits.plan_for(&ctx).name.clone();
    let body = match account_of(&state, &ctx).await? {
        Some(a) => BillingSubscription {
            plan,
            status: a.status,
            current_period_end: a.current_period_end,
            cancel_at_period_end: a.cancel_at_period_end,
        },
        None => BillingSubscription {
            plan,
            status: "none".into(),
            current_period_end: None,
            cancel_at_period_end: false,
        },
    };
    Ok(HttpResponse::Ok().json(body))
}

/// The workspace's billing record: there once Polar has reported a subscription for it.
async fn account_of(
    state: &AppState,
    ctx: &TenantContext,
) -> Result<Option<billing_account::Model>, ApiError> {
    let db = ScopedDb::begin(&state.tenants, ctx).await?;
    let account = db.one(billing_account::Entity::find()).await?;
    db.finish_read();
    Ok(account)
}
