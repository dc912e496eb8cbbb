//! `serve`: the container's main process, standing in for a running OMS node.
//!
//! It connects to the metadata database named in `config.yaml` (exiting non-zero with one
//! clear log line when it cannot), then, until SIGTERM:
//! - answers `GET /oms/health` on `nginx_server_port` with OMS's response envelope; the
//!   node is healthy only while the schema-version row in rm equals its own version, so a
//!   new-version node on an old schema stays unhealthy until `docker_init.sh` migrates it;
//! - once healthy, inserts a row into `<cm_hb>.heatbeat_sequence` every 200 ms and keeps its
//!   host row in `<cm_hb>.host_heartbeat` fresh;
//! - reads `ha.config` from `<rm>.oms_normal_config` every 2 s and logs what HA would do when
//!   it changes;
//! - writes its log under the logs folder, a store checkpoint under the store folder and a
//!   pid and status file under the run folder, so a lost mount shows on the host.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use oms_upgrade::omsconfig::{MetaDatabases, OmsConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{SignalKind, signal};

use crate::common::{Logger, Paths, q};
use crate::schema::VERSION_TABLE;

/// The line a started OMS container logs once it is ready.
pub const READY_LINE: &str = "OMS service start successfully";

/// What `/oms/health` reports.
#[derive(Debug, Clone, Default)]
struct Health {
    healthy: bool,
    schema_version: Option<String>,
    reason: Option<String>,
    heartbeats: u64,
    last_heartbeat_id: Option<u64>,
    ha_enabled: Option<bool>,
}

struct Node {
    version: String,
    host_ip: String,
    started_at: String,
    dbs: MetaDatabases,
    pool: mysql_async::Pool,
    log: Logger,
    paths: Paths,
    health: Mutex<Health>,
}

