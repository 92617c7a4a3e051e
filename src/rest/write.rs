//! Writes: create, update and destroy, each request one transaction on the
//! collection's source. For a role, its insert / update / delete rule
//! decides: columns outside its writable list are a 403, presets overwrite
//! the body, update and delete touch only rows its rule's filter admits
//! (and, by key or filter, rows the request names), and rows an insert or
//! update leaves behind must pass its `check` filter — else the
//! transaction rolls back and the answer is a 403 naming the rule. Every
//! write, refused or not, is in the audit log.
//!
//! Update and delete first read the keys of the rows they will touch
//! through the engine (so filters mean what they mean on reads, on every
//! source, relations included), then write by those keys.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;
use datafusion::common::Column;
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder};
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use tributary_connector::render::{self, keys_predicate};
use tributary_connector::{
    Connector, Delete, Insert, Predicate, Update, Value, WriteOp, WriteTarget, WriteTx,
};

use super::params::Selection;
use super::read::{Cell, Record, filter_error, full_name, internal, selectable_columns, within};
use super::values::to_value;
use super::{Target, json_response};
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

/// `POST /api/{c}` and `POST /api/{c}:create`: one object or an array.
pub async fn create(
    state: &AppState,
    principal: &Principal,
    target: &Target,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let mut audit = Audit::new(principal, target, "insert");
    let result = insert(state, principal, target, body, &mut audit).await;
    audit.finish(state, result).await
}

/// `PATCH /api/{c}/{key}`, `PATCH /api/{c}?filter=` and `:update`.
pub async fn update(
    state: &AppState,
    principal: &Principal,
    target: &Target,
    selection: Selection,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let mut audit = Audit::new(principal, target, "update");
    let result = change(state, principal, target, selection, body, &mut audit).await;
    audit.finish(state, result).await
}

/// `DELETE /api/{c}/{key}`, `DELETE /api/{c}?filter=` and `:destroy`.
pub async fn destroy(
    state: &AppState,
    principal: &Principal,
    target: &Target,
    selection: Selection,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let mut audit = Audit::new(principal, target, "delete");
    let result = remove(state, principal, target, selection, body, &mut audit).await;
    audit.finish(state, result).await
}

/// What the audit row of one write says.
struct Audit {
    entry: AuditEntry,
    detail: serde_json::Map<String, Json>,
}

impl Audit {
    fn new(principal: &Principal, target: &Target, operation: &str) -> Self {
        Self {
            entry: AuditEntry {
                id: 0,
                at: Utc::now(),
                role: principal.role.clone(),
                key_id: principal.key_id.clone(),
                user_id: principal.user_id.clone(),
                action: format!("write.{operation}"),
                collection: Some(target.name().to_string()),
                target: None,
                detail: Json::Null,
                status: 0,
                outcome: Outcome::Ok,
            },
            detail: serde_json::Map::new(),
        }
    }

    fn note(&mut self, key: &str, value: Json) {
        self.detail.insert(key.to_string(), value);
    }

    /// The statements' fingerprint: a hash of their SQL text (values are
    /// bound parameters, so one shape of write has one fingerprint).
    fn statements(&mut self, connector: &dyn Connector, ops: &[WriteOp]) {
        let mut hasher = Sha256::new();
        for op in ops {
            let statement = match op {
                WriteOp::Insert(op) => render::render_insert(connector.dialect(), op),
                WriteOp::Update(op) => render::render_update(connector.dialect(), op),
                WriteOp::Delete(op) => render::render_delete(connector.dialect(), op),
            };
            if let Ok(statement) = statement {
                hasher.update(statement.sql.as_bytes());
            }
        }
        let digest = hex::encode(hasher.finalize());
        self.note("sql_fingerprint", Json::String(digest[..16].to_string()));
    }

