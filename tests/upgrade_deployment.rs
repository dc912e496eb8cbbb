//! A deployment of three OMS nodes over two regions (issue 15), upgraded and rolled back as
//! one run recorded in one ledger, on the real engine and MariaDB: `init --inventory`,
//! `run`, `ledger verify --live` on every node, `rollback`, `ledger verify --live` again.
//! Then the crash matrix over the multi-node procedure: the `oms-upgrade` binary (built
//! with `failpoints`) aborted inside the stages whose nodes run side by side (between the
//! intents of one stage, between their effects and their outcomes) and between per-node
//! steps that run one after the other, each time resumed, ending where an uninterrupted
//! run ends with every step done exactly once and no drift on any node.
//!
//! Versions 4.2.1 -> 4.2.2: the 4.2.x guide (supervisor, every server Online).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oms_upgrade::adapters::{BollardDocker, Docker};
use oms_upgrade::demo::deployment::{self, World, WorldSpec};
use oms_upgrade::events::Finding;
use oms_upgrade::history::{self, Verify};
use oms_upgrade::replay::{Outcome, State};
use support::emulator::{ContainerGuard, free_port, images};
use support::upgrade::{cli, output, require_failpoints, show};
use support::{mysql_target, unique_name};

const OLD: &str = "4.2.1";
const NEW: &str = "4.2.2";

/// A world of emulator nodes, its ledger folder, and what removes it.
struct Dep {
    world: World,
    tmp: PathBuf,
    new_image: String,
    docker: BollardDocker,
    _guard: ContainerGuard,
}

impl Dep {
    async fn new(nodes: u8, regions: u8) -> Dep {
        let raw = support::docker().await;
        let guard = ContainerGuard::new(&raw).await;
        let imgs = images(&raw, &[OLD, NEW]).await;
        let docker = BollardDocker::from_client(raw.clone());
        let tmp = tempfile::Builder::new()
            .prefix("oms-deploy-")
            .tempdir()
            .expect("temp dir")
            .keep();
        let labels: BTreeMap<String, String> = guard.labels().into_iter().collect();
        let spec = WorldSpec {
            prefix: guard.value.replace('_', "-"),
            dir: tmp.join("world"),
            old_image: imgs[0].reference.clone(),
            target: mysql_target(),
            rm: unique_name("drm"),
            cm: unique_name("dcm"),
            heartbeat_base: unique_name("dhb"),
            nodes,
            regions,
            nginx_port: free_port(),
            labels,
            env: Vec::new(),
            privileged: false,
            seed: Some(deployment::WorldSeed {
                emulator: support::emulator::emulator_binary(),
                size: "256K".into(),
            }),
            progress: None,
        };
        let world = deployment::build(&docker, &spec)
            .await
            .unwrap_or_else(|e| panic!("world of {nodes} nodes: {e}"));
        Dep {
            world,
            tmp,
            new_image: imgs[1].reference.clone(),
            docker,
            _guard: guard,
        }
    }

    fn ledger(&self) -> PathBuf {
        self.tmp.join("ledger")
    }

