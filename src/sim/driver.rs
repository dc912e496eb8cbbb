//! The simulator: the real [`Executor`] driven over the simulated world, seed after seed,
//! with faults injected into every simulated call and the process crashed at any await
//! point, restarted after each crash as an operator would, and four invariants checked
//! at the end of each seed (see `docs/simulation.md`).
//!
//! One seed:
//! 1. a world for the upgrade path ([`build_world`]) and its plan, recorded into a real
//!    ledger (a [`Journal`] over sled in a fresh folder, on `/dev/shm` when there is one);
//! 2. a fault policy from the seed ([`SeededFaults`]) and, per process life, a crash at
//!    an await point chosen from the seed (every simulated call passes one before and one
//!    after its effect; the driver polls the executor's future by hand and drops it when
//!    the world says the process died there: all in-memory state is lost, the ledger's
//!    bytes and the world stay);
//! 3. restarts: reopen the journal and `run` again; sometimes (and always after a failure
//!    that may not be retried) `rollback`; where a step waits for an operator's decision,
//!    the decision `oms-upgrade resolve` records, made from the world's truth as an
//!    operator who looked would make it; after [`SimConfig::calm_after`] restarts the
//!    faults stop (the operator fixed the environment), so a seed ends;
//! 4. the invariants ([`check`], and [`check_nodes`] per node of a deployment).
//!
//! With [`SimConfig::nodes`] > 1 the plan is a deployment's ([`plan_of`]), the world holds
//! every node's old container on its own engine ([`world_for`]), and the executor gets
//! one [`SimDocker`] per node (issue 15).
//!
//! Everything is a function of the seed: the same seed gives the same trace.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use uuid::Uuid;

use super::adapters::{SimClock, SimDocker, SimHealth, SimMetaDb, adapters};
use super::dumps::SimDumps;
use super::world::{
    ActionKind, Fault, NoFaults, Observed, SeededFaults, SharedWorld, SimDatabase, SimProgram,
    World, XorShift, lock,
};
use crate::adapters::docker::{ContainerInfo, ContainerStatus, ImageInfo};
use crate::adapters::metadb::{ListedServer, ServerList};
use crate::dbconn::DbTarget;
use crate::events::{
    ContainerSnapshot, DbNames, Event, HaAfter, HaAtInit, HaMode, MetaDbLocation, Plan, PlanExt,
    PlanInput, Recorded, Resolution, StepKey, StepResolved, record_env,
};
use crate::executor::{Adapters, ExecError, ExecOptions, Executor, Journal, Unattended};
use crate::refetch::RefetchPolicy;
use crate::replay::{Next, Phase, State};
use crate::secret::Secret;
use crate::steps::{INIT_LOG_DIR, INIT_SUCCESS_MARKER, Step};
use crate::versions::Version;

/// The executor as the simulator builds it.
type SimExecutor<'o> = Executor<'o, SimDocker, SimMetaDb, SimHealth, SimClock, SimDumps>;

/// The old container's name.
const OLD: &str = "oms";
/// The host the plan names.
const HOST_IP: &str = "10.0.0.5";
/// The RM, CM and heartbeat databases.
const RM: &str = "oms_rm";
const CM: &str = "oms_cm";
const HB: &str = "oms_cm_hb";
/// The HA config before the upgrade.
const HA_ON: &str = r#"{"enable":true,"enableStore":true,"refetchStoreIntervalMin":30}"#;
/// The bind sources of the old container (they exist on the simulated host).
const BINDS: [&str; 3] = [
    "/data/config.yaml:/home/admin/conf/config.yaml",
    "/data/oms/oms_logs:/home/admin/logs",
    "/data/oms/oms_store:/home/ds/store",
];

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The version upgraded from.
    pub source: Version,
    /// The version upgraded to.
    pub target: Version,
    /// Most faulted calls per thousand (each seed picks its rate up to this).
    pub max_fault_per_mille: u64,
    /// Restarts after which the faults and crashes stop, so a seed ends.
    pub calm_after: u32,
    /// Restarts after which a seed that has not ended is a violation.
    pub give_up_after: u32,
    /// Per cent of restarts after which the operator asks for a rollback.
    pub rollback_pct: u64,
    /// Per cent of process lives that crash.
    pub crash_pct: u64,
    /// Mirror every record to an in-memory witness under this policy (issue 14), which
    /// goes away part-way through some process lives; `None`: no witness.
    pub witness: Option<crate::witness::WitnessPolicy>,
    /// Per cent of process lives in which the witness goes away after a few calls.
    pub witness_away_pct: u64,
    /// Nodes of the deployment (issue 15); 1: the single-node upgrade, as before.
    pub nodes: u8,
    /// Regions the nodes are spread over (node i in region i mod regions), each with its
    /// own heartbeat database; at most `nodes`.
    pub regions: u8,
    /// With several nodes: per cent of await points at which a future yields to the
    /// others performed beside it (the interleaving of a stage's concurrent steps).
    pub yield_pct: u64,
    /// With several nodes: the nodes' containers run with recorded settings
    /// (`--restart unless-stopped`), so every lane has `old-restart-off`.
    pub node_settings: bool,
    /// A known bug planted in the executor (the simulator's own tests).
    #[cfg(any(test, feature = "sim-bugs"))]
    pub planted: Option<super::planted::Bug>,
}

impl SimConfig {
    /// The defaults for `source -> target`.
    pub fn new(source: Version, target: Version) -> Self {
        SimConfig {
            source,
            target,
            max_fault_per_mille: 60,
            calm_after: 12,
            give_up_after: 30,
            rollback_pct: 15,
            crash_pct: 60,
            witness: None,
            witness_away_pct: 30,
            nodes: 1,
            regions: 1,
            yield_pct: 30,
            node_settings: true,
            #[cfg(any(test, feature = "sim-bugs"))]
            planted: None,
        }
    }

    /// The same path over a deployment of `nodes` nodes in `regions` regions.
    pub fn deployment(mut self, nodes: u8, regions: u8) -> Self {
        self.nodes = nodes.max(1);
        self.regions = regions.clamp(1, self.nodes);
        self
    }
}

/// What one seed did and found.
#[derive(Debug, Clone, Default)]
pub struct SeedReport {
    /// The seed.
    pub seed: u64,
    /// Process crashes injected.
    pub crashes: u32,
    /// Times the executor was started again (after a crash or a failure).
    pub restarts: u32,
    /// Faults injected, by kind (`fail`, `fail-after`, `cut`, `delay`).
    pub faults: BTreeMap<&'static str, u64>,
    /// Faults injected, by the error kind returned.
    pub fault_kinds: BTreeMap<String, u64>,
    /// Decisions recorded for steps in doubt.
    pub resolves: u32,
    /// Crashes that left a step of a stage run side by side in doubt (several nodes):
    /// between the intents of a stage, during its concurrent performs, or between its
    /// outcomes.
    pub stage_crashes: u32,
    /// Crashes that left several steps in doubt at once.
    pub multi_doubt_crashes: u32,
    /// Where the run ended.
    pub phase: Option<Phase>,
    /// Each invariant that failed, with what was found.
    pub violations: Vec<String>,
    /// The ledger's events, one line each (printed for a violation).
    pub trace: Vec<String>,
    /// What differs between the world and the expected one (printed for a violation).
    pub diff: Vec<String>,
}

/// Why driving the executor stopped.
enum Drove<T> {
    /// The future completed.
    Done(T),
    /// The process crashed at an await point.
    Crashed,
}

/// Polls `fut` by hand until it completes or the world says the process died; the
/// simulated adapters never wait, so a pending poll without a crash cannot make progress
/// and is reported as a driver defect.
fn drive<F: Future>(world: &SharedWorld, fut: F) -> Drove<F::Output> {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    // A future that yielded (World::yields) is polled again at once; only polls that pass
    // no await point at all mean nothing can make progress.
    let mut idle = 0;
    let mut passed = lock(world).awaits;
    while idle < 1000 {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return Drove::Done(v);
        }
        let w = lock(world);
        if w.crashed {
            return Drove::Crashed;
        }
        if w.awaits == passed {
            idle += 1;
        } else {
            idle = 0;
            passed = w.awaits;
        }
    }
    panic!("the executor waited on something the simulated world never wakes");
}

/// The plan an `init` of this world records.
pub fn plan_for(source: Version, target: Version, backup_dir: &str) -> Plan {
    Plan::new(plan_input(source, target, backup_dir)).expect("the simulator's plan is valid")
}

/// What [`plan_for`] makes its plan from.
fn plan_input(source: Version, target: Version, backup_dir: &str) -> PlanInput {
    PlanInput {
        run_id: Uuid::from_u128(0x51u128 << 64 | 0x13),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        source_version: source,
        target_version: target,
        old_container: ContainerSnapshot {
            id: old_id(),
            name: OLD.into(),
            image: image(source),
            image_id: image_id(1),
            binds: BINDS.iter().map(|b| b.to_string()).collect(),
            env: record_env(&[format!("OMS_HOST_IP={HOST_IP}"), "PATH=/usr/bin".into()]),
            labels: BTreeMap::new(),
        },
        target_image: image(target),
        target_image_id: Some(image_id(2)),
        old_renamed_to: None,
        privileged: true,
        host_ip: HOST_IP.into(),
        metadb: MetaDbLocation {
            display_url: "mysql://oms@10.0.0.9:3306".into(),
            host: "10.0.0.9".into(),
            port: 3306,
            user: "oms".into(),
        },
        databases: DbNames {
            rm: RM.into(),
            cm: CM.into(),
            cm_hb: HB.into(),
        },
        backup_dir: backup_dir.into(),
        ha_mode: HaMode::Sql,
        ha_after: HaAfter::Enable,
        refetch: RefetchPolicy::default(),
        stop_timeout_secs: None,
        init_timeout_secs: None,
        health_url: format!("http://{HOST_IP}:8089/oms/health"),
        health_timeout_secs: None,
        // What `init` reads from the world `build_world` makes.
        ext: vec![PlanExt::HaAtInit(HaAtInit { json: HA_ON.into() })],
    }
}

