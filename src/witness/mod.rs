//! The witness: a copy of every ledger record, kept off the node in an append-only table on
//! a shared MySQL-protocol database (MariaDB, MySQL, an OceanBase tenant), so that a ledger
//! truncated, rewritten or replaced on the node is caught by comparing it with the copy.
//!
//! The witness stores each record's exact stored bytes with its hash, sequence number,
//! ledger id and the node that pushed it. It never updates or deletes a row; the writer it
//! needs has INSERT and SELECT only. Its primary key is `(ledger id, seq, hash)`, so a second
//! history written under one ledger id is not refused by the database but kept beside the
//! first as evidence: two rows at one `(ledger id, seq)` are a **fork**, and the pusher stops
//! and says so. Layout: `ledger-schema/WITNESS.md`.
//!
//! - [`Witness`]: the small async trait the rest of the tool talks to;
//! - [`MemoryWitness`]: an in-memory implementation with the same semantics, for unit tests
//!   and the simulator (it can be made unreachable);
//! - [`MysqlWitness`] (`mysql`): the witness on a MySQL-protocol server; [`schema`]: its
//!   tables and the grants `witness init` prints;
//! - [`bridge::Mirror`]: a witness behind a thread of its own, so the synchronous journal
//!   can push every record it appends (issue 14, the policies);
//! - [`WitnessTarget`]: where the witness is (`mysql://USER@HOST:PORT/DB`, never a password).
//!
//! What must never happen here: an UPDATE or DELETE statement, a password in a URL, a
//! witness database that is one of OMS's metadata databases (a rollback restores those).

pub mod bridge;
pub mod compare;
pub mod mysql;
pub mod schema;

pub use mysql::MysqlWitness;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Mutex;

use uuid::Uuid;

use crate::ledger::{Hash, Record};

/// Where the witness is: `mysql://USER@HOST:PORT/DB`. The password never travels in it
/// (it comes from `OMS_WITNESS_PASSWORD` or a file), so the URL can be recorded and shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessTarget {
    /// Login user.
    pub user: String,
    /// Server host name or address.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// The witness database (schema).
    pub database: String,
}

/// Why a witness URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not of the form `mysql://USER@HOST:PORT/DB`.
    #[error("`{url}` is not a witness URL of the form mysql://USER@HOST:PORT/DB: {reason}")]
    Malformed {
        /// What was given (with any password removed).
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The URL carried a password.
    #[error(
        "the witness URL carries a password; give it in OMS_WITNESS_PASSWORD or \
         --witness-password-file instead, so it never appears in argv or the record"
    )]
    PasswordInUrl,
    /// The database is one of OMS's metadata databases, which a rollback restores.
    #[error(
        "`{database}` is one of OMS's metadata databases, which a rollback restores to an \
         older state; the witness must live in a database of its own"
    )]
    MetadataDatabase {
        /// The refused name.
        database: String,
    },
}

