//! What the upgrade end-to-end tests share: running the `oms-upgrade` binary as a user
//! would (per-test ledger, fixed identity), reading the ledger back through the library's
//! replay, and capturing the *end state* of a node (Docker, databases, `ha.config`, ledger)
//! in a form that two different nodes can be compared by: per-test names and paths are
//! replaced with placeholders.
//!
//! Everything here talks to the real Docker engine and MariaDB; nothing is mocked.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use futures_util::StreamExt;
use oms_upgrade::adapters::{BollardDocker, ContainerInfo, Docker};
use oms_upgrade::dump;
use oms_upgrade::events::{Finding, MetaDb, Recorded, StepFacts, StepKey};
use oms_upgrade::history::{self, Verify};
use oms_upgrade::omsconfig::MetaDatabases;
use oms_upgrade::replay::{Outcome, State};
use oms_upgrade::steps::labels;

use super::emulator::{self as emu, OmsNode};
use super::mysql_target;

/// The binary under test: `OMS_UPGRADE_TEST_BIN` when set (e.g. an installed or copied
/// build), else the one cargo built for this test run.
pub fn bin() -> PathBuf {
    match std::env::var_os("OMS_UPGRADE_TEST_BIN") {
        Some(p) => PathBuf::from(p),
        None => assert_cmd::cargo::cargo_bin("oms-upgrade"),
    }
}

/// Fails loudly unless the binary under test has the fault-injection points compiled in.
pub fn require_failpoints() {
    use std::os::unix::process::ExitStatusExt;
    let out = std::process::Command::new(bin())
        .env("FAILPOINTS", "startup=return")
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "{} was built without the `failpoints` feature; run the crash tests with \
         `scripts/test` or `cargo test --features failpoints --test upgrade_crash`",
        bin().display()
    );
}

/// The binary with a per-test ledger and a fixed identity; no password in the environment
/// (the tool reads it from the config.yaml the old container mounts).
pub fn cli(ledger: &Path) -> Command {
    let mut c = Command::new(bin());
    c.env("OMS_UPGRADE_LEDGER", ledger)
        .env("OMS_UPGRADE_OPERATOR", "tester")
        .env("OMS_UPGRADE_HOST", "ci-host")
        .env_remove("OMS_META_PASSWORD")
        .env_remove("FAILPOINTS");
    c
}

/// The last line of `out` parsed as JSON (commands print one JSON object with `--json`).
pub fn json_of(out: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(out);
    let last = text.lines().last().unwrap_or("");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// stdout and stderr of a finished command, for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd`, asserts it succeeded, returns its output.
pub fn ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "command failed: {cmd:?}\n{}",
        show(&out)
    );
    out
}

