//! The row-hash check that trails a split section's load (issue 16, restore of one big table).
//!
//! Restore proves a table by recomputing its fact: with [`ChecksumMethod::Blake3Rows`] that is
//! one ordered scan of every row after the load. For a 1 GB table of wide rows that scan took
//! as long as the load itself, and it read the rows back from disk (they had long left a
//! 128 MB buffer pool). Here the scan runs beside the load instead, on its own connection,
//! hashing each primary-key range as soon as every statement below it is in, while those
//! rows are still in the buffer pool.
//!
//! Why a range is final: the native dumper writes a table's rows in primary-key order, so
//! once statements `0..=k` of a section have all succeeded (whatever connection ran them, in
//! whatever order), the first `rows(0..=k)` rows of the table in key order are exactly theirs
//! and no later statement adds a row below them. [`Trail`] keeps that watermark from the
//! statements' sequence numbers and the server's count of rows each one inserted. The trailing
//! scan reads `WHERE pk > last ORDER BY pk LIMIT n` up to it, each read a statement of its own
//! (autocommit), so it sees exactly the committed rows.
//!
//! What keeps it honest: the trailing result is used only when it equals the recorded fact
//! AND every row the statements inserted was hashed. Anything else (a file not in key order,
//! a read that found fewer rows than the watermark, a failed connection, a key that is not
//! one integer column) falls back to the full scan after the load, which decides as before.
//! So the trail can make a restore faster, never make a wrong one pass or a right one fail.
//!
//! Must never: write to the server, or put a value it did not validate into SQL (the last
//! key is spliced only after it parsed as an integer).

use std::collections::BTreeMap;

use mysql_async::prelude::Queryable;

use super::artifact::{ChecksumMethod, TableFact};
use super::facts::{self, RowHasher, TableInfo};
use super::ranges;
use super::sqlvalue::ident;
use super::wire::{DumpConn, WireUse};
use super::{DumpError, connect, query_err};
use crate::dbconn::DbTarget;

/// Where the rows of a split section stand: which statements succeeded, and how many rows
/// the contiguous run of them from the first one inserted. Pure bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct Watermark {
    /// Statements `0..next` all succeeded.
    next: u64,
    /// Rows inserted by statements `0..next`.
    rows: u64,
    /// Succeeded statements past a gap: sequence number -> rows inserted.
    ahead: BTreeMap<u64, u64>,
    /// Rows inserted by every statement that succeeded, gap or not.
    total: u64,
    /// No statement will succeed any more (all done, or the load stopped).
    ended: bool,
    /// The load stopped before every statement succeeded: nothing to check.
    abandoned: bool,
}

impl Watermark {
    /// Statement `seq` (0 = the first INSERT, run before the split) inserted `rows`.
    pub(crate) fn done(&mut self, seq: u64, rows: u64) {
        self.total += rows;
        self.ahead.insert(seq, rows);
        while let Some(r) = self.ahead.remove(&self.next) {
            self.rows += r;
            self.next += 1;
        }
    }

    /// Rows known to be final, in primary-key order from the first.
    pub(crate) fn rows(&self) -> u64 {
        self.rows
    }

    /// Rows inserted by every statement that succeeded.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Every statement succeeded.
    pub(crate) fn end(&mut self) {
        self.ended = true;
    }

    /// The load stopped early (a no-op once it ended).
    pub(crate) fn abandon(&mut self) {
        if !self.ended {
            self.ended = true;
            self.abandoned = true;
        }
    }

    pub(crate) fn ended(&self) -> bool {
        self.ended
    }
}

/// A [`Watermark`] shared by the connections of a split section and its trailing check.
#[derive(Debug, Default)]
pub(crate) struct Trail {
    mark: std::sync::Mutex<Watermark>,
    moved: tokio::sync::Notify,
    /// The check read a range, or stopped: for the test seam that holds the load back until
    /// then ([`Trail::first_range`]; woken through `moved`).
    ranged: std::sync::atomic::AtomicBool,
}

impl Trail {
    /// Statement `seq` succeeded and inserted `rows`.
    pub(crate) fn done(&self, seq: u64, rows: u64) {
        self.mark.lock().expect("trail").done(seq, rows);
        self.moved.notify_waiters();
    }

    /// Every statement succeeded: the trailing check catches up and stops.
    pub(crate) fn end(&self) {
        self.mark.lock().expect("trail").end();
        self.moved.notify_waiters();
    }

    /// The load stopped early: the trailing check stops without reading further.
    pub(crate) fn abandon(&self) {
        self.mark.lock().expect("trail").abandon();
        self.moved.notify_waiters();
    }

