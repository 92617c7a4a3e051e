//! The dynamic schema of one caller, in Hasura's shape: per collection `x`
//! the object type `x`, the inputs `x_bool_exp` and `x_order_by`, the enum
//! `x_select_column`, the aggregate types, the root fields `x`, `x_by_pk`
//! and `x_aggregate`, and the mutations (`mutation.rs`). Query root fields
//! are nullable (Hasura's are not) so that one failing root field leaves
//! the others' answers in `data`. A collection whose generated names would clash with names
//! already taken is left out, with a warning.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use async_graphql::Value as GqlValue;
use async_graphql::dynamic::{
    Enum, Field, FieldFuture, FieldValue, InputObject, InputValue, Object, ResolverContext,
    Scalar as GqlScalar, Schema, SchemaBuilder, Subscription, SubscriptionField,
    SubscriptionFieldFuture, TypeRef,
};

use super::shape::{ColumnShape, Scalar, Shape, Shapes};
use super::{arguments, group_by, mutation, nested, resolve, stream};
use crate::config::GraphqlConfig;
use crate::error::ApiError;
use crate::rest::aggregate::{Aggregation, Granularity};

/// Directions of `order_by` (Hasura's enum).
const DIRECTIONS: [&str; 6] = [
    "asc",
    "asc_nulls_first",
    "asc_nulls_last",
    "desc",
    "desc_nulls_first",
    "desc_nulls_last",
];

/// Builds the schema of `shapes`.
pub fn build(shapes: Arc<Shapes>, limits: &GraphqlConfig) -> Result<Schema, ApiError> {
    let mut taken: HashSet<String> = [
        "Query",
        "Mutation",
        "Subscription",
        "order_by",
        group_by::GRANULARITY,
        stream::ORDERING,
    ]
    .map(String::from)
    .into();
    for scalar in Scalar::ALL {
        taken.insert(scalar.name().to_string());
        taken.insert(comparison_name(scalar));
        taken.insert(cast_name(scalar));
    }
    let mut query = Object::new("Query");
    let mut mutation = Object::new("Mutation");
    let mut subscription = Subscription::new("Subscription");
    let mut mutations = 0;
    let mut types: Vec<async_graphql::dynamic::Type> = Vec::new();
    let mut scalars: BTreeSet<Scalar> = BTreeSet::new();
    let mut queries = 0;
    let mut streams = false;
    for shape in shapes.values() {
        let names = generated_names(shape);
        if let Some(clash) = names.iter().find(|n| taken.contains(n.as_str())) {
            tracing::warn!(collection = %shape.name, name = %clash, "left out of the GraphQL schema: the name is taken");
            continue;
        }
        taken.extend(names);
        scalars.extend(shape.columns.iter().map(|c| c.scalar));
        if let Some(key) = &shape.primary_key {
            scalars.extend(key.iter().map(|c| c.scalar));
        }
        if shape.aggregate {
            scalars.extend(
                shape
                    .columns
                    .iter()
                    .filter(|c| c.scalar.is_summable())
                    .map(|c| c.scalar.sum()),
            );
            if shape.columns.iter().any(|c| c.scalar.is_summable()) {
                scalars.insert(Scalar::Float);
            }
            scalars.extend(group_by::scalars(shape));
        }
        if shape.writes.any() {
            scalars.extend(
                [&shape.writes.insert, &shape.writes.update]
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|c| c.scalar),
            );
            scalars.insert(Scalar::Int);
            types.extend(mutation::types(shape, &shapes));
            for field in mutation::root_fields(shape, &shapes) {
                mutation = mutation.field(field);
                mutations += 1;
            }
        }
        types.extend(collection_types(shape, &shapes));
        for field in root_fields(shape, &shapes, limits) {
            query = query.field(field);
            queries += 1;
        }
        for field in subscription_fields(shape) {
            subscription = subscription.field(field);
        }
        if stream::streams(shape, &shapes) {
            types.extend(stream::types(shape));
            subscription = subscription.field(stream::root_field(shape, &shapes, limits));
            streams = true;
        }
    }
    if queries == 0 {
        return Err(ApiError::forbidden(
            "this role may read no collection: its GraphQL schema is empty",
        ));
    }
    let mut builder: SchemaBuilder = Schema::build(
        "Query",
        (mutations > 0).then_some("Mutation"),
        Some("Subscription"),
    )
    .register(query)
    .register(subscription);
    if mutations > 0 {
        builder = builder.register(mutation);
    }
    if streams {
        builder = builder.register(stream::ordering_enum());
    }
    builder = builder
        .register(Enum::new("order_by").items(DIRECTIONS))
        .register(Enum::new(group_by::GRANULARITY).items(Granularity::ALL.map(Granularity::name)))
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .extension(super::validated::Validated::default());
    if !limits.introspection {
        builder = builder.disable_introspection();
    }
    // A JSON column compares as text under `_cast: {String: …}`.
    if scalars.iter().any(|s| s.is_json()) {
        scalars.insert(Scalar::String);
    }
    // Every scalar a column or an aggregate has, with its comparisons.
    for scalar in scalars {
        if !scalar.is_builtin() {
            builder = builder.register(custom_scalar(scalar));
        }
        builder = builder.register(comparison(scalar));
        if scalar.is_json() {
            builder = builder.register(
                InputObject::new(cast_name(scalar))
                    .description("The value's text, compared as a String")
                    .field(InputValue::new(
                        "String",
                        TypeRef::named(comparison_name(Scalar::String)),
                    )),
            );
        }
    }
    for ty in types {
        builder = builder.register(ty);
    }
    builder
        .finish()
        .map_err(|e| ApiError::internal(format!("cannot build the GraphQL schema: {e}")))
}

