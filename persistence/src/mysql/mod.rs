//! MySQL / MariaDB through SeaORM: the config database and the user shards.
//!
//! * [`db`] — the pools (every connection READ COMMITTED) and driver-error translation;
//! * [`router`] — the user-id router, byte-exact with the original;
//! * [`entity`] — SeaORM entities of the config tables;
//! * [`activity`], [`strategy`] — configuration reads;
//! * [`quota`] — the quota saves of draw and recharge, and the durable stock ledgers, with
//!   the draw's two statements in [`draw_save`];
//! * [`credit`] — credit trades, credit-paid orders' debit, behaviour rebates;
//! * [`delivery`] — award delivery (`send_award` consumer's transaction);
//! * [`read_side`] — reads the shards to rebuild the Redis read models;
//! * [`stage`] — activity stages (which activity a channel and source show);
//! * [`stock`] — durable award / SKU stock that operators add to.
//!
//! The outbox table `task` has its own home: [`crate::outbox::store`].

pub mod activity;
pub mod audit;
pub mod credit;
pub mod db;
pub mod delivery;
pub mod draw_save;
pub mod entity;
pub mod quota;
pub mod read_side;
pub mod router;
pub mod stage;
pub mod stock;
pub mod strategy;
pub mod switches;
