//! The dispatcher: sends due webhook deliveries, logs every attempt and schedules the
//! next one. Runs in every worker process (and in the API's in-process worker); the
//! deliveries are rows, so what was pending when a process stopped is sent by the
//! next one.
//!
//! A delivery is claimed with a conditional `UPDATE` (pending, due, not held by
//! another dispatcher whose lease is still running), so several processes never send
//! the same attempt twice; the attempt's outcome is written only by the claim's holder.
//! Schedule after a failure: `base × 2^(n−1)`, capped at an hour, times a random
//! factor in [0.5, 1) (so that a receiver coming back is not hit by every retry at
//! once); a delivery whose next attempt would fall more than 24 hours after the event
//! is marked `failed` instead.

use std::{future::Future, time::Duration};

use chrono::{TimeDelta, Utc};
use common::{Config, error_chain, webhook_address};
use models::webhook;
use models::webhook_attempt;
use models::webhook_delivery::{self, DeliveryStatus};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait, sea_query::Expr,
};
use uuid::Uuid;

use super::signature;

/// How the dispatcher behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct DispatcherOptions {
    /// The wait before the first retry (`WEBHOOK_RETRY_BASE_MS`).
    pub retry_base: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// How long after the event a delivery is retried before it is marked failed.
    pub give_up_after: Duration,
    /// Per attempt: connect, send and receive the answer.
    pub timeout: Duration,
    /// How long a claim holds a delivery; longer than `timeout`, so that only a
    /// dispatcher that died loses its claim.
    pub lease: Duration,
    /// How often to look for due deliveries when there are none.
    pub poll: Duration,
    /// Deliveries sent at once by one process.
    pub batch: u64,
    /// `WEBHOOK_ALLOW_PRIVATE`.
    pub allow_private: bool,
}

impl DispatcherOptions {
    pub fn from_config(config: &Config) -> Self {
        DispatcherOptions {
            retry_base: config.webhook_retry_base,
            max_backoff: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(24 * 3600),
            timeout: Duration::from_secs(10),
            lease: Duration::from_secs(60),
            // Retries sooner than a second (tests) need looking sooner.
            poll: config.webhook_retry_base.min(Duration::from_secs(1)),
            batch: 16,
            allow_private: config.webhook_allow_private,
        }
    }

    /// The wait after the `attempt`-th failed attempt; `jitter` in [0, 1).
    pub fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(24));
        let full = self.retry_base.saturating_mul(factor).min(self.max_backoff);
        full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq)]
struct AttemptOutcome {
    status_code: Option<u16>,
    error: Option<String>,
}

impl AttemptOutcome {
    fn succeeded(&self) -> bool {
        self.error.is_none() && self.status_code.is_some_and(|s| (200..300).contains(&s))
    }
}

pub struct Dispatcher {
    db: DatabaseConnection,
    options: DispatcherOptions,
}

impl Dispatcher {
    pub fn new(db: DatabaseConnection, options: DispatcherOptions) -> Self {
        Self { db, options }
    }

