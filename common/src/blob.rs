//! Object storage for photos and face crops: one small trait, a filesystem and an S3
//! implementation, picked by URL.

mod fs;
mod key;
mod s3;

use std::{path::Path, sync::Arc};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

pub use fs::FsBlobStore;
pub use key::validate_key;
pub use s3::{MULTIPART_PART_BYTES, S3BlobStore, S3Options};

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob {0:?} not found")]
    NotFound(String),
    #[error("invalid blob key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("invalid storage URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// The store cannot be reached or refused the operation for a reason that may pass
    /// (network, permissions, full disk): callers answer 503 or retry later.
    #[error("blob store unavailable during {operation}")]
    Unavailable {
        operation: String,
        #[source]
        source: BoxError,
    },
}

impl BlobError {
    pub(crate) fn unavailable(
        operation: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> BlobError {
        BlobError::Unavailable {
            operation: operation.into(),
            source: source.into(),
        }
    }
}

#[async_trait]
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    /// Stores `bytes` under `key`, replacing any previous value atomically (readers see
    /// the old or the new object, never a partial one).
    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> Result<(), BlobError>;
    /// Reads a whole object; [`BlobError::NotFound`] when absent.
    async fn get(&self, key: &str) -> Result<Bytes, BlobError>;
    /// Removes an object; deleting a missing key succeeds.
    async fn delete(&self, key: &str) -> Result<(), BlobError>;
    /// Readiness probe: the store is reachable and usable.
    async fn check(&self) -> Result<(), BlobError>;

    /// Stores everything `reader` yields under `key`, as [`BlobStore::put`] does, and
    /// returns the number of bytes. The filesystem and S3 stores stream (a temporary
    /// file renamed into place; a multipart upload), so an upload of any size never
    /// sits in memory; this default, for other implementations, reads it all first.
    async fn put_stream(
        &self,
        key: &str,
        reader: &mut (dyn AsyncRead + Send + Unpin),
        content_type: &str,
    ) -> Result<u64, BlobError> {
        let mut buf = Vec::new();
        reader
            .read_to_end(&mut buf)
            .await
            .map_err(|e| BlobError::unavailable(format!("read the upload for {key}"), e))?;
        let len = buf.len() as u64;
        self.put(key, Bytes::from(buf), content_type).await?;
        Ok(len)
    }

    /// Copies an object into the local file `dest` (created or truncated) and returns
    /// its size; [`BlobError::NotFound`] when absent. The filesystem and S3 stores
    /// stream; this default reads the object whole.
    async fn get_to_file(&self, key: &str, dest: &Path) -> Result<u64, BlobError> {
        let bytes = self.get(key).await?;
        let op = || format!("write {}", dest.display());
        let mut file = tokio::fs::File::create(dest)
            .await
            .map_err(|e| BlobError::unavailable(op(), e))?;
        file.write_all(&bytes)
            .await
            .map_err(|e| BlobError::unavailable(op(), e))?;
        file.flush()
            .await
            .map_err(|e| BlobError::unavailable(op(), e))?;
        Ok(bytes.len() as u64)
    }
}

/// Opens the store a `STORAGE_URL` names:
/// - `file://relative/path`, `file:///absolute/path`
/// - `s3://bucket[/key-prefix]?region=..&endpoint=http://host:9000&access_key=..&secret_key=..`
///
/// Nothing is created remotely (see [`S3BlobStore::ensure_bucket`]); the filesystem
/// root directory is created if missing.
pub async fn open_blob_store(url: &str) -> Result<Arc<dyn BlobStore>, BlobError> {
    if let Some(path) = url.strip_prefix("file://") {
        Ok(Arc::new(FsBlobStore::open(path).await?))
    } else if url.starts_with("s3://") {
        let options = S3Options::from_url(url)?;
        Ok(Arc::new(S3BlobStore::connect(options).await?))
    } else {
        Err(BlobError::InvalidUrl {
            url: url.to_string(),
            reason: "expected file:// or s3://".into(),
        })
    }
}
