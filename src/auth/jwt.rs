//! JWT bearer tokens from an identity provider: HS256 with a shared secret,
//! or RS256 / ES256 with keys from a JWKS URL (given, or found by OIDC
//! discovery from the issuer). [`JwtVerifier::verify`] checks the token and
//! reads the role, allowed roles and user id at configurable claim paths.
//!
//! Keys from a JWKS are cached. A token whose key id is not in the cache
//! triggers one refetch (keys rotate), but refetches are at most one per
//! [`REFETCH_MIN_INTERVAL`], so tokens with made-up key ids cannot make us
//! hammer the identity provider; a failed refetch keeps the last good keys.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

/// The `[jwt]` table of the config file.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// HS256 shared secret, at least 32 bytes.
    pub secret: Option<String>,
    /// Where the RS256 / ES256 public keys are (a JWKS document).
    pub jwks_url: Option<String>,
    /// Expected `iss`; with `discovery`, also where the keys are found.
    pub issuer: Option<String>,
    /// Find the JWKS URL at `{issuer}/.well-known/openid-configuration`.
    #[serde(default)]
    pub discovery: bool,
    /// Expected `aud` (the token's may be a string or an array holding it).
    pub audience: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    #[serde(default = "default_leeway_secs")]
    pub leeway_secs: u64,
    /// Claim path of the role (dotted, or a JSON Pointer starting with `/`).
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
    /// Claim path of the roles the token may pick from.
    #[serde(default = "default_allowed_roles_claim")]
    pub allowed_roles_claim: String,
    /// Claim path of the user id.
    #[serde(default = "default_user_id_claim")]
    pub user_id_claim: String,
}

fn default_leeway_secs() -> u64 {
    30
}

fn default_role_claim() -> String {
    "role".into()
}

fn default_allowed_roles_claim() -> String {
    "allowed_roles".into()
}

fn default_user_id_claim() -> String {
    "sub".into()
}

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtConfig")
            .field("secret", &self.secret.as_ref().map(|_| "[REDACTED]"))
            .field("jwks_url", &self.jwks_url)
            .field("issuer", &self.issuer)
            .field("discovery", &self.discovery)
            .field("audience", &self.audience)
            .field("leeway_secs", &self.leeway_secs)
            .field("role_claim", &self.role_claim)
            .field("allowed_roles_claim", &self.allowed_roles_claim)
            .field("user_id_claim", &self.user_id_claim)
            .finish()
    }
}

/// Shortest HS256 secret accepted: the hash's output size (RFC 7518 §3.2).
const MIN_SECRET_BYTES: usize = 32;

/// Unknown key ids trigger a JWKS refetch at most this often.
pub const REFETCH_MIN_INTERVAL: Duration = Duration::from_secs(10);

/// Cached keys older than this are fetched again before use, so a key the
/// identity provider withdrew stops being accepted.
const KEYS_MAX_AGE: Duration = Duration::from_secs(15 * 60);

/// Longest a JWKS or discovery request may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest algorithm name or key id quoted back in an error (they come from
/// the token, so from anyone).
const QUOTED_MAX_CHARS: usize = 64;

/// Why a token is refused, or the configuration unusable. The message is
/// meant for the client: it says what is wrong without echoing secrets.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("invalid [jwt] config: {0}")]
    Config(String),
    #[error("token is malformed")]
    Malformed,
    #[error("algorithm `{0}` is not accepted")]
    Algorithm(String),
    #[error("token has no key id (`kid`)")]
    MissingKeyId,
    #[error("unknown key id `{0}`")]
    UnknownKey(String),
    /// The identity provider's keys could not be fetched; `reason` is for
    /// the server log, not the client.
    #[error("the identity provider's signing keys are unavailable")]
    KeysUnavailable { reason: String },
    #[error("token signature is not valid")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token audience is not accepted")]
    Audience,
    #[error("token issuer is not accepted")]
    Issuer,
    #[error("token has no `{0}` claim")]
    MissingClaim(String),
    #[error("claim `{path}` must be {expected}")]
    Claim {
        path: String,
        expected: &'static str,
    },
}

