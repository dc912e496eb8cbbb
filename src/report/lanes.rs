//! The per-node view of a deployment's report (issue 15): one lane per node with that
//! node's facts, beside the deployment-wide lane (HA, the heartbeat and dumps, check-online,
//! completion), and T1/T3 as the first stop of ANY node.
//!
//! Pure, like the rest of [`super::build`]: everything comes from the replayed state. A plan
//! without a deployment has no lanes, so a single-node report is exactly what it was.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::events::{NodeIx, StepFacts, StepKey};
use crate::replay::{Outcome, State};

/// One node of the deployment as the report shows it: where it is, what ran on it, and
/// how its containers ended up. Its steps are the rows of [`super::Report::steps`] whose
/// [`super::StepRow::node`] is this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeLane {
    /// The node's index (0 is the plan's own node).
    pub node: u8,
    /// The operator's name for the node (from the inventory).
    pub label: String,
    /// Its region's index (0 is node 0's region).
    pub region: u8,
    /// Its region's name.
    pub region_name: String,
    /// `OMS_HOST_IP` of the node.
    pub host_ip: String,
    /// Its Docker engine, as text (no secret).
    pub endpoint: String,
    /// Its OMS health URL.
    pub health_url: String,
    /// The old container as planned: name, id, image.
    pub old_container: LaneContainer,
    /// The name the old container is moved to.
    pub old_renamed_to: String,
    /// The new container as created on this node, once it was.
    pub new_container: Option<LaneContainer>,
    /// When this node's old container's stop was requested (its own share of the downtime).
    pub stopped_at: Option<DateTime<Utc>>,
    /// This node's stop is T1 (the first stop of any node).
    pub first_stopped: bool,
    /// `docker_init.sh` on this node.
    pub init: InitOnNode,
    /// The last health check recorded on this node (upgrade's or rollback's).
    pub health: Option<LaneHealth>,
}

/// A container on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LaneContainer {
    /// Container id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Docker's `State.StartedAt`, when the start recorded it (new container only).
    pub started_at: Option<DateTime<Utc>>,
}

/// A health check of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LaneHealth {
    /// The step that checked it.
    pub step: StepKey,
    /// The URL probed.
    pub url: String,
    /// It answered healthy.
    pub healthy: bool,
    /// Outcome record time.
    pub at: DateTime<Utc>,
}

/// Whether `docker_init.sh` ran on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum InitOnNode {
    /// The plan does not run it on this node (another node of its region does, the
    /// config being shared).
    NotOnThisNode,
    /// Planned here, not run (yet).
    NotRun,
    /// Ran here.
    Ran {
        /// Its exit code.
        exit_code: i64,
        /// The success marker was in its log.
        marker_seen: bool,
        /// Outcome record time.
        at: DateTime<Utc>,
    },
    /// Attempted here and failed, or still in doubt.
    Unfinished {
        /// How the last attempt ended, for people.
        result: String,
    },
}

impl InitOnNode {
    /// Words for people.
    pub fn label(&self) -> String {
        match self {
            InitOnNode::NotOnThisNode => "not on this node (its region's config is shared)".into(),
            InitOnNode::NotRun => "planned, not run".into(),
            InitOnNode::Ran {
                exit_code,
                marker_seen,
                ..
            } => format!(
                "ran (exit code {exit_code}, success marker {})",
                if *marker_seen { "seen" } else { "not seen" }
            ),
            InitOnNode::Unfinished { result } => format!("attempted: {result}"),
        }
    }
}

/// True when the report has lanes: the plan is a deployment of more than one node.
pub fn is_deployment(state: &State) -> bool {
    state.plan().is_some_and(|p| p.deployment().is_some())
}

/// The lane an attempt of `key` goes in: `Some(node)` for a per-node step of a deployment,
/// `None` for a deployment-wide step and for every step of a single-node plan.
pub fn lane_of(state: &State, key: StepKey) -> Option<u8> {
    if !is_deployment(state) {
        return None;
    }
    key.node().map(|n| n.0)
}

/// The earliest done stop among `base.on_node(n)` for every node: T1 for `stop-old`, T3
/// for the rollback's stop of the new containers. With the instant (request, or seen done
/// in earlier builds' ledgers) of the facts that carry it.
pub fn first_stop(state: &State, base: StepKey) -> Option<(StepKey, DateTime<Utc>)> {
    let nodes = state.plan().map(|p| p.nodes()).unwrap_or_default();
    nodes
        .into_iter()
        .map(|n| base.on_node(n))
        .filter_map(|k| match state.facts(k) {
            Some(StepFacts::ContainerStopped(c)) => Some((k, c.t())),
            _ => None,
        })
        // Ties go to the lower node: the order is the plan's.
        .min_by_key(|(_, t)| *t)
}

/// The lanes of every node, in node order; empty for a single-node plan.
pub fn node_lanes(state: &State) -> Vec<NodeLane> {
    let Some(plan) = state.plan() else {
        return vec![];
    };
    let Some(dep) = plan.deployment() else {
        return vec![];
    };
    let t1 = first_stop(state, StepKey::StopOldContainer).map(|(k, _)| k);
    plan.nodes()
        .into_iter()
        .map(|n| {
            let meta = plan.node_meta(n);
            let np = plan.for_node(n);
            let stop = StepKey::StopOldContainer.on_node(n);
            let stopped_at = match state.facts(stop) {
                Some(StepFacts::ContainerStopped(c)) => Some(c.t()),
                _ => None,
            };
            NodeLane {
                node: n.0,
                label: meta.label.clone(),
                region: meta.region.0,
                region_name: dep
                    .regions
                    .get(usize::from(meta.region.0))
                    .map(|r| r.name.clone())
                    .unwrap_or_default(),
                host_ip: np.host_ip.clone(),
                endpoint: meta.endpoint.clone(),
                health_url: np.health_url.clone(),
                old_container: LaneContainer {
                    id: np.old_container.id.clone(),
                    name: np.old_container.name.clone(),
                    image: np.old_container.image.clone(),
                    started_at: None,
                },
                old_renamed_to: np.old_renamed_to.clone(),
                new_container: new_container(state, n),
                stopped_at,
                first_stopped: t1 == Some(stop),
                init: init_on(state, n, meta.runs_init),
                health: health(state, n),
            }
        })
        .collect()
}

