//! `oms-upgrade status` and `oms-upgrade plan`: what the ledger says, read-only.

use std::process::ExitCode;

use comfy_table::{Table, presets::NOTHING};

use super::metatls;
use super::{CliError, CmdResult, Ctx, ExitKind};
use crate::events::StepKey;
use crate::history::{self, Verify};
use crate::ledger::LiveRead;
use crate::replay::{Next, State, StepStatus};
use crate::steps::{self, Step};

/// Arguments of `status`.
///
/// Where the run stands: phase, T1/T2/T3 and the downtime so far, each step's status,
/// the step that runs next and any step left in doubt.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The witness the plan records is asked for its head (issue 14); these flags give its
    /// password file and TLS. Without a password the witness is shown but not asked.
    #[command(flatten)]
    pub witness: super::witness::WitnessOpts,
}

/// Arguments of `plan`.
///
/// The steps that would run, in order, with the exact commands and SQL (no secrets).
#[derive(Debug, clap::Args)]
pub struct PlanArgs {}

/// What `status` and `plan` show: the replayed state (read through [`Deref`]), and, when a
/// run held the ledger, that it came from a verified copy and how far that goes.
///
/// [`Deref`]: std::ops::Deref
struct Loaded {
    state: State,
    live: Option<LiveRead>,
    /// The ledger's id and its last seq as read (the witness is compared with these).
    ledger_id: uuid::Uuid,
    head: u64,
}

impl std::ops::Deref for Loaded {
    type Target = State;
    fn deref(&self) -> &State {
        &self.state
    }
}

/// Reads the ledger; while a run holds it, a verified copy (issue 14: readers during a
/// live run), which the output then says.
fn load(ctx: &Ctx) -> Result<Loaded, CliError> {
    let reader = crate::ledger::LedgerReader::open_or_live(&ctx.ledger).map_err(CliError::from)?;
    let h = history::load(reader.view(), Verify::Chain).map_err(CliError::from)?;
    Ok(Loaded {
        head: h.records.last().map_or(0, |r| r.seq),
        ledger_id: reader.ledger_id(),
        state: h.state,
        live: reader.live().cloned(),
    })
}

/// The step the run holding the ledger is performing (its intent recorded, no outcome
/// yet), when a live read saw one: then it is in progress, not in doubt. Only a writer
/// performs steps; a ledger another reader holds is as it was left.
fn in_progress(state: &Loaded) -> Option<StepKey> {
    let running = state
        .live
        .as_ref()
        .is_some_and(|l| l.holder.starts_with("writer"));
    state.in_doubt().filter(|_| running)
}

/// A command's JSON object with a live read's fields (`live`, `seq`, `holder`, ...) and
/// `extra` added when there was one; otherwise exactly as before.
fn with_live(
    state: &Loaded,
    extra: &[(&str, serde_json::Value)],
    mut v: serde_json::Value,
) -> serde_json::Value {
    if let (Some(l), Some(obj)) = (&state.live, v.as_object_mut()) {
        if let serde_json::Value::Object(fields) = l.json_fields() {
            obj.extend(fields);
        }
        for (k, x) in extra {
            obj.insert((*k).to_string(), x.clone());
        }
    }
    v
}

/// `println!` of [`with_live`]'s object.
macro_rules! print_json {
    ($state:expr, $extra:expr, $v:expr) => {
        println!("{}", with_live($state, $extra, $v))
    };
}

fn next_json(next: &Next) -> serde_json::Value {
    serde_json::to_value(next).unwrap_or_default()
}

