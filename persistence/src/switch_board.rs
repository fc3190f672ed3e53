//! The switch board of one instance: the live [`Switches`] every draw reads, kept in step with
//! the `switch_setting` table, and the signal that configuration was re-armed elsewhere.
//!
//! * **Fast path**: `setSwitch` (and every arming) publishes on the Redis channel
//!   `…bm:switches`; each instance listens on one pub/sub connection and re-reads at once.
//! * **Fallback**: each instance also re-reads every `refresh` (default 500 ms), so a lost
//!   message, a dropped pub/sub connection or a row edited by hand is applied within one
//!   period — "every instance within a second" holds without the fast path.
//! * **Configuration**: every arming raises the counter `…bm:config:generation`; an instance
//!   that sees it change (on a message or a re-read) drops its in-process strategy and activity
//!   copies (`on_config_change`), so the next draw uses what was armed.
//!
//! A re-read that fails (MySQL or Redis down) keeps the last values and is logged; stored rows
//! that are unknown or invalid are skipped with a warning, never applied.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use chrono::NaiveDateTime;
use domain::activity::protection::SwitchSource;
use domain::ids::InvalidArgument;
use domain::ports::PortError;
use domain::switches::Switches;
use futures::StreamExt;
use tokio::sync::Notify;

use crate::mysql::switches::MySqlSwitchStore;
use crate::redis::{Connection, Keys, port_err};

/// Called when another instance (or this one) armed configuration.
pub type OnConfigChange = Box<dyn Fn() + Send + Sync>;

struct Board {
    base: Switches,
    current: RwLock<Arc<Switches>>,
    store: MySqlSwitchStore,
    conn: Connection,
    client: redis::Client,
    keys: Keys,
    generation: AtomicI64,
    on_config_change: OnConfigChange,
    wake: Notify,
}

/// The live switches of this instance (clone freely).
#[derive(Clone)]
pub struct SwitchBoard {
    board: Arc<Board>,
}

