//! Reads: `list` (filter, sort, fields / except, pages, an optional total
//! count, related records by `appends`) and `get` by primary key. Each
//! becomes a DataFusion plan over the collection as the caller sees it;
//! the engine adds the caller's row filters to every scan, related
//! collections' included. An appended to-one relation on the related
//! table's primary key in the same source is joined into the rows' own
//! statement ([`Joined`]); other appended relations cost one query per
//! relation and level, whatever the number of rows.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use datafusion::common::{Column, TableReference};
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{Expr, JoinType, LogicalPlanBuilder};
use futures::StreamExt;
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::{Value, json};
use tributary_schema_cache::{SourceKind, TableRef};

use super::cursor;
use super::order::{self, RowWindow};
use super::params::{Key, Params, SortKey};
use super::{Target, json_response};
use crate::auth::Principal;
use crate::engine::{Caller, PlanScope, QueryOutput, ReadShape, Request};
use crate::error::ApiError;
use crate::filter;
use crate::results;
use crate::sql_api::Format;
use crate::sql_stream;
use crate::state::AppState;

/// Rows per page unless `pageSize` says otherwise.
pub const DEFAULT_PAGE_SIZE: u64 = 20;
/// The largest `pageSize` (and never more than the configured `max_rows`).
pub const MAX_PAGE_SIZE: u64 = 1000;

/// One record: columns in order, then appended relations. Names are
/// shared by the rows of a read (one allocation per column, not per cell).
#[derive(Debug, Clone, Default)]
pub struct Record(pub Vec<(Arc<str>, Cell)>);

/// A record's value: a column's, or an appended relation's records.
#[derive(Debug, Clone)]
pub enum Cell {
    Value(Value),
    One(Option<Record>),
    Many(Vec<Record>),
}

impl Serialize for Record {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, cell) in &self.0 {
            let name: &str = name;
            match cell {
                Cell::Value(value) => map.serialize_entry(name, value)?,
                Cell::One(record) => map.serialize_entry(name, record)?,
                Cell::Many(records) => map.serialize_entry(name, records)?,
            }
        }
        map.end()
    }
}

impl Record {
    /// A column's value.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find_map(|(n, cell)| match cell {
            Cell::Value(value) if **n == *name => Some(value),
            _ => None,
        })
    }
}

/// What one read asks for, once parsed.
#[derive(Debug, Default)]
pub struct ReadRequest {
    pub filter: Option<Value>,
    pub sort: Vec<SortKey>,
    /// Columns to answer (empty: every readable one).
    pub fields: Vec<String>,
    pub except: Vec<String>,
    /// Relations appended with every column the caller may read (REST's
    /// `appends`; `a.b` appends `b` to `a`'s records).
    pub appends: Vec<String>,
    /// Relations appended with only these columns (and their key), by
    /// relation name (GraphQL's object relationships); one also in
    /// `appends` answers every column.
    pub append_fields: Vec<(String, Vec<String>)>,
    /// Rows to skip and most rows to answer.
    pub offset: u64,
    pub limit: Option<u64>,
    /// Only rows after this position in the order (a keyset cursor's values).
    pub after: Option<Vec<Value>>,
    /// Only the first row (in the order) of each value of these columns.
    pub distinct_on: Vec<String>,
    /// `offset` and `limit` count within each group of rows with the same
    /// values of these columns (see `order::RowWindow`).
    pub per: Vec<String>,
    /// Answer a keyset cursor to the next page (REST's `nextCursor`; the
    /// order's columns are then read too).
    pub cursor: bool,
}

impl ReadRequest {
    /// `fields`, `except` and `appends`.
    fn shape(params: &mut Params) -> Self {
        Self {
            fields: params.names("fields"),
            except: params.names("except"),
            appends: params.names("appends"),
            ..Self::default()
        }
    }
}

