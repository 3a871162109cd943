//! Who a request acts for ([`TenantContext`]), what it may do ([`permissions`]), and the only
//! doors to tenant data: the [`TenantRegistry`], which opens the tenant-scoped handle
//! ([`ScopedDb`]) for requests and the system handle ([`TenantAdmin`]) for directory sync.

pub mod audit;
mod connection;
pub mod context;
pub mod directory_sync;
pub mod lifecycle;
pub mod permissions;
pub mod pipelined;
mod registry;
pub mod scoped;

pub use context::{TenantContext, TenantKind, TokenKind};
pub use lifecycle::TenantAdmin;
pub use registry::TenantRegistry;
pub use scoped::ScopedDb;
