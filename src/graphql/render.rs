//! Plain answers written in one walk. A root `x` or `x_by_pk` field that
//! selects only columns, `__typename` and row relationships (at any depth)
//! is answered from its records at once, rather than by async-graphql
//! calling a resolver for every field of every row (a boxed future, an
//! argument map and a context each: most of a light request's own work).
//! The resolver hands async-graphql an empty answer (`[]` or null) and
//! keeps the records here; the response is written with them in its place
//! ([`Answered`]), straight from the records.
//! Anything else — an aggregate under a row, a value that breaks its type
//! — is left to async-graphql, as is a request where answers could not be
//! put back by their response key alone.

use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::dynamic::ResolverContext;
use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{OperationType, Selection};
use async_graphql::{Name, Value as GqlValue};
use serde::Serialize;
use serde::ser::{Error as _, SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

use super::nested;
use super::resolve;
use super::selection::Selected;
use super::shape::{ColumnShape, Shape, Shapes};
use crate::rest::read::{Cell, Record};

/// A request's root answers kept here, by response key, and written
/// straight from their records when the response is (no answer tree of
/// async-graphql values is built for them: that tree, its map of names
/// and its serialization were a third of a nested request's own work).
pub struct Rendered {
    /// The operation is a query whose root fields each have a response
    /// key of their own (no fragment at the root): an answer goes back
    /// under its key without merging.
    enabled: bool,
    /// The root fields' response keys, in the document's order (when
    /// enabled).
    order: Vec<Name>,
    answers: Mutex<Vec<(Name, Written)>>,
}

impl Rendered {
    pub fn for_request(request: &mut async_graphql::Request) -> Self {
        let mut order: Vec<Name> = Vec::new();
        let enabled = super::operation(request).is_some_and(|operation| {
            operation.ty == OperationType::Query
                && operation
                    .selection_set
                    .node
                    .items
                    .iter()
                    .all(|item| match &item.node {
                        Selection::Field(field) => {
                            let key = &field.node.response_key().node;
                            let fresh = !order.contains(key);
                            order.push(key.clone());
                            fresh
                        }
                        _ => false,
                    })
        });
        if !enabled {
            order.clear();
        }
        Self {
            enabled,
            order,
            answers: Mutex::default(),
        }
    }

    /// Keeps the answer of the root field `ctx` resolves (`x`: its rows,
    /// `x_by_pk`: the one row or none) when its selection is plain and
    /// every value fits its type: `Ok` when it did, and the resolver
    /// answers the placeholder; else the rows back, for async-graphql.
    pub fn keep(
        ctx: &ResolverContext<'_>,
        field: &Selected,
        shape: &Shape,
        shapes: &Shapes,
        rows: Answer,
    ) -> Result<(), Answer> {
        let Ok(data) = super::RequestData::of(ctx.ctx) else {
            return Err(rows);
        };
        let rendered = &data.rendered;
        if !rendered.enabled {
            return Err(rows);
        }
        let Some(level) = Level::of(field, shape, shapes) else {
            return Err(rows);
        };
        let written = Written::of(Arc::new(level), rows)?;
        rendered
            .answers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((Name::new(field.key()), written));
        Ok(())
    }

    /// The response with the kept answers in place of their placeholders,
    /// and its root fields in the document's order: async-graphql puts
    /// them in the order they were answered, the spec in the document's.
    pub fn answer(&self, mut response: async_graphql::Response) -> Answered {
        let written =
            std::mem::take(&mut *self.answers.lock().unwrap_or_else(PoisonError::into_inner));
        if let GqlValue::Object(data) = &mut response.data
            && data.len() > 1
        {
            for (at, key) in self.order.iter().enumerate() {
                if let Some(from) = data.get_index_of(key)
                    && at < data.len()
                {
                    data.move_index(from, at);
                }
            }
        }
        Answered {
            response,
            written,
            kept: None,
        }
    }
}

/// A GraphQL response as sent: async-graphql's, with the root answers
/// [`Rendered`] kept written in place of their placeholders.
pub struct Answered {
    pub response: async_graphql::Response,
    written: Vec<(Name, Written)>,
    /// A whole answer written before (a `@cached` query's), sent as it is.
    kept: Option<Arc<RawValue>>,
}

impl Answered {
    /// A response of root answers written at once, in this order.
    pub fn written(written: Vec<(Name, Written)>) -> Self {
        let data = written
            .iter()
            .map(|(key, _)| (key.clone(), GqlValue::Null))
            .collect();
        Self {
            response: async_graphql::Response::new(GqlValue::Object(data)),
            written,
            kept: None,
        }
    }

    /// An answer written before, sent again as it is.
    pub fn kept(answer: Arc<RawValue>) -> Self {
        Self {
            response: async_graphql::Response::default(),
            written: Vec::new(),
            kept: Some(answer),
        }
    }
}

impl From<async_graphql::Response> for Answered {
    fn from(response: async_graphql::Response) -> Self {
        Self {
            response,
            written: Vec::new(),
            kept: None,
        }
    }
}

impl Serialize for Answered {
    /// As async-graphql's `Response` serializes (`data`, then
    /// `extensions` and `errors` when there are any).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if let Some(kept) = &self.kept {
            return kept.serialize(serializer);
        }
        let response = &self.response;
        let GqlValue::Object(data) = &response.data else {
            return response.serialize(serializer);
        };
        if self.written.is_empty() {
            return response.serialize(serializer);
        }
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry(
            "data",
            &Data {
                data,
                written: &self.written,
            },
        )?;
        if !response.extensions.is_empty() {
            map.serialize_entry("extensions", &response.extensions)?;
        }
        if !response.errors.is_empty() {
            map.serialize_entry("errors", &response.errors)?;
        }
        map.end()
    }
}

