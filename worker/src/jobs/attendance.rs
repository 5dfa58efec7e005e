//! Attendance: a session's photos → every face detected and embedded → one-to-one
//! assignment against the class gallery → detected faces (with crops) and one record
//! per active student (and per student who withdrew consent: `unmatched`).
//!
//! The decision (faces + gallery → records, unknown faces) is the pure [`decide`];
//! the rest fetches, analyses and writes. Idempotent: face ids are derived from `(photo_id, face_index)`, so a re-run writes
//! the same crop keys and, in one transaction, replaces the session's faces and upserts
//! its records; records a person corrected (`manual`) are never overwritten, and faces
//! a person named keep their student. Each face's descriptor is stored with it, so
//! that a person can enrol it into a student's gallery.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use chrono::Utc;
use common::JobKind;
use common::job::result::{AttendanceResult, NotYetEmbedded};
use common::session_warning::{SessionWarning, SessionWarningCode};
use models::attendance_record::{self, RecordSource, RecordStatus};
use models::attendance_session::{self, SessionStatus};
use models::class;
use models::detected_face;
use models::face_embedding;
use models::job;
use models::session_photo;
use models::student::{self, StudentStatus};
use sea_orm::{
    ActiveEnum,
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, TransactionTrait,
    sea_query::{Expr, ExprTrait, OnConflict},
};
use serde_json::json;
use uuid::Uuid;

use super::registration::{face_box, to_descriptor};
use super::{
    Job, JobContext, JobError, Outcome, Progress, blocking, crops, engine_error, fetch_photo,
};
use crate::engine::matching::{DecisionRule, Descriptor, Gallery};
use crate::engine::pipeline::Face;

/// Namespace of the deterministic detected-face ids (UUID v5 of photo id + face index).
const FACE_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6d1f_0c3e_59a4_4b8e_9a57_1d2c_8e4f_a301);

/// The id of the `index`-th face of a photo: the same on every run of the job.
pub fn face_id(photo_id: Uuid, index: usize) -> Uuid {
    let mut name = photo_id.as_bytes().to_vec();
    name.extend_from_slice(&(index as u64).to_be_bytes());
    Uuid::new_v5(&FACE_ID_NAMESPACE, &name)
}

/// One detected face before it is written.
struct FoundFace {
    id: Uuid,
    photo_id: Uuid,
    index: usize,
    face: Face,
    crop: Option<Vec<u8>>,
}

/// The attendance job.
pub struct Attendance;

impl Job for Attendance {
    const KIND: JobKind = JobKind::Attendance;
    type Output = AttendanceResult;

    async fn run(
        ctx: &JobContext,
        job: &job::Model,
        progress: &Progress<'_>,
    ) -> Result<Outcome<AttendanceResult>, JobError> {
        run(ctx, job, progress).await
    }

    async fn mark_subject_failed(
        db: &DatabaseTransaction,
        _public_url: &str,
        session_id: Uuid,
    ) -> Result<(), DbErr> {
        mark_failed(db, session_id).await
    }
}

