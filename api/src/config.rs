//! Configuration: environment variables, each with a matching command-line flag.
//!
//! clap reads every value as text; [`Config::from_args`] validates all of them once, at start,
//! so a bad value stops the program with one line naming the variable and what is wrong.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Args;

/// Where the service runs. Development enables conveniences (migrations on start, the
/// development token key) that production refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

/// Raw settings as given on the command line or in the environment.
#[derive(Debug, Clone, Args, Default)]
pub struct ConfigArgs {
    /// Database URL: `sqlite://…` (embedded) or `postgres://…`.
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// URL used by `migrate` and development start-up migrations (the schema owner); defaults
    /// to DATABASE_URL.
    #[arg(long, env = "RESONANCE_MIGRATION_DATABASE_URL", global = true)]
    pub migration_database_url: Option<String>,
    /// Address to listen on.
    #[arg(long, env = "RESONANCE_BIND", global = true)]
    pub bind: Option<String>,
    /// `development` or `production`.
    #[arg(long = "env", env = "RESONANCE_ENV", global = true)]
    pub environment: Option<String>,
    /// Directory for local state: the SQLite file, the development signing key, audio.
    #[arg(long, env = "RESONANCE_DATA_DIR", global = true)]
    pub data_dir: Option<String>,
    /// Public base URL of this API (used in `WWW-Authenticate` resource metadata links).
    #[arg(long, env = "RESONANCE_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// Largest accepted request body in bytes (JSON bodies).
    #[arg(long, env = "RESONANCE_BODY_LIMIT_BYTES", global = true)]
    pub body_limit_bytes: Option<String>,
    /// Comma-separated origins allowed by CORS (none by default).
    #[arg(long, env = "RESONANCE_CORS_ORIGINS", global = true)]
    pub cors_origins: Option<String>,
    /// Seconds to let in-flight requests finish after SIGTERM/SIGINT.
    #[arg(long, env = "RESONANCE_SHUTDOWN_TIMEOUT_SECS", global = true)]
    pub shutdown_timeout_secs: Option<String>,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "RESONANCE_WORKERS", global = true)]
    pub workers: Option<String>,
    /// Maximum database connections in the pool.
    #[arg(long, env = "RESONANCE_DB_MAX_CONNECTIONS", global = true)]
    pub db_max_connections: Option<String>,
    /// Seconds to wait when opening a database connection.
    #[arg(long, env = "RESONANCE_DB_CONNECT_TIMEOUT_SECS", global = true)]
    pub db_connect_timeout_secs: Option<String>,
    /// Seconds to wait for a free pooled connection.
    #[arg(long, env = "RESONANCE_DB_ACQUIRE_TIMEOUT_SECS", global = true)]
    pub db_acquire_timeout_secs: Option<String>,

    /// Clerk secret key (`sk_…`) for Backend API calls.
    #[arg(long, env = "CLERK_SECRET_KEY", global = true, hide_env_values = true)]
    pub clerk_secret_key: Option<String>,
    /// Clerk publishable key (`pk_…`); gives the issuer and the JWKS URL.
    #[arg(long, env = "CLERK_PUBLISHABLE_KEY", global = true)]
    pub clerk_publishable_key: Option<String>,
    /// Explicit JWKS URL (overrides the one derived from the publishable key).
    #[arg(long, env = "CLERK_JWKS_URL", global = true)]
    pub clerk_jwks_url: Option<String>,
    /// Explicit issuer (overrides the one derived from the publishable key).
    #[arg(long, env = "CLERK_ISSUER", global = true)]
    pub clerk_issuer: Option<String>,
    /// Clerk Backend API base URL.
    #[arg(long, env = "CLERK_API_URL", global = true)]
    pub clerk_api_url: Option<String>,
    /// PEM public key for networkless session verification.
    #[arg(long, env = "CLERK_JWT_KEY", global = true)]
    pub clerk_jwt_key: Option<String>,
    /// Comma-separated origins allowed in the `azp` claim.
    #[arg(long, env = "CLERK_AUTHORIZED_PARTIES", global = true)]
    pub clerk_authorized_parties: Option<String>,
    /// Allowed clock skew in seconds for `exp`, `nbf` and `iat`.
    #[arg(long, env = "CLERK_CLOCK_SKEW_SECS", global = true)]
    pub clerk_clock_skew_secs: Option<String>,
    /// Seconds a machine-token verification result is cached (a revoked token keeps working
    /// at most this long).
    #[arg(long, env = "CLERK_MACHINE_TOKEN_CACHE_SECS", global = true)]
    pub clerk_machine_token_cache_secs: Option<String>,
    /// Svix signing secret (`whsec_…`) of the Clerk webhook endpoint.
    #[arg(
        long,
        env = "CLERK_WEBHOOK_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub clerk_webhook_secret: Option<String>,

    /// Text-to-speech provider: `auto` (espeak-ng when on PATH), `espeak`,
    /// `openai-compatible` or `none`.
    #[arg(long, env = "RESONANCE_TTS_PROVIDER", global = true)]
    pub tts_provider: Option<String>,
    /// The espeak-ng program (a name looked up on PATH, or a path).
    #[arg(long, env = "RESONANCE_ESPEAK_PATH", global = true)]
    pub espeak_path: Option<String>,
    /// Base URL of an OpenAI-compatible speech API (`{base}/v1/audio/speech`).
    #[arg(long, env = "RESONANCE_TTS_BASE_URL", global = true)]
    pub tts_base_url: Option<String>,
    /// Bearer key for the OpenAI-compatible speech API.
    #[arg(
        long,
        env = "RESONANCE_TTS_API_KEY",
        global = true,
        hide_env_values = true
    )]
    pub tts_api_key: Option<String>,
    /// Model name sent to the OpenAI-compatible speech API.
    #[arg(long, env = "RESONANCE_TTS_MODEL", global = true)]
    pub tts_model: Option<String>,
    /// Voice sent to the OpenAI-compatible API for voices without a mapping of their own.
    #[arg(long, env = "RESONANCE_TTS_DEFAULT_VOICE", global = true)]
    pub tts_default_voice: Option<String>,
    /// Seconds one synthesis may take before it fails.
    #[arg(long, env = "RESONANCE_TTS_TIMEOUT_SECS", global = true)]
    pub tts_timeout_secs: Option<String>,
    /// Syntheses running at once in this process.
    #[arg(long, env = "RESONANCE_TTS_MAX_CONCURRENCY", global = true)]
    pub tts_max_concurrency: Option<String>,
    /// Syntheses running at once for one workspace.
    #[arg(long, env = "RESONANCE_TTS_MAX_PER_TENANT", global = true)]
    pub tts_max_per_tenant: Option<String>,
    /// Largest accepted voice sample in bytes.
    #[arg(long, env = "RESONANCE_VOICE_SAMPLE_MAX_BYTES", global = true)]
    pub voice_sample_max_bytes: Option<String>,
    /// Shortest accepted voice sample in seconds.
    #[arg(long, env = "RESONANCE_VOICE_SAMPLE_MIN_SECS", global = true)]
    pub voice_sample_min_secs: Option<String>,
    /// Longest accepted voice sample in seconds.
    #[arg(long, env = "RESONANCE_VOICE_SAMPLE_MAX_SECS", global = true)]
    pub voice_sample_max_secs: Option<String>,
    /// Where audio is stored: a directory (`file:///…` or a path; default `<data dir>/audio`)
    /// or `s3://bucket/prefix` (credentials and endpoint from the usual AWS_* variables).
    #[arg(long, env = "RESONANCE_STORAGE_URL", global = true)]
    pub storage_url: Option<String>,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub environment: Environment,
    pub database_url: String,
    pub migration_database_url: String,
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub public_url: Option<String>,
    pub body_limit_bytes: usize,
    pub cors_origins: Vec<String>,
    pub shutdown_timeout: Duration,
    pub workers: Option<usize>,
    pub db: DbPoolConfig,
    pub clerk: ClerkConfig,
    pub speech: SpeechConfig,
}

