//! Schema version 1 of every event payload: the stored form, a compatibility promise.
//!
//! These structs are what bincode 2 (standard config: little-endian, varint integers)
//! writes into the ledger. Rules: never change a field's type or order, never reorder or
//! remove enum variants; enums may only gain variants at the end (bincode stores the
//! variant index). Anything else is a new schema version in a new module. Times are
//! microseconds since the Unix epoch (UTC), UUIDs 16 bytes, digests 32 bytes. The golden
//! tests in `events::tests` pin the exact bytes. `ledger-schema/EVENTS.md` documents them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::planext::WitnessPolicy;
use super::*;
use crate::refetch::{RefetchMode, RefetchPolicy, RetentionRisk, StoreRetention};
use crate::versions::{ProcedureId, Version};

/// A stored value that decodes but does not make sense (e.g. a time out of range).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

fn micros(t: &DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn time(m: i64) -> Result<DateTime<Utc>, Invalid> {
    DateTime::from_timestamp_micros(m).ok_or_else(|| Invalid(format!("time {m} out of range")))
}

fn opt_time(m: Option<i64>) -> Result<Option<DateTime<Utc>>, Invalid> {
    m.map(time).transpose()
}

/// `run.planned` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunPlannedV1 {
    /// The plan.
    pub plan: PlanV1,
    /// BLAKE3 (derive-key "oms-upgrade plan digest v1") of `plan`'s encoding.
    pub digest: [u8; 32],
}

/// `run.planned` v2: a plan with extensions (see `events::PlanExt`). A plan without any
/// is stored as [`RunPlannedV1`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunPlannedV2 {
    /// The v1 fields.
    pub plan: PlanV1,
    /// The extensions, each kind at most once, in the order `init` found them.
    pub ext: Vec<PlanExtV1>,
    /// BLAKE3 (derive-key "oms-upgrade plan digest v2") of `plan`'s encoding followed by
    /// `ext`'s.
    pub digest: [u8; 32],
}

/// `preflight.failed` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreflightFailedV1 {
    /// Every check.
    pub checks: Vec<PreflightCheckV1>,
}

/// One preflight check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreflightCheckV1 {
    /// Name.
    pub name: String,
    /// Passed.
    pub ok: bool,
    /// Detail.
    pub detail: String,
}

/// `step.intent` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepIntentV1 {
    /// The step.
    pub key: StepKeyV1,
}

/// `step.done` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepDoneV1 {
    /// The step.
    pub key: StepKeyV1,
    /// Its facts.
    pub facts: StepFactsV1,
}

/// `step.failed` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepFailedV1 {
    /// The step.
    pub key: StepKeyV1,
    /// Error text.
    pub error: String,
    /// Safe to run again.
    pub retryable: bool,
    /// What was observed.
    pub facts: Option<StepFactsV1>,
}

/// `step.failed` v2 (issue 13): v1 and the kind of failure, appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepFailedV2 {
    /// The step.
    pub key: StepKeyV1,
    /// Error text.
    pub error: String,
    /// Safe to run again.
    pub retryable: bool,
    /// What was observed.
    pub facts: Option<StepFactsV1>,
    /// What kind of failure.
    pub kind: FailureKindV1,
}

/// The kind of a step's failure, as stored in `step.failed` v2. Append only. There is no
/// "unrecorded": a failure without a kind is a v1 record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum FailureKindV1 {
    Service,
    Integrity,
    Refused,
}

impl TryFrom<FailureKind> for FailureKindV1 {
    type Error = Invalid;
    fn try_from(k: FailureKind) -> Result<Self, Invalid> {
        match k {
            FailureKind::Service => Ok(FailureKindV1::Service),
            FailureKind::Integrity => Ok(FailureKindV1::Integrity),
            FailureKind::Refused => Ok(FailureKindV1::Refused),
            FailureKind::Unrecorded => Err(Invalid(
                "an unrecorded failure kind has no stored form (it is a step.failed v1)".into(),
            )),
        }
    }
}

impl From<FailureKindV1> for FailureKind {
    fn from(k: FailureKindV1) -> Self {
        match k {
            FailureKindV1::Service => FailureKind::Service,
            FailureKindV1::Integrity => FailureKind::Integrity,
            FailureKindV1::Refused => FailureKind::Refused,
        }
    }
}

/// `step.reconciled` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepReconciledV1 {
    /// The step.
    pub key: StepKeyV1,
    /// What was found.
    pub finding: FindingV1,
    /// How.
    pub evidence: String,
}

/// `step.tables` v1: a slice of an open step's per-table facts, recorded before its
/// outcome when all of them would not fit one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepTablesV1 {
    /// The step (a dump or a restore).
    pub key: StepKeyV1,
    /// Index of the first table of this slice in the step's whole table list.
    pub first: u32,
    /// The slice.
    pub tables: Vec<TableFactV1>,
}

/// `step.resolved` v1 (issue 12.1): an operator's decision about an undecided step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepResolvedV1 {
    /// The step.
    pub key: StepKeyV1,
    /// Done or not done.
    pub resolution: ResolutionV1,
    /// Why.
    pub reason: String,
    /// Who decided.
    pub by: String,
    /// The `step.reconciled` record answered.
    pub reconciled_seq: u64,
}

/// An operator's decision. Append only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum ResolutionV1 {
    Done,
    NotDone,
}

/// `rollback.requested` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackRequestedV1 {
    /// Why.
    pub reason: String,
}

/// `note` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteV1 {
    /// Text.
    pub text: String,
}

/// `attestation` v1 (also embedded in HA facts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationV1 {
    /// Who.
    pub by: String,
    /// What.
    pub statement: String,
    /// About which step.
    pub step: Option<StepKeyV1>,
    /// When it happened (micros).
    pub observed_at: Option<i64>,
}

/// A metadata database. Variant order is stored: append only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaDbV1 {
    /// rm
    Rm,
    /// cm
    Cm,
    /// cm_hb
    CmHb,
}

/// A step key. Variant order is stored: append only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum StepKeyV1 {
    DisableHa,
    StopOldContainer,
    PruneHeartbeat,
    Dump(MetaDbV1),
    RenameOldContainer,
    CreateNewContainer,
    StartNewContainer,
    CheckSupervisor,
    RunDockerInit,
    ConfirmHealth,
    CheckOnline,
    EnableHa,
    Complete,
    RollbackVerifyDumps,
    RollbackDisableHa,
    StopNewContainer,
    RenameNewAside,
    RenameOldBack,
    RecreateDatabase(MetaDbV1),
    Restore(MetaDbV1),
    RestartOldContainer,
    ConfirmOldHealth,
    RollbackEnableHa,
    RollbackComplete,
    PreStopCheck,
    /// issue 12.3
    OldRestartOff,
    /// issue 12.3
    RollbackRestartPolicy,
    /// issue 15: a per-node step of node >= 1.
    Node(u8, NodeStepV1),
    /// issue 15: a heartbeat step of region >= 1.
    Region(u8, RegionStepV1),
    /// issue 16
    DropPrunedHeartbeat,
    /// issue 16
    RollbackDropPrunedHeartbeat,
}

/// issue 15: a per-node step. Variant order is stored: append only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum NodeStepV1 {
    PreStopCheck,
    StopOld,
    OldRestartOff,
    RenameOld,
    CreateNew,
    StartNew,
    CheckSupervisor,
    RunInit,
    ConfirmHealth,
    StopNew,
    RenameNewAside,
    RenameOldBack,
    RollbackRestartPolicy,
    RestartOld,
    ConfirmOldHealth,
}

/// issue 15: a per-region heartbeat step. Variant order is stored: append only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum RegionStepV1 {
    PruneHeartbeat,
    DumpHeartbeat,
    RecreateHeartbeat,
    RestoreHeartbeat,
    /// issue 16
    DropPrunedHeartbeat,
    /// issue 16
    RollbackDropPrunedHeartbeat,
}

