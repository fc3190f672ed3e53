//! Prometheus metrics and `/metrics` (text exposition format 0.0.4).
//!
//! One [`Metrics`] per process holds one registry with the GraphQL and draw families (here) and
//! the adapters' families ([`persistence::metrics`]: relay, consumers, read-model lag, outbox
//! and pool gauges). Counting is always on and costs an atomic add on handles resolved in
//! advance; what `metrics.*` decides is who may read them ([`Exposure`]):
//!
//! * `metrics.listen` set: a listener of its own serves `/metrics` (`serve` and `relay`), and
//!   the API listener does not; an address off loopback needs `metrics.token`;
//! * otherwise `serve` answers `/metrics` on its API listener when `metrics.token` is set or
//!   `http.host` is a loopback address, and not at all otherwise (secure by default, like the
//!   development token secret); `relay` serves none;
//! * with `metrics.token`, a scrape without `Authorization: Bearer <token>` answers 401.
//!
//! Operation names are bounded: anonymous operations, requests whose operation is not known
//! (unparsable, persisted document not found, unknown `operationName`) and names beyond the
//! first `metrics.max_operations` each collapse to one fixed label. docs/OPERATIONS.md §Metrics
//! lists every family.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_graphql::parser::types::ExecutableDocument;
use domain::ErrorCode;
use domain::activity::protection::{Guard, GuardRecorder};
use persistence::Databases;
use persistence::metrics::PersistenceMetrics;
use poem::http::{StatusCode, header};
use poem::{Endpoint, Request, Response};
use prometheus::{
    Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

use crate::settings::{MetricsSection, Settings};

/// Label of operations without a name.
pub const ANONYMOUS: &str = "(anonymous)";
/// Label of requests whose operation is not known (no parsed document, or `operationName`
/// names none of its operations).
pub const UNKNOWN: &str = "(unknown)";
/// Label of named operations beyond `metrics.max_operations`.
pub const OTHER: &str = "(other)";

/// Seconds: GraphQL latency buckets (1 ms … 10 s).
const LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The handles of one operation label, resolved once.
#[derive(Clone)]
pub struct Operation {
    name: Arc<str>,
    requests: IntCounter,
    duration: Histogram,
}

/// GraphQL requests, errors and latency by operation name (HTTP `/graphql`).
pub struct GraphqlMetrics {
    requests: IntCounterVec,
    errors: IntCounterVec,
    duration: HistogramVec,
    named: RwLock<HashMap<String, Operation>>,
    max_operations: usize,
    anonymous: Operation,
    unknown: Operation,
    other: Operation,
}

impl GraphqlMetrics {
    fn register(registry: &Registry, max_operations: usize) -> prometheus::Result<Self> {
        let requests = IntCounterVec::new(
            Opts::new(
                "bm_graphql_requests_total",
                "GraphQL operations run over HTTP, by operation name.",
            ),
            &["operation"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "bm_graphql_errors_total",
                "Errors in GraphQL responses, by operation name and extensions.code.",
            ),
            &["operation", "code"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "bm_graphql_request_duration_seconds",
                "Seconds from a GraphQL operation's document found to its response built, by operation name.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["operation"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        let fixed = |name: &str| -> prometheus::Result<Operation> {
            Ok(Operation {
                name: name.into(),
                requests: requests.get_metric_with_label_values(&[name])?,
                duration: duration.get_metric_with_label_values(&[name])?,
            })
        };
        Ok(Self {
            anonymous: fixed(ANONYMOUS)?,
            unknown: fixed(UNKNOWN)?,
            other: fixed(OTHER)?,
            requests,
            errors,
            duration,
            named: RwLock::new(HashMap::new()),
            max_operations,
        })
    }

    /// The label of the operation a request runs: `requested` (its `operationName`) chosen in
    /// `doc`, or its one operation.
    pub fn operation(&self, requested: Option<&str>, doc: Option<&ExecutableDocument>) -> Operation {
        let Some(doc) = doc else {
            return self.unknown.clone();
        };
        let mut ops = doc.operations.iter();
        let chosen = match requested {
            Some(wanted) => ops.find(|(name, _)| name.is_some_and(|n| n.as_str() == wanted)),
            None => match (ops.next(), ops.next()) {
                (Some(one), None) => Some(one),
                _ => None,
            },
        };
        match chosen {
            None => self.unknown.clone(),
            Some((None, _)) => self.anonymous.clone(),
            Some((Some(name), _)) => self.named(name.as_str()),
        }
    }

    fn named(&self, name: &str) -> Operation {
        if let Some(op) = self.named.read().unwrap_or_else(|e| e.into_inner()).get(name) {
            return op.clone();
        }
        let mut named = self.named.write().unwrap_or_else(|e| e.into_inner());
        if let Some(op) = named.get(name) {
            return op.clone();
        }
        if named.len() >= self.max_operations {
            return self.other.clone();
        }
        let (Ok(requests), Ok(duration)) = (
            self.requests.get_metric_with_label_values(&[name]),
            self.duration.get_metric_with_label_values(&[name]),
        ) else {
            return self.other.clone();
        };
        let op = Operation {
            name: name.into(),
            requests,
            duration,
        };
        named.insert(name.to_owned(), op.clone());
        op
    }

    /// Counts one operation that took `took`, and each error of its response by its code.
    pub fn observe(&self, op: &Operation, took: Duration, resp: &async_graphql::Response) {
        op.requests.inc();
        op.duration.observe(took.as_secs_f64());
        self.count_errors(op, resp);
    }

    /// Counts one operation started (a subscription, or a query or mutation over `/graphql/ws`,
    /// whose latency is observed apart with [`GraphqlMetrics::took`]).
    pub fn started(&self, op: &Operation) {
        op.requests.inc();
    }

    /// Observes the latency of a query or mutation.
    pub fn took(&self, op: &Operation, took: Duration) {
        op.duration.observe(took.as_secs_f64());
    }

    /// Counts each error of `resp` (one response, or one event of a subscription) by its code.
    pub fn count_errors(&self, op: &Operation, resp: &async_graphql::Response) {
        for e in &resp.errors {
            let code = match e.extensions.as_ref().and_then(|x| x.get("code")) {
                Some(async_graphql::Value::String(c)) => c.as_str(),
                // What `/graphql` answers for an error without a code (see `http::finish`).
                _ if e.path.is_empty() => crate::graphql::codes::validation_code(&e.message),
                _ => ErrorCode::Unknown.code(),
            };
            if let Ok(c) = self.errors.get_metric_with_label_values(&[&*op.name, code]) {
                c.inc();
            }
        }
    }
}

/// Draws by outcome and refusals by guard.
pub struct DrawMetrics {
    outcomes: IntCounterVec,
    won: IntCounter,
    /// One per [`Guard::ALL`], in its order.
    guards: Vec<IntCounter>,
}

impl DrawMetrics {
    fn register(registry: &Registry) -> prometheus::Result<Self> {
        let outcomes = IntCounterVec::new(
            Opts::new(
                "bm_draws_total",
                "Draws (the draw mutation) by outcome: won, or the error code the draw answered.",
            ),
            &["outcome"],
        )?;
        let guards = IntCounterVec::new(
            Opts::new(
                "bm_draw_guard_refusals_total",
                "Draws refused by a guard of this process (degraded, rate_limited, blacklisted, timed_out); drawGuards sums every instance.",
            ),
            &["guard"],
        )?;
        registry.register(Box::new(outcomes.clone()))?;
        registry.register(Box::new(guards.clone()))?;
        Ok(Self {
            won: outcomes.get_metric_with_label_values(&["won"])?,
            guards: Guard::ALL
                .iter()
                .map(|g| guards.get_metric_with_label_values(&[g.name()]))
                .collect::<prometheus::Result<_>>()?,
            outcomes,
        })
    }

    /// Counts one draw: won (`Ok`), or refused with `Err(code)`.
    pub fn record(&self, outcome: Result<(), ErrorCode>) {
        match outcome {
            Ok(()) => self.won.inc(),
            Err(code) => {
                if let Ok(c) = self.outcomes.get_metric_with_label_values(&[code.code()]) {
                    c.inc();
                }
            }
        }
    }

    fn refused(&self, guard: Guard) {
        if let Some(i) = Guard::ALL.iter().position(|g| *g == guard)
            && let Some(c) = self.guards.get(i)
        {
            c.inc();
        }
    }
}

/// The guard recorder of the draw: the shared count `drawGuards` reads (`inner`), and this
/// process's `bm_draw_guard_refusals_total` from the same call.
pub struct CountingGuards<G> {
    inner: G,
    metrics: Arc<Metrics>,
}

impl<G: GuardRecorder> CountingGuards<G> {
    /// Counts into `inner` and `metrics`.
    pub fn new(inner: G, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

impl<G: GuardRecorder> GuardRecorder for CountingGuards<G> {
    fn refused(&self, guard: Guard) {
        self.metrics.draws.refused(guard);
        self.inner.refused(guard);
    }
}

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    /// GraphQL requests.
    pub graphql: GraphqlMetrics,
    /// Draws and guards.
    pub draws: DrawMetrics,
    /// The adapters' families.
    pub persistence: PersistenceMetrics,
    db: Databases,
    redis: Option<RedisGauges>,
    scrape_timeout: Duration,
}

/// Whether Redis answers a `PING` at scrape time, and how fast (the process's one multiplexed
/// connection, the one every read model and counter uses).
struct RedisGauges {
    connection: persistence::redis::Connection,
    up: IntGauge,
    ping: Gauge,
}

impl RedisGauges {
    /// `PING` within `deadline`: up 1 and its round trip, or up 0 (the last round trip stays).
    async fn refresh(&self, deadline: Duration) {
        let started = std::time::Instant::now();
        match tokio::time::timeout(deadline, persistence::redis::ping(&self.connection)).await {
            Ok(true) => {
                self.up.set(1);
                self.ping.set(started.elapsed().as_secs_f64());
            }
            Ok(false) | Err(_) => self.up.set(0),
        }
    }
}

impl Metrics {
    /// Registers every family, for the shards of `db`.
    ///
    /// # Errors
    /// A family registered twice (a bug).
    pub fn new(settings: &MetricsSection, db: &Databases) -> anyhow::Result<Self> {
        let registry = Registry::new();
        Ok(Self {
            graphql: GraphqlMetrics::register(&registry, settings.max_operations)?,
            draws: DrawMetrics::register(&registry)?,
            persistence: PersistenceMetrics::register(&registry, db.shards.len())?,
            registry,
            db: db.clone(),
            redis: None,
            scrape_timeout: Duration::from_millis(settings.scrape_timeout_ms.max(1)),
        })
    }

    /// Adds `bm_redis_up` and `bm_redis_ping_seconds`, read over `connection` when scraped.
    ///
    /// # Errors
    /// The families registered twice (a bug).
    pub fn with_redis(mut self, connection: persistence::redis::Connection) -> anyhow::Result<Self> {
        let up = IntGauge::new(
            "bm_redis_up",
            "1 when Redis answered PING within metrics.scrape_timeout_ms at the last scrape, 0 otherwise",
        )?;
        let ping = Gauge::new(
            "bm_redis_ping_seconds",
            "Round trip of the last PING Redis answered (seconds)",
        )?;
        self.registry.register(Box::new(up.clone()))?;
        self.registry.register(Box::new(ping.clone()))?;
        self.redis = Some(RedisGauges { connection, up, ping });
        Ok(self)
    }

    /// Reads the gauges (each shard and Redis within `metrics.scrape_timeout_ms`, at the same
    /// time) and renders every family in the text format.
    pub async fn render(&self) -> String {
        let redis = async {
            if let Some(redis) = &self.redis {
                redis.refresh(self.scrape_timeout).await;
            }
        };
        tokio::join!(self.persistence.store.refresh(&self.db, self.scrape_timeout), redis);
        let mut out = String::new();
        if let Err(e) = TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "metrics could not be encoded");
        }
        out
    }
}

/// Where `/metrics` is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exposure {
    /// Nowhere.
    Off,
    /// On the API listener of `serve`.
    ApiListener,
    /// On a listener of its own at this address.
    Listener(String),
}

