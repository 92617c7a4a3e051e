//! `query()` round trips of every type: values written through the write
//! path (bound `Value`s) and stored by other programs in SQLite's other
//! representations come back exactly, with and without the catalog's
//! schema; values that do not fit their declared type become NULL.

mod common;

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, NaiveDate, NaiveTime};
use common::TestDb;
use tributary_connector::testkit::batch_to_strings;
use tributary_connector::{
    BATCH_ROWS, Connector, ErrorKind, Insert, Statement, Value, WriteOp, WriteTarget,
};

const TABLE: &str = "
CREATE TABLE t (
    id INTEGER PRIMARY KEY,
    i BIGINT, b BOOLEAN, f REAL, d DECIMAL(12,2), n NUMERIC, s VARCHAR(20), u UUID, j JSON,
    bl BLOB, dt DATE, ts DATETIME, tm TIME, anything, odd MONEY
);";

/// The columns after `id`, in order.
const COLUMNS: [&str; 14] = [
    "i", "b", "f", "d", "n", "s", "u", "j", "bl", "dt", "ts", "tm", "anything", "odd",
];

fn cells(row: &[&str]) -> Vec<Option<String>> {
    row.iter()
        .map(|c| (*c != "NULL").then(|| (*c).to_string()))
        .collect()
}

