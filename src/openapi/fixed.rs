//! The routes that do not depend on the catalog: the SQL endpoint, this
//! document, and the admin API (briefly: free-form JSON bodies).

use serde_json::{Map, Value, json};

use super::{
    ADMIN_TAG, BATCH_TAG, CollectionDoc, DOCUMENT_TAG, SQL_ANALYSIS, SQL_EXPLAIN, SQL_REQUEST,
    SQL_RESULT, SQL_TAG, add_operation, error_responses, json_content, schema_ref,
};

/// `POST /api/sql`.
pub(super) fn add_sql(paths: &mut Map<String, Value>) {
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({
            "description": "The rows (or, with `explain`, the plan; with `analyze`, what the run did). `Accept` picks the format of rows: JSON (default), NDJSON (one row object per line), CSV (a header line, then one line per row) or an Arrow IPC stream; the last three stream as the sources deliver rows.",
            "content": {
                "application/json": {
                    "schema": { "oneOf": [schema_ref(SQL_RESULT), schema_ref(SQL_EXPLAIN), schema_ref(SQL_ANALYSIS)] },
                },
                "application/x-ndjson": { "schema": { "type": "object" } },
                "text/csv": { "schema": { "type": "string" } },
                "application/vnd.apache.arrow.stream": {},
            },
        }),
    );
    error_responses(&mut responses, &["406", "413", "415", "422"]);
    paths.insert(
        "/api/sql".into(),
        json!({
            "post": {
                "tags": [SQL_TAG],
                "operationId": "sql",
                "summary": "Run a read-only SQL query",
                "description": "Over every source the role may read; bound parameters, a time limit and a row cap (`truncated`).",
                "requestBody": { "required": true, "content": json_content(schema_ref(SQL_REQUEST)) },
                "responses": responses,
            },
        }),
    );
}

/// `POST /api/batch`, when the caller may write to a collection with a
/// key (the operations' `collection` is one of those); false otherwise.
pub(super) fn add_batch(paths: &mut Map<String, Value>, collections: &[CollectionDoc]) -> bool {
    let writable: Vec<&str> = collections
        .iter()
        .filter(|c| {
            let o = &c.operations;
            !c.primary_key.is_empty() && (o.create || o.update || o.delete)
        })
        .map(|c| c.api_name.as_str())
        .collect();
    if writable.is_empty() {
        return false;
    }
    // Column names: a list, or one comma-separated string.
    let names = |description: &str| {
        json!({
            "description": description,
            "type": ["string", "array"],
            "items": { "type": "string" },
        })
    };
    let operation = json!({
        "type": "object",
        "required": ["action", "collection"],
        "additionalProperties": false,
        "properties": {
            "action": { "enum": ["create", "update", "destroy", "updateOrCreate", "firstOrCreate"] },
            "collection": { "enum": writable },
            "key": {
                "description": "update / destroy: the row's key as in `/api/{collection}/{key}` (`1,2` for a composite key).",
                "type": ["string", "integer"],
            },
            "filter": {
                "description": "update / destroy: the rows, as the routes' `filter` (non-empty).",
                "type": "object",
            },
            "values": {
                "description": "create: an object of column values or an array of them; update: the columns to set.",
                "type": ["object", "array"],
            },
            "resolution": {
                "description": "create: an upsert, as `Prefer: resolution=…` on the route — merge-duplicates updates the rows whose key is there, ignore-duplicates leaves them.",
                "enum": ["merge-duplicates", "ignore-duplicates"],
            },
            "on_conflict": names("create with `resolution`: the primary key's or a unique key's columns (default: the primary key)."),
            "filterKeys": names("updateOrCreate / firstOrCreate (required): the columns that find the row, as on NocoBase's routes."),
            "fields": names("Answer only these columns of the written rows, as the route's `fields` (a list, or one comma-separated string)."),
            "except": names("Answer every column of the written rows but these, as the route's `except`."),
        },
    });
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({
            "description": "All operations were done, in one transaction: for each, in order, the rows it affected and the written rows as its own route answers them (a row or null for a create of one object or a write by key, else an array).",
            "content": json_content(json!({
                "type": "object",
                "required": ["data"],
                "properties": {
                    "data": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["affected", "data"],
                            "properties": {
                                "affected": { "type": "integer", "minimum": 0 },
                                "data": { "type": ["object", "array", "null"] },
                            },
                        },
                    },
                },
            })),
        }),
    );
    error_responses(&mut responses, &["409", "413"]);
    paths.insert(
        "/api/batch".into(),
        json!({
            "post": {
                "tags": [BATCH_TAG],
                "operationId": "batch",
                "summary": "Several writes in one transaction",
                "description": format!("Creates, updates and destroys on collections of one source, run in order in one transaction: all happen or none does (the error's `path` names the operation, `operations[2]`). Each is what its own route does, with the same rules and audit row; an update or destroy by key that finds no row answers `affected: 0, data: null`. At most {} operations.", crate::rest::MAX_BATCH_OPERATIONS),
                "requestBody": {
                    "required": true,
                    "content": json_content(json!({
                        "type": "object",
                        "required": ["operations"],
                        "additionalProperties": false,
                        "properties": {
                            "operations": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": crate::rest::MAX_BATCH_OPERATIONS,
                                "items": operation,
                            },
                        },
                    })),
                },
                "responses": responses,
            },
        }),
    );
    true
}

