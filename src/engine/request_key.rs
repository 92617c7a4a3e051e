//! The fast path keyed by a read's request instead of its plan (REST and
//! GraphQL reads, appended relations included). A request splits into its
//! shape — everything about it but the values its filter compares with,
//! as text — and those values, the filter's leaves. When a shape comes a
//! second time, the read is planned once more with a distinct marker in
//! place of each value; if both plans, with their filter values as
//! parameters, are the same plan and each parameter is either one request
//! value as it is (cast to the parameter's type: the filter compiler's own
//! conversion) or the same constant in both, later requests of that shape
//! send the statement the plan-keyed fast path learned for that plan
//! (`fast_path::Direct`) with their own values — no plan is built.
//!
//! Values the compiler transforms (`$includes` wraps text in `%`), reads
//! as dates, or branches on (`$is: true`) differ between the two plans,
//! so their shapes keep the planner; values holding `{{…}}` variables are
//! never keyed (substitution depends on the text).

use datafusion::arrow::datatypes::DataType;
use datafusion::scalar::ScalarValue;
use serde_json::{Number, Value};

/// A request's shape and the values of its filter, in the order the
/// filter compiler meets them.
pub struct RequestKey {
    pub text: String,
    leaves: Vec<Leaf>,
}

/// One value of a filter.
#[derive(Debug, Clone, PartialEq)]
enum Leaf {
    Text(String),
    Number(Number),
    Bool(bool),
}

impl Leaf {
    /// What the filter compiler casts to a column's type (`filter::Scope::
    /// scalar`: numbers as their text) or takes as text.
    fn scalar(&self) -> ScalarValue {
        match self {
            Leaf::Text(s) => ScalarValue::Utf8(Some(s.clone())),
            Leaf::Number(n) => ScalarValue::Utf8(Some(n.to_string())),
            Leaf::Bool(b) => ScalarValue::Boolean(Some(*b)),
        }
    }

    fn cast(&self, data_type: &DataType) -> Option<ScalarValue> {
        // The common keys, taken as the cast takes them without building
        // its arrays (a visible cost on every by-key read).
        match (self, data_type) {
            (Leaf::Text(s), DataType::Utf8) => return Some(ScalarValue::Utf8(Some(s.clone()))),
            (Leaf::Number(n), DataType::Int16 | DataType::Int32 | DataType::Int64) => {
                if let Some(v) = n.as_i64() {
                    return match data_type {
                        DataType::Int16 => {
                            i16::try_from(v).ok().map(|v| ScalarValue::Int16(Some(v)))
                        }
                        DataType::Int32 => {
                            i32::try_from(v).ok().map(|v| ScalarValue::Int32(Some(v)))
                        }
                        _ => Some(ScalarValue::Int64(Some(v))),
                    };
                }
            }
            _ => {}
        }
        let scalar = self.scalar();
        // A number the type would round is compared in a wider type (see
        // `filter::exact_decimal`): not this parameter's.
        if let ScalarValue::Utf8(Some(text)) = &scalar
            && crate::filter::exact_decimal(text, data_type).is_some()
        {
            return None;
        }
        scalar.cast_to(data_type).ok()
    }

    /// A value of the same kind as this one, unlike it and unlike every
    /// other leaf's marker (`n` is the leaf's position), or `None` when
    /// this leaf happens to hold its marker.
    fn marker(&self, n: usize) -> Option<Leaf> {
        let base = 7_001 + n as i64;
        let marker = match self {
            Leaf::Bool(b) => Leaf::Bool(!b),
            Leaf::Number(v) if v.is_f64() => Leaf::Number(Number::from_f64(base as f64 + 0.5)?),
            Leaf::Number(_) => Leaf::Number(Number::from(base)),
            // Text the compiler may cast to a number gets a marker that casts too.
            Leaf::Text(s) if s.parse::<i64>().is_ok() => Leaf::Text(base.to_string()),
            Leaf::Text(s) if s.parse::<f64>().is_ok() => Leaf::Text(format!("{base}.5")),
            Leaf::Text(_) => Leaf::Text(format!("\u{1}{n}")),
        };
        (marker != *self).then_some(marker)
    }
}

