//! Comparing a local ledger with its witness copy, and naming the FIRST difference. Pure:
//! records and rows in, a [`Comparison`] out (no I/O, no clock).
//!
//! The walk goes up the sequence numbers from 1. At each seq it first checks the witness
//! rows there (a row whose hash column is not the hash of its stored bytes, whose stored
//! record names another seq or ledger, or that does not link to the row below it is
//! **corrupt**: someone wrote it other than through `oms-upgrade`; two or more rows are a
//! **fork**), then compares with the local record:
//! - the witness holds the one record at seq k and the local one differs: **rewritten**
//!   locally ("consistent re-hash" when the local chain itself verifies: only the witness
//!   shows it);
//! - the local ledger ends below the witness's head while agreeing up to there: the local
//!   ledger is a strict prefix, **truncated or replaced by an older copy** of its folder
//!   (records alone cannot tell those two apart, and the message says so);
//! - the local ledger goes beyond the witness's head: records **missing on the witness**
//!   (lag; under `best-effort` this is expected until `ledger push`).

use uuid::Uuid;

use super::{WitnessCheckpoint, WitnessPolicy, WitnessRecord};
use crate::ledger::record::HASH_LEN;
use crate::ledger::record::hash_body;
use crate::ledger::sign::{PublicKey, verify_checkpoint};
use crate::ledger::{Checkpoint, Hash, Record};

/// The first difference between a local ledger and the witness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// The local ledger ends at `local_head` and agrees with the witness up to there; the
    /// witness holds records up to `witness_head`. Truncated, or replaced by an older copy.
    LocalBehind {
        /// The local head seq (0: no records).
        local_head: u64,
        /// The witness's head seq.
        witness_head: u64,
    },
    /// The witness holds one record at `seq`, and the local record there differs.
    Rewritten {
        /// Where.
        seq: u64,
        /// The local record's hash.
        local: Hash,
        /// The witness's.
        witness: Hash,
        /// The local chain verifies on its own: a consistent re-hash.
        consistent_rehash: bool,
    },
    /// The witness holds two or more records at `seq`: two histories under one ledger id.
    Forked {
        /// Where.
        seq: u64,
        /// Every hash the witness holds there.
        hashes: Vec<Hash>,
        /// The local record's hash there, if it has one.
        local: Option<Hash>,
    },
    /// The local ledger holds records `from_seq..=local_head` the witness lacks (lag).
    MissingOnWitness {
        /// The first record the witness lacks.
        from_seq: u64,
        /// The local head seq.
        local_head: u64,
    },
    /// A witness row is not what `oms-upgrade` writes.
    WitnessCorrupt {
        /// The row's seq.
        seq: u64,
        /// What is wrong.
        reason: String,
    },
}

impl Difference {
    /// A stable name for JSON and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            Difference::LocalBehind { .. } => "local_behind",
            Difference::Rewritten { .. } => "rewritten",
            Difference::Forked { .. } => "forked",
            Difference::MissingOnWitness { .. } => "missing_on_witness",
            Difference::WitnessCorrupt { .. } => "witness_corrupt",
        }
    }

    /// The seq where it is.
    pub fn seq(&self) -> u64 {
        match self {
            Difference::LocalBehind { local_head, .. } => local_head + 1,
            Difference::Rewritten { seq, .. }
            | Difference::Forked { seq, .. }
            | Difference::WitnessCorrupt { seq, .. } => *seq,
            Difference::MissingOnWitness { from_seq, .. } => *from_seq,
        }
    }

    /// The JSON form: `kind`, `seq`, `detail` (the sentence) and the kind's hashes in hex.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "kind": self.kind(),
            "seq": self.seq(),
            "detail": self.describe(),
        });
        match self {
            Difference::Rewritten {
                local,
                witness,
                consistent_rehash,
                ..
            } => {
                v["local_hash"] = local.to_hex().into();
                v["witness_hash"] = witness.to_hex().into();
                v["consistent_rehash"] = (*consistent_rehash).into();
            }
            Difference::Forked { hashes, local, .. } => {
                v["witness_hashes"] = hashes.iter().map(Hash::to_hex).collect();
                v["local_hash"] = local.map(|h| h.to_hex()).into();
            }
            _ => {}
        }
        v
    }

    /// Whether it is plain lag: the witness has not been told everything yet.
    pub fn is_lag(&self) -> bool {
        matches!(self, Difference::MissingOnWitness { .. })
    }

    /// One sentence saying what was found and what it means.
    pub fn describe(&self) -> String {
        match self {
            Difference::LocalBehind {
                local_head,
                witness_head,
            } => format!(
                "the local ledger ends at seq {local_head}, but the witness holds records up to \
                 seq {witness_head} that extend it: the local ledger was truncated, or replaced \
                 by an older copy of its folder (the records alone cannot tell which)"
            ),
            Difference::Rewritten {
                seq,
                local,
                witness,
                consistent_rehash,
            } => {
                let how = if *consistent_rehash {
                    "a consistent re-hash: the local chain verifies on its own, only the witness \
                     shows the rewrite"
                } else {
                    "the local chain does not verify either"
                };
                format!(
                    "the local record at seq {seq} ({}) differs from the witness's ({}): the \
                     local ledger was rewritten from there ({how})",
                    local.short(),
                    witness.short()
                )
            }
            Difference::Forked { seq, hashes, local } => format!(
                "fork at seq {seq}: the witness holds {} different records there ({}){}; two \
                 histories were written under this ledger id",
                hashes.len(),
                hashes
                    .iter()
                    .map(Hash::short)
                    .collect::<Vec<_>>()
                    .join(", "),
                match local {
                    Some(h) => format!(", the local one is {}", h.short()),
                    None => String::new(),
                }
            ),
            Difference::MissingOnWitness {
                from_seq,
                local_head,
            } => format!(
                "the witness lacks records {from_seq}..={local_head} ({} record(s)): not pushed \
                 yet (`oms-upgrade ledger push` sends them)",
                local_head + 1 - from_seq
            ),
            Difference::WitnessCorrupt { seq, reason } => format!(
                "the witness row at seq {seq} is not what oms-upgrade writes: {reason}; someone \
                 with write access to the witness database changed it"
            ),
        }
    }
}

