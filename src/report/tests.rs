//! Unit tests of the report: whole runs built from events with fixed times (a completed
//! upgrade, a completed rollback, a run that failed mid-way), checked for the key figures
//! computed from the ledger, and the renderers checked for those figures and for escaping.

use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;

use super::*;
use crate::events::samples;
use crate::events::{
    Attestation, DumpArtifact, DumpCheck, Event, Finding, MetaDb, Plan, Recorded, Restored,
    StepFacts, StepKey, TableFact,
};
use crate::replay::{Phase, State};

const LEDGER: Uuid = Uuid::from_u128(0xfeed_0000_0000_0000_0000_0000_0000_0001);

/// 2024-05-01 at `h:m:s` UTC.
fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, h, m, s).unwrap()
}

/// A dump with realistic tables: per-database row counts the tests check.
fn dump_of(plan: &Plan, db: MetaDb) -> DumpArtifact {
    let tables: &[(&str, u64)] = match db {
        MetaDb::Rm => &[("oms_normal_config", 120), ("oms_resource", 35)],
        MetaDb::Cm => &[("cluster", 2), ("host", 1), ("task", 4000)],
        MetaDb::CmHb => &[("heatbeat_sequence", 1)],
    };
    DumpArtifact {
        db,
        database: plan.databases.get(db).to_string(),
        file: plan.dump_file(db),
        size: 10_000 * (db as u64 + 1),
        blake3_hex: blake3::hash(format!("dump of {db}").as_bytes())
            .to_hex()
            .to_string(),
        format: crate::events::FileFormat::Sql,
        compression: crate::events::Compression::None,
        dumper: crate::events::Dumper::Native,
        charset: "utf8mb4".into(),
        collation: "utf8mb4_bin".into(),
        tables: tables
            .iter()
            .map(|(name, rows)| TableFact {
                name: (*name).into(),
                rows: *rows,
                checksum: format!("{name}-sum"),
                method: crate::events::ChecksumMethod::Blake3Rows,
            })
            .collect(),
        views: vec![],
    }
}

/// Records a run event by event with explicit times, through `State::apply`, as the
/// journal would.
struct Fixture {
    plan: Plan,
    state: State,
    events: Vec<Recorded>,
}

impl Fixture {
    fn planned() -> Fixture {
        Self::planned_with(samples::plan())
    }

    fn planned_with(plan: Plan) -> Fixture {
        let mut f = Fixture {
            plan: plan.clone(),
            state: State::new(),
            events: vec![],
        };
        f.push(at(3, 58, 0), Event::planned(plan));
        f
    }

    fn push(&mut self, when: DateTime<Utc>, event: Event) {
        let r = Recorded {
            seq: self.events.len() as u64 + 1,
            at: when,
            operator: if when < at(4, 20, 0) { "alice" } else { "bob" }.into(),
            host: "ops-1".into(),
            run_id: self.plan.run_id,
            event,
        };
        self.state.apply(&r).expect("fixture events are legal");
        self.events.push(r);
    }

    fn facts(&self, key: StepKey, when: DateTime<Utc>) -> StepFacts {
        match key {
            StepKey::Dump { db } => StepFacts::DumpWritten(dump_of(&self.plan, db)),
            StepKey::RollbackVerifyDumps => StepFacts::DumpsVerified {
                checks: self
                    .state
                    .artifacts()
                    .iter()
                    .map(|a| DumpCheck {
                        db: a.db,
                        file: a.file.clone(),
                        found_blake3: Some(a.blake3_hex.clone()),
                        ok: true,
                    })
                    .collect(),
            },
            StepKey::Restore { db } => {
                let a = dump_of(&self.plan, db);
                StepFacts::Restored(Restored {
                    db,
                    database: a.database.clone(),
                    file: a.file.clone(),
                    verified_blake3: a.blake3_hex.clone(),
                    tables: a.tables.clone(),
                    tables_match: true,
                })
            }
            _ => samples::done_facts(&self.plan, key, when, self.state.downtime_start()),
        }
    }

    /// Intent at `from`, done at `to`.
    fn step(&mut self, key: StepKey, from: DateTime<Utc>, to: DateTime<Utc>) {
        // The fixtures are ledgers as written before `pre-stop-check` existed (straight
        // from `disable-ha` to `stop-old`): such ledgers must still replay and report.
        // Likewise before `drop-pruned-heartbeat` (issue 16): straight on to `complete`.
        let legacy = (key == StepKey::StopOldContainer && self.next() == StepKey::PreStopCheck)
            || (key == StepKey::Complete && self.next() == StepKey::DropPrunedHeartbeat);
        assert!(
            legacy || self.next() == key,
            "fixture runs steps in the permitted order: {} then {key}",
            self.next()
        );
        self.push(from, Event::StepIntent { key });
        let facts = self.facts(key, to);
        self.push(to, Event::StepDone { key, facts });
    }

    fn fail(&mut self, key: StepKey, from: DateTime<Utc>, to: DateTime<Utc>, retryable: bool) {
        self.push(from, Event::StepIntent { key });
        self.push(
            to,
            Event::StepFailed {
                key,
                error: format!("{key} broke"),
                retryable,
                facts: None,
                kind: FailureKind::Service,
            },
        );
    }

    fn next(&self) -> StepKey {
        self.state.permitted()[0].key()
    }

