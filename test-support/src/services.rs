//! Where the real services are: the defaults of the development machines, CI and
//! `docker-compose.yml`, and their environment overrides.

/// Environment variable overriding the MariaDB/MySQL server URL (no database in the path).
pub const MYSQL_URL_ENV: &str = "BIG_MARKET_TEST_MYSQL_URL";
/// The local MariaDB.
pub const DEFAULT_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306";
/// How to start the local MariaDB, for failure messages.
pub const START_MYSQL: &str = "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd";

/// Environment variable overriding the Redis URL.
pub const REDIS_URL_ENV: &str = "BIG_MARKET_TEST_REDIS_URL";
/// The local Redis.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// How to start the local Redis, for failure messages.
pub const START_REDIS: &str = "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no";

/// The local RabbitMQ, the test broker (also the app's default broker URL).
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// How to start the local RabbitMQ, for failure messages.
pub const START_RABBITMQ: &str = "rabbitmq-server -detached";

/// Value of the environment variable `name`, unless unset or blank.
fn env_override(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.trim().is_empty())
}

/// The MariaDB/MySQL server URL the tests use (`BIG_MARKET_TEST_MYSQL_URL` or the default).
pub fn mysql_server_url() -> String {
    env_override(MYSQL_URL_ENV).unwrap_or_else(|| DEFAULT_MYSQL_URL.to_owned())
}

/// The Redis URL the tests use (`BIG_MARKET_TEST_REDIS_URL` or the default).
pub fn redis_url() -> String {
    env_override(REDIS_URL_ENV).unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned())
}

/// URL of database `name` on the test server (keeps any `?options` of the server URL).
pub fn database_url(name: &str) -> String {
    let server = mysql_server_url();
    let (base, query) = match server.split_once('?') {
        Some((base, query)) => (base.to_owned(), format!("?{query}")),
        None => (server.clone(), String::new()),
    };
    format!("{}/{name}{query}", base.trim_end_matches('/'))
}
