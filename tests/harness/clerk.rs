//! A Clerk stand-in on loopback, behaving as Clerk documents (see shared CLERK.md):
//! - Frontend API JWKS at `/.well-known/jwks.json`; Backend API JWKS at `/v1/jwks`
//!   (secret key required);
//! - machine-token verification at `/v1/api_keys/verify`, `/v1/m2m_tokens/verify` and
//!   `/v1/oauth_applications/access_tokens/verify` (POST, secret key, `{"secret": …}`; 404 for
//!   unknown tokens);
//! - switches to make it fail, to rotate keys, and counters of how often it was asked.
//!
//! Tokens are real RS256 JWTs signed with RSA keys generated for the test run.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use actix_web::{HttpRequest, HttpResponse, web};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use resonance_api::config::ConfigArgs;
use rsa::{
    RsaPrivateKey, RsaPublicKey,
    pkcs1::EncodeRsaPrivateKey,
    pkcs8::{EncodePublicKey, LineEnding},
    traits::PublicKeyParts,
};
use serde_json::{Value, json};

use crate::serve_on_loopback;

pub const SECRET_KEY: &str = "sk_test_standin_secret";

/// An RSA signing key with its `kid`.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub private_pem: String,
    pub public_pem: String,
    pub jwk: Value,
}

impl SigningKey {
    fn generate(kid: &str) -> SigningKey {
        let mut rng = rand::thread_rng();
        let private = RsaPrivateKey::new(&mut rng, 2048).expect("generate an RSA key");
        let public = RsaPublicKey::from(&private);
        let jwk = json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        });
        SigningKey {
            kid: kid.to_owned(),
            private_pem: private.to_pkcs1_pem(LineEnding::LF).unwrap().to_string(),
            public_pem: public.to_public_key_pem(LineEnding::LF).unwrap(),
            jwk,
        }
    }

    /// Signs `claims` as an RS256 JWT with this key's `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".into());
        self.sign_with_header(header, claims)
    }

    pub fn sign_with_header(&self, header: Header, claims: &Value) -> String {
        let key = EncodingKey::from_rsa_pem(self.private_pem.as_bytes()).unwrap();
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }
}

/// Keys are expensive to generate in debug builds: a few per test binary, shared.
pub fn key(index: usize) -> SigningKey {
    static KEYS: OnceLock<Mutex<HashMap<usize, SigningKey>>> = OnceLock::new();
    let keys = KEYS.get_or_init(Default::default);
    let mut keys = keys.lock().unwrap();
    keys.entry(index)
        .or_insert_with(|| SigningKey::generate(&format!("ins_test_key_{index}")))
        .clone()
}

/// What the stand-in knows and how it behaves right now.
#[derive(Default)]
pub struct ClerkState {
    /// Keys published in the JWKS.
    pub published: Mutex<Vec<SigningKey>>,
    /// Machine tokens the Backend API knows: secret → verify response.
    pub machine_tokens: Mutex<HashMap<String, Value>>,
    /// When set, every endpoint answers 503.
    pub failing: AtomicBool,
    pub jwks_fetches: AtomicUsize,
    pub verify_calls: AtomicUsize,
}

/// A running Clerk stand-in.
#[derive(Clone)]
pub struct ClerkStandIn {
    pub base_url: String,
    pub state: Arc<ClerkState>,
}

/// What a session token says: the user, the organization, role and permissions.
#[derive(Clone, Debug)]
pub struct TokenSpec {
    pub user: String,
    pub org: Option<String>,
    pub role: String,
    pub slug: Option<String>,
    /// Explicit permissions (`org:tasks:read`); none = role defaults apply.
    pub permissions: Vec<String>,
    /// Claims shape: v2 (`o`, `fea`, `pla`) unless set.
    pub v1: bool,
    pub session: String,
    pub lifetime_secs: i64,
    pub extra: Value,
}

impl TokenSpec {
    /// A user in an organization with a role (`admin`, `member`, `reader`, …).
    pub fn org(org: &str, role: &str) -> TokenSpec {
        TokenSpec {
            user: "user_alice".into(),
            org: Some(org.into()),
            role: role.into(),
            slug: Some(org.trim_start_matches("org_").replace('_', "-")),
            permissions: vec![],
            v1: false,
            session: "sess_test".into(),
            lifetime_secs: 300,
            extra: json!({}),
        }
    }

    /// A user with no active organization: their personal workspace.
    pub fn personal(user: &str) -> TokenSpec {
        TokenSpec {
            org: None,
            role: String::new(),
            slug: None,
            user: user.into(),
            ..TokenSpec::org("org_none", "admin")
        }
    }

    pub fn user(mut self, user: &str) -> Self {
        self.user = user.into();
        self
    }
    pub fn permissions(mut self, perms: &[&str]) -> Self {
        self.permissions = perms.iter().map(|p| p.to_string()).collect();
        self
    }
    pub fn v1(mut self) -> Self {
        self.v1 = true;
        self
    }
    /// Extra or overriding claims.
    pub fn extra(mut self, extra: Value) -> Self {
        self.extra = extra;
        self
    }

