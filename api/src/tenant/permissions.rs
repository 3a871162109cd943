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

/// Default permissions of an organization role (already normalised).
pub fn role_defaults(role: &str) -> BTreeSet<String> {
    match role {
        "admin" => everything(),
        "member" => everything()
            .into_iter()
            .filter(|p| p != VOICES_DELETE)
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
    let token_features: BTreeSet<&str> = granted.iter().filter_map(|p| feature_of(p)).collect();
    let defaults = role.map(role_defaults).unwrap_or_default();
    defaults
        .into_iter()
        .filter(|p| feature_of(p).is_none_or(|f| !token_features.contains(f)))
        .chain(granted.iter().cloned())
        .collect()
}

/// Machine-token scopes to permissions: `tasks:read` and `org:tasks:read` both grant
/// `org:tasks:read`; no scopes at all means read-only.
pub fn from_scopes(scopes: &[String]) -> BTreeSet<String> {
    if scopes.is_empty() {
        return read_only();
    }
    scopes
        .iter()
        .map(|s| {
            if s.starts_with("org:") {
                s.clone()
            } else {
                format!("org:{s}")
            }
        })
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
