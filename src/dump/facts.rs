//! What is in a database, and the per-table facts (row count and content checksum) that
//! prove two copies hold the same content.
//!
//! The dumper takes the facts inside its snapshot; restore recomputes them afterwards with
//! the method each recorded fact names, and the upgrade uses [`table_facts`] to show that a
//! rollback brought back exactly what was dumped. `CHECKSUM TABLE` is preferred (computed by
//! the server, no row crosses the wire); where it is not supported the rows are hashed with
//! BLAKE3 here (see [`ChecksumMethod::Blake3Rows`]).

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::artifact::{ChecksumMethod, TableFact};
use super::sqlvalue::{ident, select_expr};
use super::{DumpError, connect, query_err};
use crate::dbconn::DbTarget;

/// A column as the dumper needs it.
#[derive(Debug, Clone)]
pub(crate) struct ColumnInfo {
    pub name: String,
    pub data_type: String,
    /// Virtual or stored generated column: left out of INSERTs, recomputed by the server.
    pub generated: bool,
}

/// A base table or a view.
#[derive(Debug, Clone)]
pub(crate) struct TableInfo {
    pub name: String,
    pub is_view: bool,
    pub columns: Vec<ColumnInfo>,
    pub primary_key: Vec<String>,
    /// The server's estimate of data + index size, for progress bars.
    pub estimated_bytes: u64,
}

impl TableInfo {
    /// Columns that are written in INSERTs (generated ones are not).
    pub fn stored_columns(&self) -> impl Iterator<Item = &ColumnInfo> {
        self.columns.iter().filter(|c| !c.generated)
    }

    /// `SELECT <exact expressions> FROM db.table ORDER BY <primary key>` (no ORDER BY without
    /// a primary key; the hash is order-free then). For InnoDB the order is the clustered
    /// index's, so it costs no sort.
    pub fn select_sql_hashable(&self, database: &str) -> String {
        let mut sql = self.select_sql(database);
        if !self.primary_key.is_empty() {
            let keys: Vec<String> = self.primary_key.iter().map(|k| ident(k)).collect();
            sql.push_str(" ORDER BY ");
            sql.push_str(&keys.join(","));
        }
        sql
    }

    /// `SELECT <exact expressions> FROM db.table`.
    pub fn select_sql(&self, database: &str) -> String {
        let exprs: Vec<String> = self
            .stored_columns()
            .map(|c| select_expr(&c.name, &c.data_type))
            .collect();
        format!(
            "SELECT {} FROM {}.{}",
            exprs.join(","),
            ident(database),
            ident(&self.name)
        )
    }
}

/// Everything the dumper lists about a database.
#[derive(Debug, Clone)]
pub(crate) struct Schema {
    pub charset: String,
    pub collation: String,
    /// Base tables then views, each sorted by name.
    pub tables: Vec<TableInfo>,
    /// `table.trigger` for every trigger (never dumped).
    pub triggers: Vec<String>,
}

impl Schema {
    pub fn base_tables(&self) -> impl Iterator<Item = &TableInfo> {
        self.tables.iter().filter(|t| !t.is_view)
    }

    pub fn views(&self) -> impl Iterator<Item = &TableInfo> {
        self.tables.iter().filter(|t| t.is_view)
    }
}

/// The statement of [`session_setup`].
pub(crate) const SESSION_SQL: &str =
    "SET NAMES utf8mb4, time_zone = '+00:00', sql_mode = 'NO_AUTO_VALUE_ON_ZERO'";

/// Session settings every dump, restore and facts connection uses, so text forms are the
/// same on both sides: utf8mb4, UTC for TIMESTAMP, and a neutral sql_mode (no ANSI_QUOTES or
/// NO_BACKSLASH_ESCAPES changing how SHOW CREATE quotes things).
pub(crate) async fn session_setup(conn: &mut Conn) -> Result<(), DumpError> {
    conn.query_drop(SESSION_SQL)
        .await
        .map_err(|e| query_err("", "setting up the session", e))
}

