//! Renders writes as Oracle SQL: every value a positional bind (`:1`), every
//! identifier checked against the catalog and quoted, and returned columns as
//! `RETURNING "A", "B" INTO :n, :m` out binds typed by the catalog.
//!
//! - INSERT: one statement per row, all in the caller's transaction.
//!   Oracle's multi-row forms (`INSERT ALL`, `INSERT … SELECT … UNION ALL`)
//!   take no RETURNING clause, and a row without values is written as
//!   `("<first column>") VALUES (DEFAULT)` (Oracle has no `DEFAULT VALUES`).
//! - UPDATE / DELETE: one statement; with returning, each out bind receives
//!   one value per affected row (the driver's DML-returning arrays).
//! - Out binds follow the in binds: `INSERT … VALUES (:1, :2) RETURNING "ID"
//!   INTO :3`.
//! - A lock is `SELECT … FOR UPDATE`, its columns read as a query reads
//!   them.
//! - Oracle stores the empty string as NULL: writing `''` stores NULL, and a
//!   filter `= ''` matches no row. Booleans are bound as 1 / 0 (`NUMBER(1)`
//!   before 23ai).

use arrow_schema::DataType;
use tributary_connector::render::{check_columns, push_predicate, render_delete, render_update};
use tributary_connector::{
    ConnectorError, Delete, Insert, Lock, Result, SqlBuilder, Statement, Update, WriteTarget,
};
use tributary_schema_cache::Generated;

use crate::dialect::OracleDialect;
use crate::types::{Decode, OutBind, declared_length, parse_native_type};

/// A write statement with the out binds of its RETURNING clause.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteStatement {
    /// The SQL and its in binds (`:1` … `:n`).
    pub statement: Statement,
    /// The returned columns, bound as `:n+1` … in this order.
    pub returning: Vec<OutColumn>,
}

/// One returned column: its name, out-bind type, how its values are read
/// (as a query reads them) and its catalog Arrow type.
#[derive(Debug, Clone, PartialEq)]
pub struct OutColumn {
    pub name: String,
    pub bind: OutBind,
    pub decode: Decode,
    pub data_type: DataType,
}

/// One statement per row of `op`.
pub fn render_insert(op: &Insert) -> Result<Vec<WriteStatement>> {
    check_columns(&op.target, op.columns.iter().map(String::as_str))?;
    let returning = out_columns(&op.target, &op.returning)?;
    if op.rows.is_empty() {
        return Err(ConnectorError::invalid_input(
            "an insert needs at least one row",
        ));
    }
    let default_column = if op.columns.is_empty() {
        Some(first_writable_column(&op.target)?)
    } else {
        None
    };
    op.rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            if row.len() != op.columns.len() {
                return Err(ConnectorError::invalid_input(format!(
                    "row {i} has {} values for {} columns",
                    row.len(),
                    op.columns.len()
                )));
            }
            let mut b = SqlBuilder::new(&OracleDialect);
            b.push("INSERT INTO ").push_table(&op.target).push(" (");
            match &default_column {
                Some(column) => {
                    b.push_identifier(column).push(") VALUES (DEFAULT)");
                }
                None => {
                    b.push_identifier_list(&op.columns).push(") VALUES (");
                    for (j, value) in row.iter().enumerate() {
                        if j > 0 {
                            b.push(", ");
                        }
                        b.push_param(value.clone());
                    }
                    b.push(")");
                }
            }
            Ok(with_returning(b.finish(), returning.clone()))
        })
        .collect()
}

/// `UPDATE … SET … WHERE … [RETURNING … INTO …]`.
pub fn render_update_statement(op: &Update) -> Result<WriteStatement> {
    let returning = out_columns(&op.target, &op.returning)?;
    let mut plain = op.clone();
    plain.returning.clear();
    let statement = render_update(&OracleDialect, &plain)?;
    Ok(with_returning(statement, returning))
}

/// `DELETE FROM … WHERE … [RETURNING … INTO …]`.
pub fn render_delete_statement(op: &Delete) -> Result<WriteStatement> {
    let returning = out_columns(&op.target, &op.returning)?;
    let mut plain = op.clone();
    plain.returning.clear();
    let statement = render_delete(&OracleDialect, &plain)?;
    Ok(with_returning(statement, returning))
}

