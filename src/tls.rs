//! Serving the router: over HTTPS (rustls, on the process's aws-lc-rs
//! provider) when a certificate and key are configured, plain HTTP
//! otherwise, but plain HTTP off loopback only when asked for
//! ([`server_acceptor`]). Either way handlers can extract
//! `ConnectInfo<SocketAddr>` (the client address, which per-IP rate limits
//! key on).

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::serve::{Listener, ListenerExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// The PEM files HTTPS is served with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why HTTPS cannot be set up; each names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "{listen} is not a loopback address and no TLS is configured: give --tls-cert and \
         --tls-key (TRIBUTARY_TLS_CERT / TRIBUTARY_TLS_KEY, or tls_cert / tls_key in the \
         config file) to serve HTTPS, or --allow-http (TRIBUTARY_ALLOW_HTTP=true, or \
         allow_http = true) to serve plain HTTP, e.g. behind a proxy that terminates TLS"
    )]
    PlainHttpRefused { listen: SocketAddr },
    #[error("cannot read the TLS certificate file {path}: {message}")]
    Certificate { path: PathBuf, message: String },
    #[error("cannot read the TLS key file {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("the TLS certificate {cert} and key {key} cannot be used together: {source}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
}

/// A client that has not finished its TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Finished handshakes waiting for the server to pick them up.
const READY_QUEUE: usize = 64;

/// How the server at `listen` is reached: `Some` acceptor for HTTPS; `None`
/// for plain HTTP, which loopback addresses get as they are (tests, the
/// demo: only this machine can connect) and any other address only with
/// `allow_http`.
pub fn server_acceptor(
    listen: SocketAddr,
    tls: Option<&TlsFiles>,
    allow_http: bool,
) -> Result<Option<TlsAcceptor>, TlsError> {
    match tls {
        Some(files) => acceptor(files).map(Some),
        None if allow_http || listen.ip().is_loopback() => Ok(None),
        None => Err(TlsError::PlainHttpRefused { listen }),
    }
}

/// Reads the certificate chain and key and builds the acceptor.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let chain = read_certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::Key {
        path: files.key.clone(),
        message: pem_message(&e),
    })?;
    tributary_connector::tls::install_crypto_provider();
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|source| TlsError::Mismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
            source,
        })?;
    // The server speaks HTTP/1.1 only (axum's `http2` feature is off).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |message: String| TlsError::Certificate {
        path: path.to_path_buf(),
        message,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(pem_message(&e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(pem_message(&e)))?;
    if chain.is_empty() {
        return Err(error("it holds no PEM certificate".into()));
    }
    Ok(chain)
}

fn pem_message(error: &rustls::pki_types::pem::Error) -> String {
    match error {
        rustls::pki_types::pem::Error::NoItemsFound => "it holds no PEM item of that kind".into(),
        other => other.to_string(),
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then lets the
/// requests in flight finish: over TLS with `tls`, plain HTTP without.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    match tls {
        None => {
            axum::serve(listener, service)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(acceptor) => {
            // The tap does nothing to the connection: axum provides
            // `ConnectInfo<SocketAddr>` for `TcpListener` and for a tapped
            // listener, not for any other listener type.
            let listener = TlsListener::new(listener, acceptor)?.tap_io(|_| {});
            axum::serve(listener, service)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

/// Accepts TCP connections and hands out those that completed a TLS
/// handshake. Handshakes run in their own tasks, so a client that connects
/// and stays silent holds up nobody but itself (until [`HANDSHAKE_TIMEOUT`]).
struct TlsListener {
    local_addr: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    accepting: JoinHandle<()>,
}

impl TlsListener {
    fn new(listener: TcpListener, acceptor: TlsAcceptor) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (sender, ready) = mpsc::channel(READY_QUEUE);
        let accepting = tokio::spawn(accept_loop(listener, acceptor, sender));
        Ok(Self {
            local_addr,
            ready,
            accepting,
        })
    }
}

impl Drop for TlsListener {
    /// axum drops the listener at shutdown: the port closes with it.
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        if let Some(connection) = self.ready.recv().await {
            return connection;
        }
        // Only a panic in the accept loop closes the channel.
        tracing::error!("the TLS accept loop stopped: no new connections are accepted");
        std::future::pending().await
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (tcp, remote) = match listener.accept().await {
            Ok(connection) => connection,
            Err(error) if is_connection_error(&error) => continue,
            Err(error) => {
                // Out of file descriptors and the like: give it a moment, as axum does.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    // Fails only when the server has stopped; the connection closes.
                    let _ = ready.send((stream, remote)).await;
                }
                Ok(Err(error)) => tracing::debug!(%remote, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
            }
        });
    }
}

/// Errors about one connection, not about the listener.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/auth")
            .join(name)
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn plain_http_off_loopback_needs_tls_or_allow_http() {
        for loopback in ["127.0.0.1:8080", "127.3.2.1:80", "[::1]:8080"] {
            assert!(matches!(
                server_acceptor(addr(loopback), None, false),
                Ok(None)
            ));
        }
        for public in ["0.0.0.0:8080", "10.1.2.3:80", "[::]:8080"] {
            let err = server_acceptor(addr(public), None, false)
                .map(|_| ())
                .unwrap_err()
                .to_string();
            for flag in ["--tls-cert", "--tls-key", "--allow-http"] {
                assert!(err.contains(flag), "{flag} not in {err}");
            }
            assert!(matches!(
                server_acceptor(addr(public), None, true),
                Ok(None)
            ));
        }
        let files = TlsFiles {
            cert: fixture("tls.cert.pem"),
            key: fixture("tls.key.pem"),
        };
        assert!(matches!(
            server_acceptor(addr("0.0.0.0:443"), Some(&files), false),
            Ok(Some(_))
        ));
        assert!(matches!(
            server_acceptor(addr("127.0.0.1:443"), Some(&files), true),
            Ok(Some(_))
        ));
    }

    #[test]
    fn unreadable_or_wrong_files_are_named() {
        let good = TlsFiles {
            cert: fixture("tls.cert.pem"),
            key: fixture("tls.key.pem"),
        };
        assert!(acceptor(&good).is_ok());

        let missing = TlsFiles {
            cert: fixture("missing.pem"),
            ..good.clone()
        };
        let err = acceptor(&missing).map(|_| ()).unwrap_err().to_string();
        assert!(
            err.contains("certificate file") && err.contains("missing.pem"),
            "{err}"
        );

        // A key where the certificate should be: no certificate in it.
        let swapped = TlsFiles {
            cert: fixture("tls.key.pem"),
            ..good.clone()
        };
        let err = acceptor(&swapped).map(|_| ()).unwrap_err().to_string();
        assert!(
            err.contains("tls.key.pem") && err.contains("no PEM"),
            "{err}"
        );

        let no_key = TlsFiles {
            key: fixture("tls.cert.pem"),
            ..good.clone()
        };
        let err = acceptor(&no_key).map(|_| ()).unwrap_err().to_string();
        assert!(
            err.contains("key file") && err.contains("tls.cert.pem"),
            "{err}"
        );

        // Another key than the certificate's.
        let other_key = TlsFiles {
            key: fixture("rsa-1.key.pem"),
            ..good
        };
        let err = acceptor(&other_key).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("cannot be used together"), "{err}");
    }
}
