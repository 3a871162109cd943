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
    #[arg(long, env = "CLERK_WEBHOOK_SECRET", global = true, hide_env_values = true)]
    pub clerk_webhook_secret: Option<String>,
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

fn parse_number<T: std::str::FromStr>(
    var: &'static str,
    value: &Option<String>,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError>
where
    T: PartialOrd + std::fmt::Display + Copy,
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
            Some(_) => Some(parse_number("RESONANCE_WORKERS", &args.workers, 1usize, 1, 256)?),
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
    if url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")
    {
        Ok(())
    } else {
        Err(bad(
            var,
            "expected a sqlite://… or postgres://… URL".to_string(),
        ))
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
            && crate::routes::webhooks::signing_key(secret).is_none()
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
