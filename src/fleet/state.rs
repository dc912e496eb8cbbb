//! The state file of `fleet verify --state FILE`: the last verified (ledger id, seq, head
//! hash) of every ledger, kept outside the witness database, so that a later witness that
//! does not extend it is refused and named. This is the transparency-log witness pattern:
//! whoever can rewrite the witness rows (a database administrator) can make a consistent
//! history (re-hashed chain) or cut a tail, and only a copy of an earlier head kept
//! elsewhere shows it.
//!
//! Pure: [`parse`] validates the file's text (it is input: format, version, every entry),
//! [`check`] compares it with a [`FleetCheck`], [`next`] computes the state to write back
//! and [`to_text`] its text. The CLI writes it atomically. Layout: `ledger-schema/WITNESS.md`,
//! "State file".

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::FleetCheck;
use crate::ledger::Hash;
use crate::witness::WitnessTarget;

/// The `format` field of a state file.
pub const STATE_FORMAT: &str = "oms-upgrade-fleet-state";
/// The state file layout's version.
pub const STATE_VERSION: u32 = 1;

/// The last verified head of one ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEntry {
    /// The ledger.
    pub ledger_id: Uuid,
    /// The seq of its verified head.
    pub seq: u64,
    /// The head's hash.
    pub head: Hash,
}

/// A state file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetState {
    /// The witness it was verified against (`mysql://USER@HOST:PORT/DB`, no password).
    pub witness: String,
    /// One entry per ledger, by ledger id.
    pub ledgers: BTreeMap<Uuid, StateEntry>,
}

/// The file as stored (JSON).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    format: String,
    version: u32,
    witness: String,
    ledgers: Vec<EntryFile>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFile {
    ledger_id: String,
    seq: u64,
    head: String,
}

/// Why a state file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// Not a state file of this layout.
    #[error("the state file is not an oms-upgrade fleet state file: {0}")]
    Malformed(String),
    /// A version this build does not read.
    #[error("the state file has version {0}; this build reads version {STATE_VERSION}")]
    UnknownVersion(u32),
    /// An entry is not valid.
    #[error("the state file's entry {index} is not valid: {reason}")]
    BadEntry {
        /// 0-based index in `ledgers`.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// It was kept for another witness (server or database; the user may differ).
    #[error("the state file is for the witness {file}, not {given}")]
    OtherWitness {
        /// The file's witness.
        file: String,
        /// The witness given.
        given: String,
    },
}

/// Parses and validates a state file's text for witness `witness` (its display form): the
/// file must name the same server and database.
pub fn parse(text: &str, witness: &str) -> Result<FleetState, StateError> {
    // The version is read before anything else, so a newer layout is named as such.
    let raw: serde_json::Value =
        serde_json::from_str(text).map_err(|e| StateError::Malformed(e.to_string()))?;
    if raw.get("format").and_then(|f| f.as_str()) != Some(STATE_FORMAT) {
        return Err(StateError::Malformed(format!(
            "its `format` field is not \"{STATE_FORMAT}\""
        )));
    }
    match raw.get("version").and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(STATE_VERSION) => {}
        Some(v) => return Err(StateError::UnknownVersion(v.min(u64::from(u32::MAX)) as u32)),
        None => {
            return Err(StateError::Malformed(
                "its `version` field is missing or not a number".into(),
            ));
        }
    }
    let file: StateFile =
        serde_json::from_value(raw).map_err(|e| StateError::Malformed(e.to_string()))?;
    // The same server and database, whichever user reads it (the writer, an auditor).
    let place = |url: &str| {
        WitnessTarget::parse(url)
            .ok()
            .map(|t| (t.host, t.port, t.database))
    };
    let recorded = place(&file.witness).ok_or_else(|| {
        StateError::Malformed(format!(
            "its `witness` field `{}` is not a witness URL",
            file.witness
        ))
    })?;
    if place(witness) != Some(recorded) {
        return Err(StateError::OtherWitness {
            file: file.witness,
            given: witness.to_string(),
        });
    }
    let mut ledgers = BTreeMap::new();
    for (index, e) in file.ledgers.iter().enumerate() {
        let bad = |reason: String| StateError::BadEntry { index, reason };
        let ledger_id = Uuid::parse_str(&e.ledger_id)
            .map_err(|_| bad(format!("`{}` is not a ledger id (UUID)", e.ledger_id)))?;
        if e.seq == 0 {
            return Err(bad("seq 0: records start at seq 1".into()));
        }
        let head = Hash::from_hex(&e.head)
            .filter(|_| e.head.len() == 64)
            .ok_or_else(|| bad(format!("`{}` is not a 64-hex-digit hash", e.head)))?;
        let entry = StateEntry {
            ledger_id,
            seq: e.seq,
            head,
        };
        if ledgers.insert(ledger_id, entry).is_some() {
            return Err(bad(format!("ledger {ledger_id} is listed twice")));
        }
    }
    Ok(FleetState {
        witness: file.witness,
        ledgers,
    })
}

