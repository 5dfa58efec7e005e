//! Registration: a student's photos → one verdict per photo, an embedding per accepted
//! photo, and the student `active` (at least one accepted photo) or `failed`.
//!
//! Three steps: look at each photo (storage + engine), [`decide`] (pure: faces and the
//! classmates' descriptors in, verdicts out), then write the decision in one transaction.
//!
//! A registration photo must show one dominant, sharp, large enough face: the gallery
//! is only as good as its worst photo, and a wrong face here would make every later
//! session mark the wrong person present.

use std::collections::HashMap;

use chrono::Utc;
use common::JobKind;
use common::job::result::{
    self, PhotoCheck, PossibleDuplicate, RegisteredStatus, RegistrationResult, Rejection, Verdict,
};
use models::detected_face::FaceBox;
use models::face_embedding;
use models::job;
use models::student::{self, StudentStatus};
use models::student_photo::{self, PhotoVerdict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, TransactionTrait,
};
use serde_json::json;
use uuid::Uuid;

use super::{Job, JobContext, JobError, Outcome, Progress, blocking, engine_error, fetch_photo};
use crate::engine::detector::FaceDetector;
use crate::engine::matching::{Descriptor, distance};
use crate::engine::pipeline::{Face, FaceEngine};
use common::FaceModel;

/// Lowest MTCNN score of an accepted face.
pub const MIN_SCORE: f32 = 0.95;
/// Lowest SCRFD score of an accepted face. SCRFD's scores run lower than MTCNN's for the
/// same sharp portrait: on the committed and South-Asian photos (116 faces found by
/// `attendance-worker detect --model arcface-mbf`) they lie between 0.60 and 0.88
/// (median 0.80), so MTCNN's 0.95 would refuse every photo. SCRFD itself drops < 0.5.
pub const MIN_SCRFD_SCORE: f32 = 0.55;
/// Narrowest accepted face, in pixels (dlib's chip is 150 px; much smaller faces give
/// unreliable descriptors).
pub const MIN_FACE_WIDTH: f32 = 80.0;
/// With several faces, the largest must be at least this many times the area of the
/// next one to count as the subject of the photo.
pub const DOMINANCE: f32 = 2.0;
/// An accepted face this close to another active student of the class is flagged as a
/// possible duplicate registration.
pub const DUPLICATE_DISTANCE: f32 = 0.4;
/// The same for ArcFace (unit 512-D descriptors): cosine similarity ≥ 0.5, well inside
/// its acceptance rule (cosine ≥ 0.35), i.e. Euclidean distance ≤ 1.0.
pub const ARCFACE_DUPLICATE_DISTANCE: f32 = 1.0;

/// What a registration photo must meet, on the scales of the engine's detector and model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Standards {
    pub min_score: f32,
    pub duplicate_distance: f32,
}

impl Standards {
    /// The dlib pipeline's (MTCNN + dlib ResNet).
    pub const DLIB: Standards = Standards {
        min_score: MIN_SCORE,
        duplicate_distance: DUPLICATE_DISTANCE,
    };

    /// The standards of the loaded engine.
    pub fn for_engine(engine: &FaceEngine) -> Standards {
        let min_score = match engine.detector() {
            FaceDetector::Mtcnn(_) => MIN_SCORE,
            FaceDetector::Scrfd(_) => MIN_SCRFD_SCORE,
        };
        let duplicate_distance = match engine.face_model() {
            FaceModel::DlibResnet => DUPLICATE_DISTANCE,
            FaceModel::ArcfaceMbf => ARCFACE_DUPLICATE_DISTANCE,
        };
        Standards {
            min_score,
            duplicate_distance,
        }
    }
}

/// The verdict on one photo's faces: the index of the accepted face, or why not (with
/// the face the verdict is about, when there is one).
pub fn judge(faces: &[Face], min_score: f32) -> Result<usize, (Rejection, Option<usize>)> {
    let mut by_area: Vec<usize> = (0..faces.len()).collect();
    by_area.sort_by(|&a, &b| faces[b].area().total_cmp(&faces[a].area()));
    let Some(&largest) = by_area.first() else {
        return Err((Rejection::NoFace, None));
    };
    if let Some(&second) = by_area.get(1)
        && faces[largest].area() < DOMINANCE * faces[second].area()
    {
        return Err((Rejection::SeveralFaces, Some(largest)));
    }
    let face = &faces[largest];
    if face.width() < MIN_FACE_WIDTH {
        return Err((Rejection::FaceTooSmall, Some(largest)));
    }
    if face.detection.score < min_score {
        return Err((Rejection::LowConfidence, Some(largest)));
    }
    Ok(largest)
}

