//! Development tokens: `resonance dev token` mints session tokens signed with a key kept under
//! the data directory, accepted only in development with no Clerk verification configured.

use clap::Subcommand;

use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Mint a development session token.
    Token {
        /// Organization id (omit for a personal workspace).
        #[arg(long)]
        org: Option<String>,
        /// Organization role: admin, member, reader, …
        #[arg(long, default_value = "admin")]
        role: String,
        /// User id.
        #[arg(long, default_value = "user_dev")]
        user: String,
        /// Explicit permissions (repeatable), e.g. org:tasks:read.
        #[arg(long = "perm")]
        perms: Vec<String>,
        /// Use the v1 claim shape (org_id, org_role, …) instead of v2.
        #[arg(long)]
        v1: bool,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
}

pub fn run(_command: DevCommand, _config: &Config) -> anyhow::Result<()> {
    anyhow::bail!("development tokens are not available yet")
}
