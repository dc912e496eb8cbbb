//! The simulated world's state: containers, exec sessions, the metadata databases, the
//! files of the shared logs folder, health endpoints, virtual time, the fault policy, the
//! call trace and the log of irreversible actions. One [`World`] lives behind a
//! [`SharedWorld`] (`Arc<Mutex<World>>`) that every simulated adapter holds.
//!
//! Time only moves when the world moves it ([`World::advance`]); every transition that the
//! real services make "later" (a slow stop finishing, a detached `docker_init.sh` going on
//! after its exec timed out) is a due time checked by [`World::settle`], which every
//! adapter call runs first.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use crate::adapters::docker::{ContainerInfo, ContainerStatus, ExecInfo, ImageInfo};
use crate::adapters::metadb::{DbCharset, ServerList};
use crate::events::ServerFlavour;

/// The world shared by the simulated adapters.
pub type SharedWorld = Arc<Mutex<World>>;

/// Locks the world; a poisoned lock (a panicking test) still gives the state.
pub fn lock(w: &SharedWorld) -> MutexGuard<'_, World> {
    w.lock().unwrap_or_else(|p| p.into_inner())
}

/// A container as the simulated engine keeps it.
#[derive(Debug, Clone)]
pub struct SimContainer {
    /// What `inspect` reports (status, times and name kept current by the world).
    pub info: ContainerInfo,
    /// How long a stop takes from SIGTERM to exit. Longer than the stop's timeout plus the
    /// engine's slack, and the request fails while the container goes on to exit later.
    pub stop_takes: Duration,
    /// Log lines with their time.
    pub logs: Vec<(DateTime<Utc>, String)>,
    /// The programs `supervisorctl status` reports once supervisord is up.
    pub supervisor: Vec<SimProgram>,
    /// How long after the start supervisord answers at all.
    pub supervisor_warmup: Duration,
    /// Stop due at this time (a stop requested that has not happened yet).
    pub stop_due: Option<DateTime<Utc>>,
    /// The node whose engine holds it (issue 15): each node of a deployment has its own
    /// engine, so its own container names; 0 for a single node.
    pub node: u8,
}

/// A container's name as the whole deployment tells it apart: the plain name on node 0
/// (so a single-node world reads as before), `node<n>/<name>` on node n.
pub fn qualified(node: u8, name: &str) -> String {
    if node == 0 {
        name.to_string()
    } else {
        format!("node{node}/{name}")
    }
}

/// A path on node `node`'s host (its logs folder): the plain path on node 0,
/// `node<n>:<path>` on node n, so each node's `docker_init.log` is its own.
pub fn node_path(node: u8, path: &str) -> String {
    if node == 0 {
        path.to_string()
    } else {
        format!("node{node}:{path}")
    }
}

/// One supervisord program: STARTING until `running_after` has passed since the start,
/// then RUNNING, or `gives_up` (FATAL, BACKOFF, EXITED) from then on.
#[derive(Debug, Clone)]
pub struct SimProgram {
    /// Program name.
    pub name: String,
    /// Time after the container's start before it leaves STARTING.
    pub running_after: Duration,
    /// The state it ends in instead of RUNNING, if it never comes up.
    pub gives_up: Option<String>,
}

/// One exec session the engine knows.
#[derive(Debug, Clone)]
pub struct SimExec {
    /// What `inspect_exec` / `running_execs` report.
    pub info: ExecInfo,
    /// The container it runs in.
    pub container_id: String,
    /// When it ends (a `docker_init.sh` outliving its exec's timeout).
    pub finish_due: Option<DateTime<Utc>>,
    /// The migration this session performs, if it is `docker_init.sh`.
    pub init_started: Option<DateTime<Utc>>,
}

/// One metadata database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimDatabase {
    /// Default charset and collation.
    pub charset: DbCharset,
    /// Size in bytes `database_sizes` reports.
    pub size: u64,
    /// `oms_normal_config`'s `ha.config` row (RM database); `None`: no such row.
    pub ha_config: Option<String>,
    /// `heatbeat_sequence` ids (heartbeat database); `None`: no such table.
    pub heartbeat: Option<Vec<i64>>,
    /// The cm database's server list (`host` / `resource_group`).
    pub servers: Option<ServerList>,
    /// The emulated schema's version row; `None`: no version table.
    pub schema_version: Option<String>,
    /// Migration steps `docker_init.sh` has applied to this database.
    pub migration_steps: u32,
}

