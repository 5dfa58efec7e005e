//! Behaviours every `JobQueue` implementation must show, run against RabbitMQ and the
//! embedded queue by `queue_rabbitmq.rs` and `queue_embedded.rs`.

#![allow(dead_code)] // each test binary uses its own subset

use std::time::{Duration, Instant};

use common::{
    job::{JobKind, JobMessage, Lane},
    queue::{Delivery, JobConsumer, JobQueue},
};
use uuid::Uuid;

/// Long enough for a local broker, short enough that a hang fails the test quickly.
pub const WAIT: Duration = Duration::from_secs(10);

pub fn message(kind: JobKind) -> JobMessage {
    JobMessage::new(Uuid::new_v4(), kind)
}

pub async fn next(consumer: &mut Box<dyn JobConsumer>) -> Delivery {
    tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("no delivery within the wait")
        .expect("consumer failed")
}

/// Asserts that nothing is delivered within `quiet`.
pub async fn assert_nothing_for(consumer: &mut Box<dyn JobConsumer>, quiet: Duration) {
    if let Ok(delivery) = tokio::time::timeout(quiet, consumer.next()).await {
        panic!("unexpected delivery: {delivery:?}");
    }
}

/// publish → consume → the same message, first attempt → ack.
pub async fn publish_consume_ack(queue: &dyn JobQueue) -> JobMessage {
    queue.check().await.unwrap();
    let msg = message(JobKind::Attendance);
    queue.publish(Lane::Interactive, &msg).await.unwrap();
    let mut consumer = queue.consume(4).await.unwrap();
    let delivery = next(&mut consumer).await;
    assert_eq!(delivery.message.as_ref().unwrap(), &msg);
    assert_eq!(delivery.attempt, 1);
    assert_eq!(delivery.lane, Lane::Interactive);
    assert!(!delivery.redelivered);
    delivery.ack().await.unwrap();
    // An acked message never comes back, not even to a new consumer.
    drop(consumer);
    let mut again = queue.consume(4).await.unwrap();
    assert_nothing_for(&mut again, Duration::from_millis(500)).await;
    msg
}

/// With work waiting in both lanes, every interactive message comes before any bulk one.
pub async fn interactive_before_bulk(queue: &dyn JobQueue) {
    let bulk: Vec<_> = (0..3).map(|_| message(JobKind::Registration)).collect();
    let interactive: Vec<_> = (0..2).map(|_| message(JobKind::Attendance)).collect();
    for m in &bulk {
        queue.publish(Lane::Bulk, m).await.unwrap();
    }
    for m in &interactive {
        queue.publish(Lane::Interactive, m).await.unwrap();
    }
    let mut consumer = queue.consume(10).await.unwrap();
    // Let the broker push everything into the consumer's buffers, so the order below
    // is the consumer's choice and not an accident of arrival.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut got = Vec::new();
    for _ in 0..5 {
        let d = next(&mut consumer).await;
        got.push((d.lane, d.message.as_ref().unwrap().clone()));
        d.ack().await.unwrap();
    }
    let expected: Vec<_> = interactive
        .iter()
        .map(|m| (Lane::Interactive, m.clone()))
        .chain(bulk.iter().map(|m| (Lane::Bulk, m.clone())))
        .collect();
    assert_eq!(got, expected);
}

/// Interactive work published while a consumer is busy with bulk work overtakes the
/// bulk messages still waiting.
pub async fn interactive_overtakes_waiting_bulk(queue: &dyn JobQueue) {
    let bulk: Vec<_> = (0..4).map(|_| message(JobKind::Registration)).collect();
    for m in &bulk {
        queue.publish(Lane::Bulk, m).await.unwrap();
    }
    let mut consumer = queue.consume(2).await.unwrap();
    let first = next(&mut consumer).await;
    assert_eq!(first.lane, Lane::Bulk);
    let urgent = message(JobKind::Attendance);
    queue.publish(Lane::Interactive, &urgent).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.ack().await.unwrap();
    let d = next(&mut consumer).await;
    assert_eq!(d.lane, Lane::Interactive);
    assert_eq!(d.message.as_ref().unwrap(), &urgent);
    d.ack().await.unwrap();
    for _ in 1..4 {
        let d = next(&mut consumer).await;
        assert_eq!(d.lane, Lane::Bulk);
        d.ack().await.unwrap();
    }
}

