//! The witness at the CLI edge: the `--witness` flags every witnessed command flattens in
//! ([`WitnessOpts`]), turning them into a target and a client ([`WitnessOpts::open`]), and
//! `oms-upgrade witness init`, which creates the tables and prints the grants a DBA runs.
//!
//! The password never travels in argv or the URL: it comes from `--witness-password-file`
//! or `OMS_WITNESS_PASSWORD`. The witness database must not be one of OMS's metadata
//! databases (a rollback restores those to an older state): callers pass the names they
//! know (the plan's), and `witness init` refuses OMS's default names.

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use super::metadb::password_from;
use super::metatls::tls_settings;
use super::output::emit;
use super::{CliError, CmdResult, Ctx, ExitKind};
use crate::dbconn::TlsMode;
use crate::ledger::sign::{PublicKey, signed_checkpoint_path};
use crate::ledger::{Checkpoint, LedgerReader, Record, verify_chain};
use crate::witness::compare::{
    CheckpointCheck, Comparison, LocalCheckpoint, check_checkpoints, check_local_checkpoint,
    compare,
};
use crate::witness::schema::{self, DEFAULT_AUDITOR, DEFAULT_WRITER};
use crate::witness::{MysqlWitness, Witness, WitnessCheckpoint, WitnessPolicy, WitnessTarget};

/// Environment variable naming the witness (`mysql://USER@HOST:PORT/DB`).
pub const WITNESS_ENV: &str = "OMS_UPGRADE_WITNESS";
/// Environment variable holding the witness user's password.
pub const WITNESS_PASSWORD_ENV: &str = "OMS_WITNESS_PASSWORD";
/// OMS's default metadata database names (`drc_rm_db`, `drc_cm_db`,
/// `drc_cm_heartbeat_db`), refused as a witness database even when no plan names others.
pub const DEFAULT_METADATA_DBS: [&str; 3] = ["oms_rm", "oms_cm", "oms_cm_hb"];

/// The witness flags, flattened into every command that can use a witness.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct WitnessOpts {
    /// The witness: an append-only copy of the ledger on a MySQL-protocol database,
    /// `mysql://USER@HOST:PORT/DB` (no password in it; see --witness-password-file).
    #[arg(long, value_name = "URL", env = WITNESS_ENV)]
    pub witness: Option<String>,
    /// File whose first line is the witness user's password (else OMS_WITNESS_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub witness_password_file: Option<PathBuf>,
    /// TLS to the witness: `required` (TLS with a verified certificate, or no connection),
    /// `preferred` (TLS when the server offers it; its certificate verified only against
    /// --witness-ca), `off`.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = TlsMode::Preferred)]
    pub witness_tls: TlsMode,
    /// CA certificate (PEM) the witness server's certificate must verify against.
    #[arg(long, value_name = "FILE")]
    pub witness_ca: Option<PathBuf>,
}

impl WitnessOpts {
    /// The witness named by the flags, checked and ready to connect (it connects on first
    /// use), or `None` when no witness is given. Refuses a URL with a password, a database
    /// in `metadata_dbs` (or OMS's default names), an unreadable password or CA file, and a
    /// missing password.
    pub fn open(
        &self,
        metadata_dbs: &[&str],
    ) -> Result<Option<(WitnessTarget, MysqlWitness)>, CliError> {
        let Some(url) = &self.witness else {
            return Ok(None);
        };
        let target = WitnessTarget::parse(url)?;
        target.refuse_metadata(&DEFAULT_METADATA_DBS)?;
        target.refuse_metadata(metadata_dbs)?;
        let password = password_from(self.witness_password_file.as_deref(), WITNESS_PASSWORD_ENV)?
            .ok_or_else(|| {
                CliError::new(
                    ExitKind::Input,
                    format!(
                        "no password is given for the witness user `{}`",
                        target.user
                    ),
                )
                .hint(format!(
                    "set {WITNESS_PASSWORD_ENV} or pass --witness-password-file FILE (never on \
                     the command line)"
                ))
            })?;
        let tls = tls_settings(self.witness_tls, self.witness_ca.as_deref(), "--witness")?;
        let witness = MysqlWitness::for_target(&target, password, tls);
        Ok(Some((target, witness)))
    }

