//! What a flood of tokens we cannot check ourselves may cost: every cache miss of an
//! `ak_…`/`mt_…`/`oat_…` token is a Clerk Backend API call, so those calls are limited.
//!
//! - Per client address, a token bucket (`CLERK_VERIFY_RATE_PER_IP` per second, bursts of
//!   `CLERK_VERIFY_BURST_PER_IP`): beyond it the request answers 429 with `Retry-After` and
//!   makes no call. Cache hits never count.
//! - In total, at most `CLERK_VERIFY_MAX_IN_FLIGHT` calls at once: beyond it 503 with
//!   `Retry-After` (the server, not this client, is out of capacity).
//!
//! The client address is the TCP peer. `X-Forwarded-For` is not trusted: behind a proxy
//! every client shares the proxy's bucket.

use std::{
    net::{IpAddr, Ipv6Addr},
    num::NonZeroU32,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::{config::ClerkLimits, error::ApiError, telemetry::metrics};

/// How often addresses whose bucket is full again are forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// More addresses than this are swept at most once a second instead.
const SWEEP_ABOVE: usize = 50_000;
/// What a client is asked to wait when every Backend API slot is taken.
const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);
/// The 503's detail when every Backend API slot is taken.
pub(crate) const BUSY_DETAIL: &str =
    "too many machine-token verifications in progress; retry shortly";

/// The limits on Backend API verification calls.
pub struct VerifyLimits {
    per_client: DefaultKeyedRateLimiter<IpAddr>,
    in_flight: Semaphore,
    started: Instant,
    /// Milliseconds since `started` of the last sweep.
    last_sweep: AtomicU64,
}

/// The bucket of an address: IPv4 (also IPv4-mapped IPv6) as is, IPv6 by its /64 prefix, the
/// block one subscriber usually has; requests with no peer address share one bucket.
fn client_key(client: Option<IpAddr>) -> IpAddr {
    match client.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        Some(v4) => v4,
        None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

impl VerifyLimits {
    pub fn new(limits: &ClerkLimits) -> VerifyLimits {
        let rate = NonZeroU32::new(limits.verify_rate_per_ip.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(limits.verify_burst_per_ip.max(1)).unwrap_or(NonZeroU32::MIN);
        VerifyLimits {
            per_client: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            in_flight: Semaphore::new(limits.verify_max_in_flight.max(1)),
            started: Instant::now(),
            last_sweep: AtomicU64::new(0),
        }
    }

    /// Takes one Backend API call from the client's bucket, or 429 saying when the next one
    /// is due.
    pub fn admit(&self, client: Option<IpAddr>) -> Result<(), ApiError> {
        let verdict = self.per_client.check_key(&client_key(client));
        self.sweep_now_and_then(self.started.elapsed().as_millis() as u64);
        verdict.map_err(|not_until| {
            metrics::record_rate_limited("clerk_verify_per_address");
            let wait = not_until.wait_time_from(self.per_client.clock().now());
            ApiError::TooManyRequests {
                detail: "too many machine tokens to verify from this address; retry later".into(),
                // Whole seconds, rounded up: the header has no fractions.
                retry_after: Duration::from_secs(wait.as_secs() + 1),
            }
        })
    }

    /// A slot for one Backend API call, held until the call ends; 503 when all are taken.
    pub fn call_slot(&self) -> Result<SemaphorePermit<'_>, ApiError> {
        self.in_flight.try_acquire().map_err(|_| {
            metrics::record_rate_limited("clerk_verify_in_flight");
            ApiError::ServiceUnavailable {
                detail: BUSY_DETAIL.into(),
                retry_after: Some(BUSY_RETRY_AFTER),
            }
        })
    }

    /// Client addresses tracked now (those whose bucket is not full).
    pub fn tracked_clients(&self) -> usize {
        self.per_client.len()
    }

    /// Forgets addresses whose bucket has refilled, so the keyed state holds only the
    /// addresses of the last few seconds.
    /// `now`: milliseconds since `started`.
    fn sweep_now_and_then(&self, now: u64) {
        let last = self.last_sweep.load(Ordering::Relaxed);
        let since = Duration::from_millis(now.saturating_sub(last));
        let due = since >= SWEEP_EVERY
            || (since >= Duration::from_secs(1) && self.per_client.len() > SWEEP_ABOVE);
        if due
            && self
                .last_sweep
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.per_client.retain_recent();
            self.per_client.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rate: u32, burst: u32, in_flight: usize) -> VerifyLimits {
        VerifyLimits::new(&ClerkLimits {
            verify_rate_per_ip: rate,
            verify_burst_per_ip: burst,
            verify_max_in_flight: in_flight,
            ..ClerkLimits::default()
        })
    }

    #[test]
    fn a_client_gets_its_burst_then_429_with_retry_after() {
        let limits = limits(1, 3, 8);
        let me = Some("203.0.113.7".parse().unwrap());
        for _ in 0..3 {
            limits.admit(me).unwrap();
        }
        match limits.admit(me) {
            Err(ApiError::TooManyRequests { retry_after, .. }) => {
                assert!(retry_after >= Duration::from_secs(1), "{retry_after:?}");
                assert!(retry_after <= Duration::from_secs(2), "{retry_after:?}");
            }
            other => panic!("expected 429, got {other:?}"),
        }
        // Another address has a bucket of its own.
        limits.admit(Some("203.0.113.8".parse().unwrap())).unwrap();
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_64_and_mapped_ipv4_is_ipv4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(Some(a)), client_key(Some(b)));
        assert_ne!(client_key(Some(a)), client_key(Some(c)));
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        assert_eq!(
            client_key(Some(mapped)),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn calls_in_flight_are_capped() {
        let limits = limits(10, 20, 2);
        let first = limits.call_slot().unwrap();
        let _second = limits.call_slot().unwrap();
        assert!(matches!(
            limits.call_slot(),
            Err(ApiError::ServiceUnavailable {
                retry_after: Some(_),
                ..
            })
        ));
        drop(first);
        let _third = limits.call_slot().unwrap();
    }

    #[test]
    fn refilled_buckets_are_forgotten() {
        let limits = limits(1000, 1, 8);
        for i in 0..1000u32 {
            let _ = limits.admit(Some(IpAddr::from(i.to_be_bytes())));
        }
        assert_eq!(limits.tracked_clients(), 1000);
        std::thread::sleep(Duration::from_millis(20));
        // Not yet due: nothing is forgotten.
        limits.sweep_now_and_then(1);
        assert_eq!(limits.tracked_clients(), 1000);
        limits.sweep_now_and_then(SWEEP_EVERY.as_millis() as u64 + 1);
        assert_eq!(limits.tracked_clients(), 0);
    }
}
