//! `rafflePage`: everything the raffle page shows for one user and activity, in one query — what
//! the original page loads with six calls (`query_user_activity_account`,
//! `query_user_credit_account`, `is_calendar_sign_rebate`, `query_sku_product_list_by_activity_id`,
//! `query_raffle_award_list`, `query_raffle_strategy_rule_weight`).
//!
//! The activity's configuration and its armed strategy come from this process's copies (kept
//! in step with every instance's arming); the user's views and the live SKU stock are read in
//! one Redis round trip. A view that is missing is built once from MySQL, as the single-field
//! queries do. The page is computed whole and answered by projection ([`Projected`]): its 132
//! fields of plain data cost less to project in one pass than to resolve one by one.

use std::sync::Arc;

use async_graphql::{Context, ID, Object, Result, SimpleObject};
use chrono::Utc;
use domain::ids::ActivityId;
use domain::strategy::StrategyView;
use persistence::mysql::read_side;

use super::access::acting_user;
use super::account::{ActivityAccount, CreditAccount};
use super::catalog::{RaffleAward, RuleWeight, SkuProduct, raffle_awards_of, rule_weights_of, sku_product_of};
use super::error::{invalid_argument, to_gql};
use super::projected::Projected;
use super::scalars::{Decimal, id_of, long_id};
use crate::state::AppState;

/// The raffle page of one user and activity.
#[derive(SimpleObject, Debug, Clone)]
pub struct RafflePage {
    /// The activity.
    pub activity_id: ID,
    /// The user.
    pub user_id: String,
    /// The user's draw quota today (as `activityAccount`).
    pub activity_account: ActivityAccount,
    /// The user's credits (as `creditAccount`).
    pub credit_account: CreditAccount,
    /// Whether the user signed in today (as `isCalendarSignRebate`).
    pub is_calendar_sign_rebate: bool,
    /// The quota packages with live stock (as `skuProducts`).
    pub sku_products: Vec<SkuProduct>,
    /// The wheel's awards with the user's lock state (as `raffleAwards`).
    pub raffle_awards: Vec<RaffleAward>,
    /// The weight groups with the user's progress (as `ruleWeights`).
    pub rule_weights: Vec<RuleWeight>,
}

crate::projectable!(RafflePage, "RafflePage" {
    activity_id: "activityId" => leaf,
    user_id: "userId" => leaf,
    activity_account: "activityAccount" => object,
    credit_account: "creditAccount" => object,
    is_calendar_sign_rebate: "isCalendarSignRebate" => leaf,
    sku_products: "skuProducts" => list,
    raffle_awards: "raffleAwards" => list,
    rule_weights: "ruleWeights" => list,
});

crate::projectable!(ActivityAccount, "ActivityAccount" {
    total_count: "totalCount" => leaf,
    total_count_surplus: "totalCountSurplus" => leaf,
    day_count: "dayCount" => leaf,
    day_count_surplus: "dayCountSurplus" => leaf,
    month_count: "monthCount" => leaf,
    month_count_surplus: "monthCountSurplus" => leaf,
});

crate::projectable!(CreditAccount, "CreditAccount" {
    total_amount: "totalAmount" => leaf,
    available_amount: "availableAmount" => leaf,
});

crate::projectable!(SkuProduct, "SkuProduct" {
    id: "id" => leaf,
    sku: "sku" => leaf,
    activity_id: "activityId" => leaf,
    activity_count_id: "activityCountId" => leaf,
    stock_count: "stockCount" => leaf,
    stock_count_surplus: "stockCountSurplus" => leaf,
    product_amount: "productAmount" => leaf,
    activity_count: "activityCount" => object,
});

crate::projectable!(crate::graphql::catalog::PackageCounts, "PackageCounts" {
    total_count: "totalCount" => leaf,
    day_count: "dayCount" => leaf,
    month_count: "monthCount" => leaf,
});

