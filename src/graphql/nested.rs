//! Relationship fields without N+1. A root field reads its rows, then looks
//! ahead at the selection: each relation field it selects (at any depth)
//! is ONE read for all the rows of its level — the related rows whose key
//! is among the parents' (`$in`, or `$or` of composite keys) and that pass
//! the field's `where`, in its `order_by` — then spread over the parents:
//! an object relationship answers its row or null, an array relationship
//! its rows (`distinct_on`, `offset` / `limit` per parent),
//! `<relation>_aggregate` one grouped aggregate of those rows for all
//! parents and, for its `nodes`, one read of them. The answers are
//! attached to each parent record under the field's response key; the
//! relation fields' resolvers only read them. An object relationship
//! selected without arguments and with only columns is read along with
//! its rows ([`appended`]: joined into their statement where the REST
//! appends can be). Statements sent grow with the depth of the query,
//! never with the number of rows.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::Value as GqlValue;
use async_graphql::dynamic::{FieldValue, ResolverContext};
use serde_json::{Value, json};

use super::arguments::{self, Places};
use super::resolve::AggregateSelection;
use super::selection::Selected;
use super::shape::{RelationShape, Shape, Shapes};
use crate::engine::Caller;
use crate::error::ApiError;
use crate::rest::Target;
use crate::rest::aggregate::{self, AggregateRequest, Dimension};
use crate::rest::order::RowWindow;
use crate::rest::read::{self, Cell, ReadRequest, Record};
use crate::state::AppState;

/// Where a relation field's answer is attached in a parent record: its
/// response key after `@`, which begins no GraphQL name (so no column's),
/// and one relation selected twice with other arguments keeps both.
pub fn slot(response_key: &str) -> String {
    format!("@{response_key}")
}

/// What `field` selects of `shape`'s rows that relation fields need:
/// the selected columns, and the columns the selected relations join on.
pub fn columns(field: &Selected, shape: &Shape) -> Vec<String> {
    let mut columns: Vec<String> = Vec::new();
    let mut add = |name: &str| {
        if !columns.iter().any(|c| c == name) {
            columns.push(name.to_string());
        }
    };
    for selected in &field.children {
        if shape.column(&selected.name).is_some() {
            add(&selected.name);
        } else if let Some((relation, _)) = relation_field(shape, &selected.name) {
            for (own, _) in &relation.pairs {
                add(own);
            }
        }
    }
    columns
}

/// The object relationships `field` selects that its rows' own read can
/// answer as appended records (`ReadRequest::append_fields`, by the
/// relation's field name, which names the same relation there), each with
/// the columns selected under it: selected
/// without arguments, with only columns under them. `read::fetch` joins
/// each into the rows' statement where it can, else reads it once for all
/// rows; [`attach`] then only places the records.
pub fn appended(field: &Selected, shape: &Shape, shapes: &Shapes) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for selected in &field.children {
        let Some((relation, false)) = relation_field(shape, &selected.name) else {
            continue;
        };
        let Some(target) = shapes.get(&relation.target) else {
            continue;
        };
        let under = &selected.children;
        let plain = !relation.many
            && selected.arguments.is_empty()
            && under
                .iter()
                .all(|f| f.name.starts_with("__") || target.column(&f.name).is_some());
        if plain {
            let columns = under.iter().map(|f| f.name.as_str());
            add_append(
                &mut out,
                &relation.field,
                columns.filter(|c| target.column(c).is_some()),
            );
        }
    }
    out
}

/// Adds the relation `name` with `columns` to `appended`, or its columns
/// to the relation's there (one relation selected twice reads the union).
fn add_append<'c>(
    appended: &mut Vec<(String, Vec<String>)>,
    name: &str,
    columns: impl Iterator<Item = &'c str>,
) {
    let at = match appended.iter().position(|(known, _)| known == name) {
        Some(at) => at,
        None => {
            appended.push((name.to_string(), Vec::new()));
            appended.len() - 1
        }
    };
    let known = &mut appended[at].1;
    for column in columns {
        if !known.iter().any(|c| c == column) {
            known.push(column.to_string());
        }
    }
}

