//! Bulk registration batches: the ZIP is streamed into the blob store (never held in
//! memory), then the batch row and its unpacking job (bulk lane) are written in one
//! transaction and published. The worker unpacks it into one bulk registration per
//! student; the outcomes are read back here.

use std::sync::Arc;

use chrono::Utc;
use common::{BlobStore, JobKind, JobQueue};
use models::consent_entry::ConsentSource;
use models::registration_batch::{self, BatchStatus};
use models::registration_batch_item::{self, ItemStatus};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, QueryFilter, QueryOrder, TransactionTrait,
};
use tokio::io::{AsyncRead, AsyncReadExt};
use uuid::Uuid;

use super::{Accepted, consent::ConsentClaim, intake, scope::Scope};
use crate::{error::ServiceError, outbox};

/// The size limits of a batch (`BATCH_MAX_BYTES`, `BATCH_MAX_UNCOMPRESSED_BYTES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// The ZIP as uploaded.
    pub max_bytes: u64,
    /// The ZIP's content once unpacked (declared or actual).
    pub max_uncompressed_bytes: u64,
}

impl BatchLimits {
    pub fn from_config(config: &common::Config) -> BatchLimits {
        BatchLimits {
            max_bytes: config.batch_max_bytes,
            max_uncompressed_bytes: config.batch_max_uncompressed_bytes,
        }
    }
}

/// How a batch records its students' consent (each student's `students.csv` line may
/// give it with `consent` and `consent_note`).
#[derive(Debug, Clone)]
pub struct BatchConsent {
    /// The uploading API key; `None` for the command-line import.
    pub uploaded_by_key_id: Option<Uuid>,
    /// `batch` (an upload) or `cli` (the import).
    pub source: ConsentSource,
    /// `REQUIRE_CONSENT`: a student without consent is refused with a reason.
    pub required: bool,
    /// Consent for every student whose line does not say otherwise (the import's
    /// `--consent`).
    pub for_all: ConsentClaim,
}

/// Streams a ZIP from `reader` into the blob store and queues its unpacking. `class_id`
/// is the default class of its students (404 when not visible). With `queue` `None`
/// (the CLI beside an embedded-mode server) the job is left to the server's outbox
/// relay.
// The batch's context comes from several places (caller, configuration, request).
#[allow(clippy::too_many_arguments)]
pub async fn create(
    db: &DatabaseConnection,
    scope: &Scope,
    blobs: &Arc<dyn BlobStore>,
    queue: Option<&Arc<dyn JobQueue>>,
    limits: BatchLimits,
    class_id: Option<Uuid>,
    consent: &BatchConsent,
    reader: &mut (dyn AsyncRead + Send + Unpin),
) -> Result<Accepted, ServiceError> {
    let department = match (class_id, scope) {
        (Some(id), _) => Some(scope.class(db, id).await?.department),
        (None, Scope::Department(d)) => Some(d.clone()),
        (None, Scope::All) => None,
    };

    // Sniffed before anything is stored: a ZIP starts with a local file header (or,
    // empty, with the end of central directory).
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < magic.len() {
        let n = reader.read(&mut magic[got..]).await.map_err(|e| {
            ServiceError::invalid("unreadable_upload", format!("the file cannot be read: {e}"))
        })?;
        if n == 0 {
            break;
        }
        got += n;
    }
    if got < magic.len() || !(magic == *b"PK\x03\x04" || magic == *b"PK\x05\x06") {
        return Err(ServiceError::UnsupportedMediaType(
            "file is not a ZIP archive".into(),
        ));
    }

    let batch_id = Uuid::new_v4();
    let key = format!("batches/{batch_id}.zip");
    let mut body = (&magic[..]).chain(reader);
    let size = blobs.put_stream(&key, &mut body, "application/zip").await?;
    if size > limits.max_bytes {
        intake::discard(blobs, std::slice::from_ref(&key)).await;
        return Err(ServiceError::PayloadTooLarge(format!(
            "the batch is larger than {} MB",
            limits.max_bytes / (1024 * 1024)
        )));
    }

    let job_id = Uuid::new_v4();
    let now = Utc::now();
    let committed = async {
        let txn = db.begin().await?;
        registration_batch::ActiveModel {
            id: Set(batch_id),
            class_id: Set(class_id),
            department: Set(department),
            blob_key: Set(key.clone()),
            size_bytes: Set(size as i64),
            max_uncompressed_bytes: Set(limits.max_uncompressed_bytes.min(i64::MAX as u64) as i64),
            status: Set(BatchStatus::Queued),
            error: Set(None),
            job_id: Set(job_id),
            created_at: Set(now),
            updated_at: Set(now),
            finished_at: Set(None),
            uploaded_by_key_id: Set(consent.uploaded_by_key_id),
            consent_source: Set(consent.source),
            require_consent: Set(consent.required),
            consent_for_all: Set(consent.for_all.given),
            consent_note: Set(consent.for_all.note.clone()),
        }
        .insert(&txn)
        .await?;
        outbox::new_job(job_id, JobKind::RegistrationBatch, batch_id)
            .insert(&txn)
            .await?;
        txn.commit().await
    }
    .await;
    if let Err(e) = committed {
        intake::discard(blobs, std::slice::from_ref(&key)).await;
        return Err(e.into());
    }
    tracing::info!(%batch_id, %job_id, size, "registration batch stored");
    if let Some(queue) = queue {
        outbox::publish(
            db,
            queue.as_ref(),
            job_id,
            JobKind::RegistrationBatch,
            "request",
        )
        .await;
    }
    Ok(Accepted {
        subject_id: batch_id,
        job_id,
    })
}

