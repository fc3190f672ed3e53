//! Arming strategies from the migrated reference data (spec §9 items 3–8).

use std::collections::{BTreeMap, HashMap};

use domain::error::HasErrorCode;
use domain::ports::RandomSource;
use persistence::OsRandom;
use redis::AsyncCommands;
use sea_orm::ConnectionTrait;

use crate::helpers::{TestEnv, award, strategy};

/// Reads a pool from Redis: (stored size, multiplicity per award).
async fn stored_pool(env: &TestEnv, key: &str) -> (usize, BTreeMap<i32, usize>) {
    let mut conn = env.redis.clone();
    let size: usize = conn.get(env.keys.rate_range(key)).await.unwrap();
    let table: HashMap<usize, i32> = conn.hgetall(env.keys.rate_table(key)).await.unwrap();
    assert_eq!(table.len(), size, "{key}: hash has fields 0..size");
    assert!(
        (0..size).all(|i| table.contains_key(&i)),
        "{key}: fields are exactly 0..size-1"
    );
    let mut m = BTreeMap::new();
    for award in table.values() {
        *m.entry(*award).or_insert(0) += 1;
    }
    (size, m)
}

fn counts(pairs: &[(i32, usize)]) -> BTreeMap<i32, usize> {
    pairs.iter().copied().collect()
}

#[tokio::test]
async fn golden_rate_tables_of_all_six_reference_strategies() {
    let env = TestEnv::new().await;
    let svc = env.strategy_service();
    for id in 100001..=100006 {
        svc.arm(strategy(id)).await.unwrap_or_else(|e| panic!("arm {id}: {e}"));
    }
    let expect = [
        (
            "100001",
            10_000,
            counts(&[
                (101, 3000),
                (102, 2000),
                (103, 2000),
                (104, 1000),
                (105, 1000),
                (106, 500),
                (107, 400),
                (108, 99),
                (109, 1),
            ]),
        ),
        (
            "100001_60:102,103,104,105",
            6,
            counts(&[(102, 2), (103, 2), (104, 1), (105, 1)]),
        ),
        ("100001_200:106,107", 9, counts(&[(106, 5), (107, 4)])),
        ("100001_1000:105", 1, counts(&[(105, 1)])),
        ("100002", 61, counts(&[(101, 50), (102, 10), (106, 1)])),
        ("100003", 500, counts(&[(107, 400), (108, 99), (109, 1)])),
        ("100004", 1, counts(&[(109, 1)])),
        (
            "100005",
            121,
            counts(&[(101, 30), (102, 30), (103, 30), (104, 30), (105, 1)]),
        ),
        (
            "100006",
            100,
            counts(&[
                (101, 79),
                (102, 3),
                (103, 3),
                (104, 3),
                (105, 3),
                (106, 3),
                (107, 3),
                (108, 3),
            ]),
        ),
        ("100006_10:102,103", 6, counts(&[(102, 3), (103, 3)])),
        ("100006_70:106,107", 6, counts(&[(106, 3), (107, 3)])),
        ("100006_1000:104,105", 6, counts(&[(104, 3), (105, 3)])),
    ];
    for (key, size, multiplicities) in expect {
        assert_eq!(stored_pool(&env, key).await, (size, multiplicities), "pool {key}");
    }
    env.cleanup().await;
}

