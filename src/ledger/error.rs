//! Errors of the ledger's storage layer. Each message names the ledger folder and says what
//! to do; the CLI sorts them into exit kinds (`src/cli/ledger.rs`).

use std::path::PathBuf;

use super::record::{EncodeError, ParseError};

/// Why a ledger operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The ledger folder does not exist (readers and `open_existing_writer` never create one).
    #[error(
        "no ledger at {path}: the folder does not exist; check --ledger (or OMS_UPGRADE_LEDGER)"
    )]
    Missing {
        /// The folder asked for.
        path: PathBuf,
    },

    /// The folder exists but is not an oms-upgrade ledger.
    #[error("{path} is not an oms-upgrade ledger: {reason}")]
    NotALedger {
        /// The folder asked for.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// Another process holds the ledger (one writer at a time; sled 0.34 also cannot be
    /// opened by a reader while any other process has it open).
    #[error(
        "ledger {path} is held by another run ({holder}); only one oms-upgrade may open a ledger \
         at a time"
    )]
    Busy {
        /// The ledger folder.
        path: PathBuf,
        /// Who holds it, as written in the lock file by the holder.
        holder: String,
    },

    /// Another process holds the ledger and no copy taken for a live read verified
    /// (`LedgerReader::open_or_live`): each was torn by the holder's appends or refused.
    #[error(
        "ledger {path} is held by another run ({holder}) and none of {attempts} copies taken \
         for a live read verified (last: {last})"
    )]
    LiveUnreadable {
        /// The ledger folder.
        path: PathBuf,
        /// Who holds it, as written in the lock file by the holder.
        holder: String,
        /// Copies taken.
        attempts: u32,
        /// Why the last copy was not usable.
        last: String,
    },

    /// The filesystem refused something.
    #[error("ledger {path}: cannot {action}: {source}")]
    Io {
        /// The ledger folder.
        path: PathBuf,
        /// What was attempted.
        action: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// sled reported an error (I/O or its own corruption detection).
    #[error("ledger {path}: the sled database failed: {source}")]
    Store {
        /// The ledger folder.
        path: PathBuf,
        /// sled's error.
        #[source]
        source: sled::Error,
    },

    /// The record cannot be encoded (empty event type, too large).
    #[error("cannot append to ledger {path}: {source}")]
    Encode {
        /// The ledger folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: EncodeError,
    },

    /// The newest record, which the writer chains onto, is damaged. Appending would hide the
    /// damage behind a valid-looking link, so the writer refuses.
    #[error(
        "ledger {path}: the newest record (seq {seq}) is damaged ({reason}); refusing to append. \
         Run `oms-upgrade ledger verify` and keep the folder as evidence"
    )]
    DamagedHead {
        /// The ledger folder.
        path: PathBuf,
        /// The sled key of the newest record.
        seq: u64,
        /// What is wrong.
        reason: String,
    },

    /// A stored record does not parse (reading, not verifying: `verify` reports this as a
    /// finding instead of an error).
    #[error("ledger {path}: the record stored under seq {seq} cannot be read: {source}")]
    Malformed {
        /// The ledger folder.
        path: PathBuf,
        /// The sled key.
        seq: u64,
        /// Why.
        #[source]
        source: ParseError,
    },

    /// The append could not be made durable. The record may or may not be on disk; the
    /// handle is poisoned and nothing may rely on the append.
    #[error(
        "ledger {path}: the append of seq {seq} could not be made durable ({source}); this handle \
         refuses further appends. Reopen the ledger and run `oms-upgrade ledger verify`"
    )]
    NotDurable {
        /// The ledger folder.
        path: PathBuf,
        /// The sequence number whose append failed.
        seq: u64,
        /// The underlying failure.
        #[source]
        source: Box<LedgerError>,
    },

    /// An earlier append on this handle failed; the handle refuses further appends.
    #[error(
        "ledger {path}: an earlier append on this handle failed, so it refuses further appends; \
         reopen the ledger and run `oms-upgrade ledger verify`"
    )]
    Poisoned {
        /// The ledger folder.
        path: PathBuf,
    },

    /// A record already exists under the sequence number being appended: something wrote to
    /// the ledger without holding its lock.
    #[error(
        "ledger {path}: a record already exists under seq {seq}; something wrote to the ledger \
         behind the writer's back. Run `oms-upgrade ledger verify` and keep the folder as evidence"
    )]
    Conflict {
        /// The ledger folder.
        path: PathBuf,
        /// The sequence number.
        seq: u64,
    },

    /// The ledger folder (or the folder it would be created in) is a symlink, owned by
    /// someone else, or writable by others: they could swap or plant files in it.
    #[error(transparent)]
    UnsafeFolder(#[from] crate::safefs::SafeFsError),
}
