use proptest::prelude::*;

use super::*;
use crate::ledger::Anchor;
use crate::ledger::record::{NewRecord, encode};
use crate::ledger::sign::SigningKey;

const ID: Uuid = Uuid::from_u128(0x14);

/// A chain of `n` records; from seq `from` on, the operator is `who` (a rewrite).
fn chain(n: u64, from: u64, who: &str) -> Vec<Record> {
    let mut prev = Hash::ZERO;
    (1..=n)
        .map(|seq| {
            let operator = if seq >= from { who } else { "alice" };
            let (bytes, hash) = encode(
                seq,
                ID,
                prev,
                &NewRecord {
                    timestamp_micros: 1_000_000 * seq as i64,
                    operator,
                    host: "node-1",
                    run_id: Uuid::from_u128(1),
                    event_type: "note",
                    schema_version: 1,
                    payload: b"x",
                },
            )
            .unwrap();
            prev = hash;
            Record::parse(&bytes).unwrap()
        })
        .collect()
}

fn rows(records: &[Record]) -> Vec<WitnessRecord> {
    records
        .iter()
        .map(|r| WitnessRecord {
            ledger_id: r.ledger_id,
            seq: r.seq,
            hash: r.hash,
            stored: r.stored.clone(),
            node: "node-1".into(),
        })
        .collect()
}

/// `rows` sorted as the witness returns them (seq, then hash).
fn sorted(mut rows: Vec<WitnessRecord>) -> Vec<WitnessRecord> {
    rows.sort_by_key(|r| (r.seq, r.hash));
    rows
}

#[test]
fn identical_ledgers_have_no_difference() {
    let local = chain(5, 99, "");
    let c = compare(ID, &local, true, &rows(&local));
    assert_eq!(c.difference, None);
    assert_eq!((c.matched, c.local_head, c.witness_head), (5, 5, 5));
    assert!(!c.is_tamper(WitnessPolicy::Required));
    // Nothing on either side.
    assert_eq!(compare(ID, &[], true, &[]).difference, None);
}

