//! The write path REST and GraphQL share. A write is planned first
//! (`plan_insert`, `plan_update`, `plan_delete`): the caller's insert /
//! update / delete rule decides — columns outside its writable list are a
//! 403, presets overwrite the body, update and delete touch only rows its
//! rule's filter admits (and, by key or filter, rows the request names).
//! A [`Transaction`] on the collection's source then runs it: rows an
//! insert or update leaves behind must pass the rule's `check` filter,
//! else the caller rolls the transaction back (a 403 naming the rule). A
//! REST request is one transaction; a GraphQL mutation request is one for
//! all its root fields. Every write, refused or not, is in the audit log.
//!
//! Update and delete address rows by key: a row named by its key is
//! written by that key; rows named by a filter (or under a rule's filter)
//! have their keys read through the engine first, so filters mean what
//! they mean on reads, on every source, relations included. That read is
//! outside the transaction, so inside it those rows are locked and the
//! filters checked again on what the rows are now ([`Recheck`]): a row
//! changed meanwhile is written only if it still matches. The rows the
//! transaction itself inserted or updated in the table, which that read
//! cannot see, join the candidates ([`Transaction::written`]).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::Utc;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Column;
use datafusion::datasource::{MemTable, provider_as_source};
use datafusion::logical_expr::{Expr, LogicalPlanBuilder};
use futures::StreamExt;
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use tributary_connector::render::{self, keys_predicate};
use tributary_connector::{
    Connector, Delete, Insert, JsonEdit, Lock, Predicate, Update, Value, WriteOp, WriteTarget,
    WriteTx,
};
use tributary_schema_cache::{ColumnDef, SourceKind};

use super::Target;
use super::read::{self, Record, filter_error, full_name, internal, selectable_columns, within};
use super::values::to_value;
use crate::audit::{self, AuditEntry, Outcome};
use crate::auth::Principal;
use crate::engine::{Caller, ReadShape};
use crate::error::ApiError;
use crate::filter::{self, Variables};
use crate::permissions::{Action, Rule};
use crate::results;
use crate::state::AppState;

/// Keys per UPDATE / DELETE statement.
const KEYS_PER_STATEMENT: usize = 500;

/// The rows an update or delete addresses.
#[derive(Debug, Clone)]
pub(crate) enum Rows {
    /// One row by its primary key: each key column with its value.
    Key(Vec<(String, Json)>),
    /// The rows a filter (JSON, as the REST API's) matches.
    Filter(Json),
}

impl Rows {
    /// As a filter: key values are read as the columns' types.
    fn filter(&self) -> Json {
        match self {
            Self::Key(values) => Json::Object(values.iter().cloned().collect()),
            Self::Filter(filter) => filter.clone(),
        }
    }
}

/// A write ready to run in a [`Transaction`]: statements, each part with
/// the rule (none for the admin) whose check its written rows must pass
/// (an upsert has an insert part and an update part).
pub(crate) struct Planned {
    parts: Vec<Part>,
    /// How the rows to write were found ([`Found`]).
    found: Found,
}

/// How an update's, delete's or upsert's rows were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// By their keys alone (or nothing to find: an insert).
    Key,
    /// By a read through the engine, which sees what was committed before
    /// the transaction.
    Read,
    /// As `Read`, while the transaction had written the table: the rows it
    /// wrote are candidates too, checked again inside it ([`Recheck`]).
    ReadStale,
}

struct Part {
    action: Action,
    rule: Option<Rule>,
    ops: Vec<WriteOp>,
    recheck: Option<Recheck>,
    /// JSON documents its updates edit that the source cannot edit as
    /// jsonb would: the server edits them ([`edit_documents`]).
    documents: Vec<DocumentEdit>,
}

/// A JSON document edit the server makes: the column, the edit, its
/// place in the request.
type DocumentEdit = (String, JsonEdit, String);

impl Part {
    /// Whether its rule checks the rows it writes (reading them back).
    fn checked(&self) -> bool {
        self.rule.as_ref().is_some_and(|r| r.check.is_some())
    }
}

/// The filter an update's or delete's rows were chosen by, through the
/// engine before the transaction began. Inside the transaction the rows are
/// locked (`SELECT … FOR UPDATE`) and the filter, with the rule's, is
/// checked again on what they are now: a row changed meanwhile is written
/// only if it still matches, as PostgreSQL re-checks an UPDATE's WHERE on a
/// row a concurrent transaction changed. So a rule's filter holds under
/// concurrent writes too. (Related rows a filter reaches are read as
/// committed, outside the transaction.)
struct Recheck {
    /// The request's filter; the part's rule adds its own.
    requested: Json,
    key_columns: Vec<String>,
    /// The columns locked rows are read with: the key's and those the
    /// filters read ([`Chosen::reads`]), not every column — a source's
    /// user may be denied reading some.
    columns: Vec<String>,
    /// The keys each of the part's statements writes, in their order
    /// ([`key_chunks`]).
    keys: Vec<Vec<Vec<Value>>>,
}

impl Recheck {
    /// Locks the rows of `ops` and answers the statements that write only
    /// the rows still matching (all of `ops` when every row does).
    async fn narrow<'o>(
        &self,
        writer: &mut Writer<'_>,
        state: &AppState,
        caller: &Caller,
        target: &Target,
        rule: Option<&Rule>,
        ops: &'o [WriteOp],
    ) -> Result<Cow<'o, [WriteOp]>, ApiError> {
        if !matches!(writer, Writer::Tx { .. }) {
            return Err(ApiError::internal(
                "rows to check again outside a transaction",
            ));
        }
        let all: Vec<Vec<Value>> = self.keys.iter().flatten().cloned().collect();
        let now = read_locked(writer, target, &self.key_columns, &all, &self.columns).await?;
        let still = match now {
            Some(rows) => {
                let key_columns = &self.key_columns;
                select_keys(
                    state,
                    caller,
                    target,
                    key_columns,
                    &self.requested,
                    rule,
                    Some(rows),
                )
                .await?
                .keys
            }
            None => Vec::new(),
        };
        // Keys compare by their debug text: both sides were decoded alike.
        let still: HashSet<String> = still.iter().map(|key| format!("{key:?}")).collect();
        if all.iter().all(|key| still.contains(&format!("{key:?}"))) {
            return Ok(Cow::Borrowed(ops));
        }
        let narrowed = ops
            .iter()
            .zip(&self.keys)
            .filter_map(|(op, keys)| {
                let kept: Vec<Vec<Value>> = keys
                    .iter()
                    .filter(|key| still.contains(&format!("{key:?}")))
                    .cloned()
                    .collect();
                match kept.len() {
                    0 => None,
                    n if n == keys.len() => Some(op.clone()),
                    _ => Some(with_filter(op, keys_predicate(&self.key_columns, &kept))),
                }
            })
            .collect();
        Ok(Cow::Owned(narrowed))
    }
}

/// An update or delete `op` on the rows `filter` matches instead.
fn with_filter(op: &WriteOp, filter: Predicate) -> WriteOp {
    let mut op = op.clone();
    match &mut op {
        WriteOp::Update(update) => update.filter = filter,
        WriteOp::Delete(delete) => delete.filter = filter,
        WriteOp::Lock(lock) => lock.filter = filter,
        // Inserts name no rows: never narrowed.
        WriteOp::Insert(_) => {}
    }
    op
}

impl Planned {
    fn one(action: Action, rule: Option<Rule>, ops: Vec<WriteOp>) -> Self {
        Self::rechecked(action, rule, ops, None, Found::Key)
    }

    fn rechecked(
        action: Action,
        rule: Option<Rule>,
        ops: Vec<WriteOp>,
        recheck: Option<Recheck>,
        found: Found,
    ) -> Self {
        Self {
            parts: vec![Part {
                action,
                rule,
                ops,
                recheck,
                documents: Vec::new(),
            }],
            found,
        }
    }