/// Runs `cmd` to its end on a blocking thread, so other runs in the same test (joined
/// futures) go on meanwhile.
pub async fn output(cmd: &mut Command) -> Output {
    let mut cmd = std::mem::replace(cmd, Command::new("true"));
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// The 3.3.1 image (built from the emulator if needed) under a tag of this node's own,
/// [`emu::pinned_reference`]: the shared `oms-emu/oms:feature_3.3.1_ce` is re-pointed
/// whenever another build of the emulator imports its image, and a plan holds `run` to the
/// image id `init` saw. The node's guard removes the tag.
pub async fn new_image(node: &OmsNode) -> String {
    let img = emu::images(&node.docker, &[emu::NEW_VERSION])
        .await
        .remove(0);
    let reference = emu::pinned_reference(&node.guard.value, emu::NEW_VERSION);
    let (repo, tag) = reference.rsplit_once(':').unwrap();
    let opts = bollard::query_parameters::TagImageOptionsBuilder::default()
        .repo(repo)
        .tag(tag)
        .build();
    node.docker
        .tag_image(&img.id, Some(opts))
        .await
        .unwrap_or_else(|e| panic!("docker tag {} {reference}: {e}", img.id));
    reference
}

/// `init`'s arguments for `node`: short timeouts, dumps under `backups`, no privileged
/// container (this engine refuses it). `overrides` replace a flag's value or add a flag.
pub async fn init_args(node: &OmsNode, backups: &Path, overrides: &[(&str, &str)]) -> Vec<String> {
    let image = new_image(node).await;
    let mut flags: Vec<(String, Option<String>)> = vec![
        ("--container".into(), Some(node.name.clone())),
        ("--image".into(), Some(image)),
        ("--no-privileged".into(), None),
        ("--backup-dir".into(), Some(backups.display().to_string())),
        ("--health-timeout".into(), Some("60".into())),
        ("--stop-timeout".into(), Some("10".into())),
    ];
    for (k, v) in overrides {
        match flags.iter_mut().find(|(f, _)| f == k) {
            Some(slot) => slot.1 = Some(v.to_string()),
            None => flags.push((k.to_string(), Some(v.to_string()))),
        }
    }
    let mut args = vec!["init".to_string()];
    for (f, v) in flags {
        args.push(f);
        args.extend(v);
    }
    args
}

/// `init --json` for `node` (see [`init_args`]).
pub async fn init_cmd(node: &OmsNode, ledger: &Path, backups: &Path) -> Command {
    let mut c = cli(ledger);
    c.arg("--json").args(init_args(node, backups, &[]).await);
    c
}

/// `init` that must succeed.
pub async fn init(node: &OmsNode, ledger: &Path, backups: &Path) {
    ok(&mut init_cmd(node, ledger, backups).await);
}

/// A node with its own temp folder holding the ledger and the backups.
pub struct Run {
    /// The node (dropped after the folder's users).
    pub node: OmsNode,
    /// Temp folder (ledger, backups): removed on drop, kept when the test failed.
    pub tmp: PathBuf,
}

impl Drop for Run {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "test failed: keeping ledger and dumps in {} for inspection",
                self.tmp.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

impl Run {
    /// A fresh 3.3.0 node with a planned upgrade to 3.3.1.
    pub async fn planned() -> Run {
        Self::planned_seeded(None).await
    }

    /// Like [`Run::planned`], with the metadata seeded with `size` of realistic rows
    /// (the awkward rows included) before the plan.
    pub async fn planned_seeded(size: Option<&str>) -> Run {
        let node = emu::start_old_oms().await;
        if let Some(size) = size {
            emu::seed(&node.host.config_path, size);
        }
        Run::planned_on(node).await
    }

    /// A planned upgrade of `node` (prepared by the caller), in a fresh temp folder.
    pub async fn planned_on(node: OmsNode) -> Run {
        let run = Run::unplanned(node);
        init(&run.node, &run.ledger(), &run.backups()).await;
        run
    }

    /// `node` with a fresh temp folder and no plan yet (the caller runs its own `init`).
    pub fn unplanned(node: OmsNode) -> Run {
        let tmp = tempfile::Builder::new()
            .prefix("oms-upgrade-run-")
            .tempdir()
            .unwrap()
            .keep();
        Run { node, tmp }
    }

    /// The ledger folder.
    pub fn ledger(&self) -> PathBuf {
        self.tmp.join("ledger")
    }

    /// Where dumps go (a subfolder per run is created inside).
    pub fn backups(&self) -> PathBuf {
        self.tmp.join("backups")
    }

    /// The binary on this run's ledger.
    pub fn cli(&self) -> Command {
        cli(&self.ledger())
    }

    /// Starts the binary on this run's ledger with `args` (no stdin or stdout; stderr
    /// piped), for a test that kills it while it works.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        std::process::Command::new(bin())
            .env("OMS_UPGRADE_LEDGER", self.ledger())
            .env("OMS_UPGRADE_OPERATOR", "tester")
            .env("OMS_UPGRADE_HOST", "ci-host")
            .env_remove("OMS_META_PASSWORD")
            .env_remove("FAILPOINTS")
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// The command ran to its end successfully (else panics with its output and the log).
    pub async fn ok(&self, args: &[&str]) -> Output {
        let out = output(self.cli().args(args)).await;
        if !out.status.success() {
            panic!(
                "oms-upgrade {args:?} failed:\n{}\nold container log:\n{}",
                show(&out),
                self.node.logs().await
            );
        }
        out
    }

    /// `status --json`.
    pub fn status(&self) -> serde_json::Value {
        json_of(&ok(self.cli().args(["--json", "status"])).stdout)
    }

    /// The ledger replayed by the library (read-only).
    pub fn replay(&self) -> (Vec<Recorded>, State) {
        let h = history::load_dir(&self.ledger(), Verify::Chain)
            .unwrap_or_else(|e| panic!("replay the ledger: {e}"));
        (h.records, h.state)
    }

    /// The decoded payload of the last `step.failed` record, from `ledger export` (what an
    /// auditor reads, not the library's replay).
    pub fn last_step_failed(&self) -> serde_json::Value {
        let out = ok(self.cli().args(["ledger", "export"]));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .rev()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|l| l["decoded"]["event_type"] == "step.failed")
            .map(|l| l["decoded"]["payload"].clone())
            .unwrap_or_else(|| panic!("no step.failed record in the ledger"))
    }

    /// `ledger verify` passes.
    pub fn verify_ledger(&self) {
        let out = ok(self.cli().args(["--json", "ledger", "verify"]));
        let v = json_of(&out.stdout);
        assert_eq!(v["ok"], true, "ledger verify: {v}");
    }

    /// The docker adapter over the node's client.
    pub fn docker(&self) -> BollardDocker {
        BollardDocker::from_client(self.node.docker.clone())
    }

    /// Containers labelled with this run's id (the new container, whatever its name).
    pub async fn run_containers(&self) -> Vec<ContainerInfo> {
        let run_id = self.replay().1.run_id().expect("run planned").to_string();
        self.docker()
            .find_by_label(labels::RUN_ID, Some(&run_id))
            .await
            .unwrap()
    }

    /// The run's dump folder (`<backups>/<run id>`), and the files in it, sorted.
    pub fn dump_files(&self) -> Vec<PathBuf> {
        let dir = self.replay().1.plan().expect("run planned").dump_dir();
        let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("read {dir}: {e}"))
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    }

    /// Exactly one dump file per database, each with the recorded BLAKE3, nothing else in
    /// the dump folder (no `.part` left over, no second copy).
    pub fn assert_dumps_once(&self) {
        let (_, state) = self.replay();
        let files = self.dump_files();
        let recorded: Vec<PathBuf> = state
            .artifacts()
            .iter()
            .map(|a| PathBuf::from(&a.file))
            .collect();
        let mut want = recorded.clone();
        want.sort();
        assert_eq!(
            files, want,
            "dump folder must hold exactly the recorded dumps"
        );
        for a in state.artifacts() {
            let bytes = std::fs::read(&a.file).unwrap();
            assert_eq!(
                blake3::hash(&bytes).to_hex().to_string(),
                a.blake3_hex,
                "{} no longer has its recorded checksum",
                a.file
            );
        }
        assert_eq!(state.artifacts().len(), 3);
    }

    /// The databases' per-table facts now, for one database, taken with the checksum
    /// method the ledger recorded for its dump (so the two compare).
    pub async fn db_facts(&self, db: MetaDb) -> Vec<TableRow> {
        let (_, state) = self.replay();
        let method = state
            .artifact(db)
            .and_then(|a| a.tables.first())
            .map(|t| t.method);
        db_facts(&self.node.databases(), db, method).await
    }

    /// The per-table facts the ledger recorded for `db`'s dump (taken with OMS stopped).
    pub fn dumped_facts(&self, db: MetaDb) -> Vec<TableRow> {
        let (_, state) = self.replay();
        let a = state
            .artifact(db)
            .unwrap_or_else(|| panic!("no dump of {db} recorded"));
        a.tables
            .iter()
            .map(|t| TableRow {
                name: t.name.clone(),
                rows: t.rows,
                checksum: t.checksum.clone(),
            })
            .collect()
    }

    /// `ha.config` as stored now.
    pub async fn ha_config(&self) -> serde_json::Value {
        ha_config(&self.node.databases()).await
    }

    /// The end state, normalised (see [`EndState`]).
    pub async fn end_state(&self) -> EndState {
        end_state(self).await
    }
}

