//! The adapter traits over the simulated [`World`]: [`SimDocker`], [`SimMetaDb`],
//! [`SimHealth`] and [`SimClock`]. Each is a thin handle on the shared world; every call
//! settles due transitions, asks the fault policy, applies its effect and returns what the
//! real adapter would. No call waits: where the real one would (a stop's grace period,
//! an exec's run time, health polling) virtual time advances instead.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::world::{
    ActionKind, Adapter, Call, DockerErrorKind, ErrorKind, Fault, HealthErrorKind, MetaDbErrorKind,
    SharedWorld, SimExec, World, lock,
};
use crate::adapters::clock::{Clock, Monotonic};
use crate::adapters::docker::{
    ContainerInfo, ContainerSpec, ContainerStatus, Docker, DockerError, ExecInfo, ExecOutcome,
    ImageInfo, LogMatch, RemoveOutcome, RenameOutcome, RestartPolicySetting, StartOutcome,
    StopOutcome,
};
use crate::adapters::health::{Health, HealthError, HealthReport, health_url, judge};
use crate::adapters::metadb::{
    DbCharset, HaWriteOutcome, MetaDb, MetaDbError, PruneOptions, PruneOutcome, PruneProgress,
    ServerInfo, ServerList,
};
use crate::sqltext;

/// The engine's extra time on a stop request beyond the stop timeout (as the real adapter's
/// client timeout): a stop that takes longer fails while the container goes on exiting.
const STOP_SLACK: Duration = Duration::from_secs(30);

/// Outcome of asking the fault policy before a call.
pub(super) enum Gate {
    /// Go on; fail with this kind after the effect, if set.
    Go(Option<ErrorKind>),
    /// Apply this many parts of a multi-part effect, then fail.
    Cut(u32, ErrorKind),
    /// Fail now, before any effect.
    Fail(ErrorKind),
}

pub(super) fn gate(w: &mut World, adapter: Adapter, method: &'static str, target: &str) -> Gate {
    match w.fault_for(Call {
        adapter,
        method,
        target: target.to_string(),
    }) {
        Some(Fault::Fail(k)) => Gate::Fail(k),
        Some(Fault::FailAfter(k)) => Gate::Go(Some(k)),
        Some(Fault::Cut { parts, kind }) => Gate::Cut(parts, kind),
        Some(Fault::Delay(_)) | None => Gate::Go(None),
    }
}

fn docker_error(kind: ErrorKind, target: &str) -> DockerError {
    let name = target.to_string();
    match kind {
        ErrorKind::Docker(k) => match k {
            DockerErrorKind::EngineUnreachable => DockerError::EngineUnreachable {
                detail: "simulated: connection refused".into(),
            },
            DockerErrorKind::NotFound => DockerError::NotFound { name },
            DockerErrorKind::ImageMissing => DockerError::ImageMissing { image: name },
            DockerErrorKind::NameConflict => DockerError::NameConflict { name },
            DockerErrorKind::PrivilegedRefused => DockerError::PrivilegedRefused {
                name,
                message: "simulated".into(),
            },
            DockerErrorKind::NotRunning => DockerError::NotRunning { name },
            DockerErrorKind::ExecTimeout => DockerError::ExecTimeout {
                name,
                command: "simulated".into(),
                timeout: Duration::from_secs(60),
                output_tail: String::new(),
            },
            DockerErrorKind::LogLineTimeout => DockerError::LogLineTimeout {
                name,
                needle: "simulated".into(),
                timeout: Duration::from_secs(60),
            },
            DockerErrorKind::Api => DockerError::Api {
                message: "simulated: request timed out".into(),
            },
        },
        _ => DockerError::Api {
            message: "simulated fault".into(),
        },
    }
}

fn meta_error(kind: ErrorKind, target: &str) -> MetaDbError {
    let url = "mysql://sim@127.0.0.1:3306".to_string();
    let db = target.to_string();
    match kind {
        ErrorKind::MetaDb(k) => match k {
            MetaDbErrorKind::Unreachable => MetaDbError::Unreachable {
                url,
                detail: "simulated: connection reset".into(),
            },
            MetaDbErrorKind::AccessDenied => MetaDbError::AccessDenied {
                user: "sim".into(),
                url,
            },
            MetaDbErrorKind::NotPermitted => MetaDbError::NotPermitted {
                url,
                message: "simulated".into(),
            },
            MetaDbErrorKind::UnknownDatabase => MetaDbError::UnknownDatabase { name: db },
            MetaDbErrorKind::HaConfigMissing => MetaDbError::HaConfigMissing { db },
            MetaDbErrorKind::HaConfigChanged => MetaDbError::HaConfigChanged {
                db,
                expected: "simulated".into(),
                found: "simulated".into(),
            },
            MetaDbErrorKind::HaConfigReadBack => MetaDbError::HaConfigReadBack {
                db,
                wrote: "simulated".into(),
                read: "simulated".into(),
            },
            MetaDbErrorKind::InvalidCharset => MetaDbError::InvalidCharset("simulated".into()),
            MetaDbErrorKind::TlsUnavailable => MetaDbError::TlsUnavailable { url },
            MetaDbErrorKind::Tls => MetaDbError::Tls {
                url,
                detail: "simulated".into(),
            },
            MetaDbErrorKind::Query => MetaDbError::Query {
                url,
                message: "simulated: lost connection during query".into(),
            },
        },
        _ => MetaDbError::Query {
            url,
            message: "simulated fault".into(),
        },
    }
}

