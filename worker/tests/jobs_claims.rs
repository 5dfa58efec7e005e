//! One runner per job and poison jobs, on RabbitMQ and PostgreSQL: two workers handed
//! the same message run it once; a run that lost its claim writes nothing; a job whose
//! runs keep killing the worker process is failed after `JOB_MAX_ATTEMPTS` runs and its
//! message leaves the queue. And what a failed job shows: what went wrong, never the
//! storage's endpoint, bucket or keys.

mod jobs_support;

use std::sync::Arc;
use std::time::Duration;

use common::blob::{S3BlobStore, S3Options};
use common::job::result::{JobResult, SkippedResult};
use common::queue::{EmbeddedQueue, QueueNames, RabbitMqOptions, RabbitMqQueue};
use common::{BlobStore, JobKind, JobMessage, JobQueue, Lane};
use models::attendance_session::SessionStatus;
use models::job::JobStatus;
use models::prelude::*;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter};
use uuid::Uuid;
use worker::jobs::claim::{self, Claim};
use worker::jobs::{self, JobError, Outcome, Progress};
use worker::service::{Worker, WorkerOptions};

use jobs_support::*;

/// A RabbitMQ queue set of its own (prefixed names), and its URL.
async fn rabbit() -> (Arc<RabbitMqQueue>, String) {
    let base = std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let prefix = format!("test-claims-{}", Uuid::new_v4().simple());
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}prefix={prefix}");
    let queue = Arc::new(RabbitMqQueue::new(RabbitMqOptions::from_url(&url).unwrap()));
    queue.check().await.unwrap_or_else(|e| {
        panic!("RabbitMQ at {base} is not reachable ({e}); run scripts/test.sh")
    });
    (queue, url)
}

fn options(max_attempts: u32) -> WorkerOptions {
    WorkerOptions {
        concurrency: 1,
        prefetch: 2,
        max_attempts,
        lease: Duration::from_secs(30),
        base_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
    }
}

