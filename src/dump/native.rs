//! The built-in dumper's file format and its one-connection path: one database over one
//! connection (the wire client, or mysql_async where it cannot serve the target; see
//! `super::wire`), inside one consistent snapshot, streamed as SQL text that the
//! stock `mariadb` client can load. The table-parallel path (`parallel.rs`) renders the same
//! sections with [`header`], [`table_section`] and [`finish_file`], so both write the same
//! bytes.
//!
//! The connection task reads rows with the text protocol and renders multi-row INSERTs of at
//! most `max_statement_bytes`; a blocking writer thread compresses, hashes and writes them.
//! The two are joined by a small bounded channel, so memory stays at a few statements
//! whatever the table size, and the CPU work of rendering overlaps the file work.
//!
//! File layout (no timestamps, so the same content gives the same bytes):
//! header with session settings (its second line names the format, [`FORMAT_LINE`]); per
//! base table a `-- Table` line (names in comments are always in the escaped one-line form
//! of [`comment_name`]), `DROP TABLE IF EXISTS`, the server's own `CREATE TABLE`
//! (which carries AUTO_INCREMENT) and its rows; [`TABLES_END`]; one stand-in view per view
//! (so views may refer to views in any order), then the real views; a list of the triggers
//! that were skipped; the settings restored; the trailer `-- Dump completed`.

use std::path::Path;
use std::sync::Arc;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tokio::sync::mpsc;

use super::ranges::{self, Split};
use super::wire::{DumpConn, Row as WireRow, WireConn, WireUse};

use super::artifact::{ChecksumMethod, DumpArtifact, Dumper, TableFact};
use super::facts::{self, TableInfo};
use super::progress::Progress;
use super::sqlvalue::{
    Literal, comment_name, comment_text, ident, literal_for, literal_for_wire, push_literal,
};
use super::writer::{self, Msg, PartWriter, TRAILER, send};
use super::{DumpError, DumpOptions, connect, query_err};
use crate::dbconn::DbTarget;

/// Second line of every native dump of this layout. Format 3 marks the table sections: each
/// base table's statements follow a `-- Table <name>` line and nothing else comes before
/// the next such line or [`TABLES_END`], so restore may load the sections in parallel.
/// Every name in a comment (markers, the database, skipped triggers) is in the one-line
/// escaped form of [`comment_name`], so no name can end a comment and run as SQL.
pub(crate) const FORMAT_LINE: &str = "-- Format: 3 (sections)";
/// Format 2 (still restored): the same sections, but names in comments were only
/// backtick-quoted, so a name with a newline broke its comment line.
pub(crate) const FORMAT_2_LINE: &str = "-- Format: 2 (sections)";
/// The line after the last table section; views and the closing settings follow it.
pub(crate) use super::writer::TABLES_END;

/// Dumps `database` natively into `path` over one connection. See the module docs.
pub(crate) async fn dump(
    target: &DbTarget,
    database: &str,
    path: &Path,
    opts: &DumpOptions,
    progress: &dyn Progress,
) -> Result<DumpArtifact, DumpError> {
    let writer = PartWriter::create(path, opts.compression, opts.overwrite)?;
    let mut conn = DumpConn::open(target, wire_use(opts)).await?;
    let q = |what: &'static str| move |e| query_err(database, what, e);
    conn.query_drop(facts::SESSION_SQL)
        .await
        .map_err(|e| query_err("", "setting up the session", e))?;
    let server_version = conn
        .query_first_text("SELECT VERSION()", 0)
        .await
        .map_err(|e| query_err("", "reading the server version", e))?
        .unwrap_or_default();
    conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await
        .map_err(q("setting the isolation level"))?;
    conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        .await
        .map_err(q("starting the snapshot"))?;
    // The schema listing reads information_schema, which no snapshot covers (it shows the
    // current dictionary on any connection), with mysql_async's typed reads: over the
    // same connection when that is mysql_async, else over a short second one, as the
    // table-parallel path lists on its coordinator connection.
    let schema = match &mut conn {
        DumpConn::Async(c) => facts::list_dumped(c, database, opts).await?,
        DumpConn::Wire(_) => {
            let mut lister = connect(target).await?;
            facts::session_setup(&mut lister).await?;
            let schema = facts::list_dumped(&mut lister, database, opts).await;
            lister.disconnect().await.ok();
            schema?
        }
    };
    progress.begin(
        database,
        schema.tables.iter().map(|t| t.estimated_bytes).sum(),
    );

    let (tx, writer_task) = writer::spawn(writer);
    let produced = produce(
        &mut conn,
        database,
        &schema,
        &server_version,
        opts,
        progress,
        &tx,
    )
    .await;
    drop(tx);
    let written = writer::join(writer_task).await;
    progress.finish(database);
    // Whichever side failed first explains the other: a writer error (disk full) makes the
    // producer see `WriterGone`; a producer error (server gone) makes the writer abandon.
    let (tables, written) = match (produced, written) {
        (Ok(t), Ok(w)) => (t, w),
        (Err(DumpError::WriterGone), Err(w)) => return Err(w),
        (Err(p), _) => return Err(p),
        (Ok(_), Err(w)) => return Err(w),
    };
    conn.query_drop("COMMIT").await.ok();
    conn.disconnect().await;
    Ok(DumpArtifact {
        database: database.to_string(),
        file: written.path,
        size_bytes: written.size_bytes,
        blake3_hex: written.blake3_hex,
        format: Dumper::Native,
        compression: opts.compression,
        charset: schema.charset.clone(),
        collation: schema.collation.clone(),
        tables,
        views: schema.views().map(|v| v.name.clone()).collect(),
        skipped_triggers: schema.triggers.clone(),
        server_version,
    })
}

