//! Validation once per document: a schema's documents that passed
//! validation are remembered (by text and operation name), and a request
//! sending one again skips async-graphql's validation rules — a good part
//! of a light request, since clients send the same few documents with new
//! variables.
//!
//! Validation depends on the variables' values in one place only: an
//! argument given a variable is checked with the value substituted
//! (`ArgumentsOfCorrectType`). Everything else — the fields, the argument
//! names, the variables' types and where they are used, the depth and
//! complexity limits — is the document's. So a document is remembered only
//! when each of its variables is of a scalar or enum type (where a variable
//! may be used is already checked against its declared type), and a
//! request takes the remembered result only when each value it gives is
//! valid for that type as the registry says (the same test the rule makes);
//! a null, a list, an input object or an invalid value is validated in full
//! as ever, with the rule's own error. A schema is built anew when the
//! catalog or permissions change, and with it this cache.

use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest, NextValidation,
};
use async_graphql::parser::types::{BaseType, ExecutableDocument};
use async_graphql::registry::{MetaType, Registry};
use async_graphql::{Name, Request, ServerError, ServerResult, ValidationResult, Value, Variables};

use super::bounded::{self, Bounded};

/// The extension, registered on each schema: the documents it validated.
#[derive(Default)]
pub struct Validated {
    documents: Remembered,
}

/// A document's text and the operation asked for.
type Key = (String, Option<String>);

/// The documents that passed validation, shared by a schema's requests.
type Remembered = Arc<Bounded<Key, Arc<Document>>>;

/// A document that passed validation.
struct Document {
    /// Each variable and its type's name (a scalar or an enum).
    variables: Vec<(Name, Name)>,
    result: ValidationResult,
}

impl ExtensionFactory for Validated {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ForRequest {
            documents: self.documents.clone(),
            step: Mutex::new(Step::Validate),
        })
    }
}

/// The extension's state for one request.
struct ForRequest {
    documents: Remembered,
    step: Mutex<Step>,
}

/// What validation does for the request.
enum Step {
    /// Validate, as always.
    Validate,
    /// Validated before, and the values are valid: the result.
    Known(ValidationResult),
    /// Validate, and remember the document if it passes.
    Remember(Key, Vec<(Name, Name)>),
}

#[async_trait::async_trait]
impl Extension for ForRequest {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        if request.query.len() <= bounded::MAX_TEXT {
            let step = self.step_for(&ctx.schema_env.registry, &mut request);
            *self.step.lock().unwrap_or_else(PoisonError::into_inner) = step;
        }
        next.run(ctx, request).await
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let step = std::mem::replace(
            &mut *self.step.lock().unwrap_or_else(PoisonError::into_inner),
            Step::Validate,
        );
        match step {
            Step::Known(result) => Ok(result),
            Step::Validate => next.run(ctx).await,
            Step::Remember(key, variables) => {
                let result = next.run(ctx).await?;
                self.documents
                    .insert(key, Arc::new(Document { variables, result }));
                Ok(result)
            }
        }
    }
}

impl ForRequest {
    fn step_for(&self, registry: &Registry, request: &mut Request) -> Step {
        let key = (request.query.clone(), request.operation_name.clone());
        let known = self.documents.get(&key);
        if let Some(document) = known {
            return if document.accepts(registry, &request.variables) {
                Step::Known(document.result)
            } else {
                Step::Validate
            };
        }
        let operation = key.1.clone();
        match request
            .parsed_query()
            .ok()
            .and_then(|document| variables(registry, document, operation.as_deref()))
        {
            Some(variables) => Step::Remember(key, variables),
            None => Step::Validate,
        }
    }
}

impl Document {
    /// Whether each value given is one validation would accept. A variable
    /// not given is not checked by validation either (its default was).
    fn accepts(&self, registry: &Registry, values: &Variables) -> bool {
        self.variables.iter().all(|(name, type_name)| {
            values
                .get(name)
                .is_none_or(|value| valid(registry, type_name, value))
        })
    }
}

/// The variables of the operation asked for, each with its type's name,
/// when every one is of a scalar or enum type (None otherwise, or when the
/// operation is not there: validation reports that).
fn variables(
    registry: &Registry,
    document: &ExecutableDocument,
    operation: Option<&str>,
) -> Option<Vec<(Name, Name)>> {
    super::chosen(document, operation)?
        .node
        .variable_definitions
        .iter()
        .map(|definition| {
            let BaseType::Named(type_name) = &definition.node.var_type.node.base else {
                return None;
            };
            matches!(
                registry.types.get(type_name.as_str()),
                Some(MetaType::Scalar { .. } | MetaType::Enum { .. })
            )
            .then(|| (definition.node.name.node.clone(), type_name.clone()))
        })
        .collect()
}

