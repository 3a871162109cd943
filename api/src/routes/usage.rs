//! `/v1/usage`: what the workspace has used of its plan this month.

use actix_web::{HttpResponse, web};
use chrono::NaiveDate;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::{
    error::ApiError,
    limits::quota::{self, Period},
    state::AppState,
    tenant::{TenantContext, scoped::ScopedDb},
};

/// The workspace's use of its plan in the current calendar month (UTC).
#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    /// The plan the workspace is served with.
    #[schema(example = "free")]
    pub plan: String,
    /// First day of the month (UTC).
    pub period_start: NaiveDate,
    /// First day of the next month, when the allowance starts over.
    pub period_end: NaiveDate,
    /// Characters generations used this month: the Unicode scalar values of each
    /// generation's trimmed text; failed syntheses are given back.
    pub characters_used: i64,
    /// Characters the plan allows per month.
    pub characters_limit: i64,
    /// Custom voices the workspace has.
    pub custom_voices: i64,
    /// Custom voices the plan allows.
    pub custom_voices_limit: i64,
}

/// The routes of this resource.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/usage").get(get));
}

#[derive(OpenApi)]
#[openapi(
    paths(get),
    components(schemas(Usage)),
    tags((name = "usage", description = "What the workspace has used of its plan")),
)]
pub struct UsageApi;

/// This month's usage and the plan's limits.
#[utoipa::path(
    get, path = "/v1/usage", tag = "usage", operation_id = "getUsage",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "This month's usage", body = Usage),
    )
)]
pub async fn get(state: web::Data<AppState>, ctx: TenantContext) -> Result<HttpResponse, ApiError> {
    let plan = state.limits.plan_for(&ctx).clone();
    let period = Period::current();
    let db = ScopedDb::begin(&state.tenants, &ctx).await?;
    let characters_used = quota::characters_used(&db, period.start).await?;
    let custom_voices = quota::custom_voices(&db).await?;
    db.finish_read();
    Ok(HttpResponse::Ok().json(Usage {
        plan: plan.name.clone(),
        period_start: period.start,
        period_end: period.end,
        characters_used,
        characters_limit: plan.characters_per_month,
        custom_voices,
        custom_voices_limit: plan.max_custom_voices,
    }))
}
