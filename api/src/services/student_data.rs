//! A student's own data as a ZIP (`GET /students/{id}/data`): the profile, the
//! registration photos with their verdicts, the crops of the session faces matched to
//! them, their attendance records and every consent entry, with a README saying what
//! each file is.
//!
//! The archive is spooled to an anonymous temporary file (gone when closed), one blob
//! at a time: memory holds one photo at most however many the student has. A blob a
//! row names but the store no longer has is listed as missing, not an error.

use std::{
    collections::{HashMap, HashSet},
    io::{Seek, SeekFrom, Write},
    path::Path,
    sync::Arc,
};

use chrono::{DateTime, Utc};
use common::{BlobError, BlobStore};
use models::{
    api_key, attendance_record, attendance_session, class, consent_entry, detected_face,
    student::{self, StudentStatus},
    student_photo,
};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;
use uuid::Uuid;
use zip::{CompressionMethod, ZipWriter, write::SimpleFileOptions};

use super::{
    scope::Scope,
    sheet::{self, Sheet, Value},
};
use crate::error::ServiceError;

/// The finished archive.
pub struct StudentArchive {
    pub roll_no: String,
    /// Positioned at its start; deleted when closed.
    pub file: std::fs::File,
    pub size: u64,
}

impl std::fmt::Debug for StudentArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StudentArchive")
            .field("roll_no", &self.roll_no)
            .field("size", &self.size)
            .finish()
    }
}

#[derive(Serialize)]
struct Profile {
    exported_at: DateTime<Utc>,
    student: StudentProfile,
    class: Option<ClassProfile>,
}

#[derive(Serialize)]
struct StudentProfile {
    id: Uuid,
    roll_no: String,
    name: String,
    status: StudentStatus,
    registered_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// When their face data was erased (consent withdrawn), if it was.
    face_data_erased_at: Option<DateTime<Utc>>,
}

#[derive(Serialize)]
struct ClassProfile {
    id: Uuid,
    name: String,
    department: String,
    year: Option<i32>,
    section: Option<String>,
}

#[derive(Serialize)]
struct PhotoEntry {
    id: Uuid,
    /// The file in this archive; `None` when the photo is missing from storage.
    file: Option<String>,
    missing: bool,
    content_type: String,
    verdict: student_photo::PhotoVerdict,
    reason: Option<String>,
    face_box: Option<serde_json::Value>,
    detector_score: Option<f64>,
    uploaded_at: DateTime<Utc>,
    /// Enrolled by hand from a face of an attendance session (a correction), rather
    /// than uploaded.
    enrolled_from_correction: bool,
    source_face_id: Option<Uuid>,
}

#[derive(Serialize)]
struct MatchEntry {
    face_id: Uuid,
    /// The crop in this archive; `None` when none was kept or it is missing.
    crop: Option<String>,
    missing: bool,
    session_id: Uuid,
    taken_at: Option<DateTime<Utc>>,
    subject: Option<String>,
    distance: Option<f64>,
    face_box: serde_json::Value,
    /// Named as this student by a person rather than by the matcher.
    named_by_hand: bool,
}

#[derive(Serialize)]
struct ConsentRecord {
    id: Uuid,
    action: consent_entry::ConsentAction,
    recorded_at: DateTime<Utc>,
    source: consent_entry::ConsentSource,
    recorded_by_key_id: Option<Uuid>,
    /// The name of that key.
    recorded_by: Option<String>,
    note: Option<String>,
}

