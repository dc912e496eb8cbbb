//! Reading a ledger while another process holds it (issue 14: readers during a live run).
//!
//! sled 0.34 has no read-only mode and locks its `db` file, and the writer holds our folder
//! lock for the whole run, so a reader cannot open the ledger itself. Instead it copies
//! sled's files (`conf`, the complete `snap.*` files, `db`, `blobs/`) into a private
//! temporary folder without taking any lock, opens the copy with sled, and accepts it only
//! if the records it holds verify as a chain from seq 1 ([`super::verify_chain`]). The
//! writer is never waited for or slowed: copying reads files, and neither `flock` nor
//! sled's lock is touched on the original.
//!
//! Why the check is sound (the long form is in `ledger-schema/RECORD.md`, "Live reads"):
//! the writer only ever inserts a new key (compare-and-swap on an absent key, or one batch
//! of new keys), never rewrites one. A copy taken while it appends is either refused by
//! sled's recovery (a torn snapshot fails its CRC; sled may even panic on some torn
//! layouts, which is caught) or recovers the log up to its first torn message, which is a
//! state the writer passed through. Whatever sled hands back, each record carries its own
//! hash and its predecessor's, and the walk from seq 1 checks keys, seqs, hashes, links
//! and the ledger id, so a copy that verifies is a prefix of the writer's chain; one that
//! does not (a gap, a half record) is thrown away and the copy taken again.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use std::time::Duration;

use super::error::LedgerError;
use super::record::Hash;
use super::store::{CREATING_MARKER, LOCK_FILE, LedgerReader, LedgerView, LiveRead};
use crate::safefs::PrivateFolder;

/// How many copies are taken before a busy ledger is reported unreadable.
pub const LIVE_ATTEMPTS: u32 = 5;

/// Pause before the n-th retry (grows with n): an append takes milliseconds, so a copy
/// torn by one is very likely whole on the next try.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(40 * u64::from(attempt))
}

/// A verified copy of a busy ledger: its view, the sled instance it reads and the private
/// folder it lives in (removed on drop, after sled has closed).
#[derive(Debug)]
pub(super) struct LiveCopy {
    pub(super) view: LedgerView,
    pub(super) db: sled::Db,
    pub(super) folder: PrivateFolder,
    pub(super) live: LiveRead,
}

impl LedgerReader {
    /// Like [`LedgerReader::open`], but when another process holds the ledger (a run in
    /// progress) reads a verified copy instead of failing: see this module. The copy is
    /// a prefix of the holder's chain, every record of it verified;
    /// [`LedgerReader::live`] says how far it goes and who holds the ledger. Only when no
    /// copy verifies after [`LIVE_ATTEMPTS`] tries is the error
    /// [`LedgerError::LiveUnreadable`]. Never waits for, or locks anything the writer uses.
    pub fn open_or_live(dir: impl AsRef<Path>) -> Result<LedgerReader, LedgerError> {
        let dir = dir.as_ref();
        // No grace: a lock that looks held for a moment (see `lock_with_grace`) costs at
        // worst a live read, which is as trustworthy, instead of a wait.
        match LedgerReader::open_with_grace(dir, std::time::Duration::ZERO) {
            Err(LedgerError::Busy { holder, .. }) => {
                let copy = read_copy(dir, holder, LIVE_ATTEMPTS)?;
                Ok(LedgerReader {
                    view: copy.view,
                    _db: copy.db,
                    _lock: None,
                    live: Some(copy.live),
                    _copy: Some(copy.folder),
                })
            }
            other => other,
        }
    }
}

impl LedgerReader {
    /// Reads a verified copy of the ledger in `dir` whether or not another process holds
    /// it: the original is only read (no lock taken, nothing sled may write on opening),
    /// for readers of ledgers that are not theirs (`init` learning from earlier runs on the
    /// host, issue 16). The copy's chain is verified from seq 1 as for
    /// [`LedgerReader::open_or_live`]; [`LedgerReader::live`] is `None`. One copy is
    /// taken, not [`LIVE_ATTEMPTS`]: these ledgers are finished runs, nobody writes them,
    /// so a copy that does not verify is a damaged ledger, and retrying it with pauses
    /// only made `init` slower (0.4 s a damaged ledger, up to 64 of them).
    pub fn open_copy(dir: impl AsRef<Path>) -> Result<LedgerReader, LedgerError> {
        let copy = read_copy(dir.as_ref(), String::new(), 1)?;
        Ok(LedgerReader {
            view: copy.view,
            _db: copy.db,
            _lock: None,
            live: None,
            _copy: Some(copy.folder),
        })
    }
}

