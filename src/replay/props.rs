//! Property tests: random walks over the permitted steps (with done, failed, crashed-in-
//! doubt and reconciled outcomes, notes and rollbacks) always replay to the state built
//! incrementally; every event the state does not permit is rejected; the safety rules
//! hold on every path; and reordering, dropping or repeating a recorded step event makes
//! the ledger fail to replay.

use proptest::prelude::*;

use super::build::Records;
use super::*;
use crate::events::samples::{plan, plan_for};
use crate::events::{HaAfter, HaMode};
use crate::steps::upgrade_keys;

/// Takes decisions from a byte string; when it runs out, every decision is 0 (the
/// benign choice), so walks always finish.
struct Choices<'a>(&'a [u8], usize);

impl Choices<'_> {
    fn pick(&mut self, n: usize) -> usize {
        let b = self.0.get(self.1).copied().unwrap_or(0);
        self.1 += 1;
        b as usize % n
    }
}

fn plans() -> impl Strategy<Value = Plan> {
    (0..3usize, any::<bool>(), any::<bool>()).prop_map(|(p, manual, keep)| {
        let mut p = match p {
            0 => plan(),
            1 => plan_for("4.2.1", "4.2.2"),
            _ => plan_for("3.2.2", "3.3.0"),
        };
        if manual {
            p.ha_mode = HaMode::Manual;
        }
        if keep {
            p.ha_after = HaAfter::KeepPrevious;
        }
        p
    })
}

/// Walks the state machine; returns the records (events + state) and every state seen
/// with the number of events that produced it.
fn walk(plan: Plan, bytes: &[u8]) -> (Records, Vec<(usize, State)>) {
    let mut c = Choices(bytes, 0);
    let mut rec = Records::planned(plan);
    let mut seen = vec![(rec.events.len(), rec.state.clone())];
    for _ in 0..300 {
        if let Some(k) = rec.state.in_doubt() {
            match c.pick(6) {
                0 | 1 => rec.done(k).unwrap(),
                2 => rec
                    .push(Event::StepReconciled {
                        key: k,
                        finding: Finding::NotDone,
                        evidence: "not happened".into(),
                    })
                    .unwrap(),
                3 => {
                    let f = rec.facts(k);
                    rec.push(Event::StepReconciled {
                        key: k,
                        finding: Finding::Done(Box::new(f)),
                        evidence: "happened".into(),
                    })
                    .unwrap()
                }
                _ => {
                    let retryable = c.pick(3) != 0;
                    rec.push(Event::StepReconciled {
                        key: k,
                        finding: Finding::Failed {
                            error: "unclear".into(),
                            retryable,
                            kind: FailureKind::Unrecorded,
                        },
                        evidence: "half".into(),
                    })
                    .unwrap()
                }
            }
        } else {
            let permitted = rec.state.permitted();
            match c.pick(40) {
                39 if rec.state.can_rollback() => rec.rollback().unwrap(),
                38 => rec.push(Event::Note { text: "n".into() }).unwrap(),
                _ => match permitted.first() {
                    Some(step) => {
                        let k = step.key();
                        rec.intent(k).unwrap();
                        match c.pick(24) {
                            0..=17 => rec.done(k).unwrap(),
                            18 | 19 => rec.fail(k, true).unwrap(),
                            20 => rec.fail(k, false).unwrap(),
                            _ => {} // crash: the step stays in doubt
                        }
                    }
                    None if rec.state.can_rollback() => rec.rollback().unwrap(),
                    None => break,
                },
            }
        }
        seen.push((rec.events.len(), rec.state.clone()));
    }
    (rec, seen)
}

