//! One entity module per table.

pub mod api_key;
pub mod attendance_audit;
pub mod attendance_record;
pub mod attendance_session;
pub mod class;
pub mod consent_entry;
pub mod detected_face;
pub mod face_embedding;
pub mod idempotency_key;
pub mod job;
pub mod registration_batch;
pub mod registration_batch_item;
pub mod session_photo;
pub mod student;
pub mod student_photo;
pub mod webhook;
pub mod webhook_attempt;
pub mod webhook_delivery;
