//! Clerk authentication: every token kind becomes a [`TenantContext`].
//!
//! - Session JWTs (and `at+jwt` OAuth access tokens, machine JWTs) are verified locally
//!   against Clerk's JWKS ([`keys`], [`session`]); a verified token is cached by its SHA-256
//!   until its `exp`, so repeated requests skip the RSA verification.
//! - `ak_…`, `mt_…`, `oat_…` are verified by Clerk's Backend API ([`machine`]); verdicts are
//!   cached for `CLERK_MACHINE_TOKEN_CACHE_SECS`, and cache misses are limited per client
//!   address and in total ([`limits`]).
//! - In development with no Clerk settings, tokens from `resonance dev token` ([`dev`]).
//!
//! Both kinds share one cache, bounded by bytes (`CLERK_TOKEN_CACHE_MAX_BYTES`): each entry
//! weighs what it holds in memory. The auth code never touches the database.

pub mod dev;
pub mod extractor;
pub mod inspect;
pub mod keys;
pub mod limits;
pub mod machine;
pub mod revocations;
pub mod session;
pub mod svix;

use std::{
    collections::BTreeSet,
    mem::size_of,
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use moka::{Expiry, future::Cache};
use sha2::{Digest, Sha256};

use self::{
    keys::{JwksCache, KeySource},
    limits::VerifyLimits,
    machine::MachineVerifier,
    revocations::Revocations,
    session::{MAX_TOKEN_BYTES, SessionVerifier},
};
use crate::{
    config::{ClerkConfig, ClerkLimits, Config, Environment, frontend_api_host},
    error::{ApiError, Unauthorized},
    telemetry::metrics,
    tenant::{TenantContext, TenantKind, TokenKind},
};

/// Why a session token older than a change of its membership is refused.
const REVOKED_SESSION: &str =
    "session revoked: the organization membership changed after this token was issued";

/// How long clients are asked to wait when Clerk cannot be reached.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// 401 `invalid_token` saying what was wrong.
pub(crate) fn reject(description: impl Into<String>) -> ApiError {
    ApiError::Unauthorized(Unauthorized::invalid(description))
}

/// 503 with `Retry-After`: we could not check the token, so it is not accepted.
pub(crate) fn unavailable(detail: &str) -> ApiError {
    ApiError::ServiceUnavailable {
        detail: format!("{detail}; retry shortly"),
        retry_after: Some(RETRY_AFTER),
    }
}

/// Cache key: the token itself is never stored.
pub(crate) fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A verdict on a token: a context, or why it is refused (machine tokens only: a refused
/// session token is not cached).
#[derive(Clone)]
pub(crate) enum Verdict {
    Accepted(Arc<TenantContext>),
    Refused(String),
}

/// A verdict and how long it may be reused.
#[derive(Clone)]
pub(crate) struct Cached {
    pub(crate) verdict: Verdict,
    pub(crate) lifetime: Duration,
}

impl Cached {
    pub(crate) fn into_result(self) -> Result<TenantContext, ApiError> {
        match self.verdict {
            Verdict::Accepted(ctx) => Ok(Arc::unwrap_or_clone(ctx)),
            Verdict::Refused(why) => Err(reject(why)),
        }
    }
}

/// An entry lives as long as its verdict may be reused (never past the token's expiry).
struct UntilStale;

impl Expiry<[u8; 32], Cached> for UntilStale {
    fn expire_after_create(&self, _: &[u8; 32], value: &Cached, _: Instant) -> Option<Duration> {
        Some(value.lifetime)
    }
}

/// Verified tokens by the SHA-256 of the token (collision resistant: the key decides who is
/// authenticated, and the token itself is never stored).
type TokenCache = Cache<[u8; 32], Cached>;

fn token_cache(max_bytes: u64) -> TokenCache {
    Cache::builder()
        .max_capacity(max_bytes)
        .weigher(|_, value: &Cached| entry_weight(value))
        .expire_after(UntilStale)
        .build()
}

/// What moka keeps per entry besides the key and value: the key's `Arc`, the value entry and
/// its metadata, the access-order and timer-wheel nodes, the hash-table slot and frequency
/// sketch share. Measured with a counting allocator (`api/tests/token_cache_memory.rs`).
const CACHE_ENTRY_OVERHEAD: usize = 320;

/// The bytes a heap allocation of `n` bytes takes (16-byte steps, an 8-byte header, 32 at
/// least, as glibc's malloc does); none for `n == 0`.
fn allocation(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (n + 8).next_multiple_of(16).max(32)
    }
}

fn string_bytes(s: &str) -> usize {
    allocation(s.len())
}

fn option_bytes(s: &Option<String>) -> usize {
    s.as_ref().map_or(0, |s| allocation(s.capacity()))
}

/// A B-tree set of strings: nodes of up to 11 keys (counted as 8 on average) and each
/// string's own allocation.
fn set_bytes(set: &BTreeSet<String>) -> usize {
    let node = allocation(11 * size_of::<String>() + 16);
    set.len().div_ceil(8) * node + set.iter().map(|s| allocation(s.capacity())).sum::<usize>()
}

/// The memory one cache entry holds, approximately (within a few percent for the contexts
/// tokens give; see the tests).
fn entry_weight(value: &Cached) -> u32 {
    let held = match &value.verdict {
        Verdict::Accepted(ctx) => {
            // The Arc's allocation (two counts and the context), then what the context owns.
            allocation(2 * size_of::<usize>() + size_of::<TenantContext>())
                + allocation(ctx.tenant_id.capacity())
                + option_bytes(&ctx.user_id)
                + option_bytes(&ctx.session_id)
                + option_bytes(&ctx.org_role)
                + option_bytes(&ctx.org_slug)
                + option_bytes(&ctx.plan)
                + option_bytes(&ctx.actor)
                + allocation(ctx.principal.capacity())
                + set_bytes(&ctx.permissions)
                + set_bytes(&ctx.features)
        }
        Verdict::Refused(why) => string_bytes(why),
    };
    let total = CACHE_ENTRY_OVERHEAD + size_of::<[u8; 32]>() + size_of::<Cached>() + held;
    u32::try_from(total).unwrap_or(u32::MAX)
}

/// How full the verified-token cache is.
#[derive(Debug, Clone, Copy)]
pub struct CacheUsage {
    pub entries: u64,
    /// The entries' weights: their approximate memory.
    pub bytes: u64,
    pub max_bytes: u64,
}

/// The HTTP client for Clerk: short timeouts, so an outage answers 503 quickly.
pub fn clerk_http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(5))
        .user_agent(concat!("resonance-api/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client for Clerk")
}

