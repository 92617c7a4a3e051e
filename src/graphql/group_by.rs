//! `x_group_by`: group by and having in the API, which Hasura's users have
//! asked for for years (hasura#9712).
//!
//! ```graphql
//! pg_orders_group_by(
//!   by: [status, placed_at],                        # x_select_column, at least one
//!   granularity: {placed_at: month},                # a date or time key truncated
//!   where: {placed_at: {_gte: "2024-01-01"}},       # rows before grouping
//!   having: {count: {_gt: 1}, sum: {total: {_gte: "100"}}},
//!   order_by: [{aggregate: {sum: {total: desc}}}, {keys: {status: asc}}],
//!   limit: 10, offset: 0
//! ) { keys { status } aggregate { count sum { total } avg { total } } }
//! ```
//!
//! One `Aggregate` plan on the REST API's aggregate path (the role's
//! aggregate rule applies): the `by` columns are its groups; the functions
//! the answer, `having` and `order_by` name are its measures.

use std::sync::Arc;

use async_graphql::Value as GqlValue;
use async_graphql::dynamic::{
    Field, FieldFuture, FieldValue, InputObject, InputValue, Object, ResolverContext, TypeRef,
};
use async_graphql::indexmap::IndexMap;
use serde_json::{Value, json};

use super::arguments::{self, invalid, list};
use super::resolve::{self, AggregateSelection, to_graphql};
use super::schema::{self, TakesArguments};
use super::selection::Selected;
use super::shape::{ColumnShape, Scalar, Shape, Shapes};
use crate::error::ApiError;
use crate::rest::Target;
use crate::rest::aggregate::{
    self, AggregateRequest, Aggregation, Dimension, Granularity, Measure,
};
use crate::rest::params::SortKey;
use crate::rest::read;

/// The type names `x_group_by` takes.
pub fn type_names(shape: &Shape) -> Vec<String> {
    let x = &shape.name;
    let mut names: Vec<String> = [
        "group_by",
        "group",
        "group_keys",
        "group_by_order_by",
        "group_by_granularity",
        "having_exp",
    ]
    .iter()
    .map(|suffix| format!("{x}_{suffix}"))
    .collect();
    for function in schema::aggregate_functions(shape) {
        names.push(format!("{x}_{}_having_exp", function.name));
    }
    names
}

/// The types of `x_group_by` (the aggregate types of `x_aggregate` are
/// shared: its groups are ordered by `x_aggregate_order_by`).
pub fn types(shape: &Shape) -> Vec<async_graphql::dynamic::Type> {
    let x = &shape.name;
    let mut types: Vec<async_graphql::dynamic::Type> = Vec::new();
    let mut keys = Object::new(format!("{x}_group_keys"));
    for column in &shape.columns {
        keys = keys.field(schema::keyed(
            &column.name,
            TypeRef::named(column.scalar.name()),
        ));
    }
    types.push(keys.into());
    types.push(
        Object::new(format!("{x}_group"))
            .field(schema::keyed(
                "keys",
                TypeRef::named_nn(format!("{x}_group_keys")),
            ))
            .field(schema::keyed(
                "aggregate",
                TypeRef::named_nn(format!("{x}_aggregate_fields")),
            ))
            .into(),
    );
    let mut having = InputObject::new(format!("{x}_having_exp"))
        .field(InputValue::new(
            "_and",
            TypeRef::named_nn_list(format!("{x}_having_exp")),
        ))
        .field(InputValue::new(
            "_or",
            TypeRef::named_nn_list(format!("{x}_having_exp")),
        ))
        .field(InputValue::new(
            "count",
            TypeRef::named(comparison(Scalar::Int)),
        ));
    for function in schema::aggregate_functions(shape) {
        let name = format!("{x}_{}_having_exp", function.name);
        let mut compare = InputObject::new(name.as_str());
        for column in function.columns {
            compare = compare.field(InputValue::new(
                column.name.as_str(),
                TypeRef::named(comparison((function.output)(column.scalar))),
            ));
        }
        types.push(compare.into());
        having = having.field(InputValue::new(function.name, TypeRef::named(name)));
    }
    types.push(having.into());
    let dated = truncatable(shape);
    if !dated.is_empty() {
        let mut granularity = InputObject::new(format!("{x}_group_by_granularity"));
        for column in dated {
            granularity = granularity.field(InputValue::new(
                column.name.as_str(),
                TypeRef::named(GRANULARITY),
            ));
        }
        types.push(granularity.into());
    }
    types.push(
        InputObject::new(format!("{x}_group_by_order_by"))
            .field(InputValue::new(
                "keys",
                TypeRef::named(format!("{x}_order_by")),
            ))
            .field(InputValue::new(
                "aggregate",
                TypeRef::named(format!("{x}_aggregate_order_by")),
            ))
            .into(),
    );
    types
}

