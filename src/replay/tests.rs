use chrono::Duration;
use uuid::Uuid;

use super::build::Records;
use super::*;
use crate::events::samples::{self, plan, plan_for};
use crate::events::{ContainerStopped, HaEnabled, PreflightCheck, RestartPolicy};
use crate::refetch::{self, RefetchPolicy};

const RM: MetaDb = MetaDb::Rm;

fn keys(steps: &[Step]) -> Vec<StepKey> {
    steps.iter().map(Step::key).collect()
}

#[test]
fn full_upgrade_331() {
    let mut s = Records::planned(plan());
    assert_eq!(s.state.phase(), Phase::Upgrading);
    assert_eq!(
        keys(&s.state.remaining()),
        steps::upgrade_keys(s.plan.procedure)
    );
    assert_eq!(keys(&s.state.permitted()), [StepKey::DisableHa]);
    s.finish();
    assert_eq!(s.state.phase(), Phase::Completed);
    assert_eq!(
        s.state.next(),
        Next::Finished {
            phase: Phase::Completed
        }
    );
    let t1 = s.state.t1().unwrap();
    let t2 = s.state.t2().unwrap();
    assert!(t2 > t1);
    assert_eq!(s.state.downtime(t2 + Duration::days(9)), Some(t2 - t1));
    let d = s.state.refetch_decision().unwrap();
    assert_eq!(d.t1, t1);
    assert!(d.interval_minutes.unwrap() as i64 > (t2 - t1).num_minutes());
    assert_eq!(s.state.ha_before(), Some(samples::HA_ON));
    assert!(s.state.ha_after().unwrap().contains("\"enable\":true"));
    assert_eq!(s.state.artifacts().len(), 3);
    assert_eq!(s.state.new_container().unwrap().id, "new");
    assert!(s.state.failures().is_empty());
    assert_eq!(s.state.attempts().len(), 15);
    assert!(s.state.attempts().iter().all(|a| a.duration().is_some()));
    assert_eq!(replay(&s.events).unwrap(), s.state);
}

#[test]
fn guide_42x_runs_supervisor_and_online_checks() {
    let mut s = Records::planned(plan_for("4.2.1", "4.2.2"));
    s.done_until(StepKey::CheckSupervisor);
    assert_eq!(s.state.remaining()[1].key(), StepKey::RunDockerInit);
    s.finish();
    let done: Vec<StepKey> = s.state.attempts().iter().map(|a| a.key).collect();
    assert!(done.contains(&StepKey::CheckOnline));
    assert_eq!(s.state.phase(), Phase::Completed);
}

#[test]
fn guide_330_downtime_ends_at_health() {
    let mut s = Records::planned(plan_for("3.2.2", "3.3.0"));
    assert_eq!(keys(&s.state.permitted()), [StepKey::PreStopCheck]);
    s.finish();
    assert_eq!(s.state.phase(), Phase::Completed);
    assert_eq!(s.state.t2(), None);
    assert!(s.state.downtime_end().is_some());
    assert_eq!(s.state.refetch_decision(), None);
}

#[test]
fn out_of_order_events_are_rejected() {
    let mut s = Records::planned(plan());
    // Done without intent.
    let e = s.done(StepKey::DisableHa).unwrap_err();
    assert_eq!(
        e,
        Rejection::NoIntent {
            key: StepKey::DisableHa
        }
    );
    // Intent for a later step.
    let e = s.intent(StepKey::StopOldContainer).unwrap_err();
    assert!(
        e.to_string()
            .contains("stop-old is not permitted now (phase upgrading; permitted: disable-ha)"),
        "{e}"
    );
    s.intent(StepKey::DisableHa).unwrap();
    // A second intent while one is in doubt.
    assert_eq!(
        s.intent(StepKey::DisableHa).unwrap_err(),
        Rejection::InDoubt {
            in_doubt: StepKey::DisableHa
        }
    );
    // An outcome for another step.
    assert!(matches!(
        s.fail(StepKey::StopOldContainer, true),
        Err(Rejection::NoIntent { .. })
    ));
    // A rollback while in doubt.
    assert!(matches!(
        s.rollback(),
        Err(Rejection::RollbackRefused { .. })
    ));
    s.done(StepKey::DisableHa).unwrap();
    // A second outcome.
    assert!(matches!(
        s.done(StepKey::DisableHa),
        Err(Rejection::NoIntent { .. })
    ));
    // Rejections leave the state as it was.
    assert_eq!(replay(&s.events).unwrap(), s.state);
}

#[test]
fn no_new_container_before_all_three_dumps() {
    let mut s = Records::planned(plan());
    s.done_until(StepKey::Dump { db: MetaDb::CmHb });
    assert!(matches!(
        s.intent(StepKey::CreateNewContainer),
        Err(Rejection::NotPermitted { .. })
    ));
    assert!(matches!(
        s.intent(StepKey::RenameOldContainer),
        Err(Rejection::NotPermitted { .. })
    ));
    s.step_ok(StepKey::Dump { db: MetaDb::CmHb });
    s.step_ok(StepKey::RenameOldContainer);
    assert_eq!(keys(&s.state.permitted()), [StepKey::CreateNewContainer]);
}

