//! The OpenAPI 3.1 document of the HTTP API, built per caller from the
//! collections it may see and what it may do with them (so each role's
//! document shows only its own routes), and the docs page that renders it.

mod collection;
mod fixed;
mod schema;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use arrow_schema::DataType;
use axum::response::Html;
use serde_json::{Map, Value, json};
use tributary_schema_cache::naming::RESERVED_API_NAMES;

/// One collection as the caller sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionDoc {
    /// The REST name, `[A-Za-z_][A-Za-z0-9_]*`.
    pub api_name: String,
    /// `source.schema.table`.
    pub sql_name: String,
    pub comment: Option<String>,
    /// The columns the caller may read, in table order.
    pub columns: Vec<ColumnDoc>,
    /// Empty when the table has none: then there are no by-key routes.
    pub primary_key: Vec<String>,
    /// What the caller may do.
    pub operations: Operations,
    /// For `appends` and filters through relations; relations to
    /// collections missing from the document are left out of it.
    pub relations: Vec<RelationDoc>,
}

/// One readable column.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDoc {
    pub name: String,
    pub data_type: DataType,
    pub nullable: bool,
    pub comment: Option<String>,
    /// The caller may set it (create and update bodies).
    pub writable: bool,
    /// The database fills it when a create leaves it out.
    pub has_default: bool,
}

/// What the caller may do with a collection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Operations {
    pub list: bool,
    pub get: bool,
    pub aggregate: bool,
    pub create: bool,
    pub update: bool,
    pub delete: bool,
}

/// A relation of a collection, by the name `appends` and filters use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationDoc {
    pub name: String,
    /// The API name of the related collection.
    pub target: String,
    /// To-many (an array of rows) rather than to-one (a row or null).
    pub many: bool,
}

/// Why no document could be built: collection names that would make
/// routes, operation ids or component names ambiguous.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenApiError {
    #[error("`{0}` is not a valid REST collection name (`[A-Za-z_][A-Za-z0-9_]*`)")]
    InvalidName(String),
    #[error("`{0}` cannot be a collection's REST name: `/api/{0}` is a route of its own")]
    ReservedName(String),
    #[error("two collections have the REST name `{0}`")]
    DuplicateName(String),
}

/// Tags of the routes that do not belong to a collection. They contain a
/// space, so no collection name can be one of them.
const SQL_TAG: &str = "SQL API";
const BATCH_TAG: &str = "Batch writes";
const DOCUMENT_TAG: &str = "API document";
const ADMIN_TAG: &str = "Admin API";

/// Shared component names. They contain a dot, which collection names
/// cannot, so they never clash with a collection's schemas.
const ERROR: &str = "tributary.Error";
const FILTER: &str = "tributary.Filter";
const LIST_META: &str = "tributary.ListMeta";
const MEASURE: &str = "tributary.Measure";
const DIMENSION: &str = "tributary.Dimension";
const SQL_REQUEST: &str = "tributary.SqlRequest";
const SQL_RESULT: &str = "tributary.SqlResult";
const SQL_EXPLAIN: &str = "tributary.SqlExplain";
const SQL_ANALYSIS: &str = "tributary.SqlAnalysis";

/// The document for `collections`; `include_admin` adds the admin API.
pub fn document(
    collections: &[CollectionDoc],
    server_version: &str,
    include_admin: bool,
) -> Result<Value, OpenApiError> {
    let mut names: collection::Documented<'_> = HashMap::new();
    for c in collections {
        if !is_identifier(&c.api_name) {
            return Err(OpenApiError::InvalidName(c.api_name.clone()));
        }
        if RESERVED_API_NAMES.contains(&c.api_name.as_str()) {
            return Err(OpenApiError::ReservedName(c.api_name.clone()));
        }
        if names.insert(c.api_name.as_str(), c).is_some() {
            return Err(OpenApiError::DuplicateName(c.api_name.clone()));
        }
    }

    let mut paths = Map::new();
    let mut schemas = shared_schemas();
    let mut tags = Vec::new();
    for c in collections {
        collection::add(c, &names, &mut paths, &mut schemas);
        collection::add_associations(c, &names, &mut paths);
        let mut description = format!("`{}`", c.sql_name);
        if let Some(comment) = &c.comment {
            description = format!("{comment}\n\n{description}");
        }
        tags.push(json!({ "name": c.api_name, "description": description }));
    }
    fixed::add_sql(&mut paths);
    fixed::add_document(&mut paths);
    tags.push(json!({ "name": SQL_TAG, "description": "Read-only SQL over every source." }));
    if fixed::add_batch(&mut paths, collections) {
        tags.push(json!({
            "name": BATCH_TAG,
            "description": "Several writes to collections of one source in one transaction.",
        }));
    }
    tags.push(json!({ "name": DOCUMENT_TAG, "description": "This document." }));
    if include_admin {
        fixed::add_admin(&mut paths);
        tags.push(json!({
            "name": ADMIN_TAG,
            "description": "Sources, catalog, relations, aliases, API keys, permissions and the audit log (admin role only).",
        }));
    }

    Ok(json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Tributary",
            "version": server_version,
            "description": INFO_DESCRIPTION,
        },
        "security": [{ "bearer": [] }, { "apiKey": [] }],
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": schemas,
            "parameters": parameters(),
            "responses": responses(),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key, or a JWT from the configured identity provider.",
                },
                "apiKey": { "type": "apiKey", "in": "header", "name": "X-API-Key" },
            },
        },
    }))
}

