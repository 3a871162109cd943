//! Assembles the App: the shared state, the middleware and the routes. `main` and the tests
//! start the same App.

use std::{
    net::{SocketAddr, TcpListener},
    sync::Arc,
};

use actix_web::{App, HttpServer, dev::Server, middleware::from_fn, web};
use anyhow::Context;

use crate::{
    auth::Authenticator,
    billing::Polar,
    config::Config,
    db::{self, Pools},
    events::{self, Bus},
    http::{self, not_found, request_context},
    invalidation::{self, Caches},
    limits::{self, Limits},
    openapi,
    routes::{self, metrics::MetricsAccess},
    shutdown::{self, Drain},
    speech::{Speech, workspace_slots::WorkspaceSlots},
    state::AppState,
    telemetry,
    tenant::{self, TenantRegistry},
};

/// Connects to the database, applies or checks migrations, audits row-level security (see
/// [`tenant::audit`]), and sets up authentication.
///
/// Development applies pending migrations at start. Production never changes the schema on
/// its own: it refuses to start while migrations are pending, and the operator runs
/// `resonance migrate up` (as the schema owner) as a release step.
pub async fn prepare(config: Config) -> anyhow::Result<AppState> {
    let auth = Authenticator::new(&config)?;
    let limits = Limits::new(&config.limits)?;
    let polar = Polar::new(&config.billing).context("setting up the Polar client")?;
    let mut speech = Speech::from_config(&config.speech).context("setting up speech synthesis")?;
    {
        let owner = db::connect(&config.migration_database_url, &config.db)
            .await
            .context("cannot connect to the database for migrations")?;
        if config.is_development() {
            db::migrate_up(&owner)
                .await
                .context("applying migrations failed")?;
        } else {
            let pending = db::pending_migrations(&owner).await?;
            anyhow::ensure!(
                pending.is_empty(),
                "the database schema is behind ({} pending migrations): run `resonance migrate up` first",
                pending.len()
            );
        }
        owner.close().await.ok();
    }
    let db = db::connect(&config.database_url, &config.db)
        .await
        .context("cannot connect to the database")?;
    tenant::audit::check_at_start(&db, !config.is_development()).await?;
    // Changes made on any instance reach this one's caches (see `invalidation`).
    let bus = Bus::new(&config.database_url, db.get_database_backend());
    let tenants = TenantRegistry::new(db.clone(), bus.clone());
    let (auth, limits) = (Arc::new(auth), Arc::new(limits));
    Caches {
        auth: auth.clone(),
        tenants: tenants.clone(),
        limits: limits.clone(),
    }
    .follow(&bus);
    if bus.publishes_in_transaction() {
        events::listener::start(config.events_database_url.clone(), bus).await;
        // A workspace's synthesis limit counts every instance's syntheses.
        let slots = WorkspaceSlots::connect_lazy(
            &config.events_database_url,
            config.speech.max_concurrency,
        )
        .context("setting up the shared synthesis slots")?;
        speech.limiter.share_across_instances(slots);
    }
    // After listening: a revocation committed from here on is heard, any earlier one is read.
    // A new instance must not accept a session token another instance already refuses.
    invalidation::load_revocations(&auth, &tenants)
        .await
        .context("cannot load the session revocations")?;
    Ok(AppState {
        config: Arc::new(config),
        tenants,
        db,
        auth,
        speech: Arc::new(speech),
        limits,
        polar: Arc::new(polar),
    })
}

