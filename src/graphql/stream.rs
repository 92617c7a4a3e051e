//! Streaming subscriptions, in Hasura's shape: `x_stream(batch_size: Int!,
//! cursor: [x_stream_cursor_input]!, where: x_bool_exp)` answers the rows
//! of `x` after a cursor, in the cursor column's order, at most
//! `batch_size` at a time, and keeps answering the rows that come after
//! the last one it sent — new rows as they are written, when the cursor is
//! a growing column (a serial key, a creation time). The server keeps the
//! cursor: each batch is a read on the one path of `x(where, order_by,
//! limit)` — the caller's rules, `where`, relations — with `cursor > last
//! value` (`<` descending) ANDed into `where`; a full batch is followed at
//! once, anything less after `graphql.live_interval_ms`. A batch is sent
//! only when it has rows. An error (a source down) ends the stream with
//! it: the client subscribes again from the last row it got.

use std::sync::Arc;

use async_graphql::dynamic::{
    Enum, FieldValue, InputObject, InputValue, ResolverContext, SubscriptionField,
    SubscriptionFieldFuture, TypeRef,
};
use async_graphql::{Name, Value as GqlValue};
use futures::Stream;

use super::arguments;
use super::resolve::{self, field_error, request_data};
use super::selection::Selected;
use super::shape::{ColumnShape, Shape, Shapes};
use crate::config::GraphqlConfig;
use crate::error::ApiError;
use crate::rest::read::ReadRequest;

/// The enum of a cursor's `ordering` (Hasura's).
pub const ORDERING: &str = "cursor_ordering";

/// `cursor_ordering { ASC DESC }`.
pub fn ordering_enum() -> Enum {
    Enum::new(ORDERING).items(["ASC", "DESC"])
}

/// The name of `x`'s stream field.
pub fn field_name(shape: &Shape) -> String {
    format!("{}_stream", shape.name)
}

/// Whether `x` has a stream field: it may read `x`'s rows, has a column to
/// walk, and no collection's list field has the name.
pub fn streams(shape: &Shape, shapes: &Shapes) -> bool {
    shape.select && !cursor_columns(shape).is_empty() && !shapes.contains_key(&field_name(shape))
}

/// The collection whose stream field `name` is, if it is one.
pub fn collection<'s>(name: &str, shapes: &'s Shapes) -> Option<&'s Arc<Shape>> {
    let x = name.strip_suffix("_stream")?;
    shapes.get(x).filter(|shape| streams(shape, shapes))
}

/// The types `x_stream` takes (its names are among the collection's
/// generated names: [`type_names`]).
pub fn types(shape: &Shape) -> Vec<async_graphql::dynamic::Type> {
    let x = &shape.name;
    let values = cursor_columns(shape).into_iter().fold(
        InputObject::new(format!("{x}_stream_cursor_value_input")),
        |input, column| {
            input.field(InputValue::new(
                column.name.as_str(),
                TypeRef::named(column.scalar.name()),
            ))
        },
    );
    let cursor = InputObject::new(format!("{x}_stream_cursor_input"))
        .field(InputValue::new(
            "initial_value",
            TypeRef::named_nn(format!("{x}_stream_cursor_value_input")),
        ))
        .field(InputValue::new("ordering", TypeRef::named(ORDERING)));
    vec![values.into(), cursor.into()]
}

/// The names [`types`] gives types.
pub fn type_names(shape: &Shape) -> [String; 2] {
    let x = &shape.name;
    [
        format!("{x}_stream_cursor_value_input"),
        format!("{x}_stream_cursor_input"),
    ]
}

/// The columns a cursor may walk: those with an order.
fn cursor_columns(shape: &Shape) -> Vec<&ColumnShape> {
    shape
        .columns
        .iter()
        .filter(|c| c.scalar.is_ordered())
        .collect()
}

/// The subscription root's `x_stream`.
pub fn root_field(
    shape: &Arc<Shape>,
    shapes: &Arc<Shapes>,
    limits: &GraphqlConfig,
) -> SubscriptionField {
    let x = &shape.name;
    let (shape, shapes, limits) = (shape.clone(), shapes.clone(), Arc::new(limits.clone()));
    SubscriptionField::new(
        field_name(&shape),
        TypeRef::named_nn_list_nn(x.as_str()),
        move |ctx| {
            let (shape, shapes, limits) = (shape.clone(), shapes.clone(), limits.clone());
            SubscriptionFieldFuture::new(async move {
                let stream = Batches::start(ctx, shape, shapes, &limits).map_err(field_error)?;
                Ok(stream.run())
            })
        },
    )
    .description(format!(
        "Rows of `{x}` after a cursor, in batches, as they come (a streaming subscription)"
    ))
    .argument(InputValue::new(
        "batch_size",
        TypeRef::named_nn(TypeRef::INT),
    ))
    .argument(InputValue::new(
        "cursor",
        TypeRef::named_nn_list(format!("{x}_stream_cursor_input")),
    ))
    .argument(InputValue::new(
        "where",
        TypeRef::named(format!("{x}_bool_exp")),
    ))
}