/// The aggregate functions of `x_aggregate_fields`, each with a type of
/// its own (`x_sum_fields`, `x_sum_order_by`).
const AGGREGATE_FUNCTIONS: [&str; 10] = [
    "sum",
    "avg",
    "min",
    "max",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
];

/// Every type and root field name a collection takes.
fn generated_names(shape: &Shape) -> Vec<String> {
    let x = &shape.name;
    let mut names = vec![format!("{x}_bool_exp")];
    names.extend(mutation::type_names(shape));
    if shape.select {
        names.extend([x.clone(), format!("{x}_by_pk")]);
        names.extend(stream::type_names(shape));
    }
    if shape.select || shape.aggregate {
        names.extend([format!("{x}_order_by"), format!("{x}_select_column")]);
    }
    if shape.aggregate {
        names.extend(group_by::type_names(shape));
        for function in AGGREGATE_FUNCTIONS {
            names.push(format!("{x}_{function}_order_by"));
        }
        for suffix in [
            "aggregate",
            "aggregate_fields",
            "aggregate_order_by",
            "sum_fields",
            "avg_fields",
            "min_fields",
            "max_fields",
            "stddev_fields",
            "stddev_pop_fields",
            "stddev_samp_fields",
            "variance_fields",
            "var_pop_fields",
            "var_samp_fields",
        ] {
            names.push(format!("{x}_{suffix}"));
        }
    }
    names
}

fn comparison_name(scalar: Scalar) -> String {
    format!("{}_comparison_exp", scalar.name())
}

/// `<scalar>_cast_exp`: `_cast`'s argument (JSON scalars only).
fn cast_name(scalar: Scalar) -> String {
    format!("{}_cast_exp", scalar.name())
}

/// A scalar of ours: what it accepts as input.
fn custom_scalar(scalar: Scalar) -> GqlScalar {
    let description = match scalar {
        Scalar::Bigint => "A 64-bit integer, as a JSON number (a string is accepted as input)",
        Scalar::Numeric => "A decimal number, as a string holding every digit",
        Scalar::Uuid => "A UUID, as a string",
        Scalar::Date => "A date, `YYYY-MM-DD`",
        Scalar::Timestamp => "A date and time without a zone, `YYYY-MM-DDTHH:MM:SS[.ffffff]`",
        Scalar::Timestamptz => "An instant, RFC 3339 (`2024-05-01T12:00:00Z`)",
        Scalar::Time => "A time of day, `HH:MM:SS[.ffffff]`",
        Scalar::Json | Scalar::Jsonb => "Any JSON value",
        Scalar::Bytea => "Bytes, in base64",
        Scalar::Boolean | Scalar::Int | Scalar::Float | Scalar::String => "",
    };
    let accepts: fn(&GqlValue) -> bool = match scalar {
        Scalar::Bigint | Scalar::Numeric => {
            |v| matches!(v, GqlValue::Number(_) | GqlValue::String(_))
        }
        Scalar::Json | Scalar::Jsonb => |_| true,
        _ => |v| matches!(v, GqlValue::String(_)),
    };
    GqlScalar::new(scalar.name())
        .description(description)
        .validator(accepts)
}

