//! What a finished job produced: the worker stores it in `jobs.result` (JSON) and
//! `GET /jobs/{id}` reports it. One definition for both sides, so the stored JSON and
//! the OpenAPI document cannot drift apart (the `openapi` feature derives the schema).
//!
//! The JSON is internally tagged by `type`: `{"type": "registration", "accepted": 2, …}`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A job's result, by what the job did.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Union))]
#[cfg_attr(feature = "openapi", oai(discriminator_name = "type", one_of))]
pub enum JobResult {
    #[cfg_attr(feature = "openapi", oai(mapping = "registration"))]
    Registration(RegistrationResult),
    #[cfg_attr(feature = "openapi", oai(mapping = "attendance"))]
    Attendance(AttendanceResult),
    #[cfg_attr(feature = "openapi", oai(mapping = "reembed"))]
    Reembed(ReembedResult),
    #[cfg_attr(feature = "openapi", oai(mapping = "registration_batch"))]
    RegistrationBatch(BatchUnpackResult),
    #[cfg_attr(feature = "openapi", oai(mapping = "retention"))]
    Retention(RetentionResult),
    /// The job's student or session was deleted before it ran: nothing was done.
    #[cfg_attr(feature = "openapi", oai(mapping = "skipped"))]
    Skipped(SkippedResult),
}

impl JobResult {
    /// Reads a stored result; `None` for JSON this build does not know (rows written
    /// before results were typed, or by a newer worker).
    pub fn from_stored(value: &serde_json::Value) -> Option<JobResult> {
        serde_json::from_value(value.clone()).ok()
    }

    /// The JSON stored in `jobs.result`.
    pub fn to_stored(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a JobResult always serialises")
    }
}

impl From<RegistrationResult> for JobResult {
    fn from(r: RegistrationResult) -> Self {
        JobResult::Registration(r)
    }
}

impl From<AttendanceResult> for JobResult {
    fn from(r: AttendanceResult) -> Self {
        JobResult::Attendance(r)
    }
}

impl From<ReembedResult> for JobResult {
    fn from(r: ReembedResult) -> Self {
        JobResult::Reembed(r)
    }
}

/// A retention run (`RETENTION_DAYS`): the sessions uploaded before `cutoff` whose
/// photos, and the crops and descriptors of whose unknown faces, were deleted.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct RetentionResult {
    pub retention_days: u32,
    /// Sessions uploaded before this instant were due.
    pub cutoff: DateTime<Utc>,
    /// Sessions whose photos were deleted by this run.
    pub sessions: u32,
    /// Session photos deleted.
    pub photos_deleted: u32,
    /// Crops (with descriptors) of faces that matched nobody, deleted.
    pub crops_deleted: u32,
    /// Due sessions whose faces kept changing during the run (a person correcting them):
    /// left for the next run.
    pub left_for_next_run: u32,
}

impl From<RetentionResult> for JobResult {
    fn from(r: RetentionResult) -> Self {
        JobResult::Retention(r)
    }
}

/// A registration batch unpacked: how many students were queued for registration
/// (on the bulk lane) and how many entries were refused. Per-student outcomes are at
/// `GET /students/batches/{batch_id}`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct BatchUnpackResult {
    pub batch_id: Uuid,
    /// Students whose registration was queued.
    pub students: u32,
    /// Of those, students that existed already (updated, not duplicated).
    pub updated: u32,
    /// Entries and manifest lines refused (each with its reason in the batch report).
    pub rejected: u32,
    /// Why the archive as a whole was refused, when it was.
    pub error: Option<String>,
}

impl From<BatchUnpackResult> for JobResult {
    fn from(r: BatchUnpackResult) -> Self {
        JobResult::RegistrationBatch(r)
    }
}

