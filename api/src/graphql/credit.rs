//! The quota economy: `calendarSignRebate`, `isCalendarSignRebate`, `creditPayExchangeSku`,
//! `creditOrders`. Commands run in one transaction on the user's shard; queries are served
//! from Redis views (the sign-in view is built once from the shards for a user it has never
//! seen).

use std::sync::Arc;

use async_graphql::connection::{Connection, Edge, query};
use async_graphql::{Context, Enum, ID, Object, Result, SimpleObject};
use domain::ErrorCode;
use domain::activity::exchange::ExchangeSku;
use domain::events::{RebateOrderSnapshot, RebateSnapshot};
use domain::ids::Sku;
use persistence::mysql::read_side;

use super::access::acting_user;
use super::error::{invalid_argument, to_gql, with_code};
use super::scalars::{DateTime, Decimal, Page, long_id};
use crate::state::AppState;

/// One rebate order of a sign-in.
#[derive(SimpleObject, Debug, Clone)]
pub struct RebateOrder {
    /// Rebate order id.
    pub order_id: ID,
    /// `sku` (a quota package) or `integral` (credits).
    pub rebate_type: String,
    /// The SKU, or the credit amount.
    pub rebate_config: String,
    /// What the rebate is.
    pub rebate_desc: String,
    /// `{userId}_{rebateType}_{yyyyMMdd}`: the idempotency key of its effect (the SKU
    /// recharge's or the credit trade's `outBusinessNo`).
    pub biz_id: String,
    /// The `send_rebate` event that applies it (follow it with `task(messageId)`); null for
    /// orders of an earlier sign-in.
    pub message_id: Option<ID>,
}

/// The rebate orders of today's sign-in.
#[derive(SimpleObject, Debug, Clone)]
pub struct SignInResult {
    /// The business day signed, `yyyyMMdd` (`business.utc_offset_minutes`).
    pub day: String,
    /// That day's rebate orders (empty when no sign-in rebate is configured).
    pub orders: Vec<RebateOrder>,
    /// False when the user had signed in that day already: nothing was written.
    pub created: bool,
}

/// A credit-paid SKU exchange (new, or the first one for a replayed `outBusinessNo`).
#[derive(SimpleObject, Debug, Clone)]
pub struct ExchangeResult {
    /// The activity order id.
    pub order_id: ID,
    /// Credits paid.
    pub pay_amount: Decimal,
    /// The caller's idempotency key.
    pub out_business_no: String,
    /// False when the request replayed an earlier one: nothing more was charged or credited.
    pub created: bool,
}

/// Direction of a credit trade.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum TradeType {
    /// Credits in.
    Forward,
    /// Credits out.
    Reverse,
}

/// One credit order.
#[derive(SimpleObject, Debug, Clone)]
pub struct CreditOrder {
    /// Credit order id.
    pub order_id: ID,
    /// `行为返利` (rebate) or `兑换抽奖` (SKU exchange).
    pub trade_name: String,
    /// Direction.
    pub trade_type: TradeType,
    /// Signed amount (negative for a debit).
    pub amount: Decimal,
    /// The trade's idempotency key.
    pub out_business_no: String,
    /// When.
    pub order_time: DateTime,
}

fn internal(e: impl std::fmt::Display) -> async_graphql::Error {
    super::error::internal_error("credit read model failed", e)
}

/// Largest `creditOrders` page.
const MAX_PAGE: i32 = 100;

/// Parses a `{timeMs}:{orderId}` cursor.
pub(crate) fn parse_cursor(a: &str) -> Result<(i64, String)> {
    a.split_once(':')
        .and_then(|(t, o)| Some((t.parse::<i64>().ok()?, o.to_owned())))
        .ok_or_else(|| with_code(ErrorCode::IllegalParameter, format!("invalid cursor {a:?}")))
}

/// Whether `user` signed in on `day`: from the view, else from the shards once.
pub(crate) async fn signed_in(app: &AppState, user: &str, day: &str) -> Result<bool> {
    match app.views.signed(user, day).await.map_err(internal)? {
        Some(signed) => Ok(signed),
        None => read_side::load_signed(&app.db, &app.views, user, day)
            .await
            .map_err(internal),
    }
}

/// Credit queries.
#[derive(Default)]
pub struct CreditQuery;

#[Object]
impl CreditQuery {
    /// Whether the user signed in today (business day). Served from Redis.
    async fn is_calendar_sign_rebate(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user; defaults to the token's user (service and admin tokens must name one).")]
        user_id: Option<String>,
    ) -> Result<bool> {
        let user = acting_user(ctx, user_id.as_deref())?;
        let app = ctx.data::<Arc<AppState>>()?;
        signed_in(app, user.as_str(), &app.credit.today()).await
    }

