//! Permission keys and role defaults.
//!
//! A permission is `org:<feature>:<action>`, as Clerk names them. For each feature the token's
//! own permissions win when it carries any for that feature; otherwise the role's defaults
//! apply. Unknown roles get only what the token grants.

use std::collections::BTreeSet;

pub const PROJECTS_READ: &str = "org:projects:read";
pub const PROJECTS_WRITE: &str = "org:projects:write";
pub const TASKS_READ: &str = "org:tasks:read";
pub const TASKS_WRITE: &str = "org:tasks:write";
pub const VOICES_READ: &str = "org:voices:read";
pub const VOICES_WRITE: &str = "org:voices:write";
pub const VOICES_DELETE: &str = "org:voices:delete";
pub const GENERATIONS_READ: &str = "org:generations:read";
pub const GENERATIONS_CREATE: &str = "org:generations:create";
pub const MEMBERS_READ: &str = "org:members:read";
/// Start a checkout and open the billing portal (Polar): admins, and a personal workspace's
/// owner.
pub const BILLING_MANAGE: &str = "org:billing:manage";

/// Every permission this API checks.
pub const ALL: &[&str] = &[
    PROJECTS_READ,
    PROJECTS_WRITE,
    TASKS_READ,
    TASKS_WRITE,
    VOICES_READ,
    VOICES_WRITE,
    VOICES_DELETE,
    GENERATIONS_READ,
    GENERATIONS_CREATE,
    MEMBERS_READ,
    BILLING_MANAGE,
];

/// Read-only: every `…:read` permission.
pub fn read_only() -> BTreeSet<String> {
    ALL.iter()
        .filter(|p| p.ends_with(":read"))
        .map(|p| p.to_string())
        .collect()
}

pub fn everything() -> BTreeSet<String> {
    ALL.iter().map(|p| p.to_string()).collect()
}

/// Normalises a Clerk role key: `org:admin` (v1) and `admin` (v2) are both `admin`.
pub fn normalize_role(role: &str) -> String {
    role.strip_prefix("org:").unwrap_or(role).to_owned()
}

/// A permission or scope with the `org:` prefix Clerk's permission keys carry: `tasks:read`
/// and `org:tasks:read` are both `org:tasks:read`.
pub fn qualified(permission: &str) -> String {
    if permission.starts_with("org:") {
        permission.to_owned()
    } else {
        format!("org:{permission}")
    }
}

/// Default permissions of an organization role (already normalised).
pub fn role_defaults(role: &str) -> BTreeSet<String> {
    match role {
        "admin" => everything(),
        "member" => everything()
            .into_iter()
            .filter(|p| p != VOICES_DELETE && p != BILLING_MANAGE)
            .collect(),
        "reader" => read_only(),
        // Every role may see who belongs to its workspace (assignee pickers).
        _ => [MEMBERS_READ.to_string()].into(),
    }
}

/// The feature of a permission key: `org:tasks:write` → `tasks`.
pub fn feature_of(permission: &str) -> Option<&str> {
    let mut parts = permission.split(':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("org"), Some(feature), Some(_), None) => Some(feature),
        _ => None,
    }
}

/// Combines a role's defaults with what a token grants: per feature, the token wins when it
/// names any permission of that feature.
pub fn resolve(role: Option<&str>, granted: &BTreeSet<String>) -> BTreeSet<String> {
    resolve_covering(role, granted, &BTreeSet::new())
}

/// As [`resolve`], where the token also speaks for the features in `covered` even when it
/// grants nothing in them (a v2 token listing `o:tasks` with an all-zero bitmask means "no
/// task permissions", not "use the role's defaults").
pub fn resolve_covering(
    role: Option<&str>,
    granted: &BTreeSet<String>,
    covered: &BTreeSet<String>,
) -> BTreeSet<String> {
    let token_features: BTreeSet<&str> = granted
        .iter()
        .filter_map(|p| feature_of(p))
        .chain(covered.iter().map(String::as_str))
        .collect();
    let defaults = role.map(role_defaults).unwrap_or_default();
    defaults
        .into_iter()
        .filter(|p| feature_of(p).is_none_or(|f| !token_features.contains(f)))
        .chain(granted.iter().cloned())
        .collect()
}