pub(crate) async fn server_version(conn: &mut Conn) -> Result<String, DumpError> {
    let v: Option<String> = conn
        .query_first("SELECT VERSION()")
        .await
        .map_err(|e| query_err("", "reading the server version", e))?;
    Ok(v.unwrap_or_default())
}

/// The client a table-parallel worker should use for `opts`: CHECKSUM TABLE facts are read
/// through mysql_async ([`facts::fact_for`]), so they keep it.
pub(crate) fn wire_use(opts: &DumpOptions) -> WireUse {
    if opts.checksum == Some(ChecksumMethod::ChecksumTable) {
        WireUse::Never
    } else {
        opts.wire
    }
}

async fn produce(
    conn: &mut DumpConn,
    database: &str,
    schema: &facts::Schema,
    server_version: &str,
    opts: &DumpOptions,
    progress: &dyn Progress,
    tx: &mpsc::Sender<Msg>,
) -> Result<Vec<TableFact>, DumpError> {
    send(tx, header(database, server_version)).await?;
    let mut facts = Vec::new();
    for table in schema.base_tables() {
        facts.push(table_section(conn, database, table, None, opts, progress, tx).await?);
    }
    finish_file(conn, database, schema, tx).await?;
    Ok(facts)
}

/// The file's first bytes: the format line, the database, the server version and the
/// session settings the rest of the file needs.
pub(crate) fn header(database: &str, server_version: &str) -> Vec<u8> {
    let mut head = String::new();
    head.push_str("-- oms-upgrade native dump\n");
    head.push_str(FORMAT_LINE);
    head.push('\n');
    head.push_str(&format!("-- Database: {}\n", comment_name(database)));
    head.push_str(&format!(
        "-- Server version: {}\n",
        comment_text(server_version)
    ));
    head.push_str("-- Load into an existing, empty database: mariadb DBNAME < FILE\n");
    head.push_str(
        "SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT, \
         @OLD_CHARACTER_SET_RESULTS=@@CHARACTER_SET_RESULTS, \
         @OLD_COLLATION_CONNECTION=@@COLLATION_CONNECTION, @OLD_TIME_ZONE=@@TIME_ZONE, \
         @OLD_SQL_MODE=@@SQL_MODE, @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, \
         @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, @OLD_SQL_NOTES=@@SQL_NOTES;\n",
    );
    head.push_str("SET NAMES utf8mb4;\n");
    // The server lexes the statements in the client charset, and in utf8mb4 it calls
    // `my_ismbchar` on every byte of every string literal, twice when the literal holds an
    // escape (`get_text`, `my_unescape`): random binary values escaped cost the server 1.7x
    // what their hex cost, 0.64x with a binary client charset (docs/backup.md, "Binary
    // literals"). Literals are still read in the connection's charset (utf8mb4): the
    // server copies binary-charset bytes into it unchanged, then checks them, so text and
    // names come out as before. Set back to utf8mb4 after the tables, so views record
    // utf8mb4 as their client charset, as before.
    head.push_str("SET CHARACTER_SET_CLIENT=binary;\n");
    head.push_str("SET TIME_ZONE='+00:00';\n");
    head.push_str("SET SQL_MODE='NO_AUTO_VALUE_ON_ZERO';\n");
    head.push_str("SET FOREIGN_KEY_CHECKS=0, UNIQUE_CHECKS=0, SQL_NOTES=0;\n");
    head.into_bytes()
}

