//! Hasura's nested inserts: `insert_x(objects: [{…, customer: {data:
//! {…}}, orders: {data: [{…}]}}])` inserts the related rows with each row,
//! in the request's one transaction, their keys filled in from the rows
//! they relate to. A related row the row refers to (an object relationship
//! to the related collection's primary or unique key) is inserted first
//! and its key put in the row's columns; rows that refer to the row (an
//! array relationship, or an object one to columns that are no key of the
//! related collection) are inserted after it, the row's columns put in
//! theirs. The whole tree is checked before anything is written; then
//! each row is an insert of its own under its collection's insert rule
//! (columns, presets, check), with its audit row — or an upsert, with the
//! `on_conflict` given beside its `data` (or the field's, for its rows).
//! An upserted row `on_conflict` leaves as it is gives no key: rows that
//! need it are refused.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value as Json;

use super::bytea;
use super::mutation::{Inner, OnConflict};
use super::shape::{RelationShape, Shape, Shapes};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::rest::Target;
use crate::rest::read::Record;
use crate::rest::writer::{self, Audit};
use crate::state::AppState;

/// The relations of `shape` whose rows can be inserted with its rows: to
/// a collection of the same source (one transaction) the caller may insert
/// into, with the columns on both ends readable (the keys are read back).
pub fn insertable<'s>(
    shape: &'s Shape,
    shapes: &'s Shapes,
) -> impl Iterator<Item = &'s RelationShape> {
    let columns = shape.writes.insert.as_deref().unwrap_or_default();
    shape.relations.iter().filter(move |relation| {
        relation.same_source
            && relation.fetchable
            && !columns.iter().any(|c| c.name == relation.field)
            && shapes
                .get(&relation.target)
                .is_some_and(|target| target.writes.insert.as_ref().is_some_and(|c| !c.is_empty()))
    })
}

/// A row to insert and its related rows, checked.
pub struct Tree<'s> {
    shape: &'s Shape,
    /// Where the row is in the request (for errors).
    path: String,
    /// Its columns' values, binary ones decoded.
    values: Json,
    /// Related rows the row refers to, inserted first.
    before: Vec<(&'s RelationShape, Tree<'s>)>,
    /// Related rows that refer to the row, inserted after it.
    after: Vec<(&'s RelationShape, Vec<Tree<'s>>)>,
    /// Upserted rather than inserted.
    on_conflict: Option<Arc<OnConflict>>,
}

