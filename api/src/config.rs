//! Configuration: each setting is an environment variable with a matching `--flag`, declared
//! once in [`ConfigArgs`] with its default, range and help (`resonance --help` lists them all).
//!
//! clap parses and checks every value as it reads it ([`parse`]); a bad one stops the program
//! with one line naming the variable. [`Config::from_args`] then fills in the defaults that
//! depend on other settings and checks the rules that span several.

use std::{net::SocketAddr, ops::RangeBounds, path::PathBuf, time::Duration};

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, STANDARD_NO_PAD},
};
use clap::{
    Args, Command, FromArgMatches, Parser, ValueEnum,
    builder::RangedU64ValueParser,
    error::{ContextKind, ContextValue, ErrorKind},
    value_parser,
};

/// Where the service runs. Development enables conveniences (migrations on start, the
/// development token key) that production refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Environment {
    #[value(alias = "dev")]
    Development,
    #[value(alias = "prod")]
    Production,
}

/// Which text-to-speech provider to use.
#[derive(Debug, Clone, PartialEq, Eq, ValueEnum)]
pub enum TtsProvider {
    /// espeak-ng when it is on PATH, otherwise none.
    Auto,
    #[value(alias = "espeak-ng")]
    Espeak,
    #[value(name = "openai-compatible", alias = "openai")]
    OpenAiCompatible,
    None,
}

/// Where audio objects live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageLocation {
    Local(PathBuf),
    /// An `s3://bucket/prefix` URL.
    S3(String),
}

/// The default of `RESONANCE_BODY_LIMIT_BYTES`.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// Every setting, as given on the command line or in the environment, each checked by its
/// value parser as clap reads it. A blank environment variable counts as unset.
#[derive(Debug, Clone, Args)]
#[rustfmt::skip] // One block per setting: help, then flag, variable, default and range.
pub struct ConfigArgs {
    // Server and database.

