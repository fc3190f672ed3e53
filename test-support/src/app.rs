//! `spawn_app()`: the real server on a free port, with its own databases, Redis prefix and queue
//! prefix, and [`TestApp`], the handle the API tests drive it with.
//!
//! The services are real; a missing one fails the test with a message saying how to start it.
// A test fixture: failing loudly (panicking with the reason) is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use api::settings::Settings;
use api::startup::Application;
use serde_json::{Value, json};

use crate::mysql::TestDatabases;
use crate::services::DEFAULT_AMQP_URL;

/// Index of the config database in [`TestApp::dbs`].
pub const CONFIG: usize = 0;
/// Index of shard 01 in [`TestApp::dbs`].
pub const SHARD_01: usize = 1;
/// Index of shard 02 in [`TestApp::dbs`].
pub const SHARD_02: usize = 2;

/// A running app of one test and direct connections to its stores.
pub struct TestApp {
    /// `http://127.0.0.1:<port>` of the server.
    pub address: String,
    /// An HTTP client for the server.
    pub client: reqwest::Client,
    /// The settings the app runs with (database URLs, Redis prefix, queue prefix, …).
    pub settings: Settings,
    /// Direct connections for assertions: `[config, shard 01, shard 02]`.
    pub dbs: Vec<sea_orm::DatabaseConnection>,
    /// A direct Redis connection for assertions.
    pub redis: redis::aio::MultiplexedConnection,
    /// The operator token [`TestApp::graphql`] sends (role `admin`).
    pub admin_token: String,
    databases: TestDatabases,
}

/// The first error's `extensions.code` of a GraphQL answer, if any.
pub fn error_code_of(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["code"].as_str()
}

/// The HS256 secret of test apps (tests sign their own tokens with it).
pub const TEST_SECRET: &str = "test-secret-of-the-big-market-api-tests-0123456789";

/// Starts the app with the test settings (see [`spawn_app_with`]).
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Like [`spawn_app`], with settings adjusted by `tweak` before the app starts: fresh config and
/// shard databases (migrated), a fresh Redis key prefix and queue prefix, port 0, short relay and
/// consumer delays.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let mut databases = TestDatabases::new().await.unwrap_or_else(|e| panic!("{e:#}"));
    let urls = databases.sharded();
    let name = databases.prefix().to_owned();
    let mut settings = Settings::default();
    settings.http.port = 0;
    settings.database.config_url = urls.config_url;
    settings.database.shard_urls = urls.shard_urls;
    settings.database.max_connections = 8;
    settings.redis.url = crate::services::redis_url();
    settings.redis.key_prefix = format!("{name}:");
    settings.rabbitmq.queue_prefix = format!("{name}.");
    settings.relay.poll_interval_ms = 100;
    settings.relay.backoff_base_ms = 20;
    settings.consumers.retry_delay_ms = 20;
    settings.consumers.redrive_interval_ms = 300;
    settings.auth.secret = TEST_SECRET.to_owned();
    tweak(&mut settings);
    api::telemetry::init(&api::settings::LogSettings {
        filter: "warn".into(),
        json: false,
    });
    let redis = crate::redis::connect_url(&settings.redis.url)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    api::startup::migrate(&settings)
        .await
        .unwrap_or_else(|e| panic!("migrating the test databases {name}_*: {e:#}"));
    let app = Application::build(settings.clone())
        .await
        .unwrap_or_else(|e| panic!("the application could not start: {e:#}"));
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
    let admin_token = api::auth::issue(&settings.auth, "test-admin", api::auth::Role::Admin)
        .unwrap_or_else(|e| panic!("signing the test admin token: {e:#}"));
    TestApp {
        address,
        client: reqwest::Client::new(),
        admin_token,
        settings,
        dbs,
        redis,
        databases,
    }
}

impl TestApp {
    /// Posts a GraphQL operation as the operator (the admin token) and returns the whole
    /// response body.
    pub async fn graphql(&self, query: &str) -> Value {
        self.graphql_as(Some(&self.admin_token), query).await
    }

    /// Posts a GraphQL operation with `token` (`None`: anonymous) and returns the whole body.
    pub async fn graphql_as(&self, token: Option<&str>, query: &str) -> Value {
        self.graphql_at(&self.address, token, query).await
    }

