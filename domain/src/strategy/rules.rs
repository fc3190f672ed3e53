//! Pre-draw rule chain values: parsing and matching (spec §4.4).
//!
//! The chain runs the rules listed in `strategy.rule_models` in order and ends with the
//! default pool. A rule either *takes over* (decides the award) or passes to the next one.

use std::collections::HashSet;

use super::error::ArmError;
use crate::ids::{AwardId, StrategyId};

/// A rule model name that may appear in `strategy.rule_models`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainRuleKind {
    /// `rule_blacklist`: listed users get a fixed consolation award.
    Blacklist,
    /// `rule_whitelist`: listed users get a fixed award.
    Whitelist,
    /// `rule_weight`: users with enough used quota draw from a richer pool.
    Weight,
}

impl ChainRuleKind {
    /// Parses a `rule_models` entry.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "rule_blacklist" => Some(Self::Blacklist),
            "rule_whitelist" => Some(Self::Whitelist),
            "rule_weight" => Some(Self::Weight),
            _ => None,
        }
    }

    /// The rule model name as stored.
    pub fn name(self) -> &'static str {
        match self {
            Self::Blacklist => "rule_blacklist",
            Self::Whitelist => "rule_whitelist",
            Self::Weight => "rule_weight",
        }
    }
}

/// `{awardId}:{user1},{user2},…` — the blacklist / whitelist value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserListRule {
    /// The award given to listed users.
    pub award_id: AwardId,
    /// Listed user ids (compared as strings: the original's whitelist parsed them as integers).
    pub users: HashSet<String>,
}

impl UserListRule {
    /// Parses `101:user001,user002`.
    ///
    /// # Errors
    /// [`ArmError::Invalid`] when the value is not `{awardId}:{users}`.
    pub fn parse(strategy_id: StrategyId, model: &str, value: &str) -> Result<Self, ArmError> {
        let invalid = || {
            ArmError::invalid(
                strategy_id,
                format!("{model} rule_value invalid input format: {value:?}"),
            )
        };
        let (award, users) = value.trim().split_once(':').ok_or_else(invalid)?;
        let award_id = award.trim().parse().map_err(|_| invalid())?;
        let users = users
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect();
        Ok(Self { award_id, users })
    }
}

/// One `rule_weight` group: `{threshold}:{awardId},{awardId},…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightGroup {
    /// Minimum total used quota for the group to apply.
    pub threshold: i64,
    /// The awards of the group's pool.
    pub award_ids: Vec<AwardId>,
    /// The group string as configured: part of the pool's Redis key.
    pub raw: String,
}

/// Parses a `rule_weight` value into groups ordered by threshold.
///
/// # Errors
/// [`ArmError::Invalid`] with "rule_weight rule_value invalid input format" when a group is not
/// `{threshold}:{ids}`, or two groups share a threshold.
pub fn parse_weight_groups(strategy_id: StrategyId, value: &str) -> Result<Vec<WeightGroup>, ArmError> {
    let mut groups = Vec::new();
    for raw in value.split_whitespace() {
        let invalid = || {
            ArmError::invalid(
                strategy_id,
                format!("rule_weight rule_value invalid input format: {raw:?}"),
            )
        };
        let parts: Vec<&str> = raw.split(':').collect();
        let [threshold, ids] = parts.as_slice() else {
            return Err(invalid());
        };
        let threshold: i64 = threshold.parse().map_err(|_| invalid())?;
        let award_ids = ids
            .split(',')
            .map(|id| id.trim().parse::<AwardId>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| invalid())?;
        if threshold < 0 || award_ids.is_empty() {
            return Err(invalid());
        }
        groups.push(WeightGroup {
            threshold,
            award_ids,
            raw: raw.to_owned(),
        });
    }
    groups.sort_by_key(|g| g.threshold);
    if groups.windows(2).any(|w| w[0].threshold == w[1].threshold) {
        return Err(ArmError::invalid(
            strategy_id,
            format!("rule_weight has two groups with the same threshold: {value:?}"),
        ));
    }
    Ok(groups)
}

/// The group with the largest threshold ≤ `score` (spec §4.4, Intended), if any.
/// `groups` are ordered by threshold, each with whatever the caller attaches (e.g. its pool).
pub fn match_weight_group<T>(groups: &[(WeightGroup, T)], score: i64) -> Option<&(WeightGroup, T)> {
    groups.iter().rev().find(|(g, _)| g.threshold <= score)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TUTORIAL: &str = "4000:102,103,104,105 5000:102,103,104,105,106,107 6000:102,103,104,105,106,107,108,109";

    #[test]
    fn weight_matches_the_largest_threshold_not_above_the_score() {
        let groups: Vec<_> = parse_weight_groups(StrategyId::new(100001), TUTORIAL)
            .unwrap()
            .into_iter()
            .map(|g| (g, ()))
            .collect();
        let t = |score| match_weight_group(&groups, score).map(|(g, _)| g.threshold);
        assert_eq!(t(4500), Some(4000));
        assert_eq!(t(4900), Some(4000));
        assert_eq!(t(5000), Some(5000));
        assert_eq!(t(5900), Some(5000));
        assert_eq!(t(6000), Some(6000));
        assert_eq!(t(3999), None);
        assert_eq!(groups[0].0.raw, "4000:102,103,104,105");
    }

    #[test]
    fn malformed_weight_groups_are_rejected() {
        for bad in ["4000-102", "4000:102:103", "x:102", "10:", "10:1 10:2"] {
            let err = parse_weight_groups(StrategyId::new(1), bad).unwrap_err().to_string();
            assert!(err.contains("rule_weight"), "{bad}: {err}");
        }
        assert!(parse_weight_groups(StrategyId::new(1), "   ").unwrap().is_empty());
    }

    #[test]
    fn user_lists_compare_user_ids_as_strings() {
        let rule = UserListRule::parse(StrategyId::new(1), "rule_whitelist", "100:user004,user005").unwrap();
        assert_eq!(rule.award_id, AwardId::new(100));
        assert!(rule.users.contains("user004"));
        assert!(!rule.users.contains("user006"));
        assert!(UserListRule::parse(StrategyId::new(1), "rule_blacklist", "user001,user002").is_err());
    }
}