async fn run(
    ctx: &JobContext,
    job: &job::Model,
    progress: &Progress<'_>,
) -> Result<Outcome<AttendanceResult>, JobError> {
    let session_id = job.subject_id;
    tracing::Span::current().record("session_id", tracing::field::display(session_id));
    let Some(session) = attendance_session::Entity::find_by_id(session_id)
        .one(&ctx.db)
        .await?
    else {
        tracing::warn!(%session_id, "session no longer exists; nothing to do");
        return Ok(Outcome::Skipped(format!(
            "session {session_id} no longer exists"
        )));
    };
    if let Some(deleted_at) = session.photos_deleted_at {
        // Its records stay as they are (a completed session is never marked failed).
        return Err(JobError::abort(format!(
            "the photos of this session were deleted on {} under the retention policy \
             (RETENTION_DAYS); it cannot be processed again, but its records are kept",
            deleted_at.format("%Y-%m-%d")
        )));
    }
    let class = class::Entity::find_by_id(session.class_id)
        .one(&ctx.db)
        .await?;
    let photos = session_photo::Entity::find()
        .filter(session_photo::Column::SessionId.eq(session_id))
        .order_by_asc(session_photo::Column::CreatedAt)
        .order_by_asc(session_photo::Column::Id)
        .all(&ctx.db)
        .await?;

    // Detect and embed every face of every photo, with its crop.
    let mut found: Vec<FoundFace> = Vec::new();
    let max_faces = ctx.engine.limits().max_faces;
    let mut over_cap: Vec<SessionWarning> = Vec::new();
    for (i, photo) in photos.iter().enumerate() {
        let Some(bytes) = fetch_photo(ctx.blobs.as_ref(), &photo.blob_key).await? else {
            tracing::error!(photo_id = %photo.id, key = %photo.blob_key, "session photo missing from storage");
            return Err(JobError::abort(format!(
                "photo {} of the session ({}) is missing from storage",
                i + 1,
                photo.id
            )));
        };
        let analysed = analyse_photo(ctx, i + 1, photo.id, bytes).await?;
        tracing::debug!(photo_id = %photo.id, faces = analysed.faces.len(), "photo analysed");
        if analysed.detected > analysed.faces.len() {
            tracing::warn!(
                photo_id = %photo.id,
                detected = analysed.detected,
                max_faces,
                "more faces than MAX_FACES_PER_PHOTO; the largest were matched"
            );
            over_cap.push(SessionWarning::faces_over_cap(
                (i + 1) as u32,
                analysed.detected,
                max_faces,
            ));
        }
        found.extend(
            analysed
                .faces
                .into_iter()
                .enumerate()
                .map(|(index, (face, crop))| FoundFace {
                    id: face_id(photo.id, index),
                    photo_id: photo.id,
                    index,
                    face,
                    crop,
                }),
        );
        progress
            .set((i + 1) as f64 / (photos.len() + 1) as f64)
            .await;
    }

    // Faces of an erased student (deleted, or consent withdrawn) stay erased when the
    // session is processed again: no crop or descriptor is made of them again, and
    // they are not matched.
    let erased_before = erased_faces(&ctx.db, session_id).await?;
    let (kept_erased, found): (Vec<FoundFace>, Vec<FoundFace>) = found
        .into_iter()
        .partition(|f| erased_before.contains_key(&f.id));

    // The gallery: every embedding of this model of the class's active students. The
    // roll also has the students who withdrew consent: they have no embedding, so are
    // recorded unmatched, and a teacher can still mark them present by hand.
    let model = ctx.engine.model_name();
    let students = student::Entity::find()
        .filter(student::Column::ClassId.eq(session.class_id))
        .filter(student::Column::Status.is_in([StudentStatus::Active, StudentStatus::Withdrawn]))
        .order_by_asc(student::Column::RollNo)
        .all(&ctx.db)
        .await?;
    let rule = ctx.engine.default_rule();
    let (gallery, enrolled) = load_gallery(ctx, &students, model, rule, class.as_ref()).await?;
    let not_yet_embedded = not_yet_embedded(ctx, &students, &enrolled, model).await?;
    if !not_yet_embedded.is_empty() {
        tracing::warn!(
            count = not_yet_embedded.len(),
            model,
            "students without an embedding of this model are recorded unmatched"
        );
    }

    let descriptors: Vec<Descriptor> = found.iter().map(|f| f.face.descriptor.clone()).collect();
    let roll: Vec<Uuid> = students.iter().map(|s| s.id).collect();
    let decision = decide(&descriptors, &gallery, &roll, &enrolled);

    // Crops go to the blob store before the transaction; their keys are stable, so a
    // re-run overwrites them instead of leaving copies.
    let mut crop_keys: Vec<Option<String>> = Vec::with_capacity(found.len());
    for f in &found {
        crop_keys.push(match &f.crop {
            Some(jpeg) => {
                let key = crops::crop_key(session_id, f.id);
                ctx.blobs
                    .put(&key, Bytes::from(jpeg.clone()), "image/jpeg")
                    .await
                    .map_err(|e| {
                        tracing::warn!(%key, error = %common::error_chain(&e), "face crop not stored");
                        JobError::retry(
                            "a face crop could not be saved to storage; it will be tried again",
                            e,
                        )
                    })?;
                Some(key)
            }
            None => None,
        });
    }

    let result = AttendanceResult {
        session_id,
        photos: photos.len() as u32,
        faces: (found.len() + kept_erased.len()) as u32,
        present: decision.present,
        absent: decision.absent,
        unknown: decision.unknown,
        model: model.to_string(),
        registered: gallery.len() as u32,
        unmatched: decision.unmatched,
        not_yet_embedded,
    };

    let txn = ctx.db.begin().await?;
    let now = Utc::now();
    // Faces a person named keep their student (and who named them) across re-runs.
    let named: HashMap<Uuid, (Option<Uuid>, Uuid)> = detected_face::Entity::find()
        .filter(detected_face::Column::SessionId.eq(session_id))
        .filter(detected_face::Column::AssignedByKeyId.is_not_null())
        .all(&txn)
        .await?
        .into_iter()
        .filter_map(|f| Some((f.id, (f.student_id, f.assigned_by_key_id?))))
        .collect();
    // Students whose face data was erased while this job ran: their faces are written
    // without it, and the crops just stored go after commit.
    let erased_now = erased_students(&txn, &decision, &named).await?;
    let mut crops_to_discard = Vec::new();
    detected_face::Entity::delete_many()
        .filter(detected_face::Column::SessionId.eq(session_id))
        .exec(&txn)
        .await?;
    for f in &kept_erased {
        let before = &erased_before[&f.id];
        detected_face::Entity::insert(detected_face::ActiveModel {
            id: Set(f.id),
            session_id: Set(session_id),
            photo_id: Set(f.photo_id),
            face_index: Set(f.index as i32),
            face_box: Set(json!(face_box(f.face.detection.bbox))),
            landmarks: Set(serde_json::Value::Null),
            score: Set(f64::from(f.face.detection.score)),
            crop_key: Set(None),
            student_id: Set(before.student_id),
            distance: Set(before.distance),
            created_at: Set(now),
            descriptor: Set(None),
            model: Set(None),
            assigned_by_key_id: Set(before.assigned_by_key_id),
        })
        .exec_without_returning(&txn)
        .await?;
    }
    for ((f, matched), crop_key) in found.iter().zip(&decision.faces).zip(crop_keys) {
        let (student_id, distance, assigned_by) = match named.get(&f.id) {
            Some(&(student_id, key_id)) => (student_id, None, Some(key_id)),
            None => (matched.student_id, matched.distance.map(f64::from), None),
        };
        if student_id.is_some_and(|s| erased_now.contains_key(&s)) {
            crops_to_discard.extend(crop_key);
            detected_face::Entity::insert(detected_face::ActiveModel {
                id: Set(f.id),
                session_id: Set(session_id),
                photo_id: Set(f.photo_id),
                face_index: Set(f.index as i32),
                face_box: Set(json!(face_box(f.face.detection.bbox))),
                landmarks: Set(serde_json::Value::Null),
                score: Set(f64::from(f.face.detection.score)),
                crop_key: Set(None),
                student_id: Set(student_id),
                distance: Set(distance),
                created_at: Set(now),
                descriptor: Set(None),
                model: Set(None),
                assigned_by_key_id: Set(assigned_by),
            })
            .exec_without_returning(&txn)
            .await?;
            continue;
        }
        detected_face::Entity::insert(detected_face::ActiveModel {
            id: Set(f.id),
            session_id: Set(session_id),
            photo_id: Set(f.photo_id),
            face_index: Set(f.index as i32),
            face_box: Set(json!(face_box(f.face.detection.bbox))),
            landmarks: Set(json!(f.face.detection.landmarks)),
            score: Set(f64::from(f.face.detection.score)),
            crop_key: Set(crop_key),
            student_id: Set(student_id),
            distance: Set(distance),
            created_at: Set(now),
            // Kept so that a person can enrol this face into a student's gallery.
            descriptor: Set(Some(models::vector::encode(&f.face.descriptor))),
            model: Set(Some(model.to_string())),
            assigned_by_key_id: Set(assigned_by),
        })
        .exec_without_returning(&txn)
        .await?;
    }
    for record in &decision.records {
        // A student deleted while the job ran gets no new record.
        if erased_now.get(&record.student_id) == Some(&StudentStatus::Deleted) {
            continue;
        }
        upsert_record(
            &txn,
            session_id,
            record.student_id,
            record.status,
            record.distance.map(f64::from),
        )
        .await?;
    }
    // The API's provenance warnings stay; this job's own are replaced on a re-run.
    let mut warnings: Vec<SessionWarning> = session
        .warnings()
        .into_iter()
        .filter(|w| w.code != SessionWarningCode::FacesOverCap)
        .collect();
    warnings.extend(over_cap);
    let (subject, taken_at) = (session.subject.clone(), session.taken_at);
    let mut row = session.into_active_model();
    row.status = Set(SessionStatus::Completed);
    row.warnings = Set(SessionWarning::to_stored(&warnings));
    attendance_session::Entity::update(row).exec(&txn).await?;
    super::complete(&txn, job, &result.clone().into()).await?;
    // In the completing transaction: the event exists exactly when the records do.
    crate::webhooks::events::session_completed(
        &txn,
        &ctx.public_url,
        crate::webhooks::events::CompletedSession {
            session_id,
            job_id: job.id,
            class: class.as_ref(),
            subject: subject.as_deref(),
            taken_at,
            warnings,
        },
        &result,
    )
    .await?;
    txn.commit().await?;
    for key in &crops_to_discard {
        if let Err(e) = ctx.blobs.delete(key).await {
            tracing::warn!(%key, error = %common::error_chain(&e), "could not delete the crop of an erased student's face");
        }
    }
    tracing::info!(
        faces = found.len(),
        present = result.present,
        unknown = result.unknown,
        "attendance recorded"
    );
    Ok(Outcome::Completed(result))
}

