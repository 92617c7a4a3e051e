//! The resolvers. Each root field is one read on the REST API's path: a
//! list or a row by key is `rest::read::fetch` (one plan, the caller's
//! permissions applied by the engine), an aggregate is one
//! `rest::aggregate` plan holding every function the query selects, its
//! answer then handed out to the nested fields by response key. Failures
//! become GraphQL field errors with `extensions.code`.

use std::borrow::Cow;

use async_graphql::dynamic::{FieldValue, ResolverContext};
use async_graphql::indexmap::IndexMap;
use async_graphql::{ErrorExtensions, Name, Value as GqlValue};
use serde_json::Value;

use super::arguments::Places;
use super::render::{Answer, Rendered};
use super::selection::Selected;
use super::shape::{ColumnShape, Scalar, Shape, Shapes};
use super::{arguments, bytea, nested};
use crate::config::GraphqlConfig;
use crate::engine::Caller;
use crate::error::ApiError;
use crate::rest::Target;
use crate::rest::aggregate::{self, AggregateRequest, Aggregation, Measure};
use crate::rest::order::RowWindow;
use crate::rest::params::SortKey;
use crate::rest::read::{self, Cell, ReadRequest, Record};
use crate::state::AppState;

/// A failure as a GraphQL field error: the message, and the code clients
/// branch on (`permission_denied`, `source_unavailable`, `invalid_input`,
/// …) and, when known, where in the request the fault is (`at`).
pub fn field_error(error: ApiError) -> async_graphql::Error {
    let ApiError {
        code,
        message,
        path,
        ..
    } = error;
    async_graphql::Error::new(message).extend_with(|_, extensions| {
        extensions.set("code", code);
        if let Some(path) = path {
            extensions.set("at", path);
        }
    })
}

/// A root field's answer: on failure the field is null and the error is
/// reported with the field's path (async-graphql's dynamic schema would
/// leave both the field and the path out).
pub fn answer<'a>(
    ctx: &ResolverContext<'a>,
    result: Result<Option<FieldValue<'a>>, ApiError>,
) -> async_graphql::Result<Option<FieldValue<'a>>> {
    Ok(result.unwrap_or_else(|error| {
        let error = field_error(error).into_server_error(ctx.ctx.item.pos);
        ctx.ctx.add_error(ctx.ctx.set_error_path(error));
        None
    }))
}

/// The request's state and caller, put in by the HTTP handler.
pub fn request_data<'a>(ctx: &ResolverContext<'a>) -> Result<(&'a AppState, &'a Caller), ApiError> {
    let data = super::RequestData::of(ctx.ctx)?;
    Ok((&data.state, &data.caller))
}

/// The argument `name` of `field`, unless not given or null.
fn given<'s>(field: &'s Selected, name: &str) -> Option<&'s GqlValue> {
    field.argument(name).filter(|v| **v != GqlValue::Null)
}

/// The `where` argument as filter JSON (`None`: no filter), and where its
/// conditions are in the request (for the read's errors).
pub fn where_filter(
    field: &Selected,
    shape: &Shape,
    shapes: &Shapes,
) -> Result<(Option<Value>, Places), ApiError> {
    let Some(exp) = given(field, "where") else {
        return Ok((None, Places::default()));
    };
    let (filter, places) = arguments::filter(exp, shape, shapes, "where")?;
    let filter = filter
        .as_object()
        .is_some_and(|o| !o.is_empty())
        .then_some(filter);
    Ok((filter, places))
}

/// A non-negative `Int` argument.
fn count_argument(field: &Selected, name: &str) -> Result<Option<u64>, ApiError> {
    let Some(value) = given(field, name) else {
        return Ok(None);
    };
    match value {
        GqlValue::Number(n) => n.as_u64().map(Some),
        _ => None,
    }
    .ok_or_else(|| {
        ApiError::bad_request(format!("`{name}` must be 0 or more")).at(name.to_string())
    })
}

/// `distinct_on` and `order_by` of a root field (see
/// `arguments::distinct_and_order`).
fn distinct_and_order(
    field: &Selected,
    shape: &Shape,
    shapes: &Shapes,
) -> Result<(Vec<String>, Vec<SortKey>), ApiError> {
    arguments::distinct_and_order(
        field.argument("distinct_on"),
        field.argument("order_by"),
        shape,
        shapes,
        "",
    )
}