    /// Runs the permitted steps, each taking 10 s after a 5 s gap, until `stop` is next
    /// (or nothing is permitted).
    fn run_until(&mut self, stop: Option<StepKey>) {
        while !self.state.permitted().is_empty() && Some(self.next()) != stop {
            let now = self.events.last().unwrap().at;
            self.step(
                self.next(),
                now + Duration::seconds(5),
                now + Duration::seconds(15),
            );
        }
    }

    fn verification(&self) -> Verification {
        Verification {
            dumps: self
                .state
                .artifacts()
                .iter()
                .map(|a| DumpFileCheck {
                    db: a.db,
                    file: a.file.clone(),
                    present: true,
                    matches: true,
                    found_size: Some(a.size),
                    found_blake3: Some(a.blake3_hex.clone()),
                    error: None,
                })
                .collect(),
            ..verified(&self.events)
        }
    }

    fn report(&self) -> Report {
        build(&self.events, &self.state, self.verification())
    }
}

/// The upgrade up to and including the three dumps: T1 at 04:00:00.
fn through_dumps(f: &mut Fixture) {
    f.step(StepKey::DisableHa, at(3, 59, 0), at(3, 59, 1));
    f.step(StepKey::StopOldContainer, at(3, 59, 30), at(4, 0, 0));
    f.step(StepKey::PruneHeartbeat, at(4, 0, 5), at(4, 0, 6));
    f.step(StepKey::Dump { db: MetaDb::Rm }, at(4, 0, 10), at(4, 2, 10));
    f.step(StepKey::Dump { db: MetaDb::Cm }, at(4, 2, 15), at(4, 5, 15));
    f.step(
        StepKey::Dump { db: MetaDb::CmHb },
        at(4, 5, 20),
        at(4, 5, 50),
    );
}

/// The runbook's own example: stopped 4:00, HA back at 5:00, so 60 + 30 = 90.
fn completed() -> Fixture {
    let mut f = Fixture::planned();
    through_dumps(&mut f);
    f.step(StepKey::RenameOldContainer, at(4, 6, 0), at(4, 6, 1));
    f.step(StepKey::CreateNewContainer, at(4, 6, 5), at(4, 6, 8));
    f.step(StepKey::StartNewContainer, at(4, 6, 10), at(4, 6, 12));
    f.step(StepKey::RunDockerInit, at(4, 7, 0), at(4, 45, 0));
    f.step(StepKey::ConfirmHealth, at(4, 45, 5), at(4, 58, 0));
    f.step(StepKey::EnableHa, at(4, 59, 58), at(5, 0, 0));
    f.step(StepKey::Complete, at(5, 0, 1), at(5, 0, 1));
    f
}

fn step(r: &Report, key: StepKey) -> &StepRow {
    r.steps.iter().rev().find(|s| s.key == key).unwrap()
}

#[test]
fn completed_upgrade_key_figures() {
    let f = completed();
    let r = f.report();
    assert_eq!(r.outcome.phase, Phase::Completed);
    assert_eq!(
        r.outcome.summary,
        "The upgrade from 3.3.0 to 3.3.1 completed."
    );
    let t1 = r.times.t1.as_ref().unwrap();
    assert_eq!(t1.at, at(4, 0, 0));
    assert_eq!(t1.seq, 5);
    assert_eq!(
        t1.docker_finished_at,
        Some(at(4, 0, 0) - Duration::milliseconds(300))
    );
    assert_eq!(r.times.t2.as_ref().unwrap().at, at(5, 0, 0));
    assert!(r.times.t3.is_none());
    let d = r.times.downtime.as_ref().unwrap();
    assert_eq!((d.start, d.end), (at(4, 0, 0), Some(at(5, 0, 0))));
    assert_eq!(d.duration_ms, 3_600_000);
    assert_eq!(d.minutes_rounded_up, 60);
    assert_eq!(d.text, "1 h 0 min 0 s");
    assert!(!d.ongoing);
    assert_eq!(d.ended_by, "HA re-enabled (T2)");
    let refetch = r.ha.refetch.as_ref().unwrap();
    assert_eq!(
        (
            refetch.downtime_minutes,
            refetch.margin_minutes,
            refetch.interval_minutes
        ),
        (60, 30, Some(90))
    );
    assert!(refetch.reasoning.contains("60 + 30 = 90"));
    assert!(r.ha.warnings.is_empty());
    assert_eq!(r.ha.before_json.as_deref(), Some(samples::HA_ON));
    assert_eq!(
        r.ha.changed_keys
            .iter()
            .map(|k| k.key.as_str())
            .collect::<Vec<_>>(),
        ["refetchStoreIntervalMin"]
    );
    assert_eq!(r.ha.changes.len(), 2);

    // Every step once, with durations from its two records.
    assert_eq!(r.steps.len(), 13);
    assert_eq!(
        step(&r, StepKey::StopOldContainer).duration_ms,
        Some(30_000)
    );
    assert_eq!(step(&r, StepKey::StopOldContainer).marks, ["T1"]);
    assert_eq!(step(&r, StepKey::EnableHa).marks, ["T2"]);
    assert_eq!(
        step(&r, StepKey::Dump { db: MetaDb::Cm }).duration_ms,
        Some(180_000)
    );
    assert_eq!(
        step(&r, StepKey::RunDockerInit).duration_ms,
        Some(38 * 60_000)
    );
    assert!(r.steps.iter().all(|s| s.result == StepResult::Done));

    // Dumps: checksums and row counts as recorded.
    assert_eq!(r.dumps.len(), 3);
    let rows: Vec<u64> = r.dumps.iter().map(|d| d.total_rows).collect();
    assert_eq!(rows, [155, 4003, 1]);
    assert_eq!(
        r.dumps[0].blake3,
        blake3::hash(b"dump of rm").to_hex().to_string()
    );
    assert_eq!(r.dumps[2].recorded_at, Some(at(4, 5, 50)));
    assert!(
        r.dumps
            .iter()
            .all(|d| d.file_check.as_ref().unwrap().matches)
    );

    // Containers: the binds proof, both sides.
    let new = r.containers.new.as_ref().unwrap();
    assert!(new.binds_equal_to_old);
    assert!(new.env.contains(&"IS_UPGRADE=true".to_string()));
    assert_eq!(r.containers.binds.len(), 4);
    assert!(r.containers.binds.iter().all(|b| b.old && b.new));
    let old = r.containers.old.as_ref().unwrap();
    assert!(old.env.contains(&"OMS_META_PASSWORD=***".to_string()));
    assert_eq!(r.containers.renames.len(), 1);
    assert_eq!(r.containers.renames[0].to, "oms-pre-3.3.1");

    assert_eq!(r.run.operators, ["alice", "bob"]);
    assert_eq!(r.run.hosts, ["ops-1"]);
    assert_eq!(r.run.planned_by.as_deref(), Some("alice"));
    assert_eq!(
        r.plan.as_ref().unwrap().target_image,
        "oms:feature_3.3.1_ce"
    );
    assert!(r.failures.is_empty() && r.retries.is_empty() && r.in_doubt.is_empty());
    assert!(r.verification.ok, "{:?}", r.verification.findings);
}

