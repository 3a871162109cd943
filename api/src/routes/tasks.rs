//! `/v1/tasks`: a workspace's tasks, in projects or in the inbox.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Select, Set};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::{
    entities::{project, task},
    error::{ApiError, FieldError, ProblemDetails},
    rest::{self, Page, PageRequest, Precondition, nullable},
    state::AppState,
    tenant::{TenantContext, permissions, scoped::ScopedDb},
    timestamp,
};

pub const MAX_TITLE_CHARS: usize = 500;
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;
pub const MAX_QUERY_CHARS: usize = 200;

/// A task.
#[derive(Debug, Serialize, ToSchema)]
pub struct Task {
    pub id: Uuid,
    /// The project, or null for a task in the inbox.
    pub project_id: Option<Uuid>,
    pub title: String,
    pub description: Option<String>,
    pub completed: bool,
    #[serde(serialize_with = "timestamp::serialize_option")]
    pub completed_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "timestamp::serialize_option")]
    pub due_at: Option<DateTime<Utc>>,
    pub assignee_user_id: Option<String>,
    pub created_by_user_id: String,
    #[serde(serialize_with = "timestamp::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "timestamp::serialize")]
    pub updated_at: DateTime<Utc>,
}

impl From<task::Model> for Task {
    fn from(m: task::Model) -> Self {
        Task {
            id: m.id,
            project_id: m.project_id,
            title: m.title,
            description: m.description,
            completed: m.completed_at.is_some(),
            completed_at: m.completed_at,
            due_at: m.due_at,
            assignee_user_id: m.assignee_user_id,
            created_by_user_id: m.created_by_user_id,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"title": "Write the announcement", "project_id": null, "due_at": "2026-12-01T09:00:00Z"}))]
pub struct CreateTask {
    /// At most 500 characters, not blank; stored trimmed.
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"[^\t\n\u000B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][\s\S]*$"
    )]
    pub title: String,
    /// At most 10 000 characters.
    #[schema(max_length = 10000)]
    pub description: Option<String>,
    /// A project of this workspace; omit or null for the inbox.
    pub project_id: Option<Uuid>,
    pub due_at: Option<DateTime<Utc>>,
    /// A Clerk user id (`user_…`); once memberships have synced, a member of the workspace.
    #[schema(max_length = 64, pattern = r"^user_[A-Za-z0-9_]*$")]
    pub assignee_user_id: Option<String>,
}

/// A task as validated for insertion.
pub struct NewTask {
    pub title: String,
    pub description: Option<String>,
    pub project_id: Option<Uuid>,
    pub due_at: Option<DateTime<Utc>>,
    pub assignee_user_id: Option<String>,
}

impl CreateTask {
    pub fn validate(self) -> Result<NewTask, Vec<FieldError>> {
        let mut errors = vec![];
        let title = rest::trimmed("title", &self.title, MAX_TITLE_CHARS, &mut errors);
        if let Some(description) = &self.description {
            rest::check_max_chars(
                "description",
                description,
                MAX_DESCRIPTION_CHARS,
                &mut errors,
            );
        }
        if let Some(assignee) = &self.assignee_user_id {
            rest::check_user_id("assignee_user_id", assignee, &mut errors);
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(NewTask {
            title,
            description: self.description,
            project_id: self.project_id,
            due_at: self.due_at,
            assignee_user_id: self.assignee_user_id,
        })
    }
}

/// A partial update: absent fields stay as they are; `null` clears a field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"completed": true}))]
pub struct UpdateTask {
    /// At most 500 characters, not blank; cannot be null.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = String, required = false, min_length = 1, max_length = 500, pattern = r"[^\t\n\u000B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][\s\S]*$")]
    pub title: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 10000)]
    pub description: Option<Option<String>>,
    /// A project of this workspace, or null to move the task to the inbox.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Uuid>)]
    pub project_id: Option<Option<Uuid>>,
    /// true completes the task (sets `completed_at`); false reopens it. Cannot be null.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = bool, required = false)]
    pub completed: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub due_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 64, pattern = r"^user_[A-Za-z0-9_]*$")]
    pub assignee_user_id: Option<Option<String>>,
}