/// The outcome of comparing one ledger with the witness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// The ledger.
    pub ledger_id: Uuid,
    /// The local head seq (0: none).
    pub local_head: u64,
    /// The witness's highest seq (0: it holds nothing for this ledger).
    pub witness_head: u64,
    /// Records that agree, from seq 1 up.
    pub matched: u64,
    /// The first difference, if any.
    pub difference: Option<Difference>,
}

impl Comparison {
    /// The JSON form.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "ledger_id": self.ledger_id.hyphenated().to_string(),
            "local_head": self.local_head,
            "witness_head": self.witness_head,
            "matched": self.matched,
            "difference": self.difference.as_ref().map(Difference::to_json),
        })
    }

    /// Whether the comparison counts as tampering (verify's integrity exit code): any
    /// difference except lag; lag too under `required`, beyond the one in-flight record a
    /// crash between the local append and the push can leave behind.
    pub fn is_tamper(&self, policy: WitnessPolicy) -> bool {
        match &self.difference {
            None => false,
            Some(Difference::MissingOnWitness {
                from_seq,
                local_head,
            }) => policy == WitnessPolicy::Required && local_head > from_seq,
            Some(_) => true,
        }
    }
}

/// Why a witness row is not well-formed, or `None`.
fn row_problem(ledger_id: Uuid, row: &WitnessRecord) -> Option<String> {
    let stored = &row.stored;
    if stored.len() < HASH_LEN {
        return Some(format!("its stored bytes are {} bytes long", stored.len()));
    }
    let (body, tail) = stored.split_at(stored.len() - HASH_LEN);
    if tail != row.hash.0 {
        return Some("its hash column differs from the hash its stored bytes end with".into());
    }
    if hash_body(body) != row.hash {
        return Some(
            "its hash column is not the BLAKE3 hash of its stored bytes (altered bytes)".into(),
        );
    }
    match Record::parse(stored) {
        Err(e) => Some(format!("its stored bytes do not parse as a record: {e}")),
        Ok(r) if r.seq != row.seq => Some(format!("its stored record says seq {}", r.seq)),
        Ok(r) if r.ledger_id != ledger_id => {
            Some(format!("its stored record names ledger {}", r.ledger_id))
        }
        Ok(_) => None,
    }
}

