//! The activity context: quota packages (SKUs), recharging quota, and the draw command.
//!
//! * [`model`] — activities, SKUs, count packages, the business calendar.
//! * [`error`] — [`ActivityError`] with the original codes.
//! * [`ports`] — repositories and counters the service needs.
//! * [`recharge`] — `RechargeQuota`: SKU stock → order + account credit, idempotent.
//! * [`exchange`] — `ExchangeSku`: a SKU paid with credits — debit, order and quota in one
//!   transaction, idempotent.
//! * [`account`] — the user's quota as a value and the pure `partake` rule.
//! * [`draw`] — `Draw`: load quota → partake + raffle (pure decision, stock in Redis) → one
//!   save of ticket, quota, award record and outbox.
//! * [`service`] — [`ActivityService`], the orchestration over the ports.

pub mod account;
pub mod draw;
#[cfg(test)]
mod draw_tests;
pub mod error;
pub mod exchange;
pub mod model;
pub mod ports;
pub mod protection;
pub mod quota_cache;
pub mod recharge;
pub mod service;

pub use error::ActivityError;
pub use model::{Activity, ActivityConfig, ActivityCount, ActivitySku, ActivityState, BusinessCalendar};
pub use service::ActivityService;
