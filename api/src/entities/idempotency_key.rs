//! The first answer to a creating `POST` under an `Idempotency-Key`, per workspace and route.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "idempotency_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: String,
    /// The method and route template, e.g. `POST /v1/tasks`.
    pub route: String,
    pub idempotency_key: String,
    /// SHA-256 (hex) of the caller, the media type and the body of the first request.
    pub fingerprint: String,
    /// The answer's status; `None` while the first request is still running.
    pub response_status: Option<i32>,
    /// The replayed headers, a JSON array of `[name, value]` pairs.
    #[sea_orm(column_type = "Text", nullable)]
    pub response_headers: Option<String>,
    #[sea_orm(column_type = "Blob", nullable)]
    pub response_body: Option<Vec<u8>>,
    pub created_by_user_id: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

tenant_owned!("idempotency key");

from_pg_row!(
    id,
    tenant_id,
    route,
    idempotency_key,
    fingerprint,
    response_status,
    response_headers,
    response_body,
    created_by_user_id,
    created_at,
    updated_at,
    expires_at,
);