/// Every possible step event is accepted exactly when the state permits it.
fn exhaustive_rejections(rec: &Records) -> Result<(), TestCaseError> {
    let s = &rec.state;
    let run = rec.run_id();
    let permitted: Vec<StepKey> = s.permitted().iter().map(Step::key).collect();
    prop_assert!(permitted.len() <= 1);
    if s.in_doubt().is_some() {
        prop_assert!(permitted.is_empty());
    }
    for key in StepKey::all() {
        let intent = s.check(run, &Event::StepIntent { key });
        // A ledger from before `pre-stop-check` existed goes straight to `stop-old`.
        let legacy = key == StepKey::StopOldContainer
            && permitted == [StepKey::PreStopCheck]
            && !s.attempts().iter().any(|a| a.key == StepKey::PreStopCheck);
        // A ledger from before the drop steps (issue 16) goes straight to the completion,
        // unless a prune recorded rows moved aside.
        let moved_aside = s.attempts().iter().any(|a| {
            a.key.base() == StepKey::PruneHeartbeat
                && matches!(
                    s.facts(a.key),
                    Some(StepFacts::HeartbeatPruned {
                        batch_rows: Some(0),
                        ..
                    })
                )
        });
        let legacy_drop = [
            (StepKey::Complete, StepKey::DropPrunedHeartbeat),
            (
                StepKey::RollbackComplete,
                StepKey::RollbackDropPrunedHeartbeat,
            ),
        ]
        .iter()
        .any(|&(complete, drop)| {
            key == complete
                && permitted.iter().any(|k| k.base() == drop)
                && !s.attempts().iter().any(|a| a.key.base() == drop)
                && !moved_aside
        });
        prop_assert_eq!(
            intent.is_ok(),
            permitted.contains(&key) || legacy || legacy_drop || s.may_start_new_again(key),
            "intent {}",
            key
        );
        let fail = s.check(
            run,
            &Event::StepFailed {
                key,
                error: "e".into(),
                retryable: true,
                facts: None,
                kind: FailureKind::Service,
            },
        );
        prop_assert_eq!(fail.is_ok(), s.in_doubt() == Some(key), "failed {}", key);
        let done = s.check(
            run,
            &Event::StepDone {
                key,
                facts: StepFacts::Completed,
            },
        );
        if done.is_ok() {
            prop_assert_eq!(s.in_doubt(), Some(key));
        }
        let rec = s.check(
            run,
            &Event::StepReconciled {
                key,
                finding: Finding::NotDone,
                evidence: String::new(),
            },
        );
        prop_assert_eq!(rec.is_ok(), s.in_doubt() == Some(key), "reconciled {}", key);
    }
    let rb = s.check(
        run,
        &Event::RollbackRequested {
            reason: String::new(),
        },
    );
    prop_assert_eq!(rb.is_ok(), s.can_rollback());
    prop_assert_eq!(
        s.check(run, &Event::planned(rec.plan.clone())),
        Err(Rejection::AlreadyPlanned)
    );
    let other = Uuid::from_u128(42);
    let note = Event::Note { text: "x".into() };
    let wrong = s.check(other, &note);
    prop_assert!(
        matches!(wrong, Err(Rejection::WrongRun { .. })),
        "other run accepted"
    );
    // A record with a stale seq changes nothing.
    let mut stale = rec.record(Event::Note { text: "x".into() });
    stale.seq = s.last_seq().unwrap();
    let mut copy = s.clone();
    prop_assert!(copy.apply(&stale).is_err());
    prop_assert_eq!(&copy, s);
    Ok(())
}

fn done_seq(a: &Attempt) -> Option<u64> {
    match &a.outcome {
        Some(Outcome::Done { seq, .. }) => Some(*seq),
        Some(Outcome::Reconciled {
            seq,
            finding: Finding::Done(_),
            ..
        }) => Some(*seq),
        _ => None,
    }
}

