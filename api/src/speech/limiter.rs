//! How many syntheses may run at once: a limit for the whole process, so the machine is not
//! overrun, and a smaller one per workspace, so one workspace cannot starve the others. On
//! PostgreSQL the per-workspace limit holds for every instance together
//! ([`WorkspaceSlots`]); the process limit stays per process, as it protects one machine.
//!
//! Callers do not queue: beyond either limit the request answers 429 with `Retry-After`, which
//! keeps HTTP workers free and lets clients back off. Refusals are counted in
//! `speech_rejections_total{reason="tenant_limit"|"capacity"}`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::workspace_slots::{SlotLease, WorkspaceSlots};
use crate::{
    error::{ApiError, sqlx_unavailable},
    telemetry::metrics,
};

pub struct SynthesisLimiter {
    global: Arc<Semaphore>,
    per_tenant: usize,
    running: Arc<Mutex<HashMap<String, usize>>>,
    retry_after: Duration,
    /// The workspace's slots across instances (PostgreSQL).
    shared: Option<WorkspaceSlots>,
}

/// Held while a synthesis runs; releases both limits when dropped.
pub struct SynthesisPermit {
    _global: OwnedSemaphorePermit,
    tenant: String,
    running: Arc<Mutex<HashMap<String, usize>>>,
    _slot: Option<SlotLease>,
}

impl Drop for SynthesisPermit {
    fn drop(&mut self) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = running.get_mut(&self.tenant) {
            *count -= 1;
            if *count == 0 {
                running.remove(&self.tenant);
            }
        }
    }
}

impl SynthesisLimiter {
    pub fn new(max_concurrency: usize, max_per_tenant: usize, retry_after: Duration) -> Self {
        SynthesisLimiter {
            global: Arc::new(Semaphore::new(max_concurrency)),
            per_tenant: max_per_tenant,
            running: Arc::new(Mutex::new(HashMap::new())),
            retry_after,
            shared: None,
        }
    }

    /// Counts the per-workspace limit across every instance sharing `slots`' database.
    pub fn share_across_instances(&mut self, slots: WorkspaceSlots) {
        self.shared = Some(slots);
    }

    /// A permit for one synthesis for `tenant`, or 429 (503 when the shared slots cannot be
    /// reached).
    pub async fn acquire(&self, tenant: &str) -> Result<SynthesisPermit, ApiError> {
        // This process's limits first: they cost nothing and spare the database.
        let mut permit = self.acquire_here(tenant)?;
        let Some(shared) = &self.shared else {
            return Ok(permit);
        };
        match shared.try_take(tenant, self.per_tenant).await {
            Ok(Some(lease)) => {
                permit._slot = Some(lease);
                Ok(permit)
            }
            Ok(None) => {
                metrics::record_speech_rejection("tenant_limit");
                Err(self.tenant_limit(self.per_tenant))
            }
            Err(err) if sqlx_unavailable(&err) => Err(ApiError::DatabaseUnavailable {
                cause: format!("synthesis slots: {err}"),
            }),
            Err(err) => Err(ApiError::internal(format!("synthesis slots: {err}"))),
        }
    }

    fn tenant_limit(&self, count: usize) -> ApiError {
        ApiError::TooManyRequests {
            detail: format!(
                "this workspace already has {count} speech generations in progress (the limit); retry shortly"
            ),
            retry_after: self.retry_after,
        }
    }

    fn acquire_here(&self, tenant: &str) -> Result<SynthesisPermit, ApiError> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let count = running.get(tenant).copied().unwrap_or(0);
        if count >= self.per_tenant {
            metrics::record_speech_rejection("tenant_limit");
            return Err(self.tenant_limit(count));
        }
        let global = self.global.clone().try_acquire_owned().map_err(|_| {
            metrics::record_speech_rejection("capacity");
            ApiError::TooManyRequests {
                detail: "the speech service is at capacity; retry shortly".into(),
                retry_after: self.retry_after,
            }
        })?;
        running.insert(tenant.to_owned(), count + 1);
        Ok(SynthesisPermit {
            _global: global,
            tenant: tenant.to_owned(),
            running: self.running.clone(),
            _slot: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn per_tenant_and_global_limits() {
        let limiter = SynthesisLimiter::new(3, 2, Duration::from_secs(1));
        let a1 = limiter.acquire("org_a").await.unwrap();
        let _a2 = limiter.acquire("org_a").await.unwrap();
        assert!(limiter.acquire("org_a").await.is_err());
        let _b1 = limiter.acquire("org_b").await.unwrap();
        assert!(limiter.acquire("org_c").await.is_err(), "global limit");
        drop(a1);
        assert!(limiter.acquire("org_c").await.is_ok());
    }
}
