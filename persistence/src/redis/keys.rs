//! The Redis key catalogue (spec §7.10), with an optional namespace prefix.
//!
//! Names are the original's so tools written for the Java system find them; the prefix
//! (empty in production) lets tests and several deployments share one Redis.

use domain::ids::{ActivityId, AwardId, Sku, StrategyId};

/// Builds every key the system uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` (may be empty).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self { prefix: prefix.into() }
    }

    /// The namespace prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn k(&self, rest: std::fmt::Arguments<'_>) -> String {
        format!("{}{}", self.prefix, rest)
    }

    /// `big_market_strategy_key_{strategyId}`: strategy entity JSON.
    pub fn strategy(&self, id: StrategyId) -> String {
        self.k(format_args!("big_market_strategy_key_{id}"))
    }

    /// `big_market_strategy_award_list_key_{strategyId}`: award list JSON.
    pub fn strategy_award_list(&self, id: StrategyId) -> String {
        self.k(format_args!("big_market_strategy_award_list_key_{id}"))
    }

    /// `big_market_strategy_rate_range_key_{poolKey}`: pool table size.
    pub fn rate_range(&self, pool_key: &str) -> String {
        self.k(format_args!("big_market_strategy_rate_range_key_{pool_key}"))
    }

    /// `big_market_strategy_rate_table_key_{poolKey}`: hash slot → award id.
    pub fn rate_table(&self, pool_key: &str) -> String {
        self.k(format_args!("big_market_strategy_rate_table_key_{pool_key}"))
    }

    /// `strategy_award_count_key_{strategyId}_{awardId}`: award stock counter.
    pub fn award_stock(&self, id: StrategyId, award: AwardId) -> String {
        self.k(format_args!("strategy_award_count_key_{id}_{award}"))
    }

    /// `rule_tree_vo_key_{treeId}`.
    pub fn rule_tree(&self, tree_id: &str) -> String {
        self.k(format_args!("rule_tree_vo_key_{tree_id}"))
    }

    /// `big_market_activity_sku_stock_count_key_{sku}`: SKU stock counter.
    pub fn sku_stock(&self, sku: Sku) -> String {
        self.k(format_args!("big_market_activity_sku_stock_count_key_{sku}"))
    }

    /// `bm:rm:task:{userId}`: the user's task-status stream (hash-tagged per user).
    pub fn task_stream(&self, user_id: &str) -> String {
        self.k(format_args!("bm:rm:task:{{{user_id}}}"))
    }

    /// `bm:rm:v:{userId}:{view}`: a user's read model (hash-tagged per user).
    pub fn view(&self, user_id: &str, view: &str) -> String {
        self.k(format_args!("bm:rm:v:{{{user_id}}}:{view}"))
    }

    /// `big_market_strategy_rule_weight_key_{strategyId}`: the strategy's weight groups.
    pub fn rule_weights(&self, id: StrategyId) -> String {
        self.k(format_args!("big_market_strategy_rule_weight_key_{id}"))
    }

    /// `bm:rm:activity:{activityId}`: the activity view (SKU products).
    pub fn activity_view(&self, activity_id: ActivityId) -> String {
        self.k(format_args!("bm:rm:activity:{activity_id}"))
    }

    /// `bm:rm:stages`: the active activity of each `(channel, source)`.
    pub fn stages_view(&self) -> String {
        self.k(format_args!("bm:rm:stages"))
    }

    /// `bm:rm:t:{messageId}`: the latest state of one outbox event.
    pub fn task_status(&self, message_id: &str) -> String {
        self.k(format_args!("bm:rm:t:{message_id}"))
    }

    /// `bm:rl:{user}`: the user's draw rate-limit bucket.
    pub fn rate_bucket(&self, user_id: &str) -> String {
        self.k(format_args!("bm:rl:{{{user_id}}}"))
    }

    /// `bm:rl:refused:{user}`: the user's counted rate-limit refusals.
    pub fn rate_refusals(&self, user_id: &str) -> String {
        self.k(format_args!("bm:rl:refused:{{{user_id}}}"))
    }

    /// `bm:rl:blacklisted:{user}`: present (with a TTL) while the user is blacklisted; its
    /// value is when the entry ends (epoch µs).
    pub fn rate_blacklisted(&self, user_id: &str) -> String {
        self.k(format_args!("bm:rl:blacklisted:{{{user_id}}}"))
    }

    /// `bm:guard:refused`: refused draws per guard.
    pub fn guard_refusals(&self) -> String {
        self.k(format_args!("bm:guard:refused"))
    }

    /// `bm:switches`: the pub/sub channel that tells every instance to re-read its switches
    /// and configuration.
    pub fn switches_channel(&self) -> String {
        self.k(format_args!("bm:switches"))
    }

    /// `bm:config:generation`: raised by every arming; an instance that sees it change drops
    /// its in-process strategy and activity copies.
    pub fn config_generation(&self) -> String {
        self.k(format_args!("bm:config:generation"))
    }

    /// `bm:apq:{sha256}`: a GraphQL document registered by a client (automatic persisted
    /// queries), by the lower-case hex SHA-256 of its text.
    pub fn apq_document(&self, sha256: &str) -> String {
        self.k(format_args!("bm:apq:{sha256}"))
    }

    /// `bm:trusted_documents`: hash of the trusted GraphQL documents (operators register them),
    /// field = lower-case hex SHA-256 of the text, value = the text.
    pub fn trusted_documents(&self) -> String {
        self.k(format_args!("bm:trusted_documents"))
    }

    /// `bm:trusted_documents:generation`: a counter raised whenever trusted documents are
    /// removed, so every instance drops the texts it keeps in process.
    pub fn trusted_documents_generation(&self) -> String {
        self.k(format_args!("bm:trusted_documents:generation"))
    }
}
