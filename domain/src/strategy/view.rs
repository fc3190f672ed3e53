//! The strategy read model: what `query { strategy(...) }` shows.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::armed::ArmedStrategy;
use super::model::StrategyConfig;
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
}

impl StrategyView {
    /// The view of an armed strategy.
    pub fn of(s: &ArmedStrategy) -> Self {
        Self {
            strategy_id: s.strategy_id(),
            strategy_desc: s.strategy_desc().to_owned(),
            rule_models: s.rule_models().into_iter().map(str::to_owned).collect(),
            awards: s.awards().iter().map(StrategyAwardView::from).collect(),
        }
    }

    /// The view of a configuration (not armed).
    pub fn from_config(cfg: &StrategyConfig) -> Self {
        let mut awards: Vec<StrategyAwardView> = cfg.awards.iter().map(StrategyAwardView::from).collect();
        awards.sort_by_key(|a| (a.sort, a.award_id));
        Self {
            strategy_id: cfg.strategy_id,
            strategy_desc: cfg.strategy_desc.clone(),
            rule_models: cfg
                .rule_models
                .as_deref()
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            awards,
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
        }
    }
}
