//! Versioned job messages: what the API publishes and the worker consumes.
//!
//! The message carries only the job id and its kind; everything else lives in the job
//! row, so a message is small, idempotent to redeliver, and never stale.
//!
//! [`JobKind`] and [`Lane`] are also the typed `kind` and `lane` columns of the job
//! row, and [`result`] the typed shape of its `result` column: the API (which publishes
//! and reports jobs) and the worker (which runs them) share one definition.

pub mod result;

use sea_orm::{DeriveActiveEnum, EnumIter, sea_query::StringLen};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::queue::QueueError;

/// The message format version this build writes and accepts.
pub const JOB_MESSAGE_VERSION: u32 = 1;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct JobMessage {
    pub version: u32,
    pub job_id: Uuid,
    pub kind: JobKind,
}

/// What a job does: its name on the wire and in the `jobs.kind` column, and (through
/// [`JobKind::lane`]) the queue it travels on. The lane is decided here rather than in
/// the worker's job type because the API publishes without running (or even linking)
/// the worker.
///
/// Adding a kind: the variant with its `string_value`, its arm in `lane`, `ALL`, and a
/// job type in the worker (`worker/src/jobs/<kind>.rs` + one registry line, which the
/// compiler asks for). Older workers dead-letter kinds they do not know.
#[derive(
    Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum,
)]
#[serde(rename_all = "snake_case")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
#[cfg_attr(feature = "openapi", oai(rename_all = "snake_case"))]
pub enum JobKind {
    /// One student's registration photos → embeddings.
    #[sea_orm(string_value = "registration")]
    Registration,
    /// A class session's photos → attendance records.
    #[sea_orm(string_value = "attendance")]
    Attendance,
    /// One student's stored registration photos → embeddings of the active face model
    /// (after `FACE_MODEL` changed). Bulk: never in front of a teacher's session.
    #[sea_orm(string_value = "reembed")]
    Reembed,
    /// A registration batch's ZIP → one student (rows + photos) and one
    /// `bulk_registration` job per roll number, and a report line per refused entry.
    #[sea_orm(string_value = "registration_batch")]
    RegistrationBatch,
    /// One student of a registration batch: the same work as `registration`, on the
    /// bulk lane, and the batch's outcome updated in the same transaction.
    #[sea_orm(string_value = "bulk_registration")]
    BulkRegistration,
    /// The day's retention run (`RETENTION_DAYS`): photos of old sessions and the crops
    /// of their unknown faces deleted. Its own subject (it concerns no one row).
    #[sea_orm(string_value = "retention")]
    Retention,
}

/// Separate queues so that an overnight batch never delays a teacher waiting on a photo.
#[derive(
    Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum,
)]
#[serde(rename_all = "snake_case")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
#[cfg_attr(feature = "openapi", oai(rename_all = "snake_case"))]
pub enum Lane {
    /// A person is waiting on the result (attendance, single registrations).
    #[sea_orm(string_value = "interactive")]
    Interactive,
    /// Batches that may take a while (re-embedding, registration batches, webhooks).
    #[sea_orm(string_value = "bulk")]
    Bulk,
}

impl JobKind {
    pub const ALL: [JobKind; 6] = [
        JobKind::Registration,
        JobKind::Attendance,
        JobKind::Reembed,
        JobKind::RegistrationBatch,
        JobKind::BulkRegistration,
        JobKind::Retention,
    ];

    /// The queue this kind is published to.
    pub const fn lane(&self) -> Lane {
        match self {
            JobKind::Registration | JobKind::Attendance => Lane::Interactive,
            JobKind::Reembed
            | JobKind::RegistrationBatch
            | JobKind::BulkRegistration
            | JobKind::Retention => Lane::Bulk,
        }
    }

