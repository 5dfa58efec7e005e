//! Students: registration (photos → blob store, rows + job in one transaction),
//! listing, editing (deletion erases: see [`super::erasure`]).

use std::{collections::HashMap, sync::Arc};

use chrono::Utc;
use common::job::result::{JobResult, PhotoCheck, PossibleDuplicate, Rejection, Verdict};
use common::{BlobStore, JobKind, JobQueue};
use models::{
    consent_entry, job,
    student::{self, StudentStatus},
    student_photo::{self, PhotoVerdict},
};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait, Func, LikeExpr},
};
use uuid::Uuid;

use super::{
    Accepted, Page, Paging, consent::Consent, intake, jobs, required_text, scope::Scope,
    student_photos,
};
use crate::{error::ServiceError, upload::ValidatedPhoto};

/// Photos per registration.
pub const MIN_PHOTOS: usize = 1;
pub const MAX_PHOTOS: usize = 10;

#[derive(Debug, Clone)]
pub struct NewStudent {
    pub class_id: Uuid,
    pub roll_no: String,
    pub name: String,
}

async fn ensure_roll_free(
    db: &impl ConnectionTrait,
    class_id: Uuid,
    roll_no: &str,
    except: Option<Uuid>,
) -> Result<(), ServiceError> {
    // A deleted student's roll number is free (the unique index skips tombstones too).
    let mut q = student::Entity::find()
        .filter(student::Column::ClassId.eq(class_id))
        .filter(student::Column::RollNo.eq(roll_no))
        .filter(student::Column::Status.ne(StudentStatus::Deleted));
    if let Some(id) = except {
        q = q.filter(student::Column::Id.ne(id));
    }
    if q.one(db).await?.is_some() {
        return Err(ServiceError::conflict(
            "duplicate_roll_no",
            format!("roll number {roll_no} is already registered in this class"),
        ));
    }
    Ok(())
}

/// Registers a student from validated photos: checks consent (422 when required and
/// not given), the class (404) and the roll number (409) before storing anything,
/// then stores the photos and writes the student, consent, photo and job rows in one
/// transaction, then publishes the job.
pub async fn register(
    db: &DatabaseConnection,
    scope: &Scope,
    blobs: &Arc<dyn BlobStore>,
    queue: &Arc<dyn JobQueue>,
    new: NewStudent,
    photos: Vec<ValidatedPhoto>,
    consent: &Consent,
) -> Result<Accepted, ServiceError> {
    consent.check_new()?;
    if !(MIN_PHOTOS..=MAX_PHOTOS).contains(&photos.len()) {
        return Err(ServiceError::invalid(
            "photo_count",
            format!("expected {MIN_PHOTOS} to {MAX_PHOTOS} photos"),
        ));
    }
    let roll_no = required_text("roll_no", &new.roll_no, 50)?;
    let name = required_text("name", &new.name, 200)?;
    scope.class(db, new.class_id).await?;
    ensure_roll_free(db, new.class_id, &roll_no, None).await?;

    let student_id = Uuid::new_v4();
    let placed = intake::place("students", student_id, photos);
    let now = Utc::now();
    let student_row = student::ActiveModel {
        id: Set(student_id),
        class_id: Set(new.class_id),
        roll_no: Set(roll_no),
        name: Set(name),
        status: Set(StudentStatus::Pending),
        created_at: Set(now),
        updated_at: Set(now),
        erased_at: Set(None),
    };
    let photo_rows: Vec<_> = placed
        .iter()
        .map(|p| {
            student_photo::ActiveModel::pending(
                p.id,
                student_id,
                p.key.clone(),
                p.photo.content_type(),
                now,
            )
        })
        .collect();
    let consent_row = consent.entry(student_id, now);

    let job_id = intake::accept(
        db,
        blobs,
        queue,
        &placed,
        JobKind::Registration,
        student_id,
        async |txn| {
            student::Entity::insert(student_row).exec(txn).await?;
            if let Some(row) = consent_row {
                consent_entry::Entity::insert(row)
                    .exec_without_returning(txn)
                    .await?;
            }
            student_photo::Entity::insert_many(photo_rows)
                .exec(txn)
                .await?;
            Ok(())
        },
    )
    .await?;
    Ok(Accepted {
        subject_id: student_id,
        job_id,
    })
}

#[derive(Debug, Clone, Default)]
pub struct StudentFilter {
    pub class_id: Option<Uuid>,
    /// Case-insensitive substring of the name or roll number.
    pub q: Option<String>,
    /// Only students that need photos (`true`) or only those that do not (`false`);
    /// see [`super::student_photos::needing_photos`].
    pub needs_photos: Option<bool>,
    /// 1-based.
    pub page: Option<u64>,
    pub per_page: Option<u64>,
}

pub const DEFAULT_PER_PAGE: u64 = 50;
pub const MAX_PER_PAGE: u64 = 200;

/// `%text%` for LIKE, with the pattern characters of `text` escaped.
fn contains_pattern(text: &str) -> LikeExpr {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    LikeExpr::new(p).escape('\\')
}

