//! The rules of `init`'s preflight, as a pure function of what was found.
//!
//! `cli::init` gathers the facts (Docker, the old container's binds on disk, config.yaml,
//! the metadata database, the free space, the health endpoint) into [`Facts`];
//! [`evaluate`] turns them into [`Finding`]s, in the order the checks are shown and
//! recorded. A finding passes, fails (the preflight goes on, and refuses the plan at the
//! end), or stops it: later checks need what a stopping rule says is missing or refused.
//!
//! Gathering goes step by step and ends early when the world cannot be asked further (no
//! such container, an unreachable database); a fact not gathered is `None`, and
//! [`evaluate`] ends its findings at the first fact it needs and does not have. The shell
//! asks [`stops`] between its steps, so nothing is asked of the world after a rule
//! refused.
//!
//! Pure core: no I/O, no clock. Failures of the world itself (Docker unreachable, a login
//! refused) are classified by the shell, which knows the adapters' errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::events::{DbNames, PreflightCheck};
use crate::versions::{ImageVersion, Procedure, VERSION_LABEL, Version, procedure_for};

pub mod deployment;

/// The check that names a version the operator stated; `init` records its detail as the
/// operator's attestation right after `run.planned`.
pub const OPERATOR_VERSION_CHECK: &str = "versions-stated";

/// The old container, as `docker inspect` showed it.
#[derive(Debug, Clone)]
pub struct ContainerFacts {
    /// Its name.
    pub name: String,
    /// Its id.
    pub id: String,
    /// The image reference it runs.
    pub image: String,
    /// Whether it is running.
    pub running: bool,
    /// Its state as shown to people when it is not running.
    pub status: String,
    /// Its binds (`SOURCE:TARGET[:OPTIONS]`).
    pub binds: Vec<String>,
}

/// The target image, as `docker image inspect` showed it.
#[derive(Debug, Clone)]
pub struct ImageFacts {
    /// Its id.
    pub id: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

/// What the metadata database server says it is.
#[derive(Debug, Clone)]
pub struct ServerFacts {
    /// Where it is (no password).
    pub url: String,
    /// Its flavour, as shown to people.
    pub flavour: String,
    /// `SELECT VERSION()`.
    pub version: String,
    /// `@@version_comment`.
    pub version_comment: String,
}

/// The servers the cm database's `host` table lists.
#[derive(Debug, Clone)]
pub struct ServersListed {
    /// The servers read (at most the adapter's limit).
    pub servers: Vec<String>,
    /// The limit was reached: there may be more.
    pub maybe_more: bool,
}

/// Room for the dumps.
#[derive(Debug, Clone)]
pub struct DiskFacts {
    /// The metadata databases' total size, or why it could not be read.
    pub sizes: Result<u64, String>,
    /// Free space at `probe`, or why it could not be measured.
    pub free: Result<u64, String>,
    /// The nearest existing folder of the dump folder.
    pub probe: PathBuf,
}

/// One bind of the old container and what its host path's metadata said (`None`: not a
/// host path, so not asked; see [`bind_host_path`]).
#[derive(Debug)]
pub struct BindFacts {
    /// The bind as Docker shows it.
    pub bind: String,
    /// The probe of its host path.
    pub probe: Option<std::io::Result<()>>,
}

/// Everything `init` found. `Option` fields are `None` until gathered.
#[derive(Debug, Default)]
pub struct Facts {
    /// The Docker engine answered.
    pub docker: bool,
    /// `--container`.
    pub container_name: String,
    /// `docker inspect` of it: `Some(None)` when there is no such container.
    pub container: Option<Option<ContainerFacts>>,
    /// `--image`.
    pub image_ref: String,
    /// `docker image inspect` of it: `Some(None)` when it is not present.
    pub image: Option<Option<ImageFacts>>,
    /// The old container's image's labels (empty when they could not be read).
    pub old_image_labels: BTreeMap<String, String>,
    /// `--from-version`, as given.
    pub from_version: Option<String>,
    /// `--to-version`, as given.
    pub to_version: Option<String>,
    /// Each bind of the old container, probed.
    pub binds: Option<Vec<BindFacts>>,
    /// The config.yaml chosen (`--oms-config`, else the one the container mounts);
    /// `Some(None)` when there is none.
    pub config_path: Option<Option<PathBuf>>,
    /// config.yaml's `cm_nodes` once the file was read, or why they are not usable.
    pub cm_nodes: Option<Result<Vec<String>, String>>,
    /// The metadata database server, once it answered.
    pub server: Option<ServerFacts>,
    /// The connection's protection, as shown to people.
    pub tls: Option<String>,
    /// The three databases config.yaml names.
    pub databases: Option<DbNames>,
    /// The cm database's `host` table: `Ok(None)` when there is no such table.
    pub servers: Option<Result<Option<ServersListed>, String>>,
    /// Whether each database exists, in the order rm, cm, cm_hb.
    pub exists: Option<Vec<(String, Result<bool, String>)>>,
    /// `ha.config` as stored (`Ok(None)`: no row); gathered only for paths with HA steps.
    pub ha_config: Option<Result<Option<String>, String>>,
    /// Room for the dumps.
    pub disk: Option<DiskFacts>,
    /// `--host-ip`, else the old container's `OMS_HOST_IP`: `Some(None)` when neither.
    pub host_ip: Option<Option<String>>,
    /// The health probe of the old node: `Some(None)` when it was not asked (the
    /// container is not running).
    pub health: Option<Option<String>>,
    /// `--inventory` was given: a deployment of several nodes is planned, and its other
    /// nodes are judged by [`deployment`] instead of being refused here.
    pub deployment: bool,
}

/// How a stopping rule classifies what it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopKind {
    /// Something the operator named or configured is missing or wrong.
    Input,
    /// Understood, and refused (an unsupported path, several nodes).
    Refused,
}

