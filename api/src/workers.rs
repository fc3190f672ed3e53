//! Background workers: the outbox relay and the consumers, with graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use domain::award::{AwardDistributors, DeliverAward, OPENAI_USE_COUNT, OpenAiUseCount};
use domain::credit::rebate::RebateSettlement;
use persistence::metrics::PersistenceMetrics;
use persistence::outbox::relay::{Relay, RelayNudge, RelayStats};
use persistence::rabbit::Topology;
use persistence::rabbit::consumer::{self, Handler};
use persistence::rabbit::credit_handlers::{CreditAdjustHandler, SendRebateHandler};
use persistence::rabbit::handlers::{SendAwardHandler, StockZeroHandler};
use persistence::rabbit::publisher::Publisher;
use persistence::redis::{Connection, Keys, TaskStream, UserViews};
use persistence::stock_sync::StockSync;
use persistence::{Databases, MySqlAwardDelivery, OsRandom, SystemClock};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::settings::Settings;

/// The task-status stream writer of `settings` (`None` when the Redis URL does not parse).
fn task_stream(settings: &Settings, redis: &Connection) -> Option<TaskStream> {
    TaskStream::open(
        redis.clone(),
        &settings.redis.url,
        Keys::new(settings.redis.key_prefix.clone()),
    )
    .ok()
}

/// The award distributors of `settings`: the credit awards always, `openai_use_count` when
/// `awards.openai.api_host` is set. Award keys left out are never delivered (their tasks go
/// `DEAD`).
///
/// # Errors
/// When a configured gateway is invalid (e.g. `api_host` is not an http(s) URL).
pub fn award_distributors(settings: &Settings) -> anyhow::Result<AwardDistributors> {
    let mut distributors = AwardDistributors::credits(Arc::new(OsRandom));
    if let Some(openai) = settings.awards.openai.gateway_settings() {
        let gateway = persistence::gateway::HttpQuotaGateway::new(&openai)?;
        distributors = distributors.with(OPENAI_USE_COUNT, Arc::new(OpenAiUseCount::new(Arc::new(gateway))));
    }
    Ok(distributors)
}

/// The outbox relay as `serve` and `relay` run it: publishing to the configured broker and
/// maintaining the task-status streams and the user read models.
pub fn build_relay(settings: &Settings, db: &Databases, redis: &Connection, nudge: Arc<RelayNudge>) -> Relay {
    let topology = Topology::new(settings.rabbitmq.queue_prefix.clone());
    let publisher = Arc::new(
        Publisher::new(settings.rabbitmq.url.clone(), topology)
            .with_confirm_timeout(Duration::from_millis(settings.relay.confirm_timeout_ms.max(1))),
    );
    let mut relay = Relay::new(db.clone(), publisher, settings.relay.relay_settings(), nudge);
    if let Some(events) = task_stream(settings, redis) {
        relay = relay.with_events(events);
    }
    relay.with_views(UserViews::new(
        redis.clone(),
        Keys::new(settings.redis.key_prefix.clone()),
    ))
}

/// Running workers; [`Workers::stop`] finishes in-flight batches and waits for them.
pub struct Workers {
    shutdown: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
    relay_stats: Option<Arc<RelayStats>>,
}

/// Which workers a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// The outbox relay.
    pub relay: bool,
    /// The consumers (with the stock convergence pass and the re-drive of parked messages).
    pub consumers: bool,
}

impl Workers {
    /// Starts the relay and/or the consumers (with the stock convergence pass) as configured;
    /// `rebates` applies `send_rebate` messages (without it, they wait in their queue).
    pub fn start(
        settings: &Settings,
        db: &Databases,
        redis: &Connection,
        nudge: Arc<RelayNudge>,
        rebates: Option<Arc<RebateSettlement>>,
        relay: bool,
        consumers: bool,
    ) -> Self {
        Self::start_observed(settings, db, redis, nudge, rebates, Roles { relay, consumers }, None)
    }

