//! `resonance token inspect`: verify a token offline and print the TenantContext or the reason
//! it is refused.

use clap::Subcommand;

use crate::config::Config;

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

pub async fn run(_command: TokenCommand, _config: &Config) -> anyhow::Result<()> {
    anyhow::bail!("token inspection is not available yet")
}
