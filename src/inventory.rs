//! The deployment's inventory: which nodes run OMS, in which region, reached how.
//!
//! Three sources can say it, and each may be wrong in its own way:
//! - the OMS `config.yaml` files, one per region ([`from_configs`]): `cm_nodes` lists the
//!   region's IPs, `cm_region`, `cm_location` (0-127, unique), `cm_is_default` (exactly one
//!   region) and the region's own `drc_cm_heartbeat_db`;
//! - an operator's inventory file ([`from_file`], `--inventory FILE`): per node its IP,
//!   Docker endpoint, container name and config path;
//! - the metadata database's list of servers, taken here as plain `(ip, region)` pairs
//!   (the SQL that reads them lives with the metadata-DB adapter).
//!
//! [`cross_check`] compares them and returns every disagreement as a [`Finding`] that names
//! the node and both sources, so preflight can refuse with all of them at once.
//!
//! Pure core: no I/O, no clock. Callers read the files; this module parses and judges text
//! and values. Everything here comes from outside and is checked before it is kept: IPs
//! parse, names and paths are plain (nothing in them needs quoting), endpoints have a known
//! scheme. See `docs/inventory.md` for the file format and the sources of each rule.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

use crate::omsconfig::{OmsConfig, kind};

/// What a plain name is, for errors.
const PLAIN_NAME: &str =
    "must be 1-64 letters, digits, `_`, `-` or `.`, not starting with `-` or `.`";

/// The largest `cm_location` OMS accepts (its docs: an integer 0-127).
pub const MAX_CM_LOCATION: u8 = 127;

/// One node of the deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEntry {
    /// The operator's name for the node (the inventory file's optional `name`), shown in
    /// findings and recorded as its label; `None` when the source does not say.
    pub name: Option<String>,
    /// The node's IP (its `OMS_HOST_IP`).
    pub ip: IpAddr,
    /// How its Docker engine is reached, as given (`unix:///…`, `ssh://user@host[:port]`,
    /// `tcp://host:port`); `None` when the source does not say (config.yaml never does).
    pub docker: Option<String>,
    /// The OMS container's name; `None` when the source does not say.
    pub container: Option<String>,
    /// The host path of the node's `config.yaml`.
    pub config_path: Option<PathBuf>,
    /// The node's region (`cm_region`); `None` when the source does not say (a single-region
    /// config.yaml may omit it: obd writes it only when there are several regions).
    pub region: Option<String>,
    /// The region's `cm_location`, when the source says.
    pub location: Option<u8>,
    /// Whether the node's region is the default one (`cm_is_default`), when the source says.
    pub is_default: Option<bool>,
}

/// One region, as its `config.yaml` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionEntry {
    /// `cm_region`, or `None` in a single-region deployment that does not name it.
    pub name: Option<String>,
    /// `cm_location`, 0-127, unique in the deployment.
    pub location: u8,
    /// `cm_is_default`: exactly one region of a deployment is.
    pub is_default: bool,
    /// The region's heartbeat database (`drc_cm_heartbeat_db`), unique per region.
    pub heartbeat_db: String,
    /// `cm_url`, as written (a VIP or one node's cluster-manager URL), when present.
    pub cm_url: Option<String>,
    /// The config.yaml this region was read from.
    pub config_path: PathBuf,
}

/// The deployment's nodes (and, when read from config.yaml, its regions).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inventory {
    /// Every node, in source order; IPs are unique.
    pub nodes: Vec<NodeEntry>,
    /// Every region, in source order; empty for an inventory file, which lists nodes only.
    pub regions: Vec<RegionEntry>,
}

impl Inventory {
    /// The node with this IP.
    pub fn node(&self, ip: IpAddr) -> Option<&NodeEntry> {
        self.nodes.iter().find(|n| n.ip == ip)
    }
}