/// Compares `local` (the local ledger's records from seq 1, ascending, as far as they
/// could be read) with `witness` (every witness row for `ledger_id`, ordered by seq).
/// `local_chain_ok` says whether `ledger verify` found the local chain intact.
pub fn compare(
    ledger_id: Uuid,
    local: &[Record],
    local_chain_ok: bool,
    witness: &[WitnessRecord],
) -> Comparison {
    let local_head = local.last().map_or(0, |r| r.seq);
    let witness_head = witness.iter().map(|r| r.seq).max().unwrap_or(0);
    let mut out = Comparison {
        ledger_id,
        local_head,
        witness_head,
        matched: 0,
        difference: None,
    };
    let mut rows = witness.iter().peekable();
    let mut prev_witness = Hash::ZERO;
    let top = local_head.max(witness_head);
    for seq in 1..=top {
        // The rows at this seq (rows below it were consumed; rows with seq 0 are skipped).
        while rows.peek().is_some_and(|r| r.seq < seq) {
            rows.next();
        }
        let mut here = Vec::new();
        while let Some(r) = rows.next_if(|r| r.seq == seq) {
            here.push(r);
        }
        let mine = local.get(usize::try_from(seq - 1).unwrap_or(usize::MAX));
        let mine = mine.filter(|r| r.seq == seq);
        for row in &here {
            if let Some(reason) = row_problem(ledger_id, row) {
                out.difference = Some(Difference::WitnessCorrupt { seq, reason });
                return out;
            }
        }
        match here.as_slice() {
            [] if seq <= witness_head => {
                out.difference = Some(Difference::WitnessCorrupt {
                    seq,
                    reason: format!(
                        "the witness holds no record at seq {seq} but holds later ones up to \
                         {witness_head} (a row was removed)"
                    ),
                });
                return out;
            }
            [] => {
                out.difference = Some(Difference::MissingOnWitness {
                    from_seq: seq,
                    local_head,
                });
                return out;
            }
            [one] => {
                let linked = Record::parse(&one.stored).map(|r| r.prev_hash);
                if linked.as_ref().ok() != Some(&prev_witness) {
                    out.difference = Some(Difference::WitnessCorrupt {
                        seq,
                        reason: format!(
                            "its previous-hash does not name the witness's record at seq {}",
                            seq - 1
                        ),
                    });
                    return out;
                }
                prev_witness = one.hash;
                match mine {
                    None => {
                        out.difference = Some(Difference::LocalBehind {
                            local_head: seq - 1,
                            witness_head,
                        });
                        return out;
                    }
                    Some(m) if m.hash != one.hash => {
                        out.difference = Some(Difference::Rewritten {
                            seq,
                            local: m.hash,
                            witness: one.hash,
                            consistent_rehash: local_chain_ok,
                        });
                        return out;
                    }
                    Some(_) => out.matched += 1,
                }
            }
            many => {
                out.difference = Some(Difference::Forked {
                    seq,
                    hashes: many.iter().map(|r| r.hash).collect(),
                    local: mine.map(|m| m.hash),
                });
                return out;
            }
        }
    }
    out
}

/// What a witness checkpoint says about the local ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointCheck {
    /// The seq it covers.
    pub seq: u64,
    /// Its head hash.
    pub head: Hash,
    /// Its signature was verified against the given public key.
    pub signature_verified: bool,
    /// What is wrong, or `None` when it agrees with the local ledger.
    pub problem: Option<String>,
}

/// Checks each signed checkpoint the witness holds against the local ledger: its text must
/// parse and name the row's ledger, seq and head; with `key`, its signature must verify;
/// and the local record at its seq must exist and have its head hash.
pub fn check_checkpoints(
    local: &[Record],
    checkpoints: &[WitnessCheckpoint],
    key: Option<&PublicKey>,
) -> Vec<CheckpointCheck> {
    checkpoints
        .iter()
        .map(|cp| {
            let mut check = CheckpointCheck {
                seq: cp.seq,
                head: cp.head,
                signature_verified: false,
                problem: None,
            };
            let parsed = match Checkpoint::parse(&cp.text, "the witness checkpoint") {
                Ok(c) => c,
                Err(e) => {
                    check.problem = Some(format!("its text does not parse: {e}"));
                    return check;
                }
            };
            let a = parsed.anchor();
            if (a.ledger_id, a.seq, a.head) != (cp.ledger_id, cp.seq, cp.head) {
                check.problem =
                    Some("its text names another ledger, seq or head than its row".into());
                return check;
            }
            if let Some(key) = key {
                match verify_checkpoint(&parsed, key) {
                    Ok(_) => check.signature_verified = true,
                    Err(p) => {
                        check.problem = Some(format!("its signature does not verify: {p}"));
                        return check;
                    }
                }
            }
            let mine = usize::try_from(cp.seq.saturating_sub(1))
                .ok()
                .and_then(|i| local.get(i))
                .filter(|r| r.seq == cp.seq);
            check.problem = match mine {
                None => Some(format!(
                    "it vouches for seq {} (head {}), which the local ledger no longer holds",
                    cp.seq,
                    cp.head.short()
                )),
                Some(r) if r.hash != cp.head => Some(format!(
                    "it vouches for head {} at seq {}, the local record there is {}",
                    cp.head.short(),
                    cp.seq,
                    r.hash.short()
                )),
                Some(_) => None,
            };
            check
        })
        .collect()
}

#[cfg(test)]
mod tests;
