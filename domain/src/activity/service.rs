//! The activity application service: arm an activity, recharge quota, draw.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};

use super::draw::{DrawCommand, DrawRecorded, StrategyDecider, lock_ttl};
use super::error::ActivityError;
use super::model::{Activity, ActivityConfig, ActivityState, BusinessCalendar};
use super::ports::{ActivityRepository, QuotaRepository, RechargeOrder, SkuStockCounter};
use super::recharge::{MAX_OUT_BUSINESS_NO, QuotaRecharged, RechargeQuota};
use crate::ids::{ActivityId, UserId};
use crate::outbox::{OutboxMessage, TOPIC_SKU_STOCK_ZERO};
use crate::ports::{Clock, IdGenerator, OutboxNotifier, StockTake};
use crate::strategy::StrategyService;

/// How long an in-process copy of an activity's configuration is trusted before reloading.
const CONFIG_TTL: chrono::Duration = chrono::Duration::seconds(30);

/// Activity configs by id, with the time each was loaded.
type ConfigCache = RwLock<HashMap<ActivityId, (DateTime<Utc>, Arc<ActivityConfig>)>>;

/// Arms activities and runs the quota commands.
pub struct ActivityService {
    activities: Arc<dyn ActivityRepository>,
    quota: Arc<dyn QuotaRepository>,
    sku_stock: Arc<dyn SkuStockCounter>,
    strategy: Arc<StrategyService>,
    ids: Arc<dyn IdGenerator>,
    clock: Arc<dyn Clock>,
    calendar: BusinessCalendar,
    notifier: Arc<dyn OutboxNotifier>,
    cache: ConfigCache,
}

/// Ports and settings of [`ActivityService`].
pub struct ActivityDeps {
    /// Config reads.
    pub activities: Arc<dyn ActivityRepository>,
    /// Shard transactions.
    pub quota: Arc<dyn QuotaRepository>,
    /// SKU stock counters.
    pub sku_stock: Arc<dyn SkuStockCounter>,
    /// The strategy service (arming, raffle).
    pub strategy: Arc<StrategyService>,
    /// Id generator.
    pub ids: Arc<dyn IdGenerator>,
    /// Clock.
    pub clock: Arc<dyn Clock>,
    /// Day/month boundaries.
    pub calendar: BusinessCalendar,
    /// Told after commits with outbox rows (wakes the relay).
    pub notifier: Arc<dyn OutboxNotifier>,
}

