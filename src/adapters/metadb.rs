//! The OMS metadata database (MySQL protocol: MariaDB, MySQL or OceanBase) as the upgrade
//! touches it, behind the small [`MetaDb`] trait, with [`MysqlMetaDb`] over mysql_async.
//!
//! What it does, and why it is written this way:
//! - `ha.config` lives in `oms_normal_config` of the RM database (obd reads it with
//!   `select cfg_value from oms_normal_config where cfg_name='ha.config'`). The write is a
//!   compare-and-set in a transaction (`SELECT ... FOR UPDATE`, compare with what was read,
//!   `UPDATE`, commit, read back), so an operator's concurrent edit in the console is
//!   detected instead of silently overwritten. Computing the new value (changing only the
//!   named keys, keeping every other one) is the pure core's job: `crate::haconfig`.
//! - The heartbeat prune reads `max(id)` first and then deletes below it, because MySQL 8
//!   rejects the runbook's one-statement form (error 1093). The table really is spelled
//!   `heatbeat_sequence`. A large table (50 000 rows and more) is pruned by swapping in a
//!   table holding only the newest row (`swap_heartbeat`, `docs/prune.md`), in
//!   milliseconds rather than seconds; anything it cannot vouch for falls back to DELETE.
//! - Drop-and-recreate keeps the database's default charset and collation, read from
//!   `information_schema.SCHEMATA` first; [`MetaDb::recreate_database`] takes them as
//!   values so a resumed rollback can recreate a database that is already dropped.
//!
//! Errors are typed; a wrong password says which config keys to check and never contains
//! the password itself.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Pool, PoolConstraints, PoolOpts, TxOpts};
use serde::{Deserialize, Serialize};

use crate::dbconn::{self, DbTarget, TlsMode, TlsSettings};
use crate::events::ServerFlavour;

/// How long a connection attempt may take before the server counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The pool's cap: the tool does one thing at a time.
const POOL_MAX: usize = 3;

/// An error from the metadata database adapter.
#[derive(Debug, thiserror::Error)]
pub enum MetaDbError {
    /// No connection could be made.
    #[error(
        "the metadata database at {url} is not reachable ({detail}); check oms_meta_host and \
         oms_meta_port in config.yaml and that the server is running"
    )]
    Unreachable {
        /// `mysql://user@host:port` (no password).
        url: String,
        /// What the driver reported.
        detail: String,
    },
    /// The server refused the login (wrong user or password).
    #[error(
        "access denied for user `{user}` at {url}; check oms_meta_user and oms_meta_password \
         in config.yaml"
    )]
    AccessDenied {
        /// The user name.
        user: String,
        /// `mysql://user@host:port` (no password).
        url: String,
    },
    /// Logged in, but the user lacks a privilege the operation needs.
    #[error("the metadata user lacks a privilege at {url}: {message}; grant it and retry")]
    NotPermitted {
        /// `mysql://user@host:port` (no password).
        url: String,
        /// The server's message.
        message: String,
    },
    /// The named database does not exist.
    #[error(
        "database `{name}` does not exist; check drc_rm_db, drc_cm_db and \
         drc_cm_heartbeat_db in config.yaml"
    )]
    UnknownDatabase {
        /// The database name.
        name: String,
    },
    /// `oms_normal_config` has no `ha.config` row.
    #[error(
        "`{db}`.oms_normal_config has no row with cfg_name='ha.config'; is `{db}` the RM database \
         (drc_rm_db)?"
    )]
    HaConfigMissing {
        /// The RM database.
        db: String,
    },
    /// `ha.config` changed since it was read (someone edited it in the console).
    #[error(
        "ha.config in `{db}` changed since it was read (edited in the console meanwhile?); \
         nothing was written. Read it again and retry. Expected: {expected} Found: {found}"
    )]
    HaConfigChanged {
        /// The RM database.
        db: String,
        /// What was read before and expected to still be there.
        expected: String,
        /// What is there now.
        found: String,
    },
    /// After a committed write, reading back gave something else.
    #[error(
        "ha.config in `{db}` reads back differently from what was written; check the console. \
         Wrote: {wrote} Read: {read}"
    )]
    HaConfigReadBack {
        /// The RM database.
        db: String,
        /// The JSON written.
        wrote: String,
        /// The JSON read back (empty when the row vanished).
        read: String,
    },
    /// A charset or collation name that cannot be put into SQL safely.
    #[error("invalid charset or collation name `{0}`")]
    InvalidCharset(String),
    /// The connection must be encrypted (`--meta-tls required`, or the plan was made over
    /// TLS), and the server offers no TLS.
    #[error(
        "the metadata database at {url} offers no TLS, but the connection must be encrypted \
         (--meta-tls required, or the plan was made over TLS); nothing was sent to it. Enable \
         TLS on the server (ssl_cert/ssl_key), or plan with --meta-tls preferred to accept a \
         plain-text connection"
    )]
    TlsUnavailable {
        /// `mysql://user@host:port` (no password).
        url: String,
    },
    /// The TLS handshake failed (most often: the certificate does not verify).
    #[error(
        "TLS to the metadata database at {url} failed: {detail}; pass the CA that signed the \
         server's certificate with --meta-ca, and check that the certificate names the host \
         in oms_meta_host"
    )]
    Tls {
        /// `mysql://user@host:port` (no password).
        url: String,
        /// What the TLS library reported.
        detail: String,
    },
    /// Any other server or driver error.
    #[error("metadata database error at {url}: {message}")]
    Query {
        /// `mysql://user@host:port` (no password).
        url: String,
        /// The driver's or server's message.
        message: String,
    },
}

/// The server's identity, from [`MetaDb::ping`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerInfo {
    /// `SELECT VERSION()`, e.g. `10.11.6-MariaDB-0+deb12u1`.
    pub version: String,
    /// `@@version_comment`, e.g. `MySQL Community Server - GPL`.
    pub version_comment: String,
    /// What the two say the server is ([`sqltext::server_flavour`]).
    pub flavour: ServerFlavour,
}