fn health_error(kind: ErrorKind, base_url: &str) -> HealthError {
    let url = health_url(base_url);
    match kind {
        ErrorKind::Health(k) => match k {
            HealthErrorKind::InvalidUrl => HealthError::InvalidUrl {
                url,
                detail: "simulated".into(),
            },
            HealthErrorKind::Unreachable => HealthError::Unreachable {
                url,
                detail: "simulated: connection refused".into(),
            },
            HealthErrorKind::Tls => HealthError::Tls {
                url,
                detail: "simulated".into(),
            },
            HealthErrorKind::RequestTimeout => HealthError::RequestTimeout {
                url,
                after: Duration::from_secs(5),
            },
            HealthErrorKind::Timeout => HealthError::Timeout {
                url,
                waited: Duration::from_secs(0),
                last: "simulated".into(),
                last_report: None,
            },
        },
        _ => HealthError::Unreachable {
            url,
            detail: "simulated fault".into(),
        },
    }
}

/// Runs a call's effect under the fault policy: `Fail` returns before `effect`, `FailAfter`
/// runs it and returns the error anyway, `Delay` has already advanced the clock. For a
/// call of one part, `Cut` with no part is `Fail`, with any is `FailAfter`.
fn faulted<T, E>(
    world: &SharedWorld,
    adapter: Adapter,
    method: &'static str,
    target: &str,
    mk: fn(ErrorKind, &str) -> E,
    effect: impl FnOnce(&mut World) -> Result<T, E>,
) -> Result<T, E> {
    let mut guard = lock(world);
    let w: &mut World = &mut guard;
    let out = match gate(w, adapter, method, target) {
        Gate::Fail(k) | Gate::Cut(0, k) => Err(mk(k, target)),
        Gate::Cut(_, k) => {
            // One part: all of it, then the failure.
            let _ = effect(w);
            Err(mk(k, target))
        }
        Gate::Go(after) => {
            let r = effect(w);
            match after {
                Some(k) => Err(mk(k, target)),
                None => r,
            }
        }
    };
    // The next call names its engine again (`SimDocker::engine`).
    w.engine = 0;
    out
}

/// [`Docker`] over the simulated world: the engine of one node (issue 15), whose
/// containers only it sees; they share the world's clock, metadata DB and faults.
#[derive(Debug, Clone)]
pub struct SimDocker {
    /// The world.
    pub world: SharedWorld,
    /// The node whose engine this is (0 for a single node).
    pub node: u8,
}

impl SimDocker {
    /// The world, with this engine named as the one the next call goes to (the call
    /// takes the world's lock right after, on the same thread, and resets it).
    fn engine(&self) -> &SharedWorld {
        lock(&self.world).engine = self.node;
        &self.world
    }
}

fn require(w: &World, name: &str) -> Result<String, DockerError> {
    w.find(name).ok_or_else(|| DockerError::NotFound {
        name: name.to_string(),
    })
}

fn start_container(w: &mut World, id: &str) -> StartOutcome {
    let now = w.now;
    let Some(c) = w.containers.get_mut(id) else {
        return StartOutcome {
            already_running: false,
            started_at: None,
            previous_finished_at: None,
        };
    };
    if c.info.status.is_running() {
        return StartOutcome {
            already_running: true,
            started_at: c.info.started_at,
            previous_finished_at: c.info.finished_at,
        };
    }
    c.info.status = ContainerStatus::Running;
    c.info.started_at = Some(now);
    c.logs.push((now, "OMS starting".into()));
    StartOutcome {
        already_running: false,
        started_at: Some(now),
        previous_finished_at: c.info.finished_at,
    }
}

/// Requests a stop with `timeout`: the container exits `stop_takes` after the request
/// (normally the engine's kill after `timeout` bounds that; a container stuck in the
/// kernel or a slow engine does not keep to it). When that is beyond what the request
/// waits for, the request fails while the container is still running, and it exits later.
fn stop_container(w: &mut World, id: &str, timeout: Duration) -> Result<StopOutcome, DockerError> {
    let Some(c) = w.containers.get_mut(id) else {
        return Err(DockerError::NotFound { name: id.into() });
    };
    if !c.info.status.is_running() {
        return Ok(StopOutcome {
            already_stopped: true,
            finished_at: c.info.finished_at,
            exit_code: match c.info.status {
                ContainerStatus::Exited { code } => Some(code),
                _ => None,
            },
        });
    }
    let takes = c.stop_takes;
    let due = w.now + chrono::Duration::from_std(takes).unwrap_or_default();
    let c = w.containers.get_mut(id).expect("checked above");
    c.stop_due = Some(c.stop_due.map_or(due, |d| d.min(due)));
    let waited = takes.min(timeout + STOP_SLACK);
    if takes > timeout + STOP_SLACK {
        w.advance(timeout + STOP_SLACK);
        return Err(DockerError::Api {
            message: "simulated: stop request timed out; the container is still stopping".into(),
        });
    }
    w.advance(waited);
    let c = &w.containers[id];
    Ok(StopOutcome {
        already_stopped: false,
        finished_at: c.info.finished_at,
        exit_code: match c.info.status {
            ContainerStatus::Exited { code } => Some(code),
            _ => None,
        },
    })
}

