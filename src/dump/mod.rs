//! Backup and restore engine for the OMS metadata databases.
//!
//! A dump is one `.sql` (or `.sql.zst`) file per database, written by the native dumper
//! (mysql_async, one consistent snapshot, no client binaries needed) or by
//! `mariadb-dump`/`mysqldump`, always through the same writer: streamed to `<name>.part`,
//! BLAKE3 over the bytes on disk, fsynced, checked, renamed; files 0600 in a 0700 folder.
//! Each dump is described by a [`DumpArtifact`] (file facts plus per-table row counts and
//! checksums taken in the dump's snapshot); `backup` also writes them to `manifest.json`.
//! Restore refuses a file whose BLAKE3 does not match before touching the server, and
//! proves the result by recomputing the per-table facts.
//!
//! The engine knows nothing about the ledger: the upgrade records the artifacts it returns.
//! Design notes and measurements: `docs/backup.md`.
//!
//! Entry points: [`dump_database`], [`backup`], [`verify_artifact`], [`restore_database`],
//! [`restore`], [`table_facts`], [`verify_database`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

mod artifact;
mod external;
mod facts;
#[doc(hidden)]
pub mod fuzz_hooks;
mod native;
mod parallel;
mod partial;
mod pieces;
mod progress;
mod ranges;
mod restore;
mod sections;
mod splitter;
mod sqlvalue;
mod trail;
mod wire;
mod writer;

pub use artifact::{
    ChecksumMethod, Compression, DumpArtifact, Dumper, MANIFEST_FILE, MANIFEST_VERSION, Manifest,
    TableFact, check_names, check_names_known, is_plain_name, read_in_folder, read_manifest_bytes,
    verify_artifact,
};
pub use external::{DUMPER_NAMES, DumperFlavour, dumper_args, resolve_program};
pub use facts::{table_facts, table_facts_with};
pub use partial::{PartialFile, is_partial_name, partial_files};
pub use progress::{Bars, Progress, Quiet, for_terminal};
pub use restore::{
    DEFAULT_SPLIT_BYTES, LoadMode, RestoreOptions, RestoreReport, TableDiff, restore,
    restore_database, verify_database,
};
pub use splitter::Splitter;
pub use wire::WireUse;
pub use writer::TRAILER;

use crate::dbconn::DbTarget;

/// [`DumpOptions::split_table_bytes`] by default: below this, one connection's read of a
/// table is short enough that the ranges' extra queries and spool files are not worth it.
pub const DEFAULT_SPLIT_TABLE_BYTES: u64 = 256 << 20;

/// How to dump.
#[derive(Debug, Clone)]
pub struct DumpOptions {
    /// Which dumper.
    pub dumper: Dumper,
    /// The external dumper's path; default: the first of [`DUMPER_NAMES`] on `PATH`.
    pub dumper_path: Option<PathBuf>,
    /// Encoding of the files on disk.
    pub compression: Compression,
    /// Connections dumping at the same time. The native dumper dumps tables in parallel over
    /// this many connections sharing one snapshot (falling back to one connection and
    /// snapshot per database, this many databases at once, where `LOCK TABLES` is refused);
    /// external mode runs this many dumpers (one per database) in [`backup`].
    pub jobs: usize,
    /// Native dumper: an INSERT statement is closed once it reaches this size (one bigger row
    /// makes one bigger statement). Must stay below the target's `max_allowed_packet`.
    pub max_statement_bytes: usize,
    /// Checksum method for the table facts. `None` picks the cheapest for the dumper: the
    /// native dumper hashes the rows it writes ([`ChecksumMethod::Blake3Rows`], no extra
    /// pass); external mode asks the server (`CHECKSUM TABLE`, BLAKE3 rows where the server
    /// cannot).
    pub checksum: Option<ChecksumMethod>,
    /// Replace existing dump files (and manifest) instead of refusing.
    pub overwrite: bool,
    /// Native dumper: which client the dump connections read rows with (the wire
    /// client by default where it can serve the target; tests force either path).
    pub wire: WireUse,
    /// issue 16: base tables of the dumped database left out, by exact name (never a
    /// pattern): the executor passes the run's own `<old>` heartbeat table (the prune's
    /// swap renamed the old rows into it; it is counted and dropped after T2) for the
    /// cm_hb dump only. Empty everywhere else. The dump's log names what it left out.
    pub exclude_tables: Vec<String>,
    /// Native dumper, table-parallel path: a table whose primary key is one integer column
    /// and whose estimated size is at least this many bytes (and more than an even share
    /// of all the dumped tables over `jobs`) is read in key ranges over several
    /// connections of the dump's snapshot (the file is the same bytes; see `ranges.rs`).
    /// `None`: never. Tests force it low or off.
    pub split_table_bytes: Option<u64>,
}

