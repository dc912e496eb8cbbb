//! `seed`: fills the three metadata databases with a realistic data set of a chosen volume,
//! run on the host (`oms_emulator seed --config FILE --size 1G`).
//!
//! On databases without a schema it first installs the emulator schema (default version
//! 3.3.0, `--oms-version`). It then writes a fixed set of awkward rows (their keys start with
//! `awk-`, see docs/emulator.md: NULL next to empty strings, every byte value in blobs,
//! multi-byte UTF-8 and emoji, JSON, DECIMAL at its limits, BIT, DATETIME(6), TIMESTAMP at
//! both ends of its range, a 2 MiB text, and an UPDATE that fires the trigger), and then bulk
//! rows in multi-row INSERT batches, several tables at once, until about `--size` bytes of
//! values were sent. The data is deterministic for a given `--seed`, except the key prefix
//! of the bulk rows, which is new on every run so that seeding twice adds rather than fails.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use futures_util::StreamExt;
use mysql_async::prelude::Queryable;
use oms_upgrade::omsconfig::MetaDatabases;

use crate::common::{Logger, q};
use crate::init::{DbState, Installer};

/// Arguments of the `seed` mode.
#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    /// The OMS config.yaml naming the metadata DB and the three databases.
    #[arg(long)]
    pub config: PathBuf,
    /// Approximate volume of values to insert: bytes, or with a K/M/G suffix (1024-based).
    #[arg(long, value_parser = oms_upgrade::units::parse_size)]
    pub size: u64,
    /// Schema version to install when the databases are empty.
    #[arg(long, default_value = crate::schema::DEFAULT_SEED_VERSION)]
    pub oms_version: String,
    /// Seed of the pseudo-random generator (same seed, same values).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Concurrent insert streams.
    #[arg(long, default_value_t = 4)]
    pub jobs: usize,
    /// A server of the cm database's `host` table, by IP (repeatable). Written only where
    /// the schema has that table (4.2.0 on); an IP already listed stays as it is. A
    /// `=STATUS` suffix (the old form) is accepted and ignored: `host` has no status column
    /// (the public record names none). Default: the config's `cm_nodes` (the region's
    /// nodes), else 127.0.0.1, the single-node emulator containers' `OMS_HOST_IP`.
    #[arg(long = "server", value_name = "IP")]
    pub servers: Vec<String>,
}

/// Tiny deterministic generator (SplitMix64): reproducible data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn bytes_hex(&mut self, n: usize) -> String {
        let mut b = Vec::with_capacity(n + 8);
        while b.len() < n {
            b.extend_from_slice(&self.next().to_le_bytes());
        }
        b.truncate(n);
        hex::encode_upper(b)
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const WORDS: &[&str] = &[
    "migration",
    "sync",
    "store",
    "connector",
    "writer",
    "checkpoint",
    "binlog",
    "全量迁移",
    "增量同步",
    "数据校验",
    "反向增量",
    "データ",
    "移行",
    "데이터",
    "données",
    "réplication",
    "Ωmega",
    "ñandú",
    "🚀",
    "✅",
    "🔥",
    "ok",
    "retry",
    "offset",
    "tenant",
    "schema",
    "table",
];

fn text(rng: &mut Rng, approx_bytes: usize) -> String {
    let mut s = String::with_capacity(approx_bytes + 16);
    while s.len() < approx_bytes {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(rng.pick(WORDS));
    }
    s
}

/// A string literal for the session's sql_mode (backslash escapes on: the seeder sets it).
fn lit(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\x1a' => out.push_str("\\Z"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn ts(rng: &mut Rng) -> String {
    // 2020-01-01 .. 2026-01-01, with microseconds.
    let secs = 1_577_836_800 + rng.below(6 * 365 * 86_400) as i64;
    let micros = rng.below(1_000_000) as u32;
    let t = chrono::DateTime::from_timestamp(secs, micros * 1000).expect("in range");
    format!("'{}'", t.format("%Y-%m-%d %H:%M:%S%.6f"))
}

