//! Typed, layered configuration: defaults → TOML file → `BIG_MARKET_…` environment.
//!
//! Nested keys use `__` in environment variables, e.g.
//! `BIG_MARKET_HTTP__PORT=9000`, `BIG_MARKET_DATABASE__SHARD_URLS='["mysql://…/a","mysql://…/b"]'`.

use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// All settings of the service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// HTTP listener and GraphQL options.
    pub http: HttpSettings,
    /// MySQL / MariaDB databases.
    pub database: DatabaseSection,
    /// Redis.
    pub redis: RedisSettings,
    /// Operational switches (the original's DCC values).
    pub switches: Switches,
    /// Business rules.
    pub business: BusinessSettings,
    /// RabbitMQ.
    pub rabbitmq: RabbitSettings,
    /// The outbox relay.
    pub relay: RelaySection,
    /// The consumers (award delivery, stock convergence).
    pub consumers: ConsumerSection,
    /// The draw command.
    pub draw: DrawSection,
    /// Logging.
    pub log: LogSettings,
    /// Prometheus `/metrics`: where it is served and who may read it.
    pub metrics: MetricsSection,
    /// OpenTelemetry traces and their OTLP export.
    pub telemetry: TelemetrySettings,
    /// Who may call: bearer tokens (JWT) and their keys.
    pub auth: AuthSettings,
    /// Award distribution: the gateways that grant non-credit awards.
    pub awards: AwardsSection,
}

/// Award distribution (spec §7.4): credit awards need nothing; other award keys need their
/// gateway, and an award whose key has no configured distributor is never delivered (its task
/// goes `DEAD` until it is replayed with one configured; docs/OPERATIONS.md).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AwardsSection {
    /// The OpenAI account gateway, distributor of `openai_use_count` awards.
    pub openai: OpenAiGatewaySection,
}

/// The OpenAI account gateway (`POST {api_host}/api/v1/account/adjust_quota`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OpenAiGatewaySection {
    /// Base URL (`http://…` or `https://…`). Empty: no gateway, so `openai_use_count` awards
    /// have no distributor.
    pub api_host: String,
    /// `appId` sent with every call.
    pub app_id: String,
    /// `appToken` sent with every call (a secret).
    pub app_token: String,
    /// Milliseconds one call may take, connecting included (then it is retried).
    pub timeout_ms: u64,
}

impl Default for OpenAiGatewaySection {
    fn default() -> Self {
        Self {
            api_host: String::new(),
            app_id: String::new(),
            app_token: String::new(),
            timeout_ms: 3_000,
        }
    }
}

impl std::fmt::Debug for OpenAiGatewaySection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiGatewaySection")
            .field("api_host", &self.api_host)
            .field("app_id", &self.app_id)
            .field("app_token", &if self.app_token.is_empty() { "" } else { "…" })
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

impl OpenAiGatewaySection {
    /// The gateway's settings, when `api_host` is set.
    pub fn gateway_settings(&self) -> Option<persistence::gateway::OpenAiGatewaySettings> {
        (!self.api_host.trim().is_empty()).then(|| persistence::gateway::OpenAiGatewaySettings {
            api_host: self.api_host.trim().to_owned(),
            app_id: self.app_id.clone(),
            app_token: self.app_token.clone(),
            timeout: Duration::from_millis(self.timeout_ms.max(1)),
        })
    }
}