/// The enum of what a date key is truncated to (`day` … `year`).
pub const GRANULARITY: &str = "granularity";

/// The columns whose keys can be truncated: dates and timestamps.
fn truncatable(shape: &Shape) -> Vec<&ColumnShape> {
    shape
        .columns
        .iter()
        .filter(|c| {
            matches!(
                c.scalar,
                Scalar::Date | Scalar::Timestamp | Scalar::Timestamptz
            )
        })
        .collect()
}

fn comparison(scalar: Scalar) -> String {
    format!("{}_comparison_exp", scalar.name())
}

/// The scalars whose comparisons `having` uses.
pub fn scalars(shape: &Shape) -> Vec<Scalar> {
    let mut out = vec![Scalar::Int];
    for function in schema::aggregate_functions(shape) {
        out.extend(function.columns.iter().map(|c| (function.output)(c.scalar)));
    }
    out
}

/// `x_group_by(by, where, having, order_by, limit, offset)`.
pub fn root_field(shape: &Arc<Shape>, shapes: &Arc<Shapes>) -> Field {
    let x = &shape.name;
    let (resolved, shapes) = (shape.clone(), shapes.clone());
    let field = Field::new(root_name(shape), root_type(shape), move |ctx| {
        let (shape, shapes) = (resolved.clone(), shapes.clone());
        FieldFuture::new(async move {
            let result = group_by(&ctx, &shape, &shapes).await;
            resolve::answer(
                &ctx,
                result.map(|groups| {
                    Some(FieldValue::list(groups.into_iter().map(FieldValue::value)))
                }),
            )
        })
    })
    .description(format!(
        "Groups of `{x}`'s rows by the `by` columns, with their aggregates"
    ));
    root_arguments(field, shape)
}

/// `x_group_by`'s name.
pub fn root_name(shape: &Shape) -> String {
    format!("{}_group_by", shape.name)
}

/// `x_group_by`'s type: `[x_group!]`.
pub fn root_type(shape: &Shape) -> TypeRef {
    TypeRef::named_nn_list(format!("{}_group", shape.name))
}

/// `x_group_by`'s arguments: `by`, `where`, `having`, `order_by`,
/// `limit`, `offset`, and `granularity` when a column can be truncated.
pub fn root_arguments<F: TakesArguments>(field: F, shape: &Shape) -> F {
    let x = &shape.name;
    let field = field
        .argument(InputValue::new(
            "by",
            TypeRef::named_nn_list_nn(format!("{x}_select_column")),
        ))
        .argument(InputValue::new(
            "where",
            TypeRef::named(format!("{x}_bool_exp")),
        ))
        .argument(InputValue::new(
            "having",
            TypeRef::named(format!("{x}_having_exp")),
        ))
        .argument(InputValue::new(
            "order_by",
            TypeRef::named_nn_list(format!("{x}_group_by_order_by")),
        ))
        .argument(InputValue::new("limit", TypeRef::named(TypeRef::INT)))
        .argument(InputValue::new("offset", TypeRef::named(TypeRef::INT)));
    if truncatable(shape).is_empty() {
        field
    } else {
        field.argument(InputValue::new(
            "granularity",
            TypeRef::named(format!("{x}_group_by_granularity")),
        ))
    }
}

