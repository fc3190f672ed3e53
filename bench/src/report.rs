//! The printed report: machine, command, the results table and the targets.

use std::fmt::Write as _;

use sea_orm::sqlx::{self, Row as _};

use crate::DrawBenchArgs;
use crate::env::BenchEnv;
use crate::load::Sample;

/// Target of the issue: draws/s over HTTP at concurrency 32 on a 2-core machine.
const TARGET_RATE_AT_32: f64 = 1_500.0;
/// Target of the write-model redesign: HTTP draws/s ÷ the pre-redesign raw draw's draws/s.
const TARGET_RATIO: f64 = 1.3;

/// What the numbers were measured on.
pub(crate) struct Machine {
    cpus: usize,
    cpu_model: String,
    mem_gib: f64,
    mysql: String,
    redis: String,
    pool: u32,
    /// Whether poem's per-request INFO log lines are on (written to stderr on every draw).
    request_logs: bool,
    /// `@@max_connections` of the server, and what the benchmark may need at peak.
    connections: (i64, u64),
}

/// The first line of `/proc/<file>` starting with `key`, after the colon.
fn proc_field(file: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{file}")).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    Some(line.split_once(':')?.1.trim().to_owned())
}

impl Machine {
    /// Reads the CPU count, CPU model, memory and the stores' versions and durability settings.
    pub(crate) async fn probe(env: &BenchEnv) -> Self {
        let mysql = match sqlx::query(
            "SELECT VERSION(), CAST(@@innodb_flush_log_at_trx_commit AS SIGNED), CAST(@@sync_binlog AS SIGNED), \
             CAST(@@log_bin AS SIGNED), CAST(@@innodb_buffer_pool_size DIV 1048576 AS SIGNED)",
        )
        .fetch_one(&env.world.config)
        .await
        {
            Ok(r) => format!(
                "{} (innodb_flush_log_at_trx_commit={}, sync_binlog={}, log_bin={}, buffer pool {} MiB)",
                r.try_get::<String, _>(0).unwrap_or_default(),
                r.try_get::<i64, _>(1)
                    .map(|v| v.to_string())
                    .unwrap_or_else(|_| "?".into()),
                r.try_get::<i64, _>(2)
                    .map(|v| v.to_string())
                    .unwrap_or_else(|_| "?".into()),
                r.try_get::<i64, _>(3)
                    .map(|v| v.to_string())
                    .unwrap_or_else(|_| "?".into()),
                r.try_get::<i64, _>(4)
                    .map(|v| v.to_string())
                    .unwrap_or_else(|_| "?".into()),
            ),
            Err(e) => format!("? ({e})"),
        };
        let max_connections: i64 = sqlx::query_scalar("SELECT CAST(@@max_connections AS SIGNED)")
            .fetch_one(&env.world.config)
            .await
            .unwrap_or(0);
        // The application's shard pools and the raw baseline's (both full at high
        // concurrency), plus a few for the config pools, which stay nearly idle.
        let shards = env.world.settings.database.shard_urls.len() as u64;
        let pool = u64::from(env.world.settings.database.max_connections);
        let needed = 2 * pool * shards + 4;
        let redis = async {
            let mut c = redis::Client::open(env.world.settings.redis.url.as_str())?
                .get_multiplexed_async_connection()
                .await?;
            let info: String = redis::cmd("INFO").arg("server").query_async(&mut c).await?;
            redis::RedisResult::Ok(
                info.lines()
                    .find_map(|l| l.strip_prefix("redis_version:"))
                    .unwrap_or("?")
                    .trim()
                    .to_owned(),
            )
        }
        .await
        .unwrap_or_else(|e| format!("? ({e})"));
        Self {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model: proc_field("cpuinfo", "model name").unwrap_or_else(|| "?".into()),
            mem_gib: proc_field("meminfo", "MemTotal")
                .and_then(|v| v.trim_end_matches("kB").trim().parse::<f64>().ok())
                .map_or(0.0, |kb| kb / 1_048_576.0),
            mysql,
            redis,
            pool: env.world.settings.database.max_connections,
            connections: (max_connections, needed),
            request_logs: tracing::enabled!(target: "poem::middleware::tracing_mw", tracing::Level::INFO),
        }
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "MET" } else { "NOT MET" }
}