#[test]
fn completed_upgrade_renders_its_figures() {
    let r = completed().report();
    let md = to_markdown(&r);
    for needle in [
        "# OMS upgrade 3.3.0 → 3.3.1: completed",
        "**VERIFIED: chain intact (27 records, head seq 27)",
        "| T1 | 2024-05-01 04:00:00 UTC (stop-old, seq 5)",
        "| T2 | 2024-05-01 05:00:00 UTC (enable-ha, seq 25)",
        "| Downtime | 1 h 0 min 0 s (60 min rounded up)",
        "refetchStoreIntervalMin = 90 (downtime 60 min + margin 30 min)",
        blake3::hash(b"dump of cm").to_hex().as_ref(),
        "| `task` | 4000 |",
        &"ab".repeat(32),
        "| `dump-cm` Dump cm database | 1 | 04:02:15 | 04:05:15 | 3 min 0 s | done |",
    ] {
        assert!(md.contains(needle), "markdown lacks {needle:?}:\n{md}");
    }
    let html = to_html(&r);
    for needle in [
        "<div class=\"v\" id=\"t1\">2024-05-01 04:00:00 UTC</div>",
        "<div class=\"v\" id=\"t2\">2024-05-01 05:00:00 UTC</div>",
        "<div class=\"v\" id=\"downtime\">1 h 0 min 0 s</div>",
        "<div class=\"v\" id=\"refetch\">90 min</div>",
        "<svg xmlns=\"http://www.w3.org/2000/svg\"",
        ">T1 04:00:00</text>",
        ">T2 05:00:00</text>",
        blake3::hash(b"dump of cm_hb").to_hex().as_ref(),
        &format!("<code id=\"head-hash\">{}</code>", "ab".repeat(32)),
    ] {
        assert!(html.contains(needle), "html lacks {needle:?}");
    }
    assert!(html.contains("<header class=\"banner ok\">"));
    // Self-contained: no script, no external resource.
    let lower = html.to_lowercase();
    for banned in ["<script", "src=", "href=", "@import", "url("] {
        assert!(!lower.contains(banned), "html contains {banned}");
    }
}

/// docker_init.sh fails for good at 04:30; the rollback starts at 04:31 and each of its
/// steps takes 10 s after a 5 s gap.
fn rolled_back() -> Fixture {
    let mut f = Fixture::planned();
    through_dumps(&mut f);
    f.step(StepKey::RenameOldContainer, at(4, 6, 0), at(4, 6, 1));
    f.step(StepKey::CreateNewContainer, at(4, 6, 5), at(4, 6, 8));
    f.step(StepKey::StartNewContainer, at(4, 6, 10), at(4, 6, 12));
    f.fail(StepKey::RunDockerInit, at(4, 7, 0), at(4, 30, 0), false);
    f.push(
        at(4, 31, 0),
        Event::RollbackRequested {
            reason: "docker_init.sh failed".into(),
        },
    );
    f.run_until(None);
    f
}