/// `<scalar>_comparison_exp`: Hasura's operators for the scalar.
fn comparison(scalar: Scalar) -> InputObject {
    let name = scalar.name();
    let mut input = InputObject::new(comparison_name(scalar)).field(InputValue::new(
        "_is_null",
        TypeRef::named(TypeRef::BOOLEAN),
    ));
    if scalar.is_ordered() {
        for op in ["_eq", "_neq", "_gt", "_gte", "_lt", "_lte"] {
            input = input.field(InputValue::new(op, TypeRef::named(name)));
        }
        for op in ["_in", "_nin"] {
            input = input.field(InputValue::new(op, TypeRef::named_nn_list(name)));
        }
    }
    if scalar.is_text() {
        for op in [
            "_like",
            "_nlike",
            "_ilike",
            "_nilike",
            "_regex",
            "_iregex",
            "_nregex",
            "_niregex",
            "_similar",
            "_nsimilar",
        ] {
            input = input.field(InputValue::new(op, TypeRef::named(name)));
        }
    }
    // jsonb's operators, on every JSON column (evaluated as jsonb's), and
    // its text's comparisons (`_cast: {String: {_ilike: "%x%"}}`).
    if scalar.is_json() {
        input = input
            .field(InputValue::new("_cast", TypeRef::named(cast_name(scalar))))
            .field(InputValue::new("_contains", TypeRef::named(name)))
            .field(InputValue::new("_contained_in", TypeRef::named(name)))
            .field(InputValue::new("_has_key", TypeRef::named(TypeRef::STRING)))
            .field(InputValue::new(
                "_has_keys_any",
                TypeRef::named_nn_list(TypeRef::STRING),
            ))
            .field(InputValue::new(
                "_has_keys_all",
                TypeRef::named_nn_list(TypeRef::STRING),
            ));
    }
    input
}

fn column_type(column: &ColumnShape) -> TypeRef {
    if column.nullable {
        TypeRef::named(column.scalar.name())
    } else {
        TypeRef::named_nn(column.scalar.name())
    }
}

/// The types of one collection.
fn collection_types(shape: &Shape, shapes: &Shapes) -> Vec<async_graphql::dynamic::Type> {
    let x = &shape.name;
    let mut object = Object::new(x.as_str());
    for column in &shape.columns {
        let answered = column.clone();
        object = object.field(Field::new(
            column.name.as_str(),
            column_type(column),
            move |ctx| ready(resolve::column(&ctx, &answered)),
        ));
    }
    object = relation_fields(object, shape, shapes);
    let mut bool_exp = InputObject::new(format!("{x}_bool_exp"))
        .field(InputValue::new(
            "_and",
            TypeRef::named_nn_list(format!("{x}_bool_exp")),
        ))
        .field(InputValue::new(
            "_or",
            TypeRef::named_nn_list(format!("{x}_bool_exp")),
        ))
        .field(InputValue::new(
            "_not",
            TypeRef::named(format!("{x}_bool_exp")),
        ));
    let mut order_by = InputObject::new(format!("{x}_order_by"));
    for column in &shape.columns {
        if !matches!(column.name.as_str(), "_and" | "_or" | "_not") {
            bool_exp = bool_exp.field(InputValue::new(
                column.name.as_str(),
                TypeRef::named(comparison_name(column.scalar)),
            ));
        }
        order_by = order_by.field(InputValue::new(
            column.name.as_str(),
            TypeRef::named("order_by"),
        ));
    }
    for relation in &shape.relations {
        bool_exp = bool_exp.field(InputValue::new(
            relation.field.as_str(),
            TypeRef::named(format!("{}_bool_exp", relation.target)),
        ));
    }
    order_by = relation_orders(order_by, shape, shapes);
    let mut types: Vec<async_graphql::dynamic::Type> = vec![bool_exp.into()];
    if shape.select {
        types.push(object.into());
    }
    if shape.select || shape.aggregate {
        types.push(order_by.into());
        types.push(
            Enum::new(format!("{x}_select_column"))
                .items(
                    shape
                        .columns
                        .iter()
                        .map(|c| c.name.as_str())
                        .filter(|n| !matches!(*n, "true" | "false" | "null")),
                )
                .into(),
        );
    }
    if shape.aggregate {
        types.extend(aggregate_types(shape));
        types.extend(group_by::types(shape));
    }
    types
}

