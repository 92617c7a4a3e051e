//! Plain queries compiled. Clients send the same few documents with new
//! variables; most light ones are queries of rows (`x`, `x_by_pk`) and
//! their relationships. Such a document, once it ran without an error, is
//! kept per role schema as a [`Plan`]: each root field's read, its
//! selection and how its answer is written. A request sending it again is
//! answered from the plan — the same reads (`resolve::list_rows`,
//! `resolve::by_pk_row`) and the same writing (`render::Written`) —
//! without parsing, validating and executing it through async-graphql, a
//! good part of a light request's cost.
//!
//! A plan holds no variable except as a root `x_by_pk`'s key argument
//! (so the reads it plans are the same for every request), and a request
//! takes the plan only when each such value is one validation accepts for
//! the variable's type. Anything else — a read that fails, a value that
//! does not fit its type — is answered by async-graphql, which reports it
//! as it always does: a plan answers only what async-graphql would answer
//! the same way (but for its root fields' order, the document's).

use std::sync::Arc;

use async_graphql::parser::types::{BaseType, ExecutableDocument, Field, OperationType, Selection};
use async_graphql::registry::Registry;
use async_graphql::{Name, Value as GqlValue};
use serde_json::Value;

use super::arguments::Places;
use super::bounded::{self, Bounded};
use super::render::{Answer, Answered, Level, Written};
use super::resolve;
use super::selection::Selected;
use super::shape::{Shape, Shapes};
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

    /// Forgets `request`'s document.
    pub fn forget(&self, request: &async_graphql::Request) {
        self.known.update(request.query.clone(), |operations| {
            if let Some(known) = operations {
                known.retain(|(operation, _)| *operation != request.operation_name);
            }
        });
    }
}

/// How a plain query's document is answered.
pub struct Plan {
    roots: Vec<Root>,
    /// The operation's variables: each one's type name, and its default.
    variables: Vec<Variable>,
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
        if operation.ty != OperationType::Query || !operation.directives.is_empty() {
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
        let mut roots: Vec<Root> = Vec::new();
        let mut keys: Vec<&str> = Vec::new();
        for item in &operation.selection_set.node.items {
            let Selection::Field(field) = &item.node else {
                return None;
            };
            let field = &field.node;
            // Each answer goes back under a key of its own.
            let key = field.response_key().node.as_str();
            if keys.contains(&key) {
                return None;
            }
            keys.push(key);
            roots.push(Root::compile(field, &variables, shapes, limits)?);
        }
        Some(Self { roots, variables })
    }

    /// The answer to a request sending the plan's document with
    /// `variables` (`None`: one async-graphql gives, see the module's
    /// documentation). The root fields are read at once, as async-graphql
    /// reads them, and answered in the document's order.
    pub async fn answer(
        &self,
        state: &AppState,
        caller: &Caller,
        shapes: &Shapes,
        registry: &Registry,
        variables: &async_graphql::Variables,
    ) -> Option<Answered> {
        let answers = self
            .roots
            .iter()
            .map(|root| self.root(root, state, caller, shapes, registry, variables));
        let written = futures::future::join_all(answers)
            .await
            .into_iter()
            .collect::<Option<Vec<_>>>()?;
        Some(Answered::written(written))
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
        let name = match given {
            Given::Value(value) => return Some(value.clone()),
            Given::Variable(name) => name,
        };
        let variable = self.variables.iter().find(|v| v.name == *name)?;
        let value = match variables.get(name) {
            Some(value) if super::validated::valid(registry, &variable.type_name, value) => value,
            Some(_) => return None,
            None => variable.default.as_ref()?,
        };
        value.clone().into_json().ok()
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
