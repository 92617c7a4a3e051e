//! Golden T-SQL for every write form: the exact text (insta snapshots) and
//! the bound parameters. User values never appear in the SQL text; every
//! identifier is bracket-quoted with `]` doubled.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use arrow_schema::DataType;
use tributary_connector::{
    CompareOp, Delete, ErrorKind, Insert, JsonEdit, Lock, Predicate, Statement, Update, Value,
    WriteOp, WriteTarget,
};
use tributary_connector_sqlserver::render::render_write;
use tributary_schema_cache::{ColumnDef, KeyDef, TableDef, TableKind};

fn column(name: &str, data_type: DataType) -> ColumnDef {
    ColumnDef {
        name: name.into(),
        ordinal: 1,
        native_type: "nvarchar(100)".into(),
        data_type,
        nullable: true,
        default: None,
        generated: None,
        comment: None,
        unsupported_type: None,
    }
}

/// `[sales].[order items]` with awkward column names.
fn target() -> WriteTarget {
    WriteTarget {
        schema: "sales".into(),
        table: TableDef {
            name: "order items".into(),
            kind: TableKind::Table,
            comment: None,
            columns: vec![
                column("id", DataType::Int32),
                column("name", DataType::Utf8),
                column("qty", DataType::Int32),
                column("it's", DataType::Utf8),
                column("a]b", DataType::Utf8),
                column("blob", DataType::Binary),
            ],
            primary_key: Some(KeyDef {
                name: None,
                columns: vec!["id".into()],
            }),
            unique_constraints: vec![],
            foreign_keys: vec![],
            indexes: vec![],
            check_constraints: vec![],
            row_estimate: None,
            drift_fingerprint: String::new(),
        }
        .into(),
    }
}

const EVIL: &str = "x'); DROP TABLE [x]; --";

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

/// The statements as `sql` lines followed by their parameters, and a check
/// that no user value leaked into the text.
fn render(op: &WriteOp) -> String {
    let statements = render_write(op).expect("render");
    for Statement { sql, params, .. } in &statements {
        for value in params {
            if let Some(text) = value.to_text().filter(|t| t.len() > 2) {
                assert!(!sql.contains(&text), "value {text:?} leaked into {sql}");
            }
        }
        assert!(!sql.contains(EVIL), "{sql}");
        let placeholders = sql.matches("@P").count();
        assert_eq!(placeholders, params.len(), "{sql}");
    }
    statements
        .iter()
        .map(|s| format!("{}\n  -- {:?}", s.sql, s.params))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn insert_one_row_with_output() {
    let op = WriteOp::Insert(Insert {
        target: target(),
        columns: names(&["name", "qty", "it's", "a]b"]),
        rows: vec![vec![
            Value::Text(EVIL.into()),
            Value::Int(3),
            Value::Text("O'Neil".into()),
            Value::Null,
        ]],
        returning: names(&["id", "a]b"]),
    });
    insta::assert_snapshot!(render(&op));
}

#[test]
fn insert_many_rows_with_output() {
    let op = WriteOp::Insert(Insert {
        target: target(),
        columns: names(&["name", "blob"]),
        rows: vec![
            vec![Value::Text("apple".into()), Value::Bytes(vec![1, 2])],
            vec![Value::Text(EVIL.into()), Value::Null],
            vec![Value::Null, Value::Bytes(vec![])],
        ],
        returning: names(&["id", "name"]),
    });
    insta::assert_snapshot!(render(&op));
}

#[test]
fn insert_without_output() {
    let op = WriteOp::Insert(Insert {
        target: target(),
        columns: names(&["name"]),
        rows: vec![vec![Value::Text("plain".into())]],
        returning: vec![],
    });
    insta::assert_snapshot!(render(&op));
}

#[test]
fn insert_default_values() {
    let op = WriteOp::Insert(Insert {
        target: target(),
        columns: vec![],
        rows: vec![vec![]],
        returning: names(&["id"]),
    });
    insta::assert_snapshot!(render(&op));
}

#[test]
fn large_inserts_are_split_within_the_parameter_limit() {
    let rows: Vec<Vec<Value>> = (0..2500)
        .map(|i| vec![Value::Text(format!("n{i}")), Value::Int(i)])
        .collect();
    let op = WriteOp::Insert(Insert {
        target: target(),
        columns: names(&["name", "qty"]),
        rows,
        returning: names(&["id"]),
    });
    let statements = render_write(&op).unwrap();
    let rows: Vec<usize> = statements.iter().map(|s| s.params.len() / 2).collect();
    assert_eq!(rows, [1000, 1000, 500]);
    assert!(statements.iter().all(|s| s.params.len() <= 2000));
    assert!(
        statements[1].sql.ends_with("(@P1999, @P2000)"),
        "{}",
        &statements[1].sql[statements[1].sql.len() - 40..]
    );
    // Wide rows: fewer rows per statement.
    let wide = WriteOp::Insert(Insert {
        target: target(),
        columns: names(&["id", "name", "qty", "it's", "a]b", "blob"]),
        rows: vec![vec![Value::Int(1); 6]; 400],
        returning: vec![],
    });
    let statements = render_write(&wide).unwrap();
    assert_eq!(statements.len(), 2);
    assert_eq!(statements[0].params.len(), 333 * 6);
}

#[test]
fn update_with_set_increment_and_output() {
    let op = WriteOp::Update(Update {
        target: target(),
        set: vec![
            ("name".into(), Value::Text(EVIL.into())),
            ("blob".into(), Value::Null),
        ],
        increment: vec![("qty".into(), Value::Int(5))],
        json: Vec::new(),
        filter: Predicate::And(vec![
            Predicate::Or(vec![
                Predicate::eq("it's", Value::Text("O'Brien".into())),
                Predicate::Compare {
                    column: "qty".into(),
                    op: CompareOp::Gt,
                    value: Value::Int(10),
                },
            ]),
            Predicate::Not(Box::new(Predicate::InList {
                column: "id".into(),
                values: vec![Value::Int(1), Value::Int(2)],
                negated: false,
            })),
            Predicate::IsNull {
                column: "a]b".into(),
                negated: true,
            },
            Predicate::Compare {
                column: "name".into(),
                op: CompareOp::Like,
                value: Value::Text("%[_]%".into()),
            },
        ]),
        returning: names(&["id", "qty"]),
    });
    insta::assert_snapshot!(render(&op));
}

#[test]
fn update_increment_only_without_output() {
    let op = WriteOp::Update(Update {
        target: target(),
        set: vec![],
        increment: vec![("qty".into(), Value::Int(-1))],
        json: Vec::new(),
        filter: Predicate::Always,
        returning: vec![],
    });
    insta::assert_snapshot!(render(&op));
}

#[test]
fn json_edits_are_refused_not_rewritten() {
    // SQL Server's JSON_MODIFY merges and removes otherwise than jsonb.
    let op = WriteOp::Update(Update {
        target: target(),
        set: vec![],
        increment: vec![],
        json: vec![("qty".into(), JsonEdit::DeleteKey("k".into()))],
        filter: Predicate::Always,
        returning: vec![],
    });
    let error = render_write(&op).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput);
    assert!(
        error.to_string().contains("cannot edit JSON documents"),
        "{error}"
    );
}

