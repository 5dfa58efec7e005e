//! Signed webhooks: the events the worker raises ([`events`]), their signature
//! ([`signature`]) and the dispatcher that delivers and retries them ([`dispatcher`]).
//! The fan-out itself (event → one delivery row per subscription) is
//! `models::webhook_events`, callable by the API too.

pub mod dispatcher;
pub mod events;
pub mod signature;

pub use dispatcher::{Dispatcher, DispatcherOptions};
