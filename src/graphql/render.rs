//! Plain answers written in one walk. A root `x` or `x_by_pk` field that
//! selects only columns, `__typename` and row relationships (at any depth)
//! is answered from its records at once, rather than by async-graphql
//! calling a resolver for every field of every row (a boxed future, an
//! argument map and a context each: most of a light request's own work).
//! The resolver hands async-graphql an empty answer (`[]` or null) and
//! keeps the real one here; `run` puts it in the response in its place.
//! Anything else — an aggregate under a row, a value that breaks its type
//! — is left to async-graphql, as is a request where answers could not be
//! put back by their response key alone.

use std::sync::{Mutex, PoisonError};

use async_graphql::dynamic::ResolverContext;
use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{OperationType, Selection};
use async_graphql::{Name, SelectionField, Value as GqlValue};

use super::nested;
use super::resolve::{self, included, response_key};
use super::shape::{ColumnShape, Shape, Shapes};
use crate::rest::read::{Cell, Record};

/// A request's root answers written here, by response key.
pub struct Rendered {
    /// The operation is a query whose root fields each have a response
    /// key of their own (no fragment at the root): an answer goes back
    /// under its key without merging.
    enabled: bool,
    answers: Mutex<Vec<(Name, GqlValue)>>,
}

impl Rendered {
    pub fn for_request(request: &mut async_graphql::Request) -> Self {
        let enabled = super::operation(request).is_some_and(|operation| {
            let items = &operation.selection_set.node.items;
            let mut keys = Vec::with_capacity(items.len());
            operation.ty == OperationType::Query
                && items.iter().all(|item| match &item.node {
                    Selection::Field(field) => {
                        let key = field.node.response_key().node.as_str();
                        let fresh = !keys.contains(&key);
                        keys.push(key);
                        fresh
                    }
                    _ => false,
                })
        });
        Self {
            enabled,
            answers: Mutex::default(),
        }
    }

    /// Writes the answer of the root field `ctx` resolves (`x`: `rows`,
    /// `x_by_pk`: the one row or none) when its selection is plain; `true`
    /// when it did, and the resolver answers the placeholder.
    pub fn keep(
        ctx: &ResolverContext<'_>,
        shape: &Shape,
        shapes: &Shapes,
        rows: Answer<'_>,
    ) -> bool {
        let Ok(rendered) = ctx.ctx.data::<std::sync::Arc<Rendered>>() else {
            return false;
        };
        if !rendered.enabled {
            return false;
        }
        let field = ctx.ctx.field();
        let Some(level) = Level::of(&field, shape, shapes) else {
            return false;
        };
        let answer = match rows {
            Answer::Rows(records) => records
                .iter()
                .map(|record| level.row(record))
                .collect::<Option<Vec<_>>>()
                .map(GqlValue::List),
            Answer::Row(record) => record.map_or(Some(GqlValue::Null), |r| level.row(r)),
        };
        let Some(answer) = answer else {
            return false;
        };
        rendered
            .answers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((Name::new(response_key(&field)), answer));
        true
    }

    /// Puts the written answers in the response in place of their
    /// placeholders.
    pub fn splice(&self, response: &mut async_graphql::Response) {
        let answers =
            std::mem::take(&mut *self.answers.lock().unwrap_or_else(PoisonError::into_inner));
        if answers.is_empty() {
            return;
        }
        let GqlValue::Object(data) = &mut response.data else {
            return;
        };
        for (key, answer) in answers {
            if let Some(slot) = data.get_mut(&key) {
                *slot = answer;
            }
        }
    }
}