/// A rule that stopped the preflight: what it found and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    /// The check's name.
    pub check: &'static str,
    /// Its classification.
    pub kind: StopKind,
    /// What was found.
    pub message: String,
    /// What to do.
    pub hint: Option<String>,
}

/// One finding of the preflight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A check, passed or failed; a failed one refuses the plan at the end.
    Check(PreflightCheck),
    /// A rule that ends the preflight here.
    Stop(Stop),
}

/// The findings for `facts`, in order, ending at the first [`Finding::Stop`] or at the
/// first fact not gathered.
pub fn evaluate(facts: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Err(stop) = rules(facts, &mut out) {
        out.push(Finding::Stop(stop));
    }
    out
}

/// The first stopping finding for `facts`, if any: the shell stops gathering there.
pub fn stops(facts: &Facts) -> Option<Stop> {
    evaluate(facts).into_iter().find_map(|f| match f {
        Finding::Stop(s) => Some(s),
        Finding::Check(_) => None,
    })
}

/// The versions and the procedure `facts` settle on, once both images were read and the
/// path is supported.
pub fn upgrade_path(facts: &Facts) -> Option<(Version, Version, Procedure)> {
    let mut ignored = Vec::new();
    let (from, to) = versions(facts, &mut ignored).ok()??;
    let procedure = procedure_for(from, to).ok()?;
    Some((from, to, procedure))
}

/// The host path of a bind, when it names one (a named volume does not).
pub fn bind_host_path(bind: &str) -> Option<&Path> {
    let host = bind.split(':').next().unwrap_or("");
    host.starts_with('/').then(|| Path::new(host))
}