/// At most `limit` rows (the configured default without one, never more
/// than the configured most).
fn row_limit(field: &Selected, limits: &GraphqlConfig) -> Result<u64, ApiError> {
    Ok(count_argument(field, "limit")?
        .map_or(limits.default_limit, |limit| limit.min(limits.max_limit)))
}

/// The read a root `x(where, order_by, limit, offset, distinct_on)`
/// makes, and where its `where`'s conditions are in the request.
pub fn list_request(
    field: &Selected,
    shape: &Shape,
    shapes: &Shapes,
    limits: &GraphqlConfig,
) -> Result<(ReadRequest, Places), ApiError> {
    let (distinct_on, sort) = distinct_and_order(field, shape, shapes)?;
    let (filter, places) = where_filter(field, shape, shapes)?;
    let request = ReadRequest {
        filter,
        sort,
        distinct_on,
        fields: nested::columns(field, shape),
        append_fields: nested::appended(field, shape, shapes),
        offset: count_argument(field, "offset")?.unwrap_or(0),
        limit: Some(row_limit(field, limits)?),
        ..ReadRequest::default()
    };
    Ok((request, places))
}

/// The rows of a root `x`: `request` read, with the relations `field`
/// selects attached.
pub async fn list_rows(
    state: &AppState,
    caller: &Caller,
    field: &Selected,
    shape: &Shape,
    shapes: &Shapes,
    request: &ReadRequest,
    places: &Places,
) -> Result<Vec<Record>, ApiError> {
    let target = Target::resolve(state, &shape.name)?;
    let (mut records, _) = read::fetch(state, caller, &target, request)
        .await
        .map_err(|e| places.place(e, ""))?;
    nested::attach(state, caller, field, shape, shapes, &mut records).await?;
    Ok(records)
}

/// `x(where, order_by, limit, offset, distinct_on)`.
pub async fn list<'a>(
    ctx: &ResolverContext<'a>,
    shape: &Shape,
    shapes: &Shapes,
    limits: &GraphqlConfig,
) -> Result<FieldValue<'a>, ApiError> {
    let (state, caller) = request_data(ctx)?;
    let field = Selected::of(&ctx.ctx.field())?;
    let (request, places) = list_request(&field, shape, shapes, limits)?;
    let records = list_rows(state, caller, &field, shape, shapes, &request, &places).await?;
    Ok(
        match Rendered::keep(ctx, &field, shape, shapes, Answer::Rows(records)) {
            Ok(()) => FieldValue::list(Vec::<FieldValue<'a>>::new()),
            Err(answer) => {
                FieldValue::list(answer.into_records().into_iter().map(FieldValue::owned_any))
            }
        },
    )
}

/// The row a root `x_by_pk` answers, by its key's values (or none).
pub async fn by_pk_row(
    state: &AppState,
    caller: &Caller,
    field: &Selected,
    shape: &Shape,
    shapes: &Shapes,
    key: Vec<(String, Value)>,
) -> Result<Option<Record>, ApiError> {
    if let Some(row) =
        nested::by_pk_through_related(state, caller, field, shape, shapes, &key).await?
    {
        return Ok(row);
    }
    let request = ReadRequest {
        filter: Some(arguments::key_filter(key)),
        fields: nested::columns(field, shape),
        append_fields: nested::appended(field, shape, shapes),
        limit: Some(1),
        ..ReadRequest::default()
    };
    let target = Target::resolve(state, &shape.name)?;
    let (mut records, _) = read::fetch(state, caller, &target, &request).await?;
    nested::attach(state, caller, field, shape, shapes, &mut records).await?;
    Ok(records.into_iter().next())
}

/// `x_by_pk(<key columns>)`: the row, or null.
pub async fn by_pk<'a>(
    ctx: &ResolverContext<'a>,
    shape: &Shape,
    shapes: &Shapes,
) -> Result<Option<FieldValue<'a>>, ApiError> {
    let (state, caller) = request_data(ctx)?;
    let field = Selected::of(&ctx.ctx.field())?;
    let key = shape.primary_key.as_deref().unwrap_or_default();
    let mut values = Vec::with_capacity(key.len());
    for column in key {
        let value = field
            .argument(&column.name)
            .cloned()
            .unwrap_or(GqlValue::Null)
            .into_json()
            .map_err(|e| ApiError::bad_request(e.to_string()).at(column.name.clone()))?;
        values.push((column.name.clone(), value));
    }
    let row = by_pk_row(state, caller, &field, shape, shapes, values).await?;
    Ok(
        match Rendered::keep(ctx, &field, shape, shapes, Answer::Row(row)) {
            Ok(()) => None,
            Err(answer) => answer
                .into_records()
                .into_iter()
                .next()
                .map(FieldValue::owned_any),
        },
    )
}

