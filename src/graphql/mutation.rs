//! Mutations, in Hasura's shape: `insert_x(objects, on_conflict)`,
//! `insert_x_one(object, on_conflict)` (an upsert on the primary key),
//! `update_x(where, _set, _inc)`, `update_x_by_pk(pk_columns, _set, _inc)`,
//! `update_x_many(updates: [{where, _set, _inc}])` (each in turn) — with
//! `_append _prepend _delete_key _delete_elem _delete_at_path` beside
//! `_set` where a collection has `jsonb` columns (edited in place by
//! PostgreSQL's operators, [`JSON_EDITS`]),
//! `delete_x(where)` and `delete_x_by_pk(<key columns>)`, answering
//! `{ affected_rows returning {…} }` or the row. Each lowers to the REST
//! API's write path (`rest::writer`: the role's rules, presets, checks, the
//! audit log). The root fields of one request run one after another in ONE
//! transaction ([`Session`]), committed only when every field succeeded:
//! a failing field rolls back what the fields before it wrote, and the
//! answer is the error with `data: null`. A request writes to one source.
//! A field whose write is one unchecked statement answering a row of
//! columns is held back ([`Held`]): the request's last such writes go out
//! together with its `COMMIT`, in one round trip. A request of such
//! fields only, sent again, is answered from its plan ([`answer_planned`],
//! see `compiled`), without async-graphql's executor.

use async_graphql::dynamic::{
    Enum, Field, FieldFuture, FieldValue, InputObject, InputValue, Object, ResolverContext, TypeRef,
};
use async_graphql::{Name, Pos, ServerError, Value as GqlValue};
use serde_json::Value as Json;
use std::sync::Arc;
use tokio::sync::Mutex;
use tributary_connector::{JsonEdit, Value};

use super::arguments::{self, Places};
use super::render::WrittenRow;
use super::resolve::{self, field_error};
use super::schema::ready;
use super::selection::Selected;
use super::shape::{ColumnShape, Shape, Shapes};
use super::{bytea, nested, nested_insert};
use crate::auth::Principal;
use crate::engine::Caller;
use crate::error::ApiError;
use crate::rest::Target;
use crate::rest::read::Record;
use crate::rest::writer::{self, Audit, Changes, Conflict, LastWrite, Planned, Rows, Transaction};
use crate::state::AppState;

/// The type names a collection's mutations take.
pub fn type_names(shape: &Shape) -> Vec<String> {
    let x = &shape.name;
    if !shape.writes.any() {
        return Vec::new();
    }
    [
        "insert_input",
        "set_input",
        "inc_input",
        "pk_columns_input",
        "mutation_response",
        "updates",
        "on_conflict",
        "constraint",
        "update_column",
        "obj_rel_insert_input",
        "arr_rel_insert_input",
        "append_input",
        "prepend_input",
        "delete_key_input",
        "delete_elem_input",
        "delete_at_path_input",
    ]
    .iter()
    .map(|suffix| format!("{x}_{suffix}"))
    .collect()
}

/// The input and answer types of a collection's mutations.
pub fn types(shape: &Shape, shapes: &Shapes) -> Vec<async_graphql::dynamic::Type> {
    let x = &shape.name;
    let mut types: Vec<async_graphql::dynamic::Type> = Vec::new();
    if let Some(columns) = shape.writes.insert.as_ref().filter(|c| !c.is_empty()) {
        // Related rows inserted with the row (Hasura's nested inserts).
        let input = nested_insert::insertable(shape, shapes).fold(
            input_object(format!("{x}_insert_input"), columns),
            |input, relation| {
                let suffix = if relation.many { "arr" } else { "obj" };
                let ty = format!("{}_{suffix}_rel_insert_input", relation.target);
                input.field(InputValue::new(relation.field.as_str(), TypeRef::named(ty)))
            },
        );
        types.push(input.into());
        let data = |suffix: &str, ty: TypeRef| {
            let input = InputObject::new(format!("{x}_{suffix}_rel_insert_input"))
                .field(InputValue::new("data", ty));
            let on_conflict = TypeRef::named(format!("{x}_on_conflict"));
            if upserts(shape) {
                input.field(InputValue::new("on_conflict", on_conflict))
            } else {
                input
            }
            .into()
        };
        let row = format!("{x}_insert_input");
        types.push(data("obj", TypeRef::named_nn(row.as_str())));
        types.push(data("arr", TypeRef::named_nn_list_nn(row)));
    }
    if let Some(columns) = &shape.writes.update {
        if !columns.is_empty() {
            types.push(input_object(format!("{x}_set_input"), columns).into());
        }
        let increments = increments(shape);
        if !increments.is_empty() {
            types.push(input_object(format!("{x}_inc_input"), &increments).into());
        }
        let documents = documents(shape);
        if !documents.is_empty() {
            for argument in JSON_EDITS {
                let input = documents.iter().fold(
                    InputObject::new(format!("{x}{argument}_input")),
                    |input, column| {
                        input.field(InputValue::new(
                            column.name.as_str(),
                            operand(argument, column),
                        ))
                    },
                );
                types.push(input.into());
            }
        }
        if !columns.is_empty() || !increments.is_empty() {
            types.push(
                changes_input(
                    InputObject::new(format!("{x}_updates")).field(InputValue::new(
                        "where",
                        TypeRef::named_nn(format!("{x}_bool_exp")),
                    )),
                    shape,
                )
                .into(),
            );
        }
        if upserts(shape) {
            types.push(
                Enum::new(format!("{x}_constraint"))
                    .items(constraints(shape).into_iter().map(|(name, _)| name))
                    .into(),
            );
            types.push(
                Enum::new(format!("{x}_update_column"))
                    .items(
                        columns
                            .iter()
                            .map(|c| c.name.as_str())
                            .filter(|n| !matches!(*n, "true" | "false" | "null")),
                    )
                    .into(),
            );
            types.push(
                InputObject::new(format!("{x}_on_conflict"))
                    .field(InputValue::new(
                        "constraint",
                        TypeRef::named_nn(format!("{x}_constraint")),
                    ))
                    .field(
                        InputValue::new(
                            "update_columns",
                            TypeRef::named_nn_list_nn(format!("{x}_update_column")),
                        )
                        .default_value(GqlValue::List(Vec::new())),
                    )
                    .field(InputValue::new(
                        "where",
                        TypeRef::named(format!("{x}_bool_exp")),
                    ))
                    .into(),
            );
        }
        if let Some(key) = &shape.primary_key {
            let mut input = InputObject::new(format!("{x}_pk_columns_input"));
            for column in key {
                input = input.field(InputValue::new(
                    column.name.as_str(),
                    TypeRef::named_nn(column.scalar.name()),
                ));
            }
            types.push(input.into());
        }
    }
    let mut response = Object::new(format!("{x}_mutation_response")).field(Field::new(
        "affected_rows",
        TypeRef::named_nn(TypeRef::INT),
        |ctx| {
            ready(
                ctx.parent_value
                    .try_downcast_ref::<Answer>()
                    .map(|answer| Some(FieldValue::value(GqlValue::from(answer.affected)))),
            )
        },
    ));
    if shape.select {
        response = response.field(Field::new(
            "returning",
            TypeRef::named_nn_list_nn(x.as_str()),
            |ctx| {
                ready(ctx.parent_value.try_downcast_ref::<Answer>().map(|answer| {
                    Some(FieldValue::list(
                        answer
                            .records
                            .iter()
                            .map(|record| FieldValue::borrowed_any(record)),
                    ))
                }))
            },
        ));
    }
    types.push(response.into());
    types
}

