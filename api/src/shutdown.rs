//! Graceful shutdown that keeps its promise: every request fully received before SIGTERM (or
//! SIGINT) gets its complete response.
//!
//! actix-web's own drain stops the workers as soon as the requests it is executing finish; a
//! request that a keep-alive client had already sent, but that the worker had not yet read
//! from the socket, was dropped with its connection. So the service handles the signal itself:
//! 1. it stops accepting connections and marks every response from then on
//!    `Connection: close`, so each keep-alive connection ends after its current response;
//! 2. it waits until no request has been in flight for a quiet moment (every request already
//!    on the wire has then been read and answered), bounded by the shutdown timeout;
//! 3. only then it stops the server, which closes what is left and lets the process exit 0.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use actix_web::dev::ServerHandle;
use tokio::time::Instant;

/// How long no request must have been in flight before the server stops: long enough for a
/// request already sent on an open connection to be read and begun.
const QUIET: Duration = Duration::from_millis(300);

/// Shared by every worker: whether the process is draining, and how many requests are being
/// served.
#[derive(Debug, Default)]
pub struct Drain {
    draining: AtomicBool,
    in_flight: AtomicUsize,
}

impl Drain {
    /// True once shutdown began: responses then close their connection.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Counts a request as in flight until the guard is dropped.
    pub fn enter(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// One request being served (see [`Drain::enter`]).
pub struct InFlight(Arc<Drain>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Waits for SIGTERM or SIGINT, then drains and stops the server as described above.
pub async fn on_signal(server: ServerHandle, drain: Arc<Drain>, timeout: Duration) {
    if wait_for_signal().await.is_err() {
        tracing::error!("cannot listen for SIGTERM/SIGINT; stop the process with SIGKILL");
        return;
    }
    let deadline = Instant::now() + timeout;
    tracing::info!(
        timeout_secs = timeout.as_secs(),
        "shutting down: no new connections; answering every request already received"
    );
    drain.draining.store(true, Ordering::Relaxed);
    server.pause().await;
    let mut quiet_since = None;
    while Instant::now() < deadline {
        let now = Instant::now();
        if drain.in_flight() > 0 {
            quiet_since = None;
        } else if now.duration_since(*quiet_since.get_or_insert(now)) >= QUIET {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let graceful_left = deadline.saturating_duration_since(Instant::now());
    tracing::info!(in_flight = drain.in_flight(), "stopping the server");
    // Anything still running gets the rest of the timeout.
    if tokio::time::timeout(graceful_left, server.stop(true))
        .await
        .is_err()
    {
        server.stop(false).await;
    }
}

async fn wait_for_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    Ok(())
}
