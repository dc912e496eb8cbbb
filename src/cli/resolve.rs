//! `oms-upgrade resolve`: an operator's recorded decision about a step that a crash left in
//! doubt and that reality could not settle (issue 12.1: `docker_init.sh` whose logs prove
//! neither "done" nor "never started"). The core checks the decision (`State::check`) and
//! replays it (`State::next`); this module only parses, records and reports.

use std::process::ExitCode;
use std::str::FromStr;

use super::shell;
use super::{CliError, CmdResult, Ctx, ExitKind};
use crate::events::{Event, Resolution, StepKey, StepResolved};

/// What the operator decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Decision {
    /// The step took effect: the run goes on with the next step.
    Done,
    /// The step never took effect: the run performs it.
    NotDone,
}

impl From<Decision> for Resolution {
    fn from(d: Decision) -> Self {
        match d {
            Decision::Done => Resolution::Done,
            Decision::NotDone => Resolution::NotDone,
        }
    }
}

/// Arguments of `resolve`.
///
/// Records your decision about a step that was interrupted and that oms-upgrade could not
/// settle by looking at reality (`status` and `run` say which step, show the evidence and
/// print this command). The record carries your account (the real uid's), the host, the
/// time, your reason and the evidence record it answers. Refused (exit 7) when that step is
/// not awaiting a decision, (exit 5) for an unknown step or an empty reason.
#[derive(Debug, clap::Args)]
pub struct ResolveArgs {
    /// The step awaiting a decision, as `status` names it (e.g. `docker-init`).
    #[arg(value_name = "STEP")]
    pub step: String,
    /// `done`: it completed (the run goes on with the next step); `not-done`: it never took
    /// effect (the run performs it).
    #[arg(long = "as", value_enum, value_name = "DECISION")]
    pub decision: Decision,
    /// What you checked, in your words (recorded).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// The witness (issue 14): only to name the one the plan records, or to give its
    /// password file.
    #[command(flatten)]
    pub witness: super::witness::WitnessOpts,
}

/// Runs `resolve`.
pub fn run(args: ResolveArgs, ctx: &Ctx) -> CmdResult {
    let key = StepKey::from_str(&args.step).map_err(|_| {
        CliError::new(ExitKind::Input, format!("unknown step `{}`", args.step)).hint(
            "name the step as `oms-upgrade status` does; `run` prints the exact `resolve` command",
        )
    })?;
    if args.reason.trim().is_empty() {
        return Err(CliError::new(ExitKind::Input, "the reason is empty")
            .hint("say what you checked: --reason \"read docker_init.log.*: it ends with the success marker\""));
    }
    let mut journal = shell::open_journal(&ctx.ledger, false)?;
    shell::attach_witness(&mut journal, &args.witness)?;
    let state = journal.state();
    let run_id = state
        .run_id()
        .ok_or_else(|| CliError::from(crate::executor::ExecError::NotPlanned))?;
    let (by, _) = shell::identity();
    let event = Event::StepResolved(StepResolved {
        key,
        resolution: args.decision.into(),
        reason: args.reason,
        by: by.clone(),
        reconciled_seq: state.awaiting_decision().map_or(0, |w| w.reconciled_seq),
    });
    if let Err(r) = state.check(run_id, &event) {
        return Err(CliError::from(r));
    }
    let seq = journal
        .record(run_id, chrono::Utc::now(), event)
        .map_err(CliError::from)?;
    let again = if key.is_rollback() {
        "oms-upgrade rollback"
    } else {
        "oms-upgrade run"
    };
    let resolution = Resolution::from(args.decision);
    if ctx.json {
        println!(
            "{}",
            serde_json::json!({
                "ok": true,
                "seq": seq,
                "step": key.to_string(),
                "resolution": resolution.as_str(),
                "by": by,
                "next": serde_json::to_value(journal.state().next()).unwrap_or_default(),
            })
        );
    } else {
        let what = match resolution {
            Resolution::Done => "done: the run goes on with the next step",
            Resolution::NotDone => "not done: the run performs it",
        };
        println!("Recorded as ledger record {seq}: step {key} decided {what} (by {by}).");
        println!("Continue with `{again}`.");
    }
    Ok(ExitCode::SUCCESS)
}
