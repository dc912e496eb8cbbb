//! `oms-upgrade report` end to end on synthetic ledgers: a completed upgrade, a completed
//! rollback and a run that failed mid-way are recorded through the executor's journal (so
//! the core validates every event) with fixed times, next to real dump files. The binary
//! then renders each as JSON (validated against `ledger-schema/report.schema.json` with
//! the Python venv's jsonschema, and checked for T1/T2/T3, downtime and checksums) and as
//! HTML, which headless Chromium loads: the rendered DOM must hold the key figures, and a
//! screenshot of each is kept under `target/test-artifacts/`.
//!
//! Needs Debian's `chromium` and the venv at `$OMS_TEST_PYTHON`; both are installed by
//! `scripts/test` (`scripts/services.sh`). Missing either fails the test with the command
//! to run, never skips it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::Value;
use uuid::Uuid;

use oms_upgrade::events::{
    ContainerSnapshot, ContainerStopped, DbNames, DockerInit, DumpArtifact, DumpCheck, Event,
    Finding, HaAfter, HaDisabled, HaEnabled, HaMode, Health, MetaDb, MetaDbLocation, NewContainer,
    Plan, PlanInput, Restored, StepFacts, StepKey, TableFact, record_env,
};
use oms_upgrade::executor::Journal;
use oms_upgrade::refetch::{self, RefetchPolicy};

const HA_ON: &str = r#"{"enable":true,"enableStore":true,"refetchStoreIntervalMin":30}"#;
const HA_OFF: &str = r#"{"enable":false,"enableStore":true,"refetchStoreIntervalMin":30}"#;

/// 2024-05-01 at `h:m:s` UTC.
fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, h, m, s).unwrap()
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_oms-upgrade"))
}

fn artifacts_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A run recorded into a fresh ledger, with its dump files on disk.
struct Recorder {
    journal: Journal,
    plan: Plan,
    dumps: BTreeMap<MetaDb, DumpArtifact>,
}

impl Recorder {
    fn new(root: &Path) -> Recorder {
        let backup = root.join("backups");
        let plan = Plan::new(PlanInput {
            run_id: Uuid::from_u128(0x0a11_ce00_0000_4000_8000_0000_0000_0042),
            tool_version: "0.1.0".into(),
            source_version: "3.3.0".parse().unwrap(),
            target_version: "3.3.1".parse().unwrap(),
            old_container: ContainerSnapshot {
                id: "3f1e".repeat(16),
                name: "oms".into(),
                image: "oms:feature_3.3.0_ce".into(),
                image_id: format!("sha256:{}", "1a".repeat(32)),
                binds: vec![
                    "/data/oms/config.yaml:/home/admin/conf/config.yaml".into(),
                    "/data/oms/oms_logs:/home/admin/logs".into(),
                    "/data/oms/oms_store:/home/ds/store".into(),
                    "/data/oms/oms_run:/home/ds/run".into(),
                ],
                env: record_env(&["OMS_HOST_IP=10.0.0.5", "OMS_META_PASSWORD=hunter2"]),
                labels: BTreeMap::from([("team".to_string(), "dba".to_string())]),
            },
            target_image: "oms:feature_3.3.1_ce".into(),
            target_image_id: Some(format!("sha256:{}", "2b".repeat(32))),
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
            backup_dir: backup.display().to_string(),
            ha_mode: HaMode::Sql,
            ha_after: HaAfter::Enable,
            refetch: RefetchPolicy::default(),
            stop_timeout_secs: None,
            init_timeout_secs: None,
            health_url: "http://10.0.0.5:8089/oms/health".into(),
            health_timeout_secs: None,
            ext: Vec::new(),
        })
        .unwrap();
        let mut journal = Journal::open(&root.join("ledger"), "alice", "ops-1").unwrap();
        journal
            .record(plan.run_id, at(3, 58, 0), Event::planned(plan.clone()))
            .unwrap();
        Recorder {
            journal,
            plan,
            dumps: BTreeMap::new(),
        }
    }

