//! The common path of an accepted upload: photos into the blob store, rows and the job
//! row in one transaction, publish after commit (beside the answer, not before it). A
//! failed transaction removes the photos it stored, so nothing is left half-written.

use std::sync::Arc;

use common::{BlobStore, JobKind, JobQueue};
use sea_orm::{ActiveModelTrait, DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};
use tracing::Instrument;
use uuid::Uuid;

use crate::{error::ServiceError, outbox, upload::ValidatedPhoto};

/// A validated photo and the blob key it goes to.
pub struct PlacedPhoto {
    pub id: Uuid,
    pub key: String,
    pub photo: ValidatedPhoto,
}

/// Gives each photo an id and a key `<prefix>/<owner_id>/<photo_id>.<ext>`.
pub fn place(prefix: &str, owner_id: Uuid, photos: Vec<ValidatedPhoto>) -> Vec<PlacedPhoto> {
    photos
        .into_iter()
        .map(|photo| {
            let id = Uuid::new_v4();
            let key = format!("{prefix}/{owner_id}/{id}.{}", photo.extension());
            PlacedPhoto { id, key, photo }
        })
        .collect()
}

/// Stores the photos, then runs `write` (which inserts the subject's rows) and inserts
/// the `kind` job for `subject_id` in one transaction, commits, and has the job
/// published in the background.
/// On any failure before commit the stored photos are deleted again.
pub async fn accept<W>(
    db: &DatabaseConnection,
    blobs: &Arc<dyn BlobStore>,
    queue: &Arc<dyn JobQueue>,
    photos: &[PlacedPhoto],
    kind: JobKind,
    subject_id: Uuid,
    write: W,
) -> Result<Uuid, ServiceError>
where
    W: AsyncFnOnce(&DatabaseTransaction) -> Result<(), DbErr>,
{
    let mut stored = Vec::with_capacity(photos.len());
    for p in photos {
        if let Err(e) = blobs
            .put(&p.key, p.photo.bytes.clone(), p.photo.content_type())
            .await
        {
            discard(blobs, &stored).await;
            return Err(e.into());
        }
        stored.push(p.key.clone());
    }

    let job_id = Uuid::new_v4();
    let committed = async {
        let txn = db.begin().await?;
        write(&txn).await?;
        outbox::new_job(job_id, kind, subject_id)
            .insert(&txn)
            .await?;
        txn.commit().await
    }
    .await;
    if let Err(e) = committed {
        discard(blobs, &stored).await;
        return Err(e.into());
    }

    // The job row is committed, so the job cannot be lost: the answer does not wait
    // for the broker's confirm. A publish that never happens (the process dies, the
    // broker is down) is the outbox relay's to redo.
    let (db, queue) = (db.clone(), Arc::clone(queue));
    tokio::spawn(
        async move { outbox::publish(&db, queue.as_ref(), job_id, kind, "request").await }
            .instrument(tracing::Span::current()),
    );
    Ok(job_id)
}

/// Best-effort removal of blobs no row refers to (any failure is logged: an orphaned
/// blob is harmless, a dangling row is not).
pub async fn discard(blobs: &Arc<dyn BlobStore>, keys: &[String]) {
    for key in keys {
        if let Err(e) = blobs.delete(key).await {
            tracing::warn!(key, error = %e, "could not delete an orphaned blob");
        }
    }
}
