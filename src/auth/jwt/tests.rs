//! Tests of [`super::JwtVerifier`]: tokens signed here with the fixture keys
//! in `tests/fixtures/auth/`, JWKS and discovery documents served by a small
//! axum server on 127.0.0.1 that counts its requests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

use super::*;

const SECRET: &str = "a-test-secret-that-is-at-least-32-bytes";

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/auth")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn jwk(name: &str) -> Value {
    serde_json::from_slice(&fixture(&format!("{name}.jwk.json"))).unwrap()
}

fn now_secs() -> i64 {
    i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap()
}

/// Claims valid for ten minutes, plus `extra`.
fn claims(extra: Value) -> Value {
    let mut claims = json!({"sub": "user-1", "exp": now_secs() + 600});
    for (key, value) in extra.as_object().unwrap() {
        claims[key] = value.clone();
    }
    claims
}

fn hs256(claims: &Value) -> String {
    hs256_with(SECRET, claims)
}

fn hs256_with(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// Signs with the fixture key `name` (`rsa-1`, `rsa-2`: RS256; `ec-1`: ES256), kid = name.
fn signed(name: &str, claims: &Value) -> String {
    let pem = fixture(&format!("{name}.key.pem"));
    let (algorithm, key) = if name.starts_with("ec") {
        (Algorithm::ES256, EncodingKey::from_ec_pem(&pem).unwrap())
    } else {
        (Algorithm::RS256, EncodingKey::from_rsa_pem(&pem).unwrap())
    };
    let mut header = Header::new(algorithm);
    header.kid = Some(name.to_string());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn config_toml(text: &str) -> JwtConfig {
    toml::from_str(text).unwrap()
}

fn secret_verifier(extra: &str) -> JwtVerifier {
    JwtVerifier::new(config_toml(&format!("secret = {SECRET:?}\n{extra}"))).unwrap()
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// A stand-in identity provider: serves `/jwks` (what `keys` holds, or 500
/// when `failing`) and `/.well-known/openid-configuration`, and counts JWKS requests.
#[derive(Clone)]
struct Provider {
    base: String,
    keys: Arc<Mutex<Vec<Value>>>,
    failing: Arc<std::sync::atomic::AtomicBool>,
    jwks_requests: Arc<AtomicUsize>,
}

impl Provider {
    async fn start(keys: &[&str]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let provider = Self {
            base: format!("http://{}", listener.local_addr().unwrap()),
            keys: Arc::new(Mutex::new(keys.iter().map(|k| jwk(k)).collect())),
            failing: Arc::default(),
            jwks_requests: Arc::default(),
        };
        let app = Router::new()
            .route("/jwks", get(serve_jwks))
            .route("/.well-known/openid-configuration", get(serve_discovery))
            .with_state(provider.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        provider
    }

    fn serve_keys(&self, keys: &[&str]) {
        *self.keys.lock().unwrap() = keys.iter().map(|k| jwk(k)).collect();
    }

    fn fetches(&self) -> usize {
        self.jwks_requests.load(Ordering::SeqCst)
    }

    fn verifier(&self) -> JwtVerifier {
        JwtVerifier::new(config_toml(&format!("jwks_url = \"{}/jwks\"", self.base))).unwrap()
    }
}

async fn serve_jwks(State(provider): State<Provider>) -> Response {
    provider.jwks_requests.fetch_add(1, Ordering::SeqCst);
    if provider.failing.load(Ordering::SeqCst) {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let keys = provider.keys.lock().unwrap().clone();
    Json(json!({ "keys": keys })).into_response()
}

async fn serve_discovery(State(provider): State<Provider>) -> Json<Value> {
    Json(json!({
        "issuer": provider.base,
        "jwks_uri": format!("{}/jwks", provider.base),
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
    }))
}

#[tokio::test]
async fn a_good_hs256_token_gives_the_identity_at_the_default_claim_paths() {
    let verifier = secret_verifier("");
    let payload = claims(json!({"role": "editor", "allowed_roles": ["editor", "viewer"]}));
    let identity = verifier.verify(&hs256(&payload)).await.unwrap();
    assert_eq!(
        identity,
        JwtIdentity {
            role: Some("editor".into()),
            allowed_roles: vec!["editor".into(), "viewer".into()],
            user_id: Some("user-1".into()),
            claims: payload,
        }
    );
    // Claims that are absent are empty, not errors.
    let bare = verifier
        .verify(&hs256(&json!({"exp": now_secs() + 60})))
        .await
        .unwrap();
    assert_eq!(
        (bare.role, bare.allowed_roles, bare.user_id),
        (None, vec![], None)
    );
}

#[tokio::test]
async fn claim_paths_can_be_dotted_or_json_pointers() {
    let verifier = secret_verifier(
        r#"
        role_claim = "app.role"
        allowed_roles_claim = "/https:~1~1hasura.io~1jwt~1claims/x-hasura-allowed-roles"
        user_id_claim = "/https:~1~1hasura.io~1jwt~1claims/x-hasura-user-id"
        "#,
    );
    let payload = claims(json!({
        "app": {"role": "analyst"},
        "https://hasura.io/jwt/claims": {
            "x-hasura-allowed-roles": ["analyst", "auditor"],
            "x-hasura-user-id": 42,
        },
    }));
    let identity = verifier.verify(&hs256(&payload)).await.unwrap();
    assert_eq!(identity.role.as_deref(), Some("analyst"));
    assert_eq!(identity.allowed_roles, ["analyst", "auditor"]);
    assert_eq!(identity.user_id.as_deref(), Some("42"));

    // A claim of the wrong type is an error naming its path.
    let wrong = claims(json!({"app": {"role": ["analyst"]}}));
    let err = verifier.verify(&hs256(&wrong)).await.unwrap_err();
    assert_eq!(err.to_string(), "claim `app.role` must be a string");
    let wrong = claims(json!({"https://hasura.io/jwt/claims": {"x-hasura-allowed-roles": "x"}}));
    let err = verifier.verify(&hs256(&wrong)).await.unwrap_err();
    assert!(err.to_string().contains("an array of strings"), "{err}");
}

#[tokio::test]
async fn expiry_and_not_before_are_checked_with_the_leeway() {
    let verifier = secret_verifier("leeway_secs = 30");
    let expired = claims(json!({"exp": now_secs() - 120}));
    let err = verifier.verify(&hs256(&expired)).await.unwrap_err();
    assert!(matches!(err, JwtError::Expired), "{err:?}");
    assert_eq!(err.to_string(), "token expired");
    // Ten seconds late is within the leeway.
    let just_expired = claims(json!({"exp": now_secs() - 10}));
    assert!(verifier.verify(&hs256(&just_expired)).await.is_ok());

    let early = claims(json!({"nbf": now_secs() + 120}));
    let err = verifier.verify(&hs256(&early)).await.unwrap_err();
    assert!(matches!(err, JwtError::NotYetValid), "{err:?}");
    let almost = claims(json!({"nbf": now_secs() + 10}));
    assert!(verifier.verify(&hs256(&almost)).await.is_ok());

    // `exp` is required.
    let err = verifier
        .verify(&hs256(&json!({"sub": "x"})))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "token has no `exp` claim");
}

#[tokio::test]
async fn audience_and_issuer_are_checked_when_configured() {
    let verifier = secret_verifier("audience = \"tributary\"\nissuer = \"https://idp.example\"");
    let good = claims(json!({"aud": "tributary", "iss": "https://idp.example"}));
    assert!(verifier.verify(&hs256(&good)).await.is_ok());
    let among = claims(json!({"aud": ["billing", "tributary"], "iss": "https://idp.example"}));
    assert!(verifier.verify(&hs256(&among)).await.is_ok());

    for payload in [
        claims(json!({"aud": "billing", "iss": "https://idp.example"})),
        claims(json!({"aud": ["billing"], "iss": "https://idp.example"})),
        claims(json!({"iss": "https://idp.example"})),
    ] {
        let err = verifier.verify(&hs256(&payload)).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "token audience is not accepted",
            "{payload}"
        );
    }
    for payload in [
        claims(json!({"aud": "tributary", "iss": "https://evil.example"})),
        claims(json!({"aud": "tributary"})),
    ] {
        let err = verifier.verify(&hs256(&payload)).await.unwrap_err();
        assert_eq!(err.to_string(), "token issuer is not accepted", "{payload}");
    }

    // Without an audience configured, a token's `aud` is not held against it.
    let open = secret_verifier("");
    assert!(
        open.verify(&hs256(&claims(json!({"aud": "any"}))))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_wrong_signature_is_refused() {
    let verifier = secret_verifier("");
    let other = hs256_with(
        "another-secret-that-is-also-32-bytes-long",
        &claims(json!({})),
    );
    let err = verifier.verify(&other).await.unwrap_err();
    assert!(matches!(err, JwtError::Signature), "{err:?}");
    assert_eq!(err.to_string(), "token signature is not valid");

    // The payload changed after signing.
    let token = hs256(&claims(json!({"role": "viewer"})));
    let parts: Vec<&str> = token.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(&claims(json!({"role": "admin"}))),
        parts[2]
    );
    assert!(matches!(
        verifier.verify(&forged).await,
        Err(JwtError::Signature)
    ));

    for junk in ["", "abc", "a.b.c", "Bearer x.y.z"] {
        assert!(
            matches!(verifier.verify(junk).await, Err(JwtError::Malformed)),
            "{junk}"
        );
    }
}

#[tokio::test]
async fn alg_none_is_refused() {
    let header = b64(&json!({"alg": "none", "typ": "JWT"}));
    let token = format!("{header}.{}.", b64(&claims(json!({"role": "admin"}))));
    let err = secret_verifier("").verify(&token).await.unwrap_err();
    assert_eq!(err.to_string(), "algorithm `none` is not accepted");

    let provider = Provider::start(&["rsa-1"]).await;
    let err = provider.verifier().verify(&token).await.unwrap_err();
    assert_eq!(err.to_string(), "algorithm `none` is not accepted");
    assert_eq!(provider.fetches(), 0);
}

#[tokio::test]
async fn algorithms_of_the_other_key_kind_are_refused() {
    let provider = Provider::start(&["rsa-1"]).await;
    // HS256 signed with what an attacker might take for the shared secret:
    // a JWKS verifier must not treat public key material as an HMAC key.
    let public_key = serde_json::to_string(&jwk("rsa-1")).unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa-1".into());
    let confused = jsonwebtoken::encode(
        &header,
        &claims(json!({})),
        &EncodingKey::from_secret(public_key.as_bytes()),
    )
    .unwrap();
    let err = provider.verifier().verify(&confused).await.unwrap_err();
    assert_eq!(err.to_string(), "algorithm `HS256` is not accepted");
    assert_eq!(provider.fetches(), 0, "refused before any key is looked up");

    // And the other way round: RS256 to a secret-only verifier.
    let err = secret_verifier("")
        .verify(&signed("rsa-1", &claims(json!({}))))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "algorithm `RS256` is not accepted");

    // Other algorithms of an accepted family are refused too.
    let header = b64(&json!({"alg": "RS512", "kid": "rsa-1"}));
    let token = format!("{header}.{}.c2ln", b64(&claims(json!({}))));
    let err = provider.verifier().verify(&token).await.unwrap_err();
    assert_eq!(err.to_string(), "algorithm `RS512` is not accepted");
}

#[tokio::test]
async fn rs256_and_es256_tokens_verify_with_keys_from_the_jwks() {
    let provider = Provider::start(&["rsa-1", "ec-1"]).await;
    let verifier = provider.verifier();
    let rsa = verifier
        .verify(&signed("rsa-1", &claims(json!({"role": "viewer"}))))
        .await
        .unwrap();
    assert_eq!(rsa.role.as_deref(), Some("viewer"));
    let ec = verifier
        .verify(&signed("ec-1", &claims(json!({"role": "editor"}))))
        .await
        .unwrap();
    assert_eq!(ec.role.as_deref(), Some("editor"));
    assert_eq!(
        provider.fetches(),
        1,
        "the key set is fetched once and cached"
    );

    // An ES256 header on the RSA key's id: the key decides the algorithm.
    let header = b64(&json!({"alg": "ES256", "kid": "rsa-1"}));
    let token = format!("{header}.{}.c2ln", b64(&claims(json!({}))));
    let err = verifier.verify(&token).await.unwrap_err();
    assert_eq!(err.to_string(), "algorithm `ES256` is not accepted");

    // Signed by a key the provider does not publish under that id.
    let pem = fixture("rsa-2.key.pem");
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    let forged = jsonwebtoken::encode(
        &header,
        &claims(json!({})),
        &EncodingKey::from_rsa_pem(&pem).unwrap(),
    )
    .unwrap();
    assert!(matches!(
        verifier.verify(&forged).await,
        Err(JwtError::Signature)
    ));

    // No key id: which key would it be?
    let no_kid = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &claims(json!({})),
        &EncodingKey::from_rsa_pem(&fixture("rsa-1.key.pem")).unwrap(),
    )
    .unwrap();
    assert!(matches!(
        verifier.verify(&no_kid).await,
        Err(JwtError::MissingKeyId)
    ));
}

#[tokio::test]
async fn unknown_key_ids_refetch_at_most_once_per_interval() {
    let provider = Provider::start(&["rsa-1"]).await;
    let verifier = provider.verifier();
    let start = Instant::now();
    let good = signed("rsa-1", &claims(json!({})));
    verifier.verify_at(&good, start).await.unwrap();
    assert_eq!(provider.fetches(), 1);

    // A key id nobody published: one refetch, then an error naming it.
    let mut junk = Header::new(Algorithm::RS256);
    junk.kid = Some("made-up".into());
    let junk = jsonwebtoken::encode(
        &junk,
        &claims(json!({})),
        &EncodingKey::from_rsa_pem(&fixture("rsa-1.key.pem")).unwrap(),
    )
    .unwrap();
    let later = start + REFETCH_MIN_INTERVAL;
    let err = verifier.verify_at(&junk, later).await.unwrap_err();
    assert_eq!(err.to_string(), "unknown key id `made-up`");
    assert_eq!(provider.fetches(), 2);
    // More junk within the interval costs the provider nothing.
    for offset in [0, 1, 9] {
        let at = later + Duration::from_secs(offset);
        assert!(matches!(
            verifier.verify_at(&junk, at).await,
            Err(JwtError::UnknownKey(_))
        ));
    }
    assert_eq!(provider.fetches(), 2);
    // Known keys keep working meanwhile, from the cache.
    verifier.verify_at(&good, later).await.unwrap();
    assert_eq!(provider.fetches(), 2);
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_by_a_refetch() {
    let provider = Provider::start(&["rsa-1"]).await;
    let verifier = provider.verifier();
    let start = Instant::now();
    verifier
        .verify_at(&signed("rsa-1", &claims(json!({}))), start)
        .await
        .unwrap();

    provider.serve_keys(&["rsa-1", "rsa-2"]);
    let rotated = signed("rsa-2", &claims(json!({"role": "viewer"})));
    // Right after the last fetch the new key is not looked for yet...
    let soon = start + Duration::from_secs(1);
    assert!(matches!(
        verifier.verify_at(&rotated, soon).await,
        Err(JwtError::UnknownKey(_))
    ));
    assert_eq!(provider.fetches(), 1);
    // ...once the interval has passed it is.
    let later = start + REFETCH_MIN_INTERVAL + Duration::from_secs(1);
    let identity = verifier.verify_at(&rotated, later).await.unwrap();
    assert_eq!(identity.role.as_deref(), Some("viewer"));
    assert_eq!(provider.fetches(), 2);
}

#[tokio::test]
async fn a_failed_refetch_keeps_the_last_good_keys_and_a_withdrawn_key_stops_working() {
    let provider = Provider::start(&["rsa-1"]).await;
    let verifier = provider.verifier();
    let start = Instant::now();
    let token = signed("rsa-1", &claims(json!({})));
    verifier.verify_at(&token, start).await.unwrap();

    // The cache has aged out and the provider is down: the old keys still verify.
    provider.failing.store(true, Ordering::SeqCst);
    let aged = start + KEYS_MAX_AGE + Duration::from_secs(1);
    verifier.verify_at(&token, aged).await.unwrap();
    assert_eq!(provider.fetches(), 2);

    // The provider is back without that key: it is refused from the next fetch on.
    provider.failing.store(false, Ordering::SeqCst);
    provider.serve_keys(&["ec-1"]);
    let next = aged + REFETCH_MIN_INTERVAL;
    assert!(matches!(
        verifier.verify_at(&token, next).await,
        Err(JwtError::UnknownKey(_))
    ));
    assert_eq!(provider.fetches(), 3);
}

#[tokio::test]
async fn keys_that_cannot_be_fetched_are_reported_without_details() {
    let provider = Provider::start(&[]).await;
    provider.failing.store(true, Ordering::SeqCst);
    let verifier = provider.verifier();
    let start = Instant::now();
    let token = signed("rsa-1", &claims(json!({})));
    let err = verifier.verify_at(&token, start).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "the identity provider's signing keys are unavailable"
    );
    assert!(matches!(err, JwtError::KeysUnavailable { reason } if reason.contains("500")));
    // Not retried within the interval, still unavailable.
    let err = verifier.verify_at(&token, start).await.unwrap_err();
    assert!(matches!(err, JwtError::KeysUnavailable { .. }), "{err:?}");
    assert_eq!(provider.fetches(), 1);
}

#[tokio::test]
async fn oidc_discovery_finds_the_jwks_from_the_issuer() {
    let provider = Provider::start(&["rsa-1"]).await;
    let verifier = JwtVerifier::new(config_toml(&format!(
        "issuer = \"{}\"\ndiscovery = true",
        provider.base
    )))
    .unwrap();
    let token = signed(
        "rsa-1",
        &claims(json!({"iss": provider.base, "role": "viewer"})),
    );
    let identity = verifier.verify(&token).await.unwrap();
    assert_eq!(identity.role.as_deref(), Some("viewer"));
    assert_eq!(provider.fetches(), 1);

    // The issuer is checked as well.
    let other = signed("rsa-1", &claims(json!({"iss": "https://evil.example"})));
    assert!(matches!(
        verifier.verify(&other).await,
        Err(JwtError::Issuer)
    ));

    // A discovery document naming another issuer is not trusted: the same
    // provider, asked as `localhost`, answers with its 127.0.0.1 issuer.
    let as_localhost = provider.base.replace("127.0.0.1", "localhost");
    let verifier = JwtVerifier::new(config_toml(&format!(
        "issuer = \"{as_localhost}\"\ndiscovery = true"
    )))
    .unwrap();
    let token = signed("rsa-1", &claims(json!({"iss": as_localhost})));
    let err = verifier.verify(&token).await.unwrap_err();
    assert!(
        matches!(&err, JwtError::KeysUnavailable { reason } if reason.contains("names issuer")),
        "{err:?}"
    );
    assert_eq!(
        provider.fetches(),
        1,
        "no JWKS fetched for an untrusted document"
    );
}

#[test]
fn the_config_needs_exactly_one_key_source_and_names_what_is_wrong() {
    let error = |text: &str| {
        JwtVerifier::new(config_toml(text))
            .err()
            .unwrap()
            .to_string()
    };
    let err = error("");
    assert!(
        err.contains("`secret`") && err.contains("`jwks_url`"),
        "{err}"
    );
    let err = error("secret = \"too-short\"");
    assert!(err.contains("`secret` must be at least 32 bytes"), "{err}");
    let err = error(&format!(
        "secret = {SECRET:?}\njwks_url = \"https://idp.example/jwks\""
    ));
    assert!(err.contains("not both"), "{err}");
    let err = error("discovery = true");
    assert!(err.contains("needs `issuer`"), "{err}");
    let err = error(
        "jwks_url = \"https://idp.example/jwks\"\ndiscovery = true\nissuer = \"https://idp.example\"",
    );
    assert!(err.contains("exclude each other"), "{err}");
    let err = error("jwks_url = \"http://idp.example/jwks\"");
    assert!(
        err.contains("`jwks_url`") && err.contains("https://"),
        "{err}"
    );
    let err = error("jwks_url = \"not a url\"");
    assert!(err.contains("`jwks_url`"), "{err}");
    let err = error(&format!("secret = {SECRET:?}\nrole_claim = \"app..role\""));
    assert!(err.contains("`role_claim`"), "{err}");
    let err = error(&format!("secret = {SECRET:?}\nuser_id_claim = \"/a~2b\""));
    assert!(
        err.contains("`user_id_claim`") && err.contains("JSON Pointer"),
        "{err}"
    );

    assert!(toml::from_str::<JwtConfig>("secret = \"x\"\nrole_path = \"r\"").is_err());
    // Loopback may use http (a local identity provider, these tests).
    assert!(JwtVerifier::new(config_toml("jwks_url = \"http://127.0.0.1:9/jwks\"")).is_ok());
    assert!(JwtVerifier::new(config_toml("jwks_url = \"http://[::1]:9/jwks\"")).is_ok());

    let config = config_toml(&format!("secret = {SECRET:?}"));
    assert_eq!(
        (
            config.leeway_secs,
            config.role_claim.as_str(),
            config.user_id_claim.as_str()
        ),
        (30, "role", "sub")
    );
    assert!(!format!("{config:?}").contains(SECRET));
}

#[test]
fn quoted_token_text_is_short_and_escaped() {
    assert_eq!(quoted("kid-1"), "kid-1");
    assert_eq!(quoted("a\nb`"), "a\\nb`");
    assert_eq!(quoted(&"x".repeat(500)).len(), QUOTED_MAX_CHARS);
}