#[derive(Debug, Clone)]
pub struct DbPoolConfig {
    pub max_connections: u32,
    pub connect_timeout: Duration,
    pub acquire_timeout: Duration,
}

/// Clerk settings, named as Clerk's own SDKs name them.
#[derive(Debug, Clone, Default)]
pub struct ClerkConfig {
    pub secret_key: Option<String>,
    pub publishable_key: Option<String>,
    pub jwks_url: Option<String>,
    pub issuer: Option<String>,
    pub api_url: String,
    pub jwt_key: Option<String>,
    pub authorized_parties: Vec<String>,
    pub clock_skew: Duration,
    pub machine_token_cache_ttl: Duration,
    pub webhook_secret: Option<String>,
}

/// Which text-to-speech provider to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TtsProvider {
    /// espeak-ng when it is on PATH, otherwise none.
    Auto,
    Espeak,
    OpenAiCompatible,
    None,
}

/// Speech synthesis, voice samples and audio storage.
#[derive(Debug, Clone)]
pub struct SpeechConfig {
    pub provider: TtsProvider,
    pub espeak_path: String,
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    pub model: String,
    pub default_voice: String,
    pub timeout: Duration,
    pub max_concurrency: usize,
    pub max_per_tenant: usize,
    pub sample_max_bytes: usize,
    pub sample_min: Duration,
    pub sample_max: Duration,
    pub storage: StorageLocation,
}

