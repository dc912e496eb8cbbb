//! The upgrade report: one self-contained document per run for the auditor after a change
//! window and the engineer after an incident, so neither has to read raw events.
//!
//! [`build`] is pure: it turns a run's recorded events, the [`State`] replayed from them
//! and the [`Verification`] facts the caller established (chain intact, anchor matched,
//! dump files present and matching) into a [`Report`]. Every figure in it (T1, T2, T3,
//! the downtime, step durations, the refetch interval and its reasoning, checksums, row
//! counts) is read or computed from the ledger, never measured again: a report rendered
//! twice from the same ledger and facts is the same document. While a downtime is still
//! open it is measured to the last record, not to the clock.
//!
//! The renderers turn a report into Markdown ([`to_markdown`], for change tickets), a
//! self-contained HTML page ([`to_html`], inline CSS and an inline SVG timeline, no
//! script, no external asset) and JSON ([`to_json`], documented by
//! `ledger-schema/report.schema.json`). [`collect`] is the only part that reads anything:
//! it opens a ledger read-only, verifies it and re-hashes the dump files it names.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::events::{
    Attestation, DumpCheck, FailureKind, Finding, HaAfter, HaMode, MetaDb, Recorded, StepFacts,
    StepKey, TableFact,
};
use crate::ledger::VerifyReport;
use crate::refetch::{RefetchDecision, RefetchPolicy};
use crate::replay::{Attempt, Outcome, Phase, State};

mod collect;
pub mod estimate;
pub(crate) mod html;
pub mod lanes;
pub(crate) mod markdown;
pub(crate) mod text;
pub mod window;

pub use collect::{CollectError, Collected, check_dump_file, collect};
pub use html::to_html;
pub use lanes::{InitOnNode, LaneContainer, LaneHealth, NodeLane};
pub use markdown::to_markdown;
pub use window::{Share, Window, WindowRow};

/// The `format` field of every report.
pub const REPORT_FORMAT: &str = "oms-upgrade-report";

/// The report layout's version (`version` field); bumped on incompatible changes to the
/// JSON form, which `ledger-schema/report.schema.json` describes.
pub const REPORT_VERSION: u32 = 1;

/// The report as JSON (the `--format json` output).
pub fn to_json(report: &Report) -> serde_json::Value {
    // The report holds only strings, numbers, bools and string-keyed maps, which
    // serde_json always represents.
    serde_json::to_value(report).expect("a report always serializes to JSON")
}

/// Everything the ledger says about one run, arranged for people.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Always [`REPORT_FORMAT`].
    pub format: &'static str,
    /// Always [`REPORT_VERSION`].
    pub version: u32,
    /// Version of the oms-upgrade that rendered the report (the run's own version is in
    /// [`PlanSummary::tool_version`]).
    pub rendered_by: String,
    /// Identity of the run and of who ran it.
    pub run: RunInfo,
    /// The plan, when one was recorded.
    pub plan: Option<PlanSummary>,
    /// Where the run ended and what it means.
    pub outcome: OutcomeSummary,
    /// T1, T2, T3 and the downtime.
    pub times: KeyTimes,
    /// Every attempt of every step, in record order.
    pub steps: Vec<StepRow>,
    /// Where the downtime window's time went, step by step (issue 16); `None` while the
    /// downtime has no recorded end.
    pub window: Option<Window>,
    /// A deployment's nodes (issue 15), one lane each, in node order; the steps of node
    /// `n` are the rows of [`Report::steps`] whose `node` is `n`, the others are
    /// deployment-wide. Absent from a single-node report.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeLane>,
    /// HA before and after, and how the refetch interval was chosen.
    pub ha: HaSection,
    /// Every dump written, with its checks.
    pub dumps: Vec<DumpRow>,
    /// The containers before and after.
    pub containers: Containers,
    /// Attempts that failed (including reconciliations that found a failure).
    pub failures: Vec<FailureRow>,
    /// Attempts after the first of the same step.
    pub retries: Vec<RetryRow>,
    /// Steps that were in doubt after a crash and how each was resolved (or is still open).
    pub in_doubt: Vec<InDoubtRow>,
    /// The rollback, once requested.
    pub rollback: Option<RollbackRow>,
    /// `init` runs whose preflight checks failed.
    pub preflight_failures: Vec<PreflightRow>,
    /// Operators' notes.
    pub notes: Vec<NoteRow>,
    /// Operators' attestations: standalone ones and those given in manual HA mode.
    pub attestations: Vec<AttestationRow>,
    /// What the caller verified, and the overall verdict.
    pub verification: VerificationSummary,
    /// Set when the report was made while a run held the ledger (issue 14): it covers a
    /// verified copy up to [`LiveSection::seq`], and the run may have recorded more since.
    /// Absent from a report of a ledger nobody held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveSection>,
    /// issue 16: the downtime estimate `init` recorded against what the ledger shows.
    /// Absent when the plan has no estimate (recorded by an earlier build).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimate: Option<estimate::EstimateSection>,
}

/// A report made during a run, from a verified copy of the ledger (see
/// `crate::ledger::live`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveSection {
    /// Always true: the report is a live read, not the run's final record.
    pub live: bool,
    /// The last record the copy holds (and the report covers).
    pub seq: Option<u64>,
    /// Who held the ledger, as its lock file says.
    pub holder: String,
}

impl LiveSection {
    /// From what the reader read.
    pub fn from_read(l: &crate::ledger::LiveRead) -> LiveSection {
        LiveSection {
            live: true,
            seq: l.seq,
            holder: l.holder.clone(),
        }
    }

    /// One line for the top of the document.
    pub fn banner(&self) -> String {
        format!(
            "Live read as of seq {} while a run holds the ledger ({}): this is not the run's \
             final record; report again once it has ended.",
            self.seq.map_or_else(|| "0".to_string(), |s| s.to_string()),
            self.holder
        )
    }
}

/// Identity of the run and of who ran it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunInfo {
    /// The run id (fixed by the first record).
    pub run_id: Option<Uuid>,
    /// The ledger's id.
    pub ledger_id: Uuid,
    /// How many records the report covers.
    pub records: u64,
    /// Time of the first record.
    pub first_record_at: Option<DateTime<Utc>>,
    /// Time of the last record.
    pub last_record_at: Option<DateTime<Utc>>,
    /// Every operator that wrote a record, sorted.
    pub operators: Vec<String>,
    /// Every host a record was written from, sorted.
    pub hosts: Vec<String>,
    /// Who recorded the plan.
    pub planned_by: Option<String>,
    /// From which host.
    pub planned_on: Option<String>,
    /// When.
    pub planned_at: Option<DateTime<Utc>>,
}