    /// The user's credit orders, newest first (`first` ≤ 100, default 20; `after` = `endCursor`).
    async fn credit_orders(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user; defaults to the token's user (service and admin tokens must name one).")]
        user_id: Option<String>,
        #[graphql(desc = "Orders per page (0–100, default 20).")] first: Option<i32>,
        #[graphql(desc = "A previous page's `endCursor`.")] after: Option<String>,
    ) -> Result<Page<CreditOrder>> {
        let user = acting_user(ctx, user_id.as_deref())?;
        let app = ctx.data::<Arc<AppState>>()?;
        let first = super::error::page_size(first, MAX_PAGE)?;
        let after = after.as_deref().map(parse_cursor).transpose()?;
        query(
            None::<String>,
            None::<String>,
            Some(first),
            None,
            |_, _, first, _| async move {
                let (orders, has_next) = app
                    .views
                    .credit_orders(
                        user.as_str(),
                        first.unwrap_or(20),
                        after.as_ref().map(|(t, o)| (*t, o.as_str())),
                    )
                    .await
                    .map_err(internal)?;
                let mut conn = Connection::new(after.is_some(), has_next);
                conn.edges.extend(orders.into_iter().map(|o| {
                    Edge::new(
                        format!("{}:{}", o.order_time_ms, o.order_id),
                        CreditOrder {
                            order_time: DateTime::from_millis(o.order_time_ms),
                            trade_type: if o.trade_type == "reverse" {
                                TradeType::Reverse
                            } else {
                                TradeType::Forward
                            },
                            order_id: ID(o.order_id),
                            trade_name: o.trade_name,
                            amount: Decimal(o.amount),
                            out_business_no: o.out_business_no,
                        },
                    )
                }));
                Ok::<_, async_graphql::Error>(conn)
            },
        )
        .await
        .map(Page)
    }
}

/// Credit commands.
#[derive(Default)]
pub struct CreditMutation;

#[Object]
impl CreditMutation {
    /// Signs the user in for today (business day): for every open sign-in rebate, a rebate
    /// order and its `send_rebate` event in one transaction; the events then recharge the
    /// rebate SKU and trade in the rebate credits, each exactly once. Signing in again the same
    /// day returns that day's orders with `created: false` and writes nothing.
    /// A user token signs in itself; service and admin tokens name the user.
    async fn calendar_sign_rebate(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user; defaults to the token's user.")] user_id: Option<String>,
    ) -> Result<SignInResult> {
        let user = acting_user(ctx, user_id.as_deref())?;
        let app = ctx.data::<Arc<AppState>>()?;
        let signed = app.credit.sign_in(user.as_str()).await.map_err(to_gql)?;
        if signed.created {
            // Read-your-writes for `isCalendarSignRebate`; the relay applies the same snapshot.
            let snapshot = RebateSnapshot {
                behavior_type: domain::credit::rebate::BEHAVIOR_SIGN.to_owned(),
                orders: signed.orders.iter().map(RebateOrderSnapshot::from).collect(),
                out_business_no: signed.day.clone(),
                user_id: user.as_str().to_owned(),
            };
            if let Err(e) = app.views.apply_rebate(&snapshot).await {
                tracing::warn!(error = %e, "could not update the sign-in view (the relay will)");
            }
        }
        Ok(SignInResult {
            day: signed.day,
            created: signed.created,
            orders: signed
                .orders
                .into_iter()
                .map(|o| RebateOrder {
                    order_id: ID(o.order_id.into()),
                    rebate_type: o.rebate_type,
                    rebate_config: o.rebate_config,
                    rebate_desc: o.rebate_desc,
                    biz_id: o.biz_id,
                    message_id: Some(o.message_id).filter(|m| !m.is_empty()).map(ID),
                })
                .collect(),
        })
    }

    /// Pays the SKU's `productAmount` in credits for one package of draw quota: the debit, the
    /// credit order, the paid activity order and the quota, in one transaction. Idempotent on
    /// `(userId, outBusinessNo)`: a retry returns the first order with `created: false` and
    /// charges nothing.
    /// Errors: `0002` bad argument / unknown SKU, `ERR_BIZ_003` not open, `ERR_BIZ_004`
    /// outside dates, `ERR_BIZ_005` sold out, `ERR_CREDIT_001` not enough credits (nothing
    /// changed), `0003` `outBusinessNo` already used for another order.
    /// A user token pays for itself; service and admin tokens name the user.
    async fn credit_pay_exchange_sku(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user; defaults to the token's user.")] user_id: Option<String>,
        #[graphql(desc = "The SKU (quota package) to buy.")] sku: ID,
        #[graphql(desc = "The caller's idempotency key (1–192 characters, byte for byte, per user).")]
        out_business_no: String,
    ) -> Result<ExchangeResult> {
        let user = acting_user(ctx, user_id.as_deref())?;
        let app = ctx.data::<Arc<AppState>>()?;
        let sku = Sku::parse(long_id("sku", &sku)?).map_err(invalid_argument)?;
        let done = app
            .activity
            .exchange(ExchangeSku {
                user_id: user.as_str().to_owned(),
                sku,
                out_business_no,
            })
            .await
            .map_err(to_gql)?;
        Ok(ExchangeResult {
            order_id: ID(done.order_id.into()),
            pay_amount: Decimal(done.pay_amount),
            out_business_no: done.out_business_no,
            created: done.created,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn business_numbers_fit_their_columns() {
        assert_eq!(
            domain::credit::trade::MAX_OUT_BUSINESS_NO,
            migration::BUSINESS_NO_WIDTH,
            "the domain's outBusinessNo limit is the width of the columns that store it"
        );
    }
}
