//! The demo behind `oms-upgrade demo`: the whole upgrade, end to end, on one machine with Docker and MariaDB,
//! against the bundled OMS CE emulator, leaving everything in place for inspection.
//!
//! The demo sets up what an operator would find before an upgrade (an OMS 3.3.0 node
//! created the way the runbook creates it, its metadata databases filled with realistic
//! rows) and then upgrades it to 3.3.1 with the product's own commands: it runs this very
//! executable as `init`, `run --yes` and `ledger verify --live`, so what is shown is exactly what a
//! user of those commands sees (same argument parsing, same output, same exit codes, one
//! ledger lock per command) and nothing in the upgrade path is demo-specific.
//!
//! Everything it creates is named after a demo id and recorded, before it is created, in
//! `demo-state.json` in the demo's folder; containers carry the label `oms-upgrade.demo=<id>`
//! (the upgraded container inherits it from the old one). `oms-upgrade demo --clean` removes
//! exactly that: the labelled containers, the databases the state files name (only names
//! that carry the demo's id), the demo folders and the demo ledgers. Images are kept: they
//! are cached by content and shared with the test suite.
//!
//! This module does the work (Docker, MariaDB, files, child processes) and returns what
//! happened as values and typed errors; `cli::demo` parses the flags, prints the outcome
//! and turns a [`DemoError`] into an exit code. [`emuimage`] builds the emulator's
//! images, [`certs`] the console certificates of `--tls`.

pub mod certs;
pub mod deployment;
pub mod emuimage;
mod several;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::adapters::metadb::DbCharset;
use crate::adapters::{
    BollardDocker, ContainerInfo, ContainerSpec, Docker, DockerError, Health, HttpHealth, MetaDb,
    MysqlMetaDb,
};
use crate::dbconn::{DbTarget, PASSWORD_ENV};
use crate::omsconfig::{MetaDatabases, OmsConfig};
use crate::secret::Secret;
pub use several::{DeploymentRun, NodeLine};

/// Label on every container a demo creates; its value is the demo id.
pub const DEMO_LABEL: &str = "oms-upgrade.demo";
/// Label naming the demo's folder, so `--clean` finds the state file of any demo container.
pub const DEMO_DIR_LABEL: &str = "oms-upgrade.demo.dir";
/// The state file in each demo folder.
pub const STATE_FILE: &str = "demo-state.json";
/// Folder (under the working directory) holding demo folders when no `--ledger` is given.
pub const DEFAULT_DEMO_ROOT: &str = "oms-upgrade-demo";
/// The version the demo's old node runs.
pub const DEMO_FROM_VERSION: &str = "3.3.0";
/// The version the demo upgrades to.
pub const DEMO_TO_VERSION: &str = "3.3.1";

/// Identifies the state file's layout.
const STATE_FORMAT: &str = "oms-upgrade-demo-state/1";
/// Every demo database name starts with this, followed by the demo id.
const DB_PREFIX: &str = "oms_demo_";
/// How long the fresh `docker_init.sh` of the old node may take.
const INIT_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the old node may take to answer healthy.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(120);

/// How a demo reports its progress: one line for people at a time (the CLI writes them to
/// stderr, so that with `--json` stdout holds only the result).
pub type Progress = fn(&str);

/// What a demo is asked to do (`oms-upgrade demo`'s flags; see `cli::demo` for each).
#[derive(Debug, Clone)]
pub struct Options {
    /// Volume of metadata rows to seed, in bytes.
    pub size: u64,
    /// Create the containers with --privileged=true, as the runbook does.
    pub privileged: bool,
    /// The version the demo's old node runs.
    pub from: String,
    /// The version the demo upgrades to.
    pub to: String,
    /// Stop after `init`: nothing is upgraded.
    pub plan_only: bool,
    /// Serve the node's console over HTTPS only, with a generated CA.
    pub tls: bool,
    /// The ledger the user named (absolute); `None`: the demo's own, in its folder.
    pub ledger: Option<PathBuf>,
    /// Run the child commands with `--json` and capture what they print (the demo's own
    /// result is then one JSON object).
    pub json: bool,
    /// Where progress lines go.
    pub progress: Progress,
    /// Mirror the demo's ledger to a witness (issue 14): the arguments `init` gets.
    pub witness: Option<DemoWitness>,
    /// Nodes of the deployment (issue 15); 1 is the single-node demo.
    pub nodes: u8,
    /// Regions the nodes are spread over (1 to `nodes`).
    pub regions: u8,
    /// After the upgrade and its `ledger verify --live`: roll back, and verify again.
    pub rollback: bool,
}

/// The witness a demo mirrors to: passed to `init` (which records it in the plan), and
/// to `run` and `ledger verify` (which use the recorded target). The password reaches the
/// children as it reached the demo: `OMS_WITNESS_PASSWORD` in the environment, or the file.
#[derive(Debug, Clone)]
pub struct DemoWitness {
    /// `mysql://USER@HOST:PORT/DB`, already checked by the caller.
    pub url: String,
    /// `required` or `best-effort`.
    pub policy: &'static str,
    /// `--witness-password-file`, if given.
    pub password_file: Option<PathBuf>,
    /// `--witness-tls` as spelled on the command line.
    pub tls: String,
    /// `--witness-ca`, if given.
    pub ca: Option<PathBuf>,
}

impl DemoWitness {
    /// The flags every witnessed child command takes (not `--witness-policy`: only `init`).
    fn args(&self) -> Vec<String> {
        let mut a = vec![
            "--witness".to_string(),
            self.url.clone(),
            "--witness-tls".into(),
            self.tls.clone(),
        ];
        if let Some(f) = &self.password_file {
            a.extend(["--witness-password-file".into(), f.display().to_string()]);
        }
        if let Some(ca) = &self.ca {
            a.extend(["--witness-ca".into(), ca.display().to_string()]);
        }
        a
    }
}

/// What `demo --clean` is asked to remove.
#[derive(Debug, Clone)]
pub struct CleanOptions {
    /// Every demo on this machine, rather than the one of `ledger`.
    pub all: bool,
    /// List what would be removed; remove nothing.
    pub dry_run: bool,
    /// The ledger the user named (absolute), naming the demo to remove.
    pub ledger: Option<PathBuf>,
    /// Where progress lines go.
    pub progress: Progress,
}

/// How a demo failed, for the caller to turn into an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input: a flag, an environment variable, a folder that cannot be used.
    Input,
    /// Understood and refused: a ledger folder in use, a database that already exists.
    Refused,
    /// Docker, MariaDB or the emulated node failed or could not be reached.
    Service,
    /// Something that should not happen (an unreadable ledger just written, no runtime).
    Internal,
    /// A child `oms-upgrade` command failed, with its exit code (`None`: killed).
    Child(Option<i32>),
}

/// A demo's failure: what happened and, when known, what to do next.
#[derive(Debug, Clone)]
pub struct DemoError {
    /// Its classification.
    pub kind: ErrorKind,
    /// One line (or a few) saying what happened.
    pub message: String,
    /// What the user should do next, if known.
    pub hint: Option<String>,
}

impl DemoError {
    /// A new error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        DemoError {
            kind,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds what to do next.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl std::fmt::Display for DemoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DemoError {}

/// Where the metadata DB is (no password: that stays in the demo's config.yaml).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MetaDbAt {
    host: String,
    port: u16,
    user: String,
}