impl<'s> Tree<'s> {
    /// `object` (at `path`) as a row of `shape` and its related rows: a
    /// 400 for what cannot be inserted — a relation to another source or
    /// that the caller may not insert into, `data` of the wrong form, a
    /// column the relation sets given as well, an unknown constraint.
    pub fn parse(
        shape: &'s Shape,
        shapes: &'s Shapes,
        object: Json,
        path: String,
        on_conflict: Option<Arc<OnConflict>>,
    ) -> Result<Self, ApiError> {
        let Json::Object(mut values) = object else {
            return Err(ApiError::bad_request("a row to insert is an object").at(path));
        };
        let mut before = Vec::new();
        let mut after = Vec::new();
        for relation in &shape.relations {
            let Some(given) = values.remove(&relation.field).filter(|v| !v.is_null()) else {
                continue;
            };
            let at = format!("{path}.{}", relation.field);
            let related = insertable(shape, shapes)
                .find(|r| r.field == relation.field)
                .and_then(|r| shapes.get(&r.target))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "rows of `{}` cannot be inserted with `{}` rows: another source's, or \
                         not insertable here",
                        relation.target, shape.name
                    ))
                    .at(at.clone())
                })?;
            let Json::Object(mut wrapper) = given else {
                return Err(ApiError::bad_request("related rows come as `{data: …}`").at(at));
            };
            let data = wrapper.remove("data").ok_or_else(|| {
                ApiError::bad_request("related rows come as `{data: …}`").at(at.clone())
            })?;
            // Each related row's upsert, as given beside `data`: parsed once.
            let upsert = wrapper
                .remove("on_conflict")
                .filter(|v| !v.is_null())
                .map(|given| {
                    OnConflict::parse(given, related, shapes, &format!("{at}.on_conflict"))
                })
                .transpose()?
                .map(Arc::new);
            let at = format!("{at}.data");
            if refers_to_related(relation, related) {
                // Its key fills the row's columns.
                if let Some((own, _)) = relation
                    .pairs
                    .iter()
                    .find(|(own, _)| values.contains_key(own))
                {
                    return Err(set_by_relation(own, &format!("{path}.{own}")));
                }
                before.push((
                    relation,
                    Tree::parse(related, shapes, data, at, upsert.clone())?,
                ));
                continue;
            }
            let items = match data {
                Json::Array(items) if relation.many => items,
                object @ Json::Object(_) if !relation.many => vec![object],
                _ => {
                    let form = if relation.many {
                        "an array of rows"
                    } else {
                        "a row"
                    };
                    return Err(ApiError::bad_request(format!("`data` is {form}")).at(at));
                }
            };
            let mut rows = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                let at = if relation.many {
                    format!("{at}[{i}]")
                } else {
                    at.clone()
                };
                let row = Tree::parse(related, shapes, item, at, upsert.clone())?;
                // The row's columns fill its columns.
                if let Some((_, theirs)) = relation
                    .pairs
                    .iter()
                    .find(|(_, theirs)| row.values.get(theirs).is_some())
                {
                    return Err(set_by_relation(theirs, &format!("{}.{theirs}", row.path)));
                }
                rows.push(row);
            }
            after.push((relation, rows));
        }
        let mut values = Json::Object(values);
        bytea::decode_input(&mut values, shape, &path)?;
        Ok(Self {
            shape,
            path,
            values,
            before,
            after,
            on_conflict,
        })
    }

    /// Inserts (or upserts) the row and its related rows in the request's
    /// transaction (`inner`): the row as written (as the caller may read
    /// it; `None` when an upsert left it as it was), and how many rows
    /// were written in all.
    pub fn insert<'a>(
        self,
        state: &'a AppState,
        principal: &'a Principal,
        inner: &'a mut Inner,
    ) -> BoxFuture<'a, Result<(Option<Record>, u64), ApiError>>
    where
        's: 'a,
    {
        Box::pin(async move {
            let Self {
                shape,
                path,
                mut values,
                before,
                after,
                on_conflict,
            } = self;
            let mut inserted = 0;
            for (relation, related) in before {
                let at = related.path.clone();
                let (row, count) = related.insert(state, principal, inner).await?;
                inserted += count;
                let row = row.ok_or_else(|| left_as_it_is(&at))?;
                for (own, theirs) in &relation.pairs {
                    fill(&mut values, own, &row, theirs)?;
                }
            }
            let target = Target::resolve(state, &shape.name)?;
            let mut audit = Audit::new(principal, &target, "insert");
            let objects = [(path.clone(), &values)];
            let planned = match &on_conflict {
                None => writer::plan_insert(state, principal, &target, &objects),
                Some(upsert) => {
                    audit.note("on_conflict", upsert.given.clone());
                    let (conflict, update) = (&upsert.conflict, &upsert.update);
                    let inside = inner.tx.as_mut();
                    writer::plan_upsert(
                        state, principal, &target, &objects, conflict, update, inside,
                    )
                    .await
                    .map_err(|e| upsert.places.place(e, ""))
                }
            };
            let (count, records) = inner
                .write(state, &principal.caller(), &target, planned, audit, false)
                .await?;
            inserted += count;
            let row = records.into_iter().next();
            if after.iter().all(|(_, rows)| rows.is_empty()) {
                return Ok((row, inserted));
            }
            let row = row.ok_or_else(|| left_as_it_is(&path))?;
            for (relation, rows) in after {
                for mut related in rows {
                    for (own, theirs) in &relation.pairs {
                        fill(&mut related.values, theirs, &row, own)?;
                    }
                    inserted += related.insert(state, principal, inner).await?.1;
                }
            }
            Ok((Some(row), inserted))
        })
    }
}

/// Whether a relation's related row is one the row refers to: an object
/// relationship to a primary or unique key of the related collection.
fn refers_to_related(relation: &RelationShape, related: &Shape) -> bool {
    if relation.many {
        return false;
    }
    fn sorted(mut columns: Vec<&str>) -> Vec<&str> {
        columns.sort_unstable();
        columns
    }
    let theirs = sorted(relation.pairs.iter().map(|(_, t)| t.as_str()).collect());
    let primary = related
        .primary_key
        .iter()
        .map(|key| key.iter().map(|c| c.name.as_str()).collect());
    let unique = related
        .unique_keys
        .iter()
        .map(|(_, key)| key.iter().map(String::as_str).collect());
    primary.chain(unique).any(|key| sorted(key) == theirs)
}

/// The refusal of rows that need the key of a row `on_conflict` left as
/// it was (no `update_columns`, or its `where` did not match).
fn left_as_it_is(at: &str) -> ApiError {
    ApiError::bad_request(
        "the row exists and `on_conflict` leaves it as it is, so it gives no key to its related \
         rows: name columns in `update_columns` (and a `where` it matches) to use that row",
    )
    .at(at.to_string())
}

fn set_by_relation(column: &str, at: &str) -> ApiError {
    ApiError::bad_request(format!(
        "`{column}` is set by the relation the row is inserted through: leave it out"
    ))
    .at(at.to_string())
}

/// Puts `from`'s column `source` into the column `column` of `values`.
fn fill(values: &mut Json, column: &str, from: &Record, source: &str) -> Result<(), ApiError> {
    let value = from
        .get(source)
        .ok_or_else(|| ApiError::internal(format!("the inserted row did not answer `{source}`")))?;
    let value = serde_json::to_value(value)
        .map_err(|e| ApiError::internal(format!("cannot carry `{source}` over: {e}")))?;
    if let Json::Object(values) = values {
        values.insert(column.to_string(), value);
    }
    Ok(())
}