/// Where one measure's value goes in the answer.
struct Placement {
    /// Response keys from `x_aggregate`'s value down.
    path: Vec<String>,
    alias: String,
    /// `avg`, `stddev`, `variance`…: answered as a Float whatever the
    /// column's type.
    float: bool,
    /// `count`: 0, not null, where no row was counted.
    count: bool,
}

/// The measures an `x_aggregate` field selects (each answered as `m<i>`),
/// and where each one's value goes in the answer.
pub struct AggregateSelection {
    pub measures: Vec<Measure>,
    placements: Vec<Placement>,
    /// The answer's objects, before the values are placed.
    skeleton: IndexMap<Name, GqlValue>,
}

impl AggregateSelection {
    /// Reads the selection (`aggregate { count sum {…} … }`) of `fields`:
    /// one field, or one selected again under its response key.
    pub fn of(fields: &[&Selected], shape: &Shape) -> Self {
        let mut measures: Vec<Measure> = Vec::new();
        let mut placements: Vec<Placement> = Vec::new();
        let mut skeleton: IndexMap<Name, GqlValue> = IndexMap::new();
        for selected in fields.iter().flat_map(|field| &field.children) {
            if selected.name != "aggregate" {
                continue;
            }
            let at = selected.key().to_string();
            insert(
                &mut skeleton,
                std::slice::from_ref(&at),
                GqlValue::Object(IndexMap::new()),
            );
            for function in &selected.children {
                let here = vec![at.clone(), function.key().to_string()];
                let aggregation = match function.name.as_str() {
                    "count" => {
                        let (columns, distinct) = count_arguments(function);
                        let alias = format!("m{}", measures.len());
                        let distinct = distinct && !columns.is_empty();
                        measures.push(Measure::count_of(columns, distinct, alias.clone()));
                        placements.push(Placement {
                            path: here,
                            alias,
                            float: false,
                            count: true,
                        });
                        continue;
                    }
                    name => match arguments::aggregation_named(name) {
                        Some(aggregation) => aggregation,
                        None => continue,
                    },
                };
                insert(&mut skeleton, &here, GqlValue::Object(IndexMap::new()));
                for column in &function.children {
                    if shape.column(&column.name).is_none() {
                        continue;
                    }
                    let alias = format!("m{}", measures.len());
                    measures.push(Measure::new(
                        aggregation,
                        Some(column.name.to_string()),
                        false,
                        alias.clone(),
                    ));
                    let mut path = here.clone();
                    path.push(column.key().to_string());
                    placements.push(Placement {
                        path,
                        alias,
                        float: !matches!(
                            aggregation,
                            Aggregation::Sum | Aggregation::Min | Aggregation::Max
                        ),
                        count: false,
                    });
                }
            }
        }
        Self {
            measures,
            placements,
            skeleton,
        }
    }

    /// The answer from one row of the aggregate (`None`: no row counted).
    pub fn answer(&self, record: Option<&Record>) -> GqlValue {
        let mut tree = self.skeleton.clone();
        for placement in &self.placements {
            let value = record
                .and_then(|r| r.get(&placement.alias))
                .cloned()
                .unwrap_or(Value::Null);
            let value = match value {
                Value::Null if placement.count => Value::from(0),
                // Decimal averages come as their text.
                Value::String(text) if placement.float => text
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Value::String(text), Value::Number),
                other => other,
            };
            insert(&mut tree, &placement.path, to_graphql(value));
        }
        GqlValue::Object(tree)
    }
}

/// A root `x_aggregate`'s answer: the `aggregate` values (a value tree
/// keyed by response keys) and the rows `nodes` answers.
pub struct AggregateAnswer {
    tree: GqlValue,
    nodes: Vec<Record>,
}

