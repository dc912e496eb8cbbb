//! `demo --nodes N [--regions R]` (issue 15): a deployment of N emulator nodes over R
//! regions on the local engine ([`super::deployment`]), upgraded as one run recorded in
//! one ledger: `init --inventory`, `run --yes`, `ledger verify --live` (every node), and
//! with `--rollback` the rollback of every node and `ledger verify --live` again.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::deployment::{self, WorldSeed, WorldSpec};
use super::{
    ChildRun, DEMO_DIR_LABEL, DEMO_LABEL, Demo, DemoError, ErrorKind, Outcome, free_port, internal,
    service,
};
use crate::adapters::{BollardDocker, Docker, Health};
use crate::events::Plan;
use crate::omsconfig::MetaDatabases;

/// A deployment demo's result.
#[derive(Debug)]
pub struct DeploymentRun {
    /// The whole result as one JSON object (what `--json` prints).
    pub summary: serde_json::Value,
    /// The demo id.
    pub id: String,
    /// The version upgraded from.
    pub from: String,
    /// The version upgraded to.
    pub to: String,
    /// The run's phase at the end (completed, or rolled back with `--rollback`).
    pub phase: String,
    /// The demo's ledger.
    pub ledger: PathBuf,
    /// The demo's folder.
    pub dir: PathBuf,
    /// The inventory `init` was given.
    pub inventory: PathBuf,
    /// Every node at the end.
    pub nodes: Vec<NodeLine>,
    /// The first node stopped (T1).
    pub t1: Option<DateTime<Utc>>,
    /// HA back on after the upgrade (T2).
    pub t2: Option<DateTime<Utc>>,
    /// T2 - T1 in seconds.
    pub downtime_seconds: Option<f64>,
    /// Each command the demo ran, and whether it succeeded.
    pub commands: Vec<(String, bool)>,
    /// Commands to look around with.
    pub look_around: Vec<String>,
    /// A `ledger verify --live` that failed: the demo failed, after its summary is shown.
    pub verify_failure: Option<DemoError>,
}

/// One node of a deployment demo at its end.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeLine {
    /// `node0`, `node1`, ...
    pub node: String,
    /// Its label in the plan (the inventory's).
    pub label: String,
    /// Its region's name.
    pub region: String,
    /// Its `OMS_HOST_IP`.
    pub host_ip: String,
    /// The container holding the OMS name, its image and whether it runs.
    pub serving: String,
    /// Whether its console answered healthy at the end.
    pub healthy: bool,
}

impl Demo {
    /// Sets up the deployment and upgrades it (see the module docs).
    pub(super) fn run_deployment(mut self) -> Result<Outcome, DemoError> {
        self.check_ledger_free()?;
        let rt = super::runtime()?;
        let docker = rt.block_on(self.check_services())?;
        let (nodes, regions) = (self.args.nodes, self.args.regions);
        self.say(&format!(
            "demo {} of {nodes} nodes in {regions} region(s) in {} (ledger {})",
            self.st.id,
            self.st.dir.display(),
            self.st.ledger.display()
        ));
        std::fs::create_dir_all(&self.st.dir)
            .map_err(|e| internal(&format!("create {}", self.st.dir.display()), e))?;
        self.st.save()?;
        let (dir, ledger) = (self.st.dir.clone(), self.st.ledger.clone());
        let result = rt
            .block_on(self.start_world(&docker))
            .and_then(|(images, world)| self.upgrade_deployment(&rt, &docker, &images, &world));
        result.map_err(|e| super::left_in_place(e, &dir, &ledger))
    }