    /// Abandons the trail when dropped unless it ended, so a load that stops on any path
    /// never leaves the trailing check waiting.
    pub(crate) fn abandon_on_drop(&self) -> AbandonOnDrop<'_> {
        AbandonOnDrop(self)
    }

    /// Waits until the watermark is past `hashed` rows or the trail ended; returns the
    /// watermark and whether it ended, or `None` when it was abandoned.
    async fn wait_past(&self, hashed: u64) -> Option<(u64, bool)> {
        loop {
            // Registered before the read, so a move made after it wakes this one.
            let moved = self.moved.notified();
            {
                let m = self.mark.lock().expect("trail");
                if m.abandoned {
                    return None;
                }
                if m.rows() > hashed || m.ended() {
                    return Some((m.rows(), m.ended()));
                }
            }
            moved.await;
        }
    }

    fn total(&self) -> u64 {
        self.mark.lock().expect("trail").total()
    }

    /// The check read a range, or stopped.
    fn ranged(&self) {
        self.ranged.store(true, std::sync::atomic::Ordering::SeqCst);
        self.moved.notify_waiters();
    }

    /// Waits until the check read its first range or stopped. A test seam only: the tests
    /// hold a split load back with it, so a range is read before any later statement runs.
    #[cfg(feature = "failpoints")]
    pub(crate) async fn first_range(&self) {
        loop {
            let moved = self.moved.notified();
            if self.ranged.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            moved.await;
        }
    }
}

/// See [`Trail::abandon_on_drop`].
pub(crate) struct AbandonOnDrop<'a>(&'a Trail);

impl Drop for AbandonOnDrop<'_> {
    fn drop(&mut self) {
        self.0.abandon();
    }
}

/// Why the trailing check gave up (the full scan after the load decides instead).
#[derive(Debug)]
pub(crate) enum GaveUp {
    /// The load stopped before every statement succeeded.
    Abandoned,
    /// The table the leader created is not there.
    Missing,
    /// The recorded fact is not a BLAKE3 row hash (CHECKSUM TABLE is computed by the server).
    NotRowHash,
    /// The table has no primary key of one integer column to range over.
    NoIntegerKey,
    /// A read up to the watermark found fewer rows than the statements inserted (rows not
    /// in key order in the file), or a key value that is not an integer.
    OutOfOrder,
    /// The trailing result differs from the recorded fact, or missed rows the statements
    /// inserted.
    Differs,
    /// The trailing connection failed.
    Failed(DumpError),
}

impl std::fmt::Display for GaveUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GaveUp::Abandoned => f.write_str("the load stopped"),
            GaveUp::Missing => f.write_str("the table is not there"),
            GaveUp::NotRowHash => f.write_str("the recorded fact is not a BLAKE3 row hash"),
            GaveUp::NoIntegerKey => f.write_str("no primary key of one integer column"),
            GaveUp::OutOfOrder => f.write_str("the file's rows are not in primary-key order"),
            GaveUp::Differs => f.write_str("the rows hashed beside the load differ"),
            GaveUp::Failed(e) => write!(f, "{e}"),
        }
    }
}

/// The position of the primary key among `info`'s stored columns, if it is one column of an
/// integer type ([`ranges::int_key`], the dumper's own rule for reading a table in key
/// ranges): the only key whose last value can be spliced back into SQL as a number Rust
/// formatted, and compared exactly as the server orders it.
pub(crate) fn integer_key(info: &TableInfo) -> Option<usize> {
    let key = ranges::int_key(info)?;
    info.stored_columns().position(|c| c.name == key)
}

/// A key value as the text protocol sent it, if it is a plain integer ([`ranges::parse_key`]).
fn key_value(v: &[u8]) -> Option<i128> {
    ranges::parse_key(std::str::from_utf8(v).ok()?)
}