/// The docs page: fetches `/api/openapi.json` with the API key the user
/// pastes and renders it, with a "Try it" form per operation. Self-contained
/// (no CDN, no build step).
pub fn docs_page() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}

const INFO_DESCRIPTION: &str = "REST, NocoBase-compatible and SQL access to every source \
registered with this Tributary server. This document lists only what the calling role may \
do. Authenticate with `Authorization: Bearer <API key or JWT>` or `X-API-Key: <key>`; \
without credentials the configured anonymous role applies, if any. `X-Role` picks one of a \
JWT's allowed roles. GraphQL is served at `/graphql`.";

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `#/components/schemas/<name>`.
fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// Adds `operation` under `method` to the path item of `path`.
fn add_operation(paths: &mut Map<String, Value>, path: &str, method: &str, operation: Value) {
    if let Value::Object(item) = paths
        .entry(path.to_string())
        .or_insert_with(|| Value::Object(Map::new()))
    {
        item.insert(method.to_string(), operation);
    }
}

fn parameter_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/parameters/{name}") })
}

/// A JSON response (or request body) content map.
fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

/// The error responses every operation may give, plus `extra` (409 for
/// writes), by reference.
fn error_responses(responses: &mut Map<String, Value>, extra: &[&str]) {
    let common = ["400", "401", "403", "404", "429", "503", "504"];
    for status in common.iter().chain(extra) {
        responses.insert(
            (*status).to_string(),
            json!({ "$ref": format!("#/components/responses/{status}") }),
        );
    }
}

