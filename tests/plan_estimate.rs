//! Issue 16, "Plan the window": `init` measures the metadata databases and probes the
//! server's read rate, records a downtime estimate in the plan, and `plan` shows it before
//! anything changed; after the run, `report` sets it against what the ledger recorded. A
//! ledger recorded before issue 16 (its plan without the estimate) still shows `plan` and
//! `report`, without an estimate. Real Docker, MariaDB and the OMS emulator.

mod support;

use oms_upgrade::events::{self, Event, PlanExt};
use support::forge;
use support::upgrade::{Run, json_of, ok};

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
