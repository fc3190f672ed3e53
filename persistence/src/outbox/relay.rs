//! The outbox relay: committed `task` rows → RabbitMQ, with publisher confirms.
//!
//! Per shard, `loops_per_shard` loops each run batches of three short steps, with **no
//! transaction open while the broker is waited for**:
//!
//! 1. **claim and lease**: one transaction takes due rows ([`store::claim`]: `FOR UPDATE SKIP
//!    LOCKED`, so several loops and relay processes share the work) and leases them
//!    ([`store::lease`]: `next_attempt_at` = now + `lease`, so no other claim takes them), then
//!    commits;
//! 2. **deliver**: projection-only rows are applied to the read model at once — also while the
//!    broker is down; the others are published as persistent, mandatory messages and their
//!    confirms awaited (bounded by the publisher's confirm timeout). When the broker cannot be
//!    reached at all, they are deferred ([`store::defer`]) without counting an attempt;
//! 3. **settle**: the batch's states are announced on the status stream (what the broker
//!    confirmed is published, whatever happens next), then a second short transaction marks
//!    confirmed rows `completed` (retried with backoff while the rows are still leased when
//!    the shard does not answer, so a short outage does not publish them again); a returned,
//!    nacked or unconfirmed message counts an attempt and is retried after an exponential
//!    backoff, and after `max_attempts` it becomes `dead` (visible, replayable).
//!
//! The claim and the settle touch disjoint row sets of other loops (leased rows are not due),
//! and neither waits on the broker, so loops cannot deadlock each other through a confirm
//! wait. Each batch answers a [`BatchOutcome`]; its read-side effects belong to the
//! [`Projector`]. A batch whose confirms take longer than two seconds is logged as a stall.
//!
//! Latency: the API nudges the shard's loop right after a commit; polling every
//! `poll_interval` is the fallback after crashes and for other processes' commits. A relay
//! that dies between lease and settle leaves rows that are due again when their lease ends:
//! delivery is at-least-once and consumers are idempotent.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use domain::outbox::INTERNAL_TOPICS;
use domain::ports::Clock;
use sea_orm::{ConnectionTrait, DbErr};
use tokio::sync::{Notify, watch};

use super::projector::Projector;
use super::store::{self, Claimed};
use crate::SystemClock;
use crate::mysql::db::Databases;
use crate::rabbit::publisher::{Outgoing, Published, Publisher};
use crate::redis::{TaskStream, UserViews};

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
    /// How long claimed rows are leased to the loop that claimed them (longer than the
    /// publisher's confirm timeout): a loop that dies leaves them due again after this.
    pub lease: Duration,
    /// When the broker cannot be reached, its rows are deferred by this much (no attempt is
    /// counted).
    pub defer: Duration,
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
            lease: Duration::from_secs(30),
            defer: Duration::from_secs(2),
        }
    }
}

/// Wakes the relay loops right after a commit (in-process).
#[derive(Debug)]
pub struct RelayNudge {
    shards: Vec<Notify>,
    router: crate::mysql::router::ShardRouter,
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
    /// Batches that failed (and were retried after a pause).
    pub batch_errors: AtomicU64,
    /// Of those, the ones InnoDB chose as a deadlock victim (error 1213).
    pub deadlocks: AtomicU64,
    /// Settles of published batches retried because the shard did not answer.
    pub settle_retries: AtomicU64,
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
    projector: Projector,
    db: Databases,
    publisher: Arc<Publisher>,
    settings: RelaySettings,
    nudge: Arc<RelayNudge>,
    stats: Arc<RelayStats>,
    metrics: Option<Arc<crate::metrics::RelayMetrics>>,
}

/// What one batch did, so the loop decides without guessing from a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOutcome {
    /// No row was due.
    Idle,
    /// A batch was claimed and settled.
    Handled {
        /// Rows claimed.
        claimed: usize,
        /// Rows confirmed by the broker (or applied to the read model) and marked published.
        published: usize,
        /// Rows that failed and will be retried.
        failed: usize,
        /// Rows that failed for the last time and are now dead.
        dead: usize,
        /// Rows put back without an attempt because the broker could not be reached.
        deferred: usize,
        /// The batch was full: more rows may be due right away.
        more: bool,
    },
}

impl Relay {
    /// A relay publishing through `publisher`, woken by `nudge`.
    pub fn new(db: Databases, publisher: Arc<Publisher>, settings: RelaySettings, nudge: Arc<RelayNudge>) -> Self {
        let max_attempts = settings.max_attempts;
        Self {
            db,
            publisher,
            settings,
            nudge,
            stats: Arc::default(),
            metrics: None,
            projector: Projector {
                events: None,
                views: None,
                max_attempts,
                clock: Arc::new(SystemClock),
                metrics: None,
            },
            observer: None,
        }
    }

