//! The Docker adapter against the real engine: inspect reports exactly what a container
//! was created with, stop/start/rename/remove are idempotent and say so, create maps the
//! runbook's `docker run` host configuration, exec returns exit codes and a bounded output
//! tail with a hash of the whole output, logs can be awaited, and missing things are typed.
//!
//! The image is a one-binary busybox root filesystem imported into the engine (no registry).
//! Every container carries the test label and is removed on drop, even when a test fails.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use oms_upgrade::adapters::docker::{
    BollardDocker, ContainerSpec, ContainerStatus, Docker, DockerError, EXEC_OUTPUT_TAIL_BYTES,
    RenameOutcome, Ulimit, binds_equal,
};

const IMAGE: &str = "oms-upgrade-test/busybox:1";

/// Runs forever, exits 0 on SIGTERM (so stop is quick and the exit code is known).
const LOOP: &str = r#"echo "boot"; trap "exit 0" TERM; while true; do sleep 0.2; done"#;

/// Imports the busybox image once per test process (idempotent across processes too).
fn image() -> &'static str {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(import_busybox());
        })
        .join()
        .expect("importing the busybox test image");
    });
    IMAGE
}

async fn import_busybox() {
    let client = support::docker().await;
    if client.inspect_image(IMAGE).await.is_ok() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let bin = root.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(root.path().join("tmp")).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox"))
        .expect("/bin/busybox (Debian busybox-static; `scripts/test` installs it)");
    for applet in [
        "sh", "sleep", "echo", "cat", "env", "printf", "seq", "ls", "head", "true", "false",
    ] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    support::import_folder_as_image(&client, root.path(), IMAGE).await;
}

/// Removes this test's containers (by label value) when dropped, also on panic.
struct Cleanup(String);

impl Cleanup {
    async fn new(value: &str) -> Cleanup {
        support::remove_labelled_containers(&support::docker().await, Some(value)).await;
        Cleanup(value.to_string())
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let v = self.0.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                support::remove_labelled_containers(&support::docker().await, Some(&v)).await
            });
        })
        .join()
        .ok();
    }
}

async fn adapter() -> BollardDocker {
    BollardDocker::from_client(support::docker().await)
}

fn labels(run: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (support::TEST_LABEL.to_string(), run.to_string()),
        ("oms-upgrade.role".to_string(), "old".to_string()),
    ])
}

/// A spec with the runbook's host configuration (privileged off: this engine refuses it).
fn spec(name: &str, run: &str, binds: Vec<String>, env: Vec<String>) -> ContainerSpec {
    let mut s = ContainerSpec::runbook(name, image(), binds, env, labels(run));
    s.privileged = false;
    s.cmd = Some(vec!["sh".into(), "-c".into(), LOOP.into()]);
    s
}

/// Host folders and a config file to bind, like an OMS node's.
fn host_mounts() -> (tempfile::TempDir, Vec<String>) {
    let d = tempfile::tempdir().unwrap();
    let p = |s: &str| -> PathBuf { d.path().join(s) };
    for sub in ["logs", "store", "run"] {
        std::fs::create_dir_all(p(sub)).unwrap();
    }
    std::fs::write(p("config.yaml"), "oms_meta_host: 127.0.0.1\n").unwrap();
    let binds = vec![
        format!(
            "{}:/home/admin/conf/config.yaml",
            p("config.yaml").display()
        ),
        format!("{}:/home/admin/logs", p("logs").display()),
        format!("{}:/home/ds/store:ro", p("store").display()),
        format!("{}:/home/ds/run", p("run").display()),
    ];
    (d, binds)
}

