//! RabbitMQ implementation.
//!
//! Topology (all durable, on the default exchange):
//! - `jobs.interactive`, `jobs.bulk`: the lanes;
//! - `jobs.interactive.retry`, `jobs.bulk.retry`: no consumers; a retried message waits
//!   there for its per-message TTL (`expiration`) and is then dead-lettered back to its
//!   lane (`x-dead-letter-exchange=""`, `x-dead-letter-routing-key=<lane>`);
//! - `jobs.dead`: parked messages with the reason in the `x-dead-reason` header.
//!
//! The attempt number travels in the `x-attempt` header. Per-message TTLs expire only at
//! the head of a retry queue, so a long delay ahead of a short one delays both; with
//! growing backoff that is harmless.
//!
//! Connections are managed here rather than by lapin's auto-recovery so that a publish
//! during an outage fails at once (the outbox relay republishes) instead of waiting for
//! the broker, and so that a consumer's unsettled deliveries are plainly invalidated
//! when its connection is replaced.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use futures::StreamExt;
use lapin::{
    Acker, BasicProperties, Channel, Connection, ConnectionProperties, ErrorKind,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
    },
    types::{AMQPValue, FieldTable, LongString, ShortString},
};
use tokio::sync::Mutex;

use super::{Delivery, JobConsumer, JobQueue, QueueError, Settle};
use crate::job::{JobMessage, Lane};

const ATTEMPT_HEADER: &str = "x-attempt";
const REASON_HEADER: &str = "x-dead-reason";
const LANE_HEADER: &str = "x-lane";
const PERSISTENT: u8 = 2;

/// The queue names, optionally prefixed so that tests can run side by side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueNames {
    pub interactive: String,
    pub bulk: String,
    pub interactive_retry: String,
    pub bulk_retry: String,
    pub dead: String,
}

impl QueueNames {
    /// `""` gives the production names (`jobs.interactive`, ...); `"t1"` gives
    /// `t1.jobs.interactive`, ...
    pub fn with_prefix(prefix: &str) -> QueueNames {
        let name = |base: &str| {
            if prefix.is_empty() {
                base.to_string()
            } else {
                format!("{prefix}.{base}")
            }
        };
        QueueNames {
            interactive: name(Lane::Interactive.queue_name()),
            bulk: name(Lane::Bulk.queue_name()),
            interactive_retry: name(&format!("{}.retry", Lane::Interactive.queue_name())),
            bulk_retry: name(&format!("{}.retry", Lane::Bulk.queue_name())),
            dead: name("jobs.dead"),
        }
    }

    pub fn lane(&self, lane: Lane) -> &str {
        match lane {
            Lane::Interactive => &self.interactive,
            Lane::Bulk => &self.bulk,
        }
    }

    pub fn retry(&self, lane: Lane) -> &str {
        match lane {
            Lane::Interactive => &self.interactive_retry,
            Lane::Bulk => &self.bulk_retry,
        }
    }

    pub fn all(&self) -> [&str; 5] {
        [
            &self.interactive,
            &self.bulk,
            &self.interactive_retry,
            &self.bulk_retry,
            &self.dead,
        ]
    }
}

#[derive(Clone)]
pub struct RabbitMqOptions {
    /// The broker URL as lapin takes it (our own query parameters removed).
    pub url: String,
    pub names: QueueNames,
    /// Upper bound on establishing a connection (TCP + AMQP handshake + topology).
    pub connect_timeout: Duration,
    /// Upper bound on waiting for a publisher confirm.
    pub confirm_timeout: Duration,
    /// First and largest wait between reconnection attempts.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl std::fmt::Debug for RabbitMqOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitMqOptions")
            .field("url", &redact(&self.url))
            .field("names", &self.names)
            .field("connect_timeout", &self.connect_timeout)
            .field("confirm_timeout", &self.confirm_timeout)
            .field("min_backoff", &self.min_backoff)
            .field("max_backoff", &self.max_backoff)
            .finish()
    }
}

/// The URL without its password, for logs and errors.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "<unparsable url>".into(),
    }
}

