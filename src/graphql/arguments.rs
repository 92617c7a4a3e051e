//! Hasura's arguments turned into the REST read path's: a `where` boolean
//! expression becomes the filter JSON `src/filter/` compiles (`_eq` →
//! `$eq`, relations nest as they do there), `order_by` becomes sort keys,
//! `distinct_on` the columns whose first row in the order is kept.
//! Comparisons keep SQL's meaning: `_neq` and `_nin` do not match NULL
//! (NocoBase's `$ne` / `$notIn` do, so a `$exists` is added), and a null
//! operand is refused rather than silently matching nothing. `_similar` is
//! a `$regex` of the pattern as PostgreSQL converts it (`similar.rs`).

use std::fmt;

use async_graphql::indexmap::IndexMap;
use async_graphql::{Name, Value as GqlValue};
use serde_json::{Map, Value, json};

use super::shape::{Shape, Shapes};
use super::similar;
use crate::error::ApiError;
use crate::filter::join_path;
use crate::rest::aggregate::Aggregation;
use crate::rest::order;
use crate::rest::params::{SortKey, SortVia};

/// Where each comparison of a `where`'s filter JSON came from in the
/// request, so that an error the filter compiler reports at a path of the
/// JSON (`filter.total.$gt`, a value not of the column's type) names the
/// request's (`where.total._gt`).
#[derive(Debug, Clone, Default)]
pub struct Places {
    /// The `where` argument's own path (`where`, `orders.where`).
    root: String,
    /// (path in the filter JSON, path in the request), one per condition.
    entries: Vec<(String, String)>,
}

impl Places {
    /// `error` placed in the request when the filter compiler placed it in
    /// this filter, which the read compiled at `within` of its filter JSON
    /// (empty: the whole; `$and[1]`: a nested read's, after the keys).
    pub fn place(&self, mut error: ApiError, within: &str) -> ApiError {
        // No `where` (the default): nothing of the filter is the request's.
        let Some(path) = error.path.as_deref().filter(|_| !self.root.is_empty()) else {
            return error;
        };
        let Some(at) = path
            .strip_prefix("filter")
            .map(|rest| rest.strip_prefix('.').unwrap_or(rest))
            .and_then(|rest| under(rest, within))
        else {
            return error;
        };
        let placed = self
            .entries
            .iter()
            .filter_map(|(json, request)| under(at, json).map(|tail| (json.len(), request, tail)))
            .max_by_key(|(len, ..)| *len)
            .map_or_else(
                || self.root.clone(),
                |(_, request, tail)| join_path(request, tail),
            );
        error.path = Some(placed);
        error
    }
}

/// The rest of `path` below `prefix` (`None`: not below it). Paths join
/// keys with `.` and indexes with `[i]`, as the filter compiler's do.
fn under<'p>(path: &'p str, prefix: &str) -> Option<&'p str> {
    if prefix.is_empty() {
        return Some(path);
    }
    let tail = path.strip_prefix(prefix)?;
    match tail.as_bytes().first() {
        None => Some(""),
        Some(b'.') => Some(&tail[1..]),
        Some(b'[') => Some(tail),
        Some(_) => None,
    }
}

/// The filter JSON of a `where` argument of collection `shape` (`path`:
/// the argument's place in the request), and where its conditions came
/// from.
pub fn filter(
    exp: &GqlValue,
    shape: &Shape,
    shapes: &Shapes,
    path: &str,
) -> Result<(Value, Places), ApiError> {
    let (filter, entries) = convert(exp, shape, shapes, path)?;
    Ok((
        filter,
        Places {
            root: path.to_string(),
            entries,
        },
    ))
}

/// A filter JSON and its [`Places`] entries, relative to it.
type Placed = (Value, Vec<(String, String)>);

/// `places` moved below `prefix` of the filter JSON.
fn within(prefix: &str, places: Vec<(String, String)>) -> Vec<(String, String)> {
    places
        .into_iter()
        .map(|(json, request)| (join_path(prefix, &json), request))
        .collect()
}

