//! Filter JSON, spelled with NocoBase's operators (`{"o_totalprice": {"$gt":
//! 100}, "customer": {"c_name": {"$eq": "x"}}}`, plus `$not` over a filter
//! for GraphQL's `_not`), compiled to a DataFusion
//! expression over one table: permission row filters and the REST API's
//! `filter` parameter. Values become literals of the column's
//! type (a value that is not one is an error naming its path), variables
//! (`{{$user.id}}`, `{{$user.claims.<path>}}`, `{{$now}}`) are bound from
//! the request, and filters through relations become `EXISTS` subqueries.
//! The date operators (`$dateOn`, `$dateBefore`, …) turn a partial date into
//! the period it names in the context's time zone and compare with its
//! boundaries (`date.rs`); the array operators (`$match`, `$anyOf`, …) work
//! on list columns (PostgreSQL arrays) through DataFusion's array functions,
//! and on JSON columns holding arrays through `json_array.rs`; JSON
//! documents are tested as jsonb (`$jsonContains`, `$hasKey`, …) through
//! `json_document.rs`.

mod date;
mod json_array;
mod json_document;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::sync::Arc;

use chrono::Utc;
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, TableReference};
use datafusion::datasource::{TableProvider, provider_as_source};
use datafusion::functions_nested::expr_fn::{array_has_all, array_has_any};
use datafusion::logical_expr::expr_fn::{exists, not_exists, out_ref_col};
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, Operator, binary_expr, lit};
use datafusion::scalar::ScalarValue;
use serde_json::Value;
use tributary_schema_cache::{CatalogSnapshot, ColumnDef, TableDef, TableRef};

use json_document::Test;
pub use json_document::{
    TEXT as JSON_TEXT, mysql_sql as json_mysql_sql, postgres_sql as json_postgres_sql,
    pushable_to_postgres as json_pushable_to_postgres, text as json_text,
};

/// A text column of `table` holding JSON (`json`, `jsonb`, MySQL's `JSON`).
pub fn is_json(table: &TableDef, name: &str) -> bool {
    table
        .columns
        .iter()
        .any(|c| c.name == name && is_json_column(c))
}

/// A text column holding JSON (`json`, `jsonb`, MySQL's `JSON`).
pub fn is_json_column(column: &ColumnDef) -> bool {
    matches!(
        column.data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    ) && matches!(
        column.native_type.to_ascii_lowercase().as_str(),
        "json" | "jsonb"
    )
}

/// Whether the function `name` reads a JSON column as a document (our
/// containment and key tests, the array items, `json_text` itself): what
/// it is given is the column, not its text.
pub fn reads_documents(name: &str) -> bool {
    name == json_array::ITEMS || json_document::reads_documents(name)
}

/// What is wrong with a filter, and where (`$and[1].o_status.$eq`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("filter at `{path}`: {message}")]
pub struct FilterError {
    pub path: String,
    pub message: String,
}

/// The values `{{$…}}` placeholders take for one request.
#[derive(Debug, Clone, Default)]
pub struct Variables {
    pub user_id: Option<String>,
    pub role: String,
    pub claims: Value,
    /// `{{$now}}`, as RFC 3339 text in UTC.
    pub now: String,
}

/// Table providers by table, for the subqueries of relation filters.
pub type Providers<'a> = dyn Fn(&TableRef) -> Option<Arc<dyn TableProvider>> + Send + Sync + 'a;

/// Everything a filter is compiled against.
pub struct Context<'a> {
    pub snapshot: &'a CatalogSnapshot,
    pub providers: &'a Providers<'a>,
    /// `None` checks a filter without a request: variables become NULL.
    pub variables: Option<&'a Variables>,
    /// The zone partial dates (`2024-05-01`) are read in by the date
    /// operators, and plain timestamp columns' wall-clock times are taken
    /// in; `None` is UTC.
    pub time_zone: Option<Tz>,
}

/// Compiles `filter` for rows of `table`, whose columns are read under
/// `qualifier` in the plan the expression goes into.
pub fn compile(
    filter: &Value,
    table: &TableRef,
    qualifier: &TableReference,
    cx: &Context<'_>,
) -> Result<Expr, FilterError> {
    let scope = Scope::new(table, qualifier.clone(), cx, 0).map_err(|m| FilterError {
        path: String::new(),
        message: m,
    })?;
    scope.object(filter, "")
}

