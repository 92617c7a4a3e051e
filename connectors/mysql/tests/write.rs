//! The write path: the shared conformance suite, and the emulated RETURNING
//! paths' edge cases (key changes, tables without a primary key).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod common;

use common::TestDb;
use tributary_connector::testkit::{batch_to_strings, write_path_conformance};
use tributary_connector::{
    Connector, Delete, ErrorKind, Insert, Predicate, Update, Value, WriteOp, WriteTarget,
};
use tributary_connector_mysql::MySqlConnector;

#[tokio::test]
async fn write_path_conformance_suite() {
    let db = TestDb::create(
        "write_conformance",
        &["CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL UNIQUE, \
           qty INT NULL, price DECIMAL(10,2) NULL)"],
    )
    .await;
    let connector = MySqlConnector::new(&db.config("writes")).unwrap();
    write_path_conformance(&connector, &db.name).await;
    assert_eq!(connector.pool_status().waiting, 0);
    db.drop_db().await;
}

async fn target(connector: &MySqlConnector, schema: &str, table: &str) -> WriteTarget {
    let model = connector.introspect().await.unwrap();
    WriteTarget {
        schema: schema.to_string(),
        table: model.table(schema, table).unwrap().clone().into(),
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

#[tokio::test]
async fn updating_a_key_returns_the_row_under_its_new_key() {
    let db = TestDb::create(
        "write_rekey",
        &[
            "CREATE TABLE codes (region CHAR(2) NOT NULL, code INT NOT NULL, label VARCHAR(20), \
             PRIMARY KEY (region, code))",
            "INSERT INTO codes VALUES ('eu', 1, 'one'), ('eu', 2, 'two'), ('us', 1, 'uno')",
        ],
    )
    .await;
    let connector = MySqlConnector::new(&db.config("rekey")).unwrap();
    let codes = target(&connector, &db.name, "codes").await;
    let mut tx = connector.begin().await.unwrap();
    let outcome = tx
        .execute(&WriteOp::Update(Update {
            increment: Vec::new(),
            json: Vec::new(),
            target: codes.clone(),
            set: vec![
                ("code".into(), Value::Int(10)),
                ("label".into(), Value::Text("ten".into())),
            ],
            filter: Predicate::And(vec![
                Predicate::eq("region", Value::Text("eu".into())),
                Predicate::eq("code", Value::Int(1)),
            ]),
            returning: names(&["region", "code", "label"]),
        }))
        .await
        .unwrap();
    assert_eq!(outcome.affected_rows, 1);
    assert_eq!(
        batch_to_strings(outcome.returning.as_ref().unwrap()),
        vec![vec![
            Some("eu".into()),
            Some("10".into()),
            Some("ten".into())
        ]]
    );
    // Setting a value a row already has still counts the row (found rows).
    let outcome = tx
        .execute(&WriteOp::Update(Update {
            increment: Vec::new(),
            json: Vec::new(),
            target: codes.clone(),
            set: vec![("label".into(), Value::Text("two".into()))],
            filter: Predicate::eq("code", Value::Int(2)),
            returning: vec![],
        }))
        .await
        .unwrap();
    assert_eq!(outcome.affected_rows, 1);
    tx.commit().await.unwrap();
    db.drop_db().await;
}

#[tokio::test]
async fn tables_without_a_key_write_but_cannot_return_from_emulated_paths() {
    let db = TestDb::create(
        "write_nokey",
        &[
            "CREATE TABLE events (kind VARCHAR(10), payload TEXT)",
            "CREATE TABLE tags (tag VARCHAR(10) NOT NULL, hits INT, UNIQUE KEY tags_tag (tag))",
            "INSERT INTO events VALUES ('a', 'x'), ('b', 'y')",
            "INSERT INTO tags VALUES ('red', 1)",
        ],
    )
    .await;
    let connector = MySqlConnector::new(&db.config("nokey")).unwrap();
    let events = target(&connector, &db.name, "events").await;
    let tags = target(&connector, &db.name, "tags").await;
    let mut tx = connector.begin().await.unwrap();
    let update = |returning: Vec<String>| {
        WriteOp::Update(Update {
            increment: Vec::new(),
            json: Vec::new(),
            target: events.clone(),
            set: vec![("payload".into(), Value::Text("z".into()))],
            filter: Predicate::eq("kind", Value::Text("a".into())),
            returning,
        })
    };
    assert_eq!(tx.execute(&update(vec![])).await.unwrap().affected_rows, 1);
    let err = tx.execute(&update(names(&["kind"]))).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert_eq!(err.source_name(), Some("nokey"));
    assert!(err.message().contains("no primary key"), "{err}");
    // A NOT NULL unique key identifies rows instead.
    let outcome = tx
        .execute(&WriteOp::Update(Update {
            increment: Vec::new(),
            json: Vec::new(),
            target: tags.clone(),
            set: vec![("hits".into(), Value::Int(2))],
            filter: Predicate::eq("tag", Value::Text("red".into())),
            returning: names(&["tag", "hits"]),
        }))
        .await
        .unwrap();
    assert_eq!(
        batch_to_strings(outcome.returning.as_ref().unwrap()),
        vec![vec![Some("red".into()), Some("2".into())]]
    );
    // Inserts and deletes return natively on MariaDB 10.5+, by key on MySQL.
    let inserted = tx
        .execute(&WriteOp::Insert(Insert {
            target: tags.clone(),
            columns: names(&["tag", "hits"]),
            rows: vec![vec![Value::Text("blue".into()), Value::Int(5)]],
            returning: names(&["hits", "tag"]),
        }))
        .await
        .unwrap();
    assert_eq!(
        batch_to_strings(inserted.returning.as_ref().unwrap()),
        vec![vec![Some("5".into()), Some("blue".into())]]
    );
    let deleted = tx
        .execute(&WriteOp::Delete(Delete {
            target: tags.clone(),
            filter: Predicate::Always,
            returning: names(&["hits"]),
        }))
        .await
        .unwrap();
    assert_eq!(deleted.affected_rows, 2);
    let mut hits = batch_to_strings(deleted.returning.as_ref().unwrap());
    hits.sort();
    assert_eq!(hits, vec![vec![Some("2".into())], vec![Some("5".into())]]);
    tx.rollback().await.unwrap();
    db.drop_db().await;
}

#[tokio::test]
async fn emulated_returning_covers_many_rows() {
    let db = TestDb::create(
        "write_many",
        &[
            "CREATE TABLE digits (d INT)",
            "INSERT INTO digits VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9)",
            "CREATE TABLE counters (id INT PRIMARY KEY, n INT NOT NULL)",
            "INSERT INTO counters SELECT a.d + 10 * b.d + 100 * c.d + 1000 * e.d, 0 \
             FROM digits a, digits b, digits c, digits e WHERE e.d < 3",
        ],
    )
    .await;
    let connector = MySqlConnector::new(&db.config("many")).unwrap();
    let counters = target(&connector, &db.name, "counters").await;
    let mut tx = connector.begin().await.unwrap();
    let outcome = tx
        .execute(&WriteOp::Update(Update {
            increment: Vec::new(),
            json: Vec::new(),
            target: counters.clone(),
            set: vec![("n".into(), Value::Int(7))],
            filter: Predicate::Always,
            returning: names(&["id", "n"]),
        }))
        .await
        .unwrap();
    assert_eq!(outcome.affected_rows, 3_000);
    let rows = batch_to_strings(outcome.returning.as_ref().unwrap());
    assert_eq!(rows.len(), 3_000);
    assert!(rows.iter().all(|r| r[1].as_deref() == Some("7")));
    let outcome = tx
        .execute(&WriteOp::Delete(Delete {
            target: counters.clone(),
            filter: Predicate::Always,
            returning: names(&["id"]),
        }))
        .await
        .unwrap();
    assert_eq!(outcome.affected_rows, 3_000);
    assert_eq!(outcome.returning.unwrap().num_rows(), 3_000);
    tx.commit().await.unwrap();
    db.drop_db().await;
}
