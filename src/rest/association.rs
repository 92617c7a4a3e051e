//! NocoBase's association resources: `/api/{collection}/{key}/{relation}`
//! and `…/{relation}:{action}` — the rows of one row's relation, as
//! NocoBase's client asks for them (`api.resource('posts.comments', 1)`
//! → `GET /api/posts/1/comments:list`). Each action is its collection
//! route's on the related collection (the same rules, answers and audit
//! rows), kept to the rows related to that one row: reads and writes take
//! the relation's condition with their own `filter`, a create gets the
//! related columns filled in.

use axum::body::Bytes;
use serde_json::{Map, Value as Json, json};

use super::params::{Params, Selection};
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
        key: &super::params::Key,
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