/// Who a verified token says the caller is.
#[derive(Debug, Clone, PartialEq)]
pub struct JwtIdentity {
    pub role: Option<String>,
    pub allowed_roles: Vec<String>,
    pub user_id: Option<String>,
    /// The whole payload.
    pub claims: Value,
}

impl JwtConfig {
    /// Checks that exactly one key source is configured and every value is
    /// usable; the message names the key at fault.
    pub fn validate(&self) -> Result<(), JwtError> {
        self.key_source().map(|_| ())?;
        self.claim_paths().map(|_| ())
    }

    fn key_source(&self) -> Result<KeySource, JwtError> {
        let issuer = self.issuer.as_deref().filter(|i| !i.is_empty());
        match (&self.secret, &self.jwks_url, self.discovery) {
            (Some(_), Some(_), _) | (Some(_), _, true) => Err(config(
                "give either `secret` (HS256) or `jwks_url` / `discovery` (RS256, ES256), not both",
            )),
            (Some(secret), None, false) => {
                if secret.len() < MIN_SECRET_BYTES {
                    return Err(config(&format!(
                        "`secret` must be at least {MIN_SECRET_BYTES} bytes"
                    )));
                }
                Ok(KeySource::Secret(DecodingKey::from_secret(
                    secret.as_bytes(),
                )))
            }
            (None, Some(_), true) => Err(config(
                "`jwks_url` and `discovery = true` exclude each other: give one",
            )),
            (None, Some(url), false) => Ok(KeySource::Jwks(remote_url("jwks_url", url)?)),
            (None, None, true) => {
                let Some(issuer) = issuer else {
                    return Err(config("`discovery = true` needs `issuer`"));
                };
                let document = format!(
                    "{}/.well-known/openid-configuration",
                    issuer.trim_end_matches('/')
                );
                Ok(KeySource::Discovery {
                    issuer: issuer.to_string(),
                    document: remote_url("issuer", &document)?,
                })
            }
            (None, None, false) => Err(config(
                "give `secret` (HS256), `jwks_url` (RS256, ES256), \
                 or `issuer` with `discovery = true`",
            )),
        }
    }

    fn claim_paths(&self) -> Result<[ClaimPath; 3], JwtError> {
        Ok([
            ClaimPath::parse("role_claim", &self.role_claim)?,
            ClaimPath::parse("allowed_roles_claim", &self.allowed_roles_claim)?,
            ClaimPath::parse("user_id_claim", &self.user_id_claim)?,
        ])
    }
}

fn config(message: &str) -> JwtError {
    JwtError::Config(message.to_string())
}

/// A URL keys are fetched from: https, or http on a loopback address only
/// (anyone on the path could otherwise hand us their own keys).
fn remote_url(name: &str, text: &str) -> Result<Url, JwtError> {
    let url = Url::parse(text)
        .map_err(|e| JwtError::Config(format!("`{name}`: `{text}` is not a URL ({e})")))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(url::Host::Domain(domain)) => domain == "localhost",
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(JwtError::Config(format!(
            "`{name}`: `{text}` must be an https:// URL (http:// only on a loopback address)"
        ))),
    }
}

/// Where a claim is in the payload: `role`, `app.role`, or a JSON Pointer
/// (`/https:~1~1hasura.io~1jwt~1claims/x-hasura-default-role`) for keys
/// that contain dots or slashes. A segment of digits also indexes an array.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ClaimPath {
    text: String,
    segments: Vec<String>,
}

impl ClaimPath {
    fn parse(name: &str, text: &str) -> Result<Self, JwtError> {
        let invalid = |why: &str| JwtError::Config(format!("`{name}`: `{text}` {why}"));
        let segments: Vec<String> = if let Some(pointer) = text.strip_prefix('/') {
            pointer
                .split('/')
                .map(|segment| {
                    unescape_pointer(segment).ok_or_else(|| {
                        invalid("is not a JSON Pointer (`~` must be followed by 0 or 1)")
                    })
                })
                .collect::<Result<_, _>>()?
        } else {
            text.split('.').map(str::to_string).collect()
        };
        if text.is_empty() || (!text.starts_with('/') && segments.iter().any(String::is_empty)) {
            return Err(invalid(
                "is not a claim path like `role` or `app.role` (or a JSON Pointer like `/app/role`)",
            ));
        }
        Ok(Self {
            text: text.to_string(),
            segments,
        })
    }