/// One base table's section (its `-- Table` line, DROP, the server's CREATE and its rows),
/// read in `conn`'s snapshot and sent to `tx`; returns the table's fact from that snapshot.
/// With `split`, the rows are read in key ranges, some of them by other connections of the
/// same snapshot (`super::ranges`); the bytes are the same.
pub(crate) async fn table_section(
    conn: &mut DumpConn,
    database: &str,
    table: &TableInfo,
    split: Option<&Split>,
    opts: &DumpOptions,
    progress: &dyn Progress,
    tx: &mpsc::Sender<Msg>,
) -> Result<TableFact, DumpError> {
    let q = |what: &'static str| move |e| query_err(database, what, e);
    // CHECKSUM TABLE only when asked for: it is one more pass over the table, while the
    // BLAKE3 row hash is computed on the rows as they are written.
    let server_fact = match (opts.checksum, &mut *conn) {
        (Some(ChecksumMethod::ChecksumTable), DumpConn::Async(c)) => {
            Some(facts::fact_for(c, database, table, opts.checksum).await?)
        }
        (Some(ChecksumMethod::ChecksumTable), DumpConn::Wire(_)) => {
            return Err(DumpError::Internal {
                what: "CHECKSUM TABLE facts over the wire client (see wire_use)".into(),
            });
        }
        _ => None,
    };
    let create = conn
        .query_first_text(
            &format!(
                "SHOW CREATE TABLE {}.{}",
                ident(database),
                ident(&table.name)
            ),
            1,
        )
        .await
        .map_err(q("reading SHOW CREATE TABLE"))?;
    let Some(create) = create else {
        return Err(DumpError::Internal {
            what: format!("SHOW CREATE TABLE returned nothing for `{}`", table.name),
        });
    };
    let mut ddl = format!("\n-- Table {}\n", comment_name(&table.name));
    ddl.push_str(&format!("DROP TABLE IF EXISTS {};\n", ident(&table.name)));
    ddl.push_str(&create);
    ddl.push_str(";\n");
    send(tx, ddl.into_bytes()).await?;
    let (rows, checksum) = dump_rows(conn, database, table, split, opts, progress, tx).await?;
    match server_fact {
        Some(fact) if rows != fact.rows => Err(DumpError::Inconsistent {
            database: database.to_string(),
            table: table.name.clone(),
            counted: fact.rows,
            streamed: rows,
        }),
        Some(fact) => Ok(fact),
        None => Ok(TableFact {
            name: table.name.clone(),
            rows,
            checksum,
            checksum_method: ChecksumMethod::Blake3Rows,
        }),
    }
}

