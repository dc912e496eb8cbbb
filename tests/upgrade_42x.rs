//! The 4.2.x guide end to end (issue 12.5): `oms-upgrade` upgrades an emulated OMS 4.2.1
//! node to 4.2.2 and rolls it back, against the real Docker engine and MariaDB. The guide
//! adds two checks to the 3.3.1 procedure: `supervisorctl status` shows every program
//! RUNNING before `docker_init.sh` (programs STARTING are waited for; FATAL fails at once,
//! naming the program), and every server OMS keeps in the cm database's `host` table is
//! Online after it: each server's own health endpoint answers healthy.

mod support;

use oms_upgrade::events::{Event, NamedState, StepFacts, StepKey, SupervisorPoll};
use support::emulator::{self as emu, OmsNode};
use support::upgrade::{Run, cli, init_args, ok, output, show};

const FROM: &str = "4.2.1";
const TO: &str = "4.2.2";

/// The 4.2.2 image under a tag of this node's own (see `support::upgrade::new_image`).
async fn image_422(node: &OmsNode) -> String {
    let img = emu::images(&node.docker, &[TO]).await.remove(0);
    let reference = emu::pinned_reference(&node.guard.value, TO);
    let (repo, tag) = reference.rsplit_once(':').unwrap();
    let opts = bollard::query_parameters::TagImageOptionsBuilder::default()
        .repo(repo)
        .tag(tag)
        .build();
    node.docker.tag_image(&img.id, Some(opts)).await.unwrap();
    reference
}

