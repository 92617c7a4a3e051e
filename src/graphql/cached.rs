//! Query answers kept for a while, as Hasura's `@cached` keeps them:
//! `query Sales @cached(ttl: 120) { … }` is answered from the answer kept
//! for the same document, variables and rows read (the role, and the user
//! id and claims when the role's read rules name the caller: a role's
//! viewers share its answers otherwise) when it is younger than `ttl` seconds (default 60, at most
//! `graphql.cache_max_ttl_secs`); `@cached(refresh: true)` runs the query
//! and keeps its new answer. An answer with errors is not kept. Answers
//! are kept under the catalog's and the permissions' versions they were
//! computed under, so a changed rule or a refreshed catalog is never
//! answered from before it. Answers take at most `graphql.cache_max_mb`
//! in all (none more than a quarter of it); past that, the expired ones
//! go, then all. async-graphql knows no such directive: it is read here
//! and blanked out of the document before the document is parsed for good.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_graphql::Value as GqlValue;
use async_graphql::parser::types::OperationType;
use serde_json::value::RawValue;

use crate::auth::Principal;
use crate::state::AppState;

/// What an operation's `@cached` asks, and where it was in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    pub ttl: Duration,
    pub refresh: bool,
    /// The directive's bytes in the document (blanked there).
    span: std::ops::Range<usize>,
}

/// `ttl` when `@cached` gives none (Hasura's).
const DEFAULT_TTL: Duration = Duration::from_secs(60);

/// The directive's name, as written.
const DIRECTIVE: &str = "@cached";

/// Takes `@cached` off the operation `request` runs: its arguments, and
/// the directive blanked in the text (so positions in errors stay right).
/// `Ok(None)`: the operation has none (a document that does not name
/// `@cached` is not even parsed; one that does not parse is left to
/// async-graphql to report). `Err`: a wrong use, as a message.
pub fn take(
    request: &mut async_graphql::Request,
    max_ttl: Duration,
) -> Result<Option<Cached>, String> {
    if !request.query.contains(DIRECTIVE) {
        return Ok(None);
    }
    let Ok(document) = async_graphql::parser::parse_query(&request.query) else {
        return Ok(None);
    };
    let Some(operation) = super::chosen(&document, request.operation_name.as_deref()) else {
        return Ok(None);
    };
    let Some(directive) = operation
        .node
        .directives
        .iter()
        .find(|d| d.node.name.node == DIRECTIVE[1..])
    else {
        return Ok(None);
    };
    if operation.node.ty != OperationType::Query {
        return Err(
            "`@cached` keeps the answers of queries, not of mutations or subscriptions".into(),
        );
    }
    let mut cached = Cached {
        ttl: DEFAULT_TTL,
        refresh: false,
        span: 0..0,
    };
    for (name, value) in &directive.node.arguments {
        let value = value.node.clone().into_const_with(|variable| {
            request
                .variables
                .get(&variable)
                .cloned()
                .ok_or_else(|| format!("variable `${variable}` is not given"))
        })?;
        match (name.node.as_str(), value) {
            ("ttl", GqlValue::Number(seconds)) => {
                let most = max_ttl.as_secs();
                cached.ttl = seconds
                    .as_u64()
                    .filter(|s| (1..=most).contains(s))
                    .map(Duration::from_secs)
                    .ok_or_else(|| {
                        format!(
                            "`@cached(ttl:)` is 1 to {most} seconds (`graphql.cache_max_ttl_secs`)"
                        )
                    })?;
            }
            ("refresh", GqlValue::Boolean(refresh)) => cached.refresh = refresh,
            (name, _) => {
                return Err(format!(
                    "`@cached` takes `ttl: Int` and `refresh: Boolean`, not this `{name}`"
                ));
            }
        }
    }
    let start = super::byte_offset(&request.query, directive.pos);
    let end = directive_end(&request.query, start).ok_or("`@cached(…)`'s arguments do not end")?;
    request
        .query
        .replace_range(start..end, &" ".repeat(end - start));
    cached.span = start..end;
    Ok(Some(cached))
}

/// Where the directive starting at `start` (its `@`) ends: after its name,
/// or after the parenthesis closing its arguments (strings in them
/// skipped). `None`: unclosed.
fn directive_end(text: &str, start: usize) -> Option<usize> {
    let after_name = start + DIRECTIVE.len();
    let rest = text.get(after_name..)?;
    let open = rest.len() - rest.trim_start_matches([' ', '\t', '\n', '\r', ',']).len();
    if !rest[open..].starts_with('(') {
        return Some(after_name);
    }
    let mut chars = rest.char_indices().skip(open + 1);
    while let Some((i, c)) = chars.next() {
        match c {
            ')' => return Some(after_name + i + 1),
            '"' => {
                if rest[i..].starts_with("\"\"\"") {
                    let close = rest[i + 3..].find("\"\"\"")?;
                    let skip = rest[i..i + 3 + close + 3].chars().count() - 1;
                    chars.nth(skip - 1);
                } else {
                    let mut escaped = false;
                    for (_, c) in chars.by_ref() {
                        match c {
                            '\\' if !escaped => escaped = true,
                            '"' if !escaped => break,
                            _ => escaped = false,
                        }
                    }
                }
            }
            _ => {}
        }
    }
    None
}

