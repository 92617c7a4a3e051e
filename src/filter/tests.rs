//! Tests of filter compilation: operators, variables, dates and arrays.

use super::*;
use serde_json::json;

fn vars() -> Variables {
    Variables {
        user_id: Some("42".into()),
        role: "customer".into(),
        claims: json!({"org": {"id": 7}, "tier": "gold"}),
        now: "2026-11-30T12:00:00Z".into(),
    }
}

#[test]
fn placeholders_keep_their_type_or_are_written_into_text() {
    let v = vars();
    assert_eq!(substitute(&json!("{{$user.id}}"), Some(&v)), json!("42"));
    assert_eq!(
        substitute(&json!("{{ $user.claims.org.id }}"), Some(&v)),
        json!(7)
    );
    assert_eq!(
        substitute(
            &json!("tier-{{$user.claims.tier}}-{{$user.role}}"),
            Some(&v)
        ),
        json!("tier-gold-customer")
    );
    assert_eq!(
        substitute(&json!("{{$user.claims.missing}}"), Some(&v)),
        Value::Null
    );
    assert_eq!(substitute(&json!("{{$user.id}}"), None), Value::Null);
    assert_eq!(substitute(&json!(5), Some(&v)), json!(5));
}

#[test]
fn unknown_variables_are_named() {
    assert!(check_variables(&json!({"a": {"$eq": "{{$user.id}}"}}), "").is_ok());
    let err = check_variables(&json!({"a": {"$eq": "{{$user.name}}"}}), "").unwrap_err();
    assert_eq!(err.path, "a.$eq");
    assert!(err.message.contains("$user.name"), "{err}");
    assert!(check_variables(&json!(["{{$now"]), "x").is_err());
}

