//! `avg` whose decimal answers are rounded half away from zero at their
//! scale (the input's + 4), not cut. DataFusion's own `avg` truncates,
//! while PostgreSQL's exact answer is rounded into that scale as the
//! connectors read it and MySQL/MariaDB round there themselves
//! (`div_precision_increment`): an average must not depend on where it
//! ran. Registered in place of `avg` (and `mean`) in every session; REST
//! and GraphQL aggregates call [`avg`].

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray};
use datafusion::arrow::datatypes::{
    ArrowNativeTypeOp, DECIMAL128_MAX_PRECISION, DECIMAL128_MAX_SCALE, DECIMAL256_MAX_PRECISION,
    DECIMAL256_MAX_SCALE, DataType, Decimal128Type, Decimal256Type, Field,
};
use datafusion::common::{Result, ScalarValue};
use datafusion::functions_aggregate::average::Avg;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, EmitTo, Expr, GroupsAccumulator,
    ReversedUDAF, Signature, Volatility,
};

/// DataFusion's `avg`, computing decimals one digit finer than it answers
/// and rounding that digit away.
#[derive(Debug, Default, PartialEq, Eq, Hash)]
struct RoundedAvg {
    inner: Avg,
}

/// The aggregate every session registers as `avg`.
pub fn udaf() -> Arc<AggregateUDF> {
    static UDAF: LazyLock<Arc<AggregateUDF>> =
        LazyLock::new(|| Arc::new(AggregateUDF::from(RoundedAvg::default())));
    UDAF.clone()
}

/// `avg(expr)`, decimal answers rounded.
pub fn avg(expr: Expr) -> Expr {
    udaf().call(vec![expr])
}

/// For a decimal answer `Decimal(p, s)`, the type one digit finer that the
/// inner `avg` computes in (cutting there); `None` for other answers and
/// where no finer decimal exists (those answer as DataFusion's `avg` does).
fn finer(answer: &DataType) -> Option<DataType> {
    match *answer {
        DataType::Decimal128(p, s) if p < DECIMAL128_MAX_PRECISION && s < DECIMAL128_MAX_SCALE => {
            Some(DataType::Decimal128(p + 1, s + 1))
        }
        DataType::Decimal256(p, s) if p < DECIMAL256_MAX_PRECISION && s < DECIMAL256_MAX_SCALE => {
            Some(DataType::Decimal256(p + 1, s + 1))
        }
        _ => None,
    }
}

/// A value one digit finer, rounded half away from zero to its last digit
/// but one. Never overflows: the quotient is a tenth of the value.
fn rounded<N: ArrowNativeTypeOp>(finer: N) -> N {
    let ten = N::usize_as(10);
    let five = N::usize_as(5);
    let (quotient, remainder) = (finer.div_wrapping(ten), finer.mod_wrapping(ten));
    if remainder.is_ge(five) {
        quotient.add_wrapping(N::ONE)
    } else if remainder.is_le(five.neg_wrapping()) {
        quotient.sub_wrapping(N::ONE)
    } else {
        quotient
    }
}

/// `args` with the finer answer type, for the inner `avg`.
fn finer_args<'a>(args: &AccumulatorArgs<'a>, finer: DataType) -> AccumulatorArgs<'a> {
    let field = Field::new(
        args.return_field.name(),
        finer,
        args.return_field.is_nullable(),
    );
    AccumulatorArgs {
        return_field: Arc::new(field),
        ..args.clone()
    }
}

