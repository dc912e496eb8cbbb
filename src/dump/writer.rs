//! The one way a dump reaches the disk: streamed into `<name>.part` (mode 0600, in a 0700
//! folder), BLAKE3 computed over exactly the bytes handed to the file (after compression),
//! fsynced, checked, and only then renamed to its final name and the folder fsynced.
//!
//! A writer that is dropped without [`PartWriter::commit`] removes its `.part` file, so a
//! failed or interrupted dump never leaves a file that looks complete (and a full disk gets
//! its space back). The [`Inspector`] watches the uncompressed SQL as it passes, which is how
//! the "complete" check (trailer present, expected tables present) works the same for the
//! native dumper and for `mariadb-dump` output.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::DumpError;
use crate::digest::Digester;
use crate::dumpkind::Compression;

/// The last line of every complete dump (`mariadb-dump` appends ` on DATE` unless told
/// `--skip-dump-date`).
pub const TRAILER: &str = "-- Dump completed";

/// Creates `dir` with mode 0700 when missing; refuses a folder that group or others can
/// read (dumps hold the credentials of migration projects) or write, that someone else owns,
/// or that is a symlink, and creating into such a folder (see [`crate::safefs`]).
pub fn prepare_dir(dir: &Path) -> Result<(), DumpError> {
    crate::safefs::ensure_folder(dir, 0o700, true)
        .map(drop)
        .map_err(DumpError::folder)
}

/// fsyncs a folder so a rename inside it survives a crash.
pub fn fsync_dir(dir: &Path) -> Result<(), DumpError> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| DumpError::io(dir, e))
}