impl Default for DumpOptions {
    fn default() -> Self {
        DumpOptions {
            dumper: Dumper::Native,
            dumper_path: None,
            compression: Compression::None,
            jobs: 3,
            max_statement_bytes: 1 << 20,
            checksum: None,
            overwrite: false,
            wire: WireUse::Auto,
            exclude_tables: Vec::new(),
            split_table_bytes: Some(DEFAULT_SPLIT_TABLE_BYTES),
        }
    }
}

/// Broad class of a [`DumpError`], for callers that map errors to exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Bad input: a missing file, an unknown database, an unsafe folder, an existing dump.
    Input,
    /// The server or the dumper failed, or the disk did.
    Service,
    /// A file or the restored content does not match what was recorded.
    Integrity,
    /// A bug or something the engine does not support.
    Internal,
}

/// What went wrong in a dump or restore. Messages say what to do next.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// Could not reach or log in to the server.
    #[error("cannot connect to {url}: {source}. Check the host, port and that the server is up")]
    Connect {
        /// `mysql://user@host:port`.
        url: String,
        /// Driver error.
        source: Box<mysql_async::Error>,
    },
    /// The server refused the credentials.
    #[error(
        "access denied for {url}: {message}. Check the user and the password \
         (OMS_META_PASSWORD or --password-file)"
    )]
    AccessDenied {
        /// `mysql://user@host:port`.
        url: String,
        /// The server's message.
        message: String,
    },
    /// The database does not exist on the server.
    #[error("database `{database}` does not exist on the server; check --databases")]
    NoSuchDatabase {
        /// Database name.
        database: String,
    },
    /// A query failed, typically because the server went away or the connection was killed.
    #[error(
        "the server failed while {what} for database `{database}`: {source}. \
         Check that the server is up and nothing killed the session, then run again"
    )]
    Query {
        /// Database name ("" for session-level queries).
        database: String,
        /// What the engine was doing.
        what: String,
        /// Driver error.
        source: Box<mysql_async::Error>,
    },
    /// A restore statement failed.
    #[error(
        "restoring `{database}`: statement {number} (at byte {offset}: {excerpt}) failed: {source}"
    )]
    Statement {
        /// Database name.
        database: String,
        /// 1-based statement number.
        number: u64,
        /// Byte offset of the statement in the uncompressed SQL.
        offset: u64,
        /// The statement's head, without values.
        excerpt: String,
        /// Driver error.
        source: Box<mysql_async::Error>,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The disk (or the file size limit) is full; the partial file was removed.
    #[error(
        "no space left while writing {path} (disk full or file size limit); the partial file \
         was removed. Free space or choose another --out folder"
    )]
    DiskFull {
        /// The file.
        path: PathBuf,
    },
    /// The output folder (or the folder it would be created in) is readable or writable by
    /// others, owned by someone else, or a symlink.
    #[error("{reason}")]
    InsecureDir {
        /// The folder.
        path: PathBuf,
        /// What is wrong and what to do (names the folder, its owner and mode).
        reason: String,
    },
    /// A dump file already exists where this one would go.
    #[error("{path} already exists; choose another folder or allow overwriting")]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// The written dump failed its completeness check; it was not renamed into place.
    #[error("the dump {path} is incomplete: {reason}; it was removed")]
    Incomplete {
        /// The `.part` file.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// The file's size or BLAKE3 differs from the recorded one.
    #[error(
        "{path} does not match its recorded checksum (expected {expected}, found {actual}); \
         the file was altered or truncated, so it will not be restored. Nothing was changed"
    )]
    ChecksumMismatch {
        /// The file.
        path: PathBuf,
        /// Recorded size and BLAKE3.
        expected: String,
        /// Found size and BLAKE3.
        actual: String,
    },
    /// The file changed after its BLAKE3 was checked (rewritten in place or truncated). The
    /// changed bytes were not executed; `loaded` says what had been loaded before.
    #[error(
        "{path} changed after it was verified (its bytes from offset {offset} are no longer \
         the ones checked), so the rest of it was not executed. {loaded}. Find out what \
         rewrote the file, then restore from an intact copy"
    )]
    FileChanged {
        /// The file.
        path: PathBuf,
        /// Start of the first piece that no longer matches.
        offset: u64,
        /// What the restore had done when it stopped (filled in by the restore).
        loaded: String,
    },
    /// The restored content differs from the recorded facts.
    #[error(
        "restored database `{database}` differs from the dump's facts: {}",
        diffs.iter().map(|d| format!("`{}`: expected {}, found {}", d.table, d.expected, d.actual)).collect::<Vec<_>>().join("; ")
    )]
    TableMismatch {
        /// Database name.
        database: String,
        /// Each difference.
        diffs: Vec<TableDiff>,
    },
    /// Rows counted and rows streamed disagree inside one snapshot.
    #[error(
        "table `{database}`.`{table}` had {counted} rows by COUNT(*) but {streamed} were read \
         in the same snapshot; is it a non-transactional (MyISAM) table being written to? \
         Stop the writers and dump again"
    )]
    Inconsistent {
        /// Database name.
        database: String,
        /// Table name.
        table: String,
        /// `COUNT(*)`.
        counted: u64,
        /// Rows read.
        streamed: u64,
    },
    /// `manifest.json` is missing, unreadable, or names what a manifest may not (a file
    /// outside its folder, a charset that is not a plain name).
    #[error("cannot use the manifest {path}: {reason}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A database was asked for that the manifest does not have.
    #[error("the backup has no dump of `{database}` (it has: {})", available.join(", "))]
    NotInManifest {
        /// Asked for.
        database: String,
        /// In the manifest.
        available: Vec<String>,
    },
    /// No external dumper program.
    #[error("cannot run {program}: not found. Install mariadb-client or pass --dumper-path")]
    DumperNotFound {
        /// What was looked for.
        program: String,
    },
    /// The external dumper printed a warning (often an ignored option).
    #[error(
        "{program} printed a warning, so its dump is not trusted: {line}. Fix the option or the \
         dumper version, or use --dumper native"
    )]
    ExternalWarning {
        /// The program.
        program: String,
        /// The warning line.
        line: String,
    },
    /// The external dumper failed.
    #[error("{program} failed ({status}): {stderr}")]
    ExternalFailed {
        /// The program.
        program: String,
        /// Its exit status.
        status: String,
        /// Its stderr.
        stderr: String,
    },
    /// Something the engine deliberately does not handle.
    #[error("not supported: {what}")]
    Unsupported {
        /// What.
        what: String,
    },
    /// A bad argument.
    #[error("{what}")]
    BadInput {
        /// What is wrong.
        what: String,
    },
    /// SIGINT or SIGTERM arrived during the dump. The dump was stopped (an external dumper
    /// killed and waited for) and its partial files and password file removed.
    #[error(
        "interrupted by {signal}: the dump of `{database}` was stopped, its partial files \
         removed (and an external dumper ended, its password file removed). Run the command \
         again to dump"
    )]
    Interrupted {
        /// `SIGINT` or `SIGTERM`.
        signal: String,
        /// The database being dumped.
        database: String,
    },
    /// The writer thread stopped; its own error is reported instead when known.
    #[error("the dump writer stopped unexpectedly")]
    WriterGone,
    /// A bug.
    #[error("internal error: {what}")]
    Internal {
        /// What.
        what: String,
    },
}