/// Why an inventory could not be built from its source. Every variant names the source
/// and what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    /// A config.yaml key has a missing or wrong value.
    #[error("OMS config {path}: `{key}` {problem}")]
    Config {
        /// The config.yaml.
        path: PathBuf,
        /// The key.
        key: &'static str,
        /// What is wrong and what it should be.
        problem: String,
    },
    /// The config.yaml files disagree with each other as a deployment.
    #[error("OMS configs {paths}: {problem}")]
    Deployment {
        /// The files involved, comma-separated.
        paths: String,
        /// What is wrong and what to do.
        problem: String,
    },
    /// The inventory file is not valid YAML of the documented shape (the parser's message
    /// names the line, column and field).
    #[error(
        "inventory file {path}: {message}. See docs/inventory.md for the format (`nodes:` with `ip`, `docker`, `container`, `config` per node)"
    )]
    FileFormat {
        /// The inventory file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// One node entry of the inventory file has a bad value.
    #[error("inventory file {path}: node {index} (`{ip}`): `{field}` {problem}")]
    FileNode {
        /// The inventory file.
        path: PathBuf,
        /// The entry's position, from 1.
        index: usize,
        /// The entry's `ip` as written (shown as given, it may be the bad value).
        ip: String,
        /// The field.
        field: &'static str,
        /// What is wrong and what it should be.
        problem: String,
    },
}

// ---------------------------------------------------------------------------------------
// From config.yaml files

/// The inventory described by a deployment's `config.yaml` files, one per region (each
/// already parsed; `path` names it in errors).
///
/// Checks what OMS's docs require of a deployment and obd's generator checks (and some it
/// means to but does not): every region lists its nodes, locations are 0-127 and unique,
/// exactly one region is the default, region names and heartbeat databases are unique, no
/// IP is in two regions, and all regions share one metadata DB and its rm and cm databases.
pub fn from_configs(configs: &[(PathBuf, &OmsConfig)]) -> Result<Inventory, InventoryError> {
    if configs.is_empty() {
        return Err(InventoryError::Deployment {
            paths: "(none)".into(),
            problem: "no config.yaml was given; pass each region's config.yaml".into(),
        });
    }
    let several = configs.len() > 1;
    let mut inv = Inventory::default();
    for (path, cfg) in configs {
        let region = region_of(path, cfg, several)?;
        let ips = cm_nodes(path, cfg)?;
        for ip in ips {
            if let Some(other) = inv.node(ip) {
                let where_ = other
                    .config_path
                    .as_deref()
                    .map_or(String::new(), |p| p.display().to_string());
                return Err(InventoryError::Deployment {
                    paths: join_paths([where_.as_str(), &path.display().to_string()]),
                    problem: format!(
                        "node {ip} is listed in `cm_nodes` twice (a node belongs to one region); remove it from all but its region's file"
                    ),
                });
            }
            inv.nodes.push(NodeEntry {
                name: None,
                ip,
                docker: None,
                container: None,
                config_path: Some(path.clone()),
                region: region.name.clone(),
                location: Some(region.location),
                is_default: Some(region.is_default),
            });
        }
        inv.regions.push(region);
    }
    check_regions(configs, &inv.regions)?;
    Ok(inv)
}

/// The deployment-wide rules over the regions read.
fn check_regions(
    configs: &[(PathBuf, &OmsConfig)],
    regions: &[RegionEntry],
) -> Result<(), InventoryError> {
    let all = || join_paths(regions.iter().map(|r| r.config_path.display().to_string()));
    let deployment = |paths: String, problem: String| InventoryError::Deployment { paths, problem };
    let defaults: Vec<_> = regions.iter().filter(|r| r.is_default).collect();
    if defaults.len() != 1 {
        let which = if defaults.is_empty() {
            "none is".to_string()
        } else {
            join_paths(defaults.iter().map(|r| r.config_path.display().to_string())) + " are"
        };
        return Err(deployment(
            all(),
            format!(
                "exactly one region must have `cm_is_default: true`, but {which}; set it in the default region's file only"
            ),
        ));
    }
    for (i, a) in regions.iter().enumerate() {
        for b in &regions[i + 1..] {
            let pair =
                || join_paths([&a.config_path, &b.config_path].map(|p| p.display().to_string()));
            if a.location == b.location {
                return Err(deployment(
                    pair(),
                    format!(
                        "two regions have `cm_location: {}`; each region needs its own (0-127)",
                        a.location
                    ),
                ));
            }
            if a.name.is_some() && a.name == b.name {
                return Err(deployment(
                    pair(),
                    format!(
                        "two regions are both named `cm_region: {}`; each region needs its own name",
                        a.name.as_deref().unwrap_or_default()
                    ),
                ));
            }
            if a.heartbeat_db == b.heartbeat_db {
                return Err(deployment(
                    pair(),
                    format!(
                        "two regions share `drc_cm_heartbeat_db: {}`; each region has its own heartbeat database",
                        a.heartbeat_db
                    ),
                ));
            }
        }
    }
    // All regions share one metadata DB and its rm and cm databases (OMS's multi-region
    // layout); a file pointing elsewhere belongs to another deployment.
    if let Some(((first_path, first), rest)) = configs.split_first() {
        for (path, c) in rest {
            let same = c.oms_meta_host == first.oms_meta_host
                && c.oms_meta_port == first.oms_meta_port
                && c.drc_rm_db == first.drc_rm_db
                && c.drc_cm_db == first.drc_cm_db;
            if !same {
                return Err(deployment(
                    join_paths([first_path, path].map(|p| p.display().to_string())),
                    "name different metadata databases (`oms_meta_host`, `oms_meta_port`, `drc_rm_db`, `drc_cm_db` must match across regions); are these files from one deployment?".to_string(),
                ));
            }
        }
    }
    Ok(())
}