/// `x_by_pk` selecting columns and one array relationship keyed by the
/// primary key (a customer with its latest orders): the related rows' key
/// is the argument, so they are read first, each with the row itself
/// appended through the relation back (joined into their statement where
/// REST's appends can be: one statement for both), and the row is taken
/// from them — null when the caller may not see it. Without related rows
/// (in the page) the row is read alone. `Ok(None)`: not that shape (the
/// row is read, then its relations).
pub async fn by_pk_through_related(
    state: &AppState,
    caller: &Caller,
    field: &Selected,
    shape: &Shape,
    shapes: &Shapes,
    key: &[(String, Value)],
) -> Result<Option<Option<Record>>, ApiError> {
    // Most by-key reads: no array relation to read this way.
    if !shape.relations.iter().any(|r| r.many && r.fetchable) {
        return Ok(None);
    }
    let selected = &field.children;
    let mut relations = selected
        .iter()
        .filter_map(|f| relation_field(shape, &f.name).map(|found| (f, found)));
    let (Some((child, (relation, false))), None) = (relations.next(), relations.next()) else {
        return Ok(None);
    };
    let others_are_columns = selected.iter().all(|f| {
        f.name == child.name || f.name.starts_with("__") || shape.column(&f.name).is_some()
    });
    let keyed = relation.pairs.len() == key.len()
        && relation
            .pairs
            .iter()
            .all(|(own, _)| key.iter().any(|(column, _)| column == own));
    let Some(target) = shapes.get(&relation.target) else {
        return Ok(None);
    };
    let back = target.relations.iter().find(|r| {
        !r.many
            && r.fetchable
            && r.target == shape.name
            && r.pairs.len() == relation.pairs.len()
            && relation
                .pairs
                .iter()
                .all(|(own, theirs)| r.pairs.iter().any(|(o, t)| o == theirs && t == own))
    });
    let (true, true, true, Some(back)) = (relation.many, others_are_columns, keyed, back) else {
        return Ok(None);
    };
    // The related rows' own `back` field would find the appended row and
    // take it as its answer, whatever it selects under it.
    if child.children.iter().any(|f| f.name == back.field) {
        return Ok(None);
    }
    let parent = Record(
        key.iter()
            .map(|(column, value)| (Arc::from(column.as_str()), Cell::Value(value.clone())))
            .collect(),
    );
    let Some(mut picked) = Picked::of(
        child,
        relation,
        target,
        shapes,
        std::slice::from_ref(&parent),
    )?
    else {
        return Ok(None);
    };
    picked.back = Some((back.field.clone(), columns(field, shape)));
    // Reads boxed here and in `attach`: a by-key read that takes neither
    // path does not carry (and copy) their large futures.
    let mut rows = Box::pin(picked.read(state, caller, relation, target, shapes, &[child]))
        .await
        .map_err(|e| {
            let message = format!("reading `{}`: {}", picked.at, e.message);
            ApiError { message, ..e }
        })?;
    // The row, from the first related row; the others' copies go.
    let mut row = None;
    for (i, related) in rows.iter_mut().enumerate() {
        if let Some(place) = related.0.iter().position(|(name, _)| **name == *back.field)
            && let (0, (_, Cell::One(record))) = (i, related.0.remove(place))
        {
            row = record;
        }
    }
    if rows.is_empty() {
        let request = ReadRequest {
            filter: Some(arguments::key_filter(key.to_vec())),
            fields: columns(field, shape),
            limit: Some(1),
            ..ReadRequest::default()
        };
        let target = Target::resolve(state, &shape.name)?;
        row = Box::pin(read::fetch(state, caller, &target, &request))
            .await?
            .0
            .into_iter()
            .next();
    }
    if let Some(row) = &mut row {
        row.0.push((slot(&picked.at).into(), Cell::Many(rows)));
    }
    Ok(Some(row))
}