/// The issuer session tokens must carry: `CLERK_ISSUER`, else `https://<Frontend API host>`
/// from the publishable key.
pub fn clerk_issuer(clerk: &ClerkConfig) -> Option<String> {
    clerk.issuer.clone().or_else(|| {
        clerk
            .publishable_key
            .as_deref()
            .and_then(frontend_api_host)
            .map(|host| format!("https://{host}"))
    })
}

/// Where session-token keys come from, in the order Clerk's SDKs prefer: `CLERK_JWT_KEY`
/// (no network), `CLERK_JWKS_URL`, the Frontend API JWKS from the publishable key, the
/// Backend API JWKS with the secret key.
pub fn clerk_key_source(
    clerk: &ClerkConfig,
    client: &reqwest::Client,
) -> anyhow::Result<Option<KeySource>> {
    if let Some(pem) = &clerk.jwt_key {
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes())
            .context("CLERK_JWT_KEY: not a PEM-encoded RSA public key")?;
        return Ok(Some(KeySource::Static(Arc::new(key))));
    }
    let backend_jwks = format!("{}/v1/jwks", clerk.api_url);
    let url = clerk
        .jwks_url
        .clone()
        .or_else(|| {
            clerk
                .publishable_key
                .as_deref()
                .and_then(frontend_api_host)
                .map(|host| format!("https://{host}/.well-known/jwks.json"))
        })
        .or_else(|| clerk.secret_key.as_ref().map(|_| backend_jwks.clone()));
    Ok(url.map(|url| {
        // The secret key goes only to the Backend API.
        let bearer = clerk
            .secret_key
            .clone()
            .filter(|_| url.starts_with(&format!("{}/", clerk.api_url)));
        KeySource::Remote(JwksCache::new(url, bearer, client.clone()))
    }))
}

/// Verifies bearer tokens.
pub struct Authenticator {
    session: SessionVerifier,
    machine: MachineVerifier,
    verified: TokenCache,
    max_bytes: u64,
    limits: VerifyLimits,
    revocations: Revocations,
}

