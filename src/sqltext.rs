//! The SQL text the metadata-database adapter runs, built in one place so that what the
//! plan prints (and what manual HA mode asks an operator to run) is exactly what runs.
//!
//! Pure: strings in, strings out. Names arrive from hostile places (the OMS config file,
//! the command line), so a name never leaves [`quote_ident`].

/// Quotes an identifier for MySQL: backticks, with embedded backticks doubled.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Makes `db` the connection's default database (every statement below is unqualified).
pub fn use_database(db: &str) -> String {
    format!("USE {}", quote_ident(db))
}

/// Reads `ha.config` (in the RM database).
pub const HA_SELECT: &str = "SELECT cfg_value FROM oms_normal_config WHERE cfg_name = 'ha.config'";

/// Reads `ha.config` and locks its row, inside the compare-and-set transaction.
pub const HA_SELECT_FOR_UPDATE: &str =
    "SELECT cfg_value FROM oms_normal_config WHERE cfg_name = 'ha.config' FOR UPDATE";

/// Writes `ha.config`; the one parameter is the new JSON.
pub const HA_UPDATE: &str =
    "UPDATE oms_normal_config SET cfg_value = ? WHERE cfg_name = 'ha.config'";

/// Opens the compare-and-set transaction.
pub const START_TRANSACTION: &str = "START TRANSACTION";

/// Ends it.
pub const COMMIT: &str = "COMMIT";

/// Whether the heartbeat table exists; the parameter is the cm_hb database. A missing
/// table is a warning to record, not a stop (the step runs after T1).
pub const HEARTBEAT_TABLE_EXISTS: &str = "SELECT COUNT(*) FROM information_schema.TABLES \
     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'heatbeat_sequence'";

/// The newest heartbeat id (in the cm_hb database): the one row the prune keeps.
pub const HEARTBEAT_MAX_ID: &str = "SELECT MAX(id) FROM heatbeat_sequence";

/// The oldest heartbeat id still there: where the next batch starts.
pub const HEARTBEAT_MIN_ID: &str = "SELECT MIN(id) FROM heatbeat_sequence";

/// Deletes every heartbeat below the one parameter. The runbook's one statement
/// (`... where id < (select max(id) ...)`) is split: MySQL 8 refuses a subquery on the
/// DELETE's own table (error 1093), so `max(id)` is read first; and the delete runs in
/// batches ([`heartbeat_batch_bound`]), each bounded to a range of ids, because
/// OceanBase kills a statement past `ob_query_timeout` and a transaction past
/// `ob_trx_timeout`, and one DELETE of millions of rows holds its locks and undo until it
/// ends on every flavour. Ranges rather than `DELETE ... LIMIT`: plain comparisons mean the
/// same on MariaDB, MySQL and OceanBase, so the statements have no flavour difference.
pub const HEARTBEAT_PRUNE: &str = "DELETE FROM heatbeat_sequence WHERE id < ?";

/// Rows a batch of the heartbeat prune deletes at most (ids are the table's increasing
/// integer key, so a range of this many ids holds at most this many rows).
pub const HEARTBEAT_BATCH_ROWS: u64 = 10_000;

/// Where the heartbeat prune switches from DELETE batches to the table swap
/// ([`HeartbeatSwap`]); defined apart so that the pure estimate reads it without this module.
pub use crate::heartbeat::HEARTBEAT_SWAP_MIN_ROWS;

/// Whether a table exists; the parameters are its database and its name.
pub const TABLE_EXISTS: &str = "SELECT COUNT(*) FROM information_schema.TABLES \
     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?";

/// The rows of the swap's `<old>` table (in the current database) below its newest id,
/// counted exactly: the heartbeat rows the prune removed, which `drop-pruned-heartbeat`
/// records before dropping the table. The newest row is in `<old>` too (the swap copied
/// it into the new heartbeat table), so it is not counted.
pub fn count_pruned(table: &str) -> String {
    let t = quote_ident(table);
    format!("SELECT COUNT(*) FROM {t} WHERE id < (SELECT MAX(id) FROM {t})")
}