/// `x_aggregate(where, order_by, limit, offset, distinct_on) { aggregate {
/// count sum {…} … } nodes {…} }`: every selected function in one plan
/// over the rows the arguments pick; the rows themselves, when `nodes` is
/// selected, in one read of the same rows.
pub async fn aggregate(
    ctx: &ResolverContext<'_>,
    shape: &Shape,
    shapes: &Shapes,
    limits: &GraphqlConfig,
) -> Result<AggregateAnswer, ApiError> {
    let (state, caller) = request_data(ctx)?;
    let field = Selected::of(&ctx.ctx.field())?;
    let (filter, places) = where_filter(&field, shape, shapes)?;
    let selection = AggregateSelection::of(&[&field], shape);
    let (distinct_on, sort) = distinct_and_order(&field, shape, shapes)?;
    let offset = count_argument(&field, "offset")?.unwrap_or(0);
    let target = Target::resolve(state, &shape.name)?;
    let rows = RowWindow {
        distinct_on,
        sort,
        offset,
        limit: count_argument(&field, "limit")?,
        per: Vec::new(),
    };
    let tree = if selection.measures.is_empty() {
        selection.answer(None)
    } else {
        let request = AggregateRequest {
            measures: selection.measures.clone(),
            filter: filter.clone(),
            rows: rows.clone(),
            ..AggregateRequest::default()
        };
        let output = aggregate::start(state, caller, &target, request)
            .await
            .map_err(|e| places.place(e, ""))?;
        let record = read::collect(state, output).await?.into_iter().next();
        selection.answer(record.as_ref())
    };
    let selected_nodes: Vec<&Selected> = field
        .children
        .iter()
        .filter(|f| f.name == "nodes")
        .collect();
    let mut nodes = Vec::new();
    if !selected_nodes.is_empty() {
        let mut fields: Vec<String> = Vec::new();
        for selected in &selected_nodes {
            for column in nested::columns(selected, shape) {
                if !fields.contains(&column) {
                    fields.push(column);
                }
            }
        }
        let request = ReadRequest {
            filter,
            sort: rows.sort,
            distinct_on: rows.distinct_on,
            fields,
            offset,
            limit: Some(row_limit(&field, limits)?),
            ..ReadRequest::default()
        };
        nodes = read::fetch(state, caller, &target, &request)
            .await
            .map_err(|e| places.place(e, ""))?
            .0;
        for selected in &selected_nodes {
            nested::attach(state, caller, selected, shape, shapes, &mut nodes).await?;
        }
    }
    Ok(AggregateAnswer { tree, nodes })
}

/// `x_aggregate { aggregate }`: from a root field's answer, or from the
/// parts a nested `<relation>_aggregate` answers for its parent row.
pub fn aggregate_part<'a>(ctx: &ResolverContext<'a>) -> Option<FieldValue<'a>> {
    let field = ctx.ctx.field();
    let key = field.alias().unwrap_or(field.name());
    if let Ok(answer) = ctx.parent_value.try_downcast_ref::<AggregateAnswer>() {
        let GqlValue::Object(entries) = &answer.tree else {
            return None;
        };
        return entries.get(key).cloned().map(FieldValue::value);
    }
    let parts = ctx.parent_value.try_downcast_ref::<Record>().ok()?;
    parts
        .get(nested::AGGREGATE_PART)?
        .get(key)
        .cloned()
        .map(|value| FieldValue::value(to_graphql(value)))
}

/// `x_aggregate { nodes }`: the rows a root `x_aggregate` read, or those a
/// nested `<relation>_aggregate` read for its parent row.
pub fn aggregate_nodes<'a>(
    ctx: &ResolverContext<'a>,
) -> async_graphql::Result<Option<FieldValue<'a>>> {
    let nodes: &'a [Record] = match ctx.parent_value.try_downcast_ref::<AggregateAnswer>() {
        Ok(answer) => &answer.nodes,
        Err(_) => {
            let parts = ctx.parent_value.try_downcast_ref::<Record>()?;
            match parts
                .0
                .iter()
                .find(|(name, _)| **name == *nested::NODES_PART)
            {
                Some((_, Cell::Many(rows))) => rows,
                _ => {
                    return Err(field_error(ApiError::internal(
                        "`nodes` was not read with its aggregate",
                    )));
                }
            }
        }
    };
    Ok(Some(FieldValue::list(
        nodes.iter().map(|row| FieldValue::borrowed_any(row)),
    )))
}

/// `count(columns: [..], distinct)`: the columns (each once) and whether
/// distinct values are counted.
fn count_arguments(field: &Selected) -> (Vec<String>, bool) {
    let mut columns: Vec<String> = Vec::new();
    let mut distinct = false;
    for (name, value) in &field.arguments {
        match (name.as_str(), value) {
            ("columns", GqlValue::List(items)) => {
                columns.extend(items.iter().filter_map(|item| match item {
                    GqlValue::Enum(name) => Some(name.to_string()),
                    _ => None,
                }));
            }
            ("columns", GqlValue::Enum(name)) => columns.push(name.to_string()),
            ("distinct", GqlValue::Boolean(b)) => distinct = *b,
            _ => {}
        }
    }
    let mut seen = std::collections::HashSet::new();
    columns.retain(|c| seen.insert(c.clone()));
    (columns, distinct)
}

