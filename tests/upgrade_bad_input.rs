//! Bad input to the `oms-upgrade` binary, against a real (emulated) OMS node in Docker
//! and the real MariaDB: an unknown container, an image that is not loaded, an
//! unsupported version path, an unreachable metadata DB, a wrong password, a ledger that
//! already holds a run, and a dump altered before a rollback. Each must end with one clear
//! `error:` line, a `hint:` line and the documented exit code (README, "Exit codes"), and
//! must leave Docker and the databases exactly as they were.

mod support;

use std::path::Path;
use std::process::Output;

use oms_upgrade::adapters::Docker;
use oms_upgrade::events::MetaDb;
use support::emulator::{self as emu, OmsNode};
use support::upgrade::{
    Run, TableRow, cli, db_facts, error_line, init_args, init_cmd, json_of, output, show,
};

/// What bad input must not change.
#[derive(Debug, PartialEq)]
struct Untouched {
    /// Every container of the test (old and any new one): id, name, image, running.
    containers: Vec<(String, String, String, bool)>,
    rm: Vec<TableRow>,
    cm: Vec<TableRow>,
    /// cm_hb's tables (its rows change with every heartbeat of the running node).
    cm_hb_tables: Vec<String>,
    ha: serde_json::Value,
    schema_version: Option<String>,
}

async fn untouched(node: &OmsNode) -> Untouched {
    let docker = oms_upgrade::adapters::BollardDocker::from_client(node.docker.clone());
    let mut containers: Vec<_> = docker
        .find_by_label(support::TEST_LABEL, Some(&node.guard.value))
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.id, c.name, c.image, c.status.is_running()))
        .collect();
    containers.sort();
    let dbs = node.databases();
    Untouched {
        containers,
        rm: db_facts(&dbs, MetaDb::Rm, None).await,
        cm: db_facts(&dbs, MetaDb::Cm, None).await,
        cm_hb_tables: db_facts(&dbs, MetaDb::CmHb, None)
            .await
            .into_iter()
            .map(|t| t.name)
            .collect(),
        ha: support::upgrade::ha_config(&dbs).await,
        schema_version: emu::schema_version(&dbs).await,
    }
}

/// The command failed with `code`, one `error:` line containing `needle`, and a hint.
fn assert_refused(out: &Output, code: i32, needle: &str) {
    assert_eq!(out.status.code(), Some(code), "{}", show(out));
    let error = error_line(out);
    assert!(
        error.contains(needle),
        "error line must say `{needle}`: {error}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("hint: ") && l.len() > 10),
        "a hint:\n{stderr}"
    );
}

/// `init` (text output) with some flags replaced or added.
async fn init_with(
    node: &OmsNode,
    ledger: &Path,
    backups: &Path,
    overrides: &[(&str, &str)],
    env: &[(&str, &str)],
) -> Output {
    let mut c = cli(ledger);
    c.args(init_args(node, backups, overrides).await);
    for (k, v) in env {
        c.env(k, v);
    }
    output(&mut c).await
}