    /// The wire and database name, identical to the serde name.
    pub fn as_str(&self) -> &'static str {
        match self {
            JobKind::Registration => "registration",
            JobKind::Attendance => "attendance",
            JobKind::Reembed => "reembed",
            JobKind::RegistrationBatch => "registration_batch",
            JobKind::BulkRegistration => "bulk_registration",
            JobKind::Retention => "retention",
        }
    }

    /// Inverse of [`JobKind::as_str`] (for reading the kind column of a job row).
    pub fn parse(s: &str) -> Option<JobKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Lane {
    /// Interactive first: the order in which a consumer serves lanes that both have work.
    pub const ALL: [Lane; 2] = [Lane::Interactive, Lane::Bulk];

    /// Base queue name (before any test prefix).
    pub fn queue_name(&self) -> &'static str {
        match self {
            Lane::Interactive => "jobs.interactive",
            Lane::Bulk => "jobs.bulk",
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Lane::Interactive => "interactive",
            Lane::Bulk => "bulk",
        }
    }

    pub fn parse(s: &str) -> Option<Lane> {
        Self::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

impl std::fmt::Display for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl JobMessage {
    /// A current-version message for a job.
    pub fn new(job_id: Uuid, kind: JobKind) -> Self {
        Self {
            version: JOB_MESSAGE_VERSION,
            job_id,
            kind,
        }
    }

    /// The lane this message is published to.
    pub fn lane(&self) -> Lane {
        self.kind.lane()
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a JobMessage always serialises")
    }

    /// Decodes a payload; an unknown version or kind, or anything that is not a job
    /// message, is an error (the worker dead-letters it at once).
    pub fn decode(payload: &[u8]) -> Result<JobMessage, QueueError> {
        // Look at the version first so that a newer format is reported as such rather
        // than as whatever field it happens to break.
        #[derive(Deserialize)]
        struct Envelope {
            version: u32,
        }
        let Envelope { version } = serde_json::from_slice(payload).map_err(QueueError::Decode)?;
        if version != JOB_MESSAGE_VERSION {
            return Err(QueueError::UnsupportedVersion { version });
        }
        serde_json::from_slice(payload).map_err(QueueError::Decode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wire_format() {
        let id = Uuid::parse_str("5f3c1c8e-0c9a-4a57-9d1e-2f7f5b8c9a10").unwrap();
        let msg = JobMessage::new(id, JobKind::Attendance);
        let json = String::from_utf8(msg.encode()).unwrap();
        assert_eq!(
            json,
            r#"{"version":1,"job_id":"5f3c1c8e-0c9a-4a57-9d1e-2f7f5b8c9a10","kind":"attendance"}"#
        );
        assert_eq!(JobMessage::decode(json.as_bytes()).unwrap(), msg);
    }

    #[test]
    fn unknown_version_kind_and_garbage_are_errors() {
        let v2 =
            br#"{"version":2,"job_id":"5f3c1c8e-0c9a-4a57-9d1e-2f7f5b8c9a10","kind":"attendance"}"#;
        assert!(matches!(
            JobMessage::decode(v2),
            Err(QueueError::UnsupportedVersion { version: 2 })
        ));
        let kind =
            br#"{"version":1,"job_id":"5f3c1c8e-0c9a-4a57-9d1e-2f7f5b8c9a10","kind":"teleport"}"#;
        assert!(matches!(
            JobMessage::decode(kind),
            Err(QueueError::Decode(_))
        ));
        assert!(matches!(
            JobMessage::decode(b"\x00\xff"),
            Err(QueueError::Decode(_))
        ));
        assert!(matches!(
            JobMessage::decode(b"{}"),
            Err(QueueError::Decode(_))
        ));
    }

    #[test]
    fn kinds_and_lanes_have_stable_names() {
        for kind in JobKind::ALL {
            assert_eq!(JobKind::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        assert_eq!(JobKind::Attendance.lane(), Lane::Interactive);
        assert_eq!(JobKind::Registration.lane(), Lane::Interactive);
        assert_eq!(JobKind::Reembed.lane(), Lane::Bulk);
        assert_eq!(JobKind::RegistrationBatch.lane(), Lane::Bulk);
        assert_eq!(JobKind::BulkRegistration.lane(), Lane::Bulk);
        assert_eq!(JobKind::Retention.lane(), Lane::Bulk);
        assert_eq!(Lane::Interactive.queue_name(), "jobs.interactive");
        assert_eq!(Lane::Bulk.queue_name(), "jobs.bulk");
        assert_eq!(Lane::parse("bulk"), Some(Lane::Bulk));
    }

    #[test]
    fn database_values_are_the_wire_names() {
        use sea_orm::{ActiveEnum, Iterable};
        assert_eq!(JobKind::iter().count(), JobKind::ALL.len());
        for kind in JobKind::iter() {
            assert_eq!(kind.to_value(), kind.as_str());
            assert_eq!(
                JobKind::try_from_value(&kind.as_str().to_string()).ok(),
                Some(kind)
            );
        }
        for lane in Lane::iter() {
            assert_eq!(lane.to_value(), lane.as_str());
            assert_eq!(serde_json::to_value(lane).unwrap(), lane.as_str());
        }
    }
}