/// One table's row count and checksum.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableRow {
    /// Table name.
    pub name: String,
    /// Rows.
    pub rows: u64,
    /// Checksum text.
    pub checksum: String,
}

/// Per-table facts of one of the node's databases, as the backup engine computes them
/// (with `method`, or the engine's default).
pub async fn db_facts(
    dbs: &MetaDatabases,
    db: MetaDb,
    method: Option<dump::ChecksumMethod>,
) -> Vec<TableRow> {
    let name = match db {
        MetaDb::Rm => &dbs.rm,
        MetaDb::Cm => &dbs.cm,
        MetaDb::CmHb => &dbs.cm_hb,
    };
    let target = mysql_target();
    match method {
        Some(m) => dump::table_facts_with(&target, name, m).await,
        None => dump::table_facts(&target, name).await,
    }
    .unwrap_or_else(|e| panic!("table facts of {name}: {e}"))
    .into_iter()
    .map(|t| TableRow {
        name: t.name,
        rows: t.rows,
        checksum: t.checksum,
    })
    .collect()
}

/// Every column of every table of `database` (table, column, type, nullability, default),
/// sorted: a schema change that row facts of an empty table would not show.
pub async fn schema_columns(
    database: &str,
) -> Vec<(String, String, String, String, Option<String>)> {
    use mysql_async::prelude::Queryable;
    let pool = super::mysql_pool().await;
    let mut c = pool.get_conn().await.expect("connection");
    let rows: Vec<(String, String, String, String, Option<String>)> = c
        .exec(
            "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? \
             ORDER BY TABLE_NAME, COLUMN_NAME",
            (database,),
        )
        .await
        .unwrap_or_else(|e| panic!("columns of {database}: {e}"));
    drop(c);
    pool.disconnect().await.ok();
    rows
}