macro_rules! same_variants {
    ($a:ident <-> $b:ident : $($v:ident),+) => {
        impl From<$a> for $b {
            fn from(x: $a) -> Self {
                match x { $($a::$v => $b::$v),+ }
            }
        }
        impl From<$b> for $a {
            fn from(x: $b) -> Self {
                match x { $($b::$v => $a::$v),+ }
            }
        }
    };
}

same_variants!(NodeStep <-> NodeStepV1: PreStopCheck, StopOld, OldRestartOff, RenameOld,
    CreateNew, StartNew, CheckSupervisor, RunInit, ConfirmHealth, StopNew, RenameNewAside,
    RenameOldBack, RollbackRestartPolicy, RestartOld, ConfirmOldHealth);
same_variants!(RegionStep <-> RegionStepV1: PruneHeartbeat, DumpHeartbeat, RecreateHeartbeat,
    RestoreHeartbeat, DropPrunedHeartbeat, RollbackDropPrunedHeartbeat);

/// A version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionV1 {
    /// Major.
    pub major: u16,
    /// Minor.
    pub minor: u16,
    /// Patch.
    pub patch: u16,
}

/// The guide followed. Append only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum ProcedureV1 {
    Guide330,
    Guide331,
    Guide42x,
}

/// HA mode. Append only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum HaModeV1 {
    Sql,
    Manual,
}

/// `enable` after. Append only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum HaAfterV1 {
    Enable,
    KeepPrevious,
}

/// Refetch mode. Append only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum RefetchModeV1 {
    Interval,
    PerceiveCheckpoint,
}

/// Store retention. Append only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum RetentionV1 {
    Sync,
    Migration,
}

/// Retention risk. Append only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum RiskV1 {
    None,
    Near,
    Beyond,
}

/// The refetch policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct RefetchPolicyV1 {
    pub mode: RefetchModeV1,
    pub margin_percent: u32,
    pub margin_min_minutes: u32,
    pub retention: RetentionV1,
    pub warn_percent: u32,
}

/// A recorded refetch decision (times in micros).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct RefetchDecisionV1 {
    pub policy: RefetchPolicyV1,
    pub t1: i64,
    pub t2: i64,
    pub downtime_minutes: u64,
    pub margin_minutes: u64,
    pub interval_minutes: Option<u64>,
    pub perceive_checkpoint: Option<bool>,
    pub risk: RiskV1,
    pub reasoning: String,
    pub warning: Option<String>,
}

/// An env var (`value: None` = withheld secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct EnvVarV1 {
    pub name: String,
    pub value: Option<String>,
}

/// The old container at planning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ContainerV1 {
    pub id: String,
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub binds: Vec<String>,
    pub env: Vec<EnvVarV1>,
    pub labels: BTreeMap<String, String>,
}

/// The plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct PlanV1 {
    pub run_id: [u8; 16],
    pub tool_version: String,
    pub source_version: VersionV1,
    pub target_version: VersionV1,
    pub procedure: ProcedureV1,
    pub old_container: ContainerV1,
    pub target_image: String,
    pub target_image_id: Option<String>,
    pub old_renamed_to: String,
    pub new_name: String,
    pub failed_name: String,
    pub privileged: bool,
    pub host_ip: String,
    pub metadb_display_url: String,
    pub metadb_host: String,
    pub metadb_port: u16,
    pub metadb_user: String,
    pub db_rm: String,
    pub db_cm: String,
    pub db_cm_hb: String,
    pub backup_dir: String,
    pub ha_mode: HaModeV1,
    pub ha_after: HaAfterV1,
    pub refetch: RefetchPolicyV1,
    pub stop_timeout_secs: u32,
    pub init_timeout_secs: u32,
    pub health_url: String,
    pub health_timeout_secs: u32,
}

/// A table fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct TableFactV1 {
    pub name: String,
    pub rows: u64,
    pub checksum: String,
    pub method: String,
}

/// A dump artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct DumpArtifactV1 {
    pub db: MetaDbV1,
    pub database: String,
    pub file: String,
    pub size: u64,
    pub blake3_hex: String,
    pub format: String,
    pub compression: String,
    pub dumper: String,
    pub charset: String,
    pub collation: String,
    pub tables: Vec<TableFactV1>,
    pub views: Vec<String>,
}

/// A named state (supervisor program, machine).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct NamedStateV1 {
    pub name: String,
    pub state: String,
}

/// A dump re-hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct DumpCheckV1 {
    pub db: MetaDbV1,
    pub file: String,
    pub found_blake3: Option<String>,
    pub ok: bool,
}

/// Step facts. Variant order is stored: append only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum StepFactsV1 {
    HaDisabled {
        previous_json: String,
        written_json: Option<String>,
        mode: HaModeV1,
        attestation: Option<AttestationV1>,
    },
    ContainerStopped {
        id: String,
        stopped_at: i64,
        docker_finished_at: Option<i64>,
        exit_code: Option<i64>,
        already_stopped: bool,
    },
    HeartbeatPruned {
        max_id: Option<i64>,
        rows_deleted: u64,
    },
    DumpWritten(DumpArtifactV1),
    ContainerRenamed {
        id: String,
        from: String,
        to: String,
    },
    NewContainerCreated {
        id: String,
        name: String,
        image: String,
        image_id: Option<String>,
        binds: Vec<String>,
        env: Vec<EnvVarV1>,
        old_binds: Vec<String>,
        binds_equal_to_old: bool,
    },
    NewContainerStarted {
        id: String,
        started_at: Option<i64>,
    },
    SupervisorChecked {
        programs: Vec<NamedStateV1>,
        all_running: bool,
    },
    DockerInit {
        exit_code: i64,
        marker_seen: bool,
        log_file: Option<String>,
        log_blake3: String,
        log_tail: String,
        harmless_errors: Vec<String>,
    },
    Health {
        url: String,
        healthy: bool,
        body_blake3: String,
        container_id: Option<String>,
    },
    NodesOnline {
        nodes: Vec<NamedStateV1>,
        all_online: bool,
    },
    HaEnabled {
        enabled_at: i64,
        previous_json: String,
        written_json: String,
        refetch: Option<RefetchDecisionV1>,
        mode: HaModeV1,
        attestation: Option<AttestationV1>,
    },
    DumpsVerified {
        checks: Vec<DumpCheckV1>,
    },
    DatabaseRecreated {
        db: MetaDbV1,
        database: String,
    },
    Restored {
        db: MetaDbV1,
        database: String,
        file: String,
        verified_blake3: String,
        tables: Vec<TableFactV1>,
        tables_match: bool,
    },
    ContainerRestarted {
        id: String,
        name: String,
    },
    Completed,
    Skipped {
        reason: String,
    },
    PreStopChecked {
        checks: Vec<PreflightCheckV1>,
    },
    /// issue 12.5
    SupervisorPolled {
        programs: Vec<NamedStateV1>,
        all_running: bool,
        polls: u32,
        elapsed_ms: u64,
        timeout_secs: u32,
    },
    /// issue 12.9: a stop with the instant it was requested (T1/T3 from then on); a stop
    /// without one is stored as `ContainerStopped`, as before.
    ContainerStopRequested {
        id: String,
        stop_requested_at: i64,
        stopped_at: i64,
        docker_finished_at: Option<i64>,
        exit_code: Option<i64>,
        already_stopped: bool,
    },
    /// issue 12.7: a batched heartbeat prune, with its batches and any warning (a missing
    /// table); a prune without batches is stored as `HeartbeatPruned`, as before.
    HeartbeatPrunedInBatches {
        max_id: Option<i64>,
        rows_deleted: u64,
        batches: u64,
        batch_rows: u64,
        warning: Option<String>,
    },
    /// issue 12.3
    RestartPolicySet {
        id: String,
        before: RestartPolicyV1,
        after: RestartPolicyV1,
    },
    /// issue 16
    PrunedHeartbeatDropped {
        table: String,
        rows: Option<u64>,
    },
}

/// A restart policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct RestartPolicyV1 {
    pub name: String,
    pub max_retries: i64,
}

