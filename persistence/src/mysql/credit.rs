//! Credit accounts, credit orders and behaviour rebates on the shards (rebate configuration on
//! the config database).
//!
//! Like the quota saves, these store what the domain decided: the credit account is written
//! at the version the decision was made on (or inserted when there was none), so a concurrent
//! change makes the save answer `Moved` and the command decides again (the domain never
//! decides a negative balance). Duplicate keys (`out_business_no`,
//! `biz_id`, the account's `uq_user_id`) are outcomes, not errors.

use domain::activity::ports::SaveFailure;
use domain::award::CreditBalance;
use domain::credit::ports::{
    CreditChange, CreditOrder, CreditRepository, CreditSaved, RebateConfig, RebateOrder, RebateRepository, TradeType,
};
use domain::ids::OrderId;
use domain::outbox::OutboxMessage;
use domain::ports::PortError;
use sea_orm::sea_query::{Alias, Expr, Order, Query};
use sea_orm::{ConnectionTrait, DbErr};

use crate::mysql::db::Tx;

use crate::mysql::db::{Databases, is_duplicate, port_err};

fn c(name: &'static str) -> Alias {
    Alias::new(name)
}

/// The columns of a credit order that reads return.
pub(crate) const CREDIT_ORDER_COLUMNS: [&str; 7] = [
    "user_id",
    "order_id",
    "trade_name",
    "trade_type",
    "trade_amount",
    "out_business_no",
    "create_time",
];

/// Why a credit save stopped early (the transaction is rolled back).
pub(crate) enum CreditStop {
    /// A guard failed: report this outcome.
    Outcome(CreditSaved),
    /// The driver failed.
    Db(DbErr),
}

impl From<DbErr> for CreditStop {
    fn from(e: DbErr) -> Self {
        Self::Db(e)
    }
}

/// Writes a decided credit change inside `tx`: the credit order (a duplicate
/// `out_business_no` → `OutBusinessNoUsed`), then the account at the expected version (or
/// inserted; a duplicate or a moved version → `Moved`).
pub(crate) async fn save_credit_in(tx: &Tx, change: &CreditChange<'_>, suffix: &str) -> Result<(), CreditStop> {
    let b = tx.get_database_backend();
    let o = change.order;
    let order = Query::insert()
        .into_table(Alias::new(format!("user_credit_order{suffix}")))
        .columns([
            c("user_id"),
            c("order_id"),
            c("trade_name"),
            c("trade_type"),
            c("trade_amount"),
            c("out_business_no"),
            c("create_time"),
            c("update_time"),
        ])
        .values_panic([
            o.user_id.clone().into(),
            o.order_id.as_str().into(),
            o.trade_name.clone().into(),
            o.trade_type.code().into(),
            o.amount.into(),
            o.out_business_no.clone().into(),
            o.order_time.into(),
            o.order_time.into(),
        ])
        .to_owned();
    if let Err(e) = tx.execute(b.build(&order)).await {
        return Err(if is_duplicate(&e) {
            CreditStop::Outcome(CreditSaved::OutBusinessNoUsed)
        } else {
            CreditStop::Db(e)
        });
    }
    let a = change.after;
    match change.expected_version {
        None => {
            let insert = Query::insert()
                .into_table(c("user_credit_account"))
                .columns([
                    c("user_id"),
                    c("total_amount"),
                    c("available_amount"),
                    c("account_status"),
                    c("version"),
                ])
                .values_panic([
                    o.user_id.clone().into(),
                    a.total_amount.into(),
                    a.available_amount.into(),
                    "open".into(),
                    a.version.into(),
                ])
                .to_owned();
            if let Err(e) = tx.execute(b.build(&insert)).await {
                return Err(if is_duplicate(&e) {
                    CreditStop::Outcome(CreditSaved::Moved)
                } else {
                    CreditStop::Db(e)
                });
            }
        }
        Some(version) => {
            let update = Query::update()
                .table(c("user_credit_account"))
                .value(c("total_amount"), a.total_amount)
                .value(c("available_amount"), a.available_amount)
                .value(c("version"), a.version)
                .and_where(Expr::col(c("user_id")).eq(o.user_id.as_str()))
                .and_where(Expr::col(c("version")).eq(version))
                .to_owned();
            if tx.execute(b.build(&update)).await?.rows_affected() != 1 {
                return Err(CreditStop::Outcome(CreditSaved::Moved));
            }
        }
    }
    Ok(())
}

