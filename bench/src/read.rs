//! `bench read`: the read side against the real services.
//!
//! - **queries**: `activityAccount` over keep-alive HTTP/1.1 against the real application
//!   (its routes, middleware, schema and limits; answered from the Redis read model), and in
//!   the same run against a minimal poem + async-graphql server whose one resolver does the
//!   same Redis `GET` (`UserViews::account`) and the same day/month arithmetic
//!   (`ActivityAccount::of`), without the application's state, middleware and fallback to
//!   MySQL. Both are driven by the same lean
//!   client (pre-built requests, one connection per client), on its own runtime threads.
//! - **projection lag**: writers commit the outbox rows of a draw (`send_award` and the
//!   `activity_account_changed` snapshot, one transaction) at a fixed rate while the
//!   production relay runs; the lag is the time from the commit until the batch that applied
//!   the snapshot to the account view has finished (view written, rows marked, award history
//!   written). Afterwards every user's view must hold the last snapshot written for it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use api::graphql::account::ActivityAccount;
use async_graphql::{Context, EmptyMutation, EmptySubscription, Object, Schema};
use async_graphql_poem::GraphQL;
use chrono::Utc;
use clap::Args;
use domain::activity::BusinessCalendar;
use domain::ids::ActivityId;
use domain::outbox::TOPIC_ACCOUNT_CHANGED;
use persistence::redis::{Keys, TaskStream, UserViews};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Route, Server, post};
use sea_orm::sqlx::MySqlPool;
use serde_json::json;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::cpu::{self, CpuSnap, CpuUse};
use crate::env::{ACTIVITY_ID, BenchUser, World};
use crate::outbox::{self, Commits, LagReport, Paced, Recorder, Shape, Written};
use crate::relay::{self, Mode, Stores};
use crate::wire::{find, response};
use api::settings::Settings;
use api::startup::Application;

/// Options of `bench read`.
#[derive(Debug, Clone, Args)]
pub struct ReadBenchArgs {
    /// Concurrent connections for the query measurement, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "16,64")]
    pub concurrency: Vec<usize>,
    /// Measured seconds per server and concurrency level.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Unmeasured seconds before each measurement.
    #[arg(long, default_value_t = 2)]
    pub warmup_secs: u64,
    /// Users with an account (queries cycle over them).
    #[arg(long, default_value_t = 2000)]
    pub users: usize,
    /// Draw commits per second during the projection-lag measurement.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Measured seconds of the projection-lag measurement.
    #[arg(long, default_value_t = 10)]
    pub lag_secs: u64,
    /// Concurrent writers committing the paced draws.
    #[arg(long, default_value_t = 8)]
    pub writers: usize,
    /// Keep the benchmark databases, Redis keys and queues afterwards.
    #[arg(long)]
    pub keep: bool,
}

const SELECTION: &str = "totalCount totalCountSurplus dayCount dayCountSurplus monthCount monthCountSurplus";

struct BaseState {
    views: UserViews,
    calendar: BusinessCalendar,
}

/// The baseline's only query.
struct BaseQuery;

#[Object]
impl BaseQuery {
    async fn activity_account(
        &self,
        ctx: &Context<'_>,
        user_id: String,
        activity_id: i64,
    ) -> async_graphql::Result<ActivityAccount> {
        let st = ctx.data::<BaseState>()?;
        let now = Utc::now();
        let (day, month) = (st.calendar.day(now), st.calendar.month(now));
        let s = st
            .views
            .account(&user_id, ActivityId::new(activity_id))
            .await?
            .ok_or("no view")?;
        Ok(ActivityAccount::of(&s, &day, &month))
    }
}

