//! Entity of the `award` table.
#![allow(missing_docs)]

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "award")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: u64,
    pub award_id: i32,
    pub award_key: String,
    pub award_config: String,
    pub award_desc: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