/// The report as printed on stdout.
pub(crate) fn render(args: &DrawBenchArgs, m: &Machine, samples: &[Sample]) -> String {
    let mut o = String::new();
    let command: Vec<String> = std::env::args().collect();
    let _ = writeln!(o, "bench draw");
    let _ = writeln!(o, "command:  {}", command.join(" "));
    let _ = writeln!(
        o,
        "machine:  nproc={} ({}), {:.1} GiB RAM",
        m.cpus, m.cpu_model, m.mem_gib
    );
    let _ = writeln!(o, "MySQL:    {}", m.mysql);
    let _ = writeln!(o, "Redis:    {}", m.redis);
    let _ = writeln!(
        o,
        "setup:    {} users, {} s measured after {} s warm-up per row, pool {} connections per database",
        args.users, args.duration_secs, args.warmup_secs, m.pool
    );
    let _ = writeln!(
        o,
        "logging:  per-request INFO lines {}",
        if m.request_logs {
            "ON (one stderr line per HTTP draw; RUST_LOG=warn turns them off)"
        } else {
            "off"
        }
    );
    let (max_conn, needed) = m.connections;
    if u64::try_from(max_conn).unwrap_or(0) < needed {
        let _ = writeln!(
            o,
            "warning:  the server allows {max_conn} connections; the pools may open up to {needed} \
             (errors 1040 at high concurrency come from this, not from the draw path)"
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<13} {:>5} {:>8} {:>9} {:>8} {:>8} {:>9} {:>7}",
        "mode", "conc", "draws", "draws/s", "p50 ms", "p99 ms", "p99.9 ms", "errors"
    );
    let mut ordered: Vec<&Sample> = samples.iter().collect();
    ordered.sort_by_key(|s| (s.concurrency, s.mode));
    for s in &ordered {
        let _ = writeln!(
            o,
            "{:<13} {:>5} {:>8} {:>9.0} {:>8.2} {:>8.2} {:>9.2} {:>7}",
            s.mode,
            s.concurrency,
            s.draws,
            s.rate(),
            s.quantile_ms(0.50),
            s.quantile_ms(0.99),
            s.quantile_ms(0.999),
            s.errors
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "Where the time went, per draw: CPU ms by process (app = the application for graphql-http, the raw client \
         for raw; loadgen = the HTTP clients), server statements, prepares, commits and rows read (`Rows_read`), machine load:"
    );
    let _ = writeln!(
        o,
        "{:<13} {:>5} {:>7} {:>8} {:>8} {:>7} {:>7} {:>7} {:>6} {:>8} {:>8} {:>7} {:>9} {:>6}",
        "mode",
        "conc",
        "app",
        "loadgen",
        "mariadb",
        "redis",
        "other",
        "total",
        "busy%",
        "stmts",
        "prepares",
        "commits",
        "rows read",
        "steal%"
    );
    for s in &ordered {
        let c = &s.cpu;
        let _ = writeln!(
            o,
            "{:<13} {:>5} {:>7.3} {:>8.3} {:>8.3} {:>7.3} {:>7.3} {:>7.3} {:>6.0} {:>8.1} {:>8.2} {:>7.2} {:>9.1} {:>6.0}",
            s.mode,
            s.concurrency,
            c.app_ms,
            c.loadgen_ms,
            c.mysql_ms,
            c.redis_ms,
            c.other_ms,
            c.app_ms + c.loadgen_ms + c.mysql_ms + c.redis_ms + c.other_ms,
            c.busy_pct,
            s.server.statements,
            s.server.prepares,
            s.server.commits,
            s.server.rows_read,
            c.steal_pct
        );
    }
    let _ = writeln!(o);
    let rate = |mode: &str, c: usize| {
        samples
            .iter()
            .find(|s| s.mode == mode && s.concurrency == c)
            .map(Sample::rate)
    };
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let mut at_32: Option<(f64, f64)> = None;
    for &c in &args.concurrency {
        if let (Some(h), Some(r)) = (rate("graphql-http", c), rate("raw", c)) {
            let q = ratio(h, r);
            let _ = writeln!(o, "ratio http/raw at c={c:<3} {q:.2}  ({h:.0} / {r:.0} draws/s)");
            if c == 32 {
                at_32 = Some((h, q));
            }
        }
    }
    for &c in &args.concurrency {
        if let (Some(h), Some(f)) = (rate("graphql-http", c), rate("floor", c)) {
            let _ = writeln!(
                o,
                "ratio http/floor at c={c:<3} {:.2}  ({h:.0} / {f:.0} draws/s)",
                ratio(h, f)
            );
        }
    }
    if let Some((h, q)) = at_32 {
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "target ≥ {TARGET_RATE_AT_32:.0} draws/s over HTTP at c=32: {} ({h:.0})",
            verdict(h >= TARGET_RATE_AT_32)
        );
        let _ = writeln!(
            o,
            "target ratio http/raw ≥ {TARGET_RATIO:.2} at c=32: {} ({q:.2})",
            verdict(q >= TARGET_RATIO)
        );
    }
    for s in samples.iter().filter(|s| s.first_error.is_some()) {
        let _ = writeln!(
            o,
            "first error of {} c={}: {}",
            s.mode,
            s.concurrency,
            s.first_error.as_deref().unwrap_or_default()
        );
    }
    o
}
