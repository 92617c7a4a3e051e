//! NocoBase's association resources: `/api/{collection}/{key}/{relation}`
//! and `…/{relation}:{action}` — the rows of one row's relation, as
//! NocoBase's client asks for them (`api.resource('posts.comments', 1)`
//! → `GET /api/posts/1/comments:list`). Each action is its collection
//! route's on the related collection (the same rules, answers and audit
//! rows), kept to the rows related to that one row: reads and writes take
//! the relation's condition with their own `filter`, a create gets the
//! related columns filled in. NocoBase's `add`, `remove` and `set` relate
//! existing rows ([`Link`]): updates of the columns the relation joins on,
//! run as one `/api/batch` (one transaction, each update under the rules
//! of the collection it writes).

use axum::body::Bytes;
use serde_json::{Map, Value as Json, json};

use super::params::{self, Params, Selection};
use super::read::{self, ReadRequest};
use super::{Operation, Target};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::filter;
use crate::state::AppState;

/// The rows of one row's relation, in the related collection.
pub(super) struct Scope {
    /// The related collection.
    pub target: Target,
    /// The row's collection and the row's key (as in a path).
    parent: (String, String),
    /// (column of the row, column of the related rows) pairs.
    pairs: Vec<(String, String)>,
    /// Its columns the relation fills from the row's, with their values.
    related: Map<String, Json>,
    /// Several related rows per row (else at most one).
    many: bool,
    /// The related rows refer to the row (it does not refer to them): a
    /// create adds one by filling in the row's key.
    referring: bool,
}

impl Scope {
    /// The relation `relation` of the row of `parent` with `key`, as the
    /// caller may read that row: a 404 for an unknown relation or a row
    /// the caller cannot see.
    pub async fn of(
        state: &AppState,
        principal: &Principal,
        parent: &Target,
        key: &params::Key,
        relation: &str,
    ) -> Result<Self, ApiError> {
        let link = filter::find_relation(&parent.snapshot, &parent.collection.table, relation)
            .ok_or_else(|| {
                ApiError::not_found(&format!("relation of `{}`", parent.name()), relation)
            })?;
        let related = parent
            .snapshot
            .collections
            .iter()
            .find(|c| c.table == link.target)
            .ok_or_else(|| {
                ApiError::not_found(
                    &format!("collection for relation of `{}`", parent.name()),
                    relation,
                )
            })?;
        let target = Target::resolve(state, &related.api_name)?;
        // The row's columns the relation joins on, read as the caller may
        // read the row.
        let request = ReadRequest {
            filter: Some(key.filter()),
            fields: link.pairs.iter().map(|(own, _)| own.clone()).collect(),
            limit: Some(1),
            ..ReadRequest::default()
        };
        let (rows, _) = read::fetch(state, &principal.caller(), parent, &request).await?;
        let row = rows.first().ok_or_else(|| {
            ApiError::not_found(
                &format!("row of `{}` with the key", parent.name()),
                &key.text(),
            )
        })?;
        let mut values = Map::new();
        for (own, theirs) in &link.pairs {
            let value = row
                .get(own)
                .map(serde_json::to_value)
                .transpose()
                .map_err(|e| {
                    ApiError::internal(format!("cannot read `{own}` of `{}`: {e}", parent.name()))
                })?;
            values.insert(theirs.clone(), value.unwrap_or(Json::Null));
        }
        let theirs: Vec<&String> = link.pairs.iter().map(|(_, theirs)| theirs).collect();
        let referring = !target.def.primary_key.as_ref().is_some_and(|key| {
            key.columns.len() == theirs.len() && theirs.iter().all(|c| key.columns.contains(c))
        });
        Ok(Self {
            target,
            parent: (parent.name().to_string(), key.text()),
            pairs: link.pairs.clone(),
            related: values,
            many: link.many,
            referring,
        })
    }

    /// The relation's condition on the related rows: their columns equal
    /// to the row's (none when one of the row's is NULL: SQL's NULL equals
    /// nothing).
    fn condition(&self) -> Json {
        let mut condition = Map::new();
        for (column, value) in &self.related {
            let compared = if value.is_null() {
                json!({ "$in": [] })
            } else {
                json!({ "$eq": value })
            };
            condition.insert(column.clone(), compared);
        }
        Json::Object(condition)
    }

