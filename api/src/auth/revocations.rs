//! Session tokens revoked by a membership change.
//!
//! A session JWT is self-contained: one issued before a member was removed from an
//! organization, or before their role changed, still names the old membership until it
//! expires, and verifying it again accepts it again. So each removal or role change is kept
//! here as (organization, user, when) and a session token of that member in that
//! organization whose `iat` is earlier is refused (401 `invalid_token`: the token is no longer
//! good, a fresh one says what the member may do now; a removed member's fresh token names
//! no organization).
//!
//! The map is filled from the events bus (`invalidation`) and, at start and after a gap in
//! what the bus heard, from the `session_revocations` table; the auth code never touches the
//! database itself. An entry is needed only while a token issued before it can still be
//! valid: it is ignored, and dropped, after [`SESSION_TOKEN_MAX_LIFETIME`] plus the clock skew.

use std::{
    collections::HashMap,
    sync::{
        RwLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

/// The longest session-token lifetime this service expects. Clerk's are 60 s by default;
/// longer custom lifetimes are covered up to this (as the event stream's 10-minute cap).
pub const SESSION_TOKEN_MAX_LIFETIME: Duration = Duration::from_secs(600);

/// Revocations by user id: (organization, when, Unix milliseconds). A user is in few
/// organizations, so a short list each; the lookup borrows the token's strings, no allocation.
pub struct Revocations {
    by_user: RwLock<HashMap<String, Vec<(String, i64)>>>,
    /// Entries held: the hot path skips the lock while there are none (almost always).
    entries: AtomicUsize,
    /// How long an entry matters, milliseconds.
    keep_ms: i64,
}

impl Revocations {
    /// Entries matter for the longest token lifetime plus `skew`.
    pub fn new(skew: Duration) -> Revocations {
        Revocations {
            by_user: RwLock::default(),
            entries: AtomicUsize::new(0),
            keep_ms: (SESSION_TOKEN_MAX_LIFETIME + skew).as_millis() as i64,
        }
    }

    /// How far back revocations matter, as of `now_ms`: what to load from the database.
    pub fn horizon(&self, now_ms: i64) -> i64 {
        now_ms - self.keep_ms
    }

    /// Records that `user`'s session tokens for `tenant` issued before `at_ms` are revoked
    /// (a later time wins); drops entries past the horizon.
    pub fn revoke(&self, tenant: &str, user: &str, at_ms: i64, now_ms: i64) {
        let horizon = self.horizon(now_ms);
        let mut by_user = self.by_user.write().unwrap_or_else(|e| e.into_inner());
        by_user.retain(|_, list| {
            list.retain(|(_, at)| *at >= horizon);
            !list.is_empty()
        });
        if at_ms >= horizon {
            let list = by_user.entry(user.to_owned()).or_default();
            match list.iter_mut().find(|(t, _)| t == tenant) {
                Some((_, at)) => *at = (*at).max(at_ms),
                None => list.push((tenant.to_owned(), at_ms)),
            }
        }
        let entries = by_user.values().map(Vec::len).sum();
        self.entries.store(entries, Ordering::Release);
    }

    /// True when a session token of `user` for `tenant` issued at `issued_at` (`iat`, Unix
    /// seconds; none: unknown, so possibly before) is revoked as of `now_ms`.
    pub fn revoked(&self, tenant: &str, user: &str, issued_at: Option<i64>, now_ms: i64) -> bool {
        if self.entries.load(Ordering::Acquire) == 0 {
            return false;
        }
        let by_user = self.by_user.read().unwrap_or_else(|e| e.into_inner());
        let Some(at) = by_user
            .get(user)
            .and_then(|list| list.iter().find(|(t, _)| t == tenant))
            .map(|(_, at)| *at)
        else {
            return false;
        };
        if at < self.horizon(now_ms) {
            return false;
        }
        // `iat` is whole seconds, rounded down: a token stamped with the revocation's own
        // second may predate it, so it is refused too (a fresh token a second later is not).
        issued_at.is_none_or(|iat| iat < (at + 999).div_euclid(1000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SKEW: Duration = Duration::from_secs(5);

    #[test]
    fn tokens_issued_before_the_change_are_refused_later_ones_not() {
        let r = Revocations::new(SKEW);
        let now = 1_000_000_500; // ms: 1 000 000.5 s
        assert!(!r.revoked("org_a", "user_b", Some(999_000), now));
        r.revoke("org_a", "user_b", now, now);
        assert!(r.revoked("org_a", "user_b", Some(999_990), now));
        // The same second as the change: may predate it.
        assert!(r.revoked("org_a", "user_b", Some(1_000_000), now));
        assert!(!r.revoked("org_a", "user_b", Some(1_000_001), now));
        assert!(r.revoked("org_a", "user_b", None, now));
        // Another organization of the same user, another user of the organization.
        assert!(!r.revoked("org_other", "user_b", Some(999_990), now));
        assert!(!r.revoked("org_a", "user_c", Some(999_990), now));
    }

    #[test]
    fn entries_lapse_after_the_longest_token_lifetime_and_skew() {
        let r = Revocations::new(SKEW);
        let at = 2_000_000_000;
        r.revoke("org_a", "user_b", at, at);
        let keep = (SESSION_TOKEN_MAX_LIFETIME + SKEW).as_millis() as i64;
        assert!(r.revoked("org_a", "user_b", Some(1_000), at + keep));
        assert!(!r.revoked("org_a", "user_b", Some(1_000), at + keep + 1));
        // Dropped at the next change; older revocations than the horizon are not kept.
        r.revoke("org_x", "user_y", at + keep + 1, at + keep + 1);
        r.revoke("org_z", "user_y", at - keep - 10, at + keep + 1);
        assert_eq!(r.entries.load(Ordering::Acquire), 1);
    }

    #[test]
    fn the_later_revocation_wins() {
        let r = Revocations::new(SKEW);
        r.revoke("org_a", "user_b", 10_000_000, 10_000_000);
        r.revoke("org_a", "user_b", 9_000_000, 10_000_000);
        assert!(r.revoked("org_a", "user_b", Some(9_500), 10_000_000));
        assert_eq!(r.entries.load(Ordering::Acquire), 1);
    }
}