crate::projectable!(RaffleAward, "RaffleAward" {
    award_id: "awardId" => leaf,
    award_title: "awardTitle" => leaf,
    award_subtitle: "awardSubtitle" => leaf,
    sort: "sort" => leaf,
    award_rule_lock_count: "awardRuleLockCount" => leaf,
    is_award_unlock: "isAwardUnlock" => leaf,
    wait_unlock_count: "waitUnlockCount" => leaf,
});

crate::projectable!(RuleWeight, "RuleWeight" {
    rule_weight_count: "ruleWeightCount" => leaf,
    user_activity_account_total_user_count: "userActivityAccountTotalUserCount" => leaf,
    strategy_awards: "strategyAwards" => list,
});

crate::projectable!(crate::graphql::catalog::WeightAward, "WeightAward" {
    award_id: "awardId" => leaf,
    award_title: "awardTitle" => leaf,
});

fn internal(e: impl std::fmt::Display) -> async_graphql::Error {
    super::error::internal_error("raffle page read failed", e)
}

/// The raffle page query.
#[derive(Default)]
pub struct PageQuery;

#[Object]
impl PageQuery {
    /// Everything the raffle page shows for a user and an activity, in one request.
    /// Errors: `0002` unknown activity.
    async fn raffle_page(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user; defaults to the token's user (service and admin tokens must name one).")]
        user_id: Option<String>,
        #[graphql(desc = "The activity.")] activity_id: ID,
    ) -> Result<Projected<RafflePage>> {
        let user = acting_user(ctx, user_id.as_deref())?;
        let app = ctx.data::<Arc<AppState>>()?;
        let activity_id = ActivityId::parse(long_id("activityId", &activity_id)?).map_err(invalid_argument)?;
        let cfg = app.activity.config(activity_id).await.map_err(to_gql)?;
        let strategy_id = cfg.activity.strategy_id;
        let strategy = match app.strategy.armed(strategy_id).await {
            Ok(armed) => StrategyView::of(&armed),
            // Not armed anywhere yet: the strategy's read model (built from MySQL if missing).
            Err(_) => app.strategy.view(strategy_id).await.map_err(to_gql)?,
        };
        let now = Utc::now();
        let (day, month) = (app.calendar.day(now), app.calendar.month(now));
        let sign_day = app.credit.business_day(now);
        let skus: Vec<_> = cfg.skus.iter().map(|s| s.sku).collect();
        let reads = app
            .views
            .page(user.as_str(), activity_id, &skus, &sign_day)
            .await
            .map_err(internal)?;
        let account = match reads.account {
            Some(a) => a,
            None => read_side::load_account(&app.db, &app.views, user.as_str(), activity_id, &day, &month)
                .await
                .map_err(internal)?,
        };
        let credit = match reads.credit {
            Some(c) => c,
            None => read_side::load_credit(&app.db, &app.views, user.as_str())
                .await
                .map_err(internal)?,
        };
        let signed = match reads.signed {
            Some(s) => s,
            None => super::credit::signed_in(app, user.as_str(), &sign_day).await?,
        };
        let sku_products = cfg
            .skus
            .iter()
            .zip(reads.sku_stocks.iter().chain(std::iter::repeat(&None)))
            .map(|(s, live)| {
                let surplus = live.map_or(s.stock_count_surplus, |l| i32::try_from(l.max(0)).unwrap_or(i32::MAX));
                sku_product_of(s, surplus)
            })
            .collect();
        Ok(Projected(RafflePage {
            activity_id: id_of(activity_id.get()),
            user_id: user.as_str().to_owned(),
            activity_account: ActivityAccount::of(&account, &day, &month),
            credit_account: CreditAccount {
                total_amount: Decimal(credit.total_amount),
                available_amount: Decimal(credit.available_amount),
            },
            is_calendar_sign_rebate: signed,
            raffle_awards: raffle_awards_of(&strategy, &account, &day),
            rule_weights: rule_weights_of(&strategy, &account),
            sku_products,
        }))
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};
    use rust_decimal::Decimal as D;