    /// The plan with `documents` edited by the server in its updates.
    fn editing(mut self, documents: Vec<DocumentEdit>) -> Self {
        if let Some(part) = self.parts.first_mut() {
            part.documents = documents;
        }
        self
    }

    /// Whether the rows to write were found by reading through the engine.
    /// The engine does not see the request's earlier writes, so such a
    /// plan takes their keys (`earlier`) as candidates: made while some
    /// earlier writes are held back (not yet sent), it would miss theirs.
    pub(crate) fn read_rows(&self) -> bool {
        self.found != Found::Key
    }

    /// No row to write (an update or delete that matched none).
    pub fn is_empty(&self) -> bool {
        self.parts.iter().all(|p| p.ops.is_empty())
    }

    /// Has the statements return only the columns `wanted` says the
    /// answer reads, with the primary key (the audit row and the
    /// transaction's written keys read it): a wide row does not travel
    /// back whole for `{ id }`, nor every deleted row for
    /// `{ affected_rows }`. A write a rule checks keeps every column (the
    /// check reads the rows), as does a statement that would return
    /// nothing (a row answer needs a row).
    pub(crate) fn return_only(&mut self, target: &Target, wanted: impl Fn(&str) -> bool) {
        if self.parts.iter().any(Part::checked) {
            return;
        }
        let key = target.def.primary_key.as_ref().map(|k| &k.columns);
        let kept = |column: &String| wanted(column) || key.is_some_and(|k| k.contains(column));
        for op in self.parts.iter_mut().flat_map(|p| &mut p.ops) {
            let returning = match op {
                WriteOp::Insert(op) => &mut op.returning,
                WriteOp::Update(op) => &mut op.returning,
                WriteOp::Delete(op) => &mut op.returning,
                WriteOp::Lock(_) => continue,
            };
            if returning.iter().any(kept) {
                returning.retain(kept);
            }
        }
    }

    /// One statement, whose written rows no rule checks and whose rows
    /// need no second look (nor a read of their documents): nothing to undo
    /// after it ran.
    pub(crate) fn is_lone_unchecked(&self) -> bool {
        self.parts.iter().map(|p| p.ops.len()).sum::<usize>() == 1
            && self
                .parts
                .iter()
                .all(|p| p.recheck.is_none() && !p.checked() && p.documents.is_empty())
    }
}

/// Refuses views and other tables the source cannot write.
fn writable(target: &Target) -> Result<(), ApiError> {
    if target.def.kind.is_writable() {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "`{}` is a {:?} and cannot be written",
            target.name(),
            target.def.kind
        )))
    }
}

/// Inserts of `objects` (each with its place in the request, for errors),
/// consecutive rows with the same columns in one statement.
pub(crate) fn plan_insert(
    state: &AppState,
    principal: &Principal,
    target: &Target,
    objects: &[(String, &Json)],
) -> Result<Planned, ApiError> {
    let rule = write_rule(state, principal, target, Action::Insert)?;
    writable(target)?;
    target.primary_key()?;
    if objects.is_empty() {
        return Err(ApiError::bad_request("nothing to insert: no row is given"));
    }
    let ops = inserts(target, objects, rule.as_ref(), &principal.caller())?;
    Ok(Planned::one(Action::Insert, rule, ops))
}

/// The INSERT statements of `objects` under the insert rule.
fn inserts(
    target: &Target,
    objects: &[(String, &Json)],
    rule: Option<&Rule>,
    caller: &Caller,
) -> Result<Vec<WriteOp>, ApiError> {
    let mut ops: Vec<WriteOp> = Vec::new();
    for (path, object) in objects {
        let values = row_values(target, object, rule, caller, path)?;
        let columns: Vec<String> = values.iter().map(|(n, _)| n.clone()).collect();
        let row: Vec<Value> = values.into_iter().map(|(_, v)| v).collect();
        if let Some(WriteOp::Insert(last)) = ops.last_mut()
            && last.columns == columns
            && !columns.is_empty()
        {
            last.rows.push(row);
            continue;
        }
        ops.push(WriteOp::Insert(Insert {
            target: write_target(target),
            columns,
            rows: vec![row],
            returning: all_columns(target),
        }));
    }
    Ok(ops)
}

/// The key an upsert's rows conflict on, and which existing rows it may
/// update.
pub(crate) struct Conflict {
    /// The primary key's columns, or a unique constraint's.
    pub columns: Vec<String>,
    /// Only existing rows matching this filter are updated (the others are
    /// left as they are); `None`: every one the update rule admits.
    pub only: Option<Json>,
}