impl From<&RestartPolicy> for RestartPolicyV1 {
    fn from(r: &RestartPolicy) -> Self {
        RestartPolicyV1 {
            name: r.name.clone(),
            max_retries: r.max_retries,
        }
    }
}

impl From<RestartPolicyV1> for RestartPolicy {
    fn from(r: RestartPolicyV1) -> Self {
        RestartPolicy {
            name: r.name,
            max_retries: r.max_retries,
        }
    }
}

/// A reconciliation finding. Append only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum FindingV1 {
    Done(Box<StepFactsV1>),
    NotDone,
    Failed {
        error: String,
        retryable: bool,
    },
    /// issue 12.1
    Undecided {
        why: String,
    },
    /// issue 13: `Failed` with the kind of failure; a failure without one is `Failed`.
    FailedAs {
        error: String,
        retryable: bool,
        kind: FailureKindV1,
    },
}

// ---- domain -> stored -------------------------------------------------------------

impl From<MetaDb> for MetaDbV1 {
    fn from(d: MetaDb) -> Self {
        match d {
            MetaDb::Rm => MetaDbV1::Rm,
            MetaDb::Cm => MetaDbV1::Cm,
            MetaDb::CmHb => MetaDbV1::CmHb,
        }
    }
}

impl From<MetaDbV1> for MetaDb {
    fn from(d: MetaDbV1) -> Self {
        match d {
            MetaDbV1::Rm => MetaDb::Rm,
            MetaDbV1::Cm => MetaDb::Cm,
            MetaDbV1::CmHb => MetaDb::CmHb,
        }
    }
}

impl From<StepKey> for StepKeyV1 {
    fn from(k: StepKey) -> Self {
        use StepKey as K;
        use StepKeyV1 as S;
        match k {
            K::DisableHa => S::DisableHa,
            K::StopOldContainer => S::StopOldContainer,
            K::PruneHeartbeat => S::PruneHeartbeat,
            K::Dump { db } => S::Dump(db.into()),
            K::RenameOldContainer => S::RenameOldContainer,
            K::CreateNewContainer => S::CreateNewContainer,
            K::StartNewContainer => S::StartNewContainer,
            K::CheckSupervisor => S::CheckSupervisor,
            K::RunDockerInit => S::RunDockerInit,
            K::ConfirmHealth => S::ConfirmHealth,
            K::CheckOnline => S::CheckOnline,
            K::EnableHa => S::EnableHa,
            K::Complete => S::Complete,
            K::RollbackVerifyDumps => S::RollbackVerifyDumps,
            K::RollbackDisableHa => S::RollbackDisableHa,
            K::StopNewContainer => S::StopNewContainer,
            K::RenameNewAside => S::RenameNewAside,
            K::RenameOldBack => S::RenameOldBack,
            K::RecreateDatabase { db } => S::RecreateDatabase(db.into()),
            K::Restore { db } => S::Restore(db.into()),
            K::RestartOldContainer => S::RestartOldContainer,
            K::ConfirmOldHealth => S::ConfirmOldHealth,
            K::RollbackEnableHa => S::RollbackEnableHa,
            K::RollbackComplete => S::RollbackComplete,
            K::PreStopCheck => S::PreStopCheck,
            K::OldRestartOff => S::OldRestartOff,
            K::RollbackRestartPolicy => S::RollbackRestartPolicy,
            K::Node { node, step } => S::Node(node.0, step.into()),
            K::Region { region, step } => S::Region(region.0, step.into()),
            K::DropPrunedHeartbeat => S::DropPrunedHeartbeat,
            K::RollbackDropPrunedHeartbeat => S::RollbackDropPrunedHeartbeat,
        }
    }
}

impl From<StepKeyV1> for StepKey {
    fn from(k: StepKeyV1) -> Self {
        use StepKey as K;
        use StepKeyV1 as S;
        match k {
            S::DisableHa => K::DisableHa,
            S::StopOldContainer => K::StopOldContainer,
            S::PruneHeartbeat => K::PruneHeartbeat,
            S::Dump(db) => K::Dump { db: db.into() },
            S::RenameOldContainer => K::RenameOldContainer,
            S::CreateNewContainer => K::CreateNewContainer,
            S::StartNewContainer => K::StartNewContainer,
            S::CheckSupervisor => K::CheckSupervisor,
            S::RunDockerInit => K::RunDockerInit,
            S::ConfirmHealth => K::ConfirmHealth,
            S::CheckOnline => K::CheckOnline,
            S::EnableHa => K::EnableHa,
            S::Complete => K::Complete,
            S::RollbackVerifyDumps => K::RollbackVerifyDumps,
            S::RollbackDisableHa => K::RollbackDisableHa,
            S::StopNewContainer => K::StopNewContainer,
            S::RenameNewAside => K::RenameNewAside,
            S::RenameOldBack => K::RenameOldBack,
            S::RecreateDatabase(db) => K::RecreateDatabase { db: db.into() },
            S::Restore(db) => K::Restore { db: db.into() },
            S::RestartOldContainer => K::RestartOldContainer,
            S::ConfirmOldHealth => K::ConfirmOldHealth,
            S::RollbackEnableHa => K::RollbackEnableHa,
            S::RollbackComplete => K::RollbackComplete,
            S::PreStopCheck => K::PreStopCheck,
            S::OldRestartOff => K::OldRestartOff,
            S::RollbackRestartPolicy => K::RollbackRestartPolicy,
            S::Node(n, step) => K::Node {
                node: NodeIx(n),
                step: step.into(),
            },
            S::Region(r, step) => K::Region {
                region: RegionIx(r),
                step: step.into(),
            },
            S::DropPrunedHeartbeat => K::DropPrunedHeartbeat,
            S::RollbackDropPrunedHeartbeat => K::RollbackDropPrunedHeartbeat,
        }
    }
}

impl From<Version> for VersionV1 {
    fn from(v: Version) -> Self {
        VersionV1 {
            major: v.major,
            minor: v.minor,
            patch: v.patch,
        }
    }
}

impl From<VersionV1> for Version {
    fn from(v: VersionV1) -> Self {
        Version::new(v.major, v.minor, v.patch)
    }
}

impl From<ProcedureId> for ProcedureV1 {
    fn from(p: ProcedureId) -> Self {
        match p {
            ProcedureId::Guide330 => ProcedureV1::Guide330,
            ProcedureId::Guide331 => ProcedureV1::Guide331,
            ProcedureId::Guide42x => ProcedureV1::Guide42x,
        }
    }
}

impl From<ProcedureV1> for ProcedureId {
    fn from(p: ProcedureV1) -> Self {
        match p {
            ProcedureV1::Guide330 => ProcedureId::Guide330,
            ProcedureV1::Guide331 => ProcedureId::Guide331,
            ProcedureV1::Guide42x => ProcedureId::Guide42x,
        }
    }
}

impl From<HaMode> for HaModeV1 {
    fn from(m: HaMode) -> Self {
        match m {
            HaMode::Sql => HaModeV1::Sql,
            HaMode::Manual => HaModeV1::Manual,
        }
    }
}

impl From<HaModeV1> for HaMode {
    fn from(m: HaModeV1) -> Self {
        match m {
            HaModeV1::Sql => HaMode::Sql,
            HaModeV1::Manual => HaMode::Manual,
        }
    }
}

impl From<RefetchPolicy> for RefetchPolicyV1 {
    fn from(p: RefetchPolicy) -> Self {
        RefetchPolicyV1 {
            mode: match p.mode {
                RefetchMode::Interval => RefetchModeV1::Interval,
                RefetchMode::PerceiveCheckpoint => RefetchModeV1::PerceiveCheckpoint,
            },
            margin_percent: p.margin_percent,
            margin_min_minutes: p.margin_min_minutes,
            retention: match p.retention {
                StoreRetention::Sync => RetentionV1::Sync,
                StoreRetention::Migration => RetentionV1::Migration,
            },
            warn_percent: p.warn_percent,
        }
    }
}

