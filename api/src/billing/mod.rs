//! Billing with Polar: the workspace is the customer (its tenant id is Polar's external
//! customer id, so there is no customer table of ours), checkouts and the customer portal are
//! Polar's hosted pages ([`Polar`]), and Polar's webhooks report the subscription
//! ([`sync`]), from which the effective plan follows (`limits::Limits::subscribed_plan`).

pub mod polar;
pub mod sync;

pub use polar::Polar;
