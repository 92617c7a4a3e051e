//! `GET /api/{c}:aggregate`, the endpoint dashboards use: `measures`
//! (count — of rows, of a column or of several —, count distinct, sum,
//! avg, min, max, deviations and variances), `dimensions` (group by,
//! dates truncated to day / week / month / quarter / year), `filter`,
//! `having` (over the measures' and dimensions' aliases), `sort` and
//! `limit`. Shapes follow NocoBase's chart queries:
//! `measures=[{"field":"o_totalprice","aggregation":"sum","alias":"total"}]`,
//! `dimensions=[{"field":"o_orderdate","granularity":"month"}]`. A role
//! needs its aggregate rule; only rows its filter admits are counted.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, DFSchema, TableReference};
use datafusion::functions::core::expr_fn::r#struct;
use datafusion::functions::expr_fn::date_trunc;
use datafusion::functions_aggregate::expr_fn::{
    count, count_distinct, max, min, stddev, stddev_pop, sum, var_pop, var_sample,
};
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, SortExpr, lit, when};
use datafusion::scalar::ScalarValue;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::cursor;
use super::order::{self, RowWindow};
use super::params::{Params, SortKey};
use super::read::{Record, collect, filter_error, full_name, internal, within};
use super::{Target, json_response};
use crate::auth::Principal;
use crate::engine::{Caller, QueryOutput, ReadShape, Request, avg};
use crate::error::ApiError;
use crate::filter;
use crate::sql_api::Format;
use crate::sql_stream;
use crate::state::AppState;

/// One measure: an aggregate of a column (or of rows, for count).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Measure {
    #[serde(default)]
    field: Option<FieldName>,
    /// Several columns, for `count`: the rows where none of them is NULL
    /// (with `distinct`, their distinct combinations).
    #[serde(default)]
    fields: Vec<String>,
    aggregation: Aggregation,
    #[serde(default)]
    distinct: bool,
    #[serde(default)]
    alias: Option<String>,
}

/// One dimension: a column to group by, a date one possibly truncated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Dimension {
    field: FieldName,
    #[serde(default)]
    alias: Option<String>,
    #[serde(default)]
    granularity: Option<Granularity>,
}

/// NocoBase writes a field as `"col"` or `["col"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum FieldName {
    One(String),
    Path(Vec<String>),
}

