//! The connection the dumper's per-table code takes: the wire client where it can serve
//! the target, mysql_async where it cannot. An enum rather than a trait object: the set is
//! closed, and async methods stay plain (no boxing per call).

use std::sync::atomic::{AtomicBool, Ordering};

use mysql_async::prelude::Queryable;

use super::{WireConn, WireError, WireUse};
use crate::dbconn::DbTarget;
use crate::dump::{DumpError, connect};

/// One of the two clients.
pub(crate) enum DumpConn {
    /// mysql_async (TLS, other auth plugins, CHECKSUM TABLE facts).
    Async(mysql_async::Conn),
    /// The wire client (boxed: it holds its buffers' bookkeeping inline).
    Wire(Box<WireConn>),
}

/// The fallback is logged once per process, not once per worker connection.
static FALLBACK_LOGGED: AtomicBool = AtomicBool::new(false);

impl DumpConn {
    /// Opens a connection with the client `wire` asks for. [`WireUse::Auto`] tries the
    /// wire client and falls back to mysql_async on any failure of it (mysql_async then
    /// reports the real problem, as it did before the wire client existed, or succeeds
    /// where the wire client cannot, e.g. TLS or another auth plugin).
    pub(crate) async fn open(target: &DbTarget, wire: WireUse) -> Result<DumpConn, DumpError> {
        if wire == WireUse::Never {
            return Ok(DumpConn::Async(connect(target).await?));
        }
        match WireConn::connect(target).await {
            Ok(c) => Ok(DumpConn::Wire(Box::new(c))),
            Err(e) if wire == WireUse::Only => Err(match e {
                WireError::Server {
                    code: 1045,
                    message,
                    ..
                } => DumpError::AccessDenied {
                    url: target.display_url(),
                    message,
                },
                e => DumpError::Connect {
                    url: target.display_url(),
                    source: Box::new(e.into()),
                },
            }),
            Err(e) => {
                if !FALLBACK_LOGGED.swap(true, Ordering::Relaxed) {
                    tracing::info!(reason = %e, "dump connections use mysql_async, not the wire client");
                } else {
                    tracing::debug!(reason = %e, "wire client not used");
                }
                Ok(DumpConn::Async(connect(target).await?))
            }
        }
    }

    /// The server's connection id (what `KILL` takes).
    pub(crate) fn id(&self) -> u32 {
        match self {
            DumpConn::Async(c) => c.id(),
            DumpConn::Wire(c) => c.id(),
        }
    }

    /// Runs `sql`, dropping its result.
    pub(crate) async fn query_drop(&mut self, sql: &str) -> Result<(), mysql_async::Error> {
        match self {
            DumpConn::Async(c) => c.query_drop(sql).await,
            DumpConn::Wire(c) => Ok(c.query_drop(sql).await?),
        }
    }

    /// Column `index` of `sql`'s first row as text (`None`: no row, or NULL).
    pub(crate) async fn query_first_text(
        &mut self,
        sql: &str,
        index: usize,
    ) -> Result<Option<String>, mysql_async::Error> {
        match self {
            DumpConn::Async(c) => {
                let row: Option<mysql_async::Row> = c.query_first(sql).await?;
                Ok(row.and_then(|mut r| r.take::<Option<String>, _>(index).flatten()))
            }
            DumpConn::Wire(c) => Ok(c.query_first_text(sql, index).await?),
        }
    }

    /// Closes the connection (best effort).
    pub(crate) async fn disconnect(self) {
        match self {
            DumpConn::Async(c) => {
                c.disconnect().await.ok();
            }
            DumpConn::Wire(c) => {
                c.disconnect().await.ok();
            }
        }
    }
}