fn shared_schemas() -> Map<String, Value> {
    let mut schemas = Map::new();
    schemas.insert(
        ERROR.into(),
        json!({
            "type": "object",
            "required": ["error"],
            "additionalProperties": false,
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "additionalProperties": false,
                    "properties": {
                        "code": {
                            "type": "string",
                            "description": "Stable, machine-readable: `invalid_input`, `unauthorized`, `permission_denied`, `not_found`, `conflict`, `constraint_violation`, `rate_limited`, `source_unavailable`, `source_busy`, `source_timeout`, `query_timeout`, …",
                        },
                        "message": { "type": "string", "description": "For people; names the source when one is down." },
                        "path": { "type": "string", "description": "Where in the request the problem is (a field, a filter path such as `$and[1].status.$eq`)." },
                    },
                },
            },
        }),
    );
    schemas.insert(
        FILTER.into(),
        json!({
            "type": "object",
            "description": FILTER_DESCRIPTION,
            "examples": [
                { "status": { "$eq": "open" }, "total": { "$gt": 100 } },
                { "$or": [{ "name": { "$includes": "acme" } }, { "customer": { "country": { "$in": ["FR", "DE"] } } }] },
            ],
        }),
    );
    schemas.insert(
        LIST_META.into(),
        json!({
            "type": "object",
            "description": "A paged answer always has `page` and `pageSize`; with `paginate=false` there is no `meta` unless the rows were cut at `max_rows` (`nextCursor`) or `count=true`.",
            "properties": {
                "page": { "type": "integer", "minimum": 1 },
                "pageSize": { "type": "integer", "minimum": 1, "maximum": 1000 },
                "count": { "type": "integer", "minimum": 0, "description": "Rows matching the filter (with `count=true`)." },
                "totalPage": { "type": "integer", "minimum": 0, "description": "Pages of `pageSize` rows (with `count=true`)." },
                "nextCursor": { "type": "string", "description": "Opaque; pass it as `cursor` for the next page. Absent on the last page." },
            },
        }),
    );
    schemas.insert(
        MEASURE.into(),
        json!({
            "type": "object",
            "required": ["aggregation"],
            "additionalProperties": false,
            "properties": {
                "field": {
                    "description": "The column, or a path through relations as an array. Without it, `count` counts rows.",
                    "oneOf": [
                        { "type": "string" },
                        { "type": "array", "items": { "type": "string" }, "minItems": 1 },
                    ],
                },
                "fields": {
                    "description": "Several columns, for `count` without `field`: the rows where none of them is NULL (with `distinct`, their distinct combinations).",
                    "type": "array", "items": { "type": "string" }, "minItems": 1,
                },
                "aggregation": { "enum": ["count", "sum", "avg", "min", "max", "stddev", "stddev_pop", "variance", "var_pop"] },
                "distinct": { "type": "boolean", "default": false },
                "alias": { "type": "string", "description": "The key of the value in each result row." },
            },
        }),
    );
    schemas.insert(
        DIMENSION.into(),
        json!({
            "type": "object",
            "required": ["field"],
            "additionalProperties": false,
            "properties": {
                "field": {
                    "oneOf": [
                        { "type": "string" },
                        { "type": "array", "items": { "type": "string" }, "minItems": 1 },
                    ],
                },
                "alias": { "type": "string" },
                "granularity": {
                    "enum": ["day", "week", "month", "quarter", "year"],
                    "description": "Only for date and timestamp columns.",
                },
            },
        }),
    );
    schemas.insert(
        SQL_REQUEST.into(),
        json!({
            "type": "object",
            "required": ["sql"],
            "additionalProperties": false,
            "properties": {
                "sql": { "type": "string", "description": "One read-only statement; tables are `source.schema.table`." },
                "params": {
                    "type": "array",
                    "description": "Values for `$1`, `$2`, …",
                    "items": { "type": ["null", "boolean", "number", "string"] },
                },
                "explain": { "type": "boolean", "default": false, "description": "Return the plan and the SQL each source receives instead of rows." },
                "analyze": { "type": "boolean", "default": false, "description": "Run the query and return, instead of its rows, the plan with each node's metrics, the row count, and each source statement as sent (runtime filters included) with its rows and times. Not with `explain`." },
            },
        }),
    );
    schemas.insert(
        SQL_RESULT.into(),
        json!({
            "type": "object",
            "required": ["columns", "rows", "truncated"],
            "properties": {
                "columns": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "type", "nullable"],
                        "properties": {
                            "name": { "type": "string" },
                            "type": { "type": "string", "description": "The Arrow type (`Int64`, `Utf8`, `Decimal128(15, 2)`, …)." },
                            "nullable": { "type": "boolean" },
                        },
                    },
                },
                "rows": { "type": "array", "items": { "type": "array", "description": "Cells in column order." } },
                "truncated": { "type": "boolean", "description": "More rows than the row cap matched." },
            },
        }),
    );
    schemas.insert(
        SQL_EXPLAIN.into(),
        json!({
            "type": "object",
            "required": ["plan", "sources"],
            "additionalProperties": false,
            "properties": {
                "plan": { "type": "string", "description": "The indented physical plan." },
                "sources": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["source", "sql"],
                        "properties": { "source": { "type": "string" }, "sql": { "type": "string" } },
                    },
                },
            },
        }),
    );
    let seconds = |what: &str| json!({ "type": ["number", "null"], "description": format!("Seconds from the start of the query until {what} (null: never).") });
    schemas.insert(
        SQL_ANALYSIS.into(),
        json!({
            "type": "object",
            "required": ["plan", "rows", "seconds", "sources"],
            "additionalProperties": false,
            "properties": {
                "plan": { "type": "string", "description": "The indented physical plan with each node's metrics." },
                "rows": { "type": "integer", "description": "The rows the query answered (not returned)." },
                "seconds": { "type": "number", "description": "The query's run time." },
                "sources": {
                    "type": "array",
                    "description": "Each source statement, in the order they were sent.",
                    "items": {
                        "type": "object",
                        "required": ["source", "sql", "rows", "sent_at", "first_row_at", "ended_at", "connection_wait"],
                        "properties": {
                            "source": { "type": "string" },
                            "sql": { "type": ["string", "null"], "description": "The statement as sent, runtime filters included (null: the query ended before it was needed)." },
                            "rows": { "type": "integer" },
                            "sent_at": seconds("it was sent"),
                            "first_row_at": seconds("its first row arrived"),
                            "ended_at": { "type": "number", "description": "Seconds from the start of the query until it ended." },
                            "connection_wait": { "type": ["number", "null"], "description": "Seconds of those before its first row it waited for one of the source's pooled connections, all in use by other requests (null: never sent, or the connector does not say)." },
                        },
                    },
                },
            },
        }),
    );
    schemas
}

