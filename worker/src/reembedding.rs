//! Scheduling the re-embedding after a `FACE_MODEL` switch: every registered student
//! whose photos have no embedding of the active model gets one `reembed` job on the
//! bulk lane.
//!
//! Outbox pattern, as the API does it: the job rows are inserted in one transaction,
//! published after the commit, and `published_at` recorded; a message that could not
//! be published is left to the API's outbox relay, which publishes every `queued` row
//! it finds (so in embedded mode a row written by the CLI reaches the API's in-process
//! queue that way).
//!
//! Runs at the start of every process that runs with a model (`attendance-worker run`,
//! the API's in-process worker) and from `attendance-worker reembed`. Running it twice,
//! or in two processes at once, at worst queues a duplicate job for a student, which
//! rewrites the same rows.

use std::collections::HashSet;

use chrono::Utc;
use common::job::result::JobResult;
use common::{JobKind, JobMessage, JobQueue};
use models::face_embedding;
use models::job::{self, JobStatus};
use models::student::{self, StudentStatus};
use models::student_photo;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait, sea_query::Expr,
};
use uuid::Uuid;

/// What one scheduling pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scheduled {
    /// The jobs created now, in roll order of their students.
    pub created: Vec<Uuid>,
    /// Jobs for this model already queued or running (not created again).
    pub pending: Vec<Uuid>,
    /// How many of the created jobs the queue took now (the rest wait for the relay).
    pub published: usize,
}

impl Scheduled {
    /// Every job a caller waiting for the re-embedding should watch.
    pub fn all(&self) -> Vec<Uuid> {
        self.created.iter().chain(&self.pending).copied().collect()
    }
}

/// The students needing re-embedding with `model`: registered (`active`, or set
/// `inactive` by an admin, so that reactivating them needs nothing more), with at least
/// one registration photo, no embedding of `model`, no `reembed` job queued or running,
/// and no re-embedding with `model` that already succeeded (one that found no usable
/// photo is not retried forever; those students need new photos).
/// Returns them (in roll order) and the pending jobs.
pub async fn students_to_reembed(
    db: &impl ConnectionTrait,
    model: &str,
) -> Result<(Vec<Uuid>, Vec<Uuid>), DbErr> {
    let registered: Vec<Uuid> = student::Entity::find()
        .select_only()
        .column(student::Column::Id)
        .filter(student::Column::Status.is_in([StudentStatus::Active, StudentStatus::Inactive]))
        .order_by_asc(student::Column::ClassId)
        .order_by_asc(student::Column::RollNo)
        .into_tuple()
        .all(db)
        .await?;
    if registered.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let with_photos: HashSet<Uuid> = student_photo::Entity::find()
        .select_only()
        .column(student_photo::Column::StudentId)
        .distinct()
        .into_tuple::<Uuid>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let embedded: HashSet<Uuid> = face_embedding::Entity::find()
        .select_only()
        .column(face_embedding::Column::StudentId)
        .distinct()
        .filter(face_embedding::Column::Model.eq(model))
        .into_tuple::<Uuid>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let reembed_jobs = job::Entity::find()
        .filter(job::Column::Kind.eq(JobKind::Reembed))
        .filter(job::Column::Status.is_in([
            JobStatus::Queued,
            JobStatus::Running,
            JobStatus::Succeeded,
        ]))
        .all(db)
        .await?;
    let mut pending = Vec::new();
    let mut covered = HashSet::new();
    for j in &reembed_jobs {
        match j.status {
            JobStatus::Queued | JobStatus::Running => {
                covered.insert(j.subject_id);
                pending.push(j.id);
            }
            _ => {
                let done_for_model = j
                    .result
                    .as_ref()
                    .and_then(JobResult::from_stored)
                    .is_some_and(|r| matches!(r, JobResult::Reembed(r) if r.model == model));
                if done_for_model {
                    covered.insert(j.subject_id);
                }
            }
        }
    }
    let students = registered
        .into_iter()
        .filter(|id| with_photos.contains(id) && !embedded.contains(id) && !covered.contains(id))
        .collect();
    Ok((students, pending))
}