fn old_id() -> String {
    format!("c{:063x}", 1)
}

/// Node `i`'s old container id (distinct over the deployment, as the world keys by id).
fn node_old_id(i: u8) -> String {
    if i == 0 {
        old_id()
    } else {
        format!("c{:063x}", 0x100 + u64::from(i))
    }
}

/// Node `i`'s host (`OMS_HOST_IP`); node 0's is [`HOST_IP`].
fn node_ip(i: u8) -> String {
    format!("10.0.0.{}", 5 + u16::from(i))
}

/// Region `r`'s heartbeat database; region 0's is [`HB`].
fn hb_db(r: u8) -> String {
    if r == 0 {
        HB.into()
    } else {
        format!("{HB}_{r}")
    }
}

/// The plan `init` records for `cfg`: [`plan_for`], and with several nodes the
/// deployment (issue 15): node i (1..) on its own engine, with its own container, host,
/// health URL and the same container names as node 0; node i in region i mod R;
/// `docker_init.sh` on the first node of each region; region r's heartbeat database.
pub fn plan_of(cfg: &SimConfig, backup_dir: &str) -> Plan {
    let base = plan_for(cfg.source, cfg.target, backup_dir);
    if cfg.nodes <= 1 {
        return base;
    }
    use crate::events::{Deployment, NodeMeta, NodePlan, RegionIx, RegionPlan};
    // The settings `init` records from each node's old container, as the world has it.
    let world = world_for(cfg);
    let settings = |i: u8| {
        cfg.node_settings.then(|| {
            Box::new(crate::inherit::record(
                &world.containers[&node_old_id(i)].info,
                &[],
            ))
        })
    };
    let regions = cfg.regions.clamp(1, cfg.nodes);
    let meta = |i: u8| NodeMeta {
        label: format!("oms-{}", (b'a' + i) as char),
        region: RegionIx(i % regions),
        endpoint: if i == 0 {
            "local".into()
        } else {
            format!("sim://node{i}")
        },
        runs_init: i < regions,
    };
    let deployment = Deployment {
        node0: meta(0),
        regions: (0..regions)
            .map(|r| RegionPlan {
                name: format!("region-{r}"),
                heartbeat_db: hb_db(r),
            })
            .collect(),
        nodes: (1..cfg.nodes)
            .map(|i| NodePlan {
                meta: meta(i),
                old_container: ContainerSnapshot {
                    id: node_old_id(i),
                    env: record_env(&[
                        format!("OMS_HOST_IP={}", node_ip(i)),
                        "PATH=/usr/bin".into(),
                    ]),
                    ..base.old_container.clone()
                },
                settings: settings(i),
                host_ip: node_ip(i),
                health_url: format!("http://{}:8089/oms/health", node_ip(i)),
                old_renamed_to: base.old_renamed_to.clone(),
                new_name: base.new_name.clone(),
                failed_name: base.failed_name.clone(),
                target_image_id: base.target_image_id.clone(),
            })
            .collect(),
    };
    let mut input = plan_input(cfg.source, cfg.target, backup_dir);
    if let Some(s) = settings(0) {
        input.ext.push(PlanExt::Container(s));
    }
    input.ext.push(PlanExt::Deployment(Box::new(deployment)));
    Plan::new(input).expect("the simulator's deployment plan is valid")
}

/// A deployment's node containers run with `--restart unless-stopped`, as deployments
/// commonly do, so `old-restart-off` and the rollback's `rollback-restart-policy` are part
/// of every node's procedure (a single node keeps no settings: its traces stay as they
/// were before issue 15).
const NODE_RESTART: &str = "unless-stopped";

/// The world `cfg`'s plan is made in: [`build_world`], and with several nodes each node's
/// old container on its own engine, serving its own health URL, every node's server
/// Online in the metadata DB, and each region's heartbeat database.
pub fn world_for(cfg: &SimConfig) -> World {
    let mut w = build_world(cfg.source, cfg.target);
    if cfg.nodes <= 1 {
        return w;
    }
    let mut base = w.containers[&old_id()].info.clone();
    if cfg.node_settings {
        base.host.restart = crate::adapters::docker::RestartPolicySetting {
            name: NODE_RESTART.into(),
            max_retries: 0,
        };
        if let Some(c) = w.containers.get_mut(&old_id()) {
            c.info.host.restart = base.host.restart.clone();
        }
    }
    for i in 1..cfg.nodes {
        w.engine = i;
        let ip = node_ip(i);
        w.add_container(ContainerInfo {
            id: node_old_id(i),
            env: vec![format!("OMS_HOST_IP={ip}"), "PATH=/usr/bin".into()],
            ..base.clone()
        });
        let spot = super::world::HealthSpot {
            container: OLD.into(),
            warmup: Duration::from_secs(20),
            flaps: vec![],
            checks: 0,
            node: i,
        };
        w.health.insert(format!("http://{ip}:8089"), spot.clone());
        w.health
            .insert(format!("http://{ip}:8089/oms/health"), spot);
    }
    w.engine = 0;
    let hb = w.databases[HB].clone();
    for r in 1..cfg.regions.clamp(1, cfg.nodes) {
        w.databases.insert(hb_db(r), hb.clone());
    }
    if let Some(servers) = w.databases.get_mut(CM).and_then(|cm| cm.servers.as_mut()) {
        let first = servers.servers[0].clone();
        for i in 1..cfg.nodes {
            servers.servers.push(ListedServer {
                ip: node_ip(i),
                ..first.clone()
            });
        }
    }
    w
}

fn image(v: Version) -> String {
    format!("oms:feature_{v}_ce")
}

fn image_id(n: u8) -> String {
    format!("sha256:{}", n.to_string().repeat(64))
}

/// A world with the old OMS running at `source`, the target image loaded, the three
/// metadata databases and the health endpoint served by whichever container is named
/// `oms`.
pub fn build_world(source: Version, target: Version) -> World {
    let mut w = World::new();
    w.programs = supervisor();
    for (v, n) in [(source, 1u8), (target, 2)] {
        w.images.insert(
            image(v),
            ImageInfo {
                id: image_id(n),
                repo_tags: vec![image(v)],
                env: vec![],
                labels: BTreeMap::new(),
            },
        );
    }
    let now = w.now;
    w.add_container(ContainerInfo {
        id: old_id(),
        name: OLD.into(),
        image: image(source),
        image_id: image_id(1),
        status: ContainerStatus::Running,
        created: Some(now - chrono::Duration::days(30)),
        started_at: Some(now - chrono::Duration::hours(1)),
        finished_at: None,
        binds: BINDS.iter().map(|b| b.to_string()).collect(),
        env: vec![format!("OMS_HOST_IP={HOST_IP}"), "PATH=/usr/bin".into()],
        labels: BTreeMap::new(),
        network_mode: "host".into(),
        privileged: true,
        pids_limit: Some(-1),
        ulimits: vec![],
        cmd: None,
        tty: true,
        open_stdin: true,
        host: Default::default(),
    });
    for b in BINDS {
        w.host_paths
            .insert(b.split(':').next().unwrap_or_default().to_string());
    }
    let mut rm = SimDatabase::empty();
    rm.ha_config = Some(HA_ON.into());
    rm.schema_version = Some(source.to_string());
    rm.size = 1 << 20;
    w.databases.insert(RM.into(), rm);
    let mut hb = SimDatabase::empty();
    hb.heartbeat = Some((1..=40).collect());
    hb.size = 1 << 12;
    w.databases.insert(HB.into(), hb);
    let mut cm = SimDatabase::empty();
    cm.size = 1 << 16;
    cm.servers = Some(ServerList {
        host_table: true,
        status_column: true,
        servers: vec![ListedServer {
            ip: HOST_IP.into(),
            group: Some("default".into()),
            status: Some("ONLINE".into()),
        }],
    });
    w.databases.insert(CM.into(), cm);
    w.init.log_dir = INIT_LOG_DIR.into();
    w.init.success_marker = INIT_SUCCESS_MARKER.into();
    w.init.rm_db = RM.into();
    w.init.target_version = target.to_string();
    let spot = super::world::HealthSpot {
        container: OLD.into(),
        warmup: Duration::from_secs(20),
        flaps: vec![],
        checks: 0,
        node: 0,
    };
    w.health
        .insert(format!("http://{HOST_IP}:8089"), spot.clone());
    w.health
        .insert(format!("http://{HOST_IP}:8089/oms/health"), spot);
    w.tick_on_now = true;
    w
}

fn supervisor() -> Vec<SimProgram> {
    ["oms_console", "oms_drc_cm", "oms_drc_supervisor"]
        .into_iter()
        .map(|name| SimProgram {
            name: name.into(),
            running_after: Duration::from_secs(10),
            gives_up: None,
        })
        .collect()
}

