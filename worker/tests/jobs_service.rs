//! The service loop: messages in, jobs run, settled only after the commit; retries with
//! backoff, dead-lettering of garbage and of jobs that fail for good; and the same over
//! RabbitMQ with PostgreSQL.

mod jobs_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use common::queue::{EmbeddedQueue, RabbitMqOptions, RabbitMqQueue};
use common::{BlobError, BlobStore, JobKind, JobMessage, JobQueue, Lane};
use models::attendance_session::SessionStatus;
use models::job::JobStatus;
use models::prelude::*;
use models::student::StudentStatus;
use sea_orm::EntityTrait;
use tokio::sync::oneshot;
use uuid::Uuid;
use worker::jobs::JobContext;
use worker::service::{Worker, WorkerOptions};

use jobs_support::*;

/// A job row for `subject_id` and its message on the interactive lane, as the API's
/// outbox leaves them for an upload.
async fn enqueue(
    db: &sea_orm::DatabaseConnection,
    queue: &dyn JobQueue,
    kind: JobKind,
    subject_id: Uuid,
) -> models::job::Model {
    let job = insert_job(db, kind, subject_id).await;
    queue
        .publish(Lane::Interactive, &JobMessage::new(job.id, kind))
        .await
        .unwrap();
    job
}

fn fast_options(max_attempts: u32) -> WorkerOptions {
    WorkerOptions {
        concurrency: 1,
        prefetch: 2,
        max_attempts,
        lease: Duration::from_secs(30),
        base_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
    }
}

/// A running worker loop and the means to stop it.
struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

fn start(ctx: JobContext, options: WorkerOptions, queue: Arc<dyn JobQueue>) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let worker = Worker::new(ctx, options);
        worker
            .run_until(queue.as_ref(), async {
                let _ = stopped.await;
            })
            .await
            .expect("worker loop");
    });
    Running { stop, task }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("the worker stops when asked")
            .unwrap();
    }
}

/// A blob store whose reads fail (as if S3 were unreachable) the first `failures` times.
#[derive(Debug)]
struct FlakyBlobs {
    inner: Arc<dyn BlobStore>,
    failures: AtomicU32,
}

