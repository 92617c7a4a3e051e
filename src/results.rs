//! Query results as JSON: Arrow values turned into JSON values that keep
//! their meaning — numbers stay numbers, exact decimals become strings (no
//! float rounding), dates and times ISO 8601 text, binary `\x`-hex text,
//! lists arrays.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Decimal256Type, DecimalType, Float16Type, Float32Type,
    Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type,
    UInt64Type,
};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{Number, Value};

/// Every row of a batch as a JSON array of cells, in column order.
pub fn rows(batch: &RecordBatch) -> Vec<Vec<Value>> {
    let mut columns: Vec<_> = batch
        .columns()
        .iter()
        .map(|c| column_values(c).into_iter())
        .collect();
    (0..batch.num_rows())
        .map(|_| {
            columns
                .iter_mut()
                .map(|c| c.next().unwrap_or(Value::Null))
                .collect()
        })
        .collect()
}

/// The JSON values of one column.
pub fn column_values(array: &ArrayRef) -> Vec<Value> {
    macro_rules! numbers {
        ($t:ty) => {{
            let values = array.as_primitive::<$t>();
            (0..array.len())
                .map(|i| {
                    if values.is_null(i) {
                        Value::Null
                    } else {
                        Value::from(values.value(i))
                    }
                })
                .collect()
        }};
    }
    macro_rules! floats {
        ($t:ty) => {{
            let values = array.as_primitive::<$t>();
            (0..array.len())
                .map(|i| {
                    if values.is_null(i) {
                        Value::Null
                    } else {
                        float(f64::from(values.value(i)))
                    }
                })
                .collect()
        }};
    }
    match array.data_type() {
        DataType::Null => vec![Value::Null; array.len()],
        DataType::Boolean => {
            let values = array.as_boolean();
            (0..array.len())
                .map(|i| {
                    if values.is_null(i) {
                        Value::Null
                    } else {
                        Value::Bool(values.value(i))
                    }
                })
                .collect()
        }
        DataType::Int8 => numbers!(Int8Type),
        DataType::Int16 => numbers!(Int16Type),
        DataType::Int32 => numbers!(Int32Type),
        DataType::Int64 => numbers!(Int64Type),
        DataType::UInt8 => numbers!(UInt8Type),
        DataType::UInt16 => numbers!(UInt16Type),
        DataType::UInt32 => numbers!(UInt32Type),
        DataType::UInt64 => numbers!(UInt64Type),
        DataType::Float16 => {
            let values = array.as_primitive::<Float16Type>();
            (0..array.len())
                .map(|i| {
                    if values.is_null(i) {
                        Value::Null
                    } else {
                        float(values.value(i).to_f64())
                    }
                })
                .collect()
        }
        DataType::Float32 => floats!(Float32Type),
        DataType::Float64 => floats!(Float64Type),
        DataType::Utf8 => strings(array.as_string::<i32>().iter()),
        DataType::LargeUtf8 => strings(array.as_string::<i64>().iter()),
        DataType::Utf8View => strings(array.as_string_view().iter()),
        DataType::Binary => bytes(array.as_binary::<i32>().iter()),
        DataType::LargeBinary => bytes(array.as_binary::<i64>().iter()),
        DataType::BinaryView => bytes(array.as_binary_view().iter()),
        // Their exact text as Arrow's formatter writes it, without its
        // `Display` round (a visible cost on every answered price).
        DataType::Decimal128(_, scale) if *scale >= 0 => {
            let values = array.as_primitive::<Decimal128Type>();
            let scale = scale.unsigned_abs();
            (0..array.len())
                .map(|i| {
                    if values.is_null(i) {
                        Value::Null
                    } else {
                        Value::String(decimal_text(values.value(i), scale))
                    }
                })
                .collect()
        }
        DataType::Decimal128(precision, scale) => {
            decimals::<Decimal128Type>(array, *precision, *scale)
        }
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>();
            (0..array.len())
                .map(|i| {
                    if days.is_null(i) {
                        Some(Value::Null)
                    } else {
                        date_text(days.value(i)).map(Value::String)
                    }
                })
                .collect::<Option<Vec<_>>>()
                // A day past chrono's range: as Arrow's formatter says it.
                .unwrap_or_else(|| formatted(array))
        }
        DataType::Decimal256(precision, scale) => {
            decimals::<Decimal256Type>(array, *precision, *scale)
        }
        DataType::List(_) => lists(array.as_list::<i32>()),
        DataType::LargeList(_) => lists(array.as_list::<i64>()),
        // Dates, times, timestamps, intervals, anything else: the exact
        // text form.
        _ => formatted(array),
    }
}