/// An insert that updates the rows whose key is already there (GraphQL's
/// `on_conflict`): each object must give the whole key. Rows that exist
/// get the object's `update` columns (the update rule decides: a row its
/// filter does not admit is left as it is, as is every existing row when
/// `update` is empty); the others are inserted under the insert rule.
/// Which keys exist is read through the engine, or — `inside` the
/// request's transaction once it has written — in that transaction, the
/// rows locked: an upsert sees the rows the request's earlier writes
/// inserted or deleted. A row inserted by someone else in between makes
/// the insert fail on its key, and the request roll back.
pub(crate) async fn plan_upsert(
    state: &AppState,
    principal: &Principal,
    target: &Target,
    objects: &[(String, &Json)],
    conflict: &Conflict,
    update: &[String],
    inside: Option<&mut Transaction>,
) -> Result<Planned, ApiError> {
    let caller = principal.caller();
    let insert_rule = write_rule(state, principal, target, Action::Insert)?;
    let update_rule = if update.is_empty() {
        None
    } else {
        write_rule(state, principal, target, Action::Update)?
    };
    writable(target)?;
    target.primary_key()?;
    let key_columns = conflict.columns.as_slice();
    if objects.is_empty() {
        return Err(ApiError::bad_request("nothing to insert: no row is given"));
    }
    // Each object's key, typed as the column; `None` where a value is NULL
    // (a NULL conflicts with nothing, as in SQL: the row is inserted).
    let mut keys: Vec<Option<Vec<Value>>> = Vec::with_capacity(objects.len());
    for (path, object) in objects {
        let mut key = Some(Vec::with_capacity(key_columns.len()));
        for name in key_columns {
            let column = target.def.column(name).ok_or_else(|| {
                ApiError::internal(format!("key column `{name}` is not in the catalog"))
            })?;
            match object.get(name).filter(|v| !v.is_null()) {
                Some(value) => {
                    let value = to_value(value, column, &format!("{path}.{name}"))?;
                    if let Some(key) = &mut key {
                        key.push(value);
                    }
                }
                None if column.nullable => key = None,
                None => {
                    return Err(ApiError::bad_request(format!(
                        "an upsert needs its conflict key in every object: `{name}` is missing"
                    ))
                    .at(path.clone()));
                }
            }
        }
        keys.push(key);
    }
    let inside = inside.filter(|tx| tx.source() == target.collection.table.source);
    let connector = state.sources.connector(&target.collection.table.source)?;
    // On a source whose collations call keys equal that PostgreSQL would
    // not, its unique index decides what conflicts: keys are paired with
    // the rows it stores under them ([`pair_stored`]).
    let loose = loose_text(connector.kind())
        && keys
            .iter()
            .flatten()
            .flatten()
            .any(|v| matches!(v, Value::Text(_)));
    let given: Vec<Vec<Value>> = keys.iter().flatten().cloned().collect();
    // Existing rows to update: all of them, unless the rule's filter or
    // `where` leaves some out (then read which).
    let narrowed = !update.is_empty()
        && (conflict.only.is_some() || update_rule.as_ref().is_some_and(|r| r.filter.is_some()));
    let rule = update_rule.as_ref();
    // The filter an existing row is found by, and the one it is updated by.
    let filters = |keys: &[Option<Vec<Value>>]| {
        let alternatives: Vec<Json> = objects
            .iter()
            .zip(keys)
            .filter_map(|((_, object), key)| Some(key_filter(key_columns, key.as_ref()?, object)))
            .collect();
        let any_of = json!({ "$or": alternatives });
        let updated = match &conflict.only {
            Some(only) => json!({ "$and": [any_of, only] }),
            None => any_of.clone(),
        };
        (any_of, updated)
    };
    // The filter the rows to update were read by, when not all are, and
    // the columns it reads.
    let mut chosen_by: Option<(Json, HashSet<String>)> = None;
    let (existing, admitted) = match inside {
        _ if given.is_empty() => (Vec::new(), Vec::new()),
        None => {
            if loose {
                let mut writer = Writer::Alone(connector.as_ref());
                let stored =
                    read_locked(&mut writer, target, key_columns, &given, key_columns).await?;
                pair_stored(target, key_columns, &mut keys, stored.as_ref())?;
            }
            let (any_of, updated) = filters(&keys);
            let existing = select_keys(state, &caller, target, key_columns, &any_of, None, None)
                .await?
                .keys;
            let admitted = if narrowed {
                let admitted =
                    select_keys(state, &caller, target, key_columns, &updated, rule, None).await?;
                chosen_by = Some((updated, admitted.reads));
                admitted.keys
            } else if update.is_empty() {
                Vec::new()
            } else {
                existing.clone()
            };
            (existing, admitted)
        }
        Some(tx) => {
            // The rows as the transaction sees them, read once and locked,
            // with the columns the filters read (learnt from reading them as
            // committed); their filters are checked on those rows.
            let reads = if narrowed {
                let (_, updated) = filters(&keys);
                select_keys(state, &caller, target, key_columns, &updated, rule, None)
                    .await?
                    .reads
            } else {
                HashSet::new()
            };
            let columns = locked_columns(target, key_columns, &reads);
            let now = tx.locked(target, key_columns, &given, &columns).await?;
            if loose {
                pair_stored(target, key_columns, &mut keys, now.as_ref())?;
            }
            let existing = match &now {
                Some(rows) => keys_in(target, key_columns, rows)?,
                None => Vec::new(),
            };
            let admitted = match now {
                Some(rows) if narrowed => {
                    let (_, updated) = filters(&keys);
                    let rows = Some(rows);
                    select_keys(state, &caller, target, key_columns, &updated, rule, rows)
                        .await?
                        .keys
                }
                _ if update.is_empty() => Vec::new(),
                _ => existing.clone(),
            };
            (existing, admitted)
        }
    };
    let mut new_rows: Vec<(String, &Json)> = Vec::new();
    let mut updates: Vec<WriteOp> = Vec::new();
    let mut updated_keys: Vec<Vec<Vec<Value>>> = Vec::new();
    for ((path, object), key) in objects.iter().zip(keys) {
        let Some(key) = key.filter(|key| existing.contains(key)) else {
            new_rows.push((path.clone(), object));
            continue;
        };
        if !admitted.contains(&key) {
            continue;
        }
        let changed: serde_json::Map<String, Json> = update
            .iter()
            .filter_map(|c| object.get(c).map(|v| (c.clone(), v.clone())))
            .collect();
        let set = row_values(
            target,
            &Json::Object(changed),
            update_rule.as_ref(),
            &caller,
            path,
        )?;
        if set.is_empty() {
            continue;
        }
        updates.push(WriteOp::Update(Update {
            target: write_target(target),
            set,
            increment: Vec::new(),
            json: Vec::new(),
            filter: keys_predicate(key_columns, std::slice::from_ref(&key)),
            returning: all_columns(target),
        }));
        updated_keys.push(vec![key]);
    }
    let insert_ops = inserts(target, &new_rows, insert_rule.as_ref(), &caller)?;
    let recheck = chosen_by.map(|(requested, reads)| Recheck {
        requested,
        key_columns: key_columns.to_vec(),
        columns: locked_columns(target, key_columns, &reads),
        keys: updated_keys,
    });
    Ok(Planned {
        found: Found::Read,
        parts: vec![
            Part {
                action: Action::Insert,
                rule: insert_rule,
                ops: insert_ops,
                recheck: None,
                documents: Vec::new(),
            },
            Part {
                action: Action::Update,
                rule: update_rule,
                ops: updates,
                recheck,
                documents: Vec::new(),
            },
        ],
    })
}

/// Whether the source's collations call text equal that PostgreSQL would
/// not (MySQL's and MariaDB's, SQL Server's defaults: case and trailing
/// spaces ignored).
fn loose_text(kind: SourceKind) -> bool {
    matches!(
        kind,
        SourceKind::Mysql | SourceKind::Mariadb | SourceKind::Sqlserver
    )
}

/// Turns each upsert key into the key of the row the source holds under
/// it (`stored`: the rows the source matched the keys with), where one
/// does. On a source with [`loose_text`] its unique index decides what
/// conflicts — `ann@x.org` with a stored `Ann@x.org` — so each key takes
/// the stored row's: the one equal to it, else the one equal but for case
/// and trailing spaces. A key the source matches otherwise (an
/// accent-insensitive collation) is left as given: its insert then fails
/// on the key, and the request rolls back.
fn pair_stored(
    target: &Target,
    key_columns: &[String],
    keys: &mut [Option<Vec<Value>>],
    stored: Option<&RecordBatch>,
) -> Result<(), ApiError> {
    let Some(rows) = stored else {
        return Ok(());
    };
    let stored = keys_in(target, key_columns, rows)?;
    let folded = |key: &[Value]| -> Vec<Value> {
        key.iter()
            .map(|v| match v {
                Value::Text(text) => Value::Text(text.trim_end_matches(' ').to_lowercase()),
                other => other.clone(),
            })
            .collect()
    };
    for key in keys.iter_mut().flatten() {
        if stored.contains(key) {
            continue;
        }
        let wanted = folded(key);
        let mut alike = stored.iter().filter(|s| folded(s) == wanted);
        if let (Some(one), None) = (alike.next(), alike.next()) {
            *key = one.clone();
        }
    }
    Ok(())
}

/// The rows of `target` with `keys`, their `columns`, as `writer` sees
/// them, locked until its transaction ends (`None`: no row).
async fn read_locked(
    writer: &mut Writer<'_>,
    target: &Target,
    key_columns: &[String],
    keys: &[Vec<Value>],
    columns: &[String],
) -> Result<Option<RecordBatch>, ApiError> {
    let locks = by_keys(key_columns, keys, |filter| {
        WriteOp::Lock(Lock {
            target: write_target(target),
            filter,
            columns: columns.to_vec(),
        })
    });
    Ok(run(writer, &locks).await?.1)
}