#[test]
fn completed_rollback_key_figures() {
    let f = rolled_back();
    let r = f.report();
    assert_eq!(r.outcome.phase, Phase::RolledBack);
    assert_eq!(
        r.outcome.summary,
        "The upgrade from 3.3.0 to 3.3.1 was rolled back (reason: docker_init.sh failed)."
    );
    let rb = r.rollback.as_ref().unwrap();
    assert!(rb.completed);
    assert_eq!(rb.from_phase, Phase::UpgradeFailed);
    assert_eq!(rb.steps.first(), Some(&StepKey::RollbackVerifyDumps));
    // The rollback's steps run back to back from 04:31:00: the second (stop-new) is T3.
    assert_eq!(rb.steps[1], StepKey::StopNewContainer);
    assert_eq!(r.times.t1.as_ref().unwrap().at, at(4, 0, 0));
    assert!(r.times.t2.is_none());
    let t3 = r.times.t3.as_ref().unwrap();
    assert_eq!(t3.at, at(4, 31, 30));
    assert_eq!(step(&r, StepKey::StopNewContainer).marks, ["T3"]);
    // HA comes back with the rollback's 13th step, at 04:31:00 + 13 * 15 s = 04:34:15,
    // so the downtime runs from T1 to then: the restored databases are at T1.
    let enable = step(&r, StepKey::RollbackEnableHa);
    assert_eq!(enable.ended_at, Some(at(4, 34, 15)));
    let d = r.times.downtime.as_ref().unwrap();
    assert_eq!(d.end, Some(at(4, 34, 15)));
    assert_eq!(d.duration_ms, (34 * 60 + 15) * 1000);
    assert_eq!(d.minutes_rounded_up, 35);
    assert_eq!(d.ended_by, "HA re-enabled by the rollback");
    let refetch = r.ha.refetch.as_ref().unwrap();
    assert_eq!(refetch.t1, at(4, 0, 0));
    assert_eq!(refetch.interval_minutes, Some(35 + 30));
    assert_eq!(r.ha.changes.len(), 2, "disable-ha and rollback-enable-ha");

    // The failure that caused it, and every dump re-hashed and restored with its checksum.
    assert_eq!(r.failures.len(), 1);
    assert_eq!(r.failures[0].key, StepKey::RunDockerInit);
    assert!(!r.failures[0].retryable);
    for d in &r.dumps {
        assert!(d.rollback_check.as_ref().unwrap().ok);
        let rs = d.restore.as_ref().unwrap();
        assert_eq!(rs.verified_blake3, d.blake3);
        assert!(rs.tables_match);
        assert_eq!(rs.tables, d.tables);
    }
    assert_eq!(r.containers.renames.len(), 3);
    assert_eq!(
        r.steps.iter().filter(|s| s.rollback).count(),
        rb.steps.len()
    );

    let md = to_markdown(&r);
    assert!(md.contains("| T3 | 2024-05-01 04:31:30 UTC (rollback-stop-new"));
    assert!(md.contains("| Downtime | 34 min 15 s (35 min rounded up)"));
    assert!(md.contains("**Rollback** requested at 2024-05-01 04:31:00 UTC"));
    let html = to_html(&r);
    assert!(html.contains("<div class=\"v\" id=\"t3\">2024-05-01 04:31:30 UTC</div>"));
    assert!(html.contains(">T3 04:31:30</text>"));
    assert!(html.contains("<header class=\"banner neutral\">"));
    assert!(html.contains("<div class=\"v\" id=\"refetch\">65 min</div>"));
}

/// A run that fails mid-way: the process died during the prune (reconciled as done on
/// resume), `dump-cm` failed once and was retried, docker_init.sh failed for good, and
/// nobody has rolled back yet.
fn failed_mid_way() -> Fixture {
    let mut f = Fixture::planned();
    f.step(StepKey::DisableHa, at(3, 59, 0), at(3, 59, 1));
    f.step(StepKey::StopOldContainer, at(3, 59, 30), at(4, 0, 0));
    f.push(
        at(4, 0, 5),
        Event::StepIntent {
            key: StepKey::PruneHeartbeat,
        },
    );
    f.push(
        at(4, 3, 0),
        Event::StepReconciled {
            key: StepKey::PruneHeartbeat,
            finding: Finding::Done(Box::new(StepFacts::HeartbeatPruned {
                max_id: Some(77),
                rows_deleted: 0,
                batches: None,
                batch_rows: None,
                warning: None,
            })),
            evidence: "heatbeat_sequence holds only max(id) 77".into(),
        },
    );
    f.step(StepKey::Dump { db: MetaDb::Rm }, at(4, 3, 5), at(4, 5, 5));
    f.fail(
        StepKey::Dump { db: MetaDb::Cm },
        at(4, 5, 10),
        at(4, 5, 40),
        true,
    );
    f.step(StepKey::Dump { db: MetaDb::Cm }, at(4, 6, 0), at(4, 9, 0));
    f.step(
        StepKey::Dump { db: MetaDb::CmHb },
        at(4, 9, 5),
        at(4, 9, 35),
    );
    f.step(StepKey::RenameOldContainer, at(4, 10, 0), at(4, 10, 1));
    f.step(StepKey::CreateNewContainer, at(4, 10, 5), at(4, 10, 8));
    f.step(StepKey::StartNewContainer, at(4, 10, 10), at(4, 10, 12));
    f.fail(StepKey::RunDockerInit, at(4, 12, 0), at(4, 40, 0), false);
    f.push(
        at(4, 41, 0),
        Event::Note {
            text: "paged the DBA on call <b>now</b> | CHG-42".into(),
        },
    );
    f.push(
        at(4, 42, 0),
        Event::Attestation(Attestation {
            by: "carol".into(),
            statement: "OMS console shows no running project".into(),
            step: None,
            observed_at: Some(at(4, 41, 30)),
        }),
    );
    f
}