impl RequestKey {
    /// The key of a read whose every other part `shape` names; `None` when
    /// a value holds a `{{…}}` variable.
    pub fn of(shape: &str, filter: Option<&Value>) -> Option<Self> {
        let mut text = String::with_capacity(shape.len() + 64);
        text.push_str(shape);
        text.push('\u{1f}');
        let mut leaves = Vec::new();
        if let Some(filter) = filter {
            skeleton(filter, &mut text, &mut leaves)?;
        }
        Some(Self { text, leaves })
    }

    /// The filter with a marker in place of each value, and the markers;
    /// `None` when a value holds its own marker (learning waits for
    /// another request).
    pub fn markers(&self, filter: &Value) -> Option<(Value, Markers)> {
        let markers = self
            .leaves
            .iter()
            .enumerate()
            .map(|(n, leaf)| leaf.marker(n))
            .collect::<Option<Vec<_>>>()?;
        let mut next = markers.iter();
        let marked = replace_leaves(filter, &mut next);
        Some((marked, Markers(markers)))
    }

    /// The parameters' values for this request.
    pub fn values(&self, mapping: &Mapping) -> Option<Vec<ScalarValue>> {
        mapping
            .0
            .iter()
            .map(|parameter| match parameter {
                Parameter::Leaf(n, data_type) => self.leaves.get(*n)?.cast(data_type),
                Parameter::Constant(value) => Some(value.clone()),
            })
            .collect()
    }

    /// Where each parameter of the plan comes from, given its values with
    /// this request's filter (`actual`) and with the marked one
    /// (`marked`); `None` unless each parameter is one leaf's value in both
    /// or the same constant in both, and every leaf is used.
    pub fn mapping(
        &self,
        markers: &Markers,
        actual: &[ScalarValue],
        marked: &[ScalarValue],
    ) -> Option<Mapping> {
        if actual.len() != marked.len() {
            return None;
        }
        let mut used = vec![false; self.leaves.len()];
        let mut parameters = Vec::with_capacity(actual.len());
        for (value, probe) in actual.iter().zip(marked) {
            let data_type = value.data_type();
            if probe.data_type() != data_type {
                return None;
            }
            let mut sources = markers
                .0
                .iter()
                .enumerate()
                .filter(|(_, marker)| marker.cast(&data_type).as_ref() == Some(probe));
            match (sources.next(), sources.next()) {
                (Some((n, _)), None) => {
                    if self.leaves[n].cast(&data_type).as_ref() != Some(value) {
                        return None;
                    }
                    used[n] = true;
                    parameters.push(Parameter::Leaf(n, data_type));
                }
                (None, _) if value == probe => parameters.push(Parameter::Constant(value.clone())),
                _ => return None,
            }
        }
        used.iter().all(|u| *u).then_some(Mapping(parameters))
    }
}

/// The marker of each leaf, in order.
pub struct Markers(Vec<Leaf>);

impl Markers {
    /// Those of a request without a filter.
    pub fn none() -> Self {
        Self(Vec::new())
    }
}

/// Where each parameter of a learned statement comes from.
#[derive(Debug, PartialEq)]
pub struct Mapping(Vec<Parameter>);

#[derive(Debug, PartialEq)]
enum Parameter {
    /// The request's `n`th value, cast to this type.
    Leaf(usize, DataType),
    Constant(ScalarValue),
}