/// Builds the archive of student `id` (404 for an unknown, deleted or out-of-scope
/// student).
pub async fn archive(
    db: &impl ConnectionTrait,
    scope: &Scope,
    blobs: &Arc<dyn BlobStore>,
    id: Uuid,
) -> Result<StudentArchive, ServiceError> {
    let student = scope.student(db, id).await?;
    // A deleted student is a tombstone kept for the records; it holds nothing of theirs
    // to hand out and is invisible to the API.
    if student.status == StudentStatus::Deleted {
        return Err(ServiceError::NotFound("student"));
    }
    let class = class::Entity::find_by_id(student.class_id).one(db).await?;
    let photos = student_photo::Entity::find()
        .filter(student_photo::Column::StudentId.eq(id))
        .order_by_asc(student_photo::Column::CreatedAt)
        .order_by_asc(student_photo::Column::Id)
        .all(db)
        .await?;
    let faces = detected_face::Entity::find()
        .filter(detected_face::Column::StudentId.eq(id))
        .find_also_related(attendance_session::Entity)
        .order_by_asc(detected_face::Column::CreatedAt)
        .order_by_asc(detected_face::Column::Id)
        .all(db)
        .await?;
    let mut records = attendance_record::Entity::find()
        .filter(attendance_record::Column::StudentId.eq(id))
        .find_also_related(attendance_session::Entity)
        .all(db)
        .await?;
    records.sort_by_key(|(r, s)| (s.as_ref().map(|s| s.taken_at), r.id));
    let consents = consent_entry::history(db, id).await?;
    let key_ids: HashSet<Uuid> = records
        .iter()
        .filter_map(|(r, _)| r.corrected_by_key_id)
        .chain(consents.iter().filter_map(|c| c.recorded_by_key_id))
        .collect();
    let key_names: HashMap<Uuid, String> = if key_ids.is_empty() {
        HashMap::new()
    } else {
        api_key::Entity::find()
            .filter(api_key::Column::Id.is_in(key_ids))
            .all(db)
            .await?
            .into_iter()
            .map(|k| (k.id, k.name))
            .collect()
    };

    let mut zip = Spool::new().await?;
    let roll_no = student.roll_no.clone();

    let mut photo_entries = Vec::with_capacity(photos.len());
    for p in photos {
        let ext = Path::new(&p.blob_key)
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("bin");
        let name = format!("photos/{}.{ext}", p.id);
        let stored = zip.add_blob(blobs, &p.blob_key, name).await?;
        photo_entries.push(PhotoEntry {
            id: p.id,
            missing: stored.is_none(),
            file: stored,
            content_type: p.content_type,
            verdict: p.verdict,
            reason: p.reason,
            face_box: p.face_box,
            detector_score: p.detector_score,
            uploaded_at: p.created_at,
            enrolled_from_correction: p.source_face_id.is_some(),
            source_face_id: p.source_face_id,
        });
    }

    let mut match_entries = Vec::with_capacity(faces.len());
    for (face, session) in faces {
        let (crop, missing) = match &face.crop_key {
            Some(key) => {
                let stored = zip
                    .add_blob(blobs, key, format!("crops/{}.jpg", face.id))
                    .await?;
                let missing = stored.is_none();
                (stored, missing)
            }
            None => (None, false),
        };
        match_entries.push(MatchEntry {
            face_id: face.id,
            crop,
            missing,
            session_id: face.session_id,
            taken_at: session.as_ref().map(|s| s.taken_at),
            subject: session.and_then(|s| s.subject),
            distance: face.distance,
            face_box: face.face_box,
            named_by_hand: face.assigned_by_key_id.is_some(),
        });
    }

    let consent_records: Vec<ConsentRecord> = consents
        .into_iter()
        .map(|c| ConsentRecord {
            id: c.id,
            action: c.action,
            recorded_at: c.created_at,
            source: c.source,
            recorded_by: c
                .recorded_by_key_id
                .and_then(|k| key_names.get(&k).cloned()),
            recorded_by_key_id: c.recorded_by_key_id,
            note: c.note,
        })
        .collect();

    let records_csv = records_sheet(&records, &key_names).render(sheet::Format::Csv)?;
    let readme = readme(
        &student,
        photo_entries.len(),
        photo_entries.iter().filter(|p| p.missing).count(),
        match_entries.len(),
        match_entries.iter().filter(|m| m.missing).count(),
        records.len(),
        consent_records.len(),
    );
    let profile = Profile {
        exported_at: Utc::now(),
        student: StudentProfile {
            id: student.id,
            roll_no: student.roll_no,
            name: student.name,
            status: student.status,
            registered_at: student.created_at,
            updated_at: student.updated_at,
            face_data_erased_at: student.erased_at,
        },
        class: class.map(|c| ClassProfile {
            id: c.id,
            name: c.name,
            department: c.department,
            year: c.year,
            section: c.section,
        }),
    };
    zip.add_text("README.txt", readme.into_bytes()).await?;
    zip.add_text("profile.json", json(&profile)?).await?;
    zip.add_text("photos.json", json(&photo_entries)?).await?;
    zip.add_text("matches.json", json(&match_entries)?).await?;
    zip.add_text("records.csv", records_csv).await?;
    zip.add_text("consent.json", json(&consent_records)?)
        .await?;
    let (file, size) = zip.finish().await?;
    tracing::info!(student_id = %id, size, "student data archive built");
    Ok(StudentArchive {
        roll_no,
        file,
        size,
    })
}