    /// Also counts what it publishes per shard in `relay` and the read-model lag of what it
    /// projects in `projection` (Prometheus, [`crate::metrics`]).
    pub fn with_metrics(
        mut self,
        relay: Arc<crate::metrics::RelayMetrics>,
        projection: Arc<crate::metrics::ProjectionMetrics>,
    ) -> Self {
        self.metrics = Some(relay);
        self.projector.metrics = Some(projection);
        self
    }

    fn counters(&self, shard: usize) -> Option<&crate::metrics::RelayShardCounters> {
        self.metrics.as_ref().and_then(|m| m.shard(shard))
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
        self.projector.events = Some(events);
        self
    }

    /// Takes the time of claims, settlements and announcements from `clock` (the system
    /// clock by default).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.projector.clock = clock;
        self
    }

    /// Also maintains the user read models (accounts from projection-only events, award
    /// history from `send_award`).
    pub fn with_views(mut self, views: UserViews) -> Self {
        self.projector.views = Some(views);
        self
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
                Ok(BatchOutcome::Handled { more: true, .. }) => {
                    error_pause = self.settings.poll_interval;
                    continue;
                }
                Ok(_) => {
                    error_pause = self.settings.poll_interval;
                    self.settings.poll_interval
                }
                Err(e) => {
                    self.stats.batch_errors.fetch_add(1, Ordering::Relaxed);
                    if let Some(c) = self.counters(shard) {
                        c.batch_errors.inc();
                    }
                    let deadlock =
                        e.downcast_ref::<DbErr>().and_then(crate::mysql::db::mysql_error_number) == Some(1213);
                    if deadlock {
                        self.stats.deadlocks.fetch_add(1, Ordering::Relaxed);
                    }
                    tracing::warn!(
                        shard,
                        deadlock,
                        error = format!("{e:#}"),
                        "relay batch failed; retrying"
                    );
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

    /// Claims, publishes and settles one batch of `shard`.
    ///
    /// # Errors
    /// When the broker or the shard cannot be reached (nothing is marked in that case).
    #[tracing::instrument(name = "relay.batch", skip(self), fields(rows))]
    pub async fn pump(&self, shard: usize) -> anyhow::Result<BatchOutcome> {
        let db = self
            .db
            .shards
            .get(shard)
            .ok_or_else(|| anyhow::anyhow!("no shard {shard}"))?;
        // Whether the broker answers decides what happens to its rows, not whether the
        // projection-only rows are applied.
        let broker = self.publisher.channel().await;
        // 1. Claim and lease, in one short transaction (READ COMMITTED, as every connection of
        //    `Databases`).
        let now = self.projector.clock.now().naive_utc();
        let tx = db.begin().await?;
        let rows = store::claim(&tx, self.settings.batch_size, now).await?;
        if rows.is_empty() {
            tx.commit().await?;
            if let Err(e) = broker {
                return Err(anyhow::anyhow!("broker unreachable: {e}"));
            }
            return Ok(BatchOutcome::Idle);
        }
        let ids: Vec<u64> = rows.iter().map(|r| r.id).collect();
        let lease = chrono::Duration::from_std(self.settings.lease).unwrap_or(chrono::Duration::seconds(30));
        store::lease(&tx, &ids, now + lease).await?;
        tx.commit().await?;
        tracing::Span::current().record("rows", rows.len());

        // 2. Deliver: projection-only rows to the read model, the others to the broker.
        let mut results: Vec<Option<Published>> = Vec::with_capacity(rows.len());
        for r in &rows {
            results.push(if INTERNAL_TOPICS.contains(&r.topic.as_str()) {
                Some(self.projector.apply_internal(r).await)
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
                traceparent: r.traceparent.as_deref(),
            })
            .collect();
        let mut deferred: Vec<u64> = Vec::new();
        let sent = match (&broker, outgoing.is_empty()) {
            (_, true) => Ok(Vec::new()),
            (Err(e), false) => Err(format!("{e}")),
            (Ok(_), false) => {
                let started = std::time::Instant::now();
                let sent = self.publisher.publish_all(&outgoing).await;
                let took = started.elapsed();
                if took > Duration::from_secs(2) {
                    tracing::warn!(
                        shard,
                        rows = outgoing.len(),
                        took_ms = took.as_millis() as u64,
                        "relay stalled waiting for broker confirms"
                    );
                }
                sent.map_err(|e| format!("{e}"))
            }
        };
        let results: Vec<Published> = match sent {
            Ok(published) => {
                let mut published = published.into_iter();
                results
                    .into_iter()
                    .map(|done| {
                        done.unwrap_or_else(|| published.next().unwrap_or(Published::Failed("no confirm".into())))
                    })
                    .collect()
            }
            Err(reason) => {
                // The broker could not be asked: put its rows back, no attempt counted.
                deferred = rows
                    .iter()
                    .zip(&results)
                    .filter(|(_, done)| done.is_none())
                    .map(|(r, _)| r.id)
                    .collect();
                tracing::warn!(shard, rows = deferred.len(), error = %reason, "broker unreachable: rows deferred, projection-only rows applied");
                results
                    .into_iter()
                    .map(|done| done.unwrap_or(Published::Deferred))
                    .collect()
            }
        };
        self.observe(shard, &rows, &results, false);
        // What the broker confirmed is published whatever the settle below does: announce it
        // now, so the status stream shows PUBLISHED before a fast consumer's DELIVERED.
        self.projector.announce(&rows, &results).await;

        // 3. Settle, in a second short transaction.
        let confirmed: Vec<u64> = rows
            .iter()
            .zip(&results)
            .filter(|(_, p)| **p == Published::Confirmed)
            .map(|(r, _)| r.id)
            .collect();
        // What was published stays leased to this loop: when the shard does not answer the
        // settle (an outage shorter than the lease), it is retried here rather than left for the
        // lease to end and be published again.
        let give_up = tokio::time::Instant::now() + self.settings.lease.saturating_sub(self.settings.lease / 5);
        let mut pause = Duration::from_millis(200);
        let (failed, dead) = loop {
            match self.settle(db, &rows, &results, &confirmed, &deferred, now).await {
                Ok(counts) => break counts,
                Err(e) if tokio::time::Instant::now() + pause < give_up => {
                    self.stats.settle_retries.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(shard, rows = rows.len(), error = %e, retry_in_ms = pause.as_millis() as u64, "relay settle failed; retrying while the rows are leased");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e.into()),
            }
        };
        self.stats.failed.fetch_add(failed as u64, Ordering::Relaxed);
        self.stats.dead.fetch_add(dead as u64, Ordering::Relaxed);
        self.stats
            .published
            .fetch_add(confirmed.len() as u64, Ordering::Relaxed);
        if let Some(c) = self.counters(shard) {
            c.published.inc_by(confirmed.len() as u64);
            c.failed.inc_by(failed as u64);
            c.dead.inc_by(dead as u64);
            c.deferred.inc_by(deferred.len() as u64);
        }
        self.projector.record_awards(&rows, &results).await;
        self.observe(shard, &rows, &results, true);
        Ok(BatchOutcome::Handled {
            claimed: rows.len(),
            published: confirmed.len(),
            failed,
            dead,
            deferred: deferred.len(),
            more: rows.len() as u64 >= self.settings.batch_size && deferred.is_empty(),
        })
    }

    /// Settles a batch in one short transaction: confirmed rows completed, deferred rows due
    /// later, failed rows counted (and dead after `max_attempts`); the failed and dead counts.
    async fn settle(
        &self,
        db: &crate::mysql::db::Db,
        rows: &[Claimed],
        results: &[Published],
        confirmed: &[u64],
        deferred: &[u64],
        now: chrono::NaiveDateTime,
    ) -> Result<(usize, usize), DbErr> {
        let tx = db.begin().await?;
        store::mark_published(&tx, confirmed, now).await?;
        let defer_until = now + chrono::Duration::from_std(self.settings.defer).unwrap_or(chrono::Duration::seconds(2));
        store::defer(&tx, deferred, defer_until).await?;
        let (mut failed, mut dead) = (0, 0);
        for (row, result) in rows.iter().zip(results) {
            if let Published::Failed(reason) = result {
                if self.settle_failure(&tx, row, reason, now).await? {
                    dead += 1;
                } else {
                    failed += 1;
                }
            }
        }
        tx.commit().await?;
        Ok((failed, dead))
    }

    /// Counts a failed attempt of `row`, with a backoff before the next; returns whether the
    /// row is now dead.
    async fn settle_failure(
        &self,
        tx: &impl ConnectionTrait,
        row: &Claimed,
        reason: &str,
        now: chrono::NaiveDateTime,
    ) -> Result<bool, DbErr> {
        let attempts = row.attempts + 1;
        let dead = attempts >= self.settings.max_attempts;
        let backoff = self
            .settings
            .backoff_base
            .saturating_mul(1 << (attempts - 1).min(20))
            .min(self.settings.backoff_max);
        let next = now + chrono::Duration::from_std(backoff).unwrap_or(chrono::Duration::seconds(1));
        if dead {
            tracing::error!(task.message_id = %row.message_id, task.topic = %row.topic, attempts, error = %reason, "outbox row dead-lettered");
        } else {
            tracing::warn!(task.message_id = %row.message_id, task.topic = %row.topic, attempts, error = %reason, "publish failed; will retry");
        }
        store::mark_failed(tx, row.id, attempts, dead, next, reason).await?;
        Ok(dead)
    }
}
