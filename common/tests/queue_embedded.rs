//! The in-process queue shows the same behaviours as the RabbitMQ one.

mod queue_scenarios;

use std::time::Duration;

use common::{
    job::{JobKind, Lane},
    queue::{EmbeddedQueue, JobQueue, open_queue},
};
use queue_scenarios as s;

#[tokio::test]
async fn publish_consume_ack() {
    let queue = EmbeddedQueue::new();
    s::publish_consume_ack(&queue).await;
    assert_eq!(queue.depth(Lane::Interactive), 0);
    assert_eq!(queue.depth(Lane::Bulk), 0);
    assert!(queue.dead_letters().is_empty());
}

#[tokio::test]
async fn open_queue_embedded_works() {
    let queue = open_queue("embedded").await.unwrap();
    s::publish_consume_ack(queue.as_ref()).await;
}

#[tokio::test]
async fn interactive_before_bulk() {
    s::interactive_before_bulk(&EmbeddedQueue::new()).await;
}

#[tokio::test]
async fn interactive_overtakes_waiting_bulk() {
    s::interactive_overtakes_waiting_bulk(&EmbeddedQueue::new()).await;
}

#[tokio::test]
async fn retry_comes_back_later_with_next_attempt() {
    let queue = EmbeddedQueue::new();
    s::retry_comes_back_later_with_next_attempt(&queue, Lane::Interactive).await;
    s::retry_comes_back_later_with_next_attempt(&queue, Lane::Bulk).await;
}

#[tokio::test]
async fn dead_letter_is_kept() {
    let queue = EmbeddedQueue::new();
    let msg = s::dead_letter_is_not_redelivered(&queue).await;
    let dead = queue.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].message().unwrap(), msg);
    assert_eq!(dead[0].reason, "no face found in any photo");
    assert_eq!(dead[0].attempt, 2);
    assert_eq!(dead[0].lane, Lane::Interactive);
}

#[tokio::test]
async fn unsettled_delivery_is_redelivered() {
    s::unsettled_delivery_is_redelivered(&EmbeddedQueue::new()).await;
}

#[tokio::test]
async fn prefetch_bounds_work_in_flight() {
    s::prefetch_bounds_work_in_flight(&EmbeddedQueue::new()).await;
}

#[tokio::test]
async fn competing_consumers_share_the_work_once() {
    let queue = EmbeddedQueue::new();
    let mut sent: Vec<_> = (0..20).map(|_| s::message(JobKind::Attendance)).collect();
    for m in &sent {
        queue.publish(Lane::Interactive, m).await.unwrap();
    }
    let mut handles = Vec::new();
    for _ in 0..3 {
        let mut consumer = queue.consume(2).await.unwrap();
        handles.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Ok(Ok(d)) =
                tokio::time::timeout(Duration::from_millis(300), consumer.next()).await
            {
                got.push(d.message.as_ref().unwrap().clone());
                d.ack().await.unwrap();
            }
            got
        }));
    }
    let mut received = Vec::new();
    for h in handles {
        received.extend(h.await.unwrap());
    }
    let key = |m: &common::JobMessage| m.job_id;
    sent.sort_by_key(key);
    received.sort_by_key(key);
    assert_eq!(received, sent);
}
