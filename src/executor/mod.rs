//! The executor: the one place where decisions become actions.
//!
//! It asks the core what comes next ([`State::next`]), appends the step's *intent* to the
//! ledger (durably), performs the step through the adapters, and appends the *outcome*.
//! On start it replays the ledger; a step left with an intent but no outcome (the process
//! died in between) is first *reconciled*: reality is inspected and what was found is
//! recorded, so no action is blindly repeated or skipped.
//!
//! The executor never decides on its own what is permitted, and never keeps state of its
//! own between steps: everything comes from the journal.

mod init;
mod journal;
mod perform;
mod reconcile;

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

pub use crate::witness::bridge::Mirror;
pub use journal::{Journal, JournalError, WitnessWhen};

use crate::adapters::{Clock, Docker, DumpEngine, Health, HostDumps, MetaDb};
use crate::dbconn::DbTarget;
use crate::dump::{self, DumpOptions};
use crate::events::{Event, FailureKind, Finding, NodeIx, Plan, RegionIx, StepFacts, StepKey};
use crate::replay::{Next, Phase, Rejection};
use crate::steps::Step;

tokio::task_local! {
    /// The node (and region) whose step is being performed or inspected. A deployment's
    /// step (`Step::OnNode`, `Step::InRegion`) is performed as the single-node step it
    /// wraps, inside this scope, so every arm of `perform` and `reconcile` reaches that
    /// node's Docker engine ([`Executor::docker`]) and reads that node's records
    /// ([`scoped`], [`Executor::node_plan`]) without each of them taking the node as an
    /// argument. Outside any scope: node 0, region 0 (a single-node run).
    static HERE: (NodeIx, Option<RegionIx>);
}

/// The node and region of the step being performed or inspected (see [`HERE`]).
fn here() -> (NodeIx, Option<RegionIx>) {
    HERE.try_with(|h| *h).unwrap_or((NodeIx::PRIMARY, None))
}

/// A single-node key as the node and region being worked on record it.
fn scoped(key: StepKey) -> StepKey {
    let (node, region) = here();
    let key = key.on_node(node);
    match region {
        Some(r) => key.in_region(r),
        None => key,
    }
}

/// How the executor reports to, and asks, whoever runs it (the CLI, a test).
pub trait Observer: Send + Sync {
    /// May `step` (irreversible) run? Called before its intent is recorded.
    fn confirm(&self, step: &Step) -> bool;
    /// A step starts (its intent is durable).
    fn step_started(&self, step: &Step, retry: bool) {
        let _ = (step, retry);
    }
    /// A step ended; `Ok` with its facts or `Err` with the failure.
    fn step_finished(&self, key: StepKey, outcome: Result<&StepFacts, &str>) {
        let _ = (key, outcome);
    }
    /// An in-doubt step was reconciled against reality.
    fn reconciled(&self, key: StepKey, finding: &Finding, evidence: &str) {
        let _ = (key, finding, evidence);
    }
    /// Instructions for the operator (manual HA mode).
    fn instruct(&self, text: &str) {
        let _ = text;
    }
    /// The heartbeat prune deleted `rows` rows in `batches` batches so far, of about
    /// `total` (called after each batch).
    fn pruned(&self, database: &str, rows: u64, batches: u64, total: u64) {
        let _ = (database, rows, batches, total);
    }
    /// Progress sink for dumps and restores.
    fn progress(&self) -> Arc<dyn dump::Progress> {
        Arc::new(dump::Quiet)
    }
}

/// An observer that confirms everything and reports nothing (tests, `--yes --json`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Unattended;

impl Observer for Unattended {
    fn confirm(&self, _step: &Step) -> bool {
        true
    }
}

/// The adapters the executor acts through, plus the metadata DB credentials.
pub struct Adapters<D, M, H, C> {
    /// Docker engine.
    pub docker: D,
    /// Metadata database.
    pub metadb: M,
    /// OMS health endpoint.
    pub health: H,
    /// The clock (the only source of "now").
    pub clock: C,
    /// Where the metadata database is, with the password (never recorded).
    pub db: DbTarget,
}

