//! Config database, migration 5: the schema and reference rows of the original's latest dump.
//!
//! The latest `big_market` dump of the original adds the table `raffle_activity_stage` (which
//! activity a channel / source shows) and the reference rows of the OpenAI activity: activity
//! 100401 with strategy 10007, quota packages 22201–22203, SKUs 9901–9903, awards 110–117 and
//! the awards of strategy 10007 (on the existing rule trees `tree_lock_1` … `tree_lock_3`), the
//! `openai_pay` rebates, the sign-in SKU rebate of SKU 9901 and the stage row `c01` / `s01` →
//! 100401.
//!
//! The table is created as in the dump (`CREATE TABLE IF NOT EXISTS`, so a database loaded from
//! the latest dump keeps it) plus the index `idx_channel_source` of the stage lookup, added where
//! missing. Each row keeps the dump's `id`: it is inserted with that id when neither the id nor
//! its natural key (the table's unique key or business identity, e.g. `award_id`,
//! `(strategy_id, award_id)`, `(behavior_type, rebate_type)`) is taken, and without it
//! (`AUTO_INCREMENT`) when another row holds the id but the natural key is still missing.
//! Existing rows are never changed, so two rows that the latest dump changed stay as they are in
//! a database that has them: the sign-in SKU rebate (`sign` / `sku`, id 1, SKU 9014 — the latest
//! dump replaced it by id 3, SKU 9901; a second open `sign` / `sku` row would give both the same
//! rebate `biz_id`) and the rate of award 108 of strategy 100006 (`0.0300`; latest `0.0003`).
//!
//! `down` drops the stage table; like the first reference migration it keeps the rows of the
//! other tables (they may predate this migration, and rolling back the first migration drops
//! those tables anyway).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::TransactionTrait;

use crate::support::Cell::{I, Null, T};
use crate::support::{SeedTable, execute_all};

/// The table of the activity stage.
pub const STAGE_TABLE: &str = "raffle_activity_stage";

/// The index of the stage lookup `WHERE channel = ? AND source = ?`.
pub const STAGE_INDEX: &str = "idx_channel_source";

/// The migration.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// `raffle_activity_stage` as in the latest dump (the server's default utf8mb4 collation).
const STAGE_DDL: &str = r"CREATE TABLE IF NOT EXISTS `raffle_activity_stage` (
  `id` int(11) unsigned NOT NULL AUTO_INCREMENT,
  `channel` varchar(8) NOT NULL COMMENT '渠道',
  `source` varchar(8) NOT NULL COMMENT '来源',
  `activity_id` bigint(12) NOT NULL COMMENT '活动ID',
  `state` varchar(8) NOT NULL DEFAULT 'create' COMMENT '上架状态；create、active、expire',
  `create_time` datetime NOT NULL DEFAULT CURRENT_TIMESTAMP COMMENT '创建时间',
  `update_time` datetime NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP COMMENT '更新时间',
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='活动展台 - 上架活动'";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        execute_all(manager, vec![STAGE_DDL.to_owned()]).await?;
        if !manager.has_index(STAGE_TABLE, STAGE_INDEX).await? {
            let index = format!("ALTER TABLE `{STAGE_TABLE}` ADD INDEX `{STAGE_INDEX}` (`channel`, `source`)");
            execute_all(manager, vec![index]).await?;
        }

        let txn = manager.get_connection().begin().await?;
        for seed in SEED {
            let mut inserted = 0;
            for statement in seed.statements_keeping_ids()? {
                inserted += txn.execute(statement).await?.rows_affected();
            }
            tracing::info!(
                table = seed.table,
                inserted,
                seeded = seed.rows.len(),
                "latest reference rows"
            );
        }
        txn.commit().await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        execute_all(manager, vec![format!("DROP TABLE IF EXISTS `{STAGE_TABLE}`")]).await
    }
}

