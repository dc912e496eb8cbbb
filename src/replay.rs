//! Folds a run's recorded events into a [`State`], and decides from it what may happen
//! next. State is derived, never stored: the executor replays the ledger on every start.
//!
//! Rules the state enforces ([`State::apply`] rejects anything else, with a reason):
//!
//! - One ledger, one run: the first record fixes the run id; records of another run are
//!   rejected. Failed preflights (`preflight.failed`) may precede the plan; a retried
//!   `init` reuses the run id ([`State::run_id`]). Sequence numbers strictly increase.
//! - `run.planned` comes once, first (after preflights), with a digest that matches the
//!   plan and the plan's run id equal to the record's.
//! - Steps run in the procedure's order ([`crate::steps::upgrade_keys`]), one at a time:
//!   `step.intent` only for the step [`State::permitted`] returns; then exactly one
//!   outcome for it: `step.done` (facts of the right kind that do not contradict
//!   success), `step.failed`, or, after a crash, `step.reconciled` (what reality showed).
//!   While a step is in doubt (intent without outcome) nothing but its outcome, notes and
//!   attestations is accepted.
//! - A failed step may get a new intent when the failure was retryable; otherwise the
//!   upgrade is failed and only a rollback can follow.
//! - `rollback.requested` is accepted when nothing is in doubt and the run is upgrading,
//!   failed or completed; the rollback's steps are fixed at that moment from what the
//!   upgrade touched ([`crate::steps::rollback_keys`]): a restore needs all three dumps,
//!   a rollback before T1 just puts HA back. A second rollback is never accepted.
//! - `enable-ha`/`rollback-enable-ha` done must carry a refetch decision measured from
//!   the downtime start that covers the actual time HA was enabled.
//! - Notes and attestations are accepted in every phase.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::events::{
    Attestation, DumpArtifact, Event, FailureKind, Finding, HaDisabled, HaEnabled, MetaDb,
    NewContainer, NodeIx, Plan, PlanDigest, PreflightCheck, Recorded, RegionIx, Resolution,
    StepFacts, StepKey, StepResolved, TableFact,
};
use crate::haconfig::HaConfig;
use crate::refetch::RefetchDecision;
use crate::steps::{self, BuildError, Context, Step, Touched};

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// No plan recorded yet (maybe failed preflights).
    NotPlanned,
    /// Upgrade steps are running (or one failed retryably, or one is in doubt).
    Upgrading,
    /// An upgrade step failed and may not be retried: roll back.
    UpgradeFailed,
    /// The upgrade completed.
    Completed,
    /// Rollback steps are running.
    RollingBack,
    /// A rollback step failed and may not be retried: manual intervention needed.
    RollbackFailed,
    /// The rollback completed.
    RolledBack,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::NotPlanned => "not planned",
            Phase::Upgrading => "upgrading",
            Phase::UpgradeFailed => "upgrade failed",
            Phase::Completed => "completed",
            Phase::RollingBack => "rolling back",
            Phase::RollbackFailed => "rollback failed",
            Phase::RolledBack => "rolled back",
        })
    }
}

/// A step's latest status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum StepStatus {
    /// Not run yet, or reconciled as not done.
    Pending,
    /// Intent recorded, no outcome: resolve by looking at reality.
    InDoubt,
    /// Done.
    Done,
    /// Failed.
    Failed {
        /// May run again.
        retryable: bool,
    },
    /// issue 12.1: reconciled, but reality could not settle it; waits for an operator's
    /// `step.resolved` (or a rollback).
    Undecided,
}

/// How one attempt of a step ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// `step.done`.
    Done {
        /// Record seq.
        seq: u64,
        /// Record time.
        at: DateTime<Utc>,
        /// Facts.
        facts: StepFacts,
    },
    /// `step.failed`.
    Failed {
        /// Record seq.
        seq: u64,
        /// Record time.
        at: DateTime<Utc>,
        /// Error.
        error: String,
        /// May run again.
        retryable: bool,
        /// Observed facts.
        facts: Option<StepFacts>,
        /// What kind of failure the record says it was (issue 13).
        kind: FailureKind,
    },
    /// `step.reconciled`.
    Reconciled {
        /// Record seq.
        seq: u64,
        /// Record time.
        at: DateTime<Utc>,
        /// What reality showed.
        finding: Finding,
        /// How.
        evidence: String,
    },
}

impl Outcome {
    /// Time of the outcome record.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Outcome::Done { at, .. }
            | Outcome::Failed { at, .. }
            | Outcome::Reconciled { at, .. } => *at,
        }
    }

    /// The facts of a successful outcome (done, or reconciled as done).
    pub fn done_facts(&self) -> Option<&StepFacts> {
        match self {
            Outcome::Done { facts, .. } => Some(facts),
            Outcome::Reconciled {
                finding: Finding::Done(f),
                ..
            } => Some(f),
            _ => None,
        }
    }
}

/// One attempt of a step: its intent and, unless in doubt, its outcome. The timeline of
/// a report (with durations: outcome time minus intent time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// The step.
    pub key: StepKey,
    /// 1 for the first attempt.
    pub number: u32,
    /// Intent record seq.
    pub intent_seq: u64,
    /// Intent record time.
    pub intent_at: DateTime<Utc>,
    /// Operator of the intent record.
    pub operator: String,
    /// Outcome, `None` while in doubt.
    pub outcome: Option<Outcome>,
}

impl Attempt {
    /// Outcome time minus intent time, when there is an outcome.
    pub fn duration(&self) -> Option<Duration> {
        self.outcome.as_ref().map(|o| o.at() - self.intent_at)
    }
}

/// An operator's note or attestation, with the record's who/when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Remark<T> {
    /// Record seq.
    pub seq: u64,
    /// Record time.
    pub at: DateTime<Utc>,
    /// Record operator.
    pub operator: String,
    /// Record host.
    pub host: String,
    /// The note text or attestation.
    pub body: T,
}

/// The rollback, once requested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RollbackInfo {
    /// Record seq.
    pub seq: u64,
    /// Record time.
    pub at: DateTime<Utc>,
    /// Why.
    pub reason: String,
    /// The phase it was requested in.
    pub from_phase: Phase,
    /// Its steps, fixed at the request.
    pub keys: Vec<StepKey>,
}

/// A recorded `preflight.failed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreflightFailure {
    /// Record seq.
    pub seq: u64,
    /// Record time.
    pub at: DateTime<Utc>,
    /// The checks.
    pub checks: Vec<PreflightCheck>,
}

