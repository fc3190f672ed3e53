//! Prometheus metrics of the adapters: what the outbox relay published per shard, what the
//! consumers did with each message, how long a projected event took to reach its read model,
//! and — gathered when scraped, within a deadline — the outbox backlog per shard and the
//! connection pools.
//!
//! Every family is registered into a [`Registry`] the caller owns (`api` exposes it at
//! `/metrics`); a process that is not scraped pays one relaxed atomic add per event. Label
//! handles are resolved when a relay or consumer starts, so counting allocates nothing.
//! The names and labels are listed in docs/OPERATIONS.md §Metrics.

use std::time::Duration;

pub use prometheus::Registry;
use prometheus::{
    Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};
use sea_orm::DatabaseConnection;

use crate::mysql::db::Databases;
use crate::outbox::store;

/// Seconds: the read-model lag buckets (5 ms … 5 min).
const LAG_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntCounterVec> {
    let v = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(v.clone()))?;
    Ok(v)
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntGaugeVec> {
    let v = IntGaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(v.clone()))?;
    Ok(v)
}

/// The relay's counters of one shard.
#[derive(Debug, Clone)]
pub struct RelayShardCounters {
    /// Rows confirmed by the broker (or applied to the read model) and marked published.
    pub published: IntCounter,
    /// Failed publish attempts that will be retried.
    pub failed: IntCounter,
    /// Rows dead-lettered (their last attempt failed).
    pub dead: IntCounter,
    /// Rows put back without an attempt because the broker could not be reached.
    pub deferred: IntCounter,
    /// Batches that failed as a whole (database or broker unreachable) and were retried.
    pub batch_errors: IntCounter,
}

/// The relay's counters, one set per shard (label `shard`, 0 = the first shard URL).
#[derive(Debug)]
pub struct RelayMetrics {
    shards: Vec<RelayShardCounters>,
}

impl RelayMetrics {
    /// Registers the relay's families for `shards` shards.
    ///
    /// # Errors
    /// A family registered twice in `registry`.
    pub fn register(registry: &Registry, shards: usize) -> prometheus::Result<Self> {
        let published = counter_vec(
            registry,
            "bm_relay_published_total",
            "Outbox rows confirmed by the broker (or applied to the read model) and marked published.",
            &["shard"],
        )?;
        let failed = counter_vec(
            registry,
            "bm_relay_publish_failures_total",
            "Failed publish attempts of outbox rows (retried after a backoff).",
            &["shard"],
        )?;
        let dead = counter_vec(
            registry,
            "bm_relay_dead_lettered_total",
            "Outbox rows marked dead after their last publish attempt failed.",
            &["shard"],
        )?;
        let deferred = counter_vec(
            registry,
            "bm_relay_deferred_total",
            "Outbox rows put back without an attempt because the broker could not be reached.",
            &["shard"],
        )?;
        let batch_errors = counter_vec(
            registry,
            "bm_relay_batch_errors_total",
            "Relay batches that failed as a whole and were retried after a pause.",
            &["shard"],
        )?;
        let mut out = Vec::with_capacity(shards);
        for shard in 0..shards {
            let label = shard.to_string();
            let l = [label.as_str()];
            out.push(RelayShardCounters {
                published: published.get_metric_with_label_values(&l)?,
                failed: failed.get_metric_with_label_values(&l)?,
                dead: dead.get_metric_with_label_values(&l)?,
                deferred: deferred.get_metric_with_label_values(&l)?,
                batch_errors: batch_errors.get_metric_with_label_values(&l)?,
            });
        }
        Ok(Self { shards: out })
    }

    /// The counters of `shard`.
    pub fn shard(&self, shard: usize) -> Option<&RelayShardCounters> {
        self.shards.get(shard)
    }
}

/// What a consumer did with one delivery, as counted.
#[derive(Debug, Clone)]
pub struct TopicCounters {
    /// Applied and acknowledged.
    pub ok: IntCounter,
    /// Failed transiently and sent to the delay queue for a later attempt.
    pub retried: IntCounter,
    /// Failed transiently after its attempts and parked (re-driven once the database answers).
    pub parked: IntCounter,
    /// Poison, or parked again after `consumers.max_redrives` re-drives: moved to `.dead`.
    pub dead: IntCounter,
    /// Its copy could not be published, so it was returned to its queue (nack).
    pub returned: IntCounter,
    /// Moved from `.parked` back to its queue by the re-drive pass.
    pub redriven: IntCounter,
}

