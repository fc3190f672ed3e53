//! Config database, migration 2: the reference rows of the original `big_market` dump.
//!
//! Owns the seed data: strategies 100001–100006, awards 100–109, their strategy awards and rules,
//! the four rule trees, activity 100301 with its quota packages and SKUs, and the sign-in
//! rebates. Every column of the dump's rows is reproduced except the surrogate `id` (left to
//! `AUTO_INCREMENT`) and the audit timestamps `create_time` / `update_time` (left to their
//! defaults; the dump even holds `0000-00-00` creation times).
//!
//! Several config tables have no unique key, so each row is inserted with
//! `INSERT … SELECT … FROM DUAL WHERE NOT EXISTS (…)` on its natural key: a database created from
//! the dump keeps its rows and gets no duplicates, and rows changed since (stock surplus, …) are
//! not touched.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::TransactionTrait;

use crate::support::Cell::{I, Null, T};
use crate::support::SeedTable;

/// Inserts the reference rows that are missing.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let txn = manager.get_connection().begin().await?;
        for seed in SEED {
            let mut inserted = 0;
            for statement in seed.statements()? {
                inserted += txn.execute(statement).await?.rows_affected();
            }
            tracing::info!(table = seed.table, inserted, seeded = seed.rows.len(), "reference rows");
        }
        txn.commit().await
    }

    /// Keeps the rows: they may predate this migration (a database loaded from the dump), and
    /// rolling back the previous migration drops the tables anyway.
    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}

/// All reference tables, in insertion order.
const SEED: &[SeedTable] = &[
    AWARD,
    STRATEGY,
    STRATEGY_AWARD,
    STRATEGY_RULE,
    RULE_TREE,
    RULE_TREE_NODE,
    RULE_TREE_NODE_LINE,
    RAFFLE_ACTIVITY_COUNT,
    RAFFLE_ACTIVITY,
    RAFFLE_ACTIVITY_SKU,
    DAILY_BEHAVIOR_REBATE,
];

/// Award catalogue (`award_id` 100–109).
#[rustfmt::skip]
const AWARD: SeedTable = SeedTable {
    table: "award",
    columns: &["award_id", "award_key", "award_config", "award_desc"],
    keys: &[&["award_id"]],
    rows: &[
        &[I(101), T("user_credit_random"), T("1,100"), T("用户积分【优先透彻规则范围，如果没有则走配置】")],
        &[I(102), T("openai_use_count"), T("5"), T("OpenAI 增加使用次数")],
        &[I(103), T("openai_use_count"), T("10"), T("OpenAI 增加使用次数")],
        &[I(104), T("openai_use_count"), T("20"), T("OpenAI 增加使用次数")],
        &[I(105), T("openai_model"), T("gpt-4"), T("OpenAI 增加模型")],
        &[I(106), T("openai_model"), T("dall-e-2"), T("OpenAI 增加模型")],
        &[I(107), T("openai_model"), T("dall-e-3"), T("OpenAI 增加模型")],
        &[I(108), T("openai_use_count"), T("100"), T("OpenAI 增加使用次数")],
        &[I(109), T("openai_model"), T("gpt-4,dall-e-2,dall-e-3"), T("OpenAI 增加模型")],
        &[I(100), T("user_credit_blacklist"), T("1"), T("黑名单积分")],
    ],
};

/// Strategies 100001–100006.
#[rustfmt::skip]
const STRATEGY: SeedTable = SeedTable {
    table: "strategy",
    columns: &["strategy_id", "strategy_desc", "rule_models"],
    keys: &[&["strategy_id"]],
    rows: &[
        &[I(100001), T("抽奖策略"), T("rule_blacklist,rule_weight")],
        &[I(100003), T("抽奖策略-验证lock"), Null],
        &[I(100002), T("抽奖策略-非完整1概率"), Null],
        &[I(100004), T("抽奖策略-随机抽奖"), Null],
        &[I(100005), T("抽奖策略-测试概率计算"), Null],
        &[I(100006), T("抽奖策略-规则树"), T("rule_blacklist,rule_weight")],
    ],
};