/// `Ok(())` when every gathered fact was judged; `Err` for a stop.
fn rules(f: &Facts, out: &mut Vec<Finding>) -> Result<(), Stop> {
    if !f.docker {
        return Ok(());
    }
    pass(out, "docker", "engine reachable");

    let Some(container) = &f.container else {
        return Ok(());
    };
    let Some(old) = container else {
        return Err(stop(
            "container",
            StopKind::Input,
            format!("no container named `{}`", f.container_name),
            "pass the OMS container's name as `docker ps` shows it",
        ));
    };
    if old.running {
        pass(
            out,
            "container",
            format!(
                "`{}` ({}) is running {}",
                old.name,
                short(&old.id),
                old.image
            ),
        );
    } else {
        fail(
            out,
            "container",
            format!("`{}` is not running ({})", old.name, old.status),
        );
    }

    let Some(image) = &f.image else {
        return Ok(());
    };
    let Some(image) = image else {
        return Err(stop(
            "image",
            StopKind::Input,
            format!("image `{}` is not present locally", f.image_ref),
            "load it first (`docker load -i oms_<version>.tar.gz`); oms-upgrade never pulls",
        ));
    };
    pass(
        out,
        "image",
        format!("{} present ({})", f.image_ref, short(&image.id)),
    );

    let Some((from, to)) = versions(f, out)? else {
        return Ok(());
    };
    let procedure = procedure_for(from, to).map_err(|e| {
        stop(
            "versions",
            StopKind::Refused,
            e.to_string(),
            "upgrade along a supported path, one hop at a time",
        )
    })?;
    pass(
        out,
        "versions",
        format!("{from} -> {to} is supported ({})", procedure.id.name()),
    );

    let Some(binds) = &f.binds else {
        return Ok(());
    };
    for b in binds {
        out.push(Finding::Check(bind_check(&b.bind, b.probe.as_ref())));
    }

    let Some(config_path) = &f.config_path else {
        return Ok(());
    };
    let Some(config_path) = config_path else {
        return Err(stop(
            "config",
            StopKind::Input,
            format!(
                "`{}` mounts no {}",
                old.name,
                crate::omsconfig::CONTAINER_CONFIG_PATH
            ),
            "pass the config.yaml's host path with --oms-config",
        ));
    };
    let Some(nodes) = &f.cm_nodes else {
        return Ok(());
    };
    pass(
        out,
        "config",
        format!("{} names the metadata DB", config_path.display()),
    );
    let nodes = nodes.as_ref().map_err(|e| {
        stop(
            "nodes",
            StopKind::Input,
            e.clone(),
            "fix `cm_nodes` in config.yaml: a list of the region's node IPs",
        )
    })?;
    if nodes.len() > 1 && f.deployment {
        pass(
            out,
            "nodes",
            format!(
                "{} nodes in `cm_nodes` ({}); each is checked against the inventory below",
                nodes.len(),
                nodes.join(", ")
            ),
        );
    } else if nodes.len() > 1 {
        return Err(several_nodes(format!(
            "{} lists {} nodes in `cm_nodes`: {}",
            config_path.display(),
            nodes.len(),
            nodes.join(", ")
        )));
    } else {
        pass(
            out,
            "nodes",
            match nodes.first() {
                Some(n) => format!("one node in `cm_nodes` ({n})"),
                None => "no `cm_nodes` in config.yaml".to_string(),
            },
        );
    }

    let Some(server) = &f.server else {
        return Ok(());
    };
    pass(out, "metadb", format!("{} reachable", server.url));
    // Recorded in the plan: the prune (and what `plan` shows for it) depends on it.
    pass(
        out,
        "metadb-server",
        format!(
            "{} ({}{})",
            server.flavour,
            server.version,
            if server.version_comment.is_empty() {
                String::new()
            } else {
                format!(", {}", server.version_comment)
            }
        ),
    );
    let Some(tls) = &f.tls else {
        return Ok(());
    };
    pass(out, "metadb-tls", tls.clone());

    let (Some(dbs), Some(servers)) = (&f.databases, &f.servers) else {
        return Ok(());
    };
    match servers {
        Ok(Some(listed)) if listed.servers.len() > 1 && !f.deployment => {
            return Err(several_nodes(format!(
                "the metadata DB's `{}`.`host` table lists {}{} servers: {}",
                dbs.cm,
                listed.servers.len(),
                if listed.maybe_more { " or more" } else { "" },
                listed.servers.join("; ")
            )));
        }
        Ok(Some(listed)) => pass(
            out,
            "nodes",
            format!(
                "`{}`.`host` lists {} server(s){}",
                dbs.cm,
                listed.servers.len(),
                listed
                    .servers
                    .first()
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default()
            ),
        ),
        Ok(None) => pass(out, "nodes", format!("no `host` table in `{}`", dbs.cm)),
        Err(e) => fail(
            out,
            "nodes",
            format!("cannot read `{}`.`host`: {e}", dbs.cm),
        ),
    }

    let Some(exists) = &f.exists else {
        return Ok(());
    };
    for (d, e) in exists {
        match e {
            Ok(true) => pass(out, "databases", format!("`{d}` exists")),
            Ok(false) => fail(out, "databases", format!("database `{d}` does not exist")),
            Err(e) => fail(out, "databases", format!("`{d}`: {e}")),
        }
    }

    if procedure.id.has_ha_steps() {
        let Some(ha) = &f.ha_config else {
            return Ok(());
        };
        match ha {
            Ok(Some(json)) => match crate::haconfig::HaConfig::parse(json) {
                Ok(_) => pass(out, "ha.config", "readable JSON"),
                Err(e) => fail(out, "ha.config", format!("not usable: {e}")),
            },
            Ok(None) => fail(
                out,
                "ha.config",
                format!("no `ha.config` row in {}.oms_normal_config", dbs.rm),
            ),
            Err(e) => fail(out, "ha.config", e.clone()),
        }
    }

    let Some(disk) = &f.disk else {
        return Ok(());
    };
    out.push(Finding::Check(disk_check(
        disk.sizes.clone(),
        disk.free.clone(),
        &disk.probe,
    )));

    let Some(host_ip) = &f.host_ip else {
        return Ok(());
    };
    if host_ip.is_none() {
        return Err(stop(
            "host-ip",
            StopKind::Input,
            "the old container has no OMS_HOST_IP".into(),
            "pass --host-ip",
        ));
    }

    match &f.health {
        None => {}
        Some(Some(probed)) => pass(out, "health", probed.clone()),
        // The `container` check already failed; a probe could only say "unreachable".
        Some(None) => fail(
            out,
            "health",
            format!("not asked: `{}` is not running", old.name),
        ),
    }
    Ok(())
}

