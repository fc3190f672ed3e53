//! `m20261201_000004_task_trace_context`: `task.traceparent` and the traced draw save
//! `bm_save_draw_v2_000` … `_003`, beside the first version.

use migration::sea_orm_migration::sea_orm::{ConnectionTrait, Statement};
use migration::{SPLIT_TABLE_COUNT, draw_save_procedure, traced_draw_save_procedure};
use test_support::schema::columns;

use crate::m20261130_draw_save_procedure::procedures;
use crate::support::{Shard, ShardRoundTrip, shard_round_trip};

/// The migration's name.
pub(crate) const TASK_TRACE_CONTEXT: &str = "m20261201_000004_task_trace_context";

/// The column and the traced procedures exist after up, are gone after rolling back (the first
/// version of the save stays), and exist again after up again; a traced save stores its
/// `traceparent` in every outbox row it writes.
#[tokio::test]
async fn task_trace_context_rolls_back_and_applies_again() -> anyhow::Result<()> {
    shard_round_trip(TaskTraceContext).await
}

struct TaskTraceContext;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

impl ShardRoundTrip for TaskTraceContext {
    const MIGRATION: &'static str = TASK_TRACE_CONTEXT;

    async fn assert_effects(&self, shard: &Shard<'_>, applied: bool) -> anyhow::Result<()> {
        let name = shard.name;
        let column = columns(shard.server, name)
            .await?
            .into_iter()
            .find(|c| c.table == "task" && c.column == migration::TRACE_CONTEXT_COLUMN);
        let first: Vec<String> = (0..SPLIT_TABLE_COUNT).map(draw_save_procedure).collect();
        if !applied {
            assert!(column.is_none(), "{name}.task.traceparent survived the rollback");
            assert_eq!(
                procedures(shard).await?,
                first,
                "{name}: only the first version is left"
            );
            return Ok(());
        }
        let column = column.ok_or_else(|| anyhow::anyhow!("{name}.task.traceparent is missing"))?;
        assert_eq!(column.column_type, "varchar(128)", "{name}.task.traceparent");
        assert_eq!(column.is_nullable, "YES", "{name}.task.traceparent");
        let both: Vec<String> = first
            .iter()
            .cloned()
            .chain((0..SPLIT_TABLE_COUNT).map(traced_draw_save_procedure))
            .collect();
        assert_eq!(procedures(shard).await?, both, "{name}");
        shard
            .exec(&[&format!(
                "INSERT INTO `{name}`.raffle_activity_account (user_id, activity_id, total_count, total_count_surplus, \
                 day_count, day_count_surplus, month_count, month_count_surplus, version) \
                 VALUES ('trace-test', 1, 1, 1, 1, 1, 1, 1, 5)"
            )])
            .await?;
        let call = format!(
            "CALL `{name}`.{}('trace-test', 1, 5, 0, 'o1', '2026-11-30', 1, 0, 1, '2026-11', 1, 0, 1, \
             'a', 1, 101, 't', '2026-11-30 00:00:00', 'send_award', 'trace-m1', '{{}}', \
             'activity_account_changed', 'trace-m2', '{{}}', NULL, NULL, NULL, '{TRACEPARENT}')",
            traced_draw_save_procedure(0)
        );
        let rows = shard
            .server
            .query_all(Statement::from_string(shard.server.get_database_backend(), call))
            .await?;
        let outcome: String = rows
            .first()
            .ok_or_else(|| anyhow::anyhow!("no outcome"))?
            .try_get_by_index(0)?;
        assert_eq!(outcome, "saved");
        let stored = shard
            .server
            .query_all(Statement::from_string(
                shard.server.get_database_backend(),
                format!("SELECT traceparent FROM `{name}`.task WHERE user_id = 'trace-test' ORDER BY id"),
            ))
            .await?
            .iter()
            .map(|r| r.try_get::<Option<String>>("", "traceparent"))
            .collect::<Result<Vec<_>, _>>()?;
        assert_eq!(
            stored,
            vec![Some(TRACEPARENT.to_owned()); 2],
            "{name}: both rows traced"
        );
        shard
            .exec(&[
                &format!("DELETE FROM `{name}`.raffle_activity_account WHERE user_id = 'trace-test'"),
                &format!("DELETE FROM `{name}`.raffle_activity_account_day WHERE user_id = 'trace-test'"),
                &format!("DELETE FROM `{name}`.raffle_activity_account_month WHERE user_id = 'trace-test'"),
                &format!("DELETE FROM `{name}`.user_raffle_order_000 WHERE user_id = 'trace-test'"),
                &format!("DELETE FROM `{name}`.user_award_record_000 WHERE user_id = 'trace-test'"),
                &format!("DELETE FROM `{name}`.task WHERE user_id = 'trace-test'"),
            ])
            .await?;
        Ok(())
    }
}