    fn record(&mut self, when: DateTime<Utc>, event: Event) {
        self.journal.record(self.plan.run_id, when, event).unwrap();
    }

    /// Writes a real dump file and returns its facts (size and BLAKE3 of the bytes).
    fn write_dump(&mut self, db: MetaDb) -> DumpArtifact {
        let tables: &[(&str, u64)] = match db {
            MetaDb::Rm => &[("oms_normal_config", 120), ("oms_resource", 35)],
            MetaDb::Cm => &[("cluster", 2), ("host", 1), ("task", 4000)],
            MetaDb::CmHb => &[("heatbeat_sequence", 1)],
        };
        let database = self.plan.databases.get(db).to_string();
        let mut sql = format!("-- oms-upgrade native dump of `{database}`\n");
        for (t, rows) in tables {
            sql += &format!("CREATE TABLE `{t}` (id bigint primary key);\n");
            for i in 0..(*rows).min(50) {
                sql += &format!("INSERT INTO `{t}` VALUES ({i});\n");
            }
        }
        sql += "-- Dump completed on 2024-05-01 04:05:00\n";
        let file = self.plan.dump_file(db);
        std::fs::create_dir_all(Path::new(&file).parent().unwrap()).unwrap();
        std::fs::write(&file, &sql).unwrap();
        let a = DumpArtifact {
            db,
            database,
            file,
            size: sql.len() as u64,
            blake3_hex: blake3::hash(sql.as_bytes()).to_hex().to_string(),
            format: oms_upgrade::events::FileFormat::Sql,
            compression: oms_upgrade::events::Compression::None,
            dumper: oms_upgrade::events::Dumper::Native,
            charset: "utf8mb4".into(),
            collation: "utf8mb4_bin".into(),
            tables: tables
                .iter()
                .map(|(name, rows)| TableFact {
                    name: (*name).into(),
                    rows: *rows,
                    checksum: blake3::hash(name.as_bytes()).to_hex()[..16].to_string(),
                    method: oms_upgrade::events::ChecksumMethod::Blake3Rows,
                })
                .collect(),
            views: vec![],
        };
        self.dumps.insert(db, a.clone());
        a
    }

