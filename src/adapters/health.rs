//! OMS's health endpoint: `GET http(s)://<host>:<nginx port>/oms/health` answers JSON whose
//! `data.healthy` is `true` when the node is up (no auth). The upgrade confirms the new
//! container with it after `docker_init.sh`, and a rollback confirms the old one.
//!
//! [`HttpHealth`] is the real client (short timeouts, never through a proxy: the node is
//! local). With a certificate mounted for nginx the console is HTTPS only; the client then
//! speaks TLS (rustls, ring) and trusts exactly the CA certificates of the operator's CA
//! file ([`CaFile`]), never the system's store: the console's certificate is normally
//! self-signed or from a private CA, and a trust the operator did not name would not be
//! what the plan recorded. A single [`Health::check`] reports what it saw, including "not
//! healthy" answers; [`Health::wait_healthy`] polls until healthy or a deadline.

use std::future::Future;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::{PemObject, SectionKind};

use super::clock::{Backoff, Clock, SystemClock};
use serde::{Deserialize, Serialize};

/// At most this many bytes of a response body are read; a health answer is tiny.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// At most this many characters of the body are kept in a report.
const EXCERPT_CHARS: usize = 512;

/// What one health request saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    /// True iff the answer was a 2xx with JSON `data.healthy == true`.
    pub healthy: bool,
    /// HTTP status code.
    pub status: u16,
    /// The start of the body (lossy UTF-8, at most 512 characters).
    pub body_excerpt: String,
    /// Why it is (not) healthy, in words.
    pub reason: String,
}

/// A health check could not get an answer, or the node did not become healthy in time.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// The base URL is not usable.
    #[error("invalid health URL `{url}`: {detail}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// Why.
        detail: String,
    },
    /// Nothing answered (connection refused, reset, DNS failure).
    #[error(
        "OMS health endpoint `{url}` is not reachable ({detail}); check that the container is \
         running (`docker ps`) and that nginx_server_port in config.yaml matches"
    )]
    Unreachable {
        /// The URL.
        url: String,
        /// What the client reported.
        detail: String,
    },
    /// The TLS handshake failed: the certificate is not trusted by the CA file given, is
    /// not valid for the host, or the peer does not speak TLS.
    #[error(
        "OMS health endpoint `{url}`: TLS failed ({detail}); the console's certificate must \
         verify against the CA file given with --health-ca and name the host of the URL"
    )]
    Tls {
        /// The URL.
        url: String,
        /// What rustls reported.
        detail: String,
    },
    /// A connection was made but no answer came within the request timeout.
    #[error("OMS health endpoint `{url}` did not answer within {after:?}")]
    RequestTimeout {
        /// The URL.
        url: String,
        /// The request timeout.
        after: Duration,
    },
    /// The node did not report healthy before the deadline.
    #[error(
        "OMS at `{url}` did not become healthy within {waited:?}; last observation: {last}. \
         Read the container's logs (`docker logs --tail 200 <container>`)"
    )]
    Timeout {
        /// The URL.
        url: String,
        /// How long was waited.
        waited: Duration,
        /// The last observation, in words.
        last: String,
        /// The last report, when the last attempt got an HTTP answer.
        last_report: Option<HealthReport>,
    },
}

/// Checks OMS health. The executor is generic over this trait; [`HttpHealth`] is the real one.
pub trait Health: Send + Sync {
    /// One request to `{base_url}/oms/health`. An answer that is not healthy is a report
    /// with `healthy: false`, not an error; errors mean no answer at all.
    fn check(
        &self,
        base_url: &str,
    ) -> impl Future<Output = Result<HealthReport, HealthError>> + Send;

    /// Polls [`Health::check`] until healthy, pausing [`Backoff::fine`]`(poll_interval)`
    /// between probes (20 ms doubling up to `poll_interval`: a node that turns healthy
    /// is seen at most one pause late, issue 16), or
    /// [`HealthError::Timeout`] after `timeout`, on the real clock. Unreachable answers are
    /// expected while a node starts and are retried. See [`Health::wait_healthy_on`].
    fn wait_healthy(
        &self,
        base_url: &str,
        timeout: Duration,
        poll_interval: Duration,
    ) -> impl Future<Output = Result<HealthReport, HealthError>> + Send {
        self.wait_healthy_on(&SystemClock, base_url, timeout, poll_interval)
    }

