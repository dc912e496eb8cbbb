//! Where records live: the sled database in the ledger folder, the lock that keeps it to one
//! process at a time, and the durable append.
//!
//! Folder layout (see `ledger-schema/RECORD.md`): sled's own files (`conf`, `db`, `blobs/`,
//! `snap.*`) and `oms-upgrade.lock`. sled tree `records` maps the sequence number (u64
//! big-endian, from 1) to the stored record bytes; tree `meta` holds `ledger_id` (16 bytes,
//! written once at creation). Nothing else is stored: the head is derived by reading the
//! last record, so there is no cached value that could disagree with the records.
//!
//! Durability: sled 0.34's `flush()` on Linux ends with `sync_file_range`, which writes the
//! pages but neither the file size nor the disk's write cache. After sled's flush the writer
//! therefore `fdatasync`s sled's `db` file itself. Records are capped
//! ([`super::record::MAX_RECORD_LEN`]) and the segment size raised so that sled never moves
//! a page into its `blobs/` files, which it writes without any sync.
//!
//! Locking: every opener (writer or reader) takes an exclusive `flock` on
//! `oms-upgrade.lock` before touching sled, and writes its pid, host and start time into it
//! so the next opener can say who holds the ledger. Readers need it too: sled 0.34 has no
//! read-only mode and locks its `db` file exclusively, so a reader cannot open the database
//! while a writer has it open; taking our lock first turns that into a clear `Busy` error
//! instead of sled's low-level one, and stops a writer from starting mid-read.
//! [`LedgerReader::open_or_live`] reads a busy ledger anyway, from a verified private copy
//! that takes no lock at all (`super::live`).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use fs2::FileExt;
use sled::IVec;
use uuid::Uuid;

use super::error::LedgerError;
use super::record::{self, Hash, NewRecord, ParseError, Record, RecordHasher, RecordRef};

/// Name of the lock file inside the ledger folder.
pub const LOCK_FILE: &str = "oms-upgrade.lock";
/// Marker present while a ledger is being created; if it survives, creation was
/// interrupted before the ledger could hold any record, and the next writer starts over.
pub const CREATING_MARKER: &str = "oms-upgrade.creating";
/// sled tree holding the records.
pub const RECORDS_TREE: &str = "records";
/// sled tree holding the ledger's metadata.
pub const META_TREE: &str = "meta";
/// Key in [`META_TREE`] holding the 16-byte ledger id.
pub const META_LEDGER_ID: &str = "ledger_id";

/// sled segment size. Stored in sled's `conf` at creation; every opener must use the same.
/// 8 MiB puts sled's blob threshold (a quarter segment) far above the largest leaf page
/// capped records can produce (sled splits leaves above 16 entries: 17 x 64 KiB).
const SEGMENT_SIZE: usize = 8 * 1024 * 1024;

fn sled_config(dir: &Path) -> sled::Config {
    sled::Config::new()
        .path(dir)
        .segment_size(SEGMENT_SIZE)
        .cache_capacity(1024 * 1024 * 1024)
        // Appends flush explicitly; a background flusher would only add unsynchronised I/O.
        .flush_every_ms(None)
}

/// The sequence number a sled key encodes, if it is a well-formed 8-byte key.
pub fn key_seq(key: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(key).ok().map(u64::from_be_bytes)
}

/// The sled key for a sequence number.
pub fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

// ---------------------------------------------------------------------------------------
// The lock.

/// An exclusive hold on a ledger folder, released when dropped (the kernel releases a
/// `flock` when its file is closed, including when the process is killed).
#[derive(Debug)]
pub(super) struct FolderLock {
    _file: File,
}