    /// Database URL: `sqlite://…` (embedded) or `postgres://…`
    /// [default: sqlite://<data dir>/resonance.db?mode=rwc].
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true,
          value_parser = database_url)]
    pub database_url: Option<String>,
    /// URL used by `migrate` and development start-up migrations (the schema owner)
    /// [default: DATABASE_URL].
    #[arg(long, env = "RESONANCE_MIGRATION_DATABASE_URL", global = true, hide_env_values = true,
          value_parser = database_url)]
    pub migration_database_url: Option<String>,
    /// URL of the connection each instance holds in `LISTEN` for events from the others: a
    /// direct server address where DATABASE_URL goes through PgBouncer in transaction mode,
    /// which cannot hold a `LISTEN` [default: DATABASE_URL].
    #[arg(long, env = "RESONANCE_EVENTS_DATABASE_URL", global = true, hide_env_values = true,
          value_parser = database_url)]
    pub events_database_url: Option<String>,
    /// Address to listen on.
    #[arg(long, env = "RESONANCE_BIND", global = true, default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Where the service runs.
    #[arg(long = "env", env = "RESONANCE_ENV", global = true, value_enum,
          default_value_t = Environment::Development)]
    pub environment: Environment,
    /// Directory for local state: the SQLite file, the development signing key, audio.
    #[arg(long, env = "RESONANCE_DATA_DIR", global = true, default_value = "data")]
    pub data_dir: PathBuf,
    /// Public base URL of this API (used in `WWW-Authenticate` resource metadata links).
    #[arg(long, env = "RESONANCE_PUBLIC_URL", global = true, value_parser = base_url)]
    pub public_url: Option<String>,
    /// Largest accepted request body in bytes (JSON bodies).
    #[arg(long, env = "RESONANCE_BODY_LIMIT_BYTES", global = true,
          default_value_t = DEFAULT_BODY_LIMIT, value_parser = usize_in(1..=GIB))]
    pub body_limit_bytes: usize,
    /// Comma-separated origins allowed by CORS (none by default).
    #[arg(long, env = "RESONANCE_CORS_ORIGINS", global = true, value_delimiter = ',',
          value_parser = origin)]
    pub cors_origins: Vec<String>,
    /// Seconds to let in-flight requests finish after SIGTERM/SIGINT.
    #[arg(long, env = "RESONANCE_SHUTDOWN_TIMEOUT_SECS", global = true,
          default_value_t = 30, value_parser = value_parser!(u64).range(0..=3600))]
    pub shutdown_timeout_secs: u64,
    /// HTTP worker threads [default: one per core].
    #[arg(long, env = "RESONANCE_WORKERS", global = true, value_parser = usize_in(1..=256))]
    pub workers: Option<usize>,
    /// Maximum database connections in the pool.
    #[arg(long, env = "RESONANCE_DB_MAX_CONNECTIONS", global = true,
          default_value_t = 16, value_parser = value_parser!(u32).range(1..=1000))]
    pub db_max_connections: u32,
    /// Seconds to wait when opening a database connection.
    #[arg(long, env = "RESONANCE_DB_CONNECT_TIMEOUT_SECS", global = true,
          default_value_t = 5, value_parser = value_parser!(u64).range(1..=300))]
    pub db_connect_timeout_secs: u64,
    /// Seconds to wait for a free pooled connection.
    #[arg(long, env = "RESONANCE_DB_ACQUIRE_TIMEOUT_SECS", global = true,
          default_value_t = 5, value_parser = value_parser!(u64).range(1..=300))]
    pub db_acquire_timeout_secs: u64,
    /// Bearer token `GET /metrics` requires (at least 16 characters). Without it, metrics are
    /// open in development and not served in production (unless RESONANCE_METRICS_BIND).
    #[arg(long, env = "RESONANCE_METRICS_TOKEN", global = true, hide_env_values = true,
          value_parser = metrics_token)]
    pub metrics_token: Option<String>,
    /// Separate address serving only `GET /metrics` (then not served on RESONANCE_BIND).
    #[arg(long, env = "RESONANCE_METRICS_BIND", global = true)]
    pub metrics_bind: Option<SocketAddr>,

    // Clerk.

    /// Clerk secret key (`sk_…`) for Backend API calls.
    #[arg(long, env = "CLERK_SECRET_KEY", global = true, hide_env_values = true,
          value_parser = secret_key)]
    pub clerk_secret_key: Option<String>,
    /// Clerk publishable key (`pk_…`); gives the issuer and the JWKS URL.
    #[arg(long, env = "CLERK_PUBLISHABLE_KEY", global = true, value_parser = publishable_key)]
    pub clerk_publishable_key: Option<String>,
    /// Explicit JWKS URL (overrides the one derived from the publishable key).
    #[arg(long, env = "CLERK_JWKS_URL", global = true, value_parser = http_url)]
    pub clerk_jwks_url: Option<String>,
    /// Explicit issuer (overrides the one derived from the publishable key).
    #[arg(long, env = "CLERK_ISSUER", global = true, value_parser = http_url)]
    pub clerk_issuer: Option<String>,
    /// Clerk Backend API base URL.
    #[arg(long, env = "CLERK_API_URL", global = true,
          default_value = "https://api.clerk.com", value_parser = base_url)]
    pub clerk_api_url: String,
    /// PEM public key for networkless session verification (`\n` escapes allowed).
    #[arg(long, env = "CLERK_JWT_KEY", global = true, value_parser = rsa_public_key)]
    pub clerk_jwt_key: Option<String>,
    /// Comma-separated origins allowed in the `azp` claim.
    #[arg(long, env = "CLERK_AUTHORIZED_PARTIES", global = true, value_delimiter = ',',
          value_parser = list_item)]
    pub clerk_authorized_parties: Vec<String>,
    /// Allowed clock skew in seconds for `exp`, `nbf` and `iat`.
    #[arg(long, env = "CLERK_CLOCK_SKEW_SECS", global = true,
          default_value_t = 5, value_parser = value_parser!(u64).range(0..=600))]
    pub clerk_clock_skew_secs: u64,
    /// Seconds a machine-token verification result is cached (a revoked token keeps working
    /// at most this long).
    #[arg(long, env = "CLERK_MACHINE_TOKEN_CACHE_SECS", global = true,
          default_value_t = 30, value_parser = value_parser!(u64).range(0..=3600))]
    pub clerk_machine_token_cache_secs: u64,
    /// Bytes the verified-token cache (session and machine tokens alike) may take; the
    /// least recently used entries go first beyond it.
    #[arg(long, env = "CLERK_TOKEN_CACHE_MAX_BYTES", global = true,
          default_value_t = 16 * MIB, value_parser = value_parser!(u64).range(MIB..=16 * GIB))]
    pub clerk_token_cache_max_bytes: u64,
    /// Backend API verifications (cache misses of `ak_`/`mt_`/`oat_` tokens) per second
    /// allowed to one client address; beyond it 429 with `Retry-After`.
    #[arg(long, env = "CLERK_VERIFY_RATE_PER_IP", global = true,
          default_value_t = 10, value_parser = value_parser!(u32).range(1..=100_000))]
    pub clerk_verify_rate_per_ip: u32,
    /// Backend API verifications one client address may make at once before the rate applies.
    #[arg(long, env = "CLERK_VERIFY_BURST_PER_IP", global = true,
          default_value_t = 20, value_parser = value_parser!(u32).range(1..=100_000))]
    pub clerk_verify_burst_per_ip: u32,
    /// Backend API verification calls in flight at once in this process; beyond it 503 with
    /// `Retry-After`.
    #[arg(long, env = "CLERK_VERIFY_MAX_IN_FLIGHT", global = true,
          default_value_t = 32, value_parser = usize_in(1..=4096))]
    pub clerk_verify_max_in_flight: usize,
    /// Svix signing secret (`whsec_…`) of the Clerk webhook endpoint.
    #[arg(long, env = "CLERK_WEBHOOK_SECRET", global = true, hide_env_values = true,
          value_parser = webhook_secret)]
    pub clerk_webhook_secret: Option<String>,

    // Speech synthesis, voice samples and audio storage.

    /// Text-to-speech provider.
    #[arg(long, env = "RESONANCE_TTS_PROVIDER", global = true, value_enum,
          default_value_t = TtsProvider::Auto)]
    pub tts_provider: TtsProvider,
    /// The espeak-ng program (a name looked up on PATH, or a path).
    #[arg(long, env = "RESONANCE_ESPEAK_PATH", global = true, default_value = "espeak-ng")]
    pub espeak_path: String,
    /// Base URL of an OpenAI-compatible speech API (`{base}/v1/audio/speech`); required for
    /// the `openai-compatible` provider.
    #[arg(long, env = "RESONANCE_TTS_BASE_URL", global = true, value_parser = base_url)]
    pub tts_base_url: Option<String>,
    /// Bearer key for the OpenAI-compatible speech API.
    #[arg(long, env = "RESONANCE_TTS_API_KEY", global = true, hide_env_values = true)]
    pub tts_api_key: Option<String>,
    /// Model name sent to the OpenAI-compatible speech API.
    #[arg(long, env = "RESONANCE_TTS_MODEL", global = true, default_value = "tts-1")]
    pub tts_model: String,
    /// Voice sent to the OpenAI-compatible API for voices without a mapping of their own.
    #[arg(long, env = "RESONANCE_TTS_DEFAULT_VOICE", global = true, default_value = "alloy")]
    pub tts_default_voice: String,
    /// Seconds one synthesis may take before it fails.
    #[arg(long, env = "RESONANCE_TTS_TIMEOUT_SECS", global = true,
          default_value_t = 30, value_parser = value_parser!(u64).range(1..=600))]
    pub tts_timeout_secs: u64,
    /// Syntheses running at once in this process.
    #[arg(long, env = "RESONANCE_TTS_MAX_CONCURRENCY", global = true,
          default_value_t = 4, value_parser = usize_in(1..=1024))]
    pub tts_max_concurrency: usize,
    /// Syntheses running at once for one workspace.
    #[arg(long, env = "RESONANCE_TTS_MAX_PER_TENANT", global = true,
          default_value_t = 2, value_parser = usize_in(1..=1024))]
    pub tts_max_per_tenant: usize,
    /// Largest accepted voice sample in bytes.
    #[arg(long, env = "RESONANCE_VOICE_SAMPLE_MAX_BYTES", global = true,
          default_value_t = 20 * 1024 * 1024, value_parser = usize_in(1024..=GIB))]
    pub voice_sample_max_bytes: usize,
    /// Shortest accepted voice sample in seconds.
    #[arg(long, env = "RESONANCE_VOICE_SAMPLE_MIN_SECS", global = true,
          default_value_t = 1, value_parser = value_parser!(u64).range(0..=3600))]
    pub voice_sample_min_secs: u64,
    /// Longest accepted voice sample in seconds (at least RESONANCE_VOICE_SAMPLE_MIN_SECS).
    #[arg(long, env = "RESONANCE_VOICE_SAMPLE_MAX_SECS", global = true,
          default_value_t = 600, value_parser = value_parser!(u64).range(1..=3600))]
    pub voice_sample_max_secs: u64,
    /// Where audio is stored: a directory (`file:///…` or a path) or `s3://bucket/prefix`
    /// (credentials and endpoint from the usual AWS_* variables) [default: <data dir>/audio].
    #[arg(long, env = "RESONANCE_STORAGE_URL", global = true, value_parser = storage_location)]
    pub storage_url: Option<StorageLocation>,

    // Plans and limits.

    /// JSON plan catalogue (`{"default": …, "plans": {…}}`, see README "Plans and limits")
    /// [default: a built-in generous catalogue].
    #[arg(long, env = "RESONANCE_PLANS_FILE", global = true)]
    pub plans_file: Option<PathBuf>,
    /// Redis for rate-limit buckets shared by every replica (`redis://…`, `rediss://…`)
    /// [default: buckets in process].
    #[arg(long, env = "RESONANCE_REDIS_URL", global = true, hide_env_values = true,
          value_parser = redis_url)]
    pub redis_url: Option<String>,
    /// Prefix of the Redis keys this service writes.
    #[arg(long, env = "RESONANCE_REDIS_KEY_PREFIX", global = true, default_value = "resonance:")]
    pub redis_key_prefix: String,

    // Billing (Polar).

    /// Polar organization access token; without it the billing endpoints answer 503
    /// `billing_not_configured`.
    #[arg(long, env = "POLAR_ACCESS_TOKEN", global = true, hide_env_values = true,
          value_parser = non_blank)]
    pub polar_access_token: Option<String>,
    /// Polar API base URL (`https://sandbox-api.polar.sh` for the sandbox).
    #[arg(long, env = "POLAR_API_URL", global = true,
          default_value = "https://api.polar.sh", value_parser = base_url)]
    pub polar_api_url: String,
    /// Secret of the Polar webhook endpoint (`POST /webhooks/polar`); without it that
    /// endpoint answers 503.
    #[arg(long, env = "POLAR_WEBHOOK_SECRET", global = true, hide_env_values = true,
          value_parser = non_blank)]
    pub polar_webhook_secret: Option<String>,
    /// Seconds one call to the Polar API may take; beyond it 503 `billing_unavailable`.
    #[arg(long, env = "POLAR_TIMEOUT_SECS", global = true,
          default_value_t = 10, value_parser = value_parser!(u64).range(1..=120))]
    pub polar_timeout_secs: u64,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub environment: Environment,
    pub database_url: String,
    pub migration_database_url: String,
    /// Where the event listener connects (PostgreSQL).
    pub events_database_url: String,
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub public_url: Option<String>,
    pub body_limit_bytes: usize,
    pub cors_origins: Vec<String>,
    pub shutdown_timeout: Duration,
    pub workers: Option<usize>,
    pub db: DbPoolConfig,
    pub metrics: MetricsConfig,
    pub clerk: ClerkConfig,
    pub speech: SpeechConfig,
    pub limits: LimitsConfig,
    pub billing: BillingConfig,
}

