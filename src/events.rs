//! The event vocabulary: what the ledger records about a run, and the only place that
//! knows how payloads are encoded.
//!
//! There are two forms of every event. The *domain* form ([`Event`] and the types it
//! holds) is what the rest of the program uses; it may evolve. The *stored* form
//! ([`v1`]) is a compatibility promise: frozen, versioned serde structs encoded with
//! bincode 2 (standard config), times as microseconds since the Unix epoch, UUIDs as 16
//! bytes. [`encode`] and [`decode`] convert explicitly between the two. A change to a
//! stored type means a new schema version (a `v2` module) while `v1` stays decodable;
//! enums in `v1` may only gain variants at the end. `ledger-schema/EVENTS.md` documents
//! every event type, version and field for auditors reading an export.
//!
//! Every step of a run is recorded as an intent before its side effect and an outcome
//! after it; see [`Event`]. Deciding which event may come next is `replay`'s job.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::ledger::PayloadDecoder;
use crate::refetch::RefetchDecision;

mod deployment;
mod env;
mod plan;
mod planext;
mod record;
pub mod v1;

pub use crate::dumpkind::{ChecksumMethod, Compression, Dumper, FileFormat, UnknownWord};
pub use deployment::{
    Deployment, NodeIx, NodeMeta, NodePlan, NodeStep, RegionIx, RegionPlan, RegionStep, Scope,
};
pub use env::{EnvVar, looks_secret, record_env};
pub use plan::{
    ContainerSnapshot, DbNames, HaAfter, HaMode, MetaDbLocation, Plan, PlanDigest, PlanError,
    PlanInput,
};
pub use planext::{
    ContainerSettings, HaAtInit, HealthScheme, HealthTrust, MetaServer, PlanExt, RestartPolicy,
    ServerFlavour, Ulimit, WitnessPlan, WitnessPolicy,
};
pub use record::{UndecodableRecord, to_recorded};

/// One of the three metadata databases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MetaDb {
    /// `drc_rm_db`: resource manager, holds `oms_normal_config` (`ha.config`).
    Rm,
    /// `drc_cm_db`: cluster manager.
    Cm,
    /// `drc_cm_heartbeat_db`: cluster manager heartbeats (`heatbeat_sequence`).
    CmHb,
}

impl MetaDb {
    /// The three, in the runbook's order (rm, cm, cm_hb).
    pub const ALL: [MetaDb; 3] = [MetaDb::Rm, MetaDb::Cm, MetaDb::CmHb];

    /// Short label: `rm`, `cm`, `cm_hb`.
    pub fn label(self) -> &'static str {
        match self {
            MetaDb::Rm => "rm",
            MetaDb::Cm => "cm",
            MetaDb::CmHb => "cm_hb",
        }
    }
}

impl fmt::Display for MetaDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl Serialize for MetaDb {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.label())
    }
}

/// Identifies a step of the upgrade or of its rollback (with its parameter, if any).
///
/// Its string form (`Display`/`FromStr`, e.g. `dump-cm_hb`, `rollback-restore-rm`) is
/// what the CLI accepts for `run --until` and what the JSON views show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StepKey {
    /// Runbook 1: set `ha.config` `enable=false`.
    DisableHa,
    /// Runbook 2.1: `docker stop` the old container; T1.
    StopOldContainer,
    /// Runbook 2.2: delete all but the newest `heatbeat_sequence` row.
    PruneHeartbeat,
    /// Runbook 2.3: dump one database.
    Dump {
        /// Which database.
        db: MetaDb,
    },
    /// Frees the name: old container renamed to `<name>-pre-<target>`.
    RenameOldContainer,
    /// Runbook 3: create the new container (same binds, `IS_UPGRADE=true`, ...).
    CreateNewContainer,
    /// Runbook 3: start it.
    StartNewContainer,
    /// 4.2.x guide: `supervisorctl status` shows every program RUNNING.
    CheckSupervisor,
    /// Runbook 4: `bash /root/docker_init.sh` inside the new container.
    RunDockerInit,
    /// `GET /oms/health` answers healthy.
    ConfirmHealth,
    /// 4.2.x guide: every machine Online.
    CheckOnline,
    /// Runbook 5: `enable=true` with the refetch rule; T2.
    EnableHa,
    /// The upgrade is complete.
    Complete,
    /// Rollback: re-hash every dump before anything is changed.
    RollbackVerifyDumps,
    /// Runbook 6.1: disable HA.
    RollbackDisableHa,
    /// Runbook 6.2: stop the new container; T3.
    StopNewContainer,
    /// Frees the name again: new container renamed to `<name>-failed-<target>`.
    RenameNewAside,
    /// The old container gets its name back.
    RenameOldBack,
    /// Runbook 6.3: drop and recreate one database.
    RecreateDatabase {
        /// Which database.
        db: MetaDb,
    },
    /// Runbook 6.4: restore one dump (checksum verified first, tables checked after).
    Restore {
        /// Which database.
        db: MetaDb,
    },
    /// Runbook 6.5: `docker restart` the old container.
    RestartOldContainer,
    /// The old container answers healthy.
    ConfirmOldHealth,
    /// Runbook 6.6: HA back on, refetch covering the downtime since T1.
    RollbackEnableHa,
    /// The rollback is complete.
    RollbackComplete,
    /// Right before `stop-old` (T1): everything `init` checked that can change since
    /// (target image tag still on the planned id, binds on disk, free disk for the dumps,
    /// metadata DB reachable, old node healthy) is checked again; a failure refuses with
    /// nothing stopped.
    PreStopCheck,
    /// Right after `stop-old`: the old container's restart policy set to `no`, so a Docker
    /// daemon restart does not bring it back during the backup or next to the new one
    /// (issue 12.3). Part of plans that record the old container's settings.
    OldRestartOff,
    /// Rollback: the old container's restart policy put back as it was.
    RollbackRestartPolicy,
    /// issue 15: a per-node step on a node other than node 0 (`node2:stop-old`).
    Node {
        /// Which node (never 0: node 0's steps are the plain keys).
        node: NodeIx,
        /// Which step.
        step: NodeStep,
    },
    /// issue 15: a heartbeat step of a region other than node 0's (`region1:dump-cm_hb`).
    Region {
        /// Which region (never 0).
        region: RegionIx,
        /// Which step.
        step: RegionStep,
    },
    /// issue 16: after T2, the heartbeat rows the prune's table swap moved aside (this
    /// run's `<old>` table) counted exactly and dropped, outside the downtime window.
    DropPrunedHeartbeat,
    /// issue 16: a rollback that does not restore the heartbeat database (the new
    /// container never started) drops the rows the prune moved aside, as
    /// `drop-pruned-heartbeat` would have (a restore drops the whole database instead).
    RollbackDropPrunedHeartbeat,
}

