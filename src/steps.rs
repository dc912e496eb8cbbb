//! The steps of an upgrade and of its rollback, as data the executor performs.
//!
//! A [`Step`] is a [`StepKey`] plus everything needed to perform it (container names and
//! ids, image, binds, env, database names, dump paths, the `ha.config` edit, timeouts),
//! derived from the [`Plan`] and from what earlier steps recorded ([`Context`]). The same
//! values feed `oms-upgrade plan` through [`Step::commands`], so what is shown is what
//! runs. Which step may come next is decided by `replay::State`; this module only knows
//! the order of each procedure ([`upgrade_keys`]) and which rollback steps a given
//! situation needs ([`rollback_keys`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::events::{
    ContainerSettings, DumpArtifact, EnvVar, HaAfter, HaMode, MetaDb, NodeIx, Plan, RegionIx,
    RestartPolicy, StepKey, Ulimit,
};
use crate::haconfig::{self, HaConfigError, HaEdit};
use crate::refetch::{self, RefetchDecision, RefetchPolicy};
use crate::versions::ProcedureId;

/// The heartbeat table, spelled as OMS spells it.
pub const HEARTBEAT_TABLE: &str = "heatbeat_sequence";
/// The line `docker_init.sh` ends with on success.
pub const INIT_SUCCESS_MARKER: &str = "【结束】全部初始化步骤执行成功";
/// Errors `docker_init.sh` may print that are expected and harmless (OceanBase metadata DB).
pub const INIT_HARMLESS_ERRORS: &[&str] =
    &["ERROR 1235 (0A000): Modify large text/lob column not supported"];
/// Where `docker_init.sh` writes `docker_init*.log` inside the container.
pub const INIT_LOG_DIR: &str = "/home/admin/logs";
/// The working folder `docker_init.sh` runs in: the runbook does `cd /root; sh docker_init.sh`.
pub const INIT_WORKING_DIR: &str = "/root";
/// Label keys put on the new container.
pub mod labels {
    /// The run id.
    pub const RUN_ID: &str = "oms-upgrade.run-id";
    /// `upgraded`.
    pub const ROLE: &str = "oms-upgrade.role";
    /// The old container's id.
    pub const REPLACES: &str = "oms-upgrade.replaces";
    /// Source version.
    pub const FROM_VERSION: &str = "oms-upgrade.from-version";
    /// Target version.
    pub const TO_VERSION: &str = "oms-upgrade.to-version";
}

/// The upgrade's steps for a procedure, in order.
pub fn upgrade_keys(procedure: ProcedureId) -> Vec<StepKey> {
    let mut k = Vec::new();
    if procedure.has_ha_steps() {
        k.push(StepKey::DisableHa);
    }
    k.extend([
        StepKey::PreStopCheck,
        StepKey::StopOldContainer,
        StepKey::PruneHeartbeat,
    ]);
    k.extend(MetaDb::ALL.map(|db| StepKey::Dump { db }));
    k.extend([
        StepKey::RenameOldContainer,
        StepKey::CreateNewContainer,
        StepKey::StartNewContainer,
    ]);
    if procedure.checks_supervisor() {
        k.push(StepKey::CheckSupervisor);
    }
    k.extend([StepKey::RunDockerInit, StepKey::ConfirmHealth]);
    if procedure.checks_online() {
        k.push(StepKey::CheckOnline);
    }
    if procedure.has_ha_steps() {
        k.push(StepKey::EnableHa);
    }
    // issue 16: the prune's table swap only renames the old rows aside inside the window;
    // counting and dropping them waits until after T2.
    k.extend([StepKey::DropPrunedHeartbeat, StepKey::Complete]);
    k
}

/// The upgrade's steps for `plan`: its procedure's ([`upgrade_keys`]), plus
/// `old-restart-off` right after `stop-old` when the plan recorded the old container's
/// settings (plans recorded before issue 12.3 did not, and their ledgers replay as written).
///
/// Why right after the stop: with `--restart always` Docker starts a stopped container
/// again when its daemon restarts, so from T1 on the old OMS could come back during the
/// prune and the dumps and later next to the new one on the host network. Setting the
/// policy before the stop would instead keep a running node down after a daemon restart
/// while the run waits (`run --until stop-old`). The step names the old container by id,
/// so it is the same step whether or not the rename has happened, and setting `no` again
/// is harmless, so a crash around it is resolved by reading the policy back.
pub fn plan_keys(plan: &Plan) -> Vec<StepKey> {
    let mut k = upgrade_keys(plan.procedure);
    if plan.container_settings().is_some()
        && let Some(i) = k.iter().position(|k| *k == StepKey::StopOldContainer)
    {
        k.insert(i + 1, StepKey::OldRestartOff);
    }
    if plan.deployment().is_some() {
        return deployment_keys(plan, &k);
    }
    k
}

/// True for the per-node steps that run on every node at once (one lane per node): the
/// stops, container creation and starts, health, and their rollback counterparts.
/// `docker-init` is not among them: the official order runs it once per region or per
/// node, and whether two runs of it may overlap on one metadata DB is not in the record.
pub fn runs_concurrently(key: StepKey) -> bool {
    key.node().is_some() && key.base() != StepKey::RunDockerInit
}

/// The single-node order `single` spread over a deployment's nodes and regions
/// (the brief, "The official multi-node upgrade"): each run of consecutive per-node steps
/// becomes that run for node 0, then node 1, ... (a stage, see [`stages`]); `docker-init`
/// runs on the nodes marked `runs_init`, one after the other; each heartbeat step runs for
/// every region, and the cm_hb dump becomes one dump per region.
fn deployment_keys(plan: &Plan, single: &[StepKey]) -> Vec<StepKey> {
    let nodes = plan.nodes();
    let regions = plan.regions();
    let mut out = Vec::new();
    let mut block: Vec<StepKey> = Vec::new();
    let flush = |block: &mut Vec<StepKey>, out: &mut Vec<StepKey>| {
        for &n in &nodes {
            for &k in block.iter() {
                // `old-restart-off` only where that node's plan recorded its settings.
                if k == StepKey::OldRestartOff && plan.for_node(n).container_settings().is_none() {
                    continue;
                }
                out.push(k.on_node(n));
            }
        }
        block.clear();
    };
    for &k in single {
        if runs_concurrently(k) {
            block.push(k);
            continue;
        }
        flush(&mut block, &mut out);
        if k == StepKey::RunDockerInit {
            out.extend(
                nodes
                    .iter()
                    .filter(|&&n| plan.node_meta(n).runs_init)
                    .map(|&n| k.on_node(n)),
            );
        } else if k.region().is_some() {
            out.extend(regions.iter().map(|&r| k.in_region(r)));
        } else {
            out.push(k);
        }
    }
    flush(&mut block, &mut out);
    out
}

/// The stages of a list of steps: each maximal run of consecutive steps that
/// [`runs_concurrently`] is one stage with one lane per node (in the list's order within
/// a node); every other step is a stage of its own. A stage ends when all its lanes are
/// done; the lanes of a stage run side by side. A single-node list has one lane per stage,
/// so its steps run one at a time, in order.
pub fn stages(keys: &[StepKey]) -> Vec<Vec<Vec<StepKey>>> {
    let mut out: Vec<Vec<Vec<StepKey>>> = Vec::new();
    let mut open = false;
    for &k in keys {
        if !runs_concurrently(k) {
            out.push(vec![vec![k]]);
            open = false;
            continue;
        }
        if !open {
            out.push(Vec::new());
            open = true;
        }
        let stage = out.last_mut().expect("pushed above");
        match stage.iter_mut().find(|lane| lane[0].node() == k.node()) {
            Some(lane) => lane.push(k),
            None => stage.push(vec![k]),
        }
    }
    out
}

/// `run --until until` stops before `key`. The check right before T1 belongs to the stop:
/// stopping "before `stop-old`" also stops before its check, so that the check runs
/// immediately before T1 rather than whenever `--until stop-old` was used.
/// A deployment node's `nodeN:stop-old` likewise stops before `nodeN:pre-stop-check`.
pub fn stops_before(until: StepKey, key: StepKey) -> bool {
    until == key
        || (until.base() == StepKey::StopOldContainer
            && key.base() == StepKey::PreStopCheck
            && until.node() == key.node())
}

/// What the upgrade has (possibly) done, as far as a rollback cares. "Attempted" means an
/// intent was recorded, whatever its outcome: a failed step may have half-happened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Touched {
    /// `disable-ha` attempted.
    pub ha_disabled: bool,
    /// `enable` before the run is known (from `disable-ha`'s facts).
    pub ha_previous_known: bool,
    /// `enable-ha` attempted: HA may be on with the new version.
    pub ha_enabled: bool,
    /// `stop-old` attempted: the old container may be stopped.
    pub old_stopped: bool,
    /// `rename-old` attempted.
    pub old_renamed: bool,
    /// `create-new` attempted.
    pub new_created: bool,
    /// `start-new` attempted: the new version may have changed the databases.
    pub new_started: bool,
    /// All three dumps are recorded done.
    pub dumps_complete: bool,
    /// `old-restart-off` attempted: the old container's restart policy may be `no`.
    pub old_restart_off: bool,
    /// issue 16: `prune-heartbeat` attempted (in any region): its table swap may have
    /// renamed the old rows aside into the run's `<old>` table.
    pub pruned: bool,
}

impl Touched {
    /// The databases may differ from the dumps: the new container was (maybe) started.
    /// Pruning old heartbeat rows does not count: the runbook prunes before dumping and
    /// the rows are useless.
    pub fn databases_touched(&self) -> bool {
        self.new_started
    }
}

/// Why a rollback cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RollbackRefusal {
    /// The databases may have changed but there is no complete backup to restore.
    #[error(
        "the new container may have changed the metadata databases but not all three dumps are recorded complete, so there is nothing safe to restore; restore from your own backups and record a note"
    )]
    NoBackup,
}

