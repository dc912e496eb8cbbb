//! Where a node's Docker engine is: the local socket, a Unix socket, `ssh://user@host[:port]`
//! or `tcp://host:port` with TLS; and the SSH tunnel that reaches a remote engine.
//!
//! SSH goes through the operator's own `ssh` client (their keys, agent, `~/.ssh/config`,
//! jump hosts), never through bollard's `ssh` feature: that one starts an `openssh` master
//! with the library's default host-key policy (new keys are added, not refused) and offers
//! no way to name a `known_hosts` file. Here the options that matter for safety are given on
//! the command line, where they win over any config file: `StrictHostKeyChecking=yes` (an
//! unknown or changed host key is refused), `BatchMode=yes` (never a password or passphrase
//! prompt), `UpdateHostKeys=no` (the pinned file is never rewritten). The engine's socket is
//! forwarded to a Unix socket inside a private 0700 folder and bollard talks to that; see
//! docs/transport.md for why this and not `docker system dial-stdio`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::safefs::PrivateFolder;

/// Why a node's engine could not be reached through its transport. Its own type, so this
/// module does not depend on the Docker adapter that uses it; the adapter carries it as
/// [`super::docker::DockerError::Transport`].
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The node's SSH host key is not the one pinned in `known_hosts` (unknown or changed).
    /// Nothing was sent to the node.
    #[error(
        "the SSH host key of {host} is not pinned in {known_hosts}, or differs from the pinned \
         one; refused (ssh: {detail}). Check the key's fingerprint with the node's owner, then \
         add it with `ssh-keyscan` to that known_hosts file; nothing was sent to the node"
    )]
    HostKeyRefused {
        /// The host as known_hosts names it (`host` or `[host]:port`).
        host: String,
        /// The known_hosts file(s) consulted.
        known_hosts: String,
        /// The end of ssh's own message.
        detail: String,
    },
    /// The SSH tunnel to a node's engine could not be opened (login refused, unreachable,
    /// no `ssh` program, no forwarding allowed).
    #[error(
        "cannot reach the Docker engine at {endpoint} over SSH ({detail}); check that \
         `ssh` logs in there without a prompt (key in the agent or given) and that the \
         login may use /var/run/docker.sock"
    )]
    SshFailed {
        /// The endpoint (no secrets).
        endpoint: String,
        /// What went wrong.
        detail: String,
    },
    /// The TLS connection to a node's `tcp://` engine failed (files unreadable, server
    /// certificate not signed by the given CA, client certificate refused, unreachable).
    #[error(
        "cannot reach the Docker engine at {endpoint} over TLS: {detail}; the CA file must be \
         the one that signed the engine's certificate (whose names include the host), and the \
         client certificate one the engine's --tlscacert signed"
    )]
    TlsFailed {
        /// The endpoint (no secrets: file paths only).
        endpoint: String,
        /// What went wrong.
        detail: String,
    },
}

/// The engine's socket on the remote host, forwarded through SSH.
pub const REMOTE_DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// The default SSH port.
pub const DEFAULT_SSH_PORT: u16 = 22;

/// How long the tunnel may take to come up (TCP connect, key exchange, authentication).
const TUNNEL_TIMEOUT: Duration = Duration::from_secs(20);

/// The client certificate, key and the CA that signed the engine's certificate, for
/// `tcp://` endpoints. Paths only: the key itself is never read into a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificate (PEM) the engine's certificate must chain to.
    pub ca: PathBuf,
    /// The client certificate (PEM).
    pub cert: PathBuf,
    /// The client private key (PEM).
    pub key: PathBuf,
}