/// Billing through Polar.
#[derive(Debug, Clone, Default)]
pub struct BillingConfig {
    /// `None`: billing is off (its endpoints answer 503, plans come from tokens).
    pub access_token: Option<String>,
    pub api_url: String,
    pub webhook_secret: Option<String>,
    pub timeout: Duration,
}

/// Plans, rate limits and quotas.
#[derive(Debug, Clone, Default)]
pub struct LimitsConfig {
    /// The plan catalogue file; `None`: the built-in catalogue.
    pub plans_file: Option<PathBuf>,
    /// Shared rate-limit buckets; `None`: in process.
    pub redis_url: Option<String>,
    pub redis_key_prefix: String,
    /// Billing is configured: a workspace's Polar subscription decides its plan.
    pub plans_from_billing: bool,
}

#[derive(Debug, Clone)]
pub struct DbPoolConfig {
    pub max_connections: u32,
    pub connect_timeout: Duration,
    pub acquire_timeout: Duration,
}

/// Where and to whom `GET /metrics` is served.
#[derive(Debug, Clone, Default)]
pub struct MetricsConfig {
    pub token: Option<String>,
    pub bind: Option<SocketAddr>,
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
    pub limits: ClerkLimits,
}

/// What verifying tokens may cost: cache memory and Clerk Backend API calls.
#[derive(Debug, Clone)]
pub struct ClerkLimits {
    pub token_cache_max_bytes: u64,
    pub verify_rate_per_ip: u32,
    pub verify_burst_per_ip: u32,
    pub verify_max_in_flight: usize,
}