fn json<T: Serialize>(value: &T) -> Result<Vec<u8>, ServiceError> {
    serde_json::to_vec_pretty(value)
        .map_err(|e| ServiceError::Internal(format!("student data JSON: {e}")))
}

/// `records.csv`: one row per session record, oldest session first.
fn records_sheet(
    records: &[(attendance_record::Model, Option<attendance_session::Model>)],
    key_names: &HashMap<Uuid, String>,
) -> Sheet {
    let text = |s: Option<String>| s.map_or(Value::Empty, Value::Text);
    Sheet {
        name: "records".into(),
        header: [
            "session_id",
            "taken_at",
            "subject",
            "status",
            "source",
            "distance",
            "corrected_by_key_id",
            "corrected_by",
        ]
        .map(String::from)
        .to_vec(),
        rows: records
            .iter()
            .map(|(r, session)| {
                vec![
                    Value::text(r.session_id.to_string()),
                    text(session.as_ref().map(|s| s.taken_at.to_rfc3339())),
                    text(session.as_ref().and_then(|s| s.subject.clone())),
                    Value::text(sea_orm::ActiveEnum::to_value(&r.status)),
                    Value::text(sea_orm::ActiveEnum::to_value(&r.source)),
                    r.distance.map_or(Value::Empty, Value::Number),
                    text(r.corrected_by_key_id.map(|k| k.to_string())),
                    text(
                        r.corrected_by_key_id
                            .and_then(|k| key_names.get(&k).cloned()),
                    ),
                ]
            })
            .collect(),
        frozen_columns: 0,
    }
}

fn readme(
    student: &student::Model,
    photos: usize,
    photos_missing: usize,
    matches: usize,
    crops_missing: usize,
    records: usize,
    consents: usize,
) -> String {
    let missing = |n: usize| {
        if n == 0 {
            String::new()
        } else {
            format!(" ({n} missing from storage: listed with \"missing\": true)")
        }
    };
    format!(
        "Everything this attendance system holds about student {roll} ({name}), \
         exported {now}.\n\
         \n\
         profile.json   the student (roll number, name, status, when registered, when their\n\
         \x20              face data was erased if it was) and their class.\n\
         photos.json    the registration photos ({photos}){photos_missing}: verdict (accepted or\n\
         \x20              rejected, and why), face box, when uploaded, and whether the photo\n\
         \x20              was enrolled by hand from an attendance session (a correction).\n\
         photos/        the photos themselves, named <photo id>.<format>.\n\
         matches.json   the faces found in attendance photos and matched to the student\n\
         \x20              ({matches}){crops_missing}: session, when it was taken, subject,\n\
         \x20              descriptor distance, and whether a person named the face.\n\
         crops/         the cropped faces, named <face id>.jpg.\n\
         records.csv    the attendance records ({records}): session, when it was taken (UTC),\n\
         \x20              subject, status, source (auto or manual) and who corrected it.\n\
         consent.json   every consent entry ({consents}): given or withdrawn, when, by which\n\
         \x20              key, from where (api, batch or cli), and the note.\n",
        roll = student.roll_no,
        name = student.name,
        now = Utc::now().to_rfc3339(),
        photos_missing = missing(photos_missing),
        crops_missing = missing(crops_missing),
    )
}

