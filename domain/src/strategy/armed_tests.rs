//! Given/when/then tests of arming and drawing, over the reference configuration (spec §2.4).

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use super::*;

type PoolSummary = (usize, Vec<(i32, usize)>);
type Mutation = Box<dyn Fn(&mut StrategyConfig)>;
use crate::strategy::armory::tests::Seeded;
use crate::strategy::model::{AwardCatalogEntry, RuleTreeConfig, StrategyAwardConfig, StrategyConfig};
use crate::strategy::tree::tests::{MemStock, lock_tree, luck_tree};

fn catalog() -> Vec<AwardCatalogEntry> {
    (100..=109)
        .map(|id| AwardCatalogEntry {
            award_id: AwardId::new(id),
            award_key: if id == 101 {
                "user_credit_random".into()
            } else {
                "openai_use_count".into()
            },
            award_config: "1,100".into(),
            award_desc: format!("catalogue {id}"),
        })
        .collect()
}

fn award(id: i32, rate: Decimal, tree: &str, sort: i32) -> StrategyAwardConfig {
    StrategyAwardConfig {
        award_id: AwardId::new(id),
        award_title: format!("title {id}"),
        award_subtitle: None,
        award_count: 100,
        award_count_surplus: 100,
        award_rate: rate,
        rule_models: Some(tree.into()),
        sort,
    }
}

fn trees() -> Vec<RuleTreeConfig> {
    let mut lock3 = lock_tree("tree_lock_3", "3");
    lock3.lines[0].1 = "rule_luck_award".into(); // the reference data's typo, kept
    vec![
        lock_tree("tree_lock_1", "1"),
        lock_tree("tree_lock_2", "2"),
        lock3,
        luck_tree(),
    ]
}

/// Strategy 100006 as in the reference data.
pub fn strategy_100006() -> StrategyConfig {
    let mut awards = vec![award(101, dec!(0.7900), "tree_luck_award", 1)];
    for (id, tree) in [
        (102, "tree_luck_award"),
        (103, "tree_luck_award"),
        (104, "tree_luck_award"),
        (105, "tree_lock_3"),
        (106, "tree_lock_2"),
        (107, "tree_lock_1"),
        (108, "tree_luck_award"),
    ] {
        awards.push(award(id, dec!(0.0300), tree, id - 100));
    }
    StrategyConfig {
        strategy_id: StrategyId::new(100006),
        strategy_desc: "rule tree".into(),
        rule_models: Some("rule_blacklist,rule_weight".into()),
        awards,
        rules: vec![
            ("rule_weight".into(), "10:102,103 70:106,107 1000:104,105".into()),
            ("rule_blacklist".into(), "101:user001,user002,user003".into()),
        ],
        trees: trees(),
        catalog: catalog(),
    }
}

