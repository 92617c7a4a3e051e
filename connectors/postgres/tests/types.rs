//! Reads of every mapped type decoded from the binary format, the text
//! fallback for the rest, parameters converted by their PostgreSQL type,
//! and values that must fail loudly rather than come back wrong.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod common;

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Decimal128Type, Decimal256Type, Float32Type, Int16Type, IntervalMonthDayNanoType,
    TimestampMicrosecondType,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, NaiveDate, NaiveTime};
use common::{TestSchema, cells, ensure_extension};
use tributary_connector::testkit::batch_to_strings;
use tributary_connector::{Connector, ErrorKind, Interval, Statement, Value};
use tributary_connector_postgres::PostgresConnector;

async fn read(connector: &PostgresConnector, sql: &str, params: Vec<Value>) -> RecordBatch {
    connector
        .query(&Statement::with_params(sql, params), None)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect_one()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn strings(batch: &RecordBatch) -> Vec<Option<String>> {
    cells(batch).into_iter().next().unwrap_or_default()
}

#[tokio::test]
async fn scalar_types_decode_exactly() {
    let schema = TestSchema::new(
        "CREATE TYPE mood AS ENUM ('sad', 'happy'); CREATE DOMAIN posint AS int CHECK (VALUE > 0);",
    )
    .await;
    let connector = schema.connector();
    let mood = format!("'happy'::\"{}\".mood", schema.name);
    let posint = format!("7::\"{}\".posint", schema.name);
    let cases: &[(&str, DataType, &str)] = &[
        ("true", DataType::Boolean, "true"),
        ("(-32768)::int2", DataType::Int16, "-32768"),
        ("2147483647::int4", DataType::Int32, "2147483647"),
        (
            "(-9223372036854775808)::int8",
            DataType::Int64,
            "-9223372036854775808",
        ),
        ("4294967295::oid", DataType::Int64, "4294967295"),
        ("1.5::float4", DataType::Float32, "1.5"),
        ("'-Infinity'::float8", DataType::Float64, "-inf"),
        (
            "12345.678::numeric(10,3)",
            DataType::Decimal128(10, 3),
            "12345.678",
        ),
        (
            "'-0.000001'::numeric(7,6)",
            DataType::Decimal128(7, 6),
            "-0.000001",
        ),
        (
            "'12345678901234567890123456789012345678.123'::numeric(50,3)",
            DataType::Decimal256(50, 3),
            "12345678901234567890123456789012345678.123",
        ),
        (
            "'123456789012345678901234567890.1234567890123456789'::numeric",
            DataType::Utf8,
            "123456789012345678901234567890.1234567890123456789",
        ),
        ("'1e-20'::numeric", DataType::Utf8, "0.00000000000000000001"),
        ("'NaN'::numeric", DataType::Utf8, "NaN"),
        ("'Infinity'::numeric", DataType::Utf8, "Infinity"),
        ("'-1234.56'::money", DataType::Decimal128(19, 2), "-1234.56"),
        ("'ab'::char(4)", DataType::Utf8, "ab"), // padding dropped, as PostgreSQL casts char(n) to text
        ("'x'::\"char\"", DataType::Utf8, "x"),
        ("'Zoë 🚀'::varchar", DataType::Utf8, "Zoë 🚀"),
        ("'pg_class'::name", DataType::Utf8, "pg_class"),
        ("'\\x00ff10'::bytea", DataType::Binary, "00ff10"),
        ("'1999-12-31'::date", DataType::Date32, "1999-12-31"),
        ("'0044-03-15 BC'::date", DataType::Date32, "-0043-03-15"),
        (
            "'23:59:59.999999'::time",
            DataType::Time64(TimeUnit::Microsecond),
            "23:59:59.999999",
        ),
        (
            "'12:34:56.5+05:30'::timetz",
            DataType::Utf8,
            "12:34:56.5+05:30",
        ),
        ("'04:05:06-08'::timetz", DataType::Utf8, "04:05:06-08"),
        (
            "'2024-02-29 13:14:15.123456'::timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            "2024-02-29T13:14:15.123456",
        ),
        (
            "'2024-02-29 13:14:15.5+02'::timestamptz",
            DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC"))),
            "2024-02-29T11:14:15.500",
        ),
        (
            "'1 year 2 mons 3 days 04:05:06.789'::interval",
            DataType::Interval(arrow_schema::IntervalUnit::MonthDayNano),
            "",
        ),
        (
            "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid",
            DataType::Utf8,
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        ),
        (
            "'{\"b\": 1, \"a\": [true, null]}'::json",
            DataType::Utf8,
            "{\"b\": 1, \"a\": [true, null]}",
        ),
        (
            "'{\"b\": 1, \"a\": [true, null]}'::jsonb",
            DataType::Utf8,
            "{\"a\": [true, null], \"b\": 1}",
        ),
        (&mood, DataType::Utf8, "happy"),
        (&posint, DataType::Int32, "7"),
        ("B'1010'::bit(4)", DataType::Utf8, "1010"),
        ("B'101'::varbit", DataType::Utf8, "101"),
        ("'192.168.0.1/24'::inet", DataType::Utf8, "192.168.0.1/24"),
        ("'10.1.2.3'::inet", DataType::Utf8, "10.1.2.3"),
        ("'10.0.0.0/8'::cidr", DataType::Utf8, "10.0.0.0/8"),
        ("'2001:db8::1'::inet", DataType::Utf8, "2001:db8::1"),
        (
            "'08:00:2b:01:02:03'::macaddr",
            DataType::Utf8,
            "08:00:2b:01:02:03",
        ),
        (
            "'08:00:2b:01:02:03:04:05'::macaddr8",
            DataType::Utf8,
            "08:00:2b:01:02:03:04:05",
        ),
        ("'<a>x</a>'::xml", DataType::Utf8, "<a>x</a>"),
    ];
    for (expr, data_type, expected) in cases {
        let batch = read(&connector, &format!("SELECT {expr} AS v"), vec![]).await;
        assert_eq!(batch.schema().field(0).data_type(), data_type, "{expr}");
        if !expected.is_empty() {
            assert_eq!(
                strings(&batch),
                vec![Some((*expected).to_string())],
                "{expr}"
            );
        }
    }
    let batch = read(
        &connector,
        "SELECT '1 year 2 mons 3 days 04:05:06.789'::interval, '-1.5'::float4, 100::int2",
        vec![],
    )
    .await;
    let iv = batch
        .column(0)
        .as_primitive::<IntervalMonthDayNanoType>()
        .value(0);
    assert_eq!(
        (iv.months, iv.days, iv.nanoseconds),
        (14, 3, 14_706_789_000_000)
    );
    assert!((batch.column(1).as_primitive::<Float32Type>().value(0) + 1.5).abs() < f32::EPSILON);
    assert_eq!(batch.column(2).as_primitive::<Int16Type>().value(0), 100);
}

#[tokio::test]
async fn arrays_and_nulls() {
    let schema = TestSchema::new("CREATE TYPE mood AS ENUM ('sad', 'happy');").await;
    let connector = schema.connector();
    let sql = format!(
        "SELECT ARRAY[1, NULL, 3]::int[] AS ints, ARRAY['a', 'b,c', NULL]::text[] AS texts, \
         ARRAY['2024-01-01']::date[] AS days, ARRAY[1.5, -2.25]::numeric(5,2)[] AS nums, \
         ARRAY['sad', 'happy']::\"{}\".mood[] AS moods, '{{}}'::int[] AS empty, NULL::int[] AS missing, \
         ARRAY['12:00+01']::timetz[] AS ttz, ARRAY['{{\"a\":1}}']::jsonb[] AS docs",
        schema.name
    );
    let batch = read(&connector, &sql, vec![]).await;
    let types: Vec<DataType> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    let list = |t: DataType| DataType::List(Arc::new(Field::new("item", t, true)));
    assert_eq!(
        types,
        vec![
            list(DataType::Int32),
            list(DataType::Utf8),
            list(DataType::Date32),
            list(DataType::Decimal128(5, 2)),
            list(DataType::Utf8),
            list(DataType::Int32),
            list(DataType::Int32),
            list(DataType::Utf8),
            list(DataType::Utf8),
        ]
    );
    assert_eq!(
        strings(&batch),
        vec![
            Some("[1, , 3]".into()),
            Some("[a, b,c, ]".into()),
            Some("[2024-01-01]".into()),
            Some("[1.50, -2.25]".into()),
            Some("[sad, happy]".into()),
            Some("[]".into()),
            None,
            Some("[12:00:00+01]".into()),
            Some("[{\"a\": 1}]".into()),
        ]
    );
}

#[tokio::test]
async fn unmapped_types_fall_back_to_text_keeping_every_column() {
    let schema = TestSchema::new("").await;
    let connector = schema.connector();
    // Duplicate and unnamed columns, parameters, a comment and a semicolon at the end.
    let batch = read(
        &connector,
        "SELECT $1::int AS a, point(1, 2) AS a, '[1,5)'::int4range, ARRAY['[1,2)'::int4range], \
         'pg_class'::regclass, to_tsvector('simple', $2), ROW(1, 'x') AS r, $1::int + 1 AS a -- trailing comment\n;",
        vec![Value::Int(41), Value::Text("fat cats".into())],
    )
    .await;
    let schema_ref = batch.schema();
    let names: Vec<&str> = schema_ref
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(
        names,
        vec![
            "a",
            "a",
            "int4range",
            "array",
            "regclass",
            "to_tsvector",
            "r",
            "a"
        ]
    );
    assert_eq!(batch.schema().field(0).data_type(), &DataType::Int32);
    assert_eq!(
        strings(&batch),
        vec![
            Some("41".into()),
            Some("(1,2)".into()),
            Some("[1,5)".into()),
            Some("{\"[1,2)\"}".into()),
            Some("pg_class".into()),
            Some("'cats':2 'fat':1".into()),
            Some("(1,x)".into()),
            Some("42".into()),
        ]
    );
    // SHOW and void results need no wrapping.
    assert_eq!(
        strings(&read(&connector, "SHOW TimeZone", vec![]).await),
        vec![Some("UTC".into())]
    );
    assert_eq!(
        strings(&read(&connector, "SELECT pg_sleep(0)", vec![]).await),
        vec![Some(String::new())]
    );
}

#[tokio::test]
async fn citext_reads_as_text() {
    let schema = TestSchema::new("").await;
    ensure_extension(&schema.client, "citext").await;
    let connector = schema.connector();
    let batch = read(
        &connector,
        "SELECT 'MiXeD'::public.citext = 'mixed' AS eq, 'MiXeD'::public.citext AS v",
        vec![],
    )
    .await;
    assert_eq!(
        strings(&batch),
        vec![Some("true".into()), Some("MiXeD".into())]
    );
}

#[tokio::test]
async fn nan_and_infinity_are_never_silently_wrong() {
    let schema = TestSchema::new(
        "CREATE TABLE n (fixed numeric(10,2), free numeric, d date, ts timestamp);
        INSERT INTO n VALUES ('NaN', 'NaN', 'infinity', '-infinity');",
    )
    .await;
    let connector = schema.connector();
    let sql = format!("SELECT fixed FROM {}", schema.table("n"));
    let err = connector
        .query(&Statement::new(sql), None)
        .await
        .unwrap()
        .collect_one()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("fixed") && err.to_string().contains("NaN"),
        "{err}"
    );
    let batch = read(
        &connector,
        &format!("SELECT free, fixed::text FROM {}", schema.table("n")),
        vec![],
    )
    .await;
    assert_eq!(
        strings(&batch),
        vec![Some("NaN".into()), Some("NaN".into())]
    );
    for column in ["d", "ts"] {
        let sql = format!("SELECT {column} FROM {}", schema.table("n"));
        let err = connector
            .query(&Statement::new(sql), None)
            .await
            .unwrap()
            .collect_one()
            .await
            .unwrap_err();
        assert!(err.to_string().contains(column), "{err}");
    }
    // The pool is still healthy afterwards.
    assert_eq!(
        strings(&read(&connector, "SELECT 1", vec![]).await),
        vec![Some("1".into())]
    );
}

