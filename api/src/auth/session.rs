//! Session JWTs (and JWT-shaped OAuth access and machine tokens), verified as Clerk's own
//! backend SDK does: RS256 only, the key named by `kid`, `exp`/`nbf`/`iat` with the clock
//! skew, `iss`, `azp`, `sub`, `sts`; then claims v1 or v2 become a [`TenantContext`].

use std::collections::BTreeSet;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, Validation, errors::ErrorKind};
use serde::Deserialize;

use super::{dev::DEV_KID, keys::KeyError, keys::KeySource, reject, unavailable};
use crate::{
    error::ApiError,
    tenant::{TenantContext, TenantKind, TokenKind, permissions},
};

/// Longer tokens are refused before any parsing: Clerk session tokens are about 1 KiB.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Verifies JWTs against one key source and issuer.
pub struct SessionVerifier {
    pub keys: KeySource,
    /// The expected `iss`; `None` when it cannot be known (only a secret key or a PEM key
    /// is configured), in which case `iss` must merely be present.
    pub issuer: Option<String>,
    /// Origins allowed in `azp`; empty = not enforced.
    pub authorized_parties: Vec<String>,
    /// Allowed clock skew, seconds.
    pub skew: i64,
    /// `DevelopmentToken` when this verifier holds the development key.
    pub kind: TokenKind,
}

/// A verified token: its context and when it stops being valid.
pub struct Verified {
    pub ctx: TenantContext,
    pub exp: i64,
}

/// `act`: impersonation; `sub` is the real actor.
#[derive(Debug, Deserialize)]
struct Actor {
    sub: Option<String>,
}

/// v2 organization claim.
#[derive(Debug, Deserialize)]
struct OrgClaim {
    id: Option<String>,
    rol: Option<String>,
    slg: Option<String>,
    per: Option<String>,
    fpm: Option<String>,
}

/// Every claim this service reads. Unknown claims are ignored.
#[derive(Debug, Deserialize)]
struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    sid: Option<String>,
    azp: Option<String>,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
    sts: Option<String>,
    act: Option<Actor>,
    v: Option<u32>,
    // v1
    org_id: Option<String>,
    org_role: Option<String>,
    org_slug: Option<String>,
    org_permissions: Option<Vec<String>>,
    // v2
    o: Option<OrgClaim>,
    fea: Option<String>,
    pla: Option<String>,
    // OAuth access tokens (RFC 9068) and machine JWTs
    scope: Option<String>,
    scp: Option<Vec<String>>,
    scopes: Option<serde_json::Value>,
}

/// What the header's `typ` says the token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JwtType {
    Session,
    AccessToken,
}

/// The reason a token whose header jsonwebtoken cannot read is refused: the algorithm when
/// the header names one it does not know (`none`), otherwise "malformed". Only the algorithm
/// name, never the token, is echoed, and only when it is short and plain.
fn unreadable_header(token: &str) -> ApiError {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return reject("malformed token: not a JWT (expected three dot-separated parts)");
    }
    let alg = URL_SAFE_NO_PAD
        .decode(parts[0])
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|header| {
            header
                .get("alg")
                .and_then(|a| a.as_str())
                .map(str::to_owned)
        });
    match alg {
        Some(alg)
            if alg != "RS256"
                && alg.len() <= 16
                && alg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+') =>
        {
            reject(format!(
                "unsupported signing algorithm {alg}: only RS256 is accepted"
            ))
        }
        _ => reject("malformed token header"),
    }
}