#[test]
fn records_of_another_run_and_bad_plans_are_rejected() {
    let mut s = Records::planned(plan());
    let mut r = s.record(Event::Note { text: "x".into() });
    r.run_id = Uuid::from_u128(7);
    assert!(matches!(s.state.apply(&r), Err(Rejection::WrongRun { .. })));
    let mut r = s.record(Event::Note { text: "x".into() });
    r.seq = 1;
    assert_eq!(
        s.state.apply(&r),
        Err(Rejection::SeqNotIncreasing { last: 1, found: 1 })
    );
    assert_eq!(
        s.push(Event::planned(plan())),
        Err(Rejection::AlreadyPlanned)
    );
    assert_eq!(
        s.push(Event::PreflightFailed { checks: vec![] }),
        Err(Rejection::PreflightAfterPlan)
    );

    let mut fresh = Records::empty(plan());
    assert!(matches!(
        fresh.intent(StepKey::DisableHa),
        Err(Rejection::NotPlanned { .. })
    ));
    assert!(matches!(
        fresh.rollback(),
        Err(Rejection::NotPlanned { .. })
    ));
    let Event::RunPlanned { plan: p, .. } = Event::planned(plan()) else {
        unreachable!()
    };
    let forged = Event::RunPlanned {
        plan: p.clone(),
        digest: PlanDigest([0; 32]),
    };
    assert!(matches!(
        fresh.push(forged),
        Err(Rejection::PlanDigestMismatch { .. })
    ));
    let mut other = (*p).clone();
    other.run_id = Uuid::from_u128(9);
    assert!(matches!(
        fresh.push(Event::planned(other)),
        Err(Rejection::PlanRunMismatch { .. })
    ));
    assert_eq!(fresh.state.next(), Next::Plan);
    assert_eq!(fresh.state.phase(), Phase::NotPlanned);
}

#[test]
fn preflight_failures_fix_the_run_and_precede_the_plan() {
    let mut s = Records::empty(plan());
    s.push(Event::PreflightFailed {
        checks: vec![PreflightCheck {
            name: "target-image-present".into(),
            ok: false,
            detail: "docker load the image".into(),
        }],
    })
    .unwrap();
    assert_eq!(s.state.run_id(), Some(s.plan.run_id));
    assert_eq!(s.state.phase(), Phase::NotPlanned);
    assert_eq!(s.state.preflight_failures().len(), 1);
    s.push(Event::planned(plan())).unwrap();
    assert_eq!(s.state.phase(), Phase::Upgrading);
}

#[test]
fn done_facts_must_fit_and_not_contradict_success() {
    let mut s = Records::planned(plan());
    s.done_until(StepKey::RunDockerInit);
    s.intent(StepKey::RunDockerInit).unwrap();
    let mut f = s.facts(StepKey::RunDockerInit);
    if let StepFacts::DockerInit(d) = &mut f {
        d.exit_code = 1;
    }
    let e = s
        .push(Event::StepDone {
            key: StepKey::RunDockerInit,
            facts: f.clone(),
        })
        .unwrap_err();
    assert!(e.to_string().contains("record step.failed instead"), "{e}");
    let wrong_kind = s.facts(StepKey::ConfirmHealth);
    assert!(matches!(
        s.push(Event::StepDone {
            key: StepKey::RunDockerInit,
            facts: wrong_kind
        }),
        Err(Rejection::BadFacts { .. })
    ));
    // The failure itself, with what was seen, is fine.
    s.push(Event::StepFailed {
        key: StepKey::RunDockerInit,
        error: "exit 1".into(),
        retryable: false,
        facts: Some(f),
        kind: FailureKind::Service,
    })
    .unwrap();
    assert_eq!(s.state.phase(), Phase::UpgradeFailed);
    assert!(s.state.permitted().is_empty());
    let Next::Blocked { reason } = s.state.next() else {
        panic!()
    };
    assert!(reason.contains("oms-upgrade rollback"), "{reason}");
    assert!(s.state.can_rollback());
}

#[test]
fn binds_and_dump_names_are_checked_against_the_plan() {
    let mut s = Records::planned(plan());
    s.intent(StepKey::DisableHa).unwrap();
    s.done(StepKey::DisableHa).unwrap();
    s.done_until(StepKey::Dump { db: RM });
    s.intent(StepKey::Dump { db: RM }).unwrap();
    let mut f = s.facts(StepKey::Dump { db: RM });
    if let StepFacts::DumpWritten(a) = &mut f {
        a.database = "oms_cm".into();
    }
    assert!(matches!(
        s.push(Event::StepDone {
            key: StepKey::Dump { db: RM },
            facts: f
        }),
        Err(Rejection::BadFacts { .. })
    ));
    s.done(StepKey::Dump { db: RM }).unwrap();
    s.done_until(StepKey::CreateNewContainer);
    s.intent(StepKey::CreateNewContainer).unwrap();
    let mut f = s.facts(StepKey::CreateNewContainer);
    if let StepFacts::NewContainerCreated(n) = &mut f {
        n.old_binds[0] = "/elsewhere:/home/ds/store".into();
        n.binds = n.old_binds.clone();
    }
    let e = s
        .push(Event::StepDone {
            key: StepKey::CreateNewContainer,
            facts: f,
        })
        .unwrap_err();
    assert!(
        e.to_string().contains("planned old container's binds"),
        "{e}"
    );
}

