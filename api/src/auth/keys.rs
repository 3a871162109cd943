//! Signing keys: where session-token keys come from (one PEM key, a fixed JWKS, or Clerk's
//! JWKS fetched with reqwest and cached in moka).
//!
//! The remote JWKS is held as one moka entry whose lifetime depends on how it was obtained:
//! a fresh fetch lives [`JWKS_MAX_AGE`]; when a fetch fails, the last good keys are kept and
//! re-checked after the cool-down. So a Clerk outage never takes away keys we already had,
//! and concurrent misses share one fetch (moka's `get_with` coalesces them).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use jsonwebtoken::{
    DecodingKey,
    jwk::{AlgorithmParameters, Jwk, KeyAlgorithm},
};
use moka::{Expiry, future::Cache};
use serde::Deserialize;

use crate::telemetry::metrics;

/// How long a successfully fetched JWKS is used before it is fetched again.
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(3600);
/// At most one refresh per this window is caused by tokens naming an unknown `kid`; also how
/// long a failed fetch waits before the next try.
pub const JWKS_REFRESH_COOLDOWN: Duration = Duration::from_secs(30);

/// Why no key could be found for a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The JWKS does not hold the token's `kid` (after the allowed refresh).
    UnknownKid,
    /// The token names no `kid`, and the source has several keys.
    MissingKid,
    /// No keys could be fetched (and none are cached): Clerk or the network is down.
    Unavailable,
}

/// Where the keys that verify session tokens come from.
pub enum KeySource {
    /// One RSA public key used whatever the `kid` (`CLERK_JWT_KEY`, the development key).
    Static(Arc<DecodingKey>),
    /// A JWKS given once (`resonance token inspect --jwks FILE`).
    Fixed(HashMap<String, Arc<DecodingKey>>),
    /// Clerk's JWKS over HTTP, cached.
    Remote(JwksCache),
}

impl KeySource {
    /// The key for a token's `kid`.
    pub async fn key_for(&self, kid: Option<&str>) -> Result<Arc<DecodingKey>, KeyError> {
        match self {
            KeySource::Static(key) => Ok(key.clone()),
            KeySource::Fixed(keys) => match kid {
                Some(kid) => keys.get(kid).cloned().ok_or(KeyError::UnknownKid),
                None => Err(KeyError::MissingKid),
            },
            KeySource::Remote(cache) => match kid {
                Some(kid) => cache.key(kid).await,
                None => Err(KeyError::MissingKid),
            },
        }
    }
}

/// The RS256 keys of a JWKS document, by `kid`. Keys of other types or algorithms, and keys
/// jsonwebtoken cannot read, are skipped rather than failing the whole set.
pub fn parse_jwks(body: &[u8]) -> Result<HashMap<String, Arc<DecodingKey>>, String> {
    #[derive(Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let document: Document =
        serde_json::from_slice(body).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = HashMap::new();
    for value in document.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        let rs256 = matches!(jwk.common.key_algorithm, None | Some(KeyAlgorithm::RS256));
        let rsa = matches!(jwk.algorithm, AlgorithmParameters::RSA(_));
        let (Some(kid), true, true) = (jwk.common.key_id.clone(), rs256, rsa) else {
            continue;
        };
        if let Ok(key) = DecodingKey::from_jwk(&jwk) {
            keys.insert(kid, Arc::new(key));
        }
    }
    if keys.is_empty() {
        return Err("the JWKS holds no RS256 key".into());
    }
    Ok(keys)
}

/// One snapshot of the JWKS.
pub struct KeySet {
    keys: HashMap<String, Arc<DecodingKey>>,
    /// False when the last fetch failed and these are the previously cached keys (or none).
    fresh: bool,
    /// How long moka keeps this snapshot before fetching again.
    lifetime: Duration,
}

/// Per-entry lifetime: a fresh set lives long, a fallback after a failed fetch briefly.
struct KeySetExpiry;