/// Both versions, once the old container and the target image were read: `Ok(None)` when
/// they were not.
fn versions(f: &Facts, out: &mut Vec<Finding>) -> Result<Option<(Version, Version)>, Stop> {
    let (Some(Some(old)), Some(Some(image))) = (&f.container, &f.image) else {
        return Ok(None);
    };
    let from = image_version(
        &f.from_version,
        &old.image,
        &f.old_image_labels,
        "from",
        out,
    )?;
    let to = image_version(&f.to_version, &f.image_ref, &image.labels, "to", out)?;
    Ok(Some((from, to)))
}

/// The version an image runs: the operator's `--from-version`/`--to-version` when given
/// (recorded as their statement, beside what the image says), else what the image's tag
/// and version label agree on. Never a number from the registry host or port.
fn image_version(
    given: &Option<String>,
    reference: &str,
    labels: &BTreeMap<String, String>,
    what: &'static str,
    out: &mut Vec<Finding>,
) -> Result<Version, Stop> {
    let read = ImageVersion::read(reference, labels);
    if let Some(v) = given {
        let v = v.parse::<Version>().map_err(|e| Stop {
            check: "versions",
            kind: StopKind::Input,
            message: format!("--{what}-version: {e}"),
            hint: None,
        })?;
        pass(
            out,
            OPERATOR_VERSION_CHECK,
            format!(
                "--{what}-version {v} stated by the operator for `{reference}` (the image says: {})",
                read.describe()
            ),
        );
        return Ok(v);
    }
    match read.agreed() {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(stop(
            "versions",
            StopKind::Input,
            format!(
                "cannot read a version from `{reference}` (no version in its tag, no {VERSION_LABEL} label)"
            ),
            &format!("pass --{what}-version X.Y.Z"),
        )),
        Err((tag, label)) => Err(stop(
            "versions",
            StopKind::Input,
            format!("`{reference}`: its tag says {tag} but its {VERSION_LABEL} label says {label}"),
            &format!("pass --{what}-version X.Y.Z with the version it really is"),
        )),
    }
}