/// Tunables of a run that are not part of the plan.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// How dumps are written.
    pub dump: DumpOptions,
    /// Manual HA mode: how often the stored `ha.config` is polled.
    pub manual_poll: Duration,
    /// Manual HA mode: how long to wait for the operator.
    pub manual_timeout: Duration,
    /// The longest pause between health probes; the pauses start at 20 ms and double up
    /// to it ([`crate::adapters::clock::Backoff::fine`]), so a node that turns healthy is seen at most one pause
    /// late (issue 16).
    pub health_poll: Duration,
    /// The longest pause before `check-supervisor` and `check-online` ask again while
    /// programs are starting or servers are not yet Online (pauses as for health; their
    /// bound is the plan's health timeout).
    pub status_poll: Duration,
    /// Most heartbeat rows one DELETE of the prune removes.
    pub prune_batch_rows: u64,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            dump: DumpOptions {
                overwrite: true,
                ..DumpOptions::default()
            },
            manual_poll: Duration::from_secs(2),
            manual_timeout: Duration::from_secs(3600),
            health_poll: crate::adapters::clock::HEALTH_POLL_CAP,
            status_poll: crate::adapters::clock::STATUS_POLL_CAP,
            prune_batch_rows: crate::sqltext::HEARTBEAT_BATCH_ROWS,
        }
    }
}

/// Why a run stopped short.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// Reading or writing the ledger failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The ledger holds no plan.
    #[error("no upgrade is planned in this ledger; run `oms-upgrade init` first")]
    NotPlanned,
    /// A step failed; its failure is recorded.
    #[error("step {key} failed: {error}")]
    StepFailed {
        /// The step.
        key: StepKey,
        /// What went wrong.
        error: String,
        /// Whether running it again may help.
        retryable: bool,
        /// What kind of failure: the one its failure record carries (issue 13).
        kind: FailureKind,
    },
    /// Nothing can run.
    #[error("{reason}")]
    Blocked {
        /// Why, and what to do.
        reason: String,
    },
    /// The operator declined an irreversible step.
    #[error("step {key} was not confirmed; nothing was changed for it")]
    Declined {
        /// The step.
        key: StepKey,
    },
    /// A rollback is not possible (or not needed) now.
    #[error("rollback refused: {0}")]
    RollbackRefused(Rejection),
}

/// Where a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// The upgrade or the rollback is over.
    Finished(Phase),
    /// `--until` was reached; the next step is this one.
    Until(StepKey),
}

/// No Docker engine is connected for a node of the plan (`run` and `rollback` refuse
/// before anything is recorded; this stands behind that check).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("no Docker engine is connected for {0}")]
pub(crate) struct NoEngine(NodeIx);

impl From<NoEngine> for StepError {
    fn from(e: NoEngine) -> Self {
        StepError::fatal(e.to_string())
    }
}

/// A step's failure as perform/reconcile see it.
#[derive(Debug, Clone)]
pub(crate) struct StepError {
    pub message: String,
    pub retryable: bool,
    pub facts: Option<StepFacts>,
    /// What kind of failure; recorded with it and deciding the exit code.
    pub kind: FailureKind,
}

impl StepError {
    /// A service failure a retry may cure.
    pub(crate) fn retry(message: impl Into<String>) -> Self {
        StepError {
            message: message.into(),
            retryable: true,
            facts: None,
            kind: FailureKind::Service,
        }
    }
    /// A service failure a retry must not follow.
    pub(crate) fn fatal(message: impl Into<String>) -> Self {
        StepError {
            message: message.into(),
            retryable: false,
            facts: None,
            kind: FailureKind::Service,
        }
    }
    /// The same failure, of `kind`.
    pub(crate) fn of(self, kind: FailureKind) -> Self {
        StepError { kind, ..self }
    }
}

/// Performs steps for one ledger. `E` is the dump engine; the real one ([`HostDumps`])
/// unless a test or a simulated world gives its own ([`Executor::with_dump_engine`]).
pub struct Executor<'o, D, M, H, C, E = HostDumps> {
    journal: Journal,
    ad: Adapters<D, M, H, C>,
    /// The Docker engines of a deployment's nodes 1.. (`nodes[i]` is node i + 1); node 0's
    /// is `ad.docker`.
    nodes: Vec<D>,
    dumps: E,
    opts: ExecOptions,
    observer: &'o dyn Observer,
}

