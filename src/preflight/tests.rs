//! One test per rule: the case that stops or fails, and the case that passes.

use std::io::{Error, ErrorKind};

use super::*;

const HA: &str = r#"{"enable":true,"enableStore":true,"refetchStoreIntervalMin":30}"#;

/// A single-node 3.3.0 -> 3.3.1 upgrade where every check passes.
fn facts() -> Facts {
    Facts {
        docker: true,
        container_name: "oms".into(),
        container: Some(Some(ContainerFacts {
            name: "oms".into(),
            id: "0123456789abcdef".into(),
            image: "reg/oceanbase/oms:feature_3.3.0_ce".into(),
            running: true,
            status: "Running".into(),
            binds: vec!["/data/conf/config.yaml:/home/admin/conf/config.yaml".into()],
        })),
        image_ref: "reg/oceanbase/oms:feature_3.3.1_ce".into(),
        image: Some(Some(ImageFacts {
            id: "sha256:fedcba9876543210".into(),
            labels: BTreeMap::new(),
        })),
        old_image_labels: BTreeMap::new(),
        from_version: None,
        to_version: None,
        binds: Some(vec![BindFacts {
            bind: "/data/conf/config.yaml:/home/admin/conf/config.yaml".into(),
            probe: Some(Ok(())),
        }]),
        config_path: Some(Some("/data/conf/config.yaml".into())),
        cm_nodes: Some(Ok(vec!["10.0.0.5".into()])),
        server: Some(ServerFacts {
            url: "mysql://oms@10.0.0.9:3306".into(),
            flavour: "MySql".into(),
            version: "8.0.36".into(),
            version_comment: String::new(),
        }),
        tls: Some("TLS 1.3".into()),
        databases: Some(DbNames {
            rm: "oms_rm".into(),
            cm: "oms_cm".into(),
            cm_hb: "oms_cm_hb".into(),
        }),
        servers: Some(Ok(Some(ServersListed {
            servers: vec!["10.0.0.5".into()],
            maybe_more: false,
        }))),
        exists: Some(
            ["oms_rm", "oms_cm", "oms_cm_hb"]
                .iter()
                .map(|d| (d.to_string(), Ok(true)))
                .collect(),
        ),
        ha_config: Some(Ok(Some(HA.into()))),
        disk: Some(DiskFacts {
            sizes: Ok(10),
            free: Ok(20),
            probe: "/var/lib".into(),
        }),
        host_ip: Some(Some("10.0.0.5".into())),
        health: Some(Some(
            "http://10.0.0.5:8089/oms/health answers healthy".into(),
        )),
        deployment: false,
    }
}

fn checks(f: &Facts) -> Vec<PreflightCheck> {
    evaluate(f)
        .into_iter()
        .filter_map(|f| match f {
            Finding::Check(c) => Some(c),
            Finding::Stop(_) => None,
        })
        .collect()
}

/// The check named `name` (the last one of that name).
fn named(f: &Facts, name: &str) -> PreflightCheck {
    checks(f)
        .into_iter()
        .rev()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name} in {:?}", evaluate(f)))
}

fn stop_of(f: &Facts) -> Stop {
    stops(f).unwrap_or_else(|| panic!("no stop in {:?}", evaluate(f)))
}

#[test]
fn everything_found_passes_in_order() {
    let f = facts();
    let all = checks(&f);
    assert!(all.iter().all(|c| c.ok), "{all:?}");
    assert_eq!(stops(&f), None);
    let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "docker",
            "container",
            "image",
            "versions",
            "binds",
            "config",
            "nodes",
            "metadb",
            "metadb-server",
            "metadb-tls",
            "nodes",
            "databases",
            "databases",
            "databases",
            "ha.config",
            "disk",
            "health"
        ]
    );
    let (from, to, p) = upgrade_path(&f).unwrap();
    assert_eq!(
        (from.to_string(), to.to_string()),
        ("3.3.0".into(), "3.3.1".into())
    );
    assert!(p.id.has_ha_steps());
}

#[test]
fn findings_end_at_the_first_fact_not_gathered() {
    let mut f = facts();
    f.server = None;
    let last = checks(&f).pop().unwrap();
    assert_eq!(last.name, "nodes");
    assert_eq!(stops(&f), None);
    assert!(evaluate(&Facts::default()).is_empty());
}

