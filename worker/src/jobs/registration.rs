//! Registration: a student's photos → one verdict per photo, an embedding per accepted
//! photo, and the student `active` (at least one accepted photo) or `failed`.
//!
//! A registration photo must show one dominant, sharp, large enough face: the gallery
//! is only as good as its worst photo, and a wrong face here would make every later
//! session mark the wrong person present.

use std::collections::HashMap;

use chrono::Utc;
use models::detected_face::FaceBox;
use models::face_embedding;
use models::job;
use models::student::{self, StudentStatus};
use models::student_photo::{self, PhotoVerdict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, TransactionTrait,
};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::{JobContext, JobError, Outcome, Progress, blocking, engine_error, fetch_photo};
use crate::engine::matching::{Descriptor, distance};
use crate::engine::pipeline::{Face, decode_image};

/// Lowest detector score of an accepted face.
pub const MIN_SCORE: f32 = 0.95;
/// Narrowest accepted face, in pixels (dlib's chip is 150 px; much smaller faces give
/// unreliable descriptors).
pub const MIN_FACE_WIDTH: f32 = 80.0;
/// With several faces, the largest must be at least this many times the area of the
/// next one to count as the subject of the photo.
pub const DOMINANCE: f32 = 2.0;
/// An accepted face this close to another active student of the class is flagged as a
/// possible duplicate registration.
pub const DUPLICATE_DISTANCE: f32 = 0.4;

/// Why a registration photo was refused (stored in `student_photos.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    NoFace,
    SeveralFaces,
    FaceTooSmall,
    LowConfidence,
    /// The stored file is missing or is not a readable image.
    Unreadable,
}

impl Rejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::NoFace => "no_face",
            Rejection::SeveralFaces => "several_faces",
            Rejection::FaceTooSmall => "face_too_small",
            Rejection::LowConfidence => "low_confidence",
            Rejection::Unreadable => "unreadable",
        }
    }
}

/// The verdict on one photo's faces: the index of the accepted face, or why not (with
/// the face the verdict is about, when there is one).
pub fn judge(faces: &[Face]) -> Result<usize, (Rejection, Option<usize>)> {
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
    if face.detection.score < MIN_SCORE {
        return Err((Rejection::LowConfidence, Some(largest)));
    }
    Ok(largest)
}