/// The relation a field reads (`orders` or `orders_aggregate`), and
/// whether it is the aggregate.
pub fn relation_field<'s>(shape: &'s Shape, name: &str) -> Option<(&'s RelationShape, bool)> {
    let fetchable = |field: &str| {
        shape
            .relations
            .iter()
            .find(|r| r.fetchable && r.field == field)
    };
    if let Some(relation) = fetchable(name) {
        return Some((relation, false));
    }
    name.strip_suffix("_aggregate")
        .and_then(fetchable)
        .filter(|r| r.many)
        .map(|r| (r, true))
}

/// Attaches to `records` the answers of the relation fields `field`
/// selects, at every depth.
pub async fn attach(
    state: &AppState,
    caller: &Caller,
    field: &Selected,
    shape: &Shape,
    shapes: &Shapes,
    records: &mut [Record],
) -> Result<(), ApiError> {
    if records.is_empty() {
        return Ok(());
    }
    let selections = &field.children;
    let mut answered: Vec<&str> = Vec::new();
    for selected in selections {
        let Some((relation, aggregate)) = relation_field(shape, &selected.name) else {
            continue;
        };
        let target_shape = shapes.get(&relation.target).ok_or_else(|| {
            ApiError::internal(format!("`{}` is not in the schema", relation.target))
        })?;
        let at = selected.key();
        if answered.contains(&at) {
            continue;
        }
        // A field selected again under its response key (validation made
        // the arguments the same): one read answers what all of them select,
        // as async-graphql merges their answers.
        let same: Vec<&Selected> = selections.iter().filter(|s| s.key() == at).collect();
        let result = if aggregate {
            Box::pin(attach_aggregate(
                state,
                caller,
                &same,
                relation,
                target_shape,
                shapes,
                records,
            ))
            .await
        } else {
            Box::pin(attach_rows(
                state,
                caller,
                &same,
                relation,
                target_shape,
                shapes,
                records,
            ))
            .await
        };
        answered.push(at);
        result.map_err(|e| {
            let message = format!("reading `{at}`: {}", e.message);
            ApiError { message, ..e }
        })?;
    }
    Ok(())
}

/// A record's values of some columns, as a comparable key (`None` when
/// one is NULL: a NULL key relates to nothing).
fn key_of<'a>(record: &Record, columns: impl Iterator<Item = &'a str>) -> Option<Vec<String>> {
    columns
        .map(|c| match record.get(c) {
            None | Some(Value::Null) => None,
            // A text key matches the number it spells (a relation across
            // sources may join an integer to a text column).
            Some(Value::String(text)) => Some(text.clone()),
            Some(other) => Some(other.to_string()),
        })
        .collect()
}

fn outer_key(relation: &RelationShape, record: &Record) -> Option<Vec<String>> {
    key_of(record, relation.pairs.iter().map(|(own, _)| own.as_str()))
}

/// The filter matching the related rows of `records` (`None`: no parent
/// has a key).
fn keys_filter(relation: &RelationShape, records: &[Record]) -> Option<(Value, usize)> {
    let mut seen = std::collections::HashSet::new();
    let mut keys: Vec<Vec<Value>> = Vec::new();
    for record in records {
        if let Some(key) = outer_key(relation, record)
            && seen.insert(key)
        {
            keys.push(
                relation
                    .pairs
                    .iter()
                    .map(|(own, _)| record.get(own).cloned().unwrap_or(Value::Null))
                    .collect(),
            );
        }
    }
    let count = keys.len();
    if count == 0 {
        return None;
    }
    let filter = if relation.pairs.len() == 1 {
        let values: Vec<Value> = keys.into_iter().flatten().collect();
        json!({ relation.pairs[0].1.clone(): { "$in": values } })
    } else {
        let alternatives: Vec<Value> = keys
            .into_iter()
            .map(|key| {
                Value::Object(
                    relation
                        .pairs
                        .iter()
                        .zip(key)
                        .map(|((_, theirs), value)| (theirs.clone(), value))
                        .collect(),
                )
            })
            .collect();
        json!({ "$or": alternatives })
    };
    Some((filter, count))
}

