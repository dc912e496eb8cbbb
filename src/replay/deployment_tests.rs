//! The multi-node procedure in the core (issue 15): the official order, the stages whose
//! lanes run side by side, several steps open at once, per-node rollback, T1.

use super::build::Records;
use super::*;
use crate::events::samples::deployment_plan;
use crate::events::{NodeStep, RegionStep};
use crate::steps::{plan_keys, stages};

fn on(n: u8, key: StepKey) -> StepKey {
    key.on_node(NodeIx(n))
}

fn keys(v: &[&str]) -> Vec<StepKey> {
    v.iter().map(|s| s.parse().expect(s)).collect()
}

#[test]
fn the_official_order_for_three_nodes_in_two_regions() {
    let plan = deployment_plan(3, 2);
    let got: Vec<String> = plan_keys(&plan).iter().map(|k| k.to_string()).collect();
    let want = [
        "disable-ha",
        // (2) every node stopped before anything else
        "pre-stop-check",
        "stop-old",
        "old-restart-off",
        "node1:pre-stop-check",
        "node1:stop-old",
        "node1:old-restart-off",
        "node2:pre-stop-check",
        "node2:stop-old",
        "node2:old-restart-off",
        // (3) once per region: prune; then rm, cm and every region's heartbeat db
        "prune-heartbeat",
        "region1:prune-heartbeat",
        "dump-rm",
        "dump-cm",
        "dump-cm_hb",
        "region1:dump-cm_hb",
        // (4) every node: the new container
        "rename-old",
        "create-new",
        "start-new",
        "check-supervisor",
        "node1:rename-old",
        "node1:create-new",
        "node1:start-new",
        "node1:check-supervisor",
        "node2:rename-old",
        "node2:create-new",
        "node2:start-new",
        "node2:check-supervisor",
        // (5) docker_init.sh once per region (nodes 0 and 1 here), one after the other
        "docker-init",
        "node1:docker-init",
        // (6) every node healthy, every server Online
        "confirm-health",
        "node1:confirm-health",
        "node2:confirm-health",
        "check-online",
        // (7) HA back once
        "enable-ha",
        // (8) after T2, each region's heartbeat rows the prune moved aside (issue 16)
        "drop-pruned-heartbeat",
        "region1:drop-pruned-heartbeat",
        "complete",
    ];
    assert_eq!(got, want);
    // Every key reads back from its text form.
    for k in plan_keys(&plan) {
        assert_eq!(k.to_string().parse::<StepKey>().unwrap(), k);
    }
}

#[test]
fn a_stage_has_one_lane_per_node_and_a_single_node_one_step_per_stage() {
    let plan = deployment_plan(3, 2);
    let st = stages(&plan_keys(&plan));
    let stop = &st[1];
    assert_eq!(stop.len(), 3, "{stop:?}");
    assert_eq!(
        stop[2],
        keys(&[
            "node2:pre-stop-check",
            "node2:stop-old",
            "node2:old-restart-off"
        ])
    );
    // docker-init is never side by side.
    assert!(
        st.iter()
            .filter(|s| s
                .iter()
                .flatten()
                .any(|k| k.base() == StepKey::RunDockerInit))
            .all(|s| s.len() == 1 && s[0].len() == 1)
    );
    let single = crate::events::samples::plan_with_settings();
    assert!(stages(&plan_keys(&single)).iter().all(|s| s.len() == 1));
}

#[test]
fn the_nodes_of_a_stage_run_side_by_side_and_each_lane_keeps_its_order() {
    let mut r = Records::planned(deployment_plan(3, 2));
    r.step_ok(StepKey::DisableHa);
    let runnable: Vec<StepKey> = r.state.runnable().iter().map(|(s, _)| s.key()).collect();
    assert_eq!(
        runnable,
        keys(&[
            "pre-stop-check",
            "node1:pre-stop-check",
            "node2:pre-stop-check"
        ])
    );
    // All three intents before any outcome: each lane's step is running.
    for k in &runnable {
        r.intent(*k).unwrap();
    }
    assert_eq!(r.state.in_doubt_all(), runnable);
    assert!(
        r.state.runnable().is_empty(),
        "nothing more while all lanes are busy"
    );
    // A lane's next step waits for its own head, even when another lane is done.
    r.done(on(1, StepKey::PreStopCheck)).unwrap();
    assert!(matches!(
        r.intent(StepKey::StopOldContainer),
        Err(Rejection::NotPermitted { .. })
    ));
    r.intent(on(1, StepKey::StopOldContainer)).unwrap();
    // Outcomes arrive in any order.
    r.done(on(2, StepKey::PreStopCheck)).unwrap();
    r.done(StepKey::PreStopCheck).unwrap();
    r.done(on(1, StepKey::StopOldContainer)).unwrap();
    // The next stage waits for every lane of this one.
    assert!(matches!(
        r.intent(StepKey::PruneHeartbeat),
        Err(Rejection::NotPermitted { .. })
    ));
}