    /// Sends due deliveries until `shutdown` completes; the attempts in flight are
    /// finished and recorded first.
    pub async fn run_until(&self, shutdown: impl Future<Output = ()>) {
        tracing::info!(
            retry_base_ms = self.options.retry_base.as_millis() as u64,
            allow_private = self.options.allow_private,
            "webhook dispatcher running"
        );
        tokio::pin!(shutdown);
        loop {
            let sent = match self.run_once().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "could not look for webhook deliveries; trying again");
                    0
                }
            };
            let pause = if sent == 0 {
                self.options.poll
            } else {
                Duration::ZERO
            };
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        tracing::info!("webhook dispatcher stopped");
    }

    /// Claims the due deliveries (up to a batch) and sends them; returns how many.
    pub async fn run_once(&self) -> Result<usize, DbErr> {
        let now = Utc::now();
        let due = webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending))
            .filter(webhook_delivery::Column::NextAttemptAt.lte(now))
            .filter(unlocked(now))
            .order_by_asc(webhook_delivery::Column::NextAttemptAt)
            .limit(self.options.batch)
            .all(&self.db)
            .await?;
        let mut claimed = Vec::new();
        for delivery in due {
            let claim = Uuid::new_v4();
            if self.claim(&delivery, claim).await? {
                claimed.push((delivery, claim));
            }
        }
        let count = claimed.len();
        futures::future::join_all(
            claimed
                .into_iter()
                .map(|(delivery, claim)| self.deliver(delivery, claim)),
        )
        .await;
        Ok(count)
    }

    /// Takes the delivery for this dispatcher unless another one was quicker.
    async fn claim(&self, delivery: &webhook_delivery::Model, claim: Uuid) -> Result<bool, DbErr> {
        let now = Utc::now();
        let lease = TimeDelta::from_std(self.options.lease).unwrap_or(TimeDelta::days(1));
        let updated = webhook_delivery::Entity::update_many()
            .col_expr(webhook_delivery::Column::ClaimId, Expr::value(claim))
            .col_expr(
                webhook_delivery::Column::LockedUntil,
                Expr::value(now + lease),
            )
            .filter(webhook_delivery::Column::Id.eq(delivery.id))
            .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending))
            .filter(webhook_delivery::Column::NextAttemptAt.lte(now))
            .filter(unlocked(now))
            .exec(&self.db)
            .await?;
        Ok(updated.rows_affected == 1)
    }

    /// One attempt of a claimed delivery, then its record. A failure to record is
    /// logged: the claim runs out and the attempt is made again.
    async fn deliver(&self, delivery: webhook_delivery::Model, claim: Uuid) {
        let span = tracing::info_span!(
            "webhook_delivery",
            delivery_id = %delivery.id,
            event = %delivery.event,
            attempt = delivery.attempts + 1,
        );
        let result = async {
            let hook = webhook::Entity::find_by_id(delivery.webhook_id)
                .one(&self.db)
                .await?;
            let Some(hook) = hook.filter(|h| h.active) else {
                return self
                    .give_up(&delivery, claim, "the subscription was deleted")
                    .await;
            };
            let started = std::time::Instant::now();
            let outcome = self.send(&hook, &delivery).await;
            let elapsed = started.elapsed();
            self.record(&delivery, claim, &outcome, elapsed).await
        };
        if let Err(e) = tracing::Instrument::instrument(result, span).await {
            tracing::warn!(delivery_id = %delivery.id, error = %e, "could not record a webhook attempt; it will be retried");
        }
    }

    /// Makes the request: the body as stored, signed now.
    async fn send(
        &self,
        hook: &webhook::Model,
        delivery: &webhook_delivery::Model,
    ) -> AttemptOutcome {
        let failed = |error: String| AttemptOutcome {
            status_code: None,
            error: Some(error),
        };
        let url = match webhook_address::parse(&hook.url) {
            Ok(url) => url,
            Err(e) => return failed(e.to_string()),
        };
        // Resolved again at every attempt, and the request pinned to the addresses
        // checked: a host re-pointed at an internal address since subscribing is refused.
        let addrs = match webhook_address::resolve(&url, self.options.allow_private).await {
            Ok(addrs) => addrs,
            Err(e) => return failed(e.to_string()),
        };
        let host = url.host_str().unwrap_or_default().to_string();
        let client = match reqwest::Client::builder()
            .timeout(self.options.timeout)
            // A redirect could lead anywhere, including inside; receivers answer directly.
            .redirect(reqwest::redirect::Policy::none())
            .resolve_to_addrs(&host, &addrs)
            .user_agent(concat!("attendance-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
        {
            Ok(client) => client,
            Err(e) => return failed(format!("could not build the HTTP client: {e}")),
        };
        let timestamp = Utc::now().timestamp();
        let response = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                signature::HEADER,
                signature::header_value(&hook.secret, timestamp, &delivery.body),
            )
            .header("X-Attendance-Event", &delivery.event)
            .header("X-Attendance-Delivery", delivery.id.to_string())
            .body(delivery.body.clone())
            .send()
            .await;
        match response {
            Ok(resp) => {
                let status = resp.status();
                AttemptOutcome {
                    status_code: Some(status.as_u16()),
                    error: (!status.is_success())
                        .then(|| format!("the receiver answered {status}")),
                }
            }
            Err(e) if e.is_timeout() => failed(format!(
                "no answer within {} s",
                self.options.timeout.as_secs_f64()
            )),
            Err(e) => failed(error_chain(&e)),
        }
    }

    /// Logs the attempt and moves the delivery on (done, retry later, or given up), in
    /// one transaction, if this dispatcher still holds the claim.
    async fn record(
        &self,
        delivery: &webhook_delivery::Model,
        claim: Uuid,
        outcome: &AttemptOutcome,
        elapsed: Duration,
    ) -> Result<(), DbErr> {
        let now = Utc::now();
        let attempt = delivery.attempts + 1;
        let (status, next_attempt_at, finished_at) = if outcome.succeeded() {
            (
                DeliveryStatus::Succeeded,
                delivery.next_attempt_at,
                Some(now),
            )
        } else {
            let wait = self.options.backoff(attempt as u32, rand::random::<f64>());
            let next = now + TimeDelta::from_std(wait).unwrap_or(TimeDelta::days(1));
            let deadline = delivery.created_at
                + TimeDelta::from_std(self.options.give_up_after).unwrap_or(TimeDelta::days(1));
            if next > deadline {
                (DeliveryStatus::Failed, delivery.next_attempt_at, Some(now))
            } else {
                (DeliveryStatus::Pending, next, None)
            }
        };
        let txn = self.db.begin().await?;
        let updated = webhook_delivery::Entity::update_many()
            .col_expr(webhook_delivery::Column::Status, Expr::value(status))
            .col_expr(webhook_delivery::Column::Attempts, Expr::value(attempt))
            .col_expr(
                webhook_delivery::Column::NextAttemptAt,
                Expr::value(next_attempt_at),
            )
            .col_expr(
                webhook_delivery::Column::LastStatus,
                Expr::value(outcome.status_code.map(i32::from)),
            )
            .col_expr(
                webhook_delivery::Column::LastError,
                Expr::value(outcome.error.clone()),
            )
            .col_expr(
                webhook_delivery::Column::FinishedAt,
                Expr::value(finished_at),
            )
            .col_expr(webhook_delivery::Column::ClaimId, Expr::value(None::<Uuid>))
            .col_expr(
                webhook_delivery::Column::LockedUntil,
                Expr::value(None::<chrono::DateTime<Utc>>),
            )
            .filter(webhook_delivery::Column::Id.eq(delivery.id))
            .filter(webhook_delivery::Column::ClaimId.eq(claim))
            .exec(&txn)
            .await?;
        if updated.rows_affected != 1 {
            // The claim ran out and another dispatcher took over: its record wins.
            tracing::warn!("lost the claim on a webhook delivery; not recording this attempt");
            return txn.rollback().await;
        }
        webhook_attempt::Entity::insert(webhook_attempt::ActiveModel {
            id: Set(Uuid::new_v4()),
            delivery_id: Set(delivery.id),
            attempt: Set(attempt),
            at: Set(now),
            status_code: Set(outcome.status_code.map(i32::from)),
            duration_ms: Set(elapsed.as_millis().min(i64::MAX as u128) as i64),
            error: Set(outcome.error.clone()),
        })
        .exec_without_returning(&txn)
        .await?;
        txn.commit().await?;
        match status {
            DeliveryStatus::Succeeded => {
                tracing::info!(status = ?outcome.status_code, "webhook delivered")
            }
            DeliveryStatus::Pending => tracing::warn!(
                error = outcome.error.as_deref().unwrap_or_default(),
                next_attempt_at = %next_attempt_at,
                "webhook attempt failed; will retry"
            ),
            DeliveryStatus::Failed => tracing::error!(
                error = outcome.error.as_deref().unwrap_or_default(),
                attempts = attempt,
                "webhook delivery failed for good"
            ),
        }
        Ok(())
    }

    /// Marks a claimed delivery failed without an attempt (its subscription is gone).
    async fn give_up(
        &self,
        delivery: &webhook_delivery::Model,
        claim: Uuid,
        reason: &str,
    ) -> Result<(), DbErr> {
        webhook_delivery::Entity::update_many()
            .col_expr(
                webhook_delivery::Column::Status,
                Expr::value(DeliveryStatus::Failed),
            )
            .col_expr(webhook_delivery::Column::LastError, Expr::value(reason))
            .col_expr(
                webhook_delivery::Column::FinishedAt,
                Expr::value(Utc::now()),
            )
            .col_expr(webhook_delivery::Column::ClaimId, Expr::value(None::<Uuid>))
            .col_expr(
                webhook_delivery::Column::LockedUntil,
                Expr::value(None::<chrono::DateTime<Utc>>),
            )
            .filter(webhook_delivery::Column::Id.eq(delivery.id))
            .filter(webhook_delivery::Column::ClaimId.eq(claim))
            .exec(&self.db)
            .await?;
        tracing::info!(reason, "webhook delivery given up");
        Ok(())
    }
}