impl Authenticator {
    /// Sets up verification from the configuration. Production with no way to verify
    /// session tokens is refused here, so the server does not start.
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let clerk = &config.clerk;
        if config.environment == Environment::Production && !clerk.can_verify_sessions() {
            anyhow::bail!(
                "production needs a way to verify Clerk tokens: set CLERK_PUBLISHABLE_KEY, CLERK_JWKS_URL, CLERK_JWT_KEY or CLERK_SECRET_KEY"
            );
        }
        let client = clerk_http_client()?;
        let session = if config.is_development() && !clerk.can_verify_sessions() {
            let key = dev::load_or_create(&config.data_dir)
                .context("preparing the development signing key")?;
            tracing::warn!(
                issuer = dev::DEV_ISSUER,
                "no Clerk settings: accepting development tokens from `resonance dev token`"
            );
            SessionVerifier {
                keys: KeySource::Static(Arc::new(key.decoding_key())),
                issuer: Some(dev::DEV_ISSUER.into()),
                authorized_parties: vec![],
                skew: clerk.clock_skew.as_secs() as i64,
                kind: TokenKind::DevelopmentToken,
            }
        } else {
            let keys = clerk_key_source(clerk, &client)?
                .context("no Clerk session-token key source is configured")?;
            let issuer = clerk_issuer(clerk);
            if issuer.is_none() {
                tracing::warn!(
                    "the Clerk issuer is unknown (set CLERK_PUBLISHABLE_KEY or CLERK_ISSUER): token iss is not compared"
                );
            }
            SessionVerifier {
                keys,
                issuer,
                authorized_parties: clerk.authorized_parties.clone(),
                skew: clerk.clock_skew.as_secs() as i64,
                kind: TokenKind::SessionToken,
            }
        };
        let machine = MachineVerifier::new(
            client,
            clerk.api_url.clone(),
            clerk.secret_key.clone(),
            clerk.machine_token_cache_ttl,
        );
        Ok(Authenticator::from_parts(session, machine, &clerk.limits))
    }

    /// An authenticator from explicit parts (benchmarks, `token inspect`, tests).
    pub fn from_parts(
        session: SessionVerifier,
        machine: MachineVerifier,
        limits: &ClerkLimits,
    ) -> Self {
        let skew = Duration::from_secs(session.skew.max(0) as u64);
        Authenticator {
            session,
            machine,
            verified: token_cache(limits.token_cache_max_bytes),
            max_bytes: limits.token_cache_max_bytes,
            limits: VerifyLimits::new(limits),
            revocations: Revocations::new(skew),
        }
    }

    /// Drops the cached verdicts on tokens that `matches` (a workspace deleted, a member
    /// removed): their next request is verified again. A scan, for events that are rare.
    pub async fn forget_tokens(&self, matches: impl Fn(&TenantContext) -> bool) {
        let stale: Vec<_> = self
            .verified
            .iter()
            .filter(|(_, cached)| match &cached.verdict {
                Verdict::Accepted(ctx) => matches(ctx),
                Verdict::Refused(_) => false,
            })
            .map(|(key, _)| key)
            .collect();
        for key in stale {
            self.verified.invalidate(&*key).await;
        }
    }

    /// Drops every cached verdict (events may have been missed).
    pub fn forget_all_tokens(&self) {
        self.verified.invalidate_all();
    }

    /// Refuses `user`'s session tokens for `tenant` issued before `at_ms` (Unix milliseconds):
    /// their membership was removed or their role changed then (see [`revocations`]).
    pub fn revoke_sessions(&self, tenant: &str, user: &str, at_ms: i64) {
        let now = chrono::Utc::now().timestamp_millis();
        self.revocations.revoke(tenant, user, at_ms, now);
    }

    /// The oldest revocation that still matters (Unix milliseconds): older ones need not be
    /// loaded.
    pub fn revocation_horizon(&self) -> i64 {
        self.revocations
            .horizon(chrono::Utc::now().timestamp_millis())
    }

    /// True when `ctx` comes from a session token issued before a change of its membership.
    /// Machine tokens are verified by Clerk, which revokes them itself.
    pub fn is_revoked(&self, ctx: &TenantContext) -> bool {
        let session = matches!(
            ctx.token_kind,
            TokenKind::SessionToken | TokenKind::DevelopmentToken
        );
        let Some(user) = &ctx.user_id else {
            return false;
        };
        session
            && ctx.tenant_kind == TenantKind::Organization
            && self.revocations.revoked(
                &ctx.tenant_id,
                user,
                ctx.issued_at,
                chrono::Utc::now().timestamp_millis(),
            )
    }

    /// 401 for a revoked session token ([`Authenticator::is_revoked`]).
    fn refuse_revoked(&self, ctx: &TenantContext) -> Result<(), ApiError> {
        if self.is_revoked(ctx) {
            return Err(reject(REVOKED_SESSION));
        }
        Ok(())
    }

    /// The issuer session tokens must carry, when known.
    pub fn issuer(&self) -> Option<String> {
        self.session.issuer.clone()
    }

    /// The context of a bearer token sent from `client` (the TCP peer; `None` when unknown),
    /// or why it is refused: 401; 503 when Clerk could not be asked; 429 when `client` has
    /// used up its Backend API verifications. Counted in `auth_verifications_total`.
    pub async fn authenticate(
        &self,
        token: &str,
        client: Option<IpAddr>,
    ) -> Result<TenantContext, ApiError> {
        let result = self.check(token, client).await;
        let kind = match &result {
            Ok(ctx) => ctx.token_kind,
            Err(_) => machine::kind_of(token).unwrap_or(self.session.kind),
        };
        metrics::record_auth_verification(kind_label(kind), outcome_label(&result));
        result
    }

    async fn check(&self, token: &str, client: Option<IpAddr>) -> Result<TenantContext, ApiError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(reject(format!(
                "token is larger than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let key = token_hash(token);
        let hit = self.verified.get(&key).await;
        metrics::record_token_cache(hit.is_some());
        if let Some(hit) = hit {
            let ctx = hit.into_result()?;
            self.refuse_revoked(&ctx)?;
            return Ok(ctx);
        }
        if let Some(kind) = machine::kind_of(token) {
            return self.verify_machine(token, kind, key, client).await;
        }
        let now = chrono::Utc::now().timestamp();
        let verified = self.session.verify(token, now).await?;
        self.refuse_revoked(&verified.ctx)?;
        let remaining = verified.exp - now;
        let ctx = Arc::new(verified.ctx);
        if remaining > 0 {
            let entry = Cached {
                verdict: Verdict::Accepted(ctx.clone()),
                lifetime: Duration::from_secs(remaining as u64),
            };
            self.verified.insert(key, entry).await;
        }
        Ok(Arc::unwrap_or_clone(ctx))
    }

    /// A machine token the cache does not know: one Backend API call, if `client` still has
    /// one in its bucket and a call slot is free.
    async fn verify_machine(
        &self,
        token: &str,
        kind: TokenKind,
        key: [u8; 32],
        client: Option<IpAddr>,
    ) -> Result<TenantContext, ApiError> {
        let secret_key = self.machine.secret_key()?;
        self.limits.admit(client)?;
        let ask = async {
            let _slot = self.limits.call_slot()?;
            self.machine.ask_clerk(token, kind, secret_key).await
        };
        let cached = if self.machine.caches() {
            // Concurrent requests with the same token share one Backend API call.
            (self.verified.try_get_with(key, ask).await).map_err(|e| (*e).clone())?
        } else {
            ask.await?
        };
        cached.into_result()
    }

    /// Verifies a token without the cache or limits, as of `now` (`token inspect --at`).
    pub async fn verify_uncached(&self, token: &str, now: i64) -> Result<TenantContext, ApiError> {
        if let Some(kind) = machine::kind_of(token) {
            return self.machine.verify(token, kind).await;
        }
        Ok(self.session.verify(token, now).await?.ctx)
    }

    /// The verified-token cache's size, after its pending evictions.
    pub async fn cache_usage(&self) -> CacheUsage {
        self.verified.run_pending_tasks().await;
        CacheUsage {
            entries: self.verified.entry_count(),
            bytes: self.verified.weighted_size(),
            max_bytes: self.max_bytes,
        }
    }

    /// Client addresses whose verification bucket is being tracked.
    pub fn tracked_clients(&self) -> usize {
        self.limits.tracked_clients()
    }
}

/// The `kind` label of a token kind.
pub(crate) fn kind_label(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::SessionToken => "session",
        TokenKind::ApiKey => "api_key",
        TokenKind::M2mToken => "m2m",
        TokenKind::OauthToken => "oauth",
        TokenKind::DevelopmentToken => "development",
    }
}

