//! Plans and limits: the plan catalogue ([`plans`]), per-workspace request rates ([`rate`]),
//! and monthly character quotas and the custom-voice allowance ([`quota`]).
//!
//! The rate limiter runs right after authentication (in the `TenantContext` extractor),
//! because its key is the workspace, not the caller's address or token. Every response of a
//! request it counted carries the `RateLimit-Policy` and `RateLimit` fields (see
//! [`rate_limit_headers`]).

pub mod plans;
pub mod quota;
pub mod rate;

use std::sync::Arc;

use sea_orm::EntityTrait;

use actix_web::{
    Error, HttpMessage,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::header::{HeaderName, HeaderValue},
    middleware::Next,
};

use crate::{
    config::LimitsConfig,
    entities::billing_account,
    error::ApiError,
    tenant::{ScopedDb, TenantContext, TenantRegistry},
};
pub use plans::{Plan, PlanCatalogue};
pub use rate::RateState;

/// `RateLimit-Policy` and `RateLimit`, in the structured-field form of
/// draft-ietf-httpapi-ratelimit-headers-09 (March 2025):
/// `RateLimit-Policy: "free";q=20;w=4` (the plan: a burst of `q` requests, refilled over `w`
/// seconds) and `RateLimit: "free";r=17;t=1` (`r` requests left now, `t` seconds until the
/// burst is whole again).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The plans, the rate limiter, and the plan each workspace was last seen with.
pub struct Limits {
    pub plans: PlanCatalogue,
    rate: rate::RateLimits,
    /// Machine tokens carry no plan: they get the plan the workspace's last session token
    /// named (in this process; the default until one was seen).
    last_plan: moka::sync::Cache<String, usize>,
    /// With billing configured: the plan each workspace's subscription grants (None: no
    /// subscription that grants one), kept [`SUBSCRIPTION_TTL`]. The webhook that changes a
    /// subscription forgets the workspace on every instance at once (`events`), the TTL bounds
    /// what a missed event could cost.
    subscriptions: Option<moka::future::Cache<String, Option<usize>>>,
}

/// How long an instance trusts what it read of a workspace's subscription: a change Polar
/// reports reaches every instance within this time.
pub const SUBSCRIPTION_TTL: std::time::Duration = std::time::Duration::from_secs(1);

impl Limits {
    /// Loads the catalogue and sets up the limiter (Redis is connected on first use).
    pub fn new(config: &LimitsConfig) -> anyhow::Result<Limits> {
        let plans = PlanCatalogue::load(config.plans_file.as_deref())
            .map_err(|e| anyhow::anyhow!("RESONANCE_PLANS_FILE: {e}"))?;
        let rate = rate::RateLimits::new(
            &plans,
            config.redis_url.as_deref(),
            &config.redis_key_prefix,
        )?;
        Ok(Limits {
            plans,
            rate,
            last_plan: moka::sync::Cache::new(100_000),
            subscriptions: config.plans_from_billing.then(|| {
                moka::future::Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(SUBSCRIPTION_TTL)
                    .build()
            }),
        })
    }

    /// The catalogue position of the plan the workspace's subscription grants, when billing
    /// is configured and it has one. Without billing this costs nothing; with it, one read
    /// per workspace and [`SUBSCRIPTION_TTL`] (concurrent requests share it). When the read
    /// fails, the request keeps the token's plan: billing never takes the API down.
    pub async fn subscribed_plan(
        &self,
        ctx: &TenantContext,
        tenants: &TenantRegistry,
    ) -> Option<usize> {
        let cache = self.subscriptions.as_ref()?;
        let load = async {
            let db = ScopedDb::begin(tenants, ctx).await?;
            let account = db.one(billing_account::Entity::find()).await?;
            db.finish_read();
            let now = chrono::Utc::now();
            Ok::<_, ApiError>(
                account
                    .filter(|a| a.grants_plan(now))
                    .and_then(|a| self.plans.for_polar_product(a.product_id.as_deref()?))
                    .map(|plan| plan.index),
            )
        };
        match cache.try_get_with(ctx.tenant_id.clone(), load).await {
            Ok(plan) => plan,
            Err(error) => {
                tracing::warn!(tenant = %ctx.tenant_id, %error, "cannot read the workspace's subscription; using the token's plan");
                None
            }
        }
    }

    /// Forgets what this instance read of the workspace's subscription (it just changed).
    pub async fn forget_subscription(&self, tenant_id: &str) {
        if let Some(cache) = &self.subscriptions {
            cache.invalidate(tenant_id).await;
        }
    }

    /// Forgets every subscription read (events may have been missed).
    pub fn forget_all_subscriptions(&self) {
        if let Some(cache) = &self.subscriptions {
            cache.invalidate_all();
        }
    }

    /// The plan of the request's workspace: its subscription's (billing configured, see
    /// [`Limits::subscribed_plan`]), else the token's `pla` when the catalogue knows it, else
    /// the plan last seen for the workspace (machine tokens), else the default.
    pub fn plan_for(&self, ctx: &TenantContext) -> &Arc<Plan> {
        if let Some(plan) = ctx.subscribed_plan.and_then(|i| self.plans.get(i)) {
            return plan;
        }
        match ctx.plan.as_deref() {
            Some(claim) => match self.plans.for_claim(claim) {
                Some(plan) => {
                    if self.last_plan.get(&ctx.tenant_id) != Some(plan.index) {
                        self.last_plan.insert(ctx.tenant_id.clone(), plan.index);
                    }
                    plan
                }
                None => self.plans.default_plan(),
            },
            None => self
                .last_plan
                .get(&ctx.tenant_id)
                .and_then(|i| self.plans.get(i))
                .unwrap_or_else(|| self.plans.default_plan()),
        }
    }

    /// Counts the request against its workspace's bucket. The state goes with the request
    /// either way (for the headers); over the limit the answer is 429 `rate_limited`.
    pub async fn admit(&self, ctx: &TenantContext) -> Result<RateState, (RateState, ApiError)> {
        let plan = self.plan_for(ctx);
        let state = self.rate.check(&ctx.tenant_id, plan).await;
        match state.retry_after {
            None => Ok(state),
            Some(wait) => {
                // Whole seconds, rounded up: the header has no fractions.
                let retry_after = std::time::Duration::from_secs(wait.as_secs() + 1);
                Err((state, ApiError::RateLimited { retry_after }))
            }
        }
    }
}

/// Middleware: puts the `RateLimit-Policy` and `RateLimit` fields on the response of every
/// request the limiter counted (every authenticated `/v1` request, refused ones included).
pub async fn rate_limit_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let mut response = next.call(req).await?;
    let state = response.request().extensions_mut().remove::<RateState>();
    if let Some(state) = state {
        let headers = response.headers_mut();
        headers.insert(RATELIMIT_POLICY, state.plan.policy.clone());
        let value = format!(
            "\"{}\";r={};t={}",
            state.plan.name, state.remaining, state.reset_secs
        );
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(RATELIMIT, value);
        }
    }
    Ok(response)
}
