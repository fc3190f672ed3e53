//! The one test fixture of big-market: throw-away resources on the real services.
//!
//! Every integration test of `api`, `persistence` and `migration` works against the real MariaDB,
//! Redis and RabbitMQ, in resources named after one [`unique_name`] (`bmt_<pid>_<nanos>_<n>`):
//!
//! * [`mysql`]: the server URL ([`services::mysql_server_url`]), uniquely named databases
//!   ([`mysql::TestDatabases`], e.g. the config database and the two shards of
//!   [`mysql::ShardedUrls`]), created and dropped at the end, also when the test panicked;
//! * [`redis`]: a key prefix per test and deleting every key under it (SCAN + DEL);
//! * `rabbitmq` (feature `rabbitmq`): a channel to the broker and deleting a test's queues;
//! * [`schema`] and [`dump`]: information_schema snapshots and loading SQL dumps;
//! * [`proxy`]: a TCP fault proxy (pass, blackhole, refuse) in front of a dependency;
//! * `app` (feature `app`): `spawn_app`, the real API server on a free port.
//!
//! A missing service fails the test with a message naming the service and how to start it: the
//! tests never skip. The endpoints can be overridden with `BIG_MARKET_TEST_MYSQL_URL` (server
//! URL without database) and `BIG_MARKET_TEST_REDIS_URL`.
//!
//! This crate is a dev-dependency only; leftover `bmt_%` databases of interrupted runs are
//! dropped by CI.

pub mod dump;
pub mod mysql;
pub mod proxy;
pub mod redis;
pub mod schema;
pub mod services;

#[cfg(feature = "rabbitmq")]
pub mod rabbitmq;

#[cfg(feature = "app")]
pub mod app;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The prefix of every throw-away resource name (CI drops leftover `bmt_%` databases).
pub const NAME_PREFIX: &str = "bmt_";

/// A name unique to this process and call: `bmt_<pid>_<nanos>_<n>`, usable as a database name
/// (prefix), a Redis key prefix and a queue name prefix.
pub fn unique_name() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() % 1_000_000_000)
        .unwrap_or(0);
    format!(
        "{NAME_PREFIX}{}_{}_{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_keep_the_prefix() {
        let (a, b) = (unique_name(), unique_name());
        assert_ne!(a, b);
        for name in [a, b] {
            assert!(name.starts_with(NAME_PREFIX), "{name}");
            assert_eq!(name.split('_').count(), 4, "{name}");
        }
    }
}
