//! The REST write routes: create, update and destroy, each request one
//! transaction on the collection's source (the shared write path is
//! `writer.rs`). Bodies are read here; a write by key that finds no row it
//! may write is a 404. `fields` and `except` shape the written rows in the
//! answer as they shape a read's (`Prefer: return=minimal`: no answer
//! body); NocoBase's `whitelist` and `blacklist` pick the body's values a
//! create or update writes.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value as Json, json};

use super::params::{Params, Selection};
use super::read::{self, Record};
use super::writer::{self, Audit, Changes, Conflict, Planned, Rows, Transaction};
use super::{Target, json_response};
use crate::auth::Principal;
use crate::engine::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// `POST /api/{c}` and `POST /api/{c}:create`: one object or an array.
pub async fn create(
    state: &AppState,
    principal: &Principal,
    target: &Target,
    query: &WriteQuery,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let mut audit = Audit::new(principal, target, "insert");
    let result = insert(state, principal, target, query, body, &mut audit).await;
    finish(state, audit, result).await
}

/// `PATCH /api/{c}/{key}`, `PATCH /api/{c}?filter=` and `:update`.
pub async fn update(
    state: &AppState,
    principal: &Principal,
    target: &Target,
    selection: Selection,
    query: &WriteQuery,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let mut audit = Audit::new(principal, target, "update");
    let result = change(state, principal, target, selection, query, body, &mut audit).await;
    finish(state, audit, result).await
}

/// `DELETE /api/{c}/{key}`, `DELETE /api/{c}?filter=` and `:destroy`.
pub async fn destroy(
    state: &AppState,
    principal: &Principal,
    target: &Target,
    selection: Selection,
    query: &WriteQuery,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let mut audit = Audit::new(principal, target, "delete");
    let result = remove(state, principal, target, selection, query, body, &mut audit).await;
    finish(state, audit, result).await
}

/// Writes the request's audit row and passes the answer on.
async fn finish(
    state: &AppState,
    audit: Audit,
    result: Result<Response, ApiError>,
) -> Result<Response, ApiError> {
    match &result {
        Ok(response) => audit.finish(state, response.status().as_u16(), None).await,
        Err(error) => {
            audit
                .finish(state, error.status.as_u16(), Some(&error.message))
                .await;
        }
    }
    result
}

async fn insert(
    state: &AppState,
    principal: &Principal,
    target: &Target,
    query: &WriteQuery,
    body: &Bytes,
    audit: &mut Audit,
) -> Result<Response, ApiError> {
    let caller = principal.caller();
    let answered = query.answered(state, &caller, target)?;
    let mut body: Json = parse_body(body)?;
    query.guard.apply(target, &mut body)?;
    let (objects, many) = objects(&body, "")?;
    let planned = match &query.upsert {
        None => writer::plan_insert(state, principal, target, &objects)?,
        Some(upsert) => {
            upsert
                .plan(state, principal, target, &objects, audit, None)
                .await?
        }
    };
    let (_, mut records) = answered
        .write(state, &caller, target, planned, audit)
        .await?;
    if let Some(upsert) = &query.upsert
        && !many
        && query.prefer.minimal != Some(true)
        && let Some((_, object)) = objects.first()
    {
        upsert
            .answer_found(state, &caller, target, object, &mut records)
            .await?;
        answered.trim(&mut records);
    }
    let response = if query.prefer.minimal == Some(true) {
        StatusCode::CREATED.into_response()
    } else if many {
        json_response(
            StatusCode::CREATED,
            &Many {
                data: records,
                meta: None,
            },
        )
    } else {
        json_response(
            StatusCode::CREATED,
            &One {
                data: records.into_iter().next(),
            },
        )
    };
    Ok(query.applied(response))
}

async fn change(
    state: &AppState,
    principal: &Principal,
    target: &Target,
    selection: Selection,
    query: &WriteQuery,
    body: &Bytes,
    audit: &mut Audit,
) -> Result<Response, ApiError> {
    audit.note("target", selection_text(&selection));
    let caller = principal.caller();
    let answered = query.answered(state, &caller, target)?;
    let mut body: Json = parse_body(body)?;
    query.guard.apply(target, &mut body)?;
    let changes = Changes {
        set: Some((&body, "")),
        increment: None,
        json: Vec::new(),
    };
    let planned =
        writer::plan_update(state, principal, target, &rows(&selection), changes, &[]).await?;
    let (affected, records) = answered
        .write(state, &caller, target, planned, audit)
        .await?;
    respond(target, selection, records, affected, query)
}

