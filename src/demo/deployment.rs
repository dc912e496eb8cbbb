//! The demo world of issue 15: an OMS deployment of several nodes over several regions, all
//! on the one local Docker engine, made of emulator containers (docs/emulator.md, "Several
//! nodes on one engine").
//!
//! OMS runs one container per node on the host network, each with its own `OMS_HOST_IP`,
//! and one `config.yaml` per region (brief, "Layout of several nodes and regions"). Here every
//! node gets its own loopback address (`127.0.0.2`, `127.0.0.3`, ...; Linux routes all of
//! `127.0.0.0/8` to `lo`), on which the emulator binds its console port, so the nodes of a
//! region can share one config file (one `nginx_server_port`) as real nodes on separate
//! machines do. Region `r` (0-based) has `cm_location` `r + 1`, the heartbeat database
//! `<heartbeat_base>_<cm_location>` (obd's naming, `plugins/oms/1.0.0/generate_oms_config.py`)
//! and, with several regions, `cm_region` `region<r + 1>`; region 0 is the default one.
//!
//! [`build`] lays the world out and starts it (databases, configs, folders, containers,
//! `docker_init.sh` once per region, health), and returns a [`World`] describing it, which is
//! also written as an inventory file (`docs/inventory.md`) for `init --inventory`.
//! [`teardown`] removes what [`build`] made. Nothing here is wired into the upgrade flow:
//! the demo's multi-node upgrade drives it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml_ng::{Mapping, Value};

use crate::adapters::metadb::DbCharset;
use crate::adapters::{
    ContainerSpec, Docker, DockerError, Health, HealthError, HttpHealth, MetaDb, MetaDbError,
    MysqlMetaDb,
};
use crate::dbconn::DbTarget;
use crate::omsconfig::{MetaDatabases, OmsConfig, OmsConfigError};

/// Label on every container of a world; its value is the world's prefix, so [`teardown`]
/// also finds containers an upgrade created from the old ones (they inherit labels).
pub const WORLD_LABEL: &str = "oms-upgrade.world";
/// The most nodes a world may have (loopback addresses `127.0.0.2` to `127.0.0.65`).
pub const MAX_NODES: u8 = 64;
/// The most regions a world may have.
pub const MAX_REGIONS: u8 = 16;
/// The Docker endpoint written into the inventory for every node: the local engine.
pub const LOCAL_ENDPOINT: &str = "unix:///var/run/docker.sock";
/// The inventory file [`build`] writes in the world's folder.
pub const INVENTORY_FILE: &str = "inventory.yaml";
/// The record of what a world created, in its folder, written before the databases are
/// created: [`teardown`] drops only databases it lists, and removes only a folder that
/// holds it.
pub const STATE_FILE: &str = "world.json";
/// Identifies [`STATE_FILE`]'s layout.
const STATE_FORMAT: &str = "oms-upgrade-world/1";

/// What [`STATE_FILE`] holds.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct WorldState {
    format: String,
    prefix: String,
    databases: Vec<String>,
}

/// How long one fresh `docker_init.sh` may take.
const INIT_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a node may take to answer healthy after its region's init.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(120);