/// One photo's verdict, as stored and as reported in the job result.
#[derive(Debug, Clone, Serialize)]
pub struct PhotoReport {
    pub photo_id: Uuid,
    pub verdict: PhotoVerdict,
    pub reason: Option<&'static str>,
    pub face_box: Option<FaceBox>,
    pub score: Option<f32>,
    /// Faces the detector found in the photo.
    pub faces: usize,
    #[serde(skip)]
    descriptor: Option<Descriptor>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PossibleDuplicate {
    pub student_id: Uuid,
    pub roll_no: String,
    pub name: String,
    pub distance: f32,
}

pub async fn run(
    ctx: &JobContext,
    job: &job::Model,
    progress: &Progress<'_>,
) -> Result<Outcome, JobError> {
    let student_id = job.subject_id;
    tracing::Span::current().record("student_id", tracing::field::display(student_id));
    let Some(student) = student::Entity::find_by_id(student_id).one(&ctx.db).await? else {
        tracing::warn!(%student_id, "student no longer exists; nothing to register");
        return Ok(Outcome::Skipped(format!(
            "student {student_id} no longer exists"
        )));
    };
    let photos = student_photo::Entity::find()
        .filter(student_photo::Column::StudentId.eq(student_id))
        .order_by_asc(student_photo::Column::CreatedAt)
        .order_by_asc(student_photo::Column::Id)
        .all(&ctx.db)
        .await?;

    let mut reports = Vec::with_capacity(photos.len());
    for (i, photo) in photos.iter().enumerate() {
        reports.push(check_photo(ctx, photo).await?);
        progress
            .set((i + 1) as f64 / (photos.len() + 1) as f64)
            .await;
    }

    let model = ctx.engine.model_name();
    let duplicates = possible_duplicates(ctx, &student, model, &reports).await?;
    let accepted = reports
        .iter()
        .filter(|r| r.verdict == PhotoVerdict::Accepted)
        .count();
    // An admin's `inactive` stands; otherwise the photos decide.
    let status = match student.status {
        StudentStatus::Inactive => StudentStatus::Inactive,
        _ if accepted > 0 => StudentStatus::Active,
        _ => StudentStatus::Failed,
    };
    let result = json!({
        "student_id": student_id,
        "status": status,
        "model": model,
        "accepted": accepted,
        "rejected": reports.len() - accepted,
        "photos": reports,
        "possible_duplicates": duplicates,
    });

    let txn = ctx.db.begin().await?;
    let now = Utc::now();
    // Rewrite this model's embeddings of the student from scratch: a re-run gives the
    // same rows, and a photo that is now rejected loses its old embedding.
    face_embedding::Entity::delete_many()
        .filter(face_embedding::Column::StudentId.eq(student_id))
        .filter(face_embedding::Column::Model.eq(model))
        .exec(&txn)
        .await?;
    for (photo, report) in photos.iter().zip(&reports) {
        let mut row = photo.clone().into_active_model();
        row.verdict = Set(report.verdict);
        row.reason = Set(report.reason.map(str::to_string));
        row.face_box = Set(report.face_box.map(|b| json!(b)));
        row.detector_score = Set(report.score.map(f64::from));
        student_photo::Entity::update(row).exec(&txn).await?;
        if let Some(descriptor) = &report.descriptor {
            face_embedding::Entity::insert(face_embedding::ActiveModel {
                id: Set(Uuid::new_v4()),
                photo_id: Set(photo.id),
                student_id: Set(student_id),
                model: Set(model.to_string()),
                vector: Set(models::vector::encode(descriptor)),
                created_at: Set(now),
            })
            .exec_without_returning(&txn)
            .await?;
        }
    }
    let mut row = student.into_active_model();
    row.status = Set(status);
    row.updated_at = Set(now);
    student::Entity::update(row).exec(&txn).await?;
    super::complete(&txn, job, &result).await?;
    txn.commit().await?;
    tracing::info!(
        accepted,
        rejected = reports.len() - accepted,
        ?status,
        "registration done"
    );
    Ok(Outcome::Completed(result))
}

/// Fetches, decodes and analyses one photo and judges it.
async fn check_photo(
    ctx: &JobContext,
    photo: &student_photo::Model,
) -> Result<PhotoReport, JobError> {
    let rejected = |reason: Rejection, face: Option<&Face>, faces: usize| PhotoReport {
        photo_id: photo.id,
        verdict: PhotoVerdict::Rejected,
        reason: Some(reason.as_str()),
        face_box: face.map(|f| face_box(f.detection.bbox)),
        score: face.map(|f| f.detection.score),
        faces,
        descriptor: None,
    };
    let Some(bytes) = fetch_photo(ctx.blobs.as_ref(), &photo.blob_key).await? else {
        tracing::warn!(photo_id = %photo.id, key = %photo.blob_key, "registration photo missing from storage");
        return Ok(rejected(Rejection::Unreadable, None, 0));
    };
    let engine = ctx.engine.clone();
    let what = format!("photo {}", photo.id);
    let analysed = blocking(move || {
        let image = match decode_image(&bytes, &what) {
            Ok(image) => image,
            Err(e) => return Ok(Err(e)),
        };
        engine.analyze(&image).map(Ok)
    })
    .await?
    .map_err(|e| engine_error(&format!("photo {}", photo.id), e))?;
    let faces = match analysed {
        Ok(faces) => faces,
        Err(e) => {
            tracing::warn!(photo_id = %photo.id, error = %e, "registration photo is not a readable image");
            return Ok(rejected(Rejection::Unreadable, None, 0));
        }
    };
    Ok(match judge(&faces) {
        Ok(i) => {
            let face = &faces[i];
            PhotoReport {
                photo_id: photo.id,
                verdict: PhotoVerdict::Accepted,
                reason: None,
                face_box: Some(face_box(face.detection.bbox)),
                score: Some(face.detection.score),
                faces: faces.len(),
                descriptor: Some(face.descriptor),
            }
        }
        Err((reason, face)) => rejected(reason, face.map(|i| &faces[i]), faces.len()),
    })
}

/// Other active students of the class whose registered faces are within
/// [`DUPLICATE_DISTANCE`] of one of this registration's accepted faces.
async fn possible_duplicates(
    ctx: &JobContext,
    student: &student::Model,
    model: &str,
    reports: &[PhotoReport],
) -> Result<Vec<PossibleDuplicate>, JobError> {
    let accepted: Vec<&Descriptor> = reports
        .iter()
        .filter_map(|r| r.descriptor.as_ref())
        .collect();
    if accepted.is_empty() {
        return Ok(Vec::new());
    }
    let others: HashMap<Uuid, student::Model> = student::Entity::find()
        .filter(student::Column::ClassId.eq(student.class_id))
        .filter(student::Column::Status.eq(StudentStatus::Active))
        .filter(student::Column::Id.ne(student.id))
        .all(&ctx.db)
        .await?
        .into_iter()
        .map(|s| (s.id, s))
        .collect();
    if others.is_empty() {
        return Ok(Vec::new());
    }
    let embeddings = face_embedding::Entity::find()
        .filter(face_embedding::Column::StudentId.is_in(others.keys().copied()))
        .filter(face_embedding::Column::Model.eq(model))
        .all(&ctx.db)
        .await?;
    let mut nearest: HashMap<Uuid, f32> = HashMap::new();
    for embedding in &embeddings {
        let Some(theirs) = to_descriptor(&embedding.vector) else {
            tracing::warn!(embedding_id = %embedding.id, "stored embedding has the wrong length; ignored");
            continue;
        };
        for ours in &accepted {
            let d = distance(ours, &theirs);
            let best = nearest.entry(embedding.student_id).or_insert(f32::INFINITY);
            *best = best.min(d);
        }
    }
    let mut duplicates: Vec<PossibleDuplicate> = nearest
        .into_iter()
        .filter(|&(_, d)| d <= DUPLICATE_DISTANCE)
        .map(|(id, d)| {
            let other = &others[&id];
            PossibleDuplicate {
                student_id: id,
                roll_no: other.roll_no.clone(),
                name: other.name.clone(),
                distance: d,
            }
        })
        .collect();
    duplicates.sort_by(|a, b| a.distance.total_cmp(&b.distance));
    if !duplicates.is_empty() {
        tracing::warn!(
            count = duplicates.len(),
            "registration looks like another active student"
        );
    }
    Ok(duplicates)
}

/// A stored embedding as a descriptor, if it has the descriptor's length.
pub(crate) fn to_descriptor(bytes: &[u8]) -> Option<Descriptor> {
    models::vector::decode(bytes).ok()?.try_into().ok()
}

pub(crate) fn face_box(bbox: [f32; 4]) -> FaceBox {
    let [x1, y1, x2, y2] = bbox;
    FaceBox { x1, y1, x2, y2 }
}

/// A registration that failed for good leaves the student `failed` (unless an admin
/// already set them `inactive`).
pub async fn mark_failed(db: &impl ConnectionTrait, student_id: Uuid) -> Result<(), DbErr> {
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
