//! Crash matrix: the `oms-upgrade` binary (built with the `failpoints` feature) is aborted
//! at every step of the upgrade and of the rollback, at each of the three points where a
//! crash matters: before the side effect (intent recorded), after the side effect but
//! before its outcome is recorded, and after the outcome. Each time the next `run` (or
//! `rollback`) must resume, look at reality for the step left in doubt, record what it
//! found, and go on, ending exactly where an uninterrupted run ends, with every action
//! done exactly once (Docker's own event stream is the witness) and a ledger that verifies.
//! The rollback's walk also crashes inside each `rollback-recreate-*`, between its DROP and
//! its CREATE (`mid-effect`), where the database is absent.
//! Also: real `kill -9` at random moments during an upgrade, each resumed to completion.
//!
//! One upgrade walks most of the matrix: each resume gets every point not yet fired, so it
//! stops at the next one it reaches. A step whose side effect is found done after an
//! "after-effect" crash is never performed again, so its "after-outcome" point can only be
//! reached in a second walk that crashes after outcomes only.

mod support;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use oms_upgrade::events::{MetaDb, StepKey};
use support::upgrade::{
    EndState, EventWatch, Run, assert_refetch_covers, count_events, output, require_failpoints,
    show, tally,
};

const PHASES: [&str; 3] = ["before-effect", "after-effect", "after-outcome"];

/// The upgrade's steps (3.3.0 -> 3.3.1).
fn upgrade_steps() -> Vec<String> {
    let mut v = vec![
        "disable-ha",
        "pre-stop-check",
        "stop-old",
        "old-restart-off",
        "prune-heartbeat",
    ];
    v.extend(["dump-rm", "dump-cm", "dump-cm_hb"]);
    v.extend([
        "rename-old",
        "create-new",
        "start-new",
        "docker-init",
        "confirm-health",
        "enable-ha",
        "drop-pruned-heartbeat",
        "complete",
    ]);
    v.into_iter().map(String::from).collect()
}

/// The rollback's steps after a completed upgrade.
fn rollback_steps() -> Vec<String> {
    let mut v: Vec<String> = [
        StepKey::RollbackVerifyDumps,
        StepKey::RollbackDisableHa,
        StepKey::StopNewContainer,
        StepKey::RenameNewAside,
        StepKey::RenameOldBack,
    ]
    .iter()
    .map(|k| k.to_string())
    .collect();
    for db in MetaDb::ALL {
        v.push(StepKey::RecreateDatabase { db }.to_string());
        v.push(StepKey::Restore { db }.to_string());
    }
    v.extend(
        [
            StepKey::RollbackRestartPolicy,
            StepKey::RestartOldContainer,
            StepKey::ConfirmOldHealth,
            StepKey::RollbackEnableHa,
            StepKey::RollbackComplete,
        ]
        .iter()
        .map(|k| k.to_string()),
    );
    v
}

fn points(steps: &[String], phases: &[&str]) -> Vec<String> {
    let mut v = Vec::new();
    for s in steps {
        for p in phases {
            v.push(format!("{p}:{s}"));
        }
    }
    v
}

/// Runs `args` on `run`'s ledger with every point in `armed` set to abort
/// ([`support::upgrade::crash_once`]).
async fn crash_once(run: &Run, args: &[&str], armed: &[String]) -> Option<String> {
    support::upgrade::crash_once(run.cli(), args, armed).await
}

/// Resumes `args` with the points not yet fired until a resume runs to its end; returns
/// the points that fired, in order. Then `args` again without failpoints must succeed.
async fn walk(run: &Run, args: &[&str], targets: Vec<String>) -> Vec<String> {
    let mut armed = targets;
    let mut fired = Vec::new();
    while let Some(p) = crash_once(run, args, &armed).await {
        armed.retain(|a| *a != p);
        fired.push(p);
    }
    run.ok(args).await;
    fired
}

