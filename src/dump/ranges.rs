//! One big table read over several connections of the same snapshot, in primary-key ranges,
//! and still written as one connection writes it (issue 16, shape c).
//!
//! Why: one connection's read of a table whose large values live off-page is bound by the
//! server's page reads, which one session issues one at a time (on `benchc_wide`, 1 GB,
//! buffer pool 128 MB, page cache dropped: `SELECT SUM(LENGTH(..))` over the whole table
//! took 7.8 to 8.5 s on one connection and 4.3 to 4.7 s as three ranges on three, with the
//! same server CPU). So a table whose primary key is one integer column and whose estimate
//! is at least [`super::DumpOptions::split_table_bytes`] is cut into ranges of that key
//! ([`cuts`], from the server's MIN and MAX; the ranges cover every integer, so a skewed
//! key only costs balance, never rows).
//!
//! Every range is read by a *reader*: a connection of the pool claims the lowest unclaimed
//! range ([`Split::claim`]), reads it (`WHERE pk >= lo AND pk < hi ORDER BY pk`) and writes
//! the rows' packets as the server sent them (`u32` length, payload) to the range's spool
//! file, publishing its length after whole rows ([`Fill`]). The readers are the connection
//! of the worker that owns the table's section (the *main*) and every worker with no table
//! left to claim; all are connections of the pool, so every range is read in the one
//! snapshot of the dump. The main also renders every row itself, following the ranges'
//! spool files in key order as they fill and parsing the packets back by the wire client's
//! own row rule, so statements, the file and the BLAKE3 row hash are byte for byte what one
//! connection writes. (A first version read the main's ranges directly and only followed
//! the others: after its first range the main's connection sat idle while it followed, so
//! only the helpers read, two on `benchc_wide`.)
//! Memory stays bounded: the follower reads at most [`FOLLOW_CHUNK`] (or one row) at a time;
//! the spool files take disk space (the raw rows of the ranges read ahead, at most the
//! table's size) and are removed once followed, or when the dump fails.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};

use super::DumpError;
use super::facts::TableInfo;
use super::sqlvalue::{Literal, ident, literal_for_wire};
use super::wire::{Row, WireConn};

/// Ranges per connection of the pool: more than one, so a range read ahead is usually
/// complete when the main reaches it, and the readers stay busy until the end.
pub(crate) const RANGES_PER_JOB: usize = 4;
/// A range reader publishes its spool file's length at least every this many bytes.
const PUBLISH_BYTES: usize = 1 << 20;
/// The follower reads a spool file this many bytes at a time (more only for one bigger row).
const FOLLOW_CHUNK: usize = 4 << 20;

/// The primary key's column when `table` may be read in ranges: exactly one key column, of
/// an integer type.
pub(crate) fn int_key(table: &TableInfo) -> Option<&str> {
    let [key] = table.primary_key.as_slice() else {
        return None;
    };
    let col = table.columns.iter().find(|c| &c.name == key)?;
    let integer = ["tinyint", "smallint", "mediumint", "int", "bigint"]
        .iter()
        .any(|t| col.data_type.eq_ignore_ascii_case(t));
    integer.then_some(key.as_str())
}

/// Whether `table` is read in ranges under `threshold` (`None`: never).
pub(crate) fn splittable(table: &TableInfo, threshold: Option<u64>) -> bool {
    !table.is_view
        && threshold.is_some_and(|t| table.estimated_bytes >= t)
        && int_key(table).is_some()
}

/// A key value from the server's text, accepted only as a plain decimal integer (it is
/// formatted back into SQL by Rust, never copied).
pub(crate) fn parse_key(text: &str) -> Option<i128> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Interior cut points for `parts` ranges of keys `min..=max`, strictly increasing (none
/// when there is only one range).
pub(crate) fn cuts(min: i128, max: i128, parts: usize) -> Vec<i128> {
    if max <= min || parts < 2 {
        return Vec::new();
    }
    let span = max - min + 1;
    let parts = (parts as i128).min(span);
    let mut out: Vec<i128> = Vec::with_capacity(parts as usize);
    for k in 1..parts {
        let c = min + span * k / parts;
        if out.last().is_none_or(|&l| c > l) && c > min {
            out.push(c);
        }
    }
    out
}

/// How far a range reader's spool file is written: `len` bytes of whole rows; `done` once
/// the range's last row is in.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Fill {
    len: u64,
    done: bool,
}