/// Awards and probabilities of each strategy.
#[rustfmt::skip]
const STRATEGY_AWARD: SeedTable = SeedTable {
    table: "strategy_award",
    columns: &["strategy_id", "award_id", "award_title", "award_subtitle", "award_count", "award_count_surplus", "award_rate", "rule_models", "sort"],
    keys: &[&["strategy_id", "award_id"]],
    rows: &[
        &[I(100001), I(101), T("随机积分"), Null, I(80000), I(79998), T("0.3000"), T("tree_luck_award"), I(1)],
        &[I(100001), I(102), T("5次使用"), Null, I(10000), I(9999), T("0.2000"), T("tree_luck_award"), I(2)],
        &[I(100001), I(103), T("10次使用"), Null, I(5000), I(4998), T("0.2000"), T("tree_luck_award"), I(3)],
        &[I(100001), I(104), T("20次使用"), Null, I(4000), I(3999), T("0.1000"), T("tree_luck_award"), I(4)],
        &[I(100001), I(105), T("增加gpt-4对话模型"), Null, I(600), I(600), T("0.1000"), T("tree_luck_award"), I(5)],
        &[I(100001), I(106), T("增加dall-e-2画图模型"), Null, I(200), I(200), T("0.0500"), T("tree_luck_award"), I(6)],
        &[I(100001), I(107), T("增加dall-e-3画图模型"), T("抽奖1次后解锁"), I(200), I(200), T("0.0400"), T("tree_luck_award"), I(7)],
        &[I(100001), I(108), T("增加100次使用"), T("抽奖2次后解锁"), I(199), I(199), T("0.0099"), T("tree_luck_award"), I(8)],
        &[I(100001), I(109), T("解锁全部模型"), T("抽奖6次后解锁"), I(1), I(1), T("0.0001"), T("tree_luck_award"), I(9)],
        &[I(100002), I(101), T("随机积分"), Null, I(1), I(1), T("0.5000"), T("tree_luck_award"), I(1)],
        &[I(100002), I(102), T("5次使用"), Null, I(1), I(1), T("0.1000"), T("tree_luck_award"), I(2)],
        &[I(100002), I(106), T("增加dall-e-2画图模型"), Null, I(1), I(1), T("0.0100"), T("tree_luck_award"), I(3)],
        &[I(100003), I(107), T("增加dall-e-3画图模型"), T("抽奖1次后解锁"), I(200), I(200), T("0.0400"), T("tree_luck_award"), I(7)],
        &[I(100003), I(108), T("增加100次使用"), T("抽奖2次后解锁"), I(199), I(199), T("0.0099"), T("tree_luck_award"), I(8)],
        &[I(100003), I(109), T("解锁全部模型"), T("抽奖6次后解锁"), I(1), I(1), T("0.0001"), T("tree_luck_award"), I(9)],
        &[I(100004), I(109), T("解锁全部模型"), T("抽奖6次后解锁"), I(1), I(1), T("1.0000"), T("tree_luck_award"), I(9)],
        &[I(100005), I(101), T("随机积分"), Null, I(80000), I(80000), T("0.0300"), T("tree_luck_award"), I(1)],
        &[I(100005), I(102), T("随机积分"), Null, I(80000), I(80000), T("0.0300"), T("tree_luck_award"), I(1)],
        &[I(100005), I(103), T("随机积分"), Null, I(80000), I(80000), T("0.0300"), T("tree_luck_award"), I(1)],
        &[I(100005), I(104), T("随机积分"), Null, I(80000), I(80000), T("0.0300"), T("tree_luck_award"), I(1)],
        &[I(100005), I(105), T("随机积分"), Null, I(80000), I(80000), T("0.0010"), T("tree_luck_award"), I(1)],
        &[I(100006), I(101), T("随机积分"), Null, I(10000), I(9982), T("0.7900"), T("tree_luck_award"), I(1)],
        &[I(100006), I(102), T("OpenAI会员卡"), Null, I(100), I(15), T("0.0300"), T("tree_luck_award"), I(2)],
        &[I(100006), I(103), T("支付优惠券"), Null, I(100), I(38), T("0.0300"), T("tree_luck_award"), I(3)],
        &[I(100006), I(104), T("小米台灯"), Null, I(100), I(28), T("0.0300"), T("tree_luck_award"), I(4)],
        &[I(100006), I(105), T("小米su7周体验"), T("抽奖3次后解锁"), I(100), I(37), T("0.0300"), T("tree_lock_3"), I(5)],
        &[I(100006), I(106), T("轻奢办公椅"), T("抽奖2次后解锁"), I(100), I(22), T("0.0300"), T("tree_lock_2"), I(6)],
        &[I(100006), I(107), T("小霸王游戏机"), T("抽奖1次后解锁"), I(100), I(21), T("0.0300"), T("tree_lock_1"), I(7)],
        &[I(100006), I(108), T("暴走玩偶"), Null, I(100), I(25), T("0.0300"), T("tree_luck_award"), I(8)],
    ],
};