impl SessionVerifier {
    /// Verifies `token` as of the Unix time `now`.
    pub async fn verify(&self, token: &str, now: i64) -> Result<Verified, ApiError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(reject(format!(
                "token is larger than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        // The algorithm is checked before any key is looked at: `none`, HS256 (a public key
        // used as an HMAC secret) and everything else never reach a key.
        let header = jsonwebtoken::decode_header(token).map_err(|_| unreadable_header(token))?;
        if header.alg != Algorithm::RS256 {
            return Err(reject(format!(
                "unsupported signing algorithm {:?}: only RS256 is accepted",
                header.alg
            )));
        }
        let jwt_type = match header.typ.as_deref() {
            None | Some("JWT") => JwtType::Session,
            Some("at+jwt") | Some("application/at+jwt") => JwtType::AccessToken,
            Some(_) => return Err(reject("unsupported token type (typ must be JWT)")),
        };
        if self.kind != TokenKind::DevelopmentToken && header.kid.as_deref() == Some(DEV_KID) {
            return Err(reject(
                "development tokens are accepted only with RESONANCE_ENV=development and no Clerk settings",
            ));
        }
        let key = self
            .keys
            .key_for(header.kid.as_deref())
            .await
            .map_err(|e| match e {
                KeyError::UnknownKid => reject("unknown signing key: the kid is not in the JWKS"),
                KeyError::MissingKid => reject("token header has no kid"),
                KeyError::Unavailable => {
                    unavailable("Clerk signing keys cannot be fetched right now")
                }
            })?;

        // jsonwebtoken checks the signature; the time and party claims are checked below, as
        // CLERK.md defines them (e.g. `exp <= now - skew` is expired) and against `now`.
        let mut validation = Validation::new(Algorithm::RS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => reject("bad signature"),
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    reject("unsupported signing algorithm: only RS256 is accepted")
                }
                ErrorKind::Json(_) => reject("malformed claims"),
                ErrorKind::Base64(_) | ErrorKind::Utf8(_) | ErrorKind::InvalidToken => {
                    reject("malformed token")
                }
                _ => reject("invalid token"),
            })?
            .claims;

        let Some(exp) = claims.exp else {
            return Err(reject("token has no exp claim"));
        };
        if exp <= now - self.skew {
            return Err(reject("token expired"));
        }
        if claims.nbf.is_some_and(|nbf| nbf > now + self.skew) {
            return Err(reject("token not yet valid (nbf is in the future)"));
        }
        if claims.iat.is_some_and(|iat| iat > now + self.skew) {
            return Err(reject("token issued in the future (iat)"));
        }
        match (&claims.iss, &self.issuer) {
            (None, _) => return Err(reject("token has no iss claim")),
            (Some(iss), Some(expected)) if iss != expected => {
                return Err(reject(format!("wrong issuer: expected {expected}")));
            }
            _ => {}
        }
        let Some(sub) = claims.sub.clone().filter(|s| !s.is_empty()) else {
            return Err(reject("token has no sub claim"));
        };
        if jwt_type == JwtType::Session && !self.authorized_parties.is_empty() {
            match &claims.azp {
                None => return Err(reject("token has no azp claim")),
                Some(azp) if !self.authorized_parties.iter().any(|p| p == azp) => {
                    return Err(reject("azp is not an authorized party"));
                }
                _ => {}
            }
        }
        if jwt_type == JwtType::Session && claims.sts.as_deref() == Some("pending") {
            return Err(reject(
                "session is pending (the user has a task to finish): treated as signed out",
            ));
        }

        let claims_iat = claims.iat;
        let mut ctx = match jwt_type {
            JwtType::AccessToken => access_token_context(sub, &claims)?,
            JwtType::Session if sub.starts_with("mch_") => machine_jwt_context(sub, &claims)?,
            JwtType::Session => session_context(sub, claims, self.kind),
        };
        ctx.expires_at = Some(exp);
        ctx.issued_at = claims_iat;
        Ok(Verified { ctx, exp })
    }
}

/// The user's personal workspace: everything on their own data.
fn personal(user: String, kind: TokenKind, permissions: BTreeSet<String>) -> TenantContext {
    TenantContext {
        tenant_id: user.clone(),
        tenant_kind: TenantKind::Personal,
        user_id: Some(user.clone()),
        session_id: None,
        org_role: None,
        org_slug: None,
        permissions,
        plan: None,
        features: BTreeSet::new(),
        actor: None,
        token_kind: kind,
        principal: user,
        subscribed_plan: None,
        expires_at: None,
        issued_at: None,
    }
}