    /// [`WitnessOpts::open`] for a command that cannot work without a witness.
    pub fn require(
        &self,
        metadata_dbs: &[&str],
    ) -> Result<(WitnessTarget, MysqlWitness), CliError> {
        self.open(metadata_dbs)?.ok_or_else(|| {
            CliError::new(ExitKind::Input, "no witness is given").hint(format!(
                "pass --witness mysql://USER@HOST:PORT/DB or set {WITNESS_ENV}"
            ))
        })
    }
}

/// `oms-upgrade witness ...`.
#[derive(Debug, clap::Subcommand)]
pub enum WitnessCommand {
    /// Create the witness tables (if missing) and print the GRANT statements for the writer
    /// (INSERT, SELECT) and a read-only auditor. Users are not created: a DBA does that.
    ///
    /// Run it as a user with CREATE on the witness database; the database must exist.
    Init(WitnessInitArgs),
}

/// Arguments of `witness init`.
#[derive(Debug, clap::Args)]
pub struct WitnessInitArgs {
    /// Where the witness is, and how to log in.
    #[command(flatten)]
    pub witness: WitnessOpts,
    /// The account the witnessed commands log in as (granted INSERT and SELECT only).
    #[arg(long, value_name = "USER", default_value = DEFAULT_WRITER)]
    pub writer_user: String,
    /// The read-only account for auditors and `fleet` (granted SELECT only).
    #[arg(long, value_name = "USER", default_value = DEFAULT_AUDITOR)]
    pub auditor_user: String,
    /// The host part of both accounts (`%`: any host).
    #[arg(long, value_name = "HOST", default_value = "%")]
    pub user_host: String,
}

/// What `witness init` did, as `--json` prints it.
#[derive(Debug, Serialize)]
struct InitOutput {
    witness: String,
    tables: Vec<&'static str>,
    writer_grant: String,
    auditor_grant: String,
}

/// Runs a `witness` subcommand.
pub fn run(cmd: WitnessCommand, ctx: &Ctx) -> CmdResult {
    match cmd {
        WitnessCommand::Init(args) => init(args, ctx),
    }
}

