//! End-to-end rollbacks with the `oms-upgrade` binary against the real Docker engine,
//! MariaDB and the OMS emulator: after a completed upgrade, and after a `docker_init.sh`
//! that failed half-way through the schema changes. Each must bring back exactly the
//! databases that were dumped (per-table row counts and checksums, compared with what the
//! ledger recorded at dump time, with OMS stopped), the old container healthy on its old
//! image under its old name, and HA on with a refetch window covering the whole downtime.

mod support;

use oms_upgrade::events::MetaDb;
use support::emulator as emu;
use support::upgrade::{Run, assert_refetch_covers, json_of, schema_columns, show};

/// The restored databases hold exactly what was dumped. Checked while the rollback is
/// stopped before the old container restarts (it writes heartbeats and the rollback's HA
/// edit changes `ha.config` right after).
async fn assert_restored_exactly(run: &Run) {
    for db in MetaDb::ALL {
        let now = run.db_facts(db).await;
        let dumped = run.dumped_facts(db);
        assert!(!dumped.is_empty(), "{db}: the dump recorded no table");
        assert_eq!(now, dumped, "{db}: restored content differs from the dump");
    }
}

/// The columns of the three databases.
async fn columns(run: &Run) -> Vec<Vec<(String, String, String, String, Option<String>)>> {
    let dbs = run.node.databases();
    vec![
        schema_columns(&dbs.rm).await,
        schema_columns(&dbs.cm).await,
        schema_columns(&dbs.cm_hb).await,
    ]
}

