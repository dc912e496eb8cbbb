//! HTTPS on the console port, as a real OMS node does when a certificate is mounted.
//!
//! OMS has no `config.yaml` key for HTTPS: the operator mounts a certificate and its key at
//! [`CERT_PATH`] and [`KEY_PATH`], and the node's nginx then serves the console port
//! (`nginx_server_port`, 8089) over TLS only (docs/emulator.md names the public sources).
//! The emulator does the same: both files present -> TLS only on that port; neither ->
//! plain HTTP; one without the other, or files that do not parse -> the node does not start
//! (exit 6), as nginx refuses a broken `ssl_certificate`. `OMS_EMU_TLS=off` ignores mounted
//! files (plain HTTP), so a test can model a node whose nginx was not configured for them.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Where OMS's nginx reads its certificate (PEM, the server's chain first).
pub const CERT_PATH: &str = "/etc/pki/nginx/oms_server.crt";
/// Where OMS's nginx reads the certificate's private key (PEM).
pub const KEY_PATH: &str = "/etc/pki/nginx/oms_server.key";

/// The TLS acceptor for the console port, or `None` for plain HTTP; `Err` says why the
/// node cannot start.
pub fn acceptor() -> Result<Option<tokio_rustls::TlsAcceptor>, String> {
    let off = std::env::var("OMS_EMU_TLS").is_ok_and(|v| v == "off");
    let cert = std::path::Path::new(CERT_PATH);
    let key = std::path::Path::new(KEY_PATH);
    match (off, cert.exists(), key.exists()) {
        (true, _, _) | (false, false, false) => return Ok(None),
        (false, true, false) => {
            return Err(format!("{CERT_PATH} is mounted but {KEY_PATH} is not"));
        }
        (false, false, true) => {
            return Err(format!("{KEY_PATH} is mounted but {CERT_PATH} is not"));
        }
        (false, true, true) => {}
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{CERT_PATH}: {e}"))?;
    if chain.is_empty() {
        return Err(format!("{CERT_PATH} holds no certificate"));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{KEY_PATH}: {e}"))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS: {e}"))?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| format!("{CERT_PATH} / {KEY_PATH}: {e}"))?;
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
}