    /// Writes the audit row for the request's outcome and passes it on.
    async fn finish(
        mut self,
        state: &AppState,
        result: Result<Response, ApiError>,
    ) -> Result<Response, ApiError> {
        let status = match &result {
            Ok(response) => response.status().as_u16(),
            Err(error) => {
                self.note("error", Json::String(error.message.clone()));
                error.status.as_u16()
            }
        };
        self.entry.status = status;
        self.entry.outcome = Outcome::from_status(status);
        self.entry.detail = Json::Object(self.detail);
        audit::record(state, self.entry).await;
        result
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
        let column = target.def.column(name).ok_or_else(|| {
            ApiError::bad_request(format!("`{}` has no column `{name}`", target.name()))
                .at(at(name))
        })?;
        if column.generated.is_some() {
            return Err(ApiError::bad_request(format!(
                "column `{name}` is generated by the database and cannot be written"
            ))
            .at(at(name)));
        }
        if let Some(rule) = rule
            && !rule.columns.allows(name)
        {
            return Err(ApiError::forbidden(format!(
                "column `{name}` of `{}` is not writable by this role",
                target.name()
            ))
            .at(at(name)));
        }
        values.push((name.clone(), to_value(json, column, &at(name))?));
    }
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

fn write_target(target: &Target) -> WriteTarget {
    WriteTarget {
        schema: target.collection.table.schema.clone(),
        table: target.def.clone(),
    }
}

fn all_columns(target: &Target) -> Vec<String> {
    target.def.columns.iter().map(|c| c.name.clone()).collect()
}

async fn open(
    state: &AppState,
    target: &Target,
) -> Result<(std::sync::Arc<dyn Connector>, Box<dyn WriteTx>), ApiError> {
    if !target.def.kind.is_writable() {
        return Err(ApiError::bad_request(format!(
            "`{}` is a {:?} and cannot be written",
            target.name(),
            target.def.kind
        )));
    }
    let connector = state.sources.connector(&target.collection.table.source)?;
    let tx = connector.begin().await?;
    Ok((connector, tx))
}

async fn insert(
    state: &AppState,
    principal: &Principal,
    target: &Target,
    body: &Bytes,
    audit: &mut Audit,
) -> Result<Response, ApiError> {
    let caller = principal.caller();
    let rule = write_rule(state, principal, target, Action::Insert)?;
    target.primary_key()?;
    let body: Json = parse_body(body)?;
    let (objects, many) = match &body {
        Json::Array(items) if !items.is_empty() => (items.iter().collect::<Vec<_>>(), true),
        Json::Array(_) => {
            return Err(ApiError::bad_request(
                "nothing to create: the array is empty",
            ));
        }
        object => (vec![object], false),
    };
    let mut ops: Vec<WriteOp> = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        let path = if many {
            format!("[{i}]")
        } else {
            String::new()
        };
        let values = row_values(target, object, rule.as_ref(), &caller, &path)?;
        let columns: Vec<String> = values.iter().map(|(n, _)| n.clone()).collect();
        let row: Vec<Value> = values.into_iter().map(|(_, v)| v).collect();
        // Consecutive rows with the same columns go in one statement.
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
    let (_, records) = commit(state, &caller, target, rule.as_ref(), "insert", &ops, audit).await?;
    if many {
        Ok(json_response(
            StatusCode::CREATED,
            &Many {
                data: records,
                meta: None,
            },
        ))
    } else {
        Ok(json_response(
            StatusCode::CREATED,
            &One {
                data: records.into_iter().next(),
            },
        ))
    }
}

async fn change(
    state: &AppState,
    principal: &Principal,
    target: &Target,
    selection: Selection,
    body: &Bytes,
    audit: &mut Audit,
) -> Result<Response, ApiError> {
    let caller = principal.caller();
    let rule = write_rule(state, principal, target, Action::Update)?;
    let key_columns = target.primary_key()?;
    let body: Json = parse_body(body)?;
    let set = row_values(target, &body, rule.as_ref(), &caller, "")?;
    if set.is_empty() {
        return Err(ApiError::bad_request(
            "nothing to update: the body sets no column",
        ));
    }
    let keys = select_keys(state, &caller, target, &selection, rule.as_ref()).await?;
    audit.note("target", selection_text(&selection));
    if keys.is_empty() {
        return no_rows(target, &selection);
    }
    let ops = by_keys(key_columns, &keys, |filter| {
        WriteOp::Update(Update {
            target: write_target(target),
            set: set.clone(),
            filter,
            returning: all_columns(target),
        })
    });
    let (affected, records) =
        commit(state, &caller, target, rule.as_ref(), "update", &ops, audit).await?;
    respond(selection, records, affected)
}

async fn remove(
    state: &AppState,
    principal: &Principal,
    target: &Target,
    selection: Selection,
    body: &Bytes,
    audit: &mut Audit,
) -> Result<Response, ApiError> {
    let caller = principal.caller();
    let rule = write_rule(state, principal, target, Action::Delete)?;
    let key_columns = target.primary_key()?;
    // NocoBase's client may send `{}`.
    let empty = String::from_utf8_lossy(body);
    if !matches!(empty.trim(), "" | "{}") {
        return Err(ApiError::bad_request("a delete takes no body"));
    }
    let keys = select_keys(state, &caller, target, &selection, rule.as_ref()).await?;
    audit.note("target", selection_text(&selection));
    if keys.is_empty() {
        return no_rows(target, &selection);
    }
    let ops = by_keys(key_columns, &keys, |filter| {
        WriteOp::Delete(Delete {
            target: write_target(target),
            filter,
            returning: all_columns(target),
        })
    });
    let (affected, records) =
        commit(state, &caller, target, rule.as_ref(), "delete", &ops, audit).await?;
    respond(selection, records, affected)
}

/// One statement per chunk of keys (each matching exactly its keys).
fn by_keys(
    key_columns: &[String],
    keys: &[Vec<Value>],
    op: impl Fn(Predicate) -> WriteOp,
) -> Vec<WriteOp> {
    keys.chunks(KEYS_PER_STATEMENT)
        .map(|chunk| op(keys_predicate(key_columns, chunk)))
        .collect()
}

/// Runs `ops` in one transaction on the collection's source; rows they
/// leave behind must pass the rule's check, else all rolls back. Answers
/// the rows affected and the written rows as the caller may read them.
async fn commit(
    state: &AppState,
    caller: &Caller,
    target: &Target,
    rule: Option<&Rule>,
    action: &str,
    ops: &[WriteOp],
    audit: &mut Audit,
) -> Result<(u64, Vec<Record>), ApiError> {
    let (connector, mut tx) = open(state, target).await?;
    audit.statements(connector.as_ref(), ops);
    // A failed statement undoes the ones before it (rolled back here, not
    // left to the transaction's drop).
    let (affected, written) = match run(&mut tx, ops).await {
        Ok(done) => done,
        Err(failed) => {
            // The statement's error is the one to answer; a rollback that
            // fails too means the connection is gone, which rolls back.
            if let Err(error) = tx.rollback().await {
                tracing::warn!(%error, "rollback after a failed write");
            }
            return Err(failed);
        }
    };
    if let Err(refused) = check(state, target, caller, rule, action, &written).await {
        tx.rollback().await?;
        return Err(refused);
    }
    tx.commit().await?;
    audit.note("affected", json!(affected));
    let records = answer(state, caller, target, &written)?;
    audit.note("keys", keys_of(target, &records));
    Ok((affected, records))
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

fn respond(
    selection: Selection,
    records: Vec<Record>,
    affected: u64,
) -> Result<Response, ApiError> {
    Ok(match selection {
        Selection::Key(_) => json_response(
            StatusCode::OK,
            &One {
                data: records.into_iter().next(),
            },
        ),
        Selection::Filter(_) => json_response(
            StatusCode::OK,
            &Many {
                data: records,
                meta: Some(json!({ "affected": affected })),
            },
        ),
    })
}

fn no_rows(target: &Target, selection: &Selection) -> Result<Response, ApiError> {
    match selection {
        Selection::Key(key) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "no row of `{}` with the key `{}` can be written here",
                target.name(),
                key.text()
            ),
        )),
        Selection::Filter(_) => respond(selection.clone(), Vec::new(), 0),
    }
}