/// Writes `value`'s structure to `text` (object keys as JSON strings,
/// each value as its kind) and its values to `leaves`.
fn skeleton(value: &Value, text: &mut String, leaves: &mut Vec<Leaf>) -> Option<()> {
    match value {
        Value::Null => text.push('n'),
        Value::Bool(b) => {
            text.push('b');
            leaves.push(Leaf::Bool(*b));
        }
        Value::Number(n) => {
            text.push(if n.is_f64() { 'f' } else { 'i' });
            leaves.push(Leaf::Number(n.clone()));
        }
        Value::String(s) => {
            if s.contains("{{") {
                return None;
            }
            text.push('s');
            leaves.push(Leaf::Text(s.clone()));
        }
        Value::Array(items) => {
            text.push('[');
            for item in items {
                skeleton(item, text, leaves)?;
                text.push(',');
            }
            text.push(']');
        }
        Value::Object(map) => {
            text.push('{');
            for (key, item) in map {
                text.push_str(&Value::String(key.clone()).to_string());
                text.push(':');
                skeleton(item, text, leaves)?;
                text.push(',');
            }
            text.push('}');
        }
    }
    Some(())
}

/// `value` with its leaves replaced, in [`skeleton`]'s order.
fn replace_leaves<'a>(value: &Value, next: &mut impl Iterator<Item = &'a Leaf>) -> Value {
    match value {
        Value::Null => Value::Null,
        Value::Bool(_) | Value::Number(_) | Value::String(_) => match next.next() {
            Some(Leaf::Text(s)) => Value::String(s.clone()),
            Some(Leaf::Number(n)) => Value::Number(n.clone()),
            Some(Leaf::Bool(b)) => Value::Bool(*b),
            None => Value::Null,
        },
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| replace_leaves(i, next)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), replace_leaves(v, next)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn int(v: i32) -> ScalarValue {
        ScalarValue::Int32(Some(v))
    }

    fn text(v: &str) -> ScalarValue {
        ScalarValue::Utf8(Some(v.into()))
    }

    /// The shortcut for common keys answers what the cast answers.
    #[test]
    fn common_keys_convert_as_the_cast_converts_them() {
        let leaves = [
            Leaf::Text("x".into()),
            Leaf::Text("12".into()),
            Leaf::Text(" 7".into()),
            Leaf::Number(Number::from(5)),
            Leaf::Number(Number::from(-40_000)),
            Leaf::Number(Number::from(3_000_000_000_i64)),
            Leaf::Number(Number::from(u64::MAX)),
            Leaf::Number(Number::from_f64(1.5).unwrap()),
            Leaf::Number(Number::from_f64(2.0).unwrap()),
            Leaf::Bool(true),
        ];
        for leaf in &leaves {
            for data_type in [
                DataType::Utf8,
                DataType::Int16,
                DataType::Int32,
                DataType::Int64,
            ] {
                assert_eq!(
                    leaf.cast(&data_type),
                    leaf.scalar().cast_to(&data_type).ok(),
                    "{leaf:?} as {data_type}"
                );
            }
        }
    }

    #[test]
    fn the_shape_names_structure_and_kinds_not_values() {
        let a = RequestKey::of("orders", Some(&json!({"k": 5, "s": {"$eq": "x"}}))).unwrap();
        let b = RequestKey::of("orders", Some(&json!({"k": 9, "s": {"$eq": "y"}}))).unwrap();
        let c = RequestKey::of("orders", Some(&json!({"k": "9", "s": {"$eq": "y"}}))).unwrap();
        let d = RequestKey::of("orders", Some(&json!({"k": 9, "s": {"$ne": "y"}}))).unwrap();
        let e = RequestKey::of("orders", Some(&json!({"k": [1, 2]}))).unwrap();
        let f = RequestKey::of("orders", Some(&json!({"k": [1, 2, 3]}))).unwrap();
        assert_eq!(a.text, b.text);
        assert_ne!(a.text, c.text);
        assert_ne!(a.text, d.text);
        assert_ne!(e.text, f.text);
        assert_ne!(
            a.text,
            RequestKey::of("customer", Some(&json!({"k": 5, "s": {"$eq": "x"}})))
                .unwrap()
                .text
        );
        // A key named like a kind is still a key: keys are quoted.
        assert_ne!(
            RequestKey::of("t", Some(&json!({"i": 1}))).unwrap().text,
            RequestKey::of("t", Some(&json!({"s": 1}))).unwrap().text
        );
        assert!(RequestKey::of("t", Some(&json!({"owner": "{{$user.id}}"}))).is_none());
    }

    #[test]
    fn markers_replace_every_value_with_one_of_its_kind() {
        let filter = json!({"a": 5, "b": "x", "c": "12", "d": true, "e": [1.5, null]});
        let key = RequestKey::of("t", Some(&filter)).unwrap();
        let (marked, _) = key.markers(&filter).unwrap();
        assert_eq!(
            marked,
            json!({"a": 7001, "b": "\u{1}1", "c": "7003", "d": false, "e": [7005.5, null]})
        );
        // Both filters have the same shape.
        assert_eq!(RequestKey::of("t", Some(&marked)).unwrap().text, key.text);
        // A value that is its own marker waits for another request.
        let own = json!({"a": 7001});
        assert!(
            RequestKey::of("t", Some(&own))
                .unwrap()
                .markers(&own)
                .is_none()
        );
    }

    #[test]
    fn a_mapping_takes_values_as_they_are_and_constants_that_stay() {
        let filter = json!({"k": 5, "name": "ann"});
        let key = RequestKey::of("t", Some(&filter)).unwrap();
        let (_, markers) = key.markers(&filter).unwrap();
        // The plan: k = $1 (int4) AND name = $2 AND flag = $3 (a role's constant).
        let mapping = key
            .mapping(
                &markers,
                &[int(5), text("ann"), int(0)],
                &[int(7001), text("\u{1}1"), int(0)],
            )
            .unwrap();
        let next = RequestKey::of("t", Some(&json!({"k": 42, "name": "bob"}))).unwrap();
        assert_eq!(
            next.values(&mapping).unwrap(),
            vec![int(42), text("bob"), int(0)]
        );
        // A value that no longer casts to its parameter's type is not sent.
        let wrong = RequestKey::of("t", Some(&json!({"k": 5.5, "name": "bob"}))).unwrap();
        assert_ne!(wrong.text, key.text);
        let huge =
            RequestKey::of("t", Some(&json!({"k": 9_999_999_999_i64, "name": "b"}))).unwrap();
        assert!(huge.values(&mapping).is_none());
    }

    #[test]
    fn transformed_unused_or_branching_values_are_not_mapped() {
        let filter = json!({"name": {"$includes": "ann"}});
        let key = RequestKey::of("t", Some(&filter)).unwrap();
        let (_, markers) = key.markers(&filter).unwrap();
        // `%ann%`: the value is transformed.
        assert!(
            key.mapping(&markers, &[text("%ann%")], &[text("%\u{1}0%")])
                .is_none()
        );
        // The value changed nothing the plan shows: not used, not mapped.
        assert!(key.mapping(&markers, &[], &[]).is_none());
        // A boolean the compiler turned into a constant of the plan.
        let filter = json!({"flag": {"$is": true}});
        let key = RequestKey::of("t", Some(&filter)).unwrap();
        let (_, markers) = key.markers(&filter).unwrap();
        let t = ScalarValue::Boolean(Some(true));
        assert!(
            key.mapping(&markers, std::slice::from_ref(&t), std::slice::from_ref(&t))
                .is_none()
        );
        // A constant of the plan that looks like a marker is not a value.
        let filter = json!({"k": 5});
        let key = RequestKey::of("t", Some(&filter)).unwrap();
        let (_, markers) = key.markers(&filter).unwrap();
        assert!(
            key.mapping(&markers, &[int(5), int(7001)], &[int(7001), int(7001)])
                .is_none()
        );
    }
}
