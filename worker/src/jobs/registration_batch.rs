//! Unpacking a registration batch: the ZIP (streamed from the blob store to a local
//! temporary file, never held in memory) → per roll number a student (created, or
//! updated when the roll number is already registered in the class) with its photos
//! and one `bulk_registration` job, and a report line for every refused entry.
//!
//! Layout: one folder per roll number (`21CS001/front.jpg`), and optionally a
//! `students.csv` at the root with `roll_no,name,class` (class: id or name; default
//! the batch's class) and an optional `photos` column (`;`-separated paths inside the
//! ZIP), so that a manifest alone with photos anywhere in the archive works too.
//!
//! Consent: optional `consent` (true/false) and `consent_note` columns; a student
//! given consent gets a `consent_entries` row (the batch's uploading key and source)
//! with their rows. Under the batch's `require_consent`, a student with neither
//! consent on their line nor consent in force is refused with a reason, and a student
//! who withdrew consent always needs it on their line (see [`consent_for`]).
//!
//! Idempotent: a redelivered job skips the roll numbers already queued by an earlier
//! run of the same batch and rewrites the refusals.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fs::File,
    sync::{Arc, Mutex},
};

use chrono::Utc;
use common::job::result::BatchUnpackResult;
use common::{JobKind, JobMessage};
use models::consent_entry::{self, ConsentAction, NOTE_MAX_CHARS};
use models::job::{self, JobStatus};
use models::registration_batch::{self, BatchStatus};
use models::registration_batch_item::{self, ItemStatus};
use models::student::{self, StudentStatus};
use models::student_photo;
use models::{class, face_embedding};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter, TransactionTrait, sea_query::Expr,
};
use uuid::Uuid;
use zip::ZipArchive;

use super::batch_completion::{finish_if_done, lock_batch};
use super::{Job, JobContext, JobError, Outcome, Progress, blocking};
use crate::batch_archive::{self, Entry, MANIFEST};

/// The unpacking job (subject: the batch).
pub struct RegistrationBatch;

impl Job for RegistrationBatch {
    const KIND: JobKind = JobKind::RegistrationBatch;
    type Output = BatchUnpackResult;

    async fn run(
        ctx: &JobContext,
        job: &job::Model,
        progress: &Progress<'_>,
    ) -> Result<Outcome<BatchUnpackResult>, JobError> {
        run(ctx, job, progress).await
    }

    async fn mark_subject_failed(
        db: &DatabaseTransaction,
        _public_url: &str,
        batch_id: Uuid,
    ) -> Result<(), DbErr> {
        set_failed(
            db,
            batch_id,
            "the batch could not be unpacked (see its job's error)",
        )
        .await
    }
}

type Archive = Arc<Mutex<ZipArchive<File>>>;

/// One student as the batch describes them.
#[derive(Debug, Default)]
struct Plan {
    name: Option<String>,
    /// The manifest's class (id or name), else the batch's.
    class: Option<String>,
    photos: Vec<Entry>,
    /// The manifest's `consent`, when its line says.
    consent: Option<bool>,
    consent_note: Option<String>,
    /// The manifest line and why it cannot be used (an unreadable consent): the
    /// student is refused rather than registered from their folder without it.
    refused: Option<(String, String)>,
}

/// A refusal for the report.
struct Refusal {
    roll_no: Option<String>,
    entry: Option<String>,
    status: ItemStatus,
    reason: String,
}

impl Refusal {
    fn rejected(roll_no: Option<&str>, entry: &str, reason: impl Into<String>) -> Refusal {
        Refusal {
            roll_no: roll_no.map(str::to_string),
            entry: Some(entry.to_string()),
            status: ItemStatus::Rejected,
            reason: reason.into(),
        }
    }
}

