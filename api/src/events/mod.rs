//! Events between the instances of one deployment.
//!
//! A change is published inside the transaction that makes it ([`notify`]: one `pg_notify`
//! statement on PostgreSQL), so an event exists exactly when its change committed, and every
//! instance hears it through its [`Bus`]: on PostgreSQL a listener on a dedicated connection
//! (`LISTEN`, see [`listener`]); on SQLite, which is one process, an in-process channel shared
//! by every App on the same database file.
//!
//! Subscribers get [`Notice`]s. [`Notice::Resync`] is never published: it says the bus may
//! have missed notices (the listener's connection was lost, or a subscriber fell behind), so
//! whatever was cached from before must be dropped.

pub mod listener;

use std::{
    collections::HashMap,
    sync::{Mutex, OnceLock},
};

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// The PostgreSQL channel every instance listens on.
pub const CHANNEL: &str = "resonance_events";

/// How many notices a subscriber may fall behind before it is told to resync.
const CAPACITY: usize = 1024;

/// A change other instances must hear about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Notice {
    /// A workspace and everything it owns was deleted.
    TenantDeleted { tenant_id: String },
    /// A user was deleted, and with them their personal workspace (whose id is the user id).
    UserDeleted { user_id: String },
    /// A member was removed from a workspace, or their role changed: their session tokens
    /// issued before `revoked_at` (Unix milliseconds) are refused from now on. Absent from
    /// an older instance's payload: the time it is heard is used.
    MembershipChanged {
        tenant_id: String,
        user_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        revoked_at: Option<i64>,
    },
    /// A workspace's subscription (so its plan) changed.
    SubscriptionChanged { tenant_id: String },
    /// A row was added to a workspace's event log (`GET /v1/events`); streams read its body
    /// from the log, so the payload stays far below `NOTIFY`'s 8000 bytes.
    Logged { tenant_id: String, id: i64 },
    /// Not published: notices may have been missed; drop everything cached for tenants.
    Resync,
}

/// Where an instance hears notices. Cloning shares the same channel.
#[derive(Clone)]
pub struct Bus {
    sender: broadcast::Sender<Notice>,
    /// Notices arrive through PostgreSQL's `NOTIFY` (else they are sent in process on commit).
    postgres: bool,
}

/// In-process buses by database URL: Apps of one process on one SQLite file share one.
fn local_buses() -> &'static Mutex<HashMap<String, broadcast::Sender<Notice>>> {
    static BUSES: OnceLock<Mutex<HashMap<String, broadcast::Sender<Notice>>>> = OnceLock::new();
    BUSES.get_or_init(Default::default)
}

impl Bus {
    /// The bus of an instance on `database_url`. On PostgreSQL nothing arrives until
    /// [`listener::start`] runs.
    pub fn new(database_url: &str, backend: DbBackend) -> Bus {
        if backend == DbBackend::Postgres {
            return Bus {
                sender: broadcast::channel(CAPACITY).0,
                postgres: true,
            };
        }
        // One entry per database file the process opens (one in production).
        let mut buses = local_buses().lock().unwrap_or_else(|e| e.into_inner());
        let sender = buses
            .entry(database_url.to_owned())
            .or_insert_with(|| broadcast::channel(CAPACITY).0)
            .clone();
        Bus {
            sender,
            postgres: false,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.sender.subscribe()
    }

    /// True when notices must be published with [`notify`] inside the transaction; false
    /// when they are handed to [`Bus::deliver`] after it commits.
    pub fn publishes_in_transaction(&self) -> bool {
        self.postgres
    }

    /// Hands notices to this process's subscribers (SQLite: after the commit; PostgreSQL: as
    /// the listener receives them).
    pub fn deliver(&self, notice: Notice) {
        // No subscriber is not an error: nothing is cached yet.
        let _ = self.sender.send(notice);
    }
}

/// The notices a transaction publishes, held until it commits. On PostgreSQL `NOTIFY` already
/// waits for the commit, so nothing is held; elsewhere the notices go to this process's bus
/// after the commit, and are dropped with the transaction when it rolls back.
pub struct Outbox {
    bus: Bus,
    pending: std::sync::Mutex<Vec<Notice>>,
}

impl Outbox {
    pub fn new(bus: &Bus) -> Outbox {
        Outbox {
            bus: bus.clone(),
            pending: Default::default(),
        }
    }

