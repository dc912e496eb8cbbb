//! Sample plans and facts for the core's tests (events, steps, replay, property tests).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;

use super::*;
use crate::refetch::{self, RefetchPolicy};
use crate::versions::Version;

/// A fixed time origin for tests.
pub(crate) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 4, 0, 0).unwrap()
}

/// The plan input for `source -> target` (3.3.0 -> 3.3.1 unless told otherwise).
pub(crate) fn input(source: &str, target: &str) -> PlanInput {
    PlanInput {
        run_id: Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0),
        tool_version: "0.1.0".into(),
        source_version: source.parse::<Version>().unwrap(),
        target_version: target.parse::<Version>().unwrap(),
        old_container: ContainerSnapshot {
            id: "c0ffee".repeat(10) + "abcd",
            name: "oms".into(),
            image: format!("oms:feature_{source}_ce"),
            image_id: "sha256:".to_string() + &"1".repeat(64),
            binds: vec![
                "/data/config.yaml:/home/admin/conf/config.yaml".into(),
                "/data/oms/oms_logs:/home/admin/logs".into(),
                "/data/oms/oms_store:/home/ds/store".into(),
                "/data/oms/oms_run:/home/ds/run".into(),
            ],
            env: record_env(&[
                "OMS_HOST_IP=10.0.0.5",
                "OMS_META_PASSWORD=hunter2",
                "PATH=/usr/bin",
            ]),
            labels: BTreeMap::from([("team".to_string(), "dba".to_string())]),
        },
        target_image: format!("oms:feature_{target}_ce"),
        target_image_id: Some("sha256:".to_string() + &"2".repeat(64)),
        old_renamed_to: None,
        privileged: true,
        host_ip: "10.0.0.5".into(),
        metadb: MetaDbLocation {
            display_url: "mysql://oms@10.0.0.9:3306".into(),
            host: "10.0.0.9".into(),
            port: 3306,
            user: "oms".into(),
        },
        databases: DbNames {
            rm: "oms_rm".into(),
            cm: "oms_cm".into(),
            cm_hb: "oms_cm_hb".into(),
        },
        backup_dir: "/var/backups/oms".into(),
        ha_mode: HaMode::Sql,
        ha_after: HaAfter::Enable,
        refetch: RefetchPolicy::default(),
        stop_timeout_secs: None,
        init_timeout_secs: None,
        health_url: "http://10.0.0.5:8089/oms/health".into(),
        health_timeout_secs: None,
        ext: Vec::new(),
    }
}

/// The runbook's plan: 3.3.0 -> 3.3.1.
pub(crate) fn plan() -> Plan {
    Plan::new(input("3.3.0", "3.3.1")).unwrap()
}

/// A plan for `source -> target`.
/// A plan holding one extension of every kind (stored as `run.planned` v2).
pub(crate) fn plan_with_every_ext() -> Plan {
    let mut input = input("3.3.0", "3.3.1");
    input.ext = vec![
        PlanExt::Health(HealthTrust {
            scheme: HealthScheme::Https,
            url_from_operator: false,
            detected_from: Some(
                "/data/oms/tls/console.crt:/etc/pki/nginx/oms_server.crt:ro".into(),
            ),
            ca_file: Some("/etc/oms-upgrade/console-ca.pem".into()),
            ca_blake3_hex: Some("ab".repeat(32)),
        }),
        PlanExt::MetaServer(MetaServer {
            flavour: ServerFlavour::MariaDb,
            version: "10.11.6-MariaDB".into(),
        }),
        PlanExt::Container(Box::new(container_settings())),
        PlanExt::HaAtInit(HaAtInit { json: HA_ON.into() }),
    ];
    Plan::new(input).expect("sample plan")
}

