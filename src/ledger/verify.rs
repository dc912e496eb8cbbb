//! Verification: walks the stored `(key, bytes)` pairs in key order and reports either an
//! intact chain (count, head) or the FIRST bad sequence number and what is wrong with it.
//!
//! The core, [`Verifier`], is a pure state machine over byte pairs, so it can check a
//! live ledger, a raw copy of a sled tree, or synthetic pairs in a unit test alike. It only
//! parses and hashes the stored bytes; it never re-encodes anything. The checks per record,
//! in this order (the order decides which problem is reported when several apply, and
//! `ledger-schema/verify_export.py` follows the same order):
//!
//! 1. the key is an 8-byte sequence number (`malformed_key`), equal to the previous one
//!    plus one (`gap` if larger, `reordered` if smaller);
//! 2. the bytes parse as a record of a known format (`unknown_format_version`,
//!    `malformed_record`);
//! 3. the stored hash equals the hash recomputed over the stored body (`hash_mismatch`);
//! 4. the record's own seq equals its key (`reordered`);
//! 5. its ledger id is the ledger's (`wrong_ledger_id`);
//! 6. its previous hash is the previous record's hash, zero for seq 1 (`broken_link`);
//! 7. (unless chain-only) the payload decodes (`undecodable_payload`);
//! 8. with an anchor, at the anchor's seq, the hash equals the anchor's head
//!    (`head_mismatch_anchor`).
//!
//! Before the walk an anchor for another ledger is `anchor_ledger_mismatch` (seq 1); after
//! it, a chain that ends before the anchor's seq is `tail_shorter_than_anchor` (at the first
//! missing seq).

use uuid::Uuid;

use super::PayloadDecoder;
use super::anchor::Anchor;
use super::error::LedgerError;
use super::record::{Hash, ParseError, RecordHasher, RecordRef};
use super::store::{LedgerView, key_seq};

/// What is wrong at the first bad sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    /// The stored hash differs from the hash of the stored bytes.
    HashMismatch,
    /// The record's previous-hash field differs from the previous record's hash.
    BrokenLink,
    /// A sequence number is missing.
    Gap,
    /// A record is stored under another record's sequence number, or keys are out of order.
    Reordered,
    /// The record is in a format version this build does not read.
    UnknownFormatVersion,
    /// The record's bytes do not follow the layout.
    MalformedRecord,
    /// A sled key is not an 8-byte sequence number.
    MalformedKey,
    /// The record names another ledger.
    WrongLedgerId,
    /// The payload does not decode with this build's event vocabulary.
    UndecodablePayload,
    /// The ledger ends before the anchor's sequence number.
    TailShorterThanAnchor,
    /// The record at the anchor's sequence number has another hash than the anchor's.
    HeadMismatchAnchor,
    /// The anchor is for another ledger.
    AnchorLedgerMismatch,
}

impl ProblemKind {
    /// Stable snake_case name, used in JSON output and by the Python verifier.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::HashMismatch => "hash_mismatch",
            ProblemKind::BrokenLink => "broken_link",
            ProblemKind::Gap => "gap",
            ProblemKind::Reordered => "reordered",
            ProblemKind::UnknownFormatVersion => "unknown_format_version",
            ProblemKind::MalformedRecord => "malformed_record",
            ProblemKind::MalformedKey => "malformed_key",
            ProblemKind::WrongLedgerId => "wrong_ledger_id",
            ProblemKind::UndecodablePayload => "undecodable_payload",
            ProblemKind::TailShorterThanAnchor => "tail_shorter_than_anchor",
            ProblemKind::HeadMismatchAnchor => "head_mismatch_anchor",
            ProblemKind::AnchorLedgerMismatch => "anchor_ledger_mismatch",
        }
    }

    /// A few words for people.
    pub fn describe(self) -> &'static str {
        match self {
            ProblemKind::HashMismatch => "hash mismatch",
            ProblemKind::BrokenLink => "broken link",
            ProblemKind::Gap => "gap (missing record)",
            ProblemKind::Reordered => "reordered record",
            ProblemKind::UnknownFormatVersion => "unknown record format version",
            ProblemKind::MalformedRecord => "malformed record",
            ProblemKind::MalformedKey => "malformed key",
            ProblemKind::WrongLedgerId => "record of another ledger",
            ProblemKind::UndecodablePayload => "undecodable payload",
            ProblemKind::TailShorterThanAnchor => "tail shorter than the checkpoint",
            ProblemKind::HeadMismatchAnchor => "record does not match the checkpoint",
            ProblemKind::AnchorLedgerMismatch => "checkpoint is for another ledger",
        }
    }
}