/// `GET /api/{c}` and `GET /api/{c}:list`.
pub async fn list(
    state: &AppState,
    principal: &Principal,
    target: &Target,
    params: &mut Params,
    headers: &HeaderMap,
    nocobase: bool,
) -> Result<Response, ApiError> {
    let format = Format::from_headers(headers)?;
    let mut request = ReadRequest::shape(params);
    request.filter = params.filter()?;
    request.sort = params.sort();
    let page = params.number("page", 1)?.unwrap_or(1);
    let max_page = MAX_PAGE_SIZE.min(state.config.max_rows as u64);
    let page_size = params
        .number("pageSize", 1)?
        .unwrap_or(DEFAULT_PAGE_SIZE)
        .min(max_page);
    // NocoBase's `paginate=false`: every row in one answer, without page
    // meta (`page` and `pageSize` ignored, as NocoBase does) — at most
    // `max_rows`, with `meta.nextCursor` to go on when there were more.
    let paginate = params.boolean("paginate")?.unwrap_or(true);
    let (page, page_size) = if paginate {
        (page, page_size)
    } else {
        (1, state.config.max_rows as u64)
    };
    let count = params.boolean("count")?.unwrap_or(nocobase && paginate);
    let cursor = params.take("cursor")?;
    std::mem::take(params).finish()?;
    if let Some(cursor) = cursor.filter(|c| !c.is_empty()) {
        if page > 1 {
            return Err(ApiError::bad_request(
                "give either `page` or `cursor`, not both: a cursor is a position",
            )
            .at("cursor"));
        }
        if request.sort.iter().any(|k| k.via.is_some()) {
            return Err(ApiError::bad_request(
                "a cursor walks the collection's own columns: sort by those, not a related one",
            )
            .at("cursor"));
        }
        let visible = visible_columns(state, &principal.caller(), target)?;
        let keys = cursor::order_keys(target, &request.sort, &visible);
        request.after = Some(cursor::decode(&cursor, &keys)?);
    }
    request.offset = (page - 1).saturating_mul(page_size);
    request.limit = Some(page_size);
    request.cursor = true;
    let caller = principal.caller();

    if let Format::Streamed(encoding) = format {
        let naming = |names: &[String]| names.iter().any(|n| relation_entry(target, n).is_some());
        let related = [
            ("appends", !request.appends.is_empty()),
            ("fields", naming(&request.fields)),
            ("except", naming(&request.except)),
        ];
        if let Some((param, _)) = related.into_iter().find(|(_, named)| *named) {
            return Err(ApiError::bad_request(format!(
                "related records (`{param}` names a relation) need a JSON answer \
                 (nested records have no CSV or NDJSON form)"
            ))
            .at(param));
        }
        let visible = visible_columns(state, &caller, target)?;
        let answered = answered_columns(&caller, target, &visible, &request)?;
        let output = start(state, &caller, target, &request, &answered, &[]).await?;
        let max_rows = output
            .row_limit
            .and_then(|l| usize::try_from(l).ok())
            .unwrap_or(usize::MAX)
            .min(page_size as usize);
        return Ok(sql_stream::response(
            encoding,
            output,
            max_rows,
            state.config.query_timeout,
        ));
    }
    let (records, next) = fetch(state, &caller, target, &request).await?;
    let mut meta = serde_json::Map::new();
    if paginate {
        meta.insert("page".into(), json!(page));
        meta.insert("pageSize".into(), json!(page_size));
    }
    if let Some(next) = next {
        meta.insert("nextCursor".into(), json!(next));
    }
    if count {
        let total = count_rows(state, &caller, target, request.filter.as_ref()).await?;
        meta.insert("count".into(), json!(total));
        if paginate {
            meta.insert("totalPage".into(), json!(total.div_ceil(page_size)));
        }
    }
    #[derive(Serialize)]
    struct Page {
        data: Vec<Record>,
        #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
        meta: serde_json::Map<String, Value>,
    }
    Ok(json_response(
        StatusCode::OK,
        &Page {
            data: records,
            meta,
        },
    ))
}

/// `GET /api/{c}/{key}` and `GET /api/{c}:get?filterByTk=`.
///
/// NocoBase's `get` also takes a `filter`, as its `findOne` does: alone,
/// the first row it matches (in `sort`'s order, else the primary key's);
/// with a key, that row only if it matches.
pub async fn get(
    state: &AppState,
    principal: &Principal,
    target: &Target,
    key: Option<Key>,
    params: &mut Params,
) -> Result<Response, ApiError> {
    let mut request = ReadRequest::shape(params);
    let filter = params.filter()?;
    request.sort = params.sort();
    std::mem::take(params).finish()?;
    request.filter = match (&key, filter) {
        (Some(key), None) => Some(key.filter()),
        (Some(key), Some(filter)) => Some(json!({ "$and": [key.filter(), filter] })),
        (None, Some(filter)) => Some(filter),
        (None, None) => {
            return Err(
                ApiError::bad_request("`filterByTk` or a non-empty `filter` is required")
                    .at("filterByTk"),
            );
        }
    };
    // A key picks one row: only a filter's first row needs an order.
    if key.is_none() && request.sort.is_empty() {
        request.sort = key_order(target);
    }
    request.limit = Some(1);
    let caller = principal.caller();
    let record = fetch(state, &caller, target, &request)
        .await?
        .0
        .into_iter()
        .next()
        .ok_or_else(|| {
            let message = match &key {
                Some(key) => format!("no row of `{}` has the key `{}`", target.name(), key.text()),
                None => format!("no row of `{}` matches the filter", target.name()),
            };
            ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
        })?;
    #[derive(Serialize)]
    struct One {
        data: Record,
    }
    Ok(json_response(StatusCode::OK, &One { data: record }))
}

/// The primary key's order (none without a key): which row is "the
/// first" a filter matches.
pub(super) fn key_order(target: &Target) -> Vec<SortKey> {
    target
        .def
        .primary_key
        .iter()
        .flat_map(|key| &key.columns)
        .map(|column| SortKey::new(column.clone(), false))
        .collect()
}

