//! The activity application service: its ports, the activity configuration cache and
//! arming. The commands live one per file: [`super::recharge`], [`super::draw`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};

use super::error::ActivityError;
use super::model::{Activity, ActivityConfig, ActivityState, BusinessCalendar};
use super::ports::{ActivityRepository, QuotaRepository, SkuStockCounter};
use super::protection::{DrawRateLimiter, GuardRecorder, SwitchSource};
use super::quota_cache::QuotaCache;
use crate::credit::CreditRepository;
use crate::ids::ActivityId;
use crate::ports::{Clock, IdGenerator, OutboxNotifier};
use crate::strategy::StrategyService;

/// How long an in-process copy of an activity's configuration is trusted before reloading.
const CONFIG_TTL: chrono::Duration = chrono::Duration::seconds(30);

/// Activity configs by id, with the time each was loaded.
type ConfigCache = RwLock<HashMap<ActivityId, (DateTime<Utc>, Arc<ActivityConfig>)>>;

/// Arms activities and runs the quota commands.
pub struct ActivityService {
    pub(super) activities: Arc<dyn ActivityRepository>,
    pub(super) quota: Arc<dyn QuotaRepository>,
    pub(super) credit: Arc<dyn CreditRepository>,
    pub(super) sku_stock: Arc<dyn SkuStockCounter>,
    pub(super) strategy: Arc<StrategyService>,
    pub(super) ids: Arc<dyn IdGenerator>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) calendar: BusinessCalendar,
    pub(super) notifier: Arc<dyn OutboxNotifier>,
    pub(super) switches: Arc<dyn SwitchSource>,
    pub(super) rate_limiter: Arc<dyn DrawRateLimiter>,
    pub(super) guards: Arc<dyn GuardRecorder>,
    pub(super) quotas: QuotaCache,
    cache: ConfigCache,
}

/// Ports and settings of [`ActivityService`].
pub struct ActivityDeps {
    /// Config reads.
    pub activities: Arc<dyn ActivityRepository>,
    /// Shard transactions.
    pub quota: Arc<dyn QuotaRepository>,
    /// Credit accounts (reads for credit-paid SKUs; the debit is saved with the order).
    pub credit: Arc<dyn CreditRepository>,
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
    /// The live switches (degrade, rate limit, blacklist, the draw deadline `drawTimeoutMs`).
    pub switches: Arc<dyn SwitchSource>,
    /// The per-user rate limiter shared by every instance.
    pub rate_limiter: Arc<dyn DrawRateLimiter>,
    /// Counts draws refused by each guard.
    pub guards: Arc<dyn GuardRecorder>,
}

impl ActivityService {
    /// A service over its ports.
    pub fn new(d: ActivityDeps) -> Self {
        Self {
            activities: d.activities,
            quota: d.quota,
            credit: d.credit,
            sku_stock: d.sku_stock,
            strategy: d.strategy,
            ids: d.ids,
            clock: d.clock,
            calendar: d.calendar,
            notifier: d.notifier,
            switches: d.switches,
            rate_limiter: d.rate_limiter,
            guards: d.guards,
            quotas: QuotaCache::default(),
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

    /// Drops every in-process activity configuration (another instance re-armed one).
    pub fn forget_configs(&self) {
        self.cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
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

    pub(super) fn check_running(&self, a: &Activity, now: DateTime<Utc>) -> Result<(), ActivityError> {
        if a.state != ActivityState::Open {
            return Err(ActivityError::NotOpen(a.activity_id));
        }
        let now = now.naive_utc();
        if now < a.begin || now > a.end {
            return Err(ActivityError::OutsideDates(a.activity_id));
        }
        Ok(())
    }
}

/// Attempts of a command whose transaction lost a deadlock or a lock wait.
pub(crate) const MAX_ATTEMPTS: u32 = 3;

/// How often a command decides again because its own user's account moved under it. Each
/// retry follows a commit of that same user (a draw spends one unit of quota, a recharge is
/// one order), so this only bounds a user racing many commands of their own.
pub(crate) const MAX_MOVED_RETRIES: u32 = 256;
