//! Clerk authentication: every token kind becomes a [`TenantContext`].
//!
//! - Session JWTs (and `at+jwt` OAuth access tokens, machine JWTs) are verified locally
//!   against Clerk's JWKS ([`keys`], [`session`]); a verified token is cached by its SHA-256
//!   until its `exp`, so repeated requests skip the RSA verification.
//! - `ak_…`, `mt_…`, `oat_…` are verified by Clerk's Backend API ([`machine`]).
//! - In development with no Clerk settings, tokens from `resonance dev token` ([`dev`]).
//!
//! The auth code never touches the database.

pub mod dev;
pub mod extractor;
pub mod inspect;
pub mod keys;
pub mod machine;
pub mod session;
pub mod svix;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use moka::{Expiry, future::Cache};
use sha2::{Digest, Sha256};

use self::{
    keys::{JwksCache, KeySource},
    machine::MachineVerifier,
    session::{MAX_TOKEN_BYTES, SessionVerifier},
};
use crate::{
    config::{ClerkConfig, Config, Environment, frontend_api_host},
    error::{ApiError, Unauthorized},
    tenant::{TenantContext, TokenKind},
};

/// How long clients are asked to wait when Clerk cannot be reached.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);
/// Verified session tokens kept at most (each also expires with its token).
const TOKEN_CACHE_CAPACITY: u64 = 50_000;

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

/// A verified context and how long it may be reused.
#[derive(Clone)]
struct CachedContext {
    ctx: Arc<TenantContext>,
    valid_for: Duration,
}

/// An entry never outlives its token's `exp`.
struct UntilExp;

impl Expiry<[u8; 32], CachedContext> for UntilExp {
    fn expire_after_create(
        &self,
        _: &[u8; 32],
        value: &CachedContext,
        _: Instant,
    ) -> Option<Duration> {
        Some(value.valid_for)
    }
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
    verified: Cache<[u8; 32], CachedContext>,
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
        Ok(Authenticator::from_parts(session, machine))
    }

    /// An authenticator from explicit parts (benchmarks, `token inspect`).
    pub fn from_parts(session: SessionVerifier, machine: MachineVerifier) -> Self {
        Authenticator {
            session,
            machine,
            verified: Cache::builder()
                .max_capacity(TOKEN_CACHE_CAPACITY)
                .expire_after(UntilExp)
                .build(),
        }
    }

    /// The issuer session tokens must carry, when known.
    pub fn issuer(&self) -> Option<String> {
        self.session.issuer.clone()
    }

    /// The context of a bearer token, or why it is refused (401, or 503 when Clerk could not
    /// be asked).
    pub async fn authenticate(&self, token: &str) -> Result<TenantContext, ApiError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(reject(format!(
                "token is larger than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        if let Some(kind) = machine::kind_of(token) {
            return self.machine.verify(token, kind).await;
        }
        let key = token_hash(token);
        if let Some(hit) = self.verified.get(&key).await {
            return Ok((*hit.ctx).clone());
        }
        let now = chrono::Utc::now().timestamp();
        let verified = self.session.verify(token, now).await?;
        let remaining = verified.exp - now;
        let ctx = Arc::new(verified.ctx);
        if remaining > 0 {
            let entry = CachedContext {
                ctx: ctx.clone(),
                valid_for: Duration::from_secs(remaining as u64),
            };
            self.verified.insert(key, entry).await;
        }
        Ok(Arc::unwrap_or_clone(ctx))
    }

    /// Verifies a session JWT without the cache, as of `now` (`token inspect --at`).
    pub async fn verify_uncached(&self, token: &str, now: i64) -> Result<TenantContext, ApiError> {
        if let Some(kind) = machine::kind_of(token) {
            return self.machine.verify(token, kind).await;
        }
        Ok(self.session.verify(token, now).await?.ctx)
    }
}
