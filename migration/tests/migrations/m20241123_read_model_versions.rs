//! `m20241123_000003_read_model_versions`: a `version` on the accounts, bumped by every write,
//! so the read models apply changes in order.

use anyhow::{Context, ensure};
use migration::ShardMigrator;
use migration::sea_orm_migration::MigratorTrait;
use migration::sea_orm_migration::sea_orm::DatabaseConnection;
use test_support::schema::{
    SchemaSnapshot, column_names, columns, keys_and_options, query_strings, row_counts, table_indexes,
};

use crate::m20241123_outbox_relay::assert_outbox_additions;
use crate::m20241123_widen_ids::assert_id_widths;
use crate::support::{
    Shard, ShardRoundTrip, columns_appended_from, original_business_columns, shard_round_trip, with_audit_columns,
};

/// The shard migration adding the row versions of the read models.
pub(crate) const READ_MODEL_VERSIONS: &str = "m20241123_000003_read_model_versions";

/// Tables `m20241123_000003_read_model_versions` appends `version` to (after `update_time`).
pub(crate) const VERSIONED_TABLES: &[&str] = &["raffle_activity_account", "user_credit_account"];

/// The column `m20241123_000003_read_model_versions` appends: name, `COLUMN_TYPE`,
/// `IS_NULLABLE`, default and comment.
pub(crate) const VERSION_COLUMN: (&str, &str, &str, &str, &str) =
    ("version", "bigint(20)", "NO", "0", "变更版本（读模型）");

/// Asserts that the `version` columns of `m20241123_000003_read_model_versions` are in shard
/// `database` with their exact definition, appended after the original columns and in no index
/// (`present`), or all gone, leaving those tables' columns as in the original dump.
pub(crate) async fn assert_version_columns(
    server: &DatabaseConnection,
    database: &str,
    present: bool,
) -> anyhow::Result<()> {
    let (column, column_type, nullable, default, comment) = VERSION_COLUMN;
    let all_columns = columns(server, database).await?;
    for &table in VERSIONED_TABLES {
        let mut expected = with_audit_columns(original_business_columns(table)?);
        let info = all_columns.iter().find(|c| c.table == table && c.column == column);
        if present {
            expected.push(column.to_owned());
            let info = info.with_context(|| format!("{database}.{table}.{column} is missing"))?;
            assert_eq!(
                (
                    info.column_type.as_str(),
                    info.is_nullable.as_str(),
                    info.default.as_str(),
                    info.extra.as_str(),
                    info.comment.as_str(),
                ),
                (column_type, nullable, default, "", comment),
                "(type, nullable, default, extra, comment) of {database}.{table}.{column}"
            );
        } else {
            ensure!(info.is_none(), "{database}.{table}.{column} survived the rollback");
        }
        assert_eq!(
            column_names(server, database, table).await?,
            expected,
            "columns of {database}.{table}"
        );
        let indexed: Vec<String> = table_indexes(server, database, table)
            .await?
            .into_iter()
            .filter(|(_, index)| index.columns.iter().any(|c| c == column))
            .map(|(name, _)| name)
            .collect();
        ensure!(
            indexed.is_empty(),
            "{database}.{table}.{column} is in indexes {indexed:?}"
        );
    }
    Ok(())
}

/// `version` of every row of `database`.`table`, sorted.
async fn versions(server: &DatabaseConnection, database: &str, table: &str) -> anyhow::Result<Vec<String>> {
    let sql = format!("SELECT CAST(`version` AS CHAR) FROM `{database}`.`{table}` ORDER BY `version`");
    Ok(query_strings(server, &sql, Vec::new(), 1)
        .await?
        .into_iter()
        .flatten()
        .collect())
}

/// The read-model versions migration rolls back to the accounts without `version`, keeping their
/// rows and every earlier migration (outbox additions, widened ids), and applies again to the same
/// schema as before, the existing accounts restarting at version 0. It also applies when one of
/// its columns is already there (a rerun after a partial up: MySQL DDL is not transactional).
#[tokio::test]
async fn read_model_versions_roll_back_and_apply_again() -> anyhow::Result<()> {
    shard_round_trip(ReadModelVersions).await
}

