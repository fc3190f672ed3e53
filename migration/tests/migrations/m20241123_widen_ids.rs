//! `m20241123_000001_widen_ids`: the order and message ids become `varchar(32)` (19-digit
//! snowflake ids); rolling back restores the dumps' widths, but only while every stored id fits.

use std::collections::BTreeMap;

use anyhow::{Context, ensure};
use migration::ShardMigrator;
use migration::sea_orm_migration::MigratorTrait;
use migration::sea_orm_migration::sea_orm::DatabaseConnection;
use test_support::schema::{ColumnInfo, columns};

use crate::m20241123_outbox_relay::assert_outbox_additions;
use crate::m20241123_read_model_versions::assert_version_columns;
use crate::support::{Shard, ShardRoundTrip, shard_round_trip};

/// The shard migration widening the id columns.
pub(crate) const WIDEN_IDS: &str = "m20241123_000001_widen_ids";

/// Tables holding an id column widened by `m20241123_000001_widen_ids` (split ones exist as
/// `_000` … `_003`), with that column as in the original dumps: width, `IS_NULLABLE`, comment.
const ID_COLUMNS: &[(&str, bool, &str, u32, &str, &str)] = &[
    ("raffle_activity_order", true, "order_id", 12, "NO", "订单ID"),
    ("user_raffle_order", true, "order_id", 12, "NO", "订单ID"),
    (
        "user_award_record",
        true,
        "order_id",
        12,
        "NO",
        "抽奖订单ID【作为幂等使用】",
    ),
    ("user_behavior_rebate_order", true, "order_id", 12, "NO", "订单ID"),
    ("user_credit_order", true, "order_id", 12, "NO", "订单ID"),
    ("task", false, "message_id", 11, "YES", "消息编号"),
];

/// Asserts every id column of shard `database`: `COLUMN_TYPE` is `varchar(32)` when `widened`
/// and the original width otherwise; NULL-ability, (no) default and comment are the dump's.
pub(crate) async fn assert_id_widths(server: &DatabaseConnection, database: &str, widened: bool) -> anyhow::Result<()> {
    let actual: BTreeMap<(String, String), ColumnInfo> = columns(server, database)
        .await?
        .into_iter()
        .map(|c| ((c.table.clone(), c.column.clone()), c))
        .collect();
    let mut checked = 0;
    for &(base, split, column, original, nullable, comment) in ID_COLUMNS {
        let physical: Vec<String> = if split {
            (0..migration::SPLIT_TABLE_COUNT)
                .map(|index| format!("{base}_{index:03}"))
                .collect()
        } else {
            vec![base.to_owned()]
        };
        let width = if widened { 32 } else { original };
        for table in physical {
            let info = actual
                .get(&(table.clone(), column.to_owned()))
                .with_context(|| format!("{database}.{table}.{column} is missing"))?;
            let seen = (
                info.column_type.as_str(),
                info.is_nullable.as_str(),
                info.comment.as_str(),
            );
            assert_eq!(
                seen,
                (format!("varchar({width})").as_str(), nullable, comment),
                "{database}.{table}.{column}"
            );
            // No default: MariaDB reports the literal `NULL`, MySQL an SQL NULL.
            assert!(
                matches!(info.default.as_str(), "NULL" | "<NULL>"),
                "default of {database}.{table}.{column}: {}",
                info.default
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 5 * migration::SPLIT_TABLE_COUNT + 1);
    Ok(())
}

/// The id widening rolls back to the original widths, refuses to do so while a longer id is
/// stored (changing nothing of the widening), and applies again. The migrations after it are
/// rolled back with it, however many there are.
#[tokio::test]
async fn widened_ids_roll_back_only_when_every_id_fits() -> anyhow::Result<()> {
    shard_round_trip(WidenIds).await
}

struct WidenIds;

impl ShardRoundTrip for WidenIds {
    const MIGRATION: &'static str = WIDEN_IDS;

    /// The widths, and the additions of the later migrations (rolled back with it).
    async fn assert_effects(&self, shard: &Shard<'_>, applied: bool) -> anyhow::Result<()> {
        assert_id_widths(shard.server, shard.name, applied).await?;
        assert_outbox_additions(shard.server, shard.name, applied).await?;
        assert_version_columns(shard.server, shard.name, applied).await
    }

    /// A stored 19-digit id makes the rollback fail, leaving the widening applied.
    async fn prepare(&self, shard: &Shard<'_>) -> anyhow::Result<()> {
        shard
            .exec(&["INSERT INTO task (user_id, topic, message_id, message, state) \
                     VALUES ('xiaofuge', 'send_award', '9223372036854775807', '{}', 'create')"])
            .await?;
        let refused = ShardMigrator::down(shard.db, Some(shard.steps)).await;
        ensure!(
            refused.is_err(),
            "down must refuse while a 19-digit message id is stored"
        );
        assert_id_widths(shard.server, shard.name, true).await?;
        // MySQL DDL is not transactional: the migrations after the widening were rolled back
        // before it refused, and stay rolled back; the widening itself is still applied.
        shard
            .assert_applied(&shard.names[..=shard.index], "after the refused rollback")
            .await?;
        ShardMigrator::up(shard.db, None).await?;
        shard.assert_applied(&shard.names, "after up again").await?;
        shard.exec(&["DELETE FROM task"]).await
    }
}