async fn run(
    ctx: &JobContext,
    job: &job::Model,
    progress: &Progress<'_>,
) -> Result<Outcome<BatchUnpackResult>, JobError> {
    let batch_id = job.subject_id;
    let Some(batch) = registration_batch::Entity::find_by_id(batch_id)
        .one(&ctx.db)
        .await?
    else {
        return Ok(Outcome::Skipped(format!(
            "batch {batch_id} no longer exists"
        )));
    };

    // Streamed from the store to disk: a batch of thousands of students never sits in
    // memory, here or in the API.
    let dir =
        tempfile::tempdir().map_err(|e| JobError::retry("create a temporary directory", e))?;
    let local = dir.path().join("batch.zip");
    match ctx.blobs.get_to_file(&batch.blob_key, &local).await {
        Ok(_) => {}
        Err(common::BlobError::NotFound(_)) => {
            return fail_batch(
                ctx,
                job,
                &batch,
                "the uploaded archive is missing from storage",
            )
            .await;
        }
        Err(e) => return Err(JobError::retry("could not fetch the batch archive", e)),
    }
    let opened = blocking(move || {
        let mut archive = batch_archive::open(&local)?;
        let listing = batch_archive::list(&mut archive)?;
        Ok::<_, batch_archive::ArchiveError>((archive, listing))
    })
    .await?;
    let (archive, listing) = match opened {
        Ok(opened) => opened,
        Err(e) => return fail_batch(ctx, job, &batch, &e.to_string()).await,
    };
    let limit = batch.max_uncompressed_bytes.max(0) as u64;
    if listing.declared_total > limit {
        let reason = format!(
            "the archive declares {} uncompressed, more than the batch limit of {} (zip bomb?)",
            batch_archive::megabytes(listing.declared_total),
            batch_archive::megabytes(limit)
        );
        return fail_batch(ctx, job, &batch, &reason).await;
    }
    let archive: Archive = Arc::new(Mutex::new(archive));

    let mut refusals = Vec::new();
    let mut usable = Vec::new();
    let mut manifest_entry = None;
    for entry in listing.entries {
        let roll = (entry.components.len() == 2).then(|| entry.components[0].clone());
        if let Some(reason) = &entry.refused {
            refusals.push(Refusal::rejected(
                roll.as_deref(),
                &entry.name,
                reason.clone(),
            ));
        } else if entry.components == [MANIFEST] {
            manifest_entry = Some(entry);
        } else {
            usable.push(entry);
        }
    }
    let mut budget = Budget { used: 0, limit };
    let manifest = match manifest_entry {
        Some(entry) => {
            let read = read_entries(&archive, vec![entry.clone()]).await?;
            let (_, bytes) = read.into_iter().next().expect("one entry read");
            match bytes.and_then(|b| budget.take(&b).map(|()| b)) {
                Ok(bytes) => Some(parse_manifest(&bytes, &mut refusals)),
                Err(reason) => {
                    refusals.push(Refusal::rejected(None, &entry.name, reason));
                    None
                }
            }
        }
        None => None,
    };
    let plans = plan_students(manifest, usable, &mut refusals);

    let classes = visible_classes(&ctx.db, batch.department.as_deref()).await?;
    let already = queued_before(&ctx.db, batch_id).await?;
    let mut students = 0u32;
    let mut updated = 0u32;
    let total = plans.len().max(1);
    for (i, (roll_no, plan)) in plans.into_iter().enumerate() {
        progress.set(i as f64 / total as f64).await;
        if already.contains(&roll_no) {
            continue;
        }
        if let Some((line, reason)) = plan.refused {
            refusals.push(Refusal::rejected(Some(&roll_no), &line, reason));
            continue;
        }
        let class_id = match resolve_class(&classes, plan.class.as_deref(), batch.class_id) {
            Ok(id) => id,
            Err(reason) => {
                refusals.push(Refusal {
                    roll_no: Some(roll_no),
                    entry: None,
                    status: ItemStatus::Rejected,
                    reason,
                });
                continue;
            }
        };
        let existing = registered(&ctx.db, class_id, &roll_no).await?;
        let in_force = match &existing {
            Some(s) => consent_entry::in_force(&ctx.db, s.id)
                .await?
                .map(|e| e.action),
            None => None,
        };
        let consent = match consent_for(
            &ConsentPolicy::of(&batch),
            &plan,
            existing.as_ref().map(|s| s.status),
            in_force,
        ) {
            Ok(consent) => consent,
            Err(reason) => {
                refusals.push(Refusal {
                    roll_no: Some(roll_no),
                    entry: None,
                    status: ItemStatus::Rejected,
                    reason,
                });
                continue;
            }
        };
        let mut photos = Vec::new();
        for (entry, bytes) in read_entries(&archive, plan.photos).await? {
            let checked = bytes
                .and_then(|b| budget.take(&b).map(|()| b))
                .and_then(|b| batch_archive::judge_photo(&b).map(|format| (b, format)));
            match checked {
                Ok(photo) => photos.push(photo),
                Err(reason) => {
                    refusals.push(Refusal::rejected(Some(&roll_no), &entry.name, reason))
                }
            }
        }
        if photos.is_empty() {
            refusals.push(Refusal {
                roll_no: Some(roll_no),
                entry: None,
                status: ItemStatus::Rejected,
                reason: "no usable photo for this roll number in the batch".into(),
            });
            continue;
        }
        let student = StudentPlan {
            class_id,
            roll_no: &roll_no,
            name: plan.name,
            existing,
            consent,
        };
        let queued = queue_student(ctx, &batch, student, photos).await?;
        students += 1;
        updated += u32::from(queued.updated);
        publish(ctx, queued.job_id).await;
    }

    let rejected = refusals.len() as u32;
    let txn = ctx.db.begin().await?;
    lock_batch(&txn, batch_id).await?;
    write_refusals(&txn, batch_id, refusals).await?;
    registration_batch::Entity::update_many()
        .col_expr(
            registration_batch::Column::Status,
            Expr::value(sea_orm::ActiveEnum::to_value(&BatchStatus::Processing)),
        )
        .filter(registration_batch::Column::Id.eq(batch_id))
        .filter(registration_batch::Column::Status.eq(BatchStatus::Queued))
        .exec(&txn)
        .await?;
    let result = BatchUnpackResult {
        batch_id,
        students,
        updated,
        rejected,
        error: None,
    };
    super::complete(&txn, job, &result.clone().into()).await?;
    // A batch with no student to register completes here.
    finish_if_done(&txn, &ctx.public_url, batch_id).await?;
    txn.commit().await?;
    tracing::info!(%batch_id, students, updated, rejected, "registration batch unpacked");
    discard_archive(ctx, &batch).await;
    Ok(Outcome::Completed(result))
}