async fn remove(
    state: &AppState,
    principal: &Principal,
    target: &Target,
    selection: Selection,
    query: &WriteQuery,
    body: &Bytes,
    audit: &mut Audit,
) -> Result<Response, ApiError> {
    audit.note("target", selection_text(&selection));
    // NocoBase's client may send `{}`.
    let empty = String::from_utf8_lossy(body);
    if !matches!(empty.trim(), "" | "{}") {
        return Err(ApiError::bad_request("a delete takes no body"));
    }
    let caller = principal.caller();
    let answered = query.answered(state, &caller, target)?;
    let planned = writer::plan_delete(state, principal, target, &rows(&selection), &[]).await?;
    let (affected, records) = answered
        .write(state, &caller, target, planned, audit)
        .await?;
    respond(target, selection, records, affected, query)
}

/// A write's query beyond the rows it names, and its `Prefer` header.
#[derive(Debug, Default)]
pub(super) struct WriteQuery {
    returned: Returned,
    guard: Guard,
    prefer: Prefer,
    /// A create's `Prefer: resolution=…`, or NocoBase's upsert.
    upsert: Option<Upsert>,
}

impl WriteQuery {
    /// Takes `fields` and `except`, and for a create or update (`values`)
    /// `whitelist` and `blacklist`, out of the query; reads the request's
    /// `Prefer` header.
    pub(super) fn take(
        params: &mut Params,
        values: bool,
        headers: &HeaderMap,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            returned: Returned::take(params),
            prefer: Prefer::parse(headers)?,
            upsert: None,
            guard: if values {
                Guard {
                    whitelist: params.names("whitelist"),
                    blacklist: params.names("blacklist"),
                }
            } else {
                Guard::default()
            },
        })
    }

    /// A create's upsert, taken out of the query: NocoBase's
    /// `updateOrCreate` (`Some(true)`) or `firstOrCreate` (`Some(false)`)
    /// on `filterKeys`, else PostgREST's when `Prefer` asks for a
    /// resolution (on `on_conflict`).
    pub(super) fn take_upsert(
        &mut self,
        params: &mut Params,
        nocobase: Option<bool>,
    ) -> Result<(), ApiError> {
        self.upsert = match nocobase {
            Some(merge) => Some(Upsert::nocobase(merge, params.names("filterKeys"))?),
            None => Upsert::resolved(self.prefer.resolution, params.names("on_conflict"))?,
        };
        Ok(())
    }

    /// The columns the written rows are answered with, checked before
    /// anything is written; none but the key (which the audit row reads)
    /// with `Prefer: return=minimal`, whose answer has no body.
    fn answered(
        &self,
        state: &AppState,
        caller: &Caller,
        target: &Target,
    ) -> Result<Answered, ApiError> {
        let answered = self.returned.columns(state, caller, target)?;
        Ok(if self.prefer.minimal == Some(true) {
            Answered(Some(Vec::new()))
        } else {
            answered
        })
    }

    /// `response` with `Preference-Applied` naming the preferences it
    /// honoured (RFC 7240), if any.
    fn applied(&self, mut response: Response) -> Response {
        let mut applied: Vec<String> = Vec::new();
        if let Some(upsert) = self.upsert.as_ref().filter(|u| !u.nocobase) {
            applied.push(format!("resolution={}", upsert.resolution()));
        }
        match self.prefer.minimal {
            Some(true) => applied.push("return=minimal".into()),
            Some(false) => applied.push("return=representation".into()),
            None => {}
        }
        if !applied.is_empty()
            && let Ok(value) = HeaderValue::from_str(&applied.join(", "))
        {
            response.headers_mut().insert("preference-applied", value);
        }
        response
    }
}

/// The `Prefer` header of a write, as PostgREST reads it: `resolution=…`
/// (an upsert, on a create) and `return=minimal` (no answer body: 201 for
/// a create, 204 for an update or delete) or `return=representation` (the
/// written rows, as without the header). Other preferences are left alone,
/// as PostgREST does.
#[derive(Debug, Default)]
struct Prefer {
    /// `Some(true)` merge-duplicates, `Some(false)` ignore-duplicates.
    resolution: Option<bool>,
    /// `Some(true)` return=minimal, `Some(false)` return=representation.
    minimal: Option<bool>,
}