/// `order_by` through relations: an object relationship by the related
/// row's columns (`customer: customer_order_by`), an array relationship by
/// an aggregate of its rows (`orders_aggregate: orders_aggregate_order_by`).
fn relation_orders(mut order_by: InputObject, shape: &Shape, shapes: &Shapes) -> InputObject {
    let taken = |name: &str| {
        shape.column(name).is_some() || shape.relations.iter().any(|r| r.field == name)
    };
    for relation in shape.relations.iter().filter(|r| r.fetchable) {
        let Some(target) = shapes.get(&relation.target).filter(|t| t.select) else {
            continue;
        };
        let t = &target.name;
        if !relation.many {
            order_by = order_by.field(InputValue::new(
                relation.field.as_str(),
                TypeRef::named(format!("{t}_order_by")),
            ));
            continue;
        }
        let aggregate = format!("{}_aggregate", relation.field);
        if target.aggregate && !taken(&aggregate) {
            order_by = order_by.field(InputValue::new(
                aggregate,
                TypeRef::named(format!("{t}_aggregate_order_by")),
            ));
        }
    }
    order_by
}

/// The relation fields of a collection's object type: `rel: target` for an
/// object relationship; `rel(where, order_by, limit, offset, distinct_on):
/// [target!]!` and, when the target may be aggregated, `rel_aggregate`
/// with the same arguments for an array relationship (Hasura's). Their
/// answers are read with the parent rows (`nested.rs`).
fn relation_fields(mut object: Object, shape: &Shape, shapes: &Shapes) -> Object {
    let taken = |name: &str| {
        shape.column(name).is_some() || shape.relations.iter().any(|r| r.field == name)
    };
    for relation in shape.relations.iter().filter(|r| r.fetchable) {
        let Some(target) = shapes.get(&relation.target).filter(|t| t.select) else {
            continue;
        };
        let (field, t) = (relation.field.as_str(), target.name.as_str());
        if !relation.many {
            object = object.field(Field::new(field, TypeRef::named(t), relation_resolver));
            continue;
        }
        object = object.field(rows_arguments(
            Field::new(field, TypeRef::named_nn_list_nn(t), relation_resolver),
            t,
        ));
        let aggregate = format!("{field}_aggregate");
        if target.aggregate && !taken(&aggregate) {
            object = object.field(rows_arguments(
                Field::new(
                    aggregate,
                    TypeRef::named_nn(format!("{t}_aggregate")),
                    relation_resolver,
                ),
                t,
            ));
        }
    }
    object
}