/// Starts serving on `listener`. The returned future runs until SIGTERM/SIGINT, then drains
/// (see [`shutdown`]): every request already received is answered within the shutdown timeout.
/// With `RESONANCE_METRICS_BIND`, `/metrics` is served on that address too (see
/// [`routes::metrics`]), until the process ends.
pub fn start(listener: TcpListener, state: AppState) -> std::io::Result<Server> {
    let config = state.config.clone();
    telemetry::metrics::install();
    let pools = web::Data::new(Pools::default());
    pools.add(&state.db);
    let metrics_access = web::Data::new(MetricsAccess::on_api_port(&config));
    if let Some(bind) = config.metrics.bind {
        tokio::spawn(metrics_server(bind, &config, pools.clone())?);
    } else if *metrics_access.get_ref() == MetricsAccess::Hidden {
        tracing::info!(
            "GET /metrics is not served: set RESONANCE_METRICS_TOKEN or RESONANCE_METRICS_BIND"
        );
    }
    let (json_config, path_config, query_config) = http::extractor_configs(&config);
    let config_data = web::Data::from(config.clone());
    let auth_data = web::Data::from(state.auth.clone());
    let limits_data = web::Data::from(state.limits.clone());
    let document = web::Data::new(routes::docs::ApiDocument(openapi::document_json()));
    let drain = Arc::new(Drain::default());
    let drain_data = web::Data::from(drain.clone());
    let workers = config.workers.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
    });
    // Runs on each worker thread, once.
    let server = HttpServer::new(move || {
        let worker = worker_state(&state, workers, &pools);
        App::new()
            // The worker's registry on its own, for middleware below `state` (idempotency).
            .app_data(web::Data::new(worker.tenants.clone()))
            .app_data(web::Data::new(worker))
            .app_data(pools.clone())
            .app_data(metrics_access.clone())
            .app_data(config_data.clone())
            .app_data(auth_data.clone())
            .app_data(limits_data.clone())
            .app_data(document.clone())
            .app_data(drain_data.clone())
            .app_data(json_config.clone())
            .app_data(path_config.clone())
            .app_data(query_config.clone())
            // The last `wrap` is the outermost. CORS sees every response the routes, the
            // extractors, the input guard and the default service give (errors included) and
            // sets its headers;
            // `request_context` then renders errors as problem+json keeping those headers.
            .wrap(from_fn(limits::rate_limit_headers))
            .wrap(from_fn(http::guard_input))
            .wrap(http::cors(&config_data))
            .wrap(from_fn(request_context))
            .configure(routes::configure)
            .configure(routes::metrics::configure)
            .default_service(web::to(not_found))
    })
    .workers(workers)
    // SIGTERM/SIGINT are handled by `shutdown::on_signal`, which drains before stopping.
    .disable_signals()
    .shutdown_timeout(config.shutdown_timeout.as_secs());
    let server = server.listen(listener)?.run();
    tokio::spawn(shutdown::on_signal(
        server.handle(),
        drain,
        config.shutdown_timeout,
    ));
    Ok(server)
}

/// Serves only `GET /metrics` on `bind` (`RESONANCE_METRICS_BIND`), on one worker of its own,
/// so scrapes neither wait behind API requests nor reach the API's port.
fn metrics_server(
    bind: SocketAddr,
    config: &Arc<Config>,
    pools: web::Data<Pools>,
) -> std::io::Result<Server> {
    let listener = TcpListener::bind(bind).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("RESONANCE_METRICS_BIND: cannot listen on {bind}: {e}"),
        )
    })?;
    tracing::info!(address = %listener.local_addr()?, "serving GET /metrics");
    let access = web::Data::new(MetricsAccess::on_metrics_port(config));
    let config_data = web::Data::from(config.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(access.clone())
            .app_data(pools.clone())
            .app_data(config_data.clone())
            .wrap(from_fn(request_context))
            .configure(routes::metrics::configure)
            .default_service(web::to(not_found))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1);
    Ok(server.listen(listener)?.run())
}

/// The state one worker serves with: the shared state, with PostgreSQL pools of the worker's
/// own (see [`db::connect_worker_pools`]), which join `pools` for the metrics.
fn worker_state(shared: &AppState, workers: usize, pools: &Pools) -> AppState {
    let config = &shared.config;
    match db::connect_worker_pools(&config.database_url, &config.db, workers) {
        Some(Ok((pool, reads))) => {
            pools.add(&pool);
            if let Some(reads) = &reads {
                pools.add_reads(reads);
            }
            shared.with_connection(pool, reads)
        }
        Some(Err(error)) => {
            tracing::warn!(%error, "worker keeps the shared database pool");
            shared.clone()
        }
        None => shared.clone(),
    }
}