/// What one demo created, written before each thing is created so that `--clean` can
/// remove it even after a demo that failed half-way.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DemoState {
    format: String,
    id: String,
    created_at: DateTime<Utc>,
    /// How far the demo got: `setup`, `node-running`, `seeded`, `upgraded`, `verified`.
    stage: String,
    dir: PathBuf,
    ledger: PathBuf,
    metadb: MetaDbAt,
    databases: Option<MetaDatabases>,
    container: String,
    /// Id of the old (3.3.0) container, once created.
    old_container_id: Option<String>,
    config: PathBuf,
    health_url: Option<String>,
    images: Vec<String>,
    /// The CA file of a `--tls` demo's console certificate.
    #[serde(default)]
    health_ca: Option<PathBuf>,
    /// A deployment demo's other regions' heartbeat databases (issue 15), dropped by
    /// `--clean` with the three above.
    #[serde(default)]
    extra_databases: Vec<String>,
}

impl DemoState {
    fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// Writes the state file atomically (random temporary name, fsync, rename).
    fn save(&self) -> Result<(), DemoError> {
        use std::io::Write;
        let path = self.path();
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| DemoError::new(ErrorKind::Internal, e.to_string()))?;
        let failed = |e: std::io::Error| {
            DemoError::new(
                ErrorKind::Internal,
                format!("cannot write the demo state file {}: {e}", path.display()),
            )
        };
        crate::safefs::write_atomic(&path, 0o644, failed, |f| {
            f.write_all(text.as_bytes())
                .and_then(|()| f.write_all(b"\n"))
                .map_err(failed)
        })
    }

    fn load(dir: &Path) -> Result<DemoState, String> {
        let path = dir.join(STATE_FILE);
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let st: DemoState =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if st.format != STATE_FORMAT {
            return Err(format!(
                "{}: unknown format {:?} (expected {STATE_FORMAT})",
                path.display(),
                st.format
            ));
        }
        Ok(st)
    }

    /// The prefix every database of this demo has.
    fn db_prefix(&self) -> String {
        db_prefix(&self.id)
    }
}

fn db_prefix(id: &str) -> String {
    format!("{DB_PREFIX}{}_", id.replace('-', "_"))
}

/// `e` with a hint saying that what the demo made is kept in `dir` and how to remove it.
fn left_in_place(e: DemoError, dir: &Path, ledger: &Path) -> DemoError {
    let hint = format!(
        "{}What the demo created so far is left in {} for inspection; \
         `oms-upgrade demo --clean --ledger {}` removes it",
        e.hint
            .as_deref()
            .map(|h| format!("{h}. "))
            .unwrap_or_default(),
        dir.display(),
        ledger.display()
    );
    DemoError {
        hint: Some(hint),
        ..e
    }
}

/// A container as a demo summary shows it: `name (image, running|stopped)`, or `gone`.
pub fn container_line(c: Option<&ContainerInfo>) -> String {
    match c {
        Some(c) => format!(
            "{} ({}, {})",
            c.name,
            c.image,
            if c.status.is_running() {
                "running"
            } else {
                "stopped"
            }
        ),
        None => "gone".into(),
    }
}

/// Sets up a demo node and upgrades it (or, with `plan_only`, records the plan only).
/// Everything it created is left in place, also on failure (the error's hint says where).
pub fn run(opts: Options) -> Result<Outcome, DemoError> {
    if opts.nodes > 1 {
        return Demo::new(opts)?.run_deployment();
    }
    Demo::new(opts)?.run()
}

/// The async runtime the demo's adapters run on.
fn runtime() -> Result<tokio::runtime::Runtime, DemoError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| internal("cannot start the async runtime", e))
}

/// The metadata DB the demo uses: OMS_DEMO_MYSQL_*, then OMS_TEST_MYSQL_*, then the user
/// `scripts/services.sh` creates.
fn demo_target() -> Result<DbTarget, DemoError> {
    let var = |suffix: &str, default: &str| -> String {
        [
            format!("OMS_DEMO_MYSQL_{suffix}"),
            format!("OMS_TEST_MYSQL_{suffix}"),
        ]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| default.to_string())
    };
    let port = var("PORT", "3306");
    Ok(DbTarget {
        host: var("HOST", "127.0.0.1"),
        port: port.parse().map_err(|_| {
            DemoError::new(
                ErrorKind::Input,
                format!("OMS_DEMO_MYSQL_PORT (or OMS_TEST_MYSQL_PORT) {port:?} is not a port"),
            )
        })?,
        user: var("USER", "oms_test"),
        password: Secret::new(var("PASSWORD", "oms_test_pw")),
        tls: crate::dbconn::TlsSettings::default(),
    })
}

/// `p` made absolute against the working directory (as it is when that fails).
pub fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The folder holding demo folders: next to the given ledger, else `./oms-upgrade-demo`.
fn demo_root(given_ledger: Option<&Path>) -> PathBuf {
    match given_ledger {
        Some(l) => l
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/")),
        None => absolute(Path::new(DEFAULT_DEMO_ROOT)),
    }
}

fn service(e: impl std::fmt::Display) -> DemoError {
    DemoError::new(ErrorKind::Service, e.to_string())
        .hint("scripts/demo installs and starts Docker and MariaDB (`source scripts/services.sh; ensure_services`)")
}

fn internal(what: &str, e: impl std::fmt::Display) -> DemoError {
    DemoError::new(ErrorKind::Internal, format!("{what}: {e}"))
}