/// The ledger shows, per step: no failure, exactly one success, one reconciliation per
/// crash between its intent and its outcome, and one more intent per reconciliation that
/// found the step not done.
fn assert_attempts(run: &Run, steps: &[String], fired: &[String]) {
    let (_, state) = run.replay();
    let t = tally(&state);
    for s in steps {
        let tt = t.get(s).unwrap_or_else(|| panic!("step {s} never ran"));
        let in_between = fired
            .iter()
            .filter(|p| {
                **p == format!("before-effect:{s}")
                    || **p == format!("mid-effect:{s}")
                    || **p == format!("after-effect:{s}")
            })
            .count() as u32;
        assert_eq!(tt.failed, 0, "{s}: {tt:?}");
        assert_eq!(
            tt.done + tt.reconciled_done,
            1,
            "{s} succeeded once: {tt:?}"
        );
        assert_eq!(
            tt.reconciled_done + tt.reconciled_not_done,
            in_between,
            "{s}: one reconciliation per crash in doubt: {tt:?}"
        );
        assert_eq!(tt.intents, 1 + tt.reconciled_not_done, "{s}: {tt:?}");
        if fired.contains(&format!("before-effect:{s}")) {
            // Nothing happened before the side effect: reality must say "not done".
            assert!(tt.reconciled_not_done >= 1, "{s}: {tt:?}");
        }
    }
    assert_eq!(state.in_doubt(), None);
}

/// Every action of the upgrade happened once, as Docker saw it: the old container was
/// stopped and renamed once, one new container was created, started once, and
/// docker_init.sh was executed in it once.
fn assert_upgrade_actions_once(run: &Run, events: &[(String, String)], new_id: &str) {
    let old = &run.node.id;
    assert_eq!(count_events(events, old, "stop"), 1, "{events:?}");
    assert_eq!(count_events(events, old, "rename"), 1, "{events:?}");
    // `docker update` (old-restart-off) is not counted here: this node's policy is `no`
    // already, so the step changes nothing and a crash around it cannot be told from
    // reality; it is set again, harmlessly. tests/upgrade_inherit.rs counts exactly one
    // update on a node started with `--restart unless-stopped`.
    assert_eq!(count_events(events, new_id, "create"), 1, "{events:?}");
    assert_eq!(count_events(events, new_id, "start"), 1, "{events:?}");
    assert_eq!(
        count_events(events, new_id, "exec_start: bash /root/docker_init.sh"),
        1,
        "{events:?}"
    );
    let created = events.iter().filter(|(_, a)| a == "create").count();
    assert_eq!(created, 1, "one container created: {events:?}");
}

/// Upgrade, crashing at the given points; returns the end state and the points fired.
async fn upgrade_walk(targets: Vec<String>) -> (Run, EndState, Vec<String>) {
    let run = Run::planned().await;
    let watch = EventWatch::start(&run.node).await;
    let fired = walk(&run, &["run", "--yes"], targets).await;
    let end = run.end_state().await;
    let events = watch.stop().await;
    let new = run.run_containers().await;
    assert_eq!(new.len(), 1, "exactly one new container");
    assert_upgrade_actions_once(&run, &events, &new[0].id);
    assert_attempts(&run, &upgrade_steps(), &fired);
    run.assert_dumps_once();
    assert_refetch_covers(&run).await;
    run.verify_ledger();
    (run, end, fired)
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_matrix_upgrade() {
    require_failpoints();
    let steps = upgrade_steps();
    let all = points(&steps, &PHASES);
    let (reference, a, b) = tokio::join!(
        upgrade_walk(vec![]),
        upgrade_walk(all.clone()),
        upgrade_walk(points(&steps, &["after-outcome"])),
    );
    let (_ref_run, ref_end, ref_fired) = reference;
    assert!(ref_fired.is_empty());
    assert_eq!(ref_end.phase, "completed");
    assert_matrix(&steps, &all, (a.2, a.1), (b.2, b.1), &ref_end, "run");
}

/// Issue 12.1, the crash matrix's `docker-init` on a node that logs it under a rotated
/// name (`docker_init.log.<YYYY-MM-DD.HH:MM:SS>`). Before the effect nothing changed in the
/// logs folder: proven never started, it runs once. After the effect a rotated log changed:
/// the step is undecided, every resume stops (exit 7) naming `resolve` without running it
/// again, and only the recorded decision lets the run complete; docker_init.sh ran once.
#[tokio::test(flavor = "multi_thread")]
async fn crash_matrix_docker_init_in_doubt_with_a_rotated_log() {
    require_failpoints();
    async fn one(point: &str) -> (Run, Vec<(String, String)>, String) {
        let run = Run::planned().await;
        run.node.host.set_init_log_rotated(true);
        let watch = EventWatch::start(&run.node).await;
        let fired = crash_once(&run, &["run", "--yes"], &[point.to_string()]).await;
        assert_eq!(fired.as_deref(), Some(point));
        let mut resumes = 0;
        loop {
            let out = output(run.cli().args(["run", "--yes"])).await;
            if out.status.success() {
                break;
            }
            assert_eq!(out.status.code(), Some(7), "{}", show(&out));
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("oms-upgrade resolve docker-init"),
                "{}",
                show(&out)
            );
            resumes += 1;
            if resumes == 2 {
                run.ok(&[
                    "resolve",
                    "docker-init",
                    "--as",
                    "done",
                    "--reason",
                    "docker_init.log.* ends with the success marker",
                ])
                .await;
            }
            assert!(resumes <= 2, "still blocked after the decision");
        }
        let events = watch.stop().await;
        let decided = run.replay().1.resolutions().len();
        (
            run,
            events,
            format!("{point}: resumes blocked {resumes}, decisions {decided}"),
        )
    }
    let ((before, before_events, b), (after, after_events, a)) = tokio::join!(
        one("before-effect:docker-init"),
        one("after-effect:docker-init")
    );
    assert_eq!(
        b,
        "before-effect:docker-init: resumes blocked 0, decisions 0"
    );
    assert_eq!(
        a,
        "after-effect:docker-init: resumes blocked 2, decisions 1"
    );
    for (run, events) in [(&before, &before_events), (&after, &after_events)] {
        assert_eq!(run.end_state().await.phase, "completed");
        let new = run.run_containers().await;
        assert_eq!(new.len(), 1);
        assert_upgrade_actions_once(run, events, &new[0].id);
        let t = tally(&run.replay().1);
        let init = &t["docker-init"];
        assert_eq!(init.failed, 0, "{init:?}");
        run.verify_ledger();
    }
    let t = tally(&before.replay().1);
    assert_eq!(
        (t["docker-init"].reconciled_not_done, t["docker-init"].done),
        (1, 1)
    );
    let t = tally(&after.replay().1);
    assert_eq!(
        (t["docker-init"].undecided, t["docker-init"].intents),
        (1, 1),
        "decided done: no second intent"
    );
}