fn io_err(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> LedgerError {
    let path = path.to_path_buf();
    move |source| LedgerError::Io {
        path,
        action,
        source,
    }
}

fn store_err(path: &Path) -> impl FnOnce(sled::Error) -> LedgerError {
    let path = path.to_path_buf();
    move |source| match source {
        // Something holds sled's own lock without holding ours (e.g. a tool opening the
        // database directly): report it as busy, like any other holder.
        sled::Error::Io(e) if e.to_string().contains("could not acquire lock") => {
            LedgerError::Busy {
                path,
                holder: "a process that opened the sled database directly".into(),
            }
        }
        source => LedgerError::Store { path, source },
    }
}

/// How long a contended lock is retried before the ledger is reported busy.
const LOCK_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Takes the exclusive lock, retrying briefly on contention. A lock can look held for a
/// moment after its holder closed it: a process that forks a child (another thread
/// spawning a command) lends its open descriptors to the child until the child's exec.
/// A real concurrent run holds the lock far longer than the grace and is still refused.
fn lock_with_grace(file: &File, grace: std::time::Duration) -> std::io::Result<()> {
    let deadline = std::time::Instant::now() + grace;
    loop {
        match file.try_lock_exclusive() {
            Err(e)
                if e.kind() == fs2::lock_contended_error().kind()
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

impl FolderLock {
    fn acquire(
        dir: &Path,
        role: &str,
        grace: std::time::Duration,
    ) -> Result<FolderLock, LedgerError> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(dir, "open the lock file"))?;
        if let Err(e) = lock_with_grace(&file, grace) {
            if e.kind() != fs2::lock_contended_error().kind() {
                return Err(io_err(dir, "lock the lock file")(e));
            }
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(LedgerError::Busy {
                path: dir.to_path_buf(),
                holder: if holder.is_empty() {
                    "holder unknown: it has not written its name yet".into()
                } else {
                    holder.to_string()
                },
            });
        }
        // Who holds it is advice for the next opener, not a fact anything relies on, so a
        // failure to write it is not fatal; reading the clock here is fine for the same
        // reason (records never get their time from the ledger).
        let host = hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "unknown host".into());
        let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let info = format!(
            "{role}: pid {} on host {host}, since {since}\n",
            std::process::id()
        );
        let _ = file
            .set_len(0)
            .and_then(|_| file.write_all(info.as_bytes()));
        Ok(FolderLock { _file: file })
    }
}

// ---------------------------------------------------------------------------------------
// Recognising a ledger folder.

enum Folder {
    Missing,
    Empty,
    Sled,
    /// A creation was interrupted (the marker survived): no record can be in it.
    Interrupted,
}

fn classify(dir: &Path) -> Result<Folder, LedgerError> {
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Folder::Missing),
        Err(e) => return Err(io_err(dir, "read the folder")(e)),
    };
    if !meta.is_dir() {
        return Err(LedgerError::NotALedger {
            path: dir.to_path_buf(),
            reason: "it is a file, not a folder".into(),
        });
    }
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir, "list the folder"))? {
        let entry = entry.map_err(io_err(dir, "list the folder"))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    let has = |n: &str| names.iter().any(|x| x == n);
    if has(CREATING_MARKER) {
        return Ok(Folder::Interrupted);
    }
    if has("conf") && has("db") {
        return Ok(Folder::Sled);
    }
    match names.iter().find(|n| *n != LOCK_FILE) {
        None => Ok(Folder::Empty),
        Some(other) => Err(LedgerError::NotALedger {
            path: dir.to_path_buf(),
            reason: format!(
                "it holds other files (e.g. `{other}`) but no ledger database (sled `conf` and `db`)"
            ),
        }),
    }
}

// ---------------------------------------------------------------------------------------
// Reading.

/// Read access to an open ledger: shared by the writer ([`Ledger::view`]) and by readers
/// ([`LedgerReader::view`]).
#[derive(Debug)]
pub struct LedgerView {
    dir: PathBuf,
    ledger_id: Uuid,
    records: sled::Tree,
}

impl LedgerView {
    /// Names `dir` in messages instead of the folder sled opened (a live read's copy).
    pub(super) fn set_dir(&mut self, dir: PathBuf) {
        self.dir = dir;
    }

    /// The ledger folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The ledger id from the `meta` tree.
    pub fn ledger_id(&self) -> Uuid {
        self.ledger_id
    }

