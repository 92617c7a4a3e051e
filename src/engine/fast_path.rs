//! The fast path for single-source queries (a plan-shape cache). A query
//! text sent a second time whose whole plan is one statement for one
//! PostgreSQL source is planned once more, with its `$n` parameters left
//! open; later requests with the same text skip parsing, planning and
//! optimizing and send that statement straight to the source with the
//! values bound there (a prepared statement PostgreSQL keeps per
//! connection).
//!
//! The answer is the slow path's: a shape is only kept when the plan with
//! open parameters sends one statement to the same source with the same
//! result schema as the plan with the values, and a request only takes it
//! when every value has the type the plan inferred for its parameter
//! (integers for integer parameters, strings for strings, …). A value the
//! database refuses for its parameter (an integer out of `int4` range)
//! falls back to the slow path, which decides as always.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use datafusion::arrow::datatypes::{DataType, Decimal128Type, DecimalType, SchemaRef};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::scalar::ScalarValue;
use futures::{StreamExt, TryStreamExt};
use tributary_connector::{Connector, ConnectorError, ErrorKind, Statement, Value};

use super::executor::to_datafusion;
use super::request_key::Mapping;
use super::{QueryOutput, explain};
use crate::metrics::Metrics;

/// Query texts remembered per catalog version; past this the cache starts
/// over (a bound, not an LRU: the texts clients repeat come back at once).
const MAX_SHAPES: usize = 1_024;

/// What is known about a query text.
#[derive(Clone)]
pub enum Shape {
    /// Sent once: learning its shape (a second planning) waits for the
    /// text to come again, so clients that inline their values (a new text
    /// each time) never pay for it.
    Seen,
    /// One statement for one source, parameters open.
    Direct(Arc<Direct>),
    /// Anything else: the full planner every time.
    Planned,
}

/// The statement of a single-source query, ready to bind and send.
pub struct Direct {
    source: String,
    connector: Arc<dyn Connector>,
    sql: String,
    /// The type the plan inferred for each parameter, `$1` first.
    parameters: Vec<DataType>,
    schema: SchemaRef,
}

/// What is known about a read's request shape (see `request_key`).
#[derive(Clone)]
pub enum RequestShape {
    Seen,
    /// The statement of its plan, and where its parameters come from.
    Direct(Arc<Direct>, Arc<Mapping>),
    Planned,
}

/// The shapes of one session (so of one catalog version): by query text
/// (or plan text) and by read request.
#[derive(Default)]
pub struct Shapes {
    known: Bounded<Shape>,
    requests: Bounded<RequestShape>,
}

/// A map of at most [`MAX_SHAPES`] entries.
struct Bounded<T>(Mutex<HashMap<String, T>>);

impl<T> Default for Bounded<T> {
    fn default() -> Self {
        Self(Mutex::default())
    }
}

impl<T: Clone> Bounded<T> {
    fn get(&self, key: &str) -> Option<T> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    fn insert(&self, key: &str, value: T) {
        let mut known = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if known.len() >= MAX_SHAPES {
            known.clear();
        }
        known.insert(key.to_string(), value);
    }
}

impl Shapes {
    pub fn get(&self, sql: &str) -> Option<Shape> {
        self.known.get(sql)
    }

    pub fn insert(&self, sql: &str, shape: Shape) {
        self.known.insert(sql, shape);
    }

    pub fn request(&self, key: &str) -> Option<RequestShape> {
        self.requests.get(key)
    }

    pub fn insert_request(&self, key: &str, shape: RequestShape) {
        self.requests.insert(key, shape);
    }
}

/// The one federated statement a physical plan consists of (under the
/// federation's schema cast and DataFusion's cooperative wrapper), if it
/// consists of nothing else.
fn sole_statement(plan: &dyn ExecutionPlan) -> Option<(&dyn ExecutionPlan, explain::SourceQuery)> {
    match plan.name() {
        "sql_federation_exec" => {
            let mut queries = explain::source_queries(plan);
            (queries.len() == 1).then(|| (plan, queries.remove(0)))
        }
        "SchemaCastScanExec" | "CooperativeExec" => match plan.children()[..] {
            [child] => sole_statement(child.as_ref()),
            _ => None,
        },
        _ => None,
    }
}

/// The shape of a query from its plan with open parameters (`open`, with
/// the types inferred for them) and its plan with the request's values
/// (`bound`). `connector` finds a PostgreSQL source's connector by name.
pub fn learn(
    open: &dyn ExecutionPlan,
    parameter_types: HashMap<String, Option<DataType>>,
    bound: &dyn ExecutionPlan,
    connector: impl Fn(&str) -> Option<Arc<dyn Connector>>,
) -> Shape {
    let (Some((open_node, open_query)), Some((_, bound_query))) =
        (sole_statement(open), sole_statement(bound))
    else {
        return Shape::Planned;
    };
    // The rows come straight from the source: its node must already give
    // the result schema (no cast left to do), which must be the one the
    // values give.
    if open_query.source != bound_query.source
        || open.schema() != bound.schema()
        || open_node.schema() != open.schema()
    {
        return Shape::Planned;
    }
    let Some(connector) = connector(&open_query.source) else {
        return Shape::Planned;
    };
    let mut parameters = Vec::with_capacity(parameter_types.len());
    for position in 1..=parameter_types.len() {
        match parameter_types.get(&format!("${position}")) {
            Some(Some(data_type)) => parameters.push(data_type.clone()),
            _ => return Shape::Planned,
        }
    }
    Shape::Direct(Arc::new(Direct {
        source: open_query.source,
        connector,
        sql: open_query.sql,
        parameters,
        schema: open.schema(),
    }))
}