#[test]
fn each_kind_is_named_at_its_first_seq() {
    let local = chain(6, 99, "");
    // Truncated / older copy.
    let c = compare(ID, &local[..3], true, &rows(&local));
    assert_eq!(
        c.difference,
        Some(Difference::LocalBehind {
            local_head: 3,
            witness_head: 6
        })
    );
    assert!(
        c.difference
            .as_ref()
            .unwrap()
            .describe()
            .contains("cannot tell")
    );
    assert!(c.is_tamper(WitnessPolicy::BestEffort));
    // An empty local ledger.
    assert_eq!(
        compare(ID, &[], true, &rows(&local))
            .difference
            .unwrap()
            .kind(),
        "local_behind"
    );
    // Lag.
    let c = compare(ID, &local, true, &rows(&local[..4]));
    assert_eq!(
        c.difference,
        Some(Difference::MissingOnWitness {
            from_seq: 5,
            local_head: 6
        })
    );
    assert!(!c.is_tamper(WitnessPolicy::BestEffort));
    assert!(
        c.is_tamper(WitnessPolicy::Required),
        "two behind under required"
    );
    let c = compare(ID, &local, true, &rows(&local[..5]));
    assert!(!c.is_tamper(WitnessPolicy::Required), "one in flight");
    // Consistent rewrite from seq 3.
    let forged = chain(6, 3, "mallory");
    let c = compare(ID, &forged, true, &rows(&local));
    match c.difference {
        Some(Difference::Rewritten {
            seq: 3,
            consistent_rehash: true,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(c.matched, 2);
    // Fork: the witness holds both histories from seq 3.
    let mut both = rows(&local);
    both.extend(rows(&forged[2..3]));
    let c = compare(ID, &local, true, &sorted(both));
    match &c.difference {
        Some(Difference::Forked {
            seq: 3,
            hashes,
            local: Some(l),
        }) => {
            assert_eq!(hashes.len(), 2);
            assert_eq!(*l, local[2].hash);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn corrupt_witness_rows_are_named() {
    let local = chain(4, 99, "");
    // Altered bytes (hash column kept).
    let mut w = rows(&local);
    w[1].stored[40] ^= 1;
    let d = compare(ID, &local, true, &w).difference.unwrap();
    assert_eq!((d.kind(), d.seq()), ("witness_corrupt", 2), "{d:?}");
    // A consistent re-hash at the witness alone: the row verifies, the link does not.
    let forged = chain(4, 2, "mallory");
    let mut w = rows(&local);
    w[2] = rows(&forged)[2].clone();
    let d = compare(ID, &local, true, &w).difference.unwrap();
    assert_eq!((d.kind(), d.seq()), ("witness_corrupt", 3), "{d:?}");
    // A removed row below the head.
    let mut w = rows(&local);
    w.remove(1);
    let d = compare(ID, &local, true, &w).difference.unwrap();
    assert_eq!((d.kind(), d.seq()), ("witness_corrupt", 2), "{d:?}");
    // A row filed under the wrong seq.
    let mut w = rows(&local);
    w[3].seq = 5;
    let d = compare(ID, &local, true, &w).difference.unwrap();
    assert_eq!(d.kind(), "witness_corrupt", "{d:?}");
}

#[test]
fn witness_checkpoints_are_checked_against_the_local_ledger() {
    let local = chain(4, 99, "");
    let key = SigningKey::from_seed(&[7; 32]);
    let signed = |seq: u64, head: Hash| {
        let anchor = Anchor {
            ledger_id: ID,
            seq,
            head,
        };
        let time = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        WitnessCheckpoint {
            ledger_id: ID,
            seq,
            head,
            text: key.sign_checkpoint(anchor, time).to_text(),
        }
    };
    let good = signed(3, local[2].hash);
    let checks = check_checkpoints(&local, std::slice::from_ref(&good), Some(&key.public()));
    assert_eq!(checks[0].problem, None);
    assert!(checks[0].signature_verified);
    // The local ledger was cut below the checkpoint.
    let checks = check_checkpoints(&local[..2], std::slice::from_ref(&good), None);
    assert!(
        checks[0]
            .problem
            .as_ref()
            .unwrap()
            .contains("no longer holds")
    );
    // Rewritten locally.
    let forged = chain(4, 1, "mallory");
    let checks = check_checkpoints(&forged, std::slice::from_ref(&good), None);
    assert!(
        checks[0]
            .problem
            .as_ref()
            .unwrap()
            .contains("vouches for head")
    );
    // Signed by another key.
    let other = SigningKey::from_seed(&[8; 32]).public();
    let checks = check_checkpoints(&local, std::slice::from_ref(&good), Some(&other));
    assert!(checks[0].problem.as_ref().unwrap().contains("signature"));
    // The row's columns disagree with its text.
    let mut lying = good;
    lying.seq = 2;
    let checks = check_checkpoints(&local, &[lying], None);
    assert!(
        checks[0]
            .problem
            .as_ref()
            .unwrap()
            .contains("another ledger")
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the lengths and the point of a rewrite, the first difference is where it
    /// really is, and agreeing records are counted.
    #[test]
    fn the_first_difference_is_where_the_histories_part(
        n in 1u64..12,
        local_len in 0u64..12,
        witness_len in 0u64..12,
        rewrite_at in 1u64..14,
    ) {
        let local_len = local_len.min(n);
        let witness_len = witness_len.min(n);
        let truth = chain(n, 99, "");
        let local = chain(n, rewrite_at, "mallory");
        let local = &local[..local_len as usize];
        let witness = rows(&truth[..witness_len as usize]);
        let c = compare(ID, local, true, &witness);
        let common = local_len.min(witness_len);
        let parted = rewrite_at <= common;
        match c.difference {
            None => {
                prop_assert!(!parted);
                prop_assert_eq!(local_len, witness_len);
            }
            Some(Difference::Rewritten { seq, consistent_rehash, .. }) => {
                prop_assert!(parted);
                prop_assert_eq!(seq, rewrite_at);
                prop_assert!(consistent_rehash);
            }
            Some(Difference::LocalBehind { local_head, witness_head }) => {
                prop_assert!(!parted);
                prop_assert_eq!((local_head, witness_head), (local_len, witness_len));
                prop_assert!(local_len < witness_len);
            }
            Some(Difference::MissingOnWitness { from_seq, local_head }) => {
                prop_assert!(!parted);
                prop_assert_eq!((from_seq, local_head), (witness_len + 1, local_len));
            }
            Some(other) => prop_assert!(false, "unexpected {:?}", other),
        }
        prop_assert_eq!(c.matched, if parted { rewrite_at - 1 } else { common });
    }
}