/// The plan's facts a reader needs: versions, images, where the data lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanSummary {
    /// oms-upgrade's version that planned (and ran) the upgrade.
    pub tool_version: String,
    /// Version running before.
    pub source_version: String,
    /// Version upgraded to.
    pub target_version: String,
    /// The guide followed (e.g. `guide-3.3.1`).
    pub procedure: String,
    /// The old container's image reference.
    pub source_image: String,
    /// Its image id.
    pub source_image_id: String,
    /// The new image reference.
    pub target_image: String,
    /// Its id, when known at planning.
    pub target_image_id: Option<String>,
    /// BLAKE3 digest of the recorded plan.
    pub plan_digest: String,
    /// Metadata DB, `mysql://user@host:port` (no secret).
    pub metadb: String,
    /// The rm database.
    pub db_rm: String,
    /// The cm database.
    pub db_cm: String,
    /// The cm heartbeat database.
    pub db_cm_hb: String,
    /// Folder the dumps went to.
    pub dump_dir: String,
    /// `OMS_HOST_IP` of the new container.
    pub host_ip: String,
    /// OMS health URL probed.
    pub health_url: String,
    /// `--privileged=true` on the new container.
    pub privileged: bool,
}

/// Where the run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutcomeSummary {
    /// The replayed phase.
    pub phase: Phase,
    /// One sentence saying what happened.
    pub summary: String,
    /// The step that is in doubt right now (intent without outcome), if any.
    pub in_doubt_now: Option<StepKey>,
}

/// A marked instant: T1, T2 or T3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mark {
    /// `T1`, `T2` or `T3`.
    pub name: &'static str,
    /// The instant, as recorded in the step's facts.
    pub at: DateTime<Utc>,
    /// Which instant `at` is, in words (T1/T3: the stop requested; T2: HA re-enabled).
    pub instant: &'static str,
    /// The step whose facts carry it.
    pub step: StepKey,
    /// Seq of that step's outcome record.
    pub seq: u64,
    /// For stops: when the stop call returned (the container seen stopped).
    pub stop_returned_at: Option<DateTime<Utc>>,
    /// For stops: Docker's own `State.FinishedAt`.
    pub docker_finished_at: Option<DateTime<Utc>>,
}

/// What T1/T3 is when the stop's request instant is recorded.
pub const STOP_REQUESTED: &str = "the stop was requested (OMS shuts down from then on)";
/// What T1/T3 is in ledgers of earlier builds, which did not record the request.
pub const STOP_SEEN_DONE: &str =
    "the stop was seen done (recorded by an earlier build; the shutdown began before it)";
/// What T2 is.
pub const HA_ENABLED: &str = "HA was re-enabled";

/// The downtime, from the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Downtime {
    /// Start: T1 (or the first stop intent when T1 was never seen).
    pub start: DateTime<Utc>,
    /// End: HA re-enabled (T2, or the rollback's), or health on guides without HA steps;
    /// `None` while it lasts.
    pub end: Option<DateTime<Utc>>,
    /// What ended it (or "still down at the last record").
    pub ended_by: String,
    /// True when no end is recorded: measured to the last record.
    pub ongoing: bool,
    /// The instant it was measured to (`end`, or the last record's time).
    pub measured_to: DateTime<Utc>,
    /// Length in milliseconds.
    pub duration_ms: i64,
    /// Length in whole minutes, rounded up (the refetch rule's measure).
    pub minutes_rounded_up: u64,
    /// Length for people (e.g. `1 h 0 min 12 s`).
    pub text: String,
}

/// T1, T2, T3 and the downtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyTimes {
    /// Old container seen stopped.
    pub t1: Option<Mark>,
    /// HA re-enabled after the upgrade.
    pub t2: Option<Mark>,
    /// New container stopped by the rollback.
    pub t3: Option<Mark>,
    /// The downtime.
    pub downtime: Option<Downtime>,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepResult {
    /// `step.done`.
    Done,
    /// `step.failed`.
    Failed,
    /// In doubt after a crash; reality showed it had happened.
    ReconciledDone,
    /// In doubt after a crash; reality showed it had not happened.
    ReconciledNotDone,
    /// In doubt after a crash; reality showed a failure.
    ReconciledFailed,
    /// Intent recorded, no outcome yet.
    InDoubt,
    /// In doubt after a crash; reality could not settle it, an operator decides
    /// (issue 12.1; the decision is a `step.resolved` record).
    ReconciledUndecided,
}

impl StepResult {
    /// Words for people.
    pub fn label(self) -> &'static str {
        match self {
            StepResult::Done => "done",
            StepResult::Failed => "failed",
            StepResult::ReconciledDone => "done (reconciled)",
            StepResult::ReconciledNotDone => "not done (reconciled)",
            StepResult::ReconciledFailed => "failed (reconciled)",
            StepResult::InDoubt => "in doubt",
            StepResult::ReconciledUndecided => "undecided (reconciled; operator decision)",
        }
    }

    fn of(outcome: Option<&Outcome>) -> StepResult {
        match outcome {
            None => StepResult::InDoubt,
            Some(Outcome::Done { .. }) => StepResult::Done,
            Some(Outcome::Failed { .. }) => StepResult::Failed,
            Some(Outcome::Reconciled { finding, .. }) => match finding {
                Finding::Done(_) => StepResult::ReconciledDone,
                Finding::NotDone => StepResult::ReconciledNotDone,
                Finding::Failed { .. } => StepResult::ReconciledFailed,
                Finding::Undecided { .. } => StepResult::ReconciledUndecided,
            },
        }
    }
}