use crate::mysql::db::save_failure as failure;

/// [`CreditRepository`] and [`RebateRepository`] over the shards and the config database.
#[derive(Debug, Clone)]
pub struct MySqlCreditRepository {
    db: Databases,
}

impl MySqlCreditRepository {
    /// A repository over `db`.
    pub fn new(db: Databases) -> Self {
        Self { db }
    }
}

/// Reads a credit account row (`None` when the user has none).
pub(crate) async fn credit_balance(db: &impl ConnectionTrait, user_id: &str) -> Result<Option<CreditBalance>, DbErr> {
    let q = Query::select()
        .columns([c("total_amount"), c("available_amount"), c("version")])
        .from(c("user_credit_account"))
        .and_where(Expr::col(c("user_id")).eq(user_id))
        .to_owned();
    let Some(r) = db.query_one(db.get_database_backend().build(&q)).await? else {
        return Ok(None);
    };
    Ok(Some(CreditBalance {
        total_amount: r.try_get("", "total_amount")?,
        available_amount: r.try_get("", "available_amount")?,
        version: r.try_get("", "version")?,
    }))
}

#[async_trait::async_trait]
impl CreditRepository for MySqlCreditRepository {
    async fn load_credit(&self, user_id: &str) -> Result<Option<CreditBalance>, PortError> {
        let (db, _) = self.db.shard_of(user_id);
        credit_balance(db, user_id).await.map_err(port_err)
    }

    async fn find_credit_order(&self, user_id: &str, out_business_no: &str) -> Result<Option<CreditOrder>, PortError> {
        let (db, route) = self.db.shard_of(user_id);
        let q = Query::select()
            .columns(CREDIT_ORDER_COLUMNS.map(c))
            .from(Alias::new(format!("user_credit_order{}", route.suffix())))
            .and_where(Expr::col(c("out_business_no")).eq(out_business_no))
            .to_owned();
        let Some(r) = db
            .query_one(db.get_database_backend().build(&q))
            .await
            .map_err(port_err)?
        else {
            return Ok(None);
        };
        let read = || -> Result<CreditOrder, DbErr> {
            Ok(CreditOrder {
                user_id: r.try_get("", "user_id")?,
                order_id: OrderId::new(r.try_get::<String>("", "order_id")?),
                trade_name: r.try_get("", "trade_name")?,
                trade_type: TradeType::parse(&r.try_get::<String>("", "trade_type")?),
                amount: r.try_get("", "trade_amount")?,
                out_business_no: r.try_get("", "out_business_no")?,
                order_time: r.try_get("", "create_time")?,
            })
        };
        read().map(Some).map_err(port_err)
    }

    async fn save_trade(
        &self,
        change: &CreditChange<'_>,
        outbox: &[OutboxMessage],
    ) -> Result<CreditSaved, SaveFailure> {
        let (db, route) = self.db.shard_of(&change.order.user_id);
        let tx = db.begin().await.map_err(failure)?;
        // An early return drops `tx`, which rolls the transaction back.
        match save_credit_in(&tx, change, &route.suffix()).await {
            Ok(()) => {}
            Err(CreditStop::Outcome(o)) => return Ok(o),
            Err(CreditStop::Db(e)) => return Err(failure(e)),
        }
        crate::outbox::store::insert_outbox(&tx, outbox)
            .await
            .map_err(failure)?;
        tx.commit().await.map_err(failure)?;
        Ok(CreditSaved::Saved)
    }
}