#[tokio::test]
async fn arming_sets_stock_from_the_surplus_and_never_overwrites_a_live_counter() {
    let env = TestEnv::new().await;
    let svc = env.strategy_service();
    svc.arm(strategy(100006)).await.unwrap();
    let mut conn = env.redis.clone();
    let key = env.keys.award_stock(strategy(100006), award(102));
    assert_eq!(
        conn.get::<_, i64>(&key).await.unwrap(),
        15,
        "award 102 surplus is 15 of 100 in the reference data"
    );
    let _: () = conn.set(&key, 3).await.unwrap();
    svc.arm(strategy(100006)).await.unwrap();
    assert_eq!(
        conn.get::<_, i64>(&key).await.unwrap(),
        3,
        "re-arming keeps the live counter"
    );
    let view = svc.view(strategy(100006)).await.unwrap();
    let a102 = view.awards.iter().find(|a| a.award_id == award(102)).unwrap();
    assert_eq!(
        (a102.award_count, a102.award_count_surplus),
        (100, 3),
        "the view shows live stock"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn configuration_errors_carry_their_codes() {
    let env = TestEnv::new().await;
    let svc = env.strategy_service();
    let code = |e: domain::strategy::StrategyError| e.error_code().code();
    assert_eq!(code(svc.arm(strategy(999_999)).await.unwrap_err()), "0002");
    assert_eq!(
        code(svc.raffle(strategy(100006), &input()).await.unwrap_err()),
        "ERR_BIZ_002"
    );
    env.db
        .config
        .execute_unprepared("DELETE FROM strategy_rule WHERE strategy_id = 100006 AND rule_model = 'rule_weight'")
        .await
        .unwrap();
    assert_eq!(code(svc.arm(strategy(100006)).await.unwrap_err()), "ERR_BIZ_001");
    env.db
        .config
        .execute_unprepared(
            "UPDATE strategy_award SET rule_models = 'tree_missing' WHERE strategy_id = 100005 AND award_id = 101",
        )
        .await
        .unwrap();
    let err = svc.arm(strategy(100005)).await.unwrap_err();
    assert!(err.to_string().contains("tree_missing"), "{err}");
    assert_eq!(code(err), "ERR_CONFIG_002");
    env.cleanup().await;
}

fn input() -> domain::strategy::RaffleInput<'static> {
    domain::strategy::RaffleInput {
        user_id: "system",
        total_used: 0,
        day_partake_count: 0,
        blacklist_enabled: false,
        lock_ttl: None,
    }
}

#[tokio::test]
async fn another_instance_draws_from_a_strategy_armed_elsewhere() {
    let env = TestEnv::new().await;
    env.strategy_service().arm(strategy(100004)).await.unwrap();
    let other = env.strategy_service();
    let award = other.raffle(strategy(100004), &input()).await.unwrap();
    assert_eq!(
        (award.award_id.get(), award.sort),
        (109, Some(9)),
        "the single unit of 109 is won first"
    );
    let award = other.raffle(strategy(100004), &input()).await.unwrap();
    assert_eq!(
        (award.award_id.get(), award.sort),
        (101, None),
        "then the luck award, titled from the catalogue"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn a_hundred_thousand_draws_of_100006_follow_the_configured_rates() {
    let env = TestEnv::new().await;
    let svc = env.strategy_service();
    let armed = svc.arm(strategy(100006)).await.unwrap();
    let pool = armed.pools().next().unwrap();
    assert_eq!(
        stored_pool(&env, "100006").await.1,
        pool.multiplicities().into_iter().map(|(a, n)| (a.get(), n)).collect(),
        "Redis holds the in-process table"
    );
    let rates: BTreeMap<i32, f64> = armed
        .awards()
        .iter()
        .map(|a| (a.award_id.get(), a.award_rate.to_string().parse().unwrap()))
        .collect();
    let total: f64 = rates.values().sum();
    let n = 100_000;
    let sample = || {
        let mut seen: BTreeMap<i32, usize> = BTreeMap::new();
        for _ in 0..n {
            *seen.entry(pool.draw(&OsRandom).get()).or_default() += 1;
        }
        let chi2: f64 = rates
            .iter()
            .map(|(a, r)| {
                let e = n as f64 * r / total;
                let o = *seen.get(a).unwrap_or(&0) as f64;
                (o - e).powi(2) / e
            })
            .sum();
        (chi2, seen)
    };
    // 8 awards → 7 degrees of freedom; 24.32 is the 0.999 quantile (a false alarm 1 in 1000).
    // A biased table fails every sample; a fair one fails two independent samples in a row
    // once in a million runs.
    let (chi2, seen) = sample();
    if chi2 >= 24.32 {
        let (again, seen_again) = sample();
        assert!(
            again < 24.32,
            "chi-square {chi2:.2} over {seen:?}, then {again:.2} over {seen_again:?}"
        );
    }
    assert!(OsRandom.below(1) == 0);
    env.cleanup().await;
}