/// What an exec prints and returns, and how long it runs (virtual time). `docker_init.sh`
/// is handled by the caller (it detaches).
fn run_command(w: &World, id: &str, cmd: &[String]) -> (i64, String) {
    let c = &w.containers[id];
    let joined = cmd.join(" ");
    if cmd.iter().any(|a| a.contains("supervisorctl")) {
        let up_since = c.info.started_at.unwrap_or(w.now);
        let ran = (w.now - up_since).to_std().unwrap_or_default();
        if ran < c.supervisor_warmup {
            return (4, "unix:///tmp/supervisor.sock no such file\n".into());
        }
        let mut out = String::new();
        let mut code = 0;
        for p in &c.supervisor {
            let state = if ran < p.running_after {
                code = 3;
                "STARTING"
            } else if let Some(g) = &p.gives_up {
                code = 3;
                g.as_str()
            } else {
                "RUNNING"
            };
            out.push_str(&format!("{:<32} {state:<9} simulated\n", p.name));
        }
        return (code, out);
    }
    if cmd.first().map(String::as_str) == Some("cat") {
        let path = cmd.last().cloned().unwrap_or_default();
        return match w.files.get(&super::world::node_path(c.node, &path)) {
            Some(f) => (0, f.content.clone()),
            None => (1, format!("cat: {path}: No such file or directory\n")),
        };
    }
    if joined.contains("for f in docker_init*") {
        // The listing reconcile runs: `<mtime> <ctime> <name>` per docker_init* file.
        let prefix = super::world::node_path(c.node, &format!("{}/", w.init.log_dir));
        let mut out = String::new();
        for (path, f) in &w.files {
            if let Some(name) = path.strip_prefix(&prefix)
                && name.starts_with("docker_init")
                && !name.contains('/')
            {
                let t = f.mtime.timestamp();
                out.push_str(&format!("{t} {t} {name}\n"));
            }
        }
        return (0, out);
    }
    (
        127,
        format!("simulated container: command not modelled: {joined}\n"),
    )
}

fn outcome(code: i64, out: &str) -> ExecOutcome {
    ExecOutcome {
        exit_code: code,
        output_tail: out.to_string(),
        output_bytes: out.len() as u64,
        output_blake3: blake3::hash(out.as_bytes()).to_hex().to_string(),
    }
}

fn is_init(cmd: &[String]) -> bool {
    cmd.iter().any(|a| a.ends_with("docker_init.sh"))
}

/// Runs `cmd` in container `id`: `docker_init.sh` becomes a session that migrates in
/// virtual time and outlives a `timeout` it exceeds; everything else answers at once.
fn exec(
    w: &mut World,
    name: &str,
    cmd: Vec<String>,
    timeout: Option<Duration>,
) -> Result<ExecOutcome, DockerError> {
    let id = require(w, name)?;
    if !w.containers[&id].info.status.is_running() {
        return Err(DockerError::NotRunning { name: name.into() });
    }
    if !is_init(&cmd) {
        let (code, out) = run_command(w, &id, &cmd);
        return Ok(outcome(code, &out));
    }
    let exec_id = w.fresh_id("e");
    let pid = 1000 + w.execs.len() as i64;
    w.execs.insert(
        exec_id.clone(),
        SimExec {
            info: ExecInfo {
                id: exec_id.clone(),
                argv: cmd.clone(),
                running: true,
                pid: Some(pid),
                exit_code: None,
            },
            container_id: id.clone(),
            finish_due: None,
            init_started: None,
        },
    );
    let container = w.containers[&id].info.name.clone();
    w.start_init(&exec_id, &container);
    let total = w.init.step_takes * w.init.steps;
    let limit = timeout.unwrap_or(Duration::MAX);
    w.advance(total.min(limit));
    let still = w.execs.get(&exec_id).is_some_and(|e| e.info.running);
    let log_path = w.init_log_path(w.containers[&id].node);
    let log = w
        .files
        .get(&log_path)
        .map(|f| f.content.clone())
        .unwrap_or_default();
    if still {
        return Err(DockerError::ExecTimeout {
            name: name.into(),
            command: cmd.join(" "),
            timeout: limit,
            output_tail: log,
        });
    }
    let code = w
        .execs
        .get(&exec_id)
        .and_then(|e| e.info.exit_code)
        .unwrap_or(137);
    Ok(outcome(code, &log))
}

impl Docker for SimDocker {
    async fn inspect(&self, name_or_id: &str) -> Result<Option<ContainerInfo>, DockerError> {
        await_point(&self.world).await;
        let out: Result<Option<ContainerInfo>, DockerError> = async {
            faulted(
                self.engine(),
                Adapter::Docker,
                "inspect",
                name_or_id,
                docker_error,
                |w| Ok(w.find(name_or_id).map(|id| w.containers[&id].info.clone())),
            )
        }
        .await;
        await_point(&self.world).await;
        out
    }

    async fn inspect_image(&self, image: &str) -> Result<Option<ImageInfo>, DockerError> {
        await_point(&self.world).await;
        let out: Result<Option<ImageInfo>, DockerError> = async {
            faulted(
                self.engine(),
                Adapter::Docker,
                "inspect_image",
                image,
                docker_error,
                |w| Ok(w.images.get(image).cloned()),
            )
        }
        .await;
        await_point(&self.world).await;
        out
    }