/// Triggers on the heartbeat table; the parameter is the cm_hb database. A table with a
/// trigger is pruned by DELETE: a trigger may act on every deleted row (an audit table),
/// which the swap would silently skip, and `CREATE TABLE ... LIKE` does not copy triggers.
pub const HEARTBEAT_TRIGGERS: &str = "SELECT COUNT(*) FROM information_schema.TRIGGERS \
     WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = 'heatbeat_sequence'";

/// Foreign keys of the heartbeat database from or to the heartbeat table; the parameter is
/// the cm_hb database. A table in a foreign key is pruned by DELETE: a RENAME would move
/// the references to the old table (or `LIKE` would drop the table's own), and a DELETE
/// applies their actions. Only the heartbeat database is asked: MariaDB answers a query on
/// `REFERENTIAL_CONSTRAINTS` not bound to one schema by opening every table of the server
/// (0.8 s with 3000 tables). A reference from another database is asked of InnoDB's own
/// list ([`HEARTBEAT_INNODB_REFERENCES`]).
pub const HEARTBEAT_FOREIGN_KEYS: &str = "SELECT COUNT(*) FROM \
     information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? \
     AND (TABLE_NAME = 'heatbeat_sequence' OR REFERENCED_TABLE_NAME = 'heatbeat_sequence')";

/// Foreign keys (of any database) referencing a table, from InnoDB's own list, which is
/// read without opening every table; the parameter is `<database>/<table>`. MariaDB's view,
/// then MySQL 8's: the swap asks the first that answers (both need PROCESS), so that a
/// reference from another database takes the DELETE batches, which apply its action.
pub const HEARTBEAT_INNODB_REFERENCES: &[&str] = &[
    "SELECT COUNT(*) FROM information_schema.INNODB_SYS_FOREIGN WHERE REF_NAME = ?",
    "SELECT COUNT(*) FROM information_schema.INNODB_FOREIGN WHERE REF_NAME = ?",
];

/// Which of the swap's two work tables exist; the parameters are the cm_hb database and
/// the two names ([`HeartbeatSwap`]). Asked before dropping them, so that a user without
/// the DROP privilege (who never swapped) still prunes by DELETE.
pub const HEARTBEAT_SWAP_LEFTOVERS: &str = "SELECT TABLE_NAME FROM information_schema.TABLES \
     WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN (?, ?)";

/// The heartbeat table's definition, for the swap's comparison and counter.
pub const HEARTBEAT_SHOW_CREATE: &str = "SHOW CREATE TABLE heatbeat_sequence";

/// The heartbeat prune's table swap, for a large table: a new table holding only the
/// newest row replaces the old one in one atomic `RENAME TABLE`, in milliseconds where
/// deleting millions of rows takes seconds (issue 16); the old one is counted and dropped
/// after T2, by `drop-pruned-heartbeat`.
///
/// The two work tables are named after the run (`heatbeat_sequence_oms_upgrade_<8 hex of
/// the run id>_keep` / `_old`, 43 characters), so they are never a table someone else
/// owns, and a resumed run of the same upgrade finds what a killed one left: a `_keep`
/// (killed before the RENAME: the original is untouched) or an `_old` (killed after it:
/// the heartbeat table already holds only the newest row). The `_keep` is dropped at the
/// start of every prune; the `_old` is left for `drop-pruned-heartbeat`. Every name is
/// quoted by [`quote_ident`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatSwap {
    /// The new table, filled with the newest row, renamed to `heatbeat_sequence`.
    pub keep: String,
    /// Where the old table is renamed to, counted and dropped after T2.
    pub old: String,
}

impl HeartbeatSwap {
    /// The work tables of the run whose id starts with `tag` (its first 4 bytes).
    pub fn for_run(tag: u32) -> Self {
        let base = format!("heatbeat_sequence_oms_upgrade_{tag:08x}");
        HeartbeatSwap {
            keep: format!("{base}_keep"),
            old: format!("{base}_old"),
        }
    }

