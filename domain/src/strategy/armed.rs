//! The armed strategy: validated configuration plus its rate pools, and the raffle itself.
//!
//! Arming happens once per strategy version; the result is immutable and shared, so a draw
//! touches no configuration store: only the award stock counter (one atomic call).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::armory::RatePool;
use super::error::{ArmError, RaffleError};
use super::model::{AwardCatalogEntry, StrategyAwardConfig, StrategyConfig};
use super::rules::{ChainRuleKind, UserListRule, WeightGroup, match_weight_group, parse_weight_groups};
use super::tree::{RuleTree, TreeContext};
use crate::ids::{AwardId, StrategyId};
use crate::ports::{AwardStockCounter, RandomSource};

/// Credit range given to blacklisted users (spec §4.4).
pub const BLACKLIST_AWARD_CONFIG: &str = "0.01,1";

/// A strategy ready to draw from.
#[derive(Debug, Clone)]
pub struct ArmedStrategy {
    strategy_id: StrategyId,
    strategy_desc: String,
    rule_models: Vec<ChainRuleKind>,
    awards: Vec<StrategyAwardConfig>,
    catalog: HashMap<AwardId, AwardCatalogEntry>,
    default_pool: RatePool,
    weight: Vec<(WeightGroup, RatePool)>,
    blacklist: Option<UserListRule>,
    whitelist: Option<UserListRule>,
    trees: HashMap<String, RuleTree>,
}

/// Per-draw facts about the user, gathered by the caller.
#[derive(Debug, Clone)]
pub struct RaffleInput<'a> {
    /// The drawing user.
    pub user_id: &'a str,
    /// Total quota the user has used in the strategy's activity (weight score).
    pub total_used: i64,
    /// The user's partakes today, including the current ticket (`rule_lock`).
    pub day_partake_count: u32,
    /// The `blackListSwitch` (default closed: blacklist ignored).
    pub blacklist_enabled: bool,
    /// TTL of stock unit lock keys (activity end + 1 day), `None` = no expiry.
    pub lock_ttl: Option<Duration>,
}

/// Which rule decided the drawn award.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// `rule_blacklist` took over (no stock is taken).
    Blacklist,
    /// `rule_whitelist` took over.
    Whitelist,
    /// `rule_weight` took over; the matched group string.
    Weight(String),
    /// The default pool.
    Default,
}

/// A unit of award stock taken by the draw: give it back if the draw is not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TakenStock {
    /// The strategy of the stock counter.
    pub strategy_id: StrategyId,
    /// The award whose unit was taken.
    pub award_id: AwardId,
    /// Units left afterwards; 0 means the award just sold out.
    pub remaining: i64,
}

/// The outcome of one draw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaffleAward {
    /// The award won.
    pub award_id: AwardId,
    /// Its title: the strategy's `award_title`, or the catalogue description for awards
    /// outside the strategy (a luck award of another pool).
    pub award_title: String,
    /// Distribution config overriding the award's own (`1,100` luck range, blacklist range).
    pub award_config: Option<String>,
    /// The award's `sort` (`awardIndex`) when it belongs to the strategy.
    pub sort: Option<i32>,
    /// The rule that chose the drawn award.
    pub decision: Decision,
    /// Stock taken by this draw, if any.
    pub taken: Option<TakenStock>,
}

impl ArmedStrategy {
    /// Validates the configuration and builds every pool (default + one per weight group).
    ///
    /// # Errors
    /// [`ArmError::RuleWeightNotConfigured`] (`ERR_BIZ_001`) or [`ArmError::Invalid`] naming
    /// the offending value.
    pub fn arm(cfg: StrategyConfig, random: &dyn RandomSource) -> Result<Self, ArmError> {
        let sid = cfg.strategy_id;
        if cfg.awards.is_empty() {
            return Err(ArmError::invalid(sid, "has no strategy_award rows"));
        }
        let catalog: HashMap<AwardId, AwardCatalogEntry> = cfg.catalog.into_iter().map(|a| (a.award_id, a)).collect();
        let catalog_ids: HashSet<AwardId> = catalog.keys().copied().collect();
        let mut seen = HashSet::new();
        for a in &cfg.awards {
            if !seen.insert(a.award_id) {
                return Err(ArmError::invalid(sid, format!("award {} is listed twice", a.award_id)));
            }
            if !catalog_ids.contains(&a.award_id) {
                return Err(ArmError::invalid(
                    sid,
                    format!("award {} is not in the award catalogue", a.award_id),
                ));
            }
        }
        let rule_value = |model: &str| cfg.rules.iter().find(|(m, _)| m == model).map(|(_, v)| v.as_str());

        let mut rule_models = Vec::new();
        for name in cfg
            .rule_models
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let kind = ChainRuleKind::parse(name)
                .ok_or_else(|| ArmError::invalid(sid, format!("unknown rule model {name:?} in rule_models")))?;
            if !rule_models.contains(&kind) {
                rule_models.push(kind);
            }
        }

