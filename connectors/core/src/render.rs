//! Renders write operations (and the key look-ups MySQL needs to emulate
//! RETURNING) as SQL text plus bound parameters. Every identifier is checked
//! against the catalog model and quoted by the dialect; every value becomes a
//! parameter — user values never appear in the SQL text.

use serde::Serialize;

use crate::dialect::Dialect;
use crate::error::{ConnectorError, Result};
use crate::value::Value;
use crate::write::{Delete, Insert, JsonEdit, Predicate, Update, WriteOp, WriteTarget};

/// SQL text plus the values bound to its placeholders, in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Statement {
    pub sql: String,
    pub params: Vec<Value>,
    /// Its text comes again and again (the engine's learned statements):
    /// worth keeping prepared on the connection even without parameters.
    /// Federated SQL inlines its values, so its texts seldom repeat.
    #[serde(skip)]
    pub repeats: bool,
}

impl Statement {
    /// A statement without parameters.
    pub fn new(sql: impl Into<String>) -> Self {
        Self::with_params(sql, Vec::new())
    }

    pub fn with_params(sql: impl Into<String>, params: Vec<Value>) -> Self {
        Self {
            sql: sql.into(),
            params,
            repeats: false,
        }
    }

    /// The statement, marked as one whose text comes again ([`Self::repeats`]).
    pub fn repeated(mut self) -> Self {
        self.repeats = true;
        self
    }
}

/// Builds one statement: syntax, quoted identifiers and parameters.
pub struct SqlBuilder<'d> {
    dialect: &'d dyn Dialect,
    sql: String,
    params: Vec<Value>,
}

impl<'d> SqlBuilder<'d> {
    pub fn new(dialect: &'d dyn Dialect) -> Self {
        Self {
            dialect,
            sql: String::new(),
            params: Vec::new(),
        }
    }

    /// Appends SQL syntax (never user input).
    pub fn push(&mut self, syntax: &str) -> &mut Self {
        self.sql.push_str(syntax);
        self
    }

    /// Appends a quoted identifier.
    pub fn push_identifier(&mut self, ident: &str) -> &mut Self {
        self.dialect.push_identifier(&mut self.sql, ident);
        self
    }

    /// Appends `schema.table`, quoted.
    pub fn push_table(&mut self, target: &WriteTarget) -> &mut Self {
        self.push_identifier(&target.schema)
            .push(".")
            .push_identifier(&target.table.name)
    }

    /// Appends a placeholder and binds `value` to it.
    pub fn push_param(&mut self, value: Value) -> &mut Self {
        self.params.push(value);
        self.dialect
            .push_placeholder(&mut self.sql, self.params.len());
        self
    }

    /// Appends quoted identifiers separated by commas.
    pub fn push_identifier_list(&mut self, idents: &[String]) -> &mut Self {
        for (i, ident) in idents.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.push_identifier(ident);
        }
        self
    }

    pub fn finish(self) -> Statement {
        Statement::with_params(self.sql, self.params)
    }
}

/// Fails unless every name is a column of the target table.
pub fn check_columns<'a>(
    target: &WriteTarget,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<()> {
    for name in names {
        if target.table.column(name).is_none() {
            return Err(ConnectorError::invalid_input(format!(
                "unknown column `{name}` in {}.{}",
                target.schema, target.table.name
            )));
        }
    }
    Ok(())
}

fn push_returning(b: &mut SqlBuilder<'_>, returning: &[String], supported: bool) {
    if supported && !returning.is_empty() {
        b.push(" RETURNING ").push_identifier_list(returning);
    }
}

/// `INSERT INTO … VALUES … [RETURNING …]` (RETURNING only where the dialect has it).
pub fn render_insert(dialect: &dyn Dialect, op: &Insert) -> Result<Statement> {
    check_columns(&op.target, op.columns.iter().map(String::as_str))?;
    check_columns(&op.target, op.returning.iter().map(String::as_str))?;
    if op.rows.is_empty() {
        return Err(ConnectorError::invalid_input(
            "an insert needs at least one row",
        ));
    }
    let mut b = SqlBuilder::new(dialect);
    b.push("INSERT INTO ").push_table(&op.target);
    if op.columns.is_empty() {
        if op.rows.len() > 1 {
            return Err(ConnectorError::invalid_input(
                "inserting several rows needs at least one column value per row",
            ));
        }
        b.push(" ").push(dialect.default_values());
    } else {
        b.push(" (")
            .push_identifier_list(&op.columns)
            .push(") VALUES ");
        for (i, row) in op.rows.iter().enumerate() {
            if row.len() != op.columns.len() {
                return Err(ConnectorError::invalid_input(format!(
                    "row {i} has {} values for {} columns",
                    row.len(),
                    op.columns.len()
                )));
            }
            b.push(if i == 0 { "(" } else { ", (" });
            for (j, value) in row.iter().enumerate() {
                if j > 0 {
                    b.push(", ");
                }
                b.push_param(value.clone());
            }
            b.push(")");
        }
    }
    push_returning(&mut b, &op.returning, dialect.returning().insert);
    Ok(b.finish())
}

