//! The OMS CE emulator against the real Docker engine and MariaDB: health, heartbeats,
//! `docker_init.sh` (fresh, upgrade with and without `IS_UPGRADE`, forced failure and hang,
//! the knob that makes it `exec`), bad configuration, clean SIGTERM, cached images, and the
//! seeder's awkward values.

mod support;

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use oms_upgrade::omsconfig::MetaDatabases;
use support::emulator::*;

/// Polls `cond` every 100 ms until it holds; panics naming `what` after 60 s.
async fn eventually<F, Fut>(what: &str, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// A connection on the test server with UTC session time (TIMESTAMP values compare exactly).
async fn conn() -> (mysql_async::Pool, mysql_async::Conn) {
    let pool = support::mysql_pool().await;
    let mut c = pool.get_conn().await.unwrap();
    c.query_drop("SET time_zone = '+00:00'").await.unwrap();
    (pool, c)
}

async fn table_exists(db: &str, table: &str) -> bool {
    support::emulator::scalar(&format!(
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = '{table}'"
    ))
    .await
    .unwrap_or(0)
        > 0
}

async fn column_exists(db: &str, table: &str, col: &str) -> bool {
    support::emulator::scalar(&format!(
        "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = '{table}' AND COLUMN_NAME = '{col}'"
    ))
    .await
    .unwrap_or(0)
        > 0
}

/// Stops the old node and creates + starts a new one of `image` on the same binds.
async fn replace_with(node: &OmsNode, version: &str, env: &[&str]) -> String {
    stop_container(&node.docker, &node.id, 30).await;
    let img = images(&node.docker, &[version]).await.remove(0);
    let id = create_oms_container(
        &node.docker,
        &node.guard,
        &OmsContainerSpec {
            name: &format!("{}-{}", node.name, version.replace('.', "")),
            image: &img.reference,
            extra_env: env,
            binds: node.host.binds(),
        },
    )
    .await;
    start_container(&node.docker, &id).await;
    id
}

#[tokio::test]
async fn fresh_node_is_healthy_heartbeats_reads_ha_config_and_writes_its_mounts() {
    let node = start_old_oms().await;
    let dbs = node.databases();

    let h = health(&node.host.health_url())
        .await
        .expect("health answers");
    assert_eq!(h["success"], true, "{h}");
    assert_eq!(h["data"]["healthy"], true, "{h}");
    assert_eq!(h["data"]["version"], OLD_VERSION, "{h}");
    assert_eq!(h["data"]["schemaVersion"], OLD_VERSION, "{h}");

    let before = heartbeat_rows(&dbs).await;
    let after = wait_heartbeats_above(&node.docker, &node.id, &dbs, before + 3).await;
    assert!(after > before + 3);

    let logs = node.logs().await;
    assert!(logs.contains(READY_LINE), "{logs}");
    eventually("the default ha.config is read and logged", || async {
        node.logs().await.contains("HA: ha.config enable=false")
    })
    .await;
    let init_log = node.host.docker_init_log();
    assert_eq!(
        init_log.lines().last().map(|l| l.ends_with(INIT_SUCCESS)),
        Some(true),
        "{init_log}"
    );

    // The default ha.config row carries every field of the brief, HA off.
    let (pool, mut c) = conn().await;
    let ha: String = c
        .query_first(format!(
            "SELECT cfg_value FROM `{}`.oms_normal_config WHERE cfg_name = 'ha.config'",
            dbs.rm
        ))
        .await
        .unwrap()
        .unwrap();
    let ha: serde_json::Value = serde_json::from_str(&ha).unwrap();
    assert_eq!(ha["enable"], false);
    for field in [
        "enableHost",
        "enableStore",
        "perceiveStoreClientCheckpoint",
        "enableConnector",
        "enableJdbcWriter",
        "subtopicStoreNumberThreshold",
        "checkRequestIntervalSec",
        "checkJdbcWriterIntervalSec",
        "checkHostDownIntervalSec",
        "checkModuleExceptionIntervalSec",
        "clearAbnormalResourceHours",
        "refetchStoreIntervalMin",
    ] {
        assert!(ha.get(field).is_some(), "ha.config lacks {field}: {ha}");
    }

    // Turning HA on is noticed and described.
    c.query_drop(format!(
        "UPDATE `{}`.oms_normal_config SET cfg_value = JSON_SET(cfg_value, '$.enable', true, '$.refetchStoreIntervalMin', 95) WHERE cfg_name = 'ha.config'",
        dbs.rm
    ))
    .await
    .unwrap();
    drop(c);
    pool.disconnect().await.ok();
    eventually("HA enable logged", || async {
        node.logs().await.contains("refetches the last 95 min")
    })
    .await;

    // The mounts are written to: a lost mount would show here.
    for f in [
        node.host.store.join("store_checkpoint.json"),
        node.host.run.join("oms_emulator.pid"),
        node.host.run.join("oms_emulator.status"),
        node.host.logs.join("oms_emulator.log"),
    ] {
        assert!(f.is_file(), "{} missing", f.display());
    }
    assert!(node.host.node_log().contains(READY_LINE));

    // 4.2.x runbook check.
    let sup = exec(&node.docker, &node.id, &["supervisorctl", "status"]).await;
    assert_eq!(sup.exit_code, 0, "{}", sup.output);
    assert!(sup.output.contains("RUNNING"), "{}", sup.output);
}

#[tokio::test]
async fn upgrade_330_to_331_with_is_upgrade_migrates_and_the_new_node_becomes_healthy() {
    let node = start_old_oms().await;
    let dbs = node.databases();
    let new = replace_with(&node, NEW_VERSION, &["IS_UPGRADE=true"]).await;

    // On the old schema the new node answers, but unhealthy, saying why.
    let url = node.host.health_url();
    let deadline = Instant::now() + Duration::from_secs(60);
    let seen = loop {
        if let Some(v) = health(&url).await
            && v["data"]["schemaVersion"].is_string()
        {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "the new node never answered on {url}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(seen["data"]["healthy"], false, "{seen}");
    assert_eq!(seen["data"]["version"], NEW_VERSION, "{seen}");
    let reason = seen["data"]["reason"].as_str().unwrap_or("");
    assert!(reason.contains("docker_init.sh"), "{seen}");

    let init = run_docker_init(&node.docker, &new).await;
    assert_eq!(init.exit_code, 0, "{}", init.output);
    let log = node.host.docker_init_log();
    assert_eq!(
        log.lines().last().map(|l| l.ends_with(INIT_SUCCESS)),
        Some(true),
        "{log}"
    );
    assert!(log.contains("3.3.0 -> 3.3.1"), "{log}");

    assert!(table_exists(&dbs.rm, "oms_project_label").await);
    assert!(column_exists(&dbs.cm, "oms_task", "retry_count").await);
    assert_eq!(schema_version(&dbs).await.as_deref(), Some(NEW_VERSION));
    let upgrades = scalar(&format!(
        "SELECT COUNT(*) FROM `{}`.oms_schema_history WHERE kind = 'upgrade' AND version = '3.3.1'",
        dbs.rm
    ))
    .await;
    assert_eq!(upgrades, Some(1));

    let h = wait_healthy(&node.docker, &new, &url).await;
    assert_eq!(h["data"]["version"], NEW_VERSION);
    let before = heartbeat_rows(&dbs).await;
    wait_heartbeats_above(&node.docker, &new, &dbs, before).await;
    assert!(
        container_logs(&node.docker, &new)
            .await
            .contains(READY_LINE)
    );
}

#[tokio::test]
async fn init_over_an_initialised_db_without_is_upgrade_fails_clearly() {
    let node = start_old_oms().await;
    let dbs = node.databases();
    let new = replace_with(&node, NEW_VERSION, &[]).await;

    let init = run_docker_init(&node.docker, &new).await;
    assert_ne!(init.exit_code, 0, "{}", init.output);
    assert!(
        init.output.contains("already initialised at 3.3.0")
            && init.output.contains("IS_UPGRADE=true"),
        "{}",
        init.output
    );
    let log = node.host.docker_init_log();
    assert!(!log.contains(INIT_SUCCESS), "{log}");
    assert!(log.contains("IS_UPGRADE"), "{log}");
    assert_eq!(schema_version(&dbs).await.as_deref(), Some(OLD_VERSION));
    assert!(!table_exists(&dbs.rm, "oms_project_label").await);

    // A lower-case value is not `true` either: still refused, with a warning naming it.
    let again = exec(
        &node.docker,
        &new,
        &["env", "IS_UPGRADE=TRUE", "sh", "/root/docker_init.sh"],
    )
    .await;
    assert_ne!(again.exit_code, 0, "{}", again.output);
    assert!(
        again.output.contains("IS_UPGRADE=\"TRUE\" is not `true`"),
        "{}",
        again.output
    );
}

#[tokio::test]
async fn forced_init_failure_by_marker_file_or_env_then_a_clean_retry_succeeds() {
    let node = start_old_oms().await;
    let dbs = node.databases();
    node.host.set_init_fail(true);
    let new = replace_with(&node, NEW_VERSION, &["IS_UPGRADE=true"]).await;

    let init = run_docker_init(&node.docker, &new).await;
    assert_ne!(init.exit_code, 0, "{}", init.output);
    assert!(init.output.contains("injected failure"), "{}", init.output);
    assert!(init.output.contains(".emu-init-fail"), "{}", init.output);
    assert!(!node.host.docker_init_log().contains(INIT_SUCCESS));
    // Half-migrated, as a real failure leaves it: the new table is there, the version is not.
    assert!(table_exists(&dbs.rm, "oms_project_label").await);
    assert_eq!(schema_version(&dbs).await.as_deref(), Some(OLD_VERSION));

    node.host.set_init_fail(false);
    let by_env = exec(
        &node.docker,
        &new,
        &["env", "OMS_EMU_INIT_FAIL=1", "bash", "/root/docker_init.sh"],
    )
    .await;
    assert_ne!(by_env.exit_code, 0, "{}", by_env.output);
    assert!(
        by_env.output.contains("OMS_EMU_INIT_FAIL"),
        "{}",
        by_env.output
    );

    let retry = run_docker_init(&node.docker, &new).await;
    assert_eq!(retry.exit_code, 0, "{}", retry.output);
    assert_eq!(schema_version(&dbs).await.as_deref(), Some(NEW_VERSION));
}

/// Kills the emulator's init in `container` by the pid it wrote.
async fn kill_init(node: &OmsNode, container: &str) {
    let kill = exec(
        &node.docker,
        container,
        &["sh", "-c", "kill $(cat /home/ds/run/docker_init.pid)"],
    )
    .await;
    assert_eq!(kill.exit_code, 0, "{}", kill.output);
}

#[tokio::test]
async fn forced_init_hang_keeps_the_exec_running_until_it_is_killed() {
    let node = start_old_oms().await;
    node.host.set_init_hang(true);
    let new = replace_with(&node, NEW_VERSION, &["IS_UPGRADE=true"]).await;

    let exec_id = exec_detached(&node.docker, &new, &["bash", "/root/docker_init.sh"]).await;
    eventually("the hang is logged", || async {
        node.host.docker_init_log().contains("injected hang")
    })
    .await;
    let (running, _) = exec_state(&node.docker, &exec_id).await;
    assert!(
        running,
        "docker_init.sh must still be running while it hangs"
    );

    kill_init(&node, &new).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let code = loop {
        let (running, code) = exec_state(&node.docker, &exec_id).await;
        if !running {
            break code;
        }
        assert!(Instant::now() < deadline, "the killed init never ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_ne!(code, Some(0));
    assert!(!node.host.docker_init_log().contains(INIT_SUCCESS));
}

/// Starts a 3.3.0 container with these binds (initialising nothing) and returns its exit code
/// and log once it stopped.
async fn run_until_exit(binds: Vec<String>) -> (i64, String) {
    let docker = support::docker().await;
    let guard = ContainerGuard::new(&docker).await;
    let img = images(&docker, &[OLD_VERSION]).await.remove(0);
    let id = create_oms_container(
        &docker,
        &guard,
        &OmsContainerSpec {
            name: &guard.value.replace('_', "-"),
            image: &img.reference,
            extra_env: &[],
            binds,
        },
    )
    .await;
    start_container(&docker, &id).await;
    let code = wait_exit(&docker, &id).await;
    (code, container_logs(&docker, &id).await)
}

#[tokio::test]
async fn bad_config_or_unreachable_db_or_wrong_password_exit_non_zero_with_a_clear_line() {
    let dbs = MetaDatabases {
        rm: "never_rm".into(),
        cm: "never_cm".into(),
        cm_hb: "never_hb".into(),
    };

    // No config file mounted at all.
    let host = OmsHost::new(&dbs);
    let binds: Vec<String> = host.binds().into_iter().skip(1).collect();
    let (code, log) = run_until_exit(binds).await;
    assert_ne!(code, 0, "{log}");
    assert!(
        log.contains("OMS service failed to start")
            && log.contains("cannot access OMS config /home/admin/conf/config.yaml"),
        "{log}"
    );

    // Malformed YAML.
    let host = OmsHost::new(&dbs);
    std::fs::write(&host.config_path, "oms_meta_host: [unclosed\n").unwrap();
    let (code, log) = run_until_exit(host.binds()).await;
    assert_ne!(code, 0, "{log}");
    assert!(log.contains("is not valid YAML"), "{log}");

    // A required key missing.
    let host = OmsHost::new(&dbs);
    let text = host.config.to_yaml().replace("drc_rm_db: never_rm\n", "");
    std::fs::write(&host.config_path, text).unwrap();
    let (code, log) = run_until_exit(host.binds()).await;
    assert_ne!(code, 0, "{log}");
    assert!(log.contains("has no `drc_rm_db`"), "{log}");

    // Wrong password: the log says access was denied, and never shows the password.
    let mut host = OmsHost::new(&dbs);
    host.config.oms_meta_password = oms_upgrade::secret::Secret::new("wrong-pw-4711");
    host.write_config();
    let (code, log) = run_until_exit(host.binds()).await;
    assert_ne!(code, 0, "{log}");
    assert!(
        log.contains("cannot connect to the metadata DB") && log.contains("Access denied"),
        "{log}"
    );
    assert!(
        !log.contains("wrong-pw-4711"),
        "password leaked into the log: {log}"
    );

    // Nothing listening on the metadata port.
    let mut host = OmsHost::new(&dbs);
    host.config.oms_meta_port = free_port();
    host.write_config();
    let (code, log) = run_until_exit(host.binds()).await;
    assert_ne!(code, 0, "{log}");
    assert!(
        log.contains("cannot connect to the metadata DB") && log.contains("refused"),
        "{log}"
    );
}

#[tokio::test]
async fn docker_stop_sends_sigterm_and_the_node_exits_cleanly() {
    let node = start_old_oms().await;
    stop_container(&node.docker, &node.id, 30).await;
    let (running, code) = container_state(&node.docker, &node.id).await;
    assert!(!running);
    assert_eq!(
        code,
        Some(0),
        "exit 0, not 137 (SIGKILL after the stop timeout)"
    );
    let logs = node.logs().await;
    assert!(
        logs.contains("SIGTERM received") && logs.contains("OMS service stopped"),
        "{logs}"
    );
    let status = std::fs::read_to_string(node.host.run.join("oms_emulator.status")).unwrap();
    assert!(status.contains("state=STOPPED"), "{status}");
    let sup_after = node.host.run.join("oms_emulator.pid");
    assert!(sup_after.is_file());
}

#[tokio::test]
async fn images_are_cached_by_content_and_carry_their_version() {
    let docker = support::docker().await;
    let first = images(&docker, ALL_VERSIONS).await;
    let again = images(&docker, ALL_VERSIONS).await;
    for (a, b) in first.iter().zip(&again) {
        assert!(!b.imported, "{} was imported again", b.reference);
        assert_eq!(a.id, b.id, "{}", a.reference);
        let img = docker.inspect_image(&b.reference).await.unwrap();
        let img2 = docker.inspect_image(&b.content_reference).await.unwrap();
        assert_eq!(img.id.as_deref(), Some(b.id.as_str()));
        assert_eq!(img.created, img2.created);
        let env = img.config.and_then(|c| c.env).unwrap_or_default();
        assert!(
            env.contains(&format!("OMS_EMU_VERSION={}", b.version)),
            "{}: {env:?}",
            b.reference
        );
        assert_eq!(b.reference, format!("oms-emu/oms:feature_{}_ce", b.version));
    }
}

#[tokio::test]
async fn seeder_writes_every_awkward_value_and_a_trigger() {
    let set = MetaDbSet::create().await;
    let dbs = set.databases();
    let host = OmsHost::new(&dbs);
    let summary = seed(&host.config_path, "256K");
    assert!(
        summary["valueBytes"].as_u64().unwrap() >= 256 * 1024,
        "{summary}"
    );
    for t in [
        "oms_project",
        "oms_data_source",
        "oms_task",
        "oms_resource",
        "oms_task_status_log",
        "heatbeat_sequence",
    ] {
        let n = summary["rows"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(k, _)| k.ends_with(&format!(".{t}")))
            .map(|(_, v)| v.as_u64().unwrap())
            .unwrap_or(0);
        assert!(n >= 3, "{t}: {summary}");
    }
    assert_eq!(schema_version(&dbs).await.as_deref(), Some(OLD_VERSION));

    let (pool, mut c) = conn().await;
    let (rm, cm) = (&dbs.rm, &dbs.cm);
    let row: (Option<String>, Option<String>) = c
        .query_first(format!(
            "SELECT (SELECT description FROM `{rm}`.oms_project WHERE project_id = 'awk-p-null'), \
                    (SELECT description FROM `{rm}`.oms_project WHERE project_id = 'awk-p-empty')"
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row,
        (None, Some(String::new())),
        "NULL and empty string stay apart"
    );

    let name: String = c
        .query_first(format!(
            "SELECT name FROM `{rm}`.oms_project WHERE project_id = 'awk-p-emoji'"
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(name, "迁移项目 🚀 データ移行 ñ Ωmega 👨‍👩‍👧");
    let u: String = c
        .query_first(format!(
            "SELECT JSON_UNQUOTE(JSON_EXTRACT(config, '$.u')) FROM `{rm}`.oms_project WHERE project_id = 'awk-p-emoji'"
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u, "✓");
    let long: u64 = c
        .query_first(format!(
            "SELECT CHAR_LENGTH(description) FROM `{rm}`.oms_project WHERE project_id = 'awk-p-longtext'"
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(long, 30_000);

    let cipher: Vec<u8> = c
        .query_first(format!(
            "SELECT password_cipher FROM `{rm}`.oms_data_source WHERE ds_id = 'awk-ds-binary'"
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        cipher,
        vec![0x00, 0x27, 0x5c, 0x22, 0x0a, 0x0d, 0x1a, 0xff, 0x80, 0x7f]
    );

    type TaskRow = (Vec<u8>, u64, String, String, String, u64, u64, u64);
    let t: TaskRow = c
        .query_first(format!(
            "SELECT checkpoint_blob, flags + 0, CAST(progress AS CHAR), \
                    DATE_FORMAT(started_at, '%Y-%m-%d %H:%i:%s.%f'), DATE_FORMAT(updated_at, '%Y-%m-%d %H:%i:%s.%f'), \
                    CHAR_LENGTH(log_text), name_chars, CHAR_LENGTH(task_name) \
             FROM `{cm}`.oms_task WHERE task_id = 'awk-t-blob'"
        ))
        .await
        .unwrap()
        .unwrap();
    let all_bytes: Vec<u8> = (0..4).flat_map(|_| 0u8..=255).collect();
    assert_eq!(t.0, all_bytes, "every byte value survives in the blob");
    assert_eq!(t.1, 0b1010_0101, "BIT(8)");
    assert_eq!(t.2, "12345678901234.123456", "DECIMAL(20,6)");
    assert_eq!(t.3, "2024-02-29 23:59:59.999999", "DATETIME(6)");
    assert_eq!(
        t.4, "2038-01-19 03:14:07.999999",
        "TIMESTAMP(6) at its upper end"
    );
    assert!(t.5 > 1_000_000, "very long text: {} chars", t.5);
    assert_eq!(t.6, t.7, "generated column follows its expression");

    let empty: (Vec<u8>, Option<String>, String) = c
        .query_first(format!(
            "SELECT checkpoint_blob, error_msg, log_text FROM `{cm}`.oms_task WHERE task_id = 'awk-t-empty'"
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(empty, (Vec::new(), Some(String::new()), String::new()));
    let null_err: Option<Option<String>> = c
        .query_first(format!(
            "SELECT error_msg FROM `{cm}`.oms_task WHERE task_id = 'awk-t-blob'"
        ))
        .await
        .unwrap();
    assert_eq!(null_err, Some(None));

    let mem: String = c
        .query_first(format!(
            "SELECT CAST(mem_bytes AS CHAR) FROM `{cm}`.oms_resource WHERE resource_id = 'awk-r-dead'"
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mem, "18446744073709551615");

    let triggers: u64 = c
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? AND TRIGGER_NAME = 'trg_oms_task_status'",
            (cm,),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(triggers, 1);
    let fired: u64 = c
        .query_first(format!(
            "SELECT COUNT(*) FROM `{cm}`.oms_task_status_log WHERE task_id = 'awk-t-blob' AND new_status = 'FINISHED'"
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fired, 1, "the seeder's UPDATE fired the trigger once");
    let generated: u64 = c
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'oms_task' \
             AND COLUMN_NAME = 'name_chars' AND EXTRA LIKE '%GENERATED%'",
            (cm,),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(generated, 1);
    drop(c);
    pool.disconnect().await.ok();
}

#[tokio::test]
async fn a_421_node_upgrades_to_422_with_supervisorctl_running_before_init() {
    let node = start_oms("4.2.1").await;
    let dbs = node.databases();
    assert_eq!(schema_version(&dbs).await.as_deref(), Some("4.2.1"));
    let new = replace_with(&node, "4.2.2", &["IS_UPGRADE=true"]).await;

    // The 4.2.2 runbook: `supervisorctl status` shows everything RUNNING before init.
    let deadline = Instant::now() + Duration::from_secs(60);
    let sup = loop {
        let out = exec(&node.docker, &new, &["supervisorctl", "status"]).await;
        if out.exit_code == 0 {
            break out;
        }
        assert!(
            Instant::now() < deadline,
            "supervisorctl never all RUNNING: {}",
            out.output
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!sup.output.contains("STOPPED"), "{}", sup.output);

    let init = run_docker_init(&node.docker, &new).await;
    assert_eq!(init.exit_code, 0, "{}", init.output);
    assert!(table_exists(&dbs.cm, "oms_supervisor_program").await);
    assert!(column_exists(&dbs.rm, "oms_project", "tags").await);
    let h = wait_healthy(&node.docker, &new, &node.host.health_url()).await;
    assert_eq!(h["data"]["version"], "4.2.2");
    assert_eq!(
        h["data"]["status"], "ONLINE",
        "all machines Online after init"
    );

    // A stopped node is reported as not running: exit 3, like supervisorctl (run on the
    // host against the node's run folder, since a stopped container cannot exec).
    stop_container(&node.docker, &new, 30).await;
    let out = std::process::Command::new(emulator_binary())
        .args(["supervisorctl", "status"])
        .env("OMS_EMU_RUN_DIR", &node.host.run)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("STOPPED"));
}

/// The `.emu-init-exec` knob: `docker_init.sh` `exec`s into the emulator, so while init runs
/// no process in the container is named after the script; without it the script stays as
/// the emulator's parent. Either way the engine's record of the exec session (what
/// oms-upgrade looks for after a crash) shows it running, with its command and a pid.
#[tokio::test]
async fn init_exec_knob_changes_the_process_name_but_not_the_exec_session() {
    use oms_upgrade::adapters::{BollardDocker, Docker};
    let node = start_old_oms().await;
    node.host.set_init_hang(true);
    let new = replace_with(&node, NEW_VERSION, &["IS_UPGRADE=true"]).await;
    let adapter = BollardDocker::from_client(node.docker.clone());
    for exec_mode in [false, true] {
        node.host.set_init_exec(exec_mode);
        let _ = std::fs::remove_file(node.host.logs.join("docker_init.log"));
        let exec_id = exec_detached(&node.docker, &new, &["bash", "/root/docker_init.sh"]).await;
        eventually("the hang is logged", || async {
            node.host.docker_init_log().contains("injected hang")
        })
        .await;
        let ps = exec(&node.docker, &new, &["ps", "-o", "args"]).await;
        let named = ps
            .output
            .lines()
            .any(|l| l.contains("docker_init") && !l.contains("ps -o"));
        assert_eq!(named, !exec_mode, "exec mode {exec_mode}:\n{}", ps.output);
        let sessions = adapter.running_execs(&new).await.unwrap().unwrap();
        let init: Vec<_> = sessions
            .iter()
            .filter(|s| s.argv == ["bash", "/root/docker_init.sh"])
            .collect();
        assert_eq!(init.len(), 1, "{sessions:?}");
        assert_eq!(init[0].id, exec_id);
        assert!(init[0].running && init[0].pid.is_some(), "{:?}", init[0]);
        kill_init(&node, &new).await;
        eventually("the killed init ends", || async {
            !exec_state(&node.docker, &exec_id).await.0
        })
        .await;
        let after = adapter.inspect_exec(&exec_id).await.unwrap().unwrap();
        assert!(!after.running && after.exit_code.is_some(), "{after:?}");
        assert!(
            adapter
                .running_execs(&new)
                .await
                .unwrap()
                .unwrap()
                .is_empty()
        );
    }
}
