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
        routes::usage::UsageApi::openapi(),
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

/// Answers documented once here rather than on every handler, because the middleware,
/// extractors and shared helpers (`rest`) produce them the same way for every endpoint: 400,
/// 413, 415, 401 and 500 everywhere they can occur; 422 wherever a body or query is validated;
/// 404 for an `{id}`; 412 with `If-Match`; 304 with `If-None-Match`. A handler that documents
/// one of these itself (with a more specific description) keeps its own.
///
/// Every secured operation is also counted by the workspace's rate limiter
/// (`limits::rate`): 429 `rate_limited` with `Retry-After`, and the `RateLimit-Policy` and
/// `RateLimit` headers on each of its answers but 401 (no workspace is known then).
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
                    add(
                        operation,
                        "429",
                        "`rate_limited`: the workspace is over its plan's request rate; retry after `Retry-After` seconds",
                    );
                }
                add(operation, "500", "Server fault; quote the request id");
                if operation.security.is_some() {
                    rate_limit_headers(operation);
                }
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

/// The rate limiter's headers on every answer of a secured operation but 401, and
/// `Retry-After` on its 429 (draft-ietf-httpapi-ratelimit-headers-09 field syntax).
fn rate_limit_headers(operation: &mut utoipa::openapi::path::Operation) {
    use utoipa::openapi::{
        RefOr,
        header::{Header, HeaderBuilder},
        schema::{ObjectBuilder, Type},
    };
    let header = |kind: Type, description: &str| -> Header {
        HeaderBuilder::new()
            .schema(ObjectBuilder::new().schema_type(kind))
            .description(Some(description))
            .build()
    };
    for (status, response) in operation.responses.responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        if status == "401" {
            continue;
        }
        response
            .headers
            .entry("RateLimit-Policy".to_owned())
            .or_insert_with(|| {
                header(
                    Type::String,
                    "The workspace's plan as a quota policy: `\"<plan>\";q=<burst>;w=<seconds to refill it>`",
                )
            });
        response.headers.entry("RateLimit".to_owned()).or_insert_with(|| {
            header(
                Type::String,
                "What is left of it now: `\"<plan>\";r=<requests left>;t=<seconds until the burst is whole>`",
            )
        });
        if status == "429" {
            response
                .headers
                .entry("Retry-After".to_owned())
                .or_insert_with(|| header(Type::Integer, "Seconds to wait before retrying"));
        }
    }
}