impl Default for ClerkLimits {
    /// The defaults of the variables.
    fn default() -> Self {
        ClerkLimits::from(&ConfigArgs::default())
    }
}

impl From<&ConfigArgs> for ClerkLimits {
    fn from(args: &ConfigArgs) -> Self {
        ClerkLimits {
            token_cache_max_bytes: args.clerk_token_cache_max_bytes,
            verify_rate_per_ip: args.clerk_verify_rate_per_ip,
            verify_burst_per_ip: args.clerk_verify_burst_per_ip,
            verify_max_in_flight: args.clerk_verify_max_in_flight,
        }
    }
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

/// A configuration value that cannot be used: names the variable and the problem.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    pub var: String,
    pub problem: String,
}

impl Config {
    /// Fills in the defaults that depend on other settings and checks the rules that span
    /// several; each value on its own was checked when clap parsed it.
    pub fn from_args(args: &ConfigArgs) -> Result<Config, ConfigError> {
        let bad = |var: &str, problem: String| {
            Err(ConfigError {
                var: var.to_owned(),
                problem,
            })
        };
        if args.tts_provider == TtsProvider::OpenAiCompatible && args.tts_base_url.is_none() {
            return bad(
                "RESONANCE_TTS_BASE_URL",
                "required when RESONANCE_TTS_PROVIDER is openai-compatible".into(),
            );
        }
        let (min_secs, max_secs) = (args.voice_sample_min_secs, args.voice_sample_max_secs);
        if max_secs < min_secs {
            return bad(
                "RESONANCE_VOICE_SAMPLE_MAX_SECS",
                format!("{max_secs} is below RESONANCE_VOICE_SAMPLE_MIN_SECS ({min_secs})"),
            );
        }
        let database_url = args.database_url.clone().unwrap_or_else(|| {
            let file = args.data_dir.join("resonance.db");
            format!("sqlite://{}?mode=rwc", file.display())
        });
        let storage = args
            .storage_url
            .clone()
            .unwrap_or_else(|| StorageLocation::Local(args.data_dir.join("audio")));
        Ok(Config {
            environment: args.environment,
            migration_database_url: (args.migration_database_url.clone())
                .unwrap_or_else(|| database_url.clone()),
            events_database_url: (args.events_database_url.clone())
                .unwrap_or_else(|| database_url.clone()),
            database_url,
            bind: args.bind,
            data_dir: args.data_dir.clone(),
            public_url: args.public_url.clone(),
            body_limit_bytes: args.body_limit_bytes,
            cors_origins: non_empty(&args.cors_origins),
            shutdown_timeout: Duration::from_secs(args.shutdown_timeout_secs),
            workers: args.workers,
            db: DbPoolConfig {
                max_connections: args.db_max_connections,
                connect_timeout: Duration::from_secs(args.db_connect_timeout_secs),
                acquire_timeout: Duration::from_secs(args.db_acquire_timeout_secs),
            },
            metrics: MetricsConfig {
                token: args.metrics_token.clone(),
                bind: args.metrics_bind,
            },
            clerk: ClerkConfig {
                secret_key: args.clerk_secret_key.clone(),
                publishable_key: args.clerk_publishable_key.clone(),
                jwks_url: args.clerk_jwks_url.clone(),
                issuer: args.clerk_issuer.clone(),
                api_url: args.clerk_api_url.clone(),
                jwt_key: args.clerk_jwt_key.clone(),
                authorized_parties: non_empty(&args.clerk_authorized_parties),
                clock_skew: Duration::from_secs(args.clerk_clock_skew_secs),
                machine_token_cache_ttl: Duration::from_secs(args.clerk_machine_token_cache_secs),
                webhook_secret: args.clerk_webhook_secret.clone(),
                limits: ClerkLimits::from(args),
            },
            speech: SpeechConfig {
                provider: args.tts_provider.clone(),
                espeak_path: args.espeak_path.clone(),
                base_url: args.tts_base_url.clone(),
                api_key: args.tts_api_key.clone(),
                model: args.tts_model.clone(),
                default_voice: args.tts_default_voice.clone(),
                timeout: Duration::from_secs(args.tts_timeout_secs),
                max_concurrency: args.tts_max_concurrency,
                max_per_tenant: args.tts_max_per_tenant,
                sample_max_bytes: args.voice_sample_max_bytes,
                sample_min: Duration::from_secs(min_secs),
                sample_max: Duration::from_secs(max_secs),
                storage,
            },
            limits: LimitsConfig {
                plans_file: args.plans_file.clone(),
                redis_url: args.redis_url.clone(),
                redis_key_prefix: args.redis_key_prefix.clone(),
                plans_from_billing: args.polar_access_token.is_some(),
            },
            billing: BillingConfig {
                access_token: args.polar_access_token.clone(),
                api_url: args.polar_api_url.clone(),
                webhook_secret: args.polar_webhook_secret.clone(),
                timeout: Duration::from_secs(args.polar_timeout_secs),
            },
        })
    }

