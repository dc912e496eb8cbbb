//! `oms-upgrade ledger ...`: verify, log, export, checkpoint, keygen.
//!
//! Read-only commands over the ledger (`src/ledger`). They open the ledger with
//! [`LedgerReader`], which needs the ledger to itself (sled 0.34 has no read-only mode), so
//! `export` and `checkpoint` fail with exit code 4 while an upgrade holds it; `verify` and
//! `log` then read a verified copy instead ([`LedgerReader::open_or_live`]) and say so,
//! failing with 4 only when no copy verifies. Exit codes used here: 0 intact /
//! done, 3 the chain is broken (or the ledger is damaged, a signed checkpoint is forged, a
//! dump or the live node drifted from the record), 4 the ledger is busy, 5 bad input
//! (missing folder, a folder that is not a ledger, unreadable or invalid checkpoint or key
//! file), 6 Docker or the metadata database cannot be reached (`verify --live`), 1 anything
//! unexpected.
//!
//! Signed checkpoints: `keygen` makes an Ed25519 key, `checkpoint --sign KEYFILE` signs,
//! `verify --anchor FILE --pubkey KEY` checks the signature before the chain. `run` and
//! `rollback` write a signed checkpoint next to the ledger folder when a key is configured
//! ([`checkpoint_journal`]), and check the ledger against it before acting
//! (`super::shell::guard_ledger`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::Utc;

use crate::drift::{self, LiveReport};
use crate::events::{DumpArtifact, EventDecoder};
use crate::history::{self, Verify};
use crate::ledger::record::RecordRef;
use crate::ledger::sign::{PublicKey, SignatureProblem, SigningKey, verify_checkpoint};
use crate::ledger::store::key_seq;
use crate::ledger::{
    Anchor, Checkpoint, ExportError, LedgerReader, LiveRead, SignedCheckpoint, VerifyReport,
    export, verify, verify_chain,
};
use crate::replay::Phase;
use crate::report::DumpFileCheck;

use super::error::output_error;
use super::output::{emit, write_atomic};
use super::{CliError, CmdResult, Ctx, ExitKind};

/// Environment variable naming the private key file that signs checkpoints (`run` and
/// `rollback` write a signed checkpoint when it is set; `keygen` writes there by default).
pub const SIGNING_KEY_ENV: &str = "OMS_UPGRADE_SIGNING_KEY";

/// Where `keygen` writes when neither `--out` nor [`SIGNING_KEY_ENV`] is given.
pub const DEFAULT_KEY_FILE: &str = "oms-upgrade-signing.key";

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
    /// With --sign KEYFILE the checkpoint also carries its time and an Ed25519 signature.
    Checkpoint(CheckpointArgs),
    /// Make an Ed25519 key pair for signing checkpoints.
    ///
    /// Writes the private key to KEYFILE (mode 0600, never overwritten) and the public key
    /// to KEYFILE.pub, and prints the public key. Keep the private key away from the
    /// ledger's host if you can; give the public key to whoever verifies.
    Keygen(KeygenArgs),
    /// Send every local record the witness lacks (and the signed checkpoint beside the
    /// ledger folder) to the witness; catches a best-effort run's witness up.
    ///
    /// Checks the local chain first and pushes nothing from a broken one. Exit code 0 when
    /// pushed, 3 on a fork (the witness holds another history under this ledger id), on a
    /// broken local chain, or when the witness holds records beyond the local head (a cut
    /// or older local ledger), 5 bad input, 6 the witness cannot be reached.
    Push(super::witness::PushArgs),
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
    /// Require the --anchor checkpoint to be signed by this public key: `ed25519:<hex>` or
    /// a file holding it (as written by `ledger keygen`).
    #[arg(long, value_name = "KEY")]
    pub pubkey: Option<String>,
    /// Also re-hash every dump file the ledger names; missing or altered ones fail.
    #[arg(long)]
    pub artifacts: bool,
    /// Also compare the recorded end state with the live node: the running container,
    /// ha.config, the schema version and the dumps. Needs Docker and the metadata DB.
    #[arg(long)]
    pub live: bool,
    /// With --live: read the metadata DB password from this file (default:
    /// OMS_META_PASSWORD, then the config.yaml the old container mounts).
    #[arg(long, value_name = "FILE", requires = "live")]
    pub password_file: Option<PathBuf>,
    /// Also compare the ledger with the witness copy (`--witness URL` or
    /// OMS_UPGRADE_WITNESS) and name the first difference: truncated or replaced by an
    /// older copy, rewritten, forked, corrupt witness rows, or records not pushed yet. The
    /// witness's signed checkpoints are checked too (their signatures with --pubkey).
    #[command(flatten)]
    pub witness: super::witness::WitnessOpts,
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
    /// Sign the checkpoint with this private key file (from `ledger keygen`).
    #[arg(long, value_name = "KEYFILE")]
    pub sign: Option<PathBuf>,
}

