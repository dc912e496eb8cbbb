//! [`MysqlWitness`]: the [`Witness`] on a MySQL-protocol server (MariaDB, MySQL, an
//! OceanBase MySQL tenant), over mysql_async.
//!
//! Why it is written this way:
//! - Every statement it runs is a `const` below and listed in [`STATEMENTS`] (the schema's
//!   in [`super::schema::CREATE_ALL`]), so a reviewer, a test and `ledger-schema/WITNESS.md`
//!   can see all of it: INSERT and SELECT only, parameterised. Nothing here changes or
//!   removes a row, which is also why the writer needs only INSERT and SELECT.
//! - The witness database is chosen at login (the protocol's database field), never spelled
//!   into SQL; the statements name only the fixed, quoted table names.
//! - A push is one transaction. A record already there with the same hash is counted, not
//!   inserted (a retried push after a lost reply is harmless); a duplicate-key error from a
//!   concurrent pusher means the same. A different hash at the same (ledger id, seq) is
//!   inserted beside the other (the key includes the hash) and reported as a fork.
//! - One connection is kept between calls and pinged before reuse, so a server restarted
//!   between two records costs a reconnect, not a spurious "unreachable".

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, TxOpts};
use uuid::Uuid;

use super::schema::{CREATE_ALL, NODE_MAX_CHARS};
use super::{
    PushReport, Witness, WitnessCheckpoint, WitnessError, WitnessLedger, WitnessRecord,
    WitnessTarget,
};
use crate::dbconn::{self, DbTarget};
use crate::ledger::{Hash, Record};

/// How long a connection attempt may take before the witness counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one call (connecting included) may take before the witness counts as
/// unreachable: a server that accepted the connection and then stopped answering must not
/// hang a run. The connection in use is dropped, never reused.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads the node recorded for one ledger.
pub const SELECT_LEDGER: &str = "SELECT `node` FROM `witness_ledgers` WHERE `ledger_id` = ?";
/// Records a ledger the first time it is pushed, with the server's time.
pub const INSERT_LEDGER: &str = "INSERT INTO `witness_ledgers` (`ledger_id`, `node`, \
`first_pushed_utc`) VALUES (?, ?, UTC_TIMESTAMP(6))";
/// The (seq, hash) pairs held for a ledger in a seq range (what a push may meet).
pub const SELECT_HASHES: &str = "SELECT `seq`, `hash` FROM `witness_records` \
WHERE `ledger_id` = ? AND `seq` >= ? AND `seq` <= ? ORDER BY `seq`, `hash`";
/// Inserts one record, with the server's time.
pub const INSERT_RECORD: &str = "INSERT INTO `witness_records` (`ledger_id`, `seq`, `hash`, \
`stored`, `node`, `pushed_utc`) VALUES (?, ?, ?, ?, ?, UTC_TIMESTAMP(6))";
/// The hash(es) at a ledger's highest seq.
pub const SELECT_HEAD: &str = "SELECT `seq`, `hash` FROM `witness_records` \
WHERE `ledger_id` = ? AND `seq` = (SELECT MAX(`seq`) FROM `witness_records` \
WHERE `ledger_id` = ?) ORDER BY `hash`";
/// A ledger's rows from a seq on.
pub const SELECT_RECORDS: &str = "SELECT `seq`, `hash`, `stored`, `node` FROM \
`witness_records` WHERE `ledger_id` = ? AND `seq` >= ? ORDER BY `seq`, `hash`";
/// Every ledger.
pub const SELECT_LEDGERS: &str =
    "SELECT `ledger_id`, `node` FROM `witness_ledgers` ORDER BY `ledger_id`";
/// Inserts one signed checkpoint, with the server's time.
pub const INSERT_CHECKPOINT: &str = "INSERT INTO `witness_checkpoints` (`ledger_id`, `seq`, \
`head`, `text_hash`, `text`, `pushed_utc`) VALUES (?, ?, ?, ?, ?, UTC_TIMESTAMP(6))";
/// A ledger's signed checkpoints.
pub const SELECT_CHECKPOINTS: &str = "SELECT `seq`, `head`, `text` FROM `witness_checkpoints` \
WHERE `ledger_id` = ? ORDER BY `seq`, `text_hash`";