/// The two crashing walks of a matrix against the uninterrupted one: walk A reached every
/// point before and after each side effect, walk B crashed after every outcome, together
/// they covered every point, and both end exactly like the uninterrupted `what`.
fn assert_matrix(
    steps: &[String],
    all: &[String],
    (a_fired, a_end): (Vec<String>, EndState),
    (b_fired, b_end): (Vec<String>, EndState),
    ref_end: &EndState,
    what: &str,
) {
    for p in points(steps, &["before-effect", "after-effect"]) {
        assert!(
            a_fired.contains(&p),
            "{p} never fired in walk A: {a_fired:?}"
        );
    }
    assert_eq!(b_fired, points(steps, &["after-outcome"]));
    let union: std::collections::BTreeSet<_> = a_fired
        .iter()
        .chain(&b_fired)
        .filter(|p| all.contains(p))
        .collect();
    assert_eq!(union.len(), all.len());
    assert_eq!(&a_end, ref_end, "walk A ends like the uninterrupted {what}");
    assert_eq!(&b_end, ref_end, "walk B ends like the uninterrupted {what}");
}

/// The crash points inside `rollback-recreate-*`, between its DROP and its CREATE (named
/// by the database in the adapter), each with the name the matrix gives it:
/// `mid-effect:<step>`.
fn drop_points(run: &Run) -> Vec<(String, String)> {
    let dbs = run.node.databases();
    MetaDb::ALL
        .iter()
        .map(|&db| {
            let name = match db {
                MetaDb::Rm => &dbs.rm,
                MetaDb::Cm => &dbs.cm,
                MetaDb::CmHb => &dbs.cm_hb,
            };
            (
                format!("after-drop:{name}"),
                format!("mid-effect:{}", StepKey::RecreateDatabase { db }),
            )
        })
        .collect()
}