/// Takes verified copies of the busy ledger in `dir` until one verifies, at most
/// `attempts` times ([`LIVE_ATTEMPTS`] for a busy ledger). `holder` is what the lock file
/// said.
pub(super) fn read_copy(
    dir: &Path,
    holder: String,
    attempts: u32,
) -> Result<LiveCopy, LedgerError> {
    let mut last = String::new();
    for attempt in 1..=attempts {
        if attempt > 1 {
            std::thread::sleep(backoff(attempt - 1));
        }
        match try_once(dir) {
            Ok(Attempt::Verified {
                view,
                db,
                folder,
                head,
            }) => {
                return Ok(LiveCopy {
                    view,
                    db,
                    folder,
                    live: LiveRead {
                        // The holder may have changed meanwhile; the lock file says who now.
                        holder: current_holder(dir).unwrap_or(holder),
                        seq: head.map(|(s, _)| s),
                        head: head.map(|(_, h)| h),
                        attempts: attempt,
                    },
                });
            }
            Ok(Attempt::Creating) => {
                return Err(LedgerError::Busy {
                    path: dir.to_path_buf(),
                    holder: format!("{holder}; the ledger is still being created"),
                });
            }
            Err(why) => {
                tracing::debug!(attempt, %why, "live read of a busy ledger: copy not usable");
                last = why;
            }
        }
    }
    Err(LedgerError::LiveUnreadable {
        path: dir.to_path_buf(),
        holder,
        attempts,
        last,
    })
}

enum Attempt {
    Verified {
        view: LedgerView,
        db: sled::Db,
        folder: PrivateFolder,
        head: Option<(u64, Hash)>,
    },
    /// A creator is at work: there is nothing to read yet.
    Creating,
}

/// One copy, opened and verified. `Err` carries why this copy cannot be used (retried).
fn try_once(dir: &Path) -> Result<Attempt, String> {
    if dir.join(CREATING_MARKER).exists() {
        return Ok(Attempt::Creating);
    }
    let folder = PrivateFolder::create("live")?;
    copy_files(dir, folder.path())?;
    // sled may panic instead of erroring on some torn layouts (e.g. two segments claiming
    // one LSN): a panic here only means this copy is unusable, and is not printed.
    let opened = quietly(|| super::store::open_existing(folder.path()));
    let (db, mut view) = match opened {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Err(format!("sled could not open the copy: {e}")),
        Err(_) => return Err("sled panicked while recovering the copy".into()),
    };
    // Messages name the ledger the user asked for, not the temporary copy.
    view.set_dir(dir.to_path_buf());
    let report = super::verify_chain(&view, None).map_err(|e| e.to_string())?;
    if let Some(p) = report.problem {
        return Err(format!(
            "the copy's chain does not verify at seq {}: {}",
            p.seq, p.detail
        ));
    }
    Ok(Attempt::Verified {
        view,
        db,
        folder,
        head: report.head,
    })
}

thread_local! {
    /// Set while this thread opens a copy: a panic then is a refused copy, not news.
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, turning a panic into `Err` without printing it. The panic hook is wrapped once
/// per process; the wrapper defers to the previous hook for every panic but those of a
/// thread inside `quietly`.
fn quietly<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    static WRAP: std::sync::Once = std::sync::Once::new();
    WRAP.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                previous(info);
            }
        }));
    });
    QUIET.with(|q| q.set(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(false));
    if r.is_err() {
        tracing::debug!("sled panicked while recovering a live read's copy");
    }
    r
}

/// Copies sled's files from `from` into `to`: `conf`, the complete snapshots, then `db`,
/// then `blobs/`. The snapshot goes before `db` so that the copied log reaches at least as
/// far as the snapshot it is replayed on top of. Files that vanish meanwhile (sled
/// replaces its snapshot) are skipped; sled then recovers from the log alone or refuses.
fn copy_files(from: &Path, to: &Path) -> Result<(), String> {
    let names: Vec<String> = std::fs::read_dir(from)
        .map_err(|e| format!("cannot list {}: {e}", from.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let mut snaps: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("snap.") && !n.ends_with(".generating"))
        .collect();
    snaps.sort();
    copy_one(from, to, "conf", true)?;
    for s in snaps {
        copy_one(from, to, s, false)?;
    }
    copy_one(from, to, "db", true)?;
    if names.iter().any(|n| n == "blobs") {
        let blobs = to.join("blobs");
        std::fs::create_dir(&blobs).map_err(|e| format!("cannot create {blobs:?}: {e}"))?;
        let entries = std::fs::read_dir(from.join("blobs"))
            .map_err(|e| format!("cannot list sled's blobs: {e}"))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            copy_one(&from.join("blobs"), &blobs, &name, false)?;
        }
    }
    Ok(())
}