/// A range's spool file; removed when the last holder drops it (the follower when done,
/// or everyone on a failure). Holds a clone of the pool's `alive` sender, so the pool
/// returns only once every spool file is gone.
pub(crate) struct RangeSpool {
    path: PathBuf,
    _alive: mpsc::Sender<()>,
}

impl Drop for RangeSpool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

enum RangeState {
    Unclaimed,
    /// Read (or being read) into a spool file by a reader.
    Ahead(Arc<RangeSpool>, watch::Receiver<Fill>),
    /// Taken by the main to follow.
    Taken,
}

/// A range claimed by a reader: read range `index` with [`Split::range_sql`] and write it
/// with [`read_ahead`].
pub(crate) struct Ahead {
    pub index: usize,
    pub file: std::fs::File,
    pub spool: Arc<RangeSpool>,
    pub fill: watch::Sender<Fill>,
}

/// One table's ranges and who reads each.
pub(crate) struct Split {
    /// `SELECT <exact expressions> FROM db.table`.
    select: String,
    key: String,
    cuts: Vec<i128>,
    /// Spool file path of range `i`: `spool_prefix` + `i` + `.spool`.
    spool_prefix: PathBuf,
    /// The pool's `alive` sender, cloned into every spool file.
    alive: mpsc::Sender<()>,
    state: Mutex<Vec<RangeState>>,
    /// Woken at every claim (the main waits for the range it needs next to be claimed).
    claimed: tokio::sync::Notify,
    /// The result set's literal kinds, from the first reader's query (every range is the
    /// same SELECT with another WHERE, so they agree; checked).
    kinds: std::sync::OnceLock<Vec<Literal>>,
}

impl Split {
    /// `table` of `database` cut at `cuts` (see [`cuts`]); spool files are
    /// `<dir>/.<database>.<index>-<range>.spool` (`index`: the table's section), each
    /// holding a clone of `alive`.
    pub(crate) fn new(
        database: &str,
        table: &TableInfo,
        index: usize,
        cuts: Vec<i128>,
        dir: &std::path::Path,
        alive: mpsc::Sender<()>,
    ) -> Option<Split> {
        let key = int_key(table)?;
        Some(Split {
            select: table.select_sql(database),
            key: ident(key),
            state: Mutex::new((0..=cuts.len()).map(|_| RangeState::Unclaimed).collect()),
            cuts,
            spool_prefix: dir.join(format!(".{database}.{index}-")),
            alive,
            claimed: tokio::sync::Notify::new(),
            kinds: std::sync::OnceLock::new(),
        })
    }

    /// How many ranges.
    pub(crate) fn ranges(&self) -> usize {
        self.cuts.len() + 1
    }

