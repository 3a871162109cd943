//! HTTP routes, one file per resource. Each resource module registers its own paths
//! (`configure`) and describes them for the contract (its `…Api` OpenAPI fragment, merged by
//! `openapi`). Every path is registered as a resource, so a known path with an unsupported
//! method answers 405 and an unknown path 404.

use actix_web::web;

pub mod audio;
pub mod billing;
pub mod docs;
pub mod events;
pub mod generations;
pub mod health;
pub mod me;
pub mod members;
pub mod metrics;
pub mod projects;
pub mod tasks;
pub mod usage;
pub mod voices;
pub mod webhooks;

/// Every route of the API.
pub fn configure(cfg: &mut web::ServiceConfig) {
    for resource in [
        health::configure,
        docs::configure,
        me::configure,
        webhooks::configure,
        members::configure,
        projects::configure,
        tasks::configure,
        voices::configure,
        generations::configure,
        usage::configure,
        billing::configure,
        events::configure,
    ] {
        resource(cfg);
    }
}