fn convert(exp: &GqlValue, shape: &Shape, shapes: &Shapes, path: &str) -> Result<Placed, ApiError> {
    let GqlValue::Object(entries) = exp else {
        return Err(invalid(path, "expected an object"));
    };
    let mut parts: Vec<Placed> = Vec::new();
    for (key, value) in entries {
        let here = format!("{path}.{key}");
        match key.as_str() {
            "_and" | "_or" => {
                let op = if key.as_str() == "_and" {
                    "$and"
                } else {
                    "$or"
                };
                let (mut items, mut places) = (Vec::new(), Vec::new());
                for (i, item) in list(value).iter().enumerate() {
                    let (item, inner) = convert(item, shape, shapes, &format!("{here}[{i}]"))?;
                    items.push(item);
                    places.extend(within(&format!("{op}[{i}]"), inner));
                }
                parts.push((json!({ op: items }), places));
            }
            "_not" => {
                let (inner, places) = convert(value, shape, shapes, &here)?;
                parts.push((json!({ "$not": inner }), within("$not", places)));
            }
            name if shape.column(name).is_some() => {
                let GqlValue::Object(ops) = value else {
                    return Err(invalid(&here, "expected an object of comparisons"));
                };
                for (op, at, operand) in comparisons(ops, &here)? {
                    for condition in comparison(name, &op, operand, &at)? {
                        // `{column: {$op: value}}`: the compiler's path is `column.$op`.
                        let json_op = condition
                            .get(name)
                            .and_then(Value::as_object)
                            .and_then(|o| o.keys().next())
                            .cloned()
                            .unwrap_or_default();
                        let places = vec![(format!("{name}.{json_op}"), at.clone())];
                        parts.push((condition, places));
                    }
                }
            }
            name => {
                let target = shape
                    .relation(name)
                    .and_then(|target| shapes.get(target))
                    .ok_or_else(|| {
                        invalid(
                            &here,
                            format!(
                                "`{name}` is neither a column nor a relation of `{}`",
                                shape.name
                            ),
                        )
                    })?;
                let (inner, places) = convert(value, target, shapes, &here)?;
                parts.push((json!({ name: inner }), within(name, places)));
            }
        }
    }
    Ok(match parts.len() {
        0 => (json!({}), Vec::new()),
        1 => parts.pop().unwrap_or_default(),
        _ => {
            let (mut items, mut places) = (Vec::new(), Vec::new());
            for (i, (item, inner)) in parts.into_iter().enumerate() {
                items.push(item);
                places.extend(within(&format!("$and[{i}]"), inner));
            }
            (json!({ "$and": items }), places)
        }
    })
}

/// A column's comparisons with where each is in the request; those under
/// `_cast: {String: {…}}` (a JSON column's text: the engine holds JSON
/// documents as their text) are comparisons of the column itself.
fn comparisons<'v>(
    ops: &'v IndexMap<Name, GqlValue>,
    here: &str,
) -> Result<Vec<(Name, String, &'v GqlValue)>, ApiError> {
    let mut out = Vec::new();
    for (op, operand) in ops {
        let at = format!("{here}.{op}");
        if op.as_str() != "_cast" {
            out.push((op.clone(), at, operand));
            continue;
        }
        let GqlValue::Object(casts) = operand else {
            return Err(invalid(
                &at,
                "expected an object such as `{String: {_ilike: \"%x%\"}}`",
            ));
        };
        for (ty, inner) in casts {
            let at = format!("{at}.{ty}");
            let GqlValue::Object(inner) = inner else {
                return Err(invalid(&at, "expected an object of comparisons"));
            };
            if ty.as_str() != "String" {
                return Err(invalid(
                    &at,
                    format!("`_cast` compares as String, not `{ty}`"),
                ));
            }
            out.extend(
                inner
                    .iter()
                    .map(|(op, operand)| (op.clone(), format!("{at}.{op}"), operand)),
            );
        }
    }
    Ok(out)
}