/// Where `settings` let `/metrics` be served, for `serve` (`api_listener`) or `relay`.
///
/// # Errors
/// `metrics.listen` off loopback without `metrics.token`.
pub fn exposure(settings: &Settings, api_listener: bool) -> anyhow::Result<Exposure> {
    let m = &settings.metrics;
    if !m.enabled {
        return Ok(Exposure::Off);
    }
    let listen = m.listen.trim();
    if !listen.is_empty() {
        let host = listen.rsplit_once(':').map_or(listen, |(host, _)| host);
        if m.token.is_empty() && !crate::auth::is_loopback(host) {
            anyhow::bail!(
                "metrics.listen {listen} is not a loopback address: set metrics.token \
                 (BIG_MARKET_METRICS__TOKEN) so scrapes need a bearer token"
            );
        }
        return Ok(Exposure::Listener(listen.to_owned()));
    }
    if !api_listener {
        tracing::info!("no metrics listener: set metrics.listen to scrape this process");
        return Ok(Exposure::Off);
    }
    if m.token.is_empty() && !crate::auth::is_loopback(&settings.http.host) {
        tracing::warn!(
            http.host = %settings.http.host,
            "/metrics is not served: set metrics.token, or metrics.listen on a loopback address"
        );
        return Ok(Exposure::Off);
    }
    Ok(Exposure::ApiListener)
}

