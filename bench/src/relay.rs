//! `bench relay`: the outbox relay against the real MariaDB, Redis and RabbitMQ.
//!
//! Two measurements, each run first by a raw baseline and then by the relay `serve` runs:
//!
//! - **lag**: writers commit `send_award` outbox rows at a fixed rate (one transaction each,
//!   then a nudge, as the API does) and the relay publishes them; the lag of each row is the
//!   time from its commit to the broker's confirm, and to the end of its batch (rows marked,
//!   read models written);
//! - **drain**: a backlog of rows spread over every shard is committed first, then the relay
//!   starts; the figure is rows per second until the last is confirmed and marked.
//!
//! The raw baseline does the same claim / publish / confirm / mark cycle with sqlx and lapin
//! directly: no SeaORM or sea-query, no task-status stream or award-history writes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use clap::Args;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueuePurgeOptions};
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use persistence::Databases;
use persistence::outbox::relay::{RelayNudge, RelayObserver, RelayedRow};
use persistence::rabbit::Topology;
use sea_orm::sqlx::mysql::MySqlPool;
use sea_orm::sqlx::{self, MySql, QueryBuilder, Row as _};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::env::World;
use crate::outbox::{self, Commits, LagReport, Paced, Recorder, Shape, Written};
use api::settings::Settings;

/// Options of `bench relay`.
#[derive(Debug, Clone, Args)]
pub struct RelayBenchArgs {
    /// Outbox commits per second during the lag measurement.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Measured seconds of the lag measurement.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Unmeasured seconds before it.
    #[arg(long, default_value_t = 2)]
    pub warmup_secs: u64,
    /// Concurrent writers committing the paced rows.
    #[arg(long, default_value_t = 8)]
    pub writers: usize,
    /// Rows in the backlog of the drain measurement.
    #[arg(long, default_value_t = 100_000)]
    pub backlog: u64,
    /// Users the rows belong to (spread over every shard).
    #[arg(long, default_value_t = 2000)]
    pub users: usize,
    /// Keep the benchmark databases, Redis keys and queues afterwards.
    #[arg(long)]
    pub keep: bool,
}

/// A relay under measurement.
enum Running {
    Ours {
        nudge: Arc<RelayNudge>,
        stop: watch::Sender<bool>,
        task: JoinHandle<()>,
    },
    Raw {
        relay: Arc<RawRelay>,
        stop: watch::Sender<bool>,
        tasks: Vec<JoinHandle<()>>,
    },
}

impl Running {
    fn nudge(&self, shard: usize) {
        match self {
            Running::Ours { nudge, .. } => nudge.nudge(shard),
            Running::Raw { relay, .. } => relay.nudge(shard),
        }
    }

    /// Stops the loops (each finishes its batch in flight).
    async fn stop(self) {
        match self {
            Running::Ours { stop, task, .. } => {
                let _ = stop.send(true);
                let _ = task.await;
            }
            Running::Raw { relay, stop, tasks } => {
                let _ = stop.send(true);
                for t in tasks {
                    let _ = t.await;
                }
                relay.close().await;
            }
        }
    }
}

/// Which relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `RawRelay`: sqlx + lapin.
    Raw,
    /// The production relay (`workers::build_relay`).
    Ours,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Raw => "raw",
            Mode::Ours => "relay",
        }
    }
}

/// The stores a relay needs.
pub(crate) struct Stores {
    pub(crate) db: Databases,
    pub(crate) redis: persistence::redis::Connection,
    pub(crate) pools: Vec<MySqlPool>,
}

impl Stores {
    pub(crate) async fn open(world: &World, writers: usize) -> anyhow::Result<Self> {
        let settings = &world.settings;
        Ok(Self {
            db: Databases::connect(&settings.database_settings()).await?,
            redis: persistence::redis::connect(&settings.redis.url).await?,
            pools: world
                .shard_pools(u32::try_from(writers).unwrap_or(u32::MAX).saturating_add(2))
                .await?,
        })
    }
}

/// Starts the relay of `mode`, reporting to `recorder`.
pub(crate) async fn start(
    mode: Mode,
    settings: &Settings,
    stores: &Stores,
    recorder: Arc<Recorder>,
) -> anyhow::Result<RunningRelay> {
    let (stop, rx) = watch::channel(false);
    Ok(RunningRelay(match mode {
        Mode::Ours => {
            let nudge = Arc::new(RelayNudge::new(&stores.db));
            let relay =
                api::workers::build_relay(settings, &stores.db, &stores.redis, nudge.clone()).with_observer(recorder);
            let task = tokio::spawn(Arc::new(relay).run(rx));
            Running::Ours { nudge, stop, task }
        }
        Mode::Raw => {
            let relay = Arc::new(RawRelay::connect(settings, recorder).await?);
            // As many loops per shard as the production relay runs.
            let per_shard = settings.relay.relay_settings().loops_per_shard.max(1);
            let tasks = (0..relay.pools.len() * per_shard)
                .map(|i| tokio::spawn(relay.clone().shard_loop(i / per_shard, rx.clone())))
                .collect();
            Running::Raw { relay, stop, tasks }
        }
    }))
}