/// What the engine made of one registration photo.
#[derive(Debug, Clone)]
pub enum Seen {
    /// Missing from storage, or not a readable image.
    Unreadable,
    Faces(Vec<Face>),
}

/// Another active student of the class, with their registered descriptors (of the
/// engine's model), for the duplicate check.
#[derive(Debug, Clone)]
pub struct Classmate {
    pub student_id: Uuid,
    pub roll_no: String,
    pub name: String,
    pub descriptors: Vec<Descriptor>,
}

/// What the pure step decided; the persisting step writes exactly this.
#[derive(Debug, Clone)]
pub struct Decision {
    pub result: RegistrationResult,
    pub status: StudentStatus,
    /// Per photo, in order: the descriptor to store when the photo is accepted.
    pub embeddings: Vec<Option<Descriptor>>,
}

/// The pure step: the photos' faces (in upload order) and the classmates' descriptors
/// → a verdict per photo, possible duplicates, and the student's new status.
pub fn decide(
    student_id: Uuid,
    current: StudentStatus,
    model: &str,
    photos: &[(Uuid, Seen)],
    classmates: &[Classmate],
    standards: Standards,
) -> Decision {
    let mut checks = Vec::with_capacity(photos.len());
    let mut embeddings = Vec::with_capacity(photos.len());
    // Per classmate, the nearest distance to any accepted photo.
    let mut nearest: HashMap<Uuid, f32> = HashMap::new();
    for (photo_id, seen) in photos {
        let (mut check, descriptor) = check_photo(*photo_id, seen, standards.min_score);
        if let Some(ours) = &descriptor {
            let mut closest: Option<(&Classmate, f32)> = None;
            for mate in classmates {
                let Some(d) = mate
                    .descriptors
                    .iter()
                    .map(|theirs| distance(ours, theirs))
                    .min_by(f32::total_cmp)
                else {
                    continue;
                };
                let best = nearest.entry(mate.student_id).or_insert(f32::INFINITY);
                *best = best.min(d);
                if closest.is_none_or(|(_, c)| d < c) {
                    closest = Some((mate, d));
                }
            }
            check.same_as = closest
                .filter(|&(_, d)| d <= standards.duplicate_distance)
                .map(|(mate, d)| duplicate(mate, d));
            check.note = check.same_as.as_ref().map(PossibleDuplicate::describe);
        }
        checks.push(check);
        embeddings.push(descriptor);
    }
    let mut possible_duplicates: Vec<PossibleDuplicate> = classmates
        .iter()
        .filter_map(|mate| {
            let d = *nearest.get(&mate.student_id)?;
            (d <= standards.duplicate_distance).then(|| duplicate(mate, d))
        })
        .collect();
    possible_duplicates.sort_by(|a, b| a.distance.total_cmp(&b.distance));

    let accepted = checks
        .iter()
        .filter(|c| c.verdict == Verdict::Accepted)
        .count() as u32;
    // An admin's `inactive` stands; otherwise the photos decide.
    let (status, registered) = match current {
        StudentStatus::Inactive => (StudentStatus::Inactive, RegisteredStatus::Inactive),
        _ if accepted > 0 => (StudentStatus::Active, RegisteredStatus::Active),
        _ => (StudentStatus::Failed, RegisteredStatus::Failed),
    };
    Decision {
        result: RegistrationResult {
            student_id,
            status: registered,
            model: model.to_string(),
            accepted,
            rejected: checks.len() as u32 - accepted,
            photos: checks,
            possible_duplicates,
        },
        status,
        embeddings,
    }
}

