//! One test per rule: the case that fails (naming the node), and the case that passes.

use super::*;

fn reference() -> Reference {
    Reference {
        source_version: "3.3.0".parse().unwrap(),
        old_image_id: "sha256:aaaa000000000000".into(),
        target_ref: "oms:feature_3.3.1_ce".into(),
        target_image_id: "sha256:bbbb000000000000".into(),
    }
}

/// A second node where every check passes.
fn node() -> NodeFacts {
    let mut n = NodeFacts::new(
        NodeId {
            label: "oms-b".into(),
            ip: "10.0.0.2".into(),
            endpoint: "ssh://root@10.0.0.2:22".into(),
        },
        "oms".into(),
        "/data/oms/config.yaml".into(),
    );
    n.engine = Some(Ok(()));
    n.container = Some(Ok(Some(NodeContainer {
        id: "0123456789abcdef".into(),
        image: "oms:feature_3.3.0_ce".into(),
        image_id: "sha256:aaaa000000000000".into(),
        image_labels: Default::default(),
        running: true,
        status: "Running".into(),
        host_ip: Some("10.0.0.2".into()),
        config_mount: Some("/data/oms/config.yaml".into()),
    })));
    n.target = Some(Ok(Some("sha256:bbbb000000000000".into())));
    n.binds = Some(vec![NodeBind {
        bind: "/data/oms/config.yaml:/home/admin/conf/config.yaml".into(),
        probe: BindProbe::Engine(Ok(())),
    }]);
    n.config = Some(Ok(()));
    n.health = Some(Ok("answers healthy".into()));
    n
}

fn failed(n: &NodeFacts) -> Vec<PreflightCheck> {
    evaluate_node(&reference(), n)
        .into_iter()
        .filter(|c| !c.ok)
        .collect()
}

#[test]
fn a_node_like_node_0_passes_and_every_check_names_it() {
    let checks = evaluate_node(&reference(), &node());
    assert!(checks.iter().all(|c| c.ok), "{checks:?}");
    for c in &checks {
        assert!(
            c.detail
                .starts_with("node oms-b (10.0.0.2, engine ssh://root@10.0.0.2:22): "),
            "{c:?}"
        );
    }
    let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "node-engine",
            "node-container",
            "node-version",
            "node-image",
            "node-binds",
            "node-health"
        ]
    );
}

#[test]
fn an_unreachable_engine_fails_and_ends_the_node() {
    let mut n = node();
    n.engine = Some(Err("connection refused".into()));
    let checks = evaluate_node(&reference(), &n);
    assert_eq!(checks.len(), 1, "{checks:?}");
    assert!(!checks[0].ok);
    assert!(checks[0].detail.contains("oms-b"));
    assert!(checks[0].detail.contains("connection refused"));
    assert!(!n.askable());
}

#[test]
fn a_missing_or_stopped_container_fails() {
    let mut n = node();
    n.container = Some(Ok(None));
    let f = failed(&n);
    assert_eq!(f.len(), 1);
    assert!(f[0].detail.contains("no container named `oms`"), "{f:?}");
    assert!(!n.askable());

    let mut n = node();
    if let Some(Ok(Some(c))) = &mut n.container {
        c.running = false;
        c.status = "Exited".into();
    }
    let f = failed(&n);
    assert_eq!(f.len(), 1);
    assert!(f[0].detail.contains("is not running (Exited)"), "{f:?}");
}

#[test]
fn another_source_version_fails_the_same_version_in_another_image_passes() {
    let mut n = node();
    if let Some(Ok(Some(c))) = &mut n.container {
        c.image = "oms:feature_3.2.2_ce".into();
        c.image_id = "sha256:cccc000000000000".into();
    }
    let f = failed(&n);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].name, "node-version");
    assert!(
        f[0].detail.contains("runs 3.2.2") && f[0].detail.contains("node 0 runs 3.3.0"),
        "{f:?}"
    );

    if let Some(Ok(Some(c))) = &mut n.container {
        c.image = "registry.local/oms:feature_3.3.0_ce".into();
    }
    assert!(failed(&n).is_empty());

    if let Some(Ok(Some(c))) = &mut n.container {
        c.image = "oms:latest".into();
    }
    let f = failed(&n);
    assert!(f[0].detail.contains("cannot read a version"), "{f:?}");
}