/// Creates the `reembed` jobs `model` needs (one transaction), then publishes them on
/// the bulk lane. A publish that fails is logged and left to the outbox relay.
pub async fn schedule(
    db: &DatabaseConnection,
    queue: Option<&dyn JobQueue>,
    model: &str,
) -> Result<Scheduled, DbErr> {
    let (students, pending) = students_to_reembed(db, model).await?;
    let mut scheduled = Scheduled {
        pending,
        ..Scheduled::default()
    };
    if students.is_empty() {
        tracing::info!(
            model,
            pending = scheduled.pending.len(),
            "no student needs re-embedding"
        );
        return Ok(scheduled);
    }
    let txn = db.begin().await?;
    let now = Utc::now();
    for &student_id in &students {
        let id = Uuid::new_v4();
        job::Entity::insert(job::ActiveModel {
            id: Set(id),
            kind: Set(JobKind::Reembed),
            lane: Set(JobKind::Reembed.lane()),
            status: Set(JobStatus::Queued),
            progress: Set(0.0),
            attempts: Set(0),
            error: Set(None),
            result: Set(None),
            subject_id: Set(student_id),
            created_at: Set(now),
            updated_at: Set(now),
            published_at: Set(None),
            started_at: Set(None),
            finished_at: Set(None),
            lease_until: Set(None),
            interrupted_runs: Set(0),
        })
        .exec_without_returning(&txn)
        .await?;
        scheduled.created.push(id);
    }
    txn.commit().await?;
    tracing::info!(
        model,
        jobs = scheduled.created.len(),
        "re-embedding scheduled on the bulk lane"
    );
    if let Some(queue) = queue {
        for &id in &scheduled.created {
            let message = JobMessage::new(id, JobKind::Reembed);
            match queue.publish(message.lane(), &message).await {
                Ok(()) => {
                    scheduled.published += 1;
                    // Failing to record it only costs a duplicate publish by the relay.
                    if let Err(e) = job::Entity::update_many()
                        .col_expr(job::Column::PublishedAt, Expr::value(Utc::now()))
                        .filter(job::Column::Id.eq(id))
                        .exec(db)
                        .await
                    {
                        tracing::warn!(job_id = %id, error = %e, "published_at not recorded");
                    }
                }
                Err(e) => {
                    tracing::warn!(job_id = %id, error = %e, "re-embedding job not published; the outbox relay will retry");
                    break;
                }
            }
        }
    }
    Ok(scheduled)
}

/// Where a set of jobs stands.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    pub total: usize,
    pub succeeded: usize,
    /// Failed jobs with their error.
    pub failed: Vec<(Uuid, String)>,
    /// Sum of the jobs' progress (0..=total), for a progress bar.
    pub progress: f64,
}

impl Tally {
    pub fn finished(&self) -> usize {
        self.succeeded + self.failed.len()
    }

    pub fn done(&self) -> bool {
        self.finished() == self.total
    }
}

/// Reads the rows of `jobs` once (a job row deleted meanwhile counts as failed).
pub async fn tally(db: &impl ConnectionTrait, jobs: &[Uuid]) -> Result<Tally, DbErr> {
    let mut tally = Tally {
        total: jobs.len(),
        ..Tally::default()
    };
    // In chunks: a school's worth of ids would exceed a single IN list's limits.
    let mut seen = HashSet::new();
    for chunk in jobs.chunks(500) {
        for row in job::Entity::find()
            .filter(job::Column::Id.is_in(chunk.iter().copied()))
            .all(db)
            .await?
        {
            seen.insert(row.id);
            match row.status {
                JobStatus::Succeeded => {
                    tally.succeeded += 1;
                    tally.progress += 1.0;
                }
                JobStatus::Failed => {
                    tally.progress += 1.0;
                    tally
                        .failed
                        .push((row.id, row.error.unwrap_or_else(|| "failed".into())));
                }
                _ => tally.progress += row.progress.clamp(0.0, 1.0),
            }
        }
    }
    for id in jobs.iter().filter(|id| !seen.contains(id)) {
        tally.progress += 1.0;
        tally.failed.push((*id, "job row deleted".into()));
    }
    Ok(tally)
}

/// Polls the rows of `jobs` every `interval` until all are finished, calling
/// `on_tally` after each read; returns the final tally.
pub async fn wait_for(
    db: &impl ConnectionTrait,
    jobs: &[Uuid],
    interval: std::time::Duration,
    mut on_tally: impl FnMut(&Tally),
) -> Result<Tally, DbErr> {
    loop {
        let now = tally(db, jobs).await?;
        on_tally(&now);
        if now.done() {
            return Ok(now);
        }
        tokio::time::sleep(interval).await;
    }
}