/// A folder removed with everything in it when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh folder for one ledger: under `/dev/shm` when it exists (sled's flushes cost
/// nothing there), else the system's temporary folder. Named by process and a counter, and
/// created with `create_dir` (which fails on an existing name), so it is this seed's own.
fn ledger_dir() -> TempDir {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let p = base.join(format!("oms-sim-{}-{n}", std::process::id()));
        match std::fs::create_dir(&p) {
            Ok(()) => return TempDir(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!(
                "cannot create a folder for the simulated ledger in {}: {e}",
                base.display()
            ),
        }
    }
}

fn db_target() -> DbTarget {
    DbTarget {
        host: "10.0.0.9".into(),
        port: 3306,
        user: "oms".into(),
        password: Secret::new("sim"),
        tls: Default::default(),
    }
}

fn options() -> ExecOptions {
    ExecOptions::default()
}

fn executor<'o>(
    world: &SharedWorld,
    journal: Journal,
    observer: &'o Unattended,
) -> SimExecutor<'o> {
    let (docker, metadb, health, clock) = adapters(world);
    // One engine per node of the plan (issue 15): nodes 1.. beside node 0's.
    let nodes = journal.state().plan().map_or(1, |p| p.nodes().len());
    let node_dockers = (1..nodes)
        .map(|i| SimDocker {
            world: world.clone(),
            node: i as u8,
        })
        .collect();
    Executor::with_dump_engine(
        journal,
        Adapters {
            docker,
            metadb,
            health,
            clock,
            db: db_target(),
        },
        SimDumps {
            world: world.clone(),
        },
        options(),
        observer,
    )
    .with_node_dockers(node_dockers)
}

/// Opens the journal as a restarted process does. sled 0.34 releases its file lock from
/// a background thread after the database is dropped, so an open right after a simulated
/// crash in the same process can find it still held for a moment: wait for it (a real
/// restart is a new process, which finds it free).
/// Time spent opening journals, all threads (the cost measured for the seeds/s target).
pub(crate) static OPEN_NANOS: AtomicU64 = AtomicU64::new(0);
/// Opens that found sled's lock still held by a dropped database.
pub(crate) static BUSY: AtomicU64 = AtomicU64::new(0);

/// Waits before another try at a lock a dropped sled database still holds. sled's
/// writes run on its own threadpool, whose task holds the database file until it returns,
/// which is moments after the flush it serves completed: yielding the core to that thread
/// is enough almost always, so sleeping (at least a timer tick, far longer than the wait)
/// starts only after many tries.
fn wait_busy(tries: u32) {
    if tries > 1000 {
        std::thread::sleep(Duration::from_micros(200));
    } else {
        std::thread::yield_now();
    }
}

fn open(dir: &Path) -> Journal {
    let t = std::time::Instant::now();
    let j = open_inner(dir);
    OPEN_NANOS.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
    j
}

fn open_inner(dir: &Path) -> Journal {
    let mut tries = 0u32;
    loop {
        match Journal::open(dir, "sim", "sim-host") {
            Ok(j) => return j,
            Err(
                crate::executor::JournalError::Ledger(crate::ledger::LedgerError::Busy { .. })
                | crate::executor::JournalError::History(crate::history::HistoryError::Ledger(
                    crate::ledger::LedgerError::Busy { .. },
                )),
            ) if tries < 5000 => {
                tries += 1;
                BUSY.fetch_add(1, Ordering::Relaxed);
                wait_busy(tries);
            }
            Err(e) => panic!("the simulated ledger does not open: {e}"),
        }
    }
}

/// Replays the ledger as `status` would, waiting for sled's lock as [`open`] does.
fn replay(dir: &Path) -> Result<(Vec<Recorded>, State), crate::history::HistoryError> {
    let mut tries = 0u32;
    loop {
        match crate::history::load_dir(dir, crate::history::Verify::Chain)
            .map(|h| (h.records, h.state))
        {
            Err(crate::history::HistoryError::Ledger(crate::ledger::LedgerError::Busy {
                ..
            })) if tries < 5000 => {
                tries += 1;
                BUSY.fetch_add(1, Ordering::Relaxed);
                wait_busy(tries);
            }
            r => return r,
        }
    }
}

/// Opens a reader the same way (see [`open`]).
fn open_reader(
    dir: &Path,
) -> Result<crate::ledger::store::LedgerReader, crate::ledger::LedgerError> {
    let mut tries = 0u32;
    loop {
        match crate::ledger::store::LedgerReader::open(dir) {
            Err(crate::ledger::LedgerError::Busy { .. }) if tries < 5000 => {
                tries += 1;
                BUSY.fetch_add(1, Ordering::Relaxed);
                wait_busy(tries);
            }
            r => return r,
        }
    }
}

/// The end states of a fault-free run of a path: upgraded, and rolled back from each
/// point a rollback can be asked for (keyed by the first upgrade step not done then).
#[derive(Debug)]
pub struct Reference {
    /// After an uninterrupted upgrade.
    pub upgraded: Observed,
    /// The fault-free rollbacks already run, by the first upgrade step not done when the
    /// rollback was asked for. A fault-free run is a function of the path and that step
    /// alone (no seed, faults or crashes reach it), so each is run once per path and
    /// shared by every seed that rolled back from the same point.
    rollbacks: Mutex<BTreeMap<StepKey, RolledBack>>,
}

/// What a fault-free run with a rollback left, or why it did not finish.
type RolledBack = Result<(Observed, Phase), String>;

impl Reference {
    /// The fault-free run of `cfg`'s path with a rollback asked for before `before`, run
    /// on first use.
    fn rolled_back(&self, cfg: &SimConfig, before: StepKey) -> RolledBack {
        if let Some(r) = self.rollbacks_map().get(&before) {
            return r.clone();
        }
        // Run outside the lock: another thread may run the same one meanwhile, which
        // only costs the time (both results are equal).
        let r = fault_free(cfg, Some(before));
        self.rollbacks_map().insert(before, r.clone());
        r
    }

    fn rollbacks_map(&self) -> std::sync::MutexGuard<'_, BTreeMap<StepKey, RolledBack>> {
        // A panic while holding the lock cannot leave the map half-updated.
        self.rollbacks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs the path without faults or crashes and returns the world it leaves, or why it
/// did not finish.
pub fn reference(cfg: &SimConfig) -> Result<Reference, String> {
    let (end, phase) = fault_free(cfg, None)?;
    if phase != Phase::Completed {
        return Err(format!("an uninterrupted run ended {phase:?}"));
    }
    Ok(Reference {
        upgraded: end,
        rollbacks: Mutex::new(BTreeMap::new()),
    })
}

/// A fault-free run, with a rollback asked for before `rollback_before` when given: the
/// world it leaves and the phase it ended in.
pub fn fault_free(
    cfg: &SimConfig,
    rollback_before: Option<StepKey>,
) -> Result<(Observed, Phase), String> {
    let dir = ledger_dir();
    fault_free_in(cfg, &dir.path().join("ledger"), rollback_before, None)
}

/// How [`record_run`] ends the run it records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordedRun {
    /// The upgrade, uninterrupted.
    Upgrade,
    /// The upgrade run up to `StepKey`, then rolled back.
    RollbackBefore(StepKey),
    /// The upgrade with the new container's creation failing once (Docker API error);
    /// nobody runs it again, so the ledger ends with the failed step.
    FailedCreate,
}

/// Records one run of `cfg`'s path into a new ledger folder `ledger`: the real executor
/// over a fresh simulated world, without crashes (tests that need real ledgers quickly,
/// such as the fleet view's). Returns the phase the run ended in.
pub fn record_run(cfg: &SimConfig, ledger: &Path, how: RecordedRun) -> Result<Phase, String> {
    let (rollback, fail) = match how {
        RecordedRun::Upgrade => (None, None),
        RecordedRun::RollbackBefore(k) => (Some(k), None),
        RecordedRun::FailedCreate => (None, Some("create")),
    };
    match fault_free_in(cfg, ledger, rollback, fail) {
        Ok((_, phase)) => Ok(phase),
        Err(e) if fail.is_some() => {
            let (_, state) = replay(ledger).map_err(|e| e.to_string())?;
            tracing::debug!("the scripted failure stopped the run: {e}");
            Ok(state.phase())
        }
        Err(e) => Err(e),
    }
}

