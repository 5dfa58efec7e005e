//! Database connection and migrations: the one implementation lives in `migration`,
//! which the worker uses too.

pub use migration::{connect, connect_and_migrate};