/// Everything after the last table section: [`TABLES_END`], the stand-in and real views,
/// the skipped triggers, the settings restored and the trailer; then asks the writer to
/// commit (expecting a CREATE for every table and view of `schema`).
pub(crate) async fn finish_file(
    conn: &mut DumpConn,
    database: &str,
    schema: &facts::Schema,
    tx: &mpsc::Sender<Msg>,
) -> Result<(), DumpError> {
    let q = |what: &'static str| move |e| query_err(database, what, e);
    send(
        tx,
        format!("\n{TABLES_END}\nSET CHARACTER_SET_CLIENT=utf8mb4;\n").into_bytes(),
    )
    .await?;

    let views: Vec<&TableInfo> = schema.views().collect();
    if !views.is_empty() {
        let mut s = String::from("\n-- Stand-in views, so views can refer to views in any order\n");
        for v in &views {
            let cols: Vec<String> = v
                .columns
                .iter()
                .map(|c| format!("1 AS {}", ident(&c.name)))
                .collect();
            let cols = if cols.is_empty() {
                "1 AS `_`".to_string()
            } else {
                cols.join(", ")
            };
            s.push_str(&format!(
                "CREATE OR REPLACE VIEW {} AS SELECT {cols};\n",
                ident(&v.name)
            ));
        }
        for v in &views {
            let create = conn
                .query_first_text(
                    &format!("SHOW CREATE VIEW {}.{}", ident(database), ident(&v.name)),
                    1,
                )
                .await
                .map_err(q("reading SHOW CREATE VIEW"))?;
            let Some(create) = create else {
                return Err(DumpError::Internal {
                    what: format!("SHOW CREATE VIEW returned nothing for `{}`", v.name),
                });
            };
            let create = match create.strip_prefix("CREATE ") {
                Some(rest) => format!("CREATE OR REPLACE {rest}"),
                None => create,
            };
            s.push_str(&format!("\n-- View {}\n{create};\n", comment_name(&v.name)));
        }
        send(tx, s.into_bytes()).await?;
    }

    let mut tail = String::new();
    if !schema.triggers.is_empty() {
        tail.push_str("\n-- Triggers are not dumped (by design); skipped:\n");
        for t in &schema.triggers {
            tail.push_str(&format!("--   {}\n", comment_name(t)));
        }
    }
    tail.push_str(
        "\nSET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT, \
         CHARACTER_SET_RESULTS=@OLD_CHARACTER_SET_RESULTS, \
         COLLATION_CONNECTION=@OLD_COLLATION_CONNECTION, TIME_ZONE=@OLD_TIME_ZONE, \
         SQL_MODE=@OLD_SQL_MODE, FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS, \
         UNIQUE_CHECKS=@OLD_UNIQUE_CHECKS, SQL_NOTES=@OLD_SQL_NOTES;\n",
    );
    tail.push_str(TRAILER);
    tail.push('\n');
    send(tx, tail.into_bytes()).await?;
    let expected: Vec<String> = schema.tables.iter().map(|t| t.name.clone()).collect();
    tx.send(Msg::Commit(expected))
        .await
        .map_err(|_| DumpError::WriterGone)
}

/// Streams one table's rows as INSERT statements; returns the row count and the
/// [`ChecksumMethod::Blake3Rows`] checksum of what was written.
async fn dump_rows(
    conn: &mut DumpConn,
    database: &str,
    table: &TableInfo,
    split: Option<&Split>,
    opts: &DumpOptions,
    progress: &dyn Progress,
    tx: &mpsc::Sender<Msg>,
) -> Result<(u64, String), DumpError> {
    let q = |e| query_err(database, "reading rows", e);
    let sql = table.select_sql_hashable(database);
    let mut out = Rows::new(table, opts);
    match (conn, split) {
        (DumpConn::Wire(conn), Some(split)) => {
            split_rows(conn, database, split, &mut out, progress, tx).await?;
        }
        (DumpConn::Async(conn), _) => {
            let mut result = conn.query_iter(sql).await.map_err(q)?;
            let kinds: Arc<[_]> = result.columns_ref().iter().map(literal_for).collect();
            while let Some(row) = result.next().await.map_err(q)? {
                out.begin_row();
                for (i, kind) in kinds.iter().enumerate() {
                    match row.as_ref(i) {
                        None | Some(mysql_async::Value::NULL) => out.value(i, *kind, None),
                        Some(mysql_async::Value::Bytes(b)) => out.value(i, *kind, Some(b)),
                        // The text protocol only yields bytes or NULL; anything else is
                        // rendered by the driver's own quoting rather than guessed at.
                        Some(other) => out.other(i, &other.as_sql(false)),
                    }
                }
                if let Some(full) = out.end_row() {
                    progress.advance(database, full.len() as u64, out.take_rows_in_stmt());
                    send(tx, full).await?;
                }
            }
        }
        (DumpConn::Wire(conn), None) => {
            let columns = conn.query(&sql).await.map_err(|e| q(e.into()))?;
            let kinds: Vec<Literal> = columns.iter().map(literal_for_wire).collect();
            loop {
                let full = {
                    let Some(row) = conn.next_row().await.map_err(|e| q(e.into()))? else {
                        break;
                    };
                    out.row(&kinds, &row)
                };
                if let Some(full) = full {
                    progress.advance(database, full.len() as u64, out.take_rows_in_stmt());
                    send(tx, full).await?;
                }
            }
        }
    }
    let (rows, hasher, last) = out.finish();
    if let Some(last) = last {
        progress.advance(database, last.len() as u64, rows.1);
        send(tx, last).await?;
    }
    let (hashed, checksum) = hasher.finish();
    debug_assert_eq!(hashed, rows.0);
    Ok((rows.0, checksum))
}

