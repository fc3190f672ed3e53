//! # big-market persistence
//!
//! Adapters behind the domain's ports: SeaORM repositories over the config database and the
//! user shards (routed exactly like the original), Redis stores (rate tables, stock counters,
//! read models), and — in later modules — the outbox relay and RabbitMQ.

pub mod activity_repo;
pub mod clock;
pub mod db;
pub mod delivery_repo;
pub mod draw_save;
pub mod entity;
pub mod ids;
pub mod messaging;
pub mod quota_repo;
pub mod random;
pub mod read_side;
pub mod redis;
pub mod router;
pub mod stock_sync;
pub mod strategy_repo;
pub mod task_repo;

pub use activity_repo::MySqlActivityRepository;
pub use clock::SystemClock;
pub use db::{DatabaseSettings, Databases, SESSION_ISOLATION};
pub use delivery_repo::MySqlAwardDelivery;
pub use ids::SnowflakeIds;
pub use quota_repo::MySqlQuotaRepository;
pub use random::OsRandom;
pub use router::{Route, ShardRouter};
pub use strategy_repo::MySqlStrategyRepository;