#[tokio::test]
async fn every_type_round_trips() {
    let db = TestDb::new(TABLE);
    let connector = db.connector();
    let model = connector.introspect().await.unwrap();
    let table = model.table("main", "t").unwrap().clone();

    // Row 1 through the write path, with typed values; row 2 all NULL.
    let typed = vec![
        Value::Int(i64::MIN),
        Value::Bool(true),
        Value::Float(0.1),
        Value::Decimal("-1234567890.05".into()),
        Value::Decimal("3.14159265358979".into()),
        Value::Text("Zoë 🚀 'quoted'".into()),
        Value::Uuid("0b7e9a3e-5b0c-4a8e-9a51-1c4e1b0c2d3f".into()),
        Value::Json(serde_json::json!({"a": [1, 2], "b": null})),
        Value::Bytes(vec![0, 1, 254, 255]),
        Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()),
        Value::TimestampTz(
            DateTime::parse_from_rfc3339("2024-05-01T12:34:56.123456+02:00")
                .unwrap()
                .to_utc(),
        ),
        Value::Time(NaiveTime::from_hms_micro_opt(23, 59, 58, 999_999).unwrap()),
        Value::Text("free".into()),
        Value::Text("12.5 EUR".into()),
    ];
    let mut tx = connector.begin().await.unwrap();
    let outcome = tx
        .execute(&WriteOp::Insert(Insert {
            target: WriteTarget {
                schema: "main".into(),
                table: table.clone().into(),
            },
            columns: COLUMNS.iter().map(ToString::to_string).collect(),
            rows: vec![typed, vec![Value::Null; COLUMNS.len()]],
            returning: vec!["id".into(), "d".into(), "ts".into()],
        }))
        .await
        .unwrap();
    assert_eq!(outcome.affected_rows, 2);
    assert_eq!(
        batch_to_strings(&outcome.returning.unwrap())[0],
        cells(&["1", "-1234567890.05", "2024-05-01T10:34:56.123456"])
    );
    tx.commit().await.unwrap();

    // Rows 3-4 written by another program: SQLite's other representations, then mismatches.
    db.raw()
        .execute_batch(
            "INSERT INTO t VALUES (3, '42', 'yes', '2.5', 7, 1.5, 123, 'u', '[]', 'text in a blob',
                                   '2024-01-02 00:00:00', 1714566896, '07:08', x'cafe', 10);
             INSERT INTO t VALUES (4, 'abc', 'maybe', 'NaN?', 'lots', 'n/a', x'00ff', NULL, NULL, NULL,
                                   'not a date', 2460432.024268391, 'noon', 1.25, NULL);",
        )
        .unwrap();

    let expected = vec![
        cells(&[
            "1",
            "-9223372036854775808",
            "true",
            "0.1",
            "-1234567890.05",
            "3.14159265358979",
            "Zoë 🚀 'quoted'",
            "0b7e9a3e-5b0c-4a8e-9a51-1c4e1b0c2d3f",
            r#"{"a":[1,2],"b":null}"#,
            "0001feff",
            "2024-02-29",
            "2024-05-01T10:34:56.123456",
            "23:59:58.999999",
            "free",
            "12.5 EUR",
        ]),
        cells(&[
            "2", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL",
            "NULL", "NULL", "NULL", "NULL",
        ]),
        cells(&[
            "3",
            "42",
            "true",
            "2.5",
            "7.00",
            "1.5",
            "123",
            "u",
            "[]",
            "7465787420696e206120626c6f62",
            "2024-01-02",
            "2024-05-01T12:34:56",
            "07:08:00",
            "\\xcafe",
            "10",
        ]),
        // 'abc' in BIGINT, 'maybe' in BOOLEAN, 'NaN?' in REAL, 'lots' in DECIMAL,
        // 'not a date' in DATE, 'noon' in TIME: NULL. Julian day reals are timestamps.
        cells(&[
            "4",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
            "n/a",
            "\\x00ff",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
            "2024-05-01T12:34:56.789",
            "NULL",
            "1.25",
            "NULL",
        ]),
    ];

    let sql = Statement::new("SELECT * FROM t ORDER BY id");
    let derived = connector
        .query(&sql, None)
        .await
        .unwrap()
        .collect_one()
        .await
        .unwrap();
    assert_eq!(batch_to_strings(&derived), expected);
    let types: Vec<DataType> = derived
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    let catalog: Vec<DataType> = table.columns.iter().map(|c| c.data_type.clone()).collect();
    assert_eq!(
        types, catalog,
        "query() without a schema agrees with introspection"
    );
    assert_eq!(types[4], DataType::Decimal128(12, 2));
    assert_eq!(types[11], DataType::Timestamp(TimeUnit::Microsecond, None));

    let schema = Arc::new(Schema::new(
        table
            .columns
            .iter()
            .map(|c| Field::new(&c.name, c.data_type.clone(), c.nullable))
            .collect::<Vec<_>>(),
    ));
    let given = connector.query(&sql, Some(schema.clone())).await.unwrap();
    assert_eq!(given.schema(), &schema);
    assert_eq!(
        batch_to_strings(&given.collect_one().await.unwrap()),
        expected
    );

    // Bound parameters of each kind find their rows.
    for (column, value, id) in [
        (
            "dt",
            Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()),
            "1",
        ),
        ("d", Value::Decimal("7.00".into()), "3"),
        ("bl", Value::Bytes(vec![0, 1, 254, 255]), "1"),
        ("b", Value::Bool(true), "1"),
        ("s", Value::Text("Zoë 🚀 'quoted'".into()), "1"),
    ] {
        let statement = Statement::with_params(
            format!("SELECT id FROM t WHERE \"{column}\" = ?1"),
            vec![value],
        );
        let batch = connector
            .query(&statement, None)
            .await
            .unwrap()
            .collect_one()
            .await
            .unwrap();
        assert_eq!(
            batch_to_strings(&batch),
            vec![vec![Some(id.to_string())]],
            "{column}"
        );
    }
}

#[tokio::test]
async fn expression_columns_take_the_first_value_type() {
    let db = TestDb::new("CREATE TABLE t (a INT)");
    let connector = db.connector();
    let sql = Statement::new(
        "SELECT 1 AS one, 1.5 AS half, 'x' AS txt, x'00' AS bin, NULL AS nil, count(*) AS n FROM t",
    );
    let batch = connector
        .query(&sql, None)
        .await
        .unwrap()
        .collect_one()
        .await
        .unwrap();
    let types: Vec<DataType> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    assert_eq!(
        types,
        vec![
            DataType::Int64,
            DataType::Float64,
            DataType::Utf8,
            DataType::Binary,
            DataType::Utf8,
            DataType::Int64
        ]
    );
    assert_eq!(
        batch_to_strings(&batch),
        vec![cells(&["1", "1.5", "x", "00", "NULL", "0"])]
    );
}

