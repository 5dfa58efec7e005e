//! Filesystem blob store: one file per key under a root directory.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::AsyncRead;

use super::{BlobError, BlobStore, validate_key};

#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    /// Opens (creating if needed) the directory `root`, relative to the working
    /// directory unless absolute.
    pub async fn open(root: impl AsRef<Path>) -> Result<FsBlobStore, BlobError> {
        let root = root.as_ref().to_path_buf();
        if root.as_os_str().is_empty() {
            return Err(BlobError::InvalidUrl {
                url: "file://".into(),
                reason: "empty path".into(),
            });
        }
        tokio::fs::create_dir_all(&root)
            .await
            .map_err(|e| BlobError::unavailable(format!("create {}", root.display()), e))?;
        Ok(FsBlobStore { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &str) -> Result<PathBuf, BlobError> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }
}

impl FsBlobStore {
    /// Writes what `reader` yields to a temporary sibling of `key`'s file and renames it
    /// over the target, so that readers see the old or the new file and a crash never
    /// leaves a truncated photo behind. Returns the bytes written.
    async fn write_atomically(
        &self,
        key: &str,
        reader: &mut (dyn AsyncRead + Send + Unpin),
    ) -> Result<u64, BlobError> {
        let path = self.path_of(key)?;
        let dir = path.parent().expect("a joined key has a parent");
        let op = |what: &str| format!("{what} {}", path.display());
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| BlobError::unavailable(op("create directory for"), e))?;
        let file_name = path.file_name().expect("a key has a file name");
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            file_name.to_string_lossy(),
            uuid::Uuid::new_v4().simple()
        ));
        let write = async {
            let mut file = tokio::fs::File::create(&tmp).await?;
            let len = tokio::io::copy(reader, &mut file).await?;
            file.sync_all().await?;
            tokio::fs::rename(&tmp, &path).await?;
            Ok::<u64, std::io::Error>(len)
        };
        match write.await {
            Ok(len) => Ok(len),
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(BlobError::unavailable(op("write"), e))
            }
        }
    }
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn put(&self, key: &str, bytes: Bytes, _content_type: &str) -> Result<(), BlobError> {
        self.write_atomically(key, &mut &bytes[..]).await?;
        Ok(())
    }

    async fn put_stream(
        &self,
        key: &str,
        reader: &mut (dyn AsyncRead + Send + Unpin),
        _content_type: &str,
    ) -> Result<u64, BlobError> {
        self.write_atomically(key, reader).await
    }

    async fn get_to_file(&self, key: &str, dest: &Path) -> Result<u64, BlobError> {
        let path = self.path_of(key)?;
        match tokio::fs::copy(&path, dest).await {
            Ok(len) => Ok(len),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !path.exists() => {
                Err(BlobError::NotFound(key.to_string()))
            }
            Err(e) => Err(BlobError::unavailable(
                format!("copy {} to {}", path.display(), dest.display()),
                e,
            )),
        }
    }

    async fn get(&self, key: &str) -> Result<Bytes, BlobError> {
        let path = self.path_of(key)?;
        match tokio::fs::read(&path).await {
            Ok(data) => Ok(Bytes::from(data)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(BlobError::NotFound(key.to_string()))
            }
            // A key that names a directory ("photos" when "photos/a.jpg" exists) is no blob.
            Err(_) if path.is_dir() => Err(BlobError::NotFound(key.to_string())),
            Err(e) => Err(BlobError::unavailable(
                format!("read {}", path.display()),
                e,
            )),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        let path = self.path_of(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(BlobError::unavailable(
                format!("delete {}", path.display()),
                e,
            )),
        }
    }

    async fn check(&self) -> Result<(), BlobError> {
        // Writing and removing a probe catches a missing, read-only or full volume,
        // which a mere metadata check would not.
        let probe = self
            .root
            .join(format!(".ready.{}.tmp", uuid::Uuid::new_v4().simple()));
        let op = format!("readiness probe in {}", self.root.display());
        tokio::fs::write(&probe, b"ok")
            .await
            .map_err(|e| BlobError::unavailable(op.clone(), e))?;
        tokio::fs::remove_file(&probe)
            .await
            .map_err(|e| BlobError::unavailable(op, e))
    }
}
