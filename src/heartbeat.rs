//! The heartbeat prune's one rule shared by the metadata adapter (which prunes) and the
//! pure estimate (which predicts the prune's time): where it switches method.
//!
//! Apart from `sqltext` so that `estimate`, which the stored plan types use, does not
//! import the SQL texts (and through them the event types) back.
//!
//! Must never: do I/O.

/// Below this many heartbeat rows (estimated as `max(id) - min(id)`) the prune deletes in
/// batches: a few DELETEs are then as fast as the table swap (`sqltext::HeartbeatSwap`) and
/// touch nothing but rows.
pub const HEARTBEAT_SWAP_MIN_ROWS: u64 = 50_000;