struct ReadModelVersions;

impl ShardRoundTrip for ReadModelVersions {
    const MIGRATION: &'static str = READ_MODEL_VERSIONS;

    async fn assert_effects(&self, shard: &Shard<'_>, applied: bool) -> anyhow::Result<()> {
        assert_version_columns(shard.server, shard.name, applied).await
    }

    /// Accounts with and without a version, a task and a consumed message.
    async fn prepare(&self, shard: &Shard<'_>) -> anyhow::Result<()> {
        shard
            .exec(&[
                "INSERT INTO raffle_activity_account (user_id, activity_id, total_count, total_count_surplus, day_count, \
                 day_count_surplus, month_count, month_count_surplus, version) VALUES ('xiaofuge', 100301, 10, 7, 5, 2, 10, 7, 3)",
                "INSERT INTO user_credit_account (user_id, total_amount, available_amount, account_status, version) \
                 VALUES ('xiaofuge', 10.00, 10.00, 'open', 5)",
                "INSERT INTO user_credit_account (user_id, total_amount, available_amount, account_status) \
                 VALUES ('liergou', 0.00, 0.00, 'open')",
                "INSERT INTO task (user_id, topic, message_id, message, state, attempts, last_error) \
                 VALUES ('xiaofuge', 'send_award', '1856297216412340224', '{}', 'create', 2, 'broker down')",
                "INSERT INTO inbox (message_id, topic, user_id) VALUES ('1856297216412340224', 'send_award', 'xiaofuge')",
            ])
            .await?;
        let (server, name) = (shard.server, shard.name);
        assert_eq!(versions(server, name, "raffle_activity_account").await?, ["3"]);
        assert_eq!(versions(server, name, "user_credit_account").await?, ["0", "5"]);
        Ok(())
    }

    /// Only the `version` columns go (and the later ticket-lookup index); everything else stays.
    async fn after_down(&self, shard: &Shard<'_>, up: &SchemaSnapshot) -> anyhow::Result<()> {
        let (server, name) = (shard.server, shard.name);
        assert_outbox_additions(server, name, true).await?;
        assert_id_widths(server, name, true).await?;
        let (keys, options) = keys_and_options(server, name).await?;
        let appended = columns_appended_from(READ_MODEL_VERSIONS)?;
        assert_eq!(
            columns(server, name).await?,
            crate::support::before_binary_ids(up.columns_without(&appended)),
            "columns of {name} after down"
        );
        // Rolling back through the versions also rolled back the later ticket-lookup index.
        assert_eq!(
            keys,
            up.keys_without_index(migration::TICKET_LOOKUP_INDEX),
            "keys of {name} after down"
        );
        assert_eq!(options, up.options, "table options of {name} after down");
        Ok(())
    }

    /// The kept rows restart at version 0; a rerun after a partial up adds only the missing column.
    async fn after_up_again(&self, shard: &Shard<'_>, up: &SchemaSnapshot) -> anyhow::Result<()> {
        let (server, name) = (shard.server, shard.name);
        let (version, ..) = VERSION_COLUMN;
        for &table in VERSIONED_TABLES {
            let count = row_counts(server, name).await?[table];
            let zeros = vec!["0".to_owned(); usize::try_from(count)?];
            assert_eq!(
                versions(server, name, table).await?,
                zeros,
                "{name}.{table}.{version} after down + up"
            );
        }

        // Up after a partial up (one column already added): adds only the missing one.
        ShardMigrator::down(shard.db, Some(shard.steps)).await?;
        assert_version_columns(server, name, false).await?;
        shard
            .exec(&[
                "ALTER TABLE `raffle_activity_account` ADD COLUMN `version` bigint(20) NOT NULL DEFAULT 0 \
                 COMMENT '变更版本（读模型）'",
            ])
            .await?;
        ShardMigrator::up(shard.db, None).await?;
        shard.assert_applied(&shard.names, "after a partial up").await?;
        assert_version_columns(server, name, true).await?;
        assert!(
            SchemaSnapshot::take(server, name).await? == *up,
            "schema of {name} after a partial up differs from the first up"
        );
        Ok(())
    }
}
