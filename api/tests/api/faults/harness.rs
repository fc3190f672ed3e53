//! The suite's harness: a world rigged for checking, a steady load of draws from several users,
//! the invariants read back from MySQL, and the per-fault summary.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api::settings::Settings;
use serde_json::{Value, json};
use test_support::app::{CONFIG, SHARD_01, SHARD_02, TestApp, spawn_app_with};

/// The `big-market` binary, for the scenarios that run processes.
pub const BIN: &str = env!("CARGO_BIN_EXE_big-market");

/// Units of award 102 in the rigged world: few enough to sell out during a scenario, so the
/// oversold check bites.
pub const STOCK_102: i64 = 30;
/// Units of SKU 9013 in the rigged world (only the stock scenario buys it).
pub const STOCK_9013: i64 = 6;
/// Credits every award of the rigged world pays (a fixed range `5,5`).
pub const CREDITS: i64 = 5;
/// Pause of each user between two draws.
pub const PAUSE: Duration = Duration::from_millis(60);
/// Users of the load, half routed to each shard.
pub const USERS: usize = 4;

/// Where the summaries go: `BIG_MARKET_FAULT_SUMMARY` (set by `.ci/run`, which empties it
/// first), else `fault-summary.txt` in cargo's temporary directory of the target dir (which
/// keeps growing: delete it to start over).
pub fn summary_path() -> PathBuf {
    std::env::var_os("BIG_MARKET_FAULT_SUMMARY")
        .filter(|p| !p.is_empty())
        .map_or_else(
            || PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fault-summary.txt"),
            PathBuf::from,
        )
}

/// A test world under load: the app and its users (the first half on shard 01, the rest on 02).
pub struct World {
    pub app: TestApp,
    pub users: Vec<String>,
    /// Held while the scenario runs: under `cargo test` (one process, many threads) the
    /// scenarios run one at a time as under nextest's `faults` test group.
    _serial: tokio::sync::OwnedMutexGuard<()>,
}

/// One scenario at a time within a test process.
static SERIAL: std::sync::LazyLock<Arc<tokio::sync::Mutex<()>>> = std::sync::LazyLock::new(Arc::default);

/// The app with `tweak`ed settings and strategy 100006 rigged so every outcome can be checked:
/// awards 101 and 102 are drawn half each and both pay [`CREDITS`] credits (a fixed range, the
/// luck award too), 102 has `stock_102` units; SKU 9013 has [`STOCK_9013`]. Activity 100301 is
/// armed and each user holds 450 draws.
pub async fn world(tweak: impl FnOnce(&mut Settings), stock_102: i64) -> World {
    let serial = SERIAL.clone().lock_owned().await;
    let app = spawn_app_with(tweak).await;
    for sql in [
        "UPDATE strategy SET rule_models = NULL WHERE strategy_id = 100006".to_owned(),
        "UPDATE strategy_award SET award_rate = 0 WHERE strategy_id = 100006 AND award_id NOT IN (101, 102)".to_owned(),
        "UPDATE strategy_award SET award_rate = 0.5 WHERE strategy_id = 100006 AND award_id = 101".to_owned(),
        format!(
            "UPDATE strategy_award SET award_rate = 0.5, award_count = {stock_102}, award_count_surplus = {stock_102} \
             WHERE strategy_id = 100006 AND award_id = 102"
        ),
        format!(
            "UPDATE award SET award_key = 'user_credit_random', award_config = '{CREDITS},{CREDITS}' WHERE award_id IN (101, 102)"
        ),
        format!("UPDATE rule_tree_node SET rule_value = '101:{CREDITS},{CREDITS}' WHERE rule_key = 'rule_luck_award'"),
        format!(
            "UPDATE raffle_activity_sku SET stock_count = {STOCK_9013}, stock_count_surplus = {STOCK_9013} WHERE sku = 9013"
        ),
    ] {
        app.exec(CONFIG, &sql).await;
    }
    app.ok("mutation { armActivity(activityId: 100301) }").await;
    let router = persistence::ShardRouter::new(
        app.settings.database.shard_urls.len(),
        app.settings.database.tables_per_shard,
    )
    .unwrap();
    let mut users = Vec::new();
    for shard in [0, 1] {
        users.extend(
            (0..)
                .map(|i| format!("fault{i}"))
                .filter(|u| router.route(u).db == shard)
                .take(USERS / 2),
        );
    }
    for user in &users {
        for n in 0..3 {
            app.ok(&format!(
                r#"mutation {{ rechargeQuota(userId: "{user}", sku: 9011, outBusinessNo: "quota-{user}-{n}") {{ orderId }} }}"#
            ))
            .await;
        }
    }
    World {
        app,
        users,
        _serial: serial,
    }
}

