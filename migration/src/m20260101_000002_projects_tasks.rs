//! Projects and tasks, tenant-owned, with list indexes that start with `tenant_id`.

use sea_orm_migration::{prelude::*, schema::*};

use crate::rls;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Projects {
    Table,
    Id,
    TenantId,
    Name,
    Version,
    CreatedByUserId,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Tasks {
    Table,
    Id,
    TenantId,
    ProjectId,
    Title,
    Description,
    DueAt,
    CompletedAt,
    AssigneeUserId,
    Version,
    CreatedByUserId,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Projects::Table)
                    .if_not_exists()
                    .col(uuid(Projects::Id).primary_key())
                    .col(string(Projects::TenantId))
                    .col(string(Projects::Name))
                    .col(integer(Projects::Version))
                    .col(string(Projects::CreatedByUserId))
                    .col(timestamp_with_time_zone(Projects::CreatedAt))
                    .col(timestamp_with_time_zone(Projects::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("projects_tenant_id_id")
                    .table(Projects::Table)
                    .col(Projects::TenantId)
                    .col(Projects::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Tasks::Table)
                    .if_not_exists()
                    .col(uuid(Tasks::Id).primary_key())
                    .col(string(Tasks::TenantId))
                    .col(uuid_null(Tasks::ProjectId))
                    .col(string(Tasks::Title))
                    .col(text_null(Tasks::Description))
                    .col(timestamp_with_time_zone_null(Tasks::DueAt))
                    .col(timestamp_with_time_zone_null(Tasks::CompletedAt))
                    .col(string_null(Tasks::AssigneeUserId))
                    .col(integer(Tasks::Version))
                    .col(string(Tasks::CreatedByUserId))
                    .col(timestamp_with_time_zone(Tasks::CreatedAt))
                    .col(timestamp_with_time_zone(Tasks::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("tasks_project_id_fkey")
                            .from(Tasks::Table, Tasks::ProjectId)
                            .to(Projects::Table, Projects::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            ("tasks_tenant_id_id", vec![Tasks::TenantId, Tasks::Id]),
            (
                "tasks_tenant_id_project_id_id",
                vec![Tasks::TenantId, Tasks::ProjectId, Tasks::Id],
            ),
            (
                "tasks_tenant_id_assignee_user_id_id",
                vec![Tasks::TenantId, Tasks::AssigneeUserId, Tasks::Id],
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table(Tasks::Table);
            for col in cols {
                index.col(col);
            }
            manager.create_index(index.to_owned()).await?;
        }

        rls::protect_tenant_table(manager, "projects").await?;
        rls::protect_tenant_table(manager, "tasks").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Tasks::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Projects::Table).to_owned())
            .await
    }
}