    /// Raw `(key, stored bytes)` pairs in key order: what verification and export read.
    pub fn entries(&self) -> impl Iterator<Item = Result<(IVec, IVec), LedgerError>> + '_ {
        self.records.iter().map(|r| r.map_err(store_err(&self.dir)))
    }

    /// Parsed records in sequence order. A record that does not parse is an error item
    /// (the iteration goes on); nothing here checks hashes: use [`super::verify()`].
    pub fn records(&self) -> impl Iterator<Item = Result<Record, LedgerError>> + '_ {
        self.entries()
            .map(move |e| e.and_then(|(k, v)| parse_entry(&self.dir, &k, &v)))
    }

    /// The newest record (not verified), or `None` for an empty ledger.
    pub fn head(&self) -> Result<Option<Record>, LedgerError> {
        match self.records.last().map_err(store_err(&self.dir))? {
            None => Ok(None),
            Some((k, v)) => parse_entry(&self.dir, &k, &v).map(Some),
        }
    }
}

fn parse_entry(dir: &Path, key: &[u8], value: &[u8]) -> Result<Record, LedgerError> {
    let seq = key_seq(key).ok_or_else(|| LedgerError::Malformed {
        path: dir.to_path_buf(),
        seq: 0,
        source: ParseError::BadKey(key.len()),
    })?;
    Record::parse(value).map_err(|source| LedgerError::Malformed {
        path: dir.to_path_buf(),
        seq,
        source,
    })
}

fn interrupted(dir: &Path) -> LedgerError {
    LedgerError::NotALedger {
        path: dir.to_path_buf(),
        reason: "its creation was interrupted before it could hold any record; the next \
                 command that records into it creates it afresh"
            .into(),
    }
}

/// Removes snapshot files sled 0.34 left unfinished (`snap.<lsn>.generating`).
///
/// sled writes a snapshot to `snap.<lsn>.generating` and renames it when complete, but a
/// process killed in between leaves the partial file behind and sled 0.34 then refuses to
/// open the database ("empty/corrupt snapshot file found", then `Corruption`; upstream
/// spacejam/sled#1527 and #1533). Such a file is by construction not a snapshot sled ever
/// relied on: without it sled recovers from the last complete snapshot and its log, which
/// holds every record whose append returned. Only called while holding the folder lock,
/// so no live sled instance can be writing the file.
fn discard_unfinished_snapshots(dir: &Path) -> Result<(), LedgerError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(dir, "list the ledger folder")(e)),
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            tracing::warn!(file = %entry.path().display(), "removing an unfinished sled snapshot left by a killed process");
            std::fs::remove_file(entry.path())
                .map_err(io_err(dir, "remove an unfinished sled snapshot"))?;
        }
    }
    Ok(())
}