/// Runs `ops` (updates) with `documents` edited by the server: each
/// statement's rows are locked and their documents read, edited as jsonb's
/// operators would ([`JsonEdit::apply`]) and written back, each row by its
/// key with the rest of what the statement sets. The lock holds until the
/// transaction ends, so concurrent edits of other keys do not lose each
/// other; a NULL document stays NULL. Rows affected and rows written, as
/// [`run`] answers them. Where updates return no rows (`returns`: false;
/// MySQL, MariaDB: a row's update would read it back on its own) the
/// statement's rows are read back once, after all of them.
async fn edit_documents(
    writer: &mut Writer<'_>,
    target: &Target,
    documents: &[DocumentEdit],
    ops: &[WriteOp],
    returns: bool,
) -> Result<(u64, Option<RecordBatch>), ApiError> {
    let key_columns = target.primary_key()?;
    let mut columns = key_columns.to_vec();
    columns.extend(documents.iter().map(|(name, _, _)| name.clone()));
    let (mut affected, mut batches) = (0, Vec::new());
    for op in ops {
        let WriteOp::Update(update) = op else {
            return Err(ApiError::internal(
                "a JSON document edit that is not an update",
            ));
        };
        let lock = WriteOp::Lock(Lock {
            target: update.target.clone(),
            filter: update.filter.clone(),
            columns: columns.clone(),
        });
        let Some(rows) = run(writer, std::slice::from_ref(&lock)).await?.1 else {
            continue;
        };
        let texts = documents
            .iter()
            .map(|(name, _, _)| {
                let column = rows.column_by_name(name).ok_or_else(|| {
                    ApiError::internal(format!("document `{name}` is not among the rows read"))
                })?;
                cast(column, &DataType::Utf8)
                    .map_err(|e| ApiError::internal(format!("document `{name}`: {e}")))
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        // Rows found again by the keys they had: not when a key is set.
        let read_back = !returns
            && !update.returning.is_empty()
            && !update.set.iter().any(|(c, _)| key_columns.contains(c));
        let mut edited = Vec::with_capacity(rows.num_rows());
        for (row, key) in keys_in(target, key_columns, &rows)?.into_iter().enumerate() {
            let mut one = update.clone();
            one.filter = keys_predicate(key_columns, std::slice::from_ref(&key));
            if read_back {
                one.returning.clear();
            }
            for ((name, edit, at), text) in documents.iter().zip(&texts) {
                let text = text.as_string::<i32>();
                let value = if text.is_null(row) {
                    Value::Null
                } else {
                    let document = edit.apply(text.value(row)).map_err(|message| {
                        ApiError::bad_request(format!("`{name}` cannot be edited: {message}"))
                            .at(at.clone())
                    })?;
                    Value::Text(document)
                };
                one.set.push((name.clone(), value));
            }
            edited.push(WriteOp::Update(one));
        }
        let (count, written) = run(writer, &edited).await?;
        affected += count;
        batches.extend(written);
        if read_back {
            let written = WriteOp::Lock(Lock {
                target: update.target.clone(),
                filter: update.filter.clone(),
                columns: update.returning.clone(),
            });
            batches.extend(run(writer, std::slice::from_ref(&written)).await?.1);
        }
    }
    let Some(first) = batches.first() else {
        return Ok((affected, None));
    };
    let all = concat_batches(&first.schema(), &batches)
        .map_err(|e| ApiError::internal(format!("returned rows: {e}")))?;
    Ok((affected, Some(all)))
}

/// `key` (of `columns`, `object`'s) as a filter: text as the row stores
/// it ([`pair_stored`]), other values as the object gives them.
fn key_filter(columns: &[String], key: &[Value], object: &Json) -> Json {
    Json::Object(
        columns
            .iter()
            .zip(key)
            .map(|(c, value)| {
                let json = match value {
                    Value::Text(text) => Json::String(text.clone()),
                    _ => object.get(c).cloned().unwrap_or(Json::Null),
                };
                (c.clone(), json)
            })
            .collect(),
    )
}

/// A filter on `object`'s values of `columns` that finds the row the
/// source holds under them, as an upsert does ([`pair_stored`]): NocoBase's
/// `firstOrCreate` answers the row it found by it.
pub(crate) async fn stored_filter(
    state: &AppState,
    target: &Target,
    columns: &[String],
    object: &Json,
) -> Result<Json, ApiError> {
    let mut key = Vec::with_capacity(columns.len());
    for name in columns {
        let column = target.def.column(name).ok_or_else(|| {
            ApiError::internal(format!("key column `{name}` is not in the catalog"))
        })?;
        key.push(to_value(
            object.get(name).unwrap_or(&Json::Null),
            column,
            name,
        )?);
    }
    let connector = state.sources.connector(&target.collection.table.source)?;
    let mut keys = [Some(key)];
    if loose_text(connector.kind()) {
        let mut writer = Writer::Alone(connector.as_ref());
        let given: Vec<Vec<Value>> = keys.iter().flatten().cloned().collect();
        let stored = read_locked(&mut writer, target, columns, &given, columns).await?;
        pair_stored(target, columns, &mut keys, stored.as_ref())?;
    }
    let [Some(key)] = keys else {
        return Err(ApiError::internal("a key went missing"));
    };
    Ok(key_filter(columns, &key, object))
}

/// What an update changes: columns set (the rule's presets added) and
/// columns incremented, each an object of column values with its place in
/// the request, and `jsonb` documents edited in place (GraphQL's `_append`
/// …: the column, the edit, its place).
pub(crate) struct Changes<'a> {
    pub set: Option<(&'a Json, &'a str)>,
    pub increment: Option<(&'a Json, &'a str)>,
    pub json: Vec<(String, JsonEdit, String)>,
}

/// An update of `rows` (no statement when none matches); `earlier`: the
/// keys of the rows of the table the transaction wrote before
/// ([`Transaction::written`]; empty for a request of its own).
pub(crate) async fn plan_update(
    state: &AppState,
    principal: &Principal,
    target: &Target,
    rows: &Rows,
    changes: Changes<'_>,
    earlier: &[Vec<Value>],
) -> Result<Planned, ApiError> {
    let caller = principal.caller();
    let rule = write_rule(state, principal, target, Action::Update)?;
    writable(target)?;
    let key_columns = target.primary_key()?;
    let no_object = Json::Object(serde_json::Map::new());
    let (set_object, set_path) = changes.set.unwrap_or((&no_object, ""));
    let set = row_values(target, set_object, rule.as_ref(), &caller, set_path)?;
    let mut increment = Vec::new();
    if let Some((object, path)) = changes.increment {
        increment = column_values(target, object, rule.as_ref(), path)?;
        for (name, _) in &increment {
            let numeric = target
                .def
                .column(name)
                .is_some_and(|c| c.data_type.is_numeric());
            let at = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            if !numeric {
                return Err(ApiError::bad_request(format!(
                    "column `{name}` is not a number and cannot be incremented"
                ))
                .at(at));
            }
            if set.iter().any(|(n, _)| n == name) {
                return Err(ApiError::bad_request(format!(
                    "column `{name}` is both set and incremented"
                ))
                .at(at));
            }
        }
    }
    // jsonb documents go to a source with jsonb's operators as such; other
    // JSON documents are edited by the server (`JsonEdit::apply`).
    let operators = state
        .sources
        .connector(&target.collection.table.source)?
        .dialect()
        .jsonb_operators();
    let mut json: Vec<(String, JsonEdit)> = Vec::with_capacity(changes.json.len());
    let mut documents: Vec<DocumentEdit> = Vec::new();
    for (name, edit, at) in changes.json {
        let column = writable_column(target, &name, rule.as_ref(), || at.clone())?;
        if !filter::is_json_column(column) {
            return Err(ApiError::bad_request(format!(
                "column `{name}` is not a JSON document and cannot be edited in place"
            ))
            .at(at));
        }
        let changed = |n: &String| *n == name;
        if set.iter().map(|(n, _)| n).any(changed)
            || increment.iter().map(|(n, _)| n).any(changed)
            || json.iter().map(|(n, _)| n).any(changed)
            || documents.iter().map(|(n, _, _)| n).any(changed)
        {
            return Err(ApiError::bad_request(format!(
                "column `{name}` is changed twice (set, incremented or edited as a JSON document)"
            ))
            .at(at));
        }
        if operators && column.native_type.eq_ignore_ascii_case("jsonb") {
            json.push((name, edit));
        } else {
            documents.push((name, edit, at));
        }
    }
    if set.is_empty() && increment.is_empty() && json.is_empty() && documents.is_empty() {
        return Err(ApiError::bad_request("nothing to update: no column is set"));
    }
    let (chosen, found) = row_keys(state, &caller, target, rows, rule.as_ref(), earlier).await?;
    let ops = by_keys(key_columns, &chosen.keys, |filter| {
        WriteOp::Update(Update {
            target: write_target(target),
            set: set.clone(),
            increment: increment.clone(),
            json: json.clone(),
            filter,
            returning: all_columns(target),
        })
    });
    let recheck = recheck(target, key_columns, rows, rule.as_ref(), &chosen, found);
    Ok(Planned::rechecked(Action::Update, rule, ops, recheck, found).editing(documents))
}

/// A delete of `rows` (no statement when none matches); `earlier` as for
/// [`plan_update`].
pub(crate) async fn plan_delete(
    state: &AppState,
    principal: &Principal,
    target: &Target,
    rows: &Rows,
    earlier: &[Vec<Value>],
) -> Result<Planned, ApiError> {
    let caller = principal.caller();
    let rule = write_rule(state, principal, target, Action::Delete)?;
    writable(target)?;
    let key_columns = target.primary_key()?;
    let (chosen, found) = row_keys(state, &caller, target, rows, rule.as_ref(), earlier).await?;
    let ops = by_keys(key_columns, &chosen.keys, |filter| {
        WriteOp::Delete(Delete {
            target: write_target(target),
            filter,
            returning: all_columns(target),
        })
    });
    let recheck = recheck(target, key_columns, rows, rule.as_ref(), &chosen, found);
    Ok(Planned::rechecked(
        Action::Delete,
        rule,
        ops,
        recheck,
        found,
    ))
}

/// The second look an update or delete of `rows` takes inside its
/// transaction: when a filter chose them (the request's, or the rule's),
/// or when the engine chose them while the transaction had written the
/// table ([`Found::ReadStale`]). A row named by its key alone is written
/// by that key, nothing to check.
fn recheck(
    target: &Target,
    key_columns: &[String],
    rows: &Rows,
    rule: Option<&Rule>,
    chosen: &Chosen,
    found: Found,
) -> Option<Recheck> {
    let filtered = found == Found::ReadStale
        || matches!(rows, Rows::Filter(_))
        || rule.is_some_and(|r| r.filter.is_some());
    (filtered && !chosen.keys.is_empty()).then(|| Recheck {
        requested: rows.filter(),
        key_columns: key_columns.to_vec(),
        columns: locked_columns(target, key_columns, &chosen.reads),
        keys: key_chunks(&chosen.keys).map(<[_]>::to_vec).collect(),
    })
}

/// The columns [`Recheck`] locks rows with: the key's and `reads`, in the
/// table's order.
fn locked_columns(target: &Target, key_columns: &[String], reads: &HashSet<String>) -> Vec<String> {
    target
        .def
        .columns
        .iter()
        .map(|c| &c.name)
        .filter(|name| key_columns.contains(name) || reads.contains(*name))
        .cloned()
        .collect()
}

/// The keys of the rows an update or delete touches, and how they were
/// found: by key, or read through the engine (while the transaction had
/// written the table or not; `earlier`: the keys of the rows it inserted
/// or updated there).
/// A row named by its key needs no read when the rule has no filter and
/// every key column compares the same on the source as in PostgreSQL
/// ([`exact_key`]); the statement then matches the key itself. Otherwise
/// the keys are read through the engine, which sees what was committed
/// before the transaction: the rows the transaction wrote are candidates
/// too, and all are checked again inside it ([`Recheck`]).
async fn row_keys(
    state: &AppState,
    caller: &Caller,
    target: &Target,
    rows: &Rows,
    rule: Option<&Rule>,
    earlier: &[Vec<Value>],
) -> Result<(Chosen, Found), ApiError> {
    let key_columns = target.primary_key()?;
    if let Rows::Key(values) = rows
        && rule.is_none_or(|r| r.filter.is_none())
        && let Some(key) = exact_key(target, key_columns, values)?
    {
        let chosen = Chosen {
            keys: vec![key],
            reads: HashSet::new(),
        };
        return Ok((chosen, Found::Key));
    }
    let filter = rows.filter();
    let mut chosen = select_keys(state, caller, target, key_columns, &filter, rule, None).await?;
    if earlier.is_empty() {
        return Ok((chosen, Found::Read));
    }
    let mut seen: HashSet<String> = chosen.keys.iter().map(|key| format!("{key:?}")).collect();
    for key in earlier {
        if seen.insert(format!("{key:?}")) {
            chosen.keys.push(key.clone());
        }
    }
    Ok((chosen, Found::ReadStale))
}

/// The key `values` name, as the statements bind it — `None` when a key
/// column may compare otherwise on the source than in PostgreSQL (text:
/// MySQL's collations would match `'A'` for `'a'`).
fn exact_key(
    target: &Target,
    key_columns: &[String],
    values: &[(String, Json)],
) -> Result<Option<Vec<Value>>, ApiError> {
    let mut key = Vec::with_capacity(key_columns.len());
    for name in key_columns {
        let column = target.def.column(name).ok_or_else(|| {
            ApiError::internal(format!("key column `{name}` is not in the catalog"))
        })?;
        let Some((_, json)) = values.iter().find(|(n, _)| n == name) else {
            return Err(ApiError::bad_request(format!(
                "the key misses column `{name}`"
            )));
        };
        if !exact_key_type(&column.data_type) {
            return Ok(None);
        }
        key.push(to_value(json, column, name)?);
    }
    Ok(Some(key))
}

/// Key types every source compares as PostgreSQL does.
fn exact_key_type(data_type: &DataType) -> bool {
    data_type.is_integer() || matches!(data_type, DataType::Date32 | DataType::Date64)
}

/// The writes of one request: one transaction on one source. Dropping it
/// without [`Transaction::commit`] rolls back.
pub(crate) struct Transaction {
    source: String,
    connector: Arc<dyn Connector>,
    tx: Box<dyn WriteTx>,
    /// The keys of the rows the transaction's inserts and updates wrote,
    /// by collection: a later update or delete of the same request takes
    /// them as candidates ([`plan_update`]'s `earlier`), since the engine
    /// reads outside the transaction and does not see them.
    written: HashMap<String, Vec<Vec<Value>>>,
}

impl Transaction {
    pub async fn begin(state: &AppState, target: &Target) -> Result<Self, ApiError> {
        let source = target.collection.table.source.clone();
        let connector = state.sources.connector(&source)?;
        let tx = connector.begin().await?;
        Ok(Self {
            source,
            connector,
            tx,
            written: HashMap::new(),
        })
    }

    /// The keys of the rows of `target` the transaction inserted or updated
    /// so far.
    pub fn written(&self, target: &Target) -> &[Vec<Value>] {
        self.written.get(target.name()).map_or(&[], Vec::as_slice)
    }

    /// The source the transaction writes to.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The rows of `target` with `keys` as the transaction sees them now,
    /// locked until it ends ([`read_locked`]).
    async fn locked(
        &mut self,
        target: &Target,
        key_columns: &[String],
        keys: &[Vec<Value>],
        columns: &[String],
    ) -> Result<Option<RecordBatch>, ApiError> {
        let mut writer = Writer::Tx {
            tx: &mut self.tx,
            connector: self.connector.as_ref(),
        };
        read_locked(&mut writer, target, key_columns, keys, columns).await
    }

    /// Runs a planned write; the rows it leaves behind must pass the rule's
    /// check. Answers the rows affected and the written rows as the caller
    /// may read them. After an error the transaction must be rolled back.
    pub async fn apply(
        &mut self,
        state: &AppState,
        caller: &Caller,
        target: &Target,
        planned: &Planned,
        audit: &mut Audit,
    ) -> Result<(u64, Vec<Record>), ApiError> {
        let mut writer = Writer::Tx {
            tx: &mut self.tx,
            connector: self.connector.as_ref(),
        };
        let written = self.written.entry(target.name().to_string()).or_default();
        apply_parts(
            &mut writer,
            state,
            caller,
            target,
            planned,
            audit,
            Some(written),
        )
        .await
    }

    /// Runs a lone statement whose rows no rule checks
    /// ([`Planned::is_lone_unchecked`]) as the transaction's last and
    /// commits with it; after an error nothing of the transaction is left.
    pub async fn apply_last(
        self,
        state: &AppState,
        caller: &Caller,
        target: &Target,
        planned: &Planned,
        audit: &mut Audit,
    ) -> Result<(u64, Vec<Record>), ApiError> {
        let mut writer = Writer::Last {
            tx: Some(self.tx),
            connector: self.connector.as_ref(),
        };
        apply_parts(&mut writer, state, caller, target, planned, audit, None).await
    }

    pub async fn commit(self) -> Result<(), ApiError> {
        Ok(self.tx.commit().await?)
    }

    /// Undoes the writes. A rollback that fails means the connection is
    /// gone, which rolls back too: logged, not answered (the error that
    /// led here is the one to answer).
    pub async fn rollback(self) {
        if let Err(error) = self.tx.rollback().await {
            tracing::warn!(%error, source = %self.source, "rollback after a failed write");
        }
    }
}

/// Runs one planned write in its own transaction (a REST request). A lone
/// statement whose rows no rule checks is all or nothing by itself: it goes
/// to the source as such ([`Connector::write_one`]).
pub(crate) async fn apply_alone(
    state: &AppState,
    caller: &Caller,
    target: &Target,
    planned: &Planned,
    audit: &mut Audit,
) -> Result<(u64, Vec<Record>), ApiError> {
    if planned.is_empty() {
        return Ok((0, Vec::new()));
    }
    if planned.is_lone_unchecked() {
        let connector = state.sources.connector(&target.collection.table.source)?;
        let mut writer = Writer::Alone(connector.as_ref());
        return apply_parts(&mut writer, state, caller, target, planned, audit, None).await;
    }
    let mut tx = Transaction::begin(state, target).await?;
    match tx.apply(state, caller, target, planned, audit).await {
        Ok(done) => {
            tx.commit().await?;
            Ok(done)
        }
        Err(error) => {
            tx.rollback().await;
            Err(error)
        }
    }
}

/// A lone write whose rows no rule checks ([`Planned::is_lone_unchecked`]),
/// held back to go out with the request's other last writes; its audit row
/// holds its statement's fingerprint already ([`Audit::planned`]).
pub(crate) struct LastWrite<'a> {
    pub target: &'a Target,
    pub planned: &'a Planned,
    pub audit: &'a mut Audit,
}