/// Bearer-token (JWT) authentication; see `docs/SECURITY.md`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthSettings {
    /// HS256 secret (at least 32 bytes). Empty: tokens are verified with `jwks_file` only, or,
    /// when that is empty too, with the development secret in `dev_secret_file` (loopback only).
    pub secret: String,
    /// File of the development secret, created on first use (relative to the working directory).
    pub dev_secret_file: String,
    /// A JWKS file (RS256 / ES256 public keys of an identity provider; `kid` selects the key).
    pub jwks_file: String,
    /// Required `iss` claim of every token.
    pub issuer: String,
    /// Claim that carries the user id (the original's tokens: `openId`); `sub` is the fallback.
    pub user_claim: String,
    /// Claim that carries the role: `user` (the default when absent), `service` or `admin`.
    pub role_claim: String,
    /// Seconds of clock skew tolerated on `exp` / `nbf`.
    pub leeway_secs: u64,
    /// Lifetime in seconds of the tokens `big-market token` prints.
    pub token_ttl_secs: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            secret: String::new(),
            dev_secret_file: ".big-market/dev-secret".into(),
            jwks_file: String::new(),
            issuer: "big-market".into(),
            user_claim: "openId".into(),
            role_claim: "role".into(),
            leeway_secs: 30,
            token_ttl_secs: 24 * 3600,
        }
    }
}

/// HTTP listener and GraphQL limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpSettings {
    /// Interface to bind.
    pub host: String,
    /// Port to bind (0 = any free port).
    pub port: u16,
    /// Serve GraphiQL at `/graphiql`.
    pub graphiql: bool,
    /// Maximum query depth.
    pub max_depth: usize,
    /// Maximum query complexity.
    pub max_complexity: usize,
    /// Open subscriptions per instance (they share one Redis reader).
    pub max_subscriptions: usize,
    /// Close a `/graphql/ws` connection whose client sent nothing (not even a pong) for this
    /// many seconds; 0 = never.
    pub ws_idle_timeout_secs: u64,
    /// Seconds between server keep-alive pings on `/graphql/ws`.
    pub ws_ping_secs: u64,
    /// Seconds a graphql-transport-ws client has to send `connection_init` (4408 after).
    pub ws_init_timeout_secs: u64,
    /// Browser origins allowed to call the API (CORS) and to open `/graphql/ws` (checked against
    /// `Origin`), e.g. `["https://raffle.example.com"]`. Empty: no CORS answers, any origin on
    /// the socket (tokens, not cookies, authenticate).
    pub cors_allow_origins: Vec<String>,
    /// Compress (br / gzip) text answers of at least this many bytes; 0 = never.
    pub compress_min_bytes: usize,
    /// Milliseconds each dependency check of `/ready` may take (they run concurrently).
    pub ready_timeout_ms: u64,
    /// Answer introspection queries (`__schema`, `__type`); switch off in production if the
    /// schema is not public.
    pub introspection: bool,
    /// Largest request body in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Largest GraphQL document (`query` text) in bytes.
    pub max_query_bytes: usize,
    /// Operations in one JSON batch (1 = batching off).
    pub max_batch: usize,
    /// Root fields of one operation (the raffle page loads with 8).
    pub max_root_fields: usize,
    /// Fields of one operation, every selection counted (`__typename` and aliases included,
    /// fragments expanded).
    pub max_fields: usize,
    /// Mutation fields that spend or grant (`draw`, `rechargeQuota`, `randomRaffle`, …) in one
    /// request.
    pub max_spending_fields: usize,
    /// Open `taskStatus` subscriptions per WebSocket connection.
    pub max_subscriptions_per_connection: usize,
    /// Open `taskStatus` subscriptions per user (over all connections of this instance).
    pub max_subscriptions_per_user: usize,
    /// Close an HTTP connection that sent and received nothing for this many seconds.
    pub idle_timeout_secs: u64,
    /// Close an HTTP/1 connection whose request head (request line and headers) is not complete
    /// this many seconds after its first byte.
    pub header_read_timeout_secs: u64,
    /// Seconds a document registered by a client (automatic persisted queries) stays in Redis
    /// after its last registration; 0 = until deleted.
    pub apq_ttl_secs: u64,
    /// `off`: any document runs (and clients may register documents by hash); `enforce`: only
    /// trusted documents run, except for admin tokens (docs/SECURITY.md).
    pub trusted_documents: TrustedDocuments,
}

/// Which GraphQL documents run (`http.trusted_documents`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrustedDocuments {
    /// Any document runs; clients may register documents by hash (automatic persisted
    /// queries).
    #[default]
    Off,
    /// Only documents whose SHA-256 an operator registered run (by text or by hash); admin
    /// tokens may run any document; clients cannot register documents.
    Enforce,
}

