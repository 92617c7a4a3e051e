//! Where Oracle MySQL 8+/9 and MariaDB differ, checked against whichever
//! server `TRIBUTARY_TEST_MYSQL_URL` names (MariaDB on :3306 by default;
//! `.ci/setup-mysql` serves MySQL 9 on :3307): a new account signs in with
//! and without TLS (MySQL's `caching_sha2_password`), expressions in the
//! catalog read the same on both, and JSON, VECTOR and spatial columns are
//! typed alike. A part for a feature the server lacks prints one `skipped:`
//! line.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod common;

use common::TestDb;
use tributary_connector::testkit::{self, batch_to_strings};
use tributary_connector::{
    Connector, ErrorKind, Insert, Secret, Statement, TlsMode, Value, WriteOp, WriteTarget,
};
use tributary_connector_mysql::MySqlConnector;
use tributary_schema_cache::{ServedAs, UnsupportedType};

/// The cells of a query's last column, one per row.
async fn column_of(connector: &MySqlConnector, statement: Statement) -> Vec<Option<String>> {
    let batch = connector
        .query(&statement, None)
        .await
        .unwrap()
        .collect_one()
        .await
        .unwrap();
    batch_to_strings(&batch)
        .into_iter()
        .map(|mut row| row.pop().flatten())
        .collect()
}

/// A new account has nothing in MySQL's `caching_sha2_password` cache, so
/// its first sign-in over plain TCP is the full exchange (the password
/// RSA-encrypted with the server's public key); over TLS it is sent in the
/// encrypted channel. MariaDB's accounts use `mysql_native_password`.
#[tokio::test]
async fn a_new_account_signs_in_with_and_without_tls() {
    let mut db = TestDb::create("flavor_auth", &[]).await;
    let user = testkit::unique_name("sha2");
    let plugin = if db.mariadb {
        ""
    } else {
        "WITH caching_sha2_password "
    };
    db.exec(&[
        &format!("CREATE USER '{user}'@'%' IDENTIFIED {plugin}BY 'pa''ss'"),
        &format!("GRANT ALL ON `{}`.* TO '{user}'@'%'", db.name),
    ])
    .await;
    let admin = MySqlConnector::new(&db.config("admin")).unwrap();
    let plugins = column_of(
        &admin,
        Statement::with_params(
            "SELECT plugin FROM mysql.user WHERE user = ?",
            vec![Value::Text(user.clone())],
        ),
    )
    .await;
    let connect = |mode: TlsMode, password: &str| {
        let mut config = db.config("sha2");
        config.connection.user = Some(user.clone());
        config.connection.password = Some(Secret::Plain(password.into()));
        config.tls.mode = mode;
        MySqlConnector::new(&config).unwrap()
    };
    // Plain TCP first, while the server's cache is empty.
    let plain = connect(TlsMode::Off, "pa'ss").ping().await;
    let plain_again = connect(TlsMode::Off, "pa'ss").ping().await;
    let wrong = connect(TlsMode::Off, "not-it").ping().await;
    let preferred = connect(TlsMode::Prefer, "pa'ss");
    let prefer = preferred.ping().await;
    let cipher = column_of(
        &preferred,
        Statement::new("SHOW SESSION STATUS LIKE 'Ssl_cipher'"),
    )
    .await;
    let require = connect(TlsMode::Require, "pa'ss").ping().await;
    db.exec(&[&format!("DROP USER '{user}'@'%'")]).await;

    let expected_plugin = if db.mariadb {
        "mysql_native_password"
    } else {
        "caching_sha2_password"
    };
    assert_eq!(plugins, vec![Some(expected_plugin.to_string())]);
    plain.expect("plain TCP, full authentication");
    plain_again.expect("plain TCP, cached authentication");
    let err = wrong.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
    prefer.expect("tls.mode prefer");
    let server_tls = cipher
        .first()
        .cloned()
        .flatten()
        .is_some_and(|c| !c.is_empty());
    if !db.mariadb {
        // MySQL makes itself a certificate at first start.
        assert!(server_tls, "MySQL encrypts a prefer connection: {cipher:?}");
    }
    match require {
        Ok(_) => assert!(server_tls, "require connected without server TLS"),
        Err(err) => {
            assert!(!server_tls, "{err}");
            assert_eq!(err.kind(), ErrorKind::Config, "{err}");
        }
    }
    db.drop_db().await;
}

