//! The connection pools: every connection runs READ COMMITTED, which the write paths rely on.

use sea_orm::{ConnectionTrait, Statement};

use crate::helpers::TestEnv;

/// `@@tx_isolation` seen inside a transaction opened the way the repositories open theirs.
async fn isolation_in_transaction(db: &persistence::Db) -> String {
    let tx = db.begin().await.unwrap();
    let row = tx
        .query_one(Statement::from_string(
            tx.get_database_backend(),
            "SELECT CAST(@@tx_isolation AS CHAR) AS level",
        ))
        .await
        .unwrap()
        .expect("one row");
    let level: String = row.try_get("", "level").unwrap();
    tx.commit().await.unwrap();
    level
}

#[tokio::test]
async fn every_pooled_connection_runs_read_committed() {
    let env = TestEnv::new().await;
    // More transactions at once than one connection can serve: several connections are opened.
    let mut all = vec![&env.db.config];
    all.extend(env.db.shards.iter());
    for db in all {
        let levels = futures::future::join_all((0..8).map(|_| isolation_in_transaction(db))).await;
        assert!(
            levels.iter().all(|l| l == "READ-COMMITTED"),
            "isolation levels seen: {levels:?}"
        );
    }
    env.cleanup().await;
}

/// A statement that runs past `statement_timeout` (1.5 s in the test pools) is interrupted by
/// the server, not waited for.
#[tokio::test]
async fn a_statement_running_past_the_statement_timeout_is_interrupted() {
    let env = TestEnv::new().await;
    let db = &env.db.shards[0];
    let started = std::time::Instant::now();
    let slept = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            "SELECT SLEEP(5) AS s",
        ))
        .await;
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(4), "waited {took:?}");
    // MariaDB either fails the statement (1969) or ends SLEEP early with 1.
    match slept {
        Err(e) => assert_eq!(persistence::mysql::db::mysql_error_number(&e), Some(1969), "{e}"),
        Ok(row) => {
            let s: i64 = row.expect("one row").try_get("", "s").unwrap();
            assert_eq!(s, 1, "SLEEP interrupted");
        }
    }
    env.cleanup().await;
}

/// The `host:port` of a `mysql://[user@]host:port/db` URL.
fn server_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.split_once('/').map_or(rest, |(server, _)| server);
    rest.rsplit_once('@').map_or(rest, |(_, server)| server).to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_stops_answering_fails_each_statement_within_the_deadline_and_the_pool_heals() {
    use std::time::{Duration, Instant};
    let mut env = TestEnv::new().await;
    let urls = env.urls();
    let server = server_of(&urls.config_url);
    let upstream = tokio::net::lookup_host(&server).await.unwrap().next().unwrap();
    let proxy = test_support::proxy::FaultProxy::start(upstream).await.unwrap();
    let through = |url: &str| url.replacen(&server, &proxy.addr().to_string(), 1);
    let db = persistence::Databases::connect(&persistence::DatabaseSettings {
        config_url: through(&urls.config_url),
        shard_urls: urls.shard_urls.iter().map(|u| through(u)).collect(),
        tables_per_shard: 4,
        max_connections: 2,
        connect_timeout: Duration::from_millis(500),
        lock_wait_timeout: Duration::from_secs(1),
        statement_timeout: Duration::from_secs(5),
        response_timeout: Duration::from_millis(300),
    })
    .await
    .expect("connect through the proxy");
    let shard = &db.shards[0];
    let select = || Statement::from_string(shard.get_database_backend(), "SELECT 1 AS one");
    shard.query_one(select()).await.expect("answers before the fault");
    // A transaction open when the database stops answering.
    let tx = shard.begin().await.unwrap();
    tx.query_one(select()).await.unwrap();

    proxy.blackhole();
    let started = Instant::now();
    let in_tx = tx
        .query_one(select())
        .await
        .expect_err("no answer inside the transaction");
    assert!(persistence::mysql::db::outcome_unknown(&in_tx), "{in_tx}");
    drop(tx);
    // More statements than connections: those with a connection wait the response deadline,
    // the others the acquire timeout (released connections do not answer their ping either).
    let answers = futures::future::join_all((0..6).map(|_| async {
        let t = Instant::now();
        (shard.query_one(select()).await, t.elapsed())
    }))
    .await;
    for (answer, took) in &answers {
        let e = answer.as_ref().expect_err("no answer during the blackhole");
        assert!(persistence::mysql::db::unreachable(e), "{e}");
        assert!(*took < Duration::from_millis(1_500), "a statement waited {took:?}: {e}");
    }
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());

    proxy.pass();
    let back = Instant::now();
    loop {
        match shard.query_one(select()).await {
            Ok(_) => break,
            Err(e) => assert!(back.elapsed() < Duration::from_secs(5), "the pool did not heal: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Both pool slots work again: two transactions at once.
    let (a, b) = (shard.begin().await.unwrap(), shard.begin().await.unwrap());
    a.query_one(select()).await.unwrap();
    b.query_one(select()).await.unwrap();
    a.commit().await.unwrap();
    b.commit().await.unwrap();
    env.cleanup().await;
}