fn new_container(state: &State, n: NodeIx) -> Option<LaneContainer> {
    let created = match state.facts(StepKey::CreateNewContainer.on_node(n)) {
        Some(StepFacts::NewContainerCreated(c)) => c,
        _ => return None,
    };
    let started_at = match state.facts(StepKey::StartNewContainer.on_node(n)) {
        Some(StepFacts::NewContainerStarted { started_at, .. }) => *started_at,
        _ => None,
    };
    Some(LaneContainer {
        id: created.id.clone(),
        name: created.name.clone(),
        image: created.image.clone(),
        started_at,
    })
}

fn init_on(state: &State, n: NodeIx, runs_init: bool) -> InitOnNode {
    let key = StepKey::RunDockerInit.on_node(n);
    if let Some(StepFacts::DockerInit(d)) = state.facts(key) {
        let at = done_at(state, key).unwrap_or_default();
        return InitOnNode::Ran {
            exit_code: d.exit_code,
            marker_seen: d.marker_seen,
            at,
        };
    }
    match state.attempts().iter().rev().find(|a| a.key == key) {
        Some(a) => InitOnNode::Unfinished {
            result: super::StepResult::of(a.outcome.as_ref())
                .label()
                .to_string(),
        },
        None if runs_init => InitOnNode::NotRun,
        None => InitOnNode::NotOnThisNode,
    }
}

fn health(state: &State, n: NodeIx) -> Option<LaneHealth> {
    let keys = [
        StepKey::ConfirmHealth.on_node(n),
        StepKey::ConfirmOldHealth.on_node(n),
    ];
    state
        .attempts()
        .iter()
        .rev()
        .filter(|a| keys.contains(&a.key))
        .find_map(|a| {
            let o = a.outcome.as_ref()?;
            let facts = match o {
                Outcome::Failed { facts, .. } => facts.as_ref(),
                other => other.done_facts(),
            };
            match facts {
                Some(StepFacts::Health(h)) => Some(LaneHealth {
                    step: a.key,
                    url: h.url.clone(),
                    healthy: h.healthy,
                    at: o.at(),
                }),
                _ => None,
            }
        })
}

/// Outcome time of the attempt of `key` whose done facts the state holds.
fn done_at(state: &State, key: StepKey) -> Option<DateTime<Utc>> {
    state
        .attempts()
        .iter()
        .rev()
        .filter(|a| a.key == key)
        .find_map(|a| a.outcome.as_ref().filter(|o| o.done_facts().is_some()))
        .map(Outcome::at)
}

/// How a renderer marks up the cells of the Nodes table: `code` a literal (name, id, URL,
/// endpoint), `plain` escapes text, `health` words a health answer, `t1` follows the stop
/// time of the node whose stop is T1.
pub(crate) struct Markup<'a> {
    /// A literal.
    pub code: &'a dyn Fn(&str) -> String,
    /// Text.
    pub plain: &'a dyn Fn(&str) -> String,
    /// `healthy` or not.
    pub health: &'a dyn Fn(bool) -> String,
    /// The T1 marker.
    pub t1: &'a str,
}

impl NodeLane {
    /// The node's row of the Nodes table, one string per column (Node, Region, Host IP,
    /// Endpoint, Old container, New container, Stopped, Health, docker_init.sh), shared by
    /// the Markdown and HTML renderers.
    pub(crate) fn cells(&self, m: &Markup) -> [String; 9] {
        use super::text::{short, time};
        let (code, plain) = (m.code, m.plain);
        let new = self.new_container.as_ref().map_or_else(
            || "-".to_string(),
            |c| {
                format!(
                    "{} ({}) from {}{}",
                    code(&c.name),
                    code(short(&c.id)),
                    code(&c.image),
                    c.started_at
                        .map(|t| plain(&format!(", started {}", time(t))))
                        .unwrap_or_default()
                )
            },
        );
        let stopped = match self.stopped_at {
            Some(t) if self.first_stopped => format!("{} {}", plain(&time(t)), m.t1),
            Some(t) => plain(&time(t)),
            None => "-".into(),
        };
        let health = self.health.as_ref().map_or_else(
            || "-".to_string(),
            |h| {
                format!(
                    "{} {} at {} ({})",
                    code(&h.url),
                    (m.health)(h.healthy),
                    plain(&time(h.at)),
                    code(&h.step.to_string())
                )
            },
        );
        [
            format!("{} {}", self.node, plain(&self.label)),
            plain(&self.region_name),
            code(&self.host_ip),
            code(&self.endpoint),
            format!(
                "{} ({}) from {}, renamed {}",
                code(&self.old_container.name),
                code(short(&self.old_container.id)),
                code(&self.old_container.image),
                code(&self.old_renamed_to)
            ),
            new,
            stopped,
            health,
            plain(&self.init.label()),
        ]
    }
}