    /// The images, then the world of N nodes (databases, configs, containers, init once
    /// per region, health, seeded metadata).
    async fn start_world(
        &mut self,
        docker: &BollardDocker,
    ) -> Result<(Vec<String>, deployment::World), DemoError> {
        let images: Vec<String> = self
            .ensure_demo_images(docker)
            .await?
            .into_iter()
            .map(|i| i.reference)
            .collect();
        let prefix = self.st.db_prefix();
        let spec = WorldSpec {
            prefix: self.st.container.clone(),
            dir: self.st.dir.join("world"),
            old_image: images[0].clone(),
            target: self.target.clone(),
            rm: format!("{prefix}rm"),
            cm: format!("{prefix}cm"),
            heartbeat_base: format!("{prefix}hb"),
            nodes: self.args.nodes,
            regions: self.args.regions,
            nginx_port: free_port()?,
            labels: BTreeMap::from([
                (DEMO_LABEL.to_string(), self.st.id.clone()),
                (
                    DEMO_DIR_LABEL.to_string(),
                    self.st.dir.display().to_string(),
                ),
            ]),
            env: Vec::new(),
            privileged: self.args.privileged,
            seed: Some(WorldSeed {
                emulator: self.emulator.clone(),
                size: self.args.size.to_string(),
            }),
            progress: Some(self.args.progress),
        };
        // Recorded before anything is created, so `demo --clean` finds every database.
        let layout = deployment::layout(&spec)
            .map_err(|e| DemoError::new(ErrorKind::Input, e.to_string()))?;
        let all = layout.all_databases();
        self.st.databases = Some(MetaDatabases {
            rm: spec.rm.clone(),
            cm: spec.cm.clone(),
            cm_hb: layout.regions[0].heartbeat_db.clone(),
        });
        self.st.extra_databases = all
            .into_iter()
            .filter(|d| *d != spec.rm && *d != spec.cm && *d != layout.regions[0].heartbeat_db)
            .collect();
        self.st.save()?;
        self.say(&format!(
            "starting {} emulator nodes on 127.0.0.2.. over {} region(s), port {}",
            spec.nodes, spec.regions, spec.nginx_port
        ));
        let world = deployment::build(docker, &spec).await.map_err(service)?;
        for n in &world.nodes {
            self.say(&format!(
                "  {} {} {} ({})",
                n.container, n.host_ip, n.health_url, world.regions[n.region].name
            ));
        }
        let node0 = &world.nodes[0];
        self.st.container = node0.container.clone();
        self.st.config = node0.config.clone();
        self.st.old_container_id = Some(node0.container_id.clone());
        self.st.health_url = Some(node0.health_url.clone());
        self.st.stage = "seeded".into();
        self.st.save()?;
        Ok((images, world))
    }