/// [`list_schema`] without the tables `opts` excludes (exact names,
/// [`super::DumpOptions::exclude_tables`]): what a dump lists, and logs what it left out.
pub(crate) async fn list_dumped(
    conn: &mut Conn,
    database: &str,
    opts: &super::DumpOptions,
) -> Result<Schema, DumpError> {
    let mut schema = list_schema(conn, database).await?;
    if !opts.exclude_tables.is_empty() {
        schema.tables.retain(|t| {
            let left_out = !t.is_view && opts.exclude_tables.contains(&t.name);
            if left_out {
                tracing::info!(database, table = %t.name, "left out of the dump, as the caller asked");
            }
            !left_out
        });
    }
    Ok(schema)
}

/// Lists tables, views, columns, primary keys and triggers of `database`.
pub(crate) async fn list_schema(conn: &mut Conn, database: &str) -> Result<Schema, DumpError> {
    list(conn, database, None).await
}

/// What [`list_schema`] knows of one table of `database`, `None` if it does not exist. Reads
/// only that table's rows of information_schema (restore asks once per table it loaded).
pub(crate) async fn table_info(
    conn: &mut Conn,
    database: &str,
    table: &str,
) -> Result<Option<TableInfo>, DumpError> {
    let schema = list(conn, database, Some(table)).await?;
    Ok(schema.tables.into_iter().find(|t| t.name == table))
}

/// `only`: list that table alone (NULL in the filters means every table).
async fn list(conn: &mut Conn, database: &str, only: Option<&str>) -> Result<Schema, DumpError> {
    let q = |what: &'static str| move |e| query_err(database, what, e);
    let schema: Option<(String, String)> = conn
        .exec_first(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME \
             FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (database,),
        )
        .await
        .map_err(q("reading the database's character set"))?;
    let Some((charset, collation)) = schema else {
        return Err(DumpError::NoSuchDatabase {
            database: database.to_string(),
        });
    };
    let rows: Vec<(String, String, Option<u64>)> = conn
        .exec(
            "SELECT TABLE_NAME, TABLE_TYPE, DATA_LENGTH + INDEX_LENGTH \
             FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? \
             AND (? IS NULL OR TABLE_NAME = ?) ORDER BY TABLE_NAME",
            (database, only, only),
        )
        .await
        .map_err(q("listing tables"))?;
    let mut tables = Vec::new();
    for (name, kind, size) in rows {
        let is_view = match kind.as_str() {
            "BASE TABLE" => false,
            "VIEW" => true,
            other => {
                return Err(DumpError::Unsupported {
                    what: format!(
                        "`{database}`.`{name}` is a {other}; only base tables and views are dumped"
                    ),
                });
            }
        };
        tables.push(TableInfo {
            name,
            is_view,
            columns: Vec::new(),
            primary_key: Vec::new(),
            estimated_bytes: size.unwrap_or(0),
        });
    }
    let cols: Vec<(String, String, String, String)> = conn
        .exec(
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, EXTRA FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND (? IS NULL OR TABLE_NAME = ?) \
             ORDER BY TABLE_NAME, ORDINAL_POSITION",
            (database, only, only),
        )
        .await
        .map_err(q("listing columns"))?;
    for (table, name, data_type, extra) in cols {
        let extra = extra.to_ascii_uppercase();
        // MySQL 8 marks expression defaults as DEFAULT_GENERATED: those are ordinary columns.
        let generated = [
            "VIRTUAL GENERATED",
            "STORED GENERATED",
            "PERSISTENT GENERATED",
        ]
        .iter()
        .any(|g| extra.contains(g));
        if let Some(t) = tables.iter_mut().find(|t| t.name == table) {
            t.columns.push(ColumnInfo {
                name,
                data_type,
                generated,
            });
        }
    }
    let pks: Vec<(String, String)> = conn
        .exec(
            "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
             WHERE TABLE_SCHEMA = ? AND CONSTRAINT_NAME = 'PRIMARY' \
             AND (? IS NULL OR TABLE_NAME = ?) ORDER BY TABLE_NAME, ORDINAL_POSITION",
            (database, only, only),
        )
        .await
        .map_err(q("listing primary keys"))?;
    for (table, column) in pks {
        if let Some(t) = tables.iter_mut().find(|t| t.name == table) {
            t.primary_key.push(column);
        }
    }
    let triggers: Vec<(String, String)> = conn
        .exec(
            "SELECT EVENT_OBJECT_TABLE, TRIGGER_NAME FROM information_schema.TRIGGERS \
             WHERE TRIGGER_SCHEMA = ? AND (? IS NULL OR EVENT_OBJECT_TABLE = ?) \
             ORDER BY EVENT_OBJECT_TABLE, TRIGGER_NAME",
            (database, only, only),
        )
        .await
        .map_err(q("listing triggers"))?;
    tables.sort_by(|a, b| (a.is_view, &a.name).cmp(&(b.is_view, &b.name)));
    Ok(Schema {
        charset,
        collation,
        tables,
        triggers: triggers
            .into_iter()
            .map(|(t, n)| format!("{t}.{n}"))
            .collect(),
    })
}