/// The uploaded ZIP holds students' photos: once the batch is unpacked (each student's
/// photos copied out) or refused, it goes, so that no copy of a photo outlives the
/// erasure of its student. After commit: a redelivered job that finds it missing has
/// already completed.
async fn discard_archive(ctx: &JobContext, batch: &registration_batch::Model) {
    match ctx.blobs.delete(&batch.blob_key).await {
        Ok(()) => tracing::debug!(batch_id = %batch.id, "batch archive deleted"),
        Err(e) => tracing::warn!(
            batch_id = %batch.id,
            key = %batch.blob_key,
            error = %e,
            "could not delete the unpacked batch archive"
        ),
    }
}

/// The running total of decompressed bytes against the batch's limit (an archive that
/// under-declares its sizes is caught here).
struct Budget {
    used: u64,
    limit: u64,
}

impl Budget {
    fn take(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.used += bytes.len() as u64;
        if self.used > self.limit {
            return Err(format!(
                "the batch decompresses to more than its {} limit (zip bomb?)",
                batch_archive::megabytes(self.limit)
            ));
        }
        Ok(())
    }
}

/// Reads entries off the runtime, one lock of the archive per call.
async fn read_entries(
    archive: &Archive,
    entries: Vec<Entry>,
) -> Result<Vec<(Entry, Result<Vec<u8>, String>)>, JobError> {
    let archive = Arc::clone(archive);
    blocking(move || {
        let mut archive = archive.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .into_iter()
            .map(|entry| {
                let bytes = batch_archive::read_entry(&mut archive, &entry);
                (entry, bytes)
            })
            .collect()
    })
    .await
}

/// `students.csv` as roll → plan (photos by path), refusing bad or repeated lines.
struct Manifest {
    plans: BTreeMap<String, (Plan, Vec<String>)>,
}