/// The columns of its table a compiled filter reads, its relation
/// subqueries' references to them (`EXISTS … WHERE inner.key =
/// outer.key`) included.
pub fn columns_read(predicate: &Expr) -> HashSet<String> {
    let mut names = HashSet::new();
    // The closure never fails: nothing to report.
    let _ = predicate.apply(|e| {
        match e {
            Expr::Column(c) => {
                names.insert(c.name.clone());
            }
            Expr::Exists(exists) => {
                for outer in &exists.subquery.outer_ref_columns {
                    if let Expr::OuterReferenceColumn(_, c) = outer {
                        names.insert(c.name.clone());
                    }
                }
            }
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    names
}

/// True when the filter (or preset) text mentions `{{$now}}`: an answer
/// that depends on the clock must not be cached.
pub fn uses_now(value: &Value) -> bool {
    mentions(value, "$now")
}

/// True when the filter (or preset) text mentions the caller
/// (`{{$user.id}}`, `{{$user.role}}`, `{{$user.claims.…}}`): its rows
/// depend on who asks.
pub fn uses_caller(value: &Value) -> bool {
    mentions(value, "$user")
}

/// Whether a text of the filter names `variable`.
fn mentions(value: &Value, variable: &str) -> bool {
    match value {
        Value::String(s) => s.contains(variable),
        Value::Array(items) => items.iter().any(|item| mentions(item, variable)),
        Value::Object(map) => map.values().any(|item| mentions(item, variable)),
        _ => false,
    }
}

/// One table a filter (or a nested relation filter) talks about.
struct Scope<'a> {
    table: TableRef,
    def: &'a TableDef,
    qualifier: TableReference,
    cx: &'a Context<'a>,
    /// Nesting depth of relation subqueries (names their aliases).
    depth: usize,
}

impl<'a> Scope<'a> {
    fn new(
        table: &TableRef,
        qualifier: TableReference,
        cx: &'a Context<'a>,
        depth: usize,
    ) -> Result<Self, String> {
        let def = cx
            .snapshot
            .sources
            .get(&table.source)
            .and_then(|entry| entry.schema.as_deref())
            .and_then(|model| model.schemas.get(&table.schema))
            .and_then(|schema| schema.tables.get(&table.table))
            .ok_or_else(|| format!("table {table} is not in the catalog"))?;
        Ok(Self {
            table: table.clone(),
            def,
            qualifier,
            cx,
            depth,
        })
    }

    fn error(path: &str, message: impl Into<String>) -> FilterError {
        FilterError {
            path: path.to_string(),
            message: message.into(),
        }
    }

    /// `{ key: condition, ... }`: every entry must hold.
    fn object(&self, filter: &Value, path: &str) -> Result<Expr, FilterError> {
        let Value::Object(entries) = filter else {
            return Err(Self::error(path, "expected an object"));
        };
        let mut parts = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let here = join_path(path, key);
            parts.push(match key.as_str() {
                "$and" | "$or" => {
                    let Value::Array(items) = value else {
                        return Err(Self::error(&here, "expected an array of filters"));
                    };
                    let exprs = items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| self.object(item, &format!("{here}[{i}]")))
                        .collect::<Result<Vec<_>, _>>()?;
                    let empty = lit(key == "$and");
                    if key == "$and" {
                        exprs.into_iter().reduce(Expr::and).unwrap_or(empty)
                    } else {
                        exprs.into_iter().reduce(Expr::or).unwrap_or(empty)
                    }
                }
                // SQL's NOT: a row where the inner filter is unknown (a
                // NULL compared) is kept by neither the filter nor its `$not`.
                "$not" => !self.object(value, &here)?,
                _ => self.entry(key, value, &here)?,
            });
        }
        Ok(parts.into_iter().reduce(Expr::and).unwrap_or(lit(true)))
    }

    /// A column condition, a relation filter, or a dotted path through relations.
    fn entry(&self, key: &str, value: &Value, path: &str) -> Result<Expr, FilterError> {
        if self.column_type(key).is_some() {
            return self.condition(key, value, path);
        }
        if let Some((head, rest)) = key.split_once('.') {
            let mut nested = serde_json::Map::new();
            nested.insert(rest.to_string(), value.clone());
            return self.related(head, &Value::Object(nested), path);
        }
        self.related(key, value, path)
    }

    fn column_type(&self, name: &str) -> Option<&DataType> {
        self.def
            .columns
            .iter()
            .find(|c| c.name == name)
            .map(|c| &c.data_type)
    }

    /// A text column holding JSON (`json`, `jsonb`, MySQL's `JSON`).
    fn is_json(&self, name: &str) -> bool {
        is_json(self.def, name)
    }

    fn column(&self, name: &str) -> Expr {
        Expr::Column(Column::new(Some(self.qualifier.clone()), name))
    }

    /// `value` is a plain value (equality) or an object of operators.
    fn condition(&self, name: &str, value: &Value, path: &str) -> Result<Expr, FilterError> {
        let Value::Object(ops) = value else {
            return self.operator(name, "$eq", value, path);
        };
        if ops.is_empty() {
            return Err(Self::error(path, "expected at least one operator"));
        }
        let parts = ops
            .iter()
            .map(|(op, operand)| self.operator(name, op, operand, &join_path(path, op)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(parts.into_iter().reduce(Expr::and).unwrap_or(lit(true)))
    }

    fn operator(
        &self,
        name: &str,
        op: &str,
        operand: &Value,
        path: &str,
    ) -> Result<Expr, FilterError> {
        let column = self.column(name);
        let data_type = self.column_type(name).cloned().unwrap_or(DataType::Utf8);
        let bound = substitute(operand, self.cx.variables);
        let value = || self.value(&bound, &data_type, path);
        let text = || self.text(&bound, path);
        let expr = match op {
            "$eq" => match &bound {
                Value::Null => column.is_null(),
                _ => column.eq(value()?),
            },
            // NocoBase's $ne keeps rows where the column is NULL.
            "$ne" => match &bound {
                Value::Null => column.is_not_null(),
                _ => column.clone().not_eq(value()?).or(column.is_null()),
            },
            "$gt" => column.gt(value()?),
            "$gte" => column.gt_eq(value()?),
            "$lt" => column.lt(value()?),
            "$lte" => column.lt_eq(value()?),
            "$in" | "$notIn" => {
                let Value::Array(items) = &bound else {
                    return Err(Self::error(path, "expected an array of values"));
                };
                let list = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.value(item, &data_type, &format!("{path}[{i}]")))
                    .collect::<Result<Vec<_>, _>>()?;
                if op == "$in" {
                    column.in_list(list, false)
                } else {
                    column.clone().in_list(list, true).or(column.is_null())
                }
            }
            "$is" => match &bound {
                Value::Null => column.is_null(),
                Value::Bool(true) => column.is_true(),
                Value::Bool(false) => column.is_false(),
                _ => return Err(Self::error(path, "expected null, true or false")),
            },
            "$exists" | "$notExists" => match (op == "$exists", &bound) {
                (exists, Value::Bool(b)) if exists == *b => column.is_not_null(),
                (_, Value::Bool(_)) => column.is_null(),
                _ => return Err(Self::error(path, "expected true or false")),
            },
            "$like" => column.like(lit(text()?)),
            "$notLike" => column.not_like(lit(text()?)),
            "$iLike" => column.ilike(lit(text()?)),
            "$notILike" => column.not_ilike(lit(text()?)),
            // POSIX-style regular expressions, as PostgreSQL's `~ ~* !~ !~*`
            // (sent there; the engine's regex syntax elsewhere).
            "$regex" | "$iRegex" | "$notRegex" | "$notIRegex" => {
                if !data_type.is_string() {
                    return Err(Self::error(path, format!("`{op}` needs a text column")));
                }
                let pattern = text()?;
                if let Err(error) = regex::Regex::new(&pattern) {
                    return Err(Self::error(
                        path,
                        format!("not a regular expression: {error}"),
                    ));
                }
                let op = match op {
                    "$regex" => Operator::RegexMatch,
                    "$iRegex" => Operator::RegexIMatch,
                    "$notRegex" => Operator::RegexNotMatch,
                    _ => Operator::RegexNotIMatch,
                };
                binary_expr(column, op, lit(pattern))
            }
            // NocoBase's string operators ignore case on every database.
            "$includes" => column.ilike(lit(format!("%{}%", escape_like(&text()?)))),
            "$notIncludes" => column
                .clone()
                .not_ilike(lit(format!("%{}%", escape_like(&text()?))))
                .or(column.is_null()),
            "$startsWith" => column.ilike(lit(format!("{}%", escape_like(&text()?)))),
            "$notStartsWith" => column
                .clone()
                .not_ilike(lit(format!("{}%", escape_like(&text()?))))
                .or(column.is_null()),
            "$endWith" => column.ilike(lit(format!("%{}", escape_like(&text()?)))),
            "$notEndWith" => column
                .clone()
                .not_ilike(lit(format!("%{}", escape_like(&text()?))))
                .or(column.is_null()),
            "$empty" | "$notEmpty" => {
                let empty = if matches!(data_type, DataType::Utf8 | DataType::LargeUtf8) {
                    column.clone().is_null().or(column.eq(lit("")))
                } else {
                    column.is_null()
                };
                if op == "$empty" { empty } else { !empty }
            }
            "$isTruly" | "$isFalsy" => {
                let truthy = if data_type == DataType::Boolean {
                    column.is_true()
                } else if data_type.is_numeric() {
                    column.clone().is_not_null().and(column.not_eq(lit(0)))
                } else {
                    return Err(Self::error(
                        path,
                        format!("`{op}` needs a boolean or number column; `{name}` is {data_type}"),
                    ));
                };
                if op == "$isTruly" { truthy } else { !truthy }
            }
            "$dateOn" | "$dateNotOn" | "$dateBefore" | "$dateAfter" | "$dateNotBefore"
            | "$dateNotAfter" | "$dateBetween" => {
                // Without the variable there is no date to read; the
                // condition matches nothing (below).
                if lost_variable(operand, &bound) {
                    lit(false)
                } else {
                    self.date(op, name, &data_type, &bound, path)?
                }
            }
            "$match" | "$notMatch" | "$anyOf" | "$noneOf" => {
                self.array(op, name, &data_type, &bound, path)?
            }
            "$jsonContains" | "$jsonContainedIn" | "$hasKey" | "$hasKeysAny" | "$hasKeysAll" => {
                self.document(op, name, &bound, path)?
            }
            other => {
                return Err(Self::error(
                    path,
                    format!("unknown operator `{other}` for column `{name}`"),
                ));
            }
        };
        // A variable the request does not have (no user id, a missing
        // claim, even as one item of an array) matches nothing: `owner =
        // {{$user.id}}` must not become `owner IS NULL` for a caller without
        // a user id.
        if self.cx.variables.is_some() && lost_variable(operand, &bound) {
            return Ok(lit(false));
        }
        Ok(expr)
    }

    /// A date operator: NocoBase's, over the period (or instant) the
    /// operand names. A period is `[start, end)`, an instant the closed
    /// range from itself to itself, so `$dateOn` an instant is equality and
    /// `$dateAfter` it is `>`. `$dateNotOn` is `< start OR >= end`: like
    /// NocoBase's, it does not keep rows where the column is NULL.
    fn date(
        &self,
        op: &str,
        name: &str,
        data_type: &DataType,
        operand: &Value,
        path: &str,
    ) -> Result<Expr, FilterError> {
        if !matches!(
            data_type,
            DataType::Date32 | DataType::Date64 | DataType::Timestamp(..)
        ) {
            return Err(Self::error(
                path,
                format!("`{op}` needs a date or timestamp column; `{name}` is {data_type}"),
            ));
        }
        match self.cx.time_zone {
            Some(zone) => self.date_in(op, name, data_type, operand, path, &zone),
            None => self.date_in(op, name, data_type, operand, path, &Utc),
        }
    }

    fn date_in(
        &self,
        op: &str,
        name: &str,
        data_type: &DataType,
        operand: &Value,
        path: &str,
        zone: &impl chrono::TimeZone,
    ) -> Result<Expr, FilterError> {
        if op == "$dateBetween" && !operand.is_array() {
            return Err(Self::error(path, "expected an array of two dates"));
        }
        let range = date::range(operand, zone).map_err(|m| Self::error(path, m))?;
        let compare = |cmp, at| {
            date::compare(self.column(name), cmp, at, data_type, zone)
                .map_err(|m| Self::error(path, m))
        };
        let (to_end, past_end) = if range.closed {
            (date::Cmp::Le, date::Cmp::Gt)
        } else {
            (date::Cmp::Lt, date::Cmp::Ge)
        };
        Ok(match op {
            "$dateOn" | "$dateBetween" => {
                compare(date::Cmp::Ge, range.start)?.and(compare(to_end, range.end)?)
            }
            "$dateNotOn" => compare(date::Cmp::Lt, range.start)?.or(compare(past_end, range.end)?),
            "$dateBefore" => compare(date::Cmp::Lt, range.start)?,
            "$dateNotBefore" => compare(date::Cmp::Ge, range.start)?,
            "$dateAfter" => compare(past_end, range.end)?,
            // `$dateNotAfter`
            _ => compare(to_end, range.end)?,
        })
    }

    /// A test of a JSON column's documents, with jsonb's meaning
    /// (`json_document.rs`): `$jsonContains` (`@>`), `$jsonContainedIn`
    /// (`<@`), `$hasKey` (`?`), `$hasKeysAny` (`?|`), `$hasKeysAll` (`?&`).
    fn document(
        &self,
        op: &str,
        name: &str,
        operand: &Value,
        path: &str,
    ) -> Result<Expr, FilterError> {
        if !self.is_json(name) {
            return Err(Self::error(
                path,
                format!("`{op}` needs a JSON column; `{name}` is not one"),
            ));
        }
        let column = self.column(name);
        let keys = |operand: &Value| -> Result<Value, FilterError> {
            let keys = match operand {
                Value::String(_) if op == "$hasKey" => Value::Array(vec![operand.clone()]),
                Value::Array(items) if op != "$hasKey" && items.iter().all(Value::is_string) => {
                    operand.clone()
                }
                _ if op == "$hasKey" => return Err(Self::error(path, "expected a key (a string)")),
                _ => return Err(Self::error(path, "expected an array of keys (strings)")),
            };
            Ok(keys)
        };
        Ok(match op {
            "$jsonContains" => json_document::call(Test::Contains, column, operand),
            "$jsonContainedIn" => json_document::call(Test::ContainedIn, column, operand),
            "$hasKeysAll" => json_document::call(Test::HasAllKeys, column, &keys(operand)?),
            _ => json_document::call(Test::HasAnyKey, column, &keys(operand)?),
        })
    }

    /// An array operator on a list column, against a list literal of the
    /// operand's values (a single value is a list of one, as NocoBase's
    /// `castArray`): `$match` is the same set of elements in any order,
    /// `$anyOf` sharing one at least. A NULL column matches neither nor
    /// `$notMatch`; `$noneOf` keeps it, as NocoBase does.
    fn array(
        &self,
        op: &str,
        name: &str,
        data_type: &DataType,
        operand: &Value,
        path: &str,
    ) -> Result<Expr, FilterError> {
        let json_items = json_array::item_field();
        let (field, large, column) = match data_type {
            DataType::List(field) => (field, false, self.column(name)),
            DataType::LargeList(field) => (field, true, self.column(name)),
            // NocoBase keeps array fields as JSON: their items, as text.
            _ if self.is_json(name) => (&json_items, false, json_array::items(self.column(name))),
            _ => {
                return Err(Self::error(
                    path,
                    format!(
                        "`{op}` needs an array column (a PostgreSQL array, or JSON holding an \
                         array); `{name}` is {data_type}"
                    ),
                ));
            }
        };
        let items = match operand {
            Value::Array(items) => items.as_slice(),
            single => std::slice::from_ref(single),
        };
        let values = items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                // JSON items compare as their text (see `json_array`).
                Value::Number(_) | Value::Bool(_) if self.is_json(name) => {
                    Ok(ScalarValue::Utf8(Some(item.to_string())))
                }
                _ => self.scalar(item, field.data_type(), &format!("{path}[{i}]")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let list = lit(if large {
            ScalarValue::LargeList(ScalarValue::new_large_list(&values, field.data_type()))
        } else {
            ScalarValue::List(ScalarValue::new_list(
                &values,
                field.data_type(),
                field.is_nullable(),
            ))
        });
        let same = || {
            array_has_all(column.clone(), list.clone())
                .and(array_has_all(list.clone(), column.clone()))
        };
        Ok(match op {
            "$match" => same(),
            "$notMatch" => !same(),
            "$anyOf" => array_has_any(column, list),
            _ => (!array_has_any(column.clone(), list)).or(column.is_null()),
        })
    }

    /// A literal of the column's type, from a bound operand.
    fn value(
        &self,
        operand: &Value,
        data_type: &DataType,
        path: &str,
    ) -> Result<Expr, FilterError> {
        self.scalar(operand, data_type, path).map(lit)
    }

    fn scalar(
        &self,
        operand: &Value,
        data_type: &DataType,
        path: &str,
    ) -> Result<ScalarValue, FilterError> {
        let raw = match operand.clone() {
            Value::Null => {
                return ScalarValue::try_from(data_type)
                    .map_err(|e| Self::error(path, e.to_string()));
            }
            Value::Bool(b) => ScalarValue::Boolean(Some(b)),
            Value::Number(n) => ScalarValue::Utf8(Some(n.to_string())),
            Value::String(s) => ScalarValue::Utf8(Some(s)),
            Value::Array(_) | Value::Object(_) => {
                return Err(Self::error(path, "expected a single value"));
            }
        };
        let exact = match &raw {
            ScalarValue::Utf8(Some(text)) => exact_decimal(text, data_type),
            _ => None,
        };
        raw.cast_to(exact.as_ref().unwrap_or(data_type))
            .map_err(|_| {
                Self::error(
                    path,
                    format!(
                        "`{}` is not a value of type {data_type}",
                        value_text(operand)
                    ),
                )
            })
    }

    fn text(&self, operand: &Value, path: &str) -> Result<String, FilterError> {
        match operand.clone() {
            Value::String(s) => Ok(s),
            Value::Number(n) => Ok(n.to_string()),
            Value::Null => Ok(String::new()),
            _ => Err(Self::error(path, "expected a string")),
        }
    }

    /// A filter on a related table: `EXISTS (SELECT 1 FROM related AS
    /// __relN WHERE __relN.key = outer.key AND <filter>)`, for object and
    /// array relations alike (an array relation matches when any row does).
    fn related(&self, name: &str, filter: &Value, path: &str) -> Result<Expr, FilterError> {
        let Some(link) = find_relation(self.cx.snapshot, &self.table, name) else {
            return Err(Self::error(
                path,
                format!(
                    "`{name}` is neither a column nor a relation of {}",
                    self.table
                ),
            ));
        };
        let alias = format!("__rel{}", self.depth + 1);
        let inner = Scope::new(
            &link.target,
            TableReference::bare(alias.as_str()),
            self.cx,
            self.depth + 1,
        )
        .map_err(|m| Self::error(path, m))?;
        let provider = (self.cx.providers)(&link.target)
            .ok_or_else(|| Self::error(path, format!("{} cannot be read", link.target)))?;
        // `{"orders": {"$exists": true}}`: whether any related row exists.
        let presence = match filter {
            Value::Object(entries) if entries.len() == 1 => match entries.iter().next() {
                Some((op, Value::Bool(b))) if op == "$exists" => Some(*b),
                Some((op, Value::Bool(b))) if op == "$notExists" => Some(!*b),
                _ => None,
            },
            _ => None,
        };
        let mut condition = match presence {
            Some(_) => lit(true),
            None => inner.object(filter, path)?,
        };
        for (outer, target) in &link.pairs {
            let data_type = self
                .column_type(outer)
                .cloned()
                .ok_or_else(|| Self::error(path, format!("no column `{outer}`")))?;
            let outer_ref = out_ref_col(
                data_type,
                Column::new(Some(self.qualifier.clone()), outer.as_str()),
            );
            condition = inner.column(target).eq(outer_ref).and(condition);
        }
        let reference = TableReference::full(
            link.target.source.as_str(),
            link.target.schema.as_str(),
            link.target.table.as_str(),
        );
        let plan = LogicalPlanBuilder::scan(reference, provider_as_source(provider), None)
            .and_then(|b| b.alias(alias.as_str()))
            .and_then(|b| b.filter(condition))
            .and_then(LogicalPlanBuilder::build)
            .map_err(|e| Self::error(path, e.to_string()))?;
        Ok(match presence {
            Some(false) => not_exists(Arc::new(plan)),
            _ => exists(Arc::new(plan)),
        })
    }
}

/// A relation seen from one of its ends.
#[derive(Debug, Clone)]
pub struct Link {
    pub target: TableRef,
    /// (column of this table, column of the target) pairs.
    pub pairs: Vec<(String, String)>,
    /// Several target rows per row (this end is the referenced one).
    pub many: bool,
}

/// Finds a relation of `table` by the relation's name or the related
/// table's name (when only one relation leads to a table of that name),
/// in either direction.
pub fn find_relation(snapshot: &CatalogSnapshot, table: &TableRef, name: &str) -> Option<Link> {
    // Each end of a relation at `table`: the relation, the table at its
    // other end, the columns here and there, whether it reaches many rows.
    // Borrowed: only the link found is built (this runs for every
    // relation a request names).
    let ends = snapshot.relations.iter().flat_map(|r| {
        let out = (&r.from == table).then_some((r, &r.to, &r.from_columns, &r.to_columns, false));
        let back = (&r.to == table).then_some((r, &r.from, &r.to_columns, &r.from_columns, true));
        out.into_iter().chain(back)
    });
    let link =
        |(_, target, here, there, many): (_, &TableRef, &Vec<String>, &Vec<String>, bool)| Link {
            target: target.clone(),
            pairs: zip(here, there),
            many,
        };
    let mut by_table = Vec::new();
    for end in ends {
        let (relation, target, ..) = end;
        if relation.name == name {
            return Some(link(end));
        }
        let collection = || {
            snapshot
                .collections
                .iter()
                .find(|c| &c.table == target)
                .map(|c| c.api_name.as_str())
        };
        if target.table == name || collection() == Some(name) {
            by_table.push(end);
        }
    }
    match by_table[..] {
        [end] => Some(link(end)),
        _ => None,
    }
}

fn zip(a: &[String], b: &[String]) -> Vec<(String, String)> {
    a.iter().cloned().zip(b.iter().cloned()).collect()
}

/// `key` (or an index, `[i]`) below `path`: the paths errors name.
pub(crate) fn join_path(path: &str, key: &str) -> String {
    if path.is_empty() || key.is_empty() || key.starts_with('[') {
        format!("{path}{key}")
    } else {
        format!("{path}.{key}")
    }
}

/// The decimal type a number given as `text` keeps all its digits in when
/// compared with a column of type `data_type`, if the column's own type
/// would round it: `total > 10.495` on a `numeric(10,2)` column must not
/// become `total > 10.50`, nor `id > 2.5` on an integer column `id > 3`
/// (the comparison widens the column instead, as PostgreSQL compares
/// numbers). `None` for other types, for numbers that fit, and for
/// exponent notation or more than 38 decimals (the column's type decides
/// those, as before).
pub(crate) fn exact_decimal(text: &str, data_type: &DataType) -> Option<DataType> {
    // Integers' scale is below zero here: `2.0` (no digits after trimming)
    // is no integer's text either, and compares as the decimal 2.
    let (whole, scale) = match *data_type {
        DataType::Decimal128(precision, scale) => (i16::from(precision) - i16::from(scale), scale),
        DataType::Int8 | DataType::UInt8 => (3, -1),
        DataType::Int16 | DataType::UInt16 => (5, -1),
        DataType::Int32 | DataType::UInt32 => (10, -1),
        DataType::Int64 => (19, -1),
        DataType::UInt64 => (20, -1),
        _ => return None,
    };
    let text = text.trim();
    if text.contains(['e', 'E']) {
        return None;
    }
    let digits = text
        .split_once('.')
        .map(|(_, fraction)| fraction.trim_end_matches('0').len())?;
    let digits = i8::try_from(digits)
        .ok()
        .filter(|d| *d > scale && *d <= 38)?;
    let wide = u8::try_from((whole + i16::from(digits)).clamp(1, 38)).ok()?;
    Some(DataType::Decimal128(wide, digits))
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// True when substitution turned a variable in `operand` (the whole of it
/// or an item of an array) into NULL: the request does not have it.
fn lost_variable(operand: &Value, bound: &Value) -> bool {
    match (operand, bound) {
        (Value::Array(written), Value::Array(items)) => written
            .iter()
            .zip(items)
            .any(|(w, item)| lost_variable(w, item)),
        (written, Value::Null) => !written.is_null(),
        _ => false,
    }
}

/// Escapes LIKE's wildcards (and its escape character) in user text.
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Replaces `{{$user.id}}`, `{{$user.role}}`, `{{$user.claims.<path>}}`
/// and `{{$now}}`: a string that is exactly one placeholder becomes the
/// variable's value (keeping its JSON type); placeholders inside longer
/// text are written into it; arrays are substituted item by item. Unknown
/// or missing variables are NULL.
pub fn substitute(value: &Value, variables: Option<&Variables>) -> Value {
    match value {
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| substitute(v, variables)).collect())
        }
        Value::String(text) => {
            let trimmed = text.trim();
            if let Some(name) = placeholder(trimmed)
                && trimmed.len() == text.len()
                && text.matches("{{").count() == 1
            {
                return variable(name, variables);
            }
            if !text.contains("{{") {
                return value.clone();
            }
            let mut out = String::new();
            let mut rest = text.as_str();
            while let Some(start) = rest.find("{{") {
                out.push_str(&rest[..start]);
                let Some(end) = rest[start..].find("}}") else {
                    out.push_str(&rest[start..]);
                    rest = "";
                    break;
                };
                let inner = rest[start + 2..start + end].trim();
                match variable(inner, variables) {
                    Value::Null => {}
                    Value::String(s) => out.push_str(&s),
                    other => out.push_str(&other.to_string()),
                }
                rest = &rest[start + end + 2..];
            }
            out.push_str(rest);
            Value::String(out)
        }
        other => other.clone(),
    }
}