/// The same definitions on both servers give the same catalog text, though
/// MySQL reports expressions escaped once more, with character set
/// introducers and in parentheses, and literal defaults unquoted.
#[tokio::test]
async fn expressions_read_the_same_on_both_flavors() {
    let mut db = TestDb::create(
        "flavor_exprs",
        &[r"CREATE TABLE exprs (
            id INT PRIMARY KEY,
            email VARCHAR(50) NOT NULL DEFAULT 'it''s',
            greeting VARCHAR(30) DEFAULT ('it''s'),
            stamp DATETIME(3) DEFAULT CURRENT_TIMESTAMP(3),
            tag VARCHAR(60) AS (CONCAT(email, 'it''s', 'a\\b')) VIRTUAL,
            CONSTRAINT exprs_email CHECK (email <> 'a''b\\c')
        )"],
    )
    .await;
    if !db.mariadb {
        db.exec(&[
            r"CREATE INDEX exprs_lower ON exprs ((lower(concat(email, 'q''r'))))",
            "ALTER TABLE exprs ADD CONSTRAINT exprs_loose CHECK (id > 0) NOT ENFORCED",
        ])
        .await;
    }
    let connector = MySqlConnector::new(&db.config("exprs")).unwrap();
    let model = connector.introspect().await.unwrap();
    let table = model.table(&db.name, "exprs").unwrap();
    let column = |name: &str| table.column(name).unwrap();
    assert_eq!(column("email").default.as_deref(), Some("'it''s'"));
    assert_eq!(column("greeting").default.as_deref(), Some("'it''s'"));
    assert_eq!(
        column("stamp").default.as_deref(),
        Some("current_timestamp(3)")
    );
    assert_eq!(
        column("tag").generated,
        Some(tributary_schema_cache::Generated::Computed {
            expression: r"concat(`email`,'it\'s','a\\b')".into(),
            stored: false,
        })
    );
    let checks: Vec<(Option<&str>, &str)> = table
        .check_constraints
        .iter()
        .map(|c| (c.name.as_deref(), c.expression.as_str()))
        .collect();
    assert_eq!(checks, vec![(Some("exprs_email"), r"`email` <> 'a\'b\\c'")]);
    if db.mariadb {
        eprintln!("skipped: functional indexes and NOT ENFORCED checks (MySQL only)");
        db.drop_db().await;
        return;
    }
    let index = table
        .indexes
        .iter()
        .find(|i| i.name == "exprs_lower")
        .unwrap();
    assert_eq!(index.columns, vec![r"lower(concat(`email`,'q\'r'))"]);
    // Enforcing the check changes the table's fingerprint and adds it.
    let before = connector.drift_fingerprints().await.unwrap();
    db.exec(&["ALTER TABLE exprs ALTER CHECK exprs_loose ENFORCED"])
        .await;
    let after = connector.drift_fingerprints().await.unwrap();
    let key = (db.name.clone(), "exprs".to_string());
    assert_ne!(before.get(&key), after.get(&key));
    let model = connector.introspect().await.unwrap();
    let names: Vec<_> = model
        .table(&db.name, "exprs")
        .unwrap()
        .check_constraints
        .iter()
        .map(|c| c.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(names, vec!["exprs_email", "exprs_loose"]);
    db.drop_db().await;
}

/// MySQL's JSON is a type of its own, MariaDB's an alias for `longtext`
/// with a `json_valid` check: both are Utf8 columns marked `json`, written
/// from JSON values and read back as the same document (MySQL normalizes
/// the text: keys sorted, one space after `:` and `,`).
#[tokio::test]
async fn json_columns_are_marked_alike_and_round_trip() {
    let db = TestDb::create(
        "flavor_json",
        &["CREATE TABLE docs (id INT AUTO_INCREMENT PRIMARY KEY, body JSON NOT NULL)"],
    )
    .await;
    let connector = MySqlConnector::new(&db.config("json")).unwrap();
    let model = connector.introspect().await.unwrap();
    let table = model.table(&db.name, "docs").unwrap().clone();
    let body = table.column("body").unwrap();
    assert_eq!(body.native_type, "json");
    assert_eq!(body.data_type, arrow_schema::DataType::Utf8);
    assert_eq!(body.unsupported_type, None);

    let document = serde_json::json!({"zeta": "Zoë 🚀", "alpha": [1, 2.5, null, {"q": "it's"}]});
    let mut tx = connector.begin().await.unwrap();
    let outcome = tx
        .execute(&WriteOp::Insert(Insert {
            target: WriteTarget {
                schema: db.name.clone(),
                table: table.into(),
            },
            columns: vec!["body".into()],
            rows: vec![vec![Value::Json(document.clone())]],
            returning: vec!["body".into()],
        }))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let returned = batch_to_strings(outcome.returning.as_ref().unwrap());
    let read = column_of(&connector, Statement::new("SELECT body FROM docs")).await;
    for text in [returned[0][0].clone(), read[0].clone()] {
        let value: serde_json::Value = serde_json::from_str(&text.unwrap()).unwrap();
        assert_eq!(value, document);
    }
    db.drop_db().await;
}

/// MySQL 9's VECTOR: Binary (the float32 values, little-endian) and marked
/// unsupported in the catalog; read with and without the catalog's schema.
#[tokio::test]
async fn vector_columns_are_bytes_and_marked_unsupported() {
    let mut db = TestDb::create("flavor_vector", &[]).await;
    if db.mariadb || db.major_version() < 9 {
        eprintln!(
            "skipped: VECTOR columns (MySQL 9+ only; server {})",
            db.version
        );
        db.drop_db().await;
        return;
    }
    db.exec(&[
        "CREATE TABLE embeddings (id INT PRIMARY KEY, v VECTOR(3))",
        "INSERT INTO embeddings VALUES (1, STRING_TO_VECTOR('[1, 2.5, -3]')), (2, NULL)",
    ])
    .await;
    let connector = MySqlConnector::new(&db.config("vectors")).unwrap();
    let model = connector.introspect().await.unwrap();
    let column = model
        .table(&db.name, "embeddings")
        .unwrap()
        .column("v")
        .unwrap()
        .clone();
    assert_eq!(column.native_type, "vector(3)");
    assert_eq!(column.data_type, arrow_schema::DataType::Binary);
    assert_eq!(
        column.unsupported_type,
        Some(UnsupportedType {
            native_type: "vector".into(),
            served_as: ServedAs::Binary,
        })
    );
    let select = Statement::new("SELECT v FROM embeddings ORDER BY id");
    let expected = vec![Some("0000803f00002040000040c0".to_string()), None];
    assert_eq!(column_of(&connector, select.clone()).await, expected);
    let schema = std::sync::Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new(
        "v",
        column.data_type,
        true,
    )]));
    let typed = connector
        .query(&select, Some(schema))
        .await
        .unwrap()
        .collect_one()
        .await
        .unwrap();
    assert_eq!(batch_to_strings(&typed)[0][0], expected[0]);
    db.drop_db().await;
}