/// The faces of the session, as last written, of a student whose face data is erased
/// (deleted, or consent withdrawn) and which were erased with it (no crop, no
/// descriptor), by face id.
async fn erased_faces(
    db: &impl ConnectionTrait,
    session_id: Uuid,
) -> Result<HashMap<Uuid, detected_face::Model>, DbErr> {
    let erased = student::Entity::find()
        .select_only()
        .column(student::Column::Id)
        .filter(student::Column::Status.is_in([StudentStatus::Deleted, StudentStatus::Withdrawn]))
        .into_query();
    Ok(detected_face::Entity::find()
        .filter(detected_face::Column::SessionId.eq(session_id))
        .filter(detected_face::Column::StudentId.in_subquery(erased))
        .filter(detected_face::Column::CropKey.is_null())
        .filter(detected_face::Column::Descriptor.is_null())
        .all(db)
        .await?
        .into_iter()
        .map(|f| (f.id, f))
        .collect())
}

/// Of the students the job is about to write (the roll, the matched and the named),
/// those whose face data is erased now, read in the writing transaction: one deleted or
/// withdrawn after the gallery was loaded gets no crop, descriptor or new record.
async fn erased_students(
    txn: &DatabaseTransaction,
    decision: &Decision,
    named: &HashMap<Uuid, (Option<Uuid>, Uuid)>,
) -> Result<HashMap<Uuid, StudentStatus>, DbErr> {
    let ids: HashSet<Uuid> = decision
        .records
        .iter()
        .map(|r| r.student_id)
        .chain(decision.faces.iter().filter_map(|f| f.student_id))
        .chain(named.values().filter_map(|(s, _)| *s))
        .collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(student::Entity::find()
        .select_only()
        .column(student::Column::Id)
        .column(student::Column::Status)
        .filter(student::Column::Id.is_in(ids))
        .filter(student::Column::Status.is_in([StudentStatus::Deleted, StudentStatus::Withdrawn]))
        .into_tuple::<(Uuid, StudentStatus)>()
        .all(txn)
        .await?
        .into_iter()
        .collect())
}

