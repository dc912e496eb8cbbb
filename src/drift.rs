//! Drift: how the world differs from the end state the ledger recorded.
//!
//! The chain proves the record was not changed; it says nothing about whether the node
//! still looks the way the record says it was left. `ledger verify --live` answers that:
//! after a completed upgrade the new container runs under the plan's name with the
//! recorded id, image, binds and env (`IS_UPGRADE=true` included), `ha.config` holds what
//! the run last wrote, the metadata schema is at the target version and the dumps are
//! intact; after a rollback, the same for the old container and the source version.
//!
//! This module is pure: [`expectations`] reads the replayed [`State`], [`compare`] takes
//! what the caller observed (through the adapters) as values and returns every difference,
//! field by field. Nothing here talks to Docker or the database.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::adapters::ContainerInfo;
use crate::adapters::docker::{Bind, ContainerStatus, binds_diff};
use crate::events::{
    ContainerSettings, DumpArtifact, EnvVar, MetaDb, NodeIx, Plan, RestartPolicy, StepFacts,
    StepKey,
};
use crate::inherit;
use crate::replay::{Phase, State};
use crate::report::DumpFileCheck;

/// `ha.config` fields named first, in this order, because the runbook changes them.
pub const HA_KEY_FIELDS: [&str; 3] = [
    "enable",
    "refetchStoreIntervalMin",
    "perceiveStoreClientCheckpoint",
];

/// Which container the end state is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerRole {
    /// The container the upgrade created (after a completed upgrade).
    New,
    /// The node's original container (after a completed rollback).
    Old,
}

/// The container the ledger says should be running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpectedContainer {
    /// New or old.
    pub role: ContainerRole,
    /// Name it runs under (the plan's container name).
    pub name: String,
    /// Container id.
    pub id: String,
    /// Image reference.
    pub image: String,
    /// Image id, when recorded.
    pub image_id: Option<String>,
    /// `HostConfig.Binds`.
    pub binds: Vec<String>,
    /// `Config.Env` as recorded (secret values withheld).
    pub env: Vec<EnvVar>,
    /// The settings it should show (restart policy, inherited env, ulimits, logging, ...),
    /// when the plan recorded the old container's (issue 12.4).
    pub settings: Option<ContainerSettings>,
}

/// The restart policy a container other than the running one should have: after a
/// completed upgrade, the renamed old container's is `no` (issue 12.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpectedPolicy {
    /// The container's id.
    pub id: String,
    /// Its name (for messages).
    pub name: String,
    /// The policy.
    pub policy: RestartPolicy,
}

/// One node's part of the end state: its containers (issue 15: every node of a
/// deployment is compared on its own engine).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeExpectations {
    /// The node's index (0: the plan's own node).
    pub node: u8,
    /// How findings name the node: `None` for a single-node plan (its subjects read as
    /// they always did), `node1 (oms-b)` in a deployment.
    pub name: Option<String>,
    /// The node's Docker engine as the plan records it (`local`, `unix://`, `ssh://`,
    /// `tcp://`; no secret).
    pub endpoint: String,
    /// The container that should be running on it.
    pub container: ExpectedContainer,
    /// The old container's restart policy after a completed upgrade that turned it off.
    pub old_restart: Option<ExpectedPolicy>,
}

impl NodeExpectations {
    /// A subject on this node: `container oms`, or `node1 (oms-b): container oms`.
    fn subject(&self, what: &str) -> String {
        match &self.name {
            Some(n) => format!("{n}: {what}"),
            None => what.to_string(),
        }
    }
}

/// The end state a finished run recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expectations {
    /// Completed or rolled back.
    pub phase: Phase,
    /// Every node's containers, node 0 first (one entry for a single-node plan).
    pub nodes: Vec<NodeExpectations>,
    /// The rm database (holds `ha.config` and the schema version).
    pub rm_db: String,
    /// `ha.config` as last written by the run; `None` when the run never wrote it (a
    /// procedure without HA steps).
    pub ha_json: Option<String>,
    /// Version the metadata schema should be at.
    pub schema_version: String,
    /// The recorded dumps.
    pub dumps: Vec<DumpArtifact>,
}

/// Why there is no end state to compare with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpectError {
    /// The run has not finished (or failed on the way): reality is legitimately between
    /// two states.
    #[error(
        "the run is {0}: only a completed upgrade or a completed rollback has an end state to \
         compare with"
    )]
    NotFinished(Phase),
    /// A completed upgrade without the new container's facts (cannot happen with a ledger
    /// written by this tool).
    #[error("the ledger records a completed upgrade but not the new container's facts")]
    NoNewContainer,
    /// The same for one node of a deployment.
    #[error("the ledger records a completed upgrade but not the facts of the new container on {0}")]
    NoNewContainerOn(String),
}

