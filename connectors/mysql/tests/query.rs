//! Reads: every type round-trips exactly (with and without the catalog's
//! schema), zero dates and out-of-day TIME values behave as documented,
//! parameters of every kind bind, large results stream in batches, and a
//! read given up before its end stops at the server.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod common;

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};
use chrono::{DateTime, NaiveDate, Utc};
use common::{TestDb, batch_to_strings};
use futures::StreamExt;
use tributary_connector::{BATCH_ROWS, Connector, ErrorKind, Statement, Value};
use tributary_connector_mysql::MySqlConnector;

const TYPES: &str = "CREATE TABLE all_types (
    id INT NOT NULL PRIMARY KEY,
    t_tinyint TINYINT, t_tinyint_u TINYINT UNSIGNED, t_bool BOOL,
    t_smallint SMALLINT, t_smallint_u SMALLINT UNSIGNED,
    t_mediumint MEDIUMINT, t_mediumint_u MEDIUMINT UNSIGNED,
    t_int INT, t_int_u INT UNSIGNED, t_bigint BIGINT, t_bigint_u BIGINT UNSIGNED,
    t_decimal DECIMAL(12,2), t_decimal_wide DECIMAL(65,30),
    t_float FLOAT, t_double DOUBLE, t_bit1 BIT(1), t_bit BIT(12), t_year YEAR,
    t_date DATE, t_time TIME(6), t_datetime DATETIME(6), t_timestamp TIMESTAMP(6) NULL,
    t_char CHAR(3), t_varchar VARCHAR(80), t_text TEXT,
    t_binary BINARY(4), t_varbinary VARBINARY(16), t_blob BLOB,
    t_enum ENUM('a','b'), t_set SET('x','y','z'), t_json JSON, t_point POINT
)";

const ROWS: &[&str] = &[
    // Timestamps are written in +02:00 and must read back in UTC.
    "SET time_zone = '+02:00'",
    "INSERT INTO all_types VALUES (1,
        -128, 255, 1, -32768, 65535, -8388608, 16777215,
        -2147483648, 4294967295, -9223372036854775808, 18446744073709551615,
        1234567890.12, 12345678901234567890123456789012345.123456789012345678901234567890,
        1.5, 3.141592653589793, b'1', b'101010101010', 2024,
        '2024-02-29', '23:59:59.999999', '2024-05-01 12:34:56.123456', '2024-05-01 12:00:00.5',
        'abc', 'Zoë 🚀 \\\\ ''quoted''', 'multi\\nline',
        0x00ff0102, 0xdeadbeef, 0x000102,
        'b', 'x,z', '{\"a\": [1, 2.5, null]}', ST_GeomFromText('POINT(1 2)'))",
    "INSERT INTO all_types (id) VALUES (2)",
    // Zero dates need a relaxed SQL mode to be stored at all.
    "SET SESSION sql_mode = ''",
    "INSERT INTO all_types (id, t_date, t_datetime, t_bool, t_bit1, t_decimal) \
     VALUES (3, '0000-00-00', '0000-00-00 00:00:00', 0, b'0', -0.5)",
];

fn expected_rows() -> Vec<Vec<Option<String>>> {
    let row1 = [
        "1",
        "-128",
        "255",
        "true",
        "-32768",
        "65535",
        "-8388608",
        "16777215",
        "-2147483648",
        "4294967295",
        "-9223372036854775808",
        "18446744073709551615",
        "1234567890.12",
        "12345678901234567890123456789012345.123456789012345678901234567890",
        "1.5",
        "3.141592653589793",
        "true",
        "2730",
        "2024",
        "2024-02-29",
        "23:59:59.999999",
        "2024-05-01T12:34:56.123456",
        "2024-05-01T10:00:00.500Z",
        "abc",
        "Zoë 🚀 \\ 'quoted'",
        "multi\nline",
        "00ff0102",
        "deadbeef",
        "000102",
        "b",
        "x,z",
        r#"{"a": [1, 2.5, null]}"#,
        "000000000101000000000000000000f03f0000000000000040",
    ];
    let mut row2 = vec![None; row1.len()];
    row2[0] = Some("2".to_string());
    let mut row3 = vec![None; row1.len()];
    row3[0] = Some("3".to_string());
    row3[3] = Some("false".to_string()); // t_bool
    row3[12] = Some("-0.50".to_string()); // t_decimal
    row3[16] = Some("false".to_string()); // t_bit1; t_date and t_datetime are zero: NULL
    vec![
        row1.iter().map(|s| Some(s.to_string())).collect(),
        row2,
        row3,
    ]
}

async fn catalog_schema(connector: &MySqlConnector, db: &str, table: &str) -> SchemaRef {
    let model = connector.introspect().await.unwrap();
    let table = model.table(db, table).unwrap();
    Arc::new(Schema::new(
        table
            .columns
            .iter()
            .map(|c| Field::new(&c.name, c.data_type.clone(), c.nullable))
            .collect::<Vec<_>>(),
    ))
}