#[async_trait::async_trait]
impl RebateRepository for MySqlCreditRepository {
    async fn open_rebates(&self, behavior_type: &str) -> Result<Vec<RebateConfig>, PortError> {
        let db = &self.db.config;
        let q = Query::select()
            .columns([
                c("behavior_type"),
                c("rebate_desc"),
                c("rebate_type"),
                c("rebate_config"),
            ])
            .from(c("daily_behavior_rebate"))
            .and_where(Expr::col(c("behavior_type")).eq(behavior_type))
            .and_where(Expr::col(c("state")).eq("open"))
            .order_by(c("id"), Order::Asc)
            .to_owned();
        let rows = db
            .query_all(db.get_database_backend().build(&q))
            .await
            .map_err(port_err)?;
        rows.into_iter()
            .map(|r| {
                Ok(RebateConfig {
                    behavior_type: r.try_get("", "behavior_type")?,
                    rebate_desc: r.try_get("", "rebate_desc")?,
                    rebate_type: r.try_get("", "rebate_type")?,
                    rebate_config: r.try_get("", "rebate_config")?,
                })
            })
            .collect::<Result<_, DbErr>>()
            .map_err(port_err)
    }

    async fn find_rebates(&self, user_id: &str, out_business_no: &str) -> Result<Vec<RebateOrder>, PortError> {
        let (db, route) = self.db.shard_of(user_id);
        let q = Query::select()
            .columns([
                c("user_id"),
                c("order_id"),
                c("behavior_type"),
                c("rebate_desc"),
                c("rebate_type"),
                c("rebate_config"),
                c("out_business_no"),
                c("biz_id"),
            ])
            .from(Alias::new(format!("user_behavior_rebate_order{}", route.suffix())))
            .and_where(Expr::col(c("user_id")).eq(user_id))
            .and_where(Expr::col(c("out_business_no")).eq(out_business_no))
            .and_where(Expr::col(c("behavior_type")).eq(domain::credit::rebate::BEHAVIOR_SIGN))
            .order_by(c("id"), Order::Asc)
            .to_owned();
        let rows = db
            .query_all(db.get_database_backend().build(&q))
            .await
            .map_err(port_err)?;
        rows.into_iter()
            .map(|r| {
                Ok(RebateOrder {
                    user_id: r.try_get("", "user_id")?,
                    order_id: OrderId::new(r.try_get::<String>("", "order_id")?),
                    behavior_type: r.try_get("", "behavior_type")?,
                    rebate_desc: r.try_get("", "rebate_desc")?,
                    rebate_type: r.try_get("", "rebate_type")?,
                    rebate_config: r.try_get("", "rebate_config")?,
                    out_business_no: r.try_get("", "out_business_no")?,
                    biz_id: r.try_get("", "biz_id")?,
                    message_id: String::new(),
                })
            })
            .collect::<Result<_, DbErr>>()
            .map_err(port_err)
    }

    async fn save_rebates(&self, orders: &[RebateOrder], outbox: &[OutboxMessage]) -> Result<bool, SaveFailure> {
        let Some(first) = orders.first() else {
            return Ok(false);
        };
        let (db, route) = self.db.shard_of(&first.user_id);
        let tx = db.begin().await.map_err(failure)?;
        let mut insert = Query::insert();
        insert
            .into_table(Alias::new(format!("user_behavior_rebate_order{}", route.suffix())))
            .columns([
                c("user_id"),
                c("order_id"),
                c("behavior_type"),
                c("rebate_desc"),
                c("rebate_type"),
                c("rebate_config"),
                c("out_business_no"),
                c("biz_id"),
            ]);
        for o in orders {
            insert.values_panic([
                o.user_id.clone().into(),
                o.order_id.as_str().into(),
                o.behavior_type.clone().into(),
                o.rebate_desc.clone().into(),
                o.rebate_type.clone().into(),
                o.rebate_config.clone().into(),
                o.out_business_no.clone().into(),
                o.biz_id.clone().into(),
            ]);
        }
        match tx.execute(tx.get_database_backend().build(&insert)).await {
            Ok(_) => {}
            // Dropping `tx` rolls back.
            Err(e) if is_duplicate(&e) => return Ok(false),
            Err(e) => return Err(failure(e)),
        }
        crate::outbox::store::insert_outbox(&tx, outbox)
            .await
            .map_err(failure)?;
        tx.commit().await.map_err(failure)?;
        Ok(true)
    }
}