/// Measures the request needs beyond the answer's (for `having` and
/// `order_by`), each under its own alias; one the answer (or an earlier
/// condition) already has is named once.
struct Extra<'a> {
    answered: &'a [Measure],
    measures: Vec<Measure>,
}

impl Extra<'_> {
    /// The alias of `aggregation` of `column` (of rows for count).
    fn alias(&mut self, aggregation: Aggregation, column: Option<&str>) -> String {
        if let Some(alias) = self
            .answered
            .iter()
            .chain(&self.measures)
            .find_map(|m| m.alias_if(aggregation, column))
        {
            return alias.to_string();
        }
        let alias = format!("x{}", self.measures.len());
        self.measures.push(Measure::new(
            aggregation,
            column.map(str::to_string),
            false,
            alias.clone(),
        ));
        alias
    }
}

/// The aggregate over columns `function` names (`count` is of rows).
fn aggregation(function: &str) -> Option<Aggregation> {
    arguments::aggregation_named(function).filter(|a| *a != Aggregation::Count)
}

/// `having` as the REST API's having JSON over measure aliases.
fn having_filter(value: &GqlValue, extra: &mut Extra, path: &str) -> Result<Value, ApiError> {
    let GqlValue::Object(entries) = value else {
        return Err(invalid(path, "expected an object"));
    };
    let mut parts: Vec<Value> = Vec::new();
    for (key, condition) in entries {
        let here = format!("{path}.{key}");
        match key.as_str() {
            "_and" | "_or" => {
                let items = list(condition)
                    .iter()
                    .enumerate()
                    .map(|(i, item)| having_filter(item, extra, &format!("{here}[{i}]")))
                    .collect::<Result<Vec<_>, _>>()?;
                let op = if key.as_str() == "_and" {
                    "$and"
                } else {
                    "$or"
                };
                parts.push(json!({ op: items }));
            }
            "count" => {
                let alias = extra.alias(Aggregation::Count, None);
                parts.push(json!({ alias: operators(condition, &here)? }));
            }
            function => {
                let aggregation = aggregation(function)
                    .ok_or_else(|| invalid(&here, format!("unknown function `{function}`")))?;
                let GqlValue::Object(columns) = condition else {
                    return Err(invalid(&here, "expected an object of columns"));
                };
                for (column, comparison) in columns {
                    let alias = extra.alias(aggregation, Some(column.as_str()));
                    let at = format!("{here}.{column}");
                    parts.push(json!({ alias: operators(comparison, &at)? }));
                }
            }
        }
    }
    Ok(match parts.len() {
        1 => parts.pop().unwrap_or_default(),
        _ => json!({ "$and": parts }),
    })
}

/// `{_gt: 1, _lte: 5}` as `{"$gt": 1, "$lte": 5}`; numbers written as
/// strings (numeric, bigint) compare as numbers.
fn operators(value: &GqlValue, path: &str) -> Result<Value, ApiError> {
    let GqlValue::Object(ops) = value else {
        return Err(invalid(path, "expected an object of comparisons"));
    };
    let mut out = serde_json::Map::new();
    for (op, operand) in ops {
        let at = format!("{path}.{op}");
        let name = match op.as_str() {
            "_eq" => "$eq",
            "_neq" => "$ne",
            "_gt" => "$gt",
            "_gte" => "$gte",
            "_lt" => "$lt",
            "_lte" => "$lte",
            "_in" => "$in",
            "_nin" => "$notIn",
            other => {
                return Err(invalid(
                    &at,
                    format!("`{other}` cannot compare an aggregate"),
                ));
            }
        };
        let operand = operand
            .clone()
            .into_json()
            .map_err(|e| invalid(&at, e.to_string()))?;
        out.insert(name.to_string(), numeric(operand));
    }
    Ok(Value::Object(out))
}

fn numeric(value: Value) -> Value {
    match value {
        Value::String(text) => {
            if let Ok(integer) = text.parse::<i64>() {
                json!(integer)
            } else if let Some(number) = text
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
            {
                Value::Number(number)
            } else {
                Value::String(text)
            }
        }
        Value::Array(items) => Value::Array(items.into_iter().map(numeric).collect()),
        other => other,
    }
}