impl RabbitMqOptions {
    /// Parses `amqp[s]://user:pw@host:port/vhost[?prefix=name&heartbeat=..]`; `prefix`
    /// is ours, the other parameters are passed to lapin.
    pub fn from_url(url: &str) -> Result<RabbitMqOptions, QueueError> {
        let invalid = |reason: String| QueueError::InvalidUrl {
            url: redact(url),
            reason,
        };
        let mut parsed = url::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(parsed.scheme(), "amqp" | "amqps") {
            return Err(invalid("scheme must be amqp or amqps".into()));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(invalid("missing host".into()));
        }
        let mut prefix = String::new();
        let mut rest = Vec::new();
        for (name, value) in parsed.query_pairs() {
            if name == "prefix" {
                prefix = value.into_owned();
            } else {
                rest.push((name.into_owned(), value.into_owned()));
            }
        }
        if !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(invalid("prefix may contain only A-Z a-z 0-9 . _ -".into()));
        }
        if rest.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(rest);
        }
        // lapin rejects nothing we accept here, but check early so a typo fails at start.
        let lapin_url = parsed.to_string();
        lapin_url
            .parse::<lapin::uri::AMQPUri>()
            .map_err(|e| invalid(e.to_string()))?;
        Ok(RabbitMqOptions {
            url: lapin_url,
            names: QueueNames::with_prefix(&prefix),
            connect_timeout: Duration::from_secs(5),
            confirm_timeout: Duration::from_secs(10),
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
        })
    }
}

/// Exponential backoff between reconnection attempts.
#[derive(Debug)]
struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
    next_attempt: Option<Instant>,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max,
            current: min,
            next_attempt: None,
        }
    }

    /// Time left before the next attempt is allowed.
    fn remaining(&self) -> Option<Duration> {
        self.next_attempt
            .and_then(|t| t.checked_duration_since(Instant::now()))
            .filter(|d| !d.is_zero())
    }

    fn failed(&mut self) -> Duration {
        let wait = self.current;
        self.next_attempt = Some(Instant::now() + wait);
        self.current = (self.current * 2).min(self.max);
        wait
    }

    fn succeeded(&mut self) {
        self.current = self.min;
        self.next_attempt = None;
    }
}

/// Connection-level trouble is `Unavailable` (reconnecting helps); a broker refusing an
/// operation on a healthy connection is `Broker`.
fn classify(context: impl Into<String>, err: lapin::Error) -> QueueError {
    let context = context.into();
    let transient = match err.kind() {
        ErrorKind::ProtocolError(e) => {
            // Soft (channel) errors such as PRECONDITION_FAILED or NOT_FOUND are
            // deterministic; hard (connection) errors mean the link is gone.
            !matches!(e.kind(), lapin::protocol::AMQPErrorKind::Soft(_))
        }
        _ => true,
    };
    if transient {
        QueueError::Unavailable {
            context,
            source: Some(Box::new(err)),
        }
    } else {
        QueueError::Broker {
            context,
            source: Box::new(err),
        }
    }
}

async fn connect(options: &RabbitMqOptions, role: &str) -> Result<Connection, QueueError> {
    let properties =
        ConnectionProperties::default().with_connection_name(format!("attendance-{role}").into());
    match tokio::time::timeout(
        options.connect_timeout,
        Connection::connect(&options.url, properties),
    )
    .await
    {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(e)) => Err(classify(format!("connect to {}", redact(&options.url)), e)),
        Err(_) => Err(QueueError::unavailable(format!(
            "connect to {} timed out after {:?}",
            redact(&options.url),
            options.connect_timeout
        ))),
    }
}

/// Declares the five queues; idempotent, run on every (re)connection.
async fn declare_topology(channel: &Channel, names: &QueueNames) -> Result<(), QueueError> {
    let durable = QueueDeclareOptions::durable();
    for name in [&names.interactive, &names.bulk, &names.dead] {
        channel
            .queue_declare(name.as_str().into(), durable, FieldTable::default())
            .await
            .map_err(|e| classify(format!("declare queue {name}"), e))?;
    }
    for lane in Lane::ALL {
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString("".into()),
        );
        arguments.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(names.lane(lane).into()),
        );
        let name = names.retry(lane);
        channel
            .queue_declare(name.into(), durable, arguments)
            .await
            .map_err(|e| classify(format!("declare queue {name}"), e))?;
    }
    Ok(())
}

/// A channel in confirm mode, on its own connection or shared with a consumer.
async fn open_confirm_channel(
    connection: &Connection,
    names: &QueueNames,
) -> Result<Channel, QueueError> {
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| classify("open channel", e))?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| classify("enable publisher confirms", e))?;
    declare_topology(&channel, names).await?;
    Ok(channel)
}

