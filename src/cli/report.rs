//! `oms-upgrade report`: the run's report as Markdown (default), self-contained HTML or
//! JSON, built from the ledger alone (`crate::report`).
//!
//! The ledger is opened read-only, verified (against `--anchor` when given) and replayed;
//! every dump file it names is re-hashed. The document is written even when verification
//! fails (it then says so at the top), and the exit code tells scripts: 0 verified, 3 not
//! verified (broken chain, checkpoint not matched, a dump missing or altered), 4 the ledger
//! is busy, 5 bad input, 1 anything unexpected.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::ledger::Anchor;
use crate::report::{self, CollectError, Report};

use super::error::output_error;
use super::output::write_atomic;
use super::{CliError, CmdResult, Ctx, ExitKind};

/// Document format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// Markdown, for pasting into a change ticket.
    Md,
    /// One self-contained HTML page (inline CSS and SVG timeline, no script).
    Html,
    /// JSON, as described by `ledger-schema/report.schema.json`.
    Json,
}

/// Arguments of `report`.
///
/// Writes one document about the run this ledger records: who ran it, versions and images,
/// every step with times and durations (T1, T2, T3 and the downtime), HA before and after
/// with the refetch reasoning, every dump with size, BLAKE3 and row counts, the containers,
/// failures, retries, in-doubt resolutions, notes, attestations, and the verification
/// result with the head hash. Exit code 0 when verified, 3 when not.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Document format [default: md, or json with --json].
    #[arg(long, value_enum)]
    pub format: Option<ReportFormat>,
    /// Write the document to FILE (atomically: complete or absent) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// A checkpoint file written by `ledger checkpoint`, to verify the ledger against.
    #[arg(long, value_name = "FILE")]
    pub anchor: Option<PathBuf>,
}

/// Runs `report`.
pub fn run(args: ReportArgs, ctx: &Ctx) -> CmdResult {
    let format = args.format.unwrap_or(if ctx.json {
        ReportFormat::Json
    } else {
        ReportFormat::Md
    });
    // A bad --anchor is bad input whatever state the ledger is in: read it first.
    let anchor = args
        .anchor
        .as_deref()
        .map(Anchor::read_file)
        .transpose()
        .map_err(CliError::from)?;
    let collected = report::collect(&ctx.ledger, anchor.as_ref()).map_err(collect_error)?;
    let mut doc = report::build(&collected.records, &collected.state, collected.verification);
    doc.live = collected.live.as_ref().map(report::LiveSection::from_read);
    if let Some(l) = &collected.live {
        eprintln!("note: {}", l.describe());
    }
    let text = render(&doc, format);
    let code = if doc.verification.ok {
        0
    } else {
        ExitKind::Integrity.code()
    };
    match &args.out {
        None => {
            let mut out = std::io::stdout().lock();
            match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
                Ok(()) => {}
                // `| head` closed the pipe: not an error.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                Err(e) => return Err(output_error("to stdout", e)),
            }
        }
        Some(path) => {
            write_atomic(path, |f| {
                f.write_all(text.as_bytes())
                    .map_err(|e| output_error(&path.display().to_string(), e))
            })?;
            print_written(&doc, format, path, code, ctx);
        }
    }
    if code != 0 {
        eprintln!(
            "warning: the report is NOT verified: {}",
            doc.verification.findings.join("; ")
        );
    }
    Ok(ExitCode::from(code))
}

fn render(doc: &Report, format: ReportFormat) -> String {
    match format {
        ReportFormat::Md => report::to_markdown(doc),
        ReportFormat::Html => report::to_html(doc),
        ReportFormat::Json => {
            // Pretty: the document is meant to be read and archived as well as parsed.
            let mut s = serde_json::to_string_pretty(&report::to_json(doc))
                .expect("a JSON value always prints");
            s.push('\n');
            s
        }
    }
}

/// With `--out`, stdout gets one line saying what was written (JSON with `--json`).
fn print_written(doc: &Report, format: ReportFormat, path: &Path, code: u8, ctx: &Ctx) {
    let f = &doc.verification.facts;
    let fmt = match format {
        ReportFormat::Md => "md",
        ReportFormat::Html => "html",
        ReportFormat::Json => "json",
    };
    if ctx.json {
        let v = serde_json::json!({
            "ok": doc.verification.ok,
            "out": path.display().to_string(),
            "format": fmt,
            "phase": doc.outcome.phase,
            "ledger_id": f.ledger_id.to_string(),
            "head_seq": f.head_seq,
            "head_hash": f.head_hash,
            "findings": doc.verification.findings,
            "exit_code": code,
        });
        let mut v = v;
        if let Some(l) = &doc.live {
            v["live"] = serde_json::to_value(l).unwrap_or_default();
        }
        println!("{v}");
    } else {
        println!(
            "wrote the {fmt} report to {} ({}; head seq {} {})",
            path.display(),
            if doc.verification.ok {
                "verified"
            } else {
                "NOT verified"
            },
            f.head_seq.map_or("-".into(), |s| s.to_string()),
            f.head_hash.as_deref().unwrap_or("-")
        );
    }
}

fn collect_error(e: CollectError) -> CliError {
    match e {
        CollectError::Ledger(e) => CliError::from(e),
        CollectError::Unreadable {
            source,
            verify_problem,
        } => {
            let mut message = format!("cannot report on this ledger: {source}");
            if let Some(p) = verify_problem {
                message.push_str(&format!(" (ledger verify: {p})"));
            }
            CliError::new(ExitKind::Integrity, message).hint(
                "keep the ledger folder untouched as evidence; `oms-upgrade ledger verify` and \
                 `oms-upgrade ledger export` show what is stored",
            )
        }
        e @ CollectError::Empty { .. } => CliError::new(ExitKind::Input, e.to_string()).hint(
            "record a run first with `oms-upgrade init`, or point --ledger at the run's ledger",
        ),
    }
}
