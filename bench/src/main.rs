//! `bench`: load benchmarks of big-market against the real services, run as
//! `cargo run --release -p bench -- draw|relay|read|page`. Not part of the `big-market` binary.
//!
//! `bench draw` measures the `draw` mutation end to end — HTTP, GraphQL, the domain service,
//! SeaORM, MariaDB and Redis — with concurrent keep-alive clients, and in the same run a raw
//! baseline that issues the same SQL statements and the same Redis script call directly
//! (sqlx + a multiplexed Redis connection; no HTTP, GraphQL or ORM). The ratio of the two is
//! the cost of the layers above the stores.
//!
//! Everything runs against a world of its own: fresh databases `bmbench_<pid>_cfg/_01/_02`
//! on the configured MySQL server, the Redis key prefix `bmbench:<pid>:`, the real
//! [`Application`](api::startup::Application) started in-process on a free port. The
//! databases and keys are dropped at the end unless `--keep` is given. See
//! `docs/BENCHMARKS.md`.

mod cpu;
mod env;
mod http;
mod load;
mod outbox;
mod page;
mod raw;
mod read;
mod relay;
mod report;
mod wire;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use api::settings::Settings;
use clap::{Args, Parser, Subcommand};

use self::cpu::CpuSnap;
use self::env::{BenchEnv, BenchUser};
use self::http::HttpDriver;
use self::load::{Driver, Sample};
use self::raw::{FloorDriver, RawDriver};

/// Load benchmarks of big-market against the real MariaDB, Redis and RabbitMQ.
#[derive(Debug, Clone, Parser)]
#[command(name = "bench", version, about)]
struct Cli {
    /// Configuration file (TOML), as for `big-market`: its MySQL server, Redis, RabbitMQ, pool
    /// sizes and business calendar are used. Defaults to `big-market.toml` when it exists;
    /// every value can also be set with `BIG_MARKET_<SECTION>__<KEY>` environment variables.
    #[arg(long, short, env = "BIG_MARKET_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// What to benchmark.
    #[command(subcommand)]
    target: BenchTarget,
}

/// The benchmarks.
#[derive(Debug, Clone, Subcommand)]
pub enum BenchTarget {
    /// The `draw` mutation over HTTP against the real services, and a raw baseline issuing the
    /// same SQL and Redis calls directly; prints draws/s, p50/p99/p99.9 latency and the ratio.
    Draw(DrawBenchArgs),
    /// The outbox relay: lag from commit to broker confirm at a fixed commit rate, and the
    /// drain rate of a backlog, each beside a raw sqlx + lapin relay.
    Relay(relay::RelayBenchArgs),
    /// The read side: `activityAccount` over HTTP beside a minimal poem + async-graphql server
    /// doing the same Redis read, and the projection lag from commit to the account view.
    Read(read::ReadBenchArgs),
    /// The raffle page in one request: `rafflePage` over HTTP beside a minimal poem handler
    /// doing the same pipelined Redis reads; prints pages/s, latency, CPU and the ratio.
    Page(page::PageBenchArgs),
}

/// Options of `bench draw`.
#[derive(Debug, Clone, Args)]
pub struct DrawBenchArgs {
    /// Concurrency levels (concurrent clients), comma separated.
    #[arg(long, value_delimiter = ',', default_value = "8,32,64")]
    pub concurrency: Vec<usize>,
    /// Measured seconds per mode and concurrency level.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Unmeasured warm-up seconds before each measurement.
    #[arg(long, default_value_t = 2)]
    pub warmup_secs: u64,
    /// Drawing users (`bench-user-<i>`, spread over every shard and split table); at least the
    /// highest concurrency, so that no two clients ever draw for the same user at once.
    #[arg(long, default_value_t = 2000)]
    pub users: usize,
    /// Keep the benchmark databases and Redis keys afterwards.
    #[arg(long)]
    pub keep: bool,
}

/// Runs a benchmark with the loaded settings (whose MySQL server, Redis, pool size and
/// business calendar are used; database names, key prefix and port are the benchmark's own).
/// Fails when the services cannot be reached, setup fails, or a mode fails on every call.
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load(cli.config.as_deref())?;
    api::telemetry::init(&settings.log);
    match cli.target {
        BenchTarget::Draw(a) => draw(settings, a).await,
        BenchTarget::Relay(a) => relay::run(settings, a).await,
        BenchTarget::Read(a) => read::run(settings, a).await,
        BenchTarget::Page(a) => page::run(settings, a).await,
    }
}