/// Fails unless an update changes something, names only the target's
/// columns, changes each column once (set, incremented or edited) and
/// edits JSON documents only where `dialect` can.
pub fn check_update(dialect: &dyn Dialect, op: &Update) -> Result<()> {
    if op.set.is_empty() && op.increment.is_empty() && op.json.is_empty() {
        return Err(ConnectorError::invalid_input(
            "an update needs at least one column to set",
        ));
    }
    let set = op.set.iter().map(|(c, _)| c.as_str());
    let increment = op.increment.iter().map(|(c, _)| c.as_str());
    let json = op.json.iter().map(|(c, _)| c.as_str());
    let changed: Vec<&str> = set.chain(increment).chain(json).collect();
    check_columns(&op.target, changed.iter().copied())?;
    if let Some((i, column)) = changed
        .iter()
        .enumerate()
        .find(|(i, c)| changed[..*i].contains(c))
    {
        let sets = op.set.len();
        let twice = if i >= sets && i < sets + op.increment.len() {
            "both set and incremented"
        } else {
            "changed twice (set, incremented or edited as a JSON document)"
        };
        return Err(ConnectorError::invalid_input(format!(
            "column `{column}` is {twice}"
        )));
    }
    if !op.json.is_empty() && !dialect.jsonb_operators() {
        return Err(ConnectorError::invalid_input(
            "this database cannot edit JSON documents in place (`_append`, `_prepend`, \
             `_delete_key`, `_delete_elem`, `_delete_at_path` are PostgreSQL's jsonb \
             operators): set the whole document instead",
        ));
    }
    check_columns(&op.target, op.filter.columns())?;
    check_columns(&op.target, op.returning.iter().map(String::as_str))
}

/// `UPDATE … SET … WHERE … [RETURNING …]`.
pub fn render_update(dialect: &dyn Dialect, op: &Update) -> Result<Statement> {
    check_update(dialect, op)?;
    let mut b = SqlBuilder::new(dialect);
    b.push("UPDATE ").push_table(&op.target).push(" SET ");
    let mut first = true;
    let mut assign = |b: &mut SqlBuilder<'_>, column: &str| {
        if !std::mem::take(&mut first) {
            b.push(", ");
        }
        b.push_identifier(column).push(" = ");
    };
    for (column, value) in &op.set {
        assign(&mut b, column);
        b.push_param(value.clone());
    }
    for (column, value) in &op.increment {
        assign(&mut b, column);
        b.push_identifier(column)
            .push(" + ")
            .push_param(value.clone());
    }
    for (column, edit) in &op.json {
        assign(&mut b, column);
        push_json_edit(&mut b, column, edit);
    }
    b.push(" WHERE ");
    push_predicate(&mut b, &op.filter);
    push_returning(&mut b, &op.returning, dialect.returning().update);
    Ok(b.finish())
}

/// `edit` of `column`'s document with jsonb's operators, each operand a
/// parameter cast to the type the operator takes (`jsonb - text` and
/// `jsonb - integer` are both operators: the cast picks one).
fn push_json_edit(b: &mut SqlBuilder<'_>, column: &str, edit: &JsonEdit) {
    match edit {
        JsonEdit::Append(value) => {
            b.push_identifier(column)
                .push(" || ")
                .push_param(Value::Json(value.clone()))
                .push("::jsonb");
        }
        JsonEdit::Prepend(value) => {
            b.push_param(Value::Json(value.clone()))
                .push("::jsonb || ")
                .push_identifier(column);
        }
        JsonEdit::DeleteKey(key) => {
            b.push_identifier(column)
                .push(" - ")
                .push_param(Value::Text(key.clone()))
                .push("::text");
        }
        JsonEdit::DeleteElem(index) => {
            b.push_identifier(column)
                .push(" - ")
                .push_param(Value::Int(*index))
                .push("::integer");
        }
        JsonEdit::DeleteAtPath(path) => {
            let path = path.iter().cloned().map(Value::Text).collect();
            b.push_identifier(column)
                .push(" #- ")
                .push_param(Value::List(path))
                .push("::text[]");
        }
    }
}

