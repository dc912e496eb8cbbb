//! `oms-upgrade run` and `oms-upgrade rollback`: replay the ledger, reconcile an in-doubt
//! step, then perform the permitted steps one by one.

use std::path::PathBuf;
use std::process::ExitCode;

use super::shell::{self, TermObserver};
use super::witness::WitnessOpts;
use super::{CliError, CmdResult, Ctx, ExitKind, metadb};
use crate::events::StepKey;
use crate::executor::{ExecOptions, Executor, Stopped};
use crate::replay::Phase;

/// Arguments of `run`.
///
/// Performs the planned upgrade: every step is recorded before (intent) and after
/// (outcome) it happens. Safe to run again after a crash or a failure: the ledger says
/// where the run stands, a step left in doubt is checked against reality first, and
/// nothing is done twice.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Stop before this step (e.g. `docker-init`); `oms-upgrade status` lists step names.
    #[arg(long, value_name = "STEP")]
    pub until: Option<StepKey>,
    /// Do not ask before irreversible steps (stopping OMS, pruning, docker_init.sh).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Read the metadata DB password from this file (default: OMS_META_PASSWORD, then config.yaml).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Sign a checkpoint of the ledger with this key, written next to the ledger folder
    /// (`<ledger>.checkpoint`) before the first step and when the command ends; before
    /// acting, the ledger must extend the checkpoint already there. Default:
    /// $OMS_UPGRADE_SIGNING_KEY, if set.
    #[arg(long, value_name = "KEYFILE")]
    pub sign: Option<PathBuf>,
    /// Refuse to act unless the ledger extends the checkpoint next to it, signed by this
    /// public key (`ed25519:<hex>` or a file holding it, as `ledger keygen` writes); the
    /// checkpoint must exist once the ledger records a step. Default: $OMS_UPGRADE_PUBKEY,
    /// if set, else the public half of the signing key.
    #[arg(long, value_name = "KEY")]
    pub pubkey: Option<String>,
    /// The witness (issue 14): only to name the one the plan records, or to give its
    /// password file; pushes follow the policy recorded at `init`.
    #[command(flatten)]
    pub witness: WitnessOpts,
}

/// Arguments of `rollback`.
///
/// Undoes the upgrade as the runbook's rollback does: HA off, new container stopped (T3),
/// the three databases restored from the verified dumps (only if they were touched), the old
/// container restarted, HA on with a refetch window covering the whole downtime since T1.
#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// Why (recorded in the ledger).
    #[arg(long, default_value = "requested by the operator")]
    pub reason: String,
    /// Stop before this rollback step (e.g. `rollback-restart-old`, to inspect the restored
    /// databases before the old container starts writing to them again).
    #[arg(long, value_name = "STEP")]
    pub until: Option<StepKey>,
    /// Do not ask before irreversible steps.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Read the metadata DB password from this file (default: OMS_META_PASSWORD, then config.yaml).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Sign a checkpoint of the ledger with this key, written next to the ledger folder
    /// (`<ledger>.checkpoint`) before the first step and when the command ends; before
    /// acting, the ledger must extend the checkpoint already there. Default:
    /// $OMS_UPGRADE_SIGNING_KEY, if set.
    #[arg(long, value_name = "KEYFILE")]
    pub sign: Option<PathBuf>,
    /// Refuse to act unless the ledger extends the checkpoint next to it, signed by this
    /// public key (`ed25519:<hex>` or a file holding it, as `ledger keygen` writes); the
    /// checkpoint must exist once the ledger records a step. Default: $OMS_UPGRADE_PUBKEY,
    /// if set, else the public half of the signing key.
    #[arg(long, value_name = "KEY")]
    pub pubkey: Option<String>,
    /// The witness (issue 14): only to name the one the plan records, or to give its
    /// password file; pushes follow the policy recorded at `init`.
    #[command(flatten)]
    pub witness: WitnessOpts,
}

/// Runs `run`.
pub fn run(args: RunArgs, ctx: &Ctx) -> CmdResult {
    if let Some(until) = args.until
        && until.is_rollback()
    {
        return Err(CliError::new(
            ExitKind::Input,
            format!("--until {until} is a rollback step"),
        )
        .hint("use a step of the upgrade"));
    }
    let keys = shell::run_keys(args.sign.as_deref(), args.pubkey.as_deref())?;
    let how = Drive {
        password_file: args.password_file,
        yes: args.yes,
        rollback: None,
        until: args.until,
        witness: args.witness,
    };
    drive(ctx, &keys, how)
}

/// Runs `rollback`.
pub fn rollback(args: RollbackArgs, ctx: &Ctx) -> CmdResult {
    if let Some(until) = args.until
        && !until.is_rollback()
    {
        return Err(CliError::new(
            ExitKind::Input,
            format!("--until {until} is not a rollback step"),
        )
        .hint("use a rollback step, e.g. rollback-restart-old"));
    }
    let keys = shell::run_keys(args.sign.as_deref(), args.pubkey.as_deref())?;
    let how = Drive {
        password_file: args.password_file,
        yes: args.yes,
        rollback: Some(args.reason),
        until: args.until,
        witness: args.witness,
    };
    drive(ctx, &keys, how)
}

/// What `run` and `rollback` were asked.
struct Drive {
    password_file: Option<PathBuf>,
    yes: bool,
    rollback: Option<String>,
    until: Option<StepKey>,
    witness: WitnessOpts,
}