/// A ZIP written to an anonymous temporary file, off the async runtime.
struct Spool {
    zip: Option<ZipWriter<std::fs::File>>,
}

fn internal(what: &str) -> impl Fn(String) -> ServiceError + '_ {
    move |e| ServiceError::Internal(format!("student data archive, {what}: {e}"))
}

impl Spool {
    async fn new() -> Result<Spool, ServiceError> {
        let file = tokio::task::spawn_blocking(tempfile::tempfile)
            .await
            .map_err(|e| internal("temporary file")(e.to_string()))?
            .map_err(|e| internal("temporary file")(e.to_string()))?;
        Ok(Spool {
            zip: Some(ZipWriter::new(file)),
        })
    }

    /// Adds `bytes` as `name`; photos are stored as they are (already compressed),
    /// text is deflated.
    async fn add(
        &mut self,
        name: String,
        bytes: Vec<u8>,
        compress: bool,
    ) -> Result<(), ServiceError> {
        let mut zip = self.zip.take().expect("the spool is open");
        let method = if compress {
            CompressionMethod::Deflated
        } else {
            CompressionMethod::Stored
        };
        let options = SimpleFileOptions::default()
            .compression_method(method)
            .large_file(bytes.len() as u64 >= u64::from(u32::MAX));
        let zip = tokio::task::spawn_blocking(move || {
            zip.start_file(name, options).map_err(|e| e.to_string())?;
            zip.write_all(&bytes).map_err(|e| e.to_string())?;
            Ok::<_, String>(zip)
        })
        .await
        .map_err(|e| internal("writing")(e.to_string()))?
        .map_err(internal("writing"))?;
        self.zip = Some(zip);
        Ok(())
    }

    async fn add_text(&mut self, name: &str, bytes: Vec<u8>) -> Result<(), ServiceError> {
        self.add(name.to_string(), bytes, true).await
    }

    /// Adds the blob at `key` as `name`; `None` when the store does not have it.
    async fn add_blob(
        &mut self,
        blobs: &Arc<dyn BlobStore>,
        key: &str,
        name: String,
    ) -> Result<Option<String>, ServiceError> {
        match blobs.get(key).await {
            Ok(bytes) => {
                self.add(name.clone(), bytes.to_vec(), false).await?;
                Ok(Some(name))
            }
            Err(BlobError::NotFound(_)) => {
                tracing::warn!(key, "a blob of the student's data is missing from storage");
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn finish(mut self) -> Result<(std::fs::File, u64), ServiceError> {
        let zip = self.zip.take().expect("the spool is open");
        tokio::task::spawn_blocking(move || {
            let mut file = zip.finish().map_err(|e| e.to_string())?;
            let size = file.seek(SeekFrom::End(0)).map_err(|e| e.to_string())?;
            file.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
            Ok::<_, String>((file, size))
        })
        .await
        .map_err(|e| internal("finishing")(e.to_string()))?
        .map_err(internal("finishing"))
    }
}

/// `student-<roll>-data.zip`, with anything but letters, digits, `-`, `_` and `.` of
/// the roll number replaced, so that the header needs no quoting rules.
pub fn file_name(roll_no: &str) -> String {
    let roll: String = roll_no
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("student-{roll}-data.zip")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_keep_safe_characters_only() {
        assert_eq!(file_name("21CS001"), "student-21CS001-data.zip");
        assert_eq!(file_name("21/CS \"1\""), "student-21_CS__1_-data.zip");
    }
}
