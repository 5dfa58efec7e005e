//! Every entity under a distinct name, plus the enums stored in their columns.

pub use crate::entity::api_key::{Entity as ApiKey, Role};
pub use crate::entity::attendance_audit::{AuditAction, Entity as AttendanceAudit};
pub use crate::entity::attendance_record::{
    Entity as AttendanceRecord, RecordSource, RecordStatus,
};
pub use crate::entity::attendance_session::{Entity as AttendanceSession, SessionStatus};
pub use crate::entity::class::Entity as Class;
pub use crate::entity::detected_face::Entity as DetectedFace;
pub use crate::entity::face_embedding::Entity as FaceEmbedding;
pub use crate::entity::job::{Entity as Job, JobStatus};
pub use crate::entity::registration_batch::{BatchStatus, Entity as RegistrationBatch};
pub use crate::entity::registration_batch_item::{Entity as RegistrationBatchItem, ItemStatus};
pub use crate::entity::session_photo::Entity as SessionPhoto;
pub use crate::entity::student::{Entity as Student, StudentStatus};
pub use crate::entity::student_photo::{Entity as StudentPhoto, PhotoVerdict};
pub use crate::entity::webhook::Entity as Webhook;
pub use crate::entity::webhook_attempt::Entity as WebhookAttempt;
pub use crate::entity::webhook_delivery::{DeliveryStatus, Entity as WebhookDelivery};
