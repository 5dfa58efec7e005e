//! The retention job in production shape: PostgreSQL, RabbitMQ (bulk lane) and a real
//! S3 server, with a clock the test controls. Sessions are processed by the real
//! attendance job from real photos first, so that there are matched and unknown faces
//! with crops.

mod jobs_support;

use std::sync::Arc;
use std::time::Duration;

use chrono::{SubsecRound, TimeDelta, Utc};
use common::blob::{S3BlobStore, S3Options};
use common::job::result::JobResult;
use common::queue::{RabbitMqOptions, RabbitMqQueue};
use common::{BlobError, BlobStore, JobKind, JobMessage, JobQueue, Lane, ManualClock};
use models::prelude::*;
use models::{attendance_record, attendance_session, detected_face};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use tokio::sync::oneshot;
use uuid::Uuid;
use worker::jobs::{JobContext, Outcome, Progress};
use worker::service::{Worker, WorkerOptions};

use jobs_support::*;

const GROUP: &str = "groups/obama_biden_side_by_side.jpg";

async fn s3_store() -> S3BlobStore {
    let endpoint =
        std::env::var("TEST_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:9000".into());
    let url = format!(
        "s3://test-{}?region=us-east-1&endpoint={endpoint}&access_key={}&secret_key={}",
        Uuid::new_v4().simple(),
        std::env::var("TEST_S3_ACCESS_KEY").unwrap_or_else(|_| "attendance".into()),
        std::env::var("TEST_S3_SECRET_KEY").unwrap_or_else(|_| "attendance-secret".into()),
    );
    let store = S3BlobStore::connect(S3Options::from_url(&url).unwrap())
        .await
        .unwrap();
    store.ensure_bucket().await.unwrap_or_else(|e| {
        panic!("S3 server at {endpoint} not usable (run scripts/s3-server.sh): {e:?}")
    });
    store
}

async fn exists(blobs: &dyn BlobStore, key: &str) -> bool {
    match blobs.get(key).await {
        Ok(_) => true,
        Err(BlobError::NotFound(_)) => false,
        Err(e) => panic!("{key}: {e:?}"),
    }
}

/// A job row and its message on its kind's lane, as the API leaves them.
async fn enqueue(
    db: &sea_orm::DatabaseConnection,
    queue: &dyn JobQueue,
    kind: JobKind,
    subject: Uuid,
) -> Uuid {
    let job = insert_job(db, kind, subject).await;
    queue
        .publish(kind.lane(), &JobMessage::new(job.id, kind))
        .await
        .unwrap();
    job.id
}

async fn faces(db: &sea_orm::DatabaseConnection, session: Uuid) -> Vec<detected_face::Model> {
    DetectedFace::find()
        .filter(detected_face::Column::SessionId.eq(session))
        .all(db)
        .await
        .unwrap()
}