/// Who a detected face was matched to.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceMatch {
    /// The student the face was assigned to; `None` for an unknown face.
    pub student_id: Option<Uuid>,
    /// The distance to that student, or for an unknown face to its nearest student
    /// (kept for review).
    pub distance: Option<f32>,
}

/// One student's automatic record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub student_id: Uuid,
    pub status: RecordStatus,
    pub distance: Option<f32>,
}

/// What the pure step decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Per face, in the order given.
    pub faces: Vec<FaceMatch>,
    /// One per student of the roll, in roll order.
    pub records: Vec<Record>,
    pub present: u32,
    pub absent: u32,
    /// Students of the roll not in the gallery: nothing to match them with.
    pub unmatched: u32,
    pub unknown: u32,
}

/// The pure step: every face of every photo of the session, the class gallery and its
/// roll (the active students) → who is present, absent, and which faces are unknown.
/// One assignment over all faces of all photos: a student is present at most once.
/// A student of the roll missing from `enrolled` (no embedding of the model) cannot be
/// matched, so is `unmatched` rather than absent.
pub fn decide(
    faces: &[Descriptor],
    gallery: &Gallery<Uuid>,
    roll: &[Uuid],
    enrolled: &HashSet<Uuid>,
) -> Decision {
    let assigned = gallery.assign(faces);
    let matches: Vec<FaceMatch> = faces
        .iter()
        .zip(&assigned)
        .map(|(face, assignment)| match assignment {
            Some((student_id, d)) => FaceMatch {
                student_id: Some(*student_id),
                distance: Some(*d),
            },
            None => FaceMatch {
                student_id: None,
                distance: gallery.decide(face).nearest.map(|(_, d)| d),
            },
        })
        .collect();
    let present: HashMap<Uuid, f32> = assigned.iter().flatten().copied().collect();
    let records: Vec<Record> = roll
        .iter()
        .map(|&student_id| match present.get(&student_id) {
            Some(&d) => Record {
                student_id,
                status: RecordStatus::Present,
                distance: Some(d),
            },
            None => Record {
                student_id,
                status: if enrolled.contains(&student_id) {
                    RecordStatus::Absent
                } else {
                    RecordStatus::Unmatched
                },
                distance: None,
            },
        })
        .collect();
    let with = |status| records.iter().filter(|r| r.status == status).count() as u32;
    Decision {
        unknown: matches.iter().filter(|m| m.student_id.is_none()).count() as u32,
        present: with(RecordStatus::Present),
        absent: with(RecordStatus::Absent),
        unmatched: with(RecordStatus::Unmatched),
        faces: matches,
        records,
    }
}

