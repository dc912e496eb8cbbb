//! End-to-end: the `oms-upgrade` binary upgrades a real (emulated) OMS 3.3.0 node running
//! in the real Docker engine against the real MariaDB, and rolls it back.

mod support;

use std::path::Path;

use assert_cmd::Command;
use support::emulator::{self as emu, OmsNode};

/// The binary with a per-test ledger and a fixed identity.
fn cli(ledger: &Path) -> Command {
    let mut c = Command::cargo_bin("oms-upgrade").unwrap();
    c.env("OMS_UPGRADE_LEDGER", ledger)
        .env("OMS_UPGRADE_OPERATOR", "tester")
        .env("OMS_UPGRADE_HOST", "ci-host")
        .env_remove("OMS_META_PASSWORD");
    c
}

fn json_of(out: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(out);
    let last = text.lines().last().unwrap_or("");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

async fn init(node: &OmsNode, ledger: &Path, backups: &Path) {
    let new_image = emu::images(&node.docker, &[emu::NEW_VERSION])
        .await
        .remove(0);
    let out = cli(ledger)
        .args([
            "--json",
            "init",
            "--container",
            &node.name,
            "--image",
            &new_image.reference,
            "--no-privileged",
        ])
        .arg("--backup-dir")
        .arg(backups)
        .args(["--health-timeout", "60", "--stop-timeout", "10"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "init failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn full_upgrade_330_to_331() {
    let node = emu::start_old_oms().await;
    let tmp = tempfile::tempdir().unwrap();
    let ledger = tmp.path().join("ledger");
    let backups = tmp.path().join("backups");
    init(&node, &ledger, &backups).await;

    let out = cli(&ledger)
        .args(["--json", "run", "--yes"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "run failed: {}\n{}\ncontainer log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        node.logs().await
    );
    let summary = json_of(&out.stdout);
    assert_eq!(summary["phase"], "completed");

    // The new container runs the new image under the old name, with identical binds and
    // IS_UPGRADE=true; the old one is kept, renamed.
    let docker = oms_upgrade::adapters::BollardDocker::from_client(node.docker.clone());
    use oms_upgrade::adapters::Docker;
    let new = docker
        .inspect(&node.name)
        .await
        .unwrap()
        .expect("new container under the old name");
    assert_ne!(new.id, node.id);
    assert!(new.status.is_running());
    assert_eq!(
        new.image,
        emu::images(&node.docker, &[emu::NEW_VERSION]).await[0].reference
    );
    assert_eq!(new.binds, node.host.binds());
    assert_eq!(new.env_var("IS_UPGRADE"), Some("true"));
    let old = docker
        .inspect(&node.id)
        .await
        .unwrap()
        .expect("old container kept");
    assert_eq!(old.name, format!("{}-pre-3.3.1", node.name));
    assert!(!old.status.is_running());

    // Schema migrated; heartbeats continue after the upgrade.
    assert_eq!(
        emu::schema_version(&node.databases()).await.as_deref(),
        Some("3.3.1")
    );
    let before = emu::heartbeat_rows(&node.databases()).await;
    emu::wait_heartbeats_above(&node.docker, &new.id, &node.databases(), before).await;

    // HA on, with a refetch interval above T2 - T1.
    let status = json_of(
        &cli(&ledger)
            .args(["--json", "status"])
            .output()
            .unwrap()
            .stdout,
    );
    assert_eq!(status["phase"], "completed");
    let t1: chrono::DateTime<chrono::Utc> = status["t1"].as_str().unwrap().parse().unwrap();
    let t2: chrono::DateTime<chrono::Utc> = status["t2"].as_str().unwrap().parse().unwrap();
    let ha = emu::scalar_text(&format!(
        "select cfg_value from `{}`.oms_normal_config where cfg_name='ha.config'",
        node.databases().rm
    ))
    .await
    .unwrap();
    let ha: serde_json::Value = serde_json::from_str(&ha).unwrap();
    assert_eq!(ha["enable"], true);
    let refetch = ha["refetchStoreIntervalMin"].as_i64().unwrap();
    assert!(
        refetch * 60 > (t2 - t1).num_seconds(),
        "refetch {refetch} min must exceed T2-T1 {:?}",
        t2 - t1
    );

    // Exactly one dump per database, each matching its recorded checksum; the ledger verifies.
    let run_dir = std::fs::read_dir(&backups)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let dumps: Vec<_> = std::fs::read_dir(&run_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(dumps.len(), 3, "{dumps:?}");
    let verify = cli(&ledger)
        .args(["--json", "ledger", "verify"])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}
