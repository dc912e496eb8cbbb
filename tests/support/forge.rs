//! The attacker of the "consistent rewrite" threat (issue 10, item 5): someone who can
//! write the ledger folder but does not hold the signing key. The record hash uses a
//! published context (`ledger-schema/RECORD.md`), so such a person can re-encode every
//! record with a changed field and recompute every hash and link; `ledger verify` without a
//! checkpoint then passes. This module does exactly that, through sled's own API so sled's
//! CRCs stay valid, and through the library's published record encoder.

use std::path::Path;

use oms_upgrade::ledger::record::{Hash, NewRecord, Record, encode};
use oms_upgrade::ledger::store::{RECORDS_TREE, seq_key};

/// Rewrites every record of the (closed) ledger in `dir` with `edit` applied to its owned
/// copy, then re-links the whole chain: each record gets the previous record's new hash and
/// a hash recomputed over its new body. Returns how many records were rewritten.
pub fn rewrite_chain(dir: &Path, mut edit: impl FnMut(&mut Record)) -> u64 {
    let db = super::raw_sled(dir);
    let records = db.open_tree(RECORDS_TREE).unwrap();
    let mut originals = Vec::new();
    for kv in records.iter() {
        let (_, v) = kv.unwrap();
        originals.push(Record::parse(&v).expect("forger: a record parses"));
    }
    let mut prev = Hash::ZERO;
    for mut r in originals.iter().cloned() {
        edit(&mut r);
        let (bytes, hash) = encode(
            r.seq,
            r.ledger_id,
            prev,
            &NewRecord {
                timestamp_micros: r.timestamp_micros,
                operator: &r.operator,
                host: &r.host,
                run_id: r.run_id,
                event_type: &r.event_type,
                schema_version: r.schema_version,
                payload: &r.payload,
            },
        )
        .expect("forger: the record re-encodes");
        records.insert(seq_key(r.seq), bytes).unwrap();
        prev = hash;
    }
    db.flush().unwrap();
    originals.len() as u64
}
