//! Test support for anything that needs a running OMS: the emulator binary and its images,
//! per-test metadata databases, host folders for the mounts, the OMS `config.yaml`, and
//! emulator containers created the way the runbook creates OMS containers.
//!
//! Containers carry the label `oms-upgrade.test=<unique value>` plus the test process id;
//! a [`ContainerGuard`] removes them when dropped (also when the test panics), and
//! [`sweep_stale_containers`] removes those left by test processes that died. Failures that
//! involve a container (it exited, never became healthy, an exec failed) panic with the
//! container's log in the message.
//!
//! The typical start: [`start_old_oms`] gives a 3.3.0 node, freshly initialised with
//! `docker_init.sh`, healthy and heartbeating, ready for an upgrade test.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, ExecConfig, HostConfig, ResourcesUlimits};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, ListContainersOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use futures_util::StreamExt;
use mysql_async::prelude::Queryable;
use oms_upgrade::demo::emuimage::{self, ImageRef};
use oms_upgrade::omsconfig::{MetaDatabases, OmsConfig};

use super::{TEST_LABEL, TestDb, docker, mysql_pool, mysql_target, unique_name};

/// The version an "old" node runs.
pub const OLD_VERSION: &str = "3.3.0";
/// The version the runbook upgrades to.
pub const NEW_VERSION: &str = "3.3.1";
/// Every version other tests use; [`images`] with this list builds them all.
pub const ALL_VERSIONS: &[&str] = &["3.2.2", "3.3.0", "3.3.1", "4.2.1", "4.2.2"];
/// Label holding the id of the test process that created a container (for the sweep).
pub const TEST_PID_LABEL: &str = "oms-upgrade.test.pid";
/// The line `docker_init.sh` ends with on success.
pub const INIT_SUCCESS: &str = "【结束】全部初始化步骤执行成功";
/// The line a node logs once ready.
pub const READY_LINE: &str = "OMS service start successfully";
/// Mount points inside an OMS container (fixed by OMS).
pub const CONTAINER_CONFIG: &str = "/home/admin/conf/config.yaml";
/// See [`CONTAINER_CONFIG`].
pub const CONTAINER_LOGS: &str = "/home/admin/logs";
/// See [`CONTAINER_CONFIG`].
pub const CONTAINER_STORE: &str = "/home/ds/store";
/// See [`CONTAINER_CONFIG`].
pub const CONTAINER_RUN: &str = "/home/ds/run";

/// How long a container may take to become healthy or to exit before the test fails.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// The emulator binary, built (or refreshed) with `cargo build --example oms_emulator` once
/// per test process, in the same profile as the running test, under a file lock.
pub fn emulator_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        use fs2::FileExt;
        let manifest = env!("CARGO_MANIFEST_DIR");
        let lock_path = std::env::temp_dir().join("oms-emu-cargo-build.lock");
        let lock = std::fs::File::create(&lock_path).expect("create build lock file");
        lock.lock_exclusive().expect("take build lock");
        let exe = std::env::current_exe().expect("current exe");
        let release = exe.components().any(|c| c.as_os_str() == "release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = std::process::Command::new(&cargo);
        cmd.args([
            "build",
            "--example",
            "oms_emulator",
            "--message-format=json",
        ])
        .current_dir(manifest)
        .stdin(std::process::Stdio::null());
        if release {
            cmd.arg("--release");
        }
        let out = match cmd.output() {
            Ok(out) => out,
            // Run outside cargo: use what was built, if anything.
            Err(e) => {
                return emuimage::find_emulator_binary().unwrap_or_else(|| {
                    panic!(
                        "cannot run {cargo} ({e}) and no oms_emulator binary was built: \
                         run `cargo build --example oms_emulator`"
                    )
                });
            }
        };
        assert!(
            out.status.success(),
            "`cargo build --example oms_emulator` failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let from_cargo = stdout.lines().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["reason"] == "compiler-artifact" && v["target"]["name"] == "oms_emulator")
                .then(|| v["executable"].as_str().map(PathBuf::from))
                .flatten()
        });
        let bin = from_cargo
            .or_else(emuimage::find_emulator_binary)
            .expect("cargo built oms_emulator but did not say where");
        drop(lock);
        bin
    })
    .clone()
}