async fn records(db: &sea_orm::DatabaseConnection, session: Uuid) -> Vec<attendance_record::Model> {
    AttendanceRecord::find()
        .filter(attendance_record::Column::SessionId.eq(session))
        .all(db)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_on_postgres_rabbitmq_and_s3() {
    let base = std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let prefix = format!("test-retention-{}", Uuid::new_v4().simple());
    let separator = if base.contains('?') { '&' } else { '?' };
    let options = RabbitMqOptions::from_url(&format!("{base}{separator}prefix={prefix}")).unwrap();
    let rabbit = Arc::new(RabbitMqQueue::new(options));
    rabbit.check().await.unwrap_or_else(|e| {
        panic!("RabbitMQ at {base} is not reachable ({e}); run scripts/test.sh")
    });
    let queue: Arc<dyn JobQueue> = rabbit.clone();
    let test_db = TestDb::postgres().await;
    let db = &test_db.db;
    let blobs: Arc<dyn BlobStore> = Arc::new(s3_store().await);
    let start = Utc::now().trunc_subsecs(0);
    let clock = Arc::new(ManualClock::new(start));

    let class = insert_class(db, None).await;
    let (obama, _) = insert_student(
        db,
        &blobs,
        class,
        "01",
        &[fixture("people/obama/obama1.jpg")],
    )
    .await;
    let (old, old_photos) = insert_session_at(db, &blobs, class, &[fixture(GROUP)], start).await;
    let (young, young_photos) = insert_session_at(
        db,
        &blobs,
        class,
        &[fixture(GROUP)],
        start + TimeDelta::days(100),
    )
    .await;

    let ctx = JobContext {
        clock: clock.clone(),
        retention_days: Some(180),
        ..context(db, &blobs)
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let worker_queue = queue.clone();
    let worker_ctx = ctx.clone();
    let running = tokio::spawn(async move {
        let options = WorkerOptions {
            concurrency: 1,
            prefetch: 2,
            max_attempts: 3,
            lease: Duration::from_secs(30),
            base_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
        };
        Worker::new(worker_ctx, options)
            .run_until(worker_queue.as_ref(), async {
                let _ = stopped.await;
            })
            .await
            .expect("worker loop");
    });

    let registration = enqueue(db, queue.as_ref(), JobKind::Registration, obama).await;
    wait_finished(db, registration).await;
    for session in [old, young] {
        let job = enqueue(db, queue.as_ref(), JobKind::Attendance, session).await;
        let row = wait_finished(db, job).await;
        assert_eq!(row.status, models::job::JobStatus::Succeeded, "{row:?}");
    }
    let old_faces = faces(db, old).await;
    let matched = old_faces
        .iter()
        .find(|f| f.student_id == Some(obama))
        .expect("Obama recognised")
        .clone();
    let unknown: Vec<_> = old_faces
        .iter()
        .filter(|f| f.student_id.is_none())
        .cloned()
        .collect();
    assert!(!unknown.is_empty(), "Biden is unknown");
    let old_records = records(db, old).await;
    let photo_key = |session: Uuid, photo: Uuid| format!("sessions/{session}/photos/{photo}");

    clock.set(start + TimeDelta::days(181));

    // RETENTION_DAYS=0: the job deletes nothing.
    let off = JobContext {
        retention_days: None,
        ..ctx.clone()
    };
    let job = insert_job(db, JobKind::Retention, Uuid::new_v4()).await;
    let row = claimed(db, job.id).await;
    let outcome = worker::jobs::run(JobKind::Retention, &off, &row, &Progress::new(db, &row))
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Skipped(_)), "{outcome:?}");
    assert!(exists(blobs.as_ref(), &photo_key(old, old_photos[0])).await);
    assert!(exists(blobs.as_ref(), unknown[0].crop_key.as_ref().unwrap()).await);

    // 180 days: through the bulk lane.
    let job = enqueue(db, queue.as_ref(), JobKind::Retention, Uuid::new_v4()).await;
    let row = wait_finished(db, job).await;
    assert_eq!(row.status, models::job::JobStatus::Succeeded, "{row:?}");
    assert_eq!(row.lane, Lane::Bulk);
    match row.result.as_ref().and_then(JobResult::from_stored) {
        Some(JobResult::Retention(r)) => {
            assert_eq!((r.sessions, r.photos_deleted), (1, 1));
            assert_eq!(r.crops_deleted as usize, unknown.len());
        }
        other => panic!("{other:?}"),
    }

    // S3: the old session's photo and unknown crops are gone; the rest is there.
    assert!(!exists(blobs.as_ref(), &photo_key(old, old_photos[0])).await);
    for f in &unknown {
        assert!(!exists(blobs.as_ref(), f.crop_key.as_ref().unwrap()).await);
    }
    assert!(exists(blobs.as_ref(), matched.crop_key.as_ref().unwrap()).await);
    assert!(exists(blobs.as_ref(), &photo_key(young, young_photos[0])).await);
    for f in faces(db, young).await {
        assert!(exists(blobs.as_ref(), f.crop_key.as_ref().unwrap()).await);
    }
    // PostgreSQL: records and the matched face as they were; the session marked.
    assert_eq!(records(db, old).await, old_records);
    for f in faces(db, old).await {
        if f.student_id.is_none() {
            assert_eq!((f.crop_key, f.descriptor, f.model), (None, None, None));
        } else {
            assert_eq!(f, matched);
        }
    }
    let marked = AttendanceSession::find_by_id(old)
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(marked.photos_deleted_at, Some(clock_now(&clock)));
    let untouched = AttendanceSession::find_by_id(young)
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(untouched.photos_deleted_at, None);
    assert_eq!(
        SessionPhoto::find()
            .filter(models::session_photo::Column::SessionId.eq(old))
            .all(db)
            .await
            .unwrap()
            .len(),
        1,
        "the photo row stays"
    );

    // A later day's run: the younger session's turn once it is old enough.
    clock.set(start + TimeDelta::days(281));
    let job = enqueue(db, queue.as_ref(), JobKind::Retention, Uuid::new_v4()).await;
    let row = wait_finished(db, job).await;
    match row.result.as_ref().and_then(JobResult::from_stored) {
        Some(JobResult::Retention(r)) => assert_eq!(r.sessions, 1, "only the younger one"),
        other => panic!("{other:?}"),
    }
    assert!(!exists(blobs.as_ref(), &photo_key(young, young_photos[0])).await);
    let marked_again = AttendanceSession::find_by_id(old)
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(marked_again.photos_deleted_at, marked.photos_deleted_at);
    assert!(
        AttendanceSession::find()
            .filter(attendance_session::Column::PhotosDeletedAt.is_null())
            .all(db)
            .await
            .unwrap()
            .is_empty()
    );

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(60), running)
        .await
        .expect("the worker stops")
        .unwrap();
    rabbit.delete_queues().await.unwrap();
    test_db.cleanup().await;
}