/// The rows of the latest dump that the original dump lacks, in insertion order.
const SEED: &[SeedTable] = &[
    AWARD,
    STRATEGY,
    STRATEGY_AWARD,
    RAFFLE_ACTIVITY_COUNT,
    RAFFLE_ACTIVITY,
    RAFFLE_ACTIVITY_SKU,
    DAILY_BEHAVIOR_REBATE,
    RAFFLE_ACTIVITY_STAGE,
];

/// Awards 110–117: draw quota of the OpenAI service.
#[rustfmt::skip]
const AWARD: SeedTable = SeedTable {
    table: "award",
    columns: &["id", "award_id", "award_key", "award_config", "award_desc"],
    keys: &[&["award_id"]],
    rows: &[
        &[I(11), I(110), T("openai_use_count"), T("1"), T("OpenAI 增加使用次数")],
        &[I(12), I(111), T("openai_use_count"), T("5"), T("OpenAI 增加使用次数")],
        &[I(14), I(112), T("openai_use_count"), T("10"), T("OpenAI 增加使用次数")],
        &[I(15), I(113), T("openai_use_count"), T("15"), T("OpenAI 增加使用次数")],
        &[I(16), I(114), T("openai_use_count"), T("20"), T("OpenAI 增加使用次数")],
        &[I(18), I(115), T("openai_use_count"), T("25"), T("OpenAI 增加使用次数")],
        &[I(19), I(116), T("openai_use_count"), T("50"), T("OpenAI 增加使用次数")],
        &[I(21), I(117), T("openai_use_count"), T("100"), T("OpenAI 增加使用次数")],
    ],
};

/// Strategy 10007 (no strategy-level rules).
#[rustfmt::skip]
const STRATEGY: SeedTable = SeedTable {
    table: "strategy",
    columns: &["id", "strategy_id", "strategy_desc", "rule_models"],
    keys: &[&["strategy_id"]],
    rows: &[
        &[I(7), I(10007), T("抽奖策略-规则树"), Null],
    ],
};

/// The awards of strategy 10007 (the titles and configs are the dump's, mismatches included).
#[rustfmt::skip]
const STRATEGY_AWARD: SeedTable = SeedTable {
    table: "strategy_award",
    columns: &["id", "strategy_id", "award_id", "award_title", "award_subtitle", "award_count", "award_count_surplus", "award_rate", "rule_models", "sort"],
    keys: &[&["strategy_id", "award_id"]],
    rows: &[
        &[I(30), I(10007), I(101), T("随机积分"), Null, I(1_000_000), I(1_000_000), T("0.1000"), T("tree_luck_award"), I(1)],
        &[I(31), I(10007), I(110), T("1次使用次数"), Null, I(1_000_000), I(1_000_000), T("0.8000"), T("tree_luck_award"), I(2)],
        &[I(32), I(10007), I(111), T("5次使用次数"), Null, I(1_000_000), I(1_000_000), T("0.0800"), T("tree_luck_award"), I(3)],
        &[I(33), I(10007), I(112), T("10次使用次数"), Null, I(1_000_000), I(1_000_000), T("0.0100"), T("tree_luck_award"), I(4)],
        &[I(34), I(10007), I(113), T("50次使用次数"), T("抽奖3次后解锁"), I(1_000_000), I(1_000_000), T("0.0002"), T("tree_lock_3"), I(5)],
        &[I(35), I(10007), I(114), T("20次使用次数"), T("抽奖2次后解锁"), I(1_000_000), I(1_000_000), T("0.0040"), T("tree_lock_2"), I(6)],
        &[I(36), I(10007), I(115), T("25次使用次数"), T("抽奖1次后解锁"), I(1_000_000), I(1_000_000), T("0.0008"), T("tree_lock_1"), I(7)],
        &[I(37), I(10007), I(116), T("15次使用次数"), Null, I(1_000_000), I(1_000_000), T("0.0050"), T("tree_luck_award"), I(8)],
    ],
};

