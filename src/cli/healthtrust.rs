//! How OMS's health endpoint is reached and trusted: the `--health-url` and `--health-ca`
//! flags of `init`, the scheme found from the old container's mounts, the preflight probe
//! of the old node, and the client `run`, `rollback` and `ledger verify --live` build from
//! what the plan recorded (`ledger verify --live` asks no health endpoint).
//!
//! OMS has no `config.yaml` key for HTTPS: a certificate and key mounted at
//! [`CERT_PATH`] and `/etc/pki/nginx/oms_server.key` make its nginx serve the console port
//! over HTTPS only (docs/health.md names the public sources). The scheme is
//! therefore read from the mounts; a certificate is trusted only through a CA file the
//! operator names, whose BLAKE3 the plan records and every later use checks again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{CliError, ExitKind};
use crate::adapters::health::{CaFile, CaFileError, Health, HealthError, HttpHealth};
use crate::events::{HealthScheme, HealthTrust, Plan};

pub use crate::omsconfig::CONSOLE_CERT_PATH as CERT_PATH;

/// How long `init` waits for the old node to answer healthy.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The health flags of `init`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HealthArgs {
    /// Base URL of OMS's console for the health check, e.g. `https://10.0.0.5:8089`
    /// (default: `OMS_HOST_IP` and `nginx_server_port`, HTTPS when the old container mounts
    /// a certificate at /etc/pki/nginx/oms_server.crt).
    #[arg(long, value_name = "URL")]
    pub health_url: Option<String>,
    /// CA certificate(s) (PEM) the console's HTTPS certificate must verify against: the CA
    /// that issued it, or the certificate itself when it is self-signed. Required when the
    /// console serves HTTPS; its BLAKE3 is recorded in the plan.
    #[arg(long, value_name = "FILE")]
    pub health_ca: Option<PathBuf>,
}

/// What the old container's mounts say about the console's scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detected {
    /// No certificate is mounted: plain HTTP.
    Http,
    /// A certificate is mounted at [`CERT_PATH`] by this bind (`SOURCE:TARGET[:OPTIONS]`).
    Https(String),
    /// A named volume is mounted over the certificate's folder: whether it holds a
    /// certificate cannot be seen from the host.
    Unknown(String),
}

/// Reads the scheme from the old container's binds. A bind of the file itself, or of a
/// folder above it whose host side holds the file (`exists` answers for host paths),
/// means HTTPS.
pub fn detect(binds: &[String], exists: impl Fn(&Path) -> bool) -> Detected {
    let mut unknown = None;
    let mut https = None;
    for b in binds {
        let mut parts = b.splitn(3, ':');
        let (Some(source), Some(target)) = (parts.next(), parts.next()) else {
            continue;
        };
        let target = target.trim_end_matches('/');
        if target == CERT_PATH {
            return Detected::Https(b.clone());
        }
        let Some(rest) = CERT_PATH
            .strip_prefix(target)
            .filter(|r| r.starts_with('/') || target.is_empty())
        else {
            continue;
        };
        if !source.starts_with('/') {
            unknown.get_or_insert_with(|| b.clone());
        } else if exists(&Path::new(source).join(rest.trim_start_matches('/'))) {
            https.get_or_insert_with(|| b.clone());
        }
    }
    match (https, unknown) {
        (Some(b), _) => Detected::Https(b),
        (None, Some(b)) => Detected::Unknown(b),
        (None, None) => Detected::Http,
    }
}