/// The rows of a read, with their appended relations, and the cursor
/// after the last one when the page is full.
pub async fn fetch(
    state: &AppState,
    caller: &Caller,
    target: &Target,
    request: &ReadRequest,
) -> Result<(Vec<Record>, Option<String>), ApiError> {
    let (mut relations, own) = Appends::parse(target, request)?;
    let joined = relations.take_joined(state, caller, target, request)?;
    // Columns the relations join on, and the order's (for the cursor),
    // are read even when not asked for.
    let mut inner = ReadRequest {
        filter: request.filter.clone(),
        sort: request.sort.clone(),
        fields: own.fields,
        except: own.except,
        appends: Vec::new(),
        append_fields: Vec::new(),
        offset: request.offset,
        limit: request.limit,
        after: request.after.clone(),
        distinct_on: request.distinct_on.clone(),
        per: request.per.clone(),
        cursor: request.cursor,
    };
    let visible = visible_columns(state, caller, target)?;
    for key in request.sort.iter().filter(|k| k.via.is_none()) {
        check_column(target, &visible, &key.column, caller).map_err(|e| e.at("sort"))?;
    }
    for column in &request.distinct_on {
        check_column(target, &visible, column, caller).map_err(|e| e.at("distinct_on"))?;
    }
    let keys = if request.cursor {
        cursor::order_keys(target, &request.sort, &visible)
    } else {
        Vec::new()
    };
    // A cursor holds the row's own values: not made for related orders.
    let paged = request.cursor
        && request.limit.is_some_and(|l| l > 1)
        && request.per.is_empty()
        && keys.iter().all(|k| k.via.is_none())
        && cursor::is_total(target, &keys);
    let mut extra: Vec<String> = relations.join_columns();
    if paged {
        extra.extend(keys.iter().map(|k| k.column.clone()));
    }
    let answered = answered_columns(caller, target, &visible, &inner)?;
    if !inner.fields.is_empty() || !inner.except.is_empty() {
        inner.fields = answered.clone();
        inner.except.clear();
        for column in &extra {
            if !inner.fields.contains(column) {
                inner.fields.push(column.clone());
            }
        }
    }
    let read = answered_columns(caller, target, &visible, &inner)?;
    let output = start(state, caller, target, &inner, &read, &joined).await?;
    let mut records = collect(state, output).await?;
    extract_joined(&joined, &mut records);
    let full = request
        .limit
        .is_some_and(|l| usize::try_from(l).is_ok_and(|l| records.len() == l));
    let next = if paged && full {
        records.last().and_then(|last| cursor::encode(&keys, last))
    } else {
        None
    };
    relations.attach(state, caller, &mut records).await?;
    let kept = |name: &str| {
        answered.iter().any(|c| c == name)
            || relations.names().any(|r| r == name)
            || joined.iter().any(|j| &*j.name == name)
    };
    // Every record holds the same columns (one plan's, then each relation
    // appended to all): what to drop is known from the first, and most
    // reads drop nothing.
    let dropped: Vec<Arc<str>> = records.first().map_or_else(Vec::new, |first| {
        first
            .0
            .iter()
            .filter(|(name, _)| !kept(name))
            .map(|(name, _)| name.clone())
            .collect()
    });
    if !dropped.is_empty() {
        for record in &mut records {
            record.0.retain(|(name, _)| !dropped.contains(name));
        }
    }
    Ok((records, next))
}

/// The columns a read answers (before appends): `fields` minus `except`,
/// or every readable column.
fn answered_columns(
    caller: &Caller,
    target: &Target,
    visible: &[String],
    request: &ReadRequest,
) -> Result<Vec<String>, ApiError> {
    for (param, names) in [("fields", &request.fields), ("except", &request.except)] {
        for name in names {
            check_column(target, visible, name, caller).map_err(|e| e.at(param))?;
        }
    }
    let base: Vec<String> = if request.fields.is_empty() {
        visible.to_vec()
    } else {
        request.fields.clone()
    };
    Ok(base
        .into_iter()
        .filter(|c| !request.except.contains(c))
        .collect())
}

/// The columns of the collection the caller may select; `None` for a
/// role without a select rule for it.
pub(super) fn selectable_columns(
    state: &AppState,
    caller: &Caller,
    target: &Target,
) -> Result<Option<Vec<String>>, ApiError> {
    match caller {
        Caller::Admin => Ok(Some(
            target.def.columns.iter().map(|c| c.name.clone()).collect(),
        )),
        Caller::Role { role, .. } => {
            let policy = state.engine.role_policy(role)?;
            Ok(policy
                .tables
                .get(&target.collection.table)
                .filter(|rules| rules.select.is_some())
                .map(|rules| rules.readable.clone()))
        }
    }
}

/// The columns of the collection the caller may read, or a 403.
fn visible_columns(
    state: &AppState,
    caller: &Caller,
    target: &Target,
) -> Result<Vec<String>, ApiError> {
    selectable_columns(state, caller, target)?.ok_or_else(|| {
        let role = match caller {
            Caller::Role { role, .. } => role.as_str(),
            Caller::Admin => "admin",
        };
        ApiError::forbidden(format!("role `{role}` may not select `{}`", target.name()))
    })
}

/// A column the caller names must exist (400) and be readable (403).
pub(super) fn check_column(
    target: &Target,
    visible: &[String],
    name: &str,
    caller: &Caller,
) -> Result<(), ApiError> {
    if visible.iter().any(|c| c == name) {
        return Ok(());
    }
    if target.def.column(name).is_some()
        && let Caller::Role { role, .. } = caller
    {
        return Err(ApiError::forbidden(format!(
            "column `{name}` of `{}` is not readable by role `{role}`",
            target.name()
        )));
    }
    Err(ApiError::bad_request(format!(
        "`{}` has no column `{name}`",
        target.name()
    )))
}