#[test]
fn a_missing_container_stops_and_a_stopped_one_fails() {
    let mut f = facts();
    f.container = Some(None);
    let s = stop_of(&f);
    assert_eq!((s.check, s.kind), ("container", StopKind::Input));
    assert_eq!(s.message, "no container named `oms`");

    let mut f = facts();
    if let Some(Some(c)) = &mut f.container {
        c.running = false;
        c.status = "Exited { code: 0 }".into();
    }
    f.health = Some(None);
    assert_eq!(stops(&f), None);
    let c = named(&f, "container");
    assert!(!c.ok && c.detail.contains("is not running"), "{c:?}");
    let h = named(&f, "health");
    assert!(!h.ok && h.detail.contains("not asked"), "{h:?}");

    assert!(
        named(&facts(), "container")
            .detail
            .contains("(0123456789ab)")
    );
}

#[test]
fn a_missing_image_stops() {
    let mut f = facts();
    f.image = Some(None);
    let s = stop_of(&f);
    assert_eq!((s.check, s.kind), ("image", StopKind::Input));
    assert!(s.message.contains("is not present locally"), "{s:?}");
    assert!(named(&facts(), "image").detail.contains("(fedcba987654)"));
}

#[test]
fn versions_stop_when_unreadable_disagreeing_or_unsupported() {
    let mut f = facts();
    if let Some(Some(c)) = &mut f.container {
        c.image = "oms:latest".into();
    }
    let s = stop_of(&f);
    assert_eq!((s.check, s.kind), ("versions", StopKind::Input));
    assert_eq!(s.hint.as_deref(), Some("pass --from-version X.Y.Z"));

    let mut f = facts();
    f.old_image_labels
        .insert(VERSION_LABEL.into(), "3.2.2".into());
    let s = stop_of(&f);
    assert!(s.message.contains("label says 3.2.2"), "{s:?}");

    let mut f = facts();
    f.to_version = Some("x.y".into());
    let s = stop_of(&f);
    assert_eq!((s.check, s.kind), ("versions", StopKind::Input));
    assert!(s.message.starts_with("--to-version: "), "{s:?}");

    let mut f = facts();
    f.image_ref = "oms:feature_4.2.2_ce".into();
    let s = stop_of(&f);
    assert_eq!((s.check, s.kind), ("versions", StopKind::Refused));
    assert_eq!(upgrade_path(&f), None);
}

#[test]
fn a_stated_version_is_a_check_of_its_own() {
    let mut f = facts();
    if let Some(Some(c)) = &mut f.container {
        c.image = "oms:latest".into();
    }
    f.from_version = Some("3.3.0".into());
    let c = named(&f, OPERATOR_VERSION_CHECK);
    assert!(c.ok, "{c:?}");
    assert!(
        c.detail
            .starts_with("--from-version 3.3.0 stated by the operator for `oms:latest`")
    );
    assert!(named(&f, "versions").ok);
}

#[test]
fn binds_tell_missing_unreadable_and_named_volumes_apart() {
    let bind = |b: &str, probe: Option<std::io::Result<()>>| bind_check(b, probe.as_ref());
    let c = bind("/data/logs:/home/admin/logs", Some(Ok(())));
    assert!(c.ok, "{c:?}");
    let c = bind(
        "/gone/run:/home/ds/run:rw",
        Some(Err(Error::from(ErrorKind::NotFound))),
    );
    assert!(!c.ok && c.detail.contains("does not exist"), "{c:?}");
    let c = bind(
        "/secret/store:/home/ds/store",
        Some(Err(Error::from(ErrorKind::PermissionDenied))),
    );
    assert!(!c.ok, "{c:?}");
    assert!(c.detail.contains("cannot be read"), "{c:?}");
    assert!(!c.detail.contains("does not exist"), "{c:?}");
    let c = bind("oms_store:/home/ds/store", None);
    assert!(!c.ok, "{c:?}");
    assert!(
        c.detail.contains("named Docker volume `oms_store`"),
        "{c:?}"
    );
    assert!(!c.detail.contains("does not exist"), "{c:?}");
    assert_eq!(bind_host_path("oms_store:/home/ds/store"), None);
    assert_eq!(
        bind_host_path("/data/logs:/home/admin/logs"),
        Some(Path::new("/data/logs"))
    );
}

#[test]
fn no_config_stops() {
    let mut f = facts();
    f.config_path = Some(None);
    let s = stop_of(&f);
    assert_eq!((s.check, s.kind), ("config", StopKind::Input));
    assert_eq!(s.message, "`oms` mounts no /home/admin/conf/config.yaml");
    assert!(named(&facts(), "config").ok);
}