/// The first problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The first bad sequence number.
    pub seq: u64,
    /// What is wrong.
    pub kind: ProblemKind,
    /// Details (the hashes involved, the decoder's message, ...).
    pub detail: String,
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The ledger id the records were checked against.
    pub ledger_id: Uuid,
    /// How many records passed every check (all of them when intact).
    pub records: u64,
    /// Sequence number and hash of the last record that passed (the head when intact).
    pub head: Option<(u64, Hash)>,
    /// The anchor checked against, if any.
    pub anchor: Option<Anchor>,
    /// Whether payloads were decoded (false for a chain-only check).
    pub payloads_checked: bool,
    /// The first problem, `None` when intact.
    pub problem: Option<Problem>,
}

impl VerifyReport {
    /// True when no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problem.is_none()
    }

    /// The report as one JSON object (the `--json` output of `ledger verify`, documented in
    /// `ledger-schema/RECORD.md`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "ok": self.is_ok(),
            "ledger_id": self.ledger_id.hyphenated().to_string(),
            "records": self.records,
            "head_seq": self.head.map(|h| h.0),
            "head_hash": self.head.map(|h| h.1.to_hex()),
            "anchor": self.anchor.map(|a| serde_json::json!({
                "ledger_id": a.ledger_id.hyphenated().to_string(),
                "seq": a.seq,
                "head": a.head.to_hex(),
            })),
            "payloads_checked": self.payloads_checked,
            "problem": self.problem.as_ref().map(|p| serde_json::json!({
                "seq": p.seq,
                "kind": p.kind.as_str(),
                "detail": p.detail,
            })),
        })
    }
}

/// Streaming verifier: feed it `(key, stored bytes)` pairs in key order with
/// [`Verifier::push`], then call [`Verifier::finish`].
pub struct Verifier<'d> {
    ledger_id: Uuid,
    anchor: Option<Anchor>,
    decoder: Option<&'d dyn PayloadDecoder>,
    count: u64,
    prev: Hash,
    hasher: RecordHasher,
    problem: Option<Problem>,
}

impl<'d> Verifier<'d> {
    /// A verifier for ledger `ledger_id`, optionally against an anchor, decoding payloads
    /// with `decoder` unless it is `None` (chain-only).
    pub fn new(
        ledger_id: Uuid,
        anchor: Option<Anchor>,
        decoder: Option<&'d dyn PayloadDecoder>,
    ) -> Self {
        let problem = anchor
            .filter(|a| a.ledger_id != ledger_id)
            .map(|a| Problem {
                seq: 1,
                kind: ProblemKind::AnchorLedgerMismatch,
                detail: format!(
                    "the checkpoint is for ledger {}, this is ledger {ledger_id}",
                    a.ledger_id
                ),
            });
        Verifier {
            ledger_id,
            anchor,
            decoder,
            count: 0,
            prev: Hash::ZERO,
            hasher: RecordHasher::new(),
            problem,
        }
    }

    fn fail(&mut self, seq: u64, kind: ProblemKind, detail: String) -> bool {
        self.problem = Some(Problem { seq, kind, detail });
        false
    }

    /// Checks the next pair. Returns false once a problem has been found (further pairs
    /// are ignored, so the reported problem is the first).
    pub fn push(&mut self, key: &[u8], value: &[u8]) -> bool {
        use ProblemKind::*;
        if self.problem.is_some() {
            return false;
        }
        let expected = self.count + 1;
        let Some(seq) = key_seq(key) else {
            return self.fail(
                expected,
                MalformedKey,
                format!(
                    "a sled key of {} bytes where seq {expected} belongs",
                    key.len()
                ),
            );
        };
        if seq > expected {
            return self.fail(
                expected,
                Gap,
                format!("no record under seq {expected}; the next one is seq {seq}"),
            );
        }
        if seq < expected {
            return self.fail(
                seq,
                Reordered,
                format!(
                    "keys out of order: seq {seq} comes after seq {}",
                    self.count
                ),
            );
        }
        let r = match RecordRef::parse(value) {
            Ok(r) => r,
            Err(ParseError::UnknownVersion(v)) => {
                return self.fail(
                    seq,
                    UnknownFormatVersion,
                    format!("record format version {v}; this build reads version 1"),
                );
            }
            Err(e) => return self.fail(seq, MalformedRecord, e.to_string()),
        };
        let computed = self.hasher.hash(r.body);
        if computed != r.hash {
            return self.fail(
                seq,
                HashMismatch,
                format!(
                    "stored hash {}, the stored bytes hash to {computed}",
                    r.hash
                ),
            );
        }
        if r.seq != seq {
            return self.fail(
                seq,
                Reordered,
                format!("the record stored under seq {seq} says it is seq {}", r.seq),
            );
        }
        if r.ledger_id != self.ledger_id {
            return self.fail(
                seq,
                WrongLedgerId,
                format!(
                    "the record belongs to ledger {}, this is ledger {}",
                    r.ledger_id, self.ledger_id
                ),
            );
        }
        if r.prev_hash != self.prev {
            let detail = if seq == 1 {
                format!(
                    "the first record's previous hash is {}, not zero",
                    r.prev_hash
                )
            } else {
                format!(
                    "its previous hash is {}, but seq {} has hash {}",
                    r.prev_hash, self.count, self.prev
                )
            };
            return self.fail(seq, BrokenLink, detail);
        }
        if let Some(decoder) = self.decoder
            && let Err(e) = decoder.decode_view(r.event_type, r.schema_version, r.payload)
        {
            return self.fail(
                seq,
                UndecodablePayload,
                format!("event `{}` schema v{}: {e}", r.event_type, r.schema_version),
            );
        }
        if let Some(a) = self.anchor
            && a.seq == seq
            && a.head != r.hash
        {
            return self.fail(
                seq,
                HeadMismatchAnchor,
                format!(
                    "the checkpoint says seq {seq} has hash {}, the ledger's has {}: the history up \
                     to seq {seq} is not the one checkpointed",
                    a.head, r.hash
                ),
            );
        }
        self.count = seq;
        self.prev = r.hash;
        true
    }

