//! The ledger: an append-only, hash-chained sequence of records in a sled database.
//! (under construction: see docs/ARCHITECTURE.md and ledger-schema/)

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
