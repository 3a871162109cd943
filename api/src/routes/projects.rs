//! `/v1/projects`: a workspace's projects. Deleting a project deletes its tasks.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use crate::{
    entities::{project, task},
    error::{ApiError, FieldError, ProblemDetails},
    events::ResourceEvent,
    rest::{self, ListPage, Page, Precondition},
    state::AppState,
    tenant::{TenantContext, permissions, scoped::ScopedDb},
    timestamp,
};

pub const MAX_NAME_CHARS: usize = 200;

/// A project.
#[derive(Debug, Serialize, ToSchema)]
pub struct Project {
    pub id: Uuid,
    pub name: String,
    pub created_by_user_id: String,
    #[serde(serialize_with = "timestamp::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "timestamp::serialize")]
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
#[schema(example = json!({"name": "Launch"}))]
pub struct CreateProject {
    /// At most 200 characters, not blank; stored trimmed.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"[^\t\n\u000B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][\s\S]*$"
    )]
    pub name: String,
}

impl CreateProject {
    /// The name, trimmed.
    pub fn validate(self) -> Result<String, Vec<FieldError>> {
        let mut errors = vec![];
        let name = rest::trimmed("name", &self.name, MAX_NAME_CHARS, &mut errors);
        if errors.is_empty() {
            Ok(name)
        } else {
            Err(errors)
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Launch v2"}))]
pub struct UpdateProject {
    /// At most 200 characters, not blank; stored trimmed.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"[^\t\n\u000B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][\s\S]*$"
    )]
    pub name: Option<String>,
}

impl UpdateProject {
    /// The new name (trimmed), if one was given.
    pub fn validate(self) -> Result<Option<String>, Vec<FieldError>> {
        let mut errors = vec![];
        let name = self
            .name
            .map(|n| rest::trimmed("name", &n, MAX_NAME_CHARS, &mut errors));
        if errors.is_empty() {
            Ok(name)
        } else {
            Err(errors)
        }
    }
}

/// The routes of this resource.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/projects")
            .get(list)
            .route(crate::idempotency::post(create)),
    )
    .service(
        web::resource("/v1/projects/{id}")
            .get(get)
            .patch(update)
            .delete(delete),
    );
}

#[derive(OpenApi)]
#[openapi(
    paths(create, list, get, update, delete),
    components(schemas(Project, CreateProject, UpdateProject)),
    tags((name = "projects", description = "A workspace's projects")),
)]
pub struct ProjectsApi;

/// Create a project.
#[utoipa::path(
    post, path = "/v1/projects", tag = "projects", operation_id = "createProject",
    security(("bearer" = [])),
    request_body = CreateProject,
    responses(
        (status = 201, description = "Created", body = Project, headers(
            ("ETag" = String, description = "The project's version; send it in If-Match"),
            ("Location" = String, description = "The project's URL"))),
        (status = 403, description = "Needs org:projects:write", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    ctx: TenantContext,
    body: web::Json<CreateProject>,
) -> Result<HttpResponse, ApiError> {
    ctx.require(permissions::PROJECTS_WRITE)?;
    let name = body.into_inner().validate()?;

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
    rest::commit_created(
        db,
        "project.created",
        "/v1/projects",
        created.id,
        created.version,
        Project::from(created),
    )
    .await
}

/// List projects, newest first.
#[utoipa::path(
    get, path = "/v1/projects", tag = "projects", operation_id = "listProjects",
    security(("bearer" = [])),
    params(ListPage, ("If-None-Match" = Option<String>, Header, description = "ETag of a page read earlier; 304 while that page is unchanged")),
    responses(
        (status = 200, description = "A page of projects", body = Page<Project>, headers(("ETag" = String, description = "Weak validator of this page; send it in If-None-Match"))),
        (status = 403, description = "Needs org:projects:read", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: TenantContext,
    query: web::Query<ListPage>,
) -> Result<HttpResponse, ApiError> {
    ctx.require(permissions::PROJECTS_READ)?;
    let page = query.validate()?;
    let select = page.select(project::Entity::find(), project::Column::Id);
    let rows = ScopedDb::read_all(&state.tenants, &ctx, select).await?;
    rest::page_response(&req, &page.page(rows, |m| m.id, Project::from))
}

/// Get a project.
#[utoipa::path(
    get, path = "/v1/projects/{id}", tag = "projects", operation_id = "getProject",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Project id"),
        ("If-None-Match" = Option<String>, Header, description = "ETag from an earlier read; 304 while unchanged"),
    ),
    responses(
        (status = 200, description = "The project", body = Project, headers(("ETag" = String, description = "The project's version; send it in If-Match"))),
        (status = 403, description = "Needs org:projects:read", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: TenantContext,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    ctx.require(permissions::PROJECTS_READ)?;
    let found = rest::read_one::<project::Entity>(&state.tenants, &ctx, *id).await?;
    Ok(rest::read_response(
        &req,
        found.version,
        Project::from(found),
    ))
}

/// Rename a project.
#[utoipa::path(
    patch, path = "/v1/projects/{id}", tag = "projects", operation_id = "updateProject",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Project id"),
        ("If-Match" = Option<String>, Header, description = "ETag from a read; 412 when the project changed since"),
    ),
    request_body = UpdateProject,
    responses(
        (status = 200, description = "Updated", body = Project, headers(("ETag" = String, description = "The project's new version"))),
        (status = 403, description = "Needs org:projects:write", body = ProblemDetails, content_type = "application/problem+json"),
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
    let name = body.into_inner().validate()?;

    let db = ScopedDb::begin(&state.tenants, &ctx).await?;
    let current = rest::current::<project::Entity>(&db, *id, precondition).await?;
    let mut changes = project::ActiveModel {
        id: Set(current.id),
        version: Set(current.version + 1),
        updated_at: Set(Utc::now()),
        ..Default::default()
    };
    if let Some(name) = name {
        changes.name = Set(name);
    }
    let updated = rest::update_at(&db, changes, current.version).await?;
    rest::commit_updated(
        db,
        "project.updated",
        updated.id,
        updated.version,
        Project::from(updated),
    )
    .await
}

/// Delete a project and, in the same transaction, its tasks.
#[utoipa::path(
    delete, path = "/v1/projects/{id}", tag = "projects", operation_id = "deleteProject",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Project id"),
        ("If-Match" = Option<String>, Header, description = "ETag from a read; 412 when the project changed since"),
    ),
    responses(
        (status = 204, description = "Deleted, with its tasks"),
        (status = 403, description = "Needs org:projects:write", body = ProblemDetails, content_type = "application/problem+json"),
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
    let current = rest::current::<project::Entity>(&db, *id, precondition).await?;
    let tasks = db
        .delete_returning(
            task::Entity::delete_many().filter(task::Column::ProjectId.eq(current.id)),
        )
        .await?;
    rest::delete_at::<project::Entity>(&db, current.id, current.version).await?;
    // A `task.deleted` for each task that went (exactly those the DELETE returned), then
    // `project.deleted`: one statement, like any single change's event, and last, so the
    // workspace's log is locked only until the commit.
    let mut events: Vec<_> = tasks
        .iter()
        .map(|t| ResourceEvent::deleted("task.deleted", t.id))
        .collect();
    events.push(ResourceEvent::deleted("project.deleted", current.id));
    db.publish_all(events).await?;
    db.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}