/// One attempt of one step: a row of the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepRow {
    /// The step (e.g. `dump-cm_hb`).
    pub key: StepKey,
    /// What it does, for people.
    pub title: String,
    /// Part of the rollback.
    pub rollback: bool,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Intent record seq.
    pub intent_seq: u64,
    /// Intent record time.
    pub started_at: DateTime<Utc>,
    /// Outcome record seq.
    pub outcome_seq: Option<u64>,
    /// Outcome record time.
    pub ended_at: Option<DateTime<Utc>>,
    /// Outcome time minus intent time, milliseconds.
    pub duration_ms: Option<i64>,
    /// How it ended.
    pub result: StepResult,
    /// `T1`/`T2`/`T3` when this attempt's facts carry one.
    pub marks: Vec<&'static str>,
    /// What it found or did, or the error.
    pub detail: String,
    /// Operator of the intent record.
    pub operator: String,
    /// Host of the intent record.
    pub host: String,
    /// In a deployment's report, the node whose lane the attempt is in; absent for
    /// deployment-wide steps and from single-node reports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<u8>,
}

/// One `ha.config` change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HaChange {
    /// The step.
    pub step: StepKey,
    /// `disable` or `enable`.
    pub action: &'static str,
    /// Outcome record time (for enables: when the stored value was confirmed).
    pub at: DateTime<Utc>,
    /// The value read before.
    pub previous_json: String,
    /// The value written; `None` when HA was already off.
    pub written_json: Option<String>,
    /// How it was changed.
    pub mode: HaMode,
    /// How the refetch setting was chosen (enables after a downtime).
    pub refetch: Option<RefetchDecision>,
    /// The operator's attestation in manual mode.
    pub attestation: Option<Attestation>,
}

/// One top-level `ha.config` key that differs between before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyChange {
    /// The key.
    pub key: String,
    /// Its JSON value before (`None`: absent).
    pub before: Option<String>,
    /// Its JSON value after (`None`: absent).
    pub after: Option<String>,
}

/// HA before and after, and the refetch reasoning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HaSection {
    /// How `ha.config` was changed (plan).
    pub mode: Option<HaMode>,
    /// What `enable` was set to afterwards (plan).
    pub after_policy: Option<HaAfter>,
    /// The refetch rule (plan).
    pub policy: Option<RefetchPolicy>,
    /// `ha.config` as read before the run.
    pub before_json: Option<String>,
    /// `ha.config` as last written when HA was switched back on.
    pub after_json: Option<String>,
    /// Top-level keys whose values differ between before and after.
    pub changed_keys: Vec<KeyChange>,
    /// Every change, in order.
    pub changes: Vec<HaChange>,
    /// The refetch decision in force (the rollback's if any).
    pub refetch: Option<RefetchDecision>,
    /// Retention warnings of any refetch decision.
    pub warnings: Vec<String>,
}

/// What the rollback found and did with a dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreRow {
    /// Outcome record time.
    pub at: DateTime<Utc>,
    /// BLAKE3 verified before restoring.
    pub verified_blake3: String,
    /// Every table's rows and checksum equal the dump's record.
    pub tables_match: bool,
    /// Tables after the restore.
    pub tables: Vec<TableFact>,
}

/// One dump, from its `step.done` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DumpRow {
    /// Which database.
    pub db: MetaDb,
    /// Database name.
    pub database: String,
    /// The file.
    pub file: String,
    /// Size in bytes.
    pub size: u64,
    /// BLAKE3 of the file, hex.
    pub blake3: String,
    /// Format (`sql`).
    pub format: String,
    /// Compression.
    pub compression: String,
    /// Which dumper wrote it.
    pub dumper: String,
    /// Default character set.
    pub charset: String,
    /// Default collation.
    pub collation: String,
    /// Outcome record time.
    pub recorded_at: Option<DateTime<Utc>>,
    /// Per-table facts.
    pub tables: Vec<TableFact>,
    /// Sum of the tables' rows.
    pub total_rows: u64,
    /// The file as found when the report was made (from the caller's verification).
    pub file_check: Option<DumpFileCheck>,
    /// The rollback's re-hash before it changed anything.
    pub rollback_check: Option<DumpCheck>,
    /// The rollback's restore of this dump.
    pub restore: Option<RestoreRow>,
}

/// The old container as planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OldContainer {
    /// Container id.
    pub id: String,
    /// Name at planning.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Image id.
    pub image_id: String,
    /// `HostConfig.Binds`.
    pub binds: Vec<String>,
    /// `Config.Env` (`NAME=value`, secrets shown as `***`).
    pub env: Vec<String>,
    /// `Config.Labels`.
    pub labels: BTreeMap<String, String>,
    /// Name it is moved to before the new container takes its name.
    pub renamed_to: String,
}

/// The new container as created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewContainerRow {
    /// Container id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Image id.
    pub image_id: Option<String>,
    /// `HostConfig.Binds` as inspected.
    pub binds: Vec<String>,
    /// `Config.Env` (`NAME=value`, secrets shown as `***`).
    pub env: Vec<String>,
    /// The recorded proof that the binds equal the old container's.
    pub binds_equal_to_old: bool,
    /// Docker's `State.StartedAt`.
    pub started_at: Option<DateTime<Utc>>,
}

/// One bind and which container has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BindRow {
    /// `/host:/container[:opts]`.
    pub bind: String,
    /// On the old container.
    pub old: bool,
    /// On the new container.
    pub new: bool,
}

/// A container rename.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenameRow {
    /// The step.
    pub step: StepKey,
    /// Outcome record time.
    pub at: DateTime<Utc>,
    /// Container id.
    pub id: String,
    /// Old name.
    pub from: String,
    /// New name.
    pub to: String,
}

/// The containers before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Containers {
    /// The old container.
    pub old: Option<OldContainer>,
    /// The new container.
    pub new: Option<NewContainerRow>,
    /// Binds of both, side by side.
    pub binds: Vec<BindRow>,
    /// Renames, in order.
    pub renames: Vec<RenameRow>,
}

/// A failed attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureRow {
    /// The step.
    pub key: StepKey,
    /// Which attempt.
    pub attempt: u32,
    /// Outcome record seq.
    pub seq: u64,
    /// Outcome record time.
    pub at: DateTime<Utc>,
    /// The error.
    pub error: String,
    /// Whether running it again was allowed.
    pub retryable: bool,
    /// What kind of failure the record says it was (`unrecorded` for records written
    /// before kinds were, and for reconciliation findings).
    pub kind: FailureKind,
    /// Found by reconciliation after a crash.
    pub reconciled: bool,
    /// What was observed, if anything.
    pub observed: Option<String>,
}