impl Prefer {
    /// From every `Prefer` header of the request; an unknown value of a
    /// preference we honour is a 400 (a client asking for a form we would
    /// not give should hear so).
    fn parse(headers: &HeaderMap) -> Result<Self, ApiError> {
        let mut prefer = Self::default();
        for value in headers.get_all("prefer") {
            let text = value
                .to_str()
                .map_err(|_| ApiError::bad_request("the `Prefer` header is not text"))?;
            for preference in text.split(',').map(str::trim) {
                let (name, value) = preference.split_once('=').unwrap_or((preference, ""));
                match (name.trim(), value.trim()) {
                    ("resolution", "merge-duplicates") => prefer.resolution = Some(true),
                    ("resolution", "ignore-duplicates") => prefer.resolution = Some(false),
                    ("return", "minimal") => prefer.minimal = Some(true),
                    ("return", "representation") => prefer.minimal = Some(false),
                    ("resolution", other) => {
                        return Err(ApiError::bad_request(format!(
                            "unknown `Prefer: resolution={other}`: use merge-duplicates or \
                             ignore-duplicates"
                        )));
                    }
                    ("return", other) => {
                        return Err(ApiError::bad_request(format!(
                            "unknown `Prefer: return={other}`: use minimal or representation"
                        )));
                    }
                    _ => {}
                }
            }
        }
        Ok(prefer)
    }
}

/// PostgREST's upsert, on a create: `Prefer: resolution=merge-duplicates`
/// updates the rows whose key is already there with the body's other
/// values, `resolution=ignore-duplicates` leaves them as they are; the
/// other rows are inserted. The key is the primary key, or the unique key
/// `on_conflict=a,b` names. One transaction, as every write.
///
/// NocoBase's `updateOrCreate` and `firstOrCreate` are the same with
/// `filterKeys` for the key (any columns: NocoBase asks for no unique key,
/// and where several rows match, all are updated); `firstOrCreate`
/// answers the row it found when it created none.
#[derive(Debug)]
pub(super) struct Upsert {
    merge: bool,
    on_conflict: Vec<String>,
    /// NocoBase's: `on_conflict` is `filterKeys`.
    nocobase: bool,
}

impl Upsert {
    /// PostgREST's upsert with `merge` (`None`: no resolution asked for,
    /// so no upsert) on the key `on_conflict` names.
    fn resolved(merge: Option<bool>, on_conflict: Vec<String>) -> Result<Option<Self>, ApiError> {
        match merge {
            Some(merge) => Ok(Some(Self {
                merge,
                on_conflict,
                nocobase: false,
            })),
            None if on_conflict.is_empty() => Ok(None),
            None => Err(ApiError::bad_request(
                "`on_conflict` names the key of an upsert: send it with `Prefer: \
                 resolution=merge-duplicates` (or ignore-duplicates)",
            )
            .at("on_conflict")),
        }
    }

    /// A batch operation's: `create` with `"resolution"`
    /// (`merge-duplicates` or `ignore-duplicates`) and optionally
    /// `"on_conflict"`; `updateOrCreate` / `firstOrCreate` with
    /// `"filterKeys"` (each a list of names or one comma-separated string).
    /// `None`: a plain write.
    pub(super) fn of_operation(
        action: &str,
        resolution: Option<Json>,
        on_conflict: Option<Json>,
        filter_keys: Option<Json>,
    ) -> Result<Option<Self>, ApiError> {
        let on_conflict = names_of(on_conflict, "on_conflict")?;
        let filter_keys = names_of(filter_keys, "filterKeys")?;
        let merge = match (action, resolution) {
            ("updateOrCreate", None) => return Self::nocobase(true, filter_keys).map(Some),
            ("firstOrCreate", None) => return Self::nocobase(false, filter_keys).map(Some),
            (_, None) => None,
            ("create", Some(Json::String(text))) if text == "merge-duplicates" => Some(true),
            ("create", Some(Json::String(text))) if text == "ignore-duplicates" => Some(false),
            ("create", Some(_)) => {
                return Err(ApiError::bad_request(
                    "`resolution` is merge-duplicates or ignore-duplicates",
                )
                .at("resolution"));
            }
            (_, Some(_)) => {
                return Err(
                    ApiError::bad_request("only a create takes `resolution`").at("resolution")
                );
            }
        };
        if !filter_keys.is_empty() {
            return Err(ApiError::bad_request(
                "`filterKeys` belongs to updateOrCreate and firstOrCreate",
            )
            .at("filterKeys"));
        }
        if merge.is_none() && !on_conflict.is_empty() {
            return Err(ApiError::bad_request(
                "`on_conflict` names the key of an upsert: give `resolution` too \
                 (merge-duplicates or ignore-duplicates)",
            )
            .at("on_conflict"));
        }
        Self::resolved(merge, on_conflict)
    }

