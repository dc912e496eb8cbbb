//! Issue 12, items 7 to 9, against real services: the heartbeat prune in batches (and
//! after a kill in the middle of it), a missing heartbeat table after T1, T1 taken when the
//! stop was requested (an emulator that takes seconds to stop), the refetch margins checked
//! by `init`, and the Store retention warning shown by `run`, `status` and `plan`.

mod support;

use chrono::{DateTime, Duration, Utc};
use mysql_async::prelude::Queryable;
use oms_upgrade::events::{
    ContainerSnapshot, DbNames, Event, HaAfter, HaDisabled, HaMode, MetaDb, MetaDbLocation, Plan,
    PlanInput, PreflightCheck, StepFacts, StepKey,
};
use oms_upgrade::executor::Journal;
use oms_upgrade::refetch::RefetchPolicy;
use support::emulator as emu;
use support::upgrade::{Run, cli, error_line, init_args, json_of, output, require_failpoints};

/// A plan for a node that is not there: the retention test only reads its ledger (a
/// server on 127.0.0.1:1 refuses at once).
fn recorded_plan(backups: &std::path::Path) -> Plan {
    Plan::new(PlanInput {
        run_id: uuid::Uuid::new_v4(),
        tool_version: "0.1.0".into(),
        source_version: "3.3.0".parse().unwrap(),
        target_version: "3.3.1".parse().unwrap(),
        old_container: ContainerSnapshot {
            id: "c0".repeat(32),
            name: "oms-retention".into(),
            image: "oms:feature_3.3.0_ce".into(),
            image_id: format!("sha256:{}", "1a".repeat(32)),
            binds: vec!["/data/oms/oms_logs:/home/admin/logs".into()],
            env: Vec::new(),
            labels: Default::default(),
        },
        target_image: "oms:feature_3.3.1_ce".into(),
        target_image_id: None,
        old_renamed_to: None,
        privileged: true,
        host_ip: "127.0.0.1".into(),
        metadb: MetaDbLocation {
            display_url: "mysql://oms@127.0.0.1:1".into(),
            host: "127.0.0.1".into(),
            port: 1,
            user: "oms".into(),
        },
        databases: DbNames {
            rm: "oms_rm".into(),
            cm: "oms_cm".into(),
            cm_hb: "oms_cm_hb".into(),
        },
        backup_dir: backups.display().to_string(),
        ha_mode: HaMode::Sql,
        ha_after: HaAfter::Enable,
        refetch: RefetchPolicy::default(),
        stop_timeout_secs: None,
        init_timeout_secs: None,
        health_url: "http://127.0.0.1:1/oms/health".into(),
        health_timeout_secs: None,
        ext: Vec::new(),
    })
    .unwrap()
}

/// Rows in `<cm_hb>.heatbeat_sequence`.
async fn heartbeats(cm_hb: &str) -> (u64, Option<i64>) {
    let pool = support::mysql_pool().await;
    let mut c = pool.get_conn().await.unwrap();
    let row: (u64, Option<i64>) = c
        .query_first(format!(
            "SELECT COUNT(*), MAX(id) FROM `{cm_hb}`.heatbeat_sequence"
        ))
        .await
        .unwrap()
        .unwrap();
    drop(c);
    pool.disconnect().await.ok();
    row
}

/// Rows in `<cm_hb>.heatbeat_sequence` up to id `max`.
async fn heartbeats_upto(cm_hb: &str, max: i64) -> u64 {
    let pool = support::mysql_pool().await;
    let mut c = pool.get_conn().await.unwrap();
    let n: u64 = c
        .exec_first(
            format!("SELECT COUNT(*) FROM `{cm_hb}`.heatbeat_sequence WHERE id <= ?"),
            (max,),
        )
        .await
        .unwrap()
        .unwrap();
    drop(c);
    pool.disconnect().await.ok();
    n
}

/// Adds `n` heartbeats, as a node up for weeks has.
async fn add_heartbeats(cm_hb: &str, n: u64) {
    let pool = support::mysql_pool().await;
    let mut c = pool.get_conn().await.unwrap();
    let mut left = n;
    while left > 0 {
        let k = left.min(5000);
        let values = vec!["(NOW(6), '10.0.0.5', 1)"; k as usize].join(",");
        c.query_drop(format!(
            "INSERT INTO `{cm_hb}`.heatbeat_sequence (gmt_created, host_ip, sequence_no) VALUES {values}"
        ))
        .await
        .unwrap();
        left -= k;
    }
    drop(c);
    pool.disconnect().await.ok();
}

