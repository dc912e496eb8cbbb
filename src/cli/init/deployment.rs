//! `init --inventory FILE` (issue 15): gathers the facts about every node of a deployment
//! other than node 0 (the container `init` already inspects), through each node's own
//! Docker engine, lets [`preflight::deployment`] judge them, cross-checks the inventory
//! file with the nodes' config.yaml files and the servers the metadata DB lists
//! ([`inventory::cross_check`]), and returns what the deployment plan is built from.
//!
//! What is checked on a node reached over `ssh://` or `tcp://`: its container and images
//! through its engine, its binds as the engine sees them inside the container (the archive
//! API's stat of each bind's container path; the host path itself cannot be probed from
//! here), its config.yaml read through the engine from the container's mount. On a node
//! whose engine is a Unix socket on this machine the binds' host paths are probed and the
//! config.yaml is read from the host path, as for node 0.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::adapters::docker::env_lookup;
use crate::adapters::{
    BollardDocker, ContainerInfo, Docker, DockerEndpoint, DockerError, MetaDb, MysqlMetaDb,
};
use crate::cli::healthtrust::Planned;
use crate::cli::metadb::config_bind;
use crate::cli::remote;
use crate::cli::{CliError, ExitKind};
use crate::events::{ContainerSettings, PreflightCheck, RegionPlan};
use crate::inventory::{self, Inventory, NodeEntry, Source};
use crate::omsconfig::{CONTAINER_CONFIG_PATH, OmsConfig};
use crate::preflight::bind_host_path;
use crate::preflight::deployment::{
    self as rules, BindProbe, NodeBind, NodeContainer, NodeFacts, NodeId, Reference,
};

use super::{Fatal, Gathered, fatal};

/// The largest inventory file or remote config.yaml read (both come from outside).
const MAX_FILE: usize = 1 << 20;

/// One node other than node 0, as the plan needs it.
pub(super) struct NodeOut {
    /// How it is named.
    pub id: NodeId,
    /// Its index in `Gathered::regions` (0: node 0's region).
    pub region: usize,
    /// Whether `docker_init.sh` runs on it.
    pub runs_init: bool,
    /// Its container as inspected.
    pub old: ContainerInfo,
    /// Its image's labels (to tell the operator's labels from the image's).
    pub old_image_labels: BTreeMap<String, String>,
    /// What its container inherits.
    pub settings: ContainerSettings,
    /// Its health base URL.
    pub health_url: String,
    /// The target image's id on its engine.
    pub target_image_id: String,
}

/// What the deployment plan is built from.
pub(super) struct DeploymentOut {
    /// Node 0's label, region (always 0), endpoint text, runs_init (always true).
    pub node0: NodeId,
    /// Regions, `[0]` node 0's.
    pub regions: Vec<RegionPlan>,
    /// Nodes 1.., in inventory order.
    pub nodes: Vec<NodeOut>,
}

/// A node's facts and, when everything about it was gathered, what the plan needs.
struct Node {
    facts: NodeFacts,
    entry: NodeEntry,
    engine_id: Option<String>,
    config: Option<(PathBuf, OmsConfig)>,
    out: Option<NodeParts>,
}

struct NodeParts {
    old: ContainerInfo,
    old_image_labels: BTreeMap<String, String>,
    settings: ContainerSettings,
    health_url: String,
    target_image_id: String,
}

/// Reads and parses `--inventory FILE` (a bad file is the operator's input: exit 5).
fn read_inventory(path: &Path) -> Result<Inventory, Fatal> {
    let bad = |e: String| {
        fatal(
            "inventory",
            CliError::new(ExitKind::Input, e)
                .hint("fix the inventory file (docs/inventory.md describes its format)"),
        )
    };
    // One byte past the limit is read, so a larger file is refused rather than cut.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| {
            std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_FILE as u64 + 1), &mut bytes)
        })
        .map_err(|e| {
            bad(format!(
                "cannot read the inventory file {}: {e}",
                path.display()
            ))
        })?;
    if bytes.len() > MAX_FILE {
        return Err(bad(format!(
            "inventory file {} is larger than {MAX_FILE} bytes",
            path.display()
        )));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| bad(format!("inventory file {} is not UTF-8", path.display())))?;
    inventory::from_file(&text, path).map_err(|e| bad(e.to_string()))
}

/// The node's name in findings and its label in the plan: the inventory's `name`, else its
/// IP.
fn node_id(e: &NodeEntry) -> NodeId {
    NodeId {
        label: e.name.clone().unwrap_or_else(|| e.ip.to_string()),
        ip: e.ip.to_string(),
        endpoint: e.docker.clone().unwrap_or_default(),
    }
}