/// Result of [`MetaDb::prune_heartbeat`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PruneOutcome {
    /// `max(id)` before the delete; `None` for an empty (or missing) table.
    pub max_id: Option<i64>,
    /// Rows deleted (every row below `max_id`) by this call's DELETE batches; 0 after a
    /// table swap, whose rows are counted after T2 (`moved_aside`).
    pub rows_deleted: u64,
    /// DELETE statements run, each of at most the batch's rows.
    pub batches: u64,
    /// issue 16: the table swap (this call's, or a killed earlier attempt's) renamed the
    /// old rows aside into this run's `<old>` table ([`sqltext::HeartbeatSwap`]), which
    /// `drop-pruned-heartbeat` counts and drops after T2 ([`MetaDb::drop_pruned_heartbeat`]).
    pub moved_aside: bool,
    /// The batch size used.
    pub batch_rows: u64,
    /// The database has no `heatbeat_sequence` table: nothing was deleted.
    pub table_missing: bool,
    /// The flavour the session was prepared for ([`sqltext::session_setup`]).
    pub flavour: ServerFlavour,
}

impl PruneOutcome {
    /// Nothing deleted yet, with `opts`' batch size (at least 1) on a `flavour` server:
    /// where every prune (the real one and the simulated one) starts counting.
    pub fn starting(opts: &PruneOptions, flavour: ServerFlavour) -> Self {
        PruneOutcome {
            max_id: None,
            rows_deleted: 0,
            batches: 0,
            moved_aside: false,
            batch_rows: opts.batch_rows.max(1),
            table_missing: false,
            flavour,
        }
    }
}

/// How the heartbeat prune runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneOptions {
    /// Most rows one DELETE removes ([`sqltext::HEARTBEAT_BATCH_ROWS`] by default).
    pub batch_rows: u64,
    /// The server's flavour as the plan recorded it; `None`: asked of the server.
    pub flavour: Option<ServerFlavour>,
    /// The run's tag (the first 4 bytes of its id), which names the table swap's work
    /// tables ([`sqltext::HeartbeatSwap::for_run`]); `None`: no swap, DELETE batches only.
    pub swap_tag: Option<u32>,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            batch_rows: sqltext::HEARTBEAT_BATCH_ROWS,
            flavour: None,
            swap_tag: None,
        }
    }
}

/// How far a table swap of the heartbeat prune got.
enum Swapped {
    /// Done: the heartbeat table holds only the newest row; the others are in the run's
    /// `<old>` table, left for `drop-pruned-heartbeat` to count and drop after T2.
    Done,
    /// Not done, nothing changed (the work table, if made, is dropped): prune by DELETE.
    Declined,
}

/// Progress of a prune, after each batch: rows deleted so far, batches so far, and the
/// rows there were to delete (an estimate: ids below the newest, gaps included).
pub type PruneProgress<'a> = &'a (dyn Fn(u64, u64, u64) + Send + Sync);

/// Result of [`MetaDb::write_ha_config`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaWriteOutcome {
    /// True when the stored value already was the new JSON (an earlier, unrecorded write),
    /// so nothing was written.
    pub already_written: bool,
}

/// A database's default character set and collation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbCharset {
    /// e.g. `utf8mb4`.
    pub charset: String,
    /// e.g. `utf8mb4_bin`.
    pub collation: String,
}

/// The servers the cm database lists ([`MetaDb::list_servers`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServerList {
    /// The cm database has a `host` table with an `ip` column.
    pub host_table: bool,
    /// That table has a `status` column (the public record names none; see
    /// [`crate::sqltext::list_servers`]): information to show, never a server's state.
    pub status_column: bool,
    /// One per `host` row, ordered by IP; at most [`crate::sqltext::MAX_SERVERS`] + 1.
    pub servers: Vec<ListedServer>,
}

/// One `host` row. Values come from outside: cut to 64 characters, control characters
/// replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedServer {
    /// `host.ip`.
    pub ip: String,
    /// `resource_group.name` of its group (the region's `cm_location`), when there is one.
    pub group: Option<String>,
    /// `host.status` as stored, when the column exists and the value is not NULL.
    pub status: Option<String>,
}

/// The metadata-database operations an upgrade needs. The executor is generic over this
/// trait; [`MysqlMetaDb`] is the real one.
pub trait MetaDb: Send + Sync {
    /// Logs in and asks the server's version.
    fn ping(&self) -> impl Future<Output = Result<ServerInfo, MetaDbError>> + Send;

    /// True when the database exists.
    fn database_exists(&self, name: &str)
    -> impl Future<Output = Result<bool, MetaDbError>> + Send;