impl StepKey {
    /// True for the rollback's steps.
    pub fn is_rollback(self) -> bool {
        matches!(
            self.base(),
            StepKey::RollbackVerifyDumps
                | StepKey::RollbackDisableHa
                | StepKey::StopNewContainer
                | StepKey::RenameNewAside
                | StepKey::RenameOldBack
                | StepKey::RecreateDatabase { .. }
                | StepKey::Restore { .. }
                | StepKey::RestartOldContainer
                | StepKey::ConfirmOldHealth
                | StepKey::RollbackEnableHa
                | StepKey::RollbackComplete
                | StepKey::RollbackRestartPolicy
                | StepKey::RollbackDropPrunedHeartbeat
        )
    }

    /// Steps an operator should confirm (unless `--yes`): they start the downtime, delete
    /// rows, migrate the schema or replace database content.
    pub fn needs_confirmation(self) -> bool {
        matches!(
            self.base(),
            StepKey::StopOldContainer
                | StepKey::PruneHeartbeat
                | StepKey::RunDockerInit
                | StepKey::StopNewContainer
                | StepKey::RecreateDatabase { .. }
                | StepKey::Restore { .. }
        )
    }

    /// Every key, upgrade and rollback (for parsing and tests).
    pub fn all() -> Vec<StepKey> {
        let mut v = vec![
            StepKey::DisableHa,
            StepKey::PreStopCheck,
            StepKey::StopOldContainer,
            StepKey::OldRestartOff,
            StepKey::PruneHeartbeat,
        ];
        v.extend(MetaDb::ALL.map(|db| StepKey::Dump { db }));
        v.extend([
            StepKey::RenameOldContainer,
            StepKey::CreateNewContainer,
            StepKey::StartNewContainer,
            StepKey::CheckSupervisor,
            StepKey::RunDockerInit,
            StepKey::ConfirmHealth,
            StepKey::CheckOnline,
            StepKey::EnableHa,
            StepKey::DropPrunedHeartbeat,
            StepKey::Complete,
            StepKey::RollbackVerifyDumps,
            StepKey::RollbackDisableHa,
            StepKey::StopNewContainer,
            StepKey::RenameNewAside,
            StepKey::RenameOldBack,
        ]);
        for db in MetaDb::ALL {
            v.push(StepKey::RecreateDatabase { db });
            v.push(StepKey::Restore { db });
        }
        v.extend([
            StepKey::RollbackRestartPolicy,
            StepKey::RestartOldContainer,
            StepKey::ConfirmOldHealth,
            StepKey::RollbackEnableHa,
            StepKey::RollbackDropPrunedHeartbeat,
            StepKey::RollbackComplete,
        ]);
        v
    }

    /// True when `facts` is the kind of outcome this step produces.
    pub fn accepts(self, facts: &StepFacts) -> bool {
        use StepFacts as F;
        match (self.base(), facts) {
            (StepKey::DisableHa | StepKey::RollbackDisableHa, F::HaDisabled(_)) => true,
            (StepKey::StopOldContainer | StepKey::StopNewContainer, F::ContainerStopped(_)) => true,
            (StepKey::PruneHeartbeat, F::HeartbeatPruned { .. }) => true,
            (
                StepKey::DropPrunedHeartbeat | StepKey::RollbackDropPrunedHeartbeat,
                F::PrunedHeartbeatDropped { .. },
            ) => true,
            (StepKey::Dump { db }, F::DumpWritten(a)) => a.db == db,
            (
                StepKey::RenameOldContainer | StepKey::RenameNewAside | StepKey::RenameOldBack,
                F::ContainerRenamed { .. },
            ) => true,
            (StepKey::CreateNewContainer, F::NewContainerCreated(_)) => true,
            (StepKey::StartNewContainer, F::NewContainerStarted { .. }) => true,
            (StepKey::CheckSupervisor, F::SupervisorChecked { .. } | F::SupervisorPolled(_)) => {
                true
            }
            (StepKey::RunDockerInit, F::DockerInit(_)) => true,
            (StepKey::ConfirmHealth | StepKey::ConfirmOldHealth, F::Health(_)) => true,
            (StepKey::CheckOnline, F::NodesOnline { .. }) => true,
            (StepKey::EnableHa | StepKey::RollbackEnableHa, F::HaEnabled(_)) => true,
            (StepKey::Complete | StepKey::RollbackComplete, F::Completed) => true,
            (StepKey::RollbackVerifyDumps, F::DumpsVerified { .. }) => true,
            (StepKey::RecreateDatabase { db }, F::DatabaseRecreated { db: d, .. }) => *d == db,
            (StepKey::Restore { db }, F::Restored(r)) => r.db == db,
            (StepKey::RestartOldContainer, F::ContainerRestarted { .. }) => true,
            (StepKey::PreStopCheck, F::PreStopChecked { .. }) => true,
            (
                StepKey::OldRestartOff | StepKey::RollbackRestartPolicy,
                F::RestartPolicySet { .. },
            ) => true,
            // Reality may show there is nothing to do: no new container was left to
            // stop or move aside (its creation failed), or the old one kept its name.
            (
                StepKey::StopNewContainer | StepKey::RenameNewAside | StepKey::RenameOldBack,
                F::Skipped { .. },
            ) => true,
            _ => false,
        }
    }
}

impl fmt::Display for StepKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepKey::DisableHa => f.write_str("disable-ha"),
            StepKey::StopOldContainer => f.write_str("stop-old"),
            StepKey::PruneHeartbeat => f.write_str("prune-heartbeat"),
            StepKey::Dump { db } => write!(f, "dump-{db}"),
            StepKey::RenameOldContainer => f.write_str("rename-old"),
            StepKey::CreateNewContainer => f.write_str("create-new"),
            StepKey::StartNewContainer => f.write_str("start-new"),
            StepKey::CheckSupervisor => f.write_str("check-supervisor"),
            StepKey::RunDockerInit => f.write_str("docker-init"),
            StepKey::ConfirmHealth => f.write_str("confirm-health"),
            StepKey::CheckOnline => f.write_str("check-online"),
            StepKey::EnableHa => f.write_str("enable-ha"),
            StepKey::Complete => f.write_str("complete"),
            StepKey::RollbackVerifyDumps => f.write_str("rollback-verify-dumps"),
            StepKey::RollbackDisableHa => f.write_str("rollback-disable-ha"),
            StepKey::StopNewContainer => f.write_str("rollback-stop-new"),
            StepKey::RenameNewAside => f.write_str("rollback-rename-new"),
            StepKey::RenameOldBack => f.write_str("rollback-rename-old"),
            StepKey::RecreateDatabase { db } => write!(f, "rollback-recreate-{db}"),
            StepKey::Restore { db } => write!(f, "rollback-restore-{db}"),
            StepKey::RestartOldContainer => f.write_str("rollback-restart-old"),
            StepKey::ConfirmOldHealth => f.write_str("rollback-confirm-health"),
            StepKey::RollbackEnableHa => f.write_str("rollback-enable-ha"),
            StepKey::RollbackComplete => f.write_str("rollback-complete"),
            StepKey::PreStopCheck => f.write_str("pre-stop-check"),
            StepKey::OldRestartOff => f.write_str("old-restart-off"),
            StepKey::RollbackRestartPolicy => f.write_str("rollback-restart-policy"),
            StepKey::DropPrunedHeartbeat => f.write_str("drop-pruned-heartbeat"),
            StepKey::RollbackDropPrunedHeartbeat => f.write_str("rollback-drop-pruned-heartbeat"),
            StepKey::Node { node, step } => write!(f, "{node}:{}", step.base()),
            StepKey::Region { region, step } => write!(f, "{region}:{}", step.base()),
        }
    }
}

