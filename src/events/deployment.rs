//! A deployment of several OMS nodes, possibly in several regions, sharing one metadata DB
//! (issue 15): which nodes and regions a plan covers, and the step keys of a node or region
//! other than the plan's own.
//!
//! Node 0 is the plan's own node: [`Plan`]'s `old_container`, `host_ip`, `health_url` and
//! names, and the plain single-node step keys (`stop-old`). Region 0 is node 0's region,
//! whose heartbeat database is `plan.databases.cm_hb`. Nodes and regions 1.. live in
//! [`Deployment`] (a `PlanExt`), and their steps are [`StepKey::Node`] and
//! [`StepKey::Region`]. A single-node plan has no `Deployment` and records exactly what it
//! recorded before issue 15.
//!
//! A step of node n is performed exactly as the single-node step [`StepKey::base`], built
//! from [`Plan::for_node`] and run against node n's Docker engine; a step of region r is
//! built from [`Plan::for_region`].

use std::fmt;

use serde::Serialize;

use super::{ContainerSettings, ContainerSnapshot, MetaDb, Plan, PlanExt, StepKey};

/// A node of the deployment: 0 is the plan's own node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct NodeIx(pub u8);

impl NodeIx {
    /// The plan's own node.
    pub const PRIMARY: NodeIx = NodeIx(0);
}

impl fmt::Display for NodeIx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node{}", self.0)
    }
}

/// A region of the deployment: 0 is node 0's region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RegionIx(pub u8);

impl fmt::Display for RegionIx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "region{}", self.0)
    }
}

/// The steps every node takes (upgrade and rollback); for node 0 they are the plain keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeStep {
    /// [`StepKey::PreStopCheck`].
    PreStopCheck,
    /// [`StepKey::StopOldContainer`].
    StopOld,
    /// [`StepKey::OldRestartOff`].
    OldRestartOff,
    /// [`StepKey::RenameOldContainer`].
    RenameOld,
    /// [`StepKey::CreateNewContainer`].
    CreateNew,
    /// [`StepKey::StartNewContainer`].
    StartNew,
    /// [`StepKey::CheckSupervisor`].
    CheckSupervisor,
    /// [`StepKey::RunDockerInit`].
    RunInit,
    /// [`StepKey::ConfirmHealth`].
    ConfirmHealth,
    /// [`StepKey::StopNewContainer`].
    StopNew,
    /// [`StepKey::RenameNewAside`].
    RenameNewAside,
    /// [`StepKey::RenameOldBack`].
    RenameOldBack,
    /// [`StepKey::RollbackRestartPolicy`].
    RollbackRestartPolicy,
    /// [`StepKey::RestartOldContainer`].
    RestartOld,
    /// [`StepKey::ConfirmOldHealth`].
    ConfirmOldHealth,
}

impl NodeStep {
    /// Every node step.
    pub const ALL: [NodeStep; 15] = [
        NodeStep::PreStopCheck,
        NodeStep::StopOld,
        NodeStep::OldRestartOff,
        NodeStep::RenameOld,
        NodeStep::CreateNew,
        NodeStep::StartNew,
        NodeStep::CheckSupervisor,
        NodeStep::RunInit,
        NodeStep::ConfirmHealth,
        NodeStep::StopNew,
        NodeStep::RenameNewAside,
        NodeStep::RenameOldBack,
        NodeStep::RollbackRestartPolicy,
        NodeStep::RestartOld,
        NodeStep::ConfirmOldHealth,
    ];

    /// The single-node key this step performs.
    pub fn base(self) -> StepKey {
        match self {
            NodeStep::PreStopCheck => StepKey::PreStopCheck,
            NodeStep::StopOld => StepKey::StopOldContainer,
            NodeStep::OldRestartOff => StepKey::OldRestartOff,
            NodeStep::RenameOld => StepKey::RenameOldContainer,
            NodeStep::CreateNew => StepKey::CreateNewContainer,
            NodeStep::StartNew => StepKey::StartNewContainer,
            NodeStep::CheckSupervisor => StepKey::CheckSupervisor,
            NodeStep::RunInit => StepKey::RunDockerInit,
            NodeStep::ConfirmHealth => StepKey::ConfirmHealth,
            NodeStep::StopNew => StepKey::StopNewContainer,
            NodeStep::RenameNewAside => StepKey::RenameNewAside,
            NodeStep::RenameOldBack => StepKey::RenameOldBack,
            NodeStep::RollbackRestartPolicy => StepKey::RollbackRestartPolicy,
            NodeStep::RestartOld => StepKey::RestartOldContainer,
            NodeStep::ConfirmOldHealth => StepKey::ConfirmOldHealth,
        }
    }

    /// The node step a single-node key is, if it is one.
    pub fn of(key: StepKey) -> Option<NodeStep> {
        NodeStep::ALL.into_iter().find(|s| s.base() == key)
    }
}