/// The scan of the collection under its full name, with the request's
/// filter: the base of a read and of its count.
fn filtered_scan(
    scope: &PlanScope<'_>,
    target: &Target,
    filter: Option<&Value>,
) -> Result<(LogicalPlanBuilder, TableReference, Vec<String>), ApiError> {
    let table = &target.collection.table;
    let provider = (scope.tables)(table)
        .ok_or_else(|| ApiError::forbidden(format!("`{}` cannot be read here", target.name())))?;
    let name = full_name(table);
    let visible: Vec<String> = provider
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut builder = LogicalPlanBuilder::scan(name.clone(), provider_as_source(provider), None)
        .map_err(internal)?;
    if let Some(filter) = filter {
        let cx = filter::Context {
            snapshot: scope.snapshot,
            providers: scope.tables,
            variables: scope.variables,
            time_zone: scope.time_zone,
        };
        let predicate = filter::compile(filter, table, &name, &cx).map_err(filter_error)?;
        for column in predicate.column_refs() {
            if column.relation.as_ref() == Some(&name) && !visible.contains(&column.name) {
                return Err(ApiError::forbidden(format!(
                    "column `{}` of `{}` is not readable here",
                    column.name,
                    target.name()
                ))
                .at("filter"));
            }
        }
        builder = builder.filter(predicate).map_err(internal)?;
    }
    Ok((builder, name, visible))
}

/// A read's shape: everything its plan is made of but the filter's
/// values. Made on every read, so the columns are written length-first
/// rather than `{:?}`-escaped (escaping each character was a visible part).
fn rows_shape(
    target: &Target,
    request: &ReadRequest,
    answered: &[String],
    joined: &[Joined],
) -> String {
    // Written part by part, each name length-prefixed (so no two shapes
    // share a key): `format!` with `{:?}` of each list cost a d-type read
    // ~12k instructions.
    let mut key = String::with_capacity(128);
    key.push_str("rows\u{1f}");
    push_name(&mut key, target.name());
    key.push('\u{1f}');
    push_names(&mut key, answered);
    key.push('\u{1f}');
    for sort in &request.sort {
        // Every field named: one added to `SortKey` must be added here.
        let SortKey {
            column,
            descending,
            nulls_first,
            via,
        } = sort;
        push_name(&mut key, column);
        key.push(if *descending { 'd' } else { 'a' });
        key.push(match nulls_first {
            None => '-',
            Some(true) => 'f',
            Some(false) => 'l',
        });
        if let Some(via) = via {
            // Writing to a String cannot fail.
            let _ = write!(key, "{via:?}");
        }
        key.push(';');
    }
    let mut number = itoa::Buffer::new();
    key.push('\u{1f}');
    key.push_str(number.format(request.offset));
    key.push('\u{1f}');
    match request.limit {
        Some(limit) => key.push_str(number.format(limit)),
        None => key.push('-'),
    }
    key.push('\u{1f}');
    push_names(&mut key, &request.distinct_on);
    key.push('\u{1f}');
    push_names(&mut key, &request.per);
    for joined in joined {
        key.push('\u{1f}');
        push_name(&mut key, &joined.name);
        push_names(&mut key, &joined.columns);
    }
    key
}

/// `name` as `<length>:<name>,` in a shape key.
fn push_name(key: &mut String, name: &str) {
    // Not `write!`: its formatting machinery was most of a shape key's cost.
    key.push_str(itoa::Buffer::new().format(name.len()));
    key.push(':');
    key.push_str(name);
    key.push(',');
}

/// Each of `names` as [`push_name`] writes it, then `|`.
fn push_names<S: AsRef<str>>(key: &mut String, names: &[S]) {
    for name in names {
        push_name(key, name.as_ref());
    }
    key.push('|');
}

/// Starts a read's plan answering the columns `answered` (checked against
/// the caller's: [`answered_columns`]), with `joined` relations joined in.
async fn start(
    state: &AppState,
    caller: &Caller,
    target: &Target,
    request: &ReadRequest,
    answered: &[String],
    joined: &[Joined],
) -> Result<QueryOutput, ApiError> {
    // A cursor's values are not a filter's: such reads are planned each time.
    let keyed = Request {
        shape: request
            .after
            .is_none()
            .then(|| rows_shape(target, request, answered, joined)),
        filter: request.filter.as_ref(),
    };
    let work = state.engine.query_read(
        caller,
        ReadShape::Rows,
        Some(keyed),
        |scope, filter| -> Result<_, ApiError> {
            let (mut builder, name, visible) = filtered_scan(scope, target, filter)?;
            let col = |c: &str| Expr::Column(Column::new(Some(name.clone()), c));
            for key in request.sort.iter().filter(|k| k.via.is_none()) {
                check_column(target, &visible, &key.column, caller).map_err(|e| e.at("sort"))?;
            }
            // Pages need a total order: the primary key breaks ties.
            let keys = cursor::order_keys(target, &request.sort, &visible);
            for relation in joined {
                builder = relation.join(scope, &name, builder)?;
            }
            if let Some(values) = &request.after {
                let schema = builder.schema().as_arrow().clone();
                builder = builder
                    .filter(cursor::after(&keys, values, col, &schema)?)
                    .map_err(internal)?;
            }
            let window = RowWindow {
                distinct_on: request.distinct_on.clone(),
                sort: keys,
                offset: request.offset,
                limit: request.limit,
                per: request.per.clone(),
            };
            let builder = order::apply(scope, target, &name, builder, &window)?;
            let joined_cells = joined.iter().flat_map(Joined::cells);
            builder
                .project(answered.iter().map(|c| col(c)).chain(joined_cells))
                .and_then(LogicalPlanBuilder::build)
                .map_err(internal)
        },
    );
    within(state, work).await
}