/// Gathers and judges every node of the inventory other than node 0; `checks` gets the
/// findings, in inventory order, then the cross-checks. `Ok(None)`: a check failed (the
/// plan is refused), nothing to plan.
pub(super) async fn gather(
    file: &Path,
    g: &Gathered,
    reference: &Reference,
    checks: &mut Vec<PreflightCheck>,
) -> Result<Option<DeploymentOut>, Fatal> {
    let inv = read_inventory(file)?;
    let fail = |checks: &mut Vec<PreflightCheck>, detail: String| {
        checks.push(PreflightCheck {
            name: "inventory".into(),
            ok: false,
            detail,
        })
    };
    let entries: Vec<(String, String)> = inv
        .nodes
        .iter()
        .map(|n| (n.ip.to_string(), n.container.clone().unwrap_or_default()))
        .collect();
    let at = match rules::locate_node0(&entries, &g.host_ip, &g.old.name) {
        Ok(at) => at,
        Err(e) => {
            fail(checks, format!("{}: {e}", file.display()));
            return Ok(None);
        }
    };
    // Node and region indexes are stored as one byte.
    if inv.nodes.len() > usize::from(u8::MAX) {
        fail(
            checks,
            format!(
                "{}: {} nodes; oms-upgrade plans at most {} nodes per deployment",
                file.display(),
                inv.nodes.len(),
                u8::MAX
            ),
        );
        return Ok(None);
    }
    let node0 = &inv.nodes[at];
    let node0_id = node_id(node0);
    // Node 0 is inspected through the local engine: the inventory must reach the same one
    // (else the plan would record an endpoint that is not the engine that was checked).
    let node0_engine = g.docker.engine_id().await.ok();
    let listed_engine = match connect(&node0_id.endpoint).await {
        Ok((_, d)) => d.engine_id().await.ok(),
        Err(_) => None,
    };
    if node0_engine.is_none() || node0_engine != listed_engine {
        fail(
            checks,
            format!(
                "{node0_id}: the inventory reaches node 0 through {}, which is not the engine `{}` was inspected on (the local one); give node 0 the local engine's endpoint",
                node0_id.endpoint, g.old.name
            ),
        );
    }
    let node0_config = node0.config_path.clone().unwrap_or_default();
    if Some(&node0_config) != g.config_path.as_ref() {
        fail(
            checks,
            format!(
                "{node0_id}: the inventory gives config {} but init reads {}; make them the same",
                node0_config.display(),
                g.config_path
                    .as_deref()
                    .map_or("none".into(), |p| p.display().to_string())
            ),
        );
    }

    // Every other node, concurrently: each waits on its own engine and health endpoint.
    let others: Vec<&NodeEntry> = inv
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != at)
        .map(|(_, n)| n)
        .collect();
    let nodes: Vec<Node> =
        futures_util::future::join_all(others.iter().map(|e| gather_node(e, g, reference))).await;
    for n in &nodes {
        checks.extend(rules::evaluate_node(reference, &n.facts));
    }

    // The inventory against the nodes' config.yaml files and the metadata DB's servers.
    let mut configs: Vec<(PathBuf, OmsConfig)> = Vec::new();
    if let Some(p) = &g.config_path {
        configs.push((p.clone(), g.config.clone()));
    }
    configs.extend(nodes.iter().filter_map(|n| n.config.clone()));
    let regions = match rules::regions_of(&configs) {
        Ok(r) => r,
        Err(e) => {
            fail(checks, e);
            return Ok(None);
        }
    };
    let metadb = MysqlMetaDb::new(&g.target);
    let servers = metadb.list_servers(&g.names.cm).await;
    let (listed, host_table) = match servers {
        Ok(s) => (
            s.servers
                .into_iter()
                .map(|s| (s.ip, s.group.unwrap_or_default()))
                .collect::<Vec<_>>(),
            s.host_table,
        ),
        Err(e) => {
            fail(
                checks,
                format!("cannot read the servers the metadata DB lists: {e}"),
            );
            (Vec::new(), false)
        }
    };
    for finding in inventory::cross_check(&regions.inventory, Some(&inv), &listed) {
        // Without a `host` table the metadata DB lists no server; that is no disagreement.
        if !host_table && mentions_metadb(&finding) {
            continue;
        }
        fail(checks, finding.to_string());
    }
    // The regions as the rm database's `cluster_info` lists them, where it does.
    let listed_regions = metadb.regions_listed(&g.names.rm).await;
    let region_table = match listed_regions {
        Ok(Some(listed)) => {
            for finding in inventory::cross_check_regions(&regions.inventory, &listed) {
                fail(checks, finding.to_string());
            }
            true
        }
        Ok(None) => false,
        Err(e) => {
            fail(
                checks,
                format!("cannot read the regions the metadata DB lists: {e}"),
            );
            false
        }
    };
    checks.push(PreflightCheck {
        name: "inventory".into(),
        ok: true,
        detail: format!(
            "{} node(s) in {}, {} region(s){}",
            inv.nodes.len(),
            file.display(),
            regions.list.len(),
            match (host_table, region_table) {
                (true, true) => ", as the metadata DB lists them",
                (true, false) => ", as the metadata DB's `host` table lists them (it has no `cluster_info` regions)",
                (false, true) => ", as the metadata DB's `cluster_info` lists them (it has no `host` table)",
                (false, false) => " (the metadata DB has no `host` or `cluster_info` table to compare with)",
            }
        ),
    });
    // Every region's heartbeat database exists: the backup dumps each one.
    for r in regions.list.iter().skip(1) {
        match metadb.database_exists(&r.heartbeat_db).await {
            Ok(true) => {}
            Ok(false) => fail(
                checks,
                format!(
                    "region {}: its heartbeat database `{}` does not exist",
                    r.name, r.heartbeat_db
                ),
            ),
            Err(e) => fail(
                checks,
                format!("region {}: `{}`: {e}", r.name, r.heartbeat_db),
            ),
        }
    }
    metadb.close().await;

    if checks.iter().any(|c| !c.ok) {
        return Ok(None);
    }
    let mut keys = vec![(node0_engine.unwrap_or_default(), node0_config)];
    keys.extend(nodes.iter().map(|n| {
        (
            n.engine_id.clone().unwrap_or_default(),
            n.entry.config_path.clone().unwrap_or_default(),
        )
    }));
    let runs_init = rules::runs_init(&keys);
    let mut out = Vec::new();
    for (i, n) in nodes.into_iter().enumerate() {
        let Some(parts) = n.out else {
            return Err(fatal(
                "inventory",
                CliError::new(
                    ExitKind::Internal,
                    format!("{}: passed without being gathered", n.facts.id),
                ),
            ));
        };
        let region = n
            .config
            .as_ref()
            .and_then(|(p, _)| regions.of_file.get(p).copied())
            .unwrap_or(0);
        out.push(NodeOut {
            id: n.facts.id,
            region,
            runs_init: runs_init[i + 1],
            old: parts.old,
            old_image_labels: parts.old_image_labels,
            settings: parts.settings,
            health_url: parts.health_url,
            target_image_id: parts.target_image_id,
        });
    }
    Ok(Some(DeploymentOut {
        node0: node0_id,
        regions: regions.list,
        nodes: out,
    }))
}