/// Shard 01 of the world behind a fault proxy, with the deadlines of a shard fault (connect 1 s,
/// relay confirms 1 s, a 2 s relay lease: rows whose claim got no answer are due again soon)
/// and `tweak` on top: the proxy, the world, and shard 01's direct URL (for a connection that
/// bypasses the proxy).
pub async fn world_with_shard_01_proxied(
    tweak: impl FnOnce(&mut Settings),
) -> (test_support::proxy::FaultProxy, World, String) {
    let server = test_support::services::mysql_server_url();
    let proxy = test_support::proxy::FaultProxy::start(upstream_of(&server).await)
        .await
        .unwrap();
    let mut direct = String::new();
    let w = world(
        |s| {
            direct = s.database.shard_urls[0].clone();
            s.database.shard_urls[0] = through(&direct, proxy.addr());
            s.database.connect_timeout_ms = 1_000;
            s.relay.confirm_timeout_ms = 1_000;
            s.relay.lease_ms = 2_000;
            tweak(s);
        },
        STOCK_102,
    )
    .await;
    (proxy, w, direct)
}

/// The `host:port` of a `scheme://[user[:password]@]host:port[/…]` URL.
fn server_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.split_once('/').map_or(rest, |(server, _)| server);
    rest.rsplit_once('@').map_or(rest, |(_, server)| server)
}

/// The address of a URL's server.
pub async fn upstream_of(url: &str) -> SocketAddr {
    let server = server_of(url);
    tokio::net::lookup_host(server)
        .await
        .unwrap()
        .next()
        .unwrap_or_else(|| panic!("{server} resolves"))
}

/// `url` with its server replaced by `proxy`.
pub fn through(url: &str, proxy: SocketAddr) -> String {
    url.replacen(server_of(url), &proxy.to_string(), 1)
}

/// `GET /ready`: status, body and how long it took.
pub async fn ready(app: &TestApp) -> (u16, Value, Duration) {
    let started = Instant::now();
    let r = app.client.get(format!("{}/ready", app.address)).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null), started.elapsed())
}

/// Polls `/ready` until it answers 200; how long that took, or `None` after `limit`.
pub async fn until_ready(app: &TestApp, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if ready(app).await.0 == 200 {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// How one draw of the load ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Answered with an award.
    Won {
        order_id: String,
        message_id: String,
        award_id: i64,
    },
    /// Answered with this error code (`http` / `timeout`: no GraphQL answer at all).
    Failed(String),
}

/// One draw of the load.
#[derive(Debug, Clone)]
pub struct Sample {
    pub user: String,
    /// When it was sent, since the load started.
    pub at: Duration,
    /// How long its answer took.
    pub took: Duration,
    pub outcome: Outcome,
}

impl Sample {
    pub fn won(&self) -> bool {
        matches!(self.outcome, Outcome::Won { .. })
    }

    /// When the answer arrived, since the load started.
    pub fn answered(&self) -> Duration {
        self.at + self.took
    }
}

/// A steady stream of draws: each user draws, waits [`PAUSE`], draws again, until stopped.
pub struct Load {
    started: Instant,
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

const DRAW: &str = "mutation { draw(activityId: 100301) { awardId orderId messageId } }";

fn outcome(body: &Value) -> Outcome {
    if let Some(code) = test_support::app::error_code_of(body) {
        return Outcome::Failed(code.to_owned());
    }
    let d = &body["data"]["draw"];
    match (d["orderId"].as_str(), d["messageId"].as_str(), d["awardId"].as_i64()) {
        (Some(order_id), Some(message_id), Some(award_id)) => Outcome::Won {
            order_id: order_id.to_owned(),
            message_id: message_id.to_owned(),
            award_id,
        },
        _ => Outcome::Failed("no-code".to_owned()),
    }
}

impl Load {
    /// Starts the users of `world` drawing on the server at `address`, each with its own token.
    pub fn start(world: &World, address: &str) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let tasks = world
            .users
            .iter()
            .map(|user| {
                let (client, stop, samples) = (client.clone(), stop.clone(), samples.clone());
                let (user, token) = (user.clone(), world.app.user_token(user));
                let url = format!("{address}/graphql");
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let at = started.elapsed();
                        let sent = client
                            .post(&url)
                            .bearer_auth(&token)
                            .json(&json!({ "query": DRAW }))
                            .send()
                            .await;
                        let outcome = match sent {
                            Err(e) if e.is_timeout() => Outcome::Failed("timeout".to_owned()),
                            Err(_) => Outcome::Failed("http".to_owned()),
                            Ok(r) => match r.json::<Value>().await {
                                Ok(body) => outcome(&body),
                                Err(e) if e.is_timeout() => Outcome::Failed("timeout".to_owned()),
                                Err(_) => Outcome::Failed("http".to_owned()),
                            },
                        };
                        let took = started.elapsed() - at;
                        samples.lock().unwrap().push(Sample {
                            user: user.clone(),
                            at,
                            took,
                            outcome,
                        });
                        tokio::time::sleep(PAUSE).await;
                    }
                })
            })
            .collect();
        Self {
            started,
            stop,
            samples,
            tasks,
        }
    }

    /// Time since the load started (to mark when a fault began and ended).
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// The draws answered so far.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().unwrap().clone()
    }

    /// Waits until a draw of one of `users` sent at `since` or later wins; how long after
    /// `since` its answer came, or `None` after `limit`.
    pub async fn first_win_after(&self, since: Duration, users: &[String], limit: Duration) -> Option<Duration> {
        loop {
            let first = self
                .samples()
                .iter()
                .filter(|s| s.at >= since && s.won() && users.contains(&s.user))
                .map(Sample::answered)
                .min();
            if let Some(t) = first {
                return Some(t.saturating_sub(since));
            }
            if self.now() > since + limit {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `done` accepts the draws answered so far, or `limit` passes; whether it did.
    pub async fn until(&self, limit: Duration, done: impl Fn(&[Sample]) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if done(&self.samples()) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        done(&self.samples())
    }

    /// Stops the users (each finishes the draw it is in) and returns every draw.
    pub async fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.unwrap();
        }
        Arc::try_unwrap(self.samples)
            .map(|m| m.into_inner().unwrap())
            .unwrap_or_else(|a| a.lock().unwrap().clone())
    }
}