/// Where audio objects live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageLocation {
    Local(PathBuf),
    /// An `s3://bucket/prefix` URL.
    S3(String),
}

/// A configuration value that cannot be used: names the variable and the problem.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

fn bad(var: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        problem: problem.into(),
    }
}

fn non_empty(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn parse_number<T>(
    var: &'static str,
    value: &Option<String>,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(text) = non_empty(value) else {
        return Ok(default);
    };
    let parsed: T = text
        .parse()
        .map_err(|_| bad(var, format!("'{text}' is not a whole number")))?;
    if parsed < min || parsed > max {
        return Err(bad(
            var,
            format!("{parsed} is out of range (expected {min}..={max})"),
        ));
    }
    Ok(parsed)
}

fn comma_list(value: &Option<String>) -> Vec<String> {
    value
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn check_http_url(var: &'static str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(bad(var, format!("'{url}' is not an http(s) URL")))
    }
}

pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

impl Config {
    /// Validates every setting; the first bad one is reported.
    pub fn from_args(args: &ConfigArgs) -> Result<Config, ConfigError> {
        let environment = match non_empty(&args.environment).as_deref() {
            None | Some("development") | Some("dev") => Environment::Development,
            Some("production") | Some("prod") => Environment::Production,
            Some(other) => {
                return Err(bad(
                    "RESONANCE_ENV",
                    format!("'{other}' is not one of: development, production"),
                ));
            }
        };

        let data_dir = PathBuf::from(non_empty(&args.data_dir).unwrap_or_else(|| "data".into()));

        let database_url = match non_empty(&args.database_url) {
            Some(url) => url,
            None => format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("resonance.db").display()
            ),
        };
        check_database_url("DATABASE_URL", &database_url)?;
        let migration_database_url =
            non_empty(&args.migration_database_url).unwrap_or_else(|| database_url.clone());
        check_database_url("RESONANCE_MIGRATION_DATABASE_URL", &migration_database_url)?;

        let bind_text = non_empty(&args.bind).unwrap_or_else(|| DEFAULT_BIND.into());
        let bind: SocketAddr = bind_text.parse().map_err(|_| {
            bad(
                "RESONANCE_BIND",
                format!("'{bind_text}' is not an address like 127.0.0.1:8080"),
            )
        })?;

        let public_url = non_empty(&args.public_url)
            .map(|url| {
                check_http_url("RESONANCE_PUBLIC_URL", &url)?;
                Ok(url.trim_end_matches('/').to_owned())
            })
            .transpose()?;

        let body_limit_bytes = parse_number(
            "RESONANCE_BODY_LIMIT_BYTES",
            &args.body_limit_bytes,
            DEFAULT_BODY_LIMIT,
            1,
            1024 * 1024 * 1024,
        )?;

        let cors_origins = comma_list(&args.cors_origins);
        for origin in &cors_origins {
            check_http_url("RESONANCE_CORS_ORIGINS", origin)?;
            if origin.ends_with('/') {
                return Err(bad(
                    "RESONANCE_CORS_ORIGINS",
                    format!("'{origin}' must be an origin without a trailing slash"),
                ));
            }
        }

        let shutdown_timeout = Duration::from_secs(parse_number(
            "RESONANCE_SHUTDOWN_TIMEOUT_SECS",
            &args.shutdown_timeout_secs,
            30u64,
            0,
            3600,
        )?);
        let workers = match non_empty(&args.workers) {
            None => None,
            Some(_) => Some(parse_number(
                "RESONANCE_WORKERS",
                &args.workers,
                1usize,
                1,
                256,
            )?),
        };

        let db = DbPoolConfig {
            max_connections: parse_number(
                "RESONANCE_DB_MAX_CONNECTIONS",
                &args.db_max_connections,
                16u32,
                1,
                1000,
            )?,
            connect_timeout: Duration::from_secs(parse_number(
                "RESONANCE_DB_CONNECT_TIMEOUT_SECS",
                &args.db_connect_timeout_secs,
                5u64,
                1,
                300,
            )?),
            acquire_timeout: Duration::from_secs(parse_number(
                "RESONANCE_DB_ACQUIRE_TIMEOUT_SECS",
                &args.db_acquire_timeout_secs,
                5u64,
                1,
                300,
            )?),
        };

        let clerk = ClerkConfig::from_args(args)?;
        let speech = SpeechConfig::from_args(args, &data_dir)?;

        Ok(Config {
            environment,
            database_url,
            migration_database_url,
            bind,
            data_dir,
            public_url,
            body_limit_bytes,
            cors_origins,
            shutdown_timeout,
            workers,
            db,
            clerk,
            speech,
        })
    }

    pub fn is_development(&self) -> bool {
        self.environment == Environment::Development
    }

    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }
}

