//! API keys: made by an admin, shown once, stored only as a SHA-256 hash,
//! bound to a role (and optionally a user id and claims), with an optional
//! expiry. Revoking takes effect on the next request (every request reads
//! the store); rotating makes a new key and lets the old one work until a
//! grace period ends.

use chrono::{DateTime, SubsecRound, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A key as stored and listed (never with its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub claims: Value,
    /// The first characters of the key, to tell keys apart in lists.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
    /// The key this one replaced by rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_from: Option<String>,
}

impl ApiKey {
    /// Usable at `now`: not revoked, not expired.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| now < at)
    }
}

/// The id the bootstrap admin token is stored under.
pub const BOOTSTRAP_ID: &str = "bootstrap";

/// A new secret: `trb_` and 40 hex digits (160 random bits).
pub fn new_secret() -> String {
    let bytes: [u8; 20] = rand::rng().random();
    format!("trb_{}", hex::encode(bytes))
}

/// The stored form of a secret: its SHA-256 in lowercase hex. Made on
/// every authenticated request, so written digit by digit into a string of
/// the right size (`hex::encode` costs four times the work).
pub fn hash(secret: &str) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(secret.as_bytes());
    let mut hex = String::with_capacity(2 * digest.len());
    for byte in digest {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    hex
}

/// What lists show of a secret.
pub fn prefix(secret: &str) -> String {
    secret.chars().take(8).collect()
}

/// A new key's record (id, prefix, creation time) and its secret.
pub fn create(
    name: String,
    role: String,
    user_id: Option<String>,
    claims: Value,
    expires_at: Option<DateTime<Utc>>,
) -> (ApiKey, String) {
    let secret = new_secret();
    let key = ApiKey {
        id: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
        name,
        role,
        user_id,
        claims,
        prefix: prefix(&secret),
        // Stored with microseconds: keep no more, so a stored key equals this one.
        created_at: Utc::now().trunc_subsecs(6),
        expires_at,
        revoked_at: None,
        rotated_from: None,
    };
    (key, secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_only_their_hash_is_kept() {
        let (key, secret) = create("ci".into(), "reader".into(), None, Value::Null, None);
        let (_, other) = create("ci".into(), "reader".into(), None, Value::Null, None);
        assert_ne!(secret, other);
        assert!(secret.starts_with("trb_") && secret.len() == 44);
        assert_eq!(hash(&secret).len(), 64);
        assert_ne!(hash(&secret), hash(&other));
        assert!(secret.starts_with(&key.prefix));
        assert!(!serde_json::to_string(&key).unwrap().contains(&secret));
    }

    #[test]
    fn a_secret_hashes_to_the_stored_form_keys_were_kept_in() {
        // SHA-256 of "abc", lowercase hex: what stores written before hold.
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn expiry_and_revocation_end_a_key() {
        let now = Utc::now();
        let (mut key, _) = create("k".into(), "r".into(), None, Value::Null, None);
        assert!(key.is_active(now));
        key.expires_at = Some(now);
        assert!(!key.is_active(now), "expired at that very instant");
        key.expires_at = Some(now + chrono::Duration::seconds(1));
        assert!(key.is_active(now));
        key.revoked_at = Some(now);
        assert!(!key.is_active(now));
    }
}
