//! Issue 14 end to end: runs and rollbacks of a real (emulated) OMS node in Docker, every
//! record mirrored to a witness on the real MariaDB by a least-privileged writer (INSERT
//! and SELECT only), through a TCP proxy the test cuts between two steps.
//!
//! - `required`: the run stops before the next action (its intent is the last record, no
//!   outcome, no side effect), refuses to start again while the witness is away (nothing
//!   recorded), and resumes cleanly once it is back; the witness rows equal the local
//!   ledger byte for byte, one row per seq.
//! - `best-effort`: the run completes, the witness lags, `ledger push` catches it up.

mod support;

use std::path::Path;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use oms_upgrade::events::{self, Event, MetaDb, StepKey};
use oms_upgrade::ledger::{LedgerReader, Record};
use oms_upgrade::replay::Phase;
use support::emulator as emu;
use support::proxy::Proxy;
use support::upgrade::{Run, bin, init_args, json_of, ok, output, require_failpoints, show};
use support::{TestDb, admin_blocking, mysql_pool, mysql_target, unique_name};

/// The writer's password (a per-test account).
const WRITER_PASSWORD: &str = "witness-writer-pw";

/// A witness database with the tool's schema, a writer holding INSERT and SELECT only, and
/// a proxy in front of the server.
struct WitnessDb {
    db: TestDb,
    writer: String,
    proxy: Proxy,
}

impl WitnessDb {
    async fn new() -> WitnessDb {
        let db = TestDb::create("witness").await;
        let admin = mysql_target();
        // The schema, created by the tool as a DBA would (`witness init`).
        ok(assert_cmd::Command::new(bin())
            .env("OMS_WITNESS_PASSWORD", admin.password.expose())
            .env_remove("OMS_UPGRADE_WITNESS")
            .args([
                "witness",
                "init",
                "--witness",
                &format!(
                    "mysql://{}@{}:{}/{}",
                    admin.user, admin.host, admin.port, db.name
                ),
            ]));
        let writer = unique_name("wr");
        let pool = mysql_pool().await;
        let mut c = pool.get_conn().await.unwrap();
        c.query_drop(format!(
            "CREATE USER '{writer}'@'127.0.0.1' IDENTIFIED BY '{WRITER_PASSWORD}'"
        ))
        .await
        .unwrap();
        c.query_drop(format!(
            "GRANT INSERT, SELECT ON `{}`.* TO '{writer}'@'127.0.0.1'",
            db.name
        ))
        .await
        .unwrap();
        drop(c);
        pool.disconnect().await.ok();
        let proxy = Proxy::start(&admin.host, admin.port).await;
        WitnessDb { db, writer, proxy }
    }

    /// The witness URL, through the proxy.
    fn url(&self) -> String {
        format!(
            "mysql://{}@127.0.0.1:{}/{}",
            self.writer, self.proxy.port, self.db.name
        )
    }

    /// The seqs of the checkpoints the witness holds, ascending.
    async fn checkpoint_seqs(&self) -> Vec<u64> {
        let pool = mysql_pool().await;
        let mut c = pool.get_conn().await.unwrap();
        let seqs: Vec<u64> = c
            .query(format!(
                "SELECT `seq` FROM `{}`.`witness_checkpoints` ORDER BY `seq`",
                self.db.name
            ))
            .await
            .unwrap();
        drop(c);
        pool.disconnect().await.ok();
        seqs
    }

    /// Every record row, as (seq, stored bytes), ordered by seq and hash (read by the
    /// test's admin account, directly).
    async fn rows(&self) -> Vec<(u64, Vec<u8>)> {
        let pool = mysql_pool().await;
        let mut c = pool.get_conn().await.unwrap();
        let rows: Vec<(u64, Vec<u8>)> = c
            .query(format!(
                "SELECT `seq`, `stored` FROM `{}`.`witness_records` ORDER BY `seq`, `hash`",
                self.db.name
            ))
            .await
            .unwrap();
        drop(c);
        pool.disconnect().await.ok();
        rows
    }
}

impl Drop for WitnessDb {
    fn drop(&mut self) {
        admin_blocking(vec![format!(
            "DROP USER IF EXISTS '{}'@'127.0.0.1'",
            self.writer
        )]);
    }
}

/// The local ledger as (seq, stored bytes).
fn local_rows(ledger: &Path) -> Vec<(u64, Vec<u8>)> {
    let r = LedgerReader::open(ledger).unwrap();
    r.view()
        .records()
        .map(|r| r.map(|r| (r.seq, r.stored)).unwrap())
        .collect()
}

/// The event a stored record holds.
fn event_of(stored: &[u8]) -> Event {
    let r = Record::parse(stored).unwrap();
    events::decode(&r.event_type, r.schema_version, &r.payload).unwrap()
}