    /// [`Health::wait_healthy`], waiting and measuring on `clock` (the executor passes its
    /// own, so a simulated clock lets the polls pass in virtual time).
    fn wait_healthy_on<C: Clock>(
        &self,
        clock: &C,
        base_url: &str,
        timeout: Duration,
        poll_interval: Duration,
    ) -> impl Future<Output = Result<HealthReport, HealthError>> + Send {
        async move {
            let start = clock.monotonic();
            let backoff = Backoff::fine(poll_interval);
            let mut made = 0u32;
            loop {
                let (last, last_report) = match self.check(base_url).await {
                    Ok(r) if r.healthy => return Ok(r),
                    Ok(r) => (format!("HTTP {}: {}", r.status, r.reason), Some(r)),
                    // Neither a bad URL nor a certificate that does not verify gets better
                    // by waiting.
                    Err(e @ (HealthError::InvalidUrl { .. } | HealthError::Tls { .. })) => {
                        return Err(e);
                    }
                    Err(e) => (e.to_string(), None),
                };
                let waited = clock.elapsed_since(start);
                if waited >= timeout {
                    return Err(HealthError::Timeout {
                        url: health_url(base_url),
                        waited,
                        last,
                        last_report,
                    });
                }
                clock.sleep(backoff.pause(made).min(timeout - waited)).await;
                made = made.saturating_add(1);
            }
        }
    }
}

/// `{base_url}/oms/health`, tolerating a trailing slash on the base.
pub fn health_url(base_url: &str) -> String {
    format!("{}/oms/health", base_url.trim_end_matches('/'))
}

/// Decides health from a status and a body: healthy iff 2xx and JSON `data.healthy == true`.
pub fn judge(status: u16, body: &[u8]) -> HealthReport {
    let text = String::from_utf8_lossy(body);
    let body_excerpt: String = text.chars().take(EXCERPT_CHARS).collect();
    let (healthy, reason) = match serde_json::from_slice::<serde_json::Value>(body) {
        Err(_) => (false, "the answer is not JSON".to_string()),
        Ok(v) => match v.pointer("/data/healthy") {
            Some(serde_json::Value::Bool(true)) if (200..300).contains(&status) => {
                (true, "data.healthy is true".to_string())
            }
            Some(serde_json::Value::Bool(true)) => (
                false,
                format!("data.healthy is true but the HTTP status is {status}"),
            ),
            Some(serde_json::Value::Bool(false)) => (false, "data.healthy is false".to_string()),
            Some(other) => (false, format!("data.healthy is {other}, not a boolean")),
            None => (false, "the answer has no data.healthy".to_string()),
        },
    };
    HealthReport {
        healthy,
        status,
        body_excerpt,
        reason,
    }
}

/// The largest CA file accepted (`--health-ca`): a CA bundle is tens of KiB.
pub const MAX_CA_BYTES: u64 = 1 << 20;

/// A CA file that failed the checks every outside file gets.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    /// It cannot be opened (missing, unreadable, or a symbolic link).
    #[error("cannot open the CA file {path}: {detail}")]
    Unreadable {
        /// The path.
        path: String,
        /// Why.
        detail: String,
    },
    /// It is not a regular file.
    #[error("the CA file {path} is not a regular file")]
    NotRegular {
        /// The path.
        path: String,
    },
    /// It is larger than [`MAX_CA_BYTES`].
    #[error("the CA file {path} is larger than {max} bytes")]
    TooLarge {
        /// The path.
        path: String,
        /// The limit.
        max: u64,
    },
    /// It holds no usable PEM certificate.
    #[error("the CA file {path}: {detail}")]
    Invalid {
        /// The path.
        path: String,
        /// Why.
        detail: String,
    },
    /// Its bytes differ from those the plan recorded.
    #[error(
        "the CA file {path} changed since the plan was made: its BLAKE3 is now {now}, the plan \
         recorded {planned}"
    )]
    Changed {
        /// The path.
        path: String,
        /// BLAKE3 (hex) of the bytes read now.
        now: String,
        /// BLAKE3 (hex) the plan recorded.
        planned: String,
    },
}

/// An operator's CA file (PEM), read once: the certificates in it and the BLAKE3 of the
/// exact bytes read, so the plan can record which trust was used and a later run can
/// refuse a file that changed.
#[derive(Debug, Clone)]
pub struct CaFile {
    path: PathBuf,
    blake3_hex: String,
    certs: Vec<CertificateDer<'static>>,
}