/// Settings of an old container started with `--restart unless-stopped`, an env of its
/// own (a secret among it), a log driver option and an extra host.
pub(crate) fn container_settings() -> ContainerSettings {
    ContainerSettings {
        restart: RestartPolicy {
            name: "unless-stopped".into(),
            max_retries: 0,
        },
        network_mode: "host".into(),
        env: record_env(&[
            "OMS_HOST_IP=10.0.0.5",
            "OMS_META_PASSWORD=hunter2",
            "TZ=UTC",
        ]),
        ulimits: vec![
            Ulimit {
                name: "nproc".into(),
                soft: 65535,
                hard: 65535,
            },
            Ulimit {
                name: "nofile".into(),
                soft: 1024,
                hard: 4096,
            },
        ],
        log_driver: "json-file".into(),
        log_opts: record_env(&["max-size=10m"]),
        extra_hosts: vec!["meta.local:10.0.0.9".into()],
        devices: vec![],
        cap_add: vec![],
        cap_drop: vec![],
        dns: vec![],
        dns_search: vec![],
        dns_options: vec![],
        shm_size: Some(67108864),
        tmpfs: BTreeMap::new(),
        security_opt: vec![],
    }
}

/// The runbook's plan with the old container's settings recorded (`run.planned` v2).
pub(crate) fn plan_with_settings() -> Plan {
    let mut input = input("3.3.0", "3.3.1");
    input.ext = vec![PlanExt::Container(Box::new(container_settings()))];
    Plan::new(input).expect("sample plan")
}

/// A deployment of `nodes` nodes over `regions` regions (node i in region i % regions),
/// with settings recorded on every node; docker_init on the first node of each region.
pub(crate) fn deployment_plan(nodes: u8, regions: u8) -> Plan {
    let mut input = input("4.2.1", "4.2.2");
    input.ext = vec![PlanExt::Container(Box::new(container_settings()))];
    let base = Plan::new(input.clone()).expect("sample plan");
    let region_of = |i: u8| RegionIx(i % regions);
    let meta = |i: u8, label: String| NodeMeta {
        label,
        region: region_of(i),
        endpoint: if i == 0 {
            "local".into()
        } else {
            format!("ssh://root@10.0.0.{}", 5 + i)
        },
        runs_init: i < regions,
    };
    let deployment = Deployment {
        node0: meta(0, "oms-a".into()),
        regions: (0..regions)
            .map(|r| RegionPlan {
                name: format!("region-{r}"),
                heartbeat_db: if r == 0 {
                    base.databases.cm_hb.clone()
                } else {
                    format!("oms_cm_hb_{r}")
                },
            })
            .collect(),
        nodes: (1..nodes)
            .map(|i| {
                let ip = format!("10.0.0.{}", 5 + i);
                NodePlan {
                    meta: meta(i, format!("oms-{}", (b'a' + i) as char)),
                    old_container: ContainerSnapshot {
                        id: format!("{i}").repeat(64),
                        ..base.old_container.clone()
                    },
                    settings: Some(Box::new(container_settings())),
                    host_ip: ip.clone(),
                    health_url: format!("http://{ip}:8089/oms/health"),
                    old_renamed_to: base.old_renamed_to.clone(),
                    new_name: base.new_name.clone(),
                    failed_name: base.failed_name.clone(),
                    target_image_id: base.target_image_id.clone(),
                }
            })
            .collect(),
    };
    input.ext.push(PlanExt::Deployment(Box::new(deployment)));
    Plan::new(input).expect("sample deployment plan")
}

pub(crate) fn plan_for(source: &str, target: &str) -> Plan {
    Plan::new(input(source, target)).unwrap()
}

pub(crate) const HA_ON: &str =
    r#"{"enable":true,"enableStore":true,"refetchStoreIntervalMin":30,"custom":{"x":1}}"#;
pub(crate) const HA_OFF: &str =
    r#"{"enable":false,"enableStore":true,"refetchStoreIntervalMin":30,"custom":{"x":1}}"#;

