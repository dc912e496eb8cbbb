//! `init`: what `/root/docker_init.sh` runs. Creates the metadata schema on empty databases
//! (fresh install), or migrates an older schema when `IS_UPGRADE=true`, and refuses an
//! existing schema otherwise, as a careless upgrade would hit.
//!
//! Progress goes to stdout and to `docker_init.log` (rewritten each run) plus
//! `docker_init_<timestamp>.log` under the logs folder, or (`.emu-init-log-rotated`) only to
//! a rotated `docker_init.log.<YYYY-MM-DD.HH:MM:SS>`; success ends with OMS's marker line.
//! The working folder it was started in is written to `docker_init.cwd` in the run folder.
//! Tests can make it fail or hang after its first schema change (so the databases are left
//! half-migrated, as a real failure would leave them) with `OMS_EMU_INIT_FAIL=1` /
//! `OMS_EMU_INIT_HANG=1`, or with the marker files `.emu-init-fail` / `.emu-init-hang` in
//! the logs folder: the upgrade tool copies the old container's environment, so files on the
//! host are the way to steer a new container. `.emu-init-step-delay-ms` (or
//! `OMS_EMU_INIT_STEP_DELAY_MS`) makes it slow; `.emu-init-exec` (or `OMS_EMU_INIT_EXEC=1`)
//! makes `/root/docker_init.sh` `exec` into this program instead of running it as a child.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use oms_upgrade::omsconfig::MetaDatabases;

use crate::common::{Logger, Paths, q};
use crate::schema::{self, BASE, Db, VERSION_TABLE};

/// The line OMS's `docker_init.sh` ends with on success.
pub const SUCCESS_MARKER: &str = "【结束】全部初始化步骤执行成功";

/// A failure injected on purpose, and where the request came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Exit non-zero after the first schema change.
    Fail(String),
    /// Never finish after the first schema change.
    Hang(String),
}

/// Reads the fault knobs: environment first, then marker files in the logs folder.
pub fn fault_from(paths: &Paths) -> Option<Fault> {
    let env_on = |k: &str| std::env::var(k).is_ok_and(|v| v == "1" || v == "true");
    if env_on("OMS_EMU_INIT_FAIL") {
        return Some(Fault::Fail("OMS_EMU_INIT_FAIL".into()));
    }
    if env_on("OMS_EMU_INIT_HANG") {
        return Some(Fault::Hang("OMS_EMU_INIT_HANG".into()));
    }
    let fail = paths.logs.join(".emu-init-fail");
    if fail.exists() {
        return Some(Fault::Fail(fail.display().to_string()));
    }
    let hang = paths.logs.join(".emu-init-hang");
    if hang.exists() {
        return Some(Fault::Hang(hang.display().to_string()));
    }
    None
}

/// The pause after each schema change: `OMS_EMU_INIT_STEP_DELAY_MS`, else the number of
/// milliseconds in `.emu-init-step-delay-ms` in the logs folder (a new container copies
/// the old one's environment, so a file on the host is how a test slows its init).
pub fn step_delay_from(paths: &Paths) -> Duration {
    std::env::var("OMS_EMU_INIT_STEP_DELAY_MS")
        .ok()
        .or_else(|| std::fs::read_to_string(paths.logs.join(".emu-init-step-delay-ms")).ok())
        .and_then(|v| v.trim().parse().ok())
        .map(Duration::from_millis)
        .unwrap_or_default()
}

/// What the three databases hold before init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbState {
    /// No table in any of the three databases.
    Empty,
    /// An emulator schema at this version.
    Versioned(String),
    /// Tables exist but there is no schema-version row.
    Unknown(u64),
}

/// An init failure: the message is the log line.
pub struct InitError(pub String);

impl From<mysql_async::Error> for InitError {
    fn from(e: mysql_async::Error) -> Self {
        InitError(format!("metadata DB error: {e}"))
    }
}

/// A region as its `config.yaml` describes it (the keys obd's generator writes per region,
/// oceanbase/obdeploy `plugins/oms/1.0.0/generate_oms_config.py`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// `cm_region`, else the `cm_location` as text (obd writes `cm_region` only with
    /// several regions; the record does not say what OMS stores for a lone region).
    pub name: String,
    /// `cm_region_cn`, else the name.
    pub name_cn: String,
    /// `cm_url`, if any.
    pub cm_url: Option<String>,
    /// `cm_location` (0 when absent).
    pub location: u32,
    /// `cm_is_default` (`true`/`"true"`); a file without it is the default region.
    pub is_default: bool,
    /// `cm_nodes`: every IP of the region.
    pub nodes: Vec<String>,
}