/// The field's argument `name`, unless not given or null.
fn given<'s>(selected: &'s Selected, name: &str) -> Option<&'s GqlValue> {
    selected
        .argument(name)
        .filter(|value| **value != GqlValue::Null)
}

/// Where a relation field's `where` is in its read's filter: after the
/// keys ([`related_filter`]).
const OWN_WHERE: &str = "$and[1]";

/// The keys filter AND the field's `where` (at [`OWN_WHERE`]), and where
/// the `where`'s conditions are in the request.
fn related_filter(
    keys: Value,
    selected: &Selected,
    target: &Shape,
    shapes: &Shapes,
    at: &str,
) -> Result<(Value, Places), ApiError> {
    match given(selected, "where") {
        Some(exp) => {
            let (own, places) = arguments::filter(exp, target, shapes, &format!("{at}.where"))?;
            Ok((json!({ "$and": [keys, own] }), places))
        }
        None => Ok((keys, Places::default())),
    }
}

fn count_argument(selected: &Selected, name: &str, at: &str) -> Result<Option<u64>, ApiError> {
    given(selected, name)
        .map(|value| match value {
            GqlValue::Number(n) => n.as_u64(),
            _ => None,
        })
        .map(|n| {
            n.ok_or_else(|| {
                ApiError::bad_request(format!("`{name}` must be 0 or more"))
                    .at(format!("{at}.{name}"))
            })
        })
        .transpose()
}

/// The related rows a relation field picks for all its parents: those of
/// the parents' keys that pass the field's `where`, in its `order_by`,
/// the first of each `distinct_on` value and the page (`offset`, `limit`)
/// of each parent (`window.per`: the related key, with several parents).
/// An array relationship reads them; `<relation>_aggregate` aggregates
/// them and its `nodes` reads them.
struct Picked {
    filter: Value,
    /// Where the field's `where` is in the request.
    places: Places,
    window: RowWindow,
    /// How many distinct parent keys (with one, the window is the read's).
    parents: usize,
    /// The field's response key.
    at: String,
    /// The relation from the picked rows back to their one parent, read
    /// with them ([`by_pk_through_related`]), and the parent's columns the
    /// answer needs.
    back: Option<(String, Vec<String>)>,
}

impl Picked {
    /// `None`: no parent has a key (no related row).
    fn of(
        selected: &Selected,
        relation: &RelationShape,
        target: &Shape,
        shapes: &Shapes,
        records: &[Record],
    ) -> Result<Option<Self>, ApiError> {
        let Some((keys, parents)) = keys_filter(relation, records) else {
            return Ok(None);
        };
        let at = selected.key().to_string();
        let (distinct_on, sort) = arguments::distinct_and_order(
            given(selected, "distinct_on"),
            given(selected, "order_by"),
            target,
            shapes,
            &at,
        )?;
        let window = RowWindow {
            distinct_on,
            sort,
            offset: count_argument(selected, "offset", &at)?.unwrap_or(0),
            limit: count_argument(selected, "limit", &at)?,
            per: if parents > 1 && relation.many {
                relation
                    .pairs
                    .iter()
                    .map(|(_, theirs)| theirs.clone())
                    .collect()
            } else {
                Vec::new()
            },
        };
        let (filter, places) = related_filter(keys, selected, target, shapes, &at)?;
        Ok(Some(Self {
            filter,
            places,
            window,
            parents,
            at,
            back: None,
        }))
    }

