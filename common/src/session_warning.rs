//! Warnings about a session's photos, kept with the session (`attendance_sessions.warnings`):
//! where they came from (provenance), written by the API when it accepts the photos, and
//! what the worker could not fully process (too many faces), merged in by the job.
//! One definition for the stored JSON, the session detail and the webhook payload.
//!
//! The JSON is a list of flat objects: `[{"code": "duplicate_photo", "message": …,
//! "photo": 1, "earlier_session_id": "…"}]`. Fields that do not apply to a code are
//! absent.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a warning is about.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
#[cfg_attr(feature = "openapi", oai(rename_all = "snake_case"))]
pub enum SessionWarningCode {
    /// A photo's bytes were already used in another session of the same class.
    DuplicatePhoto,
    /// The `taken_at` given with the upload and the photo's EXIF time differ by more
    /// than 12 hours.
    TakenAtMismatch,
    /// A photo had more faces than `MAX_FACES_PER_PHOTO`: only the largest were matched.
    FacesOverCap,
}

/// One warning on a session; the session was still processed.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct SessionWarning {
    pub code: SessionWarningCode,
    /// Readable explanation, for people.
    pub message: String,
    /// Which uploaded photo (1-based, in upload order) the warning is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo: Option<u32>,
    /// `duplicate_photo`: the earliest other session of the class with the same photo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earlier_session_id: Option<Uuid>,
    /// `duplicate_photo`: the photo's SHA-256 (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// `taken_at_mismatch`: the photo's EXIF `DateTimeOriginal`, in UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exif_taken_at: Option<DateTime<Utc>>,
    /// `taken_at_mismatch`: the `taken_at` given with the upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_taken_at: Option<DateTime<Utc>>,
}

impl SessionWarning {
    /// Reads the stored list; JSON this build does not understand is left out (and
    /// logged) rather than failing the session.
    pub fn from_stored(value: Option<&serde_json::Value>) -> Vec<SessionWarning> {
        let Some(serde_json::Value::Array(items)) = value else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|item| match serde_json::from_value(item.clone()) {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(error = %e, "stored session warning not understood; left out");
                    None
                }
            })
            .collect()
    }

    /// The photo-has-too-many-faces warning for the `photo`-th photo (1-based).
    pub fn faces_over_cap(photo: u32, faces: usize, cap: usize) -> SessionWarning {
        SessionWarning {
            code: SessionWarningCode::FacesOverCap,
            message: format!(
                "photo {photo} has {faces} faces; only the {cap} largest were matched"
            ),
            photo: Some(photo),
            earlier_session_id: None,
            sha256: None,
            exif_taken_at: None,
            given_taken_at: None,
        }
    }

    /// The JSON stored in `attendance_sessions.warnings`: `None` when there are none.
    pub fn to_stored(warnings: &[SessionWarning]) -> Option<serde_json::Value> {
        (!warnings.is_empty())
            .then(|| serde_json::to_value(warnings).expect("warnings always serialise"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_warnings_round_trip_and_unknown_ones_are_left_out() {
        let w = SessionWarning {
            code: SessionWarningCode::DuplicatePhoto,
            message: "photo 1 was already used".into(),
            photo: Some(1),
            earlier_session_id: Some(Uuid::nil()),
            sha256: Some("ab".into()),
            exif_taken_at: None,
            given_taken_at: None,
        };
        let stored = SessionWarning::to_stored(std::slice::from_ref(&w)).unwrap();
        assert_eq!(stored[0]["code"], "duplicate_photo");
        assert!(stored[0].get("exif_taken_at").is_none());
        assert_eq!(SessionWarning::from_stored(Some(&stored)), vec![w.clone()]);

        let mixed = serde_json::json!([{"code": "from_the_future", "message": "?"}, stored[0]]);
        assert_eq!(SessionWarning::from_stored(Some(&mixed)), vec![w]);
        assert!(SessionWarning::to_stored(&[]).is_none());
        assert!(SessionWarning::from_stored(None).is_empty());
    }

    #[test]
    fn the_faces_over_cap_warning_reads_well() {
        let w = SessionWarning::faces_over_cap(2, 412, 300);
        assert_eq!(
            w.message,
            "photo 2 has 412 faces; only the 300 largest were matched"
        );
        let stored = SessionWarning::to_stored(std::slice::from_ref(&w)).unwrap();
        assert_eq!(stored[0]["code"], "faces_over_cap");
        assert_eq!(stored[0]["photo"], 2);
    }
}
