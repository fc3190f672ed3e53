//! Award stock counters in Redis: one Lua script per decrement (spec §4.6, ARCHITECTURE §4).
//!
//! `take` atomically decrements `strategy_award_count_key_{s}_{a}`, claims the unit's lock key
//! `…_{remaining}` (a guard against re-selling the unit if someone restores the counter by
//! hand), and reports the remaining count so the caller can emit the "stock zero" event.
//! A missing counter (never armed, or lost with Redis) counts as exhausted and is **not**
//! created, so a later arm can still set it from the durable surplus.

use std::time::Duration;

use domain::ids::{AwardId, StrategyId};
use domain::ports::{AwardStockCounter, PortError, StockTake};
use redis::Script;
use redis::aio::ConnectionManager;

use super::{Keys, port_err};

/// Returns the remaining count, or -1 (empty or missing) / -2 (unit lock already held).
const TAKE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
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

/// [`AwardStockCounter`] on Redis.
#[derive(Clone)]
pub struct RedisAwardStock {
    conn: ConnectionManager,
    keys: Keys,
    take: Script,
    give_back: Script,
}

impl RedisAwardStock {
    /// Counters under `keys`.
    pub fn new(conn: ConnectionManager, keys: Keys) -> Self {
        Self {
            conn,
            keys,
            take: Script::new(TAKE),
            give_back: Script::new(GIVE_BACK),
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
        let ttl_ms = lock_ttl.map_or(0, |d| d.as_millis().max(1));
        let mut conn = self.conn.clone();
        let s: i64 = self
            .take
            .key(self.keys.award_stock(strategy_id, award_id))
            .arg(ttl_ms as u64)
            .invoke_async(&mut conn)
            .await
            .map_err(port_err)?;
        if s == -2 {
            tracing::warn!(
                strategy.id = strategy_id,
                award.id = award_id,
                "award stock unit lock already held; unit skipped"
            );
        }
        Ok(if s >= 0 {
            StockTake::Taken { remaining: s }
        } else {
            StockTake::Exhausted
        })
    }

    async fn give_back(&self, strategy_id: StrategyId, award_id: AwardId) -> Result<(), PortError> {
        let mut conn = self.conn.clone();
        let _: i64 = self
            .give_back
            .key(self.keys.award_stock(strategy_id, award_id))
            .invoke_async(&mut conn)
            .await
            .map_err(port_err)?;
        Ok(())
    }
}
