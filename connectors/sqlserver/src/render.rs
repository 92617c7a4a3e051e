//! Write statements in T-SQL: `INSERT … OUTPUT INSERTED.… VALUES …`,
//! `UPDATE … SET … OUTPUT INSERTED.… WHERE …`, `DELETE FROM … OUTPUT
//! DELETED.… WHERE …`, with every identifier checked against the catalog and
//! bracket-quoted, and every value a `@Pn` parameter.
//!
//! * `OUTPUT` returns one row per affected row, read as the write's
//!   returned rows. SQL Server refuses `OUTPUT` without `INTO` on a table
//!   with enabled triggers (error 334); such writes fail with an
//!   `Unsupported` error saying to write without returning columns. (An
//!   `OUTPUT … INTO @table` rewrite would need the table variable's column
//!   types, which the catalog only knows as text.)
//! * A NULL written to a column is the `NULL` keyword, not a parameter: an
//!   untyped parameter is sent as `nvarchar`, which SQL Server does not
//!   convert to `varbinary` implicitly.
//! * An explicit value for an `IDENTITY` column is not accepted by SQL
//!   Server (error 544, an `InvalidInput` error here): the connector does not
//!   turn `IDENTITY_INSERT` on, so identity values stay the database's own,
//!   as PostgreSQL's `GENERATED ALWAYS` identities do.
//! * A lock reads the rows with `WITH (UPDLOCK, ROWLOCK, HOLDLOCK)`: update
//!   locks kept to the transaction's end (T-SQL has no `FOR UPDATE`).
//! * An insert of many rows is split into statements of at most 1000 rows
//!   (T-SQL's limit for a `VALUES` list) and 2000 parameters (a request
//!   takes at most 2100).

use tributary_connector::render::{check_columns, check_update, push_predicate};
use tributary_connector::{
    ConnectorError, Delete, Insert, Lock, Result, SqlBuilder, Statement, Update, Value, WriteOp,
};

use crate::dialect::SqlServerDialect;

/// Rows in one `VALUES` list at most.
const MAX_ROWS: usize = 1000;
/// Parameters in one statement at most (SQL Server allows 2100 per request).
const MAX_PARAMS: usize = 2000;

/// The statements of one write, run in order; their returned rows together
/// are the write's.
pub fn render_write(op: &WriteOp) -> Result<Vec<Statement>> {
    match op {
        WriteOp::Insert(insert) => render_insert(insert),
        WriteOp::Update(update) => render_update(update).map(|s| vec![s]),
        WriteOp::Delete(delete) => render_delete(delete).map(|s| vec![s]),
        WriteOp::Lock(lock) => render_lock(lock).map(|s| vec![s]),
    }
}

/// ` OUTPUT INSERTED.[a], INSERTED.[b]` (nothing without columns).
fn push_output(b: &mut SqlBuilder<'_>, prefix: &str, returning: &[String]) {
    for (i, column) in returning.iter().enumerate() {
        b.push(if i == 0 { " OUTPUT " } else { ", " })
            .push(prefix)
            .push(".")
            .push_identifier(column);
    }
}

/// A value to write: a parameter, or the `NULL` keyword.
fn push_value(b: &mut SqlBuilder<'_>, value: &Value) {
    if value.is_null() {
        b.push("NULL");
    } else {
        b.push_param(value.clone());
    }
}

fn render_insert(op: &Insert) -> Result<Vec<Statement>> {
    check_columns(&op.target, op.columns.iter().map(String::as_str))?;
    check_columns(&op.target, op.returning.iter().map(String::as_str))?;
    if op.rows.is_empty() {
        return Err(ConnectorError::invalid_input(
            "an insert needs at least one row",
        ));
    }
    if op.columns.is_empty() {
        if op.rows.len() > 1 {
            return Err(ConnectorError::invalid_input(
                "inserting several rows needs at least one column value per row",
            ));
        }
        let mut b = SqlBuilder::new(&SqlServerDialect);
        b.push("INSERT INTO ").push_table(&op.target);
        push_output(&mut b, "INSERTED", &op.returning);
        b.push(" DEFAULT VALUES");
        return Ok(vec![b.finish()]);
    }
    if op.columns.len() > MAX_PARAMS {
        return Err(ConnectorError::invalid_input(format!(
            "an insert of more than {MAX_PARAMS} columns does not fit one SQL Server statement"
        )));
    }
    for (i, row) in op.rows.iter().enumerate() {
        if row.len() != op.columns.len() {
            return Err(ConnectorError::invalid_input(format!(
                "row {i} has {} values for {} columns",
                row.len(),
                op.columns.len()
            )));
        }
    }
    let rows_per_statement = (MAX_PARAMS / op.columns.len()).clamp(1, MAX_ROWS);
    Ok(op
        .rows
        .chunks(rows_per_statement)
        .map(|rows| {
            let mut b = SqlBuilder::new(&SqlServerDialect);
            b.push("INSERT INTO ")
                .push_table(&op.target)
                .push(" (")
                .push_identifier_list(&op.columns)
                .push(")");
            push_output(&mut b, "INSERTED", &op.returning);
            b.push(" VALUES ");
            for (i, row) in rows.iter().enumerate() {
                b.push(if i == 0 { "(" } else { ", (" });
                for (j, value) in row.iter().enumerate() {
                    if j > 0 {
                        b.push(", ");
                    }
                    push_value(&mut b, value);
                }
                b.push(")");
            }
            b.finish()
        })
        .collect())
}

fn render_update(op: &Update) -> Result<Statement> {
    check_update(&SqlServerDialect, op)?;
    let mut b = SqlBuilder::new(&SqlServerDialect);
    b.push("UPDATE ").push_table(&op.target).push(" SET ");
    let mut first = true;
    for (column, value) in &op.set {
        if !first {
            b.push(", ");
        }
        first = false;
        b.push_identifier(column).push(" = ");
        push_value(&mut b, value);
    }
    for (column, value) in &op.increment {
        if !first {
            b.push(", ");
        }
        first = false;
        b.push_identifier(column)
            .push(" = ")
            .push_identifier(column)
            .push(" + ")
            .push_param(value.clone());
    }
    push_output(&mut b, "INSERTED", &op.returning);
    b.push(" WHERE ");
    push_predicate(&mut b, &op.filter);
    Ok(b.finish())
}

fn render_lock(op: &Lock) -> Result<Statement> {
    check_columns(&op.target, op.filter.columns())?;
    check_columns(&op.target, op.columns.iter().map(String::as_str))?;
    let mut b = SqlBuilder::new(&SqlServerDialect);
    b.push("SELECT ")
        .push_identifier_list(&op.columns)
        .push(" FROM ")
        .push_table(&op.target)
        .push(" WITH (UPDLOCK, ROWLOCK, HOLDLOCK) WHERE ");
    push_predicate(&mut b, &op.filter);
    Ok(b.finish())
}

fn render_delete(op: &Delete) -> Result<Statement> {
    check_columns(&op.target, op.filter.columns())?;
    check_columns(&op.target, op.returning.iter().map(String::as_str))?;
    let mut b = SqlBuilder::new(&SqlServerDialect);
    b.push("DELETE FROM ").push_table(&op.target);
    push_output(&mut b, "DELETED", &op.returning);
    b.push(" WHERE ");
    push_predicate(&mut b, &op.filter);
    Ok(b.finish())
}
