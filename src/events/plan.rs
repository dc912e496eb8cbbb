//! The plan of a run (the `run.planned` payload): everything decided before the first
//! side effect, so that the steps, their parameters and `oms-upgrade plan` all follow
//! from it and cannot drift apart.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use uuid::Uuid;

use super::MetaDb;
use super::env::EnvVar;
use super::planext::{ContainerSettings, HealthTrust, MetaServer, PlanExt, WitnessPlan};
use crate::refetch::RefetchPolicy;
use crate::versions::{self, Procedure, ProcedureId, UnsupportedPath, Version};

/// How `ha.config` is changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HaMode {
    /// Write `<rm>.oms_normal_config` directly, then read it back (the default).
    Sql,
    /// Print the console instructions, poll the stored value until it matches, and record
    /// the operator's attestation.
    Manual,
}

/// What `enable` is set to when HA is switched back on (after the upgrade and after a
/// rollback).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HaAfter {
    /// `enable=true`, as the runbook's step 5 says (the default).
    Enable,
    /// The value `enable` had before the run (for nodes that ran without HA).
    KeepPrevious,
}

/// The old container as `docker inspect` showed it at planning time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerSnapshot {
    /// Full container id.
    pub id: String,
    /// Name without the leading `/`.
    pub name: String,
    /// Image reference it was created from (`Config.Image`).
    pub image: String,
    /// Image id (`sha256:...`).
    pub image_id: String,
    /// `HostConfig.Binds`, as given (`/host:/container[:opts]`).
    pub binds: Vec<String>,
    /// `Config.Env`, secrets withheld.
    pub env: Vec<EnvVar>,
    /// The labels the operator set on the container: `Config.Labels` minus those it
    /// inherited unchanged from its image (plans recorded before this rule hold all of
    /// `Config.Labels`). The new container gets these plus its own image's.
    pub labels: BTreeMap<String, String>,
}

/// Where the metadata database is, without the password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetaDbLocation {
    /// `mysql://user@host:port`.
    pub display_url: String,
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User.
    pub user: String,
}

/// The three metadata database names (`drc_rm_db`, `drc_cm_db`, `drc_cm_heartbeat_db`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DbNames {
    /// The rm database (holds `oms_normal_config`).
    pub rm: String,
    /// The cm database.
    pub cm: String,
    /// The cm heartbeat database (holds `heatbeat_sequence`).
    pub cm_hb: String,
}

impl DbNames {
    /// The name of one of the three.
    pub fn get(&self, db: MetaDb) -> &str {
        match db {
            MetaDb::Rm => &self.rm,
            MetaDb::Cm => &self.cm,
            MetaDb::CmHb => &self.cm_hb,
        }
    }
}

/// BLAKE3 of the plan's canonical encoding (its stored `run.planned` form).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlanDigest(pub [u8; 32]);

impl fmt::Display for PlanDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for PlanDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlanDigest({self})")
    }
}

impl Serialize for PlanDigest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// Everything decided before the first side effect. Build it with [`Plan::new`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The run this ledger records.
    pub run_id: Uuid,
    /// oms-upgrade's version.
    pub tool_version: String,
    /// Version running now.
    pub source_version: Version,
    /// Version upgraded to.
    pub target_version: Version,
    /// The guide followed (from [`versions::procedure_for`]).
    pub procedure: ProcedureId,
    /// The old container.
    pub old_container: ContainerSnapshot,
    /// The new image reference.
    pub target_image: String,
    /// The new image's id, when known at planning.
    pub target_image_id: Option<String>,
    /// Name the old container is renamed to before the new one takes its name
    /// (default `<name>-pre-<target version>`).
    pub old_renamed_to: String,
    /// Name of the new container (the old container's name).
    pub new_name: String,
    /// Name the new container is moved to on rollback (`<name>-failed-<target version>`).
    pub failed_name: String,
    /// `--privileged=true` on the new container (default true; this test engine refuses it).
    pub privileged: bool,
    /// `OMS_HOST_IP` of the new container.
    pub host_ip: String,
    /// Metadata DB location, no secret.
    pub metadb: MetaDbLocation,
    /// The three database names.
    pub databases: DbNames,
    /// Folder for dumps (a per-run subfolder is used, see [`Plan::dump_dir`]).
    pub backup_dir: String,
    /// How `ha.config` is changed.
    pub ha_mode: HaMode,
    /// What `enable` becomes when HA is switched back on.
    pub ha_after: HaAfter,
    /// The refetch rule.
    pub refetch: RefetchPolicy,
    /// `docker stop` timeout, seconds.
    pub stop_timeout_secs: u32,
    /// How long `docker_init.sh` may run, seconds.
    pub init_timeout_secs: u32,
    /// `GET` URL of OMS's health endpoint (`http://<ip>:<nginx port>/oms/health`).
    pub health_url: String,
    /// How long to wait for health, seconds.
    pub health_timeout_secs: u32,
    /// Facts the v1 fields have no place for (stored as `run.planned` v2 when present);
    /// each kind at most once.
    pub ext: Vec<PlanExt>,
}