/// A retry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetryRow {
    /// The step.
    pub key: StepKey,
    /// Attempt number (2 or more).
    pub attempt: u32,
    /// Intent record time.
    pub at: DateTime<Utc>,
    /// How the previous attempt had ended.
    pub after: StepResult,
    /// How this one ended.
    pub result: StepResult,
}

/// A step that was in doubt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InDoubtRow {
    /// The step.
    pub key: StepKey,
    /// Which attempt.
    pub attempt: u32,
    /// Intent record time.
    pub intent_at: DateTime<Utc>,
    /// Reconciliation record time (`None`: still in doubt).
    pub resolved_at: Option<DateTime<Utc>>,
    /// What reality showed (`None`: still in doubt).
    pub result: StepResult,
    /// How it was found (what was inspected).
    pub evidence: Option<String>,
}

/// The rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RollbackRow {
    /// Record seq.
    pub seq: u64,
    /// Record time.
    pub at: DateTime<Utc>,
    /// Why.
    pub reason: String,
    /// Phase it was requested in.
    pub from_phase: Phase,
    /// Its steps, fixed at the request.
    pub steps: Vec<StepKey>,
    /// All of them done.
    pub completed: bool,
}

/// A failed preflight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreflightRow {
    /// Record seq.
    pub seq: u64,
    /// Record time.
    pub at: DateTime<Utc>,
    /// Checks that failed, `name: detail`.
    pub failed: Vec<String>,
    /// Checks that passed.
    pub passed: Vec<String>,
}

/// An operator's note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoteRow {
    /// Record seq.
    pub seq: u64,
    /// Record time.
    pub at: DateTime<Utc>,
    /// Record operator.
    pub operator: String,
    /// Record host.
    pub host: String,
    /// The note.
    pub text: String,
}

/// An operator's attestation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttestationRow {
    /// Record seq.
    pub seq: u64,
    /// Record time.
    pub at: DateTime<Utc>,
    /// Record operator.
    pub operator: String,
    /// `attestation` for standalone events, else the HA step it was given for.
    pub source: String,
    /// Who attests.
    pub by: String,
    /// What.
    pub statement: String,
    /// The step it concerns.
    pub step: Option<StepKey>,
    /// When the attested thing happened, per the operator.
    pub observed_at: Option<DateTime<Utc>>,
}

/// A dump file as found by the caller (re-hashed when the report was made).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DumpFileCheck {
    /// Which database.
    pub db: MetaDb,
    /// The file the ledger names.
    pub file: String,
    /// The file exists and could be read.
    pub present: bool,
    /// Its size and BLAKE3 equal the recorded ones.
    pub matches: bool,
    /// Size found.
    pub found_size: Option<u64>,
    /// BLAKE3 found, hex.
    pub found_blake3: Option<String>,
    /// Why it could not be read.
    pub error: Option<String>,
}

/// The first problem `ledger verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainProblem {
    /// First bad seq.
    pub seq: u64,
    /// Kind (`hash_mismatch`, ...; see `ledger-schema/RECORD.md`).
    pub kind: String,
    /// Details.
    pub detail: String,
}

/// A checkpoint the ledger was verified against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnchorCheck {
    /// The checkpoint's seq.
    pub seq: u64,
    /// The checkpoint's head hash.
    pub head: String,
    /// The ledger matched it.
    pub matched: bool,
}

/// What the caller verified before building the report; see [`collect`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// The ledger's id.
    pub ledger_id: Uuid,
    /// No problem in the chain (and the payloads decode).
    pub chain_intact: bool,
    /// Records that passed.
    pub records_verified: u64,
    /// Seq of the head (the last record that passed).
    pub head_seq: Option<u64>,
    /// Hash of the head, hex: ties the document to the ledger.
    pub head_hash: Option<String>,
    /// The first problem.
    pub problem: Option<ChainProblem>,
    /// The checkpoint checked against, when one was given.
    pub anchor: Option<AnchorCheck>,
    /// Every dump file the ledger names.
    pub dumps: Vec<DumpFileCheck>,
}

impl Verification {
    /// From `ledger verify`'s report and the dump files' checks.
    pub fn from_verify_report(r: &VerifyReport, dumps: Vec<DumpFileCheck>) -> Verification {
        let anchor_problem = r.problem.as_ref().is_some_and(|p| {
            use crate::ledger::ProblemKind as K;
            matches!(
                p.kind,
                K::HeadMismatchAnchor | K::TailShorterThanAnchor | K::AnchorLedgerMismatch
            )
        });
        Verification {
            ledger_id: r.ledger_id,
            chain_intact: r.is_ok(),
            records_verified: r.records,
            head_seq: r.head.map(|h| h.0),
            head_hash: r.head.map(|h| h.1.to_hex()),
            problem: r.problem.as_ref().map(|p| ChainProblem {
                seq: p.seq,
                kind: p.kind.as_str().to_string(),
                detail: p.detail.clone(),
            }),
            anchor: r.anchor.map(|a| AnchorCheck {
                seq: a.seq,
                head: a.head.to_hex(),
                // The walk stops at the first problem: the anchor is proven only when that
                // problem (if any) lies beyond it and is not about the anchor itself.
                matched: !anchor_problem && r.problem.as_ref().is_none_or(|p| p.seq > a.seq),
            }),
            dumps,
        }
    }
}

/// The verification facts and the verdict drawn from them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerificationSummary {
    /// Chain intact, anchor matched (if given), every dump present and matching, and the
    /// report covers exactly the verified records.
    pub ok: bool,
    /// What was found.
    #[serde(flatten)]
    pub facts: Verification,
    /// Every dump file present with its recorded size and BLAKE3.
    pub dumps_ok: bool,
    /// Each reason `ok` is false, for people.
    pub findings: Vec<String>,
}