/// Arguments of `ledger keygen`.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// The private key file to create (the public key goes to KEYFILE.pub). Default:
    /// $OMS_UPGRADE_SIGNING_KEY, else ./oms-upgrade-signing.key.
    #[arg(long, value_name = "KEYFILE")]
    pub out: Option<PathBuf>,
}

/// Runs a ledger subcommand.
pub fn run(cmd: LedgerCommand, ctx: &Ctx) -> CmdResult {
    match cmd {
        LedgerCommand::Verify(args) => cmd_verify(args, ctx),
        LedgerCommand::Log(args) => cmd_log(args, ctx),
        LedgerCommand::Export(args) => cmd_export(args, ctx),
        LedgerCommand::Checkpoint(args) => cmd_checkpoint(args, ctx),
        LedgerCommand::Keygen(args) => cmd_keygen(args, ctx),
        LedgerCommand::Push(args) => super::witness::push(args, ctx),
    }
}

/// The event vocabulary's decoder, for the decoded views and payload checks.
fn decoder() -> EventDecoder {
    EventDecoder
}

// ---------------------------------------------------------------------------------------

/// Reads the signing key named by `--sign` or, without it, by `OMS_UPGRADE_SIGNING_KEY`;
/// `None` when neither is given. `run` and `rollback` call this before acting, so a bad key
/// is reported before anything changes.
pub fn load_signing_key(arg: Option<&Path>) -> Result<Option<SigningKey>, CliError> {
    let path = match arg {
        Some(p) => p.to_path_buf(),
        None => match std::env::var_os(SIGNING_KEY_ENV) {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => return Ok(None),
        },
    };
    SigningKey::read_file(&path)
        .map(Some)
        .map_err(CliError::from)
}

pub use crate::ledger::sign::signed_checkpoint_path;

/// Signs a checkpoint of the head of the ledger `journal` holds open (its chain was
/// verified when it was opened, and every record since was appended by this process) and
/// writes it atomically to [`signed_checkpoint_path`]. Taken while the writer lock is held,
/// so no other process can append between the head being read and the checkpoint written.
pub fn checkpoint_journal(
    journal: &crate::executor::Journal,
    key: &SigningKey,
) -> Result<SignedCheckpoint, CliError> {
    let ledger = journal.ledger();
    let out = signed_checkpoint_path(ledger.dir());
    let (seq, head) = ledger.head().ok_or_else(|| {
        CliError::new(
            ExitKind::Refused,
            "the ledger is empty: nothing to checkpoint",
        )
        .hint("run `oms-upgrade init` first")
    })?;
    let anchor = Anchor {
        ledger_id: ledger.ledger_id(),
        seq,
        head,
    };
    let signed = key.sign_checkpoint(anchor, Utc::now());
    let text = signed.to_text();
    write_atomic(&out, |f| {
        f.write_all(text.as_bytes())
            .map_err(|e| output_error(&out.display().to_string(), e))
    })
    .map_err(|e| {
        CliError::new(
            e.kind,
            format!("the signed checkpoint could not be written: {}", e.message),
        )
        .hint(format!(
            "take it by hand once the command has ended: `oms-upgrade ledger checkpoint --sign \
             KEYFILE --out {}`",
            out.display()
        ))
    })?;
    Ok(signed)
}