/// The `outcome` label of a token check: `accepted`, or why not. Refusals are told apart by
/// their wording, which this module and its children write (`reject(…)`); a new wording
/// counts as `invalid` until it is named here.
fn outcome_label(result: &Result<TenantContext, ApiError>) -> &'static str {
    match result {
        Ok(_) => "accepted",
        Err(ApiError::Unauthorized(refusal)) => refusal_label(&refusal.description),
        Err(ApiError::TooManyRequests { .. }) => "rate_limited",
        Err(ApiError::ServiceUnavailable { detail, .. }) if detail == limits::BUSY_DETAIL => {
            "overloaded"
        }
        Err(ApiError::ServiceUnavailable { .. }) => "upstream_unavailable",
        Err(_) => "error",
    }
}

fn refusal_label(why: &str) -> &'static str {
    match why {
        "token expired" => "expired",
        "bad signature" => "invalid_signature",
        "token revoked" | REVOKED_SESSION => "revoked",
        "unknown token" => "unknown",
        _ if why.starts_with("unknown signing key") => "unknown_key",
        _ if why.starts_with("malformed") || why.contains("larger than") => "malformed",
        _ if why.starts_with("unsupported") => "unsupported",
        _ if why.contains("no CLERK_SECRET_KEY") => "not_configured",
        _ => "invalid",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::{TenantKind, permissions};

    /// What a v2 session token of an organization member gives.
    fn member(i: u32) -> TenantContext {
        TenantContext {
            tenant_id: format!("org_2x{i:024}"),
            tenant_kind: TenantKind::Organization,
            user_id: Some(format!("user_2y{i:024}")),
            session_id: Some(format!("sess_2z{i:024}")),
            org_role: Some("member".into()),
            org_slug: Some(format!("workspace-{i}")),
            permissions: permissions::role_defaults("member"),
            plan: Some("o:free_org".into()),
            features: ["o:tasks".to_owned(), "o:projects".to_owned()].into(),
            actor: None,
            token_kind: TokenKind::SessionToken,
            principal: format!("user_2y{i:024}"),
            subscribed_plan: None,
            expires_at: None,
            issued_at: None,
        }
    }

    #[tokio::test]
    async fn the_cache_stays_within_its_byte_budget() {
        let budget = ClerkLimits::default().token_cache_max_bytes;
        assert_eq!(budget, 16 * 1024 * 1024);
        let cache = token_cache(budget);
        let mut offered = 0u64;
        for i in 0..100_000u32 {
            // Mostly accepted session tokens, some refused machine tokens.
            let verdict = if i % 10 == 0 {
                Verdict::Refused("unknown token".into())
            } else {
                Verdict::Accepted(Arc::new(member(i)))
            };
            let entry = Cached {
                verdict,
                lifetime: Duration::from_secs(300),
            };
            offered += u64::from(entry_weight(&entry));
            cache.insert(token_hash(&format!("token-{i}")), entry).await;
        }
        cache.run_pending_tasks().await;
        let (entries, bytes) = (cache.entry_count(), cache.weighted_size());
        println!(
            "100000 entries offered weighing {offered} B; kept {entries} weighing {bytes} B (budget {budget} B)"
        );
        assert!(
            offered > 4 * budget,
            "the test offers several budgets' worth"
        );
        assert!(bytes <= budget, "{bytes} B cached for a {budget} B budget");
        assert!(bytes >= budget / 2, "the budget is used: {bytes} B");
        assert!(entries < 100_000);
    }

    #[test]
    fn refusals_are_labelled_by_reason() {
        let label = |err: ApiError| outcome_label(&Err(err));
        assert_eq!(label(reject("token expired")), "expired");
        assert_eq!(label(reject("bad signature")), "invalid_signature");
        assert_eq!(label(reject("token revoked")), "revoked");
        assert_eq!(label(reject(REVOKED_SESSION)), "revoked");
        assert_eq!(label(reject("unknown token")), "unknown");
        let unknown_kid = reject("unknown signing key: the kid is not in the JWKS");
        assert_eq!(label(unknown_kid), "unknown_key");
        assert_eq!(label(reject("malformed token header")), "malformed");
        assert_eq!(
            label(reject("token is larger than 8192 bytes")),
            "malformed"
        );
        assert_eq!(label(reject("wrong issuer: expected x")), "invalid");
        assert_eq!(label(unavailable("Clerk is down")), "upstream_unavailable");
        let busy = VerifyLimits::new(&ClerkLimits {
            verify_max_in_flight: 1,
            ..ClerkLimits::default()
        });
        let _slot = busy.call_slot().unwrap();
        assert_eq!(label(busy.call_slot().unwrap_err()), "overloaded");
        let limited = ApiError::TooManyRequests {
            detail: String::new(),
            retry_after: Duration::from_secs(1),
        };
        assert_eq!(label(limited), "rate_limited");
    }

    #[test]
    fn an_entry_weighs_its_strings_and_sets() {
        let small = Cached {
            verdict: Verdict::Refused("unknown token".into()),
            lifetime: Duration::from_secs(1),
        };
        let member = Cached {
            verdict: Verdict::Accepted(Arc::new(member(1))),
            lifetime: Duration::from_secs(1),
        };
        let (small, member) = (entry_weight(&small), entry_weight(&member));
        assert!(small < 500, "{small}");
        // A member's context: about a dozen strings and two sets.
        assert!((1_000..3_000).contains(&member), "{member}");
    }
}