fn join_paths<S: AsRef<str>>(paths: impl IntoIterator<Item = S>) -> String {
    paths
        .into_iter()
        .filter(|p| !p.as_ref().is_empty())
        .map(|p| p.as_ref().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The region one config.yaml describes.
fn region_of(path: &Path, cfg: &OmsConfig, several: bool) -> Result<RegionEntry, InventoryError> {
    let bad = |key: &'static str, problem: String| InventoryError::Config {
        path: path.to_path_buf(),
        key,
        problem,
    };
    let get = |key: &str| cfg.extra.get(key).filter(|v| !v.is_null());
    let name = match get("cm_region") {
        None if several => {
            return Err(bad(
                "cm_region",
                "is missing: with several regions each config.yaml names its region".into(),
            ));
        }
        None => None,
        Some(v) => {
            let s = text(v)
                .ok_or_else(|| bad("cm_region", format!("must be a name, found {}", kind(v))))?;
            if !is_plain_name(&s) {
                return Err(bad("cm_region", PLAIN_NAME.into()));
            }
            Some(s)
        }
    };
    if let Some(v) = get("cm_region_cn") {
        // A display name (often Chinese): only its kind is checked; it is never used as a
        // name anywhere.
        if text(v).is_none() {
            return Err(bad(
                "cm_region_cn",
                format!("must be text, found {}", kind(v)),
            ));
        }
    }
    let location = match get("cm_location") {
        None => {
            return Err(bad(
                "cm_location",
                "is missing: every region has a unique cm_location (0-127)".into(),
            ));
        }
        Some(v) => {
            let n = match v {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.trim().parse::<u64>().ok(),
                _ => None,
            };
            match n.and_then(|n| u8::try_from(n).ok()) {
                Some(n) if n <= MAX_CM_LOCATION => n,
                _ => {
                    return Err(bad(
                        "cm_location",
                        format!("must be an integer 0-{MAX_CM_LOCATION}, found {}", shown(v)),
                    ));
                }
            }
        }
    };
    let is_default = match get("cm_is_default") {
        None if several => {
            return Err(bad(
                "cm_is_default",
                "is missing: with several regions each config.yaml says whether it is the default"
                    .into(),
            ));
        }
        // One region is the default by definition.
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("true") => true,
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("false") => false,
        Some(v) => {
            return Err(bad(
                "cm_is_default",
                format!("must be true or false, found {}", shown(v)),
            ));
        }
    };
    let cm_url = match get("cm_url") {
        None => None,
        Some(v) => Some(
            text(v).ok_or_else(|| bad("cm_url", format!("must be a URL, found {}", kind(v))))?,
        ),
    };
    if !is_plain_name(&cfg.drc_cm_heartbeat_db) {
        return Err(bad("drc_cm_heartbeat_db", PLAIN_NAME.into()));
    }
    Ok(RegionEntry {
        name,
        location,
        is_default,
        heartbeat_db: cfg.drc_cm_heartbeat_db.clone(),
        cm_url,
        config_path: path.to_path_buf(),
    })
}

/// The region's node IPs, parsed, unique, at least one.
fn cm_nodes(path: &Path, cfg: &OmsConfig) -> Result<Vec<IpAddr>, InventoryError> {
    let bad = |problem: String| InventoryError::Config {
        path: path.to_path_buf(),
        key: "cm_nodes",
        problem,
    };
    let raw = cfg
        .cm_nodes(path)
        .map_err(|e| bad(format!("cannot be read: {e}")))?;
    if raw.is_empty() {
        return Err(bad(
            "is missing or empty: it lists every IP of the region's nodes".into(),
        ));
    }
    let mut ips = Vec::new();
    for r in raw {
        let ip = parse_ip(&r)
            .ok_or_else(|| bad(format!("has {:?}, which is not an IP address", clip(&r))))?;
        if ips.contains(&ip) {
            return Err(bad(format!("lists {ip} twice")));
        }
        ips.push(ip);
    }
    Ok(ips)
}

// ---------------------------------------------------------------------------------------
// From an inventory file

/// One node as the inventory file writes it.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileNode {
    #[serde(default)]
    name: Option<String>,
    ip: String,
    docker: String,
    container: String,
    config: String,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    location: Option<u8>,
    #[serde(default)]
    default: Option<bool>,
}