/// A fresh 3.3.0 node planned with the witness under `policy`.
async fn planned(w: &WitnessDb, policy: &str) -> Run {
    let run = Run::unplanned(emu::start_old_oms().await);
    let out = init_with(&run, &w.url(), policy).await;
    assert!(out.status.success(), "init: {}", show(&out));
    run
}

/// `init --json` of `run`'s node with `--witness url --witness-policy policy`.
async fn init_with(run: &Run, url: &str, policy: &str) -> std::process::Output {
    let args = init_args(
        &run.node,
        &run.backups(),
        &[("--witness", url), ("--witness-policy", policy)],
    )
    .await;
    output(
        run.cli()
            .env("OMS_WITNESS_PASSWORD", WRITER_PASSWORD)
            .arg("--json")
            .args(args),
    )
    .await
}

/// `run` (or `rollback`) with the witness password.
async fn drive(run: &Run, args: &[&str]) -> std::process::Output {
    output(
        run.cli()
            .env("OMS_WITNESS_PASSWORD", WRITER_PASSWORD)
            .args(args),
    )
    .await
}

/// Runs `args` (not `--json`: the progress lines are read) with a pause after dump-rm's
/// outcome (a failpoint), and cuts the proxy during that pause: the witness goes away
/// between two steps. The cut waits for the run's "done: dump-rm" line, printed once the
/// outcome's push was confirmed, so it cannot fall inside that push (a push whose INSERT
/// committed but whose reply was lost is not confirmed, and stops a `required` run there).
async fn run_cut_after_dump_rm(run: &Run, w: &WitnessDb, args: &[&str]) -> std::process::Output {
    use std::io::BufRead;
    let mut child = std::process::Command::new(bin())
        .env("OMS_UPGRADE_LEDGER", run.ledger())
        .env("OMS_UPGRADE_OPERATOR", "tester")
        .env("OMS_UPGRADE_HOST", "ci-host")
        .env("OMS_WITNESS_PASSWORD", WRITER_PASSWORD)
        .env("FAILPOINTS", "after-outcome:dump-rm=sleep(4000)")
        .env_remove("OMS_META_PASSWORD")
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (seen, rm_done) = tokio::sync::oneshot::channel();
    let reader = tokio::task::spawn_blocking(move || {
        let mut seen = Some(seen);
        let mut text = String::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.unwrap_or_default();
            if line.contains("done: dump-rm")
                && let Some(s) = seen.take()
            {
                let _ = s.send(());
            }
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    if tokio::time::timeout(Duration::from_secs(600), rm_done)
        .await
        .is_ok_and(|r| r.is_ok())
    {
        w.proxy.cut();
    }
    let stderr = reader.await.unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(w.proxy.is_cut(), "dump-rm never finished: {stderr}");
    std::process::Output {
        stderr: stderr.into_bytes(),
        ..out
    }
}

/// Every seq once on the witness, and the rows equal the local ledger byte for byte.
async fn assert_mirrored(w: &WitnessDb, run: &Run) {
    let rows = w.rows().await;
    let local = local_rows(&run.ledger());
    assert_eq!(rows.len(), local.len(), "one row per record, none twice");
    assert!(
        rows == local,
        "the witness rows differ from the local ledger"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn required_stops_before_the_next_action_and_resumes_then_rollback_is_mirrored() {
    require_failpoints();
    let w = WitnessDb::new().await;
    let run = Run::unplanned(emu::start_old_oms().await);
    // A witness in one of the node's metadata databases (a rollback restores those) is
    // refused by the preflight, before anything is pushed.
    let cm = run.node.databases().cm;
    let in_cm = format!("mysql://{}@127.0.0.1:{}/{cm}", w.writer, w.proxy.port);
    let out = init_with(&run, &in_cm, "required").await;
    assert_eq!(out.status.code(), Some(5), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("metadata databases"), "{}", show(&out));
    assert!(w.rows().await.is_empty(), "nothing was pushed");
    // The plan, with the earlier failed preflight pushed first (catch-up).
    let out = init_with(&run, &w.url(), "required").await;
    assert!(out.status.success(), "init: {}", show(&out));
    assert_mirrored(&w, &run).await;
    let rows = w.rows().await;
    assert!(matches!(
        event_of(&rows[0].1),
        Event::PreflightFailed { .. }
    ));
    // Every run signs a checkpoint at its end; the witness gets it too.
    let key = run.tmp.join("signing.key");
    ok(run
        .cli()
        .args(["ledger", "keygen", "--out", key.to_str().unwrap()]));
    let sign = ["--sign", key.to_str().unwrap()];

    // The witness goes away between dump-rm and dump-cm.
    let out = run_cut_after_dump_rm(&run, &w, &["run", "--yes", sign[0], sign[1]]).await;
    assert_eq!(out.status.code(), Some(6), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("witness"), "{stderr}");
    // The intent of dump-cm is the last record, with no outcome after it; no dump of cm
    // was written.
    let local = local_rows(&run.ledger());
    let (_, last) = local.last().unwrap();
    assert!(
        matches!(
            event_of(last),
            Event::StepIntent {
                key: StepKey::Dump { db: MetaDb::Cm }
            }
        ),
        "{:?}\n{}",
        event_of(last),
        show(&out)
    );
    let (_, state) = run.replay();
    let cm = state.plan().unwrap().databases.cm.clone();
    let dumped: Vec<_> = run
        .dump_files()
        .into_iter()
        .filter(|f| {
            f.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{cm}.")))
        })
        .collect();
    assert!(dumped.is_empty(), "dump-cm ran: {dumped:?}");
    // The witness holds everything but that intent.
    assert_eq!(w.rows().await.len() + 1, local.len());

    // Still away: nothing is done, nothing recorded.
    let out = drive(&run, &["run", "--yes", sign[0], sign[1]]).await;
    assert_eq!(out.status.code(), Some(6), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nothing was done"), "{stderr}");
    assert_eq!(local_rows(&run.ledger()), local, "nothing was recorded");

    // Back: the run resumes and completes; the witness holds every record once.
    w.proxy.restore();
    let out = drive(&run, &["--json", "run", "--yes", sign[0], sign[1]]).await;
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(json_of(&out.stdout)["phase"], "completed");
    assert_mirrored(&w, &run).await;
    assert_eq!(
        w.checkpoint_seqs().await.last(),
        local_rows(&run.ledger()).last().map(|(seq, _)| seq),
        "the checkpoint of the completed run is on the witness"
    );

    // The rollback is mirrored too.
    let out = drive(&run, &["--json", "rollback", "--yes", sign[0], sign[1]]).await;
    assert!(out.status.success(), "{}", show(&out));
    assert_mirrored(&w, &run).await;
    assert_eq!(
        w.checkpoint_seqs().await.last(),
        local_rows(&run.ledger()).last().map(|(seq, _)| seq)
    );

    // `status` shows the witness with no lag.
    let out = ok(run
        .cli()
        .env("OMS_WITNESS_PASSWORD", WRITER_PASSWORD)
        .args(["--json", "status"]));
    let s = json_of(&out.stdout);
    assert_eq!(s["witness"]["state"], "reachable", "{s}");
    assert_eq!(s["witness"]["lag"], 0, "{s}");
    assert_eq!(s["witness"]["policy"], "required", "{s}");
    // And `ledger verify --witness` finds no difference, the witness's checkpoints
    // (signatures included) agreeing with the ledger.
    let public = format!("{}.pub", key.display());
    ok(run
        .cli()
        .env("OMS_WITNESS_PASSWORD", WRITER_PASSWORD)
        .args([
            "ledger",
            "verify",
            "--witness",
            &w.url(),
            "--pubkey",
            &public,
        ]));
}

#[tokio::test(flavor = "multi_thread")]
async fn best_effort_completes_and_ledger_push_catches_the_witness_up() {
    require_failpoints();
    let w = WitnessDb::new().await;
    let run = planned(&w, "best-effort").await;
    let out = run_cut_after_dump_rm(&run, &w, &["run", "--yes"]).await;
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(run.replay().1.phase(), Phase::Completed);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("warning: ").count(),
        1,
        "one warning line: {stderr}"
    );

    // The witness lags; `status` says it cannot be reached, then how far behind it is.
    let local = local_rows(&run.ledger());
    let on_witness = w.rows().await;
    assert!(on_witness.len() < local.len());
    assert_eq!(on_witness[..], local[..on_witness.len()], "a prefix");
    let status = || {
        json_of(
            &ok(run
                .cli()
                .env("OMS_WITNESS_PASSWORD", WRITER_PASSWORD)
                .args(["--json", "status"]))
            .stdout,
        )
    };
    assert_eq!(status()["witness"]["state"], "unreachable");
    w.proxy.restore();
    let s = status();
    assert_eq!(s["witness"]["state"], "reachable", "{s}");
    assert_eq!(
        s["witness"]["lag"],
        (local.len() - on_witness.len()) as u64,
        "{s}"
    );

    // `ledger push` catches up: nothing lost, nothing twice, and a second push inserts
    // nothing.
    for again in [false, true] {
        let out = ok(run
            .cli()
            .env("OMS_WITNESS_PASSWORD", WRITER_PASSWORD)
            .args(["--json", "ledger", "push", "--witness", &w.url()]));
        let pushed = json_of(&out.stdout);
        assert_eq!(pushed["inserted"] == 0, again, "{pushed}");
        assert_mirrored(&w, &run).await;
    }
}