impl From<RefetchPolicyV1> for RefetchPolicy {
    fn from(p: RefetchPolicyV1) -> Self {
        RefetchPolicy {
            mode: match p.mode {
                RefetchModeV1::Interval => RefetchMode::Interval,
                RefetchModeV1::PerceiveCheckpoint => RefetchMode::PerceiveCheckpoint,
            },
            margin_percent: p.margin_percent,
            margin_min_minutes: p.margin_min_minutes,
            retention: match p.retention {
                RetentionV1::Sync => StoreRetention::Sync,
                RetentionV1::Migration => StoreRetention::Migration,
            },
            warn_percent: p.warn_percent,
        }
    }
}

impl From<&RefetchDecision> for RefetchDecisionV1 {
    fn from(d: &RefetchDecision) -> Self {
        RefetchDecisionV1 {
            policy: d.policy.into(),
            t1: micros(&d.t1),
            t2: micros(&d.t2),
            downtime_minutes: d.downtime_minutes,
            margin_minutes: d.margin_minutes,
            interval_minutes: d.interval_minutes,
            perceive_checkpoint: d.perceive_checkpoint,
            risk: match d.risk {
                RetentionRisk::None => RiskV1::None,
                RetentionRisk::Near => RiskV1::Near,
                RetentionRisk::Beyond => RiskV1::Beyond,
            },
            reasoning: d.reasoning.clone(),
            warning: d.warning.clone(),
        }
    }
}

impl TryFrom<RefetchDecisionV1> for RefetchDecision {
    type Error = Invalid;
    fn try_from(d: RefetchDecisionV1) -> Result<Self, Invalid> {
        Ok(RefetchDecision {
            policy: d.policy.into(),
            t1: time(d.t1)?,
            t2: time(d.t2)?,
            downtime_minutes: d.downtime_minutes,
            margin_minutes: d.margin_minutes,
            interval_minutes: d.interval_minutes,
            perceive_checkpoint: d.perceive_checkpoint,
            risk: match d.risk {
                RiskV1::None => RetentionRisk::None,
                RiskV1::Near => RetentionRisk::Near,
                RiskV1::Beyond => RetentionRisk::Beyond,
            },
            reasoning: d.reasoning,
            warning: d.warning,
        })
    }
}

impl From<&EnvVar> for EnvVarV1 {
    fn from(e: &EnvVar) -> Self {
        EnvVarV1 {
            name: e.name.clone(),
            value: e.value.clone(),
        }
    }
}

impl From<EnvVarV1> for EnvVar {
    fn from(e: EnvVarV1) -> Self {
        EnvVar {
            name: e.name,
            value: e.value,
        }
    }
}

impl From<&ContainerSnapshot> for ContainerV1 {
    fn from(c: &ContainerSnapshot) -> Self {
        ContainerV1 {
            id: c.id.clone(),
            name: c.name.clone(),
            image: c.image.clone(),
            image_id: c.image_id.clone(),
            binds: c.binds.clone(),
            env: c.env.iter().map(EnvVarV1::from).collect(),
            labels: c.labels.clone(),
        }
    }
}

impl From<ContainerV1> for ContainerSnapshot {
    fn from(c: ContainerV1) -> Self {
        ContainerSnapshot {
            id: c.id,
            name: c.name,
            image: c.image,
            image_id: c.image_id,
            binds: c.binds,
            env: c.env.into_iter().map(EnvVar::from).collect(),
            labels: c.labels,
        }
    }
}

impl From<&Plan> for PlanV1 {
    fn from(p: &Plan) -> Self {
        PlanV1 {
            run_id: *p.run_id.as_bytes(),
            tool_version: p.tool_version.clone(),
            source_version: p.source_version.into(),
            target_version: p.target_version.into(),
            procedure: p.procedure.into(),
            old_container: (&p.old_container).into(),
            target_image: p.target_image.clone(),
            target_image_id: p.target_image_id.clone(),
            old_renamed_to: p.old_renamed_to.clone(),
            new_name: p.new_name.clone(),
            failed_name: p.failed_name.clone(),
            privileged: p.privileged,
            host_ip: p.host_ip.clone(),
            metadb_display_url: p.metadb.display_url.clone(),
            metadb_host: p.metadb.host.clone(),
            metadb_port: p.metadb.port,
            metadb_user: p.metadb.user.clone(),
            db_rm: p.databases.rm.clone(),
            db_cm: p.databases.cm.clone(),
            db_cm_hb: p.databases.cm_hb.clone(),
            backup_dir: p.backup_dir.clone(),
            ha_mode: p.ha_mode.into(),
            ha_after: match p.ha_after {
                HaAfter::Enable => HaAfterV1::Enable,
                HaAfter::KeepPrevious => HaAfterV1::KeepPrevious,
            },
            refetch: p.refetch.into(),
            stop_timeout_secs: p.stop_timeout_secs,
            init_timeout_secs: p.init_timeout_secs,
            health_url: p.health_url.clone(),
            health_timeout_secs: p.health_timeout_secs,
        }
    }
}

impl TryFrom<PlanV1> for Plan {
    type Error = Invalid;
    fn try_from(p: PlanV1) -> Result<Self, Invalid> {
        Ok(Plan {
            run_id: Uuid::from_bytes(p.run_id),
            tool_version: p.tool_version,
            source_version: p.source_version.into(),
            target_version: p.target_version.into(),
            procedure: p.procedure.into(),
            old_container: p.old_container.into(),
            target_image: p.target_image,
            target_image_id: p.target_image_id,
            old_renamed_to: p.old_renamed_to,
            new_name: p.new_name,
            failed_name: p.failed_name,
            privileged: p.privileged,
            host_ip: p.host_ip,
            metadb: MetaDbLocation {
                display_url: p.metadb_display_url,
                host: p.metadb_host,
                port: p.metadb_port,
                user: p.metadb_user,
            },
            databases: DbNames {
                rm: p.db_rm,
                cm: p.db_cm,
                cm_hb: p.db_cm_hb,
            },
            backup_dir: p.backup_dir,
            ha_mode: p.ha_mode.into(),
            ha_after: match p.ha_after {
                HaAfterV1::Enable => HaAfter::Enable,
                HaAfterV1::KeepPrevious => HaAfter::KeepPrevious,
            },
            refetch: p.refetch.into(),
            stop_timeout_secs: p.stop_timeout_secs,
            init_timeout_secs: p.init_timeout_secs,
            health_url: p.health_url,
            health_timeout_secs: p.health_timeout_secs,
            ext: Vec::new(),
        })
    }
}

impl From<&PreflightCheck> for PreflightCheckV1 {
    fn from(c: &PreflightCheck) -> Self {
        PreflightCheckV1 {
            name: c.name.clone(),
            ok: c.ok,
            detail: c.detail.clone(),
        }
    }
}

impl From<PreflightCheckV1> for PreflightCheck {
    fn from(c: PreflightCheckV1) -> Self {
        PreflightCheck {
            name: c.name,
            ok: c.ok,
            detail: c.detail,
        }
    }
}

impl From<&Attestation> for AttestationV1 {
    fn from(a: &Attestation) -> Self {
        AttestationV1 {
            by: a.by.clone(),
            statement: a.statement.clone(),
            step: a.step.map(StepKeyV1::from),
            observed_at: a.observed_at.as_ref().map(micros),
        }
    }
}

impl TryFrom<AttestationV1> for Attestation {
    type Error = Invalid;
    fn try_from(a: AttestationV1) -> Result<Self, Invalid> {
        Ok(Attestation {
            by: a.by,
            statement: a.statement,
            step: a.step.map(StepKey::from),
            observed_at: opt_time(a.observed_at)?,
        })
    }
}

pub(super) fn tables_v1(t: &[TableFact]) -> Vec<TableFactV1> {
    t.iter()
        .map(|t| TableFactV1 {
            name: t.name.clone(),
            rows: t.rows,
            checksum: t.checksum.clone(),
            method: t.method.word().to_string(),
        })
        .collect()
}