/// Why an event is not accepted in a state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The record belongs to another run.
    #[error(
        "record belongs to run {found}, but this ledger records run {expected}; use a separate ledger folder per run"
    )]
    WrongRun {
        /// This ledger's run.
        expected: Uuid,
        /// The record's.
        found: Uuid,
    },
    /// Sequence numbers must increase.
    #[error("record seq {found} does not follow seq {last}")]
    SeqNotIncreasing {
        /// The last applied seq.
        last: u64,
        /// The record's.
        found: u64,
    },
    /// Steps and rollbacks need a plan first.
    #[error("`{event_type}` before the run is planned; run `oms-upgrade init` first")]
    NotPlanned {
        /// The event type.
        event_type: &'static str,
    },
    /// Only one plan per run.
    #[error("the run is already planned; a ledger records one run")]
    AlreadyPlanned,
    /// The plan names another run id than its record.
    #[error("the plan is for run {plan} but its record is of run {record}")]
    PlanRunMismatch {
        /// In the plan.
        plan: Uuid,
        /// In the record.
        record: Uuid,
    },
    /// The recorded digest does not match the plan.
    #[error("plan digest {recorded} does not match the plan (computed {computed})")]
    PlanDigestMismatch {
        /// Recorded.
        recorded: PlanDigest,
        /// Computed.
        computed: PlanDigest,
    },
    /// Preflight failures belong before the plan.
    #[error("a preflight failure after the run was planned")]
    PreflightAfterPlan,
    /// Another step is in doubt.
    #[error(
        "step {in_doubt} is in doubt (intent without outcome): reconcile it against reality first"
    )]
    InDoubt {
        /// The step in doubt.
        in_doubt: StepKey,
    },
    /// The step may not start now.
    #[error("step {key} is not permitted now (phase {phase}; permitted: {})", fmt_keys(.permitted))]
    NotPermitted {
        /// The step.
        key: StepKey,
        /// The phase.
        phase: Phase,
        /// What is permitted.
        permitted: Vec<StepKey>,
    },
    /// An outcome for a step that has no open intent.
    #[error("outcome for step {key} without an open intent")]
    NoIntent {
        /// The step.
        key: StepKey,
    },
    /// The facts do not fit the step, or contradict success.
    #[error("facts recorded for step {key} are not acceptable: {reason}")]
    BadFacts {
        /// The step.
        key: StepKey,
        /// Why.
        reason: String,
    },
    /// A rollback may not be requested now.
    #[error("rollback not possible: {reason}")]
    RollbackRefused {
        /// Why.
        reason: String,
    },
    /// issue 12.1: a decision for a step that is not waiting for one.
    #[error("step {key} is not awaiting a decision: {reason}")]
    NotAwaitingDecision {
        /// The step named.
        key: StepKey,
        /// What the run is waiting for instead.
        reason: String,
    },
    /// issue 12.1: a decision without a reason or without who made it.
    #[error("a decision about step {key} is not acceptable: {reason}")]
    BadResolution {
        /// The step.
        key: StepKey,
        /// Why.
        reason: String,
    },
}

/// A step whose reconciliation found [`Finding::Undecided`] and that waits for an operator's
/// decision ([`State::awaiting_decision`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AwaitingDecision {
    /// The step.
    pub key: StepKey,
    /// The seq of the `step.reconciled` record (a decision names it).
    pub reconciled_seq: u64,
    /// What cannot be proven.
    pub why: String,
    /// What was inspected and found.
    pub evidence: String,
}

impl AwaitingDecision {
    /// The command that records a decision (the reason is the operator's to write).
    pub fn resolve_command(&self) -> String {
        format!(
            "oms-upgrade resolve {} --as done|not-done --reason \"what you checked\"",
            self.key
        )
    }

    /// What the operator is told: what was found, what cannot be proven, and the choices.
    pub fn explain(&self) -> String {
        format!(
            "step {key} was interrupted and reality cannot settle whether it took effect: {why}. \
             Evidence (record {seq}): {evidence}. It is not run again on a guess: check the \
             evidence, then record your decision with `{cmd}` (done: it completed, the run goes \
             on with the next step; not-done: it never took effect, the run performs it), or \
             roll back with `oms-upgrade rollback`",
            key = self.key,
            why = self.why,
            seq = self.reconciled_seq,
            evidence = self.evidence,
            cmd = self.resolve_command(),
        )
    }
}