impl Region {
    /// The region of `cfg`, or `None` when it has no `cm_nodes` (a single node as the
    /// runbook has it: nothing to register).
    pub fn from_config(
        cfg: &oms_upgrade::omsconfig::OmsConfig,
        path: &std::path::Path,
    ) -> Result<Option<Region>, InitError> {
        use serde_yaml_ng::Value;
        let nodes = cfg
            .cm_nodes(path)
            .map_err(|e| InitError(format!("invalid OMS config: {e}")))?;
        if nodes.is_empty() {
            return Ok(None);
        }
        let text = |k: &str| match cfg.extra.get(k) {
            Some(Value::String(s)) => Some(s.trim().to_string()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            _ => None,
        };
        let location = match text("cm_location") {
            None => 0,
            Some(t) => t.parse::<u32>().map_err(|_| {
                InitError(format!(
                    "invalid OMS config {}: `cm_location` must be an integer 0-127, found {t:?}",
                    path.display()
                ))
            })?,
        };
        let name = text("cm_region").unwrap_or_else(|| location.to_string());
        Ok(Some(Region {
            name_cn: text("cm_region_cn").unwrap_or_else(|| name.clone()),
            name,
            cm_url: text("cm_url"),
            location,
            is_default: text("cm_is_default").is_none_or(|v| v == "true"),
            nodes,
        }))
    }
}

/// Runs the schema work. Shared by `init` and by the seeder's fresh install.
pub struct Installer<'a> {
    /// Connection to the metadata server.
    pub conn: mysql_async::Conn,
    /// Database names.
    pub dbs: &'a MetaDatabases,
    /// Progress log.
    pub log: &'a Logger,
    /// Injected fault, consumed after the first schema change.
    pub fault: Option<Fault>,
    /// Pause after each change, to make init take a while (`OMS_EMU_INIT_STEP_DELAY_MS`).
    pub step_delay: Duration,
    step: usize,
}

impl<'a> Installer<'a> {
    /// A new installer.
    pub fn new(conn: mysql_async::Conn, dbs: &'a MetaDatabases, log: &'a Logger) -> Self {
        Installer {
            conn,
            dbs,
            log,
            fault: None,
            step_delay: Duration::ZERO,
            step: 0,
        }
    }

    fn db(&self, db: Db) -> &str {
        match db {
            Db::Rm => &self.dbs.rm,
            Db::Cm => &self.dbs.cm,
            Db::CmHb => &self.dbs.cm_hb,
        }
    }

    /// Creates the three databases when missing (utf8mb4), as OMS's init does.
    pub async fn ensure_databases(&mut self) -> Result<(), InitError> {
        for name in self.dbs.all() {
            self.conn
                .query_drop(format!(
                    "CREATE DATABASE IF NOT EXISTS {} DEFAULT CHARACTER SET utf8mb4",
                    q(name)
                ))
                .await?;
        }
        Ok(())
    }

