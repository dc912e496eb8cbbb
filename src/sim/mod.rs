//! A simulated world for the adapter traits: in-memory [`Docker`](crate::adapters::Docker),
//! [`MetaDb`](crate::adapters::MetaDb), [`Health`](crate::adapters::Health) and
//! [`Clock`](crate::adapters::Clock) over one shared [`World`], so the executor can later
//! be driven without real services, thousands of times, with faults injected (issue 13).
//! Pure in-memory: it never does I/O, never sleeps, and is never used by the CLI.
//!
//! What it models (the effects the runbook relies on, including the partial ones):
//! - containers: create (created, not started), start, stop with a grace period (a stop
//!   that takes longer than the request waits for fails, and the container exits later in
//!   virtual time), rename (`AlreadyRenamed` when done), restart policy update, remove,
//!   labels, logs already written;
//! - exec: `docker_init.sh` runs the emulated migration on the RM database in steps of
//!   virtual time (step counter, `docker_init.log` rewritten in the shared logs folder,
//!   the version row and the success marker at the end; an optional failing step); when it
//!   outlives the exec's timeout it goes on as a running session (`running_execs`,
//!   `inspect_exec`) and finishes later; stopping the container kills it where it is.
//!   `supervisorctl status` (not up yet, STARTING, RUNNING, given up), `cat` of a log and
//!   reconcile's `docker_init*` listing;
//! - the metadata DB: `ha.config` read and compare-and-set, the heartbeat prune in the
//!   real adapter's id-range batches (a [`Fault::Cut`] commits some), drop/create keeping
//!   the charset ("DROP done, CREATE not" is a one-part cut of `recreate_database`), the
//!   server list, the schema version queries of `ledger verify --live`;
//! - health: per base URL, healthy once its container has run for a warm-up, with an
//!   optional flapping pattern; unreachable while the container is down;
//! - a deployment's nodes (issue 15): one engine per node ([`SimDocker::node`]), each seeing
//!   only its own containers and its node's logs folder, all sharing the clock, the
//!   metadata DB and the faults; [`World::yields`] makes await points yield at seeded
//!   points so futures polled side by side take turns;
//! - virtual time ([`SimClock`]): whatever would wait advances the world's clock instead
//!   (stop grace periods, exec run time, `wait_healthy` polling, `wait_for_log_line`);
//! - faults ([`FaultPolicy`], [`SeededFaults`]): per call, fail before the effect with any
//!   error kind of the called adapter, apply the effect and then fail, apply part of it and
//!   fail, or delay; seeded (xorshift, no OS randomness), so a seed reproduces the same
//!   [`World::trace`]; [`World::scripted`] puts one precise fault on a method's next call;
//! - [`World::observed`]: the state an observer sees, without times and ids, to compare a
//!   run with faults against an uninterrupted one;
//! - the action log ([`World::actions`]): every irreversible action (stop, DROP, CREATE,
//!   restore, `docker_init.sh` start, HA write) with its virtual time.
//!
//! What it simplifies or leaves out, honestly:
//! - one shared logs folder (the real one is a bind mount both containers see, so this is
//!   close, but binds are not resolved); file change time equals modification time;
//! - exec output is the whole output, not a bounded tail; env and working folder of an
//!   exec are ignored; a command that is not modelled exits 127 saying so;
//! - containers log one line when started and nothing while a caller waits, so
//!   `wait_for_log_line` finds only lines already there;
//! - database contents are figures (size, heartbeat ids, version row, step counter), not
//!   tables; `query_scalar` answers only the statements `ledger verify --live` sends;
//!   a call's statements are applied under one lock, so a cut inside a call happens only
//!   where a [`Fault::Cut`] puts it (between prune batches, between DROP and CREATE);
//! - the dump engine is not simulated here (it is being put behind a trait separately);
//!   [`World::restore`] records a load for that later simulation;
//! - a health endpoint always answers HTTP 200 with `data.healthy`; TLS is not modelled
//!   except as an injected error kind;
//! - crashing the process is the later simulator's job (this world survives it by design).
//!
//! Every wait and elapsed-time measurement of the executor goes through
//! [`Clock`](crate::adapters::Clock), so with [`SimClock`] it runs in virtual time; the
//! health wait too, through `Health::wait_healthy_on` with the executor's clock.

pub mod adapters;
pub mod driver;
pub mod dumps;
#[cfg(any(test, feature = "sim-bugs"))]
pub mod planted;
pub mod world;

#[cfg(test)]
mod tests;

pub use adapters::{SimClock, SimDocker, SimHealth, SimMetaDb, adapters};
pub use dumps::SimDumps;
pub use world::{
    Action, ActionKind, Adapter, Call, DockerErrorKind, DumpErrorKind, ErrorKind, Fault,
    FaultPolicy, HealthErrorKind, HealthSpot, InitModel, MetaDbErrorKind, NoFaults, SeededFaults,
    SharedWorld, SimContainer, SimDatabase, SimExec, SimFile, SimProgram, TraceEntry, World,
    XorShift, lock,
};
