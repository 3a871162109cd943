//! Opaque machine tokens (`ak_…` API keys, `mt_…` M2M tokens, `oat_…` OAuth access tokens),
//! verified by Clerk's Backend API.
//!
//! The [`Authenticator`](super::Authenticator) caches verdicts (accepted and refused alike)
//! for `CLERK_MACHINE_TOKEN_CACHE_SECS`, keyed by a SHA-256 of the token: a revoked token
//! keeps working at most that long, and an unknown one is refused from the cache without
//! another call. An accepted token is never cached past its own expiration. When the Backend
//! API cannot answer, the request gets 503 with `Retry-After` and nothing is cached: a token is
//! never accepted without Clerk's word. Cache misses are limited per client and in total
//! ([`limits`](super::limits)).

use std::{sync::Arc, time::Duration};

use serde::Deserialize;

use super::{Cached, Verdict, reject, session, unavailable};
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
}

impl MachineVerifier {
    /// `ttl`: how long a verdict may be cached (`CLERK_MACHINE_TOKEN_CACHE_SECS`); zero = not
    /// at all.
    pub fn new(
        client: reqwest::Client,
        api_url: String,
        secret_key: Option<String>,
        ttl: Duration,
    ) -> MachineVerifier {
        MachineVerifier {
            client,
            api_url,
            secret_key,
            ttl,
        }
    }

    /// Whether verdicts are cached.
    pub(crate) fn caches(&self) -> bool {
        !self.ttl.is_zero()
    }

    /// The secret key for the Backend API, or the 401 for a server that has none (no call is
    /// made then).
    pub(crate) fn secret_key(&self) -> Result<&str, ApiError> {
        self.secret_key.as_deref().ok_or_else(|| {
            reject("machine tokens cannot be verified: the server has no CLERK_SECRET_KEY")
        })
    }

    /// Asks Clerk, with no cache and no limits (`token inspect`).
    pub async fn verify(&self, token: &str, kind: TokenKind) -> Result<TenantContext, ApiError> {
        let secret_key = self.secret_key()?;
        self.ask_clerk(token, kind, secret_key).await?.into_result()
    }

    /// Clerk's verdict on `token`: one Backend API call.
    pub(crate) async fn ask_clerk(
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
            Ok(mut ctx) => {
                ctx.expires_at = body.expiration.map(|ms| ms.div_euclid(1000));
                Ok(Cached {
                    verdict: Verdict::Accepted(Arc::new(ctx)),
                    lifetime,
                })
            }
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