/// The recorded dumps and their re-hash (same order), or why they were not checked.
type DumpsChecked = Result<(Vec<DumpArtifact>, Vec<DumpFileCheck>), String>;

/// What `verify` found besides the chain.
#[derive(Default)]
struct Extras<'a> {
    /// Set when a run held the ledger and a verified copy was checked instead.
    read: Option<LiveRead>,
    /// The signed checkpoint given with --anchor, and whether its signature was checked.
    signed: Option<(&'a SignedCheckpoint, bool)>,
    /// --artifacts/--live: the recorded dumps and their re-hash, or why not checked.
    dumps: Option<DumpsChecked>,
    /// --live: the comparison.
    live: Option<LiveReport>,
    /// --artifacts/--live: partial files an interrupted dump left in the run's dump folder
    /// (the folder, and what is in it or why it could not be read).
    partials: Option<(String, Result<Vec<crate::dump::PartialFile>, String>)>,
    /// --witness: the comparison with the witness copy.
    witness: Option<super::witness::WitnessFindings>,
}

impl Extras<'_> {
    fn dumps_ok(&self) -> bool {
        match &self.dumps {
            Some(Ok((_, checks))) => checks.iter().all(|c| c.present && c.matches),
            _ => true,
        }
    }

    fn live_ok(&self) -> bool {
        self.live.as_ref().is_none_or(LiveReport::is_ok)
    }

    fn witness_ok(&self) -> bool {
        self.witness
            .as_ref()
            .is_none_or(super::witness::WitnessFindings::is_ok)
    }
}