/// A session token's context from claims v1 or v2.
fn session_context(sub: String, claims: Claims, kind: TokenKind) -> TenantContext {
    let features: BTreeSet<String> = claims
        .fea
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect();
    // (org id, role, slug, granted permissions, features the token speaks for)
    let org = if claims.v == Some(2) {
        claims.o.and_then(|o| {
            let (granted, covered) = permissions::from_v2_claims(
                claims.fea.as_deref(),
                o.per.as_deref(),
                o.fpm.as_deref(),
            );
            o.id.filter(|id| !id.is_empty())
                .map(|id| (id, o.rol, o.slg, granted, covered))
        })
    } else {
        claims.org_id.filter(|id| !id.is_empty()).map(|id| {
            let granted: BTreeSet<String> = claims
                .org_permissions
                .unwrap_or_default()
                .into_iter()
                .collect();
            (
                id,
                claims.org_role,
                claims.org_slug,
                granted,
                BTreeSet::new(),
            )
        })
    };
    let mut ctx = match org {
        None => personal(sub, kind, permissions::everything()),
        Some((org_id, role, slug, granted, covered)) => {
            let role = role.as_deref().map(permissions::normalize_role);
            TenantContext {
                tenant_id: org_id,
                tenant_kind: TenantKind::Organization,
                user_id: Some(sub.clone()),
                session_id: None,
                permissions: permissions::resolve_covering(role.as_deref(), &granted, &covered),
                org_role: role,
                org_slug: slug,
                plan: None,
                features: BTreeSet::new(),
                actor: None,
                token_kind: kind,
                principal: sub,
                subscribed_plan: None,
                expires_at: None,
                issued_at: None,
            }
        }
    };
    ctx.session_id = claims.sid;
    ctx.plan = claims.pla;
    ctx.features = features;
    ctx.actor = claims.act.and_then(|a| a.sub);
    ctx
}

/// Scopes of a JWT access or machine token: RFC 9068 `scope` (space-separated), `scp`, or
/// Clerk's `scopes` (array or space/comma-separated string).
fn jwt_scopes(claims: &Claims) -> Vec<String> {
    let split = |s: &str| -> Vec<String> {
        s.split([' ', ','])
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    if let Some(scope) = &claims.scope {
        return split(scope);
    }
    if let Some(scp) = &claims.scp {
        return scp.clone();
    }
    match &claims.scopes {
        Some(serde_json::Value::String(s)) => split(s),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => vec![],
    }
}

/// An OAuth access token in JWT form acts for the user who granted it, in their personal
/// workspace, with the granted scopes.
fn access_token_context(sub: String, claims: &Claims) -> Result<TenantContext, ApiError> {
    if !sub.starts_with("user_") {
        return Err(reject("OAuth access token subject is not a user"));
    }
    let scopes = jwt_scopes(claims);
    let mut ctx = personal(
        sub,
        TokenKind::OauthToken,
        permissions::from_scopes(&scopes),
    );
    ctx.actor = None;
    Ok(ctx)
}

/// A machine JWT (`sub: mch_…`) acts for the organization named by its `org_id` claim.
fn machine_jwt_context(sub: String, claims: &Claims) -> Result<TenantContext, ApiError> {
    let org = claims
        .org_id
        .clone()
        .filter(|o| o.starts_with("org_"))
        .ok_or_else(|| reject("machine token names no organization (no org_id claim)"))?;
    Ok(machine_in_org(
        org,
        sub,
        &jwt_scopes(claims),
        TokenKind::M2mToken,
    ))
}

/// A machine acting in an organization with the permissions its scopes grant.
pub(crate) fn machine_in_org(
    org: String,
    principal: String,
    scopes: &[String],
    kind: TokenKind,
) -> TenantContext {
    TenantContext {
        tenant_id: org,
        tenant_kind: TenantKind::Organization,
        user_id: None,
        session_id: None,
        org_role: None,
        org_slug: None,
        permissions: permissions::from_scopes(scopes),
        plan: None,
        features: BTreeSet::new(),
        actor: None,
        token_kind: kind,
        principal,
        subscribed_plan: None,
        expires_at: None,
        issued_at: None,
    }
}

/// A user's machine token (API key or OAuth token) in their personal workspace.
pub(crate) fn machine_for_user(user: String, scopes: &[String], kind: TokenKind) -> TenantContext {
    personal(user, kind, permissions::from_scopes(scopes))
}