/// After a completed rollback: the old container (same id) runs its old image under its
/// old name and answers healthy; the new one is stopped and moved aside; the schema is the
/// old one again; HA is on with a refetch window covering T1 .. the rollback's HA enable;
/// `status` says rolled back; the ledger verifies.
async fn assert_rolled_back(run: &Run) {
    let node = &run.node;
    use oms_upgrade::adapters::Docker;
    let docker = run.docker();
    let old = docker.inspect(&node.name).await.unwrap().expect("old name");
    assert_eq!(old.id, node.id, "the old container has its name back");
    assert!(old.status.is_running());
    assert_eq!(old.image, node.image.reference);
    assert_eq!(old.binds, node.host.binds());
    let health = emu::wait_healthy(&node.docker, &node.id, &node.host.health_url()).await;
    assert_eq!(health["data"]["version"], emu::OLD_VERSION);
    let new = run.run_containers().await;
    assert_eq!(new.len(), 1, "exactly one new container was created");
    assert!(!new[0].status.is_running(), "the new container is stopped");
    assert_eq!(
        new[0].name,
        format!("{}-failed-{}", node.name, emu::NEW_VERSION)
    );
    assert_eq!(
        emu::schema_version(&node.databases()).await.as_deref(),
        Some(emu::OLD_VERSION)
    );
    // rm (but the ha.config row the rollback rewrote) and cm are not written by a running
    // 3.3.0 node: they still equal the dump after the restart.
    assert_eq!(run.db_facts(MetaDb::Cm).await, run.dumped_facts(MetaDb::Cm));
    let rm_now: Vec<_> = run
        .db_facts(MetaDb::Rm)
        .await
        .into_iter()
        .filter(|t| t.name != "oms_normal_config")
        .collect();
    let rm_dumped: Vec<_> = run
        .dumped_facts(MetaDb::Rm)
        .into_iter()
        .filter(|t| t.name != "oms_normal_config")
        .collect();
    assert_eq!(rm_now, rm_dumped);
    // Heartbeats continue on the restored old node.
    let before = emu::heartbeat_rows(&node.databases()).await;
    emu::wait_heartbeats_above(&node.docker, &node.id, &node.databases(), before).await;

    assert_refetch_covers(run).await;
    let status = run.status();
    assert_eq!(status["phase"], "rolled back", "{status}");
    assert_eq!(status["rollback_permitted"], false, "{status}");
    assert!(status["t3"].is_string(), "T3 recorded: {status}");
    let text = String::from_utf8(run.ok(&["status"]).await.stdout).unwrap();
    assert!(text.contains("Phase: rolled back"), "{text}");
    run.assert_dumps_once();
    run.verify_ledger();
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_after_completed_upgrade() {
    let run = Run::planned_seeded(Some("256K")).await;
    let columns_before = columns(&run).await;
    run.ok(&["--json", "run", "--yes"]).await;
    assert_eq!(run.status()["phase"], "completed");
    assert_eq!(
        emu::schema_version(&run.node.databases()).await.as_deref(),
        Some(emu::NEW_VERSION)
    );
    // The comparisons below have teeth: the migration changed rm and cm (a table, and a
    // column of the seeded oms_task rows).
    assert_ne!(run.db_facts(MetaDb::Rm).await, run.dumped_facts(MetaDb::Rm));
    assert_ne!(run.db_facts(MetaDb::Cm).await, run.dumped_facts(MetaDb::Cm));
    assert_ne!(columns(&run).await, columns_before);

    // Stop before the old container restarts, to compare the restored databases exactly.
    let out = run
        .ok(&[
            "--json",
            "rollback",
            "--yes",
            "--reason",
            "e2e test",
            "--until",
            "rollback-restart-old",
        ])
        .await;
    let v = json_of(&out.stdout);
    assert_eq!(v["stopped_before"], "rollback-restart-old", "{v}");
    assert_eq!(v["phase"], "rolling back");
    assert_restored_exactly(&run).await;
    assert_eq!(columns(&run).await, columns_before, "restored schema");
    let status = run.status();
    assert_eq!(status["phase"], "rolling back");
    assert_eq!(
        status["next"]["step"]["step"], "restart_old_container",
        "{status}"
    );

    let out = run.ok(&["rollback", "--yes"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Rollback completed"), "{text}");
    assert_rolled_back(&run).await;
    let (_, state) = run.replay();
    assert_eq!(state.rollback().unwrap().reason, "e2e test");

    // A finished rollback is not repeated, and `run` does not resume the upgrade.
    let again = run.cli().args(["rollback", "--yes"]).output().unwrap();
    assert!(again.status.success(), "{}", show(&again));
    let run_again = run.cli().args(["run", "--yes"]).output().unwrap();
    assert_eq!(run_again.status.code(), Some(7), "{}", show(&run_again));
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_after_failed_docker_init() {
    let run = Run::planned_seeded(Some("256K")).await;
    let columns_before = columns(&run).await;
    run.node.host.set_init_fail(true);
    let out = run.cli().args(["run", "--yes"]).output().unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert!(first.contains("docker-init"), "{first}");
    // A failed init is a service failure (issue 13): its record and message say so.
    assert!(first.contains("(service)"), "{first}");
    assert_eq!(run.last_step_failed()["kind"], "service");
    assert!(stderr.contains("hint: "), "{stderr}");
    assert!(stderr.contains("oms-upgrade rollback"), "{stderr}");
    // The failure left the schema half-migrated: the version row still says 3.3.0, but
    // the first change of the step was applied.
    assert_eq!(
        emu::schema_version(&run.node.databases()).await.as_deref(),
        Some(emu::OLD_VERSION)
    );
    assert_ne!(columns(&run).await, columns_before, "half-migrated schema");

    let status = run.status();
    assert_eq!(status["phase"], "upgrade failed", "{status}");
    assert_eq!(status["next"]["next"], "blocked", "{status}");
    let reason = status["next"]["reason"].as_str().unwrap();
    assert!(reason.contains("docker-init"), "{reason}");
    assert!(reason.contains("oms-upgrade rollback"), "{reason}");
    assert_eq!(status["rollback_permitted"], true, "{status}");
    let text = String::from_utf8(run.ok(&["status"]).await.stdout).unwrap();
    assert!(text.contains("Phase: upgrade failed"), "{text}");
    assert!(
        text.contains("roll back with `oms-upgrade rollback`"),
        "{text}"
    );
    assert!(text.contains("Rollback: permitted"), "{text}");
    // `run` refuses to go on past a failed docker_init.sh.
    let again = run.cli().args(["run", "--yes"]).output().unwrap();
    assert_eq!(again.status.code(), Some(7), "{}", show(&again));

    run.node.host.set_init_fail(false);
    let out = run
        .ok(&["rollback", "--yes", "--until", "rollback-restart-old"])
        .await;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Stopped before rollback-restart-old"),
        "{}",
        show(&out)
    );
    assert_restored_exactly(&run).await;
    assert_eq!(columns(&run).await, columns_before, "restored schema");
    run.ok(&["rollback", "--yes"]).await;
    assert_rolled_back(&run).await;
}

/// Files a dump writes only while it runs: `<file>.part` and the parallel dump's hidden
/// `.<database>.<index>.spool` files.
fn partial_files(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".part") || n.ends_with(".spool"))
            .collect(),
        Err(_) => vec![],
    };
    v.sort();
    v
}