#[test]
fn enable_ha_must_cover_the_downtime() {
    let mut s = Records::planned(plan());
    s.done_until(StepKey::EnableHa);
    s.intent(StepKey::EnableHa).unwrap();
    let t1 = s.state.t1().unwrap();
    let at = s.now + Duration::minutes(1);
    let facts = |refetch| {
        StepFacts::HaEnabled(HaEnabled {
            enabled_at: at,
            previous_json: samples::HA_OFF.into(),
            written_json: samples::HA_ON.into(),
            refetch,
            mode: HaMode::Sql,
            attestation: None,
        })
    };
    // Computed when the instructions were printed, but a slow operator (manual mode)
    // enabled HA hours later: the interval no longer covers the downtime.
    let late = at + Duration::hours(3);
    let e2 = s
        .push(Event::StepDone {
            key: StepKey::EnableHa,
            facts: StepFacts::HaEnabled(HaEnabled {
                enabled_at: late,
                previous_json: samples::HA_OFF.into(),
                written_json: samples::HA_ON.into(),
                refetch: Some(refetch::decide(&RefetchPolicy::default(), t1, at)),
                mode: HaMode::Manual,
                attestation: None,
            }),
        })
        .unwrap_err();
    assert!(e2.to_string().contains("does not cover"), "{e2}");
    assert!(matches!(
        s.push(Event::StepDone {
            key: StepKey::EnableHa,
            facts: facts(None)
        }),
        Err(Rejection::BadFacts { .. })
    ));
    let from_wrong_t1 = refetch::decide(&RefetchPolicy::default(), t1 + Duration::minutes(5), at);
    assert!(
        s.push(Event::StepDone {
            key: StepKey::EnableHa,
            facts: facts(Some(from_wrong_t1))
        })
        .unwrap_err()
        .to_string()
        .contains("downtime began at")
    );
    s.done(StepKey::EnableHa).unwrap();
}

use crate::events::HaMode;

#[test]
fn crash_in_doubt_then_reconcile() {
    let mut s = Records::planned(plan());
    s.done_until(StepKey::StopOldContainer);
    s.intent(StepKey::StopOldContainer).unwrap();
    assert_eq!(s.state.in_doubt(), Some(StepKey::StopOldContainer));
    assert!(s.state.permitted().is_empty());
    let Next::Reconcile { step } = s.state.next() else {
        panic!()
    };
    assert_eq!(step.key(), StepKey::StopOldContainer);
    // Reality: still running, so not done; the step may run again.
    s.push(Event::StepReconciled {
        key: StepKey::StopOldContainer,
        finding: Finding::NotDone,
        evidence: "State.Running=true".into(),
    })
    .unwrap();
    assert_eq!(keys(&s.state.permitted()), [StepKey::StopOldContainer]);
    s.intent(StepKey::StopOldContainer).unwrap();
    // Reality: stopped; recorded as done with the observed facts.
    let f = s.facts(StepKey::StopOldContainer);
    s.push(Event::StepReconciled {
        key: StepKey::StopOldContainer,
        finding: Finding::Done(Box::new(f)),
        evidence: "State.Running=false".into(),
    })
    .unwrap();
    assert_eq!(keys(&s.state.permitted()), [StepKey::PruneHeartbeat]);
    assert!(s.state.t1().is_some());
    assert_eq!(s.state.reconciliations().len(), 2);
    let a: Vec<u32> = s
        .state
        .attempts()
        .iter()
        .filter(|a| a.key == StepKey::StopOldContainer)
        .map(|a| a.number)
        .collect();
    assert_eq!(a, [1, 2]);
    // A reconciliation that finds a failure.
    s.intent(StepKey::PruneHeartbeat).unwrap();
    s.push(Event::StepReconciled {
        key: StepKey::PruneHeartbeat,
        finding: Finding::Failed {
            error: "cannot tell".into(),
            retryable: true,
            kind: FailureKind::Service,
        },
        evidence: "x".into(),
    })
    .unwrap();
    assert_eq!(s.state.failures().len(), 1);
    assert!(matches!(s.state.next(), Next::Run { retry: true, .. }));
}

#[test]
fn retryable_failures_may_be_retried() {
    let mut s = Records::planned(plan());
    s.intent(StepKey::DisableHa).unwrap();
    s.fail(StepKey::DisableHa, true).unwrap();
    assert_eq!(s.state.phase(), Phase::Upgrading);
    assert_eq!(keys(&s.state.permitted()), [StepKey::DisableHa]);
    s.intent(StepKey::DisableHa).unwrap();
    s.fail(StepKey::DisableHa, false).unwrap();
    assert_eq!(s.state.phase(), Phase::UpgradeFailed);
    assert!(matches!(
        s.intent(StepKey::DisableHa),
        Err(Rejection::NotPermitted { .. })
    ));
    // Nothing known about HA before: the rollback leaves HA alone.
    assert_eq!(
        s.state.rollback_keys().unwrap(),
        [StepKey::RollbackComplete]
    );
}

