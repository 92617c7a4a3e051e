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

use arrow_schema::DataType;
use tributary_connector::render::{check_columns, render_delete, render_update};
use tributary_connector::{
    ConnectorError, Delete, Insert, Result, SqlBuilder, Statement, Update, WriteTarget,
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

/// Appends `RETURNING "A", "B" INTO :n+1, :n+2`.
fn with_returning(statement: Statement, returning: Vec<OutColumn>) -> WriteStatement {
    if returning.is_empty() {
        return WriteStatement {
            statement,
            returning,
        };
    }
    let Statement { mut sql, params } = statement;
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
        statement: Statement { sql, params },
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