impl CaFile {
    /// Reads `path` as hostile input: opened without following a symbolic link at the
    /// path itself (`O_NOFOLLOW`), checked to be a regular file on the opened handle, at
    /// most [`MAX_CA_BYTES`], and holding at least one PEM `CERTIFICATE` (other sections,
    /// a private key included, are refused: a CA file carries certificates only).
    pub fn read(path: &Path) -> Result<CaFile, CaFileError> {
        let shown = path.display().to_string();
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| CaFileError::Unreadable {
                path: shown.clone(),
                detail: if e.raw_os_error() == Some(libc::ELOOP) {
                    "it is a symbolic link; pass the file it points to".into()
                } else {
                    e.to_string()
                },
            })?;
        let md = file.metadata().map_err(|e| CaFileError::Unreadable {
            path: shown.clone(),
            detail: e.to_string(),
        })?;
        if !md.is_file() {
            return Err(CaFileError::NotRegular { path: shown });
        }
        if md.len() > MAX_CA_BYTES {
            return Err(CaFileError::TooLarge {
                path: shown,
                max: MAX_CA_BYTES,
            });
        }
        // Read one byte past the limit: a file that grew after the size check is refused too.
        let mut bytes = Vec::new();
        file.take(MAX_CA_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| CaFileError::Unreadable {
                path: shown.clone(),
                detail: e.to_string(),
            })?;
        if bytes.len() as u64 > MAX_CA_BYTES {
            return Err(CaFileError::TooLarge {
                path: shown,
                max: MAX_CA_BYTES,
            });
        }
        let certs = parse_ca_pem(&bytes).map_err(|detail| CaFileError::Invalid {
            path: shown,
            detail,
        })?;
        Ok(CaFile {
            blake3_hex: blake3::hash(&bytes).to_hex().to_string(),
            path,
            certs,
        })
    }

    /// Reads `path` (see [`CaFile::read`]) and refuses it unless its bytes are the ones
    /// whose BLAKE3 the plan recorded.
    pub fn read_planned(path: &Path, planned_blake3_hex: &str) -> Result<CaFile, CaFileError> {
        let ca = Self::read(path)?;
        if !ca.blake3_hex.eq_ignore_ascii_case(planned_blake3_hex) {
            return Err(CaFileError::Changed {
                path: path.display().to_string(),
                now: ca.blake3_hex,
                planned: planned_blake3_hex.to_string(),
            });
        }
        Ok(ca)
    }

    /// The absolute path read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// BLAKE3 (hex) of the bytes read.
    pub fn blake3_hex(&self) -> &str {
        &self.blake3_hex
    }

    /// How many certificates the file holds.
    pub fn cert_count(&self) -> usize {
        self.certs.len()
    }
}

/// The certificates of a PEM CA file: at least one `CERTIFICATE` section and nothing else.
fn parse_ca_pem(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut certs = Vec::new();
    for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(bytes) {
        match item.map_err(|e| format!("not PEM: {e}"))? {
            (SectionKind::Certificate, der) => certs.push(CertificateDer::from(der)),
            (other, _) => {
                return Err(format!(
                    "holds a {other:?} section; a CA file must hold certificates only (never a key)"
                ));
            }
        }
    }
    if certs.is_empty() {
        return Err("holds no PEM CERTIFICATE".into());
    }
    Ok(certs)
}

/// The real [`Health`] over HTTP or HTTPS (reqwest with rustls).
#[derive(Debug, Clone)]
pub struct HttpHealth {
    client: reqwest::Client,
    request_timeout: Duration,
}

impl HttpHealth {
    /// A client with a 2 s connect timeout and a 5 s request timeout that trusts no
    /// certificate: plain HTTP works, an HTTPS console fails the handshake.
    pub fn new() -> Result<Self, HealthError> {
        Self::with_timeouts(Duration::from_secs(2), Duration::from_secs(5))
    }

    /// Like [`HttpHealth::new`], trusting the certificates of `ca` (and nothing else) for
    /// an HTTPS console.
    pub fn with_ca(ca: &CaFile) -> Result<Self, HealthError> {
        Self::build(Duration::from_secs(2), Duration::from_secs(5), Some(ca))
    }

    /// A client with the given connect and whole-request timeouts (trusting no certificate).
    pub fn with_timeouts(connect: Duration, request: Duration) -> Result<Self, HealthError> {
        Self::build(connect, request, None)
    }