/// The inventory file's document.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    nodes: Vec<FileNode>,
}

/// Parses an inventory file's text (`path` only names it in errors). The format is in
/// `docs/inventory.md`; unknown fields are refused, and every value is checked.
pub fn from_file(text: &str, path: &Path) -> Result<Inventory, InventoryError> {
    let doc: FileDoc = serde_yaml_ng::from_str(text).map_err(|e| InventoryError::FileFormat {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    if doc.nodes.is_empty() {
        return Err(InventoryError::FileFormat {
            path: path.to_path_buf(),
            message: "`nodes` is empty: list at least one node".into(),
        });
    }
    let mut inv = Inventory::default();
    for (i, n) in doc.nodes.into_iter().enumerate() {
        let bad = |field: &'static str, problem: &str| InventoryError::FileNode {
            path: path.to_path_buf(),
            index: i + 1,
            ip: clip(&n.ip),
            field,
            problem: problem.to_string(),
        };
        let ip = parse_ip(&n.ip).ok_or_else(|| bad("ip", "is not an IP address"))?;
        if inv.node(ip).is_some() {
            return Err(bad("ip", "is listed twice; list each node once"));
        }
        check_endpoint(&n.docker).map_err(|p| bad("docker", &p))?;
        if !is_container_name(&n.container) {
            return Err(bad(
                "container",
                "must be a Docker container name: a letter or digit, then letters, digits, `_`, `.` or `-` (at most 128)",
            ));
        }
        if !is_plain_abs_path(&n.config) {
            return Err(bad(
                "config",
                "must be an absolute host path of letters, digits and `/ _ . - +`, without `..`",
            ));
        }
        if let Some(r) = &n.region
            && !is_plain_name(r)
        {
            return Err(bad("region", PLAIN_NAME));
        }
        if n.location.is_some_and(|l| l > MAX_CM_LOCATION) {
            return Err(bad("location", "must be an integer 0-127 (cm_location)"));
        }
        if let Some(name) = &n.name
            && !is_plain_name(name)
        {
            return Err(bad("name", PLAIN_NAME));
        }
        inv.nodes.push(NodeEntry {
            name: n.name,
            ip,
            docker: Some(n.docker),
            container: Some(n.container),
            config_path: Some(PathBuf::from(n.config)),
            region: n.region,
            location: n.location,
            is_default: n.default,
        });
    }
    Ok(inv)
}

/// Checks a Docker endpoint's string form: `unix:///abs/path`, `ssh://user@host[:port]`
/// or `tcp://host:port`, every part plain. Returns what is wrong.
pub fn check_endpoint(s: &str) -> Result<(), String> {
    let port_ok = |p: &str| p.parse::<u16>().is_ok_and(|p| p != 0);
    if let Some(path) = s.strip_prefix("unix://") {
        return if is_plain_abs_path(path) {
            Ok(())
        } else {
            Err("`unix://` must be followed by an absolute socket path (unix:///var/run/docker.sock)".into())
        };
    }
    if let Some(rest) = s.strip_prefix("ssh://") {
        let (user, hostport) = rest
            .split_once('@')
            .ok_or("must name the user: ssh://user@host[:port]")?;
        if !is_plain_name(user) {
            return Err("has an SSH user that is not 1-64 letters, digits, `_`, `-` or `.` (not starting with `-` or `.`)".into());
        }
        let (host, port) = split_host_port(hostport);
        if !is_host(host) {
            return Err("has an SSH host that is neither an IP nor a host name".into());
        }
        return match port {
            Some(p) if !port_ok(p) => Err("has an SSH port that is not 1-65535".into()),
            _ => Ok(()),
        };
    }
    if let Some(hostport) = s.strip_prefix("tcp://") {
        let (host, port) = split_host_port(hostport);
        if !is_host(host) {
            return Err("has a host that is neither an IP nor a host name".into());
        }
        return match port {
            Some(p) if port_ok(p) => Ok(()),
            _ => Err(
                "must name the port: tcp://host:port (Docker's TLS port is usually 2376)".into(),
            ),
        };
    }
    Err("must start with unix://, ssh:// or tcp://".into())
}

/// `host[:port]`, with `[v6]:port` for IPv6.
fn split_host_port(s: &str) -> (&str, Option<&str>) {
    if let Some(rest) = s.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((h, "")) => (h, None),
            Some((h, p)) => match p.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None => ("", None),
            },
            None => ("", None),
        };
    }
    match s.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    }
}