    /// Facts a successful executor would record for `key` done at `when`.
    fn facts(&mut self, key: StepKey, when: DateTime<Utc>) -> StepFacts {
        let p = self.plan.clone();
        let stopped = |id: &str| {
            StepFacts::ContainerStopped(ContainerStopped {
                id: id.into(),
                stopped_at: when,
                stop_requested_at: None,
                docker_finished_at: Some(when - Duration::milliseconds(450)),
                exit_code: Some(0),
                already_stopped: false,
            })
        };
        let enabled = |since: Option<DateTime<Utc>>| {
            StepFacts::HaEnabled(HaEnabled {
                enabled_at: when,
                previous_json: HA_OFF.into(),
                written_json: since
                    .map(|t1| {
                        let d = refetch::decide(&p.refetch, t1, when);
                        HA_ON.replace("30", &d.interval_minutes.unwrap().to_string())
                    })
                    .unwrap_or_else(|| HA_ON.into()),
                refetch: since.map(|t1| refetch::decide(&p.refetch, t1, when)),
                mode: HaMode::Sql,
                attestation: None,
            })
        };
        let health = StepFacts::Health(Health {
            url: p.health_url.clone(),
            healthy: true,
            body_blake3: "c0".repeat(32),
            container_id: None,
        });
        let new_id = "9e7".repeat(21) + "9";
        match key {
            StepKey::DisableHa | StepKey::RollbackDisableHa => StepFacts::HaDisabled(HaDisabled {
                previous_json: HA_ON.into(),
                written_json: Some(HA_OFF.into()),
                mode: HaMode::Sql,
                attestation: None,
            }),
            StepKey::StopOldContainer => stopped(&p.old_container.id),
            StepKey::StopNewContainer => stopped(&new_id),
            StepKey::PruneHeartbeat => StepFacts::HeartbeatPruned {
                max_id: Some(81_234),
                rows_deleted: 81_233,
                batches: Some(9),
                batch_rows: Some(10_000),
                warning: None,
            },
            StepKey::Dump { db } => StepFacts::DumpWritten(self.write_dump(db)),
            StepKey::RenameOldContainer => StepFacts::ContainerRenamed {
                id: p.old_container.id.clone(),
                from: p.new_name.clone(),
                to: p.old_renamed_to.clone(),
            },
            StepKey::CreateNewContainer => StepFacts::NewContainerCreated(NewContainer {
                id: new_id,
                name: p.new_name.clone(),
                image: p.target_image.clone(),
                image_id: p.target_image_id.clone(),
                binds: p.old_container.binds.clone(),
                env: record_env(&["OMS_HOST_IP=10.0.0.5", "IS_UPGRADE=true"]),
                old_binds: p.old_container.binds.clone(),
                binds_equal_to_old: true,
            }),
            StepKey::StartNewContainer => StepFacts::NewContainerStarted {
                id: new_id,
                started_at: Some(when),
            },
            StepKey::RunDockerInit => StepFacts::DockerInit(DockerInit {
                exit_code: 0,
                marker_seen: true,
                log_file: Some("/home/admin/logs/docker_init.log".into()),
                log_blake3: "d0".repeat(32),
                log_tail: "【结束】全部初始化步骤执行成功".into(),
                harmless_errors: vec![],
            }),
            StepKey::ConfirmHealth | StepKey::ConfirmOldHealth => health,
            StepKey::EnableHa | StepKey::RollbackEnableHa => {
                enabled(self.journal.state().downtime_start())
            }
            StepKey::Complete | StepKey::RollbackComplete => StepFacts::Completed,
            StepKey::RollbackVerifyDumps => StepFacts::DumpsVerified {
                checks: self
                    .dumps
                    .values()
                    .map(|a| DumpCheck {
                        db: a.db,
                        file: a.file.clone(),
                        found_blake3: Some(a.blake3_hex.clone()),
                        ok: true,
                    })
                    .collect(),
            },
            StepKey::RenameNewAside => StepFacts::ContainerRenamed {
                id: new_id,
                from: p.new_name.clone(),
                to: p.failed_name.clone(),
            },
            StepKey::RenameOldBack => StepFacts::ContainerRenamed {
                id: p.old_container.id.clone(),
                from: p.old_renamed_to.clone(),
                to: p.new_name.clone(),
            },
            StepKey::RecreateDatabase { db } => StepFacts::DatabaseRecreated {
                db,
                database: p.databases.get(db).to_string(),
            },
            StepKey::Restore { db } => {
                let a = &self.dumps[&db];
                StepFacts::Restored(Restored {
                    db,
                    database: a.database.clone(),
                    file: a.file.clone(),
                    verified_blake3: a.blake3_hex.clone(),
                    tables: a.tables.clone(),
                    tables_match: true,
                })
            }
            StepKey::RestartOldContainer => StepFacts::ContainerRestarted {
                id: p.old_container.id.clone(),
                name: p.new_name.clone(),
            },
            other => panic!("the 3.3.1 guide has no step {other}"),
        }
    }

    /// The next permitted step, as a ledger written before `pre-stop-check` existed has
    /// it (straight from `disable-ha` to `stop-old`) and before `drop-pruned-heartbeat`
    /// (issue 16: straight from `enable-ha` to `complete`): such ledgers must still report,
    /// and the figures below are those of that form.
    fn next(&self) -> StepKey {
        match self.journal.state().permitted()[0].key() {
            StepKey::PreStopCheck => StepKey::StopOldContainer,
            StepKey::DropPrunedHeartbeat => StepKey::Complete,
            k => k,
        }
    }

