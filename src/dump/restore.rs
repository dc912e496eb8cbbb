//! Restore: verify the file, recreate the database, stream the statements in, prove the
//! content by recomputing the per-table facts.
//!
//! The file's BLAKE3 is checked before anything touches the server, and hashed again while
//! it is read, so a file swapped after the check is caught too. Statements are split from
//! the stream here (quotes, escapes, `--`/`#`/`/* */` comments handled; `/*! .. */`
//! executable comments kept, since `mariadb-dump` wraps settings in them) and sent over one
//! mysql_async connection with bulk-load session settings (no foreign key or unique checks,
//! no binlog where the user may turn it off, one transaction per table). A reader thread
//! decompresses and splits while the server executes, through a small bounded channel.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::sync::Arc;

use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::artifact::{Compression, DumpArtifact, TableFact, verify_artifact};
use super::facts;
use super::progress::Progress;
use super::sqlvalue::ident;
use super::{DumpError, connect, query_err};
use crate::dbconn::DbTarget;

/// Options of a restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Databases restored at the same time.
    pub jobs: usize,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions { jobs: 3 }
    }
}

/// What a restore did and found. Serializable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreReport {
    /// Database restored.
    pub database: String,
    /// Statements executed.
    pub statements: u64,
    /// SQL bytes executed (uncompressed).
    pub sql_bytes: u64,
    /// The facts recomputed after the load; equal to the artifact's, or restore fails.
    pub tables: Vec<TableFact>,
}

/// One difference between the recorded and the restored facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDiff {
    /// Table (or view) name.
    pub table: String,
    /// What was recorded at dump time (`missing` if nothing).
    pub expected: String,
    /// What the restored database has (`missing` if nothing).
    pub actual: String,
}

/// Verifies `artifact`'s file, then drops, recreates and loads its database, then checks the
/// per-table facts. Touches nothing when the file does not match its recorded BLAKE3.
pub async fn restore_database(
    target: &DbTarget,
    artifact: &DumpArtifact,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreReport, DumpError> {
    let _ = opts;
    verify_blocking(artifact).await?;
    load(target, artifact, progress).await
}

/// Verifies every chosen artifact first (refusing before touching any database if one does
/// not match), then restores them, `opts.jobs` at a time. `databases` empty means all.
pub async fn restore(
    target: &DbTarget,
    manifest: &super::Manifest,
    databases: &[String],
    opts: &RestoreOptions,
    progress: Arc<dyn Progress>,
) -> Result<Vec<RestoreReport>, DumpError> {
    let chosen: Vec<DumpArtifact> = if databases.is_empty() {
        manifest.databases.clone()
    } else {
        databases
            .iter()
            .map(|d| {
                manifest
                    .artifact(d)
                    .cloned()
                    .ok_or_else(|| DumpError::NotInManifest {
                        database: d.clone(),
                        available: manifest
                            .databases
                            .iter()
                            .map(|a| a.database.clone())
                            .collect(),
                    })
            })
            .collect::<Result<_, _>>()?
    };
    let mut checks = tokio::task::JoinSet::new();
    for a in chosen.clone() {
        checks.spawn_blocking(move || verify_artifact(&a));
    }
    while let Some(r) = checks.join_next().await {
        r.map_err(|e| DumpError::Internal {
            what: format!("checksum task failed: {e}"),
        })??;
    }

    let sem = Arc::new(tokio::sync::Semaphore::new(opts.jobs.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, a) in chosen.into_iter().enumerate() {
        let (target, sem, progress) = (target.clone(), sem.clone(), progress.clone());
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore never closed");
            (i, load(&target, &a, &*progress).await)
        });
    }
    // Every started restore runs to its end (stopping one halfway would leave a half-loaded
    // database); the first error is reported after all are done.
    let mut reports = Vec::new();
    let mut first_err = None;
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok((i, Ok(rep))) => reports.push((i, rep)),
            Ok((_, Err(e))) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(DumpError::Internal {
                    what: format!("restore task failed: {e}"),
                });
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    reports.sort_by_key(|(i, _)| *i);
    Ok(reports.into_iter().map(|(_, r)| r).collect())
}

