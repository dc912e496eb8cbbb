//! `init --inventory FILE` (issue 15): the preflight of every node of a deployment, before
//! anything changes, and the deployment plan it records.
//!
//! Every node is an emulator container on this machine's engine, with its own
//! `OMS_HOST_IP` on a loopback address (127.0.0.x), its own config.yaml and its own
//! `nginx_server_port`, all sharing node 0's metadata databases; the inventory reaches
//! each engine as `unix:///var/run/docker.sock`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use oms_upgrade::adapters::{BollardDocker, Docker};
use oms_upgrade::events::Event;
use oms_upgrade::history::{self, Verify};
use support::emulator::{self as emu, OmsContainerSpec, OmsHost, OmsNode};
use support::upgrade::{cli, error_line, init_args, json_of, output, show};

/// The engine every node is reached through.
const ENGINE: &str = "unix:///var/run/docker.sock";

/// A node of the deployment other than node 0.
struct Other {
    host: OmsHost,
    name: String,
    ip: String,
}

/// Writes the deployment's keys into a node's config.yaml: its region's nodes and
/// `cm_location` (one region).
fn deployment_keys(host: &mut OmsHost, ips: &[&str]) {
    host.config.extra.insert(
        "cm_nodes".into(),
        serde_yaml_ng::Value::Sequence(ips.iter().map(|ip| (*ip).into()).collect()),
    );
    host.config
        .extra
        .insert("cm_location".into(), serde_yaml_ng::Value::from(0));
    host.write_config();
}

/// Starts another node on `ip` running `version`, sharing node 0's databases, with its
/// own config.yaml and port; waits until it is healthy when `healthy` is asked.
async fn other_node(
    node0: &OmsNode,
    ip: &str,
    version: &str,
    ips: &[&str],
    healthy: bool,
) -> Other {
    let image = emu::images(&node0.docker, &[version]).await.remove(0);
    let mut host = OmsHost::new(&node0.databases());
    deployment_keys(&mut host, ips);
    let name = format!("{}-{}", node0.name, ip.replace('.', "-"));
    let env = format!("OMS_HOST_IP={ip}");
    let id = emu::create_oms_container(
        &node0.docker,
        &node0.guard,
        &OmsContainerSpec {
            name: &name,
            image: &image.reference,
            extra_env: &[&env],
            binds: host.binds(),
        },
    )
    .await;
    emu::start_container(&node0.docker, &id).await;
    if healthy {
        let url = format!("http://{ip}:{}/oms/health", host.port());
        emu::wait_healthy(&node0.docker, &id, &url).await;
    }
    Other {
        host,
        name,
        ip: ip.to_string(),
    }
}

/// The inventory file: node 0, then the others, each with its engine (`engine` overrides
/// per IP).
fn inventory(dir: &Path, node0: &OmsNode, others: &[&Other], engine: &[(&str, &str)]) -> PathBuf {
    let endpoint = |ip: &str| {
        engine
            .iter()
            .find(|(i, _)| *i == ip)
            .map_or(ENGINE, |(_, e)| *e)
            .to_string()
    };
    let mut text = String::from("nodes:\n");
    let mut entry = |first: &str, ip: &str, container: &str, config: &Path| {
        text.push_str(&format!(
            "  - {first}\n    ip: {ip}\n    docker: {}\n    container: {container}\n    config: {}\n",
            endpoint(ip),
            config.display()
        ));
    };
    entry(
        "default: true",
        "127.0.0.1",
        &node0.name,
        &node0.host.config_path,
    );
    for o in others {
        // The others have a name: their label in findings and in the plan.
        let name = format!("name: {}", label(&o.ip));
        entry(&name, &o.ip, &o.name, &o.host.config_path);
    }
    let path = dir.join("inventory.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The name the inventory gives the node on `ip`: `oms-<last octet>`.
fn label(ip: &str) -> String {
    format!("oms-{}", ip.rsplit('.').next().unwrap_or(ip))
}

/// Node 0 on 127.0.0.1 and a healthy second 3.3.0 node on 127.0.0.2, one region, and a
/// temp folder for the ledgers and the inventory.
async fn two_healthy_nodes() -> (OmsNode, Other, tempfile::TempDir) {
    let ips = ["127.0.0.1", "127.0.0.2"];
    let mut node0 = emu::start_old_oms().await;
    deployment_keys(&mut node0.host, &ips);
    let b = other_node(&node0, ips[1], emu::OLD_VERSION, &ips, true).await;
    (node0, b, tempfile::tempdir().unwrap())
}

/// `init --json --inventory FILE` for node 0.
async fn init_deployment(node0: &OmsNode, dir: &Path, inventory: &Path) -> Output {
    let mut c = cli(&dir.join("ledger"));
    c.arg("--json").args(
        init_args(
            node0,
            &dir.join("backups"),
            &[("--inventory", inventory.to_str().unwrap())],
        )
        .await,
    );
    output(&mut c).await
}

/// Every test container's (name, id, running), sorted: what "untouched" compares.
async fn containers(node0: &OmsNode) -> Vec<(String, String, bool)> {
    let docker = BollardDocker::from_client(node0.docker.clone());
    let mut v: Vec<_> = docker
        .find_by_label(support::TEST_LABEL, Some(&node0.guard.value))
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.name, c.id, c.status.is_running()))
        .collect();
    v.sort();
    v
}

