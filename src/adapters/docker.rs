//! The Docker adapter: everything the runbook does with `docker` (inspect, stop, rename,
//! run, exec, logs, restart), behind the small [`Docker`] trait the executor is generic
//! over, with [`BollardDocker`] as the real implementation over the engine's API.
//!
//! The operations are written so the executor can reconcile after a crash: `stop`, `start`,
//! `rename` and `remove` are idempotent and *report* when there was nothing to do instead
//! of failing, so an in-doubt step can be re-run and the ledger can say what really
//! happened. Nothing here pulls an image: OMS images are loaded by the operator, and a
//! missing image is the typed [`DockerError::ImageMissing`].
//!
//! The binds comparison ([`binds_diff`], [`binds_equal`]) is pure and lives here because it
//! is the proof, recorded in the ledger, that the new container mounts exactly what the old
//! one did (runbook step 3).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::time::Duration;

use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, HostConfig, ResourcesUlimits};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, ListContainersOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, RenameContainerOptionsBuilder,
    RestartContainerOptionsBuilder, StartContainerOptions, StopContainerOptionsBuilder,
};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::endpoint::{DockerEndpoint, SshSettings, SshTunnel, TlsBridge, Tunnel};

/// How many bytes of an exec's combined stdout/stderr are kept in [`ExecOutcome::output_tail`].
/// The rest is only hashed: `docker_init.sh` can print a lot, and memory stays bounded.
pub const EXEC_OUTPUT_TAIL_BYTES: usize = 64 * 1024;

/// Extra time given to the HTTP request of `stop`/`restart` beyond the stop timeout itself,
/// because the engine answers only once the container is down (after SIGKILL if needed).
const STOP_REQUEST_SLACK: Duration = Duration::from_secs(30);

/// An error from the Docker adapter. Messages say what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The engine's socket cannot be reached or does not answer.
    #[error(
        "the Docker engine is not reachable ({detail}). Start it (e.g. `sudo systemctl start docker` \
         or `sudo dockerd &`) and check that this user may use /var/run/docker.sock"
    )]
    EngineUnreachable {
        /// What the client reported.
        detail: String,
    },
    /// No container has this name or id.
    #[error("no container named `{name}`; list containers with `docker ps -a`")]
    NotFound {
        /// The name or id that was looked up.
        name: String,
    },
    /// The image is not present in the local engine (this tool never pulls).
    #[error(
        "image `{image}` is not present in the local Docker engine; load it first \
         (`docker load -i <file>` or `docker pull {image}` on a machine with registry access)"
    )]
    ImageMissing {
        /// The image reference.
        image: String,
    },
    /// A container with the wanted name already exists (create or rename target).
    #[error(
        "a container named `{name}` already exists; inspect it with `docker inspect {name}` and \
         rename or remove it if it is not part of this run"
    )]
    NameConflict {
        /// The name that is taken.
        name: String,
    },
    /// The engine refused to start a privileged container (some engines, e.g. rootless or
    /// inside another container, cannot grant all capabilities).
    #[error(
        "the Docker engine refused to start privileged container `{name}` ({message}); plan \
         the upgrade with `--no-privileged` if OMS runs without it on this host"
    )]
    PrivilegedRefused {
        /// The container.
        name: String,
        /// The engine's message.
        message: String,
    },
    /// The operation needs a running container.
    #[error("container `{name}` is not running; start it or check `docker logs {name}`")]
    NotRunning {
        /// The container.
        name: String,
    },
    /// An exec did not finish within its timeout. The process may still run in the container.
    #[error(
        "`{command}` in container `{name}` did not finish within {timeout:?}; it may still be \
         running there (check with `docker top {name}`). Last output:\n{output_tail}"
    )]
    ExecTimeout {
        /// The container.
        name: String,
        /// The command, joined with spaces, for the message.
        command: String,
        /// The timeout that expired.
        timeout: Duration,
        /// The tail of the output seen so far.
        output_tail: String,
    },
    /// A wanted log line did not appear in time.
    #[error(
        "container `{name}` did not log a line containing `{needle}` within {timeout:?}; \
         read `docker logs --tail 100 {name}`"
    )]
    LogLineTimeout {
        /// The container.
        name: String,
        /// The text that was awaited.
        needle: String,
        /// How long was waited.
        timeout: Duration,
    },
    /// Any other error reported by the engine.
    #[error("Docker API error: {message}")]
    Api {
        /// The engine's message (with its HTTP status when there was one).
        message: String,
    },
    /// A node's engine could not be reached through its SSH or TLS transport
    /// ([`super::endpoint`]).
    #[error(transparent)]
    Transport(#[from] super::endpoint::TransportError),
}

/// A container's lifecycle state as Docker reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerStatus {
    /// Created but never started.
    Created,
    /// Running (including paused-free normal operation).
    Running,
    /// Paused by `docker pause`.
    Paused,
    /// Being restarted by its restart policy.
    Restarting,
    /// Being removed.
    Removing,
    /// Stopped, with the main process's exit code.
    Exited {
        /// The exit code (143 after SIGTERM without a handler, 137 after SIGKILL).
        code: i64,
    },
    /// Dead (the engine failed to stop or remove it).
    Dead,
    /// A state this tool does not know, as Docker spelled it.
    Other(String),
}

impl ContainerStatus {
    /// True when the container's main process is running.
    pub fn is_running(&self) -> bool {
        matches!(self, ContainerStatus::Running | ContainerStatus::Restarting)
    }
}

/// One `--ulimit NAME=SOFT:HARD` (the one ulimit type: recorded, planned and reported).
pub use crate::events::Ulimit;

/// A restart policy (`--restart`): `no` (Docker also stores it as an empty name), `always`,
/// `unless-stopped`, `on-failure` with its retry count.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartPolicySetting {
    /// The policy's name as Docker spells it; empty means `no`.
    pub name: String,
    /// `on-failure`'s maximum retry count (0 otherwise).
    pub max_retries: i64,
}

impl RestartPolicySetting {
    /// `--restart no`.
    pub fn no() -> Self {
        RestartPolicySetting {
            name: "no".into(),
            max_retries: 0,
        }
    }

    /// The name with Docker's empty spelling of `no` made explicit.
    pub fn normalised(&self) -> RestartPolicySetting {
        RestartPolicySetting {
            name: if self.name.is_empty() {
                "no".into()
            } else {
                self.name.clone()
            },
            max_retries: self.max_retries,
        }
    }
}

/// The parts of a container's `HostConfig` that a deployment chooses and an upgrade keeps
/// (besides binds, network mode, privileged, pids limit and ulimits, which the runbook
/// names): raw values as Docker holds them, secrets included. Empty lists mean "not set".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSettings {
    /// `--restart`.
    pub restart: RestartPolicySetting,
    /// `--log-driver` (empty: the engine's default).
    pub log_driver: String,
    /// `--log-opt KEY=VALUE`.
    pub log_opts: BTreeMap<String, String>,
    /// `--add-host NAME:IP`, order kept.
    pub extra_hosts: Vec<String>,
    /// `--device HOST:CONTAINER:PERMS`, order kept.
    pub devices: Vec<String>,
    /// `--cap-add`.
    pub cap_add: Vec<String>,
    /// `--cap-drop`.
    pub cap_drop: Vec<String>,
    /// `--dns`.
    pub dns: Vec<String>,
    /// `--dns-search`.
    pub dns_search: Vec<String>,
    /// `--dns-option`.
    pub dns_options: Vec<String>,
    /// `--shm-size` in bytes (`None`: the engine's default).
    pub shm_size: Option<i64>,
    /// `--tmpfs PATH:OPTIONS`.
    pub tmpfs: BTreeMap<String, String>,
    /// `--security-opt`.
    pub security_opt: Vec<String>,
}