/// Runs `status`.
pub fn status(args: StatusArgs, ctx: &Ctx) -> CmdResult {
    let state = load(ctx)?;
    let witness = witness_view(&state, &args.witness);
    let now = chrono::Utc::now();
    let plan = state.plan();
    let next = state.next();
    let in_progress = in_progress(&state);
    let in_doubt = state.in_doubt().filter(|k| in_progress != Some(*k));
    let keys: Vec<_> = state.attempted_keys().into_iter().collect();
    let downtime = state.downtime(now).map(|d| d.num_seconds());
    if ctx.json {
        let steps: Vec<_> = keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "step": k.to_string(),
                    "status": format!("{:?}", state.status(*k)),
                    "failure_kind": state.failure_kind(*k).map(|f| f.name()),
                })
            })
            .collect();
        let mut v = serde_json::json!({
            "ledger": ctx.ledger,
            "run_id": state.run_id().map(|r| r.to_string()),
            "phase": state.phase().to_string(),
            "from": plan.map(|p| p.source_version.to_string()),
            "to": plan.map(|p| p.target_version.to_string()),
            "t1": state.t1(), "t2": state.t2(), "t3": state.t3(),
            "downtime_seconds": downtime,
            "in_doubt": in_doubt.map(|k| k.to_string()),
            "awaiting_decision": state.awaiting_decision().map(|w| serde_json::json!({
                "step": w.key.to_string(),
                "reconciled_seq": w.reconciled_seq,
                "why": w.why,
                "evidence": w.evidence,
                "resolve": w.resolve_command(),
            })),
            "rollback_permitted": state.can_rollback(),
            "rollback_refused": state.rollback_keys().err().map(|e| e.to_string()),
            // The holder is performing the step in progress: what comes after it is not
            // known yet (the state would say "reconcile", which only a new run does).
            "next": if in_progress.is_some() { serde_json::Value::Null } else { next_json(&next) },
            "permitted": state.permitted().iter().map(|s| s.key().to_string()).collect::<Vec<_>>(),
            "remaining": state.remaining().iter().map(|s| s.key().to_string()).collect::<Vec<_>>(),
            "steps": steps,
            "preflight_failures": state.preflight_failures().len(),
            "notes": state.notes().len(),
            "metadb_tls": metatls::recorded(&state),
            "retention_warning": state.retention_warning(now),
            "witness": witness,
        });
        // A deployment's progress per node (issue 15); absent for a single node.
        let nodes = node_progress(&state, in_progress);
        if !nodes.is_empty() {
            v["nodes"] = serde_json::to_value(&nodes).unwrap_or_default();
        }
        print_json!(
            &state,
            &[("in_progress", in_progress.map(|k| k.to_string()).into())],
            v
        );
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(l) = &state.live {
        println!("Note: {}.", l.describe());
    }
    let Some(plan) = plan else {
        println!("No upgrade planned in {}.", ctx.ledger.display());
        if !state.preflight_failures().is_empty() {
            println!(
                "{} failed preflight(s) recorded; `oms-upgrade ledger log` shows them.",
                state.preflight_failures().len()
            );
        }
        return Ok(ExitCode::SUCCESS);
    };
    println!(
        "Run {}: {} -> {} ({})",
        plan.run_id,
        plan.source_version,
        plan.target_version,
        plan.procedure.name()
    );
    println!(
        "Container: {} ({} -> {})",
        plan.old_container.name, plan.old_container.image, plan.target_image
    );
    println!("Phase: {}", state.phase());
    show_retention_warning(&state, now);
    if let Some(tls) = metatls::recorded(&state) {
        println!("Metadata DB connection: {}", metatls::shown(&tls));
    }
    if let Some(w) = &witness {
        println!("{}", witness_line(w));
    }
    let t = |v: Option<chrono::DateTime<chrono::Utc>>| {
        v.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into())
    };
    println!(
        "T1 (old stopped): {}   T2 (HA on): {}   T3 (new stopped): {}",
        t(state.t1()),
        t(state.t2()),
        t(state.t3())
    );
    if let Some(d) = downtime {
        println!("Downtime: {}m{:02}s", d / 60, d % 60);
    }
    let mut table = Table::new();
    table.load_preset(NOTHING).set_header(["STEP", "STATUS"]);
    for k in &keys {
        let status = match state.status(*k) {
            _ if in_progress == Some(*k) => "running (now)".to_string(),
            StepStatus::Done => "done".to_string(),
            other => match state.failure_kind(*k) {
                Some(kind) => format!("{} ({kind})", format!("{other:?}").to_lowercase()),
                None => format!("{other:?}").to_lowercase(),
            },
        };
        table.add_row([k.to_string(), status]);
    }
    for s in state.remaining() {
        if !keys.contains(&s.key()) {
            table.add_row([s.key().to_string(), "pending".into()]);
        }
    }
    println!("{table}");
    let nodes = node_progress(&state, in_progress);
    if !nodes.is_empty() {
        println!("{}", nodes_table(&nodes));
    }
    if let Some(k) = in_doubt {
        println!("In doubt: {k} (the next `run` or `rollback` checks it against reality first)");
    }
    if let Some(k) = in_progress {
        println!("In progress: {k} (the run holding the ledger is performing it)");
        return Ok(ExitCode::SUCCESS);
    }
    match next {
        Next::Run { step, .. } => println!("Next: {} — {}", step.key(), step.summary()),
        Next::Blocked { reason } => println!("Blocked: {reason}"),
        Next::Finished { phase } => println!("Finished: {phase}"),
        Next::Reconcile { step } => println!("Next: reconcile {}", step.key()),
        Next::Plan => {}
    }
    if state.can_rollback() {
        println!("Rollback: permitted (`oms-upgrade rollback`)");
    }
    Ok(ExitCode::SUCCESS)
}