/// A step name that is not one of [`StepKey::all`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown step `{given}`; steps are: {}", StepKey::all().iter().map(|k| k.to_string()).collect::<Vec<_>>().join(", "))]
pub struct UnknownStep {
    /// What was given.
    pub given: String,
}

impl FromStr for StepKey {
    type Err = UnknownStep;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || UnknownStep {
            given: s.to_string(),
        };
        // `node2:stop-old`, `region1:dump-cm_hb`: a plain key on a node or region.
        let scoped = |prefix: &str| -> Option<(u8, StepKey)> {
            let rest = s.strip_prefix(prefix)?;
            let (ix, key) = rest.split_once(':')?;
            if ix.is_empty() || !ix.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let ix: u8 = ix.parse().ok()?;
            let key = StepKey::all().into_iter().find(|k| k.to_string() == key)?;
            Some((ix, key))
        };
        if let Some((n, key)) = scoped("node") {
            return match NodeStep::of(key) {
                Some(step) if n > 0 => Ok(StepKey::Node {
                    node: NodeIx(n),
                    step,
                }),
                _ => Err(unknown()),
            };
        }
        if let Some((r, key)) = scoped("region") {
            return match RegionStep::of(key) {
                Some(step) if r > 0 => Ok(StepKey::Region {
                    region: RegionIx(r),
                    step,
                }),
                _ => Err(unknown()),
            };
        }
        StepKey::all()
            .into_iter()
            .find(|k| k.to_string() == s)
            .ok_or_else(unknown)
    }
}

impl Serialize for StepKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A manual attestation: an operator states something the tool cannot observe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attestation {
    /// Who attests (as typed by the operator; the record also carries the OS user).
    pub by: String,
    /// What is attested, in the operator's words.
    pub statement: String,
    /// The step it concerns, if any.
    pub step: Option<StepKey>,
    /// When the attested thing happened, if the operator says so.
    pub observed_at: Option<DateTime<Utc>>,
}

/// One table's facts inside a dump (or after a restore).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableFact {
    /// Table name.
    pub name: String,
    /// Row count.
    pub rows: u64,
    /// Content checksum (as text: a `CHECKSUM TABLE` number or a BLAKE3 hex).
    pub checksum: String,
    /// How the checksum was taken.
    pub method: ChecksumMethod,
}

/// A dump as the backup engine wrote it. The executor converts the engine's own type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DumpArtifact {
    /// Which of the three.
    pub db: MetaDb,
    /// Database name.
    pub database: String,
    /// Final path of the file.
    pub file: String,
    /// Size in bytes as written on disk.
    pub size: u64,
    /// BLAKE3 of the bytes on disk, hex.
    pub blake3_hex: String,
    /// What the (uncompressed) content is.
    pub format: FileFormat,
    /// How the bytes on disk are encoded.
    pub compression: Compression,
    /// Which program wrote it.
    pub dumper: Dumper,
    /// The database's default character set (restore recreates it with this).
    pub charset: String,
    /// The database's default collation (restore recreates it with this).
    pub collation: String,
    /// Per-table facts, taken inside the dump's snapshot.
    pub tables: Vec<TableFact>,
    /// Views in the dump (restore checks they come back).
    pub views: Vec<String>,
}

/// An `ha.config` change that switched HA off (or found it already off).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HaDisabled {
    /// The value read before (HA before the run, for the upgrade's step).
    pub previous_json: String,
    /// The value written; `None` when `enable` was already false.
    pub written_json: Option<String>,
    /// How it was changed.
    pub mode: HaMode,
    /// The operator's attestation in manual mode.
    pub attestation: Option<Attestation>,
}

/// An `ha.config` change that switched HA back on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HaEnabled {
    /// When the stored value was confirmed (T2 for the upgrade's step).
    pub enabled_at: DateTime<Utc>,
    /// The value read just before writing.
    pub previous_json: String,
    /// The value written (and read back).
    pub written_json: String,
    /// How the refetch setting was chosen; `None` when no downtime had begun (a rollback
    /// before T1 only restores `enable`).
    pub refetch: Option<RefetchDecision>,
    /// How it was changed.
    pub mode: HaMode,
    /// The operator's attestation in manual mode.
    pub attestation: Option<Attestation>,
}

/// A container stopped (old: T1; new, on rollback: T3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerStopped {
    /// Container id.
    pub id: String,
    /// When the tool saw the container stopped (its stop call returned). This was T1/T3 in
    /// ledgers of earlier builds, which have no `stop_requested_at`.
    pub stopped_at: DateTime<Utc>,
    /// T1 or T3: when the stop was requested (the container may be shutting down from
    /// then on, up to the stop timeout before the stop call returns), so the downtime and
    /// the refetch window are measured from here. See [`ContainerStopped::t`].
    pub stop_requested_at: Option<DateTime<Utc>>,
    /// Docker's own `State.FinishedAt`.
    pub docker_finished_at: Option<DateTime<Utc>>,
    /// `State.ExitCode`.
    pub exit_code: Option<i64>,
    /// It was already stopped (e.g. found so on reconciliation).
    pub already_stopped: bool,
}

impl ContainerStopped {
    /// T1 (old container) or T3 (new one): the instant the stop was requested, or, in
    /// records of earlier builds that did not record it, when the stop was seen done.
    pub fn t(&self) -> DateTime<Utc> {
        self.stop_requested_at.unwrap_or(self.stopped_at)
    }
}

/// The new container as created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewContainer {
    /// Container id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Image id, as inspected.
    pub image_id: Option<String>,
    /// `HostConfig.Binds` as inspected after creation.
    pub binds: Vec<String>,
    /// `Config.Env` as inspected, secrets withheld.
    pub env: Vec<EnvVar>,
    /// The old container's binds (from the plan), for the proof.
    pub old_binds: Vec<String>,
    /// The proof: `binds` equal `old_binds` as sets.
    pub binds_equal_to_old: bool,
}

/// Longest `log_tail` (and other free text taken from a program's output) worth
/// recording: a ledger record holds at most 64 KiB, and the full log is pinned by its
/// BLAKE3 anyway.
pub const LOG_TAIL_MAX_BYTES: usize = 4096;

/// The last `max` bytes of `text`, cut on a character boundary (for `log_tail`).
pub fn tail_utf8(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// `docker_init.sh`'s result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DockerInit {
    /// Exit code of `bash /root/docker_init.sh`.
    pub exit_code: i64,
    /// The success line `【结束】全部初始化步骤执行成功` was seen.
    pub marker_seen: bool,
    /// Which log file (under `/home/admin/logs`) was read.
    pub log_file: Option<String>,
    /// BLAKE3 of the whole log, hex.
    pub log_blake3: String,
    /// The log's last lines.
    pub log_tail: String,
    /// Known-harmless errors seen (e.g. `ERROR 1235 (0A000)` on OceanBase).
    pub harmless_errors: Vec<String>,
}