#[tokio::test]
async fn create_maps_the_runbook_host_config_and_inspect_reports_it_exactly() {
    let run = support::unique_name("dk_create");
    let _c = Cleanup::new(&run).await;
    let d = BollardDocker::connect().await.expect("engine reachable");
    let (_dir, binds) = host_mounts();
    let env = vec![
        "OMS_HOST_IP=127.0.0.1".to_string(),
        "IS_UPGRADE=true".to_string(),
        "EXTRA=a=b c".to_string(),
    ];
    let name = support::unique_name("oms_create");
    let s = spec(&name, &run, binds.clone(), env.clone());
    let id = d.create(&s).await.unwrap();

    let created = d.inspect(&name).await.unwrap().expect("created container");
    assert_eq!(created.id, id);
    assert_eq!(created.status, ContainerStatus::Created);
    assert_eq!(created.started_at, None);

    let started = d.start(&name).await.unwrap();
    assert!(!started.already_running);
    let info = d.inspect(&name).await.unwrap().unwrap();
    assert_eq!(info.name, name);
    assert_eq!(info.status, ContainerStatus::Running);
    assert_eq!(info.started_at, started.started_at);
    assert!(info.started_at.is_some());
    assert_eq!(info.image, IMAGE);
    let img = d
        .inspect_image(IMAGE)
        .await
        .unwrap()
        .expect("image present");
    assert_eq!(info.image_id, img.id);
    // Binds exactly as given, order kept; env and labels exactly.
    assert_eq!(info.binds, binds);
    assert!(binds_equal(&info.binds, &binds));
    assert_eq!(info.env, env);
    assert_eq!(info.env_var("IS_UPGRADE"), Some("true"));
    assert_eq!(info.labels, labels(&run));
    // The runbook's host configuration.
    assert_eq!(info.network_mode, "host");
    assert!(!info.privileged);
    assert!(info.pids_unlimited(), "pids limit {:?}", info.pids_limit);
    assert_eq!(
        info.ulimits,
        vec![Ulimit {
            name: "nproc".into(),
            soft: 65535,
            hard: 65535
        }]
    );
    assert!(info.tty && info.open_stdin, "-dit");
    assert_eq!(info.cmd, s.cmd);

    // Starting a running container is not an error, and says so.
    let again = d.start(&name).await.unwrap();
    assert!(again.already_running);
    assert_eq!(again.started_at, info.started_at);

    // Creating the same name again is a typed conflict.
    match d.create(&s).await {
        Err(DockerError::NameConflict { name: n }) => assert_eq!(n, name),
        other => panic!("expected NameConflict, got {other:?}"),
    }
}

#[tokio::test]
async fn stop_is_idempotent_and_reports_dockers_stop_time() {
    let run = support::unique_name("dk_stop");
    let _c = Cleanup::new(&run).await;
    let d = adapter().await;
    let name = support::unique_name("oms_stop");
    d.create(&spec(&name, &run, vec![], vec![])).await.unwrap();
    d.start(&name).await.unwrap();

    let first = d.stop(&name, Duration::from_secs(20)).await.unwrap();
    assert!(!first.already_stopped);
    assert_eq!(first.exit_code, Some(0), "the TERM trap exits 0");
    let t1 = first.finished_at.expect("Docker records the stop time");
    let info = d.inspect(&name).await.unwrap().unwrap();
    assert_eq!(info.status, ContainerStatus::Exited { code: 0 });
    assert!(t1 >= info.started_at.unwrap());

    let second = d.stop(&name, Duration::from_secs(20)).await.unwrap();
    assert!(second.already_stopped);
    assert_eq!(
        second.finished_at,
        Some(t1),
        "nothing happened the second time"
    );
}