#[test]
fn like_wildcards_in_values_are_escaped() {
    assert_eq!(escape_like(r"50%_off\"), r"50\%\_off\\");
}

// ---- Date and array operators, evaluated over an in-memory table ----

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate};
use datafusion::arrow::array::{
    Array, ArrayRef, Date32Array, Int64Array, LargeListArray, ListBuilder, StringBuilder,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{Field, Int64Type, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use tributary_schema_cache::{
    ColumnDef, SchemaDef, SourceEntry, SourceKind, SourceSchema, SourceStatus, TableKind,
};

fn events_ref() -> TableRef {
    TableRef::new("s", "public", "events")
}

fn text_list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

fn number_list() -> DataType {
    DataType::LargeList(Arc::new(Field::new("item", DataType::Int64, true)))
}

fn utc_timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// `events`: a date, a timestamptz (`at`), a plain timestamp (`wall`), a
/// text array, a number array and a text column.
fn events() -> TableDef {
    let column = |name: &str, data_type: DataType| ColumnDef {
        name: name.into(),
        ordinal: 1,
        native_type: String::new(),
        data_type,
        nullable: name != "id",
        default: None,
        generated: None,
        comment: None,
        unsupported_type: None,
    };
    TableDef {
        name: "events".into(),
        kind: TableKind::Table,
        comment: None,
        columns: vec![
            column("id", DataType::Int64),
            column("day", DataType::Date32),
            column("at", utc_timestamp()),
            column("wall", DataType::Timestamp(TimeUnit::Microsecond, None)),
            column("tags", text_list()),
            column("nums", number_list()),
            column("name", DataType::Utf8),
        ],
        primary_key: None,
        unique_constraints: vec![],
        foreign_keys: vec![],
        indexes: vec![],
        check_constraints: vec![],
        row_estimate: None,
        drift_fingerprint: String::new(),
    }
}

fn snapshot() -> CatalogSnapshot {
    let model = SourceSchema {
        source: "s".into(),
        kind: SourceKind::Postgres,
        server_version: String::new(),
        default_schema: Some("public".into()),
        schemas: BTreeMap::from([(
            "public".to_string(),
            SchemaDef {
                name: "public".into(),
                tables: BTreeMap::from([("events".to_string(), events())]),
            },
        )]),
        introspected_at: DateTime::UNIX_EPOCH,
    };
    let mut snapshot = CatalogSnapshot::default();
    snapshot.sources.insert(
        "s".into(),
        SourceEntry {
            name: "s".into(),
            kind: SourceKind::Postgres,
            status: SourceStatus::Unchecked,
            schema: Some(Arc::new(model)),
        },
    );
    snapshot
}

fn micros(text: &str) -> i64 {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .timestamp_micros()
}

fn days(text: &str) -> i32 {
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap();
    i32::try_from(
        date.signed_duration_since(NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
            .num_days(),
    )
    .unwrap()
}

/// Five rows around May 2024; `at` and `wall` hold the same clock reading
/// (as UTC instants and as wall-clock times), row 5 is all NULL.
fn rows() -> RecordBatch {
    let stamps = [
        Some("2024-04-30T23:59:59.999999Z"),
        Some("2024-05-01T00:00:00Z"),
        Some("2024-05-31T23:00:00Z"),
        Some("2024-06-01T00:00:00Z"),
        None,
    ];
    let day = Date32Array::from(
        ["2024-04-30", "2024-05-01", "2024-05-31", "2024-06-01"]
            .iter()
            .map(|d| Some(days(d)))
            .chain([None])
            .collect::<Vec<_>>(),
    );
    let instants: Vec<Option<i64>> = stamps.iter().map(|s| s.map(micros)).collect();
    let at = TimestampMicrosecondArray::from(instants.clone()).with_timezone("UTC");
    let wall = TimestampMicrosecondArray::from(instants);
    let mut tags = ListBuilder::new(StringBuilder::new());
    for row in [
        Some(vec!["a", "b"]),
        Some(vec!["b", "a"]),
        Some(vec!["c"]),
        Some(vec![]),
        None,
    ] {
        match row {
            Some(items) => {
                for item in items {
                    tags.values().append_value(item);
                }
                tags.append(true);
            }
            None => tags.append(false),
        }
    }
    let nums = LargeListArray::from_iter_primitive::<Int64Type, _, _>(vec![
        Some(vec![Some(1), Some(2)]),
        Some(vec![Some(3)]),
        Some(vec![]),
        Some(vec![Some(2), Some(2)]),
        None,
    ]);
    let name = datafusion::arrow::array::StringArray::from(vec![
        Some("Ann"),
        Some("ann lee"),
        Some("Bob"),
        Some("x"),
        None,
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5])),
        Arc::new(day),
        Arc::new(at),
        Arc::new(wall),
        Arc::new(tags.finish()),
        Arc::new(nums),
        Arc::new(name),
    ];
    RecordBatch::try_new(crate::engine::table_schema(&events()), columns).unwrap()
}

fn compile_events(
    filter: &Value,
    zone: Option<&str>,
    variables: Option<&Variables>,
) -> Result<Expr, FilterError> {
    let snapshot = snapshot();
    let providers = |_: &TableRef| -> Option<Arc<dyn TableProvider>> { None };
    let cx = Context {
        snapshot: &snapshot,
        providers: &providers,
        variables,
        time_zone: zone.map(|z| z.parse().unwrap()),
    };
    compile(filter, &events_ref(), &TableReference::bare("events"), &cx)
}

/// The ids of the rows `filter` keeps, read in `zone`, with `vars()`.
async fn ids_in(filter: Value, zone: Option<&str>) -> Vec<i64> {
    let v = vars();
    let expr = compile_events(&filter, zone, Some(&v)).unwrap();
    let ctx = SessionContext::new();
    let batch = rows();
    let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).unwrap();
    ctx.register_table("events", Arc::new(table)).unwrap();
    let batches = ctx
        .table("events")
        .await
        .unwrap()
        .filter(expr)
        .unwrap()
        .select_columns(&["id"])
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut ids: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            (0..ids.len()).map(|i| ids.value(i)).collect::<Vec<_>>()
        })
        .collect();
    ids.sort_unstable();
    ids
}

async fn ids(filter: Value) -> Vec<i64> {
    ids_in(filter, None).await
}

fn error(filter: Value) -> FilterError {
    compile_events(&filter, None, Some(&vars())).unwrap_err()
}

#[tokio::test]
async fn not_negates_a_filter_as_sql_does() {
    assert_eq!(
        ids(json!({"$not": {"day": {"$gte": "2024-05-31"}}})).await,
        [1, 2]
    );
    // Row 5's NULL day is unknown to the inner filter and to its negation.
    assert_eq!(
        ids(json!({"$not": {"day": {"$lt": "2024-05-01"}}})).await,
        [2, 3, 4]
    );
    assert_eq!(
        ids(json!({"$not": {"$or": [{"id": 1}, {"id": 2}]}, "id": {"$lt": 4}})).await,
        [3]
    );
    assert_eq!(error(json!({"$not": [1]})).path, "$not");
}