/// retry(delay) brings the message back on its lane after the delay with attempt + 1.
pub async fn retry_comes_back_later_with_next_attempt(queue: &dyn JobQueue, lane: Lane) {
    let msg = message(JobKind::Registration);
    queue.publish(lane, &msg).await.unwrap();
    let mut consumer = queue.consume(4).await.unwrap();

    let d = next(&mut consumer).await;
    assert_eq!(d.attempt, 1);
    let delay = Duration::from_millis(700);
    let retried_at = Instant::now();
    d.retry(delay).await.unwrap();

    let d = next(&mut consumer).await;
    let waited = retried_at.elapsed();
    assert!(
        waited >= delay - Duration::from_millis(50),
        "came back after {waited:?}"
    );
    assert_eq!(d.message.as_ref().unwrap(), &msg);
    assert_eq!(d.attempt, 2);
    assert_eq!(d.lane, lane);

    d.retry(Duration::ZERO).await.unwrap();
    let d = next(&mut consumer).await;
    assert_eq!(d.attempt, 3);
    assert_eq!(d.message.as_ref().unwrap(), &msg);
    d.ack().await.unwrap();
    assert_nothing_for(&mut consumer, Duration::from_millis(500)).await;
}

/// dead_letter removes the message from its lane for good; the caller checks where it
/// landed. Returns the message.
pub async fn dead_letter_is_not_redelivered(queue: &dyn JobQueue) -> JobMessage {
    let msg = message(JobKind::Attendance);
    queue.publish(Lane::Interactive, &msg).await.unwrap();
    let mut consumer = queue.consume(4).await.unwrap();
    let d = next(&mut consumer).await;
    d.retry(Duration::ZERO).await.unwrap();
    let d = next(&mut consumer).await;
    assert_eq!(d.attempt, 2);
    d.dead_letter("no face found in any photo").await.unwrap();
    assert_nothing_for(&mut consumer, Duration::from_millis(500)).await;
    drop(consumer);
    let mut again = queue.consume(4).await.unwrap();
    assert_nothing_for(&mut again, Duration::from_millis(300)).await;
    msg
}

/// A delivery left unsettled when its consumer goes away is delivered again (flagged
/// as redelivered, same attempt), and the old handle can no longer settle it.
pub async fn unsettled_delivery_is_redelivered(queue: &dyn JobQueue) {
    let msg = message(JobKind::Attendance);
    queue.publish(Lane::Interactive, &msg).await.unwrap();

    let mut first = queue.consume(4).await.unwrap();
    let held = next(&mut first).await;
    assert_eq!(held.message.as_ref().unwrap(), &msg);
    assert!(!held.redelivered);
    drop(first);

    let mut second = queue.consume(4).await.unwrap();
    let again = next(&mut second).await;
    assert_eq!(again.message.as_ref().unwrap(), &msg);
    assert!(again.redelivered);
    assert_eq!(again.attempt, 1);

    let err = held
        .ack()
        .await
        .expect_err("a stale delivery must not settle");
    assert!(err.is_transient(), "{err:?}");

    again.ack().await.unwrap();
    assert_nothing_for(&mut second, Duration::from_millis(500)).await;
}

/// At most `prefetch` unsettled deliveries per lane.
pub async fn prefetch_bounds_work_in_flight(queue: &dyn JobQueue) {
    let a = message(JobKind::Attendance);
    let b = message(JobKind::Attendance);
    queue.publish(Lane::Interactive, &a).await.unwrap();
    queue.publish(Lane::Interactive, &b).await.unwrap();
    let mut consumer = queue.consume(1).await.unwrap();
    let first = next(&mut consumer).await;
    assert_eq!(first.message.as_ref().unwrap(), &a);
    assert_nothing_for(&mut consumer, Duration::from_millis(500)).await;
    first.ack().await.unwrap();
    let second = next(&mut consumer).await;
    assert_eq!(second.message.as_ref().unwrap(), &b);
    second.ack().await.unwrap();
}
