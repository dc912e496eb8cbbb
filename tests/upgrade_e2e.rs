//! End-to-end: the `oms-upgrade` binary upgrades a real (emulated) OMS 3.3.0 node running
//! in the real Docker engine against the real MariaDB, and rolls it back.

mod support;

use support::emulator as emu;
use support::upgrade::{cli, init, json_of, ok};

/// The 3.3.0 -> 3.3.1 procedure, step by step.
const FULL_PROCEDURE: [&str; 16] = [
    "disable-ha",
    "pre-stop-check",
    "stop-old",
    "old-restart-off",
    "prune-heartbeat",
    "dump-rm",
    "dump-cm",
    "dump-cm_hb",
    "rename-old",
    "create-new",
    "start-new",
    "docker-init",
    "confirm-health",
    "enable-ha",
    "drop-pruned-heartbeat",
    "complete",
];

#[tokio::test(flavor = "multi_thread")]
async fn full_upgrade_330_to_331() {
    let node = emu::start_old_oms().await;
    let tmp = tempfile::tempdir().unwrap();
    let ledger = tmp.path().join("ledger");
    let backups = tmp.path().join("backups");
    init(&node, &ledger, &backups).await;

    // `plan` before the run: the whole procedure, with its commands, and no password.
    let plan = json_of(&ok(cli(&ledger).args(["--json", "plan"])).stdout);
    let steps: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, FULL_PROCEDURE);
    let text = String::from_utf8(ok(cli(&ledger).arg("plan")).stdout).unwrap();
    assert!(text.contains("bash /root/docker_init.sh"), "{text}");
    assert!(text.contains("IS_UPGRADE=true"), "{text}");
    let password = support::mysql_target().password.expose().to_string();
    assert!(
        !text.contains(&password),
        "plan shows the password:\n{text}"
    );

    // A note is recorded with who and when.
    let note = json_of(&ok(cli(&ledger).args(["--json", "note", "change ticket CHG-42"])).stdout);
    assert_eq!(note["ok"], true);

    // Stop before docker_init.sh: the old container is down, the new one created.
    let until = json_of(
        &ok(cli(&ledger).args(["--json", "run", "--yes", "--until", "docker-init"])).stdout,
    );
    assert_eq!(until["stopped_before"], "docker-init", "{until}");
    assert_eq!(until["phase"], "upgrading");
    let status = json_of(&ok(cli(&ledger).args(["--json", "status"])).stdout);
    assert_eq!(status["phase"], "upgrading");
    assert!(
        status["t1"].is_string() && status["t2"].is_null(),
        "{status}"
    );
    assert!(status["downtime_seconds"].is_number(), "{status}");
    assert_eq!(status["in_doubt"], serde_json::Value::Null);
    assert_eq!(status["permitted"], serde_json::json!(["docker-init"]));
    assert_eq!(status["notes"], 1);
    let text = String::from_utf8(ok(cli(&ledger).arg("status")).stdout).unwrap();
    assert!(text.contains("Phase: upgrading"), "{text}");
    assert!(text.contains("Next: docker-init"), "{text}");
    assert!(text.contains("Downtime: "), "{text}");
    // `plan` during the run: only what is left.
    let plan = json_of(&ok(cli(&ledger).args(["--json", "plan"])).stdout);
    let left: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        left,
        [
            "docker-init",
            "confirm-health",
            "enable-ha",
            "drop-pruned-heartbeat",
            "complete"
        ]
    );
    // `--until` a rollback step is refused as bad input.
    let bad = cli(&ledger)
        .args(["run", "--yes", "--until", "rollback-restore-rm"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(5));

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
    assert_eq!(new.image, support::upgrade::new_image(&node).await);
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