impl<'o, D: Docker, M: MetaDb, H: Health, C: Clock> Executor<'o, D, M, H, C> {
    /// An executor over an opened journal, writing and restoring dumps with the real
    /// engine ([`HostDumps`]).
    pub fn new(
        journal: Journal,
        ad: Adapters<D, M, H, C>,
        opts: ExecOptions,
        observer: &'o dyn Observer,
    ) -> Self {
        Executor::with_dump_engine(journal, ad, HostDumps, opts, observer)
    }
}

impl<'o, D: Docker, M: MetaDb, H: Health, C: Clock, E: DumpEngine> Executor<'o, D, M, H, C, E> {
    /// An executor over an opened journal that writes, restores and checks dumps through
    /// `dumps`.
    pub fn with_dump_engine(
        journal: Journal,
        ad: Adapters<D, M, H, C>,
        dumps: E,
        opts: ExecOptions,
        observer: &'o dyn Observer,
    ) -> Self {
        Executor {
            journal,
            ad,
            nodes: Vec::new(),
            dumps,
            opts,
            observer,
        }
    }

    /// The Docker engines of the plan's nodes 1.. in order (a deployment, issue 15), each
    /// connected to the endpoint the plan records for it.
    pub fn with_node_dockers(mut self, nodes: Vec<D>) -> Self {
        self.nodes = nodes;
        self
    }

    /// The Docker engine of node `n`.
    fn docker_of(&self, n: NodeIx) -> Result<&D, NoEngine> {
        match n.0 {
            0 => Ok(&self.ad.docker),
            i => self.nodes.get(usize::from(i) - 1).ok_or(NoEngine(n)),
        }
    }

    /// The Docker engine of the node whose step is being performed ([`here`]).
    fn docker(&self) -> Result<&D, NoEngine> {
        self.docker_of(here().0)
    }

    /// The plan as the node whose step is being performed sees it.
    fn node_plan(&self) -> Option<Plan> {
        self.journal.state().plan().map(|p| p.for_node(here().0))
    }

    /// Refuses to act on a deployment when an engine for one of its nodes is missing,
    /// before anything is recorded.
    fn check_engines(&self) -> Result<(), ExecError> {
        let Some(plan) = self.journal.state().plan() else {
            return Ok(());
        };
        let want = plan.nodes().len() - 1;
        if self.nodes.len() < want {
            return Err(ExecError::Blocked {
                reason: format!(
                    "the plan covers {} nodes but Docker engines for only {} were connected; nothing was changed",
                    want + 1,
                    self.nodes.len() + 1
                ),
            });
        }
        Ok(())
    }

    /// The journal (state and ledger).
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Gives the journal back (releasing the ledger lock when dropped).
    pub fn into_journal(self) -> Journal {
        self.journal
    }

    fn run_id(&self) -> Result<Uuid, ExecError> {
        self.journal.state().run_id().ok_or(ExecError::NotPlanned)
    }

    /// Records `event` at the clock's "now".
    fn record(&mut self, event: Event) -> Result<u64, ExecError> {
        let run_id = self.run_id()?;
        let now = self.ad.clock.now();
        Ok(self.journal.record(run_id, now, event)?)
    }

    /// Starts a rollback (records `rollback.requested`), unless one is already under way.
    ///
    /// A step left in doubt by a crash is reconciled first, with the same evidence `run`
    /// uses, and the finding recorded: a rollback needs to know what was touched. A finding
    /// that the step failed does not stop the rollback; undoing it is what was asked for.
    pub async fn request_rollback(&mut self, reason: &str) -> Result<(), ExecError> {
        let state = self.journal.state();
        if state.plan().is_none() {
            return Err(ExecError::NotPlanned);
        }
        if state.rollback().is_some() {
            return Ok(());
        }
        self.check_engines()?;
        // Every step a crash left in doubt (several when a stage's nodes ran side by side).
        while let Next::Reconcile { step } = self.journal.state().next() {
            self.record_finding(&step).await?;
        }
        let state = self.journal.state();
        let run_id = self.run_id()?;
        let event = Event::RollbackRequested {
            reason: reason.to_string(),
        };
        if let Err(rejection) = state.check(run_id, &event) {
            return Err(ExecError::RollbackRefused(rejection));
        }
        self.record(event)?;
        Ok(())
    }