/// Facts for `database`'s base tables: `CHECKSUM TABLE` where the server supports it,
/// [`ChecksumMethod::Blake3Rows`] otherwise. Opens its own connection.
pub async fn table_facts(target: &DbTarget, database: &str) -> Result<Vec<TableFact>, DumpError> {
    facts_with(target, database, None).await
}

/// Facts for `database`'s base tables, all with `method`.
pub async fn table_facts_with(
    target: &DbTarget,
    database: &str,
    method: ChecksumMethod,
) -> Result<Vec<TableFact>, DumpError> {
    facts_with(target, database, Some(method)).await
}

async fn facts_with(
    target: &DbTarget,
    database: &str,
    method: Option<ChecksumMethod>,
) -> Result<Vec<TableFact>, DumpError> {
    let mut conn = connect(target).await?;
    session_setup(&mut conn).await?;
    let schema = list_schema(&mut conn, database).await?;
    let tables: Vec<&TableInfo> = schema.base_tables().collect();
    let mut out = Vec::with_capacity(tables.len());
    for t in tables {
        out.push(fact_for(&mut conn, database, t, method).await?);
    }
    conn.disconnect().await.ok();
    Ok(out)
}

/// One table's fact with `method`, or the preferred method when `None`. Runs in whatever
/// transaction `conn` is in, so the dumper gets facts from its own snapshot.
pub(crate) async fn fact_for(
    conn: &mut Conn,
    database: &str,
    table: &TableInfo,
    method: Option<ChecksumMethod>,
) -> Result<TableFact, DumpError> {
    let full = format!("{}.{}", ident(database), ident(&table.name));
    let q = |what: &'static str| move |e| query_err(database, what, e);
    if method != Some(ChecksumMethod::Blake3Rows) {
        let checksum: Result<Option<(String, Option<u64>)>, _> =
            conn.query_first(format!("CHECKSUM TABLE {full}")).await;
        let checksum = match checksum {
            Ok(Some((_, Some(c)))) => Some(c),
            // NULL or a server-side refusal: the server cannot checksum this table.
            Ok(_) | Err(mysql_async::Error::Server(_)) => None,
            Err(e) => return Err(q("running CHECKSUM TABLE")(e)),
        };
        if let Some(c) = checksum {
            let rows: Option<u64> = conn
                .query_first(format!("SELECT COUNT(*) FROM {full}"))
                .await
                .map_err(q("counting rows"))?;
            return Ok(TableFact {
                name: table.name.clone(),
                rows: rows.unwrap_or(0),
                checksum: c.to_string(),
                checksum_method: ChecksumMethod::ChecksumTable,
            });
        }
        if method == Some(ChecksumMethod::ChecksumTable) {
            return Err(DumpError::Unsupported {
                what: format!("the server cannot run CHECKSUM TABLE on {full}"),
            });
        }
    }
    let (rows, checksum) = blake3_rows(conn, database, table).await?;
    Ok(TableFact {
        name: table.name.clone(),
        rows,
        checksum,
        checksum_method: ChecksumMethod::Blake3Rows,
    })
}

/// BLAKE3 over the rows' values (length-prefixed, NULL distinct from empty) in primary-key
/// order; without a primary key, the wrapping sum of per-row hashes (order-free).
async fn blake3_rows(
    conn: &mut Conn,
    database: &str,
    table: &TableInfo,
) -> Result<(u64, String), DumpError> {
    let q = |e| query_err(database, "hashing rows", e);
    let mut result = conn
        .query_iter(table.select_sql_hashable(database))
        .await
        .map_err(q)?;
    let mut hasher = RowHasher::new(table);
    while let Some(row) = result.next().await.map_err(q)? {
        hasher.add(&row);
    }
    Ok(hasher.finish())
}

