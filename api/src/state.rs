//! What every handler and background task shares.

use std::sync::Arc;

use common::{BlobStore, JobQueue};
use sea_orm::DatabaseConnection;

#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub blobs: Arc<dyn BlobStore>,
    pub queue: Arc<dyn JobQueue>,
}
