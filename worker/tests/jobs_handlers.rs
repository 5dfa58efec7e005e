//! The registration and attendance handlers on real photos and real weights, against
//! SQLite and PostgreSQL: verdicts, embeddings, records, faces with their crops, and
//! that a re-run rewrites rather than duplicates (and keeps a teacher's correction).

mod jobs_support;

use common::JobKind;
use models::attendance_record::{self, RecordSource, RecordStatus};
use models::attendance_session::SessionStatus;
use models::job::JobStatus;
use models::prelude::*;
use models::student::StudentStatus;
use models::student_photo::PhotoVerdict;
use models::{detected_face, face_embedding, student_photo};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder,
};
use uuid::Uuid;
use worker::jobs::{self, JobContext, Outcome, Progress};

use jobs_support::*;

/// Runs a job row's handler the way the service does (after marking it running).
async fn run_job(ctx: &JobContext, kind: JobKind, subject_id: Uuid) -> serde_json::Value {
    let job = insert_job(&ctx.db, kind, subject_id).await;
    run_existing(ctx, kind, job.id).await
}

async fn run_existing(ctx: &JobContext, kind: JobKind, job_id: Uuid) -> serde_json::Value {
    let job = claimed(&ctx.db, job_id).await;
    let progress = Progress::new(&ctx.db, &job);
    let outcome = jobs::run(kind, ctx, &job, &progress)
        .await
        .unwrap_or_else(|e| panic!("{kind} job failed: {}", e.readable()));
    let Outcome::Completed(result) = outcome else {
        panic!("{kind} job skipped: {outcome:?}");
    };
    let result = result.to_stored();
    assert_eq!(result["type"], kind.as_str());
    let row = job_row(&ctx.db, job_id).await;
    assert_eq!(row.status, JobStatus::Succeeded);
    assert_eq!(row.progress, 1.0);
    // The stored result is the returned one (up to float formatting in the database).
    let stored = row.result.expect("a stored result");
    for key in [
        "accepted", "rejected", "faces", "present", "absent", "unknown",
    ] {
        assert_eq!(stored.get(key), result.get(key), "{key}");
    }
    assert!(row.finished_at.is_some());
    result
}

async fn photo(db: &DatabaseConnection, id: Uuid) -> student_photo::Model {
    StudentPhoto::find_by_id(id).one(db).await.unwrap().unwrap()
}

async fn status_of(db: &DatabaseConnection, student_id: Uuid) -> StudentStatus {
    Student::find_by_id(student_id)
        .one(db)
        .await
        .unwrap()
        .unwrap()
        .status
}

async fn records(db: &DatabaseConnection, session_id: Uuid) -> Vec<attendance_record::Model> {
    AttendanceRecord::find()
        .filter(attendance_record::Column::SessionId.eq(session_id))
        .all(db)
        .await
        .unwrap()
}

async fn faces(db: &DatabaseConnection, session_id: Uuid) -> Vec<detected_face::Model> {
    DetectedFace::find()
        .filter(detected_face::Column::SessionId.eq(session_id))
        .order_by_asc(detected_face::Column::Id)
        .all(db)
        .await
        .unwrap()
}