    /// The JWT claims for this spec.
    pub fn claims(&self, issuer: &str) -> Value {
        let now = chrono::Utc::now().timestamp();
        let mut claims = json!({
            "iss": issuer,
            "sub": self.user,
            "sid": self.session,
            "iat": now,
            "nbf": now - 5,
            "exp": now + self.lifetime_secs,
            "azp": "http://localhost:5173",
        });
        if let Some(org) = &self.org {
            if self.v1 {
                claims["org_id"] = json!(org);
                claims["org_role"] = json!(format!("org:{}", self.role));
                claims["org_slug"] = json!(self.slug);
                claims["org_permissions"] = json!(self.permissions);
            } else {
                let (fea, per, fpm) = encode_v2_permissions(&self.permissions);
                claims["v"] = json!(2);
                claims["o"] = json!({
                    "id": org,
                    "rol": self.role,
                    "slg": self.slug,
                    "per": per,
                    "fpm": fpm,
                });
                if !fea.is_empty() {
                    claims["fea"] = json!(fea);
                }
            }
        } else if !self.v1 {
            claims["v"] = json!(2);
        }
        if let (Some(target), Some(extra)) = (claims.as_object_mut(), self.extra.as_object()) {
            for (k, v) in extra {
                if v.is_null() {
                    target.remove(k);
                } else {
                    target.insert(k.clone(), v.clone());
                }
            }
        }
        claims
    }
}

/// Encodes `org:<feature>:<action>` permissions as Clerk's v2 claims do: `fea` lists the org
/// features, `per` the actions, and each `fpm` integer is a bitmask over `per` (leftmost bit is
/// the first action).
pub fn encode_v2_permissions(permissions: &[String]) -> (String, String, String) {
    let mut features: Vec<String> = vec![];
    let mut actions: Vec<String> = vec![];
    for p in permissions {
        let parts: Vec<&str> = p.split(':').collect();
        if parts.len() != 3 {
            continue;
        }
        if !features.iter().any(|f| f == parts[1]) {
            features.push(parts[1].into());
        }
        if !actions.iter().any(|a| a == parts[2]) {
            actions.push(parts[2].into());
        }
    }
    let fpm: Vec<String> = features
        .iter()
        .map(|f| {
            let mut mask = 0u64;
            for (j, a) in actions.iter().enumerate() {
                if permissions.contains(&format!("org:{f}:{a}")) {
                    mask |= 1 << (actions.len() - 1 - j);
                }
            }
            mask.to_string()
        })
        .collect();
    (
        features
            .iter()
            .map(|f| format!("o:{f}"))
            .collect::<Vec<_>>()
            .join(","),
        actions.join(","),
        fpm.join(","),
    )
}

impl ClerkStandIn {
    /// Starts the stand-in on an ephemeral loopback port, publishing key 0.
    pub async fn start() -> ClerkStandIn {
        let state = Arc::new(ClerkState::default());
        state.published.lock().unwrap().push(key(0));
        let data = web::Data::from(state.clone());
        let base_url = serve_on_loopback(1, move |routes| {
            routes
                .app_data(data.clone())
                .route("/.well-known/jwks.json", web::get().to(frontend_jwks))
                .route("/v1/jwks", web::get().to(backend_jwks))
                .route("/v1/api_keys/verify", web::post().to(verify_machine_token))
                .route(
                    "/v1/m2m_tokens/verify",
                    web::post().to(verify_machine_token),
                )
                .route(
                    "/v1/oauth_applications/access_tokens/verify",
                    web::post().to(verify_machine_token),
                );
        });
        ClerkStandIn { base_url, state }
    }

    /// The issuer tokens carry (the Frontend API URL).
    pub fn issuer(&self) -> String {
        self.base_url.clone()
    }

    /// Points the App at this stand-in.
    pub fn configure(&self, args: &mut ConfigArgs) {
        args.clerk_secret_key = Some(SECRET_KEY.into());
        args.clerk_issuer = Some(self.issuer());
        args.clerk_jwks_url = Some(format!("{}/.well-known/jwks.json", self.base_url));
        args.clerk_api_url = self.base_url.clone();
    }

    /// A session token for `spec`, signed with the first published key.
    pub fn session_token(&self, spec: &TokenSpec) -> String {
        self.current_key().sign(&spec.claims(&self.issuer()))
    }

    /// Signs arbitrary claims with the current key.
    pub fn sign_claims(&self, claims: &Value) -> String {
        self.current_key().sign(claims)
    }