/// Makes sure the emulator images of these versions exist (imported at most once per
/// content), and returns them in the same order.
pub async fn images(docker: &Docker, versions: &[&str]) -> Vec<ImageRef> {
    let bin = emulator_binary();
    emuimage::ensure_images(docker, &bin, versions)
        .await
        .unwrap_or_else(|e| panic!("cannot build emulator images: {e}"))
}

/// Three per-test metadata databases (rm, cm, cm_hb), created empty and dropped when the
/// test passes (kept for inspection when it fails, like [`TestDb`]).
pub struct MetaDbSet {
    /// `drc_rm_db`.
    pub rm: TestDb,
    /// `drc_cm_db`.
    pub cm: TestDb,
    /// `drc_cm_heartbeat_db`.
    pub cm_hb: TestDb,
}

impl MetaDbSet {
    /// Creates the three databases.
    pub async fn create() -> MetaDbSet {
        MetaDbSet {
            rm: TestDb::create("omsrm").await,
            cm: TestDb::create("omscm").await,
            cm_hb: TestDb::create("omshb").await,
        }
    }

    /// Their names, as OMS's config names them.
    pub fn databases(&self) -> MetaDatabases {
        MetaDatabases {
            rm: self.rm.name.clone(),
            cm: self.cm.name.clone(),
            cm_hb: self.cm_hb.name.clone(),
        }
    }
}

