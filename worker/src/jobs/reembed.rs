//! Re-embedding: after `FACE_MODEL` changed, one student's stored registration photos
//! are analysed again with the active engine and that model's embeddings written.
//!
//! It is the registration's analysis ([`registration::decide`]) without its side
//! decisions:
//! - the photos' verdicts are rewritten with the new model's judgement (the stored
//!   verdicts describe the gallery in use, so a teacher reading "rejected: face too
//!   small" sees why this model cannot use the photo);
//! - the student's status is left as it is: an `active` student whose photos suit no
//!   photo of the new model stays `active` (dropping them from the roll would make them
//!   vanish from sessions); the job's result says `matchable: false` with what to do, and
//!   attendance jobs record them `unmatched` with that reason, never silently absent;
//! - no duplicate check: classmates may not have embeddings of the new model yet, and
//!   the registration already checked.
//!
//! Idempotent: this model's embeddings of the student are replaced in one transaction
//! with the job's completion; other models' embeddings are never touched, so switching
//! back needs no re-embedding.

use std::collections::BTreeSet;

use common::JobKind;
use common::job::result::ReembedResult;
use models::face_embedding;
use models::job;
use models::student::{self, StudentStatus};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect, TransactionTrait};
use uuid::Uuid;

use super::registration::{self, Decision, Standards, load_photos, look_at_all, write_photos};
use super::{Job, JobContext, JobError, Outcome, Progress};

/// The re-embedding job.
pub struct Reembed;

impl Job for Reembed {
    const KIND: JobKind = JobKind::Reembed;
    type Output = ReembedResult;

    async fn run(
        ctx: &JobContext,
        job: &job::Model,
        progress: &Progress<'_>,
    ) -> Result<Outcome<ReembedResult>, JobError> {
        run(ctx, job, progress).await
    }
}

async fn run(
    ctx: &JobContext,
    job: &job::Model,
    progress: &Progress<'_>,
) -> Result<Outcome<ReembedResult>, JobError> {
    let student_id = job.subject_id;
    tracing::Span::current().record("student_id", tracing::field::display(student_id));
    let Some(student) = student::Entity::find_by_id(student_id).one(&ctx.db).await? else {
        tracing::warn!(%student_id, "student no longer exists; nothing to re-embed");
        return Ok(Outcome::Skipped(format!(
            "student {student_id} no longer exists"
        )));
    };
    // Erased since the job was scheduled: no photo is left to embed.
    if matches!(
        student.status,
        StudentStatus::Deleted | StudentStatus::Withdrawn
    ) {
        tracing::warn!(%student_id, status = ?student.status, "student's face data was erased; nothing to re-embed");
        return Ok(Outcome::Skipped(format!(
            "student {student_id}'s face data was erased"
        )));
    }
    let photos = load_photos(&ctx.db, student_id).await?;
    let seen = look_at_all(ctx, &photos, progress).await?;
    let model = ctx.engine.model_name();
    let Decision {
        result: checked,
        embeddings,
        ..
    } = registration::decide(
        student_id,
        student.status,
        model,
        &seen,
        &[],
        Standards::for_engine(&ctx.engine),
    );
    let previous_models: Vec<String> = face_embedding::Entity::find()
        .select_only()
        .column(face_embedding::Column::Model)
        .filter(face_embedding::Column::StudentId.eq(student_id))
        .filter(face_embedding::Column::Model.ne(model))
        .into_tuple::<String>()
        .all(&ctx.db)
        .await?
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let result = summarise(student_id, model, previous_models, checked);
    if !result.matchable {
        tracing::warn!(
            roll_no = %student.roll_no,
            model,
            "no registration photo is usable by the new model; the student needs new photos"
        );
    }

    let txn = ctx.db.begin().await?;
    write_photos(
        &txn,
        student_id,
        model,
        &photos,
        &result.photos,
        &embeddings,
    )
    .await?;
    super::complete(&txn, job, &result.clone().into()).await?;
    txn.commit().await?;
    tracing::info!(
        accepted = result.accepted,
        rejected = result.rejected,
        model,
        "re-embedding done"
    );
    Ok(Outcome::Completed(result))
}

/// The registration's verdicts as a re-embedding result (pure).
pub fn summarise(
    student_id: Uuid,
    model: &str,
    previous_models: Vec<String>,
    checked: common::job::result::RegistrationResult,
) -> ReembedResult {
    let matchable = checked.accepted > 0;
    ReembedResult {
        student_id,
        model: model.to_string(),
        previous_models,
        accepted: checked.accepted,
        rejected: checked.rejected,
        photos: checked.photos,
        matchable,
        note: (!matchable).then(|| {
            format!(
                "no registration photo is usable by {model}: upload new photos of the student \
                 (each photo's reason says why)"
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::registration::Seen;
    use models::student::StudentStatus;

    #[test]
    fn a_student_without_a_usable_photo_is_reported_not_dropped() {
        let id = Uuid::from_u128(1);
        let photos = [(Uuid::from_u128(2), Seen::Faces(vec![]))];
        let checked = registration::decide(
            id,
            StudentStatus::Active,
            "arcface_w600k_mbf",
            &photos,
            &[],
            Standards::DLIB,
        )
        .result;
        let result = summarise(
            id,
            "arcface_w600k_mbf",
            vec!["dlib_resnet_v1".into()],
            checked,
        );
        assert!(!result.matchable);
        assert_eq!((result.accepted, result.rejected), (0, 1));
        let note = result.note.unwrap();
        assert!(note.contains("arcface_w600k_mbf"), "{note}");
        assert!(note.contains("upload new photos"), "{note}");
    }
}