/// How many rows the caller may read match `filter`.
async fn count_rows(
    state: &AppState,
    caller: &Caller,
    target: &Target,
    filter: Option<&Value>,
) -> Result<u64, ApiError> {
    let work = async {
        let keyed = Request {
            shape: Some(format!("count\u{1f}{}", target.name())),
            filter,
        };
        let mut output = state
            .engine
            .query_read(
                caller,
                ReadShape::Count,
                Some(keyed),
                |scope, filter| -> Result<_, ApiError> {
                    let (builder, _, _) = filtered_scan(scope, target, filter)?;
                    builder.build().map_err(internal)
                },
            )
            .await?;
        let mut total = 0;
        while let Some(batch) = output.stream.next().await {
            let batch = batch.map_err(|e| ApiError::from(crate::engine::EngineError::from(e)))?;
            if let Some(counts) = batch.column(0).as_primitive_opt::<Int64Type>()
                && !counts.is_empty()
            {
                total = u64::try_from(counts.value(0)).unwrap_or(0);
            }
        }
        Ok::<_, ApiError>(total)
    };
    within(state, work).await
}

/// Runs `work` (planning, reading) within the query time limit.
pub(super) async fn within<T>(
    state: &AppState,
    work: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(state.config.query_timeout, work).await {
        Ok(result) => result,
        Err(_) => Err(ApiError::from(crate::engine::EngineError::Timeout(
            state.config.query_timeout,
        ))),
    }
}

/// Reads a started plan into records (capped by the role's row limit).
pub(crate) async fn collect(
    state: &AppState,
    mut output: QueryOutput,
) -> Result<Vec<Record>, ApiError> {
    let cap = output
        .row_limit
        .and_then(|l| usize::try_from(l).ok())
        .unwrap_or(usize::MAX)
        .min(state.config.max_rows);
    let names: Vec<Arc<str>> = output
        .schema
        .fields()
        .iter()
        .map(|f| Arc::from(f.name().as_str()))
        .collect();
    let work = async {
        let mut records = Vec::new();
        while let Some(batch) = output.stream.next().await {
            let batch = batch.map_err(|e| ApiError::from(crate::engine::EngineError::from(e)))?;
            let columns = names
                .iter()
                .cloned()
                .zip(batch.columns().iter().map(results::column_values))
                .collect();
            records.extend(records_of(columns, batch.num_rows()).take(cap - records.len()));
            if records.len() == cap {
                return Ok(records);
            }
        }
        Ok(records)
    };
    within(state, work).await
}

/// The records `rows` long columns of values make, cells named as their
/// column (each value moved into its cell, not copied).
pub(crate) fn records_of(
    columns: Vec<(Arc<str>, Vec<Value>)>,
    rows: usize,
) -> impl Iterator<Item = Record> {
    let mut columns: Vec<_> = columns
        .into_iter()
        .map(|(name, values)| (name, values.into_iter()))
        .collect();
    (0..rows).map(move |_| {
        Record(
            columns
                .iter_mut()
                .map(|(name, values)| {
                    (
                        name.clone(),
                        Cell::Value(values.next().unwrap_or(Value::Null)),
                    )
                })
                .collect(),
        )
    })
}

pub fn full_name(table: &TableRef) -> TableReference {
    TableReference::full(
        table.source.as_str(),
        table.schema.as_str(),
        table.table.as_str(),
    )
}

pub fn filter_error(error: filter::FilterError) -> ApiError {
    let path = if error.path.is_empty() {
        "filter".to_string()
    } else {
        format!("filter.{}", error.path)
    };
    ApiError::bad_request(error.to_string()).at(path)
}

pub fn internal(error: datafusion::error::DataFusionError) -> ApiError {
    ApiError::from(crate::engine::EngineError::from(error))
}

/// `appends=customer,customer.nation,lineitems`: a tree of relations to
/// fetch for the rows read.
#[derive(Debug, Default)]
struct Appends {
    relations: Vec<Append>,
}

#[derive(Debug)]
struct Append {
    name: String,
    link: filter::Link,
    /// The target's collection.
    target: String,
    nested: Vec<String>,
    /// The columns asked for (empty: every readable one), with the key the
    /// relation matches on.
    fields: Vec<String>,
    /// Columns left out (never the key the relation matches on).
    except: Vec<String>,
}

/// The rows' own `fields` and `except`, without the entries that name a
/// relation.
#[derive(Debug, Default)]
struct OwnColumns {
    fields: Vec<String>,
    except: Vec<String>,
}