/// A TCP port free on the host right now (the containers use the host network), chosen
/// below the kernel's ephemeral range (32768 and up) so that no client socket can take it
/// before the container binds it, and never handed out twice by this process.
pub fn free_port() -> u16 {
    use std::sync::Mutex;
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..1000 {
        let port: u16 = rand::random_range(20000..32000);
        if given.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    panic!("no free TCP port found between 20000 and 32000");
}

/// The host side of one OMS node: a temp folder holding `conf/config.yaml`, `logs`, `store`
/// and `run`, mounted into the container exactly where OMS expects them.
pub struct OmsHost {
    /// The temp folder (removed on drop unless the test panicked).
    pub dir: PathBuf,
    /// The config file.
    pub config_path: PathBuf,
    /// Mounted at `/home/admin/logs`.
    pub logs: PathBuf,
    /// Mounted at `/home/ds/store`.
    pub store: PathBuf,
    /// Mounted at `/home/ds/run`.
    pub run: PathBuf,
    /// What the config file says.
    pub config: OmsConfig,
}

impl OmsHost {
    /// Lays out the folders and writes a config for these databases on the test MariaDB,
    /// with a free `nginx_server_port`.
    pub fn new(dbs: &MetaDatabases) -> OmsHost {
        let mut config = OmsConfig::new(&mysql_target(), dbs);
        config.nginx_server_port = free_port();
        let dir = tempfile::Builder::new()
            .prefix("oms-host-")
            .tempdir()
            .expect("temp dir")
            .keep();
        let host = OmsHost {
            config_path: dir.join("conf").join("config.yaml"),
            logs: dir.join("logs"),
            store: dir.join("store"),
            run: dir.join("run"),
            dir,
            config,
        };
        for d in [
            host.config_path.parent().unwrap(),
            &host.logs,
            &host.store,
            &host.run,
        ] {
            std::fs::create_dir_all(d).expect("create host folder");
        }
        host.write_config();
        host
    }

    /// Rewrites the config file from [`OmsHost::config`] (after a test changed it).
    pub fn write_config(&self) {
        self.config
            .write(&self.config_path)
            .expect("write config.yaml");
    }

    /// The four binds, as `docker run -v` takes them, in the runbook's order.
    pub fn binds(&self) -> Vec<String> {
        vec![
            format!("{}:{CONTAINER_CONFIG}", self.config_path.display()),
            format!("{}:{CONTAINER_LOGS}", self.logs.display()),
            format!("{}:{CONTAINER_STORE}", self.store.display()),
            format!("{}:{CONTAINER_RUN}", self.run.display()),
        ]
    }

    /// The port `/oms/health` answers on.
    pub fn port(&self) -> u16 {
        self.config.nginx_server_port
    }

    /// `http://127.0.0.1:<port>/oms/health`.
    pub fn health_url(&self) -> String {
        format!("http://127.0.0.1:{}/oms/health", self.port())
    }

    /// The latest `docker_init.log` (empty when there is none yet).
    pub fn docker_init_log(&self) -> String {
        std::fs::read_to_string(self.logs.join("docker_init.log")).unwrap_or_default()
    }

    /// The node's own log file (`oms_emulator.log`).
    pub fn node_log(&self) -> String {
        std::fs::read_to_string(self.logs.join("oms_emulator.log")).unwrap_or_default()
    }

    /// Makes the next `docker_init.sh` in a container with these mounts fail after its first
    /// schema change (`true`), or stops doing so (`false`).
    pub fn set_init_fail(&self, on: bool) {
        set_marker(&self.logs.join(".emu-init-fail"), on);
    }

    /// Makes the next `docker_init.sh` hang after its first schema change, or stops doing so.
    pub fn set_init_hang(&self, on: bool) {
        set_marker(&self.logs.join(".emu-init-hang"), on);
    }

    /// Makes `docker_init.sh` `exec` into the emulator (no process named `docker_init`
    /// remains while it runs), or run it as a child again.
    pub fn set_init_exec(&self, on: bool) {
        set_marker(&self.logs.join(".emu-init-exec"), on);
    }

    /// Makes `docker_init.sh` log only to a rotated `docker_init.log.<YYYY-MM-DD.HH:MM:SS>`
    /// (the name a real node uses), or to the plain `docker_init.log` again.
    pub fn set_init_log_rotated(&self, on: bool) {
        set_marker(&self.logs.join(".emu-init-log-rotated"), on);
    }

    /// The names of the `docker_init*` log files in the logs folder, sorted.
    pub fn docker_init_log_names(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.logs)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("docker_init"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The working folder the last `docker_init.sh` ran in, as the emulator recorded it.
    pub fn docker_init_cwd(&self) -> Option<String> {
        std::fs::read_to_string(self.run.join("docker_init.cwd"))
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// Makes `docker_init.sh` pause `ms` after each schema change (`0`: no pause).
    pub fn set_init_step_delay(&self, ms: u64) {
        let path = self.logs.join(".emu-init-step-delay-ms");
        if ms == 0 {
            let _ = std::fs::remove_file(path);
        } else {
            std::fs::write(path, format!("{ms}\n")).expect("write marker");
        }
    }
}

fn set_marker(path: &Path, on: bool) {
    if on {
        std::fs::write(path, b"set by a test\n").expect("write marker");
    } else {
        let _ = std::fs::remove_file(path);
    }
}

impl Drop for OmsHost {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "test failed: keeping OMS host folders {} for inspection",
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Removes, when dropped, every container labelled with its value. Create one per test
/// before creating containers.
pub struct ContainerGuard {
    /// The label value (`oms-upgrade.test=<value>`).
    pub value: String,
}

impl ContainerGuard {
    /// A fresh label value; also sweeps containers left by dead test processes.
    pub async fn new(docker: &Docker) -> ContainerGuard {
        sweep_stale_containers(docker).await;
        ContainerGuard {
            value: unique_name("omsemu"),
        }
    }

    /// The labels to put on a container.
    pub fn labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (TEST_LABEL.to_string(), self.value.clone()),
            (TEST_PID_LABEL.to_string(), std::process::id().to_string()),
        ])
    }
}

/// A tag of the test owning guard `value` for the emulator image of `version`
/// (`oms-emu/pinned-<value>:feature_<version>_ce`), removed when the guard is dropped.
pub fn pinned_reference(value: &str, version: &str) -> String {
    format!(
        "oms-emu/pinned-{}:feature_{version}_ce",
        value.replace('_', "-")
    )
}

/// `docker rmi --force <reference>`, errors ignored (cleanup): only the tag goes while
/// other tags name the image.
pub async fn remove_tag(docker: &Docker, reference: &str) {
    let _ = docker
        .remove_image(
            reference,
            Some(
                bollard::query_parameters::RemoveImageOptionsBuilder::default()
                    .force(true)
                    .build(),
            ),
            None,
        )
        .await;
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let value = self.value.clone();
        // Drop may run inside a runtime: do the async cleanup on a thread of its own.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let Ok(d) = Docker::connect_with_local_defaults() else {
                    return;
                };
                let Ok(d) = d.negotiate_version().await else {
                    return;
                };
                super::remove_labelled_containers(&d, Some(&value)).await;
                for v in ALL_VERSIONS {
                    remove_tag(&d, &pinned_reference(&value, v)).await;
                }
            });
        })
        .join()
        .ok();
    }
}

