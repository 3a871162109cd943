//! `/v1/projects`: a workspace's projects. Deleting a project deletes its tasks.

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    entities::{project, task},
    error::{ApiError, ProblemDetails},
    rest::{self, Page, PageRequest, Precondition},
    state::AppState,
    tenant::{TenantContext, permissions, scoped::ScopedDb},
};

pub const MAX_NAME_CHARS: usize = 200;

/// A project.
#[derive(Debug, Serialize, ToSchema)]
pub struct Project {
    pub id: Uuid,
    pub name: String,
    pub created_by_user_id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<project::Model> for Project {
    fn from(m: project::Model) -> Self {
        Project {
            id: m.id,
            name: m.name,
            created_by_user_id: m.created_by_user_id,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    /// 1 to 200 characters after trimming.
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProject {
    /// 1 to 200 characters after trimming.
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListProjects {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Create a project.
#[utoipa::path(
    post, path = "/v1/projects", tag = "projects",
    security(("bearer" = [])),
    request_body = CreateProject,
    responses(
        (status = 201, description = "Created", body = Project,
            headers(("ETag" = String), ("Location" = String))),
        (status = 401, description = "Missing or invalid token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "Needs org:projects:write", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    ctx: TenantContext,
    body: web::Json<CreateProject>,
) -> Result<HttpResponse, ApiError> {
    ctx.require(permissions::PROJECTS_WRITE)?;
    let mut errors = vec![];
    let name = rest::trimmed("name", &body.name, MAX_NAME_CHARS, &mut errors);
    rest::reject_invalid(errors)?;

    let db = ScopedDb::begin(&state.tenants, &ctx).await?;
    let now = Utc::now();
    let created = db
        .insert(project::ActiveModel {
            id: Set(Uuid::now_v7()),
            name: Set(name),
            version: Set(1),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        })
        .await?;
    db.commit().await?;
    let response = HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/v1/projects/{}", created.id)))
        .json(Project::from(created.clone()));
    Ok(rest::with_etag(response, created.version))
}

/// List projects, newest first.
#[utoipa::path(
    get, path = "/v1/projects", tag = "projects",
    security(("bearer" = [])),
    params(ListProjects, ("If-None-Match" = Option<String>, Header, description = "ETag of a page read earlier; 304 while that page is unchanged")),
    responses(
        (status = 200, description = "A page of projects", body = Page<Project>, headers(("ETag" = String, description = "Weak validator of this page; send it in If-None-Match"))),
        (status = 304, description = "Not modified: the page is as the If-None-Match ETag describes"),
        (status = 401, description = "Missing or invalid token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "Needs org:projects:read", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid limit or cursor", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: TenantContext,
    query: web::Query<ListProjects>,
) -> Result<HttpResponse, ApiError> {
    ctx.require(permissions::PROJECTS_READ)?;
    let mut errors = vec![];
    let page = PageRequest::parse(query.limit, query.cursor.as_deref(), &mut errors);
    rest::reject_invalid(errors)?;

    let mut select = project::Entity::find()
        .order_by_desc(project::Column::Id)
        .limit(page.fetch());
    if let Some(after) = page.after {
        select = select.filter(project::Column::Id.lt(after));
    }
    let db = ScopedDb::begin(&state.tenants, &ctx).await?;
    let rows = db.all(select).await?;
    db.finish_read();
    rest::page_response(&req, &page.page(rows, |m| m.id, Project::from))
}

/// Get a project.
#[utoipa::path(
    get, path = "/v1/projects/{id}", tag = "projects",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Project id"),
        ("If-None-Match" = Option<String>, Header, description = "ETag from an earlier read; 304 while unchanged"),
    ),
    responses(
        (status = 200, description = "The project", body = Project, headers(("ETag" = String))),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 401, description = "Missing or invalid token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "Needs org:projects:read", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such project in this workspace", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: TenantContext,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    ctx.require(permissions::PROJECTS_READ)?;
    let db = ScopedDb::begin(&state.tenants, &ctx).await?;
    let found = db
        .get::<project::Entity>(*id)
        .await?
        .ok_or(ApiError::NotFound("project"))?;
    db.finish_read();
    Ok(rest::read_response(
        &req,
        found.version,
        Project::from(found),
    ))
}

/// Rename a project.
#[utoipa::path(
    patch, path = "/v1/projects/{id}", tag = "projects",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Project id"),
        ("If-Match" = Option<String>, Header, description = "ETag from a read; 412 when the project changed since"),
    ),
    request_body = UpdateProject,
    responses(
        (status = 200, description = "Updated", body = Project, headers(("ETag" = String))),
        (status = 401, description = "Missing or invalid token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "Needs org:projects:write", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such project in this workspace", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 412, description = "The project changed since it was read", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: TenantContext,
    id: web::Path<Uuid>,
    body: web::Json<UpdateProject>,
) -> Result<HttpResponse, ApiError> {
    ctx.require(permissions::PROJECTS_WRITE)?;
    let precondition = Precondition::from_request(&req);
    let mut errors = vec![];
    let name = body
        .name
        .as_deref()
        .map(|n| rest::trimmed("name", n, MAX_NAME_CHARS, &mut errors));
    rest::reject_invalid(errors)?;

    let db = ScopedDb::begin(&state.tenants, &ctx).await?;
    let current = db
        .get::<project::Entity>(*id)
        .await?
        .ok_or(ApiError::NotFound("project"))?;
    precondition.check(current.version)?;
    let mut changes = project::ActiveModel {
        id: Set(current.id),
        version: Set(current.version + 1),
        updated_at: Set(Utc::now()),
        ..Default::default()
    };
    if let Some(name) = name {
        changes.name = Set(name);
    }
    let updated = db
        .update(
            changes,
            Condition::all().add(project::Column::Version.eq(current.version)),
        )
        .await?
        .ok_or(ApiError::PreconditionFailed)?;
    db.commit().await?;
    let version = updated.version;
    Ok(rest::with_etag(
        HttpResponse::Ok().json(Project::from(updated)),
        version,
    ))
}

/// Delete a project and, in the same transaction, its tasks.
#[utoipa::path(
    delete, path = "/v1/projects/{id}", tag = "projects",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Project id"),
        ("If-Match" = Option<String>, Header, description = "ETag from a read; 412 when the project changed since"),
    ),
    responses(
        (status = 204, description = "Deleted, with its tasks"),
        (status = 401, description = "Missing or invalid token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "Needs org:projects:write", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such project in this workspace", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 412, description = "The project changed since it was read", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: TenantContext,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    ctx.require(permissions::PROJECTS_WRITE)?;
    let precondition = Precondition::from_request(&req);
    let db = ScopedDb::begin(&state.tenants, &ctx).await?;
    let current = db
        .get::<project::Entity>(*id)
        .await?
        .ok_or(ApiError::NotFound("project"))?;
    precondition.check(current.version)?;
    db.delete(task::Entity::delete_many().filter(task::Column::ProjectId.eq(current.id)))
        .await?;
    let deleted = db
        .delete(
            project::Entity::delete_many()
                .filter(project::Column::Id.eq(current.id))
                .filter(project::Column::Version.eq(current.version)),
        )
        .await?;
    if deleted == 0 {
        return Err(ApiError::PreconditionFailed);
    }
    db.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}