impl SimDatabase {
    /// An empty database with `utf8mb4`.
    pub fn empty() -> Self {
        SimDatabase {
            charset: DbCharset {
                charset: "utf8mb4".into(),
                collation: "utf8mb4_general_ci".into(),
            },
            size: 0,
            ha_config: None,
            heartbeat: None,
            servers: None,
            schema_version: None,
            migration_steps: 0,
        }
    }
}

/// A file of the shared logs folder (bound into both containers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimFile {
    /// Content.
    pub content: String,
    /// Modification time (the change time is the same here).
    pub mtime: DateTime<Utc>,
}

/// What `docker_init.sh` does when run: `steps` migration steps of `step_takes` each on the
/// RM database, writing `docker_init.log` under `log_dir`, ending with the version row and
/// the success marker (unless `fail_at_step`).
#[derive(Debug, Clone)]
pub struct InitModel {
    /// The logs folder (as the container sees it; one shared folder here).
    pub log_dir: String,
    /// The line a successful run ends with.
    pub success_marker: String,
    /// The database the migration changes.
    pub rm_db: String,
    /// Number of migration steps.
    pub steps: u32,
    /// Virtual time each step takes.
    pub step_takes: Duration,
    /// The version row written at the end.
    pub target_version: String,
    /// The script fails (exit 1) when it reaches this step.
    pub fail_at_step: Option<u32>,
}

/// A health endpoint: healthy when `container` runs, has run for `warmup`, and the next
/// entry of `flaps` (cycled; empty means always) says so.
#[derive(Debug, Clone)]
pub struct HealthSpot {
    /// The container serving it (by name).
    pub container: String,
    /// Time after the start before it answers healthy.
    pub warmup: Duration,
    /// Flapping pattern, one entry per check, cycled.
    pub flaps: Vec<bool>,
    /// Checks answered so far (the flapping cursor).
    pub checks: usize,
    /// The node whose engine runs `container` (0 for a single node).
    pub node: u8,
}

/// An irreversible action the world performed: what a later simulator checks against the
/// ledger's intents ("at most once per recorded intent").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionKind {
    /// A running container was stopped (recorded when it exits).
    Stop {
        /// Container name at the time of the request ([`qualified`] by its node).
        container: String,
    },
    /// A database was dropped.
    Drop {
        /// Database.
        db: String,
    },
    /// A database was created (after a drop).
    Create {
        /// Database.
        db: String,
    },
    /// A dump was loaded into a database (the dump engine's simulation records it).
    Restore {
        /// Database.
        db: String,
    },
    /// `docker_init.sh` was started.
    DockerInit {
        /// Container name ([`qualified`] by its node).
        container: String,
    },
    /// A container was created (issue 15: no node's new container is created twice).
    CreateContainer {
        /// Its name ([`qualified`] by its node).
        container: String,
    },
    /// `ha.config` was changed.
    HaWrite {
        /// RM database.
        db: String,
        /// The value written.
        value: String,
    },
}

/// One recorded irreversible action and when it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// Virtual time.
    pub at: DateTime<Utc>,
    /// What.
    pub kind: ActionKind,
}

/// Which adapter a call went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Adapter {
    /// [`crate::adapters::Docker`].
    Docker,
    /// [`crate::adapters::MetaDb`].
    MetaDb,
    /// [`crate::adapters::Health`].
    Health,
    /// [`crate::adapters::DumpEngine`].
    Dumps,
}

/// The error kinds of [`crate::adapters::DockerError`], one per variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DockerErrorKind {
    /// `EngineUnreachable`.
    EngineUnreachable,
    /// `NotFound`.
    NotFound,
    /// `ImageMissing`.
    ImageMissing,
    /// `NameConflict`.
    NameConflict,
    /// `PrivilegedRefused`.
    PrivilegedRefused,
    /// `NotRunning`.
    NotRunning,
    /// `ExecTimeout`.
    ExecTimeout,
    /// `LogLineTimeout`.
    LogLineTimeout,
    /// `Api`.
    Api,
}

impl DockerErrorKind {
    /// Every kind.
    pub const ALL: [DockerErrorKind; 9] = [
        Self::EngineUnreachable,
        Self::NotFound,
        Self::ImageMissing,
        Self::NameConflict,
        Self::PrivilegedRefused,
        Self::NotRunning,
        Self::ExecTimeout,
        Self::LogLineTimeout,
        Self::Api,
    ];
}