    pub fn is_development(&self) -> bool {
        self.environment == Environment::Development
    }

    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }
}

impl ClerkConfig {
    /// True when some way to verify Clerk session tokens is configured.
    pub fn can_verify_sessions(&self) -> bool {
        self.jwt_key.is_some()
            || self.jwks_url.is_some()
            || self.publishable_key.is_some()
            || self.secret_key.is_some()
    }
}

impl ConfigArgs {
    /// Settings from command-line flags alone, ignoring the environment.
    pub fn from_flags<'a>(flags: impl IntoIterator<Item = &'a str>) -> clap::error::Result<Self> {
        let command =
            Self::augment_args(Command::new("resonance")).mut_args(|a| a.env(None::<&str>));
        let mut matches =
            command.try_get_matches_from(std::iter::once("resonance").chain(flags))?;
        Self::from_arg_matches_mut(&mut matches)
    }
}

impl Default for ConfigArgs {
    /// Every setting at its default, whatever the environment says.
    fn default() -> Self {
        Self::from_flags([]).expect("the defaults are valid")
    }
}

/// Parses the command line and the environment. A bad configuration value is returned as a
/// [`ConfigError`] naming its variable; `--help`, `--version` and other command-line mistakes
/// exit through clap as usual.
pub fn parse<T: Parser>() -> Result<T, ConfigError> {
    // Like an absent variable, a blank one (docker-compose's `${VAR:-}`) takes the default.
    let blank = |name: &std::ffi::OsStr| std::env::var(name).is_ok_and(|v| v.trim().is_empty());
    let mut command = T::command().mut_args(|arg| match arg.get_env() {
        Some(name) if blank(name) => arg.env(None),
        _ => arg,
    });
    let parsed = command
        .try_get_matches_from_mut(std::env::args_os())
        .and_then(|mut matches| {
            T::from_arg_matches_mut(&mut matches).map_err(|err| err.format(&mut command))
        });
    parsed.map_err(|err| naming_the_variable(&err, &T::command()).unwrap_or_else(|| err.exit()))
}