/// One comparison of a column, as filter conditions (all must hold).
fn comparison(
    column: &str,
    op: &Name,
    operand: &GqlValue,
    path: &str,
) -> Result<Vec<Value>, ApiError> {
    if operand == &GqlValue::Null {
        return Err(invalid(
            path,
            "null is not a value to compare with: use `_is_null` to match NULLs",
        ));
    }
    let value = operand
        .clone()
        .into_json()
        .map_err(|e| invalid(path, e.to_string()))?;
    let condition = |op: &str, value: Value| json!({ column: { op: value } });
    let not_null = || json!({ column: { "$exists": true } });
    Ok(match op.as_str() {
        "_eq" => vec![condition("$eq", value)],
        "_neq" => vec![condition("$ne", value), not_null()],
        "_gt" => vec![condition("$gt", value)],
        "_gte" => vec![condition("$gte", value)],
        "_lt" => vec![condition("$lt", value)],
        "_lte" => vec![condition("$lte", value)],
        "_in" => vec![condition("$in", array(value))],
        "_nin" => vec![condition("$notIn", array(value)), not_null()],
        "_is_null" => match value {
            Value::Bool(null) => vec![condition("$exists", Value::Bool(!null))],
            _ => return Err(invalid(path, "expected true or false")),
        },
        "_like" => vec![condition("$like", value)],
        "_nlike" => vec![condition("$notLike", value)],
        "_ilike" => vec![condition("$iLike", value)],
        "_nilike" => vec![condition("$notILike", value)],
        "_regex" => vec![condition("$regex", value)],
        "_iregex" => vec![condition("$iRegex", value)],
        "_nregex" => vec![condition("$notRegex", value)],
        "_niregex" => vec![condition("$notIRegex", value)],
        "_similar" | "_nsimilar" => {
            let Value::String(pattern) = &value else {
                return Err(invalid(path, "expected a SIMILAR TO pattern (a string)"));
            };
            let regex = similar::to_regex(pattern).map_err(|m| invalid(path, m))?;
            let op = if op.as_str() == "_similar" {
                "$regex"
            } else {
                "$notRegex"
            };
            vec![condition(op, Value::String(regex))]
        }
        "_contains" => vec![condition("$jsonContains", value)],
        "_contained_in" => vec![condition("$jsonContainedIn", value)],
        "_has_key" => vec![condition("$hasKey", value)],
        "_has_keys_any" => vec![condition("$hasKeysAny", array(value))],
        "_has_keys_all" => vec![condition("$hasKeysAll", array(value))],
        other => return Err(invalid(path, format!("unknown comparison `{other}`"))),
    })
}

/// `order_by`: a list of `{column: direction}` objects (or one), keys in
/// the order written. An object relation orders by its row's columns
/// (`{customer: {c_name: asc}}`), an array relation by an aggregate of
/// its rows (`{orders_aggregate: {count: desc}}`, `{orders_aggregate:
/// {sum: {o_totalprice: asc}}}`).
fn order_by(
    value: &GqlValue,
    shape: &Shape,
    shapes: &Shapes,
    path: &At<'_>,
) -> Result<Vec<SortKey>, ApiError> {
    let mut keys = Vec::new();
    for (i, item) in list(value).iter().enumerate() {
        order_object(item, shape, shapes, &[], &At::Index(path, i), &mut keys)?;
    }
    Ok(keys)
}

/// The keys of one `x_order_by` object of `shape`, reached through the
/// object relations `via`.
fn order_object(
    item: &GqlValue,
    shape: &Shape,
    shapes: &Shapes,
    via: &[String],
    path: &At<'_>,
    keys: &mut Vec<SortKey>,
) -> Result<(), ApiError> {
    let GqlValue::Object(entries) = item else {
        return Err(invalid_at(path, "expected an object"));
    };
    for (name, given) in entries {
        let here = At::Key(path, name);
        if *given == GqlValue::Null {
            // A null: no ordering by this entry.
            continue;
        }
        if shape.column(name).is_some() {
            let related = (!via.is_empty()).then(|| SortVia::Related(via.to_vec()));
            keys.push(sort_key(name.to_string(), related, given, &here)?);
            continue;
        }
        let relation = |field: &str| {
            shape
                .relations
                .iter()
                .find(|r| r.fetchable && r.field == field)
        };
        if let Some(relation) = relation(name).filter(|r| !r.many) {
            let target = related_shape(shapes, &relation.target, &here)?;
            let mut path = via.to_vec();
            path.push(relation.field.clone());
            order_object(given, target, shapes, &path, &here, keys)?;
            continue;
        }
        let aggregated = name
            .strip_suffix("_aggregate")
            .and_then(relation)
            .filter(|r| r.many && via.is_empty());
        let Some(relation) = aggregated else {
            return Err(invalid_at(
                &here,
                format!("`{}` has no column or relation `{name}`", shape.name),
            ));
        };
        let target = related_shape(shapes, &relation.target, &here)?;
        aggregate_order(given, relation.field.as_str(), target, &here, keys)?;
    }
    Ok(())
}

