//! SIGTERM or SIGINT during a dump (issue 10): the password file, the `.part` and spool files
//! and the `mariadb-dump` child must all be gone when `oms-upgrade backup` exits, and it
//! exits with the documented code 130.

mod backup_helpers;
mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use backup_helpers::*;

/// Processes whose argv mentions `needle` (the child dumper gets the database name).
fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) && pid != std::process::id() {
                out.push((pid, cmd));
            }
        }
    }
    out
}

fn walk(dir: &Path) -> Vec<String> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            v.push(e.path().display().to_string());
            if e.path().is_dir() {
                v.extend(walk(&e.path()));
            }
        }
    }
    v
}

async fn interrupt_backup(signal: i32, name: &str, dumper: &str) {
    let db = support::TestDb::create(name).await;
    seed_big(&db.name, "big", 300_000).await;
    let out = out_dir();
    let tmp = out_dir(); // the dumper's defaults file goes under TMPDIR
    let t = support::mysql_target();
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("oms-upgrade"))
        .args([
            "backup",
            "--meta-url",
            &format!("mysql://{}@{}:{}", t.user, t.host, t.port),
            "--databases",
            &db.name,
            "--out",
            out.path().to_str().unwrap(),
            "--dumper",
            dumper,
            "--json",
        ])
        .env("OMS_META_PASSWORD", t.password.expose())
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the dump runs (the external dumper's argv names its password file, under
    // our TMPDIR; the native dumper's `.part` file exists), then interrupt.
    let tmp_name = tmp.path().display().to_string();
    let started = Instant::now();
    loop {
        let running = if dumper == "native" {
            files_in(out.path()).iter().any(|f| f.ends_with(".part"))
        } else {
            !processes_mentioning(&tmp_name).is_empty()
        };
        if running {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the dumper never started"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "backup ended before the dumper ran"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    // SAFETY: sends a signal to our own child process.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        walk(tmp.path()).is_empty(),
        "password file left: {:?}",
        walk(tmp.path())
    );
    assert!(
        files_in(out.path()).is_empty(),
        "partial dump left: {:?}",
        files_in(out.path())
    );
    let children = processes_mentioning(&tmp_name);
    assert!(children.is_empty(), "dumper still running: {children:?}");
    assert_eq!(
        output.status.code(),
        Some(130),
        "exit status {:?}; stdout {stdout}; stderr {stderr}",
        output.status
    );
    assert!(stdout.contains("interrupted"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_an_external_dump_leaves_no_secret_no_part_and_no_child() {
    interrupt_backup(libc::SIGTERM, "bk_sig1", "mysqldump").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_during_an_external_dump_leaves_no_secret_no_part_and_no_child() {
    interrupt_backup(libc::SIGINT, "bk_sig2", "mysqldump").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_native_dump_leaves_no_part_and_no_spool_file() {
    interrupt_backup(libc::SIGTERM, "bk_sig3", "native").await;
}
