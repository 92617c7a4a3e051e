//! Golden SQL for the write path in every dialect: the exact text and the
//! bound parameters. User values never appear in the SQL.

use arrow_schema::DataType;
use tributary_connector::render::{
    keys_predicate, render_delete, render_insert, render_select, render_update,
};
use tributary_connector::{
    CompareOp, Delete, Dialect, Insert, JsonEdit, MySqlDialect, PostgresDialect, Predicate,
    SqliteDialect, Update, Value, WriteTarget,
};
use tributary_schema_cache::{ColumnDef, KeyDef, TableDef, TableKind};

fn column(name: &str) -> ColumnDef {
    ColumnDef {
        name: name.into(),
        ordinal: 1,
        native_type: "text".into(),
        data_type: DataType::Utf8,
        nullable: true,
        default: None,
        generated: None,
        comment: None,
        unsupported_type: None,
    }
}

fn target() -> WriteTarget {
    WriteTarget {
        schema: "sales".into(),
        table: TableDef {
            name: "order items".into(),
            kind: TableKind::Table,
            comment: None,
            columns: ["id", "name", "qty", "note\"`x"]
                .into_iter()
                .map(column)
                .collect(),
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

const EVIL: &str = "'; DROP TABLE x; --";

fn dialects() -> [(&'static str, Box<dyn Dialect>); 4] {
    [
        ("postgres", Box::new(PostgresDialect)),
        ("mysql", Box::new(MySqlDialect { mariadb: false })),
        ("mariadb", Box::new(MySqlDialect { mariadb: true })),
        ("sqlite", Box::new(SqliteDialect)),
    ]
}

fn golden(name: &str) -> &'static str {
    match name {
        "postgres" => concat!(
            r#"INSERT INTO "sales"."order items" ("name", "qty", "note""`x") VALUES ($1, $2, $3), ($4, $5, $6) RETURNING "id""#,
            "\n",
            r#"UPDATE "sales"."order items" SET "qty" = $1 WHERE (("name" = $2 OR "qty" > $3) AND "note""`x" IS NOT NULL AND NOT ("id" IN ($4, $5))) RETURNING "id", "qty""#,
            "\n",
            r#"DELETE FROM "sales"."order items" WHERE (("id" = $1) OR ("id" = $2)) RETURNING "name""#,
            "\n",
            r#"SELECT "id" FROM "sales"."order items" WHERE "name" LIKE $1 FOR UPDATE"#,
        ),
        "mysql" => concat!(
            "INSERT INTO `sales`.`order items` (`name`, `qty`, `note\"``x`) VALUES (?, ?, ?), (?, ?, ?)\n",
            "UPDATE `sales`.`order items` SET `qty` = ? WHERE ((`name` = ? OR `qty` > ?) AND `note\"``x` IS NOT NULL AND NOT (`id` IN (?, ?)))\n",
            "DELETE FROM `sales`.`order items` WHERE ((`id` = ?) OR (`id` = ?))\n",
            "SELECT `id` FROM `sales`.`order items` WHERE `name` LIKE ? FOR UPDATE",
        ),
        "mariadb" => concat!(
            "INSERT INTO `sales`.`order items` (`name`, `qty`, `note\"``x`) VALUES (?, ?, ?), (?, ?, ?) RETURNING `id`\n",
            "UPDATE `sales`.`order items` SET `qty` = ? WHERE ((`name` = ? OR `qty` > ?) AND `note\"``x` IS NOT NULL AND NOT (`id` IN (?, ?)))\n",
            "DELETE FROM `sales`.`order items` WHERE ((`id` = ?) OR (`id` = ?)) RETURNING `name`\n",
            "SELECT `id` FROM `sales`.`order items` WHERE `name` LIKE ? FOR UPDATE",
        ),
        _ => concat!(
            r#"INSERT INTO "sales"."order items" ("name", "qty", "note""`x") VALUES (?1, ?2, ?3), (?4, ?5, ?6) RETURNING "id""#,
            "\n",
            r#"UPDATE "sales"."order items" SET "qty" = ?1 WHERE (("name" = ?2 OR "qty" > ?3) AND "note""`x" IS NOT NULL AND NOT ("id" IN (?4, ?5))) RETURNING "id", "qty""#,
            "\n",
            r#"DELETE FROM "sales"."order items" WHERE (("id" = ?1) OR ("id" = ?2)) RETURNING "name""#,
            "\n",
            r#"SELECT "id" FROM "sales"."order items" WHERE "name" LIKE ?1 FOR UPDATE"#,
        ),
    }
}

#[test]
fn writes_render_the_same_plan_in_every_dialect() {
    let insert = Insert {
        target: target(),
        columns: vec!["name".into(), "qty".into(), "note\"`x".into()],
        rows: vec![
            vec![Value::Text(EVIL.into()), Value::Int(1), Value::Null],
            vec![
                Value::Text("b".into()),
                Value::Int(2),
                Value::Text("n".into()),
            ],
        ],
        returning: vec!["id".into()],
    };
    let update = Update {
        increment: Vec::new(),
        json: Vec::new(),
        target: target(),
        set: vec![("qty".into(), Value::Int(5))],
        filter: Predicate::And(vec![
            Predicate::Or(vec![
                Predicate::eq("name", Value::Text(EVIL.into())),
                Predicate::Compare {
                    column: "qty".into(),
                    op: CompareOp::Gt,
                    value: Value::Int(3),
                },
            ]),
            Predicate::IsNull {
                column: "note\"`x".into(),
                negated: true,
            },
            Predicate::Not(Box::new(Predicate::InList {
                column: "id".into(),
                values: vec![Value::Int(1), Value::Int(2)],
                negated: false,
            })),
        ]),
        returning: vec!["id".into(), "qty".into()],
    };
    let delete = Delete {
        target: target(),
        filter: keys_predicate(
            &["id".to_string()],
            &[vec![Value::Int(7)], vec![Value::Int(8)]],
        ),
        returning: vec!["name".into()],
    };
    let select_filter = Predicate::Compare {
        column: "name".into(),
        op: CompareOp::Like,
        value: Value::Text("a%".into()),
    };
    for (name, dialect) in dialects() {
        let statements = [
            render_insert(dialect.as_ref(), &insert).unwrap(),
            render_update(dialect.as_ref(), &update).unwrap(),
            render_delete(dialect.as_ref(), &delete).unwrap(),
            render_select(
                dialect.as_ref(),
                &target(),
                &["id".to_string()],
                &select_filter,
                true,
            )
            .unwrap(),
        ];
        let sql: Vec<&str> = statements.iter().map(|s| s.sql.as_str()).collect();
        assert_eq!(sql.join("\n"), golden(name), "dialect {name}");
        for statement in &statements {
            assert!(
                !statement.sql.contains("DROP TABLE"),
                "{name}: a value leaked into SQL: {}",
                statement.sql
            );
        }
        assert_eq!(statements[0].params.len(), 6);
        assert_eq!(statements[0].params[0], Value::Text(EVIL.into()));
        assert_eq!(
            statements[1].params,
            vec![
                Value::Int(5),
                Value::Text(EVIL.into()),
                Value::Int(3),
                Value::Int(1),
                Value::Int(2)
            ]
        );
    }
}

#[test]
fn edge_cases() {
    let pg = PostgresDialect;
    // NULL comparisons mean IS [NOT] NULL; empty lists and trees stay valid SQL.
    let delete = Delete {
        target: target(),
        filter: Predicate::And(vec![
            Predicate::eq("name", Value::Null),
            Predicate::Compare {
                column: "qty".into(),
                op: CompareOp::NotEq,
                value: Value::Null,
            },
            Predicate::InList {
                column: "id".into(),
                values: vec![],
                negated: false,
            },
            Predicate::Or(vec![]),
            Predicate::And(vec![]),
        ]),
        returning: vec![],
    };
    assert_eq!(
        render_delete(&pg, &delete).unwrap().sql,
        r#"DELETE FROM "sales"."order items" WHERE ("name" IS NULL AND "qty" IS NOT NULL AND 1 = 0 AND 1 = 0 AND 1 = 1)"#
    );
    // Default-only rows, per dialect.
    let defaults = Insert {
        target: target(),
        columns: vec![],
        rows: vec![vec![]],
        returning: vec![],
    };
    assert_eq!(
        render_insert(&pg, &defaults).unwrap().sql,
        r#"INSERT INTO "sales"."order items" DEFAULT VALUES"#
    );
    assert_eq!(
        render_insert(&MySqlDialect::default(), &defaults)
            .unwrap()
            .sql,
        "INSERT INTO `sales`.`order items` () VALUES ()"
    );
}

#[test]
fn increments_add_in_the_database() {
    let update = Update {
        target: target(),
        set: vec![("name".into(), Value::Text(EVIL.into()))],
        increment: vec![("qty".into(), Value::Int(2))],
        json: Vec::new(),
        filter: Predicate::eq("id", Value::Int(7)),
        returning: vec![],
    };
    let expected = [
        (
            "postgres",
            r#"UPDATE "sales"."order items" SET "name" = $1, "qty" = "qty" + $2 WHERE "id" = $3"#,
        ),
        (
            "mysql",
            "UPDATE `sales`.`order items` SET `name` = ?, `qty` = `qty` + ? WHERE `id` = ?",
        ),
        (
            "mariadb",
            "UPDATE `sales`.`order items` SET `name` = ?, `qty` = `qty` + ? WHERE `id` = ?",
        ),
        (
            "sqlite",
            r#"UPDATE "sales"."order items" SET "name" = ?1, "qty" = "qty" + ?2 WHERE "id" = ?3"#,
        ),
    ];
    for ((name, dialect), (expected_name, sql)) in dialects().into_iter().zip(expected) {
        assert_eq!(name, expected_name);
        let statement = render_update(dialect.as_ref(), &update).unwrap();
        assert_eq!(statement.sql, sql, "dialect {name}");
        assert_eq!(
            statement.params,
            vec![Value::Text(EVIL.into()), Value::Int(2), Value::Int(7)]
        );
    }
    let only_increment = Update {
        set: vec![],
        ..update.clone()
    };
    assert_eq!(
        render_update(&PostgresDialect, &only_increment)
            .unwrap()
            .sql,
        r#"UPDATE "sales"."order items" SET "qty" = "qty" + $1 WHERE "id" = $2"#
    );
    let both = Update {
        set: vec![("qty".into(), Value::Int(1))],
        ..update
    };
    assert!(
        render_update(&PostgresDialect, &both)
            .unwrap_err()
            .to_string()
            .contains("both set and incremented")
    );
}

#[test]
fn json_edits_use_jsonbs_operators_with_bound_operands() {
    let update = Update {
        target: target(),
        set: vec![("qty".into(), Value::Int(1))],
        increment: Vec::new(),
        json: vec![
            (
                "name".into(),
                JsonEdit::Append(serde_json::json!({"k": EVIL})),
            ),
            (
                "note\"`x".into(),
                JsonEdit::DeleteAtPath(vec![EVIL.into(), "0".into()]),
            ),
        ],
        filter: Predicate::eq("id", Value::Int(7)),
        returning: vec!["id".into()],
    };
    let statement = render_update(&PostgresDialect, &update).unwrap();
    assert_eq!(
        statement.sql,
        r#"UPDATE "sales"."order items" SET "qty" = $1, "name" = "name" || $2::jsonb, "note""`x" = "note""`x" #- $3::text[] WHERE "id" = $4 RETURNING "id""#
    );
    assert_eq!(
        statement.params,
        vec![
            Value::Int(1),
            Value::Json(serde_json::json!({"k": EVIL})),
            Value::List(vec![Value::Text(EVIL.into()), Value::Text("0".into())]),
            Value::Int(7),
        ]
    );
    let others = Update {
        set: Vec::new(),
        json: vec![
            ("name".into(), JsonEdit::Prepend(serde_json::json!([1]))),
            ("qty".into(), JsonEdit::DeleteKey(EVIL.into())),
            ("note\"`x".into(), JsonEdit::DeleteElem(-1)),
        ],
        returning: Vec::new(),
        ..update.clone()
    };
    let statement = render_update(&PostgresDialect, &others).unwrap();
    assert_eq!(
        statement.sql,
        r#"UPDATE "sales"."order items" SET "name" = $1::jsonb || "name", "qty" = "qty" - $2::text, "note""`x" = "note""`x" - $3::integer WHERE "id" = $4"#
    );
    assert_eq!(
        statement.params,
        vec![
            Value::Json(serde_json::json!([1])),
            Value::Text(EVIL.into()),
            Value::Int(-1),
            Value::Int(7),
        ]
    );
    // Other databases merge and remove differently: refused, not rewritten.
    for (name, dialect) in dialects().into_iter().skip(1) {
        let error = render_update(dialect.as_ref(), &others).unwrap_err();
        assert!(
            error.to_string().contains("cannot edit JSON documents"),
            "{name}: {error}"
        );
    }
    // A column changes once.
    let twice = Update {
        json: vec![("qty".into(), JsonEdit::DeleteElem(0))],
        ..update
    };
    let error = render_update(&PostgresDialect, &twice).unwrap_err();
    assert!(
        error.to_string().contains("`qty` is changed twice"),
        "{error}"
    );
}

#[test]
fn identifiers_must_come_from_the_catalog() {
    let pg = PostgresDialect;
    let bad_set = Update {
        increment: Vec::new(),
        json: Vec::new(),
        target: target(),
        set: vec![("qty = 0; --".into(), Value::Int(1))],
        filter: Predicate::Always,
        returning: vec![],
    };
    assert!(
        render_update(&pg, &bad_set)
            .unwrap_err()
            .to_string()
            .contains("unknown column `qty = 0; --`")
    );
    let bad_returning = Delete {
        target: target(),
        filter: Predicate::Always,
        returning: vec!["password".into()],
    };
    assert!(render_delete(&pg, &bad_returning).is_err());
    let ragged = Insert {
        target: target(),
        columns: vec!["name".into(), "qty".into()],
        rows: vec![vec![Value::Int(1)]],
        returning: vec![],
    };
    assert!(
        render_insert(&pg, &ragged)
            .unwrap_err()
            .to_string()
            .contains("row 0 has 1 values for 2 columns")
    );
    let nothing = Update {
        increment: Vec::new(),
        json: Vec::new(),
        target: target(),
        set: vec![],
        filter: Predicate::Always,
        returning: vec![],
    };
    assert!(render_update(&pg, &nothing).is_err());
    let no_rows = Insert {
        target: target(),
        columns: vec!["name".into()],
        rows: vec![],
        returning: vec![],
    };
    assert!(render_insert(&pg, &no_rows).is_err());
}
