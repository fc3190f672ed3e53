//! Shard databases, migration 6: the stored procedures that save a decided draw.
//!
//! The draw decides on a plain read of the user's quota (no lock held, no transaction open),
//! then saves everything in one round trip: `CALL bm_save_draw_XXX(…)`, one procedure per split
//! table suffix `_000` … `_003` (table names cannot be parameters without dynamic SQL, which
//! would be re-prepared on every call). The procedure runs its own transaction:
//!
//! 1. paid ticket: spend total quota with one `UPDATE` guarded by the version the decision was
//!    made on (it also takes the account row lock), spend or create the month and day rows,
//!    insert the ticket born `used`; reused ticket (rare: tickets the original left unused):
//!    lock the account row, check the version, mark the ticket `create → used`;
//! 2. insert the award record and the outbox rows (`task`, one multi-row `INSERT`);
//! 3. commit and answer one row `outcome`: `saved`; `moved` when the account or the reused
//!    ticket changed since the read (nothing written); `duplicate_<step>` when a unique key
//!    refused a row (nothing written). Any other error rolls back and is raised as is, so a
//!    deadlock keeps its error number 1213.
//!
//! The parameters that are compared with `user_id`, `order_id`, `day` and `month` columns are
//! declared with the collation of those columns, read when the procedure is created, so the
//! comparisons use the columns' indexes. A later migration that changes those columns' collation must re-create
//! the procedures (run [`create_sql`] again).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Statement};

use crate::support::{SPLIT_TABLE_COUNT, execute_all};

/// The procedure of split table `index`: `bm_save_draw_000` … `bm_save_draw_003`.
pub fn procedure_name(index: usize) -> String {
    format!("bm_save_draw_{index:03}")
}

/// The migration.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// `CHARACTER SET … COLLATE …` of a column, as declared.
pub(crate) async fn column_charset(manager: &SchemaManager<'_>, table: &str, column: &str) -> Result<String, DbErr> {
    let db = manager.get_connection();
    let row = db
        .query_one(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT CHARACTER_SET_NAME AS cs, COLLATION_NAME AS co FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?",
            [table.into(), column.into()],
        ))
        .await?
        .ok_or_else(|| DbErr::Migration(format!("column {table}.{column} is missing")))?;
    let cs: String = row.try_get("", "cs")?;
    let co: String = row.try_get("", "co")?;
    Ok(format!("CHARACTER SET {cs} COLLATE {co}"))
}

/// The procedure's step that spends one unit of the `period` (`day` or `month`) row: created
/// from the allowance when the decision says it is new, else decremented from the expected
/// surplus (`moved` when it is not there).
fn spend_period(period: &str) -> String {
    format!(
        r"    SET v_step = '{period}';
    IF p_new_{period} THEN
      INSERT INTO raffle_activity_account_{period} (user_id, activity_id, {period}, {period}_count, {period}_count_surplus)
      VALUES (p_user_id, p_activity_id, p_{period}, p_{period}_count, p_{period}_left);
    ELSE
      UPDATE raffle_activity_account_{period} SET {period}_count_surplus = p_{period}_left
       WHERE user_id = p_user_id AND activity_id = p_activity_id AND {period} = p_{period}
         AND {period}_count_surplus = p_{period}_left + 1;
      IF ROW_COUNT() <> 1 THEN
        ROLLBACK;
        SELECT 'moved' AS outcome;
        LEAVE proc;
      END IF;
    END IF;
"
    )
}

/// The `CREATE PROCEDURE` of split table `index`; `user`, `order` and `period` are the
/// character set clauses of the `user_id`, `order_id` and `day` / `month` columns.
pub fn create_sql(index: usize, user: &str, order: &str, period: &str) -> String {
    procedure_sql(&procedure_name(index), index, user, order, period, false)
}