/// The `serve` mode; returns the process exit code.
pub async fn run(paths: Paths) -> i32 {
    let _ = std::fs::create_dir_all(&paths.logs);
    let log = Logger::new(&[paths.logs.join("oms_emulator.log")]);
    let version = match crate::common::version_from_env() {
        Ok(v) => v,
        Err(e) => {
            log.error(&format!("OMS service failed to start: {e}"));
            return 1;
        }
    };
    log.info(&format!(
        "OMS CE emulator {version} starting, pid {}",
        std::process::id()
    ));
    let cfg: OmsConfig = match crate::common::load_config(&paths.config) {
        Ok(c) => c,
        Err(e) => {
            log.error(&format!("OMS service failed to start: {e}"));
            return 2;
        }
    };
    let pool = match crate::common::connect(&cfg).await {
        Ok(p) => p,
        Err(e) => {
            log.error(&format!("OMS service failed to start: {e}"));
            return 3;
        }
    };
    let port = cfg.nginx_server_port;
    let tls = match crate::tls::acceptor() {
        Ok(t) => t,
        Err(e) => {
            log.error(&format!("OMS service failed to start: nginx: {e}"));
            return 6;
        }
    };
    let host_ip = std::env::var("OMS_HOST_IP").unwrap_or_else(|_| "127.0.0.1".into());
    let bind_ip = bind_address(&host_ip);
    let listener = match tokio::net::TcpListener::bind((bind_ip, port)).await {
        Ok(l) => l,
        Err(e) => {
            log.error(&format!(
                "OMS service failed to start: cannot listen on nginx_server_port {bind_ip}:{port}: {e}"
            ));
            return 4;
        }
    };
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        _ => {
            log.error("OMS service failed to start: cannot install signal handlers");
            return 5;
        }
    };
    let node = Arc::new(Node {
        version: version.clone(),
        host_ip,
        started_at: chrono::Utc::now().to_rfc3339(),
        dbs: cfg.databases(),
        pool,
        log: log.clone(),
        paths: paths.clone(),
        health: Mutex::new(Health {
            reason: Some("starting".into()),
            ..Health::default()
        }),
    });
    write_run_files(&node, "STARTING");
    log.info(&format!(
        "health endpoint on {}://{bind_ip}:{port}/oms/health, metadata DB {}",
        if tls.is_some() { "https" } else { "http" },
        cfg.db_target().display_url()
    ));
    // A first look at the schema before answering, so the first health answer already
    // says why the node is not healthy.
    let (healthy0, reason0, schema0) = check_schema(&node).await;
    if let Ok(mut h) = node.health.lock() {
        h.reason = if healthy0 { None } else { reason0 };
        h.schema_version = schema0;
    }
    let http = tokio::spawn(serve_http(listener, tls, node.clone()));
    let monitor = tokio::spawn(monitor(node.clone()));
    let sig = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    log.info(&format!("{sig} received: OMS service stopping"));
    // A shutdown that takes a while (`OMS_EMU_STOP_DELAY_MS`), so `docker stop` returns
    // well after it was asked for: a test knob, the public record does not say how long a
    // real node takes to stop its components.
    if let Some(ms) = std::env::var("OMS_EMU_STOP_DELAY_MS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0)
    {
        log.info(&format!("stopping takes {ms} ms (OMS_EMU_STOP_DELAY_MS)"));
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    monitor.abort();
    http.abort();
    let _ = monitor.await;
    write_run_files(&node, "STOPPED");
    let _ = tokio::time::timeout(Duration::from_secs(2), node.pool.clone().disconnect()).await;
    log.info("OMS service stopped");
    0
}

/// Where the console port listens: `OMS_HOST_IP` when it is a loopback address other than
/// `127.0.0.1` (a node of a several-node world on one engine, each node on an address of
/// its own, so the nodes of a region can share one `nginx_server_port`), else every
/// address, `0.0.0.0` (a single node; the test harness reaches it at `127.0.0.1`). A test
/// harness choice: the public record only says OMS runs on the host network with its own
/// `OMS_HOST_IP` per machine (docs/emulator.md).
fn bind_address(host_ip: &str) -> std::net::IpAddr {
    use std::net::{IpAddr, Ipv4Addr};
    match host_ip.trim().parse::<IpAddr>() {
        Ok(ip) if ip.is_loopback() && ip != IpAddr::V4(Ipv4Addr::LOCALHOST) => ip,
        _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    }
}

/// The run folder's files and the store checkpoint; failures are logged, not fatal.
fn write_run_files(node: &Node, state: &str) {
    let h = node.health.lock().map(|h| h.clone()).unwrap_or_default();
    let pid = std::process::id();
    let status = format!(
        "state={state} healthy={} version={} pid={pid} started_at={} updated_at={}\n",
        h.healthy,
        node.version,
        node.started_at,
        chrono::Utc::now().to_rfc3339()
    );
    let checkpoint = serde_json::json!({
        "version": node.version,
        "pid": pid,
        "state": state,
        "heartbeats": h.heartbeats,
        "lastHeartbeatId": h.last_heartbeat_id,
        "updatedAt": chrono::Utc::now().to_rfc3339(),
    });
    let writes: [(PathBuf, String); 3] = [
        (node.paths.run.join("oms_emulator.pid"), format!("{pid}\n")),
        (node.paths.run.join("oms_emulator.status"), status),
        (
            node.paths.store.join("store_checkpoint.json"),
            format!("{checkpoint}\n"),
        ),
    ];
    for (path, text) in writes {
        let tmp = path.with_extension("tmp");
        let r = std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, &path));
        if let Err(e) = r {
            node.log
                .warn(&format!("cannot write {}: {e}", path.display()));
        }
    }
}