#[tokio::test]
async fn a_mismatch_in_a_not_null_column_is_an_error_not_a_crash() {
    let db = TestDb::new("CREATE TABLE t (n INTEGER NOT NULL); INSERT INTO t VALUES (1), ('abc');");
    let connector = db.connector();
    let model = connector.introspect().await.unwrap();
    let column = &model.table("main", "t").unwrap().columns[0];
    let schema = Arc::new(Schema::new(vec![Field::new(
        "n",
        column.data_type.clone(),
        column.nullable,
    )]));
    let err = connector
        .query(
            &Statement::new("SELECT n FROM t ORDER BY rowid"),
            Some(schema),
        )
        .await
        .unwrap()
        .collect_one()
        .await
        .unwrap_err();
    assert_eq!(err.source_name(), Some("lite"));
    assert!(
        err.message().contains("`n`") && err.message().contains("NOT NULL"),
        "{err}"
    );
    // Without the catalog schema every column is nullable: the cell is NULL.
    let batch = connector
        .query(&Statement::new("SELECT n FROM t ORDER BY rowid"), None)
        .await
        .unwrap();
    assert_eq!(
        batch_to_strings(&batch.collect_one().await.unwrap()),
        vec![cells(&["1"]), cells(&["NULL"])]
    );
}

#[tokio::test]
async fn large_results_stream_in_batches() {
    let db = TestDb::new("CREATE TABLE t (a INT)");
    let connector = db.connector();
    let total = BATCH_ROWS * 2 + 100;
    let sql = Statement::with_params(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?1) SELECT x, 'row ' || x FROM c",
        vec![Value::Int(i64::try_from(total).unwrap())],
    );
    let batches = connector
        .query(&sql, None)
        .await
        .unwrap()
        .collect_batches()
        .await
        .unwrap();
    let sizes: Vec<usize> = batches.iter().map(|b| b.num_rows()).collect();
    assert_eq!(sizes, vec![BATCH_ROWS, BATCH_ROWS, 100]);

    // Dropping a stream early releases its connection.
    let stream = connector.query(&sql, None).await.unwrap();
    drop(stream);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let status = connector.pool_status();
    assert_eq!(status.idle, status.size, "{status:?}");
}

#[tokio::test]
async fn query_refuses_writes_and_wrong_inputs() {
    let db = TestDb::new("CREATE TABLE t (a INT)");
    let connector = db.connector();
    for (sql, params, kind) in [
        ("DELETE FROM t", vec![], ErrorKind::InvalidInput),
        ("BEGIN", vec![], ErrorKind::InvalidInput),
        ("SELECT 1; DELETE FROM t", vec![], ErrorKind::InvalidInput),
        ("SELECT * FROM missing", vec![], ErrorKind::NotFound),
        ("SELECT nope FROM t", vec![], ErrorKind::NotFound),
        ("SELEKT 1", vec![], ErrorKind::InvalidInput),
        (
            "SELECT ?1, ?2",
            vec![Value::Int(1)],
            ErrorKind::InvalidInput,
        ),
        (
            "SELECT ?1",
            vec![Value::List(vec![])],
            ErrorKind::Unsupported,
        ),
    ] {
        let err = connector
            .query(&Statement::with_params(sql, params), None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), kind, "{sql}: {err}");
        assert_eq!(err.source_name(), Some("lite"), "{sql}");
    }
    let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
    let err = connector
        .query(&Statement::new("SELECT 1, 2"), Some(schema))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
}