/// Renders `split`'s ranges in key order into `out` while `conn` reads ranges as one of
/// their readers (`super::ranges`): every row goes through the same [`Rows`] as an unsplit
/// read, so the bytes are the same.
async fn split_rows(
    conn: &mut WireConn,
    database: &str,
    split: &Split,
    out: &mut Rows,
    progress: &dyn Progress,
    tx: &mpsc::Sender<Msg>,
) -> Result<(), DumpError> {
    let read = async {
        while let Some(ahead) = split.claim()? {
            ranges::read_ahead(conn, split, ahead).await?;
        }
        Ok::<(), DumpError>(())
    };
    let render = async {
        for i in 0..split.ranges() {
            let (spool, fill) = split.take(i).await;
            ranges::follow(
                split,
                &spool,
                fill,
                |kinds, row| {
                    let full = out.row(kinds, row)?;
                    Some((full, out.take_rows_in_stmt()))
                },
                |(full, rows)| {
                    progress.advance(database, full.len() as u64, rows);
                    send(tx, full)
                },
            )
            .await?;
            tracing::trace!(range = i, "key range rendered");
        }
        Ok(())
    };
    tokio::try_join!(read, render)?;
    Ok(())
}

/// Renders rows into multi-row INSERT statements and feeds the row hash, whichever client
/// read them: one walk over each row does both.
struct Rows {
    insert_head: String,
    max: usize,
    cap: usize,
    stmt: Vec<u8>,
    rows: u64,
    rows_in_stmt: u64,
    hasher: facts::RowHasher,
}

impl Rows {
    fn new(table: &TableInfo, opts: &DumpOptions) -> Rows {
        let cols: Vec<String> = table.stored_columns().map(|c| ident(&c.name)).collect();
        let cap = opts.max_statement_bytes + (64 << 10);
        Rows {
            insert_head: format!(
                "INSERT INTO {} ({}) VALUES ",
                ident(&table.name),
                cols.join(",")
            ),
            max: opts.max_statement_bytes,
            cap,
            stmt: Vec::with_capacity(cap),
            rows: 0,
            rows_in_stmt: 0,
            hasher: facts::RowHasher::new(table),
        }
    }

    fn begin_row(&mut self) {
        if self.stmt.is_empty() {
            self.stmt.extend_from_slice(self.insert_head.as_bytes());
        } else {
            self.stmt.push(b',');
        }
        self.stmt.push(b'(');
        self.hasher.begin_row();
    }

    /// Value `i` of the row (bytes, or `None` for NULL).
    #[inline]
    fn value(&mut self, i: usize, kind: Literal, v: Option<&[u8]>) {
        if i > 0 {
            self.stmt.push(b',');
        }
        push_literal(&mut self.stmt, kind, v);
        self.hasher.value(v);
    }

    /// One whole row read by the wire client; returns the statement when it is full.
    #[inline]
    fn row(&mut self, kinds: &[Literal], row: &WireRow<'_>) -> Option<Vec<u8>> {
        self.begin_row();
        for (i, kind) in kinds.iter().enumerate() {
            self.value(i, *kind, row.get(i));
        }
        self.end_row()
    }

    /// Value `i` given as SQL text by the driver.
    fn other(&mut self, i: usize, sql: &str) {
        if i > 0 {
            self.stmt.push(b',');
        }
        self.stmt.extend_from_slice(sql.as_bytes());
        self.hasher.other(sql);
    }

    /// Ends the row; returns the statement when it is full.
    fn end_row(&mut self) -> Option<Vec<u8>> {
        self.hasher.end_row();
        self.stmt.push(b')');
        self.rows += 1;
        self.rows_in_stmt += 1;
        if self.stmt.len() < self.max {
            return None;
        }
        self.stmt.extend_from_slice(b";\n");
        Some(std::mem::replace(
            &mut self.stmt,
            Vec::with_capacity(self.cap),
        ))
    }

    /// Rows in the statement just returned (and resets the count).
    fn take_rows_in_stmt(&mut self) -> u64 {
        std::mem::take(&mut self.rows_in_stmt)
    }

    /// ((rows, rows in the last statement), the hasher, the last statement if any).
    fn finish(mut self) -> ((u64, u64), facts::RowHasher, Option<Vec<u8>>) {
        let last = if self.stmt.is_empty() {
            None
        } else {
            self.stmt.extend_from_slice(b";\n");
            Some(self.stmt)
        };
        ((self.rows, self.rows_in_stmt), self.hasher, last)
    }
}