#[tokio::test]
async fn catalog_schema_types_the_result() {
    let schema = TestSchema::new("").await;
    let connector = schema.connector();
    let expected = Arc::new(Schema::new(vec![
        Field::new("price", DataType::Decimal128(12, 4), true),
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC"))),
            true,
        ),
        Field::new("n", DataType::Int64, true),
    ]));
    let batch = connector
        .query(
            &Statement::new("SELECT 1.5::numeric AS price, '2024-01-01 00:00:00+00'::timestamptz AS at, 7::int2 AS n"),
            Some(expected.clone()),
        )
        .await
        .unwrap()
        .collect_one()
        .await
        .unwrap();
    assert_eq!(batch.schema(), expected);
    assert_eq!(
        batch.column(0).as_primitive::<Decimal128Type>().value(0),
        15_000
    );
    assert_eq!(
        batch
            .column(1)
            .as_primitive::<TimestampMicrosecondType>()
            .value(0),
        1_704_067_200_000_000
    );
    let err = connector
        .query(&Statement::new("SELECT 1, 2"), Some(expected))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let wide = Arc::new(Schema::new(vec![Field::new(
        "big",
        DataType::Decimal256(60, 0),
        true,
    )]));
    let batch = connector
        .query(
            &Statement::new("SELECT (10::numeric ^ 55)::numeric(60,0)"),
            Some(wide),
        )
        .await
        .unwrap()
        .collect_one()
        .await
        .unwrap();
    assert!(batch.column(0).as_primitive::<Decimal256Type>().is_valid(0));
}

