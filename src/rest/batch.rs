//! `POST /api/batch`: several writes — create (or upsert), update and
//! destroy, on any collections of one source — in one request and ONE
//! transaction: all of
//! them happen or none does. Each operation is what its own route would
//! do (the same rules, presets, checks and audit row); they run in order,
//! and an update or delete by filter sees the rows earlier operations of
//! the batch wrote. Lone statements no rule checks are held back and go
//! out with the `COMMIT` (PostgreSQL: one round trip for them all).

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use serde_json::{Value as Json, json};

use super::params::{Key, Selection};
use super::read::Record;
use super::write::{self, Answered, Returned, Upsert, parse_body, rows as to_rows, selection_text};
use super::writer::{self, Audit, Changes, LastWrite, Planned, Transaction};
use super::{Target, json_response};
use crate::audit;
use crate::auth::Principal;
use crate::engine::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Operations per batch: a batch is one transaction, held open while its
/// operations are planned and sent.
pub const MAX_OPERATIONS: usize = 1000;

/// `POST /api/batch` with `{"operations": [...]}`.
pub async fn run(
    state: &AppState,
    principal: &Principal,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let body = match parse_body(body) {
        Ok(body) => body,
        Err(error) => {
            refused(state, principal, &error).await;
            return Err(error);
        }
    };
    Box::pin(run_json(state, principal, body)).await
}

/// The batch `body` (`{"operations": [ … ]}`), read already: the route's,
/// or one an association's `add` / `remove` / `set` made.
pub async fn run_json(
    state: &AppState,
    principal: &Principal,
    body: Json,
) -> Result<Response, ApiError> {
    let operations = match parse(state, &principal.caller(), body) {
        Ok(operations) => operations,
        Err(error) => {
            refused(state, principal, &error).await;
            return Err(error);
        }
    };
    let mut batch = Batch::default();
    let outcome = batch.run(state, principal, &operations).await;
    batch.record(state, outcome.as_ref().err()).await;
    let results = outcome.map_err(|(_, error)| error)?;
    let mut data: Vec<Outcome> = Vec::with_capacity(operations.len());
    for (operation, (affected, mut records)) in operations.iter().zip(results) {
        // NocoBase's upsert of one object that wrote nothing answers the
        // row it found, read once the batch is committed.
        if let Kind::Create {
            values,
            upsert: Some(upsert),
        } = &operation.kind
            && values.is_object()
        {
            let caller = principal.caller();
            upsert
                .answer_found(state, &caller, &operation.target, values, &mut records)
                .await?;
        }
        operation.answered.trim(&mut records);
        data.push(Outcome {
            affected,
            data: if operation.answers_row() {
                Answer::Row(records.into_iter().next())
            } else {
                Answer::Rows(records)
            },
        });
    }
    Ok(json_response(StatusCode::OK, &Answers { data }))
}

/// One operation of the batch, checked before anything is written.
struct Operation {
    target: Target,
    kind: Kind,
    /// The columns of the written rows it answers (`fields`, `except`).
    answered: Answered,
}

/// What an operation does, with what it needs.
enum Kind {
    /// An object, or an array of objects; upserted with `upsert`.
    Create {
        values: Json,
        upsert: Option<Upsert>,
    },
    Update {
        rows: Selection,
        values: Json,
    },
    Destroy(Selection),
}

impl Operation {
    /// As the audit log names it (`write.<operation>`).
    fn audit_name(&self) -> &'static str {
        match self.kind {
            Kind::Create { .. } => "insert",
            Kind::Update { .. } => "update",
            Kind::Destroy(_) => "delete",
        }
    }

    /// Whether its answer is one row (or null), as its own route's is: a
    /// create of one object, a write by key.
    fn answers_row(&self) -> bool {
        match &self.kind {
            Kind::Create { values, .. } => !values.is_array(),
            Kind::Update { rows, .. } | Kind::Destroy(rows) => {
                matches!(rows, Selection::Key(_) | Selection::KeyWithin(..))
            }
        }
    }
}

/// The batch's operations; a 400 (or a 404 for an unknown collection)
/// names the first wrong one. All must write to one source.
/// Notes a batch refused before any operation was planned: one audit row
/// for the batch.
async fn refused(state: &AppState, principal: &Principal, error: &ApiError) {
    let entry =
        Audit::of(principal, None, "batch").into_entry(error.status.as_u16(), Some(&error.message));
    audit::record(state, entry).await;
}

