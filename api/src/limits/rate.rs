//! Per-workspace request rates: a GCRA bucket per workspace with its plan's rate and burst.
//!
//! - Without Redis the buckets live in this process (`governor`, one keyed limiter per plan):
//!   a lookup in a concurrent map, no I/O and no allocation once the workspace has a bucket.
//! - With `RESONANCE_REDIS_URL` they live in Redis, so every replica spends one budget: one
//!   Lua script per request ([`GCRA_SCRIPT`], a single round trip, atomic in Redis).
//! - Redis unreachable or slow: the request is served (fail open) and counted in this
//!   process's buckets instead; Redis is not tried again for [`REDIS_BACKOFF`], and a warning
//!   is logged at most once per [`WARN_EVERY`]. Readiness does not depend on Redis.

use std::{
    num::NonZeroU32,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
    state::keyed::DefaultKeyedStateStore,
};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::plans::{Plan, PlanCatalogue};

type KeyedLimiter =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// How long a request waits for Redis before it is served without it.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// After a Redis failure, how long requests use the in-process buckets before Redis is tried
/// again.
const REDIS_BACKOFF: Duration = Duration::from_secs(1);
/// At most one "Redis unavailable" warning this often.
const WARN_EVERY: Duration = Duration::from_secs(30);
/// How often workspaces whose bucket is full again are forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// GCRA in one atomic step. KEYS[1]: the workspace's bucket; ARGV[1]: microseconds between
/// requests at the sustained rate; ARGV[2]: the burst. The bucket holds the theoretical
/// arrival time (microseconds, Redis's clock) and expires when it would be full again.
/// Returns {allowed (1/0), remaining, retry after (ms), full again in (ms)}.
pub const GCRA_SCRIPT: &str = r"
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - interval * burst
if now < allow_at then
  return {0, 0, math.ceil((allow_at - now) / 1000), math.ceil((tat - now) / 1000)}
end
local ttl = math.max(1, math.ceil((new_tat - now) / 1000))
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl)
return {1, math.floor((now - allow_at) / interval), 0, ttl}
";

/// What the limiter decided for one request; the headers are rendered from it.
#[derive(Debug, Clone)]
pub struct RateState {
    pub plan: Arc<Plan>,
    /// Requests left in the burst right now.
    pub remaining: u64,
    /// Seconds until the burst is whole again.
    pub reset_secs: u64,
    /// Set when the request was refused: how long until one is admitted.
    pub retry_after: Option<Duration>,
}

struct RedisBuckets {
    connection: ConnectionManager,
    script: redis::Script,
    prefix: String,
    /// Milliseconds since `started` until which Redis is not tried.
    skip_until: AtomicU64,
    /// Milliseconds since `started` of the last warning (+1, 0: none yet).
    last_warning: AtomicU64,
}

/// The buckets of every workspace.
pub struct RateLimits {
    local: Vec<KeyedLimiter>,
    redis: Option<RedisBuckets>,
    started: Instant,
    last_sweep: AtomicU64,
}