/// The safety rules, on the final state of a walk.
fn safety(s: &State) -> Result<(), TestCaseError> {
    let attempts = s.attempts();
    let done_before = |k: StepKey, seq: u64| {
        attempts
            .iter()
            .any(|a| a.key == k && done_seq(a).is_some_and(|d| d < seq))
    };
    let plan = s.plan().unwrap();
    let upgrade = upgrade_keys(plan.procedure);
    for a in attempts {
        // Procedure order: every earlier step of its list was done before this intent.
        let list = if a.key.is_rollback() {
            s.rollback().unwrap().keys.clone()
        } else {
            upgrade.clone()
        };
        let pos = list.iter().position(|k| *k == a.key);
        prop_assert!(pos.is_some(), "{} not in its procedure", a.key);
        for k in &list[..pos.unwrap()] {
            prop_assert!(done_before(*k, a.intent_seq), "{} before {}", a.key, k);
        }
        if a.key.is_rollback() {
            prop_assert!(a.intent_seq > s.rollback().unwrap().seq);
        }
        // No new attempt after a failure that was not retryable.
        let final_failure = attempts.iter().any(|b| {
            b.key == a.key
                && b.intent_seq < a.intent_seq
                && matches!(
                    b.outcome,
                    Some(Outcome::Failed {
                        retryable: false,
                        ..
                    }) | Some(Outcome::Reconciled {
                        finding: Finding::Failed {
                            retryable: false,
                            ..
                        },
                        ..
                    })
                )
        });
        prop_assert!(!final_failure, "{} retried after a final failure", a.key);
        match a.key {
            StepKey::CreateNewContainer => {
                for db in MetaDb::ALL {
                    let dump = StepKey::Dump { db };
                    prop_assert!(done_before(dump, a.intent_seq), "create before {}", dump);
                }
            }
            StepKey::RecreateDatabase { db } | StepKey::Restore { db } => {
                prop_assert!(done_before(StepKey::RollbackVerifyDumps, a.intent_seq));
                prop_assert!(s.artifact(db).is_some());
                prop_assert!(s.attempted_keys().contains(&StepKey::StartNewContainer));
            }
            _ => {}
        }
    }
    if let Some(rb) = s.rollback() {
        let restores = rb
            .keys
            .iter()
            .filter(|k| matches!(k, StepKey::Restore { .. }))
            .count();
        let touched = attempts
            .iter()
            .any(|a| a.key == StepKey::StartNewContainer && a.intent_seq < rb.seq);
        prop_assert_eq!(restores, if touched { 3 } else { 0 });
    }
    for key in [StepKey::EnableHa, StepKey::RollbackEnableHa] {
        if let Some(StepFacts::HaEnabled(h)) = s.facts(key)
            && let Some(start) = s.downtime_start()
        {
            prop_assert!(h.refetch.as_ref().unwrap().covers(start, h.enabled_at));
        }
    }
    match s.phase() {
        Phase::Completed => prop_assert_eq!(s.status(StepKey::Complete), StepStatus::Done),
        Phase::RolledBack => {
            prop_assert_eq!(s.status(StepKey::RollbackComplete), StepStatus::Done)
        }
        _ => {}
    }
    Ok(())
}

/// Renumbers seqs so only the semantic order is under test.
fn renumber(mut events: Vec<Recorded>) -> Vec<Recorded> {
    for (i, e) in events.iter_mut().enumerate() {
        e.seq = i as u64 + 1;
    }
    events
}

fn is_step_event(e: &Event) -> bool {
    !matches!(e, Event::Note { .. } | Event::Attestation(_))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    #[test]
    fn random_walks_replay_to_the_incremental_state(
        plan in plans(),
        bytes in prop::collection::vec(any::<u8>(), 0..120),
    ) {
        let (rec, seen) = walk(plan, &bytes);
        for (n, state) in &seen {
            let replayed = replay(&rec.events[..*n]).unwrap();
            prop_assert_eq!(&replayed, state);
        }
        safety(&rec.state)?;
    }

    #[test]
    fn every_non_permitted_event_is_rejected(
        plan in plans(),
        bytes in prop::collection::vec(any::<u8>(), 0..120),
        stop in 0usize..400,
    ) {
        let (rec, seen) = walk(plan.clone(), &bytes);
        // Check the state at one point of the walk (all of them would be slow).
        let (n, _) = seen[stop % seen.len()];
        let mut at = Records::planned(plan);
        at.events = rec.events[..n].to_vec();
        at.state = replay(&at.events).unwrap();
        at.now = at.events.last().unwrap().at;
        exhaustive_rejections(&at)?;
    }

    #[test]
    fn reordered_dropped_or_repeated_events_are_rejected(
        plan in plans(),
        bytes in prop::collection::vec(any::<u8>(), 0..120),
        pick in any::<prop::sample::Index>(),
    ) {
        let (rec, _) = walk(plan, &bytes);
        let ev = &rec.events;
        let steps: Vec<usize> = (0..ev.len()).filter(|&i| is_step_event(&ev[i].event)).collect();
        prop_assume!(steps.len() >= 2);
        let i = steps[pick.index(steps.len() - 1)];
        // The next step event after i.
        let j = *steps.iter().find(|&&j| j > i).unwrap();

        let mut swapped = ev.clone();
        swapped.swap(i, j);
        prop_assert!(replay(&renumber(swapped)).is_err(), "swap {} {}", i, j);

        let mut dropped = ev.clone();
        dropped.remove(i);
        prop_assert!(replay(&renumber(dropped)).is_err(), "drop {}", i);

        let mut repeated = ev.clone();
        repeated.insert(i + 1, ev[i].clone());
        prop_assert!(replay(&renumber(repeated)).is_err(), "repeat {}", i);
    }
}
