//! Per-user views over the activity's configuration (spec §7.7): `raffleAwards` (award list
//! with lock state), `ruleWeights` (weight groups with the user's progress) and
//! `skuProducts`. Served from the Redis views (strategy, activity, account).

use std::sync::Arc;

use async_graphql::{Context, ID, Object, Result, SimpleObject};
use chrono::Utc;
use domain::activity::ActivityConfig;
use domain::ids::{ActivityId, UserId};
use domain::outbox::AccountSnapshot;
use domain::strategy::StrategyView;
use persistence::mysql::read_side;

use super::access::acting_user;
use super::error::{invalid_argument, to_gql};
use super::node::global_id;
use super::scalars::{Decimal, id_of, long_id};
use crate::state::AppState;

/// An award of the activity's wheel, with the user's lock state.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct RaffleAward {
    /// Award.
    pub award_id: i32,
    /// Title.
    pub award_title: String,
    /// Subtitle.
    pub award_subtitle: Option<String>,
    /// Display index.
    pub sort: i32,
    /// Draws needed today to unlock it (null: never locked).
    pub award_rule_lock_count: Option<i32>,
    /// Whether the user can win it today.
    pub is_award_unlock: bool,
    /// Draws still needed today (0 when unlocked).
    pub wait_unlock_count: i32,
}

/// An award of a weight group.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct WeightAward {
    /// Award.
    pub award_id: i32,
    /// Title.
    pub award_title: String,
}

/// A `rule_weight` group with the user's progress.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct RuleWeight {
    /// Total used draws needed.
    pub rule_weight_count: i64,
    /// The user's total used draws in the activity.
    pub user_activity_account_total_user_count: i64,
    /// The group's awards.
    pub strategy_awards: Vec<WeightAward>,
}

/// A quota package's draw counts.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct PackageCounts {
    /// Total draws.
    pub total_count: i32,
    /// Draws per day.
    pub day_count: i32,
    /// Draws per month.
    pub month_count: i32,
}

/// A purchasable quota package.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct SkuProduct {
    /// Global id: refetch this package (its live stock) with `node(id:)`.
    pub id: ID,
    /// SKU.
    pub sku: ID,
    /// Activity.
    pub activity_id: ID,
    /// Package id (`activityCountId` of the original).
    pub activity_count_id: ID,
    /// Total stock.
    pub stock_count: i32,
    /// Stock left (live counter when armed).
    pub stock_count_surplus: i32,
    /// Price in credits.
    pub product_amount: Decimal,
    /// What one purchase grants.
    pub activity_count: PackageCounts,
}

fn internal(e: impl std::fmt::Display) -> async_graphql::Error {
    super::error::internal_error("read model failed", e)
}

/// An activity's configuration from its view (written from MySQL when missing).
pub(crate) async fn activity(app: &AppState, activity_id: ActivityId) -> Result<ActivityConfig> {
    if let Some(cfg) = app.views.activity(activity_id).await.map_err(internal)? {
        return Ok(cfg);
    }
    let cfg = app.activity.config(activity_id).await.map_err(to_gql)?;
    app.views.put_activity(&cfg).await.map_err(internal)?;
    Ok(app
        .views
        .activity(activity_id)
        .await
        .map_err(internal)?
        .unwrap_or_else(|| (*cfg).clone()))
}

async fn user_context(
    app: &AppState,
    user: UserId,
    activity_id: &ID,
) -> Result<(StrategyView, AccountSnapshot, String)> {
    let activity_id = ActivityId::parse(long_id("activityId", activity_id)?).map_err(invalid_argument)?;
    let cfg = activity(app, activity_id).await?;
    let strategy = app.strategy.view(cfg.activity.strategy_id).await.map_err(to_gql)?;
    let now = Utc::now();
    let (day, month) = (app.calendar.day(now), app.calendar.month(now));
    let account = match app.views.account(user.as_str(), activity_id).await.map_err(internal)? {
        Some(a) => a,
        None => read_side::load_account(&app.db, &app.views, user.as_str(), activity_id, &day, &month)
            .await
            .map_err(internal)?,
    };
    Ok((strategy, account, day))
}

