//! # big-market persistence
//!
//! Adapters behind the domain's ports. They store what the domain decided and hold no
//! business rule; one folder per technology:
//!
//! * [`mysql`] — SeaORM over the config database and the user shards (routed exactly like the
//!   original): configuration reads, the quota saves of draw and recharge, award delivery;
//! * [`redis`] — stock counters, rate tables, read models, task-status streams;
//! * [`rabbit`] — the RabbitMQ topology, publisher with confirms, consumers and handlers;
//! * [`outbox`] — the `task` table's statements, the relay loop and its projector;
//! * [`gateway`] — HTTP gateways that grant awards (the OpenAI account gateway);
//! * [`metrics`] — Prometheus counters of the relay, the consumers and the projector, and the
//!   outbox and pool gauges read when scraped;
//! * [`stock_sync`] — lowers durable stock surpluses to the live Redis counters;
//! * [`trace`] — the W3C trace context that outbox rows, AMQP headers and consumers carry;
//! * [`clock`], [`ids`], [`random`] — the system clock, snowflake ids, OS randomness.

pub mod clock;
pub mod gateway;
pub mod ids;
pub mod metrics;
pub mod mysql;
pub mod outbox;
pub mod rabbit;
pub mod random;
pub mod redis;
pub mod stock_sync;
pub mod switch_board;
pub mod trace;

pub use clock::SystemClock;
pub use ids::SnowflakeIds;
pub use mysql::activity::MySqlActivityRepository;
pub use mysql::credit::MySqlCreditRepository;
pub use mysql::db::{DatabaseSettings, Databases, Db, SESSION_ISOLATION, Tx};
pub use mysql::delivery::MySqlAwardDelivery;
pub use mysql::quota::MySqlQuotaRepository;
pub use mysql::router::{Route, ShardRouter};
pub use mysql::strategy::MySqlStrategyRepository;
pub use random::OsRandom;
/// The database error type of the adapters' admin reads.
pub use sea_orm::DbErr;