/// Whether `value` is valid for the scalar or enum `type_name`, as
/// validation tests it; a null is left to validation (whether it may be
/// null depends on where the variable is used).
pub(super) fn valid(registry: &Registry, type_name: &str, value: &Value) -> bool {
    match (registry.types.get(type_name), value) {
        (_, Value::Null) => false,
        (Some(MetaType::Scalar { is_valid, .. }), value) => {
            is_valid.as_ref().is_none_or(|is_valid| is_valid(value))
        }
        (Some(MetaType::Enum { enum_values, .. }), Value::Enum(name)) => {
            enum_values.contains_key(name.as_str())
        }
        (Some(MetaType::Enum { enum_values, .. }), Value::String(name)) => {
            enum_values.contains_key(name.as_str())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::dynamic::{Enum, Field, FieldFuture, InputValue, Object, Schema, TypeRef};
    use serde_json::json;

    use super::*;

    /// `echo(k: Int!, e: color, l: [Int!])`: answers `k`.
    fn schema() -> (Schema, Remembered) {
        let echo = Field::new("echo", TypeRef::named_nn(TypeRef::INT), |ctx| {
            FieldFuture::new(async move { Ok(Some(Value::from(ctx.args.try_get("k")?.i64()?))) })
        })
        .argument(InputValue::new("k", TypeRef::named_nn(TypeRef::INT)))
        .argument(InputValue::new("e", TypeRef::named("color")))
        .argument(InputValue::new("l", TypeRef::named_nn_list(TypeRef::INT)));
        let validated = Validated::default();
        let documents = validated.documents.clone();
        let schema = Schema::build("Query", None, None)
            .register(Object::new("Query").field(echo))
            .register(Enum::new("color").items(["red", "blue"]))
            .extension(validated)
            .finish()
            .unwrap();
        (schema, documents)
    }

    async fn run(schema: &Schema, query: &str, variables: serde_json::Value) -> serde_json::Value {
        let request = Request::new(query).variables(Variables::from_json(variables));
        serde_json::to_value(schema.execute(request).await).unwrap()
    }

    const QUERY: &str = "query($k: Int!, $e: color) { echo(k: $k, e: $e) }";

    #[tokio::test]
    async fn a_document_is_validated_once_and_each_value_still_checked() {
        let (schema, documents) = schema();
        let first = run(&schema, QUERY, json!({"k": 1, "e": "red"})).await;
        assert_eq!(first["data"], json!({"echo": 1}), "{first}");
        assert!(documents.get(&(QUERY.to_string(), None)).is_some());
        // Values validation would refuse are refused as it does.
        for bad in [
            json!({"k": "one"}),
            json!({"k": null}),
            json!({"k": 1.5}),
            json!({"k": 1, "e": "green"}),
        ] {
            let answer = run(&schema, QUERY, bad.clone()).await;
            let message = answer["errors"][0]["message"].as_str().unwrap_or_default();
            assert!(
                message.contains("Invalid value for argument"),
                "{bad}: {answer}"
            );
        }
        assert_eq!(
            run(&schema, QUERY, json!({"k": 2, "e": "blue"})).await["data"],
            json!({"echo": 2})
        );
        // A known document skips the rules: proven with one that fails them,
        // remembered as if it had passed.
        let unknown_field = "{ echo(k: 1) nope }";
        let refused = run(&schema, unknown_field, json!({})).await;
        assert!(
            refused["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("nope")
        );
        let passed = documents
            .read(&(QUERY.to_string(), None), |document| document.result)
            .expect("remembered");
        documents.insert(
            (unknown_field.to_string(), None),
            Arc::new(Document {
                variables: Vec::new(),
                result: passed,
            }),
        );
        // (execution leaves the unknown field out)
        let skipped = run(&schema, unknown_field, json!({})).await;
        assert_eq!(skipped, json!({"data": {"echo": 1}}), "{refused}");
    }

    #[tokio::test]
    async fn documents_with_list_or_object_variables_are_not_remembered() {
        let (schema, documents) = schema();
        let query = "query($l: [Int!]) { echo(k: 1, l: $l) }";
        let answer = run(&schema, query, json!({"l": [1]})).await;
        assert_eq!(answer["data"], json!({"echo": 1}), "{answer}");
        assert!(documents.get(&(query.to_string(), None)).is_none());
        let answer = run(&schema, query, json!({"l": ["x"]})).await;
        assert!(
            answer["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("Invalid value")
        );
    }
}
