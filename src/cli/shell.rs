//! What the upgrade commands share at the edge: who is acting and how the executor's
//! questions reach a terminal. Its errors become messages, hints and exit codes in
//! [`super::error`]; where the metadata database is and its password come from is
//! [`super::metadb`]'s.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use super::witness::WitnessOpts;
use super::{CliError, ExitKind};
use crate::adapters::{BollardDocker, HttpHealth, MysqlMetaDb, SystemClock};
use crate::dbconn::DbTarget;
use crate::events::{Finding, StepFacts, StepKey};
use crate::executor::{Adapters, Journal, Mirror, Observer};
use crate::ledger::sign::{PublicKey, SigningKey};
use crate::ledger::trust::{TrustError, check_extends};
use crate::steps::Step;
use crate::witness::{WitnessPolicy, WitnessTarget};

/// Where the metadata database is and its password come from, kept reachable here for
/// the commands that still name them through the shell (`init`, `demo`).
pub use super::metadb::{
    CONTAINER_CONFIG_PATH, PASSWORD_ENV, config_bind, load_config, password_override,
};

pub use super::identity::identity;

/// The real adapters.
pub type RealAdapters = Adapters<BollardDocker, MysqlMetaDb, HttpHealth, SystemClock>;

/// Connects the real adapters; `health` is the plan's health client
/// ([`super::healthtrust::client_for`]).
pub async fn connect(db: DbTarget, health: HttpHealth) -> Result<RealAdapters, CliError> {
    let docker = BollardDocker::connect().await.map_err(|e| {
        CliError::new(ExitKind::Service, format!("cannot reach the Docker engine: {e}"))
            .hint("start dockerd (e.g. `systemctl start docker`) and check you may use /var/run/docker.sock")
    })?;
    let metadb = MysqlMetaDb::new(&db);
    // One connection now, so a server that refuses the TLS the plan was made with stops
    // the run before its first intent, not inside a step.
    metadb.tls_state().await.map_err(|e| {
        let mut err = CliError::from(e);
        err.message.push_str("; nothing was changed");
        err
    })?;
    Ok(Adapters {
        docker,
        metadb,
        health,
        clock: SystemClock,
        db,
    })
}

/// Opens the ledger for writing, replayed.
pub fn open_journal(dir: &Path, create: bool) -> Result<Journal, CliError> {
    let (operator, host) = identity();
    let j = if create {
        Journal::open(dir, &operator, &host)
    } else {
        Journal::open_existing(dir, &operator, &host)
    };
    j.map_err(CliError::from)
}

/// Attaches the witness the plan records (issue 14) to `journal`, so that every record it
/// makes is pushed there too, under the recorded policy; first every record the witness
/// lacks is pushed ([`Journal::attach_mirror`]). A `--witness` (or `OMS_UPGRADE_WITNESS`)
/// naming another target than the plan's is refused, and so is one given for a plan that
/// records no witness: the target is chosen once, at `init`. The password comes from
/// `--witness-password-file` or `OMS_WITNESS_PASSWORD`, as always. The node identity each
/// pushed row carries is the host name this tool records ([`identity`]).
pub fn attach_witness(journal: &mut Journal, opts: &WitnessOpts) -> Result<(), CliError> {
    let plan = journal.state().plan();
    let Some(recorded) = plan.and_then(|p| p.witness()).cloned() else {
        return match &opts.witness {
            Some(url) if plan.is_some() => Err(CliError::new(
                ExitKind::Input,
                format!("a witness is given ({url}) but this run's plan records none"),
            )
            .hint(format!(
                "the witness is chosen at `oms-upgrade init` (--witness, --witness-policy) and \
                 recorded in the plan; leave --witness and {} out for this run, and copy its \
                 ledger with `oms-upgrade ledger push --witness URL`",
                super::witness::WITNESS_ENV
            ))),
            _ => Ok(()),
        };
    };
    let Some(target) = WitnessTarget::from_plan(&recorded) else {
        return Err(CliError::new(
            ExitKind::Integrity,
            format!(
                "the plan's witness target `{}` is not a witness URL; the plan was not \
                 recorded by this tool as it stands",
                recorded.target
            ),
        )
        .hint("`oms-upgrade ledger verify` checks the ledger; nothing was done"));
    };
    if let Some(url) = &opts.witness {
        let given = WitnessTarget::parse(url).map_err(CliError::from)?;
        if given != target {
            return Err(CliError::new(
                ExitKind::Input,
                format!(
                    "--witness names {given}, but this run's plan records the witness {target}"
                ),
            )
            .hint(format!(
                "leave --witness (and {}) out: the recorded witness is used; nothing was done",
                super::witness::WITNESS_ENV
            )));
        }
    }
    let plan = journal
        .state()
        .plan()
        .ok_or_else(|| CliError::new(ExitKind::Internal, "the plan vanished"))?;
    let names = &plan.databases;
    let dbs = [names.rm.as_str(), names.cm.as_str(), names.cm_hb.as_str()];
    let opened = WitnessOpts {
        witness: Some(recorded.target.clone()),
        ..opts.clone()
    }
    .require(&dbs)?;
    mirror_into(journal, opened, recorded.policy)
}