    /// Keeps a read to the related rows: its `filter` gets the relation's
    /// condition. A write of a to-one relation names its rows by neither
    /// `filterByTk` nor `filter`: the one related row (writes are kept to
    /// the related rows by [`Scope::within`]).
    pub fn restrict(&self, params: &mut Params, operation: Operation) -> Result<(), ApiError> {
        if let Operation::Link(_) = operation {
            // Its rows are named by keys, the relation's condition added there.
            return Ok(());
        }
        if matches!(operation, Operation::Update | Operation::Destroy) {
            if !self.many && !params.has("filterByTk") && !params.has("filter") {
                params.put("filter", self.condition().to_string());
            }
            return Ok(());
        }
        if matches!(operation, Operation::Create | Operation::CreateOr { .. }) {
            return Ok(());
        }
        let filter = match params.filter()? {
            // Its own conditions beside the relation's (the paths of its
            // errors stay as sent), or both under `$and`.
            Some(Json::Object(mut own)) if self.related.keys().all(|c| !own.contains_key(c)) => {
                own.extend(self.condition().as_object().cloned().unwrap_or_default());
                Json::Object(own)
            }
            Some(own) => json!({ "$and": [own, self.condition()] }),
            None => self.condition(),
        };
        params.put("filter", filter.to_string());
        Ok(())
    }

    /// A write's rows kept to the related rows: a key names its row only
    /// when that row is related, a filter matches related rows only.
    pub fn within(&self, selection: Selection) -> Selection {
        match selection {
            Selection::Key(key) => Selection::KeyWithin(key, self.condition()),
            Selection::Filter(filter) => {
                Selection::Filter(json!({ "$and": [filter, self.condition()] }))
            }
            within @ Selection::KeyWithin(..) => within,
        }
    }

    /// A create's body (an object or an array of them) with the related
    /// columns filled in from the row's; giving another value is a 400,
    /// as is a create through a relation the row refers by (its own
    /// column holds the related row's key: create that row on its own
    /// route, then set the column).
    pub fn fill(&self, body: &Bytes) -> Result<Bytes, ApiError> {
        if !self.referring {
            return Err(ApiError::bad_request(
                "the row refers to its related row by a column of its own: create that row in \
                 its collection, then set the column",
            ));
        }
        if let Some((column, _)) = self.related.iter().find(|(_, value)| value.is_null()) {
            return Err(ApiError::bad_request(format!(
                "the row's value for `{column}` is NULL: no row can be related to it"
            )));
        }
        let mut body = super::write::parse_body(body)?;
        let objects: Vec<(String, &mut Json)> = match &mut body {
            Json::Array(items) => items
                .iter_mut()
                .enumerate()
                .map(|(i, item)| (format!("[{i}]"), item))
                .collect(),
            object => vec![(String::new(), object)],
        };
        for (at, object) in objects {
            let Json::Object(values) = object else {
                // The create's own check says what is wrong with it.
                continue;
            };
            for (column, value) in &self.related {
                match values.get(column) {
                    Some(given) if !given.is_null() && !same(given, value) => {
                        let place = if at.is_empty() {
                            column.clone()
                        } else {
                            format!("{at}.{column}")
                        };
                        return Err(ApiError::bad_request(format!(
                            "`{column}` relates the row to the one it is created for: leave it out"
                        ))
                        .at(place));
                    }
                    _ => {
                        values.insert(column.clone(), value.clone());
                    }
                }
            }
        }
        serde_json::to_vec(&body)
            .map(Bytes::from)
            .map_err(|e| ApiError::internal(format!("cannot write the body: {e}")))
    }
}

/// NocoBase's actions relating existing rows through an association
/// (`POST /api/posts/1/comments:add`, with the related rows' keys as
/// `filterByTk` or in the body: a key or a list of keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Link {
    /// Relate these rows too (a to-many relation the rows refer by).
    Add,
    /// Unrelate these rows (all, for a to-one relation).
    Remove,
    /// Relate exactly these rows (one, for a to-one relation).
    Set,
}

impl Link {
    pub fn named(action: &str) -> Option<Self> {
        match action {
            "add" => Some(Self::Add),
            "remove" => Some(Self::Remove),
            "set" => Some(Self::Set),
            _ => None,
        }
    }
}

