//! A task: in a project, or in the workspace's inbox when it has none.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tasks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: String,
    /// None: the task is in the inbox.
    pub project_id: Option<Uuid>,
    pub title: String,
    pub description: Option<String>,
    pub due_at: Option<DateTimeUtc>,
    pub completed_at: Option<DateTimeUtc>,
    pub assignee_user_id: Option<String>,
    /// Bumped on every update; the ETag.
    pub version: i32,
    pub created_by_user_id: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::project::Entity",
        from = "Column::ProjectId",
        to = "super::project::Column::Id",
        on_delete = "Cascade"
    )]
    Project,
}

impl Related<super::project::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Project.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

tenant_owned!("task");

versioned!();

from_pg_row!(
    id,
    tenant_id,
    project_id,
    title,
    description,
    due_at,
    completed_at,
    assignee_user_id,
    version,
    created_by_user_id,
    created_at,
    updated_at,
);
