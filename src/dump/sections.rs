//! The table sections of a native dump (formats 2 and 3), found while the file is verified,
//! and read back one section at a time so restore can load tables in parallel. A zstd dump
//! written with one frame per section has its sections found from the frame headers
//! instead ([`Frames`]), each frame decompressed on its own.
//!
//! A native dump marks each base table's statements with a `-- Table <name>` line and ends
//! the last one with a `-- Tables end` line (see `native.rs`); format 3 writes the name in
//! the escaped one-line form of `comment_name`, format 2 only backtick-quoted (a format 2
//! name with a newline gives no well-formed marker, and the file is loaded in order).
//! Only a line that starts outside every quote can be a marker (see [`Scan`]), so a name
//! holding `\n-- Table ...` forges nothing. Finding those lines
//! is a line scan fused into the BLAKE3 pass restore does anyway, so it costs no extra read.
//! A marker alone proves nothing (a line could look like one), so the loader checks each
//! section as it reads it: the split must end exactly at the section's end, and every
//! statement must be the DROP, CREATE or INSERT of that table, checked before it is sent.
//! Anything else makes the caller fall back to loading the whole file in order.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::DumpError;
use super::artifact::{Compression, DumpArtifact, Dumper};
use super::native::{FORMAT_2_LINE, FORMAT_LINE, TABLES_END};
use super::pieces;
use super::splitter::{Splitter, Stmt, check_supported};
use super::sqlvalue::{comment_name, ident, parse_comment_name};
use crate::digest::FileDigest;
use blake3::hazmat::ChainingValue;

/// Longest marker line kept while scanning; longer lines are not markers.
const MAX_MARKER_LINE: usize = 1024;
/// Largest header (the settings before the first table) kept in memory.
const MAX_HEADER: u64 = 1 << 20;
/// The file is hashed in pieces of this size while it is verified (the whole file's BLAKE3
/// is computed from the pieces' values, [`super::pieces`]); every later read checks each
/// piece again before handing out a byte of it.
pub(crate) const CHUNK: u64 = pieces::PIECE;
/// Pieces read at once while verifying (4 MiB): enough to pay for handing their hashes to a
/// second thread.
const BATCH: u64 = 16;

/// A dump file whose size and BLAKE3 matched the artifact, still open, with the BLAKE3
/// chaining value of each [`CHUNK`]-sized piece as it was read in that same pass.
///
/// Everything a restore executes is read through here: from the handle that was verified
/// (a file swapped under the path afterwards is never seen), one piece at a time, each piece
/// hashed again and compared before any of its bytes is handed on. A file rewritten in place
/// or truncated after the check fails with [`DumpError::FileChanged`] at the first changed
/// piece, and none of that piece's bytes reach the server.
#[derive(Debug)]
pub(crate) struct Verified {
    file: File,
    path: PathBuf,
    size: u64,
    chunks: Vec<ChainingValue>,
}

impl Verified {
    /// The path the file was opened by (for messages).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Reads piece `i` into `buf` and checks it against the hash from the verification.
    fn chunk(&self, i: usize, buf: &mut Vec<u8>) -> Result<(), DumpError> {
        let start = i as u64 * CHUNK;
        let len = (self.size - start).min(CHUNK) as usize;
        buf.resize(len, 0);
        let changed = || DumpError::FileChanged {
            path: self.path.clone(),
            offset: start,
            loaded: String::new(),
        };
        match self.file.read_exact_at(buf, start) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(changed()),
            Err(e) => return Err(DumpError::io(&self.path, e)),
        }
        if pieces::piece_value(i as u64, buf) != self.chunks[i] {
            return Err(changed());
        }
        Ok(())
    }

    /// Calls `f` with the verified bytes of `[start, end)`, in order, with their offsets.
    pub(crate) fn for_each<E: From<DumpError>>(
        &self,
        (start, end): (u64, u64),
        mut f: impl FnMut(&[u8], u64) -> Result<(), E>,
    ) -> Result<(), E> {
        let end = end.min(self.size);
        let mut buf = Vec::with_capacity(CHUNK as usize);
        let mut at = start;
        while at < end {
            let i = (at / CHUNK) as usize;
            self.chunk(i, &mut buf)?;
            let base = i as u64 * CHUNK;
            let from = (at - base) as usize;
            let to = ((end - base) as usize).min(buf.len());
            f(&buf[from..to], at)?;
            at = base + to as u64;
        }
        Ok(())
    }

    /// A reader over the whole file, each piece checked before it is read.
    pub(crate) fn reader(self: &Arc<Self>) -> VerifiedReader {
        self.range_reader((0, self.size))
    }

    /// A reader over `[start, end)` of the file, each piece checked before it is read.
    pub(crate) fn range_reader(self: &Arc<Self>, (start, end): (u64, u64)) -> VerifiedReader {
        VerifiedReader {
            data: self.clone(),
            buf: Vec::new(),
            pos: 0,
            at: start,
            end: end.min(self.size),
        }
    }
}

/// [`Read`] over a [`Verified`] file. A changed piece is an I/O error carrying the
/// [`DumpError::FileChanged`]; [`from_io`] gets it back.
pub(crate) struct VerifiedReader {
    data: Arc<Verified>,
    /// The checked piece being read, cut at `end`.
    buf: Vec<u8>,
    pos: usize,
    /// File offset of `buf[pos]`.
    at: u64,
    end: u64,
}

impl Read for VerifiedReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.buf.len() {
            if self.at >= self.end {
                return Ok(0);
            }
            let i = (self.at / CHUNK) as usize;
            self.data
                .chunk(i, &mut self.buf)
                .map_err(std::io::Error::other)?;
            let base = i as u64 * CHUNK;
            self.buf
                .truncate(((self.end - base) as usize).min(self.buf.len()));
            self.pos = (self.at - base) as usize;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        self.at += n as u64;
        Ok(n)
    }
}

/// The error of a read through a [`VerifiedReader`] (possibly inside a decoder): the
/// [`DumpError`] it carries, or an I/O error on `path`.
pub(crate) fn from_io(path: &Path, e: std::io::Error) -> DumpError {
    if e.get_ref().is_some_and(|inner| inner.is::<DumpError>()) {
        let inner = e.into_inner().expect("checked above");
        return *inner.downcast::<DumpError>().expect("checked above");
    }
    DumpError::io(path, e)
}

