//! The fleet check over a [`MemoryWitness`]: intact ledgers, a tampered row, a hash column
//! that lies, a fork, truncation at the witness, and a consistent rewrite that only the
//! state file catches.

use uuid::Uuid;

use super::*;
use crate::events::{self, samples};
use crate::ledger::record::{NewRecord, encode};
use crate::replay::build::Records;
use crate::witness::MemoryWitness;

/// The records of a completed sample run as the ledger `ledger_id` would store them, with
/// `operator` on every record (a consistent rewrite changes it and re-hashes).
fn stored_run(ledger_id: Uuid, operator: &str, rollback: bool) -> Vec<Record> {
    let mut run = Records::planned(samples::plan());
    run.finish();
    if rollback {
        run.rollback().unwrap();
        run.finish();
    }
    let mut prev = Hash::ZERO;
    run.events
        .iter()
        .map(|r| {
            let enc = events::encode(&r.event);
            let (stored, hash) = encode(
                r.seq,
                ledger_id,
                prev,
                &NewRecord {
                    timestamp_micros: r.at.timestamp_micros(),
                    operator,
                    host: &r.host,
                    run_id: r.run_id,
                    event_type: enc.event_type,
                    schema_version: enc.schema_version,
                    payload: &enc.payload,
                },
            )
            .unwrap();
            prev = hash;
            Record::parse(&stored).unwrap()
        })
        .collect()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn fleet_of(w: &MemoryWitness) -> (Vec<LedgerRows>, FleetCheck) {
    let rows = rt().block_on(read_witness(w)).unwrap();
    let check = check_fleet(&rows);
    (rows, check)
}

const A: Uuid = Uuid::from_u128(0xa);
const B: Uuid = Uuid::from_u128(0xb);

/// A witness holding an upgraded ledger A (node-a) and a rolled-back ledger B (node-b).
fn two_ledgers() -> (MemoryWitness, Vec<Record>, Vec<Record>) {
    let w = MemoryWitness::new();
    let a = stored_run(A, "alice", false);
    let b = stored_run(B, "bob", true);
    rt().block_on(w.push("node-a", &a)).unwrap();
    rt().block_on(w.push("node-b", &b)).unwrap();
    (w, a, b)
}

fn ledger(f: &FleetCheck, id: Uuid) -> &LedgerCheck {
    f.ledgers.iter().find(|l| l.ledger_id == id).unwrap()
}

#[test]
fn intact_ledgers_verify_and_are_summarised_from_the_rows_alone() {
    let (w, a, b) = two_ledgers();
    let (_, f) = fleet_of(&w);
    assert!(f.ok(), "{f:#?}");
    let la = ledger(&f, A);
    assert_eq!(la.node, "node-a");
    assert_eq!(la.verified, a.len() as u64);
    assert_eq!(la.head_hash, Some(a.last().unwrap().hash.to_hex()));
    let s = la.summary.as_ref().unwrap();
    assert_eq!(s.phase, Phase::Completed);
    let plan = samples::plan();
    assert_eq!(
        s.source_version.as_deref(),
        Some(plan.source_version.to_string().as_str())
    );
    assert_eq!(
        s.target_version.as_deref(),
        Some(plan.target_version.to_string().as_str())
    );
    assert!(s.t1.is_some() && s.t2.is_some() && s.t3.is_none());
    assert!(s.downtime.as_ref().is_some_and(|d| !d.ongoing));
    assert_eq!(s.planned_by.as_deref(), Some("alice"));
    let lb = ledger(&f, B);
    assert_eq!(lb.verified, b.len() as u64);
    assert_eq!(lb.summary.as_ref().unwrap().phase, Phase::RolledBack);
    assert!(lb.summary.as_ref().unwrap().t3.is_some());
    // Every form names both ledgers and the verdict.
    let md = render::to_markdown(&f, "mysql://w@h:1/d");
    let html = render::to_html(&f, "mysql://w@h:1/d");
    let table = render::to_table(&f);
    for doc in [&md, &html, &table] {
        assert!(doc.contains("node-a") && doc.contains("node-b"), "{doc}");
        assert!(doc.contains("all verified"), "{doc}");
    }
    let j = render::to_json(&f, "mysql://w@h:1/d");
    assert_eq!(j["ok"], true);
    assert_eq!(j["ledgers"][0]["summary"]["phase"], "completed");
}

#[test]
fn a_row_altered_at_the_witness_is_named() {
    let (w, a, _) = two_ledgers();
    let mut bytes = a[3].stored.clone();
    bytes[90] ^= 1;
    assert!(w.tamper(A, 4, bytes));
    let (_, f) = fleet_of(&w);
    assert!(!f.ok());
    let la = ledger(&f, A);
    let p = la.problem.as_ref().unwrap();
    assert_eq!((p.seq, p.kind.as_str()), (4, "hash_mismatch"), "{p:?}");
    assert_eq!(la.verified, 3);
    assert!(ledger(&f, B).ok(), "the other ledger is not affected");
    let table = render::to_table(&f);
    assert!(table.contains("FAILED: hash_mismatch at seq 4"), "{table}");
    assert!(table.contains("upgrading (records 1-3 only)"), "{table}");
    let md = render::to_markdown(&f, "mysql://w@h:1/d");
    assert!(
        md.contains("1 NOT verified") && md.contains("## Findings"),
        "{md}"
    );
    assert!(render::to_html(&f, "mysql://w@h:1/d").contains("banner bad"));
}

#[test]
fn a_hash_column_that_disagrees_with_the_stored_bytes_is_named() {
    let w = MemoryWitness::new();
    let a = stored_run(A, "alice", false);
    for r in &a {
        let mut row = WitnessRecord {
            ledger_id: A,
            seq: r.seq,
            hash: r.hash,
            stored: r.stored.clone(),
            node: "node-a".into(),
        };
        if r.seq == 2 {
            row.hash = Hash([7; 32]);
        }
        w.insert_raw(row);
    }
    let (_, f) = fleet_of(&w);
    let p = ledger(&f, A).problem.clone().unwrap();
    assert_eq!(
        (p.seq, p.kind.as_str()),
        (2, "hash_column_mismatch"),
        "{p:?}"
    );
}

#[test]
fn a_fork_two_rows_at_one_seq_is_named() {
    let (w, _, _) = two_ledgers();
    // A second history under ledger id A, by another operator.
    let other = stored_run(A, "mallory", false);
    let err = rt().block_on(w.push("node-x", &other)).unwrap_err();
    assert!(matches!(err, WitnessError::Fork { seq: 1, .. }), "{err}");
    let (_, f) = fleet_of(&w);
    let p = ledger(&f, A).problem.clone().unwrap();
    assert_eq!((p.seq, p.kind.as_str()), (1, "fork"), "{p:?}");
}

/// A witness that holds `records` of ledger A (as an administrator could leave it).
fn witness_with(records: &[Record]) -> MemoryWitness {
    let w = MemoryWitness::new();
    rt().block_on(w.push("node-a", records)).unwrap();
    w
}

fn verified_state(w: &MemoryWitness) -> state::FleetState {
    let (_, f) = fleet_of(w);
    assert!(f.ok());
    state::next(None, &f, "mysql://w@h:1/d")
}

fn with_state(w: &MemoryWitness, s: &state::FleetState) -> FleetCheck {
    let (_, mut f) = fleet_of(w);
    // Through the text, as the CLI reads it back.
    let s = state::parse(&state::to_text(s), "mysql://w@h:1/d").unwrap();
    state::check(&s, &mut f);
    f
}

#[test]
fn truncation_at_the_witness_is_caught_only_with_the_state_file() {
    let a = stored_run(A, "alice", false);
    let s = verified_state(&witness_with(&a));
    let cut = witness_with(&a[..a.len() - 3]);
    let (_, alone) = fleet_of(&cut);
    assert!(alone.ok(), "rows alone cannot show a cut tail");
    let f = with_state(&cut, &s);
    assert!(!f.ok());
    let st = ledger(&f, A).state.clone().unwrap();
    assert_eq!(st.kind, "truncated", "{st:?}");
    assert_eq!(st.recorded_seq, Some(a.len() as u64));
}

#[test]
fn a_consistent_rewrite_at_the_witness_is_caught_only_with_the_state_file() {
    let a = stored_run(A, "alice", false);
    let s = verified_state(&witness_with(&a));
    // The administrator replaces every row by a re-hashed history naming another operator.
    let rewritten = witness_with(&stored_run(A, "mallory", false));
    let (_, alone) = fleet_of(&rewritten);
    assert!(
        alone.ok(),
        "a consistent rewrite verifies from the rows alone"
    );
    let f = with_state(&rewritten, &s);
    let st = ledger(&f, A).state.clone().unwrap();
    assert_eq!(st.kind, "rewritten", "{st:?}");
    assert!(!f.ok());
    // The state written back keeps the old head for the refused ledger.
    let again = state::next(Some(&s), &f, "mysql://w@h:1/d");
    assert_eq!(again.ledgers[&A], s.ledgers[&A]);
}

#[test]
fn a_witness_that_extends_the_state_passes_and_advances_it() {
    let a = stored_run(A, "alice", false);
    let s = verified_state(&witness_with(&a[..5]));
    let w = witness_with(&a);
    let f = with_state(&w, &s);
    assert!(f.ok(), "{f:#?}");
    assert_eq!(ledger(&f, A).state.as_ref().unwrap().kind, "extends");
    let n = state::next(Some(&s), &f, "mysql://w@h:1/d");
    assert_eq!(n.ledgers[&A].seq, a.len() as u64);
    // A ledger the state knows and the witness lost is named.
    let f = with_state(&MemoryWitness::new(), &n);
    assert_eq!(f.missing.len(), 1);
    assert_eq!(f.missing[0].kind, "ledger_missing");
    assert!(!f.ok());
}

#[test]
fn a_state_file_is_input_and_is_validated() {
    let w = "mysql://w@h:1/d";
    let ok = state::to_text(&state::FleetState {
        witness: w.into(),
        ledgers: Default::default(),
    });
    assert!(state::parse(&ok, w).is_ok());
    assert!(matches!(
        state::parse(&ok.replace("\"version\": 1", "\"version\": 2"), w),
        Err(state::StateError::UnknownVersion(2))
    ));
    assert!(matches!(
        state::parse(&ok, "mysql://w@h:1/other"),
        Err(state::StateError::OtherWitness { .. })
    ));
    assert!(
        state::parse(&ok, "mysql://auditor@h:1/d").is_ok(),
        "another user of the same witness"
    );
    assert!(matches!(
        state::parse("[]", w),
        Err(state::StateError::Malformed(_))
    ));
    let bad_hash = format!(
        r#"{{"format":"oms-upgrade-fleet-state","version":1,"witness":"{w}",
            "ledgers":[{{"ledger_id":"{A}","seq":3,"head":"zz"}}]}}"#
    );
    let e = state::parse(&bad_hash, w).unwrap_err();
    assert!(e.to_string().contains("entry 0"), "{e}");
    let extra = ok.replace("\"ledgers\"", "\"extra\": 1, \"ledgers\"");
    assert!(state::parse(&extra, w).is_err());
}

#[test]
fn the_export_of_each_ledger_carries_the_stored_bytes() {
    let (w, a, _) = two_ledgers();
    let (rows, _) = fleet_of(&w);
    let lines = export_lines(&rows[0]);
    assert_eq!(lines[0]["ledger_id"], A.to_string());
    assert_eq!(lines.len(), a.len() + 1);
    assert_eq!(lines[1]["hash"], a[0].hash.to_hex());
}