/// Publishes a persistent message and waits for the broker's confirm. `mandatory` makes
/// an unroutable message (its queue deleted) come back as an error instead of vanishing.
async fn publish_confirmed(
    channel: &Channel,
    queue: &str,
    payload: &[u8],
    properties: BasicProperties,
    confirm_timeout: Duration,
) -> Result<(), QueueError> {
    let properties = properties
        .with_delivery_mode(PERSISTENT)
        .with_content_type("application/json".into());
    let confirm = channel
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            payload,
            properties,
        )
        .await
        .map_err(|e| classify(format!("publish to {queue}"), e))?;
    let confirmation = tokio::time::timeout(confirm_timeout, confirm)
        .await
        .map_err(|_| {
            QueueError::unavailable(format!(
                "no publisher confirm from {queue} within {confirm_timeout:?}"
            ))
        })?
        .map_err(|e| classify(format!("publisher confirm from {queue}"), e))?;
    if confirmation.is_nack() {
        return Err(QueueError::Rejected {
            context: format!("broker nacked the message for {queue}"),
        });
    }
    if let Some(returned) = confirmation.take_message() {
        return Err(QueueError::Rejected {
            context: format!(
                "message for {queue} was returned: {} {}",
                returned.reply_code, returned.reply_text
            ),
        });
    }
    Ok(())
}

struct PublishLink {
    // Kept so that the connection lives as long as the link; dropping it closes it.
    connection: Connection,
    channel: Channel,
}

struct PublisherState {
    link: Option<PublishLink>,
    backoff: Backoff,
}

/// The RabbitMQ job queue. Cheap to share behind an `Arc`; publishes from many tasks are
/// pipelined on one confirm channel.
pub struct RabbitMqQueue {
    options: Arc<RabbitMqOptions>,
    publisher: Mutex<PublisherState>,
}

impl std::fmt::Debug for RabbitMqQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitMqQueue")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl RabbitMqQueue {
    /// Makes no connection yet; the first publish or check connects.
    pub fn new(options: RabbitMqOptions) -> RabbitMqQueue {
        let backoff = Backoff::new(options.min_backoff, options.max_backoff);
        RabbitMqQueue {
            options: Arc::new(options),
            publisher: Mutex::new(PublisherState {
                link: None,
                backoff,
            }),
        }
    }

    pub fn names(&self) -> &QueueNames {
        &self.options.names
    }

    /// The publishing channel, reconnecting if the backoff allows; otherwise
    /// `Unavailable` at once.
    async fn channel(&self) -> Result<Channel, QueueError> {
        let mut state = self.publisher.lock().await;
        if let Some(link) = &state.link {
            if link.connection.status().connected() && link.channel.status().connected() {
                return Ok(link.channel.clone());
            }
            tracing::warn!("RabbitMQ publishing connection lost; reconnecting");
            state.link = None;
        }
        if let Some(wait) = state.backoff.remaining() {
            return Err(QueueError::unavailable(format!(
                "broker unreachable; next reconnection attempt in {} ms",
                wait.as_millis()
            )));
        }
        let attempt = async {
            let connection = connect(&self.options, "publisher").await?;
            let channel = open_confirm_channel(&connection, &self.options.names).await?;
            Ok::<_, QueueError>(PublishLink {
                connection,
                channel,
            })
        };
        match attempt.await {
            Ok(link) => {
                state.backoff.succeeded();
                let channel = link.channel.clone();
                state.link = Some(link);
                tracing::info!(url = %redact(&self.options.url), "connected to RabbitMQ (publisher)");
                Ok(channel)
            }
            Err(e) => {
                let wait = state.backoff.failed();
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "RabbitMQ connection failed");
                Err(e)
            }
        }
    }

    /// Drops the publishing link if it still is `channel` (a concurrent publisher may
    /// already have replaced it).
    async fn invalidate(&self, channel: &Channel) {
        let mut state = self.publisher.lock().await;
        if state
            .link
            .as_ref()
            .is_some_and(|l| l.channel.id() == channel.id() && !l.channel.status().connected())
        {
            state.link = None;
        }
    }

    /// Ready messages in `queue` (unacked ones are not counted), via a passive declare.
    pub async fn message_count(&self, queue: &str) -> Result<u32, QueueError> {
        let channel = self.scratch_channel().await?;
        let q = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| classify(format!("inspect queue {queue}"), e))?;
        let _ = channel.close(200, "done".into()).await;
        Ok(q.message_count())
    }

    /// Deletes all five queues (tests and operators tearing down a prefix).
    pub async fn delete_queues(&self) -> Result<(), QueueError> {
        let channel = self.scratch_channel().await?;
        for name in self.options.names.all() {
            channel
                .queue_delete(name.into(), QueueDeleteOptions::default())
                .await
                .map_err(|e| classify(format!("delete queue {name}"), e))?;
        }
        let _ = channel.close(200, "done".into()).await;
        Ok(())
    }

    /// A throwaway channel on the publishing connection, so that a failing passive
    /// declare (which closes its channel) never disturbs publishing.
    async fn scratch_channel(&self) -> Result<Channel, QueueError> {
        self.channel().await?;
        let state = self.publisher.lock().await;
        let link = state
            .link
            .as_ref()
            .ok_or_else(|| QueueError::unavailable("publishing connection lost"))?;
        link.connection
            .create_channel()
            .await
            .map_err(|e| classify("open channel", e))
    }
}

