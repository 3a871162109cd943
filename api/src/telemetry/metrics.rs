//! Metrics in the Prometheus text format, recorded through the `metrics` facade and rendered
//! by `metrics-exporter-prometheus` (served by `routes::metrics`).
//!
//! One recorder per process ([`install`]): every App a process starts (the tests start many)
//! records into it, which is what a scrape of a production process (one App) wants. Label
//! values are all from small fixed sets (route templates, methods, statuses, token kinds,
//! outcomes): never a tenant, user or token, so the number of series stays bounded.
//!
//! Recording is cheap: labels are `&'static str` (route templates are interned once), so a
//! counter increment builds no string; `cargo bench -p resonance-api --bench metrics` measures
//! what one request costs.

use std::{
    collections::HashMap,
    sync::{OnceLock, RwLock},
    thread,
    time::Duration,
};

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets of `http_request_duration_seconds`: 1 ms to 10 s.
const HTTP_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets of `speech_synthesis_duration_seconds`: 50 ms to 2 min.
const SPEECH_BUCKETS: [f64; 11] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];
/// How often recorded histogram samples are folded into their buckets when nobody scrapes
/// (between scrapes they are kept as raw samples).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);
/// More distinct route templates than this are counted as `other` (the App has a few dozen).
const MAX_ROUTES: usize = 512;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder, once; later calls return the same handle. When another
/// recorder was installed first (by an embedding program), ours renders nothing recorded.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("http_request_duration_seconds".into()),
                &HTTP_BUCKETS,
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("speech_synthesis_duration_seconds".into()),
                    &SPEECH_BUCKETS,
                )
            })
            .expect("the bucket lists are not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed: /metrics shows no series");
        }
        describe();
        let upkeep = handle.clone();
        let spawned = thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                }
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot start the metrics upkeep thread");
        }
        handle
    })
}

/// The exposition of every series, in the Prometheus text format (version 0.0.4).
pub fn render() -> String {
    install().render()
}

/// The `HELP` lines.
fn describe() {
    describe_counter!(
        "http_requests_total",
        "Requests answered, by route template (`unmatched`: no route), method and status"
    );
    describe_histogram!(
        "http_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time from receiving a request to its response being ready, by route template and method"
    );
    describe_gauge!(
        "db_pool_connections",
        "Open database connections, over the process's pools"
    );
    describe_gauge!(
        "db_pool_idle_connections",
        "Open database connections not in use, over the process's pools"
    );
    describe_gauge!(
        "db_pool_max_connections",
        "Database connections the process's pools may open"
    );
    describe_counter!(
        "auth_verifications_total",
        "Bearer tokens checked, by token kind and outcome (`accepted` or why not)"
    );
    describe_counter!(
        "auth_token_cache_hits_total",
        "Token checks answered by the verified-token cache"
    );
    describe_counter!(
        "auth_token_cache_misses_total",
        "Token checks that needed a verification (RSA signature or Clerk Backend API call)"
    );
    describe_counter!(
        "auth_jwks_refreshes_total",
        "Fetches of the Clerk JWKS, by outcome"
    );
    describe_counter!(
        "rate_limit_rejections_total",
        "Requests refused by a limit, by limiter"
    );
    describe_counter!(
        "speech_syntheses_total",
        "Speech syntheses run, by provider and outcome"
    );
    describe_histogram!(
        "speech_synthesis_duration_seconds",
        metrics::Unit::Seconds,
        "Time one synthesis took, including checking its audio, by provider"
    );
    describe_counter!(
        "speech_rejections_total",
        "Speech generations refused with 429 by the concurrency limits, by reason"
    );
}

/// The label of an HTTP method: the methods the API knows, `other` for the rest (any token
/// is a valid method, so a client must not be able to mint series).
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "PUT" => "PUT",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// The label of a status code, without formatting one per request.
fn status_label(status: u16) -> &'static str {
    static LABELS: OnceLock<Vec<String>> = OnceLock::new();
    let labels = LABELS.get_or_init(|| (100..600u16).map(|s| s.to_string()).collect());
    match status {
        100..600 => &labels[usize::from(status - 100)],
        _ => "other",
    }
}