/// An operator's `--health-url`, checked: `http` or `https`, a host, no credentials, no
/// query; a trailing `/oms/health` is accepted. Returns the base URL and its scheme.
pub fn operator_url(given: &str) -> Result<(String, HealthScheme), CliError> {
    let bad = |why: &str| {
        CliError::new(ExitKind::Input, format!("--health-url `{given}`: {why}"))
            .hint("pass the console's base URL, e.g. https://10.0.0.5:8089")
    };
    let url = reqwest::Url::parse(given).map_err(|e| bad(&e.to_string()))?;
    let scheme = match url.scheme() {
        "http" => HealthScheme::Http,
        "https" => HealthScheme::Https,
        other => return Err(bad(&format!("scheme `{other}` is not http or https"))),
    };
    if url.host_str().is_none() {
        return Err(bad("names no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("holds credentials; the health endpoint needs none"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("holds a query or fragment"));
    }
    if !matches!(url.path(), "" | "/" | "/oms/health") {
        return Err(bad("has a path other than /oms/health"));
    }
    Ok((url.origin().ascii_serialization(), scheme))
}

/// The health URL and trust `init` plans with, and the client that uses them.
pub struct Planned {
    /// Base URL (`scheme://host:port`).
    pub url: String,
    /// What the plan records.
    pub trust: HealthTrust,
    /// The client.
    pub client: HttpHealth,
}

/// Decides the URL and trust: `--health-url` or the derived URL with the detected scheme;
/// for HTTPS, the `--health-ca` file (read as hostile input). HTTPS without a CA file is
/// refused: an unverified certificate is no evidence that the node answering is this one,
/// and a check that cannot pass would otherwise be found only after `docker_init.sh`.
pub fn plan(
    args: &HealthArgs,
    binds: &[String],
    host_ip: &str,
    port: u16,
) -> Result<Planned, CliError> {
    let detected = detect(binds, |p| std::fs::metadata(p).is_ok_and(|m| m.is_file()));
    let (url, scheme, from_operator) = match &args.health_url {
        Some(u) => {
            let (url, scheme) = operator_url(u)?;
            (url, scheme, true)
        }
        None => match &detected {
            Detected::Unknown(bind) => {
                return Err(CliError::new(
                    ExitKind::Input,
                    format!(
                        "the old container mounts the named volume `{bind}` over {CERT_PATH}'s folder; \
                         whether the console serves HTTPS cannot be seen from the host"
                    ),
                )
                .hint(format!(
                    "say it with --health-url (https://{host_ip}:{port} or http://{host_ip}:{port})"
                )));
            }
            Detected::Https(_) => (
                format!("https://{host_ip}:{port}"),
                HealthScheme::Https,
                false,
            ),
            Detected::Http => (
                format!("http://{host_ip}:{port}"),
                HealthScheme::Http,
                false,
            ),
        },
    };
    let detected_from = match detected {
        Detected::Https(b) | Detected::Unknown(b) => Some(b),
        Detected::Http => None,
    };
    let ca = match (scheme, &args.health_ca) {
        (HealthScheme::Http, Some(_)) => {
            return Err(CliError::new(
                ExitKind::Input,
                format!("--health-ca was given but the console is plain HTTP ({url})"),
            )
            .hint(format!(
                "drop --health-ca; if nginx does serve HTTPS, mount its certificate at {CERT_PATH} or pass --health-url https://..."
            )));
        }
        (HealthScheme::Https, None) => {
            return Err(CliError::new(
                ExitKind::Input,
                format!(
                    "the console serves HTTPS ({}) and no CA file was given to verify its certificate",
                    detected_from
                        .as_deref()
                        .map(|b| format!("the old container mounts `{b}`"))
                        .unwrap_or_else(|| format!("--health-url {url}")),
                ),
            )
            .hint(format!(
                "pass --health-ca FILE: the CA certificate that issued the console's certificate, or, \
                 when it is self-signed, the certificate itself (the host file mounted at {CERT_PATH})"
            )));
        }
        (HealthScheme::Https, Some(path)) => Some(CaFile::read(path).map_err(ca_error)?),
        (HealthScheme::Http, None) => None,
    };
    let client = match &ca {
        Some(ca) => HttpHealth::with_ca(ca),
        None => HttpHealth::new(),
    }
    .map_err(|e| CliError::new(ExitKind::Internal, e.to_string()))?;
    Ok(Planned {
        url,
        trust: HealthTrust {
            scheme,
            url_from_operator: from_operator,
            detected_from,
            ca_file: ca.as_ref().map(|c| c.path().display().to_string()),
            ca_blake3_hex: ca.as_ref().map(|c| c.blake3_hex().to_string()),
        },
        client,
    })
}

/// Asks the old node's health endpoint, before anything changes, so a check that cannot
/// work (wrong scheme, untrusted certificate, wrong port) is found now rather than after
/// `docker_init.sh`. Returns what to record as the `health` preflight check.
pub async fn probe(planned: &Planned) -> Result<String, CliError> {
    let r = planned
        .client
        .wait_healthy(&planned.url, PROBE_TIMEOUT, Duration::from_millis(500))
        .await;
    let url = crate::adapters::health::health_url(&planned.url);
    let trust = match (&planned.trust.ca_file, &planned.trust.ca_blake3_hex) {
        (Some(f), Some(h)) => format!(
            ", certificate verified against {f} (BLAKE3 {})",
            &h[..h.len().min(16)]
        ),
        _ => String::new(),
    };
    match r {
        Ok(_) => Ok(format!("the old node answers healthy at {url}{trust}")),
        Err(e @ HealthError::Tls { .. }) => Err(CliError::new(
            ExitKind::Input,
            format!("the health check cannot work: {e}"),
        )
        .hint(
            "pass with --health-ca the CA that issued the console's certificate (a self-signed \
             certificate is its own CA), and check that the certificate names the host of the URL \
             (subjectAltName); or pass --health-url with the right scheme",
        )),
        Err(HealthError::Timeout {
            last_report: Some(rep),
            ..
        }) => Err(CliError::new(
            ExitKind::Refused,
            format!(
                "the old node at {url} answers but is not healthy (HTTP {}: {})",
                rep.status, rep.reason
            ),
        )
        .hint("an upgrade starts from a healthy node: see `docker logs --tail 200 <container>`")),
        Err(e) => Err(CliError::new(
            ExitKind::Service,
            format!("the health check cannot work: {e}"),
        )
        .hint(match planned.trust.scheme {
            HealthScheme::Http => format!(
                "check nginx_server_port and OMS_HOST_IP; if the console serves HTTPS (a certificate \
                 at {CERT_PATH} that is not a bind of the container), pass --health-url https://... \
                 and --health-ca"
            ),
            HealthScheme::Https => "check nginx_server_port and OMS_HOST_IP; if nginx serves plain \
                 HTTP although a certificate is mounted, pass --health-url http://..."
                .to_string(),
        })),
    }
}

/// The health client for a planned run: trusting the CA file the plan recorded, after
/// checking the file still has the bytes the plan recorded (a changed CA file is refused:
/// the trust would no longer be the one recorded).
pub fn client_for(plan: &Plan) -> Result<HttpHealth, CliError> {
    let internal = |e: HealthError| CliError::new(ExitKind::Internal, e.to_string());
    let Some(trust) = plan.health_trust() else {
        return HttpHealth::new().map_err(internal);
    };
    match (&trust.ca_file, &trust.ca_blake3_hex) {
        (None, None) => HttpHealth::new().map_err(internal),
        (Some(file), Some(hash)) => {
            let ca = CaFile::read_planned(Path::new(file), hash).map_err(|e| {
                let changed = matches!(e, CaFileError::Changed { .. });
                CliError::new(
                    ExitKind::Refused,
                    format!("{e}; this command changed nothing"),
                )
                .hint(if changed {
                    "put back the CA file the plan was made with; to trust another CA, abandon \
                     this run (`oms-upgrade rollback`) and plan again with `oms-upgrade init`"
                } else {
                    "make the CA file the plan names readable again"
                })
            })?;
            HttpHealth::with_ca(&ca).map_err(internal)
        }
        _ => Err(CliError::new(
            ExitKind::Integrity,
            "the plan's health trust names a CA file without its BLAKE3 (or the reverse)",
        )),
    }
}

fn ca_error(e: CaFileError) -> CliError {
    CliError::new(ExitKind::Input, format!("--health-ca: {e}"))
        .hint("pass a regular PEM file (not a symbolic link) holding the CA certificate(s) only")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binds(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_certificate_bind_means_https() {
        let none = |_: &Path| false;
        let b = binds(&[
            "/data/conf/config.yaml:/home/admin/conf/config.yaml",
            "/data/tls/console.crt:/etc/pki/nginx/oms_server.crt:ro",
        ]);
        assert_eq!(detect(&b, none), Detected::Https(b[1].clone()));
        assert_eq!(
            detect(&binds(&["/data/logs:/home/admin/logs"]), none),
            Detected::Http
        );
        // A folder above the certificate: HTTPS only when the host side holds the file.
        let folder = binds(&["/data/nginx:/etc/pki/nginx/"]);
        assert_eq!(detect(&folder, none), Detected::Http);
        let has = |p: &Path| p == Path::new("/data/nginx/oms_server.crt");
        assert_eq!(detect(&folder, has), Detected::Https(folder[0].clone()));
        let pki = binds(&["/data/pki:/etc/pki"]);
        let has = |p: &Path| p == Path::new("/data/pki/nginx/oms_server.crt");
        assert_eq!(detect(&pki, has), Detected::Https(pki[0].clone()));
        // `/etc/pki/nginx2` is not above the certificate.
        assert_eq!(
            detect(&binds(&["/x:/etc/pki/ngin"]), |_| true),
            Detected::Http
        );
        let vol = binds(&["certs:/etc/pki/nginx"]);
        assert_eq!(detect(&vol, none), Detected::Unknown(vol[0].clone()));
        let vol_file = binds(&["certs:/etc/pki/nginx/oms_server.crt"]);
        assert_eq!(
            detect(&vol_file, none),
            Detected::Https(vol_file[0].clone())
        );
    }

    #[test]
    fn operator_urls_are_checked() {
        assert_eq!(
            operator_url("https://10.0.0.5:8089/oms/health").unwrap(),
            ("https://10.0.0.5:8089".to_string(), HealthScheme::Https)
        );
        assert_eq!(
            operator_url("http://127.0.0.1:8089/").unwrap(),
            ("http://127.0.0.1:8089".to_string(), HealthScheme::Http)
        );
        for bad in [
            "ftp://h:1",
            "https://u:p@h:1",
            "https://h:1/?x=1",
            "https://h:1/admin",
            "not a url",
        ] {
            let e = operator_url(bad).unwrap_err();
            assert_eq!(e.kind, ExitKind::Input, "{bad}");
            assert!(e.message.contains("--health-url"), "{bad}: {}", e.message);
        }
    }
}
