//! The world moves between `init` and `run` (issue 11): the target tag re-pointed at
//! another image, the target image removed, the new container stopped by someone between
//! two `run`s, the statistics the disk check reads lagging after a bulk write, and the
//! labels the old container inherited from its image. Real Docker, real MariaDB, the
//! emulator; nothing mocked.

mod support;

use std::process::Output;

use oms_upgrade::adapters::{BollardDocker, Docker, MetaDb as _, MysqlMetaDb};
use oms_upgrade::events::StepKey;
use support::emulator::{self as emu, OmsNode};
use support::upgrade::{Run, cli, error_line, init_args, ok, output, show};

/// A tag of this test's own (other tests use the shared emulator tags), removed on drop.
struct OwnTag {
    docker: bollard::Docker,
    reference: String,
    /// The image it was first put on (the one planned).
    planned: String,
}

impl OwnTag {
    /// `docker tag <image> <reference>`.
    async fn point_at(&self, image: &str) {
        let (repo, tag) = self.reference.rsplit_once(':').unwrap();
        let opts = bollard::query_parameters::TagImageOptionsBuilder::default()
            .repo(repo)
            .tag(tag)
            .build();
        self.docker
            .tag_image(image, Some(opts))
            .await
            .unwrap_or_else(|e| panic!("docker tag {image} {}: {e}", self.reference));
    }