/// A dump artifact for one database of `plan`.
pub(crate) fn artifact(plan: &Plan, db: MetaDb) -> DumpArtifact {
    DumpArtifact {
        db,
        database: plan.databases.get(db).to_string(),
        file: plan.dump_file(db),
        size: 4096 + db as u64,
        blake3_hex: blake3::hash(plan.dump_file(db).as_bytes())
            .to_hex()
            .to_string(),
        format: crate::events::FileFormat::Sql,
        compression: crate::events::Compression::None,
        dumper: crate::events::Dumper::Native,
        charset: "utf8mb4".into(),
        collation: "utf8mb4_bin".into(),
        views: vec![],
        tables: vec![TableFact {
            name: "t".into(),
            rows: 3,
            checksum: "abc".into(),
            method: crate::events::ChecksumMethod::Blake3Rows,
        }],
    }
}

/// Successful facts for `key` under `plan`, as an executor would record them at `at`.
/// `t1` is needed for `enable-ha` facts.
pub(crate) fn done_facts(
    plan: &Plan,
    key: StepKey,
    at: DateTime<Utc>,
    t1: Option<DateTime<Utc>>,
) -> StepFacts {
    match key {
        StepKey::Node { node, step } => done_facts(&plan.for_node(node), step.base(), at, t1),
        StepKey::Region { region, step } => {
            done_facts(&plan.for_region(region), step.base(), at, t1)
        }
        StepKey::DisableHa | StepKey::RollbackDisableHa => StepFacts::HaDisabled(HaDisabled {
            previous_json: HA_ON.into(),
            written_json: Some(HA_OFF.into()),
            mode: plan.ha_mode,
            attestation: None,
        }),
        StepKey::StopOldContainer | StepKey::StopNewContainer => {
            StepFacts::ContainerStopped(ContainerStopped {
                id: plan.old_container.id.clone(),
                stopped_at: at,
                stop_requested_at: None,
                docker_finished_at: Some(at - Duration::milliseconds(300)),
                exit_code: Some(0),
                already_stopped: false,
            })
        }
        StepKey::PruneHeartbeat => StepFacts::HeartbeatPruned {
            max_id: Some(9000),
            rows_deleted: 8999,
            batches: None,
            batch_rows: None,
            warning: None,
        },
        StepKey::DropPrunedHeartbeat | StepKey::RollbackDropPrunedHeartbeat => {
            StepFacts::PrunedHeartbeatDropped {
                table: crate::sqltext::HeartbeatSwap::for_run(0x0a1b_2c3d).old,
                rows: Some(8999),
            }
        }
        StepKey::Dump { db } => StepFacts::DumpWritten(artifact(plan, db)),
        StepKey::RenameOldContainer => StepFacts::ContainerRenamed {
            id: plan.old_container.id.clone(),
            from: plan.new_name.clone(),
            to: plan.old_renamed_to.clone(),
        },
        StepKey::RenameNewAside => StepFacts::ContainerRenamed {
            id: "new".into(),
            from: plan.new_name.clone(),
            to: plan.failed_name.clone(),
        },
        StepKey::RenameOldBack => StepFacts::ContainerRenamed {
            id: plan.old_container.id.clone(),
            from: plan.old_renamed_to.clone(),
            to: plan.new_name.clone(),
        },
        StepKey::CreateNewContainer => StepFacts::NewContainerCreated(NewContainer {
            id: "new".into(),
            name: plan.new_name.clone(),
            image: plan.target_image.clone(),
            image_id: plan.target_image_id.clone(),
            binds: plan.old_container.binds.iter().rev().cloned().collect(),
            env: record_env(&["OMS_HOST_IP=10.0.0.5", "IS_UPGRADE=true"]),
            old_binds: plan.old_container.binds.clone(),
            binds_equal_to_old: true,
        }),
        StepKey::StartNewContainer => StepFacts::NewContainerStarted {
            id: "new".into(),
            started_at: Some(at),
        },
        StepKey::CheckSupervisor => StepFacts::SupervisorChecked {
            programs: vec![NamedState {
                name: "oms_console".into(),
                state: "RUNNING".into(),
            }],
            all_running: true,
        },
        StepKey::RunDockerInit => StepFacts::DockerInit(DockerInit {
            exit_code: 0,
            marker_seen: true,
            log_file: Some("/home/admin/logs/docker_init.log".into()),
            log_blake3: "ab".repeat(32),
            log_tail: "【结束】全部初始化步骤执行成功".into(),
            harmless_errors: vec![],
        }),
        StepKey::ConfirmHealth | StepKey::ConfirmOldHealth => StepFacts::Health(Health {
            url: plan.health_url.clone(),
            healthy: true,
            body_blake3: "cd".repeat(32),
            container_id: Some("new".into()),
        }),
        StepKey::CheckOnline => StepFacts::NodesOnline {
            nodes: vec![NamedState {
                name: plan.host_ip.clone(),
                state: "Online".into(),
            }],
            all_online: true,
        },
        StepKey::EnableHa | StepKey::RollbackEnableHa => StepFacts::HaEnabled(HaEnabled {
            enabled_at: at,
            previous_json: HA_OFF.into(),
            written_json: HA_ON.replace("30", "90"),
            refetch: t1.map(|t1| refetch::decide(&plan.refetch, t1, at)),
            mode: plan.ha_mode,
            attestation: None,
        }),
        StepKey::Complete | StepKey::RollbackComplete => StepFacts::Completed,
        StepKey::OldRestartOff | StepKey::RollbackRestartPolicy => {
            let was = plan
                .container_settings()
                .map(|c| c.restart.clone())
                .unwrap_or_else(RestartPolicy::no);
            let (before, after) = if key == StepKey::OldRestartOff {
                (was, RestartPolicy::no())
            } else {
                (RestartPolicy::no(), was)
            };
            StepFacts::RestartPolicySet {
                id: plan.old_container.id.clone(),
                before,
                after,
            }
        }
        StepKey::PreStopCheck => StepFacts::PreStopChecked {
            checks: vec![crate::events::PreflightCheck {
                name: "image".into(),
                ok: true,
                detail: format!("{} is still the planned image", plan.target_image),
            }],
        },
        StepKey::RollbackVerifyDumps => StepFacts::DumpsVerified {
            checks: MetaDb::ALL
                .iter()
                .map(|&db| (plan.clone(), db))
                .chain(
                    plan.regions()
                        .into_iter()
                        .filter(|r| r.0 != 0)
                        .map(|r| (plan.for_region(r), MetaDb::CmHb)),
                )
                .map(|(plan, db)| DumpCheck {
                    db,
                    file: plan.dump_file(db),
                    found_blake3: Some(artifact(&plan, db).blake3_hex),
                    ok: true,
                })
                .collect(),
        },
        StepKey::RecreateDatabase { db } => StepFacts::DatabaseRecreated {
            db,
            database: plan.databases.get(db).to_string(),
        },
        StepKey::Restore { db } => StepFacts::Restored(Restored {
            db,
            database: plan.databases.get(db).to_string(),
            file: plan.dump_file(db),
            verified_blake3: artifact(plan, db).blake3_hex,
            tables: artifact(plan, db).tables,
            tables_match: true,
        }),
        StepKey::RestartOldContainer => StepFacts::ContainerRestarted {
            id: plan.old_container.id.clone(),
            name: plan.new_name.clone(),
        },
    }
}

