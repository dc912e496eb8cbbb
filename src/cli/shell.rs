//! What the upgrade commands share at the edge: who is acting, where the password comes
//! from, how the executor's questions reach a terminal, and how its errors become
//! messages with hints and exit codes.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use super::ledger::ledger_error;
use super::{CliError, ExitKind};
use crate::adapters::{BollardDocker, HttpHealth, MysqlMetaDb, SystemClock};
use crate::dbconn::DbTarget;
use crate::events::{Finding, Plan, StepFacts, StepKey};
use crate::executor::{Adapters, ExecError, Journal, JournalError, Observer};
use crate::omsconfig::OmsConfig;
use crate::secret::Secret;
use crate::steps::Step;

/// Environment variable holding the metadata database password (overrides config.yaml).
pub const PASSWORD_ENV: &str = "OMS_META_PASSWORD";
/// Where OMS reads its config file inside the container.
pub const CONTAINER_CONFIG_PATH: &str = "/home/admin/conf/config.yaml";

/// Who records: operator and host, overridable for hermetic tests.
pub fn identity() -> (String, String) {
    let operator = std::env::var("OMS_UPGRADE_OPERATOR")
        .or_else(|_| std::env::var("USER"))
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::env::var("OMS_UPGRADE_HOST")
        .ok()
        .or_else(|| {
            hostname::get()
                .ok()
                .map(|h| h.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    (operator, host)
}

/// The password given outside config.yaml: `--password-file` first, then `OMS_META_PASSWORD`.
pub fn password_override(file: Option<&Path>) -> Result<Option<Secret>, CliError> {
    if let Some(f) = file {
        let text = std::fs::read_to_string(f).map_err(|e| {
            CliError::new(
                ExitKind::Input,
                format!("cannot read the password file {}: {e}", f.display()),
            )
            .hint("pass a readable file whose first line is the password")
        })?;
        return Ok(Some(Secret::new(
            text.lines().next().unwrap_or("").to_string(),
        )));
    }
    Ok(std::env::var(PASSWORD_ENV).ok().map(Secret::new))
}

/// The host path bound to OMS's config file, from a container's binds.
pub fn config_bind(binds: &[String]) -> Option<PathBuf> {
    binds.iter().find_map(|b| {
        let mut parts = b.splitn(3, ':');
        let host = parts.next()?;
        (parts.next()? == CONTAINER_CONFIG_PATH).then(|| PathBuf::from(host))
    })
}

/// Loads OMS's config.yaml with a message that says what to fix.
pub fn load_config(path: &Path) -> Result<OmsConfig, CliError> {
    OmsConfig::load(path).map_err(|e| {
        CliError::new(
            ExitKind::Input,
            format!("cannot use the OMS config file: {e}"),
        )
        .hint("pass the host path of the config.yaml the old container mounts with --oms-config")
    })
}

/// The metadata DB as the plan recorded it, with the password from the override or from the
/// config.yaml the old container mounts (the ledger never holds it).
pub fn db_target_for(plan: &Plan, password_file: Option<&Path>) -> Result<DbTarget, CliError> {
    let password = match password_override(password_file)? {
        Some(p) => p,
        None => {
            let path = config_bind(&plan.old_container.binds).ok_or_else(|| {
                CliError::new(ExitKind::Input, "the old container mounts no config.yaml, so the metadata DB password is unknown")
                    .hint(format!("set {PASSWORD_ENV} or pass --password-file"))
            })?;
            load_config(&path)?.oms_meta_password
        }
    };
    Ok(DbTarget {
        host: plan.metadb.host.clone(),
        port: plan.metadb.port,
        user: plan.metadb.user.clone(),
        password,
    })
}

/// The real adapters.
pub type RealAdapters = Adapters<BollardDocker, MysqlMetaDb, HttpHealth, SystemClock>;

/// Connects the real adapters.
pub async fn connect(db: DbTarget) -> Result<RealAdapters, CliError> {
    let docker = BollardDocker::connect().await.map_err(|e| {
        CliError::new(ExitKind::Service, format!("cannot reach the Docker engine: {e}"))
            .hint("start dockerd (e.g. `systemctl start docker`) and check you may use /var/run/docker.sock")
    })?;
    Ok(Adapters {
        docker,
        metadb: MysqlMetaDb::new(&db),
        health: HttpHealth::new().map_err(|e| {
            CliError::new(
                ExitKind::Internal,
                format!("cannot build the HTTP client: {e}"),
            )
        })?,
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
    j.map_err(journal_error)
}

/// Maps a journal error to a message, a hint and an exit kind.
pub fn journal_error(e: JournalError) -> CliError {
    match e {
        JournalError::Ledger(l) => ledger_error(l),
        e @ (JournalError::Undecodable { .. }
        | JournalError::Inconsistent { .. }
        | JournalError::Broken { .. }) => CliError::new(ExitKind::Integrity, e.to_string())
            .hint("run `oms-upgrade ledger verify` to see where the record is damaged"),
        e @ JournalError::Rejected { .. } => CliError::new(ExitKind::Internal, e.to_string()),
    }
}

/// Maps an executor error to a message, a hint and an exit kind.
pub fn exec_error(e: ExecError) -> CliError {
    match e {
        ExecError::Journal(j) => journal_error(j),
        e @ ExecError::NotPlanned => CliError::new(ExitKind::Refused, e.to_string()),
        // The check right before T1 found that something `init` relied on has changed:
        // a refusal (nothing was stopped), not a service failure.
        ExecError::StepFailed {
            key: StepKey::PreStopCheck,
            error,
            retryable: true,
            ..
        } => CliError::new(
            ExitKind::Refused,
            format!("refusing to stop the old container: {error}"),
        )
        .hint(
            "fix what the message names, then `oms-upgrade run` checks again; or `oms-upgrade rollback` to abandon the run (it puts HA back as it was)",
        ),
        ExecError::StepFailed {
            key,
            error,
            retryable,
            integrity,
        } => {
            let again = if key.is_rollback() {
                "oms-upgrade rollback"
            } else {
                "oms-upgrade run"
            };
            let hint = match (integrity, retryable, key.is_rollback()) {
                (true, true, _) => format!(
                    "the dumps must be exactly what the ledger recorded: put the original files back, then `{again}` checks them again"
                ),
                (true, false, _) => format!(
                    "step {key} may not be retried: the content does not match the record; restore by hand from a verified copy and record it with `oms-upgrade note`"
                ),
                (false, true, false) => "the failure is recorded; fix the cause, then `oms-upgrade run` retries the step (or `oms-upgrade rollback`)".to_string(),
                (false, true, true) => "the failure is recorded; fix the cause, then `oms-upgrade rollback` retries the step".to_string(),
                (false, false, false) => format!(
                    "step {key} may not be retried; `oms-upgrade rollback` undoes the upgrade"
                ),
                (false, false, true) => format!(
                    "rollback step {key} may not be retried: fix it by hand, then record what you did with `oms-upgrade note`"
                ),
            };
            let kind = if integrity {
                ExitKind::Integrity
            } else {
                ExitKind::Service
            };
            CliError::new(kind, format!("step {key} failed: {error}")).hint(hint)
        }
        ExecError::Blocked { reason } => {
            CliError::new(ExitKind::Refused, reason).hint("`oms-upgrade status` shows the run")
        }
        e @ ExecError::Declined { .. } => {
            CliError::new(ExitKind::Refused, e.to_string()).hint("pass --yes to run without asking")
        }
        e @ ExecError::RollbackRefused(_) => CliError::new(ExitKind::Refused, e.to_string())
            .hint("`oms-upgrade status` shows the run"),
    }
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
        if !self.quiet {
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
            };
            eprintln!("in doubt: {key} {what} ({evidence})");
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