pub async fn list(
    db: &impl ConnectionTrait,
    scope: &Scope,
    filter: StudentFilter,
) -> Result<Page<student::Model>, ServiceError> {
    let Paging {
        page,
        per_page,
        offset,
    } = Paging::new(filter.page, filter.per_page, DEFAULT_PER_PAGE, MAX_PER_PAGE)?;
    // Tombstones of deleted students are never listed.
    let mut query =
        student::Entity::find().filter(student::Column::Status.ne(StudentStatus::Deleted));
    if let Some(class_id) = filter.class_id {
        query = query.filter(student::Column::ClassId.eq(class_id));
    }
    if let Some(visible) = scope.class_ids() {
        query = query.filter(student::Column::ClassId.in_subquery(visible));
    }
    match filter.needs_photos {
        Some(true) => {
            query = query
                .filter(student::Column::Id.not_in_subquery(student_photos::with_usable_photos()))
        }
        Some(false) => {
            query =
                query.filter(student::Column::Id.in_subquery(student_photos::with_usable_photos()))
        }
        None => {}
    }
    if let Some(q) = filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        // lower() on both sides: LIKE is case-sensitive on PostgreSQL, not on SQLite.
        let pattern = contains_pattern(q);
        query = query.filter(
            Condition::any()
                .add(
                    Expr::expr(Func::lower(Expr::col(student::Column::Name))).like(pattern.clone()),
                )
                .add(Expr::expr(Func::lower(Expr::col(student::Column::RollNo))).like(pattern)),
        );
    }
    let query = query
        .order_by_asc(student::Column::ClassId)
        .order_by_asc(student::Column::RollNo);
    let total = query.clone().count(db).await?;
    let items = query.offset(offset).limit(per_page).all(db).await?;
    Ok(Page {
        items,
        page,
        per_page,
        total,
    })
}

pub async fn get(
    db: &impl ConnectionTrait,
    scope: &Scope,
    id: Uuid,
) -> Result<student::Model, ServiceError> {
    scope.student(db, id).await
}

/// A student with what their registration made of each photo.
#[derive(Debug, Clone)]
pub struct StudentDetail {
    pub student: student::Model,
    /// No photo is accepted or pending: someone should ask for better photos.
    pub needs_photos: bool,
    /// Oldest first.
    pub photos: Vec<PhotoDetail>,
    /// The newest registration job of the student.
    pub registration_job: Option<job::Model>,
    /// The consent in force: the latest entry, given or withdrawn.
    pub consent: Option<consent_entry::Model>,
}

/// One registration photo's verdict, explained.
#[derive(Debug, Clone, PartialEq)]
pub struct PhotoDetail {
    pub photo: student_photo::Model,
    pub reason: Option<Rejection>,
    /// What a teacher reads: why the photo was rejected, or whom it looks like.
    pub note: Option<String>,
    /// Faces found in the photo, when the registration job reported it.
    pub faces: Option<u32>,
    pub same_as: Option<PossibleDuplicate>,
}

pub async fn detail(
    db: &impl ConnectionTrait,
    scope: &Scope,
    id: Uuid,
) -> Result<StudentDetail, ServiceError> {
    let student = get(db, scope, id).await?;
    let photos = student_photo::Entity::find()
        .filter(student_photo::Column::StudentId.eq(id))
        .order_by_asc(student_photo::Column::CreatedAt)
        .order_by_asc(student_photo::Column::Id)
        .all(db)
        .await?;
    // A student's registration: a single one, or as part of a batch (bulk lane).
    let registration_job = jobs::latest_for_subject(db, id)
        .await?
        .filter(|j| matches!(j.kind, JobKind::Registration | JobKind::BulkRegistration));
    let checks: HashMap<Uuid, PhotoCheck> = match registration_job
        .as_ref()
        .and_then(|j| j.result.as_ref())
        .and_then(JobResult::from_stored)
    {
        Some(JobResult::Registration(result)) => {
            result.photos.into_iter().map(|c| (c.photo_id, c)).collect()
        }
        _ => HashMap::new(),
    };
    let needs_photos = !photos
        .iter()
        .any(|p| matches!(p.verdict, PhotoVerdict::Accepted | PhotoVerdict::Pending));
    let photos = photos
        .into_iter()
        .map(|photo| {
            let check = checks.get(&photo.id);
            explain(photo, check)
        })
        .collect();
    let consent = consent_entry::in_force(db, id).await?;
    Ok(StudentDetail {
        student,
        needs_photos,
        photos,
        registration_job,
        consent,
    })
}