#[test]
fn failed_run_key_figures() {
    let f = failed_mid_way();
    let r = f.report();
    assert_eq!(r.outcome.phase, Phase::UpgradeFailed);
    assert_eq!(
        r.outcome.summary,
        "The upgrade from 3.3.0 to 3.3.1 failed at step docker-init (docker-init broke) and was not rolled back."
    );
    assert_eq!(r.times.t1.as_ref().unwrap().at, at(4, 0, 0));
    assert!(r.times.t2.is_none() && r.times.t3.is_none());
    // Still down: measured to the last record (04:42:00), never to the clock.
    let d = r.times.downtime.as_ref().unwrap();
    assert!(d.ongoing);
    assert_eq!(d.end, None);
    assert_eq!(d.measured_to, at(4, 42, 0));
    assert_eq!(d.duration_ms, 42 * 60_000);
    assert_eq!(d.minutes_rounded_up, 42);
    assert!(r.ha.refetch.is_none());
    assert!(r.ha.after_json.is_none());

    assert_eq!(r.failures.len(), 2);
    assert_eq!(r.failures[0].key, StepKey::Dump { db: MetaDb::Cm });
    assert!(r.failures[0].retryable);
    assert_eq!(r.failures[1].key, StepKey::RunDockerInit);
    assert_eq!(r.retries.len(), 1);
    assert_eq!(r.retries[0].attempt, 2);
    assert_eq!(r.retries[0].after, StepResult::Failed);
    assert_eq!(r.retries[0].result, StepResult::Done);
    assert_eq!(r.in_doubt.len(), 1);
    assert_eq!(r.in_doubt[0].result, StepResult::ReconciledDone);
    assert_eq!(r.in_doubt[0].resolved_at, Some(at(4, 3, 0)));
    assert_eq!(step(&r, StepKey::PruneHeartbeat).duration_ms, Some(175_000));
    assert_eq!(step(&r, StepKey::RunDockerInit).result, StepResult::Failed);
    assert_eq!(r.dumps.len(), 3);
    assert_eq!(r.dumps[1].total_rows, 4003);
    assert_eq!(r.notes.len(), 1);
    assert_eq!(r.attestations.len(), 1);
    assert_eq!(r.attestations[0].by, "carol");
    assert!(r.rollback.is_none());

    let md = to_markdown(&r);
    assert!(md.contains("| Downtime | 42 min 0 s (42 min rounded up): 2024-05-01 04:00:00 UTC to ongoing at the last record, 2024-05-01 04:42:00 UTC"));
    assert!(
        md.contains("| `dump-cm` | 1 | 2024-05-01 04:05:40 UTC | yes | service | dump-cm broke |")
    );
    assert!(md.contains("**failed**"));
    // Pipes in free text stay inside their cell.
    assert!(md.contains("paged the DBA on call <b>now</b> \\| CHG-42"));
    let html = to_html(&r);
    assert!(html.contains("<header class=\"banner bad\">"));
    assert!(html.contains("paged the DBA on call &lt;b&gt;now&lt;/b&gt; | CHG-42"));
    assert!(!html.contains("<b>now</b>"));
    assert!(html.contains("(ongoing at the last record)"));
}

#[test]
fn the_report_is_the_same_for_the_same_ledger() {
    let f = failed_mid_way();
    assert_eq!(f.report(), f.report());
    assert_eq!(to_html(&f.report()), to_html(&f.report()));
}

#[test]
fn a_broken_chain_or_a_missing_dump_is_not_verified() {
    let f = completed();
    let mut v = f.verification();
    v.chain_intact = false;
    v.problem = Some(ChainProblem {
        seq: 7,
        kind: "hash_mismatch".into(),
        detail: "stored hash differs".into(),
    });
    v.records_verified = 6;
    v.head_seq = Some(6);
    v.dumps[1].present = false;
    v.dumps[1].matches = false;
    v.dumps[1].error = Some("No such file or directory".into());
    v.anchor = Some(AnchorCheck {
        seq: 29,
        head: "cd".repeat(32),
        matched: false,
    });
    let r = build(&f.events, &f.state, v);
    assert!(!r.verification.ok);
    assert!(!r.verification.dumps_ok);
    assert_eq!(
        r.verification.findings.len(),
        3,
        "{:?}",
        r.verification.findings
    );
    assert!(r.verification.findings[0].contains("hash_mismatch at seq 7"));
    let md = to_markdown(&r);
    assert!(md.contains("**NOT VERIFIED: CHAIN BROKEN at seq 7 (hash_mismatch); checkpoint at seq 29 NOT matched; dumps 2/3 present and matching**"));
    assert!(md.contains("**MISSING**"));
    let html = to_html(&r);
    assert!(html.contains("<header class=\"banner bad\">"));
}

#[test]
fn a_report_covering_more_than_was_verified_says_so() {
    let f = completed();
    let mut v = f.verification();
    v.head_seq = Some(3);
    let r = build(&f.events, &f.state, v);
    assert!(!r.verification.ok);
    assert!(r.verification.findings[0].contains("up to seq 27 but the verified head is seq 3"));
}

