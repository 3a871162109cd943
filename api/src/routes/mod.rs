//! HTTP routes, one file per resource. Every path is registered here as a resource, so a
//! known path with an unsupported method answers 405 and an unknown path 404.

use actix_web::web;

pub mod audio;
pub mod docs;
pub mod generations;
pub mod health;
pub mod me;
pub mod members;
pub mod projects;
pub mod tasks;
pub mod voices;
pub mod webhooks;

/// Every route of the API.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/healthz").get(health::healthz))
        .service(web::resource("/readyz").get(health::readyz))
        .service(web::resource("/openapi.json").get(docs::openapi_json))
        .service(web::resource("/docs").get(docs::docs_page))
        .service(web::resource("/docs/{file}").get(docs::docs_asset))
        .service(
            web::resource("/.well-known/oauth-protected-resource")
                .get(me::protected_resource_metadata),
        )
        .service(
            // Raw bytes: the Svix signature covers the body exactly as sent.
            web::resource("/webhooks/clerk")
                .app_data(web::PayloadConfig::new(crate::config::DEFAULT_BODY_LIMIT))
                .post(webhooks::clerk),
        )
        .service(
            web::scope("/v1")
                .service(web::resource("/me").get(me::me))
                .service(web::resource("/members").get(members::list))
                .service(
                    web::resource("/projects")
                        .get(projects::list)
                        .post(projects::create),
                )
                .service(
                    web::resource("/projects/{id}")
                        .get(projects::get)
                        .patch(projects::update)
                        .delete(projects::delete),
                )
                .service(web::resource("/tasks").get(tasks::list).post(tasks::create))
                .service(
                    web::resource("/tasks/{id}")
                        .get(tasks::get)
                        .patch(tasks::update)
                        .delete(tasks::delete),
                )
                .service(
                    web::resource("/voices")
                        .get(voices::list)
                        .post(voices::create),
                )
                .service(
                    web::resource("/voices/{id}")
                        .get(voices::get)
                        .patch(voices::update)
                        .delete(voices::delete),
                )
                .service(web::resource("/voices/{id}/sample").get(voices::sample))
                .service(
                    web::resource("/generations")
                        .get(generations::list)
                        .post(generations::create),
                )
                .service(
                    web::resource("/generations/{id}")
                        .get(generations::get)
                        .delete(generations::delete),
                )
                .service(web::resource("/generations/{id}/audio").get(generations::audio)),
        );
}