fn related_shape<'s>(shapes: &'s Shapes, name: &str, path: &At<'_>) -> Result<&'s Shape, ApiError> {
    shapes
        .get(name)
        .map(|s| s.as_ref())
        .ok_or_else(|| invalid_at(path, format!("`{name}` cannot be read")))
}

/// `{count: desc}` or `{sum: {column: asc}}`: orders by an aggregate of
/// the related rows of array relation `relation`.
fn aggregate_order(
    given: &GqlValue,
    relation: &str,
    target: &Shape,
    path: &At<'_>,
    keys: &mut Vec<SortKey>,
) -> Result<(), ApiError> {
    let GqlValue::Object(functions) = given else {
        return Err(invalid_at(path, "expected an object"));
    };
    for (function, value) in functions {
        let here = At::Key(path, function);
        if *value == GqlValue::Null {
            continue;
        }
        let aggregation = aggregation_named(function)
            .ok_or_else(|| invalid_at(&here, format!("unknown aggregate `{function}`")))?;
        let via = || {
            Some(SortVia::Aggregate {
                relation: relation.to_string(),
                aggregation,
            })
        };
        if aggregation == Aggregation::Count {
            keys.push(sort_key(String::new(), via(), value, &here)?);
            continue;
        }
        let GqlValue::Object(columns) = value else {
            return Err(invalid_at(&here, "expected an object of columns"));
        };
        for (column, direction) in columns {
            let at = At::Key(&here, column);
            if target.column(column).is_none() {
                return Err(invalid_at(
                    &at,
                    format!("`{}` has no column `{column}`", target.name),
                ));
            }
            if *direction != GqlValue::Null {
                keys.push(sort_key(column.to_string(), via(), direction, &at)?);
            }
        }
    }
    Ok(())
}

/// `distinct_on` and `order_by` of a list, an aggregate or a nested array
/// relationship of `shape` (`at`: the field's path, empty for a root
/// field): the columns (each one `shape` has) and the order. An order must
/// begin with the distinct columns, as PostgreSQL's `DISTINCT ON` wants;
/// without one, the rows are ordered by them ascending.
pub fn distinct_and_order(
    distinct_value: Option<&GqlValue>,
    order_value: Option<&GqlValue>,
    shape: &Shape,
    shapes: &Shapes,
    at: &str,
) -> Result<(Vec<String>, Vec<SortKey>), ApiError> {
    let path = |name: &str| {
        if at.is_empty() {
            name.to_string()
        } else {
            format!("{at}.{name}")
        }
    };
    let mut columns: Vec<String> = Vec::new();
    for item in distinct_value.map(list).unwrap_or_default() {
        match item {
            GqlValue::Enum(name) if shape.column(name).is_some() => {
                if !columns.iter().any(|c| c == name.as_str()) {
                    columns.push(name.to_string());
                }
            }
            other => {
                return Err(invalid(
                    &path("distinct_on"),
                    format!("`{}` has no column {other}", shape.name),
                ));
            }
        }
    }
    let mut sort = match order_value {
        Some(value) => order_by(value, shape, shapes, &At::Key(&At::Root(at), "order_by"))?,
        None => Vec::new(),
    };
    if sort.is_empty() {
        sort = columns
            .iter()
            .map(|c| SortKey::new(c.clone(), false))
            .collect();
    }
    if !columns.is_empty() {
        order::check_distinct_order(&columns, &sort).map_err(|e| e.at(path("distinct_on")))?;
    }
    Ok((columns, sort))
}

