//! The emulator's metadata schema: the tables of `rm`, `cm` and `cm_hb` at the oldest
//! emulated version (3.2.2), and one migration step per later version.
//!
//! A fresh install at version V is the base schema plus every step up to V; an upgrade from U
//! to V applies the steps after U up to V. Both therefore end with the same tables, which is
//! what lets a test compare an upgraded database with a fresh one. Every step adds at least
//! one table and one column, so a test can see whether a migration ran.
//!
//! Statements are plain MariaDB/MySQL DDL without `IF NOT EXISTS` tricks: the init code
//! checks `information_schema` before each change, so a step interrupted half-way (the
//! fault-injection knobs do exactly that) can be inspected and rolled back by restoring the
//! dumps, as an operator would.

/// The OMS CE versions the emulator knows, oldest first (one list, shared with the
/// `demo` command that checks `--from`/`--to` against it).
pub const VERSIONS: &[&str] = oms_upgrade::demo::emuimage::EMULATED_VERSIONS;

/// The version a seeded database is installed at when it holds no schema yet.
pub const DEFAULT_SEED_VERSION: &str = "3.3.0";

/// Which of the three metadata databases a statement runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    /// `drc_rm_db`.
    Rm,
    /// `drc_cm_db`.
    Cm,
    /// `drc_cm_heartbeat_db`.
    CmHb,
}

impl Db {
    /// The short name used in logs and docs.
    pub fn label(self) -> &'static str {
        match self {
            Db::Rm => "rm",
            Db::Cm => "cm",
            Db::CmHb => "cm_hb",
        }
    }
}

/// One object of the base schema: a table or a trigger.
pub struct Object {
    /// Database it lives in.
    pub db: Db,
    /// Table or trigger name.
    pub name: &'static str,
    /// True for a trigger (checked in `information_schema.TRIGGERS`).
    pub trigger: bool,
    /// The `CREATE` statement.
    pub ddl: &'static str,
}