/// Upgrade (uninterrupted), then roll back crashing at the given points, and (`mid`) also
/// between the DROP and the CREATE of each `rollback-recreate-*`. The points fired are
/// returned with the matrix's names.
async fn rollback_walk(targets: Vec<String>, mid: bool) -> (Run, EndState, Vec<String>) {
    let run = Run::planned().await;
    run.ok(&["run", "--yes"]).await;
    let new_id = run.run_containers().await[0].id.clone();
    let watch = EventWatch::start(&run.node).await;
    let drops = drop_points(&run);
    let mut targets = targets;
    if mid {
        targets.extend(drops.iter().map(|(point, _)| point.clone()));
    }
    let fired: Vec<String> = walk(&run, &["rollback", "--yes"], targets)
        .await
        .into_iter()
        .map(|p| match drops.iter().find(|(point, _)| *point == p) {
            Some((_, named)) => named.clone(),
            None => p,
        })
        .collect();
    if mid {
        for (_, named) in &drops {
            assert!(fired.contains(named), "{named} never fired: {fired:?}");
        }
    }
    let end = run.end_state().await;
    let events = watch.stop().await;
    let old = &run.node.id;
    assert_eq!(count_events(&events, &new_id, "stop"), 1, "{events:?}");
    assert_eq!(count_events(&events, &new_id, "rename"), 1, "{events:?}");
    assert_eq!(count_events(&events, old, "rename"), 1, "{events:?}");
    assert_eq!(count_events(&events, old, "restart"), 1, "{events:?}");
    assert!(!events.iter().any(|(_, a)| a == "create"), "{events:?}");
    assert_attempts(&run, &rollback_steps(), &fired);
    // Restores that were redone still end with the dumped content (checked by the step
    // itself against the recorded table facts; cm is not written by the running node).
    assert_eq!(run.db_facts(MetaDb::Cm).await, run.dumped_facts(MetaDb::Cm));
    run.assert_dumps_once();
    assert_refetch_covers(&run).await;
    run.verify_ledger();
    (run, end, fired)
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_matrix_rollback() {
    require_failpoints();
    let steps = rollback_steps();
    let all = points(&steps, &PHASES);
    let (reference, a, b) = tokio::join!(
        rollback_walk(vec![], false),
        rollback_walk(all.clone(), true),
        rollback_walk(points(&steps, &["after-outcome"]), false),
    );
    let (_r, ref_end, _) = reference;
    assert_eq!(ref_end.phase, "rolled back");
    assert_matrix(&steps, &all, (a.2, a.1), (b.2, b.1), &ref_end, "rollback");
}

/// Spawns `oms-upgrade <args>` and sends it SIGKILL (as `kill -9` does) after `delay`.
/// Returns `true` when the kill landed, `false` when the command had already finished on
/// its own (successfully: anything else fails the test).
async fn kill_after(run: &Run, args: &[&str], delay: Duration) -> bool {
    let mut child = run.spawn(args);
    tokio::time::sleep(delay).await;
    if child.try_wait().unwrap().is_none() {
        child.kill().unwrap();
    }
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    if out.status.signal() == Some(libc::SIGKILL) {
        return true;
    }
    assert!(
        out.status.success(),
        "a resumed run failed on its own: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

/// At least `ROUNDS` (8) real `kill -9`s at random moments of upgrades, each resumed:
/// every upgrade ends like an uninterrupted one (run alongside), with every action once,
/// and its ledger verifies. A resume that outlives its delay completes the upgrade; if that
/// happens before `ROUNDS` kills, another upgrade takes the remaining rounds.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_rounds() {
    // Few rounds: the simulator (`scripts/simulate`, docs/simulation.md) kills the real
    // executor at every await point over thousands of seeds; these real kills remain as
    // the proof that real Docker and MariaDB behave as the simulated world does.
    const ROUNDS: usize = 8;
    let (reference, killed) = tokio::join!(upgrade_walk(vec![]), async {
        let mut kills = 0;
        let mut ends = Vec::new();
        while kills < ROUNDS {
            ends.push(killed_upgrade(ROUNDS - kills).await);
            kills += ends.last().unwrap().1;
        }
        eprintln!("{kills} SIGKILLs over {} upgrade(s)", ends.len());
        ends
    });
    let (_ref_run, ref_end, _) = reference;
    for (end, _) in killed {
        assert_eq!(
            end, ref_end,
            "a killed-and-resumed upgrade ends like an uninterrupted one"
        );
    }
}

/// Runs `args`, killing it after a random 0..`max_delay_ms` (at most `max_kills` times, or
/// until it finishes on its own first), then once more to its end. Returns the delays of
/// the kills that landed.
async fn kill_rounds(run: &Run, args: &[&str], max_kills: usize, max_delay_ms: u64) -> Vec<u64> {
    let mut delays = Vec::new();
    while delays.len() < max_kills {
        let delay = rand::random_range(0..max_delay_ms);
        if !kill_after(run, args, Duration::from_millis(delay)).await {
            break;
        }
        delays.push(delay);
    }
    run.ok(args).await;
    delays
}

/// One upgrade killed at random moments (at most `max_kills` times, then left to
/// finish), resumed to completion and checked; returns its end state and the kills.
async fn killed_upgrade(max_kills: usize) -> (EndState, usize) {
    let run = Run::planned().await;
    let watch = EventWatch::start(&run.node).await;
    let delays = kill_rounds(&run, &["run", "--yes"], max_kills, 350).await;
    let end = run.end_state().await;
    let events = watch.stop().await;
    assert_eq!(end.phase, "completed");
    let new = run.run_containers().await;
    assert_eq!(new.len(), 1, "exactly one new container");
    assert_upgrade_actions_once(&run, &events, &new[0].id);
    let (_, state) = run.replay();
    eprintln!(
        "killed at {delays:?} ms; {} step(s) were left in doubt and reconciled",
        state.reconciliations().len()
    );
    let t: BTreeMap<_, _> = tally(&state);
    for s in upgrade_steps() {
        let tt = &t[&s];
        assert_eq!(tt.failed, 0, "{s}: {tt:?}");
        assert_eq!(tt.done + tt.reconciled_done, 1, "{s}: {tt:?}");
        assert_eq!(tt.intents, 1 + tt.reconciled_not_done, "{s}: {tt:?}");
    }
    run.assert_dumps_once();
    assert_refetch_covers(&run).await;
    run.verify_ledger();
    (end, delays.len())
}

/// True when the database `name` exists on the test server.
async fn database_exists(name: &str) -> bool {
    let n = support::emulator::scalar_text(&format!(
        "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{name}'"
    ))
    .await;
    n.as_deref() == Some("1")
}

/// Regression (issue 11.1): a rollback killed inside `rollback-recreate-cm`, after the
/// DROP and before the CREATE, left the database absent, and every later `rollback` failed
/// with "database ... does not exist" because the step read the live charset first. The
/// resumed rollback must recreate it with the charset recorded with the dump and finish.
#[tokio::test(flavor = "multi_thread")]
async fn rollback_resumes_after_a_kill_between_drop_and_create() {
    require_failpoints();
    let run = Run::planned().await;
    run.ok(&["run", "--yes"]).await;
    let cm = run.node.databases().cm;
    let point = format!("after-drop:{cm}");
    let fired = crash_once(&run, &["rollback", "--yes"], std::slice::from_ref(&point)).await;
    assert_eq!(fired.as_deref(), Some(point.as_str()));
    assert!(!database_exists(&cm).await, "the kill left {cm} dropped");
    assert_eq!(
        run.replay().1.in_doubt(),
        Some(StepKey::RecreateDatabase { db: MetaDb::Cm })
    );

    run.ok(&["rollback", "--yes"]).await;
    assert_eq!(run.status()["phase"], "rolled back");
    assert_eq!(run.db_facts(MetaDb::Cm).await, run.dumped_facts(MetaDb::Cm));
    let (_, state) = run.replay();
    let t = tally(&state);
    let recreate = &t[&StepKey::RecreateDatabase { db: MetaDb::Cm }.to_string()];
    assert_eq!(recreate.failed, 0, "{recreate:?}");
    assert_eq!(recreate.reconciled_not_done, 1, "{recreate:?}");
    run.assert_dumps_once();
    run.verify_ledger();
}

/// Regression (issue 11.7): `rollback` refused with "step dump-cm is in doubt: reconcile it
/// first" after a crash during a dump. It must reconcile the step itself (recording what
/// it found) and then roll back.
#[tokio::test(flavor = "multi_thread")]
async fn rollback_reconciles_a_step_in_doubt_first() {
    require_failpoints();
    let run = Run::planned().await;
    let point = "after-effect:dump-cm".to_string();
    let fired = crash_once(&run, &["run", "--yes"], std::slice::from_ref(&point)).await;
    assert_eq!(fired.as_deref(), Some(point.as_str()));
    assert_eq!(
        run.replay().1.in_doubt(),
        Some(StepKey::Dump { db: MetaDb::Cm })
    );

    run.ok(&["rollback", "--yes", "--reason", "crash during dump"])
        .await;
    let status = run.status();
    assert_eq!(status["phase"], "rolled back", "{status}");
    let (_, state) = run.replay();
    assert_eq!(state.in_doubt(), None);
    let t = tally(&state);
    let dump = &t["dump-cm"];
    assert_eq!(
        dump.reconciled_done + dump.reconciled_not_done,
        1,
        "the in-doubt dump was reconciled and the finding recorded: {dump:?}"
    );
    // The old container runs again and answers healthy.
    use oms_upgrade::adapters::Docker;
    let old = run
        .docker()
        .inspect(&run.node.name)
        .await
        .unwrap()
        .expect("old name");
    assert_eq!(old.id, run.node.id);
    assert!(old.status.is_running());
    run.verify_ledger();
}

/// Real `kill -9`s at random moments of a rollback (inside a drop and recreate, a restore,
/// a restart as much as between steps), each resumed: the rollback converges, every step
/// succeeds exactly once with no failure recorded, cm holds exactly what was dumped, and the
/// ledger verifies.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_rollback_rounds() {
    // Few rounds, for the reason given at `sigkill_rounds`.
    const ROUNDS: usize = 5;
    let run = Run::planned().await;
    run.ok(&["run", "--yes"]).await;
    let delays = kill_rounds(&run, &["rollback", "--yes"], ROUNDS, 400).await;
    let (_, state) = run.replay();
    eprintln!(
        "rollback killed at {delays:?} ms; {} step(s) were left in doubt and reconciled",
        state.reconciliations().len()
    );
    assert_eq!(run.status()["phase"], "rolled back");
    assert_eq!(state.in_doubt(), None);
    let t = tally(&state);
    for s in rollback_steps() {
        let tt = t.get(&s).unwrap_or_else(|| panic!("step {s} never ran"));
        assert_eq!(tt.failed, 0, "{s}: {tt:?}");
        assert_eq!(tt.done + tt.reconciled_done, 1, "{s}: {tt:?}");
        assert_eq!(tt.intents, 1 + tt.reconciled_not_done, "{s}: {tt:?}");
    }
    assert_eq!(run.db_facts(MetaDb::Cm).await, run.dumped_facts(MetaDb::Cm));
    run.assert_dumps_once();
    assert_refetch_covers(&run).await;
    run.verify_ledger();
}

/// Issue 11, defect 5: the tool is killed while a long `docker_init.sh` runs, and the
/// script has `exec`ed into another program, so no process in the container is named after
/// it. The resume finds the init by its exec session, waits for it to end, judges by its
/// log, records the step done (with the wait in the evidence), and never runs it again.
#[tokio::test(flavor = "multi_thread")]
async fn killed_during_a_long_docker_init_that_execed() {
    let run = Run::planned().await;
    run.node.host.set_init_exec(true);
    run.node.host.set_init_step_delay(2_000);
    let watch = EventWatch::start(&run.node).await;
    let mut child = run.spawn(&["run", "--yes"]);
    // The upgrade's init has begun once its log says so (the fresh install's log does not).
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    while !run.node.host.docker_init_log().contains("IS_UPGRADE=true") {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before docker_init.sh began"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "docker_init.sh never began"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !run.node
            .host
            .docker_init_log()
            .contains("全部初始化步骤执行成功"),
        "the kill landed after docker_init.sh had finished: make it slower"
    );
    run.ok(&["run", "--yes"]).await;
    let events = watch.stop().await;
    assert_eq!(run.end_state().await.phase, "completed");
    let new = run.run_containers().await;
    assert_eq!(new.len(), 1, "exactly one new container");
    assert_upgrade_actions_once(&run, &events, &new[0].id);
    let (_, state) = run.replay();
    let init = state
        .reconciliations()
        .into_iter()
        .find(|a| a.key == StepKey::RunDockerInit)
        .expect("docker-init was left in doubt and reconciled");
    match &init.outcome {
        Some(oms_upgrade::replay::Outcome::Reconciled {
            finding, evidence, ..
        }) => {
            assert!(
                matches!(finding, oms_upgrade::events::Finding::Done(_)),
                "{finding:?}: {evidence}"
            );
            assert!(evidence.contains("waited"), "{evidence}");
        }
        other => panic!("{other:?}"),
    }
    run.verify_ledger();
}