/// `DELETE FROM … WHERE … [RETURNING …]`.
pub fn render_delete(dialect: &dyn Dialect, op: &Delete) -> Result<Statement> {
    check_columns(&op.target, op.filter.columns())?;
    check_columns(&op.target, op.returning.iter().map(String::as_str))?;
    let mut b = SqlBuilder::new(dialect);
    b.push("DELETE FROM ")
        .push_table(&op.target)
        .push(" WHERE ");
    push_predicate(&mut b, &op.filter);
    push_returning(&mut b, &op.returning, dialect.returning().delete);
    Ok(b.finish())
}

/// `SELECT columns FROM target WHERE filter [FOR UPDATE]`: the rows a write
/// will touch, locked, for dialects without RETURNING.
pub fn render_select(
    dialect: &dyn Dialect,
    target: &WriteTarget,
    columns: &[String],
    filter: &Predicate,
    for_update: bool,
) -> Result<Statement> {
    check_columns(target, columns.iter().map(String::as_str))?;
    check_columns(target, filter.columns())?;
    let mut b = SqlBuilder::new(dialect);
    b.push("SELECT ")
        .push_identifier_list(columns)
        .push(" FROM ")
        .push_table(target)
        .push(" WHERE ");
    push_predicate(&mut b, filter);
    if for_update {
        b.push(" FOR UPDATE");
    }
    Ok(b.finish())
}

/// A write in `dialect`'s SQL (a lock as `SELECT … FOR UPDATE`).
pub fn render_write(dialect: &dyn Dialect, op: &WriteOp) -> Result<Statement> {
    match op {
        WriteOp::Insert(insert) => render_insert(dialect, insert),
        WriteOp::Update(update) => render_update(dialect, update),
        WriteOp::Delete(delete) => render_delete(dialect, delete),
        WriteOp::Lock(lock) => {
            render_select(dialect, &lock.target, &lock.columns, &lock.filter, true)
        }
    }
}

/// A predicate matching exactly the rows whose key columns equal one of `keys`.
pub fn keys_predicate(key_columns: &[String], keys: &[Vec<Value>]) -> Predicate {
    Predicate::Or(
        keys.iter()
            .map(|key| {
                Predicate::And(
                    key_columns
                        .iter()
                        .zip(key)
                        .map(|(column, value)| Predicate::eq(column.clone(), value.clone()))
                        .collect(),
                )
            })
            .collect(),
    )
}

/// Appends a predicate. Empty `And` is true and empty `Or` is false, written
/// as `1 = 1` / `1 = 0` so every dialect accepts them.
pub fn push_predicate(b: &mut SqlBuilder<'_>, predicate: &Predicate) {
    match predicate {
        Predicate::Always => {
            b.push("1 = 1");
        }
        Predicate::And(items) | Predicate::Or(items) if items.is_empty() => {
            b.push(if matches!(predicate, Predicate::And(_)) {
                "1 = 1"
            } else {
                "1 = 0"
            });
        }
        Predicate::And(items) | Predicate::Or(items) => {
            let joiner = if matches!(predicate, Predicate::And(_)) {
                " AND "
            } else {
                " OR "
            };
            b.push("(");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    b.push(joiner);
                }
                push_predicate(b, item);
            }
            b.push(")");
        }
        Predicate::Not(inner) => {
            b.push("NOT (");
            push_predicate(b, inner);
            b.push(")");
        }
        Predicate::Compare { column, op, value } => {
            if value.is_null() {
                // `x = NULL` is never true; say what was meant.
                b.push_identifier(column)
                    .push(if *op == crate::write::CompareOp::NotEq {
                        " IS NOT NULL"
                    } else {
                        " IS NULL"
                    });
            } else {
                b.push_identifier(column)
                    .push(" ")
                    .push(op.sql())
                    .push(" ")
                    .push_param(value.clone());
            }
        }
        Predicate::IsNull { column, negated } => {
            b.push_identifier(column)
                .push(if *negated { " IS NOT NULL" } else { " IS NULL" });
        }
        Predicate::InList {
            values, negated, ..
        } if values.is_empty() => {
            b.push(if *negated { "1 = 1" } else { "1 = 0" });
        }
        Predicate::InList {
            column,
            values,
            negated,
        } => {
            b.push_identifier(column)
                .push(if *negated { " NOT IN (" } else { " IN (" });
            for (i, value) in values.iter().enumerate() {
                if i > 0 {
                    b.push(", ");
                }
                b.push_param(value.clone());
            }
            b.push(")");
        }
    }
}