impl Expiry<(), Arc<KeySet>> for KeySetExpiry {
    fn expire_after_create(&self, _: &(), set: &Arc<KeySet>, _: Instant) -> Option<Duration> {
        Some(set.lifetime)
    }

    fn expire_after_update(
        &self,
        _: &(),
        set: &Arc<KeySet>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(set.lifetime)
    }
}

/// Clerk's JWKS, fetched with reqwest and cached in moka.
pub struct JwksCache {
    url: String,
    /// The secret key, sent only to the Backend API's `/v1/jwks`.
    bearer: Option<String>,
    client: reqwest::Client,
    current: Cache<(), Arc<KeySet>>,
    /// The last successfully fetched keys, kept through outages.
    last_good: RwLock<Option<Arc<KeySet>>>,
    /// When an unknown `kid` last caused a refresh.
    last_forced: Mutex<Option<Instant>>,
    cooldown: Duration,
    max_age: Duration,
}

impl JwksCache {
    pub fn new(url: String, bearer: Option<String>, client: reqwest::Client) -> JwksCache {
        JwksCache::with_timing(url, bearer, client, JWKS_REFRESH_COOLDOWN, JWKS_MAX_AGE)
    }

    /// As [`JwksCache::new`] with explicit timing (benchmarks and tests).
    pub fn with_timing(
        url: String,
        bearer: Option<String>,
        client: reqwest::Client,
        cooldown: Duration,
        max_age: Duration,
    ) -> JwksCache {
        JwksCache {
            url,
            bearer,
            client,
            current: Cache::builder()
                .max_capacity(1)
                .expire_after(KeySetExpiry)
                .build(),
            last_good: RwLock::new(None),
            last_forced: Mutex::new(None),
            cooldown,
            max_age,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The key for `kid`. An unknown `kid` refreshes the set, at most once per cool-down.
    pub async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, KeyError> {
        let set = self.current.get_with((), self.load()).await;
        if let Some(key) = set.keys.get(kid) {
            return Ok(key.clone());
        }
        let set = if self.claim_forced_refresh() {
            let set = self.load().await;
            self.current.insert((), set.clone()).await;
            set
        } else {
            set
        };
        match set.keys.get(kid) {
            Some(key) => Ok(key.clone()),
            // We could not ask Clerk: the key may well be a new one.
            None if !set.fresh => Err(KeyError::Unavailable),
            None => Err(KeyError::UnknownKid),
        }
    }

    /// True for the one caller allowed to refresh in this cool-down window.
    fn claim_forced_refresh(&self) -> bool {
        let mut last = self.last_forced.lock().unwrap_or_else(|e| e.into_inner());
        match *last {
            Some(at) if at.elapsed() < self.cooldown => false,
            _ => {
                *last = Some(Instant::now());
                true
            }
        }
    }

    /// Fetches the JWKS (counted in `auth_jwks_refreshes_total`); on failure logs and falls
    /// back to the last good keys.
    async fn load(&self) -> Arc<KeySet> {
        let fetched = self.fetch().await;
        metrics::record_jwks_refresh(fetched.is_ok());
        match fetched {
            Ok(keys) => {
                let set = Arc::new(KeySet {
                    keys,
                    fresh: true,
                    lifetime: self.max_age,
                });
                *self.last_good.write().unwrap_or_else(|e| e.into_inner()) = Some(set.clone());
                set
            }
            Err(error) => {
                let keys = self
                    .last_good
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_ref()
                    .map(|set| set.keys.clone())
                    .unwrap_or_default();
                tracing::warn!(
                    url = %self.url,
                    %error,
                    cached_keys = keys.len(),
                    "cannot fetch the Clerk JWKS; verifying with cached keys"
                );
                Arc::new(KeySet {
                    keys,
                    fresh: false,
                    lifetime: self.cooldown,
                })
            }
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, Arc<DecodingKey>>, String> {
        let mut request = self.client.get(&self.url);
        if let Some(secret) = &self.bearer {
            request = request.bearer_auth(secret);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        parse_jwks(&body)
    }
}