/// Computes [`ChecksumMethod::Blake3Rows`] over rows read with
/// [`TableInfo::select_sql_hashable`]; the native dumper feeds it the rows it writes, so the
/// checksum costs no extra pass over the table.
pub(crate) struct RowHasher {
    ordered: bool,
    buf: Vec<u8>,
    table: blake3::Hasher,
    sum: [u64; 4],
    rows: u64,
    /// Where the current row's encoding starts in `buf`.
    row_start: usize,
}

/// Encoded rows are hashed in batches of about this size (one `update` per value would
/// dominate the cost).
const HASH_BATCH: usize = 64 << 10;

impl RowHasher {
    pub(crate) fn new(table: &TableInfo) -> RowHasher {
        RowHasher {
            ordered: !table.primary_key.is_empty(),
            buf: Vec::with_capacity(HASH_BATCH + 4096),
            table: blake3::Hasher::new(),
            sum: [0; 4],
            rows: 0,
            row_start: 0,
        }
    }

    pub(crate) fn add(&mut self, row: &mysql_async::Row) {
        self.begin_row();
        for i in 0..row.len() {
            match row.as_ref(i) {
                None | Some(mysql_async::Value::NULL) => self.value(None),
                Some(mysql_async::Value::Bytes(b)) => self.value(Some(b)),
                Some(other) => self.other(&other.as_sql(false)),
            }
        }
        self.end_row();
    }

    /// Starts a row; its values follow through [`Self::value`] or [`Self::other`] in column
    /// order, then [`Self::end_row`]. The dumper hashes each value as it renders it, so a
    /// row is walked once.
    pub(crate) fn begin_row(&mut self) {
        self.rows += 1;
        self.row_start = self.buf.len();
    }

    /// A value as the text protocol gave it: its bytes, or `None` for NULL.
    #[inline]
    pub(crate) fn value(&mut self, value: Option<&[u8]>) {
        match value {
            None => self.buf.push(0),
            Some(b) => {
                self.buf.push(1);
                self.buf.extend_from_slice(&(b.len() as u64).to_le_bytes());
                self.buf.extend_from_slice(b);
            }
        }
    }

    /// A value the driver gave in another form than bytes, as its SQL text.
    pub(crate) fn other(&mut self, sql: &str) {
        self.buf.push(2);
        self.buf
            .extend_from_slice(&(sql.len() as u64).to_le_bytes());
        self.buf.extend_from_slice(sql.as_bytes());
    }

    /// Ends the row begun by [`Self::begin_row`].
    pub(crate) fn end_row(&mut self) {
        if self.ordered {
            if self.buf.len() >= HASH_BATCH {
                self.table.update(&self.buf);
                self.buf.clear();
            }
        } else {
            add_256(
                &mut self.sum,
                blake3::hash(&self.buf[self.row_start..]).as_bytes(),
            );
            self.buf.clear();
        }
    }

    /// Row count and checksum (hex).
    pub(crate) fn finish(mut self) -> (u64, String) {
        let hex = if self.ordered {
            self.table.update(&self.buf);
            self.table.finalize().to_hex().to_string()
        } else {
            self.sum.iter().rev().map(|w| format!("{w:016x}")).collect()
        };
        (self.rows, hex)
    }
}

/// `sum += h` as 256-bit little-endian integers, wrapping.
fn add_256(sum: &mut [u64; 4], h: &[u8; 32]) {
    let mut carry = 0u128;
    for (i, limb) in sum.iter_mut().enumerate() {
        let w = u64::from_le_bytes(h[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        let s = *limb as u128 + w as u128 + carry;
        *limb = s as u64;
        carry = s >> 64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_is_order_free_and_wraps() {
        let a = *blake3::hash(b"a").as_bytes();
        let b = *blake3::hash(b"b").as_bytes();
        let mut x = [0u64; 4];
        add_256(&mut x, &a);
        add_256(&mut x, &b);
        let mut y = [0u64; 4];
        add_256(&mut y, &b);
        add_256(&mut y, &a);
        assert_eq!(x, y);
        let mut z = [u64::MAX; 4];
        add_256(&mut z, &{
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        });
        assert_eq!(z, [0; 4]);
    }
}
