//! Issue 14, the fleet view on a real MariaDB witness. Twenty-one real ledgers (fifteen
//! upgrades, five rollbacks, one failed run) are recorded by the real executor over the
//! simulated world (`oms_upgrade::sim::driver::record_run`: a real sled ledger per run, the
//! simulated Docker, metadata DB and health behind the adapter traits) and pushed by a
//! least-privileged writer (INSERT and SELECT). Then, as the read-only auditor (SELECT):
//! `fleet verify` passes them all and records a state file; `fleet list`, `fleet report`
//! and `fleet export` show them, and `verify_export.py --fleet` verifies the export without
//! our code; and the database's administrator (the test's admin user, which has UPDATE and
//! DELETE) alters one row, rewrites one ledger's rows consistently and cuts another's
//! tail: `fleet verify --state` names each.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mysql_async::prelude::Queryable;
use oms_upgrade::events::StepKey;
use oms_upgrade::ledger::Record;
use oms_upgrade::replay::Phase;
use oms_upgrade::sim::driver::{RecordedRun, SimConfig, record_run};
use oms_upgrade::witness::schema;
use oms_upgrade::witness::{MysqlWitness, Witness};

use support::forge;
use support::upgrade::{bin, json_of, show};
use support::witness::{TempUser, admin, records_of, witness_db};

fn python() -> String {
    std::env::var("OMS_TEST_PYTHON").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/pyenv/bin/python").to_string()
    })
}

/// `oms-upgrade fleet ARGS --witness URL` as `user`, the password in the environment.
fn fleet(user: &TempUser, db: &str, args: &[&str]) -> Output {
    let t = support::mysql_target();
    let url = format!("mysql://{}@{}:{}/{db}", user.name, t.host, t.port);
    Command::new(bin())
        .arg("fleet")
        .args(args)
        .args(["--witness", &url, "--witness-tls", "off"])
        .env("OMS_WITNESS_PASSWORD", &user.password)
        .env_remove("OMS_UPGRADE_WITNESS")
        .output()
        .unwrap()
}

/// The run kinds: fifteen upgrades, five rollbacks from different points, one failed run.
fn kinds() -> Vec<RecordedRun> {
    let mut k = vec![RecordedRun::Upgrade; 15];
    k.extend([
        RecordedRun::RollbackBefore(StepKey::Complete),
        RecordedRun::RollbackBefore(StepKey::CreateNewContainer),
        RecordedRun::RollbackBefore(StepKey::StopOldContainer),
        RecordedRun::RollbackBefore(StepKey::ConfirmHealth),
        RecordedRun::RollbackBefore(StepKey::Complete),
    ]);
    k.push(RecordedRun::FailedCreate);
    k
}

/// Replaces every row of the ledger whose records were `old` by `new` (same seqs), as an
/// administrator with UPDATE could.
async fn replace_rows(db: &str, old: &[Record], new: &[Record]) {
    let mut c = admin().await;
    c.query_drop(format!("USE `{db}`")).await.unwrap();
    for (o, n) in old.iter().zip(new) {
        c.exec_drop(
            "UPDATE `witness_records` SET `stored` = ?, `hash` = ? \
             WHERE `ledger_id` = ? AND `seq` = ? AND `hash` = ?",
            (
                n.stored.clone(),
                n.hash.0.to_vec(),
                o.ledger_id.as_bytes().to_vec(),
                o.seq,
                o.hash.0.to_vec(),
            ),
        )
        .await
        .unwrap();
    }
}

fn state_entry(state: &Path, ledger: &str) -> serde_json::Value {
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state).unwrap()).unwrap();
    s["ledgers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["ledger_id"] == ledger)
        .cloned()
        .unwrap_or_else(|| panic!("{ledger} not in the state file: {s}"))
}

