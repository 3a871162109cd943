//! Development tokens: `resonance dev token` mints session tokens signed with an RSA key kept
//! under the data directory (`<data_dir>/dev-signing-key.pem`, created on first use).
//!
//! The server accepts that key only when `RESONANCE_ENV=development` and no Clerk verification
//! is configured; the tokens carry the issuer [`DEV_ISSUER`] and the `kid` [`DEV_KID`], and are
//! shaped exactly like Clerk session tokens (claims v2, or v1 with `--v1`), so they exercise
//! the same verification path.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::Context;
use clap::Subcommand;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use rsa::{
    RsaPrivateKey,
    pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey},
    pkcs8::{DecodePrivateKey, LineEnding},
    traits::PublicKeyParts,
};
use serde_json::{Value, json};

use crate::{config::Config, tenant::permissions};

/// The issuer of development tokens.
pub const DEV_ISSUER: &str = "https://dev.resonance.local";
/// The `kid` of the development key; tokens naming it are refused whenever Clerk is configured.
pub const DEV_KID: &str = "resonance-dev";
/// The key file under the data directory.
pub const KEY_FILE: &str = "dev-signing-key.pem";

#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Mint a development session token.
    Token(DevTokenSpec),
}

/// The development signing key.
pub struct DevKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl DevKey {
    pub fn decoding_key(&self) -> DecodingKey {
        self.decoding.clone()
    }
}

pub fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join(KEY_FILE)
}

/// Loads the development key, creating it (mode 0600) on first use.
pub fn load_or_create(data_dir: &Path) -> anyhow::Result<DevKey> {
    let path = key_path(data_dir);
    match fs::read_to_string(&path) {
        Ok(pem) => return from_pem(&pem).with_context(|| format!("reading {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    fs::create_dir_all(data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    let private = RsaPrivateKey::new(&mut rand::thread_rng(), 2048)?;
    let pem = private.to_pkcs1_pem(LineEnding::LF)?;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut file) => {
            file.write_all(pem.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            from_pem(&pem)
        }
        // Someone else (the server or another `dev token`) created it meanwhile: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let pem = fs::read_to_string(&path)?;
            from_pem(&pem)
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

fn from_pem(pem: &str) -> anyhow::Result<DevKey> {
    let private = RsaPrivateKey::from_pkcs1_pem(pem)
        .or_else(|_| RsaPrivateKey::from_pkcs8_pem(pem))
        .context("not a PEM RSA private key")?;
    let decoding = DecodingKey::from_rsa_raw_components(
        &private.n().to_bytes_be(),
        &private.e().to_bytes_be(),
    );
    let encoding = EncodingKey::from_rsa_pem(pem.as_bytes())?;
    Ok(DevKey { encoding, decoding })
}

/// What a development token says.
#[derive(Debug, Clone, clap::Args)]
pub struct DevTokenSpec {
    /// Organization id (omit for a personal workspace).
    #[arg(long)]
    pub org: Option<String>,
    /// Organization role: admin, member, reader, …
    #[arg(long, default_value = "admin")]
    pub role: String,
    /// User id.
    #[arg(long, default_value = "user_dev")]
    pub user: String,
    /// Explicit permissions (repeatable), e.g. org:tasks:read.
    #[arg(long = "perm")]
    pub perms: Vec<String>,
    /// Use the v1 claim shape (org_id, org_role, …) instead of v2.
    #[arg(long)]
    pub v1: bool,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    pub ttl: u64,
}

/// Encodes `org:<feature>:<action>` permissions as Clerk's v2 claims do (`fea`, `per`, `fpm`;
/// the leftmost bit of each `fpm` integer is the first action of `per`).
fn encode_v2(perms: &[String]) -> (String, String, String) {
    let mut features: Vec<&str> = vec![];
    let mut actions: Vec<&str> = vec![];
    for p in perms {
        if let [_, feature, action] = p.split(':').collect::<Vec<_>>()[..] {
            if !features.contains(&feature) {
                features.push(feature);
            }
            if !actions.contains(&action) {
                actions.push(action);
            }
        }
    }
    let fpm: Vec<String> = features
        .iter()
        .map(|f| {
            let bits: String = actions
                .iter()
                .map(|a| {
                    if perms.contains(&format!("org:{f}:{a}")) {
                        '1'
                    } else {
                        '0'
                    }
                })
                .collect();
            u64::from_str_radix(&bits, 2).unwrap_or(0).to_string()
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

/// The claims of a development token issued at `now`.
pub fn claims(spec: &DevTokenSpec, now: i64) -> Value {
    let mut claims = json!({
        "iss": DEV_ISSUER,
        "sub": spec.user,
        "sid": "sess_dev",
        "iat": now,
        "nbf": now,
        "exp": now + spec.ttl.min(i64::MAX as u64 / 2) as i64,
    });
    let role = spec.role.strip_prefix("org:").unwrap_or(&spec.role);
    let perms: Vec<String> = spec
        .perms
        .iter()
        .map(|p| permissions::qualified(p))
        .collect();
    match (&spec.org, spec.v1) {
        (Some(org), true) => {
            claims["org_id"] = json!(org);
            claims["org_role"] = json!(format!("org:{role}"));
            claims["org_slug"] = json!(org.trim_start_matches("org_").replace('_', "-"));
            claims["org_permissions"] = json!(perms);
        }
        (Some(org), false) => {
            let (fea, per, fpm) = encode_v2(&perms);
            claims["v"] = json!(2);
            claims["o"] = json!({
                "id": org,
                "rol": role,
                "slg": org.trim_start_matches("org_").replace('_', "-"),
                "per": per,
                "fpm": fpm,
            });
            if !fea.is_empty() {
                claims["fea"] = json!(fea);
            }
        }
        (None, v1) => {
            if !v1 {
                claims["v"] = json!(2);
            }
        }
    }
    claims
}

/// Signs a development token for `spec`.
pub fn mint(key: &DevKey, spec: &DevTokenSpec, now: i64) -> anyhow::Result<String> {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(DEV_KID.into());
    Ok(jsonwebtoken::encode(
        &header,
        &claims(spec, now),
        &key.encoding,
    )?)
}

pub fn run(command: DevCommand, config: &Config) -> anyhow::Result<()> {
    let DevCommand::Token(spec) = command;
    anyhow::ensure!(
        config.is_development(),
        "development tokens exist only with RESONANCE_ENV=development"
    );
    if config.clerk.can_verify_sessions() {
        eprintln!(
            "note: Clerk settings are present, so the server will refuse this token; unset the CLERK_* variables to use it"
        );
    }
    let key = load_or_create(&config.data_dir)?;
    println!("{}", mint(&key, &spec, chrono::Utc::now().timestamp())?);
    Ok(())
}