/// The constraints `on_conflict` may name, with their columns: the
/// primary key (`x_pkey`, Hasura's name for it) and the unique constraints.
fn constraints(shape: &Shape) -> Vec<(String, Vec<String>)> {
    let mut constraints: Vec<(String, Vec<String>)> = Vec::new();
    if let Some(key) = &shape.primary_key {
        let columns = key.iter().map(|c| c.name.clone()).collect();
        constraints.push((format!("{}_pkey", shape.name), columns));
    }
    for (name, columns) in &shape.unique_keys {
        if !constraints.iter().any(|(taken, _)| taken == name) {
            constraints.push((name.clone(), columns.clone()));
        }
    }
    constraints
}

/// Inserts take `on_conflict` (an upsert on a key): the caller
/// may insert and update, and the update enum has a column.
fn upserts(shape: &Shape) -> bool {
    shape.writes.insert.as_ref().is_some_and(|c| !c.is_empty())
        && shape.writes.update.as_ref().is_some_and(|c| {
            c.iter()
                .any(|c| !matches!(c.name.as_str(), "true" | "false" | "null"))
        })
}

/// `_set` and `_inc` where the caller may set or increment a column.
fn changes_input<T: ChangesArguments>(target: T, shape: &Shape) -> T {
    let x = &shape.name;
    let set = shape.writes.update.as_ref().is_some_and(|c| !c.is_empty());
    let target = if set {
        target.with_argument(InputValue::new(
            "_set",
            TypeRef::named(format!("{x}_set_input")),
        ))
    } else {
        target
    };
    let target = if increments(shape).is_empty() {
        target
    } else {
        target.with_argument(InputValue::new(
            "_inc",
            TypeRef::named(format!("{x}_inc_input")),
        ))
    };
    if documents(shape).is_empty() {
        return target;
    }
    JSON_EDITS.iter().fold(target, |target, argument| {
        target.with_argument(InputValue::new(
            *argument,
            TypeRef::named(format!("{x}{argument}_input")),
        ))
    })
}

/// Hasura's arguments editing `jsonb` documents in place, each an input
/// object of columns (`x_append_input` …; see [`json_edit`]).
const JSON_EDITS: [&str; 5] = [
    "_append",
    "_prepend",
    "_delete_key",
    "_delete_elem",
    "_delete_at_path",
];

/// The type of `column`'s operand in a [`JSON_EDITS`] argument (a
/// document of the column's own scalar for `_append` and `_prepend`).
fn operand(argument: &str, column: &ColumnShape) -> TypeRef {
    match argument {
        "_delete_key" => TypeRef::named(TypeRef::STRING),
        "_delete_elem" => TypeRef::named(TypeRef::INT),
        "_delete_at_path" => TypeRef::named_nn_list(TypeRef::STRING),
        _ => TypeRef::named(column.scalar.name()),
    }
}

/// The JSON documents an update may set: what [`JSON_EDITS`] edit.
fn documents(shape: &Shape) -> Vec<&ColumnShape> {
    shape
        .writes
        .update
        .iter()
        .flatten()
        .filter(|c| c.document)
        .collect()
}

/// The edits [`JSON_EDITS`] arguments of `args` ask for (a field's
/// arguments, or an item of `update_x_many`'s `updates` at `path`), each
/// with its column and place; the writer checks the columns.
fn json_edits(args: &Arguments, path: &str) -> Result<Vec<(String, JsonEdit, String)>, ApiError> {
    let mut edits = Vec::new();
    for argument in JSON_EDITS {
        let at = |column: Option<&str>| {
            let mut at = if path.is_empty() {
                argument.to_string()
            } else {
                format!("{path}.{argument}")
            };
            if let Some(column) = column {
                at.push('.');
                at.push_str(column);
            }
            at
        };
        let columns = match args.get(argument) {
            None | Some(GqlValue::Null) => continue,
            Some(GqlValue::Object(columns)) => columns,
            Some(_) => {
                return Err(ApiError::bad_request(format!(
                    "`{argument}` must be an object of columns"
                ))
                .at(at(None)));
            }
        };
        for (column, operand) in columns {
            let place = at(Some(column.as_str()));
            let edit = json_edit(argument, operand).map_err(|message| {
                ApiError::bad_request(format!("`{argument}` of `{column}`: {message}"))
                    .at(place.clone())
            })?;
            edits.push((column.to_string(), edit, place));
        }
    }
    Ok(edits)
}

/// One column's edit: `argument` (of [`JSON_EDITS`]) with its operand.
fn json_edit(argument: &str, operand: &GqlValue) -> Result<JsonEdit, String> {
    let text = |value: &GqlValue| match value {
        GqlValue::String(text) => Ok(text.clone()),
        _ => Err("expected a string".to_string()),
    };
    match (argument, operand) {
        (_, GqlValue::Null) => Err("expected a value, not null".into()),
        ("_append" | "_prepend", value) => {
            let document = value.clone().into_json().map_err(|e| e.to_string())?;
            Ok(if argument == "_append" {
                JsonEdit::Append(document)
            } else {
                JsonEdit::Prepend(document)
            })
        }
        ("_delete_key", value) => text(value).map(JsonEdit::DeleteKey),
        ("_delete_elem", GqlValue::Number(n)) => n
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .map(|n| JsonEdit::DeleteElem(n.into()))
            .ok_or_else(|| "expected an integer index".to_string()),
        ("_delete_elem", _) => Err("expected an integer index".into()),
        ("_delete_at_path", GqlValue::List(items)) => items
            .iter()
            .map(text)
            .collect::<Result<_, _>>()
            .map(JsonEdit::DeleteAtPath),
        // A one-item list may be given as its item, as GraphQL allows.
        ("_delete_at_path", value) => text(value).map(|key| JsonEdit::DeleteAtPath(vec![key])),
        _ => Err(format!("`{argument}` is not an edit")),
    }
}

/// What takes `_set` and `_inc`: an update field's arguments, or the
/// fields of `x_updates`.
trait ChangesArguments {
    fn with_argument(self, value: InputValue) -> Self;
}

impl ChangesArguments for Field {
    fn with_argument(self, value: InputValue) -> Self {
        self.argument(value)
    }
}

impl ChangesArguments for InputObject {
    fn with_argument(self, value: InputValue) -> Self {
        self.field(value)
    }
}

/// Every column optional: what an insert leaves out gets its default.
fn input_object(name: String, columns: &[ColumnShape]) -> InputObject {
    columns
        .iter()
        .fold(InputObject::new(name), |input, column| {
            input.field(InputValue::new(
                column.name.as_str(),
                TypeRef::named(column.scalar.name()),
            ))
        })
}

/// `_inc`'s columns: the numeric ones an update may set, outside the key.
fn increments(shape: &Shape) -> Vec<ColumnShape> {
    let key: Vec<&str> = shape
        .primary_key
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    shape
        .writes
        .update
        .iter()
        .flatten()
        .filter(|c| c.scalar.is_summable() && !key.contains(&c.name.as_str()))
        .cloned()
        .collect()
}