    /// NocoBase's `updateOrCreate` (`merge`) or `firstOrCreate` on
    /// `filterKeys`, which it requires.
    fn nocobase(merge: bool, filter_keys: Vec<String>) -> Result<Self, ApiError> {
        if filter_keys.is_empty() {
            return Err(ApiError::bad_request(
                "`filterKeys` is required: the columns that find the row to update or keep",
            )
            .at("filterKeys"));
        }
        Ok(Self {
            merge,
            on_conflict: filter_keys,
            nocobase: true,
        })
    }

    fn resolution(&self) -> &'static str {
        if self.merge {
            "merge-duplicates"
        } else {
            "ignore-duplicates"
        }
    }

    /// The upsert of `objects` ([`writer::plan_upsert`], `inside` a batch's
    /// transaction once it has written), noted in the write's audit row.
    pub(super) async fn plan(
        &self,
        state: &AppState,
        principal: &Principal,
        target: &Target,
        objects: &Objects<'_>,
        audit: &mut Audit,
        inside: Option<&mut Transaction>,
    ) -> Result<Planned, ApiError> {
        let conflict = Conflict {
            columns: self.key(target)?,
            only: None,
        };
        audit.note(
            "on_conflict",
            json!({ "columns": conflict.columns, "resolution": self.resolution() }),
        );
        let update = self.update(&conflict.columns, objects);
        writer::plan_upsert(
            state, principal, target, objects, &conflict, &update, inside,
        )
        .await
    }

    /// The key rows conflict on: `on_conflict`'s columns, which must be the
    /// primary key's or a unique key's (in any order), else the primary key.
    fn key(&self, target: &Target) -> Result<Vec<String>, ApiError> {
        let primary = target.primary_key()?;
        if self.nocobase {
            known_columns(target, &self.on_conflict, "filterKeys")?;
            return Ok(self.on_conflict.clone());
        }
        if self.on_conflict.is_empty() {
            return Ok(primary.to_vec());
        }
        let same = |columns: &[String]| {
            columns.len() == self.on_conflict.len()
                && columns.iter().all(|c| self.on_conflict.contains(c))
        };
        let mut keys = std::iter::once(primary).chain(
            target
                .def
                .unique_constraints
                .iter()
                .map(|k| k.columns.as_slice()),
        );
        match keys.find(|columns| same(columns)) {
            Some(columns) => Ok(columns.to_vec()),
            None => Err(ApiError::bad_request(format!(
                "`on_conflict` must name the primary key or a unique key of `{}`",
                target.name()
            ))
            .at("on_conflict")),
        }
    }

    /// NocoBase's upsert of one `object` that wrote no row (`records`, the
    /// written ones, empty: `firstOrCreate` found one, or the update rule
    /// left it as it is) answers the row it found: the first, in the
    /// primary key's order, whose `filterKeys` hold the object's values.
    /// Read after the write, as committed.
    pub(super) async fn answer_found(
        &self,
        state: &AppState,
        caller: &Caller,
        target: &Target,
        object: &Json,
        records: &mut Vec<Record>,
    ) -> Result<(), ApiError> {
        if !self.nocobase || !records.is_empty() {
            return Ok(());
        }
        let filter = writer::stored_filter(state, target, &self.on_conflict, object).await?;
        let request = read::ReadRequest {
            filter: Some(filter),
            sort: read::key_order(target),
            limit: Some(1),
            ..read::ReadRequest::default()
        };
        *records = read::fetch(state, caller, target, &request).await?.0;
        Ok(())
    }

    /// The columns an existing row gets: with merge-duplicates every one
    /// the objects give but the key's; none with ignore-duplicates.
    fn update(&self, key: &[String], objects: &Objects<'_>) -> Vec<String> {
        let mut update: Vec<String> = Vec::new();
        if self.merge {
            for (_, object) in objects {
                for name in object.as_object().into_iter().flat_map(|o| o.keys()) {
                    if !key.contains(name) && !update.contains(name) {
                        update.push(name.clone());
                    }
                }
            }
        }
        update
    }
}