/// `ha.config` of a node's rm database, parsed.
pub async fn ha_config(dbs: &MetaDatabases) -> serde_json::Value {
    let text = emu::scalar_text(&format!(
        "select cfg_value from `{}`.oms_normal_config where cfg_name='ha.config'",
        dbs.rm
    ))
    .await
    .expect("ha.config row");
    serde_json::from_str(&text).unwrap()
}

/// A container as the end-state comparison sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ContainerView {
    /// Name, with the node's name replaced by `<node>`.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Binds, with the host folder replaced by `<host>`.
    pub binds: Vec<String>,
    /// `OMS_HOST_IP` and `IS_UPGRADE` (the env the tool sets).
    pub env: Vec<String>,
    /// Running.
    pub running: bool,
    /// `old` (the node's original container) or `new` (created by the run).
    pub role: &'static str,
}

/// How often each step was attempted and how the attempts ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Intent records.
    pub intents: u32,
    /// `step.done`.
    pub done: u32,
    /// `step.reconciled` finding the step done.
    pub reconciled_done: u32,
    /// `step.reconciled` finding it not done (it ran again).
    pub reconciled_not_done: u32,
    /// `step.failed` or reconciled as failed.
    pub failed: u32,
    /// Reconciled as undecided (an operator's decision needed, issue 12.1).
    pub undecided: u32,
}

