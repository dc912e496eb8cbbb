//! The read side of the ledger: a run's history as the ledger tells it, decoded and
//! folded into a [`State`]. The one place that turns stored records into what the rest of
//! the program reads: the journal replays through it before it writes, and `status`,
//! `plan`, `ledger verify`, the report and the demo read through it.
//!
//! [`load`] does no more I/O than reading the view it is given; [`load_dir`] opens the
//! ledger read-only first (a reader that must also work while a run holds the ledger opens
//! [`LedgerReader::open_or_live`] and loads its view). With [`Verify::Chain`] the hash chain is checked over the
//! stored bytes (never re-encoded) before anything is decoded: nothing acts on, or shows,
//! a state built from an altered record. A run has tens of records, so the extra pass
//! costs nothing next to what acting on a forged history could.

use std::path::Path;

use crate::events::{self, Recorded, UndecodableRecord};
use crate::ledger::{LedgerError, LedgerReader, LedgerView, Record, verify_chain};
use crate::replay::{Rejection, ReplayError, State, replay};

/// Whether [`load`] checks the hash chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Walk the whole chain over the stored bytes first; a broken chain is
    /// [`HistoryError::Broken`] and nothing is decoded.
    Chain,
    /// The caller has verified the same open view itself (with an anchor or the payload
    /// decoder) and shows a broken chain in its own words: `ledger verify`, the report.
    ByCaller,
}

/// Every record of a ledger, decoded, and the state they fold into.
#[derive(Debug, Clone)]
pub struct History {
    /// Every record, in seq order.
    pub records: Vec<Recorded>,
    /// The state replayed from them.
    pub state: State,
}

/// Why a ledger's history cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The ledger itself failed (busy, missing, damaged store, ...).
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// A stored record's payload does not decode as an event.
    #[error("ledger record {seq} cannot be decoded ({detail}); run `oms-upgrade ledger verify`")]
    Undecodable {
        /// The record.
        seq: u64,
        /// Why.
        detail: String,
    },
    /// A stored record does not fit the run's history (the ledger was edited or mixes
    /// runs): [`State::apply`] rejected it.
    #[error(
        "ledger record {seq} does not fit the run's history: {rejection}; run `oms-upgrade ledger verify`"
    )]
    Inconsistent {
        /// The record.
        seq: u64,
        /// What the core said.
        rejection: Rejection,
    },
    /// The hash chain is broken: the record was altered, so nothing may act on it.
    #[error(
        "the ledger's hash chain is broken at record {seq}: {detail}; nothing was done. Run `oms-upgrade ledger verify`"
    )]
    Broken {
        /// The first bad record.
        seq: u64,
        /// What is wrong there.
        detail: String,
    },
}

impl From<UndecodableRecord> for HistoryError {
    fn from(e: UndecodableRecord) -> Self {
        HistoryError::Undecodable {
            seq: e.seq,
            detail: e.detail,
        }
    }
}

impl From<ReplayError> for HistoryError {
    fn from(e: ReplayError) -> Self {
        HistoryError::Inconsistent {
            seq: e.seq,
            rejection: e.rejection,
        }
    }
}

/// Reads the history in `view`: verifies the chain when `verify` says so, decodes every
/// record ([`events::to_recorded`]) and folds them ([`replay`]). The first problem in seq
/// order is the error: a record that cannot be read or decoded, or one the core rejects.
pub fn load(view: &LedgerView, verify: Verify) -> Result<History, HistoryError> {
    if verify == Verify::Chain
        && let Some(p) = verify_chain(view, None)?.problem
    {
        return Err(HistoryError::Broken {
            seq: p.seq,
            detail: p.detail,
        });
    }
    fold(view.records().map(|r| r.map_err(HistoryError::from)))
}

/// Decodes and folds records that were read and verified elsewhere (the fleet view reads
/// them from the witness, `crate::fleet`): the same decoding and replay as [`load`],
/// without a ledger folder. The caller has verified the chain over the same bytes.
pub fn from_records<'a>(
    records: impl IntoIterator<Item = &'a Record>,
) -> Result<History, HistoryError> {
    fold(records.into_iter().map(|r| Ok(r.clone())))
}

/// Decodes every record ([`events::to_recorded`]) and folds them ([`replay`]).
fn fold(
    stored: impl Iterator<Item = Result<Record, HistoryError>>,
) -> Result<History, HistoryError> {
    // Decoded up to the first record that cannot be; the fold then reports a rejection
    // before it (a lower seq) first, and that record's own problem otherwise.
    let mut records = Vec::new();
    let mut stopped = None;
    for rec in stored {
        match rec.and_then(|r| Ok(events::to_recorded(&r)?)) {
            Ok(r) => records.push(r),
            Err(e) => {
                stopped = Some(e);
                break;
            }
        }
    }
    let state = replay(&records)?;
    match stopped {
        Some(e) => Err(e),
        None => Ok(History { records, state }),
    }
}

/// Opens the ledger in `dir` read-only ([`LedgerReader`]) and [`load`]s it (for `status`,
/// `plan`, the demo and tests).
pub fn load_dir(dir: &Path, verify: Verify) -> Result<History, HistoryError> {
    load(LedgerReader::open(dir)?.view(), verify)
}

#[cfg(test)]
pub(crate) mod tests;