/// Databases: the config DB and one URL per shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseSection {
    /// Config database URL.
    pub config_url: String,
    /// Shard database URLs, in routing order.
    pub shard_urls: Vec<String>,
    /// Split tables per shard.
    pub tables_per_shard: usize,
    /// Pool size per database.
    pub max_connections: u32,
    /// Connect / acquire timeout in milliseconds.
    pub connect_timeout_ms: u64,
    /// Seconds a statement waits for a row lock before its transaction is rolled back.
    pub lock_wait_timeout_secs: u64,
    /// Milliseconds a statement may run on the server before it is interrupted; 0 = no limit.
    pub statement_timeout_ms: u64,
    /// Milliseconds any caller waits for a database to answer one statement or commit (0 = no
    /// limit; keep it above the lock wait): the draw's quota read and save, every command's
    /// transaction, the consumers, the relay and the admin reads. Past it the operation fails
    /// (`0001`); a write without an answer may still be applied, so it keeps the stock it took
    /// and is retried with the same business number.
    pub response_timeout_ms: u64,
}

/// Redis connection and key namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RedisSettings {
    /// Redis URL.
    pub url: String,
    /// Prefix of every key (empty: the original's key names).
    pub key_prefix: String,
    /// Milliseconds one connection attempt may take.
    pub connect_timeout_ms: u64,
    /// Milliseconds one command may wait for its answer.
    pub response_timeout_ms: u64,
    /// Reconnection attempts after the connection fails (commands fail fast meanwhile).
    pub reconnect_retries: usize,
}

impl RedisSettings {
    /// The shared connection's deadlines.
    pub fn deadlines(&self) -> persistence::redis::RedisDeadlines {
        persistence::redis::RedisDeadlines {
            connect: Duration::from_millis(self.connect_timeout_ms.max(1)),
            response: Duration::from_millis(self.response_timeout_ms.max(1)),
            reconnect_retries: self.reconnect_retries,
            ..Default::default()
        }
    }
}

/// Runtime switches: where they start and how often every instance re-reads them. The values
/// themselves are data (`setSwitch`, docs/OPERATIONS.md); a stored value wins over these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Switches {
    /// Initial `blackListSwitch` (apply `rule_blacklist`) until one is stored.
    pub blacklist: bool,
    /// Milliseconds between two re-reads of the stored switches by each instance (the fallback
    /// when a pub/sub message is lost); changes reach every instance within this period.
    pub refresh_ms: u64,
}

impl Default for Switches {
    fn default() -> Self {
        Self {
            blacklist: false,
            refresh_ms: 500,
        }
    }
}

/// RabbitMQ connection and queue naming.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RabbitSettings {
    /// AMQP URL.
    pub url: String,
    /// Prefix of every queue name (empty: the original's topic names).
    pub queue_prefix: String,
}

impl Default for RabbitSettings {
    fn default() -> Self {
        Self {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            queue_prefix: String::new(),
        }
    }
}

/// The outbox relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RelaySection {
    /// Run the relay inside `serve` (`big-market relay` runs it alone).
    pub enabled: bool,
    /// Rows claimed per batch.
    pub batch_size: u64,
    /// Poll interval in milliseconds when not nudged.
    pub poll_interval_ms: u64,
    /// Publish attempts before a row is dead-lettered.
    pub max_attempts: u32,
    /// First retry delay in milliseconds (doubles per attempt).
    pub backoff_base_ms: u64,
    /// Concurrent claim loops per shard (rows claimed with `SKIP LOCKED`, so they never
    /// overlap); 2 lets one loop publish new rows while the other waits for confirms.
    pub loops_per_shard: usize,
    /// Milliseconds a batch waits for the broker (to connect, and for its confirms) before its
    /// unconfirmed rows count a failed attempt.
    pub confirm_timeout_ms: u64,
    /// Milliseconds claimed rows stay leased to their loop (at least twice the confirm
    /// timeout): rows of a relay that died are due again after this.
    pub lease_ms: u64,
}