fn parse_manifest(bytes: &[u8], refusals: &mut Vec<Refusal>) -> Manifest {
    let mut plans: BTreeMap<String, (Plan, Vec<String>)> = BTreeMap::new();
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|s| s.to_ascii_lowercase()).collect(),
        Err(e) => {
            refusals.push(Refusal::rejected(
                None,
                MANIFEST,
                format!("unreadable CSV: {e}"),
            ));
            return Manifest { plans };
        }
    };
    let column = |name: &str| headers.iter().position(|h| h == name);
    let Some(roll_col) = column("roll_no") else {
        refusals.push(Refusal::rejected(
            None,
            MANIFEST,
            "no roll_no column (expected roll_no,name,class[,photos])",
        ));
        return Manifest { plans };
    };
    let (name_col, class_col, photos_col) = (column("name"), column("class"), column("photos"));
    let (consent_col, note_col) = (column("consent"), column("consent_note"));
    for (i, record) in reader.records().enumerate() {
        let line = format!("{MANIFEST} line {}", i + 2);
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                refusals.push(Refusal::rejected(
                    None,
                    &line,
                    format!("unreadable line: {e}"),
                ));
                continue;
            }
        };
        let field = |col: Option<usize>| {
            col.and_then(|c| record.get(c))
                .map(str::to_string)
                .filter(|v| !v.is_empty())
        };
        let Some(roll_no) = field(Some(roll_col)) else {
            refusals.push(Refusal::rejected(None, &line, "empty roll_no"));
            continue;
        };
        if let Some(reason) = invalid_roll(&roll_no) {
            refusals.push(Refusal::rejected(Some(&roll_no), &line, reason));
            continue;
        }
        if plans.contains_key(&roll_no) {
            refusals.push(Refusal {
                roll_no: Some(roll_no),
                entry: Some(line),
                status: ItemStatus::Duplicate,
                reason: "roll number repeated in students.csv; the first line is used".into(),
            });
            continue;
        }
        let name = field(name_col).map(|n| n.chars().take(200).collect());
        let photos = field(photos_col)
            .map(|p| {
                p.split(';')
                    .map(|s| s.trim().trim_start_matches("./").to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let (consent, consent_note, refused) =
            match read_consent(field(consent_col), field(note_col)) {
                Ok((consent, note)) => (consent, note, None),
                Err(reason) => (None, None, Some((line, reason))),
            };
        let plan = Plan {
            name,
            class: field(class_col),
            photos: Vec::new(),
            consent,
            consent_note,
            refused,
        };
        plans.insert(roll_no, (plan, photos));
    }
    Manifest { plans }
}

/// A line's `consent` (`true`/`false`, `yes`/`no`, `1`/`0`; empty: not said) and
/// `consent_note`, or why they cannot be used.
fn read_consent(
    consent: Option<String>,
    note: Option<String>,
) -> Result<(Option<bool>, Option<String>), String> {
    let consent = match consent.map(|c| c.to_ascii_lowercase()).as_deref() {
        None => None,
        Some("true" | "yes" | "y" | "1") => Some(true),
        Some("false" | "no" | "n" | "0") => Some(false),
        Some(other) => {
            return Err(format!("consent must be true or false, not {other:?}"));
        }
    };
    if let Some(note) = &note {
        // PostgreSQL refuses NUL in text.
        if note.contains('\0') {
            return Err("consent_note contains a NUL character".into());
        }
        if note.chars().count() > NOTE_MAX_CHARS {
            return Err(format!(
                "consent_note is longer than {NOTE_MAX_CHARS} characters"
            ));
        }
    }
    Ok((consent, note))
}

/// How the batch treats consent (fixed when it was uploaded).
#[derive(Debug, Clone, Default)]
struct ConsentPolicy {
    /// `REQUIRE_CONSENT`.
    required: bool,
    /// Consent for every student whose line does not say otherwise, and its note.
    for_all: bool,
    note: Option<String>,
}

impl ConsentPolicy {
    fn of(batch: &registration_batch::Model) -> ConsentPolicy {
        ConsentPolicy {
            required: batch.require_consent,
            for_all: batch.consent_for_all,
            note: batch.consent_note.clone(),
        }
    }
}

/// What the batch records about one student's consent: `Ok(Some(note))` consent given
/// (with its note), `Ok(None)` none, `Err(reason)` the student is refused. A student
/// who withdrew consent (status or latest entry) must give it again on their line;
/// under `required`, a student needs consent on their line or already in force.
fn consent_for(
    policy: &ConsentPolicy,
    plan: &Plan,
    existing: Option<StudentStatus>,
    in_force: Option<ConsentAction>,
) -> Result<Option<Option<String>>, String> {
    let (given, note) = match plan.consent {
        Some(given) => (given, plan.consent_note.clone()),
        None => (
            policy.for_all,
            plan.consent_note
                .clone()
                .or_else(|| policy.note.clone().filter(|_| policy.for_all)),
        ),
    };
    if given {
        return Ok(Some(note));
    }
    if note.is_some() {
        return Err("consent_note is recorded only with consent=true".into());
    }
    if existing == Some(StudentStatus::Withdrawn) || in_force == Some(ConsentAction::Withdrawn) {
        return Err(
            "this student withdrew their consent; to register them again, give consent=true \
             on their line of students.csv"
                .into(),
        );
    }
    if policy.required && in_force != Some(ConsentAction::Given) {
        return Err(
            "no consent: this server requires the student's consent to register them; give \
             consent=true on their line of students.csv (or --consent with attendance-api \
             import)"
                .into(),
        );
    }
    Ok(None)
}

fn invalid_roll(roll_no: &str) -> Option<String> {
    if roll_no.trim().is_empty() {
        Some("empty roll number".into())
    } else if roll_no.chars().count() > 50 {
        Some("roll number longer than 50 characters".into())
    } else {
        None
    }
}

/// Assigns the usable entries to roll numbers: those the manifest names go to its
/// students, the rest by their folder (`ROLL/photo`).
fn plan_students(
    manifest: Option<Manifest>,
    entries: Vec<Entry>,
    refusals: &mut Vec<Refusal>,
) -> BTreeMap<String, Plan> {
    let mut plans: BTreeMap<String, Plan> = BTreeMap::new();
    let mut named: HashMap<String, String> = HashMap::new();
    if let Some(manifest) = manifest {
        for (roll_no, (plan, paths)) in manifest.plans {
            for path in paths {
                named.insert(path, roll_no.clone());
            }
            plans.insert(roll_no, plan);
        }
    }
    let mut found: HashSet<String> = HashSet::new();
    for entry in entries {
        let path = entry.path();
        if let Some(roll_no) = named.get(&path) {
            found.insert(path);
            plans.entry(roll_no.clone()).or_default().photos.push(entry);
        } else if entry.components.len() == 2 {
            let roll_no = entry.components[0].trim().to_string();
            if let Some(reason) = invalid_roll(&roll_no) {
                refusals.push(Refusal::rejected(None, &entry.name, reason));
                continue;
            }
            plans.entry(roll_no).or_default().photos.push(entry);
        } else {
            refusals.push(Refusal::rejected(
                None,
                &entry.name,
                "not in a roll-number folder (ROLL/photo.jpg) and not named in students.csv",
            ));
        }
    }
    for (path, roll_no) in named {
        if !found.contains(&path) {
            refusals.push(Refusal::rejected(
                Some(&roll_no),
                &path,
                "named in students.csv but not in the archive (or refused)",
            ));
        }
    }
    plans
}

async fn visible_classes(
    db: &impl ConnectionTrait,
    department: Option<&str>,
) -> Result<Vec<class::Model>, DbErr> {
    let mut query = class::Entity::find();
    if let Some(d) = department {
        query = query.filter(class::Column::Department.eq(d));
    }
    query.all(db).await
}

/// The class a student goes to: the manifest's (by id or exact name, within the batch's
/// department), else the batch's default.
fn resolve_class(
    classes: &[class::Model],
    wanted: Option<&str>,
    default: Option<Uuid>,
) -> Result<Uuid, String> {
    let Some(wanted) = wanted else {
        return default.ok_or_else(|| {
            "no class: upload with class_id or give a class column in students.csv".to_string()
        });
    };
    let by_id = wanted.parse::<Uuid>().ok();
    let matching: Vec<&class::Model> = classes
        .iter()
        .filter(|c| Some(c.id) == by_id || c.name == wanted)
        .collect();
    match matching.as_slice() {
        [one] => Ok(one.id),
        [] => Err(format!("unknown class {wanted:?}")),
        _ => Err(format!(
            "class name {wanted:?} is ambiguous; use the class id"
        )),
    }
}

/// Roll numbers an earlier run of this batch already queued (a redelivered job skips
/// them); refusals of that run are removed, to be written again.
async fn queued_before(
    db: &impl ConnectionTrait,
    batch_id: Uuid,
) -> Result<HashSet<String>, DbErr> {
    let items = registration_batch_item::Entity::find()
        .filter(registration_batch_item::Column::BatchId.eq(batch_id))
        .all(db)
        .await?;
    let mut rolls = HashSet::new();
    for item in items {
        if item.student_id.is_some() {
            rolls.extend(item.roll_no);
        } else {
            registration_batch_item::Entity::delete_by_id(item.id)
                .exec(db)
                .await?;
        }
    }
    Ok(rolls)
}

/// The student registered under `roll_no` in the class (a deleted student's tombstone
/// is not: the roll number is free again).
async fn registered(
    db: &impl ConnectionTrait,
    class_id: Uuid,
    roll_no: &str,
) -> Result<Option<student::Model>, DbErr> {
    student::Entity::find()
        .filter(student::Column::ClassId.eq(class_id))
        .filter(student::Column::RollNo.eq(roll_no))
        .filter(student::Column::Status.ne(StudentStatus::Deleted))
        .one(db)
        .await
}

struct Queued {
    job_id: Uuid,
    updated: bool,
}

/// One student to queue, as decided from the batch.
struct StudentPlan<'a> {
    class_id: Uuid,
    roll_no: &'a str,
    name: Option<String>,
    /// Already registered under this roll number in the class.
    existing: Option<student::Model>,
    /// The consent to record, with its note (see [`consent_for`]).
    consent: Option<Option<String>>,
}