    /// `docker rmi <reference>` (only the tag, unless it is the image's last name).
    async fn remove(&self) {
        self.docker
            .remove_image(
                &self.reference,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await
            .unwrap_or_else(|e| panic!("docker rmi {}: {e}", self.reference));
    }
}

impl Drop for OwnTag {
    fn drop(&mut self) {
        // Only this test's tag goes (the image stays while other tags name it).
        let _ = std::process::Command::new("docker")
            .args(["rmi", "--force", &self.reference])
            .output();
    }
}

/// `init` for `node` with `--image <image>` and an explicit target version.
async fn init_with_image(node: &OmsNode, tmp: &std::path::Path, image: &str) {
    let mut c = cli(&tmp.join("ledger"));
    c.args(
        init_args(
            node,
            &tmp.join("backups"),
            &[("--image", image), ("--to-version", "3.3.1")],
        )
        .await,
    );
    ok(&mut c);
}

/// A fresh 3.3.0 node planned for 3.3.1, and the tag of its own it was planned under
/// (see `support::upgrade::new_image`), to re-point.
async fn planned_own_tag() -> (Run, OwnTag) {
    let run = Run::planned().await;
    let plan = run.replay().1.plan().cloned().expect("planned");
    let tag = OwnTag {
        docker: run.node.docker.clone(),
        reference: plan.target_image.clone(),
        planned: plan.target_image_id.clone().expect("image id planned"),
    };
    (run, tag)
}

/// The new container holds the old name, runs, and runs the planned image.
async fn assert_new_runs(node: &OmsNode, planned: &str) {
    let docker = BollardDocker::from_client(node.docker.clone());
    let new = docker
        .inspect(&node.name)
        .await
        .unwrap()
        .expect("new container");
    assert_ne!(new.id, node.id);
    assert!(new.status.is_running());
    assert_eq!(new.image_id, planned);
}

/// The command was refused (exit 7) with one `error:` line holding every `needles`, and
/// a hint.
fn assert_refused(out: &Output, needles: &[&str]) {
    assert_eq!(out.status.code(), Some(7), "{}", show(out));
    let error = error_line(out);
    for n in needles {
        assert!(error.contains(n), "error line must say `{n}`: {error}");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.lines().any(|l| l.starts_with("hint: ")), "{stderr}");
}

/// Nothing of T1 happened: the old container runs as before, `stop-old` was never
/// attempted, and the check that refused is recorded with what it found.
async fn assert_nothing_stopped(node: &OmsNode, ledger: &std::path::Path, failed_check: &str) {
    let docker = BollardDocker::from_client(node.docker.clone());
    let old = docker
        .inspect(&node.id)
        .await
        .unwrap()
        .expect("old container");
    assert!(old.status.is_running(), "the old container was stopped");
    assert_eq!(old.name, node.name);
    let state = oms_upgrade::history::load_dir(ledger, oms_upgrade::history::Verify::Chain)
        .unwrap()
        .state;
    // Compared by name and JSON form, so this test also builds against a tool without
    // the step (to see it fail there).
    let keys: Vec<String> = state.attempts().iter().map(|a| a.key.to_string()).collect();
    assert!(!keys.iter().any(|k| k == "stop-old"), "{keys:?}");
    let last = state.attempts().last().unwrap();
    assert_eq!(last.key.to_string(), "pre-stop-check");
    let outcome = serde_json::to_value(&last.outcome).unwrap();
    assert_eq!(outcome["outcome"], "failed", "{outcome}");
    assert_eq!(outcome["retryable"], true, "{outcome}");
    assert_eq!(outcome["facts"]["kind"], "pre_stop_checked", "{outcome}");
    let checks = outcome["facts"]["checks"].as_array().unwrap();
    assert!(
        checks
            .iter()
            .any(|c| c["name"] == failed_check && c["ok"] == false),
        "{outcome}"
    );
    assert!(
        checks
            .iter()
            .filter(|c| c["name"] != failed_check)
            .all(|c| c["ok"] == true),
        "{outcome}"
    );
}

/// Regression (issue 11, defects 2 and 3): the planned tag re-pointed at the 3.3.0 image
/// between `init` and `run` used to give "Upgrade completed: 3.3.0 -> 3.3.1" on a node
/// running 3.3.0. Now `run` refuses before T1, naming both ids; once the tag is put back,
/// `run` goes on and the new container runs the planned image.
#[tokio::test(flavor = "multi_thread")]
async fn a_retagged_target_image_is_refused_before_t1() {
    let (run, tag) = planned_own_tag().await;
    let (node, ledger) = (&run.node, run.ledger());

    tag.point_at(&node.image.id).await;
    let out = output(cli(&ledger).args(["run", "--yes"])).await;
    assert_refused(&out, &[&tag.reference, &tag.planned, &node.image.id]);
    assert_nothing_stopped(node, &ledger, "image").await;

    // Put back, the run goes on from the check and completes on the planned image.
    tag.point_at(&tag.planned).await;
    ok(cli(&ledger).args(["run", "--yes"]));
    assert_new_runs(node, &tag.planned).await;
}

/// Regression (issue 11, defect 3): the target image removed between `init` and `run`
/// used to be found at `create-new`, with the node stopped, dumped and renamed (exit 6).
/// Now `run` refuses before T1 (exit 7) and nothing is changed.
#[tokio::test(flavor = "multi_thread")]
async fn a_removed_target_image_is_refused_before_t1() {
    let node = emu::start_old_oms().await;
    // An image of this test's own (a distinct id), so removing it removes it for real.
    let planned = emu::images(&node.docker, &[emu::NEW_VERSION])
        .await
        .remove(0);
    let scratch = format!("oms-emu-scratch-{}", std::process::id());
    let body = bollard::models::ContainerCreateBody {
        image: Some(planned.id.clone()),
        labels: Some(node.guard.labels()),
        ..Default::default()
    };
    let opts = bollard::query_parameters::CreateContainerOptionsBuilder::default()
        .name(&format!("{scratch}-{}", node.guard.value))
        .build();
    let c = node
        .docker
        .create_container(Some(opts), body)
        .await
        .unwrap();
    let tag = OwnTag {
        docker: node.docker.clone(),
        reference: format!(
            "oms-emu/{}:feature_3.3.1_ce",
            support::unique_name("r").replace('_', "-")
        ),
        planned: String::new(),
    };
    let (repo, t) = tag.reference.rsplit_once(':').unwrap();
    let commit = bollard::query_parameters::CommitContainerOptionsBuilder::default()
        .container(&c.id)
        .repo(repo)
        .tag(t)
        .changes("LABEL oms-upgrade.test.scratch=1")
        .build();
    let own_id = node
        .docker
        .commit_container(commit, bollard::models::ContainerConfig::default())
        .await
        .unwrap()
        .id;
    node.docker
        .remove_container(
            &c.id,
            None::<bollard::query_parameters::RemoveContainerOptions>,
        )
        .await
        .unwrap();
    assert_ne!(own_id, planned.id);
    let tmp = tempfile::tempdir().unwrap();
    let ledger = tmp.path().join("ledger");
    init_with_image(&node, tmp.path(), &tag.reference).await;

    tag.remove().await;
    let gone = node.docker.inspect_image(&own_id).await;
    assert!(gone.is_err(), "the image must be gone: {gone:?}");
    let out = output(cli(&ledger).args(["run", "--yes"])).await;
    assert_refused(&out, &[&tag.reference, "no longer present"]);
    assert_nothing_stopped(&node, &ledger, "image").await;
}

/// Regression (issue 11, defect 6): `run --until docker-init`, then `docker stop` of the
/// new container, then `run` used to fail docker-init "not retryable" and force a
/// rollback. Now the stopped container is started again (a second, recorded `start-new`)
/// and the upgrade completes.
#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_new_container_is_started_again_before_docker_init() {
    let (run, _tag) = planned_own_tag().await;
    run.ok(&["run", "--yes", "--until", "docker-init"]).await;
    let new = run.run_containers().await;
    assert_eq!(new.len(), 1);
    run.docker()
        .stop(&new[0].id, std::time::Duration::from_secs(10))
        .await
        .unwrap();
    assert!(
        !run.docker()
            .inspect(&new[0].id)
            .await
            .unwrap()
            .unwrap()
            .status
            .is_running()
    );

