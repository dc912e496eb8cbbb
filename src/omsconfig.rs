//! OMS's own configuration file, `config.yaml`, as mounted into an OMS container at
//! `/home/admin/conf/config.yaml`.
//!
//! The file names the metadata database (`oms_meta_host`, `oms_meta_port`, `oms_meta_user`,
//! `oms_meta_password`), the three metadata databases (`drc_rm_db`, `drc_cm_db`,
//! `drc_cm_heartbeat_db`) and the ports OMS listens on. The upgrade tool reads it to find the
//! metadata database without asking the operator again; the emulator reads it exactly as OMS
//! would; the test harness and the demo write it. Keys this module does not know are kept in
//! order, so a file read and written back loses nothing an operator put there.
//!
//! Values are read leniently where real files vary (a port may be quoted, a password may be
//! a bare number), and strictly where a wrong value would send the tool to the wrong place:
//! every error names the file and the key.

use std::path::{Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};

use crate::dbconn::DbTarget;
use crate::secret::Secret;

/// Where OMS's nginx reads the console's certificate: mounted there (with
/// `/etc/pki/nginx/oms_server.key`), it serves the console port over HTTPS only.
pub const CONSOLE_CERT_PATH: &str = "/etc/pki/nginx/oms_server.crt";

/// Container path where OMS expects its config file.
pub const CONTAINER_CONFIG_PATH: &str = "/home/admin/conf/config.yaml";

/// OMS's default port for its web entry point (nginx), which serves `/oms/health`.
pub const DEFAULT_NGINX_PORT: u16 = 8089;
/// OMS's default cluster-manager port.
pub const DEFAULT_CM_PORT: u16 = 8088;
/// OMS's default ghana (console back end) port.
pub const DEFAULT_GHANA_PORT: u16 = 8090;
/// OMS's default supervisor port.
pub const DEFAULT_SUPERVISOR_PORT: u16 = 9000;
/// OMS's default sshd port inside the container.
pub const DEFAULT_SSHD_PORT: u16 = 2023;

/// The keys this module interprets; everything else is carried through untouched.
const KNOWN_KEYS: &[&str] = &[
    "oms_meta_host",
    "oms_meta_port",
    "oms_meta_user",
    "oms_meta_password",
    "drc_rm_db",
    "drc_cm_db",
    "drc_cm_heartbeat_db",
    "nginx_server_port",
    "cm_server_port",
    "ghana_server_port",
    "supervisor_server_port",
    "sshd_server_port",
];

/// Why a `config.yaml` could not be read, parsed or written.
#[derive(Debug, thiserror::Error)]
pub enum OmsConfigError {
    /// The file could not be read or written.
    #[error(
        "cannot access OMS config {path}: {source}. Check the path (the file the OMS container mounts at /home/admin/conf/config.yaml)"
    )]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid YAML.
    #[error("OMS config {path} is not valid YAML: {source}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The parser's error, with line and column.
        #[source]
        source: serde_yaml_ng::Error,
    },
    /// The document is valid YAML but not a mapping of keys to values.
    #[error("OMS config {path} is not a mapping of `key: value` lines")]
    NotAMapping {
        /// The file.
        path: PathBuf,
    },
    /// A key OMS requires is absent (or empty).
    #[error("OMS config {path} has no `{key}`: OMS needs it to reach its metadata database")]
    MissingKey {
        /// The file.
        path: PathBuf,
        /// The missing key.
        key: &'static str,
    },
    /// A key has a value of the wrong kind.
    #[error("OMS config {path}: `{key}` must be {expected}, found {found}")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The key.
        key: &'static str,
        /// What the value should be.
        expected: &'static str,
        /// What was there (never the password's value).
        found: String,
    },
}

/// The three OMS metadata databases' names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MetaDatabases {
    /// The resource-manager database (`drc_rm_db`): projects, data sources, system parameters.
    pub rm: String,
    /// The cluster-manager database (`drc_cm_db`): tasks, resources.
    pub cm: String,
    /// The cluster-manager heartbeat database (`drc_cm_heartbeat_db`).
    pub cm_hb: String,
}