#[async_trait]
impl BlobStore for FlakyBlobs {
    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> Result<(), BlobError> {
        self.inner.put(key, bytes, content_type).await
    }
    async fn get(&self, key: &str) -> Result<Bytes, BlobError> {
        let left = self.failures.load(Ordering::SeqCst);
        if left > 0 {
            self.failures.store(left - 1, Ordering::SeqCst);
            return Err(BlobError::Unavailable {
                operation: format!("get {key}"),
                source: "connection refused".into(),
            });
        }
        self.inner.get(key).await
    }
    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        self.inner.delete(key).await
    }
    async fn check(&self) -> Result<(), BlobError> {
        self.inner.check().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_queue_runs_jobs_and_settles_every_message() {
    let test_db = TestDb::sqlite().await;
    let db = &test_db.db;
    let (blobs, _dir) = blob_store().await;
    let queue = Arc::new(EmbeddedQueue::new());
    let running = start(context(db, &blobs), fast_options(3), queue.clone());
    let class_id = insert_class(db, None).await;

    // A registration, then an attendance job, through the queue.
    let (obama, _) = insert_student(
        db,
        &blobs,
        class_id,
        "CS01",
        &[fixture("people/obama/obama1.jpg")],
    )
    .await;
    let registration = enqueue(db, queue.as_ref(), JobKind::Registration, obama).await;
    let done = wait_finished(db, registration.id).await;
    assert_eq!(done.status, JobStatus::Succeeded, "{done:?}");
    assert_eq!(done.attempts, 1);
    assert!(done.started_at.is_some() && done.finished_at.is_some());
    assert_eq!(done.result.as_ref().unwrap()["accepted"], 1);

    // A session whose photo is not an image: aborted at once, session failed.
    let (bad_session, _) =
        insert_session(db, &blobs, class_id, &[b"GIF89a but not really".to_vec()]).await;
    let bad = enqueue(db, queue.as_ref(), JobKind::Attendance, bad_session).await;
    let failed = wait_finished(db, bad.id).await;
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.attempts, 1, "bad data is not retried");
    assert!(
        failed.error.as_deref().unwrap().contains("session photo"),
        "{failed:?}"
    );
    let session = AttendanceSession::find_by_id(bad_session)
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session.status, SessionStatus::Failed);

    assert_eq!(
        queue.dead_letters().len(),
        1,
        "the aborted job is dead-lettered"
    );

    // A message for a job that does not exist is a no-op, acked.
    queue
        .publish(
            Lane::Interactive,
            &JobMessage::new(Uuid::new_v4(), JobKind::Attendance),
        )
        .await
        .unwrap();
    // Once the unknown job's message is settled, a duplicate of the finished
    // registration must be acked without running it again.
    queue
        .publish(
            Lane::Bulk,
            &JobMessage::new(registration.id, JobKind::Registration),
        )
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while queue.depth(Lane::Interactive) + queue.depth(Lane::Bulk) > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "messages left in the queue"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.stop().await;
    assert_eq!(queue.dead_letters().len(), 1, "{:?}", queue.dead_letters());
    assert_eq!(queue.depth(Lane::Interactive), 0);
    assert_eq!(queue.depth(Lane::Bulk), 0);
    assert_eq!(
        job_row(db, registration.id).await.attempts,
        1,
        "not run twice"
    );
    test_db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_then_given_up() {
    let test_db = TestDb::sqlite().await;
    let db = &test_db.db;
    let (blobs, _dir) = blob_store().await;
    let flaky = Arc::new(FlakyBlobs {
        inner: blobs.clone(),
        failures: AtomicU32::new(0),
    });
    let flaky_store: Arc<dyn BlobStore> = flaky.clone();
    let queue = Arc::new(EmbeddedQueue::new());
    let running = start(context(db, &flaky_store), fast_options(3), queue.clone());
    let class_id = insert_class(db, None).await;

    // The store fails twice, then works: the job succeeds on its third attempt.
    let (biden, _) = insert_student(
        db,
        &blobs,
        class_id,
        "CS02",
        &[fixture("people/biden/biden1.jpg")],
    )
    .await;
    flaky.failures.store(2, Ordering::SeqCst);
    let job = enqueue(db, queue.as_ref(), JobKind::Registration, biden).await;
    let done = wait_finished(db, job.id).await;
    assert_eq!(done.status, JobStatus::Succeeded, "{done:?}");
    assert_eq!(done.attempts, 3);
    assert_eq!(done.error, None);
    assert_eq!(
        Student::find_by_id(biden)
            .one(db)
            .await
            .unwrap()
            .unwrap()
            .status,
        StudentStatus::Active
    );

    // The store stays down: after 3 attempts the job fails and is dead-lettered.
    let (kit, _) = insert_student(
        db,
        &blobs,
        class_id,
        "CS03",
        &[fixture("people/kit_harington/kit1.jpeg")],
    )
    .await;
    flaky.failures.store(u32::MAX, Ordering::SeqCst);
    let job = enqueue(db, queue.as_ref(), JobKind::Registration, kit).await;
    let failed = wait_finished(db, job.id).await;
    assert_eq!(failed.status, JobStatus::Failed, "{failed:?}");
    assert_eq!(failed.attempts, 3);
    let error = failed.error.unwrap();
    assert!(
        error.contains("a photo could not be read from storage"),
        "{error}"
    );
    assert!(error.contains("gave up after 3 attempts"), "{error}");
    assert_eq!(
        Student::find_by_id(kit)
            .one(db)
            .await
            .unwrap()
            .unwrap()
            .status,
        StudentStatus::Failed
    );
    running.stop().await;
    let dead = queue.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempt, 3);
    assert_eq!(dead[0].message().unwrap().job_id, job.id);
    test_db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_and_postgres_ack_after_commit() {
    let base = std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let prefix = format!("test-worker-{}", Uuid::new_v4().simple());
    let separator = if base.contains('?') { '&' } else { '?' };
    let options = RabbitMqOptions::from_url(&format!("{base}{separator}prefix={prefix}")).unwrap();
    let rabbit = Arc::new(RabbitMqQueue::new(options));
    rabbit.check().await.unwrap_or_else(|e| {
        panic!("RabbitMQ at {base} is not reachable ({e}); run scripts/test.sh")
    });
    let names = rabbit.names().clone();

    let test_db = TestDb::postgres().await;
    let db = &test_db.db;
    let (blobs, _dir) = blob_store().await;
    let class_id = insert_class(db, None).await;
    let (obama, _) = insert_student(
        db,
        &blobs,
        class_id,
        "CS01",
        &[fixture("people/obama/obama2.jpg")],
    )
    .await;
    let job = enqueue(db, rabbit.as_ref(), JobKind::Registration, obama).await;
    assert_eq!(rabbit.message_count(&names.interactive).await.unwrap(), 1);

    let running = start(context(db, &blobs), fast_options(3), rabbit.clone());
    let done = wait_finished(db, job.id).await;
    assert_eq!(done.status, JobStatus::Succeeded, "{done:?}");
    // Stopping closes the consumer's channel: an unacked message would go back to its
    // queue, so an empty queue now means the message was acked (after the commit that
    // made the job `succeeded`).
    running.stop().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for queue in [&names.interactive, &names.interactive_retry, &names.dead] {
        assert_eq!(rabbit.message_count(queue).await.unwrap(), 0, "{queue}");
    }
    assert_eq!(job_row(db, job.id).await.attempts, 1);
    assert_eq!(
        Student::find_by_id(obama)
            .one(db)
            .await
            .unwrap()
            .unwrap()
            .status,
        StudentStatus::Active
    );
    rabbit.delete_queues().await.unwrap();
    test_db.cleanup().await;
}

