//! The health adapter against real HTTP peers: a tiny server in the test answers fixed
//! responses over TCP (healthy, unhealthy, not JSON, a node that becomes healthy after a
//! few requests, one that never answers), plus a port where nothing listens.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use oms_upgrade::adapters::health::{Health, HealthError, HttpHealth};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves `answer(n)` (status, body) to the n-th request (0-based); records request paths.
async fn serve(
    answer: impl Fn(usize) -> (u16, &'static str) + Send + Sync + 'static,
) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let paths = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = paths.clone();
    let count = Arc::new(AtomicUsize::new(0));
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (seen, count, answer) = (seen.clone(), count.clone(), answer.clone());
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&req)
                    .lines()
                    .next()
                    .unwrap()
                    .to_string();
                seen.lock().unwrap().push(line);
                let (status, body) = answer(count.fetch_add(1, Ordering::SeqCst));
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (base, paths)
}

const HEALTHY: &str = r#"{"success":true,"data":{"healthy":true,"nodes":[]}}"#;
const UNHEALTHY: &str = r#"{"success":true,"data":{"healthy":false}}"#;

#[tokio::test]
async fn healthy_answer_on_the_health_path() {
    let (base, paths) = serve(|_| (200, HEALTHY)).await;
    let h = HttpHealth::new().unwrap();
    let r = h.check(&format!("{base}/")).await.unwrap();
    assert!(r.healthy, "{r:?}");
    assert_eq!(r.status, 200);
    assert_eq!(r.body_excerpt, HEALTHY);
    assert_eq!(
        paths.lock().unwrap().as_slice(),
        ["GET /oms/health HTTP/1.1"]
    );
}

#[tokio::test]
async fn unhealthy_and_non_json_answers_are_reports_not_errors() {
    let (base, _) = serve(|_| (200, UNHEALTHY)).await;
    let h = HttpHealth::new().unwrap();
    let r = h.check(&base).await.unwrap();
    assert!(!r.healthy);
    assert_eq!(r.reason, "data.healthy is false");

    let (base, _) = serve(|_| (502, "<html>Bad Gateway</html>")).await;
    let r = h.check(&base).await.unwrap();
    assert!(!r.healthy);
    assert_eq!(r.status, 502);
    assert_eq!(r.reason, "the answer is not JSON");
    assert_eq!(r.body_excerpt, "<html>Bad Gateway</html>");
}

#[tokio::test]
async fn connection_refused_is_unreachable() {
    // Bind then drop: the port is free and nothing listens on it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let h = HttpHealth::new().unwrap();
    match h.check(&format!("http://127.0.0.1:{port}")).await {
        Err(HealthError::Unreachable { url, .. }) => {
            assert_eq!(url, format!("http://127.0.0.1:{port}/oms/health"))
        }
        r => panic!("expected Unreachable, got {r:?}"),
    }
}

#[tokio::test]
async fn a_peer_that_never_answers_times_out() {
    // Accepts connections (the kernel's backlog does) but never reads or answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let h = HttpHealth::with_timeouts(Duration::from_secs(2), Duration::from_millis(300)).unwrap();
    match h.check(&base).await {
        Err(HealthError::RequestTimeout { after, .. }) => {
            assert_eq!(after, Duration::from_millis(300))
        }
        r => panic!("expected RequestTimeout, got {r:?}"),
    }
    drop(listener);
}

#[tokio::test]
async fn wait_healthy_polls_until_healthy() {
    // Unhealthy for the first three requests, then healthy (a node finishing its start).
    let (base, paths) = serve(|n| {
        if n < 3 {
            (503, UNHEALTHY)
        } else {
            (200, HEALTHY)
        }
    })
    .await;
    let h = HttpHealth::new().unwrap();
    let r = h
        .wait_healthy(&base, Duration::from_secs(60), Duration::from_millis(20))
        .await
        .unwrap();
    assert!(r.healthy);
    assert_eq!(paths.lock().unwrap().len(), 4);
}