/// What the caller (the `init` command) discovered; [`Plan::new`] fills in the rest.
#[derive(Debug, Clone)]
pub struct PlanInput {
    /// A fresh run id (or the id of earlier failed preflights on the same ledger).
    pub run_id: Uuid,
    /// oms-upgrade's version.
    pub tool_version: String,
    /// Version running now.
    pub source_version: Version,
    /// Version to upgrade to.
    pub target_version: Version,
    /// The old container; env already passed through [`record_env`].
    pub old_container: ContainerSnapshot,
    /// The new image.
    pub target_image: String,
    /// Its id, when present locally.
    pub target_image_id: Option<String>,
    /// Override for the old container's new name.
    pub old_renamed_to: Option<String>,
    /// `--privileged=true` (false only where the engine refuses it, e.g. tests).
    pub privileged: bool,
    /// Host IP for `OMS_HOST_IP`.
    pub host_ip: String,
    /// Metadata DB location.
    pub metadb: MetaDbLocation,
    /// Database names.
    pub databases: DbNames,
    /// Backup folder.
    pub backup_dir: String,
    /// HA mode.
    pub ha_mode: HaMode,
    /// `enable` after.
    pub ha_after: HaAfter,
    /// Refetch rule.
    pub refetch: RefetchPolicy,
    /// `docker stop` timeout (default [`Plan::DEFAULT_STOP_TIMEOUT_SECS`]).
    pub stop_timeout_secs: Option<u32>,
    /// `docker_init.sh` timeout (default [`Plan::DEFAULT_INIT_TIMEOUT_SECS`]).
    pub init_timeout_secs: Option<u32>,
    /// Health URL.
    pub health_url: String,
    /// Health wait (default [`Plan::DEFAULT_HEALTH_TIMEOUT_SECS`]).
    pub health_timeout_secs: Option<u32>,
    /// Plan extensions (each kind at most once).
    pub ext: Vec<PlanExt>,
}

/// Why a plan cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The version path is not supported.
    #[error(transparent)]
    Unsupported(#[from] UnsupportedPath),
    /// A value is missing or inconsistent.
    #[error("cannot plan: {field} {problem}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong and what to do.
        problem: String,
    },
}

impl Plan {
    /// Default `docker stop` timeout: OMS needs time to stop its components cleanly.
    pub const DEFAULT_STOP_TIMEOUT_SECS: u32 = 120;
    /// Default `docker_init.sh` timeout: it "takes minutes and must not be interrupted".
    pub const DEFAULT_INIT_TIMEOUT_SECS: u32 = 3600;
    /// Default wait for the health endpoint after start.
    pub const DEFAULT_HEALTH_TIMEOUT_SECS: u32 = 600;

    /// Chooses the procedure, applies defaults and checks consistency.
    pub fn new(input: PlanInput) -> Result<Plan, PlanError> {
        let procedure = versions::procedure_for(input.source_version, input.target_version)?;
        let name = input.old_container.name.trim_start_matches('/').to_string();
        let invalid = |field, problem: &str| PlanError::Invalid {
            field,
            problem: problem.to_string(),
        };
        if name.is_empty() {
            return Err(invalid("old container name", "is empty"));
        }
        if input.old_container.id.is_empty() {
            return Err(invalid("old container id", "is empty"));
        }
        if input.old_container.binds.is_empty() {
            return Err(invalid(
                "old container binds",
                "are empty: an OMS container mounts its config, logs, store and run folders; is this the OMS container?",
            ));
        }
        if input.target_image.is_empty() {
            return Err(invalid("target image", "is empty"));
        }
        if input.host_ip.is_empty() {
            return Err(invalid("host ip", "is empty: pass --host-ip"));
        }
        let t = input.target_version;
        let renamed = input
            .old_renamed_to
            .unwrap_or_else(|| format!("{name}-pre-{t}"));
        let failed = format!("{name}-failed-{t}");
        if renamed == name || renamed.is_empty() {
            return Err(invalid(
                "old container's new name",
                "must differ from its current name (the new container takes that name)",
            ));
        }
        let dbs = &input.databases;
        if dbs.rm.is_empty() || dbs.cm.is_empty() || dbs.cm_hb.is_empty() {
            return Err(invalid(
                "database names",
                "must all be set (drc_rm_db, drc_cm_db, drc_cm_heartbeat_db in config.yaml)",
            ));
        }
        if dbs.rm == dbs.cm || dbs.rm == dbs.cm_hb || dbs.cm == dbs.cm_hb {
            return Err(invalid(
                "database names",
                "must be three different databases",
            ));
        }
        if input.backup_dir.is_empty() {
            return Err(invalid("backup dir", "is empty: pass --backup-dir"));
        }
        // Checked here, before anything is recorded or written: a rule that cannot cover the
        // downtime would only fail when HA is re-enabled, after the upgrade.
        input
            .refetch
            .check()
            .map_err(|problem| invalid("refetch margin", &problem))?;
        if let Some(kind) = duplicate_ext(&input.ext) {
            return Err(PlanError::Invalid {
                field: "plan extensions",
                problem: format!("`{kind}` is given twice"),
            });
        }
        let mut old = input.old_container;
        old.name = name.clone();
        Ok(Plan {
            run_id: input.run_id,
            tool_version: input.tool_version,
            source_version: procedure.source,
            target_version: procedure.target,
            procedure: procedure.id,
            old_container: old,
            target_image: input.target_image,
            target_image_id: input.target_image_id,
            old_renamed_to: renamed,
            new_name: name,
            failed_name: failed,
            privileged: input.privileged,
            host_ip: input.host_ip,
            metadb: input.metadb,
            databases: input.databases,
            backup_dir: input.backup_dir,
            ha_mode: input.ha_mode,
            ha_after: input.ha_after,
            refetch: input.refetch,
            stop_timeout_secs: input
                .stop_timeout_secs
                .unwrap_or(Self::DEFAULT_STOP_TIMEOUT_SECS),
            init_timeout_secs: input
                .init_timeout_secs
                .unwrap_or(Self::DEFAULT_INIT_TIMEOUT_SECS),
            health_url: input.health_url,
            health_timeout_secs: input
                .health_timeout_secs
                .unwrap_or(Self::DEFAULT_HEALTH_TIMEOUT_SECS),
            ext: input.ext,
        })
    }

