//! [`Projected`]: an output value answered by projecting it onto the query's selection in one
//! pass, instead of resolving it field by field.
//!
//! A read model that is computed whole (the raffle page: 132 fields of plain data) costs more to
//! resolve through the executor — a future, a context and a value per field — than to compute.
//! `Projected<T>` registers `T`'s type (so the schema, validation and introspection are `T`'s,
//! derived as usual) but answers by walking the selection over `T` itself ([`Project`]):
//! aliases, `__typename`, fragments (named and inline) and repeated fields merged, as the
//! executor would, building only the answer. It suits types whose fields are plain data (no
//! arguments, no errors); [`projectable!`] lists each type's fields by their GraphQL names, and
//! a test compares the projection with the derived resolver for every type it serves.

use std::collections::HashMap;

use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{Field, FragmentDefinition, Selection, SelectionSet};
use async_graphql::{ContextSelectionSet, Name, OutputType, Positioned, ServerResult, Value};

/// A type whose fields can be projected by GraphQL name.
pub trait Project {
    /// Its GraphQL type name (`__typename`).
    const TYPE: &'static str;

    /// The value of field `name` (a GraphQL field name), with `set` the field's own selection
    /// (empty for a leaf); `Null` for an unknown name (validation rules those out).
    fn field(&self, name: &str, set: &SelectionSet, p: &Projection<'_>) -> Value;
}

/// A leaf value as the derived resolver answers it.
pub trait Leaf {
    /// The GraphQL value.
    fn leaf(&self) -> Value;
}

impl Leaf for i32 {
    fn leaf(&self) -> Value {
        Value::from(*self)
    }
}

impl Leaf for i64 {
    fn leaf(&self) -> Value {
        Value::from(*self)
    }
}

impl Leaf for bool {
    fn leaf(&self) -> Value {
        Value::Boolean(*self)
    }
}

impl Leaf for String {
    fn leaf(&self) -> Value {
        Value::String(self.clone())
    }
}

impl Leaf for rust_decimal::Decimal {
    /// As async-graphql's `Decimal` scalar: its string.
    fn leaf(&self) -> Value {
        Value::String(self.to_string())
    }
}

impl Leaf for super::scalars::Decimal {
    fn leaf(&self) -> Value {
        async_graphql::ScalarType::to_value(self)
    }
}

impl Leaf for super::scalars::DateTime {
    fn leaf(&self) -> Value {
        async_graphql::ScalarType::to_value(self)
    }
}

impl Leaf for async_graphql::ID {
    fn leaf(&self) -> Value {
        Value::String(self.0.clone())
    }
}

impl<T: Leaf> Leaf for Option<T> {
    fn leaf(&self) -> Value {
        self.as_ref().map_or(Value::Null, Leaf::leaf)
    }
}

/// Implements [`Project`] for a struct: `projectable!(Type, "GraphQLName" { field: "gqlName"
/// => leaf | object | list, … })`.
#[macro_export]
macro_rules! projectable {
    ($ty:ty, $name:literal { $($field:ident : $gql:literal => $kind:ident),* $(,)? }) => {
        impl $crate::graphql::projected::Project for $ty {
            const TYPE: &'static str = $name;

            fn field(
                &self,
                name: &str,
                set: &async_graphql::parser::types::SelectionSet,
                p: &$crate::graphql::projected::Projection<'_>,
            ) -> async_graphql::Value {
                let _ = (set, p);
                match name {
                    $( $gql => $crate::projectable!(@value $kind, self.$field, set, p), )*
                    _ => async_graphql::Value::Null,
                }
            }
        }
    };
    (@value leaf, $e:expr, $set:ident, $p:ident) => {
        $crate::graphql::projected::Leaf::leaf(&$e)
    };
    (@value object, $e:expr, $set:ident, $p:ident) => {
        $p.object(&$e, $set)
    };
    (@value list, $e:expr, $set:ident, $p:ident) => {
        async_graphql::Value::List($e.iter().map(|x| $p.object(x, $set)).collect())
    };
}

/// `T` answered by projection (see the module documentation).
pub struct Projected<T>(pub T);

impl<T: OutputType + Project> OutputType for Projected<T> {
    fn type_name() -> std::borrow::Cow<'static, str> {
        T::type_name()
    }

    fn create_type_info(registry: &mut async_graphql::registry::Registry) -> String {
        T::create_type_info(registry)
    }

    async fn resolve(&self, ctx: &ContextSelectionSet<'_>, _field: &Positioned<Field>) -> ServerResult<Value> {
        let projection = Projection {
            fragments: &ctx.query_env.fragments,
        };
        Ok(projection.object(&self.0, &ctx.item.node))
    }
}