/// Where one table's statements are in the file: `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableSection {
    pub name: String,
    pub start: u64,
    pub end: u64,
}

/// The layout of a verified format 2 or 3 dump.
#[derive(Debug, Clone)]
pub(crate) struct Sections {
    /// The settings every connection runs before a section (`SET NAMES`, time zone, ...).
    pub header: Vec<u8>,
    /// One per base table, in file order (the artifact's table order).
    pub tables: Vec<TableSection>,
    /// `[start, end)` of the views and closing settings, run after every table is in.
    pub tail: (u64, u64),
    /// The offsets are those of zstd frames (one per section, see [`Frames`]): each range
    /// is decompressed on its own, and must start with its section's marker line.
    pub framed: bool,
}

/// Hashes the artifact's file (whole, compared with the recorded size and BLAKE3, and in
/// [`CHUNK`]s, kept for later reads) over one open handle; for a plain native dump of
/// format 2 or 3 whose markers name exactly the artifact's tables in order, also returns its
/// sections. No section: load it in order.
pub(crate) fn verify_and_find(
    artifact: &DumpArtifact,
) -> Result<(Arc<Verified>, Option<Sections>), DumpError> {
    let path = &artifact.file;
    let io = |e| DumpError::io(path, e);
    let mut file = File::open(path).map_err(io)?;
    let native = artifact.format == Dumper::Native;
    let sectioned = native && artifact.compression == Compression::None;
    let framed = native && artifact.compression == Compression::Zstd;
    let mut scan = Scan::default();
    let mut frames = Frames::default();
    let mut size = 0u64;
    let mut chunks = Vec::new();
    let mut buf = vec![0u8; (CHUNK * BATCH) as usize];
    loop {
        // Full pieces (the file's last one may be short): short reads are filled up.
        let mut n = 0;
        while n < buf.len() {
            match file.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io(e)),
            }
        }
        if n == 0 {
            break;
        }
        let batch = &buf[..n];
        // The pieces' values (which also give the whole file's BLAKE3) on a second thread
        // while this one scans for sections: a restore waits for this whole pass before its
        // first statement (shape c: 1.1 GB).
        let first = chunks.len() as u64;
        let values = std::thread::scope(|t| {
            let values = t.spawn(|| {
                batch
                    .chunks(CHUNK as usize)
                    .zip(first..)
                    .map(|(p, i)| pieces::piece_value(i, p))
                    .collect::<Vec<_>>()
            });
            if sectioned {
                scan.feed(batch, size);
            }
            if framed {
                frames.feed(batch);
            }
            values.join()
        })
        .map_err(|_| DumpError::Internal {
            what: "hashing the dump's pieces failed".into(),
        })?;
        chunks.extend(values);
        size += n as u64;
        if n < buf.len() {
            break;
        }
    }
    scan.end_line();
    // A file of one piece or none is still in `buf`: its root is hashed directly.
    let root = pieces::root(size, &chunks, || blake3::hash(&buf[..size as usize]));
    artifact.check_digest(&FileDigest {
        size,
        blake3_hex: root.to_hex().to_string(),
    })?;
    let data = Arc::new(Verified {
        file,
        path: path.clone(),
        size,
        chunks,
    });
    if framed {
        let layout = frames
            .finish()
            .and_then(|f| framed_layout(&data, artifact, &f).transpose())
            .transpose()?;
        return Ok((data, layout));
    }
    let layout = if sectioned {
        scan.layout(artifact, size)
    } else {
        None
    };
    let Some(layout) = layout else {
        return Ok((data, None));
    };
    let mut header = Vec::with_capacity(layout.header_len as usize);
    data.for_each::<DumpError>((0, layout.header_len), |b, _| {
        header.extend_from_slice(b);
        Ok(())
    })?;
    // Every connection runs the header before its section, so the header must end between
    // statements: one that leaves a quote or an executable comment open would make the
    // sections read as other statements than the file read in order (finding F4 of the
    // `dump_sections` fuzz target). Such a file is loaded in order instead.
    if !ends_between_statements(&header) {
        return Ok((data, None));
    }
    Ok((
        data,
        Some(Sections {
            header,
            tables: layout.tables,
            tail: layout.tail,
            framed: false,
        }),
    ))
}

/// The sections of a zstd native dump written one frame per section (a header frame, one
/// frame per base table in the artifact's order, one frame for `-- Tables end` and what
/// follows). A file with another number of frames (one frame: written before sections got
/// their own frames) is loaded in order. The header frame is decompressed here and must be
/// a format 3 header: no marker, ending between statements; each table frame's and the
/// tail frame's first line is checked when it is read ([`read_range`]).
fn framed_layout(
    data: &Arc<Verified>,
    artifact: &DumpArtifact,
    frames: &[(u64, u64)],
) -> Result<Option<Sections>, DumpError> {
    if frames.len() != artifact.tables.len() + 2 {
        return Ok(None);
    }
    let mut header = Vec::new();
    let mut d = zstd::stream::read::Decoder::new(data.range_reader(frames[0]))
        .map_err(|e| from_io(data.path(), e))?;
    let read = (&mut d)
        .take(MAX_HEADER + 1)
        .read_to_end(&mut header)
        .map_err(|e| from_io(data.path(), e));
    if let Err(e) = read {
        // A frame that does not decode is not a section; the in-order load reports it.
        return match e {
            e @ DumpError::FileChanged { .. } => Err(e),
            _ => Ok(None),
        };
    }
    if header.len() as u64 > MAX_HEADER {
        return Ok(None);
    }
    let mut scan = Scan::default();
    scan.feed(&header, 0);
    scan.end_line();
    let plain_header = scan.format == Some(3)
        && scan.markers.is_empty()
        && scan.tables_end.is_none()
        && !scan.confused;
    if !plain_header || !ends_between_statements(&header) {
        return Ok(None);
    }
    // The tail runs once every table is in, when falling back to the in-order load is no
    // longer possible: its marker is checked now.
    let last = frames[frames.len() - 1];
    let tail_marker = format!("\n{TABLES_END}\n");
    match read_frame(data, last, tail_marker.as_bytes(), &mut |_, _| Ok(())) {
        Ok(()) => {}
        Err(SectionError::NotASection(_)) => return Ok(None),
        Err(SectionError::Dump(e)) => return Err(e),
    }
    let tables = artifact
        .tables
        .iter()
        .zip(&frames[1..])
        .map(|(fact, &(start, end))| TableSection {
            name: fact.name.clone(),
            start,
            end,
        })
        .collect();
    Ok(Some(Sections {
        header,
        tables,
        tail: last,
        framed: true,
    }))
}

