//! Entity of the `rule_tree` table.
#![allow(missing_docs)]

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "rule_tree")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: u64,
    pub tree_id: String,
    pub tree_name: String,
    pub tree_node_rule_key: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