/// The recorded facts of `key` as JSON (the field names of the domain form).
fn facts_json(run: &Run, key: StepKey) -> serde_json::Value {
    let (_, state) = run.replay();
    serde_json::to_value(
        state
            .facts(key)
            .unwrap_or_else(|| panic!("{key} has no facts")),
    )
    .unwrap()
}

/// Regression (issue 12.9): T1 was taken when `docker stop` returned, up to the stop
/// timeout after OMS began shutting down, so the downtime and the refetch window came out
/// short. With a node that takes 4 s to stop, T1 must be the request (right after the
/// stop's intent), with Docker's `FinishedAt` recorded beside it, 4 s later.
/// Regression (issue 12.7), in the same run: the prune of 25 000 heartbeats was one DELETE;
/// it runs in batches of at most 10 000 rows, recorded in the facts.
#[tokio::test(flavor = "multi_thread")]
async fn t1_is_the_stop_request_and_the_prune_runs_in_batches() {
    let node = emu::start_oms_with_env("3.3.0", &["OMS_EMU_STOP_DELAY_MS=4000"]).await;
    let run = Run::planned_on(node).await;
    let cm_hb = run.node.databases().cm_hb;
    add_heartbeats(&cm_hb, 25_000).await;
    run.ok(&["run", "--yes"]).await;

    let (_, state) = run.replay();
    let intent_at = state
        .attempts()
        .iter()
        .find(|a| a.key == StepKey::StopOldContainer)
        .unwrap()
        .intent_at;
    let t1 = state.t1().unwrap();
    let stop = facts_json(&run, StepKey::StopOldContainer);
    let finished: DateTime<Utc> =
        serde_json::from_value(stop["docker_finished_at"].clone()).unwrap();
    assert!(
        t1 - intent_at < Duration::seconds(2),
        "T1 {t1} is {} after the stop was asked for at {intent_at}: {stop}",
        t1 - intent_at
    );
    assert!(
        finished - t1 >= Duration::milliseconds(3500),
        "Docker's FinishedAt {finished} is not the slow stop's end after T1 {t1}"
    );
    assert_eq!(state.refetch_decision().unwrap().t1, t1);
    assert_eq!(state.downtime_start(), Some(t1));

    let prune = facts_json(&run, StepKey::PruneHeartbeat);
    assert!(
        prune["batches"].as_u64().is_some_and(|b| b >= 3),
        "prune not batched: {prune}"
    );
    assert!(
        prune["batch_rows"].as_u64().is_some_and(|n| n <= 10_000),
        "{prune}"
    );
    // The new container writes heartbeats of its own once started: the prune's end shows
    // in the ids up to the one it kept.
    let kept = prune["max_id"].as_i64().unwrap();
    assert_eq!(heartbeats_upto(&cm_hb, kept).await, 1);
    run.verify_ledger();
}

/// A run stopped before the prune, given `rows` heartbeats, then run on with `failpoint`
/// armed until it kills the process: the heartbeat rows and newest id before that run.
async fn killed_at(run: &Run, rows: u64, failpoint: &str) -> (u64, Option<i64>) {
    let cm_hb = run.node.databases().cm_hb;
    run.ok(&["run", "--yes", "--until", "prune-heartbeat"])
        .await;
    add_heartbeats(&cm_hb, rows).await;
    let before = heartbeats(&cm_hb).await;
    let out = output(
        run.cli()
            .env("FAILPOINTS", format!("{failpoint}=return"))
            .args(["run", "--yes"]),
    )
    .await;
    assert!(
        !out.status.success(),
        "the failpoint {failpoint} did not fire"
    );
    before
}