/// A node's Docker engine, as parsed from `unix:///…`, `ssh://user@host[:port]` or
/// `tcp://host:port`. Its [`Display`](fmt::Display) form is safe to log: it names files,
/// never their contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerEndpoint {
    /// `DOCKER_HOST` when set, else /var/run/docker.sock.
    Local,
    /// An engine's Unix socket on this machine (`unix:///run/user/1000/docker.sock`).
    Unix {
        /// The socket's path (absolute).
        path: PathBuf,
    },
    /// A remote engine reached through the system `ssh` client.
    Ssh {
        /// The remote login.
        user: String,
        /// The remote host name or IP address (IPv6 without brackets).
        host: String,
        /// The SSH port.
        port: u16,
    },
    /// A remote engine's TCP listener, always with mutual TLS (plain TCP would hand root on
    /// the node to anyone on the path).
    Tcp {
        /// The host name or IP address (IPv6 without brackets).
        host: String,
        /// The engine's TLS port (usually 2376).
        port: u16,
        /// The files for mutual TLS.
        tls: TlsFiles,
    },
}

/// Why an endpoint string was refused. Each message names the input and the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// The scheme is none of `unix://`, `ssh://`, `tcp://` (or `local`).
    #[error(
        "Docker endpoint `{given}` is not understood; use `local`, `unix:///path/to/docker.sock`, \
         `ssh://user@host[:port]` or `tcp://host:port` (with TLS files)"
    )]
    Scheme {
        /// The input.
        given: String,
    },
    /// A part of the endpoint is missing or has characters that cannot be right.
    #[error("Docker endpoint `{given}`: {what}")]
    Malformed {
        /// The input.
        given: String,
        /// What is wrong and what to write instead.
        what: String,
    },
    /// `tcp://` without the TLS files.
    #[error(
        "Docker endpoint `{given}` is plain TCP; this tool only talks to a remote engine over \
         mutual TLS: give the CA, client certificate and client key files"
    )]
    TcpNeedsTls {
        /// The input.
        given: String,
    },
}

impl DockerEndpoint {
    /// Parses an endpoint. `tls` is required for `tcp://` and refused for the other forms
    /// (a TLS file given where it would be ignored is a mistake worth saying).
    pub fn parse(given: &str, tls: Option<TlsFiles>) -> Result<DockerEndpoint, EndpointError> {
        let malformed = |what: &str| EndpointError::Malformed {
            given: given.to_string(),
            what: what.to_string(),
        };
        let ep = if given == "local" || given.is_empty() {
            DockerEndpoint::Local
        } else if let Some(path) = given.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(malformed(
                    "the socket path must be absolute, as in `unix:///var/run/docker.sock`",
                ));
            }
            DockerEndpoint::Unix {
                path: PathBuf::from(path),
            }
        } else if let Some(rest) = given.strip_prefix("ssh://") {
            let rest = rest.strip_suffix('/').unwrap_or(rest);
            let Some((user, hostport)) = rest.split_once('@') else {
                return Err(malformed(
                    "name the remote login, as in `ssh://root@10.0.0.5` (no default user: the \
                     engine's socket needs a user allowed to use it)",
                ));
            };
            if !valid_user(user) {
                return Err(malformed(
                    "the user must be letters, digits, `.`, `_` or `-`, not starting with `-`",
                ));
            }
            let (host, port) =
                split_host_port(hostport, DEFAULT_SSH_PORT).map_err(malformed_s(given))?;
            DockerEndpoint::Ssh {
                user: user.to_string(),
                host,
                port,
            }
        } else if let Some(rest) = given.strip_prefix("tcp://") {
            let rest = rest.strip_suffix('/').unwrap_or(rest);
            if !rest.contains(':') || rest.ends_with(']') {
                return Err(malformed("give the port, as in `tcp://10.0.0.5:2376`"));
            }
            let (host, port) = split_host_port(rest, 0).map_err(malformed_s(given))?;
            let Some(tls) = tls else {
                return Err(EndpointError::TcpNeedsTls {
                    given: given.to_string(),
                });
            };
            return Ok(DockerEndpoint::Tcp { host, port, tls });
        } else {
            return Err(EndpointError::Scheme {
                given: given.to_string(),
            });
        };
        if tls.is_some() {
            return Err(malformed(
                "TLS files are only used with `tcp://` endpoints; drop them or use `tcp://host:port`",
            ));
        }
        Ok(ep)
    }
}