fn selection_text(selection: &Selection) -> Json {
    match selection {
        Selection::Key(key) => Json::String(key.text()),
        Selection::Filter(filter) => filter.clone(),
    }
}

fn parse_body(body: &Bytes) -> Result<Json, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))
}

/// Runs every statement in the transaction: rows affected and rows written.
async fn run(
    tx: &mut Box<dyn WriteTx>,
    ops: &[WriteOp],
) -> Result<(u64, Option<RecordBatch>), ApiError> {
    let mut affected = 0;
    let mut batches = Vec::new();
    for op in ops {
        let outcome = tx.execute(op).await?;
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

/// Written rows as the caller may read them: its select rule's columns, or
/// only the primary key without one.
fn answer(
    state: &AppState,
    caller: &Caller,
    target: &Target,
    written: &Option<RecordBatch>,
) -> Result<Vec<Record>, ApiError> {
    let Some(batch) = written else {
        return Ok(Vec::new());
    };
    let readable = match selectable_columns(state, caller, target)? {
        Some(columns) => columns,
        None => target.primary_key()?.to_vec(),
    };
    let schema = batch.schema();
    let columns: Vec<(String, Vec<Json>)> = readable
        .iter()
        .filter_map(|name| {
            let index = schema.index_of(name).ok()?;
            Some((name.clone(), results::column_values(batch.column(index))))
        })
        .collect();
    Ok((0..batch.num_rows())
        .map(|row| {
            Record(
                columns
                    .iter()
                    .map(|(name, values)| (name.clone(), Cell::Value(values[row].clone())))
                    .collect(),
            )
        })
        .collect())
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

/// The primary keys of the rows a write will touch: those the request
/// names (key or filter) that the rule's filter admits, read through the
/// engine. The filter may read only columns the caller may read (and the
/// key); related collections in it are read as the caller sees them.
async fn select_keys(
    state: &AppState,
    caller: &Caller,
    target: &Target,
    selection: &Selection,
    rule: Option<&Rule>,
) -> Result<Vec<Vec<Value>>, ApiError> {
    let key_columns = target.primary_key()?.to_vec();
    let requested = selection.filter();
    let max_rows = state.config.max_rows;
    let work = async {
        let mut output = state
            .engine
            .query_plan(caller, ReadShape::Rows, |scope| -> Result<_, ApiError> {
                let table = &target.collection.table;
                let name = full_name(table);
                let provider = (scope.raw_tables)(table)
                    .ok_or_else(|| ApiError::not_found("collection", target.name()))?;
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
                    filter::compile(&requested, table, &name, &cx).map_err(filter_error)?;
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
            let batch = batch.map_err(internal)?;
            let columns: Vec<Vec<Json>> =
                batch.columns().iter().map(results::column_values).collect();
            for row in 0..batch.num_rows() {
                let key = key_columns
                    .iter()
                    .zip(&columns)
                    .map(|(name, values)| {
                        let column = target.def.column(name).ok_or_else(|| {
                            ApiError::internal(format!("key column `{name}` is not in the catalog"))
                        })?;
                        to_value(&values[row], column, name)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                keys.push(key);
            }
        }
        Ok::<_, ApiError>(keys)
    };
    let keys = within(state, work).await?;
    if keys.len() > max_rows {
        return Err(ApiError::bad_request(format!(
            "the filter matches more than {max_rows} rows of `{}`: narrow it (one request writes \
             at most max_rows rows)",
            target.name()
        ))
        .at("filter"));
    }
    Ok(keys)
}
