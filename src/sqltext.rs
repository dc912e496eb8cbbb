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

/// The newest heartbeat id (in the cm_hb database).
pub const HEARTBEAT_MAX_ID: &str = "SELECT MAX(id) FROM heatbeat_sequence";

/// Deletes every heartbeat below the one parameter (the id read by [`HEARTBEAT_MAX_ID`]).
/// Two statements rather than a subquery: MySQL 8 refuses a subquery on the DELETE's own
/// table (error 1093).
pub const HEARTBEAT_PRUNE: &str = "DELETE FROM heatbeat_sequence WHERE id < ?";

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
/// [`SERVER_TABLE_COLUMNS`] shows it (`with_status`). Without `resource_group`
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

#[cfg(test)]
mod tests {
    use super::*;

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