fn cmd_verify(args: VerifyArgs, ctx: &Ctx) -> CmdResult {
    if args.pubkey.is_some() && args.anchor.is_none() && args.witness.witness.is_none() {
        return Err(CliError::new(
            ExitKind::Input,
            "--pubkey checks a signed checkpoint: give the checkpoint with --anchor FILE (or \
             the witness that holds them with --witness URL)",
        )
        .hint("e.g. `oms-upgrade ledger verify --anchor ledger.checkpoint --pubkey KEY.pub`"));
    }
    // The checkpoint and key are read first: bad input whatever state the ledger is in.
    let checkpoint = args
        .anchor
        .as_deref()
        .map(Checkpoint::read_file)
        .transpose()
        .map_err(CliError::from)?;
    let pubkey = args
        .pubkey
        .as_deref()
        .map(PublicKey::from_arg)
        .transpose()
        .map_err(CliError::from)?;
    let mut extras = Extras::default();
    if let Some(cp) = &checkpoint {
        match &pubkey {
            Some(key) => match verify_checkpoint(cp, key) {
                Ok(signed) => extras.signed = Some((signed, true)),
                // A forged checkpoint vouches for nothing: the chain is not compared with it.
                Err(problem) => {
                    return print_signature_rejection(&problem, cp, args.anchor.as_deref(), ctx);
                }
            },
            None => {
                if let Checkpoint::Signed(s) = cp {
                    extras.signed = Some((s, false));
                }
            }
        }
    }
    let anchor = checkpoint.as_ref().map(Checkpoint::anchor);
    let reader = LedgerReader::open_or_live(&ctx.ledger).map_err(CliError::from)?;
    extras.read = reader.live().cloned();
    let report = if args.chain_only {
        verify_chain(reader.view(), anchor)
    } else {
        verify(reader.view(), anchor, &decoder())
    }
    .map_err(CliError::from)?;
    if args.witness.witness.is_some() {
        // The records that verified (all of them on an intact chain; those up to the
        // break otherwise), compared with the witness's copy.
        let local: Vec<crate::ledger::Record> = reader
            .records()
            .map_while(Result::ok)
            .take_while(|r| report.problem.as_ref().is_none_or(|p| r.seq < p.seq))
            .collect();
        extras.witness = super::witness::verify_against(
            &args.witness,
            &ctx.ledger,
            reader.ledger_id(),
            &local,
            report.is_ok(),
            pubkey.as_ref(),
            super::witness::WitnessRead {
                policy: report
                    .is_ok()
                    .then(|| history::load(reader.view(), Verify::ByCaller).ok())
                    .flatten()
                    .and_then(|h| h.state.plan().and_then(|p| p.witness()).map(|w| w.policy)),
                live_up_to: extras.read.as_ref().map(|l| l.seq.unwrap_or(0)),
            },
        )?;
    }
    if !(args.artifacts || args.live) {
        return print_report(&report, ctx, &extras);
    }
    let state = if report.is_ok() {
        // The chain was just verified on this handle: read it without a second walk.
        history::load(reader.view(), Verify::ByCaller)
            .map(|h| h.state)
            .map_err(|e| format!("the ledger does not replay: {e}"))
    } else {
        Err("the chain is broken, so the record cannot be trusted to say what to expect".into())
    };
    // The ledger is released before the world is looked at.
    drop(reader);
    let state = match state {
        Ok(s) => s,
        Err(why) => {
            extras.dumps = Some(Err(why));
            return print_report(&report, ctx, &extras);
        }
    };
    let recorded: Vec<DumpArtifact> = state.artifacts().into_iter().cloned().collect();
    extras.partials = state.plan().map(|p| {
        let dir = p.dump_dir();
        let found = crate::dump::partial_files(Path::new(&dir)).map_err(|e| e.to_string());
        (dir, found)
    });
    if args.live {
        let exp = drift::expectations(&state).map_err(|e| {
            CliError::new(
                ExitKind::Refused,
                format!("cannot compare with the live node: {e}"),
            )
            .hint(
                "finish the run (`oms-upgrade run` or `oms-upgrade rollback`) first; \
                     `ledger verify --artifacts` checks the dumps meanwhile",
            )
        })?;
        // The nodes are reached as `run` and `rollback` reach them.
        let (ssh, tls) = super::remote::remote_settings();
        let access = super::live::NodeAccess { ssh, tls };
        let observed = super::live::observe(&exp, &state, args.password_file.as_deref(), &access)?;
        extras.dumps = Some(Ok((recorded, observed.dumps.clone())));
        extras.live = Some(drift::compare(&exp, &observed));
    } else {
        let checks = super::live::check_dumps(&recorded);
        extras.dumps = Some(Ok((recorded, checks)));
    }
    print_report(&report, ctx, &extras)
}

fn print_signature_rejection(
    problem: &SignatureProblem,
    checkpoint: &Checkpoint,
    file: Option<&Path>,
    ctx: &Ctx,
) -> CmdResult {
    let code = ExitKind::Integrity.code();
    let file = file.map(|p| p.display().to_string()).unwrap_or_default();
    let mut out = std::io::stdout().lock();
    if ctx.json {
        let v = serde_json::json!({
            "ok": false,
            "ledger": ctx.ledger.display().to_string(),
            "anchor_file": file,
            "signature": signature_json(checkpoint, false),
            "problem": { "seq": null, "kind": problem.kind(), "detail": problem.to_string() },
            "exit_code": code,
        });
        emit(&mut out, &format!("{v}\n"))?;
    } else {
        emit(
            &mut out,
            &format!(
                "checkpoint {file}\n  status:  REJECTED: {}\n  detail:  {problem}\n",
                problem.kind()
            ),
        )?;
        eprintln!(
            "hint: the checkpoint cannot be trusted; compare it with the copy kept in the change \
             ticket, and check that --pubkey is the key that signs this node's checkpoints"
        );
    }
    Ok(ExitCode::from(code))
}

fn signature_json(checkpoint: &Checkpoint, verified: bool) -> serde_json::Value {
    match checkpoint {
        Checkpoint::Unsigned(_) => serde_json::json!({ "signed": false }),
        Checkpoint::Signed(s) => serde_json::json!({
            "signed": true,
            "key_id": s.key_id,
            "time": s.time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "verified": verified,
        }),
    }
}

