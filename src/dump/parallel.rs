//! The native dumper's entry point: tables of one or several databases dumped in parallel
//! over `opts.jobs` connections that share one synchronized snapshot, each database's file
//! assembled in canonical order (byte for byte what one connection writes).
//!
//! **One snapshot for every connection.** A coordinator connection lists the base tables,
//! takes `LOCK TABLES db.t1 READ, ...` on all of them, lets the already connected workers
//! run `START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY`, and unlocks (the lock is held
//! for those few statements only, milliseconds). Where the lock is refused (no LOCK TABLES
//! privilege, a lock wait timeout, any error) the dump falls back to one connection and
//! snapshot per database, databases in parallel ([`native::dump`]); so does `jobs == 1` or a
//! single base table in total. See [`synchronize`] for why the snapshots agree.
//!
//! **Assembly.** A work unit is one base table's section. Each database has one writer
//! thread (`.part`, BLAKE3, fsync, checks, rename) that takes the sections in canonical
//! order. The worker whose table is the next one its database's file needs (the *head*)
//! streams straight into the writer; any other worker writes its section to a spool file
//! (`.<db>.<index>.spool`, plain SQL, 0600) that is copied into the writer, in chunks, once
//! the sections before it are in, and then removed. Whoever completes the head section
//! becomes the file's *owner*: it hands the writer every spooled section that follows,
//! streams the next one itself when nobody has claimed it, and writes the views and the
//! tail after the last table. When the next section is still being spooled, the owner
//! passes the file to that section's worker: its spool thread hands the bytes spooled so far
//! to the writer and forwards the rest straight after them, so a big table that was started
//! early is not written twice in full (and is not copied in at the very end). A free worker
//! takes a database's head if unclaimed (the database with most bytes left first),
//! otherwise the largest unclaimed table. The scheduling ([`Sched`]) only decides when bytes
//! reach the file, never their order: the file is the same whatever the timing.
//!
//! **Failure.** The first error cancels the workers, kills their connections (so the server
//! stops streaming to nobody), closes every writer (the `.part` files are removed) and waits
//! until every spool file is gone before returning; a writer's own error (a full disk)
//! wins over the [`DumpError::WriterGone`] it causes on the producing side.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::wire::{DumpConn, WireUse};
use tokio::sync::mpsc;

use super::artifact::{Compression, DumpArtifact, Dumper, TableFact};
use super::facts::{self, Schema, TableInfo};
use super::native;
use super::progress::Progress;
use super::ranges::{self, Split};
use super::sqlvalue::ident;
use super::writer::{self, Handoff, Msg, PartWriter, SpoolFile, Spooled};
use super::{DumpError, DumpOptions, connect, dump_path, query_err};
use crate::dbconn::DbTarget;

/// How long `LOCK TABLES` waits for transactions that hold uncommitted writes to the tables
/// (writers queue behind a waiting lock); past it the dump falls back to one snapshot per
/// database.
const LOCK_WAIT_SECONDS: u32 = 5;
/// Attempts when a table appears or disappears between listing and locking.
const SYNC_ATTEMPTS: usize = 3;
/// The server's "table doesn't exist".
const ER_NO_SUCH_TABLE: u16 = 1146;
/// How long the best-effort `KILL` of the workers' connections may take after a failure.
const KILL_TIMEOUT: Duration = Duration::from_secs(3);

/// Dumps `databases` natively into `out_dir` (prepared and canonical) and returns their
/// artifacts in the same order. See the module docs.
pub(crate) async fn dump_all(
    target: &DbTarget,
    databases: &[String],
    out_dir: &Path,
    opts: &DumpOptions,
    progress: &dyn Progress,
) -> Result<Vec<DumpArtifact>, DumpError> {
    // Workers run as tasks of their own (rendering rows is CPU work, so they spread over the
    // runtime's threads); their progress comes back here, to the caller's borrowed reporter.
    let (tx, mut events) = mpsc::unbounded_channel();
    let relay: Arc<dyn Progress> = Arc::new(Relay(tx));
    let work = run(target, databases, out_dir, opts, relay);
    tokio::pin!(work);
    loop {
        tokio::select! {
            r = &mut work => {
                while let Ok(e) = events.try_recv() {
                    e.apply(progress);
                }
                return r;
            }
            Some(e) = events.recv() => e.apply(progress),
        }
    }
}

enum Event {
    Begin(String, u64),
    Advance(String, u64, u64),
    Finish(String),
}

impl Event {
    fn apply(self, p: &dyn Progress) {
        match self {
            Event::Begin(d, b) => p.begin(&d, b),
            Event::Advance(d, b, r) => p.advance(&d, b, r),
            Event::Finish(d) => p.finish(&d),
        }
    }
}

struct Relay(mpsc::UnboundedSender<Event>);

impl Progress for Relay {
    fn begin(&self, database: &str, estimated_bytes: u64) {
        let _ = self.0.send(Event::Begin(database.into(), estimated_bytes));
    }
    fn advance(&self, database: &str, bytes: u64, rows: u64) {
        let _ = self.0.send(Event::Advance(database.into(), bytes, rows));
    }
    fn finish(&self, database: &str) {
        let _ = self.0.send(Event::Finish(database.into()));
    }
}