/// Copies one regular file by reading it (no lock, no `copy_file_range` tricks: a plain
/// read never interferes with the writer). Symlinks are not followed: a planted link must
/// not make a reader copy some other file.
fn copy_one(from: &Path, to: &Path, name: &str, required: bool) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let src = from.join(name);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&src);
    let mut file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(()),
        Err(e) => return Err(format!("cannot open {}: {e}", src.display())),
    };
    let mut out = File::create(to.join(name)).map_err(|e| format!("cannot copy {name}: {e}"))?;
    std::io::copy(&mut file, &mut out)
        .map_err(|e| format!("cannot copy {}: {e}", src.display()))?;
    Ok(())
}

/// What the lock file says now (advice only: read without locking).
fn current_holder(dir: &Path) -> Option<String> {
    let mut s = String::new();
    File::open(dir.join(LOCK_FILE))
        .and_then(|mut f| f.read_to_string(&mut s))
        .ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use uuid::Uuid;

    use super::*;
    use crate::ledger::record::NewRecord;
    use crate::ledger::{Ledger, LedgerReader};

    fn new_record(i: u64, payload: &[u8]) -> NewRecord<'_> {
        let _ = i;
        NewRecord {
            timestamp_micros: 1_700_000_000_000_000,
            operator: "op",
            host: "h",
            run_id: Uuid::nil(),
            event_type: "test.live",
            schema_version: 1,
            payload,
        }
    }

    /// A writer thread appends while a reader thread reads the busy ledger over and over:
    /// every read succeeds (retries included), is a live read, and is a prefix of what the
    /// writer wrote (its head is the writer's record at that seq), never going backwards.
    /// Afterwards no private copy is left behind.
    #[test]
    fn reads_during_appends_are_verified_prefixes() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("ledger");
        let mut ledger = Ledger::open_writer(&dir).unwrap();
        let written: Arc<Mutex<Vec<Hash>>> = Arc::default();
        // A few records before the reader starts, so it has something to read at once.
        for i in 0..3 {
            let r = ledger.append(new_record(i, b"first")).unwrap();
            written.lock().unwrap().push(r.hash);
        }
        let done = Arc::new(AtomicBool::new(false));
        // The writer goes on until the reader has read this many times (or a bound).
        const READS: usize = 20;
        let reads_done = Arc::new(AtomicUsize::new(0));
        let writer = {
            let (written, done, reads_done) = (written.clone(), done.clone(), reads_done.clone());
            std::thread::spawn(move || {
                // Payloads of varied size, and the odd batch, so appends touch sled's pages
                // in different ways.
                let big = vec![7u8; 20_000];
                let mut i = 0u64;
                while reads_done.load(Ordering::SeqCst) < READS && i < 20_000 {
                    i += 1;
                    let payload: &[u8] = if i % 10 == 0 { &big } else { b"step" };
                    if i % 25 == 0 {
                        let batch = [new_record(i, payload), new_record(i, b"batch")];
                        for r in ledger.append_batch(&batch).unwrap() {
                            written.lock().unwrap().push(r.hash);
                        }
                    } else {
                        let r = ledger.append(new_record(i, payload)).unwrap();
                        written.lock().unwrap().push(r.hash);
                    }
                }
                done.store(true, Ordering::SeqCst);
                ledger
            })
        };
        let mut reads = Vec::new();
        let mut folders = Vec::new();
        while !done.load(Ordering::SeqCst) {
            let reader = LedgerReader::open_or_live(&dir)
                .unwrap_or_else(|e| panic!("a live read failed after its retries: {e}"));
            let Some(live) = reader.live().cloned() else {
                continue;
            };
            assert!(live.holder.starts_with("writer: pid"), "{live:?}");
            // What the view shows is what was verified.
            let n = reader.records().count() as u64;
            assert_eq!(Some(n), live.seq, "{live:?}");
            folders.push(reader.copy_folder().unwrap());
            reads.push(live);
            reads_done.store(reads.len(), Ordering::SeqCst);
        }
        let ledger = writer.join().unwrap();
        drop(ledger);
        let written = written.lock().unwrap().clone();
        assert!(
            reads.len() >= READS,
            "only {} live reads happened",
            reads.len()
        );
        let retried = reads.iter().filter(|r| r.attempts > 1).count();
        eprintln!(
            "{} live reads, {retried} needed more than one copy",
            reads.len()
        );
        let mut last = 0;
        for r in &reads {
            let seq = r.seq.expect("records were there from the start");
            assert!(seq >= last, "a later read went back: {seq} after {last}");
            last = seq;
            assert_eq!(
                r.head,
                Some(written[seq as usize - 1]),
                "seq {seq} is not the writer's"
            );
        }
        for f in &folders {
            assert!(!f.exists(), "the copy {} was left behind", f.display());
        }
        // Not busy any more: the ledger itself is read, as before.
        let reader = LedgerReader::open_or_live(&dir).unwrap();
        assert!(reader.live().is_none());
        assert_eq!(reader.records().count(), written.len());
    }

    /// The soundness claim, exhaustively over one ledger: a copy whose `db` was cut at any
    /// point (as a copy racing an append may be) either is refused or verifies as a prefix
    /// of the real chain; never anything else.
    #[test]
    fn a_copy_cut_anywhere_is_refused_or_a_prefix() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("ledger");
        let mut ledger = Ledger::open_writer(&dir).unwrap();
        let mut written = Vec::new();
        for i in 0..40 {
            let payload = vec![i as u8; 100 + 300 * (i as usize % 7)];
            written.push(ledger.append(new_record(i, &payload)).unwrap().hash);
        }
        drop(ledger);
        let db = std::fs::read(dir.join("db")).unwrap();
        let cut_dir = root.path().join("cut");
        let (mut prefixes, mut refused) = (0, 0);
        let step = (db.len() / 300).max(1);
        for cut in (0..=db.len()).step_by(step).chain([db.len()]) {
            let _ = std::fs::remove_dir_all(&cut_dir);
            std::fs::create_dir(&cut_dir).unwrap();
            for e in std::fs::read_dir(&dir).unwrap().flatten() {
                let name = e.file_name();
                if e.path().is_file() && name != "db" {
                    std::fs::copy(e.path(), cut_dir.join(&name)).unwrap();
                }
            }
            std::fs::write(cut_dir.join("db"), &db[..cut]).unwrap();
            match try_once(&cut_dir) {
                Ok(Attempt::Verified { head, .. }) => {
                    prefixes += 1;
                    if let Some((seq, hash)) = head {
                        assert_eq!(hash, written[seq as usize - 1], "cut at {cut}");
                    }
                }
                Ok(Attempt::Creating) => unreachable!(),
                Err(_) => refused += 1,
            }
        }
        // The whole file is the whole chain.
        match try_once(&dir) {
            Ok(Attempt::Verified { head, .. }) => {
                assert_eq!(head, Some((40, written[39])));
            }
            _ => panic!("the complete ledger must read"),
        }
        eprintln!(
            "db of {} bytes cut at every {step}: {prefixes} read as a prefix, {refused} refused",
            db.len()
        );
        assert!(prefixes > 0, "no cut read at all ({refused} refused)");
    }

    /// A panic inside `quietly` is an `Err`, and later panics elsewhere still reach the
    /// previous hook (the wrapper only silences the thread inside).
    #[test]
    fn quietly_turns_a_panic_into_an_error() {
        let r: std::thread::Result<()> = quietly(|| panic!("torn copy"));
        assert!(r.is_err());
        assert_eq!(quietly(|| 7).unwrap(), 7);
        assert!(!QUIET.with(|q| q.get()));
    }

    /// Busy, and no copy can be made to verify: a clear error naming the holder (exit 4 at
    /// the CLI), after the retries; the ledger folder itself is untouched.
    #[test]
    fn an_unreadable_busy_ledger_is_a_clear_error() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("ledger");
        let mut ledger = Ledger::open_writer(&dir).unwrap();
        ledger.append(new_record(0, b"x")).unwrap();
        // A `db` the copy cannot open (a named pipe would block; a folder is refused).
        let fake = root.path().join("fake");
        std::fs::create_dir(&fake).unwrap();
        std::fs::copy(dir.join(LOCK_FILE), fake.join(LOCK_FILE)).unwrap();
        std::fs::write(fake.join("conf"), b"segment_size: 1\n").unwrap();
        std::fs::write(fake.join("db"), b"not sled").unwrap();
        let err = read_copy(&fake, "writer: pid 1 on host h".into(), LIVE_ATTEMPTS).unwrap_err();
        match &err {
            LedgerError::LiveUnreadable {
                attempts, holder, ..
            } => {
                assert_eq!(*attempts, LIVE_ATTEMPTS);
                assert!(holder.contains("pid 1"));
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("live read"), "{err}");
        drop(ledger);
    }
}