    /// Data plus index bytes of each named database (0 for an absent or empty one): the
    /// larger of `information_schema.TABLES` (statistics, which lag after bulk writes) and
    /// the InnoDB tablespace files' sizes (which do not), where the server shows those.
    fn database_sizes(
        &self,
        names: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, u64>, MetaDbError>> + Send;

    /// The stored `ha.config` JSON in the RM database; `None` when there is no row.
    fn read_ha_config(
        &self,
        rm_db: &str,
    ) -> impl Future<Output = Result<Option<String>, MetaDbError>> + Send;

    /// Compare-and-set of `ha.config`: writes `new_json` only if the stored value still
    /// equals `expected_previous`, then reads it back. See the module docs.
    fn write_ha_config(
        &self,
        rm_db: &str,
        expected_previous: &str,
        new_json: &str,
    ) -> impl Future<Output = Result<HaWriteOutcome, MetaDbError>> + Send;

    /// Deletes every `heatbeat_sequence` row below `max(id)` in the heartbeat database,
    /// in batches of the default size.
    fn prune_heartbeat(
        &self,
        hb_db: &str,
    ) -> impl Future<Output = Result<PruneOutcome, MetaDbError>> + Send {
        self.prune_heartbeat_with(hb_db, PruneOptions::default(), &|_, _, _| {})
    }

    /// [`MetaDb::prune_heartbeat`] with its options and a progress callback. A missing
    /// table is reported in the outcome (`table_missing`), not as an error.
    fn prune_heartbeat_with(
        &self,
        hb_db: &str,
        opts: PruneOptions,
        progress: PruneProgress<'_>,
    ) -> impl Future<Output = Result<PruneOutcome, MetaDbError>> + Send;

    /// issue 16: counts exactly the rows of `table` of `hb_db` below its newest id (the
    /// heartbeat rows the prune removed; the newest was copied into the new heartbeat
    /// table) and drops it, if it exists: the run's `<old>`, after T2. `None`: no such
    /// table, nothing done. Asked of `information_schema` first, so a
    /// user who never swapped (no DROP privilege) needs none.
    fn drop_pruned_heartbeat(
        &self,
        hb_db: &str,
        table: &str,
    ) -> impl Future<Output = Result<Option<u64>, MetaDbError>> + Send;

    /// The database's default charset and collation; `None` when it does not exist.
    fn database_charset(
        &self,
        db: &str,
    ) -> impl Future<Output = Result<Option<DbCharset>, MetaDbError>> + Send;

    /// Drops and recreates an existing database with its original default charset and
    /// collation, which it returns. An absent database is [`MetaDbError::UnknownDatabase`].
    fn drop_and_create(
        &self,
        db: &str,
    ) -> impl Future<Output = Result<DbCharset, MetaDbError>> + Send;

    /// `DROP DATABASE IF EXISTS` then `CREATE DATABASE` with the given charset: the
    /// resumable form of [`MetaDb::drop_and_create`] (charset recorded beforehand).
    fn recreate_database(
        &self,
        db: &str,
        charset: &DbCharset,
    ) -> impl Future<Output = Result<(), MetaDbError>> + Send;

    /// The first column of the first row of `sql` run in `db`, as text (`None` for no row
    /// or NULL).
    fn query_scalar(
        &self,
        db: &str,
        sql: &str,
    ) -> impl Future<Output = Result<Option<String>, MetaDbError>> + Send;

    /// The servers the cm database's `host` table lists, with their group and status
    /// ([`crate::sqltext::list_servers`]). A missing table is a [`ServerList`] with
    /// `host_table` false, not an error.
    fn list_servers(
        &self,
        cm_db: &str,
    ) -> impl Future<Output = Result<ServerList, MetaDbError>> + Send;
}

/// The real [`MetaDb`] over a small mysql_async pool.
#[derive(Clone)]
pub struct MysqlMetaDb {
    /// Connections as the target's TLS settings say.
    pool: Pool,
    /// For [`TlsMode::Preferred`]: plain-text connections, used once the server turned out
    /// to offer no TLS.
    plain: Option<Pool>,
    /// The server offers no TLS (seen on the first connection; shared by clones).
    no_tls: Arc<AtomicBool>,
    tls: TlsSettings,
    url: String,
    user: String,
}

/// By hand, not derived: the driver's `Pool` prints its `Opts`, password included.
impl std::fmt::Debug for MysqlMetaDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlMetaDb")
            .field("url", &self.url)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// How the connection to the metadata database is protected, as found on a live
/// connection ([`MysqlMetaDb::tls_state`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsState {
    /// The mode asked for (`--meta-tls`).
    pub mode: TlsMode,
    /// The connection is encrypted.
    pub encrypted: bool,
    /// The server's certificate was verified (against `ca`, else the built-in roots).
    pub verified: bool,
    /// The private CA given (`--meta-ca`).
    pub ca: Option<String>,
    /// The protocol version the server reports (`Ssl_version`, e.g. `TLSv1.3`).
    pub version: Option<String>,
}

impl std::fmt::Display for TlsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.encrypted {
            return write!(f, "not encrypted (--meta-tls {})", self.mode);
        }
        write!(
            f,
            "encrypted ({}, certificate {}; --meta-tls {})",
            self.version.as_deref().unwrap_or("TLS"),
            match (&self.ca, self.verified) {
                (Some(ca), true) => format!("verified against {ca}"),
                (None, true) => "verified against the built-in roots".to_string(),
                (_, false) => "not verified".to_string(),
            },
            self.mode
        )
    }
}

fn pool(opts: mysql_async::Opts) -> Pool {
    let pool_opts = PoolOpts::default().with_constraints(
        PoolConstraints::new(0, POOL_MAX).expect("0 <= POOL_MAX and POOL_MAX > 0"),
    );
    Pool::new(OptsBuilder::from_opts(opts).pool_opts(pool_opts))
}

impl MysqlMetaDb {
    /// A client for `target` (connects lazily; see [`MysqlMetaDb::connect`]).
    pub fn new(target: &DbTarget) -> Self {
        MysqlMetaDb {
            pool: pool(target.opts(None)),
            plain: target
                .tls
                .falls_back()
                .then(|| pool(target.plain_opts(None))),
            no_tls: Arc::new(AtomicBool::new(false)),
            tls: target.tls.clone(),
            url: target.display_url(),
            user: target.user.clone(),
        }
    }

    /// A client for `target` that has logged in once (so a wrong password shows up now).
    pub async fn connect(target: &DbTarget) -> Result<Self, MetaDbError> {
        let db = Self::new(target);
        db.ping().await?;
        Ok(db)
    }

    /// Closes the pools' connections.
    pub async fn close(self) {
        let _ = self.pool.disconnect().await;
        if let Some(plain) = self.plain {
            let _ = plain.disconnect().await;
        }
    }

    /// Whether the connections are encrypted, found on a live one.
    pub async fn tls_state(&self) -> Result<TlsState, MetaDbError> {
        let (mut c, encrypted) = self.conn_tls().await?;
        let version = if encrypted {
            let row: Option<(String, String)> = c
                .query_first("SHOW SESSION STATUS LIKE 'Ssl_version'")
                .await
                .map_err(|e| self.classify(e, None))?;
            row.map(|(_, v)| v).filter(|v| !v.is_empty())
        } else {
            None
        };
        Ok(TlsState {
            mode: self.tls.mode,
            encrypted,
            verified: encrypted && self.tls.verifies(),
            ca: self.tls.ca.as_ref().map(|p| p.display().to_string()),
            version,
        })
    }

    fn classify(&self, e: mysql_async::Error, db: Option<&str>) -> MetaDbError {
        classify(e, &self.url, &self.user, db)
    }

    async fn conn(&self) -> Result<Conn, MetaDbError> {
        Ok(self.conn_tls().await?.0)
    }

    /// A connection and whether it is encrypted. For [`TlsMode::Preferred`], the plain pool
    /// is used only once the server said it offers no TLS at all.
    async fn conn_tls(&self) -> Result<(Conn, bool), MetaDbError> {
        if let Some(plain) = &self.plain
            && self.no_tls.load(Ordering::Relaxed)
        {
            let c = self.get(plain).await?.map_err(|e| self.classify(e, None))?;
            return Ok((c, false));
        }
        match self.get(&self.pool).await? {
            Ok(c) => Ok((c, self.tls.mode != TlsMode::Off)),
            Err(e) => match &self.plain {
                Some(plain) if dbconn::offers_no_tls(&e) => {
                    self.no_tls.store(true, Ordering::Relaxed);
                    let c = self.get(plain).await?.map_err(|e| self.classify(e, None))?;
                    Ok((c, false))
                }
                _ => Err(match dbconn::tls_failure(&e) {
                    Some(detail) if self.tls.mode != TlsMode::Off => MetaDbError::Tls {
                        url: self.url.clone(),
                        detail,
                    },
                    _ => self.classify(e, None),
                }),
            },
        }
    }

