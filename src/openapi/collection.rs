//! One collection's part of the document: its row and input schemas, its
//! own REST routes and the NocoBase-compatible ones — only the routes its
//! operations allow, and by-key routes only with a primary key.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::{
    CollectionDoc, ColumnDoc, LIST_META, add_operation, error_responses, json_content,
    parameter_ref, schema, schema_ref,
};

/// Every collection in the document, by API name.
pub(super) type Documented<'a> = HashMap<&'a str, &'a CollectionDoc>;

/// Adds `c`'s schemas to `schemas` and its routes to `paths`; `documented`
/// holds the API names of every collection in the document (relations to
/// others are left out).
pub(super) fn add(
    c: &CollectionDoc,
    documented: &Documented<'_>,
    paths: &mut Map<String, Value>,
    schemas: &mut Map<String, Value>,
) {
    let ops = c.operations;
    schemas.insert(c.api_name.clone(), row_schema(c, documented));
    if ops.create {
        schemas.insert(input_name(c), input_schema(c, true));
    }
    if ops.update {
        schemas.insert(patch_name(c), input_schema(c, false));
    }

    let routes = Routes { c };
    let base = format!("/api/{}", c.api_name);
    let by_key = format!("/api/{}/{{pk}}", c.api_name);
    let has_key = !c.primary_key.is_empty();
    let mut add = |path: &str, method: &str, operation: Value| {
        add_operation(paths, path, method, operation);
    };

    if ops.list {
        add(&base, "get", routes.list());
        add(&format!("{base}:list"), "get", routes.nocobase_list());
    }
    if ops.get && has_key {
        add(&by_key, "get", routes.get());
        add(&format!("{base}:get"), "get", routes.nocobase_get());
    }
    if ops.aggregate {
        add(&format!("{base}:aggregate"), "get", routes.aggregate());
    }
    if ops.create {
        add(&base, "post", routes.create());
        add(&format!("{base}:create"), "post", routes.nocobase_create());
        if has_key {
            add(
                &format!("{base}:firstOrCreate"),
                "post",
                routes.create_or(false),
            );
        }
        if has_key && ops.update {
            add(
                &format!("{base}:updateOrCreate"),
                "post",
                routes.create_or(true),
            );
        }
    }
    if ops.update {
        add(&base, "patch", routes.update_where());
        if has_key {
            add(&by_key, "patch", routes.update());
        }
        add(&format!("{base}:update"), "post", routes.nocobase_update());
    }
    if ops.delete {
        add(&base, "delete", routes.delete_where());
        if has_key {
            add(&by_key, "delete", routes.delete());
        }
        add(
            &format!("{base}:destroy"),
            "post",
            routes.nocobase_destroy(),
        );
    }
}

/// `c`'s association routes (NocoBase's resources `c.relation`): for each
/// relation to a collection the caller may list, `GET
/// /api/{c}/{pk}/{relation}` — the related collection's list, kept to the
/// rows related to one row. The same path takes the related collection's
/// other routes and actions; they are described, not listed (one path per
/// relation and action would multiply the document).
pub(super) fn add_associations(
    c: &CollectionDoc,
    documented: &Documented<'_>,
    paths: &mut Map<String, Value>,
) {
    if c.primary_key.is_empty() || !(c.operations.list || c.operations.get) {
        return;
    }
    let parent = Routes { c };
    for relation in &c.relations {
        let Some(target) = documented
            .get(relation.target.as_str())
            .filter(|t| t.operations.list)
        else {
            continue;
        };
        let mut operation = Routes { c: target }.list();
        let (name, related) = (&c.api_name, &relation.name);
        operation["operationId"] = json!(format!("{name}.{related}:list"));
        operation["summary"] = json!(format!(
            "List the {} rows related to one {name} row",
            target.api_name
        ));
        operation["description"] = json!(format!(
            "NocoBase's association resource `{name}.{related}`: `GET /api/{}` kept to the rows related to the `{name}` row with the key `pk` (a 404 when the caller cannot see that row). The path also takes `:list`, `:get`, `:aggregate`, and the writes of `/api/{}` (`POST` or `:create` with the relation's columns filled in, `PATCH` or `:update`, `DELETE` or `:destroy`), kept to the related rows.",
            target.api_name, target.api_name
        ));
        operation["tags"] = json!([name]);
        if let Some(Value::Array(parameters)) = operation.get_mut("parameters") {
            parameters.insert(0, parent.key_path());
        }
        add_operation(
            paths,
            &format!("/api/{name}/{{pk}}/{related}"),
            "get",
            operation,
        );
    }
}