/// One photo's verdict, and its descriptor when accepted.
fn check_photo(photo_id: Uuid, seen: &Seen, min_score: f32) -> (PhotoCheck, Option<Descriptor>) {
    let faces = match seen {
        Seen::Unreadable => return (rejected(photo_id, Rejection::Unreadable, None, 0), None),
        Seen::Faces(faces) => faces,
    };
    let count = faces.len() as u32;
    match judge(faces, min_score) {
        Ok(i) => {
            let face = &faces[i];
            let check = PhotoCheck {
                photo_id,
                verdict: Verdict::Accepted,
                reason: None,
                note: None,
                face_box: Some(result_box(face.detection.bbox)),
                score: Some(face.detection.score),
                faces: count,
                same_as: None,
            };
            (check, Some(face.descriptor.clone()))
        }
        Err((reason, face)) => (
            rejected(photo_id, reason, face.map(|i| &faces[i]), count),
            None,
        ),
    }
}

fn rejected(photo_id: Uuid, reason: Rejection, face: Option<&Face>, faces: u32) -> PhotoCheck {
    PhotoCheck {
        photo_id,
        verdict: Verdict::Rejected,
        reason: Some(reason),
        note: Some(reason.describe(Some(faces))),
        face_box: face.map(|f| result_box(f.detection.bbox)),
        score: face.map(|f| f.detection.score),
        faces,
        same_as: None,
    }
}

fn duplicate(mate: &Classmate, distance: f32) -> PossibleDuplicate {
    PossibleDuplicate {
        student_id: mate.student_id,
        roll_no: mate.roll_no.clone(),
        name: mate.name.clone(),
        distance,
    }
}

/// The registration job.
pub struct Registration;

impl Job for Registration {
    const KIND: JobKind = JobKind::Registration;
    type Output = RegistrationResult;

    async fn run(
        ctx: &JobContext,
        job: &job::Model,
        progress: &Progress<'_>,
    ) -> Result<Outcome<RegistrationResult>, JobError> {
        run(ctx, job, progress).await
    }

    async fn mark_subject_failed(
        db: &DatabaseTransaction,
        _public_url: &str,
        student_id: Uuid,
    ) -> Result<(), DbErr> {
        mark_failed(db, student_id).await
    }
}

async fn run(
    ctx: &JobContext,
    job: &job::Model,
    progress: &Progress<'_>,
) -> Result<Outcome<RegistrationResult>, JobError> {
    let Some(prepared) = prepare(ctx, job, progress).await? else {
        return Ok(Outcome::Skipped(format!(
            "student {} no longer exists or their face data was erased",
            job.subject_id
        )));
    };
    let txn = ctx.db.begin().await?;
    let result = write(&txn, job, prepared).await?;
    txn.commit().await?;
    Ok(Outcome::Completed(result))
}

/// What a registration decided, before anything is written.
pub(crate) struct Prepared {
    student: student::Model,
    photos: Vec<student_photo::Model>,
    model: String,
    decision: Decision,
}

/// The reading and deciding part of a registration (storage, engine, classmates);
/// `None` when the student no longer exists, was deleted, or withdrew consent (and
/// has no new photo).
pub(crate) async fn prepare(
    ctx: &JobContext,
    job: &job::Model,
    progress: &Progress<'_>,
) -> Result<Option<Prepared>, JobError> {
    let student_id = job.subject_id;
    tracing::Span::current().record("student_id", tracing::field::display(student_id));
    let Some(student) = student::Entity::find_by_id(student_id).one(&ctx.db).await? else {
        tracing::warn!(%student_id, "student no longer exists; nothing to register");
        return Ok(None);
    };
    // A deleted student's data was erased: a job queued before that has nothing to do
    // (and must not make the tombstone a student again).
    if student.status == StudentStatus::Deleted {
        tracing::warn!(%student_id, "student was deleted; nothing to register");
        return Ok(None);
    }
    let photos = load_photos(&ctx.db, student_id).await?;
    // Consent withdrawn after the job was queued: the photos are gone and the student
    // stays withdrawn. (Photos added after the withdrawal are a new registration.)
    if student.status == StudentStatus::Withdrawn && photos.is_empty() {
        tracing::warn!(%student_id, "student withdrew consent; nothing to register");
        return Ok(None);
    }
    let seen = look_at_all(ctx, &photos, progress).await?;
    let model = ctx.engine.model_name();
    let classmates = load_classmates(ctx, &student, model).await?;
    let mut decision = decide(
        student_id,
        student.status,
        model,
        &seen,
        &classmates,
        Standards::for_engine(&ctx.engine),
    );
    // Faces enrolled from sessions are in the gallery too: with one of them the student
    // stays matchable even when every uploaded photo is rejected.
    if decision.status == StudentStatus::Failed && has_enrolled_faces(&ctx.db, student_id).await? {
        decision.status = StudentStatus::Active;
        decision.result.status = RegisteredStatus::Active;
    }
    if !decision.result.possible_duplicates.is_empty() {
        tracing::warn!(
            count = decision.result.possible_duplicates.len(),
            "registration looks like another active student"
        );
    }
    Ok(Some(Prepared {
        student,
        photos,
        model: model.to_string(),
        decision,
    }))
}