#[test]
fn json_keeps_exact_values() {
    let r = completed().report();
    let j = to_json(&r);
    assert_eq!(j["format"], "oms-upgrade-report");
    assert_eq!(j["version"], 1);
    assert_eq!(j["outcome"]["phase"], "completed");
    assert_eq!(j["times"]["t1"]["at"], "2024-05-01T04:00:00Z");
    assert_eq!(j["times"]["downtime"]["duration_ms"], 3_600_000);
    assert_eq!(j["ha"]["refetch"]["interval_minutes"], 90);
    assert_eq!(j["steps"][1]["key"], "stop-old");
    assert_eq!(j["steps"][1]["result"], "done");
    assert_eq!(j["dumps"][2]["db"], "cm_hb");
    assert_eq!(j["dumps"][1]["tables"][2]["rows"], 4000);
    assert_eq!(j["verification"]["ok"], true);
    assert_eq!(j["verification"]["head_hash"], "ab".repeat(32));
    assert_eq!(j["run"]["ledger_id"], LEDGER.to_string());
}

#[test]
fn preflight_only_ledger_reports_no_plan() {
    let run_id = Uuid::from_u128(9);
    let r = Recorded {
        seq: 1,
        at: at(3, 0, 0),
        operator: "alice".into(),
        host: "ops-1".into(),
        run_id,
        event: Event::PreflightFailed {
            checks: vec![crate::events::PreflightCheck {
                name: "target-image-present".into(),
                ok: false,
                detail: "load the image with docker load".into(),
            }],
        },
    };
    let state = crate::replay::replay(std::slice::from_ref(&r)).unwrap();
    let report = build(
        std::slice::from_ref(&r),
        &state,
        Verification {
            ledger_id: LEDGER,
            chain_intact: true,
            records_verified: 1,
            head_seq: Some(1),
            head_hash: Some("00".repeat(32)),
            problem: None,
            anchor: None,
            dumps: vec![],
        },
    );
    assert_eq!(report.outcome.phase, Phase::NotPlanned);
    assert!(report.plan.is_none() && report.times.downtime.is_none());
    assert_eq!(report.preflight_failures[0].failed.len(), 1);
    let md = to_markdown(&report);
    assert!(md.contains("target-image-present: load the image with docker load"));
    assert!(to_html(&report).contains("No step was run."));
}

#[test]
fn schema_names_every_step_and_top_level_field() {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../ledger-schema/report.schema.json")).unwrap();
    let names: Vec<String> = StepKey::all().iter().map(|k| k.to_string()).collect();
    let listed: Vec<String> = schema["$defs"]["step_key"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, names, "report.schema.json step_key is out of date");
    let j = to_json(&completed().report());
    let mut fields: Vec<&String> = j.as_object().unwrap().keys().collect();
    let mut required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    fields.sort();
    required.sort();
    assert_eq!(fields, required);
}

/// issue 16: a plan with a downtime estimate gets "Estimate against actual", each part's
/// actual taken from the recorded steps and the window's from T1 -> T2; the same run under
/// a plan recorded before issue 16 (no estimate) has no such section, in any form.
#[test]
fn the_estimate_is_set_against_the_recorded_run() {
    use crate::estimate::{DbMeasure, ReadProbe, estimate};
    let old = completed().report();
    assert!(old.estimate.is_none());
    assert!(!to_markdown(&old).contains("Estimate against actual"));
    assert!(!to_html(&old).contains("Estimate against actual"));
    assert!(to_json(&old).get("estimate").is_none());

    let mut plan = samples::plan();
    let e = estimate(
        vec![DbMeasure {
            name: "drc_cm_db".into(),
            tables: 9,
            rows: 4_000,
            data_bytes: 100_000_000,
            index_bytes: 1_000_000,
        }],
        // The heartbeat table's 20,000 rows: 100 ms of prune assumed.
        ("drc_cm_heartbeat_db", 20_000),
        // 1 MB/s: 100 s of dump estimated.
        Some(ReadProbe {
            table: "drc_cm_db.task".into(),
            bytes: 1_000_000,
            rows: 400,
            micros: 1_000_000,
        }),
        3,
    );
    plan.ext
        .push(crate::events::PlanExt::Estimate(Box::new(e.clone())));
    let fresh = completed();
    // The same steps at the same times as `completed`.
    let mut g = Fixture::planned_with(plan);
    for r in fresh.events.iter().skip(1) {
        g.push(r.at, r.event.clone());
    }
    let r = g.report();
    let s = r.estimate.as_ref().expect("an estimate section");
    let got: Vec<(&str, u64, &str, Option<i64>)> = s
        .rows
        .iter()
        .map(|row| (row.part, row.estimated_ms, row.basis, row.actual_ms))
        .collect();
    let window = r.times.downtime.as_ref().unwrap().duration_ms;
    assert_eq!(
        got,
        vec![
            // prune-heartbeat 04:00:05 -> 04:00:06.
            ("prune", 100, "assumed", Some(1_000)),
            // 04:00:10 (first dump's intent) to 04:05:50 (last dump done).
            ("dump", 100_000, "measured", Some(340_000)),
            // create 3 s + start 2 s.
            ("container", 5_000, "assumed", Some(5_000)),
            ("docker_init", 180_000, "assumed", Some(2_280_000)),
            // confirm-health 04:45:05 -> 04:58:00.
            ("oms_startup", 60_000, "assumed", Some(775_000)),
            ("window", e.total_ms(), "assumed", Some(window)),
        ]
    );
    let md = to_markdown(&r);
    assert!(md.contains("## Estimate against actual"), "{md}");
    assert!(
        md.contains("| dumps | 1 min 40 s | measured | 5 min 40 s | +4 min 00 s (3.40x) |"),
        "{md}"
    );
    assert!(md.contains("976.6 KiB/s"), "{md}");
    let html = to_html(&r);
    assert!(html.contains("<section id=\"estimate\">"), "{html}");
    assert_eq!(to_json(&r)["estimate"]["rows"][1]["actual_ms"], 340_000);
}