/// What `docker inspect` says about a container, reduced to what an upgrade needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInfo {
    /// Full container id.
    pub id: String,
    /// Name without Docker's leading `/`.
    pub name: String,
    /// The image as configured at creation (`Config.Image`, e.g. `oms:3.3.0`).
    pub image: String,
    /// The image's id (`sha256:...`) the container runs.
    pub image_id: String,
    /// Lifecycle state.
    pub status: ContainerStatus,
    /// When the engine created the container.
    pub created: Option<DateTime<Utc>>,
    /// When the main process last started (Docker's clock), if ever.
    pub started_at: Option<DateTime<Utc>>,
    /// When the main process last stopped (Docker's clock), if ever.
    pub finished_at: Option<DateTime<Utc>>,
    /// `HostConfig.Binds` exactly as stored, order kept. Compare with [`binds_equal`].
    pub binds: Vec<String>,
    /// `Config.Env` (includes the image's own environment; see [`user_env`]).
    pub env: Vec<String>,
    /// Labels, sorted by key.
    pub labels: BTreeMap<String, String>,
    /// `HostConfig.NetworkMode`, e.g. `host`.
    pub network_mode: String,
    /// `HostConfig.Privileged`.
    pub privileged: bool,
    /// `HostConfig.PidsLimit`. Docker 20.10 stores `--pids-limit -1` (unlimited) as `None`;
    /// use [`ContainerInfo::pids_unlimited`].
    pub pids_limit: Option<i64>,
    /// `HostConfig.Ulimits`, order kept.
    pub ulimits: Vec<Ulimit>,
    /// `Config.Cmd`.
    pub cmd: Option<Vec<String>>,
    /// `Config.Tty` (`-t`).
    pub tty: bool,
    /// `Config.OpenStdin` (`-i`).
    pub open_stdin: bool,
    /// Restart policy, logging, extra hosts, devices and the other deployment choices.
    pub host: HostSettings,
}

impl ContainerInfo {
    /// True when no pids limit applies (`--pids-limit -1`, 0 or unset).
    pub fn pids_unlimited(&self) -> bool {
        self.pids_limit.is_none_or(|l| l <= 0)
    }

    /// The value of environment variable `key`, if set.
    pub fn env_var(&self, key: &str) -> Option<&str> {
        env_lookup(&self.env, key)
    }
}

/// What `docker image inspect` says about an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// Image id (`sha256:...`).
    pub id: String,
    /// Tags pointing at it.
    pub repo_tags: Vec<String>,
    /// The image's own environment (`Config.Env`).
    pub env: Vec<String>,
    /// The image's own labels (`Config.Labels`): a container created from it carries them
    /// too unless it sets the key itself.
    pub labels: BTreeMap<String, String>,
}

/// Everything needed to create a container: the runbook's `docker run -dit ...` line as data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// `--name`.
    pub name: String,
    /// The image reference.
    pub image: String,
    /// `-v HOST:CONTAINER[:OPTS]`, in order.
    pub binds: Vec<String>,
    /// `-e KEY=VALUE`, in order.
    pub env: Vec<String>,
    /// `--label KEY=VALUE`.
    pub labels: BTreeMap<String, String>,
    /// `--net`, e.g. `host`.
    pub network_mode: String,
    /// `--privileged=true`.
    pub privileged: bool,
    /// `--pids-limit` (`Some(-1)` = unlimited).
    pub pids_limit: Option<i64>,
    /// `--ulimit NAME=SOFT:HARD`.
    pub ulimits: Vec<Ulimit>,
    /// Command overriding the image's, if any.
    pub cmd: Option<Vec<String>>,
    /// Restart policy, logging, extra hosts, devices and the other deployment choices
    /// (default: none set, the engine's defaults).
    pub host: HostSettings,
}

impl ContainerSpec {
    /// The runbook's host configuration: `--net host --privileged=true --pids-limit -1
    /// --ulimit nproc=65535:65535`, with the given binds, env and labels. Callers clear
    /// `privileged` for engines that refuse it (`--no-privileged`).
    pub fn runbook(
        name: impl Into<String>,
        image: impl Into<String>,
        binds: Vec<String>,
        env: Vec<String>,
        labels: BTreeMap<String, String>,
    ) -> Self {
        ContainerSpec {
            name: name.into(),
            image: image.into(),
            binds,
            env,
            labels,
            network_mode: "host".to_string(),
            privileged: true,
            pids_limit: Some(-1),
            ulimits: vec![Ulimit {
                name: "nproc".to_string(),
                soft: 65535,
                hard: 65535,
            }],
            cmd: None,
            host: HostSettings::default(),
        }
    }

    /// The equivalent `docker run` command line, for `plan` and the record. Values are
    /// shown as given: callers must not put secrets into a spec's env.
    pub fn docker_run_args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec!["docker".into(), "run".into(), "-dit".into()];
        a.push(format!("--net={}", self.network_mode));
        for b in &self.binds {
            a.push("-v".into());
            a.push(b.clone());
        }
        for e in &self.env {
            a.push("-e".into());
            a.push(e.clone());
        }
        for (k, v) in &self.labels {
            a.push("--label".into());
            a.push(format!("{k}={v}"));
        }
        a.push(format!("--privileged={}", self.privileged));
        if let Some(p) = self.pids_limit {
            a.push("--pids-limit".into());
            a.push(p.to_string());
        }
        for u in &self.ulimits {
            a.push("--ulimit".into());
            a.push(format!("{}={}:{}", u.name, u.soft, u.hard));
        }
        a.push("--name".into());
        a.push(self.name.clone());
        a.push(self.image.clone());
        if let Some(cmd) = &self.cmd {
            a.extend(cmd.iter().cloned());
        }
        a
    }
}

/// Result of [`Docker::stop`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopOutcome {
    /// True when the container was not running before the call (nothing was done).
    pub already_stopped: bool,
    /// Docker's own record of when the main process stopped (the runbook's T1/T3 as the
    /// engine saw it).
    pub finished_at: Option<DateTime<Utc>>,
    /// Exit code of the main process.
    pub exit_code: Option<i64>,
}

/// Result of [`Docker::start`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartOutcome {
    /// True when the container was already running (nothing was done).
    pub already_running: bool,
    /// Docker's record of when the main process started.
    pub started_at: Option<DateTime<Utc>>,
    /// When the run before this one ended (Docker's `FinishedAt`), if there was one. Log
    /// lines after it belong to this start: pass it as `since` to
    /// [`Docker::wait_for_log_line`]. (`started_at` is not a safe cut: Docker sets it a
    /// moment after the process may already have logged.)
    pub previous_finished_at: Option<DateTime<Utc>>,
}

/// Result of [`Docker::rename`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RenameOutcome {
    /// The container was renamed by this call.
    Renamed,
    /// `from` no longer exists and `to` does: an earlier call already renamed it.
    AlreadyRenamed,
}

/// Result of [`Docker::remove`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveOutcome {
    /// True when no such container existed (nothing was done).
    pub already_absent: bool,
}

/// Result of [`Docker::exec`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOutcome {
    /// The process's exit code, from the engine's exec record.
    pub exit_code: i64,
    /// The last [`EXEC_OUTPUT_TAIL_BYTES`] of stdout and stderr, interleaved as received
    /// (lossy UTF-8).
    pub output_tail: String,
    /// Total bytes of output.
    pub output_bytes: u64,
    /// BLAKE3 (hex) of the whole output as received.
    pub output_blake3: String,
}