    /// Rows of every split table `{table}_000` … `_003` on both shards, counted.
    pub async fn count_split(&self, table: &str) -> i64 {
        let mut n = 0;
        for shard in [SHARD_01, SHARD_02] {
            for t in 0..4 {
                n += self.int(shard, &format!("SELECT COUNT(*) FROM {table}_{t:03}")).await;
            }
        }
        n
    }

    /// A token of `role` for `subject` (a user id for role `user`), signed with the app's secret.
    pub fn token(&self, subject: &str, role: api::auth::Role) -> String {
        api::auth::issue(&self.settings.auth, subject, role).unwrap_or_else(|e| panic!("signing a test token: {e:#}"))
    }

    /// A user token for `user`.
    pub fn user_token(&self, user: &str) -> String {
        self.token(user, api::auth::Role::User)
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
        crate::redis::delete_prefix(&mut conn, &self.settings.redis.key_prefix)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
    }

    /// A channel to the test broker ([`DEFAULT_AMQP_URL`], whatever broker URL the app was
    /// given: some tests start the app with an unreachable one).
    pub async fn amqp(&self) -> lapin::Channel {
        crate::rabbitmq::channel(DEFAULT_AMQP_URL)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// The test's queue of `topic`.
    pub fn queue(&self, topic: &str) -> String {
        format!("{}{topic}", self.settings.rabbitmq.queue_prefix)
    }

    /// Every queue this test may have declared: each topic's queue and its dead-letter queue.
    fn queues(&self) -> Vec<String> {
        domain::outbox::TOPICS
            .iter()
            .copied()
            .chain(["no_such_topic"])
            .flat_map(|topic| {
                let q = self.queue(topic);
                [format!("{q}.dead"), format!("{q}.retry"), format!("{q}.parked"), q]
            })
            .collect()
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

    /// Deletes the test's Redis keys and queues and drops its databases.
    pub async fn cleanup(self) {
        self.flush_redis().await;
        crate::rabbitmq::delete_queues(DEFAULT_AMQP_URL, self.queues())
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        for db in self.dbs {
            let _ = db.close().await;
        }
        self.databases.drop_all().await.expect("drop test databases");
    }
}

/// Another server of a test's world running as its own OS process (`big-market serve`, or
/// `big-market relay`), with the test app's settings (same databases, Redis prefix, queues,
/// secret) on another port. Killed (`kill -9`) when dropped.
pub struct ServerProcess {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    child: std::process::Child,
    /// Its stderr lines so far, when started with [`Logs::Captured`].
    logs: Option<std::sync::Arc<std::sync::Mutex<Vec<String>>>>,
}

/// What becomes of a started process's stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logs {
    /// Inherited: it goes to the test's stderr.
    Inherited,
    /// Read line by line (and echoed to the test's stderr): [`ServerProcess::log_lines`].
    Captured,
}

impl ServerProcess {
    /// The lines the process wrote to stderr so far (empty unless started with
    /// [`Logs::Captured`]).
    pub fn log_lines(&self) -> Vec<String> {
        self.logs
            .as_ref()
            .map(|l| l.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone())
            .unwrap_or_default()
    }