#[async_trait]
impl JobQueue for RabbitMqQueue {
    async fn publish(&self, lane: Lane, msg: &JobMessage) -> Result<(), QueueError> {
        let channel = self.channel().await?;
        let queue = self.options.names.lane(lane);
        let properties = BasicProperties::default().with_message_id(msg.job_id.to_string().into());
        let result = publish_confirmed(
            &channel,
            queue,
            &msg.encode(),
            properties,
            self.options.confirm_timeout,
        )
        .await;
        if result.as_ref().is_err_and(QueueError::is_transient) {
            self.invalidate(&channel).await;
        }
        result
    }

    async fn consume(&self, prefetch: u16) -> Result<Box<dyn JobConsumer>, QueueError> {
        let mut consumer = RabbitMqConsumer {
            options: self.options.clone(),
            prefetch: prefetch.max(1),
            link: None,
            backoff: Backoff::new(self.options.min_backoff, self.options.max_backoff),
        };
        // Connect once now so that a wrong URL or credentials show up at start;
        // later outages are handled inside `next`.
        consumer.link = Some(consumer.open().await?);
        Ok(Box::new(consumer))
    }

    async fn check(&self) -> Result<(), QueueError> {
        self.channel().await.map(|_| ())
    }
}

struct ConsumeLink {
    connection: Connection,
    /// Carries retries and dead letters; separate from the consuming channel.
    publish: Channel,
    interactive: lapin::Consumer,
    bulk: lapin::Consumer,
}

/// How often an idle consumer checks that its connection is still up.
const CONNECTION_CHECK: Duration = Duration::from_secs(1);

struct RabbitMqConsumer {
    options: Arc<RabbitMqOptions>,
    prefetch: u16,
    link: Option<ConsumeLink>,
    backoff: Backoff,
}

impl RabbitMqConsumer {
    async fn open(&self) -> Result<ConsumeLink, QueueError> {
        let names = &self.options.names;
        let connection = connect(&self.options, "consumer").await?;
        let publish = open_confirm_channel(&connection, names).await?;
        let consume = connection
            .create_channel()
            .await
            .map_err(|e| classify("open channel", e))?;
        // Per-consumer limit (global = false): each lane gets `prefetch` in flight.
        consume
            .basic_qos(self.prefetch, BasicQosOptions { global: false })
            .await
            .map_err(|e| classify("set prefetch", e))?;
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let mut consumers = Vec::with_capacity(2);
        // Interactive first, so that what is already waiting there arrives first.
        for lane in Lane::ALL {
            let queue = names.lane(lane);
            let consumer = consume
                .basic_consume(
                    queue.into(),
                    format!("{}-{tag}", lane.as_str()).into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| classify(format!("consume {queue}"), e))?;
            consumers.push(consumer);
        }
        let bulk = consumers.pop().expect("two consumers");
        let interactive = consumers.pop().expect("two consumers");
        tracing::info!(url = %redact(&self.options.url), prefetch = self.prefetch, "consuming from RabbitMQ");
        Ok(ConsumeLink {
            connection,
            publish,
            interactive,
            bulk,
        })
    }