/// The response's `data`, a kept answer under its response key in place
/// of the placeholder there.
struct Data<'a> {
    data: &'a IndexMap<Name, GqlValue>,
    written: &'a [(Name, Written)],
}

impl Serialize for Data<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.data.len()))?;
        for (key, value) in self.data {
            match self.written.iter().find(|(k, _)| k == key) {
                Some((_, written)) => map.serialize_entry(key.as_str(), written)?,
                None => map.serialize_entry(key.as_str(), value)?,
            }
        }
        map.end()
    }
}

/// What a root field read.
pub enum Answer {
    Rows(Vec<Record>),
    Row(Option<Record>),
}

impl Answer {
    /// The rows read (one or none for a row by key).
    pub fn into_records(self) -> Vec<Record> {
        match self {
            Answer::Rows(records) => records,
            Answer::Row(record) => record.into_iter().collect(),
        }
    }
}

/// A kept root answer: its rows and what each answers.
pub struct Written {
    level: Arc<Level>,
    rows: Answer,
}

impl Written {
    /// The answer `rows` written as `level` says, if every value fits
    /// (else the rows back).
    pub fn of(level: Arc<Level>, rows: Answer) -> Result<Self, Answer> {
        let fits = match &rows {
            Answer::Rows(records) => records.iter().all(|record| level.fits(record)),
            Answer::Row(record) => record.as_ref().is_none_or(|r| level.fits(r)),
        };
        if fits {
            Ok(Self { level, rows })
        } else {
            Err(rows)
        }
    }
}

impl Serialize for Written {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.rows {
            Answer::Rows(records) => rows(serializer, &self.level, records),
            Answer::Row(None) => serializer.serialize_unit(),
            Answer::Row(Some(record)) => Row(&self.level, record).serialize(serializer),
        }
    }
}

fn rows<S: Serializer>(
    serializer: S,
    level: &Level,
    records: &[Record],
) -> Result<S::Ok, S::Error> {
    let mut seq = serializer.serialize_seq(Some(records.len()))?;
    for record in records {
        seq.serialize_element(&Row(level, record))?;
    }
    seq.end()
}

/// What a selection set answers for each row of one collection.
pub struct Level {
    shape: Arc<Shape>,
    fields: Vec<(Name, Part)>,
}

enum Part {
    Typename,
    /// The column at this index of the shape's.
    Column(usize),
    /// A relation's answer, attached to the row under its slot.
    One(String, Level),
    Many(String, Level),
}

