//! Publishing armed strategies to Redis: rate tables, stock counters and the strategy view.
//!
//! Keys follow spec §4.2/§7.10 so other instances (and tools written for the original) can
//! read them. Each pool is replaced in one `MULTI` so a reader never sees half a table.

use std::collections::HashMap;

use domain::ids::{AwardId, StrategyId};
use domain::ports::{ArmoryStore, PortError};
use domain::strategy::{ArmedStrategy, StrategyAwardView, StrategyView};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

use super::{Keys, port_err};

/// [`ArmoryStore`] on Redis.
#[derive(Clone)]
pub struct RedisArmoryStore {
    conn: ConnectionManager,
    keys: Keys,
}

/// `big_market_strategy_key_{id}`: the original's StrategyEntity fields.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StrategyEntity {
    strategy_id: StrategyId,
    strategy_desc: String,
    rule_models: Option<String>,
}

impl RedisArmoryStore {
    /// A store under `keys`.
    pub fn new(conn: ConnectionManager, keys: Keys) -> Self {
        Self { conn, keys }
    }
}

#[async_trait::async_trait]
impl ArmoryStore for RedisArmoryStore {
    async fn publish(&self, strategy: &ArmedStrategy, initial_stock: &HashMap<AwardId, i64>) -> Result<(), PortError> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.atomic();
        for pool in strategy.pools() {
            let table = self.keys.rate_table(pool.key());
            pipe.del(&table).ignore();
            let fields: Vec<(usize, i32)> = pool.slots().iter().map(|a| a.get()).enumerate().collect();
            for chunk in fields.chunks(5_000) {
                pipe.hset_multiple(&table, chunk).ignore();
            }
            pipe.set(self.keys.rate_range(pool.key()), pool.size()).ignore();
        }
        for award in strategy.awards() {
            // Set-if-absent: never reset a live counter (spec §8.1 item 2).
            let units = initial_stock.get(&award.award_id).copied().unwrap_or(0);
            pipe.set_nx(self.keys.award_stock(strategy.strategy_id(), award.award_id), units)
                .ignore();
        }
        let _: () = pipe.query_async(&mut conn).await.map_err(port_err)?;
        Ok(())
    }

    async fn is_armed(&self, strategy_id: StrategyId) -> Result<bool, PortError> {
        let mut conn = self.conn.clone();
        conn.exists(self.keys.rate_range(&strategy_id.to_string()))
            .await
            .map_err(port_err)
    }

    async fn view(&self, strategy_id: StrategyId) -> Result<Option<StrategyView>, PortError> {
        let mut conn = self.conn.clone();
        let (entity, awards, weights): (Option<String>, Option<String>, Option<String>) = redis::pipe()
            .get(self.keys.strategy(strategy_id))
            .get(self.keys.strategy_award_list(strategy_id))
            .get(self.keys.rule_weights(strategy_id))
            .query_async(&mut conn)
            .await
            .map_err(port_err)?;
        let (Some(entity), Some(awards)) = (entity, awards) else {
            return Ok(None);
        };
        let decode = |e: serde_json::Error| PortError::new(format!("strategy {strategy_id} read model is corrupt"), e);
        let entity: StrategyEntity = serde_json::from_str(&entity).map_err(decode)?;
        let mut awards: Vec<StrategyAwardView> = serde_json::from_str(&awards).map_err(decode)?;
        let rule_weights = weights
            .map(|w| serde_json::from_str(&w))
            .transpose()
            .map_err(decode)?
            .unwrap_or_default();
        // Live stock: the Redis counters are authoritative while they exist.
        let stock_keys: Vec<String> = awards
            .iter()
            .map(|a| self.keys.award_stock(strategy_id, a.award_id))
            .collect();
        if !stock_keys.is_empty() {
            let live: Vec<Option<i64>> = redis::cmd("MGET")
                .arg(&stock_keys)
                .query_async(&mut conn)
                .await
                .map_err(port_err)?;
            for (a, s) in awards.iter_mut().zip(live) {
                if let Some(s) = s {
                    a.award_count_surplus = i32::try_from(s.max(0)).unwrap_or(i32::MAX);
                }
            }
        }
        Ok(Some(StrategyView {
            strategy_id,
            strategy_desc: entity.strategy_desc,
            rule_models: entity
                .rule_models
                .unwrap_or_default()
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            awards,
            rule_weights,
        }))
    }

    async fn put_view(&self, view: &StrategyView) -> Result<(), PortError> {
        let entity = StrategyEntity {
            strategy_id: view.strategy_id,
            strategy_desc: view.strategy_desc.clone(),
            rule_models: (!view.rule_models.is_empty()).then(|| view.rule_models.join(",")),
        };
        let encode = |e: serde_json::Error| PortError::new("encoding strategy view", e);
        let entity = serde_json::to_string(&entity).map_err(encode)?;
        let awards = serde_json::to_string(&view.awards).map_err(encode)?;
        let weights = serde_json::to_string(&view.rule_weights).map_err(encode)?;
        let mut conn = self.conn.clone();
        let _: () = redis::pipe()
            .atomic()
            .set(self.keys.strategy(view.strategy_id), entity)
            .ignore()
            .set(self.keys.strategy_award_list(view.strategy_id), awards)
            .ignore()
            .set(self.keys.rule_weights(view.strategy_id), weights)
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(port_err)?;
        Ok(())
    }
}
