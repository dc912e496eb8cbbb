use super::*;
use proptest::prelude::*;

const HZ: &str = include_str!("../../tests/fixtures/inventory/region_hz.yaml");
const SH: &str = include_str!("../../tests/fixtures/inventory/region_sh.yaml");
const FILE: &str = include_str!("../../tests/fixtures/inventory/inventory.yaml");

fn cfg(text: &str, path: &str) -> (PathBuf, OmsConfig) {
    let p = PathBuf::from(path);
    let c = OmsConfig::parse(text, &p).unwrap();
    (p, c)
}

fn from_texts(texts: &[(&str, &str)]) -> Result<Inventory, InventoryError> {
    let parsed: Vec<_> = texts.iter().map(|(t, p)| cfg(t, p)).collect();
    let refs: Vec<_> = parsed.iter().map(|(p, c)| (p.clone(), c)).collect();
    from_configs(&refs)
}

fn two_regions() -> Inventory {
    from_texts(&[(HZ, "/hz/config.yaml"), (SH, "/sh/config.yaml")]).unwrap()
}

fn hostile(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/inventory/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    // Test-only read of a fixture; the module itself does no I/O.
    std::fs::read_to_string(path).unwrap()
}

fn hostile_sh(name: &str) -> String {
    from_texts(&[(HZ, "/hz/config.yaml"), (&hostile(name), "/sh/config.yaml")])
        .unwrap_err()
        .to_string()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn metadb_of(inv: &Inventory) -> Vec<(String, String)> {
    inv.nodes
        .iter()
        .map(|n| {
            (
                n.ip.to_string(),
                n.location.map_or(String::new(), |l| l.to_string()),
            )
        })
        .collect()
}

#[test]
fn two_regions_of_three_nodes_from_config_yaml() {
    let inv = two_regions();
    assert_eq!(inv.nodes.len(), 6);
    assert_eq!(inv.regions.len(), 2);
    let hz = &inv.regions[0];
    assert_eq!(hz.name.as_deref(), Some("hz"));
    assert_eq!((hz.location, hz.is_default), (1, true));
    assert_eq!(hz.heartbeat_db, "oms_cm_heartbeat_1");
    assert_eq!(hz.cm_url.as_deref(), Some("http://10.0.0.10:8088"));
    let sh = &inv.regions[1];
    assert_eq!((sh.location, sh.is_default), (2, false));
    let n = inv.node(ip("10.0.1.3")).unwrap();
    assert_eq!(n.region.as_deref(), Some("sh"));
    assert_eq!(n.config_path.as_deref(), Some(Path::new("/sh/config.yaml")));
    assert_eq!((n.docker.as_ref(), n.container.as_ref()), (None, None));
}

#[test]
fn one_region_without_region_keys_is_the_default() {
    let text = "oms_meta_host: h\noms_meta_port: 3306\noms_meta_user: u\noms_meta_password: p\ndrc_rm_db: rm\ndrc_cm_db: cm\ndrc_cm_heartbeat_db: hb\ncm_location: 0\ncm_nodes: [10.0.0.6]\n";
    let inv = from_texts(&[(text, "/c.yaml")]).unwrap();
    assert_eq!(inv.regions[0].name, None);
    assert!(inv.regions[0].is_default);
    assert_eq!(inv.nodes[0].ip, ip("10.0.0.6"));
    // Without cm_nodes there is no inventory to speak of: say which key.
    let e = from_configs(&[]).unwrap_err().to_string();
    assert!(e.contains("no config.yaml was given"), "{e}");
    let none = text.replace("cm_nodes: [10.0.0.6]\n", "");
    let e = from_texts(&[(&none, "/c.yaml")]).unwrap_err().to_string();
    assert!(
        e.contains("/c.yaml") && e.contains("`cm_nodes` is missing"),
        "{e}"
    );
}

#[test]
fn hostile_config_files_are_refused_naming_file_and_key() {
    let cases = [
        ("hostile_same_location.yaml", "`cm_location: 1`"),
        (
            "hostile_two_defaults.yaml",
            "exactly one region must have `cm_is_default: true`",
        ),
        (
            "hostile_bad_ip.yaml",
            "\"10.0.1.999\", which is not an IP address",
        ),
        (
            "hostile_location_range.yaml",
            "`cm_location` must be an integer 0-127, found 128",
        ),
        (
            "hostile_node_in_two_regions.yaml",
            "node 10.0.0.3 is listed in `cm_nodes` twice",
        ),
        (
            "hostile_same_heartbeat_db.yaml",
            "share `drc_cm_heartbeat_db: oms_cm_heartbeat_1`",
        ),
        (
            "hostile_region_name.yaml",
            "`cm_region` must be 1-64 letters",
        ),
    ];
    for (file, want) in cases {
        let e = hostile_sh(file);
        assert!(e.contains(want), "{file}: {e}");
        assert!(e.contains("/sh/config.yaml"), "{file} names the file: {e}");
        assert!(!e.contains("not-a-real-password"), "{file}: {e}");
    }
}

#[test]
fn no_default_region_and_a_different_metadata_db_are_refused() {
    let sh_not_default = SH.to_string();
    let hz_not_default = HZ.replace("cm_is_default: true", "cm_is_default: false");
    let e = from_texts(&[(&hz_not_default, "/hz.yaml"), (&sh_not_default, "/sh.yaml")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("but none is"), "{e}");
    let other_db = SH.replace("drc_rm_db: oms_rm", "drc_rm_db: other_rm");
    let e = from_texts(&[(HZ, "/hz.yaml"), (&other_db, "/sh.yaml")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("different metadata databases"), "{e}");
    // Several regions: each must name itself and say whether it is the default.
    let unnamed = SH.replace("cm_region: sh\n", "");
    let e = from_texts(&[(HZ, "/hz.yaml"), (&unnamed, "/sh.yaml")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("`cm_region` is missing"), "{e}");
}

#[test]
fn inventory_file_parses_every_endpoint_form() {
    let inv = from_file(FILE, Path::new("/inv.yaml")).unwrap();
    assert_eq!(inv.nodes.len(), 6);
    assert_eq!(
        inv.node(ip("10.0.0.3")).unwrap().docker.as_deref(),
        Some("ssh://admin@oms-hz-3.example.com:2222")
    );
    assert_eq!(inv.nodes[3].location, Some(2));
    assert_eq!(inv.nodes[3].is_default, Some(false));
    assert_eq!(inv.nodes[1].location, None);
    assert_eq!(inv.nodes[0].name, None);
    let named = FILE.replacen("  - ip: ", "  - name: oms-hz-1\n    ip: ", 1);
    let inv = from_file(&named, Path::new("/inv.yaml")).unwrap();
    assert_eq!(inv.nodes[0].name.as_deref(), Some("oms-hz-1"));
}

#[test]
fn inventory_file_unknown_field_is_refused_with_its_line() {
    let text = hostile("hostile_inventory_unknown_field.yaml");
    let e = from_file(&text, Path::new("/inv.yaml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/inv.yaml") && e.contains("unknown field `password`"),
        "{e}"
    );
    assert!(e.contains("line 6"), "names the line: {e}");
    assert!(!e.contains("hunter2"), "{e}");
}

#[test]
fn inventory_file_hostile_values_are_refused_naming_node_and_field() {
    let base = "nodes:\n  - ip: 10.0.0.1\n    docker: unix:///var/run/docker.sock\n    container: oms\n    config: /data/oms/config.yaml\n";
    let cases = [
        (
            "ip: 10.0.0.1",
            "ip: 10.0.0.1; rm -rf /",
            "`ip` is not an IP address",
        ),
        (
            "ip: 10.0.0.1",
            "ip: 10.0.0.1\n    name: -oProxyCommand=x",
            "`name` must be 1-64 letters",
        ),
        (
            "docker: unix:///var/run/docker.sock",
            "docker: http://x",
            "must start with unix://",
        ),
        (
            "docker: unix:///var/run/docker.sock",
            "docker: unix://../sock",
            "absolute socket path",
        ),
        (
            "docker: unix:///var/run/docker.sock",
            "docker: ssh://host",
            "must name the user",
        ),
        (
            "docker: unix:///var/run/docker.sock",
            "docker: ssh://-oProxyCommand@h",
            "SSH user",
        ),
        (
            "docker: unix:///var/run/docker.sock",
            "docker: ssh://u@-oProxyCommand",
            "SSH host",
        ),
        (
            "docker: unix:///var/run/docker.sock",
            "docker: tcp://h",
            "must name the port",
        ),
        (
            "docker: unix:///var/run/docker.sock",
            "docker: tcp://h:0",
            "must name the port",
        ),
        (
            "container: oms",
            "container: \"oms; rm\"",
            "`container` must be a Docker container name",
        ),
        (
            "container: oms",
            "container: -oms",
            "`container` must be a Docker container name",
        ),
        (
            "config: /data/oms/config.yaml",
            "config: /data/../etc/shadow",
            "`config` must be an absolute",
        ),
        (
            "config: /data/oms/config.yaml",
            "config: rel/config.yaml",
            "`config` must be an absolute",
        ),
    ];
    for (from, to, want) in cases {
        let text = base.replace(from, to);
        let e = from_file(&text, Path::new("/inv.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{to}: {e}");
        assert!(e.contains("/inv.yaml: node 1"), "{to}: {e}");
    }
    let twice = format!("{base}{}", &base["nodes:\n".len()..]);
    let e = from_file(&twice, Path::new("/inv.yaml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("node 2 (`10.0.0.1`): `ip` is listed twice"),
        "{e}"
    );
    let e = from_file(&format!("{base}    location: 200\n"), Path::new("/i"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`location` must be an integer 0-127"), "{e}");
    let e = from_file("nodes: []\n", Path::new("/i"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`nodes` is empty"), "{e}");
    let e = from_file(&base.replace("    container: oms\n", ""), Path::new("/i"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing field `container`"), "{e}");
}

#[test]
fn agreeing_sources_give_no_findings() {
    let config = two_regions();
    let file = from_file(FILE, Path::new("/inv.yaml")).unwrap();
    assert_eq!(
        cross_check(&config, Some(&file), &metadb_of(&config)),
        vec![]
    );
}

#[test]
fn a_node_in_another_region_in_the_metadata_db_names_both_sources() {
    let config = two_regions();
    let mut db = metadb_of(&config);
    db[2].1 = "2".into();
    let f = cross_check(&config, None, &db);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(
        f[0].to_string(),
        "node 10.0.0.3 is in config.yaml region hz (cm_location 1) but the metadata DB lists it in 2"
    );
    // The metadata DB may name the region by its cm_region too.
    db[2].1 = "hz".into();
    assert_eq!(cross_check(&config, None, &db), vec![]);
    db[2].1 = "sh".into();
    assert_eq!(cross_check(&config, None, &db).len(), 1);
}

#[test]
fn every_kind_of_disagreement_is_reported_at_once() {
    let config = two_regions();
    let mut file = from_file(FILE, Path::new("/inv.yaml")).unwrap();
    file.nodes.remove(5); // 10.0.1.3 missing from the file
    file.nodes[0].location = Some(9);
    file.nodes[3].is_default = Some(true);
    let mut db = metadb_of(&config);
    db.remove(0); // 10.0.0.1 missing from the metadata DB
    db.push(("10.0.9.9".into(), "1".into())); // unknown to config.yaml
    db.push(("not-an-ip".into(), "1".into()));
    db.push(("10.0.1.2".into(), "1".into())); // listed again, in another region
    file.nodes[4].region = Some("hz".into()); // 10.0.1.2 is in sh
    let got: Vec<String> = cross_check(&config, Some(&file), &db)
        .iter()
        .map(ToString::to_string)
        .collect();
    let want = [
        "node 10.0.0.1 is listed in config.yaml but not in the metadata DB",
        "node 10.0.9.9 is listed in the metadata DB but not in config.yaml",
        "node 10.0.1.3 is listed in config.yaml but not in the inventory file",
        "node 10.0.0.1 has cm_location 1 in config.yaml but 9 in the inventory file",
        "node 10.0.1.1 is in not the default region in config.yaml but in the default region in the inventory file",
        "the metadata DB lists a server `not-an-ip`",
        "node 10.0.1.2 is in config.yaml region sh (cm_location 2) but the inventory file lists it in hz",
        "node 10.0.1.2 is in the metadata DB region 2 but the metadata DB lists it in 1",
    ];
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for w in want {
        assert!(
            got.iter().any(|g| g.contains(w)),
            "missing {w:?} in {got:#?}"
        );
    }
}

fn listed(name: &str, location: u8, is_default: bool) -> ListedRegion {
    ListedRegion {
        name: name.into(),
        location,
        is_default,
    }
}

#[test]
fn regions_are_cross_checked_with_cluster_info() {
    let config = two_regions();
    let agree = [listed("hz", 1, true), listed("sh", 2, false)];
    assert_eq!(cross_check_regions(&config, &agree), vec![]);
    let disagree = [
        listed("hz", 1, false),
        listed("bj", 2, true),
        listed("gz", 3, false),
    ];
    let got: Vec<String> = cross_check_regions(&config, &disagree)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        got,
        [
            "region with cm_location 3 is in the metadata DB but not in config.yaml; is a region's config.yaml missing, or from another deployment?",
            "region with cm_location 1 has cm_is_default true in config.yaml but false in the metadata DB",
            "region with cm_location 2 has cm_is_default false in config.yaml but true in the metadata DB",
            "region with cm_location 2 has cm_region sh in config.yaml but bj in the metadata DB",
        ]
    );
    let e = cross_check_regions(&config, &agree[..1]);
    assert_eq!(
        e[0].to_string(),
        "region with cm_location 2 is in config.yaml but not in the metadata DB; is a region's config.yaml missing, or from another deployment?"
    );
}

fn arb_inventory() -> impl Strategy<Value = Inventory> {
    proptest::collection::btree_map(any::<u32>(), 0u8..4, 1..12).prop_map(|m| Inventory {
        nodes: m
            .into_iter()
            .map(|(ip, r)| NodeEntry {
                name: None,
                ip: IpAddr::from(ip.to_be_bytes()),
                docker: None,
                container: None,
                config_path: None,
                region: Some(format!("r{r}")),
                location: Some(r),
                is_default: Some(r == 0),
            })
            .collect(),
        regions: Vec::new(),
    })
}

proptest! {
    #[test]
    fn an_inventory_agrees_with_itself(inv in arb_inventory()) {
        prop_assert_eq!(cross_check(&inv, Some(&inv), &metadb_of(&inv)), vec![]);
    }

    #[test]
    fn dropping_or_moving_one_node_is_one_finding_naming_it(
        inv in arb_inventory(), pick in any::<prop::sample::Index>(), drop in any::<bool>()
    ) {
        let i = pick.index(inv.nodes.len());
        let node = inv.nodes[i].ip;
        let mut db = metadb_of(&inv);
        if drop {
            db.remove(i);
        } else {
            db[i].1.push_str("-moved");
        }
        let f = cross_check(&inv, None, &db);
        prop_assert_eq!(f.len(), 1);
        let msg = f[0].to_string();
        prop_assert!(msg.contains(&node.to_string()), "{}", msg);
        prop_assert!(msg.contains("config.yaml") && msg.contains("the metadata DB"), "{}", msg);
    }

    #[test]
    fn endpoint_check_never_panics_and_accepts_only_known_schemes(s in ".{0,80}") {
        if check_endpoint(&s).is_ok() {
            prop_assert!(
                s.starts_with("unix:///") || s.starts_with("ssh://") || s.starts_with("tcp://")
            );
            prop_assert!(!s.contains(char::is_whitespace) && !s.contains(['\'', '"', ';', '`', '$']));
        }
    }

    #[test]
    fn inventory_file_parser_never_panics(s in ".{0,200}") {
        let _ = from_file(&s, Path::new("/i"));
    }
}