/// The consumers' counters (labels `topic` and `result`).
#[derive(Debug)]
pub struct ConsumerMetrics {
    messages: IntCounterVec,
}

impl ConsumerMetrics {
    /// Registers the consumers' families.
    ///
    /// # Errors
    /// A family registered twice in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        Ok(Self {
            messages: counter_vec(
                registry,
                "bm_consumer_messages_total",
                "Deliveries handled by the consumers, by topic and result: ok, retried, parked, dead, returned, redriven.",
                &["topic", "result"],
            )?,
        })
    }

    /// The counters of `topic`, resolved once per consumer.
    ///
    /// # Errors
    /// Never for these families (their label counts are fixed).
    pub fn topic(&self, topic: &str) -> prometheus::Result<TopicCounters> {
        let m = |result: &str| self.messages.get_metric_with_label_values(&[topic, result]);
        Ok(TopicCounters {
            ok: m("ok")?,
            retried: m("retried")?,
            parked: m("parked")?,
            dead: m("dead")?,
            returned: m("returned")?,
            redriven: m("redriven")?,
        })
    }
}

/// The read-model lag: from an event's creation (its envelope `timestamp`, set when its outbox
/// row was written) to its projection applied by the relay (label `topic`).
#[derive(Debug)]
pub struct ProjectionMetrics {
    lag: HistogramVec,
}

impl ProjectionMetrics {
    /// Registers the histogram.
    ///
    /// # Errors
    /// A family registered twice in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let lag = HistogramVec::new(
            HistogramOpts::new(
                "bm_read_model_lag_seconds",
                "Seconds from an event's outbox row creation to its projection applied to the read model.",
            )
            .buckets(LAG_BUCKETS.to_vec()),
            &["topic"],
        )?;
        registry.register(Box::new(lag.clone()))?;
        Ok(Self { lag })
    }

    /// One event of `topic` created at `created_ms` and applied at `now_ms` (epoch ms; clocks
    /// of two hosts may disagree a little, a negative lag counts as zero).
    pub fn observe(&self, topic: &str, created_ms: i64, now_ms: i64) {
        // Topics are the outbox's fixed few: the lookup hashes, it does not allocate.
        if let Ok(h) = self.lag.get_metric_with_label_values(&[topic]) {
            h.observe((now_ms - created_ms).max(0) as f64 / 1000.0);
        }
    }
}

/// Gauges read from the databases when scraped: the outbox per shard (pending rows, age of the
/// oldest, dead rows, and whether the shard answered in time) and the connection pools.
#[derive(Debug)]
pub struct StoreGauges {
    backlog: IntGaugeVec,
    oldest_age: GaugeVec,
    dead: IntGaugeVec,
    up: IntGaugeVec,
    pool_size: IntGaugeVec,
    pool_idle: IntGaugeVec,
    pool_max: IntGaugeVec,
    scrape_seconds: Gauge,
}