/// [`fault_free`] into the ledger folder `ledger`, with one scripted failure of the
/// simulated call `fail` when given.
fn fault_free_in(
    cfg: &SimConfig,
    ledger: &Path,
    rollback_before: Option<StepKey>,
    fail: Option<&'static str>,
) -> Result<(Observed, Phase), String> {
    let world = world_for(cfg).shared();
    if let Some(method) = fail {
        lock(&world).scripted.push_back((
            method,
            Fault::Fail(super::world::ErrorKind::Docker(
                super::world::DockerErrorKind::Api,
            )),
        ));
    }
    let plan = plan_of(cfg, &backup_dir(ledger));
    let mut journal = open(ledger);
    let now = lock(&world).now;
    journal
        .record(plan.run_id, now, Event::planned(plan))
        .map_err(|e| e.to_string())?;
    let observer = Unattended;
    let mut ex = executor(&world, journal, &observer);
    if let Some(until) = rollback_before {
        match drive(&world, ex.run(Some(until))) {
            Drove::Done(Ok(_)) => {}
            Drove::Done(Err(e)) => return Err(e.to_string()),
            Drove::Crashed => return Err("crashed without a crash scheduled".into()),
        }
        match drive(&world, ex.request_rollback("simulated")) {
            Drove::Done(Ok(())) | Drove::Done(Err(ExecError::RollbackRefused(_))) => {}
            Drove::Done(Err(e)) => return Err(e.to_string()),
            Drove::Crashed => return Err("crashed without a crash scheduled".into()),
        }
    }
    let phase = match drive(&world, ex.run(None)) {
        Drove::Done(Ok(crate::executor::Stopped::Finished(p))) => p,
        Drove::Done(Ok(s)) => return Err(format!("stopped at {s:?}")),
        Drove::Done(Err(e)) => return Err(e.to_string()),
        Drove::Crashed => return Err("crashed without a crash scheduled".into()),
    };
    let end = lock(&world).observed();
    Ok((end, phase))
}

/// The dump folder, in the simulated world only (never touched on the host). The same
/// for every seed, so worlds compare.
fn backup_dir(_ledger_root: &Path) -> String {
    "/sim/backups".into()
}

fn line(r: &Recorded) -> String {
    let what = match &r.event {
        Event::StepIntent { key } => format!("intent {key}"),
        Event::StepDone { key, .. } => format!("done {key}"),
        Event::StepFailed {
            key,
            error,
            retryable,
            ..
        } => format!("failed {key} (retryable {retryable}): {error}"),
        Event::StepReconciled { key, finding, .. } => format!("reconciled {key}: {finding:?}"),
        Event::StepResolved(d) => format!("resolved {} as {}", d.key, d.resolution),
        Event::RollbackRequested { reason } => format!("rollback requested: {reason}"),
        other => other.type_name().to_string(),
    };
    format!("#{} {} {what}", r.seq, r.at.format("%H:%M:%S%.6f"))
}

/// The fault kinds as the report counts them.
fn fault_name(f: &Fault) -> &'static str {
    match f {
        Fault::Fail(_) => "fail",
        Fault::FailAfter(_) => "fail-after",
        Fault::Cut { .. } => "cut",
        Fault::Delay(_) => "delay",
    }
}

/// Runs one seed against `reference` (see the module docs).
pub fn run_seed(cfg: &SimConfig, reference: &Reference, seed: u64) -> SeedReport {
    let mut rep = SeedReport {
        seed,
        ..SeedReport::default()
    };
    let mut rng = XorShift::new(seed ^ 0x5EED);
    let dir = ledger_dir();
    let ledger = dir.path().join("ledger");
    let world = world_for(cfg).shared();
    let per_mille = rng.below(cfg.max_fault_per_mille + 1);
    lock(&world).faults = Box::new(SeededFaults::new(seed, per_mille));
    if cfg.nodes > 1 {
        // Its own stream, so the faults and crashes draw as they would without it.
        lock(&world).yields = Some((XorShift::new(seed ^ 0x1EAF), cfg.yield_pct));
    }
    let plan = plan_of(cfg, &backup_dir(dir.path()));
    let witness = cfg
        .witness
        .map(|policy| SimWitness::new(policy, cfg.witness_away_pct));
    {
        let mut journal = open(&ledger);
        if let Some(w) = &witness
            && let Err(e) = w.attach(&mut journal, None)
        {
            rep.violations
                .push(format!("a reachable witness refused the first attach: {e}"));
            return rep;
        }
        let now = lock(&world).now;
        if let Err(e) = journal.record(plan.run_id, now, Event::planned(plan.clone())) {
            rep.violations
                .push(format!("recording the plan failed: {e}"));
            return rep;
        }
    }
    let observer = Unattended;
    #[cfg(any(test, feature = "sim-bugs"))]
    super::planted::plant(cfg.planted);
    let mut rollback_asked_before: Option<RollbackPoint> = None;
    let mut held: Option<State> = None;
    let mut lives = 0u32;
    let mut crashed_last = false;
    // Every node's old container's restart policy before the run (a rollback puts it back).
    let policies = restart_policies(&world, &plan);
    loop {
        lives += 1;
        {
            let mut w = lock(&world);
            w.crashed = false;
            let calm = lives > cfg.calm_after;
            w.crash_at =
                (!calm && rng.below(100) < cfg.crash_pct).then(|| w.awaits + rng.below(160));
            if calm {
                w.faults = Box::new(NoFaults);
            }
        }
        if lives > cfg.give_up_after {
            rep.violations.push(format!(
                "the run did not end after {} restarts (the last {} without faults)",
                lives - 1,
                lives - 1 - cfg.calm_after
            ));
            break;
        }
        let mut journal = open(&ledger);
        if std::mem::take(&mut crashed_last) && cfg.nodes > 1 {
            // Where the crash hit: a per-node step of a stage run side by side left open
            // (between its intents, during the performs, between its outcomes).
            let open = journal.state().in_doubt_all();
            if open.iter().any(|k| crate::steps::runs_concurrently(*k)) {
                rep.stage_crashes += 1;
            }
            if open.len() > 1 {
                rep.multi_doubt_crashes += 1;
            }
        }
        if let Some(w) = &witness {
            // What the last life left: under `required`, never more than the in-flight
            // record behind, and what the witness holds is the ledger's own bytes.
            w.check(&journal, &mut rep);
            let calls = w.life_budget(lives > cfg.calm_after, &mut rng);
            if calls.is_some() {
                *rep.faults.entry("witness-away").or_default() += 1;
            }
            if w.attach(&mut journal, calls).is_err() {
                // `required` and the witness away at the start: the run refuses to act.
                rep.restarts += 1;
                continue;
            }
        }
        let mut ex = executor(&world, journal, &observer);
        if let Some(v) = next_contradicts_world(&world, ex.journal().state()) {
            rep.violations.push(v);
        }
        // The operator: a decision where a step waits for one, a rollback sometimes.
        if let Some(aw) = ex.journal().state().awaiting_decision() {
            let resolution = truth(&world, aw.key, ex.journal().state());
            let event = Event::StepResolved(StepResolved {
                key: aw.key,
                resolution,
                reason: "simulated operator: looked at the world".into(),
                by: "sim".into(),
                reconciled_seq: aw.reconciled_seq,
            });
            let run_id = plan.run_id;
            if ex.journal().state().check(run_id, &event).is_ok() {
                // `resolve` is its own process: it opens the ledger, records, and exits.
                let now = lock(&world).now;
                let mut j = ex.into_journal();
                if let Err(e) = j.record(run_id, now, event) {
                    rep.violations
                        .push(format!("recording a decision failed: {e}"));
                    break;
                }
                rep.resolves += 1;
                ex = executor(&world, j, &observer);
            }
        }
        let state = ex.journal().state();
        let wants_rollback = rollback_asked_before.is_none()
            && state.rollback().is_none()
            && (matches!(state.next(), Next::Blocked { .. }) && state.can_rollback()
                || lives > 1 && rng.below(100) < cfg.rollback_pct);
        if wants_rollback {
            let point = RollbackPoint::of(state);
            match drive(&world, ex.request_rollback("simulated operator")) {
                Drove::Crashed => {
                    rep.crashes += 1;
                    rep.restarts += 1;
                    crashed_last = true;
                    continue;
                }
                // A request can be durable and still fail (under a `required` witness that
                // did not take it): the ledger says whether it was asked, not the result.
                Drove::Done(_) => {
                    if ex.journal().state().rollback().is_some() {
                        rollback_asked_before = Some(point);
                    }
                }
            }
        }
        match drive(&world, ex.run(None)) {
            Drove::Crashed => {
                rep.crashes += 1;
                rep.restarts += 1;
                crashed_last = true;
                continue;
            }
            Drove::Done(Ok(crate::executor::Stopped::Finished(phase))) => {
                rep.phase = Some(phase);
                held = Some(ex.journal().state().clone());
                break;
            }
            Drove::Done(Ok(crate::executor::Stopped::Until(_))) => unreachable!("no --until"),
            Drove::Done(Err(_)) => {
                rep.restarts += 1;
            }
        }
    }
    if let Some(w) = &witness {
        let mut journal = open(&ledger);
        w.check(&journal, &mut rep);
        // The operator brings the witness back and the next command catches it up; then it
        // holds exactly the ledger, one row per record.
        match w.attach(&mut journal, None) {
            Ok(()) => w.check_complete(&journal, &mut rep),
            Err(e) => rep
                .violations
                .push(format!("the witness, back, could not be caught up: {e}")),
        }
    }
    // The executor and its journal are dropped here: the ledger is read as `ledger verify`
    // and a fresh `status` would read it. The checks' own fault-free runs have no bug.
    #[cfg(any(test, feature = "sim-bugs"))]
    super::planted::plant(None);
    let w = lock(&world);
    for e in &w.trace {
        if let Some(f) = &e.fault {
            *rep.faults.entry(fault_name(f)).or_default() += 1;
            if let Fault::Fail(k) | Fault::FailAfter(k) | Fault::Cut { kind: k, .. } = f {
                *rep.fault_kinds.entry(format!("{k:?}")).or_default() += 1;
            }
        }
    }
    drop(w);
    check(
        cfg,
        reference,
        &world,
        &ledger,
        held.as_ref(),
        rollback_asked_before,
        &mut rep,
    );
    check_nodes(cfg, &world, &plan, &policies, &mut rep);
    rep
}

