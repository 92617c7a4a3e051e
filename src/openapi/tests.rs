//! Tests of the OpenAPI document: exactly the routes each role may use,
//! value schemas matching what `results` sends, unique operation ids,
//! resolvable references, and the admin routes in step with the router.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use arrow_schema::{DataType, Field, IntervalUnit, TimeUnit};
use serde_json::{Value, json};

use super::*;

fn column(name: &str, data_type: DataType, nullable: bool) -> ColumnDoc {
    ColumnDoc {
        name: name.into(),
        data_type,
        nullable,
        comment: None,
        writable: true,
        has_default: false,
    }
}

const ALL: Operations = Operations {
    list: true,
    get: true,
    aggregate: true,
    create: true,
    update: true,
    delete: true,
};

/// `orders`: composite key, every operation. `events`: no key, every
/// operation. `customers`: read-only (list and get).
fn collections() -> Vec<CollectionDoc> {
    let mut created = column(
        "created_at",
        DataType::Timestamp(TimeUnit::Microsecond, None),
        false,
    );
    created.has_default = true;
    let mut total = column("total", DataType::Decimal128(15, 2), true);
    total.comment = Some("Gross amount".into());
    let mut internal = column("internal_code", DataType::Utf8, false);
    internal.writable = false;
    let orders = CollectionDoc {
        api_name: "orders".into(),
        sql_name: "shop.public.orders".into(),
        comment: Some("Customer orders".into()),
        columns: vec![
            column("region", DataType::Utf8, false),
            column("id", DataType::Int64, false),
            column("customer_id", DataType::Int32, true),
            total,
            created,
            internal,
            column(
                "tags",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                true,
            ),
        ],
        primary_key: vec!["region".into(), "id".into()],
        operations: ALL,
        relations: vec![
            RelationDoc {
                name: "customer".into(),
                target: "customers".into(),
                many: false,
            },
            // The caller cannot see `warehouses`: no such property.
            RelationDoc {
                name: "warehouse".into(),
                target: "warehouses".into(),
                many: false,
            },
        ],
    };
    let events = CollectionDoc {
        api_name: "events".into(),
        sql_name: "logs.main.events".into(),
        comment: None,
        columns: vec![
            column(
                "at",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                false,
            ),
            column("payload", DataType::Binary, true),
            column("score", DataType::Float64, true),
        ],
        primary_key: Vec::new(),
        operations: ALL,
        relations: Vec::new(),
    };
    let customers = CollectionDoc {
        api_name: "customers".into(),
        sql_name: "shop.public.customers".into(),
        comment: None,
        columns: vec![
            column("id", DataType::Int32, false),
            column("name", DataType::Utf8, false),
        ],
        primary_key: vec!["id".into()],
        operations: Operations {
            list: true,
            get: true,
            ..Operations::default()
        },
        relations: vec![RelationDoc {
            name: "orders".into(),
            target: "orders".into(),
            many: true,
        }],
    };
    vec![orders, events, customers]
}

fn build(include_admin: bool) -> Value {
    match document(&collections(), "1.2.3", include_admin) {
        Ok(document) => document,
        Err(error) => panic!("no document: {error}"),
    }
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Every `(method, path)` of the document.
fn routes(document: &Value) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for method in METHODS {
            if item.get(method).is_some() {
                routes.insert((method.to_string(), path.clone()));
            }
        }
    }
    routes
}

/// Every operation object of the document, with its method and path.
fn operations(document: &Value) -> Vec<(String, String, Value)> {
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                operations.push((method.to_string(), path.clone(), op.clone()));
            }
        }
    }
    operations
}

fn set(routes: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    routes
        .iter()
        .map(|(m, p)| ((*m).to_string(), (*p).to_string()))
        .collect()
}

/// Follows a local JSON pointer.
fn resolve<'a>(document: &'a Value, reference: &str) -> Option<&'a Value> {
    document.pointer(reference.strip_prefix('#')?)
}

fn schema<'a>(document: &'a Value, name: &str) -> &'a Value {
    &document["components"]["schemas"][name]
}