/// Why [`apply_all_last`] wrote nothing: the index of the write that
/// failed (`None`: the commit), and the error.
pub(crate) type LastWritesFailed = (Option<usize>, ApiError);

/// Runs `writes` (each a [`LastWrite`], all on `tx`'s source) as the last
/// of `tx` — begun here when `None` — in order, and commits with them: a
/// source may send all at once with its `COMMIT` (one round trip). Answers
/// each one's rows affected and written rows as the caller may read them.
/// After an error nothing of the transaction is left.
pub(crate) async fn apply_all_last(
    state: &AppState,
    caller: &Caller,
    tx: Option<Transaction>,
    writes: &mut [LastWrite<'_>],
) -> Result<Vec<(u64, Vec<Record>)>, LastWritesFailed> {
    let tx = match (tx, writes.first()) {
        (Some(tx), _) => tx,
        // A source that cannot begin fails the first write.
        (None, Some(first)) => Transaction::begin(state, first.target)
            .await
            .map_err(|e| (Some(0), e))?,
        (None, None) => return Ok(Vec::new()),
    };
    let mut ops = Vec::with_capacity(writes.len());
    let mut readables = Vec::with_capacity(writes.len());
    for (at, write) in writes.iter().enumerate() {
        readables.push(readable(state, caller, write.target).map_err(|e| (Some(at), e))?);
        let mut all = write.planned.parts.iter().flat_map(|p| &p.ops);
        match (all.next(), all.next()) {
            (Some(op), None) if write.planned.is_lone_unchecked() => ops.push(op),
            _ => {
                let error = ApiError::internal("a held-back write is not one unchecked statement");
                return Err((Some(at), error));
            }
        }
    }
    let outcomes = tx
        .tx
        .execute_all_and_commit(&ops)
        .await
        .map_err(|failed| (failed.statement, failed.error.into()))?;
    let mut done = Vec::with_capacity(writes.len());
    for ((write, outcome), readable) in writes.iter_mut().zip(outcomes).zip(&readables) {
        let records = answer(readable, &outcome.returning);
        write.audit.note("affected", json!(outcome.affected_rows));
        write.audit.note("keys", keys_of(write.target, &records));
        done.push((outcome.affected_rows, records));
    }
    Ok(done)
}

/// Where a planned write's statements run.
enum Writer<'a> {
    /// In an open transaction.
    Tx {
        tx: &'a mut Box<dyn WriteTx>,
        connector: &'a dyn Connector,
    },
    /// Each on its own (only for a lone statement, see
    /// [`Planned::is_lone_unchecked`]).
    Alone(&'a dyn Connector),
    /// As the last of an open transaction, committed with it (only for a
    /// lone statement); `None` once run.
    Last {
        tx: Option<Box<dyn WriteTx>>,
        connector: &'a dyn Connector,
    },
}

/// [`Transaction::apply`] on `writer`; with `written`, the keys of the
/// rows inserted or updated are added to it.
async fn apply_parts(
    writer: &mut Writer<'_>,
    state: &AppState,
    caller: &Caller,
    target: &Target,
    planned: &Planned,
    audit: &mut Audit,
    mut written_keys: Option<&mut Vec<Vec<Value>>>,
) -> Result<(u64, Vec<Record>), ApiError> {
    let connector = match writer {
        Writer::Tx { connector, .. }
        | Writer::Last { connector, .. }
        | Writer::Alone(connector) => *connector,
    };
    audit.planned(connector, planned);
    let readable = readable(state, caller, target)?;
    let (mut affected, mut records) = (0, Vec::new());
    for part in &planned.parts {
        if part.ops.is_empty() {
            continue;
        }
        let ops = match &part.recheck {
            Some(recheck) => {
                let rule = part.rule.as_ref();
                recheck
                    .narrow(writer, state, caller, target, rule, &part.ops)
                    .await?
            }
            None => Cow::Borrowed(part.ops.as_slice()),
        };
        let (count, written) = if part.documents.is_empty() {
            run(writer, &ops).await?
        } else {
            let returns = connector.dialect().returning().update;
            edit_documents(writer, target, &part.documents, &ops, returns).await?
        };
        check(
            state,
            target,
            caller,
            part.rule.as_ref(),
            part.action.as_str(),
            &written,
        )
        .await?;
        affected += count;
        if let (Some(keys), Some(batch)) = (written_keys.as_deref_mut(), &written)
            && part.action != Action::Delete
        {
            keys.extend(keys_in(target, target.primary_key()?, batch)?);
        }
        records.extend(answer(&readable, &written));
    }
    audit.note("affected", json!(affected));
    audit.note("keys", keys_of(target, &records));
    Ok((affected, records))
}

/// What the audit row of one write says.
pub(crate) struct Audit {
    entry: AuditEntry,
    detail: serde_json::Map<String, Json>,
}

impl Audit {
    pub fn new(principal: &Principal, target: &Target, operation: &str) -> Self {
        Self::of(principal, Some(target.name()), operation)
    }

    /// The audit row of `write.<operation>` on `collection`, if one.
    pub fn of(principal: &Principal, collection: Option<&str>, operation: &str) -> Self {
        Self {
            entry: AuditEntry {
                id: 0,
                at: Utc::now(),
                role: principal.role.clone(),
                key_id: principal.key_id.clone(),
                user_id: principal.user_id.clone(),
                action: format!("write.{operation}"),
                collection: collection.map(str::to_string),
                target: None,
                detail: Json::Null,
                status: 0,
                outcome: Outcome::Ok,
            },
            detail: serde_json::Map::new(),
        }
    }

    pub fn note(&mut self, key: &str, value: Json) {
        self.detail.insert(key.to_string(), value);
    }

    /// Notes the fingerprint of `planned`'s statements on `connector`: a
    /// hash of their SQL text (values are bound parameters, so one shape of
    /// write has one fingerprint).
    pub fn planned(&mut self, connector: &dyn Connector, planned: &Planned) {
        let mut hasher = Sha256::new();
        for op in planned.parts.iter().flat_map(|p| &p.ops) {
            if let Ok(statement) = render::render_write(connector.dialect(), op) {
                hasher.update(statement.sql.as_bytes());
            }
        }
        // The first 8 bytes: 16 hex digits.
        let digest = hasher.finalize();
        let fingerprint = hex::encode(digest.get(..8).unwrap_or_default());
        self.note("sql_fingerprint", Json::String(fingerprint));
    }

    /// Writes the audit row: the answer's HTTP status, and the error when
    /// the write failed or was rolled back.
    pub async fn finish(self, state: &AppState, status: u16, error: Option<&str>) {
        audit::record(state, self.into_entry(status, error)).await;
    }

    /// The audit row with the answer's HTTP status and the error, if any.
    pub fn into_entry(mut self, status: u16, error: Option<&str>) -> AuditEntry {
        if let Some(error) = error {
            self.note("error", Json::String(error.to_string()));
        }
        self.entry.status = status;
        self.entry.outcome = Outcome::from_status(status);
        self.entry.detail = Json::Object(self.detail);
        self.entry
    }
}

/// The caller's rule for a write (`None` for the admin: no limits), or a 403.
fn write_rule(
    state: &AppState,
    principal: &Principal,
    target: &Target,
    action: Action,
) -> Result<Option<Rule>, ApiError> {
    if principal.is_admin() {
        return Ok(None);
    }
    state
        .permissions
        .all()
        .iter()
        .find(|p| p.role == principal.role && p.collection == target.name() && p.action == action)
        .map(|p| Some(p.rule.clone()))
        .ok_or_else(|| {
            ApiError::forbidden(format!(
                "role `{}` may not {} `{}`",
                principal.role,
                action.as_str(),
                target.name()
            ))
        })
}

fn variables(caller: &Caller) -> Option<&Variables> {
    match caller {
        Caller::Role { variables, .. } => Some(variables),
        Caller::Admin => None,
    }
}

/// A body's object as column values: unknown and generated columns are a
/// 400, columns the rule does not let the role write a 403; the rule's
/// presets then overwrite.
fn row_values(
    target: &Target,
    object: &Json,
    rule: Option<&Rule>,
    caller: &Caller,
    path: &str,
) -> Result<Vec<(String, Value)>, ApiError> {
    let mut values = column_values(target, object, rule, path)?;
    for (name, preset) in rule.map(|r| &r.presets).into_iter().flatten() {
        let Some(column) = target.def.column(name) else {
            continue;
        };
        let bound = filter::substitute(preset, variables(caller));
        // A preset from a variable the request lacks (no user id) must not
        // write NULL in its place: an owner column would be left empty.
        if bound.is_null() && !preset.is_null() {
            return Err(ApiError::forbidden(format!(
                "the preset of `{name}` ({preset}) has no value for this request"
            )));
        }
        let value = to_value(&bound, column, &format!("preset {name}"))?;
        values.retain(|(n, _)| n != name);
        values.push((name.clone(), value));
    }
    // Columns in the table's order: rows with the same columns share a statement.
    values.sort_by_key(|(name, _)| target.def.column(name).map_or(u32::MAX, |c| c.ordinal));
    Ok(values)
}

/// An object's entries as values of the target's columns, each writable
/// by the rule.
fn column_values(
    target: &Target,
    object: &Json,
    rule: Option<&Rule>,
    path: &str,
) -> Result<Vec<(String, Value)>, ApiError> {
    let Json::Object(entries) = object else {
        return Err(ApiError::bad_request("expected an object of column values").at(path));
    };
    let at = |name: &str| {
        if path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        }
    };
    let mut values = Vec::new();
    for (name, json) in entries {
        let column = writable_column(target, name, rule, || at(name))?;
        // The path is made only for an error: building it for every
        // value was a visible part of a write's cost.
        let value = to_value(json, column, name).map_err(|e| e.placed_in(path))?;
        values.push((name.clone(), value));
    }
    Ok(values)
}

