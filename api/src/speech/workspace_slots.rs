//! The per-workspace synthesis limit for the whole deployment: each running synthesis holds
//! one of its workspace's `RESONANCE_TTS_MAX_PER_TENANT` slots, a PostgreSQL session-level
//! advisory lock, on a connection kept for as long as it runs. Every instance tries the same
//! keys, so the limit holds however many instances there are.
//!
//! A lock ends with its session: an instance that dies mid-synthesis frees its slots when
//! PostgreSQL notices the connection is gone. Session locks need a session, so these
//! connections go to `RESONANCE_EVENTS_DATABASE_URL` (a direct address where DATABASE_URL is
//! a PgBouncer in transaction mode).

use std::time::Duration;

use sea_orm::sqlx::{self, PgPool, Postgres, pool::PoolConnection, postgres::PgPoolOptions};
use xxhash_rust::xxh3::xxh3_64;

/// Slots shared through PostgreSQL.
pub struct WorkspaceSlots {
    pool: PgPool,
}

/// One slot held; released (unlocked, the connection returned) when dropped.
pub struct SlotLease {
    conn: Option<PoolConnection<Postgres>>,
    key: i64,
}

/// The advisory-lock key of `slot` of `tenant` (64 bits: collisions between workspaces are
/// negligible, and only ever cost a spurious 429).
fn slot_key(tenant: &str, slot: usize) -> i64 {
    let hashed = xxh3_64(format!("resonance:synthesis:{tenant}:{slot}").as_bytes());
    i64::from_ne_bytes(hashed.to_ne_bytes())
}

impl WorkspaceSlots {
    /// A pool of at most `max_connections` (one per synthesis this instance may run at
    /// once), connected on first use.
    pub fn connect_lazy(url: &str, max_connections: usize) -> Result<WorkspaceSlots, sqlx::Error> {
        let pool = PgPoolOptions::new()
            .max_connections(u32::try_from(max_connections.max(1)).unwrap_or(u32::MAX))
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(2))
            .idle_timeout(Duration::from_secs(300))
            .connect_lazy(url)?;
        Ok(WorkspaceSlots { pool })
    }

    /// One of `tenant`'s `slots`, or None while every one is held (by any instance).
    pub async fn try_take(
        &self,
        tenant: &str,
        slots: usize,
    ) -> Result<Option<SlotLease>, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        for slot in 0..slots {
            let key = slot_key(tenant, slot);
            let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(key)
                .fetch_one(&mut *conn)
                .await?;
            if taken {
                return Ok(Some(SlotLease {
                    conn: Some(conn),
                    key,
                }));
            }
        }
        Ok(None)
    }
}

impl Drop for SlotLease {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let key = self.key;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Closing the session releases its locks.
            drop(conn.detach());
            return;
        };
        runtime.spawn(async move {
            let unlocked: Result<bool, _> = sqlx::query_scalar("SELECT pg_advisory_unlock($1)")
                .bind(key)
                .fetch_one(&mut *conn)
                .await;
            if !matches!(unlocked, Ok(true)) {
                // Never return a connection that may still hold the slot to the pool.
                let _ = conn.close().await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_of_one_workspace_and_of_others_have_distinct_keys() {
        let keys = [
            slot_key("org_a", 0),
            slot_key("org_a", 1),
            slot_key("org_b", 0),
        ];
        assert_ne!(keys[0], keys[1]);
        assert_ne!(keys[0], keys[2]);
        assert_eq!(keys[0], slot_key("org_a", 0));
    }
}