    /// `init --inventory`, `run --yes`, `ledger verify --live`, and with `--rollback`,
    /// `rollback --yes` and `ledger verify --live` again; then the summary.
    fn upgrade_deployment(
        &mut self,
        rt: &tokio::runtime::Runtime,
        docker: &BollardDocker,
        images: &[String],
        world: &deployment::World,
    ) -> Result<Outcome, DemoError> {
        let backups = self.st.dir.join("backups").display().to_string();
        let inventory = world.inventory.display().to_string();
        let mut init = vec![
            "init",
            "--inventory",
            &inventory,
            "--container",
            &self.st.container,
            "--image",
            &images[1],
            "--backup-dir",
            &backups,
        ];
        if !self.args.privileged {
            init.push("--no-privileged");
        }
        let mut commands = Vec::new();
        let mut step = |demo: &Demo, args: &[&str]| -> Result<ChildRun, DemoError> {
            let r = demo.oms_upgrade(args)?;
            commands.push((args.join(" "), r.ok()));
            Ok(r)
        };
        let r = step(self, &init)?;
        if !r.ok() {
            return Err(self.child_failed("init", &r));
        }
        let r = step(self, &["run", "--yes"])?;
        if !r.ok() {
            return Err(self.child_failed("run --yes", &r));
        }
        self.st.stage = "upgraded".into();
        self.st.save()?;
        let mut verify_failure = None;
        let verify = step(self, &["ledger", "verify", "--live"])?;
        if !verify.ok() {
            verify_failure = Some(self.child_failed("ledger verify --live", &verify));
        }
        let mut verifies = vec![verify.json.clone()];
        if self.args.rollback && verify_failure.is_none() {
            let r = step(self, &["rollback", "--yes"])?;
            if !r.ok() {
                return Err(self.child_failed("rollback --yes", &r));
            }
            self.st.stage = "rolled-back".into();
            self.st.save()?;
            let again = step(self, &["ledger", "verify", "--live"])?;
            if !again.ok() {
                verify_failure = Some(self.child_failed("ledger verify --live", &again));
            }
            verifies.push(again.json.clone());
        }
        if verify_failure.is_none() {
            self.st.stage = "verified".into();
            self.st.save()?;
        }

        let (state, plan) = self.read_back()?;
        let nodes = rt.block_on(self.node_lines(docker, &plan))?;
        let downtime = match (state.t1(), state.t2()) {
            (Some(a), Some(b)) => Some((b - a).num_milliseconds() as f64 / 1000.0),
            _ => None,
        };
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "oms-upgrade".into());
        let ledger = self.st.ledger.display().to_string();
        let look_around = vec![
            format!("{exe} --ledger {ledger} status"),
            format!("{exe} --ledger {ledger} report"),
            format!("{exe} --ledger {ledger} ledger verify --live"),
            format!("docker ps -a --filter label={DEMO_LABEL}={}", self.st.id),
            format!("{exe} demo --clean --ledger {ledger}"),
        ];
        let summary = serde_json::json!({
            "ok": verify_failure.is_none(),
            "demo_id": self.st.id,
            "demo_dir": self.st.dir,
            "ledger": self.st.ledger,
            "inventory": world.inventory,
            "run_id": plan.run_id.to_string(),
            "from": plan.source_version.to_string(),
            "to": plan.target_version.to_string(),
            "phase": state.phase().to_string(),
            "nodes": nodes,
            "regions": world.regions.iter().map(|r| serde_json::json!({
                "name": r.name, "heartbeat_db": r.heartbeat_db, "config": r.config,
            })).collect::<Vec<_>>(),
            "t1": state.t1(),
            "t2": state.t2(),
            "downtime_seconds": downtime,
            "commands": commands.iter().map(|(c, ok)| serde_json::json!({"command": c, "ok": ok})).collect::<Vec<_>>(),
            "verify": verifies,
            "look_around": look_around,
        });
        Ok(Outcome::Deployment(Box::new(DeploymentRun {
            summary,
            id: self.st.id.clone(),
            from: plan.source_version.to_string(),
            to: plan.target_version.to_string(),
            phase: state.phase().to_string(),
            ledger: self.st.ledger.clone(),
            dir: self.st.dir.clone(),
            inventory: world.inventory.clone(),
            nodes,
            t1: state.t1(),
            t2: state.t2(),
            downtime_seconds: downtime,
            commands,
            look_around,
            verify_failure,
        })))
    }

    /// Every node as Docker and its console show it now: the container holding the OMS
    /// name on that node, and its health.
    async fn node_lines(
        &self,
        docker: &BollardDocker,
        plan: &Plan,
    ) -> Result<Vec<NodeLine>, DemoError> {
        let health = self.health_client()?;
        let mut out = Vec::new();
        for n in plan.nodes() {
            let p = plan.for_node(n);
            let meta = plan.node_meta(n);
            let serving =
                super::container_line(docker.inspect(&p.new_name).await.map_err(service)?.as_ref());
            let healthy = health
                .check(p.health_url.trim_end_matches("/oms/health"))
                .await
                .map(|r| r.healthy)
                .unwrap_or(false);
            out.push(NodeLine {
                node: n.to_string(),
                label: meta.label,
                region: plan.region_plan(meta.region).name,
                host_ip: p.host_ip,
                serving,
                healthy,
            });
        }
        Ok(out)
    }
}
