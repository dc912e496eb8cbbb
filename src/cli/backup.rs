//! `oms-upgrade backup` and `oms-upgrade restore`. (under construction)

use super::{CmdResult, Ctx};

/// Arguments of `backup`.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {}

/// Arguments of `restore`.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {}

/// Runs `backup`.
pub fn run_backup(_args: BackupArgs, _ctx: &Ctx) -> CmdResult {
    Ok(std::process::ExitCode::SUCCESS)
}

/// Runs `restore`.
pub fn run_restore(_args: RestoreArgs, _ctx: &Ctx) -> CmdResult {
    Ok(std::process::ExitCode::SUCCESS)
}
