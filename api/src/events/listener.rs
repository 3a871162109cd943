//! The listener of one instance: a dedicated PostgreSQL connection in `LISTEN`, feeding the
//! instance's [`Bus`].
//!
//! `NOTIFY` is not queued for a listener that is away: whatever was published while the
//! connection was down is lost. So a lost connection is a [`Notice::Resync`] when it is noticed,
//! after each failed attempt to listen again, and once listening anew: never "nothing happened".

use std::time::Duration;

use sea_orm::sqlx::{self, postgres::PgListener};

use super::{Bus, CHANNEL, Notice, parse};

/// Between attempts to listen again.
const RETRY: Duration = Duration::from_millis(250);

/// The longest wait for the listener's connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts listening on `database_url` for `bus`. Returns once the first `LISTEN` is in place
/// (so an App that starts serving hears every change committed after), or after the first
/// attempt fails: the task keeps trying in the background either way.
pub async fn start(database_url: String, bus: Bus) {
    let first = listen(&database_url).await;
    if let Err(error) = &first {
        tracing::warn!(%error, "cannot listen for events yet; retrying in the background");
    }
    tokio::spawn(run(database_url, bus, first.ok()));
}

/// Connects and listens, within [`CONNECT_TIMEOUT`]: a server that does not answer must not
/// hold up the start, nor keep the instance deaf without notice.
async fn listen(database_url: &str) -> Result<PgListener, sqlx::Error> {
    let connect = async {
        let mut listener = PgListener::connect(database_url).await?;
        listener.listen(CHANNEL).await?;
        Ok(listener)
    };
    tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut))
}

async fn run(database_url: String, bus: Bus, mut current: Option<PgListener>) {
    loop {
        let mut listener = match current.take() {
            Some(listener) => listener,
            None => match listen(&database_url).await {
                Ok(listener) => {
                    tracing::info!("listening for events again");
                    // Whatever was published while away is lost.
                    bus.deliver(Notice::Resync);
                    listener
                }
                Err(error) => {
                    tracing::debug!(%error, "cannot listen for events");
                    // Deaf to other instances: cache nothing for longer than a retry.
                    bus.deliver(Notice::Resync);
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            },
        };
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => bus.deliver(parse(notification.payload())),
                Ok(None) => {
                    tracing::warn!("the event listener lost its connection");
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, "the event listener failed");
                    break;
                }
            }
        }
        // Until listening again, nothing cached may be trusted.
        bus.deliver(Notice::Resync);
        drop(listener);
        tokio::time::sleep(RETRY).await;
    }
}