impl MetaDatabases {
    /// The three names in the order rm, cm, cm_hb.
    pub fn all(&self) -> [&str; 3] {
        [&self.rm, &self.cm, &self.cm_hb]
    }
}

/// A parsed OMS `config.yaml`.
#[derive(Debug, Clone, PartialEq)]
pub struct OmsConfig {
    /// Metadata database host.
    pub oms_meta_host: String,
    /// Metadata database port.
    pub oms_meta_port: u16,
    /// Metadata database user.
    pub oms_meta_user: String,
    /// Metadata database password; never printed.
    pub oms_meta_password: Secret,
    /// Resource-manager database name.
    pub drc_rm_db: String,
    /// Cluster-manager database name.
    pub drc_cm_db: String,
    /// Cluster-manager heartbeat database name.
    pub drc_cm_heartbeat_db: String,
    /// Port of OMS's web entry point, where `/oms/health` answers (default 8089).
    pub nginx_server_port: u16,
    /// Cluster-manager port (default 8088).
    pub cm_server_port: u16,
    /// Ghana port (default 8090).
    pub ghana_server_port: u16,
    /// Supervisor port (default 9000).
    pub supervisor_server_port: u16,
    /// sshd port (default 2023).
    pub sshd_server_port: u16,
    /// Every other key of the file, in file order, kept so that writing back loses nothing.
    pub extra: Mapping,
}

impl OmsConfig {
    /// A config for the given metadata database and names, with OMS's default ports and no
    /// other keys. For the test harness and the demo, which write config files.
    pub fn new(target: &DbTarget, dbs: &MetaDatabases) -> OmsConfig {
        OmsConfig {
            oms_meta_host: target.host.clone(),
            oms_meta_port: target.port,
            oms_meta_user: target.user.clone(),
            oms_meta_password: target.password.clone(),
            drc_rm_db: dbs.rm.clone(),
            drc_cm_db: dbs.cm.clone(),
            drc_cm_heartbeat_db: dbs.cm_hb.clone(),
            nginx_server_port: DEFAULT_NGINX_PORT,
            cm_server_port: DEFAULT_CM_PORT,
            ghana_server_port: DEFAULT_GHANA_PORT,
            supervisor_server_port: DEFAULT_SUPERVISOR_PORT,
            sshd_server_port: DEFAULT_SSHD_PORT,
            extra: Mapping::new(),
        }
    }

    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<OmsConfig, OmsConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| OmsConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses the text of a config file; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<OmsConfig, OmsConfigError> {
        let doc: Value = serde_yaml_ng::from_str(text).map_err(|source| OmsConfigError::Yaml {
            path: path.to_path_buf(),
            source,
        })?;
        let map = match doc {
            Value::Mapping(m) => m,
            _ => {
                return Err(OmsConfigError::NotAMapping {
                    path: path.to_path_buf(),
                });
            }
        };
        let r = Reader { path, map: &map };
        let extra = map
            .iter()
            .filter(|(k, _)| !k.as_str().is_some_and(|k| KNOWN_KEYS.contains(&k)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(OmsConfig {
            oms_meta_host: r.string("oms_meta_host")?,
            oms_meta_port: r.port("oms_meta_port", None)?,
            oms_meta_user: r.string("oms_meta_user")?,
            oms_meta_password: Secret::new(r.password("oms_meta_password")?),
            drc_rm_db: r.string("drc_rm_db")?,
            drc_cm_db: r.string("drc_cm_db")?,
            drc_cm_heartbeat_db: r.string("drc_cm_heartbeat_db")?,
            nginx_server_port: r.port("nginx_server_port", Some(DEFAULT_NGINX_PORT))?,
            cm_server_port: r.port("cm_server_port", Some(DEFAULT_CM_PORT))?,
            ghana_server_port: r.port("ghana_server_port", Some(DEFAULT_GHANA_PORT))?,
            supervisor_server_port: r
                .port("supervisor_server_port", Some(DEFAULT_SUPERVISOR_PORT))?,
            sshd_server_port: r.port("sshd_server_port", Some(DEFAULT_SSHD_PORT))?,
            extra,
        })
    }

    /// Where the metadata database is, with its credentials (TLS: the default,
    /// [`crate::dbconn::TlsMode::Preferred`]; the command line may change it).
    pub fn db_target(&self) -> DbTarget {
        DbTarget {
            host: self.oms_meta_host.clone(),
            port: self.oms_meta_port,
            user: self.oms_meta_user.clone(),
            password: self.oms_meta_password.clone(),
            tls: crate::dbconn::TlsSettings::default(),
        }
    }

    /// The IPs of the nodes of this node's region, from `cm_nodes` (a YAML list, or one
    /// comma-separated string); empty when the key is absent. OMS's docs describe
    /// `cm_nodes` as listing every IP of the region; more than one means other nodes run
    /// from the same metadata DB. `path` only names the file in errors.
    pub fn cm_nodes(&self, path: &Path) -> Result<Vec<String>, OmsConfigError> {
        const KEY: &str = "cm_nodes";
        let bad = |found: String| OmsConfigError::BadValue {
            path: path.to_path_buf(),
            key: KEY,
            expected: "a list of node IPs",
            found,
        };
        let text = |v: &Value| match v {
            Value::String(s) => Ok(s.trim().to_string()),
            Value::Number(n) => Ok(n.to_string()),
            other => Err(bad(format!("an entry that is {}", kind(other)))),
        };
        let nodes = match self.extra.get(KEY) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Sequence(items)) => items.iter().map(text).collect::<Result<_, _>>()?,
            Some(Value::String(s)) => s.split(',').map(|n| n.trim().to_string()).collect(),
            Some(other) => return Err(bad(kind(other).to_string())),
        };
        Ok(nodes.into_iter().filter(|n| !n.is_empty()).collect())
    }