/// What a projection needs of the query: its fragments.
pub struct Projection<'a> {
    fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
}

impl Projection<'_> {
    /// `value` projected onto `set`.
    pub fn object<T: Project>(&self, value: &T, set: &SelectionSet) -> Value {
        let mut out = IndexMap::with_capacity(set.items.len());
        self.collect(value, set, &mut out);
        Value::Object(out)
    }

    fn collect<T: Project>(&self, value: &T, set: &SelectionSet, out: &mut IndexMap<Name, Value>) {
        for selection in &set.items {
            match &selection.node {
                Selection::Field(f) => {
                    let f = &f.node;
                    let name = f.name.node.as_str();
                    let v = if name == "__typename" {
                        Value::String(T::TYPE.to_owned())
                    } else {
                        value.field(name, &f.selection_set.node, self)
                    };
                    let key = &f.response_key().node;
                    match out.get_mut(key) {
                        // A field selected twice under one response key: the selections merge.
                        Some(existing) => merge(existing, v),
                        None => {
                            out.insert(key.clone(), v);
                        }
                    }
                }
                Selection::FragmentSpread(spread) => {
                    if let Some(fragment) = self.fragments.get(&spread.node.fragment_name.node)
                        && fragment.node.type_condition.node.on.node.as_str() == T::TYPE
                    {
                        self.collect(value, &fragment.node.selection_set.node, out);
                    }
                }
                Selection::InlineFragment(inline) => {
                    let applies = inline
                        .node
                        .type_condition
                        .as_ref()
                        .is_none_or(|c| c.node.on.node.as_str() == T::TYPE);
                    if applies {
                        self.collect(value, &inline.node.selection_set.node, out);
                    }
                }
            }
        }
    }
}

/// Merges `value` into `into` (objects field by field, lists item by item).
fn merge(into: &mut Value, value: Value) {
    match (into, value) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (Value::List(a), Value::List(b)) => {
            for (x, y) in a.iter_mut().zip(b) {
                merge(x, y);
            }
        }
        (into, value) => *into = value,
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema, SimpleObject};

    use super::Projected;

    #[derive(SimpleObject, Clone)]
    struct Inner {
        item_id: i64,
        title: Option<String>,
    }

    crate::projectable!(Inner, "Inner" {
        item_id: "itemId" => leaf,
        title: "title" => leaf,
    });

    #[derive(SimpleObject, Clone)]
    struct Outer {
        user_id: String,
        is_on: bool,
        amount: rust_decimal::Decimal,
        inner: Inner,
        items: Vec<Inner>,
    }

    crate::projectable!(Outer, "Outer" {
        user_id: "userId" => leaf,
        is_on: "isOn" => leaf,
        amount: "amount" => leaf,
        inner: "inner" => object,
        items: "items" => list,
    });

    fn sample() -> Outer {
        Outer {
            user_id: "u1".into(),
            is_on: true,
            amount: rust_decimal::Decimal::new(750, 2),
            inner: Inner {
                item_id: 7,
                title: None,
            },
            items: vec![
                Inner {
                    item_id: 1,
                    title: Some("one".into()),
                },
                Inner {
                    item_id: 2,
                    title: None,
                },
            ],
        }
    }

    struct Query;

    #[Object]
    impl Query {
        async fn derived(&self) -> Outer {
            sample()
        }
        async fn projected(&self) -> Projected<Outer> {
            Projected(sample())
        }
    }

    #[tokio::test]
    async fn projection_answers_like_the_derived_resolver() {
        let schema = Schema::new(Query, EmptyMutation, EmptySubscription);
        let selections = [
            "userId isOn amount inner { itemId title } items { itemId title }",
            "__typename a: userId amount inner { __typename t: title } items { __typename itemId }",
            "...F inner { ... on Inner { itemId } } items { ... { title } itemId } \
             inner { title } isOn isOn",
            "items { itemId } items { title } inner { itemId } inner { __typename }",
        ];
        for sel in selections {
            let fragment = if sel.contains("...F") {
                "fragment F on Outer { userId items { title } }"
            } else {
                ""
            };
            let q = |field: &str| format!("{{ {field} {{ {sel} }} }} {fragment}");
            let derived = schema.execute(q("derived")).await;
            let projected = schema.execute(q("projected")).await;
            assert!(derived.errors.is_empty(), "{:?}", derived.errors);
            assert!(projected.errors.is_empty(), "{:?}", projected.errors);
            let d = serde_json::to_string(&derived.data).unwrap();
            let p = serde_json::to_string(&projected.data)
                .unwrap()
                .replace("\"projected\"", "\"derived\"");
            assert_eq!(d, p, "{sel}");
        }
    }
}