/// Each node's old container's restart policy (by node).
fn restart_policies(world: &SharedWorld, plan: &Plan) -> BTreeMap<u8, String> {
    let w = lock(world);
    plan.nodes()
        .into_iter()
        .filter_map(|n| {
            let id = plan.for_node(n).old_container.id;
            let c = w.containers.get(&id)?;
            Some((n.0, c.info.host.restart.normalised().name))
        })
        .collect()
}

/// The node a [`qualified`](super::world::qualified) container name is on.
fn node_of(qualified: &str) -> u8 {
    qualified
        .strip_prefix("node")
        .and_then(|r| r.split_once('/'))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or(0)
}

/// A name without its node.
fn unqualified(name: &str) -> &str {
    match name.strip_prefix("node").and_then(|r| r.split_once('/')) {
        Some((n, rest)) if n.parse::<u8>().is_ok() => rest,
        _ => name,
    }
}

/// The node an action on a container is on (`None`: not a container's action).
fn action_node(kind: &ActionKind) -> Option<u8> {
    match kind {
        ActionKind::Stop { container }
        | ActionKind::DockerInit { container }
        | ActionKind::CreateContainer { container } => Some(node_of(container)),
        _ => None,
    }
}

/// Invariant (e), per node of the plan, read from the world directly (not from the
/// fault-free reference): no node's container created twice; upgraded, every node's new
/// container runs the target image and answers healthy, its old one renamed and stopped;
/// rolled back, every node's old container runs under its name with its restart policy
/// back, no other container of the node runs, and every region's heartbeat database (and
/// the RM database's version and HA) is back.
fn check_nodes(
    cfg: &SimConfig,
    world: &SharedWorld,
    plan: &Plan,
    policies: &BTreeMap<u8, String>,
    rep: &mut SeedReport,
) {
    let w = lock(world);
    let mut created: BTreeMap<&str, u32> = BTreeMap::new();
    for a in &w.actions {
        if let ActionKind::CreateContainer { container } = &a.kind {
            *created.entry(container).or_default() += 1;
        }
    }
    for (name, n) in created {
        if n > 1 {
            rep.violations
                .push(format!("(e) container {name} was created {n} times"));
        }
    }
    let Some(phase) = rep.phase else {
        return;
    };
    let mut found = Vec::new();
    for n in plan.nodes() {
        let np = plan.for_node(n);
        let node = n.0;
        let on = |name: &str| w.find_on(node, name).map(|id| &w.containers[&id]);
        let old = w.containers.get(&np.old_container.id);
        match phase {
            Phase::Completed => {
                match on(&np.new_name) {
                    Some(c)
                        if c.info.status.is_running()
                            && c.info.image == plan.target_image
                            && c.info.id != np.old_container.id => {}
                    c => found.push(format!(
                        "{n}: new container `{}` not running {}: {:?}",
                        np.new_name,
                        plan.target_image,
                        c.map(|c| (&c.info.id, &c.info.image, c.info.status.is_running()))
                    )),
                }
                let key = np.health_url.trim_end_matches('/');
                let healthy = w.health.get(key).is_some_and(|spot| {
                    spot.node == node
                        && on(&spot.container).is_some_and(|c| {
                            c.info.status.is_running()
                                && c.info.image == plan.target_image
                                && c.info.started_at.is_some_and(|t| {
                                    (w.now - t).to_std().unwrap_or_default() >= spot.warmup
                                })
                        })
                });
                if !healthy {
                    found.push(format!("{n}: {} does not answer healthy", np.health_url));
                }
                // With recorded settings the old container's restart policy is set to `no`
                // (`old-restart-off`) and the new one inherits the recorded policy.
                let settings = np.container_settings();
                let old_policy = settings.map(|_| "no".to_string());
                match old {
                    Some(c)
                        if c.node == node
                            && c.info.name == np.old_renamed_to
                            && !c.info.status.is_running()
                            && old_policy
                                .as_ref()
                                .is_none_or(|p| *p == c.info.host.restart.normalised().name) => {}
                    c => found.push(format!(
                        "{n}: old container not renamed to `{}`, stopped, restart policy {:?}: {:?}",
                        np.old_renamed_to,
                        old_policy,
                        c.map(|c| (
                            &c.info.name,
                            c.info.status.is_running(),
                            c.info.host.restart.normalised().name
                        ))
                    )),
                }
                if let (Some(s), Some(c)) = (settings, on(&np.new_name))
                    && c.info.host.restart.normalised().name != s.restart.name
                {
                    found.push(format!(
                        "{n}: new container's restart policy {}, not the recorded {}",
                        c.info.host.restart.normalised().name,
                        s.restart.name
                    ));
                }
            }
            Phase::RolledBack => {
                match old {
                    Some(c)
                        if c.node == node
                            && c.info.name == np.old_container.name
                            && c.info.status.is_running()
                            && policies.get(&node)
                                == Some(&c.info.host.restart.normalised().name) => {}
                    c => found.push(format!(
                        "{n}: old container not back as `{}`, running, restart policy {:?}: {:?}",
                        np.old_container.name,
                        policies.get(&node),
                        c.map(|c| (
                            &c.info.name,
                            c.info.status.is_running(),
                            c.info.host.restart.normalised().name
                        ))
                    )),
                }
                for c in w.containers.values() {
                    if c.node == node
                        && c.info.id != np.old_container.id
                        && c.info.status.is_running()
                    {
                        found.push(format!(
                            "{n}: container `{}` ({}) runs beside the old one after the rollback",
                            c.info.name, c.info.image
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    if phase == Phase::RolledBack {
        let rm = w.databases.get(RM);
        if rm.and_then(|d| d.schema_version.clone()) != Some(cfg.source.to_string()) {
            found.push(format!(
                "{RM}: schema version {:?} after the rollback, not {}",
                rm.and_then(|d| d.schema_version.clone()),
                cfg.source
            ));
        }
        for r in plan.regions() {
            let db = plan.region_plan(r).heartbeat_db;
            if w.databases.get(&db).is_none_or(|d| d.heartbeat.is_none()) {
                found.push(format!("{r}: heartbeat database {db} not restored"));
            }
        }
    }
    for f in found {
        rep.violations.push(format!("(e) {f}"));
    }
}

/// The simulated witness of one seed (issue 14): one in-memory witness for all the seed's
/// process lives, attached to each life's journal through the real bridge.
struct SimWitness {
    policy: crate::witness::WitnessPolicy,
    away_pct: u64,
    memory: std::sync::Arc<crate::witness::MemoryWitness>,
}

impl SimWitness {
    fn new(policy: crate::witness::WitnessPolicy, away_pct: u64) -> SimWitness {
        SimWitness {
            policy,
            away_pct,
            memory: std::sync::Arc::new(crate::witness::MemoryWitness::new()),
        }
    }

    /// How many calls the witness answers in this life before it goes away (`None`: it
    /// stays). Calm lives keep it, so that a seed ends.
    fn life_budget(&self, calm: bool, rng: &mut XorShift) -> Option<u64> {
        (!calm && rng.below(100) < self.away_pct).then(|| rng.below(24))
    }

    /// Attaches the witness to `journal` as a command does (catch-up first).
    fn attach(
        &self,
        journal: &mut Journal,
        calls: Option<u64>,
    ) -> Result<(), crate::executor::JournalError> {
        self.memory.unreachable_after(calls);
        let shared = std::sync::Arc::clone(&self.memory);
        let mirror = crate::executor::Mirror::spawn(
            move || shared,
            "sim witness".into(),
            self.policy,
            "sim-host".into(),
        )
        .expect("the witness bridge thread starts");
        journal.attach_mirror(mirror).map(|_| ())
    }

    /// Every witness row is the ledger's record at its seq, byte for byte; under
    /// `required`, the witness is at most one record (the one in flight) behind.
    fn check(&self, journal: &Journal, rep: &mut SeedReport) {
        let view = journal.ledger().view();
        let local: Vec<crate::ledger::Record> = view.records().filter_map(Result::ok).collect();
        let rows = self.memory.rows(view.ledger_id());
        for row in &rows {
            let same = local
                .get((row.seq as usize).wrapping_sub(1))
                .is_some_and(|r| r.seq == row.seq && r.stored == row.stored);
            if !same {
                rep.violations.push(format!(
                    "the witness holds a record at seq {} that is not the ledger's",
                    row.seq
                ));
            }
        }
        let local_head = local.last().map_or(0, |r| r.seq);
        let witness_head = rows.iter().map(|r| r.seq).max().unwrap_or(0);
        if self.policy == crate::witness::WitnessPolicy::Required && local_head > witness_head + 1 {
            rep.violations.push(format!(
                "under `required` the witness holds seq {witness_head} but the ledger seq \
                 {local_head}: an action ran before its intent was on the witness"
            ));
        }
    }

    /// After a catch-up: one row per record, the ledger's bytes.
    fn check_complete(&self, journal: &Journal, rep: &mut SeedReport) {
        let view = journal.ledger().view();
        let local: Vec<(u64, Vec<u8>)> = view
            .records()
            .filter_map(Result::ok)
            .map(|r| (r.seq, r.stored))
            .collect();
        let rows: Vec<(u64, Vec<u8>)> = self
            .memory
            .rows(view.ledger_id())
            .into_iter()
            .map(|r| (r.seq, r.stored))
            .collect();
        if rows != local {
            rep.violations.push(format!(
                "after a catch-up the witness holds {} rows for {} records, or other bytes",
                rows.len(),
                local.len()
            ));
        }
    }
}

/// How far the upgrade had come when a rollback was asked for: what the fault-free
/// rollback the seed is compared with is asked before.
#[derive(Debug, Clone)]
struct RollbackPoint {
    /// The first upgrade step not done (a deployment: of the steps that are no node's,
    /// which decide the databases and HA).
    first: StepKey,
    /// A deployment: per node, the first of that node's upgrade steps not done. Empty for
    /// a single node.
    nodes: Vec<StepKey>,
}

impl Default for RollbackPoint {
    fn default() -> Self {
        RollbackPoint {
            first: StepKey::Complete,
            nodes: vec![],
        }
    }
}

impl RollbackPoint {
    fn of(state: &State) -> RollbackPoint {
        let Some(plan) = state.plan() else {
            return RollbackPoint::default();
        };
        let keys = crate::steps::plan_keys(plan);
        let first_not_done = |pick: &dyn Fn(&StepKey) -> bool| {
            keys.iter()
                .copied()
                .filter(|k| pick(k))
                .find(|k| state.facts(*k).is_none())
                .unwrap_or(StepKey::Complete)
        };
        let nodes = plan.nodes();
        if nodes.len() < 2 {
            return RollbackPoint {
                first: first_not_done(&|_| true),
                nodes: vec![],
            };
        }
        RollbackPoint {
            first: first_not_done(&|k| k.node().is_none()),
            nodes: nodes
                .into_iter()
                .map(|n| first_not_done(&|k| k.node() == Some(n)))
                .collect(),
        }
    }
}

/// What an operator who looked at the world would decide about `key`.
fn truth(world: &SharedWorld, key: StepKey, state: &State) -> Resolution {
    let w = lock(world);
    let since = state
        .attempts()
        .iter()
        .rev()
        .find(|a| a.key == key)
        .map(|a| a.intent_at);
    let acted = |pred: &dyn Fn(&ActionKind) -> bool| {
        w.actions
            .iter()
            .any(|a| since.is_some_and(|t| a.at >= t) && pred(&a.kind))
    };
    // On the step's own node: another node's stop in the same stage is not this one's.
    let node = key.node().map_or(0, |n| n.0);
    let here = |k: &ActionKind| action_node(k) == Some(node);
    let done = match key.base() {
        StepKey::RunDockerInit => acted(&|k| matches!(k, ActionKind::DockerInit { .. }) && here(k)),
        StepKey::StopOldContainer | StepKey::StopNewContainer => {
            acted(&|k| matches!(k, ActionKind::Stop { .. }) && here(k))
        }
        _ => false,
    };
    if done {
        Resolution::Done
    } else {
        Resolution::NotDone
    }
}

/// Invariant (d), checked at each restart before anything runs: the step `State::next`
/// permits must not be one whose irreversible effect the world shows happened in that
/// step's latest attempt (a stop or `docker_init.sh` run again on a wrong "not done").
/// A retry after a recorded failure is exempt: the executor performs those knowing an
/// earlier attempt may have acted (a stop of a stopped container is a no-op there).
fn next_contradicts_world(world: &SharedWorld, state: &State) -> Option<String> {
    let Next::Run { step, retry } = state.next() else {
        return None;
    };
    // Every step the executor would start now: with several nodes, one per lane.
    let mut steps = vec![(step, retry)];
    for (s, r) in state.runnable() {
        if !steps.iter().any(|(t, _)| t.key() == s.key()) {
            steps.push((s, r));
        }
    }
    steps
        .into_iter()
        .filter(|(_, retry)| !retry)
        .find_map(|(step, _)| contradicted(world, state, &step))
}

/// (d) for one step permitted as a first try.
fn contradicted(world: &SharedWorld, state: &State, step: &Step) -> Option<String> {
    let key = step.key();
    let (node, _, inner) = step.scoped();
    let attempt = state.attempts().iter().rev().find(|a| a.key == key)?;
    let w = lock(world);
    let since = attempt.intent_at;
    let hit = w.actions.iter().find(|a| {
        a.at >= since
            && action_node(&a.kind) == Some(node.0)
            && match (&a.kind, inner) {
                (ActionKind::DockerInit { .. }, Step::RunDockerInit(_)) => true,
                (
                    ActionKind::Stop { container },
                    Step::StopOldContainer(s) | Step::StopNewContainer(s),
                ) => *container == super::world::qualified(node.0, &s.name),
                _ => false,
            }
    })?;
    Some(format!(
        "(d) next permits {key} (not as a retry) although the world shows {:?} at {} since its attempt {}'s intent",
        hit.kind, hit.at, attempt.number
    ))
}

/// Which step kinds may cause an action.
fn may_cause(kind: &ActionKind, key: StepKey) -> bool {
    // A node's step causes what the single-node step it performs causes, on that node.
    if action_node(kind).is_some_and(|n| Some(n) != key.node().map(|k| k.0)) {
        return false;
    }
    let key = key.base();
    match kind {
        ActionKind::Stop { .. } => matches!(
            key,
            StepKey::StopOldContainer | StepKey::StopNewContainer | StepKey::RestartOldContainer
        ),
        ActionKind::Drop { .. } | ActionKind::Create { .. } => {
            matches!(
                key,
                StepKey::RecreateDatabase { .. } | StepKey::Restore { .. }
            )
        }
        ActionKind::Restore { .. } => matches!(key, StepKey::Restore { .. }),
        ActionKind::DockerInit { .. } => key == StepKey::RunDockerInit,
        ActionKind::CreateContainer { .. } => key == StepKey::CreateNewContainer,
        ActionKind::HaWrite { .. } => matches!(
            key,
            StepKey::DisableHa
                | StepKey::EnableHa
                | StepKey::RollbackDisableHa
                | StepKey::RollbackEnableHa
        ),
    }
}

/// The invariants (a), (b), (c) at the end of a seed.
#[allow(clippy::too_many_arguments)]
fn check(
    cfg: &SimConfig,
    reference: &Reference,
    world: &SharedWorld,
    ledger: &Path,
    held: Option<&State>,
    rollback_asked_before: Option<RollbackPoint>,
    rep: &mut SeedReport,
) {
    // (c) the ledger verifies, and replaying it gives the state the executor held.
    let records = match open_reader(ledger) {
        Err(e) => {
            rep.violations
                .push(format!("(c) the ledger does not open: {e}"));
            return;
        }
        Ok(reader) => {
            match crate::ledger::verify::verify(reader.view(), None, &crate::events::EventDecoder) {
                Ok(r) if r.problem.is_none() => {}
                Ok(r) => rep
                    .violations
                    .push(format!("(c) ledger verify: {:?}", r.problem)),
                Err(e) => rep.violations.push(format!("(c) ledger verify: {e}")),
            }
            drop(reader);
            match replay(ledger) {
                Ok((records, state)) => {
                    if let Some(h) = held
                        && *h != state
                    {
                        rep.violations.push(
                            "(c) replaying the ledger gives another state than the executor held"
                                .into(),
                        );
                    }
                    (records, state)
                }
                Err(e) => {
                    rep.violations
                        .push(format!("(c) the ledger does not replay: {e}"));
                    return;
                }
            }
        }
    };
    let (records, state) = records;
    rep.trace = records.iter().map(line).collect();

    // (b) every irreversible action lies in an attempt of a step that may cause it: after
    // its durable intent and, except for a stop (which the engine may finish after the
    // request failed), before that attempt's outcome; at most one of a kind per attempt.
    let w = lock(world);
    let mut per_attempt: BTreeMap<(u64, String), u32> = BTreeMap::new();
    for a in &w.actions {
        let attempt = state
            .attempts()
            .iter()
            .rfind(|t| may_cause(&a.kind, t.key) && t.intent_at <= a.at);
        let Some(t) = attempt else {
            rep.violations.push(format!(
                "(b) {:?} at {} happened without a durable intent of a step that does it",
                a.kind, a.at
            ));
            continue;
        };
        let is_stop = matches!(a.kind, ActionKind::Stop { .. });
        if !is_stop && t.outcome.as_ref().is_some_and(|o| o.at() < a.at) {
            rep.violations.push(format!(
                "(b) {:?} at {} happened after attempt {} of {} was closed (intent #{}), with no new intent",
                a.kind, a.at, t.number, t.key, t.intent_seq
            ));
        }
        let n = per_attempt
            .entry((t.intent_seq, format!("{:?}", a.kind)))
            .or_default();
        *n += 1;
        if *n > 1 {
            rep.violations.push(format!(
                "(b) {:?} happened {} times for one intent (#{} {})",
                a.kind, n, t.intent_seq, t.key
            ));
        }
    }

    // (a) the world ends as an uninterrupted run leaves it.
    let end = w.observed();
    drop(w);
    match rep.phase {
        Some(Phase::Completed) => diff(&reference.upgraded, &end, false, rep),
        Some(Phase::RolledBack) => {
            let point = rollback_asked_before.unwrap_or_default();
            let rolled_back = |before: StepKey| match reference.rolled_back(cfg, before) {
                Ok((expected, Phase::RolledBack)) => Ok(expected),
                Ok((_, p)) => Err(format!(
                    "(a) a fault-free rollback asked before {before} ended {p:?}"
                )),
                Err(e) => Err(format!(
                    "(a) a fault-free rollback asked before {before} failed: {e}"
                )),
            };
            let expected = rolled_back(point.first).and_then(|mut expected| {
                if point.nodes.is_empty() {
                    return Ok(expected);
                }
                // A deployment: each node's containers as a fault-free rollback from that
                // node's own progress leaves them (the lanes of a stage need not have
                // progressed alike when the rollback was asked).
                expected.containers.clear();
                for (n, before) in point.nodes.iter().enumerate() {
                    let of_node = rolled_back(*before)?;
                    expected.containers.extend(
                        of_node
                            .containers
                            .into_iter()
                            .filter(|(name, _)| usize::from(node_of(name)) == n),
                    );
                }
                Ok(expected)
            });
            match expected {
                Ok(expected) => diff(&expected, &end, true, rep),
                Err(e) => rep.violations.push(e),
            }
        }
        Some(p) => rep.violations.push(format!("(a) the run ended {p:?}")),
        None => {}
    }
    if !rep.diff.is_empty() {
        rep.violations
            .push("(a) the world differs from the uninterrupted run's".into());
    }
}

/// The differences between two observed worlds. After a rollback the heartbeat rows are
/// left out: a prune cut short before the rollback was asked for leaves fewer rows than
/// the fault-free run stopped before it, and the rollback restores only what was dumped.
fn diff(expected: &Observed, found: &Observed, rollback: bool, rep: &mut SeedReport) {
    for (name, e) in &expected.containers {
        match found.containers.get(name) {
            Some(f) if f == e => {}
            f => rep
                .diff
                .push(format!("container {name}: expected {e:?}, found {f:?}")),
        }
    }
    for (name, (_, running, _)) in &found.containers {
        // A rollback keeps a new container that a failed or doubtful step created, renamed
        // aside and stopped, for diagnosis; the fault-free run it is compared with may have
        // stopped before creating it.
        let kept_aside = rollback && !running && unqualified(name) != OLD;
        if !expected.containers.contains_key(name) && !kept_aside {
            rep.diff
                .push(format!("container {name}: not expected, found"));
        }
    }
    let norm = |d: &SimDatabase| {
        let mut d = d.clone();
        if rollback {
            d.heartbeat = None;
        }
        // The refetch interval written with HA is computed from the downtime, which the
        // injected delays lengthen: compare the rest of the value.
        d.ha_config = d.ha_config.map(|c| without_refetch_interval(&c));
        d
    };
    for (name, e) in &expected.databases {
        match found.databases.get(name) {
            Some(f) if norm(f) == norm(e) => {}
            f => rep
                .diff
                .push(format!("database {name}: expected {e:?}, found {f:?}")),
        }
    }
    for name in found.databases.keys() {
        if !expected.databases.contains_key(name) {
            rep.diff
                .push(format!("database {name}: not expected, found"));
        }
    }
    let files = |o: &Observed| -> BTreeMap<String, String> {
        o.files
            .iter()
            // After a rollback: the dumps, and the logs a `docker_init.sh` started before
            // the rollback left (the logs folder is not rolled back, by design).
            .filter(|(k, _)| {
                let host = k.split_once(':').filter(|(n, _)| n.starts_with("node"));
                let path = host.map_or(k.as_str(), |(_, p)| p);
                !rollback || !(k.ends_with(".sql") || path.starts_with(INIT_LOG_DIR))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    if files(expected) != files(found) {
        rep.diff.push(format!(
            "files: expected {:?}, found {:?}",
            files(expected).keys().collect::<Vec<_>>(),
            files(found).keys().collect::<Vec<_>>()
        ));
    }
}

/// `ha.config` without its `refetchStoreIntervalMin` value.
fn without_refetch_interval(config: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(config) {
        Ok(serde_json::Value::Object(mut m)) => {
            m.remove("refetchStoreIntervalMin");
            serde_json::Value::Object(m).to_string()
        }
        _ => config.to_string(),
    }
}

/// Totals over many seeds.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    /// Seeds run.
    pub seeds: u64,
    /// Crashes injected.
    pub crashes: u64,
    /// Restarts.
    pub restarts: u64,
    /// Decisions recorded.
    pub resolves: u64,
    /// Crashes that left a step of a stage run side by side in doubt.
    pub stage_crashes: u64,
    /// Crashes that left several steps in doubt.
    pub multi_doubt_crashes: u64,
    /// Faults by kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// Seeds that ended upgraded / rolled back.
    pub phases: BTreeMap<String, u64>,
    /// Faults by error kind (`Docker(Api)`, ...; delays not counted).
    pub fault_kinds: BTreeMap<String, u64>,
    /// The reports of the seeds with a violation.
    pub failed: Vec<SeedReport>,
    /// The last seed's report.
    pub last: Option<SeedReport>,
}

impl Totals {
    /// Adds one seed's report.
    pub fn add(&mut self, r: SeedReport) {
        self.seeds += 1;
        self.crashes += u64::from(r.crashes);
        self.restarts += u64::from(r.restarts);
        self.resolves += u64::from(r.resolves);
        self.stage_crashes += u64::from(r.stage_crashes);
        self.multi_doubt_crashes += u64::from(r.multi_doubt_crashes);
        for (k, n) in &r.faults {
            *self.faults.entry(k).or_default() += n;
        }
        *self
            .phases
            .entry(r.phase.map_or("none".into(), |p| format!("{p:?}")))
            .or_default() += 1;
        for (k, n) in &r.fault_kinds {
            *self.fault_kinds.entry(k.clone()).or_default() += n;
        }
        if !r.violations.is_empty() {
            self.failed.push(r.clone());
        }
        self.last = Some(r);
    }

    /// Merges another thread's totals.
    pub fn merge(&mut self, o: Totals) {
        self.seeds += o.seeds;
        self.crashes += o.crashes;
        self.restarts += o.restarts;
        self.resolves += o.resolves;
        self.stage_crashes += o.stage_crashes;
        self.multi_doubt_crashes += o.multi_doubt_crashes;
        for (k, n) in o.faults {
            *self.faults.entry(k).or_default() += n;
        }
        for (k, n) in o.phases {
            *self.phases.entry(k).or_default() += n;
        }
        for (k, n) in o.fault_kinds {
            *self.fault_kinds.entry(k).or_default() += n;
        }
        self.failed.extend(o.failed);
        if o.last.is_some() {
            self.last = o.last;
        }
    }
}

/// Runs `seeds` on `threads` threads (seed `i` on thread `i % threads`).
pub fn run_seeds(cfg: &SimConfig, seeds: &[u64], threads: usize) -> Result<Totals, String> {
    let reference = reference(cfg)?;
    let threads = threads.max(1);
    let mut totals = Totals::default();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let reference = &reference;
                s.spawn(move || {
                    let mut tot = Totals::default();
                    for seed in seeds.iter().skip(t).step_by(threads) {
                        tot.add(run_seed(cfg, reference, *seed));
                    }
                    tot
                })
            })
            .collect();
        for h in handles {
            if let Ok(t) = h.join() {
                totals.merge(t);
            }
        }
    });
    Ok(totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SimConfig {
        SimConfig::new("3.3.0".parse().unwrap(), "3.3.1".parse().unwrap())
    }

    /// Issue 14: the journal's witness bridge works under the simulator, which polls the
    /// executor by hand with no runtime. Under `required`, a witness lost between two steps
    /// stops the run before the next step touches the world; the run refuses to start
    /// again while it is away, and completes once it is back, the witness then holding the
    /// ledger record for record.
    #[test]
    fn a_witnessed_run_stops_before_touching_the_world_while_the_witness_is_away() {
        use crate::executor::{JournalError, Stopped};
        use crate::witness::bridge::Mirror;
        use crate::witness::{MemoryWitness, Witness, WitnessPolicy};
        use std::sync::Arc;
        let c = cfg();
        let dir = ledger_dir();
        let ledger = dir.path().join("ledger");
        let world = build_world(c.source, c.target).shared();
        let plan = plan_for(c.source, c.target, &backup_dir(dir.path()));
        let w = Arc::new(MemoryWitness::new());
        let mirror = || {
            let w = Arc::clone(&w);
            Mirror::spawn(
                move || w,
                "memory".into(),
                WitnessPolicy::Required,
                "sim-host".into(),
            )
            .unwrap()
        };
        let mut journal = open(&ledger);
        journal.attach_mirror(mirror()).unwrap();
        let now = lock(&world).now;
        journal
            .record(plan.run_id, now, Event::planned(plan))
            .unwrap();
        let observer = Unattended;
        let mut ex = executor(&world, journal, &observer);
        let until = StepKey::StopOldContainer;
        assert!(matches!(
            drive(&world, ex.run(Some(until))),
            Drove::Done(Ok(Stopped::Until(_)))
        ));
        w.set_reachable(false);
        let before = lock(&world).observed();
        match drive(&world, ex.run(None)) {
            Drove::Done(Err(ExecError::Journal(JournalError::Witness { .. }))) => {}
            Drove::Done(other) => panic!("the run was not stopped by the witness: {other:?}"),
            Drove::Crashed => panic!("crashed"),
        }
        assert_eq!(lock(&world).observed(), before, "the world was touched");
        drop(ex);
        let mut journal = open(&ledger);
        assert!(journal.attach_mirror(mirror()).is_err(), "acted while away");
        drop(journal);
        w.set_reachable(true);
        let mut journal = open(&ledger);
        journal.attach_mirror(mirror()).unwrap();
        let mut ex = executor(&world, journal, &observer);
        assert!(matches!(
            drive(&world, ex.run(None)),
            Drove::Done(Ok(Stopped::Finished(Phase::Completed)))
        ));
        let view = ex.journal().ledger().view();
        let local: Vec<(u64, Vec<u8>)> = view
            .records()
            .map(|r| r.map(|r| (r.seq, r.stored)).unwrap())
            .collect();
        let id = view.ledger_id();
        let on_witness: Vec<(u64, Vec<u8>)> = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(w.records(id, 0))
            .unwrap()
            .into_iter()
            .map(|r| (r.seq, r.stored))
            .collect();
        assert_eq!(on_witness, local);
    }

    fn print(t: &Totals) {
        for r in t.failed.iter().take(3) {
            eprintln!("seed {}: {:?}", r.seed, r.violations);
            for l in &r.trace {
                eprintln!("  {l}");
            }
            for d in &r.diff {
                eprintln!("  diff: {d}");
            }
        }
    }

    #[test]
    fn an_uninterrupted_run_completes_and_a_rollback_from_the_end_rolls_back() {
        let c = cfg();
        reference(&c).unwrap();
        let (_, phase) = fault_free(&c, Some(StepKey::Complete)).unwrap();
        assert_eq!(phase, Phase::RolledBack);
    }

    /// `record_run` leaves a real ledger of each kind: upgraded, rolled back, failed.
    #[test]
    fn recorded_runs_end_as_asked() {
        let c = cfg();
        let dir = ledger_dir();
        let kinds = [
            (RecordedRun::Upgrade, Phase::Completed),
            (
                RecordedRun::RollbackBefore(StepKey::Complete),
                Phase::RolledBack,
            ),
        ];
        for (i, (how, want)) in kinds.into_iter().enumerate() {
            let l = dir.path().join(format!("l{i}"));
            assert_eq!(record_run(&c, &l, how).unwrap(), want, "{how:?}");
        }
        let l = dir.path().join("failed");
        let phase = record_run(&c, &l, RecordedRun::FailedCreate).unwrap();
        let (records, _) = replay(&l).unwrap();
        assert!(
            records
                .iter()
                .any(|r| matches!(r.event, Event::StepFailed { .. })),
            "ended {phase:?} without a failed step"
        );
        assert_ne!(phase, Phase::Completed);
    }

    #[test]
    fn two_hundred_seeds_hold_the_invariants() {
        let seeds: Vec<u64> = (0..200).collect();
        let t = run_seeds(&cfg(), &seeds, 2).unwrap();
        print(&t);
        for r in &t.failed {
            eprintln!("seed {}: {:?}", r.seed, r.violations);
        }
        eprintln!(
            "open {} ms, busy {}",
            OPEN_NANOS.load(Ordering::Relaxed) / 1_000_000,
            BUSY.load(Ordering::Relaxed)
        );
        eprintln!(
            "{} seeds, {} crashes, {} restarts, {} resolves, faults {:?}, phases {:?}",
            t.seeds, t.crashes, t.restarts, t.resolves, t.faults, t.phases
        );
        assert!(t.failed.is_empty(), "{} seeds failed", t.failed.len());
    }

    /// Issue 14: with a witness that goes away part-way through lives, under each policy,
    /// the seeds keep every invariant, the witness's too: under `required` it is never
    /// more than the in-flight record behind, and after a catch-up it holds exactly the
    /// ledger.
    #[test]
    fn witnessed_seeds_hold_the_invariants_under_both_policies() {
        for policy in [
            crate::witness::WitnessPolicy::Required,
            crate::witness::WitnessPolicy::BestEffort,
        ] {
            let cfg = SimConfig {
                witness: Some(policy),
                ..cfg()
            };
            let seeds: Vec<u64> = (0..120).collect();
            let t = run_seeds(&cfg, &seeds, 2).unwrap();
            for r in &t.failed {
                eprintln!("{policy:?} seed {}: {:?}", r.seed, r.violations);
            }
            assert!(
                t.faults.get("witness-away").copied().unwrap_or(0) > 20,
                "the witness went away in too few lives: {:?}",
                t.faults
            );
            assert!(
                t.failed.is_empty(),
                "{policy:?}: {} seeds failed",
                t.failed.len()
            );
        }
    }

    /// Seeds the witnessed simulator found: a rollback request the witness did not take
    /// under `required` was durable locally, and the same journal then appended the
    /// rollback's first intent before the witness had the request (witness 5, ledger 7).
    /// The journal now catches a lagging `required` witness up before it appends anything.
    #[test]
    fn witnessed_regression_seeds_hold_the_invariants() {
        let cfg = SimConfig {
            witness: Some(crate::witness::WitnessPolicy::Required),
            ..cfg()
        };
        let t = run_seeds(&cfg, &[348, 646, 794], 1).unwrap();
        for r in &t.failed {
            eprintln!("seed {}: {:?}", r.seed, r.violations);
        }
        assert!(t.failed.is_empty(), "{} seeds failed", t.failed.len());
    }

    /// The fault-free rollbacks `Reference` runs once per path and shares between seeds
    /// are a function of the step before which the rollback is asked: run again, each
    /// leaves the same world.
    #[test]
    fn a_fault_free_rollback_leaves_the_same_world_each_time() {
        let c = cfg();
        let plan = plan_for(c.source, c.target, "/sim/backups");
        for before in crate::steps::plan_keys(&plan) {
            let first = fault_free(&c, Some(before));
            assert_eq!(first, fault_free(&c, Some(before)), "before {before}");
        }
    }

    /// Runs seeds from 0 with `bug` planted until one violates an invariant: how many
    /// seeds it took and what was found.
    fn seeds_to_find(
        bug: super::super::planted::Bug,
        mut c: SimConfig,
        bound: u64,
    ) -> Option<(u64, Vec<String>)> {
        c.planted = Some(bug);
        let r = reference(&cfg()).unwrap();
        (0..bound).find_map(|s| {
            let rep = run_seed(&c, &r, s);
            (!rep.violations.is_empty()).then_some((s + 1, rep.violations))
        })
    }

    /// The simulator finds each planted bug within a bounded number of seeds, and the same
    /// seeds without the bug hold every invariant (so it is the bug that was found).
    #[test]
    fn planted_bugs_are_found() {
        use super::super::planted::Bug;
        for (bug, c, bound) in [
            (Bug::IntentAfterEffect, cfg(), 20),
            (Bug::InDoubtIsNotStarted, cfg(), 200),
            (Bug::RollbackNotIdempotent, rollbacks(), 400),
        ] {
            let found = seeds_to_find(bug, c.clone(), bound);
            eprintln!("planted {bug:?}: found after {found:?} (bound {bound} seeds)");
            let Some((n, _)) = found else {
                panic!("{bug:?} not found in {bound} seeds");
            };
            let r = reference(&c).unwrap();
            for s in 0..n {
                let rep = run_seed(&c, &r, s);
                assert!(
                    rep.violations.is_empty(),
                    "seed {s} without a bug: {:?}",
                    rep.violations
                );
            }
        }
    }

    /// The rollback-heavy configuration: a rollback asked for at every restart, up to 30 %
    /// of calls faulted.
    fn rollbacks() -> SimConfig {
        let mut c = cfg();
        c.rollback_pct = 100;
        c.max_fault_per_mille = 300;
        c
    }

    /// Regression seeds: each found a real defect, fixed since (docs/simulation.md).
    /// Seed 12 (rollback-heavy): `disable-ha` wrote `enable=false`, then its call failed
    /// (the connection lost after the commit), so the step was recorded failed without
    /// facts; the rollback then did not know HA's earlier value, left out
    /// `rollback-enable-ha`, and ended with HA off.
    /// Seed 1240 (default): `disable-ha` wrote `enable=false` and its call failed; the
    /// retry read `enable=false`, had nothing to write, and recorded that as HA's earlier
    /// value, so the rollback "restored" HA off.
    /// Seeds 6228, 1627, 4801, 7291, 8227 (default): the process died after `disable-ha`'s
    /// write and before its outcome was recorded; reconcile said "not done" and the value
    /// read before the write was lost with the process, so the rollback asked for right
    /// after the restart did not know HA had been on and left it off.
    ///
    /// Seeds 4430, 6250, 9856, 3731, 6225 (default): `create-new`'s create took effect and
    /// its call failed (a timeout after the engine created the container); every retry's
    /// create then met the name taken by the container this run had created, and the run
    /// never ended.
    #[test]
    fn regression_seeds_hold_the_invariants() {
        let mut seeds = vec![(rollbacks(), 12), (cfg(), 1240)];
        seeds.extend([6228, 1627, 4801, 7291, 8227].map(|s| (cfg(), s)));
        seeds.extend([4430, 6250, 9856, 3731, 6225].map(|s| (cfg(), s)));
        for (c, seed) in seeds {
            let r = reference(&c).unwrap();
            let rep = run_seed(&c, &r, seed);
            assert!(
                rep.violations.is_empty(),
                "seed {seed}: {:?}\n{}\n{}",
                rep.violations,
                rep.trace.join("\n"),
                rep.diff.join("\n")
            );
        }
    }
}