fn decimals<T: DecimalType>(array: &ArrayRef, precision: u8, scale: i8) -> Vec<Value> {
    let values = array.as_primitive::<T>();
    (0..array.len())
        .map(|i| {
            if values.is_null(i) {
                Value::Null
            } else {
                Value::String(T::format_decimal(values.value(i), precision, scale))
            }
        })
        .collect()
}

/// The text Arrow's formatter writes for a `Decimal128` of a scale of
/// zero or more, written here without its formatting machinery (a
/// visible cost on every answered price).
fn decimal_text(unscaled: i128, scale: u8) -> String {
    let mut buffer = [0u8; 40];
    let digits = ascii_digits(unscaled.unsigned_abs(), &mut buffer);
    let scale = usize::from(scale);
    let mut out = String::with_capacity(digits.len() + scale + 3);
    if unscaled < 0 {
        out.push('-');
    }
    if scale == 0 {
        out.push_str(digits);
    } else if digits.len() > scale {
        let (whole, fraction) = digits.split_at(digits.len() - scale);
        out.push_str(whole);
        out.push('.');
        out.push_str(fraction);
    } else {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', scale - digits.len()));
        out.push_str(digits);
    }
    out
}

/// The decimal digits of `n`, written at the end of `buffer`.
fn ascii_digits(mut n: u128, buffer: &mut [u8; 40]) -> &str {
    let mut start = buffer.len();
    loop {
        start -= 1;
        buffer[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buffer[start..]).unwrap_or_default()
}

/// A `Date32` as Arrow's formatter writes it (`2024-02-29`; chrono's
/// form past year 9999), `None` past chrono's range.
fn date_text(days: i32) -> Option<String> {
    use chrono::Datelike as _;
    let date = Date32Type::to_naive_date_opt(days)?;
    let Ok(year @ 0..=9999) = u32::try_from(date.year()) else {
        return Some(format!("{date:?}"));
    };
    let mut out = String::with_capacity(10);
    for (value, width) in [(year, 4), (date.month(), 2), (date.day(), 2)] {
        if !out.is_empty() {
            out.push('-');
        }
        for place in (0..width).rev() {
            out.push(char::from(b'0' + (value / 10u32.pow(place) % 10) as u8));
        }
    }
    Some(out)
}

fn lists<O: datafusion::arrow::array::OffsetSizeTrait>(
    lists: &datafusion::arrow::array::GenericListArray<O>,
) -> Vec<Value> {
    (0..lists.len())
        .map(|i| {
            if lists.is_null(i) {
                Value::Null
            } else {
                Value::Array(column_values(&lists.value(i)))
            }
        })
        .collect()
}

fn float(value: f64) -> Value {
    // JSON has no NaN or infinities: those travel as strings.
    Number::from_f64(value).map_or_else(|| Value::String(value.to_string()), Value::Number)
}

fn strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> Vec<Value> {
    values
        .map(|v| v.map_or(Value::Null, |s| Value::String(s.to_string())))
        .collect()
}

fn bytes<'a>(values: impl Iterator<Item = Option<&'a [u8]>>) -> Vec<Value> {
    values
        .map(|v| {
            v.map_or(Value::Null, |b| {
                Value::String(format!("\\x{}", hex::encode(b)))
            })
        })
        .collect()
}

