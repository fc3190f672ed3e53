//! Where the CPU went during a run — the HTTP load generator's threads, the rest of this
//! process, MariaDB, Redis and everything else — from `/proc` (Linux only; elsewhere every
//! figure reads 0), and the MySQL server's own statement counters.

use sea_orm::sqlx::{self, MySqlPool};

/// Thread name of the HTTP load generator's runtime (at most 15 bytes: `/proc/…/comm`).
pub(crate) const LOADGEN_THREAD: &str = "bench-client";

/// Clock ticks per second of `/proc` CPU times (`USER_HZ`, 100 on every mainstream Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// CPU ticks consumed so far.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CpuSnap {
    own: u64,
    loadgen: u64,
    mysql: u64,
    redis: u64,
    /// All CPUs: busy ticks (user, nice, system, irq, softirq, steal).
    busy: u64,
    /// All CPUs: busy + idle + iowait.
    total: u64,
    /// All CPUs: stolen by the hypervisor.
    steal: u64,
}

/// CPU spent per draw and how busy the machine was during a run.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CpuUse {
    /// This process without the load generator's threads: the application (HTTP) or the raw
    /// client (raw), ms per draw.
    pub(crate) app_ms: f64,
    /// The HTTP load generator's threads (reqwest clients), ms per draw.
    pub(crate) loadgen_ms: f64,
    /// `mariadbd` / `mysqld`, ms per draw.
    pub(crate) mysql_ms: f64,
    /// `redis-server`, ms per draw.
    pub(crate) redis_ms: f64,
    /// Every other process and the kernel outside them, ms per draw.
    pub(crate) other_ms: f64,
    /// Busy share of all CPUs, percent.
    pub(crate) busy_pct: f64,
    /// Share of all CPUs stolen by the hypervisor, percent.
    pub(crate) steal_pct: f64,
}

/// utime + stime of `/proc/<pid>/stat`.
fn process_ticks(pid: &str) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the command (which may contain spaces) start at field 3 (`state`).
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

/// Sum of the CPU ticks of this process's threads named `name`.
fn own_threads_ticks(name: &str) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|tid| {
            std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).is_ok_and(|comm| comm.trim() == name)
        })
        .map(|tid| process_ticks(&format!("self/task/{tid}")))
        .sum()
}

/// Sum of the CPU ticks of every process whose command name is one of `names`.
fn named_ticks(names: &[&str]) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| names.contains(&comm.trim()))
        })
        .map(|pid| process_ticks(&pid))
        .sum()
}

impl CpuSnap {
    /// Reads the counters now.
    pub(crate) fn now() -> Self {
        let mut snap = Self {
            own: process_ticks("self"),
            loadgen: own_threads_ticks(LOADGEN_THREAD),
            mysql: named_ticks(&["mariadbd", "mysqld"]),
            redis: named_ticks(&["redis-server"]),
            ..Self::default()
        };
        if let Ok(stat) = std::fs::read_to_string("/proc/stat")
            && let Some(line) = stat.lines().find(|l| l.starts_with("cpu "))
        {
            let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
            let at = |i: usize| v.get(i).copied().unwrap_or(0);
            // user nice system idle iowait irq softirq steal (guest time is inside user).
            snap.busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
            snap.total = snap.busy + at(3) + at(4);
            snap.steal = at(7);
        }
        snap
    }

    /// The use between `self` (earlier) and `later`, spread over `draws`.
    pub(crate) fn until(&self, later: &Self, draws: u64) -> CpuUse {
        let ms = |ticks: u64| ticks as f64 * 1_000.0 / TICKS_PER_SEC;
        let per = |ticks: u64| if draws > 0 { ms(ticks) / draws as f64 } else { 0.0 };
        let own = later.own.saturating_sub(self.own);
        let loadgen = later.loadgen.saturating_sub(self.loadgen).min(own);
        let mysql = later.mysql.saturating_sub(self.mysql);
        let redis = later.redis.saturating_sub(self.redis);
        let busy = later.busy.saturating_sub(self.busy);
        let total = later.total.saturating_sub(self.total);
        let steal = later.steal.saturating_sub(self.steal);
        let pct = |t: u64| {
            if total > 0 {
                t as f64 * 100.0 / total as f64
            } else {
                0.0
            }
        };
        CpuUse {
            app_ms: per(own - loadgen),
            loadgen_ms: per(loadgen),
            mysql_ms: per(mysql),
            redis_ms: per(redis),
            other_ms: per(busy.saturating_sub(own + mysql + redis + steal)),
            busy_pct: pct(busy),
            steal_pct: pct(steal),
        }
    }
}

/// Server-wide statement counters (`SHOW GLOBAL STATUS`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ServerCounters {
    questions: u64,
    commits: u64,
    prepares: u64,
    rows_read: u64,
}

/// Server statements per draw during a run (server-wide: other clients of the same server
/// count too).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ServerPerDraw {
    /// `Questions` (statements sent by clients, prepared executions included) per draw.
    pub(crate) statements: f64,
    /// `Com_commit` per draw.
    pub(crate) commits: f64,
    /// `Com_stmt_prepare` per draw (0 when every statement comes from the connections'
    /// prepared-statement caches).
    pub(crate) prepares: f64,
    /// `Rows_read` per draw (MariaDB) (rows the statements touched: index use shows here).
    pub(crate) rows_read: f64,
}

/// Reads `Questions`, `Com_commit` and `Com_stmt_prepare` (zeros when the server cannot be
/// asked).
pub(crate) async fn server_counters(pool: &MySqlPool) -> ServerCounters {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SHOW GLOBAL STATUS WHERE Variable_name IN ('Questions', 'Com_commit', 'Com_stmt_prepare', 'Rows_read')",
    )
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    let get = |name: &str| {
        rows.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0)
    };
    ServerCounters {
        questions: get("Questions"),
        commits: get("Com_commit"),
        prepares: get("Com_stmt_prepare"),
        rows_read: get("Rows_read"),
    }
}

impl ServerCounters {
    /// The counts since `earlier`, spread over `draws` (the two probing queries excluded).
    pub(crate) fn per_draw(&self, earlier: &Self, draws: u64) -> ServerPerDraw {
        if draws == 0 {
            return ServerPerDraw::default();
        }
        let n = draws as f64;
        ServerPerDraw {
            statements: self.questions.saturating_sub(earlier.questions).saturating_sub(1) as f64 / n,
            commits: self.commits.saturating_sub(earlier.commits) as f64 / n,
            prepares: self.prepares.saturating_sub(earlier.prepares) as f64 / n,
            rows_read: self.rows_read.saturating_sub(earlier.rows_read) as f64 / n,
        }
    }
}