impl Scope {
    /// The `/api/batch` operations that make `link` with the related rows
    /// of `keys` (each as in a path): updates of the related rows' joining
    /// columns (set to the row's values, or NULL) when they refer to the
    /// row, else of the row's own (set to the related row's values, read
    /// as the caller may read it, or NULL).
    pub async fn link(
        &self,
        state: &AppState,
        principal: &Principal,
        link: Link,
        keys: &[String],
    ) -> Result<Vec<Json>, ApiError> {
        let one = || match keys {
            [key] => Ok(key),
            _ => Err(ApiError::bad_request(format!(
                "a to-one relation relates one row: give its key (`filterByTk`), not {}",
                keys.len()
            ))),
        };
        if !self.referring {
            // The row holds the related row's columns.
            let (parent, key) = &self.parent;
            let values: Map<String, Json> = match link {
                Link::Add => return Err(add_to_one()),
                Link::Remove => {
                    no_keys(keys)?;
                    self.pairs
                        .iter()
                        .map(|(own, _)| (own.clone(), Json::Null))
                        .collect()
                }
                Link::Set => {
                    let key = params::Key::from_path(&self.target, one()?)
                        .map_err(|e| e.at("filterByTk"))?;
                    let related = self.related_values(state, principal, &key).await?;
                    self.pairs
                        .iter()
                        .map(|(own, theirs)| {
                            (
                                own.clone(),
                                related.get(theirs).cloned().unwrap_or(Json::Null),
                            )
                        })
                        .collect()
                }
            };
            return Ok(vec![update(parent, json!({ "key": key }), values)]);
        }
        let target = self.target.name();
        let unrelated: Map<String, Json> = self
            .related
            .keys()
            .map(|column| (column.clone(), Json::Null))
            .collect();
        let given = || params::Key::any_of(&self.target, keys);
        let relate = |keys: Json| update(target, json!({ "filter": keys }), self.related.clone());
        Ok(match link {
            Link::Add if !self.many => return Err(add_to_one()),
            Link::Add => {
                at_least_one(keys)?;
                vec![relate(given()?)]
            }
            Link::Remove if !self.many => {
                no_keys(keys)?;
                vec![update(
                    target,
                    json!({ "filter": self.condition() }),
                    unrelated,
                )]
            }
            Link::Remove => {
                at_least_one(keys)?;
                let filter = json!({ "$and": [given()?, self.condition()] });
                vec![update(target, json!({ "filter": filter }), unrelated)]
            }
            Link::Set => {
                if !self.many {
                    one()?;
                }
                // The rows related now but not given, then the given ones.
                let others = if keys.is_empty() {
                    self.condition()
                } else {
                    json!({ "$and": [self.condition(), { "$not": given()? }] })
                };
                let mut operations = vec![update(target, json!({ "filter": others }), unrelated)];
                if !keys.is_empty() {
                    operations.push(relate(given()?));
                }
                operations
            }
        })
    }

    /// The related row's columns the relation joins on, as the caller may
    /// read the row (a 404 when it cannot, or there is none).
    async fn related_values(
        &self,
        state: &AppState,
        principal: &Principal,
        key: &params::Key,
    ) -> Result<Map<String, Json>, ApiError> {
        let request = ReadRequest {
            filter: Some(key.filter()),
            fields: self
                .pairs
                .iter()
                .map(|(_, theirs)| theirs.clone())
                .collect(),
            limit: Some(1),
            ..ReadRequest::default()
        };
        let (rows, _) = read::fetch(state, &principal.caller(), &self.target, &request).await?;
        let row = rows.first().ok_or_else(|| {
            ApiError::not_found(
                &format!("row of `{}` with the key", self.target.name()),
                &key.text(),
            )
        })?;
        let mut values = Map::new();
        for (_, theirs) in &self.pairs {
            let value = row.get(theirs).map(serde_json::to_value).transpose();
            let value = value.map_err(|e| {
                ApiError::internal(format!(
                    "cannot read `{theirs}` of `{}`: {e}",
                    self.target.name()
                ))
            })?;
            values.insert(theirs.clone(), value.unwrap_or(Json::Null));
        }
        Ok(values)
    }
}

/// One `/api/batch` update of `collection`'s rows named by `rows` (`key`
/// or `filter`).
fn update(collection: &str, rows: Json, values: Map<String, Json>) -> Json {
    let mut operation = json!({ "action": "update", "collection": collection, "values": values });
    if let (Json::Object(operation), Json::Object(rows)) = (&mut operation, rows) {
        operation.extend(rows);
    }
    operation
}

fn add_to_one() -> ApiError {
    ApiError::bad_request("a to-one relation takes `set` and `remove`, not `add`")
}

fn at_least_one(keys: &[String]) -> Result<(), ApiError> {
    if keys.is_empty() {
        return Err(ApiError::bad_request(
            "give the related rows' keys: `filterByTk`, or a key or a list of keys as the body",
        )
        .at("filterByTk"));
    }
    Ok(())
}

fn no_keys(keys: &[String]) -> Result<(), ApiError> {
    if !keys.is_empty() {
        return Err(ApiError::bad_request(
            "a to-one relation's `remove` unrelates its one row: give no key",
        )
        .at("filterByTk"));
    }
    Ok(())
}

/// Whether a given value is the related column's (`7` and `"7"` alike).
fn same(given: &Json, value: &Json) -> bool {
    given == value || text(given) == text(value)
}

fn text(value: &Json) -> String {
    match value {
        Json::String(text) => text.clone(),
        other => other.to_string(),
    }
}