/// Hashes table `table` of `database` range by range behind `trail`, on its own connection,
/// until the trail ends; returns the fact when it equals `expected` and covers every row the
/// statements inserted. Never fails the restore: any problem is a [`GaveUp`].
pub(crate) async fn check(
    target: &DbTarget,
    database: &str,
    expected: &TableFact,
    trail: &Trail,
) -> Result<TableFact, GaveUp> {
    if expected.checksum_method != ChecksumMethod::Blake3Rows {
        return Err(GaveUp::NotRowHash);
    }
    let r = async {
        let info = key_of(target, database, &expected.name).await?;
        // The rows are read as the dumper reads them: with the wire client where it serves
        // the target (no per-value allocation, and no driver buffer pool growing with
        // 65 KB rows), else mysql_async; the hash is fed the same bytes either way.
        let mut conn = DumpConn::open(target, WireUse::Auto)
            .await
            .map_err(GaveUp::Failed)?;
        let r = hash_behind(&mut conn, database, &info, trail).await;
        conn.disconnect().await;
        r
    }
    .await;
    trail.ranged();
    let (rows, checksum) = r?;
    let fact = TableFact {
        name: expected.name.clone(),
        rows,
        checksum,
        checksum_method: ChecksumMethod::Blake3Rows,
    };
    if &fact != expected || rows != trail.total() {
        return Err(GaveUp::Differs);
    }
    Ok(fact)
}

/// Table `table`'s columns and key, read over a short connection of its own (typed reads
/// of information_schema need mysql_async), if its key can be ranged over.
async fn key_of(target: &DbTarget, database: &str, table: &str) -> Result<TableInfo, GaveUp> {
    let mut conn = connect(target).await.map_err(GaveUp::Failed)?;
    let info = async {
        facts::session_setup(&mut conn).await?;
        facts::table_info(&mut conn, database, table).await
    }
    .await;
    conn.disconnect().await.ok();
    // The leader created the table before the trail began.
    let info = info
        .map_err(GaveUp::Failed)?
        .filter(|i| !i.is_view)
        .ok_or(GaveUp::Missing)?;
    integer_key(&info).ok_or(GaveUp::NoIntegerKey)?;
    Ok(info)
}

async fn hash_behind(
    conn: &mut DumpConn,
    database: &str,
    info: &TableInfo,
    trail: &Trail,
) -> Result<(u64, String), GaveUp> {
    let q = |e| GaveUp::Failed(query_err(database, "hashing rows behind the load", e));
    conn.query_drop(facts::SESSION_SQL).await.map_err(q)?;
    let key = integer_key(info).ok_or(GaveUp::NoIntegerKey)?;
    let select = info.select_sql(database);
    let order = format!(" ORDER BY {}", ident(&info.primary_key[0]));
    let mut hasher = RowHasher::new(info);
    let mut hashed = 0u64;
    let mut last: Option<i128> = None;
    let mut reads = 0u64;
    let mut waited = std::time::Duration::ZERO;
    let mut reading = std::time::Duration::ZERO;
    loop {
        let t0 = std::time::Instant::now();
        let (mark, ended) = trail.wait_past(hashed).await.ok_or(GaveUp::Abandoned)?;
        waited += t0.elapsed();
        reads += 1;
        let t1 = std::time::Instant::now();
        // Once the load ended, one last read without a limit: rows past the watermark (there
        // should be none) are hashed too, so they make the result differ instead of hiding.
        let limit = (!ended).then(|| mark - hashed);
        let mut sql = select.clone();
        if let Some(l) = &last {
            sql.push_str(&format!(" WHERE {} > {l}", ident(&info.primary_key[0])));
        }
        sql.push_str(&order);
        if let Some(n) = limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        let read = read_range(conn, database, &sql, key, &mut hasher, &mut last)
            .await?
            .ok_or(GaveUp::OutOfOrder)?;
        hashed += read;
        reading += t1.elapsed();
        trail.ranged();
        if let Some(n) = limit
            && read < n
        {
            return Err(GaveUp::OutOfOrder);
        }
        if ended {
            tracing::debug!(
                database,
                table = info.name.as_str(),
                reads,
                rows = hashed,
                waited_ms = waited.as_millis() as u64,
                reading_ms = reading.as_millis() as u64,
                "rows hashed beside the load"
            );
            return Ok(hasher.finish());
        }
    }
}