/// One exec session as the engine records it (`docker exec` has no CLI to show this; the
/// API's exec inspect does).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecInfo {
    /// The engine's exec id.
    pub id: String,
    /// The command the session was started with (entrypoint and arguments). What the
    /// process later `exec`s into does not change it, which is why a session is found by
    /// this and not by a name in the container's process list.
    pub argv: Vec<String>,
    /// True while the session's process runs.
    pub running: bool,
    /// The session's process id on the engine's host, when it has one.
    pub pid: Option<i64>,
    /// The exit code, once it ended.
    pub exit_code: Option<i64>,
}

/// A log line found by [`Docker::wait_for_log_line`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogMatch {
    /// The line (without timestamp and newline).
    pub line: String,
    /// Docker's timestamp of the line.
    pub at: Option<DateTime<Utc>>,
}

/// The Docker operations an upgrade needs. The executor is generic over this trait;
/// [`BollardDocker`] is the real one.
pub trait Docker: Send + Sync {
    /// Inspects a container by name or id; `None` when there is none.
    fn inspect(
        &self,
        name_or_id: &str,
    ) -> impl Future<Output = Result<Option<ContainerInfo>, DockerError>> + Send;

    /// Inspects an image; `None` when it is not present locally.
    fn inspect_image(
        &self,
        image: &str,
    ) -> impl Future<Output = Result<Option<ImageInfo>, DockerError>> + Send;