fn malformed_s(given: &str) -> impl Fn(String) -> EndpointError + '_ {
    move |what| EndpointError::Malformed {
        given: given.to_string(),
        what,
    }
}

/// A login name that cannot be read by `ssh` as an option or carry shell or URL syntax.
fn valid_user(user: &str) -> bool {
    !user.is_empty()
        && !user.starts_with('-')
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A host name (letters, digits, `.`, `-`, not starting with `-`), an IPv4 address, or an
/// IPv6 address in brackets.
fn split_host_port(s: &str, default_port: u16) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((h, after)) = rest.split_once(']') else {
            return Err("an IPv6 address needs its closing `]`".into());
        };
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("`{h}` is not an IPv6 address"));
        }
        match after.strip_prefix(':') {
            Some(p) => (h.to_string(), Some(p)),
            None if after.is_empty() => (h.to_string(), None),
            None => return Err("after `]` only `:port` may follow".into()),
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (s.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err("the host is missing".into());
    }
    if !host.contains(':')
        && (host.starts_with('-')
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-')))
    {
        return Err(format!(
            "`{host}` is not a host name or IP address (letters, digits, `.` and `-`; IPv6 in brackets)"
        ));
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("`{p}` is not a port (1-65535)")),
        },
    };
    Ok((host, port))
}

impl fmt::Display for DockerEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host_fmt = |h: &str| {
            if h.contains(':') {
                format!("[{h}]")
            } else {
                h.to_string()
            }
        };
        match self {
            DockerEndpoint::Local => f.write_str("local"),
            DockerEndpoint::Unix { path } => write!(f, "unix://{}", path.display()),
            DockerEndpoint::Ssh { user, host, port } => {
                write!(f, "ssh://{user}@{}:{port}", host_fmt(host))
            }
            DockerEndpoint::Tcp { host, port, tls } => write!(
                f,
                "tcp://{}:{port} (TLS, CA {})",
                host_fmt(host),
                tls.ca.display()
            ),
        }
    }
}

/// How the system `ssh` client is run for an [`DockerEndpoint::Ssh`] endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshSettings {
    /// The `known_hosts` file that pins the node's host key. `None`: the operator's usual
    /// files (`~/.ssh/known_hosts` and the system-wide one). Given: only this file.
    pub known_hosts: Option<PathBuf>,
    /// The private key to log in with (`IdentitiesOnly`); `None`: the operator's agent and
    /// default keys.
    pub identity: Option<PathBuf>,
    /// The `ssh` program; `None`: `ssh` from `PATH`.
    pub program: Option<PathBuf>,
}

/// A running `ssh -N -L` that forwards a private local socket to the remote engine's socket.
/// Dropping it ends the `ssh` process and removes the folder.
#[derive(Debug)]
pub struct SshTunnel {
    child: tokio::process::Child,
    socket: PathBuf,
    // Declared last: removed after the child is gone.
    _dir: PrivateFolder,
}

impl SshTunnel {
    /// The local socket bollard connects to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The `ssh` arguments, without the program. Public for the argv test: no secret is
    /// ever in them (keys are named by path).
    pub fn args(
        user: &str,
        host: &str,
        port: u16,
        local_socket: &Path,
        settings: &SshSettings,
    ) -> Vec<String> {
        let mut a: Vec<String> = vec!["-N".into(), "-T".into()];
        let mut opt = |o: String| {
            a.push("-o".into());
            a.push(o);
        };
        opt("BatchMode=yes".into());
        opt("StrictHostKeyChecking=yes".into());
        opt("UpdateHostKeys=no".into());
        opt("PasswordAuthentication=no".into());
        opt("KbdInteractiveAuthentication=no".into());
        opt("ExitOnForwardFailure=yes".into());
        opt("ConnectTimeout=10".into());
        opt("ServerAliveInterval=15".into());
        opt("ServerAliveCountMax=3".into());
        // No shared master connection: its host-key check would be someone else's.
        opt("ControlMaster=no".into());
        opt("ControlPath=none".into());
        if let Some(kh) = &settings.known_hosts {
            opt(format!("UserKnownHostsFile={}", quote_ssh(kh)));
            opt("GlobalKnownHostsFile=/dev/null".into());
        }
        if let Some(id) = &settings.identity {
            opt(format!("IdentityFile={}", quote_ssh(id)));
            opt("IdentitiesOnly=yes".into());
        }
        a.push("-L".into());
        a.push(format!("{}:{REMOTE_DOCKER_SOCKET}", local_socket.display()));
        a.push("-p".into());
        a.push(port.to_string());
        a.push("-l".into());
        a.push(user.into());
        // `--`: the host (already checked not to start with `-`) can never be an option.
        a.push("--".into());
        a.push(host.into());
        a
    }