/// A clap error about one value, as one line naming the variable; `None` for other errors.
/// Values of variables whose value is hidden (secrets, database URLs) are not repeated.
fn naming_the_variable(err: &clap::Error, command: &Command) -> Option<ConfigError> {
    if !matches!(
        err.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return None;
    }
    let context = |kind| match err.get(kind) {
        Some(ContextValue::String(text)) => Some(text.as_str()),
        _ => None,
    };
    let flag = context(ContextKind::InvalidArg)?.split(' ').next()?;
    let arg = (command.get_arguments()).find(|a| a.get_long() == flag.strip_prefix("--"))?;
    let reason = match (err.kind(), err.get(ContextKind::ValidValue)) {
        (ErrorKind::InvalidValue, Some(ContextValue::Strings(valid))) => {
            format!("expected one of: {}", valid.join(", "))
        }
        _ => {
            std::error::Error::source(err).map_or_else(|| err.kind().to_string(), |e| e.to_string())
        }
    };
    let problem = match context(ContextKind::InvalidValue) {
        Some(value) if !arg.is_hide_env_values_set() => {
            format!("invalid value {value:?}: {reason}")
        }
        _ => reason,
    };
    let var = arg
        .get_env()
        .map_or(flag.into(), |name| name.to_string_lossy());
    Some(ConfigError {
        var: var.into_owned(),
        problem,
    })
}

// Value parsers: each checks one value; its error message is the reason in the one line.

fn usize_in(range: impl RangeBounds<u64>) -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::new().range(range)
}

fn database_url(url: &str) -> Result<String, &'static str> {
    if ["sqlite:", "postgres://", "postgresql://"]
        .iter()
        .any(|s| url.starts_with(s))
    {
        Ok(url.to_owned())
    } else {
        Err("expected a sqlite://… or postgres://… URL")
    }
}

fn redis_url(url: &str) -> Result<String, &'static str> {
    if ["redis://", "rediss://", "redis+unix://", "unix://"]
        .iter()
        .any(|s| url.starts_with(s))
    {
        Ok(url.to_owned())
    } else {
        Err("expected a redis://… or rediss://… URL")
    }
}

fn http_url(url: &str) -> Result<String, &'static str> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(url.to_owned())
    } else {
        Err("expected an http(s) URL")
    }
}

/// An http(s) URL without its trailing slashes.
fn base_url(url: &str) -> Result<String, &'static str> {
    http_url(url).map(|url| url.trim_end_matches('/').to_owned())
}

/// A secret that must not be blank (blank variables already count as unset).
fn non_blank(value: &str) -> Result<String, &'static str> {
    let value = value.trim();
    if value.is_empty() || value.chars().any(char::is_control) {
        Err("expected a non-blank value without control characters")
    } else {
        Ok(value.to_owned())
    }
}

/// One item of a comma-separated list: trimmed; blank items are dropped by [`non_empty`].
fn list_item(item: &str) -> Result<String, &'static str> {
    Ok(item.trim().to_owned())
}

/// A list item that is an origin: an http(s) URL without a trailing slash.
fn origin(item: &str) -> Result<String, &'static str> {
    let origin = list_item(item)?;
    if origin.is_empty() {
        Ok(origin)
    } else if http_url(&origin)?.ends_with('/') {
        Err("expected an origin without a trailing slash")
    } else {
        Ok(origin)
    }
}

fn non_empty(items: &[String]) -> Vec<String> {
    items.iter().filter(|i| !i.is_empty()).cloned().collect()
}