/// Finds the zstd frames of a file from their headers and block headers while it is read
/// once (the verification pass), without decompressing: `[start, end)` of each frame. Only
/// plain zstd frames are followed; anything else (a skippable frame, a reserved block type,
/// a file ending inside a frame) gives no frames, and the file is loaded in order.
#[derive(Debug, Default)]
struct Frames {
    frames: Vec<(u64, u64)>,
    /// Offset of the next byte fed.
    pos: u64,
    frame_start: u64,
    /// Header bytes collected so far for `phase`.
    hdr: Vec<u8>,
    phase: FramePhase,
    /// Bytes to pass over (block contents, the checksum) before the next header.
    skip: u64,
    /// After the skip, the frame ends.
    ends: bool,
    /// The frame has a content checksum after its last block.
    checksum: bool,
    bad: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum FramePhase {
    /// Magic number and frame header descriptor (5 bytes).
    #[default]
    Magic,
    /// The rest of the frame header, this many bytes in all.
    Header(usize),
    /// A block header (3 bytes).
    Block,
}

/// A zstd frame's magic number, little-endian.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// A zstd block holds at most this many bytes.
const MAX_BLOCK: u64 = 128 << 10;

impl Frames {
    fn feed(&mut self, mut buf: &[u8]) {
        while !buf.is_empty() && !self.bad {
            if self.skip > 0 {
                let k = self.skip.min(buf.len() as u64);
                self.skip -= k;
                self.pos += k;
                buf = &buf[k as usize..];
                self.end_frame_if_done();
                continue;
            }
            let need = match self.phase {
                FramePhase::Magic => 5,
                FramePhase::Header(n) => n,
                FramePhase::Block => 3,
            };
            let k = (need - self.hdr.len()).min(buf.len());
            self.hdr.extend_from_slice(&buf[..k]);
            self.pos += k as u64;
            buf = &buf[k..];
            if self.hdr.len() == need {
                self.header_complete();
            }
        }
    }

    fn header_complete(&mut self) {
        let h = std::mem::take(&mut self.hdr);
        match self.phase {
            FramePhase::Magic | FramePhase::Header(_) => {
                if h[..4] != ZSTD_MAGIC {
                    self.bad = true;
                    return;
                }
                let fhd = h[4];
                let single_segment = fhd & 0x20 != 0;
                if fhd & 0x08 != 0 {
                    self.bad = true; // reserved bit
                    return;
                }
                let dict = [0, 1, 2, 4][usize::from(fhd & 3)];
                let fcs = match fhd >> 6 {
                    0 => usize::from(single_segment),
                    1 => 2,
                    2 => 4,
                    _ => 8,
                };
                let len = 5 + usize::from(!single_segment) + dict + fcs;
                if self.phase == FramePhase::Magic && len > 5 {
                    self.hdr = h;
                    self.phase = FramePhase::Header(len);
                    return;
                }
                self.checksum = fhd & 0x04 != 0;
                self.phase = FramePhase::Block;
            }
            FramePhase::Block => {
                let b = u32::from(h[0]) | u32::from(h[1]) << 8 | u32::from(h[2]) << 16;
                let last = b & 1 != 0;
                let size = u64::from(b >> 3);
                self.skip = match (b >> 1) & 3 {
                    0 | 2 if size <= MAX_BLOCK => size,
                    1 => 1,
                    _ => {
                        self.bad = true;
                        return;
                    }
                };
                if last {
                    self.skip += if self.checksum { 4 } else { 0 };
                    self.ends = true;
                    self.end_frame_if_done();
                }
            }
        }
    }

    fn end_frame_if_done(&mut self) {
        if self.skip == 0 && self.ends {
            self.frames.push((self.frame_start, self.pos));
            self.frame_start = self.pos;
            self.ends = false;
            self.phase = FramePhase::Magic;
        }
    }

    /// The frames, when the file was whole frames and nothing else.
    fn finish(self) -> Option<Vec<(u64, u64)>> {
        let clean = !self.bad
            && self.skip == 0
            && self.hdr.is_empty()
            && self.phase == FramePhase::Magic
            && !self.frames.is_empty();
        clean.then_some(self.frames)
    }
}

/// Whether `sql` ends outside every quote and comment, with no statement left open.
fn ends_between_statements(sql: &[u8]) -> bool {
    let mut splitter = Splitter::default();
    let fed = splitter.feed(sql, 0, &mut |_, _| Ok::<(), ()>(()));
    fed.is_ok() && splitter.is_idle()
}

/// Line scanner: keeps the head of the current line, bounded, and records marker lines.
///
/// A name may hold a newline followed by text that looks like a marker (`-- Table ...`), so
/// a line counts as a marker only when it starts outside any quote. The scanner follows the
/// quotes (backticks, single and double quotes, with their escapes) of the dump's DDL and
/// INSERT heads; a `-- ` comment line and the values of an INSERT (from `VALUES (` on, which
/// this dumper writes on one line with every line break escaped) are skipped to the end of
/// their line by `memchr`, so the bulk of the file costs no more than before.
#[derive(Default)]
struct Scan {
    line_no: u64,
    line_start: u64,
    head: Vec<u8>,
    /// The native format named by the second line (2 or 3), if any.
    format: Option<u8>,
    markers: Vec<(String, u64)>,
    tables_end: Option<u64>,
    /// A marker line that is not a well-formed one, or markers after the end line.
    confused: bool,
    /// Where the lexer is.
    lex: Lex,
    /// The current line started inside a quote.
    line_start_quoted: bool,
    /// Bytes of [`VALUES_OPEN`] matched so far outside quotes.
    values: usize,
}

struct Layout {
    header_len: u64,
    tables: Vec<TableSection>,
    tail: (u64, u64),
}

/// Where the scanner's lexer is.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Lex {
    /// Outside quotes.
    #[default]
    Normal,
    /// Inside a quote opened by this byte.
    Quote(u8),
    /// Saw the quote byte inside a quote: it closes unless the next byte doubles it.
    QuoteEnd(u8),
    /// Saw a backslash inside a string.
    Escape(u8),
    /// The rest of the line is a comment or an INSERT's values.
    SkipLine,
}

