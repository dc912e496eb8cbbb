//! The command-line edge. Parses arguments, dispatches to one module per command group,
//! and turns every library error into a message that says what happened and what to do,
//! plus a documented exit code (see [`ExitKind`] and the README).
//!
//! This module owns presentation only: it never decides what step may run (that is the
//! pure core's job) and never talks to Docker or MariaDB itself.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod backup;
pub mod demo;
pub mod dirs;
pub mod error;
pub mod fleet;
pub mod healthtrust;
pub mod identity;
pub mod init;
pub mod ledger;
pub mod live;
pub mod manual;
pub mod metadb;
pub mod metatls;
pub mod note;
pub mod output;
pub mod remote;
pub mod report;
pub mod resolve;
pub mod run;
pub mod shell;
pub mod status;
pub mod vouch;
pub mod witness;

pub use error::{CliError, ExitKind};

/// Upgrade and roll back OceanBase Migration Service CE in Docker, with an audit-grade ledger.
///
/// Every action is recorded in a hash-chained ledger before and after it happens, so a run
/// can be resumed after a crash, rolled back, and proven intact afterwards.
#[derive(Debug, Parser)]
#[command(
    name = "oms-upgrade",
    version = crate::build_info::LONG_VERSION,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Ledger folder (a sled database). One ledger records one upgrade and its rollback.
    /// Default: /var/lib/oms-upgrade/ledger for root, else under $XDG_STATE_HOME (or
    /// ~/.local/state)/oms-upgrade.
    #[arg(long, global = true, env = "OMS_UPGRADE_LEDGER", default_value_os_t = dirs::here().ledger)]
    pub ledger: PathBuf,

    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// More log output on stderr (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

/// The command groups.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Discover the running OMS node, run preflight checks, and record the upgrade plan.
    Init(init::InitArgs),
    /// Show the steps that would run, with the exact commands and SQL (no secrets).
    Plan(status::PlanArgs),
    /// Perform the planned upgrade (resumes safely after a crash or a failure).
    Run(run::RunArgs),
    /// Where the run stands: phase, T1/T2/T3, downtime, next step, steps in doubt.
    Status(status::StatusArgs),
    /// Roll the upgrade back: restore the databases and restart the old container.
    Rollback(run::RollbackArgs),
    /// Add an operator's note to the record.
    Note(note::NoteArgs),
    /// Record your decision about a step reality could not settle after a crash.
    Resolve(resolve::ResolveArgs),
    /// Inspect and prove the ledger: verify, log, export, checkpoint.
    #[command(subcommand)]
    Ledger(ledger::LedgerCommand),
    /// Dump the three OMS metadata databases to checksummed SQL files.
    Backup(backup::BackupArgs),
    /// Verify and restore dumps written by `backup`.
    Restore(backup::RestoreArgs),
    /// Write the run's report (Markdown, HTML or JSON) from the ledger alone.
    Report(report::ReportArgs),
    /// Upgrade a demo OMS node (the bundled emulator) end to end; `--clean` removes demos.
    Demo(demo::DemoArgs),
    /// Set up the witness: an append-only copy of every ledger on a shared MySQL database.
    #[command(subcommand)]
    Witness(witness::WitnessCommand),
    /// Every ledger on the witness, verified from the witness alone: list, verify (with a
    /// state file kept outside the database), report, export.
    #[command(subcommand)]
    Fleet(fleet::FleetCommand),
    /// Print shell completion for bash, zsh or fish, generated from these very definitions
    /// (`oms-upgrade completions bash > /etc/bash_completion.d/oms-upgrade`).
    Completions(manual::CompletionsArgs),
    /// Write the man pages (oms-upgrade(1) and one per command), generated from these very
    /// definitions, into a folder; or print oms-upgrade(1) on stdout.
    Man(manual::ManArgs),
}

/// What every command receives besides its own arguments.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The ledger folder.
    pub ledger: PathBuf,
    /// JSON output requested.
    pub json: bool,
}

/// Result of one command: `Ok(code)` lets a command end with a non-zero code after printing
/// its own report (e.g. `ledger verify` finding a broken chain).
pub type CmdResult = Result<ExitCode, CliError>;

/// Parses arguments, runs the command, maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let ctx = Ctx {
        ledger: cli.ledger.clone(),
        json: cli.json,
    };
    let result = match cli.command {
        Command::Init(args) => init::run(args, &ctx),
        Command::Plan(args) => status::plan(args, &ctx),
        Command::Run(args) => run::run(args, &ctx),
        Command::Status(args) => status::status(args, &ctx),
        Command::Rollback(args) => run::rollback(args, &ctx),
        Command::Note(args) => note::run(args, &ctx),
        Command::Resolve(args) => resolve::run(args, &ctx),
        Command::Ledger(cmd) => ledger::run(cmd, &ctx),
        Command::Backup(args) => backup::run_backup(args, &ctx),
        Command::Restore(args) => backup::run_restore(args, &ctx),
        Command::Report(args) => report::run(args, &ctx),
        Command::Demo(args) => demo::run(args, &ctx),
        Command::Witness(cmd) => witness::run(cmd, &ctx),
        Command::Fleet(cmd) => fleet::run(cmd, &ctx),
        Command::Completions(args) => manual::completions(&args),
        Command::Man(args) => manual::man(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => err.report(ctx.json),
    }
}

fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Builds the single-threaded-enough tokio runtime commands use for async adapters.
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            CliError::new(
                ExitKind::Internal,
                format!("cannot start the async runtime: {e}"),
            )
        })
}