fn input_name(c: &CollectionDoc) -> String {
    format!("{}.Input", c.api_name)
}

fn patch_name(c: &CollectionDoc) -> String {
    format!("{}.Patch", c.api_name)
}

fn row_schema(c: &CollectionDoc, documented: &Documented<'_>) -> Value {
    let mut properties: Map<String, Value> = c
        .columns
        .iter()
        .map(|column| (column.name.clone(), column_schema(column)))
        .collect();
    for relation in &c.relations {
        // A column of the same name wins: it is what rows carry by default.
        if !documented.contains_key(relation.target.as_str())
            || properties.contains_key(&relation.name)
        {
            continue;
        }
        let (what, target, name) = (
            if relation.many { "rows" } else { "row" },
            &relation.target,
            &relation.name,
        );
        let description =
            format!("The related `{target}` {what}, present when `appends` names `{name}`.");
        let property = if relation.many {
            json!({ "type": "array", "items": schema_ref(target), "description": description })
        } else {
            json!({ "anyOf": [schema_ref(target), { "type": "null" }], "description": description })
        };
        properties.insert(relation.name.clone(), property);
    }
    let mut description = format!("A row of `{}`.", c.sql_name);
    if !c.primary_key.is_empty() {
        description.push_str(&format!(" Primary key: `{}`.", c.primary_key.join("`, `")));
    }
    if let Some(comment) = &c.comment {
        description = format!("{comment}\n\n{description}");
    }
    json!({ "type": "object", "description": description, "properties": properties })
}

fn column_schema(column: &ColumnDoc) -> Value {
    let mut value = schema::nullable(schema::value(&column.data_type), column.nullable);
    if let (Some(comment), Value::Object(map)) = (&column.comment, &mut value) {
        let description = match map.get("description").and_then(Value::as_str) {
            Some(about_type) => format!("{comment}\n\n{about_type}"),
            None => comment.clone(),
        };
        map.insert("description".into(), Value::String(description));
    }
    value
}

/// The writable columns, as create (`required` lists what the database
/// cannot fill in) or update (nothing required) bodies.
fn input_schema(c: &CollectionDoc, create: bool) -> Value {
    let writable = c.columns.iter().filter(|column| column.writable);
    let properties: Map<String, Value> = writable
        .clone()
        .map(|column| (column.name.clone(), column_schema(column)))
        .collect();
    let mut input = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": properties,
    });
    if create {
        let required: Vec<&str> = writable
            .filter(|column| !column.nullable && !column.has_default)
            .map(|column| column.name.as_str())
            .collect();
        if !required.is_empty() {
            input["required"] = json!(required);
        }
        input["description"] = json!(format!("A new row of `{}`.", c.api_name));
    } else {
        input["description"] = json!(format!(
            "New values for some columns of `{}` rows.",
            c.api_name
        ));
    }
    input
}

/// The operations of one collection.
struct Routes<'a> {
    c: &'a CollectionDoc,
}

/// What may go wrong beyond the common errors: writes may break a
/// constraint of the source.
const WRITE_ERRORS: &[&str] = &["409", "413"];

/// One operation of a collection.
#[derive(Default)]
struct Op {
    /// `<verb>_<collection>` (verbs have no underscore, so ids cannot
    /// clash) or NocoBase's `<collection>:<action>`.
    id: String,
    summary: String,
    description: Option<String>,
    parameters: Vec<Value>,
    body: Option<Value>,
    /// The success status and its response.
    status: &'static str,
    response: Value,
    /// Writes may also answer 409.
    write: bool,
}