/// Starts the bridge to `witness` and attaches it to `journal` (see [`attach_witness`]);
/// says on stderr what a catch-up pushed.
pub fn mirror_into(
    journal: &mut Journal,
    (target, witness): (WitnessTarget, crate::witness::MysqlWitness),
    policy: WitnessPolicy,
) -> Result<(), CliError> {
    let (_, node) = identity();
    let mirror = Mirror::spawn(move || witness, target.to_string(), policy, node).map_err(|e| {
        CliError::new(
            ExitKind::Internal,
            format!("cannot start the witness thread: {e}"),
        )
    })?;
    if let Some(c) = journal.attach_mirror(mirror).map_err(CliError::from)?
        && c.pushed.inserted > 0
    {
        eprintln!(
            "witness {target}: pushed {} record(s) it lacked (it held up to seq {})",
            c.pushed.inserted, c.witness_head
        );
    }
    Ok(())
}

/// Talks to a terminal: confirmations, progress lines on stderr, manual HA instructions.
pub struct TermObserver {
    /// Confirm everything without asking.
    pub yes: bool,
    /// Quiet progress lines (JSON output goes to stdout; stderr still carries instructions).
    pub quiet: bool,
}

impl Observer for TermObserver {
    fn confirm(&self, step: &Step) -> bool {
        if self.yes {
            return true;
        }
        if !std::io::stdin().is_terminal() {
            eprintln!(
                "step {} changes the system and needs confirmation; stdin is not a terminal",
                step.key()
            );
            return false;
        }
        eprint!("About to: {}\nProceed? [y/N] ", step.summary());
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).is_ok()
            && matches!(line.trim(), "y" | "Y" | "yes")
    }

    fn step_started(&self, step: &Step, retry: bool) {
        if !self.quiet {
            eprintln!(
                "{} {}{}",
                step.key(),
                step.summary(),
                if retry { " (retry)" } else { "" }
            );
        }
    }

    fn step_finished(&self, key: StepKey, outcome: Result<&StepFacts, &str>) {
        // A warning the step recorded instead of stopping is shown even in quiet mode
        // (stderr; JSON goes to stdout).
        if let Ok(StepFacts::HeartbeatPruned {
            warning: Some(w), ..
        }) = outcome
        {
            eprintln!("  WARNING: {key}: {w}");
        }
        if !self.quiet {
            if let Ok(StepFacts::PrunedHeartbeatDropped { rows: Some(n), .. }) = outcome {
                eprintln!("  rows moved aside by the prune; counted and dropped after T2: {n}");
            }
            match outcome {
                Ok(_) => eprintln!("  done: {key}"),
                Err(e) => eprintln!("  FAILED: {key}: {e}"),
            }
        }
    }

    fn reconciled(&self, key: StepKey, finding: &Finding, evidence: &str) {
        if !self.quiet {
            let what = match finding {
                Finding::Done(_) => "had taken effect",
                Finding::NotDone => "had not taken effect; it runs again",
                Finding::Failed { .. } => "failed",
                Finding::Undecided { .. } => {
                    "cannot be settled from what is left; it waits for an operator's decision"
                }
            };
            eprintln!("in doubt: {key} {what} ({evidence})");
        }
    }

    fn pruned(&self, database: &str, rows: u64, batches: u64, total: u64) {
        // The first batch, then every 20th: a line per batch would flood the terminal on
        // a table of millions of rows.
        if !self.quiet && batches == 0 {
            // issue 16: the swap's rows are counted only after T2 (`drop-pruned-heartbeat`).
            eprintln!(
                "  prune {database}: about {rows} rows moved aside by a table swap; counted and dropped after T2"
            );
        } else if !self.quiet && (batches == 1 || batches % 20 == 0) {
            eprintln!(
                "  prune {database}: {rows} of about {total} rows deleted ({batches} batches)"
            );
        }
    }

    fn instruct(&self, text: &str) {
        eprintln!("ACTION NEEDED: {text}\n(waiting until the stored value changes...)");
    }

    fn progress(&self) -> std::sync::Arc<dyn crate::dump::Progress> {
        if self.quiet {
            std::sync::Arc::new(crate::dump::Quiet)
        } else {
            crate::dump::for_terminal("dump")
        }
    }
}