/// Regression (issue 12.7): a kill in the middle of the prune (after its first batch) is
/// resumed: the step is found not done, runs again from the start, and ends with the same
/// one row (each batch deletes only rows below the newest id, which does not change with
/// OMS stopped).
#[tokio::test(flavor = "multi_thread")]
async fn prune_killed_between_batches_resumes_to_the_same_row() {
    require_failpoints();
    let run = Run::planned().await;
    let cm_hb = run.node.databases().cm_hb;
    let (before, newest) = killed_at(&run, 25_000, "prune-batch").await;
    let (mid, _) = heartbeats(&cm_hb).await;
    assert!(
        mid < before && mid > 1,
        "{before} -> {mid}: not stopped mid-prune"
    );
    assert_eq!(run.replay().1.in_doubt(), Some(StepKey::PruneHeartbeat));

    run.ok(&["run", "--yes"]).await;
    assert_eq!(run.status()["phase"], "completed");
    let prune = facts_json(&run, StepKey::PruneHeartbeat);
    assert_eq!(prune["max_id"].as_i64(), newest);
    assert_eq!(heartbeats_upto(&cm_hb, newest.unwrap()).await, 1);
    assert_eq!(prune["rows_deleted"].as_u64(), Some(mid - 1));
    run.verify_ledger();
}

/// Tables of `db` named like the prune's work tables (`heatbeat_sequence_oms_upgrade_*`).
async fn swap_leftovers(db: &str) -> Vec<String> {
    let pool = support::mysql_pool().await;
    let mut c = pool.get_conn().await.unwrap();
    let left: Vec<String> = c
        .exec(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? \
             AND TABLE_NAME LIKE 'heatbeat\\_sequence\\_oms\\_upgrade\\_%' ORDER BY 1",
            (db,),
        )
        .await
        .unwrap();
    drop(c);
    pool.disconnect().await.ok();
    left
}

/// `drop-pruned-heartbeat` (issue 16), parsed so that this file also builds against a
/// build without it (where the tests below fail on what they check, not to compile).
fn drop_step() -> StepKey {
    "drop-pruned-heartbeat".parse().unwrap()
}