/// What world to build.
#[derive(Debug, Clone)]
pub struct WorldSpec {
    /// Container names are `<prefix>-n1`, `<prefix>-n2`, ...; also the [`WORLD_LABEL`]
    /// value. A Docker name: a letter or digit, then letters, digits, `_`, `.`, `-`.
    pub prefix: String,
    /// Folder the world lives in (configs, node folders, inventory); created if missing.
    /// An absolute plain path (`A-Z a-z 0-9 / _ . - +`), since the inventory names it.
    pub dir: PathBuf,
    /// Image of the old version every node starts on (e.g. `oms-emu/oms:feature_4.2.1_ce`).
    pub old_image: String,
    /// The metadata DB server every node uses.
    pub target: DbTarget,
    /// `drc_rm_db`, shared by every region; created by [`build`] (refused if it exists).
    pub rm: String,
    /// `drc_cm_db`, shared by every region; created by [`build`] (refused if it exists).
    pub cm: String,
    /// Region r's heartbeat database is `<heartbeat_base>_<r + 1>`; each is created.
    pub heartbeat_base: String,
    /// Number of nodes, 1 to [`MAX_NODES`].
    pub nodes: u8,
    /// Number of regions, 1 to `nodes` (and at most [`MAX_REGIONS`]).
    pub regions: u8,
    /// `nginx_server_port` of every region (each node binds it on its own address).
    pub nginx_port: u16,
    /// Labels put on every container besides [`WORLD_LABEL`].
    pub labels: BTreeMap<String, String>,
    /// Extra `NAME=value` environment for every container (besides `OMS_HOST_IP`), e.g. the
    /// emulator's knobs. Shown in progress lines and kept by Docker: never a secret.
    pub env: Vec<String>,
    /// `--privileged`, as the runbook says; engines that refuse it need `false` (the
    /// emulator does not need it).
    pub privileged: bool,
    /// Rows to seed once every node is healthy, if any.
    pub seed: Option<WorldSeed>,
    /// Where to say what is being done, one line at a time (the demo's stderr), if
    /// anywhere. Never given a secret.
    pub progress: Option<super::Progress>,
}

impl WorldSpec {
    fn say(&self, line: &str) {
        if let Some(p) = self.progress {
            p(line);
        }
    }
}

/// Seeding a world's metadata with the emulator's `seed` mode on the host (docs/emulator.md):
/// run once, with region 0's config (rm and cm are shared; the seeder registers the servers
/// of that config's `cm_nodes`, as `docker_init.sh` already did).
#[derive(Debug, Clone)]
pub struct WorldSeed {
    /// The `oms_emulator` binary ([`super::emuimage::find_emulator_binary`]).
    pub emulator: PathBuf,
    /// Volume of values, as `seed --size` takes it (`64K`, `10M`, bytes).
    pub size: String,
}

/// One node of a built world.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WorldNode {
    /// Container name (`<prefix>-n<k>`).
    pub container: String,
    /// The container's id as created.
    pub container_id: String,
    /// The node's `OMS_HOST_IP`, a loopback address of its own.
    pub host_ip: Ipv4Addr,
    /// `http://<host_ip>:<nginx_port>/oms/health`.
    pub health_url: String,
    /// Index of its region in [`World::regions`].
    pub region: usize,
    /// Host path of its config file (its region's, shared with the region's other nodes).
    pub config: PathBuf,
    /// The four binds, as `docker run -v` takes them.
    pub binds: Vec<String>,
}

/// One region of a built world.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WorldRegion {
    /// `cm_region` (written into the config only with several regions, as obd does).
    pub name: String,
    /// `cm_location`.
    pub location: u8,
    /// `cm_is_default` (region 0).
    pub is_default: bool,
    /// The region's `drc_cm_heartbeat_db`.
    pub heartbeat_db: String,
    /// Its `config.yaml`, shared by its nodes.
    pub config: PathBuf,
    /// Indexes of its nodes in [`World::nodes`], in order.
    pub nodes: Vec<usize>,
}

/// A built world: what `init` (and a multi-node demo) needs to find every node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct World {
    /// The prefix it was built with ([`WORLD_LABEL`]'s value).
    pub prefix: String,
    /// Its folder.
    pub dir: PathBuf,
    /// Nodes in order; node 0 is in region 0.
    pub nodes: Vec<WorldNode>,
    /// Regions in order; region 0 is the default one.
    pub regions: Vec<WorldRegion>,
    /// `drc_rm_db`.
    pub rm: String,
    /// `drc_cm_db`.
    pub cm: String,
    /// The console port of every node.
    pub nginx_port: u16,
    /// The inventory file describing the world (`docs/inventory.md`).
    pub inventory: PathBuf,
}

impl World {
    /// The three databases as node `n`'s config names them (its region's heartbeat db).
    pub fn databases_of(&self, n: usize) -> MetaDatabases {
        MetaDatabases {
            rm: self.rm.clone(),
            cm: self.cm.clone(),
            cm_hb: self.regions[self.nodes[n].region].heartbeat_db.clone(),
        }
    }

    /// Every database of the world: rm, cm, then each region's heartbeat db.
    pub fn all_databases(&self) -> Vec<String> {
        let mut v = vec![self.rm.clone(), self.cm.clone()];
        v.extend(self.regions.iter().map(|r| r.heartbeat_db.clone()));
        v
    }
}