    fn wrap(&self, publish: &Channel, lane: Lane, delivery: lapin::message::Delivery) -> Delivery {
        let headers = delivery.properties.headers().clone().unwrap_or_default();
        let attempt = header_u32(&headers, ATTEMPT_HEADER).unwrap_or(1).max(1);
        Delivery {
            message: JobMessage::decode(&delivery.data),
            attempt,
            lane,
            redelivered: delivery.redelivered,
            settler: Box::new(RabbitSettler {
                acker: delivery.acker,
                publish: publish.clone(),
                options: self.options.clone(),
                lane,
                attempt,
                payload: delivery.data,
                properties: delivery.properties,
            }),
        }
    }
}

impl Drop for RabbitMqConsumer {
    fn drop(&mut self) {
        // Close explicitly: outstanding deliveries hold channel handles that would
        // otherwise keep the connection (and their unacked messages) alive.
        if let Some(link) = self.link.take()
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            handle.spawn(async move {
                let _ = link.connection.close(200, "consumer dropped".into()).await;
            });
        }
    }
}

#[async_trait]
impl JobConsumer for RabbitMqConsumer {
    async fn next(&mut self) -> Result<Delivery, QueueError> {
        loop {
            let Some(link) = self.link.as_mut() else {
                if let Some(wait) = self.backoff.remaining() {
                    tokio::time::sleep(wait).await;
                }
                match self.open().await {
                    Ok(link) => {
                        self.backoff.succeeded();
                        self.link = Some(link);
                    }
                    Err(e) => {
                        let wait = self.backoff.failed();
                        tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "RabbitMQ consumer reconnection failed");
                    }
                }
                continue;
            };
            // `biased`: when both lanes have a delivery ready, interactive wins. A
            // connection the broker closed (`rabbitmqctl close_connection`) can leave
            // both streams silent, so the connection's state is looked at every second.
            let polled = tokio::select! {
                biased;
                item = link.interactive.next() => Some((Lane::Interactive, item)),
                item = link.bulk.next() => Some((Lane::Bulk, item)),
                () = tokio::time::sleep(CONNECTION_CHECK) => None,
            };
            match polled {
                Some((lane, Some(Ok(delivery)))) => {
                    let publish = link.publish.clone();
                    return Ok(self.wrap(&publish, lane, delivery));
                }
                Some((lane, Some(Err(e)))) => {
                    tracing::warn!(error = %e, lane = %lane, "RabbitMQ consumer failed; reconnecting");
                }
                Some((lane, None)) => {
                    tracing::warn!(lane = %lane, "RabbitMQ consumer was cancelled; reconnecting");
                }
                None if link.connection.status().connected() => continue,
                None => {
                    tracing::warn!("RabbitMQ consumer connection lost; reconnecting");
                }
            }
            if let Some(link) = self.link.take() {
                let _ = link.connection.close(200, "reconnecting".into()).await;
            }
            // Give a restarting broker a moment instead of spinning.
            self.backoff.failed();
        }
    }
}

fn header_u32(headers: &FieldTable, name: &str) -> Option<u32> {
    let value = headers.inner().get(name)?;
    let n: i64 = match value {
        AMQPValue::ShortShortInt(v) => (*v).into(),
        AMQPValue::ShortShortUInt(v) => (*v).into(),
        AMQPValue::ShortInt(v) => (*v).into(),
        AMQPValue::ShortUInt(v) => (*v).into(),
        AMQPValue::LongInt(v) => (*v).into(),
        AMQPValue::LongUInt(v) => (*v).into(),
        AMQPValue::LongLongInt(v) => *v,
        _ => return None,
    };
    u32::try_from(n).ok()
}

struct RabbitSettler {
    acker: Acker,
    publish: Channel,
    options: Arc<RabbitMqOptions>,
    lane: Lane,
    attempt: u32,
    payload: Vec<u8>,
    properties: BasicProperties,
}

impl RabbitSettler {
    /// The original properties with `extra` headers added (message id etc. kept).
    fn properties_with(&self, extra: &[(&str, AMQPValue)]) -> BasicProperties {
        let mut headers = self.properties.headers().clone().unwrap_or_default();
        for (name, value) in extra {
            headers.insert(ShortString::from(*name), value.clone());
        }
        // x-death is the broker's bookkeeping from the retry queue; we count ourselves.
        let mut clean = FieldTable::default();
        for (k, v) in headers.inner() {
            if !k.as_str().starts_with("x-death") && k.as_str() != "x-first-death-queue" {
                clean.insert(k.clone(), v.clone());
            }
        }
        let mut properties = BasicProperties::default().with_headers(clean);
        if let Some(id) = self.properties.message_id() {
            properties = properties.with_message_id(id.clone());
        }
        properties
    }