/// The bulk-filled tables and their share of the volume (percent).
#[derive(Debug, Clone, Copy)]
enum Kind {
    Project,
    DataSource,
    Task,
    Resource,
    StatusLog,
    Heartbeat,
}

const SHARES: &[(Kind, u64)] = &[
    (Kind::Project, 15),
    (Kind::DataSource, 5),
    (Kind::Task, 55),
    (Kind::Resource, 5),
    (Kind::StatusLog, 5),
    (Kind::Heartbeat, 15),
];

impl Kind {
    fn table(self, dbs: &MetaDatabases) -> (String, &'static str, &'static str) {
        match self {
            Kind::Project => (
                dbs.rm.clone(),
                "oms_project",
                "project_id, name, project_type, status, source_ds_id, dest_ds_id, config, description, progress, gmt_create, gmt_modified",
            ),
            Kind::DataSource => (
                dbs.rm.clone(),
                "oms_data_source",
                "ds_id, ds_type, host, port, username, password_cipher, tenant, extra_params, remark, gmt_create, gmt_modified",
            ),
            Kind::Task => (
                dbs.cm.clone(),
                "oms_task",
                "task_id, project_id, task_name, status, progress, params, checkpoint_blob, flags, error_msg, log_text, started_at, updated_at",
            ),
            Kind::Resource => (
                dbs.cm.clone(),
                "oms_resource",
                "resource_id, host_ip, resource_type, cpu_cores, mem_bytes, alive, spec, gmt_create, gmt_modified",
            ),
            Kind::StatusLog => (
                dbs.cm.clone(),
                "oms_task_status_log",
                "task_id, old_status, new_status, changed_at",
            ),
            Kind::Heartbeat => (
                dbs.cm_hb.clone(),
                "heatbeat_sequence",
                "gmt_created, host_ip, sequence_no",
            ),
        }
    }