    async fn stop(&self, name: &str, timeout: Duration) -> Result<StopOutcome, DockerError> {
        await_point(&self.world).await;
        let out: Result<StopOutcome, DockerError> = async {
            faulted(
                self.engine(),
                Adapter::Docker,
                "stop",
                name,
                docker_error,
                |w| require(w, name).and_then(|id| stop_container(w, &id, timeout)),
            )
        }
        .await;
        await_point(&self.world).await;
        out
    }

    async fn rename(&self, from: &str, to: &str) -> Result<RenameOutcome, DockerError> {
        await_point(&self.world).await;
        let out: Result<RenameOutcome, DockerError> = async {
            faulted(
                self.engine(),
                Adapter::Docker,
                "rename",
                from,
                docker_error,
                |w| match (w.find(from), w.find(to)) {
                    (Some(_), Some(_)) => Err(DockerError::NameConflict { name: to.into() }),
                    (None, Some(_)) => Ok(RenameOutcome::AlreadyRenamed),
                    (None, None) => Err(DockerError::NotFound { name: from.into() }),
                    (Some(id), None) => {
                        if let Some(c) = w.containers.get_mut(&id) {
                            c.info.name = to.to_string();
                        }
                        Ok(RenameOutcome::Renamed)
                    }
                },
            )
        }
        .await;
        await_point(&self.world).await;
        out
    }

