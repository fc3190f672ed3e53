//! The fault-injection suite (docs/OPERATIONS.md §3): while several users keep drawing, one
//! dependency fails — through the TCP fault proxy of `test_support::proxy`, or by `kill -9` —
//! and comes back. Each scenario records every draw's latency and outcome, then checks in
//! MySQL that no acknowledged draw was lost, no award was sold beyond its stock, no effect was
//! applied twice and every award was delivered once healed. It prints one summary per fault to
//! stderr and appends it to the summary file (`BIG_MARKET_FAULT_SUMMARY`, set by `.ci/run`,
//! which prints it), and fails when an invariant breaks or a deadline is exceeded by a wide
//! margin.
//!
//! | Scenario | Fault |
//! |---|---|
//! | [`redis_down`] | Redis blackholed 3 s |
//! | [`mysql_down`] | shard 01 blackholed 4 s, one draw caught mid-save |
//! | [`commands_down`] | shard 01 blackholed 4 s under a recharge, an exchange, a sign-in and an admin read |
//! | [`broker_down`] | RabbitMQ blackholed 10 s |
//! | [`kill9`] | relay and consumer processes killed (`kill -9`) 3 times each |
//! | [`restock`] | award and SKU stock sold out, then raised by the admin mutations |
//!
//! The scenarios run one at a time (`.config/nextest.toml`, test group `faults`), so their
//! timings do not disturb each other.

mod harness;

mod broker_down;
mod commands_down;
mod kill9;
mod mysql_down;
mod redis_down;
mod restock;