#[tokio::test]
async fn date_on_a_month_covers_the_whole_month_on_every_date_type() {
    for column in ["day", "at", "wall"] {
        assert_eq!(
            ids(json!({ column: {"$dateOn": "2024-05"} })).await,
            [2, 3],
            "{column}"
        );
        assert_eq!(
            ids(json!({ column: {"$dateBetween": ["2024-05-01", "2024-05-31"]} })).await,
            [2, 3],
            "{column}"
        );
        assert_eq!(
            ids(json!({ column: {"$dateOn": "2024"} })).await,
            [1, 2, 3, 4]
        );
    }
}

#[tokio::test]
async fn each_date_operator_compares_with_the_right_end_of_the_period() {
    let day = |op: &str, value: &str| json!({"day": {op: value}});
    assert_eq!(ids(day("$dateBefore", "2024-05-01")).await, [1]);
    assert_eq!(ids(day("$dateNotBefore", "2024-05-01")).await, [2, 3, 4]);
    assert_eq!(ids(day("$dateAfter", "2024-05-31")).await, [4]);
    assert_eq!(ids(day("$dateNotAfter", "2024-05-31")).await, [1, 2, 3]);
    assert_eq!(ids(day("$dateOn", "2024-05-01")).await, [2]);
    // As NocoBase's, $dateNotOn leaves out rows without a date.
    assert_eq!(ids(day("$dateNotOn", "2024-05-01")).await, [1, 3, 4]);
    assert_eq!(ids(day("$dateNotOn", "2024-05")).await, [1, 4]);
    // An hour and a second: a period on a timestamp ends where the next begins.
    assert_eq!(ids(json!({"at": {"$dateOn": "2024-04-30T23"}})).await, [1]);
    assert_eq!(
        ids(json!({"at": {"$dateAfter": "2024-04-30T23:59:59"}})).await,
        [2, 3, 4]
    );
}

#[tokio::test]
async fn date_operators_become_plain_comparisons_with_literals_of_the_column_type() {
    let expr = compile_events(&json!({"day": {"$dateOn": "2024-05"}}), None, None).unwrap();
    assert_eq!(
        expr.to_string(),
        "events.day >= Date32(\"2024-05-01\") AND events.day < Date32(\"2024-06-01\")"
    );
    let expr = compile_events(&json!({"at": {"$dateBefore": "2024-05-01"}}), None, None).unwrap();
    assert_eq!(
        expr.to_string(),
        format!(
            "events.at < TimestampMicrosecond({}, Some(\"UTC\"))",
            micros("2024-05-01T00:00:00Z")
        )
    );
}

#[tokio::test]
async fn periods_are_read_in_the_configured_time_zone() {
    // May in Berlin (CEST, +02:00) is 2024-04-30T22:00Z .. 2024-05-31T22:00Z:
    // row 1 (23:59:59Z on 30 April) is in it, row 3 (23:00Z on 31 May) is not.
    let may = json!({"at": {"$dateOn": "2024-05"}});
    assert_eq!(ids_in(may.clone(), Some("Europe/Berlin")).await, [1, 2]);
    assert_eq!(ids_in(may, Some("+02:00")).await, [1, 2]);
    // Wall-clock timestamps and dates are compared as written.
    for column in ["wall", "day"] {
        assert_eq!(
            ids_in(
                json!({ column: {"$dateOn": "2024-05"} }),
                Some("Europe/Berlin")
            )
            .await,
            [2, 3],
            "{column}"
        );
    }
    // A value's own offset wins over the configured zone.
    assert_eq!(
        ids_in(
            json!({"at": {"$dateOn": "2024-05-01+02:00"}}),
            Some("-05:00")
        )
        .await,
        [1, 2]
    );
}

