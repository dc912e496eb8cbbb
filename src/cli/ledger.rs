//! `oms-upgrade ledger ...`: verify, log, export, checkpoint.
//!
//! Read-only commands over the ledger (`src/ledger`). They open the ledger with
//! [`LedgerReader`], which needs the ledger to itself (sled 0.34 has no read-only mode), so
//! they fail with exit code 4 while an upgrade holds it. Exit codes used here: 0 intact /
//! done, 3 the chain is broken (or the ledger is damaged), 4 the ledger is busy, 5 bad input
//! (missing folder, a folder that is not a ledger, unreadable or invalid checkpoint file),
//! 1 anything unexpected.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::events::EventDecoder;
use crate::ledger::record::RecordRef;
use crate::ledger::store::key_seq;
use crate::ledger::{
    Anchor, AnchorError, ExportError, LedgerError, LedgerReader, VerifyReport, export, verify,
    verify_chain,
};

use super::{CliError, CmdResult, Ctx, ExitKind};

/// Ledger subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum LedgerCommand {
    /// Walk the hash chain and report whether the record is intact.
    ///
    /// Prints OK with the record count and head hash, or the first bad sequence number and
    /// what is wrong. Exit code 0 when intact, 3 when not.
    Verify(VerifyArgs),
    /// Show the timeline: seq, time, actor, event, short hash (--json: one object per record).
    Log(LogArgs),
    /// Write the whole ledger as JSON Lines: stored bytes (base64), hashes and a decoded view.
    ///
    /// The export can be checked without oms-upgrade by `ledger-schema/verify_export.py`.
    Export(ExportArgs),
    /// Print (or write) a checkpoint of the current head: ledger id, seq and head hash.
    ///
    /// Keep it outside the ledger folder (e.g. paste it into the change ticket); `ledger
    /// verify --anchor FILE` then detects a cut tail or a ledger swapped for an older copy.
    Checkpoint(CheckpointArgs),
}

/// Arguments of `ledger verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// A checkpoint file written by `ledger checkpoint`, to check the ledger against.
    #[arg(long, value_name = "FILE")]
    pub anchor: Option<PathBuf>,
    /// Check the hash chain only, not whether payloads decode with this build's event
    /// vocabulary (for ledgers written by a newer oms-upgrade).
    #[arg(long)]
    pub chain_only: bool,
}

/// Arguments of `ledger log`.
#[derive(Debug, clap::Args)]
pub struct LogArgs {}