impl AggregateUDFImpl for RoundedAvg {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let answer = args.return_type().clone();
        match finer(&answer) {
            Some(finer) => Ok(Box::new(Rounding {
                inner: self.inner.accumulator(finer_args(&args, finer))?,
                answer,
            })),
            None => self.inner.accumulator(args),
        }
    }

    /// The state (a count and a sum, or the distinct values) does not
    /// depend on the answer's scale.
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<Arc<Field>>> {
        self.inner.state_fields(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.inner.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        let answer = args.return_type().clone();
        match finer(&answer) {
            Some(finer) => Ok(Box::new(GroupsRounding {
                inner: self
                    .inner
                    .create_groups_accumulator(finer_args(&args, finer))?,
                answer,
            })),
            None => self.inner.create_groups_accumulator(args),
        }
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.inner.order_sensitivity()
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        self.inner.reverse_expr()
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

/// The finer answer (a scalar), rounded into `answer`.
fn rounded_scalar(value: ScalarValue, answer: &DataType) -> Result<ScalarValue> {
    Ok(match (value, answer) {
        (ScalarValue::Decimal128(v, _, _), DataType::Decimal128(p, s)) => {
            ScalarValue::Decimal128(v.map(rounded), *p, *s)
        }
        (ScalarValue::Decimal256(v, _, _), DataType::Decimal256(p, s)) => {
            ScalarValue::Decimal256(v.map(rounded), *p, *s)
        }
        (value, _) => value.cast_to(answer)?,
    })
}

/// The finer answers (an array), rounded into `answer`.
fn rounded_array(values: &ArrayRef, answer: &DataType) -> Result<ArrayRef> {
    Ok(match answer {
        DataType::Decimal128(p, s) => Arc::new(
            values
                .as_primitive::<Decimal128Type>()
                .unary::<_, Decimal128Type>(rounded)
                .with_precision_and_scale(*p, *s)?,
        ),
        DataType::Decimal256(p, s) => Arc::new(
            values
                .as_primitive::<Decimal256Type>()
                .unary::<_, Decimal256Type>(rounded)
                .with_precision_and_scale(*p, *s)?,
        ),
        _ => datafusion::arrow::compute::cast(values, answer)?,
    })
}

/// An `avg` accumulator computing one digit finer, its answer rounded.
#[derive(Debug)]
struct Rounding {
    inner: Box<dyn Accumulator>,
    answer: DataType,
}

impl Accumulator for Rounding {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.inner.update_batch(values)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        rounded_scalar(self.inner.evaluate()?, &self.answer)
    }

    fn size(&self) -> usize {
        self.inner.size() + size_of::<Self>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.inner.state()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.inner.merge_batch(states)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.inner.retract_batch(values)
    }

    fn supports_retract_batch(&self) -> bool {
        self.inner.supports_retract_batch()
    }
}

/// The grouped `avg` accumulator, computing one digit finer, its answers
/// rounded.
struct GroupsRounding {
    inner: Box<dyn GroupsAccumulator>,
    answer: DataType,
}

impl GroupsAccumulator for GroupsRounding {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.inner
            .update_batch(values, group_indices, opt_filter, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        rounded_array(&self.inner.evaluate(emit_to)?, &self.answer)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        self.inner.state(emit_to)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.inner
            .merge_batch(values, group_indices, total_num_groups)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        self.inner.convert_to_state(values, opt_filter)
    }

    fn size(&self) -> usize {
        self.inner.size() + size_of::<Self>()
    }
}

/// The average of a decimal column from partial sums and counts (eager
/// aggregation across a join, `partial_aggregates`): the partials are
/// merged as `avg`'s own state, so the answer is the one `avg` over the
/// rows gives, type and rounding included. `input` is the column's type.
#[derive(Debug, PartialEq, Eq, Hash)]
struct AvgOfPartials {
    input: DataType,
    signature: Signature,
    inner: RoundedAvg,
}

/// `avg` of a `decimal` column of type `input`, from `sum` and `count`
/// partials of it.
pub fn avg_of_partials(sum: Expr, count: Expr, input: DataType) -> Expr {
    let udaf = AvgOfPartials {
        input,
        signature: Signature::any(2, Volatility::Immutable),
        inner: RoundedAvg::default(),
    };
    AggregateUDF::from(udaf).call(vec![sum, count])
}

impl AvgOfPartials {
    /// The column as `avg` would see it.
    fn input_fields(&self) -> [Arc<Field>; 1] {
        [Arc::new(Field::new("value", self.input.clone(), true))]
    }
}

impl AggregateUDFImpl for AvgOfPartials {
    fn name(&self) -> &str {
        "tributary_avg_of_partials"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(std::slice::from_ref(&self.input))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let fields = self.input_fields();
        let state = self.inner.state_fields(StateFieldsArgs {
            name: args.name,
            input_fields: &fields,
            return_field: args.return_field.clone(),
            ordering_fields: &[],
            is_distinct: false,
        })?;
        let types = state.iter().map(|f| f.data_type().clone()).collect();
        let inner = self.inner.accumulator(AccumulatorArgs {
            expr_fields: &fields,
            ..args
        })?;
        Ok(Box::new(FromPartials { inner, types }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<Arc<Field>>> {
        let fields = self.input_fields();
        self.inner.state_fields(StateFieldsArgs {
            input_fields: &fields,
            ..args
        })
    }
}

/// `avg`'s accumulator fed partial sums and counts as its state.
#[derive(Debug)]
struct FromPartials {
    inner: Box<dyn Accumulator>,
    /// The state's types: the count's, then the sum's.
    types: Vec<DataType>,
}

impl Accumulator for FromPartials {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let [sums, counts] = values else {
            return datafusion::common::internal_err!("an average of partials takes two");
        };
        let [count_type, sum_type] = self.types.as_slice() else {
            return datafusion::common::internal_err!("avg's state is a count and a sum");
        };
        let cast = datafusion::arrow::compute::cast;
        self.inner
            .merge_batch(&[cast(counts, count_type)?, cast(sums, sum_type)?])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.inner.evaluate()
    }

    fn size(&self) -> usize {
        self.inner.size() + size_of::<Self>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.inner.state()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.inner.merge_batch(states)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly

    use datafusion::arrow::util::display::array_value_to_string;
    use datafusion::prelude::SessionContext;

    use super::*;

    /// Partial sums and counts (a source's per-key aggregate, repeated by
    /// a join) average as the rows would: 2.00 over 3 rows, rounded.
    #[tokio::test]
    async fn partials_average_as_the_rows_would() {
        let context = SessionContext::new();
        let partials = context
            .sql(
                "SELECT CAST(column1 AS DECIMAL(20, 2)) AS s, CAST(column2 AS BIGINT) AS c \
                 FROM (VALUES (1.00, 1), (1.00, 2), (NULL, 0))",
            )
            .await
            .unwrap();
        let answer = partials
            .aggregate(
                vec![],
                vec![avg_of_partials(
                    datafusion::prelude::col("s"),
                    datafusion::prelude::col("c"),
                    DataType::Decimal128(10, 2),
                )],
            )
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(
            answer[0].schema().field(0).data_type(),
            &DataType::Decimal128(14, 6)
        );
        assert_eq!(
            array_value_to_string(answer[0].column(0), 0).unwrap(),
            "0.666667"
        );
    }

    #[test]
    fn the_last_digit_rounds_half_away_from_zero() {
        assert_eq!(rounded(6_666_666_i128), 666_667);
        assert_eq!(rounded(6_666_664_i128), 666_666);
        assert_eq!(rounded(-6_666_666_i128), -666_667);
        assert_eq!(rounded(-6_666_665_i128), -666_667);
        assert_eq!(rounded(-6_666_664_i128), -666_666);
        assert_eq!(rounded(5_i128), 1);
        assert_eq!(rounded(4_i128), 0);
    }

    /// Every way DataFusion computes an `avg` — one accumulator, grouped,
    /// DISTINCT, a sliding window frame — answers rounded, as PostgreSQL's
    /// `round(avg(x), 6)` would.
    #[tokio::test]
    async fn every_kind_of_decimal_average_rounds() {
        let context = SessionContext::new();
        context.register_udaf(AggregateUDF::clone(&udaf()));
        let values = "(1, 1, 1.00), (2, 1, 1.00), (3, 1, 0.00), \
                      (4, 2, -1.00), (5, 2, -1.00), (6, 2, 0.00), \
                      (7, 3, -0.01), (8, 3, 0.01), (9, 3, 0.02), (10, 3, 0.02)";
        let table = format!(
            "(SELECT CAST(column1 AS INT) AS id, CAST(column2 AS INT) AS g, \
             CAST(column3 AS DECIMAL(10, 2)) AS x FROM (VALUES {values}))"
        );
        let answers = |sql: String| {
            let context = context.clone();
            async move {
                let batches = context.sql(&sql).await.unwrap().collect().await.unwrap();
                let mut out = Vec::new();
                for batch in batches {
                    for row in 0..batch.num_rows() {
                        out.push(array_value_to_string(batch.column(0), row).unwrap());
                    }
                }
                out
            }
        };
        assert_eq!(
            answers(format!("SELECT avg(x) FROM {table} WHERE g = 1")).await,
            ["0.666667"]
        );
        assert_eq!(
            answers(format!("SELECT avg(x) FROM {table} GROUP BY g ORDER BY g")).await,
            ["0.666667", "-0.666667", "0.010000"]
        );
        assert_eq!(
            answers(format!(
                // Two DISTINCT arguments: not rewritten into a grouping.
                "SELECT avg(DISTINCT x), count(DISTINCT id) FROM {table} WHERE g = 3"
            ))
            .await,
            ["0.006667"]
        );
        assert_eq!(
            answers(format!(
                "SELECT avg(x) OVER (ORDER BY id ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) \
                 FROM {table} WHERE g IN (1, 2) ORDER BY id"
            ))
            .await,
            [
                "1.000000",
                "1.000000",
                "0.666667",
                "0.000000",
                "-0.666667",
                "-0.666667"
            ]
        );
        assert_eq!(
            answers(format!("SELECT mean(x) FROM {table} WHERE g = 2")).await,
            ["-0.666667"]
        );
        // Integers and floats average as doubles, as before.
        assert_eq!(
            answers(format!("SELECT avg(id) FROM {table} WHERE g = 1")).await,
            ["2.0"]
        );
    }
}