async fn verify_blocking(artifact: &DumpArtifact) -> Result<(), DumpError> {
    let a = artifact.clone();
    tokio::task::spawn_blocking(move || verify_artifact(&a))
        .await
        .map_err(|e| DumpError::Internal {
            what: format!("checksum task failed: {e}"),
        })?
}

/// A statement and where it starts in the SQL stream.
struct Stmt {
    sql: Vec<u8>,
    offset: u64,
}

async fn load(
    target: &DbTarget,
    artifact: &DumpArtifact,
    progress: &dyn Progress,
) -> Result<RestoreReport, DumpError> {
    let db = artifact.database.as_str();
    let started = std::time::Instant::now();
    let q = |what: &'static str| move |e| query_err(db, what, e);
    let mut conn = connect(target).await?;
    facts::session_setup(&mut conn).await?;
    conn.query_drop(format!("DROP DATABASE IF EXISTS {}", ident(db)))
        .await
        .map_err(q("dropping the database"))?;
    conn.query_drop(format!(
        "CREATE DATABASE {} CHARACTER SET {} COLLATE {}",
        ident(db),
        artifact.charset,
        artifact.collation
    ))
    .await
    .map_err(q("creating the database"))?;
    conn.query_drop(format!("USE {}", ident(db)))
        .await
        .map_err(q("selecting the database"))?;
    // Each INSERT commits on its own: on MariaDB 10.11 one transaction per table takes
    // InnoDB's bulk-insert path, which measured twice the server CPU for the same wall time
    // (docs/backup.md). The rows came out of tables that satisfied their CHECK constraints,
    // so checking them again (json_valid on every JSON value) is work without information.
    conn.query_drop(
        "SET SESSION foreign_key_checks = 0, unique_checks = 0, autocommit = 1, \
         check_constraint_checks = 0",
    )
    .await
    .map_err(q("setting bulk-load options"))?;
    // Needs SUPER or BINLOG ADMIN; without it the binlog simply records the load.
    let _ = conn.query_drop("SET SESSION sql_log_bin = 0").await;
    progress.begin(db, artifact.size_bytes);

    let (tx, mut rx) = mpsc::channel::<Stmt>(4);
    let a = artifact.clone();
    let reader = tokio::task::spawn_blocking(move || read_statements(&a, tx));
    let mut statements = 0u64;
    let mut sql_bytes = 0u64;
    let mut exec_err = None;
    // Secondary indexes of the table being loaded, added back once its rows are in.
    let mut deferred: Option<String> = None;
    while let Some(stmt) = rx.recv().await {
        statements += 1;
        sql_bytes += stmt.sql.len() as u64;
        progress.advance(db, stmt.sql.len() as u64, 0);
        let mut sql = stmt.sql;
        if ends_table_data(&sql)
            && let Some(alter) = deferred.take()
            && let Err(e) = {
                tracing::debug!(
                    database = db,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "building deferred indexes"
                );
                conn.query_drop(&alter).await
            }
        {
            exec_err = Some(statement_err(
                db,
                statements,
                stmt.offset,
                alter.as_bytes(),
                e,
            ));
            break;
        }
        if opts_defer_keys(&sql)
            && let Some((create, alter)) = defer_secondary_keys(&sql)
        {
            sql = create;
            deferred = Some(alter);
        }
        if let Err(e) = conn.query_drop(&sql).await {
            // An executable comment the server skips entirely is an empty query: harmless.
            if matches!(&e, mysql_async::Error::Server(s) if s.code == 1065) {
                continue;
            }
            exec_err = Some(statement_err(db, statements, stmt.offset, &sql, e));
            break;
        }
    }
    if exec_err.is_none()
        && let Some(alter) = deferred.take()
        && let Err(e) = conn.query_drop(&alter).await
    {
        exec_err = Some(statement_err(
            db,
            statements,
            sql_bytes,
            alter.as_bytes(),
            e,
        ));
    }
    drop(rx);
    let read = reader.await.map_err(|e| DumpError::Internal {
        what: format!("dump reader failed: {e}"),
    })?;
    progress.finish(db);
    if let Some(e) = exec_err {
        return Err(e);
    }
    read?;
    conn.query_drop("COMMIT").await.map_err(q("committing"))?;
    conn.disconnect().await.ok();

    tracing::debug!(
        database = db,
        statements,
        sql_bytes,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "loaded; checking tables"
    );
    let tables = check_facts(target, artifact).await?;
    tracing::debug!(
        database = db,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "restored and checked"
    );
    Ok(RestoreReport {
        database: db.to_string(),
        statements,
        sql_bytes,
        tables,
    })
}

