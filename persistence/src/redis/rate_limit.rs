//! The draw rate limiter shared by every instance, and its blacklist (Redis, one script call
//! per draw while `rateLimiterSwitch` is open).
//!
//! Per user, a GCRA bucket (`…bm:rl:{user}`, a theoretical arrival time in µs): at most
//! `permits` draws per second, a burst of `permits` included. A refused draw increments the
//! user's refusal count (`…bm:rl:refused:{user}`, expiring with the blacklist period); past
//! `blacklist_after` refusals the user is blacklisted (`…bm:rl:blacklisted:{user}`, expiring
//! when the entry ends), and every draw while the entry lasts is refused. All three keys share
//! the user's hash tag (one cluster slot). The clock is Redis's (`TIME`), so every instance
//! counts on the same one.

use domain::activity::protection::{Admission, DrawRateLimiter, Guard, GuardRecorder};
use domain::ports::PortError;

use super::{Connection, Keys, port_err};

const ADMIT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local permits = tonumber(ARGV[1])
local after = tonumber(ARGV[2])
local period_us = tonumber(ARGV[3]) * 1000000
if redis.call('EXISTS', KEYS[3]) == 1 then
  return 2
end
local interval = 1000000 / permits
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - now <= 1000000 then
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', 2000)
  return 0
end
local refused = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], math.floor(period_us / 1000))
if after > 0 and refused > after then
  redis.call('SET', KEYS[3], string.format('%.0f', now + period_us), 'PX', math.floor(period_us / 1000))
  redis.call('DEL', KEYS[2])
  return 2
end
return 1
";

/// The rate limiter and blacklist of a Redis.
#[derive(Clone)]
pub struct RedisRateLimiter {
    conn: Connection,
    keys: Keys,
    admit: redis::Script,
}

/// One blacklist entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlacklistEntry {
    /// The user.
    pub user_id: String,
    /// When the entry ends (epoch ms).
    pub until_ms: i64,
}

impl RedisRateLimiter {
    /// The limiter on `conn` under `keys`.
    pub fn new(conn: Connection, keys: Keys) -> Self {
        Self {
            conn,
            keys,
            admit: redis::Script::new(ADMIT),
        }
    }

    /// The users blacklisted now (found with `SCAN`), at most `limit`, soonest to end first.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn blacklist(&self, limit: usize) -> Result<Vec<BlacklistEntry>, PortError> {
        let mut conn = self.conn.clone();
        let marker = self.keys.rate_blacklisted("");
        let prefix = marker.trim_end_matches("{}");
        let escaped: String = prefix
            .chars()
            .flat_map(|c| if "*?[]\\".contains(c) { vec!['\\', c] } else { vec![c] })
            .collect();
        let pattern = format!("{escaped}*");
        let mut cursor: u64 = 0;
        let mut keys: Vec<String> = Vec::new();
        loop {
            let (next, batch) = super::scan_step(&mut conn, cursor, &pattern).await.map_err(port_err)?;
            keys.extend(batch);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        let mut out = Vec::new();
        let mut ends: Vec<Option<String>> = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(500) {
            ends.extend(
                redis::cmd("MGET")
                    .arg(chunk)
                    .query_async::<Vec<Option<String>>>(&mut conn)
                    .await
                    .map_err(port_err)?,
            );
        }
        for (key, until) in keys.into_iter().zip(ends) {
            let Some(until) = until.and_then(|u| u.parse::<i64>().ok()) else {
                continue;
            };
            let user = key
                .strip_prefix(prefix)
                .and_then(|k| k.strip_prefix('{'))
                .and_then(|k| k.strip_suffix('}'))
                .unwrap_or_default()
                .to_owned();
            out.push(BlacklistEntry {
                user_id: user,
                until_ms: until / 1000,
            });
        }
        out.sort_by(|a, b| a.until_ms.cmp(&b.until_ms).then_with(|| a.user_id.cmp(&b.user_id)));
        out.truncate(limit);
        Ok(out)
    }

    /// Takes `user` off the blacklist and forgets its refusals; `true` when it was on it.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn unblock(&self, user: &str) -> Result<bool, PortError> {
        let mut conn = self.conn.clone();
        let (removed, _): (i64, i64) = redis::pipe()
            .cmd("DEL")
            .arg(self.keys.rate_blacklisted(user))
            .cmd("DEL")
            .arg(self.keys.rate_refusals(user))
            .query_async(&mut conn)
            .await
            .map_err(port_err)?;
        Ok(removed > 0)
    }
}

#[async_trait::async_trait]
impl DrawRateLimiter for RedisRateLimiter {
    async fn admit(
        &self,
        user: &str,
        permits_per_second: u32,
        blacklist_after: u32,
        blacklist_seconds: u64,
    ) -> Result<Admission, PortError> {
        let mut conn = self.conn.clone();
        let answer: i64 = self
            .admit
            .key(self.keys.rate_bucket(user))
            .key(self.keys.rate_refusals(user))
            .key(self.keys.rate_blacklisted(user))
            .arg(permits_per_second.max(1))
            .arg(blacklist_after)
            .arg(blacklist_seconds.max(1))
            .invoke_async(&mut conn)
            .await
            .map_err(port_err)?;
        Ok(match answer {
            0 => Admission::Allowed,
            1 => Admission::Refused,
            _ => Admission::Blacklisted,
        })
    }
}

/// Refused draws per guard, counted in one Redis hash shared by every instance.
#[derive(Clone)]
pub struct RedisGuardCounter {
    conn: Connection,
    keys: Keys,
}

impl RedisGuardCounter {
    /// Counters on `conn` under `keys`.
    pub fn new(conn: Connection, keys: Keys) -> Self {
        Self { conn, keys }
    }

    /// Refusals so far per guard (every guard listed, zero when none).
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn counts(&self) -> Result<Vec<(Guard, u64)>, PortError> {
        let mut conn = self.conn.clone();
        let map: std::collections::HashMap<String, u64> = redis::cmd("HGETALL")
            .arg(self.keys.guard_refusals())
            .query_async(&mut conn)
            .await
            .map_err(port_err)?;
        Ok(Guard::ALL
            .iter()
            .map(|g| (*g, map.get(g.name()).copied().unwrap_or(0)))
            .collect())
    }
}

impl GuardRecorder for RedisGuardCounter {
    fn refused(&self, guard: Guard) {
        let mut conn = self.conn.clone();
        let key = self.keys.guard_refusals();
        // Counting never holds up or fails the answer to the draw.
        tokio::spawn(async move {
            let counted: redis::RedisResult<i64> = redis::cmd("HINCRBY")
                .arg(key)
                .arg(guard.name())
                .arg(1)
                .query_async(&mut conn)
                .await;
            if let Err(e) = counted {
                tracing::warn!(guard = guard.name(), error = %e, "could not count a refused draw");
            }
        });
    }
}