/// A health probe's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    /// The URL probed.
    pub url: String,
    /// `data.healthy`.
    pub healthy: bool,
    /// BLAKE3 of the response body, hex.
    pub body_blake3: String,
    /// The container probed (id).
    pub container_id: Option<String>,
}

/// One program of `supervisorctl status`, or one machine's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamedState {
    /// Program or machine.
    pub name: String,
    /// Its state (`RUNNING`, `Online`, ...).
    pub state: String,
}

/// One dump's re-hash before a rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DumpCheck {
    /// Which database.
    pub db: MetaDb,
    /// The file.
    pub file: String,
    /// BLAKE3 found, hex (`None` when the file is missing).
    pub found_blake3: Option<String>,
    /// Equal to the recorded one.
    pub ok: bool,
}

/// A restore's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Restored {
    /// Which database.
    pub db: MetaDb,
    /// Database name.
    pub database: String,
    /// The dump restored.
    pub file: String,
    /// BLAKE3 verified before restoring (equal to the recorded artifact's).
    pub verified_blake3: String,
    /// Tables after the restore.
    pub tables: Vec<TableFact>,
    /// Every table's rows and checksum equal the artifact's.
    pub tables_match: bool,
}

/// What a step found or did; the payload of `step.done` (and optionally of
/// `step.failed`, describing what was seen).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepFacts {
    /// `disable-ha`, `rollback-disable-ha`.
    HaDisabled(HaDisabled),
    /// `stop-old` (T1), `rollback-stop-new` (T3).
    ContainerStopped(ContainerStopped),
    /// `prune-heartbeat`.
    HeartbeatPruned {
        /// `max(id)` read first (`None`: empty or missing table).
        max_id: Option<i64>,
        /// Rows deleted below it.
        rows_deleted: u64,
        /// DELETE statements run (`None` in ledgers of earlier builds: one unbatched DELETE).
        batches: Option<u64>,
        /// Most rows a statement deleted (`None` in ledgers of earlier builds).
        batch_rows: Option<u64>,
        /// What the step found wrong but did not stop for (e.g. no heartbeat table).
        warning: Option<String>,
    },
    /// `dump-*`.
    DumpWritten(DumpArtifact),
    /// `rename-old`, `rollback-rename-new`, `rollback-rename-old`.
    ContainerRenamed {
        /// Container id.
        id: String,
        /// Old name.
        from: String,
        /// New name.
        to: String,
    },
    /// `create-new`.
    NewContainerCreated(NewContainer),
    /// `start-new`.
    NewContainerStarted {
        /// Container id.
        id: String,
        /// Docker's `State.StartedAt`.
        started_at: Option<DateTime<Utc>>,
    },
    /// `check-supervisor`.
    SupervisorChecked {
        /// Every program and its state.
        programs: Vec<NamedState>,
        /// All are RUNNING.
        all_running: bool,
    },
    /// `docker-init`.
    DockerInit(DockerInit),
    /// `confirm-health`, `rollback-confirm-health`.
    Health(Health),
    /// `check-online`.
    NodesOnline {
        /// Every machine and its status.
        nodes: Vec<NamedState>,
        /// All are Online.
        all_online: bool,
    },
    /// `enable-ha` (T2), `rollback-enable-ha`.
    HaEnabled(HaEnabled),
    /// `rollback-verify-dumps`.
    DumpsVerified {
        /// One per dump.
        checks: Vec<DumpCheck>,
    },
    /// `rollback-recreate-*`.
    DatabaseRecreated {
        /// Which database.
        db: MetaDb,
        /// Its name.
        database: String,
    },
    /// `rollback-restore-*`.
    Restored(Restored),
    /// `rollback-restart-old`.
    ContainerRestarted {
        /// Container id.
        id: String,
        /// Its name.
        name: String,
    },
    /// `complete`, `rollback-complete`.
    Completed,
    /// Reality showed there was nothing to do (see [`StepKey::accepts`]).
    Skipped {
        /// Why.
        reason: String,
    },
    /// `pre-stop-check`: what was checked again right before T1.
    PreStopChecked {
        /// Every check, passed or not (a `done` outcome needs all passed).
        checks: Vec<PreflightCheck>,
    },
    /// `old-restart-off`, `rollback-restart-policy`: a container's restart policy set.
    RestartPolicySet {
        /// The container (the old one).
        id: String,
        /// Its policy before (for `old-restart-off`: what the rollback puts back).
        before: RestartPolicy,
        /// Its policy after, read back.
        after: RestartPolicy,
    },
    /// issue 12.5
    /// `check-supervisor`, polled until every program is RUNNING or the wait ran out
    /// (supersedes [`StepFacts::SupervisorChecked`], which older ledgers hold).
    SupervisorPolled(SupervisorPoll),
    /// issue 16: `drop-pruned-heartbeat`: the table the prune's swap moved the old
    /// heartbeat rows into, counted and dropped after T2.
    PrunedHeartbeatDropped {
        /// That table (this run's `<old>`, `heatbeat_sequence_oms_upgrade_<8 hex>_old`).
        table: String,
        /// Its rows below its newest id (an exact `COUNT(*)`) before the drop: the rows the
        /// prune removed (the newest is also in the new heartbeat table).
        /// `None`: there was no such table (the prune deleted in batches, or an earlier
        /// attempt of this step dropped it before its outcome was recorded).
        rows: Option<u64>,
    },
}

/// `supervisorctl status` polled until every program is RUNNING (the 4.2.x guide's check
/// before `docker_init.sh`), bounded by the plan's health timeout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SupervisorPoll {
    /// Every program and its state at the last poll.
    pub programs: Vec<NamedState>,
    /// All were RUNNING at the last poll.
    pub all_running: bool,
    /// How many times `supervisorctl status` ran.
    pub polls: u32,
    /// From the first poll to the last answer, milliseconds.
    pub elapsed_ms: u64,
    /// The bound on the wait, seconds.
    pub timeout_secs: u32,
}