fn parse(state: &AppState, caller: &Caller, body: Json) -> Result<Vec<Operation>, ApiError> {
    let Json::Object(mut fields) = body else {
        return Err(ApiError::bad_request(
            "a batch is an object: {\"operations\": [ … ]}",
        ));
    };
    let operations = match fields.remove("operations") {
        Some(Json::Array(items)) => items,
        Some(_) => {
            return Err(ApiError::bad_request("`operations` must be an array").at("operations"));
        }
        None => {
            return Err(ApiError::bad_request("`operations` is required").at("operations"));
        }
    };
    if let Some(name) = fields.keys().next() {
        return Err(ApiError::bad_request(format!("unknown field `{name}`")).at(name.clone()));
    }
    if operations.is_empty() {
        return Err(ApiError::bad_request("nothing to do: `operations` is empty").at("operations"));
    }
    if operations.len() > MAX_OPERATIONS {
        return Err(ApiError::bad_request(format!(
            "a batch holds at most {MAX_OPERATIONS} operations, not {}",
            operations.len()
        ))
        .at("operations"));
    }
    let mut parsed: Vec<Operation> = Vec::with_capacity(operations.len());
    for (i, item) in operations.into_iter().enumerate() {
        let operation = operation(state, caller, item).map_err(|e| placed(e, i))?;
        if let Some(first) = parsed.first() {
            let (source, first_source) = (
                &operation.target.collection.table.source,
                &first.target.collection.table.source,
            );
            if source != first_source {
                let error = ApiError::bad_request(format!(
                    "a batch writes to one source, in one transaction: `{}` is on `{source}`, \
                     `{}` on `{first_source}`; send them as batches of their own",
                    operation.target.name(),
                    first.target.name(),
                ));
                return Err(placed(error.at("collection"), i));
            }
        }
        parsed.push(operation);
    }
    Ok(parsed)
}

/// One operation: `{"action", "collection", "key" | "filter", "values"}`,
/// and optionally `"fields"` and `"except"`; a create's upsert with
/// `"resolution"` (and `"on_conflict"`), NocoBase's `updateOrCreate` and
/// `firstOrCreate` with `"filterKeys"`.
fn operation(state: &AppState, caller: &Caller, item: Json) -> Result<Operation, ApiError> {
    let Json::Object(mut fields) = item else {
        return Err(ApiError::bad_request(
            "an operation is an object: {\"action\", \"collection\", \"key\" or \"filter\", \"values\"}",
        ));
    };
    let text = |fields: &mut serde_json::Map<String, Json>, name: &str| match fields.remove(name) {
        Some(Json::String(text)) => Ok(text),
        Some(_) => Err(ApiError::bad_request(format!("`{name}` must be a string")).at(name)),
        None => Err(ApiError::bad_request(format!("`{name}` is required")).at(name)),
    };
    let action = text(&mut fields, "action")?;
    if !matches!(
        action.as_str(),
        "create" | "update" | "destroy" | "updateOrCreate" | "firstOrCreate"
    ) {
        return Err(ApiError::bad_request(format!(
            "unknown action `{action}`: use create, update, destroy, updateOrCreate or \
             firstOrCreate"
        ))
        .at("action"));
    }
    let collection = text(&mut fields, "collection")?;
    let target = Target::resolve(state, &collection).map_err(|e| e.at("collection"))?;
    let key = match fields.remove("key") {
        None | Some(Json::Null) => None,
        Some(Json::String(text)) => Some(text),
        Some(Json::Number(number)) => Some(number.to_string()),
        Some(_) => {
            return Err(ApiError::bad_request(
                "`key` is the row's key as in `/api/{collection}/{key}`: a string or a number",
            )
            .at("key"));
        }
    };
    let filter = match fields.remove("filter") {
        None | Some(Json::Null) => None,
        Some(Json::Object(map)) if map.is_empty() => None,
        Some(filter @ Json::Object(_)) => Some(filter),
        Some(_) => return Err(ApiError::bad_request("`filter` must be a JSON object").at("filter")),
    };
    let values = fields.remove("values");
    let answered = Returned::from_json(fields.remove("fields"), fields.remove("except"))?
        .columns(state, caller, &target)?;
    let upsert = Upsert::of_operation(
        &action,
        fields.remove("resolution"),
        fields.remove("on_conflict"),
        fields.remove("filterKeys"),
    )?;
    // NocoBase's upserts are creates that find their rows by filterKeys.
    let action = if upsert.is_some() {
        "create"
    } else {
        action.as_str()
    };
    if let Some(name) = fields.keys().next() {
        return Err(ApiError::bad_request(format!("unknown field `{name}`")).at(name.clone()));
    }
    let rows = match (key, filter) {
        (None, None) => None,
        (Some(key), None) => Some(Selection::Key(
            Key::from_path(&target, &key).map_err(|e| e.at("key"))?,
        )),
        (None, Some(filter)) => Some(Selection::Filter(filter)),
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give either `key` or `filter`, not both",
            ));
        }
    };
    let kind = match (action, rows, values) {
        ("create", None, Some(values)) => Kind::Create { values, upsert },
        ("create", Some(_), _) => {
            return Err(ApiError::bad_request(
                "a create names no rows: it takes neither `key` nor `filter`",
            ));
        }
        ("destroy", _, Some(_)) => {
            return Err(ApiError::bad_request("a destroy takes no `values`").at("values"));
        }
        ("destroy", Some(rows), None) => Kind::Destroy(rows),
        ("update", Some(rows), Some(values)) => Kind::Update { rows, values },
        (_, None, _) if action != "create" => {
            return Err(ApiError::bad_request(
                "an update or destroy needs a `key` or a non-empty `filter`; an empty filter \
                 would touch every row",
            )
            .at("filter"));
        }
        _ => return Err(ApiError::bad_request("`values` is required").at("values")),
    };
    Ok(Operation {
        target,
        kind,
        answered,
    })
}

