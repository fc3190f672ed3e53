//! Stored switch values (`switch_setting` on the config database).

use chrono::NaiveDateTime;
use domain::ports::PortError;
use sea_orm::{ConnectionTrait, Statement};

use crate::mysql::db::Db;

use super::db::port_err;

/// The switch rows of the config database.
#[derive(Debug, Clone)]
pub struct MySqlSwitchStore {
    config: Db,
}

impl MySqlSwitchStore {
    /// The store of `config`.
    pub fn new(config: Db) -> Self {
        Self { config }
    }

    /// Every stored `(key, value)`.
    ///
    /// # Errors
    /// The database failed.
    pub async fn load(&self) -> Result<Vec<(String, String)>, PortError> {
        let b = self.config.get_database_backend();
        let rows = self
            .config
            .query_all(Statement::from_string(
                b,
                "SELECT switch_key, switch_value FROM switch_setting",
            ))
            .await
            .map_err(port_err)?;
        rows.iter()
            .map(|r| Ok((r.try_get("", "switch_key")?, r.try_get("", "switch_value")?)))
            .collect::<Result<_, sea_orm::DbErr>>()
            .map_err(port_err)
    }

    /// Stores `value` for `key` (validated by the caller).
    ///
    /// # Errors
    /// The database failed.
    pub async fn set(&self, key: &str, value: &str, by: &str, at: NaiveDateTime) -> Result<(), PortError> {
        let b = self.config.get_database_backend();
        self.config
            .execute(Statement::from_sql_and_values(
                b,
                "INSERT INTO switch_setting (switch_key, switch_value, updated_by, update_time) VALUES (?, ?, ?, ?) \
                 ON DUPLICATE KEY UPDATE switch_value = VALUES(switch_value), updated_by = VALUES(updated_by), \
                 update_time = VALUES(update_time)",
                [key.into(), value.into(), by.into(), at.into()],
            ))
            .await
            .map_err(port_err)?;
        Ok(())
    }
}