impl WitnessTarget {
    /// Parses `mysql://USER@HOST:PORT/DB` (port defaults to 3306). Refuses a password in
    /// the URL, and names that could not be used as quoted identifiers.
    pub fn parse(url: &str) -> Result<WitnessTarget, TargetError> {
        let malformed = |reason| TargetError::Malformed {
            url: strip_password(url),
            reason,
        };
        let rest = url
            .strip_prefix("mysql://")
            .ok_or_else(|| malformed("it must start with mysql://"))?;
        let (authority, database) = rest
            .split_once('/')
            .ok_or_else(|| malformed("it names no database (/DB)"))?;
        // The last `@` ends the user: OceanBase users are `user@tenant` (and
        // `user@tenant#cluster` through OBProxy), written raw or as %40 and %23.
        let (userinfo, hostport) = authority
            .rsplit_once('@')
            .ok_or_else(|| malformed("it names no user (USER@HOST)"))?;
        if userinfo.contains(':') {
            return Err(TargetError::PasswordInUrl);
        }
        let user = userinfo.replace("%40", "@").replace("%23", "#");
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| malformed("the port is not a number from 1 to 65535"))?,
            ),
            None => (hostport, 3306),
        };
        if !schema::is_plain(&user, 128, b"@#") {
            return Err(malformed(
                "the user must be 1-128 characters of letters, digits, _ - . (and @ # for an \
                 OceanBase tenant user, raw or as %40 %23)",
            ));
        }
        if host.is_empty() || port == 0 {
            return Err(malformed("the host or port is empty"));
        }
        if !schema::is_plain(database, 64, b"") || database.contains('.') {
            return Err(malformed(
                "the database must be 1-64 characters of letters, digits, _ -",
            ));
        }
        Ok(WitnessTarget {
            user,
            host: host.to_string(),
            port,
            database: database.to_string(),
        })
    }

    /// The target a plan recorded, parsed. `None` only for a plan whose bytes were altered
    /// (a plan is recorded from a target that parsed): the caller says so.
    pub fn from_plan(plan: &crate::events::WitnessPlan) -> Option<WitnessTarget> {
        WitnessTarget::parse(&plan.target).ok()
    }

    /// Refuses a target whose database is one of `metadata_dbs` (case-insensitive, as
    /// MySQL compares database names on case-insensitive file systems).
    pub fn refuse_metadata(&self, metadata_dbs: &[&str]) -> Result<(), TargetError> {
        if metadata_dbs
            .iter()
            .any(|m| m.eq_ignore_ascii_case(&self.database))
        {
            return Err(TargetError::MetadataDatabase {
                database: self.database.clone(),
            });
        }
        Ok(())
    }
}

impl fmt::Display for WitnessTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "mysql://{}@{}:{}/{}",
            // Encoded so that the last `@` is the one before the host, and `parse` reads
            // back this very target.
            self.user.replace('@', "%40").replace('#', "%23"),
            self.host,
            self.port,
            self.database
        )
    }
}

/// `url` with anything between `://` and `@` after a `:` removed, for error messages.
fn strip_password(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((userinfo, tail)) = rest.split_once('@')
        && let Some((user, _)) = userinfo.split_once(':')
    {
        return format!("{scheme}://{user}:***@{tail}");
    }
    url.to_string()
}

/// What the run does when the witness cannot be reached: a fact of the plan, so it lives
/// with the events ([`crate::events::WitnessPolicy`]).
pub use crate::events::WitnessPolicy;

/// One record as the witness holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessRecord {
    /// The ledger it belongs to.
    pub ledger_id: Uuid,
    /// Its sequence number.
    pub seq: u64,
    /// The hash column (what the pusher said the hash is; a reader recomputes it from
    /// `stored` and compares).
    pub hash: Hash,
    /// The exact stored bytes, as in the local ledger.
    pub stored: Vec<u8>,
    /// The node identity the pusher gave.
    pub node: String,
}

/// One ledger the witness knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessLedger {
    /// The ledger id.
    pub ledger_id: Uuid,
    /// The node that first pushed it.
    pub node: String,
}

/// One signed checkpoint as the witness holds it (the exact text of the checkpoint file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessCheckpoint {
    /// The ledger it is about.
    pub ledger_id: Uuid,
    /// The sequence number it covers.
    pub seq: u64,
    /// The head hash it names.
    pub head: Hash,
    /// The checkpoint file's exact text.
    pub text: String,
}

/// What a push did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Rows inserted by this push.
    pub inserted: u64,
    /// Records that were already on the witness with the same hash (an earlier push, or
    /// a push retried after a lost reply): not inserted again.
    pub already_there: u64,
}

/// Why the witness could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// The server could not be reached, or the connection broke.
    #[error("the witness {target} cannot be reached: {reason}")]
    Unreachable {
        /// Where (no password).
        target: String,
        /// What the client said.
        reason: String,
    },
    /// The server refused the login or a statement (privileges, missing schema).
    #[error("the witness {target} refused {what}: {reason}")]
    Refused {
        /// Where (no password).
        target: String,
        /// What was asked.
        what: &'static str,
        /// What the server said.
        reason: String,
    },
    /// The witness already holds a different record at this (ledger id, seq): two histories
    /// were written under one ledger id. The pushed record is kept beside the other as
    /// evidence; nothing further is pushed.
    #[error(
        "fork: the witness holds {} record(s) for ledger {ledger_id} seq {seq} that differ \
         from this ledger's ({ours}); two histories were written under one ledger id",
        theirs.len()
    )]
    Fork {
        /// The ledger.
        ledger_id: Uuid,
        /// Where the histories part.
        seq: u64,
        /// This ledger's record hash at `seq`.
        ours: Hash,
        /// The other hashes the witness holds at `seq`.
        theirs: Vec<Hash>,
    },
    /// A row read back from the witness is not well-formed (a hash column that is not 32
    /// bytes, a ledger id that is not 16, ...).
    #[error("the witness row for ledger {ledger_id} seq {seq} is malformed: {reason}")]
    Malformed {
        /// The ledger.
        ledger_id: Uuid,
        /// The row's seq.
        seq: u64,
        /// What is wrong.
        reason: String,
    },
}