#[tokio::test]
async fn rename_both_directions_reports_what_was_already_done() {
    let run = support::unique_name("dk_rename");
    let _c = Cleanup::new(&run).await;
    let d = adapter().await;
    let old = support::unique_name("oms_rn");
    let aside = format!("{old}-pre-3.3.1");
    let id = d.create(&spec(&old, &run, vec![], vec![])).await.unwrap();

    assert_eq!(
        d.rename(&old, &aside).await.unwrap(),
        RenameOutcome::Renamed
    );
    assert!(d.inspect(&old).await.unwrap().is_none());
    assert_eq!(d.inspect(&aside).await.unwrap().unwrap().id, id);
    // Re-running the step (e.g. after a crash) reports it as already done.
    assert_eq!(
        d.rename(&old, &aside).await.unwrap(),
        RenameOutcome::AlreadyRenamed
    );

    // And back (the rollback direction).
    assert_eq!(
        d.rename(&aside, &old).await.unwrap(),
        RenameOutcome::Renamed
    );
    assert_eq!(d.inspect(&old).await.unwrap().unwrap().id, id);
    assert_eq!(
        d.rename(&aside, &old).await.unwrap(),
        RenameOutcome::AlreadyRenamed
    );

    // Both are found by the run's label, whatever their names.
    let found = d
        .find_by_label(support::TEST_LABEL, Some(&run))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, id);

    // Both names taken: a typed conflict, nothing renamed.
    let other = d.create(&spec(&aside, &run, vec![], vec![])).await.unwrap();
    match d.rename(&old, &aside).await {
        Err(DockerError::NameConflict { name }) => assert_eq!(name, aside),
        r => panic!("expected NameConflict, got {r:?}"),
    }
    assert_eq!(d.inspect(&old).await.unwrap().unwrap().id, id);
    assert_eq!(d.inspect(&aside).await.unwrap().unwrap().id, other);
    let found = d
        .find_by_label(support::TEST_LABEL, Some(&run))
        .await
        .unwrap();
    let mut names: Vec<&str> = found.iter().map(|c| c.name.as_str()).collect();
    names.sort();
    assert_eq!(names, {
        let mut v = vec![old.as_str(), aside.as_str()];
        v.sort();
        v
    });
    assert!(
        d.find_by_label(support::TEST_LABEL, Some("no-such-run"))
            .await
            .unwrap()
            .is_empty()
    );

    // Neither exists: the source is reported missing.
    let ghost = support::unique_name("ghost");
    match d.rename(&ghost, &format!("{ghost}-x")).await {
        Err(DockerError::NotFound { name }) => assert_eq!(name, ghost),
        r => panic!("expected NotFound, got {r:?}"),
    }
}

