//! rustls client configurations for the TLS modes, shared by every connector.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::{TlsMode, TlsOptions};
use crate::error::{ConnectorError, Result};

/// Installs the process-wide rustls crypto provider (aws-lc-rs). Two providers
/// in the dependency tree make rustls panic at connect time unless one is
/// installed, so the server calls this first thing; calling it twice is fine.
pub fn install_crypto_provider() {
    let _already_installed = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The rustls config for `options`: `None` for [`TlsMode::Off`]; certificate
/// checks only for [`TlsMode::VerifyFull`].
pub fn client_config(options: &TlsOptions) -> Result<Option<Arc<ClientConfig>>> {
    install_crypto_provider();
    let builder = ClientConfig::builder();
    let config = match options.mode {
        TlsMode::Off => return Ok(None),
        TlsMode::Prefer | TlsMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate::new()))
            .with_no_client_auth(),
        TlsMode::VerifyFull => builder
            .with_root_certificates(root_store(options)?)
            .with_no_client_auth(),
    };
    Ok(Some(Arc::new(config)))
}

/// The CA certificates to trust: the configured PEM file, else the web roots.
pub fn root_store(options: &TlsOptions) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    match &options.ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                ConnectorError::config(format!("cannot read tls.ca_file {}: {e}", path.display()))
            })?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| {
                    ConnectorError::config(format!(
                        "tls.ca_file {} is not PEM: {e}",
                        path.display()
                    ))
                })?;
                roots.add(cert).map_err(|e| {
                    ConnectorError::config(format!("tls.ca_file {}: {e}", path.display()))
                })?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(roots)
}

/// The `prefer` / `require` modes: encrypt, but accept any certificate, as
/// libpq does for those modes.
#[derive(Debug)]
struct AcceptAnyCertificate {
    schemes: Vec<SignatureScheme>,
}

impl AcceptAnyCertificate {
    fn new() -> Self {
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        Self {
            schemes: provider
                .signature_verification_algorithms
                .supported_schemes(),
        }
    }
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_build_configs() {
        let off = TlsOptions {
            mode: TlsMode::Off,
            ca_file: None,
        };
        assert!(client_config(&off).unwrap().is_none());
        for mode in [TlsMode::Prefer, TlsMode::Require, TlsMode::VerifyFull] {
            assert!(
                client_config(&TlsOptions {
                    mode,
                    ca_file: None
                })
                .unwrap()
                .is_some()
            );
        }
        let missing = TlsOptions {
            mode: TlsMode::VerifyFull,
            ca_file: Some("/nonexistent/ca.pem".into()),
        };
        let err = client_config(&missing).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"));
    }
}