/// An IP, or a DNS host name (labels of letters, digits and `-`).
fn is_host(s: &str) -> bool {
    if s.parse::<IpAddr>().is_ok() {
        return true;
    }
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Docker's container-name rule, `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 128 bytes.
fn is_container_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || b"_.-".contains(&c))
}

/// 1-64 ASCII letters, digits, `_`, `-`, `.`, starting with a letter, digit or `_`: a name
/// that needs no quoting anywhere, and that no command line can take for an option (an SSH
/// user `-oProxyCommand` would be one).
fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with(['-', '.'])
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c))
}

/// An absolute path of plain bytes with no `.` or `..` component.
fn is_plain_abs_path(s: &str) -> bool {
    s.starts_with('/')
        && s.len() <= 4096
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"/_.-+".contains(&c))
        && s.split('/').all(|c| c != ".." && c != ".")
}

/// An IP as written; leading and trailing blanks are tolerated, nothing else.
fn parse_ip(s: &str) -> Option<IpAddr> {
    s.trim().parse().ok()
}

/// A value as shown in an error: at most 40 characters, escaped.
fn clip(s: &str) -> String {
    let short: String = s.chars().take(40).collect();
    let shown = format!("{short:?}");
    shown[1..shown.len() - 1].to_string()
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{:?}", clip(s)),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => kind(other).to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// Cross-check

/// Where a fact about the deployment came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// The OMS `config.yaml` files.
    ConfigYaml,
    /// The operator's `--inventory` file.
    InventoryFile,
    /// The servers the metadata database lists.
    MetaDb,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::ConfigYaml => "config.yaml",
            Source::InventoryFile => "the inventory file",
            Source::MetaDb => "the metadata DB",
        })
    }
}