/// The steps every region takes: its heartbeat database's prune, dump and rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RegionStep {
    /// [`StepKey::PruneHeartbeat`].
    PruneHeartbeat,
    /// [`StepKey::Dump`] of the region's heartbeat database.
    DumpHeartbeat,
    /// [`StepKey::RecreateDatabase`] of the region's heartbeat database.
    RecreateHeartbeat,
    /// [`StepKey::Restore`] of the region's heartbeat database.
    RestoreHeartbeat,
    /// issue 16: [`StepKey::DropPrunedHeartbeat`] of the region's heartbeat database.
    DropPrunedHeartbeat,
    /// issue 16: [`StepKey::RollbackDropPrunedHeartbeat`] of the region's heartbeat database.
    RollbackDropPrunedHeartbeat,
}

impl RegionStep {
    /// Every region step.
    pub const ALL: [RegionStep; 6] = [
        RegionStep::PruneHeartbeat,
        RegionStep::DumpHeartbeat,
        RegionStep::RecreateHeartbeat,
        RegionStep::RestoreHeartbeat,
        RegionStep::DropPrunedHeartbeat,
        RegionStep::RollbackDropPrunedHeartbeat,
    ];

    /// The single-node key this step performs (on the region's heartbeat database).
    pub fn base(self) -> StepKey {
        match self {
            RegionStep::PruneHeartbeat => StepKey::PruneHeartbeat,
            RegionStep::DumpHeartbeat => StepKey::Dump { db: MetaDb::CmHb },
            RegionStep::RecreateHeartbeat => StepKey::RecreateDatabase { db: MetaDb::CmHb },
            RegionStep::RestoreHeartbeat => StepKey::Restore { db: MetaDb::CmHb },
            RegionStep::DropPrunedHeartbeat => StepKey::DropPrunedHeartbeat,
            RegionStep::RollbackDropPrunedHeartbeat => StepKey::RollbackDropPrunedHeartbeat,
        }
    }

    /// The region step a single-node key is, if it is one.
    pub fn of(key: StepKey) -> Option<RegionStep> {
        RegionStep::ALL.into_iter().find(|s| s.base() == key)
    }
}

/// Where a step acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Once for the whole deployment (HA, the rm and cm databases, the final checks).
    Deployment,
    /// On one node's containers.
    Node(NodeIx),
    /// On one region's heartbeat database.
    Region(RegionIx),
}

impl StepKey {
    /// The single-node key this key performs (itself for a single-node key).
    pub fn base(self) -> StepKey {
        match self {
            StepKey::Node { step, .. } => step.base(),
            StepKey::Region { step, .. } => step.base(),
            k => k,
        }
    }

    /// Where the step acts: node 0's per-node steps are the plain keys, region 0's the
    /// plain heartbeat keys.
    pub fn scope(self) -> Scope {
        match self {
            StepKey::Node { node, .. } => Scope::Node(node),
            StepKey::Region { region, .. } => Scope::Region(region),
            k if NodeStep::of(k).is_some() => Scope::Node(NodeIx::PRIMARY),
            k if RegionStep::of(k).is_some() => Scope::Region(RegionIx(0)),
            _ => Scope::Deployment,
        }
    }

    /// The node a per-node step acts on (`None` for the others).
    pub fn node(self) -> Option<NodeIx> {
        match self.scope() {
            Scope::Node(n) => Some(n),
            _ => None,
        }
    }

    /// The region a per-region step acts on (`None` for the others).
    pub fn region(self) -> Option<RegionIx> {
        match self.scope() {
            Scope::Region(r) => Some(r),
            _ => None,
        }
    }

    /// This per-node key on node `n` (the plain key for node 0). A key that is not a
    /// per-node step stays as it is.
    pub fn on_node(self, n: NodeIx) -> StepKey {
        match NodeStep::of(self.base()) {
            Some(step) if n != NodeIx::PRIMARY => StepKey::Node { node: n, step },
            Some(step) => step.base(),
            None => self,
        }
    }

    /// This per-region key in region `r` (the plain key for region 0). A key that is not a
    /// per-region step stays as it is.
    pub fn in_region(self, r: RegionIx) -> StepKey {
        match RegionStep::of(self.base()) {
            Some(step) if r.0 != 0 => StepKey::Region { region: r, step },
            Some(step) => step.base(),
            None => self,
        }
    }
}

/// What every node has, node 0 included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeMeta {
    /// The operator's name for the node (inventory), e.g. `oms-b`.
    pub label: String,
    /// The node's region.
    pub region: RegionIx,
    /// How its Docker engine is reached (`DockerEndpoint` as text, never a secret):
    /// `local`, `unix:///var/run/docker.sock`, `ssh://root@10.0.0.2`, `tcp://h:2376`.
    pub endpoint: String,
    /// `docker_init.sh` runs on this node: once per region when the region's nodes share
    /// one config file, else on every node (the brief, "The official multi-node upgrade").
    pub runs_init: bool,
}

/// A region of the deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegionPlan {
    /// `cm_region` (e.g. `cn-hangzhou`).
    pub name: String,
    /// The region's heartbeat database (`drc_cm_heartbeat_db` of its config).
    pub heartbeat_db: String,
}