/// A stored word read back as its value: an unknown word is [`Invalid`], never a default.
fn word<T>(
    from_word: fn(&str) -> Result<T, crate::dumpkind::UnknownWord>,
    w: &str,
) -> Result<T, Invalid> {
    from_word(w).map_err(|e| Invalid(e.to_string()))
}

pub(super) fn tables(t: Vec<TableFactV1>) -> Result<Vec<TableFact>, Invalid> {
    t.into_iter()
        .map(|t| {
            let method = word(ChecksumMethod::from_word, &t.method)
                .map_err(|e| Invalid(format!("table `{}`: {}", t.name, e.0)))?;
            Ok(TableFact {
                name: t.name,
                rows: t.rows,
                checksum: t.checksum,
                method,
            })
        })
        .collect()
}

fn named_v1(n: &[NamedState]) -> Vec<NamedStateV1> {
    n.iter()
        .map(|n| NamedStateV1 {
            name: n.name.clone(),
            state: n.state.clone(),
        })
        .collect()
}

fn named(n: Vec<NamedStateV1>) -> Vec<NamedState> {
    n.into_iter()
        .map(|n| NamedState {
            name: n.name,
            state: n.state,
        })
        .collect()
}

impl From<&DumpArtifact> for DumpArtifactV1 {
    fn from(a: &DumpArtifact) -> Self {
        DumpArtifactV1 {
            db: a.db.into(),
            database: a.database.clone(),
            file: a.file.clone(),
            size: a.size,
            blake3_hex: a.blake3_hex.clone(),
            format: a.format.word().to_string(),
            compression: a.compression.word().to_string(),
            dumper: a.dumper.word().to_string(),
            charset: a.charset.clone(),
            collation: a.collation.clone(),
            views: a.views.clone(),
            tables: tables_v1(&a.tables),
        }
    }
}

impl TryFrom<DumpArtifactV1> for DumpArtifact {
    type Error = Invalid;
    fn try_from(a: DumpArtifactV1) -> Result<Self, Invalid> {
        let field = |e: Invalid| Invalid(format!("dump artifact of `{}`: {}", a.database, e.0));
        Ok(DumpArtifact {
            db: a.db.into(),
            format: word(FileFormat::from_word, &a.format).map_err(field)?,
            compression: word(Compression::from_word, &a.compression).map_err(field)?,
            dumper: word(Dumper::from_word, &a.dumper).map_err(field)?,
            tables: tables(a.tables).map_err(field)?,
            database: a.database,
            file: a.file,
            size: a.size,
            blake3_hex: a.blake3_hex,
            charset: a.charset,
            collation: a.collation,
            views: a.views,
        })
    }
}

impl From<&StepFacts> for StepFactsV1 {
    fn from(f: &StepFacts) -> Self {
        use StepFacts as F;
        use StepFactsV1 as S;
        match f {
            F::HaDisabled(h) => S::HaDisabled {
                previous_json: h.previous_json.clone(),
                written_json: h.written_json.clone(),
                mode: h.mode.into(),
                attestation: h.attestation.as_ref().map(AttestationV1::from),
            },
            F::ContainerStopped(c) => match &c.stop_requested_at {
                Some(requested) => S::ContainerStopRequested {
                    id: c.id.clone(),
                    stop_requested_at: micros(requested),
                    stopped_at: micros(&c.stopped_at),
                    docker_finished_at: c.docker_finished_at.as_ref().map(micros),
                    exit_code: c.exit_code,
                    already_stopped: c.already_stopped,
                },
                None => S::ContainerStopped {
                    id: c.id.clone(),
                    stopped_at: micros(&c.stopped_at),
                    docker_finished_at: c.docker_finished_at.as_ref().map(micros),
                    exit_code: c.exit_code,
                    already_stopped: c.already_stopped,
                },
            },
            F::HeartbeatPruned {
                max_id,
                rows_deleted,
                batches: None,
                batch_rows: None,
                warning: None,
            } => S::HeartbeatPruned {
                max_id: *max_id,
                rows_deleted: *rows_deleted,
            },
            F::HeartbeatPruned {
                max_id,
                rows_deleted,
                batches,
                batch_rows,
                warning,
            } => S::HeartbeatPrunedInBatches {
                max_id: *max_id,
                rows_deleted: *rows_deleted,
                batches: batches.unwrap_or(0),
                batch_rows: batch_rows.unwrap_or(0),
                warning: warning.clone(),
            },
            F::DumpWritten(a) => S::DumpWritten(a.into()),
            F::ContainerRenamed { id, from, to } => S::ContainerRenamed {
                id: id.clone(),
                from: from.clone(),
                to: to.clone(),
            },
            F::NewContainerCreated(n) => S::NewContainerCreated {
                id: n.id.clone(),
                name: n.name.clone(),
                image: n.image.clone(),
                image_id: n.image_id.clone(),
                binds: n.binds.clone(),
                env: n.env.iter().map(EnvVarV1::from).collect(),
                old_binds: n.old_binds.clone(),
                binds_equal_to_old: n.binds_equal_to_old,
            },
            F::NewContainerStarted { id, started_at } => S::NewContainerStarted {
                id: id.clone(),
                started_at: started_at.as_ref().map(micros),
            },
            F::SupervisorChecked {
                programs,
                all_running,
            } => S::SupervisorChecked {
                programs: named_v1(programs),
                all_running: *all_running,
            },
            F::DockerInit(d) => S::DockerInit {
                exit_code: d.exit_code,
                marker_seen: d.marker_seen,
                log_file: d.log_file.clone(),
                log_blake3: d.log_blake3.clone(),
                log_tail: d.log_tail.clone(),
                harmless_errors: d.harmless_errors.clone(),
            },
            F::Health(h) => S::Health {
                url: h.url.clone(),
                healthy: h.healthy,
                body_blake3: h.body_blake3.clone(),
                container_id: h.container_id.clone(),
            },
            F::NodesOnline { nodes, all_online } => S::NodesOnline {
                nodes: named_v1(nodes),
                all_online: *all_online,
            },
            F::HaEnabled(h) => S::HaEnabled {
                enabled_at: micros(&h.enabled_at),
                previous_json: h.previous_json.clone(),
                written_json: h.written_json.clone(),
                refetch: h.refetch.as_ref().map(RefetchDecisionV1::from),
                mode: h.mode.into(),
                attestation: h.attestation.as_ref().map(AttestationV1::from),
            },
            F::DumpsVerified { checks } => S::DumpsVerified {
                checks: checks
                    .iter()
                    .map(|c| DumpCheckV1 {
                        db: c.db.into(),
                        file: c.file.clone(),
                        found_blake3: c.found_blake3.clone(),
                        ok: c.ok,
                    })
                    .collect(),
            },
            F::DatabaseRecreated { db, database } => S::DatabaseRecreated {
                db: (*db).into(),
                database: database.clone(),
            },
            F::Restored(r) => S::Restored {
                db: r.db.into(),
                database: r.database.clone(),
                file: r.file.clone(),
                verified_blake3: r.verified_blake3.clone(),
                tables: tables_v1(&r.tables),
                tables_match: r.tables_match,
            },
            F::ContainerRestarted { id, name } => S::ContainerRestarted {
                id: id.clone(),
                name: name.clone(),
            },
            F::Completed => S::Completed,
            F::Skipped { reason } => S::Skipped {
                reason: reason.clone(),
            },
            F::PreStopChecked { checks } => S::PreStopChecked {
                checks: checks.iter().map(PreflightCheckV1::from).collect(),
            },
            F::SupervisorPolled(p) => S::SupervisorPolled {
                programs: named_v1(&p.programs),
                all_running: p.all_running,
                polls: p.polls,
                elapsed_ms: p.elapsed_ms,
                timeout_secs: p.timeout_secs,
            },
            F::RestartPolicySet { id, before, after } => S::RestartPolicySet {
                id: id.clone(),
                before: before.into(),
                after: after.into(),
            },
            F::PrunedHeartbeatDropped { table, rows } => S::PrunedHeartbeatDropped {
                table: table.clone(),
                rows: *rows,
            },
        }
    }
}

