//! Cache invalidation across instances: what each [`Notice`] makes this instance forget.
//!
//! Every instance caches who may do what: verified tokens (`auth`), registered workspaces
//! (`tenant::TenantRegistry`, whose miss checks the deleted-workspace tombstone) and
//! subscriptions (`limits`). A notice published by any instance drops the affected entries
//! here; [`Notice::Resync`] (a gap in what the bus heard) drops them all.

use std::sync::Arc;

use tokio::sync::broadcast::{Receiver, error::RecvError};

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

impl Caches {
    /// Subscribes now (so nothing delivered after this call is missed) and applies notices
    /// in the background for as long as the bus exists.
    pub fn follow(self, bus: &Bus) {
        let receiver = bus.subscribe();
        tokio::spawn(self.run(receiver));
    }

    async fn run(self, mut receiver: Receiver<Notice>) {
        loop {
            match receiver.recv().await {
                Ok(notice) => self.apply(&notice).await,
                // Fell behind: what was skipped is unknown.
                Err(RecvError::Lagged(_)) => self.apply(&Notice::Resync).await,
                Err(RecvError::Closed) => return,
            }
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
            Notice::MembershipChanged { tenant_id, user_id } => {
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