#[test]
fn an_anchor_is_matched_only_when_the_walk_reached_it() {
    use crate::ledger::{Anchor, Hash, Problem, ProblemKind, VerifyReport};
    let anchor = Anchor {
        ledger_id: LEDGER,
        seq: 10,
        head: Hash([7; 32]),
    };
    let report = |problem: Option<(u64, ProblemKind)>| VerifyReport {
        ledger_id: LEDGER,
        records: 20,
        head: Some((20, Hash([9; 32]))),
        anchor: Some(anchor),
        payloads_checked: true,
        problem: problem.map(|(seq, kind)| Problem {
            seq,
            kind,
            detail: String::new(),
        }),
    };
    let matched = |p| {
        Verification::from_verify_report(&report(p), vec![])
            .anchor
            .unwrap()
            .matched
    };
    assert!(matched(None));
    assert!(matched(Some((15, ProblemKind::HashMismatch))));
    assert!(!matched(Some((5, ProblemKind::HashMismatch))));
    assert!(!matched(Some((10, ProblemKind::HeadMismatchAnchor))));
    assert!(!matched(Some((20, ProblemKind::TailShorterThanAnchor))));
    let v = Verification::from_verify_report(&report(None), vec![]);
    assert_eq!(v.head_hash, Some("09".repeat(32)));
    assert_eq!(v.anchor.unwrap().head, "07".repeat(32));
}

/// A 3-node deployment over 2 regions, recorded with the core's builder: node 2 stops
/// first, then node 0, then node 1; everything else in the procedure's order.
fn deployment() -> crate::replay::build::Records {
    use crate::events::NodeIx;
    let mut r = crate::replay::build::Records::planned(
        crate::replay::build::Records::deployment_plan(3, 2),
    );
    r.step_ok(StepKey::DisableHa);
    for n in [NodeIx(2), NodeIx(0), NodeIx(1)] {
        r.step_ok(StepKey::PreStopCheck.on_node(n));
        r.step_ok(StepKey::StopOldContainer.on_node(n));
    }
    r.finish();
    r
}

/// An intact chain covering every record, no checkpoint, no dump checked.
fn verified(events: &[Recorded]) -> Verification {
    let n = events.len() as u64;
    Verification {
        ledger_id: LEDGER,
        chain_intact: true,
        records_verified: n,
        head_seq: Some(n),
        head_hash: Some("ab".repeat(32)),
        problem: None,
        anchor: None,
        dumps: vec![],
    }
}

/// Issue 15: T1 is the first stop of ANY node, and only that stop carries the T1 mark; the
/// downtime starts there.
#[test]
fn t1_and_its_mark_are_the_first_stop_of_any_node() {
    use crate::events::NodeIx;
    let d = deployment();
    assert_eq!(d.state.phase(), Phase::Completed);
    let r = build(&d.events, &d.state, verified(&d.events));
    let first = StepKey::StopOldContainer.on_node(NodeIx(2));
    let t1 = r.times.t1.as_ref().expect("T1");
    assert_eq!(t1.step, first, "T1 is node 2's stop, the first of any node");
    let stopped_at = match d.state.facts(first) {
        Some(StepFacts::ContainerStopped(c)) => c.t(),
        other => panic!("no stop facts: {other:?}"),
    };
    assert_eq!(t1.at, stopped_at);
    assert_eq!(r.times.downtime.as_ref().unwrap().start, stopped_at);
    let marked: Vec<StepKey> = r
        .steps
        .iter()
        .filter(|s| s.marks.contains(&"T1"))
        .map(|s| s.key)
        .collect();
    assert_eq!(marked, [first]);
    assert_eq!(r.times.t2.as_ref().unwrap().step, StepKey::EnableHa);
}

