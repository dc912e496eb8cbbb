//! Adapters: the only code that talks to the world. Each is a small trait the executor is
//! generic over, plus the real implementation:
//!
//! - [`docker`]: the Docker engine (inspect, stop, rename, create with the runbook's host
//!   configuration, start, exec, logs, restart) over bollard; and the pure binds
//!   comparison that proves the new container mounts what the old one did.
//! - [`metadb`]: the OMS metadata database over mysql_async: reachability, database
//!   sizes, `ha.config` as a compare-and-set that keeps unknown keys, the heartbeat prune
//!   that also runs on MySQL 8, drop-and-recreate keeping the charset.
//! - [`endpoint`]: where a node's engine is ([`DockerEndpoint`]: local, Unix socket,
//!   `ssh://`, `tcp://` with TLS) and the `ssh` tunnel that reaches a remote one with host
//!   keys checked against a pinned `known_hosts` (docs/transport.md).
//! - [`health`]: OMS's `GET /oms/health` over reqwest.
//! - [`clock`]: the current time, with deterministic clocks for tests.
//! - [`fs`]: free disk space, streaming BLAKE3 of a file, directory fsync.
//! - [`dumps`]: the dump engine as the executor uses it (write a dump, restore one, the
//!   partial files a killed dump left, a recorded dump's BLAKE3, free space in the dump
//!   folder); [`HostDumps`] delegates to [`crate::dump`] and [`fs`].
//!
//! Adapters never append to the ledger and never decide what is permitted: they act and
//! report facts (including "there was nothing to do", so the executor can reconcile an
//! in-doubt step after a crash). Their errors are typed and say what to do.

pub mod clock;
pub mod docker;
pub mod dumps;
pub mod endpoint;
pub mod fs;
pub mod health;
pub mod metadb;

pub use clock::{Clock, Monotonic, SystemClock};
pub use docker::{BollardDocker, ContainerInfo, ContainerSpec, Docker, DockerError};
pub use dumps::{DumpEngine, HostDumps};
pub use endpoint::{DockerEndpoint, EndpointError, SshSettings, TlsFiles};
pub use health::{Health, HealthError, HealthReport, HttpHealth};
pub use metadb::{MetaDb, MetaDbError, MysqlMetaDb, TlsState};

/// Fault injection for the crash tests: with the `failpoints` feature and
/// `FAILPOINTS="<name>=return"`, the process aborts right here, as a power cut or `kill -9`
/// would stop it, and says which point fired. Without the feature this compiles to nothing.
/// The executor's crash points between steps and the ones inside an adapter call (where a
/// step can be cut in half) all go through here, so the tests read one line format.
#[allow(unused_variables)]
pub(crate) fn crash_point(name: &str) {
    #[cfg(feature = "failpoints")]
    fail::fail_point!(name, |_| {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    });
}