async fn draw(settings: Settings, args: DrawBenchArgs) -> anyhow::Result<()> {
    let max_c = args.concurrency.iter().copied().max().unwrap_or(0);
    if args.concurrency.is_empty() || args.concurrency.contains(&0) {
        anyhow::bail!("--concurrency needs one or more levels ≥ 1");
    }
    if args.users < max_c {
        anyhow::bail!(
            "--users ({}) must be at least the highest concurrency ({max_c})",
            args.users
        );
    }
    if args.duration_secs == 0 {
        anyhow::bail!("--duration-secs must be at least 1");
    }
    let (env, mut server) = BenchEnv::create(&settings, args.users).await?;
    let outcome = tokio::select! {
        r = measure(&env, &args) => r,
        stopped = &mut server => Err(anyhow::anyhow!(
            "the in-process server stopped during the benchmark ({}); aborting",
            match stopped {
                Ok(Ok(())) => "shutdown signal".to_owned(),
                Ok(Err(e)) => format!("{e:#}"),
                Err(e) => e.to_string(),
            }
        )),
    };
    server.abort();
    if args.keep {
        eprintln!("{}", env.kept_message());
    } else if let Err(e) = env.destroy().await {
        eprintln!("bench: cleanup failed: {e:#}");
    }
    let (samples, machine) = outcome?;
    print!("{}", report::render(&args, &machine, &samples));
    Ok(())
}

/// The HTTP load generator's runtime: its own threads (named `bench-client`) so their CPU can
/// be told apart from the application's. Shut down in the background when dropped (a runtime
/// may not be dropped in place inside another).
struct ClientRuntime(Option<tokio::runtime::Runtime>);

impl Drop for ClientRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Runs one mode at one concurrency: warm-up (checked), then the measured run with the CPU
/// and server statement counters around it.
async fn run_one(
    env: &BenchEnv,
    driver: Arc<Driver>,
    spawn_on: &tokio::runtime::Handle,
    users: &Arc<Vec<BenchUser>>,
    c: usize,
    args: &DrawBenchArgs,
) -> anyhow::Result<Sample> {
    let mode = driver.mode();
    if args.warmup_secs > 0 {
        eprintln!("bench: {mode} c={c}: warming up {} s", args.warmup_secs);
        let w = load::drive(
            driver.clone(),
            users.clone(),
            c,
            Duration::from_secs(args.warmup_secs),
            spawn_on,
        )
        .await;
        if w.draws == 0 {
            anyhow::bail!(
                "{mode} c={c}: no successful draw while warming up ({} errors; first: {})",
                w.errors,
                w.first_error.as_deref().unwrap_or("-")
            );
        }
    }
    eprintln!("bench: {mode} c={c}: measuring {} s", args.duration_secs);
    let server_before = cpu::server_counters(&env.world.config).await;
    let cpu_before = CpuSnap::now();
    let mut s = load::drive(
        driver,
        users.clone(),
        c,
        Duration::from_secs(args.duration_secs),
        spawn_on,
    )
    .await;
    s.cpu = cpu_before.until(&CpuSnap::now(), s.draws);
    s.server = cpu::server_counters(&env.world.config)
        .await
        .per_draw(&server_before, s.draws);
    eprintln!(
        "bench: {mode} c={c}: {} draws, {:.0}/s, {} errors",
        s.draws,
        s.rate(),
        s.errors
    );
    Ok(s)
}

/// Primes every user, then measures the raw baseline at every concurrency level, then HTTP.
/// The baseline opens its pools for its own runs only and has closed them before the
/// application's pools fill up, so the connections held at once stay well within a default
/// server's `max_connections` (151) even at concurrency 64.
async fn measure(env: &BenchEnv, args: &DrawBenchArgs) -> anyhow::Result<(Vec<Sample>, report::Machine)> {
    let machine = report::Machine::probe(env).await;
    let users = Arc::new(env.users.clone());
    let main = tokio::runtime::Handle::current();
    let client_rt = ClientRuntime(Some(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(cpu::LOADGEN_THREAD)
            .enable_all()
            .build()?,
    ));
    let client_handle = client_rt
        .0
        .as_ref()
        .map(|rt| rt.handle().clone())
        .context("client runtime")?;
    let http = Arc::new(Driver::Http(HttpDriver::new(&env.base_url)?));
    eprintln!(
        "bench: priming {} users with one raw draw each (creates their day/month rows)",
        users.len()
    );
    let raw = Arc::new(Driver::Raw(Box::new(RawDriver::new(env).await?)));
    let primed = load::prime(raw.clone(), users.clone(), 16, &main).await;
    raw.close().await;
    primed?;
    let mut samples = Vec::new();
    for &c in &args.concurrency {
        let raw = Arc::new(Driver::Raw(Box::new(RawDriver::new(env).await?)));
        let sample = run_one(env, raw.clone(), &main, &users, c, args).await;
        raw.close().await;
        samples.push(sample?);
    }
    for &c in &args.concurrency {
        let floor = Arc::new(Driver::Floor(Box::new(FloorDriver::new(env).await?)));
        let sample = run_one(env, floor.clone(), &main, &users, c, args).await;
        floor.close().await;
        samples.push(sample?);
    }
    for &c in &args.concurrency {
        samples.push(run_one(env, http.clone(), &client_handle, &users, c, args).await?);
    }
    drop(client_rt);
    Ok((samples, machine))
}