/// One node's progress in a deployment (issue 15).
#[derive(Debug, serde::Serialize)]
struct NodeProgress {
    /// The node's index (0: the plan's own node).
    node: u8,
    /// The operator's name for it.
    label: String,
    /// Its Docker engine as recorded (no secret).
    endpoint: String,
    /// Its steps done, in record order.
    done: Vec<String>,
    /// Its steps that may start now (the run would perform them next).
    next: Vec<String>,
    /// Its steps with an intent and no outcome (not counting one the run holding the
    /// ledger is performing now).
    in_doubt: Vec<String>,
    /// The one the run holding the ledger is performing now, when it is on this node.
    running: Option<String>,
    /// Its steps still to run after `next`.
    remaining: Vec<String>,
    /// Its steps whose last attempt failed.
    failed: Vec<String>,
}

/// Per node: done, next, in doubt, failed and remaining steps, from the state alone.
/// Empty for a single-node plan (its one node is the whole table above).
fn node_progress(state: &State, in_progress: Option<StepKey>) -> Vec<NodeProgress> {
    let Some(plan) = state.plan().filter(|p| p.deployment().is_some()) else {
        return vec![];
    };
    let names = |keys: &mut dyn Iterator<Item = StepKey>| -> Vec<String> {
        keys.map(|k| k.to_string()).collect()
    };
    let runnable: Vec<StepKey> = state.permitted().iter().map(Step::key).collect();
    let in_doubt = state.in_doubt_all();
    let remaining: Vec<StepKey> = state.remaining().iter().map(Step::key).collect();
    plan.nodes()
        .into_iter()
        .map(|n| {
            let on = |k: &StepKey| k.node() == Some(n);
            // In record order (of each step's first attempt).
            let mut attempted: Vec<StepKey> = Vec::new();
            for a in state.attempts().iter().filter(|a| on(&a.key)) {
                if !attempted.contains(&a.key) {
                    attempted.push(a.key);
                }
            }
            let meta = plan.node_meta(n);
            NodeProgress {
                node: n.0,
                label: meta.label.clone(),
                endpoint: meta.endpoint.clone(),
                done: names(
                    &mut attempted
                        .iter()
                        .copied()
                        .filter(|k| state.status(*k) == StepStatus::Done),
                ),
                next: names(
                    &mut runnable
                        .iter()
                        .copied()
                        .filter(|k| on(k) && Some(*k) != in_progress),
                ),
                in_doubt: names(
                    &mut in_doubt
                        .iter()
                        .copied()
                        .filter(|k| on(k) && Some(*k) != in_progress),
                ),
                running: in_progress.filter(|k| on(k)).map(|k| k.to_string()),
                remaining: names(
                    &mut remaining
                        .iter()
                        .copied()
                        .filter(|k| on(k) && !runnable.contains(k) && !attempted.contains(k)),
                ),
                failed: names(
                    &mut attempted
                        .iter()
                        .copied()
                        .filter(|k| state.failure_kind(*k).is_some()),
                ),
            }
        })
        .collect()
}

/// The per-node table of `status` for a deployment.
fn nodes_table(nodes: &[NodeProgress]) -> String {
    let mut table = Table::new();
    table.load_preset(NOTHING).set_header([
        "NODE",
        "ENDPOINT",
        "DONE",
        "NEXT",
        "IN DOUBT / FAILED",
    ]);
    let or_dash = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(", ")
        }
    };
    for n in nodes {
        let total = n.done.len()
            + n.next.len()
            + n.in_doubt.len()
            + n.remaining.len()
            + usize::from(n.running.is_some());
        let next = match &n.running {
            Some(k) => format!("{k} (running now)"),
            None => or_dash(&n.next),
        };
        let mut trouble: Vec<String> = n.in_doubt.iter().map(|k| format!("{k} in doubt")).collect();
        trouble.extend(n.failed.iter().map(|k| format!("{k} failed")));
        table.add_row([
            format!("{} {}", n.node, n.label),
            n.endpoint.clone(),
            format!("{}/{total}", n.done.len()),
            next,
            or_dash(&trouble),
        ]);
    }
    format!("Nodes:\n{table}")
}