fn input(user: &str) -> RaffleInput<'_> {
    RaffleInput {
        user_id: user,
        total_used: 0,
        day_partake_count: 0,
        blacklist_enabled: false,
        lock_ttl: None,
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

#[test]
fn arming_100006_builds_the_default_pool_and_one_pool_per_weight_group() {
    let s = ArmedStrategy::arm(strategy_100006(), &Seeded::new(1)).unwrap();
    let pools: BTreeMap<&str, PoolSummary> = s
        .pools()
        .map(|p| {
            (
                p.key(),
                (
                    p.size(),
                    p.multiplicities().into_iter().map(|(a, n)| (a.get(), n)).collect(),
                ),
            )
        })
        .collect();
    assert_eq!(pools["100006"].0, 100);
    assert_eq!(
        pools["100006"].1,
        vec![
            (101, 79),
            (102, 3),
            (103, 3),
            (104, 3),
            (105, 3),
            (106, 3),
            (107, 3),
            (108, 3)
        ]
    );
    assert_eq!(pools["100006_10:102,103"], (6, vec![(102, 3), (103, 3)]));
    assert_eq!(pools["100006_70:106,107"], (6, vec![(106, 3), (107, 3)]));
    assert_eq!(pools["100006_1000:104,105"], (6, vec![(104, 3), (105, 3)]));
    assert_eq!(s.rule_models(), vec!["rule_blacklist", "rule_weight"]);
}

#[test]
fn arming_without_a_configured_weight_rule_fails_with_err_biz_001() {
    let mut cfg = strategy_100006();
    cfg.rules.retain(|(m, _)| m != "rule_weight");
    let err = ArmedStrategy::arm(cfg, &Seeded::new(1)).unwrap_err();
    assert_eq!(crate::error::HasErrorCode::error_code(&err).code(), "ERR_BIZ_001");
}

#[test]
fn arming_rejects_dangling_configuration_with_err_config_002() {
    let cases: Vec<(Mutation, &str)> = vec![
        (
            Box::new(|c| c.awards[0].rule_models = Some("tree_nope".into())),
            "tree_nope",
        ),
        (Box::new(|c| c.rule_models = Some("rule_magic".into())), "rule_magic"),
        (Box::new(|c| c.catalog.retain(|a| a.award_id.get() != 104)), "catalogue"),
        (Box::new(|c| c.rules[0].1 = "10:102,999".into()), "999"),
        (Box::new(|c| c.rules[0].1 = "4000-102".into()), "invalid input format"),
        (Box::new(|c| c.awards.clear()), "no strategy_award"),
    ];
    for (mutate, needle) in cases {
        let mut cfg = strategy_100006();
        mutate(&mut cfg);
        let err = ArmedStrategy::arm(cfg, &Seeded::new(1)).unwrap_err();
        assert_eq!(crate::error::HasErrorCode::error_code(&err).code(), "ERR_CONFIG_002");
        assert!(err.to_string().contains(needle), "{err} should mention {needle}");
    }
}

#[test]
fn blacklisted_user_gets_the_blacklist_award_without_touching_stock_when_the_switch_is_open() {
    let s = ArmedStrategy::arm(strategy_100006(), &Seeded::new(1)).unwrap();
    let stock = MemStock::with(&[(101, 10)]);
    let mut i = input("user001");
    i.blacklist_enabled = true;
    let r = block_on(s.raffle(&i, &Seeded::new(2), &stock)).unwrap();
    assert_eq!(
        (r.award_id.get(), r.award_config.as_deref(), &r.decision),
        (101, Some("0.01,1"), &Decision::Blacklist)
    );
    assert_eq!(r.taken, None);
    assert_eq!(stock.left(101), 10);
    // Switch closed (the default): user001 draws normally.
    i.blacklist_enabled = false;
    let r = block_on(s.raffle(&i, &Seeded::new(2), &stock)).unwrap();
    assert_eq!(r.decision, Decision::Default);
}

#[test]
fn weight_score_selects_the_largest_group_not_above_it_and_still_takes_stock() {
    let s = ArmedStrategy::arm(strategy_100006(), &Seeded::new(1)).unwrap();
    let stock = MemStock::with(&[(106, 50), (107, 50), (102, 50), (103, 50)]);
    let rng = Seeded::new(3);
    for _ in 0..50 {
        let mut i = input("u");
        i.total_used = 75;
        let r = block_on(s.raffle(&i, &rng, &stock)).unwrap();
        assert_eq!(r.decision, Decision::Weight("70:106,107".into()));
        assert!(
            [106, 107].contains(&r.award_id.get()),
            "locks are skipped for weight draws: {}",
            r.award_id
        );
        assert_eq!(r.taken.map(|t| t.award_id), Some(r.award_id));
    }
    assert_eq!(stock.left(106) + stock.left(107), 50);
    let mut i = input("u");
    i.total_used = 9;
    assert_eq!(
        block_on(s.raffle(&i, &rng, &stock)).unwrap().decision,
        Decision::Default
    );
}

#[test]
fn locked_awards_fall_to_the_luck_award_on_the_first_draw_of_the_day() {
    let s = ArmedStrategy::arm(strategy_100006(), &Seeded::new(1)).unwrap();
    let stock = MemStock::with(&(101..=108).map(|a| (a, 1000)).collect::<Vec<_>>());
    let rng = Seeded::new(4);
    for _ in 0..500 {
        let r = block_on(s.raffle(&input("u"), &rng, &stock)).unwrap();
        assert!(
            ![105, 106, 107].contains(&r.award_id.get()),
            "locked award {} won with 0 draws today",
            r.award_id
        );
    }
}

#[test]
fn a_strategy_whose_luck_award_is_outside_it_titles_it_from_the_catalogue() {
    // Strategy 100004: one award (109, rate 1, stock 1) with tree_luck_award → 101.
    let cfg = StrategyConfig {
        strategy_id: StrategyId::new(100004),
        strategy_desc: "random".into(),
        rule_models: None,
        awards: vec![StrategyAwardConfig {
            sort: 9,
            ..award(109, dec!(1.0000), "tree_luck_award", 9)
        }],
        rules: vec![],
        trees: vec![luck_tree()],
        catalog: catalog(),
    };
    let s = ArmedStrategy::arm(cfg, &Seeded::new(1)).unwrap();
    let stock = MemStock::with(&[(109, 1)]);
    let first = block_on(s.raffle(&input("system"), &Seeded::new(1), &stock)).unwrap();
    assert_eq!((first.award_id.get(), first.sort), (109, Some(9)));
    assert_eq!(
        first.taken.map(|t| t.remaining),
        Some(0),
        "the last unit reports zero remaining"
    );
    let second = block_on(s.raffle(&input("system"), &Seeded::new(1), &stock)).unwrap();
    assert_eq!(
        (second.award_id.get(), second.award_title.as_str(), second.sort),
        (101, "catalogue 101", None)
    );
}

#[test]
fn draws_follow_the_configured_rates() {
    // Chi-square over 100 000 default-pool draws of 100006 (8 categories, 7 dof; p=0.001 → 24.32).
    let s = ArmedStrategy::arm(strategy_100006(), &Seeded::new(9)).unwrap();
    let pool = s.pools().next().unwrap();
    let rng = Seeded::new(10);
    let n = 100_000usize;
    let mut seen: BTreeMap<i32, usize> = BTreeMap::new();
    for _ in 0..n {
        *seen.entry(pool.draw(&rng).get()).or_default() += 1;
    }
    let expected = |a: i32| if a == 101 { 0.79 } else { 0.03 } * n as f64;
    let chi2: f64 = seen
        .iter()
        .map(|(a, o)| (*o as f64 - expected(*a)).powi(2) / expected(*a))
        .sum();
    assert_eq!(seen.len(), 8);
    assert!(chi2 < 24.32, "chi-square {chi2} too large: {seen:?}");
}