/// Environment variable holding the public key (`ed25519:<hex>` or a file holding it) that
/// `run` and `rollback` check the signed checkpoint beside the ledger with.
pub const PUBKEY_ENV: &str = "OMS_UPGRADE_PUBKEY";

/// The keys `run` and `rollback` work with.
pub struct RunKeys {
    /// Signs the checkpoint written beside the ledger (`--sign`, `OMS_UPGRADE_SIGNING_KEY`).
    pub signing: Option<SigningKey>,
    /// Checks it: `--pubkey`/`OMS_UPGRADE_PUBKEY`, else the signing key's public half.
    pub trust: Option<PublicKey>,
}

/// Reads the configured keys before anything happens, so bad key input is reported first.
/// A public key given alongside a signing key must be its public half: otherwise the
/// checkpoint written now could not be checked by the next run.
pub fn run_keys(sign: Option<&Path>, pubkey: Option<&str>) -> Result<RunKeys, CliError> {
    let signing = super::ledger::load_signing_key(sign)?;
    let pubkey = match pubkey {
        Some(p) => Some(p.to_string()),
        None => std::env::var(PUBKEY_ENV).ok().filter(|v| !v.is_empty()),
    };
    let given = pubkey
        .as_deref()
        .map(PublicKey::from_arg)
        .transpose()
        .map_err(CliError::from)?;
    if let (Some(p), Some(s)) = (&given, &signing)
        && *p != s.public()
    {
        return Err(CliError::new(
            ExitKind::Input,
            format!(
                "the signing key (key-id {}) is not the configured public key (key-id {})",
                s.public().key_id(),
                p.key_id()
            ),
        )
        .hint(format!(
            "give the public key written beside the signing key (KEYFILE.pub) with --pubkey or \
             {PUBKEY_ENV}, or leave it out: the signing key's own public half is used"
        )));
    }
    let trust = given.or_else(|| signing.as_ref().map(SigningKey::public));
    Ok(RunKeys { signing, trust })
}