impl DumpError {
    /// An I/O error on `path`; a full disk or an exceeded file size limit becomes [`DumpError::DiskFull`].
    /// An unsafe folder as [`DumpError::InsecureDir`], a failed call as [`DumpError::io`].
    pub fn folder(e: crate::safefs::SafeFsError) -> DumpError {
        match e {
            crate::safefs::SafeFsError::Unsafe { ref path, .. } => DumpError::InsecureDir {
                path: path.clone(),
                reason: e.to_string(),
            },
            crate::safefs::SafeFsError::Io { path, source, .. } => DumpError::io(&path, source),
        }
    }

    pub fn io(path: &Path, source: std::io::Error) -> DumpError {
        match source.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EFBIG) | Some(libc::EDQUOT) => DumpError::DiskFull {
                path: path.to_path_buf(),
            },
            _ => DumpError::Io {
                path: path.to_path_buf(),
                source,
            },
        }
    }

    /// The broad class, for exit codes.
    pub fn class(&self) -> ErrorClass {
        use DumpError::*;
        match self {
            Connect { .. }
            | AccessDenied { .. }
            | Query { .. }
            | Statement { .. }
            | DiskFull { .. }
            | DumperNotFound { .. }
            | ExternalWarning { .. }
            | ExternalFailed { .. }
            | Incomplete { .. }
            | Inconsistent { .. }
            | Interrupted { .. } => ErrorClass::Service,
            Io { .. }
            | NoSuchDatabase { .. }
            | InsecureDir { .. }
            | AlreadyExists { .. }
            | Manifest { .. }
            | NotInManifest { .. }
            | BadInput { .. } => ErrorClass::Input,
            ChecksumMismatch { .. } | FileChanged { .. } | TableMismatch { .. } => {
                ErrorClass::Integrity
            }
            Unsupported { .. } | WriterGone | Internal { .. } => ErrorClass::Internal,
        }
    }
}