/// What a read asks of one relation, gathered from every parameter.
#[derive(Default)]
struct Wanted {
    /// Named by `appends`, by a `fields` entry or by GraphQL.
    appended: bool,
    /// The rest of each path past the relation (`nation`, `c_name`).
    tails: Vec<String>,
    /// Columns GraphQL picks.
    picked: Vec<String>,
    /// The rest of each `except` entry past the relation.
    except: Vec<String>,
}

/// `name` split at the relation it starts with (`customer.c_name` →
/// `customer`, `c_name`), unless it is one of the rows' own columns or
/// starts with no relation of theirs.
pub(super) fn relation_entry<'a>(
    target: &Target,
    name: &'a str,
) -> Option<(&'a str, Option<&'a str>)> {
    if target.def.column(name).is_some() {
        return None;
    }
    let (head, rest) = match name.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (name, None),
    };
    filter::find_relation(&target.snapshot, &target.collection.table, head)?;
    Some((head, rest))
}

impl Appends {
    /// The relations a read appends, by `appends` (`customer`,
    /// `customer.nation`; `customer.c_name` appends `customer` with only
    /// that column, as NocoBase reads it), by entries of `fields` and
    /// `except` that name a relation rather than a column of the rows
    /// (`fields=o_orderkey,customer.c_name`, `except=customer.c_comment`;
    /// `except` only shapes a relation appended otherwise) and by GraphQL's
    /// `append_fields`; and the rows' own `fields` and `except` left.
    fn parse(target: &Target, request: &ReadRequest) -> Result<(Self, OwnColumns), ApiError> {
        let mut wanted: BTreeMap<&str, Wanted> = BTreeMap::new();
        let mut append = |head, rest: Option<&str>| {
            let entry: &mut Wanted = wanted.entry(head).or_default();
            entry.appended = true;
            entry.tails.extend(rest.map(str::to_string));
        };
        for path in &request.appends {
            match path.split_once('.') {
                Some((head, rest)) => append(head, Some(rest)),
                None => append(path, None),
            }
        }
        let mut own = OwnColumns::default();
        for name in &request.fields {
            match relation_entry(target, name) {
                Some((head, rest)) => append(head, rest),
                None => own.fields.push(name.clone()),
            }
        }
        for (name, columns) in &request.append_fields {
            let entry = wanted.entry(name).or_default();
            entry.appended = true;
            entry.picked.extend(columns.iter().cloned());
        }
        for name in &request.except {
            match relation_entry(target, name) {
                Some((head, Some(rest))) => {
                    wanted
                        .entry(head)
                        .or_default()
                        .except
                        .push(rest.to_string());
                }
                _ => own.except.push(name.clone()),
            }
        }
        let snapshot = &target.snapshot;
        let table = &target.collection.table;
        let mut relations = Vec::new();
        for (name, wanted) in wanted.into_iter().filter(|(_, w)| w.appended) {
            let link = filter::find_relation(snapshot, table, name).ok_or_else(|| {
                ApiError::bad_request(format!("`{name}` is not a relation of {table}"))
                    .at("appends")
            })?;
            let (target, def) = snapshot
                .collections
                .iter()
                .find(|c| c.table == link.target)
                .and_then(|c| snapshot.collection_table(&c.api_name))
                .map(|(c, def)| (c.api_name.clone(), def))
                .ok_or_else(|| {
                    ApiError::bad_request(format!("{} has no collection", link.target))
                })?;
            // A tail naming one of the related columns picks it; any
            // other is a relation of the related rows.
            let (mut fields, nested): (Vec<String>, Vec<String>) = wanted
                .tails
                .into_iter()
                .partition(|tail| !tail.contains('.') && def.column(tail).is_some());
            fields.extend(wanted.picked);
            let keys = link.pairs.iter().map(|(_, inner)| inner);
            if !fields.is_empty() {
                fields.extend(keys.clone().cloned());
                let mut seen = HashSet::new();
                fields.retain(|c| seen.insert(c.clone()));
            }
            let mut except = wanted.except;
            except.retain(|c| !keys.clone().any(|key| key == c));
            relations.push(Append {
                name: name.to_string(),
                link,
                target,
                nested,
                fields,
                except,
            });
        }
        Ok((Self { relations }, own))
    }