/// A bearer token: at least 16 visible ASCII characters (no spaces), so it can be sent in a
/// header as is and is not guessed easily.
fn metrics_token(token: &str) -> Result<String, &'static str> {
    if token.len() < 16 {
        Err("expected at least 16 characters")
    } else if !token.bytes().all(|b| b.is_ascii_graphic()) {
        Err("expected visible ASCII characters only (no spaces)")
    } else {
        Ok(token.to_owned())
    }
}

fn secret_key(key: &str) -> Result<String, &'static str> {
    key.starts_with("sk_")
        .then(|| key.to_owned())
        .ok_or("expected a key starting with sk_")
}

fn publishable_key(key: &str) -> Result<String, &'static str> {
    frontend_api_host(key)
        .map(|_| key.to_owned())
        .ok_or("expected pk_test_… or pk_live_… followed by the base64 Frontend API host")
}

fn webhook_secret(secret: &str) -> Result<String, &'static str> {
    webhook_signing_key(secret)
        .map(|_| secret.to_owned())
        .ok_or("expected whsec_ followed by the base64 signing key")
}

/// A PEM-encoded RSA public key, with `\n` escapes (as env files write it) turned into newlines.
fn rsa_public_key(pem: &str) -> Result<String, &'static str> {
    let pem = pem.replace("\\n", "\n");
    jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes())
        .map(|_| pem)
        .map_err(|_| "not a PEM-encoded RSA public key")
}

fn storage_location(url: &str) -> Result<StorageLocation, &'static str> {
    if let Some(rest) = url.strip_prefix("s3://") {
        if rest.is_empty() || rest.starts_with('/') {
            return Err("s3:// URL without a bucket");
        }
        return Ok(StorageLocation::S3(url.to_owned()));
    }
    if url.contains("://") && !url.starts_with("file://") {
        return Err("expected a directory, file:///… or s3://bucket/prefix URL");
    }
    match url.strip_prefix("file://").unwrap_or(url) {
        "" => Err("empty directory"),
        path => Ok(StorageLocation::Local(PathBuf::from(path))),
    }
}

/// `pk_test_<base64("clerk.example.com$")>` → `clerk.example.com`.
pub fn frontend_api_host(publishable_key: &str) -> Option<String> {
    let encoded = publishable_key
        .strip_prefix("pk_test_")
        .or_else(|| publishable_key.strip_prefix("pk_live_"))?;
    let decoded = STANDARD
        .decode(encoded)
        .or_else(|_| STANDARD_NO_PAD.decode(encoded))
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let host = text.strip_suffix('$')?;
    (!host.is_empty() && !host.contains(['/', ' '])).then(|| host.to_owned())
}

