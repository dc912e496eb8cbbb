//! Where the metadata database is and how to log in, without ever printing the password,
//! and how the connection is protected (TLS). [`DbTarget::opts`] is the one place the
//! driver's connection options are built, so every connection (the metadata adapter's
//! pool, the native dump's connections) follows the same TLS settings.

use std::path::PathBuf;

use crate::secret::Secret;

/// Environment variable holding the metadata database password (overrides config.yaml).
/// Children the tool starts for a demo node have it removed: it names a real OMS's password.
pub const PASSWORD_ENV: &str = "OMS_META_PASSWORD";

/// Whether the connection to the metadata database is encrypted (`--meta-tls`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// TLS or no connection, and the server's certificate must verify: against `--meta-ca`
    /// when given, else against the public web roots built in.
    Required,
    /// TLS when the server offers it, plain text when it offers none (the default). With
    /// `--meta-ca` the certificate must verify against it; without, it is accepted
    /// unverified, as the MySQL client's `PREFERRED` does: the traffic is hidden from
    /// eavesdroppers but not from someone who can intercept the connection (use `required`
    /// with `--meta-ca` against that). Servers' certificates are mostly self-signed, so
    /// verifying by default would make the default fail on most servers.
    #[default]
    Preferred,
    /// Never TLS.
    Off,
}

impl std::fmt::Display for TlsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsMode::Required => "required",
            TlsMode::Preferred => "preferred",
            TlsMode::Off => "off",
        })
    }
}

/// The TLS settings of a connection: the mode and an optional private CA (PEM file).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSettings {
    /// The mode.
    pub mode: TlsMode,
    /// A CA certificate file (PEM) the server's certificate must verify against.
    pub ca: Option<PathBuf>,
    /// Never fall back to plain text, even in [`TlsMode::Preferred`]: set when the plan
    /// was made over TLS, so a server that stopped offering it (or someone stripping it
    /// from the handshake) stops the run instead of downgrading it.
    pub refuse_plain: bool,
}

impl TlsSettings {
    /// Plain text, never TLS.
    pub fn off() -> TlsSettings {
        TlsSettings {
            mode: TlsMode::Off,
            ca: None,
            refuse_plain: false,
        }
    }

    /// Whether a server that offers no TLS gets a plain-text connection instead.
    pub fn falls_back(&self) -> bool {
        self.mode == TlsMode::Preferred && !self.refuse_plain
    }

    /// Whether the server's certificate is checked (against the CA or the built-in roots).
    pub fn verifies(&self) -> bool {
        match self.mode {
            TlsMode::Required => true,
            TlsMode::Preferred => self.ca.is_some(),
            TlsMode::Off => false,
        }
    }

    /// The driver's TLS options for this mode (`None`: plain text).
    fn ssl_opts(&self) -> Option<mysql_async::SslOpts> {
        if self.mode == TlsMode::Off {
            return None;
        }
        let mut ssl = mysql_async::SslOpts::default();
        if let Some(ca) = &self.ca {
            ssl = ssl.with_root_certs(vec![ca.clone().into()]);
        }
        if !self.verifies() {
            ssl = ssl
                .with_danger_accept_invalid_certs(true)
                .with_danger_skip_domain_validation(true);
        }
        Some(ssl)
    }
}

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
    /// How the connection is protected.
    pub tls: TlsSettings,
}

impl DbTarget {
    /// `mysql://user@host:port`, the form used in the ledger, logs and reports: no password.
    pub fn display_url(&self) -> String {
        format!("mysql://{}@{}:{}", self.user, self.host, self.port)
    }

    /// Connection options for mysql_async, optionally selecting a default database, with
    /// TLS as [`DbTarget::tls`] says. For [`TlsMode::Preferred`] these ask for TLS, and a
    /// server that offers none refuses them (`DriverError::NoClientSslFlagFromServer`):
    /// connect with [`DbTarget::connect`] (or the metadata adapter), which then falls back
    /// to [`DbTarget::plain_opts`].
    pub fn opts(&self, database: Option<&str>) -> mysql_async::Opts {
        mysql_async::OptsBuilder::from_opts(self.plain_opts(database))
            .ssl_opts(self.tls.ssl_opts())
            .into()
    }

    /// The same options without TLS: [`TlsMode::Preferred`]'s fallback.
    pub fn plain_opts(&self, database: Option<&str>) -> mysql_async::Opts {
        let builder = mysql_async::OptsBuilder::default()
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass(Some(self.password.expose().to_string()))
            .db_name(database.map(str::to_string))
            .prefer_socket(false);
        builder.into()
    }

    /// One connection, TLS as [`DbTarget::tls`] says: for [`TlsMode::Preferred`], plain
    /// text only when the server offers no TLS at all (a failed handshake is an error, not
    /// a reason to fall back). Returns the connection and whether it is encrypted.
    pub async fn connect(
        &self,
        database: Option<&str>,
    ) -> Result<(mysql_async::Conn, bool), mysql_async::Error> {
        if self.tls.mode == TlsMode::Off {
            return Ok((
                mysql_async::Conn::new(self.plain_opts(database)).await?,
                false,
            ));
        }
        match mysql_async::Conn::new(self.opts(database)).await {
            Ok(c) => Ok((c, true)),
            Err(e) if self.tls.falls_back() && offers_no_tls(&e) => Ok((
                mysql_async::Conn::new(self.plain_opts(database)).await?,
                false,
            )),
            Err(e) => Err(e),
        }
    }
}

/// What went wrong in a TLS handshake, when `e` is a TLS failure (rustls reports a
/// certificate that does not verify as invalid data on the stream).
pub fn tls_failure(e: &mysql_async::Error) -> Option<String> {
    match e {
        mysql_async::Error::Io(mysql_async::IoError::Tls(t)) => Some(t.to_string()),
        mysql_async::Error::Io(mysql_async::IoError::Io(io))
            if io.kind() == std::io::ErrorKind::InvalidData =>
        {
            Some(io.to_string())
        }
        _ => None,
    }
}

/// True when the driver refused because the server offers no TLS.
pub fn offers_no_tls(e: &mysql_async::Error) -> bool {
    matches!(
        e,
        mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer)
    )
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
            tls: TlsSettings::default(),
        };
        assert_eq!(t.display_url(), "mysql://oms@10.0.0.1:2881");
        assert!(!format!("{t:?}").contains("s3cret"));
    }
}