impl SupervisorPoll {
    /// The programs that are not RUNNING, as `name STATE`, comma-separated.
    pub fn not_running(&self) -> String {
        self.programs
            .iter()
            .filter(|p| p.state != "RUNNING")
            .map(|p| format!("{} {}", p.name, p.state))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Longest free text from a program (a step's error message, reconcile evidence) recorded
/// as it is; longer text is cut by [`bound_text`].
pub const FREE_TEXT_MAX_BYTES: usize = 8 * 1024;

/// The marker put in front of a text cut to fit a record: how much was kept, of how much
/// (when known), and the BLAKE3 of the whole text (so a copy kept elsewhere can be matched
/// to it).
pub fn cut_marker(kept: usize, whole_len: Option<usize>, whole_blake3: &str) -> String {
    let of = whole_len.map(|n| format!(" of {n}")).unwrap_or_default();
    format!("[cut to fit the ledger: {kept}{of} bytes kept; BLAKE3 of the whole: {whole_blake3}] ")
}

/// `text` if it is at most `max` bytes; else its first bytes (on a character boundary)
/// after a [`cut_marker`].
pub fn head_marked(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let hash = blake3::hash(text.as_bytes()).to_hex();
    format!(
        "{}{}",
        cut_marker(end, Some(text.len()), &hash),
        &text[..end]
    )
}

/// The last `max` bytes of `text` (on a character boundary), behind a [`cut_marker`]
/// naming `whole_blake3` when anything was cut (for log tails: the whole log may be longer
/// than `text`, and only its hash is known).
pub fn tail_marked(text: &str, max: usize, whole_blake3: &str) -> String {
    let tail = tail_utf8(text, max);
    if tail.len() == text.len() {
        return text.to_string();
    }
    format!("{}{tail}", cut_marker(tail.len(), None, whole_blake3))
}

/// `event` with free text taken from programs (a step's error, reconcile evidence and a
/// reconciled failure's error) cut to [`FREE_TEXT_MAX_BYTES`] by [`head_marked`]. Text
/// an operator typed (notes, reasons, attestations) is left alone: if it does not fit, the
/// journal refuses it with a typed error and the operator shortens it.
pub fn bound_text(mut event: Event) -> Event {
    let cut = |t: &mut String| {
        if t.len() > FREE_TEXT_MAX_BYTES {
            *t = head_marked(t, FREE_TEXT_MAX_BYTES);
        }
    };
    match &mut event {
        Event::StepFailed { error, .. } => cut(error),
        Event::StepReconciled {
            finding, evidence, ..
        } => {
            cut(evidence);
            match finding {
                Finding::Failed { error, .. } => cut(error),
                Finding::Undecided { why } => cut(why),
                Finding::Done(_) | Finding::NotDone => {}
            }
        }
        _ => {}
    }
    event
}

/// Most bytes of per-table facts one record carries (their bincode size, estimated from
/// above): half the 64 KiB record cap, leaving room for the record header and the rest of
/// an outcome (a dump's views, file name, checksums).
pub const TABLES_PER_RECORD_BYTES: usize = 32 * 1024;

/// An upper bound on one table fact's bincode size: three length-prefixed strings and a
/// varint row count.
fn table_fact_size(t: &TableFact) -> usize {
    t.name.len() + t.checksum.len() + t.method.word().len() + 3 * 3 + 10
}

/// The events that record `event`: itself when its per-table facts fit
/// [`TABLES_PER_RECORD_BYTES`]; otherwise `step.tables` slices of the leading tables, each
/// within that size and numbered by their first table's index, followed by `event` keeping
/// only the last slice. Replay joins them back ([`crate::replay::State`]), so the state is
/// the same either way; any number of tables fits.
pub fn split_outcome(mut event: Event) -> Vec<Event> {
    let (key, tables) = match &mut event {
        Event::StepDone { key, facts } => (*key, facts.tables_mut()),
        Event::StepFailed {
            key,
            facts: Some(facts),
            ..
        } => (*key, facts.tables_mut()),
        Event::StepReconciled {
            key,
            finding: Finding::Done(facts),
            ..
        } => (*key, facts.tables_mut()),
        _ => (StepKey::Complete, None),
    };
    let Some(tables) = tables else {
        return vec![event];
    };
    if tables.iter().map(table_fact_size).sum::<usize>() <= TABLES_PER_RECORD_BYTES {
        return vec![event];
    }
    let mut slices: Vec<Vec<TableFact>> = vec![Vec::new()];
    let mut size = 0;
    for t in std::mem::take(tables) {
        let n = table_fact_size(&t);
        let current = slices.last_mut().expect("never empty");
        if size + n > TABLES_PER_RECORD_BYTES && !current.is_empty() {
            slices.push(Vec::new());
            size = 0;
        }
        size += n;
        slices.last_mut().expect("never empty").push(t);
    }
    *tables = slices.pop().expect("at least one slice");
    let mut out = Vec::with_capacity(slices.len() + 1);
    let mut first = 0u32;
    for slice in slices {
        let len = slice.len() as u32;
        out.push(Event::StepTables {
            key,
            first,
            tables: slice,
        });
        first += len;
    }
    out.push(event);
    out
}

impl StepFacts {
    /// The per-table facts these facts carry (a dump's, a restore's), if any.
    pub fn tables_mut(&mut self) -> Option<&mut Vec<TableFact>> {
        match self {
            StepFacts::DumpWritten(a) => Some(&mut a.tables),
            StepFacts::Restored(r) => Some(&mut r.tables),
            _ => None,
        }
    }

    /// When a `done` outcome is contradicted by its own facts (a step that did not
    /// succeed must be recorded as `step.failed`), says why.
    pub fn contradiction(&self) -> Option<String> {
        match self {
            StepFacts::NewContainerCreated(n) => {
                let mut a = n.binds.clone();
                let mut b = n.old_binds.clone();
                a.sort();
                b.sort();
                if !n.binds_equal_to_old || a != b {
                    Some(format!(
                        "new container binds {:?} differ from the old container's {:?}",
                        n.binds, n.old_binds
                    ))
                } else {
                    None
                }
            }
            StepFacts::SupervisorChecked { all_running, .. } if !all_running => {
                Some("not every supervisor program is RUNNING".into())
            }
            StepFacts::SupervisorPolled(p) if !p.all_running => Some(format!(
                "not every supervisor program is RUNNING after {} polls in {:.1} s (bound {} s): {}",
                p.polls,
                p.elapsed_ms as f64 / 1000.0,
                p.timeout_secs,
                if p.programs.is_empty() {
                    "supervisorctl listed no program".to_string()
                } else {
                    p.not_running()
                }
            )),
            StepFacts::DockerInit(d) if d.exit_code != 0 || !d.marker_seen => Some(format!(
                "docker_init.sh exit code {} and success marker seen: {}",
                d.exit_code, d.marker_seen
            )),
            StepFacts::Health(h) if !h.healthy => Some(format!("{} is not healthy", h.url)),
            StepFacts::NodesOnline { all_online, .. } if !all_online => {
                Some("not every machine is Online".into())
            }
            StepFacts::DumpWritten(a) if a.size == 0 => Some(format!("dump {} is empty", a.file)),
            StepFacts::DumpsVerified { checks } if checks.iter().any(|c| !c.ok) => {
                Some("a dump file is missing or its BLAKE3 differs from the record".into())
            }
            StepFacts::Restored(r) if !r.tables_match => Some(format!(
                "restored tables of {} differ from the dump's record",
                r.database
            )),
            StepFacts::PreStopChecked { checks } if checks.iter().any(|c| !c.ok) => {
                Some("a check before stopping the old container failed".into())
            }
            _ => None,
        }
    }
}

/// What kind of failure a step's failure was (issue 13): it decides the exit code and
/// what the operator is told, and the ledger's failure record carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Docker, the metadata database, OMS or the dump engine failed, or a check of the
    /// services came back negative (not healthy, not RUNNING, not Online, an init that
    /// failed). Whether a retry may help is the record's `retryable`.
    Service,
    /// Content does not match the record: a dump file changed, restored tables differ.
    Integrity,
    /// The world contradicts the plan (the image tag names another image, the old
    /// container is gone or shows other settings, something `init` checked changed, a
    /// docker_init.sh already runs, the new container's binds are not the planned ones):
    /// the step stopped at the contradiction.
    Refused,
    /// A `step.failed` v1 record: written before kinds were recorded. Never a default of
    /// the others: a reader shows it as not recorded.
    Unrecorded,
}

impl FailureKind {
    /// The name in the JSON views and reports.
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Service => "service",
            FailureKind::Integrity => "integrity",
            FailureKind::Refused => "refused",
            FailureKind::Unrecorded => "unrecorded",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl StepFacts {
    /// The kind of failure a [`StepFacts::contradiction`] of these facts is: content that
    /// differs from the record is an integrity failure; a container that does not match
    /// the plan, or a check before T1 that found a change, a refusal; a service that is
    /// not in the state wanted, a service failure.
    pub fn contradiction_kind(&self) -> FailureKind {
        match self {
            StepFacts::DumpsVerified { .. } | StepFacts::Restored(_) => FailureKind::Integrity,
            StepFacts::NewContainerCreated(_) | StepFacts::PreStopChecked { .. } => {
                FailureKind::Refused
            }
            _ => FailureKind::Service,
        }
    }
}

/// What reconciliation found for a step that was in doubt (intent without outcome).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Finding {
    /// The side effect happened: these are its facts.
    Done(Box<StepFacts>),
    /// It did not happen: the step may run again.
    NotDone,
    /// It happened partly or reality cannot tell: treat as a failure.
    Failed {
        /// What was found.
        error: String,
        /// Whether running the step again is safe.
        retryable: bool,
        /// What kind of failure (issue 13); [`FailureKind::Unrecorded`] for a finding
        /// stored before kinds were (and written in that form).
        kind: FailureKind,
    },
    /// issue 12.1: what was found can prove neither "done" nor "never started", and running
    /// the step again is not safe on a guess: nothing runs until an operator records a
    /// decision ([`Event::StepResolved`]) or rolls back.
    Undecided {
        /// What cannot be proven, and why.
        why: String,
    },
}

/// An operator's decision about a step whose reconciliation was [`Finding::Undecided`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resolution {
    /// The step took effect: the run goes on with the next step.
    Done,
    /// The step never took effect: it may be performed.
    NotDone,
}

impl Resolution {
    /// The word `resolve --as` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Done => "done",
            Resolution::NotDone => "not-done",
        }
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `step.resolved`: an operator's recorded decision about a step left undecided by its
/// reconciliation (issue 12.1). The record's operator and host say who decided and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepResolved {
    /// The step.
    pub key: StepKey,
    /// Done or not done.
    pub resolution: Resolution,
    /// Why, in the operator's words (what was checked).
    pub reason: String,
    /// Who decided: the account of the real uid (as the record's operator).
    pub by: String,
    /// The seq of the `step.reconciled` record whose evidence the decision answers.
    pub reconciled_seq: u64,
}