/// Clerk v2 claims: rebuilds org permissions from `fea`, `o.per` and `o.fpm` (see CLERK.md).
///
/// The org features are the `o:`-scoped entries of `fea`, in order; the i-th `fpm` integer,
/// written in binary left-padded to the length of `per`, grants `org:<feature>:<per[j]>` for
/// each bit j (from the left) that is 1. A bitmask wider than `per` or not a number grants
/// nothing for its feature. Returns the granted permissions and the org features the token
/// covers.
pub fn from_v2_claims(
    fea: Option<&str>,
    per: Option<&str>,
    fpm: Option<&str>,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let split = |s: Option<&str>| -> Vec<String> {
        s.unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let features: Vec<String> = split(fea)
        .into_iter()
        .filter_map(|f| f.strip_prefix("o:").map(str::to_owned))
        .filter(|f| !f.is_empty())
        .collect();
    let actions = split(per);
    let masks = split(fpm);
    let mut granted = BTreeSet::new();
    for (feature, mask) in features.iter().zip(masks.iter()) {
        let Ok(mask) = mask.parse::<u64>() else {
            continue;
        };
        let bits = format!("{mask:0width$b}", width = actions.len());
        if bits.len() > actions.len() {
            continue;
        }
        for (bit, action) in bits.chars().zip(actions.iter()) {
            if bit == '1' {
                granted.insert(format!("org:{feature}:{action}"));
            }
        }
    }
    (granted, features.into_iter().collect())
}

/// Machine-token scopes to permissions: `tasks:read` and `org:tasks:read` both grant
/// `org:tasks:read`; no scopes at all means read-only.
pub fn from_scopes(scopes: &[String]) -> BTreeSet<String> {
    if scopes.is_empty() {
        return read_only();
    }
    scopes
        .iter()
        .map(|s| qualified(s))
        .filter(|p| feature_of(p).is_some())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_permissions_replace_defaults_per_feature_only() {
        let granted: BTreeSet<String> = [TASKS_READ.to_string()].into();
        let resolved = resolve(Some("member"), &granted);
        assert!(resolved.contains(TASKS_READ));
        assert!(!resolved.contains(TASKS_WRITE));
        assert!(resolved.contains(PROJECTS_WRITE));
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn v2_bitmask_is_read_from_the_left() {
        let (granted, covered) = from_v2_claims(Some("o:tasks"), Some("read,write"), Some("3"));
        assert_eq!(granted, set(&[TASKS_READ, TASKS_WRITE]));
        assert_eq!(covered, set(&["tasks"]));
        let (granted, _) = from_v2_claims(Some("o:tasks"), Some("read,write"), Some("2"));
        assert_eq!(granted, set(&[TASKS_READ]));
        let (granted, _) = from_v2_claims(Some("o:tasks"), Some("read,write"), Some("1"));
        assert_eq!(granted, set(&[TASKS_WRITE]));
    }

    #[test]
    fn v2_user_features_and_bad_masks_grant_nothing() {
        let (granted, covered) = from_v2_claims(
            Some("u:ai_assistant,o:tasks,o:projects,o:voices"),
            Some("read,write"),
            Some("7,x,2"),
        );
        assert_eq!(granted, set(&["org:voices:read"]));
        assert_eq!(covered, set(&["tasks", "projects", "voices"]));
    }

    #[test]
    fn covered_feature_with_no_grant_removes_role_defaults() {
        let resolved = resolve_covering(Some("admin"), &BTreeSet::new(), &set(&["tasks"]));
        assert!(!resolved.contains(TASKS_READ));
        assert!(resolved.contains(PROJECTS_WRITE));
    }

    #[test]
    fn unknown_role_gets_only_the_token_grant() {
        let granted: BTreeSet<String> = [TASKS_READ.to_string()].into();
        let resolved = resolve(Some("billing"), &granted);
        assert_eq!(
            resolved,
            [TASKS_READ.to_string(), MEMBERS_READ.to_string()].into()
        );
    }
}