impl StoreGauges {
    /// Registers the gauges.
    ///
    /// # Errors
    /// A family registered twice in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let oldest_age = GaugeVec::new(
            Opts::new(
                "bm_outbox_oldest_pending_age_seconds",
                "Age of the oldest pending (create or fail) outbox row of a shard; 0 when none is pending.",
            ),
            &["shard"],
        )?;
        registry.register(Box::new(oldest_age.clone()))?;
        let scrape_seconds = Gauge::new(
            "bm_outbox_scrape_duration_seconds",
            "How long reading the outbox gauges of every shard took at the last scrape.",
        )?;
        registry.register(Box::new(scrape_seconds.clone()))?;
        Ok(Self {
            backlog: gauge_vec(
                registry,
                "bm_outbox_pending_rows",
                "Outbox rows of a shard not yet published (state create or fail).",
                &["shard"],
            )?,
            oldest_age,
            dead: gauge_vec(
                registry,
                "bm_outbox_dead_rows",
                "Outbox rows of a shard in state dead (replayable with replayTask).",
                &["shard"],
            )?,
            up: gauge_vec(
                registry,
                "bm_outbox_scrape_up",
                "1 when the shard answered the outbox gauges' query within metrics.scrape_timeout_ms, else 0 (its gauges are then absent).",
                &["shard"],
            )?,
            pool_size: gauge_vec(
                registry,
                "bm_db_pool_connections",
                "Open connections of a database's pool (in use and idle).",
                &["database"],
            )?,
            pool_idle: gauge_vec(
                registry,
                "bm_db_pool_idle_connections",
                "Idle connections of a database's pool.",
                &["database"],
            )?,
            pool_max: gauge_vec(
                registry,
                "bm_db_pool_max_connections",
                "Largest size of a database's pool (database.max_connections).",
                &["database"],
            )?,
            scrape_seconds,
        })
    }

    /// Reads the pools (in memory) and the outbox of every shard (one short query each, run
    /// concurrently, each bounded by `deadline`: a shard that does not answer in time is marked
    /// down and its outbox gauges are withdrawn, and the scrape goes on).
    pub async fn refresh(&self, db: &Databases, deadline: Duration) {
        self.pools(db);
        let started = std::time::Instant::now();
        let reads = db.shards.iter().map(|shard| async move {
            match tokio::time::timeout(deadline, store::backlog(shard)).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no answer within {} ms", deadline.as_millis())),
            }
        });
        let results = futures::future::join_all(reads).await;
        for (shard, result) in results.into_iter().enumerate() {
            let label = shard.to_string();
            let l = [label.as_str()];
            let (Ok(up), Ok(backlog), Ok(age), Ok(dead)) = (
                self.up.get_metric_with_label_values(&l),
                self.backlog.get_metric_with_label_values(&l),
                self.oldest_age.get_metric_with_label_values(&l),
                self.dead.get_metric_with_label_values(&l),
            ) else {
                continue;
            };
            match result {
                Ok(b) => {
                    backlog.set(b.pending);
                    age.set(b.oldest_pending_age_secs as f64);
                    dead.set(b.dead);
                    up.set(1);
                }
                Err(e) => {
                    tracing::warn!(shard, error = %e, "metrics: outbox gauges of the shard not read");
                    // Absent, not stale: a dashboard shows a gap, and `bm_outbox_scrape_up` says why.
                    let _ = self.backlog.remove_label_values(&l);
                    let _ = self.oldest_age.remove_label_values(&l);
                    let _ = self.dead.remove_label_values(&l);
                    up.set(0);
                }
            }
        }
        self.scrape_seconds.set(started.elapsed().as_secs_f64());
    }

    fn pools(&self, db: &Databases) {
        let all = std::iter::once(("config".to_owned(), db.config.connection())).chain(
            db.shards
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("shard_{i}"), s.connection())),
        );
        for (name, conn) in all {
            // Only a MySQL pool has these numbers (anything else would panic in sea-orm).
            if !matches!(conn, DatabaseConnection::SqlxMySqlPoolConnection(_)) {
                continue;
            }
            let pool = conn.get_mysql_connection_pool();
            let l = [name.as_str()];
            let set = |g: &IntGaugeVec, v: i64| {
                if let Ok(g) = g.get_metric_with_label_values(&l) {
                    IntGauge::set(&g, v);
                }
            };
            set(&self.pool_size, i64::from(pool.size()));
            set(&self.pool_idle, i64::try_from(pool.num_idle()).unwrap_or(i64::MAX));
            set(&self.pool_max, i64::from(pool.options().get_max_connections()));
        }
    }
}

/// Every family of the adapters, registered in one registry.
#[derive(Debug)]
pub struct PersistenceMetrics {
    /// The relay's counters.
    pub relay: std::sync::Arc<RelayMetrics>,
    /// The consumers' counters.
    pub consumers: std::sync::Arc<ConsumerMetrics>,
    /// The read-model lag.
    pub projection: std::sync::Arc<ProjectionMetrics>,
    /// Outbox and pool gauges, read when scraped.
    pub store: StoreGauges,
}

impl PersistenceMetrics {
    /// Registers every family for `shards` shards.
    ///
    /// # Errors
    /// A family registered twice in `registry`.
    pub fn register(registry: &Registry, shards: usize) -> prometheus::Result<Self> {
        Ok(Self {
            relay: std::sync::Arc::new(RelayMetrics::register(registry, shards)?),
            consumers: std::sync::Arc::new(ConsumerMetrics::register(registry)?),
            projection: std::sync::Arc::new(ProjectionMetrics::register(registry)?),
            store: StoreGauges::register(registry)?,
        })
    }
}