    /// Ends the walk and reports.
    pub fn finish(mut self) -> VerifyReport {
        if self.problem.is_none()
            && let Some(a) = self.anchor
            && self.count < a.seq
        {
            self.problem = Some(Problem {
                seq: self.count + 1,
                kind: ProblemKind::TailShorterThanAnchor,
                detail: format!(
                    "the ledger ends at seq {} but the checkpoint is at seq {}: records were cut \
                     from the end, or the ledger was replaced by an older copy",
                    self.count, a.seq
                ),
            });
        }
        VerifyReport {
            ledger_id: self.ledger_id,
            records: self.count,
            head: (self.count > 0).then_some((self.count, self.prev)),
            anchor: self.anchor,
            payloads_checked: self.decoder.is_some(),
            problem: self.problem,
        }
    }
}

/// Verifies `(key, stored bytes)` pairs (in the order given) as records of `ledger_id`.
/// Pure: no I/O, usable on a raw copy of a sled tree.
pub fn verify_pairs<K, V>(
    ledger_id: Uuid,
    pairs: impl IntoIterator<Item = (K, V)>,
    anchor: Option<&Anchor>,
    decoder: Option<&dyn PayloadDecoder>,
) -> VerifyReport
where
    K: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    let mut v = Verifier::new(ledger_id, anchor.copied(), decoder);
    for (k, val) in pairs {
        if !v.push(k.as_ref(), val.as_ref()) {
            break;
        }
    }
    v.finish()
}

fn walk(
    view: &LedgerView,
    anchor: Option<&Anchor>,
    decoder: Option<&dyn PayloadDecoder>,
) -> Result<VerifyReport, LedgerError> {
    let mut v = Verifier::new(view.ledger_id(), anchor.copied(), decoder);
    for entry in view.entries() {
        let (k, val) = entry?;
        if !v.push(&k, &val) {
            break;
        }
    }
    Ok(v.finish())
}

/// Verifies a ledger: the chain, the payloads (with `decoder`) and, when given, the anchor.
/// An `Err` means the ledger could not be read; a broken chain is an `Ok` report with a
/// [`Problem`].
pub fn verify(
    view: &LedgerView,
    anchor: Option<&Anchor>,
    decoder: &dyn PayloadDecoder,
) -> Result<VerifyReport, LedgerError> {
    walk(view, anchor, Some(decoder))
}

