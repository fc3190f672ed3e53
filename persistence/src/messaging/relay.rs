//! The outbox relay: committed `task` rows → RabbitMQ, with publisher confirms.
//!
//! Per shard, a loop claims due rows with `SELECT … FOR UPDATE SKIP LOCKED` (so several relay
//! processes share the work without publishing a row twice), publishes them as persistent,
//! mandatory messages, waits for the confirms of the whole batch, and only then marks each
//! confirmed row `completed`, all in the claiming transaction. A returned, nacked or
//! unconfirmed message is not marked sent: it counts an attempt and is retried after an
//! exponential backoff, and after `max_attempts` it becomes `dead` (visible, replayable).
//!
//! Latency: the API nudges the shard's loop right after a commit; polling every
//! `poll_interval` is the fallback after crashes and for other processes' commits. While the
//! broker is unreachable nothing is claimed, so rows stay pending without burning attempts.
//! A crash between publish and commit leaves the rows claimable again: delivery is
//! at-least-once and consumers are idempotent.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use sea_orm::sea_query::{Alias, Cond, Expr, LockBehavior, LockType, Order, Query};
use sea_orm::{ConnectionTrait, DbErr, TransactionTrait};
use tokio::sync::{Notify, watch};

use super::publisher::{Outgoing, Published, Publisher};
use crate::db::Databases;
use crate::redis::views::AwardEntry;
use crate::redis::{TaskEvent, TaskStream, UserViews};
use domain::events::{AccountSnapshot, SendAward, decode};
use domain::outbox::{INTERNAL_TOPICS, TOPIC_SEND_AWARD, TaskState};

/// Tuning of the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySettings {
    /// Rows claimed per batch.
    pub batch_size: u64,
    /// Poll interval when not nudged.
    pub poll_interval: Duration,
    /// Publish attempts before a row is dead-lettered.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Concurrent claim loops per shard. With two, rows committed while one batch waits for
    /// its confirms are claimed (`SKIP LOCKED`) and published by the other at once instead of
    /// after it: lower lag, and the database and broker round trips overlap when draining.
    pub loops_per_shard: usize,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch_size: 200,
            poll_interval: Duration::from_millis(500),
            max_attempts: 8,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(300),
            loops_per_shard: 2,
        }
    }
}

/// Wakes the relay loops right after a commit (in-process).
#[derive(Debug)]
pub struct RelayNudge {
    shards: Vec<Notify>,
    router: crate::router::ShardRouter,
}

impl RelayNudge {
    /// One waker per shard of `db`.
    pub fn new(db: &Databases) -> Self {
        Self {
            shards: (0..db.shards.len()).map(|_| Notify::new()).collect(),
            router: db.router,
        }
    }

    /// Wakes the loop of `shard` (a wake-up with nobody waiting is kept for the next wait).
    pub fn nudge(&self, shard: usize) {
        if let Some(n) = self.shards.get(shard) {
            n.notify_one();
        }
    }

    fn waiter(&self, shard: usize) -> Option<&Notify> {
        self.shards.get(shard)
    }
}

impl domain::ports::OutboxNotifier for RelayNudge {
    fn committed(&self, user_id: &str) {
        self.nudge(self.router.route(user_id).db);
    }
}

/// Counters, for tests, metrics and logs.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Rows confirmed and marked `completed`.
    pub published: AtomicU64,
    /// Failed attempts (rows marked `fail`).
    pub failed: AtomicU64,
    /// Rows dead-lettered.
    pub dead: AtomicU64,
}

/// One row of a batch, as told to a [`RelayObserver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayedRow<'a> {
    /// The row's message id.
    pub message_id: &'a str,
    /// Its topic.
    pub topic: &'a str,
    /// Confirmed by the broker (or, for a projection-only topic, applied to the read model).
    pub confirmed: bool,
}