/// `name`'s column, if the caller may write it (`at`: its place in the
/// request, made only for an error).
fn writable_column<'t>(
    target: &'t Target,
    name: &str,
    rule: Option<&Rule>,
    at: impl Fn() -> String,
) -> Result<&'t ColumnDef, ApiError> {
    let column = target.def.column(name).ok_or_else(|| {
        ApiError::bad_request(format!("`{}` has no column `{name}`", target.name())).at(at())
    })?;
    if column.generated.is_some() {
        return Err(ApiError::bad_request(format!(
            "column `{name}` is generated by the database and cannot be written"
        ))
        .at(at()));
    }
    if let Some(rule) = rule
        && !rule.columns.allows(name)
    {
        return Err(ApiError::forbidden(format!(
            "column `{name}` of `{}` is not writable by this role",
            target.name()
        ))
        .at(at()));
    }
    Ok(column)
}

fn write_target(target: &Target) -> WriteTarget {
    WriteTarget {
        schema: target.collection.table.schema.clone(),
        table: target.def.clone(),
    }
}

fn all_columns(target: &Target) -> Vec<String> {
    target.def.columns.iter().map(|c| c.name.clone()).collect()
}

/// One statement per chunk of keys (each matching exactly its keys).
fn by_keys(
    key_columns: &[String],
    keys: &[Vec<Value>],
    op: impl Fn(Predicate) -> WriteOp,
) -> Vec<WriteOp> {
    key_chunks(keys)
        .map(|chunk| op(keys_predicate(key_columns, chunk)))
        .collect()
}

