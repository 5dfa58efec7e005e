//! `jobs`: the transactional outbox and the job status clients poll.
//!
//! The row is inserted in the same transaction as the rows it concerns; the API
//! publishes after commit and sets `published_at`; a relay republishes rows still
//! `queued` whose `published_at` is null or old.
//!
//! A worker runs a job only after claiming it with one conditional update
//! (`queued`, or `running` under an expired lease → `running`, `attempts + 1`); every
//! later write of the run is conditional on that claim, so a runner that lost it can
//! change nothing.

pub use common::job::{JobKind, Lane};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    #[sea_orm(string_value = "queued")]
    Queued,
    #[sea_orm(string_value = "running")]
    Running,
    #[sea_orm(string_value = "succeeded")]
    Succeeded,
    #[sea_orm(string_value = "failed")]
    Failed,
}

impl JobStatus {
    /// Succeeded and failed jobs are never run again.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Failed)
    }
}

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub kind: JobKind,
    /// The queue the job is published to (the kind's lane when it was queued).
    pub lane: Lane,
    pub status: JobStatus,
    /// 0.0 ..= 1.0
    pub progress: f64,
    pub attempts: i32,
    /// Readable reason of the last failure.
    pub error: Option<String>,
    /// Handler output shown by `GET /jobs/{id}`: a `common::job::result::JobResult`,
    /// kept as JSON so that a result this build cannot read never fails the row.
    pub result: Option<Json>,
    // The table's nullable `idempotency_key` column (first migration) is not mapped:
    // nothing sets it yet; idempotent uploads will.
    /// The student (registration) or session (attendance) the job works on.
    pub subject_id: Uuid,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub published_at: Option<DateTimeUtc>,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    /// While `running`: until when the runner that claimed the job holds it. The runner
    /// renews it as it works; once it has passed, the runner is taken for dead and
    /// another may claim the job. `attempts` identifies the claim: every claim
    /// increments it, and a runner's writes are conditional on the value it claimed.
    pub lease_until: Option<DateTimeUtc>,
    /// Runs that ended with their runner's death (killed, out of memory) rather than
    /// with an error; counted when the job is claimed again.
    pub interrupted_runs: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