/// Where a stream is: its column, the last value sent (or the initial
/// one; null: from the first row), and its direction.
#[derive(Debug, Clone)]
struct Cursor {
    column: ColumnShape,
    value: GqlValue,
    descending: bool,
}

impl Cursor {
    /// `cursor: [{initial_value: {column: value}, ordering}]` (one column,
    /// as Hasura takes).
    fn parse(given: Option<&GqlValue>, shape: &Shape) -> Result<Self, ApiError> {
        let bad = |message: &str| ApiError::bad_request(message.to_string()).at("cursor");
        let direction = |name: &str| match name {
            "ASC" => Ok(false),
            "DESC" => Ok(true),
            _ => Err(bad("`ordering` is ASC or DESC")),
        };
        let one = match given {
            Some(GqlValue::List(items)) if items.len() == 1 => &items[0],
            // One object stands for a list of one, as GraphQL coerces it.
            Some(one @ GqlValue::Object(_)) => one,
            _ => {
                return Err(bad(
                    "`cursor` takes one cursor: [{initial_value, ordering}]",
                ));
            }
        };
        let GqlValue::Object(cursor) = one else {
            return Err(bad("a cursor is {initial_value, ordering}"));
        };
        let descending = match cursor.get("ordering") {
            None | Some(GqlValue::Null) => false,
            Some(GqlValue::Enum(name)) => direction(name)?,
            // From a variable.
            Some(GqlValue::String(name)) => direction(name)?,
            Some(_) => return Err(bad("`ordering` is ASC or DESC")),
        };
        let Some(GqlValue::Object(initial)) = cursor.get("initial_value") else {
            return Err(bad(
                "`initial_value` gives the cursor column and its first value",
            ));
        };
        let mut columns = initial.iter();
        let (Some((name, value)), None) = (columns.next(), columns.next()) else {
            return Err(bad(
                "`initial_value` names one column: the stream walks one column",
            ));
        };
        let column = cursor_columns(shape)
            .into_iter()
            .find(|c| c.name == name.as_str())
            .ok_or_else(|| bad(&format!("`{name}` is not a column the cursor can walk")))?;
        Ok(Self {
            column: column.clone(),
            value: value.clone(),
            descending,
        })
    }

    /// `where` with the rows after the cursor ANDed in (appended to its
    /// `_and`, so the places of its own conditions stay as written).
    fn after(&self, given: Option<&GqlValue>) -> GqlValue {
        let mut exp = match given {
            Some(GqlValue::Object(exp)) => exp.clone(),
            _ => Default::default(),
        };
        if self.value != GqlValue::Null {
            let condition = self.condition();
            match exp.get_mut("_and") {
                Some(GqlValue::List(items)) => items.push(condition),
                Some(one) => *one = GqlValue::List(vec![std::mem::take(one), condition]),
                None => {
                    exp.insert(Name::new("_and"), GqlValue::List(vec![condition]));
                }
            }
        }
        GqlValue::Object(exp)
    }

    /// `{column: {_gt: value}}` (`_lt` descending).
    fn condition(&self) -> GqlValue {
        let op = if self.descending { "_lt" } else { "_gt" };
        let comparison = object([(op, self.value.clone())]);
        object([(self.column.name.as_str(), comparison)])
    }

    /// `order_by: {column: asc|desc}`.
    fn order(&self) -> GqlValue {
        let direction = if self.descending { "desc" } else { "asc" };
        object([(
            self.column.name.as_str(),
            GqlValue::Enum(Name::new(direction)),
        )])
    }
}

fn object<'k>(entries: impl IntoIterator<Item = (&'k str, GqlValue)>) -> GqlValue {
    GqlValue::Object(
        entries
            .into_iter()
            .map(|(key, value)| (Name::new(key), value))
            .collect(),
    )
}

/// One subscriber's stream of batches.
struct Batches<'a> {
    ctx: ResolverContext<'a>,
    shape: Arc<Shape>,
    shapes: Arc<Shapes>,
    field: Selected,
    cursor: Cursor,
    batch_size: u64,
    interval: std::time::Duration,
}

impl<'a> Batches<'a> {
    /// Reads the field's arguments (a wrong one refuses the subscription).
    fn start(
        ctx: ResolverContext<'a>,
        shape: Arc<Shape>,
        shapes: Arc<Shapes>,
        limits: &GraphqlConfig,
    ) -> Result<Self, ApiError> {
        let field = Selected::of(&ctx.ctx.field())?;
        let batch_size = match field.argument("batch_size") {
            Some(GqlValue::Number(n)) => n.as_u64().filter(|n| *n > 0),
            _ => None,
        }
        .ok_or_else(|| ApiError::bad_request("`batch_size` must be 1 or more").at("batch_size"))?
        .min(limits.max_limit);
        let cursor = Cursor::parse(field.argument("cursor"), &shape)?;
        // The initial value and `where` are checked before the first batch.
        if cursor.value != GqlValue::Null {
            arguments::filter(&cursor.condition(), &shape, &shapes, "cursor.initial_value")?;
        }
        arguments::filter(
            &cursor.after(field.argument("where")),
            &shape,
            &shapes,
            "where",
        )?;
        Ok(Self {
            ctx,
            shape,
            shapes,
            field,
            cursor,
            batch_size,
            interval: limits.live_interval,
        })
    }