async fn register_then_take_attendance(test_db: &TestDb) {
    let db = &test_db.db;
    let (blobs, _blob_dir) = blob_store().await;
    let ctx = context(db, &blobs);
    let class_id = insert_class(db, None).await;

    // Registration.
    let (obama, obama_photos) = insert_student(
        db,
        &blobs,
        class_id,
        "CS01",
        &[
            fixture("people/obama/obama1.jpg"),
            fixture("people/obama/obama2.jpg"),
        ],
    )
    .await;
    let (biden, _) = insert_student(
        db,
        &blobs,
        class_id,
        "CS02",
        &[fixture("people/biden/biden1.jpg")],
    )
    .await;
    let (kit, _) = insert_student(
        db,
        &blobs,
        class_id,
        "CS03",
        &[
            fixture("people/kit_harington/kit1.jpeg"),
            fixture("people/kit_harington/kit2.jpeg"),
        ],
    )
    .await;
    let (nobody, nobody_photos) = insert_student(
        db,
        &blobs,
        class_id,
        "CS04",
        &[
            plain_photo(),
            fixture("groups/obama_biden_side_by_side.jpg"),
        ],
    )
    .await;

    let result = run_job(&ctx, JobKind::Registration, obama).await;
    assert_eq!(result["accepted"], 2, "{result:#}");
    assert_eq!(result["rejected"], 0);
    assert_eq!(result["possible_duplicates"], serde_json::json!([]));
    for id in &obama_photos {
        let p = photo(db, *id).await;
        assert_eq!(p.verdict, PhotoVerdict::Accepted, "{p:?}");
        assert!(p.detector_score.unwrap() >= 0.95);
        let b = p.face_box.unwrap();
        assert!(b["x2"].as_f64().unwrap() - b["x1"].as_f64().unwrap() >= 80.0);
    }
    assert_eq!(status_of(db, obama).await, StudentStatus::Active);

    let result = run_job(&ctx, JobKind::Registration, biden).await;
    assert_eq!(result["accepted"], 1, "{result:#}");
    assert_eq!(status_of(db, biden).await, StudentStatus::Active);
    let result = run_job(&ctx, JobKind::Registration, kit).await;
    assert_eq!(result["accepted"], 2, "{result:#}");
    assert_eq!(status_of(db, kit).await, StudentStatus::Active);

    let result = run_job(&ctx, JobKind::Registration, nobody).await;
    assert_eq!(result["accepted"], 0, "{result:#}");
    let plain = photo(db, nobody_photos[0]).await;
    assert_eq!(plain.verdict, PhotoVerdict::Rejected);
    assert_eq!(plain.reason.as_deref(), Some("no_face"));
    let group = photo(db, nobody_photos[1]).await;
    assert_eq!(group.verdict, PhotoVerdict::Rejected);
    assert_eq!(group.reason.as_deref(), Some("several_faces"));
    assert_eq!(result["photos"][1]["faces"], 2);
    assert_eq!(status_of(db, nobody).await, StudentStatus::Failed);

    // One embedding per accepted photo, under the engine's model name.
    let embeddings = FaceEmbedding::find().all(db).await.unwrap();
    assert_eq!(embeddings.len(), 5);
    for e in &embeddings {
        assert_eq!(e.model, ctx.engine.model_name());
        assert_eq!(models::vector::decode(&e.vector).unwrap().len(), 128);
    }

    // Attendance from the side-by-side photo: obama and biden present, kit absent.
    let group_photo = fixture("groups/obama_biden_side_by_side.jpg");
    let (session, session_photos) = insert_session(db, &blobs, class_id, &[group_photo]).await;
    let job = insert_job(db, JobKind::Attendance, session).await;
    let result = run_existing(&ctx, JobKind::Attendance, job.id).await;
    assert_eq!(result["faces"], 2, "{result:#}");
    assert_eq!(result["present"], 2);
    assert_eq!(result["absent"], 1);
    assert_eq!(result["unknown"], 0);
    let session_row = AttendanceSession::find_by_id(session)
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session_row.status, SessionStatus::Completed);

    let first_records = records(db, session).await;
    assert_eq!(first_records.len(), 3, "one record per active student");
    let status = |records: &[attendance_record::Model], s: Uuid| {
        let r = records.iter().find(|r| r.student_id == s).unwrap().clone();
        (r.status, r.source)
    };
    assert_eq!(
        status(&first_records, obama),
        (RecordStatus::Present, RecordSource::Auto)
    );
    assert_eq!(
        status(&first_records, biden),
        (RecordStatus::Present, RecordSource::Auto)
    );
    assert_eq!(
        status(&first_records, kit),
        (RecordStatus::Absent, RecordSource::Auto)
    );
    for r in &first_records {
        // Present records carry their distance, under the default ceiling.
        match r.status {
            RecordStatus::Present => assert!(r.distance.unwrap() < 0.45, "{r:?}"),
            RecordStatus::Absent => assert_eq!(r.distance, None),
            RecordStatus::Unmatched => panic!("every student has a dlib embedding: {r:?}"),
        }
    }

    // Every face stored, matched, with a real JPEG crop in the blob store.
    let first_faces = faces(db, session).await;
    assert_eq!(first_faces.len(), 2);
    let mut matched: Vec<Uuid> = first_faces.iter().filter_map(|f| f.student_id).collect();
    matched.sort();
    let mut expected = vec![obama, biden];
    expected.sort();
    assert_eq!(matched, expected);
    for f in &first_faces {
        assert_eq!(f.photo_id, session_photos[0]);
        assert!(f.score > 0.9);
        assert_eq!(f.landmarks.as_array().unwrap().len(), 5);
        let key = f.crop_key.as_deref().expect("a crop");
        assert_eq!(key, format!("sessions/{session}/faces/{}.jpg", f.id));
        let jpeg = blobs.get(key).await.expect("crop in the blob store");
        let crop = image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg)
            .expect("the crop is a JPEG");
        let b = &f.face_box;
        let face_width = b["x2"].as_f64().unwrap() - b["x1"].as_f64().unwrap();
        assert!(
            f64::from(crop.width()) >= face_width,
            "crop narrower than the face"
        );
    }

    // A teacher marks kit present by hand; then the job runs again (a redelivery).
    let kit_record = first_records.iter().find(|r| r.student_id == kit).unwrap();
    let mut manual = kit_record.clone().into_active_model();
    manual.status = Set(RecordStatus::Present);
    manual.source = Set(RecordSource::Manual);
    AttendanceRecord::update(manual).exec(db).await.unwrap();

    requeue(db, job.id).await;
    let again = run_existing(&ctx, JobKind::Attendance, job.id).await;
    assert_eq!(again["present"], 2);
    let second_records = records(db, session).await;
    assert_eq!(
        second_records.len(),
        3,
        "a re-run must not duplicate records"
    );
    assert_eq!(
        status(&second_records, obama),
        (RecordStatus::Present, RecordSource::Auto)
    );
    assert_eq!(
        status(&second_records, biden),
        (RecordStatus::Present, RecordSource::Auto)
    );
    assert_eq!(
        status(&second_records, kit),
        (RecordStatus::Present, RecordSource::Manual),
        "a manual record must survive a re-run"
    );
    let second_faces = faces(db, session).await;
    assert_eq!(
        second_faces
            .iter()
            .map(|f| (f.id, f.student_id))
            .collect::<Vec<_>>(),
        first_faces
            .iter()
            .map(|f| (f.id, f.student_id))
            .collect::<Vec<_>>(),
        "a re-run rewrites the same faces"
    );
    assert_eq!(count(db, "detected_faces").await, 2);

    // Registering Obama again under another roll number is flagged as a duplicate.
    let (twin, _) = insert_student(
        db,
        &blobs,
        class_id,
        "CS05",
        &[fixture("people/obama/obama3.jpg")],
    )
    .await;
    let result = run_job(&ctx, JobKind::Registration, twin).await;
    assert_eq!(result["accepted"], 1, "{result:#}");
    let duplicates = result["possible_duplicates"].as_array().unwrap();
    assert_eq!(duplicates.len(), 1, "{result:#}");
    assert_eq!(duplicates[0]["student_id"], obama.to_string());
    assert_eq!(duplicates[0]["roll_no"], "CS01");
    assert!(duplicates[0]["distance"].as_f64().unwrap() <= 0.4);

    // A re-run of a registration replaces its embedding rather than adding one.
    let before = count(db, "face_embeddings").await;
    let twin_job = jobs_support::insert_job(db, JobKind::Registration, twin).await;
    run_existing(&ctx, JobKind::Registration, twin_job.id).await;
    assert_eq!(count(db, "face_embeddings").await, before);
    let twin_embeddings = FaceEmbedding::find()
        .filter(face_embedding::Column::StudentId.eq(twin))
        .all(db)
        .await
        .unwrap();
    assert_eq!(twin_embeddings.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_and_attendance_on_sqlite() {
    let db = TestDb::sqlite().await;
    register_then_take_attendance(&db).await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_and_attendance_on_postgres() {
    let db = TestDb::postgres().await;
    register_then_take_attendance(&db).await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_for_deleted_subjects_are_skipped() {
    let test_db = TestDb::sqlite().await;
    let db = &test_db.db;
    let (blobs, _dir) = blob_store().await;
    let ctx = context(db, &blobs);
    for kind in JobKind::ALL {
        let job = insert_job(db, kind, Uuid::new_v4()).await;
        let job = claimed(db, job.id).await;
        let outcome = jobs::run(kind, &ctx, &job, &Progress::new(db, &job))
            .await
            .unwrap();
        assert!(matches!(outcome, Outcome::Skipped(_)), "{outcome:?}");
    }
    test_db.cleanup().await;
}
