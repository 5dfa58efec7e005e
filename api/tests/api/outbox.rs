//! The outbox relay: queue down at upload time (the request still succeeds and the relay
//! publishes later), jobs left by dead processes, and relays of several replicas.

use std::time::Duration;

use api::outbox::{RelayOptions, recover_in_process_jobs, relay_once};
use common::{JobKind, JobQueue};
use models::job::JobStatus;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait,
    QueryFilter,
};
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{Db, Queue, RabbitQueues, TestApp, fixture, next_message_on, spawn_app};

/// Registers one student with one photo; returns the job id from the 202.
async fn register_one(app: &TestApp) -> Uuid {
    let class_id = app.create_class("CSE 2A").await;
    let resp = app
        .register(
            class_id,
            "1",
            "Barack Obama",
            vec![("o.jpg".into(), fixture("people/obama/obama3.jpg"))],
        )
        .await;
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    body["job_id"].as_str().unwrap().parse().unwrap()
}

/// Consumes the job's message and leaves its row `running`, last touched at `since` (and
/// no lease: a row left by a build without leases): what a worker that died mid-job
/// leaves behind.
async fn taken_and_left_running(app: &TestApp, job_id: Uuid, since: chrono::DateTime<chrono::Utc>) {
    assert_eq!(app.next_message().await.job_id, job_id);
    // The upload's publish records `published_at` after the broker took the message, in
    // a task of its own: wait for it, or it would overwrite the state set here.
    let job = loop {
        let job = models::job::Entity::find_by_id(job_id)
            .one(&app.state.db)
            .await
            .unwrap()
            .unwrap();
        if job.published_at.is_some() {
            break job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    let mut running = job.into_active_model();
    running.status = Set(JobStatus::Running);
    running.updated_at = Set(since);
    // It was published before the worker took it.
    running.published_at = Set(Some(since));
    running.update(&app.state.db).await.unwrap();
}

#[tokio::test]
async fn queue_down_at_upload_then_relay_publishes() {
    let app = spawn_app(Db::Postgres, Queue::Unreachable).await;
    let job_id = register_one(&app).await;

    let job = models::job::Entity::find_by_id(job_id)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.status, JobStatus::Queued);
    assert!(job.published_at.is_none(), "nothing was published");

    // Readiness names the queue as the failed dependency.
    let resp = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let ready: Value = resp.json().await.unwrap();
    assert_eq!(ready["checks"]["queue"], "unavailable");
    assert_eq!(ready["checks"]["database"], "ok");
    assert_eq!(ready["checks"]["storage"], "ok");

    // A working queue: the relay publishes the stranded job exactly once.
    let good = RabbitQueues::new();
    let options = RelayOptions {
        unpublished_grace: Duration::ZERO,
        ..RelayOptions::default()
    };
    assert_eq!(
        relay_once(&app.state.db, good.queue.as_ref(), &options)
            .await
            .unwrap(),
        1
    );
    let msg = next_message_on(good.queue.as_ref()).await;
    assert_eq!(msg.job_id, job_id);
    assert_eq!(msg.kind, JobKind::Registration);
    let job = models::job::Entity::find_by_id(job_id)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert!(job.published_at.is_some());
    assert_eq!(
        relay_once(&app.state.db, good.queue.as_ref(), &options)
            .await
            .unwrap(),
        0,
        "a published job is not republished before republish_after"
    );
}

#[tokio::test]
async fn embedded_restart_requeues_jobs_the_dead_process_held() {
    let app = spawn_app(Db::Sqlite, Queue::Embedded).await;
    let job_id = register_one(&app).await;
    // The message was taken by a worker that then died with the process, mid-job.
    taken_and_left_running(&app, job_id, chrono::Utc::now()).await;

    assert_eq!(
        recover_in_process_jobs(&app.state.db, app.state.queue.as_ref())
            .await
            .unwrap(),
        1
    );
    let job = models::job::Entity::find_by_id(job_id)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.status, JobStatus::Queued);
    assert!(job.published_at.is_some(), "published again");
    assert_eq!(app.next_message().await.job_id, job_id);
}