    run.ok(&["run", "--yes"]).await;
    assert_eq!(run.status()["phase"], "completed");
    let (_, state) = run.replay();
    let count = |k: StepKey| state.attempts().iter().filter(|a| a.key == k).count();
    assert_eq!(
        count(StepKey::StartNewContainer),
        2,
        "the second start is recorded"
    );
    assert_eq!(count(StepKey::RunDockerInit), 1);
    let after = run.docker().inspect(&new[0].id).await.unwrap().unwrap();
    assert!(after.status.is_running());
    run.verify_ledger();
}

/// Regression (issue 11, defect 9): the new container carried `oms-emu.version=3.3.0`, a
/// label of the old image copied from the old container. Only the labels the operator set
/// on the old container (here the test's own) are carried over; the new image's labels
/// stay its own.
#[tokio::test(flavor = "multi_thread")]
async fn the_new_container_keeps_its_own_image_labels() {
    let (run, _tag) = planned_own_tag().await;
    let old = run.docker().inspect(&run.node.id).await.unwrap().unwrap();
    assert_eq!(
        old.labels.get("oms-emu.version").map(String::as_str),
        Some("3.3.0")
    );
    run.ok(&["run", "--yes"]).await;
    let new = run.docker().inspect(&run.node.name).await.unwrap().unwrap();
    assert_ne!(new.id, run.node.id);
    assert_eq!(
        new.labels.get("oms-emu.version").map(String::as_str),
        Some("3.3.1"),
        "{:?}",
        new.labels
    );
    assert_eq!(
        new.labels.get(support::TEST_LABEL),
        Some(&run.node.guard.value),
        "the operator's labels are carried over"
    );
    let (_, state) = run.replay();
    let plan = state.plan().unwrap();
    assert!(!plan.old_container.labels.contains_key("oms-emu.version"));
}

/// Regression (issue 11, defect 4): right after a bulk write `information_schema.TABLES`
/// said 64 KiB for a database whose dump is hundreds of MB, so the disk check passed with
/// no room. The estimate must be within a small factor of the real dump's size.
#[tokio::test(flavor = "multi_thread")]
async fn the_size_estimate_does_not_lag_after_a_bulk_write() {
    use mysql_async::prelude::Queryable;
    let db = support::TestDb::create("pret_size").await;
    let pool = support::mysql_pool().await;
    let mut c = pool.get_conn().await.unwrap();
    c.query_drop(format!(
        "CREATE TABLE `{}`.t (id INT AUTO_INCREMENT PRIMARY KEY, b VARCHAR(2000)) ENGINE=InnoDB",
        db.name
    ))
    .await
    .unwrap();
    // About 75 MB of rows in one statement (MariaDB's sequence engine).
    c.query_drop(format!(
        "INSERT INTO `{0}`.t (b) SELECT REPEAT(MD5(seq), 30) FROM `{0}`.seq_1_to_80000",
        db.name
    ))
    .await
    .unwrap();
    drop(c);
    pool.disconnect().await.ok();

    let target = support::mysql_target();
    let estimate = MysqlMetaDb::new(&target)
        .database_sizes(std::slice::from_ref(&db.name))
        .await
        .unwrap()[&db.name];
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dumps");
    let a = oms_upgrade::dump::dump_database(
        &target,
        &db.name,
        &out,
        &oms_upgrade::dump::DumpOptions::default(),
        &oms_upgrade::dump::Quiet,
    )
    .await
    .unwrap();
    assert!(a.size_bytes > 50 << 20, "dump of {} bytes", a.size_bytes);
    assert!(
        estimate.saturating_mul(3) >= a.size_bytes && estimate <= a.size_bytes.saturating_mul(3),
        "estimated {estimate} bytes for a dump of {} bytes",
        a.size_bytes
    );
}