/// The signing key of a `whsec_<base64>` webhook secret.
pub fn webhook_signing_key(secret: &str) -> Option<Vec<u8>> {
    let encoded = secret.strip_prefix("whsec_")?;
    STANDARD.decode(encoded).ok().filter(|key| !key.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(flags: &[&str]) -> Result<Config, String> {
        let args = ConfigArgs::from_flags(flags.iter().copied()).map_err(|e| e.to_string())?;
        Config::from_args(&args).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_put_local_state_under_the_data_dir() {
        let config = config(&["--data-dir", "/srv/r"]).unwrap();
        assert_eq!(config.database_url, "sqlite:///srv/r/resonance.db?mode=rwc");
        assert_eq!(config.migration_database_url, config.database_url);
        let audio = StorageLocation::Local("/srv/r/audio".into());
        assert_eq!(config.speech.storage, audio);
        assert_eq!(config.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(config.environment, Environment::Development);
        assert_eq!(config.workers, None);
        assert_eq!(config.clerk.api_url, "https://api.clerk.com");
        assert_eq!(config.speech.sample_max, Duration::from_secs(600));
        assert!(config.metrics.token.is_none() && config.metrics.bind.is_none());
    }

    #[test]
    fn values_are_parsed_and_normalised() {
        let config = config(&[
            "--env=prod",
            "--tts-provider=openai",
            "--tts-base-url=https://speech.example/",
            "--cors-origins=https://a.example, ,https://b.example",
            "--clerk-authorized-parties= https://a.example,",
            "--storage-url=s3://bucket/audio",
        ])
        .unwrap();
        assert_eq!(config.environment, Environment::Production);
        assert_eq!(config.speech.provider, TtsProvider::OpenAiCompatible);
        let base_url = config.speech.base_url.as_deref();
        assert_eq!(base_url, Some("https://speech.example"));
        let origins = ["https://a.example", "https://b.example"];
        assert_eq!(config.cors_origins, origins);
        assert_eq!(config.clerk.authorized_parties, ["https://a.example"]);
        let bucket = StorageLocation::S3("s3://bucket/audio".into());
        assert_eq!(config.speech.storage, bucket);
    }

    #[test]
    fn rules_spanning_two_settings() {
        assert_eq!(
            config(&["--tts-provider=openai-compatible"]).unwrap_err(),
            "RESONANCE_TTS_BASE_URL: required when RESONANCE_TTS_PROVIDER is openai-compatible"
        );
        assert_eq!(
            config(&["--voice-sample-min-secs=60", "--voice-sample-max-secs=30"]).unwrap_err(),
            "RESONANCE_VOICE_SAMPLE_MAX_SECS: 30 is below RESONANCE_VOICE_SAMPLE_MIN_SECS (60)"
        );
    }

    #[test]
    fn settings_are_global_to_the_subcommands() {
        #[derive(Parser)]
        struct Cli {
            #[command(subcommand)]
            command: Option<Sub>,
            #[command(flatten)]
            config: ConfigArgs,
        }
        #[derive(clap::Subcommand)]
        enum Sub {
            Serve,
        }
        let cli = Cli::try_parse_from(["r", "--workers=2", "serve", "--body-limit-bytes=64"]);
        let cli = cli.unwrap();
        assert!(matches!(cli.command, Some(Sub::Serve)));
        assert_eq!(cli.config.workers, Some(2));
        assert_eq!(cli.config.body_limit_bytes, 64);
    }

    #[test]
    fn a_bad_value_is_one_line_naming_the_variable() {
        let command = ConfigArgs::augment_args(Command::new("resonance"));
        let line = |flag: &str| {
            let err = ConfigArgs::from_flags([flag]).unwrap_err();
            naming_the_variable(&err, &command).map(|e| e.to_string())
        };
        assert_eq!(
            line("--workers=0").as_deref(),
            Some("RESONANCE_WORKERS: invalid value \"0\": 0 is not in 1..=256")
        );
        assert_eq!(
            line("--env=staging").as_deref(),
            Some(
                "RESONANCE_ENV: invalid value \"staging\": expected one of: development, production"
            )
        );
        assert_eq!(
            line("--metrics-token=short").as_deref(),
            Some("RESONANCE_METRICS_TOKEN: expected at least 16 characters")
        );
        // Values of hidden variables are not repeated.
        assert_eq!(
            line("--clerk-secret-key=pk_oops").as_deref(),
            Some("CLERK_SECRET_KEY: expected a key starting with sk_")
        );
        assert_eq!(line("--no-such-flag"), None);
    }

    #[test]
    fn publishable_key_gives_the_frontend_api_host() {
        let key = format!("pk_test_{}", STANDARD.encode("clerk.example.com$"));
        assert_eq!(
            frontend_api_host(&key).as_deref(),
            Some("clerk.example.com")
        );
        assert_eq!(frontend_api_host("pk_test_bm90LWEta2V5"), None);
        assert_eq!(frontend_api_host("sk_test_abc"), None);
    }

    #[test]
    fn webhook_secret_gives_the_signing_key() {
        let secret = format!("whsec_{}", STANDARD.encode(b"key"));
        assert_eq!(webhook_signing_key(&secret).as_deref(), Some(&b"key"[..]));
        assert_eq!(webhook_signing_key("whsec_"), None);
        assert_eq!(webhook_signing_key("whsec_not base64"), None);
        assert_eq!(webhook_signing_key(&STANDARD.encode(b"key")), None);
    }

    #[test]
    fn billing_is_on_with_a_polar_token_only() {
        let off = config(&[]).unwrap();
        assert_eq!(off.billing.access_token, None);
        assert_eq!(off.billing.api_url, "https://api.polar.sh");
        assert!(!off.limits.plans_from_billing);

        let on = config(&[
            "--polar-access-token",
            "polar_oat_x",
            "--polar-api-url",
            "https://sandbox-api.polar.sh/",
            "--polar-webhook-secret",
            "polar_whs_y",
        ])
        .unwrap();
        assert_eq!(on.billing.access_token.as_deref(), Some("polar_oat_x"));
        assert_eq!(on.billing.api_url, "https://sandbox-api.polar.sh");
        assert_eq!(on.billing.webhook_secret.as_deref(), Some("polar_whs_y"));
        assert_eq!(on.billing.timeout, Duration::from_secs(10));
        assert!(on.limits.plans_from_billing);

        let command = ConfigArgs::augment_args(Command::new("resonance"));
        let line = |flag: &str| {
            let err = ConfigArgs::from_flags([flag]).unwrap_err();
            naming_the_variable(&err, &command).map(|e| e.to_string())
        };
        assert_eq!(
            line("--polar-api-url=ftp://polar").as_deref(),
            Some("POLAR_API_URL: invalid value \"ftp://polar\": expected an http(s) URL")
        );
        assert!(
            line("--polar-timeout-secs=0")
                .unwrap()
                .starts_with("POLAR_TIMEOUT_SECS: invalid value \"0\"")
        );
    }
}