impl Default for RelaySection {
    fn default() -> Self {
        let d = persistence::outbox::relay::RelaySettings::default();
        Self {
            enabled: true,
            batch_size: d.batch_size,
            poll_interval_ms: d.poll_interval.as_millis() as u64,
            max_attempts: d.max_attempts,
            backoff_base_ms: d.backoff_base.as_millis() as u64,
            loops_per_shard: d.loops_per_shard,
            confirm_timeout_ms: persistence::rabbit::publisher::DEFAULT_CONFIRM_TIMEOUT.as_millis() as u64,
            lease_ms: d.lease.as_millis() as u64,
        }
    }
}

impl RelaySection {
    /// The relay's settings.
    pub fn relay_settings(&self) -> persistence::outbox::relay::RelaySettings {
        persistence::outbox::relay::RelaySettings {
            batch_size: self.batch_size.max(1),
            poll_interval: Duration::from_millis(self.poll_interval_ms.max(1)),
            max_attempts: self.max_attempts.max(1),
            backoff_base: Duration::from_millis(self.backoff_base_ms),
            loops_per_shard: self.loops_per_shard.clamp(1, 16),
            lease: Duration::from_millis(self.lease_ms.max(self.confirm_timeout_ms.saturating_mul(2)).max(1_000)),
            ..Default::default()
        }
    }
}

/// The consumers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerSection {
    /// Run the consumers inside `serve` and `relay`.
    pub enabled: bool,
    /// Unacknowledged deliveries in flight per consumer.
    pub prefetch: u16,
    /// Delivery attempts before a transiently failing message is parked.
    pub max_attempts: u32,
    /// First retry delay in milliseconds (doubles per attempt).
    pub retry_delay_ms: u64,
    /// Longest retry delay in milliseconds.
    pub max_retry_delay_ms: u64,
    /// How often parked messages are re-driven while the database answers (milliseconds).
    pub redrive_interval_ms: u64,
    /// Re-drives of one parked message before it is dead-lettered for good.
    pub max_redrives: u32,
    /// How often the durable award / SKU surplus is lowered to the live Redis counters.
    pub stock_sync_interval_ms: u64,
}

impl Default for ConsumerSection {
    fn default() -> Self {
        Self {
            enabled: true,
            prefetch: 32,
            max_attempts: 8,
            retry_delay_ms: 1_000,
            max_retry_delay_ms: 60_000,
            redrive_interval_ms: 30_000,
            max_redrives: 10,
            stock_sync_interval_ms: 2_000,
        }
    }
}

impl ConsumerSection {
    /// The consumers' settings.
    pub fn consumer_settings(&self) -> persistence::rabbit::consumer::ConsumerSettings {
        persistence::rabbit::consumer::ConsumerSettings {
            prefetch: self.prefetch.max(1),
            max_attempts: self.max_attempts.max(1),
            retry_delay: Duration::from_millis(self.retry_delay_ms),
            max_retry_delay: Duration::from_millis(self.max_retry_delay_ms.max(self.retry_delay_ms)),
            max_redrives: self.max_redrives,
        }
    }
}

/// Prometheus `/metrics` (docs/OPERATIONS.md §Metrics). Counting is always on; these decide
/// where the metrics are served and who may read them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsSection {
    /// Serve `/metrics` at all.
    pub enabled: bool,
    /// `host:port` of a listener of its own for `/metrics` (`serve` and `relay`). Empty: `serve`
    /// answers `/metrics` on its API listener when `token` is set or `http.host` is a loopback
    /// address (otherwise nowhere), and `relay` serves no metrics. Off loopback it needs `token`.
    pub listen: String,
    /// Bearer token a scrape must send (`Authorization: Bearer …`); empty: none (loopback only).
    pub token: String,
    /// Milliseconds a scrape waits for each shard's outbox gauges (a shard that does not answer
    /// in time is reported by `bm_outbox_scrape_up` = 0).
    pub scrape_timeout_ms: u64,
    /// Distinct GraphQL operation names counted; later names share the label `(other)`.
    pub max_operations: usize,
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: String::new(),
            token: String::new(),
            scrape_timeout_ms: 2_000,
            max_operations: 100,
        }
    }
}

