//! Redis read models of user data (ARCHITECTURE §6): activity accounts, credit accounts and
//! award history, under `bm:rm:…` with a per-user hash tag.
//!
//! Views that hold a whole snapshot (accounts, credit) carry the version of the row they
//! reflect and are replaced only by a newer one (one Lua script), so replayed, duplicated or
//! reordered events cannot move them backwards. Award history is append-only with a
//! monotonic state (`create` → `completed`), kept as a set so the order of the two events
//! does not matter.

use domain::activity::ActivityConfig;
use domain::ids::{ActivityId, AwardId};
use domain::outbox::AccountSnapshot;
use redis::Script;
use redis::aio::ConnectionManager;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::Keys;

/// Replace the JSON at KEYS[1] with ARGV[1] unless the stored `version` ≥ ARGV[2].
const SET_IF_NEWER: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, doc = pcall(cjson.decode, cur)
  if ok and tonumber(doc['version']) and tonumber(doc['version']) >= tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
";

/// A user's credit account view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreditView {
    /// Lifetime credits.
    pub total_amount: Decimal,
    /// Spendable credits.
    pub available_amount: Decimal,
    /// Row version.
    pub version: i64,
}

/// One won award in a user's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AwardEntry {
    /// Raffle ticket / record order id.
    pub order_id: String,
    /// Award.
    pub award_id: AwardId,
    /// Title.
    pub award_title: String,
    /// When it was won (epoch ms).
    pub award_time_ms: i64,
    /// Whether it was delivered (`completed`).
    #[serde(default)]
    pub delivered: bool,
}

/// A page of award history, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwardPage {
    /// Entries.
    pub entries: Vec<AwardEntry>,
    /// Whether older entries exist.
    pub has_next: bool,
}

/// Access to the user views.
#[derive(Clone)]
pub struct UserViews {
    conn: ConnectionManager,
    keys: Keys,
    set_if_newer: Script,
}

fn json_err(e: serde_json::Error) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Parse, "read model JSON", e.to_string()))
}

impl UserViews {
    /// Views under `keys`.
    pub fn new(conn: ConnectionManager, keys: Keys) -> Self {
        Self {
            conn,
            keys,
            set_if_newer: Script::new(SET_IF_NEWER),
        }
    }

    fn account_key(&self, user: &str, activity: ActivityId) -> String {
        self.keys.view(user, &format!("acct:{activity}"))
    }