/// An operation's error, placed at it: `operations[2].values.total`.
fn placed(error: ApiError, at: usize) -> ApiError {
    let place = format!("operations[{at}]");
    let mut error = error.placed_in(&place);
    error.message = format!("{place}: {}", error.message);
    error
}

/// The rows one operation affected, and the written rows as the caller
/// may read them.
type Done = (u64, Vec<Record>);

/// Why a batch wrote nothing: the index of the operation that failed
/// (`None`: the commit), and its error, placed at it.
type Failed = (Option<usize>, ApiError);

/// The failure of operation `at`.
fn failed(at: usize) -> impl FnOnce(ApiError) -> Failed {
    move |error| (Some(at), placed(error, at))
}

/// A lone statement no rule checks, waiting to go out with the `COMMIT`.
struct Held {
    at: usize,
    planned: Planned,
}

/// The batch's transaction, the operations held back, and each planned
/// operation's audit row.
#[derive(Default)]
struct Batch {
    tx: Option<Transaction>,
    held: Vec<Held>,
    /// Each operation's audit row, by its index; `Some` once planned.
    audits: Vec<Option<Audit>>,
}

impl Batch {
    /// Runs the operations in order and commits; after an error nothing
    /// of the batch is left (rolled back, held writes never sent).
    async fn run(
        &mut self,
        state: &AppState,
        principal: &Principal,
        operations: &[Operation],
    ) -> Result<Vec<Done>, Failed> {
        let caller = principal.caller();
        self.audits = operations.iter().map(|_| None).collect();
        let mut done: Vec<Option<Done>> = operations.iter().map(|_| None).collect();
        let result = self
            .run_all(state, principal, &caller, operations, &mut done)
            .await;
        if result.is_err()
            && let Some(tx) = self.tx.take()
        {
            tx.rollback().await;
        }
        result?;
        done.into_iter()
            .map(|d| {
                let error = ApiError::internal("an operation of the batch did not run");
                d.ok_or((None, error))
            })
            .collect()
    }

    async fn run_all(
        &mut self,
        state: &AppState,
        principal: &Principal,
        caller: &Caller,
        operations: &[Operation],
        done: &mut [Option<Done>],
    ) -> Result<(), Failed> {
        for (at, operation) in operations.iter().enumerate() {
            let mut planned = self.plan(state, principal, operation, at).await?;
            if !self.held.is_empty() && planned.read_rows() {
                // Its rows were read without the keys the held-back
                // writes write: those go out first, and it is planned again.
                self.send_held(state, caller, operations, done).await?;
                planned = self.plan(state, principal, operation, at).await?;
            }
            if planned.is_empty() {
                done[at] = Some((0, Vec::new()));
                continue;
            }
            let target = &operation.target;
            if planned.is_lone_unchecked() {
                let connector = state
                    .sources
                    .connector(&target.collection.table.source)
                    .map_err(|e| failed(at)(e.into()))?;
                if let Some(audit) = &mut self.audits[at] {
                    audit.planned(connector.as_ref(), &planned);
                }
                self.held.push(Held { at, planned });
                continue;
            }
            self.send_held(state, caller, operations, done).await?;
            done[at] = Some(self.apply(state, caller, target, &planned, at).await?);
        }
        let held = std::mem::take(&mut self.held);
        if held.is_empty() {
            if let Some(tx) = self.tx.take() {
                tx.commit().await.map_err(|e| (None, e))?;
            }
            return Ok(());
        }
        // The held-back writes go out with the `COMMIT`.
        let mut audits = Vec::with_capacity(held.len());
        for h in &held {
            let audit = self.audits[h.at].take().ok_or_else(|| {
                failed(h.at)(ApiError::internal(
                    "an operation of the batch without its audit row",
                ))
            })?;
            audits.push((h.at, audit));
        }
        let mut writes: Vec<LastWrite<'_>> = held
            .iter()
            .zip(audits.iter_mut())
            .map(|(h, (_, audit))| LastWrite {
                target: &operations[h.at].target,
                planned: &h.planned,
                audit,
            })
            .collect();
        let outcome = writer::apply_all_last(state, caller, self.tx.take(), &mut writes).await;
        drop(writes);
        for (at, audit) in audits {
            self.audits[at] = Some(audit);
        }
        match outcome {
            Ok(results) => {
                for (h, result) in held.iter().zip(results) {
                    done[h.at] = Some(result);
                }
                Ok(())
            }
            Err((Some(i), error)) => Err(failed(held.get(i).map_or(0, |h| h.at))(error)),
            Err((None, error)) => Err((None, error)),
        }
    }

