//! `oms-upgrade note`: an operator's note in the ledger.

use std::process::ExitCode;

use super::shell;
use super::{CliError, CmdResult, Ctx, ExitKind};
use crate::events::Event;

/// Arguments of `note`.
///
/// Appends a note to the run's record (who and when are recorded with it), e.g. a change
/// ticket number or what was done by hand.
#[derive(Debug, clap::Args)]
pub struct NoteArgs {
    /// The note.
    pub text: String,
    /// The witness (issue 14): only to name the one the plan records, or to give its
    /// password file.
    #[command(flatten)]
    pub witness: super::witness::WitnessOpts,
}

/// Runs `note`.
pub fn run(args: NoteArgs, ctx: &Ctx) -> CmdResult {
    if args.text.trim().is_empty() {
        return Err(CliError::new(ExitKind::Input, "the note is empty")
            .hint("oms-upgrade note \"what happened\""));
    }
    let mut journal = shell::open_journal(&ctx.ledger, false)?;
    shell::attach_witness(&mut journal, &args.witness)?;
    let run_id = journal
        .state()
        .run_id()
        .ok_or_else(|| CliError::from(crate::executor::ExecError::NotPlanned))?;
    let seq = journal
        .record(run_id, chrono::Utc::now(), Event::Note { text: args.text })
        .map_err(CliError::from)?;
    if ctx.json {
        println!("{}", serde_json::json!({"ok": true, "seq": seq}));
    } else {
        println!("Recorded as ledger record {seq}.");
    }
    Ok(ExitCode::SUCCESS)
}