/// The `CREATE PROCEDURE` of the save of split table `index` named `name`; with `traced`, it
/// takes a 28th parameter `p_traceparent` that it stores in `task.traceparent` of every outbox
/// row (`m20261201_000004_task_trace_context`).
pub(crate) fn procedure_sql(name: &str, index: usize, user: &str, order: &str, period: &str, traced: bool) -> String {
    let tb = format!("{index:03}");
    let (month, day) = (spend_period("month"), spend_period("day"));
    let (trace_param, trace_column, trace_value) = if traced {
        (
            ",\n  IN p_traceparent VARCHAR(128) CHARACTER SET ascii",
            ", traceparent",
            ", p_traceparent",
        )
    } else {
        ("", "", "")
    };
    format!(
        r"CREATE PROCEDURE `{name}`(
  IN p_user_id VARCHAR(128) {user}, IN p_activity_id BIGINT, IN p_version BIGINT,
  IN p_reused TINYINT, IN p_order_id VARCHAR(64) {order},
  IN p_day VARCHAR(16) {period}, IN p_day_count INT, IN p_day_left INT, IN p_new_day TINYINT,
  IN p_month VARCHAR(16) {period}, IN p_month_count INT, IN p_month_left INT, IN p_new_month TINYINT,
  IN p_activity_name VARCHAR(128) CHARACTER SET utf8mb4, IN p_strategy_id BIGINT,
  IN p_award_id INT, IN p_award_title VARCHAR(256) CHARACTER SET utf8mb4, IN p_at DATETIME,
  IN p_topic1 VARCHAR(64) CHARACTER SET utf8mb4, IN p_message_id1 VARCHAR(64) CHARACTER SET utf8mb4, IN p_message1 TEXT CHARACTER SET utf8mb4,
  IN p_topic2 VARCHAR(64) CHARACTER SET utf8mb4, IN p_message_id2 VARCHAR(64) CHARACTER SET utf8mb4, IN p_message2 TEXT CHARACTER SET utf8mb4,
  IN p_topic3 VARCHAR(64) CHARACTER SET utf8mb4, IN p_message_id3 VARCHAR(64) CHARACTER SET utf8mb4, IN p_message3 TEXT CHARACTER SET utf8mb4{trace_param})
  MODIFIES SQL DATA
  COMMENT 'big-market: save a decided draw in one transaction'
proc: BEGIN
  DECLARE v_version BIGINT DEFAULT NULL;
  DECLARE v_step VARCHAR(16) DEFAULT '';
  DECLARE EXIT HANDLER FOR 1062
  BEGIN
    ROLLBACK;
    SELECT CONCAT('duplicate_', v_step) AS outcome;
  END;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION
  BEGIN
    ROLLBACK;
    RESIGNAL;
  END;
  START TRANSACTION;
  IF p_reused THEN
    SELECT version INTO v_version FROM raffle_activity_account
     WHERE user_id = p_user_id AND activity_id = p_activity_id FOR UPDATE;
    IF v_version IS NULL OR v_version <> p_version THEN
      ROLLBACK;
      SELECT 'moved' AS outcome;
      LEAVE proc;
    END IF;
    UPDATE `user_raffle_order_{tb}` SET order_state = 'used'
     WHERE user_id = p_user_id AND order_id = p_order_id AND order_state = 'create';
    IF ROW_COUNT() <> 1 THEN
      ROLLBACK;
      SELECT 'moved' AS outcome;
      LEAVE proc;
    END IF;
  ELSE
    UPDATE raffle_activity_account
       SET total_count_surplus = total_count_surplus - 1, day_count_surplus = p_day_left,
           month_count_surplus = p_month_left, version = version + 1
     WHERE user_id = p_user_id AND activity_id = p_activity_id AND version = p_version
       AND total_count_surplus > 0;
    IF ROW_COUNT() <> 1 THEN
      ROLLBACK;
      SELECT 'moved' AS outcome;
      LEAVE proc;
    END IF;
{month}{day}    SET v_step = 'ticket';
    INSERT INTO `user_raffle_order_{tb}` (user_id, activity_id, activity_name, strategy_id, order_id, order_time, order_state)
    VALUES (p_user_id, p_activity_id, p_activity_name, p_strategy_id, p_order_id, p_at, 'used');
  END IF;
  SET v_step = 'award';
  INSERT INTO `user_award_record_{tb}` (user_id, activity_id, strategy_id, order_id, award_id, award_title, award_time, award_state)
  VALUES (p_user_id, p_activity_id, p_strategy_id, p_order_id, p_award_id, p_award_title, p_at, 'create');
  SET v_step = 'task';
  IF p_topic3 IS NOT NULL THEN
    INSERT INTO task (user_id, topic, message_id, message, state{trace_column})
    VALUES (p_user_id, p_topic1, p_message_id1, p_message1, 'create'{trace_value}),
           (p_user_id, p_topic2, p_message_id2, p_message2, 'create'{trace_value}),
           (p_user_id, p_topic3, p_message_id3, p_message3, 'create'{trace_value});
  ELSEIF p_topic2 IS NOT NULL THEN
    INSERT INTO task (user_id, topic, message_id, message, state{trace_column})
    VALUES (p_user_id, p_topic1, p_message_id1, p_message1, 'create'{trace_value}),
           (p_user_id, p_topic2, p_message_id2, p_message2, 'create'{trace_value});
  ELSE
    INSERT INTO task (user_id, topic, message_id, message, state{trace_column})
    VALUES (p_user_id, p_topic1, p_message_id1, p_message1, 'create'{trace_value});
  END IF;
  COMMIT;
  SELECT 'saved' AS outcome;
END"
    )
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let user = column_charset(manager, "raffle_activity_account", "user_id").await?;
        let order = column_charset(manager, "user_raffle_order_000", "order_id").await?;
        let period = column_charset(manager, "raffle_activity_account_day", "day").await?;
        let mut sql = Vec::new();
        for index in 0..SPLIT_TABLE_COUNT {
            sql.push(format!("DROP PROCEDURE IF EXISTS `{}`", procedure_name(index)));
            sql.push(create_sql(index, &user, &order, &period));
        }
        execute_all(manager, sql).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = (0..SPLIT_TABLE_COUNT)
            .map(|index| format!("DROP PROCEDURE IF EXISTS `{}`", procedure_name(index)))
            .collect();
        execute_all(manager, sql).await
    }
}
