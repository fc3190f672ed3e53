//! `big-market bench`: load benchmarks against the real services.
//!
//! `bench draw` measures the `draw` mutation end to end — HTTP, GraphQL, the domain service,
//! SeaORM, MariaDB and Redis — with concurrent keep-alive clients, and in the same run a raw
//! baseline that issues the same SQL statements and the same Redis script call directly
//! (sqlx + a multiplexed Redis connection; no HTTP, GraphQL or ORM). The ratio of the two is
//! the cost of the layers above the stores.
//!
//! Everything runs against a world of its own: fresh databases `bmbench_<pid>_cfg/_01/_02`
//! on the configured MySQL server, the Redis key prefix `bmbench:<pid>:`, the real
//! [`Application`](crate::startup::Application) started in-process on a free port. The
//! databases and keys are dropped at the end unless `--keep` is given. See
//! `docs/BENCHMARKS.md`.

mod cpu;
mod env;
mod http;
mod load;
mod raw;
mod report;

use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};

use self::env::BenchEnv;
use self::http::HttpDriver;
use self::load::{Driver, Sample};
use self::raw::RawDriver;
use crate::settings::Settings;

/// Arguments of `big-market bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// What to benchmark.
    #[command(subcommand)]
    pub target: BenchTarget,
}

/// The benchmarks.
#[derive(Debug, Clone, Subcommand)]
pub enum BenchTarget {
    /// The `draw` mutation over HTTP against the real services, and a raw baseline issuing the
    /// same SQL and Redis calls directly; prints draws/s, p50/p99/p99.9 latency and the ratio.
    Draw(DrawBenchArgs),
}

/// Options of `big-market bench draw`.
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

/// Runs a benchmark with the loaded `settings` (whose MySQL server, Redis, pool size and
/// business calendar are used; database names, key prefix and port are the benchmark's own).
///
/// # Errors
/// When the services cannot be reached, setup fails, or a mode fails on every call.
pub async fn run(settings: Settings, args: BenchArgs) -> anyhow::Result<()> {
    match args.target {
        BenchTarget::Draw(a) => draw(settings, a).await,
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

/// Primes every user, then measures each concurrency level: HTTP first, then raw.
async fn measure(env: &BenchEnv, args: &DrawBenchArgs) -> anyhow::Result<(Vec<Sample>, report::Machine)> {
    let machine = report::Machine::probe(env).await;
    let users = Arc::new(env.users.clone());
    let http = Arc::new(Driver::Http(HttpDriver::new(&env.base_url)?));
    let raw = Arc::new(Driver::Raw(Box::new(RawDriver::new(env).await?)));
    eprintln!(
        "bench: priming {} users with one raw draw each (creates their day/month rows)",
        users.len()
    );
    load::prime(raw.clone(), users.clone(), 16).await?;
    let duration = Duration::from_secs(args.duration_secs);
    let warmup = Duration::from_secs(args.warmup_secs);
    let mut samples = Vec::new();
    for &c in &args.concurrency {
        for driver in [&http, &raw] {
            let mode = driver.mode();
            if !warmup.is_zero() {
                eprintln!("bench: {mode} c={c}: warming up {} s", warmup.as_secs());
                let w = load::drive(driver.clone(), users.clone(), c, warmup).await;
                if w.draws == 0 {
                    anyhow::bail!(
                        "{mode} c={c}: no successful draw while warming up ({} errors; first: {})",
                        w.errors,
                        w.first_error.as_deref().unwrap_or("-")
                    );
                }
            }
            eprintln!("bench: {mode} c={c}: measuring {} s", duration.as_secs());
            let s = load::drive(driver.clone(), users.clone(), c, duration).await;
            eprintln!(
                "bench: {mode} c={c}: {} draws, {:.0}/s, {} errors",
                s.draws,
                s.rate(),
                s.errors
            );
            samples.push(s);
        }
    }
    Ok((samples, machine))
}