    /// One connection from `pool`; the outer error is the [`CONNECT_TIMEOUT`].
    async fn get(&self, pool: &Pool) -> Result<Result<Conn, mysql_async::Error>, MetaDbError> {
        tokio::time::timeout(CONNECT_TIMEOUT, pool.get_conn())
            .await
            .map_err(|_| MetaDbError::Unreachable {
                url: self.url.clone(),
                detail: format!("no answer within {CONNECT_TIMEOUT:?}"),
            })
    }

    /// The servers the cm database's `host` table lists (obd's takeover code reads the
    /// deployment's machines from it), each shown as its columns `name=value`, since the
    /// public record names the table but not its columns. `None` when there is no such
    /// table. At most [`MAX_SERVERS_SHOWN`] rows are read; values are cut short and
    /// control characters replaced, as they come from outside.
    pub async fn servers_listed(&self, cm_db: &str) -> Result<Option<Vec<String>>, MetaDbError> {
        let mut c = self.conn().await?;
        let n: Option<u64> = c
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'host'",
                (cm_db,),
            )
            .await
            .map_err(|e| self.classify(e, Some(cm_db)))?;
        if n.unwrap_or(0) == 0 {
            return Ok(None);
        }
        let sql = format!(
            "SELECT * FROM {}.`host` LIMIT {MAX_SERVERS_SHOWN}",
            quote_ident(cm_db)
        );
        let rows: Vec<mysql_async::Row> = c
            .query(sql)
            .await
            .map_err(|e| self.classify(e, Some(cm_db)))?;
        Ok(Some(rows.iter().map(shown_row).collect()))
    }

    /// The regions the rm database's `cluster_info` lists (`region`, `code`,
    /// `is_default_cm`), for the inventory's cross-check; `None` when the table or one of
    /// those columns is not there. A row whose `code` is not a `cm_location` (0-127) is
    /// shown with code 255, which no region has, so it is reported rather than dropped.
    pub async fn regions_listed(
        &self,
        rm_db: &str,
    ) -> Result<Option<Vec<crate::inventory::ListedRegion>>, MetaDbError> {
        let mut c = self.conn().await?;
        let n: Option<u64> = c
            .exec_first(sqltext::REGION_TABLE_COLUMNS, (rm_db,))
            .await
            .map_err(|e| self.classify(e, Some(rm_db)))?;
        if n.unwrap_or(0) < 3 {
            return Ok(None);
        }
        // Text protocol: every value arrives as text, whatever the column type.
        let rows: Vec<(Option<String>, Option<String>, Option<String>)> = c
            .query(sqltext::list_regions(rm_db))
            .await
            .map_err(|e| self.classify(e, Some(rm_db)))?;
        Ok(Some(
            rows.into_iter()
                .map(|(region, code, default)| crate::inventory::ListedRegion {
                    name: region
                        .unwrap_or_default()
                        .chars()
                        .take(64)
                        .map(|c| if c.is_control() { '?' } else { c })
                        .collect(),
                    location: code
                        .and_then(|c| c.trim().parse::<u8>().ok())
                        .filter(|l| *l <= crate::inventory::MAX_CM_LOCATION)
                        .unwrap_or(u8::MAX),
                    is_default: default.is_some_and(|d| {
                        let d = d.trim();
                        d == "1" || d.eq_ignore_ascii_case("true")
                    }),
                })
                .collect(),
        ))
    }

    /// A connection whose default database is `db` (an absent one is typed here).
    async fn conn_in(&self, db: &str) -> Result<Conn, MetaDbError> {
        let mut c = self.conn().await?;
        c.query_drop(sqltext::use_database(db))
            .await
            .map_err(|e| self.classify(e, Some(db)))?;
        Ok(c)
    }

    /// The heartbeat prune's table swap ([`sqltext::HeartbeatSwap`]) on `c` (in `hb_db`,
    /// OMS stopped, `newest` read): declined, with nothing changed, when the table has a
    /// trigger or a foreign key, or when the new table's definition is not the old one's
    /// (anything `CREATE TABLE ... LIKE` did not copy: partitioning, a flavour's options).
    /// Any error before the RENAME drops the new table and declines too, so the caller's
    /// DELETE batches (which need nothing but DELETE) run as before the swap existed.
    /// issue 16: the old table is neither counted nor dropped here (540 ms and 44 ms for
    /// 3.16 M rows, inside the downtime window): it stays, renamed to the run's `<old>`,
    /// for `drop-pruned-heartbeat` after T2; the heartbeat dump leaves it out.
    async fn swap_heartbeat(
        &self,
        c: &mut Conn,
        hb_db: &str,
        swap: &sqltext::HeartbeatSwap,
        newest: i64,
    ) -> Result<Swapped, MetaDbError> {
        // A server that cannot say (no such view) is treated as one that has them.
        let tied = async {
            let triggers: Option<u64> = c.exec_first(sqltext::HEARTBEAT_TRIGGERS, (hb_db,)).await?;
            let foreign_keys: Option<u64> = c
                .exec_first(sqltext::HEARTBEAT_FOREIGN_KEYS, (hb_db,))
                .await?;
            Ok::<_, mysql_async::Error>(triggers.unwrap_or(0) + foreign_keys.unwrap_or(0))
        }
        .await;
        if !matches!(tied, Ok(0)) {
            return Ok(Swapped::Declined);
        }
        // A foreign key of another database referencing the heartbeat table would move to
        // `<old>` with the RENAME, and only `drop-pruned-heartbeat`, after T2, would find it
        // (its DROP refused). InnoDB's own list of foreign keys answers by the referenced
        // table's name without opening every table of the server (which the
        // `REFERENTIAL_CONSTRAINTS` view would); a server or user that cannot read it (no
        // such view, no PROCESS privilege) cannot say, and the swap goes ahead.
        let referenced = format!("{hb_db}/{}", crate::steps::HEARTBEAT_TABLE);
        for sql in sqltext::HEARTBEAT_INNODB_REFERENCES {
            if let Ok(Some(n)) = c.exec_first::<u64, _, _>(*sql, (&referenced,)).await {
                if n > 0 {
                    return Ok(Swapped::Declined);
                }
                break;
            }
        }
        let prepared = async {
            let before: Option<(String, String)> =
                c.query_first(sqltext::HEARTBEAT_SHOW_CREATE).await?;
            c.query_drop(swap.create_keep()).await?;
            c.exec_drop(swap.copy_newest(), (newest,)).await?;
            if let Some(next) = before
                .as_ref()
                .and_then(|(_, sql)| sqltext::auto_increment_option(sql))
            {
                c.query_drop(swap.set_auto_increment(next)).await?;
            }
            let after: Option<(String, String)> = c.query_first(swap.show_create_keep()).await?;
            let same = matches!((&before, &after), (Some((_, a)), Some((_, b)))
                if sqltext::same_table_definition(a, crate::steps::HEARTBEAT_TABLE, b, &swap.keep));
            Ok::<_, mysql_async::Error>(same)
        }
        .await;
        match prepared {
            Ok(true) => {}
            // Declined, or failed before the RENAME: the original is untouched; the new
            // table is dropped now (or, if that fails too, by the next attempt's clean-up).
            Ok(false) | Err(_) => {
                let _ = c
                    .query_drop(sqltext::HeartbeatSwap::drop_if_exists(&swap.keep))
                    .await;
                return Ok(Swapped::Declined);
            }
        };
        if c.query_drop(swap.rename()).await.is_err() {
            // The RENAME is atomic: nothing was renamed.
            let _ = c
                .query_drop(sqltext::HeartbeatSwap::drop_if_exists(&swap.keep))
                .await;
            return Ok(Swapped::Declined);
        }
        // The old rows are in `<old>` now; `drop-pruned-heartbeat` counts and drops them
        // after T2. A foreign key from another database that referenced the heartbeat table
        // moved along with the RENAME (InnoDB renames references too); the later DROP is
        // then refused and says so (docs/prune.md).
        super::crash_point("prune-swap-renamed");
        Ok(Swapped::Done)
    }
}

