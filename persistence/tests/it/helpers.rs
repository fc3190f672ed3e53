//! Test environment: fresh databases and a fresh Redis key prefix per test.
//!
//! Services are real (MariaDB, Redis); when one is unreachable the test fails with a message
//! saying which and how to start it. Override the endpoints with `BIG_MARKET_TEST_MYSQL_URL`
//! (server URL without database) and `BIG_MARKET_TEST_REDIS_URL`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use domain::strategy::StrategyService;
use persistence::redis::{Keys, RedisArmoryStore, RedisAwardStock};
use persistence::{DatabaseSettings, Databases, MySqlQuotaRepository, MySqlStrategyRepository, OsRandom};
use redis::aio::ConnectionManager;

pub struct TestEnv {
    pub db: Databases,
    pub redis: ConnectionManager,
    pub keys: Keys,
    pub urls: Vec<String>,
}

fn mysql_server() -> String {
    std::env::var("BIG_MARKET_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

fn redis_url() -> String {
    std::env::var("BIG_MARKET_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A name unique to this process and call: `bmt_<pid>_<nanos>_<n>`.
pub fn unique_name() -> String {
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

impl TestEnv {
    pub async fn new() -> Self {
        let name = unique_name();
        let server = mysql_server();
        let config_url = format!("{server}/{name}_cfg");
        let shard_urls = vec![format!("{server}/{name}_01"), format!("{server}/{name}_02")];
        migration::migrate_all(&config_url, &shard_urls)
            .await
            .unwrap_or_else(|e| panic!("MariaDB at {server} is required (start it: start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd): {e}"));
        let db = Databases::connect(&DatabaseSettings {
            config_url: config_url.clone(),
            shard_urls: shard_urls.clone(),
            tables_per_shard: 4,
            max_connections: 16,
            connect_timeout: std::time::Duration::from_secs(5),
        })
        .await
        .expect("connect to the test databases");
        let redis = persistence::redis::connect(&redis_url()).await.unwrap_or_else(|e| {
            panic!(
                "Redis at {} is required (start it: redis-server --daemonize yes): {e}",
                redis_url()
            )
        });
        let mut urls = vec![config_url];
        urls.extend(shard_urls);
        Self {
            db,
            redis,
            keys: Keys::new(format!("{name}:")),
            urls,
        }
    }

    pub fn strategy_service(&self) -> StrategyService {
        StrategyService::new(
            Arc::new(MySqlStrategyRepository::new(self.db.config.clone())),
            Arc::new(RedisArmoryStore::new(self.redis.clone(), self.keys.clone())),
            Arc::new(self.stock()),
            Arc::new(MySqlQuotaRepository::new(self.db.clone())),
            Arc::new(OsRandom),
        )
    }

    pub fn stock(&self) -> RedisAwardStock {
        RedisAwardStock::new(self.redis.clone(), self.keys.clone())
    }

    /// Drops the databases and deletes every key under the prefix.
    pub async fn cleanup(self) {
        for url in &self.urls {
            migration::drop_database(url).await.expect("drop test database");
        }
        let mut conn = self.redis.clone();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.keys.prefix()))
            .query_async(&mut conn)
            .await
            .expect("list test keys");
        for chunk in keys.chunks(500) {
            let _: () = redis::cmd("DEL")
                .arg(chunk)
                .query_async(&mut conn)
                .await
                .expect("delete test keys");
        }
    }
}