/// A TCP port free on the host now, below the ephemeral range (so no client socket takes it
/// before the container binds it): the node uses the host network.
fn free_port() -> Result<u16, DemoError> {
    for _ in 0..1000 {
        let r = u16::from_le_bytes(
            uuid::Uuid::new_v4().as_bytes()[..2]
                .try_into()
                .unwrap_or([0, 0]),
        );
        let port = 20000 + r % 12000;
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(DemoError::new(
        ErrorKind::Service,
        "no free TCP port between 20000 and 32000 for the demo node",
    ))
}

/// `--from`/`--to`: versions the emulator plays, and a path `init` will accept.
fn check_versions(from: &str, to: &str) -> Result<(), DemoError> {
    let known = emuimage::EMULATED_VERSIONS;
    for (flag, v) in [("--from", from), ("--to", to)] {
        if !known.contains(&v) {
            return Err(DemoError::new(
                ErrorKind::Input,
                format!(
                    "{flag} {v:?} is not a version the OMS emulator plays ({})",
                    known.join(", ")
                ),
            ));
        }
    }
    let parse = |v: &str| v.parse::<crate::versions::Version>();
    match (parse(from), parse(to)) {
        (Ok(f), Ok(t)) => crate::versions::procedure_for(f, t)
            .map(|_| ())
            .map_err(|e| {
                DemoError::new(ErrorKind::Input, format!("--from {from} --to {to}: {e}"))
                    .hint("e.g. --from 3.3.0 --to 3.3.1 (the default) or --from 4.2.1 --to 4.2.2")
            }),
        _ => Err(DemoError::new(
            ErrorKind::Input,
            format!("--from {from} --to {to}: not versions"),
        )),
    }
}

/// How a demo ended (an error aside).
#[derive(Debug)]
pub enum Outcome {
    /// The node was upgraded and the ledger checked against it.
    Upgraded(Box<Upgraded>),
    /// `plan_only`: the node runs and the plan is recorded; nothing else was done.
    Planned(Box<Planned>),
    /// A deployment of several nodes (issue 15) was upgraded (and maybe rolled back).
    Deployment(Box<DeploymentRun>),
}

/// An upgraded demo: where everything is and how the upgrade went.
#[derive(Debug)]
pub struct Upgraded {
    /// The whole result as one JSON object (what `--json` prints).
    pub summary: serde_json::Value,
    /// The demo id.
    pub id: String,
    /// The version upgraded from, as the plan records it.
    pub from: String,
    /// The version upgraded to.
    pub to: String,
    /// The run's phase after the upgrade.
    pub phase: String,
    /// The demo's ledger.
    pub ledger: PathBuf,
    /// The demo's folder.
    pub dir: PathBuf,
    /// The node's config.yaml.
    pub config: PathBuf,
    /// The metadata DB server (no password).
    pub metadb: String,
    /// The demo's three databases.
    pub databases: Option<MetaDatabases>,
    /// The upgraded container (`None`: gone).
    pub new: Option<ContainerInfo>,
    /// The old container (`None`: gone).
    pub old: Option<ContainerInfo>,
    /// The node's health URL.
    pub health_url: Option<String>,
    /// Whether it answered healthy at the end.
    pub healthy: bool,
    /// When the old node stopped (T1).
    pub t1: Option<DateTime<Utc>>,
    /// When HA was back on (T2).
    pub t2: Option<DateTime<Utc>>,
    /// T2 - T1 in seconds.
    pub downtime_seconds: Option<f64>,
    /// The recorded refetch interval, if any.
    pub refetch_minutes: Option<u64>,
    /// Commands to look around with.
    pub look_around: Vec<String>,
    /// `ledger verify --live` failed: the demo failed, after its summary is shown.
    pub verify_failure: Option<DemoError>,
}

/// A `plan_only` demo: the node, the recorded plan, and the commands to drive them.
#[derive(Debug)]
pub struct Planned {
    /// The whole result as one JSON object (what `--json` prints).
    pub summary: serde_json::Value,
    /// The demo id.
    pub id: String,
    /// The old container's name.
    pub container: String,
    /// The old container's image.
    pub old_image: String,
    /// The planned source version.
    pub from: String,
    /// The planned target version.
    pub to: String,
    /// The demo's ledger.
    pub ledger: PathBuf,
    /// As (key, what it does, command line), in the order to print them.
    pub commands: Vec<(&'static str, &'static str, String)>,
}

/// One demo in the making.
struct Demo {
    args: Options,
    emulator: PathBuf,
    target: DbTarget,
    st: DemoState,
}

/// The old node, once running.
struct Node {
    images: Vec<emuimage::ImageRef>,
    seed: serde_json::Value,
}

/// What a child `oms-upgrade` printed and how it ended.
struct ChildRun {
    code: Option<i32>,
    json: Option<serde_json::Value>,
}

impl ChildRun {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

impl Demo {
    fn new(args: Options) -> Result<Demo, DemoError> {
        let emulator = emuimage::find_emulator_binary().ok_or_else(|| {
            DemoError::new(
                ErrorKind::Input,
                "the OMS emulator binary (oms_emulator) was not found next to this executable \
                 nor in ../lib/oms-upgrade/ (where the packages install it)",
            )
            .hint(
                "reinstall the package (it installs /usr/lib/oms-upgrade/oms_emulator), or from \
                 a checkout build it with `cargo build --release --example oms_emulator` (it \
                 lands in target/release/examples/), or run the whole demo with `scripts/demo`",
            )
        })?;
        check_versions(&args.from, &args.to)?;
        let now = Utc::now();
        let id = format!(
            "{}-{}",
            now.format("%Y%m%d-%H%M%S"),
            &uuid::Uuid::new_v4().simple().to_string()[..4]
        );
        let dir = demo_root(args.ledger.as_deref()).join(&id);
        let ledger = args.ledger.clone().unwrap_or_else(|| dir.join("ledger"));
        let target = demo_target()?;
        let st = DemoState {
            format: STATE_FORMAT.into(),
            container: format!("oms-demo-{id}"),
            config: dir.join("conf").join("config.yaml"),
            id,
            created_at: now,
            stage: "setup".into(),
            dir,
            ledger,
            metadb: MetaDbAt {
                host: target.host.clone(),
                port: target.port,
                user: target.user.clone(),
            },
            databases: None,
            old_container_id: None,
            health_url: None,
            images: Vec::new(),
            health_ca: None,
            extra_databases: Vec::new(),
        };
        Ok(Demo {
            args,
            emulator,
            target,
            st,
        })
    }

    fn say(&self, text: &str) {
        (self.args.progress)(text);
    }

    fn run(mut self) -> Result<Outcome, DemoError> {
        self.check_ledger_free()?;
        let rt = runtime()?;
        let docker = rt.block_on(self.check_services())?;
        self.say(&format!(
            "demo {} in {} (ledger {})",
            self.st.id,
            self.st.dir.display(),
            self.st.ledger.display()
        ));
        std::fs::create_dir_all(&self.st.dir).map_err(|e| {
            DemoError::new(
                ErrorKind::Input,
                format!(
                    "cannot create the demo folder {}: {e}",
                    self.st.dir.display()
                ),
            )
            .hint("run the demo from a writable folder, or pass --ledger DIR in one")
        })?;
        self.st.save()?;
        let node = match rt.block_on(self.start_old_node(&docker)) {
            Ok(n) => n,
            Err(e) => return Err(left_in_place(e, &self.st.dir, &self.st.ledger)),
        };
        match self.upgrade(&rt, &docker, &node) {
            Ok(Outcome::Upgraded(mut u)) => {
                u.verify_failure = u
                    .verify_failure
                    .map(|e| left_in_place(e, &self.st.dir, &self.st.ledger));
                Ok(Outcome::Upgraded(u))
            }
            Ok(planned) => Ok(planned),
            Err(e) => Err(left_in_place(e, &self.st.dir, &self.st.ledger)),
        }
    }

    /// One ledger records one upgrade: a demo starts only on an absent or empty ledger
    /// folder, which also means every ledger `--clean` removes was made by a demo.
    fn check_ledger_free(&self) -> Result<(), DemoError> {
        let l = &self.st.ledger;
        if !l.exists() {
            return Ok(());
        }
        let empty = std::fs::read_dir(l)
            .map(|mut d| d.next().is_none())
            .map_err(|e| {
                DemoError::new(
                    ErrorKind::Input,
                    format!("--ledger {} is not a readable folder: {e}", l.display()),
                )
            })?;
        if empty {
            return Ok(());
        }
        Err(DemoError::new(
            ErrorKind::Refused,
            format!(
                "the ledger folder {} is not empty (a ledger records one upgrade, e.g. an earlier demo)",
                l.display()
            ),
        )
        .hint(format!(
            "remove earlier demos with `oms-upgrade demo --clean --ledger {}` (scripts/demo --clean), \
             or pass another --ledger",
            l.display()
        )))
    }

    /// Docker and MariaDB answer, before anything is created.
    async fn check_services(&self) -> Result<BollardDocker, DemoError> {
        self.say("checking Docker and MariaDB");
        let docker = BollardDocker::connect().await.map_err(service)?;
        let metadb = MysqlMetaDb::new(&self.target);
        let ping = metadb.ping().await;
        metadb.close().await;
        ping.map_err(|e| {
            service(e).hint(
                "the demo logs in as OMS_DEMO_MYSQL_USER/OMS_DEMO_MYSQL_PASSWORD (default: the \
                 oms_test user `source scripts/services.sh; ensure_services` creates)",
            )
        })?;
        Ok(docker)
    }

    /// Images, databases, host folders, config, the old container (created as the runbook
    /// says, started, `docker_init.sh` fresh, healthy), then the seeded metadata.
    async fn start_old_node(&mut self, docker: &BollardDocker) -> Result<Node, DemoError> {
        let images = self.ensure_demo_images(docker).await?;
        let prefix = self.st.db_prefix();
        let dbs = MetaDatabases {
            rm: format!("{prefix}rm"),
            cm: format!("{prefix}cm"),
            cm_hb: format!("{prefix}hb"),
        };
        self.st.databases = Some(dbs.clone());
        self.st.save()?;
        self.say(&format!(
            "creating databases {}, {}, {} on {}",
            dbs.rm,
            dbs.cm,
            dbs.cm_hb,
            self.target.display_url()
        ));
        let metadb = MysqlMetaDb::new(&self.target);
        let created = create_databases(&metadb, &dbs).await;
        metadb.close().await;
        created?;

        let mut config = OmsConfig::new(&self.target, &dbs);
        config.nginx_server_port = free_port()?;
        let folders = ["logs", "store", "run", "backups"].map(|f| self.st.dir.join(f));
        for d in folders.iter().chain([&self.st.dir.join("conf")]) {
            std::fs::create_dir_all(d)
                .map_err(|e| internal(&format!("create {}", d.display()), e))?;
        }
        config
            .write(&self.st.config)
            .map_err(|e| DemoError::new(ErrorKind::Input, e.to_string()))?;
        let scheme = if self.args.tls { "https" } else { "http" };
        let base_url = format!("{scheme}://127.0.0.1:{}", config.nginx_server_port);
        self.st.health_url = Some(crate::adapters::health::health_url(&base_url));
        self.st.save()?;
        self.say(&format!(
            "wrote {} (nginx_server_port {})",
            self.st.config.display(),
            config.nginx_server_port
        ));

        let mut binds = vec![
            format!(
                "{}:{}",
                self.st.config.display(),
                crate::omsconfig::CONTAINER_CONFIG_PATH
            ),
            format!("{}:/home/admin/logs", folders[0].display()),
            format!("{}:/home/ds/store", folders[1].display()),
            format!("{}:/home/ds/run", folders[2].display()),
        ];
        if self.args.tls {
            binds.extend(self.console_certs()?);
        }
        let labels = [
            (DEMO_LABEL.to_string(), self.st.id.clone()),
            (
                DEMO_DIR_LABEL.to_string(),
                self.st.dir.display().to_string(),
            ),
        ]
        .into();
        let mut spec = ContainerSpec::runbook(
            self.st.container.clone(),
            images[0].reference.clone(),
            binds,
            vec!["OMS_HOST_IP=127.0.0.1".into()],
            labels,
        );
        spec.privileged = self.args.privileged;
        self.say(&format!("$ {}", spec.docker_run_args().join(" ")));
        let id = docker.create(&spec).await.map_err(|e| match e {
            DockerError::PrivilegedRefused { .. } => {
                service(e).hint("run the demo without --privileged: the emulator does not need it")
            }
            e => service(e),
        })?;
        self.st.old_container_id = Some(id);
        self.st.save()?;
        docker
            .start(&self.st.container)
            .await
            .map_err(|e| match e {
                DockerError::PrivilegedRefused { .. } => {
                    DemoError::new(ErrorKind::Service, e.to_string())
                        .hint("run the demo without --privileged: the emulator does not need it")
                }
                e => service(e),
            })?;
        self.say(&format!(
            "$ docker exec {} bash /root/docker_init.sh",
            self.st.container
        ));
        let init = docker
            .exec(
                &self.st.container,
                vec!["bash".into(), "/root/docker_init.sh".into()],
                Vec::new(),
                Some(INIT_TIMEOUT),
            )
            .await
            .map_err(service)?;
        if init.exit_code != 0 || !init.output_tail.contains(crate::steps::INIT_SUCCESS_MARKER) {
            return Err(DemoError::new(
                ErrorKind::Service,
                // Its output may quote the metadata password (the init echoes its mysql
                // command line): masked as the deployment world masks it.
                format!(
                    "docker_init.sh (fresh install) in {} failed with exit code {}:\n{}",
                    self.st.container,
                    init.exit_code,
                    deployment::masked(&init.output_tail, &self.target)
                ),
            )
            .hint(format!("read `docker logs {}`", self.st.container)));
        }
        let health = self.health_client()?;
        health
            .wait_healthy(&base_url, HEALTH_TIMEOUT, Duration::from_millis(200))
            .await
            .map_err(service)?;
        self.st.stage = "node-running".into();
        self.st.save()?;
        self.say(&format!(
            "OMS {} node {} is healthy at {}",
            self.args.from,
            self.st.container,
            crate::adapters::health::health_url(&base_url)
        ));

        // Seeded after the fresh docker_init.sh, not before: init refuses to initialise over
        // databases that already hold a schema (as OMS does without IS_UPGRADE=true).
        let seed = self.seed()?;
        self.st.stage = "seeded".into();
        self.st.save()?;
        Ok(Node { images, seed })
    }

    /// The emulator images of `--from` and `--to` (imported when missing), recorded in
    /// the state file, old first.
    async fn ensure_demo_images(
        &mut self,
        docker: &BollardDocker,
    ) -> Result<Vec<emuimage::ImageRef>, DemoError> {
        self.say(&format!(
            "building the emulator images {} and {} from {}",
            self.args.from,
            self.args.to,
            self.emulator.display()
        ));
        let images = emuimage::ensure_images(
            docker.client(),
            &self.emulator,
            &[self.args.from.as_str(), self.args.to.as_str()],
        )
        .await
        .map_err(service)?;
        for i in &images {
            self.say(&format!(
                "  {} {}",
                i.reference,
                if i.imported {
                    "imported"
                } else {
                    "already present"
                }
            ));
        }
        self.st.images = images.iter().map(|i| i.reference.clone()).collect();
        Ok(images)
    }

    /// `--tls`: a CA and a console certificate for 127.0.0.1 in `<demo>/tls/` (the key
    /// mode 600), and the binds that put them where OMS's nginx reads them.
    fn console_certs(&mut self) -> Result<Vec<String>, DemoError> {
        use std::io::Write;
        let certs = certs::make_console_certs(&["127.0.0.1".into(), "localhost".into()])
            .map_err(|e| internal("console certificate", e))?;
        let dir = self.st.dir.join("tls");
        std::fs::create_dir_all(&dir)
            .map_err(|e| internal(&format!("create {}", dir.display()), e))?;
        let files = [
            ("ca.pem", &certs.ca_pem, 0o644),
            ("oms_server.crt", &certs.cert_pem, 0o644),
            ("oms_server.key", &certs.key_pem, 0o600),
        ];
        for (name, pem, mode) in files {
            let path = dir.join(name);
            crate::safefs::create_new_file(&path, mode)
                .and_then(|mut f| f.write_all(pem.as_bytes()).and_then(|_| f.sync_all()))
                .map_err(|e| internal(&format!("write {}", path.display()), e))?;
        }
        let ca = dir.join("ca.pem");
        self.say(&format!(
            "generated a CA ({}) and a console certificate for 127.0.0.1, mounted at {}",
            ca.display(),
            crate::omsconfig::CONSOLE_CERT_PATH
        ));
        self.st.health_ca = Some(ca);
        self.st.save()?;
        Ok(vec![
            format!(
                "{}:{}:ro",
                dir.join("oms_server.crt").display(),
                crate::omsconfig::CONSOLE_CERT_PATH
            ),
            format!(
                "{}:/etc/pki/nginx/oms_server.key:ro",
                dir.join("oms_server.key").display()
            ),
        ])
    }

    /// The demo's own health client: trusting the generated CA in a `--tls` demo.
    fn health_client(&self) -> Result<HttpHealth, DemoError> {
        match &self.st.health_ca {
            None => HttpHealth::new(),
            Some(ca) => {
                let ca = crate::adapters::health::CaFile::read(ca)
                    .map_err(|e| internal("the demo's CA file", e))?;
                HttpHealth::with_ca(&ca)
            }
        }
        .map_err(|e| internal("HTTP client", e))
    }

    /// `oms_emulator seed` on the host; it reads the password from the config file, so the
    /// password is in no argv.
    fn seed(&self) -> Result<serde_json::Value, DemoError> {
        self.say(&format!(
            "$ {} seed --config {} --size {}",
            self.emulator.display(),
            self.st.config.display(),
            self.args.size
        ));
        let out = std::process::Command::new(&self.emulator)
            .arg("seed")
            .arg("--config")
            .arg(&self.st.config)
            .arg("--size")
            .arg(self.args.size.to_string())
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| internal(&format!("run {}", self.emulator.display()), e))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(DemoError::new(
                ErrorKind::Service,
                format!("seeding the metadata failed ({}): {stdout}", out.status),
            ));
        }
        let summary: serde_json::Value = stdout
            .lines()
            .last()
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_default();
        let rows: u64 = summary["rows"]
            .as_object()
            .map(|m| m.values().filter_map(|v| v.as_u64()).sum())
            .unwrap_or(0);
        self.say(&format!(
            "seeded {} rows ({} bytes of values)",
            rows,
            summary["valueBytes"].as_u64().unwrap_or(0)
        ));
        Ok(summary)
    }

    /// Runs this executable as `oms-upgrade --ledger L [--json] ARGS...`. With --json the
    /// child's stdout is captured (it becomes part of the demo's one JSON object); without,
    /// the user sees the command's own output. stderr always passes through.
    fn oms_upgrade(&self, args: &[&str]) -> Result<ChildRun, DemoError> {
        let exe = std::env::current_exe().map_err(|e| internal("locate this executable", e))?;
        self.say(&format!(
            "$ oms-upgrade --ledger {}{} {}",
            self.st.ledger.display(),
            if self.args.json { " --json" } else { "" },
            args.join(" ")
        ));
        let mut cmd = std::process::Command::new(exe);
        cmd.arg("--ledger").arg(&self.st.ledger);
        if self.args.json {
            cmd.arg("--json");
        }
        // The demo node's password is in its config.yaml; a password meant for a real
        // OMS in the caller's environment must not be used against it.
        cmd.args(args)
            .env_remove(PASSWORD_ENV)
            .env_remove("OMS_UPGRADE_LEDGER")
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .stdout(if self.args.json {
                Stdio::piped()
            } else {
                Stdio::inherit()
            });
        let out = cmd.output().map_err(|e| internal("run oms-upgrade", e))?;
        let json = self
            .args
            .json
            .then(|| {
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .last()
                    .and_then(|l| serde_json::from_str(l).ok())
            })
            .flatten();
        Ok(ChildRun {
            code: out.status.code(),
            json,
        })
    }

    /// A failed child command as the demo's error, with the child's exit kind.
    fn child_failed(&self, what: &str, run: &ChildRun) -> DemoError {
        let detail = run
            .json
            .as_ref()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .map(|m| format!(": {m}"))
            .unwrap_or_else(|| " (its error is printed above)".into());
        DemoError::new(
            ErrorKind::Child(run.code),
            format!(
                "`oms-upgrade {what}` failed with exit code {}{detail}",
                run.code
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "none (killed)".into())
            ),
        )
        .hint(format!(
            "`oms-upgrade --ledger {} status` shows where the upgrade stands",
            self.st.ledger.display()
        ))
    }

    /// `init`, `run --yes`, `ledger verify`, then the summary.
    fn upgrade(
        &mut self,
        rt: &tokio::runtime::Runtime,
        docker: &BollardDocker,
        node: &Node,
    ) -> Result<Outcome, DemoError> {
        let new_image = node.images[1].reference.clone();
        let backups = self.st.dir.join("backups").display().to_string();
        let mut init = vec![
            "init",
            "--container",
            &self.st.container,
            "--image",
            &new_image,
            "--backup-dir",
            &backups,
        ];
        if !self.args.privileged {
            init.push("--no-privileged");
        }
        let ca = self.st.health_ca.as_ref().map(|p| p.display().to_string());
        if let Some(ca) = &ca {
            init.extend(["--health-ca", ca.as_str()]);
        }
        let witness = self.args.witness.as_ref().map(DemoWitness::args);
        if let (Some(w), Some(flags)) = (&self.args.witness, &witness) {
            init.extend(flags.iter().map(String::as_str));
            init.extend(["--witness-policy", w.policy]);
        }
        let r = self.oms_upgrade(&init)?;
        if !r.ok() {
            return Err(self.child_failed("init", &r));
        }
        if self.args.plan_only {
            self.st.stage = "planned".into();
            self.st.save()?;
            return self.planned_summary(node);
        }
        let witnessed = |base: &[&'static str]| -> Vec<String> {
            let mut v: Vec<String> = base.iter().map(|s| s.to_string()).collect();
            v.extend(witness.iter().flatten().cloned());
            v
        };
        let run = witnessed(&["run", "--yes"]);
        let r = self.oms_upgrade(&run.iter().map(String::as_str).collect::<Vec<_>>())?;
        if !r.ok() {
            return Err(self.child_failed("run --yes", &r));
        }
        self.st.stage = "upgraded".into();
        self.st.save()?;
        // The record against the live node: the demo ends proving no drift, not only an
        // intact chain.
        // With a witness, the ledger is also compared with its witness copy.
        let verify = witnessed(&["ledger", "verify", "--live"]);
        let mut verify =
            self.oms_upgrade(&verify.iter().map(String::as_str).collect::<Vec<_>>())?;
        // `--rollback`: every change undone, and the record checked against the world again.
        if self.args.rollback && verify.ok() {
            let rollback = witnessed(&["rollback", "--yes"]);
            let r = self.oms_upgrade(&rollback.iter().map(String::as_str).collect::<Vec<_>>())?;
            if !r.ok() {
                return Err(self.child_failed("rollback --yes", &r));
            }
            self.st.stage = "rolled-back".into();
            self.st.save()?;
            let again = witnessed(&["ledger", "verify", "--live"]);
            verify = self.oms_upgrade(&again.iter().map(String::as_str).collect::<Vec<_>>())?;
        }
        if verify.ok() {
            self.st.stage = "verified".into();
            self.st.save()?;
        }

        let (state, plan) = self.read_back()?;
        let old_id = self.st.old_container_id.clone().unwrap_or_default();
        let (new, old, healthy) = rt.block_on(async {
            let new = docker.inspect(&plan.new_name).await.map_err(service)?;
            let old = docker.inspect(&old_id).await.map_err(service)?;
            let healthy = match &self.st.health_url {
                Some(url) => self
                    .health_client()?
                    .check(url.trim_end_matches("/oms/health"))
                    .await
                    .map(|r| r.healthy)
                    .unwrap_or(false),
                None => false,
            };
            Ok::<_, DemoError>((new, old, healthy))
        })?;
        let container_json = |c: &Option<ContainerInfo>| match c {
            Some(c) => serde_json::json!({
                "name": c.name, "id": c.id, "image": c.image, "running": c.status.is_running(),
            }),
            None => serde_json::Value::Null,
        };
        let downtime = match (state.t1(), state.t2()) {
            (Some(a), Some(b)) => Some((b - a).num_milliseconds() as f64 / 1000.0),
            _ => None,
        };
        let refetch = state.refetch_decision().and_then(|d| d.interval_minutes);
        let ledger = self.st.ledger.display().to_string();
        // The path of this executable: after `scripts/demo` it is not on PATH, and the
        // commands should work when pasted.
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "oms-upgrade".into());
        let mut look = vec![
            format!("{exe} --ledger {ledger} status"),
            format!("{exe} --ledger {ledger} plan"),
            format!("{exe} --ledger {ledger} ledger log"),
            format!("{exe} --ledger {ledger} ledger verify"),
        ];
        if let Some(w) = &self.args.witness {
            look.push(format!(
                "{exe} --ledger {ledger} ledger verify --witness {}",
                w.url
            ));
            look.push(format!("{exe} fleet list --witness {}", w.url));
        }
        look.extend([
            format!("docker ps -a --filter label={DEMO_LABEL}={}", self.st.id),
            format!("{exe} demo --clean --ledger {ledger}"),
        ]);
        let dbs = self.st.databases.clone();
        let verify_ok = verify.ok();
        let summary = self.summary(
            &state,
            &plan,
            node,
            serde_json::json!({
                "ok": verify_ok,
                "containers": {
                    "new": container_json(&new),
                    "old": container_json(&old),
                },
                "healthy": healthy,
                "t1": state.t1(),
                "t2": state.t2(),
                "downtime_seconds": downtime,
                "refetch_minutes": refetch,
                "verify": match &verify.json {
                    Some(v) => v.clone(),
                    None => serde_json::json!({ "ok": verify_ok }),
                },
                "look_around": look,
            }),
        );
        Ok(Outcome::Upgraded(Box::new(Upgraded {
            summary,
            id: self.st.id.clone(),
            from: plan.source_version.to_string(),
            to: plan.target_version.to_string(),
            phase: state.phase().to_string(),
            ledger: self.st.ledger.clone(),
            dir: self.st.dir.clone(),
            config: self.st.config.clone(),
            metadb: self.target.display_url(),
            databases: dbs,
            new,
            old,
            health_url: self.st.health_url.clone(),
            healthy,
            t1: state.t1(),
            t2: state.t2(),
            downtime_seconds: downtime,
            refetch_minutes: refetch,
            look_around: look,
            verify_failure: (!verify_ok).then(|| self.child_failed("ledger verify", &verify)),
        })))
    }
}