#[test]
fn exactly_the_allowed_routes() {
    let expected = set(&[
        // orders: everything, by key too.
        ("get", "/api/orders"),
        ("post", "/api/orders"),
        ("patch", "/api/orders"),
        ("delete", "/api/orders"),
        ("get", "/api/orders/{pk}"),
        ("patch", "/api/orders/{pk}"),
        ("delete", "/api/orders/{pk}"),
        ("get", "/api/orders:aggregate"),
        ("get", "/api/orders:list"),
        ("get", "/api/orders:get"),
        ("post", "/api/orders:create"),
        ("post", "/api/orders:update"),
        ("post", "/api/orders:destroy"),
        ("post", "/api/orders:firstOrCreate"),
        ("post", "/api/orders:updateOrCreate"),
        // An order's customer (NocoBase's association `orders.customer`);
        // not its warehouse, which the caller cannot see.
        ("get", "/api/orders/{pk}/customer"),
        // events: no key, so no by-key routes and no `:get`.
        ("get", "/api/events"),
        ("post", "/api/events"),
        ("patch", "/api/events"),
        ("delete", "/api/events"),
        ("get", "/api/events:aggregate"),
        ("get", "/api/events:list"),
        ("post", "/api/events:create"),
        ("post", "/api/events:update"),
        ("post", "/api/events:destroy"),
        // customers: read-only.
        ("get", "/api/customers"),
        ("get", "/api/customers/{pk}"),
        ("get", "/api/customers:list"),
        ("get", "/api/customers:get"),
        // A customer's orders.
        ("get", "/api/customers/{pk}/orders"),
        // Always there.
        ("post", "/api/sql"),
        ("get", "/api/openapi.json"),
        // orders can be written by key.
        ("post", "/api/batch"),
    ]);
    assert_eq!(routes(&build(false)), expected);
}

#[test]
fn an_association_route_lists_the_related_rows_of_one_row() {
    let document = build(false);
    let operation = &document["paths"]["/api/orders/{pk}/customer"]["get"];
    assert_eq!(operation["operationId"], "orders.customer:list");
    assert_eq!(operation["parameters"][0]["name"], "pk");
    assert_eq!(operation["parameters"][0]["in"], "path");
    let page = &operation["responses"]["200"]["content"]["application/json"]["schema"];
    assert_eq!(page["properties"]["data"]["items"], schema_ref("customers"));
    assert!(operation["responses"]["404"].is_object(), "{operation}");
}

