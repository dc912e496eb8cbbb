//! A TCP proxy between the tool and MariaDB that a test can cut and restore: the witness
//! "unreachable between two steps" without touching the server other tests share.
//!
//! While cut, every live connection is closed and new ones are accepted and closed at once
//! (the port stays bound, so the tool sees a server that hangs up, as after a network
//! failure or a restart, and the same URL works again once restored).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// A running proxy to one upstream address; stopped when dropped.
pub struct Proxy {
    /// The local port it listens on (127.0.0.1).
    pub port: u16,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Proxy {
    /// Listens on an ephemeral port of 127.0.0.1 and forwards to `host:port`.
    pub async fn start(host: &str, port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
        let local = listener.local_addr().unwrap().port();
        let upstream = format!("{host}:{port}");
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (up2, conns2) = (Arc::clone(&up), Arc::clone(&conns));
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns2.lock().unwrap().push(task.abort_handle());
            }
        })
        .abort_handle();
        Proxy {
            port: local,
            up,
            conns,
            accept,
        }
    }

    /// Cuts the link: live connections are closed, new ones hung up on.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    /// Whether the link is cut.
    pub fn is_cut(&self) -> bool {
        !self.up.load(Ordering::SeqCst)
    }

    /// Restores the link.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}
