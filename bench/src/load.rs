//! The closed-loop load generator: `c` tasks, each drawing in a loop for its own users.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cpu::{CpuUse, ServerPerDraw};
use crate::env::BenchUser;
use crate::http::HttpDriver;
use crate::raw::{FloorDriver, RawDriver};

/// One way of performing a draw.
pub(crate) enum Driver {
    /// `POST /graphql` `draw` against the in-process application.
    Http(HttpDriver),
    /// The pre-redesign draw's SQL and Redis calls, issued directly.
    Raw(Box<RawDriver>),
    /// One autocommitted single-row `INSERT` and one stock `EVALSHA`: the commit floor.
    Floor(Box<FloorDriver>),
}

impl Driver {
    /// The mode's name in the report.
    pub(crate) fn mode(&self) -> &'static str {
        match self {
            Driver::Http(_) => "graphql-http",
            Driver::Raw(_) => "raw",
            Driver::Floor(_) => "floor",
        }
    }

    /// Closes the raw baseline's pools (nothing to do for HTTP).
    pub(crate) async fn close(&self) {
        match self {
            Driver::Raw(d) => d.close().await,
            Driver::Floor(d) => d.close().await,
            Driver::Http(_) => {}
        }
    }

    async fn draw(&self, user: &BenchUser) -> anyhow::Result<()> {
        match self {
            Driver::Http(d) => d.draw(user).await,
            Driver::Raw(d) => d.draw(user).await,
            Driver::Floor(d) => d.draw(user).await,
        }
    }
}

/// The outcome of one measured run.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    /// `graphql-http` or `raw`.
    pub(crate) mode: &'static str,
    /// Concurrent clients.
    pub(crate) concurrency: usize,
    /// Successful draws.
    pub(crate) draws: u64,
    /// Failed draws.
    pub(crate) errors: u64,
    /// From the start until the last client finished its last call.
    pub(crate) elapsed: Duration,
    /// Latency of every successful draw in microseconds, sorted.
    pub(crate) latencies_us: Vec<u32>,
    /// The first error, if any.
    pub(crate) first_error: Option<String>,
    /// CPU per draw by process, and how busy the machine was.
    pub(crate) cpu: CpuUse,
    /// MySQL server statements and commits per draw.
    pub(crate) server: ServerPerDraw,
}

impl Sample {
    /// Successful draws per second.
    pub(crate) fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 { self.draws as f64 / secs } else { 0.0 }
    }

    /// The `p`-quantile (0..=1) of the latencies in milliseconds (nearest rank).
    pub(crate) fn quantile_ms(&self, p: f64) -> f64 {
        let n = self.latencies_us.len();
        if n == 0 {
            return f64::NAN;
        }
        let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
        f64::from(self.latencies_us[rank - 1]) / 1_000.0
    }
}

/// What one client did.
struct ClientRun {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
    finished: Instant,
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// Runs `concurrency` clients for `duration`. Client `t` cycles over the users
/// `t, t + c, t + 2c, …`, so no two clients draw for the same user at the same time.
pub(crate) async fn drive(
    driver: Arc<Driver>,
    users: Arc<Vec<BenchUser>>,
    concurrency: usize,
    duration: Duration,
    spawn_on: &tokio::runtime::Handle,
) -> Sample {
    let start = Instant::now();
    let end = start + duration;
    let clients: Vec<_> = (0..concurrency)
        .map(|t| {
            let driver = driver.clone();
            let users = users.clone();
            spawn_on.spawn(async move {
                let mine: Vec<usize> = (t..users.len()).step_by(concurrency).collect();
                let mut run = ClientRun {
                    latencies_us: Vec::with_capacity(16_384),
                    errors: 0,
                    first_error: None,
                    finished: Instant::now(),
                };
                let mut i = 0;
                while !mine.is_empty() && Instant::now() < end {
                    let user = &users[mine[i % mine.len()]];
                    i += 1;
                    let t0 = Instant::now();
                    match driver.draw(user).await {
                        Ok(()) => run.latencies_us.push(micros(t0.elapsed())),
                        Err(e) => {
                            run.errors += 1;
                            if run.first_error.is_none() {
                                run.first_error = Some(format!("{e:#}"));
                            }
                        }
                    }
                }
                run.finished = Instant::now();
                run
            })
        })
        .collect();
    let mut sample = Sample {
        mode: driver.mode(),
        concurrency,
        draws: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
        first_error: None,
        cpu: CpuUse::default(),
        server: ServerPerDraw::default(),
    };
    for client in clients {
        match client.await {
            Ok(run) => {
                sample.errors += run.errors;
                sample.latencies_us.extend(run.latencies_us);
                sample.elapsed = sample.elapsed.max(run.finished - start);
                if sample.first_error.is_none() {
                    sample.first_error = run.first_error;
                }
            }
            Err(e) => {
                sample.errors += 1;
                sample
                    .first_error
                    .get_or_insert_with(|| format!("client task failed: {e}"));
            }
        }
    }
    sample.draws = sample.latencies_us.len() as u64;
    sample.latencies_us.sort_unstable();
    sample
}

/// One draw per user (`concurrency` clients over disjoint users), so every user's day and
/// month rows exist before measuring and both modes measure the same steady-state path.
///
/// # Errors
/// The first failed draw.
pub(crate) async fn prime(
    driver: Arc<Driver>,
    users: Arc<Vec<BenchUser>>,
    concurrency: usize,
    spawn_on: &tokio::runtime::Handle,
) -> anyhow::Result<()> {
    let clients: Vec<_> = (0..concurrency)
        .map(|t| {
            let driver = driver.clone();
            let users = users.clone();
            spawn_on.spawn(async move {
                for i in (t..users.len()).step_by(concurrency) {
                    driver
                        .draw(&users[i])
                        .await
                        .map_err(|e| e.context(format!("priming {}", users[i].id)))?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for client in clients {
        client.await??;
    }
    Ok(())
}
