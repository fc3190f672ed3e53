//! The strategy read model: what `query { strategy(...) }` shows.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::armed::ArmedStrategy;
use crate::ids::{AwardId, StrategyId};

/// A strategy with its awards, as stored in the read model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StrategyView {
    /// `strategy_id`.
    pub strategy_id: StrategyId,
    /// `strategy_desc`.
    pub strategy_desc: String,
    /// The pre-draw chain, in order.
    pub rule_models: Vec<String>,
    /// Awards ordered by `sort`.
    pub awards: Vec<StrategyAwardView>,
    /// `rule_weight` groups ordered by threshold.
    #[serde(default)]
    pub rule_weights: Vec<RuleWeightView>,
}

/// One `rule_weight` group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleWeightView {
    /// Total used quota needed.
    pub threshold: i64,
    /// Awards of the group's pool.
    pub award_ids: Vec<AwardId>,
}

/// One award of a strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StrategyAwardView {
    /// `award_id`.
    pub award_id: AwardId,
    /// `award_title`.
    pub award_title: String,
    /// `award_subtitle`.
    pub award_subtitle: Option<String>,
    /// `award_rate`.
    pub award_rate: Decimal,
    /// `award_count` (total stock).
    pub award_count: i32,
    /// Durable surplus when the view was written; live stock is read separately.
    pub award_count_surplus: i32,
    /// The award's rule tree id.
    pub rule_models: Option<String>,
    /// Display index.
    pub sort: i32,
    /// Draws needed today before the award can be won (`rule_lock` of its tree), if locked.
    #[serde(default)]
    pub rule_lock_count: Option<u32>,
}

impl StrategyView {
    /// The view of an armed strategy.
    pub fn of(s: &ArmedStrategy) -> Self {
        Self {
            strategy_id: s.strategy_id(),
            strategy_desc: s.strategy_desc().to_owned(),
            rule_models: s.rule_models().into_iter().map(str::to_owned).collect(),
            awards: s
                .awards()
                .iter()
                .map(|a| StrategyAwardView {
                    rule_lock_count: s.tree_of(a.award_id).and_then(|t| t.lock_count()),
                    ..StrategyAwardView::from(a)
                })
                .collect(),
            rule_weights: s
                .weight_groups()
                .map(|g| RuleWeightView {
                    threshold: g.threshold,
                    award_ids: g.award_ids.clone(),
                })
                .collect(),
        }
    }
}

impl From<&super::model::StrategyAwardConfig> for StrategyAwardView {
    fn from(a: &super::model::StrategyAwardConfig) -> Self {
        Self {
            award_id: a.award_id,
            award_title: a.award_title.clone(),
            award_subtitle: a.award_subtitle.clone(),
            award_rate: a.award_rate,
            award_count: a.award_count,
            award_count_surplus: a.award_count_surplus,
            rule_models: a.rule_models.clone(),
            sort: a.sort,
            rule_lock_count: None,
        }
    }
}
