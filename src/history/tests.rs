//! The read side over real (temporary) ledgers: intact, altered, undecodable, rejected.

use std::path::Path;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::*;
use crate::events::{Event, samples};
use crate::ledger::{Ledger, NewRecord};

/// Appends `event` as the journal would, under `run_id`.
fn append(l: &mut Ledger, run_id: Uuid, at: DateTime<Utc>, event: &Event) -> u64 {
    let enc = events::encode(event);
    append_raw(
        l,
        run_id,
        at,
        enc.event_type,
        enc.schema_version,
        &enc.payload,
    )
}

fn append_raw(
    l: &mut Ledger,
    run_id: Uuid,
    at: DateTime<Utc>,
    event_type: &str,
    schema_version: u16,
    payload: &[u8],
) -> u64 {
    l.append(NewRecord {
        timestamp_micros: at.timestamp_micros(),
        operator: "op",
        host: "host",
        run_id,
        event_type,
        schema_version,
        payload,
    })
    .unwrap()
    .seq
}

/// A ledger in `dir` holding the sample plan (seq 1) and a note (seq 2).
fn planned(dir: &Path) -> (Ledger, Uuid) {
    let plan = samples::plan();
    let run_id = plan.run_id;
    let mut l = Ledger::open_writer(dir).unwrap();
    append(&mut l, run_id, samples::t0(), &Event::planned(plan));
    let note = Event::Note { text: "ok".into() };
    append(&mut l, run_id, samples::t0(), &note);
    (l, run_id)
}

#[test]
fn an_intact_ledger_reads_as_its_records_and_their_state() {
    let dir = tempfile::tempdir().unwrap();
    let (l, run_id) = planned(dir.path());
    for verify in [Verify::Chain, Verify::ByCaller] {
        let h = load(l.view(), verify).unwrap();
        assert_eq!(h.records.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2]);
        assert!(matches!(h.records[1].event, Event::Note { ref text } if text == "ok"));
        assert_eq!(h.state.run_id(), Some(run_id));
        assert_eq!(h.state.last_seq(), Some(2));
        assert_eq!(h.state, replay(&h.records).unwrap());
    }
    drop(l);
    let h = load_dir(dir.path(), Verify::Chain).unwrap();
    assert_eq!(h.records.len(), 2);
}

/// One byte of the stored record 2 flipped (through sled's own API, so sled's CRCs stay
/// valid): the chain is broken at seq 2 and nothing is decoded or shown.
#[test]
fn a_flipped_byte_is_a_broken_chain_at_its_record() {
    let dir = tempfile::tempdir().unwrap();
    drop(planned(dir.path()));
    {
        let db = sled::Config::new()
            .path(dir.path())
            .segment_size(8 << 20)
            .open()
            .unwrap();
        let records = db.open_tree("records").unwrap();
        let mut v = records.get(2u64.to_be_bytes()).unwrap().unwrap().to_vec();
        let i = v.len() - 40;
        v[i] ^= 1;
        records.insert(2u64.to_be_bytes(), v).unwrap();
        db.flush().unwrap();
    }
    match load_dir(dir.path(), Verify::Chain) {
        Err(HistoryError::Broken { seq, detail }) => {
            assert_eq!(seq, 2, "{detail}");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("an altered ledger was read"),
    }
}

/// A record whose chain is intact but whose payload this build cannot decode (a newer
/// event type) is named by its seq.
#[test]
fn an_undecodable_record_is_named_by_its_seq() {
    let dir = tempfile::tempdir().unwrap();
    let (mut l, run_id) = planned(dir.path());
    append_raw(&mut l, run_id, samples::t0(), "future.event", 1, b"?");
    for verify in [Verify::Chain, Verify::ByCaller] {
        match load(l.view(), verify) {
            Err(HistoryError::Undecodable { seq, detail }) => {
                assert_eq!(seq, 3);
                assert!(detail.contains("future.event"), "{detail}");
            }
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("an undecodable record was read"),
        }
    }
}

/// A record that decodes but does not fit the run (here: another run's note) is rejected
/// by the fold at its seq, and that comes before a later record's own problem.
#[test]
fn a_record_the_state_rejects_is_inconsistent_at_its_seq() {
    let dir = tempfile::tempdir().unwrap();
    let (mut l, _) = planned(dir.path());
    let note = Event::Note {
        text: "another run".into(),
    };
    append(&mut l, Uuid::from_u128(42), samples::t0(), &note);
    match load(l.view(), Verify::Chain) {
        Err(HistoryError::Inconsistent { seq, .. }) => assert_eq!(seq, 3),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a record of another run was read"),
    }
    append_raw(
        &mut l,
        Uuid::from_u128(42),
        samples::t0(),
        "future.event",
        1,
        b"?",
    );
    match load(l.view(), Verify::Chain) {
        Err(e @ HistoryError::Inconsistent { seq: 3, .. }) => {
            assert!(
                e.to_string().starts_with("ledger record 3 does not fit"),
                "{e}"
            );
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a record of another run was read"),
    }
}