async fn run(
    target: &DbTarget,
    databases: &[String],
    out_dir: &Path,
    opts: &DumpOptions,
    progress: Arc<dyn Progress>,
) -> Result<Vec<DumpArtifact>, DumpError> {
    let paths: Vec<PathBuf> = databases
        .iter()
        .map(|d| dump_path(out_dir, d, opts.compression))
        .collect();
    if !opts.overwrite
        && let Some(p) = paths.iter().find(|p| p.exists())
    {
        return Err(DumpError::AlreadyExists { path: p.clone() });
    }
    if opts.jobs <= 1 {
        return simple(target, databases, &paths, opts, progress).await;
    }
    let label = databases.join(", ");
    let mut coord = connect(target).await?;
    facts::session_setup(&mut coord).await?;
    let server_version = native::server_version(&mut coord).await?;
    for attempt in 1..=SYNC_ATTEMPTS {
        let mut listed = Vec::with_capacity(databases.len());
        let mut sizes = Vec::new();
        for db in databases {
            let schema = facts::list_dumped(&mut coord, db, opts).await?;
            listed.push(
                schema
                    .base_tables()
                    .map(|t| t.name.clone())
                    .collect::<Vec<_>>(),
            );
            sizes.extend(schema.base_tables().map(|t| worth_splitting(t, opts)));
        }
        let total: u64 = sizes.iter().map(|(bytes, _)| bytes).sum();
        // A table read in key ranges gives work to more connections than there are tables.
        let workers = if sizes
            .iter()
            .any(|&(bytes, split)| split && bytes > total / opts.jobs as u64)
        {
            opts.jobs
        } else {
            opts.jobs.min(listed.iter().map(Vec::len).sum())
        };
        if workers <= 1 {
            coord.disconnect().await.ok();
            return simple(target, databases, &paths, opts, progress).await;
        }
        let conns = match synchronize(
            &mut coord,
            target,
            databases,
            &listed,
            workers,
            &label,
            native::wire_use(opts),
        )
        .await
        {
            Ok(conns) => conns,
            // A listed table was dropped before the lock: list again.
            Err(Sync::Refused(mysql_async::Error::Server(e)))
                if e.code == ER_NO_SUCH_TABLE && attempt < SYNC_ATTEMPTS =>
            {
                tracing::debug!(attempt, error = %e.message, "a table went away before the lock; again");
                continue;
            }
            Err(Sync::Refused(e)) => {
                tracing::info!(
                    databases = %label,
                    error = %e,
                    "LOCK TABLES was refused, so the tables cannot share one snapshot: \
                     dumping each database over one connection in its own snapshot \
                     (databases in parallel)"
                );
                coord.disconnect().await.ok();
                return simple(target, databases, &paths, opts, progress).await;
            }
            Err(Sync::Failed(e)) => return Err(e),
        };
        // The schema the snapshots see, listed after they opened (as the one-connection path
        // does). A table created or dropped between the listing and the lock was not locked:
        // start again.
        let mut schemas = Vec::with_capacity(databases.len());
        for db in databases {
            schemas.push(facts::list_dumped(&mut coord, db, opts).await?);
        }
        let same = schemas
            .iter()
            .zip(&listed)
            .all(|(s, l)| s.base_tables().map(|t| &t.name).eq(l.iter()));
        if same {
            let splits = plan_splits(&mut coord, databases, &schemas, total, workers, opts).await?;
            coord.disconnect().await.ok();
            tracing::debug!(databases = %label, workers, "tables dumped in parallel in one snapshot");
            let plan = Plan {
                databases,
                paths: &paths,
                schemas,
                server_version,
                out_dir,
                splits,
            };
            return pool(target, plan, conns, opts, progress).await;
        }
        tracing::debug!(
            attempt,
            "the tables changed while the snapshot was taken; again"
        );
        for c in conns {
            c.disconnect().await;
        }
    }
    tracing::info!(
        databases = %label,
        "tables kept being created or dropped while the snapshot was taken: dumping each \
         database in its own snapshot"
    );
    coord.disconnect().await.ok();
    simple(target, databases, &paths, opts, progress).await
}

/// `table`'s estimated bytes, and whether it may be read in key ranges (see
/// [`ranges::splittable`]).
fn worth_splitting(table: &TableInfo, opts: &DumpOptions) -> (u64, bool) {
    (
        table.estimated_bytes,
        ranges::splittable(table, opts.split_table_bytes),
    )
}

/// The key ranges of the tables read in ranges: `(database, section, cut points)`. A
/// table is read in ranges when [`ranges::splittable`] and bigger than an even share of
/// all the tables' `total` bytes over the connections: smaller ones are read in parallel
/// with the others anyway, and ranges cost the spool files' copy (on the three bench
/// databases of shape a, whose largest tables are 277 MB of 1.1 GB, splitting them made the
/// dump slower). The MIN and MAX come from the coordinator, outside the snapshot: they only
/// balance the ranges, which cover every integer whatever they are, so no row can fall
/// outside.
async fn plan_splits(
    coord: &mut Conn,
    databases: &[String],
    schemas: &[Schema],
    total: u64,
    workers: usize,
    opts: &DumpOptions,
) -> Result<Vec<(usize, usize, Vec<i128>)>, DumpError> {
    let mut out = Vec::new();
    // The range files hold raw row packets: a compressed dump, whose owner asked for little
    // disk, would need up to the table's raw size in them while its rows are rendered and
    // compressed (the rule: spool files are compressed when the dump is). So a
    // compressed dump reads each table on one connection.
    if opts.compression != Compression::None {
        return Ok(out);
    }
    for (d, (db, schema)) in databases.iter().zip(schemas).enumerate() {
        for (i, t) in schema.base_tables().enumerate() {
            match worth_splitting(t, opts) {
                (bytes, true) if bytes > total / opts.jobs as u64 => {}
                _ => continue,
            }
            let Some(key) = ranges::int_key(t) else {
                continue;
            };
            let key = ident(key);
            let sql = format!(
                "SELECT CAST(MIN({key}) AS CHAR), CAST(MAX({key}) AS CHAR) FROM {}.{}",
                ident(db),
                ident(&t.name)
            );
            let got: Option<(Option<String>, Option<String>)> = coord
                .query_first(sql)
                .await
                .map_err(|e| query_err(db, "reading a primary key's range", e))?;
            let (Some(min), Some(max)) = got.unwrap_or_default() else {
                continue; // empty
            };
            let (Some(min), Some(max)) = (ranges::parse_key(&min), ranges::parse_key(&max)) else {
                tracing::debug!(database = %db, table = %t.name, "primary key range not integers: one read");
                continue;
            };
            let cuts = ranges::cuts(min, max, workers * ranges::RANGES_PER_JOB);
            if !cuts.is_empty() {
                tracing::debug!(database = %db, table = %t.name, ranges = cuts.len() + 1, "table read in key ranges");
                out.push((d, i, cuts));
            }
        }
    }
    Ok(out)
}