/// The aggregate a function of `x_aggregate_fields` (or of an
/// `_aggregate_order_by`) names: Hasura's names, PostgreSQL's meanings.
pub fn aggregation_named(function: &str) -> Option<Aggregation> {
    Some(match function {
        "count" => Aggregation::Count,
        "sum" => Aggregation::Sum,
        "avg" => Aggregation::Avg,
        "min" => Aggregation::Min,
        "max" => Aggregation::Max,
        "stddev" | "stddev_samp" => Aggregation::Stddev,
        "stddev_pop" => Aggregation::StddevPop,
        "variance" | "var_samp" => Aggregation::Variance,
        "var_pop" => Aggregation::VarPop,
        _ => return None,
    })
}

/// A key of `column` in the direction `given` names.
fn sort_key(
    column: String,
    via: Option<SortVia>,
    given: &GqlValue,
    path: &At<'_>,
) -> Result<SortKey, ApiError> {
    let name = match given {
        GqlValue::Enum(name) => name.as_str(),
        GqlValue::String(name) => name.as_str(),
        _ => return Err(invalid_at(path, "expected a direction")),
    };
    let (descending, nulls_first) =
        direction(name).ok_or_else(|| invalid_at(path, format!("unknown direction `{name}`")))?;
    Ok(SortKey {
        column,
        descending,
        nulls_first: Some(nulls_first),
        via,
    })
}

/// An `order_by` direction as (descending, NULLs first), with Hasura's
/// (PostgreSQL's) defaults: NULLs last ascending, first descending.
pub fn direction(name: &str) -> Option<(bool, bool)> {
    match name {
        "asc" | "asc_nulls_last" => Some((false, false)),
        "asc_nulls_first" => Some((false, true)),
        "desc" | "desc_nulls_first" => Some((true, true)),
        "desc_nulls_last" => Some((true, false)),
        _ => None,
    }
}

/// A list argument, a single value standing for a list of one (GraphQL's
/// input coercion).
pub fn list(value: &GqlValue) -> &[GqlValue] {
    match value {
        GqlValue::List(items) => items,
        GqlValue::Null => &[],
        single => std::slice::from_ref(single),
    }
}

fn array(value: Value) -> Value {
    match value {
        Value::Array(_) => value,
        single => Value::Array(vec![single]),
    }
}

pub fn invalid(path: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message).at(path.to_string())
}

fn invalid_at(path: &At<'_>, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message).at(path.to_string())
}