    /// Takes out the relations the rows' own statement can read
    /// ([`Joined`]): to one row, by the related table's primary key (so a
    /// join adds no rows), in the same source, without appends of their
    /// own, on keys the source compares as the engine does (integers; any
    /// on PostgreSQL), for a read without `distinct_on` or per-group
    /// pages, by a caller who may read the related key and whose rule
    /// there has no row `limit`. The others are read after the rows
    /// ([`Appends::attach`]).
    fn take_joined(
        &mut self,
        state: &AppState,
        caller: &Caller,
        target: &Target,
        request: &ReadRequest,
    ) -> Result<Vec<Joined>, ApiError> {
        if !request.distinct_on.is_empty() || !request.per.is_empty() {
            return Ok(Vec::new());
        }
        let source = &target.collection.table.source;
        let postgres = target
            .snapshot
            .sources
            .get(source)
            .is_some_and(|s| s.kind == SourceKind::Postgres);
        let mut joined = Vec::new();
        let mut index = 0;
        let mut kept = Vec::new();
        for append in std::mem::take(&mut self.relations) {
            let candidate = !append.link.many
                && append.nested.is_empty()
                && &append.link.target.source == source;
            if !candidate {
                kept.push(append);
                continue;
            }
            let related = Target::resolve(state, &append.target)?;
            let visible =
                visible_columns(state, caller, &related).map_err(|e| appending(&append.name, e))?;
            // Checked as the read of the related rows would check them.
            for (param, columns) in [("fields", &append.fields), ("except", &append.except)] {
                for column in columns {
                    check_column(&related, &visible, column, caller)
                        .map_err(|e| appending(&append.name, e).at(param))?;
                }
            }
            let inner: Vec<&str> = append.link.pairs.iter().map(|(_, i)| i.as_str()).collect();
            let on_primary_key = related.def.primary_key.as_ref().is_some_and(|pk| {
                pk.columns.len() == inner.len()
                    && pk.columns.iter().all(|c| inner.contains(&c.as_str()))
            });
            let integer = |def: &tributary_schema_cache::TableDef, column: &str| {
                def.column(column).is_some_and(|c| c.data_type.is_integer())
            };
            let comparable = postgres
                || append.link.pairs.iter().all(|(outer, inner)| {
                    integer(&target.def, outer) && integer(&related.def, inner)
                });
            let key_readable = inner.iter().all(|c| visible.iter().any(|v| v == c));
            // A select `limit` caps a read's rows by its tables' smallest:
            // joined, the related table's would cap the rows themselves.
            let capped = match caller {
                Caller::Admin => false,
                Caller::Role { role, .. } => state
                    .engine
                    .role_policy(role)?
                    .tables
                    .get(&append.link.target)
                    .and_then(|rules| rules.select.as_ref())
                    .is_some_and(|rule| rule.limit.is_some()),
            };
            // The joined cells' names must not be the rows' own.
            let clash = target.def.columns.iter().any(|c| c.name.starts_with("__j"));
            if on_primary_key && comparable && key_readable && !capped && !clash {
                let asked = |c: &String| {
                    (append.fields.is_empty() || append.fields.contains(c))
                        && !append.except.contains(c)
                };
                joined.push(Joined {
                    name: append.name.as_str().into(),
                    alias: TableReference::bare(format!("__j{index}")),
                    columns: visible
                        .iter()
                        .filter(|c| asked(c))
                        .map(|c| Arc::from(c.as_str()))
                        .collect(),
                    link: append.link,
                });
                index += 1;
            } else {
                kept.push(append);
            }
        }
        self.relations = kept;
        Ok(joined)
    }

    fn join_columns(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for relation in &self.relations {
            for (outer, _) in &relation.link.pairs {
                if !out.contains(outer) {
                    out.push(outer.clone());
                }
            }
        }
        out
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.relations.iter().map(|r| r.name.as_str())
    }

    /// Fetches each relation's rows for all `records` at once and attaches
    /// them: an object (or null) for a to-one relation, an array for a
    /// to-many one.
    async fn attach(
        &self,
        state: &AppState,
        caller: &Caller,
        records: &mut [Record],
    ) -> Result<(), ApiError> {
        for relation in &self.relations {
            let related = relation.fetch(state, caller, records).await?;
            let name: Arc<str> = relation.name.as_str().into();
            for record in records.iter_mut() {
                let key = relation.outer_key(record);
                let matches: Vec<&Record> = match &key {
                    Some(key) => related
                        .iter()
                        .filter(|r| relation.inner_key(r).as_ref() == Some(key))
                        .collect(),
                    None => Vec::new(),
                };
                let value = if relation.link.many {
                    Cell::Many(matches.into_iter().cloned().collect())
                } else {
                    Cell::One(matches.first().map(|r| (*r).clone()))
                };
                record.0.push((name.clone(), value));
            }
        }
        Ok(())
    }
}

/// A to-one relation read by the rows' own statement: its table (as the
/// caller may read it) LEFT JOINed as `__j<i>` on its primary key, with its
/// columns renamed `__j<i>_<k>` (names the rows' own columns do not clash
/// with in the SQL written), then moved into the relation's record
/// ([`extract_joined`]; the first key column is NULL where no row
/// matched). One statement instead of two, with the
/// same answer: the join adds no rows, and the engine adds the related
/// table's row filter to its scan as to any read of it.
#[derive(Debug)]
struct Joined {
    name: Arc<str>,
    alias: TableReference,
    /// The related columns the caller may read, in order.
    columns: Vec<Arc<str>>,
    link: filter::Link,
}