/// Award ids won by the draws answered with an award.
pub fn wins_of(samples: &[Sample], award: i64) -> usize {
    samples
        .iter()
        .filter(|s| matches!(s.outcome, Outcome::Won { award_id, .. } if award_id == award))
        .count()
}

/// Rows of split table `{table}_000…` on both shards matching `filter`.
pub async fn count_split(app: &TestApp, table: &str, filter: &str) -> i64 {
    let mut n = 0;
    for shard in [SHARD_01, SHARD_02] {
        for t in 0..app.settings.database.tables_per_shard {
            n += app
                .int(shard, &format!("SELECT COUNT(*) FROM {table}_{t:03} WHERE {filter}"))
                .await;
        }
    }
    n
}

async fn count_both(app: &TestApp, sql: &str) -> i64 {
    app.int(SHARD_01, sql).await + app.int(SHARD_02, sql).await
}

/// Waits (up to `limit`) until every event is published and every `send_award` delivered; how
/// long that took.
pub async fn drained(app: &TestApp, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    loop {
        let waiting = count_both(
            app,
            "SELECT COUNT(*) FROM task WHERE state <> 'completed' OR (topic = 'send_award' AND delivered_at IS NULL)",
        )
        .await;
        if waiting == 0 {
            return Some(started.elapsed());
        }
        if started.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What must hold after any fault, read from MySQL.
#[derive(Debug, Default)]
pub struct Invariants {
    /// Acknowledged draws without their award record or `send_award` event.
    pub lost: usize,
    /// Award records beyond an award's configured stock, summed over awards.
    pub oversold: i64,
    /// Effects applied more than once: duplicate inbox rows, plus awards' worth of credits paid
    /// beyond the delivered awards.
    pub doubled: i64,
    /// Events not published, `send_award` events not delivered, award records not completed, or
    /// delivered awards whose credits are missing.
    pub undelivered: i64,
    /// Award records of draws answered with an error: saves that got no answer in time
    /// (`0001`) but were applied. Allowed; reported.
    pub unacknowledged: usize,
    /// What broke, for the failure message.
    pub details: Vec<String>,
}

impl Invariants {
    pub fn hold(&self) -> bool {
        self.lost == 0 && self.oversold == 0 && self.doubled == 0 && self.undelivered == 0
    }
}

fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

fn int(v: &Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("{v} is not an integer"))
}

/// Checks the invariants of the rigged world after the draws `samples` were answered.
pub async fn invariants(app: &TestApp, samples: &[Sample]) -> Invariants {
    let mut inv = Invariants::default();
    // Award records (order id → award, state, user) and send_award events (id → delivered).
    let mut records: HashMap<String, (i64, String, String)> = HashMap::new();
    let mut events: HashMap<String, bool> = HashMap::new();
    let mut credits: HashMap<String, i64> = HashMap::new();
    for shard in [SHARD_01, SHARD_02] {
        for t in 0..app.settings.database.tables_per_shard {
            for r in app
                .sql(
                    shard,
                    &format!("SELECT order_id, award_id, award_state, user_id FROM user_award_record_{t:03}"),
                )
                .await
            {
                records.insert(
                    text(&r["order_id"]),
                    (int(&r["award_id"]), text(&r["award_state"]), text(&r["user_id"])),
                );
            }
        }
        for r in app
            .sql(
                shard,
                "SELECT message_id, CAST(delivered_at IS NOT NULL AS SIGNED) AS delivered FROM task WHERE topic = 'send_award'",
            )
            .await
        {
            events.insert(text(&r["message_id"]), int(&r["delivered"]) == 1);
        }
        for r in app
            .sql(
                shard,
                "SELECT user_id, CAST(total_amount * 100 AS SIGNED) AS cents FROM user_credit_account",
            )
            .await
        {
            credits.insert(text(&r["user_id"]), int(&r["cents"]));
        }
        let unpublished = app
            .int(shard, "SELECT COUNT(*) FROM task WHERE state <> 'completed'")
            .await;
        if unpublished > 0 {
            inv.undelivered += unpublished;
            inv.details
                .push(format!("{unpublished} events not published on shard {shard}"));
        }
        let duplicates = app
            .int(shard, "SELECT COUNT(*) - COUNT(DISTINCT message_id, topic) FROM inbox")
            .await;
        if duplicates > 0 {
            inv.doubled += duplicates;
            inv.details
                .push(format!("{duplicates} duplicate inbox rows on shard {shard}"));
        }
        let inboxed = app
            .int(shard, "SELECT COUNT(*) FROM inbox WHERE topic = 'send_award'")
            .await;
        let delivered = app
            .int(
                shard,
                "SELECT COUNT(*) FROM task WHERE topic = 'send_award' AND delivered_at IS NOT NULL",
            )
            .await;
        if inboxed != delivered {
            inv.doubled += (inboxed - delivered).max(0);
            inv.undelivered += (delivered - inboxed).max(0);
            inv.details.push(format!(
                "shard {shard}: {inboxed} send_award inbox rows, {delivered} delivered events"
            ));
        }
    }
    // Lost: acknowledged, but no record or no event.
    let messages: HashSet<&str> = events.keys().map(String::as_str).collect();
    for s in samples {
        if let Outcome::Won {
            order_id, message_id, ..
        } = &s.outcome
            && (!records.contains_key(order_id) || !messages.contains(message_id.as_str()))
        {
            inv.lost += 1;
            if inv.details.len() < 10 {
                inv.details.push(format!(
                    "acknowledged draw {order_id} / {message_id} of {} is missing",
                    s.user
                ));
            }
        }
    }
    let acknowledged: HashSet<&str> = samples
        .iter()
        .filter_map(|s| match &s.outcome {
            Outcome::Won { order_id, .. } => Some(order_id.as_str()),
            Outcome::Failed(_) => None,
        })
        .collect();
    inv.unacknowledged = records.keys().filter(|o| !acknowledged.contains(o.as_str())).count();
    // Oversold: records per award against its configured stock.
    let mut per_award: BTreeMap<i64, i64> = BTreeMap::new();
    for (award, _, _) in records.values() {
        *per_award.entry(*award).or_default() += 1;
    }
    for r in app
        .sql(
            CONFIG,
            "SELECT award_id, award_count FROM strategy_award WHERE strategy_id = 100006",
        )
        .await
    {
        let (award, stock) = (int(&r["award_id"]), int(&r["award_count"]));
        let sold = per_award.get(&award).copied().unwrap_or(0);
        if sold > stock {
            inv.oversold += sold - stock;
            inv.details
                .push(format!("award {award}: {sold} records, stock {stock}"));
        }
    }
    // Delivered once: every event delivered, every record completed, credits = delivered awards.
    let pending = events.values().filter(|d| !**d).count() as i64;
    if pending > 0 {
        inv.undelivered += pending;
        inv.details.push(format!("{pending} send_award events not delivered"));
    }
    let mut completed: HashMap<&str, i64> = HashMap::new();
    for (_, state, user) in records.values() {
        if state == "completed" {
            *completed.entry(user.as_str()).or_default() += 1;
        } else {
            inv.undelivered += 1;
        }
    }
    // The load's users earn credits only by their awards (other users of a scenario, such as
    // the commands' buyer, are checked by the scenario itself).
    let drawing: HashSet<&str> = samples.iter().map(|s| s.user.as_str()).collect();
    let users: HashSet<&str> = completed
        .keys()
        .copied()
        .chain(credits.keys().map(String::as_str))
        .filter(|u| drawing.contains(u))
        .collect();
    for user in users {
        let want = completed.get(user).copied().unwrap_or(0) * CREDITS * 100;
        let got = credits.get(user).copied().unwrap_or(0);
        if got != want {
            let awards = (got - want) / (CREDITS * 100);
            inv.doubled += awards.max(0);
            inv.undelivered += (-awards).max(0);
            inv.details
                .push(format!("{user}: {got} credit cents for awards worth {want}"));
        }
    }
    inv
}

/// One fault's summary: printed to stderr and appended to [`summary_path`], then checked.
pub struct Report {
    /// Short name (`redis-blackhole`, …).
    pub fault: &'static str,
    /// What was done.
    pub what: String,
    /// The worst draw latency allowed (the deadline that bounds the fault, with a margin).
    pub limit: Duration,
    /// Codes draws may fail with during the fault.
    pub allowed: &'static [&'static str],
    /// Observations worth a line (healing times, `/ready`, …).
    pub notes: Vec<String>,
    /// Checks that failed.
    pub broken: Vec<String>,
}

