//! Strategy operations: `armStrategy`, `randomRaffle`, `strategy`.

use std::sync::Arc;

use async_graphql::{Context, ID, Object, Result, SimpleObject};
use domain::ids::StrategyId;
use domain::strategy::{RaffleInput, StrategyAwardView, StrategyView};

use super::audit::audited;
use super::error::{invalid_argument, to_gql};
use super::node::{STRATEGY, global_id};
use super::scalars::{Decimal, id_json, id_of, long_id};
use crate::state::AppState;
use serde_json::json;

/// The user the original's `random_raffle` draws as (spec §7.7).
const SYSTEM_USER: &str = "system";

/// A prize strategy.
#[derive(SimpleObject)]
pub struct Strategy {
    /// Global id: refetch this strategy (its live award stock) with `node(id:)`.
    pub id: ID,
    /// Strategy id.
    pub strategy_id: ID,
    /// Description.
    pub strategy_desc: String,
    /// Pre-draw rule chain, in order (e.g. `rule_blacklist`, `rule_weight`).
    pub rule_models: Vec<String>,
    /// Awards ordered by `sort`.
    pub awards: Vec<StrategyAward>,
}

/// One award of a strategy.
#[derive(SimpleObject)]
pub struct StrategyAward {
    /// Award id.
    pub award_id: i32,
    /// Title.
    pub award_title: String,
    /// Subtitle (e.g. unlock hint).
    pub award_subtitle: Option<String>,
    /// Probability as an exact decimal (e.g. `0.0300`).
    pub award_rate: Decimal,
    /// Total stock.
    pub award_count: i32,
    /// Remaining stock: the live counter once armed, else the durable surplus.
    pub award_count_surplus: i32,
    /// Display index.
    pub sort: i32,
}

/// The result of a draw.
#[derive(SimpleObject)]
pub struct RaffleResult {
    /// The award won.
    pub award_id: i32,
    /// Its title.
    pub award_title: String,
    /// Its display index (`sort`); null for a consolation award that is not on this strategy's wheel.
    pub award_index: Option<i32>,
}

impl From<StrategyView> for Strategy {
    fn from(v: StrategyView) -> Self {
        Self {
            id: global_id(STRATEGY, &v.strategy_id.get().to_string()),
            strategy_id: id_of(v.strategy_id.get()),
            strategy_desc: v.strategy_desc,
            rule_models: v.rule_models,
            awards: v.awards.into_iter().map(StrategyAward::from).collect(),
        }
    }
}

impl From<StrategyAwardView> for StrategyAward {
    fn from(a: StrategyAwardView) -> Self {
        Self {
            award_id: a.award_id.get(),
            award_title: a.award_title,
            award_subtitle: a.award_subtitle,
            award_rate: Decimal(a.award_rate),
            award_count: a.award_count,
            award_count_surplus: a.award_count_surplus,
            sort: a.sort,
        }
    }
}

/// Strategy queries.
#[derive(Default)]
pub struct StrategyQuery;

#[Object]
impl StrategyQuery {
    /// A strategy and its awards, from the read model. Unknown ids fail with code `0002`.
    /// Public (no token needed).
    async fn strategy(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The strategy.")] strategy_id: ID,
    ) -> Result<Strategy> {
        let state = ctx.data::<Arc<AppState>>()?;
        let strategy_id = StrategyId::parse(long_id("strategyId", &strategy_id)?).map_err(invalid_argument)?;
        Ok(state.strategy.view(strategy_id).await.map_err(to_gql)?.into())
    }
}

/// Strategy mutations.
#[derive(Default)]
pub struct StrategyMutation;

#[Object]
impl StrategyMutation {
    /// Arms a strategy: validates its configuration, builds its rate tables and arms award
    /// stock from the durable surplus (never resetting a live counter). Re-runnable.
    /// Errors: `0002` unknown strategy, `ERR_BIZ_001` weight rule missing, `ERR_CONFIG_002` invalid configuration.
    /// Admin only.
    async fn arm_strategy(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The strategy.")] strategy_id: ID,
    ) -> Result<bool> {
        audited(
            ctx,
            "armStrategy",
            json!({ "strategyId": id_json(&strategy_id) }),
            async {
                let state = ctx.data::<Arc<AppState>>()?;
                let strategy_id = StrategyId::parse(long_id("strategyId", &strategy_id)?).map_err(invalid_argument)?;
                state.strategy.arm(strategy_id).await.map_err(to_gql)?;
                announce_armed(state).await;
                Ok(true)
            },
        )
        .await
    }

    /// Draws once as the user `system` (the original's `random_raffle`); takes award stock.
    /// Errors: `ERR_BIZ_002` when the strategy is not armed.
    /// Admin only (it spends award stock).
    async fn random_raffle(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The strategy (armed).")] strategy_id: ID,
    ) -> Result<RaffleResult> {
        audited(
            ctx,
            "randomRaffle",
            json!({ "strategyId": id_json(&strategy_id) }),
            async {
                let state = ctx.data::<Arc<AppState>>()?;
                let strategy_id = StrategyId::parse(long_id("strategyId", &strategy_id)?).map_err(invalid_argument)?;
                // A draw like any other: degrade and the rate limit apply.
                let system = domain::ids::UserId::parse(SYSTEM_USER).map_err(invalid_argument)?;
                let switches = state.activity.admit(&system).await.map_err(to_gql)?;
                let input = RaffleInput {
                    user_id: SYSTEM_USER,
                    total_used: 0,
                    day_partake_count: 0,
                    blacklist_enabled: switches.blacklist,
                    lock_ttl: None,
                };
                let award = state.strategy.raffle(strategy_id, &input).await.map_err(to_gql)?;
                Ok(RaffleResult {
                    award_id: award.award_id.get(),
                    award_title: award.award_title,
                    award_index: award.sort,
                })
            },
        )
        .await
    }
}

/// Tells every instance that configuration was armed (they drop their in-process copies).
pub(crate) async fn announce_armed(state: &AppState) {
    if let Err(e) = state.switch_board.config_changed().await {
        // Other instances still reload their copies when those expire.
        tracing::warn!(error = %e, "could not announce the arming to other instances");
    }
}