/// One student's registration photos embedded again with the active face model.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct ReembedResult {
    pub student_id: Uuid,
    /// The face model the new embeddings belong to.
    pub model: String,
    /// The models the student had embeddings of before (left untouched).
    pub previous_models: Vec<String>,
    /// Photos accepted (and embedded) by this model.
    pub accepted: u32,
    pub rejected: u32,
    /// This model's verdict per photo, oldest first (the photos' stored verdicts now
    /// describe this model).
    pub photos: Vec<PhotoCheck>,
    /// Whether sessions can recognise the student with this model: false when no photo
    /// was usable, and the student needs new registration photos.
    pub matchable: bool,
    /// What a teacher or admin should do, when anything.
    pub note: Option<String>,
}

/// One student's registration: a verdict per photo.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct RegistrationResult {
    pub student_id: Uuid,
    /// The student's status after the job.
    pub status: RegisteredStatus,
    /// The face model the embeddings belong to.
    pub model: String,
    pub accepted: u32,
    pub rejected: u32,
    /// In the order they were checked (oldest first).
    pub photos: Vec<PhotoCheck>,
    /// Other active students of the class whose faces are this close to an accepted
    /// photo (nearest first): possibly the same person registered twice.
    pub possible_duplicates: Vec<PossibleDuplicate>,
}

/// Where a registration left the student.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
#[cfg_attr(feature = "openapi", oai(rename_all = "snake_case"))]
pub enum RegisteredStatus {
    /// At least one accepted photo: matched in sessions.
    Active,
    /// No usable photo.
    Failed,
    /// Set aside by an admin; the photos were checked all the same.
    Inactive,
}

/// The verdict on one registration photo.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct PhotoCheck {
    pub photo_id: Uuid,
    pub verdict: Verdict,
    /// Why the photo was rejected.
    pub reason: Option<Rejection>,
    /// What a teacher reads: why it was rejected, or the duplicate it looks like.
    pub note: Option<String>,
    /// The face the verdict is about, in pixels of the photo.
    pub face_box: Option<FaceBox>,
    /// The detector's confidence in that face (0–1).
    pub score: Option<f32>,
    /// Faces the detector found in the photo.
    pub faces: u32,
    /// The other active student of the class this photo's face is closest to, when
    /// within the duplicate distance.
    pub same_as: Option<PossibleDuplicate>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
#[cfg_attr(feature = "openapi", oai(rename_all = "snake_case"))]
pub enum Verdict {
    /// The face is embedded and used for matching.
    Accepted,
    Rejected,
}

/// Why a registration photo was refused (also the `student_photos.reason` code).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
#[cfg_attr(feature = "openapi", oai(rename_all = "snake_case"))]
pub enum Rejection {
    NoFace,
    /// No face is clearly the largest: the subject of the photo is ambiguous.
    SeveralFaces,
    FaceTooSmall,
    LowConfidence,
    /// The stored file is missing or is not a readable image.
    Unreadable,
}

impl Rejection {
    pub const ALL: [Rejection; 5] = [
        Rejection::NoFace,
        Rejection::SeveralFaces,
        Rejection::FaceTooSmall,
        Rejection::LowConfidence,
        Rejection::Unreadable,
    ];

    /// The code stored in `student_photos.reason` (the serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::NoFace => "no_face",
            Rejection::SeveralFaces => "several_faces",
            Rejection::FaceTooSmall => "face_too_small",
            Rejection::LowConfidence => "low_confidence",
            Rejection::Unreadable => "unreadable",
        }
    }

    pub fn parse(code: &str) -> Option<Rejection> {
        Self::ALL.into_iter().find(|r| r.as_str() == code)
    }

    /// The reason as a teacher reads it; `faces` is the detector's count, when known.
    pub fn describe(self, faces: Option<u32>) -> String {
        match self {
            Rejection::NoFace => "no face found".into(),
            Rejection::SeveralFaces => match faces {
                Some(n) if n >= 2 => format!("{n} faces — use a photo with only the student"),
                _ => "several faces — use a photo with only the student".into(),
            },
            Rejection::FaceTooSmall => "face too small — take the photo closer".into(),
            Rejection::LowConfidence => {
                "face not clear enough — use a sharp, well-lit photo facing the camera".into()
            }
            Rejection::Unreadable => "the file could not be read as a photo".into(),
        }
    }
}

/// A face's box, `[x1, y1]`–`[x2, y2]` in pixels.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct FaceBox {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