/// Writes a prepared registration and marks the job `succeeded`, in the caller's
/// transaction (a batch's student adds its batch outcome to the same transaction).
pub(crate) async fn write(
    txn: &DatabaseTransaction,
    job: &job::Model,
    prepared: Prepared,
) -> Result<RegistrationResult, JobError> {
    let Prepared {
        student,
        photos,
        model,
        decision:
            Decision {
                result,
                status,
                embeddings,
            },
    } = prepared;
    let now = Utc::now();
    write_photos(
        txn,
        student.id,
        &model,
        &photos,
        &result.photos,
        &embeddings,
    )
    .await?;
    let mut row = student.into_active_model();
    row.status = Set(status);
    row.updated_at = Set(now);
    student::Entity::update(row).exec(txn).await?;
    super::complete(txn, job, &result.clone().into()).await?;
    tracing::info!(
        accepted = result.accepted,
        rejected = result.rejected,
        ?status,
        "registration done"
    );
    Ok(result)
}

/// Rewrites `model`'s embeddings of the student's `photos` from scratch (a re-run gives
/// the same rows, and a photo that is now rejected loses its old embedding; other
/// models' embeddings and those of faces enrolled from sessions are left alone) and
/// records each photo's verdict.
pub(crate) async fn write_photos(
    txn: &DatabaseTransaction,
    student_id: Uuid,
    model: &str,
    photos: &[student_photo::Model],
    checks: &[PhotoCheck],
    embeddings: &[Option<Descriptor>],
) -> Result<(), DbErr> {
    let now = Utc::now();
    face_embedding::Entity::delete_many()
        .filter(face_embedding::Column::StudentId.eq(student_id))
        .filter(face_embedding::Column::Model.eq(model))
        .filter(face_embedding::Column::PhotoId.is_in(photos.iter().map(|p| p.id)))
        .exec(txn)
        .await?;
    for ((photo, check), descriptor) in photos.iter().zip(checks).zip(embeddings) {
        let mut row = photo.clone().into_active_model();
        row.verdict = Set(match check.verdict {
            Verdict::Accepted => PhotoVerdict::Accepted,
            Verdict::Rejected => PhotoVerdict::Rejected,
        });
        row.reason = Set(check.reason.map(|r| r.as_str().to_string()));
        row.face_box = Set(check.face_box.map(|b| json!(b)));
        row.detector_score = Set(check.score.map(f64::from));
        student_photo::Entity::update(row).exec(txn).await?;
        if let Some(descriptor) = descriptor {
            face_embedding::Entity::insert(face_embedding::ActiveModel {
                id: Set(Uuid::new_v4()),
                photo_id: Set(photo.id),
                student_id: Set(student_id),
                model: Set(model.to_string()),
                vector: Set(models::vector::encode(descriptor)),
                created_at: Set(now),
            })
            .exec_without_returning(txn)
            .await?;
        }
    }
    Ok(())
}

/// Whether the student has a face enrolled from a session (see [`load_photos`]).
async fn has_enrolled_faces(db: &impl ConnectionTrait, student_id: Uuid) -> Result<bool, DbErr> {
    Ok(student_photo::Entity::find()
        .filter(student_photo::Column::StudentId.eq(student_id))
        .filter(student_photo::Column::SourceFaceId.is_not_null())
        .one(db)
        .await?
        .is_some())
}

