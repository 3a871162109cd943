//! `resonance token inspect`: verify a token offline and print the TenantContext or the reason
//! it is refused, so an operator can see why a real token is turned away.
//!
//! Keys come from `--jwks` (a JWKS file, or a URL fetched once), else from the configuration
//! exactly as the server would use them. `--at` verifies as of another time (a token copied
//! from a log has usually expired by the time someone looks at it).

use clap::Subcommand;

use super::{
    Authenticator, clerk_http_client, clerk_issuer,
    keys::{KeySource, parse_jwks},
    machine::MachineVerifier,
    session::SessionVerifier,
};
use crate::{
    config::Config,
    error::ApiError,
    tenant::{TenantContext, TokenKind},
};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Verify a token and print the resulting context, or why it is refused.
    Inspect {
        /// The token.
        token: String,
        /// JWKS to verify against: a file path or an http(s) URL.
        #[arg(long)]
        jwks: Option<String>,
        /// Verify as if now were this Unix time.
        #[arg(long)]
        at: Option<i64>,
        /// Expected issuer.
        #[arg(long)]
        issuer: Option<String>,
    },
}

/// Reads a JWKS from a file or, for an http(s) URL, fetches it once.
async fn load_jwks(source: &str, client: &reqwest::Client) -> anyhow::Result<KeySource> {
    let body = if source.starts_with("http://") || source.starts_with("https://") {
        let response = client.get(source).send().await?.error_for_status()?;
        response.bytes().await?.to_vec()
    } else {
        std::fs::read(source).map_err(|e| anyhow::anyhow!("--jwks {source}: {e}"))?
    };
    let keys = parse_jwks(&body).map_err(|e| anyhow::anyhow!("--jwks {source}: {e}"))?;
    Ok(KeySource::Fixed(keys))
}

/// Verifies `token` as the command describes. The outer error is a setup problem (unreadable
/// JWKS, bad configuration); the inner one is the token's rejection.
pub async fn inspect(
    command: TokenCommand,
    config: &Config,
) -> anyhow::Result<Result<TenantContext, ApiError>> {
    let TokenCommand::Inspect {
        token,
        jwks,
        at,
        issuer,
    } = command;
    let token = token.trim();
    let token = token.strip_prefix("Bearer ").unwrap_or(token);
    let now = at.unwrap_or_else(|| chrono::Utc::now().timestamp());
    let mut authenticator = Authenticator::new(config)?;
    if jwks.is_some() || issuer.is_some() {
        let client = clerk_http_client()?;
        let keys = match &jwks {
            Some(source) => load_jwks(source, &client).await?,
            None => std::mem::replace(
                &mut authenticator.session.keys,
                KeySource::Fixed(Default::default()),
            ),
        };
        // A JWKS given on the command line is Clerk's: its tokens are session tokens with
        // Clerk's issuer, even on a development machine.
        let (default_issuer, kind) = match &jwks {
            Some(_) => (clerk_issuer(&config.clerk), TokenKind::SessionToken),
            None => (authenticator.issuer(), authenticator.session.kind),
        };
        let session = SessionVerifier {
            keys,
            issuer: issuer.or(default_issuer),
            authorized_parties: config.clerk.authorized_parties.clone(),
            skew: config.clerk.clock_skew.as_secs() as i64,
            kind,
        };
        let machine = MachineVerifier::new(
            client,
            config.clerk.api_url.clone(),
            config.clerk.secret_key.clone(),
            std::time::Duration::ZERO,
        );
        authenticator = Authenticator::from_parts(session, machine, &config.clerk.limits);
    }
    Ok(authenticator.verify_uncached(token, now).await)
}

/// Prints the context as JSON, or the rejection and a failure exit.
pub async fn run(command: TokenCommand, config: &Config) -> anyhow::Result<()> {
    match inspect(command, config).await? {
        Ok(ctx) => {
            println!("{}", serde_json::to_string_pretty(&ctx)?);
            Ok(())
        }
        Err(ApiError::Unauthorized(why)) => anyhow::bail!("token rejected: {}", why.description),
        Err(other) => anyhow::bail!("token not verified: {}", other.public_detail()),
    }
}