/// The events the ledger holds, in order.
fn events(dir: &Path) -> Vec<Event> {
    history::load_dir(&dir.join("ledger"), Verify::Chain)
        .unwrap_or_else(|e| panic!("replay the ledger: {e}"))
        .records
        .into_iter()
        .map(|r| r.event)
        .collect()
}

/// A refusal: exit 7, the error line names `node`, only `preflight.failed` recorded, every
/// container as it was.
async fn assert_refused_naming(
    out: &Output,
    dir: &Path,
    node0: &OmsNode,
    before: &[(String, String, bool)],
    node: &str,
) {
    assert_eq!(out.status.code(), Some(7), "{}", show(out));
    let error = error_line(out);
    assert!(error.contains(node), "the error names {node}: {error}");
    let events = events(dir);
    assert!(
        !events.is_empty()
            && events
                .iter()
                .all(|e| matches!(e, Event::PreflightFailed { .. })),
        "only preflight.failed is recorded: {events:?}"
    );
    assert_eq!(containers(node0).await, before, "init changed a container");
}

#[tokio::test(flavor = "multi_thread")]
async fn init_plans_a_deployment_whose_nodes_all_pass() {
    let ips = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];
    let mut node0 = emu::start_old_oms().await;
    deployment_keys(&mut node0.host, &ips);
    let b = other_node(&node0, ips[1], emu::OLD_VERSION, &ips, true).await;
    let c = other_node(&node0, ips[2], emu::OLD_VERSION, &ips, true).await;
    let tmp = tempfile::tempdir().unwrap();
    let file = inventory(tmp.path(), &node0, &[&b, &c], &[]);
    let before = containers(&node0).await;

    let out = init_deployment(&node0, tmp.path(), &file).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let v = json_of(&out.stdout);
    for ip in &ips[1..] {
        for check in [
            "node-engine",
            "node-container",
            "node-version",
            "node-image",
            "node-binds",
            "node-health",
        ] {
            assert!(
                v["checks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c["name"] == check
                        && c["ok"] == true
                        && c["detail"].as_str().unwrap().contains(ip)),
                "{check} passed for {ip}: {v}"
            );
        }
    }
    assert_eq!(containers(&node0).await, before, "init changed a container");

    // The plan covers the deployment: node 0 in its own fields, the others in the
    // extension, each with its own container, IP, health URL, engine and names.
    let events = events(tmp.path());
    let Some(Event::RunPlanned { plan, .. }) = events
        .iter()
        .find(|e| matches!(e, Event::RunPlanned { .. }))
    else {
        panic!("no run.planned: {events:?}")
    };
    assert_eq!(plan.nodes().len(), 3);
    let d = plan.deployment().expect("the deployment extension");
    assert_eq!(d.node0.label, "127.0.0.1");
    assert_eq!(d.node0.endpoint, ENGINE);
    assert!(d.node0.runs_init);
    assert_eq!(d.regions.len(), 1);
    assert_eq!(d.regions[0].heartbeat_db, plan.databases.cm_hb);
    for (n, other) in d.nodes.iter().zip([&b, &c]) {
        assert_eq!(n.meta.label, label(&other.ip));
        assert_eq!(n.meta.endpoint, ENGINE);
        assert_eq!(n.meta.region.0, 0);
        // Each node has its own config.yaml: docker_init.sh runs on every node.
        assert!(n.meta.runs_init, "{n:?}");
        assert_eq!(n.old_container.name, other.name);
        assert_eq!(n.host_ip, other.ip);
        assert_eq!(
            n.health_url,
            format!("http://{}:{}", other.ip, other.host.port())
        );
        assert_eq!(n.new_name, other.name);
        assert_eq!(n.old_renamed_to, format!("{}-pre-3.3.1", other.name));
        assert_eq!(n.target_image_id, plan.target_image_id);
        assert!(n.settings.is_some());
        let seen = plan.for_node(oms_upgrade::events::NodeIx(
            u8::try_from(d.nodes.iter().position(|x| x == n).unwrap() + 1).unwrap(),
        ));
        assert_eq!(seen.old_container.name, other.name);
    }
}

