//! oms-upgrade: performs and records upgrades (and rollbacks) of OceanBase Migration
//! Service Community Edition running in Docker.
//!
//! The crate is split into a pure core (no I/O, no clock), an adapters layer that talks
//! to the world, and a ledger that records everything. See `docs/ARCHITECTURE.md` for the
//! code map and the invariants every module keeps.

// Which build this is: version, git commit, build date (build.rs).
pub mod build_info;

// Safe folders and files: ownership and mode checks, O_EXCL|O_NOFOLLOW, atomic writes.
pub mod safefs;

// Ledger: the hash-chained, append-only record. Knows bytes, not events.
pub mod ledger;

// What a dump file is (dumper, compression, checksum method) and a file's size + BLAKE3:
// shared by the backup engine and the event vocabulary, below both.
pub mod digest;
pub mod dumpkind;

// Pure core: event vocabulary, replay, permitted steps, version paths, refetch rule, and
// the rules of `init`'s preflight, the deployment's inventory.
pub mod estimate;
pub mod events;
pub mod haconfig;
pub mod heartbeat;
pub mod inventory;
pub mod preflight;
pub mod refetch;
pub mod replay;
pub mod steps;
pub mod versions;

// The read side of the ledger: records decoded and folded into the run's state, once.
pub mod history;

// The SQL the metadata-database adapter runs, also printed by `plan` (one source).
pub mod sqltext;

// Secrets that never print, secrets masked in recorded text, and where the metadata
// database is.
pub mod dbconn;
pub mod redact;
pub mod secret;

// Sizes as people write them (`64K`) and read them (`1.5 KiB`).
pub mod units;

// OMS's own config file (config.yaml), shared by the tool and the emulator.
pub mod omsconfig;

// Backup and restore engine for the metadata databases.
pub mod dump;

// Adapters: Docker, metadata DB, health, clock. The only code that touches the world.
pub mod adapters;

// The witness: the ledger's records copied, as written, to an append-only table off the node.
pub mod witness;

// The fleet view: every ledger on the witness, verified and summarised from its rows alone.
pub mod fleet;

// A simulated world for the adapter traits (in memory, no I/O; never used by the CLI).
pub mod sim;

// What the new container inherits from the old one: record, observe, compare.
pub mod inherit;

// The demo: an emulated OMS node set up and upgraded end to end, its cleanup, and the
// emulator's container images (built without a registry). Talks to Docker, MariaDB and
// the file system so that the CLI's `demo` command only parses and prints.
pub mod demo;

// The imperative shell: runs the core's steps through the adapters, recording each.
pub mod executor;

// The upgrade report (Markdown, HTML, JSON) built from the ledger alone.
pub mod report;

// Drift: the recorded end state compared with what was observed (`ledger verify --live`).
pub mod drift;

// Command-line edge: argument parsing, output, error -> exit code.
pub mod cli;
