//! Where the metadata database of a run is, and where its password comes from: the plan's
//! record of it plus `--password-file`, `OMS_META_PASSWORD` or the config.yaml the old
//! container mounts (the ledger never holds a password). Shared by the commands that act
//! on a run (`run`, `rollback`, through [`super::shell`]) and by `ledger verify --live`
//! ([`super::live`]), so it depends on neither.

use std::path::{Path, PathBuf};

use super::{CliError, ExitKind};
use crate::dbconn::{DbTarget, TlsSettings};
use crate::events::Plan;
use crate::omsconfig::OmsConfig;
use crate::replay::State;
use crate::secret::Secret;

pub use crate::dbconn::PASSWORD_ENV;
pub use crate::omsconfig::CONTAINER_CONFIG_PATH;

/// The password given outside config.yaml: `--password-file` first, then `OMS_META_PASSWORD`.
pub fn password_override(file: Option<&Path>) -> Result<Option<Secret>, CliError> {
    password_from(file, PASSWORD_ENV)
}

/// A password from `file` (its first line) when given, else from the environment variable
/// `env` (the witness uses this with its own variable); `None` when neither is set.
pub fn password_from(file: Option<&Path>, env: &str) -> Result<Option<Secret>, CliError> {
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
    Ok(std::env::var(env).ok().map(Secret::new))
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
        tls: TlsSettings::default(),
    })
}

/// [`db_target_for`] the run `state` holds, with the TLS settings `init` recorded (see
/// [`super::metatls::for_run`]), so `run` and `rollback` connect as the plan did.
pub fn db_target_for_run(
    state: &State,
    password_file: Option<&Path>,
) -> Result<DbTarget, CliError> {
    let plan = state.plan().ok_or_else(|| {
        CliError::new(ExitKind::Refused, "no upgrade is planned in this ledger")
            .hint("run `oms-upgrade init` first")
    })?;
    let mut target = db_target_for(plan, password_file)?;
    target.tls = super::metatls::for_run(state);
    Ok(target)
}