fn placeholder(text: &str) -> Option<&str> {
    Some(text.strip_prefix("{{")?.strip_suffix("}}")?.trim())
}

fn variable(name: &str, variables: Option<&Variables>) -> Value {
    let Some(vars) = variables else {
        return Value::Null;
    };
    match name {
        "$user.id" => vars.user_id.clone().map_or(Value::Null, Value::String),
        "$user.role" => Value::String(vars.role.clone()),
        "$now" => Value::String(vars.now.clone()),
        _ => name
            .strip_prefix("$user.claims.")
            .and_then(|path| {
                path.split('.')
                    .try_fold(&vars.claims, |value, key| value.get(key))
            })
            .cloned()
            .unwrap_or(Value::Null),
    }
}

/// Every placeholder a filter or preset uses must be one we know.
pub fn check_variables(value: &Value, path: &str) -> Result<(), FilterError> {
    match value {
        Value::String(text) => {
            let mut rest = text.as_str();
            while let Some(start) = rest.find("{{") {
                let Some(end) = rest[start..].find("}}") else {
                    return Err(FilterError {
                        path: path.to_string(),
                        message: format!("`{text}` opens `{{{{` without closing it"),
                    });
                };
                let name = rest[start + 2..start + end].trim();
                let known = matches!(name, "$user.id" | "$user.role" | "$now")
                    || name
                        .strip_prefix("$user.claims.")
                        .is_some_and(|p| !p.is_empty());
                if !known {
                    return Err(FilterError {
                        path: path.to_string(),
                        message: format!(
                            "unknown variable `{name}` (use $user.id, $user.role, \
                             $user.claims.<path> or $now)"
                        ),
                    });
                }
                rest = &rest[start + end + 2..];
            }
            Ok(())
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_variables(v, &format!("{path}[{i}]"))),
        Value::Object(map) => map
            .iter()
            .try_for_each(|(k, v)| check_variables(v, &join_path(path, k))),
        _ => Ok(()),
    }
}
