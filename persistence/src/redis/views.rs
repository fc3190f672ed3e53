//! Redis read models of user data (ARCHITECTURE §6): activity accounts, credit accounts and
//! award history, under `bm:rm:…` with a per-user hash tag.
//!
//! Views that hold a whole snapshot (accounts, credit) carry the version of the row they
//! reflect and are replaced only by a newer one (one Lua script), so replayed, duplicated or
//! reordered events cannot move them backwards. Award history is append-only with a
//! monotonic state (`create` → `completed`), kept as a set so the order of the two events
//! does not matter.

use domain::activity::ActivityConfig;
use domain::events::{CreditOrderSnapshot, CreditSnapshot, RebateSnapshot};
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

/// Field of a view (a user's sign-in days, the stages) saying it was built from MySQL.
const SIGNED_LOADED: &str = "_loaded";

/// The stage view's field of `(channel, source)` (a separator no channel can contain).
fn stage_field(channel: &str, source: &str) -> String {
    format!("{channel}\u{1f}{source}")
}

/// The raw replies of [`UserViews::page`].
type PageRow = (Option<String>, Option<String>, bool, bool, Vec<Option<i64>>);

/// What [`UserViews::page`] read: each part `None` where the view is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageReads {
    /// The account view.
    pub account: Option<AccountSnapshot>,
    /// The credit view.
    pub credit: Option<CreditView>,
    /// Signed in that day (`None`: the sign-in view was never built for the user).
    pub signed: Option<bool>,
    /// Live SKU stock counters, in the order asked (`None`: not armed).
    pub sku_stocks: Vec<Option<i64>>,
}

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

    /// Applies a credit trade: the balance if newer, and the order into the user's credit
    /// order history (idempotent).
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub async fn apply_credit_trade(&self, s: &CreditSnapshot) -> redis::RedisResult<()> {
        self.apply_credit(
            &s.user_id,
            &CreditView {
                total_amount: s.total_amount,
                available_amount: s.available_amount,
                version: s.version,
            },
        )
        .await?;
        self.add_credit_orders(&[(&s.user_id, &s.order)]).await
    }

    /// Records credit orders in their users' histories in one round trip (idempotent).
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub async fn add_credit_orders(&self, orders: &[(&str, &CreditOrderSnapshot)]) -> redis::RedisResult<()> {
        if orders.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (user, o) in orders {
            let json = serde_json::to_string(o).map_err(json_err)?;
            pipe.hset_nx(self.keys.view(user, "credit_orders"), &o.order_id, json)
                .ignore();
            pipe.cmd("ZADD")
                .arg(self.keys.view(user, "credit_orders_idx"))
                .arg("NX")
                .arg(o.order_time_ms)
                .arg(&o.order_id)
                .ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async(&mut conn).await
    }

    /// Newest-first page of a user's credit orders after the cursor `after` (`{timeMs}:{orderId}`).
    ///
    /// # Errors
    /// When Redis cannot be reached or the view is corrupt.
    pub async fn credit_orders(
        &self,
        user: &str,
        first: usize,
        after: Option<(i64, &str)>,
    ) -> redis::RedisResult<(Vec<CreditOrderSnapshot>, bool)> {
        let (ids, has_next) = self
            .page_ids(self.keys.view(user, "credit_orders_idx"), first, after)
            .await?;
        if ids.is_empty() {
            return Ok((Vec::new(), false));
        }
        let mut conn = self.conn.clone();
        let raw: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.keys.view(user, "credit_orders"))
            .arg(&ids)
            .query_async(&mut conn)
            .await?;
        let orders = raw
            .into_iter()
            .flatten()
            .map(|r| serde_json::from_str(&r).map_err(json_err))
            .collect::<Result<_, _>>()?;
        Ok((orders, has_next))
    }

    /// Records the rebate orders of a user's behaviour (a sign-in day) (idempotent).
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub async fn apply_rebate(&self, s: &RebateSnapshot) -> redis::RedisResult<()> {
        let json = serde_json::to_string(&s.orders).map_err(json_err)?;
        let mut conn = self.conn.clone();
        redis::cmd("HSETNX")
            .arg(self.keys.view(&s.user_id, "signed"))
            .arg(&s.out_business_no)
            .arg(json)
            .query_async(&mut conn)
            .await
    }

    /// Marks the sign-in view of `user` as built from the shards with the days `days`, so a
    /// user who never signed in reads `false` without going to MySQL again.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub async fn mark_signed_loaded(&self, user: &str, days: &[String]) -> redis::RedisResult<()> {
        let key = self.keys.view(user, "signed");
        let mut pipe = redis::pipe();
        for d in days {
            pipe.hset_nx(&key, d, "[]").ignore();
        }
        pipe.hset_nx(&key, SIGNED_LOADED, "1").ignore();
        let mut conn = self.conn.clone();
        pipe.query_async(&mut conn).await
    }

    /// Whether the user signed in on `day` (`yyyyMMdd`); `None` when the view was never built
    /// for this user (read the shards, then [`UserViews::mark_signed_loaded`]).
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub async fn signed(&self, user: &str, day: &str) -> redis::RedisResult<Option<bool>> {
        let key = self.keys.view(user, "signed");
        let mut conn = self.conn.clone();
        let (on_day, loaded): (bool, bool) = redis::pipe()
            .hexists(&key, day)
            .hexists(&key, SIGNED_LOADED)
            .query_async(&mut conn)
            .await?;
        Ok(if on_day {
            Some(true)
        } else if loaded {
            Some(false)
        } else {
            None
        })
    }

    /// Replaces the stage view with `active` (`(channel, source, activityId)` of every active
    /// stage), atomically.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub async fn put_stages(&self, active: &[(String, String, i64)]) -> redis::RedisResult<()> {
        let key = self.keys.stages_view();
        let mut pipe = redis::pipe();
        pipe.atomic().del(&key).ignore();
        for (channel, source, activity) in active {
            pipe.hset(&key, stage_field(channel, source), *activity).ignore();
        }
        pipe.hset(&key, SIGNED_LOADED, 0).ignore();
        let mut conn = self.conn.clone();
        pipe.query_async(&mut conn).await
    }

    /// The active activity of `(channel, source)`: `Some(None)` when none is, `None` when the
    /// view was never built (load it with [`UserViews::put_stages`]).
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub async fn stage(&self, channel: &str, source: &str) -> redis::RedisResult<Option<Option<i64>>> {
        let mut conn = self.conn.clone();
        let (activity, loaded): (Option<i64>, Option<i64>) = redis::cmd("HMGET")
            .arg(self.keys.stages_view())
            .arg(stage_field(channel, source))
            .arg(SIGNED_LOADED)
            .query_async(&mut conn)
            .await?;
        Ok(loaded.map(|_| activity))
    }

    /// Everything user-specific the raffle page shows, in one round trip: the account and
    /// credit views, whether the user signed in on `day`, and the live stock of `skus`.
    ///
    /// # Errors
    /// When Redis cannot be reached or a view is corrupt.
    pub async fn page(
        &self,
        user: &str,
        activity: ActivityId,
        skus: &[domain::ids::Sku],
        day: &str,
    ) -> redis::RedisResult<PageReads> {
        let signed = self.keys.view(user, "signed");
        let mut pipe = redis::pipe();
        pipe.get(self.account_key(user, activity))
            .get(self.keys.view(user, "credit"))
            .hexists(&signed, day)
            .hexists(&signed, SIGNED_LOADED);
        if !skus.is_empty() {
            pipe.cmd("MGET")
                .arg(skus.iter().map(|s| self.keys.sku_stock(*s)).collect::<Vec<_>>());
        }
        let mut conn = self.conn.clone();
        let (account, credit, on_day, loaded, stocks): PageRow = if skus.is_empty() {
            let (a, c, d, l): (Option<String>, Option<String>, bool, bool) = pipe.query_async(&mut conn).await?;
            (a, c, d, l, Vec::new())
        } else {
            pipe.query_async(&mut conn).await?
        };
        Ok(PageReads {
            account: account
                .map(|r| serde_json::from_str(&r).map_err(json_err))
                .transpose()?,
            credit: credit.map(|r| serde_json::from_str(&r).map_err(json_err)).transpose()?,
            signed: if on_day {
                Some(true)
            } else if loaded {
                Some(false)
            } else {
                None
            },
            sku_stocks: stocks,
        })
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

    /// Newest-first ids of the index `idx` (score = time ms) after the cursor `after`
    /// (`(timeMs, id)`), at most `first`, and whether more follow.
    async fn page_ids(
        &self,
        idx: String,
        first: usize,
        after: Option<(i64, &str)>,
    ) -> redis::RedisResult<(Vec<String>, bool)> {
        let mut conn = self.conn.clone();
        let max = after.map_or("+inf".to_owned(), |(t, _)| t.to_string());
        // Entries sharing the cursor's millisecond are re-read and filtered by id.
        let ids: Vec<(String, i64)> = redis::cmd("ZREVRANGEBYSCORE")
            .arg(idx)
            .arg(max)
            .arg("-inf")
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(0)
            .arg(first + 1 + 64)
            .query_async(&mut conn)
            .await?;
        let mut ids: Vec<String> = ids
            .into_iter()
            .filter(|(id, t)| after.is_none_or(|(at, aid)| *t < at || id.as_str() < aid))
            .map(|(id, _)| id)
            .take(first + 1)
            .collect();
        let has_next = ids.len() > first;
        ids.truncate(first);
        Ok((ids, has_next))
    }

    /// Newest-first page of a user's awards after the cursor `after` (`{timeMs}:{orderId}`).
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub async fn awards(&self, user: &str, first: usize, after: Option<(i64, &str)>) -> redis::RedisResult<AwardPage> {
        let mut conn = self.conn.clone();
        let (ids, has_next) = self.page_ids(self.keys.view(user, "awards_idx"), first, after).await?;
        let ids = &ids[..];
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