impl std::fmt::Debug for MetricsSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsSection")
            .field("enabled", &self.enabled)
            .field("listen", &self.listen)
            .field("token", &if self.token.is_empty() { "" } else { "…" })
            .field("scrape_timeout_ms", &self.scrape_timeout_ms)
            .field("max_operations", &self.max_operations)
            .finish()
    }
}

/// The draw command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DrawSection {
    /// Initial draw deadline in milliseconds (the switch `drawTimeoutMs` until one is stored):
    /// a draw not saved by then answers `0006` and writes nothing (a draw that committed is
    /// always answered as committed).
    pub timeout_ms: u64,
}

impl Default for DrawSection {
    fn default() -> Self {
        Self { timeout_ms: 1_000 }
    }
}

/// Business rules that are configuration, not data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BusinessSettings {
    /// Offset east of UTC, in minutes, of the business day and month boundaries of the
    /// daily / monthly quota (0 = UTC, 480 = China Standard Time).
    pub utc_offset_minutes: i32,
}

/// Log output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogSettings {
    /// `tracing` filter directives (overridden by `RUST_LOG`).
    pub filter: String,
    /// Emit JSON lines instead of human-readable text.
    pub json: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8000,
            graphiql: true,
            max_depth: 16,
            max_complexity: 1_000,
            max_subscriptions: 10_000,
            ws_idle_timeout_secs: 0,
            ws_ping_secs: 15,
            ws_init_timeout_secs: 10,
            cors_allow_origins: Vec::new(),
            compress_min_bytes: 1024,
            ready_timeout_ms: 800,
            introspection: true,
            max_body_bytes: 1024 * 1024,
            max_query_bytes: 32 * 1024,
            max_batch: 1,
            max_root_fields: 16,
            max_fields: 500,
            max_spending_fields: 1,
            max_subscriptions_per_connection: 16,
            max_subscriptions_per_user: 32,
            idle_timeout_secs: 60,
            header_read_timeout_secs: 10,
            apq_ttl_secs: 86_400,
            trusted_documents: TrustedDocuments::Off,
        }
    }
}

impl Default for DatabaseSection {
    fn default() -> Self {
        Self {
            config_url: "mysql://root@127.0.0.1:3306/big_market".into(),
            shard_urls: vec![
                "mysql://root@127.0.0.1:3306/big_market_01".into(),
                "mysql://root@127.0.0.1:3306/big_market_02".into(),
            ],
            tables_per_shard: 4,
            max_connections: 32,
            connect_timeout_ms: 5_000,
            lock_wait_timeout_secs: 1,
            statement_timeout_ms: 10_000,
            response_timeout_ms: 2_000,
        }
    }
}

impl Default for RedisSettings {
    fn default() -> Self {
        let d = persistence::redis::RedisDeadlines::default();
        Self {
            url: "redis://127.0.0.1:6379".into(),
            key_prefix: String::new(),
            connect_timeout_ms: d.connect.as_millis() as u64,
            response_timeout_ms: d.response.as_millis() as u64,
            reconnect_retries: d.reconnect_retries,
        }
    }
}

/// OpenTelemetry traces (docs/OPERATIONS.md §12). Trace contexts are always made, propagated
/// and logged; spans are exported only when an endpoint is configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TelemetrySettings {
    /// Base URL of an OTLP/HTTP collector (`http://collector:4318`; spans go to its
    /// `/v1/traces`). Empty: the standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` /
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, and without those no export.
    pub otlp_endpoint: String,
    /// `service.name` of the exported spans (`OTEL_SERVICE_NAME` wins when set).
    pub service_name: String,
    /// Deadline of one export request, in milliseconds.
    pub export_timeout_ms: u64,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            otlp_endpoint: String::new(),
            service_name: "big-market".into(),
            export_timeout_ms: 5_000,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            filter: "info,sqlx=warn,sea_orm=warn".into(),
            json: false,
        }
    }
}

