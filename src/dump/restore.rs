//! Restore: verify the file, recreate the database, load the statements, prove the content
//! by recomputing the per-table facts.
//!
//! The file's BLAKE3 is checked before anything touches the server. A native dump of format
//! 2 or 3 (plain, or zstd with one frame per section) is then loaded table by table over
//! several connections, from the sections found during that check ([`super::sections`]), each table's facts recomputed as soon as it is
//! in; any other file is loaded in order and hashed again while it is read, so a file swapped
//! after the check is caught too. Statements are split from the stream here (quotes, escapes,
//! `--`/`#`/`/* */` comments handled; `/*! .. */` executable comments kept, since
//! `mariadb-dump` wraps settings in them) and sent over mysql_async connections with bulk-load
//! session settings (no foreign key, unique or CHECK constraint checks, no binlog where the
//! user may turn it off). Reader threads split while the server executes, through small
//! bounded channels.

use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::artifact::{Compression, DumpArtifact, TableFact};
use super::facts;
use super::progress::Progress;
use super::sections::{self, SectionError, Sections, Verified};
use super::splitter::{Splitter, Stmt, check_supported};
use super::sqlvalue::ident;
use super::trail::{self, Trail};
use super::{DumpError, connect, query_err};
use crate::dbconn::DbTarget;

/// Options of a restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Connections loading at the same time (tables of native format 2 dumps, otherwise whole
    /// databases).
    pub jobs: usize,
    /// A table section of at least this many bytes has its INSERTs loaded by several
    /// connections at once (the one that created the table, plus any that have no whole
    /// table left to load); smaller sections load on one connection. Only in the
    /// table-by-table path and with `jobs` above 1.
    pub split_bytes: u64,
}

/// Default of [`RestoreOptions::split_bytes`]: 32 MiB, about 3% of a 1 GB dump, so only
/// tables big enough to leave a core idle at the end are split (docs/backup.md, Restore).
pub const DEFAULT_SPLIT_BYTES: u64 = 32 << 20;

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            jobs: 3,
            split_bytes: DEFAULT_SPLIT_BYTES,
        }
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
    /// How the file was loaded.
    #[serde(default)]
    pub mode: LoadMode,
    /// Tables whose rows were loaded by more than one connection (sections of at least
    /// [`RestoreOptions::split_bytes`] that another connection helped with).
    #[serde(default)]
    pub split_tables: u64,
    /// Tables whose check (the BLAKE3 row hash) ran beside their split load instead of
    /// after it ([`super::trail`]); the others were scanned once their rows were in.
    #[serde(default)]
    pub trailed_tables: u64,
}

/// How a restore loaded a dump file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoadMode {
    /// Statement after statement in file order, one connection for the database.
    #[default]
    InOrder,
    /// Table by table over several connections, from the sections of a native dump (plain,
    /// or zstd with one frame per section).
    Tables,
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
/// per-table facts. Touches nothing when the file does not match its recorded BLAKE3. A
/// native dump's tables are loaded `opts.jobs` at a time.
pub async fn restore_database(
    target: &DbTarget,
    artifact: &DumpArtifact,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreReport, DumpError> {
    let mut reports = restore_artifacts(target, vec![artifact.clone()], opts, progress).await?;
    Ok(reports.remove(0))
}

/// Verifies every chosen artifact first (refusing before touching any database if one does
/// not match), then restores them, tables of all of them `opts.jobs` at a time.
/// `databases` empty means all.
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
    restore_artifacts(target, chosen, opts, &*progress).await
}