/// Builds the report of a run. Pure: everything comes from `records`, the `state` replayed
/// from them, and the `verification` the caller established.
pub fn build(records: &[Recorded], state: &State, verification: Verification) -> Report {
    let who: BTreeMap<u64, (&str, &str)> = records
        .iter()
        .map(|r| (r.seq, (r.operator.as_str(), r.host.as_str())))
        .collect();
    let last_at = records.last().map(|r| r.at);
    let times = key_times(state, last_at);
    let steps: Vec<StepRow> = state
        .attempts()
        .iter()
        .map(|a| step_row(state, a, &times, &who))
        .collect();
    let window = times
        .downtime
        .as_ref()
        .and_then(|d| window::breakdown(&steps, d.start, d.end?));
    let mut report = Report {
        format: REPORT_FORMAT,
        version: REPORT_VERSION,
        rendered_by: env!("CARGO_PKG_VERSION").to_string(),
        run: run_info(records, state, verification.ledger_id),
        plan: plan_summary(state),
        outcome: outcome(state),
        steps,
        window,
        times,
        nodes: lanes::node_lanes(state),
        ha: ha_section(state),
        dumps: dump_rows(state, &verification),
        containers: containers(state),
        failures: failures(state),
        retries: retries(state),
        in_doubt: in_doubt(state),
        rollback: state.rollback().map(|rb| RollbackRow {
            seq: rb.seq,
            at: rb.at,
            reason: rb.reason.clone(),
            from_phase: rb.from_phase,
            steps: rb.keys.clone(),
            completed: state.phase() == Phase::RolledBack,
        }),
        preflight_failures: state
            .preflight_failures()
            .iter()
            .map(|p| PreflightRow {
                seq: p.seq,
                at: p.at,
                failed: p
                    .checks
                    .iter()
                    .filter(|c| !c.ok)
                    .map(|c| format!("{}: {}", c.name, c.detail))
                    .collect(),
                passed: p
                    .checks
                    .iter()
                    .filter(|c| c.ok)
                    .map(|c| c.name.clone())
                    .collect(),
            })
            .collect(),
        notes: state
            .notes()
            .iter()
            .map(|n| NoteRow {
                seq: n.seq,
                at: n.at,
                operator: n.operator.clone(),
                host: n.host.clone(),
                text: n.body.clone(),
            })
            .collect(),
        attestations: attestations(state),
        verification: summarize_verification(records, verification),
        live: None,
        estimate: None,
    };
    report.estimate = estimate::section(
        state.plan().and_then(|p| p.estimate()),
        &report.steps,
        report.times.downtime.as_ref(),
    );
    report
}

fn run_info(records: &[Recorded], state: &State, ledger_id: Uuid) -> RunInfo {
    let operators: BTreeSet<&str> = records.iter().map(|r| r.operator.as_str()).collect();
    let hosts: BTreeSet<&str> = records.iter().map(|r| r.host.as_str()).collect();
    let planned = state.planned();
    RunInfo {
        run_id: state.run_id(),
        ledger_id,
        records: records.len() as u64,
        first_record_at: records.first().map(|r| r.at),
        last_record_at: records.last().map(|r| r.at),
        operators: operators.into_iter().map(str::to_string).collect(),
        hosts: hosts.into_iter().map(str::to_string).collect(),
        planned_by: planned.map(|p| p.2.to_string()),
        planned_on: planned.map(|p| p.3.to_string()),
        planned_at: planned.map(|p| p.1),
    }
}

fn plan_summary(state: &State) -> Option<PlanSummary> {
    let p = state.plan()?;
    Some(PlanSummary {
        tool_version: p.tool_version.clone(),
        source_version: p.source_version.to_string(),
        target_version: p.target_version.to_string(),
        procedure: p.procedure.name().to_string(),
        source_image: p.old_container.image.clone(),
        source_image_id: p.old_container.image_id.clone(),
        target_image: p.target_image.clone(),
        target_image_id: p.target_image_id.clone(),
        plan_digest: state
            .plan_digest()
            .unwrap_or_else(|| p.digest())
            .to_string(),
        metadb: p.metadb.display_url.clone(),
        db_rm: p.databases.rm.clone(),
        db_cm: p.databases.cm.clone(),
        db_cm_hb: p.databases.cm_hb.clone(),
        dump_dir: p.dump_dir(),
        host_ip: p.host_ip.clone(),
        health_url: p.health_url.clone(),
        privileged: p.privileged,
    })
}