/// Every statement [`MysqlWitness`] runs besides the schema ([`CREATE_ALL`], only in
/// [`MysqlWitness::create_schema`]) and the driver's own START TRANSACTION / COMMIT /
/// ROLLBACK around a push.
pub const STATEMENTS: [&str; 9] = [
    SELECT_LEDGER,
    INSERT_LEDGER,
    SELECT_HASHES,
    INSERT_RECORD,
    SELECT_HEAD,
    SELECT_RECORDS,
    SELECT_LEDGERS,
    INSERT_CHECKPOINT,
    SELECT_CHECKPOINTS,
];

/// ER_DUP_ENTRY: the row is already there.
const DUP_ENTRY: u16 = 1062;

/// The witness on a MySQL-protocol database. Construct with [`MysqlWitness::new`]; it
/// connects on first use.
#[derive(Debug)]
pub struct MysqlWitness {
    db: DbTarget,
    database: String,
    shown: String,
    /// The connection kept between calls (taken out while in use; put back after success).
    conn: tokio::sync::Mutex<Option<Conn>>,
}

impl MysqlWitness {
    /// A witness in `database` on the server `db` (host, port, user, password, TLS). The
    /// database name travels only in the login packet, never in SQL text. Nothing is
    /// connected until the first call.
    pub fn new(db: DbTarget, database: String) -> MysqlWitness {
        let shown = format!("{}/{}", db.display_url(), database);
        MysqlWitness {
            db,
            database,
            shown,
            conn: tokio::sync::Mutex::new(None),
        }
    }

    /// A witness for `target` (user, host, port, database) with `password` and `tls`.
    pub fn for_target(
        target: &WitnessTarget,
        password: crate::secret::Secret,
        tls: dbconn::TlsSettings,
    ) -> MysqlWitness {
        MysqlWitness::new(
            DbTarget {
                host: target.host.clone(),
                port: target.port,
                user: target.user.clone(),
                password,
                tls,
            },
            target.database.clone(),
        )
    }

    /// `mysql://user@host:port/db`, as shown in messages (no password).
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Creates the witness tables if they are missing ([`CREATE_ALL`]; nothing else). Needs
    /// CREATE on the witness database; the database itself must exist.
    pub async fn create_schema(&self) -> Result<(), WitnessError> {
        self.bounded(async {
            let mut c = self.take_conn().await?;
            for sql in CREATE_ALL {
                c.query_drop(sql)
                    .await
                    .map_err(|e| self.classify(e, "to create the witness tables"))?;
            }
            self.give_back(c).await;
            Ok(())
        })
        .await
    }

    /// Closes the kept connection.
    pub async fn close(&self) {
        if let Some(c) = self.conn.lock().await.take() {
            let _ = c.disconnect().await;
        }
    }

    /// The kept connection if it still answers, else a new one.
    async fn take_conn(&self) -> Result<Conn, WitnessError> {
        let kept = self.conn.lock().await.take();
        if let Some(mut c) = kept
            && c.ping().await.is_ok()
        {
            return Ok(c);
        }
        let connected =
            tokio::time::timeout(CONNECT_TIMEOUT, self.db.connect(Some(&self.database)))
                .await
                .map_err(|_| WitnessError::Unreachable {
                    target: self.shown.clone(),
                    reason: format!("no answer within {CONNECT_TIMEOUT:?}"),
                })?;
        let (c, _encrypted) = connected.map_err(|e| self.classify(e, "the login"))?;
        Ok(c)
    }

    /// Keeps `c` for the next call (only after a call that succeeded with it).
    async fn give_back(&self, c: Conn) {
        *self.conn.lock().await = Some(c);
    }

    fn classify(&self, e: mysql_async::Error, what: &'static str) -> WitnessError {
        classify(e, &self.shown, what)
    }

