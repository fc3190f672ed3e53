//! The benchmark's own world: fresh databases and Redis prefix, the real application started
//! in-process, activity 100301 armed with ample award stock, and users with a large quota.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use lapin::options::QueueDeleteOptions;
use persistence::rabbit::Topology;
use persistence::{Route, ShardRouter};
use sea_orm::sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sea_orm::sqlx::{self, MySql, QueryBuilder};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use api::settings::Settings;
use api::startup::Application;
use domain::ids::ActivityId;

/// The seeded activity the benchmark draws in.
pub(crate) const ACTIVITY_ID: ActivityId = ActivityId::new(100_301);
/// Total, day and month quota given to every user: never the limit during a run.
const QUOTA: i32 = 1_000_000;
/// Stock (count and surplus) given to every award of the strategy before arming, so no award
/// sells out and every draw takes the normal path.
const AWARD_STOCK: i32 = 10_000_000;
/// Rows per multi-row insert when creating the accounts.
const INSERT_BATCH: usize = 500;

/// A drawing user and where its rows live.
#[derive(Debug, Clone)]
pub(crate) struct BenchUser {
    /// `bench-user-<i>`.
    pub(crate) id: String,
    /// Shard and split table.
    pub(crate) route: Route,
    /// The JSON body of its `draw` request (the user draws for itself: no `userId`).
    pub(crate) http_body: String,
    /// Its bearer token (role `user`), as a client of the raffle page sends it.
    pub(crate) token: String,
}

/// The benchmark's databases, Redis prefix and running application.
pub(crate) struct BenchEnv {
    /// `http://127.0.0.1:<port>`.
    pub(crate) base_url: String,
    /// The users, in id order.
    pub(crate) users: Vec<BenchUser>,
    /// The databases, prefixes and router.
    pub(crate) world: World,
}

/// `mysql://user@host:port/db?opts` → (`mysql://user@host:port`, `?opts`).
fn split_server(url: &str) -> anyhow::Result<(String, String)> {
    let scheme_end = url
        .find("://")
        .with_context(|| format!("database URL {url:?} has no scheme://"))?;
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let server = format!("{}{}", &url[..scheme_end + 3], &rest[..authority_end]);
    let query = rest[authority_end..].find('?').map_or(String::new(), |i| {
        let tail = &rest[authority_end + i..];
        tail.split('#').next().unwrap_or_default().to_owned()
    });
    Ok((server, query))
}

/// Pool options whose connections run `READ COMMITTED`, as the application's
/// (`persistence::SESSION_ISOLATION`, set once per connection).
pub(crate) fn read_committed() -> MySqlPoolOptions {
    MySqlPoolOptions::new().after_connect(|conn, _| {
        Box::pin(async move {
            sqlx::query(persistence::SESSION_ISOLATION).execute(&mut *conn).await?;
            Ok(())
        })
    })
}

async fn pool(url: &str, max: u32, timeout: Duration) -> anyhow::Result<MySqlPool> {
    MySqlPoolOptions::new()
        .max_connections(max)
        .min_connections(0)
        .acquire_timeout(timeout)
        .connect(url)
        .await
        .with_context(|| format!("connecting to {url}"))
}