/// Where an INSERT's values start; nothing after it on the line is an identifier.
const VALUES_OPEN: &[u8] = b"VALUES (";

impl Scan {
    fn feed(&mut self, buf: &[u8], offset: u64) {
        let mut i = 0;
        while i < buf.len() {
            if self.lex == Lex::SkipLine {
                match memchr::memchr(b'\n', &buf[i..]) {
                    Some(p) => {
                        self.keep(&buf[i..i + p]);
                        i += p;
                    }
                    None => {
                        self.keep(&buf[i..]);
                        return;
                    }
                }
            }
            let b = buf[i];
            if b == b'\n' {
                self.lex = match self.lex {
                    Lex::Quote(q) | Lex::Escape(q) => Lex::Quote(q),
                    Lex::Normal | Lex::QuoteEnd(_) | Lex::SkipLine => Lex::Normal,
                };
                self.end_line();
                self.line_start = offset + (i + 1) as u64;
                self.line_start_quoted = self.lex != Lex::Normal;
                self.values = 0;
                i += 1;
                continue;
            }
            self.keep(&buf[i..i + 1]);
            self.lex_byte(b);
            if !self.line_start_quoted && self.head.len() == 3 && self.head == b"-- " {
                self.lex = Lex::SkipLine;
            }
            i += 1;
        }
    }

    fn lex_byte(&mut self, b: u8) {
        self.lex = match self.lex {
            Lex::Normal => {
                if b == VALUES_OPEN[self.values] {
                    self.values += 1;
                    if self.values == VALUES_OPEN.len() {
                        self.values = 0;
                        self.lex = Lex::SkipLine;
                        return;
                    }
                } else {
                    self.values = usize::from(b == VALUES_OPEN[0]);
                }
                match b {
                    b'`' | b'\'' | b'"' => Lex::Quote(b),
                    _ => Lex::Normal,
                }
            }
            Lex::Quote(q) if b == q => Lex::QuoteEnd(q),
            Lex::Quote(q) if b == b'\\' && q != b'`' => Lex::Escape(q),
            Lex::Quote(q) | Lex::Escape(q) => Lex::Quote(q),
            Lex::QuoteEnd(q) if b == q => Lex::Quote(q),
            Lex::QuoteEnd(_) => {
                self.lex = Lex::Normal;
                self.values = 0;
                return self.lex_byte(b);
            }
            Lex::SkipLine => Lex::SkipLine,
        };
    }

    fn keep(&mut self, part: &[u8]) {
        let room = (MAX_MARKER_LINE + 1).saturating_sub(self.head.len());
        self.head.extend_from_slice(&part[..part.len().min(room)]);
    }

    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.head);
        let at_line_one = self.line_no == 1;
        self.line_no += 1;
        if at_line_one && line == FORMAT_LINE.as_bytes() {
            self.format = Some(3);
        } else if at_line_one && line == FORMAT_2_LINE.as_bytes() {
            self.format = Some(2);
        }
        // A line that starts inside a quoted name is part of a statement, whatever it says.
        if self.line_start_quoted {
            return;
        }
        if line.starts_with(b"-- Table ") {
            match parse_marker(&line, self.format) {
                Some(name) if self.tables_end.is_none() => {
                    self.markers.push((name, self.line_start))
                }
                _ => self.confused = true,
            }
        } else if line == TABLES_END.as_bytes() {
            if self.tables_end.is_some() {
                self.confused = true;
            }
            self.tables_end = Some(self.line_start);
        }
    }

    fn layout(self, artifact: &DumpArtifact, size: u64) -> Option<Layout> {
        let end = self.tables_end?;
        if self.format.is_none() || self.confused || self.markers.len() != artifact.tables.len() {
            return None;
        }
        let names_match = self
            .markers
            .iter()
            .zip(&artifact.tables)
            .all(|((name, _), fact)| *name == fact.name);
        if !names_match {
            return None;
        }
        let header_len = self.markers.first().map_or(end, |(_, at)| *at);
        if header_len > MAX_HEADER {
            return None;
        }
        let mut tables = Vec::with_capacity(self.markers.len());
        for (i, (name, start)) in self.markers.iter().enumerate() {
            let next = self.markers.get(i + 1).map_or(end, |(_, at)| *at);
            tables.push(TableSection {
                name: name.clone(),
                start: *start,
                end: next,
            });
        }
        Some(Layout {
            header_len,
            tables,
            tail: (end, size),
        })
    }
}

/// The table a marker line names, in the file's format: format 3 `-- Table `a\u{a}b`` ->
/// "a\nb"; format 2 `-- Table `we``ird`` -> "we`ird".
fn parse_marker(line: &[u8], format: Option<u8>) -> Option<String> {
    let rest = std::str::from_utf8(line.strip_prefix(b"-- Table ")?).ok()?;
    match format? {
        2 => {
            let inner = rest.strip_prefix('`')?.strip_suffix('`')?;
            let name = inner.replace("``", "`");
            (ident(&name) == rest).then_some(name)
        }
        _ => parse_comment_name(rest),
    }
}