/// Runs `sql` and hashes its rows in order, keeping the last key in `last`. Returns the
/// rows read, or `None` when a key is not an integer.
async fn read_range(
    conn: &mut DumpConn,
    database: &str,
    sql: &str,
    key: usize,
    hasher: &mut RowHasher,
    last: &mut Option<i128>,
) -> Result<Option<u64>, GaveUp> {
    let q = |e| GaveUp::Failed(query_err(database, "hashing rows behind the load", e));
    let mut read = 0u64;
    match conn {
        DumpConn::Async(c) => {
            let mut result = c.query_iter(sql).await.map_err(q)?;
            while let Some(row) = result.next().await.map_err(q)? {
                let value = match row.as_ref(key) {
                    Some(mysql_async::Value::Bytes(b)) => key_value(b),
                    _ => None,
                };
                let Some(value) = value else {
                    return Ok(None);
                };
                *last = Some(value);
                hasher.add(&row);
                read += 1;
            }
        }
        DumpConn::Wire(c) => {
            let n = c.query(sql).await.map_err(|e| q(e.into()))?.len();
            while let Some(row) = c.next_row().await.map_err(|e| q(e.into()))? {
                let Some(value) = row.get(key).and_then(key_value) else {
                    return Ok(None);
                };
                *last = Some(value);
                hasher.begin_row();
                for i in 0..n {
                    hasher.value(row.get(i));
                }
                hasher.end_row();
                read += 1;
            }
        }
    }
    Ok(Some(read))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dump::facts::ColumnInfo;

    #[test]
    fn the_watermark_moves_only_over_a_contiguous_run() {
        let mut m = Watermark::default();
        m.done(0, 10);
        assert_eq!((m.rows(), m.total()), (10, 10));
        // Statement 2 finished before 1: its rows are not final yet.
        m.done(2, 5);
        assert_eq!((m.rows(), m.total()), (10, 15));
        m.done(3, 7);
        assert_eq!(m.rows(), 10);
        m.done(1, 4);
        assert_eq!((m.rows(), m.total()), (26, 26));
        assert!(!m.ended());
        m.end();
        assert!(m.ended() && !m.abandoned);
        // Abandoning after the end changes nothing: the check still finishes.
        m.abandon();
        assert!(!m.abandoned);
        let mut early = Watermark::default();
        early.abandon();
        assert!(early.ended() && early.abandoned);
    }

    proptest::proptest! {
        /// Whatever order the statements finish in, the watermark only ever covers the
        /// contiguous run from the first statement, and covers every row once all are in.
        #[test]
        fn the_watermark_is_the_contiguous_prefix(
            rows in proptest::collection::vec(0u64..50, 1..40),
            order in proptest::collection::vec(proptest::num::usize::ANY, 0..40),
        ) {
            let n = rows.len();
            let mut seqs: Vec<usize> = (0..n).collect();
            for (i, k) in order.iter().enumerate() {
                seqs.swap(i % n, k % n);
            }
            let mut m = Watermark::default();
            let mut finished = vec![false; n];
            for &seq in &seqs {
                m.done(seq as u64, rows[seq]);
                finished[seq] = true;
                let run = finished.iter().take_while(|f| **f).count();
                proptest::prop_assert_eq!(m.rows(), rows[..run].iter().sum::<u64>());
            }
            proptest::prop_assert_eq!(m.rows(), rows.iter().sum::<u64>());
            proptest::prop_assert_eq!(m.total(), m.rows());
        }
    }

    #[test]
    fn only_integer_text_goes_back_into_sql() {
        assert_eq!(key_value(b"42"), Some(42));
        assert_eq!(key_value(b"-9223372036854775808"), Some(i64::MIN as i128));
        assert_eq!(key_value(b"18446744073709551615"), Some(u64::MAX as i128));
        for bad in [
            &b""[..],
            b"-",
            b"1 OR 1=1",
            b"1;DROP TABLE t",
            b"0x10",
            b" 1",
            b"\xff",
        ] {
            assert_eq!(key_value(bad), None, "{bad:?}");
        }
    }

    fn table(pk: &[&str], cols: &[(&str, &str, bool)]) -> TableInfo {
        TableInfo {
            name: "t".into(),
            is_view: false,
            columns: cols
                .iter()
                .map(|(n, t, g)| ColumnInfo {
                    name: n.to_string(),
                    data_type: t.to_string(),
                    generated: *g,
                })
                .collect(),
            primary_key: pk.iter().map(|s| s.to_string()).collect(),
            estimated_bytes: 0,
        }
    }

    #[test]
    fn only_one_integer_key_column_is_ranged_over() {
        // The key's position counts stored columns only (generated ones are not selected).
        let t = table(
            &["id"],
            &[
                ("g", "int", true),
                ("v", "text", false),
                ("id", "BIGINT", false),
            ],
        );
        assert_eq!(integer_key(&t), Some(1));
        assert_eq!(
            integer_key(&table(&["id"], &[("id", "varchar", false)])),
            None
        );
        assert_eq!(
            integer_key(&table(
                &["a", "b"],
                &[("a", "int", false), ("b", "int", false)]
            )),
            None
        );
        assert_eq!(integer_key(&table(&[], &[("a", "int", false)])), None);
        assert_eq!(
            integer_key(&table(&["d"], &[("d", "decimal", false)])),
            None
        );
    }
}