/// A lock's `SELECT … FOR UPDATE`, and how each column it reads is decoded
/// and typed. A JSON column is read as its text (`JSON_SERIALIZE`), as
/// reads do: the driver fetches no JSON value.
pub fn render_lock_statement(op: &Lock) -> Result<(Statement, Vec<(Decode, DataType)>)> {
    check_columns(&op.target, op.columns.iter().map(String::as_str))?;
    check_columns(&op.target, op.filter.columns())?;
    let mut columns = Vec::with_capacity(op.columns.len());
    let mut b = SqlBuilder::new(&OracleDialect);
    b.push("SELECT ");
    for (i, name) in op.columns.iter().enumerate() {
        let column = op
            .target
            .table
            .column(name)
            .ok_or_else(|| ConnectorError::invalid_input(format!("unknown column `{name}`")))?;
        if i > 0 {
            b.push(", ");
        }
        let decode = match parse_native_type(&column.native_type).decode() {
            Decode::Json => {
                b.push("JSON_SERIALIZE(")
                    .push_identifier(name)
                    .push(" RETURNING CLOB) ")
                    .push_identifier(name);
                Decode::Text
            }
            decode => {
                b.push_identifier(name);
                decode
            }
        };
        columns.push((decode, column.data_type.clone()));
    }
    b.push(" FROM ").push_table(&op.target).push(" WHERE ");
    push_predicate(&mut b, &op.filter);
    b.push(" FOR UPDATE");
    Ok((b.finish(), columns))
}

/// Appends `RETURNING "A", "B" INTO :n+1, :n+2`.
fn with_returning(statement: Statement, returning: Vec<OutColumn>) -> WriteStatement {
    if returning.is_empty() {
        return WriteStatement {
            statement,
            returning,
        };
    }
    let Statement {
        mut sql, params, ..
    } = statement;
    let names: Vec<String> = returning.iter().map(|c| c.name.clone()).collect();
    let mut b = SqlBuilder::new(&OracleDialect);
    b.push(" RETURNING ")
        .push_identifier_list(&names)
        .push(" INTO ");
    let mut clause = b.finish().sql;
    let first = params.len() + 1;
    let placeholders: Vec<String> = (first..first + returning.len())
        .map(|i| format!(":{i}"))
        .collect();
    clause.push_str(&placeholders.join(", "));
    sql.push_str(&clause);
    WriteStatement {
        statement: Statement::with_params(sql, params),
        returning,
    }
}

/// The out binds of `names`, typed by the catalog.
fn out_columns(target: &WriteTarget, names: &[String]) -> Result<Vec<OutColumn>> {
    check_columns(target, names.iter().map(String::as_str))?;
    names
        .iter()
        .map(|name| {
            let column = target
                .table
                .column(name)
                .ok_or_else(|| ConnectorError::invalid_input(format!("unknown column `{name}`")))?;
            let native = parse_native_type(&column.native_type);
            let bind = native
                .out_bind(declared_length(&column.native_type))
                .ok_or_else(|| {
                    ConnectorError::unsupported(format!(
                        "column `{name}` of {}.{} has the type {}, which Oracle cannot return \
                         from a write; leave it out of the returned columns",
                        target.schema, target.table.name, column.native_type
                    ))
                })?;
            Ok(OutColumn {
                name: name.clone(),
                bind,
                decode: native.decode(),
                data_type: column.data_type.clone(),
            })
        })
        .collect()
}

/// The column a row without values names: the first one that is not
/// computed (a virtual column takes no DEFAULT).
fn first_writable_column(target: &WriteTarget) -> Result<String> {
    target
        .table
        .columns
        .iter()
        .find(|c| !matches!(c.generated, Some(Generated::Computed { .. })))
        .map(|c| c.name.clone())
        .ok_or_else(|| {
            ConnectorError::invalid_input(format!(
                "{}.{} has no column to insert a default row into",
                target.schema, target.table.name
            ))
        })
}