fn outcome(state: &State) -> OutcomeSummary {
    let phase = state.phase();
    let path = state
        .plan()
        .map(|p| format!("{} to {}", p.source_version, p.target_version))
        .unwrap_or_default();
    let last_failure = state.failures().last().map(|a| {
        let error = match &a.outcome {
            Some(Outcome::Failed { error, .. }) => error.clone(),
            Some(Outcome::Reconciled {
                finding: Finding::Failed { error, .. },
                ..
            }) => error.clone(),
            _ => String::new(),
        };
        (a.key, error)
    });
    let rollback_reason = state.rollback().map(|r| r.reason.as_str()).unwrap_or("");
    let in_doubt = state.in_doubt();
    let summary = match phase {
        Phase::NotPlanned => format!(
            "No upgrade was planned: {} preflight check run(s) failed.",
            state.preflight_failures().len()
        ),
        Phase::Completed => format!("The upgrade from {path} completed."),
        Phase::RolledBack => {
            format!("The upgrade from {path} was rolled back (reason: {rollback_reason}).")
        }
        Phase::UpgradeFailed => match &last_failure {
            Some((k, e)) => {
                format!("The upgrade from {path} failed at step {k} ({e}) and was not rolled back.")
            }
            None => format!("The upgrade from {path} failed."),
        },
        Phase::RollbackFailed => match &last_failure {
            Some((k, e)) => format!(
                "The upgrade from {path} was being rolled back; rollback step {k} failed ({e}): manual intervention needed."
            ),
            None => format!("The rollback of the upgrade from {path} failed."),
        },
        Phase::Upgrading | Phase::RollingBack => {
            let what = if phase == Phase::Upgrading {
                format!("The upgrade from {path} is in progress")
            } else {
                format!("The rollback of the upgrade from {path} is in progress")
            };
            match (in_doubt, state.attempts().last()) {
                // A deployment's stage can leave one open step per node lane.
                (Some(_), _) if state.in_doubt_all().len() > 1 => format!(
                    "{what}; steps {} are in doubt (intent without outcome).",
                    state
                        .in_doubt_all()
                        .iter()
                        .map(|k| k.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                (Some(k), _) => format!("{what}; step {k} is in doubt (intent without outcome)."),
                (None, Some(a)) => format!(
                    "{what}; the last step recorded is {} ({}).",
                    a.key,
                    StepResult::of(a.outcome.as_ref()).label()
                ),
                (None, None) => format!("{what}; no step has run yet."),
            }
        }
    };
    OutcomeSummary {
        phase,
        summary,
        in_doubt_now: in_doubt,
    }
}

/// The outcome seq of the attempt of `key` whose done facts are the state's.
fn done_seq(state: &State, key: StepKey) -> Option<u64> {
    state
        .attempts()
        .iter()
        .rev()
        .filter(|a| a.key == key)
        .find_map(|a| match &a.outcome {
            Some(Outcome::Done { seq, .. }) => Some(*seq),
            Some(Outcome::Reconciled {
                seq,
                finding: Finding::Done(_),
                ..
            }) => Some(*seq),
            _ => None,
        })
}

fn stop_mark(state: &State, name: &'static str, key: StepKey) -> Option<Mark> {
    match state.facts(key) {
        Some(StepFacts::ContainerStopped(c)) => Some(Mark {
            name,
            at: c.t(),
            instant: if c.stop_requested_at.is_some() {
                STOP_REQUESTED
            } else {
                STOP_SEEN_DONE
            },
            step: key,
            seq: done_seq(state, key)?,
            stop_returned_at: Some(c.stopped_at),
            docker_finished_at: c.docker_finished_at,
        }),
        _ => None,
    }
}

fn key_times(state: &State, last_at: Option<DateTime<Utc>>) -> KeyTimes {
    let t2 = state.t2().and_then(|at| {
        Some(Mark {
            name: "T2",
            at,
            instant: HA_ENABLED,
            step: StepKey::EnableHa,
            seq: done_seq(state, StepKey::EnableHa)?,
            stop_returned_at: None,
            docker_finished_at: None,
        })
    });
    // T1 and T3 are the first stop of any node (a single-node plan has only node 0's).
    let first = |base: StepKey| lanes::first_stop(state, base).map_or(base, |(k, _)| k);
    let t1 = stop_mark(state, "T1", first(StepKey::StopOldContainer));
    let downtime = state.downtime_start().and_then(|start| {
        let end = state.downtime_end();
        let measured_to = end.or(last_at)?.max(start);
        let length = measured_to - start;
        let ended_by = match (end, state.rollback().is_some(), state.t2().is_some()) {
            (None, _, _) => "still down at the last record".to_string(),
            (Some(_), true, _) => "HA re-enabled by the rollback".to_string(),
            (Some(_), false, true) => "HA re-enabled (T2)".to_string(),
            (Some(_), false, false) => {
                "new container confirmed healthy (guide without HA steps)".to_string()
            }
        };
        Some(Downtime {
            start,
            end,
            ended_by,
            ongoing: end.is_none(),
            measured_to,
            duration_ms: length.num_milliseconds(),
            minutes_rounded_up: crate::refetch::downtime_minutes(start, measured_to),
            text: text::duration(length),
        })
    });
    KeyTimes {
        t1,
        t2,
        t3: stop_mark(state, "T3", first(StepKey::StopNewContainer)),
        downtime,
    }
}

/// `T1`/`T2`/`T3` on the attempt whose facts carry the mark.
fn marks_of(a: &Attempt, times: &KeyTimes) -> Vec<&'static str> {
    let done = a.outcome.as_ref().and_then(|o| o.done_facts()).is_some();
    if !done {
        return vec![];
    }
    [&times.t1, &times.t2, &times.t3]
        .into_iter()
        .flatten()
        .filter(|m| m.step == a.key)
        .map(|m| m.name)
        .collect()
}

fn step_row(
    state: &State,
    a: &Attempt,
    times: &KeyTimes,
    who: &BTreeMap<u64, (&str, &str)>,
) -> StepRow {
    let detail = match &a.outcome {
        None => "intent recorded, no outcome: the process stopped while the step ran".to_string(),
        Some(Outcome::Done { facts, .. }) => {
            let mut line = text::facts(facts);
            // issue 16: a table swap's rows are counted after T2, by the region's
            // `drop-pruned-heartbeat`; its count completes the prune's line.
            if let Some(drop) = a
                .key
                .region()
                .map(|r| StepKey::DropPrunedHeartbeat.in_region(r))
                && line.ends_with(text::SWAPPED_ROWS_COUNTED)
                && let Some(StepFacts::PrunedHeartbeatDropped { rows: Some(n), .. }) =
                    state.facts(drop)
            {
                line.push_str(&format!(": {n}"));
            }
            line
        }
        Some(Outcome::Failed { error, facts, .. }) => match facts {
            Some(f) => format!("{error} (observed: {})", text::facts(f)),
            None => error.clone(),
        },
        Some(Outcome::Reconciled {
            finding, evidence, ..
        }) => match finding {
            Finding::Done(f) => format!("{}; found by inspecting {evidence}", text::facts(f)),
            Finding::NotDone => format!("had not happened; found by inspecting {evidence}"),
            Finding::Failed { error, .. } => format!("{error}; found by inspecting {evidence}"),
            Finding::Undecided { why } => {
                format!("undecided: {why}; found by inspecting {evidence}")
            }
        },
    };
    let host = who.get(&a.intent_seq).map(|w| w.1).unwrap_or_default();
    StepRow {
        key: a.key,
        title: text::title(a.key),
        rollback: a.key.is_rollback(),
        attempt: a.number,
        intent_seq: a.intent_seq,
        started_at: a.intent_at,
        outcome_seq: a.outcome.as_ref().map(outcome_seq),
        ended_at: a.outcome.as_ref().map(Outcome::at),
        duration_ms: a.duration().map(|d| d.num_milliseconds()),
        result: StepResult::of(a.outcome.as_ref()),
        marks: marks_of(a, times),
        detail,
        operator: a.operator.clone(),
        host: host.to_string(),
        node: lanes::lane_of(state, a.key),
    }
}

fn outcome_seq(o: &Outcome) -> u64 {
    match o {
        Outcome::Done { seq, .. }
        | Outcome::Failed { seq, .. }
        | Outcome::Reconciled { seq, .. } => *seq,
    }
}

fn ha_section(state: &State) -> HaSection {
    let plan = state.plan();
    let ha_keys = [
        StepKey::DisableHa,
        StepKey::EnableHa,
        StepKey::RollbackDisableHa,
        StepKey::RollbackEnableHa,
    ];
    let mut changes = Vec::new();
    for a in state.attempts().iter().filter(|a| ha_keys.contains(&a.key)) {
        let Some(o) = &a.outcome else { continue };
        let facts = match o {
            Outcome::Failed {
                facts: Some(f @ StepFacts::HaDisabled(_)),
                ..
            } => Some(f),
            other => other.done_facts(),
        };
        match facts {
            Some(StepFacts::HaDisabled(h)) => changes.push(HaChange {
                step: a.key,
                action: "disable",
                at: o.at(),
                previous_json: h.previous_json.clone(),
                written_json: h.written_json.clone(),
                mode: h.mode,
                refetch: None,
                attestation: h.attestation.clone(),
            }),
            Some(StepFacts::HaEnabled(h)) => changes.push(HaChange {
                step: a.key,
                action: "enable",
                at: h.enabled_at,
                previous_json: h.previous_json.clone(),
                written_json: Some(h.written_json.clone()),
                mode: h.mode,
                refetch: h.refetch.clone(),
                attestation: h.attestation.clone(),
            }),
            _ => {}
        }
    }
    let before = state.ha_before().map(str::to_string);
    let after = state.ha_after().map(str::to_string);
    let changed_keys = match (&before, &after) {
        (Some(b), Some(a)) => changed_keys(b, a),
        _ => vec![],
    };
    let warnings = changes
        .iter()
        .filter_map(|c| c.refetch.as_ref()?.warning.clone())
        .collect();
    HaSection {
        mode: plan.map(|p| p.ha_mode),
        after_policy: plan.map(|p| p.ha_after),
        policy: plan.map(|p| p.refetch),
        before_json: before,
        after_json: after,
        changed_keys,
        changes,
        refetch: state.refetch_decision().cloned(),
        warnings,
    }
}

/// Top-level keys whose values differ; empty when either side is not a JSON object.
fn changed_keys(before: &str, after: &str) -> Vec<KeyChange> {
    let parse = |s: &str| match serde_json::from_str::<serde_json::Value>(s) {
        Ok(serde_json::Value::Object(m)) => Some(m),
        _ => None,
    };
    let (Some(b), Some(a)) = (parse(before), parse(after)) else {
        return vec![];
    };
    let keys: BTreeSet<&String> = b.keys().chain(a.keys()).collect();
    keys.into_iter()
        .filter(|k| b.get(*k) != a.get(*k))
        .map(|k| KeyChange {
            key: k.clone(),
            before: b.get(k).map(|v| v.to_string()),
            after: a.get(k).map(|v| v.to_string()),
        })
        .collect()
}

fn dump_rows(state: &State, verification: &Verification) -> Vec<DumpRow> {
    let rollback_checks: Vec<DumpCheck> = match state.facts(StepKey::RollbackVerifyDumps) {
        Some(StepFacts::DumpsVerified { checks }) => checks.clone(),
        _ => vec![],
    };
    state
        .artifacts()
        .into_iter()
        .map(|a| {
            let key = StepKey::Dump { db: a.db };
            let recorded_at = state
                .attempts()
                .iter()
                .rev()
                .filter(|t| t.key == key)
                .find_map(|t| t.outcome.as_ref().filter(|o| o.done_facts().is_some()))
                .map(Outcome::at);
            let restore_key = StepKey::Restore { db: a.db };
            let restore = match state.facts(restore_key) {
                Some(StepFacts::Restored(r)) => Some(RestoreRow {
                    at: state
                        .attempts()
                        .iter()
                        .rev()
                        .filter(|t| t.key == restore_key)
                        .find_map(|t| t.outcome.as_ref())
                        .map(Outcome::at)
                        .unwrap_or_default(),
                    verified_blake3: r.verified_blake3.clone(),
                    tables_match: r.tables_match,
                    tables: r.tables.clone(),
                }),
                _ => None,
            };
            DumpRow {
                db: a.db,
                database: a.database.clone(),
                file: a.file.clone(),
                size: a.size,
                blake3: a.blake3_hex.clone(),
                format: a.format.word().into(),
                compression: a.compression.word().into(),
                dumper: a.dumper.word().into(),
                charset: a.charset.clone(),
                collation: a.collation.clone(),
                recorded_at,
                total_rows: a.tables.iter().map(|t| t.rows).sum(),
                tables: a.tables.clone(),
                file_check: verification
                    .dumps
                    .iter()
                    .find(|c| c.db == a.db && c.file == a.file)
                    .cloned(),
                rollback_check: rollback_checks.iter().find(|c| c.db == a.db).cloned(),
                restore,
            }
        })
        .collect()
}

fn containers(state: &State) -> Containers {
    let old = state.plan().map(|p| OldContainer {
        id: p.old_container.id.clone(),
        name: p.old_container.name.clone(),
        image: p.old_container.image.clone(),
        image_id: p.old_container.image_id.clone(),
        binds: p.old_container.binds.clone(),
        env: p.old_container.env.iter().map(|e| e.to_string()).collect(),
        labels: p.old_container.labels.clone(),
        renamed_to: p.old_renamed_to.clone(),
    });
    let started_at = match state.facts(StepKey::StartNewContainer) {
        Some(StepFacts::NewContainerStarted { started_at, .. }) => *started_at,
        _ => None,
    };
    let new = state.new_container().map(|n| NewContainerRow {
        id: n.id.clone(),
        name: n.name.clone(),
        image: n.image.clone(),
        image_id: n.image_id.clone(),
        binds: n.binds.clone(),
        env: n.env.iter().map(|e| e.to_string()).collect(),
        binds_equal_to_old: n.binds_equal_to_old,
        started_at,
    });
    let old_binds: BTreeSet<&String> = old.iter().flat_map(|o| o.binds.iter()).collect();
    let new_binds: BTreeSet<&String> = new.iter().flat_map(|n| n.binds.iter()).collect();
    let binds = old_binds
        .union(&new_binds)
        .map(|b| BindRow {
            bind: (*b).clone(),
            old: old_binds.contains(b),
            new: new_binds.contains(b),
        })
        .collect();
    let renames = state
        .attempts()
        .iter()
        .filter_map(|a| {
            let o = a.outcome.as_ref()?;
            match o.done_facts()? {
                StepFacts::ContainerRenamed { id, from, to } => Some(RenameRow {
                    step: a.key,
                    at: o.at(),
                    id: id.clone(),
                    from: from.clone(),
                    to: to.clone(),
                }),
                _ => None,
            }
        })
        .collect();
    Containers {
        old,
        new,
        binds,
        renames,
    }
}

fn failures(state: &State) -> Vec<FailureRow> {
    state
        .failures()
        .into_iter()
        .filter_map(|a| match a.outcome.as_ref()? {
            Outcome::Failed {
                seq,
                at,
                error,
                retryable,
                facts,
                kind,
            } => Some(FailureRow {
                key: a.key,
                attempt: a.number,
                seq: *seq,
                at: *at,
                error: error.clone(),
                retryable: *retryable,
                kind: *kind,
                reconciled: false,
                observed: facts.as_ref().map(text::facts),
            }),
            Outcome::Reconciled {
                seq,
                at,
                finding:
                    Finding::Failed {
                        error,
                        retryable,
                        kind,
                    },
                evidence,
            } => Some(FailureRow {
                key: a.key,
                attempt: a.number,
                seq: *seq,
                at: *at,
                error: error.clone(),
                retryable: *retryable,
                kind: *kind,
                reconciled: true,
                observed: Some(evidence.clone()),
            }),
            _ => None,
        })
        .collect()
}

fn retries(state: &State) -> Vec<RetryRow> {
    let attempts = state.attempts();
    attempts
        .iter()
        .enumerate()
        .filter(|(_, a)| a.number > 1)
        .map(|(i, a)| {
            let previous = attempts[..i]
                .iter()
                .rev()
                .find(|p| p.key == a.key)
                .map(|p| StepResult::of(p.outcome.as_ref()))
                .unwrap_or(StepResult::InDoubt);
            RetryRow {
                key: a.key,
                attempt: a.number,
                at: a.intent_at,
                after: previous,
                result: StepResult::of(a.outcome.as_ref()),
            }
        })
        .collect()
}

fn in_doubt(state: &State) -> Vec<InDoubtRow> {
    state
        .attempts()
        .iter()
        .filter(|a| matches!(a.outcome, None | Some(Outcome::Reconciled { .. })))
        .map(|a| {
            let (resolved_at, evidence) = match &a.outcome {
                Some(Outcome::Reconciled { at, evidence, .. }) => {
                    (Some(*at), Some(evidence.clone()))
                }
                _ => (None, None),
            };
            InDoubtRow {
                key: a.key,
                attempt: a.number,
                intent_at: a.intent_at,
                resolved_at,
                result: StepResult::of(a.outcome.as_ref()),
                evidence,
            }
        })
        .collect()
}

fn attestations(state: &State) -> Vec<AttestationRow> {
    let mut rows: Vec<AttestationRow> = state
        .attestations()
        .iter()
        .map(|r| AttestationRow {
            seq: r.seq,
            at: r.at,
            operator: r.operator.clone(),
            source: "attestation".into(),
            by: r.body.by.clone(),
            statement: r.body.statement.clone(),
            step: r.body.step,
            observed_at: r.body.observed_at,
        })
        .collect();
    for a in state.attempts() {
        let Some(o) = &a.outcome else { continue };
        let att = match o {
            Outcome::Failed {
                facts: Some(StepFacts::HaDisabled(h)),
                ..
            } => h.attestation.as_ref(),
            other => match other.done_facts() {
                Some(StepFacts::HaDisabled(h)) => h.attestation.as_ref(),
                Some(StepFacts::HaEnabled(h)) => h.attestation.as_ref(),
                _ => None,
            },
        };
        if let Some(att) = att {
            rows.push(AttestationRow {
                seq: outcome_seq(o),
                at: o.at(),
                operator: a.operator.clone(),
                source: a.key.to_string(),
                by: att.by.clone(),
                statement: att.statement.clone(),
                step: att.step.or(Some(a.key)),
                observed_at: att.observed_at,
            });
        }
    }
    // An operator's decision about an undecided step (issue 12.1) is an attestation too.
    rows.extend(state.resolutions().iter().map(|r| AttestationRow {
        seq: r.seq,
        at: r.at,
        operator: r.operator.clone(),
        source: crate::events::types::STEP_RESOLVED.into(),
        by: r.body.by.clone(),
        statement: format!(
            "decided {}: {} (answers the evidence of record {})",
            r.body.resolution, r.body.reason, r.body.reconciled_seq
        ),
        step: Some(r.body.key),
        observed_at: None,
    }));
    rows.sort_by_key(|r| r.seq);
    rows
}

fn summarize_verification(records: &[Recorded], v: Verification) -> VerificationSummary {
    let mut findings = Vec::new();
    if let Some(p) = &v.problem {
        findings.push(format!(
            "ledger verify found {} at seq {}: {}",
            p.kind, p.seq, p.detail
        ));
    }
    if let Some(a) = &v.anchor
        && !a.matched
    {
        findings.push(format!(
            "the ledger does not match the checkpoint (seq {}, head {})",
            a.seq, a.head
        ));
    }
    let last_seq = records.last().map(|r| r.seq);
    if v.chain_intact && v.head_seq != last_seq {
        findings.push(format!(
            "the report covers records up to seq {} but the verified head is seq {}",
            last_seq.map_or("none".into(), |s| s.to_string()),
            v.head_seq.map_or("none".into(), |s| s.to_string()),
        ));
    }
    for d in &v.dumps {
        if !d.present {
            findings.push(format!(
                "dump {} ({}) is missing or unreadable: {}",
                d.file,
                d.db,
                d.error.as_deref().unwrap_or("not found")
            ));
        } else if !d.matches {
            findings.push(format!(
                "dump {} ({}) differs from the record: found {} bytes, BLAKE3 {}",
                d.file,
                d.db,
                d.found_size.unwrap_or_default(),
                d.found_blake3.as_deref().unwrap_or("?")
            ));
        }
    }
    let dumps_ok = v.dumps.iter().all(|d| d.present && d.matches);
    VerificationSummary {
        ok: findings.is_empty(),
        facts: v,
        dumps_ok,
        findings,
    }
}

/// Milliseconds as a [`Duration`] (for renderers).
pub(crate) fn ms(ms: i64) -> Duration {
    Duration::milliseconds(ms)
}

#[cfg(test)]
mod tests;