    async fn set_restart_policy(
        &self,
        name_or_id: &str,
        policy: &RestartPolicySetting,
    ) -> Result<(), DockerError> {
        await_point(&self.world).await;
        let out: Result<(), DockerError> = async {
            faulted(
                self.engine(),
                Adapter::Docker,
                "set_restart_policy",
                name_or_id,
                docker_error,
                |w| {
                    let id = require(w, name_or_id)?;
                    if let Some(c) = w.containers.get_mut(&id) {
                        c.info.host.restart = policy.normalised();
                    }
                    Ok(())
                },
            )
        }
        .await;
        await_point(&self.world).await;
        out
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, DockerError> {
        await_point(&self.world).await;
        let out: Result<String, DockerError> = async {
            faulted(
                self.engine(),
                Adapter::Docker,
                "create",
                &spec.name,
                docker_error,
                |w| {
                    if w.find(&spec.name).is_some() {
                        return Err(DockerError::NameConflict {
                            name: spec.name.clone(),
                        });
                    }
                    let Some(image) = w.images.get(&spec.image).cloned() else {
                        return Err(DockerError::ImageMissing {
                            image: spec.image.clone(),
                        });
                    };
                    let id = w.fresh_id("c");
                    let info = ContainerInfo {
                        id: id.clone(),
                        name: spec.name.clone(),
                        image: spec.image.clone(),
                        image_id: image.id,
                        status: ContainerStatus::Created,
                        created: Some(w.now),
                        started_at: None,
                        finished_at: None,
                        binds: spec.binds.clone(),
                        env: spec.env.clone(),
                        labels: spec.labels.clone(),
                        network_mode: spec.network_mode.clone(),
                        privileged: spec.privileged,
                        pids_limit: spec.pids_limit,
                        ulimits: spec.ulimits.clone(),
                        cmd: spec.cmd.clone(),
                        tty: true,
                        open_stdin: true,
                        host: spec.host.clone(),
                    };
                    w.add_container(info);
                    w.act(ActionKind::CreateContainer {
                        container: super::world::qualified(w.engine, &spec.name),
                    });
                    Ok(id)
                },
            )
        }
        .await;
        await_point(&self.world).await;
        out
    }

    async fn start(&self, name: &str) -> Result<StartOutcome, DockerError> {
        await_point(&self.world).await;
        let out: Result<StartOutcome, DockerError> = async {
            faulted(
                self.engine(),
                Adapter::Docker,
                "start",
                name,
                docker_error,
                |w| require(w, name).map(|id| start_container(w, &id)),
            )
        }
        .await;
        await_point(&self.world).await;
        out
    }

    async fn restart(&self, name: &str, timeout: Duration) -> Result<StartOutcome, DockerError> {
        await_point(&self.world).await;
        let out: Result<StartOutcome, DockerError> = async {
            faulted(
                self.engine(),
                Adapter::Docker,
                "restart",
                name,
                docker_error,
                |w| {
                    let id = require(w, name)?;
                    if w.containers[&id].info.status.is_running() {
                        stop_container(w, &id, timeout)?;
                    }
                    Ok(start_container(w, &id))
                },
            )
        }
        .await;
        await_point(&self.world).await;
        out
    }

    async fn exec_in(
        &self,
        name: &str,
        cmd: Vec<String>,
        _env: Vec<String>,
        _working_dir: Option<String>,
        timeout: Option<Duration>,
    ) -> Result<ExecOutcome, DockerError> {
        await_point(&self.world).await;
        let out: Result<ExecOutcome, DockerError> = async {
            faulted(
                self.engine(),
                Adapter::Docker,
                "exec_in",
                name,
                docker_error,
                |w| exec(w, name, cmd, timeout),
            )
        }
        .await;
        await_point(&self.world).await;
        out
    }

    async fn running_execs(&self, name: &str) -> Result<Option<Vec<ExecInfo>>, DockerError> {
        await_point(&self.world).await;
        let out: Result<Option<Vec<ExecInfo>>, DockerError> = async {
            faulted(
                self.engine(),
                Adapter::Docker,
                "running_execs",
                name,
                docker_error,
                |w| {
                    Ok(w.find(name).map(|id| {
                        w.execs
                            .values()
                            .filter(|e| e.container_id == id && e.info.running)
                            .map(|e| e.info.clone())
                            .collect()
                    }))
                },
            )
        }
        .await;
        await_point(&self.world).await;
        out
    }

    async fn inspect_exec(&self, id: &str) -> Result<Option<ExecInfo>, DockerError> {
        await_point(&self.world).await;
        let out: Result<Option<ExecInfo>, DockerError> = async {
            faulted(
                self.engine(),
                Adapter::Docker,
                "inspect_exec",
                id,
                docker_error,
                |w| Ok(w.execs.get(id).map(|e| e.info.clone())),
            )
        }
        .await;
        await_point(&self.world).await;
        out
    }

    async fn logs(&self, name: &str, tail: usize) -> Result<String, DockerError> {
        await_point(&self.world).await;
        let out: Result<String, DockerError> = async {
            faulted(
                self.engine(),
                Adapter::Docker,
                "logs",
                name,
                docker_error,
                |w| {
                    let id = require(w, name)?;
                    let lines = &w.containers[&id].logs;
                    let skip = lines.len().saturating_sub(tail);
                    Ok(lines[skip..]
                        .iter()
                        .map(|(_, l)| format!("{l}\n"))
                        .collect())
                },
            )
        }
        .await;
        await_point(&self.world).await;
        out
    }

    async fn remove(&self, name: &str, force: bool) -> Result<RemoveOutcome, DockerError> {
        await_point(&self.world).await;
        let out: Result<RemoveOutcome, DockerError> = async {
            faulted(
                self.engine(),
                Adapter::Docker,
                "remove",
                name,
                docker_error,
                |w| {
                    let Some(id) = w.find(name) else {
                        return Ok(RemoveOutcome {
                            already_absent: true,
                        });
                    };
                    if w.containers[&id].info.status.is_running() {
                        if !force {
                            return Err(DockerError::Api {
                                message: format!("simulated: container {name} is running"),
                            });
                        }
                        w.exit_container(&id, 137);
                    }
                    w.containers.remove(&id);
                    Ok(RemoveOutcome {
                        already_absent: false,
                    })
                },
            )
        }
        .await;
        await_point(&self.world).await;
        out
    }

    async fn find_by_label(
        &self,
        key: &str,
        value: Option<&str>,
    ) -> Result<Vec<ContainerInfo>, DockerError> {
        await_point(&self.world).await;
        let out: Result<Vec<ContainerInfo>, DockerError> = async {
            faulted(
                self.engine(),
                Adapter::Docker,
                "find_by_label",
                key,
                docker_error,
                |w| {
                    let mut v: Vec<ContainerInfo> = w
                        .containers
                        .values()
                        .filter(|c| c.node == w.engine)
                        .filter(|c| match (c.info.labels.get(key), value) {
                            (Some(_), None) => true,
                            (Some(have), Some(want)) => have == want,
                            _ => false,
                        })
                        .map(|c| c.info.clone())
                        .collect();
                    v.sort_by(|a, b| a.name.cmp(&b.name));
                    Ok(v)
                },
            )
        }
        .await;
        await_point(&self.world).await;
        out
    }

    /// Only lines already logged count: the simulated containers log no new lines while
    /// the caller waits, so a miss advances the clock by `timeout` and times out.
    async fn wait_for_log_line(
        &self,
        name: &str,
        needle: &str,
        since: Option<DateTime<Utc>>,
        timeout: Duration,
    ) -> Result<LogMatch, DockerError> {
        await_point(&self.world).await;
        let out: Result<LogMatch, DockerError> = async {
            faulted(
                self.engine(),
                Adapter::Docker,
                "wait_for_log_line",
                name,
                docker_error,
                |w| {
                    let id = require(w, name)?;
                    let hit = w.containers[&id]
                        .logs
                        .iter()
                        .find(|(t, l)| since.is_none_or(|s| *t > s) && l.contains(needle))
                        .map(|(t, l)| LogMatch {
                            line: l.clone(),
                            at: Some(*t),
                        });
                    match hit {
                        Some(m) => Ok(m),
                        None => {
                            w.advance(timeout);
                            Err(DockerError::LogLineTimeout {
                                name: name.into(),
                                needle: needle.into(),
                                timeout,
                            })
                        }
                    }
                },
            )
        }
        .await;
        await_point(&self.world).await;
        out
    }
}

/// [`MetaDb`] over the simulated world.
#[derive(Debug, Clone)]
pub struct SimMetaDb {
    /// The world.
    pub world: SharedWorld,
}

fn unknown(db: &str) -> MetaDbError {
    MetaDbError::UnknownDatabase { name: db.into() }
}

impl MetaDb for SimMetaDb {
    async fn ping(&self) -> Result<ServerInfo, MetaDbError> {
        await_point(&self.world).await;
        let out: Result<ServerInfo, MetaDbError> = async {
            faulted(&self.world, Adapter::MetaDb, "ping", "", meta_error, |w| {
                Ok(ServerInfo {
                    version: w.server.1.clone(),
                    version_comment: "simulated".into(),
                    flavour: w.server.0,
                })
            })
        }
        .await;
        await_point(&self.world).await;
        out
    }