    fn lookup<'a>(&self, claims: &'a Value) -> Option<&'a Value> {
        self.segments
            .iter()
            .try_fold(claims, |value, segment| match value {
                Value::Object(map) => map.get(segment),
                Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            })
            .filter(|value| !value.is_null())
    }

    fn string(&self, claims: &Value) -> Result<Option<String>, JwtError> {
        match self.lookup(claims) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(self.wrong_type("a string")),
        }
    }

    fn wrong_type(&self, expected: &'static str) -> JwtError {
        JwtError::Claim {
            path: self.text.clone(),
            expected,
        }
    }
}

/// RFC 6901: `~1` is `/`, `~0` is `~`; any other `~` is an error.
fn unescape_pointer(segment: &str) -> Option<String> {
    let mut out = String::with_capacity(segment.len());
    let mut chars = segment.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Where the verifying keys come from (the configuration, resolved).
enum KeySource {
    Secret(DecodingKey),
    Jwks(Url),
    /// The issuer's OIDC discovery document.
    Discovery {
        issuer: String,
        document: Url,
    },
}

/// Checks tokens against the configured keys and claims.
pub struct JwtVerifier {
    keys: Keys,
    issuer: Option<String>,
    audience: Option<String>,
    leeway_secs: u64,
    role: ClaimPath,
    allowed_roles: ClaimPath,
    user_id: ClaimPath,
}

enum Keys {
    Secret(DecodingKey),
    Remote(Box<RemoteKeys>),
}

/// Keys from a JWKS document, fetched when needed.
struct RemoteKeys {
    http: reqwest::Client,
    /// The JWKS URL, or the discovery document's that names it.
    source: KeySource,
    /// The last good key set; read without waiting on a fetch.
    current: ArcSwap<KeySet>,
    /// Held while fetching, so concurrent requests wait for one fetch.
    fetching: tokio::sync::Mutex<FetchState>,
}

#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, RemoteKey>,
    /// When the set was fetched; `None` before the first good fetch.
    fetched_at: Option<Instant>,
    /// Counts good fetches, so a request that waited on another's fetch sees it happened.
    generation: u64,
}

struct RemoteKey {
    key: DecodingKey,
    algorithm: Algorithm,
}

#[derive(Default)]
struct FetchState {
    last_attempt: Option<Instant>,
    /// The JWKS URL a discovery document named.
    discovered_jwks: Option<Url>,
}

/// The part of the token header read before anything is trusted.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

#[derive(Deserialize)]
struct DiscoveryDocument {
    issuer: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<Value>,
}

impl JwtVerifier {
    /// Checks the configuration and prepares the keys (no network: JWKS keys
    /// are fetched on the first token that needs them).
    pub fn new(config: JwtConfig) -> Result<Self, JwtError> {
        let source = config.key_source()?;
        let [role, allowed_roles, user_id] = config.claim_paths()?;
        let keys = match source {
            KeySource::Secret(key) => Keys::Secret(key),
            remote @ (KeySource::Jwks(_) | KeySource::Discovery { .. }) => {
                // reqwest takes the process's rustls provider; a library
                // user may not have installed it yet.
                tributary_connector::tls::install_crypto_provider();
                let http = reqwest::Client::builder()
                    .timeout(FETCH_TIMEOUT)
                    .build()
                    .map_err(|e| JwtError::Config(format!("cannot build the HTTP client: {e}")))?;
                Keys::Remote(Box::new(RemoteKeys {
                    http,
                    source: remote,
                    current: ArcSwap::from_pointee(KeySet::default()),
                    fetching: tokio::sync::Mutex::new(FetchState::default()),
                }))
            }
        };
        Ok(Self {
            keys,
            issuer: config.issuer.filter(|i| !i.is_empty()),
            audience: config.audience.filter(|a| !a.is_empty()),
            leeway_secs: config.leeway_secs,
            role,
            allowed_roles,
            user_id,
        })
    }