/// One analysed photo: its faces (most confident first, in the photo's coordinates) with
/// their JPEG crops, and how many faces the detector found before the cap.
struct AnalysedPhoto {
    faces: Vec<(Face, Option<Vec<u8>>)>,
    detected: usize,
}

/// Decodes a photo (reduced when larger than the working size) and analyses it.
/// `number` (from 1, in upload order) names the photo in errors shown to the teacher.
async fn analyse_photo(
    ctx: &JobContext,
    number: usize,
    photo_id: Uuid,
    bytes: Bytes,
) -> Result<AnalysedPhoto, JobError> {
    let engine = ctx.engine.clone();
    let what = format!("session photo {photo_id}");
    let label = format!("session photo {number}");
    blocking(move || {
        let photo = engine.decode(&bytes, &what)?;
        drop(bytes);
        let (found, crops) = engine.analyze_photo(&photo, crops::face_crop_jpeg)?;
        Ok(AnalysedPhoto {
            faces: found.faces.into_iter().zip(crops).collect(),
            detected: found.detected,
        })
    })
    .await?
    .map_err(|e| engine_error(&label, e))
}

/// The class gallery under the model's rule (with the class's threshold override, if
/// any), and the students it holds.
async fn load_gallery(
    ctx: &JobContext,
    students: &[student::Model],
    model: &str,
    rule: DecisionRule,
    class: Option<&class::Model>,
) -> Result<(Gallery<Uuid>, HashSet<Uuid>), JobError> {
    let ids: HashSet<Uuid> = students.iter().map(|s| s.id).collect();
    let embeddings = if ids.is_empty() {
        Vec::new()
    } else {
        face_embedding::Entity::find()
            .filter(face_embedding::Column::StudentId.is_in(ids.iter().copied()))
            .filter(face_embedding::Column::Model.eq(model))
            .order_by_asc(face_embedding::Column::StudentId)
            .order_by_asc(face_embedding::Column::PhotoId)
            .all(&ctx.db)
            .await?
    };
    let mut by_student: HashMap<Uuid, Vec<Descriptor>> = HashMap::new();
    for e in &embeddings {
        match to_descriptor(&e.vector) {
            Some(d) => by_student.entry(e.student_id).or_default().push(d),
            None => {
                tracing::warn!(embedding_id = %e.id, "stored embedding has the wrong length; ignored")
            }
        }
    }
    // In roll-number order, so that ties resolve the same way on every run.
    let enrolled: Vec<(Uuid, Vec<Descriptor>)> = students
        .iter()
        .filter_map(|s| by_student.remove(&s.id).map(|d| (s.id, d)))
        .collect();
    let ids = enrolled.iter().map(|(id, _)| *id).collect();
    // The model's own rule: ArcFace distances live on another scale than dlib's.
    let rule = match class.and_then(|c| c.match_threshold) {
        Some(t) => rule.with_max_distance(t as f32),
        None => rule,
    };
    Ok((Gallery::new(enrolled, rule), ids))
}