#[test]
fn a_step_of_another_stage_is_refused_while_one_is_open() {
    let mut r = Records::planned(deployment_plan(2, 1));
    r.done_until(StepKey::PruneHeartbeat);
    r.intent(StepKey::PruneHeartbeat).unwrap();
    assert!(matches!(
        r.intent(StepKey::Dump { db: MetaDb::Rm }),
        Err(Rejection::InDoubt { .. })
    ));
    // The same step twice is refused too.
    assert!(matches!(
        r.intent(StepKey::PruneHeartbeat),
        Err(Rejection::InDoubt { .. })
    ));
}

#[test]
fn a_crash_inside_a_stage_leaves_every_open_step_in_doubt_reconciled_one_by_one() {
    let mut r = Records::planned(deployment_plan(3, 1));
    r.done_until(StepKey::RenameOldContainer);
    let stage: Vec<StepKey> = r.state.runnable().iter().map(|(s, _)| s.key()).collect();
    assert_eq!(stage.len(), 3);
    for k in &stage {
        r.intent(*k).unwrap();
    }
    r.done(stage[1]).unwrap();
    // The process dies: two steps have an intent and no outcome.
    assert_eq!(r.state.in_doubt_all(), vec![stage[0], stage[2]]);
    for k in [stage[0], stage[2]] {
        match r.state.next() {
            Next::Reconcile { step } => assert_eq!(step.key(), k),
            other => panic!("expected a reconciliation of {k}, got {other:?}"),
        }
        let facts = r.facts(k);
        r.push(Event::StepReconciled {
            key: k,
            finding: Finding::Done(Box::new(facts)),
            evidence: "seen renamed".into(),
        })
        .unwrap();
    }
    // Every lane goes on with its next step, none repeated.
    let next: Vec<StepKey> = r.state.runnable().iter().map(|(s, _)| s.key()).collect();
    assert_eq!(
        next,
        keys(&["create-new", "node1:create-new", "node2:create-new"])
    );
}

#[test]
fn t1_is_the_first_stop_of_any_node() {
    let mut r = Records::planned(deployment_plan(3, 1));
    r.done_until(StepKey::PreStopCheck);
    for n in 0..3 {
        r.step_ok(on(n, StepKey::PreStopCheck));
    }
    // Node 2 stops first.
    r.step_ok(on(2, StepKey::StopOldContainer));
    let node2_stop = r.state.facts(on(2, StepKey::StopOldContainer)).cloned();
    r.step_ok(StepKey::StopOldContainer);
    let Some(StepFacts::ContainerStopped(s)) = node2_stop else {
        panic!("node2's stop facts")
    };
    assert_eq!(r.state.t1(), Some(s.t()));
    assert!(r.state.t1() < r.state.stopped_at(StepKey::StopOldContainer));
}

#[test]
fn a_full_run_then_a_rollback_brings_back_every_node_and_region() {
    let mut r = Records::planned(deployment_plan(3, 2));
    r.finish();
    assert_eq!(r.state.phase(), Phase::Completed);
    r.rollback().unwrap();
    let rb: Vec<String> = r
        .state
        .rollback()
        .unwrap()
        .keys
        .iter()
        .map(|k| k.to_string())
        .collect();
    for k in [
        "rollback-verify-dumps",
        "node2:rollback-stop-new",
        "node1:rollback-rename-old",
        "rollback-recreate-cm_hb",
        "region1:rollback-recreate-cm_hb",
        "region1:rollback-restore-cm_hb",
        "node2:rollback-restart-policy",
        "node1:rollback-restart-old",
        "node2:rollback-confirm-health",
        "rollback-complete",
    ] {
        assert!(rb.contains(&k.to_string()), "{k} missing from {rb:?}");
    }
    // HA is disabled once, not per node.
    assert_eq!(rb.iter().filter(|k| k.contains("disable-ha")).count(), 1);
    r.finish();
    assert_eq!(r.state.phase(), Phase::RolledBack);
}