impl Demo {
    /// The demo's ledger replayed, and the plan `init` recorded in it.
    fn read_back(&self) -> Result<(crate::replay::State, crate::events::Plan), DemoError> {
        let state = crate::history::load_dir(&self.st.ledger, crate::history::Verify::Chain)
            .map(|h| h.state)
            .map_err(|e| internal("read the demo ledger back", e))?;
        let plan = state.plan().cloned().ok_or_else(|| {
            internal(
                "read the demo ledger back",
                "the ledger holds no plan after `init`",
            )
        })?;
        Ok((state, plan))
    }

    /// The summary's keys every demo has, with `extra`'s (an object) added.
    fn summary(
        &self,
        state: &crate::replay::State,
        plan: &crate::events::Plan,
        node: &Node,
        extra: serde_json::Value,
    ) -> serde_json::Value {
        let mut v = serde_json::json!({
            "demo_id": self.st.id,
            "demo_dir": self.st.dir,
            "state_file": self.st.path(),
            "ledger": self.st.ledger,
            "run_id": plan.run_id.to_string(),
            "from": plan.source_version.to_string(),
            "to": plan.target_version.to_string(),
            "phase": state.phase().to_string(),
            "images": { "old": node.images[0].reference, "new": node.images[1].reference },
            "metadb": self.target.display_url(),
            "databases": self.st.databases,
            "config": self.st.config,
            "backups": plan.dump_dir(),
            "health_url": self.st.health_url,
            "seed": {
                "value_bytes": node.seed["valueBytes"],
                "rows": node.seed["rows"],
            },
        });
        if let (Some(m), serde_json::Value::Object(e)) = (v.as_object_mut(), extra) {
            m.extend(e);
        }
        v
    }

