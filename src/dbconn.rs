//! Where the metadata database is and how to log in, without ever printing the password.

use crate::secret::Secret;

/// A MySQL-protocol server (MariaDB, MySQL or OceanBase) and the credentials to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbTarget {
    /// Host name or IP address (TCP only; the tool never uses the server's Unix socket).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// User name.
    pub user: String,
    /// Password; never printed, never recorded.
    pub password: Secret,
}

impl DbTarget {
    /// `mysql://user@host:port`, the form used in the ledger, logs and reports: no password.
    pub fn display_url(&self) -> String {
        format!("mysql://{}@{}:{}", self.user, self.host, self.port)
    }

    /// Connection options for mysql_async, optionally selecting a default database.
    pub fn opts(&self, database: Option<&str>) -> mysql_async::Opts {
        let builder = mysql_async::OptsBuilder::default()
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass(Some(self.password.expose().to_string()))
            .db_name(database.map(str::to_string))
            .prefer_socket(false);
        builder.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_url_has_no_password() {
        let t = DbTarget {
            host: "10.0.0.1".into(),
            port: 2881,
            user: "oms".into(),
            password: Secret::new("s3cret"),
        };
        assert_eq!(t.display_url(), "mysql://oms@10.0.0.1:2881");
        assert!(!format!("{t:?}").contains("s3cret"));
    }
}