impl FieldName {
    fn column(&self) -> Result<&str, String> {
        match self {
            Self::One(name) => Ok(name),
            Self::Path(path) if path.len() == 1 => Ok(&path[0]),
            Self::Path(path) => Err(format!(
                "`{}`: fields of related collections cannot be aggregated here",
                path.join(".")
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Aggregation {
    Count,
    Sum,
    Avg,
    Min,
    Max,
    /// The sample standard deviation (PostgreSQL's `stddev`, `stddev_samp`).
    Stddev,
    StddevPop,
    /// The sample variance (PostgreSQL's `variance`, `var_samp`).
    Variance,
    VarPop,
}

impl Measure {
    /// `aggregation` of `field` (of rows when `None`), answered as `alias`.
    pub(crate) fn new(
        aggregation: Aggregation,
        field: Option<String>,
        distinct: bool,
        alias: String,
    ) -> Self {
        Self {
            field: field.map(FieldName::One),
            fields: Vec::new(),
            aggregation,
            distinct,
            alias: Some(alias),
        }
    }

    /// `count` of `columns` (of rows when there are none), of their
    /// distinct values when `distinct`, answered as `alias`.
    pub(crate) fn count_of(mut columns: Vec<String>, distinct: bool, alias: String) -> Self {
        match columns.len() {
            0 | 1 => Self::new(Aggregation::Count, columns.pop(), distinct, alias),
            _ => Self {
                field: None,
                fields: columns,
                aggregation: Aggregation::Count,
                distinct,
                alias: Some(alias),
            },
        }
    }
}

impl Measure {
    /// This measure's alias when it is `aggregation` of `field` (of rows
    /// for `None`), not distinct.
    pub(crate) fn alias_if(&self, aggregation: Aggregation, field: Option<&str>) -> Option<&str> {
        let column = self.field.as_ref().and_then(|f| f.column().ok());
        let one = self.fields.is_empty();
        (self.aggregation == aggregation && !self.distinct && one && column == field)
            .then_some(self.alias.as_deref())
            .flatten()
    }
}

impl Dimension {
    /// Group by `field` (truncated to `granularity`), answered as `alias`.
    pub(crate) fn new(field: String, alias: String, granularity: Option<Granularity>) -> Self {
        Self {
            field: FieldName::One(field),
            alias: Some(alias),
            granularity,
        }
    }
}

impl Aggregation {
    /// The aggregate of `expr`.
    pub(crate) fn of(self, expr: Expr) -> Expr {
        match self {
            Self::Count => count(expr),
            Self::Sum => sum(expr),
            Self::Avg => avg(expr),
            Self::Min => min(expr),
            Self::Max => max(expr),
            Self::Stddev => stddev(expr),
            Self::StddevPop => stddev_pop(expr),
            Self::Variance => var_sample(expr),
            Self::VarPop => var_pop(expr),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::Sum => "sum",
            Self::Avg => "avg",
            Self::Min => "min",
            Self::Max => "max",
            Self::Stddev => "stddev",
            Self::StddevPop => "stddev_pop",
            Self::Variance => "variance",
            Self::VarPop => "var_pop",
        }
    }
}

/// What a date dimension is truncated to.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Granularity {
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl Granularity {
    pub(crate) const ALL: [Self; 5] = [
        Self::Day,
        Self::Week,
        Self::Month,
        Self::Quarter,
        Self::Year,
    ];

    pub(crate) fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.name() == name)
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
            Self::Quarter => "quarter",
            Self::Year => "year",
        }
    }
}

/// `count` of several columns: the rows where none of them is NULL, or the
/// distinct combinations among those rows; named `count_a_b` or
/// `count_distinct_a_b`. The plain count is a `CASE` every source can run;
/// the distinct one counts a struct of the values, which stays in DataFusion.
fn count_of_several(
    arguments: &[(String, Expr)],
    distinct: bool,
) -> Result<(Expr, String), ApiError> {
    let all_present = arguments
        .iter()
        .map(|(_, expr)| expr.clone().is_not_null())
        .reduce(Expr::and)
        .unwrap_or_else(|| lit(true));
    let names: Vec<&str> = arguments.iter().map(|(name, _)| name.as_str()).collect();
    let names = names.join("_");
    let value = if distinct {
        r#struct(arguments.iter().map(|(_, expr)| expr.clone()).collect())
    } else {
        lit(1)
    };
    let counted = when(all_present, value).end().map_err(internal)?;
    Ok(if distinct {
        (count_distinct(counted), format!("count_distinct_{names}"))
    } else {
        (count(counted), format!("count_{names}"))
    })
}

/// A JSON list parameter.
fn list<T: for<'de> Deserialize<'de>>(params: &mut Params, name: &str) -> Result<Vec<T>, ApiError> {
    match params.json(name)? {
        None => Ok(Vec::new()),
        Some(value) => serde_json::from_value(value).map_err(|e| {
            ApiError::bad_request(format!("`{name}` is not a list of {name}: {e}")).at(name)
        }),
    }
}

/// What one aggregate asks for, once parsed.
#[derive(Debug, Default)]
pub(crate) struct AggregateRequest {
    /// None: the count of rows, as `count`.
    pub measures: Vec<Measure>,
    pub dimensions: Vec<Dimension>,
    pub filter: Option<Value>,
    pub having: Option<Value>,
    pub sort: Vec<SortKey>,
    /// Groups to skip (GraphQL's `offset`) and most groups to answer.
    pub offset: u64,
    pub limit: Option<u64>,
    /// The rows aggregated: those of the filter, or only some of them in
    /// an order (GraphQL's `x_aggregate(order_by, limit, distinct_on)`).
    pub rows: RowWindow,
}

/// `GET /api/{c}:aggregate`.
pub async fn run(
    state: &AppState,
    principal: &Principal,
    target: &Target,
    params: &mut Params,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let format = Format::from_headers(headers)?;
    let request = AggregateRequest {
        measures: list(params, "measures")?,
        dimensions: list(params, "dimensions")?,
        filter: params.filter()?,
        having: params.json("having")?,
        sort: params.sort(),
        limit: params.number("limit", 1)?,
        ..AggregateRequest::default()
    };
    std::mem::take(params).finish()?;
    let output = start(state, &principal.caller(), target, request).await?;
    if let Format::Streamed(encoding) = format {
        return Ok(sql_stream::response(
            encoding,
            output,
            state.config.max_rows,
            state.config.query_timeout,
        ));
    }
    let records = collect(state, output).await?;
    #[derive(Serialize)]
    struct Answer {
        data: Vec<Record>,
    }
    Ok(json_response(StatusCode::OK, &Answer { data: records }))
}

/// Plans and starts an aggregate: one `Aggregate` plan over the collection
/// as `caller` sees it, one row per group.
pub(crate) async fn start(
    state: &AppState,
    caller: &Caller,
    target: &Target,
    request: AggregateRequest,
) -> Result<QueryOutput, ApiError> {
    let AggregateRequest {
        mut measures,
        dimensions,
        filter,
        having,
        sort,
        offset,
        limit,
        rows,
    } = request;
    if measures.is_empty() {
        measures.push(Measure::new(
            Aggregation::Count,
            None,
            false,
            "count".into(),
        ));
    }
    // Everything but the filter's values names the plan: a request of a
    // shape learned before skips planning (as a list does). Rows picked in
    // an order (GraphQL's) are planned each time.
    let collection = target.name();
    let shape = rows.is_whole().then(|| {
        format!(
            "aggregate\u{1f}{collection}\u{1f}{measures:?}\u{1f}{dimensions:?}\u{1f}{having:?}\
             \u{1f}{sort:?}\u{1f}{offset}\u{1f}{limit:?}"
        )
    });
    let keyed = Request {
        shape,
        filter: filter.as_ref(),
    };
    let work = async {
        state
            .engine
            .query_read(caller, ReadShape::Rows, Some(keyed), |scope, filter| -> Result<_, ApiError> {
                let mut aliases: Vec<String> = Vec::new();
                let table = &target.collection.table;
                let name = full_name(table);
                let provider = (scope.tables)(table).ok_or_else(|| {
                    ApiError::forbidden(format!("`{}` cannot be aggregated here", target.name()))
                })?;
                let visible: Vec<String> =
                    provider.schema().fields().iter().map(|f| f.name().clone()).collect();
                // The rows aggregated: the collection's, or a derived table
                // of the rows `rows` picks.
                let qualifier = if rows.is_whole() {
                    name.clone()
                } else {
                    TableReference::bare("picked")
                };
                let column = |field: &str, at: &str| -> Result<Expr, ApiError> {
                    if visible.iter().any(|c| c == field) {
                        Ok(Expr::Column(Column::new(Some(qualifier.clone()), field)))
                    } else if target.def.column(field).is_some() {
                        Err(ApiError::forbidden(format!(
                            "column `{field}` of `{}` is not readable here",
                            target.name()
                        ))
                        .at(at.to_string()))
                    } else {
                        Err(ApiError::bad_request(format!(
                            "`{}` has no column `{field}`",
                            target.name()
                        ))
                        .at(at.to_string()))
                    }
                };
                let mut builder = LogicalPlanBuilder::scan(
                    name.clone(),
                    datafusion::datasource::provider_as_source(provider.clone()),
                    None,
                )
                .map_err(internal)?;
                if let Some(filter) = filter {
                    let cx = filter::Context {
                        snapshot: scope.snapshot,
                        providers: scope.tables,
                        variables: scope.variables,
                        time_zone: scope.time_zone,
                    };
                    let predicate =
                        filter::compile(filter, table, &name, &cx).map_err(filter_error)?;
                    for used in predicate.column_refs() {
                        if used.relation.as_ref() == Some(&name) {
                            column(&used.name, "filter")?;
                        }
                    }
                    builder = builder.filter(predicate).map_err(internal)?;
                }
                if !rows.is_whole() {
                    for name in &rows.distinct_on {
                        column(name, "distinct_on")?;
                    }
                    for key in rows.sort.iter().filter(|k| k.via.is_none()) {
                        column(&key.column, "order_by")?;
                    }
                    // The primary key breaks ties, as in a read of the
                    // same rows (GraphQL's `nodes` beside the aggregate).
                    let rows = RowWindow {
                        sort: cursor::order_keys(target, &rows.sort, &visible),
                        ..rows.clone()
                    };
                    // A derived table of their own: the SQL unparser would
                    // otherwise write their order beside the aggregate too.
                    let own: Vec<Expr> = visible
                        .iter()
                        .map(|c| Expr::Column(Column::new(Some(name.clone()), c.as_str())))
                        .collect();
                    builder = order::pick(scope, target, &name, builder, &rows)?
                        .project(own)
                        .and_then(|b| b.alias(qualifier.clone()))
                        .map_err(internal)?;
                }
                // Unaliased, one of each: the projection after the
                // aggregate names the outputs (`positions`: each output's
                // place among the groups, then among the aggregates).
                let mut groups = Vec::new();
                let mut positions: Vec<Position> = Vec::new();
                for (i, dimension) in dimensions.iter().enumerate() {
                    let at = format!("dimensions[{i}]");
                    let field = dimension
                        .field
                        .column()
                        .map_err(|m| ApiError::bad_request(m).at(at.clone()))?;
                    let mut expr = column(field, &at)?;
                    let mut alias = field.to_string();
                    if let Some(granularity) = dimension.granularity {
                        let data_type = provider
                            .schema()
                            .field_with_name(field)
                            .map(|f| f.data_type().clone())
                            .map_err(|e| ApiError::bad_request(e.to_string()).at(at.clone()))?;
                        if !(data_type.is_temporal()) {
                            return Err(ApiError::bad_request(format!(
                                "`granularity` needs a date or timestamp column; `{field}` is \
                                 {data_type}"
                            ))
                            .at(at));
                        }
                        expr = date_trunc(lit(granularity.name()), expr);
                        alias = format!("{field}_{}", granularity.name());
                    }
                    let alias = dimension.alias.clone().unwrap_or(alias);
                    positions.push(Position::Group(position_of(&mut groups, expr)));
                    aliases.push(alias);
                }
                let mut aggregates = Vec::new();
                for (i, measure) in measures.iter().enumerate() {
                    let at = format!("measures[{i}]");
                    let mut arguments = Vec::new();
                    if let Some(field) = &measure.field {
                        let field = field
                            .column()
                            .map_err(|m| ApiError::bad_request(m).at(at.clone()))?;
                        if matches!(measure.aggregation, Aggregation::Sum | Aggregation::Avg)
                            && let Ok(found) = provider.schema().field_with_name(field)
                            && !found.data_type().is_numeric()
                        {
                            return Err(ApiError::bad_request(format!(
                                "`{}` needs a number column; `{field}` is {}",
                                measure.aggregation.name(),
                                found.data_type()
                            ))
                            .at(at));
                        }
                        arguments.push((field.to_string(), column(field, &at)?));
                    }
                    for field in &measure.fields {
                        arguments.push((field.clone(), column(field, &at)?));
                    }
                    if !measure.fields.is_empty()
                        && (measure.field.is_some() || measure.aggregation != Aggregation::Count)
                    {
                        return Err(ApiError::bad_request(
                            "`fields` (several columns) is for `count` alone, without `field`",
                        )
                        .at(at));
                    }
                    let (expr, default_alias) = match (measure.aggregation, arguments.as_slice()) {
                        (Aggregation::Count, []) => (count(lit(1)), "count".to_string()),
                        (Aggregation::Count, [(field, expr)]) if measure.distinct => (
                            count_distinct(expr.clone()),
                            format!("count_distinct_{field}"),
                        ),
                        (Aggregation::Count, [_, _, ..]) => {
                            count_of_several(&arguments, measure.distinct)?
                        }
                        (aggregation, [(field, expr)]) => (
                            aggregation.of(expr.clone()),
                            format!("{}_{field}", aggregation.name()),
                        ),
                        (aggregation, _) => {
                            return Err(ApiError::bad_request(format!(
                                "`{}` needs a `field`",
                                aggregation.name()
                            ))
                            .at(at));
                        }
                    };
                    let alias = measure.alias.clone().unwrap_or(default_alias);
                    if aliases.contains(&alias) {
                        return Err(ApiError::bad_request(format!(
                            "two outputs are named `{alias}`: give one an `alias`"
                        ))
                        .at(at));
                    }
                    let index = position_of(&mut aggregates, expr);
                    positions.push(Position::Aggregate(index));
                    aliases.push(alias);
                }
                let group_count = groups.len();
                builder = builder.aggregate(groups, aggregates).map_err(internal)?;
                // The outputs, in order, named: SQL's SELECT list. Without a
                // projection of its own the SQL unparser writes an
                // aggregate's columns in another order than the plan's
                // (MariaDB then answered an average as the group key).
                let columns = builder.schema().columns();
                let named = positions.iter().zip(&aliases).map(|(position, alias)| {
                    let index = match position {
                        Position::Group(i) => *i,
                        Position::Aggregate(i) => group_count + i,
                    };
                    Expr::Column(columns[index].clone()).alias(alias.as_str())
                });
                builder = builder.project(named).map_err(internal)?;
                let output = |alias: &str| Expr::Column(Column::from_name(alias));
                if let Some(having) = &having {
                    let condition =
                        having_expr(having, &Outputs(&aliases, builder.schema()), "having")?;
                    builder = builder.filter(condition).map_err(internal)?;
                }

                if !sort.is_empty() {
                    let mut order: Vec<SortExpr> = Vec::new();
                    for key in &sort {
                        if !aliases.contains(&key.column) {
                            return Err(ApiError::bad_request(format!(
                                "cannot sort by `{}`: sort by a measure's or dimension's alias ({})",
                                key.column,
                                aliases.join(", ")
                            ))
                            .at("sort"));
                        }
                        order.push(output(&key.column).sort(!key.descending, key.nulls_first()));
                    }
                    builder = builder.sort(order).map_err(internal)?;
                }
                if offset > 0 || limit.is_some() {
                    builder = builder
                        .limit(
                            usize::try_from(offset).unwrap_or(usize::MAX),
                            limit.and_then(|l| usize::try_from(l).ok()),
                        )
                        .map_err(internal)?;
                }
                builder.build().map_err(internal)
            })
            .await
    };
    within(state, work).await
}

/// Where an output of the aggregate comes from.
enum Position {
    Group(usize),
    Aggregate(usize),
}

/// The index of `expr` in `exprs`, added unless an equal one is there.
fn position_of(exprs: &mut Vec<Expr>, expr: Expr) -> usize {
    match exprs.iter().position(|e| *e == expr) {
        Some(index) => index,
        None => {
            exprs.push(expr);
            exprs.len() - 1
        }
    }
}

/// `having`: `{alias: value | {op: value}}` with `$and` / `$or`, comparing
/// the aggregated outputs.
fn having_expr(value: &Value, outputs: &Outputs<'_>, path: &str) -> Result<Expr, ApiError> {
    let aliases = outputs.0;
    let Value::Object(entries) = value else {
        return Err(ApiError::bad_request("expected an object").at(path.to_string()));
    };
    let mut parts = Vec::new();
    for (key, condition) in entries {
        let here = format!("{path}.{key}");
        if key == "$and" || key == "$or" {
            let Value::Array(items) = condition else {
                return Err(ApiError::bad_request("expected an array").at(here));
            };
            let inner = items
                .iter()
                .enumerate()
                .map(|(i, item)| having_expr(item, outputs, &format!("{here}[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            let joined = if key == "$and" {
                inner.into_iter().reduce(Expr::and).unwrap_or(lit(true))
            } else {
                inner.into_iter().reduce(Expr::or).unwrap_or(lit(false))
            };
            parts.push(joined);
            continue;
        }
        if !aliases.contains(key) {
            return Err(ApiError::bad_request(format!(
                "`{key}` is not an output of this aggregate ({})",
                aliases.join(", ")
            ))
            .at(here));
        }
        let column = Expr::Column(Column::from_name(key.as_str()));
        let ops = match condition {
            Value::Object(ops) => ops.iter().map(|(o, v)| (o.as_str(), v)).collect(),
            other => vec![("$eq", other)],
        };
        for (op, operand) in ops {
            let at = format!("{here}.{op}");
            let data_type = outputs.data_type(key);
            let value = || scalar(operand, data_type, &at);
            parts.push(match op {
                "$eq" => column.clone().eq(value()?),
                "$ne" => column.clone().not_eq(value()?),
                "$gt" => column.clone().gt(value()?),
                "$gte" => column.clone().gt_eq(value()?),
                "$lt" => column.clone().lt(value()?),
                "$lte" => column.clone().lt_eq(value()?),
                "$in" | "$notIn" => {
                    let Value::Array(items) = operand else {
                        return Err(ApiError::bad_request("expected an array").at(at));
                    };
                    let list = items
                        .iter()
                        .map(|v| scalar(v, data_type, &at))
                        .collect::<Result<Vec<_>, _>>()?;
                    column.clone().in_list(list, op == "$notIn")
                }
                other => {
                    return Err(ApiError::bad_request(format!(
                        "unknown operator `{other}` in having (use $eq $ne $gt $gte $lt $lte $in \
                         $notIn)"
                    ))
                    .at(at));
                }
            });
        }
    }
    Ok(parts.into_iter().reduce(Expr::and).unwrap_or(lit(true)))
}

/// The aggregate's outputs: their aliases, and the schema holding their
/// types.
struct Outputs<'a>(&'a [String], &'a DFSchema);

impl Outputs<'_> {
    fn data_type(&self, alias: &str) -> Option<&DataType> {
        self.1
            .field_with_unqualified_name(alias)
            .ok()
            .map(|field| field.data_type())
    }
}

/// A having value as a literal. Compared with an exact decimal (a sum of
/// `numeric` values), a number is an exact decimal with all its digits:
/// left to the comparison's coercion, `"10.495"` would become the output's
/// `10.50` first (see `filter::exact_decimal`).
fn scalar(value: &Value, data_type: Option<&DataType>, path: &str) -> Result<Expr, ApiError> {
    if let Some(decimal @ DataType::Decimal128(..)) = data_type {
        let text = match value {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) => Some(s.clone()),
            _ => None,
        };
        if let Some(text) = text {
            let exact = filter::exact_decimal(&text, decimal);
            return ScalarValue::Utf8(Some(text.clone()))
                .cast_to(exact.as_ref().unwrap_or(decimal))
                .map(lit)
                .map_err(|_| {
                    ApiError::bad_request(format!("`{text}` is not a number")).at(path.to_string())
                });
        }
    }
    match value {
        Value::Number(n) => Ok(match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => lit(i),
            (None, Some(f)) => lit(f),
            (None, None) => {
                return Err(ApiError::bad_request("number out of range").at(path.to_string()));
            }
        }),
        Value::String(s) => Ok(lit(s.clone())),
        Value::Bool(b) => Ok(lit(*b)),
        _ => Err(
            ApiError::bad_request("expected a number, a string or a boolean").at(path.to_string()),
        ),
    }
}