/// Each of `names` (from the parameter `param`) must be a column of the
/// collection: else a 400 naming it.
fn known_columns(target: &Target, names: &[String], param: &str) -> Result<(), ApiError> {
    match names.iter().find(|name| target.def.column(name).is_none()) {
        None => Ok(()),
        Some(name) => Err(ApiError::bad_request(format!(
            "`{}` has no column `{name}`",
            target.name()
        ))
        .at(param)),
    }
}

/// NocoBase's `whitelist` and `blacklist` of a create or update: body
/// values outside the whitelist, or in the blacklist, are left out, not
/// refused (as NocoBase does: a form posts every field, the route writes
/// those it names). Each name must be a column of the collection.
#[derive(Debug, Default)]
struct Guard {
    whitelist: Vec<String>,
    blacklist: Vec<String>,
}

impl Guard {
    fn apply(&self, target: &Target, body: &mut Json) -> Result<(), ApiError> {
        if self.whitelist.is_empty() && self.blacklist.is_empty() {
            return Ok(());
        }
        for (param, names) in [
            ("whitelist", &self.whitelist),
            ("blacklist", &self.blacklist),
        ] {
            known_columns(target, names, param)?;
        }
        let kept = |name: &String| {
            (self.whitelist.is_empty() || self.whitelist.contains(name))
                && !self.blacklist.contains(name)
        };
        let objects: Vec<&mut Json> = match body {
            Json::Array(items) => items.iter_mut().collect(),
            object => vec![object],
        };
        for object in objects {
            if let Json::Object(values) = object {
                values.retain(|name, _| kept(name));
            }
        }
        Ok(())
    }
}

/// What a write answers of the rows it wrote: `fields` (only these
/// columns) minus `except`, as in a read; neither: every column the caller
/// may read. Only the rows' own columns: a write appends no relations.
#[derive(Debug, Default)]
pub(super) struct Returned {
    fields: Vec<String>,
    except: Vec<String>,
}

impl Returned {
    /// The query's `fields` and `except`, taken out of it.
    fn take(params: &mut Params) -> Self {
        Self {
            fields: params.names("fields"),
            except: params.names("except"),
        }
    }

    /// A batch operation's, each a list of names or one comma-separated
    /// string (`"fields": ["id", "status"]`, `"fields": "id,status"`).
    pub(super) fn from_json(fields: Option<Json>, except: Option<Json>) -> Result<Self, ApiError> {
        Ok(Self {
            fields: names_of(fields, "fields")?,
            except: names_of(except, "except")?,
        })
    }

    /// The columns answered, checked before anything is written: a name
    /// that is no column of the rows is a 400, one the caller may not read
    /// a 403.
    pub(super) fn columns(
        &self,
        state: &AppState,
        caller: &Caller,
        target: &Target,
    ) -> Result<Answered, ApiError> {
        if self.fields.is_empty() && self.except.is_empty() {
            return Ok(Answered(None));
        }
        let readable = writer::readable(state, caller, target)?;
        for (param, names) in [("fields", &self.fields), ("except", &self.except)] {
            for name in names {
                if read::relation_entry(target, name).is_some() {
                    return Err(ApiError::bad_request(format!(
                        "a write answers the rows it wrote, not related rows: `{name}` names a \
                         relation of `{}` (read them with `appends`)",
                        target.name()
                    ))
                    .at(param));
                }
                read::check_column(target, &readable, name, caller).map_err(|e| e.at(param))?;
            }
        }
        let base = if self.fields.is_empty() {
            &readable
        } else {
            &self.fields
        };
        Ok(Answered(Some(
            base.iter()
                .filter(|column| !self.except.contains(column))
                .cloned()
                .collect(),
        )))
    }
}

/// Column names a batch operation gives under `param`: a list of names or
/// one comma-separated string (`["id", "status"]`, `"id,status"`).
fn names_of(value: Option<Json>, param: &str) -> Result<Vec<String>, ApiError> {
    let refused = || {
        ApiError::bad_request(format!(
            "`{param}` is a list of column names or one comma-separated string"
        ))
        .at(param)
    };
    let texts = match value {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::String(text)) => vec![text],
        Some(Json::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Json::String(text) => Ok(text),
                _ => Err(refused()),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(refused()),
    };
    Ok(texts
        .iter()
        .flat_map(|text| text.split(','))
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .collect())
}

