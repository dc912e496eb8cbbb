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
}