/// Opens a connection (TLS as the target says), sorting refused credentials from other
/// failures.
pub(crate) async fn connect(target: &DbTarget) -> Result<mysql_async::Conn, DumpError> {
    target
        .connect(None)
        .await
        .map(|(conn, _encrypted)| conn)
        .map_err(|e| match e {
            mysql_async::Error::Server(s) if s.code == 1045 => DumpError::AccessDenied {
                url: target.display_url(),
                message: s.message,
            },
            source => DumpError::Connect {
                url: target.display_url(),
                source: Box::new(source),
            },
        })
}

/// A failed query, sorted: unknown database and refused access get their own errors.
pub(crate) fn query_err(database: &str, what: &str, e: mysql_async::Error) -> DumpError {
    match e {
        mysql_async::Error::Server(s) if s.code == 1049 => DumpError::NoSuchDatabase {
            database: database.to_string(),
        },
        mysql_async::Error::Server(s) if s.code == 1044 || s.code == 1045 => {
            DumpError::AccessDenied {
                url: format!("database `{database}`"),
                message: s.message,
            }
        }
        source => DumpError::Query {
            database: database.to_string(),
            what: what.to_string(),
            source: Box::new(source),
        },
    }
}

/// Where `database`'s dump goes in `out_dir`.
pub fn dump_path(out_dir: &Path, database: &str, compression: Compression) -> PathBuf {
    out_dir.join(format!("{database}{}", compression.suffix()))
}

fn check_name(database: &str) -> Result<(), DumpError> {
    if database.is_empty()
        || database.starts_with('.')
        || database.contains(['/', '\\', '\0'])
        || database.len() > 64
    {
        return Err(DumpError::BadInput {
            what: format!("`{database}` is not a database name this tool can dump to a file"),
        });
    }
    Ok(())
}

/// Dumps one database into `out_dir/<database>.sql[.zst]` and returns its facts.
///
/// `out_dir` is created with mode 0700 if missing (an existing one must not be readable by
/// others). On any error no file is left under the final name and the `.part` is removed.
pub async fn dump_database(
    target: &DbTarget,
    database: &str,
    out_dir: &Path,
    opts: &DumpOptions,
    progress: &dyn Progress,
) -> Result<DumpArtifact, DumpError> {
    check_name(database)?;
    writer::prepare_dir(out_dir)?;
    let out_dir = std::fs::canonicalize(out_dir).map_err(|e| DumpError::io(out_dir, e))?;
    let path = dump_path(&out_dir, database, opts.compression);
    tracing::debug!(database, url = %target.display_url(), file = %path.display(), dumper = ?opts.dumper, "dump starts");
    let r = match opts.dumper {
        Dumper::Native => native_all(target, &[database.to_string()], &out_dir, opts, progress)
            .await
            .map(|mut artifacts| artifacts.remove(0)),
        Dumper::Mysqldump => external::dump(target, database, &path, opts, progress).await,
    };
    match &r {
        Ok(a) => {
            tracing::debug!(database, bytes = a.size_bytes, blake3 = %a.blake3_hex, "dump written")
        }
        Err(e) => tracing::debug!(database, error = %e, "dump failed"),
    }
    r
}