/// Per step key: its attempts.
pub fn tally(state: &State) -> BTreeMap<String, Tally> {
    let mut m: BTreeMap<String, Tally> = BTreeMap::new();
    for a in state.attempts() {
        let t = m.entry(a.key.to_string()).or_default();
        t.intents += 1;
        match &a.outcome {
            Some(Outcome::Done { .. }) => t.done += 1,
            Some(Outcome::Reconciled { finding, .. }) => match finding {
                Finding::Done(_) => t.reconciled_done += 1,
                Finding::NotDone => t.reconciled_not_done += 1,
                Finding::Failed { .. } => t.failed += 1,
                Finding::Undecided { .. } => t.undecided += 1,
            },
            Some(Outcome::Failed { .. }) => t.failed += 1,
            None => panic!("step {} is still in doubt", a.key),
        }
    }
    m
}

/// What must be the same after an uninterrupted run and after a crashed-and-resumed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndState {
    /// `status` phase.
    pub phase: String,
    /// The node's containers (old and new), sorted.
    pub containers: Vec<ContainerView>,
    /// `oms_schema_version`.
    pub schema_version: Option<String>,
    /// `ha.config` without `refetchStoreIntervalMin` (its value depends on how long the
    /// run took; [`assert_refetch_covers`] checks it).
    pub ha: serde_json::Value,
    /// Steps that succeeded, in order (each exactly once).
    pub steps_succeeded: Vec<String>,
    /// Names of the dump files (the folder is per run).
    pub dump_names: Vec<String>,
}

async fn end_state(run: &Run) -> EndState {
    let (_, state) = run.replay();
    let node = &run.node;
    let host = node.host.dir.display().to_string();
    let docker = run.docker();
    let mut containers = Vec::new();
    let mut ids = vec![(node.id.clone(), "old")];
    for c in run.run_containers().await {
        ids.push((c.id, "new"));
    }
    for (id, role) in ids {
        let c = docker
            .inspect(&id)
            .await
            .unwrap()
            .expect("container exists");
        let mut env: Vec<String> = c
            .env
            .iter()
            .filter(|e| e.starts_with("OMS_HOST_IP=") || e.starts_with("IS_UPGRADE="))
            .cloned()
            .collect();
        env.sort();
        containers.push(ContainerView {
            name: c.name.replace(&node.name, "<node>"),
            // The new image's tag is the node's own (see [`new_image`]).
            image: c
                .image
                .replace(&node.guard.value.replace('_', "-"), "<node>"),
            binds: c.binds.iter().map(|b| b.replace(&host, "<host>")).collect(),
            env,
            running: c.status.is_running(),
            role,
        });
    }
    containers.sort();
    let mut ha = run.ha_config().await;
    ha.as_object_mut()
        .unwrap()
        .remove("refetchStoreIntervalMin");
    let mut steps_succeeded = Vec::new();
    for a in state.attempts() {
        if a.outcome.as_ref().and_then(|o| o.done_facts()).is_some() {
            steps_succeeded.push(a.key.to_string());
        }
    }
    EndState {
        phase: run.status()["phase"].as_str().unwrap().to_string(),
        containers,
        schema_version: emu::schema_version(&node.databases()).await,
        ha,
        steps_succeeded,
        dump_names: run
            .dump_files()
            .iter()
            .map(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .replace(&node.databases().rm, "<rm>")
                    .replace(&node.databases().cm_hb, "<cm_hb>")
                    .replace(&node.databases().cm, "<cm>")
            })
            .collect(),
    }
}

/// `refetchStoreIntervalMin` as stored covers the downtime from T1 to when HA was last
/// switched on (the upgrade's `enable-ha`, or the rollback's when there was one).
pub async fn assert_refetch_covers(run: &Run) {
    let (_, state) = run.replay();
    let t1 = state.t1().expect("T1 recorded");
    let key = if state.rollback().is_some() {
        StepKey::RollbackEnableHa
    } else {
        StepKey::EnableHa
    };
    let Some(StepFacts::HaEnabled(h)) = state.facts(key) else {
        panic!("{key} has no HA facts")
    };
    let ha = run.ha_config().await;
    assert_eq!(ha["enable"], true, "{ha}");
    let refetch = ha["refetchStoreIntervalMin"].as_i64().unwrap();
    let window = (h.enabled_at - t1).num_seconds();
    assert!(
        refetch * 60 >= window,
        "refetchStoreIntervalMin {refetch} does not cover T1 {t1} .. HA on {} ({window} s)",
        h.enabled_at
    );
    let stored: serde_json::Value = serde_json::from_str(&h.written_json).unwrap();
    assert_eq!(
        stored, ha,
        "the stored ha.config is the one the ledger recorded"
    );
}