impl UpdateTask {
    /// Checks the fields; the title comes back trimmed.
    pub fn validate(mut self) -> Result<UpdateTask, Vec<FieldError>> {
        let mut errors = vec![];
        match &self.title {
            Some(None) => errors.push(FieldError::new("title", "must not be null")),
            Some(Some(title)) => {
                let title = rest::trimmed("title", title, MAX_TITLE_CHARS, &mut errors);
                self.title = Some(Some(title));
            }
            None => {}
        }
        if let Some(Some(description)) = &self.description {
            rest::check_max_chars(
                "description",
                description,
                MAX_DESCRIPTION_CHARS,
                &mut errors,
            );
        }
        if let Some(Some(assignee)) = &self.assignee_user_id {
            rest::check_user_id("assignee_user_id", assignee, &mut errors);
        }
        if self.completed == Some(None) {
            errors.push(FieldError::new("completed", "must be true or false"));
        }
        if errors.is_empty() {
            Ok(self)
        } else {
            Err(errors)
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListTasks {
    /// Only tasks of this project. With `inbox=true` as well nothing matches (an inbox task has
    /// no project): the page is empty.
    pub project_id: Option<Uuid>,
    /// true: only tasks with no project (the inbox).
    pub inbox: Option<bool>,
    /// Only completed (true) or open (false) tasks.
    pub completed: Option<bool>,
    /// Case-insensitive match on the title.
    #[param(max_length = 200)]
    pub q: Option<String>,
    /// Only tasks assigned to this user.
    #[param(max_length = 64, pattern = r"^user_[A-Za-z0-9_]*$")]
    pub assignee_user_id: Option<String>,
    /// Page size (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^([A-Za-z0-9_-]{21}[AQgw])?$")]
    pub cursor: Option<String>,
}

impl ListTasks {
    fn validate(&self) -> Result<PageRequest, ApiError> {
        let mut errors = vec![];
        let page = PageRequest::parse(self.limit, self.cursor.as_deref(), &mut errors);
        if let Some(q) = &self.q {
            rest::check_max_chars("q", q, MAX_QUERY_CHARS, &mut errors);
        }
        if let Some(assignee) = &self.assignee_user_id {
            rest::check_user_id("assignee_user_id", assignee, &mut errors);
        }
        rest::reject_invalid(errors)?;
        Ok(page)
    }

    /// The filters as a query, newest first from the page's cursor. Every filter narrows the
    /// list, so `project_id` with `inbox=true` selects nothing.
    fn select(&self, page: &PageRequest) -> Select<task::Entity> {
        let mut select = page.select(task::Entity::find(), task::Column::Id);
        if let Some(project_id) = self.project_id {
            select = select.filter(task::Column::ProjectId.eq(project_id));
        }
        match self.inbox {
            Some(true) => select = select.filter(task::Column::ProjectId.is_null()),
            Some(false) => select = select.filter(task::Column::ProjectId.is_not_null()),
            None => {}
        }
        match self.completed {
            Some(true) => select = select.filter(task::Column::CompletedAt.is_not_null()),
            Some(false) => select = select.filter(task::Column::CompletedAt.is_null()),
            None => {}
        }
        if let Some(assignee) = &self.assignee_user_id {
            select = select.filter(task::Column::AssigneeUserId.eq(assignee.as_str()));
        }
        if let Some(q) = self.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            select = select.filter(rest::contains_ignoring_case(task::Column::Title, q));
        }
        select
    }
}

/// A project id given by the client must name a project of the same workspace.
async fn check_project(db: &ScopedDb, project_id: Uuid) -> Result<(), ApiError> {
    match db.get::<project::Entity>(project_id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::field(
            "project_id",
            "no such project in this workspace",
        )),
    }
}

/// The routes of this resource.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/tasks")
            .get(list)
            .route(crate::idempotency::post(create)),
    )
    .service(
        web::resource("/v1/tasks/{id}")
            .get(get)
            .patch(update)
            .delete(delete),
    );
}

#[derive(OpenApi)]
#[openapi(
    paths(create, list, get, update, delete),
    components(schemas(Task, CreateTask, UpdateTask)),
    tags((name = "tasks", description = "A workspace's tasks: inbox, projects, completion, assignment")),
)]
pub struct TasksApi;