#[tokio::test]
async fn restart_logs_and_waiting_for_a_log_line_since_a_start() {
    let run = support::unique_name("dk_restart");
    let _c = Cleanup::new(&run).await;
    let d = adapter().await;
    let name = support::unique_name("oms_rs");
    d.create(&spec(&name, &run, vec![], vec![])).await.unwrap();
    let started = d.start(&name).await.unwrap();
    assert_eq!(started.previous_finished_at, None, "never ran before");
    let first = started.started_at.unwrap();
    let m = d
        .wait_for_log_line(&name, "boot", None, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(m.line, "boot");

    let restarted = d.restart(&name, Duration::from_secs(20)).await.unwrap();
    let second = restarted.started_at.unwrap();
    assert!(second > first);
    let cut = restarted.previous_finished_at.expect("the restart's stop");
    assert!(cut > m.at.unwrap() && cut < second);
    // Only the boot line logged after the restart's stop counts.
    let m2 = d
        .wait_for_log_line(&name, "boot", Some(cut), Duration::from_secs(30))
        .await
        .unwrap();
    assert!(m2.at.unwrap() > cut, "{m2:?} vs cut {cut}");
    assert!(m2.at.unwrap() > m.at.unwrap());
    let logs = d.logs(&name, 10).await.unwrap();
    assert_eq!(logs.matches("boot").count(), 2, "{logs:?}");

    // A line that never comes: typed timeout.
    match d
        .wait_for_log_line(&name, "never printed", None, Duration::from_millis(500))
        .await
    {
        Err(DockerError::LogLineTimeout { needle, .. }) => assert_eq!(needle, "never printed"),
        r => panic!("expected LogLineTimeout, got {r:?}"),
    }
    // A stopped container will never print it: typed, not a hang.
    d.stop(&name, Duration::from_secs(20)).await.unwrap();
    match d
        .wait_for_log_line(&name, "never printed", None, Duration::from_secs(30))
        .await
    {
        Err(DockerError::NotRunning { name: n }) => assert_eq!(n, name),
        r => panic!("expected NotRunning, got {r:?}"),
    }
}

#[tokio::test]
async fn exec_returns_exit_codes_env_and_a_bounded_tail_with_the_whole_outputs_hash() {
    let run = support::unique_name("dk_exec");
    let _c = Cleanup::new(&run).await;
    let d = adapter().await;
    let name = support::unique_name("oms_ex");
    d.create(&spec(&name, &run, vec![], vec![])).await.unwrap();
    d.start(&name).await.unwrap();
    let sh = |script: &str| vec!["sh".to_string(), "-c".to_string(), script.to_string()];

    let ok = d
        .exec(&name, sh("echo hello $WHO"), vec!["WHO=oms".into()], None)
        .await
        .unwrap();
    assert_eq!(ok.exit_code, 0);
    assert_eq!(ok.output_tail, "hello oms\n");
    assert_eq!(
        ok.output_blake3,
        blake3::hash(b"hello oms\n").to_hex().to_string()
    );

    let bad = d
        .exec(&name, sh("echo oops >&2; exit 3"), vec![], None)
        .await
        .unwrap();
    assert_eq!(bad.exit_code, 3);
    assert_eq!(bad.output_tail, "oops\n");

    // More output than the tail keeps: the tail is the end, the hash covers everything.
    let big = d
        .exec(
            &name,
            sh("seq 1 100000"),
            vec![],
            Some(Duration::from_secs(120)),
        )
        .await
        .unwrap();
    let expected: String = (1..=100_000).map(|i| format!("{i}\n")).collect();
    assert_eq!(big.exit_code, 0);
    assert_eq!(big.output_bytes, expected.len() as u64);
    assert_eq!(
        big.output_blake3,
        blake3::hash(expected.as_bytes()).to_hex().to_string()
    );
    assert_eq!(big.output_tail.len(), EXEC_OUTPUT_TAIL_BYTES);
    assert!(expected.ends_with(&big.output_tail));

    match d
        .exec(
            &name,
            sh("echo started; sleep 30"),
            vec![],
            Some(Duration::from_millis(500)),
        )
        .await
    {
        Err(DockerError::ExecTimeout { output_tail, .. }) => assert_eq!(output_tail, "started\n"),
        r => panic!("expected ExecTimeout, got {r:?}"),
    }

    d.stop(&name, Duration::from_secs(20)).await.unwrap();
    match d.exec(&name, sh("true"), vec![], None).await {
        Err(DockerError::NotRunning { name: n }) => assert_eq!(n, name),
        r => panic!("expected NotRunning, got {r:?}"),
    }
}

#[tokio::test]
async fn missing_containers_and_images_are_typed() {
    let run = support::unique_name("dk_missing");
    let _c = Cleanup::new(&run).await;
    let d = adapter().await;
    let ghost = support::unique_name("ghost");

    assert!(d.inspect(&ghost).await.unwrap().is_none());
    let not_found = |r: Result<_, DockerError>| match r {
        Err(DockerError::NotFound { name }) => assert_eq!(name, ghost),
        Err(e) => panic!("expected NotFound, got {e:?}"),
        Ok(_) => panic!("expected NotFound, got Ok"),
    };
    not_found(d.stop(&ghost, Duration::from_secs(1)).await.map(|_| ()));
    not_found(d.start(&ghost).await.map(|_| ()));
    not_found(d.restart(&ghost, Duration::from_secs(1)).await.map(|_| ()));
    not_found(d.logs(&ghost, 10).await.map(|_| ()));
    not_found(
        d.exec(&ghost, vec!["true".into()], vec![], None)
            .await
            .map(|_| ()),
    );
    assert!(d.remove(&ghost, true).await.unwrap().already_absent);

    let missing = "oms-upgrade-test/not-loaded:0.0.0";
    assert!(d.inspect_image(missing).await.unwrap().is_none());
    let mut s = spec(&ghost, &run, vec![], vec![]);
    s.image = missing.to_string();
    match d.create(&s).await {
        Err(e @ DockerError::ImageMissing { .. }) => {
            assert!(e.to_string().contains(missing), "{e}")
        }
        r => panic!("expected ImageMissing, got {r:?}"),
    }
    assert!(
        d.inspect(&ghost).await.unwrap().is_none(),
        "nothing created"
    );

    // remove: a running container needs force; removing twice reports the second as absent.
    let name = support::unique_name("oms_rm");
    d.create(&spec(&name, &run, vec![], vec![])).await.unwrap();
    d.start(&name).await.unwrap();
    assert!(d.remove(&name, false).await.is_err());
    assert!(!d.remove(&name, true).await.unwrap().already_absent);
    assert!(d.remove(&name, true).await.unwrap().already_absent);
}

#[tokio::test]
async fn an_engine_that_is_not_there_is_unreachable_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    // No socket file at all.
    let missing = dir.path().join("docker.sock");
    match BollardDocker::connect_socket(missing.to_str().unwrap()).await {
        Err(e @ DockerError::EngineUnreachable { .. }) => {
            assert!(e.to_string().contains("systemctl start docker"), "{e}")
        }
        r => panic!("expected EngineUnreachable, got {r:?}"),
    }
    // A socket file nobody listens on any more.
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(matches!(
        BollardDocker::connect_socket(stale.to_str().unwrap()).await,
        Err(DockerError::EngineUnreachable { .. })
    ));
}