// ---- Switching FACE_MODEL: re-embedding on the bulk lane ----

const DLIB: &str = "dlib_resnet_v1";
const ARCFACE: &str = "arcface_w600k_mbf";

/// Registers Obama, Biden and Kit Harington under dlib (the registration job, as the
/// API's upload queues it) and returns their ids.
async fn register_under_dlib(
    db: &sea_orm::DatabaseConnection,
    blobs: &Arc<dyn BlobStore>,
    class_id: Uuid,
) -> [Uuid; 3] {
    let ctx = context(db, blobs);
    assert_eq!(ctx.engine.model_name(), DLIB);
    let people = [
        ("CS01", "people/obama/obama1.jpg"),
        ("CS02", "people/biden/biden1.jpg"),
        ("CS03", "people/kit_harington/kit1.jpeg"),
    ];
    let mut ids = [Uuid::nil(); 3];
    for (i, (roll, photo)) in people.into_iter().enumerate() {
        let (id, _) = insert_student(db, blobs, class_id, roll, &[fixture(photo)]).await;
        let job = insert_job(db, JobKind::Registration, id).await;
        let job = claimed(db, job.id).await;
        let progress = worker::jobs::Progress::new(db, &job);
        let outcome = worker::jobs::run(JobKind::Registration, &ctx, &job, &progress)
            .await
            .expect("registration runs");
        assert!(
            matches!(outcome, worker::jobs::Outcome::Completed(_)),
            "{outcome:?}"
        );
        ids[i] = id;
    }
    for id in ids {
        let student = Student::find_by_id(id).one(db).await.unwrap().unwrap();
        assert_eq!(student.status, StudentStatus::Active, "{student:?}");
    }
    ids
}

/// Embeddings of `model` per student.
async fn embeddings_of(db: &sea_orm::DatabaseConnection, model: &str) -> Vec<Uuid> {
    use sea_orm::{ColumnTrait, QueryFilter};
    let mut ids: Vec<Uuid> = FaceEmbedding::find()
        .filter(models::face_embedding::Column::Model.eq(model))
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.student_id)
        .collect();
    ids.sort();
    ids
}