#[test]
fn rollback_after_failed_init_restores_everything() {
    let mut s = Records::planned(plan());
    s.done_until(StepKey::RunDockerInit);
    s.intent(StepKey::RunDockerInit).unwrap();
    s.fail(StepKey::RunDockerInit, false).unwrap();
    assert!(s.state.databases_touched());
    s.rollback().unwrap();
    assert_eq!(s.state.phase(), Phase::RollingBack);
    let rb = s.state.rollback().unwrap();
    assert_eq!(rb.from_phase, Phase::UpgradeFailed);
    assert_eq!(rb.keys[0], StepKey::RollbackVerifyDumps);
    assert!(!rb.keys.contains(&StepKey::RollbackDisableHa));
    // The restore step carries the recorded artifact.
    let Ok(Step::Restore(r)) = s.state.step(StepKey::Restore { db: RM }) else {
        panic!()
    };
    assert_eq!(&r.artifact, s.state.artifact(RM).unwrap());
    // An altered dump: verification cannot be recorded as done.
    s.intent(StepKey::RollbackVerifyDumps).unwrap();
    let mut f = s.facts(StepKey::RollbackVerifyDumps);
    if let StepFacts::DumpsVerified { checks } = &mut f {
        checks[1].found_blake3 = Some("00".repeat(32));
    }
    assert!(matches!(
        s.push(Event::StepDone {
            key: StepKey::RollbackVerifyDumps,
            facts: f.clone()
        }),
        Err(Rejection::BadFacts { .. })
    ));
    s.push(Event::StepFailed {
        key: StepKey::RollbackVerifyDumps,
        error: "cm dump altered".into(),
        retryable: true,
        facts: Some(f),
        kind: FailureKind::Integrity,
    })
    .unwrap();
    // Nothing else may run before the dumps verify.
    assert_eq!(keys(&s.state.permitted()), [StepKey::RollbackVerifyDumps]);
    s.step_ok(StepKey::RollbackVerifyDumps);
    s.finish();
    assert_eq!(s.state.phase(), Phase::RolledBack);
    let t1 = s.state.t1().unwrap();
    let t3 = s.state.t3().unwrap();
    assert!(t3 > t1);
    let d = s.state.refetch_decision().unwrap();
    assert_eq!(d.t1, t1);
    assert_eq!(s.state.downtime_end(), Some(d.t2));
    assert!(d.covers(t1, s.state.downtime_end().unwrap()));
    assert!(matches!(
        s.rollback(),
        Err(Rejection::RollbackRefused { .. })
    ));
    assert_eq!(replay(&s.events).unwrap(), s.state);
}

#[test]
fn rollback_after_completion_disables_ha_first() {
    let mut s = Records::planned(plan());
    s.finish();
    s.rollback().unwrap();
    let k = s.state.rollback().unwrap().keys.clone();
    assert_eq!(
        &k[..3],
        [
            StepKey::RollbackVerifyDumps,
            StepKey::RollbackDisableHa,
            StepKey::StopNewContainer
        ]
    );
    assert_eq!(*k.last().unwrap(), StepKey::RollbackComplete);
    s.finish();
    assert_eq!(s.state.phase(), Phase::RolledBack);
    assert!(s.state.t2().is_some() && s.state.t3().is_some());
}

#[test]
fn rollback_before_t1_only_puts_ha_back() {
    let mut s = Records::planned(plan());
    s.step_ok(StepKey::DisableHa);
    s.rollback().unwrap();
    assert_eq!(
        s.state.rollback().unwrap().keys,
        [StepKey::RollbackEnableHa, StepKey::RollbackComplete]
    );
    let Ok(Step::RollbackEnableHa(h)) = s.state.step(StepKey::RollbackEnableHa) else {
        panic!()
    };
    assert_eq!(h.since, None);
    assert!(h.enable, "HA was on before the run");
    s.intent(StepKey::RollbackEnableHa).unwrap();
    // A refetch decision makes no sense without downtime.
    let mut f = s.facts(StepKey::RollbackEnableHa);
    if let StepFacts::HaEnabled(h) = &mut f {
        h.refetch = Some(refetch::decide(&RefetchPolicy::default(), s.now, s.now));
    }
    assert!(
        s.push(Event::StepDone {
            key: StepKey::RollbackEnableHa,
            facts: f
        })
        .is_err()
    );
    s.done(StepKey::RollbackEnableHa).unwrap();
    s.finish();
    assert_eq!(s.state.phase(), Phase::RolledBack);
    assert_eq!(s.state.downtime(s.now), None);
}

#[test]
fn rollback_of_a_plan_only_records_completion() {
    let mut s = Records::planned(plan());
    s.rollback().unwrap();
    assert_eq!(keys(&s.state.permitted()), [StepKey::RollbackComplete]);
    s.finish();
    assert_eq!(s.state.phase(), Phase::RolledBack);
}

#[test]
fn rollback_before_start_needs_no_restore() {
    let mut s = Records::planned(plan());
    s.done_until(StepKey::StartNewContainer);
    assert!(!s.state.databases_touched());
    s.rollback().unwrap();
    let k = s.state.rollback().unwrap().keys.clone();
    assert!(!k.iter().any(|k| matches!(
        k,
        StepKey::Restore { .. } | StepKey::RecreateDatabase { .. } | StepKey::RollbackVerifyDumps
    )));
    assert!(k.contains(&StepKey::RenameNewAside) && k.contains(&StepKey::RestartOldContainer));
    // A restore step is simply not part of this rollback.
    s.done_until(StepKey::RestartOldContainer);
    assert!(matches!(
        s.intent(StepKey::Restore { db: RM }),
        Err(Rejection::NotPermitted { .. })
    ));
    s.finish();
    assert_eq!(s.state.phase(), Phase::RolledBack);
    let d = s.state.refetch_decision().unwrap();
    assert_eq!(Some(d.t1), s.state.t1());
}

#[test]
fn failed_stop_counts_downtime_from_its_intent() {
    let mut s = Records::planned(plan());
    s.done_until(StepKey::StopOldContainer);
    s.intent(StepKey::StopOldContainer).unwrap();
    let intent_at = s.now;
    s.fail(StepKey::StopOldContainer, false).unwrap();
    assert_eq!(s.state.t1(), None);
    assert_eq!(s.state.downtime_start(), Some(intent_at));
    s.rollback().unwrap();
    assert_eq!(
        s.state.rollback().unwrap().keys,
        [
            StepKey::RestartOldContainer,
            StepKey::ConfirmOldHealth,
            StepKey::RollbackEnableHa,
            StepKey::RollbackComplete
        ]
    );
    s.done_until(StepKey::RollbackEnableHa);
    let Ok(Step::RollbackEnableHa(h)) = s.state.step(StepKey::RollbackEnableHa) else {
        panic!()
    };
    assert_eq!(h.since, Some(intent_at));
    s.finish();
    assert_eq!(s.state.phase(), Phase::RolledBack);
}