#[cfg(test)]
mod tests {
    use arrow_schema::TimeUnit;
    use tributary_connector::{CompareOp, Predicate, Value};
    use tributary_schema_cache::{ColumnDef, KeyDef, TableDef, TableKind};

    use super::*;

    fn column(name: &str, native_type: &str, data_type: DataType) -> ColumnDef {
        ColumnDef {
            name: name.into(),
            ordinal: 0,
            native_type: native_type.into(),
            data_type,
            nullable: true,
            default: None,
            generated: None,
            comment: None,
            unsupported_type: None,
        }
    }

    /// `"App"."Order ""Lines"""`-style names: mixed case and a quote.
    fn target() -> WriteTarget {
        let mut id = column("ID", "NUMBER(*,0)", DataType::Decimal128(38, 0));
        id.generated = Some(Generated::Identity { always: false });
        WriteTarget {
            schema: "App".into(),
            table: TableDef {
                name: "Order Lines".into(),
                kind: TableKind::Table,
                comment: None,
                columns: vec![
                    id,
                    column("Name", "VARCHAR2(80)", DataType::Utf8),
                    column("QTY", "NUMBER(10)", DataType::Decimal128(10, 0)),
                    column("CODE", "CHAR(3)", DataType::Utf8),
                    column(
                        "CREATED",
                        "TIMESTAMP(6) WITH TIME ZONE",
                        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    ),
                    column(r#"we"ird"#, "NUMBER", DataType::Utf8),
                    column("NOTES", "LONG", DataType::Utf8),
                ],
                primary_key: Some(KeyDef {
                    name: Some("PK".into()),
                    columns: vec!["ID".into()],
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

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(ToString::to_string).collect()
    }

    const EVIL: &str = "x'); DROP TABLE \"App\".\"Order Lines\"; --";

    /// SQL and binds of each statement, for the snapshots.
    fn show(statements: &[WriteStatement]) -> String {
        statements
            .iter()
            .map(|s| {
                let outs: Vec<String> = s
                    .returning
                    .iter()
                    .map(|c| format!("{} {:?} as {}", c.name, c.bind, c.data_type))
                    .collect();
                format!(
                    "{}\n  in:  {:?}\n  out: {:?}",
                    s.statement.sql, s.statement.params, outs
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// No user value ever appears in the SQL text.
    fn assert_values_only_bound(statements: &[WriteStatement]) {
        for s in statements {
            assert!(!s.statement.sql.contains("DROP"), "{}", s.statement.sql);
            assert!(!s.statement.sql.contains('\''), "{}", s.statement.sql);
        }
    }

    #[test]
    fn insert_one_statement_per_row_with_returning_into() {
        let op = Insert {
            target: target(),
            columns: cols(&["Name", "QTY", "CODE"]),
            rows: vec![
                vec![
                    Value::Text("apple".into()),
                    Value::Int(3),
                    Value::Text("A1".into()),
                ],
                vec![Value::Text(EVIL.into()), Value::Null, Value::Null],
            ],
            returning: cols(&["ID", "Name", "CODE", "CREATED"]),
        };
        let statements = render_insert(&op).unwrap();
        assert_eq!(statements.len(), 2);
        assert_values_only_bound(&statements);
        assert_eq!(statements[1].statement.params[0], Value::Text(EVIL.into()));
        insta::assert_snapshot!(show(&statements));
    }

    #[test]
    fn insert_without_returning_and_with_only_defaults() {
        let op = Insert {
            target: target(),
            columns: cols(&[r#"we"ird"#]),
            rows: vec![vec![Value::Decimal(
                "123456789012345678901234567890.5".into(),
            )]],
            returning: vec![],
        };
        let plain = render_insert(&op).unwrap();
        let defaults = render_insert(&Insert {
            target: target(),
            columns: vec![],
            rows: vec![vec![], vec![]],
            returning: cols(&["ID"]),
        })
        .unwrap();
        insta::assert_snapshot!(format!("{}\n{}", show(&plain), show(&defaults)));
    }

    #[test]
    fn update_with_increment_filter_and_returning_arrays() {
        let op = Update {
            target: target(),
            set: vec![("Name".into(), Value::Text(EVIL.into()))],
            increment: vec![("QTY".into(), Value::Int(8))],
            json: Vec::new(),
            filter: Predicate::Or(vec![
                Predicate::eq("Name", Value::Text(EVIL.into())),
                Predicate::Compare {
                    column: "QTY".into(),
                    op: CompareOp::Lt,
                    value: Value::Int(0),
                },
                Predicate::InList {
                    column: "CODE".into(),
                    values: vec![Value::Text("A".into()), Value::Text("B".into())],
                    negated: true,
                },
            ]),
            returning: cols(&["ID", "QTY"]),
        };
        let statement = render_update_statement(&op).unwrap();
        assert_values_only_bound(std::slice::from_ref(&statement));
        // Out binds are numbered after the six in binds.
        assert!(
            statement
                .statement
                .sql
                .ends_with(r#"RETURNING "ID", "QTY" INTO :7, :8"#)
        );
        insta::assert_snapshot!(show(&[statement]));
    }

    #[test]
    fn delete_with_and_without_returning() {
        let returning = render_delete_statement(&Delete {
            target: target(),
            filter: Predicate::And(vec![
                Predicate::IsNull {
                    column: "CODE".into(),
                    negated: false,
                },
                Predicate::Not(Box::new(Predicate::eq("Name", Value::Text(EVIL.into())))),
            ]),
            returning: cols(&["Name", r#"we"ird"#]),
        })
        .unwrap();
        let plain = render_delete_statement(&Delete {
            target: target(),
            filter: Predicate::Always,
            returning: vec![],
        })
        .unwrap();
        assert_values_only_bound(&[returning.clone(), plain.clone()]);
        insta::assert_snapshot!(show(&[returning, plain]));
    }

    #[test]
    fn lock_selects_for_update() {
        let mut target = target();
        std::sync::Arc::make_mut(&mut target.table)
            .columns
            .push(column("DOC", "JSON", DataType::Utf8));
        let lock = |columns: &[&str]| Lock {
            target: target.clone(),
            filter: Predicate::eq("Name", Value::Text(EVIL.into())),
            columns: cols(columns),
        };
        let (statement, columns) =
            render_lock_statement(&lock(&["CODE", r#"we"ird"#, "DOC"])).unwrap();
        assert_eq!(
            statement.sql,
            r#"SELECT "CODE", "we""ird", JSON_SERIALIZE("DOC" RETURNING CLOB) "DOC" FROM "App"."Order Lines" WHERE "Name" = :1 FOR UPDATE"#
        );
        assert_eq!(statement.params, vec![Value::Text(EVIL.into())]);
        let decodes: Vec<Decode> = columns.iter().map(|(decode, _)| *decode).collect();
        assert_eq!(
            decodes,
            vec![Decode::PaddedText, Decode::Number, Decode::Text]
        );
        let err = render_lock_statement(&lock(&["Name", "nope"])).unwrap_err();
        assert_eq!(
            err.kind(),
            tributary_connector::ErrorKind::InvalidInput,
            "{err}"
        );
    }

    #[test]
    fn unknown_and_unreturnable_columns_are_refused() {
        let err = render_delete_statement(&Delete {
            target: target(),
            filter: Predicate::eq(r#"Name" = 1 OR "x"#, Value::Int(1)),
            returning: vec![],
        })
        .unwrap_err();
        assert_eq!(err.kind(), tributary_connector::ErrorKind::InvalidInput);
        let err = render_update_statement(&Update {
            target: target(),
            set: vec![("QTY".into(), Value::Int(1))],
            increment: vec![],
            json: Vec::new(),
            filter: Predicate::Always,
            returning: cols(&["NOTES"]),
        })
        .unwrap_err();
        assert_eq!(err.kind(), tributary_connector::ErrorKind::Unsupported);
        assert!(err.message().contains("LONG"), "{err}");
        let err = render_insert(&Insert {
            target: target(),
            columns: cols(&["Name", "QTY"]),
            rows: vec![vec![Value::Int(1)]],
            returning: vec![],
        })
        .unwrap_err();
        assert!(err.message().contains("row 0"), "{err}");
    }
}