/// Decompresses the zstd frame at `range` of the verified file and hands its bytes to `f`
/// (with their offsets in the frame), after checking that it starts with `marker`.
fn read_frame(
    data: &Arc<Verified>,
    range: (u64, u64),
    marker: &[u8],
    f: &mut impl FnMut(&[u8], u64) -> Result<(), SectionError>,
) -> Result<(), SectionError> {
    let path = data.path();
    // A frame that does not decode (or ends early) is not the section the layout said; a
    // piece changed after the check is a real failure.
    let decode_err = |e: std::io::Error| match from_io(path, e) {
        e @ DumpError::FileChanged { .. } => SectionError::Dump(e),
        e => SectionError::NotASection(format!(
            "the zstd frame at byte {} does not decode: {e}",
            range.0
        )),
    };
    let mut d = zstd::stream::read::Decoder::new(data.range_reader(range)).map_err(decode_err)?;
    let mut buf = vec![0u8; 256 << 10];
    let mut head = Vec::with_capacity(marker.len());
    let mut at = 0u64;
    loop {
        let n = d.read(&mut buf).map_err(decode_err)?;
        if n == 0 {
            break;
        }
        let mut bytes = &buf[..n];
        if head.len() < marker.len() {
            let k = (marker.len() - head.len()).min(n);
            head.extend_from_slice(&bytes[..k]);
            if !marker.starts_with(&head) {
                return Err(SectionError::NotASection(format!(
                    "the zstd frame at byte {} does not start with its section's marker",
                    range.0
                )));
            }
            if head.len() < marker.len() {
                continue;
            }
            f(&head, 0)?;
            at = head.len() as u64;
            bytes = &bytes[k..];
        }
        f(bytes, at)?;
        at += bytes.len() as u64;
    }
    if head.len() < marker.len() {
        return Err(SectionError::NotASection(format!(
            "the zstd frame at byte {} does not start with its section's marker",
            range.0
        )));
    }
    Ok(())
}

/// Why a section could not be loaded on its own; the caller loads the file in order instead.
#[derive(Debug)]
pub(crate) enum SectionError {
    /// The section is not what its marker said (the split did not end at its end, or a
    /// statement belongs to something else). Nothing of it was executed past that point.
    NotASection(String),
    /// A real failure (I/O, unsupported statement).
    Dump(DumpError),
}

impl From<DumpError> for SectionError {
    fn from(e: DumpError) -> Self {
        SectionError::Dump(e)
    }
}