/// Quota packages 22201–22203.
#[rustfmt::skip]
const RAFFLE_ACTIVITY_COUNT: SeedTable = SeedTable {
    table: "raffle_activity_count",
    columns: &["id", "activity_count_id", "total_count", "day_count", "month_count"],
    keys: &[&["activity_count_id"]],
    rows: &[
        &[I(5), I(22201), I(1), I(1), I(1)],
        &[I(6), I(22202), I(5), I(5), I(5)],
        &[I(7), I(22203), I(10), I(10), I(10)],
    ],
};

/// Activity 100401 (strategy 10007).
#[rustfmt::skip]
const RAFFLE_ACTIVITY: SeedTable = SeedTable {
    table: "raffle_activity",
    columns: &["id", "activity_id", "activity_name", "activity_desc", "begin_date_time", "end_date_time", "strategy_id", "state"],
    keys: &[&["activity_id"], &["strategy_id"]],
    rows: &[
        &[I(2), I(100401), T("OpenAi抽奖活动"), T("签到&支付有奖返利"), T("2024-10-06 12:09:34"), T("2026-10-06 12:09:34"), I(10007), T("open")],
    ],
};

/// SKUs 9901–9903 of activity 100401.
#[rustfmt::skip]
const RAFFLE_ACTIVITY_SKU: SeedTable = SeedTable {
    table: "raffle_activity_sku",
    columns: &["id", "sku", "activity_id", "activity_count_id", "stock_count", "stock_count_surplus", "product_amount"],
    keys: &[&["sku"]],
    rows: &[
        &[I(5), I(9901), I(100401), I(22201), I(100_000), I(100_000), T("5.00")],
        &[I(6), I(9902), I(100401), I(22202), I(100_000), I(100_000), T("10.00")],
        &[I(7), I(9903), I(100401), I(22203), I(100_000), I(100_000), T("20.00")],
    ],
};

/// The sign-in SKU rebate of SKU 9901 (not inserted where a `sign` / `sku` row exists) and the
/// payment rebates (descriptions as in the dump).
#[rustfmt::skip]
const DAILY_BEHAVIOR_REBATE: SeedTable = SeedTable {
    table: "daily_behavior_rebate",
    columns: &["id", "behavior_type", "rebate_desc", "rebate_type", "rebate_config", "state"],
    keys: &[&["behavior_type", "rebate_type"]],
    rows: &[
        &[I(3), T("sign"), T("签到返利-sku额度"), T("sku"), T("9901"), T("open")],
        &[I(4), T("openai_pay"), T("支付返利-积分"), T("sku"), T("9901"), T("open")],
        &[I(5), T("openai_pay"), T("支付返利-sku额度"), T("integral"), T("10"), T("open")],
    ],
};

/// Channel `c01` / source `s01` shows activity 100401.
#[rustfmt::skip]
const RAFFLE_ACTIVITY_STAGE: SeedTable = SeedTable {
    table: STAGE_TABLE,
    columns: &["id", "channel", "source", "activity_id", "state"],
    keys: &[&["channel", "source", "activity_id"]],
    rows: &[
        &[I(1), T("c01"), T("s01"), I(100401), T("active")],
    ],
};

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::support::Cell;

    #[test]
    fn every_seed_renders_two_statements_per_row() {
        for seed in SEED {
            assert_eq!(seed.statements_keeping_ids().unwrap().len(), 2 * seed.rows.len());
        }
    }

    /// Two seed rows with the same id or key would silently lose the second one.
    #[test]
    fn seed_ids_and_keys_are_unique_and_not_null() {
        for seed in SEED {
            let id: &[&str] = &["id"];
            for key in std::iter::once(id).chain(seed.keys.iter().copied()) {
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
    fn seed_counts() {
        let counts: Vec<(&str, usize)> = SEED.iter().map(|s| (s.table, s.rows.len())).collect();
        assert_eq!(
            counts,
            [
                ("award", 8),
                ("strategy", 1),
                ("strategy_award", 8),
                ("raffle_activity_count", 3),
                ("raffle_activity", 1),
                ("raffle_activity_sku", 3),
                ("daily_behavior_rebate", 3),
                ("raffle_activity_stage", 1),
            ]
        );
    }
}
