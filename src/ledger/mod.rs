//! The ledger: an append-only, hash-chained sequence of records in a sled database, the
//! only memory oms-upgrade has.
//!
//! It knows bytes, not events: a record carries an opaque payload tagged with an event type
//! name and schema version, and everything that must interpret payloads goes through the
//! [`PayloadDecoder`] the caller passes in. The byte layout, hash construction, folder
//! layout, checkpoint text and export format are specified in `ledger-schema/RECORD.md`.
//!
//! - [`record`]: the stored layout and the BLAKE3 hash (the only place that knows bytes);
//! - [`store`]: the sled database, the one-process lock, durable [`Ledger::append`], and
//!   [`LedgerReader`] for read-only commands;
//! - [`verify()`]: walks the stored bytes and reports the first bad sequence number;
//! - [`anchor`]: checkpoints that catch a cut tail or a ledger swapped for an older copy;
//! - [`sign`]: Ed25519 keys that sign checkpoints, and the check of a signed checkpoint;
//! - [`trust`]: whether a ledger still extends the signed checkpoint kept beside it (the
//!   check `run` and `rollback` make before acting when a key is configured);
//! - [`export()`]: JSON Lines export and JSON views for people.
//!
//! Guarantees kept here: `append` returns only once the record is durable, and a failed
//! append poisons the handle; one process at a time opens a ledger; verification hashes the
//! stored bytes and never re-encodes a decoded value.

pub mod anchor;
pub mod error;
pub mod export;
pub mod live;
pub mod record;
pub mod sign;
pub mod store;
pub mod trust;
pub mod verify;

pub use anchor::{Anchor, AnchorError, Checkpoint, SignedCheckpoint};
pub use error::LedgerError;
pub use export::{ExportError, export};
pub use record::{Hash, NewRecord, Record};
pub use store::LiveRead;
pub use store::{Ledger, LedgerReader, LedgerView};
pub use verify::{Problem, ProblemKind, VerifyReport, verify, verify_chain, verify_pairs};

/// Lets the ledger show and check payloads without knowing the event vocabulary.
///
/// The ledger stores payloads as opaque bytes tagged with an event type name and a schema
/// version. `verify` uses this to flag undecodable payloads and `export`/`log` to show a
/// decoded view; the implementation lives with the events (`crate::events`).
pub trait PayloadDecoder {
    /// Decodes a payload into a JSON view for humans, or says why it cannot be decoded.
    fn decode_view(
        &self,
        event_type: &str,
        schema_version: u16,
        payload: &[u8],
    ) -> Result<serde_json::Value, String>;
}