#[tokio::test]
async fn instants_compare_as_points() {
    let at = |op: &str, value: &str| json!({"at": {op: value}});
    assert_eq!(ids(at("$dateOn", "2024-05-01T00:00:00Z")).await, [2]);
    assert_eq!(
        ids(at("$dateNotOn", "2024-05-01T00:00:00Z")).await,
        [1, 3, 4]
    );
    assert_eq!(ids(at("$dateAfter", "2024-05-01T00:00:00Z")).await, [3, 4]);
    assert_eq!(
        ids(at("$dateNotAfter", "2024-05-01T00:00:00Z")).await,
        [1, 2]
    );
    assert_eq!(ids(at("$dateBefore", "2024-05-01T00:00:00Z")).await, [1]);
    assert_eq!(
        ids(at("$dateNotBefore", "2024-05-01T00:00:00Z")).await,
        [2, 3, 4]
    );
    // Between two instants includes both.
    assert_eq!(
        ids(json!({"at": {"$dateBetween": ["2024-05-01T00:00:00Z", "2024-06-01T00:00:00Z"]}}))
            .await,
        [2, 3, 4]
    );
    // A date stands for the instant its day begins: it is "on" midnight,
    // not on a later instant of its day, and before any instant that day.
    assert_eq!(
        ids(json!({"day": {"$dateOn": "2024-05-01T00:00:00Z"}})).await,
        [2]
    );
    assert!(
        ids(json!({"day": {"$dateOn": "2024-05-31T12:00:00Z"}}))
            .await
            .is_empty()
    );
    assert_eq!(
        ids(json!({"day": {"$dateBefore": "2024-05-31T12:00:00Z"}})).await,
        [1, 2, 3]
    );
    assert_eq!(
        ids(json!({"day": {"$dateAfter": "2024-05-31T12:00:00Z"}})).await,
        [4]
    );
    // Plain timestamps are wall-clock times in the configured zone.
    assert_eq!(
        ids_in(
            json!({"wall": {"$dateOn": "2024-05-01T00:00:00Z"}}),
            Some("+01:00")
        )
        .await,
        Vec::<i64>::new()
    );
    assert_eq!(
        ids_in(
            json!({"wall": {"$dateOn": "2024-04-30T23:00:00Z"}}),
            Some("+01:00")
        )
        .await,
        [2]
    );
}

#[tokio::test]
async fn now_and_missing_variables() {
    // vars().now is 2026-11-30T12:00:00Z: every row is before it.
    assert_eq!(
        ids(json!({"at": {"$dateBefore": "{{$now}}"}})).await,
        [1, 2, 3, 4]
    );
    assert!(
        ids(json!({"day": {"$dateAfter": "{{$now}}"}}))
            .await
            .is_empty()
    );
    // A claim the caller lacks matches nothing, alone or in a range.
    assert!(
        ids(json!({"day": {"$dateNotOn": "{{$user.claims.since}}"}}))
            .await
            .is_empty()
    );
    assert!(
        ids(json!({"day": {"$dateBetween": ["{{$user.claims.since}}", "2030-01-01"]}}))
            .await
            .is_empty()
    );
    // The same filters check without a request.
    for filter in [
        json!({"day": {"$dateBefore": "{{$now}}"}}),
        json!({"day": {"$dateBetween": ["{{$user.claims.since}}", "2030"]}}),
    ] {
        assert!(compile_events(&filter, None, None).is_ok(), "{filter}");
    }
}

#[test]
fn values_that_are_not_dates_are_refused_with_their_path() {
    let err = error(json!({"day": {"$dateOn": "2024-13"}}));
    assert_eq!(err.path, "day.$dateOn");
    assert!(err.message.contains("`2024-13` is not a date"), "{err}");
    for bad in [
        json!({"day": {"$dateOn": "yesterday"}}),
        json!({"day": {"$dateOn": "2024-5-1"}}),
        json!({"day": {"$dateOn": "2024-05T10"}}),
        json!({"day": {"$dateOn": 2024}}),
        json!({"day": {"$dateOn": null}}),
        json!({"day": {"$dateBetween": "2024"}}),
        json!({"day": {"$dateBetween": ["2024"]}}),
        json!({"day": {"$dateBetween": ["2024", "2025", "2026"]}}),
    ] {
        let err = compile_events(&bad, None, Some(&vars())).unwrap_err();
        assert_eq!(
            err.path,
            "day.".to_string() + bad["day"].as_object().unwrap().keys().next().unwrap(),
            "{bad}"
        );
    }
    let err = error(json!({"name": {"$dateOn": "2024"}}));
    assert!(err.message.contains("date or timestamp column"), "{err}");
}

