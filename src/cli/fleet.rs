//! `oms-upgrade fleet list|verify|report|export --witness URL`: every ledger on the witness,
//! verified and summarised from the witness rows alone (`crate::fleet`).
//!
//! Exit codes: `list` and `export` 0 once the witness was read; `verify` and `report` 0
//! when every ledger verifies (and, with `--state`, extends the recorded heads), 3 when any
//! does not; for every subcommand 5 for bad input (witness URL, password, state file), 6
//! when the witness cannot be reached, 1 for anything unexpected.
//!
//! `verify --state FILE` keeps the last verified (ledger id, seq, head hash) of each ledger
//! in FILE, outside the database, and refuses a witness that does not extend it: rows cut
//! from a ledger's tail, or rewritten consistently, by whoever administers the witness
//! database. The file is read and validated before the witness is contacted, and written
//! back atomically (temporary file, fsync, rename) with the heads that verified; a ledger
//! that failed keeps its old entry.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::error::output_error;
use super::output::{emit, write_atomic};
use super::witness::WitnessOpts;
use super::{CliError, CmdResult, Ctx, ExitKind, runtime};
use crate::fleet::state::{self, FleetState, StateError};
use crate::fleet::{self, FleetCheck, LedgerRows, render};

/// `oms-upgrade fleet ...`.
#[derive(Debug, clap::Subcommand)]
pub enum FleetCommand {
    /// Every ledger on the witness as a table: node, versions, phase, T1/T2/T3, downtime,
    /// who ran it, verification status (JSON with --json). Exit 0 once the witness was read.
    List(FleetArgs),
    /// Verify every ledger from the witness rows alone; exit 3 when any fails. With --state
    /// FILE, also refuse a witness that does not extend the heads recorded there.
    Verify(FleetVerifyArgs),
    /// One document about every ledger for a change board (Markdown, HTML or JSON); exit 3
    /// when any ledger is not verified.
    Report(FleetReportArgs),
    /// Every ledger's witness rows as JSON Lines in the `ledger export` format, one section
    /// per ledger, for `ledger-schema/verify_export.py --fleet`.
    Export(FleetExportArgs),
}

/// The witness flags every `fleet` subcommand takes.
#[derive(Debug, clap::Args)]
pub struct FleetArgs {
    #[command(flatten)]
    witness: WitnessOpts,
}

/// Arguments of `fleet verify`.
#[derive(Debug, clap::Args)]
pub struct FleetVerifyArgs {
    #[command(flatten)]
    witness: WitnessOpts,
    /// State file keeping the last verified head of every ledger, outside the database
    /// (created on first use). A witness that does not extend it fails verification.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
}

/// Fleet document format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FleetFormat {
    /// Markdown, for a change ticket.
    Md,
    /// One self-contained HTML page (the per-run report's style, no script).
    Html,
    /// JSON.
    Json,
}

/// Arguments of `fleet report`.
#[derive(Debug, clap::Args)]
pub struct FleetReportArgs {
    #[command(flatten)]
    witness: WitnessOpts,
    /// Document format [default: md, or json with --json].
    #[arg(long, value_enum)]
    format: Option<FleetFormat>,
    /// Write the document to FILE (atomically: complete or absent) instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// Arguments of `fleet export`.
#[derive(Debug, clap::Args)]
pub struct FleetExportArgs {
    #[command(flatten)]
    witness: WitnessOpts,
    /// Write the export to FILE (atomically) instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// Runs `fleet ...`.
pub fn run(cmd: FleetCommand, ctx: &Ctx) -> CmdResult {
    match cmd {
        FleetCommand::List(a) => {
            let (target, fleet, _) = read(&a.witness)?;
            let text = if ctx.json {
                json_line(&render::to_json(&fleet, &target))
            } else {
                render::to_table(&fleet)
            };
            emit(&mut std::io::stdout().lock(), &text)?;
            Ok(ExitCode::SUCCESS)
        }
        FleetCommand::Verify(a) => verify(a, ctx),
        FleetCommand::Report(a) => report(a, ctx),
        FleetCommand::Export(a) => export(a),
    }
}

/// Reads every ledger from the witness and checks it.
fn read(opts: &WitnessOpts) -> Result<(String, FleetCheck, Vec<LedgerRows>), CliError> {
    let (target, witness) = opts.require(&[])?;
    let rows = runtime()?.block_on(async {
        let rows = fleet::read_witness(&witness).await;
        witness.close().await;
        rows
    })?;
    let check = fleet::check_fleet(&rows);
    Ok((target.to_string(), check, rows))
}

/// `--json` output: one line, as every command prints it.
fn json_line(v: &serde_json::Value) -> String {
    format!("{v}\n")
}

/// A JSON document meant to be read and archived as well as parsed: pretty.
fn json_text(v: &serde_json::Value) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("a JSON value always prints");
    s.push('\n');
    s
}

fn verdict_code(fleet: &FleetCheck) -> ExitCode {
    if fleet.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(ExitKind::Integrity.code())
    }
}