fn formatted(array: &ArrayRef) -> Vec<Value> {
    let options = FormatOptions::default();
    match ArrayFormatter::try_new(array.as_ref(), &options) {
        Ok(formatter) => (0..array.len())
            .map(|i| {
                if array.is_null(i) {
                    Value::Null
                } else {
                    Value::String(formatter.value(i).to_string())
                }
            })
            .collect(),
        Err(error) => vec![Value::String(format!("<{error}>")); array.len()],
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{
        BinaryArray, Decimal128Array, Float64Array, Int64Array, ListArray, StringArray,
    };
    use datafusion::arrow::datatypes::{Field, Int32Type, Schema};
    use serde_json::json;

    use super::*;

    /// Dates read as Arrow's formatter writes them, in and past years
    /// 0 to 9999 and past chrono's range.
    #[test]
    fn dates_read_as_the_formatter_writes_them() {
        use datafusion::arrow::array::Date32Array;
        let days = [
            Some(0),
            Some(19_782),
            Some(-1),
            Some(-719_528),
            Some(-719_529),
            Some(2_932_896),
            Some(2_932_897),
            Some(-800_000),
            Some(3_000_000),
            None,
        ];
        let array: ArrayRef = Arc::new(Date32Array::from(days.to_vec()));
        let answered = column_values(&array);
        assert_eq!(answered, formatted(&array));
        assert_eq!(answered[1], json!("2024-02-29"));
        assert_eq!(answered[7], json!("-0221-09-04"));
        assert!(answered[8].as_str().unwrap().starts_with("+10"));
        let beyond: ArrayRef = Arc::new(Date32Array::from(vec![Some(1), Some(i32::MAX)]));
        assert_eq!(column_values(&beyond), formatted(&beyond));
    }

    /// Decimals read as Arrow's formatter writes them, whatever the scale.
    #[test]
    fn decimals_read_as_the_formatter_writes_them() {
        use datafusion::arrow::array::Decimal256Array;
        use datafusion::arrow::datatypes::i256;
        let values = [Some(0), Some(5), Some(-5), Some(123_456), Some(-100), None];
        let widest = 10_i128.pow(38) - 1;
        for (precision, scale) in [(10, 2), (10, 0), (38, 10), (10, -2), (38, 0), (38, 38)] {
            let mut narrow = values.to_vec();
            if precision == 38 {
                narrow.extend([Some(widest), Some(-widest), Some(10_i128.pow(37))]);
            }
            let array: ArrayRef = Arc::new(
                Decimal128Array::from(narrow)
                    .with_precision_and_scale(precision, scale)
                    .unwrap(),
            );
            assert_eq!(
                column_values(&array),
                formatted(&array),
                "({precision}, {scale})"
            );
            let wide: ArrayRef = Arc::new(
                Decimal256Array::from(
                    values
                        .iter()
                        .map(|v| v.map(i256::from_i128))
                        .collect::<Vec<_>>(),
                )
                .with_precision_and_scale(precision, scale)
                .unwrap(),
            );
            assert_eq!(
                column_values(&wide),
                formatted(&wide),
                "256 ({precision}, {scale})"
            );
        }
    }

    #[test]
    fn values_keep_their_meaning() {
        let schema = Schema::new(vec![
            Field::new("i", DataType::Int64, true),
            Field::new("d", DataType::Decimal128(20, 2), true),
            Field::new("f", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("b", DataType::Binary, true),
            Field::new(
                "l",
                DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
                true,
            ),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from(vec![Some(9_007_199_254_740_993), None])),
                Arc::new(
                    Decimal128Array::from(vec![Some(123_456_789_012_345_678), None])
                        .with_precision_and_scale(20, 2)
                        .unwrap(),
                ),
                Arc::new(Float64Array::from(vec![Some(1.5), Some(f64::NAN)])),
                Arc::new(StringArray::from(vec![Some("Zoë"), None])),
                Arc::new(BinaryArray::from(vec![Some(&[0xde_u8, 0xad][..]), None])),
                Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
                    Some(vec![Some(1), None]),
                    None,
                ])),
            ],
        )
        .unwrap();
        assert_eq!(
            rows(&batch),
            vec![
                vec![
                    json!(9_007_199_254_740_993_i64),
                    json!("1234567890123456.78"),
                    json!(1.5),
                    json!("Zoë"),
                    json!("\\xdead"),
                    json!([1, null])
                ],
                vec![
                    json!(null),
                    json!(null),
                    json!("NaN"),
                    json!(null),
                    json!(null),
                    json!(null)
                ],
            ]
        );
    }
}