/// The students of the roll (active, or withdrawn) without an embedding of `model`,
/// and why, in roll order.
async fn not_yet_embedded(
    ctx: &JobContext,
    students: &[student::Model],
    enrolled: &HashSet<Uuid>,
    model: &str,
) -> Result<Vec<NotYetEmbedded>, JobError> {
    let missing: Vec<&student::Model> = students
        .iter()
        .filter(|s| !enrolled.contains(&s.id))
        .collect();
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = missing.iter().map(|s| s.id).collect();
    let mut other_models: HashMap<Uuid, Vec<String>> = HashMap::new();
    for (student_id, other) in face_embedding::Entity::find()
        .select_only()
        .column(face_embedding::Column::StudentId)
        .column(face_embedding::Column::Model)
        .distinct()
        .filter(face_embedding::Column::StudentId.is_in(ids.iter().copied()))
        .order_by_asc(face_embedding::Column::Model)
        .into_tuple::<(Uuid, String)>()
        .all(&ctx.db)
        .await?
    {
        other_models.entry(student_id).or_default().push(other);
    }
    // A re-embedding that already ran for this model and found no usable photo.
    let tried: HashSet<Uuid> = job::Entity::find()
        .filter(job::Column::Kind.eq(JobKind::Reembed))
        .filter(job::Column::Status.eq(job::JobStatus::Succeeded))
        .filter(job::Column::SubjectId.is_in(ids.iter().copied()))
        .all(&ctx.db)
        .await?
        .into_iter()
        .filter(|j| {
            j.result
                .as_ref()
                .and_then(common::job::result::JobResult::from_stored)
                .is_some_and(
                    |r| matches!(r, common::job::result::JobResult::Reembed(r) if r.model == model),
                )
        })
        .map(|j| j.subject_id)
        .collect();
    Ok(missing
        .into_iter()
        .map(|s| NotYetEmbedded {
            student_id: s.id,
            roll_no: s.roll_no.clone(),
            reason: if s.status == StudentStatus::Withdrawn {
                WITHDRAWN_REASON.to_string()
            } else {
                not_embedded_reason(
                    model,
                    other_models.get(&s.id).map(Vec::as_slice).unwrap_or(&[]),
                    tried.contains(&s.id),
                )
            },
        })
        .collect())
}

/// Why a student who withdrew consent is not matched.
pub const WITHDRAWN_REASON: &str =
    "consent withdrawn: face data erased, not recognised until registered again; mark by hand";

/// Why a student has no embedding of `model`, as an admin reads it.
pub fn not_embedded_reason(model: &str, other_models: &[String], tried: bool) -> String {
    if tried {
        format!("no registration photo is usable by {model}; upload new photos")
    } else if other_models.is_empty() {
        format!("no embedding of {model}; re-register the student's photos")
    } else {
        format!(
            "registered with {}; re-embedding with {model} pending",
            other_models.join(", ")
        )
    }
}

/// Writes the automatic record of one student, unless a person already set it: the
/// `source = 'auto'` guard holds even against a correction committed concurrently.
async fn upsert_record(
    db: &impl ConnectionTrait,
    session_id: Uuid,
    student_id: Uuid,
    status: RecordStatus,
    distance: Option<f64>,
) -> Result<(), DbErr> {
    let record = attendance_record::ActiveModel {
        id: Set(Uuid::new_v4()),
        session_id: Set(session_id),
        student_id: Set(student_id),
        status: Set(status),
        distance: Set(distance),
        source: Set(RecordSource::Auto),
        updated_at: Set(Utc::now()),
        corrected_by_key_id: Set(None),
    };
    let upsert = attendance_record::Entity::insert(record)
        .on_conflict(
            OnConflict::columns([
                attendance_record::Column::SessionId,
                attendance_record::Column::StudentId,
            ])
            .update_columns([
                attendance_record::Column::Status,
                attendance_record::Column::Distance,
                attendance_record::Column::UpdatedAt,
            ])
            .action_and_where(
                Expr::col((attendance_record::Entity, attendance_record::Column::Source))
                    .eq(RecordSource::Auto.to_value()),
            )
            .to_owned(),
        )
        .exec_without_returning(db)
        .await;
    match upsert {
        // Nothing written: the record is manual and stays as the person left it.
        Ok(_) | Err(DbErr::RecordNotInserted) => Ok(()),
        Err(e) => Err(e),
    }
}