/// Another student the registered face resembles.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct PossibleDuplicate {
    pub student_id: Uuid,
    pub roll_no: String,
    pub name: String,
    /// Descriptor distance between the two faces (smaller is more alike).
    pub distance: f32,
}

impl PossibleDuplicate {
    /// As a teacher reads it.
    pub fn describe(&self) -> String {
        format!("same person as roll {} ({})", self.roll_no, self.name)
    }
}

/// One class session: who was present.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct AttendanceResult {
    pub session_id: Uuid,
    /// Photos analysed.
    pub photos: u32,
    /// Faces found in all photos.
    pub faces: u32,
    /// Active students of the class recognised in the photos.
    pub present: u32,
    /// Active students of the class not recognised.
    pub absent: u32,
    /// Faces that matched no registered student.
    pub unknown: u32,
    /// The face model used for matching.
    pub model: String,
    /// Students with at least one embedding of that model (the gallery).
    pub registered: u32,
    /// Active students who could not be matched because they have no embedding of
    /// that model yet (their records are `unmatched`, not `absent`).
    #[serde(default)]
    pub unmatched: u32,
    /// Who those students are and why (nearest roll number first).
    #[serde(default)]
    pub not_yet_embedded: Vec<NotYetEmbedded>,
}

/// An active student the session could not match, and why.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct NotYetEmbedded {
    pub student_id: Uuid,
    pub roll_no: String,
    /// E.g. "registered with dlib_resnet_v1; re-embedding with arcface_w600k_mbf pending".
    pub reason: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct SkippedResult {
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_tagged_by_type_and_round_trip() {
        let result = JobResult::Attendance(AttendanceResult {
            session_id: Uuid::from_u128(7),
            photos: 1,
            faces: 3,
            present: 2,
            absent: 1,
            unknown: 1,
            model: "dlib_resnet_v1".into(),
            registered: 3,
            unmatched: 1,
            not_yet_embedded: vec![NotYetEmbedded {
                student_id: Uuid::from_u128(8),
                roll_no: "21CS009".into(),
                reason:
                    "registered with dlib_resnet_v1; re-embedding with arcface_w600k_mbf pending"
                        .into(),
            }],
        });
        let stored = result.to_stored();
        assert_eq!(stored["type"], "attendance");
        assert_eq!(stored["present"], 2);
        assert_eq!(stored["not_yet_embedded"][0]["roll_no"], "21CS009");
        assert_eq!(JobResult::from_stored(&stored), Some(result));
        // Results stored before `unmatched` existed still read.
        let mut older = stored.clone();
        older.as_object_mut().unwrap().remove("unmatched");
        older.as_object_mut().unwrap().remove("not_yet_embedded");
        match JobResult::from_stored(&older) {
            Some(JobResult::Attendance(a)) => {
                assert_eq!((a.unmatched, a.not_yet_embedded.len()), (0, 0))
            }
            other => panic!("{other:?}"),
        }
        // What the worker wrote before results were typed is not misread.
        assert_eq!(
            JobResult::from_stored(&serde_json::json!({"skipped": "gone"})),
            None
        );
    }

    #[test]
    fn rejection_codes_are_the_serde_names_and_read_well() {
        for r in Rejection::ALL {
            assert_eq!(Rejection::parse(r.as_str()), Some(r));
            assert_eq!(
                serde_json::to_value(r).unwrap(),
                serde_json::json!(r.as_str())
            );
        }
        assert_eq!(Rejection::NoFace.describe(Some(0)), "no face found");
        assert_eq!(
            Rejection::SeveralFaces.describe(Some(2)),
            "2 faces — use a photo with only the student"
        );
        assert_eq!(
            Rejection::SeveralFaces.describe(None),
            "several faces — use a photo with only the student"
        );
        let twin = PossibleDuplicate {
            student_id: Uuid::from_u128(1),
            roll_no: "21CS004".into(),
            name: "Asha Rao".into(),
            distance: 0.31,
        };
        assert_eq!(twin.describe(), "same person as roll 21CS004 (Asha Rao)");
    }
}
