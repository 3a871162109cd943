//! The OpenAPI 3.1 document, generated from the handlers with utoipa.
//!
//! `openapi/openapi.json` is a committed copy (regenerate with `cargo run -- openapi >
//! openapi/openapi.json`); a test fails when it drifts from what the code generates.

use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use crate::{error, routes};

/// The document's own part: what the API is and the schemas every resource shares. Each
/// resource adds its paths, schemas and tag from its module (see [`document`]).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Resonance API",
        description = "Multi-tenant projects, tasks, voices and speech generations. \
            Authenticate with a Clerk session token, API key, M2M token or OAuth access token \
            as `Authorization: Bearer <token>`. Errors are RFC 9457 problem+json.",
    ),
    components(schemas(error::ProblemDetails, error::FieldError))
)]
struct ApiDoc;

/// The whole contract: the resources' fragments in the order their tags are listed, then the
/// bearer scheme and the errors every operation shares.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    for resource in [
        routes::health::HealthApi::openapi(),
        routes::me::MeApi::openapi(),
        routes::projects::ProjectsApi::openapi(),
        routes::tasks::TasksApi::openapi(),
        routes::voices::VoicesApi::openapi(),
        routes::generations::GenerationsApi::openapi(),
        routes::members::MembersApi::openapi(),
        routes::webhooks::WebhooksApi::openapi(),
    ] {
        document.merge(resource);
    }
    BearerAuth.modify(&mut document);
    SharedErrors.modify(&mut document);
    document
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT or Clerk machine token")
                    .description(Some(
                        "A Clerk session JWT, API key (ak_…), M2M token (mt_…) or OAuth access token (oat_… or JWT).",
                    ))
                    .build(),
            ),
        );
    }
}

/// Errors any operation can answer, documented once here rather than on every handler: the
/// request middleware and extractors produce them the same way for every endpoint.
struct SharedErrors;

impl Modify for SharedErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{
            Content, Ref, ResponseBuilder,
            path::{Operation, PathItem},
        };
        let problem = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    crate::error::PROBLEM_JSON,
                    Content::new(Some(Ref::from_schema_name("ProblemDetails"))),
                )
                .build()
        };
        let add = |operation: &mut Operation, status: &str, description: &str| {
            operation
                .responses
                .responses
                .entry(status.to_owned())
                .or_insert_with(|| problem(description).into());
        };
        for item in openapi.paths.paths.values_mut() {
            let PathItem {
                get,
                put,
                post,
                delete,
                patch,
                ..
            } = item;
            for operation in [get, put, post, delete, patch].into_iter().flatten() {
                let has_body = operation.request_body.is_some();
                let has_params = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
                if has_body || has_params {
                    add(operation, "400", "Malformed request: body, path or query");
                }
                if has_body {
                    add(operation, "413", "Request body too large");
                    add(operation, "415", "Unsupported content type");
                }
                if operation.security.is_some() {
                    add(operation, "401", "Missing or invalid token");
                }
                add(operation, "500", "Server fault; quote the request id");
            }
        }
    }
}

/// The document as pretty JSON with a trailing newline, exactly as committed.
pub fn document_json() -> String {
    let mut json = document()
        .to_pretty_json()
        .expect("the OpenAPI document serialises");
    json.push('\n');
    json
}