    /// Runs permitted steps until the run is over, `until` is next, or a step fails.
    /// Partial files an interrupted dump left in the run's dump folder are removed first.
    pub async fn run(&mut self, until: Option<StepKey>) -> Result<Stopped, ExecError> {
        self.check_engines()?;
        self.remove_partial_files()?;
        loop {
            match self.journal.state().next() {
                Next::Plan => return Err(ExecError::NotPlanned),
                Next::Finished { phase } => return Ok(Stopped::Finished(phase)),
                Next::Blocked { reason } => return Err(ExecError::Blocked { reason }),
                Next::Reconcile { step } => self.reconcile(&step).await?,
                Next::Run { step, retry } => {
                    if let Some(u) = until.filter(|u| crate::steps::stops_before(*u, step.key())) {
                        return Ok(Stopped::Until(u));
                    }
                    let batch = self.journal.state().runnable();
                    if batch.len() > 1 {
                        for (s, _) in &batch {
                            if let Some(u) =
                                until.filter(|u| crate::steps::stops_before(*u, s.key()))
                            {
                                return Ok(Stopped::Until(u));
                            }
                            if s.key().needs_confirmation() && !self.observer.confirm(s) {
                                return Err(ExecError::Declined { key: s.key() });
                            }
                        }
                        self.execute_side_by_side(&batch).await?;
                        continue;
                    }
                    if let Some(start) = self.start_first(&step).await {
                        self.execute(&start, true).await?;
                        continue;
                    }
                    if step.key().needs_confirmation() && !self.observer.confirm(&step) {
                        return Err(ExecError::Declined { key: step.key() });
                    }
                    self.execute(&step, retry).await?;
                }
            }
        }
    }

    /// Intent, side effect, outcome: the heart of the invariant "no side effect without a
    /// flushed intent record".
    async fn execute(&mut self, step: &Step, retry: bool) -> Result<(), ExecError> {
        let key = step.key();
        #[cfg(any(test, feature = "sim-bugs"))]
        if crate::sim::planted::is(crate::sim::planted::Bug::IntentAfterEffect) {
            // The planted bug: the side effect first, its intent after.
            let result = self.perform(step).await;
            self.record(Event::StepIntent { key })?;
            return self.record_outcome(key, result);
        }
        self.record(Event::StepIntent { key })?;
        crash_point("before-effect", key);
        self.observer.step_started(step, retry);
        let result = self.perform(step).await;
        self.record_outcome(key, result)
    }