/// Like [`verify`] but without decoding payloads: proves the bytes, not their meaning (for
/// ledgers written by a newer build, and for checkpoints).
pub fn verify_chain(
    view: &LedgerView,
    anchor: Option<&Anchor>,
) -> Result<VerifyReport, LedgerError> {
    walk(view, anchor, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::record::{NewRecord, encode};

    const ID: Uuid = Uuid::from_u128(7);

    struct RejectType(&'static str);
    impl PayloadDecoder for RejectType {
        fn decode_view(&self, t: &str, _: u16, _: &[u8]) -> Result<serde_json::Value, String> {
            if t == self.0 {
                Err("not in the vocabulary".into())
            } else {
                Ok(serde_json::Value::Null)
            }
        }
    }

    fn chain(n: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut prev = Hash::ZERO;
        (1..=n)
            .map(|seq| {
                let ty = format!("test.event{seq}");
                let new = NewRecord {
                    timestamp_micros: seq as i64,
                    operator: "op",
                    host: "h",
                    run_id: Uuid::nil(),
                    event_type: &ty,
                    schema_version: 1,
                    payload: &[seq as u8],
                };
                let (bytes, hash) = encode(seq, ID, prev, &new).unwrap();
                prev = hash;
                (seq.to_be_bytes().to_vec(), bytes)
            })
            .collect()
    }

    fn problem(
        pairs: &[(Vec<u8>, Vec<u8>)],
        anchor: Option<&Anchor>,
    ) -> Option<(u64, ProblemKind)> {
        verify_pairs(ID, pairs.iter().cloned(), anchor, Some(&RejectType("none")))
            .problem
            .map(|p| (p.seq, p.kind))
    }

    fn hash_of(pairs: &[(Vec<u8>, Vec<u8>)], seq: u64) -> Hash {
        Hash(
            pairs[seq as usize - 1].1[pairs[seq as usize - 1].1.len() - 32..]
                .try_into()
                .unwrap(),
        )
    }

    #[test]
    fn intact_chain_reports_count_and_head() {
        let c = chain(5);
        let r = verify_pairs(ID, c.clone(), None, None);
        assert!(r.is_ok());
        assert_eq!(r.records, 5);
        assert_eq!(r.head, Some((5, hash_of(&c, 5))));
        let empty: Vec<(Vec<u8>, Vec<u8>)> = vec![];
        assert_eq!(verify_pairs(ID, empty, None, None).head, None);
    }

    #[test]
    fn each_kind_is_reported_at_the_first_bad_seq() {
        use ProblemKind::*;
        let c = chain(6);

        let mut t = c.clone();
        t[2].1[100] ^= 1;
        assert_eq!(problem(&t, None), Some((3, HashMismatch)));

        let mut t = c.clone();
        t.remove(3);
        assert_eq!(problem(&t, None), Some((4, Gap)));

        let mut t = c.clone();
        let v = t[1].1.clone();
        t[1].1 = t[2].1.clone();
        t[2].1 = v;
        assert_eq!(problem(&t, None), Some((2, Reordered)));

        let mut t = c.clone();
        t.swap(1, 2);
        assert_eq!(problem(&t, None), Some((2, Gap)));

        let mut t = c.clone();
        t[3].1[5] = 9;
        assert_eq!(problem(&t, None), Some((4, UnknownFormatVersion)));

        let mut t = c.clone();
        t[4].1.truncate(50);
        assert_eq!(problem(&t, None), Some((5, MalformedRecord)));

        let mut t = c.clone();
        t[0].0 = vec![1];
        assert_eq!(problem(&t, None), Some((1, MalformedKey)));

        // A record re-linked onto the wrong predecessor with a valid hash of its own.
        let mut t = chain(6);
        let other = encode(
            4,
            ID,
            Hash([1; 32]),
            &NewRecord {
                timestamp_micros: 0,
                operator: "x",
                host: "y",
                run_id: Uuid::nil(),
                event_type: "z",
                schema_version: 1,
                payload: b"",
            },
        )
        .unwrap()
        .0;
        t[3].1 = other.clone();
        assert_eq!(problem(&t, None), Some((4, BrokenLink)));

        let r = verify_pairs(Uuid::from_u128(8), c.clone(), None, None);
        assert_eq!(r.problem.map(|p| (p.seq, p.kind)), Some((1, WrongLedgerId)));

        let r = verify_pairs(ID, c.clone(), None, Some(&RejectType("test.event5")));
        let p = r.problem.unwrap();
        assert_eq!((p.seq, p.kind), (5, UndecodablePayload));
        assert!(p.detail.contains("not in the vocabulary"), "{}", p.detail);
        assert_eq!(r.records, 4);
    }

    #[test]
    fn anchors_catch_cut_tails_and_swapped_histories() {
        use ProblemKind::*;
        let c = chain(6);
        let at = |seq: u64, head: Hash| Anchor {
            ledger_id: ID,
            seq,
            head,
        };
        // Intact, anchor at the head or earlier.
        assert_eq!(problem(&c, Some(&at(6, hash_of(&c, 6)))), None);
        assert_eq!(problem(&c, Some(&at(3, hash_of(&c, 3)))), None);
        // Tail cut.
        assert_eq!(
            problem(&c[..4], Some(&at(6, hash_of(&c, 6)))),
            Some((5, TailShorterThanAnchor))
        );
        // A different history of the same length.
        assert_eq!(
            problem(&c, Some(&at(4, Hash([9; 32])))),
            Some((4, HeadMismatchAnchor))
        );
        // Another ledger's anchor.
        let other = Anchor {
            ledger_id: Uuid::from_u128(99),
            ..at(6, hash_of(&c, 6))
        };
        assert_eq!(problem(&c, Some(&other)), Some((1, AnchorLedgerMismatch)));
    }
}
