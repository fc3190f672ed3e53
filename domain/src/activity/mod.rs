//! The activity context: quota packages (SKUs), recharging quota, and the draw command.
//!
//! * [`model`] — activities, SKUs, count packages, the business calendar.
//! * [`error`] — [`ActivityError`] with the original codes.
//! * [`ports`] — repositories and counters the service needs.
//! * [`recharge`] — `RechargeQuota`: SKU stock → order + account credit, idempotent.
//! * [`draw`] — `Draw`: ticket (reused or paid with quota) → raffle → award record + outbox,
//!   one shard transaction.
//! * [`service`] — [`ActivityService`], the orchestration over the ports.

pub mod draw;
pub mod error;
pub mod model;
pub mod ports;
pub mod recharge;
pub mod service;

pub use error::ActivityError;
pub use model::{Activity, ActivityConfig, ActivityCount, ActivitySku, ActivityState, BusinessCalendar};
pub use service::ActivityService;