impl TryFrom<StepFactsV1> for StepFacts {
    type Error = Invalid;
    fn try_from(f: StepFactsV1) -> Result<Self, Invalid> {
        use StepFacts as F;
        use StepFactsV1 as S;
        Ok(match f {
            S::HaDisabled {
                previous_json,
                written_json,
                mode,
                attestation,
            } => F::HaDisabled(HaDisabled {
                previous_json,
                written_json,
                mode: mode.into(),
                attestation: attestation.map(Attestation::try_from).transpose()?,
            }),
            S::ContainerStopped {
                id,
                stopped_at,
                docker_finished_at,
                exit_code,
                already_stopped,
            } => F::ContainerStopped(ContainerStopped {
                id,
                stopped_at: time(stopped_at)?,
                stop_requested_at: None,
                docker_finished_at: opt_time(docker_finished_at)?,
                exit_code,
                already_stopped,
            }),
            S::ContainerStopRequested {
                id,
                stop_requested_at,
                stopped_at,
                docker_finished_at,
                exit_code,
                already_stopped,
            } => F::ContainerStopped(ContainerStopped {
                id,
                stopped_at: time(stopped_at)?,
                stop_requested_at: Some(time(stop_requested_at)?),
                docker_finished_at: opt_time(docker_finished_at)?,
                exit_code,
                already_stopped,
            }),
            S::HeartbeatPruned {
                max_id,
                rows_deleted,
            } => F::HeartbeatPruned {
                max_id,
                rows_deleted,
                batches: None,
                batch_rows: None,
                warning: None,
            },
            S::HeartbeatPrunedInBatches {
                max_id,
                rows_deleted,
                batches,
                batch_rows,
                warning,
            } => F::HeartbeatPruned {
                max_id,
                rows_deleted,
                batches: Some(batches),
                batch_rows: Some(batch_rows),
                warning,
            },
            S::DumpWritten(a) => F::DumpWritten(a.try_into()?),
            S::ContainerRenamed { id, from, to } => F::ContainerRenamed { id, from, to },
            S::NewContainerCreated {
                id,
                name,
                image,
                image_id,
                binds,
                env,
                old_binds,
                binds_equal_to_old,
            } => F::NewContainerCreated(NewContainer {
                id,
                name,
                image,
                image_id,
                binds,
                env: env.into_iter().map(EnvVar::from).collect(),
                old_binds,
                binds_equal_to_old,
            }),
            S::NewContainerStarted { id, started_at } => F::NewContainerStarted {
                id,
                started_at: opt_time(started_at)?,
            },
            S::SupervisorChecked {
                programs,
                all_running,
            } => F::SupervisorChecked {
                programs: named(programs),
                all_running,
            },
            S::DockerInit {
                exit_code,
                marker_seen,
                log_file,
                log_blake3,
                log_tail,
                harmless_errors,
            } => F::DockerInit(DockerInit {
                exit_code,
                marker_seen,
                log_file,
                log_blake3,
                log_tail,
                harmless_errors,
            }),
            S::Health {
                url,
                healthy,
                body_blake3,
                container_id,
            } => F::Health(Health {
                url,
                healthy,
                body_blake3,
                container_id,
            }),
            S::NodesOnline { nodes, all_online } => F::NodesOnline {
                nodes: named(nodes),
                all_online,
            },
            S::HaEnabled {
                enabled_at,
                previous_json,
                written_json,
                refetch,
                mode,
                attestation,
            } => F::HaEnabled(HaEnabled {
                enabled_at: time(enabled_at)?,
                previous_json,
                written_json,
                refetch: refetch.map(RefetchDecision::try_from).transpose()?,
                mode: mode.into(),
                attestation: attestation.map(Attestation::try_from).transpose()?,
            }),
            S::DumpsVerified { checks } => F::DumpsVerified {
                checks: checks
                    .into_iter()
                    .map(|c| DumpCheck {
                        db: c.db.into(),
                        file: c.file,
                        found_blake3: c.found_blake3,
                        ok: c.ok,
                    })
                    .collect(),
            },
            S::DatabaseRecreated { db, database } => F::DatabaseRecreated {
                db: db.into(),
                database,
            },
            S::Restored {
                db,
                database,
                file,
                verified_blake3,
                tables: t,
                tables_match,
            } => F::Restored(Restored {
                db: db.into(),
                database,
                file,
                verified_blake3,
                tables: tables(t)?,
                tables_match,
            }),
            S::ContainerRestarted { id, name } => F::ContainerRestarted { id, name },
            S::Completed => F::Completed,
            S::Skipped { reason } => F::Skipped { reason },
            S::PreStopChecked { checks } => F::PreStopChecked {
                checks: checks.into_iter().map(PreflightCheck::from).collect(),
            },
            S::SupervisorPolled {
                programs,
                all_running,
                polls,
                elapsed_ms,
                timeout_secs,
            } => F::SupervisorPolled(super::SupervisorPoll {
                programs: named(programs),
                all_running,
                polls,
                elapsed_ms,
                timeout_secs,
            }),
            S::RestartPolicySet { id, before, after } => F::RestartPolicySet {
                id,
                before: before.into(),
                after: after.into(),
            },
            S::PrunedHeartbeatDropped { table, rows } => F::PrunedHeartbeatDropped { table, rows },
        })
    }
}

impl From<&Finding> for FindingV1 {
    fn from(f: &Finding) -> Self {
        match f {
            Finding::Done(facts) => FindingV1::Done(Box::new(facts.as_ref().into())),
            Finding::NotDone => FindingV1::NotDone,
            Finding::Failed {
                error,
                retryable,
                kind,
            } => match FailureKindV1::try_from(*kind) {
                Ok(kind) => FindingV1::FailedAs {
                    error: error.clone(),
                    retryable: *retryable,
                    kind,
                },
                Err(_) => FindingV1::Failed {
                    error: error.clone(),
                    retryable: *retryable,
                },
            },
            Finding::Undecided { why } => FindingV1::Undecided { why: why.clone() },
        }
    }
}

impl TryFrom<FindingV1> for Finding {
    type Error = Invalid;
    fn try_from(f: FindingV1) -> Result<Self, Invalid> {
        Ok(match f {
            FindingV1::Done(facts) => Finding::Done(Box::new((*facts).try_into()?)),
            FindingV1::NotDone => Finding::NotDone,
            FindingV1::Failed { error, retryable } => Finding::Failed {
                error,
                retryable,
                kind: FailureKind::Unrecorded,
            },
            FindingV1::FailedAs {
                error,
                retryable,
                kind,
            } => Finding::Failed {
                error,
                retryable,
                kind: kind.into(),
            },
            FindingV1::Undecided { why } => Finding::Undecided { why },
        })
    }
}

// ---------------------------------------------------------------------------------------
// Plan extensions (`run.planned` v2). Variant order is stored: append only.

/// A plan extension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlanExtV1 {
    /// issue 12.2: health scheme and trust.
    Health(HealthTrustV1),
    /// issue 12.7: metadata server flavour and version.
    MetaServer(MetaServerV1),
    /// issue 12.3/12.4: container settings the new container inherits.
    Container(Box<ContainerSettingsV1>),
    /// issue 13: `ha.config` as `init` read it.
    HaAtInit(HaAtInitV1),
    /// issue 14: the witness target and policy.
    Witness(WitnessPlanV1),
    /// issue 15: the nodes and regions beyond node 0.
    Deployment(Box<DeploymentV1>),
    /// issue 16: the downtime estimate.
    Estimate(Box<EstimateV1>),
}

/// issue 16: the downtime estimate (`crate::estimate::Estimate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct EstimateV1 {
    pub databases: Vec<DbMeasureV1>,
    pub heartbeat_db: String,
    pub heartbeat_rows: u64,
    pub probe: Option<ReadProbeV1>,
    pub dump_jobs: u32,
    pub parts: Vec<EstimatePartV1>,
}