/// Issue 15: "`init` against an inventory where one node runs a different version ...
/// refuses with exit 7 before anything changes, naming the node."
#[tokio::test(flavor = "multi_thread")]
async fn init_refuses_a_deployment_where_one_node_runs_another_version() {
    let ips = ["127.0.0.1", "127.0.0.2"];
    let mut node0 = emu::start_old_oms().await;
    deployment_keys(&mut node0.host, &ips);
    let b = other_node(&node0, ips[1], "3.2.2", &ips, false).await;
    let tmp = tempfile::tempdir().unwrap();
    let file = inventory(tmp.path(), &node0, &[&b], &[]);
    let before = containers(&node0).await;

    let out = init_deployment(&node0, tmp.path(), &file).await;
    assert_refused_naming(&out, tmp.path(), &node0, &before, "127.0.0.2").await;
    let error = error_line(&out);
    assert!(error.contains("runs 3.2.2"), "{error}");
}

/// Issue 15: "... or is unreachable, refuses with exit 7 before anything changes, naming
/// the node."
#[tokio::test(flavor = "multi_thread")]
async fn init_refuses_a_deployment_with_an_unreachable_node() {
    let (node0, b, tmp) = two_healthy_nodes().await;
    let file = inventory(
        tmp.path(),
        &node0,
        &[&b],
        &[("127.0.0.2", "unix:///nonexistent/docker.sock")],
    );
    let before = containers(&node0).await;

    let out = init_deployment(&node0, tmp.path(), &file).await;
    assert_refused_naming(&out, tmp.path(), &node0, &before, "127.0.0.2").await;
    let error = error_line(&out);
    assert!(error.contains("/nonexistent/docker.sock"), "{error}");
}

