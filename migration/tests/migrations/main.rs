//! Migration tests against the real MariaDB/MySQL server (`BIG_MARKET_TEST_MYSQL_URL`, default
//! `mysql://root@127.0.0.1:3306`). Each test works in its own uniquely named databases (from
//! `test-support`) and drops them at the end; an unreachable server fails the test.
//!
//! One file per shard migration, each running the shared up / down / up-again round trip of
//! [`support::shard_round_trip`] with its own checks; `fresh` and `upgrade_from_dumps` run the
//! whole chain, from nothing and from the original dumps; `m20261201_latest` also from the
//! original's latest dumps.

mod fresh;
mod m20240406_000002_config_reference_data;
mod m20241123_outbox_relay;
mod m20241123_read_model_versions;
mod m20241123_widen_ids;
mod m20241124_ticket_lookup_index;
mod m20261130_audit_log_and_switches;
mod m20261130_binary_ids;
mod m20261130_draw_save_procedure;
mod m20261201_latest;
mod m20261201_task_trace_context;
mod support;
mod upgrade_from_dumps;