impl Report {
    pub fn new(
        fault: &'static str,
        what: impl Into<String>,
        limit: Duration,
        allowed: &'static [&'static str],
    ) -> Self {
        Self {
            fault,
            what: what.into(),
            limit,
            allowed,
            notes: Vec::new(),
            broken: Vec::new(),
        }
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Records a failed check unless `ok`.
    pub fn check(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.broken.push(what.into());
        }
    }

    /// Prints and stores the summary of `samples` and `inv`, then fails the test if a check,
    /// an invariant or the latency limit broke.
    pub fn finish(mut self, samples: &[Sample], inv: &Invariants) {
        let ok = samples.iter().filter(|s| s.won()).count();
        let worst = samples.iter().map(|s| s.took).max().unwrap_or_default();
        let mut codes: BTreeMap<&str, usize> = BTreeMap::new();
        for s in samples {
            if let Outcome::Failed(code) = &s.outcome {
                *codes.entry(code.as_str()).or_default() += 1;
            }
        }
        let errors = if codes.is_empty() {
            "none".to_owned()
        } else {
            codes
                .iter()
                .map(|(c, n)| format!("{c}×{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        self.check(
            worst <= self.limit,
            format!(
                "worst latency {} ms over the limit {} ms",
                worst.as_millis(),
                self.limit.as_millis()
            ),
        );
        for code in codes.keys() {
            self.check(self.allowed.contains(code), format!("draws failed with {code}"));
        }
        self.check(ok > 0, "no draw succeeded");
        self.check(inv.hold(), format!("invariants broken: {}", inv.details.join("; ")));
        let mut out = String::new();
        let _ = writeln!(out, "fault {}: {}", self.fault, self.what);
        let _ = writeln!(
            out,
            "  draws attempted {}, ok {}, worst latency {} ms (limit {} ms), errors by code: {errors}",
            samples.len(),
            ok,
            worst.as_millis(),
            self.limit.as_millis()
        );
        for note in &self.notes {
            let _ = writeln!(out, "  {note}");
        }
        let _ = writeln!(
            out,
            "  invariants: lost {}, oversold {}, doubled {}, undelivered {} (applied though answered with an error: {}) => {}",
            inv.lost,
            inv.oversold,
            inv.doubled,
            inv.undelivered,
            inv.unacknowledged,
            if self.broken.is_empty() { "ok" } else { "FAILED" }
        );
        for b in &self.broken {
            let _ = writeln!(out, "  FAILED: {b}");
        }
        eprint!("{out}");
        let path = summary_path();
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(out.as_bytes()));
        if let Err(e) = written {
            eprintln!("could not append to {}: {e}", path.display());
        }
        assert!(self.broken.is_empty(), "fault {} failed:\n{out}", self.fault);
    }
}

/// Seconds with one decimal, for notes.
pub fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}