/// The mutation root fields of a collection.
pub fn root_fields(shape: &Arc<Shape>, shapes: &Arc<Shapes>) -> Vec<Field> {
    let x = shape.name.clone();
    let writes = &shape.writes;
    let mut fields = Vec::new();
    let by_pk = shape.select && shape.primary_key.is_some();
    let response = TypeRef::named(format!("{x}_mutation_response"));
    if writes.insert.as_ref().is_some_and(|c| !c.is_empty()) {
        let input = format!("{x}_insert_input");
        fields.push(
            field(
                format!("insert_{x}"),
                response.clone(),
                shape,
                shapes,
                Kind::Insert { one: false },
            )
            .description(format!("Inserts rows into `{x}`"))
            .argument(InputValue::new(
                "objects",
                TypeRef::named_nn_list_nn(input.as_str()),
            )),
        );
        if upserts(shape)
            && let Some(field) = fields.pop()
        {
            fields.push(field.argument(InputValue::new(
                "on_conflict",
                TypeRef::named(format!("{x}_on_conflict")),
            )));
        }
        if by_pk {
            fields.push(
                field(
                    format!("insert_{x}_one"),
                    TypeRef::named(x.as_str()),
                    shape,
                    shapes,
                    Kind::Insert { one: true },
                )
                .description(format!("Inserts one row into `{x}`"))
                .argument(InputValue::new("object", TypeRef::named_nn(input))),
            );
            if upserts(shape)
                && let Some(field) = fields.pop()
            {
                fields.push(field.argument(InputValue::new(
                    "on_conflict",
                    TypeRef::named(format!("{x}_on_conflict")),
                )));
            }
        }
    }
    if let Some(columns) = &writes.update
        && (!columns.is_empty() || !increments(shape).is_empty())
    {
        fields.push(changes_input(
            field(
                format!("update_{x}"),
                response.clone(),
                shape,
                shapes,
                Kind::Update { by_pk: false },
            )
            .description(format!("Updates the rows of `{x}` that `where` matches"))
            .argument(InputValue::new(
                "where",
                TypeRef::named_nn(format!("{x}_bool_exp")),
            )),
            shape,
        ));
        fields.push(
            field(
                format!("update_{x}_many"),
                TypeRef::named_list(format!("{x}_mutation_response")),
                shape,
                shapes,
                Kind::UpdateMany,
            )
            .description(format!(
                "Runs several updates of `{x}` in turn, each answering as `update_{x}`"
            ))
            .argument(InputValue::new(
                "updates",
                TypeRef::named_nn_list_nn(format!("{x}_updates")),
            )),
        );
        if by_pk {
            fields.push(changes_input(
                field(
                    format!("update_{x}_by_pk"),
                    TypeRef::named(x.as_str()),
                    shape,
                    shapes,
                    Kind::Update { by_pk: true },
                )
                .description(format!("Updates one row of `{x}` by its primary key"))
                .argument(InputValue::new(
                    "pk_columns",
                    TypeRef::named_nn(format!("{x}_pk_columns_input")),
                )),
                shape,
            ));
        }
    }
    if writes.delete {
        fields.push(
            field(
                format!("delete_{x}"),
                response,
                shape,
                shapes,
                Kind::Delete { by_pk: false },
            )
            .description(format!("Deletes the rows of `{x}` that `where` matches"))
            .argument(InputValue::new(
                "where",
                TypeRef::named_nn(format!("{x}_bool_exp")),
            )),
        );
        if let (true, Some(key)) = (by_pk, &shape.primary_key) {
            let mut by_key = field(
                format!("delete_{x}_by_pk"),
                TypeRef::named(x.as_str()),
                shape,
                shapes,
                Kind::Delete { by_pk: true },
            )
            .description(format!("Deletes one row of `{x}` by its primary key"));
            for column in key {
                by_key = by_key.argument(InputValue::new(
                    column.name.as_str(),
                    TypeRef::named_nn(column.scalar.name()),
                ));
            }
            fields.push(by_key);
        }
    }
    fields
}

/// Which mutation a root field is.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Insert {
        one: bool,
    },
    Update {
        by_pk: bool,
    },
    /// `update_x_many`: several updates in turn, one answer each.
    UpdateMany,
    Delete {
        by_pk: bool,
    },
}

impl Kind {
    pub(super) fn operation(self) -> &'static str {
        match self {
            Self::Insert { .. } => "insert",
            Self::Update { .. } | Self::UpdateMany => "update",
            Self::Delete { .. } => "delete",
        }
    }

    /// Answers the row (or null) rather than `{ affected_rows returning }`.
    fn answers_row(self) -> bool {
        matches!(
            self,
            Self::Insert { one: true }
                | Self::Update { by_pk: true }
                | Self::Delete { by_pk: true }
        )
    }
}

fn field(name: String, ty: TypeRef, shape: &Arc<Shape>, shapes: &Arc<Shapes>, kind: Kind) -> Field {
    let (shape, shapes) = (shape.clone(), shapes.clone());
    Field::new(name, ty, move |ctx| {
        let (shape, shapes) = (shape.clone(), shapes.clone());
        FieldFuture::new(async move {
            let result = mutate(&ctx, &shape, &shapes, kind).await;
            resolve::answer(&ctx, result)
        })
    })
}

/// The answer of a mutation over rows.
struct Answer {
    affected: u64,
    records: Vec<Record>,
}

