//! Console certificates for `demo --tls` and the tests: a fresh CA and a server
//! certificate it issued, made in memory (nothing here touches the file system).

/// A console certificate made for `demo --tls` (and the tests): a fresh CA and a server
/// certificate it issued, all PEM.
pub struct ConsoleCerts {
    /// The CA certificate (what `--health-ca` is given).
    pub ca_pem: String,
    /// The console's certificate (mounted at [`CONSOLE_CERT_PATH`](crate::omsconfig::CONSOLE_CERT_PATH)).
    pub cert_pem: String,
    /// Its private key (mounted at `/etc/pki/nginx/oms_server.key`).
    pub key_pem: String,
}

/// Makes a CA and a server certificate for `hosts` (names or IP addresses, as the
/// certificate's subjectAltName) signed by it. A separate CA rather than one self-signed
/// certificate: rustls (webpki) refuses a certificate marked as a CA as the server's own,
/// and this is the shape a real deployment's private CA has.
pub fn make_console_certs(hosts: &[String]) -> Result<ConsoleCerts, String> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    let err = |e: rcgen::Error| format!("cannot make the demo certificate: {e}");
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(DnType::CommonName, "oms-upgrade demo console CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().map_err(err)?).map_err(err)?;
    let key = KeyPair::generate().map_err(err)?;
    let mut leaf = CertificateParams::new(hosts.to_vec()).map_err(err)?;
    leaf.distinguished_name
        .push(DnType::CommonName, "OMS console (oms-upgrade demo)");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = leaf.signed_by(&key, &ca).map_err(err)?;
    Ok(ConsoleCerts {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}