enum Sync {
    /// `LOCK TABLES` failed: fall back.
    Refused(mysql_async::Error),
    /// Anything else: the dump fails.
    Failed(DumpError),
}

/// Opens `workers` connections whose snapshots all see the same committed content of the
/// listed tables.
///
/// Why they agree: `LOCK TABLES t READ` is granted only when no other transaction holds a
/// write lock on `t` — a transaction that wrote to `t` keeps its metadata lock until it
/// commits or rolls back, so the lock waits for every transaction with uncommitted writes
/// to the tables to end — and while it is held, no statement can start writing to them.
/// So from the moment it is granted until `UNLOCK TABLES`, no transaction that touches
/// these tables commits, and the committed content of every locked table stays the same.
/// Each `START TRANSACTION WITH CONSISTENT SNAPSHOT` inside that window creates its read
/// view there, and a read view sees exactly what was committed when it was created: every
/// worker sees the same content of every dumped table, as one snapshot would. Writes to
/// tables that are not dumped may commit in between; they are not in the dump. The lock is
/// a metadata lock only (autocommit is on, so InnoDB takes no table lock); it waits at most
/// [`LOCK_WAIT_SECONDS`] and is held while the snapshots open, not while rows are read.
///
/// On a live server, a transaction that has written to one of the tables and then writes to
/// another while the lock is being acquired closes a metadata-lock cycle; the server rolls
/// that transaction back (error 1213, which applications retry), as the lighter of the two
/// (were the lock the victim, the dump would fall back). With OMS stopped, as during the
/// upgrade, nothing writes.
async fn synchronize(
    coord: &mut Conn,
    target: &DbTarget,
    databases: &[String],
    tables: &[Vec<String>],
    workers: usize,
    label: &str,
    wire: WireUse,
) -> Result<Vec<DumpConn>, Sync> {
    // Connect and set up first, so the lock covers only the snapshot statements.
    let opened =
        futures_util::future::join_all((0..workers).map(|_| open_worker(target, label, wire)))
            .await;
    let mut conns = Vec::with_capacity(workers);
    for c in opened {
        conns.push(c.map_err(Sync::Failed)?);
    }
    coord
        .query_drop(format!(
            "SET SESSION lock_wait_timeout = {LOCK_WAIT_SECONDS}"
        ))
        .await
        .map_err(|e| Sync::Failed(query_err(label, "setting lock_wait_timeout", e)))?;
    let list: Vec<String> = databases
        .iter()
        .zip(tables)
        .flat_map(|(db, ts)| {
            ts.iter()
                .map(move |t| format!("{}.{} READ", ident(db), ident(t)))
        })
        .collect();
    coord
        .query_drop(format!("LOCK TABLES {}", list.join(", ")))
        .await
        .map_err(Sync::Refused)?;
    let started = futures_util::future::join_all(
        conns
            .iter_mut()
            .map(|c| c.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")),
    )
    .await;
    let unlocked = coord.query_drop("UNLOCK TABLES").await;
    for r in started {
        r.map_err(|e| Sync::Failed(query_err(label, "starting the snapshot", e)))?;
    }
    unlocked.map_err(|e| Sync::Failed(query_err(label, "unlocking the tables", e)))?;
    Ok(conns)
}

async fn open_worker(target: &DbTarget, label: &str, wire: WireUse) -> Result<DumpConn, DumpError> {
    let mut conn = DumpConn::open(target, wire).await?;
    conn.query_drop(facts::SESSION_SQL)
        .await
        .map_err(|e| query_err("", "setting up the session", e))?;
    conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await
        .map_err(|e| query_err(label, "setting the isolation level", e))?;
    Ok(conn)
}

/// Today's path: one connection and snapshot per database, `opts.jobs` databases at once.
/// The first failure cancels the others (their partial files are removed).
async fn simple(
    target: &DbTarget,
    databases: &[String],
    paths: &[PathBuf],
    opts: &DumpOptions,
    progress: Arc<dyn Progress>,
) -> Result<Vec<DumpArtifact>, DumpError> {
    if let ([db], [path]) = (databases, paths) {
        return Ok(vec![
            native::dump(target, db, path, opts, &*progress).await?,
        ]);
    }
    let sem = Arc::new(tokio::sync::Semaphore::new(opts.jobs.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (db, path)) in databases.iter().zip(paths).enumerate() {
        let (target, db, path, opts, sem, progress) = (
            target.clone(),
            db.clone(),
            path.clone(),
            opts.clone(),
            sem.clone(),
            progress.clone(),
        );
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore never closed");
            (
                i,
                native::dump(&target, &db, &path, &opts, &*progress).await,
            )
        });
    }
    super::collect_in_order(tasks).await
}

