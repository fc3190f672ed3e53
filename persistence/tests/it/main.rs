//! Integration tests of the persistence adapters against the real MariaDB and Redis.

mod helpers;
mod stock;
mod strategy;