/// One preflight check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreflightCheck {
    /// Check name (e.g. `target-image-present`).
    pub name: String,
    /// Passed.
    pub ok: bool,
    /// What was found and, when failed, what to fix.
    pub detail: String,
}

/// The domain form of an event. Each variant is one event type (see [`Event::type_name`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// `run.planned`: the plan, first event of a run (after any failed preflights).
    RunPlanned {
        /// The plan.
        plan: Box<Plan>,
        /// BLAKE3 of its canonical encoding.
        digest: PlanDigest,
    },
    /// `preflight.failed`: `init` found problems; nothing else was recorded.
    PreflightFailed {
        /// Every check, passed or not.
        checks: Vec<PreflightCheck>,
    },
    /// `step.intent`: appended (and flushed) before a step's side effect.
    StepIntent {
        /// The step.
        key: StepKey,
    },
    /// `step.done`: the step succeeded, with what it found.
    StepDone {
        /// The step.
        key: StepKey,
        /// Its facts.
        facts: StepFacts,
    },
    /// `step.failed`: the step failed.
    StepFailed {
        /// The step.
        key: StepKey,
        /// What went wrong.
        error: String,
        /// Whether running it again is safe.
        retryable: bool,
        /// What was observed, if anything.
        facts: Option<StepFacts>,
        /// What kind of failure (issue 13; `step.failed` v2). [`FailureKind::Unrecorded`]
        /// for a v1 record, and written as v1.
        kind: FailureKind,
    },
    /// `step.reconciled`: an in-doubt step resolved by looking at reality on resume.
    StepReconciled {
        /// The step.
        key: StepKey,
        /// What was found.
        finding: Finding,
        /// How it was found (what was inspected).
        evidence: String,
    },
    /// `rollback.requested`: the rollback begins.
    RollbackRequested {
        /// Why (operator's words or the failure).
        reason: String,
    },
    /// `note`: an operator's note.
    Note {
        /// The note.
        text: String,
    },
    /// `attestation`: an operator's attestation.
    Attestation(Attestation),
    /// `step.tables`: a slice of the per-table facts of an open dump or restore step,
    /// recorded before its outcome when the whole list would not fit one record (a
    /// database with hundreds of tables). Replay joins the slices, in order, in front of the
    /// tables the outcome itself carries ([`split_outcome`]).
    StepTables {
        /// The step (`dump-*` or `rollback-restore-*`), whose intent is open.
        key: StepKey,
        /// Index of this slice's first table in the step's whole list.
        first: u32,
        /// The slice.
        tables: Vec<TableFact>,
    },
    /// `step.resolved`: an operator's decision about an undecided step (issue 12.1).
    StepResolved(StepResolved),
}

/// Event type names, one per [`Event`] variant.
pub mod types {
    /// `run.planned`
    pub const RUN_PLANNED: &str = "run.planned";
    /// `preflight.failed`
    pub const PREFLIGHT_FAILED: &str = "preflight.failed";
    /// `step.intent`
    pub const STEP_INTENT: &str = "step.intent";
    /// `step.done`
    pub const STEP_DONE: &str = "step.done";
    /// `step.failed`
    pub const STEP_FAILED: &str = "step.failed";
    /// `step.reconciled`
    pub const STEP_RECONCILED: &str = "step.reconciled";
    /// `rollback.requested`
    pub const ROLLBACK_REQUESTED: &str = "rollback.requested";
    /// `note`
    pub const NOTE: &str = "note";
    /// `attestation`
    pub const ATTESTATION: &str = "attestation";
    /// `step.tables`
    pub const STEP_TABLES: &str = "step.tables";
    /// `step.resolved` (issue 12.1)
    pub const STEP_RESOLVED: &str = "step.resolved";
}

/// Every (event type, schema version) this build can decode.
pub const EVENT_TYPES: &[(&str, u16)] = &[
    (types::RUN_PLANNED, 1),
    (types::RUN_PLANNED, 2),
    (types::PREFLIGHT_FAILED, 1),
    (types::STEP_INTENT, 1),
    (types::STEP_DONE, 1),
    (types::STEP_FAILED, 1),
    (types::STEP_FAILED, 2),
    (types::STEP_RECONCILED, 1),
    (types::ROLLBACK_REQUESTED, 1),
    (types::NOTE, 1),
    (types::ATTESTATION, 1),
    (types::STEP_TABLES, 1),
    (types::STEP_RESOLVED, 1),
];