    /// Signs `claims` with the current key but names `kid` in the header (unknown-kid tests).
    pub fn sign_with_kid(&self, claims: &Value, kid: &str) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        self.current_key().sign_with_header(header, claims)
    }

    /// An unsigned token (`alg: none`) with the current key's `kid`.
    pub fn unsigned_token(&self, claims: &Value) -> String {
        let header = json!({"alg": "none", "typ": "JWT", "kid": self.current_key().kid});
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    }

    /// The algorithm-confusion attack: HS256 with the published public key PEM as the HMAC
    /// secret, as a verifier that trusts the header's `alg` would accept it.
    pub fn hs256_with_public_key(&self, claims: &Value) -> String {
        let signing = self.current_key();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(signing.kid.clone());
        let key = EncodingKey::from_secret(signing.public_pem.as_bytes());
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }

    /// An OAuth access token in JWT form (`typ: at+jwt`) signed with the current key.
    pub fn access_token_jwt(&self, claims: &Value) -> String {
        let signing = self.current_key();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(signing.kid.clone());
        header.typ = Some("at+jwt".into());
        signing.sign_with_header(header, claims)
    }

    pub fn current_key(&self) -> SigningKey {
        self.state.published.lock().unwrap()[0].clone()
    }

    /// Publishes exactly these keys from now on (rotation).
    pub fn publish(&self, keys: Vec<SigningKey>) {
        *self.state.published.lock().unwrap() = keys;
    }

    pub fn set_failing(&self, failing: bool) {
        self.state.failing.store(failing, Ordering::SeqCst);
    }

    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    pub fn verify_calls(&self) -> usize {
        self.state.verify_calls.load(Ordering::SeqCst)
    }

    /// Registers a machine token (`ak_…`, `mt_…`, `oat_…`) with its subject and scopes.
    pub fn add_machine_token(&self, secret: &str, subject: &str, scopes: &[&str]) {
        let kind = match &secret[..3] {
            "ak_" => "api_key",
            "mt_" => "m2m_token",
            _ => "oauth_token",
        };
        self.set_machine_token(
            secret,
            json!({
                "object": kind,
                "id": format!("{kind}_{}", &secret[3..]),
                "subject": subject,
                "scopes": scopes,
                "claims": null,
                "revoked": false,
                "expired": false,
                "expiration": chrono::Utc::now().timestamp_millis() + 3_600_000,
            }),
        );
    }

    /// Sets the exact verify response for a machine token.
    pub fn set_machine_token(&self, secret: &str, response: Value) {
        self.state
            .machine_tokens
            .lock()
            .unwrap()
            .insert(secret.to_owned(), response);
    }

    /// Marks a machine token revoked.
    pub fn revoke(&self, secret: &str) {
        if let Some(record) = self.state.machine_tokens.lock().unwrap().get_mut(secret) {
            record["revoked"] = json!(true);
        }
    }
}

fn unavailable() -> HttpResponse {
    HttpResponse::ServiceUnavailable().json(json!({"errors": [{"code": "service_unavailable"}]}))
}

fn jwks(state: &ClerkState) -> HttpResponse {
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    if state.failing.load(Ordering::SeqCst) {
        return unavailable();
    }
    let keys: Vec<Value> = state
        .published
        .lock()
        .unwrap()
        .iter()
        .map(|k| k.jwk.clone())
        .collect();
    HttpResponse::Ok().json(json!({ "keys": keys }))
}

async fn frontend_jwks(state: web::Data<ClerkState>) -> HttpResponse {
    jwks(&state)
}

fn has_secret_key(req: &HttpRequest) -> bool {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {SECRET_KEY}"))
}

async fn backend_jwks(req: HttpRequest, state: web::Data<ClerkState>) -> HttpResponse {
    if !has_secret_key(&req) {
        return HttpResponse::Unauthorized()
            .json(json!({"errors": [{"code": "authentication_invalid"}]}));
    }
    jwks(&state)
}

async fn verify_machine_token(
    req: HttpRequest,
    state: web::Data<ClerkState>,
    body: web::Json<Value>,
) -> HttpResponse {
    state.verify_calls.fetch_add(1, Ordering::SeqCst);
    if state.failing.load(Ordering::SeqCst) {
        return unavailable();
    }
    if !has_secret_key(&req) {
        return HttpResponse::Unauthorized()
            .json(json!({"errors": [{"code": "authentication_invalid"}]}));
    }
    let secret = body["secret"].as_str().unwrap_or_default();
    // Each endpoint verifies only its own kind of token.
    let expected_prefix = match req.path() {
        "/v1/api_keys/verify" => "ak_",
        "/v1/m2m_tokens/verify" => "mt_",
        _ => "oat_",
    };
    let record = state.machine_tokens.lock().unwrap().get(secret).cloned();
    match record {
        Some(record) if secret.starts_with(expected_prefix) => HttpResponse::Ok().json(record),
        _ => HttpResponse::NotFound()
            .json(json!({"errors": [{"code": "resource_not_found", "message": "not found"}]})),
    }
}