/// The end state recorded in `state`, for a completed upgrade or a completed rollback:
/// every node's containers, and the deployment-wide `ha.config`, schema and dumps.
pub fn expectations(state: &State) -> Result<Expectations, ExpectError> {
    let phase = state.phase();
    let plan = match (phase, state.plan()) {
        (Phase::Completed | Phase::RolledBack, Some(plan)) => plan,
        _ => return Err(ExpectError::NotFinished(phase)),
    };
    let schema_version = if phase == Phase::Completed {
        plan.target_version.to_string()
    } else {
        plan.source_version.to_string()
    };
    let nodes = plan
        .nodes()
        .into_iter()
        .map(|n| node_expectations(state, plan, n))
        .collect::<Result<_, _>>()?;
    Ok(Expectations {
        phase,
        nodes,
        rm_db: plan.databases.rm.clone(),
        ha_json: state.ha_after().map(str::to_string),
        schema_version,
        dumps: state.artifacts().into_iter().cloned().collect(),
    })
}

/// Node `n`'s containers: its steps are `key.on_node(n)` (node 0's the plain keys) and
/// its names and old container come from `plan.for_node(n)`.
fn node_expectations(
    state: &State,
    plan: &Plan,
    n: NodeIx,
) -> Result<NodeExpectations, ExpectError> {
    let meta = plan.node_meta(n);
    let deployment = plan.deployment().is_some();
    let name = deployment.then(|| format!("{n} ({})", meta.label));
    // A single-node plan is its own node 0, exactly as recorded.
    let np = if deployment {
        plan.for_node(n)
    } else {
        plan.clone()
    };
    let container = if state.phase() == Phase::Completed {
        let created = match state.facts(StepKey::CreateNewContainer.on_node(n)) {
            Some(StepFacts::NewContainerCreated(c)) => c,
            _ => {
                return Err(match &name {
                    Some(name) => ExpectError::NoNewContainerOn(name.clone()),
                    None => ExpectError::NoNewContainer,
                });
            }
        };
        ExpectedContainer {
            role: ContainerRole::New,
            name: np.new_name.clone(),
            id: created.id.clone(),
            image: created.image.clone(),
            image_id: created.image_id.clone(),
            binds: created.binds.clone(),
            env: created.env.clone(),
            settings: match state.step(StepKey::CreateNewContainer.on_node(n)) {
                Ok(crate::steps::Step::CreateNewContainer(spec)) => {
                    spec.inherited.as_ref().map(|inherited| {
                        inherit::intended(
                            inherited,
                            &spec.env,
                            &spec.restart,
                            &spec.network_mode,
                            &spec.ulimits,
                        )
                    })
                }
                _ => None,
            },
        }
    } else {
        let o = &np.old_container;
        ExpectedContainer {
            role: ContainerRole::Old,
            name: o.name.clone(),
            id: o.id.clone(),
            image: o.image.clone(),
            image_id: Some(o.image_id.clone()),
            binds: o.binds.clone(),
            env: o.env.clone(),
            // A rollback gives the old container its policy back.
            settings: np.container_settings().cloned(),
        }
    };
    let old_restart = match (
        state.phase(),
        state.facts(StepKey::OldRestartOff.on_node(n)),
    ) {
        (Phase::Completed, Some(_)) => Some(ExpectedPolicy {
            id: np.old_container.id.clone(),
            name: np.old_renamed_to.clone(),
            policy: RestartPolicy::no(),
        }),
        _ => None,
    };
    Ok(NodeExpectations {
        node: n.0,
        name,
        endpoint: meta.endpoint.clone(),
        container,
        old_restart,
    })
}

/// What the schema-version query found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "found", content = "version", rename_all = "snake_case")]
pub enum SchemaObservation {
    /// `oms_schema_version.version` of the row with `id = 1`.
    Version(String),
    /// The table exists but has no such row.
    NoRow,
    /// rm has no `oms_schema_version` table: real OMS does not document where it keeps its
    /// schema version, so there is nothing to compare.
    NoTable,
}

/// What the caller observed on one node's engine.
#[derive(Debug, Clone)]
pub enum NodeObserved {
    /// The engine answered.
    Reached {
        /// The container under the expected name; `None` when there is none.
        container: Option<Box<ContainerInfo>>,
        /// The container of [`NodeExpectations::old_restart`] (by id), when there is one.
        old_container: Option<Box<ContainerInfo>>,
    },
    /// The engine could not be reached: nothing on the node was compared.
    Unreachable {
        /// Why, as the transport said (no secret).
        error: String,
    },
}

/// What the caller observed, through the adapters.
#[derive(Debug, Clone)]
pub struct Observed {
    /// Each node of [`Expectations::nodes`], in the same order.
    pub nodes: Vec<NodeObserved>,
    /// `ha.config` as stored; `None` when the row is missing.
    pub ha_json: Option<String>,
    /// The schema version.
    pub schema: SchemaObservation,
    /// Each recorded dump re-hashed (`report::check_dump_file`).
    pub dumps: Vec<DumpFileCheck>,
}