/// What the pool dumps.
struct Plan<'a> {
    databases: &'a [String],
    paths: &'a [PathBuf],
    schemas: Vec<Schema>,
    server_version: String,
    out_dir: &'a Path,
    /// `(database, section, cut points)` of the tables read in key ranges.
    splits: Vec<(usize, usize, Vec<i128>)>,
}

/// One database as the workers see it.
struct Db {
    name: String,
    schema: Schema,
    /// Base tables, in file order.
    tables: Vec<TableInfo>,
    /// Its writer thread.
    tx: mpsc::Sender<Msg>,
}

/// Shared by the workers of one pool.
struct Shared {
    dbs: Vec<Db>,
    sched: Mutex<Sched<SpoolFile, Handoff>>,
    /// Per database and section: the key ranges when the table is read in ranges.
    splits: Vec<Vec<Option<Arc<Split>>>>,
    facts: Mutex<Vec<Vec<Option<TableFact>>>>,
    opts: DumpOptions,
    out_dir: PathBuf,
    progress: Arc<dyn Progress>,
    /// Cloned into every spool file; the pool waits until every clone is gone.
    alive: mpsc::Sender<()>,
}

/// A worker's failure; the database is set when the error is [`DumpError::WriterGone`]
/// from that database's writer, whose own error is then the one to report.
type Failure = (Option<usize>, DumpError);

fn tag(db: usize, e: DumpError) -> Failure {
    match e {
        DumpError::WriterGone => (Some(db), e),
        e => (None, e),
    }
}

async fn pool(
    target: &DbTarget,
    plan: Plan<'_>,
    conns: Vec<DumpConn>,
    opts: &DumpOptions,
    progress: Arc<dyn Progress>,
) -> Result<Vec<DumpArtifact>, DumpError> {
    // Every writer is created (and its header written) before anything runs: a refusal
    // (an existing file) drops the ones before it, which removes their `.part` files.
    let mut part_writers = Vec::with_capacity(plan.databases.len());
    for (db, path) in plan.databases.iter().zip(plan.paths) {
        remove_stale_spools(plan.out_dir, db);
        let mut w = PartWriter::create(path, opts.compression, opts.overwrite)?;
        w.write_all(&native::header(db, &plan.server_version))?;
        part_writers.push(w);
    }
    // The artifacts as far as the schema tells; file facts and table facts come at the end.
    let mut artifacts: Vec<DumpArtifact> = plan
        .databases
        .iter()
        .zip(&plan.schemas)
        .map(|(db, schema)| DumpArtifact {
            database: db.clone(),
            file: PathBuf::new(),
            size_bytes: 0,
            blake3_hex: String::new(),
            format: Dumper::Native,
            compression: opts.compression,
            charset: schema.charset.clone(),
            collation: schema.collation.clone(),
            tables: Vec::new(),
            views: schema.views().map(|v| v.name.clone()).collect(),
            skipped_triggers: schema.triggers.clone(),
            server_version: plan.server_version.clone(),
        })
        .collect();
    let ids: Vec<u32> = conns.iter().map(|c| c.id()).collect();
    let (alive, mut all_gone) = mpsc::channel::<()>(1);
    let mut handles = Vec::with_capacity(plan.databases.len());
    let mut dbs = Vec::with_capacity(plan.databases.len());
    let mut sched = Sched::default();
    for ((w, name), schema) in part_writers
        .into_iter()
        .zip(plan.databases)
        .zip(plan.schemas)
    {
        let (tx, handle) = writer::spawn(w);
        handles.push(handle);
        let tables: Vec<TableInfo> = schema.base_tables().cloned().collect();
        progress.begin(name, schema.tables.iter().map(|t| t.estimated_bytes).sum());
        sched.add(tables.iter().map(|t| t.estimated_bytes).collect());
        dbs.push(Db {
            name: name.clone(),
            schema,
            tables,
            tx,
        });
    }
    let mut splits: Vec<Vec<Option<Arc<Split>>>> =
        dbs.iter().map(|d| vec![None; d.tables.len()]).collect();
    // Ranges are read and followed as the wire client's row packets: only when every
    // connection is the wire client (mysql_async serves TLS and other auth plugins).
    let all_wire = conns.iter().all(|c| matches!(c, DumpConn::Wire(_)));
    for (d, i, cuts) in plan.splits.into_iter().filter(|_| all_wire) {
        let (db, alive) = (&dbs[d], alive.clone());
        splits[d][i] =
            Split::new(&db.name, &db.tables[i], i, cuts, plan.out_dir, alive).map(Arc::new);
    }
    let shared = Arc::new(Shared {
        splits,
        facts: Mutex::new(dbs.iter().map(|d| vec![None; d.tables.len()]).collect()),
        dbs,
        sched: Mutex::new(sched),
        opts: opts.clone(),
        out_dir: plan.out_dir.to_path_buf(),
        progress: progress.clone(),
        alive,
    });

    let mut tasks = tokio::task::JoinSet::new();
    for conn in conns {
        tasks.spawn(worker(shared.clone(), conn));
    }
    let mut failure: Option<Failure> = None;
    while let Some(joined) = tasks.join_next().await {
        let f = match joined {
            Ok(Ok(())) => continue,
            Ok(Err(f)) => f,
            Err(e) if e.is_cancelled() => continue,
            Err(e) => (
                None,
                DumpError::Internal {
                    what: format!("dump worker failed: {e}"),
                },
            ),
        };
        if failure.is_none() {
            failure = Some(f);
            tasks.abort_all();
        }
    }
    if failure.is_some() {
        kill_connections(target, &ids).await;
    }
    let facts = std::mem::take(&mut *shared.facts.lock().expect("facts lock"));
    let all_finished = shared.sched().all_finished();
    // The last reference: closing the writers' channels makes an unfinished writer discard
    // its `.part` file, and dropping the scheduler removes spool files not yet handed over.
    drop(shared);
    let mut written = Vec::with_capacity(handles.len());
    for h in handles {
        written.push(Some(writer::join(h).await));
    }
    // Every spool file holds a clone of `alive`: once none is left, no spool file exists.
    let _ = all_gone.recv().await;
    for db in plan.databases {
        progress.finish(db);
    }
    if let Some((db, e)) = failure {
        // A writer's own error (a full disk) explains the `WriterGone` its producer saw.
        return Err(match (db, e) {
            (Some(d), DumpError::WriterGone) => match written[d].take() {
                Some(Err(w)) => w,
                _ => DumpError::WriterGone,
            },
            (_, e) => e,
        });
    }
    if !all_finished {
        return Err(DumpError::Internal {
            what: "the parallel dump ended with sections not written".into(),
        });
    }
    for ((a, w), facts) in artifacts.iter_mut().zip(written).zip(facts) {
        let w = w.expect("taken only on failure")?;
        a.file = w.path;
        a.size_bytes = w.size_bytes;
        a.blake3_hex = w.blake3_hex;
        a.tables = facts
            .into_iter()
            .collect::<Option<Vec<TableFact>>>()
            .ok_or_else(|| DumpError::Internal {
                what: format!("a table of `{}` has no facts", a.database),
            })?;
    }
    Ok(artifacts)
}

