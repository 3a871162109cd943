//! Opaque machine tokens (`ak_…` API keys, `mt_…` M2M tokens, `oat_…` OAuth access tokens),
//! verified by Clerk's Backend API and cached briefly.
//!
//! Results (accepted and refused alike) are cached for `CLERK_MACHINE_TOKEN_CACHE_SECS`,
//! keyed by a SHA-256 of the token: a revoked token keeps working at most that long. An
//! accepted token is never cached past its own expiration. When the Backend API cannot
//! answer, the request gets 503 with `Retry-After` and nothing is cached: a token is never
//! accepted without Clerk's word.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use moka::{Expiry, future::Cache};
use serde::Deserialize;

use super::{reject, session, token_hash, unavailable};
use crate::{
    error::ApiError,
    tenant::{TenantContext, TokenKind},
};

/// The kind of an opaque machine token, from its prefix.
pub fn kind_of(token: &str) -> Option<TokenKind> {
    if token.starts_with("ak_") {
        Some(TokenKind::ApiKey)
    } else if token.starts_with("mt_") {
        Some(TokenKind::M2mToken)
    } else if token.starts_with("oat_") {
        Some(TokenKind::OauthToken)
    } else {
        None
    }
}

fn verify_path(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::ApiKey => "/v1/api_keys/verify",
        TokenKind::M2mToken => "/v1/m2m_tokens/verify",
        _ => "/v1/oauth_applications/access_tokens/verify",
    }
}

/// Clerk's verdict on one token.
#[derive(Clone)]
enum Verdict {
    Accepted(Arc<TenantContext>),
    Refused(String),
}

#[derive(Clone)]
struct Cached {
    verdict: Verdict,
    lifetime: Duration,
}

struct CachedExpiry;

impl Expiry<[u8; 32], Cached> for CachedExpiry {
    fn expire_after_create(&self, _: &[u8; 32], value: &Cached, _: Instant) -> Option<Duration> {
        Some(value.lifetime)
    }
}

/// What the verify endpoints answer for a known token.
#[derive(Debug, Deserialize)]
struct VerifyResponse {
    id: Option<String>,
    subject: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    claims: Option<serde_json::Value>,
    #[serde(default)]
    revoked: bool,
    #[serde(default)]
    expired: bool,
    /// Unix milliseconds.
    expiration: Option<i64>,
}

/// Verifies machine tokens with the Backend API.
pub struct MachineVerifier {
    client: reqwest::Client,
    api_url: String,
    secret_key: Option<String>,
    ttl: Duration,
    cache: Option<Cache<[u8; 32], Cached>>,
}

impl MachineVerifier {
    pub fn new(
        client: reqwest::Client,
        api_url: String,
        secret_key: Option<String>,
        ttl: Duration,
    ) -> MachineVerifier {
        let cache = (!ttl.is_zero()).then(|| {
            Cache::builder()
                .max_capacity(10_000)
                .expire_after(CachedExpiry)
                .build()
        });
        MachineVerifier {
            client,
            api_url,
            secret_key,
            ttl,
            cache,
        }
    }

    pub async fn verify(&self, token: &str, kind: TokenKind) -> Result<TenantContext, ApiError> {
        let Some(secret_key) = &self.secret_key else {
            return Err(reject(
                "machine tokens cannot be verified: the server has no CLERK_SECRET_KEY",
            ));
        };
        let cached = match &self.cache {
            // Concurrent requests with the same token share one Backend API call.
            Some(cache) => cache
                .try_get_with(token_hash(token), self.ask_clerk(token, kind, secret_key))
                .await
                .map_err(|e| (*e).clone())?,
            None => self.ask_clerk(token, kind, secret_key).await?,
        };
        match cached.verdict {
            Verdict::Accepted(ctx) => Ok((*ctx).clone()),
            Verdict::Refused(why) => Err(reject(why)),
        }
    }

    async fn ask_clerk(
        &self,
        token: &str,
        kind: TokenKind,
        secret_key: &str,
    ) -> Result<Cached, ApiError> {
        let url = format!("{}{}", self.api_url, verify_path(kind));
        let response = self
            .client
            .post(&url)
            .bearer_auth(secret_key)
            .json(&serde_json::json!({ "secret": token }))
            .send()
            .await
            .map_err(|error| {
                tracing::warn!(%url, %error, "Clerk Backend API unreachable");
                clerk_down()
            })?;
        let status = response.status();
        let refused = |why: &str| Cached {
            verdict: Verdict::Refused(why.to_owned()),
            lifetime: self.ttl,
        };
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(refused("unknown token"));
        }
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            tracing::error!(%url, %status, "Clerk Backend API refused CLERK_SECRET_KEY");
            return Err(clerk_down());
        }
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            tracing::warn!(%url, %status, "Clerk Backend API failed");
            return Err(clerk_down());
        }
        if !status.is_success() {
            return Ok(refused("token not accepted by Clerk"));
        }
        let body: VerifyResponse = response.json().await.map_err(|error| {
            tracing::warn!(%url, %error, "unreadable Clerk Backend API answer");
            clerk_down()
        })?;
        let now_ms = chrono::Utc::now().timestamp_millis();
        if body.revoked {
            return Ok(refused("token revoked"));
        }
        if body.expired || body.expiration.is_some_and(|at| at <= now_ms) {
            return Ok(refused("token expired"));
        }
        let lifetime = match body.expiration {
            Some(at) => self
                .ttl
                .min(Duration::from_millis((at - now_ms).max(0) as u64)),
            None => self.ttl,
        };
        match context_for(&body, kind) {
            Ok(ctx) => Ok(Cached {
                verdict: Verdict::Accepted(Arc::new(ctx)),
                lifetime,
            }),
            Err(why) => Ok(refused(why)),
        }
    }
}

fn clerk_down() -> ApiError {
    unavailable("Clerk cannot verify machine tokens right now")
}

/// Subject `org_…` → that organization; `user_…` → the user's personal workspace; `mch_…`
/// (a machine) → the organization named by its `org_id` claim. Scopes become permissions.
fn context_for(body: &VerifyResponse, kind: TokenKind) -> Result<TenantContext, &'static str> {
    let subject = body.subject.as_deref().unwrap_or("");
    let scopes = body.scopes.clone().unwrap_or_default();
    let principal = body.id.clone().unwrap_or_else(|| subject.to_owned());
    if subject.starts_with("org_") {
        Ok(session::machine_in_org(
            subject.to_owned(),
            principal,
            &scopes,
            kind,
        ))
    } else if subject.starts_with("user_") {
        Ok(session::machine_for_user(subject.to_owned(), &scopes, kind))
    } else if subject.starts_with("mch_") {
        let org = body
            .claims
            .as_ref()
            .and_then(|c| c.get("org_id"))
            .and_then(|o| o.as_str())
            .filter(|o| o.starts_with("org_"))
            .ok_or("machine token names no organization (no org_id claim)")?;
        Ok(session::machine_in_org(
            org.to_owned(),
            subject.to_owned(),
            &scopes,
            kind,
        ))
    } else {
        Err("token subject is not a user, organization or machine")
    }
}
