//! Entity of the `rule_tree_node_line` table.
#![allow(missing_docs)]

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "rule_tree_node_line")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: u64,
    pub tree_id: String,
    pub rule_node_from: String,
    pub rule_node_to: String,
    pub rule_limit_type: String,
    pub rule_limit_value: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
