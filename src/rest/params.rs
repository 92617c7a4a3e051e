//! Query parameters of the REST routes: `filter` (JSON), `sort=-a,b`,
//! `fields`, `except`, `appends`, `page`/`pageSize`, `count`, `cursor`,
//! NocoBase's `filterByTk`, and primary keys written in a path (`1,2`).
//! NocoBase's clients send lists as `sort[]=a&sort[]=b`; both spellings
//! are read. A parameter a route does not know is a 400 (a typo must not
//! silently widen a result or a write).

use serde_json::Value;

use super::Target;
use super::aggregate::Aggregation;
use crate::error::ApiError;

/// The query string's parameters, consumed by name.
#[derive(Debug, Default)]
pub struct Params {
    entries: Vec<(String, String)>,
}

/// One sort column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub column: String,
    pub descending: bool,
    /// Where NULLs go; `None` is PostgreSQL's order (last ascending, first
    /// descending), the only one REST's `sort` and cursors use.
    pub nulls_first: Option<bool>,
    /// What `column` belongs to when it is not the collection's own.
    pub via: Option<SortVia>,
}

/// A sort key on something related to the row (see `order.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortVia {
    /// A column of the row reached through these object relations.
    Related(Vec<String>),
    /// An aggregate of an array relation's rows: of `column`, or of the
    /// rows for a count.
    Aggregate {
        relation: String,
        aggregation: Aggregation,
    },
}

impl SortKey {
    pub fn new(column: impl Into<String>, descending: bool) -> Self {
        Self {
            column: column.into(),
            descending,
            nulls_first: None,
            via: None,
        }
    }

    pub fn nulls_first(&self) -> bool {
        self.nulls_first.unwrap_or(self.descending)
    }
}

/// A primary key: each key column with its value as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub values: Vec<(String, String)>,
}

/// The rows a write addresses.
#[derive(Debug, Clone)]
pub enum Selection {
    Key(Key),
    /// A non-empty filter (bulk writes).
    Filter(Value),
    /// The row with the key, if it matches the filter (a row of an
    /// association: `/api/posts/1/comments:update?filterByTk=7`).
    KeyWithin(Key, Value),
}

