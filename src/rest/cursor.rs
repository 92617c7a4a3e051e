//! Keyset cursors for deep pagination: a list's `meta.nextCursor` holds
//! the last row's sort values (the primary key completing the order), and
//! `cursor=` reads the rows after them — `WHERE (a, b) > (x, y)` in the
//! list's order, NULLs where PostgreSQL sorts them — so page 10,000 costs
//! what page 1 does. A cursor is bound to the sort it was made for.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::logical_expr::{Expr, lit};
use datafusion::scalar::ScalarValue;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Target;
use super::params::SortKey;
use super::read::Record;
use crate::error::ApiError;

/// The full order of a list: the requested keys, then the primary key's
/// columns not among them (those the caller can read).
pub fn order_keys(target: &Target, sort: &[SortKey], visible: &[String]) -> Vec<SortKey> {
    let mut keys = sort.to_vec();
    if let Some(pk) = &target.def.primary_key {
        for column in &pk.columns {
            if visible.contains(column)
                && !keys.iter().any(|k| k.via.is_none() && &k.column == column)
            {
                keys.push(SortKey::new(column.clone(), false));
            }
        }
    }
    keys
}

/// True when the order is total (it ends with the whole primary key), so a
/// cursor names one position.
pub fn is_total(target: &Target, keys: &[SortKey]) -> bool {
    target.def.primary_key.as_ref().is_some_and(|pk| {
        !pk.columns.is_empty()
            && pk
                .columns
                .iter()
                .all(|c| keys.iter().any(|k| k.via.is_none() && &k.column == c))
    })
}

#[derive(Serialize, Deserialize)]
struct Payload {
    /// The order it was made for (`-total,id`).
    o: String,
    /// The last row's value of each order key.
    v: Vec<Value>,
}

fn spec(keys: &[SortKey]) -> String {
    keys.iter()
        .map(|k| {
            if k.descending {
                format!("-{}", k.column)
            } else {
                k.column.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The cursor after `record` (which holds every order key's column).
pub fn encode(keys: &[SortKey], record: &Record) -> Option<String> {
    let values = keys
        .iter()
        .map(|k| record.get(&k.column).cloned())
        .collect::<Option<Vec<_>>>()?;
    let payload = serde_json::to_vec(&Payload {
        o: spec(keys),
        v: values,
    })
    .ok()?;
    Some(URL_SAFE_NO_PAD.encode(payload))
}

/// The values a cursor holds, checked against the list's order.
pub fn decode(text: &str, keys: &[SortKey]) -> Result<Vec<Value>, ApiError> {
    let bad = |why: &str| ApiError::bad_request(format!("`cursor` {why}")).at("cursor");
    let bytes = URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| bad("is not a cursor this API made"))?;
    let payload: Payload =
        serde_json::from_slice(&bytes).map_err(|_| bad("is not a cursor this API made"))?;
    if payload.o != spec(keys) || payload.v.len() != keys.len() {
        return Err(bad(&format!(
            "was made for the order `{}`, not `{}`: keep `sort` as it was",
            payload.o,
            spec(keys)
        )));
    }
    Ok(payload.v)
}

/// Rows after the position `values` in the order `keys`:
/// `k1 after v1 OR (k1 = v1 AND (k2 after v2 OR …))`.
pub fn after(
    keys: &[SortKey],
    values: &[Value],
    column: impl Fn(&str) -> Expr,
    schema: &Schema,
) -> Result<Expr, ApiError> {
    let mut condition: Option<Expr> = None;
    for (key, value) in keys.iter().zip(values).rev() {
        let data_type = schema
            .field_with_name(&key.column)
            .map(|f| f.data_type().clone())
            .map_err(|_| ApiError::bad_request("`cursor` names a column not here").at("cursor"))?;
        let col = column(&key.column);
        let (later, same) = if value.is_null() {
            // NULLs are last ascending: nothing non-NULL comes after one;
            // first descending: every non-NULL value does.
            let later = if key.descending {
                col.clone().is_not_null()
            } else {
                lit(false)
            };
            (later, col.is_null())
        } else {
            let v = literal(value, &data_type)?;
            let later = if key.descending {
                col.clone().lt(v.clone())
            } else {
                col.clone().gt(v.clone()).or(col.clone().is_null())
            };
            (later, col.eq(v))
        };
        condition = Some(match condition {
            None => later,
            Some(rest) => later.or(same.and(rest)),
        });
    }
    Ok(condition.unwrap_or(lit(true)))
}

/// A cursor value (as lists answer it) as a literal of the column's type.
fn literal(value: &Value, data_type: &DataType) -> Result<Expr, ApiError> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Bool(b) => return Ok(lit(*b)),
        other => other.to_string(),
    };
    ScalarValue::Utf8(Some(text))
        .cast_to(data_type)
        .map(lit)
        .map_err(|_| ApiError::bad_request("`cursor` holds a value of another type").at("cursor"))
}
