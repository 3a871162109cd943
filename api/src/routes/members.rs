//! `/v1/members`: who belongs to the current workspace, from the memberships synced by Clerk's
//! webhooks (for assignee pickers), and the assignee check tasks use.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::{
    entities::{membership, user},
    error::{ApiError, ProblemDetails},
    rest::{self, ListPage, Page},
    state::AppState,
    tenant::{TenantContext, permissions, scoped::ScopedDb},
    timestamp,
};

/// A member of the workspace.
#[derive(Debug, Serialize, ToSchema)]
pub struct Member {
    /// The Clerk user id (`user_…`): what `assignee_user_id` takes.
    pub user_id: String,
    /// The organization role (`admin`, `member`, `reader`, …).
    pub role: String,
    pub name: Option<String>,
    /// The primary email address.
    pub email: Option<String>,
    pub image_url: Option<String>,
    /// The user account was deleted in Clerk.
    pub deleted: bool,
    /// When the membership was first synced.
    #[serde(serialize_with = "timestamp::serialize")]
    pub joined_at: DateTime<Utc>,
}

impl Member {
    /// The directory's profile wins when it has one (it follows `user.updated`); otherwise
    /// the membership's copy of Clerk's public user data.
    fn new(m: membership::Model, profile: Option<&user::Model>) -> Member {
        let deleted = profile.is_some_and(|p| p.deleted_at.is_some());
        let (name, email, image_url) = match profile {
            Some(p) if deleted => (p.name.clone(), p.email.clone(), p.image_url.clone()),
            Some(p) if p.source_updated_at.is_some() => (
                p.name.clone().or(m.user_name),
                p.email.clone().or(m.user_email),
                p.image_url.clone().or(m.user_image_url),
            ),
            _ => (m.user_name, m.user_email, m.user_image_url),
        };
        Member {
            user_id: m.user_id,
            role: m.role,
            name,
            email,
            image_url,
            deleted,
            joined_at: m.created_at,
        }
    }
}

/// The routes of this resource.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/members").get(list));
}

#[derive(OpenApi)]
#[openapi(
    paths(list),
    components(schemas(Member)),
    tags((name = "members", description = "Who belongs to the workspace (synced from Clerk)")),
)]
pub struct MembersApi;

/// List the workspace's members, most recently joined first.
#[utoipa::path(
    get, path = "/v1/members", tag = "members", operation_id = "listMembers",
    security(("bearer" = [])),
    params(ListPage, ("If-None-Match" = Option<String>, Header, description = "ETag of a page read earlier; 304 while that page is unchanged")),
    responses(
        (status = 200, description = "A page of members", body = Page<Member>, headers(("ETag" = String, description = "Weak validator of this page; send it in If-None-Match"))),
        (status = 403, description = "Needs org:members:read", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: TenantContext,
    query: web::Query<ListPage>,
) -> Result<HttpResponse, ApiError> {
    ctx.require(permissions::MEMBERS_READ)?;
    let page = query.validate()?;
    let select = page.select(
        membership::Entity::find().filter(membership::Column::DeletedAt.is_null()),
        membership::Column::Id,
    );
    let db = ScopedDb::begin(&state.tenants, &ctx).await?;
    let rows = db.all(select).await?;
    let ids: Vec<String> = rows.iter().map(|m| m.user_id.clone()).collect();
    let profiles = db.user_profiles(&ids).await?;
    db.finish_read();
    let page = page.page(
        rows,
        |m| m.id,
        |m| {
            let profile = profiles.get(&m.user_id);
            Member::new(m, profile)
        },
    );
    rest::page_response(&req, &page)
}

/// 422 on `assignee_user_id` when the workspace has synced membership data and the user is not
/// a current member. Workspaces without any (personal workspaces, or before the first
/// membership webhook) accept any well-formed user id.
pub async fn check_assignee(db: &ScopedDb, user_id: &str) -> Result<(), ApiError> {
    if db.count(membership::Entity::find()).await? == 0 {
        return Ok(());
    }
    let member = db
        .one(
            membership::Entity::find()
                .filter(membership::Column::UserId.eq(user_id))
                .filter(membership::Column::DeletedAt.is_null()),
        )
        .await?;
    match member {
        Some(_) => Ok(()),
        None => Err(ApiError::field(
            "assignee_user_id",
            "is not a member of this workspace",
        )),
    }
}