    /// How the health endpoint is reached and trusted, when recorded.
    pub fn health_trust(&self) -> Option<&HealthTrust> {
        self.ext.iter().find_map(|e| match e {
            PlanExt::Health(h) => Some(h),
            _ => None,
        })
    }

    /// The metadata server's flavour and version, when recorded.
    pub fn meta_server(&self) -> Option<&MetaServer> {
        self.ext.iter().find_map(|e| match e {
            PlanExt::MetaServer(m) => Some(m),
            _ => None,
        })
    }

    /// `ha.config` as `init` read it, if the plan recorded it (issue 13).
    pub fn ha_at_init(&self) -> Option<&str> {
        self.ext.iter().find_map(|e| match e {
            PlanExt::HaAtInit(h) => Some(h.json.as_str()),
            _ => None,
        })
    }

    /// The witness target and policy, when `init` was given one (issue 14).
    pub fn witness(&self) -> Option<&WitnessPlan> {
        self.ext.iter().find_map(|e| match e {
            PlanExt::Witness(w) => Some(w),
            _ => None,
        })
    }

    /// The downtime estimate `init` recorded (issue 16); absent from plans recorded before.
    pub fn estimate(&self) -> Option<&crate::estimate::Estimate> {
        self.ext.iter().find_map(|e| match e {
            PlanExt::Estimate(x) => Some(x.as_ref()),
            _ => None,
        })
    }

    /// The old container's settings the new one inherits, when recorded.
    pub fn container_settings(&self) -> Option<&ContainerSettings> {
        self.ext.iter().find_map(|e| match e {
            PlanExt::Container(c) => Some(c.as_ref()),
            _ => None,
        })
    }

    /// The procedure (path and guide).
    pub fn procedure(&self) -> Procedure {
        Procedure {
            source: self.source_version,
            target: self.target_version,
            id: self.procedure,
        }
    }

    /// BLAKE3 of the canonical encoding (see [`super::plan_digest`]).
    pub fn digest(&self) -> PlanDigest {
        super::plan_digest(self)
    }

    /// This run's dump folder: `<backup_dir>/<run id>`, so runs never overwrite each
    /// other's dumps.
    pub fn dump_dir(&self) -> String {
        format!("{}/{}", self.backup_dir.trim_end_matches('/'), self.run_id)
    }

    /// The dump file of one database: `<dump_dir>/<database>.sql` (the backup engine may
    /// add a compression suffix; the artifact records the real path).
    pub fn dump_file(&self, db: MetaDb) -> String {
        format!("{}/{}.sql", self.dump_dir(), self.databases.get(db))
    }
}

/// The kind of the first plan extension that appears more than once, if any.
pub(crate) fn duplicate_ext(ext: &[PlanExt]) -> Option<&'static str> {
    let mut seen: Vec<&'static str> = Vec::new();
    for e in ext {
        if seen.contains(&e.kind()) {
            return Some(e.kind());
        }
        seen.push(e.kind());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue 12.8): `--refetch-margin-min 0 --refetch-margin-percent 0` made a
    /// plan whose interval equals the downtime; the run found out only when re-enabling HA,
    /// after ha.config and everything else had changed. The plan is refused, naming the flag.
    #[test]
    fn zero_refetch_margins_are_refused_when_planning() {
        let mut input = crate::events::samples::input("3.3.0", "3.3.1");
        input.refetch.margin_min_minutes = 0;
        input.refetch.margin_percent = 0;
        let e = Plan::new(input.clone()).expect_err("a plan with zero refetch margins");
        assert!(e.to_string().contains("--refetch-margin-min"), "{e}");
        // A percentage alone leaves a downtime of 0 minutes uncovered too.
        input.refetch.margin_percent = 50;
        assert!(Plan::new(input.clone()).is_err());
        input.refetch.margin_min_minutes = 1;
        input.refetch.margin_percent = 0;
        assert!(Plan::new(input).is_ok());
    }
}