        let mut weight = Vec::new();
        let mut blacklist = None;
        let mut whitelist = None;
        for kind in &rule_models {
            match kind {
                ChainRuleKind::Weight => {
                    let value = rule_value("rule_weight").ok_or(ArmError::RuleWeightNotConfigured(sid))?;
                    for group in parse_weight_groups(sid, value)? {
                        let members = group
                            .award_ids
                            .iter()
                            .map(|id| {
                                cfg.awards
                                    .iter()
                                    .find(|a| a.award_id == *id)
                                    .map(|a| (a.award_id, a.award_rate))
                                    .ok_or_else(|| {
                                        ArmError::invalid(
                                            sid,
                                            format!(
                                                "rule_weight group {} names award {id}, which is not in the strategy",
                                                group.raw
                                            ),
                                        )
                                    })
                            })
                            .collect::<Result<Vec<_>, _>>()?;
                        let pool = RatePool::build(format!("{sid}_{}", group.raw), &members, random)
                            .map_err(|e| ArmError::invalid(sid, e.to_string()))?;
                        weight.push((group, pool));
                    }
                }
                ChainRuleKind::Blacklist | ChainRuleKind::Whitelist => {
                    let value = rule_value(kind.name()).ok_or_else(|| {
                        ArmError::invalid(
                            sid,
                            format!("{} is listed in rule_models but not configured", kind.name()),
                        )
                    })?;
                    let rule = UserListRule::parse(sid, kind.name(), value)?;
                    if !catalog_ids.contains(&rule.award_id) {
                        return Err(ArmError::invalid(
                            sid,
                            format!("{} award {} is not a configured award", kind.name(), rule.award_id),
                        ));
                    }
                    if *kind == ChainRuleKind::Blacklist {
                        blacklist = Some(rule);
                    } else {
                        whitelist = Some(rule);
                    }
                }
            }
        }

        let mut trees = HashMap::new();
        for tree in &cfg.trees {
            trees.insert(tree.tree_id.clone(), RuleTree::validate(sid, tree, &catalog_ids)?);
        }
        for a in &cfg.awards {
            if let Some(tree_id) = a.rule_models.as_deref().filter(|t| !t.trim().is_empty())
                && !trees.contains_key(tree_id)
            {
                return Err(ArmError::invalid(
                    sid,
                    format!(
                        "award {} refers to rule tree {tree_id:?}, which does not exist",
                        a.award_id
                    ),
                ));
            }
        }