#[tokio::test]
async fn every_type_round_trips_exactly() {
    let mut db = TestDb::create("query_types", &[TYPES]).await;
    db.exec(ROWS).await;
    let connector = MySqlConnector::new(&db.config("types")).unwrap();
    let select = Statement::new("SELECT * FROM all_types ORDER BY id");

    // Types from the result metadata…
    let batch = connector
        .query(&select, None)
        .await
        .unwrap()
        .collect_one()
        .await
        .unwrap();
    assert_eq!(batch_to_strings(&batch), expected_rows());
    // …agree with the catalog's, which deliver the same values.
    let schema = catalog_schema(&connector, &db.name, "all_types").await;
    let derived: Vec<&DataType> = batch
        .schema_ref()
        .fields()
        .iter()
        .map(|f| f.data_type())
        .collect();
    let catalog: Vec<&DataType> = schema.fields().iter().map(|f| f.data_type()).collect();
    assert_eq!(derived, catalog);
    let typed = connector
        .query(&select, Some(schema.clone()))
        .await
        .unwrap()
        .collect_one()
        .await
        .unwrap();
    assert_eq!(typed.schema(), schema);
    assert_eq!(batch_to_strings(&typed), expected_rows());
    db.drop_db().await;
}

#[tokio::test]
async fn mariadb_types_round_trip_as_text() {
    let mut db = TestDb::create("query_mariadb", &[]).await;
    if !db.mariadb {
        eprintln!("skipped: UUID, INET4 and INET6 columns (MariaDB only)");
        db.drop_db().await;
        return;
    }
    db.exec(&[
        "CREATE TABLE m (id INT PRIMARY KEY, t_uuid UUID, t_inet4 INET4, t_inet6 INET6, t_json JSON)",
        "INSERT INTO m VALUES (1, '123e4567-e89b-12d3-a456-426614174000', '192.168.0.1', '2001:db8::1', '[1]')",
    ])
    .await;
    let connector = MySqlConnector::new(&db.config("maria")).unwrap();
    let select = Statement::new("SELECT * FROM m");
    let expected = vec![vec![
        Some("1".to_string()),
        Some("123e4567-e89b-12d3-a456-426614174000".to_string()),
        Some("192.168.0.1".to_string()),
        Some("2001:db8::1".to_string()),
        Some("[1]".to_string()),
    ]];
    let batch = connector
        .query(&select, None)
        .await
        .unwrap()
        .collect_one()
        .await
        .unwrap();
    assert_eq!(batch_to_strings(&batch), expected);
    let schema = catalog_schema(&connector, &db.name, "m").await;
    assert!(
        schema.fields()[1..]
            .iter()
            .all(|f| f.data_type() == &DataType::Utf8),
        "{schema:?}"
    );
    let typed = connector
        .query(&select, Some(schema))
        .await
        .unwrap()
        .collect_one()
        .await
        .unwrap();
    assert_eq!(batch_to_strings(&typed), expected);
    db.drop_db().await;
}

#[tokio::test]
async fn durations_outside_a_day_fail_as_time_and_read_as_text() {
    let db = TestDb::create(
        "query_durations",
        &[
            "CREATE TABLE d (t TIME(6))",
            "INSERT INTO d VALUES ('-01:30:00'), ('100:00:00.25')",
        ],
    )
    .await;
    let connector = MySqlConnector::new(&db.config("durations")).unwrap();
    let select = Statement::new("SELECT t FROM d ORDER BY t");
    let err = connector
        .query(&select, None)
        .await
        .unwrap()
        .collect_one()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(
        err.message().contains("`t`") && err.message().contains("-01:30:00"),
        "{err}"
    );
    assert_eq!(err.source_name(), Some("durations"));
    let text = Arc::new(Schema::new(vec![Field::new("t", DataType::Utf8, true)]));
    let batch = connector
        .query(&select, Some(text))
        .await
        .unwrap()
        .collect_one()
        .await
        .unwrap();
    assert_eq!(
        batch_to_strings(&batch),
        vec![
            vec![Some("-01:30:00".to_string())],
            vec![Some("100:00:00.250000".to_string())]
        ]
    );
    db.drop_db().await;
}

#[tokio::test]
async fn parameters_of_every_kind_bind() {
    let mut db = TestDb::create("query_params", &[TYPES]).await;
    db.exec(ROWS).await;
    let connector = MySqlConnector::new(&db.config("params")).unwrap();
    let instant: DateTime<Utc> = "2024-05-01T10:00:00.5Z".parse().unwrap();
    let statement = Statement::with_params(
        "SELECT id, ? AS echoed FROM all_types WHERE t_date = ? AND t_decimal = ? AND t_timestamp = ? \
         AND t_bool = ? AND t_bigint_u = ? AND t_bigint = ? AND t_double = ? AND t_varchar = ? \
         AND JSON_LENGTH(?) = 1 AND t_varbinary = ? AND t_time = ?",
        vec![
            Value::Text("Zoë".into()),
            Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()),
            Value::Decimal("1234567890.12".into()),
            Value::TimestampTz(instant),
            Value::Bool(true),
            Value::UInt(u64::MAX),
            Value::Int(i64::MIN),
            Value::Float(std::f64::consts::PI),
            Value::Text("Zoë 🚀 \\ 'quoted'".into()),
            Value::Json(serde_json::json!({"a": [1, 2.5, null]})),
            Value::Bytes(vec![0xde, 0xad, 0xbe, 0xef]),
            Value::Time(chrono::NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999).unwrap()),
        ],
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
        vec![vec![Some("1".to_string()), Some("Zoë".to_string())]]
    );
    let err = connector
        .query(
            &Statement::with_params("SELECT ?", vec![Value::List(vec![])]),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    db.drop_db().await;
}

