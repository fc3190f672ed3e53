//! Where the CPU went during a run: this process, MariaDB, Redis and everything else, from
//! `/proc` (Linux only; elsewhere every figure reads 0).

/// Clock ticks per second of `/proc` CPU times (`USER_HZ`, 100 on every mainstream Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// CPU ticks consumed so far.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CpuSnap {
    own: u64,
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
    /// This process (load generator, and for HTTP the application too), ms per draw.
    pub(crate) own_ms: f64,
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
            own_ms: per(own),
            mysql_ms: per(mysql),
            redis_ms: per(redis),
            other_ms: per(busy.saturating_sub(own + mysql + redis + steal)),
            busy_pct: pct(busy),
            steal_pct: pct(steal),
        }
    }
}
