//! The rules of `init`'s preflight for the other nodes of a deployment (issue 15).
//!
//! Node 0 is the container `init` already inspects ([`super::evaluate`] judges it); every
//! other node the inventory lists is gathered by `cli::init` into a [`NodeFacts`] and judged
//! here: its engine reachable, its container there and running, the same source version as
//! node 0, the target image present with node 0's image id, its binds there, its
//! `OMS_HOST_IP` and config.yaml the ones the inventory names, its health answering. Each
//! finding is a [`PreflightCheck`] whose detail NAMES the node (label, IP, endpoint), and
//! any failed one refuses the plan (exit 7, `preflight.failed`, nothing changed). Nodes are
//! independent: one node's unreachable engine does not stop the checks of the others.
//!
//! Also pure decisions over the inventory: which entry is node 0 ([`locate_node0`]) and
//! which nodes run `docker_init.sh` ([`runs_init`]).
//!
//! Pure core: no I/O, no clock. A fact not gathered is `None`, and the node's findings end
//! there.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use crate::events::{PreflightCheck, RegionPlan};
use crate::inventory::{self, Inventory};
use crate::omsconfig::OmsConfig;
use crate::versions::{ImageVersion, Version};

/// How a node is named in every finding: the operator's label, its IP, its engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeId {
    /// The operator's name for it (the inventory's `name`, else its IP).
    pub label: String,
    /// Its IP (`OMS_HOST_IP`), as the inventory gives it.
    pub ip: String,
    /// Its Docker endpoint as text (no secret).
    pub endpoint: String,
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.label == self.ip {
            write!(f, "node {} (engine {})", self.ip, self.endpoint)
        } else {
            write!(
                f,
                "node {} ({}, engine {})",
                self.label, self.ip, self.endpoint
            )
        }
    }
}

/// The container a node runs, as its engine's `docker inspect` showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeContainer {
    /// Its id.
    pub id: String,
    /// The image reference it runs.
    pub image: String,
    /// The image id it runs.
    pub image_id: String,
    /// That image's labels (empty when they could not be read).
    pub image_labels: std::collections::BTreeMap<String, String>,
    /// Whether it is running.
    pub running: bool,
    /// Its state as shown to people.
    pub status: String,
    /// Its `OMS_HOST_IP`, if set.
    pub host_ip: Option<String>,
    /// The host path it mounts at OMS's config.yaml path, if any.
    pub config_mount: Option<PathBuf>,
}

/// How one bind of a node's container was probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindProbe {
    /// A named volume: not a host path, so not probed (a failed check, as for node 0).
    Volume,
    /// The host path, probed on this machine (the node's engine is a local socket).
    Host(Result<(), String>),
    /// A remote engine: the bind's container path, stat'ed through the engine's archive
    /// API (the engine sees the mount; the host path itself cannot be probed from here).
    Engine(Result<(), String>),
}

/// One bind of a node's container and its probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeBind {
    /// The bind as Docker shows it (`SOURCE:TARGET[:OPTIONS]`).
    pub bind: String,
    /// What the probe found.
    pub probe: BindProbe,
}

/// What node 0 settled, that every other node is compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The source version (node 0's, as the preflight settled it).
    pub source_version: Version,
    /// The image id node 0 runs.
    pub old_image_id: String,
    /// The target image reference (`--image`).
    pub target_ref: String,
    /// The target image's id on node 0's engine.
    pub target_image_id: String,
}

/// Everything gathered about one node other than node 0. `None`: not gathered (the
/// node's findings end there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    /// How it is named.
    pub id: NodeId,
    /// The container the inventory names.
    pub container_name: String,
    /// The host path of its config.yaml, as the inventory names it.
    pub config_path: PathBuf,
    /// Connecting to its engine: `Err` with the reason when it could not be reached.
    pub engine: Option<Result<(), String>>,
    /// `docker inspect` of its container: `Ok(None)` when there is no such container.
    pub container: Option<Result<Option<NodeContainer>, String>>,
    /// `docker image inspect` of the target reference on its engine: the image id, or
    /// `Ok(None)` when it is not there.
    pub target: Option<Result<Option<String>, String>>,
    /// Its container's binds, probed.
    pub binds: Option<Vec<NodeBind>>,
    /// Its config.yaml read (`Err`: why not).
    pub config: Option<Result<(), String>>,
    /// Its health probe: what it answered, or why the probe failed.
    pub health: Option<Result<String, String>>,
}