#[test]
fn the_target_image_must_be_there_with_node_0s_id() {
    let mut n = node();
    n.target = Some(Ok(None));
    let f = failed(&n);
    assert!(f[0].detail.contains("not present on its engine"), "{f:?}");
    n.target = Some(Ok(Some("sha256:dddd000000000000".into())));
    let f = failed(&n);
    assert!(f[0].detail.contains("dddd00000000"), "{f:?}");
    assert!(f[0].detail.contains("bbbb00000000"), "{f:?}");
}

#[test]
fn ip_and_config_must_match_the_inventory() {
    let mut n = node();
    if let Some(Ok(Some(c))) = &mut n.container {
        c.host_ip = Some("10.0.0.9".into());
        c.config_mount = Some("/elsewhere/config.yaml".into());
    }
    let f = failed(&n);
    assert_eq!(f.len(), 2, "{f:?}");
    assert!(f[0].detail.contains("OMS_HOST_IP is 10.0.0.9"), "{f:?}");
    assert!(f[1].detail.contains("/elsewhere/config.yaml"), "{f:?}");
}

#[test]
fn binds_and_health_fail_naming_what() {
    let mut n = node();
    n.binds = Some(vec![
        NodeBind {
            bind: "/data/logs:/home/admin/logs".into(),
            probe: BindProbe::Host(Err("No such file or directory".into())),
        },
        NodeBind {
            bind: "vol:/home/ds/store".into(),
            probe: BindProbe::Volume,
        },
    ]);
    n.health = Some(Err("no answer at http://10.0.0.2:8089/oms/health".into()));
    let f = failed(&n);
    assert_eq!(f.len(), 3, "{f:?}");
    assert!(f[0].detail.contains("/data/logs"));
    assert!(f[1].detail.contains("named Docker volume `vol`"));
    assert!(f[2].detail.contains("no answer"));
}

#[test]
fn node_0_is_found_by_its_ip_and_container() {
    let entries = vec![
        ("10.0.0.1".to_string(), "oms".to_string()),
        ("10.0.0.2".to_string(), "oms".to_string()),
    ];
    assert_eq!(locate_node0(&entries, "10.0.0.2", "oms"), Ok(1));
    assert!(
        locate_node0(&entries, "10.0.0.3", "oms")
            .unwrap_err()
            .contains("no node with IP 10.0.0.3")
    );
    assert!(
        locate_node0(&entries, "10.0.0.1", "oms-x")
            .unwrap_err()
            .contains("`oms-x`")
    );
}

#[test]
fn docker_init_runs_once_per_shared_config_file() {
    let n = |e: &str, p: &str| (e.to_string(), PathBuf::from(p));
    assert_eq!(
        runs_init(&[
            n("engine-a", "/c/hz.yaml"),
            n("engine-a", "/c/hz.yaml"),
            n("engine-b", "/c/hz.yaml"),
            n("engine-a", "/c/sh.yaml"),
        ]),
        [true, false, true, true]
    );
}

const HZ: &str = include_str!("../../../tests/fixtures/inventory/region_hz.yaml");
const SH: &str = include_str!("../../../tests/fixtures/inventory/region_sh.yaml");

fn cfg(text: &str, path: &str) -> (PathBuf, OmsConfig) {
    let path = PathBuf::from(path);
    let c = OmsConfig::parse(text, &path).unwrap();
    (path, c)
}

#[test]
fn regions_come_from_the_nodes_files_node_0s_first() {
    // Node 0 is in sh; two nodes of hz each have their own copy of hz's file.
    let r = regions_of(&[
        cfg(SH, "/n0/sh.yaml"),
        cfg(HZ, "/n1/hz.yaml"),
        cfg(HZ, "/n2/hz.yaml"),
    ])
    .unwrap();
    let names: Vec<&str> = r.list.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["sh", "hz"]);
    assert_eq!(r.list[1].heartbeat_db, "oms_cm_heartbeat_1");
    assert_eq!(r.of_file[&PathBuf::from("/n0/sh.yaml")], 0);
    assert_eq!(r.of_file[&PathBuf::from("/n2/hz.yaml")], 1);
    assert_eq!(r.inventory.nodes.len(), 6);
}

#[test]
fn two_files_of_one_region_that_differ_are_refused_naming_both() {
    let other = HZ.replace("  - 10.0.0.3\n", "  - 10.0.0.9\n");
    let e = regions_of(&[cfg(HZ, "/n0/hz.yaml"), cfg(&other, "/n1/hz.yaml")])
        .err()
        .unwrap();
    assert!(
        e.contains("/n0/hz.yaml") && e.contains("/n1/hz.yaml") && e.contains("cm_location 1"),
        "{e}"
    );
}