/// Heartbeats every 200 ms; schema and run files every second; `ha.config` every 2 s.
async fn monitor(node: Arc<Node>) {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    let mut ever_ready = false;
    let mut last_ha: Option<String> = None;
    let mut last_db_error: Option<String> = None;
    loop {
        tick.tick().await;
        if n % 5 == 0 {
            let (healthy, reason, schema) = check_schema(&node).await;
            let was = {
                let mut h = node.health.lock().expect("health lock");
                let was = h.healthy;
                h.healthy = healthy;
                h.reason = reason.clone();
                h.schema_version = schema;
                was
            };
            if healthy && !was {
                // Read HA at once: a freshly initialised schema has its ha.config now.
                last_ha = None;
                read_ha_config(&node, &mut last_ha).await;
                if ever_ready {
                    node.log.info("OMS service healthy again");
                } else {
                    node.log.info(READY_LINE);
                    ever_ready = true;
                }
            } else if !healthy && reason != last_db_error {
                node.log.warn(&format!(
                    "OMS service not healthy: {}",
                    reason.clone().unwrap_or_default()
                ));
            }
            last_db_error = if healthy { None } else { reason };
            write_run_files(&node, if healthy { "RUNNING" } else { "STARTING" });
        }
        if n % 10 == 0 {
            read_ha_config(&node, &mut last_ha).await;
        }
        let healthy = node.health.lock().map(|h| h.healthy).unwrap_or(false);
        if healthy {
            heartbeat(&node, n % 5 == 0).await;
        }
        n = n.wrapping_add(1);
    }
}

/// (healthy, reason when not, schema version seen).
async fn check_schema(node: &Node) -> (bool, Option<String>, Option<String>) {
    let sql = format!(
        "SELECT version FROM {}.{VERSION_TABLE} WHERE id = 1",
        q(&node.dbs.rm)
    );
    let res: Result<Option<String>, mysql_async::Error> = async {
        let mut c = node.pool.get_conn().await?;
        c.query_first(sql).await
    }
    .await;
    match res {
        Ok(Some(v)) if v == node.version => (true, None, Some(v)),
        Ok(Some(v)) => (
            false,
            Some(format!(
                "metadata schema is {v} but this node is {}: run /root/docker_init.sh{}",
                node.version,
                if crate::schema::index_of(&v) < crate::schema::index_of(&node.version) {
                    " with IS_UPGRADE=true"
                } else {
                    " of the matching image, or restore the matching backup"
                }
            )),
            Some(v),
        ),
        Ok(None) => (
            false,
            Some(
                "metadata not initialised (no schema-version row): run /root/docker_init.sh".into(),
            ),
            None,
        ),
        Err(e) => {
            let msg = e.to_string();
            let reason = if msg.contains("1146") || msg.contains("1049") {
                "metadata not initialised: run /root/docker_init.sh".to_string()
            } else {
                format!("metadata DB error: {msg}")
            };
            (false, Some(reason), None)
        }
    }
}

async fn heartbeat(node: &Node, with_host_row: bool) {
    let hb = q(&node.dbs.cm_hb);
    let res: Result<u64, mysql_async::Error> = async {
        let mut c = node.pool.get_conn().await?;
        let seq = node.health.lock().map(|h| h.heartbeats).unwrap_or(0);
        c.exec_drop(
            format!("INSERT INTO {hb}.heatbeat_sequence (gmt_created, host_ip, sequence_no) VALUES (NOW(6), ?, ?)"),
            (&node.host_ip, seq),
        )
        .await?;
        let id = c.last_insert_id().unwrap_or(0);
        if with_host_row {
            c.exec_drop(
                format!(
                    "REPLACE INTO {hb}.host_heartbeat (host_ip, version, status, last_beat) VALUES (?, ?, 'ONLINE', NOW(6))"
                ),
                (&node.host_ip, &node.version),
            )
            .await?;
        }
        Ok(id)
    }
    .await;
    match res {
        Ok(id) => {
            if let Ok(mut h) = node.health.lock() {
                h.heartbeats += 1;
                h.last_heartbeat_id = Some(id);
            }
        }
        Err(e) => node.log.warn(&format!("heartbeat failed: {e}")),
    }
}

