//! Application state shared by every request: services wired to their adapters.

use std::sync::Arc;

use domain::activity::service::ActivityDeps;
use domain::activity::{ActivityService, BusinessCalendar};
use domain::strategy::StrategyService;
use persistence::outbox::relay::RelayNudge;
use persistence::outbox::store::MySqlTaskAdmin;
use persistence::redis::{Connection, Keys, RedisArmoryStore, RedisAwardStock, RedisSkuStock, TaskStream, UserViews};
use persistence::{Databases, MySqlActivityRepository, MySqlQuotaRepository, SnowflakeIds, SystemClock};

use crate::settings::Settings;

/// Services and connections, built once at startup.
pub struct AppState {
    /// Strategy arming and drawing.
    pub strategy: Arc<StrategyService>,
    /// Stock administration.
    pub stock: domain::stock::StockAdmin,
    /// Activity arming, quota recharge, credit-paid exchange and the draw command.
    pub activity: Arc<ActivityService>,
    /// Credit trades and the daily sign-in rebate.
    pub credit: Arc<domain::credit::CreditService>,
    /// Database pools (config + shards).
    pub db: Databases,
    /// Redis connection.
    pub redis: Connection,
    /// The live runtime switches, kept in step with every instance.
    pub switch_board: persistence::switch_board::SwitchBoard,
    /// The shared draw rate limiter (its blacklist is an admin view).
    pub rate_limiter: persistence::redis::rate_limit::RedisRateLimiter,
    /// Refused draws per guard.
    pub guard_counter: persistence::redis::rate_limit::RedisGuardCounter,
    /// Wakes the relay after commits.
    pub nudge: Arc<RelayNudge>,
    /// Outbox administration.
    pub tasks: MySqlTaskAdmin,
    /// Task-status streams (subscriptions).
    pub task_stream: TaskStream,
    /// The process's one task-status reader, fanning out to every subscription.
    pub task_fanout: persistence::redis::TaskFanout,
    /// Caps on open subscriptions (per instance, per user; per connection on the socket).
    pub subscription_slots: crate::graphql::subscription::SubscriptionSlots,
    /// The audit log of operator operations.
    pub audit: persistence::mysql::audit::MySqlAuditLog,
    /// User read models (accounts, credit, award history).
    pub views: UserViews,
    /// Business day / month boundaries.
    pub calendar: BusinessCalendar,
    /// How long each `/ready` check may take.
    pub ready_timeout: std::time::Duration,
    /// Persisted documents (APQ, trusted documents), shared with every instance through Redis.
    pub persisted: Arc<crate::graphql::persisted::PersistedQueries>,
    /// This process's Prometheus metrics (`/metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl AppState {
    /// Connects to MySQL and Redis and wires the services.
    ///
    /// # Errors
    /// When a database or Redis cannot be reached.
    pub async fn connect(settings: &Settings) -> anyhow::Result<Arc<Self>> {
        let db = Databases::connect(&settings.database_settings())
            .await
            .map_err(|e| anyhow::anyhow!("connecting to MySQL ({}): {e}", redact(&settings.database.config_url)))?;
        let redis = persistence::redis::connect_with(&settings.redis.url, &settings.redis.deadlines())
            .await
            .map_err(|e| anyhow::anyhow!("connecting to Redis ({}): {e}", redact(&settings.redis.url)))?;
        let keys = Keys::new(settings.redis.key_prefix.clone());
        let quota = Arc::new(
            MySqlQuotaRepository::new(db.clone())
                .with_response_timeout(std::time::Duration::from_millis(settings.database.response_timeout_ms)),
        );
        let strategy = Arc::new(StrategyService::new(
            Arc::new(persistence::MySqlStrategyRepository::new(db.config.clone())),
            Arc::new(RedisArmoryStore::new(redis.clone(), keys.clone())),
            Arc::new(RedisAwardStock::new(redis.clone(), keys.clone())),
            quota.clone(),
            Arc::new(persistence::OsRandom),
        ));
        let worker = SnowflakeIds::lease_worker(&mut redis.clone(), &settings.redis.key_prefix)
            .await
            .map_err(|e| anyhow::anyhow!("leasing an id worker from Redis: {e}"))?;
        let calendar = BusinessCalendar::new(settings.business.utc_offset_minutes)
            .ok_or_else(|| anyhow::anyhow!("business.utc_offset_minutes must be within ±23:59"))?;
        let nudge = Arc::new(RelayNudge::new(&db));
        // Arming elsewhere drops this instance's in-process copies (the state is set below).
        let app_cell: Arc<std::sync::OnceLock<std::sync::Weak<AppState>>> = Arc::new(std::sync::OnceLock::new());
        let cell = app_cell.clone();
        let base = domain::switches::Switches {
            blacklist: settings.switches.blacklist,
            draw_timeout_ms: settings.draw.timeout_ms.clamp(1, 60_000),
            ..domain::switches::Switches::default()
        };
        let switch_board = persistence::switch_board::SwitchBoard::start(
            base,
            persistence::mysql::switches::MySqlSwitchStore::new(db.config.clone()),
            redis.clone(),
            &settings.redis.url,
            keys.clone(),
            std::time::Duration::from_millis(settings.switches.refresh_ms.clamp(50, 60_000)),
            Box::new(move || {
                if let Some(app) = cell.get().and_then(std::sync::Weak::upgrade) {
                    app.strategy.forget_armed();
                    app.activity.forget_configs();
                }
            }),
        )
        .await
        .map_err(|e| anyhow::anyhow!("loading the runtime switches: {e}"))?;
        let rate_limiter = persistence::redis::rate_limit::RedisRateLimiter::new(redis.clone(), keys.clone());
        let guard_counter = persistence::redis::rate_limit::RedisGuardCounter::new(redis.clone(), keys.clone());
        let metrics = Arc::new(crate::metrics::Metrics::new(&settings.metrics, &db)?.with_redis(redis.clone())?);
        let credit_repo = Arc::new(persistence::MySqlCreditRepository::new(db.clone()));
        let ids: Arc<SnowflakeIds> = Arc::new(SnowflakeIds::new(worker)?);
        let credit = Arc::new(domain::credit::CreditService::new(
            credit_repo.clone(),
            credit_repo.clone(),
            ids.clone(),
            Arc::new(SystemClock),
            calendar,
            nudge.clone(),
        ));
        let activity = Arc::new(ActivityService::new(ActivityDeps {
            activities: Arc::new(MySqlActivityRepository::new(db.config.clone())),
            quota,
            credit: credit_repo,
            sku_stock: Arc::new(RedisSkuStock::new(redis.clone(), keys)),
            strategy: strategy.clone(),
            ids,
            clock: Arc::new(SystemClock),
            calendar,
            notifier: nudge.clone(),
            switches: Arc::new(switch_board.clone()),
            rate_limiter: Arc::new(rate_limiter.clone()),
            // One call counts for `drawGuards` (every instance) and for this process's metrics.
            guards: Arc::new(crate::metrics::CountingGuards::new(
                guard_counter.clone(),
                metrics.clone(),
            )),
        }));
        tracing::info!(id.worker = worker, "id generator leased");
        let views = UserViews::new(redis.clone(), Keys::new(settings.redis.key_prefix.clone()));
        let task_stream = TaskStream::open(
            redis.clone(),
            &settings.redis.url,
            Keys::new(settings.redis.key_prefix.clone()),
        )?;
        let stock = domain::stock::StockAdmin::new(
            Arc::new(persistence::mysql::stock::MySqlDurableStock::new(db.config.clone())),
            strategy.stock().clone(),
            Arc::new(RedisSkuStock::new(
                redis.clone(),
                Keys::new(settings.redis.key_prefix.clone()),
            )),
        );
        let persisted = Arc::new(crate::graphql::persisted::PersistedQueries::new(
            persistence::redis::PersistedDocuments::new(
                redis.clone(),
                Keys::new(settings.redis.key_prefix.clone()),
                Some(std::time::Duration::from_secs(settings.http.apq_ttl_secs)),
            ),
            settings.http.trusted_documents,
            settings.http.max_query_bytes.max(64),
        ));
        let app = Arc::new(Self {
            switch_board,
            rate_limiter,
            guard_counter,
            stock,
            strategy,
            activity,
            credit,
            redis,
            tasks: MySqlTaskAdmin::new(db.clone()),
            task_fanout: persistence::redis::TaskFanout::start(task_stream.clone()),
            task_stream,
            views,
            calendar,
            ready_timeout: std::time::Duration::from_millis(settings.http.ready_timeout_ms.max(1)),
            subscription_slots: crate::graphql::subscription::SubscriptionSlots::new(
                settings.http.max_subscriptions,
                settings.http.max_subscriptions_per_user.max(1),
            ),
            audit: persistence::mysql::audit::MySqlAuditLog::new(db.config.clone()),
            persisted,
            metrics,
            nudge,
            db,
        });
        let _ = app_cell.set(Arc::downgrade(&app));
        Ok(app)
    }
}

/// A URL with its password replaced by `***`, safe for logs and error messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact("mysql://root:s3cret@db:3306/big_market"),
            "mysql://root:***@db:3306/big_market"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact("mysql://root@127.0.0.1/x"), "mysql://root@127.0.0.1/x");
    }
}