/// Opens sled, retrying briefly while its own lock on `db` looks held. Called with our
/// folder lock held (or on a private copy), so the only holder can be a forked child of
/// this process that has not reached its exec yet and still has sled's descriptor: the
/// same lending [`lock_with_grace`] waits out for our lock. A process that opened the
/// database directly holds it far longer and is still reported busy.
fn open_sled_with_grace(dir: &Path) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + LOCK_GRACE;
    loop {
        match sled_config(dir).open() {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Opens sled and the two trees of an existing ledger, after checking it is one.
pub(super) fn open_existing(dir: &Path) -> Result<(sled::Db, LedgerView), LedgerError> {
    discard_unfinished_snapshots(dir)?;
    let db = open_sled_with_grace(dir).map_err(|e| match e {
        // sled refuses a database created with other settings (or another sled version):
        // not a database this ledger wrote.
        sled::Error::Unsupported(why) => LedgerError::NotALedger {
            path: dir.to_path_buf(),
            reason: format!("its sled database was not created by oms-upgrade ({why})"),
        },
        e => store_err(dir)(e),
    })?;
    let names = db.tree_names();
    let has = |n: &str| names.iter().any(|t| t.as_ref() == n.as_bytes());
    if !has(META_TREE) || !has(RECORDS_TREE) {
        return Err(LedgerError::NotALedger {
            path: dir.to_path_buf(),
            reason: "it is a sled database without the ledger's `meta` and `records` trees".into(),
        });
    }
    let meta = db.open_tree(META_TREE).map_err(store_err(dir))?;
    let id = meta
        .get(META_LEDGER_ID)
        .map_err(store_err(dir))?
        .ok_or_else(|| LedgerError::NotALedger {
            path: dir.to_path_buf(),
            reason: "its `meta` tree has no ledger id (was its creation interrupted?)".into(),
        })?;
    let id = <[u8; 16]>::try_from(id.as_ref()).map_err(|_| LedgerError::NotALedger {
        path: dir.to_path_buf(),
        reason: format!("its ledger id is {} bytes, not 16", id.len()),
    })?;
    let records = db.open_tree(RECORDS_TREE).map_err(store_err(dir))?;
    Ok((
        db,
        LedgerView {
            dir: dir.to_path_buf(),
            ledger_id: Uuid::from_bytes(id),
            records,
        },
    ))
}

/// What a live read read: which process held the ledger and how far the verified copy goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRead {
    /// Who holds the ledger, as its lock file says (`writer: pid N on host H, since T`).
    pub holder: String,
    /// Seq of the last record of the verified copy (`None`: the copy holds no record yet).
    pub seq: Option<u64>,
    /// Hash of that record.
    pub head: Option<Hash>,
    /// Copies taken until one verified (1 when the first did).
    pub attempts: u32,
}

impl LiveRead {
    /// One line for people: what was read, and that later records may exist.
    pub fn describe(&self) -> String {
        let seq = self
            .seq
            .map_or_else(|| "0 (no record yet)".to_string(), |s| s.to_string());
        format!(
            "live read as of seq {seq} while a run holds the ledger ({}); records appended \
             after that are not shown",
            self.holder
        )
    }

    /// The JSON fields commands add to their `--json` output.
    pub fn json_fields(&self) -> serde_json::Value {
        serde_json::json!({
            "live": true,
            "seq": self.seq,
            "head_hash": self.head.map(|h| h.to_hex()),
            "holder": self.holder,
            "attempts": self.attempts,
        })
    }
}

/// A read-only handle for `verify`, `log` and `export`.
///
/// sled 0.34 has no read-only mode: opening a reader takes the folder's lock and opens the
/// database (which may write sled's own recovery metadata, never records). While a writer
/// runs, [`LedgerReader::open`] fails with [`LedgerError::Busy`] naming the holder.
#[derive(Debug)]
pub struct LedgerReader {
    pub(super) view: LedgerView,
    pub(super) _db: sled::Db,
    /// Held while reading the ledger itself; `None` for a live read of a copy.
    pub(super) _lock: Option<FolderLock>,
    /// What a live read read (`None`: the ledger itself was opened).
    pub(super) live: Option<LiveRead>,
    /// A live read's private copy, removed on drop. Declared after `view` and `_db` so
    /// that sled has closed its files before the folder goes.
    pub(super) _copy: Option<crate::safefs::PrivateFolder>,
}

impl LedgerReader {
    /// Opens an existing ledger for reading. Never creates anything in a folder that is not
    /// a ledger.
    pub fn open(dir: impl AsRef<Path>) -> Result<LedgerReader, LedgerError> {
        Self::open_with_grace(dir.as_ref(), LOCK_GRACE)
    }

    pub(super) fn open_with_grace(
        dir: &Path,
        grace: std::time::Duration,
    ) -> Result<LedgerReader, LedgerError> {
        match classify(dir)? {
            Folder::Missing => {
                return Err(LedgerError::Missing {
                    path: dir.to_path_buf(),
                });
            }
            Folder::Empty => {
                return Err(LedgerError::NotALedger {
                    path: dir.to_path_buf(),
                    reason: "the folder is empty: no ledger has been created there yet".into(),
                });
            }
            Folder::Interrupted | Folder::Sled => {}
        }
        let lock = FolderLock::acquire(dir, "reader", grace)?;
        // Only now, holding the lock, is an unfinished creation known to be abandoned
        // rather than in progress.
        if let Folder::Interrupted = classify(dir)? {
            return Err(interrupted(dir));
        }
        let (db, view) = open_existing(dir)?;
        Ok(LedgerReader {
            view,
            _db: db,
            _lock: Some(lock),
            live: None,
            _copy: None,
        })
    }

    /// For a live read ([`LedgerReader::open_or_live`] of a busy ledger), what it read.
    pub fn live(&self) -> Option<&LiveRead> {
        self.live.as_ref()
    }

    /// Where a live read's private copy is (removed when the reader is dropped).
    #[cfg(test)]
    pub(crate) fn copy_folder(&self) -> Option<PathBuf> {
        self._copy.as_ref().map(|f| f.path().to_path_buf())
    }

    /// Read access (shared with the writer's).
    pub fn view(&self) -> &LedgerView {
        &self.view
    }

    /// The ledger id.
    pub fn ledger_id(&self) -> Uuid {
        self.view.ledger_id()
    }

    /// The ledger folder.
    pub fn dir(&self) -> &Path {
        self.view.dir()
    }

    /// Parsed records in sequence order; see [`LedgerView::records`].
    pub fn records(&self) -> impl Iterator<Item = Result<Record, LedgerError>> + '_ {
        self.view.records()
    }

    /// The newest record (not verified).
    pub fn head(&self) -> Result<Option<Record>, LedgerError> {
        self.view.head()
    }
}