fn drive(ctx: &Ctx, keys: &shell::RunKeys, how: Drive) -> CmdResult {
    let Drive {
        password_file,
        yes,
        rollback,
        until,
        witness,
    } = how;
    let mut journal = shell::open_journal(&ctx.ledger, false)?;
    // Before anything else (and with the lock held): a ledger rewritten behind the signed
    // checkpoint is not acted on.
    shell::guard_ledger(&journal, keys)?;
    // Then the witness the plan records gets every record it lacks; under the policy
    // `required` nothing is done while it cannot.
    shell::attach_witness(&mut journal, &witness)?;
    let plan = journal.state().plan().cloned().ok_or_else(|| {
        CliError::new(ExitKind::Refused, "no upgrade is planned in this ledger")
            .hint("run `oms-upgrade init` first")
    })?;
    if rollback.is_none() && journal.state().rollback().is_some() {
        return Err(CliError::new(
            ExitKind::Refused,
            "this run is being rolled back; `run` would not continue the upgrade",
        )
        .hint("continue the rollback with `oms-upgrade rollback`"));
    }
    // A run resumed late (or a rollback) may already be past what the Store keeps: said
    // before anything else happens, and again at the end.
    if !ctx.json {
        super::status::show_retention_warning(journal.state(), chrono::Utc::now());
    }
    let db = metadb::db_target_for_run(journal.state(), password_file.as_deref())?;
    // Before any step: a CA file that changed since `init` is refused here.
    let health = super::healthtrust::client_for(&plan)?;
    let rt = super::runtime()?;
    let observer = TermObserver {
        yes,
        quiet: ctx.json,
    };
    let result = rt.block_on(async {
        let adapters = shell::connect(db, health).await?;
        let nodes = super::remote::connect_nodes(&plan).await?;
        let mut ex = Executor::new(journal, adapters, ExecOptions::default(), &observer)
            .with_node_dockers(nodes);
        if let Some(reason) = &rollback {
            ex.request_rollback(reason).await.map_err(CliError::from)?;
        }
        let stopped = ex.run(until).await;
        Ok::<_, CliError>((stopped, ex.into_journal()))
    })?;
    let (stopped, journal) = result;
    // Whatever the outcome, the checkpoint covers everything recorded (still under the lock).
    if let Some(key) = &keys.signing {
        match super::ledger::checkpoint_journal(&journal, key) {
            Ok(signed) => {
                eprintln!(
                    "signed checkpoint of seq {} (head {}, key-id {}) written to {}",
                    signed.anchor.seq,
                    signed.anchor.head.short(),
                    signed.key_id,
                    super::ledger::signed_checkpoint_path(&ctx.ledger).display()
                );
                push_checkpoint(&journal, &signed);
            }
            Err(e) if stopped.is_ok() => return Err(e),
            // The run's own failure is what the operator must see; this one is secondary.
            Err(e) => eprintln!("warning: {}", e.message),
        }
    }
    let state = journal.state();
    let summary = serde_json::json!({
        "ok": stopped.is_ok(),
        "ledger": ctx.ledger,
        "run_id": plan.run_id.to_string(),
        "phase": state.phase().to_string(),
        "t1": state.t1(),
        "t2": state.t2(),
        "t3": state.t3(),
        "stopped_before": match &stopped { Ok(Stopped::Until(k)) => Some(k.to_string()), _ => None },
        "refetch_minutes": state.refetch_decision().and_then(|d| d.interval_minutes),
        "retention_warning": state.retention_warning(chrono::Utc::now()),
    });
    match stopped {
        Ok(s) => {
            if ctx.json {
                println!("{summary}");
            } else {
                match s {
                    Stopped::Finished(Phase::Completed) => println!(
                        "Upgrade completed: {} -> {}.",
                        plan.source_version, plan.target_version
                    ),
                    Stopped::Finished(Phase::RolledBack) => println!(
                        "Rollback completed: {} runs again.",
                        plan.old_container.name
                    ),
                    Stopped::Finished(p) => println!("Run is {p}."),
                    Stopped::Until(k) => println!(
                        "Stopped before {k}; continue with `oms-upgrade {}`.",
                        if rollback.is_some() {
                            "rollback"
                        } else {
                            "run"
                        }
                    ),
                }
                super::status::show_retention_warning(state, chrono::Utc::now());
                println!(
                    "`oms-upgrade status` shows the record; `oms-upgrade ledger verify` proves it."
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if !ctx.json {
                super::status::show_retention_warning(state, chrono::Utc::now());
            }
            if ctx.json {
                // The error object itself is printed by the CLI edge; the summary goes to stderr.
                eprintln!("{summary}");
            }
            Err(CliError::from(e))
        }
    }
}

/// Pushes the checkpoint just signed to the witness, if one is attached. The records are
/// what the policy guards; a checkpoint that does not reach the witness is a warning
/// under both policies (`ledger push` sends it later).
fn push_checkpoint(journal: &crate::executor::Journal, signed: &crate::ledger::SignedCheckpoint) {
    let Some(mirror) = journal.mirror() else {
        return;
    };
    let checkpoint = crate::witness::WitnessCheckpoint {
        ledger_id: journal.ledger().ledger_id(),
        seq: signed.anchor.seq,
        head: signed.anchor.head,
        text: signed.to_text(),
    };
    if let Err(e) = mirror.push_checkpoint(checkpoint) {
        eprintln!(
            "warning: the signed checkpoint did not reach the witness: {e}; `oms-upgrade ledger \
             push` sends it"
        );
    }
}
