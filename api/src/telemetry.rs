//! Logging: `tracing` with `RUST_LOG` filtering; human lines in development, JSON lines in
//! production. Metrics: [`metrics`], served at `/metrics`.

pub mod metrics;

use tracing_subscriber::{EnvFilter, fmt};

use crate::config::Environment;

pub fn init(environment: Environment) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second call (tests start many apps in one process) keeps the first subscriber.
    let _ = match environment {
        Environment::Production => builder.json().flatten_event(true).try_init(),
        Environment::Development => builder.compact().try_init(),
    };
}