/// The columns a write answers, checked; `None`: every column the caller
/// may read.
pub(super) struct Answered(Option<Vec<String>>);

impl Answered {
    fn holds(columns: &[String], name: &str) -> bool {
        columns.iter().any(|column| column == name)
    }

    /// Has the statements return only the answered columns (and the key,
    /// which the audit row reads): a column the source's own database user
    /// may not read need not come back, nor a wide row travel back whole.
    pub(super) fn narrow(&self, target: &Target, planned: &mut Planned) {
        if let Some(columns) = &self.0 {
            planned.return_only(target, |name| Self::holds(columns, name));
        }
    }

    /// Runs `planned` as one transaction ([`writer::apply_alone`]), its
    /// statements narrowed to the answered columns; the rows affected and
    /// the written rows as answered.
    async fn write(
        &self,
        state: &AppState,
        caller: &Caller,
        target: &Target,
        mut planned: Planned,
        audit: &mut Audit,
    ) -> Result<(u64, Vec<Record>), ApiError> {
        self.narrow(target, &mut planned);
        let (affected, mut records) =
            writer::apply_alone(state, caller, target, &planned, audit).await?;
        self.trim(&mut records);
        Ok((affected, records))
    }

    /// Leaves the written rows only the answered columns.
    pub(super) fn trim(&self, records: &mut [Record]) {
        if let Some(columns) = &self.0 {
            for record in records {
                record.0.retain(|(name, _)| Self::holds(columns, name));
            }
        }
    }
}

/// Objects to create, each with its place in the request (for errors).
pub(super) type Objects<'b> = Vec<(String, &'b Json)>;

/// The objects of a create's body (one, or an array), each with its place
/// under `at` for errors; true for an array.
pub(super) fn objects<'b>(body: &'b Json, at: &str) -> Result<(Objects<'b>, bool), ApiError> {
    match body {
        Json::Array(items) if !items.is_empty() => Ok((
            items
                .iter()
                .enumerate()
                .map(|(i, item)| (format!("{at}[{i}]"), item))
                .collect(),
            true,
        )),
        Json::Array(_) => {
            let error = ApiError::bad_request("nothing to create: the array is empty");
            Err(if at.is_empty() { error } else { error.at(at) })
        }
        object => Ok((vec![(at.to_string(), object)], false)),
    }
}

pub(super) fn rows(selection: &Selection) -> Rows {
    match selection {
        Selection::Key(key) => Rows::Key(
            key.values
                .iter()
                .map(|(column, value)| (column.clone(), Json::String(value.clone())))
                .collect(),
        ),
        Selection::Filter(filter) => Rows::Filter(filter.clone()),
        Selection::KeyWithin(key, within) => {
            Rows::Filter(json!({ "$and": [key.filter(), within] }))
        }
    }
}

#[derive(Serialize)]
struct One {
    data: Option<Record>,
}

#[derive(Serialize)]
struct Many {
    data: Vec<Record>,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<Json>,
}

/// The written rows (none with `Prefer: return=minimal`: a 204); a write
/// by key that wrote nothing is a 404.
fn respond(
    target: &Target,
    selection: Selection,
    records: Vec<Record>,
    affected: u64,
    query: &WriteQuery,
) -> Result<Response, ApiError> {
    let minimal = query.prefer.minimal == Some(true);
    let response = match selection {
        Selection::Key(key) | Selection::KeyWithin(key, _) => match records.into_iter().next() {
            Some(_) if minimal => StatusCode::NO_CONTENT.into_response(),
            Some(record) => json_response(StatusCode::OK, &One { data: Some(record) }),
            None => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!(
                        "no row of `{}` with the key `{}` can be written here",
                        target.name(),
                        key.text()
                    ),
                ));
            }
        },
        Selection::Filter(_) if minimal => StatusCode::NO_CONTENT.into_response(),
        Selection::Filter(_) => json_response(
            StatusCode::OK,
            &Many {
                data: records,
                meta: Some(json!({ "affected": affected })),
            },
        ),
    };
    Ok(query.applied(response))
}

pub(super) fn selection_text(selection: &Selection) -> Json {
    match selection {
        Selection::Key(key) => Json::String(key.text()),
        Selection::Filter(filter) => filter.clone(),
        Selection::KeyWithin(key, within) => json!({ "key": key.text(), "within": within }),
    }
}

pub(super) fn parse_body(body: &Bytes) -> Result<Json, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))
}