/// How many of a batch's outcomes are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchCounts {
    pub total: u64,
    pub queued: u64,
    pub active: u64,
    pub failed: u64,
    pub rejected: u64,
    pub duplicates: u64,
    pub updated: u64,
}

impl BatchCounts {
    pub fn of(items: &[registration_batch_item::Model]) -> BatchCounts {
        let mut c = BatchCounts {
            total: items.len() as u64,
            ..BatchCounts::default()
        };
        for item in items {
            match item.status {
                ItemStatus::Queued => c.queued += 1,
                ItemStatus::Active => c.active += 1,
                ItemStatus::Failed => c.failed += 1,
                ItemStatus::Rejected => c.rejected += 1,
                ItemStatus::Duplicate => c.duplicates += 1,
            }
            c.updated += u64::from(item.updated);
        }
        c
    }
}

/// A batch with every outcome (students by roll number, then refused entries).
#[derive(Debug, Clone)]
pub struct BatchDetail {
    pub batch: registration_batch::Model,
    pub counts: BatchCounts,
    pub items: Vec<registration_batch_item::Model>,
}

/// The batch, if it exists and belongs to the caller's department.
pub async fn get(
    db: &impl ConnectionTrait,
    scope: &Scope,
    id: Uuid,
) -> Result<registration_batch::Model, ServiceError> {
    registration_batch::Entity::find_by_id(id)
        .one(db)
        .await?
        .filter(|b| match scope {
            Scope::All => true,
            Scope::Department(d) => b.department.as_deref() == Some(d.as_str()),
        })
        .ok_or(ServiceError::NotFound("batch"))
}

pub async fn detail(
    db: &impl ConnectionTrait,
    scope: &Scope,
    id: Uuid,
) -> Result<BatchDetail, ServiceError> {
    let batch = get(db, scope, id).await?;
    let mut items = registration_batch_item::Entity::find()
        .filter(registration_batch_item::Column::BatchId.eq(id))
        .order_by_asc(registration_batch_item::Column::RollNo)
        .order_by_asc(registration_batch_item::Column::Entry)
        .all(db)
        .await?;
    // Students first (by roll number), then the refusals.
    items.sort_by_key(|i| (i.student_id.is_none(), i.roll_no.clone(), i.entry.clone()));
    Ok(BatchDetail {
        counts: BatchCounts::of(&items),
        batch,
        items,
    })
}

/// The outcomes as CSV: `roll_no,name,status,reason,entry,updated,student_id,class_id,job_id`.
pub async fn report_csv(
    db: &impl ConnectionTrait,
    scope: &Scope,
    id: Uuid,
) -> Result<Vec<u8>, ServiceError> {
    let detail = detail(db, scope, id).await?;
    let mut out = csv::Writer::from_writer(Vec::new());
    let internal = |e: csv::Error| ServiceError::Internal(format!("CSV report: {e}"));
    out.write_record([
        "roll_no",
        "name",
        "status",
        "reason",
        "entry",
        "updated",
        "student_id",
        "class_id",
        "job_id",
    ])
    .map_err(internal)?;
    let opt = |v: &Option<Uuid>| v.map(|u| u.to_string()).unwrap_or_default();
    for item in &detail.items {
        out.write_record([
            item.roll_no.clone().unwrap_or_default(),
            item.name.clone().unwrap_or_default(),
            item_status(item.status).to_string(),
            item.reason.clone().unwrap_or_default(),
            item.entry.clone().unwrap_or_default(),
            item.updated.to_string(),
            opt(&item.student_id),
            opt(&item.class_id),
            opt(&item.job_id),
        ])
        .map_err(internal)?;
    }
    out.into_inner()
        .map_err(|e| ServiceError::Internal(format!("CSV report: {e}")))
}

pub fn item_status(status: ItemStatus) -> &'static str {
    match status {
        ItemStatus::Queued => "queued",
        ItemStatus::Active => "active",
        ItemStatus::Failed => "failed",
        ItemStatus::Rejected => "rejected",
        ItemStatus::Duplicate => "duplicate",
    }
}
