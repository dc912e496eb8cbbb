//! JSON views of records: the JSON Lines export (`ledger export`) and the per-record
//! objects of `ledger log --json`.
//!
//! An export is for people and for independent verification: every record line carries the
//! exact stored bytes (base64), so `ledger-schema/verify_export.py` can recompute the chain
//! without trusting anything else in the line; the hashes and the decoded view are there
//! for humans. Damaged records are exported too (with an `error` instead of a view): an
//! export is evidence, not a clean-up. Format: `ledger-schema/RECORD.md`, "Export", and
//! `ledger-schema/export-line.schema.json`.

use std::io::Write;

use base64::Engine as _;
use serde_json::{Value, json};

use super::PayloadDecoder;
use super::error::LedgerError;
use super::record::{HASH_LEN, RecordRef, rfc3339_micros};
use super::store::{LedgerView, key_seq};

/// Value of the `format` field of an export's header line.
pub const EXPORT_FORMAT: &str = "oms-upgrade-ledger-export";
/// Export format version.
pub const EXPORT_VERSION: u32 = 1;

/// The decoded view of a parsed record: header fields, and the payload as the decoder shows
/// it (`payload`) or why it cannot (`payload_error`).
pub fn record_view(r: &RecordRef<'_>, decoder: &dyn PayloadDecoder) -> Value {
    let (payload, payload_error) =
        match decoder.decode_view(r.event_type, r.schema_version, r.payload) {
            Ok(v) => (v, Value::Null),
            Err(e) => (Value::Null, Value::String(e)),
        };
    json!({
        "format_version": r.format_version,
        "seq": r.seq,
        "ledger_id": r.ledger_id.hyphenated().to_string(),
        "time": rfc3339_micros(r.timestamp_micros),
        "timestamp_micros": r.timestamp_micros,
        "run_id": r.run_id.hyphenated().to_string(),
        "operator": r.operator,
        "host": r.host,
        "event_type": r.event_type,
        "schema_version": r.schema_version,
        "payload_len": r.payload.len(),
        "payload": payload,
        "payload_error": payload_error,
    })
}

/// One export line for a stored `(key, bytes)` pair.
pub fn export_line(key: &[u8], stored: &[u8], decoder: &dyn PayloadDecoder) -> Value {
    let (hash, prev_hash, decoded, error) = match RecordRef::parse(stored) {
        Ok(r) => (
            Value::String(r.hash.to_hex()),
            Value::String(r.prev_hash.to_hex()),
            record_view(&r, decoder),
            Value::Null,
        ),
        Err(e) => {
            // Show the trailing bytes where the hash would be, so a human can still compare.
            let hash = if stored.len() >= HASH_LEN {
                Value::String(hex::encode(&stored[stored.len() - HASH_LEN..]))
            } else {
                Value::Null
            };
            (hash, Value::Null, Value::Null, Value::String(e.to_string()))
        }
    };
    json!({
        "seq": key_seq(key),
        "key": hex::encode(key),
        "stored": base64::engine::general_purpose::STANDARD.encode(stored),
        "hash": hash,
        "prev_hash": prev_hash,
        "decoded": decoded,
        "error": error,
    })
}

/// The header line that opens every export.
pub fn export_header(view: &LedgerView) -> Value {
    export_header_for(view.ledger_id())
}

/// The header line for ledger `ledger_id` (also opens each ledger of a fleet export,
/// written from the witness rows).
pub fn export_header_for(ledger_id: uuid::Uuid) -> Value {
    json!({
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "ledger_id": ledger_id.hyphenated().to_string(),
    })
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The ledger could not be read.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The output could not be written.
    #[error("cannot write the export: {0}")]
    Write(#[source] std::io::Error),
}

/// Writes the whole ledger as JSON Lines (header line, then one line per stored record in
/// key order) and returns the number of record lines.
pub fn export(
    view: &LedgerView,
    decoder: &dyn PayloadDecoder,
    out: &mut dyn Write,
) -> Result<u64, ExportError> {
    let mut line = |v: &Value| -> Result<(), ExportError> {
        serde_json::to_writer(&mut *out, v).map_err(|e| ExportError::Write(e.into()))?;
        out.write_all(b"\n").map_err(ExportError::Write)
    };
    line(&export_header(view))?;
    let mut n = 0;
    for entry in view.entries() {
        let (k, v) = entry?;
        line(&export_line(&k, &v, decoder))?;
        n += 1;
    }
    out.flush().map_err(ExportError::Write)?;
    Ok(n)
}
