//! The table sections of a native dump (formats 2 and 3), found while the file is verified,
//! and read back one section at a time so restore can load tables in parallel.
//!
//! A native dump marks each base table's statements with a `-- Table <name>` line and ends
//! the last one with a `-- Tables end` line (see `native.rs`); format 3 writes the name in
//! the escaped one-line form of `comment_name`, format 2 only backtick-quoted (a format 2
//! name with a newline gives no well-formed marker, and the file is loaded in order). Finding those lines
//! is a line scan fused into the BLAKE3 pass restore does anyway, so it costs no extra read.
//! A marker alone proves nothing (a line could look like one), so the loader checks each
//! section as it reads it: the split must end exactly at the section's end, and every
//! statement must be the DROP, CREATE or INSERT of that table, checked before it is sent.
//! Anything else makes the caller fall back to loading the whole file in order.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::DumpError;
use super::artifact::{Compression, DumpArtifact, DumpFormat};
use super::native::{FORMAT_2_LINE, FORMAT_LINE, TABLES_END};
use super::restore::{Splitter, Stmt, check_supported};
use super::sqlvalue::{ident, parse_comment_name};

/// Longest marker line kept while scanning; longer lines are not markers.
const MAX_MARKER_LINE: usize = 1024;
/// Largest header (the settings before the first table) kept in memory.
const MAX_HEADER: u64 = 1 << 20;

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
    /// The file, opened once: it is the one that was verified, whatever the path names now.
    pub file: Arc<File>,
    /// The settings every connection runs before a section (`SET NAMES`, time zone, ...).
    pub header: Vec<u8>,
    /// One per base table, in file order (the artifact's table order).
    pub tables: Vec<TableSection>,
    /// `[start, end)` of the views and closing settings, run after every table is in.
    pub tail: (u64, u64),
}

/// Hashes the artifact's file like [`super::verify_artifact`] and, for a plain native dump of
/// format 2 or 3 whose markers name exactly the artifact's tables in order, returns its sections
/// over the same open file. `Ok(None)`: verified, but load it in order.
pub(crate) fn verify_and_find(artifact: &DumpArtifact) -> Result<Option<Sections>, DumpError> {
    if artifact.format != DumpFormat::Native || artifact.compression != Compression::None {
        super::verify_artifact(artifact)?;
        return Ok(None);
    }
    let path = &artifact.file;
    let io = |e| DumpError::io(path, e);
    let file = File::open(path).map_err(io)?;
    let mut scan = Scan::default();
    let mut hasher = blake3::Hasher::new();
    let mut size = 0u64;
    {
        let mut r = BufReader::with_capacity(1 << 20, &file);
        loop {
            let buf = r.fill_buf().map_err(io)?;
            if buf.is_empty() {
                break;
            }
            hasher.update(buf);
            scan.feed(buf, size);
            let n = buf.len();
            size += n as u64;
            r.consume(n);
        }
    }
    scan.end_line();
    let hex = hasher.finalize().to_hex().to_string();
    artifact.check_hash(size, &hex, "")?;
    let Some(layout) = scan.layout(artifact, size) else {
        return Ok(None);
    };
    let mut header = vec![0u8; layout.header_len as usize];
    file.read_exact_at(&mut header, 0).map_err(io)?;
    Ok(Some(Sections {
        file: Arc::new(file),
        header,
        tables: layout.tables,
        tail: layout.tail,
    }))
}

/// Line scanner: keeps the head of the current line, bounded, and records marker lines.
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
}

struct Layout {
    header_len: u64,
    tables: Vec<TableSection>,
    tail: (u64, u64),
}

impl Scan {
    fn feed(&mut self, buf: &[u8], offset: u64) {
        let mut i = 0;
        while i < buf.len() {
            match memchr::memchr(b'\n', &buf[i..]) {
                Some(p) => {
                    self.keep(&buf[i..i + p]);
                    self.end_line();
                    self.line_start = offset + (i + p + 1) as u64;
                    i += p + 1;
                }
                None => {
                    self.keep(&buf[i..]);
                    i = buf.len();
                }
            }
        }
    }

    fn keep(&mut self, part: &[u8]) {
        let room = (MAX_MARKER_LINE + 1).saturating_sub(self.head.len());
        self.head.extend_from_slice(&part[..part.len().min(room)]);
    }

    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.head);
        if self.line_no == 1 && line == FORMAT_LINE.as_bytes() {
            self.format = Some(3);
        } else if self.line_no == 1 && line == FORMAT_2_LINE.as_bytes() {
            self.format = Some(2);
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
        self.line_no += 1;
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

/// Reads `[start, end)` of `file`, splits it into statements and sends them; when `table` is
/// given, every statement must be that table's DROP, CREATE or INSERT. Runs on a blocking
/// thread. A closed channel means the receiver stopped on an error it reports itself.
pub(crate) fn read_range(
    file: &File,
    path: &std::path::Path,
    (start, end): (u64, u64),
    table: Option<&str>,
    tx: mpsc::Sender<Stmt>,
) -> Result<(), SectionError> {
    let io = |e| DumpError::io(path, e);
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
    let mut buf = vec![0u8; 1 << 20];
    let mut at = start;
    while at < end {
        let want = ((end - at) as usize).min(buf.len());
        let n = file.read_at(&mut buf[..want], at).map_err(io)?;
        if n == 0 {
            return Err(SectionError::Dump(DumpError::io(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the dump file became shorter during the restore",
                ),
            )));
        }
        splitter.feed(&buf[..n], at, &mut emit)?;
        at += n as u64;
    }
    if !splitter.is_idle() {
        return Err(SectionError::NotASection(format!(
            "the section ending at byte {end} ends inside a statement"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dump::artifact::ChecksumMethod;
    use crate::dump::artifact::TableFact;

    fn artifact(tables: &[&str]) -> DumpArtifact {
        DumpArtifact {
            database: "d".into(),
            file: "/nonexistent".into(),
            size_bytes: 0,
            blake3_hex: String::new(),
            format: DumpFormat::Native,
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

    fn scan(text: &str, chunk: usize) -> Scan {
        let mut s = Scan::default();
        let b = text.as_bytes();
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

    fn read_all(text: &str, range: (u64, u64), table: Option<&str>) -> Result<Vec<String>, String> {
        let mut f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        let (tx, mut rx) = mpsc::channel(1000);
        let r = read_range(&f, std::path::Path::new("x"), range, table, tx);
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