/// One event of every type and every facts variant (for round trips).
pub(crate) fn every_event() -> Vec<Event> {
    let p = plan();
    let at = t0() + Duration::minutes(61);
    let mut v = vec![
        Event::planned(p.clone()),
        Event::planned(plan_with_every_ext()),
        Event::PreflightFailed {
            checks: vec![
                PreflightCheck {
                    name: "path-supported".into(),
                    ok: true,
                    detail: "3.3.0 -> 3.3.1".into(),
                },
                PreflightCheck {
                    name: "target-image-present".into(),
                    ok: false,
                    detail: "load the image with docker load".into(),
                },
            ],
        },
        Event::RollbackRequested {
            reason: "docker_init.sh failed".into(),
        },
        Event::Note {
            text: "change ticket CHG-42 ✓".into(),
        },
        Event::Attestation(Attestation {
            by: "alice".into(),
            statement: "set enable=false in the console".into(),
            step: Some(StepKey::DisableHa),
            observed_at: Some(at),
        }),
        Event::StepReconciled {
            key: StepKey::StopOldContainer,
            finding: Finding::NotDone,
            evidence: "container running".into(),
        },
        Event::StepReconciled {
            key: StepKey::RunDockerInit,
            finding: Finding::Failed {
                error: "log ends mid-way".into(),
                retryable: false,
                kind: FailureKind::Service,
            },
            evidence: "docker_init.log".into(),
        },
        Event::StepReconciled {
            key: StepKey::OldRestartOff,
            finding: Finding::Failed {
                error: "gone".into(),
                retryable: false,
                kind: FailureKind::Unrecorded,
            },
            evidence: "docker_init.log".into(),
        },
    ];
    for key in StepKey::all() {
        let facts = done_facts(&p, key, at, Some(t0()));
        v.push(Event::StepIntent { key });
        v.push(Event::StepDone {
            key,
            facts: facts.clone(),
        });
        v.push(Event::StepFailed {
            key,
            error: "boom".into(),
            retryable: true,
            facts: Some(facts.clone()),
            kind: facts.contradiction_kind(),
        });
        v.push(Event::StepReconciled {
            key,
            finding: Finding::Done(Box::new(facts)),
            evidence: "inspected".into(),
        });
    }
    v.push(Event::StepFailed {
        key: StepKey::RenameNewAside,
        error: "x".into(),
        retryable: false,
        facts: Some(StepFacts::Skipped {
            reason: "no container".into(),
        }),
        kind: FailureKind::Unrecorded,
    });
    let mut att = done_facts(&p, StepKey::DisableHa, at, None);
    if let StepFacts::HaDisabled(h) = &mut att {
        h.mode = HaMode::Manual;
        h.written_json = None;
        h.attestation = Some(Attestation {
            by: "bob".into(),
            statement: "done in console".into(),
            step: None,
            observed_at: None,
        });
    }
    v.push(Event::StepDone {
        key: StepKey::DisableHa,
        facts: att,
    });
    v.push(Event::StepTables {
        key: StepKey::Dump { db: MetaDb::Cm },
        first: 7,
        tables: artifact(&p, MetaDb::Cm).tables,
    });
    // issue 12.1
    v.push(Event::StepReconciled {
        key: StepKey::RunDockerInit,
        finding: Finding::Undecided {
            why: "a rotated log changed since the intent".into(),
        },
        evidence: "docker_init.log.2026-01-04.10:42:11 (changed since the intent)".into(),
    });
    for resolution in [Resolution::Done, Resolution::NotDone] {
        v.push(Event::StepResolved(StepResolved {
            key: StepKey::RunDockerInit,
            resolution,
            reason: "read the log: it ends with the success marker".into(),
            by: "alice (sudo from bob)".into(),
            reconciled_seq: 42,
        }));
    }
    v
}

/// The facts of `n` tables with long names (a dump whose outcome is split over several
/// `step.tables` records when `n` is in the thousands).
pub(crate) fn many_tables(n: u64) -> Vec<TableFact> {
    (0..n)
        .map(|i| TableFact {
            name: format!("oms_table_with_a_long_name_{i:05}"),
            rows: i,
            checksum: blake3::hash(&i.to_le_bytes()).to_hex().to_string(),
            method: ChecksumMethod::Blake3Rows,
        })
        .collect()
}
