//! Award delivery on the shards: inbox + award record + credit + task stamp in one transaction.

use std::sync::Arc;

use domain::award::{AwardDeliveryRepository, CreditBalance, DeadMark, Delivery, DeliveryOutcome};
use domain::ids::AwardId;
use domain::outbox::TOPIC_SEND_AWARD;
use domain::ports::Clock;
use domain::ports::PortError;
use domain::strategy::AwardCatalogEntry;
use sea_orm::sea_query::{Alias, Expr, OnConflict, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use crate::mysql::db::Tx;

use crate::mysql::db::{Databases, is_duplicate, port_err};
use crate::mysql::entity::award;

fn c(name: &'static str) -> Alias {
    Alias::new(name)
}

/// [`AwardDeliveryRepository`] over the shards (and the config DB for the catalogue).
#[derive(Clone)]
pub struct MySqlAwardDelivery {
    db: Databases,
    clock: Arc<dyn Clock>,
}

impl MySqlAwardDelivery {
    /// A repository over `db`; `clock` stamps `task.delivered_at`.
    pub fn new(db: Databases, clock: Arc<dyn Clock>) -> Self {
        Self { db, clock }
    }

    async fn apply(
        tx: &Tx,
        d: &Delivery,
        suffix: &str,
        now: chrono::NaiveDateTime,
    ) -> Result<Option<CreditBalance>, DbErr> {
        let b = tx.get_database_backend();
        let inbox = Query::insert()
            .into_table(c("inbox"))
            .columns([c("message_id"), c("topic"), c("user_id")])
            .values_panic([
                d.message_id.clone().into(),
                TOPIC_SEND_AWARD.into(),
                d.user_id.clone().into(),
            ])
            .to_owned();
        tx.execute(b.build(&inbox)).await?;
        let record = Query::update()
            .table(Alias::new(format!("user_award_record{suffix}")))
            .value(c("award_state"), "completed")
            .and_where(Expr::col(c("user_id")).eq(d.user_id.as_str()))
            .and_where(Expr::col(c("order_id")).eq(d.order_id.as_str()))
            .and_where(Expr::col(c("award_state")).eq("create"))
            .to_owned();
        let flipped = tx.execute(b.build(&record)).await?.rows_affected();
        let mut balance = None;
        // Credit only when this delivery completed the record: a record completed by another
        // path (or unknown here) must not be paid twice.
        if let (Some(amount), 1) = (d.credit, flipped) {
            let add = |col: &'static str| (c(col), Expr::col((c("user_credit_account"), c(col))).add(amount));
            let credit = Query::insert()
                .into_table(c("user_credit_account"))
                .columns([
                    c("user_id"),
                    c("total_amount"),
                    c("available_amount"),
                    c("account_status"),
                    c("version"),
                ])
                .values_panic([
                    d.user_id.clone().into(),
                    amount.into(),
                    amount.into(),
                    "open".into(),
                    1.into(),
                ])
                .on_conflict(
                    OnConflict::new()
                        .values([
                            add("total_amount"),
                            add("available_amount"),
                            (c("version"), Expr::col((c("user_credit_account"), c("version"))).add(1)),
                        ])
                        .to_owned(),
                )
                .to_owned();
            tx.execute(b.build(&credit)).await?;
            let q = Query::select()
                .columns([c("total_amount"), c("available_amount"), c("version")])
                .from(c("user_credit_account"))
                .and_where(Expr::col(c("user_id")).eq(d.user_id.as_str()))
                .to_owned();
            if let Some(r) = tx.query_one(b.build(&q)).await? {
                balance = Some(CreditBalance {
                    total_amount: r.try_get("", "total_amount")?,
                    available_amount: r.try_get("", "available_amount")?,
                    version: r.try_get("", "version")?,
                });
            }
        }
        let task = Query::update()
            .table(c("task"))
            .value(c("delivered_at"), now)
            .and_where(Expr::col(c("message_id")).eq(d.message_id.as_str()))
            .to_owned();
        tx.execute(b.build(&task)).await?;
        Ok(balance)
    }
}

#[async_trait::async_trait]
impl AwardDeliveryRepository for MySqlAwardDelivery {
    async fn deliver(&self, d: &Delivery) -> Result<DeliveryOutcome, PortError> {
        let (db, route) = self.db.shard_of(&d.user_id);
        // READ COMMITTED, as every connection of `Databases`.
        let tx = db.begin().await.map_err(port_err)?;
        match Self::apply(&tx, d, &route.suffix(), self.clock.now().naive_utc()).await {
            Ok(credit) => {
                tx.commit().await.map_err(port_err)?;
                Ok(DeliveryOutcome { applied: true, credit })
            }
            Err(e) if is_duplicate(&e) => Ok(DeliveryOutcome {
                applied: false,
                credit: None,
            }),
            Err(e) => Err(port_err(e)),
        }
    }

    async fn award(&self, award_id: AwardId) -> Result<Option<AwardCatalogEntry>, PortError> {
        let found = award::Entity::find()
            .filter(award::Column::AwardId.eq(award_id.get()))
            .one(&self.db.config)
            .await
            .map_err(port_err)?;
        Ok(found.map(|a| AwardCatalogEntry {
            award_id: AwardId::new(a.award_id),
            award_key: a.award_key,
            award_config: a.award_config,
            award_desc: a.award_desc,
        }))
    }

    async fn applied(&self, user_id: &str, message_id: &str) -> Result<bool, PortError> {
        let (db, _) = self.db.shard_of(user_id);
        let q = Query::select()
            .expr(Expr::val(1))
            .from(c("inbox"))
            .and_where(Expr::col(c("message_id")).eq(message_id))
            .and_where(Expr::col(c("topic")).eq(TOPIC_SEND_AWARD))
            .to_owned();
        let found = db
            .query_one(db.get_database_backend().build(&q))
            .await
            .map_err(port_err)?;
        Ok(found.is_some())
    }

    async fn mark_dead(&self, user_id: &str, message_id: &str, reason: &str) -> Result<DeadMark, PortError> {
        let (db, _) = self.db.shard_of(user_id);
        crate::outbox::store::mark_consumed_dead(db, message_id, reason)
            .await
            .map_err(port_err)
    }
}