/// The session's records as `(student, status)`.
async fn record_statuses(
    db: &sea_orm::DatabaseConnection,
    session: Uuid,
) -> std::collections::HashMap<Uuid, models::attendance_record::RecordStatus> {
    use sea_orm::{ColumnTrait, QueryFilter};
    AttendanceRecord::find()
        .filter(models::attendance_record::Column::SessionId.eq(session))
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.student_id, r.status))
        .collect()
}

fn attendance_result(row: &models::job::Model) -> common::job::result::AttendanceResult {
    match row
        .result
        .as_ref()
        .and_then(common::job::result::JobResult::from_stored)
    {
        Some(common::job::result::JobResult::Attendance(a)) => a,
        other => panic!("not an attendance result: {other:?} in {row:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_to_arcface_reembeds_and_reports_students_not_yet_embedded() {
    use models::attendance_record::RecordStatus;
    let test_db = TestDb::sqlite().await;
    let db = &test_db.db;
    let (blobs, _dir) = blob_store().await;
    let class_id = insert_class(db, None).await;
    let [obama, biden, kit] = register_under_dlib(db, &blobs, class_id).await;
    let mut all = vec![obama, biden, kit];
    all.sort();
    assert_eq!(embeddings_of(db, DLIB).await, all);

    // FACE_MODEL=arcface-mbf: a worker with the ArcFace engine.
    let queue = Arc::new(EmbeddedQueue::new());
    let arcface = context_with(db, &blobs, arcface_engine());
    let running = start(arcface.clone(), fast_options(3), queue.clone());

    // Before re-embedding, a session still runs, and says who could not be matched.
    let group = fixture("groups/obama_biden_side_by_side.jpg");
    let (early, _) = insert_session(db, &blobs, class_id, std::slice::from_ref(&group)).await;
    let job = enqueue(db, queue.as_ref(), JobKind::Attendance, early).await;
    let done = wait_finished(db, job.id).await;
    assert_eq!(done.status, JobStatus::Succeeded, "{done:?}");
    let result = attendance_result(&done);
    assert_eq!(result.model, ARCFACE);
    assert_eq!(
        (result.registered, result.present, result.absent),
        (0, 0, 0)
    );
    assert_eq!(result.unmatched, 3);
    let mut reported: Vec<_> = result
        .not_yet_embedded
        .iter()
        .map(|n| (n.roll_no.as_str(), n.reason.as_str()))
        .collect();
    reported.sort();
    let pending = "registered with dlib_resnet_v1; re-embedding with arcface_w600k_mbf pending";
    assert_eq!(
        reported,
        vec![("CS01", pending), ("CS02", pending), ("CS03", pending)]
    );
    let records = record_statuses(db, early).await;
    assert_eq!(records.len(), 3, "nobody silently left out: {records:?}");
    assert!(records.values().all(|s| *s == RecordStatus::Unmatched));

    // Scheduling: one bulk job per student; a second pass adds nothing.
    let scheduled = worker::reembedding::schedule(db, Some(queue.as_ref()), ARCFACE)
        .await
        .unwrap();
    assert_eq!(scheduled.created.len(), 3);
    assert_eq!(scheduled.published, 3);
    let again = worker::reembedding::schedule(db, Some(queue.as_ref()), ARCFACE)
        .await
        .unwrap();
    assert!(again.created.is_empty(), "{again:?}");
    let tally =
        worker::reembedding::wait_for(db, &scheduled.all(), Duration::from_millis(100), |_| {})
            .await
            .unwrap();
    assert_eq!(tally.succeeded, 3, "{tally:?}");
    for id in &scheduled.created {
        let row = job_row(db, *id).await;
        assert_eq!(row.lane, Lane::Bulk);
        let result = row.result.unwrap();
        assert_eq!(result["type"], "reembed");
        assert_eq!(result["model"], ARCFACE);
        assert_eq!(result["previous_models"][0], DLIB);
        assert_eq!(result["accepted"], 1, "{result:#}");
        assert_eq!(result["matchable"], true);
    }
    // ArcFace embeddings written (512-D), dlib's untouched.
    assert_eq!(embeddings_of(db, ARCFACE).await, all);
    assert_eq!(embeddings_of(db, DLIB).await, all);
    for e in FaceEmbedding::find().all(db).await.unwrap() {
        let len = models::vector::decode(&e.vector).unwrap().len();
        assert_eq!(len, if e.model == ARCFACE { 512 } else { 128 });
    }
    // Re-embedded students are not scheduled again.
    let after = worker::reembedding::schedule(db, Some(queue.as_ref()), ARCFACE)
        .await
        .unwrap();
    assert_eq!(after, worker::reembedding::Scheduled::default());

    // The same group photo now: the right students present under ArcFace.
    let (later, _) = insert_session(db, &blobs, class_id, &[group]).await;
    let job = enqueue(db, queue.as_ref(), JobKind::Attendance, later).await;
    let done = wait_finished(db, job.id).await;
    let result = attendance_result(&done);
    assert_eq!(
        (
            result.registered,
            result.present,
            result.absent,
            result.unmatched
        ),
        (3, 2, 1, 0),
        "{result:?}"
    );
    assert!(result.not_yet_embedded.is_empty());
    let records = record_statuses(db, later).await;
    assert_eq!(records[&obama], RecordStatus::Present);
    assert_eq!(records[&biden], RecordStatus::Present);
    assert_eq!(records[&kit], RecordStatus::Absent);

    running.stop().await;
    assert!(
        queue.dead_letters().is_empty(),
        "{:?}",
        queue.dead_letters()
    );
    test_db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reembed_jobs_travel_on_the_rabbitmq_bulk_queue_and_are_acked() {
    use models::attendance_record::RecordStatus;
    let base = std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let prefix = format!("test-reembed-{}", Uuid::new_v4().simple());
    let separator = if base.contains('?') { '&' } else { '?' };
    let options = RabbitMqOptions::from_url(&format!("{base}{separator}prefix={prefix}")).unwrap();
    let rabbit = Arc::new(RabbitMqQueue::new(options));
    rabbit.check().await.unwrap_or_else(|e| {
        panic!("RabbitMQ at {base} is not reachable ({e}); run scripts/test.sh")
    });
    let names = rabbit.names().clone();

    let test_db = TestDb::postgres().await;
    let db = &test_db.db;
    let (blobs, _dir) = blob_store().await;
    let class_id = insert_class(db, None).await;
    let [obama, biden, kit] = register_under_dlib(db, &blobs, class_id).await;

    // Scheduled before any worker runs: the messages wait on the bulk queue only.
    let scheduled = worker::reembedding::schedule(db, Some(rabbit.as_ref()), ARCFACE)
        .await
        .unwrap();
    assert_eq!((scheduled.created.len(), scheduled.published), (3, 3));
    assert_eq!(rabbit.message_count(&names.bulk).await.unwrap(), 3);
    assert_eq!(rabbit.message_count(&names.interactive).await.unwrap(), 0);
    for id in &scheduled.created {
        assert!(job_row(db, *id).await.published_at.is_some());
    }

    let running = start(
        context_with(db, &blobs, arcface_engine()),
        fast_options(3),
        rabbit.clone(),
    );
    let tally =
        worker::reembedding::wait_for(db, &scheduled.all(), Duration::from_millis(100), |_| {})
            .await
            .unwrap();
    assert_eq!(tally.succeeded, 3, "{tally:?}");
    for id in &scheduled.created {
        assert_eq!(job_row(db, *id).await.attempts, 1, "each ran once");
    }

    // A teacher's session afterwards, on the interactive lane.
    let (session, _) = insert_session(
        db,
        &blobs,
        class_id,
        &[fixture("groups/obama_biden_side_by_side.jpg")],
    )
    .await;
    let job = enqueue(db, rabbit.as_ref(), JobKind::Attendance, session).await;
    let done = wait_finished(db, job.id).await;
    let result = attendance_result(&done);
    assert_eq!(
        (result.present, result.absent, result.unmatched),
        (2, 1, 0),
        "{result:?}"
    );
    let records = record_statuses(db, session).await;
    assert_eq!(records[&obama], RecordStatus::Present);
    assert_eq!(records[&biden], RecordStatus::Present);
    assert_eq!(records[&kit], RecordStatus::Absent);

    // Stopping closes the channel: anything unacked would be back in its queue.
    running.stop().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for queue in [
        &names.bulk,
        &names.bulk_retry,
        &names.interactive,
        &names.interactive_retry,
        &names.dead,
    ] {
        assert_eq!(rabbit.message_count(queue).await.unwrap(), 0, "{queue}");
    }
    rabbit.delete_queues().await.unwrap();
    test_db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attendance_worker_reembed_queues_the_jobs_and_waits_for_them() {
    let base = std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let prefix = format!("test-reembed-cli-{}", Uuid::new_v4().simple());
    let separator = if base.contains('?') { '&' } else { '?' };
    let queue_url = format!("{base}{separator}prefix={prefix}");
    let rabbit = Arc::new(RabbitMqQueue::new(
        RabbitMqOptions::from_url(&queue_url).unwrap(),
    ));
    rabbit.check().await.unwrap_or_else(|e| {
        panic!("RabbitMQ at {base} is not reachable ({e}); run scripts/test.sh")
    });
    let test_db = TestDb::postgres().await;
    let db = &test_db.db;
    let (blobs, blob_dir) = blob_store().await;
    let class_id = insert_class(db, None).await;
    register_under_dlib(db, &blobs, class_id).await;
    // A worker already switched to ArcFace, consuming the same queues.
    let running = start(
        context_with(db, &blobs, arcface_engine()),
        fast_options(3),
        rabbit.clone(),
    );

    let cli = |label: &'static str| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_attendance-worker"));
        cmd.arg("reembed")
            .env("DATABASE_URL", test_db.postgres_url().unwrap())
            .env("QUEUE_URL", &queue_url)
            .env(
                "STORAGE_URL",
                format!("file://{}", blob_dir.path().display()),
            )
            .env("FACE_MODEL", "arcface-mbf")
            .env("MODEL_DIR", model_dir())
            .env("RUST_LOG", "warn")
            .kill_on_drop(true);
        async move {
            let out = tokio::time::timeout(Duration::from_secs(180), cmd.output())
                .await
                .unwrap_or_else(|_| panic!("{label}: attendance-worker reembed did not finish"))
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr).to_string();
            (out.status, stderr)
        }
    };
    let (status, stderr) = cli("first run").await;
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stderr.contains("3 re-embedding job(s) queued for arcface_w600k_mbf"),
        "{stderr}"
    );
    assert!(
        stderr.contains("3 students re-embedded with arcface_w600k_mbf"),
        "{stderr}"
    );
    let mut all = embeddings_of(db, DLIB).await;
    all.dedup();
    assert_eq!(embeddings_of(db, ARCFACE).await, all);

    // Nothing left to do: a second run queues nothing and succeeds at once.
    let (status, stderr) = cli("second run").await;
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stderr.contains("0 re-embedding job(s) queued for arcface_w600k_mbf, 0 already pending"),
        "{stderr}"
    );
    running.stop().await;
    rabbit.delete_queues().await.unwrap();
    test_db.cleanup().await;
}