/// A disagreement between two sources about one node. Each names the node and both
/// sources; any finding is a preflight failure.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Finding {
    /// One source lists the node, another does not.
    Missing {
        /// The node, as the listing source wrote it.
        node: String,
        /// The source that lists it.
        listed_in: Source,
        /// The source that does not.
        missing_from: Source,
    },
    /// Two sources put the node in different regions.
    RegionDiffers {
        /// The node.
        node: IpAddr,
        /// One source and its region.
        a: (Source, String),
        /// The other source and its region.
        b: (Source, String),
    },
    /// Two sources give the node's region different `cm_location`s.
    LocationDiffers {
        /// The node.
        node: IpAddr,
        /// One source and its location.
        a: (Source, u8),
        /// The other source and its location.
        b: (Source, u8),
    },
    /// Two sources disagree on whether the node's region is the default one.
    DefaultDiffers {
        /// The node.
        node: IpAddr,
        /// One source and what it says.
        a: (Source, bool),
        /// The other source and what it says.
        b: (Source, bool),
    },
    /// The metadata DB lists a server whose address is not an IP.
    NotAnIp {
        /// The source.
        source: Source,
        /// What it listed (clipped, escaped).
        value: String,
    },
    /// One source has a region (by its `cm_location`), another does not.
    RegionMissing {
        /// The region's `cm_location`.
        location: u8,
        /// The source that has it.
        listed_in: Source,
        /// The source that does not.
        missing_from: Source,
    },
    /// Two sources describe one region (by its `cm_location`) differently.
    RegionFactDiffers {
        /// The region's `cm_location`.
        location: u8,
        /// What differs (`cm_region`, `cm_is_default`).
        key: &'static str,
        /// One source and its value.
        a: (Source, String),
        /// The other source and its value.
        b: (Source, String),
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Missing {
                node,
                listed_in,
                missing_from,
            } => write!(
                f,
                "node {node} is listed in {listed_in} but not in {missing_from}; make them describe the same nodes"
            ),
            Finding::RegionDiffers { node, a, b } => write!(
                f,
                "node {node} is in {} region {} but {} lists it in {}",
                a.0, a.1, b.0, b.1
            ),
            Finding::LocationDiffers { node, a, b } => write!(
                f,
                "node {node} has cm_location {} in {} but {} in {}",
                a.1, a.0, b.1, b.0
            ),
            Finding::DefaultDiffers { node, a, b } => {
                let says = |d: bool| {
                    if d {
                        "the default region"
                    } else {
                        "not the default region"
                    }
                };
                write!(
                    f,
                    "node {node} is in {} in {} but in {} in {}",
                    says(a.1),
                    a.0,
                    says(b.1),
                    b.0
                )
            }
            Finding::RegionMissing {
                location,
                listed_in,
                missing_from,
            } => write!(
                f,
                "region with cm_location {location} is in {listed_in} but not in {missing_from}; is a region's config.yaml missing, or from another deployment?"
            ),
            Finding::RegionFactDiffers {
                location,
                key,
                a,
                b,
            } => write!(
                f,
                "region with cm_location {location} has {key} {} in {} but {} in {}",
                a.1, a.0, b.1, b.0
            ),
            Finding::NotAnIp { source, value } => write!(
                f,
                "{source} lists a server `{value}` that is not an IP address; check its host table"
            ),
        }
    }
}

/// Every disagreement between the config.yaml inventory, the inventory file (if given) and
/// the servers the metadata DB lists (`(ip, region)` pairs, as read from the cm database's
/// `host` table joined to `resource_group`, whose `name` is the region's `cm_location`;
/// a region's `cm_region` name is accepted too). Empty when they agree. Sorted, so the same
/// inputs give the same findings.
///
/// Regions are compared only where both sources say one; a node the file lists without a
/// region, or a server the metadata DB lists without a group, takes none.
pub fn cross_check(
    config: &Inventory,
    file: Option<&Inventory>,
    metadb: &[(String, String)],
) -> Vec<Finding> {
    let mut out = BTreeSet::new();
    let mut db: BTreeMap<IpAddr, Option<String>> = BTreeMap::new();
    for (ip, region) in metadb {
        match parse_ip(ip) {
            Some(ip) => {
                let r = region.trim();
                let r = (!r.is_empty()).then(|| r.to_string());
                // A server listed twice in two regions: the metadata DB disagrees with
                // itself, which must not be hidden by keeping one of the rows.
                if let Some(Some(before)) = db.get(&ip)
                    && let Some(now) = &r
                    && before != now
                {
                    out.insert(Finding::RegionDiffers {
                        node: ip,
                        a: (Source::MetaDb, before.clone()),
                        b: (Source::MetaDb, now.clone()),
                    });
                }
                db.entry(ip).or_insert(r);
            }
            None => {
                out.insert(Finding::NotAnIp {
                    source: Source::MetaDb,
                    value: clip(ip),
                });
            }
        }
    }
    let db_inv = Inventory {
        nodes: db
            .into_iter()
            .map(|(ip, region)| NodeEntry {
                name: None,
                ip,
                docker: None,
                container: None,
                config_path: None,
                region,
                location: None,
                is_default: None,
            })
            .collect(),
        regions: Vec::new(),
    };
    let mut pairs = vec![((Source::ConfigYaml, config), (Source::MetaDb, &db_inv))];
    if let Some(file) = file {
        pairs.push(((Source::ConfigYaml, config), (Source::InventoryFile, file)));
    }
    for ((sa, a), (sb, b)) in pairs {
        compare(sa, a, sb, b, &mut out);
    }
    out.into_iter().collect()
}