/// Starts `run --yes` and sends it SIGKILL as soon as a partial dump file shows in `dir`;
/// returns the partial files the kill left.
async fn kill_inside_a_dump(run: &Run, dir: &std::path::Path) -> Vec<String> {
    use std::os::unix::process::ExitStatusExt;
    let mut child = run.spawn(&["run", "--yes"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    loop {
        if !partial_files(dir).is_empty() {
            child.kill().unwrap();
            break;
        }
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "the run ended before a partial dump file was seen:\n{}",
                support::upgrade::show(&out)
            );
        }
        assert!(std::time::Instant::now() < deadline, "no dump started");
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGKILL),
        "{}",
        support::upgrade::show(&out)
    );
    partial_files(dir)
}

/// No partial file is left in `dir`, and the ledger names each of `files` with its size in
/// a note of their removal.
fn assert_partials_removed(run: &Run, dir: &std::path::Path, files: &[String]) {
    assert_eq!(
        partial_files(dir),
        Vec::<String>::new(),
        "partial files remain"
    );
    let (_, state) = run.replay();
    let notes: Vec<&str> = state.notes().iter().map(|n| n.body.as_str()).collect();
    for name in files {
        assert!(
            notes
                .iter()
                .any(|n| n.contains(name.as_str()) && n.contains("bytes")),
            "the removal of {name} is recorded with its size: {notes:?}"
        );
    }
}

/// A seeded run whose `run` was killed inside a dump; its dump folder and the partial files
/// the kill left there (at least one).
async fn killed_inside_a_dump() -> (Run, std::path::PathBuf, Vec<String>) {
    let run = Run::planned_seeded(Some("4M")).await;
    let dir = std::path::PathBuf::from(run.replay().1.plan().unwrap().dump_dir());
    let left = kill_inside_a_dump(&run, &dir).await;
    assert!(!left.is_empty(), "the kill left partial files");
    (run, dir, left)
}

/// Issue 11.8, the `run` side: the resumed upgrade removes what the killed dump left too.
#[tokio::test(flavor = "multi_thread")]
async fn resumed_run_removes_the_partial_files_of_a_killed_dump() {
    let (run, dir, left) = killed_inside_a_dump().await;
    run.ok(&["run", "--yes"]).await;
    assert_eq!(run.status()["phase"], "completed");
    assert_partials_removed(&run, &dir, &left);
    run.assert_dumps_once();
    run.verify_ledger();
}

/// Regression (issue 11.8): a dump killed half-way left its `.part` and spool files behind
/// after the rollback, and `ledger verify --artifacts` did not mention them. The rollback
/// must remove every partial file of the run's dump folder and record which (with sizes);
/// `--artifacts` lists any that remain.
#[tokio::test(flavor = "multi_thread")]
async fn rollback_removes_the_partial_files_of_a_killed_dump() {
    let (run, dir, left) = killed_inside_a_dump().await;

    run.ok(&["rollback", "--yes", "--reason", "killed during a dump"])
        .await;
    assert_eq!(run.status()["phase"], "rolled back");
    assert_partials_removed(&run, &dir, &left);
    run.verify_ledger();

    // A partial file that appears again is listed by `ledger verify --artifacts`.
    let rm = run.node.databases().rm;
    std::fs::write(dir.join(format!("{rm}.sql.part")), b"half a dump").unwrap();
    std::fs::write(dir.join(format!(".{rm}.0.spool")), b"a section").unwrap();
    let out = support::upgrade::ok(
        run.cli()
            .args(["--json", "ledger", "verify", "--artifacts"]),
    );
    let v = json_of(&out.stdout);
    let listed: Vec<String> = v["artifacts"]["partial_files"]
        .as_array()
        .unwrap_or_else(|| panic!("no partial_files in {v}"))
        .iter()
        .map(|f| f["file"].as_str().unwrap().to_string())
        .collect();
    for name in [format!("{rm}.sql.part"), format!(".{rm}.0.spool")] {
        let path = dir.join(&name).display().to_string();
        assert!(listed.contains(&path), "{path} not listed: {v}");
    }
    let out = support::upgrade::ok(run.cli().args(["ledger", "verify", "--artifacts"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("{rm}.sql.part")), "{text}");
}