fn mentions_metadb(f: &inventory::Finding) -> bool {
    use inventory::Finding as F;
    match f {
        F::Missing {
            listed_in,
            missing_from,
            ..
        } => *listed_in == Source::MetaDb || *missing_from == Source::MetaDb,
        F::RegionDiffers { a, b, .. } => a.0 == Source::MetaDb || b.0 == Source::MetaDb,
        F::NotAnIp { source, .. } => *source == Source::MetaDb,
        _ => false,
    }
}

/// Connects to the engine at `endpoint` (the inventory's text) as `run` and `rollback`
/// will: SSH and TLS settings from [`remote::remote_settings`]. `Err`: why not, in words
/// that fit a remote engine.
async fn connect(endpoint: &str) -> Result<(DockerEndpoint, BollardDocker), String> {
    let (ssh, tls) = remote::remote_settings();
    let tls = endpoint.starts_with("tcp://").then_some(tls).flatten();
    let parsed = DockerEndpoint::parse(endpoint, tls).map_err(|e| match e {
        crate::adapters::EndpointError::TcpNeedsTls { .. } => {
            format!("{e} (set DOCKER_CERT_PATH to a folder with ca.pem, cert.pem and key.pem)")
        }
        e => e.to_string(),
    })?;
    match BollardDocker::connect_to_with(&parsed, &ssh).await {
        Ok(d) => Ok((parsed, d)),
        // The client's own words: the error's advice is for the local engine.
        Err(DockerError::EngineUnreachable { detail }) => Err(detail),
        Err(e) => Err(e.to_string()),
    }
}