// ---------------------------------------------------------------------------------------
// Writing.

/// The single writer of a ledger. Holds the folder's lock for its whole life.
#[derive(Debug)]
pub struct Ledger {
    view: LedgerView,
    db: sled::Db,
    /// sled's main file, fsynced after sled's own flush (see the module docs).
    db_file: File,
    /// Sequence number and hash of the newest record, derived from the stored records
    /// at open and advanced by each durable append.
    head: Option<(u64, Hash)>,
    poisoned: bool,
    _lock: FolderLock,
}

impl Ledger {
    /// Opens the ledger in `dir` for writing, creating the folder and a new ledger (with a
    /// fresh random id) when the folder is absent or empty.
    pub fn open_writer(dir: impl AsRef<Path>) -> Result<Ledger, LedgerError> {
        Self::open_inner(dir.as_ref(), true)
    }

    /// Opens an existing ledger for writing; fails with [`LedgerError::Missing`] or
    /// [`LedgerError::NotALedger`] instead of creating one.
    pub fn open_existing_writer(dir: impl AsRef<Path>) -> Result<Ledger, LedgerError> {
        Self::open_inner(dir.as_ref(), false)
    }

    fn open_inner(dir: &Path, create: bool) -> Result<Ledger, LedgerError> {
        // A writer's folder must be one nobody else can change (not a symlink, ours or
        // root's, not writable by others), and a new one is created only inside such a
        // folder: whoever can plant files there could swap the records after they are
        // written.
        match std::fs::symlink_metadata(dir) {
            Ok(md) if md.is_file() => {} // `classify` says it is not a ledger.
            Ok(_) => crate::safefs::check_folder(dir, false)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                crate::safefs::ensure_folder(dir, 0o755, false)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(dir, "read the folder")(e)),
        }
        let state = classify(dir)?;
        match (&state, create) {
            (Folder::Missing, false) => {
                return Err(LedgerError::Missing {
                    path: dir.to_path_buf(),
                });
            }
            (Folder::Empty, false) => {
                return Err(LedgerError::NotALedger {
                    path: dir.to_path_buf(),
                    reason: "the folder is empty: no ledger has been created there yet".into(),
                });
            }
            (Folder::Interrupted, false) => return Err(interrupted(dir)),
            _ => {}
        }
        let lock = FolderLock::acquire(dir, "writer", LOCK_GRACE)?;
        // Classify again under the lock: another creator may have finished meanwhile.
        let (db, view) = match classify(dir)? {
            Folder::Sled => open_existing(dir)?,
            Folder::Empty if create => create_new(dir)?,
            Folder::Interrupted if create => {
                remove_interrupted(dir)?;
                create_new(dir)?
            }
            Folder::Interrupted => return Err(interrupted(dir)),
            Folder::Missing | Folder::Empty => {
                return Err(LedgerError::Missing {
                    path: dir.to_path_buf(),
                });
            }
        };
        let db_file = File::open(dir.join("db")).map_err(io_err(dir, "open sled's db file"))?;
        let head = derive_head(&view)?;
        Ok(Ledger {
            view,
            db,
            db_file,
            head,
            poisoned: false,
            _lock: lock,
        })
    }

    /// Read access to the records (for replay while holding the writer).
    pub fn view(&self) -> &LedgerView {
        &self.view
    }

    /// The ledger id.
    pub fn ledger_id(&self) -> Uuid {
        self.view.ledger_id
    }

    /// The ledger folder.
    pub fn dir(&self) -> &Path {
        &self.view.dir
    }

    /// Sequence number and hash of the newest record, `None` when empty.
    pub fn head(&self) -> Option<(u64, Hash)> {
        self.head
    }

    /// Whether an earlier append failed; a poisoned handle refuses appends.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Appends one record and returns it only once it is durable (sled flushed, `db`
    /// fsynced). Any failure after the record reached sled poisons the handle: the caller
    /// must not act as if the record exists, and every later append fails.
    pub fn append(&mut self, new: NewRecord<'_>) -> Result<Record, LedgerError> {
        if self.poisoned {
            return Err(LedgerError::Poisoned {
                path: self.view.dir.clone(),
            });
        }
        let (seq, prev) = self.next();
        let (stored, hash) =
            record::encode(seq, self.view.ledger_id, prev, &new).map_err(|source| {
                LedgerError::Encode {
                    path: self.view.dir.clone(),
                    source,
                }
            })?;
        // From here on a failure may leave the record half-written: poison first.
        self.poisoned = true;
        let cas = self
            .view
            .records
            .compare_and_swap(seq_key(seq), None::<&[u8]>, Some(stored.as_slice()))
            .map_err(store_err(&self.view.dir))
            .map_err(|e| self.not_durable(seq, e))?;
        if cas.is_err() {
            return Err(LedgerError::Conflict {
                path: self.view.dir.clone(),
                seq,
            });
        }
        self.make_durable().map_err(|e| self.not_durable(seq, e))?;
        self.poisoned = false;
        self.head = Some((seq, hash));
        Ok(parsed(stored))
    }

    /// Appends several records as one atomic sled batch and returns them once the batch is
    /// durable. Either all of them are stored or (after a crash) none; a failure poisons
    /// the handle like [`Ledger::append`].
    pub fn append_batch(&mut self, batch: &[NewRecord<'_>]) -> Result<Vec<Record>, LedgerError> {
        if self.poisoned {
            return Err(LedgerError::Poisoned {
                path: self.view.dir.clone(),
            });
        }
        let (first, mut prev) = self.next();
        let mut out = Vec::with_capacity(batch.len());
        let mut sled_batch = sled::Batch::default();
        for (i, new) in batch.iter().enumerate() {
            let seq = first + i as u64;
            let (stored, hash) =
                record::encode(seq, self.view.ledger_id, prev, new).map_err(|source| {
                    LedgerError::Encode {
                        path: self.view.dir.clone(),
                        source,
                    }
                })?;
            prev = hash;
            sled_batch.insert(&seq_key(seq), stored.as_slice());
            out.push(stored);
        }
        let Some(last) = out.len().checked_sub(1) else {
            return Ok(Vec::new());
        };
        let last_seq = first + last as u64;
        self.poisoned = true;
        if self
            .view
            .records
            .contains_key(seq_key(first))
            .map_err(store_err(&self.view.dir))?
        {
            return Err(LedgerError::Conflict {
                path: self.view.dir.clone(),
                seq: first,
            });
        }
        self.view
            .records
            .apply_batch(sled_batch)
            .map_err(store_err(&self.view.dir))
            .map_err(|e| self.not_durable(first, e))?;
        self.make_durable()
            .map_err(|e| self.not_durable(first, e))?;
        self.poisoned = false;
        self.head = Some((last_seq, prev));
        Ok(out.into_iter().map(parsed).collect())
    }

    fn next(&self) -> (u64, Hash) {
        match self.head {
            None => (1, Hash::ZERO),
            Some((seq, hash)) => (seq + 1, hash),
        }
    }

    fn not_durable(&self, seq: u64, e: LedgerError) -> LedgerError {
        LedgerError::NotDurable {
            path: self.view.dir.clone(),
            seq,
            source: Box::new(e),
        }
    }

    fn make_durable(&self) -> Result<(), LedgerError> {
        self.db.flush().map_err(store_err(&self.view.dir))?;
        self.db_file
            .sync_data()
            .map_err(io_err(&self.view.dir, "fsync sled's db file"))
    }
}

