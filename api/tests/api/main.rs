//! Black-box tests of the GraphQL API over HTTP, against the real MariaDB and Redis.

mod health;
mod helpers;
mod schema;
mod strategy;