/// Starts the baseline server on a free port.
async fn baseline(settings: &Settings) -> anyhow::Result<(u16, JoinHandle<()>)> {
    let schema = Schema::build(BaseQuery, EmptyMutation, EmptySubscription)
        .data(BaseState {
            views: UserViews::new(
                persistence::redis::connect(&settings.redis.url).await?,
                Keys::new(settings.redis.key_prefix.clone()),
            ),
            calendar: BusinessCalendar::new(settings.business.utc_offset_minutes)
                .context("business.utc_offset_minutes")?,
        })
        .finish();
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await?;
    let port = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().map(SocketAddr::port))
        .context("baseline port")?;
    let app = Route::new().at("/graphql", post(GraphQL::new(schema)));
    let task = tokio::spawn(async move {
        if let Err(e) = Server::new_with_acceptor(acceptor).run(app).await {
            eprintln!("bench: baseline server stopped: {e}");
        }
    });
    Ok((port, task))
}

/// The `POST /graphql` request bytes of each user's `activityAccount` query.
fn requests(port: u16, users: &[BenchUser]) -> Vec<Vec<u8>> {
    users
        .iter()
        .map(|u| {
            let body = json!({
                "query": format!(
                    r#"{{ activityAccount(userId: "{}", activityId: {ACTIVITY_ID}) {{ {SELECTION} }} }}"#,
                    u.id
                )
            })
            .to_string();
            format!(
                "POST /graphql HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                u.token,
                body.len()
            )
            .into_bytes()
        })
        .collect()
}

/// One measured query run.
pub(crate) struct QueryRun {
    /// Which server was measured.
    pub(crate) server: &'static str,
    /// Concurrent connections.
    pub(crate) concurrency: usize,
    /// Successful queries.
    pub(crate) ok: u64,
    /// Failed queries.
    pub(crate) errors: u64,
    /// The first failure.
    pub(crate) first_error: Option<String>,
    /// Measured time.
    pub(crate) elapsed: Duration,
    /// Latency of each successful query, sorted.
    pub(crate) latencies_us: Vec<u32>,
    /// CPU use per successful query.
    pub(crate) cpu: CpuUse,
    /// MySQL server statements per successful query during the measurement (server-wide),
    /// when they were counted.
    pub(crate) mysql_statements: Option<f64>,
}

impl QueryRun {
    /// Successful queries per second.
    pub(crate) fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency at quantile `p` (0–1), ms.
    pub(crate) fn ms(&self, p: f64) -> f64 {
        let n = self.latencies_us.len();
        if n == 0 {
            return f64::NAN;
        }
        let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
        f64::from(self.latencies_us.get(rank - 1).copied().unwrap_or(0)) / 1_000.0
    }
}

/// Drives `c` connections for `duration`; client `t` cycles over requests `t, t + c, …`. A
/// response counts as successful when it is a `200` whose body has no `"errors"` and holds
/// `totalCountSurplus` (every benchmarked query answers a user's account).
pub(crate) async fn drive(
    port: u16,
    reqs: Arc<Vec<Vec<u8>>>,
    c: usize,
    duration: Duration,
    on: &tokio::runtime::Handle,
) -> (u64, u64, Option<String>, Duration, Vec<u32>) {
    let start = Instant::now();
    let deadline = start + duration;
    let clients: Vec<_> = (0..c)
        .map(|t| {
            let reqs = reqs.clone();
            on.spawn(async move {
                let mut lat = Vec::with_capacity(1 << 16);
                let mut errors = 0_u64;
                let mut first = None;
                let mut stream = match TcpStream::connect(("127.0.0.1", port)).await {
                    Ok(s) => s,
                    Err(e) => return (lat, 1, Some(format!("connect: {e}"))),
                };
                let _ = stream.set_nodelay(true);
                let mut buf = Vec::with_capacity(8192);
                let mut i = t;
                while Instant::now() < deadline {
                    let Some(req) = reqs.get(i % reqs.len()) else { break };
                    i += c;
                    let t0 = Instant::now();
                    let outcome = async {
                        stream.write_all(req).await?;
                        let body = response(&mut stream, &mut buf).await?;
                        if find(&body, b"\"errors\"").is_some() || find(&body, b"totalCountSurplus").is_none() {
                            anyhow::bail!("unexpected body {}", String::from_utf8_lossy(&body));
                        }
                        anyhow::Ok(())
                    }
                    .await;
                    match outcome {
                        Ok(()) => lat.push(u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX)),
                        Err(e) => {
                            errors += 1;
                            first.get_or_insert_with(|| format!("{e:#}"));
                            match TcpStream::connect(("127.0.0.1", port)).await {
                                Ok(s) => stream = s,
                                Err(_) => break,
                            }
                        }
                    }
                }
                (lat, errors, first)
            })
        })
        .collect();
    let mut all = Vec::new();
    let (mut errors, mut first) = (0, None);
    for c in clients {
        if let Ok((lat, e, f)) = c.await {
            all.extend(lat);
            errors += e;
            if first.is_none() {
                first = f;
            }
        }
    }
    let elapsed = start.elapsed();
    all.sort_unstable();
    (all.len() as u64, errors, first, elapsed, all)
}

