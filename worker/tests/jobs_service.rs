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
        prefetch: 2,
        max_attempts,
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
    assert!(error.contains("could not fetch photo"), "{error}");
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