/// Gathers one node through its own engine, stopping at what cannot be asked further.
async fn gather_node(e: &NodeEntry, g: &Gathered, r: &Reference) -> Node {
    let container = e.container.clone().unwrap_or_default();
    let config_path = e.config_path.clone().unwrap_or_default();
    let mut node = Node {
        facts: NodeFacts::new(node_id(e), container.clone(), config_path.clone()),
        entry: e.clone(),
        engine_id: None,
        config: None,
        out: None,
    };
    let f = &mut node.facts;
    let (endpoint, docker) = match connect(&f.id.endpoint).await {
        Ok(c) => c,
        Err(err) => {
            f.engine = Some(Err(err));
            return node;
        }
    };
    match docker.engine_id().await {
        Ok(id) => node.engine_id = Some(id),
        Err(err) => {
            f.engine = Some(Err(err.to_string()));
            return node;
        }
    }
    f.engine = Some(Ok(()));
    let old = match docker.inspect(&container).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            f.container = Some(Ok(None));
            return node;
        }
        Err(err) => {
            f.container = Some(Err(err.to_string()));
            return node;
        }
    };
    let old_image = docker.inspect_image(&old.image_id).await.ok().flatten();
    let image_labels = old_image
        .as_ref()
        .map(|i| i.labels.clone())
        .unwrap_or_default();
    f.container = Some(Ok(Some(NodeContainer {
        id: old.id.clone(),
        image: old.image.clone(),
        image_id: old.image_id.clone(),
        image_labels: image_labels.clone(),
        running: old.status.is_running(),
        status: format!("{:?}", old.status),
        host_ip: env_lookup(&old.env, "OMS_HOST_IP").map(str::to_string),
        config_mount: config_bind(&old.binds),
    })));
    let target = docker
        .inspect_image(&r.target_ref)
        .await
        .map(|i| i.map(|i| i.id))
        .map_err(|e| e.to_string());
    f.target = Some(target.clone());
    let on_this_host = matches!(
        endpoint,
        DockerEndpoint::Local | DockerEndpoint::Unix { .. }
    );
    let mut binds = Vec::new();
    for b in &old.binds {
        let probe = match bind_host_path(b) {
            None => BindProbe::Volume,
            Some(p) if on_this_host => {
                BindProbe::Host(std::fs::metadata(p).map(|_| ()).map_err(|e| e.to_string()))
            }
            Some(_) => {
                let inside = b.split(':').nth(1).unwrap_or("");
                BindProbe::Engine(match docker.path_in_container(&container, inside).await {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(format!("{inside} is not there")),
                    Err(e) => Err(e.to_string()),
                })
            }
        };
        binds.push(NodeBind {
            bind: b.clone(),
            probe,
        });
    }
    f.binds = Some(binds);
    let config = if on_this_host {
        OmsConfig::load(&config_path).map_err(|e| e.to_string())
    } else {
        match docker
            .read_container_file(&container, CONTAINER_CONFIG_PATH, MAX_FILE)
            .await
        {
            Ok(Some(bytes)) => OmsConfig::parse(&String::from_utf8_lossy(&bytes), &config_path)
                .map_err(|e| e.to_string()),
            Ok(None) => Err(format!("`{container}` has no {CONTAINER_CONFIG_PATH}")),
            Err(e) => Err(e.to_string()),
        }
    };
    let config = match config {
        Ok(c) => c,
        Err(err) => {
            f.config = Some(Err(err));
            return node;
        }
    };
    f.config = Some(Ok(()));
    // The deployment's console is reached and trusted alike on every node: node 0's scheme
    // and CA, on this node's IP and its own nginx port.
    let scheme = g.health.url.split("://").next().unwrap_or("http");
    let url = format!("{scheme}://{}:{}", f.id.ip, config.nginx_server_port);
    let planned = Planned {
        url: url.clone(),
        trust: g.health.trust.clone(),
        client: g.health.client.clone(),
    };
    f.health = Some(
        super::super::healthtrust::probe(&planned)
            .await
            .map(|s| s.replacen("the old node", "it", 1))
            .map_err(|e| e.message.replacen("the old node", "it", 1)),
    );
    node.config = Some((config_path, config));
    if let Ok(Some(target_image_id)) = target {
        let settings = crate::inherit::record(&old, &old_image.map(|i| i.env).unwrap_or_default());
        node.out = Some(NodeParts {
            old,
            old_image_labels: image_labels,
            settings,
            health_url: url,
            target_image_id,
        });
    }
    node
}
