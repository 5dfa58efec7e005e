//! In-process queue for the embedded mode: the same semantics as the RabbitMQ queue
//! (lanes, interactive first, per-lane prefetch, delayed retry with attempt + 1, dead
//! letters, unsettled deliveries returned when their consumer goes away), without
//! persistence: on restart the database outbox relay re-enqueues unfinished jobs.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard, Weak},
    time::Duration,
};

use async_trait::async_trait;
use tokio::sync::Notify;

use super::{Delivery, JobConsumer, JobQueue, QueueError, Settle};
use crate::job::{JobMessage, Lane};

/// A message parked by [`Delivery::dead_letter`].
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub lane: Lane,
    pub attempt: u32,
    pub reason: String,
    pub payload: Vec<u8>,
}

impl DeadLetter {
    /// The parked message, if it decodes.
    pub fn message(&self) -> Result<JobMessage, QueueError> {
        JobMessage::decode(&self.payload)
    }
}

#[derive(Debug, Clone)]
struct Envelope {
    // Kept encoded so that deliveries go through the same decode path as RabbitMQ's.
    payload: Arc<[u8]>,
    attempt: u32,
    redelivered: bool,
}

#[derive(Debug, Default)]
struct State {
    interactive: VecDeque<Envelope>,
    bulk: VecDeque<Envelope>,
    dead: Vec<DeadLetter>,
}

impl State {
    fn lane(&mut self, lane: Lane) -> &mut VecDeque<Envelope> {
        match lane {
            Lane::Interactive => &mut self.interactive,
            Lane::Bulk => &mut self.bulk,
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled whenever a message is enqueued or a delivery is settled.
    changed: Notify,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queues inconsistent (every
        // critical section is a single push/pop), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn enqueue(&self, lane: Lane, envelope: Envelope) {
        self.state().lane(lane).push_back(envelope);
        self.changed.notify_waiters();
    }
}

/// The in-process queue. Clones share the same queues.
#[derive(Debug, Clone, Default)]
pub struct EmbeddedQueue {
    shared: Arc<Shared>,
}

impl EmbeddedQueue {
    pub fn new() -> EmbeddedQueue {
        EmbeddedQueue::default()
    }

    /// Messages waiting in `lane` (not counting deliveries in flight or retries waiting
    /// for their delay).
    pub fn depth(&self, lane: Lane) -> usize {
        self.shared.state().lane(lane).len()
    }

    /// Everything dead-lettered so far.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.shared.state().dead.clone()
    }
}

#[async_trait]
impl JobQueue for EmbeddedQueue {
    async fn publish(&self, lane: Lane, msg: &JobMessage) -> Result<(), QueueError> {
        self.shared.enqueue(
            lane,
            Envelope {
                payload: msg.encode().into(),
                attempt: 1,
                redelivered: false,
            },
        );
        Ok(())
    }

    async fn consume(&self, prefetch: u16) -> Result<Box<dyn JobConsumer>, QueueError> {
        Ok(Box::new(EmbeddedConsumer {
            shared: self.shared.clone(),
            prefetch: usize::from(prefetch.max(1)),
            in_flight: Arc::new(Mutex::new(InFlight::default())),
        }))
    }

    async fn check(&self) -> Result<(), QueueError> {
        Ok(())
    }
}

/// A consumer's unsettled deliveries, like a RabbitMQ channel's unacked messages.
#[derive(Debug, Default)]
struct InFlight {
    next_id: u64,
    entries: HashMap<u64, (Lane, Envelope)>,
}

impl InFlight {
    fn count(&self, lane: Lane) -> usize {
        self.entries.values().filter(|(l, _)| *l == lane).count()
    }
}

fn lock(in_flight: &Mutex<InFlight>) -> MutexGuard<'_, InFlight> {
    in_flight.lock().unwrap_or_else(|p| p.into_inner())
}

struct EmbeddedConsumer {
    shared: Arc<Shared>,
    prefetch: usize,
    in_flight: Arc<Mutex<InFlight>>,
}