    /// [`Workers::start`], counting what the relay and the consumers do in `metrics`.
    pub fn start_observed(
        settings: &Settings,
        db: &Databases,
        redis: &Connection,
        nudge: Arc<RelayNudge>,
        rebates: Option<Arc<RebateSettlement>>,
        roles: Roles,
        metrics: Option<&PersistenceMetrics>,
    ) -> Self {
        let Roles { relay, consumers } = roles;
        let (shutdown, rx) = watch::channel(false);
        let topology = Topology::new(settings.rabbitmq.queue_prefix.clone());
        let mut handles = Vec::new();
        let mut relay_stats = None;
        let views = UserViews::new(redis.clone(), Keys::new(settings.redis.key_prefix.clone()));
        let events = task_stream(settings, redis);
        if relay {
            let mut relay = build_relay(settings, db, redis, nudge);
            if let Some(m) = metrics {
                relay = relay.with_metrics(m.relay.clone(), m.projection.clone());
            }
            let relay = Arc::new(relay);
            relay_stats = Some(relay.stats());
            handles.push(tokio::spawn(relay.run(rx.clone())));
        }
        if consumers {
            let distributors = award_distributors(settings).unwrap_or_else(|e| {
                tracing::error!(error = %e, "award gateway not configured: its awards are not delivered");
                AwardDistributors::credits(Arc::new(OsRandom))
            });
            tracing::info!(award_keys = ?distributors, "award distributors");
            let deliver = Arc::new(DeliverAward::new(
                Arc::new(MySqlAwardDelivery::new(db.clone(), Arc::new(SystemClock))),
                distributors,
            ));
            let mut handlers: Vec<Arc<dyn Handler>> = vec![
                Arc::new(SendAwardHandler {
                    deliver,
                    events: events.clone(),
                    views: Some(views.clone()),
                    clock: Arc::new(SystemClock),
                }),
                Arc::new(StockZeroHandler::award(db.config.clone())),
                Arc::new(StockZeroHandler::sku(db.config.clone())),
                Arc::new(CreditAdjustHandler {
                    db: db.clone(),
                    events: events.clone(),
                    clock: Arc::new(SystemClock),
                }),
            ];
            if let Some(settle) = rebates {
                handlers.push(Arc::new(SendRebateHandler {
                    settle,
                    db: db.clone(),
                    events: events.clone(),
                    clock: Arc::new(SystemClock),
                }));
            }
            let sync = StockSync::new(
                db.config.clone(),
                redis.clone(),
                Keys::new(settings.redis.key_prefix.clone()),
                Duration::from_millis(settings.consumers.stock_sync_interval_ms.max(10)),
            );
            handles.push(tokio::spawn(sync.run(rx.clone())));
            // Parked messages go back to their queues whenever every database answers.
            let probe = db.clone();
            handles.push(tokio::spawn(consumer::heal(
                settings.rabbitmq.url.clone(),
                topology.clone(),
                handlers.iter().map(|h| h.topic()).collect(),
                settings.consumers.max_redrives,
                Duration::from_millis(settings.consumers.redrive_interval_ms.max(10)),
                move || {
                    let probe = probe.clone();
                    async move {
                        let mut all = vec![probe.config.clone()];
                        all.extend(probe.shards.iter().cloned());
                        for db in all {
                            match tokio::time::timeout(Duration::from_secs(2), db.ping()).await {
                                Ok(Ok(())) => {}
                                _ => return false,
                            }
                        }
                        true
                    }
                },
                metrics.map(|m| m.consumers.clone()),
                rx.clone(),
            )));
            for h in handlers {
                handles.push(tokio::spawn(consumer::run(
                    settings.rabbitmq.url.clone(),
                    topology.clone(),
                    h,
                    settings.consumers.consumer_settings(),
                    metrics.map(|m| m.consumers.clone()),
                    rx.clone(),
                )));
            }
        }
        Self {
            shutdown,
            handles,
            relay_stats,
        }
    }

    /// The relay's counters, when the relay runs here.
    pub fn relay_stats(&self) -> Option<Arc<RelayStats>> {
        self.relay_stats.clone()
    }

    /// Signals shutdown and waits for every worker to finish its batch in flight.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for h in self.handles {
            let _ = h.await;
        }
    }
}
