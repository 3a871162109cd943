//! The OpenAPI 3.1 document, generated from the handlers with utoipa.
//!
//! `openapi/openapi.json` is a committed copy (regenerate with `cargo run -- openapi >
//! openapi/openapi.json`); a test fails when it drifts from what the code generates.

use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use crate::{error, idempotency, routes};

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
    IdempotentCreates.modify(&mut document);
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

/// Answers documented once here rather than on every handler, because the middleware,
/// extractors and shared helpers (`rest`) produce them the same way for every endpoint: 400,
/// 413, 415, 401 and 500 everywhere they can occur; 422 wherever a body or query is validated;
/// 404 for an `{id}`; 412 with `If-Match`; 304 with `If-None-Match`. A handler that documents
/// one of these itself (with a more specific description) keeps its own.
struct SharedErrors;

impl Modify for SharedErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{
            Content, Ref, ResponseBuilder,
            path::{Operation, ParameterIn, PathItem},
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
                let params: Vec<(String, ParameterIn)> = operation
                    .parameters
                    .iter()
                    .flatten()
                    .map(|p| (p.name.clone(), p.parameter_in.clone()))
                    .collect();
                let has = |name: &str| params.iter().any(|(n, _)| n == name);
                let has_query = params.iter().any(|(_, at)| *at == ParameterIn::Query);
                if has_body || !params.is_empty() {
                    add(operation, "400", "Malformed request: body, path or query");
                }
                if has_body || has_query {
                    add(
                        operation,
                        "422",
                        "Invalid fields or parameters; `errors[]` names each one",
                    );
                }
                if has("id") {
                    add(
                        operation,
                        "404",
                        "No such resource in this workspace (ids of other workspaces too)",
                    );
                }
                if has("If-Match") {
                    add(
                        operation,
                        "412",
                        "The resource changed since the If-Match ETag was read",
                    );
                }
                if has("If-None-Match") {
                    operation
                        .responses
                        .responses
                        .entry("304".to_owned())
                        .or_insert_with(|| {
                            ResponseBuilder::new()
                                .description("Not modified: unchanged since the If-None-Match ETag")
                                .build()
                                .into()
                        });
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

/// Every creating `POST` (one that answers 201) takes an `Idempotency-Key` (see
/// `crate::idempotency`, which its route wraps): the header, the replay marker on the answer,
/// and the 409 and 422 it adds, documented once here. Runs after [`SharedErrors`], whose 422
/// it extends.
struct IdempotentCreates;

impl Modify for IdempotentCreates {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{
            Content, Ref, RefOr, ResponseBuilder,
            header::HeaderBuilder,
            path::{ParameterBuilder, ParameterIn},
            schema::{ObjectBuilder, Type},
        };
        let key = ParameterBuilder::new()
            .name("Idempotency-Key")
            .parameter_in(ParameterIn::Header)
            .description(Some(
                "Makes retries safe: the first answer to this workspace, route and key is kept \
                 24 hours and replayed to every retry with the same body (`idempotent-replayed: \
                 true`), without creating anything again. A Structured Field string \
                 (`\"8e03978e-40d5-43e8-bc93-6894a57f9324\"`, IETF draft \
                 `Idempotency-Key` header) or a bare token; at most 255 characters. Answers of \
                 5xx and 429 are not kept, so a retry runs again.",
            ))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(idempotency::MAX_KEY_LENGTH))
                    .pattern(Some(r#"^("([ !#-\[\]-~]|\\["\\])+"|[!#-\[\]-~]+)$"#)),
            ))
            .build();
        let replayed = HeaderBuilder::new()
            .schema(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["true"])),
            )
            .description(Some(
                "`true` when this is the kept answer to an earlier request with the same Idempotency-Key",
            ))
            .build();
        let problem = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    crate::error::PROBLEM_JSON,
                    Content::new(Some(Ref::from_schema_name("ProblemDetails"))),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            let Some(operation) = item.post.as_mut() else {
                continue;
            };
            let responses = &mut operation.responses.responses;
            let Some(RefOr::T(created)) = responses.get_mut("201") else {
                continue;
            };
            created
                .headers
                .insert(idempotency::REPLAYED_HEADER.to_owned(), replayed.clone());
            for (status, text) in [
                (
                    "400",
                    "`invalid_idempotency_key`: an empty, malformed or too long Idempotency-Key",
                ),
                (
                    "409",
                    "`idempotency_in_progress`: a request with this Idempotency-Key is still running",
                ),
                (
                    "422",
                    "`idempotency_key_reused`: this Idempotency-Key was used for a different request",
                ),
            ] {
                match responses.get_mut(status) {
                    Some(RefOr::T(response)) => {
                        response.description = format!("{}; or {text}", response.description);
                    }
                    Some(RefOr::Ref(_)) => {}
                    None => {
                        responses.insert(status.to_owned(), problem(text).into());
                    }
                }
            }
            operation
                .parameters
                .get_or_insert_with(Vec::new)
                .push(key.clone());
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