/// issue 16: what `init` measures for the downtime estimate (`crate::estimate`). Reads
/// only: `information_schema` and a bounded `SELECT` of one table.
impl MysqlMetaDb {
    /// Each database's tables, rows, data and index sizes. InnoDB's statistics lag behind
    /// bulk writes (see `database_sizes`), so the data size is at least what the tablespace
    /// files hold beyond the indexes.
    pub async fn measure_databases(
        &self,
        names: &[String],
    ) -> Result<Vec<crate::estimate::DbMeasure>, MetaDbError> {
        let totals = self.database_sizes(names).await?;
        let mut out: Vec<crate::estimate::DbMeasure> = names
            .iter()
            .map(|n| crate::estimate::DbMeasure {
                name: n.clone(),
                tables: 0,
                rows: 0,
                data_bytes: 0,
                index_bytes: 0,
            })
            .collect();
        if names.is_empty() {
            return Ok(out);
        }
        let mut c = self.conn().await?;
        let placeholders = vec!["?"; names.len()].join(",");
        let sql = format!(
            "SELECT TABLE_SCHEMA, CAST(COUNT(*) AS UNSIGNED), \
             CAST(COALESCE(SUM(TABLE_ROWS), 0) AS UNSIGNED), \
             CAST(COALESCE(SUM(DATA_LENGTH), 0) AS UNSIGNED), \
             CAST(COALESCE(SUM(INDEX_LENGTH), 0) AS UNSIGNED) \
             FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA IN ({placeholders}) AND TABLE_TYPE = 'BASE TABLE' \
             GROUP BY TABLE_SCHEMA"
        );
        let rows: Vec<(String, u64, u64, u64, u64)> = c
            .exec(sql, names.to_vec())
            .await
            .map_err(|e| self.classify(e, None))?;
        for (db, tables, rows, data, index) in rows {
            if let Some(m) = out.iter_mut().find(|m| m.name == db) {
                let total = totals.get(&db).copied().unwrap_or(0);
                *m = crate::estimate::DbMeasure {
                    name: db,
                    tables,
                    rows,
                    data_bytes: data.max(total.saturating_sub(index)),
                    index_bytes: index,
                };
            }
        }
        Ok(out)
    }

    /// The heartbeat table's rows as InnoDB's statistics count them (`TABLE_ROWS`; 0 when
    /// the table is absent): what `prune-heartbeat` will delete, read without counting.
    pub async fn heartbeat_rows(&self, hb_db: &str) -> Result<u64, MetaDbError> {
        let mut c = self.conn().await?;
        let n: Option<u64> = c
            .exec_first(
                "SELECT CAST(COALESCE(TABLE_ROWS, 0) AS UNSIGNED) FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (hb_db, crate::steps::HEARTBEAT_TABLE),
            )
            .await
            .map_err(|e| self.classify(e, Some(hb_db)))?;
        Ok(n.unwrap_or(0))
    }

    /// A short read of the largest table among `names`' (by data size) through the text
    /// protocol the native dumper reads with: rows until `max_bytes` of values or `max_time`
    /// have gone by, the `SELECT` limited to about `max_bytes` of rows (by the table's
    /// average row length) so that what is left unread stays small. `None` when no table
    /// among the first few candidates has a row.
    pub async fn read_probe(
        &self,
        names: &[String],
        max_bytes: u64,
        max_time: Duration,
    ) -> Result<Option<crate::estimate::ReadProbe>, MetaDbError> {
        if names.is_empty() {
            return Ok(None);
        }
        let mut c = self.conn().await?;
        let placeholders = vec!["?"; names.len()].join(",");
        // A few candidates: statistics may call an empty table the largest.
        let sql = format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, CAST(COALESCE(AVG_ROW_LENGTH, 0) AS UNSIGNED) \
             FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA IN ({placeholders}) AND TABLE_TYPE = 'BASE TABLE' \
             ORDER BY DATA_LENGTH DESC, TABLE_ROWS DESC LIMIT 3"
        );
        let candidates: Vec<(String, String, u64)> = c
            .exec(sql, names.to_vec())
            .await
            .map_err(|e| self.classify(e, None))?;
        let started = std::time::Instant::now();
        for (db, table, avg_row) in candidates {
            if started.elapsed() >= max_time {
                break;
            }
            // Without a row length the limit is a count that is small whatever the rows. The
            // average is a statistic that lags behind bulk writes (it read 79 KB for rows of
            // 15 KB right after the 1 GB demo's seeding), so the limit allows four times the
            // rows it predicts: the read stops at `max_bytes` or `max_time` first.
            let limit = match avg_row {
                0 => PROBE_ROWS_UNKNOWN_LENGTH,
                n => (max_bytes / n)
                    .saturating_mul(4)
                    .clamp(PROBE_ROWS_MIN, PROBE_ROWS_MAX),
            };
            let sql = format!(
                "SELECT * FROM {}.{} LIMIT {limit}",
                sqltext::quote_ident(&db),
                sqltext::quote_ident(&table)
            );
            let t0 = std::time::Instant::now();
            let (mut bytes, mut rows, mut micros) = (0u64, 0u64, 0u64);
            {
                let mut result = c
                    .query_iter(sql)
                    .await
                    .map_err(|e| self.classify(e, Some(&db)))?;
                while let Some(row) = result
                    .next()
                    .await
                    .map_err(|e| self.classify(e, Some(&db)))?
                {
                    for i in 0..row.len() {
                        if let Some(mysql_async::Value::Bytes(b)) = row.as_ref(i) {
                            bytes += b.len() as u64;
                        }
                    }
                    rows += 1;
                    let took = t0.elapsed();
                    micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
                    if bytes >= max_bytes || took >= max_time {
                        break;
                    }
                }
                // What is left of the bounded result is read off here, not timed.
                if let Err(e) = result.drop_result().await {
                    return Err(self.classify(e, Some(&db)));
                }
            }
            if rows > 0 {
                return Ok(Some(crate::estimate::ReadProbe {
                    table: format!("{db}.{table}"),
                    bytes,
                    rows,
                    micros: micros.max(1),
                }));
            }
        }
        Ok(None)
    }
}

