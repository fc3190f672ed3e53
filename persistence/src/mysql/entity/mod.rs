//! SeaORM entities of the config database `big_market` (static table names).
//!
//! Only the columns the application reads are mapped; the tables keep every column of the
//! original dumps (see the `migration` crate). Sharded tables (`_000.._003`) are not entities:
//! their repositories build statements with sea-query against the routed table name.

pub mod award;
pub mod raffle_activity;
pub mod raffle_activity_count;
pub mod raffle_activity_sku;
pub mod rule_tree;
pub mod rule_tree_node;
pub mod rule_tree_node_line;
pub mod strategy;
pub mod strategy_award;
pub mod strategy_rule;