/// Issue 16: a node that turns healthy a moment after the first probe is seen a moment
/// later, not a whole coarse interval later: with the executor's default, the pauses
/// start at 20 ms and double (a fixed 500 ms interval saw it after 500 ms; that slack sat
/// inside the downtime window and looked like OMS's start-up).
#[tokio::test]
async fn wait_healthy_sees_a_node_turn_healthy_within_a_fine_pause() {
    let start = std::time::Instant::now();
    let healthy_at = Duration::from_millis(60);
    let (base, _) = serve(move |_| {
        if start.elapsed() < healthy_at {
            (503, UNHEALTHY)
        } else {
            (200, HEALTHY)
        }
    })
    .await;
    let h = HttpHealth::new().unwrap();
    let poll = oms_upgrade::executor::ExecOptions::default().health_poll;
    let r = h
        .wait_healthy(&base, Duration::from_secs(60), poll)
        .await
        .unwrap();
    assert!(r.healthy);
    let seen = start.elapsed();
    assert!(
        seen < Duration::from_millis(300),
        "healthy from 60 ms on, seen after {seen:?} (poll setting {poll:?})"
    );
}

#[tokio::test]
async fn wait_healthy_gives_up_with_the_last_observation() {
    let (base, _) = serve(|_| (200, UNHEALTHY)).await;
    let h = HttpHealth::new().unwrap();
    match h
        .wait_healthy(&base, Duration::from_millis(300), Duration::from_millis(50))
        .await
    {
        Err(HealthError::Timeout {
            last, last_report, ..
        }) => {
            assert!(last.contains("data.healthy is false"), "{last}");
            assert!(!last_report.unwrap().healthy);
        }
        r => panic!("expected Timeout, got {r:?}"),
    }
}

/// An HTTPS peer (rustls) with a certificate for 127.0.0.1 issued by the CA of `certs`,
/// answering healthy; returns `https://127.0.0.1:<port>`.
async fn serve_tls(certs: &oms_upgrade::demo::certs::ConsoleCerts) -> String {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = vec![CertificateDer::from_pem_slice(certs.cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(certs.key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("https://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(sock).await else {
                    return;
                };
                let mut buf = [0u8; 1024];
                let _ = tls.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{HEALTHY}",
                    HEALTHY.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    base
}

fn ca_file(dir: &std::path::Path, pem: &str) -> oms_upgrade::adapters::health::CaFile {
    let p = dir.join(format!("ca-{}.pem", blake3::hash(pem.as_bytes()).to_hex()));
    std::fs::write(&p, pem).unwrap();
    oms_upgrade::adapters::health::CaFile::read(&p).unwrap()
}

#[tokio::test]
async fn https_is_trusted_through_the_given_ca_only() {
    use oms_upgrade::demo::certs::make_console_certs;
    let certs = make_console_certs(&["127.0.0.1".into()]).unwrap();
    let base = serve_tls(&certs).await;
    let dir = tempfile::tempdir().unwrap();

    let h = HttpHealth::with_ca(&ca_file(dir.path(), &certs.ca_pem)).unwrap();
    let r = h.check(&base).await.unwrap();
    assert!(r.healthy, "{r:?}");

    // No CA, or another CA: a TLS error, at once (waiting would not make it verify).
    let other = make_console_certs(&["127.0.0.1".into()]).unwrap();
    for h in [
        HttpHealth::new().unwrap(),
        HttpHealth::with_ca(&ca_file(dir.path(), &other.ca_pem)).unwrap(),
    ] {
        let started = std::time::Instant::now();
        match h
            .wait_healthy(&base, Duration::from_secs(30), Duration::from_millis(50))
            .await
        {
            Err(HealthError::Tls { detail, .. }) => {
                assert!(detail.contains("certificate"), "{detail}")
            }
            r => panic!("expected a TLS error, got {r:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    // HTTPS to a plain HTTP peer (it answers the ClientHello with an HTTP error, as
    // nginx does) is a TLS error too.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let https_to_plain = format!("https://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = sock.read(&mut buf).await;
            let _ = sock
                .write_all(b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n")
                .await;
            let _ = sock.shutdown().await;
        }
    });
    let h = HttpHealth::with_ca(&ca_file(dir.path(), &certs.ca_pem)).unwrap();
    match h.check(&https_to_plain).await {
        Err(HealthError::Tls { .. }) => {}
        r => panic!("expected a TLS error, got {r:?}"),
    }
}
