//! The OpenAPI 3.1 document, generated from the handlers with utoipa.
//!
//! `openapi/openapi.json` is a committed copy (regenerate with `cargo run -- openapi >
//! openapi/openapi.json`); a test fails when it drifts from what the code generates.

use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use crate::{error, idempotency, rest, routes};

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
        routes::billing::BillingApi::openapi(),
        routes::events::EventsApi::openapi(),
        routes::webhooks::WebhooksApi::openapi(),
    ] {
        document.merge(resource);
    }
    BearerAuth.modify(&mut document);
    SharedErrors.modify(&mut document);
    IdempotentCreates.modify(&mut document);
    ResourceLinks.modify(&mut document);
    TextWithoutNul.modify(&mut document);
    document
}

/// Text the API takes never holds U+0000 (PostgreSQL cannot store it; `http::guard_input`
/// answers 422): every string of a request body or query gets a pattern that says so. A
/// not-blank text ([`rest::NOT_BLANK_PATTERN`] in a handler's schema) becomes the anchored
/// [`rest::NOT_BLANK_TEXT_PATTERN`]; a string with a pattern of its own (ids, cursors,
/// language tags) already admits no NUL.
struct TextWithoutNul;

impl TextWithoutNul {
    fn apply(schema: &mut utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>) {
        use utoipa::openapi::{
            RefOr,
            schema::{KnownFormat, Schema, SchemaFormat, SchemaType, Type},
        };
        let RefOr::T(Schema::Object(object)) = schema else {
            return;
        };
        let is_text = match &object.schema_type {
            SchemaType::Type(kind) => *kind == Type::String,
            SchemaType::Array(kinds) => kinds.contains(&Type::String),
            SchemaType::AnyValue => false,
        };
        let binary = matches!(
            object.format,
            Some(SchemaFormat::KnownFormat(KnownFormat::Binary))
        );
        if !is_text || binary || object.enum_values.is_some() {
            return;
        }
        object.pattern = match object.pattern.take() {
            None => Some(rest::NO_NUL_PATTERN.to_owned()),
            Some(p) if p == rest::NOT_BLANK_PATTERN => {
                Some(rest::NOT_BLANK_TEXT_PATTERN.to_owned())
            }
            own => own,
        };
    }
}

impl Modify for TextWithoutNul {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{RefOr, path::ParameterIn, schema::Schema};
        let mut bodies = std::collections::BTreeSet::new();
        for (path, item) in openapi.paths.paths.iter_mut() {
            if path.starts_with("/webhooks/") {
                continue; // signed events from Clerk, checked after their signature
            }
            for operation in operations(item) {
                for parameter in operation.parameters.iter_mut().flatten() {
                    if parameter.parameter_in == ParameterIn::Query
                        && let Some(schema) = parameter.schema.as_mut()
                    {
                        Self::apply(schema);
                    }
                }
                for content in operation
                    .request_body
                    .iter()
                    .flat_map(|b| b.content.values())
                {
                    if let Some(RefOr::Ref(reference)) = &content.schema {
                        bodies.insert(reference.ref_location.rsplit('/').next().map(str::to_owned));
                    }
                }
            }
        }
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for name in bodies.into_iter().flatten() {
            if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(&name) {
                object.properties.values_mut().for_each(Self::apply);
            }
        }
    }
}