/// Puts `value` at `path` in `tree`, making the objects on the way.
fn insert(tree: &mut IndexMap<Name, GqlValue>, path: &[String], value: GqlValue) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = tree;
    for parent in parents {
        let entry = node
            .entry(Name::new(parent))
            .or_insert_with(|| GqlValue::Object(IndexMap::new()));
        let GqlValue::Object(inner) = entry else {
            return;
        };
        node = inner;
    }
    match (node.get_mut(last.as_str()), value) {
        // An object already there (one selected twice): keep what it holds.
        (Some(GqlValue::Object(_)), GqlValue::Object(_)) => {}
        (_, value) => {
            node.insert(Name::new(last), value);
        }
    }
}

/// A field of a value computed whole by its root field, by response key.
pub fn by_response_key<'a>(ctx: &ResolverContext<'a>) -> Option<FieldValue<'a>> {
    let field = ctx.ctx.field();
    let key = field.alias().unwrap_or(field.name());
    match ctx.parent_value.as_value() {
        // A null is answered as no value: async-graphql refuses a null
        // value for a custom scalar (a sum or a date over no rows).
        Some(GqlValue::Object(entries)) => entries
            .get(key)
            .filter(|value| **value != GqlValue::Null)
            .cloned()
            .map(FieldValue::value),
        _ => None,
    }
}

/// A column of a row.
pub fn column<'a>(
    ctx: &ResolverContext<'a>,
    column: &ColumnShape,
) -> async_graphql::Result<Option<FieldValue<'a>>> {
    let record = ctx.parent_value.try_downcast_ref::<Record>()?;
    Ok(column_value(record, column).map(FieldValue::value))
}

/// A column's value as GraphQL answers it: JSON columns as their
/// document, `bytea` as base64, others as read (`None`: null). Both the
/// resolvers and the answers written at once (`render.rs`) answer this.
pub fn column_json<'r>(record: &'r Record, column: &ColumnShape) -> Option<Cow<'r, Value>> {
    Some(match (record.get(&column.name), column.scalar) {
        (None | Some(Value::Null), _) => return None,
        (Some(Value::String(text)), Scalar::Json | Scalar::Jsonb) => Cow::Owned(document(text)),
        (Some(Value::String(text)), Scalar::Bytea) => Cow::Owned(Value::String(
            bytea::to_base64(text).unwrap_or_else(|| text.clone()),
        )),
        (Some(value), _) => Cow::Borrowed(value),
    })
}

/// [`column_json`] as async-graphql's value.
pub fn column_value(record: &Record, column: &ColumnShape) -> Option<GqlValue> {
    column_json(record, column).map(|value| to_graphql(value.into_owned()))
}

/// A JSON column's value, which arrives as its text: answered as the
/// document (the text itself if it does not parse).
pub fn document(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// A JSON value as GraphQL's, converted directly (`GqlValue::from_json`
/// goes through serde's deserializer, a visible cost once per answered
/// scalar of every row).
pub fn to_graphql(value: Value) -> GqlValue {
    match value {
        Value::Null => GqlValue::Null,
        Value::Bool(b) => GqlValue::Boolean(b),
        Value::Number(n) => GqlValue::Number(n),
        Value::String(s) => GqlValue::String(s),
        Value::Array(items) => GqlValue::List(items.into_iter().map(to_graphql).collect()),
        Value::Object(entries) => GqlValue::Object(
            entries
                .into_iter()
                .map(|(key, value)| (Name::new(key), to_graphql(value)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_converts_as_async_graphql_converts_it() {
        let value = serde_json::json!({
            "n": null, "b": true, "i": -7, "u": 18446744073709551615u64, "f": 1.5,
            "s": "text", "list": [1, "two", [null]], "nested": {"z": 1, "a": {"k": false}}
        });
        let expected = GqlValue::from_json(value.clone()).expect("converts");
        assert_eq!(to_graphql(value), expected);
        // Keys keep their order (IndexMap equality ignores it).
        let got = to_graphql(serde_json::json!({"z": 1, "a": 2}));
        let GqlValue::Object(entries) = got else {
            panic!("an object");
        };
        let keys: Vec<&str> = entries.keys().map(Name::as_str).collect();
        let expected: Vec<String> = serde_json::json!({"z": 1, "a": 2})
            .as_object()
            .expect("object")
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys, expected);
    }
}
