//! Stock administration: `addAwardStock`, `addSkuStock`.

use std::sync::Arc;

use async_graphql::{Context, ID, Object, Result, SimpleObject};
use domain::ids::{AwardId, Sku, StrategyId};
use domain::stock::StockAdded;

use super::audit::audited;
use super::error::{invalid_argument, to_gql};
use super::scalars::{id_json, long_id};
use crate::state::AppState;
use serde_json::json;

/// Stock after an addition.
#[derive(SimpleObject)]
pub struct StockLevel {
    /// Total stock (durable `award_count` / `stock_count`).
    pub count: i64,
    /// Durable surplus (`award_count_surplus` / `stock_count_surplus`).
    pub surplus: i64,
    /// The live counter in Redis that draws and recharges take from; null while it was never
    /// armed (arming then derives it from the durable surplus).
    pub live: Option<i64>,
}

impl From<StockAdded> for StockLevel {
    fn from(a: StockAdded) -> Self {
        Self {
            count: a.count,
            surplus: a.surplus,
            live: a.live,
        }
    }
}

/// Stock mutations (operators).
#[derive(Default)]
pub struct StockMutation;

#[Object]
impl StockMutation {
    /// Adds `units` (1–100 000) of stock to an award of a strategy: the live counter first
    /// (the new units become sellable at once, whatever unit locks earlier sales left), then
    /// the durable count and surplus, which the stock sync never lowers below the live counter.
    /// Errors: `0002` bad units or unknown award. Admin only.
    async fn add_award_stock(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The strategy.")] strategy_id: ID,
        #[graphql(desc = "The award of that strategy.")] award_id: i32,
        #[graphql(desc = "Units to add, 1–100 000.")] units: i64,
    ) -> Result<StockLevel> {
        let arguments = json!({ "strategyId": id_json(&strategy_id), "awardId": award_id, "units": units });
        audited(ctx, "addAwardStock", arguments, async {
            let state = ctx.data::<Arc<AppState>>()?;
            let strategy_id = StrategyId::parse(long_id("strategyId", &strategy_id)?).map_err(invalid_argument)?;
            let award_id = AwardId::parse(award_id).map_err(invalid_argument)?;
            let added = state
                .stock
                .add_award_stock(strategy_id, award_id, units)
                .await
                .map_err(to_gql)?;
            Ok(added.into())
        })
        .await
    }

    /// Adds `units` (1–100 000) of stock to a SKU, live counter first, then the durable count
    /// and surplus. Errors: `0002` bad units or unknown SKU. Admin only.
    async fn add_sku_stock(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The SKU.")] sku: ID,
        #[graphql(desc = "Units to add, 1–100 000.")] units: i64,
    ) -> Result<StockLevel> {
        audited(
            ctx,
            "addSkuStock",
            json!({ "sku": id_json(&sku), "units": units }),
            async {
                let state = ctx.data::<Arc<AppState>>()?;
                let sku = Sku::parse(long_id("sku", &sku)?).map_err(invalid_argument)?;
                let added = state.stock.add_sku_stock(sku, units).await.map_err(to_gql)?;
                Ok(added.into())
            },
        )
        .await
    }
}
