//! Hostile input, issue 10 item 11: a ledger record holds at most 64 KiB, and a dump's
//! outcome carries per-table facts. A metadata database with 2,000 tables must still be
//! upgraded, recorded, verified and rolled back: the real binary against a real (emulated)
//! node in Docker and the real MariaDB.

mod support;

use mysql_async::prelude::Queryable;
use oms_upgrade::events::{MetaDb, StepFacts, StepKey};
use oms_upgrade::replay::Phase;
use support::emulator as emu;
use support::upgrade::{Run, json_of, ok};

const TABLES: usize = 2000;

/// Adds `TABLES` small tables (one row each) to database `db`, in batches of statements.
async fn seed_tables(db: &str) {
    let pool = support::mysql_pool().await;
    let mut c = pool.get_conn().await.unwrap();
    c.query_drop(format!("USE `{db}`")).await.unwrap();
    for batch in (0..TABLES).collect::<Vec<_>>().chunks(100) {
        let sql: String = batch
            .iter()
            .map(|i| {
                format!(
                    "CREATE TABLE extra_table_{i:05} (id INT PRIMARY KEY, v VARCHAR(32)); \
                     INSERT INTO extra_table_{i:05} VALUES ({i}, 'row of table {i}');"
                )
            })
            .collect();
        c.query_drop(sql).await.unwrap();
    }
    drop(c);
    pool.disconnect().await.ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upgrade_of_a_metadata_db_with_two_thousand_tables_records_verifies_and_rolls_back() {
    let node = emu::start_old_oms().await;
    let cm = node.databases().cm;
    seed_tables(&cm).await;
    let run = Run::planned_on(node).await;

    run.ok(&["run", "--yes"]).await;
    let (_, state) = run.replay();
    assert_eq!(state.phase(), Phase::Completed);
    let dumped = state.artifact(MetaDb::Cm).expect("cm dump recorded");
    assert!(
        dumped.tables.len() >= TABLES,
        "{} table facts recorded",
        dumped.tables.len()
    );
    run.verify_ledger();
    let out = ok(run
        .cli()
        .args(["--json", "ledger", "verify", "--artifacts"]));
    assert_eq!(json_of(&out.stdout)["ok"], true);

    run.ok(&["rollback", "--yes"]).await;
    let (_, state) = run.replay();
    assert_eq!(state.phase(), Phase::RolledBack);
    let Some(StepFacts::Restored(r)) = state.facts(StepKey::Restore { db: MetaDb::Cm }) else {
        panic!("no restore of cm recorded")
    };
    assert!(r.tables_match, "the restored tables match the dump's facts");
    assert_eq!(r.tables.len(), dumped.tables.len());
    run.verify_ledger();

    // The ledger stays self-contained for auditors: its export passes the independent
    // Python verifier, with every `step.tables` slice decoded in the export's view.
    let export = run.tmp.join("ledger.export.jsonl");
    ok(run.cli().args(["ledger", "export", "--out"]).arg(&export));
    let slices = std::fs::read_to_string(&export)
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"step.tables\""))
        .count();
    assert!(slices >= 2, "{slices} step.tables records");
    let python = std::env::var("OMS_TEST_PYTHON").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/pyenv/bin/python").to_string()
    });
    let out = std::process::Command::new(&python)
        .arg(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ledger-schema/verify_export.py"),
        )
        .arg(&export)
        .arg("--json")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} ({e}); `scripts/test` sets up the venv"));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify_export.py printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(v["ok"], true, "{v}");

    assert_eq!(
        emu::scalar(&format!(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{cm}' \
             AND TABLE_NAME LIKE 'extra\\_table\\_%'"
        ))
        .await,
        Some(TABLES as u64)
    );
}