impl Event {
    /// The event type name stored in the ledger record.
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::RunPlanned { .. } => types::RUN_PLANNED,
            Event::PreflightFailed { .. } => types::PREFLIGHT_FAILED,
            Event::StepIntent { .. } => types::STEP_INTENT,
            Event::StepDone { .. } => types::STEP_DONE,
            Event::StepFailed { .. } => types::STEP_FAILED,
            Event::StepReconciled { .. } => types::STEP_RECONCILED,
            Event::RollbackRequested { .. } => types::ROLLBACK_REQUESTED,
            Event::Note { .. } => types::NOTE,
            Event::Attestation(_) => types::ATTESTATION,
            Event::StepTables { .. } => types::STEP_TABLES,
            Event::StepResolved(_) => types::STEP_RESOLVED,
        }
    }

    /// The `run.planned` event for a plan (digest computed here).
    pub fn planned(plan: Plan) -> Event {
        let digest = plan.digest();
        Event::RunPlanned {
            plan: Box::new(plan),
            digest,
        }
    }
}

/// An event as the core sees a ledger record ([`to_recorded`] builds these from records).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The record's sequence number.
    pub seq: u64,
    /// The record's timestamp (given by the executor's clock).
    pub at: DateTime<Utc>,
    /// Operator (OS user or `--operator`).
    pub operator: String,
    /// Host name.
    pub host: String,
    /// The run the record belongs to.
    pub run_id: Uuid,
    /// The decoded event.
    pub event: Event,
}

/// An event in stored form, ready for `ledger.append`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Event type name.
    pub event_type: &'static str,
    /// Schema version of the payload.
    pub schema_version: u16,
    /// bincode 2 (standard config) bytes of the stored struct.
    pub payload: Vec<u8>,
}

/// A payload that cannot be turned into an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The type name is not one of [`EVENT_TYPES`].
    #[error(
        "unknown event type `{event_type}`; this oms-upgrade knows {}; a newer version may have written it",
        EVENT_TYPES.iter().map(|(t, v)| format!("{t} v{v}")).collect::<Vec<_>>().join(", ")
    )]
    UnknownType {
        /// The type found.
        event_type: String,
    },
    /// The type is known but not this schema version.
    #[error(
        "event type `{event_type}` schema version {version} is not known to this oms-upgrade (it knows v1); a newer version may have written it"
    )]
    UnknownVersion {
        /// The type.
        event_type: String,
        /// The version found.
        version: u16,
    },
    /// The bytes do not decode as the stored struct.
    #[error("`{event_type}` v{version} payload does not decode: {reason}")]
    Malformed {
        /// The type.
        event_type: String,
        /// The version.
        version: u16,
        /// Why.
        reason: String,
    },
}

fn encode_stored<T: serde::Serialize>(event_type: &'static str, v: &T) -> Encoded {
    encode_stored_version(event_type, 1, v)
}

fn encode_stored_version<T: serde::Serialize>(
    event_type: &'static str,
    schema_version: u16,
    v: &T,
) -> Encoded {
    // The stored types are plain data (no maps with non-string-like keys, no
    // unsized sequences), for which bincode's encoder into a Vec cannot fail.
    let payload = bincode::serde::encode_to_vec(v, bincode::config::standard())
        .expect("stored event types always encode");
    Encoded {
        event_type,
        schema_version,
        payload,
    }
}

/// Encodes an event in its current stored form.
pub fn encode(event: &Event) -> Encoded {
    use v1::*;
    let t = event.type_name();
    match event {
        // A plan without extensions keeps the v1 form, byte for byte.
        Event::RunPlanned { plan, digest } if plan.ext.is_empty() => encode_stored(
            t,
            &RunPlannedV1 {
                plan: PlanV1::from(plan.as_ref()),
                digest: digest.0,
            },
        ),
        Event::RunPlanned { plan, digest } => encode_stored_version(
            t,
            2,
            &RunPlannedV2 {
                plan: PlanV1::from(plan.as_ref()),
                ext: plan.ext.iter().map(PlanExtV1::from).collect(),
                digest: digest.0,
            },
        ),
        Event::PreflightFailed { checks } => encode_stored(
            t,
            &PreflightFailedV1 {
                checks: checks.iter().map(PreflightCheckV1::from).collect(),
            },
        ),
        Event::StepIntent { key } => encode_stored(t, &StepIntentV1 { key: (*key).into() }),
        Event::StepDone { key, facts } => encode_stored(
            t,
            &StepDoneV1 {
                key: (*key).into(),
                facts: facts.into(),
            },
        ),
        // A failure without a recorded kind keeps the v1 form, byte for byte.
        Event::StepFailed {
            key,
            error,
            retryable,
            facts,
            kind: FailureKind::Unrecorded,
        } => encode_stored(
            t,
            &StepFailedV1 {
                key: (*key).into(),
                error: error.clone(),
                retryable: *retryable,
                facts: facts.as_ref().map(StepFactsV1::from),
            },
        ),
        Event::StepFailed {
            key,
            error,
            retryable,
            facts,
            kind,
        } => encode_stored_version(
            t,
            2,
            &StepFailedV2 {
                key: (*key).into(),
                error: error.clone(),
                retryable: *retryable,
                facts: facts.as_ref().map(StepFactsV1::from),
                kind: FailureKindV1::try_from(*kind)
                    .expect("an unrecorded kind is written as v1 above"),
            },
        ),
        Event::StepReconciled {
            key,
            finding,
            evidence,
        } => encode_stored(
            t,
            &StepReconciledV1 {
                key: (*key).into(),
                finding: finding.into(),
                evidence: evidence.clone(),
            },
        ),
        Event::RollbackRequested { reason } => encode_stored(
            t,
            &RollbackRequestedV1 {
                reason: reason.clone(),
            },
        ),
        Event::Note { text } => encode_stored(t, &NoteV1 { text: text.clone() }),
        Event::Attestation(a) => encode_stored(t, &AttestationV1::from(a)),
        Event::StepTables { key, first, tables } => encode_stored(
            t,
            &StepTablesV1 {
                key: (*key).into(),
                first: *first,
                tables: v1::tables_v1(tables),
            },
        ),
        Event::StepResolved(d) => encode_stored(t, &StepResolvedV1::from(d)),
    }
}

fn decode_stored<T: serde::de::DeserializeOwned>(
    event_type: &str,
    payload: &[u8],
) -> Result<T, DecodeError> {
    decode_stored_version(event_type, 1, payload)
}