// ---- Several jobs at once (WORKER_CONCURRENCY) sharing one embedding stage ----

/// The stored descriptors of a session's faces, by face index.
async fn session_descriptors(db: &sea_orm::DatabaseConnection, session: Uuid) -> Vec<Vec<f32>> {
    use sea_orm::{ColumnTrait, QueryFilter, QueryOrder};
    DetectedFace::find()
        .filter(models::detected_face::Column::SessionId.eq(session))
        .order_by_asc(models::detected_face::Column::FaceIndex)
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|f| models::vector::decode(f.descriptor.as_deref().expect("descriptor")).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_jobs_share_embedding_passes_and_record_what_one_at_a_time_does() {
    use models::attendance_record::RecordStatus;
    use worker::engine::FaceEngine;
    use worker::engine::batch_stage::BatchOptions;

    let test_db = TestDb::sqlite().await;
    let db = &test_db.db;
    let (blobs, _dir) = blob_store().await;
    let class_id = insert_class(db, None).await;
    let [obama, biden, kit] = register_under_dlib(db, &blobs, class_id).await;

    // A worker running three jobs at once; the long wait makes their faces meet in
    // the stage whatever the machine's speed.
    let shared = FaceEngine::from_model_dir(&model_dir(), "cpu", false)
        .unwrap()
        .with_shared_batching(BatchOptions {
            max_items: 64,
            wait: Duration::from_secs(5),
        })
        .unwrap();
    let shared = Arc::new(shared);
    let queue = Arc::new(EmbeddedQueue::new());
    let options = WorkerOptions {
        concurrency: 3,
        prefetch: 4,
        ..fast_options(3)
    };
    let ctx = context_with(db, &blobs, Arc::clone(&shared));
    let running = start(ctx, options, queue.clone());

    let photos = [
        "groups/obama_biden_side_by_side.jpg",
        "groups/rose_and_kit.jpg",
        "groups/six_people.jpg",
    ];
    let mut sessions = Vec::new();
    let mut jobs = Vec::new();
    for photo in photos {
        let (session, _) = insert_session(db, &blobs, class_id, &[fixture(photo)]).await;
        jobs.push(enqueue(db, queue.as_ref(), JobKind::Attendance, session).await);
        sessions.push(session);
    }
    for job in &jobs {
        let done = wait_finished(db, job.id).await;
        assert_eq!(done.status, JobStatus::Succeeded, "{done:?}");
    }
    running.stop().await;

    // The three photos' faces went through fewer passes than there were photos.
    let counts = shared.embed_stage_counts().expect("a shared stage");
    assert_eq!(counts.requests, 3, "{counts:?}");
    assert!(counts.passes < counts.requests, "{counts:?}");
    assert_eq!(counts.items, 2 + 2 + 6, "{counts:?}");

    // The right students, and exactly the descriptors the engine gives one photo at
    // a time (jobs_support's engine has no stage).
    let present = |statuses: &std::collections::HashMap<Uuid, RecordStatus>| {
        let mut ids: Vec<Uuid> = statuses
            .iter()
            .filter(|(_, s)| **s == RecordStatus::Present)
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        ids
    };
    let mut expected = vec![obama, biden];
    expected.sort();
    assert_eq!(present(&record_statuses(db, sessions[0]).await), expected);
    assert_eq!(present(&record_statuses(db, sessions[1]).await), vec![kit]);
    assert!(present(&record_statuses(db, sessions[2]).await).is_empty());
    let alone = engine();
    assert!(alone.embed_stage_counts().is_none());
    for (session, photo) in sessions.iter().zip(photos) {
        let image = worker::engine::pipeline::decode_image(&fixture(photo), photo).unwrap();
        let mut expected: Vec<Vec<f32>> = alone
            .analyze(&image)
            .unwrap()
            .into_iter()
            .map(|f| f.descriptor)
            .collect();
        let mut stored = session_descriptors(db, *session).await;
        // Both in the engine's order (most confident first), but compare as sets in
        // case the job orders its faces otherwise.
        let key = |d: &Vec<f32>| d.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        expected.sort_by_key(key);
        stored.sort_by_key(key);
        assert_eq!(stored, expected, "{photo}: batched descriptors differ");
    }
}