fn init(args: WitnessInitArgs, ctx: &Ctx) -> CmdResult {
    let account_error = |e: schema::AccountError| {
        CliError::new(ExitKind::Input, e.to_string())
            .hint("pass --writer-user, --auditor-user and --user-host as plain names")
    };
    let writer = schema::account(&args.writer_user, &args.user_host).map_err(account_error)?;
    let auditor = schema::account(&args.auditor_user, &args.user_host).map_err(account_error)?;
    let (target, witness) = args.witness.require(&[])?;
    let rt = super::runtime()?;
    rt.block_on(async {
        let r = witness.create_schema().await;
        witness.close().await;
        r
    })?;
    let out = InitOutput {
        witness: target.to_string(),
        tables: schema::TABLES.to_vec(),
        writer_grant: schema::writer_grant(&target.database, &writer),
        auditor_grant: schema::auditor_grant(&target.database, &auditor),
    };
    let text = if ctx.json {
        format!("{}\n", serde_json::to_string(&out).unwrap_or_default())
    } else {
        format!(
            "witness tables ready in {}: {}\n\
             This tool creates no users. A DBA creates them and grants (the writer needs \
             nothing more; it never updates or deletes a row):\n\n{};\n{};\n",
            out.witness,
            out.tables.join(", "),
            out.writer_grant,
            out.auditor_grant
        )
    };
    emit(&mut std::io::stdout(), &text)?;
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------
// `ledger push` and `ledger verify --witness`.

/// The policy `ledger verify --witness` judges lag by: the one the plan records, or
/// `best-effort` (lag reported, not a failure) for a ledger whose plan names no witness or
/// cannot be read.
pub fn verify_policy(recorded: Option<WitnessPolicy>) -> WitnessPolicy {
    recorded.unwrap_or(WitnessPolicy::BestEffort)
}

/// What `ledger verify --witness` found.
#[derive(Debug)]
pub struct WitnessFindings {
    /// The witness (no password).
    pub target: String,
    /// Records compared.
    pub comparison: Comparison,
    /// The witness's signed checkpoints, each checked against the local ledger.
    pub checkpoints: Vec<CheckpointCheck>,
    /// The policy lag is judged by.
    pub policy: WitnessPolicy,
    /// The signed checkpoint beside the ledger folder, held against the witness's copies.
    pub local_checkpoint: Option<LocalCheckpoint>,
}

impl WitnessFindings {
    /// Whether verify may still exit 0: no difference but lag the policy allows, and every
    /// witness checkpoint agrees with the local ledger.
    pub fn is_ok(&self) -> bool {
        !self.comparison.is_tamper(self.policy)
            && self.checkpoints.iter().all(|c| c.problem.is_none())
            && !self
                .local_checkpoint
                .as_ref()
                .is_some_and(LocalCheckpoint::is_problem)
    }

    /// The JSON form (`witness` in `ledger verify --json`).
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = self.comparison.to_json();
        v["ok"] = self.is_ok().into();
        v["target"] = self.target.clone().into();
        v["policy"] = self.policy.as_str().into();
        v["checkpoints"] = self
            .checkpoints
            .iter()
            .map(|c| {
                serde_json::json!({
                    "seq": c.seq,
                    "head": c.head.to_hex(),
                    "signature_verified": c.signature_verified,
                    "problem": c.problem,
                })
            })
            .collect();
        v["local_checkpoint"] = match &self.local_checkpoint {
            None => serde_json::Value::Null,
            Some(l) => serde_json::json!({
                "detail": l.describe(),
                "problem": l.is_problem(),
            }),
        };
        v
    }

    /// The text lines (`witness:` and its details).
    pub fn to_text(&self) -> String {
        let c = &self.comparison;
        let mut text = match &c.difference {
            None => format!(
                "witness:   OK: {} records agree with {} (head seq {})\n",
                c.matched, self.target, c.witness_head
            ),
            Some(d) => format!(
                "witness:   {} at seq {}: {} records agree with {} before it\n           {}\n",
                if d.is_lag() && !c.is_tamper(self.policy) {
                    "LAGGING"
                } else {
                    "DIFFERS"
                },
                d.seq(),
                c.matched,
                self.target,
                d.describe()
            ),
        };
        for cp in &self.checkpoints {
            let signed = if cp.signature_verified {
                ", signature valid"
            } else {
                ""
            };
            text += &match &cp.problem {
                None => format!(
                    "  checkpoint seq {} head {}{signed}: matches\n",
                    cp.seq,
                    cp.head.short()
                ),
                Some(p) => format!(
                    "  checkpoint seq {} head {}: DIFFERS: {p}\n",
                    cp.seq,
                    cp.head.short()
                ),
            };
        }
        if let Some(l) = &self.local_checkpoint {
            let mark = if l.is_problem() { "DIFFERS: " } else { "" };
            text += &format!("  local checkpoint: {mark}{}\n", l.describe());
        }
        text
    }
}

/// How the local ledger was read, for [`verify_against`].
#[derive(Debug, Clone, Copy, Default)]
pub struct WitnessRead {
    /// The witness policy the plan records, if it records one.
    pub policy: Option<WitnessPolicy>,
    /// A live read's last seq (`Some(0)` for a live copy with no record): the witness is
    /// compared only up to it.
    pub live_up_to: Option<u64>,
}