/// Writes a small file atomically: `<path>.part` (0600), fsync, rename, fsync the folder.
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<(), DumpError> {
    let part = part_path(path);
    let result = (|| {
        let mut f = open_part(&part)?;
        f.write_all(bytes).map_err(|e| DumpError::io(&part, e))?;
        f.sync_all().map_err(|e| DumpError::io(&part, e))?;
        std::fs::rename(&part, path).map_err(|e| DumpError::io(path, e))?;
        fsync_dir(path.parent().unwrap_or(Path::new(".")))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    result
}

fn part_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

fn open_part(part: &Path) -> Result<File, DumpError> {
    // A `.part` file is ours by name: a leftover of a crashed run is replaced, never appended to.
    match std::fs::remove_file(part) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(DumpError::io(part, e)),
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(part)
        .map_err(|e| DumpError::io(part, e))
}

/// A file that hashes exactly what it accepted, so the BLAKE3 is over the bytes on disk.
struct HashingFile {
    file: File,
    /// Size and BLAKE3 of what the file accepted.
    written: Digester,
    /// Bytes already handed to [`start_writeback`].
    writeback_from: u64,
}

/// Writeback of the dump file is started every this many bytes.
const WRITEBACK_BYTES: u64 = 8 << 20;

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written.update(&buf[..n]);
        let bytes = self.written.size();
        if bytes - self.writeback_from >= WRITEBACK_BYTES {
            start_writeback(&self.file, self.writeback_from, bytes);
            self.writeback_from = bytes;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

enum Sink {
    Plain(BufWriter<HashingFile>),
    /// The encoder of the current zstd frame, and whether that frame holds any byte yet.
    Zstd(zstd::Encoder<'static, BufWriter<HashingFile>>, bool),
}

/// Asks the kernel to start writing `[from, to)` of `file` to disk now, without waiting.
/// The dump is fsynced at the end anyway; written back as it goes, that fsync has little
/// left to do (it was most of the last second of a 500 MB dump). Only a hint: errors are
/// ignored, and the fsync reports real ones.
fn start_writeback(file: &File, from: u64, to: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a plain system call on a file descriptor this struct owns; no memory is
        // passed.
        unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                from as libc::off64_t,
                (to - from) as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, from, to);
}

/// What a committed dump file is.
#[derive(Debug, Clone)]
pub struct Written {
    /// Final path.
    pub path: PathBuf,
    /// Bytes on disk.
    pub size_bytes: u64,
    /// BLAKE3 of the bytes on disk.
    pub blake3_hex: String,
}

/// A dump being written. See the module docs.
pub struct PartWriter {
    part: PathBuf,
    final_path: PathBuf,
    sink: Option<Sink>,
    inspector: Inspector,
    sql_bytes: u64,
    committed: bool,
}

/// The line after the last table section of a native dump; views and the closing settings
/// follow it. The writer ends a zstd frame before it (one frame per section).
pub(crate) const TABLES_END: &str = "-- Tables end";

/// zstd level: 3 is zstd's default and keeps the dump well ahead of the disk on one core.
const ZSTD_LEVEL: i32 = 3;
const BUF_BYTES: usize = 1 << 20;

impl PartWriter {
    /// Starts `<final_path>.part`. Refuses when `final_path` exists unless `overwrite`.
    pub fn create(
        final_path: &Path,
        compression: Compression,
        overwrite: bool,
    ) -> Result<PartWriter, DumpError> {
        if !overwrite && final_path.exists() {
            return Err(DumpError::AlreadyExists {
                path: final_path.to_path_buf(),
            });
        }
        let part = part_path(final_path);
        let file = open_part(&part)?;
        let hf = BufWriter::with_capacity(
            BUF_BYTES,
            HashingFile {
                file,
                written: Digester::new(),
                writeback_from: 0,
            },
        );
        let sink = match compression {
            Compression::None => Sink::Plain(hf),
            Compression::Zstd => {
                let enc =
                    zstd::Encoder::new(hf, ZSTD_LEVEL).map_err(|e| DumpError::io(&part, e))?;
                Sink::Zstd(enc, false)
            }
        };
        Ok(PartWriter {
            part,
            final_path: final_path.to_path_buf(),
            sink: Some(sink),
            inspector: Inspector::default(),
            sql_bytes: 0,
            committed: false,
        })
    }

    /// Appends SQL text.
    pub fn write_all(&mut self, sql: &[u8]) -> Result<(), DumpError> {
        self.inspector.feed(sql);
        self.sql_bytes += sql.len() as u64;
        let r = match self.sink.as_mut() {
            Some(Sink::Plain(w)) => w.write_all(sql),
            Some(Sink::Zstd(w, used)) => {
                *used |= !sql.is_empty();
                w.write_all(sql)
            }
            None => Ok(()),
        };
        r.map_err(|e| DumpError::io(&self.part, e))
    }

    /// Appends a complete section compressed elsewhere (a compressed spool file, [`Msg::Raw`])
    /// as it is: its own zstd frame(s), after the current frame is ended. `seen` is what an
    /// [`Inspector`] saw of its SQL.
    fn write_raw(&mut self, bytes: &[u8]) -> Result<(), DumpError> {
        let r = match self.sink.as_mut() {
            Some(Sink::Zstd(w, false)) => w.get_mut().write_all(bytes),
            _ => {
                return Err(DumpError::Internal {
                    what: "compressed bytes sent to a writer that is not between zstd frames"
                        .into(),
                });
            }
        };
        r.map_err(|e| DumpError::io(&self.part, e))
    }

    /// Counts the SQL of a section compressed elsewhere, as [`PartWriter::write_all`] would.
    fn saw(&mut self, seen: Seen) {
        self.inspector.objects.extend(seen.objects);
        self.sql_bytes += seen.sql_bytes;
    }

    /// Ends the current zstd frame, if it holds anything, so what follows starts a frame of
    /// its own that can be decompressed alone (restore loads a zstd dump's sections in
    /// parallel that way). Concatenated frames are one valid zstd stream (`zstd -d` reads
    /// them as one). Nothing to do for a plain file.
    pub fn end_frame(&mut self) -> Result<(), DumpError> {
        if !matches!(self.sink, Some(Sink::Zstd(_, true))) {
            return Ok(());
        }
        let Some(Sink::Zstd(enc, _)) = self.sink.take() else {
            unreachable!("matched above")
        };
        let io = |e| DumpError::io(&self.part, e);
        let inner = enc.finish().map_err(io)?;
        self.sink = Some(Sink::Zstd(
            zstd::Encoder::new(inner, ZSTD_LEVEL).map_err(io)?,
            false,
        ));
        Ok(())
    }

    /// Finishes the file: flush, fsync, check (non-empty, trailer, every expected table and
    /// view has its CREATE), rename into place, fsync the folder.
    pub fn commit(mut self, expected: &[String]) -> Result<Written, DumpError> {
        let part = self.part.clone();
        let io = |e| DumpError::io(&part, e);
        let buffered = match self.sink.take() {
            Some(Sink::Plain(w)) => w,
            Some(Sink::Zstd(w, _)) => w.finish().map_err(io)?,
            None => unreachable!("commit consumes the writer"),
        };
        let hf = buffered.into_inner().map_err(|e| io(e.into_error()))?;
        hf.file.sync_all().map_err(io)?;
        let incomplete = |reason: String| DumpError::Incomplete {
            path: part.clone(),
            reason,
        };
        if self.sql_bytes == 0 {
            return Err(incomplete("the dump is empty".into()));
        }
        if !self.inspector.trailer_seen() {
            return Err(incomplete(format!(
                "the last line is not `{TRAILER}`: the dumper stopped early"
            )));
        }
        let missing: Vec<&String> = expected
            .iter()
            .filter(|t| !self.inspector.objects.contains(t.as_str()))
            .collect();
        if !missing.is_empty() {
            return Err(incomplete(format!(
                "no CREATE statement for {}",
                missing
                    .iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        std::fs::rename(&part, &self.final_path).map_err(|e| DumpError::io(&self.final_path, e))?;
        self.committed = true;
        fsync_dir(self.final_path.parent().unwrap_or(Path::new(".")))?;
        let written = hf.written.finish();
        Ok(Written {
            path: self.final_path.clone(),
            size_bytes: written.size,
            blake3_hex: written.blake3_hex,
        })
    }
}

impl Drop for PartWriter {
    fn drop(&mut self) {
        // Not committed (an error, a failed check or a cancelled task): the partial file must
        // not survive, and on a full disk its space is needed back.
        if !self.committed {
            self.sink = None;
            let _ = std::fs::remove_file(&self.part);
        }
    }
}

/// A message to a writer thread. The file is only committed on `Commit`: a producer that
/// dies (error, cancelled task) closes the channel, and the writer then discards the file.
pub enum Msg {
    /// More SQL text.
    Data(Vec<u8>),
    /// A section spooled to disk (parallel dumps), complete or as far as it was written when
    /// its turn came: its bytes are copied in, in chunks, and the spool file is removed.
    Append(SpoolFile),
    /// All sent: commit, expecting a CREATE for each of these tables and views.
    Commit(Vec<String>),
    /// zstd bytes of a section compressed by its spool thread, after the spool file's bytes
    /// were appended: handed over while it was being written, the rest of its frame follows
    /// here as it is compressed.
    Raw(Vec<u8>),
    /// What the SQL of such a section held, once its frame is complete.
    Seen(Seen),
}

/// What an [`Inspector`] saw of a section that reached the file compressed.
#[derive(Debug, Default)]
pub struct Seen {
    objects: BTreeSet<String>,
    sql_bytes: u64,
}

/// True when `bytes` begins a section of a native dump: the native dumper sends each
/// `-- Table` line (with the table's DDL) and the `-- Tables end` line as the start of a
/// message of their own (`native.rs`), and a spooled section ([`Msg::Append`]) always
/// starts one. A zstd dump ends a frame there, so the file is one frame for the header, one
/// per base table and one for the views and tail, whatever the job count. Another dumper's
/// output never starts a message so, and stays one frame.
fn starts_section(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\n-- Table ")
        || bytes
            .strip_prefix(b"\n")
            .and_then(|b| b.strip_prefix(TABLES_END.as_bytes()))
            .is_some_and(|b| b.starts_with(b"\n"))
}

/// How many chunks may wait for the writer thread; bounds memory to a few MiB.
const CHANNEL_DEPTH: usize = 4;

/// Moves `w` to a blocking thread fed by the returned channel, so compression, hashing and
/// disk writes overlap the producer's work without blocking the async runtime.
pub fn spawn(
    w: PartWriter,
) -> (
    mpsc::Sender<Msg>,
    tokio::task::JoinHandle<Result<Written, DumpError>>,
) {
    let (tx, mut rx) = mpsc::channel::<Msg>(CHANNEL_DEPTH);
    let handle = tokio::task::spawn_blocking(move || {
        let mut w = w;
        let mut buf = Vec::new();
        while let Some(msg) = rx.blocking_recv() {
            match msg {
                Msg::Data(bytes) => {
                    if starts_section(&bytes) {
                        w.end_frame()?;
                    }
                    w.write_all(&bytes)?
                }
                Msg::Append(spool) => {
                    w.end_frame()?;
                    spool.copy_into(&mut w, &mut buf)?
                }
                Msg::Raw(bytes) => w.write_raw(&bytes)?,
                Msg::Seen(seen) => w.saw(seen),
                Msg::Commit(expected) => return w.commit(&expected),
            }
        }
        Err(DumpError::Internal {
            what: "the dump was abandoned before it completed".into(),
        })
    });
    (tx, handle)
}

/// Waits for a writer thread started by [`spawn`].
pub async fn join(
    handle: tokio::task::JoinHandle<Result<Written, DumpError>>,
) -> Result<Written, DumpError> {
    handle.await.map_err(|e| DumpError::Internal {
        what: format!("the dump writer thread failed: {e}"),
    })?
}

/// Sends a chunk to the writer; a closed channel means the writer failed, and its own error
/// (from [`join`]) is the one to report.
pub async fn send(tx: &mpsc::Sender<Msg>, bytes: Vec<u8>) -> Result<(), DumpError> {
    tx.send(Msg::Data(bytes))
        .await
        .map_err(|_| DumpError::WriterGone)
}

/// One table section of a parallel dump, written ahead of its turn to
/// `<dir>/.<database>.<index>.spool` (plain SQL, mode 0600) and copied into the database's
/// file when the sections before it are in. Dropping it removes the file, wherever that
/// happens (copied, failed, abandoned in a channel, cancelled), and only then releases its
/// `alive` token, so whoever waits until every token is gone knows no spool file is left.
pub struct SpoolFile {
    path: PathBuf,
    file: File,
    /// The file is one zstd frame (the dump is compressed), and this is what its SQL held.
    compressed: Option<Seen>,
    /// Held while the file exists; see [`spawn_spool`].
    _alive: mpsc::Sender<()>,
}

impl SpoolFile {
    /// Where section `index` of `database` is spooled in `dir`.
    pub fn path_for(dir: &Path, database: &str, index: usize) -> PathBuf {
        dir.join(format!(".{database}.{index}.spool"))
    }

    /// True when `name` is a spool file name of `database` (any index), a section's
    /// (`.<db>.<index>.spool`) or a key range's (`.<db>.<index>-<range>.spool`, see
    /// `ranges.rs`).
    pub fn is_spool_of(name: &str, database: &str) -> bool {
        let number = |i: &str| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit());
        name.strip_prefix('.')
            .and_then(|n| n.strip_prefix(database))
            .and_then(|n| n.strip_prefix('.'))
            .and_then(|n| n.strip_suffix(".spool"))
            .is_some_and(|i| match i.split_once('-') {
                Some((s, r)) => number(s) && number(r),
                None => number(i),
            })
    }

    /// Copies the file's bytes into `w` in chunks of [`BUF_BYTES`] (never whole): SQL, or
    /// a zstd frame appended as it is.
    fn copy_into(mut self, w: &mut PartWriter, buf: &mut Vec<u8>) -> Result<(), DumpError> {
        use std::io::{Read, Seek, SeekFrom};
        let compressed = self.compressed.take();
        buf.resize(BUF_BYTES, 0);
        let mut f = &self.file;
        f.seek(SeekFrom::Start(0))
            .map_err(|e| DumpError::io(&self.path, e))?;
        loop {
            let n = match f.read(buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(DumpError::io(&self.path, e)),
            };
            match compressed {
                Some(_) => w.write_raw(&buf[..n])?,
                None => w.write_all(&buf[..n])?,
            }
        }
        if let Some(seen) = compressed {
            w.saw(seen);
        }
        Ok(())
    }
}

impl Drop for SpoolFile {
    fn drop(&mut self) {
        // Runs before the fields drop, so the token is released after the file is gone.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Where a spool thread learns that its section has become the next one its database's
/// file needs: the owner of the file puts the file's writer channel here.
pub type Handoff = Arc<Mutex<Option<mpsc::Sender<Msg>>>>;

/// How a spooled section ended.
pub enum Spooled {
    /// Complete in its spool file, waiting for its turn.
    File(SpoolFile),
    /// Handed over while being written: the bytes spooled until then went to the writer as
    /// one [`Msg::Append`], and every later byte straight after them.
    Forwarded,
}

/// The thread writing a spool file.
pub type SpoolHandle = tokio::task::JoinHandle<Result<Spooled, DumpError>>;

/// Starts a spool file at `path` (a leftover of a crashed run is replaced) fed by the
/// returned channel from a blocking thread, like [`spawn`]. `Commit` finishes it (flushed,
/// not fsynced: it is copied and removed within the run) and the thread returns it; a
/// closed channel or an error removes it. When a sender appears in `handoff`, the thread
/// hands what it has written to that writer and forwards the rest there (see [`Spooled`]).
/// `alive` is held for as long as the file exists. A compressed dump's spool file holds the
/// section's zstd frame, compressed here as it would be in the writer (the same bytes: a
/// fresh frame at the same level), and copied into the file as it is.
pub fn spawn_spool(
    path: PathBuf,
    alive: mpsc::Sender<()>,
    handoff: Handoff,
    compression: Compression,
) -> Result<(mpsc::Sender<Msg>, SpoolHandle), DumpError> {
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(DumpError::io(&path, e)),
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| DumpError::io(&path, e))?;
    let spool = SpoolFile {
        path: path.clone(),
        file,
        compressed: None,
        _alive: alive,
    };
    let out = spool
        .file
        .try_clone()
        .map_err(|e| DumpError::io(&path, e))?;
    let target = SpoolTarget {
        file: Some(BufWriter::with_capacity(BUF_BYTES, out)),
        forward: None,
    };
    let out = match compression {
        Compression::None => SpoolOut::Plain(target),
        Compression::Zstd => SpoolOut::Zstd(
            zstd::Encoder::new(target, ZSTD_LEVEL).map_err(|e| DumpError::io(&path, e))?,
            Inspector::default(),
            0,
        ),
    };
    let mut sink = SpoolSink {
        path,
        spool: Some(spool),
        out: Some(out),
        handoff,
    };
    let (tx, mut rx) = mpsc::channel::<Msg>(CHANNEL_DEPTH);
    let handle = tokio::task::spawn_blocking(move || {
        while let Some(msg) = rx.blocking_recv() {
            match msg {
                Msg::Data(bytes) => sink.data(bytes)?,
                Msg::Commit(_) => return sink.commit(),
                Msg::Append(_) | Msg::Raw(_) | Msg::Seen(_) => {
                    return Err(DumpError::Internal {
                        what: "a spool file was sent into another spool file".into(),
                    });
                }
            }
        }
        Err(DumpError::Internal {
            what: "the spooled section was abandoned before it completed".into(),
        })
    });
    Ok((tx, handle))
}

/// Where a spool thread's bytes go: its file, or once handed over the database's writer.
struct SpoolTarget {
    /// Buffered writes into the spool file, until handed over.
    file: Option<BufWriter<File>>,
    /// The database's writer, once handed over.
    forward: Option<mpsc::Sender<Msg>>,
}

impl Write for SpoolTarget {
    /// Only the compressed path writes through here; forwarded bytes are zstd, sent raw.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match (&self.forward, self.file.as_mut()) {
            (Some(tx), _) => tx
                .blocking_send(Msg::Raw(buf.to_vec()))
                .map(|()| buf.len())
                .map_err(|_| io::Error::other(DumpError::WriterGone)),
            (None, Some(f)) => f.write(buf),
            (None, None) => Err(io::Error::other(
                "a spool file written after it was handed over",
            )),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

/// A spool thread's output: plain SQL, or a zstd frame (with what its SQL held, counted
/// here since the writer never sees that SQL).
enum SpoolOut {
    Plain(SpoolTarget),
    Zstd(zstd::Encoder<'static, SpoolTarget>, Inspector, u64),
}

impl SpoolOut {
    fn target(&mut self) -> &mut SpoolTarget {
        match self {
            SpoolOut::Plain(t) => t,
            SpoolOut::Zstd(e, _, _) => e.get_mut(),
        }
    }
}

/// The state of a spool thread: writing its file, or forwarding to the database's writer.
struct SpoolSink {
    path: PathBuf,
    /// Until handed over.
    spool: Option<SpoolFile>,
    /// Until committed.
    out: Option<SpoolOut>,
    handoff: Handoff,
}

impl SpoolSink {
    fn data(&mut self, bytes: Vec<u8>) -> Result<(), DumpError> {
        self.hand_over_if_asked()?;
        let path = &self.path;
        let io = |e: io::Error| match e.downcast::<DumpError>() {
            Ok(e) => e,
            Err(e) => DumpError::io(path, e),
        };
        match self.out.as_mut() {
            Some(SpoolOut::Plain(t)) => match (&t.forward, t.file.as_mut()) {
                (Some(tx), _) => tx
                    .blocking_send(Msg::Data(bytes))
                    .map_err(|_| DumpError::WriterGone),
                (None, Some(f)) => f.write_all(&bytes).map_err(io),
                (None, None) => Err(io(io::Error::other("no spool file"))),
            },
            Some(SpoolOut::Zstd(enc, seen, sql_bytes)) => {
                seen.feed(&bytes);
                *sql_bytes += bytes.len() as u64;
                enc.write_all(&bytes).map_err(io)
            }
            None => Err(DumpError::Internal {
                what: "a spool file written after it was committed".into(),
            }),
        }
    }

    fn commit(mut self) -> Result<Spooled, DumpError> {
        self.hand_over_if_asked()?;
        let path = self.path.clone();
        let io = |e: io::Error| match e.downcast::<DumpError>() {
            Ok(e) => e,
            Err(e) => DumpError::io(&path, e),
        };
        let (mut target, seen) = match self.out.take().expect("committed once") {
            SpoolOut::Plain(t) => (t, None),
            SpoolOut::Zstd(enc, inspector, sql_bytes) => {
                let t = enc.finish().map_err(io)?;
                let seen = Seen {
                    objects: inspector.objects,
                    sql_bytes,
                };
                (t, Some(seen))
            }
        };
        if let Some(tx) = target.forward.take() {
            if let Some(seen) = seen {
                tx.blocking_send(Msg::Seen(seen))
                    .map_err(|_| DumpError::WriterGone)?;
            }
            return Ok(Spooled::Forwarded);
        }
        target.flush().map_err(io)?;
        let mut spool = self.spool.take().expect("not handed over");
        spool.compressed = seen;
        Ok(Spooled::File(spool))
    }

    /// The section became the next one its file needs: the bytes so far go to the writer
    /// (copied from the file, which is then removed) and the rest follows them directly. A
    /// zstd frame being written goes on where it was: the encoder is not flushed (that would
    /// change the bytes), only where its output goes changes.
    fn hand_over_if_asked(&mut self) -> Result<(), DumpError> {
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        if out.target().forward.is_some() {
            return Ok(());
        }
        let Some(tx) = self.handoff.lock().expect("handoff lock").take() else {
            return Ok(());
        };
        let target = out.target();
        if let Some(mut f) = target.file.take() {
            f.flush().map_err(|e| DumpError::io(&self.path, e))?;
        }
        target.forward = Some(tx.clone());
        let mut spool = self.spool.take().expect("handed over once");
        if let SpoolOut::Zstd(..) = out {
            // The frame is not complete: its first bytes go in as they are, the rest as
            // `Msg::Raw`, and what its SQL held as `Msg::Seen` at the end.
            spool.compressed = Some(Seen::default());
        }
        tx.blocking_send(Msg::Append(spool))
            .map_err(|_| DumpError::WriterGone)?;
        Ok(())
    }
}

/// Waits for a spool thread started by [`spawn_spool`].
pub async fn join_spool(handle: SpoolHandle) -> Result<Spooled, DumpError> {
    handle.await.map_err(|e| DumpError::Internal {
        what: format!("the spool writer thread failed: {e}"),
    })?
}

/// Watches uncompressed SQL line by line: which tables and views get a CREATE statement,
/// and whether the stream ends with the trailer. Only line heads are kept, so memory stays
/// small however long an INSERT line is.
#[derive(Debug, Default)]
pub struct Inspector {
    head: Vec<u8>,
    last_line: Vec<u8>,
    objects: BTreeSet<String>,
    /// The body so far of a CREATE's identifier that a newline interrupted.
    open_ident: Option<Vec<u8>>,
}

const HEAD_CAP: usize = 512;

impl Inspector {
    /// Feeds the next bytes of the stream.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match find_newline(bytes) {
                Some(i) => {
                    self.push_head(&bytes[..i]);
                    self.end_line();
                    bytes = &bytes[i + 1..];
                }
                None => {
                    self.push_head(bytes);
                    break;
                }
            }
        }
    }

    fn push_head(&mut self, seg: &[u8]) {
        let room = HEAD_CAP.saturating_sub(self.head.len());
        self.head.extend_from_slice(&seg[..seg.len().min(room)]);
    }

    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.head);
        // A name may hold newlines: an identifier left open on the last line goes on here.
        if let Some(mut body) = self.open_ident.take() {
            body.push(b'\n');
            body.extend_from_slice(&line);
            self.take_ident(body);
            self.last_line = line;
            return;
        }
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            return;
        }
        if let Some(rest) = line.strip_prefix(b"CREATE TABLE `") {
            self.take_ident(rest.to_vec());
        } else if let Some(pos) = find(&line, b"VIEW `") {
            self.take_ident(line[pos + 6..].to_vec());
        }
        self.last_line = line;
    }

    /// Records the identifier `body` starts with (after its opening backtick), or keeps it
    /// open for the next line when it has not ended yet (a bounded amount).
    fn take_ident(&mut self, body: Vec<u8>) {
        match parse_ident(&body) {
            Ident::Name(name) => {
                self.objects.insert(name);
            }
            Ident::Open if body.len() <= HEAD_CAP => self.open_ident = Some(body),
            Ident::Open | Ident::Bad => {}
        }
    }

    /// True when the last non-blank line starts with [`TRAILER`].
    pub fn trailer_seen(&self) -> bool {
        let last = if self.head.iter().all(|b| b.is_ascii_whitespace()) {
            &self.last_line
        } else {
            &self.head
        };
        last.starts_with(TRAILER.as_bytes())
    }
}

/// The first `\n` in `hay`. Every byte of a dump passes here, and INSERT lines are long,
/// so blocks of 32 bytes are tested at once (a branch-free test the compiler vectorizes)
/// before single bytes are looked at.
fn find_newline(hay: &[u8]) -> Option<usize> {
    const BLOCK: usize = 32;
    let mut blocks = hay.chunks_exact(BLOCK);
    let mut offset = 0;
    for block in &mut blocks {
        let block: &[u8; BLOCK] = block.try_into().expect("exact chunk");
        if block.iter().fold(false, |any, &b| any | (b == b'\n')) {
            return block.iter().position(|&b| b == b'\n').map(|i| offset + i);
        }
        offset += BLOCK;
    }
    blocks
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| offset + i)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// What a backtick-quoted identifier body (after the opening backtick) holds.
enum Ident {
    /// Complete: the name, "``" undoubled.
    Name(String),
    /// No closing backtick yet.
    Open,
    /// Not UTF-8.
    Bad,
}

fn parse_ident(rest: &[u8]) -> Ident {
    let mut out = Vec::new();
    let mut i = 0;
    while i < rest.len() {
        if rest[i] == b'`' {
            if rest.get(i + 1) == Some(&b'`') {
                out.push(b'`');
                i += 2;
                continue;
            }
            return String::from_utf8(out).map_or(Ident::Bad, Ident::Name);
        }
        out.push(rest[i]);
        i += 1;
    }
    Ident::Open
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn inspector_sees_tables_views_and_trailer_across_chunks() {
        let mut i = Inspector::default();
        let text = b"-- x\nCREATE TABLE `a``b` (\n  `id` int\n);\n/*!50001 VIEW `v1` AS select 1 */;\nINSERT INTO `a``b` VALUES (1);\n-- Dump completed on 2024\n";
        for chunk in text.chunks(3) {
            i.feed(chunk);
        }
        assert!(i.trailer_seen());
        let objs: Vec<_> = i.objects.iter().cloned().collect();
        assert_eq!(objs, vec!["a`b".to_string(), "v1".to_string()]);
    }

    #[test]
    fn inspector_sees_names_with_newlines() {
        let mut i = Inspector::default();
        let text = "CREATE TABLE `a\nb``\r\n` (\n  `id` int\n);\nCREATE OR REPLACE VIEW `v\n\nw` AS select 1;\n-- Dump completed\n";
        for chunk in text.as_bytes().chunks(2) {
            i.feed(chunk);
        }
        assert!(i.trailer_seen());
        let objs: Vec<_> = i.objects.iter().cloned().collect();
        assert_eq!(objs, vec!["a\nb`\r\n".to_string(), "v\n\nw".to_string()]);
    }

    #[test]
    fn newlines_are_found_wherever_they_are() {
        for len in [0, 1, 31, 32, 33, 64, 100] {
            let mut v = vec![b'x'; len];
            assert_eq!(find_newline(&v), None, "len {len}");
            for at in 0..len {
                v[at] = b'\n';
                assert_eq!(find_newline(&v), Some(at), "len {len} at {at}");
                if at + 1 < len {
                    v[len - 1] = b'\n';
                    assert_eq!(find_newline(&v), Some(at), "first of two");
                    v[len - 1] = b'x';
                }
                v[at] = b'x';
            }
        }
    }

    fn contents(spool: &SpoolFile) -> Vec<u8> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = &spool.file;
        f.seek(SeekFrom::Start(0)).unwrap();
        let mut v = Vec::new();
        f.read_to_end(&mut v).unwrap();
        v
    }

    #[test]
    fn spool_names_are_recognised() {
        let p = SpoolFile::path_for(Path::new("/d"), "rm", 12);
        assert_eq!(p, Path::new("/d/.rm.12.spool"));
        assert!(SpoolFile::is_spool_of(".rm.12.spool", "rm"));
        assert!(!SpoolFile::is_spool_of(".rm.12.spool", "r"));
        assert!(!SpoolFile::is_spool_of(".rm..spool", "rm"));
        assert!(!SpoolFile::is_spool_of(".rm.x.spool", "rm"));
        assert!(!SpoolFile::is_spool_of("rm.sql", "rm"));
        assert!(SpoolFile::is_spool_of(".a.b.3.spool", "a.b"));
        // A key range's spool file (ranges.rs).
        assert!(SpoolFile::is_spool_of(".rm.12-3.spool", "rm"));
        assert!(!SpoolFile::is_spool_of(".rm.12-.spool", "rm"));
        assert!(!SpoolFile::is_spool_of(".rm.-3.spool", "rm"));
        assert!(!SpoolFile::is_spool_of(".rm.1-2-3.spool", "rm"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_spool_is_copied_into_the_file_in_order_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (alive, mut all_gone) = mpsc::channel::<()>(1);
        let path = SpoolFile::path_for(dir.path(), "db", 1);
        let (tx, h) =
            spawn_spool(path.clone(), alive, Handoff::default(), Compression::None).unwrap();
        tx.send(Msg::Data(b"CREATE TABLE `b` (x int);\n".to_vec()))
            .await
            .unwrap();
        tx.send(Msg::Commit(Vec::new())).await.unwrap();
        let Spooled::File(spool) = join_spool(h).await.unwrap() else {
            panic!("nobody asked for a hand-over")
        };
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let target = dir.path().join("db.sql");
        let (wtx, wh) = spawn(PartWriter::create(&target, Compression::None, false).unwrap());
        for msg in [
            Msg::Data(b"CREATE TABLE `a` (x int);\n".to_vec()),
            Msg::Append(spool),
            Msg::Data(b"-- Dump completed\n".to_vec()),
            Msg::Commit(vec!["a".into(), "b".into()]),
        ] {
            assert!(wtx.send(msg).await.is_ok());
        }
        join(wh).await.unwrap();
        assert_eq!(
            std::fs::read(&target).unwrap(),
            b"CREATE TABLE `a` (x int);\nCREATE TABLE `b` (x int);\n-- Dump completed\n"
        );
        assert!(!path.exists(), "the spool file is removed once copied");
        assert!(all_gone.recv().await.is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_handed_over_spool_forwards_the_rest_after_what_it_had() {
        for hand_over_after in 0..4 {
            let dir = tempfile::tempdir().unwrap();
            let (alive, mut all_gone) = mpsc::channel::<()>(1);
            let handoff = Handoff::default();
            let path = SpoolFile::path_for(dir.path(), "db", 2);
            let (tx, h) =
                spawn_spool(path.clone(), alive, handoff.clone(), Compression::None).unwrap();
            let (wtx, mut wrx) = mpsc::channel::<Msg>(16);
            for (i, chunk) in ["one ", "two ", "three"].iter().enumerate() {
                if i == hand_over_after {
                    *handoff.lock().unwrap() = Some(wtx.clone());
                }
                tx.send(Msg::Data(chunk.as_bytes().to_vec())).await.unwrap();
            }
            if hand_over_after == 3 {
                *handoff.lock().unwrap() = Some(wtx.clone());
            }
            tx.send(Msg::Commit(Vec::new())).await.unwrap();
            drop(wtx);
            assert!(matches!(join_spool(h).await.unwrap(), Spooled::Forwarded));
            // Whatever the thread had when it noticed comes first, then the rest.
            let mut got = Vec::new();
            let mut appended = 0;
            while let Some(msg) = wrx.recv().await {
                match msg {
                    Msg::Append(spool) => {
                        appended += 1;
                        got.extend(contents(&spool));
                    }
                    Msg::Data(b) => got.extend(b),
                    Msg::Commit(_) => panic!("the spool thread never commits the file"),
                    Msg::Raw(_) | Msg::Seen(_) => panic!("a plain spool sends SQL"),
                }
            }
            assert_eq!(appended, 1);
            assert_eq!(got, b"one two three", "hand-over after {hand_over_after}");
            assert!(!path.exists());
            assert!(all_gone.recv().await.is_none());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_spool_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (alive, mut all_gone) = mpsc::channel::<()>(1);
        let path = SpoolFile::path_for(dir.path(), "db", 0);
        let (tx, h) =
            spawn_spool(path.clone(), alive, Handoff::default(), Compression::None).unwrap();
        tx.send(Msg::Data(b"partial".to_vec())).await.unwrap();
        drop(tx);
        assert!(join_spool(h).await.is_err());
        assert!(!path.exists());
        assert!(all_gone.recv().await.is_none());
    }

    /// The messages of a small native dump; section `b` (index 2 to 4) may be spooled.
    const SECTIONS: [&[u8]; 8] = [
        b"-- header\n",
        b"SET NAMES utf8mb4;\n",
        b"\n-- Table `a`\nCREATE TABLE `a` (x int);\n",
        b"INSERT INTO `a` VALUES (1);\n",
        b"\n-- Table `b`\nCREATE TABLE `b` (x int);\n",
        b"INSERT INTO `b` VALUES (2);\n",
        b"\n-- Tables end\n",
        b"-- Dump completed\n",
    ];

    /// Writes [`SECTIONS`] as a zstd dump; `b` spooled (compressed) when `spool` is given,
    /// handed over after that many of its messages (3: complete first).
    async fn zstd_dump(spool: Option<usize>) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("db.sql.zst");
        let (wtx, wh) = spawn(PartWriter::create(&target, Compression::Zstd, false).unwrap());
        for m in &SECTIONS[..4] {
            wtx.send(Msg::Data(m.to_vec())).await.unwrap();
        }
        match spool {
            None => {
                for m in &SECTIONS[4..6] {
                    wtx.send(Msg::Data(m.to_vec())).await.unwrap();
                }
            }
            Some(after) => {
                let (alive, mut all_gone) = mpsc::channel::<()>(1);
                let handoff = Handoff::default();
                let path = SpoolFile::path_for(dir.path(), "db", 1);
                let (stx, sh) =
                    spawn_spool(path.clone(), alive, handoff.clone(), Compression::Zstd).unwrap();
                for (i, m) in SECTIONS[4..6].iter().enumerate() {
                    if i == after {
                        *handoff.lock().unwrap() = Some(wtx.clone());
                    }
                    stx.send(Msg::Data(m.to_vec())).await.unwrap();
                }
                if after == 2 {
                    *handoff.lock().unwrap() = Some(wtx.clone());
                }
                stx.send(Msg::Commit(Vec::new())).await.unwrap();
                match join_spool(sh).await.unwrap() {
                    Spooled::File(f) => wtx.send(Msg::Append(f)).await.unwrap(),
                    Spooled::Forwarded => assert!(after <= 2),
                }
                assert!(all_gone.recv().await.is_none());
                assert!(!path.exists());
            }
        }
        for m in &SECTIONS[6..] {
            wtx.send(Msg::Data(m.to_vec())).await.unwrap();
        }
        wtx.send(Msg::Commit(vec!["a".into(), "b".into()]))
            .await
            .unwrap();
        join(wh).await.unwrap();
        std::fs::read(&target).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_zstd_dump_gets_one_frame_per_section_spooled_or_not() {
        let bytes = zstd_dump(None).await;
        // Each frame decodes alone to its section.
        let mut frames = Vec::new();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let n = zstd::zstd_safe::find_frame_compressed_size(rest).unwrap();
            frames.push(String::from_utf8(zstd::decode_all(&rest[..n]).unwrap()).unwrap());
            rest = &rest[n..];
        }
        assert_eq!(
            frames,
            [
                "-- header\nSET NAMES utf8mb4;\n",
                "\n-- Table `a`\nCREATE TABLE `a` (x int);\nINSERT INTO `a` VALUES (1);\n",
                "\n-- Table `b`\nCREATE TABLE `b` (x int);\nINSERT INTO `b` VALUES (2);\n",
                "\n-- Tables end\n-- Dump completed\n",
            ]
        );
        // A section compressed in its spool file, complete or handed over halfway, gives
        // the same bytes.
        for after in 0..=3 {
            assert_eq!(
                zstd_dump(Some(after)).await,
                bytes,
                "hand-over after {after}"
            );
        }
    }

    #[test]
    fn trailer_must_be_last() {
        let mut i = Inspector::default();
        i.feed(b"-- Dump completed\nINSERT INTO t VALUES (1);\n");
        assert!(!i.trailer_seen());
        let mut j = Inspector::default();
        j.feed(b"x\n-- Dump completed");
        assert!(
            j.trailer_seen(),
            "a trailer without final newline still counts"
        );
    }

    #[test]
    fn dropped_writer_removes_part_and_commit_checks() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("db.sql");
        {
            let mut w = PartWriter::create(&target, Compression::None, false).unwrap();
            w.write_all(b"CREATE TABLE `t` (x int);\n").unwrap();
        }
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());

        let mut w = PartWriter::create(&target, Compression::None, false).unwrap();
        w.write_all(b"CREATE TABLE `t` (x int);\n").unwrap();
        let err = w.commit(&["t".into()]).unwrap_err();
        assert!(matches!(err, DumpError::Incomplete { .. }), "{err}");
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());

        let mut w = PartWriter::create(&target, Compression::Zstd, false).unwrap();
        w.write_all(b"CREATE TABLE `t` (x int);\n-- Dump completed\n")
            .unwrap();
        let err = w.commit(&["t".into(), "u".into()]).unwrap_err();
        assert!(err.to_string().contains("`u`"), "{err}");

        let mut w = PartWriter::create(&target, Compression::Zstd, false).unwrap();
        w.write_all(b"CREATE TABLE `t` (x int);\n-- Dump completed\n")
            .unwrap();
        let written = w.commit(&["t".into()]).unwrap();
        let on_disk = std::fs::read(&target).unwrap();
        assert_eq!(written.size_bytes, on_disk.len() as u64);
        assert_eq!(
            written.blake3_hex,
            blake3::hash(&on_disk).to_hex().to_string()
        );
        assert_eq!(
            zstd::decode_all(&on_disk[..]).unwrap(),
            b"CREATE TABLE `t` (x int);\n-- Dump completed\n"
        );
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(matches!(
            PartWriter::create(&target, Compression::None, false),
            Err(DumpError::AlreadyExists { .. })
        ));
    }
}