    /// Intent at `from`, done at `to`, for the next permitted step.
    fn step(&mut self, from: DateTime<Utc>, to: DateTime<Utc>) -> StepKey {
        let key = self.next();
        self.record(from, Event::StepIntent { key });
        let facts = self.facts(key, to);
        self.record(to, Event::StepDone { key, facts });
        key
    }

    fn fail(&mut self, from: DateTime<Utc>, to: DateTime<Utc>, error: &str, retryable: bool) {
        let key = self.next();
        self.record(from, Event::StepIntent { key });
        self.record(
            to,
            Event::StepFailed {
                key,
                error: error.into(),
                retryable,
                facts: None,
                kind: oms_upgrade::events::FailureKind::Service,
            },
        );
    }

    /// Runs the permitted steps back to back (5 s gap, 10 s each) until none is left.
    fn run_rest(&mut self, mut now: DateTime<Utc>) {
        while !self.journal.state().permitted().is_empty() {
            self.step(now + Duration::seconds(5), now + Duration::seconds(15));
            now += Duration::seconds(15);
        }
    }
}

/// HA off, T1 at 04:00:00, prune, the three dumps, rename, create, start.
fn up_to_init(r: &mut Recorder) {
    r.step(at(3, 59, 0), at(3, 59, 1));
    r.step(at(3, 59, 30), at(4, 0, 0));
    r.step(at(4, 0, 5), at(4, 0, 6));
    r.step(at(4, 0, 10), at(4, 2, 10));
    r.step(at(4, 2, 15), at(4, 5, 15));
    r.step(at(4, 5, 20), at(4, 5, 50));
    r.step(at(4, 6, 0), at(4, 6, 1));
    r.step(at(4, 6, 5), at(4, 6, 8));
    r.step(at(4, 6, 10), at(4, 6, 12));
}

/// The FAQ's example: stopped 4:00, HA back at 5:00.
fn completed(root: &Path) -> Recorder {
    let mut r = Recorder::new(root);
    up_to_init(&mut r);
    r.step(at(4, 7, 0), at(4, 45, 0));
    r.step(at(4, 45, 5), at(4, 58, 0));
    assert_eq!(r.next(), StepKey::EnableHa);
    r.step(at(4, 59, 58), at(5, 0, 0));
    r.step(at(5, 0, 1), at(5, 0, 1));
    r.record(
        at(5, 1, 0),
        Event::Note {
            text: "CHG-4242 closed <ok> & verified".into(),
        },
    );
    r
}

/// docker_init.sh fails for good at 04:30; rollback from 04:31, 15 s per step.
fn rolled_back(root: &Path) -> Recorder {
    let mut r = Recorder::new(root);
    up_to_init(&mut r);
    r.fail(
        at(4, 7, 0),
        at(4, 30, 0),
        "docker_init.sh exit code 1",
        false,
    );
    r.record(
        at(4, 31, 0),
        Event::RollbackRequested {
            reason: "docker_init.sh failed".into(),
        },
    );
    r.run_rest(at(4, 31, 0));
    r
}

