//! Resonance API: a multi-tenant JSON API for projects, tasks, voices and speech generations.
//!
//! The path of one request: `http` middleware (request id, access log, problem+json) →
//! `auth` extractor (Clerk token → `TenantContext`) → `routes::<resource>` handler →
//! `tenant::scoped` data handle (tenant filter on every query) → sea-orm.

pub mod auth;
pub mod config;
pub mod db;
pub mod entities;
pub mod error;
pub mod http;
pub mod openapi;
pub mod rest;
pub mod routes;
pub mod server;
pub mod speech;
pub mod state;
pub mod telemetry;
pub mod tenant;
