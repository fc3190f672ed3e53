//! `m20241123_000002_outbox_relay`: the outbox relay's bookkeeping on `task` (attempts, due
//! time, last error, published / delivered times and the index to claim due rows), the `inbox`
//! of the idempotent consumers and one credit account per user.

use std::collections::BTreeMap;

use anyhow::{Context, ensure};
use migration::sea_orm_migration::sea_orm::DatabaseConnection;
use test_support::schema::{ColumnInfo, IndexInfo, SchemaSnapshot, column_names, columns, table_indexes, tables};

use crate::m20241123_read_model_versions::assert_version_columns;
use crate::support::{
    Shard, ShardRoundTrip, original_business_columns, original_shard_tables, shard_round_trip, with_audit_columns,
};

/// The shard migration adding the outbox relay / idempotent consumer bookkeeping.
pub(crate) const OUTBOX_RELAY: &str = "m20241123_000002_outbox_relay";

/// Columns `m20241123_000002_outbox_relay` appends to `task` (after `update_time`): name,
/// `COLUMN_TYPE`, `IS_NULLABLE` and default (`None`: no default, i.e. `NULL`).
pub(crate) const OUTBOX_TASK_COLUMNS: &[(&str, &str, &str, Option<&str>)] = &[
    ("attempts", "int(8)", "NO", Some("0")),
    ("next_attempt_at", "datetime(3)", "YES", None),
    ("last_error", "varchar(512)", "YES", None),
    ("published_at", "datetime(3)", "YES", None),
    ("delivered_at", "datetime(3)", "YES", None),
];

/// The index `m20241123_000002_outbox_relay` adds to `task` to claim due rows.
pub(crate) const OUTBOX_TASK_INDEX: (&str, &[&str]) = ("idx_state_next_attempt", &["state", "next_attempt_at"]);

/// The table `m20241123_000002_outbox_relay` creates, its columns and its unique key.
pub(crate) const OUTBOX_INBOX: &str = "inbox";
pub(crate) const INBOX_COLUMNS: &[&str] = &["id", "message_id", "topic", "user_id", "create_time"];
pub(crate) const INBOX_UNIQUE_KEY: (&str, &[&str]) = ("uq_message_id_topic", &["message_id", "topic"]);

/// The unique key `m20241123_000002_outbox_relay` adds to `user_credit_account`.
pub(crate) const CREDIT_ACCOUNT_UNIQUE_KEY: (&str, &[&str]) = ("uq_user_id", &["user_id"]);

/// Asserts that the additions of `m20241123_000002_outbox_relay` to shard `database` are all
/// there with their exact definitions (`present`), or all gone, leaving the tables they touch as
/// in the original dump.
pub(crate) async fn assert_outbox_additions(
    server: &DatabaseConnection,
    database: &str,
    present: bool,
) -> anyhow::Result<()> {
    // `task`: the bookkeeping columns, appended in order, and the index to claim due rows.
    let task: BTreeMap<String, ColumnInfo> = columns(server, database)
        .await?
        .into_iter()
        .filter(|c| c.table == "task")
        .map(|c| (c.column.clone(), c))
        .collect();
    let original_task = with_audit_columns(original_business_columns("task")?);
    let mut expected_task = original_task.clone();
    for &(column, column_type, nullable, default) in OUTBOX_TASK_COLUMNS {
        if !present {
            ensure!(
                !task.contains_key(column),
                "{database}.task.{column} survived the rollback"
            );
            continue;
        }
        expected_task.push(column.to_owned());
        let info = task
            .get(column)
            .with_context(|| format!("{database}.task.{column} is missing"))?;
        assert_eq!(
            (info.column_type.as_str(), info.is_nullable.as_str()),
            (column_type, nullable),
            "type of {database}.task.{column}"
        );
        match default {
            Some(default) => assert_eq!(info.default, default, "default of {database}.task.{column}"),
            // No default: MariaDB reports the literal `NULL`, MySQL an SQL NULL.
            None => assert!(
                matches!(info.default.as_str(), "NULL" | "<NULL>"),
                "default of {database}.task.{column}: {}",
                info.default
            ),
        }
    }
    // Columns a later migration appends (`task.traceparent`) are checked by its own test.
    let later = [migration::TRACE_CONTEXT_COLUMN];
    let actual: Vec<String> = column_names(server, database, "task")
        .await?
        .into_iter()
        .filter(|c| !later.contains(&c.as_str()))
        .collect();
    assert_eq!(actual, expected_task, "columns of {database}.task");
    let (index, index_columns) = OUTBOX_TASK_INDEX;
    let task_indexes = table_indexes(server, database, "task").await?;
    let expected = present.then(|| IndexInfo {
        unique: false,
        columns: index_columns.iter().map(|&c| c.to_owned()).collect(),
    });
    assert_eq!(task_indexes.get(index), expected.as_ref(), "{database}.task.{index}");

    // `inbox`: the consumed messages, unique per (message_id, topic).
    let has_inbox = tables(server, database).await?.iter().any(|t| t == OUTBOX_INBOX);
    assert_eq!(has_inbox, present, "{database}.{OUTBOX_INBOX} exists");
    if present {
        assert_eq!(
            column_names(server, database, OUTBOX_INBOX).await?,
            INBOX_COLUMNS,
            "columns of {database}.{OUTBOX_INBOX}"
        );
        let (key, key_columns) = INBOX_UNIQUE_KEY;
        let unique = IndexInfo {
            unique: true,
            columns: key_columns.iter().map(|&c| c.to_owned()).collect(),
        };
        let inbox_indexes = table_indexes(server, database, OUTBOX_INBOX).await?;
        assert_eq!(inbox_indexes.get(key), Some(&unique), "{database}.{OUTBOX_INBOX}.{key}");
    }

    // `user_credit_account`: one account per user.
    let (key, key_columns) = CREDIT_ACCOUNT_UNIQUE_KEY;
    let expected = present.then(|| IndexInfo {
        unique: true,
        columns: key_columns.iter().map(|&c| c.to_owned()).collect(),
    });
    let account_indexes = table_indexes(server, database, "user_credit_account").await?;
    assert_eq!(
        account_indexes.get(key),
        expected.as_ref(),
        "{database}.user_credit_account.{key}"
    );
    Ok(())
}

