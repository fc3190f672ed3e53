//! Loading strategy configuration from the config database.

use std::collections::BTreeSet;

use domain::ids::{AwardId, StrategyId};
use domain::ports::{PortError, StrategyRepository};
use domain::strategy::{AwardCatalogEntry, RuleTreeConfig, StrategyAwardConfig, StrategyConfig};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};

use crate::mysql::db::Db;

use crate::mysql::entity::{
    award, rule_tree, rule_tree_node, rule_tree_node_line, strategy, strategy_award, strategy_rule,
};

/// [`StrategyRepository`] on MySQL (SeaORM).
#[derive(Debug, Clone)]
pub struct MySqlStrategyRepository {
    db: Db,
}

impl MySqlStrategyRepository {
    /// A repository over the config database.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    async fn load(&self, strategy_id: StrategyId) -> Result<Option<StrategyConfig>, DbErr> {
        let Some(s) = strategy::Entity::find()
            .filter(strategy::Column::StrategyId.eq(strategy_id.get()))
            .order_by_asc(strategy::Column::Id)
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let awards = strategy_award::Entity::find()
            .filter(strategy_award::Column::StrategyId.eq(strategy_id.get()))
            .order_by_asc(strategy_award::Column::Sort)
            .order_by_asc(strategy_award::Column::Id)
            .all(&self.db)
            .await?;
        let rules = strategy_rule::Entity::find()
            .filter(strategy_rule::Column::StrategyId.eq(strategy_id.get()))
            .filter(strategy_rule::Column::AwardId.is_null())
            .order_by_asc(strategy_rule::Column::Id)
            .all(&self.db)
            .await?;
        let tree_ids: BTreeSet<String> = awards
            .iter()
            .filter_map(|a| a.rule_models.as_deref())
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        let trees = self.load_trees(&tree_ids).await?;
        let catalog = award::Entity::find()
            .order_by_asc(award::Column::AwardId)
            .all(&self.db)
            .await?;
        Ok(Some(StrategyConfig {
            strategy_id,
            strategy_desc: s.strategy_desc,
            rule_models: s.rule_models,
            awards: awards
                .into_iter()
                .map(|a| StrategyAwardConfig {
                    award_id: AwardId::new(a.award_id),
                    award_title: a.award_title,
                    award_subtitle: a.award_subtitle,
                    award_count: a.award_count,
                    award_count_surplus: a.award_count_surplus,
                    award_rate: a.award_rate,
                    rule_models: a.rule_models,
                    sort: a.sort,
                })
                .collect(),
            rules: rules.into_iter().map(|r| (r.rule_model, r.rule_value)).collect(),
            trees,
            catalog: catalog
                .into_iter()
                .map(|a| AwardCatalogEntry {
                    award_id: AwardId::new(a.award_id),
                    award_key: a.award_key,
                    award_config: a.award_config,
                    award_desc: a.award_desc,
                })
                .collect(),
        }))
    }

    /// Loads trees; a referenced tree without a `rule_tree` row is simply absent, which
    /// arming reports as a dangling reference.
    async fn load_trees(&self, ids: &BTreeSet<String>) -> Result<Vec<RuleTreeConfig>, DbErr> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let heads = rule_tree::Entity::find()
            .filter(rule_tree::Column::TreeId.is_in(ids.iter().cloned()))
            .all(&self.db)
            .await?;
        let nodes = rule_tree_node::Entity::find()
            .filter(rule_tree_node::Column::TreeId.is_in(ids.iter().cloned()))
            .order_by_asc(rule_tree_node::Column::Id)
            .all(&self.db)
            .await?;
        let lines = rule_tree_node_line::Entity::find()
            .filter(rule_tree_node_line::Column::TreeId.is_in(ids.iter().cloned()))
            .order_by_asc(rule_tree_node_line::Column::Id)
            .all(&self.db)
            .await?;
        Ok(heads
            .into_iter()
            .map(|t| RuleTreeConfig {
                nodes: nodes
                    .iter()
                    .filter(|n| n.tree_id == t.tree_id)
                    .map(|n| (n.rule_key.clone(), n.rule_value.clone()))
                    .collect(),
                lines: lines
                    .iter()
                    .filter(|l| l.tree_id == t.tree_id)
                    .map(|l| {
                        (
                            l.rule_node_from.clone(),
                            l.rule_node_to.clone(),
                            l.rule_limit_type.clone(),
                            l.rule_limit_value.clone(),
                        )
                    })
                    .collect(),
                root: t.tree_node_rule_key,
                tree_id: t.tree_id,
            })
            .collect())
    }
}

#[async_trait::async_trait]
impl StrategyRepository for MySqlStrategyRepository {
    async fn load_strategy(&self, strategy_id: StrategyId) -> Result<Option<StrategyConfig>, PortError> {
        self.load(strategy_id).await.map_err(|e| PortError::new("mysql", e))
    }
}