    /// The SELECT of range `i`, in key order (the cut points are integers formatted here).
    pub(crate) fn range_sql(&self, i: usize) -> String {
        let lo = i.checked_sub(1).and_then(|j| self.cuts.get(j));
        let hi = self.cuts.get(i);
        let mut sql = self.select.clone();
        match (lo, hi) {
            (None, None) => {}
            (Some(lo), None) => sql.push_str(&format!(" WHERE {} >= {lo}", self.key)),
            (None, Some(hi)) => sql.push_str(&format!(" WHERE {} < {hi}", self.key)),
            (Some(lo), Some(hi)) => {
                sql.push_str(&format!(" WHERE {k} >= {lo} AND {k} < {hi}", k = self.key))
            }
        }
        sql.push_str(&format!(" ORDER BY {}", self.key));
        sql
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Vec<RangeState>> {
        self.state.lock().expect("range state lock")
    }

    /// A reader's claim: the lowest unclaimed range, its spool file created.
    pub(crate) fn claim(&self) -> Result<Option<Ahead>, DumpError> {
        let mut state = self.state();
        let Some(index) = state
            .iter()
            .position(|r| matches!(r, RangeState::Unclaimed))
        else {
            return Ok(None);
        };
        let path = PathBuf::from(format!("{}{index}.spool", self.spool_prefix.display()));
        // Ours by name, as a `.part` is: a leftover of a crashed run is removed (a symlink
        // planted there included: removing it touches only the link), then the file is
        // created new and never opened through a link.
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(DumpError::io(&path, e)),
        }
        let file =
            crate::safefs::create_new_file(&path, 0o600).map_err(|e| DumpError::io(&path, e))?;
        let spool = Arc::new(RangeSpool {
            path,
            _alive: self.alive.clone(),
        });
        let (fill, rx) = watch::channel(Fill::default());
        state[index] = RangeState::Ahead(spool.clone(), rx);
        drop(state);
        self.claimed.notify_waiters();
        Ok(Some(Ahead {
            index,
            file,
            spool,
            fill,
        }))
    }

    /// The main's turn at range `i`: its spool file once a reader claimed it. Readers
    /// claim the lowest range first and never wait for the main, so it is claimed soon.
    pub(crate) async fn take(&self, i: usize) -> (Arc<RangeSpool>, watch::Receiver<Fill>) {
        loop {
            let notified = self.claimed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.state();
                if let RangeState::Ahead(..) = state[i]
                    && let RangeState::Ahead(spool, rx) =
                        std::mem::replace(&mut state[i], RangeState::Taken)
                {
                    return (spool, rx);
                }
            }
            notified.await;
        }
    }

    /// The literal kinds of the result set's columns (set by the first reader's query).
    fn kinds(&self) -> Option<&[Literal]> {
        self.kinds.get().map(Vec::as_slice)
    }
}

/// Reads range `ahead.index` of `split` over `conn` into its spool file: each row's packet
/// as `u32` length + payload, the length published after whole rows.
pub(crate) async fn read_ahead(
    conn: &mut WireConn,
    split: &Split,
    ahead: Ahead,
) -> Result<(), DumpError> {
    let Ahead {
        index,
        mut file,
        spool,
        fill,
    } = ahead;
    let q = |e: super::wire::WireError| super::query_err("", "reading a key range", e.into());
    let io = |e| DumpError::io(&spool.path, e);
    // Tests commit writes here, after the snapshot and before the range is read.
    #[cfg(feature = "failpoints")]
    fail::fail_point!("dump:range-ahead", |_| Err(DumpError::Internal {
        what: "failpoint dump:range-ahead".into()
    }));
    let columns = conn.query(&split.range_sql(index)).await.map_err(q)?;
    let kinds: Vec<Literal> = columns.iter().map(literal_for_wire).collect();
    if *split.kinds.get_or_init(|| kinds.clone()) != kinds {
        return Err(DumpError::Internal {
            what: "a key range's columns differ from another range's".into(),
        });
    }
    let mut buf: Vec<u8> = Vec::with_capacity(PUBLISH_BYTES + (64 << 10));
    let mut len = 0u64;
    while let Some(row) = conn.next_row().await.map_err(q)? {
        let p = row.payload();
        let n = u32::try_from(p.len()).map_err(|_| DumpError::Internal {
            what: "a row packet of 4 GiB or more".into(),
        })?;
        buf.extend_from_slice(&n.to_le_bytes());
        buf.extend_from_slice(p);
        if buf.len() >= PUBLISH_BYTES {
            file.write_all(&buf).map_err(io)?;
            len += buf.len() as u64;
            buf.clear();
            // The main may have failed and gone: the pool reports its error.
            let _ = fill.send(Fill { len, done: false });
        }
    }
    file.write_all(&buf).map_err(io)?;
    len += buf.len() as u64;
    let _ = fill.send(Fill { len, done: true });
    tracing::trace!(range = index, bytes = len, "key range read");
    Ok(())
}

