//! Test environment: fresh databases and a fresh Redis key prefix per test, from `test-support`.
//!
//! Services are real (MariaDB, Redis); when one is unreachable the test fails with a message
//! saying which and how to start it. Override the endpoints with `BIG_MARKET_TEST_MYSQL_URL`
//! (server URL without database) and `BIG_MARKET_TEST_REDIS_URL`.

use std::sync::Arc;

use domain::ids::{AwardId, StrategyId};
use domain::strategy::StrategyService;
use persistence::redis::{Keys, RedisArmoryStore, RedisAwardStock};
use persistence::{DatabaseSettings, Databases, MySqlQuotaRepository, MySqlStrategyRepository, OsRandom};
use redis::aio::ConnectionManager;
use test_support::mysql::TestDatabases;

pub struct TestEnv {
    pub db: Databases,
    pub redis: ConnectionManager,
    pub keys: Keys,
    databases: TestDatabases,
}

impl TestEnv {
    pub async fn new() -> Self {
        let mut databases = TestDatabases::new().await.unwrap_or_else(|e| panic!("{e:#}"));
        let urls = databases.sharded();
        migration::migrate_all(&urls.config_url, &urls.shard_urls)
            .await
            .unwrap_or_else(|e| panic!("migrating the test databases {}_*: {e}", databases.prefix()));
        let db = Databases::connect(&DatabaseSettings {
            config_url: urls.config_url,
            shard_urls: urls.shard_urls,
            tables_per_shard: 4,
            max_connections: 16,
            connect_timeout: std::time::Duration::from_secs(5),
            lock_wait_timeout: std::time::Duration::from_secs(1),
            statement_timeout: std::time::Duration::from_millis(1_500),
            response_timeout: std::time::Duration::from_millis(5_000),
        })
        .await
        .expect("connect to the test databases");
        // Fails with the reason and how to start Redis when it is missing.
        test_support::redis::connect().await.unwrap_or_else(|e| panic!("{e:#}"));
        let redis = persistence::redis::connect(&test_support::services::redis_url())
            .await
            .expect("connect to the test Redis");
        let keys = Keys::new(format!("{}:", databases.prefix()));
        Self {
            db,
            redis,
            keys,
            databases,
        }
    }

    /// The URLs of this test's config database and shards.
    pub fn urls(&mut self) -> test_support::mysql::ShardedUrls {
        self.databases.sharded()
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
        self.databases.drop_all().await.expect("drop test databases");
        let mut conn = self.redis.clone();
        test_support::redis::delete_prefix(&mut conn, self.keys.prefix())
            .await
            .expect("delete test keys");
    }
}

/// A strategy id of the reference data (or a made-up one for a Redis-only test).
pub fn strategy(id: i64) -> StrategyId {
    StrategyId::new(id)
}

/// An award id.
pub fn award(id: i32) -> AwardId {
    AwardId::new(id)
}