#[test]
fn partial_dates_name_their_periods() {
    let utc = |text: &str| {
        let r = date::range(&json!(text), &Utc).unwrap();
        (r.start.to_rfc3339(), r.end.to_rfc3339(), r.closed)
    };
    let span = |a: &str, b: &str| (a.to_string(), b.to_string(), false);
    assert_eq!(
        utc("2024Q4"),
        span("2024-10-01T00:00:00+00:00", "2025-01-01T00:00:00+00:00")
    );
    // ISO week 1 of 2025 starts on Monday 30 December 2024.
    assert_eq!(
        utc("2025W01"),
        span("2024-12-30T00:00:00+00:00", "2025-01-06T00:00:00+00:00")
    );
    assert_eq!(
        utc("2024-02"),
        span("2024-02-01T00:00:00+00:00", "2024-03-01T00:00:00+00:00")
    );
    assert_eq!(
        utc("2024-05-01 10:30"),
        span("2024-05-01T10:30:00+00:00", "2024-05-01T10:31:00+00:00")
    );
    assert_eq!(
        utc("2024-05-01T10:30:15.25"),
        span(
            "2024-05-01T10:30:15.250+00:00",
            "2024-05-01T10:30:15.260+00:00"
        )
    );
    assert_eq!(
        utc("2024-05-01T10:30:15.123456Z"),
        (
            "2024-05-01T10:30:15.123456+00:00".to_string(),
            "2024-05-01T10:30:15.123456+00:00".to_string(),
            true
        )
    );
    // A day with a DST change is 23 hours long in New York.
    let zone: Tz = "America/New_York".parse().unwrap();
    let r = date::range(&json!("2024-03-10"), &zone).unwrap();
    assert_eq!(r.start.to_rfc3339(), "2024-03-10T05:00:00+00:00");
    assert_eq!(r.end.to_rfc3339(), "2024-03-11T04:00:00+00:00");
    // An hour the clocks skip starts when they jump.
    let r = date::range(&json!("2024-03-10T02"), &zone).unwrap();
    assert_eq!(r.start.to_rfc3339(), "2024-03-10T07:00:00+00:00");
}

#[tokio::test]
async fn array_operators_compare_element_sets() {
    // tags: 1 [a, b], 2 [b, a], 3 [c], 4 [], 5 NULL
    assert_eq!(ids(json!({"tags": {"$match": ["a", "b"]}})).await, [1, 2]);
    assert_eq!(ids(json!({"tags": {"$match": []}})).await, [4]);
    assert_eq!(
        ids(json!({"tags": {"$notMatch": ["b", "a"]}})).await,
        [3, 4]
    );
    assert_eq!(
        ids(json!({"tags": {"$anyOf": ["a", "c"]}})).await,
        [1, 2, 3]
    );
    assert_eq!(ids(json!({"tags": {"$anyOf": "c"}})).await, [3]);
    assert!(ids(json!({"tags": {"$anyOf": []}})).await.is_empty());
    // $noneOf keeps rows without an array, as NocoBase does.
    assert_eq!(ids(json!({"tags": {"$noneOf": ["a"]}})).await, [3, 4, 5]);
    // nums (LargeList): 1 [1, 2], 2 [3], 3 [], 4 [2, 2], 5 NULL; values are
    // cast to the element type.
    assert_eq!(ids(json!({"nums": {"$anyOf": [2, "3"]}})).await, [1, 2, 4]);
    assert_eq!(ids(json!({"nums": {"$match": [2]}})).await, [4]);
    assert_eq!(ids(json!({"nums": {"$noneOf": [2]}})).await, [2, 3, 5]);
    // A claim that is an array is a list of values; a missing one matches nothing.
    assert!(
        ids(json!({"tags": {"$noneOf": "{{$user.claims.groups}}"}}))
            .await
            .is_empty()
    );
    assert!(
        ids(json!({"tags": {"$anyOf": ["a", "{{$user.claims.groups}}"]}}))
            .await
            .is_empty()
    );
}

#[test]
fn array_operators_need_a_list_column() {
    let err = error(json!({"name": {"$anyOf": ["a"]}}));
    assert_eq!(err.path, "name.$anyOf");
    assert!(err.message.contains("needs an array column"), "{err}");
    assert!(err.message.contains("JSON holding an array"), "{err}");
    let err = error(json!({"nums": {"$anyOf": ["two"]}}));
    assert_eq!(err.path, "nums.$anyOf[0]");
}

/// PostgreSQL's `~ ~* !~ !~*`: a NULL matches neither way; a pattern that
/// is no regular expression is refused with its path.
#[tokio::test]
async fn regular_expressions_match_as_postgresql_does() {
    assert_eq!(ids(json!({"name": {"$regex": "^[A-Z]"}})).await, vec![1, 3]);
    assert_eq!(ids(json!({"name": {"$iRegex": "^an+"}})).await, vec![1, 2]);
    assert_eq!(ids(json!({"name": {"$notRegex": "n"}})).await, vec![3, 4]);
    assert_eq!(ids(json!({"name": {"$notIRegex": "^a"}})).await, vec![3, 4]);
    let err = error(json!({"name": {"$regex": "(a"}}));
    assert_eq!(err.path, "name.$regex");
    assert!(err.message.contains("not a regular expression"), "{err}");
    let err = error(json!({"id": {"$iRegex": "1"}}));
    assert!(err.message.contains("needs a text column"), "{err}");
}