/// Runs one statement on the test MariaDB.
async fn sql(c: &mut mysql_async::Conn, statement: String) {
    use mysql_async::prelude::Queryable;
    c.query_drop(&statement)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

/// Issue 15: "A disagreement between sources is a preflight failure that names both": the
/// nodes' config.yaml files list a node the inventory file does not, then the metadata DB
/// lists fewer servers than the inventory, then another region than config.yaml.
#[tokio::test(flavor = "multi_thread")]
async fn init_refuses_an_inventory_the_other_sources_disagree_with() {
    let ips = ["127.0.0.1", "127.0.0.2"];
    let mut node0 = emu::start_old_oms().await;
    let listed = ["127.0.0.1", "127.0.0.2", "127.0.0.9"];
    deployment_keys(&mut node0.host, &listed);
    let mut b = other_node(&node0, ips[1], emu::OLD_VERSION, &listed, true).await;
    let tmp = tempfile::tempdir().unwrap();
    let file = inventory(tmp.path(), &node0, &[&b], &[]);
    let before = containers(&node0).await;

    let out = init_deployment(&node0, &tmp.path().join("a"), &file).await;
    assert_refused_naming(&out, &tmp.path().join("a"), &node0, &before, "127.0.0.9").await;
    let error = error_line(&out);
    assert!(
        error.contains("config.yaml") && error.contains("the inventory file"),
        "names both sources: {error}"
    );

    // config.yaml agrees now; the metadata DB's `host` table lists node 0 only.
    deployment_keys(&mut node0.host, &ips);
    deployment_keys(&mut b.host, &ips);
    let pool = support::mysql_pool().await;
    let mut c = pool.get_conn().await.unwrap();
    let cm = &node0.databases().cm;
    let host = "(id BIGINT PRIMARY KEY, ip VARCHAR(64) NOT NULL)";
    sql(&mut c, format!("CREATE TABLE `{cm}`.`host` {host}")).await;
    sql(
        &mut c,
        format!("INSERT INTO `{cm}`.`host` VALUES (1, '127.0.0.1')"),
    )
    .await;
    let out = init_deployment(&node0, &tmp.path().join("b"), &file).await;
    assert_refused_naming(&out, &tmp.path().join("b"), &node0, &before, "127.0.0.2").await;
    let error = error_line(&out);
    assert!(
        error.contains("the metadata DB"),
        "names the metadata DB: {error}"
    );

    // Both servers listed; the rm database's `cluster_info` lists another region.
    sql(
        &mut c,
        format!("INSERT INTO `{cm}`.`host` VALUES (2, '127.0.0.2')"),
    )
    .await;
    let rm = &node0.databases().rm;
    let regions = "(region VARCHAR(64), code INT, is_default_cm TINYINT)";
    sql(
        &mut c,
        format!("CREATE TABLE `{rm}`.`cluster_info` {regions}"),
    )
    .await;
    sql(
        &mut c,
        format!("INSERT INTO `{rm}`.`cluster_info` VALUES ('hz', 5, 1)"),
    )
    .await;
    let out = init_deployment(&node0, &tmp.path().join("c"), &file).await;
    assert_refused_naming(&out, &tmp.path().join("c"), &node0, &before, "cm_location").await;
    let error = error_line(&out);
    assert!(
        error.contains("config.yaml") && error.contains("the metadata DB"),
        "names both sources: {error}"
    );

    // With the region listed as config.yaml has it, the same inventory plans.
    sql(&mut c, format!("UPDATE `{rm}`.`cluster_info` SET code = 0")).await;
    let out = init_deployment(&node0, &tmp.path().join("d"), &file).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    sql(&mut c, format!("DROP TABLE `{cm}`.`host`")).await;
    sql(&mut c, format!("DROP TABLE `{rm}`.`cluster_info`")).await;
    drop(c);
    pool.disconnect().await.ok();
    assert_eq!(containers(&node0).await, before, "init changed a container");
}

/// The plan `init --inventory` records is one `run` carries out: both nodes end on the
/// new image, running, each under its old name.
#[tokio::test(flavor = "multi_thread")]
async fn the_deployment_init_plans_upgrades_every_node() {
    let (node0, b, tmp) = two_healthy_nodes().await;
    let file = inventory(tmp.path(), &node0, &[&b], &[]);
    let out = init_deployment(&node0, tmp.path(), &file).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let out = output(cli(&tmp.path().join("ledger")).args(["run", "--yes"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = show(&out);
    assert!(text.contains("node1:docker-init"), "{text}");

    let docker = BollardDocker::from_client(node0.docker.clone());
    for name in [&node0.name, &b.name] {
        let c = docker
            .inspect(name)
            .await
            .unwrap()
            .expect("the new container");
        assert!(c.status.is_running(), "{name}: {:?}", c.status);
        assert!(c.image.ends_with("feature_3.3.1_ce"), "{name}: {}", c.image);
        let old = docker
            .inspect(&format!("{name}-pre-3.3.1"))
            .await
            .unwrap()
            .expect("the old container, renamed");
        assert!(!old.status.is_running());
    }
}