/// The outbox relay migration rolls back to the original `task` and `user_credit_account` (no
/// `inbox`), keeping the rows, and applies again to the same schema as before. The migrations
/// after it (the read-model versions) are rolled back and applied again with it.
#[tokio::test]
async fn outbox_relay_rolls_back_and_applies_again() -> anyhow::Result<()> {
    shard_round_trip(OutboxRelay).await
}

struct OutboxRelay;

impl ShardRoundTrip for OutboxRelay {
    const MIGRATION: &'static str = OUTBOX_RELAY;

    /// The additions, and the `version` columns of the later migration.
    async fn assert_effects(&self, shard: &Shard<'_>, applied: bool) -> anyhow::Result<()> {
        assert_outbox_additions(shard.server, shard.name, applied).await?;
        assert_version_columns(shard.server, shard.name, applied).await
    }

    /// A task with attempts, an account and a consumed message.
    async fn prepare(&self, shard: &Shard<'_>) -> anyhow::Result<()> {
        shard
            .exec(&[
                "INSERT INTO task (user_id, topic, message_id, message, state, attempts, last_error) \
                 VALUES ('xiaofuge', 'send_award', '1856297216412340224', '{}', 'create', 2, 'broker down')",
                "INSERT INTO user_credit_account (user_id, total_amount, available_amount, account_status) \
                 VALUES ('xiaofuge', 10.00, 10.00, 'open')",
                "INSERT INTO inbox (message_id, topic, user_id) VALUES ('1856297216412340224', 'send_award', 'xiaofuge')",
            ])
            .await
    }

    /// The tables of the original dump, without the unique key on the accounts.
    async fn after_down(&self, shard: &Shard<'_>, _up: &SchemaSnapshot) -> anyhow::Result<()> {
        let name = shard.name;
        let mut expected: Vec<String> = original_shard_tables().into_iter().map(|(table, _)| table).collect();
        expected.push("seaql_migrations".into());
        expected.sort();
        assert_eq!(
            tables(shard.server, name).await?,
            expected,
            "tables of {name} after down"
        );
        // Without the unique key, a second account of the same user is accepted again.
        shard
            .exec(&[
                "INSERT INTO user_credit_account (user_id, total_amount, available_amount, account_status) \
                 VALUES ('xiaofuge', 0.00, 0.00, 'open')",
                "DELETE FROM user_credit_account WHERE total_amount = 0",
            ])
            .await
    }

    /// The keys are enforced again.
    async fn after_up_again(&self, shard: &Shard<'_>, _up: &SchemaSnapshot) -> anyhow::Result<()> {
        let duplicate_account = shard
            .exec(&[
                "INSERT INTO user_credit_account (user_id, total_amount, available_amount, account_status) \
                 VALUES ('xiaofuge', 0.00, 0.00, 'open')",
            ])
            .await;
        ensure!(duplicate_account.is_err(), "uq_user_id must reject a second account");
        shard
            .exec(&["INSERT INTO inbox (message_id, topic, user_id) VALUES ('1', 'send_award', 'xiaofuge')"])
            .await?;
        let duplicate_message = shard
            .exec(&["INSERT INTO inbox (message_id, topic, user_id) VALUES ('1', 'send_award', 'xiaofuge')"])
            .await;
        ensure!(duplicate_message.is_err(), "inbox must reject a message consumed twice");
        shard
            .exec(&["INSERT INTO inbox (message_id, topic, user_id) VALUES ('1', 'send_rebate', 'xiaofuge')"])
            .await
    }
}