/// Removes spool files a crashed run left for `database` (they are hidden, and would
/// otherwise only take space).
fn remove_stale_spools(dir: &Path, database: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if SpoolFile::is_spool_of(&e.file_name().to_string_lossy(), database) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// After a failure the cancelled workers' connections would drain their result sets in
/// the background (that is what dropping a busy connection does); killing them stops the
/// server's work at once. Best effort: the server may be the thing that failed.
async fn kill_connections(target: &DbTarget, ids: &[u32]) {
    let kill = async {
        let mut conn = connect(target).await.ok()?;
        for id in ids {
            let _ = conn.query_drop(format!("KILL CONNECTION {id}")).await;
        }
        conn.disconnect().await.ok()
    };
    let _ = tokio::time::timeout(KILL_TIMEOUT, kill).await;
}

impl Shared {
    fn sched(&self) -> MutexGuard<'_, Sched<SpoolFile, Handoff>> {
        self.sched.lock().expect("scheduler lock")
    }

    /// Streams table `index` of `db` straight into its writer (the caller owns the file).
    async fn stream(&self, conn: &mut DumpConn, db: usize, index: usize) -> Result<(), Failure> {
        let d = &self.dbs[db];
        let started = std::time::Instant::now();
        let fact = native::table_section(
            conn,
            &d.name,
            &d.tables[index],
            self.splits[db][index].as_deref(),
            &self.opts,
            &*self.progress,
            &d.tx,
        )
        .await
        .map_err(|e| tag(db, e))?;
        tracing::trace!(database = %d.name, table = %d.tables[index].name, rows = fact.rows, ms = started.elapsed().as_millis() as u64, "table streamed into the file");
        self.facts.lock().expect("facts lock")[db][index] = Some(fact);
        self.sched().streamed(db, index);
        Ok(())
    }

    /// Writes table `index` of `db` to its spool file. True when the caller now owns the
    /// database's file: the section became the one the file needs next, while it was being
    /// written (then it went on straight into the file) or once it was complete.
    async fn spool(
        &self,
        conn: &mut DumpConn,
        db: usize,
        index: usize,
        handoff: Handoff,
    ) -> Result<bool, Failure> {
        let d = &self.dbs[db];
        let started = std::time::Instant::now();
        let path = SpoolFile::path_for(&self.out_dir, &d.name, index);
        let (tx, handle) =
            writer::spawn_spool(path, self.alive.clone(), handoff, self.opts.compression)
                .map_err(|e| (None, e))?;
        let r = native::table_section(
            conn,
            &d.name,
            &d.tables[index],
            self.splits[db][index].as_deref(),
            &self.opts,
            &*self.progress,
            &tx,
        )
        .await;
        let r = match r {
            Ok(fact) => tx
                .send(Msg::Commit(Vec::new()))
                .await
                .map(|_| fact)
                .map_err(|_| DumpError::WriterGone),
            Err(e) => Err(e),
        };
        drop(tx);
        let fact = match r {
            Ok(fact) => fact,
            // The spool thread stopped on its own error (a full disk, or the database's
            // writer gone after the hand-over): that error explains this one.
            Err(DumpError::WriterGone) => {
                let e = writer::join_spool(handle)
                    .await
                    .err()
                    .unwrap_or(DumpError::WriterGone);
                return Err(tag(db, e));
            }
            // The closed channel makes the spool thread remove the file.
            Err(e) => return Err((None, e)),
        };
        let spooled = writer::join_spool(handle).await.map_err(|e| tag(db, e))?;
        tracing::trace!(database = %d.name, table = %d.tables[index].name, rows = fact.rows, ms = started.elapsed().as_millis() as u64, forwarded = matches!(spooled, Spooled::Forwarded), "table spooled");
        self.facts.lock().expect("facts lock")[db][index] = Some(fact);
        Ok(match spooled {
            Spooled::File(file) => self.sched().spooled(db, index, file),
            Spooled::Forwarded => {
                self.sched().streamed(db, index);
                true
            }
        })
    }

    /// The caller owns `db`'s file: hands over the spooled sections that are next, streams
    /// the next one itself when nobody claimed it, finishes the file after the last table,
    /// and passes the file on when the next section is still being spooled by another
    /// worker (whose spool thread then forwards to the writer).
    async fn own(&self, conn: &mut DumpConn, db: usize) -> Result<(), Failure> {
        loop {
            let step = self.sched().owner_step(db);
            match step {
                Step::Append(spool) => self.dbs[db]
                    .tx
                    .send(Msg::Append(spool))
                    .await
                    .map_err(|_| (Some(db), DumpError::WriterGone))?,
                Step::Stream(index) => self.stream(conn, db, index).await?,
                Step::Finish => return self.finish(conn, db).await,
                Step::Promote(handoff) => {
                    *handoff.lock().expect("handoff lock") = Some(self.dbs[db].tx.clone());
                    return Ok(());
                }
                Step::Release => return Ok(()),
            }
        }
    }

    /// With no table left to claim, reads key ranges of the tables read in ranges until
    /// none is left unclaimed (only over the wire client, whose row packets the spool
    /// files hold).
    async fn help(&self, conn: &mut DumpConn) -> Result<(), Failure> {
        let DumpConn::Wire(conn) = conn else {
            return Ok(());
        };
        for split in self.splits.iter().flatten().flatten() {
            while let Some(ahead) = split.claim().map_err(|e| (None, e))? {
                ranges::read_ahead(conn, split, ahead)
                    .await
                    .map_err(|e| (None, e))?;
            }
        }
        Ok(())
    }

    /// Views, tail and commit of `db`, after its last table.
    async fn finish(&self, conn: &mut DumpConn, db: usize) -> Result<(), Failure> {
        let d = &self.dbs[db];
        native::finish_file(conn, &d.name, &d.schema, &d.tx)
            .await
            .map_err(|e| tag(db, e))
    }
}