/// The error kinds of [`crate::adapters::MetaDbError`], one per variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaDbErrorKind {
    /// `Unreachable`.
    Unreachable,
    /// `AccessDenied`.
    AccessDenied,
    /// `NotPermitted`.
    NotPermitted,
    /// `UnknownDatabase`.
    UnknownDatabase,
    /// `HaConfigMissing`.
    HaConfigMissing,
    /// `HaConfigChanged`.
    HaConfigChanged,
    /// `HaConfigReadBack`.
    HaConfigReadBack,
    /// `InvalidCharset`.
    InvalidCharset,
    /// `TlsUnavailable`.
    TlsUnavailable,
    /// `Tls`.
    Tls,
    /// `Query`.
    Query,
}

impl MetaDbErrorKind {
    /// Every kind.
    pub const ALL: [MetaDbErrorKind; 11] = [
        Self::Unreachable,
        Self::AccessDenied,
        Self::NotPermitted,
        Self::UnknownDatabase,
        Self::HaConfigMissing,
        Self::HaConfigChanged,
        Self::HaConfigReadBack,
        Self::InvalidCharset,
        Self::TlsUnavailable,
        Self::Tls,
        Self::Query,
    ];
}

/// The error kinds of [`crate::adapters::HealthError`], one per variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthErrorKind {
    /// `InvalidUrl`.
    InvalidUrl,
    /// `Unreachable`.
    Unreachable,
    /// `Tls`.
    Tls,
    /// `RequestTimeout`.
    RequestTimeout,
    /// `Timeout`.
    Timeout,
}

impl HealthErrorKind {
    /// Every kind.
    pub const ALL: [HealthErrorKind; 5] = [
        Self::InvalidUrl,
        Self::Unreachable,
        Self::Tls,
        Self::RequestTimeout,
        Self::Timeout,
    ];
}

/// The error kinds of [`crate::dump::DumpError`] the simulated dump engine returns (the
/// driver-level ones; a `mysql_async` error cannot be built outside the driver, so a lost
/// connection is an `Io` error here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpErrorKind {
    /// `Io`.
    Io,
    /// `DiskFull`.
    DiskFull,
    /// `AccessDenied`.
    AccessDenied,
    /// `NoSuchDatabase`.
    NoSuchDatabase,
}

impl DumpErrorKind {
    /// Every kind.
    pub const ALL: [DumpErrorKind; 4] = [
        Self::Io,
        Self::DiskFull,
        Self::AccessDenied,
        Self::NoSuchDatabase,
    ];
}

/// An error kind of one of the adapters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A Docker error.
    Docker(DockerErrorKind),
    /// A metadata DB error.
    MetaDb(MetaDbErrorKind),
    /// A health error.
    Health(HealthErrorKind),
    /// A dump engine error.
    Dump(DumpErrorKind),
}

/// What a fault policy does to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Fail before the effect: nothing happened.
    Fail(ErrorKind),
    /// Apply the effect, then fail (a timeout after the effect happened).
    FailAfter(ErrorKind),
    /// Apply the first `parts` parts of a call made of several committed statements, then
    /// fail: the heartbeat prune's batches, `recreate_database`'s DROP (1) and CREATE (2).
    /// On a call of one part it is [`Fault::FailAfter`] when `parts` > 0, else
    /// [`Fault::Fail`].
    Cut {
        /// Parts applied before the failure.
        parts: u32,
        /// The error returned.
        kind: ErrorKind,
    },
    /// Let virtual time pass before the call.
    Delay(Duration),
}

/// One adapter call, as a fault policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The adapter.
    pub adapter: Adapter,
    /// The trait method's name.
    pub method: &'static str,
    /// The main argument (container, database or URL).
    pub target: String,
}

/// Decides, per call, whether and how to fault it. Must be deterministic in its own state.
pub trait FaultPolicy: Send {
    /// The fault for this call, if any. A kind of another adapter than the call's is
    /// turned into that adapter's generic error (`Api`, `Query`, `Unreachable`).
    fn decide(&mut self, call: &Call) -> Option<Fault>;
}

/// No faults.
#[derive(Debug, Default)]
pub struct NoFaults;