/// Runs one mutation root field in the request's transaction.
async fn mutate<'a>(
    ctx: &ResolverContext<'a>,
    shape: &Shape,
    shapes: &Shapes,
    kind: Kind,
) -> Result<Option<FieldValue<'a>>, ApiError> {
    let data = super::RequestData::of(ctx.ctx)?;
    let (state, principal, session) = (&data.state, &data.principal, &data.session);
    let mut inner = session.inner.lock().await;
    // After a failed field the transaction is rolled back: the fields
    // after it do not run (their answer is the request's error).
    if inner.failed {
        return Ok(None);
    }
    inner.fields_run += 1;
    let target = Target::resolve(state, &shape.name)?;
    let caller = principal.caller();
    let field = ctx.ctx.field();
    let selected = Selected::of(&field)?;
    if let Kind::UpdateMany = kind {
        // Its updates read their rows: the held-back writes go out first.
        if !Box::pin(inner.send_held(state)).await {
            return Ok(None);
        }
        let mut answers = Vec::new();
        for (i, update) in update_items(ctx)?.iter().enumerate() {
            let mut audit = Audit::new(principal, &target, kind.operation());
            let earlier = inner.written(&target);
            let planned = Box::pin(plan_update_item(
                state, principal, &target, shape, shapes, update, i, earlier, &mut audit,
            ))
            .await;
            let (affected, mut records) =
                Box::pin(inner.write(state, &caller, &target, planned, audit, false)).await?;
            let collection = (shape, shapes);
            Box::pin(attach_related(
                state,
                &caller,
                &selected,
                collection,
                &mut records,
                false,
            ))
            .await
            .inspect_err(|_| inner.failed = true)?;
            answers.push(Answer { affected, records });
        }
        return Ok(Some(FieldValue::list(
            answers.into_iter().map(FieldValue::owned_any),
        )));
    }
    if let Kind::Insert { one } = kind
        && nests_rows(ctx.args.as_index_map(), shape)
    {
        let field = NestedInsert {
            target: &target,
            collection: (shape, shapes),
            args: ctx.args.as_index_map(),
            selected: &selected,
            one,
        };
        return Box::pin(field.run(state, principal, session, &mut inner)).await;
    }
    let mut audit = Audit::new(principal, &target, kind.operation());
    // The steps' futures boxed: this one stays small, and FieldFuture
    // boxes it whole (every step's state inline was ~12 KB copied per field).
    let args = ctx.args.as_index_map();
    let mut planned = Box::pin(plan(
        args, state, principal, &target, shape, shapes, kind, &mut inner, &mut audit,
    ))
    .await;
    if !inner.held.is_empty() && planned.as_ref().is_ok_and(Planned::read_rows) {
        // Its rows were read without the keys the held-back writes write:
        // those go out first, and it is planned again.
        if !Box::pin(inner.send_held(state)).await {
            return Ok(None);
        }
        audit = Audit::new(principal, &target, kind.operation());
        planned = Box::pin(plan(
            args, state, principal, &target, shape, shapes, kind, &mut inner, &mut audit,
        ))
        .await;
    }
    // A lone write answering a row of columns is held back, to go out with
    // the request's last writes and `COMMIT` at once ([`Held`]). One to
    // another source is not: it is refused as ever, below.
    let source = &target.collection.table.source;
    let holdable = match &planned {
        Ok(lone)
            if session.holds_back
                && kind.answers_row()
                && lone.is_lone_unchecked()
                && inner.source().is_none_or(|open| open == source) =>
        {
            WrittenRow::of(&selected, shape, shapes)
                .map(Arc::new)
                .zip(state.sources.connector(source).ok())
        }
        _ => None,
    };
    if let Some((row, connector)) = holdable {
        let mut planned = planned?;
        planned.return_only(&target, |column| row.reads(column));
        audit.planned(connector.as_ref(), &planned);
        let error_at = ctx
            .ctx
            .set_error_path(ServerError::new(String::new(), Some(ctx.ctx.item.pos)));
        inner.held.push(Held {
            target,
            caller,
            planned,
            audit,
            key: Name::new(selected.key()),
            row,
            error_at,
        });
        return Ok(None);
    }
    if planned.is_ok() && !Box::pin(inner.send_held(state)).await {
        return Ok(None);
    }
    // The request's last field, reading no relation of the rows it writes:
    // nothing can fail after its write.
    let last =
        inner.fields_run == session.root_fields && !reads_relations(&selected, kind.answers_row());
    let planned = planned.map(|mut planned| {
        if let Some(rows) = answered_rows(&selected, kind.answers_row(), shape, shapes) {
            planned.return_only(&target, |column| rows.iter().any(|row| row.reads(column)));
        }
        planned
    });
    let (affected, mut records) =
        Box::pin(inner.write(state, &caller, &target, planned, audit, last)).await?;
    // Relations of the written rows are read as committed before the
    // request (the engine reads outside its transaction).
    let collection = (shape, shapes);
    let answers_row = kind.answers_row();
    let related = attach_related(
        state,
        &caller,
        &selected,
        collection,
        &mut records,
        answers_row,
    );
    let attached = Box::pin(related).await;
    if let Err(error) = attached {
        inner.failed = true;
        return Err(error);
    }
    Ok(if kind.answers_row() {
        records.into_iter().next().map(FieldValue::owned_any)
    } else {
        Some(FieldValue::owned_any(Answer { affected, records }))
    })
}

/// An insert field whose objects give related rows (Hasura's nested
/// inserts), with what its answer needs.
struct NestedInsert<'a> {
    target: &'a Target,
    collection: (&'a Shape, &'a Shapes),
    args: &'a Arguments,
    selected: &'a Selected,
    /// `insert_x_one`: the answer is the row.
    one: bool,
}

impl NestedInsert<'_> {
    /// Every object and its related rows checked, then each inserted in
    /// turn in the request's transaction ([`nested_insert`]). A request
    /// refused before anything is written is the field's audit row.
    async fn insert(
        &self,
        state: &AppState,
        principal: &Principal,
        inner: &mut Inner,
    ) -> Result<Answer, ApiError> {
        let (shape, shapes) = self.collection;
        let parsed = (|| {
            // The field's `on_conflict`, parsed once for all its rows.
            let upsert = optional_argument(self.args, "on_conflict")?
                .map(|given| OnConflict::parse(given, shape, shapes, "on_conflict"))
                .transpose()?
                .map(Arc::new);
            insert_objects(self.args, self.one)?
                .into_iter()
                .map(|(path, object)| {
                    nested_insert::Tree::parse(shape, shapes, object, path, upsert.clone())
                })
                .collect::<Result<Vec<_>, _>>()
        })();
        let trees = match parsed {
            Ok(trees) => trees,
            Err(error) => {
                let audit = Audit::new(principal, self.target, "insert");
                let caller = principal.caller();
                let refused = inner.write(
                    state,
                    &caller,
                    self.target,
                    Err(error.clone()),
                    audit,
                    false,
                );
                return Err(refused.await.err().unwrap_or(error));
            }
        };
        let mut answer = Answer {
            affected: 0,
            records: Vec::new(),
        };
        for tree in trees {
            let (record, inserted) = tree.insert(state, principal, inner).await?;
            answer.affected += inserted;
            answer.records.extend(record);
        }
        Ok(answer)
    }

    /// Inserts the rows and their related rows ([`NestedInsert::insert`]),
    /// then answers them.
    async fn run<'v>(
        self,
        state: &AppState,
        principal: &Principal,
        session: &Session,
        inner: &mut Inner,
    ) -> Result<Option<FieldValue<'v>>, ApiError> {
        // Its rows' keys are read back: the held-back writes go out first.
        if !Box::pin(inner.send_held(state)).await {
            return Ok(None);
        }
        let inserted = Box::pin(self.insert(state, principal, inner)).await;
        let Answer {
            affected,
            mut records,
        } = match inserted {
            Ok(answer) => answer,
            Err(error) => {
                inner.failed = true;
                return Err(error);
            }
        };
        let answers_row = self.one;
        if !reads_relations(self.selected, answers_row) {
            return Ok(nested_answer(answers_row, affected, records));
        }
        // The answer reads the rows' relations through the engine, which
        // sees committed rows only: the request's last field commits
        // first, so that the related rows it inserted are read back.
        let last = inner.fields_run == session.root_fields;
        if last && let Some(tx) = inner.tx.take() {
            if let Err(error) = tx.commit().await {
                inner.failed = true;
                return Err(error);
            }
            inner.committed = true;
        }
        let caller = principal.caller();
        let related = attach_related(
            state,
            &caller,
            self.selected,
            self.collection,
            &mut records,
            answers_row,
        );
        if let Err(mut error) = Box::pin(related).await {
            inner.failed = true;
            if inner.committed {
                error.message = format!(
                    "the rows are written; reading their related rows for the answer failed: {}",
                    error.message
                );
            }
            return Err(error);
        }
        Ok(nested_answer(answers_row, affected, records))
    }
}

/// An insert field's answer: its row, or `{affected_rows returning}`.
fn nested_answer<'a>(
    answers_row: bool,
    affected: u64,
    records: Vec<Record>,
) -> Option<FieldValue<'a>> {
    if answers_row {
        records.into_iter().next().map(FieldValue::owned_any)
    } else {
        Some(FieldValue::owned_any(Answer { affected, records }))
    }
}

