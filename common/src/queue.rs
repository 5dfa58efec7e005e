//! The job queue: one trait, a RabbitMQ and an in-process implementation, picked by URL.
//!
//! Semantics shared by both:
//! - messages are at-least-once: a delivery that is neither acked, retried nor
//!   dead-lettered goes back to its queue when its consumer goes away;
//! - a consumer serves the interactive lane before the bulk lane when both have work;
//! - `retry` re-enqueues after a delay with `attempt + 1`; `dead_letter` parks the
//!   message with a reason and never redelivers it.

mod embedded;
mod rabbitmq;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;

use crate::job::{JobMessage, Lane};

pub use embedded::{DeadLetter, EmbeddedQueue};
pub use rabbitmq::{QueueNames, RabbitMqOptions, RabbitMqQueue};

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The broker cannot be reached (or the connection dropped): the caller keeps the
    /// job row and the outbox relay republishes later.
    #[error("job queue unavailable: {context}")]
    Unavailable {
        context: String,
        #[source]
        source: Option<BoxError>,
    },
    /// The broker answered but refused: a publisher nack, or an unroutable message.
    #[error("job queue rejected the message: {context}")]
    Rejected { context: String },
    /// The broker reported an error that reconnecting will not fix (e.g. a queue
    /// declared elsewhere with different arguments).
    #[error("job queue error during {context}")]
    Broker {
        context: String,
        #[source]
        source: BoxError,
    },
    #[error("undecodable job message")]
    Decode(#[source] serde_json::Error),
    #[error("unsupported job message version {version}")]
    UnsupportedVersion { version: u32 },
    #[error("invalid queue URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
}

impl QueueError {
    pub(crate) fn unavailable(context: impl Into<String>) -> QueueError {
        QueueError::Unavailable {
            context: context.into(),
            source: None,
        }
    }

    /// True for errors that may pass by themselves (worth retrying later).
    pub fn is_transient(&self) -> bool {
        matches!(self, QueueError::Unavailable { .. })
    }
}

#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Publishes a persistent message to `lane` and waits for the broker's confirm.
    /// Fails fast with [`QueueError::Unavailable`] while the broker is unreachable.
    async fn publish(&self, lane: Lane, msg: &JobMessage) -> Result<(), QueueError>;
    /// Starts consuming both lanes with at most `prefetch` unsettled deliveries per lane.
    async fn consume(&self, prefetch: u16) -> Result<Box<dyn JobConsumer>, QueueError>;
    /// Readiness probe.
    async fn check(&self) -> Result<(), QueueError>;
}

#[async_trait]
pub trait JobConsumer: Send {
    /// Waits for the next delivery, interactive lane first. A RabbitMQ consumer
    /// reconnects by itself (exponential backoff) and only returns once it has one.
    async fn next(&mut self) -> Result<Delivery, QueueError>;
}

/// One received message. Settle it exactly once: `ack` after the database commit,
/// `retry` for a transient failure, `dead_letter` for one that will always fail.
pub struct Delivery {
    /// The decoded message; undecodable payloads (unknown version or kind, garbage)
    /// surface here as an error so the worker can dead-letter them.
    pub message: Result<JobMessage, QueueError>,
    /// 1 for the first delivery, +1 per [`Delivery::retry`]. Broker redeliveries after a
    /// lost consumer do not count (see `redelivered`).
    pub attempt: u32,
    /// The lane the message came from.
    pub lane: Lane,
    /// The broker delivered this message before without it being settled.
    pub redelivered: bool,
    settler: Box<dyn Settle>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("message", &self.message)
            .field("attempt", &self.attempt)
            .field("lane", &self.lane)
            .field("redelivered", &self.redelivered)
            .finish_non_exhaustive()
    }
}

/// How an implementation settles one of its deliveries.
#[async_trait]
pub(crate) trait Settle: Send + Sync {
    async fn ack(self: Box<Self>) -> Result<(), QueueError>;
    async fn retry(self: Box<Self>, delay: Duration) -> Result<(), QueueError>;
    async fn dead_letter(self: Box<Self>, reason: &str) -> Result<(), QueueError>;
}

impl Delivery {
    /// Removes the message for good. Call only after the job's effects are committed.
    pub async fn ack(self) -> Result<(), QueueError> {
        self.settler.ack().await
    }

    /// Re-enqueues the message on its lane after `delay` with `attempt + 1`, then
    /// removes this delivery.
    pub async fn retry(self, delay: Duration) -> Result<(), QueueError> {
        self.settler.retry(delay).await
    }

    /// Moves the message to the dead-letter queue with `reason`, then removes this
    /// delivery.
    pub async fn dead_letter(self, reason: &str) -> Result<(), QueueError> {
        self.settler.dead_letter(reason).await
    }
}

/// Opens the queue a `QUEUE_URL` names: `embedded`, or `amqp://`/`amqps://` (optionally
/// with `?prefix=name` to prefix every queue name, used by tests).
///
/// Each call to `open_queue("embedded")` makes a new, separate in-process queue: open it
/// once and share the `Arc` between the API and the in-process worker.
///
/// A RabbitMQ queue is returned even while the broker is down (the API must start and
/// report not-ready, and its outbox relay republishes later); an invalid URL is an error.
pub async fn open_queue(url: &str) -> Result<Arc<dyn JobQueue>, QueueError> {
    if url == crate::config::EMBEDDED_QUEUE_URL {
        return Ok(Arc::new(EmbeddedQueue::new()));
    }
    let options = RabbitMqOptions::from_url(url)?;
    let queue = RabbitMqQueue::new(options);
    if let Err(e) = queue.check().await {
        tracing::warn!(error = %e, "RabbitMQ is not reachable yet; will reconnect on demand");
    }
    Ok(Arc::new(queue))
}