/// Why a world could not be built or torn down. Each names what failed and where.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    /// The spec asks for something the world cannot be.
    #[error("cannot build a world of {nodes} node(s) over {regions} region(s): {why}")]
    Shape {
        /// Nodes asked for.
        nodes: u8,
        /// Regions asked for.
        regions: u8,
        /// What is wrong and what is allowed.
        why: String,
    },
    /// A name or path in the spec is not usable.
    #[error("world spec: {field} {value:?} {why}")]
    BadSpec {
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        why: &'static str,
    },
    /// A database the world would create exists already.
    #[error(
        "database `{0}` already exists on the metadata server; a world only uses databases it creates: pick other names or drop it"
    )]
    DatabaseExists(String),
    /// The metadata server failed.
    #[error("metadata DB: {0}")]
    MetaDb(Box<MetaDbError>),
    /// A config file could not be written.
    #[error(transparent)]
    Config(Box<OmsConfigError>),
    /// A folder or file could not be created or written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The Docker engine failed for a container.
    #[error("container {container}: {source}")]
    Docker {
        /// The container.
        container: String,
        /// The engine's error.
        #[source]
        source: Box<DockerError>,
    },
    /// A region's `docker_init.sh` did not succeed.
    #[error(
        "docker_init.sh in {container} (region {region}) ended with exit code {exit_code} without its success line; its output ends:\n{output}"
    )]
    Init {
        /// The container it ran in.
        container: String,
        /// The region's name.
        region: String,
        /// Its exit code.
        exit_code: i64,
        /// The end of its output.
        output: String,
    },
    /// The world's databases could not all be dropped.
    #[error("cannot drop the world's databases on {url}: {message}; drop them by hand")]
    DropDatabases {
        /// The metadata server (no password).
        url: String,
        /// The driver's message.
        message: String,
    },
    /// The seeder failed.
    #[error("seeding the world's metadata with {emulator} failed ({status}): {output}")]
    Seed {
        /// The binary run.
        emulator: PathBuf,
        /// Its exit status.
        status: String,
        /// The end of its output.
        output: String,
    },
    /// A node never answered healthy.
    #[error("node {container} never answered healthy at {url}: {source}")]
    Health {
        /// The container.
        container: String,
        /// Its health URL.
        url: String,
        /// The last failure.
        #[source]
        source: Box<HealthError>,
    },
}

impl From<MetaDbError> for WorldError {
    fn from(e: MetaDbError) -> Self {
        WorldError::MetaDb(Box::new(e))
    }
}

impl From<OmsConfigError> for WorldError {
    fn from(e: OmsConfigError) -> Self {
        WorldError::Config(Box::new(e))
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WorldError + '_ {
    move |source| WorldError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Which region node `i` of `nodes` over `regions` is in: contiguous blocks, the earlier
/// regions one node larger when the division is not even (3 over 2: 2 + 1).
pub fn region_of(i: u8, nodes: u8, regions: u8) -> usize {
    (usize::from(i) * usize::from(regions)) / usize::from(nodes)
}

/// Node `i`'s `OMS_HOST_IP`: `127.0.0.<i + 2>` (`127.0.0.1` stays for single-node tests).
pub fn node_ip(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, i + 2)
}

fn check_spec(spec: &WorldSpec) -> Result<(), WorldError> {
    let shape = |why: String| WorldError::Shape {
        nodes: spec.nodes,
        regions: spec.regions,
        why,
    };
    if spec.nodes == 0 || spec.nodes > MAX_NODES {
        return Err(shape(format!("nodes must be 1 to {MAX_NODES}")));
    }
    if spec.regions == 0 || spec.regions > spec.nodes || spec.regions > MAX_REGIONS {
        return Err(shape(format!(
            "regions must be 1 to the number of nodes (at most {MAX_REGIONS}): every region has a node"
        )));
    }
    let docker_name = |s: &str| {
        s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && s.len() <= 100
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    };
    if !docker_name(&spec.prefix) {
        return Err(WorldError::BadSpec {
            field: "prefix",
            value: spec.prefix.clone(),
            why: "must be a Docker name: a letter or digit, then letters, digits, `_`, `.`, `-` (at most 100)",
        });
    }
    let plain_path = spec.dir.is_absolute()
        && spec.dir.to_str().is_some_and(|s| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_.-+".contains(c))
        })
        && !spec
            .dir
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir));
    if !plain_path {
        return Err(WorldError::BadSpec {
            field: "dir",
            value: spec.dir.display().to_string(),
            why: "must be an absolute path of letters, digits and `/ _ . - +`, without `..` (the inventory names it)",
        });
    }
    let db_name = |s: &str| {
        !s.is_empty() && s.len() <= 48 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    for (field, v) in [
        ("rm", &spec.rm),
        ("cm", &spec.cm),
        ("heartbeat_base", &spec.heartbeat_base),
    ] {
        if !db_name(v) {
            return Err(WorldError::BadSpec {
                field,
                value: v.clone(),
                why: "must be 1-48 letters, digits or `_`",
            });
        }
    }
    if spec.nginx_port == 0 {
        return Err(WorldError::BadSpec {
            field: "nginx_port",
            value: "0".into(),
            why: "must be a port number",
        });
    }
    Ok(())
}