/// One difference between the record and reality.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// What it is about: `container <name>`, `ha.config`, `schema`, `dump <db>`; in a
    /// deployment a node's subjects start with the node (`node1 (oms-b): container oms`).
    pub subject: String,
    /// In a deployment, the node the finding is on; absent for deployment-wide subjects and
    /// for a single-node plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<u8>,
    /// The field: `id`, `image`, `bind <container path>`, `env <NAME>`, an `ha.config`
    /// key, `version`, `file`, ...
    pub field: String,
    /// What the ledger recorded.
    pub recorded: String,
    /// What was found.
    pub found: String,
}

/// How one subject fared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubjectResult {
    /// The subject (as in [`Drift::subject`]).
    pub subject: String,
    /// As in [`Drift::node`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<u8>,
    /// `ok`, `drift`, `not_checked`, or `unreachable` (a node's engine did not answer:
    /// nothing on it was compared, which is never "no drift").
    pub status: &'static str,
    /// Why it was not checked, or how many fields drifted.
    pub detail: Option<String>,
}

/// The outcome of a live comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveReport {
    /// The phase the record ends in.
    pub phase: Phase,
    /// Every subject, in the order checked.
    pub subjects: Vec<SubjectResult>,
    /// Every difference, field by field.
    pub drifts: Vec<Drift>,
}

impl LiveReport {
    /// True when nothing drifted and every node was reached.
    pub fn is_ok(&self) -> bool {
        self.drifts.is_empty() && self.unreachable().is_empty()
    }

    /// The subjects of the nodes that could not be reached.
    pub fn unreachable(&self) -> Vec<&SubjectResult> {
        self.subjects
            .iter()
            .filter(|s| s.status == UNREACHABLE)
            .collect()
    }
}

/// [`SubjectResult::status`] of a node whose engine did not answer.
pub const UNREACHABLE: &str = "unreachable";

const ABSENT: &str = "(absent)";

/// Compares the recorded end state with what was observed.
pub fn compare(exp: &Expectations, obs: &Observed) -> LiveReport {
    let mut report = LiveReport {
        phase: exp.phase,
        subjects: Vec::new(),
        drifts: Vec::new(),
    };
    let unreached = || NodeObserved::Unreachable {
        error: "not observed".into(),
    };
    let seen: Vec<(&NodeExpectations, NodeObserved)> = exp
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n, obs.nodes.get(i).cloned().unwrap_or_else(unreached)))
        .collect();
    for (node, found) in &seen {
        match found {
            NodeObserved::Reached { container, .. } => {
                let subject = node.subject(&format!("container {}", node.container.name));
                let drifts = container_drifts(
                    &node.container,
                    container.as_deref(),
                    &subject,
                    node_of(node),
                );
                report.push_on(node_of(node), subject, drifts);
            }
            NodeObserved::Unreachable { error } => report.subjects.push(SubjectResult {
                subject: node.subject("Docker engine"),
                node: node_of(node),
                status: UNREACHABLE,
                detail: Some(format!(
                    "{} at {} could not be reached, nothing on it was compared: {error}",
                    node.name.as_deref().unwrap_or("the node"),
                    node.endpoint
                )),
            }),
        }
    }

    match &exp.ha_json {
        None => report.not_checked(
            "ha.config",
            "the run did not write ha.config (its procedure has no HA steps)",
        ),
        Some(recorded) => report.push(
            "ha.config".into(),
            ha_drifts(recorded, obs.ha_json.as_deref()),
        ),
    }

    let subject = "schema".to_string();
    match &obs.schema {
        SchemaObservation::NoTable => report.not_checked(
            &subject,
            &format!(
                "{} has no oms_schema_version table (OMS does not document its schema-version \
                 table; only the emulator's is known)",
                exp.rm_db
            ),
        ),
        SchemaObservation::NoRow => report.push(
            subject.clone(),
            vec![drift(
                &subject,
                "version",
                &exp.schema_version,
                "(no row with id = 1 in oms_schema_version)",
            )],
        ),
        SchemaObservation::Version(v) => {
            let d = (v != &exp.schema_version)
                .then(|| drift(&subject, "version", &exp.schema_version, v))
                .into_iter()
                .collect();
            report.push(subject, d);
        }
    }

    for (db, drifts) in dump_drifts(&exp.dumps, &obs.dumps) {
        report.push(format!("dump {db}"), drifts);
    }
    for (node, found) in &seen {
        let (Some(want), NodeObserved::Reached { old_container, .. }) = (&node.old_restart, found)
        else {
            continue;
        };
        let subject = node.subject(&format!("container {} (old)", want.name));
        let found = match old_container {
            None => "no such container".to_string(),
            Some(c) => inherit::restart_of(&c.host.restart).to_string(),
        };
        let d = (found != want.policy.to_string())
            .then(|| Drift {
                node: node_of(node),
                ..drift(&subject, "restart policy", &want.policy.to_string(), &found)
            })
            .into_iter()
            .collect();
        report.push_on(node_of(node), subject, d);
    }
    report
}

