//! Issue 16, "Plan the window": `init` measures the metadata databases and probes the
//! server's read rate, records a downtime estimate in the plan, and `plan` shows it before
//! anything changed; after the run, `report` sets it against what the ledger recorded. A
//! ledger recorded before issue 16 (its plan without the estimate) still shows `plan` and
//! `report`, without an estimate. Real Docker, MariaDB and the OMS emulator.

mod support;

use oms_upgrade::events::{self, Event, PlanExt};
use support::emulator as emu;
use support::forge;
use support::upgrade::{Run, cli, init_cmd, json_of, ok};

/// The estimate parts of `plan --json` on `ledger`: kind, milliseconds, basis (a word, or
/// the learned basis as JSON).
fn planned_parts(ledger: &std::path::Path) -> Vec<(String, u64, serde_json::Value)> {
    let plan = json_of(&ok(cli(ledger).args(["--json", "plan"])).stdout);
    plan["estimate"]["parts"]
        .as_array()
        .unwrap_or_else(|| panic!("an estimate: {plan:#}"))
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().unwrap().to_string(),
                p["ms"].as_u64().unwrap(),
                p["basis"].clone(),
            )
        })
        .collect()
}

/// `report --format json`: one pretty-printed document.
fn report_json(run: &Run) -> serde_json::Value {
    serde_json::from_slice(&ok(run.cli().args(["report", "--format", "json"])).stdout).unwrap()
}

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_shows_the_estimate_and_report_sets_it_against_the_run() {
    let run = Run::planned_seeded(Some("4M")).await;

    // `plan` before anything changed: the estimate, its dump part measured, the rest
    // labelled as assumptions.
    let plan = json_of(&ok(run.cli().args(["--json", "plan"])).stdout);
    let e = &plan["estimate"];
    assert!(e.is_object(), "{plan:#}");
    let parts: Vec<(&str, &str)> = e["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["kind"].as_str().unwrap(), p["basis"].as_str().unwrap()))
        .collect();
    assert_eq!(
        parts,
        [
            ("prune", "assumed"),
            ("dump", "measured"),
            ("container", "assumed"),
            ("docker_init", "assumed"),
            ("oms_startup", "assumed")
        ],
        "{e:#}"
    );
    assert_eq!(e["databases"].as_array().unwrap().len(), 3, "{e:#}");
    let data: u64 = e["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["data_bytes"].as_u64().unwrap())
        .sum();
    assert!(data >= 4 << 20, "4 MiB were seeded, measured {data}: {e:#}");
    assert!(e["probe"]["bytes"].as_u64().unwrap() > 0, "{e:#}");
    assert!(e["total_ms"].as_u64().unwrap() > 0, "{e:#}");
    let shown = text(&ok(run.cli().arg("plan")));
    assert!(
        shown.contains("Estimated downtime (T1 -> T2) for this node:"),
        "{shown}"
    );
    assert!(
        shown.contains("assumed") && shown.contains("measured"),
        "{shown}"
    );

    run.ok(&["run", "--yes"]).await;

    // The report: estimate against actual, every part reached by the run has an actual.
    let report = report_json(&run);
    let rows = report["estimate"]["rows"]
        .as_array()
        .expect("estimate rows");
    let got: Vec<&str> = rows.iter().map(|r| r["part"].as_str().unwrap()).collect();
    assert_eq!(
        got,
        [
            "prune",
            "dump",
            "container",
            "docker_init",
            "oms_startup",
            "window"
        ]
    );
    for r in rows {
        assert!(r["actual_ms"].as_i64().is_some(), "{r:#}");
    }
    let window = rows.last().unwrap()["actual_ms"].as_i64().unwrap();
    assert_eq!(
        Some(window),
        report["times"]["downtime"]["duration_ms"].as_i64(),
        "{report:#}"
    );
    let md = text(&ok(run.cli().arg("report")));
    assert!(md.contains("## Estimate against actual"), "{md}");
    assert!(md.contains("| T1 -> T2 (the whole window) |"), "{md}");

    // The same ledger as a build before issue 16 would have written it: the plan record
    // without the estimate (the chain re-linked, as `forge` does).
    let stripped = forge::rewrite_chain(&run.ledger(), |r| {
        if r.event_type != "run.planned" {
            return;
        }
        let Event::RunPlanned { mut plan, .. } =
            events::decode(&r.event_type, r.schema_version, &r.payload).unwrap()
        else {
            panic!("run.planned decodes to a plan");
        };
        plan.ext.retain(|x| !matches!(x, PlanExt::Estimate(_)));
        let enc = events::encode(&Event::planned(*plan));
        r.schema_version = enc.schema_version;
        r.payload = enc.payload;
    });
    assert!(stripped > 0);
    run.verify_ledger();
    let plan = json_of(&ok(run.cli().args(["--json", "plan"])).stdout);
    assert!(plan["estimate"].is_null(), "{plan:#}");
    let shown = text(&ok(run.cli().arg("plan")));
    assert!(shown.contains("No downtime estimate"), "{shown}");
    let report = report_json(&run);
    assert!(report.get("estimate").is_none(), "{report:#}");
    assert_eq!(report["outcome"]["phase"], "completed");
    let md = text(&ok(run.cli().arg("report")));
    assert!(!md.contains("Estimate against actual"), "{md}");
}

/// issue 16, second pass: a second upgrade planned on the host learns the container,
/// `docker_init.sh` and start-up figures from the first one's ledger, which lies beside
/// its own: each is what the first run's report shows as actual, labelled `earlier runs
/// (n=1, to 3.3.1)`. A folder that is not a ledger, a damaged one, a run that has not
/// completed and a run planned on another host teach nothing and do not stop `init`.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_plan_learns_init_and_start_up_from_the_first_run() {
    let first = Run::planned().await;
    first.ok(&["run", "--yes"]).await;
    let report = report_json(&first);
    let actual = |part: &str| -> u64 {
        report["estimate"]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["part"] == part)
            .and_then(|r| r["actual_ms"].as_u64())
            .unwrap_or_else(|| panic!("{part}'s actual: {report:#}"))
    };

    // Beside the first ledger: its backups (not a ledger) and a damaged ledger.
    let damaged = first.tmp.join("ledger-damaged");
    std::fs::create_dir(&damaged).unwrap();
    std::fs::write(damaged.join("conf"), b"not sled").unwrap();
    std::fs::write(damaged.join("db"), b"not sled either").unwrap();

    // A second node planned on another host: the first run is not its host's, and teaches
    // nothing (nor does this plan's own unfinished ledger teach the next one).
    let node = emu::start_old_oms().await;
    let elsewhere = first.tmp.join("ledger-elsewhere");
    ok(
        init_cmd(&node, &elsewhere, &first.tmp.join("backups-elsewhere"))
            .await
            .env("OMS_UPGRADE_HOST", "another-host"),
    );
    let parts = planned_parts(&elsewhere);
    for (kind, _, basis) in &parts[2..] {
        assert_eq!(basis, "assumed", "{kind}: {parts:?}");
    }

    // The same node planned on this host: learned from the first run.
    let second = first.tmp.join("ledger-2");
    ok(&mut init_cmd(&node, &second, &first.tmp.join("backups-2")).await);
    let parts = planned_parts(&second);
    let learned = serde_json::json!({"earlier_runs": {"runs": 1, "version": "3.3.1"}});
    let kinds: Vec<&str> = parts.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(
        kinds,
        ["prune", "dump", "container", "docker_init", "oms_startup"]
    );
    assert_eq!(parts[0].2, "assumed", "{parts:?}");
    assert_eq!(parts[1].2, "measured", "{parts:?}");
    for (kind, ms, basis) in &parts[2..] {
        assert_eq!(basis, &learned, "{kind}: {parts:?}");
        assert_eq!(*ms, actual(kind), "{kind}: {parts:?}");
    }
    let shown = String::from_utf8_lossy(&ok(cli(&second).arg("plan")).stdout).into_owned();
    assert!(shown.contains("earlier runs (n=1, to 3.3.1)"), "{shown}");

    // The first run's own report is unchanged by all this, and the second plan's report
    // (before its run) names the basis in its estimate rows.
    let md = String::from_utf8_lossy(&ok(cli(&second).arg("report")).stdout).into_owned();
    assert!(
        md.contains("| docker_init.sh | ") && md.contains("| earlier runs (n=1, to 3.3.1) |"),
        "{md}"
    );
    let rows: serde_json::Value =
        serde_json::from_slice(&ok(cli(&second).args(["report", "--format", "json"])).stdout)
            .unwrap();
    let row = rows["estimate"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["part"] == "docker_init")
        .cloned()
        .unwrap();
    assert_eq!(row["basis"], "earlier_runs", "{row:#}");
    assert_eq!(row["basis_text"], "earlier runs (n=1, to 3.3.1)", "{row:#}");
    first.verify_ledger();
}