#[test]
fn lock_takes_update_locks_to_the_transactions_end() {
    let op = WriteOp::Lock(Lock {
        target: target(),
        filter: Predicate::Or(vec![
            Predicate::eq("id", Value::Int(7)),
            Predicate::eq("a]b", Value::Text(EVIL.into())),
        ]),
        columns: names(&["id", "a]b", "it's"]),
    });
    insta::assert_snapshot!(render(&op));
}

#[test]
fn delete_with_output_and_edge_predicates() {
    let op = WriteOp::Delete(Delete {
        target: target(),
        filter: Predicate::Or(vec![
            Predicate::InList {
                column: "id".into(),
                values: vec![],
                negated: false,
            },
            Predicate::InList {
                column: "qty".into(),
                values: vec![],
                negated: true,
            },
            Predicate::And(vec![]),
            Predicate::Or(vec![]),
            Predicate::IsNull {
                column: "name".into(),
                negated: false,
            },
            Predicate::Compare {
                column: "it's".into(),
                op: CompareOp::NotEq,
                value: Value::Null,
            },
            Predicate::InList {
                column: "name".into(),
                values: vec![Value::Text(EVIL.into())],
                negated: true,
            },
        ]),
        returning: names(&["id", "name", "it's"]),
    });
    insta::assert_snapshot!(render(&op));
}

#[test]
fn unknown_columns_and_bad_shapes_are_refused() {
    let bad = [
        WriteOp::Delete(Delete {
            target: target(),
            filter: Predicate::eq("id]; DROP TABLE x; --", Value::Int(1)),
            returning: vec![],
        }),
        WriteOp::Insert(Insert {
            target: target(),
            columns: names(&["name"]),
            rows: vec![],
            returning: vec![],
        }),
        WriteOp::Insert(Insert {
            target: target(),
            columns: names(&["name"]),
            rows: vec![vec![]],
            returning: vec![],
        }),
        WriteOp::Insert(Insert {
            target: target(),
            columns: vec![],
            rows: vec![vec![], vec![]],
            returning: vec![],
        }),
        WriteOp::Update(Update {
            target: target(),
            set: vec![("qty".into(), Value::Int(1))],
            increment: vec![("qty".into(), Value::Int(1))],
            json: Vec::new(),
            filter: Predicate::Always,
            returning: vec![],
        }),
        WriteOp::Update(Update {
            target: target(),
            set: vec![],
            increment: vec![],
            json: Vec::new(),
            filter: Predicate::Always,
            returning: vec![],
        }),
        WriteOp::Insert(Insert {
            target: target(),
            columns: names(&["name"]),
            rows: vec![vec![Value::Int(1)]],
            returning: names(&["nope"]),
        }),
    ];
    for op in bad {
        let err = render_write(&op).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    }
}