    /// Stops a running container (SIGTERM, then SIGKILL after `timeout`). Stopping a
    /// stopped container does nothing and says so.
    fn stop(
        &self,
        name: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<StopOutcome, DockerError>> + Send;

    /// Renames `from` to `to`. When `from` is gone and `to` exists, reports
    /// [`RenameOutcome::AlreadyRenamed`]; when both exist, [`DockerError::NameConflict`].
    fn rename(
        &self,
        from: &str,
        to: &str,
    ) -> impl Future<Output = Result<RenameOutcome, DockerError>> + Send;

    /// Sets a container's restart policy (`docker update --restart`), running or not.
    fn set_restart_policy(
        &self,
        name_or_id: &str,
        policy: &RestartPolicySetting,
    ) -> impl Future<Output = Result<(), DockerError>> + Send;

    /// Creates (does not start) a container; returns its id.
    fn create(
        &self,
        spec: &ContainerSpec,
    ) -> impl Future<Output = Result<String, DockerError>> + Send;

    /// Starts a container; already running is fine and reported.
    fn start(&self, name: &str) -> impl Future<Output = Result<StartOutcome, DockerError>> + Send;

    /// `docker restart` with a stop timeout; starts a stopped container.
    fn restart(
        &self,
        name: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<StartOutcome, DockerError>> + Send;

    /// Runs `cmd` in a running container with extra `env`, streaming its output (bounded
    /// tail + hash) and returning its exit code. A `timeout` that expires is
    /// [`DockerError::ExecTimeout`]; the process is not killed (Docker cannot).
    /// (In the container's default working folder: [`Docker::exec_in`] with `None`, so an
    /// implementation writes the exec once.)
    fn exec(
        &self,
        name: &str,
        cmd: Vec<String>,
        env: Vec<String>,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<ExecOutcome, DockerError>> + Send {
        self.exec_in(name, cmd, env, None, timeout)
    }

    /// [`Docker::exec`] with the process's working folder set (`docker exec -w DIR`);
    /// `None` is the container's default.
    fn exec_in(
        &self,
        name: &str,
        cmd: Vec<String>,
        env: Vec<String>,
        working_dir: Option<String>,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<ExecOutcome, DockerError>> + Send;

    /// The exec sessions running in a container now. The engine drops a session from its
    /// container's list when its process ends, so this finds a process started by an
    /// earlier `exec` that the caller lost track of (it died), whatever that process has
    /// since `exec`ed into. `None` when there is no such container.
    fn running_execs(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Vec<ExecInfo>>, DockerError>> + Send;

    /// One exec session by id; `None` when the engine no longer knows it (it forgets
    /// ended sessions after a while, and all of them when the container stops).
    fn inspect_exec(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<ExecInfo>, DockerError>> + Send;

    /// The last `tail` lines of the container's stdout and stderr.
    fn logs(
        &self,
        name: &str,
        tail: usize,
    ) -> impl Future<Output = Result<String, DockerError>> + Send;

    /// Removes a container (`force` kills a running one). Absent is fine and reported.
    fn remove(
        &self,
        name: &str,
        force: bool,
    ) -> impl Future<Output = Result<RemoveOutcome, DockerError>> + Send;

    /// Every container (running or not) carrying label `key`, with value `value` when
    /// given, sorted by name. How runs and demos find the containers they labelled.
    fn find_by_label(
        &self,
        key: &str,
        value: Option<&str>,
    ) -> impl Future<Output = Result<Vec<ContainerInfo>, DockerError>> + Send;

    /// Waits until the container logs a line containing `needle`, considering only lines
    /// logged after `since` (pass [`StartOutcome::previous_finished_at`], so a line from
    /// before a restart does not count; `None` considers every line).
    fn wait_for_log_line(
        &self,
        name: &str,
        needle: &str,
        since: Option<DateTime<Utc>>,
        timeout: Duration,
    ) -> impl Future<Output = Result<LogMatch, DockerError>> + Send;
}

/// The real [`Docker`] over the engine's API (bollard).
#[derive(Debug, Clone)]
pub struct BollardDocker {
    client: bollard::Docker,
    // Keeps the SSH tunnel or TLS bridge (and so the local socket) alive as long as a clone
    // of this client is; `None` for local engines.
    tunnel: Option<std::sync::Arc<Tunnel>>,
}

impl BollardDocker {
    /// Connects to the local engine (`DOCKER_HOST` or /var/run/docker.sock) and negotiates
    /// the API version, which older engines (20.10, API 1.41) require.
    pub async fn connect() -> Result<Self, DockerError> {
        let client = bollard::Docker::connect_with_local_defaults().map_err(unreachable)?;
        let client = client.negotiate_version().await.map_err(unreachable)?;
        client.ping().await.map_err(unreachable)?;
        Ok(BollardDocker {
            client,
            tunnel: None,
        })
    }

    /// Connects to the engine listening on the Unix socket at `path` (e.g. a rootless or
    /// non-default dockerd) and negotiates the API version.
    pub async fn connect_socket(path: &str) -> Result<Self, DockerError> {
        let client = bollard::Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION)
            .map_err(unreachable)?;
        let client = client.negotiate_version().await.map_err(unreachable)?;
        client.ping().await.map_err(unreachable)?;
        Ok(BollardDocker {
            client,
            tunnel: None,
        })
    }

    /// Wraps an existing client (its API version must already be negotiated).
    pub fn from_client(client: bollard::Docker) -> Self {
        BollardDocker {
            client,
            tunnel: None,
        }
    }

    /// Connects to the engine at `endpoint` with the operator's usual SSH settings.
    pub async fn connect_to(endpoint: &DockerEndpoint) -> Result<Self, DockerError> {
        Self::connect_to_with(endpoint, &SshSettings::default()).await
    }

    /// Connects to the engine at `endpoint`; `ssh` says which known_hosts file pins the host
    /// keys and which key logs in, for [`DockerEndpoint::Ssh`].
    pub async fn connect_to_with(
        endpoint: &DockerEndpoint,
        ssh: &SshSettings,
    ) -> Result<Self, DockerError> {
        match endpoint {
            DockerEndpoint::Local => Self::connect().await,
            DockerEndpoint::Unix { path } => {
                let path = path
                    .to_str()
                    .ok_or_else(|| DockerError::EngineUnreachable {
                        detail: format!("socket path {} is not UTF-8", path.display()),
                    })?;
                Self::connect_socket(path).await
            }
            DockerEndpoint::Ssh { user, host, port } => {
                let tunnel = SshTunnel::open(user, host, *port, ssh).await?;
                Self::through(Tunnel::Ssh(tunnel), |e| {
                    super::endpoint::TransportError::SshFailed {
                        endpoint: endpoint.to_string(),
                        detail: format!(
                            "logged in, but the engine's socket did not answer through the tunnel \
                         ({e}); the node's sshd must allow forwarding (`AllowTcpForwarding` and \
                         `AllowStreamLocalForwarding` not `no`) and the login must be allowed \
                         to use {}",
                            super::endpoint::REMOTE_DOCKER_SOCKET
                        ),
                    }
                })
                .await
            }
            // bollard's `ssl` feature needs a crate this build does not carry and trusts the
            // system roots beside the CA; the bridge trusts only the operator's CA.
            DockerEndpoint::Tcp { host, port, tls } => {
                let bridge = TlsBridge::open(host, *port, tls).await?;
                Self::through(Tunnel::Tls(bridge), |e| {
                    super::endpoint::TransportError::TlsFailed {
                        endpoint: endpoint.to_string(),
                        detail: format!(
                            "the engine did not answer through the TLS connection ({e}); it may \
                         have refused the client certificate"
                        ),
                    }
                })
                .await
            }
        }
    }

    /// Connects through an open tunnel's local socket and keeps the tunnel with the client.
    /// `failed` gets the client's own words (without the advice for a local engine,
    /// `systemctl start docker`, which is wrong for a remote one).
    async fn through(
        tunnel: Tunnel,
        failed: impl FnOnce(String) -> super::endpoint::TransportError,
    ) -> Result<Self, DockerError> {
        let socket = tunnel.socket().to_string_lossy().into_owned();
        match Self::connect_socket(&socket).await {
            Ok(mut docker) => {
                docker.tunnel = Some(std::sync::Arc::new(tunnel));
                Ok(docker)
            }
            Err(DockerError::EngineUnreachable { detail }) => Err(failed(detail).into()),
            Err(other) => Err(failed(other.to_string()).into()),
        }
    }

    /// The local socket of the SSH tunnel or TLS bridge this client goes through, if any.
    pub fn tunnel_socket(&self) -> Option<&std::path::Path> {
        self.tunnel.as_deref().map(Tunnel::socket)
    }

    /// The underlying client.
    pub fn client(&self) -> &bollard::Docker {
        &self.client
    }

    /// The engine's own id (`docker info`'s `ID`): two endpoints that reach one engine (the
    /// default socket and `unix:///var/run/docker.sock`) give the same id.
    pub async fn engine_id(&self) -> Result<String, DockerError> {
        let info = self.client.info().await.map_err(unreachable)?;
        info.id.filter(|id| !id.is_empty()).ok_or(DockerError::Api {
            message: "the engine's `docker info` has no ID".into(),
        })
    }

    /// Whether `path` exists inside container `name` as the engine sees it (its archive
    /// API's stat, which resolves the container's mounts). `Ok(false)`: no such path.
    pub async fn path_in_container(&self, name: &str, path: &str) -> Result<bool, DockerError> {
        let opts = bollard::query_parameters::ContainerArchiveInfoOptionsBuilder::default()
            .path(path)
            .build();
        match self
            .client
            .get_container_archive_info(name, Some(opts))
            .await
        {
            Ok(_) => Ok(true),
            // A HEAD's 404 carries no body: the container was inspected just before, so a
            // 404 here is the path.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(map_err(e, Ctx::Container(name))),
        }
    }

    /// The bytes of the regular file `path` inside container `name`, through the engine's
    /// archive API (which reads the container's mounts too, running or not). `Ok(None)`:
    /// no such file. The content comes from outside: more than `max` bytes is refused.
    pub async fn read_container_file(
        &self,
        name: &str,
        path: &str,
        max: usize,
    ) -> Result<Option<Vec<u8>>, DockerError> {
        use futures_util::StreamExt;
        let opts = bollard::query_parameters::DownloadFromContainerOptionsBuilder::default()
            .path(path)
            .build();
        let mut stream = self.client.download_from_container(name, Some(opts));
        // The archive holds one file: its header and padding on top of the content.
        let cap = max + 64 * 1024;
        let mut tar = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => {
                    tar.extend_from_slice(&bytes);
                    if tar.len() > cap {
                        return Err(DockerError::Api {
                            message: format!("{path} in `{name}` is larger than {max} bytes"),
                        });
                    }
                }
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => return Ok(None),
                Err(e) => return Err(map_err(e, Ctx::Container(name))),
            }
        }
        let bad = |what: String| DockerError::Api {
            message: format!("the archive of {path} from `{name}` {what}"),
        };
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut entries = archive
            .entries()
            .map_err(|e| bad(format!("cannot be read: {e}")))?;
        let Some(entry) = entries.next() else {
            return Ok(None);
        };
        let mut entry = entry.map_err(|e| bad(format!("cannot be read: {e}")))?;
        if !entry.header().entry_type().is_file() {
            return Err(bad("is not a regular file".into()));
        }
        let mut out = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(&mut entry, max as u64 + 1),
            &mut out,
        )
        .map_err(|e| bad(format!("cannot be read: {e}")))?;
        if out.len() > max {
            return Err(bad(format!("is larger than {max} bytes")));
        }
        Ok(Some(out))
    }

    /// A client whose request timeout covers a stop of `timeout`.
    fn client_for_stop(&self, timeout: Duration) -> bollard::Docker {
        let needed = timeout + STOP_REQUEST_SLACK;
        if needed > self.client.timeout() {
            self.client.clone().with_timeout(needed)
        } else {
            self.client.clone()
        }
    }

    async fn require(&self, name: &str) -> Result<ContainerInfo, DockerError> {
        self.inspect(name)
            .await?
            .ok_or_else(|| DockerError::NotFound {
                name: name.to_string(),
            })
    }

    /// Opens a following log stream and scans it for `needle`. Returns `Ok(None)` when the
    /// stream ended (the container stopped) without a match.
    async fn scan_log_stream(
        &self,
        name: &str,
        needle: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<Option<LogMatch>, DockerError> {
        let mut b = LogsOptionsBuilder::default()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .timestamps(true);
        if let Some(s) = since {
            // The API filters by whole seconds; the exact cut is applied per line below.
            b = b.since(i32::try_from(s.timestamp()).unwrap_or(0));
        }
        let mut stream = self.client.logs(name, Some(b.build()));
        let mut pending: Vec<u8> = Vec::new();
        while let Some(item) = stream.next().await {
            let chunk = item.map_err(|e| map_err(e, Ctx::Container(name)))?;
            pending.extend_from_slice(chunk.as_ref());
            while let Some(pos) = pending.iter().position(|&c| c == b'\n') {
                let raw: Vec<u8> = pending.drain(..=pos).collect();
                if let Some(m) = match_log_line(&raw, needle, since) {
                    return Ok(Some(m));
                }
            }
        }
        Ok(match_log_line(&pending, needle, since))
    }
}

/// Splits Docker's `timestamps=true` prefix off a log line and returns it if it contains
/// `needle` and was logged after `since`.
fn match_log_line(raw: &[u8], needle: &str, since: Option<DateTime<Utc>>) -> Option<LogMatch> {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim_end_matches(['\n', '\r']);
    let (at, line) = match text.split_once(' ') {
        Some((ts, rest)) => match parse_docker_time(ts) {
            Some(t) => (Some(t), rest),
            None => (None, text),
        },
        None => (parse_docker_time(text), ""),
    };
    if let (Some(s), Some(t)) = (since, at)
        && t <= s
    {
        return None;
    }
    line.contains(needle).then(|| LogMatch {
        line: line.to_string(),
        at,
    })
}

/// Which kind of object a request was about, to turn a 404 into the right typed error.
enum Ctx<'a> {
    Container(&'a str),
    Image(&'a str),
}

fn unreachable(e: bollard::errors::Error) -> DockerError {
    DockerError::EngineUnreachable {
        detail: e.to_string(),
    }
}

fn map_err(e: bollard::errors::Error, ctx: Ctx<'_>) -> DockerError {
    use bollard::errors::Error as E;
    match e {
        E::DockerResponseServerError {
            status_code: 404,
            message,
        } => match ctx {
            Ctx::Image(image) => DockerError::ImageMissing {
                image: image.to_string(),
            },
            // A create reports its missing image as a 404 too.
            Ctx::Container(_) if message.contains("No such image") => DockerError::ImageMissing {
                image: message
                    .rsplit("No such image: ")
                    .next()
                    .unwrap_or(&message)
                    .to_string(),
            },
            Ctx::Container(name) => DockerError::NotFound {
                name: name.to_string(),
            },
        },
        E::DockerResponseServerError {
            status_code: 409,
            message,
        } if message.contains("is not running") => match ctx {
            Ctx::Container(name) | Ctx::Image(name) => DockerError::NotRunning {
                name: name.to_string(),
            },
        },
        E::DockerResponseServerError {
            status_code,
            message,
        } => DockerError::Api {
            message: format!("HTTP {status_code}: {message}"),
        },
        E::IOError { .. }
        | E::HyperResponseError { .. }
        | E::SocketNotFoundError(_)
        | E::RequestTimeoutError
        | E::HyperLegacyError { .. } => unreachable(e),
        other => DockerError::Api {
            message: other.to_string(),
        },
    }
}

/// Parses one of Docker's RFC 3339 times; Go's zero time (`0001-01-01T00:00:00Z`, "never")
/// becomes `None`.
pub fn parse_docker_time(s: &str) -> Option<DateTime<Utc>> {
    let t = DateTime::parse_from_rfc3339(s).ok()?.with_timezone(&Utc);
    (t.timestamp() > 0).then_some(t)
}

fn to_info(r: bollard::models::ContainerInspectResponse) -> ContainerInfo {
    use bollard::models::ContainerStateStatusEnum as S;
    let state = r.state.unwrap_or_default();
    let status = match state.status {
        Some(S::CREATED) => ContainerStatus::Created,
        Some(S::RUNNING) => ContainerStatus::Running,
        Some(S::PAUSED) => ContainerStatus::Paused,
        Some(S::RESTARTING) => ContainerStatus::Restarting,
        Some(S::REMOVING) => ContainerStatus::Removing,
        Some(S::EXITED) => ContainerStatus::Exited {
            code: state.exit_code.unwrap_or(0),
        },
        Some(S::DEAD) => ContainerStatus::Dead,
        Some(other) => ContainerStatus::Other(other.to_string()),
        None => ContainerStatus::Other(String::new()),
    };
    let config = r.config.unwrap_or_default();
    let host = r.host_config.unwrap_or_default();
    ContainerInfo {
        id: r.id.unwrap_or_default(),
        name: r
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        image: config.image.unwrap_or_default(),
        image_id: r.image.unwrap_or_default(),
        status,
        created: r
            .created
            .as_ref()
            .and_then(|c| parse_docker_time(&c.to_string())),
        started_at: state.started_at.as_deref().and_then(parse_docker_time),
        finished_at: state.finished_at.as_deref().and_then(parse_docker_time),
        binds: host.binds.unwrap_or_default(),
        env: config.env.unwrap_or_default(),
        labels: config.labels.unwrap_or_default().into_iter().collect(),
        network_mode: host.network_mode.unwrap_or_default(),
        privileged: host.privileged.unwrap_or(false),
        pids_limit: host.pids_limit,
        ulimits: host
            .ulimits
            .unwrap_or_default()
            .into_iter()
            .map(|u| Ulimit {
                name: u.name.unwrap_or_default(),
                soft: u.soft.unwrap_or(0),
                hard: u.hard.unwrap_or(0),
            })
            .collect(),
        cmd: config.cmd,
        tty: config.tty.unwrap_or(false),
        open_stdin: config.open_stdin.unwrap_or(false),
        host: HostSettings {
            restart: host
                .restart_policy
                .map(|r| RestartPolicySetting {
                    name: r.name.map(|n| n.to_string()).unwrap_or_default(),
                    max_retries: r.maximum_retry_count.unwrap_or(0),
                })
                .unwrap_or_default(),
            log_driver: host
                .log_config
                .as_ref()
                .and_then(|l| l.typ.clone())
                .unwrap_or_default(),
            log_opts: host
                .log_config
                .and_then(|l| l.config)
                .unwrap_or_default()
                .into_iter()
                .collect(),
            extra_hosts: host.extra_hosts.unwrap_or_default(),
            devices: host
                .devices
                .unwrap_or_default()
                .into_iter()
                .map(|d| {
                    format!(
                        "{}:{}:{}",
                        d.path_on_host.unwrap_or_default(),
                        d.path_in_container.unwrap_or_default(),
                        d.cgroup_permissions.unwrap_or_default()
                    )
                })
                .collect(),
            cap_add: host.cap_add.unwrap_or_default(),
            cap_drop: host.cap_drop.unwrap_or_default(),
            dns: host.dns.unwrap_or_default(),
            dns_search: host.dns_search.unwrap_or_default(),
            dns_options: host.dns_options.unwrap_or_default(),
            shm_size: host.shm_size,
            tmpfs: host.tmpfs.unwrap_or_default().into_iter().collect(),
            security_opt: host.security_opt.unwrap_or_default(),
        },
    }
}

/// Docker's form of a restart policy (an unknown name is sent as written and refused by
/// the engine with its own message).
fn restart_policy(r: &RestartPolicySetting) -> bollard::models::RestartPolicy {
    use bollard::models::RestartPolicyNameEnum as N;
    let name = match r.name.as_str() {
        "" | "no" => N::NO,
        "always" => N::ALWAYS,
        "unless-stopped" => N::UNLESS_STOPPED,
        "on-failure" => N::ON_FAILURE,
        _ => N::EMPTY,
    };
    bollard::models::RestartPolicy {
        name: Some(name),
        maximum_retry_count: (name == N::ON_FAILURE).then_some(r.max_retries),
    }
}

/// `Some(list)` unless empty: an empty list and an absent one mean the same to Docker, and
/// absent keeps the engine's defaults.
fn some_list(v: &[String]) -> Option<Vec<String>> {
    (!v.is_empty()).then(|| v.to_vec())
}

/// The `HostConfig` fields of [`HostSettings`].
fn host_settings_config(h: &HostSettings) -> HostConfig {
    HostConfig {
        restart_policy: Some(restart_policy(&h.restart)),
        log_config: (!h.log_driver.is_empty() || !h.log_opts.is_empty()).then(|| {
            bollard::models::HostConfigLogConfig {
                typ: (!h.log_driver.is_empty()).then(|| h.log_driver.clone()),
                config: Some(h.log_opts.clone().into_iter().collect()),
            }
        }),
        extra_hosts: some_list(&h.extra_hosts),
        devices: (!h.devices.is_empty()).then(|| {
            h.devices
                .iter()
                .map(|d| {
                    let mut p = d.splitn(3, ':');
                    let host = p.next().unwrap_or_default().to_string();
                    let inside = p.next().filter(|s| !s.is_empty()).unwrap_or(&host);
                    let inside = inside.to_string();
                    let perms = p.next().filter(|s| !s.is_empty()).unwrap_or("rwm");
                    bollard::models::DeviceMapping {
                        path_on_host: Some(host),
                        path_in_container: Some(inside),
                        cgroup_permissions: Some(perms.to_string()),
                    }
                })
                .collect()
        }),
        cap_add: some_list(&h.cap_add),
        cap_drop: some_list(&h.cap_drop),
        dns: some_list(&h.dns),
        dns_search: some_list(&h.dns_search),
        dns_options: some_list(&h.dns_options),
        shm_size: h.shm_size,
        tmpfs: (!h.tmpfs.is_empty()).then(|| h.tmpfs.clone().into_iter().collect()),
        security_opt: some_list(&h.security_opt),
        ..Default::default()
    }
}

/// A byte ring keeping the last `cap` bytes of a stream.
struct Tail {
    buf: VecDeque<u8>,
    cap: usize,
}

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        let bytes = if bytes.len() > self.cap {
            &bytes[bytes.len() - self.cap..]
        } else {
            bytes
        };
        let overflow = (self.buf.len() + bytes.len()).saturating_sub(self.cap);
        self.buf.drain(..overflow);
        self.buf.extend(bytes);
    }

    fn text(&self) -> String {
        let (a, b) = self.buf.as_slices();
        let mut v = Vec::with_capacity(a.len() + b.len());
        v.extend_from_slice(a);
        v.extend_from_slice(b);
        String::from_utf8_lossy(&v).into_owned()
    }
}

impl Docker for BollardDocker {
    async fn inspect(&self, name_or_id: &str) -> Result<Option<ContainerInfo>, DockerError> {
        match self
            .client
            .inspect_container(name_or_id, None::<InspectContainerOptions>)
            .await
        {
            Ok(r) => Ok(Some(to_info(r))),
            Err(e) => match map_err(e, Ctx::Container(name_or_id)) {
                DockerError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn inspect_image(&self, image: &str) -> Result<Option<ImageInfo>, DockerError> {
        match self.client.inspect_image(image).await {
            Ok(r) => Ok(Some(ImageInfo {
                id: r.id.unwrap_or_default(),
                repo_tags: r.repo_tags.unwrap_or_default(),
                env: r
                    .config
                    .as_ref()
                    .and_then(|c| c.env.clone())
                    .unwrap_or_default(),
                labels: r
                    .config
                    .and_then(|c| c.labels)
                    .map(|l| l.into_iter().collect())
                    .unwrap_or_default(),
            })),
            Err(e) => match map_err(e, Ctx::Image(image)) {
                DockerError::ImageMissing { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn stop(&self, name: &str, timeout: Duration) -> Result<StopOutcome, DockerError> {
        let before = self.require(name).await?;
        let already_stopped = !before.status.is_running();
        if !already_stopped {
            let t = i32::try_from(timeout.as_secs()).unwrap_or(i32::MAX);
            self.client_for_stop(timeout)
                .stop_container(
                    name,
                    Some(StopContainerOptionsBuilder::default().t(t).build()),
                )
                .await
                .map_err(|e| map_err(e, Ctx::Container(name)))?;
        }
        let after = self.require(name).await?;
        let exit_code = match after.status {
            ContainerStatus::Exited { code } => Some(code),
            _ => None,
        };
        Ok(StopOutcome {
            already_stopped,
            finished_at: after.finished_at,
            exit_code,
        })
    }

    async fn rename(&self, from: &str, to: &str) -> Result<RenameOutcome, DockerError> {
        // Exact-name checks: inspect also matches id prefixes, which must not count here.
        let from_info = self.inspect(from).await?.filter(|i| i.name == from);
        let to_info = self.inspect(to).await?.filter(|i| i.name == to);
        match (from_info, to_info) {
            (None, Some(_)) => Ok(RenameOutcome::AlreadyRenamed),
            (None, None) => Err(DockerError::NotFound {
                name: from.to_string(),
            }),
            (Some(_), Some(_)) => Err(DockerError::NameConflict {
                name: to.to_string(),
            }),
            (Some(_), None) => {
                self.client
                    .rename_container(
                        from,
                        RenameContainerOptionsBuilder::default().name(to).build(),
                    )
                    .await
                    .map_err(|e| match e {
                        bollard::errors::Error::DockerResponseServerError {
                            status_code: 409,
                            ..
                        } => DockerError::NameConflict {
                            name: to.to_string(),
                        },
                        e => map_err(e, Ctx::Container(from)),
                    })?;
                Ok(RenameOutcome::Renamed)
            }
        }
    }

    async fn set_restart_policy(
        &self,
        name_or_id: &str,
        policy: &RestartPolicySetting,
    ) -> Result<(), DockerError> {
        let body = bollard::models::ContainerUpdateBody {
            restart_policy: Some(restart_policy(policy)),
            ..Default::default()
        };
        self.client
            .update_container(name_or_id, body)
            .await
            .map_err(|e| map_err(e, Ctx::Container(name_or_id)))
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, DockerError> {
        let host_config = HostConfig {
            binds: Some(spec.binds.clone()),
            network_mode: Some(spec.network_mode.clone()),
            privileged: Some(spec.privileged),
            pids_limit: spec.pids_limit,
            ulimits: Some(
                spec.ulimits
                    .iter()
                    .map(|u| ResourcesUlimits {
                        name: Some(u.name.clone()),
                        soft: Some(u.soft),
                        hard: Some(u.hard),
                    })
                    .collect(),
            ),
            ..host_settings_config(&spec.host)
        };
        // `-dit`: detached, with stdin kept open and a TTY, as the runbook starts OMS.
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            env: Some(spec.env.clone()),
            labels: Some(spec.labels.clone().into_iter().collect()),
            cmd: spec.cmd.clone(),
            tty: Some(true),
            open_stdin: Some(true),
            attach_stdin: Some(false),
            attach_stdout: Some(false),
            attach_stderr: Some(false),
            host_config: Some(host_config),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        match self.client.create_container(Some(opts), body).await {
            Ok(r) => Ok(r.id),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => Err(DockerError::NameConflict {
                name: spec.name.clone(),
            }),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Err(DockerError::ImageMissing {
                image: spec.image.clone(),
            }),
            Err(e) => Err(map_err(e, Ctx::Container(&spec.name))),
        }
    }

    async fn start(&self, name: &str) -> Result<StartOutcome, DockerError> {
        let before = self.require(name).await?;
        let already_running = before.status.is_running();
        if !already_running {
            self.client
                .start_container(name, None::<StartContainerOptions>)
                .await
                .map_err(|e| match map_err(e, Ctx::Container(name)) {
                    DockerError::Api { message }
                        if before.privileged && message.contains("operation not permitted") =>
                    {
                        DockerError::PrivilegedRefused {
                            name: name.to_string(),
                            message,
                        }
                    }
                    other => other,
                })?;
        }
        let after = self.require(name).await?;
        Ok(StartOutcome {
            already_running,
            started_at: after.started_at,
            previous_finished_at: after.finished_at,
        })
    }

    async fn restart(&self, name: &str, timeout: Duration) -> Result<StartOutcome, DockerError> {
        let t = i32::try_from(timeout.as_secs()).unwrap_or(i32::MAX);
        self.client_for_stop(timeout)
            .restart_container(
                name,
                Some(RestartContainerOptionsBuilder::default().t(t).build()),
            )
            .await
            .map_err(|e| map_err(e, Ctx::Container(name)))?;
        // FinishedAt now is the stop that was part of the restart.
        let after = self.require(name).await?;
        Ok(StartOutcome {
            already_running: false,
            started_at: after.started_at,
            previous_finished_at: after.finished_at,
        })
    }

    async fn exec_in(
        &self,
        name: &str,
        cmd: Vec<String>,
        env: Vec<String>,
        working_dir: Option<String>,
        timeout: Option<Duration>,
    ) -> Result<ExecOutcome, DockerError> {
        let command = cmd.join(" ");
        let created = self
            .client
            .create_exec(
                name,
                CreateExecOptions {
                    cmd: Some(cmd),
                    env: Some(env),
                    working_dir,
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    attach_stdin: Some(false),
                    tty: Some(false),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| map_err(e, Ctx::Container(name)))?;
        let started = self
            .client
            .start_exec(&created.id, None::<StartExecOptions>)
            .await
            .map_err(|e| map_err(e, Ctx::Container(name)))?;
        let mut tail = Tail {
            buf: VecDeque::new(),
            cap: EXEC_OUTPUT_TAIL_BYTES,
        };
        let mut hasher = blake3::Hasher::new();
        let mut total: u64 = 0;
        if let StartExecResults::Attached { mut output, .. } = started {
            let drain = async {
                while let Some(item) = output.next().await {
                    let chunk = item.map_err(|e| map_err(e, Ctx::Container(name)))?;
                    let bytes: &[u8] = chunk.as_ref();
                    hasher.update(bytes);
                    total += bytes.len() as u64;
                    tail.push(bytes);
                }
                Ok::<(), DockerError>(())
            };
            match timeout {
                Some(t) => match tokio::time::timeout(t, drain).await {
                    Ok(r) => r?,
                    Err(_) => {
                        return Err(DockerError::ExecTimeout {
                            name: name.to_string(),
                            command,
                            timeout: t,
                            output_tail: tail.text(),
                        });
                    }
                },
                None => drain.await?,
            }
        }
        // The stream ends when the process closes its output; the engine may record the
        // exit a moment later, so poll its exec record with a short backoff.
        let mut delay = Duration::from_millis(5);
        let exit_code = loop {
            let info = self
                .client
                .inspect_exec(&created.id)
                .await
                .map_err(|e| map_err(e, Ctx::Container(name)))?;
            if info.running != Some(true) {
                break info.exit_code.unwrap_or(-1);
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(500));
        };
        Ok(ExecOutcome {
            exit_code,
            output_tail: tail.text(),
            output_bytes: total,
            output_blake3: hasher.finalize().to_hex().to_string(),
        })
    }

    async fn running_execs(&self, name: &str) -> Result<Option<Vec<ExecInfo>>, DockerError> {
        let ids = match self
            .client
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
        {
            Ok(r) => r.exec_ids.unwrap_or_default(),
            Err(e) => {
                return match map_err(e, Ctx::Container(name)) {
                    DockerError::NotFound { .. } => Ok(None),
                    other => Err(other),
                };
            }
        };
        let mut running = Vec::new();
        for id in ids {
            // A session may end (and be forgotten) between the two calls.
            if let Some(info) = self.inspect_exec(&id).await?
                && info.running
            {
                running.push(info);
            }
        }
        Ok(Some(running))
    }

    async fn inspect_exec(&self, id: &str) -> Result<Option<ExecInfo>, DockerError> {
        match self.client.inspect_exec(id).await {
            Ok(r) => {
                let pc = r.process_config.unwrap_or_default();
                let argv = pc
                    .entrypoint
                    .into_iter()
                    .chain(pc.arguments.unwrap_or_default())
                    .collect();
                Ok(Some(ExecInfo {
                    id: r.id.unwrap_or_else(|| id.to_string()),
                    argv,
                    running: r.running == Some(true),
                    pid: r.pid.filter(|p| *p > 0),
                    exit_code: if r.running == Some(true) {
                        None
                    } else {
                        r.exit_code
                    },
                }))
            }
            // A 404 here means the exec id is unknown (mapped as a missing name).
            Err(e) => match map_err(e, Ctx::Container(id)) {
                DockerError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn logs(&self, name: &str, tail: usize) -> Result<String, DockerError> {
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&tail.to_string())
            .build();
        let mut stream = self.client.logs(name, Some(opts));
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            let chunk = item.map_err(|e| map_err(e, Ctx::Container(name)))?;
            out.extend_from_slice(chunk.as_ref());
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    async fn remove(&self, name: &str, force: bool) -> Result<RemoveOutcome, DockerError> {
        let opts = RemoveContainerOptionsBuilder::default()
            .force(force)
            .build();
        match self.client.remove_container(name, Some(opts)).await {
            Ok(()) => Ok(RemoveOutcome {
                already_absent: false,
            }),
            Err(e) => match map_err(e, Ctx::Container(name)) {
                DockerError::NotFound { .. } => Ok(RemoveOutcome {
                    already_absent: true,
                }),
                DockerError::Api { message } if message.starts_with("HTTP 409") => {
                    Err(DockerError::Api {
                        message: format!(
                            "{message} (the container is running: stop it first or remove with force)"
                        ),
                    })
                }
                other => Err(other),
            },
        }
    }

    async fn find_by_label(
        &self,
        key: &str,
        value: Option<&str>,
    ) -> Result<Vec<ContainerInfo>, DockerError> {
        let label = match value {
            Some(v) => format!("{key}={v}"),
            None => key.to_string(),
        };
        let filters = std::collections::HashMap::from([("label".to_string(), vec![label])]);
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = self
            .client
            .list_containers(Some(opts))
            .await
            .map_err(|e| map_err(e, Ctx::Container(key)))?;
        let mut out = Vec::with_capacity(list.len());
        for c in list {
            // Removed between the listing and the inspect: no longer there, skip it.
            if let Some(info) = self.inspect(c.id.as_deref().unwrap_or_default()).await? {
                out.push(info);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn wait_for_log_line(
        &self,
        name: &str,
        needle: &str,
        since: Option<DateTime<Utc>>,
        timeout: Duration,
    ) -> Result<LogMatch, DockerError> {
        // Follow the log stream (no fixed sleeps). The stream ends when the container stops;
        // if it is running again by then (a restart in between), follow it anew.
        let search = async {
            let mut delay = Duration::from_millis(50);
            loop {
                if let Some(m) = self.scan_log_stream(name, needle, since).await? {
                    return Ok(m);
                }
                let info = self.require(name).await?;
                if !info.status.is_running() && !matches!(info.status, ContainerStatus::Created) {
                    return Err(DockerError::NotRunning {
                        name: name.to_string(),
                    });
                }
                // Created but not yet started: wait for the start with a short backoff.
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        };
        match tokio::time::timeout(timeout, search).await {
            Ok(r) => r,
            Err(_) => Err(DockerError::LogLineTimeout {
                name: name.to_string(),
                needle: needle.to_string(),
                timeout,
            }),
        }
    }
}

/// The value of `key` in a `KEY=VALUE` list (the last one wins, as in Docker).
pub fn env_lookup<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find_map(|e| e.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// The entries of a container's env that the operator set (`-e`), i.e. not inherited
/// unchanged from the image's own env. Order kept.
pub fn user_env(container_env: &[String], image_env: &[String]) -> Vec<String> {
    let image: BTreeSet<&str> = image_env.iter().map(String::as_str).collect();
    container_env
        .iter()
        .filter(|e| !image.contains(e.as_str()))
        .cloned()
        .collect()
}

/// The labels of a container that the operator set (`--label`), i.e. not inherited
/// unchanged from its image's own labels (Docker merges those into the container's).
/// A key the operator set to a value of its own is kept.
pub fn user_labels(
    container: &BTreeMap<String, String>,
    image: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    container
        .iter()
        .filter(|(k, v)| image.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Returns `env` with `key` set to `value`: an existing entry is replaced in place,
/// otherwise it is appended.
pub fn env_set(env: &[String], key: &str, value: &str) -> Vec<String> {
    let entry = format!("{key}={value}");
    let mut out: Vec<String> = Vec::with_capacity(env.len() + 1);
    let mut seen = false;
    for e in env {
        if e.strip_prefix(key).is_some_and(|r| r.starts_with('=')) {
            if !seen {
                out.push(entry.clone());
                seen = true;
            }
        } else {
            out.push(e.clone());
        }
    }
    if !seen {
        out.push(entry);
    }
    out
}

/// A bind mount `HOST:CONTAINER[:OPTIONS]` in a form that compares by meaning: paths with
/// duplicate and trailing slashes removed, options sorted, and the default `rw` dropped.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Bind {
    /// Host path (or volume name).
    pub host: String,
    /// Path inside the container.
    pub container: String,
    /// Options such as `ro`, `z`, `rshared`, sorted, without `rw`.
    pub options: Vec<String>,
}

impl Bind {
    /// Parses a `HostConfig.Binds` entry. Entries without a container part are kept as
    /// host-only so they still compare (Docker does not produce them).
    pub fn parse(s: &str) -> Bind {
        let mut parts = s.splitn(3, ':');
        let host = normalise_path(parts.next().unwrap_or(""));
        let container = normalise_path(parts.next().unwrap_or(""));
        let mut options: Vec<String> = parts
            .next()
            .map(|o| {
                o.split(',')
                    .filter(|x| !x.is_empty() && *x != "rw")
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        options.sort();
        options.dedup();
        Bind {
            host,
            container,
            options,
        }
    }
}

fn normalise_path(p: &str) -> String {
    if !p.starts_with('/') {
        return p.to_string(); // a named volume
    }
    let joined = p
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect::<Vec<_>>()
        .join("/");
    format!("/{joined}")
}

/// How two bind lists differ by meaning (order, `rw` and slashes ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindsDiff {
    /// Binds of the old container the new one lacks (as written in the old list).
    pub missing: Vec<String>,
    /// Binds of the new container the old one lacks (as written in the new list).
    pub extra: Vec<String>,
}

impl BindsDiff {
    /// True when both lists mount the same things.
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty()
    }
}

/// Compares the old container's binds with the new one's by meaning, as a multiset.
pub fn binds_diff(old: &[String], new: &[String]) -> BindsDiff {
    fn counts(list: &[String]) -> BTreeMap<Bind, Vec<&String>> {
        let mut m: BTreeMap<Bind, Vec<&String>> = BTreeMap::new();
        for s in list {
            m.entry(Bind::parse(s)).or_default().push(s);
        }
        m
    }
    let (a, b) = (counts(old), counts(new));
    let mut diff = BindsDiff::default();
    for (k, v) in &a {
        let have = b.get(k).map_or(0, Vec::len);
        diff.missing
            .extend(v.iter().skip(have).map(|s| (*s).clone()));
    }
    for (k, v) in &b {
        let have = a.get(k).map_or(0, Vec::len);
        diff.extra.extend(v.iter().skip(have).map(|s| (*s).clone()));
    }
    diff
}

/// True when the two containers mount exactly the same things (see [`binds_diff`]).
pub fn binds_equal(old: &[String], new: &[String]) -> bool {
    binds_diff(old, new).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn binds_compare_by_meaning_not_spelling() {
        let old = v(&[
            "/data/oms/config.yaml:/home/admin/conf/config.yaml",
            "/data/oms/logs/:/home/admin/logs:rw",
            "/data/oms/store:/home/ds/store:z,ro",
        ]);
        let new = v(&[
            "/data/oms/store:/home/ds/store:ro,z",
            "/data//oms/logs:/home/admin/logs",
            "/data/oms/config.yaml:/home/admin/conf/config.yaml",
        ]);
        assert!(binds_equal(&old, &new));
    }

    #[test]
    fn binds_diff_names_the_differences() {
        let old = v(&["/a:/x", "/b:/y:ro", "/c:/z"]);
        let new = v(&["/a:/x", "/b:/y", "/d:/z"]);
        let d = binds_diff(&old, &new);
        assert_eq!(d.missing, v(&["/b:/y:ro", "/c:/z"]));
        assert_eq!(d.extra, v(&["/b:/y", "/d:/z"]));
        assert!(!binds_equal(&old, &new));
    }

    #[test]
    fn binds_are_a_multiset() {
        assert!(!binds_equal(&v(&["/a:/x", "/a:/x"]), &v(&["/a:/x"])));
        assert_eq!(
            binds_diff(&v(&["/a:/x", "/a:/x"]), &v(&["/a:/x"])).missing,
            v(&["/a:/x"])
        );
    }

    #[test]
    fn env_helpers() {
        let env = v(&["PATH=/bin", "OMS_HOST_IP=10.0.0.1", "IS_UPGRADE=false"]);
        assert_eq!(env_lookup(&env, "OMS_HOST_IP"), Some("10.0.0.1"));
        assert_eq!(env_lookup(&env, "OMS_HOST"), None);
        assert_eq!(
            env_set(&env, "IS_UPGRADE", "true"),
            v(&["PATH=/bin", "OMS_HOST_IP=10.0.0.1", "IS_UPGRADE=true"])
        );
        assert_eq!(
            env_set(&v(&["A=1"]), "IS_UPGRADE", "true"),
            v(&["A=1", "IS_UPGRADE=true"])
        );
        assert_eq!(
            user_env(&env, &v(&["PATH=/bin"])),
            v(&["OMS_HOST_IP=10.0.0.1", "IS_UPGRADE=false"])
        );
    }

    #[test]
    fn user_labels_drop_what_the_image_gave() {
        let m = |xs: &[(&str, &str)]| -> BTreeMap<String, String> {
            xs.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let image = m(&[("oms-emu.version", "3.3.0"), ("vendor", "x")]);
        let container = m(&[
            ("oms-emu.version", "3.3.0"),
            ("vendor", "mine"),
            ("team", "dba"),
        ]);
        assert_eq!(
            user_labels(&container, &image),
            m(&[("team", "dba"), ("vendor", "mine")])
        );
    }

    #[test]
    fn docker_times() {
        assert_eq!(parse_docker_time("0001-01-01T00:00:00Z"), None);
        let t = parse_docker_time("2026-11-25T11:15:23.200916851Z").unwrap();
        assert_eq!(t.timestamp_subsec_nanos(), 200_916_851);
    }

    #[test]
    fn log_lines_filter_by_time_and_needle() {
        let since = parse_docker_time("2026-01-01T00:00:01.5Z");
        let early = b"2026-01-01T00:00:01.500000000Z OMS service start successfully\n";
        let late = b"2026-01-01T00:00:01.600000000Z OMS service start successfully\n";
        assert_eq!(match_log_line(early, "start successfully", since), None);
        let m = match_log_line(late, "start successfully", since).unwrap();
        assert_eq!(m.line, "OMS service start successfully");
        assert_eq!(match_log_line(late, "nope", since), None);
    }

    #[test]
    fn tail_keeps_the_last_bytes() {
        let mut t = Tail {
            buf: VecDeque::new(),
            cap: 4,
        };
        t.push(b"ab");
        t.push(b"cdef");
        assert_eq!(t.text(), "cdef");
        t.push(b"0123456789");
        assert_eq!(t.text(), "6789");
    }

    #[test]
    fn runbook_spec_renders_the_runbook_command() {
        let s = ContainerSpec::runbook(
            "oms",
            "oms:3.3.1",
            v(&["/d/logs:/home/admin/logs"]),
            v(&["OMS_HOST_IP=10.0.0.1", "IS_UPGRADE=true"]),
            BTreeMap::new(),
        );
        assert_eq!(
            s.docker_run_args().join(" "),
            "docker run -dit --net=host -v /d/logs:/home/admin/logs -e OMS_HOST_IP=10.0.0.1 \
             -e IS_UPGRADE=true --privileged=true --pids-limit -1 --ulimit nproc=65535:65535 \
             --name oms oms:3.3.1"
        );
    }
}