/// Whether the answer to a mutation field reads relations of the written
/// rows (a field under a row with a selection of its own), skipped or not.
fn reads_relations(field: &Selected, answers_row: bool) -> bool {
    let rows: Vec<&Selected> = if answers_row {
        vec![field]
    } else {
        field
            .children
            .iter()
            .filter(|f| f.name == "returning")
            .collect()
    };
    rows.iter()
        .any(|row| row.children.iter().any(|f| !f.children.is_empty()))
}

/// What the answer to a mutation field reads of its written rows, when it
/// reads columns only: the row itself (a field answering a row), else each
/// `returning { … }` (none for `{ affected_rows }`). `None` when it reads
/// relations (they join on columns of their own).
fn answered_rows(
    field: &Selected,
    answers_row: bool,
    shape: &Shape,
    shapes: &Shapes,
) -> Option<Vec<WrittenRow>> {
    if reads_relations(field, answers_row) {
        return None;
    }
    if answers_row {
        return WrittenRow::of(field, shape, shapes).map(|row| vec![row]);
    }
    field
        .children
        .iter()
        .filter(|f| f.name == "returning")
        .map(|returning| WrittenRow::of(returning, shape, shapes))
        .collect()
}

/// The relations the answer asks for, attached to the written rows: those
/// under the row itself (a field answering a row), else under
/// `returning { … }`.
async fn attach_related(
    state: &AppState,
    caller: &Caller,
    field: &Selected,
    (shape, shapes): (&Shape, &Shapes),
    records: &mut [Record],
    answers_row: bool,
) -> Result<(), ApiError> {
    if answers_row {
        return nested::attach(state, caller, field, shape, shapes, records).await;
    }
    for returning in field.children.iter().filter(|f| f.name == "returning") {
        nested::attach(state, caller, returning, shape, shapes, records).await?;
    }
    Ok(())
}

/// `update_x_many`'s `updates`, in order.
fn update_items(ctx: &ResolverContext<'_>) -> Result<Vec<GqlValue>, ApiError> {
    match ctx.args.get("updates").map(|v| v.as_value().clone()) {
        Some(GqlValue::List(items)) => Ok(items),
        _ => Err(ApiError::bad_request("`updates` must be a list").at("updates")),
    }
}

/// One of `update_x_many`'s updates as a planned write.
#[allow(clippy::too_many_arguments)]
async fn plan_update_item(
    state: &AppState,
    principal: &Principal,
    target: &Target,
    shape: &Shape,
    shapes: &Shapes,
    update: &GqlValue,
    index: usize,
    earlier: &[Vec<Value>],
    audit: &mut Audit,
) -> Result<Planned, ApiError> {
    let path = format!("updates[{index}]");
    let GqlValue::Object(update) = update else {
        return Err(ApiError::bad_request("an update must be an object").at(path));
    };
    let exp = update
        .get("where")
        .ok_or_else(|| ApiError::bad_request("`where` is required").at(format!("{path}.where")))?;
    let (filter, places) = arguments::filter(exp, shape, shapes, &format!("{path}.where"))?;
    let rows = Rows::Filter(filter);
    audit.note("target", rows_text(&rows));
    let change = |name: &str| -> Result<Option<Json>, ApiError> {
        match update.get(name).filter(|v| !matches!(v, GqlValue::Null)) {
            Some(value) => value
                .clone()
                .into_json()
                .map(Some)
                .map_err(|e| ApiError::bad_request(e.to_string()).at(format!("{path}.{name}"))),
            None => Ok(None),
        }
    };
    let (set, increment) = (change("_set")?, change("_inc")?);
    let json = json_edits(update, &path)?;
    plan_changes(
        state, principal, target, shape, &rows, set, increment, json, &path, earlier,
    )
    .await
    .map_err(|e| places.place(e, ""))
}

/// An update of `rows` with `_set` and `_inc` (as JSON; `path` places them
/// in the request, empty for a field's own arguments); `earlier` as for
/// `writer::plan_update`.
#[allow(clippy::too_many_arguments)]
async fn plan_changes(
    state: &AppState,
    principal: &Principal,
    target: &Target,
    shape: &Shape,
    rows: &Rows,
    mut set: Option<Json>,
    increment: Option<Json>,
    json: Vec<(String, JsonEdit, String)>,
    path: &str,
    earlier: &[Vec<Value>],
) -> Result<Planned, ApiError> {
    let at = |name: &str| {
        if path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        }
    };
    let (set_path, inc_path) = (at("_set"), at("_inc"));
    if let Some(set) = &mut set {
        bytea::decode_input(set, shape, &set_path)?;
    }
    let changes = Changes {
        set: set.as_ref().map(|s| (s, set_path.as_str())),
        increment: increment.as_ref().map(|i| (i, inc_path.as_str())),
        json,
    };
    writer::plan_update(state, principal, target, rows, changes, earlier).await
}

/// A field's arguments, variables in place (as async-graphql hands them to
/// a resolver, or as a plan fills them in).
pub(super) type Arguments = async_graphql::indexmap::IndexMap<Name, GqlValue>;

/// Reads the field's arguments into a planned write in the request's
/// transaction (`inner`): an update or delete takes the rows of the table
/// the request's earlier fields wrote as candidates, an upsert reads which
/// keys exist in the transaction once it has written.
#[allow(clippy::too_many_arguments)]
async fn plan(
    args: &Arguments,
    state: &AppState,
    principal: &Principal,
    target: &Target,
    shape: &Shape,
    shapes: &Shapes,
    kind: Kind,
    inner: &mut Inner,
    audit: &mut Audit,
) -> Result<Planned, ApiError> {
    let earlier = inner.written(target);
    match kind {
        Kind::Insert { one } => {
            if nests_rows(args, shape) {
                // Not one plan: `mutate` inserts them row by row.
                return Err(ApiError::internal(
                    "an insert with related rows is inserted row by row, not planned whole",
                ));
            }
            let mut objects = insert_objects(args, one)?;
            for (path, object) in &mut objects {
                bytea::decode_input(object, shape, path)?;
            }
            let objects: Vec<(String, &Json)> =
                objects.iter().map(|(p, o)| (p.clone(), o)).collect();
            match optional_argument(args, "on_conflict")? {
                Some(given) => {
                    let upsert = OnConflict::parse(given, shape, shapes, "on_conflict")?;
                    audit.note("on_conflict", upsert.given.clone());
                    let (conflict, update) = (&upsert.conflict, &upsert.update);
                    let inside = inner.tx.as_mut();
                    writer::plan_upsert(
                        state, principal, target, &objects, conflict, update, inside,
                    )
                    .await
                    .map_err(|e| upsert.places.place(e, ""))
                }
                None => writer::plan_insert(state, principal, target, &objects),
            }
        }
        Kind::Update { by_pk } => {
            let (rows, places) = if by_pk {
                let Json::Object(key) = argument(args, "pk_columns")? else {
                    return Err(
                        ApiError::bad_request("`pk_columns` must be an object").at("pk_columns")
                    );
                };
                (Rows::Key(key.into_iter().collect()), Places::default())
            } else {
                rows_where(args, shape, shapes)?
            };
            audit.note("target", rows_text(&rows));
            let set = optional_argument(args, "_set")?;
            let increment = optional_argument(args, "_inc")?;
            let json = json_edits(args, "")?;
            plan_changes(
                state, principal, target, shape, &rows, set, increment, json, "", earlier,
            )
            .await
            .map_err(|e| places.place(e, ""))
        }
        // Each of its updates is planned on its own (`plan_update_item`).
        Kind::UpdateMany => Err(ApiError::internal(
            "update_x_many is planned update by update",
        )),
        Kind::Delete { by_pk } => {
            let (rows, places) = if by_pk {
                let key = shape.primary_key.as_deref().unwrap_or_default();
                let mut values = Vec::with_capacity(key.len());
                for column in key {
                    values.push((column.name.clone(), argument(args, &column.name)?));
                }
                (Rows::Key(values), Places::default())
            } else {
                rows_where(args, shape, shapes)?
            };
            audit.note("target", rows_text(&rows));
            writer::plan_delete(state, principal, target, &rows, earlier)
                .await
                .map_err(|e| places.place(e, ""))
        }
    }
}