/// The schema changes that bring the database to `version`.
pub struct Step {
    /// Version reached after this step.
    pub version: &'static str,
    /// New table: database, name, `CREATE TABLE` statement.
    pub table: (Db, &'static str, &'static str),
    /// New column: database, table, column, column definition.
    pub column: (Db, &'static str, &'static str, &'static str),
}

/// Table holding the one schema-version row (`id = 1`).
pub const VERSION_TABLE: &str = "oms_schema_version";

/// The default `ha.config` value a fresh install writes: every field the brief lists, with
/// OMS's defaults, HA disabled. Compact JSON, as OMS stores it.
pub const DEFAULT_HA_CONFIG: &str = concat!(
    r#"{"enable":false,"enableHost":false,"enableStore":true,"#,
    r#""perceiveStoreClientCheckpoint":false,"enableConnector":true,"#,
    r#""enableJdbcWriter":true,"subtopicStoreNumberThreshold":5,"#,
    r#""checkRequestIntervalSec":600,"checkJdbcWriterIntervalSec":600,"#,
    r#""checkHostDownIntervalSec":540,"checkModuleExceptionIntervalSec":240,"#,
    r#""clearAbnormalResourceHours":72,"refetchStoreIntervalMin":30}"#
);

/// The other system parameters a fresh install writes next to `ha.config`.
pub const DEFAULT_NORMAL_CONFIG: &[(&str, &str, &str)] = &[
    (
        "ha.config",
        DEFAULT_HA_CONFIG,
        "High availability switches and intervals",
    ),
    ("oms.console.language", "zh_CN", "Console language"),
    (
        "store.retention.hours",
        r#"{"sync":24,"migration":120}"#,
        "How long stores keep incremental data",
    ),
];

/// The base schema (version 3.2.2), in creation order.
pub const BASE: &[Object] = &[
    Object {
        db: Db::Rm,
        name: "oms_schema_version",
        trigger: false,
        ddl: "CREATE TABLE oms_schema_version (
  id TINYINT UNSIGNED NOT NULL,
  version VARCHAR(32) NOT NULL,
  previous_version VARCHAR(32) NULL,
  installed_at DATETIME(6) NOT NULL,
  updated_at DATETIME(6) NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    },
    Object {
        db: Db::Rm,
        name: "oms_schema_history",
        trigger: false,
        ddl: "CREATE TABLE oms_schema_history (
  id BIGINT NOT NULL AUTO_INCREMENT,
  version VARCHAR(32) NOT NULL,
  kind VARCHAR(16) NOT NULL,
  detail VARCHAR(512) NOT NULL,
  applied_at DATETIME(6) NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    },
    Object {
        db: Db::Rm,
        name: "oms_normal_config",
        trigger: false,
        ddl: "CREATE TABLE oms_normal_config (
  id BIGINT NOT NULL AUTO_INCREMENT,
  cfg_name VARCHAR(128) NOT NULL,
  cfg_value LONGTEXT NULL,
  description VARCHAR(512) NULL,
  gmt_create DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
  gmt_modified DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY (id),
  UNIQUE KEY uk_cfg_name (cfg_name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    },
    Object {
        db: Db::Rm,
        name: "oms_data_source",
        trigger: false,
        ddl: "CREATE TABLE oms_data_source (
  id BIGINT NOT NULL AUTO_INCREMENT,
  ds_id VARCHAR(64) NOT NULL,
  ds_type VARCHAR(32) NOT NULL,
  host VARCHAR(255) NOT NULL,
  port INT NOT NULL,
  username VARCHAR(128) NOT NULL,
  password_cipher VARBINARY(512) NULL,
  tenant VARCHAR(128) NULL,
  extra_params JSON NULL,
  remark VARCHAR(512) NULL,
  gmt_create DATETIME(6) NOT NULL,
  gmt_modified TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (id),
  UNIQUE KEY uk_ds_id (ds_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    },
    Object {
        db: Db::Rm,
        name: "oms_project",
        trigger: false,
        ddl: "CREATE TABLE oms_project (
  id BIGINT NOT NULL AUTO_INCREMENT,
  project_id VARCHAR(64) NOT NULL,
  name VARCHAR(256) NOT NULL,
  project_type VARCHAR(32) NOT NULL,
  status VARCHAR(32) NOT NULL,
  source_ds_id VARCHAR(64) NOT NULL,
  dest_ds_id VARCHAR(64) NOT NULL,
  config JSON NULL,
  description TEXT NULL,
  progress DECIMAL(5,2) NOT NULL DEFAULT 0.00,
  gmt_create DATETIME(6) NOT NULL,
  gmt_modified TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (id),
  UNIQUE KEY uk_project_id (project_id),
  KEY idx_status (status)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    },
    Object {
        db: Db::Cm,
        name: "oms_task",
        trigger: false,
        ddl: "CREATE TABLE oms_task (
  id BIGINT NOT NULL AUTO_INCREMENT,
  task_id VARCHAR(64) NOT NULL,
  project_id VARCHAR(64) NOT NULL,
  task_name VARCHAR(256) NOT NULL,
  name_chars INT AS (CHAR_LENGTH(task_name)) VIRTUAL,
  status VARCHAR(32) NOT NULL,
  progress DECIMAL(20,6) NULL,
  params JSON NULL,
  checkpoint_blob LONGBLOB NULL,
  flags BIT(8) NOT NULL DEFAULT b'0',
  error_msg TEXT NULL,
  log_text LONGTEXT NULL,
  started_at DATETIME(6) NULL,
  updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (id),
  UNIQUE KEY uk_task_id (task_id),
  KEY idx_project (project_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    },
    Object {
        db: Db::Cm,
        name: "oms_task_status_log",
        trigger: false,
        ddl: "CREATE TABLE oms_task_status_log (
  id BIGINT NOT NULL AUTO_INCREMENT,
  task_id VARCHAR(64) NOT NULL,
  old_status VARCHAR(32) NULL,
  new_status VARCHAR(32) NOT NULL,
  changed_at DATETIME(6) NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    },
    Object {
        db: Db::Cm,
        name: "trg_oms_task_status",
        trigger: true,
        ddl: "CREATE TRIGGER trg_oms_task_status AFTER UPDATE ON oms_task FOR EACH ROW \
INSERT INTO oms_task_status_log (task_id, old_status, new_status, changed_at) \
VALUES (NEW.task_id, OLD.status, NEW.status, NOW(6))",
    },
    Object {
        db: Db::Cm,
        name: "oms_resource",
        trigger: false,
        ddl: "CREATE TABLE oms_resource (
  id BIGINT NOT NULL AUTO_INCREMENT,
  resource_id VARCHAR(64) NOT NULL,
  host_ip VARCHAR(64) NOT NULL,
  resource_type VARCHAR(32) NOT NULL,
  cpu_cores DECIMAL(6,2) NOT NULL,
  mem_bytes BIGINT UNSIGNED NOT NULL,
  alive BIT(1) NOT NULL DEFAULT b'1',
  spec JSON NULL,
  gmt_create DATETIME(6) NOT NULL,
  gmt_modified TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (id),
  UNIQUE KEY uk_resource_id (resource_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    },
    Object {
        db: Db::Cm,
        name: "oms_cm_config",
        trigger: false,
        ddl: "CREATE TABLE oms_cm_config (
  id BIGINT NOT NULL AUTO_INCREMENT,
  config_key VARCHAR(128) NOT NULL,
  config_value TEXT NULL,
  gmt_modified DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (id),
  UNIQUE KEY uk_config_key (config_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    },
    Object {
        db: Db::CmHb,
        name: "heatbeat_sequence",
        trigger: false,
        ddl: "CREATE TABLE heatbeat_sequence (
  id BIGINT NOT NULL AUTO_INCREMENT,
  gmt_created DATETIME(6) NOT NULL,
  host_ip VARCHAR(64) NOT NULL,
  sequence_no BIGINT NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    },
    Object {
        db: Db::CmHb,
        name: "host_heartbeat",
        trigger: false,
        ddl: "CREATE TABLE host_heartbeat (
  host_ip VARCHAR(64) NOT NULL,
  version VARCHAR(32) NOT NULL,
  status VARCHAR(16) NOT NULL,
  last_beat DATETIME(6) NOT NULL,
  PRIMARY KEY (host_ip)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    },
];

/// One step per version after 3.2.2, in order.
pub const STEPS: &[Step] = &[
    Step {
        version: "3.3.0",
        table: (
            Db::Rm,
            "oms_alarm_rule",
            "CREATE TABLE oms_alarm_rule (
  id BIGINT NOT NULL AUTO_INCREMENT,
  rule_name VARCHAR(128) NOT NULL,
  rule_expr TEXT NOT NULL,
  enabled BIT(1) NOT NULL DEFAULT b'1',
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        ),
        column: (Db::Rm, "oms_project", "owner", "VARCHAR(128) NULL"),
    },
    Step {
        version: "3.3.1",
        table: (
            Db::Rm,
            "oms_project_label",
            "CREATE TABLE oms_project_label (
  id BIGINT NOT NULL AUTO_INCREMENT,
  project_id VARCHAR(64) NOT NULL,
  label VARCHAR(128) NOT NULL,
  gmt_create DATETIME(6) NOT NULL,
  PRIMARY KEY (id),
  KEY idx_project (project_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        ),
        column: (Db::Cm, "oms_task", "retry_count", "INT NOT NULL DEFAULT 0"),
    },
    Step {
        version: "4.0.0",
        table: (
            Db::Rm,
            "oms_user_role",
            "CREATE TABLE oms_user_role (
  id BIGINT NOT NULL AUTO_INCREMENT,
  user_name VARCHAR(128) NOT NULL,
  role VARCHAR(64) NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        ),
        column: (Db::Rm, "oms_data_source", "region", "VARCHAR(64) NULL"),
    },
    Step {
        version: "4.1.0",
        table: (
            Db::Cm,
            "oms_connector_config",
            "CREATE TABLE oms_connector_config (
  id BIGINT NOT NULL AUTO_INCREMENT,
  connector_id VARCHAR(64) NOT NULL,
  config JSON NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        ),
        column: (Db::Cm, "oms_resource", "arch", "VARCHAR(16) NULL"),
    },
    Step {
        version: "4.1.1",
        table: (
            Db::Rm,
            "oms_openapi_key",
            "CREATE TABLE oms_openapi_key (
  id BIGINT NOT NULL AUTO_INCREMENT,
  access_key VARCHAR(64) NOT NULL,
  secret_cipher VARBINARY(256) NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        ),
        column: (Db::Rm, "oms_project", "priority", "INT NOT NULL DEFAULT 0"),
    },
    Step {
        version: "4.2.0",
        table: (
            Db::Cm,
            "oms_incr_sync_checkpoint",
            "CREATE TABLE oms_incr_sync_checkpoint (
  id BIGINT NOT NULL AUTO_INCREMENT,
  task_id VARCHAR(64) NOT NULL,
  checkpoint_ts BIGINT NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        ),
        column: (Db::Cm, "oms_task", "dest_schema", "VARCHAR(256) NULL"),
    },
    Step {
        version: "4.2.1",
        table: (
            Db::Rm,
            "oms_alarm_channel",
            "CREATE TABLE oms_alarm_channel (
  id BIGINT NOT NULL AUTO_INCREMENT,
  channel_type VARCHAR(32) NOT NULL,
  endpoint VARCHAR(512) NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        ),
        column: (Db::Rm, "oms_data_source", "tls_mode", "VARCHAR(16) NULL"),
    },
    Step {
        version: "4.2.2",
        table: (
            Db::Cm,
            "oms_supervisor_program",
            "CREATE TABLE oms_supervisor_program (
  id BIGINT NOT NULL AUTO_INCREMENT,
  program VARCHAR(64) NOT NULL,
  state VARCHAR(16) NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        ),
        column: (Db::Rm, "oms_project", "tags", "JSON NULL"),
    },
];

/// The version whose step also creates [`SERVER_TABLES`]. The public record does not say
/// since which version OMS keeps them; 4.2.0 is the first version of the 4.2.x guide, whose
/// "every server Online" check reads them (docs/emulator.md).
pub const SERVER_TABLES_SINCE: &str = "4.2.0";

/// The deployment's regions and servers, as obd's OMS takeover reads them
/// (oceanbase/obdeploy `plugins/oms/1.0.0/get_takeover_config.py`: `select * from
/// cluster_info` in rm, whose rows it reads as `region`, `region_cn`, `cm_url`, `code` (the
/// `cm_location`) and `is_default_cm`; `select id,name from resource_group` and `select
/// resource_group_id,ip from host where resource_group_id = ...` in cm, where
/// `resource_group.name` is the region's `cm_location`). Only the columns the record shows,
/// plus an `id` key on `cluster_info` and `host`: the record names no other column (no
/// status column in particular), so the emulator invents none. A test that shows the tool
/// ignores a status column adds one itself (docs/emulator.md).
pub const SERVER_TABLES: &[(Db, &str, &str)] = &[
    (
        Db::Rm,
        "cluster_info",
        "CREATE TABLE cluster_info (
  id BIGINT NOT NULL AUTO_INCREMENT,
  region VARCHAR(64) NOT NULL,
  region_cn VARCHAR(128) NULL,
  cm_url VARCHAR(512) NULL,
  code INT NOT NULL,
  is_default_cm TINYINT NOT NULL DEFAULT 0,
  PRIMARY KEY (id),
  UNIQUE KEY uk_code (code)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    ),
    (
        Db::Cm,
        "resource_group",
        "CREATE TABLE resource_group (
  id BIGINT NOT NULL AUTO_INCREMENT,
  name VARCHAR(64) NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    ),
    (
        Db::Cm,
        "host",
        "CREATE TABLE host (
  id BIGINT NOT NULL AUTO_INCREMENT,
  resource_group_id BIGINT NOT NULL,
  ip VARCHAR(64) NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_ip (ip)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    ),
];

/// Position of a version in [`VERSIONS`], or `None` for a version the emulator does not know.
pub fn index_of(version: &str) -> Option<usize> {
    VERSIONS.iter().position(|v| *v == version)
}

/// The steps that lead from `from` (exclusive; `None` = base schema) to `to` (inclusive).
pub fn steps_between(from: Option<&str>, to: &str) -> Vec<&'static Step> {
    let lo = from.and_then(index_of).unwrap_or(0);
    let hi = index_of(to).unwrap_or(0);
    STEPS
        .iter()
        .filter(|s| {
            let i = index_of(s.version).unwrap_or(0);
            i > lo && i <= hi
        })
        .collect()
}
