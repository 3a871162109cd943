//! The verified identity of a request and the workspace it acts in.

use std::collections::BTreeSet;

use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;

/// An organization workspace, or a user's personal workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TenantKind {
    Organization,
    Personal,
}

impl TenantKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantKind::Organization => "organization",
            TenantKind::Personal => "personal",
        }
    }
}

/// Which kind of Clerk token authenticated the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// A session JWT from the SPA or a mobile app.
    SessionToken,
    /// `ak_…`
    ApiKey,
    /// `mt_…`, or a machine JWT
    M2mToken,
    /// `oat_…`, or an `at+jwt` access token
    OauthToken,
    /// Minted by `resonance dev token` (development only).
    DevelopmentToken,
}

/// Who is calling and for which workspace. Every `/v1` handler takes one; it is built only by
/// the auth extractor from a verified token.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TenantContext {
    /// The workspace: the active organization id, or the user id for a personal workspace.
    pub tenant_id: String,
    pub tenant_kind: TenantKind,
    /// The user (`user_…`); none for machine tokens owned by an organization or a machine.
    pub user_id: Option<String>,
    /// The Clerk session (`sess_…`) for session tokens.
    pub session_id: Option<String>,
    /// The organization role, normalised (`admin`, `member`, `reader`, …).
    pub org_role: Option<String>,
    pub org_slug: Option<String>,
    /// Effective permissions (`org:tasks:write`, …).
    pub permissions: BTreeSet<String>,
    /// The plan (`o:free_org`, `u:pro`, …) when the token names one.
    pub plan: Option<String>,
    /// Plan features (`o:tasks`, `u:ai_assistant`, …).
    pub features: BTreeSet<String>,
    /// The real actor when an admin impersonates the user (`act.sub`).
    pub actor: Option<String>,
    pub token_kind: TokenKind,
    /// Who created rows written in this request: the user, else the machine or token subject.
    #[serde(skip)]
    pub principal: String,
    /// The catalogue position of the plan the workspace's subscription grants (billing
    /// configured); set by the extractor, it wins over `plan` (see `limits::Limits::plan_for`).
    #[serde(skip)]
    pub subscribed_plan: Option<usize>,
    /// When the token stops being valid (Unix seconds), when it says so: answers that outlive
    /// one request, such as the event stream, end then.
    #[serde(skip)]
    pub expires_at: Option<i64>,
    /// When a session token was issued (`iat`, Unix seconds): a membership change after it
    /// revokes the token (see `auth::revocations`).
    #[serde(skip)]
    pub issued_at: Option<i64>,
}

impl TenantContext {
    pub fn has(&self, permission: &str) -> bool {
        self.permissions.contains(permission)
    }

    /// 403 naming the missing permission unless the context holds it.
    pub fn require(&self, permission: &str) -> Result<(), ApiError> {
        if self.has(permission) {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                permission: permission.to_owned(),
                detail: format!("this request needs the permission {permission}"),
            })
        }
    }

    /// Plan features, as Clerk's `has({ feature })`: `tasks` matches `o:tasks` or `u:tasks`.
    pub fn has_feature(&self, feature: &str) -> bool {
        self.features
            .iter()
            .any(|f| f == feature || f.split_once(':').is_some_and(|(_, name)| name == feature))
    }
}