    async fn publish_then_ack(
        self,
        queue: &str,
        properties: BasicProperties,
    ) -> Result<(), QueueError> {
        publish_confirmed(
            &self.publish,
            queue,
            &self.payload,
            properties,
            self.options.confirm_timeout,
        )
        .await?;
        // Only now drop the original: a crash in between duplicates the job (handlers
        // are idempotent) rather than losing it.
        ack(&self.acker).await
    }
}

/// Acks a delivery; lapin answers `Ok(false)` (nothing sent) when the delivery's channel
/// has closed, in which case the broker requeues the message and the ack is an error.
async fn ack(acker: &Acker) -> Result<(), QueueError> {
    match acker.ack(BasicAckOptions::default()).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(QueueError::unavailable(
            "ack not sent: the delivery's channel is closed (or it was already settled); \
             the broker will redeliver the message",
        )),
        Err(e) => Err(classify("ack", e)),
    }
}

#[async_trait]
impl Settle for RabbitSettler {
    async fn ack(self: Box<Self>) -> Result<(), QueueError> {
        ack(&self.acker).await
    }

    async fn retry(self: Box<Self>, delay: Duration) -> Result<(), QueueError> {
        let next = i64::from(self.attempt) + 1;
        let properties = self
            .properties_with(&[(ATTEMPT_HEADER, AMQPValue::LongLongInt(next))])
            .with_expiration(delay.as_millis().to_string().into());
        let queue = self.options.names.retry(self.lane).to_string();
        self.publish_then_ack(&queue, properties).await
    }

    async fn dead_letter(self: Box<Self>, reason: &str) -> Result<(), QueueError> {
        let properties = self.properties_with(&[
            (ATTEMPT_HEADER, AMQPValue::LongLongInt(self.attempt.into())),
            (
                REASON_HEADER,
                AMQPValue::LongString(LongString::from(reason)),
            ),
            (
                LANE_HEADER,
                AMQPValue::LongString(LongString::from(self.lane.as_str())),
            ),
        ]);
        let queue = self.options.names.dead.clone();
        tracing::warn!(lane = %self.lane, attempt = self.attempt, reason, "dead-lettering job message");
        self.publish_then_ack(&queue, properties).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_prefix_is_ours_and_other_parameters_pass_through() {
        let o = RabbitMqOptions::from_url("amqp://u:secret@host:5672/%2f?prefix=t1&heartbeat=10")
            .unwrap();
        assert_eq!(o.url, "amqp://u:secret@host:5672/%2f?heartbeat=10");
        assert_eq!(o.names.interactive, "t1.jobs.interactive");
        assert_eq!(o.names.bulk_retry, "t1.jobs.bulk.retry");
        assert_eq!(o.names.dead, "t1.jobs.dead");
        assert!(!format!("{o:?}").contains("secret"));

        let o = RabbitMqOptions::from_url("amqp://guest:guest@127.0.0.1:5672/%2f").unwrap();
        assert_eq!(o.url, "amqp://guest:guest@127.0.0.1:5672/%2f");
        assert_eq!(
            o.names.all(),
            [
                "jobs.interactive",
                "jobs.bulk",
                "jobs.interactive.retry",
                "jobs.bulk.retry",
                "jobs.dead"
            ]
        );
    }

    #[test]
    fn bad_urls_are_rejected_without_leaking_the_password() {
        for url in ["http://h/", "amqp://u:hunter2@h/?prefix=a/b", "amqp:///%2f"] {
            let err = RabbitMqOptions::from_url(url).unwrap_err();
            assert!(matches!(err, QueueError::InvalidUrl { .. }), "{url}: {err}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        assert_eq!(b.remaining(), None);
        assert_eq!(b.failed(), Duration::from_millis(100));
        assert!(b.remaining().is_some());
        assert_eq!(b.failed(), Duration::from_millis(200));
        assert_eq!(b.failed(), Duration::from_millis(350));
        assert_eq!(b.failed(), Duration::from_millis(350));
        b.succeeded();
        assert_eq!(b.remaining(), None);
        assert_eq!(b.failed(), Duration::from_millis(100));
    }
}
