//! HTTPS consoles (issue 12, item 2), against a real (emulated) OMS node in Docker whose
//! console serves HTTPS only because a certificate and key are mounted at
//! `/etc/pki/nginx/oms_server.{crt,key}`, and the real MariaDB.
//!
//! `init` must find the scheme from the mounts, refuse HTTPS it cannot verify before
//! anything changes, probe the old node with the trust it records, and `run` must complete
//! the upgrade with that trust (and refuse a CA file changed since `init`).

mod support;

use std::path::PathBuf;

use oms_upgrade::demo::certs::{ConsoleCerts, make_console_certs};
use oms_upgrade::events::HealthScheme;
use support::emulator::{self as emu, ConsoleTls, OmsNode};
use support::upgrade::{Run, error_line, init_args, json_of, ok, output, show};

fn certs() -> ConsoleCerts {
    make_console_certs(&["127.0.0.1".into(), "localhost".into()]).expect("make certificates")
}

/// An old node serving its console over HTTPS with `c`, and a fresh folder for its run.
async fn https_node(c: &ConsoleCerts) -> Run {
    let node: OmsNode = emu::start_oms_with(
        emu::OLD_VERSION,
        &[],
        Some(&ConsoleTls {
            cert_pem: c.cert_pem.clone(),
            key_pem: c.key_pem.clone(),
            ca_pem: c.ca_pem.clone(),
        }),
    )
    .await;
    let tmp = tempfile::Builder::new()
        .prefix("oms-upgrade-https-")
        .tempdir()
        .unwrap()
        .keep();
    Run { node, tmp }
}

/// Writes `pem` as a CA file in the run's folder.
fn ca_file(run: &Run, name: &str, pem: &str) -> PathBuf {
    let p = run.tmp.join(name);
    std::fs::write(&p, pem).unwrap();
    p
}

/// `init`'s arguments for `run`'s node with `--health-ca CA`.
async fn init_with_ca(run: &Run, ca: &std::path::Path) -> Vec<String> {
    init_args(
        &run.node,
        &run.backups(),
        &[("--health-ca", ca.to_str().unwrap())],
    )
    .await
}