fn state_error(path: &Path, e: StateError) -> CliError {
    CliError::from_error(ExitKind::Input, &e).hint(format!(
        "{} must be a state file written by `oms-upgrade fleet verify --state` for this \
         witness; give another path to start a new one (and keep the old one: it is the \
         record of what was verified)",
        path.display()
    ))
}

/// Reads the state file: `None` when it does not exist yet (first use).
fn read_state(path: &Path, witness: &str) -> Result<Option<FleetState>, CliError> {
    match std::fs::read_to_string(path) {
        Ok(text) => state::parse(&text, witness)
            .map(Some)
            .map_err(|e| state_error(path, e)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CliError::new(
            ExitKind::Input,
            format!("cannot read the state file {}: {e}", path.display()),
        )
        .hint("give a readable file, or a new path to start one")),
    }
}

fn verify(a: FleetVerifyArgs, ctx: &Ctx) -> CmdResult {
    // The state file is input: refused before the witness is contacted. Its witness is
    // compared with the target's display form (never a password).
    let target = a
        .witness
        .witness
        .as_deref()
        .map(crate::witness::WitnessTarget::parse)
        .transpose()?
        .map(|t| t.to_string());
    let previous = match (&a.state, &target) {
        (Some(p), Some(t)) => read_state(p, t)?,
        _ => None,
    };
    let (target, mut fleet, _) = read(&a.witness)?;
    if let Some(prev) = &previous {
        state::check(prev, &mut fleet);
    }
    let text = if ctx.json {
        json_line(&render::to_json(&fleet, &target))
    } else {
        render::to_table(&fleet)
    };
    emit(&mut std::io::stdout().lock(), &text)?;
    if let Some(path) = &a.state {
        let next = state::next(previous.as_ref(), &fleet, &target);
        let body = state::to_text(&next);
        write_atomic(path, |f| {
            f.write_all(body.as_bytes())
                .map_err(|e| output_error(&path.display().to_string(), e))
        })?;
        eprintln!(
            "state: {} ({} ledger head(s) recorded{})",
            path.display(),
            next.ledgers.len(),
            if previous.is_none() {
                "; the file was new"
            } else {
                ""
            }
        );
    }
    if !fleet.ok() {
        eprintln!(
            "error: {} of {} ledger(s) NOT verified",
            fleet.failed(),
            fleet.ledgers.len() + fleet.missing.len()
        );
    }
    Ok(verdict_code(&fleet))
}

fn report(a: FleetReportArgs, ctx: &Ctx) -> CmdResult {
    let format = a.format.unwrap_or(if ctx.json {
        FleetFormat::Json
    } else {
        FleetFormat::Md
    });
    let (target, fleet, _) = read(&a.witness)?;
    let doc = match format {
        FleetFormat::Md => render::to_markdown(&fleet, &target),
        FleetFormat::Html => render::to_html(&fleet, &target),
        FleetFormat::Json => json_text(&render::to_json(&fleet, &target)),
    };
    write_out(a.out.as_deref(), &doc)?;
    if !fleet.ok() {
        eprintln!(
            "warning: the fleet report is NOT verified: {}",
            render::headline(&fleet)
        );
    }
    Ok(verdict_code(&fleet))
}

fn export(a: FleetExportArgs) -> CmdResult {
    let (_, _, rows) = read(&a.witness)?;
    let mut text = String::new();
    for l in &rows {
        for line in fleet::export_lines(l) {
            text.push_str(&line.to_string());
            text.push('\n');
        }
    }
    write_out(a.out.as_deref(), &text)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes `text` to `out` atomically, or to stdout.
fn write_out(out: Option<&Path>, text: &str) -> Result<(), CliError> {
    match out {
        None => {
            emit(&mut std::io::stdout().lock(), text)?;
        }
        Some(path) => write_atomic(path, |f| {
            f.write_all(text.as_bytes())
                .map_err(|e| output_error(&path.display().to_string(), e))
        })?,
    }
    Ok(())
}