    /// Waits up to `secs` for a stderr line that `matches` and returns it; fails the test with
    /// the lines seen otherwise.
    pub async fn wait_for_log(&self, secs: u64, matches: impl Fn(&str) -> bool) -> String {
        assert!(self.logs.is_some(), "the process was not started with Logs::Captured");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let lines = self.log_lines();
            if let Some(line) = lines.iter().find(|l| matches(l)) {
                return line.clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no matching log line within {secs} s; the process wrote:\n{}",
                lines.join("\n")
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// `kill -9`: the process stops at once, mid-whatever (no graceful shutdown), and is reaped.
    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL on Unix
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `settings` as `BIG_MARKET_<SECTION>__<KEY>` variables, nested sections as
/// `BIG_MARKET_<SECTION>__<SUB>__<KEY>` (strings as they are, everything else as JSON, which
/// the settings loader reads back).
fn settings_env(settings: &Settings) -> Vec<(String, String)> {
    fn flatten(name: String, value: Value, vars: &mut Vec<(String, String)>) {
        match value {
            Value::Object(keys) => {
                for (key, value) in keys {
                    flatten(format!("{name}__{}", key.to_uppercase()), value, vars);
                }
            }
            Value::String(s) => vars.push((name, s)),
            other => vars.push((name, other.to_string())),
        }
    }
    let mut vars = Vec::new();
    let Value::Object(sections) = serde_json::to_value(settings).expect("settings serialize") else {
        panic!("settings are not an object")
    };
    for (section, keys) in sections {
        let Value::Object(keys) = keys else { continue };
        for (key, value) in keys {
            flatten(
                format!("BIG_MARKET_{}__{}", section.to_uppercase(), key.to_uppercase()),
                value,
                &mut vars,
            );
        }
    }
    vars
}

impl TestApp {
    /// Starts `binary` (`env!("CARGO_BIN_EXE_big-market")`) as a second server of this world,
    /// with `tweak` applied to a copy of the settings, and waits (up to 20 s) until its
    /// `/health` answers.
    pub async fn spawn_process(&self, binary: &str, tweak: impl FnOnce(&mut Settings)) -> ServerProcess {
        self.spawn_process_with(binary, Logs::Inherited, tweak).await
    }

    /// [`TestApp::spawn_process`], with its stderr as `logs` says.
    pub async fn spawn_process_with(
        &self,
        binary: &str,
        logs: Logs,
        tweak: impl FnOnce(&mut Settings),
    ) -> ServerProcess {
        let server = self.start_process(binary, "serve", logs, tweak);
        for _ in 0..200 {
            if let Ok(r) = self.client.get(format!("{}/health", server.address)).send().await
                && r.status().is_success()
            {
                return server;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!(
            "the second server at {} did not answer /health within 20 s",
            server.address
        )
    }

    /// Starts `binary relay` (the outbox relay, plus the consumers when `consumers.enabled`)
    /// as a process of this world, with `tweak` applied to a copy of the settings. It serves no
    /// HTTP, so this returns as soon as the process is started; its `address` answers nothing.
    pub fn spawn_relay_process(&self, binary: &str, tweak: impl FnOnce(&mut Settings)) -> ServerProcess {
        self.start_process(binary, "relay", Logs::Inherited, tweak)
    }

    /// [`TestApp::spawn_relay_process`], with its stderr as `logs` says.
    pub fn spawn_relay_process_with(
        &self,
        binary: &str,
        logs: Logs,
        tweak: impl FnOnce(&mut Settings),
    ) -> ServerProcess {
        self.start_process(binary, "relay", logs, tweak)
    }

    fn start_process(
        &self,
        binary: &str,
        command: &str,
        logs: Logs,
        tweak: impl FnOnce(&mut Settings),
    ) -> ServerProcess {
        let mut settings = self.settings.clone();
        settings.http.port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        settings.log.filter = "warn".into();
        tweak(&mut settings);
        let address = format!("http://127.0.0.1:{}", settings.http.port);
        let mut child = std::process::Command::new(binary)
            .arg(command)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(settings_env(&settings))
            .stderr(match logs {
                Logs::Inherited => std::process::Stdio::inherit(),
                Logs::Captured => std::process::Stdio::piped(),
            })
            .spawn()
            .unwrap_or_else(|e| panic!("starting {binary} {command}: {e}"));
        let logs = child.stderr.take().map(|stderr| {
            let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let sink = lines.clone();
            // Ends when the process's stderr closes (it exited or was killed).
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                    eprintln!("{line}");
                    sink.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(line);
                }
            });
            lines
        });
        ServerProcess { address, child, logs }
    }

    /// Posts `query` with `token` (`None`: anonymous) to the server at `address` (this app, or
    /// another server of its world).
    pub async fn graphql_at(&self, address: &str, token: Option<&str>, query: &str) -> Value {
        let mut req = self
            .client
            .post(format!("{address}/graphql"))
            .json(&json!({ "query": query }));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send()
            .await
            .expect("POST /graphql")
            .json()
            .await
            .expect("GraphQL response is JSON")
    }
}