/// Warms up for `times.0` (unmeasured), then drives `c` connections sending `reqs` to `port` for
/// `times.1`, with this machine's CPU use — and, given a pool, the MySQL server's statement
/// counter — read around the measurement.
///
/// # Errors
/// When no query succeeded.
pub(crate) async fn measure_run(
    server: &'static str,
    port: u16,
    reqs: Arc<Vec<Vec<u8>>>,
    c: usize,
    times: (Duration, Duration),
    mysql: Option<&MySqlPool>,
    on: &tokio::runtime::Handle,
) -> anyhow::Result<QueryRun> {
    let (warmup, duration) = times;
    if !warmup.is_zero() {
        eprintln!("bench: {server} c={c}: warming up {} s", warmup.as_secs_f64());
        drive(port, reqs.clone(), c, warmup, on).await;
    }
    eprintln!("bench: {server} c={c}: measuring {} s", duration.as_secs_f64());
    let counters = match mysql {
        Some(pool) => Some(cpu::server_counters(pool).await),
        None => None,
    };
    let before = CpuSnap::now();
    let (ok, errors, first_error, elapsed, latencies_us) = drive(port, reqs, c, duration, on).await;
    let cpu = before.until(&CpuSnap::now(), ok);
    let mysql_statements = match (mysql, counters) {
        (Some(pool), Some(before)) => Some(cpu::server_counters(pool).await.per_draw(&before, ok).statements),
        _ => None,
    };
    let run = QueryRun {
        server,
        concurrency: c,
        ok,
        errors,
        first_error,
        elapsed,
        latencies_us,
        cpu,
        mysql_statements,
    };
    eprintln!(
        "bench: {server} c={c}: {ok} queries, {:.0}/s, p99 {:.2} ms, {errors} errors",
        run.rate(),
        run.ms(0.99)
    );
    if ok == 0 {
        anyhow::bail!("{server} c={c}: no successful query ({:?})", run.first_error);
    }
    Ok(run)
}

/// Runs `bench read`.
///
/// # Errors
/// When the services cannot be reached or a run fails entirely.
pub async fn run(settings: Settings, args: ReadBenchArgs) -> anyhow::Result<()> {
    if args.concurrency.is_empty() || args.concurrency.contains(&0) || args.duration_secs == 0 {
        anyhow::bail!("--concurrency needs levels ≥ 1 and --duration-secs ≥ 1");
    }
    if !(args.rate.is_finite() && args.rate >= 0.001) || args.lag_secs == 0 || args.users == 0 || args.writers == 0 {
        anyhow::bail!("--rate, --lag-secs, --users and --writers must be positive");
    }
    let (queries, lag) = World::run_in(&settings, args.keep, async |world| measure(world, &args).await).await?;
    print!("{}", render(&args, &queries, &lag));
    Ok(())
}

/// The projection-lag run.
struct ProjectionRun {
    written: Written,
    lags: LagReport,
    views_current: usize,
    users: usize,
}