    /// Reads the picked rows' `fields` (and the related key), in the order
    /// read, with the relation fields `selections` select in them (and the
    /// relation [`Self::back`] to their parent appended, when set).
    async fn read(
        &self,
        state: &AppState,
        caller: &Caller,
        relation: &RelationShape,
        target_shape: &Shape,
        shapes: &Shapes,
        selections: &[&Selected],
    ) -> Result<Vec<Record>, ApiError> {
        let mut fields: Vec<String> = Vec::new();
        let theirs = relation.pairs.iter().map(|(_, theirs)| theirs.clone());
        for column in selections
            .iter()
            .flat_map(|selected| columns(selected, target_shape))
            .chain(theirs)
        {
            if !fields.contains(&column) {
                fields.push(column);
            }
        }
        let mut append_fields: Vec<(String, Vec<String>)> = Vec::new();
        for (name, columns) in selections
            .iter()
            .flat_map(|selected| appended(selected, target_shape, shapes))
        {
            add_append(
                &mut append_fields,
                &name,
                columns.iter().map(String::as_str),
            );
        }
        if let Some((back, columns)) = &self.back {
            add_append(&mut append_fields, back, columns.iter().map(String::as_str));
        }
        let request = ReadRequest {
            filter: Some(self.filter.clone()),
            sort: self.window.sort.clone(),
            distinct_on: self.window.distinct_on.clone(),
            fields,
            append_fields,
            offset: self.window.offset,
            limit: self.window.limit,
            per: self.window.per.clone(),
            ..ReadRequest::default()
        };
        let target = Target::resolve(state, &target_shape.name)?;
        let (mut related, _) = read::fetch(state, caller, &target, &request)
            .await
            .map_err(|e| self.places.place(e, OWN_WHERE))?;
        if self.parents > 1 && related.len() >= state.config.max_rows {
            return Err(ApiError::bad_request(format!(
                "more than max_rows ({}) related rows: narrow `{}` with `where`, or read fewer parents",
                state.config.max_rows,
                self.at
            ))
            .at(self.at.clone()));
        }
        for selected in selections {
            Box::pin(attach(
                state,
                caller,
                selected,
                target_shape,
                shapes,
                &mut related,
            ))
            .await?;
        }
        Ok(related)
    }
}

/// Related rows by their key (`relation`'s columns on their side), each
/// key's in the order read.
fn by_key(relation: &RelationShape, rows: Vec<Record>) -> HashMap<Vec<String>, Vec<Record>> {
    let mut spread: HashMap<Vec<String>, Vec<Record>> = HashMap::new();
    for row in rows {
        if let Some(inner) = key_of(
            &row,
            relation.pairs.iter().map(|(_, theirs)| theirs.as_str()),
        ) {
            spread.entry(inner).or_default().push(row);
        }
    }
    spread
}

/// An object or array relationship: one read for every parent.
async fn attach_rows(
    state: &AppState,
    caller: &Caller,
    selections: &[&Selected],
    relation: &RelationShape,
    target_shape: &Shape,
    shapes: &Shapes,
    records: &mut [Record],
) -> Result<(), ApiError> {
    let Some(selected) = selections.first() else {
        return Ok(());
    };
    let at = selected.key();
    let key: Arc<str> = slot(at).into();
    // Read with the rows ([`appended`]): placed under the field's slot.
    let read_along = !relation.many
        && records.first().is_some_and(|record| {
            record
                .0
                .iter()
                .any(|(name, cell)| **name == *relation.field && matches!(cell, Cell::One(_)))
        });
    if read_along {
        for record in records.iter_mut() {
            let cell = record
                .0
                .iter()
                .find(|(name, _)| **name == *relation.field)
                .map(|(_, cell)| cell.clone())
                .unwrap_or(Cell::One(None));
            record.0.push((key.clone(), cell));
        }
        return Ok(());
    }
    let related = match Picked::of(selected, relation, target_shape, shapes, records)? {
        Some(picked) => {
            let rows = picked
                .read(state, caller, relation, target_shape, shapes, selections)
                .await?;
            by_key(relation, rows)
        }
        None => HashMap::new(),
    };
    for record in records.iter_mut() {
        let rows: Vec<Record> = outer_key(relation, record)
            .and_then(|k| related.get(&k))
            .cloned()
            .unwrap_or_default();
        let cell = if relation.many {
            Cell::Many(rows)
        } else {
            Cell::One(rows.into_iter().next())
        };
        record.0.push((key.clone(), cell));
    }
    Ok(())
}

/// Where a nested `<relation>_aggregate`'s parts are in the record it
/// answers for each parent: the `aggregate` values (a JSON tree by
/// response key) and the `nodes`.
pub const AGGREGATE_PART: &str = "aggregate";
pub const NODES_PART: &str = "nodes";