impl Level {
    /// `None`: the selection holds something else than columns,
    /// `__typename` and row relationships, or a relation twice under one
    /// response key (async-graphql merges those).
    pub fn of(field: &Selected, shape: &Shape, shapes: &Shapes) -> Option<Self> {
        let shape = shapes.get(&shape.name)?;
        let mut fields: Vec<(Name, Part)> = Vec::new();
        for selected in &field.children {
            let name = selected.name.as_str();
            let part = if name == "__typename" {
                Part::Typename
            } else if let Some(index) = shape.columns.iter().position(|c| c.name == name) {
                Part::Column(index)
            } else {
                let (relation, false) = nested::relation_field(shape, name)? else {
                    return None;
                };
                let target = shapes.get(&relation.target)?;
                let inner = Level::of(selected, target, shapes)?;
                let slot = nested::slot(selected.key());
                if relation.many {
                    Part::Many(slot, inner)
                } else {
                    Part::One(slot, inner)
                }
            };
            let key = selected.key();
            if let Some((_, known)) = fields.iter().find(|(k, _)| k.as_str() == key) {
                // The same column or `__typename` again answers the same.
                match (known, &part) {
                    (Part::Typename, Part::Typename) => continue,
                    (Part::Column(a), Part::Column(b)) if a == b => continue,
                    _ => return None,
                }
            }
            fields.push((Name::new(key), part));
        }
        Some(Self {
            shape: shape.clone(),
            fields,
        })
    }

    /// Whether the row's answer can be written: no null in a non-null
    /// column, every relation read with it (else async-graphql resolves
    /// the field, and reports what breaks).
    fn fits(&self, record: &Record) -> bool {
        self.fields.iter().all(|(_, part)| match part {
            Part::Typename => true,
            Part::Column(index) => {
                let column = &self.shape.columns[*index];
                column.nullable || !matches!(record.get(&column.name), None | Some(Value::Null))
            }
            Part::One(slot, inner) => match cell(record, slot) {
                Some(Cell::One(related)) => related.as_ref().is_none_or(|r| inner.fits(r)),
                _ => false,
            },
            Part::Many(slot, inner) => match cell(record, slot) {
                Some(Cell::Many(related)) => related.iter().all(|r| inner.fits(r)),
                _ => false,
            },
        })
    }
}

/// One row's answer, written as async-graphql would write it.
struct Row<'a>(&'a Level, &'a Record);

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Row(level, record) = *self;
        let mut map = serializer.serialize_map(Some(level.fields.len()))?;
        for (key, part) in &level.fields {
            let key = key.as_str();
            match part {
                Part::Typename => map.serialize_entry(key, &level.shape.name)?,
                Part::Column(index) => {
                    map.serialize_entry(key, &ColumnValue(record, &level.shape.columns[*index]))?
                }
                Part::One(slot, inner) => match cell(record, slot) {
                    Some(Cell::One(Some(related))) => {
                        map.serialize_entry(key, &Row(inner, related))?
                    }
                    Some(Cell::One(None)) => map.serialize_entry(key, &())?,
                    _ => return Err(S::Error::custom(format!("`{key}` was not read"))),
                },
                Part::Many(slot, inner) => match cell(record, slot) {
                    Some(Cell::Many(related)) => {
                        map.serialize_entry(key, &Related(inner, related))?
                    }
                    _ => return Err(S::Error::custom(format!("`{key}` was not read"))),
                },
            }
        }
        map.end()
    }
}

/// An array relationship's rows.
struct Related<'a>(&'a Level, &'a [Record]);

impl Serialize for Related<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        rows(serializer, self.0, self.1)
    }
}

/// A column's value as [`resolve::column_json`] answers it.
struct ColumnValue<'a>(&'a Record, &'a ColumnShape);

impl Serialize for ColumnValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        resolve::column_json(self.0, self.1).serialize(serializer)
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
    pub fn of(field: &Selected, shape: &Shape, shapes: &Shapes) -> Option<Self> {
        let level = Level::of(field, shape, shapes)?;
        let fields = level
            .fields
            .into_iter()
            .map(|(key, part)| match part {
                Part::Typename => Some((key, None)),
                Part::Column(index) => Some((key, Some(level.shape.columns[index].clone()))),
                Part::One(..) | Part::Many(..) => None,
            })
            .collect::<Option<_>>()?;
        Some(Self {
            typename: shape.name.clone(),
            fields,
        })
    }

    /// Whether the answer reads `column` of the written row.
    pub fn reads(&self, column: &str) -> bool {
        self.fields
            .iter()
            .any(|(_, c)| c.as_ref().is_some_and(|c| c.name == column))
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