async fn measure(world: &World, args: &ReadBenchArgs) -> anyhow::Result<(Vec<QueryRun>, ProjectionRun)> {
    let settings = &world.settings;
    let users = world.users(args.users)?;
    world.give_quota(&users).await?;
    let app = Application::build(settings.clone())
        .await
        .context("starting the application")?;
    let ours_port = app.port();
    let ours = tokio::spawn(app.run_until_stopped());
    let (base_port, base) = baseline(settings).await?;

    // The read models, built the way an operator would: from MySQL, by the rebuild.
    let stores = Stores::open(world, args.writers).await?;
    let keys = Keys::new(settings.redis.key_prefix.clone());
    let views = UserViews::new(stores.redis.clone(), keys.clone());
    let tasks = TaskStream::open(stores.redis.clone(), &settings.redis.url, keys)?;
    let calendar = BusinessCalendar::new(settings.business.utc_offset_minutes).context("business calendar")?;
    let now = Utc::now();
    let report =
        persistence::mysql::read_side::rebuild(&stores.db, &views, &tasks, &calendar.day(now), &calendar.month(now))
            .await?;
    eprintln!("bench: read models rebuilt: {} accounts", report.accounts);

    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(cpu::LOADGEN_THREAD)
        .enable_all()
        .build()?;
    let on = client_rt.handle().clone();
    let mut runs = Vec::new();
    let result: anyhow::Result<()> = async {
        // Both servers answer the same for a user before anything is measured.
        let probe = |port| {
            let reqs = requests(port, users.get(..1).unwrap_or_default());
            async move {
                let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
                s.write_all(reqs.first().context("no user")?).await?;
                let mut buf = Vec::new();
                let body = response(&mut s, &mut buf).await?;
                anyhow::Ok(serde_json::from_slice::<serde_json::Value>(&body)?)
            }
        };
        let (a, b) = (probe(ours_port).await?, probe(base_port).await?);
        if a != b || a.pointer("/data/activityAccount/totalCount").is_none() {
            anyhow::bail!("the servers disagree: ours {a}, baseline {b}");
        }
        for &c in &args.concurrency {
            for (name, port) in [("baseline", base_port), ("big-market", ours_port)] {
                let reqs = Arc::new(requests(port, &users));
                let times = (
                    Duration::from_secs(args.warmup_secs),
                    Duration::from_secs(args.duration_secs),
                );
                runs.push(measure_run(name, port, reqs, c, times, None, &on).await?);
            }
        }
        Ok(())
    }
    .await;
    client_rt.shutdown_background();
    base.abort();
    ours.abort();
    result?;

    eprintln!(
        "bench: projection lag: {} draws/s for {} s (+{} s warm-up)",
        args.rate, args.lag_secs, args.warmup_secs
    );
    relay::reset(settings, &stores).await?;
    let recorder = Arc::new(Recorder::default());
    let running = relay::start(Mode::Ours, settings, &stores, recorder.clone()).await?;
    let commits = Commits::default();
    let paced = Paced {
        rate: args.rate,
        warmup: Duration::from_secs(args.warmup_secs),
        duration: Duration::from_secs(args.lag_secs),
        writers: args.writers,
        shape: Shape::Draw,
    };
    let written = paced
        .run("rl", &stores.pools, &users, &commits, &|s| running.nudge(s))
        .await;
    let _ = outbox::wait_settled(&recorder, commits.len(), Instant::now(), Duration::from_secs(5)).await;
    running.stop().await;
    let written = written?;
    let lags = recorder.lags(&commits);
    // Every user's view holds the last snapshot written for it (versions grow with the index).
    let total = (args.rate * (args.warmup_secs + args.lag_secs) as f64).round() as u64;
    let mut views_current = 0;
    for (n, u) in users.iter().enumerate() {
        let (n, len) = (n as u64, users.len() as u64);
        let want = if n < total {
            i64::try_from(n + (total - 1 - n) / len * len).unwrap_or(i64::MAX) + 1
        } else {
            0
        };
        let got = views.account(&u.id, ACTIVITY_ID).await?.map_or(0, |s| s.version);
        if got == want {
            views_current += 1;
        }
    }
    for p in &stores.pools {
        p.close().await;
    }
    Ok((
        runs,
        ProjectionRun {
            written,
            lags,
            views_current,
            users: users.len(),
        },
    ))
}