/// An attendance job that failed for good leaves its session `failed`.
async fn mark_failed(db: &impl ConnectionTrait, session_id: Uuid) -> Result<(), DbErr> {
    attendance_session::Entity::update_many()
        .col_expr(
            attendance_session::Column::Status,
            Expr::value(SessionStatus::Failed),
        )
        .filter(attendance_session::Column::Id.eq(session_id))
        .filter(attendance_session::Column::Status.ne(SessionStatus::Completed))
        .exec(db)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn face_ids_are_stable_and_distinct() {
        let photo = Uuid::from_u128(42);
        assert_eq!(face_id(photo, 0), face_id(photo, 0));
        assert_ne!(face_id(photo, 0), face_id(photo, 1));
        assert_ne!(face_id(photo, 0), face_id(Uuid::from_u128(43), 0));
    }

    /// A unit descriptor along `axis`, nudged by `nudge` along the last axis.
    fn descriptor(axis: usize, nudge: f32) -> Descriptor {
        let mut d = vec![0.0; 128];
        d[axis] = 1.0;
        d[127] = nudge;
        d
    }

    #[test]
    fn decide_marks_each_student_once_and_keeps_strangers_unknown() {
        let [a, b, c] = [Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3)];
        // Three students √2 apart: each is accepted within the 0.475 ceiling.
        let gallery = Gallery::new(
            vec![
                (a, vec![descriptor(0, 0.0)]),
                (b, vec![descriptor(1, 0.0)]),
                (c, vec![descriptor(2, 0.0)]),
            ],
            DecisionRule::DEFAULT,
        );
        let faces = [
            descriptor(1, 0.2), // b
            descriptor(0, 0.1), // a
            descriptor(0, 0.3), // a again, further: one face per student
            descriptor(5, 0.0), // a stranger
        ];
        let decision = decide(&faces, &gallery, &[a, b, c], &HashSet::from([a, b, c]));
        assert_eq!(
            (decision.present, decision.absent, decision.unknown),
            (2, 1, 2)
        );
        let who: Vec<_> = decision.faces.iter().map(|f| f.student_id).collect();
        assert_eq!(who, vec![Some(b), Some(a), None, None]);
        // An unknown face keeps the distance to its nearest student, for review.
        assert!((decision.faces[2].distance.unwrap() - 0.3).abs() < 1e-5);
        assert!((decision.faces[3].distance.unwrap() - 2f32.sqrt()).abs() < 1e-5);
        let records: Vec<_> = decision
            .records
            .iter()
            .map(|r| (r.student_id, r.status))
            .collect();
        assert_eq!(
            records,
            vec![
                (a, RecordStatus::Present),
                (b, RecordStatus::Present),
                (c, RecordStatus::Absent),
            ]
        );
        assert!((decision.records[0].distance.unwrap() - 0.1).abs() < 1e-5);
        assert_eq!(decision.records[2].distance, None);
    }

    #[test]
    fn decide_with_an_empty_gallery_marks_everyone_absent() {
        let a = Uuid::from_u128(1);
        let gallery = Gallery::new(vec![(a, vec![])], DecisionRule::DEFAULT);
        let decision = decide(&[descriptor(0, 0.0)], &gallery, &[a], &HashSet::from([a]));
        assert_eq!(
            (decision.present, decision.absent, decision.unknown),
            (0, 1, 1)
        );
        assert_eq!(decision.faces[0].distance, None);
    }

    #[test]
    fn a_student_without_an_embedding_of_the_model_is_unmatched_not_absent() {
        let [a, b] = [Uuid::from_u128(1), Uuid::from_u128(2)];
        let gallery = Gallery::new(vec![(a, vec![descriptor(0, 0.0)])], DecisionRule::DEFAULT);
        let decision = decide(
            &[descriptor(0, 0.1)],
            &gallery,
            &[a, b],
            &HashSet::from([a]),
        );
        assert_eq!(
            (decision.present, decision.absent, decision.unmatched),
            (1, 0, 1)
        );
        assert_eq!(decision.records[1].status, RecordStatus::Unmatched);
        assert_eq!(
            not_embedded_reason("arcface_w600k_mbf", &["dlib_resnet_v1".into()], false),
            "registered with dlib_resnet_v1; re-embedding with arcface_w600k_mbf pending"
        );
        assert!(
            not_embedded_reason("arcface_w600k_mbf", &["dlib_resnet_v1".into()], true)
                .contains("upload new photos")
        );
    }
}