fn clock_now(clock: &ManualClock) -> chrono::DateTime<Utc> {
    use common::Clock as _;
    clock.now()
}

/// A run that died after clearing the unknown faces' crops but before deleting the
/// blobs and marking the session (simulated: the rows cleared by hand) is finished by
/// the next run: the crops are found from the face ids and deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_done_session_is_finished_by_the_next_run() {
    let test_db = TestDb::sqlite().await;
    let db = &test_db.db;
    let (blobs, _dir) = blob_store().await;
    let start = Utc::now().trunc_subsecs(0);
    let clock = Arc::new(ManualClock::new(start));
    let class = insert_class(db, None).await;
    let (session, photos) = insert_session_at(db, &blobs, class, &[fixture(GROUP)], start).await;
    let ctx = JobContext {
        clock: clock.clone(),
        retention_days: Some(30),
        ..context(db, &blobs)
    };
    let attendance = insert_job(db, JobKind::Attendance, session).await;
    let row = claimed(db, attendance.id).await;
    worker::jobs::run(JobKind::Attendance, &ctx, &row, &Progress::new(db, &row))
        .await
        .unwrap();
    let found = faces(db, session).await;
    assert!(found.len() >= 2 && found.iter().all(|f| f.student_id.is_none()));
    let crop_keys: Vec<String> = found.iter().filter_map(|f| f.crop_key.clone()).collect();
    assert_eq!(crop_keys.len(), found.len());

    // Step 1 of a run that then died.
    DetectedFace::update_many()
        .col_expr(
            detected_face::Column::CropKey,
            sea_orm::sea_query::Expr::value(Option::<String>::None),
        )
        .filter(detected_face::Column::SessionId.eq(session))
        .exec(db)
        .await
        .unwrap();

    clock.advance(TimeDelta::days(31));
    let job = insert_job(db, JobKind::Retention, Uuid::new_v4()).await;
    let row = claimed(db, job.id).await;
    let outcome = worker::jobs::run(JobKind::Retention, &ctx, &row, &Progress::new(db, &row))
        .await
        .unwrap();
    let Outcome::Completed(JobResult::Retention(result)) = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(result.sessions, 1);
    for key in &crop_keys {
        assert!(!exists(blobs.as_ref(), key).await, "{key}");
    }
    assert!(
        !exists(
            blobs.as_ref(),
            &format!("sessions/{session}/photos/{}", photos[0])
        )
        .await
    );
    for f in faces(db, session).await {
        assert_eq!((f.crop_key, f.descriptor), (None, None));
    }
    test_db.cleanup().await;
}