/// The witness as the rest of the tool sees it. Implementations never update or delete.
pub trait Witness: Send + Sync {
    /// Inserts `records` (all of one ledger, ascending seq), each with `node`. A record
    /// already there with the same hash is counted, not inserted again; a different record
    /// at the same (ledger id, seq) is inserted beside it and reported as
    /// [`WitnessError::Fork`] (nothing after it is pushed).
    fn push(
        &self,
        node: &str,
        records: &[Record],
    ) -> impl Future<Output = Result<PushReport, WitnessError>> + Send;

    /// The highest seq the witness holds for `ledger_id`, with its hash(es) (more than one
    /// hash is a fork). `None` when it holds nothing for the ledger.
    fn head(
        &self,
        ledger_id: Uuid,
    ) -> impl Future<Output = Result<Option<(u64, Vec<Hash>)>, WitnessError>> + Send;

    /// Every row for `ledger_id` with seq >= `from_seq`, ordered by seq then hash.
    fn records(
        &self,
        ledger_id: Uuid,
        from_seq: u64,
    ) -> impl Future<Output = Result<Vec<WitnessRecord>, WitnessError>> + Send;

    /// Every ledger the witness knows, ordered by ledger id.
    fn ledgers(&self) -> impl Future<Output = Result<Vec<WitnessLedger>, WitnessError>> + Send;

    /// Inserts a signed checkpoint (idempotent for the same text).
    fn push_checkpoint(
        &self,
        checkpoint: &WitnessCheckpoint,
    ) -> impl Future<Output = Result<(), WitnessError>> + Send;

    /// Every checkpoint for `ledger_id`, ordered by seq.
    fn checkpoints(
        &self,
        ledger_id: Uuid,
    ) -> impl Future<Output = Result<Vec<WitnessCheckpoint>, WitnessError>> + Send;
}

/// A shared witness is a witness: a test or the simulator keeps one handle while the
/// journal's bridge thread uses another.
impl<W: Witness> Witness for std::sync::Arc<W> {
    fn push(
        &self,
        node: &str,
        records: &[Record],
    ) -> impl Future<Output = Result<PushReport, WitnessError>> + Send {
        W::push(self, node, records)
    }
    fn head(
        &self,
        ledger_id: Uuid,
    ) -> impl Future<Output = Result<Option<(u64, Vec<Hash>)>, WitnessError>> + Send {
        W::head(self, ledger_id)
    }
    fn records(
        &self,
        ledger_id: Uuid,
        from_seq: u64,
    ) -> impl Future<Output = Result<Vec<WitnessRecord>, WitnessError>> + Send {
        W::records(self, ledger_id, from_seq)
    }
    fn ledgers(&self) -> impl Future<Output = Result<Vec<WitnessLedger>, WitnessError>> + Send {
        W::ledgers(self)
    }
    fn push_checkpoint(
        &self,
        checkpoint: &WitnessCheckpoint,
    ) -> impl Future<Output = Result<(), WitnessError>> + Send {
        W::push_checkpoint(self, checkpoint)
    }
    fn checkpoints(
        &self,
        ledger_id: Uuid,
    ) -> impl Future<Output = Result<Vec<WitnessCheckpoint>, WitnessError>> + Send {
        W::checkpoints(self, ledger_id)
    }
}