/// The rollback's steps for a situation, in order (see the module docs of `replay` for
/// when a rollback may be requested):
///
/// 1. `rollback-verify-dumps` when databases will be restored: every dump re-hashed
///    before anything changes, so an altered dump stops the rollback with nothing touched;
/// 2. `rollback-disable-ha` if HA may be on again;
/// 3. `rollback-stop-new` (T3) if the new container may have started;
/// 4. `rollback-rename-new` if it may exist, then `rollback-rename-old`;
/// 5. per database `rollback-recreate-*` then `rollback-restore-*`, if touched;
/// 6. `rollback-restart-policy` if the old container's restart policy may have been set
///    to `no`, then `rollback-restart-old` and `rollback-confirm-health` if the old one may
///    be stopped;
/// 7. `rollback-enable-ha` if HA was (maybe) disabled and its earlier value is known;
/// 8. `rollback-drop-pruned-heartbeat` if the prune was attempted and nothing is restored
///    (issue 16: a restore replaces the heartbeat database, the swap's `<old>` with it);
/// 9. `rollback-complete`.
///
/// A rollback before T1 is therefore just "HA back as it was" (or nothing at all).
pub fn rollback_keys(t: &Touched) -> Result<Vec<StepKey>, RollbackRefusal> {
    let restore = t.databases_touched();
    if restore && !t.dumps_complete {
        return Err(RollbackRefusal::NoBackup);
    }
    let mut k = Vec::new();
    if restore {
        k.push(StepKey::RollbackVerifyDumps);
    }
    if t.ha_enabled {
        k.push(StepKey::RollbackDisableHa);
    }
    if t.new_started {
        k.push(StepKey::StopNewContainer);
    }
    if t.new_created {
        k.push(StepKey::RenameNewAside);
    }
    if t.old_renamed {
        k.push(StepKey::RenameOldBack);
    }
    if restore {
        for db in MetaDb::ALL {
            k.push(StepKey::RecreateDatabase { db });
            k.push(StepKey::Restore { db });
        }
    }
    if t.old_restart_off {
        k.push(StepKey::RollbackRestartPolicy);
    }
    if t.old_stopped {
        k.push(StepKey::RestartOldContainer);
        k.push(StepKey::ConfirmOldHealth);
    }
    if t.ha_disabled && t.ha_previous_known {
        k.push(StepKey::RollbackEnableHa);
    }
    // issue 16: a restore drops and recreates the heartbeat database, `<old>` with it;
    // without one, the rows the prune's swap moved aside are dropped here (as
    // `drop-pruned-heartbeat` would have), so no later run dumps them. Last, right before
    // `rollback-complete`, where ledgers of earlier builds (which have no such step) went
    // straight on (`replay`'s legacy rule).
    if t.pruned && !restore {
        k.push(StepKey::RollbackDropPrunedHeartbeat);
    }
    k.push(StepKey::RollbackComplete);
    Ok(k)
}

/// The rollback's steps for a deployment: [`rollback_keys`] of what any node had
/// touched, with each per-node step kept only for the nodes whose own `Touched` needs it
/// (node-major within each run of per-node steps, so the nodes roll back side by side),
/// and each heartbeat database's recreate and restore done for every region. `touched`
/// answers for one node (its container steps) and for the deployment-wide steps alike.
pub fn deployment_rollback_keys(
    plan: &Plan,
    any: &Touched,
    node_touched: impl Fn(NodeIx) -> Touched,
) -> Result<Vec<StepKey>, RollbackRefusal> {
    let single = rollback_keys(any)?;
    let mut out = Vec::new();
    let mut block: Vec<StepKey> = Vec::new();
    let flush = |block: &mut Vec<StepKey>, out: &mut Vec<StepKey>| {
        for n in plan.nodes() {
            let t = node_touched(n);
            for &k in block.iter() {
                let needed = match k {
                    StepKey::StopNewContainer => t.new_started,
                    StepKey::RenameNewAside => t.new_created,
                    StepKey::RenameOldBack => t.old_renamed,
                    StepKey::RollbackRestartPolicy => t.old_restart_off,
                    StepKey::RestartOldContainer | StepKey::ConfirmOldHealth => t.old_stopped,
                    _ => true,
                };
                if needed {
                    out.push(k.on_node(n));
                }
            }
        }
        block.clear();
    };
    for k in single {
        if runs_concurrently(k) {
            block.push(k);
            continue;
        }
        flush(&mut block, &mut out);
        if k.region().is_some() {
            out.extend(plan.regions().into_iter().map(|r| k.in_region(r)));
        } else {
            out.push(k);
        }
    }
    flush(&mut block, &mut out);
    Ok(out)
}

/// What earlier steps recorded that later steps need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// Start of the downtime: T1, or the first `stop-old` intent's time when T1 was never
    /// observed (the old container may have stopped from then on).
    pub downtime_start: Option<DateTime<Utc>>,
    /// `enable` in `ha.config` before the run.
    pub ha_enable_before: Option<bool>,
    /// Recorded dumps.
    pub artifacts: BTreeMap<MetaDb, DumpArtifact>,
    /// The new container's id, once created.
    pub new_container_id: Option<String>,
    /// The old container's restart policy before `old-restart-off` set it to `no`, as
    /// that step recorded it (what `rollback-restart-policy` puts back).
    pub old_restart_before: Option<RestartPolicy>,
    /// The heartbeat dumps of regions 1.. (a deployment's), re-hashed by
    /// `rollback-verify-dumps` with the three above.
    pub region_artifacts: Vec<DumpArtifact>,
}

/// A container to stop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StopSpec {
    /// Its id when known (the old one always; the new one once created).
    pub id: Option<String>,
    /// Its name at that point.
    pub name: String,
    /// `docker stop -t`.
    pub timeout_secs: u32,
}

/// A container to rename. Idempotent by design: if the container already has `to`, or
/// (for `rollback-rename-new`) no container other than `never_id` holds `from`, the step
/// has nothing to do and records that.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenameSpec {
    /// Its id when known.
    pub id: Option<String>,
    /// Current name.
    pub from: String,
    /// New name.
    pub to: String,
    /// Never rename this container (the old one, when moving the new one aside).
    pub never_id: Option<String>,
}

/// A container referred to by name (and id when known).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerRef {
    /// Id when known.
    pub id: Option<String>,
    /// Name.
    pub name: String,
}

/// A container to restart (`docker restart`): its stop part waits as long as a stop does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestartSpec {
    /// The container.
    pub container: ContainerRef,
    /// `docker restart --time`: the plan's stop timeout, the same as every stop's.
    pub timeout_secs: u32,
}

/// A container's restart policy to set (`docker update --restart`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestartPolicySpec {
    /// The container (the old one, by id).
    pub container: ContainerRef,
    /// The policy it gets.
    pub policy: RestartPolicy,
}

/// `ha.config` switched off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HaDisableSpec {
    /// The rm database (holding `oms_normal_config`).
    pub database: String,
    /// How.
    pub mode: HaMode,
}

impl HaDisableSpec {
    /// The edit: `enable=false`.
    pub fn edit(&self) -> HaEdit {
        HaEdit {
            enable: Some(false),
            ..Default::default()
        }
    }

    /// Given the value read now, the value to write (`None`: already off, write nothing).
    pub fn apply(&self, current_json: &str) -> Result<Option<String>, HaConfigError> {
        if haconfig::satisfies(current_json, &self.edit())? {
            return Ok(None);
        }
        haconfig::edit(current_json, &self.edit()).map(Some)
    }
}

/// `ha.config` switched back on, with the refetch rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HaEnableSpec {
    /// The rm database.
    pub database: String,
    /// How.
    pub mode: HaMode,
    /// The value `enable` gets.
    pub enable: bool,
    /// Start of the downtime (T1); `None` when none began (rollback before T1: only
    /// `enable` is restored).
    pub since: Option<DateTime<Utc>>,
    /// The refetch rule.
    pub policy: RefetchPolicy,
}

/// What to write into `ha.config` when enabling at a given time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HaWrite {
    /// The fields set.
    pub edit: HaEdit,
    /// The full value to store.
    pub json: String,
    /// How the refetch setting was chosen (record it in the facts).
    pub decision: Option<RefetchDecision>,
}

impl HaEnableSpec {
    /// The refetch decision and the edit for HA enabled at `now` (T2).
    pub fn edit_at(&self, now: DateTime<Utc>) -> (HaEdit, Option<RefetchDecision>) {
        let decision = self.since.map(|t1| refetch::decide(&self.policy, t1, now));
        let edit = HaEdit {
            enable: Some(self.enable),
            perceive_checkpoint: decision.as_ref().and_then(|d| d.perceive_checkpoint),
            refetch_interval_min: decision.as_ref().and_then(|d| d.interval_minutes),
        };
        (edit, decision)
    }

    /// Given the value read now, what to write at `now`.
    pub fn apply(&self, current_json: &str, now: DateTime<Utc>) -> Result<HaWrite, HaConfigError> {
        let (edit, decision) = self.edit_at(now);
        let json = haconfig::edit(current_json, &edit)?;
        Ok(HaWrite {
            edit,
            json,
            decision,
        })
    }
}

/// Instructions for an operator changing `ha.config` by hand (manual HA mode).
pub fn manual_instructions(edit: &HaEdit) -> String {
    let mut parts = Vec::new();
    if let Some(b) = edit.enable {
        parts.push(format!("set `{}` to `{b}`", haconfig::ENABLE));
    }
    if let Some(b) = edit.perceive_checkpoint {
        parts.push(format!("set `{}` to `{b}`", haconfig::PERCEIVE_CHECKPOINT));
    }
    if let Some(n) = edit.refetch_interval_min {
        // A larger window is as good (a little more is refetched): any value at least
        // this one is accepted (`refetch::RefetchDecision::operator_set`). In perceive
        // mode the default is asked for as it is.
        if edit.perceive_checkpoint == Some(true) {
            parts.push(format!("set `{}` to `{n}`", haconfig::REFETCH_INTERVAL_MIN));
        } else {
            parts.push(format!(
                "set `{}` to `{n}` or more",
                haconfig::REFETCH_INTERVAL_MIN
            ));
        }
    }
    format!(
        "In the OMS console: System Management > System Parameters > `ha.config` > edit the value: {}; keep every other field as it is, then save.",
        parts.join(", ")
    )
}

/// The heartbeat prune: read `max(id)` first, then delete below it (MySQL 8 refuses the
/// runbook's subquery on the DELETE's own table, error 1093).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PruneSpec {
    /// The cm_hb database.
    pub database: String,
    /// `heatbeat_sequence`.
    pub table: String,
    /// The metadata server's flavour as `init` recorded it (`None` in plans of earlier
    /// builds: asked of the server when the step runs).
    pub flavour: Option<crate::events::ServerFlavour>,
    /// Most rows one DELETE removes (the default; `run --prune-batch-rows` may change it).
    pub batch_rows: u64,
}

/// issue 16: the heartbeat rows the prune's table swap renamed aside (this run's `<old>`
/// table, [`crate::sqltext::HeartbeatSwap::for_run`], named by the executor from the run
/// id), counted and dropped after T2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DropPrunedSpec {
    /// The cm_hb database.
    pub database: String,
    /// `heatbeat_sequence`, whose old rows the table holds.
    pub table: String,
}

/// One database dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DumpSpec {
    /// Which.
    pub db: MetaDb,
    /// Its name.
    pub database: String,
    /// The run's dump folder.
    pub dir: String,
    /// The target file (the engine may add a compression suffix).
    pub file: String,
}

/// What is checked again right before T1: what `init` checked and may have changed since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreStopSpec {
    /// The target image's tag as planned.
    pub image: String,
    /// The image id the plan recorded for it (the tag must still point at it).
    pub image_id: Option<String>,
    /// The old container's binds (every source must still exist).
    pub binds: Vec<String>,
    /// The folder the dumps go to (its nearest existing ancestor is measured).
    pub backup_dir: String,
    /// The three databases, whose size is compared with the free space.
    pub databases: Vec<String>,
    /// The old node must answer healthy.
    pub health: HealthSpec,
}

