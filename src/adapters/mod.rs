//! Adapters: the only code that talks to the world. Each is a small trait the executor is
//! generic over, plus the real implementation:
//!
//! - [`docker`]: the Docker engine (inspect, stop, rename, create with the runbook's host
//!   configuration, start, exec, logs, restart) over bollard; and the pure binds
//!   comparison that proves the new container mounts what the old one did.
//! - [`metadb`]: the OMS metadata database over mysql_async: reachability, database
//!   sizes, `ha.config` as a compare-and-set that keeps unknown keys, the heartbeat prune
//!   that also runs on MySQL 8, drop-and-recreate keeping the charset.
//! - [`health`]: OMS's `GET /oms/health` over reqwest.
//! - [`clock`]: the current time, with deterministic clocks for tests.
//! - [`fs`]: free disk space, streaming BLAKE3 of a file, directory fsync.
//!
//! Adapters never append to the ledger and never decide what is permitted: they act and
//! report facts (including "there was nothing to do", so the executor can reconcile an
//! in-doubt step after a crash). Their errors are typed and say what to do.

pub mod clock;
pub mod docker;
pub mod fs;
pub mod health;
pub mod metadb;

pub use clock::{Clock, FixedClock, ManualClock, SystemClock};
pub use docker::{BollardDocker, ContainerInfo, ContainerSpec, Docker, DockerError};
pub use health::{Health, HealthError, HealthReport, HttpHealth};
pub use metadb::{MetaDb, MetaDbError, MysqlMetaDb, TlsState};