/// An in-memory witness with the database's semantics (primary key (ledger id, seq,
/// hash), no update, no delete), for tests and the simulator. [`MemoryWitness::set_reachable`]
/// makes every call fail as an unreachable server would.
#[derive(Debug, Default)]
pub struct MemoryWitness {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug)]
struct MemoryInner {
    reachable: bool,
    /// Calls answered before the witness goes away (`None`: no limit).
    calls_left: Option<u64>,
    rows: BTreeMap<(Uuid, u64, Hash), WitnessRecord>,
    ledgers: BTreeMap<Uuid, WitnessLedger>,
    checkpoints: BTreeMap<(Uuid, u64, String), WitnessCheckpoint>,
}

impl Default for MemoryInner {
    fn default() -> Self {
        MemoryInner {
            reachable: true,
            calls_left: None,
            rows: BTreeMap::new(),
            ledgers: BTreeMap::new(),
            checkpoints: BTreeMap::new(),
        }
    }
}

impl MemoryWitness {
    /// An empty, reachable witness.
    pub fn new() -> MemoryWitness {
        MemoryWitness::default()
    }

    /// Makes the witness reachable or not.
    pub fn set_reachable(&self, reachable: bool) {
        self.lock().reachable = reachable;
    }

    /// Answers `calls` more calls, then fails every call as an unreachable server would
    /// (`None`: no limit): a witness that goes away part-way through a run.
    pub fn unreachable_after(&self, calls: Option<u64>) {
        self.lock().calls_left = calls;
    }

    /// Every row of `ledger_id` now held, ordered by seq then hash (tests and the
    /// simulator's checks; no reachability applies).
    pub fn rows(&self, ledger_id: Uuid) -> Vec<WitnessRecord> {
        self.lock()
            .rows
            .values()
            .filter(|r| r.ledger_id == ledger_id)
            .cloned()
            .collect()
    }

    /// Inserts a row as a database administrator could, bypassing every check (tests of
    /// tampering at the witness).
    pub fn insert_raw(&self, row: WitnessRecord) {
        let mut g = self.lock();
        g.ledgers
            .entry(row.ledger_id)
            .or_insert_with(|| WitnessLedger {
                ledger_id: row.ledger_id,
                node: row.node.clone(),
            });
        g.rows.insert((row.ledger_id, row.seq, row.hash), row);
    }