/// Logs what HA would do whenever the stored `ha.config` value changes.
async fn read_ha_config(node: &Node, last: &mut Option<String>) {
    let sql = format!(
        "SELECT cfg_value FROM {}.oms_normal_config WHERE cfg_name = 'ha.config'",
        q(&node.dbs.rm)
    );
    let res: Result<Option<Option<String>>, mysql_async::Error> = async {
        let mut c = node.pool.get_conn().await?;
        c.query_first(sql).await
    }
    .await;
    let text = match res {
        Ok(Some(Some(v))) => v,
        Ok(_) => "<missing>".to_string(),
        // Schema errors are already reported by the health check.
        Err(_) => return,
    };
    if last.as_deref() == Some(text.as_str()) {
        return;
    }
    *last = Some(text.clone());
    let (enabled, line) = describe_ha(&text);
    if let Ok(mut h) = node.health.lock() {
        h.ha_enabled = enabled;
    }
    node.log.info(&line);
}

/// What HA would do with this `ha.config` value: (enabled, log line).
fn describe_ha(text: &str) -> (Option<bool>, String) {
    if text == "<missing>" {
        return (
            None,
            "HA: no ha.config row in oms_normal_config; HA stays off".into(),
        );
    }
    let v: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return (
                None,
                format!("HA: ha.config is not valid JSON ({e}); HA stays off"),
            );
        }
    };
    let get = |k: &str| v.get(k).cloned().unwrap_or(serde_json::Value::Null);
    let on = get("enable").as_bool().unwrap_or(false);
    if !on {
        return (
            Some(false),
            "HA: ha.config enable=false: HA disabled, no automatic recovery of hosts, stores or connectors".into(),
        );
    }
    let perceive = get("perceiveStoreClientCheckpoint")
        .as_bool()
        .unwrap_or(false);
    let refetch = get("refetchStoreIntervalMin");
    let store = if perceive {
        "stores restart from their clients' checkpoints (perceiveStoreClientCheckpoint=true)"
            .to_string()
    } else {
        format!("a restarted store refetches the last {refetch} min (refetchStoreIntervalMin)")
    };
    (
        Some(true),
        format!(
            "HA: ha.config enable=true: enableHost={} enableStore={} enableConnector={} enableJdbcWriter={}; \
             host down after {}s; {store}",
            get("enableHost"),
            get("enableStore"),
            get("enableConnector"),
            get("enableJdbcWriter"),
            get("checkHostDownIntervalSec"),
        ),
    )
}

/// Accepts connections on the console port: over TLS only when `tls` is set (a plain HTTP
/// request then fails the handshake, as it does against nginx's `ssl` listener).
async fn serve_http(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    node: Arc<Node>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let node = node.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => {
                    let _ = answer(stream, &node).await;
                }
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(Duration::from_secs(5), acceptor.accept(stream));
                    if let Ok(Ok(stream)) = handshake.await {
                        let _ = answer(stream, &node).await;
                    }
                }
            }
        });
    }
}

/// Reads one request head and answers it; connections are not kept alive.
async fn answer<S>(mut stream: S, node: &Node) -> std::io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .map_err(|_| std::io::Error::other("request head timeout"))??;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        // Not a request line (a TLS ClientHello starts with 0x16): answer at once, as
        // nginx answers `400 Bad Request` to bytes that are not HTTP.
        if !buf[0].is_ascii_alphabetic() {
            let resp = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            stream.write_all(resp.as_bytes()).await?;
            return stream.shutdown().await;
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, body) = if method == "GET" && path == "/oms/health" {
        ("200 OK", envelope(true, "SUCCESS", None, health_data(node)))
    } else {
        (
            "404 Not Found",
            envelope(
                false,
                "NOT_FOUND",
                Some(format!("no route for {method} {path}")),
                serde_json::Value::Null,
            ),
        )
    };
    let body = body.to_string();
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json;charset=UTF-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(resp.as_bytes()).await?;
    stream.shutdown().await
}