/// The node a finding names, in a deployment only.
fn node_of(n: &NodeExpectations) -> Option<u8> {
    n.name.as_ref().map(|_| n.node)
}

impl LiveReport {
    fn push(&mut self, subject: String, drifts: Vec<Drift>) {
        self.push_on(None, subject, drifts);
    }

    fn push_on(&mut self, node: Option<u8>, subject: String, drifts: Vec<Drift>) {
        let (status, detail) = if drifts.is_empty() {
            ("ok", None)
        } else {
            ("drift", Some(format!("{} field(s) differ", drifts.len())))
        };
        self.subjects.push(SubjectResult {
            subject,
            node,
            status,
            detail,
        });
        self.drifts.extend(drifts);
    }

    fn not_checked(&mut self, subject: &str, why: &str) {
        self.subjects.push(SubjectResult {
            subject: subject.to_string(),
            node: None,
            status: "not_checked",
            detail: Some(why.to_string()),
        });
    }
}

fn drift(subject: &str, field: &str, recorded: &str, found: &str) -> Drift {
    Drift {
        subject: subject.to_string(),
        node: None,
        field: field.to_string(),
        recorded: recorded.to_string(),
        found: found.to_string(),
    }
}

fn container_drifts(
    exp: &ExpectedContainer,
    found: Option<&ContainerInfo>,
    subject: &str,
    node: Option<u8>,
) -> Vec<Drift> {
    container_fields(exp, found, subject)
        .into_iter()
        .map(|d| Drift { node, ..d })
        .collect()
}

fn container_fields(
    exp: &ExpectedContainer,
    found: Option<&ContainerInfo>,
    subject: &str,
) -> Vec<Drift> {
    let Some(c) = found else {
        return vec![drift(
            subject,
            "(container)",
            &format!("running, id {}", exp.id),
            "no container with this name",
        )];
    };
    let mut out = Vec::new();
    let mut field = |name: &str, recorded: &str, found: &str| {
        if recorded != found {
            out.push(drift(subject, name, recorded, found));
        }
    };
    field("id", &exp.id, &c.id);
    field("name", &exp.name, &c.name);
    field("image", &exp.image, &c.image);
    if let Some(image_id) = &exp.image_id {
        field("image_id", image_id, &c.image_id);
    }
    let state = match &c.status {
        s if s.is_running() => "running".to_string(),
        ContainerStatus::Exited { code } => format!("exited (code {code})"),
        ContainerStatus::Other(s) => s.clone(),
        s => format!("{s:?}").to_lowercase(),
    };
    field("state", "running", &state);
    out.extend(bind_drifts(&exp.binds, &c.binds, subject));
    out.extend(env_drifts(&exp.env, &c.env, subject));
    if let Some(want) = &exp.settings {
        for d in inherit::differences(want, &inherit::observed(want, c)) {
            out.push(drift(
                subject,
                &format!("setting {}", d.field),
                &d.left,
                &d.right,
            ));
        }
    }
    out
}

/// Binds that differ, paired by the path inside the container, so a bind whose host path
/// changed shows as one field with both values.
fn bind_drifts(recorded: &[String], found: &[String], subject: &str) -> Vec<Drift> {
    let diff = binds_diff(recorded, found);
    let by_target = |list: &[String]| -> BTreeMap<String, Vec<String>> {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for b in list {
            m.entry(Bind::parse(b).container)
                .or_default()
                .push(b.clone());
        }
        m
    };
    let (missing, extra) = (by_target(&diff.missing), by_target(&diff.extra));
    let targets: BTreeSet<&String> = missing.keys().chain(extra.keys()).collect();
    targets
        .into_iter()
        .map(|t| {
            let show = |m: &BTreeMap<String, Vec<String>>| {
                m.get(t)
                    .map_or_else(|| ABSENT.to_string(), |v| v.join(", "))
            };
            drift(
                subject,
                &format!("bind {t}"),
                &show(&missing),
                &show(&extra),
            )
        })
        .collect()
}

/// Environment variables that differ. A withheld (secret) value is compared only for
/// presence, other values as recorded (secrets inside them masked), and a found value is
/// shown as it would be recorded.
fn env_drifts(recorded: &[EnvVar], found: &[String], subject: &str) -> Vec<Drift> {
    let found: BTreeMap<&str, &str> = found
        .iter()
        .map(|kv| kv.split_once('=').unwrap_or((kv.as_str(), "")))
        .collect();
    let shown = |name: &str, value: &str| EnvVar::recorded(name, value).to_string();
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for var in recorded {
        seen.insert(var.name.as_str());
        let field = format!("env {}", var.name);
        match (found.get(var.name.as_str()), &var.value) {
            (None, _) => out.push(drift(subject, &field, &var.to_string(), ABSENT)),
            // Compared as recorded: a masked secret inside a value counts as equal.
            (Some(v), Some(want))
                if EnvVar::recorded(&var.name, v).value.as_ref() != Some(want) =>
            {
                out.push(drift(
                    subject,
                    &field,
                    &var.to_string(),
                    &shown(&var.name, v),
                ))
            }
            _ => {}
        }
    }
    for (name, value) in &found {
        if !seen.contains(name) {
            out.push(drift(
                subject,
                &format!("env {name}"),
                ABSENT,
                &shown(name, value),
            ));
        }
    }
    out
}