impl Direct {
    /// The request's values for the statement, or `None` when one does not
    /// have its parameter's type (the slow path then coerces it).
    pub fn bind(&self, values: &[ScalarValue]) -> Option<Vec<Value>> {
        if values.len() != self.parameters.len() {
            return None;
        }
        values
            .iter()
            .zip(&self.parameters)
            .map(|(value, parameter)| bind_one(value, parameter))
            .collect()
    }

    /// Sends the statement with `values` bound; rows stream as the source
    /// delivers them. An `InvalidInput` error means the database refused a
    /// value for its parameter: the caller takes the slow path.
    pub async fn start(
        &self,
        values: Vec<Value>,
        metrics: &Arc<Metrics>,
    ) -> Result<QueryOutput, ConnectorError> {
        let statement = Statement::with_params(self.sql.clone(), values).repeated();
        metrics.source_statement(&self.source);
        let rows = self
            .connector
            .query(&statement, Some(self.schema.clone()))
            .await?;
        let (source, metrics) = (self.source.clone(), metrics.clone());
        let stream = rows.map_err(to_datafusion).inspect_ok(move |batch| {
            metrics.source_rows(&source, batch.num_rows());
        });
        Ok(QueryOutput {
            schema: self.schema.clone(),
            stream: Box::pin(RecordBatchStreamAdapter::new(
                self.schema.clone(),
                stream.boxed(),
            )),
            row_limit: None,
        })
    }
}

/// `value` for a parameter of type `parameter`, or `None` when it does not
/// have that type.
fn bind_one(value: &ScalarValue, parameter: &DataType) -> Option<Value> {
    match value {
        ScalarValue::Int64(Some(i)) if parameter.is_integer() => Some(Value::Int(*i)),
        ScalarValue::Int32(Some(i)) if parameter.is_integer() => Some(Value::Int(i64::from(*i))),
        ScalarValue::Int16(Some(i)) if parameter.is_integer() => Some(Value::Int(i64::from(*i))),
        ScalarValue::Float64(Some(f)) if parameter.is_floating() => Some(Value::Float(*f)),
        ScalarValue::Utf8(Some(s))
            if matches!(
                parameter,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ) =>
        {
            Some(Value::Text(s.clone()))
        }
        ScalarValue::Boolean(Some(b)) if *parameter == DataType::Boolean => Some(Value::Bool(*b)),
        // Exact, in the parameter's own precision and scale (the
        // filter compiler casts a value to its column's type);
        // `format_decimal` would cut digits past the precision.
        ScalarValue::Decimal128(Some(v), precision, scale)
            if *parameter == DataType::Decimal128(*precision, *scale)
                && Decimal128Type::is_valid_decimal_precision(*v, *precision) =>
        {
            Some(Value::Decimal(Decimal128Type::format_decimal(
                *v, *precision, *scale,
            )))
        }
        _ => None,
    }
}

/// True for a value [`Direct::bind`] can bind to a parameter of its own
/// type (what `bind_one` takes, so the two cannot disagree).
pub fn bindable(value: &ScalarValue) -> bool {
    bind_one(value, &value.data_type()).is_some()
}

/// True for the refusal of a bound value (the slow path decides those).
pub fn refused_value(error: &ConnectorError) -> bool {
    error.kind() == ErrorKind::InvalidInput
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_bind_exactly_in_their_parameters_type() {
        let decimal = |v: i128, p: u8, s: i8| ScalarValue::Decimal128(Some(v), p, s);
        let numeric = |p: u8, s: i8| DataType::Decimal128(p, s);
        for (value, text) in [
            (decimal(10_000_000, 15, 2), "100000.00"),
            (decimal(-1_250, 10, 2), "-12.50"),
            (decimal(5, 10, 3), "0.005"),
            (decimal(-5, 10, 3), "-0.005"),
            (decimal(42, 10, 0), "42"),
        ] {
            let ScalarValue::Decimal128(_, p, s) = value else {
                unreachable!()
            };
            assert_eq!(
                bind_one(&value, &numeric(p, s)),
                Some(Value::Decimal(text.into()))
            );
            assert!(bindable(&value));
        }
        // Another scale or precision, or more digits than the precision:
        // the planner decides.
        assert_eq!(bind_one(&decimal(1_250, 10, 2), &numeric(10, 3)), None);
        assert_eq!(bind_one(&decimal(1_250, 10, 2), &numeric(12, 2)), None);
        assert_eq!(bind_one(&decimal(123_456, 4, 2), &numeric(4, 2)), None);
        assert_eq!(bind_one(&decimal(1_250, 10, 2), &DataType::Float64), None);
        assert!(!bindable(&ScalarValue::Decimal128(None, 10, 2)));
        assert!(!bindable(&decimal(123_456, 4, 2)));
    }
}