fn dump_state(c: &DumpFileCheck) -> &'static str {
    match (c.present, c.matches) {
        (true, true) => "ok",
        (false, _) => "missing",
        (true, false) => "altered",
    }
}

fn dumps_json(dumps: &DumpsChecked) -> serde_json::Value {
    match dumps {
        Err(why) => serde_json::json!({ "checked": false, "reason": why }),
        Ok((recorded, checks)) => {
            let files: Vec<serde_json::Value> = recorded
                .iter()
                .zip(checks)
                .map(|(a, c)| {
                    serde_json::json!({
                        "db": a.db.label(),
                        "file": a.file,
                        "state": dump_state(c),
                        "expected_size": a.size,
                        "expected_blake3": a.blake3_hex,
                        "found_size": c.found_size,
                        "found_blake3": c.found_blake3,
                        "error": c.error,
                    })
                })
                .collect();
            let count = |s: &str| checks.iter().filter(|c| dump_state(c) == s).count();
            serde_json::json!({
                "checked": true,
                "ok": count("ok") == checks.len(),
                "files": files,
                "missing": count("missing"),
                "altered": count("altered"),
            })
        }
    }
}

fn dumps_text(dumps: &DumpsChecked) -> String {
    let (recorded, checks) = match dumps {
        Err(why) => return format!("dumps:     not checked: {why}\n"),
        Ok(x) => x,
    };
    if recorded.is_empty() {
        return "dumps:     the ledger records no dump\n".into();
    }
    let count = |s: &str| checks.iter().filter(|c| dump_state(c) == s).count();
    let mut text = format!(
        "dumps:     {} recorded, {} missing, {} altered\n",
        recorded.len(),
        count("missing"),
        count("altered")
    );
    for (a, c) in recorded.iter().zip(checks) {
        let state = dump_state(c);
        text += &format!(
            "  {:<6} {:<8} {}\n",
            a.db.label(),
            state.to_uppercase(),
            a.file
        );
        if state != "ok" {
            text += &format!(
                "           expected {} bytes, blake3 {}\n",
                a.size, a.blake3_hex
            );
            match (&c.found_blake3, c.found_size, &c.error) {
                (Some(h), Some(n), _) => {
                    text += &format!("           found    {n} bytes, blake3 {h}\n")
                }
                (_, _, Some(e)) => text += &format!("           found    nothing: {e}\n"),
                _ => {}
            }
        }
    }
    text
}

fn partials_json(found: &Result<Vec<crate::dump::PartialFile>, String>) -> serde_json::Value {
    match found {
        Ok(files) => files
            .iter()
            .map(|f| serde_json::json!({ "file": f.path.display().to_string(), "size": f.size }))
            .collect(),
        Err(e) => serde_json::json!({ "checked": false, "reason": e }),
    }
}

/// Partial files are listed, not failed: they are leftovers of an interrupted dump, never a
/// recorded artifact, and `run` or `rollback` removes them (recording which).
fn partials_text(dir: &str, found: &Result<Vec<crate::dump::PartialFile>, String>) -> String {
    match found {
        Ok(files) if files.is_empty() => String::new(),
        Ok(files) => {
            let mut text = format!(
                "partial:   {} file(s) an interrupted dump left in {dir}; `oms-upgrade run` or \
                 `oms-upgrade rollback` removes them\n",
                files.len()
            );
            for f in files {
                text += &format!("  {} ({} bytes)\n", f.path.display(), f.size);
            }
            text
        }
        Err(e) => format!("partial:   not checked: cannot read {dir}: {e}\n"),
    }
}