/// The group order: keys by their dimension's alias, aggregates by a
/// measure's.
fn order(
    value: &GqlValue,
    by: &[String],
    extra: &mut Extra,
    path: &str,
) -> Result<Vec<SortKey>, ApiError> {
    let mut keys = Vec::new();
    for (i, item) in list(value).iter().enumerate() {
        let here = format!("{path}[{i}]");
        let GqlValue::Object(entries) = item else {
            return Err(invalid(&here, "expected an object"));
        };
        for (part, directions) in entries {
            let GqlValue::Object(directions) = directions else {
                return Err(invalid(&format!("{here}.{part}"), "expected an object"));
            };
            for (name, direction) in directions {
                let at = format!("{here}.{part}.{name}");
                let (column, direction) = match (part.as_str(), name.as_str()) {
                    ("keys", column) => {
                        let index = by.iter().position(|c| c == column).ok_or_else(|| {
                            invalid(&at, format!("`{column}` is not one of `by`"))
                        })?;
                        (format!("k{index}"), direction)
                    }
                    ("aggregate", "count") => (extra.alias(Aggregation::Count, None), direction),
                    ("aggregate", function) => {
                        let aggregation = aggregation(function).ok_or_else(|| {
                            invalid(&at, format!("unknown function `{function}`"))
                        })?;
                        let GqlValue::Object(columns) = direction else {
                            return Err(invalid(&at, "expected an object of columns"));
                        };
                        for (column, direction) in columns {
                            let alias = extra.alias(aggregation, Some(column.as_str()));
                            keys.extend(sort_key(alias, direction, &format!("{at}.{column}"))?);
                        }
                        continue;
                    }
                    _ => return Err(invalid(&at, "expected `keys` or `aggregate`")),
                };
                keys.extend(sort_key(column, direction, &at)?);
            }
        }
    }
    Ok(keys)
}

fn sort_key(column: String, direction: &GqlValue, path: &str) -> Result<Option<SortKey>, ApiError> {
    let direction = match direction {
        GqlValue::Enum(name) => name.as_str(),
        GqlValue::String(name) => name.as_str(),
        GqlValue::Null => return Ok(None),
        _ => return Err(invalid(path, "expected a direction")),
    };
    let (descending, nulls_first) = arguments::direction(direction)
        .ok_or_else(|| invalid(path, format!("unknown direction `{direction}`")))?;
    Ok(Some(SortKey {
        column,
        descending,
        nulls_first: Some(nulls_first),
        via: None,
    }))
}

/// `granularity: {placed_at: month}`: each truncated column, which must be
/// one of `by`.
fn granularities(
    ctx: &ResolverContext<'_>,
    by: &[String],
) -> Result<Vec<(String, Granularity)>, ApiError> {
    let Some(GqlValue::Object(entries)) = ctx.args.get("granularity").map(|v| v.as_value().clone())
    else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (column, value) in entries {
        let at = format!("granularity.{column}");
        let granularity = match &value {
            GqlValue::Null => continue,
            GqlValue::Enum(name) => Granularity::named(name),
            GqlValue::String(name) => Granularity::named(name),
            _ => None,
        }
        .ok_or_else(|| invalid(&at, "expected day, week, month, quarter or year"))?;
        if !by.iter().any(|c| *c == *column) {
            return Err(invalid(&at, format!("`{column}` is not one of `by`")));
        }
        out.push((column.to_string(), granularity));
    }
    Ok(out)
}