/// Removes test containers whose creating process is gone (a crashed or killed test run).
/// Containers of test processes still running are left alone.
pub async fn sweep_stale_containers(docker: &Docker) {
    let filters = HashMap::from([("label".to_string(), vec![TEST_PID_LABEL.to_string()])]);
    let opts = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    for c in docker.list_containers(Some(opts)).await.unwrap_or_default() {
        let pid = c
            .labels
            .as_ref()
            .and_then(|l| l.get(TEST_PID_LABEL))
            .cloned()
            .unwrap_or_default();
        let alive = !pid.is_empty() && Path::new(&format!("/proc/{pid}")).exists();
        if !alive && let Some(id) = c.id {
            let _ = docker
                .remove_container(
                    &id,
                    Some(RemoveContainerOptionsBuilder::default().force(true).build()),
                )
                .await;
        }
    }
}

/// How to create an OMS container.
pub struct OmsContainerSpec<'a> {
    /// Container name.
    pub name: &'a str,
    /// Image reference (`oms-emu/oms:feature_3.3.0_ce`).
    pub image: &'a str,
    /// Environment besides `OMS_HOST_IP=127.0.0.1` (e.g. `IS_UPGRADE=true`); an
    /// `OMS_HOST_IP=...` here replaces that default.
    pub extra_env: &'a [&'a str],
    /// Binds (normally [`OmsHost::binds`]).
    pub binds: Vec<String>,
}