fn ledger_json<'a>(v: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    v["ledgers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["ledger_id"] == id)
        .unwrap_or_else(|| panic!("{id} not in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_one_ledgers_verify_and_the_state_file_catches_an_administrator() {
    let (db, writer) = witness_db("fleet").await;
    let name = db.name.clone();
    let auditor = TempUser::create("fleet_a", |a| schema::auditor_grant(&name, a)).await;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = SimConfig::new("3.3.0".parse().unwrap(), "3.3.1".parse().unwrap());
    let w = MysqlWitness::new(writer.target(), db.name.clone());
    let mut ledgers: Vec<(PathBuf, Vec<Record>, Phase)> = Vec::new();
    for (i, how) in kinds().into_iter().enumerate() {
        let dir = tmp.path().join(format!("ledger-{i:02}"));
        let phase = record_run(&cfg, &dir, how).unwrap();
        let records = records_of(&dir);
        w.push(&format!("node-{i:02}"), &records).await.unwrap();
        ledgers.push((dir, records, phase));
    }
    let phases: Vec<Phase> = ledgers.iter().map(|l| l.2).collect();
    assert_eq!(
        phases.iter().filter(|p| **p == Phase::Completed).count(),
        15
    );
    assert_eq!(
        phases.iter().filter(|p| **p == Phase::RolledBack).count(),
        5,
        "{phases:?}"
    );
    let id = |i: usize| ledgers[i].1[0].ledger_id.to_string();

    // Every ledger verifies from the witness alone; the state file records every head.
    let state = tmp.path().join("fleet.state");
    let state_arg = state.to_str().unwrap();
    let out = fleet(
        &auditor,
        &db.name,
        &["verify", "--state", state_arg, "--json"],
    );
    assert!(out.status.success(), "{}", show(&out));
    let v = json_of(&out.stdout);
    assert_eq!(
        (v["ok"].as_bool(), v["ledger_count"].as_u64()),
        (Some(true), Some(21))
    );
    for (i, (_, records, phase)) in ledgers.iter().enumerate() {
        let l = ledger_json(&v, &id(i));
        assert_eq!(l["node"], format!("node-{i:02}"));
        assert_eq!(l["verified"].as_u64(), Some(records.len() as u64));
        assert_eq!(l["summary"]["phase"], serde_json::to_value(phase).unwrap());
        assert_eq!(l["summary"]["source_version"], "3.3.0");
        assert_eq!(
            state_entry(&state, &id(i))["seq"].as_u64(),
            Some(records.len() as u64)
        );
    }
    assert!(ledger_json(&v, &id(0))["summary"]["t2"].is_string());
    assert!(ledger_json(&v, &id(15))["summary"]["t3"].is_string());
    let failed = ledger_json(&v, &id(20));
    assert_ne!(failed["summary"]["phase"], "completed", "{failed}");

    // The table, the change board's document and the export.
    let out = fleet(&auditor, &db.name, &["list"]);
    assert!(out.status.success(), "{}", show(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("node-20") && table.contains("3.3.0 → 3.3.1"),
        "{table}"
    );
    assert!(table.contains("21 ledger(s), all verified"), "{table}");
    let html = tmp.path().join("fleet.html");
    let out = fleet(
        &auditor,
        &db.name,
        &[
            "report",
            "--format",
            "html",
            "--out",
            html.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", show(&out));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("id=\"verdict\">VERIFIED") && page.contains("rolled back"));
    let export = tmp.path().join("fleet.jsonl");
    let out = fleet(
        &auditor,
        &db.name,
        &["export", "--out", export.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", show(&out));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("ledger-schema/verify_export.py");
    let py = Command::new(python())
        .arg(&script)
        .arg(&export)
        .args(["--fleet", "--json"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} ({e}); set OMS_TEST_PYTHON", python()));
    assert!(py.status.success(), "{}", show(&py));
    let p = json_of(&py.stdout);
    assert_eq!(
        (p["ok"].as_bool(), p["ledger_count"].as_u64()),
        (Some(true), Some(21)),
        "{p}"
    );

    // The administrator: one byte of ledger 3's record 5 altered (UPDATE as admin) ...
    let mut altered = ledgers[3].1[4].clone();
    altered.stored[100] ^= 1;
    replace_rows(
        &db.name,
        &ledgers[3].1[4..5],
        std::slice::from_ref(&altered),
    )
    .await;
    // ... ledger 7 rewritten consistently (another operator, every hash and link redone) ...
    let before7 = state_entry(&state, &id(7));
    forge::rewrite_chain(&ledgers[7].0, |r| r.operator = "mallory".into());
    let forged = records_of(&ledgers[7].0);
    replace_rows(&db.name, &ledgers[7].1, &forged).await;
    // ... and ledger 12's last two rows deleted.
    let mut c = admin().await;
    let last = ledgers[12].1.len() as u64;
    c.exec_drop(
        format!(
            "DELETE FROM `{}`.`witness_records` WHERE `ledger_id` = ? AND `seq` >= ?",
            db.name
        ),
        (ledgers[12].1[0].ledger_id.as_bytes().to_vec(), last - 1),
    )
    .await
    .unwrap();

    // Rows alone: the altered byte shows; the rewrite and the cut tail do not.
    let out = fleet(&auditor, &db.name, &["verify", "--json"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let v = json_of(&out.stdout);
    assert_eq!(ledger_json(&v, &id(3))["problem"]["kind"], "hash_mismatch");
    assert_eq!(ledger_json(&v, &id(3))["problem"]["seq"], 5);
    assert!(
        ledger_json(&v, &id(7))["problem"].is_null(),
        "a consistent rewrite passes the rows"
    );
    assert!(
        ledger_json(&v, &id(12))["problem"].is_null(),
        "a cut tail passes the rows"
    );

    // With the state file: all three named, the others still pass.
    let out = fleet(
        &auditor,
        &db.name,
        &["verify", "--state", state_arg, "--json"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let v = json_of(&out.stdout);
    assert_eq!(v["failed"].as_u64(), Some(3), "{v}");
    assert_eq!(ledger_json(&v, &id(3))["state"]["kind"], "not_extended");
    assert_eq!(ledger_json(&v, &id(7))["state"]["kind"], "rewritten");
    assert_eq!(ledger_json(&v, &id(12))["state"]["kind"], "truncated");
    assert_eq!(ledger_json(&v, &id(0))["state"]["kind"], "extends");
    // The refused ledger keeps its recorded head: verifying again does not forget.
    assert_eq!(state_entry(&state, &id(7)), before7);
    let out = fleet(&auditor, &db.name, &["verify", "--state", state_arg]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("FAILED: state rewritten"), "{text}");
    assert!(text.contains("3 NOT verified"), "{text}");

    // A state file is input: another version is refused before the witness is read.
    let bad = tmp.path().join("bad.state");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&state)
            .unwrap()
            .replace("\"version\": 1", "\"version\": 9"),
    )
    .unwrap();
    let out = fleet(
        &auditor,
        &db.name,
        &["verify", "--state", bad.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(5), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("version 9"),
        "{}",
        show(&out)
    );
}