/// The restore of one or several artifacts: verify all, then load.
///
/// Plain native dumps of format 2 or 3 are loaded table by table: each table's section of
/// the file goes to whichever of the `jobs` connections is free, biggest first, and its
/// facts are recomputed on that connection as soon as it is in; the views and closing
/// settings run once all tables of the database are in. Other dumps (mariadb-dump files,
/// one-frame zstd, format 1) and any database whose sections do not check out are loaded in file
/// order, one connection per database. Either way every byte executed is read from the
/// handle that was verified and checked again piece by piece before it is sent
/// ([`Verified`]), and a database is dropped and recreated only once the first statement
/// for it has passed that check.
async fn restore_artifacts(
    target: &DbTarget,
    chosen: Vec<DumpArtifact>,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<Vec<RestoreReport>, DumpError> {
    let mut checks = tokio::task::JoinSet::new();
    for (i, a) in chosen.iter().cloned().enumerate() {
        checks.spawn_blocking(move || (i, sections::verify_and_find(&a)));
    }
    let mut found: Vec<Option<(Arc<Verified>, Option<Sections>)>> =
        (0..chosen.len()).map(|_| None).collect();
    while let Some(r) = checks.join_next().await {
        let (i, f) = r.map_err(|e| DumpError::Internal {
            what: format!("checksum task failed: {e}"),
        })?;
        found[i] = Some(f?);
    }
    tracing::debug!(files = chosen.len(), "every file verified");
    // Test seam: the files are verified and nothing has been sent yet (the tests rewrite,
    // truncate or swap a file here).
    #[cfg(feature = "failpoints")]
    fail::fail_point!("restore:verified");
    let mut datas = Vec::with_capacity(chosen.len());
    let mut sectioned = Vec::new();
    for (i, f) in found.into_iter().enumerate() {
        let (data, layout) = f.expect("every file was verified");
        if let Some(l) = layout {
            sectioned.push((i, data.clone(), l));
        }
        datas.push(data);
    }
    let loaded = Loaded::new(chosen.len());
    let jobs = opts.jobs.max(1);
    let mut results: Vec<Option<RestoreReport>> = (0..chosen.len()).map(|_| None).collect();
    if !sectioned.is_empty() {
        let plan = Plan {
            jobs,
            split_bytes: opts.split_bytes,
        };
        match load_sections(target, &chosen, sectioned, plan, progress, &loaded).await {
            Ok(done) => {
                for (i, r) in done {
                    results[i] = r;
                }
            }
            Err(e) => return Err(loaded.explain(e, &chosen)),
        }
    }
    // Every started restore runs to its end (stopping one halfway would leave a half-loaded
    // database); the first error is reported after all are done.
    let in_order: Vec<usize> = (0..chosen.len())
        .filter(|i| results[*i].is_none())
        .collect();
    let sem = tokio::sync::Semaphore::new(jobs);
    let loads = in_order.iter().map(|&i| {
        let (sem, a, data, loaded) = (&sem, &chosen[i], &datas[i], &loaded);
        async move {
            let _permit = sem.acquire().await.expect("semaphore never closed");
            (i, load(target, a, data, (i, loaded), progress).await)
        }
    });
    let mut first_err = None;
    for (i, r) in futures_util::future::join_all(loads).await {
        match r {
            Ok(rep) => results[i] = Some(rep),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_err {
        return Err(loaded.explain(e, &chosen));
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every database was loaded one way or the other"))
        .collect())
}

/// What the load has done to each database so far, so an error can say it truthfully.
struct Loaded {
    /// Dropped and recreated.
    touched: Vec<AtomicBool>,
    /// Statements of its dump executed.
    statements: Vec<AtomicU64>,
    /// Restored and checked.
    finished: Vec<AtomicBool>,
}

impl Loaded {
    fn new(n: usize) -> Loaded {
        Loaded {
            touched: (0..n).map(|_| AtomicBool::new(false)).collect(),
            statements: (0..n).map(|_| AtomicU64::new(0)).collect(),
            finished: (0..n).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    fn touch(&self, i: usize) {
        self.touched[i].store(true, Ordering::SeqCst);
    }

    fn executed(&self, i: usize, statements: u64) {
        self.statements[i].fetch_add(statements, Ordering::SeqCst);
    }

    fn finish(&self, i: usize) {
        self.finished[i].store(true, Ordering::SeqCst);
    }

    /// `e`, with a [`DumpError::FileChanged`] told what had been loaded when it was found.
    fn explain(&self, e: DumpError, chosen: &[DumpArtifact]) -> DumpError {
        let DumpError::FileChanged { path, offset, .. } = e else {
            return e;
        };
        let mut parts = Vec::new();
        for (i, a) in chosen.iter().enumerate() {
            let db = &a.database;
            if self.finished[i].load(Ordering::SeqCst) {
                parts.push(format!("`{db}` was restored and checked"));
            } else if self.touched[i].load(Ordering::SeqCst) {
                parts.push(format!(
                    "`{db}` was dropped and recreated and {} statements of its dump were \
                     executed, so it is incomplete",
                    self.statements[i].load(Ordering::SeqCst)
                ));
            }
        }
        let loaded = if parts.is_empty() {
            "Nothing was changed: no database was touched".to_string()
        } else if parts.len() < chosen.len() {
            format!("{}; the other databases were not touched", parts.join("; "))
        } else {
            parts.join("; ")
        };
        DumpError::FileChanged {
            path,
            offset,
            loaded,
        }
    }
}

/// Statements executed and their bytes, for the report.
#[derive(Debug, Default, Clone, Copy)]
struct Executed {
    statements: u64,
    sql_bytes: u64,
    /// Tables loaded by more than one connection.
    split_tables: u64,
    /// Tables checked beside their load.
    trailed_tables: u64,
}

/// Opens a connection with the restore's session settings.
async fn bulk_session(target: &DbTarget, db: &str) -> Result<mysql_async::Conn, DumpError> {
    let q = |what: &'static str| move |e| query_err(db, what, e);
    let mut conn = connect(target).await?;
    facts::session_setup(&mut conn).await?;
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
    Ok(conn)
}

/// Drops and creates the artifact's database with its recorded charset and collation.
async fn recreate(conn: &mut mysql_async::Conn, artifact: &DumpArtifact) -> Result<(), DumpError> {
    // The names are spliced into the CREATE below: plain names only, checked before the drop.
    super::check_names(artifact)?;
    let db = artifact.database.as_str();
    let q = |what: &'static str| move |e| query_err(db, what, e);
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
    .map_err(q("creating the database"))
}

/// Executes `first`, then the statements from `rx`, in order. A `CREATE TABLE`'s plain
/// secondary indexes are held back and added once the table's rows are in (see
/// [`defer_secondary_keys`]).
async fn execute_all(
    conn: &mut mysql_async::Conn,
    db: &str,
    first: Stmt,
    rx: &mut mpsc::Receiver<Stmt>,
    progress: &dyn Progress,
    done: &mut Executed,
) -> Result<(), DumpError> {
    // Secondary indexes of the table being loaded, added back once its rows are in.
    let mut deferred: Option<String> = None;
    let mut next = Some(first);
    while let Some(stmt) = match next.take() {
        Some(s) => Some(s),
        None => rx.recv().await,
    } {
        execute_one(conn, db, stmt, &mut deferred, progress, done).await?;
    }
    build_deferred(conn, db, &mut deferred, done).await
}

/// Executes one statement in file order, counting it in `done` (its number in error
/// messages); returns the rows it affected. A `CREATE TABLE` leaves its secondary indexes in
/// `deferred`; the next DROP or CREATE builds them first.
async fn execute_one(
    conn: &mut mysql_async::Conn,
    db: &str,
    stmt: Stmt,
    deferred: &mut Option<String>,
    progress: &dyn Progress,
    done: &mut Executed,
) -> Result<u64, DumpError> {
    done.statements += 1;
    done.sql_bytes += stmt.sql.len() as u64;
    progress.advance(db, stmt.sql.len() as u64, 0);
    let mut sql = stmt.sql;
    if ends_table_data(&sql)
        && let Some(alter) = deferred.take()
    {
        tracing::debug!(database = db, "building deferred indexes");
        conn.query_drop(&alter)
            .await
            .map_err(|e| statement_err(db, done.statements, stmt.offset, alter.as_bytes(), e))?;
    }
    if opts_defer_keys(&sql)
        && let Some((create, alter)) = defer_secondary_keys(&sql)
    {
        sql = create;
        *deferred = Some(alter);
    }
    send(conn, db, &sql, done.statements, stmt.offset).await
}

/// Sends one statement and returns the rows it affected; an executable comment the server
/// skips entirely (an empty query) is harmless. `number` and `offset` name it in an error. A deadlock (error 1213) is tried
/// again, up to three times: INSERTs into one table from several connections (a split
/// section) can meet in InnoDB's locks (a unique secondary key), and a statement that lost
/// a deadlock was rolled back whole (every session runs with autocommit), so sending it
/// again is safe.
async fn send(
    conn: &mut mysql_async::Conn,
    db: &str,
    sql: &[u8],
    number: u64,
    offset: u64,
) -> Result<u64, DumpError> {
    let mut tries = 0;
    loop {
        match conn.query_drop(sql).await {
            Err(mysql_async::Error::Server(s)) if s.code == 1213 && tries < 3 => {
                tries += 1;
                tracing::debug!(
                    database = db,
                    number,
                    "deadlock; sending the statement again"
                );
            }
            Err(mysql_async::Error::Server(s)) if s.code == 1065 => return Ok(0),
            Err(e) => return Err(statement_err(db, number, offset, sql, e)),
            Ok(()) => return Ok(conn.affected_rows()),
        }
    }
}

/// Builds the secondary indexes a `CREATE TABLE` held back, if any.
async fn build_deferred(
    conn: &mut mysql_async::Conn,
    db: &str,
    deferred: &mut Option<String>,
    done: &Executed,
) -> Result<(), DumpError> {
    if let Some(alter) = deferred.take() {
        conn.query_drop(&alter)
            .await
            .map_err(|e| statement_err(db, done.statements, done.sql_bytes, alter.as_bytes(), e))?;
    }
    Ok(())
}

/// Loads a whole file in order over one connection (any dump this module can read). The
/// database is dropped and recreated only when the first statement has been read and
/// checked; `(index, loaded)` records what was done, for the error message.
async fn load(
    target: &DbTarget,
    artifact: &DumpArtifact,
    data: &Arc<Verified>,
    (idx, loaded): (usize, &Loaded),
    progress: &dyn Progress,
) -> Result<RestoreReport, DumpError> {
    let db = artifact.database.as_str();
    let started = std::time::Instant::now();
    let q = |what: &'static str| move |e| query_err(db, what, e);
    let mut conn = bulk_session(target, db).await?;
    progress.begin(db, artifact.size_bytes);

    let (tx, mut rx) = mpsc::channel::<Stmt>(4);
    let (d, compression) = (data.clone(), artifact.compression);
    let reader = tokio::task::spawn_blocking(move || read_statements(&d, compression, tx));
    let mut done = Executed::default();
    // No first statement: the reader failed (the file changed after the check, and the
    // database must stay as it was) or the dump holds none.
    let first = rx.recv().await;
    let created = first.is_some();
    let executed = match first {
        None => Ok(()),
        Some(first) => {
            async {
                recreate(&mut conn, artifact).await?;
                loaded.touch(idx);
                conn.query_drop(format!("USE {}", ident(db)))
                    .await
                    .map_err(q("selecting the database"))?;
                execute_all(&mut conn, db, first, &mut rx, progress, &mut done).await
            }
            .await
        }
    };
    loaded.executed(idx, done.statements);
    drop(rx);
    let read = reader.await.map_err(|e| DumpError::Internal {
        what: format!("dump reader failed: {e}"),
    })?;
    progress.finish(db);
    read?;
    executed?;
    if !created {
        recreate(&mut conn, artifact).await?;
        loaded.touch(idx);
    }
    conn.query_drop("COMMIT").await.map_err(q("committing"))?;
    conn.disconnect().await.ok();

    tracing::debug!(
        database = db,
        statements = done.statements,
        sql_bytes = done.sql_bytes,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "loaded; checking tables"
    );
    let tables = check_facts(target, artifact).await?;
    loaded.finish(idx);
    tracing::debug!(
        database = db,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "restored and checked"
    );
    Ok(RestoreReport {
        database: db.to_string(),
        statements: done.statements,
        sql_bytes: done.sql_bytes,
        tables,
        mode: LoadMode::InOrder,
        split_tables: 0,
        trailed_tables: 0,
    })
}

/// Shared state of a table-by-table load.
struct Board {
    /// (database index, table index), biggest section first.
    queue: VecDeque<(usize, usize)>,
    /// Per database: tables not yet in.
    remaining: Vec<usize>,
    /// Per database: facts recomputed so far.
    facts: Vec<BTreeMap<String, TableFact>>,
    done: Vec<Executed>,
    /// Per database: a section did not check out; load the file in order afterwards.
    in_order: Vec<bool>,
    /// The first real failure; no new table is started after it.
    error: Option<DumpError>,
    results: Vec<Option<RestoreReport>>,
    /// Split sections whose INSERTs are being handed out, each with the token a helper
    /// holds while it helps (the section's leader waits for every token to be dropped).
    helping: Vec<(Arc<Split>, mpsc::Sender<()>)>,
    /// Split sections started and not yet released: a worker with nothing else to do
    /// waits for them to be published instead of leaving.
    splitting: usize,
}

/// How a table-by-table load schedules its sections.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Connections.
    jobs: usize,
    /// Sections of at least this size are split ([`RestoreOptions::split_bytes`]).
    split_bytes: u64,
}

/// One table section whose INSERTs several connections load at once: its leader ran the
/// DROP and CREATE, then shares the statements the reader thread sends; any worker with no
/// whole table left joins (after its own `USE` and the header settings).
struct Split {
    /// Index in the load's databases.
    d: usize,
    /// Index of the table in that database's sections.
    t: usize,
    /// The reader's statements: whoever holds the lock takes the next one.
    rx: tokio::sync::Mutex<mpsc::Receiver<Stmt>>,
    /// Statements executed before the split (the DROP, CREATE and first INSERT), so the
    /// numbers in error messages continue the section's.
    base: u64,
    /// Statements taken from `rx` and their bytes.
    statements: AtomicU64,
    sql_bytes: AtomicU64,
    /// No more statements: the reader finished or a connection failed.
    closed: AtomicBool,
    /// A helper executed at least one of its statements.
    helped: AtomicBool,
    /// The first failure of any connection; the others stop taking statements.
    error: std::sync::Mutex<Option<SectionError>>,
    /// Which statements succeeded, for the check that trails the load.
    trail: Arc<Trail>,
}

impl Split {
    /// Records `e` (the first one wins), stops every connection and the reader.
    async fn fail(&self, e: SectionError) {
        self.error.lock().expect("split").get_or_insert(e);
        self.closed.store(true, Ordering::SeqCst);
        self.rx.lock().await.close();
    }

    /// Takes and executes statements until there are none or one fails. Only INSERTs run
    /// here: anything else after the rows began does not belong to a section loaded this
    /// way, and the database is loaded in file order instead.
    async fn consume(
        &self,
        conn: &mut mysql_async::Conn,
        db: &str,
        table: &str,
        helper: bool,
        progress: &dyn Progress,
    ) {
        loop {
            if self.closed.load(Ordering::SeqCst) {
                return;
            }
            let (stmt, number) = {
                let mut rx = self.rx.lock().await;
                match rx.recv().await {
                    Some(s) => {
                        let n = self.statements.fetch_add(1, Ordering::SeqCst) + 1;
                        (s, self.base + n)
                    }
                    None => {
                        self.closed.store(true, Ordering::SeqCst);
                        return;
                    }
                }
            };
            self.sql_bytes
                .fetch_add(stmt.sql.len() as u64, Ordering::SeqCst);
            progress.advance(db, stmt.sql.len() as u64, 0);
            if !head_is(&stmt.sql, "INSERT ") {
                let why = format!(
                    "a statement at byte {} of table section `{table}` is not an INSERT but \
                     comes after its rows began",
                    stmt.offset
                );
                return self.fail(SectionError::NotASection(why)).await;
            }
            match send(conn, db, &stmt.sql, number, stmt.offset).await {
                Ok(rows) => self.trail.done(number - self.base, rows),
                Err(e) => return self.fail(SectionError::Dump(e)).await,
            }
            if helper {
                self.helped.store(true, Ordering::SeqCst);
            }
        }
    }
}

impl Board {
    /// Records database `d`'s outcome once its views are in and its facts compared.
    fn finished(&mut self, d: usize, r: Result<RestoreReport, DumpError>) {
        match r {
            Ok(rep) => self.results[d] = Some(rep),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
    }
}

/// One database of a table-by-table load: what every unit of it needs.
struct SectionedDb<'a> {
    /// The server, for a connection of a unit's own (the trailing check).
    target: &'a DbTarget,
    /// Index in the restore's list of artifacts.
    idx: usize,
    artifact: &'a DumpArtifact,
    data: &'a Arc<Verified>,
    sections: &'a Sections,
    header: Vec<Vec<u8>>,
    /// Set once the database has been dropped and recreated, by the first unit that has a
    /// checked statement to send.
    created: tokio::sync::OnceCell<()>,
    loaded: &'a Loaded,
}

/// Loads sectioned dumps over `jobs` connections. Returns, per artifact index, the report,
/// or `None` for a database to be loaded in file order instead. Tables already started run
/// to their end after a failure; the first failure is returned.
async fn load_sections(
    target: &DbTarget,
    chosen: &[DumpArtifact],
    sectioned: Vec<(usize, Arc<Verified>, Sections)>,
    plan: Plan,
    progress: &dyn Progress,
    loaded: &Loaded,
) -> Result<Vec<(usize, Option<RestoreReport>)>, DumpError> {
    let n = sectioned.len();
    let dbs: Vec<SectionedDb> = sectioned
        .iter()
        .map(|(i, data, s)| SectionedDb {
            target,
            idx: *i,
            artifact: &chosen[*i],
            data,
            sections: s,
            header: split_small(&s.header),
            created: tokio::sync::OnceCell::new(),
            loaded,
        })
        .collect();
    let mut units: Vec<(usize, usize)> = dbs
        .iter()
        .enumerate()
        .flat_map(|(d, db)| (0..db.sections.tables.len()).map(move |t| (d, t)))
        .collect();
    let size = |&(d, t): &(usize, usize)| {
        let s = &dbs[d].sections.tables[t];
        s.end - s.start
    };
    units.sort_by_key(|u| std::cmp::Reverse(size(u)));
    // Only with a second connection to help; `--jobs 1` loads every section alone.
    let splits = |u: &(usize, usize)| plan.jobs > 1 && size(u) >= plan.split_bytes;
    let any_split = units.iter().any(splits);
    let board = std::sync::Mutex::new(Board {
        queue: units.into(),
        remaining: dbs.iter().map(|db| db.sections.tables.len()).collect(),
        facts: vec![BTreeMap::new(); n],
        done: vec![Executed::default(); n],
        in_order: vec![false; n],
        error: None,
        results: (0..n).map(|_| None).collect(),
        helping: Vec::new(),
        splitting: 0,
    });
    // Woken whenever the board changes in a way a waiting worker cares about.
    let wake = tokio::sync::Notify::new();
    // A database is dropped and created by the first unit that has a checked statement for
    // it (`run_range`), so a file found changed before that leaves it as it was.
    for db in &dbs {
        progress.begin(&db.artifact.database, db.artifact.size_bytes);
    }
    // A database without tables has nothing to hand out: finish it up front.
    let empty: Vec<usize> = (0..n)
        .filter(|d| dbs[*d].sections.tables.is_empty())
        .collect();

    // Scheduling: biggest section first, each to a free connection, as before. A section of
    // at least `split_bytes` is "split": a worker that finds no whole table left helps with
    // the INSERTs of a split section still loading (or waits for one about to be shared)
    // instead of leaving. So small tables are never held back by a big one (they are taken
    // first), and no connection idles while a big table's rows are still coming.
    let worker = |_w: usize| {
        let (board, dbs, wake) = (&board, &dbs, &wake);
        async move {
            let mut conn = match bulk_session(target, "").await {
                Ok(c) => c,
                Err(e) => {
                    board.lock().expect("board").error.get_or_insert(e);
                    wake.notify_waiters();
                    return;
                }
            };
            loop {
                // Created before the board is read, so a change made after the read wakes it.
                let notified = wake.notified();
                let job = {
                    let mut b = board.lock().expect("board");
                    if b.error.is_some() {
                        Job::Stop
                    } else {
                        let mut next = None;
                        while let Some((d, t)) = b.queue.pop_front() {
                            if !b.in_order[d] {
                                next = Some((d, t));
                                break;
                            }
                        }
                        match next {
                            Some(u) => {
                                let split = splits(&u);
                                if split {
                                    b.splitting += 1;
                                }
                                Job::Table(u.0, u.1, split)
                            }
                            None => match b
                                .helping
                                .iter()
                                .find(|(s, _)| !s.closed.load(Ordering::SeqCst))
                            {
                                Some((s, token)) => Job::Help(s.clone(), token.clone()),
                                None if b.splitting > 0 => Job::Wait,
                                None => Job::Stop,
                            },
                        }
                    }
                };
                let (d, t, split) = match job {
                    Job::Stop => break,
                    Job::Wait => {
                        notified.await;
                        continue;
                    }
                    Job::Help(s, token) => {
                        help(&mut conn, &dbs[s.d], &s, progress).await;
                        drop(token);
                        continue;
                    }
                    Job::Table(d, t, split) => (d, t, split),
                };
                let db = &dbs[d];
                let mut done = Executed::default();
                let r = if split {
                    let pool = Pool { board, wake };
                    load_split(&mut conn, db, d, t, &pool, progress, &mut done).await
                } else {
                    load_table(&mut conn, db, t, progress, &mut done).await
                };
                let last = {
                    let mut b = board.lock().expect("board");
                    b.done[d].statements += done.statements;
                    b.done[d].sql_bytes += done.sql_bytes;
                    b.done[d].split_tables += done.split_tables;
                    b.done[d].trailed_tables += done.trailed_tables;
                    match r {
                        Ok(fact) => {
                            if let Some(f) = fact {
                                b.facts[d].insert(f.name.clone(), f);
                            }
                            b.remaining[d] -= 1;
                            b.remaining[d] == 0 && !b.in_order[d]
                        }
                        Err(SectionError::NotASection(why)) => {
                            tracing::warn!(
                                database = db.artifact.database.as_str(),
                                "{why}; loading the whole file in order instead"
                            );
                            b.in_order[d] = true;
                            false
                        }
                        Err(SectionError::Dump(e)) => {
                            b.error.get_or_insert(e);
                            false
                        }
                    }
                };
                wake.notify_waiters();
                if last {
                    let (facts, done) = {
                        let mut b = board.lock().expect("board");
                        (std::mem::take(&mut b.facts[d]), b.done[d])
                    };
                    let r = finish_database(&mut conn, db, facts, done, progress).await;
                    progress.finish(&db.artifact.database);
                    board.lock().expect("board").finished(d, r);
                    wake.notify_waiters();
                }
            }
            conn.disconnect().await.ok();
        }
    };
    // With a split section every connection can help, however few the tables.
    let tables = board.lock().expect("board").queue.len();
    let workers = if any_split {
        plan.jobs
    } else {
        plan.jobs.min(tables).max(1)
    };
    let finish_empty = async {
        if empty.is_empty() {
            return;
        }
        let mut conn = match bulk_session(target, "").await {
            Ok(c) => c,
            Err(e) => {
                board.lock().expect("board").error.get_or_insert(e);
                return;
            }
        };
        for d in empty {
            let db = &dbs[d];
            let r = finish_database(
                &mut conn,
                db,
                BTreeMap::new(),
                Executed::default(),
                progress,
            )
            .await;
            progress.finish(&db.artifact.database);
            board.lock().expect("board").finished(d, r);
        }
        conn.disconnect().await.ok();
    };
    tokio::join!(
        futures_util::future::join_all((0..workers).map(worker)),
        finish_empty
    );

    let mut b = board.into_inner().expect("board");
    if let Some(e) = b.error.take() {
        return Err(e);
    }
    let mut out = Vec::with_capacity(n);
    for (d, db) in dbs.iter().enumerate() {
        if b.in_order[d] {
            out.push((db.idx, None));
            continue;
        }
        match b.results[d].take() {
            Some(rep) => {
                loaded.finish(db.idx);
                out.push((db.idx, Some(rep)));
            }
            None => {
                return Err(DumpError::Internal {
                    what: format!(
                        "the load of `{}` ended without a result",
                        db.artifact.database
                    ),
                });
            }
        }
    }
    Ok(out)
}

/// Splits a small piece of SQL (a dump's header) into statements.
fn split_small(sql: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut sp = Splitter::default();
    let mut emit = |s: Vec<u8>, _| -> Result<(), ()> {
        out.push(s);
        Ok(())
    };
    let _ = sp.feed(sql, 0, &mut emit);
    let _ = sp.finish(&mut emit);
    out
}

/// `USE db` and the dump's header settings on `conn`.
async fn enter(
    conn: &mut mysql_async::Conn,
    db: &str,
    header: &[Vec<u8>],
) -> Result<(), DumpError> {
    conn.query_drop(format!("USE {}", ident(db)))
        .await
        .map_err(|e| query_err(db, "selecting the database", e))?;
    for (i, sql) in header.iter().enumerate() {
        if let Err(e) = conn.query_drop(sql).await {
            if matches!(&e, mysql_async::Error::Server(s) if s.code == 1065) {
                continue;
            }
            return Err(statement_err(db, i as u64 + 1, 0, sql, e));
        }
    }
    Ok(())
}

/// Loads one table's section on `conn`, then recomputes its fact with the recorded method.
async fn load_table(
    conn: &mut mysql_async::Conn,
    db: &SectionedDb<'_>,
    t: usize,
    progress: &dyn Progress,
    done: &mut Executed,
) -> Result<Option<TableFact>, SectionError> {
    let section = &db.sections.tables[t];
    run_range(
        conn,
        db,
        (section.start, section.end),
        Some(&section.name),
        progress,
        done,
    )
    .await?;
    Ok(table_fact(conn, db, t).await?)
}

/// Recomputes table `t`'s fact with the recorded method, once its rows and indexes are in.
async fn table_fact(
    conn: &mut mysql_async::Conn,
    db: &SectionedDb<'_>,
    t: usize,
) -> Result<Option<TableFact>, DumpError> {
    let name = db.artifact.database.as_str();
    let section = &db.sections.tables[t];
    tracing::debug!(
        database = name,
        table = section.name.as_str(),
        "table loaded; checking it"
    );
    // The header changed the session (sql_mode, time zone); facts are read as the dumper read them.
    facts::session_setup(conn).await?;
    let Some(info) = facts::table_info(conn, name, &section.name)
        .await?
        .filter(|i| !i.is_view)
    else {
        return Ok(None); // reported as missing by the database check
    };
    let expected = &db.artifact.tables[t];
    let fact = facts::fact_for(conn, name, &info, Some(expected.checksum_method)).await?;
    tracing::debug!(
        database = name,
        table = section.name.as_str(),
        "table checked"
    );
    Ok(Some(fact))
}

/// What a worker of a table-by-table load does next.
enum Job {
    /// Load table `.1` of database `.0`; split it when `.2`.
    Table(usize, usize, bool),
    /// Help with a split section's INSERTs, holding the token while it does.
    Help(Arc<Split>, mpsc::Sender<()>),
    /// No whole table left, and a split section is about to be shared.
    Wait,
    /// Nothing left, or a failure: no new work.
    Stop,
}

/// The board of a table-by-table load and its wake-up, for a split section's leader.
struct Pool<'a> {
    board: &'a std::sync::Mutex<Board>,
    wake: &'a tokio::sync::Notify,
}

impl Pool<'_> {
    /// Shares `split` with the workers that have nothing else to do.
    fn publish(&self, split: &Arc<Split>, token: &mpsc::Sender<()>) {
        let mut b = self.board.lock().expect("board");
        b.helping.push((split.clone(), token.clone()));
        drop(b);
        self.wake.notify_waiters();
    }

    /// Ends a split section started by this worker: no new helper joins it (published or
    /// not), and workers waiting only for it may leave.
    fn release(&self, split: Option<&Arc<Split>>) {
        let mut b = self.board.lock().expect("board");
        if let Some(s) = split {
            b.helping.retain(|(h, _)| !Arc::ptr_eq(h, s));
        }
        b.splitting -= 1;
        drop(b);
        self.wake.notify_waiters();
    }
}

/// A helper's part in a split section: enter the database as a loading connection does,
/// then take INSERTs until there are none. Failures go to the section (its leader reports).
async fn help(
    conn: &mut mysql_async::Conn,
    db: &SectionedDb<'_>,
    split: &Split,
    progress: &dyn Progress,
) {
    let name = db.artifact.database.as_str();
    // The bulk-load settings (foreign_key_checks=0 etc.) are this connection's since
    // `bulk_session`; `USE` and the header (sql_mode, time zone, charset) are per section.
    if let Err(e) = enter(conn, name, &db.header).await {
        return split.fail(SectionError::Dump(e)).await;
    }
    let table = &db.sections.tables[split.t].name;
    split.consume(conn, name, table, true, progress).await;
}

/// Loads table section `t` of database `d` with help: this connection runs the DROP, the
/// CREATE (secondary indexes held back) and the first INSERT, then shares the remaining
/// INSERTs with idle workers and takes its own share; once every one succeeded and every
/// helper is done, it builds the held-back indexes. The table's row hash is computed beside
/// the load on a connection of its own ([`trail`]), range by range as the statements below
/// each range succeed; where that check gives up, the table is scanned once its rows are in,
/// as a table loaded alone is. Every statement is still read from the verified handle by the
/// one reader thread and checked before it is handed out. A failure on any connection stops
/// them all; every statement sent by any of them is counted in `done` and in [`Loaded`].
async fn load_split(
    conn: &mut mysql_async::Conn,
    db: &SectionedDb<'_>,
    d: usize,
    t: usize,
    pool: &Pool<'_>,
    progress: &dyn Progress,
    done: &mut Executed,
) -> Result<Option<TableFact>, SectionError> {
    let name = db.artifact.database.as_str();
    let section = &db.sections.tables[t];
    let (tx, mut rx) = mpsc::channel::<Stmt>(8);
    let data = db.data.clone();
    let framed = db.sections.framed;
    let (range, table) = ((section.start, section.end), section.name.clone());
    let reader = tokio::task::spawn_blocking(move || {
        sections::read_range(&data, range, Some(&table), framed, tx)
    });
    let before = done.statements;
    let mut deferred: Option<String> = None;
    let trail = Arc::new(Trail::default());
    // The leader's part before the rows: DROP, CREATE, and the first INSERT, in order.
    let lead = async {
        let Some(first) = rx.recv().await else {
            return Ok(false);
        };
        open_database(conn, db).await?;
        let mut next = Some(first);
        loop {
            let Some(stmt) = (match next.take() {
                Some(s) => Some(s),
                None => rx.recv().await,
            }) else {
                return Ok(false);
            };
            let insert = head_is(&stmt.sql, "INSERT ");
            let rows = execute_one(conn, name, stmt, &mut deferred, progress, done).await?;
            if insert {
                // Statement 0 of the trail: the split numbers the others from 1.
                trail.done(0, rows);
                return Ok::<bool, DumpError>(true);
            }
        }
    }
    .await;
    // The table exists once the leader ran its first INSERT: the check can trail from there.
    let trails = matches!(lead, Ok(true));
    let expected = &db.artifact.tables[t];
    let check = async {
        if !trails {
            return None;
        }
        Some(trail::check(db.target, name, expected, &trail).await)
    };
    let rest = async {
        // Whatever path this takes, the trailing check is never left waiting.
        let _abandon = trail.abandon_on_drop();
        let mut split_err = None;
        let shared = match lead {
            Ok(true) => {
                let split = Arc::new(Split {
                    d,
                    t,
                    rx: tokio::sync::Mutex::new(rx),
                    base: done.statements,
                    statements: AtomicU64::new(0),
                    sql_bytes: AtomicU64::new(0),
                    closed: AtomicBool::new(false),
                    helped: AtomicBool::new(false),
                    error: std::sync::Mutex::new(None),
                    trail: trail.clone(),
                });
                // Test seam: the check reads its first range before any other statement
                // runs (tests/backup_restore_trail_order.rs).
                #[cfg(feature = "failpoints")]
                if fail::eval("restore:trail-first", |_| ()).is_some() {
                    trail.first_range().await;
                }
                let (token, mut all_left) = mpsc::channel::<()>(1);
                tracing::debug!(
                    database = name,
                    table = section.name.as_str(),
                    "sharing the section's INSERTs with idle connections"
                );
                pool.publish(&split, &token);
                split
                    .consume(conn, name, &section.name, false, progress)
                    .await;
                pool.release(Some(&split));
                drop(token);
                // Every helper holds a token while it helps: none left means all are done.
                let _ = all_left.recv().await;
                done.statements += split.statements.load(Ordering::SeqCst);
                done.sql_bytes += split.sql_bytes.load(Ordering::SeqCst);
                done.split_tables += u64::from(split.helped.load(Ordering::SeqCst));
                split_err = split.error.lock().expect("split").take();
                tracing::debug!(
                    database = name,
                    table = section.name.as_str(),
                    helped = split.helped.load(Ordering::SeqCst),
                    "rows in; building the held-back indexes"
                );
                // The reader may be blocked on a full channel; the receiver goes with the split.
                split.rx.lock().await.close();
                drop(split);
                Ok(())
            }
            Ok(false) => {
                drop(rx);
                pool.release(None);
                Ok(())
            }
            Err(e) => {
                drop(rx);
                pool.release(None);
                Err(e)
            }
        };
        db.loaded.executed(db.idx, done.statements - before);
        let read = reader.await.map_err(|e| DumpError::Internal {
            what: format!("dump reader failed: {e}"),
        })?;
        // As in `run_range`: a section that did not check out explains whatever the
        // connections saw after it; then the connections' own failures.
        match (read, shared, split_err) {
            (Err(SectionError::NotASection(why)), _, _) => {
                return Err(SectionError::NotASection(why));
            }
            (_, Err(e), _) => return Err(SectionError::Dump(e)),
            (_, Ok(()), Some(e)) => return Err(e),
            (Err(e), Ok(()), None) => return Err(e),
            (Ok(()), Ok(()), None) => {}
        }
        // Every statement of the section succeeded: the check may read the last rows while
        // the held-back indexes are built (that changes no row).
        trail.end();
        build_deferred(conn, name, &mut deferred, done).await?;
        Ok::<(), SectionError>(())
    };
    let (loaded, trailed) = tokio::join!(rest, check);
    loaded?;
    match trailed {
        Some(Ok(fact)) => {
            done.trailed_tables += 1;
            tracing::debug!(
                database = name,
                table = section.name.as_str(),
                "table checked beside its load"
            );
            Ok(Some(fact))
        }
        other => {
            if let Some(Err(why)) = &other {
                tracing::debug!(
                    database = name,
                    table = section.name.as_str(),
                    %why,
                    "the check beside the load gave up; scanning the table"
                );
            }
            Ok(table_fact(conn, db, t).await?)
        }
    }
}

/// Once a unit has a checked statement for `db`: the database is dropped and created if no
/// other unit did it yet, and `conn` enters it (`USE`, the header's settings).
async fn open_database(
    conn: &mut mysql_async::Conn,
    db: &SectionedDb<'_>,
) -> Result<(), DumpError> {
    db.created
        .get_or_try_init(|| async {
            recreate(conn, db.artifact).await?;
            db.loaded.touch(db.idx);
            Ok::<(), DumpError>(())
        })
        .await?;
    enter(conn, db.artifact.database.as_str(), &db.header).await
}

/// Streams `[start, end)` of the verified file through a reader thread into
/// [`execute_all`]. Once the first statement has been read and checked, the database is
/// created if no other unit did it yet, and the session enters it (`USE`, header settings).
async fn run_range(
    conn: &mut mysql_async::Conn,
    db: &SectionedDb<'_>,
    range: (u64, u64),
    table: Option<&str>,
    progress: &dyn Progress,
    done: &mut Executed,
) -> Result<(), SectionError> {
    let name = db.artifact.database.as_str();
    let (tx, mut rx) = mpsc::channel::<Stmt>(4);
    let data = db.data.clone();
    let framed = db.sections.framed;
    let table = table.map(str::to_string);
    let reader = tokio::task::spawn_blocking(move || {
        sections::read_range(&data, range, table.as_deref(), framed, tx)
    });
    let before = done.statements;
    let executed = async {
        let Some(first) = rx.recv().await else {
            return Ok(());
        };
        open_database(conn, db).await?;
        execute_all(conn, name, first, &mut rx, progress, done).await
    }
    .await;
    db.loaded.executed(db.idx, done.statements - before);
    drop(rx);
    let read = reader.await.map_err(|e| DumpError::Internal {
        what: format!("dump reader failed: {e}"),
    })?;
    // A section that did not check out explains whatever the executor saw after it.
    match (read, executed) {
        (Err(SectionError::NotASection(why)), _) => Err(SectionError::NotASection(why)),
        (_, Err(e)) => Err(SectionError::Dump(e)),
        (Err(e), Ok(())) => Err(e),
        (Ok(()), Ok(())) => Ok(()),
    }
}

/// After every table of a database is in: the views and closing settings, then the check
/// that the database holds exactly the recorded tables, views and facts.
async fn finish_database(
    conn: &mut mysql_async::Conn,
    db: &SectionedDb<'_>,
    got: BTreeMap<String, TableFact>,
    mut done: Executed,
    progress: &dyn Progress,
) -> Result<RestoreReport, DumpError> {
    let name = db.artifact.database.as_str();
    match run_range(conn, db, db.sections.tail, None, progress, &mut done).await {
        Ok(()) => {}
        Err(SectionError::Dump(e)) => return Err(e),
        Err(SectionError::NotASection(why)) => {
            return Err(DumpError::Internal {
                what: format!(
                    "{why} (the views and closing settings of `{name}`'s dump); its tables are \
                     in, its views are not: load the file with `mariadb {name} < FILE`, or take \
                     a new dump"
                ),
            });
        }
    }
    done.statements += db.header.len() as u64;
    facts::session_setup(conn).await?;
    let schema = facts::list_schema(conn, name).await?;
    let tables = compare_facts(db.artifact, &schema, &got)?;
    Ok(RestoreReport {
        database: name.to_string(),
        statements: done.statements,
        sql_bytes: done.sql_bytes,
        tables,
        mode: LoadMode::Tables,
        split_tables: done.split_tables,
        trailed_tables: done.trailed_tables,
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
    // The split works on lines, so a name or a string with a line break in it (legal in a
    // quoted identifier) would cut a line in two: such a table is loaded as it is.
    if text.contains("FOREIGN KEY") || line_break_inside_quotes(text.as_bytes()) {
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

/// True when a `\n` or `\r` sits inside a quoted identifier or string of `sql`.
fn line_break_inside_quotes(sql: &[u8]) -> bool {
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < sql.len() {
        let b = sql[i];
        match quote {
            None if matches!(b, b'`' | b'\'' | b'"') => quote = Some(b),
            None => {}
            Some(_) if b == b'\n' || b == b'\r' => return true,
            Some(q) if b == b'\\' && q != b'`' => i += 1,
            // A doubled quote stays inside; a single one closes.
            Some(q) if b == q && sql.get(i + 1) == Some(&q) => i += 1,
            Some(q) if b == q => quote = None,
            Some(_) => {}
        }
        i += 1;
    }
    false
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
    let mut got = BTreeMap::new();
    for expected in &artifact.tables {
        if let Some(info) = schema.base_tables().find(|t| t.name == expected.name) {
            let fact = facts::fact_for(&mut conn, db, info, Some(expected.checksum_method)).await?;
            got.insert(expected.name.clone(), fact);
        }
    }
    conn.disconnect().await.ok();
    compare_facts(artifact, &schema, &got)
}

/// Compares the recomputed facts (`got`, by table name) and the live schema's tables and
/// views with the artifact; any difference is [`DumpError::TableMismatch`].
fn compare_facts(
    artifact: &DumpArtifact,
    schema: &facts::Schema,
    got: &BTreeMap<String, TableFact>,
) -> Result<Vec<TableFact>, DumpError> {
    let mut diffs = Vec::new();
    let mut actual = Vec::new();
    let live: Vec<&str> = schema.base_tables().map(|t| t.name.as_str()).collect();
    for expected in &artifact.tables {
        match got.get(&expected.name) {
            Some(fact) if live.contains(&expected.name.as_str()) => {
                if fact.rows != expected.rows || fact.checksum != expected.checksum {
                    diffs.push(TableDiff {
                        table: expected.name.clone(),
                        expected: describe(expected),
                        actual: describe(fact),
                    });
                }
                actual.push(fact.clone());
            }
            _ => diffs.push(TableDiff {
                table: expected.name.clone(),
                expected: describe(expected),
                actual: "missing".into(),
            }),
        }
    }
    for name in &live {
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
    if diffs.is_empty() {
        Ok(actual)
    } else {
        Err(DumpError::TableMismatch {
            database: artifact.database.clone(),
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

/// Reads (through the piece-by-piece check), decompresses and splits the verified file,
/// sending statements until done or until the receiver goes away.
fn read_statements(
    data: &Arc<Verified>,
    compression: Compression,
    tx: mpsc::Sender<Stmt>,
) -> Result<(), DumpError> {
    let path = data.path();
    let io = |e| sections::from_io(path, e);
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
    let pumped = match compression {
        Compression::None => pump(&mut data.reader()),
        Compression::Zstd => {
            let mut d = zstd::Decoder::new(data.reader()).map_err(io)?;
            pump(&mut d)
        }
    };
    match pumped {
        Err(DumpError::WriterGone) => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each statement's offset is the byte where it starts, also when it starts with a byte
    /// the splitter must look past to classify (`-`, `/`, `/*!`, `/*M!`), and whatever the
    /// chunking. Found by the `dump_splitter` fuzz target (finding F3): the offset was 1 to
    /// 3 bytes late, so a restore error named the wrong byte.
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
        // A name with a line break is left alone rather than cut at the line.
        let nl = "CREATE TABLE `t` (\n  `id` int,\n  `c\nKEY `x` (`id`)` int,\n  PRIMARY KEY (`id`),\n  KEY `k` (`id`)\n)";
        assert!(defer_secondary_keys(nl.as_bytes()).is_none());
        assert!(!line_break_inside_quotes(create.as_bytes()));
        assert!(line_break_inside_quotes(b"COMMENT 'a\\'\nb'"));
        assert!(!line_break_inside_quotes(b"COMMENT 'a\\\\'\n`b`"));
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