    /// Whether notices travel in the transaction (`NOTIFY`) rather than through [`Outbox::hold`].
    pub fn publishes_in_transaction(&self) -> bool {
        self.bus.publishes_in_transaction()
    }

    /// Keeps `notice` for [`Outbox::committed`].
    pub fn hold(&self, notice: Notice) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(notice);
    }

    /// The transaction committed: hands the held notices to the bus.
    pub fn committed(self) {
        let pending = self.pending.into_inner().unwrap_or_else(|e| e.into_inner());
        for notice in pending {
            self.bus.deliver(notice);
        }
    }
}

/// A change of a workspace's resource, for its event log and `GET /v1/events`.
#[derive(Debug, Clone)]
pub struct ResourceEvent {
    /// `task.created`, `project.deleted`, …
    pub event_type: &'static str,
    pub resource_id: String,
    /// The resource's version after the change; none for deletes.
    pub version: Option<i64>,
    /// The resource as the REST API returns it; none for deletes.
    pub body: Option<serde_json::Value>,
}

impl ResourceEvent {
    /// A created or updated resource.
    pub fn changed(
        event_type: &'static str,
        resource_id: impl ToString,
        version: impl Into<i64>,
        body: &impl Serialize,
    ) -> ResourceEvent {
        ResourceEvent {
            event_type,
            resource_id: resource_id.to_string(),
            version: Some(version.into()),
            body: serde_json::to_value(body).ok(),
        }
    }

    /// A deleted resource.
    pub fn deleted(event_type: &'static str, resource_id: impl ToString) -> ResourceEvent {
        ResourceEvent {
            event_type,
            resource_id: resource_id.to_string(),
            version: None,
            body: None,
        }
    }
}

/// A row of the event log, as read back.
#[derive(Debug, Clone, sea_orm::FromQueryResult)]
pub struct LoggedEvent {
    pub id: i64,
    pub tenant_id: String,
    pub event_type: String,
    pub resource_id: String,
    pub version: Option<i64>,
    pub body: Option<String>,
}

/// Publishes `notice` in the open PostgreSQL transaction `txn`: one statement, delivered to
/// every listening instance when (and only if) the transaction commits.
pub async fn notify(txn: &impl ConnectionTrait, notice: &Notice) -> Result<(), DbErr> {
    let payload = serde_json::to_string(notice).map_err(|e| DbErr::Custom(e.to_string()))?;
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_notify($1, $2)",
        [CHANNEL.into(), payload.into()],
    ))
    .await?;
    Ok(())
}

/// A received payload; one this version does not know is treated as a gap.
pub(crate) fn parse(payload: &str) -> Notice {
    serde_json::from_str(payload).unwrap_or_else(|error| {
        tracing::warn!(%error, payload, "unknown event payload; dropping cached tenant state");
        Notice::Resync
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip_through_their_payload() {
        let notice = Notice::MembershipChanged {
            tenant_id: "org_a".into(),
            user_id: "user_b".into(),
            revoked_at: Some(1_764_000_000_123),
        };
        let payload = serde_json::to_string(&notice).unwrap();
        assert_eq!(
            payload,
            r#"{"type":"membership_changed","tenant_id":"org_a","user_id":"user_b","revoked_at":1764000000123}"#
        );
        assert_eq!(parse(&payload), notice);
        // What an instance of the previous version publishes.
        let older = r#"{"type":"membership_changed","tenant_id":"org_a","user_id":"user_b"}"#;
        assert!(matches!(
            parse(older),
            Notice::MembershipChanged {
                revoked_at: None,
                ..
            }
        ));
        assert_eq!(parse(r#"{"type":"something_new"}"#), Notice::Resync);
    }

    #[tokio::test]
    async fn apps_on_one_sqlite_file_share_a_bus() {
        let a = Bus::new("sqlite://one.db", DbBackend::Sqlite);
        let b = Bus::new("sqlite://one.db", DbBackend::Sqlite);
        let other = Bus::new("sqlite://two.db", DbBackend::Sqlite);
        let mut heard = b.subscribe();
        let mut elsewhere = other.subscribe();
        a.deliver(Notice::Resync);
        assert_eq!(heard.recv().await.unwrap(), Notice::Resync);
        assert!(elsewhere.try_recv().is_err());
    }
}