    /// The push's work inside one transaction on `c`.
    async fn push_on(
        &self,
        c: &mut Conn,
        node: &str,
        records: &[Record],
    ) -> Result<Result<PushReport, WitnessError>, mysql_async::Error> {
        let mut tx = c.start_transaction(TxOpts::default()).await?;
        let mut report = PushReport::default();
        let ledgers: BTreeSet<Uuid> = records.iter().map(|r| r.ledger_id).collect();
        for id in &ledgers {
            let known: Option<String> = tx.exec_first(SELECT_LEDGER, (id_bytes(id),)).await?;
            if known.is_none() {
                insert_tolerating_duplicate(&mut tx, INSERT_LEDGER, (id_bytes(id), node)).await?;
            }
        }
        // What the witness already holds in the pushed range, per (ledger, seq).
        let mut held: BTreeMap<(Uuid, u64), BTreeSet<Vec<u8>>> = BTreeMap::new();
        for id in &ledgers {
            let seqs = records.iter().filter(|r| r.ledger_id == *id).map(|r| r.seq);
            let (lo, hi) = (seqs.clone().min().unwrap_or(0), seqs.max().unwrap_or(0));
            let rows: Vec<(u64, Vec<u8>)> = tx.exec(SELECT_HASHES, (id_bytes(id), lo, hi)).await?;
            for (seq, hash) in rows {
                held.entry((*id, seq)).or_default().insert(hash);
            }
        }
        for r in records {
            let at = held.entry((r.ledger_id, r.seq)).or_default();
            if at.contains(&r.hash.0[..]) {
                report.already_there += 1;
            } else {
                let params = (
                    id_bytes(&r.ledger_id),
                    r.seq,
                    r.hash.0.to_vec(),
                    r.stored.clone(),
                    node,
                );
                if insert_tolerating_duplicate(&mut tx, INSERT_RECORD, params).await? {
                    report.inserted += 1;
                } else {
                    report.already_there += 1;
                }
            }
            let theirs = other_hashes(at, &r.hash);
            if !theirs.is_empty() {
                // Keep this record beside the other as evidence; push nothing after it.
                tx.commit().await?;
                return Ok(Err(WitnessError::Fork {
                    ledger_id: r.ledger_id,
                    seq: r.seq,
                    ours: r.hash,
                    theirs,
                }));
            }
        }
        tx.commit().await?;
        // A concurrent pusher of another history may have inserted at one of these seqs
        // between our read and our commit: look again.
        for id in &ledgers {
            let mine: Vec<&Record> = records.iter().filter(|r| r.ledger_id == *id).collect();
            let (lo, hi) = (
                mine.first().map_or(0, |r| r.seq),
                mine.last().map_or(0, |r| r.seq),
            );
            let rows: Vec<(u64, Vec<u8>)> = c.exec(SELECT_HASHES, (id_bytes(id), lo, hi)).await?;
            for r in &mine {
                let at: BTreeSet<Vec<u8>> = rows
                    .iter()
                    .filter(|(s, _)| *s == r.seq)
                    .map(|(_, h)| h.clone())
                    .collect();
                let theirs = other_hashes(&at, &r.hash);
                if !theirs.is_empty() {
                    return Ok(Err(WitnessError::Fork {
                        ledger_id: r.ledger_id,
                        seq: r.seq,
                        ours: r.hash,
                        theirs,
                    }));
                }
            }
        }
        Ok(Ok(report))
    }
}

/// The 16 bytes of a ledger id, as stored.
fn id_bytes(id: &Uuid) -> Vec<u8> {
    id.as_bytes().to_vec()
}

/// The hashes in `held` other than `ours` (well-formed ones; a malformed hash column is
/// reported by the readers, here it still counts as "another record").
fn other_hashes(held: &BTreeSet<Vec<u8>>, ours: &Hash) -> Vec<Hash> {
    held.iter()
        .filter(|h| h[..] != ours.0[..])
        .map(|h| hash_of(h).unwrap_or(Hash::ZERO))
        .collect()
}

/// Runs an INSERT; `Ok(false)` when the row was already there (a duplicate key).
async fn insert_tolerating_duplicate<P>(
    tx: &mut mysql_async::Transaction<'_>,
    sql: &'static str,
    params: P,
) -> Result<bool, mysql_async::Error>
where
    P: Into<mysql_async::Params> + Send,
{
    match tx.exec_drop(sql, params).await {
        Ok(()) => Ok(true),
        Err(mysql_async::Error::Server(s)) if s.code == DUP_ENTRY => Ok(false),
        Err(e) => Err(e),
    }
}

fn hash_of(bytes: &[u8]) -> Option<Hash> {
    <[u8; 32]>::try_from(bytes).ok().map(Hash)
}

