//! Stock counters in Redis — award stock (spec §4.6) and SKU stock (§5.3) — with one Lua
//! script per decrement (ARCHITECTURE §4).
//!
//! `take` atomically decrements the counter (e.g. `strategy_award_count_key_{s}_{a}`), claims the unit's lock key
//! `…_{remaining}` (a guard against re-selling the unit if someone restores the counter by
//! hand), and reports the remaining count so the caller can emit the "stock zero" event.
//! A missing counter (never armed, or lost with Redis) counts as exhausted and is **not**
//! created, so a later arm can still set it from the durable surplus.

use std::time::Duration;

use domain::activity::ports::SkuStockCounter;
use domain::ids::{AwardId, Sku, StrategyId};
use domain::ports::{AwardStockCounter, PortError, StockTake};
use redis::Script;
use redis::aio::ConnectionManager;

use super::{Keys, port_err};

/// The take script (`KEYS[1]` counter, `ARGV[1]` unit-lock TTL in ms, 0 = none). Returns the
/// remaining count, or -1 (empty) / -2 (unit lock already held) / -3 (missing). Public so the
/// `bench draw` raw baseline issues exactly the same call.
pub const TAKE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return -3 end
local s = redis.call('DECR', KEYS[1])
if s < 0 then
  redis.call('SET', KEYS[1], 0)
  return -1
end
local lock = KEYS[1] .. '_' .. s
local ok
if tonumber(ARGV[1]) > 0 then
  ok = redis.call('SET', lock, 'lock', 'NX', 'PX', ARGV[1])
else
  ok = redis.call('SET', lock, 'lock', 'NX')
end
if not ok then return -2 end
return s
";

/// Returns a unit: increments the counter and releases the lock of the unit the next
/// decrement will claim, keeping "one lock per sold unit".
const GIVE_BACK: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local v = redis.call('INCR', KEYS[1])
redis.call('DEL', KEYS[1] .. '_' .. (v - 1))
return v
";

/// Adds `ARGV[1]` units to an existing counter and deletes the unit locks of the units it
/// creates (`…_{before}` … `…_{after − 1}`): locks left there by earlier sales would otherwise
/// make the new units unsellable. Returns the count after, or -3 when the counter is missing.
const ADD: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return -3 end
local before = tonumber(redis.call('GET', KEYS[1]))
if before < 0 then before = 0 end
local after = redis.call('INCRBY', KEYS[1], ARGV[1])
for i = before, after - 1 do
  redis.call('DEL', KEYS[1] .. '_' .. i)
end
return after
";

/// Atomic stock counters with unit locks: the mechanism behind award and SKU stock.
#[derive(Clone)]
pub struct RedisCounters {
    conn: ConnectionManager,
    take: Script,
    give_back: Script,
    add: Script,
}

impl RedisCounters {
    /// Counters on `conn`.
    pub fn new(conn: ConnectionManager) -> Self {
        Self {
            conn,
            take: Script::new(TAKE),
            give_back: Script::new(GIVE_BACK),
            add: Script::new(ADD),
        }
    }