impl EmbeddedConsumer {
    fn try_take(&self) -> Option<Delivery> {
        let mut state = self.shared.state();
        let mut in_flight = lock(&self.in_flight);
        for lane in Lane::ALL {
            if in_flight.count(lane) >= self.prefetch {
                continue;
            }
            let Some(envelope) = state.lane(lane).pop_front() else {
                continue;
            };
            let id = in_flight.next_id;
            in_flight.next_id += 1;
            in_flight.entries.insert(id, (lane, envelope.clone()));
            return Some(Delivery {
                message: JobMessage::decode(&envelope.payload),
                attempt: envelope.attempt,
                lane,
                redelivered: envelope.redelivered,
                settler: Box::new(EmbeddedSettler {
                    shared: Arc::downgrade(&self.shared),
                    in_flight: Arc::downgrade(&self.in_flight),
                    id,
                }),
            });
        }
        None
    }
}

#[async_trait]
impl JobConsumer for EmbeddedConsumer {
    async fn next(&mut self) -> Result<Delivery, QueueError> {
        loop {
            // Register interest before looking, so a publish in between is not missed.
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(delivery) = self.try_take() {
                return Ok(delivery);
            }
            changed.await;
        }
    }
}

impl Drop for EmbeddedConsumer {
    fn drop(&mut self) {
        // Like a closed RabbitMQ channel: unsettled deliveries go back to the front of
        // their queue, flagged as redelivered; settling them later fails.
        let mut returned: Vec<(u64, Lane, Envelope)> = lock(&self.in_flight)
            .entries
            .drain()
            .map(|(id, (lane, envelope))| (id, lane, envelope))
            .collect();
        if returned.is_empty() {
            return;
        }
        returned.sort_by_key(|(id, _, _)| std::cmp::Reverse(*id));
        let mut state = self.shared.state();
        for (_, lane, mut envelope) in returned {
            envelope.redelivered = true;
            state.lane(lane).push_front(envelope);
        }
        drop(state);
        self.shared.changed.notify_waiters();
    }
}

struct EmbeddedSettler {
    shared: Weak<Shared>,
    in_flight: Weak<Mutex<InFlight>>,
    id: u64,
}

impl EmbeddedSettler {
    /// Takes the delivery out of its consumer's in-flight set.
    fn settle(&self) -> Result<(Arc<Shared>, Lane, Envelope), QueueError> {
        let gone = || {
            QueueError::unavailable(
                "the delivery's consumer was dropped; the message went back to its queue",
            )
        };
        let in_flight = self.in_flight.upgrade().ok_or_else(gone)?;
        let (lane, envelope) = lock(&in_flight).entries.remove(&self.id).ok_or_else(gone)?;
        let shared = self.shared.upgrade().ok_or_else(gone)?;
        // A prefetch slot is free again.
        shared.changed.notify_waiters();
        Ok((shared, lane, envelope))
    }
}

#[async_trait]
impl Settle for EmbeddedSettler {
    async fn ack(self: Box<Self>) -> Result<(), QueueError> {
        self.settle().map(|_| ())
    }

    async fn retry(self: Box<Self>, delay: Duration) -> Result<(), QueueError> {
        let (shared, lane, envelope) = self.settle()?;
        let envelope = Envelope {
            payload: envelope.payload,
            attempt: envelope.attempt + 1,
            redelivered: false,
        };
        let shared = Arc::downgrade(&shared);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            // The queue may have been dropped meanwhile (process shutting down).
            if let Some(shared) = shared.upgrade() {
                shared.enqueue(lane, envelope);
            }
        });
        Ok(())
    }

    async fn dead_letter(self: Box<Self>, reason: &str) -> Result<(), QueueError> {
        let (shared, lane, envelope) = self.settle()?;
        tracing::warn!(lane = %lane, attempt = envelope.attempt, reason, "dead-lettering job message");
        shared.state().dead.push(DeadLetter {
            lane,
            attempt: envelope.attempt,
            reason: reason.to_string(),
            payload: envelope.payload.to_vec(),
        });
        Ok(())
    }
}