/// One worker connection, inside the shared snapshot, until no work is left.
async fn worker(shared: Arc<Shared>, mut conn: DumpConn) -> Result<(), Failure> {
    loop {
        let work = shared.sched().claim(Handoff::default);
        match work {
            None => {
                shared.help(&mut conn).await?;
                break;
            }
            Some(Work::Stream { db, index }) => {
                shared.stream(&mut conn, db, index).await?;
                shared.own(&mut conn, db).await?;
            }
            Some(Work::Spool { db, index, handoff }) => {
                if shared.spool(&mut conn, db, index, handoff).await? {
                    shared.own(&mut conn, db).await?;
                }
            }
            Some(Work::Finish { db }) => shared.finish(&mut conn, db).await?,
        }
    }
    conn.query_drop("COMMIT").await.ok();
    conn.disconnect().await;
    Ok(())
}

/// What a free worker does next.
#[derive(Debug, PartialEq, Eq)]
enum Work<H> {
    /// Stream the table straight into its database's file (it is the head; the worker owns
    /// the file until it passes it on).
    Stream { db: usize, index: usize },
    /// Spool the table until its turn; `handoff` is where its turn is announced.
    Spool { db: usize, index: usize, handoff: H },
    /// Write the views and tail of a database without base tables.
    Finish { db: usize },
}

/// What the owner of a database's file does next.
#[derive(Debug)]
enum Step<S, H> {
    /// Hand this spooled section to the writer.
    Append(S),
    /// Stream this unclaimed section (the next one) itself.
    Stream(usize),
    /// The next section is being spooled: announce its turn through this handoff; its
    /// worker owns the file from now on.
    Promote(H),
    /// Every table is in: write the views and the tail, and commit.
    Finish,
    /// Nothing to do (a state that should not occur).
    Release,
}

#[derive(Debug)]
enum Section<S, H> {
    Unclaimed,
    /// Being streamed into the file by its owner.
    Streaming,
    /// Being written to a spool file.
    Spooling(H),
    /// Being written to a spool file, and already the file's next section: its worker owns
    /// the file (its spool thread forwards to the writer, or it appends the complete file).
    Promoted,
    /// In its spool file, waiting for its turn.
    Spooled(S),
    /// In the writer's hands.
    Done,
}

/// Which section of which database is where, and who owns each file. Pure bookkeeping
/// (generic over the spool file and the handoff, for the unit tests); every call is one
/// short critical section.
///
/// A database's file has at most one owner at a time (`busy`): first the worker that
/// streams its first section, then whoever completes the section the file needs next.
/// The owner appends the sections that are ready, streams an unclaimed next section
/// itself, or passes ownership to the worker spooling the next section.
#[derive(Debug)]
struct Sched<S, H> {
    dbs: Vec<DbSched<S, H>>,
}

impl<S, H> Default for Sched<S, H> {
    fn default() -> Self {
        Sched { dbs: Vec::new() }
    }
}