/// `<relation>_aggregate(where, order_by, limit, offset, distinct_on) {
/// aggregate {…} nodes {…} }`: for every parent at once, one aggregate of
/// the picked rows grouped by the related key (when a function is
/// selected) and one read of them (when `nodes` is). Each parent gets a
/// record of the two parts.
async fn attach_aggregate(
    state: &AppState,
    caller: &Caller,
    selections: &[&Selected],
    relation: &RelationShape,
    target_shape: &Shape,
    shapes: &Shapes,
    records: &mut [Record],
) -> Result<(), ApiError> {
    let Some(selected) = selections.first() else {
        return Ok(());
    };
    let at = selected.key();
    let key: Arc<str> = slot(at).into();
    let selection = AggregateSelection::of(selections, target_shape);
    let nodes: Vec<&Selected> = selections
        .iter()
        .flat_map(|selected| &selected.children)
        .filter(|f| f.name == NODES_PART)
        .collect();
    let mut groups: HashMap<Vec<String>, Record> = HashMap::new();
    let mut rows: HashMap<Vec<String>, Vec<Record>> = HashMap::new();
    if let Some(picked) = Picked::of(selected, relation, target_shape, shapes, records)? {
        if !selection.measures.is_empty() {
            let aliases: Vec<String> = (0..relation.pairs.len()).map(|i| format!("k{i}")).collect();
            let request = AggregateRequest {
                measures: selection.measures.clone(),
                dimensions: relation
                    .pairs
                    .iter()
                    .zip(&aliases)
                    .map(|((_, theirs), alias)| Dimension::new(theirs.clone(), alias.clone(), None))
                    .collect(),
                filter: Some(picked.filter.clone()),
                rows: picked.window.clone(),
                ..AggregateRequest::default()
            };
            let target = Target::resolve(state, &target_shape.name)?;
            let output = aggregate::start(state, caller, &target, request)
                .await
                .map_err(|e| picked.places.place(e, OWN_WHERE))?;
            for row in read::collect(state, output).await? {
                if let Some(inner) = key_of(&row, aliases.iter().map(String::as_str)) {
                    groups.insert(inner, row);
                }
            }
        }
        if !nodes.is_empty() {
            let read = picked
                .read(state, caller, relation, target_shape, shapes, &nodes)
                .await?;
            rows = by_key(relation, read);
        }
    }
    for record in records.iter_mut() {
        let parent = outer_key(relation, record);
        let group = parent.as_ref().and_then(|k| groups.get(k));
        let answer = selection.answer(group).into_json().unwrap_or(Value::Null);
        let mut parts = vec![(Arc::from(AGGREGATE_PART), Cell::Value(answer))];
        if !nodes.is_empty() {
            let mine = parent
                .as_ref()
                .and_then(|k| rows.get(k))
                .cloned()
                .unwrap_or_default();
            parts.push((Arc::from(NODES_PART), Cell::Many(mine)));
        }
        record.0.push((key.clone(), Cell::One(Some(Record(parts)))));
    }
    Ok(())
}

/// A relation field's answer, attached to its parent record: a row (or
/// null), rows, or a nested aggregate's record of parts.
pub fn resolve<'a>(ctx: &ResolverContext<'a>) -> async_graphql::Result<Option<FieldValue<'a>>> {
    let record = ctx.parent_value.try_downcast_ref::<Record>()?;
    let field = ctx.ctx.field();
    let key = slot(field.alias().unwrap_or(field.name()));
    let cell = record
        .0
        .iter()
        .find(|(name, _)| **name == *key)
        .map(|(_, c)| c);
    Ok(match cell {
        Some(Cell::One(row)) => row.as_ref().map(|row| FieldValue::borrowed_any(row)),
        Some(Cell::Many(rows)) => Some(FieldValue::list(
            rows.iter().map(|row| FieldValue::borrowed_any(row)),
        )),
        Some(Cell::Value(_)) | None => {
            return Err(async_graphql::Error::new(format!(
                "`{}` was not read with its parent",
                field.name()
            )));
        }
    })
}