/// A started relay: nudge it after commits, stop it at the end.
pub(crate) struct RunningRelay(Running);

impl RunningRelay {
    /// Wakes the loop of `shard`.
    pub(crate) fn nudge(&self, shard: usize) {
        self.0.nudge(shard);
    }

    /// Stops it after its batch in flight.
    pub(crate) async fn stop(self) {
        self.0.stop().await;
    }
}

/// The result of one lag run.
struct LagRun {
    mode: Mode,
    written: Written,
    lags: LagReport,
    /// Rows marked `completed` more than once (claimed by two batches).
    twice: u64,
}

/// Rows of every shard whose `attempts` went above 1: published by more than one batch.
async fn marked_twice(pools: &[MySqlPool]) -> anyhow::Result<u64> {
    let mut n = 0;
    for p in pools {
        let c: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM task WHERE attempts > 1")
            .fetch_one(p)
            .await?;
        n += u64::try_from(c).unwrap_or(0);
    }
    Ok(n)
}

/// The result of one drain run.
struct DrainRun {
    mode: Mode,
    rows: u64,
    per_shard: Vec<u64>,
    elapsed: Duration,
}

impl DrainRun {
    fn rate(&self) -> f64 {
        self.rows as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs `bench relay`.
///
/// # Errors
/// When the services cannot be reached or a run does not complete.
pub async fn run(settings: Settings, args: RelayBenchArgs) -> anyhow::Result<()> {
    if !(args.rate.is_finite() && args.rate >= 0.001) || args.duration_secs == 0 || args.users == 0 || args.writers == 0
    {
        anyhow::bail!("--rate, --duration-secs, --users and --writers must be positive");
    }
    let (lag, drain) = World::run_in(&settings, args.keep, async |world| measure(world, &args).await).await?;
    print!("{}", render(&args, &lag, &drain));
    Ok(())
}

async fn purge(settings: &Settings) -> anyhow::Result<()> {
    let conn = persistence::rabbit::connect(&settings.rabbitmq.url).await?;
    let ch = conn.create_channel().await?;
    let topology = Topology::new(settings.rabbitmq.queue_prefix.clone());
    topology.declare(&ch).await?;
    for topic in domain::outbox::TOPICS {
        ch.queue_purge(topology.queue(topic).as_str().into(), QueuePurgeOptions::default())
            .await?;
    }
    let _ = conn.close(0, "purged".into()).await;
    Ok(())
}

/// Empties the outbox and the queues between runs.
pub(crate) async fn reset(settings: &Settings, stores: &Stores) -> anyhow::Result<()> {
    outbox::truncate(&stores.pools).await?;
    purge(settings).await
}

async fn measure(world: &World, args: &RelayBenchArgs) -> anyhow::Result<(Vec<LagRun>, Vec<DrainRun>)> {
    let settings = &world.settings;
    let users = world.users(args.users)?;
    let stores = Stores::open(world, args.writers).await?;
    reset(settings, &stores).await?;
    let paced = Paced {
        rate: args.rate,
        warmup: Duration::from_secs(args.warmup_secs),
        duration: Duration::from_secs(args.duration_secs),
        writers: args.writers,
        shape: Shape::SendAward,
    };
    let mut lag = Vec::new();
    for mode in [Mode::Raw, Mode::Ours] {
        eprintln!(
            "bench: {} lag: {} rows/s for {} s (+{} s warm-up)",
            mode.name(),
            args.rate,
            args.duration_secs,
            args.warmup_secs
        );
        let recorder = Arc::new(Recorder::default());
        let relay = start(mode, settings, &stores, recorder.clone()).await?;
        let commits = Commits::default();
        let written = paced
            .run(mode.name(), &stores.pools, &users, &commits, &|s| relay.nudge(s))
            .await;
        // Let the last rows through before stopping (missing ones are reported, not fatal).
        let _ = outbox::wait_settled(&recorder, commits.len(), Instant::now(), Duration::from_secs(5)).await;
        relay.stop().await;
        let written = written?;
        let lags = recorder.lags(&commits);
        let twice = marked_twice(&stores.pools).await?;
        eprintln!(
            "bench: {} lag: {} rows committed ({:.0}/s), p99 to confirm {:.2} ms, {} not delivered",
            mode.name(),
            written.measured,
            written.rate,
            lags.confirmed
                .get(domain::outbox::TOPIC_SEND_AWARD)
                .map_or(f64::NAN, |l| l.ms(0.99)),
            lags.missing
        );
        lag.push(LagRun {
            mode,
            written,
            lags,
            twice,
        });
        reset(settings, &stores).await?;
    }
    let mut drain = Vec::new();
    for mode in [Mode::Raw, Mode::Ours] {
        eprintln!(
            "bench: {} drain: committing a backlog of {} rows",
            mode.name(),
            args.backlog
        );
        let per_shard = outbox::backlog(&stores.pools, &users, args.backlog, mode.name()).await?;
        let recorder = Arc::new(Recorder::default());
        let t0 = Instant::now();
        let relay = start(mode, settings, &stores, recorder.clone()).await?;
        for s in 0..per_shard.len() {
            relay.nudge(s);
        }
        let elapsed = outbox::wait_settled(&recorder, args.backlog, t0, Duration::from_secs(600)).await;
        relay.stop().await;
        let run = DrainRun {
            mode,
            rows: args.backlog,
            per_shard,
            elapsed: elapsed?,
        };
        eprintln!(
            "bench: {} drain: {} rows in {:.2} s = {:.0} rows/s",
            mode.name(),
            run.rows,
            run.elapsed.as_secs_f64(),
            run.rate()
        );
        drain.push(run);
        reset(settings, &stores).await?;
    }
    for p in &stores.pools {
        p.close().await;
    }
    Ok((lag, drain))
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

fn render(args: &RelayBenchArgs, lag: &[LagRun], drain: &[DrainRun]) -> String {
    use std::fmt::Write as _;
    let topic = domain::outbox::TOPIC_SEND_AWARD;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n## bench relay — {} rows/s for {} s, {} writers, backlog {} rows, {} users\n",
        args.rate, args.duration_secs, args.writers, args.backlog, args.users
    );
    let _ = writeln!(out, "Lag from commit (ms):\n");
    let _ = writeln!(
        out,
        "| relay | committed/s | rows | to confirm p50 | p99 | p99.9 | max | to settled p50 | p99 | p99.9 | not delivered | published twice | failed attempts |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in lag {
        let empty = outbox::Lags::default();
        let c = r.lags.confirmed.get(topic).unwrap_or(&empty);
        let s = r.lags.settled.get(topic).unwrap_or(&empty);
        let _ = writeln!(
            out,
            "| {} | {:.0} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} |",
            r.mode.name(),
            r.written.rate,
            c.count(),
            c.ms(0.5),
            c.ms(0.99),
            c.ms(0.999),
            c.max_ms(),
            s.ms(0.5),
            s.ms(0.99),
            s.ms(0.999),
            r.lags.missing,
            r.twice.max(r.lags.duplicates),
            r.lags.failures + r.written.errors
        );
    }
    let _ = writeln!(out, "\nBacklog drain:\n");
    let _ = writeln!(out, "| relay | rows | per shard | seconds | rows/s |");
    let _ = writeln!(out, "|---|---:|---|---:|---:|");
    for d in drain {
        let _ = writeln!(
            out,
            "| {} | {} | {:?} | {:.2} | {:.0} |",
            d.mode.name(),
            d.rows,
            d.per_shard,
            d.elapsed.as_secs_f64(),
            d.rate()
        );
    }
    let p99 = |m: Mode| {
        lag.iter()
            .find(|r| r.mode == m)
            .and_then(|r| r.lags.confirmed.get(topic))
            .map_or(f64::NAN, |l| l.ms(0.99))
    };
    let rate = |m: Mode| drain.iter().find(|d| d.mode == m).map_or(f64::NAN, DrainRun::rate);
    let (ours_p99, raw_p99) = (p99(Mode::Ours), p99(Mode::Raw));
    let (ours_rate, raw_rate) = (rate(Mode::Ours), rate(Mode::Raw));
    let delivered = lag.iter().all(|r| r.lags.missing == 0);
    let once = lag.iter().all(|r| r.twice == 0 && r.lags.duplicates == 0);
    let _ = writeln!(out, "\nVerdict:\n");
    let _ = writeln!(
        out,
        "- lag p99 commit → confirm at {} rows/s: {ours_p99:.2} ms (raw {raw_p99:.2} ms, ratio raw/ours {:.2}); target ≤ 10 ms: {}",
        args.rate,
        raw_p99 / ours_p99,
        verdict(ours_p99 <= 10.0)
    );
    let _ = writeln!(
        out,
        "- drain: {ours_rate:.0} rows/s (raw {raw_rate:.0} rows/s, ratio {:.2}); target ≥ 5 000 rows/s: {}",
        ours_rate / raw_rate,
        verdict(ours_rate >= 5_000.0)
    );
    let _ = writeln!(out, "- every committed row delivered: {}", verdict(delivered));
    let _ = writeln!(out, "- no row published twice: {}", verdict(once));
    out
}

/// The raw baseline: per shard, claim due rows with `FOR UPDATE SKIP LOCKED`, publish them
/// with confirms, mark the confirmed ones `completed`, commit — with sqlx and lapin directly.
pub(crate) struct RawRelay {
    pools: Vec<MySqlPool>,
    conn: Connection,
    channel: Channel,
    topology: Topology,
    batch: i64,
    poll: Duration,
    wake: Vec<Notify>,
    recorder: Arc<Recorder>,
}

impl RawRelay {
    async fn connect(settings: &Settings, recorder: Arc<Recorder>) -> anyhow::Result<Self> {
        let mut pools = Vec::new();
        for url in &settings.database.shard_urls {
            pools.push(
                crate::env::read_committed()
                    .max_connections(u32::try_from(settings.relay.loops_per_shard.clamp(1, 16)).unwrap_or(2) + 1)
                    .connect(url)
                    .await
                    .with_context(|| format!("connecting to {url}"))?,
            );
        }
        let conn = persistence::rabbit::connect(&settings.rabbitmq.url).await?;
        let channel = conn.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        let topology = Topology::new(settings.rabbitmq.queue_prefix.clone());
        topology.declare(&channel).await?;
        let relay = settings.relay.relay_settings();
        Ok(Self {
            wake: pools.iter().map(|_| Notify::new()).collect(),
            pools,
            conn,
            channel,
            topology,
            batch: i64::try_from(relay.batch_size).unwrap_or(200),
            poll: relay.poll_interval,
            recorder,
        })
    }

    fn nudge(&self, shard: usize) {
        if let Some(n) = self.wake.get(shard) {
            n.notify_one();
        }
    }

    async fn close(&self) {
        let _ = self.conn.close(0, "bench done".into()).await;
        for p in &self.pools {
            p.close().await;
        }
    }

    async fn shard_loop(self: Arc<Self>, shard: usize, mut stop: watch::Receiver<bool>) {
        let Some(wake) = self.wake.get(shard) else { return };
        while !*stop.borrow() {
            match self.pump(shard).await {
                Ok(n) if n >= self.batch => continue,
                Ok(_) => {}
                Err(e) => {
                    eprintln!("bench: raw relay shard {shard}: {e:#}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(self.poll) => {}
                _ = stop.changed() => {}
            }
        }
    }

    async fn pump(&self, shard: usize) -> anyhow::Result<i64> {
        let pool = self.pools.get(shard).context("shard")?;
        let mut tx = pool.begin().await?;
        let rows = sqlx::query(
            "SELECT id, topic, message_id, message FROM task WHERE state IN ('create', 'fail') \
             AND (next_attempt_at IS NULL OR next_attempt_at <= ?) ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED",
        )
        .bind(Utc::now().naive_utc())
        .bind(self.batch)
        .fetch_all(&mut *tx)
        .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for r in &rows {
            let (id, topic, message_id, message): (u64, String, Option<String>, String) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
            claimed.push((id, topic, message_id.unwrap_or_else(|| format!("task-{id}")), message));
        }
        if claimed.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        let mut confirms = Vec::with_capacity(claimed.len());
        for (_, topic, message_id, message) in &claimed {
            let props = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_message_id(message_id.as_str().into());
            let queue = self.topology.queue(topic);
            confirms.push(
                self.channel
                    .basic_publish(
                        "".into(),
                        queue.as_str().into(),
                        BasicPublishOptions {
                            mandatory: true,
                            ..Default::default()
                        },
                        message.as_bytes(),
                        props,
                    )
                    .await?,
            );
        }
        let mut ok = Vec::with_capacity(confirms.len());
        for c in confirms {
            ok.push(matches!(c.await?, Confirmation::Ack(None)));
        }
        let told: Vec<RelayedRow<'_>> = claimed
            .iter()
            .zip(&ok)
            .map(|((_, topic, message_id, _), ok)| RelayedRow {
                message_id,
                topic,
                confirmed: *ok,
            })
            .collect();
        self.recorder.confirmed(shard, &told);
        if ok.iter().any(|ok| *ok) {
            let mut q: QueryBuilder<'_, MySql> =
                QueryBuilder::new("UPDATE task SET state = 'completed', published_at = ");
            q.push_bind(Utc::now().naive_utc())
                .push(", last_error = NULL, attempts = attempts + 1 WHERE id IN (");
            let mut ids = q.separated(", ");
            for ((id, ..), _) in claimed.iter().zip(&ok).filter(|(_, ok)| **ok) {
                ids.push_bind(*id);
            }
            q.push(")");
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        self.recorder.settled(shard, &told);
        Ok(i64::try_from(claimed.len()).unwrap_or(i64::MAX))
    }
}