#[derive(Debug)]
struct DbSched<S, H> {
    sections: Vec<Section<S, H>>,
    sizes: Vec<u64>,
    /// The next section the file needs.
    head: usize,
    /// Somebody owns the file.
    busy: bool,
    /// The views and tail were taken on.
    finished: bool,
    /// Estimated bytes of the unclaimed sections.
    remaining: u64,
}

impl<S, H: Clone> Sched<S, H> {
    fn add(&mut self, sizes: Vec<u64>) {
        self.dbs.push(DbSched {
            sections: sizes.iter().map(|_| Section::Unclaimed).collect(),
            remaining: sizes.iter().sum(),
            sizes,
            head: 0,
            busy: false,
            finished: false,
        });
    }

    /// The next work for a free worker: a database's head if nobody owns its file (the
    /// database with most bytes left first), otherwise the largest unclaimed table.
    fn claim(&mut self, handoff: impl FnOnce() -> H) -> Option<Work<H>> {
        let mut head: Option<(u64, usize)> = None;
        for (d, s) in self.dbs.iter_mut().enumerate() {
            if s.busy {
                continue;
            }
            if s.head == s.sections.len() {
                if !s.finished {
                    // A database without base tables: only the views and tail to write.
                    s.busy = true;
                    s.finished = true;
                    return Some(Work::Finish { db: d });
                }
                continue;
            }
            if matches!(s.sections[s.head], Section::Unclaimed)
                && head.is_none_or(|(best, _)| s.remaining > best)
            {
                head = Some((s.remaining, d));
            }
        }
        if let Some((_, d)) = head {
            let s = &mut self.dbs[d];
            let index = s.head;
            s.sections[index] = Section::Streaming;
            s.remaining -= s.sizes[index];
            s.busy = true;
            return Some(Work::Stream { db: d, index });
        }
        let mut largest: Option<(u64, usize, usize)> = None;
        for (d, s) in self.dbs.iter().enumerate() {
            for (i, sec) in s.sections.iter().enumerate().skip(s.head) {
                if matches!(sec, Section::Unclaimed)
                    && largest.is_none_or(|(best, _, _)| s.sizes[i] > best)
                {
                    largest = Some((s.sizes[i], d, i));
                }
            }
        }
        let (_, d, index) = largest?;
        let s = &mut self.dbs[d];
        let handoff = handoff();
        s.sections[index] = Section::Spooling(handoff.clone());
        s.remaining -= s.sizes[index];
        Some(Work::Spool {
            db: d,
            index,
            handoff,
        })
    }

    /// Section `index` (the head) went into the file: streamed by the owner, or forwarded
    /// by its spool thread after the hand-over. The caller owns the file.
    fn streamed(&mut self, db: usize, index: usize) {
        let s = &mut self.dbs[db];
        debug_assert!(s.busy && s.head == index);
        s.sections[index] = Section::Done;
        s.head = index + 1;
    }

    /// Section `index` is complete in its spool file. True when the caller now owns the
    /// file (the section's turn came while it was written, or it is the head and nobody
    /// owns the file).
    fn spooled(&mut self, db: usize, index: usize, spool: S) -> bool {
        let s = &mut self.dbs[db];
        let promoted = matches!(s.sections[index], Section::Promoted);
        s.sections[index] = Section::Spooled(spool);
        if promoted {
            return true;
        }
        if s.head == index && !s.busy {
            s.busy = true;
            return true;
        }
        false
    }

    /// The owner's next step.
    fn owner_step(&mut self, db: usize) -> Step<S, H> {
        let s = &mut self.dbs[db];
        debug_assert!(s.busy);
        if s.head == s.sections.len() {
            s.finished = true;
            return Step::Finish;
        }
        let h = s.head;
        match std::mem::replace(&mut s.sections[h], Section::Done) {
            Section::Spooled(spool) => {
                s.head += 1;
                Step::Append(spool)
            }
            Section::Unclaimed => {
                s.sections[h] = Section::Streaming;
                s.remaining -= s.sizes[h];
                Step::Stream(h)
            }
            Section::Spooling(handoff) => {
                s.sections[h] = Section::Promoted;
                Step::Promote(handoff)
            }
            // Streaming, Promoted or Done: only the owner puts a head in these states, so
            // they cannot be found here; leave them as they are.
            other => {
                s.sections[h] = other;
                Step::Release
            }
        }
    }

    /// Every database's tables are handed over and its tail taken on.
    fn all_finished(&self) -> bool {
        self.dbs
            .iter()
            .all(|s| s.finished && s.head == s.sections.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny deterministic generator, so the simulation needs no dependency.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 33) as usize) % n
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Mode {
        Streaming,
        Spooling,
        /// Spooling, then handed over: its bytes are going into the file.
        Forwarding,
    }

    /// A simulated file: the sections it received, in order, and whether its tail came.
    #[derive(Default, Clone)]
    struct File {
        sections: Vec<usize>,
        finished: bool,
    }

