//! HA mode `manual`: the tool prints the OMS console instructions, waits until the stored
//! `ha.config` changes as asked, and records the operator's attestation. The "operator" here
//! follows the printed instructions by editing the stored value, as the console would.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use mysql_async::prelude::Queryable;
use oms_upgrade::events::{StepFacts, StepKey};
use support::emulator as emu;
use support::upgrade::{cli, init_args, json_of, ok};

/// How much more than asked the "operator" types for `refetchStoreIntervalMin`.
const OPERATOR_EXTRA_MIN: u64 = 15;

/// The `(key, value)` pairs of "set `key` to `value`" in an instruction line.
fn requested(line: &str) -> Vec<(String, serde_json::Value)> {
    line.split("set `")
        .skip(1)
        .filter_map(|part| {
            let (key, rest) = part.split_once("` to `")?;
            let (value, _) = rest.split_once('`')?;
            Some((key.to_string(), serde_json::from_str(value).ok()?))
        })
        .collect()
}

/// Does what the console's "edit value" dialog does: changes the named fields of ha.config.
async fn console_edit(rm: &str, fields: &[(String, serde_json::Value)]) {
    let pool = support::mysql_pool().await;
    let mut c = pool.get_conn().await.unwrap();
    let sql = format!("SELECT cfg_value FROM `{rm}`.oms_normal_config WHERE cfg_name='ha.config'");
    let current: String = c.query_first(sql).await.unwrap().unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&current).unwrap();
    for (k, val) in fields {
        v[k] = val.clone();
    }
    c.exec_drop(
        format!("UPDATE `{rm}`.oms_normal_config SET cfg_value=? WHERE cfg_name='ha.config'"),
        (v.to_string(),),
    )
    .await
    .unwrap();
    drop(c);
    pool.disconnect().await.ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn manual_ha_mode_waits_for_the_console_and_records_the_attestation() {
    let node = emu::start_old_oms().await;
    // HA is on, as on a production node (the emulator installs it off).
    console_edit(
        &node.databases().rm,
        &[("enable".into(), serde_json::json!(true))],
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let ledger = tmp.path().join("ledger");
    let args = init_args(
        &node,
        &tmp.path().join("backups"),
        &[("--ha-mode", "manual")],
    )
    .await;
    ok(cli(&ledger).args(&args));

    let mut child = std::process::Command::new(support::upgrade::bin())
        .env("OMS_UPGRADE_LEDGER", &ledger)
        .env("OMS_UPGRADE_OPERATOR", "tester")
        .env("OMS_UPGRADE_HOST", "ci-host")
        .env_remove("OMS_META_PASSWORD")
        .env_remove("FAILPOINTS")
        .args(["run", "--yes"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let rm = node.databases().rm;
    let mut instructions = Vec::new();
    let mut transcript = String::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        transcript.push_str(&line);
        transcript.push('\n');
        if line.starts_with("ACTION NEEDED:") {
            let fields = requested(&line);
            assert!(!fields.is_empty(), "no field to set in: {line}");
            // The operator types a larger refetch interval than asked: a longer window
            // covers the downtime too, so it is accepted (issue 12.8) and recorded.
            let typed: Vec<_> = fields
                .iter()
                .map(|(k, v)| match (k.as_str(), v.as_u64()) {
                    ("refetchStoreIntervalMin", Some(n)) => {
                        (k.clone(), serde_json::json!(n + OPERATOR_EXTRA_MIN))
                    }
                    _ => (k.clone(), v.clone()),
                })
                .collect();
            console_edit(&rm, &typed).await;
            instructions.push(fields);
        }
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "run failed:\n{transcript}");

    // Two console edits were asked for: HA off before the stop, HA on (with the refetch
    // interval) after the upgrade.
    assert_eq!(instructions.len(), 2, "{transcript}");
    assert!(instructions[0].contains(&("enable".into(), serde_json::json!(false))));
    assert!(instructions[1].contains(&("enable".into(), serde_json::json!(true))));
    assert!(
        instructions[1]
            .iter()
            .any(|(k, _)| k == "refetchStoreIntervalMin"),
        "{transcript}"
    );

    // Each change is recorded as the operator's attestation with the value seen stored.
    let state = oms_upgrade::history::load_dir(&ledger, oms_upgrade::history::Verify::Chain)
        .unwrap()
        .state;
    assert_eq!(state.phase().to_string(), "completed");
    match state.facts(StepKey::DisableHa) {
        Some(StepFacts::HaDisabled(f)) => {
            let a = f.attestation.as_ref().expect("attestation recorded");
            assert_eq!(a.by, "tester");
            assert!(
                f.written_json
                    .as_deref()
                    .is_some_and(|j| j.contains("\"enable\":false")),
                "{f:?}"
            );
        }
        other => panic!("disable-ha facts: {other:?}"),
    }
    match state.facts(StepKey::EnableHa) {
        Some(StepFacts::HaEnabled(f)) => {
            assert!(f.attestation.is_some());
            let written: serde_json::Value = serde_json::from_str(&f.written_json).unwrap();
            assert_eq!(written["enable"], true);
            let d = f.refetch.as_ref().unwrap();
            let minutes = d.interval_minutes.unwrap();
            assert_eq!(
                written["refetchStoreIntervalMin"],
                serde_json::json!(minutes)
            );
            // What the operator set, above the computed value, is what the decision records.
            let asked = instructions[1]
                .iter()
                .find(|(k, _)| k == "refetchStoreIntervalMin")
                .and_then(|(_, v)| v.as_u64())
                .unwrap();
            assert_eq!(minutes, asked + OPERATOR_EXTRA_MIN);
            assert!(d.reasoning.contains("the operator set"), "{}", d.reasoning);
        }
        other => panic!("enable-ha facts: {other:?}"),
    }
    let verify = json_of(&ok(cli(&ledger).args(["--json", "ledger", "verify"])).stdout);
    assert_eq!(verify["ok"], true);
}
