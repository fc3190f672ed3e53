//! [`Projected`]: an output value answered by projecting a prebuilt value onto the query's
//! selection, instead of resolving it field by field.
//!
//! A read model that is computed whole (the raffle page: 132 fields of plain data) costs more to
//! resolve through the executor — a future, a context and a value per field — than to compute.
//! `Projected<T>` registers `T`'s type (so the schema, validation and introspection are `T`'s)
//! but answers with `T` serialized once, projected onto the selection: aliases, `__typename`,
//! fragments (named and inline) and repeated fields merged, as the executor would. It suits types
//! whose fields are plain data (serde names equal to the GraphQL field names, no arguments, no
//! errors); a test compares it with the derived resolver for each type it serves.

use std::borrow::Cow;
use std::marker::PhantomData;

use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{Selection, SelectionSet};
use async_graphql::registry::{MetaTypeName, Registry};
use async_graphql::{ContextSelectionSet, Name, OutputType, Positioned, ServerError, ServerResult, Value};
use serde::Serialize;

/// `T` answered by projection (see the module documentation).
pub struct Projected<T> {
    value: Value,
    _type: PhantomData<fn() -> T>,
}

impl<T: Serialize> Projected<T> {
    /// Serializes `data` once.
    ///
    /// # Errors
    /// When `data` does not serialize (it is plain data: it always does).
    pub fn new(data: &T) -> Result<Self, ServerError> {
        let value = async_graphql::to_value(data).map_err(|e| ServerError::new(e.to_string(), None))?;
        Ok(Self {
            value,
            _type: PhantomData,
        })
    }
}

impl<T: OutputType> OutputType for Projected<T> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        T::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        _field: &Positioned<async_graphql::parser::types::Field>,
    ) -> ServerResult<Value> {
        let projection = Projection {
            registry: &ctx.schema_env.registry,
            fragments: &ctx.query_env.fragments,
        };
        Ok(projection.project(&self.value, &ctx.item.node, &T::type_name()))
    }
}

/// What a projection needs of the query and the schema.
struct Projection<'a> {
    registry: &'a Registry,
    fragments: &'a std::collections::HashMap<Name, Positioned<async_graphql::parser::types::FragmentDefinition>>,
}

impl Projection<'_> {
    /// `value` (of type `type_name`, or a list of it) projected onto `set`.
    fn project(&self, value: &Value, set: &SelectionSet, type_name: &str) -> Value {
        match value {
            Value::Object(fields) => {
                let mut out = IndexMap::with_capacity(set.items.len());
                self.collect(fields, set, type_name, &mut out);
                Value::Object(out)
            }
            Value::List(items) => Value::List(items.iter().map(|v| self.project(v, set, type_name)).collect()),
            other => other.clone(),
        }
    }

    /// The type of field `name` of `type_name`, without list and non-null wrappers.
    fn field_type(&self, type_name: &str, name: &str) -> &str {
        self.registry
            .types
            .get(type_name)
            .and_then(|t| t.field_by_name(name))
            .map_or("", |f| MetaTypeName::concrete_typename(&f.ty))
    }

    fn collect(
        &self,
        fields: &IndexMap<Name, Value>,
        set: &SelectionSet,
        type_name: &str,
        out: &mut IndexMap<Name, Value>,
    ) {
        for selection in &set.items {
            match &selection.node {
                Selection::Field(f) => {
                    let f = &f.node;
                    let key = f.response_key().node.clone();
                    let name = f.name.node.as_str();
                    let value = if name == "__typename" {
                        Value::String(type_name.to_owned())
                    } else {
                        let found = fields.get(name).unwrap_or(&Value::Null);
                        if f.selection_set.node.items.is_empty() {
                            found.clone()
                        } else {
                            self.project(found, &f.selection_set.node, self.field_type(type_name, name))
                        }
                    };
                    match out.get_mut(&key) {
                        // A field selected twice under one response key: the selections merge.
                        Some(existing) => merge(existing, value),
                        None => {
                            out.insert(key, value);
                        }
                    }
                }
                Selection::FragmentSpread(spread) => {
                    if let Some(fragment) = self.fragments.get(&spread.node.fragment_name.node) {
                        if fragment.node.type_condition.node.on.node.as_str() == type_name {
                            self.collect(fields, &fragment.node.selection_set.node, type_name, out);
                        }
                    }
                }
                Selection::InlineFragment(inline) => {
                    let applies = inline
                        .node
                        .type_condition
                        .as_ref()
                        .is_none_or(|c| c.node.on.node.as_str() == type_name);
                    if applies {
                        self.collect(fields, &inline.node.selection_set.node, type_name, out);
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
    use serde::Serialize;

    use super::Projected;

    #[derive(SimpleObject, Serialize, Clone)]
    #[serde(rename_all = "camelCase")]
    struct Inner {
        item_id: i64,
        title: Option<String>,
    }

    #[derive(SimpleObject, Serialize, Clone)]
    #[serde(rename_all = "camelCase")]
    struct Outer {
        user_id: String,
        is_on: bool,
        amount: rust_decimal::Decimal,
        inner: Inner,
        items: Vec<Inner>,
    }

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
        async fn projected(&self) -> async_graphql::Result<Projected<Outer>> {
            Ok(Projected::new(&sample())?)
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