fn statement_err(
    db: &str,
    number: u64,
    offset: u64,
    sql: &[u8],
    e: mysql_async::Error,
) -> DumpError {
    DumpError::Statement {
        database: db.to_string(),
        number,
        offset,
        excerpt: excerpt(sql),
        source: Box::new(e),
    }
}

fn head_is(sql: &[u8], word: &str) -> bool {
    let start = sql
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(sql.len());
    sql[start..]
        .get(..word.len())
        .is_some_and(|h| h.eq_ignore_ascii_case(word.as_bytes()))
}

/// A statement that starts the next object (or the views): the previous table's rows are
/// all in, so its deferred indexes can be built.
fn ends_table_data(sql: &[u8]) -> bool {
    head_is(sql, "DROP ") || head_is(sql, "CREATE ")
}

fn opts_defer_keys(sql: &[u8]) -> bool {
    head_is(sql, "CREATE TABLE ")
}

/// Splits plain secondary indexes (`KEY` lines of SHOW CREATE TABLE output) out of a
/// `CREATE TABLE`, returning the slimmer CREATE and the `ALTER TABLE .. ADD KEY ..` that
/// puts them back. InnoDB builds an index added afterwards by sorting, instead of inserting
/// every row into it at random places, which is most of a restore's time once the indexes
/// outgrow the buffer pool. Unique keys stay (they enforce something while loading), and a
/// table with foreign keys is left alone (InnoDB would create its own index for the
/// constraint, and the names would clash). The indexes are added in their original order,
/// so SHOW CREATE TABLE comes out identical.
fn defer_secondary_keys(sql: &[u8]) -> Option<(Vec<u8>, String)> {
    let text = std::str::from_utf8(sql).ok()?;
    if text.contains("FOREIGN KEY") {
        return None;
    }
    let name_start = text.find('`')?;
    let name_end = name_start + 1 + find_ident_end(&text[name_start + 1..])?;
    let table = &text[name_start..=name_end];
    let mut lines: Vec<&str> = text.lines().collect();
    let close = lines.iter().rposition(|l| l.starts_with(')'))?;
    let keys: Vec<String> = lines[1..close]
        .iter()
        .filter(|l| l.starts_with("  KEY `"))
        .map(|l| format!("ADD {}", l.trim().trim_end_matches(',')))
        .collect();
    if keys.is_empty() || lines.len() < 3 {
        return None;
    }
    let kept: Vec<&str> = lines[1..close]
        .iter()
        .filter(|l| !l.starts_with("  KEY `"))
        .map(|l| l.trim_end_matches(','))
        .collect();
    if kept.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    out.push_str(lines[0]);
    out.push('\n');
    out.push_str(&kept.join(",\n"));
    out.push('\n');
    let tail: Vec<&str> = lines.drain(close..).collect();
    out.push_str(&tail.join("\n"));
    Some((
        out.into_bytes(),
        format!("ALTER TABLE {table} {}", keys.join(", ")),
    ))
}