impl FaultPolicy for NoFaults {
    fn decide(&mut self, _call: &Call) -> Option<Fault> {
        None
    }
}

/// xorshift64*: a tiny deterministic generator (no OS randomness, same seed, same stream).
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// From a seed, mixed by splitmix64 so neighbouring seeds give unrelated streams (the
    /// state must not be 0, which xorshift never leaves).
    pub fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        XorShift(if z == 0 { 0x9E37_79B9_7F4A_7C15 } else { z })
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Faults chosen at random from a seed: each call is faulted with probability
/// `per_mille`/1000, as a failure before, a failure after the effect, or a delay of up to
/// `max_delay`, with an error kind of the called adapter.
#[derive(Debug, Clone)]
pub struct SeededFaults {
    rng: XorShift,
    /// Faulted calls per thousand.
    pub per_mille: u64,
    /// Longest delay.
    pub max_delay: Duration,
}

impl SeededFaults {
    /// A policy from `seed`.
    pub fn new(seed: u64, per_mille: u64) -> Self {
        SeededFaults {
            rng: XorShift::new(seed),
            per_mille,
            max_delay: Duration::from_secs(120),
        }
    }

    fn kind(&mut self, adapter: Adapter) -> ErrorKind {
        match adapter {
            Adapter::Docker => ErrorKind::Docker(
                DockerErrorKind::ALL[self.rng.below(DockerErrorKind::ALL.len() as u64) as usize],
            ),
            Adapter::MetaDb => ErrorKind::MetaDb(
                MetaDbErrorKind::ALL[self.rng.below(MetaDbErrorKind::ALL.len() as u64) as usize],
            ),
            Adapter::Health => ErrorKind::Health(
                HealthErrorKind::ALL[self.rng.below(HealthErrorKind::ALL.len() as u64) as usize],
            ),
            Adapter::Dumps => ErrorKind::Dump(
                DumpErrorKind::ALL[self.rng.below(DumpErrorKind::ALL.len() as u64) as usize],
            ),
        }
    }
}

impl FaultPolicy for SeededFaults {
    fn decide(&mut self, call: &Call) -> Option<Fault> {
        if self.rng.below(1000) >= self.per_mille {
            return None;
        }
        Some(match self.rng.below(4) {
            0 => Fault::Fail(self.kind(call.adapter)),
            1 => Fault::FailAfter(self.kind(call.adapter)),
            2 => Fault::Cut {
                parts: self.rng.below(3) as u32,
                kind: self.kind(call.adapter),
            },
            _ => Fault::Delay(Duration::from_millis(
                self.rng.below(self.max_delay.as_millis() as u64 + 1),
            )),
        })
    }
}

/// One line of the call trace: the virtual time, the call, and the fault applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEntry {
    /// Virtual time when the call began.
    pub at: DateTime<Utc>,
    /// The call.
    pub call: Call,
    /// The fault applied, if any.
    pub fault: Option<Fault>,
}

