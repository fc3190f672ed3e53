//! Award stock counters in Redis (spec §4.6, §9 item 17).

use std::sync::Arc;

use domain::ports::{AwardStockCounter, StockTake};
use redis::AsyncCommands;

use crate::helpers::{TestEnv, award, strategy};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_takes_of_stock_100_succeed_exactly_100_times() {
    let env = TestEnv::new().await;
    let key = env.keys.award_stock(strategy(1), award(7));
    let mut conn = env.redis.clone();
    let _: () = conn.set(&key, 100).await.unwrap();
    let stock = Arc::new(env.stock());
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let stock = stock.clone();
            tokio::spawn(async move { stock.take(strategy(1), award(7), None).await.unwrap() })
        })
        .collect();
    let mut remaining = Vec::new();
    for t in tasks {
        if let StockTake::Taken { remaining: r } = t.await.unwrap() {
            remaining.push(r);
        }
    }
    remaining.sort_unstable();
    assert_eq!(remaining.len(), 100);
    assert_eq!(
        remaining,
        (0..100).collect::<Vec<i64>>(),
        "every unit sold once, exactly one zero signal"
    );
    let left: i64 = conn.get(&key).await.unwrap();
    assert_eq!(left, 0);
    let locks: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{key}_*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(locks.len(), 100);
    env.cleanup().await;
}

#[tokio::test]
async fn unit_locks_prevent_reselling_after_a_manual_reset() {
    let env = TestEnv::new().await;
    let key = env.keys.award_stock(strategy(2), award(9));
    let mut conn = env.redis.clone();
    let _: () = conn.set(&key, 2).await.unwrap();
    let stock = env.stock();
    assert_eq!(
        stock.take(strategy(2), award(9), None).await.unwrap(),
        StockTake::Taken { remaining: 1 }
    );
    assert_eq!(
        stock
            .take(strategy(2), award(9), Some(std::time::Duration::from_secs(60)))
            .await
            .unwrap(),
        StockTake::Taken { remaining: 0 }
    );
    let ttl: i64 = conn.pttl(format!("{key}_0")).await.unwrap();
    assert!(ttl > 0 && ttl <= 60_000, "lock TTL applied: {ttl}");
    assert_eq!(
        stock.take(strategy(2), award(9), None).await.unwrap(),
        StockTake::Exhausted
    );
    assert_eq!(
        conn.get::<_, i64>(&key).await.unwrap(),
        0,
        "a failed take resets the counter to 0, never negative"
    );
    // Someone restores the counter by hand: unit 0 is already sold, so it is not sold again.
    let _: () = conn.set(&key, 1).await.unwrap();
    assert_eq!(
        stock.take(strategy(2), award(9), None).await.unwrap(),
        StockTake::Exhausted
    );
    env.cleanup().await;
}

#[tokio::test]
async fn a_missing_counter_is_exhausted_and_is_not_created() {
    let env = TestEnv::new().await;
    let stock = env.stock();
    assert_eq!(
        stock.take(strategy(3), award(1), None).await.unwrap(),
        StockTake::Missing
    );
    stock.give_back(strategy(3), award(1)).await.unwrap();
    let mut conn = env.redis.clone();
    assert!(
        !conn
            .exists::<_, bool>(env.keys.award_stock(strategy(3), award(1)))
            .await
            .unwrap(),
        "arming can still set it from the surplus"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn a_given_back_unit_is_sold_again() {
    let env = TestEnv::new().await;
    let key = env.keys.award_stock(strategy(4), award(1));
    let mut conn = env.redis.clone();
    let _: () = conn.set(&key, 10).await.unwrap();
    let stock = env.stock();
    assert_eq!(
        stock.take(strategy(4), award(1), None).await.unwrap(),
        StockTake::Taken { remaining: 9 }
    );
    assert_eq!(
        stock.take(strategy(4), award(1), None).await.unwrap(),
        StockTake::Taken { remaining: 8 }
    );
    stock.give_back(strategy(4), award(1)).await.unwrap();
    assert_eq!(conn.get::<_, i64>(&key).await.unwrap(), 9);
    // Ten units in all can still be sold: 2 taken, 1 returned → 9 more.
    let mut sold = 0;
    while let StockTake::Taken { .. } = stock.take(strategy(4), award(1), None).await.unwrap() {
        sold += 1;
    }
    assert_eq!(sold, 9);
    env.cleanup().await;
}