/// A place in a field's arguments (`order_by[0].customer.c_name`), written
/// out only for an error: building the text for every entry was a visible
/// part of a read's cost.
enum At<'a> {
    /// A path as text (empty: the field itself).
    Root(&'a str),
    /// A key of an object (no dot after an empty path).
    Key(&'a At<'a>, &'a str),
    /// An item of a list.
    Index(&'a At<'a>, usize),
}

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            At::Root(path) => f.write_str(path),
            At::Key(parent, key) => f.write_str(&join_path(&parent.to_string(), key)),
            At::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// The filter of a row by its key columns' values.
pub fn key_filter(values: Vec<(String, Value)>) -> Value {
    Value::Object(
        values
            .into_iter()
            .map(|(column, value)| (column, json!({ "$eq": value })))
            .collect::<Map<String, Value>>(),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::graphql::shape::{ColumnShape, RelationShape, Scalar, Writes};

    fn shapes() -> Shapes {
        let column = |name: &str, scalar| ColumnShape {
            name: name.into(),
            scalar,
            nullable: true,
            document: false,
        };
        let orders = Shape {
            name: "orders".into(),
            columns: vec![column("id", Scalar::Int), column("status", Scalar::String)],
            primary_key: None,
            unique_keys: Vec::new(),
            relations: vec![RelationShape {
                field: "customers".into(),
                target: "customers".into(),
                many: false,
                pairs: vec![("customer_id".into(), "id".into())],
                fetchable: true,
                same_source: true,
            }],
            select: true,
            aggregate: true,
            writes: Writes::default(),
        };
        let customers = Shape {
            name: "customers".into(),
            columns: vec![column("name", Scalar::String)],
            primary_key: None,
            unique_keys: Vec::new(),
            relations: vec![],
            select: true,
            aggregate: true,
            writes: Writes::default(),
        };
        Shapes::from([
            ("orders".to_string(), Arc::new(orders)),
            ("customers".to_string(), Arc::new(customers)),
        ])
    }

    fn translate(exp: Value) -> Result<Value, ApiError> {
        let shapes = shapes();
        let exp = GqlValue::from_json(exp).unwrap();
        filter(&exp, &shapes["orders"], &shapes, "where").map(|(filter, _)| filter)
    }

    #[test]
    fn filter_errors_are_placed_in_the_request() {
        let shapes = shapes();
        let exp = GqlValue::from_json(json!({
            "id": {"_gt": 1, "_nin": [1, 2]},
            "_not": {"customers": {"name": {"_eq": "Ann"}}},
        }))
        .unwrap();
        let (filter, places) = filter(&exp, &shapes["orders"], &shapes, "open.where").unwrap();
        // (The JSON object's keys arrive sorted.)
        assert_eq!(
            filter,
            json!({"$and": [
                {"$not": {"customers": {"name": {"$eq": "Ann"}}}},
                {"id": {"$gt": 1}},
                {"id": {"$notIn": [1, 2]}}, {"id": {"$exists": true}},
            ]})
        );
        let at = |path: &str, within: &str| {
            places
                .place(ApiError::bad_request("bad").at(path), within)
                .path
                .unwrap()
        };
        assert_eq!(at("filter.$and[1].id.$gt", ""), "open.where.id._gt");
        assert_eq!(
            at("filter.$and[2].id.$notIn[1]", ""),
            "open.where.id._nin[1]"
        );
        assert_eq!(at("filter.$and[3].id.$exists", ""), "open.where.id._nin");
        assert_eq!(
            at("filter.$and[1].$and[0].$not.customers.name.$eq", "$and[1]"),
            "open.where._not.customers.name._eq"
        );
        // Not below a condition: the `where` itself; not the filter's: kept.
        assert_eq!(at("filter", ""), "open.where");
        assert_eq!(at("filter.$and[1]", "$and[1]"), "open.where");
        assert_eq!(at("limit", ""), "limit");
        assert_eq!(
            at("filter.$and[0].id.$eq", "$and[1]"),
            "filter.$and[0].id.$eq"
        );
        // `$and[10]` is not below `$and[1]`.
        assert_eq!(
            at("filter.$and[10].id.$gt", "$and[1]"),
            "filter.$and[10].id.$gt"
        );
        let none = Places::default().place(ApiError::bad_request("bad").at("filter.id"), "");
        assert_eq!(none.path.as_deref(), Some("filter.id"));
    }

    #[test]
    fn where_becomes_filter_json_with_sql_semantics() {
        assert_eq!(
            translate(json!({"id": {"_gt": 1, "_neq": 3}, "status": {"_is_null": false}})).unwrap(),
            json!({"$and": [
                {"id": {"$gt": 1}},
                {"id": {"$ne": 3}}, {"id": {"$exists": true}},
                {"status": {"$exists": true}},
            ]})
        );
        assert_eq!(
            translate(
                json!({"_or": [{"id": {"_in": [1, 2]}}, {"_not": {"status": {"_ilike": "a%"}}}]})
            )
            .unwrap(),
            json!({"$or": [{"id": {"$in": [1, 2]}}, {"$not": {"status": {"$iLike": "a%"}}}]})
        );
        assert_eq!(
            translate(json!({"customers": {"name": {"_eq": "Ann"}}, "id": {"_nin": 4}})).unwrap(),
            json!({"$and": [
                {"customers": {"name": {"$eq": "Ann"}}},
                {"id": {"$notIn": [4]}}, {"id": {"$exists": true}},
            ]})
        );
        assert_eq!(translate(json!({})).unwrap(), json!({}));
    }

    #[test]
    fn null_operands_and_unknown_names_are_refused_with_their_path() {
        let error = translate(json!({"id": {"_eq": null}})).unwrap_err();
        assert_eq!(error.path.as_deref(), Some("where.id._eq"));
        assert_eq!(error.code, "invalid_input");
        let error = translate(json!({"_and": [{"nope": {}}]})).unwrap_err();
        assert_eq!(error.path.as_deref(), Some("where._and[0].nope"));
    }

    #[test]
    fn order_by_keeps_the_written_order_and_nulls() {
        let shapes = shapes();
        let value = GqlValue::List(vec![
            GqlValue::Object(
                [(
                    Name::new("status"),
                    GqlValue::Enum(Name::new("desc_nulls_last")),
                )]
                .into(),
            ),
            GqlValue::Object([(Name::new("id"), GqlValue::Enum(Name::new("asc")))].into()),
        ]);
        assert_eq!(
            order_by(&value, &shapes["orders"], &shapes, &At::Root("order_by")).unwrap(),
            vec![
                SortKey {
                    column: "status".into(),
                    descending: true,
                    nulls_first: Some(false),
                    via: None,
                },
                SortKey {
                    column: "id".into(),
                    descending: false,
                    nulls_first: Some(false),
                    via: None,
                },
            ]
        );
    }

    #[test]
    fn order_by_errors_name_their_place() {
        let shapes = shapes();
        let orders = &shapes["orders"];
        let object =
            |name: &str, value: GqlValue| GqlValue::Object([(Name::new(name), value)].into());
        let asc = GqlValue::Enum(Name::new("asc"));
        let wrong = |order: GqlValue, at: &str| {
            distinct_and_order(None, Some(&order), orders, &shapes, at)
                .unwrap_err()
                .path
        };
        let related = object("customers", object("nope", asc.clone()));
        let order = GqlValue::List(vec![object("id", asc), related]);
        assert_eq!(
            wrong(order.clone(), "pg_customer.orders").as_deref(),
            Some("pg_customer.orders.order_by[1].customers.nope")
        );
        assert_eq!(
            wrong(order, "").as_deref(),
            Some("order_by[1].customers.nope")
        );
        let sideways = object("status", GqlValue::Enum(Name::new("sideways")));
        assert_eq!(wrong(sideways, "").as_deref(), Some("order_by[0].status"));
    }

    #[test]
    fn distinct_on_leads_the_order_with_its_path() {
        let shapes = shapes();
        let orders = &shapes["orders"];
        let status = GqlValue::Enum(Name::new("status"));
        let by = |column: &str, direction: &str| {
            GqlValue::Object([(Name::new(column), GqlValue::Enum(Name::new(direction)))].into())
        };
        // Without an order: by the distinct columns, ascending.
        let (columns, sort) =
            distinct_and_order(Some(&status), None, orders, &shapes, "orders").unwrap();
        assert_eq!(columns, ["status"]);
        assert_eq!(sort, vec![SortKey::new("status", false)]);
        let order = GqlValue::List(vec![by("status", "asc"), by("id", "desc")]);
        let (columns, sort) =
            distinct_and_order(Some(&status), Some(&order), orders, &shapes, "orders").unwrap();
        assert_eq!(columns, ["status"]);
        assert_eq!(sort.len(), 2);
        // An order not beginning with them is refused, where it is written.
        let error = distinct_and_order(
            Some(&status),
            Some(&by("id", "asc")),
            orders,
            &shapes,
            "orders",
        )
        .unwrap_err();
        assert_eq!(error.code, "invalid_input");
        assert_eq!(error.path.as_deref(), Some("orders.distinct_on"));
        let error = distinct_and_order(Some(&status), Some(&by("id", "asc")), orders, &shapes, "")
            .unwrap_err();
        assert_eq!(error.path.as_deref(), Some("distinct_on"));
        let error = distinct_and_order(
            Some(&GqlValue::Enum(Name::new("nope"))),
            None,
            orders,
            &shapes,
            "orders",
        )
        .unwrap_err();
        assert_eq!(error.path.as_deref(), Some("orders.distinct_on"));
    }
}