    /// Replaces the stored bytes of a row, as a database administrator with UPDATE could.
    pub fn tamper(&self, ledger_id: Uuid, seq: u64, stored: Vec<u8>) -> bool {
        let mut g = self.lock();
        let key = g
            .rows
            .keys()
            .find(|(l, s, _)| *l == ledger_id && *s == seq)
            .copied();
        match key.and_then(|k| g.rows.get_mut(&k)) {
            Some(row) => {
                row.stored = stored;
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        // A panic while holding the lock leaves plain data behind; keep using it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check(&self) -> Result<std::sync::MutexGuard<'_, MemoryInner>, WitnessError> {
        let mut g = self.lock();
        let spent = g.calls_left == Some(0);
        if let Some(n) = &mut g.calls_left {
            *n = n.saturating_sub(1);
        }
        if !g.reachable || spent {
            return Err(WitnessError::Unreachable {
                target: "memory witness".into(),
                reason: "made unreachable by the test".into(),
            });
        }
        Ok(g)
    }
}

impl Witness for MemoryWitness {
    async fn push(&self, node: &str, records: &[Record]) -> Result<PushReport, WitnessError> {
        let mut g = self.check()?;
        let mut report = PushReport::default();
        for r in records {
            g.ledgers
                .entry(r.ledger_id)
                .or_insert_with(|| WitnessLedger {
                    ledger_id: r.ledger_id,
                    node: node.to_string(),
                });
            let key = (r.ledger_id, r.seq, r.hash);
            if let std::collections::btree_map::Entry::Vacant(e) = g.rows.entry(key) {
                e.insert(WitnessRecord {
                    ledger_id: r.ledger_id,
                    seq: r.seq,
                    hash: r.hash,
                    stored: r.stored.clone(),
                    node: node.to_string(),
                });
                report.inserted += 1;
            } else {
                report.already_there += 1;
            }
            let theirs: Vec<Hash> = g
                .rows
                .range((r.ledger_id, r.seq, Hash::ZERO)..=(r.ledger_id, r.seq, Hash([0xff; 32])))
                .map(|(k, _)| k.2)
                .filter(|h| *h != r.hash)
                .collect();
            if !theirs.is_empty() {
                return Err(WitnessError::Fork {
                    ledger_id: r.ledger_id,
                    seq: r.seq,
                    ours: r.hash,
                    theirs,
                });
            }
        }
        Ok(report)
    }

    async fn head(&self, ledger_id: Uuid) -> Result<Option<(u64, Vec<Hash>)>, WitnessError> {
        let g = self.check()?;
        let top = g
            .rows
            .keys()
            .filter(|k| k.0 == ledger_id)
            .map(|k| k.1)
            .max();
        Ok(top.map(|seq| {
            let hashes = g
                .rows
                .keys()
                .filter(|k| k.0 == ledger_id && k.1 == seq)
                .map(|k| k.2)
                .collect();
            (seq, hashes)
        }))
    }

    async fn records(
        &self,
        ledger_id: Uuid,
        from_seq: u64,
    ) -> Result<Vec<WitnessRecord>, WitnessError> {
        let g = self.check()?;
        Ok(g.rows
            .values()
            .filter(|r| r.ledger_id == ledger_id && r.seq >= from_seq)
            .cloned()
            .collect())
    }

    async fn ledgers(&self) -> Result<Vec<WitnessLedger>, WitnessError> {
        let g = self.check()?;
        Ok(g.ledgers.values().cloned().collect())
    }

    async fn push_checkpoint(&self, checkpoint: &WitnessCheckpoint) -> Result<(), WitnessError> {
        let mut g = self.check()?;
        g.checkpoints.insert(
            (
                checkpoint.ledger_id,
                checkpoint.seq,
                checkpoint.text.clone(),
            ),
            checkpoint.clone(),
        );
        Ok(())
    }

    async fn checkpoints(&self, ledger_id: Uuid) -> Result<Vec<WitnessCheckpoint>, WitnessError> {
        let g = self.check()?;
        Ok(g.checkpoints
            .values()
            .filter(|c| c.ledger_id == ledger_id)
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_parses_and_refuses() {
        let t = WitnessTarget::parse("mysql://writer@db.example:3307/oms_witness").unwrap();
        assert_eq!(t.user, "writer");
        assert_eq!(t.host, "db.example");
        assert_eq!(t.port, 3307);
        assert_eq!(t.database, "oms_witness");
        assert_eq!(t.to_string(), "mysql://writer@db.example:3307/oms_witness");
        assert_eq!(
            WitnessTarget::parse("mysql://w@h/d").unwrap().port,
            3306,
            "default port"
        );
        assert_eq!(
            WitnessTarget::parse("mysql://w:secret@h/d"),
            Err(TargetError::PasswordInUrl)
        );
        let e = WitnessTarget::parse("postgres://w:secret@h/d").unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
        assert!(WitnessTarget::parse("mysql://w@h/d`; DROP").is_err());
        assert!(WitnessTarget::parse("mysql://w@h:x/d").is_err());
        assert_eq!(
            t.refuse_metadata(&["oms_rm", "OMS_WITNESS"]),
            Err(TargetError::MetadataDatabase {
                database: "oms_witness".into()
            })
        );
        assert!(t.refuse_metadata(&["oms_rm"]).is_ok());
    }

    #[test]
    fn an_oceanbase_tenant_user_round_trips() {
        for url in [
            "mysql://writer@obmysql@10.0.0.5:2881/oms_witness",
            "mysql://writer%40obmysql@10.0.0.5:2881/oms_witness",
        ] {
            let t = WitnessTarget::parse(url).unwrap();
            assert_eq!(t.user, "writer@obmysql", "{url}");
            assert_eq!(t.host, "10.0.0.5");
            assert_eq!(WitnessTarget::parse(&t.to_string()).unwrap(), t);
        }
        let t = WitnessTarget::parse("mysql://w%40t%23c@proxy:2883/d").unwrap();
        assert_eq!((t.user.as_str(), t.port), ("w@t#c", 2883));
        assert_eq!(t.to_string(), "mysql://w%40t%23c@proxy:2883/d");
        assert_eq!(
            WitnessTarget::parse("mysql://w@t:pw@h/d"),
            Err(TargetError::PasswordInUrl)
        );
        assert!(WitnessTarget::parse("mysql://w'x@h/d").is_err());
    }
}