/// Compares the local ledger (`local`, read and chain-checked by the caller, who has let go
/// of the ledger) with the witness named by `opts`; `None` when no witness is given.
pub fn verify_against(
    opts: &WitnessOpts,
    ledger: &std::path::Path,
    ledger_id: uuid::Uuid,
    local: &[Record],
    local_chain_ok: bool,
    key: Option<&PublicKey>,
    read: WitnessRead,
) -> Result<Option<WitnessFindings>, CliError> {
    let Some((target, witness)) = opts.open(&[])? else {
        return Ok(None);
    };
    let rt = super::runtime()?;
    let (mut rows, checkpoints) = rt.block_on(async {
        let r = async {
            let rows = witness.records(ledger_id, 1).await?;
            let cps = witness.checkpoints(ledger_id).await?;
            Ok::<_, crate::witness::WitnessError>((rows, cps))
        }
        .await;
        witness.close().await;
        r
    })?;
    // A live read stops at the seq it copied; the run holding the ledger has gone on
    // appending and pushing since, so witness rows past that seq are not a difference.
    if let Some(upto) = read.live_up_to {
        rows.retain(|r| r.seq <= upto);
    }
    // The checkpoint file beside the folder, when it is a signed one of this ledger (its
    // own checks are `ledger verify --anchor`'s; here only its place among the witness's).
    let path = signed_checkpoint_path(ledger);
    let local_text = std::fs::read_to_string(&path).ok();
    let local_cp = local_text.as_deref().and_then(|text| {
        match Checkpoint::parse(text, "the local checkpoint") {
            Ok(Checkpoint::Signed(s)) if s.anchor.ledger_id == ledger_id => {
                Some((s.anchor.seq, text))
            }
            _ => None,
        }
    });
    Ok(Some(WitnessFindings {
        target: target.to_string(),
        comparison: compare(ledger_id, local, local_chain_ok, &rows),
        checkpoints: check_checkpoints(local, &checkpoints, key),
        policy: verify_policy(read.policy),
        local_checkpoint: check_local_checkpoint(local_cp, &checkpoints),
    }))
}

/// Arguments of `ledger push`.
#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// Where the witness is, and how to log in.
    #[command(flatten)]
    pub witness: WitnessOpts,
}

/// The signed checkpoint `run` and `rollback` wrote next to the ledger folder, when it is
/// about this ledger and agrees with it; `Err` says why it is not pushed.
fn local_checkpoint(
    ledger: &std::path::Path,
    ledger_id: uuid::Uuid,
    local: &[Record],
) -> Option<Result<WitnessCheckpoint, String>> {
    let path = signed_checkpoint_path(ledger);
    if !path.exists() {
        return None;
    }
    let shown = path.display();
    Some(match Checkpoint::read_file(&path) {
        Err(e) => Err(format!("{shown} cannot be read: {e}")),
        Ok(Checkpoint::Unsigned(_)) => Err(format!("{shown} is not signed")),
        Ok(Checkpoint::Signed(s)) => {
            let a = s.anchor;
            let agrees = a.ledger_id == ledger_id
                && usize::try_from(a.seq.saturating_sub(1))
                    .ok()
                    .and_then(|i| local.get(i))
                    .is_some_and(|r| r.seq == a.seq && r.hash == a.head);
            if agrees {
                Ok(WitnessCheckpoint {
                    ledger_id,
                    seq: a.seq,
                    head: a.head,
                    text: s.to_text(),
                })
            } else {
                Err(format!(
                    "{shown} does not name a record of this ledger (seq {} head {})",
                    a.seq,
                    a.head.short()
                ))
            }
        }
    })
}

