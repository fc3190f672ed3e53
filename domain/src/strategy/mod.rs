//! The strategy context: turning a prize configuration into an armed, drawable strategy.
//!
//! * [`model`] — the configuration as stored (input of arming).
//! * [`armory`] — exact-decimal rate pools (one slot per unit of probability), O(1) draws.
//! * [`rules`] — pre-draw rule chain values (`rule_blacklist`, `rule_whitelist`, `rule_weight`).
//! * [`tree`] — post-draw rule trees (`rule_lock`, `rule_stock`, `rule_luck_award`), validated at arm time.
//! * [`armed`] — [`ArmedStrategy`]: the immutable armed form and the raffle itself.
//! * [`service`] — [`StrategyService`]: arm / draw / view over the ports.

pub mod armed;
pub mod armory;
pub mod error;
pub mod model;
pub mod rules;
pub mod service;
pub mod tree;
pub mod view;

pub use armed::{ArmedStrategy, Decision, RaffleAward, RaffleInput, TakenStock};
pub use armory::RatePool;
pub use error::{ArmError, RaffleError};
pub use model::{AwardCatalogEntry, RuleTreeConfig, StrategyAwardConfig, StrategyConfig};
pub use service::{StrategyError, StrategyService};
pub use view::{RuleWeightView, StrategyAwardView, StrategyView};