/// Issue 15: one lane per node (label, region, host IP, endpoint, containers, health, init)
/// beside the deployment-wide lane, in every form of the report.
#[test]
fn a_deployment_has_one_lane_per_node() {
    use crate::events::NodeIx;
    let d = deployment();
    let r = build(&d.events, &d.state, verified(&d.events));
    let labels: Vec<(u8, &str, &str, &str)> = r
        .nodes
        .iter()
        .map(|n| {
            (
                n.node,
                n.label.as_str(),
                n.region_name.as_str(),
                n.endpoint.as_str(),
            )
        })
        .collect();
    assert_eq!(
        labels,
        [
            (0, "oms-a", "region-0", "local"),
            (1, "oms-b", "region-1", "ssh://root@10.0.0.6"),
            (2, "oms-c", "region-0", "ssh://root@10.0.0.7"),
        ]
    );
    assert_eq!(r.nodes[2].host_ip, "10.0.0.7");
    assert_eq!(r.nodes[2].old_container.id, "old2");
    assert!(r.nodes[2].first_stopped && !r.nodes[0].first_stopped);
    assert!(r.nodes.iter().all(|n| n.new_container.is_some()));
    assert!(
        r.nodes
            .iter()
            .all(|n| n.health.as_ref().is_some_and(|h| h.healthy))
    );
    // docker_init.sh ran once per region: on each region's first node.
    assert!(matches!(r.nodes[0].init, InitOnNode::Ran { .. }));
    assert!(matches!(r.nodes[1].init, InitOnNode::Ran { .. }));
    assert_eq!(r.nodes[2].init, InitOnNode::NotOnThisNode);

    // Every attempt is in its node's lane; deployment-wide and region steps in none.
    for s in &r.steps {
        assert_eq!(s.node, s.key.node().map(|n| n.0), "{}", s.key);
    }
    let lane = |n: Option<u8>| -> Vec<String> {
        r.steps
            .iter()
            .filter(|s| s.node == n)
            .map(|s| s.key.to_string())
            .collect()
    };
    assert!(lane(Some(1)).iter().all(|k| k.starts_with("node1:")));
    assert!(lane(Some(0)).contains(&"stop-old".to_string()));
    let shared = lane(None);
    for k in [
        "disable-ha",
        "dump-rm",
        "region1:dump-cm_hb",
        "enable-ha",
        "complete",
    ] {
        assert!(
            shared.contains(&k.to_string()),
            "{k} not shared: {shared:?}"
        );
    }

    let lacks = |doc: &str, wants: &[&'static str]| -> Vec<&'static str> {
        wants.iter().copied().filter(|w| !doc.contains(w)).collect()
    };
    let md = to_markdown(&r);
    let missing = lacks(
        &md,
        &[
            "### Deployment-wide",
            "### Node 0: oms-a (region region-0, 10.0.0.5, local)",
            "### Node 2: oms-c (region region-0, 10.0.0.7, ssh://root@10.0.0.7)",
            "## Nodes",
            "| 2 oms-c | region-0 | `10.0.0.7` | `ssh://root@10.0.0.7` | `oms` (`old2`)",
            "(**T1**, first of any node)",
            "| not on this node (its region's config is shared) |",
        ],
    );
    assert!(missing.is_empty(), "markdown lacks {missing:?}:\n{md}");
    let html = to_html(&r);
    let missing = lacks(
        &html,
        &[
            "id=\"lane-shared\"",
            "id=\"lane-node2\"",
            "<section id=\"nodes\">",
            "<tr id=\"node2\"><td>2 oms-c</td><td>region-0</td>",
            "<span class=\"mark\">T1</span> first of any node",
            ">node 2 oms-c (10.0.0.7)</text>",
        ],
    );
    assert!(missing.is_empty(), "html lacks {missing:?}");
    let j = to_json(&r);
    assert_eq!(j["nodes"][1]["endpoint"], "ssh://root@10.0.0.6");
    assert_eq!(j["nodes"][2]["init"]["state"], "not_on_this_node");
    assert_eq!(j["times"]["t1"]["step"], "node2:stop-old");
    let first_stop = r
        .steps
        .iter()
        .position(|s| s.key == StepKey::StopOldContainer.on_node(NodeIx(2)))
        .unwrap();
    assert_eq!(j["steps"][first_stop]["node"], 2);
}

/// A single-node report has no lanes: no `nodes`, no `node` on its steps.
#[test]
fn a_single_node_report_has_no_lanes() {
    let r = completed().report();
    assert!(r.nodes.is_empty() && r.steps.iter().all(|s| s.node.is_none()));
    let j = to_json(&r);
    assert!(j.get("nodes").is_none() && j["steps"][0].get("node").is_none());
}

/// Issue 15: a crash inside a stage leaves one open step per node lane; the summary names
/// them all, and each is in its node's lane as in doubt.
#[test]
fn every_open_step_of_a_stage_is_named_in_doubt() {
    use crate::events::NodeIx;
    let mut d = crate::replay::build::Records::planned(
        crate::replay::build::Records::deployment_plan(3, 2),
    );
    d.step_ok(StepKey::DisableHa);
    for n in [NodeIx(0), NodeIx(1)] {
        d.step_ok(StepKey::PreStopCheck.on_node(n));
        d.intent(StepKey::StopOldContainer.on_node(n)).unwrap();
    }
    let r = build(&d.events, &d.state, verified(&d.events));
    assert!(
        r.outcome
            .summary
            .ends_with("steps stop-old, node1:stop-old are in doubt (intent without outcome)."),
        "{}",
        r.outcome.summary
    );
    let open: Vec<(Option<u8>, StepResult)> = r
        .steps
        .iter()
        .filter(|s| s.result == StepResult::InDoubt)
        .map(|s| (s.node, s.result))
        .collect();
    assert_eq!(
        open,
        [
            (Some(0), StepResult::InDoubt),
            (Some(1), StepResult::InDoubt)
        ]
    );
    // No stop has an outcome yet: the downtime is counted from the first stop intent.
    assert!(r.times.t1.is_none());
    assert_eq!(
        r.times.downtime.as_ref().unwrap().start,
        r.steps
            .iter()
            .find(|s| s.key == StepKey::StopOldContainer)
            .unwrap()
            .started_at
    );
}

/// A prune by table swap (no DELETE, rows gone) says so instead of "0 batch(es)".
#[test]
fn a_swapped_prune_is_named_as_such() {
    let line = |batches| {
        super::text::facts(&StepFacts::HeartbeatPruned {
            max_id: Some(3_160_001),
            rows_deleted: 3_160_000,
            batches,
            batch_rows: Some(10_000),
            warning: None,
        })
    };
    assert_eq!(
        line(Some(0)),
        "kept max(id) 3160001; 3160000 rows deleted by a table swap (the newest row kept in a new table)"
    );
    assert!(line(Some(316)).ends_with("in 316 batch(es) of at most 10000 rows"));
}