/// The operations of one path, in a fixed order (the API uses no other methods).
fn operations(
    item: &mut utoipa::openapi::path::PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    let utoipa::openapi::path::PathItem {
        get,
        put,
        post,
        delete,
        patch,
        ..
    } = item;
    [get, put, post, delete, patch].into_iter().flatten()
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
/// 413, 415, 431, 401 (with `WWW-Authenticate`) and 500 everywhere they can occur; 503 with
/// `Retry-After` wherever a token is verified or the database is used; 422 wherever a body or
/// query is validated; 404 for an `{id}`; 412 with `If-Match`; 304 (with the `ETag`) with
/// `If-None-Match`. A handler that documents one of these itself (with a more specific
/// description) keeps its own.
///
/// Every secured operation is also counted by the workspace's rate limiter
/// (`limits::rate`): 429 `rate_limited` with `Retry-After`, and the `RateLimit-Policy` and
/// `RateLimit` headers on each of its answers but 401 (no workspace is known then).
struct SharedErrors;

impl Modify for SharedErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{
            Content, Ref, ResponseBuilder,
            header::HeaderBuilder,
            path::{Operation, ParameterIn},
        };
        let header = |description: &str, schema: utoipa::openapi::Object| {
            HeaderBuilder::new()
                .schema(schema)
                .description(Some(description))
                .build()
        };
        let text = || utoipa::openapi::Object::with_type(utoipa::openapi::Type::String);
        let seconds = || {
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::Type::Integer)
                .minimum(Some(1))
                .build()
        };
        let problem = |description: &str| {
            ResponseBuilder::new().description(description).content(
                crate::error::PROBLEM_JSON,
                Content::new(Some(Ref::from_schema_name("ProblemDetails"))),
            )
        };
        let add = |operation: &mut Operation, status: &str, description: &str| {
            operation
                .responses
                .responses
                .entry(status.to_owned())
                .or_insert_with(|| problem(description).build().into());
        };
        for item in openapi.paths.paths.values_mut() {
            for operation in operations(item) {
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
                                .header("ETag", header("The current ETag (the one sent)", text()))
                                .build()
                                .into()
                        });
                }
                if has_body {
                    add(operation, "413", "Request body too large");
                    add(operation, "415", "Unsupported content type");
                }
                if operation.security.is_some() {
                    operation
                        .responses
                        .responses
                        .entry("401".to_owned())
                        .or_insert_with(|| {
                            problem("Missing or invalid token")
                                .header(
                                    "WWW-Authenticate",
                                    header(
                                        "`Bearer` with `error`, `error_description` and the \
                                         `resource_metadata` URL (RFC 6750, RFC 9728)",
                                        text(),
                                    ),
                                )
                                .build()
                                .into()
                        });
                    operation
                        .responses
                        .responses
                        .entry("503".to_owned())
                        .or_insert_with(|| {
                            problem(
                                "Temporarily unavailable: the token could not be verified \
                                 (Clerk unreachable) or the database is unreachable",
                            )
                            .header(
                                "Retry-After",
                                header("Seconds to wait before retrying", seconds()),
                            )
                            .build()
                            .into()
                        });
                    add(
                        operation,
                        "429",
                        "`rate_limited`: the workspace is over its plan's request rate; retry after `Retry-After` seconds",
                    );
                }
                add(
                    operation,
                    "431",
                    "Request line and headers larger than 16 KiB together",
                );
                add(operation, "500", "Server fault; quote the request id");
                if operation.security.is_some() {
                    rate_limit_headers(operation);
                }
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
    let json = document()
        .to_pretty_json()
        .expect("the OpenAPI document serialises");
    // utoipa 5.5 serialises a Link's `operationId` as `operation_id`; a link's operation id is
    // the only string-valued `operation_id` key in the document (a schema property of that
    // name would map to an object).
    let mut json = json.replace("\"operation_id\": \"", "\"operationId\": \"");
    json.push('\n');
    json
}

/// OpenAPI links from the answers that name a resource (its creation's 201, its update's 200)
/// to the operations on that resource, so clients and the stateful fuzzer know where an `id`
/// and an `ETag` go next. Declared here, by operation id, in one table.
struct ResourceLinks;

impl ResourceLinks {
    /// (operation, status it answers with the resource, id expression, the operations on it)
    const LINKS: &'static [(
        &'static str,
        &'static str,
        &'static str,
        &'static [&'static str],
    )] = &[
        ("createProject", "201", "$response.body#/id", PROJECT),
        ("updateProject", "200", "$request.path.id", PROJECT),
        ("createTask", "201", "$response.body#/id", TASK),
        ("updateTask", "200", "$request.path.id", TASK),
        ("createVoice", "201", "$response.body#/id", VOICE),
        ("updateVoice", "200", "$request.path.id", VOICE),
        ("createGeneration", "201", "$response.body#/id", GENERATION),
    ];
}

const PROJECT: &[&str] = &["getProject", "updateProject", "deleteProject"];
const TASK: &[&str] = &["getTask", "updateTask", "deleteTask"];
const VOICE: &[&str] = &["getVoice", "updateVoice", "deleteVoice", "getVoiceSample"];
const GENERATION: &[&str] = &["getGeneration", "deleteGeneration", "getGenerationAudio"];

impl Modify for ResourceLinks {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{RefOr, link::LinkBuilder};
        // Which targets take If-Match (from the document itself).
        let mut takes_if_match = std::collections::BTreeSet::new();
        for item in openapi.paths.paths.values_mut() {
            for operation in operations(item) {
                if operation
                    .parameters
                    .iter()
                    .flatten()
                    .any(|p| p.name == "If-Match")
                    && let Some(id) = &operation.operation_id
                {
                    takes_if_match.insert(id.clone());
                }
            }
        }
        for item in openapi.paths.paths.values_mut() {
            for operation in operations(item) {
                let Some(source) = operation.operation_id.clone() else {
                    continue;
                };
                for (_, status, id, targets) in Self::LINKS.iter().filter(|l| l.0 == source) {
                    let Some(RefOr::T(response)) = operation.responses.responses.get_mut(*status)
                    else {
                        panic!("{source} documents no {status} response to link from");
                    };
                    let sends_etag = response.headers.contains_key("ETag");
                    for target in *targets {
                        let mut link = LinkBuilder::new()
                            .operation_id(*target)
                            .parameter("id", *id)
                            .description(format!(
                                "The `id` (and ETag) of this resource for {target}"
                            ));
                        if sends_etag && takes_if_match.contains(*target) {
                            link = link.parameter("If-Match", "$response.header.ETag");
                        }
                        response
                            .links
                            .insert((*target).to_owned(), link.build().into());
                    }
                }
            }
        }
    }
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