    /// `--plan-only`: the node and the recorded plan, and the commands to drive them.
    fn planned_summary(&self, node: &Node) -> Result<Outcome, DemoError> {
        let (state, plan) = self.read_back()?;
        let commands = planned_commands(&self.st.ledger);
        let summary = self.summary(
            &state,
            &plan,
            node,
            serde_json::json!({
                "ok": true,
                "plan_only": true,
                "container": { "name": self.st.container, "id": self.st.old_container_id },
                "new_name": plan.new_name,
                "logs": self.st.dir.join("logs"),
                "commands": commands.iter().map(|(k, _, c)| (k.to_string(), serde_json::json!(c)))
                    .collect::<serde_json::Map<_, _>>(),
            }),
        );
        Ok(Outcome::Planned(Box::new(Planned {
            summary,
            id: self.st.id.clone(),
            container: self.st.container.clone(),
            old_image: node.images[0].reference.clone(),
            from: plan.source_version.to_string(),
            to: plan.target_version.to_string(),
            ledger: self.st.ledger.clone(),
            commands,
        })))
    }
}

/// The commands `--plan-only` prints, as (key, what it does, command line). The node's
/// password is in its config.yaml, so a password meant for a real OMS in the caller's
/// environment is removed from the commands that reach the metadata DB, as the demo does
/// for its own children.
fn planned_commands(ledger: &Path) -> Vec<(&'static str, &'static str, String)> {
    // The path of this executable: after `scripts/demo` it is not on PATH.
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "oms-upgrade".into());
    let l = shell_quote(&ledger.display().to_string());
    let exe = shell_quote(&exe);
    let tool = format!("env -u {PASSWORD_ENV} {exe} --ledger {l}");
    vec![
        (
            "status",
            "where the run stands",
            format!("{exe} --ledger {l} status"),
        ),
        (
            "plan",
            "each step's exact commands and SQL",
            format!("{exe} --ledger {l} plan"),
        ),
        (
            "run",
            "upgrade (resumes after a kill)",
            format!("{tool} run --yes"),
        ),
        (
            "kill",
            "upgrade in the background and SIGKILL it after 3 s (then `run` again resumes)",
            format!("{tool} run --yes & sleep 3; kill -9 $!"),
        ),
        (
            "rollback",
            "roll back (resumes after a kill too)",
            format!("{tool} rollback --yes"),
        ),
        (
            "verify",
            "the hash chain",
            format!("{exe} --ledger {l} ledger verify"),
        ),
        (
            "verify_artifacts",
            "the hash chain and every dump file",
            format!("{exe} --ledger {l} ledger verify --artifacts"),
        ),
        (
            "verify_live",
            "the recorded end state against the live node",
            format!("{tool} ledger verify --live"),
        ),
        (
            "clean",
            "remove the demo",
            format!("{exe} demo --clean --ledger {l}"),
        ),
    ]
}

