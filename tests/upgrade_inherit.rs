//! Issue 12, items 3 and 4, against the real Docker engine and MariaDB with the emulator:
//! an old OMS container deployed with choices of its own (`--restart unless-stopped`, env
//! of its own with a secret among it, a label, another ulimit, log options, an extra host,
//! a device, `--net host`) is upgraded by the binary; `docker inspect` of the old and the
//! new container then differ only where the runbook says, field by field, with an explicit
//! list of the expected differences. The renamed old container's restart policy is `no`
//! after the upgrade and its own again after the rollback; a run killed around that step
//! resumes without setting it twice.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bollard::models::{
    ContainerCreateBody, DeviceMapping, HostConfig, HostConfigLogConfig, ResourcesUlimits,
    RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{CreateContainerOptionsBuilder, InspectContainerOptions};
use oms_upgrade::adapters::docker::user_env;
use support::emulator::{self as emu, ContainerGuard, MetaDbSet, OmsHost, OmsNode};
use support::upgrade::{EventWatch, Run, count_events, json_of, output, show, tally};

/// The secret in the old container's env: never in the ledger or `plan`'s output.
const SECRET: &str = "s3cr3t-token-value";

/// An old (3.3.0) node whose container was created with deployment choices of its own.
async fn old_node_with_settings() -> OmsNode {
    let docker = support::docker().await;
    let guard = ContainerGuard::new(&docker).await;
    let image = emu::images(&docker, &[emu::OLD_VERSION]).await.remove(0);
    let dbs = MetaDbSet::create().await;
    let host = OmsHost::new(&dbs.databases());
    let name = guard.value.replace('_', "-");
    let mut labels = guard.labels();
    labels.insert("team".into(), "dba".into());
    let body = ContainerCreateBody {
        image: Some(image.reference.clone()),
        env: Some(vec![
            "OMS_HOST_IP=127.0.0.1".into(),
            "OMS_EXTRA=kept".into(),
            format!("OMS_API_TOKEN={SECRET}"),
        ]),
        labels: Some(labels),
        tty: Some(true),
        open_stdin: Some(true),
        host_config: Some(HostConfig {
            binds: Some(host.binds()),
            network_mode: Some("host".into()),
            pids_limit: Some(-1),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            ulimits: Some(vec![
                ResourcesUlimits {
                    name: Some("nproc".into()),
                    soft: Some(65535),
                    hard: Some(65535),
                },
                ResourcesUlimits {
                    name: Some("nofile".into()),
                    soft: Some(4096),
                    hard: Some(8192),
                },
            ]),
            log_config: Some(HostConfigLogConfig {
                typ: Some("json-file".into()),
                config: Some(HashMap::from([
                    ("max-size".to_string(), "5m".to_string()),
                    ("max-file".to_string(), "2".to_string()),
                ])),
            }),
            extra_hosts: Some(vec!["oms-meta.test:10.1.2.3".into()]),
            devices: Some(vec![DeviceMapping {
                path_on_host: Some("/dev/null".into()),
                path_in_container: Some("/dev/oms-null".into()),
                cgroup_permissions: Some("rwm".into()),
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = docker
        .create_container(
            Some(CreateContainerOptionsBuilder::default().name(&name).build()),
            body,
        )
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"))
        .id;
    emu::start_container(&docker, &id).await;
    let init = emu::run_docker_init(&docker, &id).await;
    assert!(
        init.exit_code == 0 && init.output.contains(emu::INIT_SUCCESS),
        "docker_init.sh (fresh install) failed: {}",
        init.output
    );
    emu::wait_healthy(&docker, &id, &host.health_url()).await;
    emu::wait_heartbeats_above(&docker, &id, &dbs.databases(), 0).await;
    OmsNode {
        guard,
        docker,
        name,
        id,
        image,
        host,
        dbs,
    }
}

/// `docker inspect` of a container as JSON.
async fn inspect(run: &Run, id: &str) -> serde_json::Value {
    let r = run
        .node
        .docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
        .unwrap();
    serde_json::to_value(r).unwrap()
}

/// An image's own env and labels.
async fn image_config(run: &Run, image: &str) -> (Vec<String>, BTreeMap<String, String>) {
    let i = run.node.docker.inspect_image(image).await.unwrap();
    let c = i.config.unwrap_or_default();
    (
        c.env.unwrap_or_default(),
        c.labels.unwrap_or_default().into_iter().collect(),
    )
}

fn restart_name(c: &serde_json::Value) -> String {
    c["HostConfig"]["RestartPolicy"]["Name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Every field of `Config` and `HostConfig` of `old` and `new` that differs, other than
/// those named in `allowed` (`Config.Image`, ...), as `section.field: old -> new`.
fn differing(old: &serde_json::Value, new: &serde_json::Value, allowed: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for section in ["Config", "HostConfig"] {
        let (a, b) = (&old[section], &new[section]);
        let keys: BTreeSet<&String> = a
            .as_object()
            .unwrap()
            .keys()
            .chain(b.as_object().unwrap().keys())
            .collect();
        for k in keys {
            let field = format!("{section}.{k}");
            if allowed.contains(&field.as_str()) {
                continue;
            }
            if a.get(k) != b.get(k) {
                out.push(format!(
                    "{field}: {} -> {}",
                    a.get(k).unwrap_or(&serde_json::Value::Null),
                    b.get(k).unwrap_or(&serde_json::Value::Null)
                ));
            }
        }
    }
    out
}

/// Regression (issue 12.3, 12.4): the new container carries everything of the old one that
/// the runbook does not change, and the renamed old one does not come back on its own.
#[tokio::test(flavor = "multi_thread")]
async fn new_container_differs_from_the_old_only_where_the_runbook_says() {
    let run = Run::planned_on(old_node_with_settings().await).await;

    // `plan` names the differences, the secret masked.
    let plan = run.ok(&["plan"]).await;
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(!text.contains(SECRET), "{text}");
    assert!(text.contains("--restart unless-stopped"), "{text}");
    assert!(text.contains("OMS_API_TOKEN=***"), "{text}");
    assert!(text.contains("changed   env:"), "{text}");
    let pj = json_of(&run.ok(&["--json", "plan"]).await.stdout);
    let changed: Vec<&str> = pj["container"]["changes"]
        .as_array()
        .unwrap_or_else(|| panic!("no container changes in {pj}"))
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(changed, ["image", "env", "labels"], "{pj}");

    run.ok(&["run", "--yes"]).await;
    let old = inspect(&run, &run.node.id).await;
    let new_id = run.run_containers().await[0].id.clone();
    let new = inspect(&run, &new_id).await;

    // Item 3: the renamed old container will not be started by a daemon restart; the new
    // one has the old one's policy.
    assert_eq!(restart_name(&old), "no", "{}", old["HostConfig"]);
    assert_eq!(
        restart_name(&new),
        "unless-stopped",
        "{}",
        new["HostConfig"]
    );

    // Item 4: field by field, only the expected differences.
    let allowed = [
        "Config.Image",             // the target image
        "Config.Env",               // compared below: IS_UPGRADE added, image env of each image
        "Config.Labels",            // compared below: oms-upgrade.* added, image labels of each
        "HostConfig.RestartPolicy", // compared above: the old one's was set to `no`
        "HostConfig.Ulimits",       // compared below: order (the runbook's nproc last)
    ];
    let diffs = differing(&old, &new, &allowed);
    assert_eq!(diffs, Vec::<String>::new(), "unexpected differences");

    let (old_image_env, old_image_labels) = image_config(&run, &run.node.image.reference).await;
    let new_image = new["Config"]["Image"].as_str().unwrap().to_string();
    let (new_image_env, new_image_labels) = image_config(&run, &new_image).await;
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let old_user: BTreeSet<String> = user_env(&strings(&old["Config"]["Env"]), &old_image_env)
        .into_iter()
        .collect();
    let new_user: BTreeSet<String> = user_env(&strings(&new["Config"]["Env"]), &new_image_env)
        .into_iter()
        .collect();
    let mut want = old_user.clone();
    want.insert("IS_UPGRADE=true".into());
    assert_eq!(new_user, want, "the operator's env, plus IS_UPGRADE=true");
    assert!(new_user.contains(&format!("OMS_API_TOKEN={SECRET}")));

    let labels = |c: &serde_json::Value, image: &BTreeMap<String, String>| {
        c["Config"]["Labels"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .filter(|(k, v)| image.get(k) != Some(v))
            .collect::<BTreeMap<String, String>>()
    };
    let mut new_labels = labels(&new, &new_image_labels);
    new_labels.retain(|k, _| !k.starts_with("oms-upgrade.") || k.starts_with("oms-upgrade.test"));
    assert_eq!(new_labels, labels(&old, &old_image_labels));
    let ulimits = |c: &serde_json::Value| -> BTreeSet<String> {
        c["HostConfig"]["Ulimits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u.to_string())
            .collect()
    };
    assert_eq!(ulimits(&new), ulimits(&old));

    // The secret reached the new container and nothing else.
    let ledger_bytes = read_all(&run.ledger());
    assert!(
        !ledger_bytes
            .windows(SECRET.len())
            .any(|w| w == SECRET.as_bytes()),
        "the secret is in the ledger"
    );
    live_ok(&run).await;

    // Rollback: the old container gets its policy back.
    run.ok(&["rollback", "--yes"]).await;
    let old = inspect(&run, &run.node.id).await;
    assert_eq!(
        restart_name(&old),
        "unless-stopped",
        "{}",
        old["HostConfig"]
    );
    assert_eq!(old["State"]["Running"], true);
    let (_, state) = run.replay();
    let t = tally(&state);
    assert_eq!(t["rollback-restart-policy"].done, 1, "{t:?}");
    live_ok(&run).await;
}

/// Every file under `dir`, concatenated.
fn read_all(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(read_all(&p));
        } else {
            out.extend(std::fs::read(&p).unwrap_or_default());
        }
    }
    out
}

/// `ledger verify --live` reports no drift.
async fn live_ok(run: &Run) {
    let out = output(run.cli().args(["ledger", "verify", "--live", "--json"])).await;
    let v = json_of(&out.stdout);
    assert!(out.status.success(), "{}\n{v}", show(&out));
    assert_eq!(v["ok"], true, "{v}");
}

/// Regression (issue 12.3): killed right after the restart policy was set (before its
/// outcome) or right before it, the next `run` reads the policy back, records what it
/// found and goes on; the old container is updated once.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_cut_around_old_restart_off_resumes_without_repeating_it() {
    support::upgrade::require_failpoints();
    for point in ["after-effect", "before-effect"] {
        let run = Run::planned_on(old_node_with_settings().await).await;
        let watch = EventWatch::start(&run.node).await;
        let armed = format!("{point}:old-restart-off=return");
        let out = output(run.cli().env("FAILPOINTS", &armed).args(["run", "--yes"])).await;
        assert!(
            !out.status.success()
                && String::from_utf8_lossy(&out.stderr)
                    .contains(&format!("failpoint {point}:old-restart-off")),
            "{armed} did not fire:\n{}",
            show(&out)
        );
        run.ok(&["run", "--yes"]).await;
        let events = watch.stop().await;
        assert_eq!(
            count_events(&events, &run.node.id, "update"),
            1,
            "{point}: {events:?}"
        );
        let (_, state) = run.replay();
        let t = &tally(&state)["old-restart-off"];
        assert_eq!(t.failed, 0, "{point}: {t:?}");
        if point == "after-effect" {
            assert_eq!((t.intents, t.reconciled_done), (1, 1), "{point}: {t:?}");
        } else {
            assert_eq!(
                (t.intents, t.reconciled_not_done, t.done),
                (2, 1, 1),
                "{t:?}"
            );
        }
        // The rollback puts back the policy recorded at init, not the `no` it found.
        let Some(oms_upgrade::events::StepFacts::RestartPolicySet { before, .. }) =
            state.facts(oms_upgrade::events::StepKey::OldRestartOff)
        else {
            panic!("no facts for old-restart-off")
        };
        assert_eq!(before.to_string(), "unless-stopped");
        let old = inspect(&run, &run.node.id).await;
        assert_eq!(restart_name(&old), "no");
    }
}
