//! Application state shared by every request: services wired to their adapters.

use std::sync::Arc;

use domain::strategy::StrategyService;
use persistence::Databases;
use persistence::redis::{Keys, RedisArmoryStore, RedisAwardStock};

use crate::settings::{Settings, Switches};

/// Services and connections, built once at startup.
pub struct AppState {
    /// Strategy arming and drawing.
    pub strategy: StrategyService,
    /// Database pools (config + shards).
    pub db: Databases,
    /// Redis connection.
    pub redis: redis::aio::ConnectionManager,
    /// Operational switches.
    pub switches: Switches,
}

impl AppState {
    /// Connects to MySQL and Redis and wires the services.
    ///
    /// # Errors
    /// When a database or Redis cannot be reached.
    pub async fn connect(settings: &Settings) -> anyhow::Result<Arc<Self>> {
        let db = Databases::connect(&settings.database_settings())
            .await
            .map_err(|e| anyhow::anyhow!("connecting to MySQL ({}): {e}", settings.database.config_url))?;
        let redis = persistence::redis::connect(&settings.redis.url)
            .await
            .map_err(|e| anyhow::anyhow!("connecting to Redis ({}): {e}", settings.redis.url))?;
        let keys = Keys::new(settings.redis.key_prefix.clone());
        let strategy = StrategyService::new(
            Arc::new(persistence::MySqlStrategyRepository::new(db.config.clone())),
            Arc::new(RedisArmoryStore::new(redis.clone(), keys.clone())),
            Arc::new(RedisAwardStock::new(redis.clone(), keys)),
            Arc::new(persistence::OsRandom),
        );
        Ok(Arc::new(Self {
            strategy,
            db,
            redis,
            switches: settings.switches.clone(),
        }))
    }
}