    /// `oms-upgrade ARGS` on this deployment's ledger; panics unless it succeeds.
    async fn ok(&self, args: &[&str]) -> String {
        let out = output(cli(&self.ledger()).args(args)).await;
        assert!(
            out.status.success(),
            "oms-upgrade {args:?}:\n{}",
            show(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    async fn init(&self) {
        let inventory = self.world.inventory.display().to_string();
        let backups = self.tmp.join("backups").display().to_string();
        self.ok(&[
            "init",
            "--inventory",
            &inventory,
            "--container",
            &self.world.nodes[0].container,
            "--image",
            &self.new_image,
            "--backup-dir",
            &backups,
            "--no-privileged",
        ])
        .await;
    }

    fn state(&self) -> State {
        history::load_dir(&self.ledger(), Verify::Chain)
            .expect("the ledger verifies and replays")
            .state
    }

    /// `ledger verify --live` succeeds and names every node with no drift.
    async fn verify_live(&self, phase: &str) {
        let out = self.ok(&["ledger", "verify", "--live"]).await;
        assert!(
            out.contains(&format!("after a completed {phase}: no drift")),
            "{out}"
        );
        for (i, n) in self.world.nodes.iter().enumerate() {
            let line = format!("node{i} ({}): container {} ok", n.host_ip, n.container);
            assert!(out.contains(&line), "`{line}` missing:\n{out}");
        }
    }

    /// Each node's container under its OMS name runs `image`.
    async fn every_node_runs(&self, image: &str) {
        for n in &self.world.nodes {
            let c = self
                .docker
                .inspect(&n.container)
                .await
                .expect("inspect")
                .unwrap_or_else(|| panic!("{} is gone", n.container));
            assert_eq!(c.image, image, "{}", n.container);
            assert!(c.status.is_running(), "{} is not running", n.container);
        }
    }

    async fn teardown(&self) {
        deployment::teardown(&self.docker, &mysql_target(), &self.world, true)
            .await
            .expect("teardown");
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}

/// Per step: how many attempts ended done (directly or found done by a reconciliation),
/// how many failed, how many were reconciled.
fn tally(state: &State) -> BTreeMap<String, (u32, u32, u32)> {
    let mut t: BTreeMap<String, (u32, u32, u32)> = BTreeMap::new();
    for a in state.attempts() {
        let e = t.entry(a.key.to_string()).or_default();
        match &a.outcome {
            Some(Outcome::Done { .. }) => e.0 += 1,
            Some(Outcome::Reconciled { finding, .. }) => {
                e.2 += 1;
                if matches!(finding, Finding::Done(_)) {
                    e.0 += 1;
                }
            }
            Some(Outcome::Failed { .. }) => e.1 += 1,
            None => panic!("{} still in doubt at the end", a.key),
        }
    }
    t
}

/// Every step of the current list was done exactly once and none failed.
fn assert_each_once(state: &State, keys: &[String]) {
    let t = tally(state);
    for k in keys {
        let (done, failed, _) = t.get(k).copied().unwrap_or_default();
        assert_eq!(done, 1, "{k} done {done} times; tally {t:?}");
        assert_eq!(failed, 0, "{k} failed; tally {t:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_in_two_regions_upgrade_verify_rollback_verify() {
    let d = Dep::new(3, 2).await;
    d.init().await;
    let plan = d.state().plan().cloned().expect("plan");
    assert_eq!(plan.nodes().len(), 3);
    assert_eq!(plan.regions().len(), 2);
    d.ok(&["run", "--yes"]).await;
    d.every_node_runs(&d.new_image).await;
    d.verify_live("upgrade").await;
    let state = d.state();
    // T1 is the first node's stop; the stops ran side by side, so they all began before
    // any of them ended.
    let stops: Vec<_> = plan
        .nodes()
        .into_iter()
        .map(|n| oms_upgrade::events::StepKey::StopOldContainer.on_node(n))
        .collect();
    let intents: Vec<_> = state
        .attempts()
        .iter()
        .filter(|a| stops.contains(&a.key))
        .map(|a| a.intent_at)
        .collect();
    let ends: Vec<_> = state
        .attempts()
        .iter()
        .filter(|a| stops.contains(&a.key))
        .filter_map(|a| a.outcome.as_ref().map(|o| o.at()))
        .collect();
    assert_eq!(intents.len(), 3);
    assert!(
        intents.iter().max() < ends.iter().min(),
        "stops one after another"
    );
    assert!(state.t1().expect("t1") <= *ends.iter().min().unwrap());
    d.ok(&["rollback", "--yes"]).await;
    d.every_node_runs(&plan.old_container.image).await;
    d.verify_live("rollback").await;
    d.teardown().await;
}

/// Runs `args` on `ledger` with every point of `armed` set to abort; the point that
/// fired, or `None` when the command ran to its end.
async fn crash_once(ledger: &Path, args: &[&str], armed: &[String]) -> Option<String> {
    support::upgrade::crash_once(cli(ledger), args, armed).await
}

/// Resumes `args` until a resume runs to its end, each time with the points not fired yet;
/// the points that fired, in order.
async fn walk(ledger: &Path, args: &[&str], targets: &[&str]) -> Vec<String> {
    let mut armed: Vec<String> = targets.iter().map(|s| s.to_string()).collect();
    let mut fired = Vec::new();
    while let Some(p) = crash_once(ledger, args, &armed).await {
        armed.retain(|a| *a != p);
        fired.push(p);
    }
    fired
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_matrix_over_the_multi_node_procedure() {
    require_failpoints();
    let d = Dep::new(3, 2).await;
    d.init().await;
    // Inside stages run side by side: after node 0's intent, before node 1's effect (two
    // intents open, nothing stopped); after every node's creation, before node 2's outcome
    // (two outcomes recorded, one effect unrecorded); after node 1's outcome of a start.
    // Between steps one after another: the second region's heartbeat dump, node 2's init.
    let upgrade = [
        "before-effect:node1:stop-old",
        "after-outcome:region1:dump-cm_hb",
        "after-effect:node2:create-new",
        "after-outcome:node1:start-new",
        "before-effect:node2:docker-init",
        "after-effect:node1:confirm-health",
    ];
    let fired = walk(&d.ledger(), &["run", "--yes"], &upgrade).await;
    assert_eq!(
        fired, upgrade,
        "every point fired, in the procedure's order"
    );
    let state = d.state();
    let keys: Vec<String> = oms_upgrade::steps::plan_keys(state.plan().unwrap())
        .iter()
        .map(|k| k.to_string())
        .collect();
    assert_each_once(&state, &keys);
    // Two open intents at the first crash: both reconciled, neither stopped twice.
    let t = tally(&state);
    assert_eq!(t["stop-old"].2, 1, "{t:?}");
    assert_eq!(t["node1:stop-old"].2, 1, "{t:?}");
    assert_eq!(t["node2:create-new"].2, 1, "{t:?}");
    assert_eq!(t["node2:start-new"].2, 1, "{t:?}");
    // One new container per node, each running the target.
    d.every_node_runs(&d.new_image).await;
    let run_id = state.run_id().unwrap().to_string();
    let made = d
        .docker
        .find_by_label("oms-upgrade.run-id", Some(&run_id))
        .await
        .expect("list");
    assert_eq!(made.len(), 3, "{made:?}");
    d.verify_live("upgrade").await;

    let rollback = [
        "after-effect:rollback-stop-new",
        "before-effect:node2:rollback-rename-new",
        "after-effect:region1:rollback-restore-cm_hb",
        "after-outcome:node1:rollback-restart-old",
    ];
    let fired = walk(&d.ledger(), &["rollback", "--yes"], &rollback).await;
    assert_eq!(fired, rollback);
    let state = d.state();
    let keys: Vec<String> = state
        .rollback()
        .unwrap()
        .keys
        .iter()
        .map(|k| k.to_string())
        .collect();
    assert_each_once(&state, &keys);
    let plan = state.plan().cloned().unwrap();
    d.every_node_runs(&plan.old_container.image).await;
    d.verify_live("rollback").await;
    d.teardown().await;
}