    /// The batches: read, sent when they have rows, the cursor moved to
    /// the last row's value; a full batch is followed at once.
    fn run(self) -> impl Stream<Item = async_graphql::Result<FieldValue<'a>>> + Send + 'a {
        // Whether to wait an interval before the next read: not after a
        // full batch (more rows may be waiting).
        futures::stream::unfold(Some((self, false)), |state| async move {
            let (mut batches, mut wait) = state?;
            loop {
                if wait {
                    tokio::time::sleep(batches.interval).await;
                }
                match batches.next().await {
                    Ok(Some((rows, full))) => return Some((Ok(rows), Some((batches, !full)))),
                    Ok(None) => wait = true,
                    // An error ends the stream, after it is sent.
                    Err(error) => return Some((Err(field_error(error)), None)),
                }
            }
        })
    }

    /// The next batch (`None`: no row after the cursor yet) and whether it
    /// is full.
    async fn next(&mut self) -> Result<Option<(FieldValue<'a>, bool)>, ApiError> {
        let (state, caller) = request_data(&self.ctx)?;
        let (shape, shapes) = (&*self.shape, &*self.shapes);
        let (filter, places) = arguments::filter(
            &self.cursor.after(self.field.argument("where")),
            shape,
            shapes,
            "where",
        )?;
        let (_, sort) =
            arguments::distinct_and_order(None, Some(&self.cursor.order()), shape, shapes, "")?;
        let mut fields = super::nested::columns(&self.field, shape);
        // Read even when not selected: the next batch starts after it.
        if !fields.contains(&self.cursor.column.name) {
            fields.push(self.cursor.column.name.clone());
        }
        let request = ReadRequest {
            filter: filter
                .as_object()
                .is_some_and(|o| !o.is_empty())
                .then_some(filter),
            sort,
            fields,
            append_fields: super::nested::appended(&self.field, shape, shapes),
            limit: Some(self.batch_size),
            ..ReadRequest::default()
        };
        let records =
            resolve::list_rows(state, caller, &self.field, shape, shapes, &request, &places)
                .await?;
        let Some(last) = records.last() else {
            return Ok(None);
        };
        if let Some(value) = resolve::column_value(last, &self.cursor.column) {
            self.cursor.value = value;
        }
        let full = records.len() as u64 >= self.batch_size;
        let rows = FieldValue::list(records.into_iter().map(FieldValue::owned_any));
        Ok(Some((rows, full)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graphql::shape::{Scalar, Writes};
    use serde_json::json;

    fn shape() -> Shape {
        let column = |name: &str, scalar| ColumnShape {
            name: name.into(),
            scalar,
            nullable: true,
            document: false,
        };
        Shape {
            name: "events".into(),
            columns: vec![column("id", Scalar::Int), column("doc", Scalar::Jsonb)],
            primary_key: None,
            unique_keys: Vec::new(),
            relations: Vec::new(),
            select: true,
            aggregate: false,
            writes: Writes::default(),
        }
    }

    fn given(cursor: serde_json::Value) -> Result<Cursor, ApiError> {
        Cursor::parse(Some(&GqlValue::from_json(cursor).unwrap()), &shape())
    }

    #[test]
    fn a_cursor_is_one_orderable_column_with_its_direction() {
        let cursor = given(json!([{"initial_value": {"id": 3}, "ordering": "DESC"}])).unwrap();
        assert_eq!(cursor.column.name, "id");
        assert!(cursor.descending);
        assert_eq!(cursor.after(None).to_string(), "{_and: [{id: {_lt: 3}}]}");
        assert_eq!(cursor.order().to_string(), "{id: desc}");
        // `where`'s own `_and` keeps its items first.
        let given_where = GqlValue::from_json(json!({"_and": {"doc": {"_is_null": false}}}));
        assert_eq!(
            cursor.after(given_where.as_ref().ok()).to_string(),
            "{_and: [{doc: {_is_null: false}}, {id: {_lt: 3}}]}"
        );
        let from_start = given(json!({"initial_value": {"id": null}})).unwrap();
        assert!(!from_start.descending);
        assert_eq!(from_start.after(None).to_string(), "{}");
        for wrong in [
            json!([{"initial_value": {"doc": 1}}]),
            json!([{"initial_value": {"id": 1, "doc": 1}}]),
            json!([{"initial_value": {"id": 1}}, {"initial_value": {"id": 2}}]),
            json!([{"ordering": "ASC"}]),
            json!([{"initial_value": {"id": 1}, "ordering": "UP"}]),
        ] {
            assert!(given(wrong.clone()).is_err(), "{wrong}");
        }
    }
}