/// An insert's `on_conflict` (Hasura's upsert), checked.
pub(super) struct OnConflict {
    /// The key rows conflict on, and which existing rows are updated.
    pub conflict: Conflict,
    /// The columns an existing row gets (`update_columns`).
    pub update: Vec<String>,
    /// Where `where`'s conditions are in the request.
    pub places: Places,
    /// As given, for the audit row.
    pub given: Json,
}

impl OnConflict {
    /// `given` (at `at` in the request) for a row of `shape`: its
    /// constraint must be one `x_constraint` names.
    pub fn parse(given: Json, shape: &Shape, shapes: &Shapes, at: &str) -> Result<Self, ApiError> {
        let update: Vec<String> = given
            .get("update_columns")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str().map(str::to_string))
            .collect();
        let named = given.get("constraint").and_then(Json::as_str);
        let columns = constraints(shape)
            .into_iter()
            .find(|(name, _)| Some(name.as_str()) == named)
            .map(|(_, columns)| columns)
            .ok_or_else(|| {
                ApiError::bad_request("unknown constraint").at(format!("{at}.constraint"))
            })?;
        let (only, places) = match given.get("where").filter(|w| !w.is_null()) {
            Some(exp) => {
                let at = format!("{at}.where");
                let exp = GqlValue::from_json(exp.clone())
                    .map_err(|e| ApiError::bad_request(e.to_string()).at(at.clone()))?;
                let (filter, places) = arguments::filter(&exp, shape, shapes, &at)?;
                (Some(filter), places)
            }
            None => (None, Places::default()),
        };
        Ok(Self {
            conflict: Conflict { columns, only },
            update,
            places,
            given,
        })
    }
}

/// The objects of `insert_x(objects)` or `insert_x_one(object)`, each
/// with its place in the request.
fn insert_objects(args: &Arguments, one: bool) -> Result<Vec<(String, Json)>, ApiError> {
    Ok(if one {
        vec![("object".to_string(), argument(args, "object")?)]
    } else {
        match argument(args, "objects")? {
            Json::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| (format!("objects[{i}]"), item))
                .collect(),
            other => vec![("objects".to_string(), other)],
        }
    })
}

/// Whether an insert field's objects give related rows (a relation's
/// field), which [`NestedInsert`] inserts.
fn nests_rows(args: &Arguments, shape: &Shape) -> bool {
    if shape.relations.is_empty() {
        return false;
    }
    let gives_related = |value: &GqlValue| match value {
        GqlValue::Object(fields) => shape.relations.iter().any(|r| {
            fields
                .get(r.field.as_str())
                .is_some_and(|v| !matches!(v, GqlValue::Null))
        }),
        _ => false,
    };
    ["object", "objects"]
        .into_iter()
        .filter_map(|name| args.get(name))
        .any(|value| match value {
            GqlValue::List(items) => items.iter().any(gives_related),
            other => gives_related(other),
        })
}

/// `where` (required; `{}` matches every row the role may write), and
/// where its conditions are in the request.
fn rows_where(
    args: &Arguments,
    shape: &Shape,
    shapes: &Shapes,
) -> Result<(Rows, Places), ApiError> {
    let exp = args
        .get("where")
        .ok_or_else(|| ApiError::bad_request("`where` is required").at("where"))?;
    let (filter, places) = arguments::filter(exp, shape, shapes, "where")?;
    Ok((Rows::Filter(filter), places))
}

fn rows_text(rows: &Rows) -> Json {
    match rows {
        Rows::Key(values) => Json::Object(values.iter().cloned().collect()),
        Rows::Filter(filter) => filter.clone(),
    }
}

fn optional_argument(args: &Arguments, name: &str) -> Result<Option<Json>, ApiError> {
    match args.get(name).filter(|v| !matches!(v, GqlValue::Null)) {
        Some(value) => value
            .clone()
            .into_json()
            .map(Some)
            .map_err(|e| ApiError::bad_request(e.to_string()).at(name.to_string())),
        None => Ok(None),
    }
}

fn argument(args: &Arguments, name: &str) -> Result<Json, ApiError> {
    optional_argument(args, name)?
        .ok_or_else(|| ApiError::bad_request(format!("`{name}` is required")).at(name.to_string()))
}

/// The writes of one GraphQL request: the transaction its mutation fields
/// share, and their audit rows, written once the outcome is known.
#[derive(Default)]
pub struct Session {
    inner: Mutex<Inner>,
    /// How many root fields the mutation has; 0 when not known (a fragment
    /// or directive at the root).
    root_fields: usize,
    /// Each root field has a response key of its own: a held-back write's
    /// answer goes back under its key ([`Held`]).
    holds_back: bool,
}

#[derive(Default)]
pub(super) struct Inner {
    pub(super) tx: Option<Transaction>,
    /// Writes held back, in order, to go out together with the request's
    /// `COMMIT` ([`Session::finish`]), or before a write that cannot wait.
    held: Vec<Held>,
    /// The answers of held-back writes that went out, by response key.
    answers: Vec<(Name, GqlValue)>,
    /// Errors of held-back writes that went out before the end.
    errors: Vec<ServerError>,
    /// The request's last write is committed (sent alone or with the
    /// transaction's `COMMIT`): nothing of the request is left to roll back.
    committed: bool,
    /// Root fields begun so far.
    fields_run: usize,
    /// A field failed: the transaction is to be rolled back.
    failed: bool,
    /// Each field's audit row, with its own error.
    audits: Vec<(Audit, Option<ApiError>)>,
}

impl Inner {
    /// The keys of the rows of `target` the request's fields so far
    /// inserted or updated (they are candidates of a later `where`, which
    /// the engine reads outside the transaction).
    fn written(&self, target: &Target) -> &[Vec<Value>] {
        self.tx.as_ref().map_or(&[], |tx| tx.written(target))
    }

    /// The source the request writes to, once known.
    fn source(&self) -> Option<&str> {
        match (&self.tx, self.held.first()) {
            (Some(tx), _) => Some(tx.source()),
            (None, Some(held)) => Some(&held.target.collection.table.source),
            (None, None) => None,
        }
    }