#[test]
fn rollback_failure_blocks_for_manual_work() {
    let mut s = Records::planned(plan());
    s.done_until(StepKey::ConfirmHealth);
    s.rollback().unwrap();
    s.done_until(StepKey::Restore { db: RM });
    s.intent(StepKey::Restore { db: RM }).unwrap();
    s.fail(StepKey::Restore { db: RM }, false).unwrap();
    assert_eq!(s.state.phase(), Phase::RollbackFailed);
    let Next::Blocked { reason } = s.state.next() else {
        panic!()
    };
    assert!(reason.contains("fix it by hand"), "{reason}");
    assert!(!s.state.can_rollback());
    s.push(Event::Note {
        text: "restored rm by hand".into(),
    })
    .unwrap();
}

#[test]
fn guide_330_rollback_has_no_ha_steps() {
    let mut s = Records::planned(plan_for("3.2.2", "3.3.0"));
    s.done_until(StepKey::ConfirmHealth);
    s.rollback().unwrap();
    let k = &s.state.rollback().unwrap().keys;
    assert!(!k.contains(&StepKey::RollbackEnableHa) && !k.contains(&StepKey::RollbackDisableHa));
    s.finish();
    assert_eq!(s.state.phase(), Phase::RolledBack);
    assert!(s.state.downtime_end().is_some());
}

#[test]
fn notes_and_attestations_in_every_phase() {
    let att = || {
        Event::Attestation(crate::events::Attestation {
            by: "alice".into(),
            statement: "checked the console".into(),
            step: None,
            observed_at: None,
        })
    };
    let mut s = Records::empty(plan());
    s.push(Event::Note { text: "a".into() }).unwrap();
    s.push(att()).unwrap();
    s.push(Event::planned(plan())).unwrap();
    s.intent(StepKey::DisableHa).unwrap();
    s.push(Event::Note {
        text: "in doubt".into(),
    })
    .unwrap();
    s.done(StepKey::DisableHa).unwrap();
    s.finish();
    s.push(att()).unwrap();
    s.rollback().unwrap();
    s.finish();
    s.push(Event::Note { text: "z".into() }).unwrap();
    assert_eq!(s.state.notes().len(), 3);
    assert_eq!(s.state.attestations().len(), 2);
    assert_eq!(s.state.notes()[0].operator, "alice");
}

#[test]
fn stop_facts_keep_dockers_own_time() {
    let mut s = Records::planned(plan());
    s.done_until(StepKey::StopOldContainer);
    s.intent(StepKey::StopOldContainer).unwrap();
    let at = s.now + Duration::seconds(61);
    s.push(Event::StepDone {
        key: StepKey::StopOldContainer,
        facts: StepFacts::ContainerStopped(ContainerStopped {
            id: "c".into(),
            stopped_at: at,
            stop_requested_at: None,
            docker_finished_at: Some(at - Duration::seconds(2)),
            exit_code: Some(143),
            already_stopped: false,
        }),
    })
    .unwrap();
    assert_eq!(s.state.t1(), Some(at));
}

/// `step.tables` slices are accepted only for an open dump or restore, in order, and only
/// when the outcome carries tables to join them to; replay joins them in front.
#[test]
fn table_slices_are_checked_and_joined() {
    let dump = StepKey::Dump { db: MetaDb::Cm };
    let t = |i: u64| TableFact {
        name: format!("t{i}"),
        rows: i,
        checksum: "c".into(),
        method: crate::events::ChecksumMethod::ChecksumTable,
    };
    let slice = |first: u32, range: std::ops::Range<u64>| Event::StepTables {
        key: dump,
        first,
        tables: range.map(t).collect(),
    };
    let mut s = Records::planned(plan());
    s.done_until(dump);
    // Not while the step is not open.
    assert!(matches!(
        s.push(slice(0, 0..2)),
        Err(Rejection::NoIntent { .. })
    ));
    s.intent(dump).unwrap();
    s.push(slice(0, 0..2)).unwrap();
    // A missing or repeated slice is refused.
    for first in [0, 3] {
        let e = s.push(slice(first, 2..4)).unwrap_err();
        assert!(e.to_string().contains("missing or repeated"), "{e}");
    }
    // An empty one too.
    assert!(s.push(slice(2, 2..2)).is_err());
    s.push(slice(2, 2..4)).unwrap();
    let StepFacts::DumpWritten(mut a) = s.facts(dump) else {
        panic!()
    };
    a.tables = vec![t(4)];
    s.push(Event::StepDone {
        key: dump,
        facts: StepFacts::DumpWritten(a),
    })
    .unwrap();
    let names: Vec<_> = s
        .state
        .artifact(MetaDb::Cm)
        .unwrap()
        .tables
        .iter()
        .map(|t| t.rows)
        .collect();
    assert_eq!(names, [0, 1, 2, 3, 4]);

    // Slices for a step whose outcome has no tables would vanish: refused.
    let mut s = Records::planned(plan());
    s.intent(StepKey::DisableHa).unwrap();
    let e = s
        .push(Event::StepTables {
            key: StepKey::DisableHa,
            first: 0,
            tables: vec![t(0)],
        })
        .unwrap_err();
    assert!(e.to_string().contains("only a dump or a restore"), "{e}");
}