/// One region as the metadata DB lists it: a row of the rm database's `cluster_info`
/// (`region`, `code`, `is_default_cm`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRegion {
    /// `region`: the region's name (`cm_region`).
    pub name: String,
    /// `code`: the region's `cm_location`.
    pub location: u8,
    /// `is_default_cm`: whether it is the default region.
    pub is_default: bool,
}

/// Every disagreement between the regions the config.yaml files describe and the ones the
/// metadata DB's `cluster_info` lists, matched by `cm_location`. Sorted.
pub fn cross_check_regions(config: &Inventory, metadb: &[ListedRegion]) -> Vec<Finding> {
    let mut out = BTreeSet::new();
    for r in &config.regions {
        let Some(m) = metadb.iter().find(|m| m.location == r.location) else {
            out.insert(Finding::RegionMissing {
                location: r.location,
                listed_in: Source::ConfigYaml,
                missing_from: Source::MetaDb,
            });
            continue;
        };
        let mut differs = |key, a: String, b: String| {
            if a != b {
                out.insert(Finding::RegionFactDiffers {
                    location: r.location,
                    key,
                    a: (Source::ConfigYaml, a),
                    b: (Source::MetaDb, b),
                });
            }
        };
        if let Some(name) = &r.name {
            differs("cm_region", name.clone(), m.name.trim().to_string());
        }
        differs(
            "cm_is_default",
            r.is_default.to_string(),
            m.is_default.to_string(),
        );
    }
    for m in metadb {
        if !config.regions.iter().any(|r| r.location == m.location) {
            out.insert(Finding::RegionMissing {
                location: m.location,
                listed_in: Source::MetaDb,
                missing_from: Source::ConfigYaml,
            });
        }
    }
    out.into_iter().collect()
}

/// Whether `label` names `n`'s region: by its name (`cm_region`) or by its `cm_location`,
/// which is how the metadata DB names it (the `resource_group` of a `host` row is named
/// after the region's `cm_location`, the `code` of its `cluster_info` row).
fn same_region(n: &NodeEntry, label: &str) -> bool {
    n.region.as_deref() == Some(label)
        || (n.location.is_some() && label.trim().parse::<u8>().ok() == n.location)
}

/// A node's region as shown in a finding: `hz (cm_location 1)`.
fn describe_region(n: &NodeEntry) -> String {
    match (&n.region, n.location) {
        (Some(r), Some(l)) => format!("{r} (cm_location {l})"),
        (Some(r), None) => r.clone(),
        (None, Some(l)) => format!("cm_location {l}"),
        (None, None) => "no region".to_string(),
    }
}

/// The findings between two sources; `a` is the one whose regions have names and
/// locations (config.yaml), `b` may name a region either way.
fn compare(sa: Source, a: &Inventory, sb: Source, b: &Inventory, out: &mut BTreeSet<Finding>) {
    for (s1, x, s2, y) in [(sa, a, sb, b), (sb, b, sa, a)] {
        for n in &x.nodes {
            if y.node(n.ip).is_none() {
                out.insert(Finding::Missing {
                    node: n.ip.to_string(),
                    listed_in: s1,
                    missing_from: s2,
                });
            }
        }
    }
    for n in &a.nodes {
        let Some(m) = b.node(n.ip) else { continue };
        if let Some(label) = &m.region
            && (n.region.is_some() || n.location.is_some())
            && !same_region(n, label)
        {
            out.insert(Finding::RegionDiffers {
                node: n.ip,
                a: (sa, describe_region(n)),
                b: (sb, label.clone()),
            });
        }
        if let (Some(l1), Some(l2)) = (n.location, m.location)
            && l1 != l2
        {
            out.insert(Finding::LocationDiffers {
                node: n.ip,
                a: (sa, l1),
                b: (sb, l2),
            });
        }
        if let (Some(d1), Some(d2)) = (n.is_default, m.is_default)
            && d1 != d2
        {
            out.insert(Finding::DefaultDiffers {
                node: n.ip,
                a: (sa, d1),
                b: (sb, d2),
            });
        }
    }
}

#[cfg(test)]
mod tests;