    /// Sends the held-back writes in the transaction, in order, keeping
    /// their answers; `false` when one failed (its error is kept, the
    /// transaction is to be rolled back, and the fields after it do not
    /// run).
    async fn send_held(&mut self, state: &AppState) -> bool {
        for held in std::mem::take(&mut self.held) {
            // The fields after a failed one do not run.
            if self.failed {
                break;
            }
            let (caller, target) = (&held.caller, &held.target);
            let written = self
                .write(state, caller, target, Ok(held.planned), held.audit, false)
                .await;
            match written.and_then(|(_, records)| answer_row(&held.row, records.first())) {
                Ok(answer) => self.answers.push((held.key, answer)),
                Err(error) => {
                    self.failed = true;
                    self.errors.push(held_error(error, held.error_at));
                }
            }
        }
        !self.failed
    }

    /// Sends the held-back writes as the transaction's last, with its
    /// `COMMIT` (one round trip), keeping their answers and audit rows;
    /// the failure, placed at its field in `response`, if one failed.
    async fn send_last(
        &mut self,
        state: &AppState,
        mut held: Vec<Held>,
        response: &mut async_graphql::Response,
    ) -> Option<ApiError> {
        // One request, one caller.
        let caller = held.first()?.caller.clone();
        let mut writes: Vec<LastWrite<'_>> = held
            .iter_mut()
            .map(|h| LastWrite {
                target: &h.target,
                planned: &h.planned,
                audit: &mut h.audit,
            })
            .collect();
        let done = writer::apply_all_last(state, &caller, self.tx.take(), &mut writes).await;
        drop(writes);
        let (at, error) = match done {
            Ok(done) => {
                self.committed = true;
                let mut failure = None;
                for (held, (_, records)) in held.into_iter().zip(done) {
                    match answer_row(&held.row, records.first()) {
                        Ok(answer) => self.answers.push((held.key, answer)),
                        Err(error) => {
                            response
                                .errors
                                .push(held_error(error.clone(), held.error_at));
                            failure = Some(error);
                        }
                    }
                    self.audits.push((held.audit, None));
                }
                return failure;
            }
            Err(failed) => failed,
        };
        let placed = match at.and_then(|at| held.get(at)) {
            Some(failed) => held_error(error.clone(), failed.error_at.clone()),
            None => field_error(error.clone()).into_server_error(Pos::default()),
        };
        response.errors.push(placed);
        for (i, held) in held.into_iter().enumerate() {
            match at {
                // The fields after the failed one did not run.
                Some(at) if i > at => {}
                Some(at) if i == at => self.audits.push((held.audit, Some(error.clone()))),
                _ => self.audits.push((held.audit, None)),
            }
        }
        Some(error)
    }

    /// Runs a field's planned write and keeps its audit row; a failure
    /// (planning or writing) marks the transaction for rollback.
    pub(super) async fn write(
        &mut self,
        state: &AppState,
        caller: &Caller,
        target: &Target,
        planned: Result<Planned, ApiError>,
        mut audit: Audit,
        last: bool,
    ) -> Result<(u64, Vec<Record>), ApiError> {
        let result = match planned {
            Ok(planned) => {
                self.apply(state, caller, target, &planned, &mut audit, last)
                    .await
            }
            Err(error) => Err(error),
        };
        match result {
            Ok(done) => {
                self.audits.push((audit, None));
                Ok(done)
            }
            Err(error) => {
                self.failed = true;
                // Writes held back before it never go out: rolled back.
                let held = std::mem::take(&mut self.held);
                self.audits
                    .extend(held.into_iter().map(|h| (h.audit, None)));
                self.audits.push((audit, Some(error.clone())));
                Err(error)
            }
        }
    }

    /// Runs a planned write in the request's transaction, begun on the
    /// first write. A second source is refused: one request is one
    /// transaction, and a transaction cannot span two databases. With
    /// `last` (the request's last write, nothing to fail after it) a lone
    /// statement goes to the source as the REST API sends it, or with the
    /// transaction's `COMMIT`.
    async fn apply(
        &mut self,
        state: &AppState,
        caller: &Caller,
        target: &Target,
        planned: &Planned,
        audit: &mut Audit,
        last: bool,
    ) -> Result<(u64, Vec<Record>), ApiError> {
        if planned.is_empty() {
            return Ok((0, Vec::new()));
        }
        let source = &target.collection.table.source;
        if last && planned.is_lone_unchecked() {
            let done = match self.tx.take() {
                None => writer::apply_alone(state, caller, target, planned, audit).await,
                Some(tx) if tx.source() == source => {
                    tx.apply_last(state, caller, target, planned, audit).await
                }
                Some(tx) => {
                    let refused = Err(other_source(target, tx.source()));
                    self.tx = Some(tx);
                    return refused;
                }
            };
            self.committed = done.is_ok();
            return done;
        }
        let tx = match &mut self.tx {
            Some(tx) if tx.source() == source => tx,
            Some(tx) => return Err(other_source(target, tx.source())),
            None => self.tx.insert(Transaction::begin(state, target).await?),
        };
        tx.apply(state, caller, target, planned, audit).await
    }
}

/// The mutation a root field named `name` is when it answers a row
/// (`insert_x_one`, `update_x_by_pk`, `delete_x_by_pk`), and its
/// collection; `None` for any other field, and for a name two collections
/// could own (`insert_a_one` when `a_one` is one too).
pub(super) fn row_field<'s>(name: &str, shapes: &'s Shapes) -> Option<(&'s Arc<Shape>, Kind)> {
    let (x, other, kind) = if let Some(rest) = name.strip_prefix("insert_") {
        (rest.strip_suffix("_one")?, rest, Kind::Insert { one: true })
    } else if let Some(rest) = name.strip_prefix("update_") {
        (
            rest.strip_suffix("_by_pk")?,
            rest,
            Kind::Update { by_pk: true },
        )
    } else {
        let rest = name.strip_prefix("delete_")?;
        (
            rest.strip_suffix("_by_pk")?,
            rest,
            Kind::Delete { by_pk: true },
        )
    };
    if shapes.get(other).is_some() {
        return None;
    }
    shapes.get(x).map(|shape| (shape, kind))
}

/// A root field of a plain mutation whose plan is kept (`compiled`), its
/// arguments filled in for this request.
pub(super) struct RowWrite<'p> {
    pub shape: &'p Shape,
    pub kind: Kind,
    pub args: Arguments,
    /// Its response key, and where it is in the document (for its error).
    pub key: &'p str,
    pub at: Pos,
    pub row: &'p Arc<WrittenRow>,
}

/// How a plan's mutation went.
pub(super) enum Outcome {
    /// Written and committed, or rolled back and answered with the error,
    /// as [`Session::finish`] answers when the executor ran the fields.
    Answered(Box<async_graphql::Response>),
    /// A field's arguments were refused when planning it: nothing was
    /// written, the executor runs the request (and reports the error).
    Refused,
    /// A field is not a lone unchecked write (the role's rules check or
    /// read its rows), or the fields write to two sources: the executor
    /// runs this document from now on.
    NotHeld,
}