/// The new container, exactly as the runbook's `docker run` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewContainerSpec {
    /// Its name (the old container's).
    pub name: String,
    /// The new image, as given to `init` (the tag `docker ps` shows).
    pub image: String,
    /// The image id the plan recorded: the tag must still point at it when the container
    /// is created, and the created container must run it (a tag re-pointed since `init`
    /// must not change what runs).
    pub image_id: Option<String>,
    /// Binds: exactly the old container's.
    pub binds: Vec<String>,
    /// Environment: `OMS_HOST_IP`, and `IS_UPGRADE=true` where the guide says so.
    pub env: Vec<(String, String)>,
    /// The old container's labels plus `oms-upgrade.*` ([`labels`]).
    pub labels: BTreeMap<String, String>,
    /// `host`.
    pub network_mode: String,
    /// `--privileged=true` (from the plan).
    pub privileged: bool,
    /// `--pids-limit -1`.
    pub pids_limit: i64,
    /// `--ulimit nproc=65535:65535`, after the old container's other ulimits.
    pub ulimits: Vec<Ulimit>,
    /// The old container's restart policy (`no` for plans that did not record it).
    pub restart: RestartPolicy,
    /// What else the new container inherits from the old one, as recorded at `init`
    /// (`None` for plans recorded before issue 12.4: runbook values only). Withheld
    /// values are taken from the old container, [`NewContainerSpec::old_id`].
    pub inherited: Option<Box<ContainerSettings>>,
    /// The old container, source of the inherited values.
    pub old_id: String,
}

/// Environment variables the runbook sets on the new container (they replace the old
/// container's values).
pub const RUNBOOK_ENV: &[&str] = &["OMS_HOST_IP", "IS_UPGRADE"];

/// The runbook's `--ulimit`, which replaces an old container's limit of the same name.
pub const RUNBOOK_ULIMIT: &str = "nproc";

/// A command run inside a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecSpec {
    /// Container name.
    pub container: String,
    /// argv.
    pub argv: Vec<String>,
    /// How long the command is run again until its answer is the wanted one, seconds
    /// (`check-supervisor`: the plan's health timeout, the budget for the new node to come
    /// up, since supervisord's programs STARTING is part of that start).
    pub timeout_secs: u32,
}

/// `check-online`: every server the cm database lists, each asked at its own health
/// endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OnlineSpec {
    /// The cm database (`drc_cm_db`), which holds the `host` and `resource_group` tables.
    pub database: String,
    /// The new node's health check: its URL (scheme, port and path) with a listed server's
    /// IP is that server's own health endpoint, and its timeout bounds the wait.
    pub health: HealthSpec,
}

/// `docker_init.sh`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InitSpec {
    /// Container name.
    pub container: String,
    /// `bash /root/docker_init.sh`.
    pub argv: Vec<String>,
    /// The success line.
    pub success_marker: String,
    /// Expected, harmless errors.
    pub harmless_errors: Vec<String>,
    /// Where `docker_init*.log` is written.
    pub log_dir: String,
    /// The working folder it runs in: the runbook's `cd /root; sh docker_init.sh`
    /// (issue 12.9).
    pub working_dir: String,
    /// Must not be interrupted; give up after this long.
    pub timeout_secs: u32,
}

/// A health probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthSpec {
    /// `GET` this; healthy when `data.healthy` is true.
    pub url: String,
    /// The container expected to answer.
    pub container: ContainerRef,
    /// Poll until healthy or this long.
    pub timeout_secs: u32,
    /// The CA file an HTTPS console is checked against (`--health-ca`, recorded in the
    /// plan), shown in `plan`'s `curl` lines so the operator's check trusts the same.
    pub ca_file: Option<String>,
}

impl HealthSpec {
    /// The `curl` an operator runs to ask what this probe asks.
    fn curl(&self) -> String {
        match &self.ca_file {
            Some(ca) => format!("curl -s --cacert {} {}", q(ca), q(&self.url)),
            None => format!("curl -s {}", q(&self.url)),
        }
    }
}

/// Dropping and recreating one database, with the default charset and collation recorded
/// with its dump. Taken from the record, not from the live database, so the step can run
/// again from every state a crash leaves (the database dropped and not yet created among
/// them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecreateSpec {
    /// Which.
    pub db: MetaDb,
    /// Its name.
    pub database: String,
    /// Default character set recorded with the dump.
    pub charset: String,
    /// Default collation recorded with the dump.
    pub collation: String,
}

/// Restoring one dump. The executor must verify the file's BLAKE3 against
/// `artifact.blake3_hex` before touching the database, and compare tables after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreSpec {
    /// Which.
    pub db: MetaDb,
    /// Its name.
    pub database: String,
    /// The recorded dump.
    pub artifact: DumpArtifact,
}

/// A step and everything needed to perform it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// See [`StepKey::DisableHa`].
    DisableHa(HaDisableSpec),
    /// See [`StepKey::StopOldContainer`]; record T1.
    StopOldContainer(StopSpec),
    /// See [`StepKey::PruneHeartbeat`].
    PruneHeartbeat(PruneSpec),
    /// See [`StepKey::DropPrunedHeartbeat`].
    DropPrunedHeartbeat(DropPrunedSpec),
    /// See [`StepKey::RollbackDropPrunedHeartbeat`].
    RollbackDropPrunedHeartbeat(DropPrunedSpec),
    /// See [`StepKey::Dump`].
    Dump(DumpSpec),
    /// See [`StepKey::RenameOldContainer`].
    RenameOldContainer(RenameSpec),
    /// See [`StepKey::CreateNewContainer`]; record the binds proof.
    CreateNewContainer(NewContainerSpec),
    /// See [`StepKey::StartNewContainer`].
    StartNewContainer(ContainerRef),
    /// See [`StepKey::CheckSupervisor`].
    CheckSupervisor(ExecSpec),
    /// See [`StepKey::RunDockerInit`].
    RunDockerInit(InitSpec),
    /// See [`StepKey::ConfirmHealth`].
    ConfirmHealth(HealthSpec),
    /// See [`StepKey::CheckOnline`].
    CheckOnline(OnlineSpec),
    /// See [`StepKey::EnableHa`]; record T2.
    EnableHa(HaEnableSpec),
    /// See [`StepKey::Complete`]: nothing to perform.
    Complete,
    /// See [`StepKey::RollbackVerifyDumps`]: re-hash each file, change nothing.
    RollbackVerifyDumps(Vec<DumpArtifact>),
    /// See [`StepKey::RollbackDisableHa`].
    RollbackDisableHa(HaDisableSpec),
    /// See [`StepKey::StopNewContainer`]; record T3.
    StopNewContainer(StopSpec),
    /// See [`StepKey::RenameNewAside`].
    RenameNewAside(RenameSpec),
    /// See [`StepKey::RenameOldBack`].
    RenameOldBack(RenameSpec),
    /// See [`StepKey::RecreateDatabase`].
    RecreateDatabase(RecreateSpec),
    /// See [`StepKey::Restore`].
    Restore(RestoreSpec),
    /// See [`StepKey::RestartOldContainer`] (`docker restart`).
    RestartOldContainer(RestartSpec),
    /// See [`StepKey::ConfirmOldHealth`].
    ConfirmOldHealth(HealthSpec),
    /// See [`StepKey::RollbackEnableHa`].
    RollbackEnableHa(HaEnableSpec),
    /// See [`StepKey::RollbackComplete`]: nothing to perform.
    RollbackComplete,
    /// See [`StepKey::PreStopCheck`]: checks only, changes nothing.
    PreStopCheck(PreStopSpec),
    /// See [`StepKey::OldRestartOff`].
    OldRestartOff(RestartPolicySpec),
    /// See [`StepKey::RollbackRestartPolicy`].
    RollbackRestartPolicy(RestartPolicySpec),
    /// A per-node step of node >= 1 ([`StepKey::Node`]): `step` built from the plan as that
    /// node sees it, performed against that node's Docker engine.
    OnNode {
        /// The node.
        node: NodeIx,
        /// The single-node step.
        inner: Box<Step>,
    },
    /// A heartbeat step of region >= 1 ([`StepKey::Region`]): `step` built on that
    /// region's heartbeat database.
    InRegion {
        /// The region.
        region: RegionIx,
        /// The single-node step.
        inner: Box<Step>,
    },
}

/// Why a step cannot be built yet (a precondition the state has not reached).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// There is no plan yet.
    #[error("no run is planned yet; run `oms-upgrade init` first")]
    NotPlanned,
    /// A restore or dump check needs a recorded dump.
    #[error("no complete dump of the {0} database is recorded, so there is nothing to restore")]
    NoArtifact(MetaDb),
    /// The step does not belong to the plan's procedure.
    #[error("step {key} is not part of the {procedure} procedure")]
    NotInProcedure {
        /// The step.
        key: StepKey,
        /// The procedure.
        procedure: ProcedureId,
    },
}

/// What vouches for a rollback's dump hashes, said wherever a plan shows them: the ledger
/// (hash-chained), not a file next to the dumps (contrast `restore --from`).
const LEDGER_VOUCHES: &str = " (the BLAKE3 recorded in the ledger when it was dumped)";

