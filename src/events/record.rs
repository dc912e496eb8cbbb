//! A stored ledger record read as an event: the one conversion from the ledger's bytes
//! (which know nothing of events) to the core's [`Recorded`]. Pure: no I/O.

use chrono::{TimeZone, Utc};

use super::{Recorded, decode};
use crate::ledger::Record;

/// A stored record that does not read as an event of this build's vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ledger record {seq} cannot be decoded ({detail})")]
pub struct UndecodableRecord {
    /// The record.
    pub seq: u64,
    /// Why (the decoder's words, or a timestamp out of range).
    pub detail: String,
}

/// Decodes one ledger record into the core's view: its payload as an event, its timestamp
/// as a time, and the who/where/which-run the record carries.
pub fn to_recorded(rec: &Record) -> Result<Recorded, UndecodableRecord> {
    let undecodable = |detail: String| UndecodableRecord {
        seq: rec.seq,
        detail,
    };
    let event = decode(&rec.event_type, rec.schema_version, &rec.payload)
        .map_err(|e| undecodable(e.to_string()))?;
    let at = Utc
        .timestamp_micros(rec.timestamp_micros)
        .single()
        .ok_or_else(|| undecodable("timestamp out of range".into()))?;
    Ok(Recorded {
        seq: rec.seq,
        at,
        operator: rec.operator.clone(),
        host: rec.host.clone(),
        run_id: rec.run_id,
        event,
    })
}
