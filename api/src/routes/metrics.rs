//! `GET /metrics`: the process's metrics in the Prometheus text format (the series are
//! described in [`crate::telemetry::metrics`] and the README's Operating section).
//!
//! Where it is served, and to whom ([`MetricsAccess`]):
//! - with `RESONANCE_METRICS_BIND`, on that address only (the API's port answers 404), behind
//!   `RESONANCE_METRICS_TOKEN` when it is set;
//! - otherwise on the API's port: behind `RESONANCE_METRICS_TOKEN` when it is set, open in
//!   development, and not at all (404, as an unknown path) in production, so that a
//!   production API never shows its internals to the public by default.
//!
//! Not in the OpenAPI document: it is for the operator's scraper, not for API clients; it
//! answers Prometheus text, not JSON; and whether it exists at all depends on the deployment.

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use sha2::{Digest, Sha256};

use crate::{
    config::Config,
    db::Pools,
    error::{ApiError, Unauthorized},
    telemetry::metrics,
};

/// The content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Who may read `/metrics` on one listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsAccess {
    /// Anyone who can reach the listener.
    Open,
    /// Requests bearing the token whose SHA-256 this is.
    Token([u8; 32]),
    /// Nobody: the path answers 404.
    Hidden,
}

impl MetricsAccess {
    /// On the API's own port (`RESONANCE_BIND`).
    pub fn on_api_port(config: &Config) -> MetricsAccess {
        match (&config.metrics.bind, &config.metrics.token) {
            (Some(_), _) => MetricsAccess::Hidden,
            (None, Some(token)) => MetricsAccess::Token(Sha256::digest(token).into()),
            (None, None) if config.is_development() => MetricsAccess::Open,
            (None, None) => MetricsAccess::Hidden,
        }
    }

    /// On the metrics port (`RESONANCE_METRICS_BIND`).
    pub fn on_metrics_port(config: &Config) -> MetricsAccess {
        match &config.metrics.token {
            Some(token) => MetricsAccess::Token(Sha256::digest(token).into()),
            None => MetricsAccess::Open,
        }
    }

    /// Lets the request through, or says why not.
    fn admit(&self, req: &HttpRequest) -> Result<(), ApiError> {
        let expected = match self {
            MetricsAccess::Open => return Ok(()),
            MetricsAccess::Hidden => return Err(ApiError::NotFound("resource")),
            MetricsAccess::Token(expected) => expected,
        };
        let Some(value) = req.headers().get(header::AUTHORIZATION) else {
            return Err(ApiError::Unauthorized(Unauthorized::missing()));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .unwrap_or_default();
        // Compared as digests, every byte, so the time taken tells nothing about the token.
        let given: [u8; 32] = Sha256::digest(token).into();
        let differ = given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if differ == 0 {
            Ok(())
        } else {
            Err(ApiError::Unauthorized(Unauthorized::invalid(
                "not the metrics token (RESONANCE_METRICS_TOKEN)",
            )))
        }
    }
}

/// The route of this resource. Registered by `server` on the API's port and on the metrics
/// port, each with its own [`MetricsAccess`].
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/metrics").get(scrape));
}

/// Every series, with the database pools sampled now.
async fn scrape(
    req: HttpRequest,
    access: web::Data<MetricsAccess>,
    pools: web::Data<Pools>,
) -> Result<HttpResponse, ApiError> {
    access.admit(&req)?;
    let pools = pools.stats();
    metrics::record_db_pools(pools.open, pools.idle, pools.max);
    Ok(HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(metrics::render()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigArgs;

    fn access(flags: &[&str]) -> (MetricsAccess, MetricsAccess) {
        let args = ConfigArgs::from_flags(flags.iter().copied()).unwrap();
        let config = Config::from_args(&args).unwrap();
        (
            MetricsAccess::on_api_port(&config),
            MetricsAccess::on_metrics_port(&config),
        )
    }

    #[test]
    fn production_never_serves_metrics_to_anyone_by_default() {
        let token = "--metrics-token=0123456789abcdef";
        let digest = MetricsAccess::Token(Sha256::digest("0123456789abcdef").into());
        let (api, _) = access(&["--env=development"]);
        assert_eq!(api, MetricsAccess::Open);
        let (api, _) = access(&["--env=production"]);
        assert_eq!(api, MetricsAccess::Hidden);
        let (api, _) = access(&["--env=production", token]);
        assert_eq!(api, digest);
        let bind = "--metrics-bind=127.0.0.1:9100";
        let (api, separate) = access(&["--env=production", bind]);
        assert_eq!(
            (api, separate),
            (MetricsAccess::Hidden, MetricsAccess::Open)
        );
        let (api, separate) = access(&["--env=development", bind, token]);
        assert_eq!((api, separate), (MetricsAccess::Hidden, digest));
    }
}
