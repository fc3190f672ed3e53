//! The connection pools: every connection runs READ COMMITTED, which the write paths rely on.

use sea_orm::{ConnectionTrait, Statement, TransactionTrait};

use crate::helpers::TestEnv;

/// `@@tx_isolation` seen inside a transaction opened the way the repositories open theirs.
async fn isolation_in_transaction(db: &sea_orm::DatabaseConnection) -> String {
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
