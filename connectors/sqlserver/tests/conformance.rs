//! The connector against SQL Server. Tests that need a server read
//! `TRIBUTARY_TEST_MSSQL_URL`, e.g.
//! `sqlserver://sa:Passw0rd!@127.0.0.1:1433/tributary_test?trust_server_certificate=true`
//! (URLs also take `encrypt=false|true` and core's `sslmode`);
//! without it they print one line saying what they skipped. Failures that
//! need no server (a closed port, bad configs) always run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;

use futures::StreamExt;
use tributary_connector::testkit::{batch_to_strings, unique_name, write_path_conformance};
use tributary_connector::{
    Connector, ErrorKind, Insert, SourceConfig, Statement, Value, WriteOp, WriteTarget,
};
use tributary_connector_sqlserver::SqlServerConnector;
use tributary_schema_cache::Generated;

#[allow(clippy::disallowed_methods)] // test configuration comes from the environment
fn mssql_url() -> Option<String> {
    std::env::var("TRIBUTARY_TEST_MSSQL_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

fn skipped(what: &str) {
    #[allow(clippy::print_stderr)]
    {
        eprintln!("skipped: TRIBUTARY_TEST_MSSQL_URL not set ({what})");
    }
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn a_closed_port_is_unavailable_naming_the_endpoint() {
    let port = closed_port();
    let mut config = SourceConfig::from_url(
        "down",
        &format!("sqlserver://sa:secret@127.0.0.1:{port}/db?trust_server_certificate=true"),
    )
    .unwrap();
    config.pool.connect_timeout_ms = 2_000;
    let connector = SqlServerConnector::new(&config).unwrap();
    let endpoint = format!("127.0.0.1:{port}");
    let err = connector.ping().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.message().contains(&endpoint), "{err}");
    assert_eq!(err.source_name(), Some("down"));
    assert!(!err.to_string().contains("secret"), "{err}");
    let err = connector
        .query(&Statement::new("SELECT 1"), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let err = connector.begin().await.err().expect("begin must fail");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert_eq!(
        connector.introspect().await.unwrap_err().kind(),
        ErrorKind::Unavailable
    );
    let status = connector.pool_status();
    assert_eq!(status.max_size, 10);
    assert_eq!(status.size, 0);
}

#[test]
fn bad_configs_are_config_errors() {
    let no_user = SourceConfig::from_url("s", "sqlserver://db.local/app").unwrap();
    let err = SqlServerConnector::new(&no_user).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert_eq!(err.source_name(), Some("s"));

    let postgres = SourceConfig::from_url("s", "postgres://u:p@h/db").unwrap();
    let err = SqlServerConnector::new(&postgres).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");

    let mut tiny = SourceConfig::from_url("s", "mssql://u:p@h/db").unwrap();
    tiny.pool.max_size = 0;
    assert_eq!(
        SqlServerConnector::new(&tiny).unwrap_err().kind(),
        ErrorKind::Config
    );

    let env_password: SourceConfig = serde_json::from_value(serde_json::json!({
        "name": "s", "kind": "sqlserver",
        "connection": {"host": "h", "user": "sa", "password": {"env": "TRIBUTARY_TEST_UNSET_MSSQL_PW"}}
    }))
    .unwrap();
    let err = SqlServerConnector::new(&env_password).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(
        err.message().contains("TRIBUTARY_TEST_UNSET_MSSQL_PW"),
        "{err}"
    );

    let err = SourceConfig::from_url("s", "sqlserver://u:p@h/db?trust_server_certificate=perhaps")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
}

async fn run(connector: &SqlServerConnector, sql: &str) {
    connector
        .query(&Statement::new(sql), None)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect_batches()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn live_connector(url: &str, max_size: u32) -> SqlServerConnector {
    let mut config = SourceConfig::from_url("mssql", url).unwrap();
    config.pool.max_size = max_size;
    SqlServerConnector::new(&config).unwrap()
}

/// The fixture schema: `items` for the write-path suite, `owners` and
/// `parts` for keys, indexes, computed columns and comments, `every_type`
/// for a round trip of each type.
async fn create_fixture(connector: &SqlServerConnector, schema: &str) {
    for sql in [
        format!("CREATE SCHEMA [{schema}]"),
        format!(
            "CREATE TABLE [{schema}].[items] (id int IDENTITY(1,1) PRIMARY KEY, \
             name nvarchar(100) NOT NULL UNIQUE, qty int NULL, price decimal(10,2) NULL)"
        ),
        format!(
            "CREATE TABLE [{schema}].[owners] (id int NOT NULL CONSTRAINT pk_owners PRIMARY KEY, \
             email nvarchar(200) NOT NULL CONSTRAINT uq_owners_email UNIQUE)"
        ),
        format!(
            "CREATE TABLE [{schema}].[parts] (id bigint IDENTITY(1,1) NOT NULL CONSTRAINT pk_parts PRIMARY KEY, \
             owner_id int NOT NULL CONSTRAINT fk_parts_owner REFERENCES [{schema}].[owners](id) ON DELETE CASCADE, \
             qty int NOT NULL CONSTRAINT df_parts_qty DEFAULT 0, price money NULL, \
             total AS (qty * price) PERSISTED)"
        ),
        format!("CREATE INDEX ix_parts_owner ON [{schema}].[parts] (owner_id, qty)"),
        format!(
            "EXEC sys.sp_addextendedproperty @name = N'MS_Description', @value = N'Parts on hand', \
             @level0type = N'SCHEMA', @level0name = N'{schema}', @level1type = N'TABLE', @level1name = N'parts'"
        ),
        format!(
            "EXEC sys.sp_addextendedproperty @name = N'MS_Description', @value = N'Units', \
             @level0type = N'SCHEMA', @level0name = N'{schema}', @level1type = N'TABLE', @level1name = N'parts', \
             @level2type = N'COLUMN', @level2name = N'qty'"
        ),
        format!(
            "INSERT INTO [{schema}].[owners] (id, email) VALUES (1, N'a@example.com'), (2, N'b@example.com')"
        ),
        format!(
            "INSERT INTO [{schema}].[parts] (owner_id, qty, price) VALUES (1, 2, 1.50), (1, 3, 2.00), (2, 1, 9.99)"
        ),
        format!("UPDATE STATISTICS [{schema}].[parts]"),
        format!(
            "CREATE TABLE [{schema}].[every_type] (k int NOT NULL PRIMARY KEY, \
             c_bit bit, c_tinyint tinyint, c_smallint smallint, c_int int, c_bigint bigint, \
             c_decimal decimal(12,3), c_numeric numeric(38,0), c_money money, c_smallmoney smallmoney, \
             c_float float, c_real real, c_date date, c_time time(7), c_datetime datetime, \
             c_datetime2 datetime2(7), c_smalldatetime smalldatetime, c_dto datetimeoffset(7), \
             c_char char(5), c_varchar varchar(max), c_nchar nchar(3), c_nvarchar nvarchar(max), \
             c_text text, c_ntext ntext, c_binary binary(2), c_varbinary varbinary(max), c_image image, \
             c_guid uniqueidentifier, c_xml xml, c_geography geography, c_hierarchyid hierarchyid, \
             c_variant sql_variant)"
        ),
        format!(
            "INSERT INTO [{schema}].[every_type] VALUES (1, 1, 255, -32768, 2147483647, -9223372036854775808, \
             -123456789.125, 99999999999999999999999999999999999999, -922337203.5808, 214748.3647, \
             0.1, 1.5, '2024-02-29', '12:30:00.1234567', '2024-05-01T12:00:00.500', \
             '9999-12-31T23:59:59.9999999', '2024-05-01T01:01:00', '2024-05-01T10:00:00.123456+02:00', \
             'ab', REPLICATE(CAST('x' AS varchar(max)), 70000), N'zö', N'Zoë 🚀', 'legacy', N'ntext', \
             0x00ff, 0xdeadbeef, 0x01, '6F9619FF-8B86-D011-B42D-00C04FC964FF', '<a b=\"1\"/>', \
             geography::Point(47.65, -122.34, 4326), hierarchyid::GetRoot(), CAST(7 AS int))"
        ),
        format!("INSERT INTO [{schema}].[every_type] (k) VALUES (2)"),
    ] {
        run(connector, &sql).await;
    }
}

async fn drop_fixture(connector: &SqlServerConnector, schema: &str) {
    for table in ["parts", "owners", "items", "every_type"] {
        let _ = connector
            .query(
                &Statement::new(format!("DROP TABLE IF EXISTS [{schema}].[{table}]")),
                None,
            )
            .await
            .map(|s| s.collect_batches());
    }
    let _ = connector
        .query(
            &Statement::new(format!("DROP SCHEMA IF EXISTS [{schema}]")),
            None,
        )
        .await;
}

#[tokio::test]
async fn against_a_live_server() {
    let Some(url) = mssql_url() else {
        skipped(
            "SQL Server conformance: write path, introspection, every type, early drop, errors",
        );
        return;
    };
    let connector = live_connector(&url, 4);
    let ping = connector.ping().await.expect("ping");
    assert!(ping.server_version.contains("SQL Server"), "{ping:?}");
    let schema = unique_name("trib");
    create_fixture(&connector, &schema).await;
    let outcome = tokio::spawn({
        let url = url.clone();
        let schema = schema.clone();
        async move {
            let connector = live_connector(&url, 4);
            write_path_conformance(&connector, &schema).await;
            introspection(&connector, &schema).await;
            every_type_round_trip(&connector, &schema).await;
            early_drop_leaves_the_pool_usable(&url).await;
            errors_are_classified(&connector, &url, &schema).await;
        }
    })
    .await;
    drop_fixture(&connector, &schema).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}

async fn introspection(connector: &SqlServerConnector, schema: &str) {
    let model = connector.introspect().await.expect("introspect");
    assert_eq!(model.default_schema.as_deref(), Some("dbo"));
    assert!(!model.schemas.contains_key("sys"));
    let parts = model.table(schema, "parts").expect("parts");
    assert_eq!(parts.comment.as_deref(), Some("Parts on hand"));
    assert_eq!(parts.primary_key.as_ref().unwrap().columns, ["id"]);
    assert_eq!(parts.row_estimate, Some(3));
    let id = parts.column("id").unwrap();
    assert_eq!(id.generated, Some(Generated::Identity { always: true }));
    let qty = parts.column("qty").unwrap();
    assert_eq!(qty.comment.as_deref(), Some("Units"));
    assert_eq!(qty.default.as_deref(), Some("0"));
    assert!(!qty.nullable);
    let total = parts.column("total").unwrap();
    assert!(
        matches!(&total.generated, Some(Generated::Computed { expression, stored: true }) if expression.contains("[qty]*[price]")),
        "{:?}",
        total.generated
    );
    let fk = &parts.foreign_keys[0];
    assert_eq!(fk.name.as_deref(), Some("fk_parts_owner"));
    assert_eq!(fk.referenced_table, "owners");
    assert_eq!(fk.columns, ["owner_id"]);
    assert_eq!(fk.referenced_columns, ["id"]);
    assert_eq!(
        fk.on_delete,
        tributary_schema_cache::ReferentialAction::Cascade
    );
    let index = parts
        .indexes
        .iter()
        .find(|i| i.name == "ix_parts_owner")
        .unwrap();
    assert_eq!(index.columns, ["owner_id", "qty"]);
    assert!(!index.unique);
    let owners = model.table(schema, "owners").unwrap();
    assert_eq!(owners.unique_constraints[0].columns, ["email"]);
    assert_eq!(
        owners.unique_constraints[0].name.as_deref(),
        Some("uq_owners_email")
    );
    let every = model.table(schema, "every_type").unwrap();
    assert_eq!(
        every.column("c_nvarchar").unwrap().native_type,
        "nvarchar(max)"
    );
    assert!(
        every
            .column("c_variant")
            .unwrap()
            .unsupported_type
            .is_some()
    );

    // Drift: unchanged, then a new column changes the fingerprint.
    let fingerprints = connector.drift_fingerprints().await.unwrap();
    let key = (schema.to_string(), "parts".to_string());
    assert_eq!(fingerprints.get(&key), Some(&parts.drift_fingerprint));
    run(
        connector,
        &format!("ALTER TABLE [{schema}].[parts] ADD note nvarchar(10) NULL"),
    )
    .await;
    let after = connector.drift_fingerprints().await.unwrap();
    assert_ne!(after.get(&key), Some(&parts.drift_fingerprint));
}

async fn every_type_round_trip(connector: &SqlServerConnector, schema: &str) {
    let model = connector.introspect().await.unwrap();
    let table = model.table(schema, "every_type").unwrap();
    let arrow = std::sync::Arc::new(arrow_schema::Schema::new(
        table
            .columns
            .iter()
            .map(|c| arrow_schema::Field::new(&c.name, c.data_type.clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = connector
        .query(
            &Statement::with_params(
                format!("SELECT * FROM [{schema}].[every_type] WHERE k >= @P1 ORDER BY k"),
                vec![Value::Int(1)],
            ),
            Some(arrow),
        )
        .await
        .expect("query")
        .collect_one()
        .await
        .expect("rows");
    let rows = batch_to_strings(&batch);
    let row: Vec<Option<&str>> = rows[0].iter().map(Option::as_deref).collect();
    let cell = |name: &str| row[table.columns.iter().position(|c| c.name == name).unwrap()];
    assert_eq!(cell("c_bit"), Some("true"));
    assert_eq!(cell("c_tinyint"), Some("255"));
    assert_eq!(cell("c_bigint"), Some("-9223372036854775808"));
    assert_eq!(cell("c_decimal"), Some("-123456789.125"));
    assert_eq!(
        cell("c_numeric"),
        Some("99999999999999999999999999999999999999")
    );
    assert_eq!(cell("c_money"), Some("-922337203.5808"));
    assert_eq!(cell("c_smallmoney"), Some("214748.3647"));
    assert_eq!(cell("c_date"), Some("2024-02-29"));
    assert_eq!(cell("c_time"), Some("12:30:00.123456"));
    assert_eq!(cell("c_datetime"), Some("2024-05-01T12:00:00.500"));
    assert_eq!(cell("c_datetime2"), Some("9999-12-31T23:59:59.999999"));
    assert_eq!(cell("c_smalldatetime"), Some("2024-05-01T01:01:00"));
    assert_eq!(cell("c_dto"), Some("2024-05-01T08:00:00.123456Z"));
    assert_eq!(cell("c_char"), Some("ab   "));
    assert_eq!(cell("c_varchar").map(str::len), Some(70_000));
    assert_eq!(cell("c_nvarchar"), Some("Zoë 🚀"));
    assert_eq!(cell("c_text"), Some("legacy"));
    assert_eq!(cell("c_binary"), Some("00ff"));
    assert_eq!(cell("c_varbinary"), Some("deadbeef"));
    assert_eq!(cell("c_guid"), Some("6f9619ff-8b86-d011-b42d-00c04fc964ff"));
    assert_eq!(cell("c_xml"), Some("<a b=\"1\"/>"));
    assert!(cell("c_geography").is_some());
    assert_eq!(cell("c_variant"), Some("7"));
    // The second row: every column NULL but the key.
    assert!(rows[1][1..].iter().all(Option::is_none), "{:?}", rows[1]);
}

async fn early_drop_leaves_the_pool_usable(url: &str) {
    // One connection: the next query only works if the abandoned one was
    // replaced or cleaned.
    let connector = live_connector(url, 1);
    let mut stream = connector
        .query(
            &Statement::new(
                "SELECT TOP 200000 a.object_id, a.name FROM sys.all_objects AS a CROSS JOIN sys.all_objects AS b",
            ),
            None,
        )
        .await
        .expect("query");
    let first = stream.next().await.expect("a batch").expect("rows");
    assert!(first.num_rows() > 0);
    drop(stream);
    let batch = connector
        .query(&Statement::new("SELECT 42 AS answer"), None)
        .await
        .expect("the pool still serves")
        .collect_one()
        .await
        .unwrap();
    assert_eq!(batch_to_strings(&batch), vec![vec![Some("42".to_string())]]);
}

async fn errors_are_classified(connector: &SqlServerConnector, url: &str, schema: &str) {
    let model = connector.introspect().await.unwrap();
    let target = WriteTarget {
        schema: schema.to_string(),
        table: model.table(schema, "owners").unwrap().clone().into(),
    };
    let mut tx = connector.begin().await.unwrap();
    let err = tx
        .execute(&WriteOp::Insert(Insert {
            target,
            columns: vec!["id".into(), "email".into()],
            rows: vec![vec![Value::Int(3), Value::Text("a@example.com".into())]],
            returning: vec![],
        }))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Constraint, "{err}");
    assert!(!err.message().contains("a@example.com"), "{err}");
    tx.rollback().await.unwrap();

    let mut wrong = SourceConfig::from_url("mssql", url).unwrap();
    wrong.connection.password = Some(tributary_connector::Secret::Plain(
        "not the password".into(),
    ));
    let err = SqlServerConnector::new(&wrong)
        .unwrap()
        .ping()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
}