/// issue 16: one database as measured at `init`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct DbMeasureV1 {
    pub name: String,
    pub tables: u64,
    pub rows: u64,
    pub data_bytes: u64,
    pub index_bytes: u64,
}

/// issue 16: the read-throughput probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ReadProbeV1 {
    pub table: String,
    pub bytes: u64,
    pub rows: u64,
    pub micros: u64,
}

/// issue 16: one part of the estimated window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct EstimatePartV1 {
    pub kind: PartKindV1,
    pub ms: u64,
    pub basis: BasisV1,
}

/// issue 16: what a part is. Variant order is stored: append only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum PartKindV1 {
    Dump,
    Container,
    DockerInit,
    OmsStartup,
    Prune,
}

/// issue 16: where a figure comes from. Variant order is stored: append only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum BasisV1 {
    Measured,
    Assumed,
    /// Appended (issue 16, second pass): learned from earlier runs on the host.
    EarlierRuns {
        runs: u32,
        version: String,
    },
}

impl From<&crate::estimate::Estimate> for EstimateV1 {
    fn from(e: &crate::estimate::Estimate) -> Self {
        use crate::estimate::{Basis, PartKind};
        EstimateV1 {
            databases: e
                .databases
                .iter()
                .map(|d| DbMeasureV1 {
                    name: d.name.clone(),
                    tables: d.tables,
                    rows: d.rows,
                    data_bytes: d.data_bytes,
                    index_bytes: d.index_bytes,
                })
                .collect(),
            heartbeat_db: e.heartbeat_db.clone(),
            heartbeat_rows: e.heartbeat_rows,
            probe: e.probe.as_ref().map(|p| ReadProbeV1 {
                table: p.table.clone(),
                bytes: p.bytes,
                rows: p.rows,
                micros: p.micros,
            }),
            dump_jobs: e.dump_jobs,
            parts: e
                .parts
                .iter()
                .map(|p| EstimatePartV1 {
                    kind: match p.kind {
                        PartKind::Dump => PartKindV1::Dump,
                        PartKind::Container => PartKindV1::Container,
                        PartKind::DockerInit => PartKindV1::DockerInit,
                        PartKind::OmsStartup => PartKindV1::OmsStartup,
                        PartKind::Prune => PartKindV1::Prune,
                    },
                    ms: p.ms,
                    basis: match &p.basis {
                        Basis::Measured => BasisV1::Measured,
                        Basis::Assumed => BasisV1::Assumed,
                        Basis::EarlierRuns { runs, version } => BasisV1::EarlierRuns {
                            runs: *runs,
                            version: version.clone(),
                        },
                    },
                })
                .collect(),
        }
    }
}

impl From<EstimateV1> for crate::estimate::Estimate {
    fn from(e: EstimateV1) -> Self {
        use crate::estimate::{Basis, DbMeasure, Part, PartKind, ReadProbe};
        crate::estimate::Estimate {
            databases: e
                .databases
                .into_iter()
                .map(|d| DbMeasure {
                    name: d.name,
                    tables: d.tables,
                    rows: d.rows,
                    data_bytes: d.data_bytes,
                    index_bytes: d.index_bytes,
                })
                .collect(),
            heartbeat_db: e.heartbeat_db,
            heartbeat_rows: e.heartbeat_rows,
            probe: e.probe.map(|p| ReadProbe {
                table: p.table,
                bytes: p.bytes,
                rows: p.rows,
                micros: p.micros,
            }),
            dump_jobs: e.dump_jobs,
            parts: e
                .parts
                .into_iter()
                .map(|p| Part {
                    kind: match p.kind {
                        PartKindV1::Dump => PartKind::Dump,
                        PartKindV1::Container => PartKind::Container,
                        PartKindV1::DockerInit => PartKind::DockerInit,
                        PartKindV1::OmsStartup => PartKind::OmsStartup,
                        PartKindV1::Prune => PartKind::Prune,
                    },
                    ms: p.ms,
                    basis: match p.basis {
                        BasisV1::Measured => Basis::Measured,
                        BasisV1::Assumed => Basis::Assumed,
                        BasisV1::EarlierRuns { runs, version } => {
                            Basis::EarlierRuns { runs, version }
                        }
                    },
                })
                .collect(),
        }
    }
}

/// issue 15: what every node has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct NodeMetaV1 {
    pub label: String,
    pub region: u8,
    pub endpoint: String,
    pub runs_init: bool,
}

/// issue 15: a region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct RegionPlanV1 {
    pub name: String,
    pub heartbeat_db: String,
}

/// issue 15: a node other than node 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct NodePlanV1 {
    pub meta: NodeMetaV1,
    pub old_container: ContainerV1,
    pub settings: Option<Box<ContainerSettingsV1>>,
    pub host_ip: String,
    pub health_url: String,
    pub old_renamed_to: String,
    pub new_name: String,
    pub failed_name: String,
    pub target_image_id: Option<String>,
}

/// issue 15: the deployment beyond node 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct DeploymentV1 {
    pub node0: NodeMetaV1,
    pub regions: Vec<RegionPlanV1>,
    pub nodes: Vec<NodePlanV1>,
}

impl From<&NodeMeta> for NodeMetaV1 {
    fn from(m: &NodeMeta) -> Self {
        NodeMetaV1 {
            label: m.label.clone(),
            region: m.region.0,
            endpoint: m.endpoint.clone(),
            runs_init: m.runs_init,
        }
    }
}

impl From<NodeMetaV1> for NodeMeta {
    fn from(m: NodeMetaV1) -> Self {
        NodeMeta {
            label: m.label,
            region: RegionIx(m.region),
            endpoint: m.endpoint,
            runs_init: m.runs_init,
        }
    }
}

impl From<&Deployment> for DeploymentV1 {
    fn from(d: &Deployment) -> Self {
        DeploymentV1 {
            node0: (&d.node0).into(),
            regions: d
                .regions
                .iter()
                .map(|r| RegionPlanV1 {
                    name: r.name.clone(),
                    heartbeat_db: r.heartbeat_db.clone(),
                })
                .collect(),
            nodes: d
                .nodes
                .iter()
                .map(|n| NodePlanV1 {
                    meta: (&n.meta).into(),
                    old_container: (&n.old_container).into(),
                    settings: n.settings.as_ref().map(|s| Box::new(s.as_ref().into())),
                    host_ip: n.host_ip.clone(),
                    health_url: n.health_url.clone(),
                    old_renamed_to: n.old_renamed_to.clone(),
                    new_name: n.new_name.clone(),
                    failed_name: n.failed_name.clone(),
                    target_image_id: n.target_image_id.clone(),
                })
                .collect(),
        }
    }
}

impl From<DeploymentV1> for Deployment {
    fn from(d: DeploymentV1) -> Self {
        Deployment {
            node0: d.node0.into(),
            regions: d
                .regions
                .into_iter()
                .map(|r| RegionPlan {
                    name: r.name,
                    heartbeat_db: r.heartbeat_db,
                })
                .collect(),
            nodes: d
                .nodes
                .into_iter()
                .map(|n| NodePlan {
                    meta: n.meta.into(),
                    old_container: n.old_container.into(),
                    settings: n.settings.map(|s| Box::new((*s).into())),
                    host_ip: n.host_ip,
                    health_url: n.health_url,
                    old_renamed_to: n.old_renamed_to,
                    new_name: n.new_name,
                    failed_name: n.failed_name,
                    target_image_id: n.target_image_id,
                })
                .collect(),
        }
    }
}

/// issue 14: the witness target (`mysql://USER@HOST:PORT/DB`, never a password) and policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessPlanV1 {
    /// The target URL.
    pub target: String,
    /// The policy.
    pub policy: WitnessPolicyV1,
}

/// issue 14: witness policy. Variant order is stored: append only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum WitnessPolicyV1 {
    Required,
    BestEffort,
}

/// issue 13: `ha.config` as `init` read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaAtInitV1 {
    /// The stored JSON, as read.
    pub json: String,
}

/// Health scheme. Variant order is stored: append only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum HealthSchemeV1 {
    Http,
    Https,
}

