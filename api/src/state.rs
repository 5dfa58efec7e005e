//! What every handler and background task shares.

use std::sync::Arc;

use common::{BlobStore, Clock, JobQueue};
use sea_orm::DatabaseConnection;

#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub blobs: Arc<dyn BlobStore>,
    pub queue: Arc<dyn JobQueue>,
    /// The UTC offset of photos' EXIF times that carry none (`EXIF_UTC_OFFSET`).
    pub exif_utc_offset: chrono::FixedOffset,
    /// "Now" for what depends on the date (a session's upload time, the retention
    /// schedule); the system clock but in tests.
    pub clock: Arc<dyn Clock>,
    /// `RETENTION_DAYS`, `REQUIRE_CONSENT`.
    pub privacy: common::config::PrivacySettings,
}