/// The refusal of a deployment of several nodes planned as one node: upgrading one node
/// while the others run is not the official procedure, and config.yaml and the metadata DB
/// say which IPs the nodes have but not how to reach their Docker engines or which
/// containers they run, so the operator names them in an inventory file.
fn several_nodes(found: String) -> Stop {
    stop(
        "nodes",
        StopKind::Refused,
        format!(
            "this OMS deployment has several nodes: {found}; upgrading one of them alone is refused"
        ),
        "pass --inventory FILE naming every node's IP, Docker endpoint, container and config.yaml (docs/inventory.md): config.yaml does not say how to reach the other nodes' engines",
    )
}

/// The disk check: room for twice the databases at `probe` (the nearest existing folder of
/// the dump folder). Twice the data: the dumps themselves (SQL text is about the size of
/// the data) plus the spool files of a parallel dump, which hold sections waiting for
/// their turn and never exceed the uncompressed SQL of the one database being dumped
/// (docs/backup.md).
fn disk_check(
    sizes: Result<u64, String>,
    free: Result<u64, String>,
    probe: &Path,
) -> PreflightCheck {
    // Sizes that cannot be read are not zero: the check cannot pass without them.
    let size = match sizes {
        Ok(size) => size,
        Err(e) => {
            return check(
                "disk",
                false,
                format!(
                    "cannot read the metadata databases' sizes ({e}), so the room the dumps \
                     need is unknown: give the metadata DB user SELECT on information_schema, \
                     or check the server"
                ),
            );
        }
    };
    let (ok, detail) = match free {
        Ok(free) if free >= size.saturating_mul(2) => (
            true,
            format!(
                "{} free at {}, databases take {}",
                crate::units::human_bytes(free),
                probe.display(),
                crate::units::human_bytes(size)
            ),
        ),
        Ok(free) => (
            false,
            format!(
                "only {} free at {}; need twice the databases' {}",
                crate::units::human_bytes(free),
                probe.display(),
                crate::units::human_bytes(size)
            ),
        ),
        Err(e) => (
            false,
            format!("cannot measure the free space at {}: {e}", probe.display()),
        ),
    };
    check("disk", ok, detail)
}

/// The check of one bind of the old container (`SOURCE:TARGET[:OPTIONS]`) from the probe
/// of its host path (`None`: a named volume, not probed).
fn bind_check(bind: &str, probe: Option<&std::io::Result<()>>) -> PreflightCheck {
    let host = bind.split(':').next().unwrap_or("");
    // Docker's `Binds` name a host path by an absolute path and a named volume by a bare
    // name; only a path can be checked on this host.
    let (Some(_), Some(probe)) = (bind_host_path(bind), probe) else {
        return check(
            "binds",
            false,
            format!(
                "bind source is the named Docker volume `{host}`, not a host path: \
                 oms-upgrade checks host-path binds only, so it cannot vouch for this one \
                 (bind it by host path, or see `docker volume inspect {host}`)"
            ),
        );
    };
    let (ok, detail) = match probe {
        Ok(()) => (true, format!("{host} exists")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
            false,
            format!("bind source {host} does not exist on this host"),
        ),
        Err(e) => (
            false,
            format!(
                "bind source {host} cannot be read ({e}): run as root or as a user who may \
                 read it and its parent folders"
            ),
        ),
    };
    check("binds", ok, detail)
}

fn check(name: &str, ok: bool, detail: impl Into<String>) -> PreflightCheck {
    PreflightCheck {
        name: name.into(),
        ok,
        detail: detail.into(),
    }
}

fn pass(out: &mut Vec<Finding>, name: &str, detail: impl Into<String>) {
    out.push(Finding::Check(check(name, true, detail)));
}

fn fail(out: &mut Vec<Finding>, name: &str, detail: impl Into<String>) {
    out.push(Finding::Check(check(name, false, detail)));
}

fn stop(check: &'static str, kind: StopKind, message: String, hint: &str) -> Stop {
    Stop {
        check,
        kind,
        message,
        hint: Some(hint.to_string()),
    }
}

fn short(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}

#[cfg(test)]
mod tests;
