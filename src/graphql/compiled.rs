//! Plain documents compiled. Clients send the same few documents with new
//! variables; most light ones are queries of rows (`x`, `x_by_pk`) and
//! their relationships, or mutations of rows by key. Such a document, once
//! it ran without an error, is kept per role schema as a [`Plan`]: each
//! root field's read or write, its selection and how its answer is
//! written. A request sending it again is answered from the plan — the
//! same reads (`resolve::list_rows`, `resolve::by_pk_row`), writes
//! (`mutation::answer_planned`) and writing of the answer — without
//! parsing, validating and executing it through async-graphql, a good part
//! of a light request's cost.
//!
//! A query's plan holds no variable except as a root `x_by_pk`'s key
//! argument (so the reads it plans are the same for every request). A
//! mutation's plan is of fields answering a row of columns
//! (`insert_x_one`, `update_x_by_pk`, `delete_x_by_pk`), whose arguments
//! may read the operation's variables anywhere. A request takes the plan
//! only when each variable's value is one validation accepts for the
//! variable's type. Anything else — a read that fails, an argument a write
//! refuses, a value that does not fit its type — is answered by
//! async-graphql, which reports it as it always does: a plan answers only
//! what async-graphql would answer the same way (but for its root fields'
//! order, the document's). A mutation whose writes cannot all wait for
//! the `COMMIT` (the role's rules check them) is left to async-graphql for
//! good, before anything is written.

use std::sync::Arc;

use async_graphql::parser::types::{BaseType, ExecutableDocument, Field, OperationType, Selection};
use async_graphql::registry::Registry;
use async_graphql::{Name, Pos, Value as GqlValue};
use async_graphql_value::Value as InputValue;
use serde_json::Value;

use super::arguments::Places;
use super::bounded::{self, Bounded};
use super::mutation::{self, Arguments};
use super::render::{Answer, Answered, Level, Written, WrittenRow};
use super::resolve;
use super::selection::Selected;
use super::shape::{Shape, Shapes};
use crate::auth::Principal;
use crate::config::GraphqlConfig;
use crate::engine::Caller;
use crate::rest::read::ReadRequest;
use crate::state::AppState;

/// The plans of one role's schema, by document text, then by the
/// operation asked for (`None`: the document is not one a plan can
/// answer, so it is not looked at again).
#[derive(Default)]
pub struct Plans {
    known: Bounded<String, Vec<Known>>,
}

type Known = (Option<String>, Option<Arc<Plan>>);

impl Plans {
    /// The plan for `request`'s document: `Some(None)` when it has none,
    /// `None` when the document is not known yet.
    pub fn get(&self, request: &async_graphql::Request) -> Option<Option<Arc<Plan>>> {
        if request.query.len() > bounded::MAX_TEXT {
            return Some(None);
        }
        self.known
            .read(&request.query, |operations| {
                operations
                    .iter()
                    .find(|(operation, _)| *operation == request.operation_name)
                    .map(|(_, plan)| plan.clone())
            })
            .flatten()
    }

    /// Remembers what the document `query` compiles to for `operation`.
    pub fn learn(&self, query: String, operation: Option<String>, plan: Option<Plan>) {
        self.known.update(query, |operations| {
            let operations = operations.get_or_insert_default();
            operations.retain(|(known, _)| *known != operation);
            operations.push((operation, plan.map(Arc::new)));
        });
    }

    /// Marks `request`'s document as one no plan answers.
    pub fn refuse(&self, request: &async_graphql::Request) {
        let (query, operation) = (request.query.clone(), request.operation_name.clone());
        self.learn(query, operation, None);
    }

    /// Forgets `request`'s document.
    pub fn forget(&self, request: &async_graphql::Request) {
        self.known.update(request.query.clone(), |operations| {
            if let Some(known) = operations {
                known.retain(|(operation, _)| *operation != request.operation_name);
            }
        });
    }
}

/// How a plain document is answered.
pub struct Plan {
    fields: Fields,
    /// The operation's variables: each one's type name, and its default.
    variables: Vec<Variable>,
}

/// A plan's root fields.
enum Fields {
    /// A query's reads.
    Reads(Vec<Root>),
    /// A mutation's writes.
    Writes(Vec<Write>),
}

/// What came of answering a request from its plan.
pub enum Reply {
    Answered(Box<Answered>),
    /// async-graphql answers this request instead (see the module's
    /// documentation); the plan is forgotten, and kept again once the
    /// document answers without an error.
    Executor,
    /// async-graphql answers, and from now on answers this document: a
    /// mutation the role's rules check, or writing to two sources.
    Never,
}

struct Variable {
    name: Name,
    type_name: Name,
    default: Option<GqlValue>,
}