fn check_database_url(var: &'static str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("sqlite:")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://")
    {
        Ok(())
    } else {
        Err(bad(
            var,
            "expected a sqlite://… or postgres://… URL".to_string(),
        ))
    }
}

impl SpeechConfig {
    fn from_args(
        args: &ConfigArgs,
        data_dir: &std::path::Path,
    ) -> Result<SpeechConfig, ConfigError> {
        let provider = match non_empty(&args.tts_provider).as_deref() {
            None | Some("auto") => TtsProvider::Auto,
            Some("espeak") | Some("espeak-ng") => TtsProvider::Espeak,
            Some("openai-compatible") | Some("openai") => TtsProvider::OpenAiCompatible,
            Some("none") => TtsProvider::None,
            Some(other) => {
                return Err(bad(
                    "RESONANCE_TTS_PROVIDER",
                    format!("'{other}' is not one of: auto, espeak, openai-compatible, none"),
                ));
            }
        };
        let base_url = non_empty(&args.tts_base_url)
            .map(|url| {
                check_http_url("RESONANCE_TTS_BASE_URL", &url)?;
                Ok(url.trim_end_matches('/').to_owned())
            })
            .transpose()?;
        if provider == TtsProvider::OpenAiCompatible && base_url.is_none() {
            return Err(bad(
                "RESONANCE_TTS_BASE_URL",
                "required when RESONANCE_TTS_PROVIDER is openai-compatible",
            ));
        }
        let sample_min_secs = parse_number(
            "RESONANCE_VOICE_SAMPLE_MIN_SECS",
            &args.voice_sample_min_secs,
            1u64,
            0,
            3600,
        )?;
        let sample_max_secs = parse_number(
            "RESONANCE_VOICE_SAMPLE_MAX_SECS",
            &args.voice_sample_max_secs,
            600u64,
            1,
            3600,
        )?;
        if sample_max_secs < sample_min_secs {
            return Err(bad(
                "RESONANCE_VOICE_SAMPLE_MAX_SECS",
                format!(
                    "{sample_max_secs} is below RESONANCE_VOICE_SAMPLE_MIN_SECS ({sample_min_secs})"
                ),
            ));
        }
        let storage = match non_empty(&args.storage_url) {
            None => StorageLocation::Local(data_dir.join("audio")),
            Some(url) if url.starts_with("s3://") => {
                if url
                    .trim_start_matches("s3://")
                    .split('/')
                    .next()
                    .unwrap_or("")
                    .is_empty()
                {
                    return Err(bad("RESONANCE_STORAGE_URL", "s3:// URL without a bucket"));
                }
                StorageLocation::S3(url)
            }
            Some(url) if url.contains("://") && !url.starts_with("file://") => {
                return Err(bad(
                    "RESONANCE_STORAGE_URL",
                    format!("'{url}' is not a directory, file:///… or s3://bucket/prefix URL"),
                ));
            }
            Some(url) => {
                let path = url.strip_prefix("file://").unwrap_or(&url);
                if path.is_empty() {
                    return Err(bad("RESONANCE_STORAGE_URL", "empty directory"));
                }
                StorageLocation::Local(PathBuf::from(path))
            }
        };
        Ok(SpeechConfig {
            provider,
            espeak_path: non_empty(&args.espeak_path).unwrap_or_else(|| "espeak-ng".into()),
            base_url,
            api_key: non_empty(&args.tts_api_key),
            model: non_empty(&args.tts_model).unwrap_or_else(|| "tts-1".into()),
            default_voice: non_empty(&args.tts_default_voice).unwrap_or_else(|| "alloy".into()),
            timeout: Duration::from_secs(parse_number(
                "RESONANCE_TTS_TIMEOUT_SECS",
                &args.tts_timeout_secs,
                30u64,
                1,
                600,
            )?),
            max_concurrency: parse_number(
                "RESONANCE_TTS_MAX_CONCURRENCY",
                &args.tts_max_concurrency,
                4usize,
                1,
                1024,
            )?,
            max_per_tenant: parse_number(
                "RESONANCE_TTS_MAX_PER_TENANT",
                &args.tts_max_per_tenant,
                2usize,
                1,
                1024,
            )?,
            sample_max_bytes: parse_number(
                "RESONANCE_VOICE_SAMPLE_MAX_BYTES",
                &args.voice_sample_max_bytes,
                20 * 1024 * 1024usize,
                1024,
                1024 * 1024 * 1024,
            )?,
            sample_min: Duration::from_secs(sample_min_secs),
            sample_max: Duration::from_secs(sample_max_secs),
            storage,
        })
    }
}