/// The student's uploaded registration photos, oldest first. Crops of faces enrolled
/// from sessions are not judged again: their descriptor came from the session photo,
/// and a classroom crop would rarely meet a portrait's standards.
pub(crate) async fn load_photos(
    db: &impl ConnectionTrait,
    student_id: Uuid,
) -> Result<Vec<student_photo::Model>, DbErr> {
    student_photo::Entity::find()
        .filter(student_photo::Column::StudentId.eq(student_id))
        .filter(student_photo::Column::SourceFaceId.is_null())
        .order_by_asc(student_photo::Column::CreatedAt)
        .order_by_asc(student_photo::Column::Id)
        .all(db)
        .await
}

/// What the engine sees in each of a student's photos, reporting progress as it goes
/// (the last step, writing, is left to the caller).
pub(crate) async fn look_at_all(
    ctx: &JobContext,
    photos: &[student_photo::Model],
    progress: &Progress<'_>,
) -> Result<Vec<(Uuid, Seen)>, JobError> {
    let mut seen = Vec::with_capacity(photos.len());
    for (i, photo) in photos.iter().enumerate() {
        seen.push((photo.id, look_at(ctx, photo).await?));
        progress
            .set((i + 1) as f64 / (photos.len() + 1) as f64)
            .await;
    }
    Ok(seen)
}

/// Fetches, decodes and analyses one photo.
async fn look_at(ctx: &JobContext, photo: &student_photo::Model) -> Result<Seen, JobError> {
    let Some(bytes) = fetch_photo(ctx.blobs.as_ref(), &photo.blob_key).await? else {
        tracing::warn!(photo_id = %photo.id, key = %photo.blob_key, "registration photo missing from storage");
        return Ok(Seen::Unreadable);
    };
    let engine = ctx.engine.clone();
    let what = format!("photo {}", photo.id);
    let analysed = blocking(move || {
        // Reduced when larger than the working size; boxes back in the photo's pixels.
        let photo = match engine.decode(&bytes, &what) {
            Ok(photo) => photo,
            Err(e) => return Ok(Err(e)),
        };
        drop(bytes);
        let faces = engine.analyze_portrait(&photo.image)?;
        Ok(Ok(faces
            .into_iter()
            .map(|f| Face {
                detection: photo.to_original(&f.detection),
                descriptor: f.descriptor,
            })
            .collect()))
    })
    .await?
    .map_err(|e| engine_error(&format!("photo {}", photo.id), e))?;
    Ok(match analysed {
        Ok(faces) => Seen::Faces(faces),
        Err(e) => {
            tracing::warn!(photo_id = %photo.id, error = %e, "registration photo is not a readable image");
            Seen::Unreadable
        }
    })
}

/// The other active students of the class with their embeddings of `model`.
async fn load_classmates(
    ctx: &JobContext,
    student: &student::Model,
    model: &str,
) -> Result<Vec<Classmate>, JobError> {
    let others = student::Entity::find()
        .filter(student::Column::ClassId.eq(student.class_id))
        .filter(student::Column::Status.eq(StudentStatus::Active))
        .filter(student::Column::Id.ne(student.id))
        .order_by_asc(student::Column::RollNo)
        .all(&ctx.db)
        .await?;
    if others.is_empty() {
        return Ok(Vec::new());
    }
    let embeddings = face_embedding::Entity::find()
        .filter(face_embedding::Column::StudentId.is_in(others.iter().map(|s| s.id)))
        .filter(face_embedding::Column::Model.eq(model))
        .all(&ctx.db)
        .await?;
    let mut by_student: HashMap<Uuid, Vec<Descriptor>> = HashMap::new();
    for embedding in &embeddings {
        match to_descriptor(&embedding.vector) {
            Some(d) => by_student.entry(embedding.student_id).or_default().push(d),
            None => {
                tracing::warn!(embedding_id = %embedding.id, "stored embedding has the wrong length; ignored")
            }
        }
    }
    Ok(others
        .into_iter()
        .map(|s| Classmate {
            descriptors: by_student.remove(&s.id).unwrap_or_default(),
            student_id: s.id,
            roll_no: s.roll_no,
            name: s.name,
        })
        .collect())
}

