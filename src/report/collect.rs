//! Gathers what a report is built from: the ledger's records and replayed state, the
//! chain's verification (against a checkpoint when one is given) and a re-hash of every
//! dump file the ledger names. The only part of the report module that reads anything;
//! it writes nothing (the ledger is opened with [`LedgerReader`], or read from a verified
//! copy while a run holds it).

use std::path::{Path, PathBuf};

use super::{DumpFileCheck, Verification};
use crate::digest::FileDigest;
use crate::events::{DumpArtifact, EventDecoder, Recorded};
use crate::history::{self, History, HistoryError, Verify};
use crate::ledger::{Anchor, LedgerError, LedgerReader, LiveRead, verify};
use crate::replay::State;

/// Why a report cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// The ledger cannot be opened or read.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// A record does not decode or does not fit the run: there is no coherent story to
    /// report. `ledger verify` and `ledger export` show what is stored.
    #[error("{source}")]
    Unreadable {
        /// What the read side said.
        #[source]
        source: HistoryError,
        /// What `ledger verify` found, if anything (often the same record).
        verify_problem: Option<String>,
    },
    /// The ledger holds no record.
    #[error("the ledger in {} records nothing yet: there is no run to report", .path.display())]
    Empty {
        /// The ledger folder.
        path: PathBuf,
    },
}

/// The inputs of [`super::build`].
#[derive(Debug, Clone)]
pub struct Collected {
    /// Every record, decoded.
    pub records: Vec<Recorded>,
    /// The state replayed from them.
    pub state: State,
    /// What was verified.
    pub verification: Verification,
    /// Set when a run held the ledger and a verified copy was read instead.
    pub live: Option<LiveRead>,
}

/// Opens the ledger in `dir` read-only, verifies it (against `anchor` when given), replays
/// it, and re-hashes the dumps it records. A broken chain is not an error here: the report
/// says so; records that cannot be decoded or replayed are.
///
/// While a run holds the ledger, a verified copy is read instead ([`LedgerReader::open_or_live`])
/// and [`Collected::live`] says so.
pub fn collect(dir: &Path, anchor: Option<&Anchor>) -> Result<Collected, CollectError> {
    let reader = LedgerReader::open_or_live(dir)?;
    // Verification and replay read the same open handle, so they see the same records.
    let report = verify(reader.view(), anchor, &EventDecoder)?;
    let verify_problem = report
        .problem
        .as_ref()
        .map(|p| format!("{} at seq {}: {}", p.kind.as_str(), p.seq, p.detail));
    // The chain was just verified (with the anchor) and a broken one is reported, not
    // refused: the history is read without a second walk.
    let History { records, state } =
        history::load(reader.view(), Verify::ByCaller).map_err(|source| match source {
            HistoryError::Ledger(e) => CollectError::Ledger(e),
            source => CollectError::Unreadable {
                source,
                verify_problem,
            },
        })?;
    if records.is_empty() {
        return Err(CollectError::Empty {
            path: dir.to_path_buf(),
        });
    }
    let dumps = state.artifacts().into_iter().map(check_dump_file).collect();
    let verification = Verification::from_verify_report(&report, dumps);
    Ok(Collected {
        records,
        state,
        verification,
        live: reader.live().cloned(),
    })
}

/// Re-hashes one recorded dump file: present, and equal in size and BLAKE3 to the record.
pub fn check_dump_file(a: &DumpArtifact) -> DumpFileCheck {
    match FileDigest::of_file(Path::new(&a.file)) {
        Ok(found) => DumpFileCheck {
            db: a.db,
            file: a.file.clone(),
            present: true,
            matches: found.check(a.size, &a.blake3_hex).is_ok(),
            found_size: Some(found.size),
            found_blake3: Some(found.blake3_hex),
            error: None,
        },
        Err(e) => DumpFileCheck {
            db: a.db,
            file: a.file.clone(),
            present: false,
            matches: false,
            found_size: None,
            found_blake3: None,
            error: Some(format!("cannot read `{}`: {e}", a.file)),
        },
    }
}
