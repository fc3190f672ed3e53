//! Activity operations: `armActivity`, `rechargeQuota`, `draw`.

use std::sync::Arc;

use async_graphql::{Context, ID, Object, Result, SimpleObject};
use domain::activity::recharge::RechargeQuota;
use domain::ids::{ActivityId, Sku};

use super::access::acting_user;
use super::audit::audited;
use super::error::{invalid_argument, to_gql};
use super::scalars::{id_json, long_id};
use crate::state::AppState;
use serde_json::json;

/// A quota recharge order (new, or the first one for a replayed `outBusinessNo`).
#[derive(SimpleObject)]
pub struct RechargeResult {
    /// Order id (64-bit).
    pub order_id: ID,
    /// The caller's idempotency key.
    pub out_business_no: String,
    /// False when the request replayed an earlier one: nothing more was credited.
    pub created: bool,
}

/// A recorded draw.
#[derive(SimpleObject)]
pub struct DrawResult {
    /// The award won.
    pub award_id: i32,
    /// Its title.
    pub award_title: String,
    /// Its display index (`sort`); null for a consolation award outside the strategy.
    pub award_index: Option<i32>,
    /// The raffle ticket id (= award record order id; 64-bit).
    pub order_id: ID,
    /// Id of the `send_award` event (64-bit; follow its delivery with `task(messageId)` once
    /// available).
    pub message_id: ID,
}

/// Arms an activity, tells every instance, and writes its view.
pub(crate) async fn arm(state: &AppState, activity_id: ActivityId) -> Result<()> {
    let cfg = state.activity.arm(activity_id).await.map_err(to_gql)?;
    super::strategy::announce_armed(state).await;
    if let Err(e) = state.views.put_activity(&cfg).await {
        // The view is rebuilt on first read; arming itself succeeded.
        tracing::warn!(error = %e, "could not write the activity view");
    }
    Ok(())
}

/// Activity mutations.
#[derive(Default)]
pub struct ActivityMutation;

#[Object]
impl ActivityMutation {
    /// Arms an activity: loads it with its SKUs, arms missing SKU stock counters from durable
    /// records and arms its strategy. Re-runnable. Errors: `0002` unknown activity.
    /// Admin only.
    async fn arm_activity(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The activity.")] activity_id: ID,
    ) -> Result<bool> {
        audited(
            ctx,
            "armActivity",
            json!({ "activityId": id_json(&activity_id) }),
            async {
                let state = ctx.data::<Arc<AppState>>()?;
                let activity_id = ActivityId::parse(long_id("activityId", &activity_id)?).map_err(invalid_argument)?;
                arm(state, activity_id).await?;
                Ok(true)
            },
        )
        .await
    }

    /// Buys one SKU package of draw quota without payment (the rebate path). Idempotent on
    /// `(userId, outBusinessNo)`: a retry returns the first order with `created: false`.
    /// Errors: `0002` bad argument / unknown SKU, `ERR_BIZ_003` not open, `ERR_BIZ_004` outside
    /// dates, `ERR_BIZ_005` sold out, `0003` `outBusinessNo` already used for another order.
    /// Admin only (it grants quota without payment).
    async fn recharge_quota(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user to credit.")] user_id: String,
        #[graphql(desc = "The SKU (quota package) to buy.")] sku: ID,
        #[graphql(desc = "The caller's idempotency key (byte for byte, per user).")] out_business_no: String,
    ) -> Result<RechargeResult> {
        let arguments = json!({ "userId": user_id, "sku": id_json(&sku), "outBusinessNo": out_business_no });
        audited(ctx, "rechargeQuota", arguments, async {
            let state = ctx.data::<Arc<AppState>>()?;
            let sku = Sku::parse(long_id("sku", &sku)?).map_err(invalid_argument)?;
            let done = state
                .activity
                .recharge(RechargeQuota {
                    user_id,
                    sku,
                    out_business_no,
                })
                .await
                .map_err(to_gql)?;
            Ok(RechargeResult {
                order_id: ID(done.order_id.into()),
                out_business_no: done.out_business_no,
                created: done.created,
            })
        })
        .await
    }

    /// Draws once: spends one unit of quota (or reuses an unused ticket), runs the strategy and
    /// records the award with its `send_award` event, in one transaction on the user's shard.
    /// Errors: `0002`, `ERR_BIZ_002` strategy not armed, `ERR_BIZ_003/004`, `ERR_BIZ_006/007/008`
    /// total / month / day quota exhausted, `ERR_BIZ_009` ticket already used.
    /// A user token draws for itself (`userId` may be left out); service and admin tokens name
    /// the user.
    async fn draw(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user; defaults to the token's user.")] user_id: Option<String>,
        #[graphql(desc = "The activity.")] activity_id: ID,
    ) -> Result<DrawResult> {
        let user = acting_user(ctx, user_id.as_deref())?;
        let state = ctx.data::<Arc<AppState>>()?;
        let activity_id = ActivityId::parse(long_id("activityId", &activity_id)?).map_err(invalid_argument)?;
        let r = state.activity.draw(user.as_str(), activity_id).await;
        state
            .metrics
            .draws
            .record(r.as_ref().map(drop).map_err(domain::error::HasErrorCode::error_code));
        let r = r.map_err(to_gql)?;
        Ok(DrawResult {
            award_id: r.award.award_id.get(),
            award_title: r.award.award_title,
            award_index: r.award.sort,
            order_id: ID(r.order_id.into()),
            message_id: ID(r.message_id.into()),
        })
    }
}