#[tokio::test(flavor = "multi_thread")]
async fn init_refuses_bad_input_and_changes_nothing() {
    let node = emu::start_old_oms().await;
    let tmp = tempfile::tempdir().unwrap();
    let backups = tmp.path().join("backups");
    let before = untouched(&node).await;
    let ledger = |name: &str| tmp.path().join(name);

    // Unknown container.
    let out = init_with(
        &node,
        &ledger("a"),
        &backups,
        &[("--container", "no-such-oms-container")],
        &[],
    )
    .await;
    assert_refused(&out, 5, "no container named `no-such-oms-container`");

    // Image not loaded.
    let out = init_with(
        &node,
        &ledger("b"),
        &backups,
        &[("--image", "oms-emu/oms:feature_9.9.9_ce")],
        &[],
    )
    .await;
    assert_refused(
        &out,
        5,
        "image `oms-emu/oms:feature_9.9.9_ce` is not present",
    );

    // Unsupported version path: 3.3.0 -> 4.2.2 is not one hop.
    let out = init_with(
        &node,
        &ledger("c"),
        &backups,
        &[("--to-version", "4.2.2")],
        &[],
    )
    .await;
    assert_refused(&out, 7, "3.3.0 -> 4.2.2 is not a supported path");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("supported paths:"), "{stderr}");
    assert!(stderr.contains("3.3.0 -> 3.3.1"), "{stderr}");

    // Unreachable metadata DB: a copy of config.yaml pointing at a closed port.
    let mut config = node.host.config.clone();
    config.oms_meta_port = emu::free_port();
    let bad_config = tmp.path().join("closed-port.yaml");
    config.write(&bad_config).unwrap();
    let out = init_with(
        &node,
        &ledger("d"),
        &backups,
        &[("--oms-config", bad_config.to_str().unwrap())],
        &[],
    )
    .await;
    assert_refused(&out, 6, "is not reachable");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(":{}", config.oms_meta_port)),
        "names the address it tried: {}",
        show(&out)
    );

    // Wrong password (given the documented way); it never shows up anywhere.
    let wrong = "Wr0ng-Pa55-7781";
    let out = init_with(
        &node,
        &ledger("e"),
        &backups,
        &[],
        &[("OMS_META_PASSWORD", wrong)],
    )
    .await;
    assert_refused(&out, 5, "access denied for user `oms_test`");
    let export = output(cli(&ledger("e")).args(["ledger", "export"])).await;
    for text in [&out.stdout, &out.stderr, &export.stdout] {
        assert!(
            !String::from_utf8_lossy(text).contains(wrong),
            "password leaked"
        );
    }

    // JSON: one object with the error, the checks and the exit code.
    let mut c = init_cmd(&node, &ledger("f"), &backups).await;
    c.args(["--to-version", "4.2.2"]);
    let out = output(&mut c).await;
    assert_eq!(out.status.code(), Some(7));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "one JSON object: {stdout}");
    let v = json_of(&out.stdout);
    assert_eq!(v["ok"], false);
    assert_eq!(v["exit_code"], 7);
    assert!(v["error"]["message"].as_str().unwrap().contains("4.2.2"));
    assert!(v["error"]["hint"].is_string());
    assert!(
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["ok"] == false)
    );

    // Each failed preflight recorded only its failure; nothing is planned.
    for l in ["a", "b", "c", "d", "e"] {
        let st = json_of(
            &output(cli(&ledger(l)).args(["--json", "status"]))
                .await
                .stdout,
        );
        assert_eq!(st["phase"], "not planned", "{st}");
        assert_eq!(st["preflight_failures"], 1, "{st}");
        let run = output(cli(&ledger(l)).args(["run", "--yes"])).await;
        assert_refused(&run, 7, "no upgrade is planned");
    }
    // No dump folder was created either.
    assert!(!backups.exists() || std::fs::read_dir(&backups).unwrap().next().is_none());

    assert_eq!(
        untouched(&node).await,
        before,
        "bad input changed something"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ledger_holds_one_run() {
    let run = Run::planned().await;
    let (_, state) = run.replay();
    let run_id = state.run_id().unwrap();
    let before = untouched(&run.node).await;

    // Planning again into a ledger that already holds a run is refused.
    let out = init_with(&run.node, &run.ledger(), &run.backups(), &[], &[]).await;
    assert_refused(&out, 7, "this ledger already holds run");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&run_id.to_string()));

    // A folder that is not a ledger is refused as bad input.
    let not_ledger = run.tmp.join("not-a-ledger");
    std::fs::create_dir_all(&not_ledger).unwrap();
    std::fs::write(not_ledger.join("notes.txt"), "hello").unwrap();
    let out = output(cli(&not_ledger).args(["run", "--yes"])).await;
    assert_eq!(out.status.code(), Some(5), "{}", show(&out));
    // A missing ledger too.
    let out = output(cli(&run.tmp.join("missing")).args(["status"])).await;
    assert_eq!(out.status.code(), Some(5), "{}", show(&out));

    let (_, after) = run.replay();
    assert_eq!(after.run_id(), Some(run_id));
    assert_eq!(
        after.plan_digest(),
        state.plan_digest(),
        "the plan is untouched"
    );
    assert!(after.attempts().is_empty());
    run.verify_ledger();
    assert_eq!(untouched(&run.node).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn altered_dump_stops_the_rollback_before_anything_changes() {
    let run = Run::planned().await;
    run.ok(&["run", "--yes"]).await;
    let before = untouched(&run.node).await;
    let (_, state) = run.replay();
    let dump = state.artifact(MetaDb::Cm).unwrap().file.clone();

    // One flipped byte in the middle of the cm dump.
    let original = std::fs::read(&dump).unwrap();
    let mut altered = original.clone();
    let mid = altered.len() / 2;
    altered[mid] ^= 0x01;
    std::fs::write(&dump, &altered).unwrap();

    let out = output(run.cli().args(["rollback", "--yes"])).await;
    assert_refused(&out, 3, "rollback-verify-dumps");
    // The ledger's failure record says what kind of failure it was (issue 13), and the
    // exit code follows that record, not the step's name.
    let failed = run.last_step_failed();
    assert_eq!(failed["key"], "rollback-verify-dumps", "{failed}");
    assert_eq!(failed["kind"], "integrity", "{failed}");
    let status = run.status();
    let step = status["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["step"] == "rollback-verify-dumps"))
        .unwrap_or_else(|| panic!("no rollback-verify-dumps in {status}"));
    assert_eq!(step["failure_kind"], "integrity", "{status}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&dump), "names the file: {stderr}");
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert_eq!(
        untouched(&run.node).await,
        before,
        "rollback changed something"
    );
    let status = run.status();
    assert_eq!(status["phase"], "rolling back", "{status}");
    assert!(
        status["t3"].is_null(),
        "the new container was not stopped: {status}"
    );
    run.verify_ledger();

    // Asked again with the file still altered: refused again, still nothing changed.
    let out = output(run.cli().args(["rollback", "--yes"])).await;
    assert_refused(&out, 3, "rollback-verify-dumps");
    assert_eq!(untouched(&run.node).await, before);

    // With the original put back, the rollback goes through.
    std::fs::write(&dump, &original).unwrap();
    run.ok(&["rollback", "--yes"]).await;
    assert_eq!(run.status()["phase"], "rolled back");
    let old = run.docker().inspect(&run.node.name).await.unwrap().unwrap();
    assert_eq!(old.id, run.node.id);
    assert!(old.status.is_running());
    run.verify_ledger();
}

/// Regression (issue 12, item 11): a deployment of several nodes was planned as if this
/// node were the only one, so the upgrade would stop one node while the others ran.
/// `init` refuses with exit 7 and names every node it found, in config.yaml's `cm_nodes`
/// or in the cm database's `host` table, and changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn init_refuses_a_deployment_of_several_nodes() {
    use mysql_async::prelude::Queryable;
    let node = emu::start_old_oms().await;
    let tmp = tempfile::tempdir().unwrap();
    let backups = tmp.path().join("backups");
    let before = untouched(&node).await;

    // config.yaml lists two nodes in its region.
    let mut config = node.host.config.clone();
    config.extra.insert(
        "cm_nodes".into(),
        serde_yaml_ng::Value::Sequence(vec!["10.20.0.11".into(), "10.20.0.12".into()]),
    );
    let two_nodes = tmp.path().join("two-nodes.yaml");
    config.write(&two_nodes).unwrap();
    let out = init_with(
        &node,
        &tmp.path().join("a"),
        &backups,
        &[("--oms-config", two_nodes.to_str().unwrap())],
        &[],
    )
    .await;
    assert_refused(&out, 7, "10.20.0.11");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("10.20.0.12"), "names both nodes: {stderr}");

    // One node in config.yaml, but the metadata DB lists two servers.
    let pool = support::mysql_pool().await;
    let mut c = pool.get_conn().await.unwrap();
    let cm = &node.databases().cm;
    c.query_drop(format!(
        "CREATE TABLE `{cm}`.`host` (id BIGINT PRIMARY KEY, ip VARCHAR(64) NOT NULL)"
    ))
    .await
    .unwrap();
    c.query_drop(format!(
        "INSERT INTO `{cm}`.`host` VALUES (1, '10.30.0.21'), (2, '10.30.0.22')"
    ))
    .await
    .unwrap();
    let out = init_with(&node, &tmp.path().join("b"), &backups, &[], &[]).await;
    assert_refused(&out, 7, "10.30.0.21");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("10.30.0.22"),
        "names both servers: {stderr}"
    );

    // With one server listed, init plans as before.
    c.query_drop(format!("DELETE FROM `{cm}`.`host` WHERE id = 2"))
        .await
        .unwrap();
    let out = init_with(&node, &tmp.path().join("c"), &backups, &[], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    c.query_drop(format!("DROP TABLE `{cm}`.`host`"))
        .await
        .unwrap();
    drop(c);
    pool.disconnect().await.ok();
    assert_eq!(untouched(&node).await, before, "init changed something");
}

/// Regression (issue 12, item 6): a registry with a port (`10.0.0.1:5000/...`) was read as
/// version 10.0.0, so a supported upgrade was refused. The version comes from the tag; a
/// version the operator states is recorded as their attestation.
#[tokio::test(flavor = "multi_thread")]
async fn init_reads_the_version_from_the_tag_not_the_registry_port() {
    let node = emu::start_old_oms().await;
    let tmp = tempfile::tempdir().unwrap();
    let backups = tmp.path().join("backups");
    let pinned = support::upgrade::new_image(&node).await;
    let repo = format!(
        "10.0.0.1:5000/oms-emu-port-{}",
        node.guard.value.replace('_', "-")
    );
    let reference = format!("{repo}:feature_3.3.1_ce");
    let opts = bollard::query_parameters::TagImageOptionsBuilder::default()
        .repo(&repo)
        .tag("feature_3.3.1_ce")
        .build();
    node.docker.tag_image(&pinned, Some(opts)).await.unwrap();

    let out = init_with(
        &node,
        &tmp.path().join("a"),
        &backups,
        &[("--image", &reference)],
        &[],
    )
    .await;
    let planned = out.status.code() == Some(0);
    let shown = show(&out);

    // The operator's word, recorded beside what the image says.
    let out_b = init_with(
        &node,
        &tmp.path().join("b"),
        &backups,
        &[("--image", &reference), ("--from-version", "3.3.0")],
        &[],
    )
    .await;
    let export = output(cli(&tmp.path().join("b")).args(["ledger", "export"])).await;
    emu::remove_tag(&node.docker, &reference).await;
    assert!(planned, "{shown}");
    assert_eq!(out_b.status.code(), Some(0), "{}", show(&out_b));
    let export = String::from_utf8_lossy(&export.stdout);
    assert!(
        export.contains("--from-version 3.3.0 stated by the operator"),
        "{export}"
    );
}