fn live_text(live: &LiveReport) -> String {
    let what = match live.phase {
        Phase::RolledBack => "after a completed rollback",
        _ => "after a completed upgrade",
    };
    let unreached = live.unreachable().len();
    let mut text = format!(
        "live:      {what}: {}\n",
        match (live.drifts.len(), unreached) {
            (0, 0) => "no drift".to_string(),
            (0, u) => format!("no drift on the nodes reached; {u} node(s) NOT reached"),
            (d, 0) => format!("{d} field(s) drifted"),
            (d, u) => format!("{d} field(s) drifted; {u} node(s) NOT reached"),
        }
    );
    for s in &live.subjects {
        let line = format!(
            "  {:<28} {:<12} {}",
            s.subject,
            s.status.replace('_', " "),
            s.detail.as_deref().unwrap_or("")
        );
        text += line.trim_end();
        text += "\n";
    }
    if !live.drifts.is_empty() {
        let mut table = comfy_table::Table::new();
        table
            .load_preset(comfy_table::presets::NOTHING)
            .set_header(["SUBJECT", "FIELD", "RECORDED", "FOUND"]);
        for d in &live.drifts {
            table.add_row([&d.subject, &d.field, &d.recorded, &d.found]);
        }
        text += "drift:\n";
        for row in table.lines() {
            text += row.trim_end();
            text += "\n";
        }
    }
    text
}