/// Crash during the prune (reconciled as done), one retried dump, docker_init.sh failed,
/// no rollback yet; last record at 04:42:00.
fn failed_mid_way(root: &Path) -> Recorder {
    let mut r = Recorder::new(root);
    r.step(at(3, 59, 0), at(3, 59, 1));
    r.step(at(3, 59, 30), at(4, 0, 0));
    r.record(
        at(4, 0, 5),
        Event::StepIntent {
            key: StepKey::PruneHeartbeat,
        },
    );
    r.record(
        at(4, 3, 0),
        Event::StepReconciled {
            key: StepKey::PruneHeartbeat,
            finding: Finding::Done(Box::new(StepFacts::HeartbeatPruned {
                max_id: Some(77),
                rows_deleted: 0,
                batches: None,
                batch_rows: None,
                warning: None,
            })),
            evidence: "heatbeat_sequence holds only max(id) 77".into(),
        },
    );
    r.step(at(4, 3, 5), at(4, 5, 5));
    r.fail(at(4, 5, 10), at(4, 5, 40), "connection reset by peer", true);
    r.step(at(4, 6, 0), at(4, 9, 0));
    r.step(at(4, 9, 5), at(4, 9, 35));
    r.step(at(4, 10, 0), at(4, 10, 1));
    r.step(at(4, 10, 5), at(4, 10, 8));
    r.step(at(4, 10, 10), at(4, 10, 12));
    r.fail(
        at(4, 12, 0),
        at(4, 40, 0),
        "docker_init.sh exit code 1",
        false,
    );
    r.record(
        at(4, 42, 0),
        Event::Note {
            text: "paged the DBA on call".into(),
        },
    );
    r
}

fn run_report(ledger: &Path, args: &[&str]) -> Output {
    bin()
        .arg("--ledger")
        .arg(ledger)
        .arg("report")
        .args(args)
        .output()
        .expect("run oms-upgrade report")
}