/// "met" or "NOT met".
pub(crate) fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

fn render(args: &ReadBenchArgs, runs: &[QueryRun], p: &ProjectionRun) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n## bench read — activityAccount, {} s per run, {} users; projection lag at {} draws/s\n",
        args.duration_secs, args.users, args.rate
    );
    let _ = writeln!(
        out,
        "| server | c | queries/s | p50 ms | p99 ms | p99.9 ms | errors | CPU µs/query server | load generator | redis | busy % | steal % |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in runs {
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} |",
            r.server,
            r.concurrency,
            r.rate(),
            r.ms(0.5),
            r.ms(0.99),
            r.ms(0.999),
            r.errors,
            r.cpu.app_ms * 1_000.0,
            r.cpu.loadgen_ms * 1_000.0,
            r.cpu.redis_ms * 1_000.0,
            r.cpu.busy_pct,
            r.cpu.steal_pct
        );
    }
    let _ = writeln!(out, "\nRatio big-market / baseline (queries/s):\n");
    let mut best: Option<(f64, f64, f64)> = None;
    for &c in &args.concurrency {
        let find = |name| runs.iter().find(|r| r.server == name && r.concurrency == c);
        if let (Some(o), Some(b)) = (find("big-market"), find("baseline")) {
            let ratio = o.rate() / b.rate();
            let _ = writeln!(out, "- c={c}: {ratio:.2} ({:.0} vs {:.0})", o.rate(), b.rate());
            if o.ms(0.99) <= 5.0 && best.is_none_or(|(r, ..)| o.rate() > r) {
                best = Some((o.rate(), o.ms(0.99), ratio));
            }
        }
    }
    let empty = outbox::Lags::default();
    let settled = p.lags.settled.get(TOPIC_ACCOUNT_CHANGED).unwrap_or(&empty);
    let applied = p.lags.confirmed.get(TOPIC_ACCOUNT_CHANGED).unwrap_or(&empty);
    let _ = writeln!(out, "\nProjection lag, commit → account view written (ms):\n");
    let _ = writeln!(
        out,
        "| draws committed/s | snapshots | applied p50 | p99 | p99.9 | batch settled p50 | p99 | p99.9 | max | not applied | views current |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        out,
        "| {:.0} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {}/{} |",
        p.written.rate,
        settled.count(),
        applied.ms(0.5),
        applied.ms(0.99),
        applied.ms(0.999),
        settled.ms(0.5),
        settled.ms(0.99),
        settled.ms(0.999),
        settled.max_ms(),
        p.lags.missing,
        p.views_current,
        p.users
    );
    let _ = writeln!(out, "\nVerdict:\n");
    match best {
        Some((rate, p99, ratio)) => {
            let _ = writeln!(
                out,
                "- best query rate with p99 ≤ 5 ms: {rate:.0}/s (p99 {p99:.2} ms, ratio {ratio:.2}); target ≥ 30 000/s: {}, ratio ≥ 0.7: {}",
                verdict(rate >= 30_000.0),
                verdict(ratio >= 0.7)
            );
        }
        None => {
            let _ = writeln!(out, "- no level kept p99 ≤ 5 ms: NOT met");
        }
    }
    let _ = writeln!(
        out,
        "- projection lag p99 at {:.0} draws/s: {:.2} ms; target ≤ 50 ms at 1 000 draws/s: {}",
        p.written.rate,
        settled.ms(0.99),
        verdict(settled.ms(0.99) <= 50.0 && p.written.rate >= 0.97 * 1_000.0 && p.lags.missing == 0)
    );
    out
}
