//! Issue 14, readers during a live run: an operator watches an upgrade from a second
//! terminal. While the first `run` is inside its dump (held there by a fault-injection
//! sleep right after the dump step's intent is durable), a second process runs `status`,
//! `report`, `ledger log` and `ledger verify` as a user would; each reads a verified copy of
//! the busy ledger and says it is a live read as of seq N. The run then completes normally
//! and its ledger verifies. Real Docker, MariaDB and the OMS emulator; nothing is mocked.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::upgrade::{Run, bin, json_of, ok, require_failpoints, show};

/// The step the run is held in, and how long.
const DUMP_STEP: &str = "dump-cm";
const PAUSE_MS: u64 = 40_000;

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn status_report_log_and_verify_show_a_run_inside_its_dump() {
    require_failpoints();
    let run = Run::planned().await;
    let mut upgrade = std::process::Command::new(bin())
        .env("OMS_UPGRADE_LEDGER", run.ledger())
        .env("OMS_UPGRADE_OPERATOR", "tester")
        .env("OMS_UPGRADE_HOST", "ci-host")
        .env_remove("OMS_META_PASSWORD")
        .env(
            "FAILPOINTS",
            format!("before-effect:{DUMP_STEP}=sleep({PAUSE_MS})"),
        )
        .args(["--json", "run", "--yes"])
        .stdin(std::process::Stdio::null())
        // Files, not pipes: nobody reads them until the run ends, and a full pipe would
        // block it.
        .stdout(std::fs::File::create(run.tmp.join("run.stdout")).unwrap())
        .stderr(std::fs::File::create(run.tmp.join("run.stderr")).unwrap())
        .spawn()
        .unwrap();
    let upgrade_pid = upgrade.id();

    // Watch from the second terminal until the run is inside the dump step. Every status
    // taken meanwhile succeeds: the ledger is busy from the run's first moment.
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        assert!(
            upgrade.try_wait().unwrap().is_none(),
            "the run ended before reaching {DUMP_STEP}"
        );
        assert!(
            Instant::now() < deadline,
            "the run never reached {DUMP_STEP}"
        );
        let out = run.cli().args(["--json", "status"]).output().unwrap();
        assert!(
            out.status.success(),
            "status during the run: {}",
            show(&out)
        );
        let s = json_of(&out.stdout);
        if s["in_progress"] == DUMP_STEP {
            break s;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status["live"], true, "{status}");
    assert_eq!(status["phase"], "upgrading", "{status}");
    assert_eq!(status["in_doubt"], Value::Null, "{status}");
    let holder = status["holder"].as_str().unwrap();
    assert!(
        holder.starts_with(&format!("writer: pid {upgrade_pid} on host")),
        "{status}"
    );
    let seq = status["seq"].as_u64().unwrap();
    let steps = status["steps"].as_array().unwrap();
    let dump_rm = steps.iter().find(|s| s["step"] == "dump-rm").unwrap();
    assert_eq!(dump_rm["status"], "Done", "{status}");

    let out = ok(run.cli().arg("status"));
    let t = text(&out);
    assert!(t.contains(&format!("live read as of seq {seq}")), "{t}");
    assert!(t.contains(&format!("pid {upgrade_pid}")), "{t}");
    assert!(t.contains(&format!("In progress: {DUMP_STEP}")), "{t}");
    assert!(t.contains("Phase: upgrading"), "{t}");
    let plan = json_of(&ok(run.cli().args(["--json", "plan"])).stdout);
    assert_eq!(plan["live"], true, "{plan}");
    assert_eq!(plan["seq"], seq);
    assert_eq!(
        plan["steps"][0]["step"], DUMP_STEP,
        "the steps still to run: {plan}"
    );

    // The report of the run so far, as JSON and Markdown.
    let out = ok(run.cli().args(["report", "--format", "json"]));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["live"]["live"], true, "{report}");
    assert_eq!(report["live"]["seq"], seq);
    assert_eq!(report["verification"]["ok"], true);
    assert_eq!(report["verification"]["head_seq"], seq);
    assert_eq!(report["outcome"]["phase"], "upgrading");
    let out = ok(run.cli().arg("report"));
    assert!(
        text(&out).contains(&format!("Live read as of seq {seq}")),
        "{}",
        text(&out)
    );

    // The timeline and the chain, up to what was read.
    let out = ok(run.cli().args(["--json", "ledger", "log"]));
    let lines: Vec<Value> = text(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, seq, "no record appended while held");
    assert!(
        lines
            .iter()
            .all(|l| l["live"] == true && l["read_seq"] == seq)
    );
    let last = lines.last().unwrap();
    assert_eq!(last["event_type"], "step.intent", "{last}");
    let out = ok(run.cli().args(["ledger", "log"]));
    assert!(text(&out).contains("live read as of seq"), "{}", text(&out));

    let out = ok(run.cli().args(["--json", "ledger", "verify"]));
    let v = json_of(&out.stdout);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["live"], true, "{v}");
    assert_eq!(v["seq"], seq);
    assert_eq!(v["records"], seq);
    let out = ok(run.cli().args(["ledger", "verify"]));
    let t = text(&out);
    assert!(t.contains("cannot speak for records appended after"), "{t}");

    // Commands that need the ledger to themselves still say it is busy, as before.
    let out = run.cli().args(["ledger", "export"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", show(&out));

    // The run goes on undisturbed and completes; its ledger verifies, readers read it
    // directly again.
    assert!(
        upgrade.try_wait().unwrap().is_none(),
        "the readers outlasted the pause: lengthen PAUSE_MS"
    );
    let code = tokio::task::spawn_blocking(move || upgrade.wait().unwrap())
        .await
        .unwrap();
    assert!(
        code.success(),
        "the run failed ({code}): {}",
        std::fs::read_to_string(run.tmp.join("run.stderr")).unwrap_or_default()
    );
    run.verify_ledger();
    let after = run.status();
    assert_eq!(after["phase"], "completed", "{after}");
    assert_eq!(after.get("live"), None, "{after}");
    assert!(after["steps"].as_array().unwrap().len() > steps.len());
}

/// A live read never shows a record it has not verified. A ledger whose record 3 was
/// altered in place (through sled's own API, so sled's checksums hold and only the chain
/// can tell), held as a run holds it: every copy is refused, and `status`, `report`,
/// `ledger log` and `ledger verify` exit 4 naming the record, as a busy ledger always did.
/// Once nobody holds it, `ledger verify` reports it broken (exit 3), as before.
#[test]
fn a_busy_ledger_whose_copy_does_not_verify_is_busy_not_shown() {
    use std::io::Write;

    use fs2::FileExt;
    use oms_upgrade::ledger::store::{LOCK_FILE, RECORDS_TREE, seq_key};

    let root = tempfile::tempdir().unwrap();
    let (dir, _) = support::ledger_with_notes(root.path(), 5);
    {
        let db = support::raw_sled(&dir);
        let records = db.open_tree(RECORDS_TREE).unwrap();
        let mut v = records.get(seq_key(3)).unwrap().unwrap().to_vec();
        let last = v.len() - 1;
        v[last] ^= 1;
        records.insert(seq_key(3), v).unwrap();
        db.flush().unwrap();
    }
    let mut lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join(LOCK_FILE))
        .unwrap();
    lock.lock_exclusive().unwrap();
    lock.set_len(0).unwrap();
    lock.write_all(b"writer: pid 4242 on host test-holder, since 2026-11-27T00:00:00Z\n")
        .unwrap();
    let cli = |args: &[&str]| {
        std::process::Command::new(bin())
            .arg("--ledger")
            .arg(&dir)
            .args(args)
            .output()
            .unwrap()
    };
    for args in [
        &["status"][..],
        &["report"],
        &["ledger", "log"],
        &["ledger", "verify"],
    ] {
        let out = cli(args);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {}", show(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("pid 4242 on host test-holder"),
            "{args:?}: {err}"
        );
        assert!(err.contains("none of 5 copies"), "{args:?}: {err}");
        assert!(err.contains("at seq 3"), "{args:?}: {err}");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("note 3"),
            "{args:?} showed an unverified record"
        );
    }
    drop(lock);
    let out = cli(&["ledger", "verify"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
}