fn print_report(report: &VerifyReport, ctx: &Ctx, extras: &Extras) -> CmdResult {
    let ok = report.is_ok() && extras.dumps_ok() && extras.live_ok() && extras.witness_ok();
    // A node that could not be reached is a service failure, not a finding against the
    // record: exit 6 when that is all that is wrong, 3 as soon as anything differs.
    let only_unreached = extras.live.as_ref().is_some_and(|l| {
        l.drifts.is_empty()
            && !l.unreachable().is_empty()
            && report.is_ok()
            && extras.dumps_ok()
            && extras.witness_ok()
    });
    let code = if ok {
        0
    } else if only_unreached {
        ExitKind::Service.code()
    } else {
        ExitKind::Integrity.code()
    };
    let mut out = std::io::stdout().lock();
    if ctx.json {
        let mut v = report.to_json();
        v["ok"] = ok.into();
        v["chain_ok"] = report.is_ok().into();
        v["ledger"] = ctx.ledger.display().to_string().into();
        if let Some(r) = &extras.read {
            // `live` already names the --live comparison when one was asked for.
            if extras.live.is_none() {
                v["live"] = true.into();
            }
            v["seq"] = r.seq.into();
            v["live_read"] = r.json_fields();
        }
        if let Some((s, verified)) = extras.signed {
            v["signature"] = signature_json(&Checkpoint::Signed(s.clone()), verified);
        }
        if let Some(d) = &extras.dumps {
            v["artifacts"] = dumps_json(d);
        }
        if let Some((dir, found)) = &extras.partials {
            v["artifacts"]["partial_files"] = partials_json(found);
            v["artifacts"]["dump_dir"] = dir.as_str().into();
        }
        if let Some(l) = &extras.live {
            v["live"] = serde_json::to_value(l).unwrap_or_default();
            v["live"]["ok"] = l.is_ok().into();
        }
        if let Some(w) = &extras.witness {
            v["witness"] = w.to_json();
        }
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
    if let Some(r) = &extras.read {
        let seq = r.seq.unwrap_or(0);
        text += &format!(
            "  running: live read as of seq {seq} while a run holds the ledger ({}): this \
             proves the chain up to seq {seq} only and cannot speak for records appended after \
             it; verify again when the run has ended\n",
            r.holder
        );
    }
    if let Some((s, verified)) = extras.signed {
        let time = s.time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        text += &if verified {
            format!(
                "  signed:  key-id {} at {time}, signature valid\n",
                s.key_id
            )
        } else {
            format!(
                "  signed:  key-id {} at {time}, signature NOT checked (pass --pubkey KEY)\n",
                s.key_id
            )
        };
    }
    if let Some(d) = &extras.dumps {
        text += &dumps_text(d);
    }
    if let Some((dir, found)) = &extras.partials {
        text += &partials_text(dir, found);
    }
    if let Some(l) = &extras.live {
        text += &live_text(l);
    }
    if let Some(w) = &extras.witness {
        text += &w.to_text();
    }
    emit(&mut out, &text)?;
    if !report.is_ok() {
        eprintln!(
            "hint: keep the ledger folder untouched as evidence; `oms-upgrade ledger export` shows \
             every stored record"
        );
    }
    if let Some(l) = extras.live.as_ref().filter(|l| !l.unreachable().is_empty()) {
        let names: Vec<&str> = l.unreachable().iter().map(|s| s.subject.as_str()).collect();
        eprintln!(
            "hint: not every node was compared ({}): check that each node's engine answers at \
             the endpoint the plan records (ssh: OMS_UPGRADE_SSH_KNOWN_HOSTS and \
             OMS_UPGRADE_SSH_IDENTITY; tcp: DOCKER_CERT_PATH), then run `ledger verify --live` \
             again",
            names.join(", ")
        );
    }
    if !extras.witness_ok() {
        eprintln!(
            "hint: the ledger and its witness copy disagree; keep both untouched as evidence (the \
             witness rows are never changed by oms-upgrade). `oms-upgrade ledger export` shows \
             the local records"
        );
    }
    Ok(ExitCode::from(code))
}

fn cmd_log(_args: LogArgs, ctx: &Ctx) -> CmdResult {
    let reader = LedgerReader::open_or_live(&ctx.ledger).map_err(CliError::from)?;
    let read = reader.live().cloned();
    let decoder = decoder();
    let mut out = std::io::stdout().lock();
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_header(["SEQ", "TIME (UTC)", "ACTOR", "EVENT", "HASH"]);
    for entry in reader.view().entries() {
        let (k, v) = entry.map_err(CliError::from)?;
        let seq = key_seq(&k).map_or_else(|| format!("key {}", hex::encode(&k)), |s| s.to_string());
        match RecordRef::parse(&v) {
            Ok(r) => {
                if ctx.json {
                    let mut line = crate::ledger::export::record_view(&r, &decoder);
                    line["hash"] = r.hash.to_hex().into();
                    line["prev_hash"] = r.prev_hash.to_hex().into();
                    if let Some(l) = &read {
                        line["live"] = true.into();
                        line["read_seq"] = l.seq.into();
                    }
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
        if let Some(l) = &read {
            emit(&mut out, &format!("({})\n", l.describe()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_export(args: ExportArgs, ctx: &Ctx) -> CmdResult {
    let reader = LedgerReader::open(&ctx.ledger).map_err(CliError::from)?;
    let decoder = decoder();
    let map = |e: ExportError| match e {
        ExportError::Ledger(e) => CliError::from(e),
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

/// The anchor of the ledger's head, after verifying the chain (payloads are not decoded:
/// a checkpoint attests bytes, not their meaning). `Ok(Err(report))` when the chain is
/// broken: a checkpoint must never vouch for a broken chain.
fn checkpoint_of(
    reader: &LedgerReader,
    dir: &Path,
) -> Result<Result<Anchor, VerifyReport>, CliError> {
    let report = verify_chain(reader.view(), None).map_err(CliError::from)?;
    if !report.is_ok() {
        return Ok(Err(report));
    }
    let Some((seq, head)) = report.head else {
        return Err(CliError::new(
            ExitKind::Input,
            format!(
                "ledger {} has no records yet; there is nothing to checkpoint",
                dir.display()
            ),
        )
        .hint("take the checkpoint after the upgrade has recorded something"));
    };
    Ok(Ok(Anchor {
        ledger_id: reader.ledger_id(),
        seq,
        head,
    }))
}

fn cmd_checkpoint(args: CheckpointArgs, ctx: &Ctx) -> CmdResult {
    // The key is read first: a bad key is bad input whatever state the ledger is in.
    let key = args
        .sign
        .as_deref()
        .map(SigningKey::read_file)
        .transpose()
        .map_err(CliError::from)?;
    let reader = LedgerReader::open(&ctx.ledger).map_err(CliError::from)?;
    let anchor = match checkpoint_of(&reader, &ctx.ledger)? {
        Ok(a) => a,
        Err(report) => {
            eprintln!("error: refusing to checkpoint a broken ledger");
            return print_report(&report, ctx, &Extras::default());
        }
    };
    drop(reader);
    // The CLI takes the clock; the checkpoint's time is a value from here on.
    let signed = key.map(|k| k.sign_checkpoint(anchor, Utc::now()));
    let text = match &signed {
        Some(s) => s.to_text(),
        None => anchor.to_text(),
    };
    if let Some(path) = &args.out {
        write_atomic(path, |f| {
            f.write_all(text.as_bytes())
                .map_err(|e| output_error(&path.display().to_string(), e))
        })?;
    }
    let (seq, head) = (anchor.seq, anchor.head);
    let mut out = std::io::stdout().lock();
    if ctx.json {
        let mut v = serde_json::json!({
            "ok": true,
            "ledger_id": anchor.ledger_id.hyphenated().to_string(),
            "seq": seq,
            "head": head.to_hex(),
            "text": text,
            "out": args.out.as_ref().map(|p| p.display().to_string()),
        });
        if let Some(s) = &signed {
            v["signature"] = signature_json(&Checkpoint::Signed(s.clone()), true);
        }
        emit(&mut out, &format!("{v}\n"))?;
    } else if let Some(path) = &args.out {
        let signed_by = signed
            .as_ref()
            .map(|s| format!(", signed by key-id {}", s.key_id))
            .unwrap_or_default();
        emit(
            &mut out,
            &format!(
                "wrote checkpoint of seq {seq} (head {}{signed_by}) to {}\n",
                head.short(),
                path.display()
            ),
        )?;
    } else {
        emit(&mut out, &text)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_keygen(args: KeygenArgs, ctx: &Ctx) -> CmdResult {
    let path = args
        .out
        .or_else(|| {
            std::env::var_os(SIGNING_KEY_ENV)
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from(DEFAULT_KEY_FILE));
    let mut pub_path = path.clone().into_os_string();
    pub_path.push(".pub");
    let pub_path = PathBuf::from(pub_path);
    let key = SigningKey::generate().map_err(CliError::from)?;
    key.write_new_file(&path).map_err(CliError::from)?;
    let public = key.public();
    let pub_text = format!(
        "# oms-upgrade checkpoint public key (key-id {})\n{}\n",
        public.key_id(),
        public.to_text()
    );
    write_atomic(&pub_path, |f| {
        f.write_all(pub_text.as_bytes())
            .map_err(|e| output_error(&pub_path.display().to_string(), e))
    })?;
    let mut out = std::io::stdout().lock();
    if ctx.json {
        let v = serde_json::json!({
            "ok": true,
            "private_key_file": path.display().to_string(),
            "public_key_file": pub_path.display().to_string(),
            "public_key": public.to_text(),
            "key_id": public.key_id(),
        });
        emit(&mut out, &format!("{v}\n"))?;
    } else {
        emit(
            &mut out,
            &format!(
                "private key: {} (mode 0600; keep it secret)\npublic key:  {} (in {})\nkey-id:      {}\n",
                path.display(),
                public.to_text(),
                pub_path.display(),
                public.key_id()
            ),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_checkpoint_goes_next_to_the_ledger_folder() {
        for (ledger, want) in [
            (
                "/var/lib/oms-upgrade/ledger",
                "/var/lib/oms-upgrade/ledger.checkpoint",
            ),
            (
                "/var/lib/oms-upgrade/ledger/",
                "/var/lib/oms-upgrade/ledger.checkpoint",
            ),
            ("ledger", "./ledger.checkpoint"),
            ("run-42/ledger", "run-42/ledger.checkpoint"),
        ] {
            assert_eq!(
                signed_checkpoint_path(Path::new(ledger)),
                PathBuf::from(want),
                "{ledger}"
            );
        }
    }
}
