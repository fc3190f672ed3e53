//! `spawn_app()`: the real server on a free port, with its own databases and Redis prefix.
//!
//! The services are real; a missing one fails the test with a message saying how to start it.
//! Endpoints can be overridden with `BIG_MARKET_TEST_MYSQL_URL` and `BIG_MARKET_TEST_REDIS_URL`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use api::settings::Settings;
use api::startup::Application;
use serde_json::{Value, json};

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub settings: Settings,
    /// Direct connections for assertions: `[config, shard 01, shard 02]`.
    pub dbs: Vec<sea_orm::DatabaseConnection>,
    pub redis: redis::aio::MultiplexedConnection,
}

/// Database indexes of [`TestApp::dbs`].
pub const CONFIG: usize = 0;
pub const SHARD_01: usize = 1;
pub const SHARD_02: usize = 2;

fn unique_name() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() % 1_000_000_000)
        .unwrap_or(0);
    format!(
        "bmt_{}_{}_{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Like [`spawn_app`], with settings adjusted by `tweak` before the app starts.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let name = unique_name();
    let server = std::env::var("BIG_MARKET_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
    let mut settings = Settings::default();
    settings.http.port = 0;
    settings.database.config_url = format!("{server}/{name}_cfg");
    settings.database.shard_urls = vec![format!("{server}/{name}_01"), format!("{server}/{name}_02")];
    settings.database.max_connections = 8;
    settings.redis.url = std::env::var("BIG_MARKET_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    settings.redis.key_prefix = format!("{name}:");
    settings.rabbitmq.queue_prefix = format!("{name}.");
    settings.relay.poll_interval_ms = 100;
    settings.relay.backoff_base_ms = 20;
    settings.consumers.retry_delay_ms = 20;
    tweak(&mut settings);
    api::telemetry::init(&api::settings::LogSettings {
        filter: "warn".into(),
        json: false,
    });
    api::startup::migrate(&settings)
        .await
        .unwrap_or_else(|e| panic!("MariaDB at {server} is required (start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd): {e}"));
    let app = Application::build(settings.clone()).await.unwrap_or_else(|e| {
        panic!("the application could not start (is Redis running? redis-server --daemonize yes): {e:#}")
    });
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let mut dbs = Vec::new();
    for url in std::iter::once(&settings.database.config_url).chain(&settings.database.shard_urls) {
        dbs.push(
            sea_orm::Database::connect(url.as_str())
                .await
                .expect("connect to a test database"),
        );
    }
    let redis = redis::Client::open(settings.redis.url.as_str())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    TestApp {
        address,
        client: reqwest::Client::new(),
        settings,
        dbs,
        redis,
    }
}

impl TestApp {
    /// Posts a GraphQL operation and returns the whole response body.
    pub async fn graphql(&self, query: &str) -> Value {
        self.client
            .post(format!("{}/graphql", self.address))
            .json(&json!({ "query": query }))
            .send()
            .await
            .expect("POST /graphql")
            .json()
            .await
            .expect("GraphQL response is JSON")
    }

    /// Posts an operation that must succeed and returns `data`.
    pub async fn ok(&self, query: &str) -> Value {
        let body = self.graphql(query).await;
        assert!(body.get("errors").is_none(), "unexpected errors for {query}: {body}");
        body["data"].clone()
    }

    /// Posts an operation that must fail and returns the first error's `extensions.code`.
    pub async fn error_code(&self, query: &str) -> String {
        let body = self.graphql(query).await;
        body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("expected an error with a code for {query}: {body}"))
            .to_owned()
    }

    /// Runs SQL on one of the test databases and returns the rows as JSON objects.
    pub async fn sql(&self, db: usize, sql: &str) -> Vec<Value> {
        use sea_orm::{ConnectionTrait, FromQueryResult, JsonValue, Statement};
        let conn = &self.dbs[db];
        JsonValue::find_by_statement(Statement::from_string(conn.get_database_backend(), sql))
            .all(conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Executes a statement on one of the test databases.
    pub async fn exec(&self, db: usize, sql: &str) {
        use sea_orm::ConnectionTrait;
        self.dbs[db]
            .execute_unprepared(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// A single integer from `sql` (first column of the first row).
    pub async fn int(&self, db: usize, sql: &str) -> i64 {
        let rows = self.sql(db, sql).await;
        let row = rows.first().unwrap_or_else(|| panic!("no row for {sql}"));
        let v = row
            .as_object()
            .and_then(|o| o.values().next())
            .unwrap_or_else(|| panic!("no column for {sql}"));
        v.as_i64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or_else(|| panic!("{sql}: {v} is not an integer"))
    }

    /// Rigs strategy 100006 so every default draw picks award 101 (random credits): no weight or
    /// blacklist rule, every other rate 0. Arm the activity afterwards.
    pub async fn rig_draws_to_award_101(&self) {
        self.exec(
            CONFIG,
            "UPDATE strategy SET rule_models = NULL WHERE strategy_id = 100006",
        )
        .await;
        self.exec(
            CONFIG,
            "UPDATE strategy_award SET award_rate = 0 WHERE strategy_id = 100006 AND award_id <> 101",
        )
        .await;
    }

    /// A Redis key under this test's prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.settings.redis.key_prefix)
    }

    /// Deletes every Redis key of this test (a Redis loss).
    pub async fn flush_redis(&self) {
        let mut conn = self.redis.clone();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.settings.redis.key_prefix))
            .query_async(&mut conn)
            .await
            .expect("keys");
        for chunk in keys.chunks(500) {
            let _: () = redis::cmd("DEL").arg(chunk).query_async(&mut conn).await.expect("del");
        }
    }

    /// A channel to the test broker.
    pub async fn amqp(&self) -> lapin::Channel {
        let conn = lapin::Connection::connect(
            "amqp://guest:guest@127.0.0.1:5672/%2f",
            lapin::ConnectionProperties::default(),
        )
        .await
        .expect("RabbitMQ at 127.0.0.1:5672 is required (rabbitmq-server -detached)");
        conn.create_channel().await.expect("channel")
    }

    /// The test's queue of `topic`.
    pub fn queue(&self, topic: &str) -> String {
        format!("{}{topic}", self.settings.rabbitmq.queue_prefix)
    }

    async fn delete_queues(&self) {
        let ch = self.amqp().await;
        for topic in domain::outbox::TOPICS.iter().copied().chain(["no_such_topic"]) {
            for q in [self.queue(topic), format!("{}.dead", self.queue(topic))] {
                let _ = ch
                    .queue_delete(q.as_str().into(), lapin::options::QueueDeleteOptions::default())
                    .await;
            }
        }
    }

    /// Polls `query` every 50 ms until `done` accepts its data, or fails after `secs`.
    pub async fn eventually(&self, secs: u64, query: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let data = self.ok(query).await;
            if done(&data) {
                return data;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out after {secs}s waiting on {query}: last {data}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Drops the test databases and Redis keys.
    pub async fn cleanup(self) {
        let mut urls = vec![self.settings.database.config_url.clone()];
        urls.extend(self.settings.database.shard_urls.clone());
        self.flush_redis().await;
        self.delete_queues().await;
        for db in &self.dbs {
            let _ = db.clone().close().await;
        }
        for url in urls {
            migration::drop_database(&url).await.expect("drop test database");
        }
    }
}