#[tokio::test]
async fn relay_publishes_a_job_stalled_in_running_once_per_lease() {
    let app = spawn_app(Db::Postgres, Queue::Embedded).await;
    let job_id = register_one(&app).await;
    // Its message was taken, then lost with no worker left to finish it.
    taken_and_left_running(
        &app,
        job_id,
        chrono::Utc::now() - chrono::Duration::hours(1),
    )
    .await;

    let options = RelayOptions::default();
    assert_eq!(
        relay_once(&app.state.db, app.state.queue.as_ref(), &options)
            .await
            .unwrap(),
        1
    );
    assert_eq!(app.next_message().await.job_id, job_id);
    assert_eq!(
        relay_once(&app.state.db, app.state.queue.as_ref(), &options)
            .await
            .unwrap(),
        0,
        "published again only after another stale interval"
    );
    // Nothing else about the job changed: a worker that picks the message up runs it.
    let job = models::job::Entity::find_by_id(job_id)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.status, JobStatus::Running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_publish_each_due_job_once() {
    // The app's own relay cannot publish (unreachable queue): only the two below do.
    let app = spawn_app(Db::Postgres, Queue::Unreachable).await;
    let db = &app.state.db;
    let jobs = 150;
    let long_ago = chrono::Utc::now() - chrono::Duration::minutes(5);
    let rows = (0..jobs).map(|_| {
        let mut row = api::outbox::new_job(Uuid::new_v4(), JobKind::Registration, Uuid::new_v4());
        row.created_at = Set(long_ago);
        row
    });
    models::job::Entity::insert_many(rows)
        .exec_without_returning(db)
        .await
        .unwrap();

    // Two API replicas' relays, scanning the same rows at the same moments, into one
    // fresh RabbitMQ queue set.
    let rabbit = RabbitQueues::new();
    let options = RelayOptions {
        unpublished_grace: Duration::ZERO,
        batch: 40,
        ..RelayOptions::default()
    };
    let mut published = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (a, b) = tokio::join!(
            relay_once(db, rabbit.queue.as_ref(), &options),
            relay_once(db, rabbit.queue.as_ref(), &options),
        );
        published += a.unwrap() + b.unwrap();
        let left = models::job::Entity::find()
            .filter(models::job::Column::PublishedAt.is_null())
            .count(db)
            .await
            .unwrap();
        if left == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{left} jobs never published"
        );
    }
    assert_eq!(published, jobs, "each job published by one relay only");
    let names = rabbit.queue.names().clone();
    assert_eq!(
        rabbit
            .queue
            .message_count(&names.interactive)
            .await
            .unwrap() as usize,
        jobs,
        "one message per job in the queue"
    );
    let mut consumer = rabbit.queue.consume(50).await.unwrap();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..jobs {
        let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("a message")
            .unwrap();
        seen.insert(delivery.message.as_ref().unwrap().job_id);
        delivery.ack().await.unwrap();
    }
    assert_eq!(seen.len(), jobs, "no job's message twice");
}

#[tokio::test]
async fn relay_leaves_a_running_job_alone_while_its_lease_holds() {
    let app = spawn_app(Db::Sqlite, Queue::Embedded).await;
    let job_id = register_one(&app).await;
    let hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    taken_and_left_running(&app, job_id, hour_ago).await;
    let set_lease = |until: chrono::DateTime<chrono::Utc>| {
        let db = app.state.db.clone();
        async move {
            let mut row = models::job::Entity::find_by_id(job_id)
                .one(&db)
                .await
                .unwrap()
                .unwrap()
                .into_active_model();
            row.lease_until = Set(Some(until));
            row.published_at = Set(Some(hour_ago));
            row.update(&db).await.unwrap();
        }
    };
    let options = RelayOptions::default();

    // Its worker is alive and renewing the lease: not republished, however old the row.
    set_lease(chrono::Utc::now() + chrono::Duration::seconds(30)).await;
    assert_eq!(
        relay_once(&app.state.db, app.state.queue.as_ref(), &options)
            .await
            .unwrap(),
        0
    );
    // The lease ran out long ago and no run took the job over: published again, once.
    set_lease(chrono::Utc::now() - chrono::Duration::minutes(5)).await;
    assert_eq!(
        relay_once(&app.state.db, app.state.queue.as_ref(), &options)
            .await
            .unwrap(),
        1
    );
    assert_eq!(app.next_message().await.job_id, job_id);
    assert_eq!(
        relay_once(&app.state.db, app.state.queue.as_ref(), &options)
            .await
            .unwrap(),
        0
    );
}
