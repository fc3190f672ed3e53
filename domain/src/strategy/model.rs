//! Strategy configuration as loaded from the config database (input of arming).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::ids::{AwardId, StrategyId};

/// Everything needed to arm one strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrategyConfig {
    /// `strategy.strategy_id`.
    pub strategy_id: StrategyId,
    /// `strategy.strategy_desc`.
    pub strategy_desc: String,
    /// `strategy.rule_models`, the ordered pre-draw chain (`rule_blacklist,rule_weight`).
    pub rule_models: Option<String>,
    /// Rows of `strategy_award` of this strategy.
    pub awards: Vec<StrategyAwardConfig>,
    /// Strategy-level rows of `strategy_rule` as `(rule_model, rule_value)`.
    pub rules: Vec<(String, String)>,
    /// The rule trees referenced by the awards' `rule_models`.
    pub trees: Vec<RuleTreeConfig>,
    /// The `award` catalogue entries referenced by the awards and by luck awards.
    pub catalog: Vec<AwardCatalogEntry>,
}

/// One `strategy_award` row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrategyAwardConfig {
    /// `award_id`.
    pub award_id: AwardId,
    /// `award_title`.
    pub award_title: String,
    /// `award_subtitle`.
    pub award_subtitle: Option<String>,
    /// `award_count` (total stock).
    pub award_count: i32,
    /// `award_count_surplus` (durable remaining stock).
    pub award_count_surplus: i32,
    /// `award_rate` (exact decimal).
    pub award_rate: Decimal,
    /// `rule_models`: the id of the award's rule tree, if any.
    pub rule_models: Option<String>,
    /// `sort`: display index (`awardIndex`).
    pub sort: i32,
}

/// One `award` catalogue row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwardCatalogEntry {
    /// `award_id`.
    pub award_id: AwardId,
    /// `award_key`: the distribution strategy (`user_credit_random`, ...).
    pub award_key: String,
    /// `award_config`: e.g. `1,100`.
    pub award_config: String,
    /// `award_desc`: used as the title of awards that are not part of the strategy.
    pub award_desc: String,
}

/// One rule tree: `rule_tree` + its `rule_tree_node` and `rule_tree_node_line` rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleTreeConfig {
    /// `tree_id`.
    pub tree_id: String,
    /// `tree_node_rule_key`: the root node's rule key.
    pub root: String,
    /// `(rule_key, rule_value)` per node.
    pub nodes: Vec<(String, Option<String>)>,
    /// Lines in DB order: `(from, to, limit_type, limit_value)`.
    pub lines: Vec<(String, String, String, String)>,
}