    async fn database_exists(&self, name: &str) -> Result<bool, MetaDbError> {
        await_point(&self.world).await;
        let out: Result<bool, MetaDbError> = async {
            faulted(
                &self.world,
                Adapter::MetaDb,
                "database_exists",
                name,
                meta_error,
                |w| Ok(w.databases.contains_key(name)),
            )
        }
        .await;
        await_point(&self.world).await;
        out
    }

    async fn database_sizes(&self, names: &[String]) -> Result<BTreeMap<String, u64>, MetaDbError> {
        await_point(&self.world).await;
        let out: Result<BTreeMap<String, u64>, MetaDbError> = async {
            faulted(
                &self.world,
                Adapter::MetaDb,
                "database_sizes",
                "",
                meta_error,
                |w| {
                    Ok(names
                        .iter()
                        .map(|n| (n.clone(), w.databases.get(n).map_or(0, |d| d.size)))
                        .collect())
                },
            )
        }
        .await;
        await_point(&self.world).await;
        out
    }

    async fn read_ha_config(&self, rm_db: &str) -> Result<Option<String>, MetaDbError> {
        await_point(&self.world).await;
        let out: Result<Option<String>, MetaDbError> = async {
            faulted(
                &self.world,
                Adapter::MetaDb,
                "read_ha_config",
                rm_db,
                meta_error,
                |w| {
                    w.databases
                        .get(rm_db)
                        .map(|d| d.ha_config.clone())
                        .ok_or_else(|| unknown(rm_db))
                },
            )
        }
        .await;
        await_point(&self.world).await;
        out
    }

    async fn write_ha_config(
        &self,
        rm_db: &str,
        expected_previous: &str,
        new_json: &str,
    ) -> Result<HaWriteOutcome, MetaDbError> {
        await_point(&self.world).await;
        let out: Result<HaWriteOutcome, MetaDbError> = async {
            faulted(
                &self.world,
                Adapter::MetaDb,
                "write_ha_config",
                rm_db,
                meta_error,
                |w| {
                    let db = w.databases.get_mut(rm_db).ok_or_else(|| unknown(rm_db))?;
                    let Some(current) = db.ha_config.clone() else {
                        return Err(MetaDbError::HaConfigMissing { db: rm_db.into() });
                    };
                    if current == new_json {
                        return Ok(HaWriteOutcome {
                            already_written: true,
                        });
                    }
                    if current != expected_previous {
                        return Err(MetaDbError::HaConfigChanged {
                            db: rm_db.into(),
                            expected: expected_previous.into(),
                            found: current,
                        });
                    }
                    db.ha_config = Some(new_json.to_string());
                    w.act(ActionKind::HaWrite {
                        db: rm_db.into(),
                        value: new_json.into(),
                    });
                    Ok(HaWriteOutcome {
                        already_written: false,
                    })
                },
            )
        }
        .await;
        await_point(&self.world).await;
        out
    }

    /// Batches as the real adapter runs them, each its own commit: [`Fault::Cut`] with `n`
    /// parts commits `n` batches and fails (a rerun finishes the rest), a fault after the
    /// effect commits them all and fails.
    async fn prune_heartbeat_with(
        &self,
        hb_db: &str,
        opts: PruneOptions,
        progress: PruneProgress<'_>,
    ) -> Result<PruneOutcome, MetaDbError> {
        await_point(&self.world).await;
        let out: Result<PruneOutcome, MetaDbError> = async {
            let (r, fail) = {
                let mut guard = lock(&self.world);
                let w: &mut World = &mut guard;
                let (limit, fail) = match gate(w, Adapter::MetaDb, "prune_heartbeat", hb_db) {
                    Gate::Fail(k) => return Err(meta_error(k, hb_db)),
                    Gate::Cut(n, k) => (u64::from(n), Some(k)),
                    Gate::Go(after) => (u64::MAX, after),
                };
                (prune(w, hb_db, opts, limit), fail)
            };
            // Progress is reported outside the world's lock: the callback may read the clock.
            let (out, calls) = r?;
            for (rows, batches, total) in calls {
                progress(rows, batches, total);
            }
            match fail {
                Some(k) => Err(meta_error(k, hb_db)),
                None => Ok(out),
            }
        }
        .await;
        await_point(&self.world).await;
        out
    }

    async fn drop_pruned_heartbeat(
        &self,
        hb_db: &str,
        _table: &str,
    ) -> Result<Option<u64>, MetaDbError> {
        await_point(&self.world).await;
        // The simulated prune deletes in batches only (no table swap), so no `<old>` table
        // is ever left: the step finds none, as after a real DELETE prune.
        let out: Result<Option<u64>, MetaDbError> = async {
            faulted(
                &self.world,
                Adapter::MetaDb,
                "drop_pruned_heartbeat",
                hb_db,
                meta_error,
                |w| {
                    w.databases.get(hb_db).ok_or_else(|| unknown(hb_db))?;
                    Ok(None)
                },
            )
        }
        .await;
        await_point(&self.world).await;
        out
    }