/// The award list of a strategy for a user whose account is `account` on `day` (as `raffleAwards`
/// and `rafflePage` answer it; public for the page benchmark's baseline).
pub fn raffle_awards_of(strategy: &StrategyView, account: &AccountSnapshot, day: &str) -> Vec<RaffleAward> {
    let today = account
        .day
        .as_ref()
        .filter(|d| d.period == day)
        .map_or(0, |d| i64::from(d.count - d.surplus));
    strategy
        .awards
        .iter()
        .map(|a| {
            let lock = a.rule_lock_count.map(i64::from);
            let wait = lock.map_or(0, |l| (l - today).max(0));
            RaffleAward {
                award_id: a.award_id.get(),
                award_title: a.award_title.clone(),
                award_subtitle: a.award_subtitle.clone(),
                sort: a.sort,
                award_rule_lock_count: lock.map(|l| i32::try_from(l).unwrap_or(i32::MAX)),
                is_award_unlock: wait == 0,
                wait_unlock_count: i32::try_from(wait).unwrap_or(i32::MAX),
            }
        })
        .collect()
}

/// The weight groups of a strategy with the user's total used draws (as `ruleWeights` and
/// `rafflePage` answer them).
pub fn rule_weights_of(strategy: &StrategyView, account: &AccountSnapshot) -> Vec<RuleWeight> {
    let used = i64::from(account.total_count - account.total_count_surplus);
    strategy
        .rule_weights
        .iter()
        .map(|g| RuleWeight {
            rule_weight_count: g.threshold,
            user_activity_account_total_user_count: used,
            strategy_awards: g
                .award_ids
                .iter()
                .map(|id| WeightAward {
                    award_id: id.get(),
                    award_title: strategy
                        .awards
                        .iter()
                        .find(|a| a.award_id == *id)
                        .map(|a| a.award_title.clone())
                        .unwrap_or_default(),
                })
                .collect(),
        })
        .collect()
}

/// A SKU as a product with `surplus` units left (as `skuProducts` and `rafflePage` answer it).
pub fn sku_product_of(s: &domain::activity::ActivitySku, surplus: i32) -> SkuProduct {
    SkuProduct {
        id: global_id(
            super::node::SKU_PRODUCT,
            &format!("{}:{}", s.activity_id.get(), s.sku.get()),
        ),
        sku: id_of(s.sku.get()),
        activity_id: id_of(s.activity_id.get()),
        activity_count_id: id_of(s.count.activity_count_id),
        stock_count: s.stock_count,
        stock_count_surplus: surplus,
        product_amount: Decimal(s.product_amount),
        activity_count: PackageCounts {
            total_count: s.count.total_count,
            day_count: s.count.day_count,
            month_count: s.count.month_count,
        },
    }
}

/// Catalogue queries.
#[derive(Default)]
pub struct CatalogQuery;

#[Object]
impl CatalogQuery {
    /// The activity's awards for a user: lock counts and whether today's draws unlocked them.
    async fn raffle_awards(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user; defaults to the token's user (service and admin tokens must name one).")]
        user_id: Option<String>,
        #[graphql(desc = "The activity.")] activity_id: ID,
    ) -> Result<Vec<RaffleAward>> {
        let user = acting_user(ctx, user_id.as_deref())?;
        let app = ctx.data::<Arc<AppState>>()?;
        let (strategy, account, day) = user_context(app, user, &activity_id).await?;
        Ok(raffle_awards_of(&strategy, &account, &day))
    }

    /// The activity's weight groups, by threshold, with the user's total used draws.
    async fn rule_weights(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user; defaults to the token's user (service and admin tokens must name one).")]
        user_id: Option<String>,
        #[graphql(desc = "The activity.")] activity_id: ID,
    ) -> Result<Vec<RuleWeight>> {
        let user = acting_user(ctx, user_id.as_deref())?;
        let app = ctx.data::<Arc<AppState>>()?;
        let (strategy, account, _) = user_context(app, user, &activity_id).await?;
        Ok(rule_weights_of(&strategy, &account))
    }

    /// The activity's quota packages with live stock. Public (no token needed).
    async fn sku_products(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The activity.")] activity_id: ID,
    ) -> Result<Vec<SkuProduct>> {
        let app = ctx.data::<Arc<AppState>>()?;
        let activity_id = ActivityId::parse(long_id("activityId", &activity_id)?).map_err(invalid_argument)?;
        let cfg = activity(app, activity_id).await?;
        Ok(cfg
            .skus
            .iter()
            .map(|s| sku_product_of(s, s.stock_count_surplus))
            .collect())
    }
}