/// Create a task.
#[utoipa::path(
    post, path = "/v1/tasks", tag = "tasks", operation_id = "createTask",
    security(("bearer" = [])),
    request_body = CreateTask,
    responses(
        (status = 201, description = "Created", body = Task, headers(
            ("ETag" = String, description = "The task's version; send it in If-Match"),
            ("Location" = String, description = "The task's URL"))),
        (status = 403, description = "Needs org:tasks:write", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (including a project of another workspace)", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    ctx: TenantContext,
    body: web::Json<CreateTask>,
) -> Result<HttpResponse, ApiError> {
    ctx.require(permissions::TASKS_WRITE)?;
    let input = body.into_inner().validate()?;

    let db = ScopedDb::begin(&state.tenants, &ctx).await?;
    if let Some(project_id) = input.project_id {
        check_project(&db, project_id).await?;
    }
    if let Some(assignee) = &input.assignee_user_id {
        super::members::check_assignee(&db, assignee).await?;
    }
    let now = Utc::now();
    let created = db
        .insert(task::ActiveModel {
            id: Set(Uuid::now_v7()),
            project_id: Set(input.project_id),
            title: Set(input.title),
            description: Set(input.description),
            due_at: Set(input.due_at),
            completed_at: Set(None),
            assignee_user_id: Set(input.assignee_user_id),
            version: Set(1),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        })
        .await?;
    rest::commit_created(
        db,
        "task.created",
        "/v1/tasks",
        created.id,
        created.version,
        Task::from(created),
    )
    .await
}

/// List tasks, newest first, with filters.
#[utoipa::path(
    get, path = "/v1/tasks", tag = "tasks", operation_id = "listTasks",
    security(("bearer" = [])),
    params(ListTasks, ("If-None-Match" = Option<String>, Header, description = "ETag of a page read earlier; 304 while that page is unchanged")),
    responses(
        (status = 200, description = "A page of tasks", body = Page<Task>, headers(("ETag" = String, description = "Weak validator of this page; send it in If-None-Match"))),
        (status = 403, description = "Needs org:tasks:read", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: TenantContext,
    query: web::Query<ListTasks>,
) -> Result<HttpResponse, ApiError> {
    ctx.require(permissions::TASKS_READ)?;
    let page = query.validate()?;
    let select = query.select(&page);
    let rows = ScopedDb::read_all(&state.tenants, &ctx, select).await?;
    rest::page_response(&req, &page.page(rows, |m| m.id, Task::from))
}

/// Get a task.
#[utoipa::path(
    get, path = "/v1/tasks/{id}", tag = "tasks", operation_id = "getTask",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Task id"),
        ("If-None-Match" = Option<String>, Header, description = "ETag from an earlier read; 304 while unchanged"),
    ),
    responses(
        (status = 200, description = "The task", body = Task, headers(("ETag" = String, description = "The task's version; send it in If-Match"))),
        (status = 403, description = "Needs org:tasks:read", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: TenantContext,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    ctx.require(permissions::TASKS_READ)?;
    let found = rest::read_one::<task::Entity>(&state.tenants, &ctx, *id).await?;
    Ok(rest::read_response(&req, found.version, Task::from(found)))
}

/// Update a task: title, description, project (or inbox), completion, due date, assignee.
#[utoipa::path(
    patch, path = "/v1/tasks/{id}", tag = "tasks", operation_id = "updateTask",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Task id"),
        ("If-Match" = Option<String>, Header, description = "ETag from a read; 412 when the task changed since"),
    ),
    request_body = UpdateTask,
    responses(
        (status = 200, description = "Updated", body = Task, headers(("ETag" = String, description = "The task's new version"))),
        (status = 403, description = "Needs org:tasks:write", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: TenantContext,
    id: web::Path<Uuid>,
    body: web::Json<UpdateTask>,
) -> Result<HttpResponse, ApiError> {
    ctx.require(permissions::TASKS_WRITE)?;
    let precondition = Precondition::from_request(&req);
    let input = body.into_inner().validate()?;

    let db = ScopedDb::begin(&state.tenants, &ctx).await?;
    let current = rest::current::<task::Entity>(&db, *id, precondition).await?;
    if let Some(Some(project_id)) = input.project_id {
        check_project(&db, project_id).await?;
    }
    if let Some(Some(assignee)) = &input.assignee_user_id
        && current.assignee_user_id.as_deref() != Some(assignee.as_str())
    {
        super::members::check_assignee(&db, assignee).await?;
    }

    let now = Utc::now();
    let mut changes = task::ActiveModel {
        id: Set(current.id),
        version: Set(current.version + 1),
        updated_at: Set(now),
        ..Default::default()
    };
    if let Some(Some(title)) = input.title {
        changes.title = Set(title);
    }
    if let Some(description) = input.description {
        changes.description = Set(description);
    }
    if let Some(project_id) = input.project_id {
        changes.project_id = Set(project_id);
    }
    if let Some(due_at) = input.due_at {
        changes.due_at = Set(due_at);
    }
    if let Some(assignee) = input.assignee_user_id {
        changes.assignee_user_id = Set(assignee);
    }
    match input.completed.flatten() {
        // Completing an already completed task keeps its original completion time.
        Some(true) if current.completed_at.is_none() => changes.completed_at = Set(Some(now)),
        Some(false) => changes.completed_at = Set(None),
        _ => {}
    }
    let updated = rest::update_at(&db, changes, current.version).await?;
    rest::commit_updated(
        db,
        "task.updated",
        updated.id,
        updated.version,
        Task::from(updated),
    )
    .await
}

/// Delete a task.
#[utoipa::path(
    delete, path = "/v1/tasks/{id}", tag = "tasks", operation_id = "deleteTask",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Task id"),
        ("If-Match" = Option<String>, Header, description = "ETag from a read; 412 when the task changed since"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Needs org:tasks:write", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: TenantContext,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    ctx.require(permissions::TASKS_WRITE)?;
    let precondition = Precondition::from_request(&req);
    let db = ScopedDb::begin(&state.tenants, &ctx).await?;
    rest::delete_versioned::<task::Entity>(&db, *id, precondition).await?;
    rest::commit_deleted(db, "task.deleted", *id).await
}