/// Strategy-level rules (`rule_weight`, `rule_blacklist`).
#[rustfmt::skip]
const STRATEGY_RULE: SeedTable = SeedTable {
    table: "strategy_rule",
    columns: &["strategy_id", "award_id", "rule_type", "rule_model", "rule_value", "rule_desc"],
    keys: &[&["strategy_id", "rule_model"]],
    rows: &[
        &[I(100001), Null, I(1), T("rule_weight"), T("60:102,103,104,105 200:106,107 1000:105"), T("消耗6000分，必中奖范围")],
        &[I(100001), Null, I(1), T("rule_blacklist"), T("101:user001,user002,user003"), T("黑名单抽奖，积分兜底")],
        &[I(100006), Null, I(1), T("rule_weight"), T("10:102,103 70:106,107 1000:104,105"), T("消耗6000分，必中奖范围")],
        &[I(100006), Null, I(1), T("rule_blacklist"), T("101:user001,user002,user003"), T("黑名单抽奖，积分兜底")],
    ],
};

/// The four rule trees.
#[rustfmt::skip]
const RULE_TREE: SeedTable = SeedTable {
    table: "rule_tree",
    columns: &["tree_id", "tree_name", "tree_desc", "tree_node_rule_key"],
    keys: &[&["tree_id"]],
    rows: &[
        &[T("tree_lock_1"), T("规则树"), T("规则树"), T("rule_lock")],
        &[T("tree_luck_award"), T("规则树-兜底奖励"), T("规则树-兜底奖励"), T("rule_stock")],
        &[T("tree_lock_2"), T("规则树"), T("规则树"), T("rule_lock")],
        &[T("tree_lock_3"), T("规则树"), T("规则树"), T("rule_lock")],
    ],
};

/// Nodes of the rule trees; identity = (tree, rule key).
#[rustfmt::skip]
const RULE_TREE_NODE: SeedTable = SeedTable {
    table: "rule_tree_node",
    columns: &["tree_id", "rule_key", "rule_desc", "rule_value"],
    keys: &[&["tree_id", "rule_key"]],
    rows: &[
        &[T("tree_lock_1"), T("rule_lock"), T("限定用户已完成N次抽奖后解锁"), T("1")],
        &[T("tree_lock_1"), T("rule_luck_award"), T("兜底奖品随机积分"), T("101:1,100")],
        &[T("tree_lock_1"), T("rule_stock"), T("库存扣减规则"), Null],
        &[T("tree_luck_award"), T("rule_stock"), T("库存扣减规则"), Null],
        &[T("tree_luck_award"), T("rule_luck_award"), T("兜底奖品随机积分"), T("101:1,100")],
        &[T("tree_lock_2"), T("rule_lock"), T("限定用户已完成N次抽奖后解锁"), T("2")],
        &[T("tree_lock_2"), T("rule_luck_award"), T("兜底奖品随机积分"), T("101:1,100")],
        &[T("tree_lock_2"), T("rule_stock"), T("库存扣减规则"), Null],
        &[T("tree_lock_3"), T("rule_lock"), T("限定用户已完成N次抽奖后解锁"), T("3")],
        &[T("tree_lock_3"), T("rule_luck_award"), T("兜底奖品随机积分"), T("101:1,100")],
        &[T("tree_lock_3"), T("rule_stock"), T("库存扣减规则"), Null],
    ],
};

/// Edges of the rule trees (including the `tree_lock_3` lock→luck `ALLOW` typo of the original).
#[rustfmt::skip]
const RULE_TREE_NODE_LINE: SeedTable = SeedTable {
    table: "rule_tree_node_line",
    columns: &["tree_id", "rule_node_from", "rule_node_to", "rule_limit_type", "rule_limit_value"],
    keys: &[&["tree_id", "rule_node_from", "rule_node_to", "rule_limit_type", "rule_limit_value"]],
    rows: &[
        &[T("tree_lock_1"), T("rule_lock"), T("rule_stock"), T("EQUAL"), T("ALLOW")],
        &[T("tree_lock_1"), T("rule_lock"), T("rule_luck_award"), T("EQUAL"), T("TAKE_OVER")],
        &[T("tree_lock_1"), T("rule_stock"), T("rule_luck_award"), T("EQUAL"), T("ALLOW")],
        &[T("tree_luck_award"), T("rule_stock"), T("rule_luck_award"), T("EQUAL"), T("ALLOW")],
        &[T("tree_lock_2"), T("rule_lock"), T("rule_stock"), T("EQUAL"), T("ALLOW")],
        &[T("tree_lock_2"), T("rule_lock"), T("rule_luck_award"), T("EQUAL"), T("TAKE_OVER")],
        &[T("tree_lock_2"), T("rule_stock"), T("rule_luck_award"), T("EQUAL"), T("ALLOW")],
        &[T("tree_lock_3"), T("rule_lock"), T("rule_luck_award"), T("EQUAL"), T("ALLOW")],
        &[T("tree_lock_3"), T("rule_lock"), T("rule_luck_award"), T("EQUAL"), T("TAKE_OVER")],
        &[T("tree_lock_3"), T("rule_stock"), T("rule_luck_award"), T("EQUAL"), T("ALLOW")],
    ],
};

