//! Loading activity configuration (activity, SKUs, count packages) from the config database.

use domain::activity::ports::ActivityRepository;
use domain::activity::{Activity, ActivityConfig, ActivityCount, ActivitySku, ActivityState};
use domain::ids::{ActivityId, Sku, StrategyId};
use domain::ports::PortError;
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};

use crate::mysql::db::Db;

use crate::mysql::entity::{raffle_activity, raffle_activity_count, raffle_activity_sku};

/// [`ActivityRepository`] on MySQL (SeaORM).
#[derive(Debug, Clone)]
pub struct MySqlActivityRepository {
    db: Db,
}

impl MySqlActivityRepository {
    /// A repository over the config database.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    async fn load(&self, activity_id: ActivityId) -> Result<Option<ActivityConfig>, DbErr> {
        let Some(a) = raffle_activity::Entity::find()
            .filter(raffle_activity::Column::ActivityId.eq(activity_id.get()))
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let skus = raffle_activity_sku::Entity::find()
            .filter(raffle_activity_sku::Column::ActivityId.eq(activity_id.get()))
            .order_by_asc(raffle_activity_sku::Column::Sku)
            .all(&self.db)
            .await?;
        let counts = raffle_activity_count::Entity::find()
            .filter(raffle_activity_count::Column::ActivityCountId.is_in(skus.iter().map(|s| s.activity_count_id)))
            .all(&self.db)
            .await?;
        let mut out = Vec::with_capacity(skus.len());
        for s in skus {
            // A SKU whose package row is missing cannot be sold: leave it out of the config.
            let Some(c) = counts.iter().find(|c| c.activity_count_id == s.activity_count_id) else {
                tracing::warn!(
                    sku = s.sku,
                    activity_count_id = s.activity_count_id,
                    "SKU without package; ignored"
                );
                continue;
            };
            out.push(ActivitySku {
                sku: Sku::new(s.sku),
                activity_id: ActivityId::new(s.activity_id),
                count: ActivityCount {
                    activity_count_id: c.activity_count_id,
                    total_count: c.total_count,
                    day_count: c.day_count,
                    month_count: c.month_count,
                },
                stock_count: s.stock_count,
                stock_count_surplus: s.stock_count_surplus,
                product_amount: s.product_amount,
            });
        }
        Ok(Some(ActivityConfig {
            activity: Activity {
                activity_id: ActivityId::new(a.activity_id),
                activity_name: a.activity_name,
                activity_desc: a.activity_desc,
                begin: a.begin_date_time,
                end: a.end_date_time,
                strategy_id: StrategyId::new(a.strategy_id),
                state: ActivityState::parse(&a.state),
            },
            skus: out,
        }))
    }
}

#[async_trait::async_trait]
impl ActivityRepository for MySqlActivityRepository {
    async fn load_activity(&self, activity_id: ActivityId) -> Result<Option<ActivityConfig>, PortError> {
        self.load(activity_id).await.map_err(crate::mysql::db::port_err)
    }

    async fn activity_of_sku(&self, sku: Sku) -> Result<Option<ActivityId>, PortError> {
        raffle_activity_sku::Entity::find()
            .filter(raffle_activity_sku::Column::Sku.eq(sku.get()))
            .one(&self.db)
            .await
            .map(|s| s.map(|s| ActivityId::new(s.activity_id)))
            .map_err(crate::mysql::db::port_err)
    }
}