/// The keys of each statement [`by_keys`] makes.
fn key_chunks(keys: &[Vec<Value>]) -> std::slice::Chunks<'_, Vec<Value>> {
    keys.chunks(KEYS_PER_STATEMENT)
}

/// Runs every statement in the transaction: rows affected and rows written.
async fn run(
    writer: &mut Writer<'_>,
    ops: &[WriteOp],
) -> Result<(u64, Option<RecordBatch>), ApiError> {
    let mut affected = 0;
    let mut batches = Vec::new();
    for op in ops {
        let outcome = match writer {
            Writer::Tx { tx, .. } => tx.execute(op).await?,
            Writer::Alone(connector) => connector.write_one(op).await?,
            Writer::Last { tx, .. } => {
                let tx = tx.take().ok_or_else(|| {
                    ApiError::internal("a second statement after the transaction's last")
                })?;
                tx.execute_and_commit(op).await?
            }
        };
        affected += outcome.affected_rows;
        batches.extend(outcome.returning);
    }
    let Some(first) = batches.first() else {
        return Ok((affected, None));
    };
    let schema = first.schema();
    let all = concat_batches(&schema, &batches)
        .map_err(|e| ApiError::internal(format!("returned rows: {e}")))?;
    Ok((affected, Some(all)))
}

