//! Cache invalidation across instances: what each [`Notice`] makes this instance forget.
//!
//! Every instance caches who may do what: verified tokens (`auth`), registered workspaces
//! (`tenant::TenantRegistry`, whose miss checks the deleted-workspace tombstone) and
//! subscriptions (`limits`). A notice published by any instance drops the affected entries
//! here; [`Notice::Resync`] (a gap in what the bus heard) drops them all.
//!
//! Session-token revocations (`auth::revocations`) are the one thing never dropped: a
//! self-contained token would be accepted again. They are added from notices, loaded from the
//! database at start ([`load_revocations`]), and loaded again after every gap.

use std::{sync::Arc, time::Duration};

use tokio::sync::{
    Notify,
    broadcast::{Receiver, error::RecvError},
};

use crate::{
    auth::Authenticator,
    events::{Bus, Notice},
    limits::Limits,
    tenant::TenantRegistry,
};

/// The caches one instance keeps about tenants.
pub struct Caches {
    pub auth: Arc<Authenticator>,
    pub tenants: TenantRegistry,
    pub limits: Arc<Limits>,
}

/// Between attempts to load revocations after a gap, while the database does not answer.
const RELOAD_RETRY: Duration = Duration::from_millis(250);

/// Loads the session revocations recent enough to matter into `auth` (at start, and after
/// notices may have been missed). Merged with what `auth` holds: nothing is forgotten.
pub async fn load_revocations(
    auth: &Authenticator,
    tenants: &TenantRegistry,
) -> Result<usize, sea_orm::DbErr> {
    let rows = tenants
        .session_revocations_since(auth.revocation_horizon())
        .await?;
    for row in &rows {
        auth.revoke_sessions(&row.organization_id, &row.user_id, row.revoked_at_ms);
    }
    Ok(rows.len())
}

impl Caches {
    /// Subscribes now (so nothing delivered after this call is missed) and applies notices
    /// in the background for as long as the bus exists.
    pub fn follow(self, bus: &Bus) {
        let receiver = bus.subscribe();
        let reload = Arc::new(Notify::new());
        tokio::spawn(reload_after_gaps(
            self.auth.clone(),
            self.tenants.clone(),
            reload.clone(),
        ));
        tokio::spawn(self.run(receiver, reload));
    }

    async fn run(self, mut receiver: Receiver<Notice>, reload: Arc<Notify>) {
        loop {
            let notice = match receiver.recv().await {
                Ok(notice) => notice,
                // Fell behind: what was skipped is unknown.
                Err(RecvError::Lagged(_)) => Notice::Resync,
                Err(RecvError::Closed) => return,
            };
            if notice == Notice::Resync {
                // A revocation may have been missed: read them again, off this loop (the
                // database may be slow to answer just then).
                reload.notify_one();
            }
            self.apply(&notice).await;
        }
    }

    pub async fn apply(&self, notice: &Notice) {
        tracing::debug!(?notice, "applying an event to the caches");
        match notice {
            Notice::TenantDeleted { tenant_id } => {
                self.tenants.forget(tenant_id);
                self.auth
                    .forget_tokens(|ctx| ctx.tenant_id == *tenant_id)
                    .await;
                self.limits.forget_subscription(tenant_id).await;
            }
            Notice::UserDeleted { user_id } => {
                // The personal workspace's id is the user id.
                self.tenants.forget(user_id);
                self.auth
                    .forget_tokens(|ctx| {
                        ctx.tenant_id == *user_id || ctx.user_id.as_deref() == Some(user_id)
                    })
                    .await;
                self.limits.forget_subscription(user_id).await;
            }
            Notice::MembershipChanged {
                tenant_id,
                user_id,
                revoked_at,
            } => {
                let at = revoked_at.unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
                self.auth.revoke_sessions(tenant_id, user_id, at);
                self.auth
                    .forget_tokens(|ctx| {
                        ctx.tenant_id == *tenant_id && ctx.user_id.as_deref() == Some(user_id)
                    })
                    .await;
            }
            Notice::SubscriptionChanged { tenant_id } => {
                self.limits.forget_subscription(tenant_id).await;
            }
            // Changes of resources cache nothing here; the event streams read them.
            Notice::Logged { .. } => {}
            Notice::Resync => {
                self.tenants.forget_all();
                self.auth.forget_all_tokens();
                self.limits.forget_all_subscriptions();
            }
        }
    }
}

/// Loads revocations each time a gap is signalled; a failed load is retried until one
/// succeeds (a gap signalled meanwhile is covered by the next load: `Notify` keeps it).
async fn reload_after_gaps(auth: Arc<Authenticator>, tenants: TenantRegistry, gap: Arc<Notify>) {
    loop {
        gap.notified().await;
        loop {
            match load_revocations(&auth, &tenants).await {
                Ok(loaded) => {
                    tracing::debug!(loaded, "session revocations reloaded after a gap");
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot reload session revocations yet; retrying");
                    tokio::time::sleep(RELOAD_RETRY).await;
                }
            }
        }
    }
}