/// Before `run` or `rollback` act: with a key configured, the ledger must extend the last
/// signed checkpoint beside it (see `crate::ledger::trust`), and that checkpoint must exist
/// once the ledger records any step (a run signed from its first step wrote one before it;
/// so a missing one was deleted, or the ledger was written without this key). Then, with a
/// signing key, a checkpoint of the head as it stands is written before the first step, so
/// that a crash leaves a ledger that extends it. Runs with the writer lock held.
pub fn guard_ledger(journal: &Journal, keys: &RunKeys) -> Result<(), CliError> {
    let Some(key) = &keys.trust else {
        return Ok(());
    };
    let path = super::ledger::signed_checkpoint_path(journal.dir());
    let ledger = journal.ledger();
    let head = match ledger.head() {
        Some((seq, hash)) => format!("seq {seq} hash {hash}"),
        None => "no record".into(),
    };
    let refused = |message: String| {
        CliError::new(ExitKind::Integrity, message).hint(format!(
            "nothing was done. The ledger was rewritten, cut or replaced since the checkpoint \
             was signed (or the checkpoint was): `oms-upgrade ledger verify --anchor {} \
             --pubkey KEY` shows where. Put back a ledger folder (and checkpoint) that match \
             the copies kept off this node, then run again",
            path.display()
        ))
    };
    match check_extends(ledger.view(), &path, key) {
        Ok(Some(_)) => {}
        Ok(None) => {
            let state = journal.state();
            if !state.attempts().is_empty() || state.rollback().is_some() {
                return Err(CliError::new(
                    ExitKind::Integrity,
                    format!(
                        "no signed checkpoint at {}, but a key is configured (key-id {}) and the \
                         ledger already records steps (its head: {head}); a checkpoint signed \
                         when they were recorded was removed, or this ledger was written \
                         without the key",
                        path.display(),
                        key.key_id()
                    ),
                )
                .hint(format!(
                    "nothing was done. Put back the checkpoint (a copy is in the change ticket, \
                     if one was kept) and run again; if the ledger was written without signing \
                     and you have checked it, sign it as it stands: `oms-upgrade ledger \
                     checkpoint --sign KEYFILE --out {}`",
                    path.display()
                )));
            }
        }
        Err(TrustError::Ledger(e)) => return Err(CliError::from(e)),
        Err(e) => return Err(refused(format!("{e} (the ledger's head: {head})"))),
    }
    if let Some(signing) = &keys.signing {
        super::ledger::checkpoint_journal(journal, signing)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A journal in `dir` holding the sample plan, with `witness` recorded in it.
    fn planned(dir: &Path, witness: Option<&str>) -> Journal {
        use crate::events::{Event, PlanExt, WitnessPlan, samples};
        let mut input = samples::input("3.3.0", "3.3.1");
        if let Some(url) = witness {
            input.ext = vec![PlanExt::Witness(WitnessPlan {
                target: url.into(),
                policy: WitnessPolicy::Required,
            })];
        }
        let plan = crate::events::Plan::new(input).unwrap();
        let mut j = Journal::open(dir, "op", "host").unwrap();
        j.record(plan.run_id, samples::t0(), Event::planned(plan))
            .unwrap();
        j
    }

    fn opts(url: Option<&str>) -> WitnessOpts {
        WitnessOpts {
            witness: url.map(str::to_string),
            ..WitnessOpts::default()
        }
    }

    /// The witness is chosen at `init`: later commands refuse a `--witness` that names
    /// another target, or one given for a plan that records none, before connecting.
    #[test]
    fn a_witness_other_than_the_plans_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = planned(dir.path(), None);
        attach_witness(&mut j, &opts(None)).unwrap();
        assert!(j.mirror().is_none());
        let e = attach_witness(&mut j, &opts(Some("mysql://w@h:3306/wit"))).unwrap_err();
        assert_eq!(e.kind, ExitKind::Input);
        assert!(e.message.contains("records none"), "{}", e.message);
        drop(j);

        let dir = tempfile::tempdir().unwrap();
        let mut j = planned(dir.path(), Some("mysql://w@h:3306/wit"));
        let e = attach_witness(&mut j, &opts(Some("mysql://w@other:3306/wit"))).unwrap_err();
        assert_eq!(e.kind, ExitKind::Input);
        assert!(
            e.message.contains("mysql://w@other:3306/wit")
                && e.message
                    .contains("records the witness mysql://w@h:3306/wit"),
            "{}",
            e.message
        );
        assert!(j.mirror().is_none(), "nothing attached");
    }
}