/// Told about every batch the relay handles (metrics, benchmarks). Called on the relay's own
/// task between its steps, so an implementation must be quick and must not block.
pub trait RelayObserver: Send + Sync {
    /// The broker has answered for every message of the batch and projection-only events are
    /// applied; the rows are not marked yet.
    fn confirmed(&self, _shard: usize, _rows: &[RelayedRow<'_>]) {}
    /// The rows are marked in MySQL and the batch's read-model writes are done.
    fn settled(&self, _shard: usize, _rows: &[RelayedRow<'_>]) {}
}

/// The relay over every shard.
pub struct Relay {
    observer: Option<Arc<dyn RelayObserver>>,
    events: Option<TaskStream>,
    views: Option<UserViews>,
    db: Databases,
    publisher: Arc<Publisher>,
    settings: RelaySettings,
    nudge: Arc<RelayNudge>,
    stats: Arc<RelayStats>,
}

struct Claimed {
    id: u64,
    user_id: String,
    fresh: bool,
    topic: String,
    message_id: String,
    message: String,
    attempts: u32,
}

fn c(name: &'static str) -> Alias {
    Alias::new(name)
}

impl Relay {
    /// A relay publishing through `publisher`, woken by `nudge`.
    pub fn new(db: Databases, publisher: Arc<Publisher>, settings: RelaySettings, nudge: Arc<RelayNudge>) -> Self {
        Self {
            db,
            publisher,
            settings,
            nudge,
            stats: Arc::default(),
            events: None,
            views: None,
            observer: None,
        }
    }

    /// Also tells `observer` about every batch.
    pub fn with_observer(mut self, observer: Arc<dyn RelayObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    fn observe(&self, shard: usize, rows: &[Claimed], results: &[Published], settled: bool) {
        let Some(o) = &self.observer else { return };
        let told: Vec<RelayedRow<'_>> = rows
            .iter()
            .zip(results)
            .map(|(r, p)| RelayedRow {
                message_id: &r.message_id,
                topic: &r.topic,
                confirmed: *p == Published::Confirmed,
            })
            .collect();
        if settled {
            o.settled(shard, &told);
        } else {
            o.confirmed(shard, &told);
        }
    }

    /// Also appends every state change to the task-status streams.
    pub fn with_events(mut self, events: TaskStream) -> Self {
        self.events = Some(events);
        self
    }

    /// Also maintains the user read models (accounts from projection-only events, award
    /// history from `send_award`).
    pub fn with_views(mut self, views: UserViews) -> Self {
        self.views = Some(views);
        self
    }

    async fn apply_internal(&self, row: &Claimed) -> Published {
        let Some(views) = &self.views else {
            return Published::Confirmed;
        };
        match decode::<AccountSnapshot>(row.message.as_bytes()) {
            Ok(env) => match views.apply_account(&env.data).await {
                Ok(_) => Published::Confirmed,
                Err(e) => Published::Failed(format!("read model: {e}")),
            },
            Err(e) => Published::Failed(format!("malformed {}: {e}", row.topic)),
        }
    }

    async fn record_awards(&self, rows: &[Claimed], results: &[Published]) {
        let Some(views) = &self.views else { return };
        let mut won: Vec<(String, AwardEntry)> = Vec::new();
        for (row, result) in rows.iter().zip(results) {
            if row.topic != TOPIC_SEND_AWARD || *result != Published::Confirmed {
                continue;
            }
            let Ok(env) = decode::<SendAward>(row.message.as_bytes()) else {
                continue;
            };
            let entry = AwardEntry {
                order_id: env.data.order_id,
                award_id: env.data.award_id,
                award_title: env.data.award_title,
                // The record's `award_time` has whole seconds.
                award_time_ms: env.timestamp - env.timestamp.rem_euclid(1000),
                delivered: false,
            };
            won.push((env.data.user_id, entry));
        }
        let batch: Vec<(&str, &AwardEntry)> = won.iter().map(|(u, e)| (u.as_str(), e)).collect();
        if let Err(e) = views.add_awards(&batch).await {
            tracing::warn!(error = %e, "could not record awards in the history view (rebuildable)");
        }
    }

    async fn emit(&self, rows: &[Claimed], results: &[Published]) {
        let Some(stream) = &self.events else { return };
        let at = Utc::now().timestamp_millis();
        let mut events = Vec::with_capacity(rows.len() * 2);
        for (row, result) in rows
            .iter()
            .zip(results)
            .filter(|(r, _)| !INTERNAL_TOPICS.contains(&r.topic.as_str()))
        {
            let event = |state, attempts| TaskEvent {
                cursor: String::new(),
                message_id: row.message_id.clone(),
                user_id: row.user_id.clone(),
                topic: row.topic.clone(),
                state,
                attempts,
                occurred_at_ms: at,
            };
            if row.fresh {
                events.push(event(TaskState::Created, 0));
            }
            let attempts = i32::try_from(row.attempts + 1).unwrap_or(i32::MAX);
            events.push(match result {
                Published::Confirmed => event(TaskState::Published, attempts),
                Published::Failed(_) if row.attempts + 1 >= self.settings.max_attempts => {
                    event(TaskState::Dead, attempts)
                }
                Published::Failed(_) => event(TaskState::Failed, attempts),
            });
        }
        if let Err(e) = stream.append(&events).await {
            tracing::warn!(error = %e, "could not append task-status events (read model; rebuildable)");
        }
    }

    /// The counters.
    pub fn stats(&self) -> Arc<RelayStats> {
        self.stats.clone()
    }

    /// Runs `loops_per_shard` loops per shard until `shutdown` turns true; batches in flight
    /// are finished.
    pub async fn run(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        let per_shard = self.settings.loops_per_shard.max(1);
        let loops: Vec<_> = (0..self.db.shards.len() * per_shard)
            .map(|i| i / per_shard)
            .map(|shard| {
                let relay = self.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move { relay.shard_loop(shard, shutdown).await })
            })
            .collect();
        for l in loops {
            let _ = l.await;
        }
    }

    async fn shard_loop(&self, shard: usize, mut shutdown: watch::Receiver<bool>) {
        let mut error_pause = self.settings.poll_interval;
        while !*shutdown.borrow() {
            let pause = match self.pump(shard).await {
                Ok(n) if n >= self.settings.batch_size => {
                    error_pause = self.settings.poll_interval;
                    continue;
                }
                Ok(_) => {
                    error_pause = self.settings.poll_interval;
                    self.settings.poll_interval
                }
                Err(e) => {
                    tracing::warn!(shard, error = %e, "relay batch failed; retrying");
                    error_pause = (error_pause * 2).min(Duration::from_secs(10));
                    error_pause
                }
            };
            let Some(notify) = self.nudge.waiter(shard) else { return };
            tokio::select! {
                _ = notify.notified() => {}
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Claims, publishes and settles one batch of `shard`; returns the rows claimed.
    ///
    /// # Errors
    /// When the broker or the shard cannot be reached (nothing is marked in that case).
    #[tracing::instrument(name = "relay.batch", skip(self), fields(rows))]
    pub async fn pump(&self, shard: usize) -> anyhow::Result<u64> {
        // Reach the broker before claiming: while it is down, rows stay pending untouched.
        self.publisher.channel().await?;
        let db = self
            .db
            .shards
            .get(shard)
            .ok_or_else(|| anyhow::anyhow!("no shard {shard}"))?;
        // READ COMMITTED, as every connection of `Databases`.
        let tx = db.begin().await?;
        let rows = Self::claim(&tx, self.settings.batch_size).await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        tracing::Span::current().record("rows", rows.len());
        // Projection-only events are applied to the read model, not sent to the broker.
        let mut results: Vec<Option<Published>> = Vec::with_capacity(rows.len());
        for r in &rows {
            results.push(if INTERNAL_TOPICS.contains(&r.topic.as_str()) {
                Some(self.apply_internal(r).await)
            } else {
                None
            });
        }
        let outgoing: Vec<Outgoing<'_>> = rows
            .iter()
            .zip(&results)
            .filter(|(_, done)| done.is_none())
            .map(|(r, _)| Outgoing {
                topic: &r.topic,
                message_id: &r.message_id,
                payload: r.message.as_bytes(),
            })
            .collect();
        let mut published = self.publisher.publish_all(&outgoing).await?.into_iter();
        let results: Vec<Published> = results
            .into_iter()
            .map(|done| done.unwrap_or_else(|| published.next().unwrap_or(Published::Failed("no confirm".into()))))
            .collect();
        self.observe(shard, &rows, &results, false);
        let now = Utc::now().naive_utc();
        let confirmed: Vec<u64> = rows
            .iter()
            .zip(&results)
            .filter(|(_, p)| **p == Published::Confirmed)
            .map(|(r, _)| r.id)
            .collect();
        if !confirmed.is_empty() {
            let q = Query::update()
                .table(c("task"))
                .value(c("state"), "completed")
                .value(c("published_at"), now)
                .value(c("last_error"), Option::<String>::None)
                .value(c("attempts"), Expr::col(c("attempts")).add(1))
                .and_where(Expr::col(c("id")).is_in(confirmed.clone()))
                .to_owned();
            tx.execute(tx.get_database_backend().build(&q)).await?;
        }
        for (row, result) in rows.iter().zip(&results) {
            if let Published::Failed(reason) = result {
                self.settle_failure(&tx, row, reason, now).await?;
            }
        }
        tx.commit().await?;
        self.stats
            .published
            .fetch_add(confirmed.len() as u64, Ordering::Relaxed);
        self.emit(&rows, &results).await;
        self.record_awards(&rows, &results).await;
        self.observe(shard, &rows, &results, true);
        Ok(rows.len() as u64)
    }

    async fn claim(tx: &impl ConnectionTrait, limit: u64) -> Result<Vec<Claimed>, DbErr> {
        let now = Utc::now().naive_utc();
        let q = Query::select()
            .columns([
                c("id"),
                c("user_id"),
                c("topic"),
                c("message_id"),
                c("message"),
                c("attempts"),
                c("state"),
            ])
            .from(c("task"))
            .and_where(Expr::col(c("state")).is_in(["create", "fail"]))
            .cond_where(
                Cond::any()
                    .add(Expr::col(c("next_attempt_at")).is_null())
                    .add(Expr::col(c("next_attempt_at")).lte(now)),
            )
            .order_by(c("id"), Order::Asc)
            .limit(limit)
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .to_owned();
        let rows = tx.query_all(tx.get_database_backend().build(&q)).await?;
        rows.into_iter()
            .map(|r| {
                let id: u64 = r.try_get("", "id")?;
                let attempts: i32 = r.try_get("", "attempts")?;
                Ok(Claimed {
                    id,
                    user_id: r.try_get("", "user_id")?,
                    fresh: attempts == 0 && r.try_get::<String>("", "state")? == "create",
                    topic: r.try_get("", "topic")?,
                    message_id: r
                        .try_get::<Option<String>>("", "message_id")?
                        .unwrap_or_else(|| format!("task-{id}")),
                    message: r.try_get("", "message")?,
                    attempts: u32::try_from(attempts).unwrap_or(0),
                })
            })
            .collect()
    }

    async fn settle_failure(
        &self,
        tx: &impl ConnectionTrait,
        row: &Claimed,
        reason: &str,
        now: chrono::NaiveDateTime,
    ) -> Result<(), DbErr> {
        let attempts = row.attempts + 1;
        let dead = attempts >= self.settings.max_attempts;
        let backoff = self
            .settings
            .backoff_base
            .saturating_mul(1 << (attempts - 1).min(20))
            .min(self.settings.backoff_max);
        let next = now + chrono::Duration::from_std(backoff).unwrap_or(chrono::Duration::seconds(1));
        let reason: String = reason.chars().take(500).collect();
        if dead {
            tracing::error!(task.message_id = %row.message_id, task.topic = %row.topic, attempts, error = %reason, "outbox row dead-lettered");
            self.stats.dead.fetch_add(1, Ordering::Relaxed);
        } else {
            tracing::warn!(task.message_id = %row.message_id, task.topic = %row.topic, attempts, error = %reason, "publish failed; will retry");
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
        }
        let q = Query::update()
            .table(c("task"))
            .value(c("state"), if dead { "dead" } else { "fail" })
            .value(c("attempts"), attempts)
            .value(c("next_attempt_at"), next)
            .value(c("last_error"), reason)
            .and_where(Expr::col(c("id")).eq(row.id))
            .to_owned();
        tx.execute(tx.get_database_backend().build(&q)).await.map(|_| ())
    }
}