impl ActivityService {
    /// A service over its ports.
    pub fn new(d: ActivityDeps) -> Self {
        Self {
            activities: d.activities,
            quota: d.quota,
            sku_stock: d.sku_stock,
            strategy: d.strategy,
            ids: d.ids,
            clock: d.clock,
            calendar: d.calendar,
            notifier: d.notifier,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// Loads an activity (fresh from the database), arms each SKU's stock counter if absent
    /// — from the durable records, `min(surplus, stock − orders)`, so a Redis loss never
    /// oversells — and arms its strategy.
    ///
    /// # Errors
    /// `0002` for an unknown activity, strategy arming errors, store failures.
    pub async fn arm(&self, activity_id: ActivityId) -> Result<Arc<ActivityConfig>, ActivityError> {
        let cfg = self.reload(activity_id).await?;
        for sku in &cfg.skus {
            let sold = self.quota.sku_units_sold(sku.sku).await?;
            let units = i64::from(sku.stock_count_surplus)
                .min(i64::from(sku.stock_count) - sold)
                .max(0);
            self.sku_stock.arm(sku.sku, units).await?;
        }
        self.strategy.arm(cfg.activity.strategy_id).await?;
        Ok(cfg)
    }

    async fn reload(&self, activity_id: ActivityId) -> Result<Arc<ActivityConfig>, ActivityError> {
        let cfg = self
            .activities
            .load_activity(activity_id)
            .await?
            .ok_or_else(|| ActivityError::InvalidArgument(format!("activity {activity_id} does not exist")))?;
        let cfg = Arc::new(cfg);
        self.cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(activity_id, (self.clock.now(), cfg.clone()));
        Ok(cfg)
    }

    /// The activity's configuration (cached in process for a short time).
    ///
    /// # Errors
    /// `0002` for an unknown activity, or a store failure.
    pub async fn config(&self, activity_id: ActivityId) -> Result<Arc<ActivityConfig>, ActivityError> {
        let now = self.clock.now();
        let hit = self
            .cache
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&activity_id)
            .filter(|(at, _)| now - *at < CONFIG_TTL)
            .map(|(_, c)| c.clone());
        match hit {
            Some(c) => Ok(c),
            None => self.reload(activity_id).await,
        }
    }

    fn check_running(&self, a: &Activity, now: DateTime<Utc>) -> Result<(), ActivityError> {
        if a.state != ActivityState::Open {
            return Err(ActivityError::NotOpen(a.activity_id));
        }
        let now = now.naive_utc();
        if now < a.begin || now > a.end {
            return Err(ActivityError::OutsideDates(a.activity_id));
        }
        Ok(())
    }

    /// Recharges quota by one SKU purchase (no payment). Idempotent on
    /// `(user, outBusinessNo)`: a replay returns the first order and credits nothing.
    ///
    /// # Errors
    /// `0002` bad arguments / unknown SKU, `ERR_BIZ_003/004/005`, `0003` when the
    /// `outBusinessNo` was used for another SKU (or user in the same table).
    pub async fn recharge(&self, cmd: RechargeQuota) -> Result<QuotaRecharged, ActivityError> {
        let user = UserId::parse(&cmd.user_id)?;
        let obn = cmd.out_business_no.trim();
        if obn.is_empty() || obn.len() != cmd.out_business_no.len() || obn.chars().count() > MAX_OUT_BUSINESS_NO {
            return Err(ActivityError::InvalidArgument(format!(
                "outBusinessNo must be 1..{MAX_OUT_BUSINESS_NO} characters without surrounding whitespace"
            )));
        }
        if let Some(done) = self.replayed(&user, cmd.sku, obn).await? {
            return Ok(done);
        }
        let activity_id = self
            .activities
            .activity_of_sku(cmd.sku)
            .await?
            .ok_or_else(|| ActivityError::InvalidArgument(format!("SKU {} does not exist", cmd.sku)))?;
        let cfg = self.config(activity_id).await?;
        let sku = cfg
            .skus
            .iter()
            .find(|s| s.sku == cmd.sku)
            .ok_or_else(|| ActivityError::InvalidArgument(format!("SKU {} does not exist", cmd.sku)))?;
        let now = self.clock.now();
        self.check_running(&cfg.activity, now)?;
        let remaining = match self.sku_stock.take(sku.sku, lock_ttl(&cfg.activity, now)).await? {
            StockTake::Taken { remaining } => remaining,
            StockTake::Exhausted => return Err(ActivityError::SkuStockEmpty(sku.sku)),
            StockTake::Missing => return Err(ActivityError::SkuNotArmed(sku.sku)),
        };
        let order = RechargeOrder {
            user_id: user.as_str().to_owned(),
            sku: sku.sku,
            activity_id,
            activity_name: cfg.activity.activity_name.clone(),
            strategy_id: cfg.activity.strategy_id,
            order_id: self.ids.next_id(),
            order_time: now.naive_utc(),
            count: sku.count,
            pay_amount: rust_decimal::Decimal::ZERO,
            state: "completed",
            out_business_no: obn.to_owned(),
            day: self.calendar.day(now),
            month: self.calendar.month(now),
            account_event_id: self.ids.next_id(),
        };
        let outbox: Vec<OutboxMessage> = (remaining == 0)
            .then(|| {
                OutboxMessage::new(
                    user.as_str(),
                    TOPIC_SKU_STOCK_ZERO,
                    self.ids.next_id(),
                    now.timestamp_millis(),
                    &sku.sku,
                )
            })
            .into_iter()
            .collect();
        let mut attempt = 1;
        let saved = loop {
            match self.quota.save_recharge(&order, &outbox).await {
                Err(ActivityError::Conflict(_)) if attempt < MAX_ATTEMPTS => attempt += 1,
                other => break other,
            }
        };
        match saved {
            Ok(()) => {
                self.notifier.committed(user.as_str());
                Ok(QuotaRecharged {
                    order_id: order.order_id,
                    out_business_no: order.out_business_no,
                    created: true,
                })
            }
            Err(e) => {
                self.give_back_sku(sku.sku).await;
                match e {
                    // A concurrent twin committed first: answer as its replay.
                    ActivityError::Duplicate(_) => self.replayed(&user, cmd.sku, obn).await?.ok_or(e),
                    e => Err(e),
                }
            }
        }
    }

    async fn replayed(&self, user: &UserId, sku: i64, obn: &str) -> Result<Option<QuotaRecharged>, ActivityError> {
        let Some(found) = self.quota.find_recharge(user.as_str(), obn).await? else {
            return Ok(None);
        };
        if found.user_id != user.as_str() || found.sku != sku {
            return Err(ActivityError::Duplicate(format!(
                "outBusinessNo {obn} was already used for another order (SKU {})",
                found.sku
            )));
        }
        Ok(Some(QuotaRecharged {
            order_id: found.order_id,
            out_business_no: found.out_business_no,
            created: false,
        }))
    }

    async fn give_back_sku(&self, sku: i64) {
        if let Err(e) = self.sku_stock.give_back(sku).await {
            tracing::error!(sku, error = %e, "could not give back SKU stock: the unit stays unsold until the counter is re-derived (delete it, then armActivity)");
        }
    }

    /// Draws once for a user in an activity: one shard transaction from ticket to award
    /// record and `send_award` outbox row. Award stock taken by a draw that does not commit
    /// is given back.
    ///
    /// # Errors
    /// `0002`, `ERR_BIZ_002/003/004/006/007/008/009`, store failures.
    pub async fn draw(
        &self,
        user_id: &str,
        activity_id: ActivityId,
        blacklist_enabled: bool,
    ) -> Result<DrawRecorded, ActivityError> {
        let user = UserId::parse(user_id)?;
        let cfg = self.config(activity_id).await?;
        let now = self.clock.now();
        self.check_running(&cfg.activity, now)?;
        let strategy = self.strategy.armed(cfg.activity.strategy_id).await?;
        let decider = StrategyDecider {
            strategy,
            random: self.strategy.random().clone(),
            stock: self.strategy.stock().clone(),
            ids: self.ids.clone(),
            user_id: user.as_str().to_owned(),
            now,
            blacklist_enabled,
            lock_ttl: lock_ttl(&cfg.activity, now),
            taken: Mutex::new(None),
        };
        let cmd = DrawCommand {
            user_id: user.as_str().to_owned(),
            activity: cfg.activity.clone(),
            now,
            day: self.calendar.day(now),
            month: self.calendar.month(now),
            new_order_id: self.ids.next_id(),
            account_event_id: self.ids.next_id(),
        };
        // A deadlock victim is rolled back whole: give its stock back and run it again.
        let mut attempt = 1;
        let result = loop {
            let result = self.quota.draw(&cmd, &decider).await;
            let taken = decider.take_taken();
            if result.is_err()
                && let Some(t) = taken
                && let Err(e) = self.strategy.stock().give_back(t.strategy_id, t.award_id).await
            {
                tracing::error!(strategy.id = t.strategy_id, award.id = t.award_id, error = %e, "could not give back award stock");
            }
            match result {
                Err(ActivityError::Conflict(_)) if attempt < MAX_ATTEMPTS => attempt += 1,
                other => break other,
            }
        };
        if result.is_ok() {
            self.notifier.committed(user.as_str());
        }
        result
    }
}

/// Attempts of a command whose transaction lost a deadlock.
const MAX_ATTEMPTS: u32 = 3;