impl Routes<'_> {
    fn name(&self) -> &str {
        &self.c.api_name
    }

    fn row(&self) -> Value {
        schema_ref(self.name())
    }

    /// `{"data": row}`
    fn one(&self) -> Value {
        json!({ "type": "object", "required": ["data"], "properties": { "data": self.row() } })
    }

    /// `{"data": [row]}`
    fn rows(&self) -> Value {
        json!({
            "type": "object",
            "required": ["data"],
            "properties": { "data": { "type": "array", "items": self.row() } },
        })
    }

    /// A write by filter's answer: `{"data": [row], "meta": {"affected": n}}`.
    fn affected(&self) -> Value {
        let meta = json!({
            "type": "object",
            "required": ["affected"],
            "properties": { "affected": { "type": "integer", "minimum": 0 } },
        });
        json!({
            "type": "object",
            "required": ["data", "meta"],
            "properties": { "data": { "type": "array", "items": self.row() }, "meta": meta },
        })
    }

    /// The operation object, with the common error responses.
    fn operation(&self, op: Op) -> Value {
        let mut responses = Map::new();
        let mut response = op.response;
        if op.write {
            let headers = json!({ "Preference-Applied": {
                "description": "The `Prefer` preferences the write honoured (`return=minimal`, `resolution=merge-duplicates`), comma-separated.",
                "schema": { "type": "string" },
            }});
            response["headers"] = headers.clone();
            if op.status == "200" {
                let minimal = json!({
                    "description": "Written; nothing answered (`Prefer: return=minimal`).",
                    "headers": headers,
                });
                responses.insert("204".into(), minimal);
            }
        }
        responses.insert(op.status.to_string(), response);
        error_responses(&mut responses, if op.write { WRITE_ERRORS } else { &[] });
        let mut operation = json!({
            "tags": [self.name()],
            "operationId": op.id,
            "summary": op.summary,
            "responses": responses,
        });
        if let Some(description) = op.description {
            operation["description"] = json!(description);
        }
        if !op.parameters.is_empty() {
            operation["parameters"] = json!(op.parameters);
        }
        if let Some(body) = op.body {
            operation["requestBody"] = body;
        }
        operation
    }

    fn key_description(&self) -> String {
        match self.c.primary_key.as_slice() {
            [single] => format!("The primary key `{single}`."),
            key => format!(
                "The composite primary key `{}`: the values in this order, separated by \
                 commas, each percent-encoded (a comma inside a value is `%2C`).",
                key.join(",")
            ),
        }
    }

    /// A single key's values have its column's type; composite keys are text.
    fn key_schema(&self) -> Value {
        match self.c.primary_key.as_slice() {
            [single] => self
                .c
                .columns
                .iter()
                .find(|column| &column.name == single)
                .map_or_else(
                    || json!({ "type": "string" }),
                    |column| schema::value(&column.data_type),
                ),
            _ => json!({ "type": "string" }),
        }
    }

    fn key_path(&self) -> Value {
        json!({
            "name": "pk",
            "in": "path",
            "required": true,
            "description": self.key_description(),
            "schema": self.key_schema(),
        })
    }

    /// `filterByTk`: one key (`get`), or for a write (`several`) also
    /// several, as NocoBase's client sends a bulk delete.
    fn filter_by_tk(&self, several: bool) -> Value {
        if !several {
            return json!({
                "name": "filterByTk",
                "in": "query",
                "description": format!(
                    "{} Or `filter` picks the row (with both, the row must match it).",
                    self.key_description()
                ),
                "schema": self.key_schema(),
            });
        }
        json!({
            "name": "filterByTk",
            "in": "query",
            "description": format!(
                "{} Several keys (`filterByTk=1&filterByTk=2`, or `filterByTk[]=…` as NocoBase's client sends them) write those rows, answered as a write by filter.",
                self.key_description()
            ),
            "schema": { "oneOf": [self.key_schema(), { "type": "array", "items": self.key_schema(), "minItems": 1 }] },
            "style": "form",
            "explode": true,
        })
    }

    fn create_body(&self) -> Value {
        let input = schema_ref(&input_name(self.c));
        request_body(
            json!({ "oneOf": [input, { "type": "array", "items": input, "minItems": 1 }] }),
            "One row, or an array of rows, of writable columns.",
        )
    }

    fn patch_body(&self) -> Value {
        request_body(schema_ref(&patch_name(self.c)), "The columns to change.")
    }

    fn list(&self) -> Value {
        let page = json!({
            "type": "object",
            "required": ["data"],
            "properties": {
                "data": { "type": "array", "items": self.row() },
                "meta": schema_ref(LIST_META),
            },
        });
        self.operation(Op {
            id: format!("list_{}", self.name()),
            summary: format!("List {} rows", self.name()),
            parameters: list_parameters(true),
            status: "200",
            response: json!({
                "description": "A page of rows. `Accept` picks the format: JSON (default), NDJSON (one row object per line) or CSV (a header line, then one line per row).",
                "content": {
                    "application/json": { "schema": page },
                    "application/x-ndjson": { "schema": self.row() },
                    "text/csv": { "schema": { "type": "string" } },
                },
            }),
            ..Op::default()
        })
    }

    fn nocobase_list(&self) -> Value {
        let page = json!({
            "type": "object",
            "required": ["data"],
            "properties": {
                "data": { "type": "array", "items": self.row() },
                "meta": schema_ref(LIST_META),
            },
        });
        self.operation(Op {
            id: format!("{}:list", self.name()),
            summary: format!("List {} rows (NocoBase)", self.name()),
            description: Some(format!(
                "NocoBase's `list` action: as `GET /api/{}`, and a paged answer's `meta` always has `count` and `totalPage`.",
                self.name()
            )),
            parameters: list_parameters(false),
            status: "200",
            response: json!({ "description": "A page of rows.", "content": json_content(page) }),
            ..Op::default()
        })
    }

    fn get(&self) -> Value {
        let mut parameters = vec![self.key_path()];
        parameters.extend(read_parameters());
        self.operation(Op {
            id: format!("get_{}", self.name()),
            summary: format!("Get one {} row by primary key", self.name()),
            parameters,
            status: "200",
            response: json!({ "description": "The row.", "content": json_content(self.one()) }),
            ..Op::default()
        })
    }

    fn nocobase_get(&self) -> Value {
        let mut parameters = vec![
            self.filter_by_tk(false),
            parameter_ref("filter"),
            parameter_ref("sort"),
        ];
        parameters.extend(read_parameters());
        self.operation(Op {
            id: format!("{}:get", self.name()),
            summary: format!("Get one {} row (NocoBase)", self.name()),
            description: Some("NocoBase's `get` action: the row with the key `filterByTk`, or the first row `filter` matches (in `sort`'s order, else the primary key's); with both, the keyed row if it matches. One of them is required; no row is a 404.".into()),
            parameters,
            status: "200",
            response: json!({ "description": "The row.", "content": json_content(self.one()) }),
            ..Op::default()
        })
    }

    fn aggregate(&self) -> Value {
        let temporal: Vec<&str> = self
            .c
            .columns
            .iter()
            .filter(|column| {
                use arrow_schema::DataType::{Date32, Date64, Timestamp};
                matches!(column.data_type, Date32 | Date64 | Timestamp(..))
            })
            .map(|column| column.name.as_str())
            .collect();
        let mut description = "`measures` and `dimensions` are JSON arrays, e.g. \
            `measures=[{\"field\":\"total\",\"aggregation\":\"sum\",\"alias\":\"revenue\"}]` and \
            `dimensions=[{\"field\":\"created_at\",\"granularity\":\"month\",\"alias\":\"month\"}]`; \
            `{\"aggregation\":\"count\"}` without a field counts rows. Each result row maps the \
            aliases to values."
            .to_string();
        if temporal.is_empty() {
            description
                .push_str(" This collection has no date or timestamp column for `granularity`.");
        } else {
            description.push_str(&format!(
                " `granularity` applies to `{}`.",
                temporal.join("`, `")
            ));
        }
        let result = json!({
            "type": "object",
            "required": ["data"],
            "properties": {
                "data": {
                    "type": "array",
                    "items": { "type": "object", "description": "Alias → value." },
                },
            },
        });
        self.operation(Op {
            id: format!("aggregate_{}", self.name()),
            summary: format!("Aggregate {} rows", self.name()),
            description: Some(description),
            parameters: ["measures", "dimensions", "filter", "having", "aggregateSort", "limit"]
                .into_iter()
                .map(parameter_ref)
                .collect(),
            status: "200",
            response: json!({
                "description": "One row per group. `Accept` picks the format: JSON (default), NDJSON (one row object per line) or CSV (a header line, then one line per row).",
                "content": {
                    "application/json": { "schema": result },
                    "application/x-ndjson": { "schema": { "type": "object" } },
                    "text/csv": { "schema": { "type": "string" } },
                },
            }),
            ..Op::default()
        })
    }

    fn created(&self) -> Value {
        json!({
            "description": "The created row (for one object) or rows (for an array), as stored; no body with `Prefer: return=minimal`.",
            "content": json_content(json!({ "oneOf": [self.one(), self.rows()] })),
        })
    }

    fn create(&self) -> Value {
        self.operation(Op {
            id: format!("create_{}", self.name()),
            summary: format!("Create {} rows", self.name()),
            parameters: create_parameters(),
            body: Some(self.create_body()),
            status: "201",
            response: self.created(),
            write: true,
            ..Op::default()
        })
    }

    fn nocobase_create(&self) -> Value {
        self.operation(Op {
            id: format!("{}:create", self.name()),
            summary: format!("Create {} rows (NocoBase)", self.name()),
            description: Some("NocoBase's `create` action: the body is the values.".into()),
            parameters: create_parameters(),
            body: Some(self.create_body()),
            status: "201",
            response: self.created(),
            write: true,
        })
    }

    /// NocoBase's `updateOrCreate` (`merge`) and `firstOrCreate`.
    fn create_or(&self, merge: bool) -> Value {
        let (action, what) = if merge {
            (
                "updateOrCreate",
                "gives the rows whose `filterKeys` columns hold the body's values the body's values (every one, where several match)",
            )
        } else {
            (
                "firstOrCreate",
                "answers the first row whose `filterKeys` columns hold the body's values, unchanged",
            )
        };
        let filter_keys = json!({
            "name": "filterKeys",
            "in": "query",
            "required": true,
            "description": "The columns that find the row, comma-separated or repeated (`filterKeys[]=email`).",
            "schema": { "type": "string" },
        });
        self.operation(Op {
            id: format!("{}:{action}", self.name()),
            summary: format!("Update or create a {} row (NocoBase)", self.name()),
            description: Some(format!("NocoBase's `{action}` action: {what}; when there is none, creates one. One transaction.")),
            parameters: value_write_parameters([filter_keys]),
            body: Some(self.create_body()),
            status: "201",
            response: self.created(),
            write: true,
        })
    }

    fn update(&self) -> Value {
        self.operation(Op {
            id: format!("update_{}", self.name()),
            summary: format!("Update one {} row by primary key", self.name()),
            parameters: value_write_parameters([self.key_path()]),
            body: Some(self.patch_body()),
            status: "200",
            response: json!({ "description": "The updated row.", "content": json_content(self.one()) }),
            write: true,
            ..Op::default()
        })
    }

    fn update_where(&self) -> Value {
        self.operation(Op {
            id: format!("updateWhere_{}", self.name()),
            summary: format!("Update the {} rows matching a filter", self.name()),
            parameters: value_write_parameters([parameter_ref("requiredFilter")]),
            body: Some(self.patch_body()),
            status: "200",
            response: json!({
                "description": "The updated rows and their count.",
                "content": json_content(self.affected()),
            }),
            write: true,
            ..Op::default()
        })
    }

    /// `filterByTk` or `filter`: with a primary key either may pick the
    /// rows, without one only a filter can.
    fn nocobase_target(&self) -> Vec<Value> {
        if self.c.primary_key.is_empty() {
            vec![parameter_ref("requiredFilter")]
        } else {
            vec![self.filter_by_tk(true), parameter_ref("filter")]
        }
    }

    fn nocobase_update(&self) -> Value {
        let schema = json!({ "oneOf": [self.one(), self.affected()] });
        self.operation(Op {
            id: format!("{}:update", self.name()),
            summary: format!("Update {} rows (NocoBase)", self.name()),
            description: Some("NocoBase's `update` action: `filterByTk` picks one row (answer `{\"data\": row}`), `filter` any number (answer `{\"data\": [row], \"meta\": {\"affected\": n}}`); one of them is required.".into()),
            parameters: value_write_parameters(self.nocobase_target()),
            body: Some(self.patch_body()),
            status: "200",
            response: json!({ "description": "The updated row or rows.", "content": json_content(schema) }),
            write: true,
        })
    }

    fn delete(&self) -> Value {
        self.operation(Op {
            id: format!("delete_{}", self.name()),
            summary: format!("Delete one {} row by primary key", self.name()),
            parameters: write_parameters([self.key_path()]),
            status: "200",
            response: json!({ "description": "The deleted row.", "content": json_content(self.one()) }),
            write: true,
            ..Op::default()
        })
    }

    fn delete_where(&self) -> Value {
        self.operation(Op {
            id: format!("deleteWhere_{}", self.name()),
            summary: format!("Delete the {} rows matching a filter", self.name()),
            parameters: write_parameters([parameter_ref("requiredFilter")]),
            status: "200",
            response: json!({
                "description": "The deleted rows and their count.",
                "content": json_content(self.affected()),
            }),
            write: true,
            ..Op::default()
        })
    }

    fn nocobase_destroy(&self) -> Value {
        let schema = json!({ "oneOf": [self.one(), self.affected()] });
        self.operation(Op {
            id: format!("{}:destroy", self.name()),
            summary: format!("Delete {} rows (NocoBase)", self.name()),
            description: Some("NocoBase's `destroy` action: `filterByTk` deletes one row (answer `{\"data\": row}`), `filter` any number (answer `{\"data\": [row], \"meta\": {\"affected\": n}}`); one of them is required.".into()),
            parameters: write_parameters(self.nocobase_target()),
            status: "200",
            response: json!({
                "description": "The deleted row, or the deleted rows and their count.",
                "content": json_content(schema),
            }),
            write: true,
            ..Op::default()
        })
    }
}