/// Why `set` failed.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    /// Unknown key or bad value (`0002`).
    #[error(transparent)]
    Invalid(#[from] InvalidArgument),
    /// The store failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

impl SwitchSource for SwitchBoard {
    fn current(&self) -> Arc<Switches> {
        self.board
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl SwitchBoard {
    /// Loads the stored switches over `base` (the values a key has without a row) and starts
    /// the listener and the periodic re-read.
    ///
    /// # Errors
    /// When the switches cannot be read at startup, or `redis_url` is invalid.
    pub async fn start(
        base: Switches,
        store: MySqlSwitchStore,
        conn: Connection,
        redis_url: &str,
        keys: Keys,
        refresh: Duration,
        on_config_change: OnConfigChange,
    ) -> Result<Self, PortError> {
        let board = Arc::new(Board {
            current: RwLock::new(Arc::new(base.clone())),
            base,
            store,
            conn,
            client: redis::Client::open(redis_url).map_err(port_err)?,
            keys,
            generation: AtomicI64::new(i64::MIN),
            on_config_change,
            wake: Notify::new(),
        });
        let me = Self { board };
        me.reload().await?;
        me.check_generation().await?;
        tokio::spawn(refresh_loop(Arc::downgrade(&me.board), refresh));
        tokio::spawn(listen(Arc::downgrade(&me.board)));
        Ok(me)
    }

    /// Re-reads the stored switches.
    async fn reload(&self) -> Result<(), PortError> {
        let rows = self.board.store.load().await?;
        let (next, bad) = self
            .board
            .base
            .with_stored(rows.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        for e in bad {
            tracing::warn!(error = %e.0, "a stored switch is ignored");
        }
        let mut current = self
            .board
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if **current != next {
            tracing::info!(switches = ?next, "switches changed");
            *current = Arc::new(next);
        }
        Ok(())
    }

    /// Compares the configuration generation with the last one seen; drops the in-process
    /// copies when it moved.
    async fn check_generation(&self) -> Result<(), PortError> {
        let mut conn = self.board.conn.clone();
        let seen: Option<i64> = redis::cmd("GET")
            .arg(self.board.keys.config_generation())
            .query_async(&mut conn)
            .await
            .map_err(port_err)?;
        let seen = seen.unwrap_or(0);
        let before = self.board.generation.swap(seen, Ordering::AcqRel);
        if before != i64::MIN && before != seen {
            tracing::info!(
                generation = seen,
                "configuration re-armed elsewhere: dropping in-process copies"
            );
            (self.board.on_config_change)();
        }
        Ok(())
    }

    /// Validates and stores `value` for `key`, applies it here at once and tells every
    /// instance; returns the switches now in force here.
    ///
    /// # Errors
    /// `Invalid` for an unknown key or a bad value (nothing stored); `Port` when the store
    /// fails.
    pub async fn set(&self, key: &str, value: &str, by: &str, at: NaiveDateTime) -> Result<Arc<Switches>, SetError> {
        self.current().as_ref().clone().set(key, value)?;
        self.board.store.set(key, value, by, at).await?;
        self.reload().await?;
        self.publish().await;
        Ok(self.current())
    }

    /// Tells every instance that configuration was armed: raises the generation (this
    /// instance keeps its copies: it armed them) and publishes.
    ///
    /// # Errors
    /// When Redis fails (the other instances then pick the change up only when their own copy
    /// expires).
    pub async fn config_changed(&self) -> Result<(), PortError> {
        let mut conn = self.board.conn.clone();
        let generation: i64 = redis::cmd("INCR")
            .arg(self.board.keys.config_generation())
            .query_async(&mut conn)
            .await
            .map_err(port_err)?;
        self.board.generation.store(generation, Ordering::Release);
        self.publish().await;
        Ok(())
    }

    async fn publish(&self) {
        let mut conn = self.board.conn.clone();
        let sent: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(self.board.keys.switches_channel())
            .arg("changed")
            .query_async(&mut conn)
            .await;
        if let Err(e) = sent {
            // The periodic re-read of every instance applies it anyway.
            tracing::warn!(error = %e, "could not publish a switch change");
        }
    }

    async fn refresh(&self) {
        if let Err(e) = self.reload().await {
            tracing::warn!(error = %e, "re-reading the switches failed; keeping the last values");
        }
        if let Err(e) = self.check_generation().await {
            tracing::warn!(error = %e, "reading the configuration generation failed");
        }
    }
}

async fn refresh_loop(board: Weak<Board>, every: Duration) {
    loop {
        let Some(strong) = board.upgrade() else { return };
        let me = SwitchBoard { board: strong };
        tokio::select! {
            _ = me.board.wake.notified() => {}
            _ = tokio::time::sleep(every) => {}
        }
        me.refresh().await;
    }
}

/// Listens on the switches channel and wakes the refresh loop on every message; reconnects
/// after a failure.
async fn listen(board: Weak<Board>) {
    loop {
        let (client, channel) = match board.upgrade() {
            Some(b) => (b.client.clone(), b.keys.switches_channel()),
            None => return,
        };
        let connected = tokio::time::timeout(Duration::from_secs(2), client.get_async_pubsub()).await;
        let mut pubsub = match connected {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "switch listener cannot connect to Redis; the periodic re-read continues");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(_) => {
                tracing::warn!("switch listener: no Redis connection within 2 s; the periodic re-read continues");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = pubsub.subscribe(&channel).await {
            tracing::warn!(error = %e, "switch listener cannot subscribe");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        let mut messages = pubsub.on_message();
        loop {
            // Wake up now and then to notice a dropped board.
            match tokio::time::timeout(Duration::from_secs(5), messages.next()).await {
                Ok(Some(_)) => match board.upgrade() {
                    Some(b) => b.wake.notify_one(),
                    None => return,
                },
                Ok(None) => break,
                Err(_) => {
                    if board.upgrade().is_none() {
                        return;
                    }
                }
            }
        }
        tracing::warn!("switch listener lost its Redis connection; reconnecting");
    }
}