/// The key of `request`'s answer for `principal`: everything the answer
/// depends on — the catalog's and the permissions' versions, the role and
/// what its rules read of the caller, the document (without its
/// `@cached`: a refresh or another `ttl` is the same query) and its
/// variables.
pub fn key(
    state: &AppState,
    principal: &Principal,
    request: &async_graphql::Request,
    cached: &Cached,
) -> String {
    let text = &request.query;
    let query = [&text[..cached.span.start], &text[cached.span.end..]].concat();
    let caller = state
        .permissions
        .reads_depend_on_caller(&principal.role)
        .then_some((&principal.user_id, &principal.claims));
    serde_json::json!([
        state.cache.snapshot().version,
        state.permissions.version(),
        principal.role,
        caller,
        request.operation_name,
        query,
        request.variables,
    ])
    .to_string()
}

/// The kept answers, as written, by [`key`].
#[derive(Default)]
pub struct Answers {
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    entries: HashMap<String, Entry>,
    /// The keys' and answers' bytes.
    bytes: usize,
}

struct Entry {
    answer: Arc<RawValue>,
    until: Instant,
}

impl Entry {
    fn bytes(&self, key: &str) -> usize {
        key.len() + self.answer.get().len()
    }
}

impl Answers {
    /// The answer kept under `key`, unless it expired.
    pub fn get(&self, key: &str) -> Option<Arc<RawValue>> {
        let kept = self.lock();
        let entry = kept.entries.get(key)?;
        (entry.until > Instant::now()).then(|| entry.answer.clone())
    }

    /// Keeps `answer` under `key` for `ttl`, within `most` bytes in all.
    pub fn keep(&self, key: String, answer: Box<RawValue>, ttl: Duration, most: usize) {
        let entry = Entry {
            answer: Arc::from(answer),
            until: Instant::now() + ttl,
        };
        let bytes = entry.bytes(&key);
        if bytes > most / 4 {
            return;
        }
        let mut kept = self.lock();
        if let Some(old) = kept.entries.remove(&key) {
            kept.bytes -= old.bytes(&key);
        }
        if kept.bytes + bytes > most {
            let now = Instant::now();
            kept.entries.retain(|_, entry| entry.until > now);
            kept.bytes = kept.entries.iter().map(|(k, e)| e.bytes(k)).sum();
            if kept.bytes + bytes > most {
                kept.entries.clear();
                kept.bytes = 0;
            }
        }
        kept.bytes += bytes;
        kept.entries.insert(key, entry);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(
        query: &str,
        variables: serde_json::Value,
    ) -> (Result<Option<Cached>, String>, String) {
        let mut request = async_graphql::Request::new(query)
            .variables(async_graphql::Variables::from_json(variables));
        let taken = take(&mut request, Duration::from_secs(300));
        (taken, request.query)
    }

    #[test]
    fn the_directive_is_read_and_blanked_in_place() {
        let (cached, text) = taken(
            "query Q($t: Int) @cached(ttl: $t, refresh: true) { a }",
            serde_json::json!({"t": 120}),
        );
        let cached = cached.unwrap().unwrap();
        assert_eq!(
            (cached.ttl, cached.refresh),
            (Duration::from_secs(120), true)
        );
        let directive = "@cached(ttl: $t, refresh: true)";
        assert_eq!(
            text,
            format!("query Q($t: Int) {} {{ a }}", " ".repeat(directive.len()))
        );
        let (cached, text) = taken("query @cached { a }", serde_json::json!({}));
        assert_eq!(cached.unwrap().unwrap().ttl, DEFAULT_TTL);
        assert_eq!(text, "query         { a }");
        // Strings in the arguments are skipped (a wrong argument all the same).
        assert_eq!(
            directive_end(r#"@cached(x: "a)\"b", y: """)""") { a }"#, 0),
            Some(31)
        );
        assert_eq!(directive_end("@cached(ttl: 1", 0), None);
        for wrong in [
            "mutation @cached { a }",
            "query @cached(ttl: 0) { a }",
            "query @cached(ttl: 301) { a }",
            "query @cached(ttl: \"60\") { a }",
            "query @cached(when: 1) { a }",
            "query Q($t: Int) @cached(ttl: $t) { a }",
        ] {
            assert!(taken(wrong, serde_json::json!({})).0.is_err(), "{wrong}");
        }
        // Another operation's directive, or none: the text is left alone.
        let (cached, text) = taken("{ a }", serde_json::json!({}));
        assert_eq!((cached, text.as_str()), (Ok(None), "{ a }"));
    }

    #[test]
    fn answers_expire_and_stay_within_their_bytes() {
        let answers = Answers::default();
        let answer = |text: &str| RawValue::from_string(text.to_string()).unwrap();
        answers.keep("a".into(), answer("[1]"), Duration::from_secs(60), 100);
        assert_eq!(answers.get("a").unwrap().get(), "[1]");
        answers.keep("b".into(), answer("[2]"), Duration::ZERO, 100);
        assert!(answers.get("b").is_none());
        // Too large for a quarter of the room: not kept.
        answers.keep(
            "c".into(),
            answer(&format!("\"{}\"", "x".repeat(30))),
            Duration::from_secs(60),
            100,
        );
        assert!(answers.get("c").is_none());
        // Past the room, the expired go first, then all.
        for i in 0..30 {
            answers.keep(format!("k{i}"), answer("[3]"), Duration::from_secs(60), 100);
        }
        assert!(answers.lock().bytes <= 100);
        assert!(answers.get("k29").is_some());
    }
}