/// The simulated world.
pub struct World {
    /// Virtual now.
    pub now: DateTime<Utc>,
    /// Virtual monotonic time: how much time [`World::advance`] let pass since the world
    /// began. It never goes back, even if a test moves `now` (a wall clock set back).
    pub elapsed: Duration,
    /// Containers by id.
    pub containers: BTreeMap<String, SimContainer>,
    /// Images by reference (tag or id).
    pub images: BTreeMap<String, ImageInfo>,
    /// Exec sessions by id.
    pub execs: BTreeMap<String, SimExec>,
    /// Metadata databases by name.
    pub databases: BTreeMap<String, SimDatabase>,
    /// The metadata server's flavour and version.
    pub server: (ServerFlavour, String),
    /// Files of the shared logs folder, by full path.
    pub files: BTreeMap<String, SimFile>,
    /// What `docker_init.sh` does.
    pub init: InitModel,
    /// Health endpoints by base URL (no trailing slash).
    pub health: BTreeMap<String, HealthSpot>,
    /// The fault policy.
    pub faults: Box<dyn FaultPolicy>,
    /// Every adapter call, in order.
    pub trace: Vec<TraceEntry>,
    /// Every irreversible action, in order.
    pub actions: Vec<Action>,
    /// Counter for ids.
    next_id: u64,
    /// Pending one-shot faults for the next call of a method (tests' precise seams).
    pub scripted: VecDeque<(&'static str, Fault)>,
    /// Dumped database contents by the BLAKE3 of the dump file that holds them: what a
    /// restore of that file loads (the file's text names the database; its content is
    /// addressed by hash, so a file altered on disk no longer loads).
    pub dump_contents: BTreeMap<String, SimDatabase>,
    /// Free bytes on the simulated dump filesystem.
    pub free_bytes: u64,
    /// The supervisord programs every container added from now on runs (the image's).
    pub programs: Vec<SimProgram>,
    /// Paths that exist on the simulated host besides [`World::files`] (bind sources).
    pub host_paths: std::collections::BTreeSet<String>,
    /// The process crashes at the await point with this number (counted from 0 in
    /// [`World::awaits`]); `None`: never.
    pub crash_at: Option<u64>,
    /// Await points passed so far (before and after every simulated call).
    pub awaits: u64,
    /// Every reading of "now" ([`SimClock`](super::SimClock)) first lets a microsecond
    /// pass, so the ledger's records and the world's actions are strictly ordered in
    /// virtual time (the simulator's "after its intent, before its outcome" check).
    pub tick_on_now: bool,
    /// The process has crashed: every await point from now on stays pending forever, so
    /// the driver drops the executor's future (all its in-memory state is lost).
    pub crashed: bool,
    /// The node whose engine the Docker call being applied goes to ([`World::find`] looks
    /// only there, [`World::add_container`] puts a container there); reset to 0 after
    /// every call.
    pub engine: u8,
    /// Interleaving of concurrent futures (a deployment's steps performed side by side):
    /// with `Some((rng, pct))`, an await point yields once (pending, woken at once) in
    /// `pct` per cent of passes, chosen by `rng`, so the futures `join_all` polls take
    /// turns at seeded points. `None` (a single node): never yields, as before.
    pub yields: Option<(XorShift, u64)>,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("now", &self.now)
            .field("containers", &self.containers.keys().collect::<Vec<_>>())
            .field("databases", &self.databases.keys().collect::<Vec<_>>())
            .field("actions", &self.actions)
            .finish_non_exhaustive()
    }
}

impl World {
    /// An empty world at a fixed start time, with no faults.
    pub fn new() -> Self {
        World {
            now: Utc
                .with_ymd_and_hms(2026, 1, 1, 4, 0, 0)
                .single()
                .unwrap_or_default(),
            elapsed: Duration::ZERO,
            containers: BTreeMap::new(),
            images: BTreeMap::new(),
            execs: BTreeMap::new(),
            databases: BTreeMap::new(),
            server: (ServerFlavour::MariaDb, "10.11.6-MariaDB".into()),
            files: BTreeMap::new(),
            init: InitModel {
                log_dir: "/home/admin/logs".into(),
                success_marker: "docker_init.sh finished".into(),
                rm_db: "oms_rm".into(),
                steps: 5,
                step_takes: Duration::from_secs(10),
                target_version: "4.2.5".into(),
                fail_at_step: None,
            },
            health: BTreeMap::new(),
            faults: Box::new(NoFaults),
            trace: Vec::new(),
            actions: Vec::new(),
            next_id: 1,
            scripted: VecDeque::new(),
            dump_contents: BTreeMap::new(),
            free_bytes: 1 << 40,
            host_paths: Default::default(),
            programs: Vec::new(),
            crash_at: None,
            awaits: 0,
            tick_on_now: false,
            crashed: false,
            engine: 0,
            yields: None,
        }
    }

    /// Into a [`SharedWorld`].
    pub fn shared(self) -> SharedWorld {
        Arc::new(Mutex::new(self))
    }

    /// A fresh id with a prefix (`c…` containers, `e…` execs), deterministic.
    pub fn fresh_id(&mut self, prefix: &str) -> String {
        let id = format!("{prefix}{:016x}", self.next_id);
        self.next_id += 1;
        id
    }

    /// Records an irreversible action now.
    pub fn act(&mut self, kind: ActionKind) {
        self.actions.push(Action { at: self.now, kind });
    }

    /// Lets `by` pass and applies every transition due by then.
    pub fn advance(&mut self, by: Duration) {
        self.now += chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        self.elapsed = self.elapsed.saturating_add(by);
        self.settle();
    }

