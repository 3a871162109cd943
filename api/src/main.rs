//! The `resonance` command: serve the API, manage migrations, print the OpenAPI document, and
//! development and operator token tools.

use std::{net::TcpListener, process::ExitCode};

use clap::{Parser, Subcommand};
use resonance_api::{
    auth,
    config::{self, Config, ConfigArgs},
    db, limits, openapi, server, telemetry,
};

/// mimalloc: request handling allocates many small, short-lived buffers (rows, JSON), where
/// it is measurably cheaper than the system allocator (see bench/run.sh).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "resonance", version, about = "Resonance API server")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply, revert or list database migrations (as the schema owner).
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Print the OpenAPI document.
    Openapi,
    /// Development helpers.
    Dev {
        #[command(subcommand)]
        command: auth::dev::DevCommand,
    },
    /// Operator tools for Clerk tokens.
    Token {
        #[command(subcommand)]
        command: auth::inspect::TokenCommand,
    },
}

#[derive(Subcommand)]
enum MigrateAction {
    /// Apply every pending migration.
    Up,
    /// Revert the most recent migrations.
    Down {
        /// How many migrations to revert.
        #[arg(long, default_value_t = 1)]
        steps: u32,
    },
    /// List migrations and whether each is applied.
    Status,
}

fn main() -> ExitCode {
    let parsed = config::parse::<Cli>().and_then(|cli| Ok((Config::from_args(&cli.config)?, cli)));
    let (config, cli) = match parsed {
        Ok(parsed) => parsed,
        Err(err) => {
            eprintln!("configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    if matches!(cli.command, None | Some(Command::Serve))
        && let Err(problem) = limits::PlanCatalogue::load(config.limits.plans_file.as_deref())
    {
        eprintln!("configuration error: RESONANCE_PLANS_FILE: {problem}");
        return ExitCode::from(2);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            telemetry::init(config.environment);
            actix_web::rt::System::new().block_on(serve(config))
        }
        Command::Migrate { action } => runtime.block_on(migrate(config, action)),
        Command::Openapi => {
            print!("{}", openapi::document_json());
            Ok(())
        }
        Command::Dev { command } => auth::dev::run(command, &config),
        Command::Token { command } => runtime.block_on(auth::inspect::run(command, &config)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let bind = config.bind;
    let state = server::prepare(config).await?;
    let listener = TcpListener::bind(bind)
        .map_err(|e| anyhow::anyhow!("RESONANCE_BIND: cannot listen on {bind}: {e}"))?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    server::start(listener, state)?.await?;
    tracing::info!("stopped");
    Ok(())
}

async fn migrate(config: Config, action: MigrateAction) -> anyhow::Result<()> {
    use migration::{Migrator, MigratorTrait};
    let owner = db::connect(&config.migration_database_url, &config.db).await?;
    match action {
        MigrateAction::Up => {
            let pending = db::pending_migrations(&owner).await?;
            Migrator::up(&owner, None).await?;
            println!("applied {} migration(s)", pending.len());
        }
        MigrateAction::Down { steps } => {
            Migrator::down(&owner, Some(steps)).await?;
            println!("reverted {steps} migration(s)");
        }
        MigrateAction::Status => {
            let pending = db::pending_migrations(&owner).await?;
            for migration in Migrator::migrations() {
                let name = migration.name().to_owned();
                let state = if pending.contains(&name) {
                    "pending"
                } else {
                    "applied"
                };
                println!("{state:8} {name}");
            }
        }
    }
    Ok(())
}
