//! HTTPS: the real server with the self-signed fixture certificate answers
//! over TLS (and not in plain HTTP on that port); HTTP off loopback and half
//! a certificate configuration are refused at start-up.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::path::PathBuf;

use tokio::sync::oneshot;
use tributary::app::{Application, StartError};
use tributary::config::{FileConfig, Overrides, ServerConfig};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/auth")
        .join(name)
}

fn config(data_dir: &std::path::Path, overrides: Overrides) -> ServerConfig {
    ServerConfig::resolve(
        FileConfig::default(),
        Overrides {
            data_dir: Some(data_dir.to_path_buf()),
            refresh_interval_secs: Some(0),
            ..overrides
        },
    )
    .unwrap()
}

#[tokio::test]
async fn the_server_answers_over_https_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let app = Application::build(config(
        dir.path(),
        Overrides {
            listen: Some("127.0.0.1:0".into()),
            tls_cert: Some(fixture("tls.cert.pem")),
            tls_key: Some(fixture("tls.key.pem")),
            ..Overrides::default()
        },
    ))
    .await
    .expect("server builds");
    let port = app.local_addr().port();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));

    // The certificate is for localhost and 127.0.0.1; trusting it alone.
    let certificate =
        reqwest::Certificate::from_pem(&std::fs::read(fixture("tls.cert.pem")).unwrap()).unwrap();
    let https = reqwest::Client::builder()
        .add_root_certificate(certificate)
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    for host in ["localhost", "127.0.0.1"] {
        let response = https
            .get(format!("https://{host}:{port}/healthz"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{host}: {e:?}"));
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["status"], "ok");
    }

    // Plain HTTP to the HTTPS port gets no HTTP answer.
    let plain = common::http_client()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");

    // A client that does not trust the certificate refuses the server.
    let untrusting = reqwest::Client::new()
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await;
    assert!(untrusting.is_err(), "{untrusting:?}");

    // Graceful shutdown still ends the server.
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn plain_http_off_loopback_needs_allow_http() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let refused = Application::build(config(
        &data_dir,
        Overrides {
            listen: Some("0.0.0.0:0".into()),
            ..Overrides::default()
        },
    ))
    .await;
    let Err(err) = refused else {
        panic!("a server on 0.0.0.0 without TLS started");
    };
    assert!(matches!(err, StartError::Tls(_)), "{err:?}");
    let message = err.to_string();
    for flag in ["--tls-cert", "--tls-key", "--allow-http"] {
        assert!(message.contains(flag), "{flag} not in {message}");
    }
    assert!(
        !data_dir.exists(),
        "refused before the data directory was made"
    );

    // Asked for, it starts (and does not need to serve anything here).
    let allowed = Application::build(config(
        &data_dir,
        Overrides {
            listen: Some("0.0.0.0:0".into()),
            allow_http: Some(true),
            ..Overrides::default()
        },
    ))
    .await;
    assert!(allowed.is_ok());
}

#[tokio::test]
async fn half_a_certificate_configuration_or_a_bad_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let only_cert = ServerConfig::resolve(
        FileConfig::default(),
        Overrides {
            tls_cert: Some(fixture("tls.cert.pem")),
            ..Overrides::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(only_cert.contains("--tls-key"), "{only_cert}");

    let missing_key = Application::build(config(
        dir.path(),
        Overrides {
            listen: Some("127.0.0.1:0".into()),
            tls_cert: Some(fixture("tls.cert.pem")),
            tls_key: Some(fixture("no-such-key.pem")),
            ..Overrides::default()
        },
    ))
    .await;
    let Err(err) = missing_key else {
        panic!("a server with a missing key file started");
    };
    assert!(err.to_string().contains("no-such-key.pem"), "{err}");
}