fn health_data(node: &Node) -> serde_json::Value {
    let h = node.health.lock().map(|h| h.clone()).unwrap_or_default();
    serde_json::json!({
        "healthy": h.healthy,
        "version": node.version,
        "schemaVersion": h.schema_version,
        "reason": h.reason,
        "hostIp": node.host_ip,
        "status": if h.healthy { "ONLINE" } else { "OFFLINE" },
        "startedAt": node.started_at,
        "heartbeats": h.heartbeats,
        "lastHeartbeatId": h.last_heartbeat_id,
        "haEnabled": h.ha_enabled,
        "components": [
            {"name": "metaDb", "status": if h.schema_version.is_some() { "UP" } else { "DOWN" }},
            {"name": "cm", "status": if h.healthy { "UP" } else { "DOWN" }},
            {"name": "supervisor", "status": "UP"},
        ],
    })
}

/// OMS's response envelope (the shape of its console and OpenAPI answers).
fn envelope(
    success: bool,
    code: &str,
    message: Option<String>,
    data: serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({
        "success": success,
        "errorDetail": null,
        "code": code,
        "message": message,
        "advice": null,
        "requestId": uuid::Uuid::new_v4().to_string(),
        "pageNumber": null,
        "pageSize": null,
        "totalCount": null,
        "cost": "0 ms",
        "data": data,
    })
}

/// `supervisorctl status`, as the 4.2.x runbook checks before `docker_init.sh`: every
/// program RUNNING while the emulator's serve process is alive, exit 3 otherwise (as
/// supervisorctl does when a program is not running). Two knobs (docs/emulator.md):
/// `OMS_EMU_SUPERVISOR_STARTING_MS` (or `.emu-supervisor-starting-ms` in the logs folder)
/// keeps every program STARTING for that long after the serve process started, as
/// supervisord does until a program has stayed up `startsecs`; `OMS_EMU_SUPERVISOR_FATAL`
/// (or `.emu-supervisor-fatal`) names a program shown FATAL, as supervisord does once it
/// gave up restarting it.
pub fn supervisorctl(paths: &Paths) -> i32 {
    let pid_file = paths.run.join("oms_emulator.pid");
    let pid: Option<u32> = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let alive = pid.is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
    let state = std::fs::read_to_string(paths.run.join("oms_emulator.status")).unwrap_or_default();
    let running = alive && !state.contains("state=STOPPED");
    let knob = |env: &str, file: &str| {
        std::env::var(env)
            .ok()
            .or_else(|| std::fs::read_to_string(paths.logs.join(file)).ok())
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let starting_for = knob(
        "OMS_EMU_SUPERVISOR_STARTING_MS",
        ".emu-supervisor-starting-ms",
    )
    .and_then(|v| v.parse::<u64>().ok())
    .map(Duration::from_millis)
    .unwrap_or_default();
    let fatal = knob("OMS_EMU_SUPERVISOR_FATAL", ".emu-supervisor-fatal");
    // The serve process's start, from its status file: the programs' uptime.
    let up_for = state
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("started_at="))
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .and_then(|t| {
            (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                .to_std()
                .ok()
        })
        .unwrap_or_default();
    let mut all_running = running;
    for program in ["oms_console", "oms_drc_cm", "oms_drc_supervisor", "nginx"] {
        if !running {
            println!("{program:<33}STOPPED   Not started");
        } else if fatal.as_deref() == Some(program) {
            all_running = false;
            println!("{program:<33}FATAL     Exited too quickly (process log may have details)");
        } else if up_for < starting_for {
            all_running = false;
            println!("{program:<33}STARTING  ");
        } else {
            println!(
                "{program:<33}RUNNING   pid {}, uptime 0:00:{:02}",
                pid.unwrap_or(0),
                up_for.as_secs().min(59)
            );
        }
    }
    if all_running { 0 } else { 3 }
}