/// Sorts a driver error into the witness's error kinds: a connection that cannot be made
/// or broke (and the server's transient refusals) is `Unreachable`, so a best-effort run
/// goes on and `ledger push` catches up; a login, privilege or schema problem is
/// `Refused`, which retrying does not fix.
fn classify(e: mysql_async::Error, target: &str, what: &'static str) -> WitnessError {
    use mysql_async::Error as E;
    let unreachable = |reason: String| WitnessError::Unreachable {
        target: target.to_string(),
        reason,
    };
    let refused = |reason: String| WitnessError::Refused {
        target: target.to_string(),
        what,
        reason,
    };
    if let Some(detail) = dbconn::tls_failure(&e) {
        return refused(format!("the TLS handshake failed: {detail}"));
    }
    match e {
        E::Server(s) => match s.code {
            // Too many connections, shutdown in progress, lock wait timeout, deadlock,
            // connection killed, MariaDB's idle disconnect: the server is there but not
            // serving this session now.
            1040 | 1053 | 1205 | 1213 | 1927 | 4031 => unreachable(s.to_string()),
            // Access denied (login, database, table, command), unknown database, missing
            // table, and anything else the server refuses.
            _ => refused(s.to_string()),
        },
        E::Driver(mysql_async::DriverError::NoClientSslFlagFromServer) => {
            refused("the server offers no TLS, and the witness connection must be encrypted".into())
        }
        E::Io(io) => unreachable(io.to_string()),
        E::Driver(d) => unreachable(d.to_string()),
        other => refused(other.to_string()),
    }
}

impl MysqlWitness {
    /// `call` bounded by [`CALL_TIMEOUT`].
    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, WitnessError>>,
    ) -> Result<T, WitnessError> {
        tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .unwrap_or_else(|_| {
                Err(WitnessError::Unreachable {
                    target: self.shown.clone(),
                    reason: format!("no answer within {CALL_TIMEOUT:?}"),
                })
            })
    }

    async fn push_unbounded(
        &self,
        node: &str,
        records: &[Record],
    ) -> Result<PushReport, WitnessError> {
        if node.chars().count() > NODE_MAX_CHARS {
            return Err(WitnessError::Refused {
                target: self.shown.clone(),
                what: "the node identity",
                reason: format!("it is longer than {NODE_MAX_CHARS} characters"),
            });
        }
        if records.is_empty() {
            return Ok(PushReport::default());
        }
        let mut c = self.take_conn().await?;
        let outcome = self
            .push_on(&mut c, node, records)
            .await
            .map_err(|e| self.classify(e, "to store records"))?;
        self.give_back(c).await;
        outcome
    }

    async fn head_unbounded(
        &self,
        ledger_id: Uuid,
    ) -> Result<Option<(u64, Vec<Hash>)>, WitnessError> {
        let mut c = self.take_conn().await?;
        let id = id_bytes(&ledger_id);
        let rows: Vec<(u64, Vec<u8>)> = c
            .exec(SELECT_HEAD, (id.clone(), id))
            .await
            .map_err(|e| self.classify(e, "to read the witness head"))?;
        self.give_back(c).await;
        let Some(seq) = rows.first().map(|r| r.0) else {
            return Ok(None);
        };
        let hashes = rows
            .iter()
            .map(|(_, h)| hash_of(h).ok_or_else(|| malformed(ledger_id, seq, "hash", h.len(), 32)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some((seq, hashes)))
    }

    async fn records_unbounded(
        &self,
        ledger_id: Uuid,
        from_seq: u64,
    ) -> Result<Vec<WitnessRecord>, WitnessError> {
        let mut c = self.take_conn().await?;
        let rows: Vec<(u64, Vec<u8>, Vec<u8>, String)> = c
            .exec(SELECT_RECORDS, (id_bytes(&ledger_id), from_seq))
            .await
            .map_err(|e| self.classify(e, "to read witness records"))?;
        self.give_back(c).await;
        rows.into_iter()
            .map(|(seq, hash, stored, node)| {
                Ok(WitnessRecord {
                    ledger_id,
                    seq,
                    hash: hash_of(&hash)
                        .ok_or_else(|| malformed(ledger_id, seq, "hash", hash.len(), 32))?,
                    stored,
                    node,
                })
            })
            .collect()
    }

    async fn ledgers_unbounded(&self) -> Result<Vec<WitnessLedger>, WitnessError> {
        let mut c = self.take_conn().await?;
        let rows: Vec<(Vec<u8>, String)> = c
            .exec(SELECT_LEDGERS, ())
            .await
            .map_err(|e| self.classify(e, "to list witness ledgers"))?;
        self.give_back(c).await;
        rows.into_iter()
            .map(|(id, node)| {
                let ledger_id = Uuid::from_slice(&id)
                    .map_err(|_| malformed(Uuid::nil(), 0, "ledger_id", id.len(), 16))?;
                Ok(WitnessLedger { ledger_id, node })
            })
            .collect()
    }

    async fn push_checkpoint_unbounded(
        &self,
        checkpoint: &WitnessCheckpoint,
    ) -> Result<(), WitnessError> {
        let mut c = self.take_conn().await?;
        let params = (
            id_bytes(&checkpoint.ledger_id),
            checkpoint.seq,
            checkpoint.head.0.to_vec(),
            blake3::hash(checkpoint.text.as_bytes()).as_bytes().to_vec(),
            checkpoint.text.as_bytes().to_vec(),
        );
        match c.exec_drop(INSERT_CHECKPOINT, params).await {
            Ok(()) => {}
            // The same text at the same seq: pushed before.
            Err(mysql_async::Error::Server(s)) if s.code == DUP_ENTRY => {}
            Err(e) => return Err(self.classify(e, "to store a checkpoint")),
        }
        self.give_back(c).await;
        Ok(())
    }

    async fn checkpoints_unbounded(
        &self,
        ledger_id: Uuid,
    ) -> Result<Vec<WitnessCheckpoint>, WitnessError> {
        let mut c = self.take_conn().await?;
        let rows: Vec<(u64, Vec<u8>, Vec<u8>)> = c
            .exec(SELECT_CHECKPOINTS, (id_bytes(&ledger_id),))
            .await
            .map_err(|e| self.classify(e, "to read witness checkpoints"))?;
        self.give_back(c).await;
        rows.into_iter()
            .map(|(seq, head, text)| {
                Ok(WitnessCheckpoint {
                    ledger_id,
                    seq,
                    head: hash_of(&head)
                        .ok_or_else(|| malformed(ledger_id, seq, "head", head.len(), 32))?,
                    text: String::from_utf8(text).map_err(|_| WitnessError::Malformed {
                        ledger_id,
                        seq,
                        reason: "the checkpoint text is not UTF-8".into(),
                    })?,
                })
            })
            .collect()
    }
}