/// Health scheme and trust.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct HealthTrustV1 {
    pub scheme: HealthSchemeV1,
    pub url_from_operator: bool,
    pub detected_from: Option<String>,
    pub ca_file: Option<String>,
    pub ca_blake3_hex: Option<String>,
}

/// Server flavour. Variant order is stored: append only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum ServerFlavourV1 {
    MariaDb,
    MySql,
    OceanBase,
    Other,
}

/// Metadata server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct MetaServerV1 {
    pub flavour: ServerFlavourV1,
    pub version: String,
}

/// Container settings (issue 12.3/12.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ContainerSettingsV1 {
    pub restart: RestartPolicyV1,
    pub network_mode: String,
    pub env: Vec<EnvVarV1>,
    pub ulimits: Vec<UlimitV1>,
    pub log_driver: String,
    pub log_opts: Vec<EnvVarV1>,
    pub extra_hosts: Vec<String>,
    pub devices: Vec<String>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    pub shm_size: Option<i64>,
    pub tmpfs: BTreeMap<String, String>,
    pub security_opt: Vec<String>,
}

/// A ulimit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct UlimitV1 {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

impl From<&ContainerSettings> for ContainerSettingsV1 {
    fn from(c: &ContainerSettings) -> Self {
        ContainerSettingsV1 {
            restart: (&c.restart).into(),
            network_mode: c.network_mode.clone(),
            env: c.env.iter().map(EnvVarV1::from).collect(),
            ulimits: c
                .ulimits
                .iter()
                .map(|u| UlimitV1 {
                    name: u.name.clone(),
                    soft: u.soft,
                    hard: u.hard,
                })
                .collect(),
            log_driver: c.log_driver.clone(),
            log_opts: c.log_opts.iter().map(EnvVarV1::from).collect(),
            extra_hosts: c.extra_hosts.clone(),
            devices: c.devices.clone(),
            cap_add: c.cap_add.clone(),
            cap_drop: c.cap_drop.clone(),
            dns: c.dns.clone(),
            dns_search: c.dns_search.clone(),
            dns_options: c.dns_options.clone(),
            shm_size: c.shm_size,
            tmpfs: c.tmpfs.clone(),
            security_opt: c.security_opt.clone(),
        }
    }
}

impl From<ContainerSettingsV1> for ContainerSettings {
    fn from(c: ContainerSettingsV1) -> Self {
        ContainerSettings {
            restart: c.restart.into(),
            network_mode: c.network_mode,
            env: c.env.into_iter().map(EnvVar::from).collect(),
            ulimits: c
                .ulimits
                .into_iter()
                .map(|u| Ulimit {
                    name: u.name,
                    soft: u.soft,
                    hard: u.hard,
                })
                .collect(),
            log_driver: c.log_driver,
            log_opts: c.log_opts.into_iter().map(EnvVar::from).collect(),
            extra_hosts: c.extra_hosts,
            devices: c.devices,
            cap_add: c.cap_add,
            cap_drop: c.cap_drop,
            dns: c.dns,
            dns_search: c.dns_search,
            dns_options: c.dns_options,
            shm_size: c.shm_size,
            tmpfs: c.tmpfs,
            security_opt: c.security_opt,
        }
    }
}

impl From<&PlanExt> for PlanExtV1 {
    fn from(e: &PlanExt) -> Self {
        match e {
            PlanExt::Health(h) => PlanExtV1::Health(HealthTrustV1 {
                scheme: match h.scheme {
                    HealthScheme::Http => HealthSchemeV1::Http,
                    HealthScheme::Https => HealthSchemeV1::Https,
                },
                url_from_operator: h.url_from_operator,
                detected_from: h.detected_from.clone(),
                ca_file: h.ca_file.clone(),
                ca_blake3_hex: h.ca_blake3_hex.clone(),
            }),
            PlanExt::MetaServer(m) => PlanExtV1::MetaServer(MetaServerV1 {
                flavour: match m.flavour {
                    ServerFlavour::MariaDb => ServerFlavourV1::MariaDb,
                    ServerFlavour::MySql => ServerFlavourV1::MySql,
                    ServerFlavour::OceanBase => ServerFlavourV1::OceanBase,
                    ServerFlavour::Other => ServerFlavourV1::Other,
                },
                version: m.version.clone(),
            }),
            PlanExt::Container(c) => PlanExtV1::Container(Box::new(c.as_ref().into())),
            PlanExt::HaAtInit(h) => PlanExtV1::HaAtInit(HaAtInitV1 {
                json: h.json.clone(),
            }),
            PlanExt::Witness(w) => PlanExtV1::Witness(WitnessPlanV1 {
                target: w.target.clone(),
                policy: match w.policy {
                    WitnessPolicy::Required => WitnessPolicyV1::Required,
                    WitnessPolicy::BestEffort => WitnessPolicyV1::BestEffort,
                },
            }),
            PlanExt::Deployment(d) => PlanExtV1::Deployment(Box::new(d.as_ref().into())),
            PlanExt::Estimate(e) => PlanExtV1::Estimate(Box::new(e.as_ref().into())),
        }
    }
}

impl From<Resolution> for ResolutionV1 {
    fn from(r: Resolution) -> Self {
        match r {
            Resolution::Done => ResolutionV1::Done,
            Resolution::NotDone => ResolutionV1::NotDone,
        }
    }
}

impl From<PlanExtV1> for PlanExt {
    fn from(e: PlanExtV1) -> Self {
        match e {
            PlanExtV1::Health(h) => PlanExt::Health(HealthTrust {
                scheme: match h.scheme {
                    HealthSchemeV1::Http => HealthScheme::Http,
                    HealthSchemeV1::Https => HealthScheme::Https,
                },
                url_from_operator: h.url_from_operator,
                detected_from: h.detected_from,
                ca_file: h.ca_file,
                ca_blake3_hex: h.ca_blake3_hex,
            }),
            PlanExtV1::MetaServer(m) => PlanExt::MetaServer(MetaServer {
                flavour: match m.flavour {
                    ServerFlavourV1::MariaDb => ServerFlavour::MariaDb,
                    ServerFlavourV1::MySql => ServerFlavour::MySql,
                    ServerFlavourV1::OceanBase => ServerFlavour::OceanBase,
                    ServerFlavourV1::Other => ServerFlavour::Other,
                },
                version: m.version,
            }),
            PlanExtV1::Container(c) => PlanExt::Container(Box::new((*c).into())),
            PlanExtV1::HaAtInit(h) => PlanExt::HaAtInit(HaAtInit { json: h.json }),
            PlanExtV1::Witness(w) => PlanExt::Witness(WitnessPlan {
                target: w.target,
                policy: match w.policy {
                    WitnessPolicyV1::Required => WitnessPolicy::Required,
                    WitnessPolicyV1::BestEffort => WitnessPolicy::BestEffort,
                },
            }),
            PlanExtV1::Deployment(d) => PlanExt::Deployment(Box::new((*d).into())),
            PlanExtV1::Estimate(e) => PlanExt::Estimate(Box::new((*e).into())),
        }
    }
}

impl From<ResolutionV1> for Resolution {
    fn from(r: ResolutionV1) -> Self {
        match r {
            ResolutionV1::Done => Resolution::Done,
            ResolutionV1::NotDone => Resolution::NotDone,
        }
    }
}

impl From<&StepResolved> for StepResolvedV1 {
    fn from(d: &StepResolved) -> Self {
        StepResolvedV1 {
            key: d.key.into(),
            resolution: d.resolution.into(),
            reason: d.reason.clone(),
            by: d.by.clone(),
            reconciled_seq: d.reconciled_seq,
        }
    }
}

impl From<StepResolvedV1> for StepResolved {
    fn from(d: StepResolvedV1) -> Self {
        StepResolved {
            key: d.key.into(),
            resolution: d.resolution.into(),
            reason: d.reason,
            by: d.by,
            reconciled_seq: d.reconciled_seq,
        }
    }
}