/// Dumps every database in `databases` into `out_dir`, then writes `manifest.json`. The
/// native dumper dumps the tables of all of them over `opts.jobs` connections in one
/// snapshot; external mode runs `opts.jobs` dumpers at a time. The first failure cancels the
/// other dumps (their partial files are removed) and is returned; no manifest is written then.
pub async fn backup(
    target: &DbTarget,
    databases: &[String],
    out_dir: &Path,
    opts: &DumpOptions,
    progress: Arc<dyn Progress>,
) -> Result<Manifest, DumpError> {
    if databases.is_empty() {
        return Err(DumpError::BadInput {
            what: "no database to dump; pass --databases".into(),
        });
    }
    for (i, d) in databases.iter().enumerate() {
        check_name(d)?;
        if databases[..i].contains(d) {
            return Err(DumpError::BadInput {
                what: format!("`{d}` is listed twice"),
            });
        }
    }
    writer::prepare_dir(out_dir)?;
    let out_dir = std::fs::canonicalize(out_dir).map_err(|e| DumpError::io(out_dir, e))?;
    let manifest_path = out_dir.join(MANIFEST_FILE);
    if !opts.overwrite && manifest_path.exists() {
        return Err(DumpError::AlreadyExists {
            path: manifest_path,
        });
    }
    let artifacts = match opts.dumper {
        Dumper::Native => {
            tracing::debug!(databases = ?databases, url = %target.display_url(), dir = %out_dir.display(), "native backup starts");
            let r = native_all(target, databases, &out_dir, opts, &*progress).await;
            match &r {
                Ok(artifacts) => {
                    for a in artifacts {
                        tracing::debug!(database = %a.database, bytes = a.size_bytes, blake3 = %a.blake3_hex, "dump written");
                    }
                }
                Err(e) => tracing::debug!(error = %e, "backup failed"),
            }
            r?
        }
        Dumper::Mysqldump => each_database(target, databases, &out_dir, opts, progress).await?,
    };
    let manifest = Manifest {
        manifest_version: MANIFEST_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        source: target.display_url(),
        databases: artifacts,
    };
    manifest.store(&out_dir)?;
    Ok(manifest)
}

/// The native dump of `databases`, stopped by SIGINT or SIGTERM: then every connection
/// and writer is dropped (a writer dropped without its commit removes its `.part` and spool
/// files) and [`DumpError::Interrupted`] is returned.
async fn native_all(
    target: &DbTarget,
    databases: &[String],
    out_dir: &Path,
    opts: &DumpOptions,
    progress: &dyn Progress,
) -> Result<Vec<DumpArtifact>, DumpError> {
    let interrupts = external::Interrupts::install();
    tokio::select! {
        r = parallel::dump_all(target, databases, out_dir, opts, progress) => r,
        signal = interrupts.wait() => Err(DumpError::Interrupted {
            signal: signal.to_string(),
            database: databases.join(", "),
        }),
    }
}

/// External mode's `backup`: one [`dump_database`] per database, `opts.jobs` at a time. The
/// first failure cancels the others (their partial files are removed) and is returned.
async fn each_database(
    target: &DbTarget,
    databases: &[String],
    out_dir: &Path,
    opts: &DumpOptions,
    progress: Arc<dyn Progress>,
) -> Result<Vec<DumpArtifact>, DumpError> {
    let sem = Arc::new(tokio::sync::Semaphore::new(opts.jobs.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, db) in databases.iter().enumerate() {
        let (target, db, dir, opts, sem, progress) = (
            target.clone(),
            db.clone(),
            out_dir.to_path_buf(),
            opts.clone(),
            sem.clone(),
            progress.clone(),
        );
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore never closed");
            (
                i,
                dump_database(&target, &db, &dir, &opts, &*progress).await,
            )
        });
    }
    collect_in_order(tasks).await
}

/// Waits for per-database dump tasks (each returns its input index) and gives their artifacts
/// in input order; on the first failure the others are cancelled (their writers remove their
/// `.part` files) and that failure is returned.
pub(crate) async fn collect_in_order(
    mut tasks: tokio::task::JoinSet<(usize, Result<DumpArtifact, DumpError>)>,
) -> Result<Vec<DumpArtifact>, DumpError> {
    let mut done = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let failure = match joined {
            Ok((i, Ok(a))) => {
                done.push((i, a));
                continue;
            }
            Ok((_, Err(e))) => e,
            Err(e) => DumpError::Internal {
                what: format!("dump task failed: {e}"),
            },
        };
        // A signal reaches every dump: each stops its own child and removes its own files,
        // which an abort would cut short.
        if !matches!(failure, DumpError::Interrupted { .. }) {
            tasks.abort_all();
        }
        while tasks.join_next().await.is_some() {}
        return Err(failure);
    }
    done.sort_by_key(|(i, _)| *i);
    Ok(done.into_iter().map(|(_, a)| a).collect())
}