/// Regression (issue 16): the swap counted the old table (540 ms for 3.16 M rows) and
/// dropped it (44 ms) inside the downtime window. Now the prune only renames the old rows
/// aside into the run's `<old>` table; the heartbeat dump leaves that table out (by its
/// exact name), and `drop-pruned-heartbeat`, after T2, counts it exactly and drops it.
#[tokio::test(flavor = "multi_thread")]
async fn prune_swap_moves_rows_aside_and_counts_them_after_t2() {
    let run = Run::planned().await;
    let cm_hb = run.node.databases().cm_hb;
    run.ok(&["run", "--yes", "--until", "prune-heartbeat"])
        .await;
    add_heartbeats(&cm_hb, 120_000).await;
    let (before, newest) = heartbeats(&cm_hb).await;
    run.ok(&["run", "--yes", "--until", "dump-rm"]).await;

    // In the window: renamed aside, neither counted nor dropped.
    assert_eq!(heartbeats(&cm_hb).await, (1, newest));
    let left = swap_leftovers(&cm_hb).await;
    assert!(
        left.len() == 1 && left[0].ends_with("_old"),
        "the old rows are not kept aside after the prune: {left:?}"
    );
    let old = left[0].clone();
    let prune = facts_json(&run, StepKey::PruneHeartbeat);
    assert_eq!(
        (
            prune["batches"].as_u64(),
            prune["batch_rows"].as_u64(),
            prune["rows_deleted"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "a swap records no batch and no count: {prune}"
    );
    let (_, state) = run.replay();
    let prune_ms = state
        .attempts()
        .iter()
        .find(|a| a.key == StepKey::PruneHeartbeat)
        .and_then(|a| a.duration())
        .unwrap()
        .num_milliseconds();
    assert!(prune_ms < 1_000, "the prune took {prune_ms} ms");

    // The heartbeat dump leaves out exactly that table; it is still there at T2.
    run.ok(&["run", "--yes", "--until", "drop-pruned-heartbeat"])
        .await;
    let dumped: Vec<String> = run
        .dumped_facts(MetaDb::CmHb)
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(
        dumped.iter().any(|t| t == "heatbeat_sequence") && !dumped.contains(&old),
        "{dumped:?}"
    );
    assert_eq!(swap_leftovers(&cm_hb).await, vec![old.clone()]);

    // After T2: counted exactly, then dropped.
    run.ok(&["run", "--yes"]).await;
    assert_eq!(run.status()["phase"], "completed");
    assert_eq!(swap_leftovers(&cm_hb).await, Vec::<String>::new());
    let dropped = facts_json(&run, drop_step());
    assert_eq!(dropped["table"], old.as_str());
    assert_eq!(dropped["rows"].as_u64(), Some(before - 1), "{dropped}");
    let (_, state) = run.replay();
    let t2 = state.t2().unwrap();
    let drop_at = state
        .attempts()
        .iter()
        .find(|a| a.key == drop_step())
        .unwrap()
        .intent_at;
    assert!(drop_at > t2, "the drop at {drop_at} is not after T2 {t2}");
    let report = output(run.cli().args(["report"])).await;
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(
        text.contains(&format!("counted and dropped after T2: {}", before - 1)),
        "{text}"
    );
    run.verify_ledger();
}

/// Issue 16: a large heartbeat table is pruned by swapping in a table holding only the
/// newest row (no DELETE batches). Killed between the swap's RENAME and the end of the
/// step, the run is resumed: the step is found not done, the next attempt leaves the old
/// table (named after the run, so it is this run's) where it is and finds the one row
/// already alone; `drop-pruned-heartbeat` still counts every old row exactly.
#[tokio::test(flavor = "multi_thread")]
async fn prune_swap_killed_after_its_rename_resumes_with_an_exact_count() {
    require_failpoints();
    let run = Run::planned().await;
    let cm_hb = run.node.databases().cm_hb;
    let (before, newest) = killed_at(&run, 60_000, "prune-swap-renamed").await;
    assert_eq!(heartbeats(&cm_hb).await, (1, newest));
    let left = swap_leftovers(&cm_hb).await;
    assert!(
        left.len() == 1 && left[0].ends_with("_old"),
        "not killed right after the RENAME: {left:?}"
    );
    assert_eq!(run.replay().1.in_doubt(), Some(StepKey::PruneHeartbeat));

    run.ok(&["run", "--yes", "--until", "dump-rm"]).await;
    assert_eq!(
        swap_leftovers(&cm_hb).await,
        left,
        "the resumed prune dropped the rows moved aside"
    );
    let prune = facts_json(&run, StepKey::PruneHeartbeat);
    assert_eq!(prune["max_id"].as_i64(), newest);
    assert_eq!(prune["batch_rows"].as_u64(), Some(0), "{prune}");

    run.ok(&["run", "--yes"]).await;
    assert_eq!(run.status()["phase"], "completed");
    assert_eq!(swap_leftovers(&cm_hb).await, Vec::<String>::new());
    assert_eq!(heartbeats_upto(&cm_hb, newest.unwrap()).await, 1);
    let dropped = facts_json(&run, drop_step());
    assert_eq!(dropped["rows"].as_u64(), Some(before - 1), "{dropped}");
    run.verify_ledger();
}

/// Issue 16: `drop-pruned-heartbeat` killed between its count and its DROP is performed
/// again (in doubt: idempotent) and records the same exact count.
#[tokio::test(flavor = "multi_thread")]
async fn drop_of_the_pruned_rows_killed_before_its_drop_counts_again() {
    require_failpoints();
    let run = Run::planned().await;
    let cm_hb = run.node.databases().cm_hb;
    let (before, _) = killed_at(&run, 60_000, "drop-pruned-counted").await;
    assert_eq!(run.replay().1.in_doubt(), Some(drop_step()));
    assert_eq!(swap_leftovers(&cm_hb).await.len(), 1);

    run.ok(&["run", "--yes"]).await;
    assert_eq!(run.status()["phase"], "completed");
    assert_eq!(swap_leftovers(&cm_hb).await, Vec::<String>::new());
    let dropped = facts_json(&run, drop_step());
    assert_eq!(dropped["rows"].as_u64(), Some(before - 1), "{dropped}");
    run.verify_ledger();
}

/// Regression (issue 12.7): a missing heartbeat table stopped the run at
/// `prune-heartbeat`, after T1, with OMS down. It is recorded as a warning and the run
/// goes on to the dumps.
#[tokio::test(flavor = "multi_thread")]
async fn missing_heartbeat_table_is_a_recorded_warning() {
    let run = Run::planned().await;
    let cm_hb = run.node.databases().cm_hb;
    run.ok(&["run", "--yes", "--until", "prune-heartbeat"])
        .await;
    let pool = support::mysql_pool().await;
    let mut c = pool.get_conn().await.unwrap();
    c.query_drop(format!("DROP TABLE `{cm_hb}`.heatbeat_sequence"))
        .await
        .unwrap();
    drop(c);
    pool.disconnect().await.ok();

    let out = output(run.cli().args(["run", "--yes", "--until", "rename-old"])).await;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "run stopped: {}", error_line(&out));
    assert!(stderr.contains("WARNING: prune-heartbeat"), "{stderr}");
    let prune = facts_json(&run, StepKey::PruneHeartbeat);
    assert!(
        prune["warning"]
            .as_str()
            .is_some_and(|w| w.contains("heatbeat_sequence does not exist")),
        "{prune}"
    );
    let (_, state) = run.replay();
    assert!(
        state
            .facts(StepKey::Dump {
                db: oms_upgrade::events::MetaDb::CmHb
            })
            .is_some()
    );
}

/// Regression (issue 12.8): `--refetch-margin-min 0 --refetch-margin-percent 0` was
/// accepted and failed only when HA was re-enabled, after everything had changed. `init`
/// refuses it, names the flag, and records no plan.
#[tokio::test(flavor = "multi_thread")]
async fn zero_refetch_margins_are_refused_by_init() {
    let node = emu::start_old_oms().await;
    let tmp = tempfile::tempdir().unwrap();
    let ledger = tmp.path().join("ledger");
    let args = init_args(
        &node,
        &tmp.path().join("backups"),
        &[
            ("--refetch-margin-min", "0"),
            ("--refetch-margin-percent", "0"),
        ],
    )
    .await;
    let out = output(cli(&ledger).args(&args)).await;
    assert!(!out.status.success(), "init accepted zero refetch margins");
    assert!(
        error_line(&out).contains("--refetch-margin-min"),
        "{}",
        error_line(&out)
    );
    let state = oms_upgrade::history::load_dir(&ledger, oms_upgrade::history::Verify::Chain)
        .unwrap()
        .state;
    assert!(state.plan().is_none());
}

/// Regression (issue 12.8): the Store retention warning appeared only in the report. A run
/// whose old container was asked to stop 21 h ago (past 80 % of the 24 h sync retention)
/// shows it in `status`, `plan` and `run`, and in their JSON.
#[test]
fn retention_warning_is_shown_by_status_plan_and_run() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = tmp.path().join("ledger");
    let long_ago = Utc::now() - Duration::hours(21);
    {
        let plan = recorded_plan(&tmp.path().join("backups"));
        let run_id = plan.run_id;
        let mut j = Journal::open(&ledger, "tester", "ci-host").unwrap();
        let mut at = long_ago - Duration::minutes(5);
        let mut rec = |e: Event| {
            at += Duration::seconds(10);
            j.record(run_id, at, e).unwrap();
        };
        rec(Event::planned(plan));
        rec(Event::StepIntent {
            key: StepKey::DisableHa,
        });
        rec(Event::StepDone {
            key: StepKey::DisableHa,
            facts: StepFacts::HaDisabled(HaDisabled {
                previous_json: r#"{"enable":true}"#.into(),
                written_json: Some(r#"{"enable":false}"#.into()),
                mode: HaMode::Sql,
                attestation: None,
            }),
        });
        rec(Event::StepIntent {
            key: StepKey::PreStopCheck,
        });
        rec(Event::StepDone {
            key: StepKey::PreStopCheck,
            facts: StepFacts::PreStopChecked {
                checks: vec![PreflightCheck {
                    name: "image".into(),
                    ok: true,
                    detail: "present".into(),
                }],
            },
        });
        // The stop was asked for and never seen done: the downtime runs from here.
        rec(Event::StepIntent {
            key: StepKey::StopOldContainer,
        });
    }
    let warned = |out: &std::process::Output| {
        String::from_utf8_lossy(&out.stdout).contains("WARNING (Store retention)")
    };
    for cmd in ["status", "plan"] {
        let out = support::upgrade::ok(cli(&ledger).arg(cmd));
        assert!(
            warned(&out),
            "`{cmd}` shows no retention warning:\n{}",
            support::upgrade::show(&out)
        );
        let j = json_of(&support::upgrade::ok(cli(&ledger).args(["--json", cmd])).stdout);
        assert!(
            j["retention_warning"]
                .as_str()
                .is_some_and(|w| w.contains("Store retention")),
            "`{cmd} --json`: {j}"
        );
    }
    // `run` says it before it connects anywhere (here it then fails: no such server).
    let out = cli(&ledger)
        .env("OMS_META_PASSWORD", "x")
        .args(["run", "--yes"])
        .output()
        .unwrap();
    assert!(
        warned(&out),
        "`run` shows no retention warning:\n{}",
        support::upgrade::show(&out)
    );
}