/// MySQL spatial columns with an SRID (`SRS_ID` in the catalog): Binary,
/// the 4-byte little-endian SRID then the WKB.
#[tokio::test]
async fn spatial_columns_with_an_srid_are_binary() {
    let mut db = TestDb::create("flavor_srid", &[]).await;
    if db.mariadb {
        eprintln!("skipped: SRID-restricted spatial columns (MySQL syntax)");
        db.drop_db().await;
        return;
    }
    db.exec(&[
        "CREATE TABLE places (id INT PRIMARY KEY, at POINT SRID 3857 NOT NULL)",
        "INSERT INTO places VALUES (1, ST_GeomFromText('POINT(1 2)', 3857))",
    ])
    .await;
    let connector = MySqlConnector::new(&db.config("places")).unwrap();
    let model = connector.introspect().await.unwrap();
    let column = model
        .table(&db.name, "places")
        .unwrap()
        .column("at")
        .unwrap()
        .clone();
    assert_eq!(column.native_type, "point");
    assert_eq!(column.data_type, arrow_schema::DataType::Binary);
    assert_eq!(column.unsupported_type, None);
    assert_eq!(
        column_of(&connector, Statement::new("SELECT at FROM places")).await,
        vec![Some(
            // SRID 3857, then WKB: little-endian, type 1 (point), x 1.0, y 2.0.
            "110f00000101000000000000000000f03f0000000000000040".to_string()
        )]
    );
    db.drop_db().await;
}
