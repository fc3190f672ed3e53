//! Shared by the relay and read-side benchmarks: a paced outbox writer (commits at a fixed
//! rate, as the API's transactions would) and a recorder of when the relay handled each row,
//! from which the lag of every committed row is computed.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use domain::ids::AwardId;
use domain::outbox::{
    AccountSnapshot, OutboxMessage, PeriodSnapshot, SendAward, TOPIC_ACCOUNT_CHANGED, TOPIC_SEND_AWARD,
};
use persistence::outbox::relay::{RelayObserver, RelayedRow};
use sea_orm::sqlx::{self, mysql::MySqlPool};
use sea_orm::{DbErr, SqlxMySqlConnector};

use crate::env::{ACTIVITY_ID, BenchUser};

/// What one paced commit writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// One `send_award` row (an event for the broker).
    SendAward,
    /// The outbox rows of a draw, in one transaction: `send_award` and the
    /// `activity_account_changed` snapshot (a projection-only event).
    Draw,
}

/// The outbox rows of event `i` of a run tagged `tag` for `user`.
fn rows(tag: &str, i: u64, user: &str, shape: Shape) -> Vec<OutboxMessage> {
    let now = Utc::now().timestamp_millis();
    let order_id = format!("{tag}{i}");
    let send = OutboxMessage::new(
        user,
        TOPIC_SEND_AWARD,
        format!("{tag}{i}a").into(),
        now,
        &SendAward {
            award_config: None,
            award_id: AwardId::new(101),
            award_title: "随机积分".into(),
            order_id,
            user_id: user.to_owned(),
        },
    );
    if shape == Shape::SendAward {
        return vec![send];
    }
    let used = i32::try_from(i % 1_000).unwrap_or(0);
    let period = |p: &str| PeriodSnapshot {
        period: p.to_owned(),
        count: 1_000_000,
        surplus: 1_000_000 - used,
    };
    let snapshot = AccountSnapshot {
        activity_id: ACTIVITY_ID,
        day: Some(period(&Utc::now().format("%Y-%m-%d").to_string())),
        day_count: 1_000_000,
        month: Some(period(&Utc::now().format("%Y-%m").to_string())),
        month_count: 1_000_000,
        total_count: 1_000_000,
        total_count_surplus: 1_000_000 - used,
        user_id: user.to_owned(),
        // Increasing with `i`, so every snapshot of a user is newer than the last.
        version: i64::try_from(i).unwrap_or(i64::MAX) + 1,
    };
    vec![
        send,
        OutboxMessage::new(user, TOPIC_ACCOUNT_CHANGED, format!("{tag}{i}c").into(), now, &snapshot),
    ]
}

/// Inserts `rows` into `task` with the application's outbox statement, in one statement (one
/// transaction with autocommit).
async fn insert(pool: &MySqlPool, rows: &[OutboxMessage]) -> Result<(), DbErr> {
    let db = SqlxMySqlConnector::from_sqlx_mysql_pool(pool.clone());
    persistence::outbox::store::insert_outbox(&db, rows).await
}

/// Commit instants of every row a paced run wrote: message id → (instant, measured).
#[derive(Debug, Default)]
pub(crate) struct Commits {
    at: Mutex<HashMap<String, (Instant, bool)>>,
}

impl Commits {
    /// Rows committed so far.
    pub(crate) fn len(&self) -> u64 {
        self.at.lock().map(|m| m.len() as u64).unwrap_or(0)
    }
}

/// What a paced run did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Written {
    /// Transactions committed in the measured window.
    pub(crate) measured: u64,
    /// Failed inserts.
    pub(crate) errors: u64,
    /// Measured commits per second.
    pub(crate) rate: f64,
}

/// A paced run: transactions scheduled every `1 / rate` seconds for `warmup + duration`,
/// issued by `writers` concurrent connections (so a slow commit does not delay the schedule).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Paced {
    /// Transactions per second.
    pub(crate) rate: f64,
    /// Unmeasured seconds first.
    pub(crate) warmup: Duration,
    /// Measured seconds.
    pub(crate) duration: Duration,
    /// Concurrent writers.
    pub(crate) writers: usize,
    /// What each transaction writes.
    pub(crate) shape: Shape,
}