    /// Applies an account snapshot if it is newer than the view; returns whether it applied.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub async fn apply_account(&self, s: &AccountSnapshot) -> redis::RedisResult<bool> {
        let json = serde_json::to_string(s).map_err(json_err)?;
        let mut conn = self.conn.clone();
        let n: i64 = self
            .set_if_newer
            .key(self.account_key(&s.user_id, s.activity_id))
            .arg(json)
            .arg(s.version)
            .invoke_async(&mut conn)
            .await?;
        Ok(n == 1)
    }

    /// The account view, if present.
    ///
    /// # Errors
    /// When Redis cannot be reached or the view is corrupt.
    pub async fn account(&self, user: &str, activity: ActivityId) -> redis::RedisResult<Option<AccountSnapshot>> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = redis::cmd("GET")
            .arg(self.account_key(user, activity))
            .query_async(&mut conn)
            .await?;
        raw.map(|r| serde_json::from_str(&r).map_err(json_err)).transpose()
    }

    /// Applies a credit snapshot if newer.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub async fn apply_credit(&self, user: &str, v: &CreditView) -> redis::RedisResult<bool> {
        let json = serde_json::to_string(v).map_err(json_err)?;
        let mut conn = self.conn.clone();
        let n: i64 = self
            .set_if_newer
            .key(self.keys.view(user, "credit"))
            .arg(json)
            .arg(v.version)
            .invoke_async(&mut conn)
            .await?;
        Ok(n == 1)
    }

    /// The credit view, if present.
    ///
    /// # Errors
    /// When Redis cannot be reached or the view is corrupt.
    pub async fn credit(&self, user: &str) -> redis::RedisResult<Option<CreditView>> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = redis::cmd("GET")
            .arg(self.keys.view(user, "credit"))
            .query_async(&mut conn)
            .await?;
        raw.map(|r| serde_json::from_str(&r).map_err(json_err)).transpose()
    }

    /// Records a won award (idempotent).
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub async fn add_award(&self, user: &str, e: &AwardEntry) -> redis::RedisResult<()> {
        self.add_awards(&[(user, e)]).await
    }

    /// Records won awards in one round trip (idempotent).
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub async fn add_awards(&self, entries: &[(&str, &AwardEntry)]) -> redis::RedisResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (user, e) in entries {
            let json = serde_json::to_string(e).map_err(json_err)?;
            pipe.hset_nx(self.keys.view(user, "awards"), &e.order_id, json).ignore();
            pipe.cmd("ZADD")
                .arg(self.keys.view(user, "awards_idx"))
                .arg("NX")
                .arg(e.award_time_ms)
                .arg(&e.order_id)
                .ignore();
            if e.delivered {
                pipe.sadd(self.keys.view(user, "awards_done"), &e.order_id).ignore();
            }
        }
        let mut conn = self.conn.clone();
        pipe.query_async(&mut conn).await
    }

    /// Marks an award delivered (idempotent; may arrive before [`UserViews::add_award`]).
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub async fn award_delivered(&self, user: &str, order_id: &str) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        redis::cmd("SADD")
            .arg(self.keys.view(user, "awards_done"))
            .arg(order_id)
            .query_async(&mut conn)
            .await
    }

    /// Newest-first page of a user's awards after the cursor `after` (`{timeMs}:{orderId}`).
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub async fn awards(&self, user: &str, first: usize, after: Option<(i64, &str)>) -> redis::RedisResult<AwardPage> {
        let mut conn = self.conn.clone();
        let max = after.map_or("+inf".to_owned(), |(t, _)| t.to_string());
        // Entries sharing the cursor's millisecond are re-read and filtered by order id.
        let ids: Vec<(String, i64)> = redis::cmd("ZREVRANGEBYSCORE")
            .arg(self.keys.view(user, "awards_idx"))
            .arg(max)
            .arg("-inf")
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(0)
            .arg(first + 1 + 64)
            .query_async(&mut conn)
            .await?;
        let ids: Vec<String> = ids
            .into_iter()
            .filter(|(id, t)| after.is_none_or(|(at, aid)| *t < at || id.as_str() < aid))
            .map(|(id, _)| id)
            .take(first + 1)
            .collect();
        let has_next = ids.len() > first;
        let ids = &ids[..ids.len().min(first)];
        if ids.is_empty() {
            return Ok(AwardPage {
                entries: Vec::new(),
                has_next: false,
            });
        }
        let (raw, done): (Vec<Option<String>>, Vec<bool>) = redis::pipe()
            .cmd("HMGET")
            .arg(self.keys.view(user, "awards"))
            .arg(ids)
            .cmd("SMISMEMBER")
            .arg(self.keys.view(user, "awards_done"))
            .arg(ids)
            .query_async(&mut conn)
            .await?;
        let mut entries = Vec::with_capacity(ids.len());
        for (r, d) in raw.into_iter().zip(done) {
            if let Some(r) = r {
                let mut e: AwardEntry = serde_json::from_str(&r).map_err(json_err)?;
                e.delivered |= d;
                entries.push(e);
            }
        }
        Ok(AwardPage { entries, has_next })
    }

    /// Stores an activity's configuration view (SKU products), written when it is armed.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub async fn put_activity(&self, cfg: &ActivityConfig) -> redis::RedisResult<()> {
        let json = serde_json::to_string(cfg).map_err(json_err)?;
        let mut conn = self.conn.clone();
        redis::cmd("SET")
            .arg(self.keys.activity_view(cfg.activity.activity_id))
            .arg(json)
            .query_async(&mut conn)
            .await
    }

    /// An activity's configuration view with each SKU's live stock (the Redis counter when it
    /// exists, else the durable surplus).
    ///
    /// # Errors
    /// When Redis cannot be reached or the view is corrupt.
    pub async fn activity(&self, activity_id: ActivityId) -> redis::RedisResult<Option<ActivityConfig>> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = redis::cmd("GET")
            .arg(self.keys.activity_view(activity_id))
            .query_async(&mut conn)
            .await?;
        let Some(mut cfg) = raw
            .map(|r| serde_json::from_str::<ActivityConfig>(&r).map_err(json_err))
            .transpose()?
        else {
            return Ok(None);
        };
        if !cfg.skus.is_empty() {
            let keys: Vec<String> = cfg.skus.iter().map(|s| self.keys.sku_stock(s.sku)).collect();
            let live: Vec<Option<i64>> = redis::cmd("MGET").arg(keys).query_async(&mut conn).await?;
            for (sku, live) in cfg.skus.iter_mut().zip(live) {
                if let Some(l) = live {
                    sku.stock_count_surplus = i32::try_from(l.max(0)).unwrap_or(i32::MAX);
                }
            }
        }
        Ok(Some(cfg))
    }

    /// Deletes every user view and task-status view (before a rebuild). Task-status streams are
    /// kept: they are the subscription history, with cursors clients hold.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub async fn drop_all(&self) -> redis::RedisResult<u64> {
        let mut deleted = 0;
        for pattern in ["bm:rm:v:*", "bm:rm:t:*"] {
            deleted += self.drop_matching(&format!("{}{pattern}", self.keys.prefix())).await?;
        }
        Ok(deleted)
    }

    async fn drop_matching(&self, pattern: &str) -> redis::RedisResult<u64> {
        let mut conn = self.conn.clone();
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let (next, keys) = super::scan_step(&mut conn, cursor, pattern).await?;
            if !keys.is_empty() {
                deleted += redis::cmd("UNLINK").arg(&keys).query_async::<u64>(&mut conn).await?;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }
}