/// `oms-upgrade ledger push`: sends every local record the witness lacks (and the signed
/// checkpoint beside the ledger folder), after checking the local chain.
pub fn push(args: PushArgs, ctx: &Ctx) -> CmdResult {
    // The URL is checked before the ledger is opened: bad input whatever the ledger is.
    args.witness.require(&[])?;
    let reader = LedgerReader::open(&ctx.ledger).map_err(CliError::from)?;
    let report = verify_chain(reader.view(), None).map_err(CliError::from)?;
    if let Some(p) = &report.problem {
        return Err(CliError::new(
            ExitKind::Integrity,
            format!(
                "the local chain is broken at seq {} ({}): nothing was pushed",
                p.seq,
                p.kind.describe()
            ),
        )
        .hint(
            "a witness keeps what was recorded, not a damaged copy; `oms-upgrade ledger verify \
             --witness URL` compares the ledger with what the witness already holds",
        ));
    }
    let ledger_id = reader.ledger_id();
    let local: Vec<Record> = reader
        .records()
        .collect::<Result<_, _>>()
        .map_err(CliError::from)?;
    // The metadata databases the plan names (a rollback restores them): never the witness.
    // The chain was just verified on this handle.
    let metadata: Vec<String> =
        crate::history::load(reader.view(), crate::history::Verify::ByCaller)
            .ok()
            .and_then(|h| {
                h.state.plan().map(|p| {
                    vec![
                        p.databases.rm.clone(),
                        p.databases.cm.clone(),
                        p.databases.cm_hb.clone(),
                    ]
                })
            })
            .unwrap_or_default();
    // The ledger is released before the network is used.
    drop(reader);
    let names: Vec<&str> = metadata.iter().map(String::as_str).collect();
    let (target, witness) = args.witness.require(&names)?;
    let checkpoint = local_checkpoint(&ctx.ledger, ledger_id, &local);
    let (_, node) = super::identity::identity();
    let rt = super::runtime()?;
    let (pushed, head) = rt.block_on(async {
        let r = async {
            let pushed = witness.push(&node, &local).await?;
            if let Some(Ok(cp)) = &checkpoint {
                witness.push_checkpoint(cp).await?;
            }
            let head = witness.head(ledger_id).await?;
            Ok::<_, crate::witness::WitnessError>((pushed, head))
        }
        .await;
        witness.close().await;
        r
    })?;
    let witness_head = head.map_or(0, |(s, _)| s);
    let local_head = local.last().map_or(0, |r| r.seq);
    // Every local record is on the witness now; a witness that goes further is evidence
    // that the local ledger lost its tail (or is an older copy): not a success to report.
    let witness_ahead = witness_head > local_head;
    let cp_json = match &checkpoint {
        None => serde_json::Value::Null,
        Some(Ok(cp)) => serde_json::json!({ "pushed": true, "seq": cp.seq }),
        Some(Err(why)) => serde_json::json!({ "pushed": false, "reason": why }),
    };
    let text = if ctx.json {
        let v = serde_json::json!({
            "ok": !witness_ahead,
            "witness": target.to_string(),
            "ledger_id": ledger_id.hyphenated().to_string(),
            "node": node,
            "local_head": local_head,
            "witness_ahead": witness_ahead,
            "inserted": pushed.inserted,
            "already_there": pushed.already_there,
            "witness_head": witness_head,
            "checkpoint": cp_json,
        });
        format!("{v}\n")
    } else {
        let mut t = format!(
            "pushed {} record(s) of ledger {ledger_id} to {target} ({} already there); witness \
             head seq {witness_head}\n",
            pushed.inserted, pushed.already_there
        );
        match &checkpoint {
            Some(Ok(cp)) => t += &format!("pushed the signed checkpoint of seq {}\n", cp.seq),
            Some(Err(why)) => t += &format!("checkpoint not pushed: {why}\n"),
            None => {}
        }
        t
    };
    emit(&mut std::io::stdout(), &text)?;
    if witness_ahead {
        eprintln!(
            "error: the witness holds records of this ledger up to seq {witness_head}, beyond \
             the local head (seq {local_head}): the local ledger was truncated or replaced by \
             an older copy of its folder\nhint: `oms-upgrade ledger verify --witness URL` names \
             the first difference; keep the ledger folder untouched as evidence"
        );
        return Ok(ExitCode::from(ExitKind::Integrity.code()));
    }
    Ok(ExitCode::SUCCESS)
}
