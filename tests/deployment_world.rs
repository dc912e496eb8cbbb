//! The demo world of issue 15 on the real engine and MariaDB: 3 emulator nodes over 2
//! regions (`oms_upgrade::demo::deployment`), each on its own loopback address and sharing
//! its region's `config.yaml`, then an upgrade image's `docker_init.sh` run on every node.
//!
//! Versions 4.2.1 -> 4.2.2: the cm database's server list (`host`, `resource_group`) exists
//! from 4.2.0 on (docs/emulator.md).

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use oms_upgrade::adapters::{BollardDocker, ContainerSpec, Docker};
use oms_upgrade::demo::deployment::{self, World, WorldSpec};
use support::emulator::{
    ContainerGuard, INIT_SUCCESS, container_logs, exec, free_port, health, images, scalar,
};
use support::{mysql_target, unique_name};

const OLD: &str = "4.2.1";
const NEW: &str = "4.2.2";

/// Rows `ip` wrote into `db`'s `heatbeat_sequence`.
async fn beats(db: &str, ip: &str) -> u64 {
    scalar(&format!(
        "SELECT COUNT(*) FROM `{db}`.heatbeat_sequence WHERE host_ip = '{ip}'"
    ))
    .await
    .unwrap_or(0)
}

/// Waits until every node has written a heartbeat into its region's database.
async fn wait_beats(world: &World) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for n in &world.nodes {
        let db = &world.regions[n.region].heartbeat_db;
        let ip = n.host_ip.to_string();
        while beats(db, &ip).await == 0 {
            assert!(
                Instant::now() < deadline,
                "{} ({ip}) wrote no heartbeat into its region's `{db}`",
                n.container
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// `ip -> resource group name` from the cm database's server list, as obd's takeover reads it.
async fn servers(cm: &str) -> BTreeMap<String, String> {
    let pool = support::mysql_pool().await;
    let mut c = pool.get_conn().await.expect("connection");
    use mysql_async::prelude::Queryable;
    let rows: Vec<(String, Option<String>)> = c
        .query(format!(
            "SELECT h.ip, g.name FROM `{cm}`.host h LEFT JOIN `{cm}`.resource_group g ON g.id = h.resource_group_id ORDER BY h.ip"
        ))
        .await
        .expect("read host");
    drop(c);
    pool.disconnect().await.ok();
    rows.into_iter()
        .map(|(ip, g)| (ip, g.unwrap_or_default()))
        .collect()
}

/// Everything an init may change, to compare before and after: every column of the
/// world's databases, the version row, the history, the server lists.
async fn fingerprint(world: &World) -> Vec<String> {
    let dbs = world
        .all_databases()
        .iter()
        .map(|d| format!("'{d}'"))
        .collect::<Vec<_>>()
        .join(",");
    let (rm, cm) = (&world.rm, &world.cm);
    let queries = [
        format!(
            "SELECT CONCAT(TABLE_SCHEMA,'.',TABLE_NAME,'.',COLUMN_NAME) FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA IN ({dbs}) ORDER BY 1"
        ),
        format!(
            "SELECT CONCAT(version,'/',IFNULL(previous_version,'')) FROM `{rm}`.oms_schema_version"
        ),
        format!(
            "SELECT CONCAT(id,':',version,':',kind) FROM `{rm}`.oms_schema_history ORDER BY id"
        ),
        format!("SELECT CONCAT(id,':',name) FROM `{cm}`.resource_group ORDER BY id"),
        format!("SELECT CONCAT(id,':',resource_group_id,':',ip) FROM `{cm}`.host ORDER BY id"),
        format!(
            "SELECT CONCAT(code,':',region,':',is_default_cm) FROM `{rm}`.cluster_info ORDER BY code"
        ),
    ];
    let pool = support::mysql_pool().await;
    let mut c = pool.get_conn().await.expect("connection");
    use mysql_async::prelude::Queryable;
    let mut out = Vec::new();
    for q in queries {
        let rows: Vec<String> = c.query(&q).await.unwrap_or_else(|e| panic!("{q}: {e}"));
        out.push(format!("{q}\n{}", rows.join("\n")));
    }
    drop(c);
    pool.disconnect().await.ok();
    out
}

async fn scalar_text_all(sql: &str) -> String {
    support::emulator::scalar_text(sql)
        .await
        .unwrap_or_default()
}

/// A fresh folder to hold a world's folder (kept when a test fails, for inspection).
fn world_parent() -> std::path::PathBuf {
    tempfile::Builder::new()
        .prefix("oms-world-")
        .tempdir()
        .expect("temp dir")
        .keep()
}

/// A world of `nodes` over `regions` on `image` in `dir`, labelled for `guard`, with fresh
/// database names and a free port; no seed, no extra environment, no progress lines.
fn world_spec(
    guard: &ContainerGuard,
    dir: std::path::PathBuf,
    image: &str,
    nodes: u8,
    regions: u8,
) -> WorldSpec {
    WorldSpec {
        prefix: guard.value.replace('_', "-"),
        dir,
        old_image: image.to_string(),
        target: mysql_target(),
        rm: unique_name("wrm"),
        cm: unique_name("wcm"),
        heartbeat_base: unique_name("whb"),
        nodes,
        regions,
        nginx_port: free_port(),
        labels: guard.labels().into_iter().collect(),
        env: Vec::new(),
        privileged: false,
        seed: None,
        progress: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_over_two_regions_run_and_init_once_per_region() {
    let raw = support::docker().await;
    let guard = ContainerGuard::new(&raw).await;
    let imgs = images(&raw, &[OLD, NEW]).await;
    let docker = BollardDocker::from_client(raw.clone());
    let dir = world_parent();
    let spec = WorldSpec {
        seed: Some(deployment::WorldSeed {
            emulator: support::emulator::emulator_binary(),
            size: "256K".into(),
        }),
        progress: Some(|line| eprintln!("world: {line}")),
        ..world_spec(&guard, dir.clone(), &imgs[0].reference, 3, 2)
    };
    let started = Instant::now();
    let world = match deployment::build(&docker, &spec).await {
        Ok(w) => w,
        Err(e) => {
            let mut logs = String::new();
            for i in 0..spec.nodes {
                let name = format!("{}-n{}", spec.prefix, i + 1);
                logs.push_str(&format!(
                    "--- {name}:\n{}\n",
                    container_logs(&raw, &name).await
                ));
            }
            panic!("the world was not built: {e}\n{logs}");
        }
    };
    eprintln!(
        "built a world of 3 nodes over 2 regions in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        scalar(&format!(
            "SELECT COUNT(*) FROM `{}`.oms_project WHERE project_id = 'awk-p-emoji'",
            world.rm
        ))
        .await,
        Some(1),
        "the world's metadata was not seeded"
    );
    let ips: Vec<String> = world.nodes.iter().map(|n| n.host_ip.to_string()).collect();
    assert_eq!(ips, ["127.0.0.2", "127.0.0.3", "127.0.0.4"]);
    assert_eq!(
        world.nodes.iter().map(|n| n.region).collect::<Vec<_>>(),
        [0, 0, 1]
    );

    // Every node answers healthy at its own address, as itself; nothing listens on the
    // port's other loopback addresses (no node took the wildcard address).
    for n in &world.nodes {
        let h = health(&n.health_url)
            .await
            .unwrap_or_else(|| panic!("{} does not answer at {}", n.container, n.health_url));
        assert_eq!(h["data"]["healthy"], true, "{}: {h}", n.container);
        assert_eq!(
            h["data"]["hostIp"],
            n.host_ip.to_string(),
            "{}: {h}",
            n.container
        );
        assert_eq!(h["data"]["version"], OLD, "{}: {h}", n.container);
    }
    let elsewhere = format!("http://127.0.0.1:{}/oms/health", world.nginx_port);
    assert!(
        health(&elsewhere).await.is_none(),
        "something answers at {elsewhere}: a node listens on the wildcard address"
    );

    // Heartbeats land in the node's region's database, and only there.
    wait_beats(&world).await;
    for n in &world.nodes {
        for (r, region) in world.regions.iter().enumerate() {
            if r != n.region {
                assert_eq!(
                    beats(&region.heartbeat_db, &n.host_ip.to_string()).await,
                    0,
                    "{} wrote heartbeats into another region's `{}`",
                    n.container,
                    region.heartbeat_db
                );
            }
        }
    }

    // The cm database lists all three servers in their regions' groups (cm_location).
    let expected: BTreeMap<String, String> =
        [("127.0.0.2", "1"), ("127.0.0.3", "1"), ("127.0.0.4", "2")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .into();
    assert_eq!(servers(&world.cm).await, expected);
    let regions = scalar_text_all(&format!(
        "SELECT GROUP_CONCAT(CONCAT(code,':',region,':',is_default_cm) ORDER BY code) FROM `{}`.cluster_info",
        world.rm
    ))
    .await;
    assert_eq!(regions, "1:region1:1,2:region2:0");

    // The inventory file reads back, and agrees with the config files and the server list.
    let text = std::fs::read_to_string(&world.inventory).expect("read the inventory");
    let inv = oms_upgrade::inventory::from_file(&text, &world.inventory).expect("inventory parses");
    let configs: Vec<_> = world
        .regions
        .iter()
        .map(|r| {
            (
                r.config.clone(),
                oms_upgrade::omsconfig::OmsConfig::load(&r.config).expect("config"),
            )
        })
        .collect();
    let refs: Vec<_> = configs.iter().map(|(p, c)| (p.clone(), c)).collect();
    let from_configs = oms_upgrade::inventory::from_configs(&refs).expect("configs agree");
    let listed: Vec<(String, String)> = servers(&world.cm).await.into_iter().collect();
    let findings = oms_upgrade::inventory::cross_check(&from_configs, Some(&inv), &listed);
    assert!(findings.is_empty(), "{findings:?}");

    // The upgrade image on every node, as the official procedure has it: all old nodes
    // stopped, a new container per node with the same binds, its OMS_HOST_IP, IS_UPGRADE.
    for n in &world.nodes {
        docker
            .stop(&n.container, Duration::from_secs(30))
            .await
            .expect("stop old node");
    }
    // Labels as an upgrade's new container inherits them from the old one.
    let mut new_labels = spec.labels.clone();
    new_labels.insert(deployment::WORLD_LABEL.into(), world.prefix.clone());
    let mut new_names = Vec::new();
    for n in &world.nodes {
        let name = format!("{}-new", n.container);
        let mut c = ContainerSpec::runbook(
            name.clone(),
            imgs[1].reference.clone(),
            n.binds.clone(),
            vec![
                format!("OMS_HOST_IP={}", n.host_ip),
                "IS_UPGRADE=true".to_string(),
            ],
            new_labels.clone(),
        );
        c.privileged = false;
        docker.create(&c).await.expect("create new node");
        docker.start(&name).await.expect("start new node");
        new_names.push(name);
    }
    let before = fingerprint(&world).await;
    let history = |v: &str| {
        format!(
            "SELECT COUNT(*) FROM `{}`.oms_schema_history WHERE kind = 'upgrade' AND version = '{v}'",
            world.rm
        )
    };

    // Region 1's first node migrates the shared schema, once.
    let upgrading = Instant::now();
    let first = exec(&raw, &new_names[0], &["bash", "/root/docker_init.sh"]).await;
    assert_eq!(first.exit_code, 0, "{}", first.output);
    assert!(first.output.contains(INIT_SUCCESS), "{}", first.output);
    assert!(first.output.contains("【步骤"), "{}", first.output);
    let migrated = fingerprint(&world).await;
    assert_ne!(before, migrated, "the first init changed nothing");
    assert_eq!(scalar(&history(NEW)).await, Some(1));

    // A second node of the same region (same config.yaml): idempotent, nothing changes.
    let second = exec(&raw, &new_names[1], &["bash", "/root/docker_init.sh"]).await;
    assert_eq!(second.exit_code, 0, "{}", second.output);
    assert!(second.output.contains(INIT_SUCCESS), "{}", second.output);
    assert!(!second.output.contains("【步骤"), "{}", second.output);
    assert_eq!(fingerprint(&world).await, migrated);

    // Region 2's node: the shared schema is migrated already; its own region is in place.
    let third = exec(&raw, &new_names[2], &["bash", "/root/docker_init.sh"]).await;
    assert_eq!(third.exit_code, 0, "{}", third.output);
    assert!(third.output.contains(INIT_SUCCESS), "{}", third.output);
    assert!(!third.output.contains("【步骤"), "{}", third.output);
    assert_eq!(fingerprint(&world).await, migrated);
    assert_eq!(scalar(&history(NEW)).await, Some(1));
    assert_eq!(servers(&world.cm).await, expected);

    // Every new node is healthy at its own address on the new version, heartbeating into
    // its region's database.
    for n in &world.nodes {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let h = health(&n.health_url).await;
            if h.as_ref()
                .is_some_and(|h| h["data"]["healthy"] == true && h["data"]["version"] == NEW)
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}-new not healthy at {NEW}: {h:?}",
                n.container
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    for n in &world.nodes {
        let db = &world.regions[n.region].heartbeat_db;
        let ip = n.host_ip.to_string();
        let start = beats(db, &ip).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while beats(db, &ip).await <= start {
            assert!(
                Instant::now() < deadline,
                "{ip}: no new heartbeat in `{db}`"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    eprintln!(
        "three inits and every new node healthy and heartbeating in {:.1} s",
        upgrading.elapsed().as_secs_f64()
    );
    let torn = deployment::teardown(&docker, &mysql_target(), &world, true)
        .await
        .expect("teardown");
    assert_eq!(torn.containers.len(), 6, "{torn:?}");
    assert_eq!(torn.databases.len(), 4, "{torn:?}");
    assert!(!dir.exists());
    for d in world.all_databases() {
        assert_eq!(
            scalar(&format!(
                "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{d}'"
            ))
            .await,
            Some(0),
            "{d} survived the teardown"
        );
    }
}

/// A world refused because one of its databases exists must not take that database with
/// it: tearing down the layout of the refused spec keeps what the world did not create, and
/// a folder that was not empty is refused before anything is made.
#[tokio::test]
async fn a_refused_world_leaves_what_it_did_not_create() {
    let raw = support::docker().await;
    let guard = ContainerGuard::new(&raw).await;
    let docker = BollardDocker::from_client(raw.clone());
    let theirs = support::TestDb::create("wtheirs").await;
    support::admin_blocking(vec![format!(
        "CREATE TABLE `{}`.precious (id INT PRIMARY KEY)",
        theirs.name
    )]);
    let dir = world_parent();
    let spec = WorldSpec {
        cm: theirs.name.clone(),
        ..world_spec(
            &guard,
            dir.join("world"),
            "oms-emu/oms:feature_4.2.1_ce",
            2,
            1,
        )
    };
    let err = deployment::build(&docker, &spec)
        .await
        .expect_err("a world over an existing database");
    assert!(
        matches!(&err, deployment::WorldError::DatabaseExists(d) if *d == theirs.name),
        "{err}"
    );
    let world = deployment::layout(&spec).expect("layout");
    deployment::teardown(&docker, &mysql_target(), &world, true)
        .await
        .expect("teardown");
    assert_eq!(
        scalar(&format!(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{}' AND TABLE_NAME = 'precious'",
            theirs.name
        ))
        .await,
        Some(1),
        "the teardown of a refused world dropped `{}`, which the world never created",
        theirs.name
    );

    // A folder holding something else is refused before any database is made.
    std::fs::create_dir_all(&spec.dir).expect("create folder");
    std::fs::write(spec.dir.join("notes.txt"), "mine").expect("write a file");
    let other = WorldSpec {
        cm: unique_name("wcm"),
        ..spec.clone()
    };
    let err = deployment::build(&docker, &other)
        .await
        .expect_err("a world in a folder that is not empty");
    assert!(
        matches!(&err, deployment::WorldError::BadSpec { field: "dir", .. }),
        "{err}"
    );
    assert_eq!(
        scalar(&format!(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{}'",
            other.rm
        ))
        .await,
        Some(0),
        "a refused world created a database"
    );
    let world = deployment::layout(&other).expect("layout");
    deployment::teardown(&docker, &mysql_target(), &world, true)
        .await
        .expect("teardown");
    assert!(
        spec.dir.join("notes.txt").exists(),
        "the teardown removed a folder the world did not make"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `docker_init.sh` echoes the client command it runs, password included (as OMS's does):
/// a world whose init fails names the failure without the metadata password.
#[tokio::test]
async fn a_failed_init_is_reported_without_the_password() {
    let raw = support::docker().await;
    let guard = ContainerGuard::new(&raw).await;
    let imgs = images(&raw, &[OLD]).await;
    let docker = BollardDocker::from_client(raw.clone());
    let dir = world_parent();
    let target = mysql_target();
    let spec = WorldSpec {
        env: vec!["OMS_EMU_INIT_FAIL=1".into()],
        ..world_spec(&guard, dir.join("world"), &imgs[0].reference, 1, 1)
    };
    let err = deployment::build(&docker, &spec)
        .await
        .expect_err("an init made to fail");
    let text = err.to_string();
    assert!(
        matches!(err, deployment::WorldError::Init { .. }),
        "not the init's failure: {text}"
    );
    assert!(text.contains("injected failure"), "{text}");
    let password = target.password.expose();
    assert!(
        !text.contains(password),
        "the error shows the metadata password: {text}"
    );
    let world = deployment::layout(&spec).expect("layout");
    let torn = deployment::teardown(&docker, &target, &world, true)
        .await
        .expect("teardown");
    assert_eq!(torn.databases.len(), 3, "{torn:?}");
    std::fs::remove_dir_all(&dir).ok();
}
