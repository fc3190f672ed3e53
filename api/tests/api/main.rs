//! Black-box tests of the GraphQL API over HTTP, against the real MariaDB and Redis.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod auth;
mod awards;
mod draw;
mod economy;
mod faults;
mod graphiql;
mod health;
mod http;
mod limits;
mod metrics;
mod node;
mod persisted;
mod read_side;
mod recharge;
mod relay;
mod schema;
mod strategy;
mod subscription;
mod switches;
mod traces;