/// Messages in each of the queue set's queues (lane, retry, dead).
async fn depths(queue: &RabbitMqQueue, names: &QueueNames) -> [u32; 3] {
    [
        queue.message_count(&names.interactive).await.unwrap(),
        queue.message_count(&names.interactive_retry).await.unwrap(),
        queue.message_count(&names.dead).await.unwrap(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_given_the_same_message_run_it_once() {
    let (rabbit, _) = rabbit().await;
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
        &[fixture("people/obama/obama1.jpg")],
    )
    .await;
    let job = insert_job(db, JobKind::Registration, obama).await;
    // The same message twice (the API's publish and a relay's republish).
    let message = JobMessage::new(job.id, JobKind::Registration);
    rabbit.publish(Lane::Interactive, &message).await.unwrap();
    rabbit.publish(Lane::Interactive, &message).await.unwrap();

    // Both deliveries taken before either is handled, then handed to two workers at
    // the same moment.
    let mut consumer = rabbit.consume(2).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("first delivery")
        .unwrap();
    let second = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("second delivery")
        .unwrap();
    let one = Worker::new(context(db, &blobs), options(3));
    let other = Worker::new(context(db, &blobs), options(3));
    tokio::join!(one.handle(first), other.handle(second));
    drop(consumer);

    let done = job_row(db, job.id).await;
    assert_eq!(done.status, JobStatus::Succeeded, "{done:?}");
    assert_eq!(done.attempts, 1, "only one of the two claimed and ran it");
    assert_eq!(done.interrupted_runs, 0);
    assert_eq!(
        count(db, "face_embeddings").await,
        1,
        "the results are written once"
    );
    // Both deliveries were acked: none went back to the queue when the consumer's
    // channel closed, none was retried or dead-lettered.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(depths(&rabbit, &names).await, [0, 0, 0]);
    rabbit.delete_queues().await.unwrap();
    test_db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_lost_its_claim_cannot_change_the_job() {
    let test_db = TestDb::postgres().await;
    let db = &test_db.db;
    let (blobs, _dir) = blob_store().await;
    let ctx = context(db, &blobs);
    let class_id = insert_class(db, None).await;
    let (biden, _) = insert_student(
        db,
        &blobs,
        class_id,
        "CS02",
        &[fixture("people/biden/biden1.jpg")],
    )
    .await;
    let job = insert_job(db, JobKind::Registration, biden).await;
    let lease = Duration::from_secs(30);

    // A first run claims the job; a second one cannot while the lease holds.
    let Claim::Won(stalled) = claim::claim(db, job.id, lease, 5).await.unwrap() else {
        panic!("the first claim wins");
    };
    assert_eq!(stalled.attempts, 1);
    assert!(matches!(
        claim::claim(db, job.id, lease, 5).await.unwrap(),
        Claim::Held { .. }
    ));

    // The first run stalls past its lease: a second run takes the job over (the first
    // run counted as interrupted) and finishes it.
    let mut expired = job_row(db, job.id).await.into_active_model();
    expired.lease_until = Set(Some(chrono::Utc::now() - chrono::Duration::seconds(1)));
    Job::update(expired).exec(db).await.unwrap();
    let Claim::Won(current) = claim::claim(db, job.id, lease, 5).await.unwrap() else {
        panic!("an expired lease can be taken over");
    };
    assert_eq!((current.attempts, current.interrupted_runs), (2, 1));
    let outcome = jobs::run(
        JobKind::Registration,
        &ctx,
        &current,
        &Progress::new(db, &current),
    )
    .await
    .unwrap();
    assert!(matches!(outcome, Outcome::Completed(_)), "{outcome:?}");
    let finished = job_row(db, job.id).await;
    assert_eq!(finished.status, JobStatus::Succeeded);
    let embeddings = count(db, "face_embeddings").await;

    // The stalled run wakes up: its progress, its retry, its success and its whole
    // handler (results included) change nothing.
    Progress::new(db, &stalled).set(0.25).await;
    assert!(
        !claim::release_for_retry(db, &stalled, "attempt 1 failed")
            .await
            .unwrap()
    );
    assert!(!claim::renew(db, &stalled, lease).await.unwrap());
    let skipped = JobResult::Skipped(SkippedResult {
        reason: "late".into(),
    });
    assert!(matches!(
        jobs::complete(db, &stalled, &skipped).await,
        Err(JobError::ClaimLost)
    ));
    let late = jobs::run(
        JobKind::Registration,
        &ctx,
        &stalled,
        &Progress::new(db, &stalled),
    )
    .await;
    assert!(matches!(late, Err(JobError::ClaimLost)), "{late:?}");
    assert_eq!(
        job_row(db, job.id).await,
        finished,
        "the finished job is untouched"
    );
    assert_eq!(count(db, "face_embeddings").await, embeddings);

    // A finished job is never claimed again.
    assert_eq!(
        claim::claim(db, job.id, lease, 5).await.unwrap(),
        Claim::Finished(JobStatus::Succeeded)
    );
    test_db.cleanup().await;
}

/// The real worker process, consuming the test's queues.
fn spawn_worker(
    db_url: &str,
    queue_url: &str,
    blob_dir: &std::path::Path,
) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_attendance-worker"))
        .arg("run")
        .env("DATABASE_URL", db_url)
        .env("QUEUE_URL", queue_url)
        .env("STORAGE_URL", format!("file://{}", blob_dir.display()))
        .env("MODEL_DIR", model_dir())
        .env("DEVICE", "cpu")
        .env("JOB_MAX_ATTEMPTS", "3")
        .env("JOB_LEASE_SECS", "2")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("start attendance-worker")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_kills_its_worker_every_run_is_failed_after_max_attempts() {
    let (rabbit, queue_url) = rabbit().await;
    let names = rabbit.names().clone();
    let test_db = TestDb::postgres().await;
    let db = &test_db.db;
    let db_url = test_db.postgres_url().unwrap();
    let (blobs, blob_dir) = blob_store().await;
    let class_id = insert_class(db, None).await;
    // Five classroom photos: a run lasts long enough to be caught `running`.
    let photo = fixture("groups/six_people.jpg");
    let (session, _) = insert_session(db, &blobs, class_id, &vec![photo; 5]).await;
    let job = insert_job(db, JobKind::Attendance, session).await;
    rabbit
        .publish(
            Lane::Interactive,
            &JobMessage::new(job.id, JobKind::Attendance),
        )
        .await
        .unwrap();

    // Each run is cut short by SIGKILL (what the kernel's OOM killer sends) while the
    // row says `running`; the broker redelivers the message to the next process
    // without anything counting the run, except the row's claim.
    for run in 1..=3 {
        let mut worker = spawn_worker(&db_url, &queue_url, blob_dir.path());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
        loop {
            let row = job_row(db, job.id).await;
            if row.status == JobStatus::Running && row.attempts == run {
                break;
            }
            assert!(
                !row.status.is_terminal(),
                "run {run} finished before it could be killed: {row:?}"
            );
            assert!(
                tokio::time::Instant::now() < deadline,
                "run {run} never started: {row:?}"
            );
            if let Some(status) = worker.try_wait().unwrap() {
                panic!("attendance-worker exited by itself: {status}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        worker.start_kill().unwrap();
        worker.wait().await.unwrap();
    }

    // The next process finds the job's runs used up: failed, with a reason a teacher
    // can read, and its message dead-lettered rather than redelivered forever.
    let mut worker = spawn_worker(&db_url, &queue_url, blob_dir.path());
    let failed = wait_finished(db, job.id).await;
    assert_eq!(failed.status, JobStatus::Failed, "{failed:?}");
    assert_eq!(failed.attempts, 3, "no fourth run");
    assert_eq!(failed.interrupted_runs, 3);
    assert_eq!(
        failed.error.as_deref(),
        Some("processing this session's photos stopped the worker 3 times")
    );
    let session = AttendanceSession::find_by_id(session)
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session.status, SessionStatus::Failed);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while depths(&rabbit, &names).await != [0, 0, 1] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "queues (lane, retry, dead): {:?}",
            depths(&rabbit, &names).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Stop the worker; nothing is left unacked that would come back.
    worker.start_kill().unwrap();
    worker.wait().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(depths(&rabbit, &names).await, [0, 0, 1]);
    assert!(
        AttendanceRecord::find()
            .filter(models::attendance_record::Column::SessionId.eq(session.id))
            .all(db)
            .await
            .unwrap()
            .is_empty(),
        "no run wrote records"
    );
    rabbit.delete_queues().await.unwrap();
    test_db.cleanup().await;
}

/// A store on the real S3 server (`TEST_S3_ENDPOINT`), on a fresh bucket.
async fn s3_store(bucket: &str, endpoint: &str) -> S3BlobStore {
    let url = format!(
        "s3://{bucket}?region=us-east-1&endpoint={endpoint}&access_key={}&secret_key={}",
        std::env::var("TEST_S3_ACCESS_KEY").unwrap_or_else(|_| "attendance".into()),
        std::env::var("TEST_S3_SECRET_KEY").unwrap_or_else(|_| "attendance-secret".into()),
    );
    S3BlobStore::connect(S3Options::from_url(&url).unwrap())
        .await
        .unwrap()
}

/// A failed job's error as a client sees it: a reason, with nothing of the storage's
/// internals.
fn assert_readable(error: &str, bucket: &str, endpoint: &str) {
    for leak in [
        "/",
        "http",
        "127.0.0.1",
        bucket,
        endpoint,
        "sessions",
        "dispatch",
        "service error",
    ] {
        assert!(
            !error.contains(leak),
            "{leak:?} in the job's error: {error}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_failures_are_shown_as_readable_reasons() {
    let endpoint =
        std::env::var("TEST_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:9000".into());
    let bucket = format!("test-errors-{}", Uuid::new_v4().simple());
    let store = s3_store(&bucket, &endpoint).await;
    store.ensure_bucket().await.unwrap_or_else(|e| {
        panic!("S3 server at {endpoint} not usable (run scripts/s3-server.sh): {e:?}")
    });
    let store = Arc::new(store);
    let blobs: Arc<dyn BlobStore> = store.clone();
    let test_db = TestDb::sqlite().await;
    let db = &test_db.db;
    let class_id = insert_class(db, None).await;
    let queue = Arc::new(EmbeddedQueue::new());
    let photo = fixture("groups/obama_biden_side_by_side.jpg");

    // A photo deleted from the bucket: the job fails at once, naming the photo.
    let (gone, gone_photos) =
        insert_session(db, &blobs, class_id, std::slice::from_ref(&photo)).await;
    blobs
        .delete(&format!("sessions/{gone}/photos/{}", gone_photos[0]))
        .await
        .unwrap();
    let worker = Worker::new(context(db, &blobs), options(2));
    let job = insert_job(db, JobKind::Attendance, gone).await;
    queue
        .publish(
            Lane::Interactive,
            &JobMessage::new(job.id, JobKind::Attendance),
        )
        .await
        .unwrap();
    let mut consumer = queue.consume(1).await.unwrap();
    worker.handle(consumer.next().await.unwrap()).await;
    let failed = job_row(db, job.id).await;
    assert_eq!(failed.status, JobStatus::Failed, "{failed:?}");
    let error = failed.error.unwrap();
    assert_eq!(
        error,
        format!(
            "photo 1 of the session ({}) is missing from storage",
            gone_photos[0]
        )
    );
    assert_readable(&error, &bucket, &endpoint);

    // The storage server unreachable (same bucket, a port nobody listens on): retried,
    // then failed with a reason that says so, and the SDK's message only in the log.
    let (session, photos) = insert_session(db, &blobs, class_id, &[photo]).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let down: Arc<dyn BlobStore> = Arc::new(s3_store(&bucket, &closed).await);
    let worker = Worker::new(context(db, &down), options(2));
    let job = insert_job(db, JobKind::Attendance, session).await;
    queue
        .publish(
            Lane::Interactive,
            &JobMessage::new(job.id, JobKind::Attendance),
        )
        .await
        .unwrap();
    // First run: retried; the row shows why meanwhile.
    worker.handle(consumer.next().await.unwrap()).await;
    let retrying = job_row(db, job.id).await;
    assert_eq!(retrying.status, JobStatus::Queued, "{retrying:?}");
    let error = retrying.error.unwrap();
    assert_eq!(
        error,
        "attempt 1 failed: a photo could not be read from storage; it will be tried again"
    );
    assert_readable(&error, &bucket, &closed);
    // Second run: given up.
    worker.handle(consumer.next().await.unwrap()).await;
    let failed = job_row(db, job.id).await;
    assert_eq!(failed.status, JobStatus::Failed, "{failed:?}");
    let error = failed.error.unwrap();
    assert_eq!(
        error,
        "a photo could not be read from storage; it will be tried again (gave up after 2 attempts)"
    );
    assert_readable(&error, &bucket, &closed);
    assert_eq!(queue.dead_letters().len(), 2);
    drop(consumer);

    blobs
        .delete(&format!("sessions/{session}/photos/{}", photos[0]))
        .await
        .unwrap();
    store
        .client()
        .delete_bucket()
        .bucket(store.bucket())
        .send()
        .await
        .unwrap();
    test_db.cleanup().await;
}