    /// The steps of one stage on several nodes, side by side: every intent recorded
    /// (durably, in order) before any side effect, the effects performed concurrently, then
    /// every outcome recorded in the same order. A kill in between leaves the open intents
    /// in doubt, each reconciled on the next run. The first failure is returned after all
    /// outcomes are recorded, so no finished effect goes unrecorded.
    async fn execute_side_by_side(&mut self, batch: &[(Step, bool)]) -> Result<(), ExecError> {
        for (step, retry) in batch {
            let key = step.key();
            self.record(Event::StepIntent { key })?;
            crash_point("before-effect", key);
            self.observer.step_started(step, *retry);
        }
        let results =
            futures_util::future::join_all(batch.iter().map(|(step, _)| self.perform(step))).await;
        let mut first_failure = None;
        for ((step, _), result) in batch.iter().zip(results) {
            match self.record_outcome(step.key(), result) {
                Ok(()) => {}
                Err(e @ ExecError::StepFailed { .. }) => {
                    first_failure.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        first_failure.map_or(Ok(()), Err)
    }

    /// Records a performed step's outcome (done with its facts, or failed) and reports it.
    fn record_outcome(
        &mut self,
        key: StepKey,
        result: Result<StepFacts, StepError>,
    ) -> Result<(), ExecError> {
        crash_point("after-effect", key);
        let outcome = match result {
            Ok(facts) => match facts.contradiction() {
                None => Ok(facts),
                Some(problem) => Err(StepError {
                    retryable: retryable_contradiction(key),
                    kind: facts.contradiction_kind(),
                    message: problem,
                    facts: Some(facts),
                }),
            },
            Err(e) => Err(e),
        };
        match outcome {
            Ok(facts) => {
                self.record(Event::StepDone {
                    key,
                    facts: facts.clone(),
                })?;
                self.observer.step_finished(key, Ok(&facts));
                crash_point("after-outcome", key);
                Ok(())
            }
            Err(e) => {
                // Masked here too, not only in the ledger: the message is also shown and
                // returned, and it may quote a child's output.
                let message = crate::redact::redact(&e.message).into_owned();
                self.record(Event::StepFailed {
                    key,
                    error: message.clone(),
                    retryable: e.retryable,
                    facts: e.facts.clone(),
                    kind: e.kind,
                })?;
                self.observer.step_finished(key, Err(&message));
                crash_point("after-outcome", key);
                Err(ExecError::StepFailed {
                    key,
                    error: message,
                    retryable: e.retryable,
                    kind: e.kind,
                })
            }
        }
    }

    /// Looks at reality for an in-doubt step and records what was found.
    async fn reconcile(&mut self, step: &Step) -> Result<(), ExecError> {
        let key = step.key();
        if let Finding::Failed {
            error,
            retryable,
            kind,
        } = self.record_finding(step).await?
        {
            return Err(ExecError::StepFailed {
                key,
                error,
                retryable,
                kind,
            });
        }
        Ok(())
    }

    /// Removes the `.part` and spool files a killed dump left in the run's dump folder.
    /// Safe because this process holds the ledger's writer lock, so no dump of this run is
    /// being written, and the folder is this run's own. Which files (and their sizes) is
    /// recorded before they are removed, and what the removal did after, as notes.
    fn remove_partial_files(&mut self) -> Result<(), ExecError> {
        let Some(dir) = self.journal.state().plan().map(|p| p.dump_dir()) else {
            return Ok(());
        };
        // An unreadable folder is left to the dump step, which reports it; `ledger verify
        // --artifacts` lists whatever stays.
        let Ok(found) = self.dumps.partial_files(std::path::Path::new(&dir)) else {
            return Ok(());
        };
        if found.is_empty() {
            return Ok(());
        }
        let listing: Vec<String> = found
            .iter()
            .map(|f| format!("{} ({} bytes)", f.path.display(), f.size))
            .collect();
        self.record(Event::Note {
            text: format!(
                "removing {} partial file(s) an interrupted dump left in {dir}: {}",
                found.len(),
                listing.join(", ")
            ),
        })?;
        let mut failed = Vec::new();
        for f in &found {
            match self.dumps.remove_partial(&f.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => failed.push(format!("{}: {e}", f.path.display())),
            }
        }
        let bytes: u64 = found.iter().map(|f| f.size).sum();
        let text = if failed.is_empty() {
            format!(
                "removed {} partial file(s), {bytes} bytes, from {dir}",
                found.len()
            )
        } else {
            format!(
                "could not remove {} of {} partial file(s) in {dir} (remove them by hand;                  `oms-upgrade ledger verify --artifacts` lists them): {}",
                failed.len(),
                found.len(),
                failed.join("; ")
            )
        };
        self.record(Event::Note { text })?;
        Ok(())
    }

    /// Inspects reality for an in-doubt step, records the finding and returns it.
    async fn record_finding(&mut self, step: &Step) -> Result<Finding, ExecError> {
        let key = step.key();
        let (finding, evidence) = self.inspect(step).await;
        self.record(Event::StepReconciled {
            key,
            finding: finding.clone(),
            evidence: evidence.clone(),
        })?;
        self.observer.reconciled(key, &finding, &evidence);
        Ok(finding)
    }
}

/// A health or supervisor check that came back negative may pass later; a docker_init.sh
/// that failed or a bind mismatch will not fix itself.
fn retryable_contradiction(key: StepKey) -> bool {
    matches!(
        key,
        StepKey::ConfirmHealth
            | StepKey::ConfirmOldHealth
            | StepKey::CheckSupervisor
            | StepKey::CheckOnline
    )
}

/// Fault injection for the crash-matrix tests: with the `failpoints` feature and
/// `FAILPOINTS="<phase>:<step>=return"`, the process aborts right here, as a power cut or
/// `kill -9` would stop it. Without the feature this compiles to nothing.
#[allow(unused_variables)]
fn crash_point(phase: &str, key: StepKey) {
    #[cfg(feature = "failpoints")]
    crate::adapters::crash_point(&format!("{phase}:{key}"));
}