impl Paced {
    /// Runs the schedule, recording each commit in `commits` and calling `nudge(shard)` after
    /// it (as the API nudges the relay after its commits).
    pub(crate) async fn run(
        self,
        tag: &str,
        pools: &[MySqlPool],
        users: &[BenchUser],
        commits: &Commits,
        nudge: &(dyn Fn(usize) + Sync),
    ) -> anyhow::Result<Written> {
        let total = (self.rate * (self.warmup + self.duration).as_secs_f64()).round() as u64;
        let first_measured = (self.rate * self.warmup.as_secs_f64()).round() as u64;
        let period = Duration::from_secs_f64(1.0 / self.rate);
        let next = AtomicU64::new(0);
        let errors = AtomicU64::new(0);
        let start = Instant::now() + Duration::from_millis(20);
        let writer = || async {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return;
                }
                tokio::time::sleep_until((start + period.mul_f64(i as f64)).into()).await;
                let Some(user) = users.get((i as usize) % users.len()) else {
                    return;
                };
                let Some(pool) = pools.get(user.route.db) else { return };
                let rows = rows(tag, i, &user.id, self.shape);
                match insert(pool, &rows).await {
                    Ok(()) => {
                        let at = Instant::now();
                        if let Ok(mut map) = commits.at.lock() {
                            for r in &rows {
                                map.insert(r.message_id.clone().into(), (at, i >= first_measured));
                            }
                        }
                        nudge(user.route.db);
                    }
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("bench: outbox insert failed: {e}");
                        }
                    }
                }
            }
        };
        futures::future::join_all((0..self.writers.max(1)).map(|_| writer())).await;
        let measured = commits
            .at
            .lock()
            .map(|m| m.values().filter(|(_, measured)| *measured).count() as u64)
            .unwrap_or(0)
            / if self.shape == Shape::Draw { 2 } else { 1 };
        Ok(Written {
            measured,
            errors: errors.load(Ordering::Relaxed),
            rate: measured as f64 / self.duration.as_secs_f64(),
        })
    }
}

/// Inserts `n` `send_award` rows spread over the users (so over every shard), in multi-row
/// statements; returns the rows per shard.
pub(crate) async fn backlog(pools: &[MySqlPool], users: &[BenchUser], n: u64, tag: &str) -> anyhow::Result<Vec<u64>> {
    let mut per_shard: Vec<Vec<OutboxMessage>> = vec![Vec::new(); pools.len()];
    let mut counts = vec![0_u64; pools.len()];
    for i in 0..n {
        let user = users.get((i as usize) % users.len()).context("no users")?;
        let (Some(batch), Some(count)) = (per_shard.get_mut(user.route.db), counts.get_mut(user.route.db)) else {
            anyhow::bail!("route outside the shards");
        };
        batch.extend(rows(tag, i, &user.id, Shape::SendAward));
        *count += 1;
        if batch.len() >= 1_000 {
            insert(pools.get(user.route.db).context("shard")?, batch).await?;
            batch.clear();
        }
    }
    for (pool, batch) in pools.iter().zip(&per_shard) {
        if !batch.is_empty() {
            insert(pool, batch).await?;
        }
    }
    Ok(counts)
}

/// Empties the outbox of every shard between runs.
pub(crate) async fn truncate(pools: &[MySqlPool]) -> anyhow::Result<()> {
    for p in pools {
        sqlx::query("TRUNCATE TABLE task").execute(p).await?;
    }
    Ok(())
}

/// One row the relay handled.
#[derive(Debug)]
struct Handled {
    message_id: String,
    topic: String,
    confirmed: bool,
    at: Instant,
}

/// A [`RelayObserver`] recording when each row was confirmed and settled.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    confirmed: Mutex<Vec<Handled>>,
    settled: Mutex<Vec<Handled>>,
    settled_ok: AtomicU64,
}