/// A stored embedding as a descriptor, if it decodes (the gallery is filtered by model,
/// so its descriptors share that model's length).
pub(crate) fn to_descriptor(bytes: &[u8]) -> Option<Descriptor> {
    models::vector::decode(bytes).ok()
}

pub(crate) fn face_box(bbox: [f32; 4]) -> FaceBox {
    let [x1, y1, x2, y2] = bbox;
    FaceBox { x1, y1, x2, y2 }
}

fn result_box(bbox: [f32; 4]) -> result::FaceBox {
    let [x1, y1, x2, y2] = bbox;
    result::FaceBox { x1, y1, x2, y2 }
}

/// A registration that failed for good leaves the student `failed` (unless an admin
/// already set them `inactive`).
pub(crate) async fn mark_failed(db: &impl ConnectionTrait, student_id: Uuid) -> Result<(), DbErr> {
    student::Entity::update_many()
        .col_expr(
            student::Column::Status,
            sea_orm::sea_query::Expr::value(StudentStatus::Failed),
        )
        .col_expr(
            student::Column::UpdatedAt,
            sea_orm::sea_query::Expr::value(Utc::now()),
        )
        .filter(student::Column::Id.eq(student_id))
        .filter(student::Column::Status.eq(StudentStatus::Pending))
        .exec(db)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::mtcnn::Detection;

    /// A descriptor `offset` away from the origin along the first axis.
    fn descriptor(offset: f32) -> Descriptor {
        let mut d = vec![0.0; 128];
        d[0] = offset;
        d
    }

    /// A face `width` px wide at `x`, with the detector's `score`.
    fn face(x: f32, width: f32, score: f32, descriptor: Descriptor) -> Face {
        Face {
            detection: Detection {
                bbox: [x, 20.0, x + width, 20.0 + 1.25 * width],
                score,
                landmarks: [[0.0; 2]; 5],
            },
            descriptor,
        }
    }

    fn classmate(roll_no: &str, name: &str, at: f32) -> Classmate {
        Classmate {
            student_id: Uuid::new_v4(),
            roll_no: roll_no.into(),
            name: name.into(),
            descriptors: vec![descriptor(at)],
        }
    }

    #[test]
    fn judge_wants_one_dominant_large_sharp_face() {
        let d = descriptor(0.0);
        assert_eq!(judge(&[], MIN_SCORE), Err((Rejection::NoFace, None)));
        let pair = [
            face(0.0, 120.0, 0.99, d.clone()),
            face(200.0, 110.0, 0.99, d.clone()),
        ];
        assert_eq!(
            judge(&pair, MIN_SCORE),
            Err((Rejection::SeveralFaces, Some(0)))
        );
        // A passer-by far smaller than the subject does not spoil the photo.
        let with_passer_by = [
            face(300.0, 40.0, 0.97, d.clone()),
            face(0.0, 150.0, 0.99, d.clone()),
        ];
        assert_eq!(judge(&with_passer_by, MIN_SCORE), Ok(1));
        let small = [face(0.0, MIN_FACE_WIDTH - 1.0, 0.99, d.clone())];
        assert_eq!(
            judge(&small, MIN_SCORE),
            Err((Rejection::FaceTooSmall, Some(0)))
        );
        let blurred = [face(0.0, 150.0, MIN_SCORE - 0.01, d.clone())];
        assert_eq!(
            judge(&blurred, MIN_SCORE),
            Err((Rejection::LowConfidence, Some(0)))
        );
        // SCRFD's scale: a sharp portrait at 0.8 passes, a doubtful face at 0.5 does not.
        let scrfd = [face(0.0, 150.0, 0.8, d.clone())];
        assert_eq!(judge(&scrfd, MIN_SCRFD_SCORE), Ok(0));
        let doubtful = [face(0.0, 150.0, 0.5, d.clone())];
        assert_eq!(
            judge(&doubtful, MIN_SCRFD_SCORE),
            Err((Rejection::LowConfidence, Some(0)))
        );
    }

    #[test]
    fn decide_gives_each_photo_a_readable_verdict() {
        let student = Uuid::new_v4();
        let asha = classmate("21CS004", "Asha Rao", 1.0);
        let ravi = classmate("21CS007", "Ravi Kumar", 2.0);
        let photos = [
            (
                Uuid::from_u128(1),
                Seen::Faces(vec![face(10.0, 160.0, 0.999, descriptor(1.3))]),
            ),
            (Uuid::from_u128(2), Seen::Faces(vec![])),
            (
                Uuid::from_u128(3),
                Seen::Faces(vec![
                    face(0.0, 120.0, 0.99, descriptor(5.0)),
                    face(200.0, 115.0, 0.99, descriptor(6.0)),
                ]),
            ),
            (Uuid::from_u128(4), Seen::Unreadable),
            (
                Uuid::from_u128(5),
                Seen::Faces(vec![face(0.0, 50.0, 0.99, descriptor(9.0))]),
            ),
        ];
        let decision = decide(
            student,
            StudentStatus::Pending,
            "dlib_resnet_v1",
            &photos,
            &[asha.clone(), ravi],
            Standards::DLIB,
        );
        let r = &decision.result;
        assert_eq!((r.accepted, r.rejected), (1, 4));
        assert_eq!(r.status, RegisteredStatus::Active);
        assert_eq!(decision.status, StudentStatus::Active);
        let verdicts: Vec<_> = r
            .photos
            .iter()
            .map(|p| (p.photo_id, p.verdict, p.reason, p.note.as_deref(), p.faces))
            .collect();
        assert_eq!(
            verdicts,
            vec![
                (
                    Uuid::from_u128(1),
                    Verdict::Accepted,
                    None,
                    Some("same person as roll 21CS004 (Asha Rao)"),
                    1
                ),
                (
                    Uuid::from_u128(2),
                    Verdict::Rejected,
                    Some(Rejection::NoFace),
                    Some("no face found"),
                    0
                ),
                (
                    Uuid::from_u128(3),
                    Verdict::Rejected,
                    Some(Rejection::SeveralFaces),
                    Some("2 faces — use a photo with only the student"),
                    2
                ),
                (
                    Uuid::from_u128(4),
                    Verdict::Rejected,
                    Some(Rejection::Unreadable),
                    Some("the file could not be read as a photo"),
                    0
                ),
                (
                    Uuid::from_u128(5),
                    Verdict::Rejected,
                    Some(Rejection::FaceTooSmall),
                    Some("face too small — take the photo closer"),
                    1
                ),
            ]
        );
        // Only Asha (0.3 away) is close enough to be a duplicate; Ravi is 0.7 away.
        let same_as = r.photos[0].same_as.as_ref().expect("flagged");
        assert_eq!(same_as.student_id, asha.student_id);
        assert!((same_as.distance - 0.3).abs() < 1e-5);
        assert_eq!(r.possible_duplicates.len(), 1);
        assert_eq!(r.possible_duplicates[0].roll_no, "21CS004");
        // Only the accepted photo is embedded.
        assert_eq!(decision.embeddings[0], Some(descriptor(1.3)));
        assert!(decision.embeddings[1..].iter().all(Option::is_none));
    }

    #[test]
    fn decide_without_a_usable_photo_fails_but_respects_inactive() {
        let photos = [(Uuid::from_u128(1), Seen::Faces(vec![]))];
        let failed = decide(
            Uuid::new_v4(),
            StudentStatus::Pending,
            "m",
            &photos,
            &[],
            Standards::DLIB,
        );
        assert_eq!(failed.status, StudentStatus::Failed);
        assert_eq!(failed.result.status, RegisteredStatus::Failed);
        assert!(failed.result.possible_duplicates.is_empty());

        let good = [(
            Uuid::from_u128(1),
            Seen::Faces(vec![face(0.0, 150.0, 0.99, descriptor(0.0))]),
        )];
        let inactive = decide(
            Uuid::new_v4(),
            StudentStatus::Inactive,
            "m",
            &good,
            &[],
            Standards::DLIB,
        );
        assert_eq!(inactive.status, StudentStatus::Inactive);
        assert_eq!(inactive.result.accepted, 1);
        assert_eq!(inactive.result.photos[0].note, None);
    }
}