impl Joined {
    /// Joins the related table to `builder` (the rows, under `name`) and
    /// renames its columns right there, under the rows' own sort and page:
    /// the unparser keeps a projection under a limit as written, while
    /// aliases above one, or inside the joined side, it moves (and then
    /// writes names that no longer resolve).
    fn join(
        &self,
        scope: &PlanScope<'_>,
        name: &TableReference,
        builder: LogicalPlanBuilder,
    ) -> Result<LogicalPlanBuilder, ApiError> {
        let own: Vec<Expr> = builder
            .schema()
            .columns()
            .into_iter()
            .map(Expr::Column)
            .collect();
        let right = order::scan(scope, &self.link.target)
            .map_err(|e| appending(&self.name, e).at("appends"))?
            .alias(self.alias.clone())
            .and_then(LogicalPlanBuilder::build)
            .map_err(internal)?;
        let theirs = |c: &str| Expr::Column(Column::new(Some(self.alias.clone()), c));
        let (left_keys, right_keys): (Vec<Column>, Vec<Column>) = self
            .link
            .pairs
            .iter()
            .map(|(outer, inner)| {
                (
                    Column::new(Some(name.clone()), outer.as_str()),
                    Column::new(Some(self.alias.clone()), inner.as_str()),
                )
            })
            .unzip();
        let renamed = self
            .columns
            .iter()
            .enumerate()
            .map(|(k, c)| theirs(c).alias(self.cell(k)));
        builder
            .join(right, JoinType::Left, (left_keys, right_keys), None)
            .and_then(|b| b.project(own.into_iter().chain(renamed)))
            .map_err(internal)
    }

    fn cell(&self, k: usize) -> String {
        format!("{}_{k}", self.alias.table())
    }

    /// The answered cells, one per column.
    fn cells(&self) -> impl Iterator<Item = Expr> + '_ {
        (0..self.columns.len()).map(move |k| Expr::Column(Column::from_name(self.cell(k))))
    }

    /// The relation's record made of its cells, renamed to its columns
    /// (null where its first key column is: no row matched).
    fn record(&self, cells: Vec<(Arc<str>, Cell)>) -> (Arc<str>, Cell) {
        let marker = self
            .link
            .pairs
            .first()
            .and_then(|(_, inner)| self.columns.iter().position(|c| **c == **inner));
        let matched = marker
            .and_then(|k| cells.get(k))
            .is_some_and(|(_, cell)| matches!(cell, Cell::Value(value) if !value.is_null()));
        let related = matched.then(|| {
            let named = self
                .columns
                .iter()
                .cloned()
                .zip(cells.into_iter().map(|(_, cell)| cell));
            Record(named.collect())
        });
        (self.name.clone(), Cell::One(related))
    }
}

/// Moves the joined relations' cells, the last of each record (in the
/// order of `joined`: [`Joined::cells`] ends the read's projection), into
/// their records.
fn extract_joined(joined: &[Joined], records: &mut [Record]) {
    if joined.is_empty() {
        return;
    }
    for record in records {
        let mut related = Vec::with_capacity(joined.len());
        for relation in joined.iter().rev() {
            let at = record.0.len().saturating_sub(relation.columns.len());
            related.push(relation.record(record.0.split_off(at)));
        }
        record.0.extend(related.into_iter().rev());
    }
}

/// An error reading the appended relation `name`.
fn appending(name: &str, e: ApiError) -> ApiError {
    let message = format!("appending `{name}`: {}", e.message);
    ApiError { message, ..e }
}

impl Append {
    fn outer_key(&self, record: &Record) -> Option<Vec<String>> {
        key_of(
            record,
            self.link.pairs.iter().map(|(outer, _)| outer.as_str()),
        )
    }

    fn inner_key(&self, record: &Record) -> Option<Vec<String>> {
        key_of(
            record,
            self.link.pairs.iter().map(|(_, inner)| inner.as_str()),
        )
    }

    /// The related rows of every record, in one read (`$in` on a one-column
    /// key, `$or` of keys otherwise), itself with the nested appends.
    async fn fetch(
        &self,
        state: &AppState,
        caller: &Caller,
        records: &[Record],
    ) -> Result<Vec<Record>, ApiError> {
        let mut keys: Vec<Vec<Value>> = Vec::new();
        let mut seen = HashSet::new();
        for record in records {
            let Some(text) = self.outer_key(record) else {
                continue;
            };
            if seen.insert(text) {
                keys.push(
                    self.link
                        .pairs
                        .iter()
                        .map(|(outer, _)| record.get(outer).cloned().unwrap_or(Value::Null))
                        .collect(),
                );
            }
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let filter = if self.link.pairs.len() == 1 {
            let values: Vec<Value> = keys.into_iter().flatten().collect();
            json!({ self.link.pairs[0].1.clone(): { "$in": values } })
        } else {
            let alternatives: Vec<Value> = keys
                .into_iter()
                .map(|key| {
                    Value::Object(
                        self.link
                            .pairs
                            .iter()
                            .zip(key)
                            .map(|((_, inner), value)| (inner.clone(), value))
                            .collect(),
                    )
                })
                .collect();
            json!({ "$or": alternatives })
        };
        let target = Target::resolve(state, &self.target)?;
        let request = ReadRequest {
            filter: Some(filter),
            fields: self.fields.clone(),
            except: self.except.clone(),
            appends: self.nested.clone(),
            ..ReadRequest::default()
        };
        Box::pin(fetch(state, caller, &target, &request))
            .await
            .map(|(records, _)| records)
            .map_err(|e| appending(&self.name, e))
    }
}

/// A record's values of some columns as comparable text (`None` when one
/// is NULL: NULL keys relate to nothing).
fn key_of<'a>(record: &Record, columns: impl Iterator<Item = &'a str>) -> Option<Vec<String>> {
    columns
        .map(|c| match record.get(c) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        })
        .collect()
}