/// Fails when a written row does not pass the rule's check.
async fn check(
    state: &AppState,
    target: &Target,
    caller: &Caller,
    rule: Option<&Rule>,
    action: &str,
    written: &Option<RecordBatch>,
) -> Result<(), ApiError> {
    let (Some(rule), Some(rows)) = (rule, written) else {
        return Ok(());
    };
    let Some(check) = &rule.check else {
        return Ok(());
    };
    let failing = state
        .engine
        .failing_rows(
            &target.collection.table,
            rows.clone(),
            check,
            variables(caller),
        )
        .await?;
    if failing > 0 {
        let role = match caller {
            Caller::Role { role, .. } => role.as_str(),
            Caller::Admin => "admin",
        };
        return Err(ApiError::forbidden(format!(
            "{failing} row(s) would fail the check of role `{role}`'s {action} rule on `{}` \
             ({check}); nothing was written",
            target.name()
        )));
    }
    Ok(())
}

/// The columns of written rows the caller reads back: those it may
/// select, else the key. Known before a write is sent, so that nothing can
/// fail between a commit and its answer.
pub(super) fn readable(
    state: &AppState,
    caller: &Caller,
    target: &Target,
) -> Result<Vec<String>, ApiError> {
    match selectable_columns(state, caller, target)? {
        Some(columns) => Ok(columns),
        None => Ok(target.primary_key()?.to_vec()),
    }
}

/// The `readable` columns of the written rows.
fn answer(readable: &[String], written: &Option<RecordBatch>) -> Vec<Record> {
    let Some(batch) = written else {
        return Vec::new();
    };
    let schema = batch.schema();
    let columns = readable
        .iter()
        .filter_map(|name| {
            // Not `index_of`: its error, built for each column the rows
            // do not hold, formats every field's name.
            let (index, _) = schema.column_with_name(name)?;
            Some((
                Arc::from(name.as_str()),
                results::column_values(batch.column(index)),
            ))
        })
        .collect();
    read::records_of(columns, batch.num_rows()).collect()
}

fn keys_of(target: &Target, records: &[Record]) -> Json {
    let Some(key) = &target.def.primary_key else {
        return Json::Null;
    };
    Json::Array(
        records
            .iter()
            .take(100)
            .map(|r| {
                let parts: Vec<Json> = key
                    .columns
                    .iter()
                    .map(|c| r.get(c).cloned().unwrap_or(Json::Null))
                    .collect();
                if parts.len() == 1 {
                    parts[0].clone()
                } else {
                    Json::Array(parts)
                }
            })
            .collect(),
    )
}

/// The keys (`key_columns`: the primary key's, or a unique constraint's)
/// of the rows a write will touch: those the request names (key or
/// filter) that the rule's filter admits, read through the engine — from
/// the table, or from `rows` (the rows as locked in the transaction, see
/// [`Recheck`]). The filter may read only columns the caller may read (and
/// the key); related collections in it are read as the caller sees them.
async fn select_keys(
    state: &AppState,
    caller: &Caller,
    target: &Target,
    key_columns: &[String],
    requested: &Json,
    rule: Option<&Rule>,
    rows: Option<RecordBatch>,
) -> Result<Chosen, ApiError> {
    let max_rows = state.config.max_rows;
    let work = async {
        let mut reads = HashSet::new();
        let mut output = state
            .engine
            .query_plan(caller, ReadShape::Rows, |scope| -> Result<_, ApiError> {
                let table = &target.collection.table;
                let name = full_name(table);
                let provider = match &rows {
                    Some(rows) => Arc::new(
                        MemTable::try_new(rows.schema(), vec![vec![rows.clone()]])
                            .map_err(internal)?,
                    ),
                    None => (scope.raw_tables)(table)
                        .ok_or_else(|| ApiError::not_found("collection", target.name()))?,
                };
                let readable: Option<Vec<String>> = match caller {
                    Caller::Admin => None,
                    Caller::Role { .. } => Some(
                        (scope.tables)(table)
                            .map(|t| {
                                t.schema()
                                    .fields()
                                    .iter()
                                    .map(|f| f.name().clone())
                                    .collect()
                            })
                            .unwrap_or_default(),
                    ),
                };
                let cx = filter::Context {
                    snapshot: scope.snapshot,
                    providers: scope.tables,
                    variables: scope.variables,
                    time_zone: scope.time_zone,
                };
                let mut predicate =
                    filter::compile(requested, table, &name, &cx).map_err(filter_error)?;
                if let Some(readable) = &readable {
                    for column in predicate.column_refs() {
                        if column.relation.as_ref() == Some(&name)
                            && !readable.contains(&column.name)
                            && !key_columns.contains(&column.name)
                        {
                            return Err(ApiError::forbidden(format!(
                                "column `{}` of `{}` is not readable here",
                                column.name,
                                target.name()
                            ))
                            .at("filter"));
                        }
                    }
                }
                if let Some(own) = rule.and_then(|r| r.filter.as_ref()) {
                    let raw = filter::Context {
                        snapshot: scope.snapshot,
                        providers: scope.raw_tables,
                        variables: scope.variables,
                        time_zone: scope.time_zone,
                    };
                    let admitted = filter::compile(own, table, &name, &raw).map_err(|e| {
                        ApiError::forbidden(format!("the rule's filter cannot be applied: {e}"))
                    })?;
                    predicate = predicate.and(admitted);
                }
                reads = filter::columns_read(&predicate);
                LogicalPlanBuilder::scan(name.clone(), provider_as_source(provider), None)
                    .and_then(|b| b.filter(predicate))
                    .and_then(|b| {
                        b.project(
                            key_columns
                                .iter()
                                .map(|c| Expr::Column(Column::new(Some(name.clone()), c))),
                        )
                    })
                    .and_then(|b| b.limit(0, Some(max_rows + 1)))
                    .and_then(LogicalPlanBuilder::build)
                    .map_err(internal)
            })
            .await?;
        let mut keys = Vec::new();
        while let Some(batch) = output.stream.next().await {
            keys.extend(keys_in(target, key_columns, &batch.map_err(internal)?)?);
        }
        Ok::<_, ApiError>(Chosen { keys, reads })
    };
    let chosen = within(state, work).await?;
    if chosen.keys.len() > max_rows {
        return Err(ApiError::bad_request(format!(
            "the filter matches more than {max_rows} rows of `{}`: narrow it (one request writes \
             at most max_rows rows)",
            target.name()
        ))
        .at("filter"));
    }
    Ok(chosen)
}

/// The rows [`select_keys`] chose.
struct Chosen {
    keys: Vec<Vec<Value>>,
    /// The columns of the table the filters that chose them read
    /// ([`filter::columns_read`]): with the key's, what checking the rows
    /// again needs ([`Recheck`]).
    reads: HashSet<String>,
}

/// The values of `key_columns` in each row of `batch`, as the statements
/// bind them (the same decoding for keys read by the engine, locked and
/// written, so they compare equal).
fn keys_in(
    target: &Target,
    key_columns: &[String],
    batch: &RecordBatch,
) -> Result<Vec<Vec<Value>>, ApiError> {
    let schema = batch.schema();
    let columns = key_columns
        .iter()
        .map(|name| {
            let column = target.def.column(name).ok_or_else(|| {
                ApiError::internal(format!("key column `{name}` is not in the catalog"))
            })?;
            let index = schema.index_of(name).map_err(|_| {
                ApiError::internal(format!("key column `{name}` is not among the rows read"))
            })?;
            Ok((name, column, results::column_values(batch.column(index))))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    (0..batch.num_rows())
        .map(|row| {
            columns
                .iter()
                .map(|(name, column, values)| to_value(&values[row], column, name))
                .collect()
        })
        .collect()
}