/// Builds the step `key` for `plan`, given what earlier steps recorded.
pub fn build(plan: &Plan, key: StepKey, ctx: &Context) -> Result<Step, BuildError> {
    let not_in = || BuildError::NotInProcedure {
        key,
        procedure: plan.procedure,
    };
    let ha_steps = plan.procedure.has_ha_steps();
    let old_id = Some(plan.old_container.id.clone());
    let ca_file = plan.health_trust().and_then(|h| h.ca_file.clone());
    let old_health = || HealthSpec {
        url: plan.health_url.clone(),
        container: ContainerRef {
            id: old_id.clone(),
            name: plan.new_name.clone(),
        },
        timeout_secs: plan.health_timeout_secs,
        ca_file: ca_file.clone(),
    };
    let new_ref = ContainerRef {
        id: ctx.new_container_id.clone(),
        name: plan.new_name.clone(),
    };
    let new_health = HealthSpec {
        url: plan.health_url.clone(),
        container: new_ref.clone(),
        timeout_secs: plan.health_timeout_secs,
        ca_file: ca_file.clone(),
    };
    let ha_disable = HaDisableSpec {
        database: plan.databases.rm.clone(),
        mode: plan.ha_mode,
    };
    let enable_after = match plan.ha_after {
        HaAfter::Enable => true,
        HaAfter::KeepPrevious => ctx.ha_enable_before.unwrap_or(true),
    };
    let artifact = |db: MetaDb| {
        ctx.artifacts
            .get(&db)
            .cloned()
            .ok_or(BuildError::NoArtifact(db))
    };
    Ok(match key {
        StepKey::DisableHa if ha_steps => Step::DisableHa(ha_disable),
        StepKey::PreStopCheck => Step::PreStopCheck(PreStopSpec {
            image: plan.target_image.clone(),
            image_id: plan.target_image_id.clone(),
            binds: plan.old_container.binds.clone(),
            backup_dir: plan.backup_dir.clone(),
            databases: MetaDb::ALL
                .iter()
                .map(|&db| plan.databases.get(db).to_string())
                .collect(),
            health: old_health(),
        }),
        StepKey::StopOldContainer => Step::StopOldContainer(StopSpec {
            id: old_id,
            name: plan.new_name.clone(),
            timeout_secs: plan.stop_timeout_secs,
        }),
        StepKey::PruneHeartbeat => Step::PruneHeartbeat(PruneSpec {
            database: plan.databases.cm_hb.clone(),
            table: HEARTBEAT_TABLE.into(),
            flavour: plan.meta_server().map(|m| m.flavour),
            batch_rows: crate::sqltext::HEARTBEAT_BATCH_ROWS,
        }),
        StepKey::Dump { db } => Step::Dump(DumpSpec {
            db,
            database: plan.databases.get(db).to_string(),
            dir: plan.dump_dir(),
            file: plan.dump_file(db),
        }),
        StepKey::RenameOldContainer => Step::RenameOldContainer(RenameSpec {
            id: old_id,
            from: plan.new_name.clone(),
            to: plan.old_renamed_to.clone(),
            never_id: None,
        }),
        StepKey::CreateNewContainer => Step::CreateNewContainer(new_container(plan)),
        StepKey::StartNewContainer => Step::StartNewContainer(new_ref),
        StepKey::CheckSupervisor if plan.procedure.checks_supervisor() => {
            Step::CheckSupervisor(ExecSpec {
                container: plan.new_name.clone(),
                argv: vec!["supervisorctl".into(), "status".into()],
                timeout_secs: plan.health_timeout_secs,
            })
        }
        StepKey::RunDockerInit => Step::RunDockerInit(InitSpec {
            container: plan.new_name.clone(),
            argv: vec!["bash".into(), "/root/docker_init.sh".into()],
            success_marker: INIT_SUCCESS_MARKER.into(),
            harmless_errors: INIT_HARMLESS_ERRORS.iter().map(|s| s.to_string()).collect(),
            log_dir: INIT_LOG_DIR.into(),
            working_dir: INIT_WORKING_DIR.into(),
            timeout_secs: plan.init_timeout_secs,
        }),
        StepKey::ConfirmHealth => Step::ConfirmHealth(new_health),
        StepKey::CheckOnline if plan.procedure.checks_online() => Step::CheckOnline(OnlineSpec {
            database: plan.databases.cm.clone(),
            health: new_health,
        }),
        StepKey::EnableHa if ha_steps => Step::EnableHa(HaEnableSpec {
            database: plan.databases.rm.clone(),
            mode: plan.ha_mode,
            enable: enable_after,
            since: ctx.downtime_start,
            policy: plan.refetch,
        }),
        StepKey::DropPrunedHeartbeat => Step::DropPrunedHeartbeat(DropPrunedSpec {
            database: plan.databases.cm_hb.clone(),
            table: HEARTBEAT_TABLE.into(),
        }),
        StepKey::RollbackDropPrunedHeartbeat => Step::RollbackDropPrunedHeartbeat(DropPrunedSpec {
            database: plan.databases.cm_hb.clone(),
            table: HEARTBEAT_TABLE.into(),
        }),
        StepKey::Complete => Step::Complete,
        StepKey::RollbackVerifyDumps => Step::RollbackVerifyDumps(
            MetaDb::ALL
                .iter()
                .map(|&db| artifact(db))
                .chain(ctx.region_artifacts.iter().cloned().map(Ok))
                .collect::<Result<_, _>>()?,
        ),
        StepKey::RollbackDisableHa if ha_steps => Step::RollbackDisableHa(ha_disable),
        StepKey::StopNewContainer => Step::StopNewContainer(StopSpec {
            id: ctx.new_container_id.clone(),
            name: plan.new_name.clone(),
            timeout_secs: plan.stop_timeout_secs,
        }),
        StepKey::RenameNewAside => Step::RenameNewAside(RenameSpec {
            id: ctx.new_container_id.clone(),
            from: plan.new_name.clone(),
            to: plan.failed_name.clone(),
            never_id: old_id,
        }),
        StepKey::RenameOldBack => Step::RenameOldBack(RenameSpec {
            id: old_id,
            from: plan.old_renamed_to.clone(),
            to: plan.new_name.clone(),
            never_id: None,
        }),
        StepKey::RecreateDatabase { db } => {
            let a = artifact(db)?;
            Step::RecreateDatabase(RecreateSpec {
                db,
                database: plan.databases.get(db).to_string(),
                charset: a.charset,
                collation: a.collation,
            })
        }
        StepKey::Restore { db } => Step::Restore(RestoreSpec {
            db,
            database: plan.databases.get(db).to_string(),
            artifact: artifact(db)?,
        }),
        StepKey::RestartOldContainer => Step::RestartOldContainer(RestartSpec {
            container: ContainerRef {
                id: old_id,
                name: plan.new_name.clone(),
            },
            timeout_secs: plan.stop_timeout_secs,
        }),
        StepKey::ConfirmOldHealth => Step::ConfirmOldHealth(old_health()),
        StepKey::RollbackEnableHa if ha_steps => Step::RollbackEnableHa(HaEnableSpec {
            database: plan.databases.rm.clone(),
            mode: plan.ha_mode,
            // With no downtime nothing happened: put `enable` back exactly as it was.
            enable: match ctx.downtime_start {
                Some(_) => enable_after,
                None => ctx.ha_enable_before.unwrap_or(enable_after),
            },
            since: ctx.downtime_start,
            policy: plan.refetch,
        }),
        StepKey::RollbackComplete => Step::RollbackComplete,
        StepKey::OldRestartOff if plan.container_settings().is_some() => {
            Step::OldRestartOff(RestartPolicySpec {
                container: ContainerRef {
                    id: old_id,
                    name: plan.new_name.clone(),
                },
                policy: RestartPolicy::no(),
            })
        }
        StepKey::RollbackRestartPolicy => {
            let policy = ctx
                .old_restart_before
                .clone()
                .or_else(|| plan.container_settings().map(|c| c.restart.clone()))
                .ok_or_else(not_in)?;
            Step::RollbackRestartPolicy(RestartPolicySpec {
                // By then the old container has its name back (or never lost it).
                container: ContainerRef {
                    id: old_id,
                    name: plan.new_name.clone(),
                },
                policy,
            })
        }
        StepKey::OldRestartOff
        | StepKey::DisableHa
        | StepKey::CheckSupervisor
        | StepKey::CheckOnline
        | StepKey::EnableHa
        | StepKey::RollbackDisableHa
        | StepKey::RollbackEnableHa => return Err(not_in()),
        // The caller passes the context of the node or region (`replay::State::step`).
        StepKey::Node { node, step } => Step::OnNode {
            node,
            inner: Box::new(build(&plan.for_node(node), step.base(), ctx)?),
        },
        StepKey::Region { region, step } => Step::InRegion {
            region,
            inner: Box::new(build(&plan.for_region(region), step.base(), ctx)?),
        },
    })
}

fn new_container(plan: &Plan) -> NewContainerSpec {
    let mut env = vec![("OMS_HOST_IP".to_string(), plan.host_ip.clone())];
    if plan.procedure.sets_is_upgrade() {
        env.push(("IS_UPGRADE".to_string(), "true".to_string()));
    }
    let mut l = plan.old_container.labels.clone();
    l.insert(labels::RUN_ID.into(), plan.run_id.to_string());
    l.insert(labels::ROLE.into(), "upgraded".into());
    l.insert(labels::REPLACES.into(), plan.old_container.id.clone());
    l.insert(labels::FROM_VERSION.into(), plan.source_version.to_string());
    l.insert(labels::TO_VERSION.into(), plan.target_version.to_string());
    let inherited = plan.container_settings().cloned().map(Box::new);
    // The old container's other limits first, then the runbook's own.
    let mut ulimits: Vec<Ulimit> = inherited
        .iter()
        .flat_map(|c| &c.ulimits)
        .filter(|u| u.name != RUNBOOK_ULIMIT)
        .cloned()
        .collect();
    ulimits.push(Ulimit {
        name: RUNBOOK_ULIMIT.into(),
        soft: 65535,
        hard: 65535,
    });
    NewContainerSpec {
        name: plan.new_name.clone(),
        image: plan.target_image.clone(),
        image_id: plan.target_image_id.clone(),
        binds: plan.old_container.binds.clone(),
        env,
        labels: l,
        // The book deploys OMS with `--net host`; a node deployed otherwise keeps its own.
        network_mode: inherited
            .as_ref()
            .map(|c| c.network_mode.clone())
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "host".into()),
        privileged: plan.privileged,
        pids_limit: -1,
        ulimits,
        restart: inherited
            .as_ref()
            .map(|c| c.restart.clone())
            .unwrap_or_else(RestartPolicy::no),
        inherited,
        old_id: plan.old_container.id.clone(),
    }
}

impl NewContainerSpec {
    /// Whether a container carrying `found` labels is the one this run's `create-new` made:
    /// it has the run id label this spec puts on it (a UUID, so no other run's container
    /// and no hand-made one has it by chance). A spec without that label owns nothing.
    pub fn made_by_this_run(&self, found: &BTreeMap<String, String>) -> bool {
        self.labels
            .get(labels::RUN_ID)
            .is_some_and(|id| found.get(labels::RUN_ID) == Some(id))
    }

    /// The old container's environment entries the new one inherits, recorded form (the
    /// runbook's own variables left out: [`RUNBOOK_ENV`] replace them).
    pub fn inherited_env(&self) -> Vec<&EnvVar> {
        self.inherited
            .iter()
            .flat_map(|c| &c.env)
            .filter(|e| !RUNBOOK_ENV.contains(&e.name.as_str()))
            .collect()
    }
}

/// The whole upgrade as it would run from a fresh plan (for `oms-upgrade plan`).
pub fn preview(plan: &Plan) -> Vec<Step> {
    plan_keys(plan)
        .into_iter()
        .filter_map(|k| build(plan, k, &Context::default()).ok())
        .collect()
}

/// The host path of a `HOST:CONTAINER[:OPTS]` bind.
pub fn bind_source(bind: &str) -> &str {
    bind.split(':').next().unwrap_or("")
}