fn json_report(ledger: &Path) -> Value {
    let out = run_report(ledger, &["--format", "json"]);
    assert!(
        out.status.success(),
        "report failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("report --format json prints JSON")
}

/// Validates `doc` against `ledger-schema/report.schema.json` with the Python venv's
/// jsonschema (draft 2020-12).
fn validate_against_schema(doc: &Value, name: &str) {
    let python = std::env::var("OMS_TEST_PYTHON").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/pyenv/bin/python").to_string()
    });
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("ledger-schema/report.schema.json");
    let file = artifacts_dir().join(format!("report-{name}.json"));
    std::fs::write(&file, serde_json::to_vec_pretty(doc).unwrap()).unwrap();
    let script = "import json, sys, jsonschema\n\
                  schema = json.load(open(sys.argv[1]))\n\
                  jsonschema.Draft202012Validator.check_schema(schema)\n\
                  errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(json.load(open(sys.argv[2]))), key=str)\n\
                  for e in errors: print(list(e.absolute_path), e.message)\n\
                  sys.exit(1 if errors else 0)\n";
    let out = Command::new(&python)
        .args(["-c", script])
        .arg(&schema)
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {python} ({e}): run `scripts/test`, or \
                 `bash -c 'source scripts/services.sh; ensure_python'`, to create the venv"
            )
        });
    assert!(
        out.status.success(),
        "{name} report does not match report.schema.json:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs headless Chromium on a local file with `extra` arguments.
fn chromium(html: &Path, extra: &[String]) -> Output {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("timeout")
        .arg("300")
        .arg("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("run timeout(1)");
    assert!(
        out.status.code() != Some(127),
        "chromium is not installed: run `scripts/test`, or `apt-get install -y chromium`"
    );
    assert!(
        out.status.success(),
        "chromium failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Renders the HTML report with the binary, loads it in Chromium, checks the rendered DOM
/// for `needles` and keeps a screenshot. Returns the DOM.
fn render_in_browser(ledger: &Path, name: &str, needles: &[String]) -> String {
    let dir = artifacts_dir();
    let html = dir.join(format!("report-{name}.html"));
    let out = run_report(
        ledger,
        &["--format", "html", "--out", html.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "report --format html failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(&html).unwrap();
    let lower = page.to_lowercase();
    for banned in ["<script", "src=", "href=", "@import", "url("] {
        assert!(!lower.contains(banned), "{name}: page uses {banned}");
    }

    let dom = String::from_utf8(chromium(&html, &["--dump-dom".to_string()]).stdout).unwrap();
    assert!(
        dom.contains("<svg") && dom.contains("id=\"timeline\""),
        "{name}: the page did not load with its timeline:\n{}",
        &dom[..dom.len().min(2000)]
    );
    for n in needles {
        assert!(dom.contains(n.as_str()), "{name}: rendered DOM lacks {n:?}");
    }

    let png = dir.join(format!("report-{name}.png"));
    let _ = std::fs::remove_file(&png);
    chromium(
        &html,
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1280,2000".to_string(),
        ],
    );
    let bytes = std::fs::read(&png).expect("chromium wrote the screenshot");
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{name}: screenshot is not a PNG"
    );
    dom
}

fn dump_hashes(r: &Recorder) -> Vec<String> {
    r.dumps.values().map(|a| a.blake3_hex.clone()).collect()
}

#[test]
fn completed_upgrade_report() {
    let root = tempfile::tempdir().unwrap();
    let rec = completed(root.path());
    let hashes = dump_hashes(&rec);
    drop(rec);
    let ledger = root.path().join("ledger");

    let j = json_report(&ledger);
    validate_against_schema(&j, "completed");
    assert_eq!(j["outcome"]["phase"], "completed");
    assert_eq!(j["times"]["t1"]["at"], "2024-05-01T04:00:00Z");
    assert_eq!(j["times"]["t2"]["at"], "2024-05-01T05:00:00Z");
    assert_eq!(j["times"]["t3"], Value::Null);
    assert_eq!(j["times"]["downtime"]["duration_ms"], 3_600_000);
    assert_eq!(j["ha"]["refetch"]["interval_minutes"], 90);
    assert_eq!(j["steps"].as_array().unwrap().len(), 13);
    for (d, h) in j["dumps"].as_array().unwrap().iter().zip(&hashes) {
        assert_eq!(&d["blake3"], h);
        assert_eq!(d["file_check"]["matches"], true);
    }
    assert_eq!(j["dumps"][1]["total_rows"], 4003);
    assert_eq!(j["verification"]["ok"], true);
    assert_eq!(j["verification"]["records_verified"], 28);
    let head = j["verification"]["head_hash"].as_str().unwrap().to_string();
    assert_eq!(head.len(), 64);

    let mut needles: Vec<String> = [
        "id=\"t1\">2024-05-01 04:00:00 UTC<",
        "id=\"t2\">2024-05-01 05:00:00 UTC<",
        "id=\"downtime\">1 h 0 min 0 s<",
        "id=\"refetch\">90 min<",
        ">T1 04:00:00</text>",
        ">T2 05:00:00</text>",
        "VERIFIED: chain intact (28 records, head seq 28)",
        "CHG-4242 closed &lt;ok&gt; &amp; verified",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    needles.push(format!("id=\"head-hash\">{head}<"));
    needles.extend(hashes);
    render_in_browser(&ledger, "completed", &needles);

    // The global --json alone means the JSON document.
    let out = run_report(&ledger, &["--json"]);
    assert!(out.status.success());
    let again: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again, j);

    // Markdown by default, on stdout.
    let out = run_report(&ledger, &[]);
    assert!(out.status.success());
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(md.starts_with("# OMS upgrade 3.3.0 → 3.3.1: completed\n"));
    assert!(md.contains("| T1 | 2024-05-01 04:00:00 UTC (stop-old, seq 5)"));
    assert!(md.contains(&format!("head hash `{head}`")));
}

#[test]
fn completed_rollback_report() {
    let root = tempfile::tempdir().unwrap();
    let rec = rolled_back(root.path());
    let hashes = dump_hashes(&rec);
    drop(rec);
    let ledger = root.path().join("ledger");

    let j = json_report(&ledger);
    validate_against_schema(&j, "rollback");
    assert_eq!(j["outcome"]["phase"], "rolled_back");
    assert_eq!(j["times"]["t1"]["at"], "2024-05-01T04:00:00Z");
    assert_eq!(j["times"]["t2"], Value::Null);
    // Rollback steps: verify-dumps ends 04:31:15, stop-new (T3) 04:31:30, ...,
    // rollback-enable-ha (the 13th) 04:34:15.
    assert_eq!(j["times"]["t3"]["at"], "2024-05-01T04:31:30Z");
    assert_eq!(j["times"]["downtime"]["end"], "2024-05-01T04:34:15Z");
    assert_eq!(j["times"]["downtime"]["duration_ms"], (34 * 60 + 15) * 1000);
    assert_eq!(j["ha"]["refetch"]["interval_minutes"], 65);
    assert_eq!(j["rollback"]["completed"], true);
    assert_eq!(j["failures"][0]["key"], "docker-init");
    for (d, h) in j["dumps"].as_array().unwrap().iter().zip(&hashes) {
        assert_eq!(&d["blake3"], h);
        assert_eq!(&d["restore"]["verified_blake3"], h);
        assert_eq!(d["restore"]["tables_match"], true);
        assert_eq!(d["rollback_check"]["ok"], true);
    }

    let mut needles: Vec<String> = [
        "id=\"t3\">2024-05-01 04:31:30 UTC<",
        "id=\"downtime\">34 min 15 s<",
        "id=\"refetch\">65 min<",
        ">T1 04:00:00</text>",
        ">T3 04:31:30</text>",
        "class=\"banner neutral\"",
        "docker_init.sh exit code 1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    needles.extend(hashes);
    render_in_browser(&ledger, "rollback", &needles);
}

#[test]
fn failed_run_report() {
    let root = tempfile::tempdir().unwrap();
    drop(failed_mid_way(root.path()));
    let ledger = root.path().join("ledger");

    let j = json_report(&ledger);
    validate_against_schema(&j, "failed");
    assert_eq!(j["outcome"]["phase"], "upgrade_failed");
    assert_eq!(j["times"]["t1"]["at"], "2024-05-01T04:00:00Z");
    assert_eq!(j["times"]["t2"], Value::Null);
    assert_eq!(j["times"]["downtime"]["ongoing"], true);
    assert_eq!(
        j["times"]["downtime"]["measured_to"],
        "2024-05-01T04:42:00Z"
    );
    assert_eq!(j["times"]["downtime"]["duration_ms"], 42 * 60_000);
    assert_eq!(j["retries"][0]["key"], "dump-cm");
    assert_eq!(j["in_doubt"][0]["result"], "reconciled_done");
    assert_eq!(j["failures"].as_array().unwrap().len(), 2);
    assert_eq!(j["ha"]["refetch"], Value::Null);

    render_in_browser(
        &ledger,
        "failed",
        &[
            "class=\"banner bad\"".to_string(),
            "id=\"downtime\">42 min 0 s<".to_string(),
            "id=\"t2\">-<".to_string(),
            "(ongoing at the last record)".to_string(),
            "connection reset by peer".to_string(),
            "heatbeat_sequence holds only max(id) 77".to_string(),
        ],
    );
}

#[test]
fn an_altered_dump_or_a_checkpoint_show_in_the_verdict() {
    let root = tempfile::tempdir().unwrap();
    let rec = completed(root.path());
    let cm = rec.dumps[&MetaDb::Cm].file.clone();
    drop(rec);
    let ledger = root.path().join("ledger");

    // A checkpoint taken now matches.
    let anchor = root.path().join("checkpoint.txt");
    let out = bin()
        .arg("--ledger")
        .arg(&ledger)
        .args(["ledger", "checkpoint", "--out"])
        .arg(&anchor)
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = run_report(
        &ledger,
        &["--format", "json", "--anchor", anchor.to_str().unwrap()],
    );
    assert!(out.status.success());
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["verification"]["anchor"]["matched"], true);
    assert_eq!(j["verification"]["anchor"]["seq"], 28);

    // One byte of a dump changed: the report is still written, but says so and exits 3.
    let mut bytes = std::fs::read(&cm).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&cm, bytes).unwrap();
    let md_file = root.path().join("report.md");
    let out = run_report(
        &ledger,
        &[
            "--json",
            "--format",
            "md",
            "--out",
            md_file.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["ok"], false);
    assert_eq!(summary["exit_code"], 3);
    let md = std::fs::read_to_string(&md_file).unwrap();
    assert!(md.contains("**NOT VERIFIED: chain intact (28 records, head seq 28); no checkpoint given; dumps 2/3 present and matching**"));
    assert!(md.contains("**DIFFERS**"));

    // Deleted: missing.
    std::fs::remove_file(&cm).unwrap();
    let out = run_report(&ledger, &["--format", "json"]);
    assert_eq!(out.status.code(), Some(3));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["dumps"][1]["file_check"]["present"], false);
    assert_eq!(j["verification"]["dumps_ok"], false);
}

#[test]
fn a_folder_without_a_ledger_is_bad_input() {
    let root = tempfile::tempdir().unwrap();
    let out = run_report(&root.path().join("nothing-here"), &[]);
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hint:"));
}

/// Issue 14: a second terminal watches a run. While the recorder's journal holds the ledger,
/// as a running upgrade would, `report`, `status`, `ledger log` and `ledger verify` read a
/// verified copy and say it is a live read, and the same commands behave as before once the
/// run has let go.
#[test]
fn readers_work_while_a_run_holds_the_ledger() {
    let root = tempfile::tempdir().unwrap();
    let mut rec = Recorder::new(root.path());
    up_to_init(&mut rec);
    rec.step(at(4, 7, 0), at(4, 45, 0));
    let ledger = root.path().join("ledger");
    let held_seq = rec.journal.ledger().head().unwrap().0;
    let cli = |args: &[&str]| {
        bin()
            .arg("--ledger")
            .arg(&ledger)
            .args(args)
            .output()
            .unwrap()
    };
    let json = |out: &Output| -> Value {
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON on stdout")
    };

    let out = run_report(&ledger, &["--format", "json"]);
    let j = json(&out);
    validate_against_schema(&j, "live");
    assert_eq!(j["live"]["live"], true, "{j}");
    assert_eq!(j["live"]["seq"], held_seq);
    assert_eq!(j["verification"]["head_seq"], held_seq);
    let md = run_report(&ledger, &[]);
    assert_eq!(md.status.code(), Some(0));
    let md = String::from_utf8_lossy(&md.stdout);
    assert!(
        md.to_lowercase()
            .contains(&format!("live read as of seq {held_seq}")),
        "{md}"
    );

    let s = json(&cli(&["--json", "status"]));
    assert_eq!(s["live"], true, "{s}");
    assert_eq!(s["seq"], held_seq);
    assert!(
        s["holder"]
            .as_str()
            .unwrap()
            .contains(&format!("pid {}", std::process::id())),
        "{s}"
    );
    let text = cli(&["status"]);
    assert_eq!(text.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&text.stdout).contains(&format!("live read as of seq {held_seq}")),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );

    let p = json(&cli(&["--json", "plan"]));
    assert_eq!(p["live"], true, "{p}");
    assert_eq!(p["seq"], held_seq);

    let v = json(&cli(&["--json", "ledger", "verify"]));
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["live"], true, "{v}");
    assert_eq!(v["seq"], held_seq);
    let log = cli(&["--json", "ledger", "log"]);
    assert_eq!(log.status.code(), Some(0));
    let lines: Vec<Value> = String::from_utf8_lossy(&log.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, held_seq, "{lines:?}");

    drop(rec);
    let out = run_report(&ledger, &["--format", "json"]);
    let j = json(&out);
    assert_eq!(j["live"], Value::Null, "{j}");
    let s = json(&cli(&["--json", "status"]));
    assert_eq!(s.get("live"), None, "not busy: status as before: {s}");
}
