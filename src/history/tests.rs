//! The read side over real (temporary) ledgers: intact, altered, undecodable, rejected.

use std::path::Path;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::*;
use crate::events::{Event, samples};
use crate::ledger::{Ledger, LedgerReader, LedgerView, NewRecord};

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

/// Flips one byte of the stored record `seq` in the (closed) ledger in `dir`, through
/// sled's own API so that sled's CRCs stay valid: only the hash chain can tell.
pub(crate) fn flip_stored_byte(dir: &Path, seq: u64) {
    // sled's background thread of the ledger just dropped may still hold `db`'s lock for
    // a moment: retried briefly, as the ledger's own open does with its lock.
    let mut tries = 0;
    let db = loop {
        match sled::Config::new().path(dir).segment_size(8 << 20).open() {
            Err(sled::Error::Io(e)) if tries < 100 && e.to_string().contains("acquire lock") => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => break other.unwrap(),
        }
    };
    let records = db.open_tree("records").unwrap();
    let mut v = records.get(seq.to_be_bytes()).unwrap().unwrap().to_vec();
    let i = v.len() - 40;
    v[i] ^= 1;
    records.insert(seq.to_be_bytes(), v).unwrap();
    db.flush().unwrap();
}

/// What `load` refused `view` with.
fn refused(view: &LedgerView, verify: Verify) -> HistoryError {
    match load(view, verify) {
        Err(e) => e,
        Ok(h) => panic!("read as {} records", h.records.len()),
    }
}

/// One byte of the stored record 2 flipped: the chain is broken at seq 2 and nothing is
/// decoded or shown.
#[test]
fn a_flipped_byte_is_a_broken_chain_at_its_record() {
    let dir = tempfile::tempdir().unwrap();
    drop(planned(dir.path()));
    flip_stored_byte(dir.path(), 2);
    let reader = LedgerReader::open(dir.path()).unwrap();
    match refused(reader.view(), Verify::Chain) {
        HistoryError::Broken { seq, detail } => assert_eq!(seq, 2, "{detail}"),
        e => panic!("wrong error: {e}"),
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
        match refused(l.view(), verify) {
            HistoryError::Undecodable { seq, detail } => {
                assert_eq!(seq, 3);
                assert!(detail.contains("future.event"), "{detail}");
            }
            e => panic!("wrong error: {e}"),
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
    match refused(l.view(), Verify::Chain) {
        HistoryError::Inconsistent { seq, .. } => assert_eq!(seq, 3),
        e => panic!("wrong error: {e}"),
    }
    append_raw(
        &mut l,
        Uuid::from_u128(42),
        samples::t0(),
        "future.event",
        1,
        b"?",
    );
    let e = refused(l.view(), Verify::Chain);
    assert!(
        matches!(e, HistoryError::Inconsistent { seq: 3, .. }),
        "not the first problem in seq order: {e}"
    );
    assert!(
        e.to_string().starts_with("ledger record 3 does not fit"),
        "{e}"
    );
}