/// A photo row and what the registration job reported on it → what a teacher reads.
/// The row is the verdict of record; the job's report adds the details (the number of
/// faces, a look-alike) when it is about the same verdict.
fn explain(photo: student_photo::Model, check: Option<&PhotoCheck>) -> PhotoDetail {
    let check = check.filter(|c| {
        matches!(
            (c.verdict, photo.verdict),
            (Verdict::Accepted, PhotoVerdict::Accepted)
                | (Verdict::Rejected, PhotoVerdict::Rejected)
        )
    });
    let reason = photo.reason.as_deref().and_then(Rejection::parse);
    let faces = check.map(|c| c.faces);
    let same_as = check.and_then(|c| c.same_as.clone());
    let note = match photo.verdict {
        PhotoVerdict::Pending => None,
        PhotoVerdict::Accepted if photo.source_face_id.is_some() => {
            Some("a face from an attendance session, enrolled by hand".to_string())
        }
        PhotoVerdict::Rejected => Some(match (reason, &photo.reason) {
            (Some(reason), _) => reason.describe(faces),
            // A code this build does not know (a newer worker's): shown as it is.
            (None, Some(code)) => code.replace('_', " "),
            (None, None) => "rejected".to_string(),
        }),
        PhotoVerdict::Accepted => same_as.as_ref().map(PossibleDuplicate::describe),
    };
    PhotoDetail {
        photo,
        reason,
        note,
        faces,
        same_as,
    }
}

#[derive(Debug, Clone, Default)]
pub struct StudentChanges {
    pub name: Option<String>,
    pub roll_no: Option<String>,
    pub class_id: Option<Uuid>,
    /// Only `active` and `inactive` may be set by hand; `pending` and `failed` belong
    /// to the registration job.
    pub status: Option<StudentStatus>,
}

pub async fn update(
    db: &impl ConnectionTrait,
    scope: &Scope,
    id: Uuid,
    changes: StudentChanges,
) -> Result<student::Model, ServiceError> {
    let current = get(db, scope, id).await?;
    if let Some(s) = changes.status
        && !matches!(s, StudentStatus::Active | StudentStatus::Inactive)
    {
        return Err(ServiceError::invalid(
            "invalid_field",
            "status can only be set to active or inactive",
        ));
    }
    if changes.status.is_some() && current.status == StudentStatus::Withdrawn {
        return Err(ServiceError::conflict(
            "consent_withdrawn",
            "the student withdrew consent; they become active again by registering new \
             photos",
        ));
    }
    let class_id = changes.class_id.unwrap_or(current.class_id);
    if class_id != current.class_id {
        scope.class(db, class_id).await?;
    }
    let roll_no = match &changes.roll_no {
        Some(r) => required_text("roll_no", r, 50)?,
        None => current.roll_no.clone(),
    };
    if class_id != current.class_id || roll_no != current.roll_no {
        ensure_roll_free(db, class_id, &roll_no, Some(id)).await?;
    }
    let mut model: student::ActiveModel = current.into();
    if let Some(n) = &changes.name {
        model.name = Set(required_text("name", n, 200)?);
    }
    model.roll_no = Set(roll_no);
    model.class_id = Set(class_id);
    if let Some(s) = changes.status {
        model.status = Set(s);
    }
    model.updated_at = Set(Utc::now());
    Ok(model.update(db).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo(verdict: PhotoVerdict, reason: Option<&str>) -> student_photo::Model {
        student_photo::Model {
            id: Uuid::from_u128(1),
            student_id: Uuid::from_u128(2),
            blob_key: "students/2/1.jpg".into(),
            content_type: "image/jpeg".into(),
            verdict,
            reason: reason.map(str::to_string),
            face_box: None,
            detector_score: None,
            created_at: Utc::now(),
            source_face_id: None,
        }
    }

    fn check(verdict: Verdict, faces: u32, same_as: Option<PossibleDuplicate>) -> PhotoCheck {
        PhotoCheck {
            photo_id: Uuid::from_u128(1),
            verdict,
            reason: None,
            note: None,
            face_box: None,
            score: None,
            faces,
            same_as,
        }
    }

    #[test]
    fn explains_rejections_and_look_alikes() {
        let several = photo(PhotoVerdict::Rejected, Some("several_faces"));
        let explained = explain(several.clone(), Some(&check(Verdict::Rejected, 3, None)));
        assert_eq!(explained.reason, Some(Rejection::SeveralFaces));
        assert_eq!(
            explained.note.as_deref(),
            Some("3 faces — use a photo with only the student")
        );
        // Without the job's report the count is not known, but the reason still reads.
        assert_eq!(
            explain(several, None).note.as_deref(),
            Some("several faces — use a photo with only the student")
        );

        let twin = PossibleDuplicate {
            student_id: Uuid::from_u128(9),
            roll_no: "21CS004".into(),
            name: "Asha Rao".into(),
            distance: 0.3,
        };
        let accepted = photo(PhotoVerdict::Accepted, None);
        let explained = explain(
            accepted.clone(),
            Some(&check(Verdict::Accepted, 1, Some(twin.clone()))),
        );
        assert_eq!(
            explained.note.as_deref(),
            Some("same person as roll 21CS004 (Asha Rao)")
        );
        assert_eq!(explained.same_as, Some(twin.clone()));
        // A report about another verdict (an older run) adds nothing.
        let stale = explain(accepted, Some(&check(Verdict::Rejected, 0, Some(twin))));
        assert_eq!((stale.note, stale.faces, stale.same_as), (None, None, None));

        assert_eq!(explain(photo(PhotoVerdict::Pending, None), None).note, None);
        assert_eq!(
            explain(photo(PhotoVerdict::Rejected, Some("eyes_closed")), None)
                .note
                .as_deref(),
            Some("eyes closed")
        );
    }
}