    fn build(
        connect: Duration,
        request: Duration,
        ca: Option<&CaFile>,
    ) -> Result<Self, HealthError> {
        let builder_error = |detail: String| HealthError::InvalidUrl {
            url: String::new(),
            detail: format!("cannot build the HTTP client: {detail}"),
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in ca.map(|c| c.certs.as_slice()).unwrap_or_default() {
            roots.add(cert.clone()).map_err(|e| {
                builder_error(format!("a certificate of the CA file is not usable: {e}"))
            })?;
        }
        // The provider is named here rather than installed process-wide: nothing else in
        // the process is affected, and no OpenSSL or aws-lc is linked.
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| builder_error(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let client = reqwest::Client::builder()
            .connect_timeout(connect)
            .timeout(request)
            // The node is local; a proxy from the environment would only get in the way.
            .no_proxy()
            .tls_backend_preconfigured(tls)
            .build()
            .map_err(|e| HealthError::InvalidUrl {
                url: String::new(),
                detail: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(HttpHealth {
            client,
            request_timeout: request,
        })
    }
}

impl Health for HttpHealth {
    async fn check(&self, base_url: &str) -> Result<HealthReport, HealthError> {
        let url = health_url(base_url);
        let classify = |e: reqwest::Error| {
            if e.is_builder() {
                HealthError::InvalidUrl {
                    url: url.clone(),
                    detail: e.to_string(),
                }
            } else if let Some(detail) = tls_failure(&e) {
                HealthError::Tls {
                    url: url.clone(),
                    detail,
                }
            } else if e.is_timeout() {
                HealthError::RequestTimeout {
                    url: url.clone(),
                    after: self.request_timeout,
                }
            } else {
                HealthError::Unreachable {
                    url: url.clone(),
                    detail: error_chain(&e),
                }
            }
        };
        let mut resp = self.client.get(&url).send().await.map_err(classify)?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        while body.len() < MAX_BODY_BYTES {
            match resp.chunk().await.map_err(classify)? {
                Some(c) => body.extend_from_slice(&c),
                None => break,
            }
        }
        body.truncate(MAX_BODY_BYTES);
        Ok(judge(status, &body))
    }
}

/// What rustls reported, when the error is a failed TLS handshake.
fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(t) = c.downcast_ref::<rustls::Error>() {
            return Some(t.to_string());
        }
        if let Some(t) = c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(t.to_string());
        }
        cur = c.source();
    }
    // The connector may hand the handshake's error on as text (the chain above reqwest's
    // connect error is not always typed): recognise rustls's own wording.
    let text = error_chain(e);
    const RUSTLS_SAYS: [&str; 5] = [
        "invalid peer certificate",
        "received corrupt message",
        "peer is incompatible",
        "received fatal alert",
        "peer misbehaved",
    ];
    RUSTLS_SAYS
        .iter()
        .find_map(|w| text.find(w).map(|at| text[at..].to_string()))
}

/// The error and its causes on one line ("error sending request: connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judge_reads_data_healthy() {
        assert!(judge(200, br#"{"success":true,"data":{"healthy":true}}"#).healthy);
        let r = judge(200, br#"{"data":{"healthy":false}}"#);
        assert!(!r.healthy);
        assert_eq!(r.reason, "data.healthy is false");
        assert!(!judge(200, b"<html>502</html>").healthy);
        assert!(!judge(503, br#"{"data":{"healthy":true}}"#).healthy);
        assert!(!judge(200, br#"{"data":{"healthy":"true"}}"#).healthy);
        assert!(!judge(200, br#"{"healthy":true}"#).healthy);
    }

    #[test]
    fn ca_files_are_read_as_hostile_input() {
        let dir = tempfile::tempdir().unwrap();
        let certs = crate::demo::certs::make_console_certs(&["127.0.0.1".into()]).unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, &certs.ca_pem).unwrap();
        let read = CaFile::read(&ca).unwrap();
        assert_eq!(read.cert_count(), 1);
        assert_eq!(
            read.blake3_hex(),
            blake3::hash(certs.ca_pem.as_bytes()).to_hex().as_str()
        );
        assert!(CaFile::read_planned(&ca, read.blake3_hex()).is_ok());
        let e = CaFile::read_planned(&ca, &"00".repeat(32)).unwrap_err();
        assert!(matches!(e, CaFileError::Changed { .. }), "{e}");

        let link = dir.path().join("link.pem");
        std::os::unix::fs::symlink(&ca, &link).unwrap();
        let e = CaFile::read(&link).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        let e = CaFile::read(dir.path()).unwrap_err();
        assert!(matches!(e, CaFileError::NotRegular { .. }), "{e}");
        let with_key = dir.path().join("with-key.pem");
        std::fs::write(&with_key, format!("{}{}", certs.ca_pem, certs.key_pem)).unwrap();
        let e = CaFile::read(&with_key).unwrap_err();
        assert!(e.to_string().contains("never a key"), "{e}");
        let big = dir.path().join("big.pem");
        std::fs::write(&big, vec![b'A'; MAX_CA_BYTES as usize + 1]).unwrap();
        assert!(matches!(
            CaFile::read(&big).unwrap_err(),
            CaFileError::TooLarge { .. }
        ));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, b"no pem here\n").unwrap();
        assert!(matches!(
            CaFile::read(&empty).unwrap_err(),
            CaFileError::Invalid { .. }
        ));
    }

    #[test]
    fn url_tolerates_trailing_slash() {
        assert_eq!(
            health_url("http://127.0.0.1:8089/"),
            "http://127.0.0.1:8089/oms/health"
        );
    }
}