impl ClerkConfig {
    fn from_args(args: &ConfigArgs) -> Result<ClerkConfig, ConfigError> {
        let secret_key = non_empty(&args.clerk_secret_key);
        if let Some(key) = &secret_key
            && !key.starts_with("sk_")
        {
            return Err(bad("CLERK_SECRET_KEY", "expected a key starting with sk_"));
        }
        let publishable_key = non_empty(&args.clerk_publishable_key);
        if let Some(key) = &publishable_key
            && crate::auth::keys::frontend_api_host(key).is_none()
        {
            return Err(bad(
                "CLERK_PUBLISHABLE_KEY",
                "expected pk_test_… or pk_live_… followed by the base64 Frontend API host",
            ));
        }
        let jwks_url = non_empty(&args.clerk_jwks_url);
        if let Some(url) = &jwks_url {
            check_http_url("CLERK_JWKS_URL", url)?;
        }
        let issuer = non_empty(&args.clerk_issuer);
        if let Some(url) = &issuer {
            check_http_url("CLERK_ISSUER", url)?;
        }
        let api_url = non_empty(&args.clerk_api_url)
            .unwrap_or_else(|| "https://api.clerk.com".into())
            .trim_end_matches('/')
            .to_owned();
        check_http_url("CLERK_API_URL", &api_url)?;
        let jwt_key = non_empty(&args.clerk_jwt_key);
        if let Some(pem) = &jwt_key
            && jsonwebtoken::DecodingKey::from_rsa_pem(pem.replace("\\n", "\n").as_bytes()).is_err()
        {
            return Err(bad("CLERK_JWT_KEY", "not a PEM-encoded RSA public key"));
        }
        let authorized_parties = comma_list(&args.clerk_authorized_parties);
        let clock_skew = Duration::from_secs(parse_number(
            "CLERK_CLOCK_SKEW_SECS",
            &args.clerk_clock_skew_secs,
            5u64,
            0,
            600,
        )?);
        let machine_token_cache_ttl = Duration::from_secs(parse_number(
            "CLERK_MACHINE_TOKEN_CACHE_SECS",
            &args.clerk_machine_token_cache_secs,
            30u64,
            0,
            3600,
        )?);
        let webhook_secret = non_empty(&args.clerk_webhook_secret);
        if let Some(secret) = &webhook_secret
            && crate::auth::svix::signing_key(secret).is_none()
        {
            return Err(bad(
                "CLERK_WEBHOOK_SECRET",
                "expected whsec_ followed by the base64 signing key",
            ));
        }
        Ok(ClerkConfig {
            secret_key,
            publishable_key,
            jwks_url,
            issuer,
            api_url,
            jwt_key: jwt_key.map(|pem| pem.replace("\\n", "\n")),
            authorized_parties,
            clock_skew,
            machine_token_cache_ttl,
            webhook_secret,
        })
    }

    /// True when some way to verify Clerk session tokens is configured.
    pub fn can_verify_sessions(&self) -> bool {
        self.jwt_key.is_some()
            || self.jwks_url.is_some()
            || self.publishable_key.is_some()
            || self.secret_key.is_some()
    }
}