/// Docker's container events for one test's containers (old and new: the new container
/// inherits the old one's labels), collected live from the moment of [`EventWatch::start`].
/// Live, because the engine replays only its last few hundred events to a `since` query
/// and other tests share the engine.
pub struct EventWatch {
    events: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl EventWatch {
    /// Starts collecting events of containers labelled with `node`'s test label.
    pub async fn start(node: &OmsNode) -> EventWatch {
        use bollard::query_parameters::EventsOptions;
        let filters = HashMap::from([
            (
                "label".to_string(),
                vec![format!("{}={}", super::TEST_LABEL, node.guard.value)],
            ),
            ("type".to_string(), vec!["container".to_string()]),
        ]);
        // A second of replay closes the race between subscribing and the first action;
        // what happened before this call is filtered out by time.
        let start = chrono::Utc::now();
        let start_nanos = start.timestamp_nanos_opt().unwrap();
        let since = start.timestamp() - 1;
        let opts = EventsOptions {
            since: Some(since.to_string()),
            until: None,
            filters: Some(filters),
        };
        let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = events.clone();
        let docker = node.docker.clone();
        let task = tokio::spawn(async move {
            let mut s = docker.events(Some(opts));
            while let Some(Ok(ev)) = s.next().await {
                if ev.time_nano.unwrap_or(0) < start_nanos {
                    continue;
                }
                if let (Some(action), Some(actor)) = (ev.action, ev.actor) {
                    let id = actor.id.unwrap_or_default();
                    sink.lock().unwrap().push((id, action));
                }
            }
        });
        // Let the subscription reach the engine before anything happens.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        EventWatch { events, task }
    }

    /// Stops collecting and returns `(container id, action)` pairs in order.
    pub async fn stop(self) -> Vec<(String, String)> {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        self.task.abort();
        self.events.lock().unwrap().clone()
    }
}

/// How many events of container `id` are `action` (`exec_start` matches
/// `exec_start: <command>` when `action` is `exec_start: <prefix>`).
pub fn count_events(events: &[(String, String)], id: &str, action: &str) -> usize {
    events
        .iter()
        .filter(|(i, a)| i == id && (a == action || a.starts_with(action)))
        .count()
}

/// The one `error:` line of a failed command (panics, showing the output, if the command
/// succeeded or printed no error line or several).
pub fn error_line(out: &Output) -> String {
    assert!(!out.status.success(), "{}", show(out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "one error line:\n{stderr}");
    errors[0].to_string()
}

/// Runs `cmd ARGS` with every failpoint in `armed` set to abort. Returns the point that
/// fired, or `None` when the command ran to its end successfully. Panics on any other
/// ending, and on a point that fired but was not armed.
pub async fn crash_once(mut cmd: Command, args: &[&str], armed: &[String]) -> Option<String> {
    use std::os::unix::process::ExitStatusExt;
    let spec: Vec<String> = armed.iter().map(|p| format!("{p}=return")).collect();
    let out = output(cmd.env("FAILPOINTS", spec.join(";")).args(args)).await;
    if out.status.success() {
        return None;
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "oms-upgrade {args:?} did not die by a failpoint:\n{}",
        show(&out)
    );
    let fired = stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("failpoint ")
                .and_then(|r| r.strip_suffix(": aborting"))
        })
        .unwrap_or_else(|| panic!("aborted without a failpoint line:\n{}", show(&out)))
        .to_string();
    assert!(armed.contains(&fired), "{fired} was not armed");
    Some(fired)
}