    /// Runs `workers` simulated workers over databases of the given table sizes, finishing
    /// their work in a random order (and the spool threads noticing a hand-over or not),
    /// and checks that every file receives its sections exactly once and in order, then
    /// its tail, whatever the timing.
    fn simulate(sizes: &[Vec<u64>], workers: usize, seed: u64) {
        // The handoff is the section it belongs to.
        let mut sched: Sched<(usize, usize), (usize, usize)> = Sched::default();
        for s in sizes {
            sched.add(s.clone());
        }
        let mut files = vec![File::default(); sizes.len()];
        let mut state: Vec<Option<(usize, usize, Mode)>> = vec![None; workers];
        let mut rng = Lcg(seed);

        /// The owner loop, as `Shared::own` runs it; returns a section the owner streams.
        fn own(
            sched: &mut Sched<(usize, usize), (usize, usize)>,
            db: usize,
            files: &mut [File],
            state: &mut [Option<(usize, usize, Mode)>],
            rng: &mut Lcg,
        ) -> Option<(usize, usize, Mode)> {
            loop {
                match sched.owner_step(db) {
                    Step::Append((d, i)) => {
                        assert_eq!(d, db);
                        files[db].sections.push(i);
                    }
                    Step::Stream(i) => return Some((db, i, Mode::Streaming)),
                    Step::Promote((d, i)) => {
                        // The spool thread notices at its next chunk, or misses it because
                        // it has just finished.
                        let w = state
                            .iter()
                            .position(|w| *w == Some((d, i, Mode::Spooling)))
                            .expect("a promoted section is being spooled");
                        if rng.next(2) == 0 {
                            files[d].sections.push(i);
                            state[w] = Some((d, i, Mode::Forwarding));
                        }
                        return None;
                    }
                    Step::Finish => {
                        assert!(!files[db].finished);
                        files[db].finished = true;
                        return None;
                    }
                    Step::Release => panic!("the owner found nothing to do"),
                }
            }
        }

        loop {
            // Idle workers claim.
            for slot in state.iter_mut() {
                while slot.is_none() {
                    match sched.claim(|| (0, 0)) {
                        Some(Work::Stream { db, index }) => {
                            *slot = Some((db, index, Mode::Streaming));
                        }
                        Some(Work::Spool { db, index, .. }) => {
                            // The handoff names its section.
                            if let Section::Spooling(h) = &mut sched.dbs[db].sections[index] {
                                *h = (db, index);
                            }
                            *slot = Some((db, index, Mode::Spooling));
                        }
                        Some(Work::Finish { db }) => {
                            assert!(!files[db].finished);
                            files[db].finished = true;
                        }
                        None => break,
                    }
                }
            }
            let busy: Vec<usize> = (0..workers).filter(|&w| state[w].is_some()).collect();
            if busy.is_empty() {
                break;
            }
            // One of them finishes its section.
            let w = busy[rng.next(busy.len())];
            let (db, index, mode) = state[w].take().unwrap();
            let owns = match mode {
                Mode::Streaming => {
                    files[db].sections.push(index);
                    sched.streamed(db, index);
                    true
                }
                Mode::Forwarding => {
                    sched.streamed(db, index);
                    true
                }
                Mode::Spooling => sched.spooled(db, index, (db, index)),
            };
            if owns {
                state[w] = own(&mut sched, db, &mut files, &mut state, &mut rng);
            }
        }
        for (d, s) in sizes.iter().enumerate() {
            assert_eq!(
                files[d].sections,
                (0..s.len()).collect::<Vec<_>>(),
                "db {d}"
            );
            assert!(files[d].finished, "db {d} has its tail");
        }
        assert!(sched.all_finished());
    }

    #[test]
    fn every_file_gets_its_sections_once_and_in_order() {
        let shapes: Vec<Vec<Vec<u64>>> = vec![
            vec![vec![10, 500, 20, 300, 1, 1, 900]],
            vec![vec![5; 12], vec![], vec![100, 1], vec![7]],
            vec![vec![291, 139, 2, 93], vec![291, 174], vec![174, 0]],
            vec![vec![0, 0, 0]],
        ];
        for (k, shape) in shapes.iter().enumerate() {
            for workers in 1..=5 {
                for seed in 0..300 {
                    simulate(shape, workers, seed * 31 + k as u64);
                }
            }
        }
    }

    #[test]
    fn free_workers_take_heads_first_then_the_largest_table() {
        let mut s: Sched<(), ()> = Sched::default();
        s.add(vec![10, 500, 20]);
        s.add(vec![1, 2]);
        s.add(vec![]);
        // A database without tables only needs its tail; then the database with most bytes
        // left gets its head streamed first.
        assert_eq!(s.claim(|| ()), Some(Work::Finish { db: 2 }));
        assert_eq!(s.claim(|| ()), Some(Work::Stream { db: 0, index: 0 }));
        assert_eq!(s.claim(|| ()), Some(Work::Stream { db: 1, index: 0 }));
        // No free head left: the largest unclaimed table, spooled.
        let spool = |db, index| {
            Some(Work::Spool {
                db,
                index,
                handoff: (),
            })
        };
        assert_eq!(s.claim(|| ()), spool(0, 1));
        assert_eq!(s.claim(|| ()), spool(0, 2));
        assert_eq!(s.claim(|| ()), spool(1, 1));
        assert_eq!(s.claim(|| ()), None);
        // The owner of db 0 finishes its head: the next section is being spooled, so the
        // file passes to its worker.
        s.streamed(0, 0);
        assert!(matches!(s.owner_step(0), Step::Promote(())));
        // That worker's spool thread missed the hand-over: it appends the complete file.
        assert!(s.spooled(0, 1, ()));
        assert!(matches!(s.owner_step(0), Step::Append(())));
        // Section 2 is still being spooled: handed over again.
        assert!(matches!(s.owner_step(0), Step::Promote(())));
        s.streamed(0, 2);
        assert!(matches!(s.owner_step(0), Step::Finish));
    }
}