        let members: Vec<_> = cfg.awards.iter().map(|a| (a.award_id, a.award_rate)).collect();
        let default_pool =
            RatePool::build(sid.to_string(), &members, random).map_err(|e| ArmError::invalid(sid, e.to_string()))?;
        let mut awards = cfg.awards;
        awards.sort_by_key(|a| (a.sort, a.award_id));
        Ok(Self {
            strategy_id: sid,
            strategy_desc: cfg.strategy_desc,
            rule_models,
            awards,
            catalog,
            default_pool,
            weight,
            blacklist,
            whitelist,
            trees,
        })
    }

    /// The strategy id.
    pub fn strategy_id(&self) -> StrategyId {
        self.strategy_id
    }

    /// `strategy_desc`.
    pub fn strategy_desc(&self) -> &str {
        &self.strategy_desc
    }

    /// The pre-draw rule chain in order (without the implicit default).
    pub fn rule_models(&self) -> Vec<&'static str> {
        self.rule_models.iter().map(|k| k.name()).collect()
    }

    /// The strategy's awards ordered by `sort`.
    pub fn awards(&self) -> &[StrategyAwardConfig] {
        &self.awards
    }

    /// Every pool: the default pool first, then one per weight group.
    pub fn pools(&self) -> impl Iterator<Item = &RatePool> {
        std::iter::once(&self.default_pool).chain(self.weight.iter().map(|(_, p)| p))
    }

    /// The weight groups with their pools, ordered by threshold.
    pub fn weight_groups(&self) -> impl Iterator<Item = &WeightGroup> {
        self.weight.iter().map(|(g, _)| g)
    }

    /// The rule tree of an award, if it has one.
    pub fn tree_of(&self, award_id: AwardId) -> Option<&RuleTree> {
        let award = self.awards.iter().find(|a| a.award_id == award_id)?;
        self.trees.get(award.rule_models.as_deref()?)
    }

    /// Title of any award: the strategy's title, else the catalogue description.
    pub fn award_title(&self, award_id: AwardId) -> Option<&str> {
        self.awards
            .iter()
            .find(|a| a.award_id == award_id)
            .map(|a| a.award_title.as_str())
            .or_else(|| self.catalog.get(&award_id).map(|c| c.award_desc.as_str()))
    }

    /// The catalogue entry of an award (its `award_key` selects delivery).
    pub fn catalog_entry(&self, award_id: AwardId) -> Option<&AwardCatalogEntry> {
        self.catalog.get(&award_id)
    }

    /// Draws once: rule chain, then the drawn award's rule tree.
    ///
    /// Blacklisted users get the blacklist award without touching stock. Weight and whitelist
    /// draws run the award's tree with locks skipped, so their stock is still taken (spec §8.1
    /// item 5). An award without a tree is awarded as drawn.
    ///
    /// # Errors
    /// [`RaffleError::Stock`] when the stock store fails (nothing stays taken).
    pub async fn raffle(
        &self,
        input: &RaffleInput<'_>,
        random: &dyn RandomSource,
        stock: &dyn AwardStockCounter,
    ) -> Result<RaffleAward, RaffleError> {
        let mut chosen: Option<(AwardId, Decision)> = None;
        for kind in &self.rule_models {
            chosen = match kind {
                ChainRuleKind::Blacklist => match &self.blacklist {
                    Some(rule) if input.blacklist_enabled && rule.users.contains(input.user_id) => {
                        return self.award(
                            rule.award_id,
                            Some(BLACKLIST_AWARD_CONFIG.to_owned()),
                            Decision::Blacklist,
                            None,
                        );
                    }
                    _ => None,
                },
                ChainRuleKind::Whitelist => self
                    .whitelist
                    .as_ref()
                    .filter(|r| r.users.contains(input.user_id))
                    .map(|r| (r.award_id, Decision::Whitelist)),
                ChainRuleKind::Weight => match_weight_group(&self.weight, input.total_used)
                    .map(|(group, pool)| (pool.draw(random), Decision::Weight(group.raw.clone()))),
            };
            if chosen.is_some() {
                break;
            }
        }
        let (drawn, decision) = chosen.unwrap_or_else(|| (self.default_pool.draw(random), Decision::Default));
        let Some(tree) = self.tree_of(drawn) else {
            return self.award(drawn, None, decision, None);
        };
        let outcome = tree
            .walk(&TreeContext {
                strategy_id: self.strategy_id,
                drawn_award_id: drawn,
                day_partake_count: input.day_partake_count,
                skip_locks: decision != Decision::Default,
                lock_ttl: input.lock_ttl,
                stock,
            })
            .await?;
        let taken = outcome.stock_remaining.map(|remaining| TakenStock {
            strategy_id: self.strategy_id,
            award_id: drawn,
            remaining,
        });
        self.award(
            outcome.award_id,
            outcome.award_config.filter(|c| !c.is_empty()),
            decision,
            taken,
        )
    }

    fn award(
        &self,
        award_id: AwardId,
        award_config: Option<String>,
        decision: Decision,
        taken: Option<TakenStock>,
    ) -> Result<RaffleAward, RaffleError> {
        let title = self.award_title(award_id).ok_or(RaffleError::UnknownAward {
            strategy_id: self.strategy_id,
            award_id,
        })?;
        Ok(RaffleAward {
            award_id,
            award_title: title.to_owned(),
            award_config,
            sort: self.awards.iter().find(|a| a.award_id == award_id).map(|a| a.sort),
            decision,
            taken,
        })
    }
}

#[cfg(test)]
#[path = "armed_tests.rs"]
mod tests;