impl Params {
    pub fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let entries = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .map(|(name, value)| {
                let name = name.strip_suffix("[]").unwrap_or(&name).to_string();
                (name, value.into_owned())
            })
            .collect();
        Ok(Self { entries })
    }

    /// Every value of a parameter (repeated or `name[]`), removed.
    pub fn take_all(&mut self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.entries.retain(|(n, v)| {
            if n == name {
                out.push(v.clone());
                false
            } else {
                true
            }
        });
        out
    }

    /// A parameter given at most once.
    pub fn take(&mut self, name: &str) -> Result<Option<String>, ApiError> {
        let mut values = self.take_all(name);
        match values.len() {
            0 => Ok(None),
            1 => Ok(values.pop()),
            _ => Err(ApiError::bad_request(format!("`{name}` is given more than once")).at(name)),
        }
    }

    /// Whether a parameter is given (left unread).
    pub fn has(&self, name: &str) -> bool {
        self.entries.iter().any(|(n, _)| n == name)
    }

    /// Sets a parameter, in place of any value it had.
    pub fn put(&mut self, name: &str, value: String) {
        self.entries.retain(|(n, _)| n != name);
        self.entries.push((name.to_string(), value));
    }

    /// Fails on any parameter left unread.
    pub fn finish(self) -> Result<(), ApiError> {
        match self.entries.first() {
            None => Ok(()),
            Some((name, _)) => Err(ApiError::bad_request(format!(
                "unknown query parameter `{name}`"
            ))
            .at(name.clone())),
        }
    }

    /// Comma-separated names, repeated or not (`fields=a,b&fields=c`).
    pub fn names(&mut self, name: &str) -> Vec<String> {
        self.take_all(name)
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// A JSON parameter (`filter`, `having`, `measures`).
    pub fn json(&mut self, name: &str) -> Result<Option<Value>, ApiError> {
        let Some(text) = self.take(name)? else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| ApiError::bad_request(format!("`{name}` is not valid JSON: {e}")).at(name))
    }

    /// A filter object (`{}` and absent are the same: no filter).
    pub fn filter(&mut self) -> Result<Option<Value>, ApiError> {
        match self.json("filter")? {
            None => Ok(None),
            Some(Value::Object(map)) if map.is_empty() => Ok(None),
            Some(value @ Value::Object(_)) => Ok(Some(value)),
            Some(_) => Err(ApiError::bad_request("`filter` must be a JSON object").at("filter")),
        }
    }

    /// `sort=-a,b`; `sort=customer.name` orders by a related row's column
    /// (through object relations).
    pub fn sort(&mut self) -> Vec<SortKey> {
        self.names("sort")
            .into_iter()
            .map(|name| {
                let (descending, name) = match name.strip_prefix('-') {
                    Some(rest) => (true, rest),
                    None => (false, name.trim_start_matches('+')),
                };
                let mut key = SortKey::new(name, descending);
                if let Some((path, column)) = name.rsplit_once('.') {
                    key.column = column.to_string();
                    key.via = Some(SortVia::Related(
                        path.split('.').map(String::from).collect(),
                    ));
                }
                key
            })
            .collect()
    }

    /// An unsigned number, at least `min`.
    pub fn number(&mut self, name: &str, min: u64) -> Result<Option<u64>, ApiError> {
        let Some(text) = self.take(name)? else {
            return Ok(None);
        };
        match text.parse::<u64>() {
            Ok(n) if n >= min => Ok(Some(n)),
            _ => Err(ApiError::bad_request(format!(
                "`{name}` must be a whole number of at least {min}, not `{text}`"
            ))
            .at(name)),
        }
    }

    pub fn boolean(&mut self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.take(name)?.as_deref() {
            None => Ok(None),
            Some("true" | "1" | "") => Ok(Some(true)),
            Some("false" | "0") => Ok(Some(false)),
            Some(other) => Err(ApiError::bad_request(format!(
                "`{name}` must be true or false, not `{other}`"
            ))
            .at(name)),
        }
    }

    /// NocoBase's `filterByTk`, when given: the primary key (`a,b` when
    /// composite).
    pub fn filter_by_tk(&mut self, target: &Target) -> Result<Option<Key>, ApiError> {
        self.take("filterByTk")?
            .map(|text| Key::from_path(target, &text))
            .transpose()
    }

    /// The rows of a bulk write: `filterByTk` (one key, or several as
    /// NocoBase's client sends a bulk delete: `filterByTk[]=1&filterByTk[]=2`)
    /// or a non-empty `filter`. Nothing else may follow.
    pub fn selection(mut self, target: &Target) -> Result<Selection, ApiError> {
        let mut keys = self.take_all("filterByTk");
        let filter = self.filter()?;
        self.finish()?;
        match (keys.len(), filter) {
            (1, None) => {
                let key = keys.pop().unwrap_or_default();
                Ok(Selection::Key(Key::from_path(target, &key)?))
            }
            (0, Some(filter)) => Ok(Selection::Filter(filter)),
            (0, None) => Err(ApiError::bad_request(
                "a write to several rows needs a non-empty `filter` (or `filterByTk`); \
                 an empty filter would touch every row",
            )
            .at("filter")),
            (_, Some(_)) => Err(ApiError::bad_request(
                "give either `filterByTk` or `filter`, not both",
            )),
            (_, None) => Ok(Selection::Filter(Key::any_of(target, &keys)?)),
        }
    }
}

impl Key {
    /// `7`, or `1,2` for a composite key in the primary key's order.
    pub fn from_path(target: &Target, text: &str) -> Result<Self, ApiError> {
        let columns = target.primary_key()?;
        let parts: Vec<&str> = if columns.len() == 1 {
            vec![text]
        } else {
            text.split(',').collect()
        };
        if parts.len() != columns.len() {
            return Err(ApiError::bad_request(format!(
                "the key of `{}` has {} columns ({}): write them as `{}`",
                target.name(),
                columns.len(),
                columns.join(", "),
                columns.join(",")
            )));
        }
        Ok(Self {
            values: columns
                .iter()
                .cloned()
                .zip(parts.into_iter().map(str::to_string))
                .collect(),
        })
    }

    /// The key as a filter (`{"id": "7"}`): values are read as the
    /// columns' types by the filter compiler.
    pub fn filter(&self) -> Value {
        Value::Object(
            self.values
                .iter()
                .map(|(column, value)| (column.clone(), Value::String(value.clone())))
                .collect(),
        )
    }

    /// The rows with any of the keys `texts` (each as in a path) as one
    /// filter: `{"id": {"$in": [...]}}`, or an `$or` of composite keys.
    pub fn any_of(target: &Target, texts: &[String]) -> Result<Value, ApiError> {
        let keys = texts
            .iter()
            .map(|text| Key::from_path(target, text))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.at("filterByTk"))?;
        Ok(match target.primary_key()? {
            [column] => {
                let values = keys
                    .iter()
                    .flat_map(|key| &key.values)
                    .map(|(_, value)| Value::String(value.clone()))
                    .collect();
                serde_json::json!({ column.as_str(): { "$in": Value::Array(values) } })
            }
            _ => serde_json::json!({ "$or": keys.iter().map(Key::filter).collect::<Vec<_>>() }),
        })
    }

    /// `1,2`, for messages and the audit log.
    pub fn text(&self) -> String {
        self.values
            .iter()
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}
