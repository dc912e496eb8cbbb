//! Known bugs the simulator's own tests plant in the executor, to show that the simulator
//! finds them (issue 13). Compiled only into the crate's tests and with the `sim-bugs`
//! feature, never into a release build. The switch is per thread (the driver runs a seed
//! on one thread, and the lib's other tests run on theirs), so a planted bug never leaks
//! into a test that did not plant it.

use std::cell::Cell;

/// A bug the executor can be made to have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// Reconciliation treats every step in doubt as never started (no look at reality).
    InDoubtIsNotStarted,
    /// `rollback-enable-ha` is not idempotent: it flips HA's switch instead of setting it,
    /// so performed again after it took effect it switches HA off.
    RollbackNotIdempotent,
    /// A step's intent is appended after its side effect instead of before.
    IntentAfterEffect,
    /// A deployment's rollback stops only node 0's new container: every other node's
    /// `stop-new` records "nothing to stop" without looking, so the node's new container
    /// goes on running beside its old one (issue 15).
    StopNewOnlyOnNodeZero,
}

thread_local! {
    static PLANTED: Cell<Option<Bug>> = const { Cell::new(None) };
}

/// Plants `bug` (or none) for this thread.
pub fn plant(bug: Option<Bug>) {
    PLANTED.with(|p| p.set(bug));
}

/// Whether `bug` is planted on this thread.
pub fn is(bug: Bug) -> bool {
    PLANTED.with(|p| p.get() == Some(bug))
}