#[test]
fn several_nodes_in_the_config_or_the_host_table_are_refused() {
    let mut f = facts();
    f.cm_nodes = Some(Ok(vec!["10.0.0.5".into(), "10.0.0.6".into()]));
    let s = stop_of(&f);
    assert_eq!((s.check, s.kind), ("nodes", StopKind::Refused));
    assert!(
        s.message
            .contains("lists 2 nodes in `cm_nodes`: 10.0.0.5, 10.0.0.6")
    );

    let mut f = facts();
    f.cm_nodes = Some(Err("cm_nodes is not a list".into()));
    let s = stop_of(&f);
    assert_eq!((s.check, s.kind), ("nodes", StopKind::Input));

    let mut f = facts();
    f.servers = Some(Ok(Some(ServersListed {
        servers: vec!["a".into(), "b".into()],
        maybe_more: true,
    })));
    let s = stop_of(&f);
    assert_eq!((s.check, s.kind), ("nodes", StopKind::Refused));
    assert!(s.message.contains("lists 2 or more servers: a; b"), "{s:?}");

    let mut f = facts();
    f.servers = Some(Err("denied".into()));
    let c = named(&f, "nodes");
    assert!(!c.ok && c.detail.contains("cannot read `oms_cm`.`host`: denied"));
    f.servers = Some(Ok(None));
    assert!(named(&f, "nodes").ok);
}

#[test]
fn several_nodes_with_an_inventory_are_left_to_the_deployment_rules() {
    let mut f = facts();
    f.deployment = true;
    f.cm_nodes = Some(Ok(vec!["10.0.0.5".into(), "10.0.0.6".into()]));
    f.servers = Some(Ok(Some(ServersListed {
        servers: vec!["a".into(), "b".into()],
        maybe_more: false,
    })));
    let findings = evaluate(&f);
    assert!(
        findings
            .iter()
            .all(|x| matches!(x, Finding::Check(c) if c.ok)),
        "{findings:?}"
    );
    assert!(
        checks(&f)
            .iter()
            .any(|c| c.name == "nodes" && c.detail.contains("checked against the inventory"))
    );

    f.deployment = false;
    let s = stop_of(&f);
    assert!(s.hint.unwrap().contains("--inventory FILE"));
}

#[test]
fn a_missing_database_fails() {
    let mut f = facts();
    if let Some(e) = &mut f.exists {
        e[1].1 = Ok(false);
        e[2].1 = Err("denied".into());
    }
    let dbs: Vec<_> = checks(&f)
        .into_iter()
        .filter(|c| c.name == "databases")
        .collect();
    assert!(dbs[0].ok);
    assert_eq!(dbs[1].detail, "database `oms_cm` does not exist");
    assert!(!dbs[2].ok && dbs[2].detail == "`oms_cm_hb`: denied");
}

#[test]
fn ha_config_must_be_readable_on_paths_that_switch_ha() {
    let mut f = facts();
    f.ha_config = Some(Ok(None));
    let c = named(&f, "ha.config");
    assert!(
        !c.ok && c.detail.contains("no `ha.config` row in oms_rm"),
        "{c:?}"
    );
    f.ha_config = Some(Ok(Some("{".into())));
    assert!(named(&f, "ha.config").detail.starts_with("not usable: "));
    // 3.2.2 -> 3.3.0 does not switch HA: ha.config is not asked for.
    let mut f = facts();
    if let Some(Some(c)) = &mut f.container {
        c.image = "oms:feature_3.2.2_ce".into();
    }
    f.image_ref = "oms:feature_3.3.0_ce".into();
    f.ha_config = None;
    assert!(checks(&f).iter().all(|c| c.name != "ha.config" && c.ok));
    assert_eq!(checks(&f).last().unwrap().name, "health");
}

#[test]
fn disk_check_fails_when_the_sizes_cannot_be_read() {
    let probe = Path::new("/var/lib");
    let c = disk_check(Err("SELECT denied".into()), Ok(1 << 40), probe);
    assert!(!c.ok, "{c:?}");
    assert!(c.detail.contains("SELECT denied"), "{c:?}");
    assert!(
        c.detail
            .contains("cannot read the metadata databases' sizes"),
        "{c:?}"
    );
    let c = disk_check(Ok(10), Err("statvfs failed".into()), probe);
    assert!(!c.ok && c.detail.contains("statvfs failed"), "{c:?}");
    assert!(disk_check(Ok(10), Ok(20), probe).ok);
    assert!(!disk_check(Ok(10), Ok(19), probe).ok);
}

#[test]
fn no_host_ip_stops() {
    let mut f = facts();
    f.host_ip = Some(None);
    let s = stop_of(&f);
    assert_eq!((s.check, s.kind), ("host-ip", StopKind::Input));
    assert_eq!(s.hint.as_deref(), Some("pass --host-ip"));
}
