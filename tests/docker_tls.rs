//! Reaching a node's Docker engine as `tcp://host:port` with mutual TLS, for real: the test
//! puts a TLS listener (rustls, client certificates required, its own CA) in front of this
//! machine's /var/run/docker.sock and connects through `BollardDocker::connect_to_with`.
//! A CA that did not sign the server, or a client certificate the server's CA did not sign,
//! is refused with an error naming the endpoint. (Not a dockerd `--tlsverify` listener: the
//! engine's own TLS code is not under test here; what the client trusts and presents is.)

use oms_upgrade::adapters::endpoint::TransportError;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oms_upgrade::adapters::docker::{BollardDocker, Docker, DockerError};
use oms_upgrade::adapters::endpoint::{DockerEndpoint, SshSettings, TlsFiles};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Ca {
            issuer: CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    /// (certificate PEM, key PEM) for `sans`, for server or client use.
    fn leaf(&self, sans: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut p =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        p.distinguished_name
            .push(DnType::CommonName, "oms-upgrade test");
        p.extended_key_usages = vec![usage];
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A TLS listener on 127.0.0.1 requiring a client certificate signed by `ca`, forwarding
/// each connection to the local engine's socket. Returns its port.
async fn tls_engine(ca: &Ca) -> u16 {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (cert_pem, key_pem) = ca.leaf(&["127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.issuer.pem().as_bytes()).unwrap())
        .unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut engine = tokio::net::UnixStream::connect("/var/run/docker.sock")
                    .await
                    .expect("the local engine's socket (scripts/test starts dockerd)");
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut engine).await;
            });
        }
    });
    port
}

fn endpoint(port: u16, tls: TlsFiles) -> DockerEndpoint {
    DockerEndpoint::parse(&format!("tcp://127.0.0.1:{port}"), Some(tls)).unwrap()
}

fn client_files(dir: &Path, ca_for_server: &Ca, client_ca: &Ca) -> TlsFiles {
    let (cert, key) = client_ca.leaf(&["oms-upgrade-client"], ExtendedKeyUsagePurpose::ClientAuth);
    TlsFiles {
        ca: write(dir, "ca.pem", &ca_for_server.issuer.pem()),
        cert: write(dir, "cert.pem", &cert),
        key: write(dir, "key.pem", &key),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_reaches_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("engine CA");
    let port = tls_engine(&ca).await;
    let files = client_files(dir.path(), &ca, &ca);
    let docker = BollardDocker::connect_to_with(&endpoint(port, files), &SshSettings::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        docker.tunnel_socket().is_some(),
        "tcp goes through the TLS bridge"
    );
    // A real API call through the bridge: the engine's answer (an empty list) comes back.
    let none = docker
        .find_by_label("oms-upgrade-test.tls-none", None)
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:?}");
    let version = docker.client().version().await.unwrap();
    assert!(version.api_version.is_some(), "{version:?}");
}

/// Connects with a CA file from `server_ca_given` and a client certificate from
/// `client_ca`, to a listener whose certificate and client check come from one CA; returns
/// the refusal's message after checking its kind and that it names the endpoint.
async fn refused(server_ca_given: Option<&str>, client_ca: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("engine CA");
    let port = tls_engine(&ca).await;
    let given = server_ca_given.map(Ca::new);
    let client = client_ca.map(Ca::new);
    let files = client_files(
        dir.path(),
        given.as_ref().unwrap_or(&ca),
        client.as_ref().unwrap_or(&ca),
    );
    let e = BollardDocker::connect_to_with(&endpoint(port, files), &SshSettings::default())
        .await
        .expect_err("must be refused");
    let msg = e.to_string();
    assert!(
        matches!(e, DockerError::Transport(TransportError::TlsFailed { .. })),
        "{msg}"
    );
    assert!(msg.contains(&format!("tcp://127.0.0.1:{port}")), "{msg}");
    assert!(!msg.contains("PRIVATE KEY"), "{msg}");
    msg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_the_given_ca_did_not_sign_is_refused() {
    let msg = refused(Some("some other CA"), None).await;
    assert!(msg.contains("handshake"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_the_engine_does_not_trust_is_refused() {
    refused(None, Some("stranger CA")).await;
}