fn json_text(v: Option<&serde_json::Value>) -> String {
    v.map_or_else(|| ABSENT.to_string(), |v| v.to_string())
}

/// `ha.config` key by key: the runbook's keys first, then any other key that differs.
fn ha_drifts(recorded: &str, found: Option<&str>) -> Vec<Drift> {
    let subject = "ha.config";
    let Some(found) = found else {
        return vec![drift(subject, "(row)", "present", "no ha.config row")];
    };
    let parse = |s: &str| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(s);
    let (rec, cur) = match (parse(recorded), parse(found)) {
        (Ok(r), Ok(c)) => (r, c),
        (Err(_), _) => return vec![drift(subject, "(value)", recorded, found)],
        (_, Err(_)) => return vec![drift(subject, "(value)", recorded, found)],
    };
    let others: BTreeSet<&String> = rec
        .keys()
        .chain(cur.keys())
        .filter(|k| !HA_KEY_FIELDS.contains(&k.as_str()))
        .collect();
    HA_KEY_FIELDS
        .iter()
        .copied()
        .chain(others.into_iter().map(String::as_str))
        .filter(|k| rec.get(*k) != cur.get(*k))
        .map(|k| drift(subject, k, &json_text(rec.get(k)), &json_text(cur.get(k))))
        .collect()
}

