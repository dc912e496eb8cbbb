//! `oms-upgrade demo` against the real Docker engine and MariaDB: the binary sets up an
//! emulated OMS 3.3.0 node, upgrades it to 3.3.1 and reports it as one JSON object; then
//! `demo --clean` removes exactly what the demo created and nothing else.

mod support;

use std::path::Path;

use assert_cmd::Command;
use mysql_async::prelude::Queryable;
use oms_upgrade::adapters::{BollardDocker, Docker};
use oms_upgrade::demo::emuimage::image_reference;
use oms_upgrade::events::{Event, StepKey};
use support::emulator::{self as emu, ContainerGuard, OmsContainerSpec};

/// The binary (`support::upgrade::bin`) with a per-test ledger; the password of a real OMS
/// must not leak in.
fn cli(ledger: &Path) -> Command {
    let mut c = Command::new(support::upgrade::bin());
    c.arg("--ledger")
        .arg(ledger)
        .env("OMS_UPGRADE_OPERATOR", "tester")
        .env("OMS_UPGRADE_HOST", "ci-host")
        .env_remove("OMS_META_PASSWORD")
        .env_remove("OMS_UPGRADE_LEDGER");
    c
}

/// stdout must be exactly one JSON object on one line.
fn one_json(out: &std::process::Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<_> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "stdout must hold one JSON object, got:\n{text}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Runs a demo command that must succeed; its one JSON object.
fn demo_json(cmd: &mut Command) -> serde_json::Value {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "demo failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    one_json(&out)
}

/// The containers labelled with demo `id`.
async fn of_demo(docker: &BollardDocker, id: &str) -> Vec<oms_upgrade::adapters::ContainerInfo> {
    docker
        .find_by_label("oms-upgrade.demo", Some(id))
        .await
        .unwrap()
}

async fn database_exists(name: &str) -> bool {
    let pool = support::mysql_pool().await;
    let mut c = pool.get_conn().await.unwrap();
    let n: Option<u64> = c
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (name,),
        )
        .await
        .unwrap();
    drop(c);
    pool.disconnect().await.ok();
    n == Some(1)
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_upgrades_and_clean_removes_only_what_it_created() {
    let client = support::docker().await;
    let docker = BollardDocker::from_client(client.clone());
    // The demo finds the emulator next to the binary; build it (debug, like the binary).
    emu::emulator_binary();
    let old_image = emu::images(&client, &[emu::OLD_VERSION]).await.remove(0);

    // Unrelated things that `--clean` must leave alone, named to look like a demo's.
    let guard = ContainerGuard::new(&client).await;
    let bystander_name = format!("oms-demo-bystander-{}", guard.value.replace('_', "-"));
    let bystander = emu::create_oms_container(
        &client,
        &guard,
        &OmsContainerSpec {
            name: &bystander_name,
            image: &old_image.reference,
            extra_env: &[],
            binds: Vec::new(),
        },
    )
    .await;
    let bystander_db = support::TestDb::create("oms_demo_bystander").await;

    let tmp = tempfile::tempdir().unwrap();
    let ledger = tmp.path().join("ledger");
    // With a signing key configured, `run` writes `<ledger>.checkpoint` beside the ledger:
    // the demo passes the environment through, and `--clean` must remove that file too.
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("demo.key");
    let keygen = cli(&ledger)
        .args(["ledger", "keygen", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{keygen:?}");
    let v = demo_json(
        cli(&ledger)
            .env("OMS_UPGRADE_SIGNING_KEY", &key)
            .args(["--json", "demo", "--size", "64K"]),
    );
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(v["phase"], "completed", "{v:#}");
    assert_eq!(v["verify"]["ok"], true, "{v:#}");
    assert_eq!(v["verify"]["problem"], serde_json::Value::Null, "{v:#}");
    assert_eq!(v["ledger"], ledger.display().to_string());
    assert_eq!(v["healthy"], true, "{v:#}");
    assert!(v["refetch_minutes"].as_u64().unwrap() >= 1, "{v:#}");
    assert!(v["t1"].is_string() && v["t2"].is_string(), "{v:#}");
    let demo_id = v["demo_id"].as_str().unwrap().to_string();
    let demo_dir = Path::new(v["demo_dir"].as_str().unwrap()).to_path_buf();
    assert_eq!(
        demo_dir,
        tmp.path().join(&demo_id),
        "demo folder next to the ledger"
    );
    assert!(Path::new(v["config"].as_str().unwrap()).is_file());
    let checkpoint = tmp.path().join("ledger.checkpoint");
    assert!(checkpoint.is_file(), "run wrote no signed checkpoint");

    // The new container runs 3.3.1 under the old name with IS_UPGRADE=true; the old one
    // is kept, renamed, stopped, on 3.3.0. Both carry the demo label.
    let new_name = v["containers"]["new"]["name"].as_str().unwrap();
    let new = docker
        .inspect(new_name)
        .await
        .unwrap()
        .expect("new container");
    assert_eq!(new.image, image_reference("3.3.1"));
    assert_eq!(v["containers"]["new"]["image"], image_reference("3.3.1"));
    assert!(new.status.is_running());
    assert_eq!(new.env_var("IS_UPGRADE"), Some("true"));
    assert_eq!(new.labels.get("oms-upgrade.demo"), Some(&demo_id));
    let old_id = v["containers"]["old"]["id"].as_str().unwrap();
    let old = docker
        .inspect(old_id)
        .await
        .unwrap()
        .expect("old container");
    assert_eq!(old.name, format!("{new_name}-pre-3.3.1"));
    assert_eq!(old.image, image_reference("3.3.0"));
    assert!(!old.status.is_running());
    assert_eq!(old.labels.get("oms-upgrade.demo"), Some(&demo_id));
    assert_eq!(new.binds, old.binds);

    // The three databases exist, were migrated, and the seed's awkward rows survived.
    let dbs: Vec<String> = ["rm", "cm", "cm_hb"]
        .iter()
        .map(|k| v["databases"][k].as_str().unwrap().to_string())
        .collect();
    for d in &dbs {
        assert!(database_exists(d).await, "{d}");
    }
    let version = emu::scalar_text(&format!(
        "SELECT version FROM `{}`.oms_schema_version WHERE id = 1",
        dbs[0]
    ))
    .await;
    assert_eq!(version.as_deref(), Some("3.3.1"));
    let awkward = emu::scalar(&format!(
        "SELECT COUNT(*) FROM `{}`.oms_project WHERE project_id LIKE 'awk-%'",
        dbs[0]
    ))
    .await
    .unwrap();
    assert!(awkward >= 3, "seeded rows: {awkward}");

    // The ledger is a real one: `status` agrees.
    let status = one_json(&cli(&ledger).args(["--json", "status"]).output().unwrap());
    assert_eq!(status["phase"], "completed");

    // A second demo on the same ledger is refused before anything is created (other
    // tests' demos may come and go meanwhile: only this folder's are counted).
    let here = |docker: BollardDocker| {
        let dir = tmp.path().to_path_buf();
        async move {
            docker
                .find_by_label("oms-upgrade.demo", None)
                .await
                .unwrap()
                .into_iter()
                .filter(|c| {
                    c.labels
                        .get("oms-upgrade.demo.dir")
                        .is_some_and(|d| Path::new(d).starts_with(&dir))
                })
                .count()
        }
    };
    let demo_containers = here(docker.clone()).await;
    let again = cli(&ledger)
        .args(["--json", "demo", "--size", "64K"])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(7), "{again:?}");
    let err = one_json(&again);
    assert!(
        err["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("demo --clean"),
        "{err}"
    );
    assert_eq!(
        here(docker.clone()).await,
        demo_containers,
        "the refused demo created no container"
    );
    assert_eq!(
        of_demo(&docker, &demo_id).await.len(),
        2,
        "old and new container carry the demo label"
    );

    // --clean removes the demo's containers, databases, folder and ledger ...
    let out = cli(&ledger)
        .args(["--json", "demo", "--clean"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let cleaned = one_json(&out);
    assert_eq!(cleaned["ok"], true, "{cleaned:#}");
    assert!(docker.inspect(&new.id).await.unwrap().is_none());
    assert!(docker.inspect(old_id).await.unwrap().is_none());
    assert!(of_demo(&docker, &demo_id).await.is_empty());
    for d in &dbs {
        assert!(!database_exists(d).await, "{d} still exists");
    }
    assert!(!demo_dir.exists(), "{} still exists", demo_dir.display());
    assert!(!ledger.exists(), "{} still exists", ledger.display());
    assert!(
        !checkpoint.exists(),
        "{} still exists",
        checkpoint.display()
    );
    assert!(key.is_file(), "the signing key is not the demo's");

    // ... and nothing else.
    let still = docker.inspect(&bystander).await.unwrap();
    assert_eq!(still.map(|c| c.name), Some(bystander_name));
    assert!(database_exists(&bystander_db.name).await);
}

/// Issue 11, defect 10: `demo --plan-only` sets up the node and records the plan, and
/// nothing more; the commands it prints drive the node (`run`, `ledger verify --live`) and
/// clean it up.
#[tokio::test(flavor = "multi_thread")]
async fn demo_plan_only_stops_after_the_plan_and_prints_working_commands() {
    let client = support::docker().await;
    let docker = BollardDocker::from_client(client.clone());
    emu::emulator_binary();
    let tmp = tempfile::tempdir().unwrap();
    let ledger = tmp.path().join("ledger");
    let v = plan_only_demo(&ledger);
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(v["plan_only"], true, "{v:#}");
    assert_eq!(v["phase"], "upgrading", "{v:#}");
    let demo_id = v["demo_id"].as_str().unwrap().to_string();

    // Only the old node exists, running 3.3.0; no step was taken.
    let labelled = of_demo(&docker, &demo_id).await;
    assert_eq!(labelled.len(), 1, "{labelled:?}");
    assert!(labelled[0].status.is_running());
    assert_eq!(labelled[0].image, image_reference("3.3.0"));
    assert_eq!(v["container"]["id"], labelled[0].id.as_str());
    let status = one_json(&cli(&ledger).args(["--json", "status"]).output().unwrap());
    assert_eq!(status["t1"], serde_json::Value::Null, "{status:#}");
    assert_eq!(
        status["permitted"],
        serde_json::json!(["disable-ha"]),
        "{status:#}"
    );

    // The printed commands are complete command lines that work as printed.
    let cmd = |k: &str| {
        v["commands"][k]
            .as_str()
            .unwrap_or_else(|| panic!("no {k}: {v:#}"))
            .to_string()
    };
    for k in ["run", "kill", "rollback", "verify_live", "clean"] {
        assert!(
            cmd(k).contains(&ledger.display().to_string()) || k == "clean",
            "{k}: {}",
            cmd(k)
        );
    }
    let bash = |line: String| {
        let out = std::process::Command::new("bash")
            .args(["-c", &line])
            .env_remove("OMS_UPGRADE_LEDGER")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "`{line}` failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    bash(cmd("run"));
    let status = one_json(&cli(&ledger).args(["--json", "status"]).output().unwrap());
    assert_eq!(status["phase"], "completed", "{status:#}");
    bash(cmd("verify_live"));
    bash(cmd("clean"));
    assert!(of_demo(&docker, &demo_id).await.is_empty());
    assert!(!ledger.exists());
}

/// `demo --json --plan-only` on `ledger`; its summary.
fn plan_only_demo(ledger: &Path) -> serde_json::Value {
    demo_json(cli(ledger).args(["--json", "demo", "--size", "64K", "--plan-only"]))
}

/// Regression (issue 12.12): `demo --clean --ledger L` removed every demo on the machine,
/// folders and ledgers of demos others were still using included. It removes the demo of L
/// only; `--all --dry-run` lists every demo and removes nothing; `--clean` naming no demo
/// is refused.
#[tokio::test(flavor = "multi_thread")]
async fn clean_removes_only_the_demo_of_its_ledger() {
    let client = support::docker().await;
    let docker = BollardDocker::from_client(client.clone());
    emu::emulator_binary();
    // Two demos side by side, as two people (or two tests) would run them.
    let tmp = tempfile::tempdir().unwrap();
    let (ledger_a, ledger_b) = (tmp.path().join("ledger-a"), tmp.path().join("ledger-b"));
    let a = plan_only_demo(&ledger_a);
    let b = plan_only_demo(&ledger_b);
    let id = |v: &serde_json::Value| v["demo_id"].as_str().unwrap().to_string();
    let (id_a, id_b) = (id(&a), id(&b));
    let dir_b = Path::new(b["demo_dir"].as_str().unwrap()).to_path_buf();
    let dbs_b: Vec<String> = ["rm", "cm", "cm_hb"]
        .iter()
        .map(|k| b["databases"][k].as_str().unwrap().to_string())
        .collect();

    // Clean A: A is gone, B untouched.
    let out = cli(&ledger_a)
        .args(["--json", "demo", "--clean"])
        .output()
        .unwrap();
    let cleaned = one_json(&out);
    assert_eq!(cleaned["ok"], true, "{cleaned:#}");
    assert!(of_demo(&docker, &id_a).await.is_empty());
    assert!(!ledger_a.exists());
    let left_b = of_demo(&docker, &id_b).await;
    assert_eq!(
        left_b.len(),
        1,
        "demo B's container was removed by cleaning demo A: {cleaned:#}"
    );
    assert!(left_b[0].status.is_running());
    assert!(dir_b.join("demo-state.json").is_file(), "demo B's folder");
    assert!(ledger_b.is_dir(), "demo B's ledger");
    for d in &dbs_b {
        assert!(database_exists(d).await, "demo B's database {d}");
    }
    let status = one_json(&cli(&ledger_b).args(["--json", "status"]).output().unwrap());
    assert_eq!(status["phase"], "upgrading", "{status:#}");

    // `--all` lists first; `--dry-run` removes nothing.
    let out = cli(&ledger_b)
        .args(["--json", "demo", "--clean", "--all", "--dry-run"])
        .output()
        .unwrap();
    let listed = one_json(&out);
    assert_eq!(listed["dry_run"], true, "{listed:#}");
    let ids: Vec<&str> = listed["demos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&id_b.as_str()), "{listed:#}");
    assert!(!ids.contains(&id_a.as_str()), "{listed:#}");
    assert!(listed["containers"].as_array().unwrap().is_empty());
    assert!(ledger_b.exists());

    // Naming no demo is refused.
    let out = Command::new(support::upgrade::bin())
        .args(["--json", "demo", "--clean"])
        .env_remove("OMS_UPGRADE_LEDGER")
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{out:?}");

    let out = cli(&ledger_b)
        .args(["--json", "demo", "--clean"])
        .output()
        .unwrap();
    assert_eq!(one_json(&out)["ok"], true);
    assert!(!dir_b.exists() && !ledger_b.exists());
}

/// Issue 12.5: `demo --from 4.2.1 --to 4.2.2` runs the 4.2.x procedure (supervisor and
/// server checks) and ends with `ledger verify --live` reporting no drift.
#[tokio::test(flavor = "multi_thread")]
async fn demo_runs_the_42x_procedure_and_verifies_live() {
    emu::emulator_binary();
    let tmp = tempfile::tempdir().unwrap();
    let ledger = tmp.path().join("ledger");
    let v = demo_json(cli(&ledger).args([
        "--json", "demo", "--size", "64K", "--from", "4.2.1", "--to", "4.2.2",
    ]));
    assert_eq!(v["phase"], "completed", "{v:#}");
    assert_eq!(v["verify"]["ok"], true, "{v:#}");
    assert_eq!(v["verify"]["live"]["ok"], true, "{v:#}");
    assert_eq!(v["containers"]["new"]["image"], image_reference("4.2.2"));
    let records = oms_upgrade::history::load_dir(&ledger, oms_upgrade::history::Verify::Chain)
        .unwrap()
        .records;
    for key in [StepKey::CheckSupervisor, StepKey::CheckOnline] {
        assert!(
            records
                .iter()
                .any(|r| matches!(&r.event, Event::StepDone { key: k, .. } if *k == key)),
            "{key} is not recorded done"
        );
    }
    let out = cli(&ledger)
        .args(["--json", "demo", "--clean"])
        .output()
        .unwrap();
    assert_eq!(one_json(&out)["ok"], true);

    // An unknown version or path is refused before anything is created.
    let out = cli(&tmp.path().join("other"))
        .args(["--json", "demo", "--from", "4.2.1", "--to", "4.2.9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{out:?}");
}

/// `demo --tls` (issue 12, item 2): the node serves its console over HTTPS only with a
/// certificate the demo generated and mounted; `init` gets the CA, the plan records
/// HTTPS, the upgrade completes and `ledger verify --live` finds no drift. Cleans up only
/// what this demo created (its containers, databases and folder).
#[tokio::test(flavor = "multi_thread")]
async fn demo_tls_upgrades_an_https_console() {
    let client = support::docker().await;
    let docker = BollardDocker::from_client(client.clone());
    emu::emulator_binary();
    let tmp = tempfile::tempdir().unwrap();
    let ledger = tmp.path().join("ledger");
    let out = cli(&ledger)
        .args(["--json", "demo", "--tls", "--size", "64K"])
        .output()
        .unwrap();
    let v = one_json(&out);
    let demo_id = v["demo_id"].as_str().map(str::to_string);
    let cleanup = async {
        if let Some(id) = &demo_id {
            for c in docker
                .find_by_label("oms-upgrade.demo", Some(id))
                .await
                .unwrap()
            {
                let _ = docker.remove(&c.id, true).await;
            }
        }
        let pool = support::mysql_pool().await;
        let mut c = pool.get_conn().await.unwrap();
        for k in ["rm", "cm", "cm_hb"] {
            if let Some(d) = v["databases"][k].as_str() {
                c.query_drop(format!("DROP DATABASE IF EXISTS `{d}`"))
                    .await
                    .unwrap();
            }
        }
        drop(c);
        pool.disconnect().await.ok();
    };
    let ok = out.status.success() && v["ok"] == true;
    if !ok {
        cleanup.await;
        panic!(
            "demo --tls failed ({}):\n{v:#}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let checks = async {
        assert_eq!(v["phase"], "completed", "{v:#}");
        assert_eq!(
            v["verify"]["ok"], true,
            "ledger verify --live: {v:#}\n{stderr}"
        );
        assert_eq!(v["healthy"], true, "{v:#}");
        assert!(stderr.contains("ledger verify --live"), "{stderr}");
        let state = oms_upgrade::history::load_dir(&ledger, oms_upgrade::history::Verify::Chain)
            .unwrap()
            .state;
        let plan = state.plan().unwrap();
        assert!(
            plan.health_url.starts_with("https://"),
            "{}",
            plan.health_url
        );
        let trust = plan.health_trust().unwrap();
        assert_eq!(trust.scheme, oms_upgrade::events::HealthScheme::Https);
        let ca = trust.ca_file.as_deref().unwrap();
        let new_name = v["containers"]["new"]["name"].as_str().unwrap();
        let new = docker.inspect(new_name).await.unwrap().unwrap();
        assert!(
            new.binds
                .iter()
                .any(|b| b.contains(":/etc/pki/nginx/oms_server.crt")),
            "{:?}",
            new.binds
        );
        let port = plan.health_url.rsplit(':').next().unwrap().to_string();
        let h = emu::health_ca(
            &format!("https://127.0.0.1:{port}/oms/health"),
            Some(&std::fs::read(ca).unwrap()),
        )
        .await
        .expect("the upgraded node answers over HTTPS");
        assert_eq!(h["data"]["version"], "3.3.1", "{h}");
        // Plain HTTP gets no health answer from an HTTPS-only console.
        assert!(
            emu::health(&format!("http://127.0.0.1:{port}/oms/health"))
                .await
                .is_none()
        );
    };
    // Clean up even when a check fails.
    let result = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(checks)).await;
    cleanup.await;
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

/// Issue 16: the report of a completed demo breaks the downtime window down from the
/// ledger: the gaps, the steps' in-window times and the tail sum to T2 - T1 exactly, every
/// step with time between T1 and T2 is a row, and each row is classified (external: what
/// the tool waits on; tool: its own) as `report::window::classify` says.
#[tokio::test(flavor = "multi_thread")]
async fn demo_report_breaks_the_downtime_window_down() {
    emu::emulator_binary();
    let tmp = tempfile::tempdir().unwrap();
    let ledger = tmp.path().join("ledger");
    let v = demo_json(cli(&ledger).args(["--json", "demo", "--size", "64K"]));
    assert_eq!(v["phase"], "completed", "{v:#}");

    let out = cli(&ledger)
        .args(["report", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let time = |p: &str| {
        let s = r
            .pointer(p)
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("no {p}"));
        chrono::DateTime::parse_from_rfc3339(s).unwrap()
    };
    let (t1, t2) = (time("/times/t1/at"), time("/times/t2/at"));
    let w = &r["window"];
    let n = |v: &serde_json::Value| v.as_i64().unwrap_or_else(|| panic!("not a number: {v}"));
    let total = n(&w["total_ms"]);
    assert_eq!(total, (t2 - t1).num_milliseconds(), "{w:#}");
    assert_eq!(total, n(&r["times"]["downtime"]["duration_ms"]), "{w:#}");
    let rows = w["rows"].as_array().unwrap();
    let parts: i64 = rows
        .iter()
        .map(|x| n(&x["gap_ms"]) + n(&x["in_window_ms"]))
        .sum::<i64>()
        + n(&w["tail_ms"]);
    assert_eq!(parts, total, "{w:#}");
    assert_eq!(n(&w["tool_ms"]) + n(&w["external_ms"]), total, "{w:#}");
    assert_eq!(
        n(&w["gaps_ms"]) + n(&w["tool_steps_ms"]),
        n(&w["tool_ms"]),
        "{w:#}"
    );

    // Every attempt with time between T1 and T2 is a row, classified.
    let in_window: Vec<String> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            let ended = s["ended_at"]
                .as_str()
                .map(|e| chrono::DateTime::parse_from_rfc3339(e).unwrap());
            let started =
                chrono::DateTime::parse_from_rfc3339(s["started_at"].as_str().unwrap()).unwrap();
            ended.is_some_and(|e| e > t1) && started < t2
        })
        .map(|s| s["key"].as_str().unwrap().to_string())
        .collect();
    let keys: Vec<String> = rows
        .iter()
        .map(|x| x["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys, in_window, "{w:#}");
    for k in [
        "stop-old",
        "dump-rm",
        "create-new",
        "start-new",
        "docker-init",
        "confirm-health",
        "enable-ha",
    ] {
        assert!(
            keys.iter().any(|x| x == k),
            "{k} not in the window: {keys:?}"
        );
    }
    for x in rows {
        let key: StepKey = x["key"].as_str().unwrap().parse().unwrap();
        let (share, part) = oms_upgrade::report::window::classify(key);
        assert_eq!(x["share"], serde_json::to_value(share).unwrap(), "{x:#}");
        assert_eq!(x["part"], part, "{x:#}");
    }
    // The health wait polls finely: at most one 100 ms pause of it can be slack.
    let health = rows.iter().find(|x| x["key"] == "confirm-health").unwrap();
    assert!(n(&health["polling_slack_ms"]) <= 100, "{health:#}");

    // The Markdown report shows the same table.
    let md = cli(&ledger).args(["report"]).output().unwrap();
    let md = String::from_utf8_lossy(&md.stdout);
    assert!(md.contains("## Downtime window"), "{md}");
    assert!(md.contains("| `confirm-health` | 1 |"), "{md}");

    let out = cli(&ledger)
        .args(["--json", "demo", "--clean"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}