/// `GET /metrics`.
pub struct MetricsEndpoint {
    /// What is rendered.
    pub metrics: Arc<Metrics>,
    /// The bearer token a scrape must send (`None`: none needed).
    pub token: Option<String>,
}

impl MetricsEndpoint {
    /// The endpoint of `settings.metrics.token` over `metrics`.
    pub fn new(settings: &MetricsSection, metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            token: (!settings.token.is_empty()).then(|| settings.token.clone()),
        }
    }

    fn authorized(&self, req: &Request) -> bool {
        let Some(token) = &self.token else { return true };
        let sent = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        // Compared in constant time (the length aside).
        sent.len() == token.len() && sent.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

impl Endpoint for MetricsEndpoint {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if !self.authorized(&req) {
            return Ok(Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .header(header::WWW_AUTHENTICATE, "Bearer")
                .body("a bearer token (metrics.token) is required\n"));
        }
        Ok(Response::builder()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .header(header::CACHE_CONTROL, "no-store")
            .body(self.metrics.render().await))
    }
}

/// A bound listener serving only `/metrics` (`metrics.listen`).
pub struct MetricsListener {
    port: u16,
    acceptor: poem::listener::TcpAcceptor,
    endpoint: MetricsEndpoint,
}

impl MetricsListener {
    /// Binds `addr`.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn bind(addr: &str, endpoint: MetricsEndpoint) -> anyhow::Result<Self> {
        use poem::listener::{Acceptor, Listener, TcpListener};
        let acceptor = TcpListener::bind(addr.to_owned())
            .into_acceptor()
            .await
            .map_err(|e| anyhow::anyhow!("binding metrics.listen {addr}: {e}"))?;
        let port = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().map(|s| s.port()))
            .unwrap_or_default();
        Ok(Self {
            port,
            acceptor,
            endpoint,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until the task is aborted (scrapes are short and hold no state).
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        use poem::EndpointExt;
        let app = poem::Route::new().at("/metrics", poem::get(self.endpoint)).boxed();
        tracing::info!(metrics.port = self.port, "metrics listening");
        tokio::spawn(async move {
            if let Err(e) = poem::Server::new_with_acceptor(self.acceptor).run(app).await {
                tracing::error!(error = %e, "metrics listener stopped");
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(host: &str, listen: &str, token: &str) -> Settings {
        let mut s = Settings::default();
        s.http.host = host.into();
        s.metrics.listen = listen.into();
        s.metrics.token = token.into();
        s
    }

    #[test]
    fn metrics_are_served_on_loopback_or_with_a_token_only() {
        let on = |s: &Settings, api| exposure(s, api).ok();
        assert_eq!(on(&settings("127.0.0.1", "", ""), true), Some(Exposure::ApiListener));
        assert_eq!(on(&settings("0.0.0.0", "", ""), true), Some(Exposure::Off));
        assert_eq!(on(&settings("0.0.0.0", "", "t"), true), Some(Exposure::ApiListener));
        assert_eq!(on(&settings("127.0.0.1", "", ""), false), Some(Exposure::Off));
        assert_eq!(
            on(&settings("0.0.0.0", "127.0.0.1:9464", ""), true),
            Some(Exposure::Listener("127.0.0.1:9464".into()))
        );
        assert_eq!(
            on(&settings("0.0.0.0", "[::1]:9464", ""), false),
            Some(Exposure::Listener("[::1]:9464".into()))
        );
        assert!(exposure(&settings("127.0.0.1", "0.0.0.0:9464", ""), true).is_err());
        assert_eq!(
            on(&settings("127.0.0.1", "0.0.0.0:9464", "t"), false),
            Some(Exposure::Listener("0.0.0.0:9464".into()))
        );
        let mut off = settings("127.0.0.1", "0.0.0.0:9464", "");
        off.metrics.enabled = false;
        assert_eq!(on(&off, true), Some(Exposure::Off));
    }

    #[test]
    fn operation_names_past_the_cap_share_one_label() {
        let registry = Registry::new();
        let m = GraphqlMetrics::register(&registry, 2).unwrap();
        let doc = |q: &str| async_graphql::parser::parse_query(q).unwrap();
        let name = |requested: Option<&str>, q: &str| m.operation(requested, Some(&doc(q))).name.to_string();
        assert_eq!(name(None, "{ a }"), ANONYMOUS);
        assert_eq!(name(None, "query A { a }"), "A");
        assert_eq!(name(Some("B"), "query A { a } query B { b }"), "B");
        assert_eq!(name(None, "query A { a } query B { b }"), UNKNOWN);
        assert_eq!(name(Some("C"), "query A { a }"), UNKNOWN);
        assert_eq!(name(None, "query C { c }"), OTHER);
        assert_eq!(name(None, "query A { a }"), "A");
        assert_eq!(m.operation(None, None).name.as_ref(), UNKNOWN);
    }
}
