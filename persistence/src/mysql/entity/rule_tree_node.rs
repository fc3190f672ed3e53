//! Entity of the `rule_tree_node` table.
#![allow(missing_docs)]

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "rule_tree_node")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: u64,
    pub tree_id: String,
    pub rule_key: String,
    pub rule_value: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