fn decode_stored_version<T: serde::de::DeserializeOwned>(
    event_type: &str,
    version: u16,
    payload: &[u8],
) -> Result<T, DecodeError> {
    let malformed = |reason: String| DecodeError::Malformed {
        event_type: event_type.to_string(),
        version,
        reason,
    };
    // A string's length is claimed (and allocated) before its bytes are read; no payload
    // holds more than a record, so a larger claim is malformed, not an allocation to try.
    let config =
        bincode::config::standard().with_limit::<{ crate::ledger::record::MAX_RECORD_LEN }>();
    let (v, used) =
        bincode::serde::decode_from_slice(payload, config).map_err(|e| malformed(e.to_string()))?;
    if used != payload.len() {
        return Err(malformed(format!(
            "{} trailing bytes after the payload",
            payload.len() - used
        )));
    }
    Ok(v)
}

/// Decodes a stored payload. Unknown types and versions are errors (the ledger's
/// `verify` reports them as undecodable payloads).
pub fn decode(event_type: &str, schema_version: u16, payload: &[u8]) -> Result<Event, DecodeError> {
    use v1::*;
    if !EVENT_TYPES.iter().any(|(t, _)| *t == event_type) {
        return Err(DecodeError::UnknownType {
            event_type: event_type.to_string(),
        });
    }
    if !EVENT_TYPES.contains(&(event_type, schema_version)) {
        return Err(DecodeError::UnknownVersion {
            event_type: event_type.to_string(),
            version: schema_version,
        });
    }
    let bad = |e: v1::Invalid| DecodeError::Malformed {
        event_type: event_type.to_string(),
        version: schema_version,
        reason: e.0,
    };
    let ev = match event_type {
        types::RUN_PLANNED if schema_version == 2 => {
            let s: RunPlannedV2 = decode_stored_version(event_type, 2, payload)?;
            let mut plan = Plan::try_from(s.plan).map_err(bad)?;
            plan.ext = s.ext.into_iter().map(PlanExt::from).collect();
            if plan.ext.is_empty() {
                // v2 exists only to carry extensions; an empty list would give one plan
                // two stored forms (and two digests).
                return Err(bad(v1::Invalid(
                    "run.planned v2 with no plan extension (a plan without any is stored as v1)"
                        .into(),
                )));
            }
            if let Some(kind) = plan::duplicate_ext(&plan.ext) {
                return Err(bad(v1::Invalid(format!(
                    "run.planned v2 holds the plan extension `{kind}` twice"
                ))));
            }
            Event::RunPlanned {
                plan: Box::new(plan),
                digest: PlanDigest(s.digest),
            }
        }
        types::RUN_PLANNED => {
            let s: RunPlannedV1 = decode_stored(event_type, payload)?;
            Event::RunPlanned {
                plan: Box::new(Plan::try_from(s.plan).map_err(bad)?),
                digest: PlanDigest(s.digest),
            }
        }
        types::PREFLIGHT_FAILED => {
            let s: PreflightFailedV1 = decode_stored(event_type, payload)?;
            Event::PreflightFailed {
                checks: s.checks.into_iter().map(PreflightCheck::from).collect(),
            }
        }
        types::STEP_INTENT => {
            let s: StepIntentV1 = decode_stored(event_type, payload)?;
            Event::StepIntent { key: s.key.into() }
        }
        types::STEP_DONE => {
            let s: StepDoneV1 = decode_stored(event_type, payload)?;
            Event::StepDone {
                key: s.key.into(),
                facts: s.facts.try_into().map_err(bad)?,
            }
        }
        types::STEP_FAILED if schema_version == 2 => {
            let s: StepFailedV2 = decode_stored_version(event_type, 2, payload)?;
            Event::StepFailed {
                key: s.key.into(),
                error: s.error,
                retryable: s.retryable,
                facts: s.facts.map(StepFacts::try_from).transpose().map_err(bad)?,
                kind: s.kind.into(),
            }
        }
        types::STEP_FAILED => {
            let s: StepFailedV1 = decode_stored(event_type, payload)?;
            Event::StepFailed {
                key: s.key.into(),
                error: s.error,
                retryable: s.retryable,
                facts: s.facts.map(StepFacts::try_from).transpose().map_err(bad)?,
                // Written before kinds were recorded: shown as such, never guessed.
                kind: FailureKind::Unrecorded,
            }
        }
        types::STEP_RECONCILED => {
            let s: StepReconciledV1 = decode_stored(event_type, payload)?;
            Event::StepReconciled {
                key: s.key.into(),
                finding: s.finding.try_into().map_err(bad)?,
                evidence: s.evidence,
            }
        }
        types::ROLLBACK_REQUESTED => {
            let s: RollbackRequestedV1 = decode_stored(event_type, payload)?;
            Event::RollbackRequested { reason: s.reason }
        }
        types::NOTE => {
            let s: NoteV1 = decode_stored(event_type, payload)?;
            Event::Note { text: s.text }
        }
        types::ATTESTATION => {
            let s: AttestationV1 = decode_stored(event_type, payload)?;
            Event::Attestation(s.try_into().map_err(bad)?)
        }
        types::STEP_TABLES => {
            let s: StepTablesV1 = decode_stored(event_type, payload)?;
            Event::StepTables {
                key: s.key.into(),
                first: s.first,
                tables: v1::tables(s.tables).map_err(bad)?,
            }
        }
        types::STEP_RESOLVED => {
            let s: StepResolvedV1 = decode_stored(event_type, payload)?;
            Event::StepResolved(s.into())
        }
        _ => unreachable!("checked against EVENT_TYPES above"),
    };
    Ok(ev)
}

/// BLAKE3 of the plan's canonical encoding: the bincode bytes of its stored form
/// ([`v1::PlanV1`], or for a plan with extensions [`v1::PlanV1`] followed by the
/// `Vec<`[`v1::PlanExtV1`]`>`), under a fixed derive-key context per form so the digest
/// cannot be confused with any other hash of the same bytes.
pub fn plan_digest(plan: &Plan) -> PlanDigest {
    let config = bincode::config::standard();
    let mut bytes = bincode::serde::encode_to_vec(v1::PlanV1::from(plan), config)
        .expect("stored plan always encodes");
    let context = if plan.ext.is_empty() {
        "oms-upgrade plan digest v1"
    } else {
        let ext: Vec<v1::PlanExtV1> = plan.ext.iter().map(v1::PlanExtV1::from).collect();
        bytes.extend(bincode::serde::encode_to_vec(ext, config).expect("plan extensions encode"));
        "oms-upgrade plan digest v2"
    };
    let mut h = blake3::Hasher::new_derive_key(context);
    h.update(&bytes);
    PlanDigest(*h.finalize().as_bytes())
}

/// Decodes event payloads for the ledger's verify/log/export views.
#[derive(Debug, Default, Clone, Copy)]
pub struct EventDecoder;

impl PayloadDecoder for EventDecoder {
    fn decode_view(
        &self,
        event_type: &str,
        schema_version: u16,
        payload: &[u8],
    ) -> Result<serde_json::Value, String> {
        let ev = decode(event_type, schema_version, payload).map_err(|e| e.to_string())?;
        serde_json::to_value(&ev).map_err(|e| format!("cannot show `{event_type}`: {e}"))
    }
}

#[cfg(test)]
pub(crate) mod samples;

#[cfg(test)]
mod tests;