/// The downtime estimate (issue 16) for `plan --json`, with its total; `null` when the
/// plan has none.
fn estimate_json(plan: &crate::events::Plan) -> serde_json::Value {
    match plan.estimate() {
        Some(e) => {
            let mut v = serde_json::to_value(e).unwrap_or_default();
            v["total_ms"] = e.total_ms().into();
            v
        }
        None => serde_json::Value::Null,
    }
}

/// The new container's differences from the old one (issue 12.4) for `plan --json`.
fn container_json(plan: &crate::events::Plan) -> serde_json::Value {
    match crate::inherit::plan_changes(plan) {
        Some((changes, unchanged)) => {
            serde_json::json!({"changes": changes, "inherited_unchanged": unchanged})
        }
        None => serde_json::Value::Null,
    }
}

/// Runs `plan`.
pub fn plan(_args: PlanArgs, ctx: &Ctx) -> CmdResult {
    let state = load(ctx)?;
    let plan = state.plan().ok_or_else(|| {
        CliError::new(ExitKind::Refused, "no upgrade is planned in this ledger")
            .hint("run `oms-upgrade init` first")
    })?;
    let now = chrono::Utc::now();
    // Steps still to run when a run is under way; the whole procedure before it starts.
    let steps: Vec<Step> = if state.attempts().is_empty() {
        steps::preview(plan)
    } else {
        state.remaining()
    };
    if ctx.json {
        let v: Vec<_> = steps
            .iter()
            .map(|s| serde_json::json!({"step": s.key().to_string(), "summary": s.summary(), "commands": s.commands(), "confirm": s.key().needs_confirmation()}))
            .collect();
        print_json!(
            &state,
            &[],
            serde_json::json!({
                "run_id": plan.run_id.to_string(),
                "digest": plan.digest().to_string(),
                "metadb_tls": metatls::recorded(&state),
                "retention": crate::refetch::retention_note(&plan.refetch),
                "retention_warning": state.retention_warning(now),
                "container": container_json(plan),
                "estimate": estimate_json(plan),
                "steps": v,
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(l) = &state.live {
        println!("Note: {}.", l.describe());
    }
    println!(
        "Plan {} (digest {}): {} -> {}",
        plan.run_id,
        plan.digest(),
        plan.source_version,
        plan.target_version
    );
    show_retention_warning(&state, now);
    println!("{}", crate::refetch::retention_note(&plan.refetch));
    if let Some(tls) = metatls::recorded(&state) {
        println!("Metadata DB connection: {}", metatls::shown(&tls));
    }
    match plan.estimate() {
        Some(e) => {
            println!();
            for line in crate::estimate::lines(e) {
                println!("{line}");
            }
        }
        None => println!(
            "No downtime estimate: the plan has none (recorded by a build before issue 16, or `init` could not measure)."
        ),
    }
    if let Some((changes, unchanged)) = crate::inherit::plan_changes(plan) {
        println!(
            "\nNew container {} vs the old one (secrets masked):",
            plan.new_name
        );
        for c in &changes {
            println!("  changed   {c}");
        }
        println!("  inherited {}", unchanged.join(", "));
    }
    for (i, s) in steps.iter().enumerate() {
        println!(
            "\n{:>2}. {}{}  — {}",
            i + 1,
            s.key(),
            if s.key().needs_confirmation() {
                " [confirm]"
            } else {
                ""
            },
            s.summary()
        );
        for c in s.commands() {
            println!("      $ {c}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The Store retention warning, when there is one, on its own lines where it cannot be
/// missed (stdout, like the rest; `run`, `status` and `plan` share it).
pub(super) fn show_retention_warning(state: &State, now: chrono::DateTime<chrono::Utc>) {
    if let Some(w) = state.retention_warning(now) {
        println!("!!! WARNING (Store retention): {w}");
        println!("!!! check every project for gaps once OMS is back; see `oms-upgrade report`");
    }
}

/// How long `status` waits for the witness's answer.
const WITNESS_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The witness the plan records, as `status` shows it (issue 14): target, policy, the
/// local head and the witness's, the lag in records, or why the witness was not asked
/// (no password given) or did not answer. `None` when the plan records no witness.
fn witness_view(loaded: &Loaded, opts: &super::witness::WitnessOpts) -> Option<serde_json::Value> {
    let plan = loaded.plan()?;
    let w = plan.witness()?;
    let mut view = serde_json::json!({
        "target": w.target,
        "policy": w.policy.as_str(),
    });
    // The ledger as `status` read it (a live copy while a run holds it: the witness may
    // then be ahead), not a second read.
    let (local, id) = (loaded.head, loaded.ledger_id);
    view["local_head"] = local.into();
    let names = &plan.databases;
    let opened = super::witness::WitnessOpts {
        witness: Some(w.target.clone()),
        ..opts.clone()
    }
    .require(&[names.rm.as_str(), names.cm.as_str(), names.cm_hb.as_str()]);
    let (target, witness) = match opened {
        Ok(o) => o,
        Err(e) => {
            view["state"] = "not asked".into();
            view["error"] = e.message.into();
            return Some(view);
        }
    };
    let asked = crate::executor::Mirror::spawn_with_timeout(
        move || witness,
        target.to_string(),
        w.policy,
        String::new(),
        WITNESS_WAIT,
    )
    .map_err(|e| e.to_string())
    .and_then(|m| m.head(id).map_err(|e| e.to_string()));
    match asked {
        Ok(head) => {
            let (seq, forked) = head.map_or((0, false), |(s, h)| (s, h.len() > 1));
            view["state"] = if forked { "fork" } else { "reachable" }.into();
            view["witness_head"] = seq.into();
            view["lag"] = local.saturating_sub(seq).into();
        }
        Err(e) => {
            view["state"] = "unreachable".into();
            view["error"] = e.into();
        }
    }
    Some(view)
}

/// One line for [`witness_view`]'s value.
fn witness_line(w: &serde_json::Value) -> String {
    let head = format!(
        "Witness: {} (policy {})",
        w["target"].as_str().unwrap_or("?"),
        w["policy"].as_str().unwrap_or("?")
    );
    let error = w["error"].as_str().unwrap_or("");
    match w["state"].as_str() {
        Some("reachable") => format!(
            "{head}: holds up to seq {} of {} (lag {} record(s))",
            w["witness_head"], w["local_head"], w["lag"]
        ),
        Some("fork") => format!(
            "{head}: FORK: two records at its head seq {}; `oms-upgrade ledger verify --witness` names where",
            w["witness_head"]
        ),
        Some("unreachable") => format!("{head}: unreachable ({error})"),
        _ => format!("{head}: not asked ({error})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::NodeIx;
    use crate::replay::build::Records;

    /// Issue 15: `status` shows each node's own progress: node 0 stopped, node 1's stop in
    /// doubt (a crash while it ran), node 2 not stopped yet.
    #[test]
    fn a_deployment_shows_progress_per_node() {
        let mut r = Records::planned(Records::deployment_plan(3, 2));
        r.step_ok(StepKey::DisableHa);
        r.step_ok(StepKey::PreStopCheck);
        r.step_ok(StepKey::StopOldContainer);
        r.step_ok(StepKey::PreStopCheck.on_node(NodeIx(1)));
        r.intent(StepKey::StopOldContainer.on_node(NodeIx(1)))
            .unwrap();
        let nodes = node_progress(&r.state, None);
        let view: Vec<(u8, &str, Vec<&str>, Vec<&str>)> = nodes
            .iter()
            .map(|n| {
                (
                    n.node,
                    n.label.as_str(),
                    n.done.iter().map(String::as_str).collect(),
                    n.in_doubt.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            view,
            [
                (0, "oms-a", vec!["pre-stop-check", "stop-old"], vec![]),
                (
                    1,
                    "oms-b",
                    vec!["node1:pre-stop-check"],
                    vec!["node1:stop-old"]
                ),
                (2, "oms-c", vec![], vec![]),
            ]
        );
        assert!(nodes[0].remaining.contains(&"rename-old".to_string()));
        assert_eq!(nodes[2].next, ["node2:pre-stop-check"]);
        // Node 2 does not run docker_init.sh: another node of its region does.
        assert_eq!(
            nodes[2].remaining,
            [
                "node2:stop-old",
                "node2:rename-old",
                "node2:create-new",
                "node2:start-new",
                "node2:confirm-health"
            ]
        );
        let table = nodes_table(&nodes);
        assert!(table.contains("node1:stop-old in doubt"), "{table}");
        assert!(table.contains("ssh://root@10.0.0.7"), "{table}");
        // The run holding the ledger performing node 1's stop: running, not in doubt.
        let running = node_progress(&r.state, Some(StepKey::StopOldContainer.on_node(NodeIx(1))));
        assert_eq!(running[1].running.as_deref(), Some("node1:stop-old"));
        assert!(running[1].in_doubt.is_empty());
    }

    /// A single-node plan has no per-node table: its steps are the whole story.
    #[test]
    fn a_single_node_plan_has_no_node_table() {
        let r = Records::planned(crate::events::samples::plan());
        assert!(node_progress(&r.state, None).is_empty());
    }
}