    async fn database_charset(&self, db: &str) -> Result<Option<DbCharset>, MetaDbError> {
        await_point(&self.world).await;
        let out: Result<Option<DbCharset>, MetaDbError> = async {
            faulted(
                &self.world,
                Adapter::MetaDb,
                "database_charset",
                db,
                meta_error,
                |w| Ok(w.databases.get(db).map(|d| d.charset.clone())),
            )
        }
        .await;
        await_point(&self.world).await;
        out
    }

    async fn drop_and_create(&self, db: &str) -> Result<DbCharset, MetaDbError> {
        await_point(&self.world).await;
        let out: Result<DbCharset, MetaDbError> = async {
            faulted(
                &self.world,
                Adapter::MetaDb,
                "drop_and_create",
                db,
                meta_error,
                |w| {
                    let charset = w
                        .databases
                        .get(db)
                        .map(|d| d.charset.clone())
                        .ok_or_else(|| unknown(db))?;
                    recreate(w, db, &charset);
                    Ok(charset)
                },
            )
        }
        .await;
        await_point(&self.world).await;
        out
    }

    /// Two statements, each committed on its own: [`Fault::Cut`] with one part is "DROP
    /// done, CREATE not" (the connection lost between the two), which leaves the database
    /// absent.
    async fn recreate_database(&self, db: &str, charset: &DbCharset) -> Result<(), MetaDbError> {
        await_point(&self.world).await;
        let out: Result<(), MetaDbError> = async {
            let mut guard = lock(&self.world);
            let w: &mut World = &mut guard;
            match gate(w, Adapter::MetaDb, "recreate_database", db) {
                Gate::Fail(k) | Gate::Cut(0, k) => Err(meta_error(k, db)),
                Gate::Cut(1, k) => {
                    if w.databases.remove(db).is_some() {
                        w.act(ActionKind::Drop { db: db.into() });
                    }
                    Err(meta_error(k, db))
                }
                Gate::Cut(_, k) | Gate::Go(Some(k)) => {
                    recreate(w, db, charset);
                    Err(meta_error(k, db))
                }
                Gate::Go(None) => {
                    recreate(w, db, charset);
                    Ok(())
                }
            }
        }
        .await;
        await_point(&self.world).await;
        out
    }

    /// Answers the two statements `ledger verify --live` sends (does the version table
    /// exist, its row); any other statement is a `Query` error saying it is not modelled.
    async fn query_scalar(&self, db: &str, sql: &str) -> Result<Option<String>, MetaDbError> {
        await_point(&self.world).await;
        let out: Result<Option<String>, MetaDbError> = async {
            faulted(
                &self.world,
                Adapter::MetaDb,
                "query_scalar",
                db,
                meta_error,
                |w| {
                    let d = w.databases.get(db).ok_or_else(|| unknown(db))?;
                    if sql.contains("information_schema.TABLES") {
                        Ok(Some(
                            if d.schema_version.is_some() { "1" } else { "0" }.into(),
                        ))
                    } else if sql.starts_with("SELECT version") {
                        Ok(d.schema_version.clone())
                    } else {
                        Err(MetaDbError::Query {
                            url: "sim".into(),
                            message: format!("the simulated database does not model: {sql}"),
                        })
                    }
                },
            )
        }
        .await;
        await_point(&self.world).await;
        out
    }

