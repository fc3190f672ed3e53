//! A Redis key prefix per test, and deleting every key under it.

use anyhow::Context;
use redis::aio::{ConnectionLike, MultiplexedConnection};

use crate::services::{REDIS_URL_ENV, START_REDIS, redis_url};

/// A fresh key prefix `bmt_<pid>_<nanos>_<n>:`.
pub fn unique_prefix() -> String {
    format!("{}:", crate::unique_name())
}

/// Connects to the test Redis ([`redis_url`]); the error says which server is missing and how
/// to start it.
pub async fn connect() -> anyhow::Result<MultiplexedConnection> {
    connect_url(&redis_url()).await
}

/// Connects to the Redis at `url` and checks that it answers; the error says which server is
/// missing and how to start it.
pub async fn connect_url(url: &str) -> anyhow::Result<MultiplexedConnection> {
    let failed = |error: redis::RedisError| {
        anyhow::anyhow!(
            "the tests need a real Redis, but {url} is not reachable ({error}). Start the local one \
             ({START_REDIS}) or set {REDIS_URL_ENV}"
        )
    };
    let client = redis::Client::open(url).map_err(failed)?;
    let mut conn = client.get_multiplexed_async_connection().await.map_err(failed)?;
    let _: String = redis::cmd("PING").query_async(&mut conn).await.map_err(failed)?;
    Ok(conn)
}

/// Every key starting with `prefix`, found with `SCAN` (never `KEYS`).
pub async fn keys_with_prefix<C: ConnectionLike + Send>(conn: &mut C, prefix: &str) -> anyhow::Result<Vec<String>> {
    let pattern = format!("{}*", escape_glob(prefix));
    let mut cursor: u64 = 0;
    let mut keys = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .with_context(|| format!("SCAN {pattern}"))?;
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort();
    keys.dedup();
    Ok(keys)
}

/// Deletes every key starting with `prefix` (SCAN + DEL); returns how many there were.
pub async fn delete_prefix<C: ConnectionLike + Send>(conn: &mut C, prefix: &str) -> anyhow::Result<usize> {
    let keys = keys_with_prefix(conn, prefix).await?;
    for chunk in keys.chunks(500) {
        let _: () = redis::cmd("DEL")
            .arg(chunk)
            .query_async(conn)
            .await
            .with_context(|| format!("DEL keys under {prefix}"))?;
    }
    Ok(keys.len())
}

/// Escapes the glob characters of `text` for a `MATCH` pattern.
fn escape_glob(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// A Redis server of one test (`redis-server` on a free loopback port, no persistence), for
/// tests that count its clients or must not disturb the shared one. Stopped when dropped.
pub struct PrivateRedis {
    /// `redis://127.0.0.1:<port>`.
    pub url: String,
    child: std::process::Child,
}

impl PrivateRedis {
    /// Starts `redis-server` and waits (up to 10 s) until it answers.
    ///
    /// # Errors
    /// When `redis-server` is not installed or does not come up.
    pub async fn start() -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = std::process::Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .context("starting redis-server (install Redis 7: apt install redis-server)")?;
        let server = Self {
            url: format!("redis://127.0.0.1:{port}"),
            child,
        };
        for _ in 0..100 {
            if connect_url(&server.url).await.is_ok() {
                return Ok(server);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        anyhow::bail!("redis-server on port {port} did not answer within 10 s")
    }

    /// Clients connected now (`INFO clients`), the asking connection included.
    ///
    /// # Errors
    /// When the server does not answer.
    pub async fn connected_clients(&self) -> anyhow::Result<u64> {
        let mut conn = connect_url(&self.url).await?;
        let info: String = redis::cmd("INFO").arg("clients").query_async(&mut conn).await?;
        info.lines()
            .find_map(|l| l.strip_prefix("connected_clients:"))
            .and_then(|v| v.trim().parse().ok())
            .context("INFO clients without connected_clients")
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_escaped_for_match() {
        assert_eq!(escape_glob("bmt_1_2_3:"), "bmt_1_2_3:");
        assert_eq!(escape_glob("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