/// Quota packages 11101–11104.
#[rustfmt::skip]
const RAFFLE_ACTIVITY_COUNT: SeedTable = SeedTable {
    table: "raffle_activity_count",
    columns: &["activity_count_id", "total_count", "day_count", "month_count"],
    keys: &[&["activity_count_id"]],
    rows: &[
        &[I(11101), I(150), I(150), I(150)],
        &[I(11102), I(50), I(50), I(50)],
        &[I(11103), I(5), I(5), I(5)],
        &[I(11104), I(1), I(1), I(1)],
    ],
};

/// Activity 100301 (strategy 100006).
#[rustfmt::skip]
const RAFFLE_ACTIVITY: SeedTable = SeedTable {
    table: "raffle_activity",
    columns: &["activity_id", "activity_name", "activity_desc", "begin_date_time", "end_date_time", "strategy_id", "state"],
    keys: &[&["activity_id"], &["strategy_id"]],
    rows: &[
        &[I(100301), T("测试活动"), T("测试活动"), T("2024-03-09 10:15:10"), T("2034-03-09 10:15:10"), I(100006), T("open")],
    ],
};

/// SKUs 9011–9014 of activity 100301.
#[rustfmt::skip]
const RAFFLE_ACTIVITY_SKU: SeedTable = SeedTable {
    table: "raffle_activity_sku",
    columns: &["sku", "activity_id", "activity_count_id", "stock_count", "stock_count_surplus", "product_amount"],
    keys: &[&["sku"]],
    rows: &[
        &[I(9011), I(100301), I(11101), I(100000), I(99887), T("200.00")],
        &[I(9012), I(100301), I(11102), I(100000), I(99885), T("100.00")],
        &[I(9013), I(100301), I(11103), I(100000), I(99884), T("20.00")],
        &[I(9014), I(100301), I(11104), I(100000), I(99866), T("5.00")],
    ],
};

/// Sign-in rebates.
#[rustfmt::skip]
const DAILY_BEHAVIOR_REBATE: SeedTable = SeedTable {
    table: "daily_behavior_rebate",
    columns: &["behavior_type", "rebate_desc", "rebate_type", "rebate_config", "state"],
    keys: &[&["behavior_type", "rebate_type"]],
    rows: &[
        &[T("sign"), T("签到返利-sku额度"), T("sku"), T("9014"), T("open")],
        &[T("sign"), T("签到返利-积分"), T("integral"), T("10"), T("open")],
    ],
};

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::support::Cell;

    #[test]
    fn every_seed_renders() {
        for seed in SEED {
            assert_eq!(seed.statements().unwrap().len(), seed.rows.len());
        }
    }

    /// Two seed rows with the same key would silently lose the second one.
    #[test]
    fn seed_keys_are_unique_and_not_null() {
        for seed in SEED {
            for key in seed.keys {
                let positions: Vec<usize> = key
                    .iter()
                    .map(|column| seed.columns.iter().position(|c| c == column).unwrap())
                    .collect();
                let mut seen = HashSet::new();
                for row in seed.rows {
                    let cells: Vec<String> = positions
                        .iter()
                        .map(|&p| {
                            assert_ne!(row[p], Cell::Null, "{}: NULL key", seed.table);
                            format!("{:?}", row[p])
                        })
                        .collect();
                    assert!(seen.insert(cells), "{}: duplicate key {key:?}", seed.table);
                }
            }
        }
    }

    #[test]
    fn seed_counts_match_the_dump() {
        let counts: Vec<(&str, usize)> = SEED.iter().map(|s| (s.table, s.rows.len())).collect();
        assert_eq!(
            counts,
            [
                ("award", 10),
                ("strategy", 6),
                ("strategy_award", 29),
                ("strategy_rule", 4),
                ("rule_tree", 4),
                ("rule_tree_node", 11),
                ("rule_tree_node_line", 10),
                ("raffle_activity_count", 4),
                ("raffle_activity", 1),
                ("raffle_activity_sku", 4),
                ("daily_behavior_rebate", 2),
            ]
        );
    }
}