/// `s` as one shell word: bare when it is plainly safe, else single-quoted.
pub(crate) fn q(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn ha_commands(
    database: &str,
    mode: HaMode,
    summary: &str,
    manual: String,
    note: &str,
) -> Vec<String> {
    use crate::sqltext::{COMMIT, HA_SELECT, HA_SELECT_FOR_UPDATE, HA_UPDATE, START_TRANSACTION};
    let use_db = crate::sqltext::use_database(database);
    match mode {
        HaMode::Sql => vec![
            use_db,
            HA_SELECT.to_string(),
            START_TRANSACTION.to_string(),
            format!("{HA_SELECT_FOR_UPDATE}  -- must still be the value read"),
            format!("{HA_UPDATE}  -- ? = the value read, with {summary}{note}"),
            COMMIT.to_string(),
            format!("{HA_SELECT}  -- read back, must show {summary}"),
        ],
        HaMode::Manual => vec![
            manual,
            use_db,
            format!("{HA_SELECT}  -- polled until it shows {summary}"),
        ],
    }
}

fn edit_summary(edit: &HaEdit) -> String {
    let mut p = Vec::new();
    if let Some(b) = edit.enable {
        p.push(format!("enable={b}"));
    }
    if let Some(b) = edit.perceive_checkpoint {
        p.push(format!("perceiveStoreClientCheckpoint={b}"));
    }
    if let Some(n) = edit.refetch_interval_min {
        p.push(format!("refetchStoreIntervalMin={n}"));
    }
    p.join(", ")
}

/// The `docker run` flags of the inherited settings other than env, ulimits, restart
/// policy and network mode (which the caller prints), log options masked like env.
fn inherited_flags(s: &ContainerSettings) -> String {
    let mut c = String::new();
    let mut flag = |name: &str, value: &str| c.push_str(&format!(" --{name} {}", q(value)));
    if !s.log_driver.is_empty() {
        flag("log-driver", &s.log_driver);
    }
    for o in &s.log_opts {
        flag("log-opt", &o.to_string());
    }
    for h in &s.extra_hosts {
        flag("add-host", h);
    }
    for d in &s.devices {
        flag("device", d);
    }
    for x in &s.cap_add {
        flag("cap-add", x);
    }
    for x in &s.cap_drop {
        flag("cap-drop", x);
    }
    for x in &s.dns {
        flag("dns", x);
    }
    for x in &s.dns_search {
        flag("dns-search", x);
    }
    for x in &s.dns_options {
        flag("dns-option", x);
    }
    if let Some(n) = s.shm_size {
        flag("shm-size", &n.to_string());
    }
    for (p, o) in &s.tmpfs {
        flag(
            "tmpfs",
            &if o.is_empty() {
                p.clone()
            } else {
                format!("{p}:{o}")
            },
        );
    }
    for x in &s.security_opt {
        flag("security-opt", x);
    }
    c
}

impl Step {
    /// The single-node step this is, with the node (0 for the plain steps) and region it
    /// acts on: what the executor performs, against that node's engine.
    pub fn scoped(&self) -> (NodeIx, Option<RegionIx>, &Step) {
        match self {
            Step::OnNode { node, inner } => (*node, None, inner.as_ref()),
            Step::InRegion { region, inner } => (NodeIx::PRIMARY, Some(*region), inner.as_ref()),
            s => (NodeIx::PRIMARY, None, s),
        }
    }

    /// The step's key.
    pub fn key(&self) -> StepKey {
        match self {
            Step::DisableHa(_) => StepKey::DisableHa,
            Step::StopOldContainer(_) => StepKey::StopOldContainer,
            Step::PruneHeartbeat(_) => StepKey::PruneHeartbeat,
            Step::Dump(d) => StepKey::Dump { db: d.db },
            Step::RenameOldContainer(_) => StepKey::RenameOldContainer,
            Step::CreateNewContainer(_) => StepKey::CreateNewContainer,
            Step::StartNewContainer(_) => StepKey::StartNewContainer,
            Step::CheckSupervisor(_) => StepKey::CheckSupervisor,
            Step::RunDockerInit(_) => StepKey::RunDockerInit,
            Step::ConfirmHealth(_) => StepKey::ConfirmHealth,
            Step::CheckOnline(_) => StepKey::CheckOnline,
            Step::EnableHa(_) => StepKey::EnableHa,
            Step::DropPrunedHeartbeat(_) => StepKey::DropPrunedHeartbeat,
            Step::RollbackDropPrunedHeartbeat(_) => StepKey::RollbackDropPrunedHeartbeat,
            Step::Complete => StepKey::Complete,
            Step::RollbackVerifyDumps(_) => StepKey::RollbackVerifyDumps,
            Step::RollbackDisableHa(_) => StepKey::RollbackDisableHa,
            Step::StopNewContainer(_) => StepKey::StopNewContainer,
            Step::RenameNewAside(_) => StepKey::RenameNewAside,
            Step::RenameOldBack(_) => StepKey::RenameOldBack,
            Step::RecreateDatabase(r) => StepKey::RecreateDatabase { db: r.db },
            Step::Restore(r) => StepKey::Restore { db: r.db },
            Step::RestartOldContainer(_) => StepKey::RestartOldContainer,
            Step::ConfirmOldHealth(_) => StepKey::ConfirmOldHealth,
            Step::RollbackEnableHa(_) => StepKey::RollbackEnableHa,
            Step::RollbackComplete => StepKey::RollbackComplete,
            Step::PreStopCheck(_) => StepKey::PreStopCheck,
            Step::OldRestartOff(_) => StepKey::OldRestartOff,
            Step::RollbackRestartPolicy(_) => StepKey::RollbackRestartPolicy,
            Step::OnNode { node, inner } => inner.key().on_node(*node),
            Step::InRegion { region, inner } => inner.key().in_region(*region),
        }
    }

    /// One line saying what the step does.
    pub fn summary(&self) -> String {
        match self {
            Step::DisableHa(_) => "disable HA (ha.config enable=false)".into(),
            Step::StopOldContainer(s) => format!("stop the old container {} (T1)", s.name),
            Step::PruneHeartbeat(p) => {
                format!("prune {}.{} to its newest row", p.database, p.table)
            }
            Step::Dump(d) => format!("dump {} to {}", d.database, d.file),
            Step::RenameOldContainer(r) => {
                format!("rename the old container {} to {}", r.from, r.to)
            }
            Step::CreateNewContainer(n) => format!(
                "create the new container {} from {} with the old binds",
                n.name, n.image
            ),
            Step::StartNewContainer(c) => format!("start the new container {}", c.name),
            Step::CheckSupervisor(_) => "check supervisorctl status: all RUNNING".into(),
            Step::RunDockerInit(_) => {
                "run docker_init.sh (schema changes; do not interrupt)".into()
            }
            Step::ConfirmHealth(h) => format!("wait until {} says healthy", h.url),
            Step::CheckOnline(_) => "check every machine is Online".into(),
            Step::EnableHa(_) => "enable HA with the refetch rule (T2)".into(),
            Step::DropPrunedHeartbeat(d) | Step::RollbackDropPrunedHeartbeat(d) => format!(
                "count and drop the {}.{} rows the prune moved aside",
                d.database, d.table
            ),
            Step::Complete => "record the upgrade complete".into(),
            Step::RollbackVerifyDumps(a) => {
                format!("re-hash the {} dumps before changing anything", a.len())
            }
            Step::RollbackDisableHa(_) => "disable HA".into(),
            Step::StopNewContainer(s) => format!("stop the new container {} (T3)", s.name),
            Step::RenameNewAside(r) => format!("rename the new container {} to {}", r.from, r.to),
            Step::RenameOldBack(r) => {
                format!("rename the old container {} back to {}", r.from, r.to)
            }
            Step::RecreateDatabase(r) => format!("drop and recreate {}", r.database),
            Step::Restore(r) => format!("restore {} from {}", r.database, r.artifact.file),
            Step::RestartOldContainer(r) => {
                format!("restart the old container {}", r.container.name)
            }
            Step::ConfirmOldHealth(h) => format!("wait until {} says healthy", h.url),
            Step::RollbackEnableHa(_) => "enable HA with a refetch window since T1".into(),
            Step::RollbackComplete => "record the rollback complete".into(),
            Step::PreStopCheck(_) => {
                "check again what init checked (image, binds, disk, metadata DB, old node health)"
                    .into()
            }
            Step::OldRestartOff(r) => format!(
                "set the old container {}'s restart policy to no, so a Docker restart does not bring it back",
                r.container.name
            ),
            Step::RollbackRestartPolicy(r) => format!(
                "give the old container {} its restart policy {} back",
                r.container.name, r.policy
            ),
            Step::OnNode { node, inner } => format!("{node}: {}", inner.summary()),
            Step::InRegion { region, inner } => format!("{region}: {}", inner.summary()),
        }
    }

    /// The equivalent shell commands / SQL, for `oms-upgrade plan` (no secrets: the
    /// password is never part of a step).
    pub fn commands(&self) -> Vec<String> {
        match self {
            Step::OnNode { node, inner } => {
                let mut c = vec![format!("# on {node}'s Docker engine")];
                c.extend(inner.commands());
                c
            }
            Step::InRegion { region, inner } => {
                let mut c = vec![format!("# {region}'s heartbeat database")];
                c.extend(inner.commands());
                c
            }
            Step::DisableHa(h) | Step::RollbackDisableHa(h) => {
                let e = h.edit();
                let note = "  -- skipped when already off";
                ha_commands(
                    &h.database,
                    h.mode,
                    &edit_summary(&e),
                    manual_instructions(&e),
                    note,
                )
            }
            Step::EnableHa(h) | Step::RollbackEnableHa(h) => {
                use refetch::RefetchMode;
                let perceive =
                    h.since.is_some() && h.policy.mode == RefetchMode::PerceiveCheckpoint;
                let interval = h.since.is_some() && h.policy.mode == RefetchMode::Interval;
                let e = HaEdit {
                    enable: Some(h.enable),
                    perceive_checkpoint: perceive.then_some(true),
                    refetch_interval_min: perceive.then_some(refetch::DEFAULT_INTERVAL_MIN),
                };
                let mut summary = edit_summary(&e);
                let mut manual = manual_instructions(&e);
                let note = if interval {
                    summary.push_str(", refetchStoreIntervalMin=<rule>");
                    manual.push_str(&format!(
                        " Also set `refetchStoreIntervalMin` to at least the value printed at that moment: \
                         ceil(minutes since T1) + max({}% of them, {} min).",
                        h.policy.margin_percent, h.policy.margin_min_minutes
                    ));
                    format!(
                        "  -- refetchStoreIntervalMin = ceil(minutes since T1) + max({}% of them, {} min)",
                        h.policy.margin_percent, h.policy.margin_min_minutes
                    )
                } else if h.since.is_none() {
                    "  -- no downtime began: enable only".to_string()
                } else {
                    String::new()
                };
                ha_commands(&h.database, h.mode, &summary, manual, &note)
            }
            Step::StopOldContainer(s) | Step::StopNewContainer(s) => {
                vec![format!(
                    "docker stop --time {} {}",
                    s.timeout_secs,
                    q(&s.name)
                )]
            }
            Step::PruneHeartbeat(p) => {
                use crate::sqltext as sql;
                let mut v = vec![sql::use_database(&p.database)];
                match p.flavour {
                    Some(f) => v.extend(sql::session_setup(f)),
                    None => v.push(format!(
                        "{}  -- on OceanBase, then: {}",
                        sql::SERVER_IDENTITY,
                        sql::session_setup(crate::events::ServerFlavour::OceanBase).join("; ")
                    )),
                }
                v.push(format!(
                    "{}  -- no such table: recorded as a warning, nothing deleted",
                    sql::HEARTBEAT_TABLE_EXISTS
                ));
                v.push(sql::HEARTBEAT_MAX_ID.to_string());
                v.push(format!(
                    "{}  -- repeated while it finds a row below the max id",
                    sql::HEARTBEAT_MIN_ID
                ));
                v.push(format!(
                    "{}  -- ? = min(that id + {}, the max id): at most {} rows per statement",
                    sql::HEARTBEAT_PRUNE,
                    p.batch_rows,
                    p.batch_rows
                ));
                v
            }
            Step::Dump(d) => vec![format!(
                "dump {} (single transaction, no triggers) to {}, fsync, check, rename to {}",
                crate::sqltext::quote_ident(&d.database),
                q(&format!("{}.part", d.file)),
                q(&d.file)
            )],
            Step::RenameOldContainer(r) | Step::RenameNewAside(r) | Step::RenameOldBack(r) => {
                vec![format!("docker rename {} {}", q(&r.from), q(&r.to))]
            }
            Step::CreateNewContainer(n) => {
                let mut c = format!(
                    "docker create --name {} --net {}",
                    q(&n.name),
                    n.network_mode
                );
                if n.privileged {
                    c.push_str(" --privileged=true");
                }
                c.push_str(&format!(" --restart {}", n.restart));
                c.push_str(&format!(" --pids-limit {}", n.pids_limit));
                for u in &n.ulimits {
                    c.push_str(&format!(" --ulimit {}={}:{}", u.name, u.soft, u.hard));
                }
                for b in &n.binds {
                    c.push_str(&format!(" -v {}", q(b)));
                }
                for e in n.inherited_env() {
                    // A withheld value is shown masked; it is taken from the old container.
                    c.push_str(&format!(" -e {}", q(&e.to_string())));
                }
                for (k, v) in &n.env {
                    c.push_str(&format!(" -e {}", q(&format!("{k}={v}"))));
                }
                if let Some(s) = &n.inherited {
                    c.push_str(&inherited_flags(s));
                }
                for (k, v) in &n.labels {
                    c.push_str(&format!(" --label {}", q(&format!("{k}={v}"))));
                }
                c.push(' ');
                c.push_str(&q(&n.image));
                if let Some(id) = &n.image_id {
                    c.push_str(&format!("  -- only while it is image {id}"));
                }
                vec![c]
            }
            Step::StartNewContainer(c) => vec![format!("docker start {}", q(&c.name))],
            Step::CheckSupervisor(e) => vec![format!(
                "docker exec {} {}  -- again until every program is RUNNING (at most {} s; FATAL, EXITED or BACKOFF stops)",
                q(&e.container),
                e.argv.join(" "),
                e.timeout_secs
            )],
            Step::RunDockerInit(i) => vec![format!(
                "docker exec -w {} {} {}  -- until the log shows {}",
                q(&i.working_dir),
                q(&i.container),
                i.argv.join(" "),
                i.success_marker
            )],
            Step::ConfirmHealth(h) | Step::ConfirmOldHealth(h) => {
                vec![format!("{}  -- until data.healthy is true", h.curl())]
            }
            Step::CheckOnline(o) => vec![
                format!(
                    "{};  -- the servers OMS lists (a `status` column, where there is one, is shown only)",
                    crate::sqltext::list_servers(&o.database, true, true),
                ),
                format!(
                    "{}  -- with each listed server's IP, again until every one is healthy (at most {} s)",
                    o.health.curl(),
                    o.health.timeout_secs
                ),
            ],
            Step::DropPrunedHeartbeat(d) | Step::RollbackDropPrunedHeartbeat(d) => {
                // The run's tag is the executor's: the name is shown with a placeholder.
                let old = format!("{}_oms_upgrade_<run>_old", d.table);
                vec![
                    crate::sqltext::use_database(&d.database),
                    format!(
                        "{}  -- if it exists (the prune swapped the table)",
                        crate::sqltext::count_pruned(&old)
                    ),
                    crate::sqltext::HeartbeatSwap::drop_if_exists(&old),
                ]
            }
            Step::Complete | Step::RollbackComplete => vec![],
            Step::RollbackVerifyDumps(a) => a
                .iter()
                .map(|a| {
                    format!(
                        "b3sum {}  -- must be {}{LEDGER_VOUCHES}",
                        q(&a.file),
                        a.blake3_hex
                    )
                })
                .collect(),
            Step::RecreateDatabase(r) => vec![
                crate::sqltext::drop_database(&r.database),
                crate::sqltext::create_database(&r.database, &r.charset, &r.collation),
            ],
            Step::Restore(r) => vec![
                format!(
                    "b3sum {}  -- must be {}{LEDGER_VOUCHES}",
                    q(&r.artifact.file),
                    r.artifact.blake3_hex
                ),
                format!(
                    "restore {} into {}, then compare row counts and checksums of {} tables",
                    q(&r.artifact.file),
                    crate::sqltext::quote_ident(&r.database),
                    r.artifact.tables.len()
                ),
            ],
            Step::RestartOldContainer(r) => vec![format!(
                "docker restart --time {} {}",
                r.timeout_secs,
                q(&r.container.name)
            )],
            Step::OldRestartOff(r) | Step::RollbackRestartPolicy(r) => vec![format!(
                "docker update --restart {} {}",
                r.policy,
                q(r.container.id.as_deref().unwrap_or(&r.container.name))
            )],
            Step::PreStopCheck(p) => {
                let mut v = vec![format!(
                    "docker image inspect {}  -- must be {}",
                    q(&p.image),
                    p.image_id.as_deref().unwrap_or("present")
                )];
                v.extend(
                    p.binds
                        .iter()
                        .map(|b| format!("test -e {}  -- bind source", q(bind_source(b)))),
                );
                v.push(format!(
                    "df {}  -- free space for twice the databases' size",
                    q(&p.backup_dir)
                ));
                v.push("SELECT 1  -- metadata DB reachable".into());
                v.push(format!("{}  -- the old node is healthy", p.health.curl()));
                v
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::samples::{self, plan, plan_for, t0};
    use chrono::Duration;

    #[test]
    fn runbook_order_for_331() {
        let names: Vec<String> = upgrade_keys(ProcedureId::Guide331)
            .iter()
            .map(|k| k.to_string())
            .collect();
        assert_eq!(
            names,
            [
                "disable-ha",
                "pre-stop-check",
                "stop-old",
                "prune-heartbeat",
                "dump-rm",
                "dump-cm",
                "dump-cm_hb",
                "rename-old",
                "create-new",
                "start-new",
                "docker-init",
                "confirm-health",
                "enable-ha",
                "drop-pruned-heartbeat",
                "complete"
            ]
        );
    }

    #[test]
    fn until_stop_old_stops_before_its_check() {
        use StepKey as K;
        assert!(stops_before(K::StopOldContainer, K::PreStopCheck));
        assert!(stops_before(K::StopOldContainer, K::StopOldContainer));
        assert!(stops_before(K::PreStopCheck, K::PreStopCheck));
        assert!(!stops_before(K::PruneHeartbeat, K::PreStopCheck));
        assert!(!stops_before(K::DisableHa, K::StopOldContainer));
    }

    #[test]
    fn guide_42x_checks_supervisor_before_init_and_online_after() {
        let k = upgrade_keys(ProcedureId::Guide42x);
        let pos = |x| k.iter().position(|&y| y == x).unwrap();
        assert_eq!(
            pos(StepKey::CheckSupervisor) + 1,
            pos(StepKey::RunDockerInit)
        );
        assert!(pos(StepKey::CheckOnline) > pos(StepKey::ConfirmHealth));
        assert!(pos(StepKey::CheckOnline) < pos(StepKey::EnableHa));
    }

    #[test]
    fn guide_330_has_no_ha_and_no_is_upgrade() {
        let k = upgrade_keys(ProcedureId::Guide330);
        assert!(!k.contains(&StepKey::DisableHa) && !k.contains(&StepKey::EnableHa));
        let p = plan_for("3.2.2", "3.3.0");
        let Step::CreateNewContainer(n) =
            build(&p, StepKey::CreateNewContainer, &Context::default()).unwrap()
        else {
            panic!()
        };
        assert_eq!(n.env, [("OMS_HOST_IP".to_string(), "10.0.0.5".to_string())]);
        assert!(matches!(
            build(&p, StepKey::EnableHa, &Context::default()),
            Err(BuildError::NotInProcedure { .. })
        ));
    }

    /// Only this run's id label makes a container "ours": another run's, an unlabelled one
    /// and (for a spec without the label) anything are not.
    #[test]
    fn only_this_runs_label_makes_a_container_ours() {
        let p = plan();
        let Step::CreateNewContainer(mut n) =
            build(&p, StepKey::CreateNewContainer, &Context::default()).unwrap()
        else {
            panic!()
        };
        assert!(n.made_by_this_run(&n.labels.clone()));
        let mut other = n.labels.clone();
        other.insert(labels::RUN_ID.into(), uuid::Uuid::nil().to_string());
        assert!(!n.made_by_this_run(&other));
        assert!(!n.made_by_this_run(&BTreeMap::new()));
        n.labels.remove(labels::RUN_ID);
        assert!(!n.made_by_this_run(&BTreeMap::new()));
    }

    #[test]
    fn new_container_matches_the_runbook() {
        let p = plan();
        let Step::CreateNewContainer(n) =
            build(&p, StepKey::CreateNewContainer, &Context::default()).unwrap()
        else {
            panic!()
        };
        assert_eq!(n.name, "oms");
        assert_eq!(n.image, "oms:feature_3.3.1_ce");
        assert_eq!(n.image_id, p.target_image_id);
        assert_eq!(n.binds, p.old_container.binds);
        assert!(n.env.contains(&("IS_UPGRADE".into(), "true".into())));
        assert!(n.env.contains(&("OMS_HOST_IP".into(), "10.0.0.5".into())));
        assert_eq!(n.labels["team"], "dba");
        assert_eq!(n.labels[labels::REPLACES], p.old_container.id);
        let cmd = &Step::CreateNewContainer(n).commands()[0];
        for part in [
            "--net host",
            "--privileged=true",
            "--pids-limit -1",
            "--ulimit nproc=65535:65535",
            "-v /data/oms/oms_store:/home/ds/store",
            "-e IS_UPGRADE=true",
        ] {
            assert!(cmd.contains(part), "{part} in {cmd}");
        }
        let mut q = plan();
        q.privileged = false;
        let cmd = preview(&q)
            .into_iter()
            .find(|s| s.key() == StepKey::CreateNewContainer)
            .unwrap()
            .commands()
            .remove(0);
        assert!(!cmd.contains("privileged"));
    }

    #[test]
    fn names_are_resolved_explicitly() {
        let p = plan();
        let ctx = Context {
            new_container_id: Some("n1".into()),
            ..Default::default()
        };
        let Step::RenameOldContainer(r) = build(&p, StepKey::RenameOldContainer, &ctx).unwrap()
        else {
            panic!()
        };
        assert_eq!((r.from.as_str(), r.to.as_str()), ("oms", "oms-pre-3.3.1"));
        let Step::RenameNewAside(r) = build(&p, StepKey::RenameNewAside, &ctx).unwrap() else {
            panic!()
        };
        assert_eq!(r.to, "oms-failed-3.3.1");
        assert_eq!(r.id.as_deref(), Some("n1"));
        assert_eq!(r.never_id.as_deref(), Some(p.old_container.id.as_str()));
        let Step::RenameOldBack(r) = build(&p, StepKey::RenameOldBack, &ctx).unwrap() else {
            panic!()
        };
        assert_eq!((r.from.as_str(), r.to.as_str()), ("oms-pre-3.3.1", "oms"));
    }

    #[test]
    fn prune_avoids_the_self_subquery() {
        let c = build(&plan(), StepKey::PruneHeartbeat, &Context::default())
            .unwrap()
            .commands();
        assert_eq!(c[0], "USE `oms_cm_hb`");
        assert!(c.contains(&"SELECT MAX(id) FROM heatbeat_sequence".to_string()));
        let delete = c.iter().find(|l| l.starts_with("DELETE")).unwrap();
        let (sql, _) = delete.split_once("  --").unwrap();
        assert!(!sql.to_lowercase().contains("select"));
    }

    /// Regression (issue 12.7): the prune was one DELETE of every row; the plan now shows
    /// the batch bound, and on OceanBase the session timeouts set first.
    #[test]
    fn prune_is_batched_and_prepares_oceanbase_sessions() {
        use crate::events::{MetaServer, PlanExt, ServerFlavour};
        let with = |flavour| {
            let mut p = plan();
            p.ext.retain(|e| !matches!(e, PlanExt::MetaServer(_)));
            p.ext.push(PlanExt::MetaServer(MetaServer {
                flavour,
                version: "v".into(),
            }));
            build(&p, StepKey::PruneHeartbeat, &Context::default())
                .unwrap()
                .commands()
        };
        let maria = with(ServerFlavour::MariaDb);
        assert!(
            !maria.iter().any(|l| l.contains("ob_query_timeout")),
            "{maria:?}"
        );
        assert!(
            maria
                .iter()
                .any(|l| l.contains("at most 10000 rows per statement")),
            "{maria:?}"
        );
        let ob = with(ServerFlavour::OceanBase);
        assert_eq!(ob[1], "SET SESSION ob_query_timeout = 3600000000");
        assert_eq!(ob[2], "SET SESSION ob_trx_timeout = 3600000000");
        let Step::PruneHeartbeat(spec) =
            build(&plan(), StepKey::PruneHeartbeat, &Context::default()).unwrap()
        else {
            panic!()
        };
        assert_eq!(spec.batch_rows, crate::sqltext::HEARTBEAT_BATCH_ROWS);
    }

    /// Regression (issue 12.8): perceive mode kept whatever `refetchStoreIntervalMin` was
    /// stored (e.g. 90 from an earlier upgrade); the runbook says to keep the default.
    #[test]
    fn perceive_mode_sets_the_default_interval() {
        let mut p = plan();
        p.refetch.mode = refetch::RefetchMode::PerceiveCheckpoint;
        let ctx = Context {
            downtime_start: Some(t0()),
            ha_enable_before: Some(true),
            ..Context::default()
        };
        let Step::EnableHa(spec) = build(&p, StepKey::EnableHa, &ctx).unwrap() else {
            panic!()
        };
        let stored = r#"{"enable":false,"perceiveStoreClientCheckpoint":false,"refetchStoreIntervalMin":90}"#;
        let w = spec.apply(stored, t0() + Duration::minutes(40)).unwrap();
        let after = haconfig::HaConfig::parse(&w.json)
            .unwrap()
            .fields()
            .unwrap();
        assert_eq!(after.perceive_checkpoint, Some(true));
        assert_eq!(
            after.refetch_interval_min,
            Some(refetch::DEFAULT_INTERVAL_MIN),
            "{}",
            w.json
        );
        let d = w.decision.unwrap();
        assert!(d.covers(t0(), t0() + Duration::hours(5)));
        assert!(d.reasoning.contains("default"), "{}", d.reasoning);
    }

    /// Regression (issue 12.8): manual HA mode waited for exactly the computed interval;
    /// an operator who typed a larger one (safe: it covers the downtime too) was never
    /// accepted. A smaller one still is not.
    #[test]
    fn manual_mode_accepts_a_larger_interval_and_records_it() {
        let mut p = plan();
        p.ha_mode = HaMode::Manual;
        let ctx = Context {
            downtime_start: Some(t0()),
            ha_enable_before: Some(true),
            ..Context::default()
        };
        let Step::EnableHa(spec) = build(&p, StepKey::EnableHa, &ctx).unwrap() else {
            panic!()
        };
        let now = t0() + Duration::minutes(60);
        let (edit, decision) = spec.edit_at(now);
        let decision = decision.unwrap();
        assert_eq!(edit.refetch_interval_min, Some(90));
        let stored = |n: u64| {
            format!(
                r#"{{"enable":true,"perceiveStoreClientCheckpoint":false,"refetchStoreIntervalMin":{n}}}"#
            )
        };
        assert!(haconfig::meets(&stored(90), &edit).unwrap());
        assert!(haconfig::meets(&stored(120), &edit).unwrap());
        assert!(!haconfig::meets(&stored(89), &edit).unwrap());
        assert!(manual_instructions(&edit).contains("`90` or more"));
        let set = decision.operator_set(120).unwrap();
        assert_eq!(set.interval_minutes, Some(120));
        assert!(
            set.reasoning
                .contains("operator set refetchStoreIntervalMin = 120"),
            "{}",
            set.reasoning
        );
        assert!(decision.operator_set(89).is_none());
    }

    /// Regression (issue 12.9): `plan` printed `docker restart NAME` while the executor
    /// restarts with the plan's stop timeout.
    #[test]
    fn restart_line_shows_the_stop_timeout() {
        let mut p = plan();
        p.stop_timeout_secs = 75;
        let c = build(&p, StepKey::RestartOldContainer, &Context::default())
            .unwrap()
            .commands();
        assert_eq!(c, [format!("docker restart --time 75 {}", q(&p.new_name))]);
    }

    /// An HTTPS console's probe is shown with the CA the plan recorded: a `curl` without
    /// it would fail (or, with `-k`, check less than the tool does).
    #[test]
    fn health_lines_carry_the_recorded_ca() {
        let p = samples::plan_with_every_ext();
        let ca = p.health_trust().unwrap().ca_file.clone().unwrap();
        let c = build(&p, StepKey::PreStopCheck, &Context::default())
            .unwrap()
            .commands();
        let want = format!("curl -s --cacert {} {}", q(&ca), q(&p.health_url));
        assert!(c.iter().any(|l| l.starts_with(&want)), "{c:?}");
        let c = build(&plan(), StepKey::PreStopCheck, &Context::default())
            .unwrap()
            .commands();
        assert!(!c.iter().any(|l| l.contains("--cacert")), "{c:?}");
    }

    #[test]
    fn restore_needs_a_recorded_dump() {
        let p = plan();
        assert_eq!(
            build(&p, StepKey::Restore { db: MetaDb::Cm }, &Context::default()),
            Err(BuildError::NoArtifact(MetaDb::Cm))
        );
        let mut ctx = Context::default();
        ctx.artifacts
            .insert(MetaDb::Cm, samples::artifact(&p, MetaDb::Cm));
        let Step::Restore(r) = build(&p, StepKey::Restore { db: MetaDb::Cm }, &ctx).unwrap() else {
            panic!()
        };
        assert_eq!(
            r.artifact.blake3_hex,
            samples::artifact(&p, MetaDb::Cm).blake3_hex
        );
        assert!(build(&p, StepKey::RollbackVerifyDumps, &ctx).is_err());
    }

    #[test]
    fn enable_ha_applies_the_refetch_rule() {
        let p = plan();
        let ctx = Context {
            downtime_start: Some(t0()),
            ha_enable_before: Some(false),
            ..Default::default()
        };
        let Step::EnableHa(h) = build(&p, StepKey::EnableHa, &ctx).unwrap() else {
            panic!()
        };
        assert!(h.enable, "the runbook enables HA whatever it was before");
        let w = h
            .apply(samples::HA_OFF, t0() + Duration::minutes(60))
            .unwrap();
        assert_eq!(
            w.json,
            r#"{"enable":true,"enableStore":true,"refetchStoreIntervalMin":90,"custom":{"x":1}}"#
        );
        assert_eq!(w.decision.unwrap().interval_minutes, Some(90));
        let mut keep = plan();
        keep.ha_after = HaAfter::KeepPrevious;
        let Step::EnableHa(h) = build(&keep, StepKey::EnableHa, &ctx).unwrap() else {
            panic!()
        };
        assert!(!h.enable);
    }

    #[test]
    fn rollback_before_t1_restores_enable_only() {
        let p = plan();
        let ctx = Context {
            ha_enable_before: Some(true),
            ..Default::default()
        };
        let Step::RollbackEnableHa(h) = build(&p, StepKey::RollbackEnableHa, &ctx).unwrap() else {
            panic!()
        };
        let w = h.apply(samples::HA_OFF, t0()).unwrap();
        assert_eq!(w.json, samples::HA_ON);
        assert_eq!(w.decision, None);
        assert!(
            Step::RollbackEnableHa(h)
                .commands()
                .iter()
                .any(|c| c.contains("no downtime began"))
        );
    }

    #[test]
    fn disable_is_a_noop_when_already_off() {
        let spec = HaDisableSpec {
            database: "rm".into(),
            mode: HaMode::Sql,
        };
        assert_eq!(spec.apply(samples::HA_OFF).unwrap(), None);
        assert_eq!(
            spec.apply(samples::HA_ON).unwrap().as_deref(),
            Some(samples::HA_OFF)
        );
        assert!(spec.apply("[]").is_err());
    }

    /// Every statement printed for a database whose name holds a backtick quotes it the
    /// way the adapter runs it (backticks doubled), in SQL and in manual HA mode.
    #[test]
    fn printed_sql_quotes_names_as_executed() {
        let mut input = samples::input("3.3.0", "3.3.1");
        input.databases.rm = "rmdb`x".into();
        input.databases.cm = "cmdb`; DROP DATABASE y; --".into();
        input.databases.cm_hb = "hbdb`z".into();
        for mode in [HaMode::Sql, HaMode::Manual] {
            input.ha_mode = mode;
            let p = Plan::new(input.clone()).unwrap();
            let mut ctx = Context::default();
            for db in MetaDb::ALL {
                ctx.artifacts.insert(db, samples::artifact(&p, db));
            }
            let mut keys = upgrade_keys(p.procedure);
            keys.extend(
                MetaDb::ALL
                    .iter()
                    .flat_map(|&db| [StepKey::RecreateDatabase { db }, StepKey::Restore { db }]),
            );
            keys.push(StepKey::RollbackEnableHa);
            let mut seen = 0;
            for k in keys {
                for c in build(&p, k, &ctx).unwrap().commands() {
                    // File paths are shell words, checked apart.
                    let c = MetaDb::ALL
                        .iter()
                        .fold(c, |c, &db| c.replace(&q(&p.dump_file(db)), "FILE"));
                    for name in [&p.databases.rm, &p.databases.cm, &p.databases.cm_hb] {
                        if c.contains(name.split('`').next().unwrap()) {
                            seen += 1;
                            assert!(
                                c.contains(&crate::sqltext::quote_ident(name)),
                                "{k}: `{c}` does not quote {name} as executed"
                            );
                        }
                    }
                }
            }
            assert!(seen >= 8, "only {seen} commands name a database");
        }
        let p = Plan::new(input).unwrap();
        let c = build(&p, StepKey::PruneHeartbeat, &Context::default())
            .unwrap()
            .commands();
        assert_eq!(c[0], crate::sqltext::use_database("hbdb`z"));
        assert_eq!(c[0], "USE `hbdb``z`");
        assert!(c.contains(&crate::sqltext::HEARTBEAT_MAX_ID.to_string()));
    }

    #[test]
    fn manual_mode_prints_console_instructions() {
        let mut p = plan();
        p.ha_mode = HaMode::Manual;
        let c = build(&p, StepKey::DisableHa, &Context::default())
            .unwrap()
            .commands();
        assert!(c[0].contains("System Management > System Parameters"));
        assert!(c[0].contains("set `enable` to `false`"));
        assert_eq!(c[1], "USE `oms_rm`");
        assert!(c[2].contains("polled"));
    }

    /// Issue 16: the prune's count and DROP come after T2, as `drop-pruned-heartbeat`:
    /// after `enable-ha`, or after the last health check where the procedure has no HA
    /// steps, and right before `complete`; every procedure prunes, so every one has it.
    #[test]
    fn the_pruned_rows_are_dropped_after_t2_right_before_complete() {
        for p in [
            ProcedureId::Guide330,
            ProcedureId::Guide331,
            ProcedureId::Guide42x,
        ] {
            let k = upgrade_keys(p);
            let at = |key: StepKey| k.iter().position(|x| *x == key).unwrap();
            let drop = at(StepKey::DropPrunedHeartbeat);
            assert_eq!(k[drop + 1], StepKey::Complete, "{p:?}");
            let before = match (p.has_ha_steps(), p.checks_online()) {
                (true, _) => StepKey::EnableHa,
                (false, true) => StepKey::CheckOnline,
                (false, false) => StepKey::ConfirmHealth,
            };
            assert_eq!(k[drop - 1], before, "{p:?}");
            assert!(at(StepKey::PruneHeartbeat) < drop);
        }
        // The 3.3.0 guide has no HA step: right after confirm-health.
        let names: Vec<String> = upgrade_keys(ProcedureId::Guide330)
            .iter()
            .map(|k| k.to_string())
            .collect();
        assert_eq!(
            names[names.len() - 3..],
            ["confirm-health", "drop-pruned-heartbeat", "complete"]
        );
    }

    /// Issue 16: a rollback after the prune drops the rows it moved aside unless it
    /// restores the heartbeat database (which drops and recreates it, `<old>` with it);
    /// one before the prune has nothing to drop.
    #[test]
    fn a_rollback_drops_the_pruned_rows_only_when_it_restores_nothing() {
        let stopped = Touched {
            old_stopped: true,
            ..Default::default()
        };
        assert_eq!(
            rollback_keys(&stopped).unwrap(),
            [
                StepKey::RestartOldContainer,
                StepKey::ConfirmOldHealth,
                StepKey::RollbackComplete
            ]
        );
        let pruned = Touched {
            pruned: true,
            ha_disabled: true,
            ha_previous_known: true,
            ..stopped
        };
        assert_eq!(
            rollback_keys(&pruned).unwrap(),
            [
                StepKey::RestartOldContainer,
                StepKey::ConfirmOldHealth,
                StepKey::RollbackEnableHa,
                StepKey::RollbackDropPrunedHeartbeat,
                StepKey::RollbackComplete
            ]
        );
        let restored = Touched {
            old_renamed: true,
            new_created: true,
            new_started: true,
            dumps_complete: true,
            ..pruned
        };
        let k = rollback_keys(&restored).unwrap();
        assert!(k.contains(&StepKey::Restore { db: MetaDb::CmHb }));
        assert!(!k.contains(&StepKey::RollbackDropPrunedHeartbeat), "{k:?}");
    }

    #[test]
    fn rollback_keys_follow_what_was_touched() {
        // Nothing happened: only the completion record.
        assert_eq!(
            rollback_keys(&Touched::default()).unwrap(),
            [StepKey::RollbackComplete]
        );
        // HA off, nothing stopped: HA back as it was.
        let t = Touched {
            ha_disabled: true,
            ha_previous_known: true,
            ..Default::default()
        };
        assert_eq!(
            rollback_keys(&t).unwrap(),
            [StepKey::RollbackEnableHa, StepKey::RollbackComplete]
        );
        // Stopped and dumped, new container created but never started: no restore.
        let t = Touched {
            ha_disabled: true,
            ha_previous_known: true,
            old_stopped: true,
            old_renamed: true,
            new_created: true,
            dumps_complete: true,
            ..Default::default()
        };
        let k = rollback_keys(&t).unwrap();
        assert!(!k.iter().any(|k| matches!(k, StepKey::Restore { .. })));
        assert_eq!(
            k,
            [
                StepKey::RenameNewAside,
                StepKey::RenameOldBack,
                StepKey::RestartOldContainer,
                StepKey::ConfirmOldHealth,
                StepKey::RollbackEnableHa,
                StepKey::RollbackComplete
            ]
        );
        // Started: everything, verification first.
        let t = Touched {
            ha_enabled: true,
            new_started: true,
            ..t
        };
        let k = rollback_keys(&t).unwrap();
        assert_eq!(k[0], StepKey::RollbackVerifyDumps);
        assert_eq!(k[1], StepKey::RollbackDisableHa);
        assert_eq!(k[2], StepKey::StopNewContainer);
        assert_eq!(k.len(), 1 + 1 + 1 + 2 + 6 + 2 + 1 + 1);
        // Started without complete dumps: refused.
        let t = Touched {
            dumps_complete: false,
            ..t
        };
        assert_eq!(rollback_keys(&t), Err(RollbackRefusal::NoBackup));
    }

    /// Issue 12.3: a plan that recorded the old container's settings turns its restart
    /// policy off right after T1 and a rollback puts it back before restarting it.
    #[test]
    fn restart_policy_is_turned_off_after_the_stop_and_back_on_rollback() {
        let p = samples::plan_with_settings();
        let k = plan_keys(&p);
        let stop = k
            .iter()
            .position(|k| *k == StepKey::StopOldContainer)
            .unwrap();
        assert_eq!(k[stop + 1], StepKey::OldRestartOff);
        assert!(!plan_keys(&plan()).contains(&StepKey::OldRestartOff));
        let Step::OldRestartOff(r) =
            build(&p, StepKey::OldRestartOff, &Context::default()).unwrap()
        else {
            panic!()
        };
        assert!(r.policy.is_no());
        assert_eq!(r.container.id.as_deref(), Some(p.old_container.id.as_str()));
        assert_eq!(
            Step::OldRestartOff(r).commands(),
            [format!("docker update --restart no {}", p.old_container.id)]
        );
        let t = Touched {
            old_stopped: true,
            old_restart_off: true,
            ..Default::default()
        };
        let rk = rollback_keys(&t).unwrap();
        let pos = |x| rk.iter().position(|&y| y == x).unwrap();
        assert_eq!(
            pos(StepKey::RollbackRestartPolicy) + 1,
            pos(StepKey::RestartOldContainer)
        );
        let ctx = Context {
            old_restart_before: Some(RestartPolicy {
                name: "always".into(),
                max_retries: 0,
            }),
            ..Default::default()
        };
        let Step::RollbackRestartPolicy(r) =
            build(&p, StepKey::RollbackRestartPolicy, &ctx).unwrap()
        else {
            panic!()
        };
        assert_eq!(r.policy.to_string(), "always");
        let Step::RollbackRestartPolicy(r) =
            build(&p, StepKey::RollbackRestartPolicy, &Context::default()).unwrap()
        else {
            panic!()
        };
        assert_eq!(r.policy.to_string(), "unless-stopped");
    }

    /// Issue 12.4: the new container gets the old one's restart policy, env (a secret
    /// shown masked), other ulimits, log options and extra hosts; the runbook's own values
    /// win where it names them.
    #[test]
    fn new_container_inherits_what_the_runbook_does_not_change() {
        let p = samples::plan_with_settings();
        let Step::CreateNewContainer(n) =
            build(&p, StepKey::CreateNewContainer, &Context::default()).unwrap()
        else {
            panic!()
        };
        assert_eq!(n.restart.to_string(), "unless-stopped");
        let names: Vec<&str> = n.inherited_env().iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["OMS_META_PASSWORD", "TZ"]);
        assert_eq!(
            n.ulimits
                .iter()
                .map(|u| format!("{}={}:{}", u.name, u.soft, u.hard))
                .collect::<Vec<_>>(),
            ["nofile=1024:4096", "nproc=65535:65535"]
        );
        let cmd = &Step::CreateNewContainer(n).commands()[0];
        for part in [
            "--restart unless-stopped",
            "-e 'OMS_META_PASSWORD=***'",
            "-e TZ=UTC",
            "--log-driver json-file",
            "--log-opt max-size=10m",
            "--add-host meta.local:10.0.0.9",
            "--ulimit nofile=1024:4096",
        ] {
            assert!(cmd.contains(part), "{part} in {cmd}");
        }
        assert!(!cmd.contains("hunter2"));
    }

    #[test]
    fn preview_builds_every_upgrade_step() {
        for p in [
            plan(),
            plan_for("4.2.1", "4.2.2"),
            plan_for("3.2.2", "3.3.0"),
        ] {
            let steps = preview(&p);
            assert_eq!(
                steps.iter().map(Step::key).collect::<Vec<_>>(),
                upgrade_keys(p.procedure)
            );
            for s in &steps {
                assert!(!s.summary().is_empty());
                for c in s.commands() {
                    assert!(!c.contains("hunter2"));
                }
            }
        }
    }
}