    /// What the databases hold.
    pub async fn state(&mut self) -> Result<DbState, InitError> {
        let dbs = self.dbs.clone();
        let tables: u64 = self
            .conn
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA IN (?, ?, ?)",
                (&dbs.rm, &dbs.cm, &dbs.cm_hb),
            )
            .await?
            .unwrap_or(0);
        if tables == 0 {
            return Ok(DbState::Empty);
        }
        if self.table_exists(Db::Rm, VERSION_TABLE).await? {
            let v: Option<String> = self
                .conn
                .query_first(format!(
                    "SELECT version FROM {}.{VERSION_TABLE} WHERE id = 1",
                    q(&dbs.rm)
                ))
                .await?;
            if let Some(v) = v {
                return Ok(DbState::Versioned(v));
            }
        }
        Ok(DbState::Unknown(tables))
    }

    async fn table_exists(&mut self, db: Db, table: &str) -> Result<bool, InitError> {
        let n: u64 = self
            .conn
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (self.db(db).to_string(), table),
            )
            .await?
            .unwrap_or(0);
        Ok(n > 0)
    }

    async fn trigger_exists(&mut self, db: Db, name: &str) -> Result<bool, InitError> {
        let n: u64 = self
            .conn
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? AND TRIGGER_NAME = ?",
                (self.db(db).to_string(), name),
            )
            .await?
            .unwrap_or(0);
        Ok(n > 0)
    }

    async fn column_exists(&mut self, db: Db, table: &str, col: &str) -> Result<bool, InitError> {
        let n: u64 = self
            .conn
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND COLUMN_NAME = ?",
                (self.db(db).to_string(), table, col),
            )
            .await?
            .unwrap_or(0);
        Ok(n > 0)
    }

    /// Runs one DDL statement in `db`, logs it as a numbered step, then honours the fault
    /// knob (once) and the step delay.
    async fn change(&mut self, db: Db, what: String, sql: &str) -> Result<(), InitError> {
        self.step += 1;
        self.log.info(&format!("【步骤 {}】{what}", self.step));
        let dbname = self.db(db).to_string();
        self.conn.query_drop(format!("USE {}", q(&dbname))).await?;
        self.conn
            .query_drop(sql)
            .await
            .map_err(|e| InitError(format!("{what} failed: {e}")))?;
        if !self.step_delay.is_zero() {
            tokio::time::sleep(self.step_delay).await;
        }
        self.after_first_change().await
    }

    async fn after_first_change(&mut self) -> Result<(), InitError> {
        match self.fault.take() {
            None => Ok(()),
            Some(Fault::Fail(src)) => Err(InitError(format!(
                "injected failure after step {} (requested by {src}): metadata left half-initialised",
                self.step
            ))),
            Some(Fault::Hang(src)) => {
                self.log.warn(&format!(
                    "injected hang after step {} (requested by {src}): this init will never finish; kill it",
                    self.step
                ));
                std::future::pending::<()>().await;
                unreachable!("a pending future never completes")
            }
        }
    }

    /// How many tables this region's heartbeat database holds (none: a region whose first
    /// node runs init on a deployment another region initialised).
    pub async fn heartbeat_tables(&mut self) -> Result<u64, InitError> {
        let n: u64 = self
            .conn
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
                (self.dbs.cm_hb.clone(),),
            )
            .await?
            .unwrap_or(0);
        Ok(n)
    }

    /// Creates this region's heartbeat tables where missing (the heartbeat database is the
    /// one thing of the metadata a region has of its own; rm and cm are shared).
    pub async fn ensure_heartbeat_db(&mut self) -> Result<(), InitError> {
        for obj in BASE.iter().filter(|o| o.db == Db::CmHb) {
            if !self.table_exists(obj.db, obj.name).await? {
                let what = format!("创建表 {}.{} (区域心跳库)", obj.db.label(), obj.name);
                self.change(obj.db, what, obj.ddl).await?;
            }
        }
        Ok(())
    }

    /// Registers the region of `config.yaml` and the nodes of its `cm_nodes` where the schema
    /// has the tables for them ([`schema::SERVER_TABLES`], 4.2.0 on): the region's
    /// `cluster_info` row (`code` = `cm_location`), its `resource_group` (named after the
    /// `cm_location`) and one `host` row per node. Rows already there stay as they are, so
    /// running init on every node of a region changes nothing after the first. A config
    /// without `cm_nodes` (a single node as the runbook has it) registers nothing.
    pub async fn register_region(&mut self, region: &Region) -> Result<(), InitError> {
        let (rm, cm) = (self.dbs.rm.clone(), self.dbs.cm.clone());
        let mut added = Vec::new();
        if self.table_exists(Db::Rm, "cluster_info").await? {
            self.conn
                .exec_drop(
                    format!(
                        "INSERT IGNORE INTO {}.cluster_info (region, region_cn, cm_url, code, is_default_cm) \
                         VALUES (?, ?, ?, ?, ?)",
                        q(&rm)
                    ),
                    (
                        &region.name,
                        &region.name_cn,
                        &region.cm_url,
                        region.location,
                        u8::from(region.is_default),
                    ),
                )
                .await?;
            if self.conn.affected_rows() > 0 {
                added.push(format!("cluster_info {}", region.location));
            }
        }
        if !(self.table_exists(Db::Cm, "resource_group").await?
            && self.table_exists(Db::Cm, "host").await?)
        {
            self.log_added(&added);
            return Ok(());
        }
        let group_name = region.location.to_string();
        self.conn
            .exec_drop(
                format!(
                    "INSERT IGNORE INTO {}.resource_group (name) VALUES (?)",
                    q(&cm)
                ),
                (&group_name,),
            )
            .await?;
        if self.conn.affected_rows() > 0 {
            added.push(format!("resource_group {group_name}"));
        }
        let group: Option<i64> = self
            .conn
            .exec_first(
                format!("SELECT id FROM {}.resource_group WHERE name = ?", q(&cm)),
                (&group_name,),
            )
            .await?;
        let Some(group) = group else {
            return Err(InitError(format!(
                "resource_group {group_name} vanished while registering region {}",
                region.name
            )));
        };
        for ip in &region.nodes {
            self.conn
                .exec_drop(
                    format!(
                        "INSERT IGNORE INTO {}.host (resource_group_id, ip) VALUES (?, ?)",
                        q(&cm)
                    ),
                    (group, ip),
                )
                .await?;
            if self.conn.affected_rows() > 0 {
                added.push(format!("host {ip}"));
            }
        }
        self.log_added(&added);
        Ok(())
    }

    fn log_added(&self, added: &[String]) {
        if !added.is_empty() {
            self.log.info(&format!(
                "注册区域与节点 (registered): {}",
                added.join(", ")
            ));
        }
    }

    /// Creates the whole schema of `version` on empty databases, with the default
    /// `ha.config` row and the schema-version row.
    pub async fn fresh_install(&mut self, version: &str) -> Result<(), InitError> {
        for obj in BASE {
            let exists = if obj.trigger {
                self.trigger_exists(obj.db, obj.name).await?
            } else {
                self.table_exists(obj.db, obj.name).await?
            };
            if !exists {
                let kind = if obj.trigger { "触发器" } else { "表" };
                let what = format!("创建{kind} {}.{}", obj.db.label(), obj.name);
                self.change(obj.db, what, obj.ddl).await?;
            }
        }
        for step in schema::steps_between(None, version) {
            self.apply_step(step).await?;
        }
        let rm = q(&self.dbs.rm);
        for (name, value, desc) in schema::DEFAULT_NORMAL_CONFIG {
            self.conn
                .exec_drop(
                    format!("INSERT IGNORE INTO {rm}.oms_normal_config (cfg_name, cfg_value, description) VALUES (?, ?, ?)"),
                    (name, value, desc),
                )
                .await?;
        }
        self.log.info("写入默认系统参数 (ha.config enable=false)");
        let cm = q(&self.dbs.cm);
        self.conn
            .query_drop(format!(
                "INSERT IGNORE INTO {cm}.oms_cm_config (config_key, config_value) VALUES \
                 ('cm.scheduler.enabled', 'true'), ('cm.region', 'default'), ('cm.note', '')"
            ))
            .await?;
        self.conn
            .exec_drop(
                format!(
                    "REPLACE INTO {rm}.{VERSION_TABLE} (id, version, previous_version, installed_at, updated_at) \
                     VALUES (1, ?, NULL, NOW(6), NOW(6))"
                ),
                (version,),
            )
            .await?;
        self.history(version, "install", "fresh install").await?;
        self.log.info(&format!("元数据版本记录为 {version}"));
        if self.step == 0 {
            self.after_first_change().await?;
        }
        Ok(())
    }

    async fn apply_step(&mut self, step: &schema::Step) -> Result<(), InitError> {
        let (db, table, ddl) = step.table;
        if !self.table_exists(db, table).await? {
            let what = format!("[{}] 创建表 {}.{table}", step.version, db.label());
            self.change(db, what, ddl).await?;
        }
        if step.version == schema::SERVER_TABLES_SINCE {
            for &(db, table, ddl) in schema::SERVER_TABLES {
                if !self.table_exists(db, table).await? {
                    let what = format!("[{}] 创建表 {}.{table}", step.version, db.label());
                    self.change(db, what, ddl).await?;
                }
            }
        }
        let (db, table, col, def) = step.column;
        if !self.column_exists(db, table, col).await? {
            let what = format!("[{}] 新增列 {}.{table}.{col}", step.version, db.label());
            let sql = format!("ALTER TABLE {} ADD COLUMN {} {def}", q(table), q(col));
            self.change(db, what, &sql).await?;
        }
        Ok(())
    }

    /// Applies every step after `from` up to `to`, moving the version row after each.
    pub async fn upgrade(&mut self, from: &str, to: &str) -> Result<(), InitError> {
        let rm = q(&self.dbs.rm);
        let mut current = from.to_string();
        for step in schema::steps_between(Some(from), to) {
            self.apply_step(step).await?;
            self.conn
                .exec_drop(
                    format!(
                        "UPDATE {rm}.{VERSION_TABLE} SET version = ?, previous_version = ?, updated_at = NOW(6) WHERE id = 1"
                    ),
                    (step.version, &current),
                )
                .await?;
            self.history(step.version, "upgrade", &format!("from {current}"))
                .await?;
            self.log.info(&format!(
                "元数据版本 {current} -> {} 升级完成",
                step.version
            ));
            current = step.version.to_string();
        }
        if self.step == 0 {
            self.after_first_change().await?;
        }
        Ok(())
    }

    async fn history(&mut self, version: &str, kind: &str, detail: &str) -> Result<(), InitError> {
        let rm = q(&self.dbs.rm);
        self.conn
            .exec_drop(
                format!("INSERT INTO {rm}.oms_schema_history (version, kind, detail, applied_at) VALUES (?, ?, ?, NOW(6))"),
                (version, kind, detail),
            )
            .await?;
        Ok(())
    }
}