/// Record types in the ledger, in order.
fn record_types(run: &Run) -> Vec<String> {
    run.replay()
        .0
        .iter()
        .map(|r| r.event.type_name().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn https_console_is_detected_probed_and_upgraded() {
    let c = certs();
    let run = https_node(&c).await;
    let ca = ca_file(&run, "console-ca.pem", &c.ca_pem);
    let args = init_with_ca(&run, &ca).await;
    let out = ok(run.cli().arg("--json").args(&args));
    let v = json_of(&out.stdout);
    let health = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "health")
        .unwrap_or_else(|| panic!("init probes the old node's health: {v}"));
    assert_eq!(health["ok"], true, "{v}");
    assert!(
        health["detail"].as_str().unwrap().contains("https://"),
        "{health}"
    );

    let (_, state) = run.replay();
    let plan = state.plan().unwrap();
    assert!(
        plan.health_url.starts_with("https://127.0.0.1:"),
        "init must plan the health check over HTTPS when a certificate is mounted: {}",
        plan.health_url
    );
    let trust = plan
        .health_trust()
        .expect("the plan records the health trust");
    assert_eq!(trust.scheme, HealthScheme::Https);
    assert!(!trust.url_from_operator);
    assert!(
        trust
            .detected_from
            .as_deref()
            .is_some_and(|b| b.contains(emu::CONSOLE_CERT)),
        "{trust:?}"
    );
    assert_eq!(
        trust.ca_blake3_hex.as_deref(),
        Some(blake3::hash(c.ca_pem.as_bytes()).to_hex().as_str())
    );

    run.ok(&["run", "--yes"]).await;
    let status = run.status();
    assert_eq!(status["phase"], "completed", "{status}");
    // The new container (same binds) serves HTTPS and is healthy.
    let url = format!("https://127.0.0.1:{}/oms/health", run.node.host.port());
    let h = emu::health_ca(&url, Some(c.ca_pem.as_bytes()))
        .await
        .expect("the new node answers over HTTPS");
    assert_eq!(h["data"]["healthy"], true, "{h}");
    assert_eq!(h["data"]["version"], emu::NEW_VERSION, "{h}");
    let live = output(run.cli().args(["ledger", "verify", "--live", "--json"])).await;
    assert!(live.status.success(), "{}", show(&live));

    // The rollback confirms the old node over HTTPS with the same recorded trust.
    run.ok(&["rollback", "--yes", "--reason", "https rollback test"])
        .await;
    assert_eq!(run.status()["phase"], "rolled back");
    let h = emu::health_ca(&url, Some(c.ca_pem.as_bytes()))
        .await
        .expect("the old node answers over HTTPS again");
    assert_eq!(h["data"]["healthy"], true, "{h}");
    assert_eq!(h["data"]["version"], emu::OLD_VERSION, "{h}");
}

#[tokio::test(flavor = "multi_thread")]
async fn https_without_trust_is_refused_before_anything_changes() {
    let c = certs();
    let run = https_node(&c).await;
    let ha_before = support::upgrade::ha_config(&run.node.databases()).await;
    let schema_before = emu::schema_version(&run.node.databases()).await;

    // No CA: refused at init, nothing planned.
    let args = init_args(&run.node, &run.backups(), &[]).await;
    let out = output(run.cli().args(&args)).await;
    assert_eq!(
        out.status.code(),
        Some(5),
        "init must refuse an HTTPS console it cannot verify: {}",
        show(&out)
    );
    let e = error_line(&out);
    assert!(
        e.contains("HTTPS") && e.contains("nothing was changed"),
        "{e}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("hint: pass --health-ca"), "{stderr}");
    assert_eq!(record_types(&run), ["preflight.failed"]);

    // A CA that did not issue the console's certificate: the probe fails the TLS handshake.
    let other = certs();
    let wrong = ca_file(&run, "wrong-ca.pem", &other.ca_pem);
    let args = init_with_ca(&run, &wrong).await;
    let out = output(run.cli().args(&args)).await;
    assert_eq!(out.status.code(), Some(5), "{}", show(&out));
    let e = error_line(&out);
    assert!(e.contains("TLS failed"), "{e}");
    assert_eq!(record_types(&run), ["preflight.failed", "preflight.failed"]);

    // A CA file that is a symbolic link is refused.
    let link = run.tmp.join("link-ca.pem");
    std::os::unix::fs::symlink(&wrong, &link).unwrap();
    let args = init_with_ca(&run, &link).await;
    let out = output(run.cli().args(&args)).await;
    assert_eq!(out.status.code(), Some(5), "{}", show(&out));
    assert!(error_line(&out).contains("symbolic link"), "{}", show(&out));

    // Nothing changed: the old container runs, HA and the schema are as they were.
    let docker = oms_upgrade::adapters::BollardDocker::from_client(run.node.docker.clone());
    use oms_upgrade::adapters::Docker;
    let old = docker.inspect(&run.node.name).await.unwrap().unwrap();
    assert!(old.status.is_running());
    assert_eq!(old.id, run.node.id);
    assert_eq!(
        support::upgrade::ha_config(&run.node.databases()).await,
        ha_before
    );
    assert_eq!(
        emu::schema_version(&run.node.databases()).await,
        schema_before
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ca_file_changed_since_init_is_refused_before_any_step() {
    let c = certs();
    let run = https_node(&c).await;
    let ca = ca_file(&run, "console-ca.pem", &c.ca_pem);
    let args = init_with_ca(&run, &ca).await;
    ok(run.cli().args(&args));
    let before = record_types(&run);
    std::fs::write(&ca, certs().ca_pem).unwrap();
    let out = output(run.cli().args(["run", "--yes"])).await;
    assert_eq!(out.status.code(), Some(7), "{}", show(&out));
    let e = error_line(&out);
    assert!(
        e.contains("changed since the plan was made") && e.contains("changed nothing"),
        "{e}"
    );
    assert_eq!(record_types(&run), before, "no step was recorded");
    let docker = oms_upgrade::adapters::BollardDocker::from_client(run.node.docker.clone());
    use oms_upgrade::adapters::Docker;
    let old = docker.inspect(&run.node.name).await.unwrap().unwrap();
    assert!(old.status.is_running());
}

/// A certificate is mounted but the node's nginx serves plain HTTP (the emulator's
/// `OMS_EMU_TLS=off`): `init` plans HTTPS from the mount, and its probe finds that the
/// check cannot work before anything changes; `--health-url http://…` overrides the
/// scheme (recorded as the operator's), and `--health-ca` with plain HTTP is refused.
#[tokio::test(flavor = "multi_thread")]
async fn health_url_overrides_a_mount_that_nginx_ignores() {
    let c = certs();
    let docker = support::docker().await;
    let guard = emu::ContainerGuard::new(&docker).await;
    let image = emu::images(&docker, &[emu::OLD_VERSION]).await.remove(0);
    let dbs = emu::MetaDbSet::create().await;
    let host = emu::OmsHost::new(&dbs.databases());
    let tls = host.dir.join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    std::fs::write(tls.join("oms_server.crt"), &c.cert_pem).unwrap();
    std::fs::write(tls.join("oms_server.key"), &c.key_pem).unwrap();
    let mut binds = host.binds();
    binds.push(format!(
        "{}:{}:ro",
        tls.join("oms_server.crt").display(),
        emu::CONSOLE_CERT
    ));
    binds.push(format!(
        "{}:{}:ro",
        tls.join("oms_server.key").display(),
        emu::CONSOLE_KEY
    ));
    let name = guard.value.replace('_', "-");
    let id = emu::create_oms_container(
        &docker,
        &guard,
        &emu::OmsContainerSpec {
            name: &name,
            image: &image.reference,
            extra_env: &["OMS_EMU_TLS=off"],
            binds,
        },
    )
    .await;
    emu::start_container(&docker, &id).await;
    let init = emu::run_docker_init(&docker, &id).await;
    assert_eq!(init.exit_code, 0, "{}", init.output);
    emu::wait_healthy(&docker, &id, &host.health_url()).await;
    let node = OmsNode {
        guard,
        docker,
        name,
        id,
        image,
        host,
        dbs,
    };
    let tmp = tempfile::Builder::new()
        .prefix("oms-upgrade-https-")
        .tempdir()
        .unwrap()
        .keep();
    let run = Run { node, tmp };
    let ca = ca_file(&run, "console-ca.pem", &c.ca_pem);
    let plain = format!("http://127.0.0.1:{}", run.node.host.port());

    // The mount says HTTPS; nginx speaks plain HTTP: the probe fails, nothing planned.
    let args = init_with_ca(&run, &ca).await;
    let out = output(run.cli().args(&args)).await;
    assert_eq!(out.status.code(), Some(5), "{}", show(&out));
    let e = error_line(&out);
    assert!(
        e.contains("nothing was changed") && e.contains("TLS failed"),
        "{e}"
    );

    // Plain HTTP with a CA file: refused as a contradiction.
    let args = init_args(
        &run.node,
        &run.backups(),
        &[
            ("--health-url", plain.as_str()),
            ("--health-ca", ca.to_str().unwrap()),
        ],
    )
    .await;
    let out = output(run.cli().args(&args)).await;
    assert_eq!(out.status.code(), Some(5), "{}", show(&out));
    assert!(error_line(&out).contains("plain HTTP"), "{}", show(&out));
    assert_eq!(record_types(&run), ["preflight.failed", "preflight.failed"]);

    // The operator's URL: planned over plain HTTP, recorded as theirs, with the mount.
    let args = init_args(
        &run.node,
        &run.backups(),
        &[("--health-url", plain.as_str())],
    )
    .await;
    ok(run.cli().args(&args));
    let (_, state) = run.replay();
    let plan = state.plan().unwrap();
    assert_eq!(plan.health_url, plain);
    let trust = plan.health_trust().unwrap();
    assert_eq!(trust.scheme, HealthScheme::Http);
    assert!(trust.url_from_operator);
    assert!(trust.detected_from.is_some(), "{trust:?}");
    assert_eq!(trust.ca_file, None);
}