    /// Plans one operation (its audit row begun), the rows earlier
    /// operations wrote to its table among an update's or delete's
    /// candidates.
    async fn plan(
        &mut self,
        state: &AppState,
        principal: &Principal,
        operation: &Operation,
        at: usize,
    ) -> Result<Planned, Failed> {
        let target = &operation.target;
        let mut audit = Audit::new(principal, target, operation.audit_name());
        if let Kind::Update { rows, .. } | Kind::Destroy(rows) = &operation.kind {
            audit.note("target", selection_text(rows));
        }
        audit.note("batch", json!(at));
        self.audits[at] = Some(audit);
        let earlier = self.tx.as_ref().map_or(&[][..], |tx| tx.written(target));
        let planned = match &operation.kind {
            Kind::Create { values, upsert } => match write::objects(values, "values") {
                Err(error) => Err(error),
                Ok((objects, _)) => match (upsert, self.audits[at].as_mut()) {
                    (Some(upsert), Some(audit)) => {
                        let inside = self.tx.as_mut();
                        upsert
                            .plan(state, principal, target, &objects, audit, inside)
                            .await
                    }
                    _ => writer::plan_insert(state, principal, target, &objects),
                },
            },
            Kind::Update { rows, values } => {
                let changes = Changes {
                    set: Some((values, "values")),
                    increment: None,
                    json: Vec::new(),
                };
                writer::plan_update(state, principal, target, &to_rows(rows), changes, earlier)
                    .await
            }
            Kind::Destroy(rows) => {
                writer::plan_delete(state, principal, target, &to_rows(rows), earlier).await
            }
        };
        let mut planned = planned.map_err(failed(at))?;
        operation.answered.narrow(target, &mut planned);
        Ok(planned)
    }

    /// Sends the held-back writes in the transaction, in order.
    async fn send_held(
        &mut self,
        state: &AppState,
        caller: &Caller,
        operations: &[Operation],
        done: &mut [Option<Done>],
    ) -> Result<(), Failed> {
        for held in std::mem::take(&mut self.held) {
            let target = &operations[held.at].target;
            done[held.at] = Some(
                self.apply(state, caller, target, &held.planned, held.at)
                    .await?,
            );
        }
        Ok(())
    }

    /// Runs a planned write in the batch's transaction, begun on the first.
    async fn apply(
        &mut self,
        state: &AppState,
        caller: &Caller,
        target: &Target,
        planned: &Planned,
        at: usize,
    ) -> Result<Done, Failed> {
        let tx = match &mut self.tx {
            Some(tx) => tx,
            None => self.tx.insert(
                Transaction::begin(state, target)
                    .await
                    .map_err(failed(at))?,
            ),
        };
        let mut audit = self.audits[at].take().ok_or_else(|| {
            failed(at)(ApiError::internal(
                "an operation of the batch without its audit row",
            ))
        })?;
        let result = tx.apply(state, caller, target, planned, &mut audit).await;
        self.audits[at] = Some(audit);
        result.map_err(failed(at))
    }

    /// Writes the audit rows of the operations that were planned: the
    /// failed one with its error, those before it rolled back with it.
    async fn record(self, state: &AppState, failure: Option<&Failed>) {
        let entries: Vec<_> = self
            .audits
            .into_iter()
            .enumerate()
            .filter_map(|(at, audit)| audit.map(|a| (at, a)))
            .map(|(at, mut audit)| match failure {
                None => audit.into_entry(200, None),
                Some((Some(failed), error)) if *failed == at => {
                    audit.into_entry(error.status.as_u16(), Some(&error.message))
                }
                Some((_, cause)) => {
                    audit.note("rolled_back", Json::Bool(true));
                    let message = format!("rolled back: {}", cause.message);
                    audit.into_entry(cause.status.as_u16(), Some(&message))
                }
            })
            .collect();
        if !entries.is_empty() {
            audit::record_all(state, entries).await;
        }
    }
}

#[derive(Serialize)]
struct Answers {
    data: Vec<Outcome>,
}

/// One operation's answer: the rows it affected, and the written rows as
/// its own route answers them (a row or null, or an array).
#[derive(Serialize)]
struct Outcome {
    affected: u64,
    data: Answer,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Answer {
    Row(Option<Record>),
    Rows(Vec<Record>),
}