    /// The three metadata databases' names.
    pub fn databases(&self) -> MetaDatabases {
        MetaDatabases {
            rm: self.drc_rm_db.clone(),
            cm: self.drc_cm_db.clone(),
            cm_hb: self.drc_cm_heartbeat_db.clone(),
        }
    }

    /// The file's text, known keys first (in OMS's usual order), then the others as read.
    ///
    /// The text contains the password, as OMS's own file does: write it only to a file
    /// readable by its owner (see [`OmsConfig::write`]), never to a log.
    pub fn to_yaml(&self) -> String {
        let mut m = Mapping::new();
        let s = |v: &str| Value::String(v.to_string());
        let n = |v: u16| Value::Number(u64::from(v).into());
        m.insert(s("oms_meta_host"), s(&self.oms_meta_host));
        m.insert(s("oms_meta_port"), n(self.oms_meta_port));
        m.insert(s("oms_meta_user"), s(&self.oms_meta_user));
        m.insert(s("oms_meta_password"), s(self.oms_meta_password.expose()));
        m.insert(s("drc_rm_db"), s(&self.drc_rm_db));
        m.insert(s("drc_cm_db"), s(&self.drc_cm_db));
        m.insert(s("drc_cm_heartbeat_db"), s(&self.drc_cm_heartbeat_db));
        m.insert(s("nginx_server_port"), n(self.nginx_server_port));
        m.insert(s("cm_server_port"), n(self.cm_server_port));
        m.insert(s("ghana_server_port"), n(self.ghana_server_port));
        m.insert(s("supervisor_server_port"), n(self.supervisor_server_port));
        m.insert(s("sshd_server_port"), n(self.sshd_server_port));
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        // A Mapping of strings, numbers and values that came out of the parser always
        // serializes.
        serde_yaml_ng::to_string(&Value::Mapping(m)).expect("a YAML mapping serializes")
    }

    /// Writes the file with mode 0600 (it holds the metadata password), replacing any
    /// previous content.
    pub fn write(&self, path: &Path) -> Result<(), OmsConfigError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let io = |source| OmsConfigError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        f.write_all(self.to_yaml().as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)
    }
}

/// Typed access to the document's keys, producing errors that name the file and key.
struct Reader<'a> {
    path: &'a Path,
    map: &'a Mapping,
}