const FILTER_DESCRIPTION: &str = "Filter JSON with NocoBase's operators: `{\"column\": \
{\"$op\": value}}`; a bare value means `$eq`; a relation name nests a filter on the related \
rows (`{\"customer\": {\"country\": {\"$eq\": \"FR\"}}}`); `$and` and `$or` take arrays of \
filters. Comparison: `$eq $ne $gt $gte $lt $lte $in $notIn $is $exists $notExists`. Text: \
`$like $notLike $iLike $notILike $regex $iRegex $notRegex $notIRegex $includes $notIncludes $startsWith $notStartsWith $endWith \
$notEndWith $empty $notEmpty $match $notMatch`. Booleans and numbers: `$isTruly $isFalsy`. \
Dates: `$dateOn $dateNotOn $dateBefore $dateAfter $dateNotBefore $dateNotAfter \
$dateBetween`. Arrays: `$anyOf $noneOf`. JSON documents (as jsonb): `$jsonContains \
$jsonContainedIn $hasKey $hasKeysAny $hasKeysAll`. Logic: `$and $or`. Values may use `{{$user.id}}`, \
`{{$user.role}}`, `{{$user.claims.<path>}}` and `{{$now}}`.";

/// A query parameter whose value is JSON text.
fn json_query(name: &str, required: bool, description: &str, schema: Value) -> Value {
    json!({
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "content": { "application/json": { "schema": schema } },
    })
}

fn query(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "description": description, "schema": schema })
}