impl RateLimits {
    /// In-process buckets for each plan, and Redis when `redis_url` is given (connected on
    /// first use, so start-up does not wait for Redis).
    pub fn new(
        catalogue: &PlanCatalogue,
        redis_url: Option<&str>,
        prefix: &str,
    ) -> anyhow::Result<RateLimits> {
        let local = catalogue
            .plans()
            .iter()
            .map(|plan| {
                let rate = NonZeroU32::new(plan.requests_per_second).unwrap_or(NonZeroU32::MIN);
                let burst = NonZeroU32::new(plan.burst).unwrap_or(NonZeroU32::MIN);
                RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
                    .with_middleware::<StateInformationMiddleware>()
            })
            .collect();
        let redis = match redis_url {
            None => None,
            Some(url) => {
                let client = redis::Client::open(url)
                    .map_err(|e| anyhow::anyhow!("RESONANCE_REDIS_URL: {e}"))?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(REDIS_TIMEOUT))
                    .set_response_timeout(Some(REDIS_TIMEOUT))
                    .set_number_of_retries(1);
                let connection = ConnectionManager::new_lazy_with_config(client, config)
                    .map_err(|e| anyhow::anyhow!("RESONANCE_REDIS_URL: {e}"))?;
                Some(RedisBuckets {
                    connection,
                    script: redis::Script::new(GCRA_SCRIPT),
                    prefix: prefix.to_owned(),
                    skip_until: AtomicU64::new(0),
                    last_warning: AtomicU64::new(0),
                })
            }
        };
        Ok(RateLimits {
            local,
            redis,
            started: Instant::now(),
            last_sweep: AtomicU64::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Counts one request of `tenant` against its plan's bucket.
    pub async fn check(&self, tenant: &String, plan: &Arc<Plan>) -> RateState {
        if let Some(redis) = &self.redis {
            let now = self.now_ms();
            if now >= redis.skip_until.load(Ordering::Relaxed) {
                match self.check_redis(redis, tenant, plan).await {
                    Ok(state) => return state,
                    Err(error) => {
                        redis
                            .skip_until
                            .store(now + REDIS_BACKOFF.as_millis() as u64, Ordering::Relaxed);
                        let last = redis.last_warning.load(Ordering::Relaxed);
                        let due = last == 0
                            || now.saturating_sub(last - 1) >= WARN_EVERY.as_millis() as u64;
                        if due
                            && redis
                                .last_warning
                                .compare_exchange(
                                    last,
                                    now + 1,
                                    Ordering::Relaxed,
                                    Ordering::Relaxed,
                                )
                                .is_ok()
                        {
                            tracing::warn!(
                                %error,
                                "Redis is unavailable: rate limits are counted per process until it returns"
                            );
                        }
                    }
                }
            }
        }
        self.check_local(tenant, plan)
    }

    async fn check_redis(
        &self,
        redis: &RedisBuckets,
        tenant: &str,
        plan: &Arc<Plan>,
    ) -> anyhow::Result<RateState> {
        let mut connection = redis.connection.clone();
        let mut invocation = redis.script.prepare_invoke();
        invocation
            .key(format!("{}rate:{tenant}", redis.prefix))
            .arg(plan.emission_interval_us())
            .arg(plan.burst);
        let reply: Vec<i64> =
            tokio::time::timeout(REDIS_TIMEOUT, invocation.invoke_async(&mut connection))
                .await
                .map_err(|_| anyhow::anyhow!("no answer within {REDIS_TIMEOUT:?}"))??;
        let [allowed, remaining, retry_ms, reset_ms] = reply[..] else {
            anyhow::bail!("unexpected reply from the rate-limit script: {reply:?}");
        };
        Ok(RateState {
            plan: plan.clone(),
            remaining: remaining.max(0) as u64,
            reset_secs: (reset_ms.max(0) as u64).div_ceil(1000),
            retry_after: (allowed == 0).then(|| Duration::from_millis(retry_ms.max(1) as u64)),
        })
    }

    fn check_local(&self, tenant: &String, plan: &Arc<Plan>) -> RateState {
        self.sweep_now_and_then();
        let Some(limiter) = self.local.get(plan.index) else {
            return RateState {
                plan: plan.clone(),
                remaining: u64::from(plan.burst),
                reset_secs: 0,
                retry_after: None,
            };
        };
        let interval = Duration::from_micros(plan.emission_interval_us());
        match limiter.check_key(tenant) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let missing = plan.burst.saturating_sub(remaining);
                RateState {
                    plan: plan.clone(),
                    remaining: u64::from(remaining),
                    reset_secs: (interval * missing).as_secs_f64().ceil() as u64,
                    retry_after: None,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(limiter.clock().now());
                RateState {
                    plan: plan.clone(),
                    remaining: 0,
                    reset_secs: (interval * plan.burst).as_secs_f64().ceil() as u64,
                    retry_after: Some(wait.max(Duration::from_millis(1))),
                }
            }
        }
    }

    /// Forgets workspaces whose bucket has refilled, now and then.
    fn sweep_now_and_then(&self) {
        let now = self.now_ms();
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= SWEEP_EVERY.as_millis() as u64
            && self
                .last_sweep
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            for limiter in &self.local {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue() -> PlanCatalogue {
        PlanCatalogue::parse(
            r#"{"default":"tiny","plans":{"tiny":{"requests_per_second":1,"burst":3,"characters_per_month":1,"max_custom_voices":1}}}"#,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_workspace_gets_its_burst_then_a_retry_after() {
        let catalogue = catalogue();
        let limits = RateLimits::new(&catalogue, None, "t:").unwrap();
        let plan = catalogue.default_plan();
        let me = "org_a".to_owned();
        for left in [2, 1, 0] {
            let state = limits.check(&me, plan).await;
            assert_eq!(state.remaining, left);
            assert!(state.retry_after.is_none());
        }
        let refused = limits.check(&me, plan).await;
        let wait = refused.retry_after.expect("refused");
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        // Another workspace has a bucket of its own.
        let other = limits.check(&"org_b".to_owned(), plan).await;
        assert!(other.retry_after.is_none());
    }

    #[tokio::test]
    async fn unreachable_redis_fails_open_to_the_local_buckets() {
        let catalogue = catalogue();
        // A port nothing listens on.
        let limits = RateLimits::new(&catalogue, Some("redis://127.0.0.1:9/"), "t:").unwrap();
        let plan = catalogue.default_plan();
        let started = Instant::now();
        let state = limits.check(&"org_a".to_owned(), plan).await;
        assert!(state.retry_after.is_none());
        assert_eq!(state.remaining, 2);
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