/// Not held by a dispatcher whose lease is still running.
fn unlocked(now: chrono::DateTime<Utc>) -> Condition {
    Condition::any()
        .add(webhook_delivery::Column::LockedUntil.is_null())
        .add(webhook_delivery::Column::LockedUntil.lt(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped_at_an_hour() {
        let options = DispatcherOptions::from_config(&Config::default());
        assert_eq!(options.backoff(1, 0.0), Duration::from_secs(5));
        assert_eq!(options.backoff(1, 1.0), Duration::from_secs(10));
        assert_eq!(options.backoff(2, 1.0), Duration::from_secs(20));
        assert_eq!(options.backoff(3, 0.5), Duration::from_secs(30));
        assert_eq!(options.backoff(20, 1.0), Duration::from_secs(3600));
        assert_eq!(options.backoff(u32::MAX, 0.0), Duration::from_secs(1800));
        let test = DispatcherOptions::from_config(
            &Config::from_pairs([("WEBHOOK_RETRY_BASE_MS", "100")]).unwrap(),
        );
        assert_eq!(test.backoff(1, 1.0), Duration::from_millis(100));
        assert_eq!(test.poll, Duration::from_millis(100));
    }

    #[test]
    fn only_an_answered_2xx_is_a_success() {
        let ok = |code| AttemptOutcome {
            status_code: Some(code),
            error: None,
        };
        assert!(ok(200).succeeded());
        assert!(ok(204).succeeded());
        assert!(!ok(302).succeeded());
        assert!(!ok(500).succeeded());
        assert!(
            !AttemptOutcome {
                status_code: None,
                error: Some("timeout".into())
            }
            .succeeded()
        );
    }
}
