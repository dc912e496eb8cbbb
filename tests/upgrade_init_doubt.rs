//! Issue 12, items 1 and 9 (first point): `docker_init.sh` left in doubt by a crash, on a
//! node that logs it under a rotated name (`docker_init.log.<YYYY-MM-DD.HH:MM:SS>`, as
//! obdiag's OMS log gatherer documents), is never run again on a guess: the resume records
//! what it found, `run` stops naming the `resolve` command, and only an operator's recorded
//! decision lets the run go on. Also: `resolve` refuses bad requests without touching the
//! ledger, and the init runs in `/root` as the runbook's `cd /root; sh docker_init.sh` does.

mod support;

use std::os::unix::process::ExitStatusExt;

use oms_upgrade::events::{Event, Finding, StepKey};
use support::upgrade::{EventWatch, Run, count_events, error_line, json_of, output, show};

/// `oms-upgrade <args>` with `point` armed to abort; asserts it died there.
async fn crash_at(run: &Run, args: &[&str], point: &str) {
    let out = output(
        run.cli()
            .env("FAILPOINTS", format!("{point}=return"))
            .args(args),
    )
    .await;
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "oms-upgrade {args:?} did not die at {point}:\n{}",
        show(&out)
    );
}

/// The number of records in the ledger.
fn records(run: &Run) -> usize {
    run.replay().0.len()
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_init_with_a_rotated_log_is_never_rerun_without_a_decision() {
    support::upgrade::require_failpoints();
    let run = Run::planned().await;
    run.node.host.set_init_log_rotated(true);
    let watch = EventWatch::start(&run.node).await;
    // docker_init.sh ran to its end; the tool died before recording the outcome.
    crash_at(&run, &["run", "--yes"], "after-effect:docker-init").await;
    let rotated: Vec<String> = run
        .node
        .host
        .docker_init_log_names()
        .into_iter()
        .filter(|n| n.starts_with("docker_init.log."))
        .collect();
    assert_eq!(rotated.len(), 1, "{rotated:?}");

    // The resume cannot prove "never started": it records the evidence and stops.
    let out = output(run.cli().args(["run", "--yes"])).await;
    assert_eq!(out.status.code(), Some(7), "{}", show(&out));
    let err = error_line(&out);
    assert!(
        err.contains("oms-upgrade resolve docker-init --as done|not-done --reason"),
        "{err}"
    );
    assert!(
        err.contains(&rotated[0]),
        "the evidence names the log: {err}"
    );
    let status = run.status();
    assert_eq!(status["next"]["next"], "blocked", "{status}");
    assert!(
        status["next"]["reason"]
            .as_str()
            .unwrap()
            .contains("oms-upgrade resolve docker-init"),
        "{status}"
    );
    let (_, state) = run.replay();
    let init = state
        .reconciliations()
        .into_iter()
        .find(|a| a.key == StepKey::RunDockerInit)
        .expect("docker-init reconciled");
    assert!(
        matches!(
            &init.outcome,
            Some(oms_upgrade::replay::Outcome::Reconciled {
                finding: Finding::Undecided { .. },
                ..
            })
        ),
        "{:?}",
        init.outcome
    );

    // The operator's decision is recorded, with who and why; then the run completes.
    let out = run
        .ok(&[
            "resolve",
            "docker-init",
            "--as",
            "done",
            "--reason",
            "read docker_init.log.* by hand: it ends with the success marker",
        ])
        .await;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Recorded"),
        "{}",
        show(&out)
    );
    let (recs, _) = run.replay();
    let resolved = recs
        .iter()
        .find_map(|r| match &r.event {
            Event::StepResolved(d) => Some((r.operator.clone(), d.clone())),
            _ => None,
        })
        .expect("step.resolved recorded");
    assert_eq!(resolved.0, "tester");
    assert_eq!(resolved.1.key, StepKey::RunDockerInit);
    assert!(resolved.1.reason.contains("by hand"));
    run.ok(&["run", "--yes"]).await;
    let events = watch.stop().await;
    assert_eq!(run.end_state().await.phase, "completed");
    let new = run.run_containers().await;
    assert_eq!(new.len(), 1);
    assert_eq!(
        count_events(&events, &new[0].id, "exec_start: bash /root/docker_init.sh"),
        1,
        "docker_init.sh ran exactly once: {events:?}"
    );
    assert_eq!(
        run.node
            .host
            .docker_init_log_names()
            .iter()
            .filter(|n| n.starts_with("docker_init.log."))
            .count(),
        1
    );
    run.verify_ledger();
    let out = output(run.cli().args(["--json", "ledger", "verify", "--live"])).await;
    let v = json_of(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["live"]["drifts"], serde_json::json!([]), "{v}");
}

/// `resolve` refuses, with exit code and a message naming what was wrong, a step that is not
/// in doubt, an unknown step, an empty reason and a finished run; the ledger is unchanged.
#[tokio::test(flavor = "multi_thread")]
async fn resolve_refuses_bad_requests_and_changes_nothing() {
    let run = Run::planned().await;
    let before = records(&run);
    let cases: [(&[&str], i32, &str); 4] = [
        (
            &["resolve", "docker-init", "--as", "done", "--reason", "x"],
            7,
            "docker-init is not awaiting a decision",
        ),
        (
            &["resolve", "docker-inits", "--as", "done", "--reason", "x"],
            5,
            "unknown step `docker-inits`",
        ),
        (
            &["resolve", "docker-init", "--as", "done", "--reason", "  "],
            5,
            "the reason is empty",
        ),
        (
            &["resolve", "docker-init", "--as", "maybe", "--reason", "x"],
            2,
            "maybe",
        ),
    ];
    for (args, code, want) in cases {
        let out = output(run.cli().args(args)).await;
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", show(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert_eq!(records(&run), before, "{args:?} changed the ledger");
    }
    run.ok(&["run", "--yes"]).await;
    let before = records(&run);
    let out = output(run.cli().args([
        "--json",
        "resolve",
        "docker-init",
        "--as",
        "not-done",
        "--reason",
        "x",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(7), "{}", show(&out));
    let v = json_of(&out.stdout);
    assert_eq!(v["ok"], false, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the run is over"),
        "{v}"
    );
    assert_eq!(records(&run), before);
}

/// The runbook runs `cd /root; sh docker_init.sh`: the step's exec runs in `/root`, as the
/// emulator records, and `plan` shows it.
#[tokio::test(flavor = "multi_thread")]
async fn docker_init_runs_in_root() {
    let run = Run::planned().await;
    let plan = String::from_utf8_lossy(&run.ok(&["plan"]).await.stdout).into_owned();
    assert!(plan.contains("docker exec -w /root"), "{plan}");
    run.ok(&["run", "--yes"]).await;
    assert_eq!(run.node.host.docker_init_cwd().as_deref(), Some("/root"));
}