impl NodeFacts {
    /// A node about which nothing was gathered yet.
    pub fn new(id: NodeId, container_name: String, config_path: PathBuf) -> NodeFacts {
        NodeFacts {
            id,
            container_name,
            config_path,
            engine: None,
            container: None,
            target: None,
            binds: None,
            config: None,
            health: None,
        }
    }

    /// Whether gathering should go on for this node: nothing found so far stops it (an
    /// unreachable engine or a missing container leaves nothing more to ask).
    pub fn askable(&self) -> bool {
        !matches!(self.engine, Some(Err(_)))
            && !matches!(self.container, Some(Err(_)) | Some(Ok(None)))
    }
}

/// The findings for one node, in the order they are gathered, ending at the first fact
/// not gathered. Every detail names the node.
pub fn evaluate_node(r: &Reference, n: &NodeFacts) -> Vec<PreflightCheck> {
    let mut out = Vec::new();
    node_rules(r, n, &mut out);
    out
}

fn node_rules(r: &Reference, n: &NodeFacts, out: &mut Vec<PreflightCheck>) {
    let who = &n.id;
    let mut say = |name: &str, ok: bool, detail: String| {
        out.push(PreflightCheck {
            name: name.to_string(),
            ok,
            detail: format!("{who}: {detail}"),
        })
    };
    match &n.engine {
        None => return,
        Some(Err(e)) => {
            say(
                "node-engine",
                false,
                format!(
                    "its Docker engine cannot be reached ({e}); check the endpoint in the inventory and that the engine runs"
                ),
            );
            return;
        }
        Some(Ok(())) => say("node-engine", true, "Docker engine reachable".into()),
    }
    let c = match &n.container {
        None => return,
        Some(Err(e)) => {
            say(
                "node-container",
                false,
                format!("cannot inspect container `{}`: {e}", n.container_name),
            );
            return;
        }
        Some(Ok(None)) => {
            say(
                "node-container",
                false,
                format!(
                    "no container named `{}` on its engine; fix `container` in the inventory",
                    n.container_name
                ),
            );
            return;
        }
        Some(Ok(Some(c))) => c,
    };
    if c.running {
        say(
            "node-container",
            true,
            format!(
                "`{}` ({}) is running {}",
                n.container_name,
                super::short(&c.id),
                c.image
            ),
        );
    } else {
        say(
            "node-container",
            false,
            format!(
                "`{}` is not running ({}); every node is upgraded from a running, healthy node",
                n.container_name, c.status
            ),
        );
    }
    match &c.host_ip {
        Some(ip) if ip.trim() == who.ip => {}
        Some(ip) => say(
            "node-host-ip",
            false,
            format!(
                "its container's OMS_HOST_IP is {ip} but the inventory gives {}; fix `ip` in the inventory",
                who.ip
            ),
        ),
        None => say(
            "node-host-ip",
            false,
            format!(
                "`{}` has no OMS_HOST_IP; the new container needs the node's IP",
                n.container_name
            ),
        ),
    }
    match &c.config_mount {
        Some(p) if *p == n.config_path => {}
        Some(p) => say(
            "node-config",
            false,
            format!(
                "its container mounts {} as config.yaml but the inventory gives {}; fix `config` in the inventory",
                p.display(),
                n.config_path.display()
            ),
        ),
        None => say(
            "node-config",
            false,
            format!(
                "`{}` mounts no {}",
                n.container_name,
                crate::omsconfig::CONTAINER_CONFIG_PATH
            ),
        ),
    }
    say_version(r, c, &mut say);

    match &n.target {
        None => return,
        Some(Err(e)) => say(
            "node-image",
            false,
            format!("cannot inspect image `{}`: {e}", r.target_ref),
        ),
        Some(Ok(None)) => say(
            "node-image",
            false,
            format!(
                "image `{}` is not present on its engine; load it there (`docker load -i oms_<version>.tar.gz`); oms-upgrade never pulls",
                r.target_ref
            ),
        ),
        Some(Ok(Some(id))) if *id == r.target_image_id => say(
            "node-image",
            true,
            format!("{} present ({})", r.target_ref, super::short(id)),
        ),
        Some(Ok(Some(id))) => say(
            "node-image",
            false,
            format!(
                "`{}` is image {} there but {} on node 0's engine; load the same image on every node",
                r.target_ref,
                super::short(id),
                super::short(&r.target_image_id)
            ),
        ),
    }

    let Some(binds) = &n.binds else { return };
    for b in binds {
        let host = b.bind.split(':').next().unwrap_or("");
        let target = b.bind.split(':').nth(1).unwrap_or("");
        match &b.probe {
            BindProbe::Volume => say(
                "node-binds",
                false,
                format!(
                    "bind source is the named Docker volume `{host}`, not a host path: oms-upgrade checks host-path binds only"
                ),
            ),
            BindProbe::Host(Ok(())) => say("node-binds", true, format!("{host} exists")),
            BindProbe::Host(Err(e)) => say(
                "node-binds",
                false,
                format!("bind source {host} cannot be used: {e}"),
            ),
            BindProbe::Engine(Ok(())) => say(
                "node-binds",
                true,
                format!("{host} is mounted at {target} (seen through the engine)"),
            ),
            BindProbe::Engine(Err(e)) => say(
                "node-binds",
                false,
                format!("bind {host} at {target} is not seen by the engine: {e}"),
            ),
        }
    }

    match &n.config {
        None => return,
        Some(Err(e)) => {
            say(
                "node-config",
                false,
                format!("its config.yaml cannot be used: {e}"),
            );
            return;
        }
        Some(Ok(())) => {}
    }

    match &n.health {
        None => {}
        Some(Ok(probed)) => say("node-health", true, probed.clone()),
        Some(Err(e)) => say("node-health", false, e.clone()),
    }
}