/// The world `spec` describes, before anything exists: names, addresses, paths.
pub fn layout(spec: &WorldSpec) -> Result<World, WorldError> {
    check_spec(spec)?;
    let mut regions: Vec<WorldRegion> = (0..spec.regions)
        .map(|r| {
            let location = r + 1;
            WorldRegion {
                name: format!("region{location}"),
                location,
                is_default: r == 0,
                heartbeat_db: format!("{}_{location}", spec.heartbeat_base),
                config: spec
                    .dir
                    .join(format!("region{location}"))
                    .join("config.yaml"),
                nodes: Vec::new(),
            }
        })
        .collect();
    let mut nodes = Vec::new();
    for i in 0..spec.nodes {
        let r = region_of(i, spec.nodes, spec.regions);
        let host_ip = node_ip(i);
        let container = format!("{}-n{}", spec.prefix, i + 1);
        let folder = spec.dir.join(format!("n{}", i + 1));
        let config = regions[r].config.clone();
        let binds = vec![
            format!(
                "{}:{}",
                config.display(),
                crate::omsconfig::CONTAINER_CONFIG_PATH
            ),
            format!("{}:/home/admin/logs", folder.join("logs").display()),
            format!("{}:/home/ds/store", folder.join("store").display()),
            format!("{}:/home/ds/run", folder.join("run").display()),
        ];
        regions[r].nodes.push(nodes.len());
        nodes.push(WorldNode {
            container,
            container_id: String::new(),
            host_ip,
            health_url: crate::adapters::health::health_url(&format!(
                "http://{host_ip}:{}",
                spec.nginx_port
            )),
            region: r,
            config,
            binds,
        });
    }
    Ok(World {
        prefix: spec.prefix.clone(),
        dir: spec.dir.clone(),
        nodes,
        regions,
        rm: spec.rm.clone(),
        cm: spec.cm.clone(),
        nginx_port: spec.nginx_port,
        inventory: spec.dir.join(INVENTORY_FILE),
    })
}

/// Region `r`'s `config.yaml`: the shared metadata DB and databases, its heartbeat db, and
/// the region keys obd's generator writes (`cm_url`, `cm_location`, `cm_region` and
/// `cm_region_cn` only with several regions, `cm_is_default` as the string obd writes,
/// `cm_nodes`).
pub fn region_config(spec: &WorldSpec, world: &World, r: usize) -> OmsConfig {
    let region = &world.regions[r];
    let mut cfg = OmsConfig::new(
        &spec.target,
        &MetaDatabases {
            rm: world.rm.clone(),
            cm: world.cm.clone(),
            cm_hb: region.heartbeat_db.clone(),
        },
    );
    cfg.nginx_server_port = world.nginx_port;
    let first = world.nodes[region.nodes[0]].host_ip;
    let mut extra = Mapping::new();
    let mut put = |k: &str, v: Value| {
        extra.insert(Value::String(k.into()), v);
    };
    put(
        "cm_url",
        Value::String(format!("http://{first}:{}", cfg.cm_server_port)),
    );
    put("cm_location", Value::Number(region.location.into()));
    if world.regions.len() > 1 {
        put("cm_region", Value::String(region.name.clone()));
        put("cm_region_cn", Value::String(region.name.clone()));
    }
    put(
        "cm_is_default",
        Value::String(region.is_default.to_string()),
    );
    put(
        "cm_nodes",
        Value::Sequence(
            region
                .nodes
                .iter()
                .map(|&n| Value::String(world.nodes[n].host_ip.to_string()))
                .collect(),
        ),
    );
    cfg.extra = extra;
    cfg
}

