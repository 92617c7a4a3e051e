//! Stable hashes of catalog pieces, used for versions and drift detection.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// SHA-256 of a value's canonical JSON, as 16 hex digits (64 bits are plenty to
/// tell versions of one table apart).
pub fn hash_json<T: Serialize + ?Sized>(value: &T) -> String {
    // Serializing plain derive(Serialize) data to a Vec cannot fail; an empty
    // input would still hash consistently if it ever did.
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    short_hex(&Sha256::digest(&bytes))
}

/// SHA-256 over a sequence of strings (each terminated, so `["ab","c"]` and
/// `["a","bc"]` differ), as 16 hex digits.
pub fn hash_iter<I, S>(parts: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_ref().as_bytes());
        hasher.update([0u8]);
    }
    short_hex(&hasher.finalize())
}

fn short_hex(digest: &[u8]) -> String {
    hex::encode(&digest[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iter_hash_separates_parts() {
        assert_ne!(hash_iter(["ab", "c"]), hash_iter(["a", "bc"]));
        assert_eq!(
            hash_iter(["a", "b"]),
            hash_iter(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(hash_iter(["a"]).len(), 16);
    }
}