    /// Verifies `token` (without `Bearer `) and reads the identity from it.
    pub async fn verify(&self, token: &str) -> Result<JwtIdentity, JwtError> {
        self.verify_at(token, Instant::now()).await
    }

    /// [`Self::verify`] with the clock that paces JWKS fetches given (tests
    /// move it; `exp` and `nbf` are always checked against the system time).
    async fn verify_at(&self, token: &str, now: Instant) -> Result<JwtIdentity, JwtError> {
        let header = read_header(token)?;
        let algorithm = match (&self.keys, header.alg.as_str()) {
            (Keys::Secret(_), "HS256") => Algorithm::HS256,
            (Keys::Remote(_), "RS256") => Algorithm::RS256,
            (Keys::Remote(_), "ES256") => Algorithm::ES256,
            (_, other) => return Err(JwtError::Algorithm(quoted(other))),
        };
        let remote_key;
        let key = match &self.keys {
            Keys::Secret(key) => key,
            Keys::Remote(remote) => {
                let kid = header.kid.ok_or(JwtError::MissingKeyId)?;
                remote_key = remote.key(&kid, now).await?;
                if remote_key.algorithm != algorithm {
                    return Err(JwtError::Algorithm(quoted(&header.alg)));
                }
                &remote_key.key
            }
        };
        let claims = jsonwebtoken::decode::<Value>(token, key, &self.validation(algorithm))
            .map_err(|e| from_jsonwebtoken(&e, &header.alg))?
            .claims;
        if !claims.is_object() {
            return Err(JwtError::Malformed);
        }
        let allowed_roles = match self.allowed_roles.lookup(&claims) {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| item.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| self.allowed_roles.wrong_type("an array of strings"))?,
            Some(_) => return Err(self.allowed_roles.wrong_type("an array of strings")),
        };
        let user_id = match self.user_id.lookup(&claims) {
            None => None,
            Some(Value::String(id)) => Some(id.clone()),
            // Some providers number their users.
            Some(Value::Number(id)) => Some(id.to_string()),
            Some(_) => return Err(self.user_id.wrong_type("a string")),
        };
        Ok(JwtIdentity {
            role: self.role.string(&claims)?,
            allowed_roles,
            user_id,
            claims,
        })
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = self.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        // jsonwebtoken checks `iss` and `aud` only when the token has them:
        // when they are configured, a token without them must fail.
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        validation
    }
}

impl RemoteKeys {
    /// The key for `kid`: from the cache, or after a refetch when the key is
    /// unknown or the cache is old (and a refetch is due).
    async fn key(&self, kid: &str, now: Instant) -> Result<Arc<RemoteKey>, JwtError> {
        let set = self.current.load_full();
        let fresh = set
            .fetched_at
            .is_some_and(|at| now.saturating_duration_since(at) < KEYS_MAX_AGE);
        if fresh && let Some(key) = set.by_kid.get(kid) {
            return Ok(Arc::new(RemoteKey {
                key: key.key.clone(),
                algorithm: key.algorithm,
            }));
        }
        let refetch = self.refetch(set.generation, now).await;
        let set = self.current.load_full();
        if set.fetched_at.is_none() {
            return Err(match refetch {
                Err(error) => error,
                // Rate-limited after a failed first fetch.
                Ok(()) => JwtError::KeysUnavailable {
                    reason: "no key set fetched yet".into(),
                },
            });
        }
        set.by_kid
            .get(kid)
            .map(|key| {
                Arc::new(RemoteKey {
                    key: key.key.clone(),
                    algorithm: key.algorithm,
                })
            })
            .ok_or_else(|| JwtError::UnknownKey(quoted(kid)))
    }