/// `GET /api/openapi.json`.
pub(super) fn add_document(paths: &mut Map<String, Value>) {
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({
            "description": "The OpenAPI 3.1 document for the calling role.",
            "content": json_content(json!({ "type": "object" })),
        }),
    );
    error_responses(&mut responses, &[]);
    paths.insert(
        "/api/openapi.json".into(),
        json!({
            "get": {
                "tags": [DOCUMENT_TAG],
                "operationId": "openapi",
                "summary": "This document",
                "responses": responses,
            },
        }),
    );
}

/// What an admin route takes in its body.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Body {
    None,
    Required,
    Optional,
}

/// One admin route: method, path, operation id (after `admin.`), summary,
/// body, success status.
type AdminRoute = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Body,
    &'static str,
);

/// Every route of `crate::admin::router`.
const ADMIN_ROUTES: &[AdminRoute] = &[
    (
        "get",
        "/admin/sources",
        "listSources",
        "List the sources: status, advice, connections in use and the callers using them",
        Body::None,
        "200",
    ),
    (
        "post",
        "/admin/sources",
        "registerSource",
        "Register a source (`name`, `kind`, connection options)",
        Body::Required,
        "201",
    ),
    (
        "get",
        "/admin/sources/{name}",
        "showSource",
        "Show a source: status, advice, connections in use and the callers using them",
        Body::None,
        "200",
    ),
    (
        "patch",
        "/admin/sources/{name}",
        "updateSource",
        "Change a source's configuration",
        Body::Required,
        "200",
    ),
    (
        "delete",
        "/admin/sources/{name}",
        "removeSource",
        "Remove a source",
        Body::None,
        "204",
    ),
    (
        "post",
        "/admin/sources/{name}/test",
        "testSource",
        "Ping a source (503 naming it when it is down)",
        Body::None,
        "200",
    ),
    (
        "post",
        "/admin/sources/{name}/refresh",
        "refreshSource",
        "Introspect a source again and return the catalog diff",
        Body::None,
        "200",
    ),
    (
        "get",
        "/admin/catalog",
        "showCatalog",
        "The catalog: version, sources, relations, collections",
        Body::None,
        "200",
    ),
    (
        "get",
        "/admin/relations",
        "listRelations",
        "List relations (foreign keys and declared ones)",
        Body::None,
        "200",
    ),
    (
        "post",
        "/admin/relations",
        "createRelation",
        "Declare a relation",
        Body::Required,
        "201",
    ),
    (
        "get",
        "/admin/relations/{name}",
        "showRelation",
        "Show a relation",
        Body::None,
        "200",
    ),
    (
        "delete",
        "/admin/relations/{name}",
        "removeRelation",
        "Delete a declared relation",
        Body::None,
        "204",
    ),
    (
        "get",
        "/admin/aliases",
        "listAliases",
        "List collection aliases",
        Body::None,
        "200",
    ),
    (
        "put",
        "/admin/aliases",
        "setAlias",
        "Set a collection alias",
        Body::Required,
        "200",
    ),
    (
        "delete",
        "/admin/aliases/{alias}",
        "removeAlias",
        "Remove a collection alias",
        Body::None,
        "204",
    ),
    (
        "get",
        "/admin/keys",
        "listKeys",
        "List API keys (without secrets)",
        Body::None,
        "200",
    ),
    (
        "post",
        "/admin/keys",
        "createKey",
        "Create an API key (the secret is shown once)",
        Body::Required,
        "201",
    ),
    (
        "get",
        "/admin/keys/{id}",
        "showKey",
        "Show an API key",
        Body::None,
        "200",
    ),
    (
        "delete",
        "/admin/keys/{id}",
        "revokeKey",
        "Revoke an API key",
        Body::None,
        "204",
    ),
    (
        "post",
        "/admin/keys/{id}/rotate",
        "rotateKey",
        "Replace an API key; the old one works for `grace_secs` more",
        Body::Optional,
        "201",
    ),
    (
        "get",
        "/admin/permissions",
        "listPermissions",
        "List permission rules",
        Body::None,
        "200",
    ),
    (
        "put",
        "/admin/permissions/{role}/{collection}/{action}",
        "setPermission",
        "Set a role's rule for an action on a collection",
        Body::Required,
        "200",
    ),
    (
        "delete",
        "/admin/permissions/{role}/{collection}/{action}",
        "removePermission",
        "Remove a permission rule",
        Body::None,
        "204",
    ),
    (
        "get",
        "/admin/roles",
        "listRoles",
        "List roles",
        Body::None,
        "200",
    ),
    (
        "get",
        "/admin/audit",
        "listAudit",
        "The audit log, newest first",
        Body::None,
        "200",
    ),
];