#[tokio::test]
async fn large_results_stream_in_batches() {
    let db = TestDb::create(
        "query_stream",
        &[
            "CREATE TABLE digits (d INT)",
            "INSERT INTO digits VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9)",
        ],
    )
    .await;
    let connector = MySqlConnector::new(&db.config("stream")).unwrap();
    let statement = Statement::new(
        "SELECT a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 10000 * f.d AS n \
         FROM digits a, digits b, digits c, digits e, digits f",
    );
    let mut stream = connector.query(&statement, None).await.unwrap();
    let (mut batches, mut rows, mut sum) = (0, 0, 0i64);
    while let Some(batch) = stream.next().await {
        let batch = batch.unwrap();
        assert!(batch.num_rows() <= BATCH_ROWS);
        batches += 1;
        rows += batch.num_rows();
        sum += batch_to_strings(&batch)
            .iter()
            .map(|r| r[0].as_ref().unwrap().parse::<i64>().unwrap())
            .sum::<i64>();
    }
    assert_eq!(rows, 100_000);
    assert_eq!(sum, 99_999 * 100_000 / 2);
    assert_eq!(batches, 100_000_usize.div_ceil(BATCH_ROWS));
    // A stream dropped half-way leaves a usable pool behind.
    let mut stream = connector.query(&statement, None).await.unwrap();
    stream.next().await.unwrap().unwrap();
    drop(stream);
    let one = connector
        .query(&Statement::new("SELECT 1"), None)
        .await
        .unwrap()
        .collect_one()
        .await
        .unwrap();
    assert_eq!(one.num_rows(), 1);
    // A schema that does not fit the result is refused.
    let two = Arc::new(Schema::new(vec![
        Field::new("a", DataType::Int64, true),
        Field::new("b", DataType::Int64, true),
    ]));
    let err = connector
        .query(&Statement::new("SELECT 1"), Some(two))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let err = connector
        .query(&Statement::new("SELECT * FROM missing"), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    db.drop_db().await;
}

/// `SELECT 41 + 1` through the connector answers 42.
async fn assert_serves(connector: &MySqlConnector) {
    let batch = connector
        .query(&Statement::new("SELECT 41 + 1 AS n"), None)
        .await
        .unwrap()
        .collect_one()
        .await
        .unwrap();
    assert_eq!(batch_to_strings(&batch), [[Some("42".to_string())]]);
}

#[tokio::test]
async fn a_read_given_up_stops_the_statement_at_the_server() {
    let mut db = TestDb::create(
        "query_abandon",
        &[
            "CREATE TABLE digits (d INT)",
            "INSERT INTO digits VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9)",
            "CREATE TABLE seq (n INT PRIMARY KEY)",
            "INSERT INTO seq SELECT a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 10000 * f.d \
             FROM digits a, digits b, digits c, digits e, digits f",
        ],
    )
    .await;
    let mut config = db.config("abandon");
    // One connection: the next query proves the pool got a usable one back.
    config.pool.max_size = 1;
    let connector = MySqlConnector::new(&config).unwrap();

    // Before the first row: the reader leaves while the server counts ten
    // billion pairs (busy computing, it would not notice a closed socket).
    let counting = Statement::new("SELECT count(*) FROM seq a, seq b WHERE a.n < b.n");
    let first_row = async {
        let mut stream = connector.query(&counting, None).await.unwrap();
        stream.next().await.map(|batch| batch.map(|b| b.num_rows()))
    };
    tokio::select! {
        row = first_row => panic!("the count answered early: {row:?}"),
        running = db.await_running(1) => assert_eq!(running, 1, "the count runs"),
    }
    assert_eq!(db.await_running(0).await, 0, "the count was killed");
    assert_serves(&connector).await;

    // After the first batch: rows stream until the scan reaches a row whose
    // condition sleeps; the reader leaves while the server is in there.
    let stalling = Statement::new(format!(
        "SELECT n FROM seq WHERE n < {} OR SLEEP(60) = 1",
        3 * BATCH_ROWS
    ));
    let mut stream = connector.query(&stalling, None).await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.num_rows(), BATCH_ROWS);
    assert!(db.running_statements().await >= 1, "the scan runs");
    drop(stream);
    assert_eq!(db.await_running(0).await, 0, "the scan was killed");
    assert_serves(&connector).await;
    db.drop_db().await;
}