/// Deletes every Redis key under `prefix` (SCAN + UNLINK).
async fn delete_keys(redis_url: &str, prefix: &str) -> anyhow::Result<u64> {
    let client = redis::Client::open(redis_url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut cursor: u64 = 0;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(2_000)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            let n: u64 = redis::cmd("UNLINK").arg(&keys).query_async(&mut conn).await?;
            deleted += n;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

/// The benchmark's own databases (created and migrated), Redis prefix and queue prefix; the
/// settings carry those names. Shared by every benchmark.
pub(crate) struct World {
    /// The settings with the benchmark's names (relay and consumers off in the application:
    /// a benchmark that measures them runs them itself).
    pub(crate) settings: Settings,
    /// Pool on the benchmark config database.
    pub(crate) config: MySqlPool,
    /// The shard router of the settings.
    pub(crate) router: ShardRouter,
}

impl World {
    /// Creates a world, runs `measure` in it, and drops the world afterwards (kept with
    /// `keep`), whether `measure` succeeded or not.
    pub(crate) async fn run_in<T>(
        base: &Settings,
        keep: bool,
        measure: impl AsyncFnOnce(&World) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let world = Self::create(base).await?;
        let outcome = measure(&world).await;
        if keep {
            eprintln!("{}", world.kept_message());
        } else if let Err(e) = world.destroy().await {
            eprintln!("bench: cleanup failed: {e:#}");
        }
        outcome
    }

    /// Drops leftovers of an earlier run with the same pid, creates and migrates the
    /// databases and clears the Redis prefix.
    pub(crate) async fn create(base: &Settings) -> anyhow::Result<Self> {
        let pid = std::process::id();
        let name = format!("bmbench_{pid}");
        let (server, query) = split_server(&base.database.config_url)?;
        let mut settings = base.clone();
        settings.http.host = "127.0.0.1".into();
        settings.http.port = 0;
        settings.database.config_url = format!("{server}/{name}_cfg{query}");
        settings.database.shard_urls = (1..=base.database.shard_urls.len())
            .map(|i| format!("{server}/{name}_{i:02}{query}"))
            .collect();
        settings.redis.key_prefix = format!("bmbench:{pid}:");
        settings.rabbitmq.queue_prefix = format!("bmbench.{pid}.");
        settings.relay.enabled = false;
        settings.consumers.enabled = false;
        // A secret of this run: the benchmark signs its users' tokens with it.
        settings.auth.secret = format!("bench-secret-{pid}-{}", "x".repeat(32));
        let router = ShardRouter::new(settings.database.shard_urls.len(), settings.database.tables_per_shard)?;
        eprintln!(
            "bench: creating databases {name}_cfg + {} shards on {server}, Redis prefix {}, queue prefix {}",
            settings.database.shard_urls.len(),
            settings.redis.key_prefix,
            settings.rabbitmq.queue_prefix
        );
        for url in Self::urls(&settings) {
            migration::drop_database(&url).await?;
        }
        delete_keys(&settings.redis.url, &settings.redis.key_prefix).await?;
        migration::migrate_all(&settings.database.config_url, &settings.database.shard_urls)
            .await
            .context("migrating the benchmark databases")?;
        let config = pool(&settings.database.config_url, 2, Self::timeout(&settings)).await?;
        Ok(Self {
            settings,
            config,
            router,
        })
    }

    fn timeout(settings: &Settings) -> Duration {
        Duration::from_millis(settings.database.connect_timeout_ms.max(1_000))
    }

    /// One pool of at most `max` connections per shard.
    pub(crate) async fn shard_pools(&self, max: u32) -> anyhow::Result<Vec<MySqlPool>> {
        let mut shards = Vec::new();
        for url in &self.settings.database.shard_urls {
            shards.push(pool(url, max, Self::timeout(&self.settings)).await?);
        }
        Ok(shards)
    }

    /// The config URL followed by the shard URLs.
    fn urls(settings: &Settings) -> Vec<String> {
        std::iter::once(settings.database.config_url.clone())
            .chain(settings.database.shard_urls.iter().cloned())
            .collect()
    }

    /// `bench-user-1` … `bench-user-<n>` with their routes, tokens and `draw` request bodies.
    pub(crate) fn users(&self, n: usize) -> anyhow::Result<Vec<BenchUser>> {
        (1..=n)
            .map(|i| {
                let id = format!("bench-user-{i}");
                let query = format!(r#"mutation {{ draw(activityId: {ACTIVITY_ID}) {{ awardId orderId }} }}"#);
                Ok(BenchUser {
                    route: self.router.route(&id),
                    http_body: json!({ "query": query }).to_string(),
                    token: api::auth::issue(&self.settings.auth, &id, api::auth::Role::User)?,
                    id,
                })
            })
            .collect()
    }

    /// An operator token for this run's application.
    pub(crate) fn admin_token(&self) -> anyhow::Result<String> {
        api::auth::issue(&self.settings.auth, "bench-admin", api::auth::Role::Admin)
    }

    /// Gives every user an account with ample quota in activity 100301.
    pub(crate) async fn give_quota(&self, users: &[BenchUser]) -> anyhow::Result<()> {
        let shards = self.shard_pools(4).await?;
        let r = Self::insert_accounts(&shards, users).await;
        for p in &shards {
            p.close().await;
        }
        r?;
        eprintln!("bench: {}", Self::spread(&self.router, users));
        Ok(())
    }

    /// What `--keep` left behind.
    pub(crate) fn kept_message(&self) -> String {
        format!(
            "bench: kept databases {}, Redis keys {}* and queues {}*",
            Self::urls(&self.settings).join(", "),
            self.settings.redis.key_prefix,
            self.settings.rabbitmq.queue_prefix
        )
    }

    /// Closes the pool, drops the databases, deletes the Redis keys and the queues.
    pub(crate) async fn destroy(self) -> anyhow::Result<()> {
        self.config.close().await;
        for url in Self::urls(&self.settings) {
            migration::drop_database(&url).await?;
        }
        let n = delete_keys(&self.settings.redis.url, &self.settings.redis.key_prefix).await?;
        let topology = Topology::new(self.settings.rabbitmq.queue_prefix.clone());
        let conn = persistence::rabbit::connect(&self.settings.rabbitmq.url).await?;
        let ch = conn.create_channel().await?;
        for topic in domain::outbox::TOPICS {
            for q in topology.queues_of(topic) {
                ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                    .await?;
            }
        }
        let _ = conn.close(0, "bench done".into()).await;
        eprintln!("bench: dropped the benchmark databases, queues and {n} Redis keys");
        Ok(())
    }

    /// Inserts each user's account on its routed shard, in multi-row batches.
    async fn insert_accounts(shards: &[MySqlPool], users: &[BenchUser]) -> anyhow::Result<()> {
        for (db, pool) in shards.iter().enumerate() {
            let mine: Vec<&BenchUser> = users.iter().filter(|u| u.route.db == db).collect();
            for chunk in mine.chunks(INSERT_BATCH) {
                let mut q: QueryBuilder<'_, MySql> = QueryBuilder::new(
                    "INSERT INTO raffle_activity_account (user_id, activity_id, total_count, total_count_surplus, \
                     day_count, day_count_surplus, month_count, month_count_surplus) ",
                );
                q.push_values(chunk, |mut row, u| {
                    row.push_bind(u.id.as_str()).push_bind(ACTIVITY_ID.get());
                    for _ in 0..6 {
                        row.push_bind(QUOTA);
                    }
                });
                q.build().execute(pool).await.context("inserting accounts")?;
            }
        }
        Ok(())
    }

    /// "2000 users over 2 shards × 4 tables: …".
    fn spread(router: &ShardRouter, users: &[BenchUser]) -> String {
        let mut per: BTreeMap<(usize, usize), usize> = BTreeMap::new();
        for u in users {
            *per.entry((u.route.db, u.route.table)).or_default() += 1;
        }
        let cells: Vec<String> = per
            .iter()
            .map(|((db, t), n)| format!("{:02}/_{t:03}={n}", db + 1))
            .collect();
        format!(
            "{} users over {} shards × {} tables ({} of {} routes used): {}",
            users.len(),
            router.db_count(),
            router.tb_count(),
            per.len(),
            router.db_count() * router.tb_count(),
            cells.join(" ")
        )
    }
}

impl BenchEnv {
    /// Creates and migrates the databases, raises the award stock, gives `users` users their
    /// quota, starts the application on a free port and arms the activity over GraphQL.
    /// Returns the environment and the server task.
    pub(crate) async fn create(
        base: &Settings,
        users: usize,
    ) -> anyhow::Result<(Self, JoinHandle<anyhow::Result<()>>)> {
        let world = World::create(base).await?;
        let strategy_id: i64 = sqlx::query_scalar("SELECT strategy_id FROM raffle_activity WHERE activity_id = ?")
            .bind(ACTIVITY_ID.get())
            .fetch_one(&world.config)
            .await
            .context("activity 100301 is not seeded")?;
        sqlx::query("UPDATE strategy_award SET award_count = ?, award_count_surplus = ? WHERE strategy_id = ?")
            .bind(AWARD_STOCK)
            .bind(AWARD_STOCK)
            .bind(strategy_id)
            .execute(&world.config)
            .await?;
        let users = world.users(users)?;
        world.give_quota(&users).await?;

        let app = Application::build(world.settings.clone())
            .await
            .context("starting the application")?;
        let base_url = format!("http://127.0.0.1:{}", app.port());
        let server = tokio::spawn(app.run_until_stopped());
        let env = Self { world, base_url, users };
        env.arm().await?;
        Ok((env, server))
    }

    /// `mutation { armActivity(activityId: 100301) }` over HTTP.
    async fn arm(&self) -> anyhow::Result<()> {
        let body: Value = reqwest::Client::new()
            .post(format!("{}/graphql", self.base_url))
            .bearer_auth(self.world.admin_token()?)
            .json(&json!({ "query": format!("mutation {{ armActivity(activityId: {ACTIVITY_ID}) }}") }))
            .send()
            .await
            .context("POST /graphql armActivity")?
            .json()
            .await?;
        if body.pointer("/data/armActivity") != Some(&Value::Bool(true)) {
            anyhow::bail!("arming activity {ACTIVITY_ID} failed: {body}");
        }
        Ok(())
    }

    /// What `--keep` left behind.
    pub(crate) fn kept_message(&self) -> String {
        self.world.kept_message()
    }

    /// Drops the databases, Redis keys and queues.
    pub(crate) async fn destroy(self) -> anyhow::Result<()> {
        self.world.destroy().await
    }
}

#[cfg(test)]
mod tests {
    use super::split_server;

    #[test]
    fn the_server_url_is_the_config_url_without_its_database() {
        assert_eq!(
            split_server("mysql://root@127.0.0.1:3306/big_market").ok(),
            Some(("mysql://root@127.0.0.1:3306".to_owned(), String::new()))
        );
        assert_eq!(
            split_server("mysql://u:p@db:3307/x?ssl-mode=disabled").ok(),
            Some(("mysql://u:p@db:3307".to_owned(), "?ssl-mode=disabled".to_owned()))
        );
        assert!(split_server("127.0.0.1/big_market").is_err());
    }
}
