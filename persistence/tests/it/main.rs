//! Integration tests of the persistence adapters against the real MariaDB and Redis.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod db;
mod helpers;
mod ids;
mod outbox;
mod quota;
mod stock;
mod strategy;
mod task_fanout;