/// Creates (does not start) a container the way the runbook runs OMS: `--net host
/// --pids-limit -1 --ulimit nproc=65535:65535`, the four binds, `OMS_HOST_IP`; never
/// `--privileged` (this engine refuses it). Returns the container id.
pub async fn create_oms_container(
    docker: &Docker,
    guard: &ContainerGuard,
    spec: &OmsContainerSpec<'_>,
) -> String {
    // A node of a deployment gives its own OMS_HOST_IP (127.0.0.x) in `extra_env`.
    let mut env = Vec::new();
    if !spec.extra_env.iter().any(|e| e.starts_with("OMS_HOST_IP=")) {
        env.push("OMS_HOST_IP=127.0.0.1".to_string());
    }
    env.extend(spec.extra_env.iter().map(|s| s.to_string()));
    let body = ContainerCreateBody {
        image: Some(spec.image.to_string()),
        env: Some(env),
        labels: Some(guard.labels()),
        host_config: Some(HostConfig {
            binds: Some(spec.binds.clone()),
            network_mode: Some("host".into()),
            pids_limit: Some(-1),
            ulimits: Some(vec![ResourcesUlimits {
                name: Some("nproc".into()),
                soft: Some(65535),
                hard: Some(65535),
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let opts = CreateContainerOptionsBuilder::default()
        .name(spec.name)
        .build();
    docker
        .create_container(Some(opts), body)
        .await
        .unwrap_or_else(|e| panic!("create container {}: {e}", spec.name))
        .id
}

/// Starts a created container.
pub async fn start_container(docker: &Docker, id: &str) {
    docker
        .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
        .await
        .unwrap_or_else(|e| panic!("start container {id}: {e}"));
}

/// The container's whole log (stdout and stderr).
pub async fn container_logs(docker: &Docker, id: &str) -> String {
    let opts = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .build();
    let mut s = docker.logs(id, Some(opts));
    let mut out = String::new();
    while let Some(item) = s.next().await {
        match item {
            Ok(chunk) => out.push_str(&String::from_utf8_lossy(&chunk.into_bytes())),
            Err(e) => {
                out.push_str(&format!("\n<log stream error: {e}>"));
                break;
            }
        }
    }
    out
}

/// `(running, exit code)` of a container.
pub async fn container_state(docker: &Docker, id: &str) -> (bool, Option<i64>) {
    let info = docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
        .unwrap_or_else(|e| panic!("inspect container {id}: {e}"));
    let state = info.state.unwrap_or_default();
    (state.running.unwrap_or(false), state.exit_code)
}

/// Waits until the container has exited and returns its exit code; panics with its log if
/// it is still running after the timeout.
pub async fn wait_exit(docker: &Docker, id: &str) -> i64 {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let (running, code) = container_state(docker, id).await;
        if !running {
            return code.unwrap_or(-1);
        }
        if Instant::now() > deadline {
            panic!(
                "container {id} still running after {READY_TIMEOUT:?}; its log:\n{}",
                container_logs(docker, id).await
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One `GET /oms/health`: the parsed JSON, or `None` when nothing answers.
pub async fn health(url: &str) -> Option<serde_json::Value> {
    health_ca(url, None).await
}

/// Like [`health`], over HTTPS trusting the PEM certificates `ca` (and nothing else) when
/// given. The crate builds reqwest with rustls and no process-wide crypto provider, so the
/// client is given its TLS configuration here.
pub async fn health_ca(url: &str, ca: Option<&[u8]>) -> Option<serde_json::Value> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca.unwrap_or_default()) {
        roots.add(c.ok()?).ok()?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .ok()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .no_proxy()
        .tls_backend_preconfigured(tls)
        .build()
        .ok()?;
    let resp = client.get(url).send().await.ok()?;
    resp.json().await.ok()
}

/// Polls `/oms/health` until `data.healthy` is true and returns the answer; panics with the
/// container's log if the container exits or the timeout passes first.
pub async fn wait_healthy(docker: &Docker, id: &str, url: &str) -> serde_json::Value {
    wait_healthy_ca(docker, id, url, None).await
}

/// Like [`wait_healthy`], over HTTPS trusting `ca` when given (see [`health_ca`]).
pub async fn wait_healthy_ca(
    docker: &Docker,
    id: &str,
    url: &str,
    ca: Option<&[u8]>,
) -> serde_json::Value {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut last = None;
    loop {
        if let Some(v) = health_ca(url, ca).await {
            if v["data"]["healthy"] == true {
                return v;
            }
            last = Some(v);
        }
        let (running, code) = container_state(docker, id).await;
        if !running || Instant::now() > deadline {
            panic!(
                "OMS container {id} did not become healthy ({}; last health answer: {last:?}); its log:\n{}",
                if running {
                    format!("still unhealthy after {READY_TIMEOUT:?}")
                } else {
                    format!("it exited with code {code:?}")
                },
                container_logs(docker, id).await
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The result of a command run in a container.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    /// Its exit code.
    pub exit_code: i64,
    /// stdout and stderr, interleaved.
    pub output: String,
}

/// Runs a command in a running container (like `docker exec`) and waits for it.
pub async fn exec(docker: &Docker, id: &str, cmd: &[&str]) -> ExecOutput {
    let exec_id = create_exec(docker, id, cmd).await;
    let started = docker
        .start_exec(&exec_id, None)
        .await
        .unwrap_or_else(|e| panic!("start exec {cmd:?} in {id}: {e}"));
    let mut output = String::new();
    if let bollard::exec::StartExecResults::Attached { output: mut s, .. } = started {
        while let Some(Ok(chunk)) = s.next().await {
            output.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
    }
    // The stream ends when the process does; the exit code may lag a moment behind.
    loop {
        let info = docker
            .inspect_exec(&exec_id)
            .await
            .unwrap_or_else(|e| panic!("inspect exec {exec_id}: {e}"));
        if info.running != Some(true) {
            return ExecOutput {
                exit_code: info.exit_code.unwrap_or(-1),
                output,
            };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts a command in a container without waiting for it; returns the exec id (for
/// [`exec_state`]).
pub async fn exec_detached(docker: &Docker, id: &str, cmd: &[&str]) -> String {
    let exec_id = create_exec(docker, id, cmd).await;
    docker
        .start_exec(
            &exec_id,
            Some(bollard::exec::StartExecOptions {
                detach: true,
                ..Default::default()
            }),
        )
        .await
        .unwrap_or_else(|e| panic!("start exec {cmd:?} in {id}: {e}"));
    exec_id
}

/// `(running, exit code)` of an exec.
pub async fn exec_state(docker: &Docker, exec_id: &str) -> (bool, Option<i64>) {
    let info = docker
        .inspect_exec(exec_id)
        .await
        .unwrap_or_else(|e| panic!("inspect exec {exec_id}: {e}"));
    (info.running == Some(true), info.exit_code)
}

async fn create_exec(docker: &Docker, id: &str, cmd: &[&str]) -> String {
    let cfg = ExecConfig {
        cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        ..Default::default()
    };
    docker
        .create_exec(id, cfg)
        .await
        .unwrap_or_else(|e| panic!("create exec {cmd:?} in {id}: {e}"))
        .id
}

/// Runs `bash /root/docker_init.sh` in the container, as the runbook says.
pub async fn run_docker_init(docker: &Docker, id: &str) -> ExecOutput {
    exec(docker, id, &["bash", "/root/docker_init.sh"]).await
}

/// Stops a container with `docker stop`'s semantics (SIGTERM, then SIGKILL after
/// `timeout_secs`).
pub async fn stop_container(docker: &Docker, id: &str, timeout_secs: i32) {
    docker
        .stop_container(
            id,
            Some(
                StopContainerOptionsBuilder::default()
                    .t(timeout_secs)
                    .build(),
            ),
        )
        .await
        .unwrap_or_else(|e| panic!("stop container {id}: {e}"));
}

/// Rows in `<cm_hb>.heatbeat_sequence`.
pub async fn heartbeat_rows(dbs: &MetaDatabases) -> u64 {
    scalar(&format!(
        "SELECT COUNT(*) FROM `{}`.heatbeat_sequence",
        dbs.cm_hb
    ))
    .await
    .unwrap_or(0)
}

/// The schema-version row's version in `<rm>.oms_schema_version`.
pub async fn schema_version(dbs: &MetaDatabases) -> Option<String> {
    let pool = mysql_pool().await;
    let mut c = pool.get_conn().await.expect("connection");
    let v: Option<String> = c
        .query_first(format!(
            "SELECT version FROM `{}`.oms_schema_version WHERE id = 1",
            dbs.rm
        ))
        .await
        .ok()
        .flatten();
    drop(c);
    pool.disconnect().await.ok();
    v
}

/// Runs a query returning one unsigned number on the test server.
pub async fn scalar(sql: &str) -> Option<u64> {
    let pool = mysql_pool().await;
    let mut c = pool.get_conn().await.expect("connection");
    let v: Option<u64> = c
        .query_first(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    drop(c);
    pool.disconnect().await.ok();
    v
}

/// The first column of the first row of `sql` as text, on the test server.
pub async fn scalar_text(sql: &str) -> Option<String> {
    let pool = mysql_pool().await;
    let mut c = pool.get_conn().await.expect("connection");
    let v: Option<String> = c
        .query_first(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    drop(c);
    pool.disconnect().await.ok();
    v
}

/// Polls until `<cm_hb>.heatbeat_sequence` holds more than `above` rows; returns the count.
/// Panics with the container's log if it does not happen within the timeout.
pub async fn wait_heartbeats_above(
    docker: &Docker,
    id: &str,
    dbs: &MetaDatabases,
    above: u64,
) -> u64 {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let n = heartbeat_rows(dbs).await;
        if n > above {
            return n;
        }
        if Instant::now() > deadline {
            panic!(
                "heartbeats did not grow past {above} rows; container log:\n{}",
                container_logs(docker, id).await
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the emulator's seeder on the host against these databases (the config file holds
/// the password, so it never reaches argv). Returns the seeder's JSON summary.
pub fn seed(config_path: &Path, size: &str) -> serde_json::Value {
    let out = std::process::Command::new(emulator_binary())
        .args(["seed", "--config"])
        .arg(config_path)
        .args(["--size", size])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run the seeder");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "seed failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or("");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("seed summary {last:?}: {e}"))
}

/// A running OMS node with everything it stands on. Field order is drop order: containers
/// go first, then the host folders, then the databases.
pub struct OmsNode {
    /// Removes this test's containers on drop.
    pub guard: ContainerGuard,
    /// Docker client.
    pub docker: Docker,
    /// Container name.
    pub name: String,
    /// Container id.
    pub id: String,
    /// The image it runs.
    pub image: ImageRef,
    /// Host folders and config.
    pub host: OmsHost,
    /// The three metadata databases.
    pub dbs: MetaDbSet,
}

impl OmsNode {
    /// The databases' names.
    pub fn databases(&self) -> MetaDatabases {
        self.dbs.databases()
    }

    /// The container's log so far.
    pub async fn logs(&self) -> String {
        container_logs(&self.docker, &self.id).await
    }
}

/// Starts an "old" OMS node (3.3.0): see [`start_oms`].
pub async fn start_old_oms() -> OmsNode {
    start_oms(OLD_VERSION).await
}

/// A fresh node of `version`: new metadata databases and host folders, the image, a
/// container created like the runbook's and started, `docker_init.sh` run (fresh install),
/// then polled until `/oms/health` says healthy and heartbeat rows are being written.
pub async fn start_oms(version: &str) -> OmsNode {
    start_oms_with_env(version, &[]).await
}

/// Like [`start_oms`], with `extra_env` (`NAME=value`) in the container's environment.
pub async fn start_oms_with_env(version: &str, extra_env: &[&str]) -> OmsNode {
    start_oms_with(version, extra_env, None).await
}

/// An HTTPS console for [`start_oms_with`]: the certificate and key (PEM) to mount at
/// OMS's nginx paths, and the CA (PEM) the test's health polls trust.
pub struct ConsoleTls {
    /// Server certificate (PEM).
    pub cert_pem: String,
    /// Its private key (PEM).
    pub key_pem: String,
    /// The CA that issued it (PEM).
    pub ca_pem: String,
}

/// Where OMS's nginx reads the console's certificate and key.
pub const CONSOLE_CERT: &str = "/etc/pki/nginx/oms_server.crt";
/// See [`CONSOLE_CERT`].
pub const CONSOLE_KEY: &str = "/etc/pki/nginx/oms_server.key";

/// Like [`start_oms_with_env`]; with `tls`, the certificate and key are written into the
/// host folder (`tls/`) and mounted at [`CONSOLE_CERT`] and [`CONSOLE_KEY`], so the node
/// serves its console port over HTTPS only, and the health polls use HTTPS.
pub async fn start_oms_with(
    version: &str,
    extra_env: &[&str],
    tls: Option<&ConsoleTls>,
) -> OmsNode {
    let docker = docker().await;
    let guard = ContainerGuard::new(&docker).await;
    let image = images(&docker, &[version]).await.remove(0);
    let dbs = MetaDbSet::create().await;
    let host = OmsHost::new(&dbs.databases());
    let name = guard.value.replace('_', "-");
    let id = create_oms_container(
        &docker,
        &guard,
        &OmsContainerSpec {
            name: &name,
            image: &image.reference,
            extra_env,
            binds: match tls {
                None => host.binds(),
                Some(t) => {
                    let dir = host.dir.join("tls");
                    std::fs::create_dir_all(&dir).expect("create tls folder");
                    let (crt, key) = (dir.join("oms_server.crt"), dir.join("oms_server.key"));
                    std::fs::write(&crt, &t.cert_pem).expect("write certificate");
                    std::fs::write(&key, &t.key_pem).expect("write key");
                    let mut b = host.binds();
                    b.push(format!("{}:{CONSOLE_CERT}:ro", crt.display()));
                    b.push(format!("{}:{CONSOLE_KEY}:ro", key.display()));
                    b
                }
            },
        },
    )
    .await;
    start_container(&docker, &id).await;
    let init = run_docker_init(&docker, &id).await;
    if init.exit_code != 0 || !init.output.contains(INIT_SUCCESS) {
        panic!(
            "docker_init.sh (fresh install) failed with {}:\n{}\ncontainer log:\n{}",
            init.exit_code,
            init.output,
            container_logs(&docker, &id).await
        );
    }
    match tls {
        None => wait_healthy(&docker, &id, &host.health_url()).await,
        Some(t) => {
            let url = host.health_url().replacen("http://", "https://", 1);
            wait_healthy_ca(&docker, &id, &url, Some(t.ca_pem.as_bytes())).await
        }
    };
    wait_heartbeats_above(&docker, &id, &dbs.databases(), 0).await;
    OmsNode {
        guard,
        docker,
        name,
        id,
        image,
        host,
        dbs,
    }
}
