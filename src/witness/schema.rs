//! The witness schema as SQL text: the three `CREATE TABLE IF NOT EXISTS` statements
//! `witness init` runs, and the GRANT statements it prints for a DBA. Pure: strings in,
//! strings out.
//!
//! Only what every MySQL-protocol server accepts (MariaDB, MySQL, an OceanBase MySQL
//! tenant): plain tables, no triggers, no procedures, no engine or partition options, every
//! identifier quoted. Server time is taken by the INSERT (`UTC_TIMESTAMP(6)`, see
//! `super::mysql`) into a `DATETIME(6)` column, so it reads the same whatever the session's
//! time zone is.
//!
//! The records table's primary key is `(ledger_id, seq, hash)`, not `(ledger_id, seq)`: a
//! second history under one ledger id is not refused by the database but kept beside the
//! first, as evidence of the fork. The layout is documented in `ledger-schema/WITNESS.md`.

use crate::sqltext::quote_ident;

/// The table of ledgers: one row per ledger id, the node that first pushed it and when.
pub const LEDGERS_TABLE: &str = "witness_ledgers";
/// The table of records: every record pushed, as its exact stored bytes.
pub const RECORDS_TABLE: &str = "witness_records";
/// The table of signed checkpoints: the exact text of each checkpoint file pushed.
pub const CHECKPOINTS_TABLE: &str = "witness_checkpoints";

/// Every table the witness uses, in creation order.
pub const TABLES: [&str; 3] = [LEDGERS_TABLE, RECORDS_TABLE, CHECKPOINTS_TABLE];

/// The longest node identity stored (characters); longer ones are refused by the pusher.
pub const NODE_MAX_CHARS: usize = 255;

/// Creates the ledgers table.
pub const CREATE_LEDGERS: &str = "CREATE TABLE IF NOT EXISTS `witness_ledgers` (\
`ledger_id` BINARY(16) NOT NULL, \
`node` VARCHAR(255) NOT NULL, \
`first_pushed_utc` DATETIME(6) NOT NULL, \
PRIMARY KEY (`ledger_id`)\
) DEFAULT CHARSET = utf8mb4";

/// Creates the records table. `stored` is a MEDIUMBLOB: a record may be 64 KiB
/// (`MAX_RECORD_LEN`), one byte more than a BLOB holds.
pub const CREATE_RECORDS: &str = "CREATE TABLE IF NOT EXISTS `witness_records` (\
`ledger_id` BINARY(16) NOT NULL, \
`seq` BIGINT UNSIGNED NOT NULL, \
`hash` BINARY(32) NOT NULL, \
`stored` MEDIUMBLOB NOT NULL, \
`node` VARCHAR(255) NOT NULL, \
`pushed_utc` DATETIME(6) NOT NULL, \
PRIMARY KEY (`ledger_id`, `seq`, `hash`)\
) DEFAULT CHARSET = utf8mb4";

/// Creates the checkpoints table. `text_hash` is the plain BLAKE3 hash of `text` (the
/// checkpoint file's exact bytes), so one checkpoint pushed twice is one row, and two
/// different checkpoints at one seq (evidence of a fork) are both kept.
pub const CREATE_CHECKPOINTS: &str = "CREATE TABLE IF NOT EXISTS `witness_checkpoints` (\
`ledger_id` BINARY(16) NOT NULL, \
`seq` BIGINT UNSIGNED NOT NULL, \
`head` BINARY(32) NOT NULL, \
`text_hash` BINARY(32) NOT NULL, \
`text` MEDIUMBLOB NOT NULL, \
`pushed_utc` DATETIME(6) NOT NULL, \
PRIMARY KEY (`ledger_id`, `seq`, `text_hash`)\
) DEFAULT CHARSET = utf8mb4";

/// The whole schema, in creation order: what `witness init` runs, and nothing else.
pub const CREATE_ALL: [&str; 3] = [CREATE_LEDGERS, CREATE_RECORDS, CREATE_CHECKPOINTS];

/// The default writer account `witness init` prints grants for.
pub const DEFAULT_WRITER: &str = "oms_witness_writer";
/// The default auditor account `witness init` prints grants for.
pub const DEFAULT_AUDITOR: &str = "oms_witness_auditor";

/// An account name or host that cannot be put into a GRANT statement safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{value}` cannot be used as an account {what}: use 1-{max} characters of letters, \
     digits, _ - .{extra}"
)]
pub struct AccountError {
    /// What was given.
    pub value: String,
    /// "user" or "host".
    pub what: &'static str,
    /// The longest accepted.
    pub max: usize,
    /// Further characters accepted.
    pub extra: &'static str,
}

/// `'user'@'host'`, after checking both are plain (no quoting needed, so none can escape).
/// Users: at most 32 characters (MySQL's limit); hosts: also `%` and `:` (wildcards, IPv6).
pub fn account(user: &str, host: &str) -> Result<String, AccountError> {
    let plain = |s: &str, max: usize, extra: &[u8]| {
        !s.is_empty()
            && s.len() <= max
            && s.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || b == b'_'
                    || b == b'-'
                    || b == b'.'
                    || extra.contains(&b)
            })
    };
    if !plain(user, 32, b"") {
        return Err(AccountError {
            value: user.to_string(),
            what: "user",
            max: 32,
            extra: "",
        });
    }
    if !plain(host, 255, b"%:") {
        return Err(AccountError {
            value: host.to_string(),
            what: "host",
            max: 255,
            extra: " % :",
        });
    }
    Ok(format!("'{user}'@'{host}'"))
}

/// The writer's grant: INSERT and SELECT on the witness database, nothing else (no UPDATE,
/// no DELETE, no DDL). `account` comes from [`account`].
pub fn writer_grant(database: &str, account: &str) -> String {
    format!(
        "GRANT INSERT, SELECT ON {}.* TO {account}",
        quote_ident(database)
    )
}

/// The auditor's grant: SELECT on the witness database only.
pub fn auditor_grant(database: &str, account: &str) -> String {
    format!("GRANT SELECT ON {}.* TO {account}", quote_ident(database))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddl_is_create_table_only_with_quoted_names() {
        for (sql, table) in CREATE_ALL.iter().zip(TABLES) {
            assert!(
                sql.starts_with(&format!("CREATE TABLE IF NOT EXISTS `{table}` (")),
                "{sql}"
            );
            let upper = sql.to_ascii_uppercase();
            for word in [
                "TRIGGER",
                "PROCEDURE",
                "ENGINE",
                "PARTITION",
                "UPDATE",
                "DELETE",
            ] {
                assert!(!upper.contains(word), "{word} in {sql}");
            }
        }
        assert!(CREATE_RECORDS.contains("PRIMARY KEY (`ledger_id`, `seq`, `hash`)"));
        assert!(CREATE_RECORDS.contains("`stored` MEDIUMBLOB"));
    }

    #[test]
    fn grants_name_only_insert_and_select() {
        let a = account("w", "%").unwrap();
        assert_eq!(
            writer_grant("wit`ness", &a),
            "GRANT INSERT, SELECT ON `wit``ness`.* TO 'w'@'%'"
        );
        assert_eq!(
            auditor_grant("wit", &account("a", "10.0.0.1").unwrap()),
            "GRANT SELECT ON `wit`.* TO 'a'@'10.0.0.1'"
        );
        assert!(account("w'", "%").is_err());
        assert!(account("w", "h' OR 1").is_err());
        assert!(account("", "%").is_err());
        assert!(account(&"x".repeat(33), "%").is_err());
    }
}