    /// Takes one unit of the counter at `key`.
    ///
    /// # Errors
    /// [`PortError`] when Redis cannot be reached.
    pub async fn take(&self, key: &str, lock_ttl: Option<Duration>) -> Result<StockTake, PortError> {
        let ttl_ms = lock_ttl.map_or(0, |d| d.as_millis().clamp(1, u128::from(u64::MAX)) as u64);
        let mut conn = self.conn.clone();
        let s: i64 = self
            .take
            .key(key)
            .arg(ttl_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(port_err)?;
        Ok(match s {
            s if s >= 0 => StockTake::Taken { remaining: s },
            -2 => {
                tracing::warn!(redis.key = key, "stock unit lock already held; unit skipped");
                StockTake::Exhausted
            }
            -3 => StockTake::Missing,
            _ => StockTake::Exhausted,
        })
    }

    /// Returns a unit to the counter at `key` (no-op when the counter is missing).
    ///
    /// # Errors
    /// [`PortError`] when Redis cannot be reached.
    pub async fn give_back(&self, key: &str) -> Result<(), PortError> {
        let mut conn = self.conn.clone();
        let _: i64 = self
            .give_back
            .key(key)
            .invoke_async(&mut conn)
            .await
            .map_err(port_err)?;
        Ok(())
    }

    /// Adds `units` to the counter at `key` and frees the unit locks of the new units; the
    /// count after, or `None` when the counter is missing.
    ///
    /// # Errors
    /// [`PortError`] when Redis cannot be reached.
    pub async fn add(&self, key: &str, units: i64) -> Result<Option<i64>, PortError> {
        let mut conn = self.conn.clone();
        let after: i64 = self
            .add
            .key(key)
            .arg(units)
            .invoke_async(&mut conn)
            .await
            .map_err(port_err)?;
        Ok((after >= 0).then_some(after))
    }

    /// Sets the counter at `key` to `units` unless it exists; returns whether it was set.
    ///
    /// # Errors
    /// [`PortError`] when Redis cannot be reached.
    pub async fn arm(&self, key: &str, units: i64) -> Result<bool, PortError> {
        let mut conn = self.conn.clone();
        redis::cmd("SET")
            .arg(key)
            .arg(units)
            .arg("NX")
            .query_async::<Option<String>>(&mut conn)
            .await
            .map(|r| r.is_some())
            .map_err(port_err)
    }
}

/// [`AwardStockCounter`] on Redis (`strategy_award_count_key_{strategyId}_{awardId}`).
#[derive(Clone)]
pub struct RedisAwardStock {
    counters: RedisCounters,
    keys: Keys,
}

impl RedisAwardStock {
    /// Counters under `keys`.
    pub fn new(conn: ConnectionManager, keys: Keys) -> Self {
        Self {
            counters: RedisCounters::new(conn),
            keys,
        }
    }
}

#[async_trait::async_trait]
impl AwardStockCounter for RedisAwardStock {
    async fn take(
        &self,
        strategy_id: StrategyId,
        award_id: AwardId,
        lock_ttl: Option<Duration>,
    ) -> Result<StockTake, PortError> {
        self.counters
            .take(&self.keys.award_stock(strategy_id, award_id), lock_ttl)
            .await
    }

    async fn give_back(&self, strategy_id: StrategyId, award_id: AwardId) -> Result<(), PortError> {
        self.counters
            .give_back(&self.keys.award_stock(strategy_id, award_id))
            .await
    }

    async fn add(&self, strategy_id: StrategyId, award_id: AwardId, units: i64) -> Result<Option<i64>, PortError> {
        self.counters
            .add(&self.keys.award_stock(strategy_id, award_id), units)
            .await
    }
}

/// [`SkuStockCounter`] on Redis (`big_market_activity_sku_stock_count_key_{sku}`).
#[derive(Clone)]
pub struct RedisSkuStock {
    counters: RedisCounters,
    keys: Keys,
}

impl RedisSkuStock {
    /// Counters under `keys`.
    pub fn new(conn: ConnectionManager, keys: Keys) -> Self {
        Self {
            counters: RedisCounters::new(conn),
            keys,
        }
    }
}

#[async_trait::async_trait]
impl SkuStockCounter for RedisSkuStock {
    async fn take(&self, sku: Sku, lock_ttl: Option<Duration>) -> Result<StockTake, PortError> {
        self.counters.take(&self.keys.sku_stock(sku), lock_ttl).await
    }

    async fn give_back(&self, sku: Sku) -> Result<(), PortError> {
        self.counters.give_back(&self.keys.sku_stock(sku)).await
    }

    async fn arm(&self, sku: Sku, units: i64) -> Result<bool, PortError> {
        self.counters.arm(&self.keys.sku_stock(sku), units).await
    }

    async fn add(&self, sku: Sku, units: i64) -> Result<Option<i64>, PortError> {
        self.counters.add(&self.keys.sku_stock(sku), units).await
    }
}