/// The inventory file's text for `world` (`docs/inventory.md`): per node its IP, the local
/// engine, its container, its config path, its region (by name, with several regions),
/// `cm_location` and whether it is the default region.
pub fn inventory_yaml(world: &World) -> String {
    let several = world.regions.len() > 1;
    let mut out = String::from(
        "# The oms-upgrade demo world: one OMS emulator container per node on the local engine.\nnodes:\n",
    );
    for n in &world.nodes {
        let r = &world.regions[n.region];
        out.push_str(&format!("  - ip: {}\n", n.host_ip));
        out.push_str(&format!("    docker: {LOCAL_ENDPOINT}\n"));
        out.push_str(&format!("    container: {}\n", n.container));
        out.push_str(&format!("    config: {}\n", n.config.display()));
        if several {
            out.push_str(&format!("    region: {}\n", r.name));
        }
        out.push_str(&format!("    location: {}\n", r.location));
        out.push_str(&format!("    default: {}\n", r.is_default));
    }
    out
}

/// Builds and starts the world: creates rm, cm and every region's heartbeat db (refusing
/// any that exists), writes one `config.yaml` per region and each node's folders, creates
/// and starts every node's container on `old_image` (host network, its own `OMS_HOST_IP`),
/// runs `docker_init.sh` on the first node of each region in turn (region 0's is the fresh
/// install of rm and cm; the others add their region's heartbeat db and servers), waits
/// until every node answers healthy at its own address, and writes the inventory file.
/// On failure, what was made so far stays for inspection; [`teardown`] of
/// [`layout`]`(spec)` removes it (it finds containers by label and drops databases by name).
pub async fn build<D: Docker>(docker: &D, spec: &WorldSpec) -> Result<World, WorldError> {
    let mut world = layout(spec)?;

    // A folder of its own: what teardown removes must be only what the world made.
    let empty = match std::fs::read_dir(&world.dir) {
        Ok(mut d) => d.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(io(&world.dir)(e)),
    };
    if !empty {
        return Err(WorldError::BadSpec {
            field: "dir",
            value: world.dir.display().to_string(),
            why: "must be absent or empty: a world lives in a folder of its own, which its teardown removes",
        });
    }
    std::fs::create_dir_all(&world.dir).map_err(io(&world.dir))?;

    spec.say(&format!(
        "creating databases {} on {}",
        world.all_databases().join(", "),
        spec.target.display_url()
    ));
    let metadb = MysqlMetaDb::new(&spec.target);
    let created = create_databases(&metadb, &world).await;
    metadb.close().await;
    created?;

    for r in 0..world.regions.len() {
        let path = world.regions[r].config.clone();
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        region_config(spec, &world, r).write(&path)?;
        spec.say(&format!(
            "wrote {} (region {}, cm_location {}, nodes {})",
            path.display(),
            world.regions[r].name,
            world.regions[r].location,
            world.regions[r]
                .nodes
                .iter()
                .map(|&n| world.nodes[n].host_ip.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for n in &world.nodes {
        for b in &n.binds[1..] {
            let host = Path::new(b.split(':').next().unwrap_or_default());
            std::fs::create_dir_all(host).map_err(io(host))?;
        }
    }

    let mut labels = spec.labels.clone();
    labels.insert(WORLD_LABEL.to_string(), spec.prefix.clone());
    for n in world.nodes.iter_mut() {
        let mut env = vec![format!("OMS_HOST_IP={}", n.host_ip)];
        env.extend(spec.env.iter().cloned());
        let mut c = ContainerSpec::runbook(
            n.container.clone(),
            spec.old_image.clone(),
            n.binds.clone(),
            env,
            labels.clone(),
        );
        c.privileged = spec.privileged;
        spec.say(&format!("$ {}", c.docker_run_args().join(" ")));
        let docker_err = |source| WorldError::Docker {
            container: n.container.clone(),
            source: Box::new(source),
        };
        n.container_id = docker.create(&c).await.map_err(docker_err)?;
        docker.start(&n.container).await.map_err(docker_err)?;
    }

    for region in &world.regions {
        let first = &world.nodes[region.nodes[0]];
        spec.say(&format!(
            "$ docker exec -w /root {} bash /root/docker_init.sh   # region {}",
            first.container, region.name
        ));
        let init = docker
            .exec_in(
                &first.container,
                vec!["bash".into(), "/root/docker_init.sh".into()],
                Vec::new(),
                Some("/root".into()),
                Some(INIT_TIMEOUT),
            )
            .await
            .map_err(|source| WorldError::Docker {
                container: first.container.clone(),
                source: Box::new(source),
            })?;
        if init.exit_code != 0 || !init.output_tail.contains(crate::steps::INIT_SUCCESS_MARKER) {
            return Err(WorldError::Init {
                container: first.container.clone(),
                region: region.name.clone(),
                exit_code: init.exit_code,
                output: masked(&init.output_tail, &spec.target),
            });
        }
    }

    let health = HttpHealth::new().map_err(|source| WorldError::Health {
        container: world.nodes[0].container.clone(),
        url: world.nodes[0].health_url.clone(),
        source: Box::new(source),
    })?;
    for n in &world.nodes {
        let base = format!("http://{}:{}", n.host_ip, world.nginx_port);
        health
            .wait_healthy(&base, HEALTH_TIMEOUT, Duration::from_millis(200))
            .await
            .map_err(|source| WorldError::Health {
                container: n.container.clone(),
                url: n.health_url.clone(),
                source: Box::new(source),
            })?;
        spec.say(&format!("{} is healthy at {}", n.container, n.health_url));
    }

    if let Some(seed) = &spec.seed {
        spec.say(&format!(
            "$ {} seed --config {} --size {}",
            seed.emulator.display(),
            world.regions[0].config.display(),
            seed.size
        ));
        // The config file holds the password, so it never reaches argv.
        let out = tokio::process::Command::new(&seed.emulator)
            .arg("seed")
            .arg("--config")
            .arg(&world.regions[0].config)
            .arg("--size")
            .arg(&seed.size)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(io(&seed.emulator))?;
        if !out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr);
            let tail: String = text
                .chars()
                .rev()
                .take(2000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            return Err(WorldError::Seed {
                emulator: seed.emulator.clone(),
                status: out.status.to_string(),
                output: masked(&tail, &spec.target),
            });
        }
    }

    std::fs::write(&world.inventory, inventory_yaml(&world)).map_err(io(&world.inventory))?;
    spec.say(&format!(
        "wrote the inventory {}",
        world.inventory.display()
    ));
    Ok(world)
}

/// `text` (a program's output) fit for an error message: every secret `redact` knows
/// masked, and the metadata password wherever it appears verbatim (OMS's `docker_init.sh`
/// echoes the client command it runs, `-p<password>` included).
pub(crate) fn masked(text: &str, target: &DbTarget) -> String {
    let text = crate::redact::redact(text).into_owned();
    let password = target.password.expose();
    if password.is_empty() {
        text
    } else {
        text.replace(password, "****")
    }
}

/// Creates each database (utf8mb4), refusing if any exists: a world never writes into
/// databases it did not make. The names are recorded in [`STATE_FILE`] (a new file) after
/// the check and before the first is created, so [`teardown`] drops exactly these.
async fn create_databases(metadb: &MysqlMetaDb, world: &World) -> Result<(), WorldError> {
    let charset = DbCharset {
        charset: "utf8mb4".into(),
        collation: "utf8mb4_bin".into(),
    };
    let names = world.all_databases();
    for d in &names {
        if metadb.database_exists(d).await? {
            return Err(WorldError::DatabaseExists(d.clone()));
        }
    }
    let state = WorldState {
        format: STATE_FORMAT.into(),
        prefix: world.prefix.clone(),
        databases: names.clone(),
    };
    let path = world.dir.join(STATE_FILE);
    let text = serde_json::to_string_pretty(&state).unwrap_or_default();
    crate::safefs::create_new_file(&path, 0o644)
        .and_then(|mut f| {
            use std::io::Write;
            f.write_all(text.as_bytes()).and_then(|_| f.sync_all())
        })
        .map_err(io(&path))?;
    for d in &names {
        metadb.recreate_database(d, &charset).await?;
    }
    Ok(())
}

/// What [`teardown`] removed, and what it kept.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TornDown {
    /// Containers removed (every container labelled with the world's prefix).
    pub containers: Vec<String>,
    /// Databases dropped.
    pub databases: Vec<String>,
    /// Whether the world's folder was removed.
    pub folder_removed: bool,
    /// What was left, each with the reason (not recorded as the world's own).
    pub kept: Vec<String>,
}

/// What the world's [`STATE_FILE`] says it created, if the file is there and its own.
fn recorded_state(world: &World) -> Option<WorldState> {
    let text = std::fs::read_to_string(world.dir.join(STATE_FILE)).ok()?;
    let st: WorldState = serde_json::from_str(&text).ok()?;
    (st.format == STATE_FORMAT && st.prefix == world.prefix).then_some(st)
}

/// Removes the world: every container labelled [`WORLD_LABEL`]`=<prefix>` (the nodes and
/// whatever an upgrade made from them), the databases its [`STATE_FILE`] records as created
/// (`target`'s account), and, with `remove_folder`, its folder when that file is there.
/// Without the file (a build refused before it created anything) no database and no
/// folder is touched, and [`TornDown::kept`] says so. The first failure stops it and is
/// returned; what was removed before it is gone.
pub async fn teardown<D: Docker>(
    docker: &D,
    target: &DbTarget,
    world: &World,
    remove_folder: bool,
) -> Result<TornDown, WorldError> {
    let mut done = TornDown::default();
    let labelled = docker
        .find_by_label(WORLD_LABEL, Some(&world.prefix))
        .await
        .map_err(|source| WorldError::Docker {
            container: format!("labelled {WORLD_LABEL}={}", world.prefix),
            source: Box::new(source),
        })?;
    for c in labelled {
        docker
            .remove(&c.name, true)
            .await
            .map_err(|source| WorldError::Docker {
                container: c.name.clone(),
                source: Box::new(source),
            })?;
        done.containers.push(c.name);
    }
    let state = recorded_state(world);
    let owned: Vec<String> = match &state {
        Some(st) => world
            .all_databases()
            .into_iter()
            .filter(|d| st.databases.contains(d))
            .collect(),
        None => Vec::new(),
    };
    for d in world.all_databases() {
        if !owned.contains(&d) {
            done.kept.push(format!(
                "database `{d}`: not recorded as created by world {} in {}",
                world.prefix,
                world.dir.join(STATE_FILE).display()
            ));
        }
    }
    let pool = mysql_async::Pool::new(target.opts(None));
    let dropped = async {
        use mysql_async::prelude::Queryable;
        let mut c = pool.get_conn().await?;
        for d in owned {
            c.query_drop(format!(
                "DROP DATABASE IF EXISTS {}",
                crate::sqltext::quote_ident(&d)
            ))
            .await?;
            done.databases.push(d);
        }
        Ok::<_, mysql_async::Error>(())
    }
    .await;
    let _ = pool.disconnect().await;
    dropped.map_err(|e| WorldError::DropDatabases {
        url: target.display_url(),
        message: e.to_string(),
    })?;
    if remove_folder && world.dir.exists() {
        if state.is_some() {
            std::fs::remove_dir_all(&world.dir).map_err(io(&world.dir))?;
            done.folder_removed = true;
        } else {
            done.kept.push(format!(
                "folder {}: it holds no {STATE_FILE} of world {}",
                world.dir.display(),
                world.prefix
            ));
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(nodes: u8, regions: u8) -> WorldSpec {
        WorldSpec {
            prefix: "w1".into(),
            dir: PathBuf::from("/tmp/world-w1"),
            old_image: "oms-emu/oms:feature_4.2.1_ce".into(),
            target: DbTarget {
                host: "127.0.0.1".into(),
                port: 3306,
                user: "u".into(),
                password: crate::secret::Secret::new("pw"),
                tls: crate::dbconn::TlsSettings::off(),
            },
            rm: "w_rm".into(),
            cm: "w_cm".into(),
            heartbeat_base: "w_hb".into(),
            nodes,
            regions,
            nginx_port: 23456,
            labels: BTreeMap::new(),
            env: Vec::new(),
            privileged: false,
            seed: None,
            progress: None,
        }
    }

    #[test]
    fn three_nodes_over_two_regions_are_two_and_one() {
        let w = layout(&spec(3, 2)).unwrap();
        let regions: Vec<usize> = w.nodes.iter().map(|n| n.region).collect();
        assert_eq!(regions, [0, 0, 1]);
        assert_eq!(w.regions[0].nodes, [0, 1]);
        assert_eq!(w.regions[1].nodes, [2]);
        assert_eq!(w.nodes[2].host_ip, Ipv4Addr::new(127, 0, 0, 4));
        assert_eq!(w.nodes[2].health_url, "http://127.0.0.4:23456/oms/health");
        assert_eq!(w.nodes[0].config, w.nodes[1].config);
        assert_ne!(w.nodes[0].config, w.nodes[2].config);
        assert_eq!(w.regions[1].heartbeat_db, "w_hb_2");
        assert_eq!(w.databases_of(2).cm_hb, "w_hb_2");
        assert_eq!(w.nodes[1].container, "w1-n2");
    }

    #[test]
    fn every_region_has_a_node() {
        for n in 1..=12u8 {
            for r in 1..=n {
                let w = layout(&spec(n, r)).unwrap();
                assert!(
                    w.regions.iter().all(|g| !g.nodes.is_empty()),
                    "{n} over {r}"
                );
            }
        }
        assert!(matches!(layout(&spec(2, 3)), Err(WorldError::Shape { .. })));
        assert!(matches!(layout(&spec(0, 0)), Err(WorldError::Shape { .. })));
    }

    #[test]
    fn the_inventory_file_reads_back_and_agrees_with_the_configs() {
        let s = spec(3, 2);
        let w = layout(&s).unwrap();
        let text = inventory_yaml(&w);
        let inv = crate::inventory::from_file(&text, Path::new("inventory.yaml")).unwrap();
        assert_eq!(inv.nodes.len(), 3);
        assert_eq!(inv.nodes[2].region.as_deref(), Some("region2"));
        assert_eq!(inv.nodes[2].container.as_deref(), Some("w1-n3"));
        let configs: Vec<(PathBuf, OmsConfig)> = (0..w.regions.len())
            .map(|r| (w.regions[r].config.clone(), region_config(&s, &w, r)))
            .collect();
        let refs: Vec<(PathBuf, &OmsConfig)> =
            configs.iter().map(|(p, c)| (p.clone(), c)).collect();
        let from_configs = crate::inventory::from_configs(&refs).unwrap();
        // As the cm database lists them once each region's init registered its nodes.
        let listed: Vec<(String, String)> = w
            .nodes
            .iter()
            .map(|n| {
                (
                    n.host_ip.to_string(),
                    w.regions[n.region].location.to_string(),
                )
            })
            .collect();
        let findings = crate::inventory::cross_check(&from_configs, Some(&inv), &listed);
        assert!(findings.is_empty(), "{findings:?}");
    }

    #[test]
    fn a_spec_with_unusable_names_is_refused() {
        let mut s = spec(1, 1);
        s.prefix = "-x".into();
        assert!(matches!(
            layout(&s),
            Err(WorldError::BadSpec {
                field: "prefix",
                ..
            })
        ));
        let mut s = spec(1, 1);
        s.dir = PathBuf::from("/tmp/a b");
        assert!(matches!(
            layout(&s),
            Err(WorldError::BadSpec { field: "dir", .. })
        ));
        let mut s = spec(1, 1);
        s.rm = "a`b".into();
        assert!(matches!(
            layout(&s),
            Err(WorldError::BadSpec { field: "rm", .. })
        ));
    }
}