    /// Drops `table` if it is there (the kill-safety clean-up, and the undo of a swap
    /// given up before its RENAME).
    pub fn drop_if_exists(table: &str) -> String {
        format!("DROP TABLE IF EXISTS {}", quote_ident(table))
    }

    /// Creates the new table with the heartbeat table's columns, indexes and options.
    pub fn create_keep(&self) -> String {
        format!(
            "CREATE TABLE {} LIKE heatbeat_sequence",
            quote_ident(&self.keep)
        )
    }

    /// Copies the rows the prune keeps (the one parameter is the newest id) into it: an
    /// INSERT ... SELECT rather than CREATE ... SELECT, which MySQL refuses under GTID
    /// consistency and which would not copy the indexes.
    pub fn copy_newest(&self) -> String {
        format!(
            "INSERT INTO {} SELECT * FROM heatbeat_sequence WHERE id >= ?",
            quote_ident(&self.keep)
        )
    }

    /// Carries the heartbeat table's AUTO_INCREMENT counter over, so that ids go on where
    /// they would have (OMS must never reuse an id).
    pub fn set_auto_increment(&self, next: u64) -> String {
        format!(
            "ALTER TABLE {} AUTO_INCREMENT = {next}",
            quote_ident(&self.keep)
        )
    }

    /// The new table's definition.
    pub fn show_create_keep(&self) -> String {
        format!("SHOW CREATE TABLE {}", quote_ident(&self.keep))
    }

    /// The swap: one statement, atomic on MariaDB, MySQL and OceanBase's MySQL mode, so
    /// `heatbeat_sequence` always exists and holds either every row or the newest one.
    pub fn rename(&self) -> String {
        format!(
            "RENAME TABLE heatbeat_sequence TO {}, {} TO heatbeat_sequence",
            quote_ident(&self.old),
            quote_ident(&self.keep)
        )
    }
}