fn fmt_keys(k: &[StepKey]) -> String {
    if k.is_empty() {
        "none".into()
    } else {
        k.iter()
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A record that replay refused: the ledger's content is inconsistent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record seq {seq}: {rejection}")]
pub struct ReplayError {
    /// The first refused record.
    pub seq: u64,
    /// Why.
    pub rejection: Rejection,
}

/// What the executor should do next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "next", rename_all = "snake_case")]
pub enum Next {
    /// Record a plan (`init`).
    Plan,
    /// A step is in doubt: look at reality and record `step.reconciled`.
    Reconcile {
        /// The step in doubt.
        step: Step,
    },
    /// Run this step (intent, perform, outcome).
    Run {
        /// The step.
        step: Step,
        /// It failed before (retryable) and this is a retry.
        retry: bool,
    },
    /// Nothing can run: the upgrade failed (roll back if [`State::can_rollback`]) or the
    /// rollback failed (manual intervention).
    Blocked {
        /// Why, and what to do.
        reason: String,
    },
    /// The run is over (completed or rolled back). A completed upgrade may still be
    /// rolled back.
    Finished {
        /// Completed or RolledBack.
        phase: Phase,
    },
}

/// Everything known about a run, derived from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    run_id: Option<Uuid>,
    last_seq: Option<u64>,
    plan: Option<Box<Plan>>,
    digest: Option<PlanDigest>,
    planned: Option<(u64, DateTime<Utc>, String, String)>,
    preflight: Vec<PreflightFailure>,
    attempts: Vec<Attempt>,
    status: BTreeMap<StepKey, StepStatus>,
    facts: BTreeMap<StepKey, StepFacts>,
    rollback: Option<RollbackInfo>,
    notes: Vec<Remark<String>>,
    attestations: Vec<Remark<Attestation>>,
    resolutions: Vec<Remark<StepResolved>>,
    /// `step.tables` slices recorded for the open (in-doubt) step, joined in front of the
    /// tables its outcome carries.
    pending_tables: Vec<TableFact>,
}

/// Folds `events` into a state, or reports the first record that does not fit. The fold of
/// the ledger's one read side, [`crate::history::load`], which decodes the records first.
pub fn replay(events: &[Recorded]) -> Result<State, ReplayError> {
    let mut s = State::default();
    for r in events {
        s.apply(r).map_err(|rejection| ReplayError {
            seq: r.seq,
            rejection,
        })?;
    }
    Ok(s)
}

impl State {
    /// An empty state (no events).
    pub fn new() -> State {
        State::default()
    }

    /// Applies one record, or rejects it leaving the state unchanged.
    pub fn apply(&mut self, r: &Recorded) -> Result<(), Rejection> {
        if let Some(last) = self.last_seq
            && r.seq <= last
        {
            return Err(Rejection::SeqNotIncreasing { last, found: r.seq });
        }
        self.check(r.run_id, &r.event)?;
        self.commit(r);
        Ok(())
    }

    /// Returns the state with `r` applied (a convenience over [`State::apply`]).
    pub fn applied(&self, r: &Recorded) -> Result<State, Rejection> {
        let mut s = self.clone();
        s.apply(r)?;
        Ok(s)
    }

    /// Checks that `event`, recorded for `run_id`, would be accepted now. The executor
    /// calls this before appending, so nothing unacceptable reaches the ledger.
    pub fn check(&self, run_id: Uuid, event: &Event) -> Result<(), Rejection> {
        if let Some(expected) = self.run_id
            && expected != run_id
        {
            return Err(Rejection::WrongRun {
                expected,
                found: run_id,
            });
        }
        match event {
            Event::Note { .. } | Event::Attestation(_) => Ok(()),
            Event::PreflightFailed { .. } => match self.plan {
                None => Ok(()),
                Some(_) => Err(Rejection::PreflightAfterPlan),
            },
            Event::RunPlanned { plan, digest } => {
                if self.plan.is_some() {
                    return Err(Rejection::AlreadyPlanned);
                }
                if plan.run_id != run_id {
                    return Err(Rejection::PlanRunMismatch {
                        plan: plan.run_id,
                        record: run_id,
                    });
                }
                let computed = plan.digest();
                if computed != *digest {
                    return Err(Rejection::PlanDigestMismatch {
                        recorded: *digest,
                        computed,
                    });
                }
                Ok(())
            }
            _ if self.plan.is_none() => Err(Rejection::NotPlanned {
                event_type: event.type_name(),
            }),
            Event::StepIntent { key } => {
                // Steps of one stage run side by side (a deployment's nodes): another
                // lane's open step is not in doubt yet, it is running. Anything open
                // outside the current stage is.
                let stage = self.current_stage();
                let in_stage = |k: &StepKey| stage.iter().flatten().any(|s| s == k);
                if let Some(d) = self
                    .open_keys()
                    .into_iter()
                    .find(|k| !in_stage(k) || !in_stage(key) || k == key)
                {
                    return Err(Rejection::InDoubt { in_doubt: d });
                }
                let permitted = self.permitted_keys();
                if permitted.contains(key)
                    || self.legacy_stop_without_check(*key)
                    || self.legacy_complete_without_drop(*key)
                    || self.may_start_new_again(*key)
                {
                    Ok(())
                } else {
                    Err(Rejection::NotPermitted {
                        key: *key,
                        phase: self.phase(),
                        permitted,
                    })
                }
            }
            Event::StepDone { key, facts } => {
                self.require_open(*key)?;
                self.check_done_facts(*key, &self.joined(*key, facts)?)
            }
            Event::StepFailed { key, facts, .. } => {
                self.require_open(*key)?;
                match facts {
                    Some(f) if !key.accepts(f) => Err(Rejection::BadFacts {
                        key: *key,
                        reason: "facts of another kind of step".into(),
                    }),
                    Some(f) => self.joined(*key, f).map(|_| ()),
                    None => Ok(()),
                }
            }
            Event::StepReconciled { key, finding, .. } => {
                self.require_open(*key)?;
                match finding {
                    Finding::Done(f) => self.check_done_facts(*key, &self.joined(*key, f)?),
                    Finding::NotDone | Finding::Failed { .. } | Finding::Undecided { .. } => Ok(()),
                }
            }
            Event::StepResolved(d) => self.check_resolved(d),
            Event::StepTables { key, first, tables } => {
                self.require_open(*key)?;
                let bad = |reason: String| Err(Rejection::BadFacts { key: *key, reason });
                if !matches!(key, StepKey::Dump { .. } | StepKey::Restore { .. }) {
                    return bad("only a dump or a restore records per-table facts".into());
                }
                if *first as usize != self.pending_tables.len() {
                    return bad(format!(
                        "a slice of table facts starting at table {first}, but {} are recorded \
                         so far (a slice is missing or repeated)",
                        self.pending_tables.len()
                    ));
                }
                if tables.is_empty() {
                    return bad("an empty slice of table facts".into());
                }
                Ok(())
            }
            Event::RollbackRequested { .. } => self.rollback_keys().map(|_| ()),
        }
    }

    /// A decision is accepted only for the step the run waits on, answering the
    /// reconciliation that left it undecided, with a reason and who decided.
    fn check_resolved(&self, d: &StepResolved) -> Result<(), Rejection> {
        let key = d.key;
        let refuse = |reason: String| Err(Rejection::NotAwaitingDecision { key, reason });
        if let Some(k) = self.in_doubt() {
            return refuse(format!(
                "step {k} is in doubt and has not been checked against reality yet; `oms-upgrade run` (or `rollback`) checks it first"
            ));
        }
        let Some(w) = self.awaiting_decision() else {
            return refuse(match self.next() {
                Next::Finished { phase } => format!("the run is over ({phase})"),
                Next::Run { step, .. } => format!("the next step is {}", step.key()),
                Next::Blocked { reason } => reason,
                Next::Plan | Next::Reconcile { .. } => "nothing waits for a decision".into(),
            });
        };
        if w.key != key {
            return refuse(format!("the step awaiting a decision is {}", w.key));
        }
        if w.reconciled_seq != d.reconciled_seq {
            return refuse(format!(
                "the decision answers record {}, but the evidence is record {}",
                d.reconciled_seq, w.reconciled_seq
            ));
        }
        let bad = |reason: &str| {
            Err(Rejection::BadResolution {
                key,
                reason: reason.into(),
            })
        };
        if d.reason.trim().is_empty() {
            return bad("the reason is empty");
        }
        if d.by.trim().is_empty() {
            return bad("who decided is not named");
        }
        Ok(())
    }

    /// `facts` with the `step.tables` slices recorded for the open step joined in front of
    /// its own tables. Slices recorded for an outcome that carries no tables are refused:
    /// they would vanish.
    fn joined(&self, key: StepKey, facts: &StepFacts) -> Result<StepFacts, Rejection> {
        let mut f = facts.clone();
        if self.pending_tables.is_empty() {
            return Ok(f);
        }
        match f.tables_mut() {
            Some(tables) => {
                let mut all = self.pending_tables.clone();
                all.append(tables);
                *tables = all;
                Ok(f)
            }
            None => Err(Rejection::BadFacts {
                key,
                reason: format!(
                    "{} table facts were recorded for this step, but its outcome carries no tables",
                    self.pending_tables.len()
                ),
            }),
        }
    }

    /// A ledger written before `pre-stop-check` existed goes from `disable-ha` (or the
    /// plan) straight to `stop-old`; it must still replay. This tool never records that
    /// (it runs what [`State::next`] says), and once the check was attempted it is required.
    fn legacy_stop_without_check(&self, key: StepKey) -> bool {
        key == StepKey::StopOldContainer
            && self.rollback.is_none()
            && self.cursor() == Some(StepKey::PreStopCheck)
            && !self.attempted(StepKey::PreStopCheck)
    }

    /// True when `key` is `start-new` and the new container may be started again: it
    /// was started, but the steps that need it running (`check-supervisor`,
    /// `docker-init`) have not run yet (or may be retried), so a container merely stopped
    /// since then is started again, recorded as another attempt, instead of failing the
    /// exec. Starting a running container changes nothing, so the core need not know
    /// whether it is stopped: the executor asks only when it found it so.
    /// A deployment's node: the same, for that node's `start-new` and the next step of
    /// its own lane (or its `docker-init`).
    pub fn may_start_new_again(&self, key: StepKey) -> bool {
        if key.base() != StepKey::StartNewContainer
            || self.rollback.is_some()
            || self.in_doubt().is_some()
            || self.status_of(key) != StepStatus::Done
        {
            return false;
        }
        // The node's next step: the head of its lane in the current stage.
        let next = self.heads().into_iter().find(|k| k.node() == key.node());
        match next {
            Some(k) if matches!(k.base(), StepKey::CheckSupervisor | StepKey::RunDockerInit) => {
                matches!(
                    self.status_of(k),
                    StepStatus::Pending | StepStatus::Failed { retryable: true }
                )
            }
            _ => false,
        }
    }

    fn require_open(&self, key: StepKey) -> Result<(), Rejection> {
        if self.open_keys().contains(&key) {
            Ok(())
        } else {
            Err(Rejection::NoIntent { key })
        }
    }

    fn check_done_facts(&self, key: StepKey, facts: &StepFacts) -> Result<(), Rejection> {
        let bad = |reason: String| Err(Rejection::BadFacts { key, reason });
        if !key.accepts(facts) {
            return bad("facts of another kind of step".into());
        }
        if let Some(c) = facts.contradiction() {
            return bad(format!("{c}; record step.failed instead"));
        }
        // The plan as the step's node or region sees it (the plan itself for node 0).
        let plan = &*self.plan_for(key);
        match facts {
            StepFacts::NewContainerCreated(n) if n.old_binds != plan.old_container.binds => {
                return bad("old_binds are not the planned old container's binds".into());
            }
            // The plan vouches for the image id, not the tag: a new container of another
            // image is not the upgrade that was planned.
            StepFacts::NewContainerCreated(n)
                if plan.target_image_id.is_some() && n.image_id != plan.target_image_id =>
            {
                return bad(format!(
                    "the new container runs image {}, the plan names {}",
                    n.image_id.as_deref().unwrap_or("(unknown)"),
                    plan.target_image_id.as_deref().unwrap_or_default()
                ));
            }
            StepFacts::RestartPolicySet { after, .. }
                if key == StepKey::OldRestartOff && !after.is_no() =>
            {
                return bad(format!(
                    "the old container's restart policy is {after} after the step, not no"
                ));
            }
            StepFacts::DumpWritten(a) if a.database != plan.databases.get(a.db) => {
                return bad(format!(
                    "dump of `{}` but the {} database is `{}`",
                    a.database,
                    a.db,
                    plan.databases.get(a.db)
                ));
            }
            StepFacts::DumpsVerified { checks } => {
                for db in MetaDb::ALL {
                    let want = self.artifact(db).map(|a| a.blake3_hex.as_str());
                    let got = checks
                        .iter()
                        .find(|c| c.db == db)
                        .and_then(|c| c.found_blake3.as_deref());
                    if want.is_none() || want != got {
                        return bad(format!("the {db} dump does not match its recorded BLAKE3"));
                    }
                }
                // A deployment's other regions: each heartbeat dump re-hashed too.
                for r in plan_regions(self.plan.as_deref()) {
                    let want = self.region_artifact(r).map(|a| a.blake3_hex.as_str());
                    let found = checks
                        .iter()
                        .any(|c| want.is_some() && c.found_blake3.as_deref() == want);
                    if !found {
                        return bad(format!(
                            "the {r} heartbeat dump does not match its recorded BLAKE3"
                        ));
                    }
                }
            }
            StepFacts::Restored(r) => {
                let want = self
                    .artifact_in(key.region().unwrap_or(RegionIx(0)), r.db)
                    .map(|a| a.blake3_hex.as_str());
                if want != Some(r.verified_blake3.as_str()) {
                    return bad(format!(
                        "restored file's BLAKE3 is not the recorded {} dump's",
                        r.db
                    ));
                }
            }
            StepFacts::HaEnabled(h) => {
                let since = self.downtime_start();
                match (&h.refetch, since) {
                    (None, None) => {}
                    (Some(d), Some(t1)) => {
                        if d.t1 != t1 {
                            return bad(format!(
                                "refetch measured from {} but the downtime began at {}",
                                d.t1.to_rfc3339(),
                                t1.to_rfc3339()
                            ));
                        }
                        if !d.covers(t1, h.enabled_at) {
                            return bad(format!(
                                "refetch interval {:?} min does not cover the downtime until HA was enabled at {}",
                                d.interval_minutes,
                                h.enabled_at.to_rfc3339()
                            ));
                        }
                    }
                    (None, Some(_)) => {
                        return bad("HA enabled after a downtime without a refetch decision".into());
                    }
                    (Some(_), None) => {
                        return bad("a refetch decision but no downtime began".into());
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Mutates; only called after `check` accepted the record.
    fn commit(&mut self, r: &Recorded) {
        self.last_seq = Some(r.seq);
        self.run_id.get_or_insert(r.run_id);
        let current_phase = self.phase();
        match &r.event {
            Event::RunPlanned { plan, digest } => {
                self.plan = Some(plan.clone());
                self.digest = Some(*digest);
                self.planned = Some((r.seq, r.at, r.operator.clone(), r.host.clone()));
            }
            Event::PreflightFailed { checks } => self.preflight.push(PreflightFailure {
                seq: r.seq,
                at: r.at,
                checks: checks.clone(),
            }),
            Event::Note { text } => self.notes.push(Remark {
                seq: r.seq,
                at: r.at,
                operator: r.operator.clone(),
                host: r.host.clone(),
                body: text.clone(),
            }),
            Event::Attestation(a) => self.attestations.push(Remark {
                seq: r.seq,
                at: r.at,
                operator: r.operator.clone(),
                host: r.host.clone(),
                body: a.clone(),
            }),
            Event::StepIntent { key } => {
                let number = self.attempts.iter().filter(|a| a.key == *key).count() as u32 + 1;
                self.attempts.push(Attempt {
                    key: *key,
                    number,
                    intent_seq: r.seq,
                    intent_at: r.at,
                    operator: r.operator.clone(),
                    outcome: None,
                });
                self.status.insert(*key, StepStatus::InDoubt);
            }
            Event::StepTables { tables, .. } => {
                self.pending_tables.extend(tables.iter().cloned());
            }
            Event::StepDone { key, facts } => {
                let facts = &self.take_joined(*key, facts);
                self.close(
                    *key,
                    Outcome::Done {
                        seq: r.seq,
                        at: r.at,
                        facts: facts.clone(),
                    },
                );
                self.status.insert(*key, StepStatus::Done);
                self.facts.insert(*key, facts.clone());
            }
            Event::StepFailed {
                key,
                error,
                retryable,
                facts,
                kind,
            } => {
                let facts = &facts.as_ref().map(|f| self.take_joined(*key, f));
                self.pending_tables.clear();
                self.close(
                    *key,
                    Outcome::Failed {
                        seq: r.seq,
                        at: r.at,
                        error: error.clone(),
                        retryable: *retryable,
                        facts: facts.clone(),
                        kind: *kind,
                    },
                );
                self.status.insert(
                    *key,
                    StepStatus::Failed {
                        retryable: *retryable,
                    },
                );
            }
            Event::StepReconciled {
                key,
                finding,
                evidence,
            } => {
                let finding = &match finding {
                    Finding::Done(f) => Finding::Done(Box::new(self.take_joined(*key, f))),
                    other => other.clone(),
                };
                self.pending_tables.clear();
                self.close(
                    *key,
                    Outcome::Reconciled {
                        seq: r.seq,
                        at: r.at,
                        finding: finding.clone(),
                        evidence: evidence.clone(),
                    },
                );
                let status = match finding {
                    Finding::Done(f) => {
                        self.facts.insert(*key, f.as_ref().clone());
                        StepStatus::Done
                    }
                    Finding::NotDone => StepStatus::Pending,
                    Finding::Failed { retryable, .. } => StepStatus::Failed {
                        retryable: *retryable,
                    },
                    Finding::Undecided { .. } => StepStatus::Undecided,
                };
                self.status.insert(*key, status);
            }
            Event::StepResolved(d) => {
                // The decision stands in for the outcome reality could not give: a step
                // decided done has no facts of its own (the operator's reason is its record).
                let status = match d.resolution {
                    Resolution::Done => StepStatus::Done,
                    Resolution::NotDone => StepStatus::Pending,
                };
                self.status.insert(d.key, status);
                self.resolutions.push(Remark {
                    seq: r.seq,
                    at: r.at,
                    operator: r.operator.clone(),
                    host: r.host.clone(),
                    body: d.clone(),
                });
            }
            Event::RollbackRequested { reason } => {
                let keys = self
                    .rollback_keys()
                    .expect("rollback permitted: checked before commit");
                self.rollback = Some(RollbackInfo {
                    seq: r.seq,
                    at: r.at,
                    reason: reason.clone(),
                    from_phase: current_phase,
                    keys,
                });
            }
        }
    }

    /// [`State::joined`] for a record `check` accepted, emptying the pending slices.
    fn take_joined(&mut self, key: StepKey, facts: &StepFacts) -> StepFacts {
        let joined = self.joined(key, facts).unwrap_or_else(|_| facts.clone());
        self.pending_tables.clear();
        joined
    }

    fn close(&mut self, key: StepKey, outcome: Outcome) {
        if let Some(a) = self
            .attempts
            .iter_mut()
            .rev()
            .find(|a| a.key == key && a.outcome.is_none())
        {
            a.outcome = Some(outcome);
        }
    }

    // ---- what comes next ---------------------------------------------------------

    fn status_of(&self, key: StepKey) -> StepStatus {
        self.status
            .get(&key)
            .copied()
            .unwrap_or(StepStatus::Pending)
    }

    /// The current list of steps: the rollback's once requested, else the upgrade's.
    fn sequence(&self) -> Vec<StepKey> {
        let mut keys = match (&self.rollback, &self.plan) {
            (Some(rb), _) => rb.keys.clone(),
            (None, Some(p)) => {
                let mut keys = steps::plan_keys(p);
                // A ledger written before `pre-stop-check` existed went straight to
                // `stop-old`: checking after T1 would protect nothing, so the check is only
                // part of a run that has not reached `stop-old` without it.
                if self.attempted(StepKey::StopOldContainer)
                    && !self.attempted(StepKey::PreStopCheck)
                {
                    keys.retain(|k| *k != StepKey::PreStopCheck);
                }
                keys
            }
            (None, None) => vec![],
        };
        // A ledger written before the drop steps existed (issue 16) went straight to
        // `complete` / `rollback-complete`: its prune dropped what it moved aside itself.
        for (complete, drop) in LEGACY_WITHOUT_DROP {
            if self.attempted(complete) && !self.attempted_base(drop) {
                keys.retain(|k| k.base() != drop);
            }
        }
        keys
    }

    /// True when a step of kind `base` (any region's) has an intent.
    fn attempted_base(&self, base: StepKey) -> bool {
        self.attempts.iter().any(|a| a.key.base() == base)
    }

    /// True when `key` is `complete` or `rollback-complete` recorded by a build before
    /// issue 16's drop steps: the step the list has before it is a drop step no attempt
    /// ever started (see [`LEGACY_WITHOUT_DROP`]), and no prune recorded rows moved aside
    /// (which only builds with the drop steps do), so nothing is left to drop.
    pub fn legacy_complete_without_drop(&self, key: StepKey) -> bool {
        LEGACY_WITHOUT_DROP.iter().any(|&(complete, drop)| {
            key == complete
                && self.cursor().is_some_and(|c| c.base() == drop)
                && !self.attempted_base(drop)
                && !self.prune_moved_rows_aside()
        })
    }

    /// True when a prune (any region's) recorded that its table swap moved the old rows
    /// aside (`batch_rows` 0, issue 16) rather than deleting them.
    fn prune_moved_rows_aside(&self) -> bool {
        self.facts.iter().any(|(k, f)| {
            k.base() == StepKey::PruneHeartbeat
                && matches!(
                    f,
                    StepFacts::HeartbeatPruned {
                        batch_rows: Some(0),
                        ..
                    }
                )
        })
    }

    /// The first step of the current list that is not done.
    fn cursor(&self) -> Option<StepKey> {
        self.sequence()
            .into_iter()
            .find(|k| self.status_of(*k) != StepStatus::Done)
    }

    /// The stage of the current list the run is in: the first with a step not done
    /// (`steps::stages`; one lane of one step at a time for a single node).
    fn current_stage(&self) -> Vec<Vec<StepKey>> {
        steps::stages(&self.sequence())
            .into_iter()
            .find(|stage| {
                stage
                    .iter()
                    .flatten()
                    .any(|k| self.status_of(*k) != StepStatus::Done)
            })
            .unwrap_or_default()
    }

    /// The first step not done of each lane of the current stage.
    fn heads(&self) -> Vec<StepKey> {
        self.current_stage()
            .iter()
            .filter_map(|lane| {
                lane.iter()
                    .copied()
                    .find(|k| self.status_of(*k) != StepStatus::Done)
            })
            .collect()
    }

    /// Steps with an intent and no outcome yet, oldest first: in doubt after a crash, or
    /// running side by side while their stage lasts.
    fn open_keys(&self) -> Vec<StepKey> {
        let mut open: Vec<StepKey> = Vec::new();
        for a in self.attempts.iter().filter(|a| a.outcome.is_none()) {
            if !open.contains(&a.key) {
                open.push(a.key);
            }
        }
        open
    }

    fn permitted_keys(&self) -> Vec<StepKey> {
        if self.plan.is_none() {
            return vec![];
        }
        let open = self.open_keys();
        let stage = self.current_stage();
        if open.iter().any(|k| !stage.iter().flatten().any(|s| s == k)) {
            return vec![];
        }
        self.heads()
            .into_iter()
            .filter(|k| !open.contains(k))
            .filter(|k| {
                matches!(
                    self.status_of(*k),
                    StepStatus::Pending | StepStatus::Failed { retryable: true }
                )
            })
            .collect()
    }

    /// Where the run stands.
    pub fn phase(&self) -> Phase {
        if self.plan.is_none() {
            return Phase::NotPlanned;
        }
        let blocked = self
            .heads()
            .into_iter()
            .any(|k| self.status_of(k) == StepStatus::Failed { retryable: false });
        match (&self.rollback, self.cursor(), blocked) {
            (None, None, _) => Phase::Completed,
            (None, Some(_), true) => Phase::UpgradeFailed,
            (None, Some(_), false) => Phase::Upgrading,
            (Some(_), None, _) => Phase::RolledBack,
            (Some(_), Some(_), true) => Phase::RollbackFailed,
            (Some(_), Some(_), false) => Phase::RollingBack,
        }
    }

    /// The step with an intent but no outcome, if any (the oldest, when the steps of a
    /// stage ran side by side: [`State::in_doubt_all`]).
    pub fn in_doubt(&self) -> Option<StepKey> {
        self.open_keys().first().copied()
    }

    /// Every step with an intent but no outcome, oldest first.
    pub fn in_doubt_all(&self) -> Vec<StepKey> {
        self.open_keys()
    }

    /// The steps that may receive an intent now, in order: one per lane of the current
    /// stage (several only for a deployment's nodes, which the executor runs side by side;
    /// one at a time otherwise), none after a non-retryable failure or when the run is
    /// over. While steps of the stage are open (running), the other lanes' steps.
    pub fn permitted(&self) -> Vec<Step> {
        self.permitted_keys()
            .into_iter()
            .filter_map(|k| self.step(k).ok())
            .collect()
    }

    /// The steps still to run in the current list, in order, assuming each succeeds
    /// (for `status` and `plan`). Steps whose inputs are not known yet (a restore before
    /// its dump) are left out.
    pub fn remaining(&self) -> Vec<Step> {
        let seq = self.sequence();
        let Some(c) = self.cursor() else {
            return vec![];
        };
        let start = seq.iter().position(|k| *k == c).unwrap_or(seq.len());
        seq[start..]
            .iter()
            .filter(|k| self.status_of(**k) != StepStatus::Done)
            .filter_map(|k| self.step(*k).ok())
            .collect()
    }

    /// What the executor should do next.
    pub fn next(&self) -> Next {
        if self.plan.is_none() {
            return Next::Plan;
        }
        if let Some(k) = self.in_doubt() {
            return match self.step(k) {
                Ok(step) => Next::Reconcile { step },
                Err(e) => Next::Blocked {
                    reason: format!("step {k} is in doubt and cannot be rebuilt: {e}"),
                },
            };
        }
        let phase = self.phase();
        let heads = self.heads();
        // A lane that cannot go on (undecided, failed for good) speaks for the stage.
        let head = heads
            .iter()
            .copied()
            .find(|k| {
                matches!(
                    self.status_of(*k),
                    StepStatus::Undecided | StepStatus::Failed { retryable: false }
                )
            })
            .or_else(|| heads.first().copied());
        match head {
            None => Next::Finished { phase },
            Some(k) => match self.status_of(k) {
                StepStatus::Undecided => Next::Blocked {
                    reason: match self.awaiting_decision() {
                        Some(w) => w.explain(),
                        None => format!("step {k} awaits an operator's decision"),
                    },
                },
                StepStatus::Failed { retryable: false } => Next::Blocked {
                    reason: match (phase, self.can_rollback()) {
                        (Phase::UpgradeFailed, true) => format!(
                            "step {k} failed and may not be retried; roll back with `oms-upgrade rollback`"
                        ),
                        (Phase::UpgradeFailed, false) => format!(
                            "step {k} failed and may not be retried, and a rollback is not possible: {}",
                            self.rollback_keys()
                                .err()
                                .map(|e| e.to_string())
                                .unwrap_or_default()
                        ),
                        _ => format!(
                            "rollback step {k} failed and may not be retried: fix it by hand, then record what you did with `oms-upgrade note`"
                        ),
                    },
                },
                status => match self.step(k) {
                    Ok(step) => Next::Run {
                        step,
                        retry: matches!(status, StepStatus::Failed { .. }),
                    },
                    Err(e) => Next::Blocked {
                        reason: format!("step {k} cannot be built: {e}"),
                    },
                },
            },
        }
    }

    /// Builds step `key` from the plan and what has been recorded (a node's or region's
    /// step from what that node or region recorded).
    pub fn step(&self, key: StepKey) -> Result<Step, BuildError> {
        let plan = self.plan.as_deref().ok_or(BuildError::NotPlanned)?;
        steps::build(plan, key, &self.context_for(key))
    }

    /// The steps [`State::next`]'s step runs beside: every permitted step of the current
    /// stage, each built, with whether it is a retry. One for a single node.
    pub fn runnable(&self) -> Vec<(Step, bool)> {
        if self.plan.is_none() || self.in_doubt().is_some() {
            return vec![];
        }
        self.permitted_keys()
            .into_iter()
            .filter_map(|k| {
                let retry = matches!(self.status_of(k), StepStatus::Failed { .. });
                self.step(k).ok().map(|s| (s, retry))
            })
            .collect()
    }

    /// The plan as step `key`'s node or region sees it ([`Plan::for_node`]); the plan
    /// itself for the deployment-wide steps and node 0's.
    fn plan_for(&self, key: StepKey) -> Cow<'_, Plan> {
        let plan = self
            .plan
            .as_deref()
            .unwrap_or_else(|| unreachable!("plan_for is called only once a plan is recorded"));
        // Only another node's or region's step needs a plan of its own.
        match key {
            StepKey::Node { node, .. } => Cow::Owned(plan.for_node(node)),
            StepKey::Region { region, .. } => Cow::Owned(plan.for_region(region)),
            _ => Cow::Borrowed(plan),
        }
    }

    /// What later steps need from earlier ones (node 0's and region 0's view).
    pub fn context(&self) -> Context {
        self.context_for(StepKey::Complete)
    }

    /// What step `key` needs from earlier ones: node n's container facts for node n's
    /// steps, region r's heartbeat dump for region r's.
    pub fn context_for(&self, key: StepKey) -> Context {
        let node = key.node().unwrap_or(NodeIx::PRIMARY);
        let region = key.region().unwrap_or(RegionIx(0));
        Context {
            downtime_start: self.downtime_start(),
            ha_enable_before: self.ha_enable_before(),
            artifacts: MetaDb::ALL
                .iter()
                .filter_map(|&db| self.artifact_in(region, db).map(|a| (db, a.clone())))
                .collect(),
            new_container_id: match self.facts(StepKey::CreateNewContainer.on_node(node)) {
                Some(StepFacts::NewContainerCreated(n)) => Some(n.id.clone()),
                _ => None,
            },
            old_restart_before: match self.facts.get(&StepKey::OldRestartOff.on_node(node)) {
                Some(StepFacts::RestartPolicySet { before, .. }) => Some(before.clone()),
                _ => None,
            },
            region_artifacts: plan_regions(self.plan.as_deref())
                .filter_map(|r| self.region_artifact(r).cloned())
                .collect(),
        }
    }

    fn attempted(&self, key: StepKey) -> bool {
        self.attempts.iter().any(|a| a.key == key)
    }

    /// What the upgrade has (possibly) done, on any node.
    pub fn touched(&self) -> Touched {
        let nodes = self.plan().map_or(vec![NodeIx::PRIMARY], Plan::nodes);
        let any = |k: StepKey| nodes.iter().any(|&n| self.attempted(k.on_node(n)));
        Touched {
            ha_disabled: self.attempted(StepKey::DisableHa),
            ha_previous_known: self.ha_enable_before().is_some(),
            ha_enabled: self.attempted(StepKey::EnableHa),
            old_stopped: any(StepKey::StopOldContainer),
            old_renamed: any(StepKey::RenameOldContainer),
            new_created: any(StepKey::CreateNewContainer),
            new_started: any(StepKey::StartNewContainer),
            dumps_complete: MetaDb::ALL.iter().all(|&db| self.artifact(db).is_some())
                && plan_regions(self.plan.as_deref()).all(|r| self.region_artifact(r).is_some()),
            old_restart_off: any(StepKey::OldRestartOff),
            pruned: self
                .plan()
                .map_or(vec![RegionIx(0)], Plan::regions)
                .into_iter()
                .any(|r| self.attempted(StepKey::PruneHeartbeat.in_region(r))),
        }
    }

    /// What the upgrade has (possibly) done to node `n`'s containers (the deployment-wide
    /// fields as in [`State::touched`]).
    pub fn touched_node(&self, n: NodeIx) -> Touched {
        Touched {
            old_stopped: self.attempted(StepKey::StopOldContainer.on_node(n)),
            old_renamed: self.attempted(StepKey::RenameOldContainer.on_node(n)),
            new_created: self.attempted(StepKey::CreateNewContainer.on_node(n)),
            new_started: self.attempted(StepKey::StartNewContainer.on_node(n)),
            old_restart_off: self.attempted(StepKey::OldRestartOff.on_node(n)),
            ..self.touched()
        }
    }

    /// The rollback's steps if one were requested now, or why it cannot be.
    pub fn rollback_keys(&self) -> Result<Vec<StepKey>, Rejection> {
        let refuse = |reason: String| Err(Rejection::RollbackRefused { reason });
        if self.plan.is_none() {
            return refuse("nothing is planned".into());
        }
        if self.rollback.is_some() {
            return refuse("a rollback was already requested".into());
        }
        if let Some(k) = self.in_doubt() {
            // `oms-upgrade rollback` records the reconciliation itself before requesting.
            return refuse(format!(
                "step {k} is in doubt: its reconciliation must be recorded first \
                 (`oms-upgrade rollback` checks it against reality, records what it found, then rolls back)"
            ));
        }
        let plan = self.plan.as_deref().expect("checked above");
        let keys = if plan.deployment().is_some() {
            steps::deployment_rollback_keys(plan, &self.touched(), |n| self.touched_node(n))
        } else {
            steps::rollback_keys(&self.touched())
        };
        keys.or_else(|e| refuse(e.to_string()))
    }

    /// True when `rollback.requested` would be accepted now.
    pub fn can_rollback(&self) -> bool {
        self.rollback_keys().is_ok()
    }

    // ---- accessors for status and reports -----------------------------------------

    /// The run id (fixed by the first record, even a failed preflight).
    pub fn run_id(&self) -> Option<Uuid> {
        self.run_id
    }

    /// The plan.
    pub fn plan(&self) -> Option<&Plan> {
        self.plan.as_deref()
    }

    /// The plan's recorded digest.
    pub fn plan_digest(&self) -> Option<PlanDigest> {
        self.digest
    }

    /// Seq, time, operator and host of the `run.planned` record.
    pub fn planned(&self) -> Option<(u64, DateTime<Utc>, &str, &str)> {
        self.planned
            .as_ref()
            .map(|(s, t, o, h)| (*s, *t, o.as_str(), h.as_str()))
    }

    /// The last applied seq.
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// Failed preflights.
    pub fn preflight_failures(&self) -> &[PreflightFailure] {
        &self.preflight
    }

    /// Every attempt of every step, in record order.
    pub fn attempts(&self) -> &[Attempt] {
        &self.attempts
    }

    /// The kind of failure of `key`'s last attempt, when that attempt failed (issue 13),
    /// as its `step.failed` record or its reconciliation's finding says.
    pub fn failure_kind(&self, key: StepKey) -> Option<FailureKind> {
        match &self.attempts.iter().rev().find(|a| a.key == key)?.outcome {
            Some(Outcome::Failed { kind, .. })
            | Some(Outcome::Reconciled {
                finding: Finding::Failed { kind, .. },
                ..
            }) => Some(*kind),
            _ => None,
        }
    }

    /// The time of the first intent of `key` when it has more than one attempt (the
    /// latest open or done), i.e. when an earlier attempt may already have acted: a stop
    /// asked for by an attempt that then failed or was cut short may still have begun the
    /// shutdown, so the downtime counts from there.
    pub fn earlier_attempt_at(&self, key: StepKey) -> Option<DateTime<Utc>> {
        let mut of_key = self.attempts.iter().filter(|a| a.key == key);
        let first = of_key.next()?;
        of_key.next().map(|_| first.intent_at)
    }

    /// A step's latest status.
    pub fn status(&self, key: StepKey) -> StepStatus {
        self.status_of(key)
    }

    /// The facts of a step that is done.
    pub fn facts(&self, key: StepKey) -> Option<&StepFacts> {
        match self.status_of(key) {
            StepStatus::Done => self.facts.get(&key),
            _ => None,
        }
    }

    /// Attempts that failed (including reconciliations that found a failure).
    pub fn failures(&self) -> Vec<&Attempt> {
        self.attempts
            .iter()
            .filter(|a| {
                matches!(
                    a.outcome,
                    Some(Outcome::Failed { .. })
                        | Some(Outcome::Reconciled {
                            finding: Finding::Failed { .. },
                            ..
                        })
                )
            })
            .collect()
    }

    /// Attempts that were in doubt and resolved by reconciliation.
    pub fn reconciliations(&self) -> Vec<&Attempt> {
        self.attempts
            .iter()
            .filter(|a| matches!(a.outcome, Some(Outcome::Reconciled { .. })))
            .collect()
    }

    /// Operator notes.
    pub fn notes(&self) -> &[Remark<String>] {
        &self.notes
    }

    /// The step the run waits on for an operator's decision (issue 12.1): the current
    /// step, reconciled as [`Finding::Undecided`] and not decided since.
    pub fn awaiting_decision(&self) -> Option<AwaitingDecision> {
        if self.in_doubt().is_some() {
            return None;
        }
        let key = self.cursor()?;
        if self.status_of(key) != StepStatus::Undecided {
            return None;
        }
        self.attempts
            .iter()
            .rev()
            .find(|a| a.key == key)
            .and_then(|a| match &a.outcome {
                Some(Outcome::Reconciled {
                    seq,
                    finding: Finding::Undecided { why },
                    evidence,
                    ..
                }) => Some(AwaitingDecision {
                    key,
                    reconciled_seq: *seq,
                    why: why.clone(),
                    evidence: evidence.clone(),
                }),
                _ => None,
            })
    }

    /// Operators' decisions about undecided steps (`step.resolved`), in record order.
    pub fn resolutions(&self) -> &[Remark<StepResolved>] {
        &self.resolutions
    }

    /// Operator attestations (standalone events; manual HA attestations are in the HA
    /// facts).
    pub fn attestations(&self) -> &[Remark<Attestation>] {
        &self.attestations
    }

    /// The rollback, once requested.
    pub fn rollback(&self) -> Option<&RollbackInfo> {
        self.rollback.as_ref()
    }

    pub(crate) fn stopped_at(&self, key: StepKey) -> Option<DateTime<Utc>> {
        match self.facts(key) {
            Some(StepFacts::ContainerStopped(c)) => Some(c.t()),
            _ => None,
        }
    }

    /// T1: when the old container's stop was requested (earlier builds' ledgers: when it
    /// was seen stopped); see [`crate::events::ContainerStopped::t`].
    pub fn t1(&self) -> Option<DateTime<Utc>> {
        self.earliest_on_any_node(StepKey::StopOldContainer)
    }

    /// The earliest stop time `key` recorded on any node (a deployment's nodes stop side
    /// by side: the downtime begins with the first).
    fn earliest_on_any_node(&self, key: StepKey) -> Option<DateTime<Utc>> {
        let nodes = self.plan().map_or(vec![NodeIx::PRIMARY], Plan::nodes);
        nodes
            .into_iter()
            .filter_map(|n| self.stopped_at(key.on_node(n)))
            .min()
    }

    /// T2: HA re-enabled after the upgrade.
    pub fn t2(&self) -> Option<DateTime<Utc>> {
        self.ha_enabled(StepKey::EnableHa).map(|h| h.enabled_at)
    }

    /// T3: when the rollback requested the new container's stop.
    pub fn t3(&self) -> Option<DateTime<Utc>> {
        self.earliest_on_any_node(StepKey::StopNewContainer)
    }

    /// Start of the downtime: T1, or, when the stop's outcome never showed it, the first
    /// `stop-old` intent (the container may have been stopping from then on).
    pub fn downtime_start(&self) -> Option<DateTime<Utc>> {
        self.t1().or_else(|| {
            self.attempts
                .iter()
                .find(|a| a.key.base() == StepKey::StopOldContainer)
                .map(|a| a.intent_at)
        })
    }

    /// End of the downtime window the refetch must cover: HA re-enabled (T2, or the
    /// rollback's), or, on procedures without HA steps, health confirmed. After a
    /// rollback this is the rollback's end: the restored databases are at T1, so the
    /// window runs from T1 even though the new version served in between.
    pub fn downtime_end(&self) -> Option<DateTime<Utc>> {
        let at = |k: StepKey| {
            self.attempts
                .iter()
                .rev()
                .find(|a| a.key == k)
                .and_then(|a| a.outcome.as_ref())
                .filter(|o| o.done_facts().is_some())
                .map(|o| o.at())
        };
        if self.rollback.is_some() {
            self.ha_enabled(StepKey::RollbackEnableHa)
                .map(|h| h.enabled_at)
                .or_else(|| {
                    self.plan()
                        .filter(|p| !p.procedure.has_ha_steps())
                        .and_then(|_| at(StepKey::ConfirmOldHealth))
                })
        } else {
            self.t2().or_else(|| {
                self.plan()
                    .filter(|p| !p.procedure.has_ha_steps())
                    .and_then(|_| at(StepKey::ConfirmHealth))
            })
        }
    }

    /// Downtime so far: from its start to its end, or to `now` while it lasts.
    pub fn downtime(&self, now: DateTime<Utc>) -> Option<Duration> {
        let start = self.downtime_start()?;
        Some(self.downtime_end().unwrap_or(now) - start)
    }

    fn ha_disabled(&self, key: StepKey) -> Option<&HaDisabled> {
        match self.facts(key) {
            Some(StepFacts::HaDisabled(h)) => Some(h),
            _ => self
                .attempts
                .iter()
                .rev()
                .filter(|a| a.key == key)
                .find_map(|a| match &a.outcome {
                    Some(Outcome::Failed {
                        facts: Some(StepFacts::HaDisabled(h)),
                        ..
                    }) => Some(h),
                    _ => None,
                }),
        }
    }

    fn ha_enabled(&self, key: StepKey) -> Option<&HaEnabled> {
        match self.facts(key) {
            Some(StepFacts::HaEnabled(h)) => Some(h),
            _ => None,
        }
    }

    /// `ha.config` as read before the run: `disable-ha`'s reading
    /// ([`State::ha_read_by_disable_ha`]); when `disable-ha` was attempted and no attempt's
    /// reading was recorded (the process died, or its reconciliation failed, between the
    /// write and the outcome), `init`'s reading from the plan (issue 13), so that a rollback
    /// still switches HA back on. docs/simulation.md, "HA's value before the run".
    pub fn ha_before(&self) -> Option<&str> {
        self.ha_read_by_disable_ha().or_else(|| {
            self.attempted(StepKey::DisableHa)
                .then(|| self.plan.as_deref().and_then(Plan::ha_at_init))
                .flatten()
        })
    }

    /// `init`'s reading of `ha.config` when it must stand in for `disable-ha`'s (issue 13):
    /// an earlier attempt was in doubt (reconciled: its write may have committed, and what
    /// it read died with the process) and no attempt recorded a reading, so a retry reads
    /// what that attempt may have written. `None` when the plan has no such reading.
    pub fn ha_reading_lost(&self) -> Option<&str> {
        if self.ha_read_by_disable_ha().is_some() {
            return None;
        }
        let in_doubt = self.attempts.iter().any(|a| {
            a.key == StepKey::DisableHa && matches!(a.outcome, Some(Outcome::Reconciled { .. }))
        });
        in_doubt
            .then(|| self.plan.as_deref().and_then(Plan::ha_at_init))
            .flatten()
    }

    /// `ha.config` as `disable-ha` read it before its write, from an attempt done or failed
    /// with facts.
    pub fn ha_read_by_disable_ha(&self) -> Option<&str> {
        // The first attempt's reading: a write can commit before its call fails, and the
        // retry then reads the value that attempt wrote (HA already off), which is not the
        // value to restore.
        self.attempts
            .iter()
            .filter(|a| a.key == StepKey::DisableHa)
            .find_map(|a| match &a.outcome {
                Some(Outcome::Done {
                    facts: StepFacts::HaDisabled(h),
                    ..
                })
                | Some(Outcome::Failed {
                    facts: Some(StepFacts::HaDisabled(h)),
                    ..
                }) => Some(h.previous_json.as_str()),
                _ => None,
            })
            .or_else(|| {
                self.ha_disabled(StepKey::DisableHa)
                    .map(|h| h.previous_json.as_str())
            })
    }

    /// `enable` before the run.
    pub fn ha_enable_before(&self) -> Option<bool> {
        self.ha_before()
            .and_then(|j| HaConfig::parse(j).ok())
            .and_then(|c| c.enable().ok().flatten())
    }

    /// `ha.config` as last written when HA was switched back on (the rollback's if any).
    pub fn ha_after(&self) -> Option<&str> {
        self.ha_enabled(StepKey::RollbackEnableHa)
            .or_else(|| self.ha_enabled(StepKey::EnableHa))
            .map(|h| h.written_json.as_str())
    }

    /// How the refetch setting was chosen (the rollback's if any).
    pub fn refetch_decision(&self) -> Option<&RefetchDecision> {
        self.ha_enabled(StepKey::RollbackEnableHa)
            .or_else(|| self.ha_enabled(StepKey::EnableHa))
            .and_then(|h| h.refetch.as_ref())
    }

    /// The Store retention warning to show now: the recorded refetch decision's, or, while
    /// the downtime lasts, what the decision would say if HA were re-enabled at `now`
    /// (so an operator sees it coming, not only in the report afterwards). Pure: `now` is
    /// a value.
    pub fn retention_warning(&self, now: DateTime<Utc>) -> Option<String> {
        if let Some(d) = self.refetch_decision() {
            return d.warning.clone();
        }
        let plan = self.plan()?;
        let start = self.downtime_start()?;
        if self.downtime_end().is_some() {
            return None;
        }
        crate::refetch::decide(&plan.refetch, start, now)
            .warning
            .map(|w| format!("{w} (downtime so far, still running)"))
    }

    /// The recorded dump of one database.
    pub fn artifact(&self, db: MetaDb) -> Option<&DumpArtifact> {
        self.artifact_in(RegionIx(0), db)
    }

    /// The recorded dump of one database as region `r` sees it: its own heartbeat
    /// database's, the shared rm and cm.
    pub fn artifact_in(&self, r: RegionIx, db: MetaDb) -> Option<&DumpArtifact> {
        match self.facts(StepKey::Dump { db }.in_region(r)) {
            Some(StepFacts::DumpWritten(a)) => Some(a),
            _ => None,
        }
    }

    /// The recorded heartbeat dump of region `r`.
    pub fn region_artifact(&self, r: RegionIx) -> Option<&DumpArtifact> {
        self.artifact_in(r, MetaDb::CmHb)
    }

    /// All recorded dumps, in rm, cm, cm_hb order, then the other regions' heartbeat dumps.
    pub fn artifacts(&self) -> Vec<&DumpArtifact> {
        MetaDb::ALL
            .iter()
            .filter_map(|&db| self.artifact(db))
            .chain(plan_regions(self.plan.as_deref()).filter_map(|r| self.region_artifact(r)))
            .collect()
    }

    /// The new container as created (with the binds proof).
    pub fn new_container(&self) -> Option<&NewContainer> {
        match self.facts(StepKey::CreateNewContainer) {
            Some(StepFacts::NewContainerCreated(n)) => Some(n),
            _ => None,
        }
    }

    /// The databases may differ from the dumps (the new container was started).
    pub fn databases_touched(&self) -> bool {
        self.touched().databases_touched()
    }

    /// Keys that had at least one intent.
    pub fn attempted_keys(&self) -> BTreeSet<StepKey> {
        self.attempts.iter().map(|a| a.key).collect()
    }
}

/// The final steps a ledger of a build before issue 16 recorded without the drop step
/// that now comes right before them: `complete` after `drop-pruned-heartbeat`,
/// `rollback-complete` after `rollback-drop-pruned-heartbeat`.
const LEGACY_WITHOUT_DROP: [(StepKey, StepKey); 2] = [
    (StepKey::Complete, StepKey::DropPrunedHeartbeat),
    (
        StepKey::RollbackComplete,
        StepKey::RollbackDropPrunedHeartbeat,
    ),
];

/// The regions of a deployment beyond region 0 (none for a single-node plan).
fn plan_regions(plan: Option<&Plan>) -> impl Iterator<Item = RegionIx> {
    plan.map(Plan::regions)
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.0 != 0)
}

#[cfg(test)]
pub(crate) mod build;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod deployment_tests;

#[cfg(test)]
mod props;