/// The version check: the same image as node 0 is the same version; another image must
/// say the same version in its tag and label.
fn say_version(r: &Reference, c: &NodeContainer, say: &mut impl FnMut(&str, bool, String)) {
    let from = r.source_version;
    if c.image_id == r.old_image_id {
        say(
            "node-version",
            true,
            format!("runs node 0's image ({from})"),
        );
        return;
    }
    match ImageVersion::read(&c.image, &c.image_labels).agreed() {
        Ok(Some(v)) if v == from => say(
            "node-version",
            true,
            format!(
                "runs {v} (image {}, not node 0's {})",
                super::short(&c.image_id),
                super::short(&r.old_image_id)
            ),
        ),
        Ok(Some(v)) => say(
            "node-version",
            false,
            format!(
                "runs {v} ({}) but node 0 runs {from}; every node of a deployment is upgraded from the same version: bring this node to {from} first",
                c.image
            ),
        ),
        Ok(None) => say(
            "node-version",
            false,
            format!(
                "cannot read a version from `{}` (its image differs from node 0's and names no version); every node must run {from}",
                c.image
            ),
        ),
        Err((tag, label)) => say(
            "node-version",
            false,
            format!(
                "`{}`: its tag says {tag} but its label says {label}; every node must run {from}",
                c.image
            ),
        ),
    }
}