/// The `AUTO_INCREMENT=n` table option of a `SHOW CREATE TABLE` text (the next id), or
/// `None` when it shows none. Only the options after the column list (which ends in a
/// line starting with `)`) are read: a column's `AUTO_INCREMENT` attribute has no `=`.
pub fn auto_increment_option(show_create: &str) -> Option<u64> {
    let options = &show_create[show_create.find("\n)")?..];
    let at = options.find(" AUTO_INCREMENT=")? + " AUTO_INCREMENT=".len();
    let digits: String = options[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// True when two `SHOW CREATE TABLE` texts define the same table apart from its name
/// (`table_a` in `a`, `table_b` in `b`): the swap's check that `LIKE` copied everything
/// (partitioning, options, the counter) before anything is renamed.
pub fn same_table_definition(a: &str, table_a: &str, b: &str, table_b: &str) -> bool {
    let body = |text: &str, table: &str| {
        text.strip_prefix(&format!("CREATE TABLE {} ", quote_ident(table)))
            .map(str::to_string)
    };
    match (body(a, table_a), body(b, table_b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// The bound of the next batch: delete below `min(oldest + batch_rows, newest)`, so one
/// statement deletes at most `batch_rows` rows and never the newest one. `None` when no
/// row below the newest is left. Gaps in the ids are skipped, since each batch starts at
/// the oldest id still there.
pub fn heartbeat_batch_bound(oldest: i64, newest: i64, batch_rows: u64) -> Option<i64> {
    if oldest >= newest {
        return None;
    }
    let step = i64::try_from(batch_rows.max(1)).unwrap_or(i64::MAX);
    Some(oldest.saturating_add(step).min(newest))
}

/// The kind of server, as it describes itself.
pub use crate::events::ServerFlavour;

/// Reads what the server says it is: `VERSION()` and `@@version_comment`.
pub const SERVER_IDENTITY: &str = "SELECT VERSION(), @@version_comment";

/// The flavour from `VERSION()` and `@@version_comment`. OceanBase's MySQL mode reports a
/// MySQL-like version with its own name after it (`5.7.25-OceanBase_CE-v4.2.1.2`; its docs'
/// `VERSION()` page shows `5.7.25-OceanBase ...`, and obclient greets with the comment
/// `OceanBase_CE 4.3.0.1 (r...)`), so it is looked for first; MariaDB names itself in its
/// version (`10.11.6-MariaDB-0+deb12u1`); MySQL in its comment (`MySQL Community Server -
/// GPL`; Percona Server is MySQL).
pub fn server_flavour(version: &str, version_comment: &str) -> ServerFlavour {
    let both = format!("{version} {version_comment}").to_ascii_lowercase();
    if both.contains("oceanbase") {
        ServerFlavour::OceanBase
    } else if both.contains("mariadb") {
        ServerFlavour::MariaDb
    } else if both.contains("mysql") || both.contains("percona") {
        ServerFlavour::MySql
    } else {
        ServerFlavour::Other
    }
}

/// OceanBase's session timeouts set before long work, in microseconds (one hour): it kills
/// a statement past `ob_query_timeout` (10 s by default) and a transaction past
/// `ob_trx_timeout` (100 s by default), with error 4012. Source: OceanBase's own docs,
/// `docs/docs-cn/7.developer-guide-1/2.connect-to-the-oceanbase-database/6.query-table-data/9.about-query-timeout-design.md`
/// in the oceanbase/oceanbase repository (`set session ob_query_timeout=...`, in
/// microseconds), and the timeout article of OceanBase's docs on `ob_trx_timeout`.
pub const OCEANBASE_SESSION_TIMEOUT_US: u64 = 3_600_000_000;

/// Statements that prepare a session for long work on `flavour`: the one place a flavour
/// changes what is sent. Only OceanBase needs any (its timeouts above); MariaDB and
/// MySQL have no statement timeout by default.
pub fn session_setup(flavour: ServerFlavour) -> Vec<String> {
    match flavour {
        ServerFlavour::OceanBase => vec![
            format!("SET SESSION ob_query_timeout = {OCEANBASE_SESSION_TIMEOUT_US}"),
            format!("SET SESSION ob_trx_timeout = {OCEANBASE_SESSION_TIMEOUT_US}"),
        ],
        ServerFlavour::MariaDb | ServerFlavour::MySql | ServerFlavour::Other => Vec::new(),
    }
}

/// Drops `db` before a restore.
pub fn drop_database(db: &str) -> String {
    format!("DROP DATABASE IF EXISTS {}", quote_ident(db))
}

/// Creates `db` again with the charset and collation it had. The caller checks that
/// `charset` and `collation` are plain names (they cannot be quoted as identifiers).
pub fn create_database(db: &str, charset: &str, collation: &str) -> String {
    format!(
        "CREATE DATABASE {} CHARACTER SET {charset} COLLATE {collation}",
        quote_ident(db)
    )
}

/// Which of the columns [`list_servers`] reads exist in the cm database's `host` and
/// `resource_group` tables; the one parameter is the cm database's name. Asked first, so a
/// deployment whose tables lack one reads as such rather than as an SQL error.
pub const SERVER_TABLE_COLUMNS: &str = "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS \
     WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN ('host', 'resource_group')";

/// How many servers [`list_servers`] reads at most (one more than any deployment has, so
/// a longer list is seen as such).
pub const MAX_SERVERS: usize = 256;

/// The servers OMS keeps in the cm database (`cm_db`): each `host` row's `ip`, the name of
/// its `resource_group` (the region's `cm_location`) and, when the table has one, its
/// `status`. The tables and the join are the ones obd's OMS takeover reads
/// (oceanbase/obdeploy `plugins/oms/1.0.0/get_takeover_config.py`: `select id,name from
/// resource_group` then `select resource_group_id,ip from host where resource_group_id =
/// ...`); the public record names no status column, so `status` is read only when
/// [`SERVER_TABLE_COLUMNS`] shows it (`with_status`), and only to be shown: each server's
/// own health endpoint decides whether it is Online. Without `resource_group`
/// (`with_group` false) the group reads as NULL.
pub fn list_servers(cm_db: &str, with_group: bool, with_status: bool) -> String {
    let db = quote_ident(cm_db);
    let status = if with_status { "h.`status`" } else { "NULL" };
    let (group, join) = if with_group {
        (
            "g.`name`".to_string(),
            format!(" LEFT JOIN {db}.`resource_group` g ON g.`id` = h.`resource_group_id`"),
        )
    } else {
        ("NULL".to_string(), String::new())
    };
    format!(
        "SELECT h.`ip`, {group}, {status} FROM {db}.`host` h{join} ORDER BY h.`ip` LIMIT {}",
        MAX_SERVERS + 1
    )
}

/// How many columns of [`list_regions`] the rm database's `cluster_info` has (3 when all);
/// the one parameter is the rm database's name.
pub const REGION_TABLE_COLUMNS: &str = "SELECT COUNT(*) FROM information_schema.COLUMNS \
     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'cluster_info' \
     AND COLUMN_NAME IN ('region', 'code', 'is_default_cm')";

/// The regions OMS keeps in the rm database (`rm_db`): each `cluster_info` row's `region`
/// (`cm_region`), `code` (`cm_location`) and `is_default_cm`, as obd's OMS takeover reads
/// them (oceanbase/obdeploy `plugins/oms/1.0.0/get_takeover_config.py`), at most
/// [`MAX_SERVERS`] + 1 rows.
pub fn list_regions(rm_db: &str) -> String {
    format!(
        "SELECT `region`, `code`, `is_default_cm` FROM {}.`cluster_info` ORDER BY `code` LIMIT {}",
        quote_ident(rm_db),
        MAX_SERVERS + 1
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flavour_is_read_from_what_the_server_says() {
        use ServerFlavour as F;
        let cases = [
            ("10.11.6-MariaDB-0+deb12u1", "Debian 12", F::MariaDb),
            ("5.5.5-10.6.16-MariaDB", "MariaDB Server", F::MariaDb),
            ("8.0.36", "MySQL Community Server - GPL", F::MySql),
            ("8.0.35-27", "Percona Server (GPL), Release 27", F::MySql),
            (
                "5.7.25-OceanBase_CE-v4.2.1.2",
                "OceanBase_CE 4.2.1.2 (r102000042023120514)",
                F::OceanBase,
            ),
            ("5.7.25-OceanBase-v4.2.1.0", "", F::OceanBase),
            // A MySQL version that OceanBase's proxy was told to report still says OceanBase.
            ("8.0.28-OceanBase_CE-v4.2.1.2", "", F::OceanBase),
            ("3.4.0", "TiDB Server", F::Other),
        ];
        for (v, c, want) in cases {
            assert_eq!(server_flavour(v, c), want, "{v} / {c}");
        }
    }

    #[test]
    fn only_oceanbase_gets_session_timeouts() {
        assert!(session_setup(ServerFlavour::MariaDb).is_empty());
        assert!(session_setup(ServerFlavour::MySql).is_empty());
        assert!(session_setup(ServerFlavour::Other).is_empty());
        assert_eq!(
            session_setup(ServerFlavour::OceanBase),
            [
                "SET SESSION ob_query_timeout = 3600000000",
                "SET SESSION ob_trx_timeout = 3600000000"
            ]
        );
    }

    /// Every flavour gets the same prune statements: no subquery on the DELETE's own
    /// table (MySQL 8's error 1093), no DELETE ... LIMIT, one bound parameter.
    #[test]
    fn prune_statements_suit_every_flavour() {
        assert!(!HEARTBEAT_PRUNE.to_lowercase().contains("select"));
        assert!(!HEARTBEAT_PRUNE.to_lowercase().contains("limit"));
        assert_eq!(HEARTBEAT_PRUNE.matches('?').count(), 1);
    }

    #[test]
    fn swap_tables_are_the_runs_own_and_quoted() {
        let swap = HeartbeatSwap::for_run(0x0a1b_2c3d);
        assert_eq!(swap.keep, "heatbeat_sequence_oms_upgrade_0a1b2c3d_keep");
        assert_eq!(swap.old, "heatbeat_sequence_oms_upgrade_0a1b2c3d_old");
        assert!(swap.keep.len() <= 64 && swap.old.len() <= 64);
        assert_eq!(
            swap.rename(),
            "RENAME TABLE heatbeat_sequence TO `heatbeat_sequence_oms_upgrade_0a1b2c3d_old`, \
             `heatbeat_sequence_oms_upgrade_0a1b2c3d_keep` TO heatbeat_sequence"
        );
        assert_eq!(
            HeartbeatSwap::drop_if_exists("a`b"),
            "DROP TABLE IF EXISTS `a``b`"
        );
        assert_eq!(swap.copy_newest().matches('?').count(), 1);
    }

    #[test]
    fn auto_increment_is_read_from_the_table_options_only() {
        let t = "CREATE TABLE `heatbeat_sequence` (\n  `id` bigint(20) NOT NULL AUTO_INCREMENT,\n  \
                 PRIMARY KEY (`id`)\n) ENGINE=InnoDB AUTO_INCREMENT=3160001 DEFAULT CHARSET=utf8mb4";
        assert_eq!(auto_increment_option(t), Some(3_160_001));
        let none = "CREATE TABLE `t` (\n  `id` bigint NOT NULL AUTO_INCREMENT\n) ENGINE=InnoDB";
        assert_eq!(auto_increment_option(none), None);
        assert!(same_table_definition(
            t,
            "heatbeat_sequence",
            &t.replace("`heatbeat_sequence`", "`k`"),
            "k"
        ));
        assert!(!same_table_definition(
            t,
            "heatbeat_sequence",
            &t.replace("`heatbeat_sequence`", "`k`")
                .replace("3160001", "2"),
            "k"
        ));
        assert!(!same_table_definition(t, "other", t, "heatbeat_sequence"));
    }

    #[test]
    fn batches_are_bounded_and_keep_the_newest_row() {
        assert_eq!(heartbeat_batch_bound(1, 25, 10), Some(11));
        assert_eq!(heartbeat_batch_bound(11, 25, 10), Some(21));
        assert_eq!(heartbeat_batch_bound(21, 25, 10), Some(25));
        assert_eq!(heartbeat_batch_bound(25, 25, 10), None);
        // A gap is jumped over: the next batch starts at the oldest id left.
        assert_eq!(
            heartbeat_batch_bound(1_000_000, 2_000_000, 10),
            Some(1_000_010)
        );
        assert_eq!(
            heartbeat_batch_bound(i64::MAX - 1, i64::MAX, 10),
            Some(i64::MAX)
        );
        assert_eq!(heartbeat_batch_bound(1, 5, 0), Some(2));
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("oms_rm"), "`oms_rm`");
        assert_eq!(quote_ident("a`b"), "`a``b`");
        assert_eq!(use_database("a`b"), "USE `a``b`");
        assert_eq!(drop_database("x`"), "DROP DATABASE IF EXISTS `x```");
    }

    #[test]
    fn the_server_list_names_its_database_only_quoted() {
        let all = list_servers("c`m", true, true);
        assert_eq!(
            all,
            "SELECT h.`ip`, g.`name`, h.`status` FROM `c``m`.`host` h LEFT JOIN `c``m`.`resource_group` g \
             ON g.`id` = h.`resource_group_id` ORDER BY h.`ip` LIMIT 257"
        );
        let bare = list_servers("cm", false, false);
        assert_eq!(
            bare,
            "SELECT h.`ip`, NULL, NULL FROM `cm`.`host` h ORDER BY h.`ip` LIMIT 257"
        );
    }
}