fn relation_resolver(ctx: ResolverContext<'_>) -> FieldFuture<'_> {
    ready(nested::resolve(&ctx))
}

/// A resolver's answer computed at once: no future to box and poll (a
/// column is resolved once per row and field).
pub(super) fn ready(result: async_graphql::Result<Option<FieldValue<'_>>>) -> FieldFuture<'_> {
    match result {
        Ok(value) => FieldFuture::Value(value),
        Err(error) => FieldFuture::new(async move { Err::<Option<FieldValue<'_>>, _>(error) }),
    }
}

/// A field read from the parent's value by its response key (the
/// aggregate answer is computed whole by the root field).
pub(super) fn keyed(name: &str, ty: TypeRef) -> Field {
    Field::new(name, ty, |ctx| ready(Ok(resolve::by_response_key(&ctx))))
}

/// An aggregate function of `x_aggregate_fields` over columns (all but
/// `count`): the columns it takes and its output's scalar.
pub(super) struct AggregateFunction<'a> {
    pub name: &'static str,
    pub columns: Vec<&'a ColumnShape>,
    pub output: fn(Scalar) -> Scalar,
}

/// The functions of `AGGREGATE_FUNCTIONS` that take a column of `shape`:
/// `sum` keeps integers exact (`bigint`), `min` / `max` answer the
/// column's scalar, the others a `Float`.
pub(super) fn aggregate_functions(shape: &Shape) -> Vec<AggregateFunction<'_>> {
    let columns = |keep: fn(Scalar) -> bool| -> Vec<&ColumnShape> {
        shape.columns.iter().filter(|c| keep(c.scalar)).collect()
    };
    AGGREGATE_FUNCTIONS
        .into_iter()
        .filter_map(|name| {
            let aggregation = arguments::aggregation_named(name)?;
            let (columns, output): (_, fn(Scalar) -> Scalar) = match aggregation {
                Aggregation::Sum => (columns(Scalar::is_summable), Scalar::sum),
                Aggregation::Min | Aggregation::Max => (columns(Scalar::has_extremes), |s| s),
                _ => (columns(Scalar::is_summable), |_| Scalar::Float),
            };
            (!columns.is_empty()).then_some(AggregateFunction {
                name,
                columns,
                output,
            })
        })
        .collect()
}

/// `x_aggregate { aggregate: x_aggregate_fields }`, the fields of each
/// aggregate function and `x_aggregate_order_by` (also `x_group_by`'s
/// order of groups).
fn aggregate_types(shape: &Shape) -> Vec<async_graphql::dynamic::Type> {
    let x = &shape.name;
    let mut fields = Object::new(format!("{x}_aggregate_fields")).field(
        keyed("count", TypeRef::named_nn(TypeRef::INT))
            .argument(InputValue::new(
                "columns",
                TypeRef::named_nn_list(format!("{x}_select_column")),
            ))
            .argument(InputValue::new(
                "distinct",
                TypeRef::named(TypeRef::BOOLEAN),
            )),
    );
    let mut types: Vec<async_graphql::dynamic::Type> = Vec::new();
    let mut order = InputObject::new(format!("{x}_aggregate_order_by"))
        .field(InputValue::new("count", TypeRef::named("order_by")));
    for AggregateFunction {
        name: function,
        columns,
        output,
        ..
    } in aggregate_functions(shape)
    {
        let type_name = format!("{x}_{function}_fields");
        let mut object = Object::new(type_name.as_str());
        for column in &columns {
            object = object.field(keyed(
                column.name.as_str(),
                TypeRef::named(output(column.scalar).name()),
            ));
        }
        types.push(object.into());
        fields = fields.field(keyed(function, TypeRef::named(type_name)));
        let order_name = format!("{x}_{function}_order_by");
        let mut function_order = InputObject::new(order_name.as_str());
        for column in columns {
            function_order = function_order.field(InputValue::new(
                column.name.as_str(),
                TypeRef::named("order_by"),
            ));
        }
        types.push(function_order.into());
        order = order.field(InputValue::new(function, TypeRef::named(order_name)));
    }
    types.push(fields.into());
    types.push(order.into());
    let mut answer = Object::new(format!("{x}_aggregate")).field(Field::new(
        "aggregate",
        TypeRef::named(format!("{x}_aggregate_fields")),
        |ctx| ready(Ok(resolve::aggregate_part(&ctx))),
    ));
    if shape.select {
        answer = answer.field(Field::new(
            "nodes",
            TypeRef::named_nn_list_nn(x.as_str()),
            |ctx| ready(resolve::aggregate_nodes(&ctx)),
        ));
    }
    types.push(answer.into());
    types
}

/// `x`, `x_by_pk` and `x_aggregate`, as far as the caller may read rows
/// and aggregate them.
fn root_fields(shape: &Arc<Shape>, shapes: &Arc<Shapes>, limits: &GraphqlConfig) -> Vec<Field> {
    let mut fields = if shape.select {
        select_fields(shape, shapes, limits)
    } else {
        Vec::new()
    };
    if shape.aggregate {
        fields.push(aggregate_field(shape, shapes, limits));
        fields.push(group_by::root_field(shape, shapes));
    }
    fields
}

/// `x(where, order_by, limit, offset)` and `x_by_pk`.
fn select_fields(shape: &Arc<Shape>, shapes: &Arc<Shapes>, limits: &GraphqlConfig) -> Vec<Field> {
    let x = &shape.name;
    let limits = Arc::new(limits.clone());
    let mut fields = Vec::new();
    let (list_shape, list_shapes) = (shape.clone(), shapes.clone());
    fields.push(
        Field::new(x.as_str(), TypeRef::named_nn_list(x.as_str()), move |ctx| {
            let (shape, shapes, limits) = (list_shape.clone(), list_shapes.clone(), limits.clone());
            FieldFuture::new(async move {
                let result = resolve::list(&ctx, &shape, &shapes, &limits).await;
                resolve::answer(&ctx, result.map(Some))
            })
        })
        .description(format!("Rows of `{x}`")),
    );
    if let Some(list) = fields.pop() {
        fields.push(rows_arguments(list, x));
    }
    if let Some(key) = &shape.primary_key {
        let (by_pk_shape, by_pk_shapes) = (shape.clone(), shapes.clone());
        let mut field = Field::new(
            format!("{x}_by_pk"),
            TypeRef::named(x.as_str()),
            move |ctx| {
                let (shape, shapes) = (by_pk_shape.clone(), by_pk_shapes.clone());
                FieldFuture::new(async move {
                    let result = resolve::by_pk(&ctx, &shape, &shapes).await;
                    resolve::answer(&ctx, result)
                })
            },
        )
        .description(format!("One row of `{x}` by its primary key"));
        field = key_arguments(field, key);
        fields.push(field);
    }
    fields
}

/// `x_by_pk`'s arguments: the key's columns.
fn key_arguments<F: TakesArguments>(field: F, key: &[ColumnShape]) -> F {
    key.iter().fold(field, |field, column| {
        field.argument(InputValue::new(
            column.name.as_str(),
            TypeRef::named_nn(column.scalar.name()),
        ))
    })
}

/// What takes arguments: a query root field, or its twin on the
/// subscription root.
pub(super) trait TakesArguments: Sized {
    fn argument(self, value: InputValue) -> Self;
}

impl TakesArguments for Field {
    fn argument(self, value: InputValue) -> Self {
        Field::argument(self, value)
    }
}

impl TakesArguments for SubscriptionField {
    fn argument(self, value: InputValue) -> Self {
        SubscriptionField::argument(self, value)
    }
}

/// The subscription root's fields: the query root's (`x`, `x_by_pk`,
/// `x_aggregate`, `x_group_by`) with their arguments, so that clients and
/// GraphiQL validate subscriptions. They are served as live queries over
/// a WebSocket (`live.rs`, which runs each as its query); over HTTP
/// async-graphql refuses a subscription before resolving it.
fn subscription_fields(shape: &Shape) -> Vec<SubscriptionField> {
    let x = &shape.name;
    let twin = |name: String, ty: TypeRef| {
        SubscriptionField::new(name, ty, |_| {
            SubscriptionFieldFuture::new(async {
                Err::<futures::stream::Empty<async_graphql::Result<FieldValue<'static>>>, _>(
                    async_graphql::Error::new(
                        "subscriptions are live queries over a WebSocket on GET /graphql \
                         (graphql-transport-ws)",
                    ),
                )
            })
        })
    };
    let mut fields = Vec::new();
    if shape.select {
        fields.push(rows_arguments(
            twin(x.clone(), TypeRef::named_nn_list(x.as_str())),
            x,
        ));
        if let Some(key) = &shape.primary_key {
            let by_pk = twin(format!("{x}_by_pk"), TypeRef::named(x.as_str()));
            fields.push(key_arguments(by_pk, key));
        }
    }
    if shape.aggregate {
        let aggregate = twin(
            format!("{x}_aggregate"),
            TypeRef::named(format!("{x}_aggregate")),
        );
        fields.push(rows_arguments(aggregate, x));
        let group_by = twin(group_by::root_name(shape), group_by::root_type(shape));
        fields.push(group_by::root_arguments(group_by, shape));
    }
    fields
}

/// `x_aggregate(where, order_by, limit, offset, distinct_on)`.
fn aggregate_field(shape: &Arc<Shape>, shapes: &Arc<Shapes>, limits: &GraphqlConfig) -> Field {
    let x = &shape.name;
    let (resolved, shapes, limits) = (shape.clone(), shapes.clone(), Arc::new(limits.clone()));
    let field = Field::new(
        format!("{x}_aggregate"),
        TypeRef::named(format!("{x}_aggregate")),
        move |ctx| {
            let (shape, shapes, limits) = (resolved.clone(), shapes.clone(), limits.clone());
            FieldFuture::new(async move {
                let result = resolve::aggregate(&ctx, &shape, &shapes, &limits).await;
                resolve::answer(
                    &ctx,
                    result.map(|answer| Some(FieldValue::owned_any(answer))),
                )
            })
        },
    )
    .description(format!("Aggregates over rows of `{x}`"));
    rows_arguments(field, x)
}

/// `where`, `order_by`, `limit`, `offset` and `distinct_on`: the rows a
/// list or an aggregate of `x` reads (at the root, or a parent row's
/// related rows).
fn rows_arguments<F: TakesArguments>(field: F, x: &str) -> F {
    field
        .argument(InputValue::new(
            "where",
            TypeRef::named(format!("{x}_bool_exp")),
        ))
        .argument(InputValue::new(
            "order_by",
            TypeRef::named_nn_list(format!("{x}_order_by")),
        ))
        .argument(InputValue::new("limit", TypeRef::named(TypeRef::INT)))
        .argument(InputValue::new("offset", TypeRef::named(TypeRef::INT)))
        .argument(InputValue::new(
            "distinct_on",
            TypeRef::named_nn_list(format!("{x}_select_column")),
        ))
}