#[test]
fn a_rollback_touches_only_the_nodes_the_upgrade_touched() {
    let mut r = Records::planned(deployment_plan(3, 1));
    r.done_until(StepKey::RenameOldContainer);
    // Node 0 and node 1 renamed and created; node 2 never got that far.
    for n in 0..2 {
        r.step_ok(on(n, StepKey::RenameOldContainer));
        r.step_ok(on(n, StepKey::CreateNewContainer));
    }
    r.rollback().unwrap();
    let rb = r.state.rollback().unwrap().keys.clone();
    assert!(rb.contains(&on(1, StepKey::RenameNewAside)));
    assert!(!rb.contains(&on(2, StepKey::RenameNewAside)));
    assert!(!rb.contains(&on(2, StepKey::RenameOldBack)));
    // Every node was stopped: every node is restarted.
    for n in 0..3 {
        assert!(rb.contains(&on(n, StepKey::RestartOldContainer)), "node{n}");
    }
    // No new container started: the databases are not restored.
    assert!(
        !rb.iter()
            .any(|k| k.base() == StepKey::Restore { db: MetaDb::Rm })
    );
}

#[test]
fn a_node_step_is_built_from_that_nodes_plan_and_records() {
    let plan = deployment_plan(3, 2);
    let mut r = Records::planned(plan.clone());
    r.done_until(StepKey::StopOldContainer);
    let step = r.state.step(on(2, StepKey::StopOldContainer)).unwrap();
    let Step::OnNode { node, inner } = &step else {
        panic!("{step:?}")
    };
    assert_eq!(*node, NodeIx(2));
    let Step::StopOldContainer(spec) = inner.as_ref() else {
        panic!("{inner:?}")
    };
    assert_eq!(spec.id.as_deref(), Some("2".repeat(64).as_str()));
    // A region's dump goes to its own heartbeat database and file.
    let dump = r
        .state
        .step(StepKey::Region {
            region: RegionIx(1),
            step: RegionStep::DumpHeartbeat,
        })
        .unwrap();
    let Step::InRegion { inner, .. } = &dump else {
        panic!("{dump:?}")
    };
    let Step::Dump(d) = inner.as_ref() else {
        panic!("{inner:?}")
    };
    assert_eq!(d.database, "oms_cm_hb_1");
    assert!(d.file.ends_with("/oms_cm_hb_1.sql"), "{}", d.file);
}

#[test]
fn a_node_or_region_key_that_cannot_exist_does_not_parse() {
    for bad in [
        "node0:stop-old",
        "node1:dump-rm",
        "region0:prune-heartbeat",
        "region1:stop-old",
        "node:stop-old",
        "node+1:stop-old",
        "node1:",
    ] {
        assert!(bad.parse::<StepKey>().is_err(), "{bad} parsed");
    }
    assert_eq!(
        "node12:rollback-confirm-health".parse::<StepKey>().unwrap(),
        StepKey::Node {
            node: NodeIx(12),
            step: NodeStep::ConfirmOldHealth
        }
    );
}

#[test]
fn a_deployment_plan_and_node_keys_survive_the_stored_form() {
    let plan = deployment_plan(3, 2);
    let ev = Event::planned(plan.clone());
    let e = crate::events::encode(&ev);
    let back = crate::events::decode(e.event_type, e.schema_version, &e.payload).unwrap();
    assert_eq!(back, ev);
    let key = StepKey::Region {
        region: RegionIx(3),
        step: RegionStep::RestoreHeartbeat,
    };
    let ev = Event::StepIntent { key };
    let e = crate::events::encode(&ev);
    assert_eq!(
        crate::events::decode(e.event_type, e.schema_version, &e.payload).unwrap(),
        ev
    );
}

#[test]
fn a_nodes_new_container_may_be_started_again_before_its_own_checks() {
    let mut r = Records::planned(deployment_plan(2, 1));
    r.done_until(StepKey::RenameOldContainer);
    for n in 0..2 {
        for k in [
            StepKey::RenameOldContainer,
            StepKey::CreateNewContainer,
            StepKey::StartNewContainer,
        ] {
            r.step_ok(on(n, k));
        }
    }
    // Node 1's check-supervisor is next in its lane: its container may be started again.
    assert!(
        r.state
            .may_start_new_again(on(1, StepKey::StartNewContainer))
    );
    r.step_ok(on(1, StepKey::CheckSupervisor));
    assert!(
        !r.state
            .may_start_new_again(on(1, StepKey::StartNewContainer))
    );
    // Node 0's lane has not moved: still allowed there.
    assert!(r.state.may_start_new_again(StepKey::StartNewContainer));
}

#[test]
fn until_a_nodes_stop_stops_before_that_nodes_check() {
    use crate::steps::stops_before;
    assert!(stops_before(
        on(1, StepKey::StopOldContainer),
        on(1, StepKey::PreStopCheck)
    ));
    assert!(!stops_before(
        on(1, StepKey::StopOldContainer),
        on(2, StepKey::PreStopCheck)
    ));
    assert!(stops_before(
        StepKey::StopOldContainer,
        StepKey::PreStopCheck
    ));
    assert!(!stops_before(
        StepKey::StopOldContainer,
        on(1, StepKey::PreStopCheck)
    ));
}