/// Query parameters of admin routes, by operation id.
fn admin_query(id: &str) -> Vec<Value> {
    let text = json!({ "type": "string" });
    let time = json!({ "type": "string", "format": "date-time" });
    let param = |name: &str, description: &str, schema: &Value| json!({ "name": name, "in": "query", "description": description, "schema": schema });
    match id {
        "showCatalog" => vec![param("source", "Only this source.", &text)],
        "refreshSource" => vec![param(
            "mode",
            "`full` introspects again; `drift` first compares cheap fingerprints.",
            &json!({ "enum": ["full", "drift"], "default": "full" }),
        )],
        "listAudit" => vec![
            param("since", "Entries at or after this time.", &time),
            param("until", "Entries before this time.", &time),
            param("role", "Entries of this role.", &text),
            param("key_id", "Entries of this API key.", &text),
            param("user_id", "Entries of this user.", &text),
            param(
                "action",
                "Actions starting with this (`admin.`, `write.insert`).",
                &text,
            ),
            param("collection", "Entries about this collection.", &text),
            param("outcome", "Entries with this outcome.", &text),
            param(
                "before",
                "Entries with a smaller id: `next_before` of the previous page.",
                &json!({ "type": "integer" }),
            ),
            param(
                "limit",
                "Page size.",
                &json!({ "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 }),
            ),
        ],
        _ => Vec::new(),
    }
}

/// The admin routes.
pub(super) fn add_admin(paths: &mut Map<String, Value>) {
    for &(method, path, id, summary, body, status) in ADMIN_ROUTES {
        let mut parameters: Vec<Value> = path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| {
                json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } })
            })
            .collect();
        parameters.extend(admin_query(id));
        let mut responses = Map::new();
        let success = if status == "204" {
            json!({ "description": "Done." })
        } else {
            // Free-form: the admin API's shapes are documented with it.
            json!({ "description": "JSON.", "content": json_content(json!({})) })
        };
        responses.insert(status.into(), success);
        let extra: &[&str] = match (id, body) {
            ("registerSource" | "updateSource", _) => &["409", "422"],
            (_, Body::None) => &[],
            _ => &["409"],
        };
        error_responses(&mut responses, extra);
        let mut operation = json!({
            "tags": [ADMIN_TAG],
            "operationId": format!("admin.{id}"),
            "summary": summary,
            "responses": responses,
        });
        if !parameters.is_empty() {
            operation["parameters"] = json!(parameters);
        }
        if body != Body::None {
            operation["requestBody"] = json!({
                "required": body == Body::Required,
                "content": json_content(json!({ "type": "object" })),
            });
        }
        add_operation(paths, path, method, operation);
    }
}