/// Index of the closing backtick of an identifier body (doubled backticks are part of it).
fn find_ident_end(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'`' {
            if b.get(i + 1) == Some(&b'`') {
                i += 2;
                continue;
            }
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Checks that the live `artifact.database` holds what the artifact records: every table's
/// row count and checksum (recomputed with the recorded method), and the same tables and
/// views. Returns the recomputed facts; a difference is [`DumpError::TableMismatch`]. The
/// upgrade uses it to prove a rollback brought back the dumped content.
pub async fn verify_database(
    target: &DbTarget,
    artifact: &DumpArtifact,
) -> Result<Vec<TableFact>, DumpError> {
    check_facts(target, artifact).await
}

/// Recomputes each recorded fact with its recorded method and compares; views must match too.
async fn check_facts(
    target: &DbTarget,
    artifact: &DumpArtifact,
) -> Result<Vec<TableFact>, DumpError> {
    let db = artifact.database.as_str();
    let mut conn = connect(target).await?;
    facts::session_setup(&mut conn).await?;
    let schema = facts::list_schema(&mut conn, db).await?;
    let mut diffs = Vec::new();
    let mut actual = Vec::new();
    let by_name: BTreeMap<&str, &facts::TableInfo> =
        schema.base_tables().map(|t| (t.name.as_str(), t)).collect();
    for expected in &artifact.tables {
        match by_name.get(expected.name.as_str()) {
            None => diffs.push(TableDiff {
                table: expected.name.clone(),
                expected: describe(expected),
                actual: "missing".into(),
            }),
            Some(info) => {
                let got =
                    facts::fact_for(&mut conn, db, info, Some(expected.checksum_method)).await?;
                if got.rows != expected.rows || got.checksum != expected.checksum {
                    diffs.push(TableDiff {
                        table: expected.name.clone(),
                        expected: describe(expected),
                        actual: describe(&got),
                    });
                }
                actual.push(got);
            }
        }
    }
    for name in by_name.keys() {
        if !artifact.tables.iter().any(|t| t.name == *name) {
            diffs.push(TableDiff {
                table: name.to_string(),
                expected: "missing".into(),
                actual: "present".into(),
            });
        }
    }
    let views: Vec<String> = schema.views().map(|v| v.name.clone()).collect();
    if views != artifact.views {
        diffs.push(TableDiff {
            table: "(views)".into(),
            expected: artifact.views.join(","),
            actual: views.join(","),
        });
    }
    conn.disconnect().await.ok();
    if diffs.is_empty() {
        Ok(actual)
    } else {
        Err(DumpError::TableMismatch {
            database: db.to_string(),
            diffs,
        })
    }
}

fn describe(f: &TableFact) -> String {
    format!("{} rows, checksum {}", f.rows, f.checksum)
}

/// The head of a statement for error messages, cut before any values (they may be secrets).
fn excerpt(sql: &[u8]) -> String {
    let head = &sql[..sql.len().min(120)];
    let s = String::from_utf8_lossy(head);
    let s = match s.find(" VALUES") {
        Some(i) => format!("{} VALUES ...", &s[..i]),
        None if sql.len() > 120 => format!("{s}..."),
        None => s.into_owned(),
    };
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Reads, decompresses, hashes and splits the file, sending statements until done or until
/// the receiver goes away. Fails if the bytes read do not hash to the recorded BLAKE3.
fn read_statements(artifact: &DumpArtifact, tx: mpsc::Sender<Stmt>) -> Result<(), DumpError> {
    let path = &artifact.file;
    let io = |e| DumpError::io(path, e);
    let file = File::open(path).map_err(io)?;
    let hashing = BufReader::with_capacity(
        1 << 20,
        HashingReader {
            inner: file,
            hasher: blake3::Hasher::new(),
            bytes: 0,
        },
    );
    let mut splitter = Splitter::default();
    // A closed channel means the executor stopped on an error it reports itself.
    let mut emit = |sql: Vec<u8>, start: u64| -> Result<(), DumpError> {
        check_supported(&sql, start)?;
        tx.blocking_send(Stmt { sql, offset: start })
            .map_err(|_| DumpError::WriterGone)
    };
    let mut pump = |reader: &mut dyn Read| -> Result<(), DumpError> {
        let mut buf = vec![0u8; 1 << 20];
        let mut offset = 0u64;
        loop {
            let n = reader.read(&mut buf).map_err(io)?;
            if n == 0 {
                return splitter.finish(&mut emit);
            }
            splitter.feed(&buf[..n], offset, &mut emit)?;
            offset += n as u64;
        }
    };
    let pumped = match artifact.compression {
        Compression::None => {
            let mut r = hashing;
            pump(&mut r).map(|()| r.into_inner())
        }
        Compression::Zstd => {
            let mut d = zstd::Decoder::with_buffer(hashing).map_err(io)?;
            pump(&mut d).map(|()| d.finish().into_inner())
        }
    };
    let mut hashing = match pumped {
        Ok(h) => h,
        Err(DumpError::WriterGone) => return Ok(()),
        Err(e) => return Err(e),
    };
    // Hash whatever the decoder left unread, then compare with what was verified before the
    // load started: a file replaced in between is caught here.
    std::io::copy(&mut hashing, &mut std::io::sink()).map_err(io)?;
    let hex = hashing.hasher.finalize().to_hex().to_string();
    if hashing.bytes != artifact.size_bytes || hex != artifact.blake3_hex {
        return Err(DumpError::ChecksumMismatch {
            path: path.clone(),
            expected: format!(
                "{} bytes, blake3 {}",
                artifact.size_bytes, artifact.blake3_hex
            ),
            actual: format!(
                "{} bytes, blake3 {hex} (the file changed during the restore)",
                hashing.bytes
            ),
        });
    }
    Ok(())
}

struct HashingReader {
    inner: File,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl Read for HashingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

fn check_supported(sql: &[u8], offset: u64) -> Result<(), DumpError> {
    let head: Vec<u8> = sql
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take(10)
        .map(|b| b.to_ascii_uppercase())
        .collect();
    if head.starts_with(b"DELIMITER") {
        return Err(DumpError::Unsupported {
            what: format!(
                "a DELIMITER command at byte {offset}: dumps with triggers or routines are not \
                 restored natively (dump with --skip-triggers, or load it with the mariadb client)"
            ),
        });
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Normal,
    /// Saw `-`.
    Dash,
    /// Saw `--`: a comment if whitespace follows.
    DashDash,
    LineComment,
    /// Saw `/`.
    Slash,
    /// Saw `/*`.
    SlashStar,
    /// Saw `/*M`.
    SlashStarM,
    Block,
    BlockStar,
    /// Inside an executable comment, saw `*`.
    ExecStar,
    Quote(u8),
    QuoteEscape(u8),
}

/// Splits a stream of SQL text into statements at `;`, the way the `mariadb` client does for
/// dump files. Plain comments are dropped; executable comments (`/*! .. */`, `/*M! .. */`)
/// are kept, and a `;` inside them, or inside quotes, does not end a statement.
#[derive(Debug)]
pub struct Splitter {
    state: State,
    exec: bool,
    cur: Vec<u8>,
    content: bool,
    start: u64,
}

impl Default for Splitter {
    fn default() -> Self {
        Splitter {
            state: State::Normal,
            exec: false,
            cur: Vec::new(),
            content: false,
            start: 0,
        }
    }
}

/// Bytes that need a decision in the normal state; everything else is copied in runs.
const SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let s = b"'\"`-#/*;";
    let mut i = 0;
    while i < s.len() {
        t[s[i] as usize] = true;
        i += 1;
    }
    t
};

impl Splitter {
    /// Feeds `chunk`, which starts at byte `offset` of the stream; calls `emit` with each
    /// complete statement (without its `;`) and the offset where it began.
    pub fn feed<E>(
        &mut self,
        chunk: &[u8],
        offset: u64,
        emit: &mut impl FnMut(Vec<u8>, u64) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut i = 0;
        while i < chunk.len() {
            let b = chunk[i];
            match self.state {
                State::Normal => {
                    let run_end = chunk[i..]
                        .iter()
                        .position(|&c| SPECIAL[c as usize])
                        .map_or(chunk.len(), |p| i + p);
                    if run_end > i {
                        self.push_run(&chunk[i..run_end], offset + i as u64);
                        i = run_end;
                        continue;
                    }
                    match b {
                        b'\'' | b'"' | b'`' => {
                            self.push_content(b, offset + i as u64);
                            self.state = State::Quote(b);
                        }
                        b'-' => self.state = State::Dash,
                        b'#' => self.state = State::LineComment,
                        b'/' => self.state = State::Slash,
                        b'*' if self.exec => self.state = State::ExecStar,
                        b';' if !self.exec => self.end(emit)?,
                        _ => self.push_content(b, offset + i as u64),
                    }
                    i += 1;
                }
                State::Quote(q) => {
                    let end = chunk[i..]
                        .iter()
                        .position(|&c| c == q || (c == b'\\' && q != b'`'))
                        .map_or(chunk.len(), |p| i + p);
                    self.cur.extend_from_slice(&chunk[i..end]);
                    i = end;
                    if i < chunk.len() {
                        let c = chunk[i];
                        self.cur.push(c);
                        self.state = if c == q {
                            State::Normal
                        } else {
                            State::QuoteEscape(q)
                        };
                        i += 1;
                    }
                }
                State::QuoteEscape(q) => {
                    self.cur.push(b);
                    self.state = State::Quote(q);
                    i += 1;
                }
                State::Dash => {
                    if b == b'-' {
                        self.state = State::DashDash;
                        i += 1;
                    } else {
                        self.push_content(b'-', offset + i as u64);
                        self.state = State::Normal;
                    }
                }
                State::DashDash => {
                    if b <= b' ' {
                        self.state = State::LineComment;
                    } else {
                        self.push_content(b'-', offset + i as u64);
                        self.cur.push(b'-');
                        self.state = State::Normal;
                    }
                }
                State::LineComment => match chunk[i..].iter().position(|&c| c == b'\n') {
                    Some(p) => {
                        i += p + 1;
                        self.cur.push(b'\n');
                        self.state = State::Normal;
                    }
                    None => i = chunk.len(),
                },
                State::Slash => {
                    if b == b'*' {
                        self.state = State::SlashStar;
                        i += 1;
                    } else {
                        self.push_content(b'/', offset + i as u64);
                        self.state = State::Normal;
                    }
                }
                State::SlashStar => {
                    i += 1;
                    self.state = match b {
                        b'!' => {
                            self.push_content(b'/', offset + i as u64);
                            self.cur.extend_from_slice(b"*!");
                            self.exec = true;
                            State::Normal
                        }
                        b'M' => State::SlashStarM,
                        b'*' => State::BlockStar,
                        _ => State::Block,
                    };
                }
                State::SlashStarM => {
                    if b == b'!' {
                        self.push_content(b'/', offset + i as u64);
                        self.cur.extend_from_slice(b"*M!");
                        self.exec = true;
                        self.state = State::Normal;
                        i += 1;
                    } else {
                        self.state = State::Block;
                    }
                }
                State::Block => match chunk[i..].iter().position(|&c| c == b'*') {
                    Some(p) => {
                        i += p + 1;
                        self.state = State::BlockStar;
                    }
                    None => i = chunk.len(),
                },
                State::BlockStar => {
                    i += 1;
                    self.state = match b {
                        b'/' => {
                            self.cur.push(b' ');
                            State::Normal
                        }
                        b'*' => State::BlockStar,
                        _ => State::Block,
                    };
                }
                State::ExecStar => {
                    if b == b'/' {
                        self.cur.extend_from_slice(b"*/");
                        self.exec = false;
                        i += 1;
                    } else {
                        self.cur.push(b'*');
                    }
                    self.state = State::Normal;
                }
            }
        }
        Ok(())
    }

    /// Ends the stream: a last statement without `;` is emitted like the client does.
    pub fn finish<E>(
        &mut self,
        emit: &mut impl FnMut(Vec<u8>, u64) -> Result<(), E>,
    ) -> Result<(), E> {
        match self.state {
            State::Dash => self.cur.push(b'-'),
            State::Slash => self.cur.push(b'/'),
            State::ExecStar => self.cur.push(b'*'),
            _ => {}
        }
        self.state = State::Normal;
        self.end(emit)
    }

    fn push_run(&mut self, run: &[u8], at: u64) {
        if !self.content {
            if let Some(p) = run.iter().position(|b| !b.is_ascii_whitespace()) {
                self.content = true;
                self.start = at + p as u64;
                self.cur.clear();
                self.cur.extend_from_slice(&run[p..]);
            }
            return;
        }
        self.cur.extend_from_slice(run);
    }

    fn push_content(&mut self, b: u8, at: u64) {
        if !self.content {
            self.content = true;
            self.start = at;
            self.cur.clear();
        }
        self.cur.push(b);
    }

    fn end<E>(&mut self, emit: &mut impl FnMut(Vec<u8>, u64) -> Result<(), E>) -> Result<(), E> {
        let had = std::mem::take(&mut self.content);
        let mut stmt = std::mem::take(&mut self.cur);
        if had {
            while stmt.last().is_some_and(|b| b.is_ascii_whitespace()) {
                stmt.pop();
            }
            emit(stmt, self.start)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str, chunk: usize) -> Vec<String> {
        let mut s = Splitter::default();
        let mut out = Vec::new();
        let mut emit = |v: Vec<u8>, _| -> Result<(), ()> {
            out.push(String::from_utf8(v).unwrap());
            Ok(())
        };
        let mut off = 0;
        for c in text.as_bytes().chunks(chunk) {
            s.feed(c, off, &mut emit).unwrap();
            off += c.len() as u64;
        }
        s.finish(&mut emit).unwrap();
        out
    }

    #[test]
    fn splits_like_the_client_at_any_chunk_size() {
        let text = "/*M!999999\\- enable the sandbox mode */ \n-- MariaDB dump\n\
            /*!40101 SET @A=@@B */;\n# hash comment;\nINSERT INTO `t;` VALUES ('a;\\'b', \"c;\"\"d\", 1--1, 2/3, 4*5);\n\
            /* plain; comment */ SELECT 1 /**/;\n/*!50001 VIEW `v` AS select ';' */;\nSELECT '--' -- tail;\n;\nSELECT 2";
        let want = vec![
            "/*M!999999\\- enable the sandbox mode */ \n\n/*!40101 SET @A=@@B */".to_string(),
            "INSERT INTO `t;` VALUES ('a;\\'b', \"c;\"\"d\", 1--1, 2/3, 4*5)".to_string(),
            "SELECT 1".to_string(),
            "/*!50001 VIEW `v` AS select ';' */".to_string(),
            "SELECT '--' \n".trim_end().to_string(),
            "SELECT 2".to_string(),
        ];
        for chunk in [1, 2, 3, 7, 1000] {
            assert_eq!(split(text, chunk), want, "chunk size {chunk}");
        }
    }

    #[test]
    fn delimiter_is_refused() {
        assert!(check_supported(b"\nDELIMITER ;;", 0).is_err());
        assert!(check_supported(b"INSERT INTO d VALUES (1)", 0).is_ok());
    }

    #[test]
    fn secondary_keys_are_deferred_and_put_back_in_order() {
        let create = "CREATE TABLE `a``b` (\n  `id` int(11) NOT NULL,\n  `x` varchar(10) DEFAULT NULL,\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `u` (`x`),\n  KEY `k1` (`x`(3)),\n  KEY `k2` (`id`,`x`) COMMENT 'c'\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";
        let (slim, alter) = defer_secondary_keys(create.as_bytes()).unwrap();
        assert_eq!(
            String::from_utf8(slim).unwrap(),
            "CREATE TABLE `a``b` (\n  `id` int(11) NOT NULL,\n  `x` varchar(10) DEFAULT NULL,\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `u` (`x`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        );
        assert_eq!(
            alter,
            "ALTER TABLE `a``b` ADD KEY `k1` (`x`(3)), ADD KEY `k2` (`id`,`x`) COMMENT 'c'"
        );
        let fk = "CREATE TABLE `c` (\n  `id` int,\n  KEY `k` (`id`),\n  CONSTRAINT `f` FOREIGN KEY (`id`) REFERENCES `p` (`id`)\n) ENGINE=InnoDB";
        assert!(defer_secondary_keys(fk.as_bytes()).is_none());
        assert!(
            defer_secondary_keys(b"CREATE TABLE `t` (\n  `id` int,\n  PRIMARY KEY (`id`)\n)")
                .is_none()
        );
        assert!(ends_table_data(b"\nDROP TABLE IF EXISTS `t`"));
        assert!(!ends_table_data(b"/*!40000 ALTER TABLE `t` ENABLE KEYS */"));
    }

    #[test]
    fn excerpt_hides_values() {
        assert_eq!(
            excerpt(b"INSERT INTO `t` (`a`) VALUES ('secret')"),
            "INSERT INTO `t` (`a`) VALUES ..."
        );
    }
}
