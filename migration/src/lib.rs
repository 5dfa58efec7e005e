//! Database migrations. The same migrations run on SQLite and PostgreSQL: UUID
//! columns, UTC timestamps, enums as short strings, foreign keys declared inside
//! `CREATE TABLE` (SQLite cannot add them later).

pub use sea_orm_migration::prelude::*;

pub mod connect;
pub use connect::{connect, connect_and_migrate};

mod m20261125_000001_create_classes;
mod m20261125_000002_create_students;
mod m20261125_000003_create_student_photos;
mod m20261125_000004_create_face_embeddings;
mod m20261125_000005_create_attendance_sessions;
mod m20261125_000006_create_session_photos;
mod m20261125_000007_create_detected_faces;
mod m20261125_000008_create_attendance_records;
mod m20261125_000009_create_jobs;
mod m20261125_000010_create_api_keys;
mod m20261129_205700_add_key_scope_and_session_creator;
mod m20261130_000100_add_corrections;
mod m20261130_000200_create_registration_batches;
mod m20261130_000300_create_webhooks;
mod m20261130_000500_add_photo_provenance;
mod m20261130_000600_add_job_lease;
mod m20261130_000700_create_idempotency_keys;
mod m20261130_000800_add_privacy;
mod m20261130_000850_add_batch_consent;
mod m20261130_000900_index_photo_first_use;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_create_classes::Migration),
            Box::new(m20261125_000002_create_students::Migration),
            Box::new(m20261125_000003_create_student_photos::Migration),
            Box::new(m20261125_000004_create_face_embeddings::Migration),
            Box::new(m20261125_000005_create_attendance_sessions::Migration),
            Box::new(m20261125_000006_create_session_photos::Migration),
            Box::new(m20261125_000007_create_detected_faces::Migration),
            Box::new(m20261125_000008_create_attendance_records::Migration),
            Box::new(m20261125_000009_create_jobs::Migration),
            Box::new(m20261125_000010_create_api_keys::Migration),
            Box::new(m20261129_205700_add_key_scope_and_session_creator::Migration),
            Box::new(m20261130_000100_add_corrections::Migration),
            Box::new(m20261130_000200_create_registration_batches::Migration),
            Box::new(m20261130_000500_add_photo_provenance::Migration),
            Box::new(m20261130_000300_create_webhooks::Migration),
            Box::new(m20261130_000600_add_job_lease::Migration),
            Box::new(m20261130_000700_create_idempotency_keys::Migration),
            Box::new(m20261130_000800_add_privacy::Migration),
            Box::new(m20261130_000850_add_batch_consent::Migration),
            Box::new(m20261130_000900_index_photo_first_use::Migration),
        ]
    }
}