/// Regression (issue 11, defect 3): what `init` checked is checked again right before T1,
/// and a failed check holds the run before `stop-old`; a ledger written before the check
/// existed still replays and goes on.
#[test]
fn stop_old_comes_only_after_a_passed_pre_stop_check() {
    let mut s = Records::planned(plan());
    s.done_until(StepKey::PreStopCheck);
    assert_eq!(keys(&s.state.permitted()), [StepKey::PreStopCheck]);
    s.intent(StepKey::PreStopCheck).unwrap();
    s.fail(StepKey::PreStopCheck, true).unwrap();
    // Failed: only the check again, never the stop.
    assert_eq!(keys(&s.state.permitted()), [StepKey::PreStopCheck]);
    assert!(s.intent(StepKey::StopOldContainer).is_err());
    s.intent(StepKey::PreStopCheck).unwrap();
    s.done(StepKey::PreStopCheck).unwrap();
    assert_eq!(keys(&s.state.permitted()), [StepKey::StopOldContainer]);
    // A done outcome must not hide a failed check.
    let mut t = Records::planned(plan());
    t.done_until(StepKey::PreStopCheck);
    t.intent(StepKey::PreStopCheck).unwrap();
    let bad = StepFacts::PreStopChecked {
        checks: vec![PreflightCheck {
            name: "image".into(),
            ok: false,
            detail: "re-tagged".into(),
        }],
    };
    assert!(
        t.push(Event::StepDone {
            key: StepKey::PreStopCheck,
            facts: bad
        })
        .is_err()
    );

    // A ledger from before the check: straight from disable-ha to stop-old.
    let mut old = Records::planned(plan());
    old.done_until(StepKey::PreStopCheck);
    old.intent(StepKey::StopOldContainer).unwrap();
    old.done(StepKey::StopOldContainer).unwrap();
    assert_eq!(keys(&old.state.permitted()), [StepKey::PruneHeartbeat]);
    old.finish();
    assert_eq!(old.state.phase(), Phase::Completed);
    assert!(
        !old.state
            .attempts()
            .iter()
            .any(|a| a.key == StepKey::PreStopCheck)
    );
    assert_eq!(replay(&old.events).unwrap(), old.state);
}

/// Regression (issue 11, defect 6): a new container stopped after `start-new` is started
/// again (another recorded attempt) before the steps that exec into it, not a reason to
/// fail `docker-init` and roll back.
#[test]
fn a_stopped_new_container_may_be_started_again_before_docker_init() {
    let mut s = Records::planned(plan());
    s.done_until(StepKey::StartNewContainer);
    assert!(!s.state.may_start_new_again(StepKey::StartNewContainer));
    s.done_until(StepKey::RunDockerInit);
    assert!(s.state.may_start_new_again(StepKey::StartNewContainer));
    assert!(!s.state.may_start_new_again(StepKey::CreateNewContainer));
    s.intent(StepKey::StartNewContainer).unwrap();
    s.done(StepKey::StartNewContainer).unwrap();
    assert_eq!(keys(&s.state.permitted()), [StepKey::RunDockerInit]);
    let starts = s
        .state
        .attempts()
        .iter()
        .filter(|a| a.key == StepKey::StartNewContainer)
        .count();
    assert_eq!(starts, 2);
    // Once docker-init ran, never again.
    s.intent(StepKey::RunDockerInit).unwrap();
    assert!(!s.state.may_start_new_again(StepKey::StartNewContainer));
    s.done(StepKey::RunDockerInit).unwrap();
    assert!(!s.state.may_start_new_again(StepKey::StartNewContainer));
    assert!(s.intent(StepKey::StartNewContainer).is_err());
    s.finish();
    assert_eq!(s.state.phase(), Phase::Completed);
    assert_eq!(replay(&s.events).unwrap(), s.state);
}

/// Regression (issue 11, defect 2): a `create-new` done on an image other than the
/// planned id (a re-pointed tag) is not accepted.
#[test]
fn create_new_must_run_the_planned_image_id() {
    let mut s = Records::planned(plan());
    s.done_until(StepKey::CreateNewContainer);
    s.intent(StepKey::CreateNewContainer).unwrap();
    let StepFacts::NewContainerCreated(mut n) = s.facts(StepKey::CreateNewContainer) else {
        panic!()
    };
    n.image_id = Some("sha256:other".into());
    let e = s
        .push(Event::StepDone {
            key: StepKey::CreateNewContainer,
            facts: StepFacts::NewContainerCreated(n),
        })
        .unwrap_err();
    assert!(e.to_string().contains("sha256:other"), "{e}");
    s.done(StepKey::CreateNewContainer).unwrap();
}

// ---- issue 12.1: an undecided step and the operator's decision -------------------------

/// A run whose `docker-init` was reconciled as undecided; returns the reconciled seq.
fn undecided_init() -> (Records, u64) {
    let mut s = Records::planned(plan());
    s.done_until(StepKey::RunDockerInit);
    s.intent(StepKey::RunDockerInit).unwrap();
    s.push(Event::StepReconciled {
        key: StepKey::RunDockerInit,
        finding: Finding::Undecided {
            why: "docker_init.log.2026-01-04.10:42:11 changed since the intent".into(),
        },
        evidence: "intent at ...; /home/admin/logs: docker_init.log.2026-01-04.10:42:11".into(),
    })
    .unwrap();
    let seq = s.state.last_seq().unwrap();
    (s, seq)
}

fn decision(key: StepKey, resolution: Resolution, seq: u64) -> Event {
    Event::StepResolved(StepResolved {
        key,
        resolution,
        reason: "read the log by hand".into(),
        by: "alice".into(),
        reconciled_seq: seq,
    })
}