#[tokio::test]
async fn parameters_convert_by_the_server_type() {
    let schema = TestSchema::new(
        "CREATE TYPE mood AS ENUM ('sad', 'happy');
         CREATE TABLE p (i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, n numeric(12,4), m money, b bool,
             t text, by bytea, d date, tm time, ttz timetz, ts timestamp, tstz timestamptz, iv interval,
             u uuid, j json, jb jsonb, mo mood, ints int[], texts text[], ip inet, bits bit(3), span int4range);",
    )
    .await;
    let connector = schema.connector();
    let day = NaiveDate::from_ymd_opt(2024, 5, 1).unwrap();
    let at = DateTime::parse_from_rfc3339("2024-05-01T10:20:30.5Z")
        .unwrap()
        .to_utc();
    let values = vec![
        Value::Text("-7".into()),
        Value::Decimal("123".into()),
        Value::UInt(9_000_000_000),
        Value::Float(0.25),
        Value::Decimal("1e-3".into()),
        Value::Decimal("-12345678.1234".into()),
        Value::Int(5),
        Value::Text("yes".into()),
        Value::Int(42),
        Value::Bytes(vec![0, 1, 255]),
        Value::Text("2024-05-01".into()),
        Value::Time(NaiveTime::from_hms_micro_opt(1, 2, 3, 4).unwrap()),
        Value::Time(NaiveTime::from_hms_opt(5, 6, 7).unwrap()),
        Value::Date(day),
        Value::TimestampTz(at),
        Value::Interval(Interval {
            months: 1,
            days: 2,
            nanoseconds: 3_000_000,
        }),
        Value::Text("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11".into()),
        Value::Json(serde_json::json!([1, "two"])),
        Value::Text("{\"k\": null}".into()),
        Value::Text("happy".into()),
        Value::List(vec![Value::Int(1), Value::Null, Value::Decimal("3".into())]),
        Value::List(vec![Value::Text("a\"b".into()), Value::Text("c,d".into())]),
        Value::Text("10.0.0.1/8".into()),
        Value::Text("101".into()),
        Value::Text("[1,10)".into()),
    ];
    let placeholders: Vec<String> = (1..=values.len()).map(|i| format!("${i}")).collect();
    // Insert through a plain query with RETURNING.
    let sql = format!(
        "INSERT INTO {} VALUES ({}) RETURNING *",
        schema.table("p"),
        placeholders.join(", ")
    );
    let batch = read(&connector, &sql, values).await;
    assert_eq!(
        strings(&batch),
        vec![
            Some("-7".into()),
            Some("123".into()),
            Some("9000000000".into()),
            Some("0.25".into()),
            Some("0.001".into()),
            Some("-12345678.1234".into()),
            Some("5.00".into()),
            Some("true".into()),
            Some("42".into()),
            Some("0001ff".into()),
            Some("2024-05-01".into()),
            Some("01:02:03.000004".into()),
            Some("05:06:07+00".into()),
            Some("2024-05-01T00:00:00".into()),
            Some("2024-05-01T10:20:30.500".into()),
            Some("1 mons 2 days 0.003000000 secs".into()),
            Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into()),
            Some("[1,\"two\"]".into()),
            Some("{\"k\": null}".into()),
            Some("happy".into()),
            Some("[1, , 3]".into()),
            Some("[a\"b, c,d]".into()),
            Some("10.0.0.1/8".into()),
            Some("101".into()),
            Some("[1,10)".into()),
        ]
    );

    // Unconvertible values name their parameter.
    let bad: &[(&str, Value, &str)] = &[
        ("SELECT $1::int2", Value::Int(40_000), "$1"),
        ("SELECT $1::int4 + 0, $2::int4", Value::Bool(true), "$1"),
        ("SELECT $1::numeric", Value::Decimal("12,5".into()), "$1"),
        ("SELECT $1::uuid", Value::Uuid("not-a-uuid".into()), "$1"),
        ("SELECT $1::date", Value::Text("yesterday-ish".into()), "$1"),
        ("SELECT $1::int8", Value::Text("12x".into()), "$1"),
        ("SELECT $1::money", Value::Decimal("1.005".into()), "$1"),
    ];
    for (sql, value, position) in bad {
        let params = if sql.contains("$2") {
            vec![value.clone(), Value::Int(1)]
        } else {
            vec![value.clone()]
        };
        let err = connector
            .query(&Statement::with_params(*sql, params), None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{sql}: {err}");
        assert!(err.to_string().contains(position), "{sql}: {err}");
    }
    let err = connector
        .query(
            &Statement::with_params("SELECT $1::int, $2::int", vec![Value::Int(1)]),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
}

#[tokio::test]
async fn text_bound_to_date_compares_as_date() {
    let schema = TestSchema::new(
        "CREATE TABLE ev (id int, day date, at timestamptz, amount numeric(8,2));
         INSERT INTO ev VALUES (1, '2024-05-01', '2024-05-01 08:00+00', 10.50), (2, '2024-06-01', '2024-06-01 08:00+00', 3);",
    )
    .await;
    let connector = schema.connector();
    let sql = format!(
        "SELECT id FROM {} WHERE day = $1 AND amount = $2 AND at < $3",
        schema.table("ev")
    );
    let batch = read(
        &connector,
        &sql,
        vec![
            Value::Text("2024-05-01".into()),
            Value::Decimal("10.5".into()),
            Value::Text("2024-05-02T00:00:00Z".into()),
        ],
    )
    .await;
    assert_eq!(batch_to_strings(&batch), vec![vec![Some("1".into())]]);
    let sql = format!(
        "SELECT id FROM {} WHERE id = ANY($1) ORDER BY id",
        schema.table("ev")
    );
    let batch = read(
        &connector,
        &sql,
        vec![Value::List(vec![Value::Int(2), Value::Int(1)])],
    )
    .await;
    assert_eq!(
        batch_to_strings(&batch),
        vec![vec![Some("1".into())], vec![Some("2".into())]]
    );
}
