//! The event vocabulary. (under construction: a placeholder decoder until the vocabulary lands)

use crate::ledger::PayloadDecoder;

/// Decodes event payloads for the ledger's verify/log/export views.
#[derive(Debug, Default, Clone, Copy)]
pub struct EventDecoder;

impl PayloadDecoder for EventDecoder {
    fn decode_view(
        &self,
        event_type: &str,
        _v: u16,
        _p: &[u8],
    ) -> Result<serde_json::Value, String> {
        Err(format!("unknown event type `{event_type}`"))
    }
}