    /// One row's VALUES tuple.
    fn row(self, rng: &mut Rng, key: &str, n: u64) -> String {
        let status = |rng: &mut Rng| rng.pick(&["INIT", "RUNNING", "FINISHED", "FAILED", "PAUSED"]);
        match self {
            Kind::Project => {
                let cfg = format!(
                    r#"{{"full":{},"incr":{},"threads":{},"note":"{}"}}"#,
                    rng.below(2) == 0,
                    rng.below(2) == 0,
                    rng.below(64),
                    text(rng, 24)
                );
                let desc = match rng.below(4) {
                    0 => "NULL".to_string(),
                    1 => "''".to_string(),
                    _ => {
                        let len = 200 + rng.below(400) as usize;
                        lit(&text(rng, len))
                    }
                };
                format!(
                    "({}, {}, {}, {}, {}, {}, {}, {desc}, {}.{:02}, {}, {})",
                    lit(&format!("p-{key}-{n}")),
                    lit(&text(rng, 40)),
                    lit(rng.pick(&["MIGRATION", "SYNC"])),
                    lit(status(rng)),
                    lit(&format!("ds-{key}-{}", n * 2)),
                    lit(&format!("ds-{key}-{}", n * 2 + 1)),
                    lit(&cfg),
                    rng.below(100),
                    rng.below(100),
                    ts(rng),
                    ts(rng)
                )
            }
            Kind::DataSource => {
                let cipher = rng.bytes_hex(32);
                format!(
                    "({}, {}, {}, {}, {}, X'{cipher}', {}, {}, {}, {}, {})",
                    lit(&format!("ds-{key}-{n}")),
                    lit(rng.pick(&["OB_MYSQL", "MYSQL", "OB_ORACLE", "KAFKA"])),
                    lit(&format!(
                        "10.{}.{}.{}",
                        rng.below(256),
                        rng.below(256),
                        rng.below(256)
                    )),
                    2881 + rng.below(10),
                    lit(&format!("user_{}", rng.below(1000))),
                    if rng.below(3) == 0 {
                        "NULL".into()
                    } else {
                        lit("tenant_a")
                    },
                    lit(&format!(r#"{{"timeoutMs":{}}}"#, rng.below(100_000))),
                    if rng.below(2) == 0 {
                        "NULL".into()
                    } else {
                        lit("")
                    },
                    ts(rng),
                    ts(rng)
                )
            }
            Kind::Task => {
                let blob_len = 256 + rng.below(768) as usize;
                let blob = rng.bytes_hex(blob_len);
                let log_len = 2048 + rng.below(4096) as usize;
                let err = match rng.below(3) {
                    0 => "NULL".to_string(),
                    1 => "''".to_string(),
                    _ => lit(&format!("ERROR {}: {}", rng.below(9999), text(rng, 60))),
                };
                format!(
                    "({}, {}, {}, {}, {}.{:06}, {}, X'{blob}', b'{:08b}', {err}, {}, {}, {})",
                    lit(&format!("t-{key}-{n}")),
                    lit(&format!("p-{key}-{}", n / 4)),
                    lit(&text(rng, 30)),
                    lit(status(rng)),
                    rng.below(100_000_000),
                    rng.below(1_000_000),
                    lit(&format!(
                        r#"{{"partition":{},"offset":{},"topic":"{}"}}"#,
                        rng.below(64),
                        rng.next() >> 12,
                        text(rng, 12)
                    )),
                    rng.below(256),
                    lit(&text(rng, log_len)),
                    ts(rng),
                    ts(rng)
                )
            }
            Kind::Resource => format!(
                "({}, {}, {}, {}.{:02}, {}, b'{}', {}, {}, {})",
                lit(&format!("r-{key}-{n}")),
                lit(&format!("192.168.{}.{}", rng.below(256), rng.below(256))),
                lit(rng.pick(&["STORE", "CONNECTOR", "JDBC_WRITER", "CHECKER"])),
                rng.below(64),
                rng.below(100),
                rng.next() >> 20,
                rng.below(2),
                if rng.below(4) == 0 {
                    "NULL".into()
                } else {
                    lit(r#"{"disk":"/home/ds/store"}"#)
                },
                ts(rng),
                ts(rng)
            ),
            Kind::StatusLog => format!(
                "({}, {}, {}, {})",
                lit(&format!("t-{key}-{}", n / 3)),
                if n % 3 == 0 {
                    "NULL".into()
                } else {
                    lit(status(rng))
                },
                lit(status(rng)),
                ts(rng)
            ),
            Kind::Heartbeat => format!("({}, '127.0.0.1', {n})", ts(rng)),
        }
    }
}

/// One stream of bulk inserts: a table, a volume and a key prefix of its own.
struct Unit {
    kind: Kind,
    budget: u64,
    key: String,
    seed: u64,
}

/// Statements are cut at this size, well below MariaDB's default max_allowed_packet (16 MiB).
const BATCH_BYTES: usize = 2 << 20;
/// A unit never holds more than this, so big volumes spread over all streams.
const UNIT_BYTES: u64 = 64 << 20;

/// The deployment's server list in the cm database (`resource_group` and `host`, see
/// `schema::SERVER_TABLES`), where the schema has it: one group named after the config's
/// `cm_location` (`0` when the file has none) and one `host` row per `--server`.
async fn servers(
    c: &mut mysql_async::Conn,
    dbs: &MetaDatabases,
    cfg: &oms_upgrade::omsconfig::OmsConfig,
    servers: &[String],
) -> Result<(), mysql_async::Error> {
    let has_host: Option<u64> = c
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'host'",
            (&dbs.cm,),
        )
        .await?;
    if has_host.unwrap_or(0) == 0 {
        return Ok(());
    }
    let cm = q(&dbs.cm);
    let location = match cfg.extra.get("cm_location") {
        Some(serde_yaml_ng::Value::Number(n)) => n.to_string(),
        Some(serde_yaml_ng::Value::String(s)) => s.clone(),
        _ => "0".to_string(),
    };
    c.exec_drop(
        format!("INSERT IGNORE INTO {cm}.resource_group (name) VALUES (?)"),
        (&location,),
    )
    .await?;
    let group: Option<i64> = c
        .exec_first(
            format!("SELECT id FROM {cm}.resource_group WHERE name = ?"),
            (&location,),
        )
        .await?;
    for s in servers {
        let ip = s.split_once('=').map_or(s.as_str(), |(ip, _)| ip);
        c.exec_drop(
            format!("INSERT IGNORE INTO {cm}.host (resource_group_id, ip) VALUES (?, ?)"),
            (group.unwrap_or(1), ip),
        )
        .await?;
    }
    Ok(())
}

async fn session(pool: &mysql_async::Pool) -> Result<mysql_async::Conn, mysql_async::Error> {
    let mut c = pool.get_conn().await?;
    c.query_drop(
        "SET SESSION sql_mode = 'STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION', \
         time_zone = '+00:00', unique_checks = 0",
    )
    .await?;
    Ok(c)
}

async fn fill(
    pool: mysql_async::Pool,
    dbs: MetaDatabases,
    u: Unit,
) -> Result<(String, u64, u64), String> {
    let (db, table, cols) = u.kind.table(&dbs);
    let mut c = session(&pool).await.map_err(|e| e.to_string())?;
    let mut rng = Rng(u.seed);
    let head = format!("INSERT INTO {}.{} ({cols}) VALUES ", q(&db), q(table));
    let (mut sent, mut rows, mut n) = (0u64, 0u64, 0u64);
    // At least a few rows per table, however small the volume.
    while sent < u.budget || rows < 3 {
        let mut stmt = String::with_capacity(BATCH_BYTES + 64 * 1024);
        stmt.push_str(&head);
        let mut first = true;
        while stmt.len() < BATCH_BYTES && (sent < u.budget || rows < 3) {
            let row = u.kind.row(&mut rng, &u.key, n);
            n += 1;
            rows += 1;
            sent += row.len() as u64;
            if !first {
                stmt.push(',');
            }
            first = false;
            stmt.push_str(&row);
        }
        c.query_drop(stmt)
            .await
            .map_err(|e| format!("insert into {db}.{table}: {e}"))?;
    }
    Ok((format!("{db}.{table}"), rows, sent))
}

/// Inserts the documented awkward rows (idempotent: INSERT IGNORE on fixed keys).
async fn awkward(c: &mut mysql_async::Conn, dbs: &MetaDatabases) -> Result<(), mysql_async::Error> {
    let rm = q(&dbs.rm);
    let cm = q(&dbs.cm);
    let ds = format!(
        "INSERT IGNORE INTO {rm}.oms_data_source (ds_id, ds_type, host, port, username, password_cipher, tenant, extra_params, remark, gmt_create, gmt_modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    );
    type Ds<'a> = (
        &'a str,
        &'a str,
        &'a str,
        u16,
        &'a str,
        Option<Vec<u8>>,
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
        &'a str,
        &'a str,
    );
    let rows: [Ds; 3] = [
        (
            "awk-ds-binary",
            "OB_MYSQL",
            "db-源.example",
            2881,
            "root@租户",
            Some(vec![
                0x00, 0x27, 0x5c, 0x22, 0x0a, 0x0d, 0x1a, 0xff, 0x80, 0x7f,
            ]),
            None,
            Some(r#"{"charset":"utf8mb4","timeouts":[1,2.5,null],"名字":"数据源 🚀"}"#),
            Some(""),
            "2024-02-29 23:59:59.999999",
            "1970-01-01 00:00:01.000000",
        ),
        (
            "awk-ds-null",
            "MYSQL",
            "10.0.0.1",
            3306,
            "u",
            None,
            None,
            None,
            None,
            "2000-01-01 00:00:00.000000",
            "2038-01-19 03:14:07.999999",
        ),
        (
            "awk-ds-empty",
            "MYSQL",
            "",
            3306,
            "",
            Some(Vec::new()),
            Some(""),
            Some("{}"),
            Some(""),
            "2000-01-01 00:00:00.000001",
            "2000-01-01 00:00:00.000001",
        ),
    ];
    for r in rows {
        c.exec_drop(&ds, r).await?;
    }
    let long_desc = "é".repeat(30_000);
    let proj = format!(
        "INSERT IGNORE INTO {rm}.oms_project (project_id, name, project_type, status, source_ds_id, dest_ds_id, config, description, progress, gmt_create, gmt_modified) VALUES (?, ?, 'MIGRATION', 'RUNNING', 'awk-ds-binary', 'awk-ds-null', ?, ?, ?, ?, ?)"
    );
    type P<'a> = (
        &'a str,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        &'a str,
        &'a str,
        &'a str,
    );
    let rows: [P; 4] = [
        (
            "awk-p-emoji",
            "迁移项目 🚀 データ移行 ñ Ωmega 👨‍👩‍👧",
            Some(r#"{"a":1,"b":[true,false,null],"s":"quote \" and backslash \\","u":"✓"}"#),
            Some("multi-byte: 中文 / 日本語 / 한국어 / emoji 😀🎉"),
            "99.99",
            "2024-02-29 23:59:59.999999",
            "2024-02-29 23:59:59.999999",
        ),
        (
            "awk-p-null",
            "null fields",
            None,
            None,
            "0.00",
            "2001-02-03 04:05:06.000007",
            "2001-02-03 04:05:06.000007",
        ),
        (
            "awk-p-empty",
            "",
            Some("[]"),
            Some(""),
            "0.01",
            "2001-02-03 04:05:06.000000",
            "2001-02-03 04:05:06.000000",
        ),
        (
            "awk-p-longtext",
            "long description",
            Some("{}"),
            Some(&long_desc),
            "-0.50",
            "2010-10-10 10:10:10.101010",
            "2010-10-10 10:10:10.101010",
        ),
    ];
    for r in rows {
        c.exec_drop(&proj, r).await?;
    }
    let all_bytes: Vec<u8> = (0..4).flat_map(|_| 0u8..=255).collect();
    let long_log = "日志行 log line ✓ 🚀\n".repeat(2 * 1024 * 1024 / 27 + 1);
    c.exec_drop(
        format!(
            "INSERT IGNORE INTO {cm}.oms_task (task_id, project_id, task_name, status, progress, params, checkpoint_blob, flags, error_msg, log_text, started_at, updated_at) \
             VALUES ('awk-t-blob', 'awk-p-emoji', '任务 🚀 task', 'RUNNING', 12345678901234.123456, ?, ?, b'10100101', NULL, ?, '2024-02-29 23:59:59.999999', '2038-01-19 03:14:07.999999')"
        ),
        (r#"{"offset":18446744073709551615,"ratio":0.1,"nested":{"k":[]}}"#, all_bytes, long_log),
    )
    .await?;
    c.query_drop(format!(
        "INSERT IGNORE INTO {cm}.oms_task (task_id, project_id, task_name, status, progress, params, checkpoint_blob, flags, error_msg, log_text, started_at, updated_at) \
         VALUES ('awk-t-empty', 'awk-p-empty', '', 'INIT', NULL, '{{}}', '', b'0', '', '', NULL, '1970-01-01 00:00:01.000000')"
    ))
    .await?;
    // Fires trg_oms_task_status once per seeding run that changes the status.
    c.query_drop(format!(
        "UPDATE {cm}.oms_task SET status = 'FINISHED' WHERE task_id = 'awk-t-blob' AND status = 'RUNNING'"
    ))
    .await?;
    c.query_drop(format!(
        "INSERT IGNORE INTO {cm}.oms_resource (resource_id, host_ip, resource_type, cpu_cores, mem_bytes, alive, spec, gmt_create, gmt_modified) VALUES \
         ('awk-r-dead', '127.0.0.1', 'STORE', 0.50, 18446744073709551615, b'0', NULL, '2020-01-01 00:00:00.000000', '2020-01-01 00:00:00'), \
         ('awk-r-alive', '127.0.0.1', 'CONNECTOR', 9999.99, 0, b'1', '{{\"disk\":\"/home/ds/store\"}}', '2020-01-01 00:00:00.000000', '2038-01-19 03:14:07')"
    ))
    .await?;
    Ok(())
}

/// The `seed` mode; returns the process exit code.
pub async fn run(args: SeedArgs) -> i32 {
    let log = Logger::new(&[]);
    match run_inner(&args, &log).await {
        Ok(()) => 0,
        Err(e) => {
            log.error(&format!("seed failed: {e}"));
            1
        }
    }
}

async fn run_inner(args: &SeedArgs, log: &Logger) -> Result<(), String> {
    if crate::schema::index_of(&args.oms_version).is_none() {
        return Err(format!(
            "--oms-version {} is not a version the emulator knows ({})",
            args.oms_version,
            crate::schema::VERSIONS.join(", ")
        ));
    }
    let started = Instant::now();
    let cfg = crate::common::load_config(&args.config)?;
    let dbs = cfg.databases();
    let pool = crate::common::connect(&cfg).await?;
    let conn = pool.get_conn().await.map_err(|e| e.to_string())?;
    let mut inst = Installer::new(conn, &dbs, log);
    inst.ensure_databases().await.map_err(|e| e.0)?;
    match inst.state().await.map_err(|e| e.0)? {
        DbState::Empty => {
            log.info(&format!(
                "empty databases: installing schema {}",
                args.oms_version
            ));
            inst.fresh_install(&args.oms_version)
                .await
                .map_err(|e| e.0)?;
        }
        DbState::Versioned(v) => log.info(&format!("seeding a schema at version {v}")),
        DbState::Unknown(n) => {
            return Err(format!(
                "{n} tables but no schema-version row: not an emulator schema, refusing to seed"
            ));
        }
    }
    drop(inst);
    let mut c = session(&pool).await.map_err(|e| e.to_string())?;
    awkward(&mut c, &dbs)
        .await
        .map_err(|e| format!("awkward rows: {e}"))?;
    let listed = if args.servers.is_empty() {
        let nodes = cfg.cm_nodes(&args.config).map_err(|e| e.to_string())?;
        if nodes.is_empty() {
            vec!["127.0.0.1".to_string()]
        } else {
            nodes
        }
    } else {
        args.servers.clone()
    };
    servers(&mut c, &dbs, &cfg, &listed)
        .await
        .map_err(|e| format!("servers: {e}"))?;
    drop(c);

    let run_key = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let mut units = Vec::new();
    for (i, (kind, share)) in SHARES.iter().enumerate() {
        let total = args.size * share / 100;
        let parts = total.div_ceil(UNIT_BYTES).max(1);
        for p in 0..parts {
            units.push(Unit {
                kind: *kind,
                budget: total / parts,
                key: format!("{run_key}{i}{p}"),
                seed: args.seed ^ ((i as u64) << 32) ^ p,
            });
        }
    }
    let results: Vec<Result<(String, u64, u64), String>> = futures_util::stream::iter(
        units
            .into_iter()
            .map(|u| fill(pool.clone(), dbs.clone(), u)),
    )
    .buffer_unordered(args.jobs.max(1))
    .collect()
    .await;
    let mut rows: BTreeMap<String, u64> = BTreeMap::new();
    let mut bytes = 0u64;
    for r in results {
        let (table, n, b) = r?;
        *rows.entry(table).or_default() += n;
        bytes += b;
    }
    pool.disconnect().await.ok();
    let summary = serde_json::json!({
        "requestedBytes": args.size,
        "valueBytes": bytes,
        "rows": rows,
        "seconds": started.elapsed().as_secs_f64(),
    });
    println!("{summary}");
    Ok(())
}