impl Reader<'_> {
    fn get(&self, key: &'static str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn missing(&self, key: &'static str) -> OmsConfigError {
        OmsConfigError::MissingKey {
            path: self.path.to_path_buf(),
            key,
        }
    }

    fn bad(&self, key: &'static str, expected: &'static str, found: String) -> OmsConfigError {
        OmsConfigError::BadValue {
            path: self.path.to_path_buf(),
            key,
            expected,
            found,
        }
    }

    /// A non-empty string; numbers are accepted as their text (`drc_rm_db: 123` is odd but
    /// unambiguous).
    fn string(&self, key: &'static str) -> Result<String, OmsConfigError> {
        let v = self.get(key).ok_or_else(|| self.missing(key))?;
        let s = match v {
            Value::String(s) => s.trim().to_string(),
            Value::Number(n) => n.to_string(),
            other => return Err(self.bad(key, "a string", kind(other).to_string())),
        };
        if s.is_empty() {
            return Err(self.missing(key));
        }
        Ok(s)
    }

    /// Like [`Reader::string`], but an empty password is allowed and the value never appears
    /// in an error. A bare YAML number (`oms_meta_password: 123456`) is a password too.
    fn password(&self, key: &'static str) -> Result<String, OmsConfigError> {
        match self.map.get(key) {
            None => Err(self.missing(key)),
            Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            Some(Value::Bool(b)) => Ok(b.to_string()),
            Some(other) => Err(self.bad(key, "a string", kind(other).to_string())),
        }
    }

    /// A TCP port, as a number or a quoted number; `default` when absent.
    fn port(&self, key: &'static str, default: Option<u16>) -> Result<u16, OmsConfigError> {
        let Some(v) = self.get(key) else {
            return default.ok_or_else(|| self.missing(key));
        };
        let expected = "a TCP port number (1-65535)";
        let n = match v {
            Value::Number(n) => n
                .as_u64()
                .ok_or_else(|| self.bad(key, expected, n.to_string()))?,
            Value::String(s) => s
                .trim()
                .parse::<u64>()
                .map_err(|_| self.bad(key, expected, format!("{s:?}")))?,
            other => return Err(self.bad(key, expected, kind(other).to_string())),
        };
        match u16::try_from(n) {
            Ok(p) if p != 0 => Ok(p),
            _ => Err(self.bad(key, expected, n.to_string())),
        }
    }
}

/// A YAML value's kind, for error messages that must not echo the value.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cm_nodes_as_a_list_or_a_comma_separated_string() {
        let path = Path::new("/c.yaml");
        let base = "oms_meta_host: h\noms_meta_port: 3306\noms_meta_user: u\noms_meta_password: p\ndrc_rm_db: rm\ndrc_cm_db: cm\ndrc_cm_heartbeat_db: hb\n";
        let nodes = |extra: &str| {
            OmsConfig::parse(&format!("{base}{extra}"), path)
                .unwrap()
                .cm_nodes(path)
        };
        assert_eq!(nodes("").unwrap(), Vec::<String>::new());
        assert_eq!(nodes("cm_nodes:\n  - 10.0.0.1\n").unwrap(), ["10.0.0.1"]);
        assert_eq!(
            nodes("cm_nodes:\n  - 10.0.0.1\n  - 10.0.0.2\n").unwrap(),
            ["10.0.0.1", "10.0.0.2"]
        );
        assert_eq!(
            nodes("cm_nodes: \"10.0.0.1, 10.0.0.2,\"\n").unwrap(),
            ["10.0.0.1", "10.0.0.2"]
        );
        let err = nodes("cm_nodes: {a: 1}\n").unwrap_err().to_string();
        assert!(
            err.contains("`cm_nodes` must be a list of node IPs"),
            "{err}"
        );
    }

    use super::*;

    const SAMPLE: &str = r#"# OMS CE config, as shipped in the deployment guide
oms_meta_host: 10.0.0.5
oms_meta_port: 2881
oms_meta_user: root@oms#cluster
oms_meta_password: 123456
drc_rm_db: oms_rm
drc_cm_db: oms_cm
drc_cm_heartbeat_db: oms_cm_heartbeat
cm_url: http://10.0.0.6:8088
cm_location: 100
cm_region: cn-anhui
cm_is_default: true
cm_nodes:
  - 10.0.0.6