/// What a root field read.
pub enum Answer<'r> {
    Rows(&'r [Record]),
    Row(Option<&'r Record>),
}

/// What a selection set answers for each row of one collection.
struct Level<'s> {
    typename: &'s str,
    fields: Vec<(Name, Part<'s>)>,
}

enum Part<'s> {
    Typename,
    Column(&'s ColumnShape),
    /// A relation's answer, attached to the row under its slot.
    One(String, Level<'s>),
    Many(String, Level<'s>),
}

impl<'s> Level<'s> {
    /// `None`: the selection holds something else than columns,
    /// `__typename` and row relationships, or a relation twice under one
    /// response key (async-graphql merges those).
    fn of(field: &SelectionField<'_>, shape: &'s Shape, shapes: &'s Shapes) -> Option<Self> {
        let mut fields: Vec<(Name, Part<'s>)> = Vec::new();
        for selected in included(field) {
            let name = selected.name();
            let part = if name == "__typename" {
                Part::Typename
            } else if let Some(column) = shape.column(name) {
                Part::Column(column)
            } else {
                let (relation, false) = nested::relation_field(shape, name)? else {
                    return None;
                };
                let target = shapes.get(&relation.target)?;
                let inner = Level::of(&selected, target, shapes)?;
                let slot = nested::slot(&response_key(&selected));
                if relation.many {
                    Part::Many(slot, inner)
                } else {
                    Part::One(slot, inner)
                }
            };
            let key = selected.alias().unwrap_or(name);
            if let Some((_, known)) = fields.iter().find(|(k, _)| k.as_str() == key) {
                // The same column or `__typename` again answers the same.
                match (known, &part) {
                    (Part::Typename, Part::Typename) => continue,
                    (Part::Column(a), Part::Column(b)) if a.name == b.name => continue,
                    _ => return None,
                }
            }
            fields.push((Name::new(key), part));
        }
        Some(Self {
            typename: &shape.name,
            fields,
        })
    }

    /// One row's answer (`None`: one the types refuse, a null in a
    /// non-null column, or a relation not read with it).
    fn row(&self, record: &Record) -> Option<GqlValue> {
        let mut object = IndexMap::with_capacity(self.fields.len());
        for (key, part) in &self.fields {
            let value = match part {
                Part::Typename => GqlValue::String(self.typename.to_string()),
                Part::Column(column) => column_answer(record, column)?,
                Part::One(slot, inner) => match cell(record, slot)? {
                    Cell::One(Some(related)) => inner.row(related)?,
                    Cell::One(None) => GqlValue::Null,
                    _ => return None,
                },
                Part::Many(slot, inner) => match cell(record, slot)? {
                    Cell::Many(related) => GqlValue::List(
                        related
                            .iter()
                            .map(|r| inner.row(r))
                            .collect::<Option<Vec<_>>>()?,
                    ),
                    _ => return None,
                },
            };
            object.insert(key.clone(), value);
        }
        Some(GqlValue::Object(object))
    }
}

/// A column's answer (`None`: a value its type refuses, or a null in a
/// non-null column).
fn column_answer(record: &Record, column: &ColumnShape) -> Option<GqlValue> {
    match resolve::column_value(record, column) {
        Some(value) => Some(value),
        None if column.nullable => Some(GqlValue::Null),
        None => None,
    }
}

/// The answer to a mutation field that answers a row, kept while its write
/// is held back to go out with the request's last ones
/// ([`super::mutation`]): a selection of columns and `__typename` only.
pub struct WrittenRow {
    typename: String,
    /// Each response key and its column (`None`: `__typename`).
    fields: Vec<(Name, Option<ColumnShape>)>,
}

impl WrittenRow {
    /// `None` when `field` selects anything else than columns and
    /// `__typename`.
    pub fn of(field: &SelectionField<'_>, shape: &Shape, shapes: &Shapes) -> Option<Self> {
        let fields = Level::of(field, shape, shapes)?
            .fields
            .into_iter()
            .map(|(key, part)| match part {
                Part::Typename => Some((key, None)),
                Part::Column(column) => Some((key, Some(column.clone()))),
                Part::One(..) | Part::Many(..) => None,
            })
            .collect::<Option<_>>()?;
        Some(Self {
            typename: shape.name.clone(),
            fields,
        })
    }

    /// The answer for the written row (null for none); `None` when a value
    /// breaks its type.
    pub fn answer(&self, record: Option<&Record>) -> Option<GqlValue> {
        let Some(record) = record else {
            return Some(GqlValue::Null);
        };
        let mut object = IndexMap::with_capacity(self.fields.len());
        for (key, column) in &self.fields {
            let value = match column {
                None => GqlValue::String(self.typename.clone()),
                Some(column) => column_answer(record, column)?,
            };
            object.insert(key.clone(), value);
        }
        Some(GqlValue::Object(object))
    }
}

fn cell<'r>(record: &'r Record, slot: &str) -> Option<&'r Cell> {
    record
        .0
        .iter()
        .find(|(name, _)| **name == *slot)
        .map(|(_, cell)| cell)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled(query: &str, operation: Option<&str>) -> bool {
        let mut request = async_graphql::Request::new(query);
        if let Some(name) = operation {
            request = request.operation_name(name);
        }
        Rendered::for_request(&mut request).enabled
    }

    #[test]
    fn queries_whose_root_answers_go_back_by_key_alone_are_written() {
        assert!(enabled("{ a { id } b: a { id } }", None));
        assert!(enabled("query Q { a { id } }", None));
        assert!(enabled(
            "query Q { a { id } } query R { b { id } }",
            Some("R")
        ));
        // Which operation runs is unknown, or the answers would merge.
        assert!(!enabled("query Q { a { id } } query R { b { id } }", None));
        assert!(!enabled("{ a { id } a { name } }", None));
        assert!(!enabled("{ ... on Query { a { id } } }", None));
        assert!(!enabled("{ ...F } fragment F on Query { a { id } }", None));
        assert!(!enabled(
            "mutation { delete_a(where: {}) { affected_rows } }",
            None
        ));
        assert!(!enabled("{ a { id ", None));
    }
}
