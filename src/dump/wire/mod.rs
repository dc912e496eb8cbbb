//! A minimal MySQL/MariaDB text-protocol client for the native dumper's worker
//! connections, so rows are read straight out of the received packets: one reusable
//! receive buffer, each row's values handed out as borrowed slices, no allocation per row
//! or value (mysql_async builds a `Vec` per value and per row, which was over half of the
//! dumper's client CPU on narrow rows).
//!
//! It speaks only what the dumper needs: handshake v10 over plain TCP,
//! `mysql_native_password` (also after an AuthSwitchRequest), COM_QUERY with text result
//! sets, COM_QUIT. Anything else — a server or settings that need TLS, another auth plugin
//! — is [`WireError::Unsupported`], and the caller uses mysql_async instead
//! ([`DumpConn::open`]), which owns the crate's TLS rules. Errors are turned into
//! `mysql_async::Error` so the dumper's error sorting (`query_err`) is the same for both.
//!
//! `packet` is pure (framing and payload forms, unit-tested over byte slices); `conn` does
//! the I/O; `dumpconn` is what the dumper's code takes: either connection.

mod conn;
mod dumpconn;
pub(crate) mod packet;

pub use conn::{Row, WireConn};
pub(crate) use dumpconn::DumpConn;

/// A failure of the wire client.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// The server's own error (an ERR packet).
    #[error("server error {code} ({state}): {message}")]
    Server {
        /// The error number.
        code: u16,
        /// The SQL state (empty before the capabilities are agreed).
        state: String,
        /// The server's message.
        message: String,
    },
    /// Reading or writing the socket failed (the server gone, the connection killed).
    #[error("i/o: {0}")]
    Io(IoErr),
    /// The server sent something this client does not understand.
    #[error("protocol: {0}")]
    Protocol(String),
    /// This client cannot serve this server or target; use mysql_async.
    #[error("not supported by the wire client: {0}")]
    Unsupported(String),
}

/// An I/O error, compared by kind (so [`WireError`] can be compared in tests).
#[derive(Debug)]
pub struct IoErr(pub std::io::Error);

impl PartialEq for IoErr {
    fn eq(&self, other: &Self) -> bool {
        self.0.kind() == other.0.kind()
    }
}
impl Eq for IoErr {}

impl std::fmt::Display for IoErr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<std::io::Error> for WireError {
    fn from(e: std::io::Error) -> Self {
        WireError::Io(IoErr(e))
    }
}

impl From<WireError> for mysql_async::Error {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Server {
                code,
                state,
                message,
            } => mysql_async::Error::Server(mysql_async::ServerError {
                code,
                message,
                state,
            }),
            WireError::Io(IoErr(io)) => mysql_async::Error::Io(mysql_async::IoError::Io(io)),
            other => mysql_async::Error::Other(Box::new(other)),
        }
    }
}

/// Which client the native dumper's worker connections use (see [`DumpConn::open`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WireUse {
    /// The wire client where it can serve the target, else mysql_async (the default).
    #[default]
    Auto,
    /// Always mysql_async.
    Never,
    /// Always the wire client: a target it cannot serve is an error (for tests).
    Only,
}
