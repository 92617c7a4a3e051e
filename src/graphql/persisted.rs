//! Apollo's automatic persisted queries: a client names a document by its
//! SHA-256 (`"extensions": {"persistedQuery": {"version": 1,
//! "sha256Hash": …}}`) instead of sending its text. An unknown hash is
//! answered `PersistedQueryNotFound` (code `persisted_query_not_found`);
//! the client then sends the text with its hash, which is checked and the
//! text kept for the requests after. Texts are not per role: each request
//! is still validated against its caller's schema.

use std::sync::Arc;

use async_graphql::{ServerError, Value as GqlValue};
use sha2::{Digest, Sha256};

use super::bounded::Bounded;

/// Texts by their SHA-256 (lowercase hex).
#[derive(Default)]
pub struct Persisted {
    texts: Bounded<String, Arc<str>>,
}

impl Persisted {
    /// Longer texts run but are not kept (their client sends them each time).
    const MAX_TEXT: usize = 64 * 1024;

    /// Gives a request that names its document by hash the document's
    /// text, and keeps the text a request sends with its hash. `Err`: the
    /// error to answer instead (nothing runs).
    pub fn resolve(&self, request: &mut async_graphql::Request) -> Result<(), ServerError> {
        let Some(given) = request.extensions.remove("persistedQuery") else {
            return Ok(());
        };
        let GqlValue::Object(given) = given else {
            return Err(error(
                "`extensions.persistedQuery` must be an object",
                "invalid_input",
            ));
        };
        if given.get("version") != Some(&GqlValue::Number(1.into())) {
            return Err(error(
                "`extensions.persistedQuery.version` must be 1 (the only version there is)",
                "invalid_input",
            ));
        }
        let Some(GqlValue::String(hash)) = given.get("sha256Hash") else {
            return Err(error(
                "`extensions.persistedQuery.sha256Hash` must be a string",
                "invalid_input",
            ));
        };
        let hash = hash.to_ascii_lowercase();
        if request.query.is_empty() {
            let text = self.texts.get(&hash);
            return match text {
                Some(text) => {
                    request.query = text.to_string();
                    Ok(())
                }
                None => Err(error("PersistedQueryNotFound", "persisted_query_not_found")),
            };
        }
        if hex::encode(Sha256::digest(request.query.as_bytes())) != hash {
            return Err(error(
                "the query's SHA-256 is not `extensions.persistedQuery.sha256Hash`",
                "invalid_input",
            ));
        }
        if request.query.len() <= Self::MAX_TEXT {
            self.texts.insert(hash, Arc::from(request.query.as_str()));
        }
        Ok(())
    }
}

fn error(message: &str, code: &str) -> ServerError {
    let mut error = ServerError::new(message, None);
    super::set_code(&mut error, code);
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: &str, persisted: serde_json::Value) -> async_graphql::Request {
        serde_json::from_value(serde_json::json!({
            "query": query, "extensions": {"persistedQuery": persisted}
        }))
        .expect("a request")
    }

    #[test]
    fn a_hash_names_a_text_sent_once_with_it() {
        let store = Persisted::default();
        let text = "{ nation { n_name } }";
        let hash = hex::encode(Sha256::digest(text.as_bytes()));
        let by_hash = || request("", serde_json::json!({"version": 1, "sha256Hash": hash}));

        let unknown = store.resolve(&mut by_hash()).expect_err("not sent yet");
        assert_eq!(unknown.message, "PersistedQueryNotFound");
        let mut sent = request(text, serde_json::json!({"version": 1, "sha256Hash": hash}));
        store.resolve(&mut sent).expect("the text matches its hash");
        assert_eq!(sent.query, text);
        let mut named = by_hash();
        store.resolve(&mut named).expect("known now");
        assert_eq!(named.query, text);
        assert!(named.extensions.is_empty());

        // A text under another's hash, another version, no hash: refused.
        for persisted in [
            serde_json::json!({"version": 1, "sha256Hash": "00"}),
            serde_json::json!({"version": 2, "sha256Hash": hash}),
            serde_json::json!({"version": 1}),
        ] {
            let refused = store
                .resolve(&mut request(text, persisted.clone()))
                .expect_err("refused");
            assert_eq!(
                refused.extensions.map(|e| e.get("code").cloned()),
                Some(Some(GqlValue::from("invalid_input"))),
                "{persisted}"
            );
        }
        // A request without the extension is left alone.
        let mut plain: async_graphql::Request =
            serde_json::from_value(serde_json::json!({"query": text})).expect("a request");
        store.resolve(&mut plain).expect("nothing to do");
        assert_eq!(plain.query, text);
    }
}