    /// Fetches the key set unless another request did since `seen` or the
    /// last attempt is under [`REFETCH_MIN_INTERVAL`] old. A failure keeps
    /// the keys we had.
    async fn refetch(&self, seen: u64, now: Instant) -> Result<(), JwtError> {
        let mut state = self.fetching.lock().await;
        let current = self.current.load();
        if current.generation != seen {
            return Ok(());
        }
        if state
            .last_attempt
            .is_some_and(|last| now.saturating_duration_since(last) < REFETCH_MIN_INTERVAL)
        {
            return Ok(());
        }
        state.last_attempt = Some(now);
        match self.fetch(&mut state).await {
            Ok(by_kid) => {
                self.current.store(Arc::new(KeySet {
                    by_kid,
                    fetched_at: Some(now),
                    generation: current.generation + 1,
                }));
                Ok(())
            }
            Err(reason) => {
                tracing::warn!(%reason, "cannot fetch the JWT signing keys; keeping the last ones");
                Err(JwtError::KeysUnavailable { reason })
            }
        }
    }

    async fn fetch(&self, state: &mut FetchState) -> Result<HashMap<String, RemoteKey>, String> {
        let jwks_url = match &self.source {
            KeySource::Jwks(url) => url.clone(),
            KeySource::Discovery { issuer, document } => match &state.discovered_jwks {
                Some(url) => url.clone(),
                None => {
                    let found: DiscoveryDocument = self.get_json(document).await?;
                    // OIDC Discovery §4.3: the document must be the issuer's own.
                    if found.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
                        return Err(format!(
                            "{document} names issuer `{}`, not the configured `{issuer}`",
                            found.issuer
                        ));
                    }
                    let url = remote_url("jwks_uri", &found.jwks_uri)
                        .map_err(|e| format!("{document}: {e}"))?;
                    state.discovered_jwks = Some(url.clone());
                    url
                }
            },
            KeySource::Secret(_) => return Err("no JWKS is configured".into()),
        };
        let document: JwksDocument = self.get_json(&jwks_url).await?;
        let by_kid: HashMap<String, RemoteKey> =
            document.keys.into_iter().filter_map(signing_key).collect();
        if by_kid.is_empty() {
            return Err(format!(
                "{jwks_url} holds no RS256 or ES256 signing key with a `kid`"
            ));
        }
        Ok(by_kid)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &Url) -> Result<T, String> {
        let response = self
            .http
            .get(url.clone())
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("{url}: {e}"))?;
        response.json().await.map_err(|e| format!("{url}: {e}"))
    }
}

/// A key of a JWKS document we can verify with, by its id; other keys
/// (encryption keys, other algorithms, HMAC keys) are skipped.
fn signing_key(value: Value) -> Option<(String, RemoteKey)> {
    let jwk: Jwk = serde_json::from_value(value).ok()?;
    let kid = jwk.common.key_id.clone()?;
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
        (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
            if ec.curve == EllipticCurve::P256 =>
        {
            Algorithm::ES256
        }
        _ => return None,
    };
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some((kid, RemoteKey { key, algorithm }))
}

fn read_header(token: &str) -> Result<RawHeader, JwtError> {
    let (header, _) = token.split_once('.').ok_or(JwtError::Malformed)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| JwtError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed)
}

fn from_jsonwebtoken(error: &jsonwebtoken::errors::Error, alg: &str) -> JwtError {
    match error.kind() {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => JwtError::Signature,
        ErrorKind::ExpiredSignature => JwtError::Expired,
        ErrorKind::ImmatureSignature => JwtError::NotYetValid,
        ErrorKind::InvalidAudience => JwtError::Audience,
        ErrorKind::InvalidIssuer => JwtError::Issuer,
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "aud" => JwtError::Audience,
            "iss" => JwtError::Issuer,
            other => JwtError::MissingClaim(quoted(other)),
        },
        ErrorKind::InvalidAlgorithm => JwtError::Algorithm(quoted(alg)),
        _ => JwtError::Malformed,
    }
}

/// Text from a token, made safe to quote in an error: short, escaped.
fn quoted(text: &str) -> String {
    text.chars()
        .take(QUOTED_MAX_CHARS)
        .collect::<String>()
        .escape_debug()
        .to_string()
}

#[cfg(test)]
mod tests;