/// Follows a range's spool file as its reader writes it and calls `row` for every row, in
/// order, with the result set's literal kinds. `row` returns a full statement to send when
/// there is one; `send` sends it.
pub(crate) async fn follow<T, R, S, F>(
    split: &Split,
    spool: &RangeSpool,
    mut fill: watch::Receiver<Fill>,
    mut row: R,
    mut send: S,
) -> Result<(), DumpError>
where
    R: FnMut(&[Literal], &Row<'_>) -> Option<T>,
    S: FnMut(T) -> F,
    F: std::future::Future<Output = Result<(), DumpError>>,
{
    let io = |e| DumpError::io(&spool.path, e);
    let mut file = std::fs::File::open(&spool.path).map_err(io)?;
    let mut buf: Vec<u8> = Vec::new();
    let mut spans = Vec::new();
    let mut read_to = 0u64;
    let mut full = Vec::new();
    loop {
        let Fill { len, done } = *fill.borrow_and_update();
        if len > read_to {
            // At most a chunk, or what the row at the front still lacks.
            let need = match buf.get(..4) {
                Some(h) => 4 + u32::from_le_bytes(h.try_into().expect("4 bytes")) as usize,
                None => 0,
            };
            let want = FOLLOW_CHUNK.max(need.saturating_sub(buf.len()));
            let take = (len - read_to).min(want as u64) as usize;
            let at = buf.len();
            buf.resize(at + take, 0);
            file.read_exact(&mut buf[at..]).map_err(io)?;
            read_to += take as u64;
            let mut pos = 0;
            while let Some(h) = buf.get(pos..pos + 4) {
                let n = u32::from_le_bytes(h.try_into().expect("4 bytes")) as usize;
                let Some(payload) = buf.get(pos + 4..pos + 4 + n) else {
                    break;
                };
                // The reader set the kinds before it wrote a row.
                let Some(kinds) = split.kinds() else {
                    return Err(DumpError::Internal {
                        what: "a key range's rows came before its columns".into(),
                    });
                };
                let r = Row::parse(payload, kinds.len(), &mut spans).map_err(|e| {
                    DumpError::Internal {
                        what: format!("a row read ahead does not parse: {e}"),
                    }
                })?;
                if let Some(stmt) = row(kinds, &r) {
                    full.push(stmt);
                }
                pos += 4 + n;
            }
            buf.drain(..pos);
            for stmt in full.drain(..) {
                send(stmt).await?;
            }
            continue;
        }
        if done {
            if !buf.is_empty() {
                return Err(DumpError::Internal {
                    what: "a key range read ends inside a row".into(),
                });
            }
            return Ok(());
        }
        if fill.changed().await.is_err() {
            // The reader stopped without finishing: its own error is the pool's to report.
            return Err(DumpError::Internal {
                what: "the reader of a key range stopped before its end".into(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_cover_the_range_in_order() {
        assert_eq!(cuts(1, 16268, 4), vec![4068, 8135, 12202]);
        assert_eq!(cuts(5, 5, 4), Vec::<i128>::new());
        assert_eq!(cuts(1, 3, 12), vec![2, 3]);
        assert_eq!(
            cuts(i64::MIN as i128, u64::MAX as i128, 2),
            vec![(u64::MAX as i128 + i64::MIN as i128 + 1) / 2]
        );
    }

    #[test]
    fn keys_are_plain_integers_only() {
        assert_eq!(parse_key("42"), Some(42));
        assert_eq!(parse_key("-7"), Some(-7));
        assert_eq!(parse_key("18446744073709551615"), Some(u64::MAX as i128));
        for bad in ["", "-", "+1", "1 OR 1=1", "1e3", "0x10", " 1", "1;", "１"] {
            assert_eq!(parse_key(bad), None, "{bad:?}");
        }
    }
}