    async fn list_servers(&self, cm_db: &str) -> Result<ServerList, MetaDbError> {
        await_point(&self.world).await;
        let out: Result<ServerList, MetaDbError> = async {
            faulted(
                &self.world,
                Adapter::MetaDb,
                "list_servers",
                cm_db,
                meta_error,
                |w| {
                    let d = w.databases.get(cm_db).ok_or_else(|| unknown(cm_db))?;
                    Ok(d.servers.clone().unwrap_or_default())
                },
            )
        }
        .await;
        await_point(&self.world).await;
        out
    }
}

/// Progress calls of a prune: (rows deleted, batches, total).
type PruneCalls = Vec<(u64, u64, u64)>;

/// The heartbeat prune, at most `limit` batches.
fn prune(
    w: &mut World,
    hb_db: &str,
    opts: PruneOptions,
    limit: u64,
) -> Result<(PruneOutcome, PruneCalls), MetaDbError> {
    let flavour = opts.flavour.unwrap_or(w.server.0);
    let db = w.databases.get_mut(hb_db).ok_or_else(|| unknown(hb_db))?;
    let mut out = PruneOutcome::starting(&opts, flavour);
    let Some(ids) = db.heartbeat.as_mut() else {
        out.table_missing = true;
        return Ok((out, Vec::new()));
    };
    out.max_id = ids.iter().copied().max();
    let Some(newest) = out.max_id else {
        return Ok((out, Vec::new()));
    };
    let mut calls = Vec::new();
    let mut total = None;
    while let Some(oldest) = ids.iter().copied().min() {
        if out.batches >= limit {
            break;
        }
        let total = *total.get_or_insert_with(|| newest.saturating_sub(oldest).max(0) as u64);
        let Some(bound) = sqltext::heartbeat_batch_bound(oldest, newest, out.batch_rows) else {
            break;
        };
        let before = ids.len();
        ids.retain(|&id| id >= bound);
        out.rows_deleted += (before - ids.len()) as u64;
        out.batches += 1;
        calls.push((out.rows_deleted, out.batches, total));
    }
    Ok((out, calls))
}

/// DROP then CREATE: the new database is empty, with the charset given.
fn recreate(w: &mut World, db: &str, charset: &DbCharset) {
    if w.databases.remove(db).is_some() {
        w.act(ActionKind::Drop { db: db.into() });
    }
    let mut fresh = super::world::SimDatabase::empty();
    fresh.charset = charset.clone();
    w.databases.insert(db.into(), fresh);
    w.act(ActionKind::Create { db: db.into() });
}

/// [`Health`] over the simulated world; `wait_healthy` polls in virtual time.
#[derive(Debug, Clone)]
pub struct SimHealth {
    /// The world.
    pub world: SharedWorld,
}

fn answer(w: &mut World, base_url: &str) -> Result<HealthReport, HealthError> {
    let key = base_url.trim_end_matches('/');
    let now = w.now;
    let url = health_url(base_url);
    let Some(spot) = w.health.get(key).cloned() else {
        return Err(HealthError::Unreachable {
            url,
            detail: "simulated: nothing listens there".into(),
        });
    };
    let running = w
        .find_on(spot.node, &spot.container)
        .map(|id| w.containers[&id].info.clone())
        .filter(|i| i.status.is_running());
    let Some(info) = running else {
        return Err(HealthError::Unreachable {
            url,
            detail: "simulated: connection refused".into(),
        });
    };
    let ran = (now - info.started_at.unwrap_or(now))
        .to_std()
        .unwrap_or_default();
    let flap_ok = if spot.flaps.is_empty() {
        true
    } else {
        spot.flaps[spot.checks % spot.flaps.len()]
    };
    if let Some(s) = w.health.get_mut(key) {
        s.checks += 1;
    }
    let healthy = ran >= spot.warmup && flap_ok;
    Ok(judge(
        200,
        format!("{{\"data\":{{\"healthy\":{healthy}}}}}").as_bytes(),
    ))
}

impl Health for SimHealth {
    async fn check(&self, base_url: &str) -> Result<HealthReport, HealthError> {
        await_point(&self.world).await;
        let out: Result<HealthReport, HealthError> = async {
            faulted(
                &self.world,
                Adapter::Health,
                "check",
                base_url,
                health_error,
                |w| answer(w, base_url),
            )
        }
        .await;
        await_point(&self.world).await;
        out
    }

    /// The trait's default waits on the real clock; here on the world's, so each poll
    /// advances virtual time.
    async fn wait_healthy(
        &self,
        base_url: &str,
        timeout: Duration,
        poll_interval: Duration,
    ) -> Result<HealthReport, HealthError> {
        await_point(&self.world).await;
        let out: Result<HealthReport, HealthError> = async {
            let clock = SimClock {
                world: self.world.clone(),
            };
            self.wait_healthy_on(&clock, base_url, timeout, poll_interval)
                .await
        }
        .await;
        await_point(&self.world).await;
        out
    }
}

/// [`Clock`] on the world's virtual time: reading it never waits, and sleeping lets the
/// time pass in the world (applying whatever falls due, see [`World::advance`]) and
/// returns at once.
#[derive(Debug, Clone)]
pub struct SimClock {
    /// The world.
    pub world: SharedWorld,
}

impl Clock for SimClock {
    fn now(&self) -> DateTime<Utc> {
        let mut w = lock(&self.world);
        if w.tick_on_now {
            w.advance(Duration::from_micros(1));
        }
        w.now
    }

    fn monotonic(&self) -> Monotonic {
        Monotonic::from_origin(lock(&self.world).elapsed)
    }

    /// A zero wait still lets [`MIN_SLEEP`] pass: a poll loop whose interval is zero ends
    /// in virtual time, as it does in real time, instead of spinning at one instant.
    async fn sleep(&self, d: Duration) {
        await_point(&self.world).await;
        let out: () = async {
            lock(&self.world).advance(d.max(MIN_SLEEP));
        }
        .await;
        await_point(&self.world).await;
        out
    }
}

/// The least virtual time a [`SimClock::sleep`] lets pass.
pub const MIN_SLEEP: Duration = Duration::from_millis(1);

/// The four simulated adapters over one world.
pub fn adapters(world: &SharedWorld) -> (SimDocker, SimMetaDb, SimHealth, SimClock) {
    (
        SimDocker {
            world: world.clone(),
            node: 0,
        },
        SimMetaDb {
            world: world.clone(),
        },
        SimHealth {
            world: world.clone(),
        },
        SimClock {
            world: world.clone(),
        },
    )
}

/// An await point of the simulated process, passed before and after every simulated call:
/// ready at once, unless the world's crash schedule says the process dies here; then it is
/// pending forever (never woken) and the driver drops the future that holds it, losing
/// every in-memory state as `kill -9` would.
pub(crate) fn await_point(world: &SharedWorld) -> impl std::future::Future<Output = ()> {
    let (crashed, mut yields) = {
        let mut w = lock(world);
        let crashed = w.await_point();
        (crashed, !crashed && w.yields_here())
    };
    std::future::poll_fn(move |cx| {
        if crashed {
            std::task::Poll::Pending
        } else if yields {
            // Another future polled beside this one (a stage's steps side by side) goes
            // first; woken at once, so the poller comes back.
            yields = false;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
}
