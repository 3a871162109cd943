//! Resonance API: a multi-tenant JSON API for projects, tasks, voices and speech generations.
//!
//! The path of one request, which is also the direction of every import: `server` (assembles
//! the App from `state`) → `http` middleware (request id, access log, problem+json) → `auth`
//! extractor (Clerk token → `TenantContext`) → `routes::<resource>` handler → `tenant::ScopedDb`
//! (tenant filter on every query) → `entities` → sea-orm; `config` and `error` at the bottom.
//! `api/tests/layers.rs` checks that no import runs back up.

pub mod auth;
pub mod billing;
pub mod config;
pub mod db;
pub mod entities;
pub mod error;
pub mod events;
pub mod http;
pub mod idempotency;
pub mod invalidation;
pub mod limits;
pub mod openapi;
pub mod rest;
pub mod routes;
pub mod server;
pub mod shutdown;
pub mod speech;
pub mod state;
pub mod telemetry;
pub mod tenant;
pub mod timestamp;