/// `s` as one bash word (single-quoted unless it is plainly safe).
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Creates the three databases (utf8mb4), refusing names that already exist.
async fn create_databases(metadb: &MysqlMetaDb, dbs: &MetaDatabases) -> Result<(), DemoError> {
    let charset = DbCharset {
        charset: "utf8mb4".into(),
        collation: "utf8mb4_bin".into(),
    };
    for d in dbs.all() {
        if metadb.database_exists(d).await.map_err(service)? {
            return Err(DemoError::new(
                ErrorKind::Refused,
                format!("database `{d}` already exists; the demo only uses databases it creates"),
            ));
        }
        metadb
            .recreate_database(d, &charset)
            .await
            .map_err(service)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// demo --clean

/// What `--clean` removed, and what it left with a reason.
#[derive(Debug, Default, Serialize)]
pub struct Cleaned {
    /// Containers removed.
    pub containers: Vec<String>,
    /// Databases dropped.
    pub databases: Vec<String>,
    /// Folders removed (demo folders, ledgers, an emptied default root).
    pub folders: Vec<PathBuf>,
    /// Files removed (a ledger's signed checkpoint).
    pub files: Vec<PathBuf>,
    /// What was kept or could not be removed, each with why.
    pub warnings: Vec<String>,
}

/// One demo `--clean` removes, as listed before anything is removed.
#[derive(Debug, Serialize)]
pub struct Listed {
    /// The demo id.
    pub id: String,
    /// Its folder.
    pub dir: PathBuf,
    /// Its ledger.
    pub ledger: PathBuf,
    /// How far it got (`setup` ... `verified`).
    pub stage: String,
    /// Its labelled containers (`oms-upgrade.demo=<id>`).
    pub containers: Vec<String>,
    /// The databases its state file names.
    pub databases: Vec<String>,
}

/// Which demos `--clean` removes.
enum Scope {
    /// The one whose state file records this ledger (absolute).
    Ledger(PathBuf),
    /// Every demo found, and every labelled container.
    All,
}

/// What `--clean` found and did: the demos and containers listed before anything was
/// removed, and what was removed (nothing with `dry_run`) or kept with a reason.
#[derive(Debug, Serialize)]
pub struct CleanReport {
    /// What was removed, and the warnings: each thing kept, with why.
    #[serde(flatten)]
    pub done: Cleaned,
    /// Nothing was removed, only listed.
    pub dry_run: bool,
    /// The demos in scope.
    pub demos: Vec<Listed>,
    /// Labelled containers whose demo folder is gone (`name (demo id)`).
    pub orphan_containers: Vec<String>,
    /// How many containers were (or would be) removed.
    #[serde(skip)]
    pub doomed: usize,
}

/// `demo --clean`: removes the demo of `opts.ledger`, or every demo with `opts.all`.
/// Something it could not remove is a warning in the report, not an error; an error means
/// nothing more could be done (Docker unreachable, no demo records the ledger).
pub fn clean(opts: &CleanOptions) -> Result<CleanReport, DemoError> {
    let progress = opts.progress;
    let scope = match (opts.all, opts.ledger.clone()) {
        (true, _) => Scope::All,
        (false, Some(l)) => Scope::Ledger(l),
        (false, None) => {
            return Err(DemoError::new(
                ErrorKind::Input,
                "demo --clean removes one demo: name it by its ledger with --ledger DIR (the \
                 ledger the demo printed), or pass --all for every demo on this machine",
            )
            .hint(
                "`oms-upgrade demo --clean --all --dry-run` lists every demo and what would be \
                 removed, removing nothing",
            ));
        }
    };
    let root = demo_root(opts.ledger.as_deref());
    let rt = runtime()?;
    let docker = rt.block_on(BollardDocker::connect()).map_err(service)?;
    let mut done = Cleaned::default();

    // Candidate demo folders: those under the root, the ledger's own folder (a demo run
    // without --ledger keeps its ledger inside its folder), and those any demo container
    // points to (a demo started from another working directory).
    let mut dirs = BTreeSet::new();
    if let Ok(rd) = std::fs::read_dir(&root) {
        for e in rd.flatten() {
            if e.path().join(STATE_FILE).is_file() {
                dirs.insert(e.path());
            }
        }
    }
    if let Scope::Ledger(l) = &scope
        && let Some(parent) = l.parent()
        && parent.join(STATE_FILE).is_file()
    {
        dirs.insert(parent.to_path_buf());
    }
    let containers = rt
        .block_on(docker.find_by_label(DEMO_LABEL, None))
        .map_err(service)?;
    for c in &containers {
        if let Some(d) = c.labels.get(DEMO_DIR_LABEL) {
            dirs.insert(PathBuf::from(d));
        }
    }

    // The demos in scope, each checked to be what its folder says.
    let mut demos: Vec<DemoState> = Vec::new();
    for dir in dirs {
        let st = match DemoState::load(&dir) {
            Ok(st) => st,
            Err(e) => {
                if dir.exists() && matches!(scope, Scope::All) {
                    done.warnings.push(format!("kept {}: {e}", dir.display()));
                }
                continue;
            }
        };
        if let Scope::Ledger(l) = &scope
            && absolute(&st.ledger) != *l
        {
            continue;
        }
        if dir.file_name().and_then(|n| n.to_str()) != Some(st.id.as_str()) {
            done.warnings.push(format!(
                "kept {}: its state file names demo {}, not this folder",
                dir.display(),
                st.id
            ));
            continue;
        }
        demos.push(st);
    }
    if let Scope::Ledger(l) = &scope
        && demos.is_empty()
        && done.warnings.is_empty()
    {
        return Err(DemoError::new(
            ErrorKind::Input,
            format!(
                "no demo records the ledger {} (looked for {STATE_FILE} in {} and its subfolders, and in the folders demo containers name); nothing was removed",
                l.display(),
                root.display()
            ),
        )
        .hint("`oms-upgrade demo --clean --all --dry-run` lists every demo on this machine"));
    }
    let ids: BTreeSet<&str> = demos.iter().map(|d| d.id.as_str()).collect();
    let label_of = |c: &ContainerInfo| c.labels.get(DEMO_LABEL).cloned().unwrap_or_default();
    // Containers of the demos in scope; with --all also those whose demo has no folder left.
    let doomed: Vec<&ContainerInfo> = containers
        .iter()
        .filter(|c| matches!(scope, Scope::All) || ids.contains(label_of(c).as_str()))
        .collect();

    // The list, before anything is removed.
    let listed: Vec<Listed> = demos
        .iter()
        .map(|st| Listed {
            id: st.id.clone(),
            dir: st.dir.clone(),
            ledger: st.ledger.clone(),
            stage: st.stage.clone(),
            containers: doomed
                .iter()
                .filter(|c| label_of(c) == st.id)
                .map(|c| c.name.clone())
                .collect(),
            databases: st
                .databases
                .as_ref()
                .map(|d| d.all().iter().map(|s| s.to_string()).collect())
                .unwrap_or_default(),
        })
        .collect();
    let orphans: Vec<String> = doomed
        .iter()
        .filter(|c| !ids.contains(label_of(c).as_str()))
        .map(|c| format!("{} (demo {})", c.name, label_of(c)))
        .collect();
    let verb = if opts.dry_run {
        "would remove"
    } else {
        "removing"
    };
    for d in &listed {
        progress(&format!(
            "{verb} demo {} ({}): folder {}, ledger {}, containers [{}], databases [{}]",
            d.id,
            d.stage,
            d.dir.display(),
            d.ledger.display(),
            d.containers.join(", "),
            d.databases.join(", ")
        ));
    }
    for o in &orphans {
        progress(&format!("{verb} container {o}, whose demo folder is gone"));
    }

    if !opts.dry_run {
        // Containers first, so nothing writes into the databases or folders being removed.
        for c in &doomed {
            progress(&format!(
                "removing container {} ({})",
                c.name,
                &c.id[..12.min(c.id.len())]
            ));
            rt.block_on(docker.remove(&c.id, true)).map_err(service)?;
            done.containers.push(c.name.clone());
        }
        for st in &demos {
            rt.block_on(drop_databases(st, &mut done, progress));
            remove_ledger(st, &mut done, progress);
            progress(&format!("removing folder {}", st.dir.display()));
            match std::fs::remove_dir_all(&st.dir) {
                Ok(()) => done.folders.push(st.dir.clone()),
                Err(e) => done.warnings.push(format!(
                    "cannot remove {}: {e} (files written by the containers belong to root: `sudo rm -rf {}`)",
                    st.dir.display(),
                    st.dir.display()
                )),
            }
        }
        // A default root (`oms-upgrade-demo`, here or where a removed demo lived) only ever
        // holds demos: drop it once empty.
        let mut roots: BTreeSet<PathBuf> = done
            .folders
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .collect();
        roots.insert(root);
        for r in roots {
            if r.file_name().and_then(|n| n.to_str()) == Some(DEFAULT_DEMO_ROOT)
                && std::fs::read_dir(&r).is_ok_and(|mut d| d.next().is_none())
                && std::fs::remove_dir(&r).is_ok()
            {
                done.folders.push(r);
            }
        }
    }

    Ok(CleanReport {
        done,
        dry_run: opts.dry_run,
        demos: listed,
        orphan_containers: orphans,
        doomed: doomed.len(),
    })
}

/// Drops the demo's databases: only names carrying its id, on the server it recorded,
/// logging in with the password from its config.yaml (else the demo defaults).
async fn drop_databases(st: &DemoState, done: &mut Cleaned, progress: Progress) {
    let Some(dbs) = &st.databases else { return };
    let prefix = st.db_prefix();
    let password = OmsConfig::load(&st.config)
        .map(|c| c.oms_meta_password)
        .or_else(|_| demo_target().map(|t| t.password))
        .unwrap_or_default();
    let target = DbTarget {
        host: st.metadb.host.clone(),
        port: st.metadb.port,
        user: st.metadb.user.clone(),
        password,
        tls: crate::dbconn::TlsSettings::off(),
    };
    let pool = mysql_async::Pool::new(target.opts(None));
    let result = async {
        use mysql_async::prelude::Queryable;
        let mut c = pool.get_conn().await?;
        for d in dbs
            .all()
            .into_iter()
            .chain(st.extra_databases.iter().map(String::as_str))
        {
            let safe = d.starts_with(&prefix)
                && d.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !safe {
                done.warnings.push(format!(
                    "kept database `{d}`: not a name demo {} creates",
                    st.id
                ));
                continue;
            }
            progress(&format!("dropping database {d}"));
            c.query_drop(format!("DROP DATABASE IF EXISTS `{d}`"))
                .await?;
            done.databases.push(d.to_string());
        }
        Ok::<_, mysql_async::Error>(())
    }
    .await;
    if let Err(e) = result {
        done.warnings.push(format!(
            "cannot drop the databases of demo {} on {}: {e}",
            st.id,
            target.display_url()
        ));
    }
    let _ = pool.disconnect().await;
}

/// Removes the demo's ledger when it lives outside the demo folder, after checking that it
/// records this demo's upgrade (or no upgrade at all: `init` never succeeded).
fn remove_ledger(st: &DemoState, done: &mut Cleaned, progress: Progress) {
    let l = &st.ledger;
    if l.starts_with(&st.dir) || !l.is_dir() {
        return;
    }
    let ours = match crate::history::load_dir(l, crate::history::Verify::Chain) {
        Ok(h) => h
            .state
            .plan()
            .is_none_or(|p| p.old_container.name == st.container),
        Err(e) => {
            done.warnings
                .push(format!("kept ledger {}: cannot read it ({e})", l.display()));
            return;
        }
    };
    if !ours {
        done.warnings.push(format!(
            "kept ledger {}: it records another upgrade than demo {}",
            l.display(),
            st.id
        ));
        return;
    }
    progress(&format!("removing ledger {}", l.display()));
    match std::fs::remove_dir_all(l) {
        Ok(()) => done.folders.push(l.clone()),
        Err(e) => {
            done.warnings
                .push(format!("cannot remove ledger {}: {e}", l.display()));
            return;
        }
    }
    // `run` writes a signed checkpoint beside the ledger when a signing key is configured.
    let checkpoint = crate::ledger::sign::signed_checkpoint_path(l);
    if checkpoint.is_file() {
        match std::fs::remove_file(&checkpoint) {
            Ok(()) => done.files.push(checkpoint),
            Err(e) => done
                .warnings
                .push(format!("cannot remove {}: {e}", checkpoint.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_carry_the_id() {
        assert_eq!(
            db_prefix("20260101-120000-ab12"),
            "oms_demo_20260101_120000_ab12_"
        );
    }

    #[test]
    fn demo_folders_are_next_to_the_given_ledger() {
        assert!(demo_root(None).ends_with(DEFAULT_DEMO_ROOT));
        assert_eq!(
            demo_root(Some(Path::new("/tmp/x/ledger"))),
            PathBuf::from("/tmp/x")
        );
    }
}