/// A node other than node 0: what the plan holds for node 0 in its own fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodePlan {
    /// Label, region, endpoint, init.
    pub meta: NodeMeta,
    /// Its old container as `init` saw it.
    pub old_container: ContainerSnapshot,
    /// Settings its new container inherits (as `PlanExt::Container` for node 0).
    pub settings: Option<Box<ContainerSettings>>,
    /// `OMS_HOST_IP` of its new container.
    pub host_ip: String,
    /// Its health URL.
    pub health_url: String,
    /// Name its old container is renamed to.
    pub old_renamed_to: String,
    /// Name of its new container.
    pub new_name: String,
    /// Name its new container is moved to on rollback.
    pub failed_name: String,
    /// The target image's id on its engine, when known at planning.
    pub target_image_id: Option<String>,
}

/// The deployment a plan covers beyond its own node (`PlanExt::Deployment`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployment {
    /// Node 0's label, region, endpoint and init.
    pub node0: NodeMeta,
    /// Every region; index = [`RegionIx`], `[0]` is node 0's region.
    pub regions: Vec<RegionPlan>,
    /// Nodes 1..: `nodes[i]` is `NodeIx(i + 1)`.
    pub nodes: Vec<NodePlan>,
}

impl Plan {
    /// The deployment beyond node 0, if the plan covers several nodes.
    pub fn deployment(&self) -> Option<&Deployment> {
        self.ext.iter().find_map(|e| match e {
            PlanExt::Deployment(d) => Some(d.as_ref()),
            _ => None,
        })
    }

    /// Every node, node 0 first (`[NodeIx(0)]` for a single-node plan).
    pub fn nodes(&self) -> Vec<NodeIx> {
        let extra = self.deployment().map_or(0, |d| d.nodes.len());
        (0..=extra).map(|i| NodeIx(i as u8)).collect()
    }

    /// Every region, region 0 first (`[RegionIx(0)]` for a single-node plan).
    pub fn regions(&self) -> Vec<RegionIx> {
        let n = self.deployment().map_or(1, |d| d.regions.len().max(1));
        (0..n).map(|i| RegionIx(i as u8)).collect()
    }

    /// The region's name and heartbeat database.
    pub fn region_plan(&self, r: RegionIx) -> RegionPlan {
        self.deployment()
            .and_then(|d| d.regions.get(usize::from(r.0)).cloned())
            .unwrap_or_else(|| RegionPlan {
                name: String::new(),
                heartbeat_db: self.databases.cm_hb.clone(),
            })
    }

    /// Node `n`'s label, region, endpoint and init. Node 0 of a single-node plan: its
    /// container's name, region 0, the local engine, runs init.
    pub fn node_meta(&self, n: NodeIx) -> NodeMeta {
        match (self.deployment(), n) {
            (Some(d), NodeIx(0)) => d.node0.clone(),
            (Some(d), NodeIx(i)) => d
                .nodes
                .get(usize::from(i) - 1)
                .map(|p| p.meta.clone())
                .unwrap_or_else(|| self.node_meta(NodeIx::PRIMARY)),
            (None, _) => NodeMeta {
                label: self.old_container.name.clone(),
                region: RegionIx(0),
                endpoint: "local".into(),
                runs_init: true,
            },
        }
    }

    /// The plan as node `n` sees it: its old container, settings, host IP, health URL and
    /// names in the plan's own fields, its region's heartbeat database, and no
    /// `Deployment`. `steps::build` of a node's step takes this plan. Node 0 (or a node the
    /// plan does not have) gives the plan without its `Deployment`.
    pub fn for_node(&self, n: NodeIx) -> Plan {
        let mut p = self.clone();
        p.ext.retain(|e| !matches!(e, PlanExt::Deployment(_)));
        let node = match (self.deployment(), n.0) {
            (Some(d), i) if i > 0 => d.nodes.get(usize::from(i) - 1),
            _ => None,
        };
        if let Some(node) = node {
            p.old_container = node.old_container.clone();
            p.host_ip = node.host_ip.clone();
            p.health_url = node.health_url.clone();
            p.old_renamed_to = node.old_renamed_to.clone();
            p.new_name = node.new_name.clone();
            p.failed_name = node.failed_name.clone();
            if node.target_image_id.is_some() {
                p.target_image_id = node.target_image_id.clone();
            }
            p.ext.retain(|e| !matches!(e, PlanExt::Container(_)));
            if let Some(s) = &node.settings {
                p.ext.push(PlanExt::Container(s.clone()));
            }
        }
        p.databases.cm_hb = self.region_plan(self.node_meta(n).region).heartbeat_db;
        p
    }

    /// The plan as region `r`'s heartbeat steps see it: `databases.cm_hb` is that region's
    /// heartbeat database, and no `Deployment`.
    pub fn for_region(&self, r: RegionIx) -> Plan {
        let mut p = self.clone();
        p.ext.retain(|e| !matches!(e, PlanExt::Deployment(_)));
        p.databases.cm_hb = self.region_plan(r).heartbeat_db;
        p
    }
}