/// Arguments of `ledger export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Write to FILE (atomically: complete or absent) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Arguments of `ledger checkpoint`.
#[derive(Debug, clap::Args)]
pub struct CheckpointArgs {
    /// Write the checkpoint to FILE (atomically) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Runs a ledger subcommand.
pub fn run(cmd: LedgerCommand, ctx: &Ctx) -> CmdResult {
    match cmd {
        LedgerCommand::Verify(args) => cmd_verify(args, ctx),
        LedgerCommand::Log(args) => cmd_log(args, ctx),
        LedgerCommand::Export(args) => cmd_export(args, ctx),
        LedgerCommand::Checkpoint(args) => cmd_checkpoint(args, ctx),
    }
}

/// The event vocabulary's decoder, for the decoded views and payload checks.
fn decoder() -> EventDecoder {
    EventDecoder
}

/// Sorts a ledger error into an exit kind with a hint.
pub fn ledger_error(e: LedgerError) -> CliError {
    let message = e.to_string();
    let (kind, hint) = match &e {
        LedgerError::Missing { .. } => (
            ExitKind::Input,
            format!(
                "pass --ledger DIR (or set OMS_UPGRADE_LEDGER) to the folder an upgrade recorded \
                 into; the default is {}",
                super::DEFAULT_LEDGER_DIR
            ),
        ),
        LedgerError::NotALedger { .. } => (
            ExitKind::Input,
            "point --ledger at a ledger folder: one that contains sled's `conf` and `db` files"
                .to_string(),
        ),
        LedgerError::Busy { .. } => (
            ExitKind::Busy,
            "wait for that run to finish and retry; sled 0.34 cannot open a database read-only, \
             so even `ledger verify`/`log`/`export` need the ledger to themselves"
                .to_string(),
        ),
        LedgerError::Io { source, .. }
            if matches!(
                source.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            (
                ExitKind::Input,
                "sled needs write access to the folder even to read it; copy the folder somewhere \
                 writable and point --ledger at the copy"
                    .to_string(),
            )
        }
        LedgerError::Store {
            source: sled::Error::Corruption { .. },
            ..
        }
        | LedgerError::DamagedHead { .. }
        | LedgerError::Conflict { .. }
        | LedgerError::Malformed { .. } => (
            ExitKind::Integrity,
            "keep the ledger folder untouched as evidence; `oms-upgrade ledger export` shows \
             every stored record"
                .to_string(),
        ),
        LedgerError::Encode { .. } => (
            ExitKind::Input,
            "this is a bug in the caller of the ledger; please report it".to_string(),
        ),
        _ => (
            ExitKind::Internal,
            "check the folder's permissions and free disk space, then retry with -v".to_string(),
        ),
    };
    CliError::new(kind, message).hint(hint)
}

fn anchor_error(e: AnchorError) -> CliError {
    let hint = match &e {
        AnchorError::Io { .. } => "check the path given to --anchor and that it is readable",
        AnchorError::Invalid { .. } => {
            "use the text printed by `oms-upgrade ledger checkpoint`, unchanged"
        }
    };
    CliError::new(ExitKind::Input, e.to_string()).hint(hint)
}

fn output_error(what: &str, e: std::io::Error) -> CliError {
    CliError::new(ExitKind::Internal, format!("cannot write {what}: {e}"))
        .hint("check that the output location exists, is writable and has free space")
}

/// Writes to stdout; a closed pipe (`| head`) ends the command quietly.
fn emit(out: &mut dyn Write, text: &str) -> Result<bool, CliError> {
    match out.write_all(text.as_bytes()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(output_error("to stdout", e)),
    }
}

/// Writes a file so that it is either complete or absent: `fill` writes a temporary file in
/// the same folder, which is fsynced and then renamed over `path`.
fn write_atomic<T>(
    path: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> Result<T, CliError>,
) -> Result<T, CliError> {
    let io = |e: std::io::Error| output_error(&path.display().to_string(), e);
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io(std::io::Error::other("the path has no file name")))?;
    let tmp = dir.join(format!(".{}.part", name.to_string_lossy()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        let value = fill(&mut f)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(value)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

// ---------------------------------------------------------------------------------------

fn cmd_verify(args: VerifyArgs, ctx: &Ctx) -> CmdResult {
    // The anchor is read first: a bad --anchor is bad input whatever state the ledger is in.
    let anchor = args
        .anchor
        .as_deref()
        .map(Anchor::read_file)
        .transpose()
        .map_err(anchor_error)?;
    let reader = LedgerReader::open(&ctx.ledger).map_err(ledger_error)?;
    let report = if args.chain_only {
        verify_chain(reader.view(), anchor.as_ref())
    } else {
        verify(reader.view(), anchor.as_ref(), &decoder())
    }
    .map_err(ledger_error)?;
    print_report(&report, ctx)
}

fn print_report(report: &VerifyReport, ctx: &Ctx) -> CmdResult {
    let code = if report.is_ok() {
        0
    } else {
        ExitKind::Integrity.code()
    };
    let mut out = std::io::stdout().lock();
    if ctx.json {
        let mut v = report.to_json();
        v["ledger"] = ctx.ledger.display().to_string().into();
        v["exit_code"] = code.into();
        emit(&mut out, &format!("{v}\n"))?;
        return Ok(ExitCode::from(code));
    }
    let mut text = format!(
        "ledger {}\n  id:      {}\n",
        ctx.ledger.display(),
        report.ledger_id
    );
    let what = if report.payloads_checked {
        "chain intact, payloads decoded"
    } else {
        "chain intact (payloads not decoded)"
    };
    match &report.problem {
        None => {
            text += &format!("  status:  OK: {} records, {what}\n", report.records);
            match report.head {
                Some((seq, hash)) => text += &format!("  head:    seq {seq}  {hash}\n"),
                None => text += "  head:    none (no records yet)\n",
            }
            if let Some(a) = &report.anchor {
                text += &format!("  anchor:  seq {} {} matches\n", a.seq, a.head);
            }
        }
        Some(p) => {
            text += &format!(
                "  status:  BROKEN at seq {}: {}\n",
                p.seq,
                p.kind.describe()
            );
            text += &format!("  detail:  {}\n", p.detail);
            match report.head {
                Some((seq, hash)) => {
                    text += &format!(
                        "  intact:  {} records before it (up to seq {seq}, hash {})\n",
                        report.records,
                        hash.short()
                    )
                }
                None => text += "  intact:  no record before it\n",
            }
        }
    }
    emit(&mut out, &text)?;
    if !report.is_ok() {
        eprintln!(
            "hint: keep the ledger folder untouched as evidence; `oms-upgrade ledger export` shows \
             every stored record"
        );
    }
    Ok(ExitCode::from(code))
}

fn cmd_log(_args: LogArgs, ctx: &Ctx) -> CmdResult {
    let reader = LedgerReader::open(&ctx.ledger).map_err(ledger_error)?;
    let decoder = decoder();
    let mut out = std::io::stdout().lock();
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_header(["SEQ", "TIME (UTC)", "ACTOR", "EVENT", "HASH"]);
    for entry in reader.view().entries() {
        let (k, v) = entry.map_err(ledger_error)?;
        let seq = key_seq(&k).map_or_else(|| format!("key {}", hex::encode(&k)), |s| s.to_string());
        match RecordRef::parse(&v) {
            Ok(r) => {
                if ctx.json {
                    let mut line = crate::ledger::export::record_view(&r, &decoder);
                    line["hash"] = r.hash.to_hex().into();
                    line["prev_hash"] = r.prev_hash.to_hex().into();
                    if !emit(&mut out, &format!("{line}\n"))? {
                        return Ok(ExitCode::SUCCESS);
                    }
                } else {
                    table.add_row([
                        seq,
                        crate::ledger::record::rfc3339_micros(r.timestamp_micros),
                        format!("{}@{}", r.operator, r.host),
                        format!("{} v{}", r.event_type, r.schema_version),
                        r.hash.short(),
                    ]);
                }
            }
            Err(e) => {
                if ctx.json {
                    let line = serde_json::json!({ "seq": key_seq(&k), "error": e.to_string() });
                    if !emit(&mut out, &format!("{line}\n"))? {
                        return Ok(ExitCode::SUCCESS);
                    }
                } else {
                    table.add_row([
                        seq,
                        "?".into(),
                        "?".into(),
                        format!("(unreadable: {e})"),
                        "?".into(),
                    ]);
                }
            }
        }
    }
    if !ctx.json {
        if table.row_count() == 0 {
            emit(&mut out, "(the ledger has no records yet)\n")?;
        } else {
            emit(&mut out, &format!("{table}\n"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_export(args: ExportArgs, ctx: &Ctx) -> CmdResult {
    let reader = LedgerReader::open(&ctx.ledger).map_err(ledger_error)?;
    let decoder = decoder();
    let map = |e: ExportError| match e {
        ExportError::Ledger(e) => ledger_error(e),
        ExportError::Write(e) => output_error("the export", e),
    };
    let Some(path) = args.out else {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        return match export(reader.view(), &decoder, &mut out) {
            Ok(_) => Ok(ExitCode::SUCCESS),
            Err(ExportError::Write(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => Err(map(e)),
        };
    };
    let n = write_atomic(&path, |f| {
        export(reader.view(), &decoder, &mut std::io::BufWriter::new(f)).map_err(map)
    })?;
    let mut out = std::io::stdout().lock();
    if ctx.json {
        let v = serde_json::json!({ "ok": true, "out": path.display().to_string(), "records": n });
        emit(&mut out, &format!("{v}\n"))?;
    } else {
        emit(
            &mut out,
            &format!("exported {n} records to {}\n", path.display()),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_checkpoint(args: CheckpointArgs, ctx: &Ctx) -> CmdResult {
    let reader = LedgerReader::open(&ctx.ledger).map_err(ledger_error)?;
    // A checkpoint vouches for the chain up to its head, so the chain is verified first.
    // Payloads are not decoded: a checkpoint attests bytes, not their meaning.
    let report = verify_chain(reader.view(), None).map_err(ledger_error)?;
    if !report.is_ok() {
        eprintln!("error: refusing to checkpoint a broken ledger");
        return print_report(&report, ctx);
    }
    let Some((seq, head)) = report.head else {
        return Err(CliError::new(
            ExitKind::Input,
            format!(
                "ledger {} has no records yet; there is nothing to checkpoint",
                ctx.ledger.display()
            ),
        )
        .hint("take the checkpoint after the upgrade has recorded something"));
    };
    let anchor = Anchor {
        ledger_id: reader.ledger_id(),
        seq,
        head,
    };
    let text = anchor.to_text();
    if let Some(path) = &args.out {
        write_atomic(path, |f| {
            f.write_all(text.as_bytes())
                .map_err(|e| output_error(&path.display().to_string(), e))
        })?;
    }
    let mut out = std::io::stdout().lock();
    if ctx.json {
        let v = serde_json::json!({
            "ok": true,
            "ledger_id": anchor.ledger_id.hyphenated().to_string(),
            "seq": seq,
            "head": head.to_hex(),
            "text": text,
            "out": args.out.as_ref().map(|p| p.display().to_string()),
        });
        emit(&mut out, &format!("{v}\n"))?;
    } else if let Some(path) = &args.out {
        emit(
            &mut out,
            &format!(
                "wrote checkpoint of seq {seq} (head {}) to {}\n",
                head.short(),
                path.display()
            ),
        )?;
    } else {
        emit(&mut out, &text)?;
    }
    Ok(ExitCode::SUCCESS)
}
