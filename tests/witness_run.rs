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
use support::emulator as emu;
use support::proxy::Proxy;
use support::upgrade::{Run, bin, init_args, json_of, ok, output, require_failpoints, show};
use support::{TestDb, cleanup_sql, mysql_pool, mysql_target, unique_name};

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
        cleanup_sql(format!("DROP USER IF EXISTS '{}'@'127.0.0.1'", self.writer));
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

/// `run` (or `rollback`) with the witness password, `FAILPOINTS` as given.
async fn drive(run: &Run, args: &[&str], failpoints: Option<&str>) -> std::process::Output {
    let mut c = run.cli();
    c.env("OMS_WITNESS_PASSWORD", WRITER_PASSWORD).args(args);
    if let Some(f) = failpoints {
        c.env("FAILPOINTS", f);
    }
    output(&mut c).await
}

/// While a run sleeps after `dump-rm`'s outcome (a failpoint), waits until that outcome is
/// on the witness, then cuts the proxy: the witness goes away between two steps.
async fn cut_after_dump_rm(w: &WitnessDb) {
    let rm_done = |rows: &[(u64, Vec<u8>)]| {
        rows.iter().any(|(_, s)| {
            matches!(
                event_of(s),
                Event::StepDone {
                    key: StepKey::Dump { db: MetaDb::Rm },
                    ..
                }
            )
        })
    };
    for _ in 0..600 {
        if rm_done(&w.rows().await) {
            w.proxy.cut();
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("dump-rm's outcome never reached the witness");
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

const SLEEP_AFTER_DUMP_RM: &str = "after-outcome:dump-rm=sleep(4000)";

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

    // The witness goes away between dump-rm and dump-cm.
    let (out, ()) = tokio::join!(
        drive(&run, &["--json", "run", "--yes"], Some(SLEEP_AFTER_DUMP_RM)),
        cut_after_dump_rm(&w)
    );
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
        "{:?}",
        event_of(last)
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
    let out = drive(&run, &["run", "--yes"], None).await;
    assert_eq!(out.status.code(), Some(6), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nothing was done"), "{stderr}");
    assert_eq!(local_rows(&run.ledger()), local, "nothing was recorded");

    // Back: the run resumes and completes; the witness holds every record once.
    w.proxy.restore();
    let out = drive(&run, &["--json", "run", "--yes"], None).await;
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(json_of(&out.stdout)["phase"], "completed");
    assert_mirrored(&w, &run).await;

    // The rollback is mirrored too.
    let out = drive(&run, &["--json", "rollback", "--yes"], None).await;
    assert!(out.status.success(), "{}", show(&out));
    assert_mirrored(&w, &run).await;

    // `status` shows the witness with no lag.
    let out = ok(run
        .cli()
        .env("OMS_WITNESS_PASSWORD", WRITER_PASSWORD)
        .args(["--json", "status"]));
    let s = json_of(&out.stdout);
    assert_eq!(s["witness"]["state"], "reachable", "{s}");
    assert_eq!(s["witness"]["lag"], 0, "{s}");
    assert_eq!(s["witness"]["policy"], "required", "{s}");
    // And `ledger verify --witness` finds no difference.
    ok(run
        .cli()
        .env("OMS_WITNESS_PASSWORD", WRITER_PASSWORD)
        .args(["ledger", "verify", "--witness", &w.url()]));
}

#[tokio::test(flavor = "multi_thread")]
async fn best_effort_completes_and_ledger_push_catches_the_witness_up() {
    require_failpoints();
    let w = WitnessDb::new().await;
    let run = planned(&w, "best-effort").await;
    let (out, ()) = tokio::join!(
        drive(&run, &["--json", "run", "--yes"], Some(SLEEP_AFTER_DUMP_RM)),
        cut_after_dump_rm(&w)
    );
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(json_of(&out.stdout)["phase"], "completed");
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