    /// Starts the tunnel and waits until the local socket exists (key exchange, host-key
    /// check and login all passed) or `ssh` gives up, whose reason becomes the error.
    pub async fn open(
        user: &str,
        host: &str,
        port: u16,
        settings: &SshSettings,
    ) -> Result<SshTunnel, TransportError> {
        let endpoint = DockerEndpoint::Ssh {
            user: user.into(),
            host: host.into(),
            port,
        }
        .to_string();
        let failed = |detail: String| TransportError::SshFailed {
            endpoint: endpoint.clone(),
            detail,
        };
        let dir = PrivateFolder::create("ssh").map_err(failed)?;
        let socket = dir.path().join("docker.sock");
        let program = settings
            .program
            .clone()
            .unwrap_or_else(|| PathBuf::from("ssh"));
        // ssh's messages go to a file in the private folder, not a pipe: a pipe nobody reads
        // once the tunnel is up would block ssh when it fills.
        let log_path = dir.path().join("ssh.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| failed(format!("cannot create {}: {e}", log_path.display())))?;
        let mut child = tokio::process::Command::new(&program)
            .args(Self::args(user, host, port, &socket, settings))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed(format!("cannot run `{}`: {e}", program.display())))?;
        let deadline = tokio::time::Instant::now() + TUNNEL_TIMEOUT;
        loop {
            if socket.exists() {
                return Ok(SshTunnel {
                    child,
                    socket,
                    _dir: dir,
                });
            }
            if let Some(status) = child.try_wait().map_err(|e| failed(e.to_string()))? {
                let stderr = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(classify_ssh_failure(
                    &endpoint,
                    host,
                    port,
                    settings,
                    status,
                    stderr.trim(),
                ));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(failed(format!(
                    "no tunnel within {TUNNEL_TIMEOUT:?}; check that `ssh -p {port} {user}@{host}` \
                     logs in without a prompt"
                )));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for SshTunnel {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// A local Unix socket whose every connection is carried to a remote engine's TLS listener
/// (`tcp://`), trusting only the operator's CA and presenting their client certificate.
/// Same shape as [`SshTunnel`], so bollard keeps its Unix-socket transport (exec hijack,
/// streaming logs) and the system roots are never trusted. Dropping it stops accepting.
#[derive(Debug)]
pub struct TlsBridge {
    task: tokio::task::JoinHandle<()>,
    socket: PathBuf,
    // Declared last: removed after the listener task is stopped.
    _dir: PrivateFolder,
}

impl TlsBridge {
    /// The local socket bollard connects to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Reads the TLS files, makes one connection now (so an unreachable engine or a server
    /// certificate the CA did not sign fails here, naming the endpoint), then listens.
    pub async fn open(host: &str, port: u16, tls: &TlsFiles) -> Result<TlsBridge, TransportError> {
        let endpoint = DockerEndpoint::Tcp {
            host: host.into(),
            port,
            tls: tls.clone(),
        }
        .to_string();
        let failed = |detail: String| TransportError::TlsFailed {
            endpoint: endpoint.clone(),
            detail,
        };
        let config = client_config(tls).map_err(failed)?;
        let name = rustls_pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| failed(format!("`{host}` is not a TLS server name: {e}")))?;
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let target = (host.to_string(), port);
        let first = connect_tls(&connector, &target, &name)
            .await
            .map_err(failed)?;
        drop(first);
        let dir = PrivateFolder::create("tls").map_err(failed)?;
        let socket = dir.path().join("docker.sock");
        let listener = tokio::net::UnixListener::bind(&socket)
            .map_err(|e| failed(format!("cannot listen on {}: {e}", socket.display())))?;
        let task = tokio::spawn(async move {
            while let Ok((mut local, _)) = listener.accept().await {
                let (connector, target, name) = (connector.clone(), target.clone(), name.clone());
                tokio::spawn(async move {
                    match connect_tls(&connector, &target, &name).await {
                        Ok(mut remote) => {
                            let _ = tokio::io::copy_bidirectional(&mut local, &mut remote).await;
                        }
                        // The local side sees its connection closed; bollard reports it.
                        Err(e) => tracing::warn!(error = %e, "TLS connection to the engine failed"),
                    }
                });
            }
        });
        Ok(TlsBridge {
            task,
            socket,
            _dir: dir,
        })
    }
}

impl Drop for TlsBridge {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn connect_tls(
    connector: &tokio_rustls::TlsConnector,
    target: &(String, u16),
    name: &rustls_pki_types::ServerName<'static>,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    let tcp = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect((target.0.as_str(), target.1)),
    )
    .await
    .map_err(|_| "no TCP connection within 10 s".to_string())?
    .map_err(|e| format!("cannot connect: {e}"))?;
    tokio::time::timeout(
        Duration::from_secs(10),
        connector.connect(name.clone(), tcp),
    )
    .await
    .map_err(|_| "no TLS handshake within 10 s".to_string())?
    .map_err(|e| format!("TLS handshake refused: {e}"))
}

/// Trusts only the given CA (never the system roots) and presents the client certificate.
fn client_config(tls: &TlsFiles) -> Result<rustls::ClientConfig, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = |p: &Path, what: &str| -> Result<Vec<CertificateDer<'static>>, String> {
        let v = CertificateDer::pem_file_iter(p)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("cannot read the {what} {}: {e}", p.display()))?;
        if v.is_empty() {
            return Err(format!(
                "the {what} {} holds no PEM certificate",
                p.display()
            ));
        }
        Ok(v)
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(&tls.ca, "CA file")? {
        roots
            .add(c)
            .map_err(|e| format!("a certificate of {} is not usable: {e}", tls.ca.display()))?;
    }
    let chain = certs(&tls.cert, "client certificate")?;
    // The key's bytes never reach a message: only its path and the parser's verdict.
    let key = PrivateKeyDer::from_pem_file(&tls.key)
        .map_err(|e| format!("cannot read the client key {}: {e}", tls.key.display()))?;
    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .map_err(|e| format!("the client certificate and key do not go together: {e}"))
}

/// What keeps a remote engine's local socket alive: an `ssh` process or a TLS bridge.
#[derive(Debug)]
pub enum Tunnel {
    /// `ssh -N -L`.
    Ssh(SshTunnel),
    /// The in-process TLS bridge.
    Tls(TlsBridge),
}

impl Tunnel {
    /// The local socket bollard connects to.
    pub fn socket(&self) -> &Path {
        match self {
            Tunnel::Ssh(t) => t.socket(),
            Tunnel::Tls(t) => t.socket(),
        }
    }
}

/// `ssh -o` values are split on whitespace unless quoted.
fn quote_ssh(p: &Path) -> String {
    format!("\"{}\"", p.display())
}

fn classify_ssh_failure(
    endpoint: &str,
    host: &str,
    port: u16,
    settings: &SshSettings,
    status: std::process::ExitStatus,
    stderr: &str,
) -> TransportError {
    if stderr.contains("Host key verification failed")
        || stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || stderr.contains("host key is known")
    {
        let known_hosts = settings.known_hosts.as_ref().map_or_else(
            || "~/.ssh/known_hosts (and /etc/ssh/ssh_known_hosts)".to_string(),
            |p| p.display().to_string(),
        );
        let host = if port == DEFAULT_SSH_PORT {
            host.to_string()
        } else {
            format!("[{host}]:{port}")
        };
        return TransportError::HostKeyRefused {
            host,
            known_hosts,
            detail: last_lines(stderr),
        };
    }
    TransportError::SshFailed {
        endpoint: endpoint.to_string(),
        detail: format!("ssh exited with {status}: {}", last_lines(stderr)),
    }
}

/// The last few lines of ssh's stderr: the reason is at the end, banners at the start.
fn last_lines(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(4)..].join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls() -> TlsFiles {
        TlsFiles {
            ca: "/c/ca.pem".into(),
            cert: "/c/cert.pem".into(),
            key: "/c/key.pem".into(),
        }
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(
            DockerEndpoint::parse("local", None).unwrap(),
            DockerEndpoint::Local
        );
        assert_eq!(
            DockerEndpoint::parse("unix:///run/docker.sock", None).unwrap(),
            DockerEndpoint::Unix {
                path: "/run/docker.sock".into()
            }
        );
        assert_eq!(
            DockerEndpoint::parse("ssh://root@10.0.0.5", None).unwrap(),
            DockerEndpoint::Ssh {
                user: "root".into(),
                host: "10.0.0.5".into(),
                port: 22
            }
        );
        assert_eq!(
            DockerEndpoint::parse("ssh://oms@[::1]:2222", None).unwrap(),
            DockerEndpoint::Ssh {
                user: "oms".into(),
                host: "::1".into(),
                port: 2222
            }
        );
        let t = DockerEndpoint::parse("tcp://node-2.example:2376", Some(tls())).unwrap();
        assert_eq!(
            t,
            DockerEndpoint::Tcp {
                host: "node-2.example".into(),
                port: 2376,
                tls: tls()
            }
        );
        assert_eq!(
            t.to_string(),
            "tcp://node-2.example:2376 (TLS, CA /c/ca.pem)"
        );
        assert!(!t.to_string().contains("key.pem"));
    }

    #[test]
    fn refuses_what_cannot_be_right() {
        for bad in [
            "ssh://10.0.0.5",
            "ssh://-oProxyCommand=x@h",
            "ssh://root@-oProxyCommand=x",
            "ssh://root@h:0",
            "ssh://root@h:99999",
            "ssh://root@h;rm",
            "ssh://root@[zz]:22",
            "unix://relative.sock",
            "tcp://h",
        ] {
            let e = DockerEndpoint::parse(bad, None).unwrap_err();
            assert!(e.to_string().contains(bad), "{bad}: {e}");
        }
        assert!(matches!(
            DockerEndpoint::parse("tcp://h:2375", None),
            Err(EndpointError::TcpNeedsTls { .. })
        ));
        assert!(matches!(
            DockerEndpoint::parse("http://h:2375", None),
            Err(EndpointError::Scheme { .. })
        ));
        assert!(DockerEndpoint::parse("ssh://root@h", Some(tls())).is_err());
    }

    #[test]
    fn ssh_args_pin_host_keys_and_never_prompt() {
        let s = SshSettings {
            known_hosts: Some("/t/known hosts".into()),
            identity: Some("/t/id".into()),
            program: None,
        };
        let a = SshTunnel::args("root", "127.0.0.1", 2222, Path::new("/p/d.sock"), &s);
        let joined = a.join(" ");
        for must in [
            "BatchMode=yes",
            "StrictHostKeyChecking=yes",
            "UserKnownHostsFile=\"/t/known hosts\"",
            "GlobalKnownHostsFile=/dev/null",
            "/p/d.sock:/var/run/docker.sock",
            "-- 127.0.0.1",
        ] {
            assert!(joined.contains(must), "{must} missing in {joined}");
        }
        assert!(!joined.contains("accept-new") && !joined.contains("StrictHostKeyChecking=no"));
    }
}