/// The probe's row limit when the table's average row length is unknown.
const PROBE_ROWS_UNKNOWN_LENGTH: u64 = 10_000;
/// The probe's smallest row limit when the average row length is known.
const PROBE_ROWS_MIN: u64 = 1_000;
/// The probe's row limit whatever the row length.
const PROBE_ROWS_MAX: u64 = 1_000_000;

/// How many rows of the cm database's `host` table [`MysqlMetaDb::servers_listed`] reads.
pub const MAX_SERVERS_SHOWN: usize = 64;

/// One row as `column=value ...`, each value at most 64 characters, control characters
/// replaced.
fn shown_row(row: &mysql_async::Row) -> String {
    use mysql_async::Value as V;
    let cols = row.columns_ref();
    (0..row.len())
        .map(|i| {
            let v = match row.as_ref(i) {
                None | Some(V::NULL) => "NULL".to_string(),
                Some(V::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
                Some(V::Int(n)) => n.to_string(),
                Some(V::UInt(n)) => n.to_string(),
                Some(V::Float(f)) => f.to_string(),
                Some(V::Double(f)) => f.to_string(),
                Some(other) => format!("{other:?}"),
            };
            let v: String = v
                .chars()
                .take(64)
                .map(|c| if c.is_control() { '?' } else { c })
                .collect();
            format!("{}={v}", cols[i].name_str().escape_debug())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sorts a driver error into the typed variants.
fn classify(e: mysql_async::Error, url: &str, user: &str, db: Option<&str>) -> MetaDbError {
    use mysql_async::Error as E;
    match e {
        E::Server(s) => match s.code {
            // ER_ACCESS_DENIED_ERROR: wrong user or password.
            1045 => MetaDbError::AccessDenied {
                user: user.to_string(),
                url: url.to_string(),
            },
            // ER_DBACCESS_DENIED_ERROR, ER_TABLEACCESS_DENIED_ERROR, ER_SPECIFIC_ACCESS_DENIED.
            1044 | 1142 | 1143 | 1227 => MetaDbError::NotPermitted {
                url: url.to_string(),
                message: s.message,
            },
            // ER_BAD_DB_ERROR.
            1049 => MetaDbError::UnknownDatabase {
                name: db.map(str::to_string).unwrap_or_else(|| s.message.clone()),
            },
            _ => MetaDbError::Query {
                url: url.to_string(),
                message: s.to_string(),
            },
        },
        E::Driver(mysql_async::DriverError::NoClientSslFlagFromServer) => {
            MetaDbError::TlsUnavailable {
                url: url.to_string(),
            }
        }
        E::Io(io) => MetaDbError::Unreachable {
            url: url.to_string(),
            detail: io.to_string(),
        },
        E::Driver(d) => MetaDbError::Unreachable {
            url: url.to_string(),
            detail: d.to_string(),
        },
        other => MetaDbError::Query {
            url: url.to_string(),
            message: other.to_string(),
        },
    }
}

use crate::sqltext;
pub use crate::sqltext::quote_ident;

fn check_charset_name(s: &str) -> Result<&str, MetaDbError> {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(s)
    } else {
        Err(MetaDbError::InvalidCharset(s.to_string()))
    }
}

impl MetaDb for MysqlMetaDb {
    async fn ping(&self) -> Result<ServerInfo, MetaDbError> {
        let mut c = self.conn().await?;
        let row: Option<(Option<String>, Option<String>)> = c
            .query_first(sqltext::SERVER_IDENTITY)
            .await
            .map_err(|e| self.classify(e, None))?;
        let (version, version_comment) = row.unwrap_or_default();
        let (version, version_comment) = (
            version.unwrap_or_default(),
            version_comment.unwrap_or_default(),
        );
        Ok(ServerInfo {
            flavour: sqltext::server_flavour(&version, &version_comment),
            version,
            version_comment,
        })
    }

    async fn database_exists(&self, name: &str) -> Result<bool, MetaDbError> {
        let mut c = self.conn().await?;
        let n: Option<u64> = c
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
                (name,),
            )
            .await
            .map_err(|e| self.classify(e, None))?;
        Ok(n.unwrap_or(0) > 0)
    }

    async fn database_sizes(&self, names: &[String]) -> Result<BTreeMap<String, u64>, MetaDbError> {
        let mut out: BTreeMap<String, u64> = names.iter().map(|n| (n.clone(), 0)).collect();
        if names.is_empty() {
            return Ok(out);
        }
        let mut c = self.conn().await?;
        let placeholders = vec!["?"; names.len()].join(",");
        let sql = format!(
            "SELECT TABLE_SCHEMA, CAST(COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) AS UNSIGNED) \
             FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ({placeholders}) \
             GROUP BY TABLE_SCHEMA"
        );
        let rows: Vec<(String, u64)> = c
            .exec(sql, names.to_vec())
            .await
            .map_err(|e| self.classify(e, None))?;
        for (db, bytes) in rows {
            out.insert(db, bytes);
        }
        // InnoDB's sizes in `TABLES` are statistics recomputed in the background: right
        // after a bulk write a database of 400 MB shows 64 KiB (measured on MariaDB 10.11).
        // The tablespace files' sizes do not lag; where the server shows them (MariaDB:
        // INNODB_SYS_TABLESPACES, MySQL 8: INNODB_TABLESPACES) the larger figure counts.
        // Tablespace names are `<db>/<table>` with special characters encoded, so a
        // database whose name needs encoding keeps the `TABLES` figure.
        for view in ["INNODB_SYS_TABLESPACES", "INNODB_TABLESPACES"] {
            let sql = format!(
                "SELECT SUBSTRING_INDEX(NAME, '/', 1), \
                 CAST(COALESCE(SUM(FILE_SIZE), 0) AS UNSIGNED) \
                 FROM information_schema.{view} \
                 WHERE SUBSTRING_INDEX(NAME, '/', 1) IN ({placeholders}) \
                 GROUP BY SUBSTRING_INDEX(NAME, '/', 1)"
            );
            // A server without the view (or without the privilege to read it) keeps the
            // statistics' figure.
            let Ok(rows): Result<Vec<(String, u64)>, _> = c.exec(sql, names.to_vec()).await else {
                continue;
            };
            for (db, bytes) in rows {
                if let Some(v) = out.get_mut(&db) {
                    *v = (*v).max(bytes);
                }
            }
            break;
        }
        Ok(out)
    }

    async fn read_ha_config(&self, rm_db: &str) -> Result<Option<String>, MetaDbError> {
        let mut c = self.conn_in(rm_db).await?;
        let v: Option<Option<String>> = c
            .query_first(sqltext::HA_SELECT)
            .await
            .map_err(|e| self.classify(e, Some(rm_db)))?;
        // A NULL value counts as an empty one: the row exists.
        Ok(v.map(Option::unwrap_or_default))
    }

    async fn write_ha_config(
        &self,
        rm_db: &str,
        expected_previous: &str,
        new_json: &str,
    ) -> Result<HaWriteOutcome, MetaDbError> {
        let mut c = self.conn_in(rm_db).await?;
        let err = |e| classify(e, &self.url, &self.user, Some(rm_db));
        let mut tx = c.start_transaction(TxOpts::default()).await.map_err(err)?;
        let current: Option<Option<String>> = tx
            .query_first(sqltext::HA_SELECT_FOR_UPDATE)
            .await
            .map_err(err)?;
        let Some(current) = current.map(Option::unwrap_or_default) else {
            tx.rollback().await.map_err(err)?;
            return Err(MetaDbError::HaConfigMissing {
                db: rm_db.to_string(),
            });
        };
        let already_written = current == new_json;
        if !already_written {
            if current != expected_previous {
                tx.rollback().await.map_err(err)?;
                return Err(MetaDbError::HaConfigChanged {
                    db: rm_db.to_string(),
                    expected: expected_previous.to_string(),
                    found: current,
                });
            }
            tx.exec_drop(sqltext::HA_UPDATE, (new_json,))
                .await
                .map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        let read: Option<Option<String>> = c.query_first(sqltext::HA_SELECT).await.map_err(err)?;
        let read = read.flatten().unwrap_or_default();
        if read != new_json {
            return Err(MetaDbError::HaConfigReadBack {
                db: rm_db.to_string(),
                wrote: new_json.to_string(),
                read,
            });
        }
        Ok(HaWriteOutcome { already_written })
    }

    async fn prune_heartbeat_with(
        &self,
        hb_db: &str,
        opts: PruneOptions,
        progress: PruneProgress<'_>,
    ) -> Result<PruneOutcome, MetaDbError> {
        let flavour = match opts.flavour {
            Some(f) => f,
            None => self.ping().await?.flavour,
        };
        let mut out = PruneOutcome::starting(&opts, flavour);
        let mut c = self.conn_in(hb_db).await?;
        let err = |e| classify(e, &self.url, &self.user, Some(hb_db));
        for sql in sqltext::session_setup(flavour) {
            c.query_drop(sql).await.map_err(err)?;
        }
        let exists: Option<u64> = c
            .exec_first(sqltext::HEARTBEAT_TABLE_EXISTS, (hb_db,))
            .await
            .map_err(err)?;
        if exists.unwrap_or(0) == 0 {
            out.table_missing = true;
            return Ok(out);
        }
        // `max(id)` first, then batches below it, not `delete ... where id < (select
        // max(id) ...)`: MySQL 8 rejects a subquery on the DELETE's own table (error 1093).
        //
        // Killed at any point, this is safe to run again from the start: each batch deletes
        // only rows below the newest id, and with OMS stopped (the prune runs after T1) no
        // heartbeat is written, so a second run reads the same newest id and deletes what
        // the first left, ending in the same one row. Each DELETE commits on its own, so a
        // kill loses at most the batch in flight, which the server rolls back.
        //
        // The table swap (a large table, a run tag given) is kill-safe the same way: a
        // `_keep` table left by a kill before its RENAME is the run's own work table (named
        // after its id) and holds nothing that is still needed, so it is dropped first, on
        // every attempt; the heartbeat table itself always exists (the RENAME is atomic)
        // and holds either every row or only the newest. An `_old` one means the RENAME
        // happened: it holds the rows moved aside, left for `drop-pruned-heartbeat` to
        // count after T2 (issue 16), and this attempt finds one row and does nothing.
        let swap = opts.swap_tag.map(sqltext::HeartbeatSwap::for_run);
        if let Some(swap) = &swap {
            let left: Vec<String> = c
                .exec(
                    sqltext::HEARTBEAT_SWAP_LEFTOVERS,
                    (hb_db, &swap.keep, &swap.old),
                )
                .await
                .map_err(err)?;
            for table in left.iter().filter(|t| **t == swap.keep) {
                c.query_drop(sqltext::HeartbeatSwap::drop_if_exists(table))
                    .await
                    .map_err(err)?;
            }
            out.moved_aside = left.contains(&swap.old);
        }
        let max_id: Option<Option<i64>> = c
            .query_first(sqltext::HEARTBEAT_MAX_ID)
            .await
            .map_err(err)?;
        out.max_id = max_id.flatten();
        let Some(newest) = out.max_id else {
            return Ok(out);
        };
        if let Some(swap) = &swap {
            let oldest: Option<Option<i64>> = c
                .query_first(sqltext::HEARTBEAT_MIN_ID)
                .await
                .map_err(err)?;
            let below = oldest
                .flatten()
                .map_or(0, |o| newest.saturating_sub(o).max(0) as u64);
            if below >= sqltext::HEARTBEAT_SWAP_MIN_ROWS {
                if let Swapped::Done = self.swap_heartbeat(&mut c, hb_db, swap, newest).await? {
                    out.moved_aside = true;
                    progress(below, 0, below);
                    return Ok(out);
                }
            }
        }
        let mut total = None;
        loop {
            let oldest: Option<Option<i64>> = c
                .query_first(sqltext::HEARTBEAT_MIN_ID)
                .await
                .map_err(err)?;
            let Some(oldest) = oldest.flatten() else {
                break;
            };
            let total = *total.get_or_insert_with(|| newest.saturating_sub(oldest).max(0) as u64);
            let Some(bound) = sqltext::heartbeat_batch_bound(oldest, newest, out.batch_rows) else {
                break;
            };
            c.exec_drop(sqltext::HEARTBEAT_PRUNE, (bound,))
                .await
                .map_err(err)?;
            out.rows_deleted += c.affected_rows();
            out.batches += 1;
            progress(out.rows_deleted, out.batches, total);
            super::crash_point("prune-batch");
        }
        Ok(out)
    }

    async fn drop_pruned_heartbeat(
        &self,
        hb_db: &str,
        table: &str,
    ) -> Result<Option<u64>, MetaDbError> {
        let flavour = self.ping().await?.flavour;
        let mut c = self.conn_in(hb_db).await?;
        let err = |e| classify(e, &self.url, &self.user, Some(hb_db));
        for sql in sqltext::session_setup(flavour) {
            c.query_drop(sql).await.map_err(err)?;
        }
        let exists: Option<u64> = c
            .exec_first(sqltext::TABLE_EXISTS, (hb_db, table))
            .await
            .map_err(err)?;
        if exists.unwrap_or(0) == 0 {
            return Ok(None);
        }
        let rows: Option<u64> = c
            .query_first(sqltext::count_pruned(table))
            .await
            .map_err(err)?;
        super::crash_point("drop-pruned-counted");
        c.query_drop(sqltext::HeartbeatSwap::drop_if_exists(table))
            .await
            .map_err(|e| MetaDbError::Query {
                url: self.url.clone(),
                message: format!(
                    "cannot drop `{hb_db}`.`{table}`, which holds the heartbeat rows the prune moved aside: {e}. \
                     If a foreign key of another database references it, remove that key, then run again"
                ),
            })?;
        Ok(Some(rows.unwrap_or(0)))
    }

    async fn database_charset(&self, db: &str) -> Result<Option<DbCharset>, MetaDbError> {
        let mut c = self.conn().await?;
        let row: Option<(String, String)> = c
            .exec_first(
                "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME \
                 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
                (db,),
            )
            .await
            .map_err(|e| self.classify(e, Some(db)))?;
        Ok(row.map(|(charset, collation)| DbCharset { charset, collation }))
    }

    async fn drop_and_create(&self, db: &str) -> Result<DbCharset, MetaDbError> {
        let charset =
            self.database_charset(db)
                .await?
                .ok_or_else(|| MetaDbError::UnknownDatabase {
                    name: db.to_string(),
                })?;
        self.recreate_database(db, &charset).await?;
        Ok(charset)
    }

    async fn recreate_database(&self, db: &str, charset: &DbCharset) -> Result<(), MetaDbError> {
        let cs = check_charset_name(&charset.charset)?;
        let co = check_charset_name(&charset.collation)?;
        let mut c = self.conn().await?;
        c.query_drop(sqltext::drop_database(db))
            .await
            .map_err(|e| self.classify(e, Some(db)))?;
        // A crash here leaves the database absent: the step must resume from that too.
        super::crash_point(&format!("after-drop:{db}"));
        c.query_drop(sqltext::create_database(db, cs, co))
            .await
            .map_err(|e| self.classify(e, Some(db)))?;
        Ok(())
    }

    async fn list_servers(&self, cm_db: &str) -> Result<ServerList, MetaDbError> {
        let mut c = self.conn().await?;
        let cols: Vec<(String, String)> = c
            .exec(sqltext::SERVER_TABLE_COLUMNS, (cm_db,))
            .await
            .map_err(|e| self.classify(e, Some(cm_db)))?;
        let has = |t: &str, col: &str| {
            cols.iter()
                .any(|(tt, cc)| tt.eq_ignore_ascii_case(t) && cc.eq_ignore_ascii_case(col))
        };
        if !has("host", "ip") {
            return Ok(ServerList::default());
        }
        let with_group = has("host", "resource_group_id")
            && has("resource_group", "id")
            && has("resource_group", "name");
        let status_column = has("host", "status");
        // Text protocol: every value arrives as text, whatever the column type.
        let rows: Vec<(Option<String>, Option<String>, Option<String>)> = c
            .query(sqltext::list_servers(cm_db, with_group, status_column))
            .await
            .map_err(|e| self.classify(e, Some(cm_db)))?;
        let clean = |v: String| -> String {
            v.chars()
                .take(64)
                .map(|c| if c.is_control() { '?' } else { c })
                .collect()
        };
        Ok(ServerList {
            host_table: true,
            status_column,
            servers: rows
                .into_iter()
                .map(|(ip, group, status)| ListedServer {
                    ip: clean(ip.unwrap_or_else(|| "NULL".into())),
                    group: group.map(clean),
                    status: status.map(clean),
                })
                .collect(),
        })
    }

    async fn query_scalar(&self, db: &str, sql: &str) -> Result<Option<String>, MetaDbError> {
        let mut c = self.conn_in(db).await?;
        // Text protocol: every value arrives as text, whatever the column type.
        let v: Option<Option<String>> = c
            .query_first(sql)
            .await
            .map_err(|e| self.classify(e, Some(db)))?;
        Ok(v.flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charset_names_are_plain() {
        // Identifiers are quoted by `crate::sqltext` (tested there).
        assert!(check_charset_name("utf8mb4_bin").is_ok());
        assert!(check_charset_name("utf8; DROP").is_err());
    }

    /// The driver's `Pool`/`Opts` print the password in their `Debug`; the client must not.
    #[tokio::test]
    async fn debug_does_not_print_the_password() {
        let db = MysqlMetaDb::new(&DbTarget {
            host: "127.0.0.1".into(),
            port: 1,
            user: "oms".into(),
            password: crate::secret::Secret::new("pw-Zq81-never-printed"),
            tls: TlsSettings::default(),
        });
        let shown = format!("{db:?} {db:#?}");
        assert!(!shown.contains("pw-Zq81-never-printed"), "{shown}");
        assert!(shown.contains("mysql://oms@127.0.0.1:1"), "{shown}");
        db.close().await;
    }
}