    use super::*;
    use crate::graphql::catalog::{PackageCounts, WeightAward};

    fn page() -> RafflePage {
        RafflePage {
            activity_id: id_of(100_301),
            user_id: "xiaofuge".into(),
            activity_account: ActivityAccount {
                total_count: 3,
                total_count_surplus: 2,
                day_count: 3,
                day_count_surplus: 1,
                month_count: 3,
                month_count_surplus: 2,
            },
            credit_account: CreditAccount {
                total_amount: Decimal(D::new(1000, 2)),
                available_amount: Decimal(D::new(750, 2)),
            },
            is_calendar_sign_rebate: true,
            sku_products: vec![SkuProduct {
                id: ID("U2t1UHJvZHVjdDoxMDAzMDE6OTAxNA==".into()),
                sku: id_of(9014),
                activity_id: id_of(100_301),
                activity_count_id: id_of(11104),
                stock_count: 100_000,
                stock_count_surplus: 99_864,
                product_amount: Decimal(D::new(500, 2)),
                activity_count: PackageCounts {
                    total_count: 1,
                    day_count: 1,
                    month_count: 1,
                },
            }],
            raffle_awards: vec![
                RaffleAward {
                    award_id: 101,
                    award_title: "随机积分".into(),
                    award_subtitle: None,
                    sort: 1,
                    award_rule_lock_count: None,
                    is_award_unlock: true,
                    wait_unlock_count: 0,
                },
                RaffleAward {
                    award_id: 105,
                    award_title: "小米su7周体验".into(),
                    award_subtitle: Some("sub".into()),
                    sort: 5,
                    award_rule_lock_count: Some(2),
                    is_award_unlock: false,
                    wait_unlock_count: 2,
                },
            ],
            rule_weights: vec![RuleWeight {
                rule_weight_count: 10,
                user_activity_account_total_user_count: 1,
                strategy_awards: vec![WeightAward {
                    award_id: 101,
                    award_title: "随机积分".into(),
                }],
            }],
        }
    }

    struct Query;

    #[Object]
    impl Query {
        async fn derived(&self) -> RafflePage {
            page()
        }
        async fn projected(&self) -> Projected<RafflePage> {
            Projected(page())
        }
    }

    /// Every field of the page, nested ones included, as the derived resolver answers them.
    #[tokio::test]
    async fn the_projected_page_answers_every_field_as_the_derived_one() {
        let schema = Schema::new(Query, EmptyMutation, EmptySubscription);
        let all = "__typename userId activityId \
            activityAccount { __typename totalCount totalCountSurplus dayCount dayCountSurplus monthCount monthCountSurplus } \
            creditAccount { __typename totalAmount availableAmount } isCalendarSignRebate \
            skuProducts { __typename id sku activityId activityCountId stockCount stockCountSurplus productAmount activityCount { __typename totalCount dayCount monthCount } } \
            raffleAwards { __typename awardId awardTitle awardSubtitle sort awardRuleLockCount isAwardUnlock waitUnlockCount } \
            ruleWeights { __typename ruleWeightCount userActivityAccountTotalUserCount strategyAwards { __typename awardId awardTitle } }";
        let derived = schema.execute(format!("{{ derived {{ {all} }} }}")).await;
        let projected = schema.execute(format!("{{ projected {{ {all} }} }}")).await;
        assert!(
            derived.errors.is_empty() && projected.errors.is_empty(),
            "{derived:?} {projected:?}"
        );
        let d = serde_json::to_value(&derived.data).unwrap();
        let p = serde_json::to_value(&projected.data).unwrap();
        assert_eq!(d["derived"], p["projected"]);
        assert_eq!(p["projected"]["creditAccount"]["availableAmount"], "7.50");
    }
}