/// Stores one student's photos, then in one transaction creates the student (or
/// updates the one already registered under this roll number in the class, replacing
/// its photos), the consent entry, the photo rows, the bulk registration job and the
/// batch outcome.
async fn queue_student(
    ctx: &JobContext,
    batch: &registration_batch::Model,
    plan: StudentPlan<'_>,
    photos: Vec<(Vec<u8>, image::ImageFormat)>,
) -> Result<Queued, JobError> {
    let StudentPlan {
        class_id,
        roll_no,
        name,
        existing,
        consent,
    } = plan;
    let student_id = existing.as_ref().map_or_else(Uuid::new_v4, |s| s.id);
    let now = Utc::now();
    let mut rows = Vec::with_capacity(photos.len());
    let mut stored = Vec::with_capacity(photos.len());
    for (bytes, format) in photos {
        let (content_type, ext) = batch_archive::stored_as(format);
        let id = Uuid::new_v4();
        let key = format!("students/{student_id}/{id}.{ext}");
        if let Err(e) = ctx.blobs.put(&key, bytes.into(), content_type).await {
            discard(ctx, &stored).await;
            return Err(JobError::retry("could not store a batch photo", e));
        }
        stored.push(key.clone());
        rows.push(student_photo::ActiveModel::pending(
            id,
            student_id,
            key,
            content_type,
            now,
        ));
    }

    let job_id = Uuid::new_v4();
    let updated = existing.is_some();
    let written = async {
        let txn = ctx.db.begin().await?;
        let mut old_keys = Vec::new();
        match &existing {
            Some(current) => {
                // The batch's photos replace the uploaded ones (their embeddings go with
                // them); faces enrolled by hand from sessions stay in the gallery.
                let old: Vec<student_photo::Model> = student_photo::Entity::find()
                    .filter(student_photo::Column::StudentId.eq(student_id))
                    .filter(student_photo::Column::SourceFaceId.is_null())
                    .all(&txn)
                    .await?;
                let old_ids: Vec<Uuid> = old.iter().map(|p| p.id).collect();
                old_keys = old.into_iter().map(|p| p.blob_key).collect();
                face_embedding::Entity::delete_many()
                    .filter(face_embedding::Column::PhotoId.is_in(old_ids.clone()))
                    .exec(&txn)
                    .await?;
                student_photo::Entity::delete_many()
                    .filter(student_photo::Column::Id.is_in(old_ids))
                    .exec(&txn)
                    .await?;
                let mut row: student::ActiveModel = current.clone().into();
                if let Some(name) = &name {
                    row.name = Set(name.clone());
                }
                if current.status != StudentStatus::Inactive {
                    row.status = Set(StudentStatus::Pending);
                }
                row.updated_at = Set(now);
                student::Entity::update(row).exec(&txn).await?;
            }
            None => {
                student::Entity::insert(student::ActiveModel {
                    id: Set(student_id),
                    class_id: Set(class_id),
                    roll_no: Set(roll_no.to_string()),
                    name: Set(name.clone().unwrap_or_else(|| roll_no.to_string())),
                    status: Set(StudentStatus::Pending),
                    created_at: Set(now),
                    updated_at: Set(now),
                    erased_at: Set(None),
                })
                .exec_without_returning(&txn)
                .await?;
            }
        }
        if let Some(note) = consent {
            consent_entry::Entity::insert(consent_entry::ActiveModel {
                id: Set(Uuid::new_v4()),
                student_id: Set(student_id),
                action: Set(ConsentAction::Given),
                note: Set(note),
                recorded_by_key_id: Set(batch.uploaded_by_key_id),
                source: Set(batch.consent_source),
                created_at: Set(now),
            })
            .exec_without_returning(&txn)
            .await?;
        }
        student_photo::Entity::insert_many(rows)
            .exec_without_returning(&txn)
            .await?;
        job::Entity::insert(new_job(job_id, JobKind::BulkRegistration, student_id))
            .exec_without_returning(&txn)
            .await?;
        registration_batch_item::Entity::insert(registration_batch_item::ActiveModel {
            id: Set(Uuid::new_v4()),
            batch_id: Set(batch.id),
            roll_no: Set(Some(roll_no.to_string())),
            name: Set(Some(name.unwrap_or_else(|| {
                existing
                    .as_ref()
                    .map_or_else(|| roll_no.to_string(), |s| s.name.clone())
            }))),
            class_id: Set(Some(class_id)),
            entry: Set(None),
            student_id: Set(Some(student_id)),
            job_id: Set(Some(job_id)),
            status: Set(ItemStatus::Queued),
            reason: Set(None),
            updated: Set(updated),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .exec_without_returning(&txn)
        .await?;
        txn.commit().await?;
        Ok::<_, DbErr>(old_keys)
    }
    .await;
    match written {
        Ok(old_keys) => {
            discard(ctx, &old_keys).await;
            Ok(Queued { job_id, updated })
        }
        Err(e) => {
            discard(ctx, &stored).await;
            Err(e.into())
        }
    }
}

fn new_job(id: Uuid, kind: JobKind, subject_id: Uuid) -> job::ActiveModel {
    let now = Utc::now();
    job::ActiveModel {
        id: Set(id),
        kind: Set(kind),
        lane: Set(kind.lane()),
        status: Set(JobStatus::Queued),
        progress: Set(0.0),
        attempts: Set(0),
        error: Set(None),
        result: Set(None),
        subject_id: Set(subject_id),
        created_at: Set(now),
        updated_at: Set(now),
        published_at: Set(None),
        started_at: Set(None),
        finished_at: Set(None),
        lease_until: Set(None),
        interrupted_runs: Set(0),
    }
}

/// Publishes a committed student's job on its (bulk) lane and records `published_at`;
/// without a queue, or when publishing fails, the API's outbox relay publishes it.
async fn publish(ctx: &JobContext, job_id: Uuid) {
    let Some(queue) = &ctx.queue else { return };
    let message = JobMessage::new(job_id, JobKind::BulkRegistration);
    match queue.publish(message.lane(), &message).await {
        Ok(()) => {
            if let Err(e) = job::Entity::update_many()
                .col_expr(job::Column::PublishedAt, Expr::value(Utc::now()))
                .filter(job::Column::Id.eq(job_id))
                .exec(&ctx.db)
                .await
            {
                tracing::warn!(%job_id, error = %e, "published_at not recorded");
            }
        }
        Err(e) => {
            tracing::warn!(%job_id, error = %e, "bulk registration not published; the outbox relay will retry")
        }
    }
}

async fn discard(ctx: &JobContext, keys: &[String]) {
    for key in keys {
        if let Err(e) = ctx.blobs.delete(key).await {
            tracing::warn!(key, error = %e, "could not delete a blob no row refers to");
        }
    }
}

async fn write_refusals(
    db: &impl ConnectionTrait,
    batch_id: Uuid,
    refusals: Vec<Refusal>,
) -> Result<(), DbErr> {
    let now = Utc::now();
    let rows: Vec<_> = refusals
        .into_iter()
        .map(|r| registration_batch_item::ActiveModel {
            id: Set(Uuid::new_v4()),
            batch_id: Set(batch_id),
            roll_no: Set(r.roll_no),
            name: Set(None),
            class_id: Set(None),
            entry: Set(r.entry),
            student_id: Set(None),
            job_id: Set(None),
            status: Set(r.status),
            reason: Set(Some(r.reason)),
            updated: Set(false),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .collect();
    // In chunks: SQLite limits the number of bound parameters per statement.
    for chunk in rows.chunks(50) {
        registration_batch_item::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

async fn set_failed(db: &impl ConnectionTrait, batch_id: Uuid, reason: &str) -> Result<(), DbErr> {
    let now = Utc::now();
    registration_batch::Entity::update_many()
        .col_expr(
            registration_batch::Column::Status,
            Expr::value(sea_orm::ActiveEnum::to_value(&BatchStatus::Failed)),
        )
        .col_expr(registration_batch::Column::Error, Expr::value(reason))
        .col_expr(registration_batch::Column::FinishedAt, Expr::value(now))
        .col_expr(registration_batch::Column::UpdatedAt, Expr::value(now))
        .filter(registration_batch::Column::Id.eq(batch_id))
        .exec(db)
        .await?;
    Ok(())
}

/// The archive as a whole is unusable: the batch is `failed` with the reason and the
/// job succeeds (running it again would not help).
async fn fail_batch(
    ctx: &JobContext,
    job: &job::Model,
    batch: &registration_batch::Model,
    reason: &str,
) -> Result<Outcome<BatchUnpackResult>, JobError> {
    tracing::warn!(batch_id = %batch.id, reason, "registration batch refused");
    let result = BatchUnpackResult {
        batch_id: batch.id,
        students: 0,
        updated: 0,
        rejected: 0,
        error: Some(reason.to_string()),
    };
    let txn = ctx.db.begin().await?;
    set_failed(&txn, batch.id, reason).await?;
    super::complete(&txn, job, &result.clone().into()).await?;
    txn.commit().await?;
    discard_archive(ctx, batch).await;
    Ok(Outcome::Completed(result))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(consent: Option<bool>, note: Option<&str>) -> Plan {
        Plan {
            consent,
            consent_note: note.map(str::to_string),
            ..Plan::default()
        }
    }

    fn policy(required: bool, for_all: bool, note: Option<&str>) -> ConsentPolicy {
        ConsentPolicy {
            required,
            for_all,
            note: note.map(str::to_string),
        }
    }

    #[test]
    fn consent_values_are_read_and_bad_ones_refused() {
        let read = |c: Option<&str>, n: Option<&str>| {
            read_consent(c.map(str::to_string), n.map(str::to_string))
        };
        for yes in ["true", "TRUE", "yes", "Y", "1"] {
            assert_eq!(read(Some(yes), None), Ok((Some(true), None)));
        }
        for no in ["false", "No", "n", "0"] {
            assert_eq!(read(Some(no), None), Ok((Some(false), None)));
        }
        assert_eq!(
            read(None, Some("form 12")),
            Ok((None, Some("form 12".to_string())))
        );
        assert!(
            read(Some("maybe"), None)
                .unwrap_err()
                .contains("true or false")
        );
        assert!(
            read(Some("true"), Some("a\0b"))
                .unwrap_err()
                .contains("NUL")
        );
        let long = "x".repeat(NOTE_MAX_CHARS + 1);
        assert!(
            read(Some("true"), Some(&long))
                .unwrap_err()
                .contains("longer")
        );
    }

    #[test]
    fn consent_is_given_by_the_line_or_the_batch_and_required_when_asked() {
        let none = policy(false, false, None);
        let required = policy(true, false, None);
        // The line's own consent, with its note.
        assert_eq!(
            consent_for(&required, &line(Some(true), Some("form")), None, None),
            Ok(Some(Some("form".to_string())))
        );
        // Nothing said, nothing required: registered without consent.
        assert_eq!(consent_for(&none, &line(None, None), None, None), Ok(None));
        assert_eq!(
            consent_for(&none, &line(Some(false), None), None, None),
            Ok(None)
        );
        // Required: refused unless the line gives it or it is in force already.
        let refused = consent_for(&required, &line(None, None), None, None).unwrap_err();
        assert!(refused.contains("requires"), "{refused}");
        assert!(consent_for(&required, &line(Some(false), None), None, None).is_err());
        assert_eq!(
            consent_for(
                &required,
                &line(None, None),
                Some(StudentStatus::Active),
                Some(ConsentAction::Given)
            ),
            Ok(None)
        );
        // The import's --consent, with its note, unless the line says no.
        let for_all = policy(true, true, Some("forms in the office"));
        assert_eq!(
            consent_for(&for_all, &line(None, None), None, None),
            Ok(Some(Some("forms in the office".to_string())))
        );
        assert_eq!(
            consent_for(&for_all, &line(None, Some("own note")), None, None),
            Ok(Some(Some("own note".to_string())))
        );
        assert!(consent_for(&for_all, &line(Some(false), None), None, None).is_err());
        // A note without consent would be lost.
        assert!(
            consent_for(&none, &line(Some(false), Some("x")), None, None)
                .unwrap_err()
                .contains("consent_note")
        );
    }

    #[test]
    fn a_student_who_withdrew_needs_consent_on_their_line_whatever_is_required() {
        let none = policy(false, false, None);
        for (status, latest) in [
            (StudentStatus::Withdrawn, Some(ConsentAction::Withdrawn)),
            (StudentStatus::Withdrawn, None),
            (StudentStatus::Active, Some(ConsentAction::Withdrawn)),
        ] {
            let refused = consent_for(&none, &line(None, None), Some(status), latest).unwrap_err();
            assert!(refused.contains("withdrew"), "{refused}");
            assert_eq!(
                consent_for(&none, &line(Some(true), None), Some(status), latest),
                Ok(Some(None))
            );
        }
    }
}