#[tokio::test]
async fn a_refused_privileged_start_is_typed() {
    let run = support::unique_name("dk_priv");
    let _c = Cleanup::new(&run).await;
    let d = adapter().await;
    let name = support::unique_name("oms_priv");
    let mut s = spec(&name, &run, vec![], vec![]);
    s.privileged = true;
    d.create(&s).await.unwrap();
    assert!(d.inspect(&name).await.unwrap().unwrap().privileged);
    // This project's engine refuses `--privileged`; an ordinary one starts it.
    match d.start(&name).await {
        Ok(o) => assert!(!o.already_running),
        Err(e @ DockerError::PrivilegedRefused { .. }) => {
            assert!(e.to_string().contains("--no-privileged"), "{e}")
        }
        Err(e) => panic!("expected a start or PrivilegedRefused, got {e:?}"),
    }
}

/// Issue 15: what `init` checks on a node it cannot reach by its file system (an `ssh://`
/// or `tcp://` engine) it reads through the engine: a bind's path as the container sees
/// it, and the config.yaml the container mounts (bounded, a directory refused), stopped or
/// running; the engine's id tells two endpoints of one engine apart from two engines.
#[tokio::test]
async fn files_are_read_and_paths_seen_through_the_engine() {
    let run = support::unique_name("dk_archive");
    let _c = Cleanup::new(&run).await;
    let d = adapter().await;
    let (_host, binds) = host_mounts();
    let name = support::unique_name("oms_archive");
    d.create(&spec(&name, &run, binds, vec![])).await.unwrap();

    for running in [false, true] {
        let conf = d
            .read_container_file(&name, "/home/admin/conf/config.yaml", 1024)
            .await
            .unwrap();
        assert_eq!(
            conf.as_deref(),
            Some(&b"oms_meta_host: 127.0.0.1\n"[..]),
            "running: {running}"
        );
        assert!(d.path_in_container(&name, "/home/ds/store").await.unwrap());
        assert!(
            !d.path_in_container(&name, "/home/ds/nothing")
                .await
                .unwrap()
        );
        assert!(
            d.read_container_file(&name, "/home/ds/nothing", 1024)
                .await
                .unwrap()
                .is_none()
        );
        if !running {
            d.start(&name).await.unwrap();
        }
    }
    let e = d
        .read_container_file(&name, "/home/admin/conf/config.yaml", 8)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("larger than 8 bytes"), "{e}");
    let e = d
        .read_container_file(&name, "/home/ds/store", 1024)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");

    let id = d.engine_id().await.unwrap();
    let same = BollardDocker::connect_socket("/var/run/docker.sock")
        .await
        .unwrap();
    assert_eq!(same.engine_id().await.unwrap(), id);
}
