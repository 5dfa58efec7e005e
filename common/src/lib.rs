//! What the API and the worker share: configuration, job messages, the blob-store and
//! job-queue abstractions with their real implementations, and telemetry setup.
//!
//! Each concern is one small trait with real implementations behind it, chosen at run
//! time from a URL, so that the embedded default (filesystem + in-process queue) and
//! production (S3 + RabbitMQ) run the same code.

pub mod blob;
pub mod clock;
pub mod config;
pub mod error_chain;
pub mod face_model;
pub mod image_limits;
pub mod job;
pub mod queue;
pub mod retention;
pub mod session_warning;
pub mod shutdown;
pub mod telemetry;
pub mod webhook_address;

pub use blob::{BlobError, BlobStore, open_blob_store};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Config, ConfigError, PrivacySettings, ServerLimits};
pub use error_chain::error_chain;
pub use face_model::{Detector, FaceModel};
pub use job::{JobKind, JobMessage, Lane};
pub use queue::{Delivery, JobConsumer, JobQueue, QueueError, open_queue};
pub use session_warning::{SessionWarning, SessionWarningCode};