/// The label of a route template: interned, so each template is allocated once per process.
/// `None` (no route matched) is `unmatched`.
fn route_label(route: Option<&str>) -> &'static str {
    static ROUTES: OnceLock<RwLock<HashMap<String, &'static str>>> = OnceLock::new();
    let Some(route) = route else {
        return "unmatched";
    };
    let routes = ROUTES.get_or_init(Default::default);
    if let Some(label) = routes.read().unwrap_or_else(|e| e.into_inner()).get(route) {
        return label;
    }
    let mut routes = routes.write().unwrap_or_else(|e| e.into_inner());
    if routes.len() >= MAX_ROUTES {
        return "other";
    }
    // Leaked on purpose: route templates are a small fixed set, kept for the process's life.
    let label: &'static str = Box::leak(route.to_owned().into_boxed_str());
    routes.insert(route.to_owned(), label);
    label
}

/// One answered request: `route` is the matched route template (`/v1/tasks/{id}`), `method`
/// from [`method_label`].
pub fn record_request(route: Option<&str>, method: &'static str, status: u16, elapsed: Duration) {
    let route = route_label(route);
    counter!("http_requests_total", "route" => route, "method" => method, "status" => status_label(status))
        .increment(1);
    histogram!("http_request_duration_seconds", "route" => route, "method" => method)
        .record(elapsed.as_secs_f64());
}

/// The process's database pools, summed, as sampled at scrape time.
pub fn record_db_pools(open: u64, idle: u64, max: u64) {
    gauge!("db_pool_connections").set(open as f64);
    gauge!("db_pool_idle_connections").set(idle as f64);
    gauge!("db_pool_max_connections").set(max as f64);
}

/// One bearer token checked: `kind` (`session`, `api_key`, `m2m`, `oauth`, `development`,
/// `none`) and `outcome` (`accepted`, or the reason it was not).
pub fn record_auth_verification(kind: &'static str, outcome: &'static str) {
    counter!("auth_verifications_total", "kind" => kind, "outcome" => outcome).increment(1);
}

/// A lookup in the verified-token cache.
pub fn record_token_cache(hit: bool) {
    if hit {
        counter!("auth_token_cache_hits_total").increment(1);
    } else {
        counter!("auth_token_cache_misses_total").increment(1);
    }
}

/// A fetch of the Clerk JWKS.
pub fn record_jwks_refresh(success: bool) {
    let outcome = if success { "success" } else { "failure" };
    counter!("auth_jwks_refreshes_total", "outcome" => outcome).increment(1);
}

/// A request refused by `limiter` (`clerk_verify_per_address`: 429; `clerk_verify_in_flight`:
/// 503; `speech_per_tenant`, `speech_capacity`: 429).
pub fn record_rate_limited(limiter: &'static str) {
    counter!("rate_limit_rejections_total", "limiter" => limiter).increment(1);
}

/// One synthesis: `outcome` is `success`, `timeout`, `provider_error` or `unusable_audio`.
pub fn record_synthesis(provider: &'static str, outcome: &'static str, elapsed: Duration) {
    counter!("speech_syntheses_total", "provider" => provider, "outcome" => outcome).increment(1);
    histogram!("speech_synthesis_duration_seconds", "provider" => provider)
        .record(elapsed.as_secs_f64());
}

/// A generation refused by the synthesis limits: `reason` is `tenant_limit` or `capacity`.
pub fn record_speech_rejection(reason: &'static str) {
    counter!("speech_rejections_total", "reason" => reason).increment(1);
    let limiter = match reason {
        "tenant_limit" => "speech_per_tenant",
        _ => "speech_capacity",
    };
    record_rate_limited(limiter);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_fixed_sets() {
        assert_eq!(status_label(200), "200");
        assert_eq!(status_label(599), "599");
        assert_eq!(status_label(99), "other");
        assert_eq!(status_label(600), "other");
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("BREW"), "other");
        assert_eq!(route_label(None), "unmatched");
        let a = route_label(Some("/v1/tasks/{id}"));
        let b = route_label(Some("/v1/tasks/{id}"));
        assert_eq!(a, "/v1/tasks/{id}");
        assert!(std::ptr::eq(a, b), "interned once");
    }

    #[test]
    fn recorded_series_render() {
        install();
        record_request(Some("/unit/{id}"), "GET", 204, Duration::from_millis(3));
        let text = render();
        assert!(
            text.contains(r#"http_requests_total{route="/unit/{id}",method="GET",status="204"}"#),
            "{text}"
        );
        assert!(
            text.contains("http_request_duration_seconds_bucket{"),
            "{text}"
        );
    }
}