/// Regression (issue 11, defect 2): the tag re-pointed after the check before T1 (here:
/// after `run --until create-new`) must not decide what runs either: `create-new` refuses
/// an image that is not the planned one, naming both, and leaves no container behind;
/// with the tag put back the run completes on the planned image.
#[tokio::test(flavor = "multi_thread")]
async fn create_new_refuses_an_image_retagged_after_t1() {
    let (run, tag) = planned_own_tag().await;
    let (node, ledger) = (&run.node, run.ledger());
    ok(cli(&ledger).args(["run", "--yes", "--until", "create-new"]));

    tag.point_at(&node.image.id).await;
    let out = output(cli(&ledger).args(["run", "--yes"])).await;
    // A refusal (the world contradicts the plan), not a service failure: exit 7, and the
    // ledger's failure record says so (issue 13).
    assert_eq!(out.status.code(), Some(7), "{}", show(&out));
    let failed = run.last_step_failed();
    assert_eq!(failed["key"], "create-new", "{failed}");
    assert_eq!(failed["kind"], "refused", "{failed}");
    let error = error_line(&out);
    for n in [&tag.reference, &tag.planned, &node.image.id] {
        assert!(error.contains(n.as_str()), "`{n}` in {error}");
    }
    let docker = BollardDocker::from_client(node.docker.clone());
    assert!(
        docker.inspect(&node.name).await.unwrap().is_none(),
        "no container of the wrong image is left under the name"
    );

    tag.point_at(&tag.planned).await;
    ok(cli(&ledger).args(["run", "--yes"]));
    assert_new_runs(node, &tag.planned).await;
}

/// A small filesystem of this test's own for the dump folder (tmpfs, mode 700), unmounted
/// on drop.
struct SmallDisk {
    path: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(path: std::path::PathBuf, size: &str) -> SmallDisk {
        std::fs::create_dir_all(&path).unwrap();
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs (needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { path }
    }

    /// Leaves about `left` bytes free.
    fn fill(&self, left: u64) {
        let free = fs2::available_space(&self.path).unwrap();
        let out = std::process::Command::new("fallocate")
            .args(["-l", &free.saturating_sub(left).to_string()])
            .arg(self.path.join("filler"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn empty(&self) {
        std::fs::remove_file(self.path.join("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.path)
            .output();
    }
}

/// Regression (issue 11, defect 4): free space is checked again right before T1 (a disk
/// filled since `init` refuses with the node untouched) and before each dump; a run that
/// runs out of room says what applies to `run` (free space where the plan's dumps go,
/// then run again), not "choose another --out folder".
#[tokio::test(flavor = "multi_thread")]
async fn free_space_is_checked_again_before_t1_and_before_each_dump() {
    let node = emu::start_old_oms().await;
    let tmp = tempfile::tempdir().unwrap();
    let ledger = tmp.path().join("ledger");
    let disk = SmallDisk::mount(tmp.path().join("backups"), "48m");
    ok(cli(&ledger).args(init_args(&node, &disk.path, &[]).await));

    disk.fill(64 << 10);
    let out = output(cli(&ledger).args(["run", "--yes"])).await;
    assert_refused(&out, &["free at", &disk.path.display().to_string()]);
    assert_nothing_stopped(&node, &ledger, "disk").await;

    disk.empty();
    ok(cli(&ledger).args(["run", "--yes", "--until", "dump-cm"]));
    disk.fill(64 << 10);
    let out = output(cli(&ledger).args(["run", "--yes"])).await;
    let error = error_line(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(error.contains("dump-cm"), "{error}");
    assert!(error.contains(&disk.path.display().to_string()), "{error}");
    assert!(error.contains("oms-upgrade run"), "{error}");
    assert!(!stderr.contains("--out"), "{stderr}");

    disk.empty();
    ok(cli(&ledger).args(["run", "--yes"]));
    let state = oms_upgrade::history::load_dir(&ledger, oms_upgrade::history::Verify::Chain)
        .unwrap()
        .state;
    assert_eq!(state.phase().to_string(), "completed");
}
