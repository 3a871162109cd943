//! Who a request acts for ([`TenantContext`]), what it may do ([`permissions`]), and the
//! tenant-scoped data handle every handler reads and writes through ([`scoped`]).

mod connection;
pub mod context;
pub mod lifecycle;
pub mod permissions;
pub mod scoped;

pub use context::{TenantContext, TenantKind, TokenKind};