/// Answers a plain mutation from its plan: each field planned as
/// [`mutate`] plans it, and all of them held back ([`Held`]) to go out
/// with the `COMMIT`, then finished as the executor's session finishes —
/// the same statements, answer and audit rows, without async-graphql's
/// executor. Only when every field can be held; nothing is written
/// otherwise.
pub(super) async fn answer_planned(
    state: &AppState,
    principal: &Principal,
    shapes: &Shapes,
    fields: Vec<RowWrite<'_>>,
) -> Outcome {
    let caller = principal.caller();
    let mut held = Vec::with_capacity(fields.len());
    let mut keys = async_graphql::indexmap::IndexMap::with_capacity(fields.len());
    for field in fields {
        let Ok(target) = Target::resolve(state, &field.shape.name) else {
            return Outcome::Refused;
        };
        let source = &target.collection.table.source;
        if held
            .first()
            .is_some_and(|h: &Held| h.target.collection.table.source != *source)
        {
            return Outcome::NotHeld;
        }
        let Ok(connector) = state.sources.connector(source) else {
            return Outcome::Refused;
        };
        let (shape, kind) = (field.shape, field.kind);
        if matches!(kind, Kind::Insert { .. }) && nests_rows(&field.args, shape) {
            return Outcome::NotHeld;
        }
        let mut audit = Audit::new(principal, &target, field.kind.operation());
        let planned = Box::pin(plan(
            &field.args,
            state,
            principal,
            &target,
            shape,
            shapes,
            kind,
            // Nothing written yet: no transaction.
            &mut Inner::default(),
            &mut audit,
        ))
        .await;
        let Ok(mut planned) = planned else {
            return Outcome::Refused;
        };
        if !planned.is_lone_unchecked() || planned.read_rows() {
            return Outcome::NotHeld;
        }
        planned.return_only(&target, |column| field.row.reads(column));
        audit.planned(connector.as_ref(), &planned);
        let mut error_at = ServerError::new(String::new(), Some(field.at));
        error_at.path = vec![async_graphql::PathSegment::Field(field.key.to_string())];
        keys.insert(Name::new(field.key), GqlValue::Null);
        held.push(Held {
            target,
            caller: caller.clone(),
            planned,
            audit,
            key: Name::new(field.key),
            row: field.row.clone(),
            error_at,
        });
    }
    let session = Session {
        root_fields: held.len(),
        holds_back: true,
        inner: Mutex::new(Inner {
            fields_run: held.len(),
            held,
            ..Inner::default()
        }),
    };
    let mut response = async_graphql::Response::new(GqlValue::Object(keys));
    session.finish(state, &mut response).await;
    Outcome::Answered(Box::new(response))
}

/// The refusal of a write to another source than the transaction's.
fn other_source(target: &Target, source: &str) -> ApiError {
    ApiError::bad_request(format!(
        "one mutation request writes to one source, in one transaction: `{}` is on `{}`, while \
         this request already wrote to `{source}`; send it as a request of its own",
        target.name(),
        target.collection.table.source,
    ))
}

/// A root field's lone write whose rows no rule checks, answering a row
/// of columns ([`WrittenRow`]): nothing reads what it writes before the
/// request ends, so it waits, and the request's last writes go out with
/// `COMMIT` at once — one round trip for a request of such fields. A write
/// that cannot wait (it reads rows, is checked, or answers more) sends
/// the held ones first, in order.
struct Held {
    target: Target,
    caller: Caller,
    planned: Planned,
    audit: Audit,
    /// The field's response key, where its answer goes.
    key: Name,
    row: Arc<WrittenRow>,
    /// The field's place, for its error.
    error_at: ServerError,
}

/// The answer to a held-back write's field.
fn answer_row(row: &WrittenRow, record: Option<&Record>) -> Result<GqlValue, ApiError> {
    row.answer(record)
        .ok_or_else(|| ApiError::internal("a written value does not fit its GraphQL type"))
}

/// A held-back write's error, placed at its field.
fn held_error(error: ApiError, at: ServerError) -> ServerError {
    ServerError {
        path: at.path,
        ..field_error(error).into_server_error(at.locations.first().copied().unwrap_or_default())
    }
}

impl Session {
    /// The session of a request whose document is parsed.
    pub fn for_request(request: &mut async_graphql::Request) -> Self {
        use async_graphql::parser::types::{OperationType, Selection};
        let (root_fields, holds_back) = super::operation(request).map_or((0, false), |operation| {
            let items = &operation.selection_set.node.items;
            let mut keys = Vec::with_capacity(items.len());
            let mut own_keys = true;
            let plain = items.iter().all(|item| match &item.node {
                Selection::Field(f) if f.node.directives.is_empty() => {
                    let key = f.node.response_key().node.as_str();
                    own_keys &= !keys.contains(&key);
                    keys.push(key);
                    true
                }
                _ => false,
            });
            if operation.ty == OperationType::Mutation && plain {
                (items.len(), own_keys)
            } else {
                (0, false)
            }
        });
        Self {
            inner: Mutex::default(),
            root_fields,
            holds_back,
        }
    }

    /// Whether the request runs a mutation (`false` also when its document
    /// does not parse: running it reports that).
    pub fn is_mutation(request: &mut async_graphql::Request) -> bool {
        super::operation(request)
            .is_some_and(|o| o.ty == async_graphql::parser::types::OperationType::Mutation)
    }

    /// Ends the request: commits when every field succeeded and the
    /// response has no error, else rolls back and answers `data: null`;
    /// then writes the audit rows with the outcome.
    pub async fn finish(&self, state: &AppState, response: &mut async_graphql::Response) {
        let mut inner = std::mem::take(&mut *self.inner.lock().await);
        response.errors.append(&mut inner.errors);
        if inner.audits.is_empty() && inner.held.is_empty() {
            return;
        }
        let mut failure: Option<ApiError> = inner.audits.iter().find_map(|(_, e)| e.clone());
        if failure.is_none()
            && let Some(error) = response.errors.first()
        {
            failure = Some(ApiError::bad_request(error.message.clone()));
        }
        let held = std::mem::take(&mut inner.held);
        if failure.is_none() && !held.is_empty() {
            failure = inner.send_last(state, held, response).await;
        } else {
            // They never went out: rolled back with the rest.
            inner
                .audits
                .extend(held.into_iter().map(|h| (h.audit, None)));
        }
        match (inner.tx, &failure) {
            (Some(tx), None) => {
                if let Err(error) = tx.commit().await {
                    response
                        .errors
                        .push(field_error(error.clone()).into_server_error(Pos::default()));
                    failure = Some(error);
                }
            }
            (Some(tx), Some(_)) => tx.rollback().await,
            (None, _) => {}
        }
        if failure.is_some() {
            response.data = GqlValue::Null;
        } else if let GqlValue::Object(data) = &mut response.data {
            for (key, answer) in inner.answers {
                if let Some(slot) = data.get_mut(&key) {
                    *slot = answer;
                }
            }
        }
        let entries = inner
            .audits
            .into_iter()
            .map(|(mut audit, own)| match (own, &failure) {
                (Some(error), _) => audit.into_entry(error.status.as_u16(), Some(&error.message)),
                (None, None) => audit.into_entry(200, None),
                (None, Some(_)) if inner.committed => audit.into_entry(200, None),
                (None, Some(cause)) => {
                    audit.note("rolled_back", Json::Bool(true));
                    let message = format!("rolled back: {}", cause.message);
                    audit.into_entry(cause.status.as_u16(), Some(&message))
                }
            })
            .collect();
        crate::audit::record_all(state, entries).await;
    }
}