#[test]
fn an_undecided_step_blocks_with_the_resolve_command_and_never_runs() {
    let (s, seq) = undecided_init();
    assert_eq!(s.state.in_doubt(), None);
    assert_eq!(
        s.state.status(StepKey::RunDockerInit),
        StepStatus::Undecided
    );
    assert!(s.state.permitted().is_empty());
    assert!(!s.state.may_start_new_again(StepKey::StartNewContainer));
    let w = s.state.awaiting_decision().unwrap();
    assert_eq!((w.key, w.reconciled_seq), (StepKey::RunDockerInit, seq));
    match s.state.next() {
        Next::Blocked { reason } => {
            assert!(
                reason.contains("oms-upgrade resolve docker-init --as done|not-done --reason"),
                "{reason}"
            );
            assert!(
                reason.contains("docker_init.log.2026-01-04.10:42:11"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    // No intent for it (nor for anything else) without a decision.
    let run = s.run_id();
    assert!(matches!(
        s.state.check(
            run,
            &Event::StepIntent {
                key: StepKey::RunDockerInit
            }
        ),
        Err(Rejection::NotPermitted { .. })
    ));
    // A rollback stays possible.
    assert!(s.state.can_rollback());
}

#[test]
fn a_decision_done_goes_on_and_not_done_performs_the_step() {
    let (mut s, seq) = undecided_init();
    s.push(decision(StepKey::RunDockerInit, Resolution::Done, seq))
        .unwrap();
    assert_eq!(s.state.status(StepKey::RunDockerInit), StepStatus::Done);
    assert_eq!(s.state.awaiting_decision(), None);
    assert_eq!(keys(&s.state.permitted()), [StepKey::ConfirmHealth]);
    assert_eq!(s.state.resolutions().len(), 1);
    assert_eq!(s.state.resolutions()[0].operator, "alice");
    s.finish();
    assert_eq!(s.state.phase(), Phase::Completed);
    let intents = s
        .state
        .attempts()
        .iter()
        .filter(|a| a.key == StepKey::RunDockerInit)
        .count();
    assert_eq!(intents, 1, "decided done: never performed again");
    assert_eq!(replay(&s.events).unwrap(), s.state);

    let (mut s, seq) = undecided_init();
    s.push(decision(StepKey::RunDockerInit, Resolution::NotDone, seq))
        .unwrap();
    assert_eq!(s.state.status(StepKey::RunDockerInit), StepStatus::Pending);
    match s.state.next() {
        Next::Run { step, retry } => {
            assert_eq!(step.key(), StepKey::RunDockerInit);
            assert!(!retry);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(replay(&s.events).unwrap(), s.state);
}

#[test]
fn a_decision_is_refused_unless_the_step_awaits_one() {
    let run_id = |s: &Records| s.run_id();
    // Nothing awaits a decision: a fresh run, a step in doubt, a finished run.
    let mut s = Records::planned(plan());
    let r = s.state.check(
        run_id(&s),
        &decision(StepKey::RunDockerInit, Resolution::Done, 1),
    );
    assert!(
        matches!(&r, Err(Rejection::NotAwaitingDecision { reason, .. }) if reason.contains("next step is disable-ha")),
        "{r:?}"
    );
    s.done_until(StepKey::RunDockerInit);
    s.intent(StepKey::RunDockerInit).unwrap();
    let r = s.state.check(
        run_id(&s),
        &decision(StepKey::RunDockerInit, Resolution::Done, 1),
    );
    assert!(
        matches!(&r, Err(Rejection::NotAwaitingDecision { reason, .. }) if reason.contains("has not been checked")),
        "{r:?}"
    );
    let (mut s, seq) = undecided_init();
    // Another step, another evidence record, no reason, nobody.
    for (event, what) in [
        (
            decision(StepKey::ConfirmHealth, Resolution::Done, seq),
            "awaiting a decision is docker-init",
        ),
        (
            decision(StepKey::RunDockerInit, Resolution::Done, seq - 1),
            "evidence is record",
        ),
    ] {
        let r = s.state.check(run_id(&s), &event);
        assert!(
            matches!(&r, Err(Rejection::NotAwaitingDecision { reason, .. }) if reason.contains(what)),
            "{r:?}"
        );
    }
    for (reason, by) in [("  ", "alice"), ("ok", "")] {
        let r = s.state.check(
            run_id(&s),
            &Event::StepResolved(StepResolved {
                key: StepKey::RunDockerInit,
                resolution: Resolution::Done,
                reason: reason.into(),
                by: by.into(),
                reconciled_seq: seq,
            }),
        );
        assert!(matches!(r, Err(Rejection::BadResolution { .. })), "{r:?}");
    }
    // Decided once: a second decision is refused.
    s.push(decision(StepKey::RunDockerInit, Resolution::Done, seq))
        .unwrap();
    assert!(matches!(
        s.push(decision(StepKey::RunDockerInit, Resolution::Done, seq)),
        Err(Rejection::NotAwaitingDecision { .. })
    ));
    s.finish();
    let r = s.state.check(
        run_id(&s),
        &decision(StepKey::RunDockerInit, Resolution::NotDone, seq),
    );
    assert!(
        matches!(&r, Err(Rejection::NotAwaitingDecision { reason, .. }) if reason.contains("the run is over")),
        "{r:?}"
    );
    // After a rollback is requested the upgrade's step no longer awaits a decision.
    let (mut s, seq) = undecided_init();
    s.rollback().unwrap();
    assert!(matches!(
        s.state.check(
            run_id(&s),
            &decision(StepKey::RunDockerInit, Resolution::Done, seq)
        ),
        Err(Rejection::NotAwaitingDecision { .. })
    ));
}

/// Regression (issue 12.9): T1 was when `docker stop` returned, up to the stop timeout
/// after OMS began shutting down, so the downtime and the refetch window came out short.
/// T1 is now the recorded request instant, with the stop's return and Docker's
/// `FinishedAt` kept beside it; a record of an earlier build keeps its old meaning.
#[test]
fn t1_is_when_the_stop_was_requested() {
    let mut s = Records::planned(plan());
    s.done_until(StepKey::StopOldContainer);
    s.intent(StepKey::StopOldContainer).unwrap();
    let asked = s.now + Duration::milliseconds(5);
    let returned = asked + Duration::seconds(100);
    s.push(Event::StepDone {
        key: StepKey::StopOldContainer,
        facts: StepFacts::ContainerStopped(ContainerStopped {
            id: "c".into(),
            stopped_at: returned,
            stop_requested_at: Some(asked),
            docker_finished_at: Some(returned - Duration::milliseconds(20)),
            exit_code: Some(0),
            already_stopped: false,
        }),
    })
    .unwrap();
    assert_eq!(s.state.t1(), Some(asked));
    assert_eq!(s.state.downtime_start(), Some(asked));
    s.finish();
    let d = s.state.refetch_decision().unwrap();
    assert_eq!(d.t1, asked);
}

/// Regression (issue 12.8): the Store retention warning was computed only for the
/// report; `run`, `status` and `plan` show [`State::retention_warning`], which warns while
/// the downtime still lasts.
#[test]
fn retention_warning_is_known_while_the_downtime_lasts() {
    let mut s = Records::planned(plan());
    s.done_until(StepKey::PruneHeartbeat);
    let t1 = s.state.t1().unwrap();
    assert_eq!(s.state.retention_warning(t1 + Duration::hours(1)), None);
    let late = s.state.retention_warning(t1 + Duration::hours(21)).unwrap();
    assert!(late.contains("Store retention"), "{late}");
    assert!(late.contains("still running"), "{late}");
}

/// Issue 12.3: with the old container's settings in the plan, `old-restart-off` runs
/// right after `stop-old` and must leave the policy `no`; a rollback puts back the policy
/// that step recorded, before restarting the old container. A plan without the settings
/// (ledgers of earlier builds) has neither step.
#[test]
fn restart_policy_off_after_t1_and_back_on_rollback() {
    let mut s = Records::planned(samples::plan_with_settings());
    assert_eq!(keys(&s.state.remaining()), steps::plan_keys(&s.plan));
    s.done_until(StepKey::OldRestartOff);
    s.intent(StepKey::OldRestartOff).unwrap();
    let wrong = StepFacts::RestartPolicySet {
        id: s.plan.old_container.id.clone(),
        before: RestartPolicy::no(),
        after: RestartPolicy {
            name: "always".into(),
            max_retries: 0,
        },
    };
    assert!(matches!(
        s.push(Event::StepDone {
            key: StepKey::OldRestartOff,
            facts: wrong
        }),
        Err(Rejection::BadFacts { .. })
    ));
    s.done(StepKey::OldRestartOff).unwrap();
    s.done_until(StepKey::StartNewContainer);
    s.rollback().unwrap();
    let rb = s.state.rollback().unwrap().keys.clone();
    let pos = |k| rb.iter().position(|x| *x == k).unwrap();
    assert_eq!(
        pos(StepKey::RollbackRestartPolicy) + 1,
        pos(StepKey::RestartOldContainer)
    );
    let Ok(Step::RollbackRestartPolicy(r)) = s.state.step(StepKey::RollbackRestartPolicy) else {
        panic!()
    };
    assert_eq!(r.policy.to_string(), "unless-stopped");
    s.finish();
    assert_eq!(s.state.phase(), Phase::RolledBack);
    assert_eq!(replay(&s.events).unwrap(), s.state);

    let mut old = Records::planned(plan());
    old.finish();
    assert!(
        !old.state
            .attempts()
            .iter()
            .any(|a| a.key == StepKey::OldRestartOff)
    );
}

/// Issue 16: a ledger of a build before `drop-pruned-heartbeat` went from `enable-ha`
/// straight to `complete`; it still replays to completed (the skipped step is no part of
/// the run). A prune that recorded rows moved aside (`batch_rows` 0, which only builds
/// with the drop step write) needs the drop step before `complete`.
#[test]
fn a_ledger_from_before_the_drop_step_still_completes() {
    let mut old = Records::planned(plan());
    old.done_until(StepKey::DropPrunedHeartbeat);
    assert_eq!(keys(&old.state.permitted()), [StepKey::DropPrunedHeartbeat]);
    old.step_ok(StepKey::Complete);
    assert_eq!(old.state.phase(), Phase::Completed);
    assert_eq!(replay(&old.events).unwrap(), old.state);

    let mut new = Records::planned(plan());
    new.done_until(StepKey::PruneHeartbeat);
    new.intent(StepKey::PruneHeartbeat).unwrap();
    new.push(Event::StepDone {
        key: StepKey::PruneHeartbeat,
        facts: StepFacts::HeartbeatPruned {
            max_id: Some(9000),
            rows_deleted: 0,
            batches: Some(0),
            batch_rows: Some(0),
            warning: None,
        },
    })
    .unwrap();
    new.done_until(StepKey::DropPrunedHeartbeat);
    assert!(matches!(
        new.intent(StepKey::Complete),
        Err(Rejection::NotPermitted { .. })
    ));
    new.step_ok(StepKey::DropPrunedHeartbeat);
    new.step_ok(StepKey::Complete);
    assert_eq!(new.state.phase(), Phase::Completed);
}
