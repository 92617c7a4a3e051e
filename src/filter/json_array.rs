//! `json_array_items(text)`: the elements of a JSON array held as text
//! (PostgreSQL `json`/`jsonb`, MySQL `JSON` — how NocoBase stores array
//! fields) as a list of text, so the array operators (`$match`, `$anyOf`,
//! …) work on them as on real arrays. Strings become their text, other
//! values their JSON; a value that is not a JSON array is NULL. No source
//! knows this function, so filters using it run in DataFusion.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListBuilder, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use serde_json::Value;

/// The function's name.
pub const ITEMS: &str = "json_array_items";

/// The list the function answers: text items.
pub fn item_field() -> Arc<Field> {
    Arc::new(Field::new_list_field(DataType::Utf8, true))
}

/// `json_array_items(expr)`.
pub fn items(expr: Expr) -> Expr {
    static UDF: LazyLock<Arc<ScalarUDF>> =
        LazyLock::new(|| Arc::new(ScalarUDF::new_from_impl(JsonArrayItems::new())));
    UDF.call(vec![expr])
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonArrayItems {
    signature: Signature,
}

impl JsonArrayItems {
    fn new() -> Self {
        Self {
            signature: Signature::uniform(
                1,
                vec![DataType::Utf8, DataType::LargeUtf8, DataType::Utf8View],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for JsonArrayItems {
    fn name(&self) -> &'static str {
        ITEMS
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(item_field()))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [input] = args.args.as_slice() else {
            return exec_err!("json_array_items takes one argument");
        };
        let array = input.to_array(args.number_rows)?;
        let texts: Vec<Option<&str>> = match array.data_type() {
            DataType::Utf8 => array.as_string::<i32>().iter().collect(),
            DataType::LargeUtf8 => array.as_string::<i64>().iter().collect(),
            DataType::Utf8View => array.as_string_view().iter().collect(),
            other => return exec_err!("json_array_items reads text, not {other}"),
        };
        let mut builder = ListBuilder::new(StringBuilder::new()).with_field(item_field());
        for text in texts {
            match text.and_then(|t| serde_json::from_str::<Value>(t).ok()) {
                Some(Value::Array(items)) => {
                    for item in items {
                        match item {
                            Value::Null => builder.values().append_null(),
                            Value::String(s) => builder.values().append_value(s),
                            other => builder.values().append_value(other.to_string()),
                        }
                    }
                    builder.append(true);
                }
                _ => builder.append(false),
            }
        }
        let list: ArrayRef = Arc::new(builder.finish());
        Ok(ColumnarValue::Array(list))
    }
}