/// How `docker_init.sh` names its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogNaming {
    /// `docker_init.log` (rewritten each run) plus `docker_init_<timestamp>.log`.
    Plain,
    /// Only `docker_init.log.<YYYY-MM-DD.HH:MM:SS>`, the name obdiag's OMS log gatherer
    /// documents for a real node (oceanbase/obdiag, src/handler/gather/gather_log/oms.py).
    Rotated,
}

/// Reads the log-naming knob: `OMS_EMU_INIT_LOG=rotated`, else the marker file
/// `.emu-init-log-rotated` in the logs folder; the plain name otherwise.
pub fn log_naming_from(paths: &Paths) -> LogNaming {
    let env_rotated = std::env::var("OMS_EMU_INIT_LOG").is_ok_and(|v| v == "rotated");
    if env_rotated || paths.logs.join(".emu-init-log-rotated").exists() {
        LogNaming::Rotated
    } else {
        LogNaming::Plain
    }
}

/// The files this run logs to, for `naming`, at `now`.
pub fn log_files(
    paths: &Paths,
    naming: LogNaming,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<std::path::PathBuf> {
    match naming {
        LogNaming::Plain => vec![
            paths.logs.join("docker_init.log"),
            paths
                .logs
                .join(format!("docker_init_{}.log", now.format("%Y%m%d%H%M%S"))),
        ],
        LogNaming::Rotated => vec![paths.logs.join(format!(
            "docker_init.log.{}",
            now.format("%Y-%m-%d.%H:%M:%S")
        ))],
    }
}

/// The `init` mode; returns the process exit code.
pub async fn run(paths: &Paths) -> i32 {
    let _ = std::fs::create_dir_all(&paths.logs);
    let naming = log_naming_from(paths);
    if naming == LogNaming::Plain {
        let _ = std::fs::remove_file(paths.logs.join("docker_init.log"));
    }
    let log = Logger::new(&log_files(paths, naming, chrono::Utc::now()));
    let pid = std::process::id();
    let _ = std::fs::create_dir_all(&paths.run);
    let _ = std::fs::write(paths.run.join("docker_init.pid"), format!("{pid}\n"));
    // The runbook runs it as `cd /root; sh docker_init.sh`; whether the real script depends
    // on its working folder is not documented, so this is only recorded (for tests), and
    // logged, never acted on.
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_else(|e| format!("(unreadable: {e})"));
    let _ = std::fs::write(paths.run.join("docker_init.cwd"), format!("{cwd}\n"));
    log.info(&format!("working folder {cwd}"));
    match run_inner(paths, &log).await {
        Ok(()) => {
            log.info(SUCCESS_MARKER);
            0
        }
        Err(InitError(msg)) => {
            log.error(&format!("【失败】{msg}"));
            log.error("【结束】初始化失败，请查看上面的错误后重试");
            1
        }
    }
}

async fn run_inner(paths: &Paths, log: &Logger) -> Result<(), InitError> {
    let version = crate::common::version_from_env().map_err(InitError)?;
    log.info(&format!(
        "【开始】OMS {version} 元数据初始化 (OMS CE emulator), pid {}",
        std::process::id()
    ));
    let cfg = crate::common::load_config(&paths.config).map_err(InitError)?;
    let dbs = cfg.databases();
    log.info(&format!(
        "元数据库 {} : rm={} cm={} cm_hb={}",
        cfg.db_target().display_url(),
        dbs.rm,
        dbs.cm,
        dbs.cm_hb
    ));
    // OMS's docker_init.sh echoes the client commands it runs, password included; the
    // upgrade tool must mask it before the output reaches its ledger.
    let t = cfg.db_target();
    log.info(&format!(
        "检查元数据库连接: mysql -h{} -P{} -u{} -p{} -e 'select 1'",
        t.host,
        t.port,
        t.user,
        t.password.expose()
    ));
    let is_upgrade = match std::env::var("IS_UPGRADE") {
        Ok(v) if v == "true" => true,
        Ok(v) => {
            log.warn(&format!(
                "IS_UPGRADE={v:?} is not `true`: treated as a fresh install (only the exact value `true` means upgrade)"
            ));
            false
        }
        Err(_) => false,
    };
    let pool = crate::common::connect(&cfg).await.map_err(InitError)?;
    let conn = pool.get_conn().await?;
    let mut inst = Installer::new(conn, &dbs, log);
    inst.fault = fault_from(paths);
    inst.step_delay = step_delay_from(paths);
    inst.ensure_databases().await?;
    let region = Region::from_config(&cfg, &paths.config)?;
    match inst.state().await? {
        DbState::Empty => {
            log.info(&format!("元数据库为空: 全新安装 {version}"));
            inst.fresh_install(&version).await?;
        }
        // The first node of another region, on a deployment already initialised at this
        // very version: rm and cm are shared and stay as they are; only the region's own
        // heartbeat database is new (docs/emulator.md, "Several nodes on one engine").
        DbState::Versioned(current)
            if !is_upgrade && current == version && inst.heartbeat_tables().await? == 0 =>
        {
            log.info(&format!(
                "元数据已是 {version}, 本区域心跳库 {} 为空: 初始化本区域",
                dbs.cm_hb
            ));
            inst.ensure_heartbeat_db().await?;
        }
        DbState::Versioned(current) if !is_upgrade => {
            return Err(InitError(format!(
                "元数据库已初始化 (schema version {current})，但未设置 IS_UPGRADE=true。\
                 metadata already initialised at {current} and IS_UPGRADE is not `true`: refusing to \
                 initialise over it. For an upgrade, start the container with -e IS_UPGRADE=true"
            )));
        }
        DbState::Versioned(current) => {
            let (Some(from), Some(to)) = (schema::index_of(&current), schema::index_of(&version))
            else {
                return Err(InitError(format!(
                    "metadata schema version {current} is unknown to this emulator"
                )));
            };
            if from > to {
                return Err(InitError(format!(
                    "metadata schema {current} is newer than this image ({version}): downgrade is not supported; restore the backup instead"
                )));
            }
            // A region whose heartbeat database is new still gets its tables.
            inst.ensure_heartbeat_db().await?;
            if from == to {
                log.info(&format!("元数据已是 {version}: 无需升级"));
            } else {
                log.info(&format!(
                    "IS_UPGRADE=true: 升级元数据 {current} -> {version}"
                ));
                inst.upgrade(&current, &version).await?;
            }
        }
        DbState::Unknown(n) => {
            return Err(InitError(format!(
                "the metadata databases hold {n} tables but no schema-version row in {}.{VERSION_TABLE}: \
                 not an OMS metadata set this emulator knows; refusing to touch it",
                dbs.rm
            )));
        }
    }
    if let Some(region) = &region {
        inst.register_region(region).await?;
    }
    drop(inst);
    pool.disconnect().await.ok();
    Ok(())
}
