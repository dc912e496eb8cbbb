//! The 4.2.x guide end to end (issue 12.5): `oms-upgrade` upgrades an emulated OMS 4.2.1
//! node to 4.2.2 and rolls it back, against the real Docker engine and MariaDB. The guide
//! adds two checks to the 3.3.1 procedure: `supervisorctl status` shows every program
//! RUNNING before `docker_init.sh` (programs STARTING are waited for; FATAL fails at once,
//! naming the program), and every server OMS keeps in the cm database's `host` table is
//! Online after it.

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

/// Seeds the node's metadata with `servers` (`IP=STATUS`) in the cm `host` table.
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
    let run = planned(&["127.0.0.1=ONLINE"], "60").await;
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
    assert_eq!(server.state, "ONLINE");
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
    let run = planned(&["127.0.0.1=ONLINE"], "60").await;
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
    let run = planned(&["127.0.0.1=ONLINE"], "60").await;
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

/// Regression (issue 12.5): "every server Online" was the local health URL, so a server
/// the cm database's `host` table shows OFFLINE passed. Each listed server is checked.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_offline_in_the_cm_host_table_fails_the_run() {
    let run = planned(&["127.0.0.1=OFFLINE"], "10").await;
    let out = output(run.cli().args(["run", "--yes"])).await;
    assert!(
        !out.status.success(),
        "the run passed with a server OFFLINE in the host table:\n{}",
        show(&out)
    );
    let text = show(&out);
    assert!(text.contains("not every machine is Online"), "{text}");
    let (server, all_online) = the_one_server(&run);
    assert!(!all_online);
    assert_eq!(server.state, "OFFLINE");
}

/// Where the cm `host` table has no status column (the public record names none), each
/// listed server's own health endpoint says whether it is Online.
#[tokio::test(flavor = "multi_thread")]
async fn without_a_status_column_each_server_answers_its_health() {
    let run = planned(&["127.0.0.1=ONLINE"], "60").await;
    let cm = run.node.databases().cm;
    let pool = support::mysql_pool().await;
    {
        use mysql_async::prelude::Queryable;
        let mut c = pool.get_conn().await.unwrap();
        c.query_drop(format!("ALTER TABLE `{cm}`.`host` DROP COLUMN `status`"))
            .await
            .unwrap();
    }
    pool.disconnect().await.ok();
    run.ok(&["run", "--yes"]).await;
    let (server, all_online) = the_one_server(&run);
    assert!(all_online);
    assert_eq!(server.state, "Online (health)");
}