#[test]
fn the_batch_route_names_the_collections_it_can_write() {
    let full = build(false);
    let operation = &full["paths"]["/api/batch"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"]["properties"]["operations"]["items"];
    // Not events (no key) nor customers (read-only).
    assert_eq!(
        operation["properties"]["collection"]["enum"],
        json!(["orders"])
    );
    let read_only: Vec<CollectionDoc> = collections()
        .into_iter()
        .filter(|c| c.api_name != "orders")
        .collect();
    match document(&read_only, "1", false) {
        Ok(without) => assert!(without["paths"].get("/api/batch").is_none()),
        Err(error) => panic!("no document: {error}"),
    }
}

#[test]
fn read_only_role_has_no_write_schemas() {
    let document = build(false);
    let schemas = document["components"]["schemas"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert!(schemas.contains_key("customers"));
    assert!(!schemas.contains_key("customers.Input"));
    assert!(!schemas.contains_key("customers.Patch"));
    assert!(schemas.contains_key("orders.Input"));
    assert!(schemas.contains_key("orders.Patch"));
}

#[test]
fn operation_ids_are_unique_and_tagged() {
    let document = build(true);
    let mut ids = HashSet::new();
    let operations = operations(&document);
    assert!(operations.len() > 40, "{} operations", operations.len());
    let tags: HashSet<&str> = document["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for (method, path, op) in &operations {
        let id = op["operationId"].as_str().unwrap_or_default();
        assert!(!id.is_empty(), "{method} {path} has no operationId");
        assert!(ids.insert(id.to_string()), "duplicate operationId {id}");
        let tag = op["tags"][0].as_str().unwrap_or_default();
        assert!(tags.contains(tag), "{method} {path}: unknown tag `{tag}`");
    }
    for id in [
        "list_orders",
        "get_orders",
        "orders:list",
        "deleteWhere_events",
    ] {
        assert!(ids.contains(id), "missing {id}");
    }
}

#[test]
fn every_reference_resolves() {
    fn walk(document: &Value, value: &Value, found: &mut usize) {
        match value {
            Value::Object(map) => {
                if let Some(reference) = map.get("$ref") {
                    let reference = reference.as_str().unwrap_or_default();
                    assert!(
                        resolve(document, reference).is_some(),
                        "dangling {reference}"
                    );
                    *found += 1;
                }
                map.values().for_each(|v| walk(document, v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(document, v, found)),
            _ => {}
        }
    }
    let document = build(true);
    let mut found = 0;
    walk(&document, &document, &mut found);
    assert!(found > 100, "only {found} references");
}

#[test]
fn parameters_match_paths() {
    let document = build(true);
    for (method, path, op) in operations(&document) {
        let parameters: Vec<&Value> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| match p.get("$ref").and_then(Value::as_str) {
                Some(reference) => resolve(&document, reference).unwrap_or(&Value::Null),
                None => p,
            })
            .collect();
        let mut seen = HashSet::new();
        for p in &parameters {
            let key = (p["name"].as_str(), p["in"].as_str());
            assert!(key.0.is_some() && key.1.is_some(), "{method} {path}: {p}");
            assert!(seen.insert(key), "{method} {path}: {key:?} twice");
            // A parameter has a schema or a content map, not both.
            assert!(p.get("schema").is_some() != p.get("content").is_some());
        }
        let templated: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        let declared: BTreeSet<&str> = parameters
            .iter()
            .filter(|p| p["in"] == "path")
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(templated, declared, "{method} {path}");
        assert!(
            parameters
                .iter()
                .filter(|p| p["in"] == "path")
                .all(|p| p["required"] == true)
        );
        assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
    }
}

#[test]
fn row_schema_types_match_results() {
    let document = build(false);
    let orders = &schema(&document, "orders")["properties"];
    assert_eq!(
        orders["id"],
        json!({ "type": "integer", "format": "int64" })
    );
    assert_eq!(orders["region"], json!({ "type": "string" }));
    assert_eq!(
        orders["customer_id"],
        json!({ "type": ["integer", "null"], "format": "int32" })
    );
    // Decimals are strings, nullable here, with the column comment first.
    assert_eq!(orders["total"]["type"], json!(["string", "null"]));
    assert_eq!(orders["total"]["pattern"], json!(schema::DECIMAL_PATTERN));
    let description = orders["total"]["description"].as_str().unwrap_or_default();
    assert!(description.starts_with("Gross amount\n\n"), "{description}");
    assert_eq!(orders["created_at"]["type"], "string");
    assert!(orders["created_at"].get("format").is_none());
    assert_eq!(
        orders["tags"],
        json!({ "type": ["array", "null"], "items": { "type": ["string", "null"] } })
    );
    let events = &schema(&document, "events")["properties"];
    assert_eq!(
        events["at"],
        json!({ "type": "string", "format": "date-time" })
    );
    assert_eq!(events["payload"]["type"], json!(["string", "null"]));
    assert_eq!(
        events["score"]["anyOf"][2],
        json!({ "type": "null" }),
        "nullable floats admit null: {}",
        events["score"]
    );
}

#[test]
fn relations_to_visible_collections_only() {
    let document = build(false);
    let orders = &schema(&document, "orders")["properties"];
    assert_eq!(
        orders["customer"]["anyOf"][0]["$ref"],
        "#/components/schemas/customers"
    );
    assert!(orders.get("warehouse").is_none());
    let customers = &schema(&document, "customers")["properties"];
    assert_eq!(customers["orders"]["type"], "array");
    assert_eq!(
        customers["orders"]["items"]["$ref"],
        "#/components/schemas/orders"
    );
}

#[test]
fn inputs_have_only_writable_columns() {
    let document = build(false);
    let input = schema(&document, "orders.Input");
    let properties: BTreeSet<&str> = input["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k.as_str())
        .collect();
    assert!(!properties.contains("internal_code"));
    assert!(properties.contains("total"));
    assert_eq!(input["additionalProperties"], false);
    // Non-nullable, writable, no default: `created_at` has one.
    assert_eq!(input["required"], json!(["region", "id"]));
    let patch = schema(&document, "orders.Patch");
    assert!(patch.get("required").is_none());
    assert_eq!(patch["properties"], input["properties"]);
    assert_eq!(schema(&document, "events.Input")["required"], json!(["at"]));
}

#[test]
fn keys_and_bulk_routes() {
    let document = build(false);
    let get = &document["paths"]["/api/orders/{pk}"]["get"];
    let pk = &get["parameters"][0];
    assert_eq!(pk["name"], "pk");
    assert!(
        pk["description"]
            .as_str()
            .is_some_and(|d| d.contains("`region,id`") && d.contains("percent-encoded")),
        "{pk}"
    );
    let customer = &document["paths"]["/api/customers/{pk}"]["get"]["parameters"][0];
    assert_eq!(
        customer["schema"],
        json!({ "type": "integer", "format": "int32" })
    );
    for method in ["patch", "delete"] {
        let bulk = &document["paths"]["/api/events"][method]["parameters"][0];
        assert_eq!(bulk["$ref"], "#/components/parameters/requiredFilter");
    }
    assert_eq!(
        document["components"]["parameters"]["requiredFilter"]["required"],
        true
    );
    // Without a key, NocoBase's update can only take a filter.
    // Every write also takes `fields` and `except` for its answer and
    // `Prefer` (`return=minimal`: 204, no body); a create or update
    // NocoBase's `whitelist` and `blacklist`.
    let update = &document["paths"]["/api/events:update"]["post"];
    assert_eq!(
        update["parameters"],
        json!([
            { "$ref": "#/components/parameters/requiredFilter" },
            { "$ref": "#/components/parameters/writeFields" },
            { "$ref": "#/components/parameters/writeExcept" },
            { "$ref": "#/components/parameters/prefer" },
            { "$ref": "#/components/parameters/whitelist" },
            { "$ref": "#/components/parameters/blacklist" },
        ])
    );
    assert!(update["responses"]["204"].is_object(), "{update}");
    assert!(
        update["responses"]["200"]["headers"]["Preference-Applied"].is_object(),
        "{update}"
    );
    assert_eq!(
        document["components"]["parameters"]["writeFields"]["name"],
        "fields"
    );
    // A delete by filter answers the deleted rows, as an update by filter.
    for method in ["patch", "delete"] {
        let answer = &document["paths"]["/api/events"][method]["responses"]["200"]["content"]["application/json"]
            ["schema"];
        assert_eq!(answer["required"], json!(["data", "meta"]), "{method}");
    }
    let list = &document["paths"]["/api/orders"]["get"]["responses"]["200"]["content"];
    let media: BTreeSet<&str> = list
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(
        media,
        BTreeSet::from(["application/json", "application/x-ndjson", "text/csv"])
    );
    assert!(
        document["paths"]["/api/orders"]["post"]["responses"]
            .get("201")
            .is_some()
    );
    for status in ["400", "401", "403", "404", "429", "503"] {
        assert_eq!(
            get["responses"][status]["$ref"],
            format!("#/components/responses/{status}")
        );
    }
}

#[test]
fn admin_routes_follow_the_router() {
    // Every path the admin router serves, read from its source.
    let source = include_str!("../admin/mod.rs");
    let served: BTreeSet<&str> = source
        .split('"')
        .filter(|s| s.starts_with("/admin/"))
        .collect();
    let document = build(true);
    let documented: BTreeSet<&str> = document["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k.as_str())
        .filter(|p| p.starts_with("/admin/"))
        .collect();
    assert!(served.len() > 10);
    assert_eq!(served, documented);
    assert!(
        routes(&build(false))
            .iter()
            .all(|(_, p)| !p.starts_with("/admin"))
    );
}

#[test]
fn value_schemas() {
    use schema::{nullable, value};
    assert_eq!(
        value(&DataType::Date32),
        json!({ "type": "string", "format": "date" })
    );
    assert_eq!(value(&DataType::Boolean), json!({ "type": "boolean" }));
    assert_eq!(value(&DataType::Utf8View), json!({ "type": "string" }));
    assert_eq!(value(&DataType::UInt64)["minimum"], 0);
    assert!(value(&DataType::UInt64).get("format").is_none());
    assert_eq!(value(&DataType::Int8)["maximum"], 127);
    assert_eq!(
        value(&DataType::Time64(TimeUnit::Microsecond))["type"],
        "string"
    );
    assert!(
        value(&DataType::Time64(TimeUnit::Microsecond))
            .get("format")
            .is_none()
    );
    assert_eq!(
        value(&DataType::Date64),
        value(&DataType::Timestamp(TimeUnit::Second, None))
    );
    assert_eq!(value(&DataType::Decimal256(40, 0))["type"], "string");
    assert_eq!(value(&DataType::Float32)["anyOf"][0]["type"], "number");
    assert_eq!(
        value(&DataType::Interval(IntervalUnit::DayTime)),
        json!({ "type": "string" })
    );
    assert_eq!(
        nullable(json!({ "type": "null" }), true),
        json!({ "type": "null" })
    );
    assert_eq!(
        nullable(json!({ "type": "boolean" }), false),
        json!({ "type": "boolean" })
    );
    // No `type` and no `anyOf`: wrapped.
    assert_eq!(
        nullable(json!({ "enum": [1] }), true),
        json!({ "anyOf": [{ "enum": [1] }, { "type": "null" }] })
    );
}

#[test]
fn bad_names_are_refused() {
    let mut bad = collections();
    bad[0].api_name = "my-orders".into();
    assert_eq!(
        document(&bad, "1", false),
        Err(OpenApiError::InvalidName("my-orders".into()))
    );
    let mut bad = collections();
    bad[1].api_name = "sql".into();
    assert_eq!(
        document(&bad, "1", false),
        Err(OpenApiError::ReservedName("sql".into()))
    );
    let mut bad = collections();
    bad[1].api_name = "batch".into();
    assert_eq!(
        document(&bad, "1", false),
        Err(OpenApiError::ReservedName("batch".into()))
    );
    let mut bad = collections();
    bad[2].api_name = "orders".into();
    assert_eq!(
        document(&bad, "1", false),
        Err(OpenApiError::DuplicateName("orders".into()))
    );
    assert!(document(&[], "1", false).is_ok());
}

#[test]
fn docs_page_is_self_contained_and_escapes() {
    let Html(page) = docs_page();
    assert!(page.contains("fetch(\"/api/openapi.json\""));
    assert!(page.contains("href=\"/graphql\""));
    assert!(page.contains("\"Bearer \""));
    assert!(page.contains("localStorage"));
    for forbidden in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "<script src",
        "http://",
        "https://",
    ] {
        assert!(!page.contains(forbidden), "the page uses {forbidden}");
    }
}

/// The document against the OpenAPI 3.1 schema, by `openapi-spec-validator`
/// (`.ci/test-all` installs it from PyPI). Fails, never skips, when the
/// validator is missing.
#[test]
fn valid_openapi_by_python_validator() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("openapi.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&build(true)).unwrap()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openapi_validate.py");
    let output = std::process::Command::new("python3")
        .arg(script)
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// What `results` sends for each Arrow type validates against that type's
/// schema (patterns and formats checked by Python's `jsonschema`, which
/// `openapi-spec-validator` depends on).
#[test]
fn results_output_matches_value_schemas() {
    use datafusion::arrow::array::{
        ArrayRef, BinaryArray, BooleanArray, Date32Array, Date64Array, Decimal128Array,
        FixedSizeBinaryArray, Float64Array, Int8Array, Int64Array, ListArray, StringArray,
        Time32SecondArray, Time64MicrosecondArray, TimestampMicrosecondArray, UInt64Array,
    };
    use datafusion::arrow::datatypes::Int32Type;

    let arrays: Vec<ArrayRef> = vec![
        Arc::new(
            Decimal128Array::from(vec![Some(12_345), Some(-50), Some(0), None])
                .with_precision_and_scale(10, 2)
                .unwrap(),
        ),
        Arc::new(
            Decimal128Array::from(vec![Some(300), Some(-7)])
                .with_precision_and_scale(38, 0)
                .unwrap(),
        ),
        Arc::new(TimestampMicrosecondArray::from(vec![
            Some(0),
            Some(1_500_000),
            Some(1_000_001),
            None,
        ])),
        Arc::new(TimestampMicrosecondArray::from(vec![0, 1_500_000]).with_timezone("+02:00")),
        Arc::new(TimestampMicrosecondArray::from(vec![0, 1_000_001]).with_timezone("UTC")),
        Arc::new(Date32Array::from(vec![Some(0), Some(19_000), None])),
        Arc::new(Date64Array::from(vec![0, 86_400_000, 86_400_123])),
        Arc::new(Time64MicrosecondArray::from(vec![0, 3_600_000_123])),
        Arc::new(Time32SecondArray::from(vec![0, 86_399])),
        Arc::new(BinaryArray::from(vec![
            Some(&[0xde_u8, 0xad][..]),
            Some(&[][..]),
            None,
        ])),
        Arc::new(FixedSizeBinaryArray::try_from_iter(vec![vec![1_u8, 0xff]].into_iter()).unwrap()),
        Arc::new(Float64Array::from(vec![
            Some(1.5),
            Some(f64::NAN),
            Some(f64::INFINITY),
            Some(f64::NEG_INFINITY),
            None,
        ])),
        Arc::new(Int64Array::from(vec![Some(i64::MIN), None])),
        Arc::new(Int8Array::from(vec![i8::MIN, i8::MAX])),
        Arc::new(UInt64Array::from(vec![u64::MAX])),
        Arc::new(BooleanArray::from(vec![Some(true), None])),
        Arc::new(StringArray::from(vec![Some("Zoë"), None])),
        Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), None]),
            None,
        ])),
    ];
    let mut pairs = Vec::new();
    for array in &arrays {
        let field_schema = schema::nullable(schema::value(array.data_type()), true);
        for instance in crate::results::column_values(array) {
            pairs.push(json!({
                "type": array.data_type().to_string(),
                "schema": field_schema,
                "instance": instance,
            }));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("instances.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&pairs).unwrap()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openapi_validate.py");
    let output = std::process::Command::new("python3")
        .arg(script)
        .arg("--instances")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
