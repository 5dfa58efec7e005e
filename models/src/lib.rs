//! sea-orm entities for the attendance database.
//!
//! One module per table; `prelude` re-exports every entity and the string-backed
//! enums stored in them. All primary keys are UUIDs and all timestamps are UTC.
//! Enums are stored as plain strings (not database enum types) so that the same
//! migrations run on SQLite and PostgreSQL.

pub mod entity;
pub mod prelude;
pub mod vector;
pub mod webhook_events;

pub use entity::*;