/// Reads `[start, end)` of the verified file, splits it into statements and sends them;
/// when `table` is given, every statement must be that table's DROP, CREATE or INSERT. A
/// `framed` range is one zstd frame, decompressed on its own, whose first line must be the
/// marker of its section (the table's, or `-- Tables end` for the tail). Runs on a blocking
/// thread. A closed channel means the receiver stopped on an error it reports itself.
pub(crate) fn read_range(
    data: &Arc<Verified>,
    range: (u64, u64),
    table: Option<&str>,
    framed: bool,
    tx: mpsc::Sender<Stmt>,
) -> Result<(), SectionError> {
    let heads: Option<[String; 3]> = table.map(|t| {
        let t = ident(t);
        [
            format!("DROP TABLE IF EXISTS {t}"),
            format!("CREATE TABLE {t} "),
            format!("INSERT INTO {t} "),
        ]
    });
    let mut splitter = Splitter::default();
    let mut emit = |sql: Vec<u8>, at: u64| -> Result<(), SectionError> {
        if let Some(heads) = &heads {
            let ok = heads
                .iter()
                .enumerate()
                .any(|(i, h)| sql.starts_with(h.as_bytes()) && (i > 0 || sql.len() == h.len()));
            if !ok {
                return Err(SectionError::NotASection(format!(
                    "a statement at byte {at} does not belong to table section `{}`",
                    table.unwrap_or_default()
                )));
            }
        }
        check_supported(&sql, at)?;
        tx.blocking_send(Stmt { sql, offset: at })
            .map_err(|_| SectionError::Dump(DumpError::WriterGone))
    };
    if framed {
        let marker = match table {
            Some(t) => format!("\n-- Table {}\n", comment_name(t)),
            None => format!("\n{TABLES_END}\n"),
        };
        read_frame(data, range, marker.as_bytes(), &mut |bytes, at| {
            splitter.feed(bytes, at, &mut emit)
        })?;
    } else {
        data.for_each(range, |bytes, at| splitter.feed(bytes, at, &mut emit))?;
    }
    if !splitter.is_idle() {
        return Err(SectionError::NotASection(format!(
            "the section ending at byte {} ends inside a statement",
            range.1
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header that leaves a quote or an executable comment open is not a header the
    /// sections can share (finding F4 of the `dump_sections` fuzz target).
    #[test]
    fn a_header_must_end_between_statements() {
        assert!(ends_between_statements(b"SET NAMES utf8mb4;\n\n"));
        assert!(ends_between_statements(b"-- only a comment\n"));
        assert!(!ends_between_statements(
            b"SET NAMES utf8mb4;\n/*!40101 SET x=1;\n"
        ));
        assert!(!ends_between_statements(b"SET a='open;\n"));
        assert!(!ends_between_statements(b"SET a=1\n"));
    }
    use crate::dump::artifact::ChecksumMethod;
    use crate::dump::artifact::TableFact;

    fn artifact(tables: &[&str]) -> DumpArtifact {
        DumpArtifact {
            database: "d".into(),
            file: "/nonexistent".into(),
            size_bytes: 0,
            blake3_hex: String::new(),
            format: Dumper::Native,
            compression: Compression::None,
            charset: "utf8mb4".into(),
            collation: "utf8mb4_general_ci".into(),
            tables: tables
                .iter()
                .map(|t| TableFact {
                    name: t.to_string(),
                    rows: 0,
                    checksum: String::new(),
                    checksum_method: ChecksumMethod::Blake3Rows,
                })
                .collect(),
            views: vec![],
            skipped_triggers: vec![],
            server_version: String::new(),
        }
    }

    fn scan(text: impl AsRef<[u8]>, chunk: usize) -> Scan {
        let mut s = Scan::default();
        let b = text.as_ref();
        let mut off = 0;
        while off < b.len() {
            let end = (off + chunk).min(b.len());
            s.feed(&b[off..end], off as u64);
            off = end;
        }
        s.end_line();
        s
    }

    const DUMP: &str = "-- oms-upgrade native dump\n-- Format: 3 (sections)\nSET NAMES utf8mb4;\n\n-- Table `a`\nDROP TABLE IF EXISTS `a`;\nCREATE TABLE `a` (x int);\nINSERT INTO `a` (`x`) VALUES (1);\n\n-- Table `we``ird`\nDROP TABLE IF EXISTS `we``ird`;\n\n-- Tables end\nSET X=1;\n-- Dump completed\n";

    #[test]
    fn finds_sections_at_any_chunk_size() {
        for chunk in [1, 2, 7, 64, 4096] {
            let l = scan(DUMP, chunk)
                .layout(&artifact(&["a", "we`ird"]), DUMP.len() as u64)
                .expect("layout");
            let a = DUMP.find("-- Table `a`").unwrap() as u64;
            let w = DUMP.find("-- Table `we").unwrap() as u64;
            let e = DUMP.find("-- Tables end").unwrap() as u64;
            assert_eq!(l.header_len, a, "chunk {chunk}");
            assert_eq!(
                l.tables,
                vec![
                    TableSection {
                        name: "a".into(),
                        start: a,
                        end: w
                    },
                    TableSection {
                        name: "we`ird".into(),
                        start: w,
                        end: e
                    },
                ]
            );
            assert_eq!(l.tail, (e, DUMP.len() as u64));
        }
    }

    #[test]
    fn refuses_layouts_that_do_not_match_the_artifact() {
        let len = DUMP.len() as u64;
        // Different or missing tables.
        assert!(scan(DUMP, 64).layout(&artifact(&["a"]), len).is_none());
        assert!(scan(DUMP, 64).layout(&artifact(&["a", "b"]), len).is_none());
        // Format 1 (no format line), no end marker, a malformed marker.
        let v1 = DUMP.replace("-- Format: 3 (sections)\n", "");
        assert!(
            scan(&v1, 64)
                .layout(&artifact(&["a", "we`ird"]), len)
                .is_none()
        );
        let no_end = DUMP.replace("-- Tables end\n", "");
        assert!(
            scan(&no_end, 64)
                .layout(&artifact(&["a", "we`ird"]), len)
                .is_none()
        );
        let bad = DUMP.replace("-- Table `a`", "-- Table a");
        assert!(
            scan(&bad, 64)
                .layout(&artifact(&["a", "we`ird"]), len)
                .is_none()
        );
    }

    #[test]
    fn lines_inside_quoted_names_are_not_markers() {
        // A table whose name holds a newline and a forged marker and end line, a column and
        // a value with quotes: the real markers are found, the forged ones are not.
        let forged = "x\n-- Table `a`\n-- Tables end\n";
        let name = ident(forged);
        let marker = crate::dump::sqlvalue::comment_name(forged);
        let text = format!(
            "-- oms-upgrade native dump\n-- Format: 3 (sections)\n-- Server version: it's\nSET NAMES utf8mb4;\n\n\
             -- Table `a`\nDROP TABLE IF EXISTS `a`;\nCREATE TABLE `a` (\n  `c'\n-- Table ``q``` int\n);\n\
             INSERT INTO `a` (`c'\n-- Table ``q```) VALUES ('it''s `', \"\\\"`\"),('\\n-- Table `z`');\n\n\
             -- Table {marker}\nDROP TABLE IF EXISTS {name};\nCREATE TABLE {name} (x int);\n\
             INSERT INTO {name} (`x`) VALUES (1);\n\n-- Tables end\nSET X=1;\n-- Dump completed\n"
        );
        for chunk in [1, 2, 5, 64, 4096] {
            let l = scan(&text, chunk)
                .layout(&artifact(&["a", forged]), text.len() as u64)
                .unwrap_or_else(|| panic!("layout at chunk {chunk}"));
            let names: Vec<&str> = l.tables.iter().map(|t| t.name.as_str()).collect();
            assert_eq!(names, ["a", forged], "chunk {chunk}");
            assert_eq!(
                l.tail.0,
                text.rfind("-- Tables end").unwrap() as u64,
                "chunk {chunk}"
            );
        }
    }

    /// Binary values are written as their own bytes (`_binary'..'`, escaped): bytes that
    /// are not UTF-8, a UTF-8 lead byte before an escaped quote or backslash, and a value
    /// holding a line break and a forged marker neither move the sections nor split a
    /// statement anywhere but at its end, at any chunk size.
    #[test]
    fn binary_values_of_every_byte_keep_sections_and_statements() {
        use crate::dump::sqlvalue::{Literal, push_literal};
        let mut every: Vec<u8> = (0..=255u8).collect();
        every.extend_from_slice(b"\xc3'\xe2\\\xf0\x9f\x98;\n-- Table `b`\n-- Tables end\n\xff");
        let mut insert = b"INSERT INTO `a` (`x`) VALUES (".to_vec();
        push_literal(&mut insert, Literal::Binary, Some(&every));
        insert.extend_from_slice(b"),(");
        push_literal(&mut insert, Literal::Binary, Some(b""));
        insert.extend_from_slice(b"),(NULL)");
        assert!(!insert.contains(&b'\n') && !insert.contains(&0));
        let mut text =
            b"-- oms-upgrade native dump\n-- Format: 3 (sections)\nSET NAMES utf8mb4;\n\n\
            -- Table `a`\nDROP TABLE IF EXISTS `a`;\nCREATE TABLE `a` (x blob);\n"
                .to_vec();
        text.extend_from_slice(&insert);
        text.extend_from_slice(b";\n");
        text.extend_from_slice(&insert);
        text.extend_from_slice(
            b";\n\n-- Table `b`\nDROP TABLE IF EXISTS `b`;\n\n-- Tables end\nSET X=1;\n",
        );
        let find = |needle: &[u8]| {
            text.windows(needle.len())
                .position(|w| w == needle)
                .unwrap() as u64
        };
        let (a, b, e) = (
            find(b"-- Table `a`"),
            find(b"\n-- Table `b`\nDROP") + 1,
            find(b"\n-- Tables end\nSET") + 1,
        );
        for chunk in [1, 2, 7, 64, 4096] {
            let l = scan(&text, chunk)
                .layout(&artifact(&["a", "b"]), text.len() as u64)
                .unwrap_or_else(|| panic!("layout at chunk {chunk}"));
            let got: Vec<(u64, u64)> = l.tables.iter().map(|t| (t.start, t.end)).collect();
            assert_eq!(got, [(a, b), (b, e)], "chunk {chunk}");
        }
        let data = verified_file(&text).2;
        let (tx, mut rx) = mpsc::channel(1000);
        read_range(&data, (a, b), Some("a"), false, tx).expect("the section reads");
        let mut stmts = vec![];
        while let Ok(s) = rx.try_recv() {
            stmts.push(s.sql);
        }
        assert_eq!(stmts.len(), 4);
        assert_eq!(stmts[2], insert);
        assert_eq!(stmts[3], insert);
    }

    #[test]
    fn markers_parse_exactly() {
        for f in [Some(2), Some(3)] {
            assert_eq!(parse_marker(b"-- Table `a`", f).as_deref(), Some("a"));
            assert_eq!(parse_marker(b"-- Table `a``b`", f).as_deref(), Some("a`b"));
            assert_eq!(parse_marker(b"-- Table `a`b`", f), None);
            assert_eq!(parse_marker(b"-- Table `a` ", f), None);
        }
        assert_eq!(parse_marker(b"-- Table `a`", None), None);
        // Format 3 reads escaped names back; format 2 takes the escape literally.
        let m = br"-- Table `a\u{a}b\\`";
        assert_eq!(parse_marker(m, Some(3)).as_deref(), Some("a\nb\\"));
        assert_eq!(parse_marker(m, Some(2)).as_deref(), Some(r"a\u{a}b\\"));
    }

    #[test]
    fn format_2_files_still_have_sections() {
        let v2 = DUMP.replace("-- Format: 3", "-- Format: 2");
        let l = scan(&v2, 64)
            .layout(&artifact(&["a", "we`ird"]), v2.len() as u64)
            .expect("format 2 layout");
        assert_eq!(l.tables.len(), 2);
    }

    /// `text` in a file, verified; the file's path is returned to change it afterwards.
    fn verified_file(text: &[u8]) -> (tempfile::TempDir, PathBuf, Arc<Verified>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.sql");
        std::fs::write(&path, text).unwrap();
        let found = crate::digest::FileDigest::of_file(&path).unwrap();
        let mut a = artifact(&[]);
        a.format = Dumper::Mysqldump;
        a.file = path.clone();
        a.size_bytes = found.size;
        a.blake3_hex = found.blake3_hex;
        let (data, sections) = verify_and_find(&a).unwrap();
        assert!(sections.is_none());
        (dir, path, data)
    }

    fn verified(text: &str) -> Arc<Verified> {
        verified_file(text.as_bytes()).2
    }

    #[test]
    fn verified_reads_refuse_bytes_changed_after_the_check() {
        let c = CHUNK as usize;
        let text: Vec<u8> = (0..3 * c + 100).map(|i| b'a' + (i % 26) as u8).collect();
        let collect = |data: &Verified, range| {
            let mut got = Vec::new();
            let r = data.for_each::<DumpError>(range, |b, at| {
                assert_eq!(at as usize, got.len() + range.0 as usize);
                got.extend_from_slice(b);
                Ok(())
            });
            (got, r)
        };
        // Unchanged: any range comes back exactly.
        let (_d, path, data) = verified_file(&text);
        for range in [
            (0, text.len() as u64),
            (5, 7),
            (CHUNK - 1, CHUNK + 1),
            (0, 0),
        ] {
            let (got, r) = collect(&data, range);
            r.unwrap();
            assert_eq!(got, text[range.0 as usize..range.1 as usize]);
        }
        // Rewritten in place (same inode) after the check: nothing of the changed piece on.
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_at(b"DROP DATABASE x;", 2 * CHUNK + 5).unwrap();
        let (got, r) = collect(&data, (0, text.len() as u64));
        assert_eq!(got, text[..2 * c]);
        assert!(
            matches!(r, Err(DumpError::FileChanged { offset, .. }) if offset == 2 * CHUNK),
            "{r:?}"
        );
        let mut whole = Vec::new();
        let e = data.reader().read_to_end(&mut whole).unwrap_err();
        assert!(matches!(from_io(&path, e), DumpError::FileChanged { .. }));
        assert!(whole.len() <= 2 * c);
        // Truncated after the check.
        f.set_len(CHUNK + 10).unwrap();
        let (got, r) = collect(&data, (0, text.len() as u64));
        assert_eq!(got, text[..c]);
        assert!(matches!(r, Err(DumpError::FileChanged { offset, .. }) if offset == CHUNK));
        // Swapped under the path: the verified handle still reads the verified bytes.
        let (_d, path, data) = verified_file(&text);
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"DROP DATABASE x;").unwrap();
        let (got, r) = collect(&data, (0, text.len() as u64));
        r.unwrap();
        assert_eq!(got, text);
    }

    fn read_all(text: &str, range: (u64, u64), table: Option<&str>) -> Result<Vec<String>, String> {
        let data = verified(text);
        let (tx, mut rx) = mpsc::channel(1000);
        let r = read_range(&data, range, table, false, tx);
        let mut out = vec![];
        while let Ok(s) = rx.try_recv() {
            out.push(String::from_utf8(s.sql).unwrap());
        }
        match r {
            Ok(()) => Ok(out),
            Err(SectionError::NotASection(m)) => Err(m),
            Err(SectionError::Dump(e)) => Err(format!("dump error: {e}")),
        }
    }

    /// Section texts of a small native dump whose table `b` is large and does not
    /// compress, so its frame spans several pieces.
    fn framed_parts() -> Vec<String> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut big =
            String::from("\n-- Table `b`\nDROP TABLE IF EXISTS `b`;\nCREATE TABLE `b` (x text);\n");
        for _ in 0..200 {
            big.push_str("INSERT INTO `b` (`x`) VALUES ('");
            for _ in 0..400 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                big.push_str(&format!("{x:016x}"));
            }
            big.push_str("');\n");
        }
        vec![
            "-- oms-upgrade native dump\n-- Format: 3 (sections)\nSET NAMES utf8mb4;\n".into(),
            "\n-- Table `a`\nDROP TABLE IF EXISTS `a`;\nCREATE TABLE `a` (x int);\nINSERT INTO `a` (`x`) VALUES (1);\n".into(),
            big,
            "\n-- Tables end\nSET X=1;\n-- Dump completed\n".into(),
        ]
    }

    /// Each part as its own zstd frame, concatenated, in a verified file; with the frames.
    fn framed_file(
        parts: &[String],
    ) -> (tempfile::TempDir, PathBuf, DumpArtifact, Vec<(u64, u64)>) {
        let mut bytes = Vec::new();
        let mut frames = Vec::new();
        for p in parts {
            let start = bytes.len() as u64;
            bytes.extend(zstd::encode_all(p.as_bytes(), 3).unwrap());
            frames.push((start, bytes.len() as u64));
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.sql.zst");
        std::fs::write(&path, &bytes).unwrap();
        let mut a = artifact(&["a", "b"]);
        a.compression = Compression::Zstd;
        a.file = path.clone();
        a.size_bytes = bytes.len() as u64;
        a.blake3_hex = blake3::hash(&bytes).to_hex().to_string();
        (dir, path, a, frames)
    }

    #[test]
    fn zstd_frames_are_found_without_decompressing() {
        let parts = framed_parts();
        let (_d, path, _, expected) = framed_file(&parts);
        let bytes = std::fs::read(&path).unwrap();
        assert!(expected[2].1 - expected[2].0 > 2 * CHUNK, "b spans pieces");
        for chunk in [1, 2, 3, 5, 4096, bytes.len()] {
            let mut f = Frames::default();
            for piece in bytes.chunks(chunk) {
                f.feed(piece);
            }
            assert_eq!(f.finish().as_deref(), Some(&expected[..]), "chunk {chunk}");
        }
        // One frame (what earlier versions wrote), with a checksum and a content size.
        let sql = parts.concat();
        let mut enc = zstd::Encoder::new(Vec::new(), 3).unwrap();
        enc.include_checksum(true).unwrap();
        enc.set_pledged_src_size(Some(sql.len() as u64)).unwrap();
        std::io::Write::write_all(&mut enc, sql.as_bytes()).unwrap();
        let one = enc.finish().unwrap();
        let mut f = Frames::default();
        f.feed(&one);
        assert_eq!(f.finish(), Some(vec![(0, one.len() as u64)]));
        // Cut short, trailing garbage, a skippable frame, nothing: no frames.
        for bad in [
            &bytes[..bytes.len() - 1],
            &[&bytes[..], b"x"].concat()[..],
            &[&[0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0][..], &bytes[..]].concat()[..],
            &[][..],
        ] {
            let mut f = Frames::default();
            f.feed(bad);
            assert_eq!(f.finish(), None);
        }
    }

    fn read_framed(
        data: &Arc<Verified>,
        range: (u64, u64),
        table: Option<&str>,
    ) -> (Vec<String>, Result<(), SectionError>) {
        let (tx, mut rx) = mpsc::channel(1000);
        let r = read_range(data, range, table, true, tx);
        let mut out = vec![];
        while let Ok(s) = rx.try_recv() {
            out.push(String::from_utf8(s.sql).unwrap());
        }
        (out, r)
    }

    #[test]
    fn a_framed_zstd_dump_has_sections_checked_frame_by_frame() {
        let parts = framed_parts();
        let (_d, path, a, frames) = framed_file(&parts);
        let (data, sections) = verify_and_find(&a).unwrap();
        let s = sections.expect("a framed layout");
        assert!(s.framed);
        assert_eq!(s.header, parts[0].as_bytes());
        assert_eq!(
            s.tables,
            vec![
                TableSection {
                    name: "a".into(),
                    start: frames[1].0,
                    end: frames[1].1
                },
                TableSection {
                    name: "b".into(),
                    start: frames[2].0,
                    end: frames[2].1
                },
            ]
        );
        assert_eq!(s.tail, frames[3]);
        let (got, r) = read_framed(&data, frames[1], Some("a"));
        assert!(r.is_ok());
        assert_eq!(got.len(), 3);
        let (got, r) = read_framed(&data, frames[2], Some("b"));
        assert!(r.is_ok());
        assert_eq!(got.len(), 202);
        let (got, r) = read_framed(&data, frames[3], None);
        assert!(r.is_ok());
        assert_eq!(got, ["SET X=1"]);
        // A frame read as another table's: its marker does not match, nothing is sent.
        let (got, r) = read_framed(&data, frames[1], Some("b"));
        assert!(got.is_empty());
        assert!(matches!(r, Err(SectionError::NotASection(_))), "{r:?}");

        // A frame changed after the check: none of its bytes run.
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_at(b"\xff\xff\xff\xff", frames[2].0 + 20).unwrap();
        let (got, r) = read_framed(&data, frames[2], Some("b"));
        assert!(
            got.is_empty(),
            "{} statements of a changed frame ran",
            got.len()
        );
        assert!(
            matches!(r, Err(SectionError::Dump(DumpError::FileChanged { .. }))),
            "{r:?}"
        );
    }

    #[test]
    fn zstd_files_without_one_frame_per_section_load_in_order() {
        let parts = framed_parts();
        // One frame for everything.
        let (_d, _, mut a, _) = framed_file(&[parts.concat()]);
        a.tables = artifact(&["a", "b"]).tables;
        assert!(verify_and_find(&a).unwrap().1.is_none());
        // As many frames as sections, but cut elsewhere: the tail frame has no end marker.
        let moved = vec![
            parts[0].clone(),
            parts[1].clone(),
            parts[2].clone() + "\n-- Tables end\n",
            "SET X=1;\n-- Dump completed\n".into(),
        ];
        let (_d, _, a, _) = framed_file(&moved);
        assert!(verify_and_find(&a).unwrap().1.is_none());
        // A header frame holding a table marker.
        let merged = vec![
            parts[0].clone() + &parts[1],
            parts[2].clone(),
            parts[3].clone(),
            "-- x\n".into(),
        ];
        let (_d, _, a, _) = framed_file(&merged);
        assert!(verify_and_find(&a).unwrap().1.is_none());
    }

    #[test]
    fn a_section_is_checked_statement_by_statement() {
        let a = DUMP.find("-- Table `a`").unwrap() as u64;
        let w = DUMP.find("-- Table `we").unwrap() as u64;
        let got = read_all(DUMP, (a, w), Some("a")).unwrap();
        assert_eq!(got.len(), 3);
        assert!(got[2].starts_with("INSERT INTO `a` "));
        // The same range claimed for another table is refused before anything is sent.
        let err = read_all(DUMP, (a, w), Some("b")).unwrap_err();
        assert!(err.contains("does not belong"), "{err}");
        // A range that ends inside a quoted value is refused.
        let text = "INSERT INTO `a` (`x`) VALUES ('a;b\n-- Table `b`\n');\n";
        let cut = text.find("-- Table").unwrap() as u64;
        let err = read_all(text, (0, cut), Some("a")).unwrap_err();
        assert!(err.contains("inside a statement"), "{err}");
    }
}
