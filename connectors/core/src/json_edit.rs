//! [`JsonEdit`]s made on a document's text the way PostgreSQL's jsonb
//! operators make them (`||`, `- text`, `- integer`, `#- text[]`), for
//! sources whose JSON functions merge and remove otherwise (MySQL's
//! `JSON_MERGE_PRESERVE` pairs duplicate keys up, `JSON_MERGE_PATCH` merges
//! deeply and drops nulls): the server edits such a document itself. What
//! an edit does not touch keeps its text — a number stays as written
//! (`12.50`, or digits no float holds) — and the errors are PostgreSQL's.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::write::JsonEdit;

impl JsonEdit {
    /// The document `document` (JSON text) becomes, as jsonb's operator
    /// would answer it; `Err` holds PostgreSQL's message for what it
    /// refuses (deleting from a scalar, a path step into an array that is
    /// not an integer) or says the text is not JSON.
    pub fn apply(&self, document: &str) -> Result<String, String> {
        let node = Node::parse(document)?;
        let edited = match self {
            Self::Append(value) => concat(node, Node::parse(&value.to_string())?)?,
            Self::Prepend(value) => concat(Node::parse(&value.to_string())?, node)?,
            Self::DeleteKey(key) => delete_key(node, key)?,
            Self::DeleteElem(index) => delete_elem(node, *index)?,
            Self::DeleteAtPath(path) => match node {
                Node::Scalar(_) => return Err("cannot delete path in scalar".into()),
                // An empty document is answered as it is, whatever the path.
                Node::Object(members) if members.is_empty() => Node::Object(members),
                Node::Array(items) if items.is_empty() => Node::Array(items),
                node => delete_path(node, path, 0)?,
            },
        };
        Ok(edited.text())
    }
}

/// One level of a document: an object's members or an array's items, each
/// kept as its text; anything else as its text.
enum Node {
    Object(Vec<(String, Box<RawValue>)>),
    Array(Vec<Box<RawValue>>),
    Scalar(Box<RawValue>),
}

impl Node {
    fn parse(text: &str) -> Result<Self, String> {
        let not_json = |e: serde_json::Error| format!("the stored document is not JSON: {e}");
        Ok(match text.trim_start().as_bytes().first() {
            Some(b'{') => Self::Object(serde_json::from_str::<Members>(text).map_err(not_json)?.0),
            Some(b'[') => Self::Array(serde_json::from_str(text).map_err(not_json)?),
            _ => Self::Scalar(serde_json::from_str(text).map_err(not_json)?),
        })
    }

    /// The node as one item of an array (`||` wraps what is not an array).
    fn into_items(self) -> Result<Vec<Box<RawValue>>, String> {
        Ok(match self {
            Self::Array(items) => items,
            other => vec![other.raw()?],
        })
    }

    fn raw(self) -> Result<Box<RawValue>, String> {
        match self {
            Self::Scalar(raw) => Ok(raw),
            other => RawValue::from_string(other.text()).map_err(|e| e.to_string()),
        }
    }

    fn text(&self) -> String {
        match self {
            Self::Object(members) => {
                let mut out = String::from("{");
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::String(key.clone()).to_string());
                    out.push(':');
                    out.push_str(value.get());
                }
                out.push('}');
                out
            }
            Self::Array(items) => {
                let items: Vec<&str> = items.iter().map(|item| item.get()).collect();
                format!("[{}]", items.join(","))
            }
            Self::Scalar(raw) => raw.get().to_string(),
        }
    }
}

/// An object's members in their order; a repeated key keeps its last value
/// (as jsonb does) at its first place.
struct Members(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members: Vec<(String, Box<RawValue>)> = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, Box<RawValue>>()? {
                    match members.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, kept)) => *kept = value,
                        None => members.push((key, value)),
                    }
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// `left || right`: two objects merge (the right one's values win); else
/// both are taken as arrays (what is not one is its only item) and joined.
fn concat(left: Node, right: Node) -> Result<Node, String> {
    Ok(match (left, right) {
        (Node::Object(mut members), Node::Object(more)) => {
            for (key, value) in more {
                match members.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, kept)) => *kept = value,
                    None => members.push((key, value)),
                }
            }
            Node::Object(members)
        }
        (left, right) => {
            let mut items = left.into_items()?;
            items.extend(right.into_items()?);
            Node::Array(items)
        }
    })
}

/// `document - key`: the object's member `key`, or the array's string
/// items equal to it.
fn delete_key(node: Node, key: &str) -> Result<Node, String> {
    Ok(match node {
        Node::Scalar(_) => return Err("cannot delete from scalar".into()),
        Node::Object(mut members) => {
            members.retain(|(k, _)| k != key);
            Node::Object(members)
        }
        Node::Array(mut items) => {
            items.retain(|item| {
                serde_json::from_str::<String>(item.get()).map_or(true, |text| text != key)
            });
            Node::Array(items)
        }
    })
}

/// `document - index`: the array's item at `index`, counted from the end
/// when negative; an index past either end removes nothing.
fn delete_elem(node: Node, index: i64) -> Result<Node, String> {
    match node {
        Node::Scalar(_) => Err("cannot delete from scalar".into()),
        Node::Object(_) => Err("cannot delete from object using integer index".into()),
        Node::Array(mut items) => {
            if let Some(at) = position(index, items.len()) {
                items.remove(at);
            }
            Ok(Node::Array(items))
        }
    }
}

