//! # big-market API
//!
//! The GraphQL edge (async-graphql on poem), configuration, wiring and the CLI of the
//! `big-market` binary. The only crate that knows HTTP and GraphQL.

pub mod auth;
pub mod cli;
pub mod compress;
pub mod conn;
pub mod graphiql;
pub mod graphql;
pub mod http;
pub mod metrics;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod workers;
pub mod ws_guard;