    /// Applies the transitions that are due at `now`: slow stops ending, detached
    /// `docker_init.sh` sessions progressing and ending.
    pub fn settle(&mut self) {
        let now = self.now;
        let due: Vec<String> = self
            .containers
            .iter()
            .filter(|(_, c)| c.stop_due.is_some_and(|t| t <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            self.exit_container(&id, 143);
        }
        let running: Vec<String> = self
            .execs
            .iter()
            .filter(|(_, e)| e.info.running)
            .map(|(id, _)| id.clone())
            .collect();
        for id in running {
            self.progress_init(&id);
        }
    }

    /// The container a name or id refers to, on the engine of the call being applied
    /// ([`World::engine`]).
    pub fn find(&self, name_or_id: &str) -> Option<String> {
        self.find_on(self.engine, name_or_id)
    }

    /// The container a name or id refers to on node `node`'s engine.
    pub fn find_on(&self, node: u8, name_or_id: &str) -> Option<String> {
        let name = name_or_id.trim_start_matches('/');
        self.containers
            .iter()
            .find(|(id, c)| c.node == node && (id.as_str() == name || c.info.name == name))
            .map(|(id, _)| id.clone())
    }

    /// Puts a container in the world as the engine would have it after a `run`.
    pub fn add_container(&mut self, info: ContainerInfo) -> String {
        let id = info.id.clone();
        self.containers.insert(
            id.clone(),
            SimContainer {
                info,
                stop_takes: Duration::from_secs(3),
                logs: Vec::new(),
                supervisor: self.programs.clone(),
                supervisor_warmup: Duration::from_secs(5),
                stop_due: None,
                node: self.engine,
            },
        );
        id
    }

    /// The container exits now: status, finish time, its exec sessions end (the engine
    /// forgets them), and the stop is recorded.
    pub(crate) fn exit_container(&mut self, id: &str, code: i64) {
        let now = self.now;
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        let was_running = c.info.status.is_running();
        c.info.status = ContainerStatus::Exited { code };
        c.info.finished_at = Some(now);
        c.stop_due = None;
        let name = qualified(c.node, &c.info.name);
        if was_running {
            self.act(ActionKind::Stop { container: name });
        }
        // A process in a stopped container is killed with it: a migration in progress stops
        // where it is, and the engine forgets the sessions.
        let ids: Vec<String> = self
            .execs
            .iter()
            .filter(|(_, e)| e.container_id == id)
            .map(|(k, _)| k.clone())
            .collect();
        for e in ids {
            self.progress_init(&e);
            self.execs.remove(&e);
        }
    }

    /// A dump loaded into `db` (the dump engine's simulation calls this): the database
    /// exists with `size` bytes, and the load is recorded as an irreversible action.
    pub fn restore(&mut self, db: &str, size: u64) {
        self.databases
            .entry(db.to_string())
            .or_insert_with(SimDatabase::empty)
            .size = size;
        self.act(ActionKind::Restore { db: db.into() });
    }

    /// Passes one await point: true when the process crashes here (and from now on).
    pub fn await_point(&mut self) -> bool {
        if self.crashed {
            return true;
        }
        let n = self.awaits;
        self.awaits += 1;
        if self.crash_at == Some(n) {
            self.crashed = true;
        }
        self.crashed
    }

    /// Whether the future passing an await point now yields once first (see
    /// [`World::yields`]).
    pub fn yields_here(&mut self) -> bool {
        match &mut self.yields {
            Some((rng, pct)) => rng.below(100) < *pct,
            None => false,
        }
    }

    /// Writes (replaces) a file of the logs folder now.
    pub fn write_file(&mut self, path: &str, content: String) {
        let now = self.now;
        self.files.insert(
            path.to_string(),
            SimFile {
                content,
                mtime: now,
            },
        );
    }

    /// `docker_init.log` on node `node`'s host.
    pub(crate) fn init_log_path(&self, node: u8) -> String {
        node_path(node, &format!("{}/docker_init.log", self.init.log_dir))
    }

    /// The node whose container runs exec session `exec_id`.
    fn exec_node(&self, exec_id: &str) -> u8 {
        self.execs
            .get(exec_id)
            .and_then(|e| self.containers.get(&e.container_id))
            .map_or(0, |c| c.node)
    }

    /// Starts `docker_init.sh` as exec session `exec_id`: the log is rewritten at once
    /// (as the real script does), the steps follow in virtual time.
    pub(crate) fn start_init(&mut self, exec_id: &str, container: &str) {
        let node = self.exec_node(exec_id);
        self.act(ActionKind::DockerInit {
            container: qualified(node, container),
        });
        let path = self.init_log_path(node);
        self.write_file(&path, "docker_init.sh: starting migration\n".into());
        if let Some(e) = self.execs.get_mut(exec_id) {
            e.init_started = Some(self.now);
        }
        self.progress_init(exec_id);
    }

    /// Applies the steps of a running `docker_init.sh` session that are due by `now`, and
    /// ends it (exit code, marker, version row) when the last one is.
    pub(crate) fn progress_init(&mut self, exec_id: &str) {
        let Some(e) = self.execs.get(exec_id) else {
            return;
        };
        let (Some(started), true) = (e.init_started, e.info.running) else {
            return;
        };
        let model = self.init.clone();
        let elapsed = (self.now - started).to_std().unwrap_or_default();
        let per = model.step_takes.as_millis().max(1);
        let due = u32::try_from(elapsed.as_millis() / per).unwrap_or(u32::MAX);
        let path = self.init_log_path(self.exec_node(exec_id));
        let Some(db) = self.databases.get_mut(&model.rm_db) else {
            // No RM database: the script fails at once.
            self.finish_exec(exec_id, 1, "ERROR: no RM database\n");
            return;
        };
        let mut log = self
            .files
            .get(&path)
            .map(|f| f.content.clone())
            .unwrap_or_default();
        let done_before = log.matches("applied step ").count() as u32;
        let mut changed = false;
        for step in done_before + 1..=due.min(model.steps) {
            if model.fail_at_step == Some(step) {
                log.push_str(&format!("ERROR at step {step}\n"));
                self.write_file(&path, log.clone());
                self.finish_exec(exec_id, 1, &log);
                return;
            }
            db.migration_steps += 1;
            log.push_str(&format!("applied step {step}\n"));
            changed = true;
        }
        if due >= model.steps && model.fail_at_step.is_none_or(|f| f > model.steps) {
            if let Some(db) = self.databases.get_mut(&model.rm_db) {
                db.schema_version = Some(model.target_version.clone());
            }
            log.push_str(&model.success_marker);
            log.push('\n');
            self.write_file(&path, log.clone());
            self.finish_exec(exec_id, 0, &log);
        } else if changed {
            self.write_file(&path, log);
        }
    }

    fn finish_exec(&mut self, exec_id: &str, code: i64, _output: &str) {
        if let Some(e) = self.execs.get_mut(exec_id) {
            e.info.running = false;
            e.info.exit_code = Some(code);
            e.finish_due = None;
        }
    }

    /// The next scripted or policy fault for `call`, recorded in the trace.
    pub(crate) fn fault_for(&mut self, call: Call) -> Option<Fault> {
        self.settle();
        let fault = match self.scripted.iter().position(|(m, _)| *m == call.method) {
            Some(i) => self.scripted.remove(i).map(|(_, f)| f),
            None => self.faults.decide(&call),
        };
        self.trace.push(TraceEntry {
            at: self.now,
            call,
            fault,
        });
        if let Some(Fault::Delay(d)) = fault {
            self.advance(d);
        }
        fault
    }
}

/// What an observer can see of the world, comparable between two runs (the end state an
/// uninterrupted run leaves against one with faults): containers by name (image, running
/// or not, restart policy), databases, files of the logs folder (content only). Times and
/// ids are left out, since they differ between equivalent runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Name -> (image, running, restart policy name).
    pub containers: BTreeMap<String, (String, bool, String)>,
    /// Databases as they are.
    pub databases: BTreeMap<String, SimDatabase>,
    /// Path -> content.
    pub files: BTreeMap<String, String>,
}

impl World {
    /// The observable state (see [`Observed`]).
    pub fn observed(&self) -> Observed {
        Observed {
            containers: self
                .containers
                .values()
                .map(|c| {
                    (
                        qualified(c.node, &c.info.name),
                        (
                            c.info.image.clone(),
                            c.info.status.is_running(),
                            c.info.host.restart.normalised().name,
                        ),
                    )
                })
                .collect(),
            databases: self.databases.clone(),
            files: self
                .files
                .iter()
                .map(|(k, f)| (k.clone(), f.content.clone()))
                .collect(),
        }
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}
