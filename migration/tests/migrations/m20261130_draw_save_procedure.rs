//! `m20261130_000001_draw_save_procedure`: the stored procedures `bm_save_draw_000` …
//! `bm_save_draw_003` that save a decided draw in one call.

use migration::draw_save_procedure;
use sea_orm_migration::sea_orm::{ConnectionTrait, Statement};

use crate::support::{Shard, ShardRoundTrip, shard_round_trip};

/// The procedures exist after up, are gone after rolling that migration back, and exist again
/// after up again; a created procedure saves a draw and answers `moved` for a stale version.
#[tokio::test]
async fn draw_save_procedures_roll_back_and_apply_again() -> anyhow::Result<()> {
    shard_round_trip(DrawSaveProcedure).await
}

struct DrawSaveProcedure;

/// The `bm_save_draw_%` procedures of the shard database, by name.
pub(crate) async fn procedures(shard: &Shard<'_>) -> anyhow::Result<Vec<String>> {
    let rows = shard
        .server
        .query_all(Statement::from_sql_and_values(
            shard.server.get_database_backend(),
            "SELECT ROUTINE_NAME AS name FROM information_schema.ROUTINES \
             WHERE ROUTINE_SCHEMA = ? AND ROUTINE_TYPE = 'PROCEDURE' AND ROUTINE_NAME LIKE 'bm\\_save\\_draw\\_%' \
             ORDER BY ROUTINE_NAME",
            [shard.name.into()],
        ))
        .await?;
    Ok(rows
        .iter()
        .map(|r| r.try_get::<String>("", "name"))
        .collect::<Result<_, _>>()?)
}

impl ShardRoundTrip for DrawSaveProcedure {
    const MIGRATION: &'static str = "m20261130_000001_draw_save_procedure";

    async fn assert_effects(&self, shard: &Shard<'_>, applied: bool) -> anyhow::Result<()> {
        // Rolling back through this migration also drops the traced version of a later one.
        let expected: Vec<String> = if applied {
            (0..migration::SPLIT_TABLE_COUNT)
                .map(draw_save_procedure)
                .chain((0..migration::SPLIT_TABLE_COUNT).map(migration::traced_draw_save_procedure))
                .collect()
        } else {
            Vec::new()
        };
        assert_eq!(procedures(shard).await?, expected, "{}", shard.name);
        if applied {
            let name = shard.name;
            // A save at a version the account is not at writes nothing and says so.
            shard
                .exec(&[&format!(
                    "INSERT INTO `{name}`.raffle_activity_account (user_id, activity_id, total_count, total_count_surplus, \
                     day_count, day_count_surplus, month_count, month_count_surplus, version) \
                     VALUES ('proc-test', 1, 1, 1, 1, 1, 1, 1, 5)"
                )])
                .await?;
            let call = format!(
                "CALL `{name}`.{}('proc-test', 1, 4, 0, 'o1', '2026-11-30', 1, 0, 1, '2026-11', 1, 0, 1, \
                 'a', 1, 101, 't', '2026-11-30 00:00:00', 'send_award', 'm1', '{{}}', NULL, NULL, NULL, NULL, NULL, NULL)",
                draw_save_procedure(0)
            );
            let outcome = |rows: Vec<sea_orm_migration::sea_orm::QueryResult>| -> anyhow::Result<String> {
                Ok(rows
                    .first()
                    .ok_or_else(|| anyhow::anyhow!("no outcome"))?
                    .try_get_by_index(0)?)
            };
            let stale = shard
                .server
                .query_all(Statement::from_string(
                    shard.server.get_database_backend(),
                    call.clone(),
                ))
                .await?;
            assert_eq!(outcome(stale)?, "moved");
            let fresh = shard
                .server
                .query_all(Statement::from_string(
                    shard.server.get_database_backend(),
                    call.replace("'proc-test', 1, 4,", "'proc-test', 1, 5,"),
                ))
                .await?;
            assert_eq!(outcome(fresh)?, "saved");
            shard
                .exec(&[
                    &format!("DELETE FROM `{name}`.raffle_activity_account WHERE user_id = 'proc-test'"),
                    &format!("DELETE FROM `{name}`.raffle_activity_account_day WHERE user_id = 'proc-test'"),
                    &format!("DELETE FROM `{name}`.raffle_activity_account_month WHERE user_id = 'proc-test'"),
                    &format!("DELETE FROM `{name}`.user_raffle_order_000 WHERE user_id = 'proc-test'"),
                    &format!("DELETE FROM `{name}`.user_award_record_000 WHERE user_id = 'proc-test'"),
                    &format!("DELETE FROM `{name}`.task WHERE user_id = 'proc-test'"),
                ])
                .await?;
        }
        Ok(())
    }
}