fn record(into: &Mutex<Vec<Handled>>, rows: &[RelayedRow<'_>]) {
    let at = Instant::now();
    if let Ok(mut v) = into.lock() {
        v.extend(rows.iter().map(|r| Handled {
            message_id: r.message_id.to_owned(),
            topic: r.topic.to_owned(),
            confirmed: r.confirmed,
            at,
        }));
    }
}

impl RelayObserver for Recorder {
    fn confirmed(&self, _shard: usize, rows: &[RelayedRow<'_>]) {
        record(&self.confirmed, rows);
    }

    fn settled(&self, _shard: usize, rows: &[RelayedRow<'_>]) {
        record(&self.settled, rows);
        let ok = rows.iter().filter(|r| r.confirmed).count() as u64;
        self.settled_ok.fetch_add(ok, Ordering::Relaxed);
    }
}

/// Lag quantiles of one topic, in milliseconds.
#[derive(Debug, Clone, Default)]
pub(crate) struct Lags {
    /// Sorted lags in microseconds.
    us: Vec<u64>,
}

impl Lags {
    /// Rows measured.
    pub(crate) fn count(&self) -> usize {
        self.us.len()
    }

    /// The `p`-quantile (nearest rank) in milliseconds.
    pub(crate) fn ms(&self, p: f64) -> f64 {
        let n = self.us.len();
        if n == 0 {
            return f64::NAN;
        }
        let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
        self.us.get(rank - 1).copied().unwrap_or(0) as f64 / 1_000.0
    }

    /// The largest, in milliseconds.
    pub(crate) fn max_ms(&self) -> f64 {
        self.us.last().copied().unwrap_or(0) as f64 / 1_000.0
    }
}

/// The lags of one run, per topic.
#[derive(Debug, Clone, Default)]
pub(crate) struct LagReport {
    /// Commit → broker confirm (or applied, for projection-only topics), by topic.
    pub(crate) confirmed: HashMap<String, Lags>,
    /// Commit → rows marked and read models written, by topic.
    pub(crate) settled: HashMap<String, Lags>,
    /// Measured rows never settled as confirmed.
    pub(crate) missing: u64,
    /// Settled rows that were not confirmed (failed attempts).
    pub(crate) failures: u64,
    /// Measured rows confirmed by the broker more than once (published by two batches).
    pub(crate) duplicates: u64,
}

impl Recorder {
    /// Rows settled as confirmed so far.
    pub(crate) fn settled_ok(&self) -> u64 {
        self.settled_ok.load(Ordering::Relaxed)
    }

    /// Joins the recorded instants with the commits.
    pub(crate) fn lags(&self, commits: &Commits) -> LagReport {
        let mut out = LagReport::default();
        let commits = match commits.at.lock() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        let join = |handled: &Mutex<Vec<Handled>>, into: &mut HashMap<String, Lags>| -> (u64, u64, HashSet<String>) {
            let (mut failures, mut duplicates) = (0, 0);
            let mut ok = HashSet::new();
            let handled = match handled.lock() {
                Ok(h) => h,
                Err(p) => p.into_inner(),
            };
            for h in handled.iter() {
                if !h.confirmed {
                    failures += 1;
                    continue;
                }
                if let Some((at, true)) = commits.get(&h.message_id) {
                    if !ok.insert(h.message_id.clone()) {
                        duplicates += 1;
                        continue;
                    }
                    let us = h.at.saturating_duration_since(*at).as_micros();
                    into.entry(h.topic.clone())
                        .or_default()
                        .us
                        .push(u64::try_from(us).unwrap_or(u64::MAX));
                }
            }
            (failures, duplicates, ok)
        };
        let (_, duplicates, _) = join(&self.confirmed, &mut out.confirmed);
        let (failures, _, ok) = join(&self.settled, &mut out.settled);
        out.failures = failures;
        out.duplicates = duplicates;
        out.missing = commits
            .iter()
            .filter(|(id, (_, measured))| *measured && !ok.contains(*id))
            .count() as u64;
        for l in out.confirmed.values_mut().chain(out.settled.values_mut()) {
            l.us.sort_unstable();
        }
        out
    }
}

/// Waits until `recorder` has settled `n` confirmed rows or `limit` passes; returns the time
/// from `since` to the moment the count was reached.
pub(crate) async fn wait_settled(
    recorder: &Recorder,
    n: u64,
    since: Instant,
    limit: Duration,
) -> anyhow::Result<Duration> {
    loop {
        if recorder.settled_ok() >= n {
            return Ok(since.elapsed());
        }
        if since.elapsed() > limit {
            anyhow::bail!(
                "only {} of {n} rows settled within {} s",
                recorder.settled_ok(),
                limit.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
