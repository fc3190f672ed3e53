//! [`DurableStock`] on the config database: `strategy_award` and `raffle_activity_sku` counts.

use domain::ids::{AwardId, Sku, StrategyId};
use domain::ports::PortError;
use domain::stock::DurableStock;
use sea_orm::{ConnectionTrait, DbErr, Statement};

use crate::mysql::db::Db;

use super::db::port_err;

/// Adds durable stock in one transaction per call: the update, then the values it left.
#[derive(Debug, Clone)]
pub struct MySqlDurableStock {
    config: Db,
}

impl MySqlDurableStock {
    /// Durable stock on the config database.
    pub fn new(config: Db) -> Self {
        Self { config }
    }

    async fn add(
        &self,
        update: &str,
        select: &str,
        units: i64,
        keys: Vec<sea_orm::Value>,
    ) -> Result<Option<(i64, i64)>, DbErr> {
        let tx = self.config.begin().await?;
        let b = tx.get_database_backend();
        let mut values = vec![units.into(), units.into()];
        values.extend(keys.iter().cloned());
        let done = tx.execute(Statement::from_sql_and_values(b, update, values)).await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        let row = tx
            .query_one(Statement::from_sql_and_values(b, select, keys))
            .await?
            .ok_or_else(|| DbErr::RecordNotFound("stock row vanished inside its transaction".into()))?;
        let after = (row.try_get_by_index::<i64>(0)?, row.try_get_by_index::<i64>(1)?);
        tx.commit().await?;
        Ok(Some(after))
    }
}

#[async_trait::async_trait]
impl DurableStock for MySqlDurableStock {
    async fn add_award_stock(
        &self,
        strategy_id: StrategyId,
        award_id: AwardId,
        units: i64,
    ) -> Result<Option<(i64, i64)>, PortError> {
        self.add(
            "UPDATE strategy_award SET award_count = award_count + ?, award_count_surplus = award_count_surplus + ? \
             WHERE strategy_id = ? AND award_id = ?",
            "SELECT CAST(award_count AS SIGNED), CAST(award_count_surplus AS SIGNED) FROM strategy_award \
             WHERE strategy_id = ? AND award_id = ?",
            units,
            vec![strategy_id.get().into(), award_id.get().into()],
        )
        .await
        .map_err(port_err)
    }

    async fn add_sku_stock(&self, sku: Sku, units: i64) -> Result<Option<(i64, i64)>, PortError> {
        self.add(
            "UPDATE raffle_activity_sku SET stock_count = stock_count + ?, stock_count_surplus = stock_count_surplus + ? \
             WHERE sku = ?",
            "SELECT CAST(stock_count AS SIGNED), CAST(stock_count_surplus AS SIGNED) FROM raffle_activity_sku \
             WHERE sku = ?",
            units,
            vec![sku.get().into()],
        )
        .await
        .map_err(port_err)
    }
}