/// Each recorded dump with its re-hash: a missing or altered file is a `file` drift.
/// Dumps are matched to checks by file name, so a check list in another order still pairs.
pub fn dump_drifts(
    recorded: &[DumpArtifact],
    checks: &[DumpFileCheck],
) -> Vec<(MetaDb, Vec<Drift>)> {
    recorded
        .iter()
        .map(|a| {
            let subject = format!("dump {}", a.db);
            let want = format!("{} bytes, blake3 {}", a.size, a.blake3_hex);
            let check = checks.iter().find(|c| c.file == a.file);
            let found = match check {
                None => Some("not checked".to_string()),
                Some(c) if c.present && c.matches => None,
                Some(c) if !c.present => Some(format!(
                    "missing: {} ({})",
                    a.file,
                    c.error.as_deref().unwrap_or("cannot be read")
                )),
                Some(c) => Some(format!(
                    "{} bytes, blake3 {}",
                    c.found_size.unwrap_or(0),
                    c.found_blake3.as_deref().unwrap_or("?")
                )),
            };
            let drifts = found
                .map(|f| vec![drift(&subject, "file", &want, &f)])
                .unwrap_or_default();
            (a.db, drifts)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::record_env;

    const HA: &str = r#"{"enable":true,"refetchStoreIntervalMin":45,"perceiveStoreClientCheckpoint":true,"enableHost":false}"#;

    fn expected() -> Expectations {
        Expectations {
            phase: Phase::Completed,
            nodes: vec![NodeExpectations {
                node: 0,
                name: None,
                endpoint: "local".into(),
                container: ExpectedContainer {
                    role: ContainerRole::New,
                    name: "oms".into(),
                    id: "c0ffee".into(),
                    image: "oms:3.3.1".into(),
                    image_id: Some("sha256:new".into()),
                    binds: vec![
                        "/data/oms/config.yaml:/home/admin/conf/config.yaml".into(),
                        "/data/oms/logs:/home/admin/logs".into(),
                    ],
                    env: record_env(&["OMS_HOST_IP=10.0.0.1", "IS_UPGRADE=true", "DB_PASSWORD=x"]),
                    settings: None,
                },
                old_restart: None,
            }],
            rm_db: "rm".into(),
            ha_json: Some(HA.into()),
            schema_version: "3.3.1".into(),
            dumps: vec![
                artifact(MetaDb::Rm, "/b/rm.sql"),
                artifact(MetaDb::Cm, "/b/cm.sql"),
            ],
        }
    }

    fn artifact(db: MetaDb, file: &str) -> DumpArtifact {
        DumpArtifact {
            db,
            database: db.label().into(),
            file: file.into(),
            size: 10,
            blake3_hex: "aa".repeat(32),
            format: crate::events::FileFormat::Sql,
            compression: crate::events::Compression::None,
            dumper: crate::events::Dumper::Native,
            charset: "utf8mb4".into(),
            collation: "utf8mb4_general_ci".into(),
            tables: vec![],
            views: vec![],
        }
    }

    fn check_ok(a: &DumpArtifact) -> DumpFileCheck {
        DumpFileCheck {
            db: a.db,
            file: a.file.clone(),
            present: true,
            matches: true,
            found_size: Some(a.size),
            found_blake3: Some(a.blake3_hex.clone()),
            error: None,
        }
    }

    fn container() -> ContainerInfo {
        ContainerInfo {
            id: "c0ffee".into(),
            name: "oms".into(),
            image: "oms:3.3.1".into(),
            image_id: "sha256:new".into(),
            status: ContainerStatus::Running,
            created: None,
            started_at: None,
            finished_at: None,
            // Same binds, other spelling and order: not a drift.
            binds: vec![
                "/data/oms/logs/:/home/admin/logs:rw".into(),
                "/data/oms/config.yaml:/home/admin/conf/config.yaml".into(),
            ],
            env: vec![
                "IS_UPGRADE=true".into(),
                "DB_PASSWORD=changed-but-secret".into(),
                "OMS_HOST_IP=10.0.0.1".into(),
            ],
            labels: Default::default(),
            network_mode: "host".into(),
            privileged: false,
            pids_limit: None,
            ulimits: vec![],
            cmd: None,
            tty: true,
            open_stdin: true,
            host: Default::default(),
        }
    }

    fn observed() -> Observed {
        let e = expected();
        Observed {
            nodes: vec![NodeObserved::Reached {
                container: Some(Box::new(container())),
                old_container: None,
            }],
            ha_json: Some(
                // Same object, other key order and spacing.
                r#"{"enableHost":false, "perceiveStoreClientCheckpoint":true,"refetchStoreIntervalMin":45,"enable":true}"#
                    .into(),
            ),
            schema: SchemaObservation::Version("3.3.1".into()),
            dumps: e.dumps.iter().map(check_ok).collect(),
        }
    }

    /// Node 0's containers as observed.
    #[allow(clippy::type_complexity)]
    fn seen(
        o: &mut Observed,
    ) -> (
        &mut Option<Box<ContainerInfo>>,
        &mut Option<Box<ContainerInfo>>,
    ) {
        match &mut o.nodes[0] {
            NodeObserved::Reached {
                container,
                old_container,
            } => (container, old_container),
            NodeObserved::Unreachable { .. } => unreachable!("the fixture reaches node 0"),
        }
    }

    fn fields(r: &LiveReport) -> Vec<(String, String)> {
        r.drifts
            .iter()
            .map(|d| (d.subject.clone(), d.field.clone()))
            .collect()
    }

    /// Issue 12.3/12.4: the new container's inherited settings and the renamed old
    /// container's restart policy are compared too.
    #[test]
    fn inherited_settings_and_the_old_policy_drift_field_by_field() {
        let mut e = expected();
        let mut o = observed();
        let mut want = crate::inherit::observed(
            &crate::events::ContainerSettings {
                env: vec![],
                ..crate::events::samples::container_settings()
            },
            seen(&mut o).0.as_ref().unwrap(),
        );
        want.extra_hosts = vec!["meta.local:10.0.0.9".into()];
        e.nodes[0].container.settings = Some(want);
        e.nodes[0].old_restart = Some(ExpectedPolicy {
            id: "old".into(),
            name: "oms-pre-3.3.1".into(),
            policy: RestartPolicy::no(),
        });
        let mut old = container();
        old.host.restart = crate::adapters::docker::RestartPolicySetting {
            name: "always".into(),
            max_retries: 0,
        };
        *seen(&mut o).1 = Some(Box::new(old));
        let r = compare(&e, &o);
        let fields: Vec<(&str, &str, &str)> = r
            .drifts
            .iter()
            .map(|d| (d.field.as_str(), d.recorded.as_str(), d.found.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                ("setting extra-hosts", "meta.local:10.0.0.9", ""),
                ("restart policy", "no", "always"),
            ]
        );
    }

    #[test]
    fn no_drift_when_reality_matches() {
        let r = compare(&expected(), &observed());
        assert!(r.is_ok(), "{:#?}", r.drifts);
        let statuses: Vec<_> = r.subjects.iter().map(|s| s.status).collect();
        assert_eq!(statuses, ["ok", "ok", "ok", "ok", "ok"]);
    }

    #[test]
    fn changed_bind_is_one_field_with_both_values() {
        let mut o = observed();
        let c = seen(&mut o).0.as_mut().unwrap();
        c.binds[0] = "/elsewhere/logs:/home/admin/logs".into();
        c.id = "d00d".into();
        let r = compare(&expected(), &o);
        assert_eq!(
            fields(&r),
            [
                ("container oms".into(), "id".into()),
                ("container oms".into(), "bind /home/admin/logs".into())
            ]
        );
        let d = &r.drifts[1];
        assert_eq!(d.recorded, "/data/oms/logs:/home/admin/logs");
        assert_eq!(d.found, "/elsewhere/logs:/home/admin/logs");
    }

    #[test]
    fn container_fields_env_and_absence() {
        let mut o = observed();
        let c = seen(&mut o).0.as_mut().unwrap();
        c.image = "oms:3.3.0".into();
        c.status = ContainerStatus::Exited { code: 137 };
        c.env = vec![
            "IS_UPGRADE=false".into(),
            "EXTRA_TOKEN=hunter2".into(),
            "DB_PASSWORD=y".into(),
        ];
        c.binds.push("/x:/y".into());
        let r = compare(&expected(), &o);
        let got = fields(&r);
        for f in [
            "image",
            "state",
            "bind /y",
            "env IS_UPGRADE",
            "env OMS_HOST_IP",
            "env EXTRA_TOKEN",
        ] {
            assert!(got.iter().any(|(_, g)| g == f), "{f} missing from {got:?}");
        }
        let text = format!("{:?}", r.drifts);
        assert!(
            !text.contains("hunter2") && !text.contains("=y\""),
            "secret shown: {text}"
        );
        assert!(
            !got.iter().any(|(_, g)| g == "env DB_PASSWORD"),
            "withheld value compared"
        );

        let mut o = observed();
        *seen(&mut o).0 = None;
        let r = compare(&expected(), &o);
        assert_eq!(fields(&r), [("container oms".into(), "(container)".into())]);
    }

    #[test]
    fn ha_config_field_by_field() {
        let mut o = observed();
        o.ha_json = Some(
            HA.replace(r#""enable":true"#, r#""enable":false"#)
                .replace(r#","enableHost":false"#, ""),
        );
        let r = compare(&expected(), &o);
        assert_eq!(
            fields(&r),
            [
                ("ha.config".into(), "enable".into()),
                ("ha.config".into(), "enableHost".into())
            ]
        );
        assert_eq!(
            (r.drifts[0].recorded.as_str(), r.drifts[0].found.as_str()),
            ("true", "false")
        );
        assert_eq!(r.drifts[1].found, ABSENT);

        o.ha_json = None;
        assert_eq!(
            fields(&compare(&expected(), &o)),
            [("ha.config".into(), "(row)".into())]
        );
        o.ha_json = Some("not json".into());
        assert_eq!(
            fields(&compare(&expected(), &o)),
            [("ha.config".into(), "(value)".into())]
        );

        let mut e = expected();
        e.ha_json = None;
        let r = compare(&e, &observed());
        assert!(r.is_ok());
        assert_eq!(r.subjects[1].status, "not_checked");
    }

    #[test]
    fn schema_version_and_dumps() {
        let mut o = observed();
        o.schema = SchemaObservation::Version("3.3.0".into());
        o.dumps[0].present = false;
        o.dumps[0].matches = false;
        o.dumps[0].error = Some("No such file or directory".into());
        o.dumps[1].matches = false;
        o.dumps[1].found_blake3 = Some("bb".repeat(32));
        let r = compare(&expected(), &o);
        assert_eq!(
            fields(&r),
            [
                ("schema".into(), "version".into()),
                ("dump rm".into(), "file".into()),
                ("dump cm".into(), "file".into())
            ]
        );
        assert!(
            r.drifts[1].found.starts_with("missing: /b/rm.sql"),
            "{:?}",
            r.drifts[1]
        );
        assert!(r.drifts[2].found.contains(&"bb".repeat(32)));

        let mut o = observed();
        o.schema = SchemaObservation::NoTable;
        let r = compare(&expected(), &o);
        assert!(r.is_ok());
        assert_eq!(r.subjects[2].status, "not_checked");
        o.schema = SchemaObservation::NoRow;
        assert_eq!(
            fields(&compare(&expected(), &o)),
            [("schema".into(), "version".into())]
        );
    }

    #[test]
    fn unfinished_runs_have_no_end_state() {
        let err = expectations(&State::new()).unwrap_err();
        assert_eq!(err, ExpectError::NotFinished(Phase::NotPlanned));
    }

    /// A 3-node deployment over 2 regions recorded to its end (upgrade, or a rollback
    /// after the dumps).
    fn deployment(rollback: bool) -> State {
        let plan = crate::replay::build::Records::deployment_plan(3, 2);
        let mut r = crate::replay::build::Records::planned(plan);
        if rollback {
            r.done_until(StepKey::RenameOldContainer);
            r.rollback().unwrap();
        }
        r.finish();
        r.state
    }

    /// Node `n`'s container as the deployment recorded it after the upgrade.
    fn reached(e: &NodeExpectations) -> NodeObserved {
        let mut c = container();
        c.id = e.container.id.clone();
        c.name = e.container.name.clone();
        c.image = e.container.image.clone();
        c.image_id = e.container.image_id.clone().unwrap_or_default();
        c.binds = e.container.binds.clone();
        c.env = e.container.env.iter().map(|v| v.to_string()).collect();
        NodeObserved::Reached {
            container: Some(Box::new(c)),
            old_container: None,
        }
    }

    /// Issue 15: every node of a deployment is expected on its own engine, from its own
    /// facts, and named.
    #[test]
    fn a_deployment_expects_every_node_from_its_own_facts() {
        let e = expectations(&deployment(false)).unwrap();
        let nodes: Vec<(u8, Option<&str>, &str)> = e
            .nodes
            .iter()
            .map(|n| (n.node, n.name.as_deref(), n.endpoint.as_str()))
            .collect();
        assert_eq!(
            nodes,
            [
                (0, Some("node0 (oms-a)"), "local"),
                (1, Some("node1 (oms-b)"), "ssh://root@10.0.0.6"),
                (2, Some("node2 (oms-c)"), "ssh://root@10.0.0.7"),
            ]
        );
        assert!(
            e.nodes
                .iter()
                .all(|n| n.container.role == ContainerRole::New)
        );

        // After a rollback each node's own old container is expected back.
        let e = expectations(&deployment(true)).unwrap();
        assert_eq!(e.phase, Phase::RolledBack);
        let ids: Vec<&str> = e.nodes.iter().map(|n| n.container.id.as_str()).collect();
        let plan = crate::replay::build::Records::deployment_plan(3, 2);
        assert_eq!(ids, [plan.old_container.id.as_str(), "old1", "old2"]);
        assert!(
            e.nodes
                .iter()
                .all(|n| n.container.role == ContainerRole::Old)
        );
    }

    /// Issue 15: a drift on one node names that node; a node that cannot be reached is
    /// reported as such, by name, and is never "no drift".
    #[test]
    fn drift_and_an_unreachable_node_are_named_per_node() {
        let e = expectations(&deployment(false)).unwrap();
        let all_reached = |e: &Expectations| Observed {
            nodes: e.nodes.iter().map(reached).collect(),
            ha_json: e.ha_json.clone(),
            schema: SchemaObservation::NoTable,
            dumps: vec![],
        };
        let mut o = all_reached(&e);
        let ok = compare(
            &Expectations {
                dumps: vec![],
                ..e.clone()
            },
            &o,
        );
        assert!(ok.is_ok(), "{:#?}", ok.drifts);
        let subjects: Vec<&str> = ok.subjects.iter().map(|s| s.subject.as_str()).collect();
        assert_eq!(
            subjects[..3],
            [
                "node0 (oms-a): container oms",
                "node1 (oms-b): container oms",
                "node2 (oms-c): container oms"
            ]
        );

        o.nodes[1] = NodeObserved::Unreachable {
            error: "host key refused".into(),
        };
        if let NodeObserved::Reached {
            container: Some(c), ..
        } = &mut o.nodes[2]
        {
            c.image = "oms:feature_3.3.0_ce".into();
        }
        let r = compare(&Expectations { dumps: vec![], ..e }, &o);
        assert!(!r.is_ok());
        let drifts: Vec<(&str, &str, Option<u8>)> = r
            .drifts
            .iter()
            .map(|d| (d.subject.as_str(), d.field.as_str(), d.node))
            .collect();
        assert_eq!(drifts, [("node2 (oms-c): container oms", "image", Some(2))]);
        let unreachable = r.unreachable();
        assert_eq!(unreachable.len(), 1);
        assert_eq!(unreachable[0].subject, "node1 (oms-b): Docker engine");
        assert_eq!(unreachable[0].node, Some(1));
        let detail = unreachable[0].detail.as_deref().unwrap();
        assert!(
            detail.contains("node1 (oms-b) at ssh://root@10.0.0.6")
                && detail.contains("host key refused"),
            "{detail}"
        );

        // Unreachable alone is still not a pass.
        let mut o = all_reached(&expectations(&deployment(false)).unwrap());
        o.nodes[2] = NodeObserved::Unreachable {
            error: "connection refused".into(),
        };
        let e = expectations(&deployment(false)).unwrap();
        let r = compare(&Expectations { dumps: vec![], ..e }, &o);
        assert!(r.drifts.is_empty() && !r.is_ok());
    }

    /// A single-node plan's subjects and findings carry no node: they read as before.
    #[test]
    fn a_single_node_plan_names_no_node() {
        let plan = crate::events::samples::plan();
        let mut r = crate::replay::build::Records::planned(plan);
        r.finish();
        let e = expectations(&r.state).unwrap();
        assert_eq!(e.nodes.len(), 1);
        assert_eq!(e.nodes[0].name, None);
        assert_eq!(e.nodes[0].endpoint, "local");
        let o = Observed {
            nodes: vec![NodeObserved::Reached {
                container: None,
                old_container: None,
            }],
            ha_json: e.ha_json.clone(),
            schema: SchemaObservation::NoTable,
            dumps: vec![],
        };
        let rep = compare(&Expectations { dumps: vec![], ..e }, &o);
        assert_eq!(rep.drifts[0].subject, "container oms");
        assert_eq!(rep.drifts[0].node, None);
        let j = serde_json::to_value(&rep).unwrap();
        assert!(j["drifts"][0].get("node").is_none());
    }
}