fn parameters() -> Map<String, Value> {
    let filter = "Which rows: filter JSON (see `tributary.Filter`).";
    let csv = json!({ "type": "string" });
    let pairs = [
        (
            "filter",
            json_query("filter", false, filter, schema_ref(FILTER)),
        ),
        (
            "requiredFilter",
            json_query(
                "filter",
                true,
                "Which rows: filter JSON (see `tributary.Filter`); required, and an empty filter is refused.",
                schema_ref(FILTER),
            ),
        ),
        (
            "sort",
            query(
                "sort",
                "Comma-separated columns; `-` sorts descending (`-created_at,id`); `relation.column` sorts by a related row's column (`customer.name`).",
                csv.clone(),
            ),
        ),
        (
            "fields",
            query(
                "fields",
                "Only these columns, comma-separated (`id,name`); `relation.column` appends a relation with only that column (`id,customer.name`).",
                csv.clone(),
            ),
        ),
        (
            "except",
            query(
                "except",
                "All columns but these, comma-separated; `relation.column` leaves a column of an appended relation out (`customer.secret`).",
                csv.clone(),
            ),
        ),
        (
            "writeFields",
            query(
                "fields",
                "Answer only these columns of the written rows, comma-separated (`id,status`); the rows' own columns only.",
                csv.clone(),
            ),
        ),
        (
            "writeExcept",
            query(
                "except",
                "Answer every column of the written rows but these, comma-separated.",
                csv.clone(),
            ),
        ),
        (
            "prefer",
            json!({
                "name": "Prefer",
                "in": "header",
                "description": "PostgREST's preferences, comma-separated: `return=minimal` answers no body (201 for a create, 204 for an update or delete), `return=representation` the written rows (the default). On a create, an upsert: `resolution=merge-duplicates` updates the rows whose key is already there with the body's other values, `resolution=ignore-duplicates` leaves them as they are; the others are inserted (one transaction). Other preferences are ignored.",
                "schema": { "type": "string" },
            }),
        ),
        (
            "onConflict",
            query(
                "on_conflict",
                "The key an upsert's rows conflict on: the primary key's or a unique key's columns, comma-separated (default: the primary key). Needs `Prefer: resolution=…`.",
                csv.clone(),
            ),
        ),
        (
            "whitelist",
            query(
                "whitelist",
                "NocoBase's whitelist: write only these of the body's values, comma-separated; the others are left out, not refused.",
                csv.clone(),
            ),
        ),
        (
            "blacklist",
            query(
                "blacklist",
                "NocoBase's blacklist: leave these of the body's values out (not refused), comma-separated.",
                csv.clone(),
            ),
        ),
        (
            "appends",
            query(
                "appends",
                "Related rows to include, comma-separated relation names; dots go further (`customer,customer.country`), and a path ending in a column answers only the columns so named (`customer.name`), with the relation's key.",
                csv.clone(),
            ),
        ),
        (
            "page",
            query(
                "page",
                "1-based page number.",
                json!({ "type": "integer", "minimum": 1, "default": 1 }),
            ),
        ),
        (
            "pageSize",
            query(
                "pageSize",
                "Rows per page.",
                json!({ "type": "integer", "minimum": 1, "maximum": 1000, "default": 20 }),
            ),
        ),
        (
            "count",
            query(
                "count",
                "Also count the matching rows (`meta.count`, `meta.totalPage`).",
                json!({ "type": "boolean", "default": false }),
            ),
        ),
        (
            "paginate",
            query(
                "paginate",
                "NocoBase's `paginate=false`: every row in one answer (at most `max_rows`; `meta.nextCursor` goes on when there were more), `page` and `pageSize` ignored.",
                json!({ "type": "boolean", "default": true }),
            ),
        ),
        (
            "cursor",
            query(
                "cursor",
                "Keyset pagination: `meta.nextCursor` of the previous page.",
                csv.clone(),
            ),
        ),
        (
            "measures",
            json_query(
                "measures",
                false,
                "What to compute, a JSON array.",
                json!({ "type": "array", "items": schema_ref(MEASURE) }),
            ),
        ),
        (
            "dimensions",
            json_query(
                "dimensions",
                false,
                "What to group by, a JSON array.",
                json!({ "type": "array", "items": schema_ref(DIMENSION) }),
            ),
        ),
        (
            "having",
            json_query(
                "having",
                false,
                "Filter JSON over the measures' and dimensions' aliases, applied after grouping.",
                schema_ref(FILTER),
            ),
        ),
        (
            "aggregateSort",
            query(
                "sort",
                "Comma-separated aliases; `-` sorts descending.",
                csv,
            ),
        ),
        (
            "limit",
            query(
                "limit",
                "At most this many result rows.",
                json!({ "type": "integer", "minimum": 1 }),
            ),
        ),
    ];
    pairs
        .into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect()
}

fn responses() -> Map<String, Value> {
    let error = |description: &str| json!({ "description": description, "content": json_content(schema_ref(ERROR)) });
    let mut responses = Map::new();
    for (status, description) in [
        (
            "400",
            "Bad input: a malformed filter, an unknown column, a value of the wrong type.",
        ),
        ("401", "No valid credentials (and no anonymous role)."),
        ("403", "The role may not do this (`permission_denied`)."),
        ("404", "Unknown collection or row."),
        ("406", "None of the `Accept` media types can be produced."),
        (
            "413",
            "The body is larger than the server's `max_body_bytes`.",
        ),
        ("415", "The body is not `application/json`."),
        (
            "409",
            "A constraint of the source refused the change, or the name is taken.",
        ),
        (
            "422",
            "The body's JSON has the wrong shape (an unknown or missing field), or the source \
             could not be reached with this configuration, or refused its credentials.",
        ),
        ("504", "The query or a source took too long."),
    ] {
        responses.insert(status.to_string(), error(description));
    }
    let retry_after = json!({
        "Retry-After": {
            "description": "Seconds to wait.",
            "schema": { "type": "integer", "minimum": 1 },
        },
    });
    let mut limited = error("Too many requests for this key or address.");
    limited["headers"] = retry_after.clone();
    responses.insert("429".to_string(), limited);
    let mut down = error(
        "A source is down (`source_unavailable`), or up but every pooled connection (or the \
         caller's share of them, `pool.max_per_caller`) stayed in use past its \
         `pool.acquire_timeout_ms` (`source_busy`, with `Retry-After`); the message names the \
         source.",
    );
    down["headers"] = retry_after;
    responses.insert("503".to_string(), down);
    responses
}
