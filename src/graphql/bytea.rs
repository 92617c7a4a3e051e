//! `bytea` values in GraphQL are base64 (the standard alphabet, padded):
//! what JSON clients decode with one call. The REST path, the filters and
//! the connectors hold bytes as PostgreSQL's `\x` hexadecimal text, so
//! answers are re-encoded on the way out and inputs on the way in.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::shape::{Scalar, Shape};
use crate::error::ApiError;

/// `\x0a1b` as base64 (`Chs=`); `None` for text that is not `\x` hex.
pub fn to_base64(hex_text: &str) -> Option<String> {
    let digits = hex_text.strip_prefix("\\x")?;
    if digits.len() % 2 != 0 {
        return None;
    }
    let bytes = (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(digits.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some(STANDARD.encode(bytes))
}

/// Base64 as `\x` hex text; `None` when it is not base64.
pub fn from_base64(text: &str) -> Option<String> {
    let bytes = STANDARD.decode(text).ok()?;
    let mut hex = String::with_capacity(2 + bytes.len() * 2);
    hex.push_str("\\x");
    for byte in bytes {
        hex.push_str(&format!("{byte:02x}"));
    }
    Some(hex)
}

/// Re-encodes the `bytea` values of an input object of `shape` (a row to
/// insert, `_set`) from base64; a value that is not base64 is refused
/// with its path.
pub fn decode_input(object: &mut Value, shape: &Shape, path: &str) -> Result<(), ApiError> {
    let Value::Object(entries) = object else {
        return Ok(());
    };
    for (name, value) in entries.iter_mut() {
        let is_bytes = shape
            .column(name)
            .is_some_and(|c| c.scalar == Scalar::Bytea);
        if let (true, Value::String(text)) = (is_bytes, &*value) {
            let hex = from_base64(text).ok_or_else(|| {
                ApiError::bad_request(format!("`{name}` must be base64"))
                    .at(format!("{path}.{name}"))
            })?;
            *value = Value::String(hex);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_base64_round_trip() {
        assert_eq!(to_base64("\\x0a1b").as_deref(), Some("Chs="));
        assert_eq!(to_base64("\\x").as_deref(), Some(""));
        assert_eq!(from_base64("Chs=").as_deref(), Some("\\x0a1b"));
        assert_eq!(from_base64("").as_deref(), Some("\\x"));
        let all: String = (0..=255u8).map(|b| format!("{b:02x}")).collect();
        let hex = format!("\\x{all}");
        assert_eq!(from_base64(&to_base64(&hex).unwrap()), Some(hex));
    }

    #[test]
    fn what_is_not_an_encoding_is_refused() {
        assert_eq!(to_base64("0a1b"), None);
        assert_eq!(to_base64("\\x0a1"), None);
        assert_eq!(to_base64("\\xzz"), None);
        assert_eq!(from_base64("not base64!"), None);
    }
}
