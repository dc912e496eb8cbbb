//! `oms-upgrade ledger ...`: verify, log, export, checkpoint. (under construction)

use super::{CmdResult, Ctx};

/// Ledger subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum LedgerCommand {
    /// Walk the hash chain and report whether the record is intact.
    Verify,
}

/// Runs a ledger subcommand.
pub fn run(cmd: LedgerCommand, _ctx: &Ctx) -> CmdResult {
    match cmd {
        LedgerCommand::Verify => Ok(std::process::ExitCode::SUCCESS),
    }
}