impl Witness for MysqlWitness {
    async fn push(&self, node: &str, records: &[Record]) -> Result<PushReport, WitnessError> {
        self.bounded(self.push_unbounded(node, records)).await
    }

    async fn head(&self, ledger_id: Uuid) -> Result<Option<(u64, Vec<Hash>)>, WitnessError> {
        self.bounded(self.head_unbounded(ledger_id)).await
    }

    async fn records(
        &self,
        ledger_id: Uuid,
        from_seq: u64,
    ) -> Result<Vec<WitnessRecord>, WitnessError> {
        self.bounded(self.records_unbounded(ledger_id, from_seq))
            .await
    }

    async fn ledgers(&self) -> Result<Vec<WitnessLedger>, WitnessError> {
        self.bounded(self.ledgers_unbounded()).await
    }

    async fn push_checkpoint(&self, checkpoint: &WitnessCheckpoint) -> Result<(), WitnessError> {
        self.bounded(self.push_checkpoint_unbounded(checkpoint))
            .await
    }

    async fn checkpoints(&self, ledger_id: Uuid) -> Result<Vec<WitnessCheckpoint>, WitnessError> {
        self.bounded(self.checkpoints_unbounded(ledger_id)).await
    }
}

fn malformed(ledger_id: Uuid, seq: u64, column: &str, got: usize, want: usize) -> WitnessError {
    WitnessError::Malformed {
        ledger_id,
        seq,
        reason: format!("the {column} column holds {got} bytes, not {want}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_only_insert_and_select() {
        for sql in STATEMENTS {
            let upper = sql.to_ascii_uppercase();
            assert!(
                upper.starts_with("INSERT INTO ") || upper.starts_with("SELECT "),
                "{sql}"
            );
            for word in ["UPDATE", "DELETE", "REPLACE", "DUPLICATE", "DROP", "ALTER"] {
                assert!(!upper.contains(word), "{word} in {sql}");
            }
            assert_eq!(
                sql.matches('`').count() % 2,
                0,
                "identifiers quoted in pairs: {sql}"
            );
        }
    }
}