fn parsed(stored: Vec<u8>) -> Record {
    // We just encoded these bytes, so they parse; a failure here is a bug in `record`.
    Record::parse(&stored).expect("a freshly encoded record parses")
}

fn sync_dir(dir: &Path) -> Result<(), LedgerError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_err(dir, "fsync the folder"))
}

/// Removes what an interrupted creation left (sled's files, which cannot hold a record
/// yet), keeping the lock file and the marker.
fn remove_interrupted(dir: &Path) -> Result<(), LedgerError> {
    for entry in std::fs::read_dir(dir).map_err(io_err(dir, "list the folder"))? {
        let entry = entry.map_err(io_err(dir, "list the folder"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let removed = match name.as_str() {
            "blobs" => std::fs::remove_dir_all(&path),
            "conf" | "db" => std::fs::remove_file(&path),
            n if n.starts_with("snap.") => std::fs::remove_file(&path),
            _ => continue,
        };
        removed.map_err(io_err(dir, "remove an interrupted creation"))?;
    }
    sync_dir(dir)
}

/// Creates a new ledger in an empty folder: both trees and a fresh id, made durable before
/// anything can be appended. A marker file brackets the creation so that a crash halfway
/// leaves a folder recognisably unfinished rather than a sled database without an id.
fn create_new(dir: &Path) -> Result<(sled::Db, LedgerView), LedgerError> {
    let marker = dir.join(CREATING_MARKER);
    File::create(&marker)
        .and_then(|f| f.sync_all())
        .map_err(io_err(dir, "create the creation marker"))?;
    sync_dir(dir)?;
    let db = sled_config(dir).open().map_err(store_err(dir))?;
    let meta = db.open_tree(META_TREE).map_err(store_err(dir))?;
    let records = db.open_tree(RECORDS_TREE).map_err(store_err(dir))?;
    let id = Uuid::new_v4();
    meta.insert(META_LEDGER_ID, id.as_bytes())
        .map_err(store_err(dir))?;
    db.flush().map_err(store_err(dir))?;
    for f in ["db", "conf"] {
        File::open(dir.join(f))
            .and_then(|f| f.sync_all())
            .map_err(io_err(dir, "fsync a new sled file"))?;
    }
    sync_dir(dir)?;
    std::fs::remove_file(&marker).map_err(io_err(dir, "remove the creation marker"))?;
    sync_dir(dir)?;
    Ok((
        db,
        LedgerView {
            dir: dir.to_path_buf(),
            ledger_id: id,
            records,
        },
    ))
}

/// The writer's starting point: the newest record, checked enough that appending onto it
/// cannot hide damage (well-formed, hash valid, key and seq agree, same ledger).
fn derive_head(view: &LedgerView) -> Result<Option<(u64, Hash)>, LedgerError> {
    let Some((k, v)) = view.records.last().map_err(store_err(&view.dir))? else {
        return Ok(None);
    };
    let damaged = |seq: u64, reason: String| LedgerError::DamagedHead {
        path: view.dir.clone(),
        seq,
        reason,
    };
    let seq = key_seq(&k)
        .ok_or_else(|| damaged(0, format!("its sled key is {} bytes, not 8", k.len())))?;
    let r = RecordRef::parse(&v).map_err(|e| damaged(seq, e.to_string()))?;
    if RecordHasher::new().hash(r.body) != r.hash {
        return Err(damaged(
            seq,
            "its stored hash does not match its bytes".into(),
        ));
    }
    if r.seq != seq {
        return Err(damaged(seq, format!("it says it is seq {}", r.seq)));
    }
    if r.ledger_id != view.ledger_id {
        return Err(damaged(
            seq,
            format!("it belongs to ledger {}", r.ledger_id),
        ));
    }
    Ok(Some((seq, r.hash)))
}