impl Settings {
    /// Loads defaults, then `file` (or `big-market.toml` if present), then the environment.
    ///
    /// # Errors
    /// A figment error naming the bad key when a value has the wrong type, or when an
    /// explicitly given file does not exist.
    pub fn load(file: Option<&Path>) -> Result<Self, Box<figment::Error>> {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        match file {
            Some(path) if !path.exists() => {
                return Err(Box::new(figment::Error::from(format!(
                    "config file {} does not exist",
                    path.display()
                ))));
            }
            Some(path) => fig = fig.merge(Toml::file(path)),
            None => fig = fig.merge(Toml::file("big-market.toml")),
        }
        fig.merge(Env::prefixed("BIG_MARKET_").split("__").ignore(&["config"]))
            .extract()
            .map_err(Box::new)
    }

    /// The persistence layer's view of the database section.
    pub fn database_settings(&self) -> persistence::DatabaseSettings {
        persistence::DatabaseSettings {
            config_url: self.database.config_url.clone(),
            shard_urls: self.database.shard_urls.clone(),
            tables_per_shard: self.database.tables_per_shard,
            max_connections: self.database.max_connections,
            connect_timeout: Duration::from_millis(self.database.connect_timeout_ms),
            lock_wait_timeout: Duration::from_secs(self.database.lock_wait_timeout_secs.max(1)),
            statement_timeout: Duration::from_millis(self.database.statement_timeout_ms),
            response_timeout: Duration::from_millis(self.database.response_timeout_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_talk_to_the_local_services() {
        let s = Settings::default();
        assert_eq!(s.http.port, 8000);
        assert_eq!(s.database.shard_urls.len(), 2);
        assert!(s.database.config_url.ends_with("/big_market"));
        assert_eq!(s.redis.url, "redis://127.0.0.1:6379");
        assert!(!s.switches.blacklist);
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail fixes the closure's error type
    fn environment_overrides_nested_keys() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("BIG_MARKET_HTTP__PORT", "9100");
            jail.set_env(
                "BIG_MARKET_DATABASE__SHARD_URLS",
                r#"["mysql://a/x","mysql://b/y","mysql://c/z","mysql://d/w"]"#,
            );
            jail.set_env("BIG_MARKET_SWITCHES__BLACKLIST", "true");
            jail.set_env("BIG_MARKET_AWARDS__OPENAI__API_HOST", "http://127.0.0.1:8090");
            jail.set_env("BIG_MARKET_AWARDS__OPENAI__TIMEOUT_MS", "500");
            jail.set_env("BIG_MARKET_HTTP__TRUSTED_DOCUMENTS", "enforce");
            jail.create_file("big-market.toml", "[redis]\nkey_prefix = \"t:\"\n")?;
            let s = Settings::load(None).map_err(|e| e.to_string())?;
            assert_eq!(s.http.port, 9100);
            assert_eq!(s.database.shard_urls.len(), 4);
            assert!(s.switches.blacklist);
            assert_eq!(s.redis.key_prefix, "t:");
            assert_eq!(s.awards.openai.api_host, "http://127.0.0.1:8090");
            assert_eq!(s.awards.openai.timeout_ms, 500);
            assert_eq!(s.http.trusted_documents, TrustedDocuments::Enforce);
            assert_eq!(Settings::default().http.trusted_documents, TrustedDocuments::Off);
            assert!(s.awards.openai.gateway_settings().is_some());
            assert!(Settings::default().awards.openai.gateway_settings().is_none());
            Ok(())
        });
    }

    #[test]
    fn a_missing_explicit_config_file_is_an_error() {
        assert!(Settings::load(Some(Path::new("/nonexistent/big-market.toml"))).is_err());
    }
}