/// Runs `x_group_by`: one aggregate plan; each group as a value keyed by
/// the response keys of `keys` and `aggregate`.
async fn group_by(
    ctx: &ResolverContext<'_>,
    shape: &Shape,
    shapes: &Shapes,
) -> Result<Vec<GqlValue>, ApiError> {
    let (state, caller) = resolve::request_data(ctx)?;
    let by: Vec<String> = ctx
        .args
        .get("by")
        .map(|v| list(v.as_value()).to_vec())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| match v {
            GqlValue::Enum(name) => Some(name.to_string()),
            GqlValue::String(name) => Some(name),
            _ => None,
        })
        .collect();
    if by.is_empty() {
        return Err(invalid("by", "group by at least one column"));
    }
    let field = Selected::of(&ctx.ctx.field())?;
    let selection = AggregateSelection::of(&[&field], shape);
    let mut extra = Extra {
        answered: &selection.measures,
        measures: Vec::new(),
    };
    let having = match ctx.args.get("having").filter(|v| !v.is_null()) {
        Some(value) => Some(having_filter(value.as_value(), &mut extra, "having")?),
        None => None,
    };
    let sort = match ctx.args.get("order_by").filter(|v| !v.is_null()) {
        Some(value) => order(value.as_value(), &by, &mut extra, "order_by")?,
        None => Vec::new(),
    };
    let count = |name: &str| -> Result<Option<u64>, ApiError> {
        match ctx.args.get(name).filter(|v| !v.is_null()) {
            Some(value) => value
                .i64()
                .ok()
                .and_then(|n| u64::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| invalid(name, format!("`{name}` must be 0 or more"))),
            None => Ok(None),
        }
    };
    let truncated = granularities(ctx, &by)?;
    let (filter, places) = resolve::where_filter(&field, shape, shapes)?;
    let mut measures = selection.measures.clone();
    measures.extend(extra.measures);
    let request = AggregateRequest {
        measures,
        dimensions: by
            .iter()
            .enumerate()
            .map(|(i, column)| {
                let granularity = truncated.iter().find(|(c, _)| c == column).map(|(_, g)| *g);
                Dimension::new(column.clone(), format!("k{i}"), granularity)
            })
            .collect(),
        filter,
        having,
        sort,
        offset: count("offset")?.unwrap_or(0),
        limit: count("limit")?,
        ..AggregateRequest::default()
    };
    let target = Target::resolve(state, &shape.name)?;
    let output = aggregate::start(state, caller, &target, request)
        .await
        .map_err(|e| places.place(e, ""))?;
    let rows = read::collect(state, output).await?;
    // A truncated date is answered as a date (the engine truncates to a
    // timestamp at midnight).
    let dates: Vec<String> = truncated
        .iter()
        .filter(|(column, _)| {
            shape
                .column(column)
                .is_some_and(|c| c.scalar == Scalar::Date)
        })
        .filter_map(|(column, _)| Some(format!("k{}", by.iter().position(|c| c == column)?)))
        .collect();
    // A JSON document is grouped by its text and answered as the value.
    let documents: Vec<String> = by
        .iter()
        .enumerate()
        .filter(|(_, column)| shape.column(column).is_some_and(|c| c.scalar.is_json()))
        .map(|(index, _)| format!("k{index}"))
        .collect();
    // Where the keys go: (response key of `keys`, [(response key, k<i>)]).
    let mut placements: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for selected in field.children.iter().filter(|f| f.name == "keys") {
        let columns = selected
            .children
            .iter()
            .filter_map(|column| {
                let index = by.iter().position(|c| *c == column.name.as_str())?;
                Some((column.key().to_string(), format!("k{index}")))
            })
            .collect();
        placements.push((selected.key().to_string(), columns));
    }
    Ok(rows
        .iter()
        .map(|row| {
            let GqlValue::Object(mut group) = selection.answer(Some(row)) else {
                return GqlValue::Null;
            };
            for (at, columns) in &placements {
                let mut keys = IndexMap::new();
                for (key, alias) in columns {
                    let mut value = row.get(alias).cloned().unwrap_or(Value::Null);
                    if dates.contains(alias)
                        && let Value::String(text) = &mut value
                    {
                        text.truncate(text.find('T').unwrap_or(text.len()));
                    }
                    if documents.contains(alias)
                        && let Value::String(text) = &value
                    {
                        value = resolve::document(text);
                    }
                    keys.insert(async_graphql::Name::new(key), to_graphql(value));
                }
                group.insert(async_graphql::Name::new(at), GqlValue::Object(keys));
            }
            GqlValue::Object(group)
        })
        .collect())
}