/// Where `index` falls in `len` items, counted from the end when negative.
fn position(index: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let at = if index < 0 { len + index } else { index };
    if (0..len).contains(&at) {
        usize::try_from(at).ok()
    } else {
        None
    }
}

/// `document #- path` from `path[level]` on: an object's member by key, an
/// array's item by index (as `- index` counts); a path that leads nowhere
/// (a missing key, a scalar on the way) removes nothing.
fn delete_path(node: Node, path: &[String], level: usize) -> Result<Node, String> {
    let Some(step) = path.get(level) else {
        return Ok(node);
    };
    let last = level + 1 == path.len();
    match node {
        Node::Object(mut members) => {
            if let Some(at) = members.iter().position(|(k, _)| k == step) {
                if last {
                    members.remove(at);
                } else {
                    let child = Node::parse(members[at].1.get())?;
                    members[at].1 = descend(child, path, level)?;
                }
            }
            Ok(Node::Object(members))
        }
        Node::Array(mut items) => {
            let index = array_step(step, level)?;
            if let Some(at) = position(index.into(), items.len()) {
                if last {
                    items.remove(at);
                } else {
                    let child = Node::parse(items[at].get())?;
                    items[at] = descend(child, path, level)?;
                }
            }
            Ok(Node::Array(items))
        }
        scalar @ Node::Scalar(_) => Ok(scalar),
    }
}

/// The member or item at `path[level]` after the rest of the path is
/// deleted from it.
fn descend(child: Node, path: &[String], level: usize) -> Result<Box<RawValue>, String> {
    delete_path(child, path, level + 1)?.raw()
}

/// A path step into an array as PostgreSQL reads it (C's `strtol`: leading
/// white space, a sign, digits and nothing else, within `int`).
fn array_step(step: &str, level: usize) -> Result<i32, String> {
    step.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r'])
        .parse()
        .map_err(|_| {
            format!(
                "path element at position {} is not an integer: \"{step}\"",
                level + 1
            )
        })
}

#[cfg(test)]
mod tests {
    use rstest::rstest;
    use serde_json::json;

    use super::*;

    fn edit(edit: JsonEdit, document: &str) -> Result<String, String> {
        edit.apply(document)
    }

    #[rstest]
    #[case(r#"{"a": 1, "b": {"x": 1}}"#, json!({"b": {"y": 2}, "c": null}), r#"{"a":1,"b":{"y":2},"c":null}"#)]
    #[case("[1, 2]", json!([3]), "[1,2,3]")]
    #[case("[1]", json!({"k": 1}), r#"[1,{"k":1}]"#)]
    #[case(r#"{"k": 1}"#, json!([1]), r#"[{"k":1},1]"#)]
    #[case("1", json!("x"), r#"[1,"x"]"#)]
    #[case(r#"{"p": 12.50}"#, json!({"q": 1}), r#"{"p":12.50,"q":1}"#)]
    fn appends_as_jsonb_concatenates(
        #[case] document: &str,
        #[case] value: serde_json::Value,
        #[case] expected: &str,
    ) {
        assert_eq!(edit(JsonEdit::Append(value), document).unwrap(), expected);
    }

    #[test]
    fn prepends_let_the_document_win() {
        let prepended = edit(JsonEdit::Prepend(json!({"a": 0, "z": 0})), r#"{"a": 1}"#);
        assert_eq!(prepended.unwrap(), r#"{"a":1,"z":0}"#);
    }

    #[test]
    fn deletes_keys_items_and_paths() {
        let key = JsonEdit::DeleteKey("a".into());
        assert_eq!(
            edit(key.clone(), r#"{"a": 1, "b": 2}"#).unwrap(),
            r#"{"b":2}"#
        );
        assert_eq!(
            edit(key.clone(), r#"["a", {"a": 1}, "b", "a"]"#).unwrap(),
            r#"[{"a": 1},"b"]"#
        );
        assert_eq!(edit(key, "\"a\"").unwrap_err(), "cannot delete from scalar");
        assert_eq!(
            edit(JsonEdit::DeleteElem(-1), "[1, 2, 3]").unwrap(),
            "[1,2]"
        );
        assert_eq!(
            edit(JsonEdit::DeleteElem(3), "[1, 2, 3]").unwrap(),
            "[1,2,3]"
        );
        assert_eq!(
            edit(JsonEdit::DeleteElem(0), "{}").unwrap_err(),
            "cannot delete from object using integer index"
        );
        let path = |p: &[&str]| JsonEdit::DeleteAtPath(p.iter().map(|s| s.to_string()).collect());
        let document = r#"{"a": [{"b": 1, "c": 2}, 3], "d": 4}"#;
        assert_eq!(
            edit(path(&["a", "0", "b"]), document).unwrap(),
            r#"{"a":[{"c":2},3],"d":4}"#
        );
        assert_eq!(
            edit(path(&["a", "-1"]), document).unwrap(),
            r#"{"a":[{"b": 1, "c": 2}],"d":4}"#
        );
        assert_eq!(
            edit(path(&["d", "x"]), document).unwrap(),
            r#"{"a":[{"b": 1, "c": 2}, 3],"d":4}"#
        );
        assert_eq!(
            edit(path(&["a", "x"]), document).unwrap_err(),
            "path element at position 2 is not an integer: \"x\""
        );
        assert_eq!(
            edit(path(&[]), "7").unwrap_err(),
            "cannot delete path in scalar"
        );
    }
}