/// Which inventory entry is node 0: the one whose IP is node 0's host IP. `Err` says what
/// is wrong with the inventory (no entry, or its container is another one).
pub fn locate_node0(
    entries: &[(String, String)],
    host_ip: &str,
    container: &str,
) -> Result<usize, String> {
    let Some(i) = entries.iter().position(|(ip, _)| ip == host_ip.trim()) else {
        return Err(format!(
            "the inventory lists no node with IP {host_ip}, the IP of `{container}` (its OMS_HOST_IP or --host-ip); list every node, this one included"
        ));
    };
    let named = &entries[i].1;
    if named != container {
        return Err(format!(
            "the inventory names container `{named}` for {host_ip}, but init was asked to upgrade `{container}` there; make them the same"
        ));
    }
    Ok(i)
}

/// Which nodes run `docker_init.sh`: the first node of each config file, a file being its
/// host path on one engine (`engine` is what identifies the engine, e.g. its ID as `docker
/// info` gives it). Nodes sharing one config.yaml share what `docker_init.sh` writes, so it
/// runs once for them; a node with its own file runs it itself (the brief, "The official
/// multi-node upgrade").
pub fn runs_init(nodes: &[(String, PathBuf)]) -> Vec<bool> {
    nodes
        .iter()
        .enumerate()
        .map(|(i, n)| !nodes[..i].contains(n))
        .collect()
}

/// The deployment's regions from the nodes' config.yaml files (node 0's first): one
/// region per `cm_location`; files of one region must describe it alike.
pub struct Regions {
    /// The inventory the region files describe.
    pub inventory: Inventory,
    /// Regions, `[0]` node 0's.
    pub list: Vec<RegionPlan>,
    /// Each file's region index.
    pub of_file: BTreeMap<PathBuf, usize>,
}

/// The regions of `configs` (path and parsed config.yaml of each node, node 0's first),
/// or what is wrong with them, naming the files.
pub fn regions_of(configs: &[(PathBuf, OmsConfig)]) -> Result<Regions, String> {
    // Files are grouped by their `cm_location` as written; the first file of each group
    // stands for its region in `from_configs`, which checks the regions together (a
    // file read alone would be judged as a whole deployment: the only, so default, region).
    let raw = |c: &OmsConfig, key: &str| c.extra.get(key).cloned();
    let mut reps: Vec<(PathBuf, &OmsConfig)> = Vec::new();
    let mut of_file = BTreeMap::new();
    for (path, cfg) in configs {
        let at = reps
            .iter()
            .position(|(_, c)| raw(c, "cm_location") == raw(cfg, "cm_location"));
        let Some(i) = at else {
            of_file.insert(path.clone(), reps.len());
            reps.push((path.clone(), cfg));
            continue;
        };
        let (first_path, first) = &reps[i];
        let nodes = |c: &OmsConfig, p: &PathBuf| {
            let mut v = c.cm_nodes(p).unwrap_or_default();
            v.sort();
            v
        };
        let alike = ["cm_region", "cm_is_default"]
            .iter()
            .all(|k| raw(first, k) == raw(cfg, k))
            && first.drc_cm_heartbeat_db == cfg.drc_cm_heartbeat_db
            && nodes(first, first_path) == nodes(cfg, path);
        if !alike {
            let location = match raw(cfg, "cm_location") {
                Some(serde_yaml_ng::Value::Number(n)) => n.to_string(),
                Some(serde_yaml_ng::Value::String(s)) => s,
                _ => "(none)".into(),
            };
            return Err(format!(
                "OMS configs {}, {}: both have cm_location {location} but describe the region differently (cm_region, cm_is_default, drc_cm_heartbeat_db or cm_nodes); the nodes of one region have the same region keys",
                first_path.display(),
                path.display(),
            ));
        }
        of_file.insert(path.clone(), i);
    }
    let inv = inventory::from_configs(&reps).map_err(|e| e.to_string())?;
    let list = inv
        .regions
        .iter()
        .map(|r| RegionPlan {
            name: r
                .name
                .clone()
                .unwrap_or_else(|| format!("cm_location {}", r.location)),
            heartbeat_db: r.heartbeat_db.clone(),
        })
        .collect();
    Ok(Regions {
        inventory: inv,
        list,
        of_file,
    })
}

#[cfg(test)]
mod tests;