/// What the state file says of one ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateFinding {
    /// The ledger.
    pub ledger_id: Uuid,
    /// The witness extends the recorded head.
    pub ok: bool,
    /// `extends`, `new` (not in the state yet), `truncated`, `rewritten`, `not_extended`
    /// (the chain breaks before the recorded seq) or `ledger_missing`.
    pub kind: &'static str,
    /// The recorded seq, when the state has the ledger.
    pub recorded_seq: Option<u64>,
    /// The recorded head hash, hex.
    pub recorded_head: Option<String>,
    /// In words.
    pub detail: String,
}

/// Compares `state` with the checked fleet, filling each ledger's
/// [`LedgerCheck::state`](super::LedgerCheck::state) and [`FleetCheck::missing`] (pure).
pub fn check(state: &FleetState, fleet: &mut FleetCheck) {
    let on_witness: BTreeSet<Uuid> = fleet.ledgers.iter().map(|l| l.ledger_id).collect();
    for l in &mut fleet.ledgers {
        let Some(e) = state.ledgers.get(&l.ledger_id) else {
            l.state = Some(StateFinding {
                ledger_id: l.ledger_id,
                ok: true,
                kind: "new",
                recorded_seq: None,
                recorded_head: None,
                detail: "not in the state file yet".into(),
            });
            continue;
        };
        let finding = |ok, kind, detail| StateFinding {
            ledger_id: l.ledger_id,
            ok,
            kind,
            recorded_seq: Some(e.seq),
            recorded_head: Some(e.head.to_hex()),
            detail,
        };
        let at = usize::try_from(e.seq - 1).ok().and_then(|i| l.chain.get(i));
        l.state = Some(match at {
            Some(h) if *h == e.head => finding(
                true,
                "extends",
                format!(
                    "extends the recorded head seq {} to seq {}",
                    e.seq,
                    l.head_seq.unwrap_or(0)
                ),
            ),
            Some(h) => finding(
                false,
                "rewritten",
                format!(
                    "the witness's record at the recorded seq {} has hash {h}, the state \
                     recorded {}: the ledger's rows were rewritten on the witness",
                    e.seq, e.head
                ),
            ),
            None => match &l.problem {
                Some(p) if p.seq <= e.seq => finding(
                    false,
                    "not_extended",
                    format!(
                        "the witness's chain breaks at seq {} ({}), before the recorded head \
                         seq {}: it does not lead to it",
                        p.seq, p.kind, e.seq
                    ),
                ),
                _ => finding(
                    false,
                    "truncated",
                    format!(
                        "the witness holds {} verified record(s), the state recorded seq {}: \
                         records were removed from the witness",
                        l.verified, e.seq
                    ),
                ),
            },
        });
    }
    fleet.missing = state
        .ledgers
        .values()
        .filter(|e| !on_witness.contains(&e.ledger_id))
        .map(|e| StateFinding {
            ledger_id: e.ledger_id,
            ok: false,
            kind: "ledger_missing",
            recorded_seq: Some(e.seq),
            recorded_head: Some(e.head.to_hex()),
            detail: format!(
                "the state recorded ledger {} at seq {}, the witness no longer holds it",
                e.ledger_id, e.seq
            ),
        })
        .collect();
}

/// The state to write back: every ledger that verified (and extends its entry) at its
/// new head; every other ledger keeps its old entry, so a failure is never forgotten by
/// running verify twice (pure).
pub fn next(previous: Option<&FleetState>, fleet: &FleetCheck, witness: &str) -> FleetState {
    let mut ledgers = previous.map(|s| s.ledgers.clone()).unwrap_or_default();
    for l in fleet.ledgers.iter().filter(|l| l.ok()) {
        if let (Some(seq), Some(head)) = (l.head_seq, l.chain.last()) {
            ledgers.insert(
                l.ledger_id,
                StateEntry {
                    ledger_id: l.ledger_id,
                    seq,
                    head: *head,
                },
            );
        }
    }
    FleetState {
        witness: witness.to_string(),
        ledgers,
    }
}

/// The state file's text (pretty JSON, one trailing newline).
pub fn to_text(state: &FleetState) -> String {
    let file = StateFile {
        format: STATE_FORMAT.to_string(),
        version: STATE_VERSION,
        witness: state.witness.clone(),
        ledgers: state
            .ledgers
            .values()
            .map(|e| EntryFile {
                ledger_id: e.ledger_id.hyphenated().to_string(),
                seq: e.seq,
                head: e.head.to_hex(),
            })
            .collect(),
    };
    let mut s = serde_json::to_string_pretty(&file).expect("a state file always serializes");
    s.push('\n');
    s
}