/// Seeds the node's metadata with `servers` (IPs) in the cm `host` table.
fn seed_servers(node: &OmsNode, servers: &[&str]) {
    let mut c = std::process::Command::new(emu::emulator_binary());
    c.args(["seed", "--config"])
        .arg(&node.host.config_path)
        .args(["--size", "64K"]);
    for s in servers {
        c.args(["--server", s]);
    }
    let out = c.stdin(std::process::Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "seed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A 4.2.1 node, seeded with `servers`, and a planned upgrade to 4.2.2 (health timeout
/// `health_timeout` seconds).
async fn planned(servers: &[&str], health_timeout: &str) -> Run {
    let node = emu::start_oms(FROM).await;
    seed_servers(&node, servers);
    let tmp = tempfile::Builder::new()
        .prefix("oms-upgrade-42x-")
        .tempdir()
        .unwrap()
        .keep();
    let run = Run { node, tmp };
    let image = image_422(&run.node).await;
    let args = init_args(
        &run.node,
        &run.backups(),
        &[("--image", &image), ("--health-timeout", health_timeout)],
    )
    .await;
    ok(cli(&run.ledger()).args(&args));
    run
}

/// Sets an emulator knob file; the new container's supervisorctl reads it (the logs folder
/// is bound into it, and a new container copies the old one's environment, not a knob).
fn knob(run: &Run, file: &str, value: &str) {
    std::fs::write(run.node.host.logs.join(file), value).unwrap();
}

/// The recorded supervisor check.
fn supervisor_poll(run: &Run) -> SupervisorPoll {
    match facts_of(run, StepKey::CheckSupervisor) {
        StepFacts::SupervisorPolled(p) => p,
        other => panic!("check-supervisor recorded {other:?}"),
    }
}

/// The recorded server check: the one server listed, and whether all were Online.
fn the_one_server(run: &Run) -> (NamedState, bool) {
    match facts_of(run, StepKey::CheckOnline) {
        StepFacts::NodesOnline {
            mut nodes,
            all_online,
        } => {
            assert_eq!(nodes.len(), 1, "{nodes:?}");
            (nodes.remove(0), all_online)
        }
        other => panic!("check-online recorded {other:?}"),
    }
}

/// The facts recorded for `key`'s last `done` or `failed` outcome.
fn facts_of(run: &Run, key: StepKey) -> StepFacts {
    let (records, _) = run.replay();
    records
        .iter()
        .rev()
        .find_map(|r| match &r.event {
            Event::StepDone { key: k, facts } if *k == key => Some(facts.clone()),
            Event::StepFailed {
                key: k,
                facts: Some(f),
                ..
            } if *k == key => Some(f.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no outcome with facts for {key}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn upgrade_421_to_422_and_roll_it_back() {
    let run = planned(&["127.0.0.1"], "60").await;
    let plan = String::from_utf8(ok(run.cli().arg("plan")).stdout).unwrap();
    assert!(plan.contains("supervisorctl status"), "{plan}");
    assert!(plan.contains("`resource_group`"), "{plan}");

    run.ok(&["run", "--yes"]).await;
    let status = run.status();
    assert_eq!(status["phase"], "completed", "{status}");
    let health = emu::health(&run.node.host.health_url()).await.unwrap();
    assert_eq!(health["data"]["version"], TO);
    assert_eq!(
        emu::schema_version(&run.node.databases()).await.as_deref(),
        Some(TO)
    );
    let p = supervisor_poll(&run);
    assert!(
        p.all_running && p.polls >= 1 && p.timeout_secs == 60,
        "{p:?}"
    );
    assert_eq!(p.programs.len(), 4, "{p:?}");
    let (server, all_online) = the_one_server(&run);
    assert!(all_online);
    assert_eq!(server.name, "127.0.0.1 (resource group 0)");
    assert_eq!(server.state, "Online (health)");
    run.verify_ledger();

    run.ok(&["rollback", "--yes"]).await;
    let status = run.status();
    assert_eq!(status["phase"], "rolled back", "{status}");
    assert_eq!(
        emu::schema_version(&run.node.databases()).await.as_deref(),
        Some(FROM)
    );
    let health =
        emu::wait_healthy(&run.node.docker, &run.node.id, &run.node.host.health_url()).await;
    assert_eq!(health["data"]["version"], FROM);
    run.verify_ledger();
}

/// Regression (issue 12.5): supervisorctl was asked once, right after the start, so
/// programs still STARTING failed the run. They are waited for, and the wait is recorded.
#[tokio::test(flavor = "multi_thread")]
async fn programs_still_starting_are_waited_for() {
    let run = planned(&["127.0.0.1"], "60").await;
    knob(&run, ".emu-supervisor-starting-ms", "5000");
    let out = output(run.cli().args(["--json", "run", "--yes"])).await;
    assert!(out.status.success(), "{}", show(&out));
    let p = supervisor_poll(&run);
    assert!(p.all_running, "{p:?}");
    assert!(
        p.polls > 1,
        "STARTING programs were not polled again: {p:?}"
    );
    assert!(p.elapsed_ms >= 1000, "{p:?}");
}

/// A FATAL program fails the check at once, naming it; nothing after it runs.
#[tokio::test(flavor = "multi_thread")]
async fn a_fatal_program_fails_the_run_naming_it() {
    let run = planned(&["127.0.0.1"], "60").await;
    knob(&run, ".emu-supervisor-fatal", "oms_drc_cm");
    let started = std::time::Instant::now();
    let out = output(run.cli().args(["run", "--yes"])).await;
    assert!(!out.status.success(), "{}", show(&out));
    let text = show(&out);
    assert!(text.contains("oms_drc_cm is FATAL"), "{text}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(50),
        "FATAL was waited on until the timeout"
    );
    let p = supervisor_poll(&run);
    assert!(!p.all_running);
    assert!(
        p.programs
            .iter()
            .any(|n| n.name == "oms_drc_cm" && n.state == "FATAL"),
        "{p:?}"
    );
}

/// The recorded server check: every server listed, and whether all were Online.
fn the_servers(run: &Run) -> (Vec<NamedState>, bool) {
    match facts_of(run, StepKey::CheckOnline) {
        StepFacts::NodesOnline { nodes, all_online } => (nodes, all_online),
        other => panic!("check-online recorded {other:?}"),
    }
}

/// Adds a `status` column to the cm `host` table and sets it for every row: the public
/// record names no such column, so a test adds it to show the tool does not rely on it.
async fn host_status_column(run: &Run, value: &str) {
    let cm = run.node.databases().cm;
    let pool = support::mysql_pool().await;
    {
        use mysql_async::prelude::Queryable;
        let mut c = pool.get_conn().await.unwrap();
        c.query_drop(format!(
            "ALTER TABLE `{cm}`.`host` ADD COLUMN IF NOT EXISTS `status` VARCHAR(16) NULL"
        ))
        .await
        .unwrap();
        c.exec_drop(format!("UPDATE `{cm}`.`host` SET `status` = ?"), (value,))
            .await
            .unwrap();
    }
    pool.disconnect().await.ok();
}

/// Lists one more server in the cm `host` table, in the group of the servers already
/// there. After `init`, since `init` refuses a deployment of several nodes (issue 12.11):
/// a node registered while the upgrade is under way.
async fn list_server(run: &Run, ip: &str) {
    let cm = run.node.databases().cm;
    let pool = support::mysql_pool().await;
    {
        use mysql_async::prelude::Queryable;
        let mut c = pool.get_conn().await.unwrap();
        c.exec_drop(
            format!(
                "INSERT INTO `{cm}`.`host` (resource_group_id, ip) \
                 SELECT MIN(resource_group_id), ? FROM `{cm}`.`host`"
            ),
            (ip,),
        )
        .await
        .unwrap();
    }
    pool.disconnect().await.ok();
}

/// A server no emulator answers for: TEST-NET-1 (RFC 5737), never routed. (Every
/// 127.0.0.0/8 address would reach the emulator, which listens on 0.0.0.0.)
const SILENT_SERVER: &str = "192.0.2.1";

/// Regression (issue 12.5): "every server Online" was the local health URL, then a
/// `host.status` column the public record does not name. Each listed server's own health
/// endpoint decides: a listed server whose health does not answer fails the run at
/// check-online, naming it, before HA is enabled again.
#[tokio::test(flavor = "multi_thread")]
async fn a_listed_server_whose_health_does_not_answer_fails_the_run() {
    let run = planned(&["127.0.0.1"], "10").await;
    list_server(&run, SILENT_SERVER).await;
    let out = output(run.cli().args(["run", "--yes"])).await;
    assert!(
        !out.status.success(),
        "the run passed with a listed server whose health does not answer:\n{}",
        show(&out)
    );
    let text = show(&out);
    assert!(text.contains("check-online"), "{text}");
    assert!(text.contains(SILENT_SERVER), "{text}");
    let (servers, all_online) = the_servers(&run);
    assert!(!all_online, "{servers:?}");
    let names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "127.0.0.1 (resource group 0)",
            "192.0.2.1 (resource group 0)"
        ]
    );
    assert_eq!(servers[0].state, "Online (health)");
    assert!(
        servers[1].state.starts_with("Offline (health"),
        "{servers:?}"
    );
    let (records, _) = run.replay();
    assert!(
        !records.iter().any(|r| matches!(
            &r.event,
            Event::StepDone {
                key: StepKey::EnableHa,
                ..
            } | Event::StepIntent {
                key: StepKey::EnableHa,
                ..
            }
        )),
        "enable-ha ran after check-online failed"
    );
}

/// A `status` column in `host` (not in the public record) is information only: OFFLINE
/// for a server whose health answers does not fail the run, and is recorded beside it.
#[tokio::test(flavor = "multi_thread")]
async fn a_host_status_column_is_information_only() {
    let run = planned(&["127.0.0.1"], "60").await;
    host_status_column(&run, "OFFLINE").await;
    run.ok(&["run", "--yes"]).await;
    let (server, all_online) = the_one_server(&run);
    assert!(all_online, "{server:?}");
    assert_eq!(server.name, "127.0.0.1 (resource group 0)");
    assert_eq!(server.state, "Online (health); host.status OFFLINE");
}