/// `fields`, `except` and `appends`: the shape of returned rows.
fn read_parameters() -> impl Iterator<Item = Value> {
    ["fields", "except", "appends"]
        .into_iter()
        .map(parameter_ref)
}

/// `leading`, then a write's `fields` and `except` (the shape of the
/// written rows) and `Prefer` (`return=minimal`; on a create, an upsert).
fn write_parameters(leading: impl IntoIterator<Item = Value>) -> Vec<Value> {
    let shape = ["writeFields", "writeExcept", "prefer"].map(parameter_ref);
    leading.into_iter().chain(shape).collect()
}

/// [`write_parameters`], then NocoBase's `whitelist` and `blacklist`, for
/// a write that takes values.
fn value_write_parameters(leading: impl IntoIterator<Item = Value>) -> Vec<Value> {
    let mut parameters = write_parameters(leading);
    parameters.extend(["whitelist", "blacklist"].map(parameter_ref));
    parameters
}

/// A create's: [`value_write_parameters`] and PostgREST's upsert key
/// (`on_conflict`; its resolution is in `Prefer`).
fn create_parameters() -> Vec<Value> {
    let mut parameters = value_write_parameters([]);
    parameters.push(parameter_ref("onConflict"));
    parameters
}

fn list_parameters(with_count: bool) -> Vec<Value> {
    let mut names = vec![
        "filter", "sort", "fields", "except", "appends", "page", "pageSize", "paginate",
    ];
    if with_count {
        names.push("count");
    }
    names.push("cursor");
    names.into_iter().map(parameter_ref).collect()
}

fn request_body(schema: Value, description: &str) -> Value {
    json!({ "required": true, "description": description, "content": json_content(schema) })
}