/// A root field of a plan.
struct Root {
    shape: Arc<Shape>,
    field: Selected,
    level: Arc<Level>,
    read: Read,
}

enum Read {
    /// `x(...)`: the read its arguments make.
    List(Box<(ReadRequest, Places)>),
    /// `x_by_pk(...)`: each key column and where its value is.
    ByPk(Vec<(String, Given)>),
}

/// A root field of a plain mutation: one answering a row of columns
/// (`insert_x_one`, `update_x_by_pk`, `delete_x_by_pk`).
struct Write {
    shape: Arc<Shape>,
    kind: mutation::Kind,
    /// Its response key, and where it is in the document.
    key: String,
    at: Pos,
    /// Its arguments as written, variables and all.
    arguments: Vec<(Name, InputValue)>,
    row: Arc<WrittenRow>,
}

/// A key value: written in the document, or a variable's.
enum Given {
    Value(Value),
    Variable(Name),
}

impl Plan {
    /// The plan of `document`'s operation `operation` (`None`: not a plain
    /// query of rows, or one whose arguments are not all in the document).
    pub fn compile(
        document: &ExecutableDocument,
        operation: Option<&str>,
        shapes: &Shapes,
        limits: &GraphqlConfig,
    ) -> Option<Self> {
        let operation = &super::chosen(document, operation)?.node;
        if operation.ty == OperationType::Subscription || !operation.directives.is_empty() {
            return None;
        }
        let variables = operation
            .variable_definitions
            .iter()
            .map(|definition| {
                let definition = &definition.node;
                let BaseType::Named(type_name) = &definition.var_type.node.base else {
                    return None;
                };
                Some(Variable {
                    name: definition.name.node.clone(),
                    type_name: type_name.clone(),
                    default: definition.default_value.as_ref().map(|v| v.node.clone()),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let mutation = operation.ty == OperationType::Mutation;
        let (mut roots, mut writes) = (Vec::new(), Vec::new());
        let mut keys: Vec<&str> = Vec::new();
        for item in &operation.selection_set.node.items {
            let Selection::Field(field) = &item.node else {
                return None;
            };
            let (at, field) = (field.pos, &field.node);
            // Each answer goes back under a key of its own.
            let key = field.response_key().node.as_str();
            if keys.contains(&key) {
                return None;
            }
            keys.push(key);
            if mutation {
                writes.push(Write::compile(field, at, &variables, shapes)?);
            } else {
                roots.push(Root::compile(field, &variables, shapes, limits)?);
            }
        }
        let fields = if mutation {
            Fields::Writes(writes)
        } else {
            Fields::Reads(roots)
        };
        Some(Self { fields, variables })
    }

    /// The answer to a request sending the plan's document with
    /// `variables`. A query's root fields are read at once, as
    /// async-graphql reads them, and answered in the document's order; a
    /// mutation's fields go out together with the `COMMIT`
    /// ([`mutation::answer_planned`]).
    pub async fn answer(
        &self,
        state: &AppState,
        principal: &Principal,
        shapes: &Shapes,
        registry: &Registry,
        variables: &async_graphql::Variables,
    ) -> Reply {
        let writes = match &self.fields {
            Fields::Reads(roots) => {
                let caller = principal.caller();
                let answers = roots
                    .iter()
                    .map(|root| self.root(root, state, &caller, shapes, registry, variables));
                let written = futures::future::join_all(answers).await;
                return match written.into_iter().collect::<Option<Vec<_>>>() {
                    Some(written) => Reply::Answered(Box::new(Answered::written(written))),
                    None => Reply::Executor,
                };
            }
            Fields::Writes(writes) => writes,
        };
        let mut fields = Vec::with_capacity(writes.len());
        for write in writes {
            let mut args = Arguments::with_capacity(write.arguments.len());
            for (name, value) in &write.arguments {
                let filled = value
                    .clone()
                    .into_const_with(|name| self.variable(&name, registry, variables).ok_or(()));
                let Ok(filled) = filled else {
                    return Reply::Executor;
                };
                args.insert(name.clone(), filled);
            }
            fields.push(mutation::RowWrite {
                shape: &write.shape,
                kind: write.kind,
                args,
                key: &write.key,
                at: write.at,
                row: &write.row,
            });
        }
        match mutation::answer_planned(state, principal, shapes, fields).await {
            mutation::Outcome::Answered(response) => Reply::Answered(Box::new((*response).into())),
            mutation::Outcome::Refused => Reply::Executor,
            mutation::Outcome::NotHeld => Reply::Never,
        }
    }

    /// One root field's answer.
    async fn root(
        &self,
        root: &Root,
        state: &AppState,
        caller: &Caller,
        shapes: &Shapes,
        registry: &Registry,
        variables: &async_graphql::Variables,
    ) -> Option<(Name, Written)> {
        let rows = match &root.read {
            Read::List(list) => Answer::Rows(
                resolve::list_rows(
                    state,
                    caller,
                    &root.field,
                    &root.shape,
                    shapes,
                    &list.0,
                    &list.1,
                )
                .await
                .ok()?,
            ),
            Read::ByPk(key) => {
                let mut values = Vec::with_capacity(key.len());
                for (column, given) in key {
                    values.push((column.clone(), self.value(given, registry, variables)?));
                }
                Answer::Row(
                    resolve::by_pk_row(state, caller, &root.field, &root.shape, shapes, values)
                        .await
                        .ok()?,
                )
            }
        };
        let answer = Written::of(root.level.clone(), rows).ok()?;
        Some((Name::new(root.field.key()), answer))
    }

    /// A key's value: as written, or the variable's when validation
    /// accepts it for the variable's type (its default when not given).
    fn value(
        &self,
        given: &Given,
        registry: &Registry,
        variables: &async_graphql::Variables,
    ) -> Option<Value> {
        match given {
            Given::Value(value) => Some(value.clone()),
            Given::Variable(name) => self.variable(name, registry, variables)?.into_json().ok(),
        }
    }

    /// A variable's value when validation accepts it for the variable's
    /// type (its default when not given).
    fn variable(
        &self,
        name: &str,
        registry: &Registry,
        variables: &async_graphql::Variables,
    ) -> Option<GqlValue> {
        let variable = self.variables.iter().find(|v| v.name == name)?;
        let value = match variables.get(name) {
            Some(value) if super::validated::valid(registry, &variable.type_name, value) => value,
            Some(_) => return None,
            None => variable.default.as_ref()?,
        };
        Some(value.clone())
    }
}

impl Write {
    fn compile(field: &Field, at: Pos, variables: &[Variable], shapes: &Shapes) -> Option<Self> {
        if !field.directives.is_empty() {
            return None;
        }
        let (shape, kind) = mutation::row_field(field.name.node.as_str(), shapes)?;
        let mut arguments = Vec::with_capacity(field.arguments.len());
        for (name, value) in &field.arguments {
            // Every variable it reads is one of the operation's (and so
            // checked against its type when filled in).
            let declared = value.node.clone().into_const_with(|variable| {
                if variables.iter().any(|v| v.name == variable) {
                    Ok(GqlValue::Null)
                } else {
                    Err(())
                }
            });
            declared.ok()?;
            arguments.push((name.node.clone(), value.node.clone()));
        }
        // Its arguments are filled in per request; its selection has none.
        let bare = Field {
            arguments: Vec::new(),
            ..field.clone()
        };
        let row = WrittenRow::of(&Selected::of_document(&bare)?, shape, shapes)?;
        Some(Self {
            shape: shape.clone(),
            kind,
            key: field.response_key().node.to_string(),
            at,
            arguments,
            row: Arc::new(row),
        })
    }
}

impl Root {
    fn compile(
        field: &Field,
        variables: &[Variable],
        shapes: &Shapes,
        limits: &GraphqlConfig,
    ) -> Option<Self> {
        let name = field.name.node.as_str();
        let list = shapes.get(name).filter(|shape| shape.select);
        let by_pk = name
            .strip_suffix("_by_pk")
            .and_then(|x| shapes.get(x))
            .filter(|shape| shape.select && shape.primary_key.is_some());
        let (shape, read, selected) = match (list, by_pk) {
            (Some(shape), None) => {
                let selected = Selected::of_document(field)?;
                let (request, places) =
                    resolve::list_request(&selected, shape, shapes, limits).ok()?;
                (shape, Read::List(Box::new((request, places))), selected)
            }
            (None, Some(shape)) => {
                let mut key = Vec::new();
                for column in shape.primary_key.as_deref().unwrap_or_default() {
                    let (_, value) = field
                        .arguments
                        .iter()
                        .find(|(name, _)| name.node == column.name)?;
                    let given = match &value.node {
                        async_graphql_value::Value::Variable(name) => {
                            variables.iter().any(|v| v.name == *name).then_some(())?;
                            Given::Variable(name.clone())
                        }
                        value => Given::Value(value.clone().into_const()?.into_json().ok()?),
                    };
                    key.push((column.name.clone(), given));
                }
                // Its key arguments read as above; its selection has none.
                let bare = Field {
                    arguments: Vec::new(),
                    ..field.clone()
                };
                (shape, Read::ByPk(key), Selected::of_document(&bare)?)
            }
            // Not a read of rows, or a name two ways could read.
            _ => return None,
        };
        let level = Level::of(&selected, shape, shapes)?;
        Some(Self {
            shape: shape.clone(),
            field: selected,
            level: Arc::new(level),
            read,
        })
    }
}