nginx_server_port: "18089"
tsdb_enabled: false
"#;

    fn p() -> &'static Path {
        Path::new("/conf/config.yaml")
    }

    #[test]
    fn parses_the_deployment_guide_shape() {
        let c = OmsConfig::parse(SAMPLE, p()).unwrap();
        assert_eq!(c.oms_meta_host, "10.0.0.5");
        assert_eq!(c.oms_meta_port, 2881);
        assert_eq!(c.oms_meta_user, "root@oms#cluster");
        assert_eq!(c.oms_meta_password.expose(), "123456");
        assert_eq!(
            c.databases(),
            MetaDatabases {
                rm: "oms_rm".into(),
                cm: "oms_cm".into(),
                cm_hb: "oms_cm_heartbeat".into()
            }
        );
        assert_eq!(c.nginx_server_port, 18089);
        assert_eq!(c.cm_server_port, DEFAULT_CM_PORT);
        assert_eq!(c.ghana_server_port, DEFAULT_GHANA_PORT);
        assert_eq!(c.supervisor_server_port, DEFAULT_SUPERVISOR_PORT);
        assert_eq!(c.sshd_server_port, DEFAULT_SSHD_PORT);
        assert_eq!(c.extra.len(), 6, "unknown keys are kept: {:?}", c.extra);
        let t = c.db_target();
        assert_eq!(t.display_url(), "mysql://root@oms#cluster@10.0.0.5:2881");
        assert!(!format!("{c:?}").contains("123456"));
    }

    #[test]
    fn written_file_reads_back_identically_with_unknown_keys() {
        let c = OmsConfig::parse(SAMPLE, p()).unwrap();
        let again = OmsConfig::parse(&c.to_yaml(), p()).unwrap();
        assert_eq!(again, c);
        assert!(c.to_yaml().contains("cm_nodes:"));
    }

    #[test]
    fn write_uses_owner_only_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        let c = OmsConfig::parse(SAMPLE, p()).unwrap();
        c.write(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(OmsConfig::load(&path).unwrap(), c);
    }

    #[test]
    fn missing_key_is_named_with_the_file() {
        let text = SAMPLE.replace("drc_cm_db: oms_cm\n", "");
        let e = OmsConfig::parse(&text, p()).unwrap_err();
        assert!(matches!(
            e,
            OmsConfigError::MissingKey {
                key: "drc_cm_db",
                ..
            }
        ));
        let msg = e.to_string();
        assert!(
            msg.contains("/conf/config.yaml") && msg.contains("drc_cm_db"),
            "{msg}"
        );
    }

    #[test]
    fn bad_port_is_named() {
        let text = SAMPLE.replace("oms_meta_port: 2881", "oms_meta_port: 70000");
        let e = OmsConfig::parse(&text, p()).unwrap_err();
        assert!(
            matches!(
                e,
                OmsConfigError::BadValue {
                    key: "oms_meta_port",
                    ..
                }
            ),
            "{e}"
        );
        let text = SAMPLE.replace("oms_meta_port: 2881", "oms_meta_port: [1]");
        let e = OmsConfig::parse(&text, p()).unwrap_err();
        assert!(e.to_string().contains("found a list"), "{e}");
    }

    #[test]
    fn password_of_wrong_kind_is_not_echoed() {
        let text = SAMPLE.replace(
            "oms_meta_password: 123456",
            "oms_meta_password: {x: hunter2}",
        );
        let e = OmsConfig::parse(&text, p()).unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
        assert!(e.to_string().contains("oms_meta_password"));
    }

    #[test]
    fn malformed_yaml_and_non_mapping_are_errors() {
        let e = OmsConfig::parse("oms_meta_host: [unclosed", p()).unwrap_err();
        assert!(matches!(e, OmsConfigError::Yaml { .. }));
        let e = OmsConfig::parse("- a\n- b\n", p()).unwrap_err();
        assert!(matches!(e, OmsConfigError::NotAMapping { .. }));
        let e = OmsConfig::load(Path::new("/nonexistent/config.yaml")).unwrap_err();
        assert!(matches!(e, OmsConfigError::Io { .. }));
    }
}
