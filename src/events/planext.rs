//! Facts `init` records in the plan that the first stored plan (`run.planned` v1) has no
//! field for. A plan with any of them is stored as `run.planned` v2 (the v1 fields, then a
//! list of [`PlanExt`]); a plan without any is stored as v1, byte for byte as before, so
//! ledgers written by earlier builds and by this one for the same input stay identical.
//!
//! Each kind appears at most once in a plan (checked when the plan is made and when it is
//! decoded), so the accessors on [`Plan`](super::Plan) can return the one value.

use std::collections::BTreeMap;

use serde::Serialize;

use super::env::EnvVar;

/// One fact of the plan beyond the v1 fields. Variant order is stored (see
/// `v1::PlanExtV1`): append only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum PlanExt {
    /// How OMS's health endpoint is reached and trusted (issue 12, item 2).
    Health(HealthTrust),
    /// The metadata server's flavour and version (issue 12, item 7).
    MetaServer(MetaServer),
    /// Settings of the old container the new one inherits (issue 12, items 3 and 4).
    Container(Box<ContainerSettings>),
    /// issue 13: `ha.config` as `init` read it.
    HaAtInit(HaAtInit),
    /// issue 14: where the witness is and what the run does when it cannot be reached.
    Witness(WitnessPlan),
    /// issue 15: the nodes and regions beyond node 0.
    Deployment(Box<super::Deployment>),
    /// issue 16: the downtime estimate for this node, from what `init` measured and named
    /// assumptions (`crate::estimate`).
    Estimate(Box<crate::estimate::Estimate>),
}

impl PlanExt {
    /// The kind's name, as stored in JSON views and named in errors.
    pub fn kind(&self) -> &'static str {
        match self {
            PlanExt::Health(_) => "health",
            PlanExt::MetaServer(_) => "meta_server",
            PlanExt::Container(_) => "container",
            PlanExt::HaAtInit(_) => "ha_at_init",
            PlanExt::Witness(_) => "witness",
            PlanExt::Deployment(_) => "deployment",
            PlanExt::Estimate(_) => "estimate",
        }
    }
}

/// `ha.config` as `init` read it (issue 13). `disable-ha` reads it again when it runs, and
/// that reading is HA's value "before the run"; this one stands in only when that reading
/// was lost: an attempt was in doubt (the process died between the write and the outcome)
/// and none recorded its reading (`replay::State::ha_reading_lost`, `State::ha_before`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct HaAtInit {
    /// The stored JSON, as read.
    pub json: String,
}

/// The witness as `init` recorded it (issue 14): every later command that records pushes
/// to this target, under this policy (`docs/witness.md`, "Policies"). The password is never
/// recorded; it comes from `OMS_WITNESS_PASSWORD` or `--witness-password-file` each time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WitnessPlan {
    /// `mysql://USER@HOST:PORT/DB`, as `crate::witness::WitnessTarget`'s `Display` writes it.
    pub target: String,
    /// What the run does when the witness cannot be reached.
    #[serde(serialize_with = "policy_str")]
    pub policy: WitnessPolicy,
}

/// What the run does when the witness cannot be reached. Recorded in the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WitnessPolicy {
    /// No side effect happens until its intent is on the witness; when the witness is
    /// unreachable the run stops before the next action.
    Required,
    /// The run goes on; `ledger push` catches the witness up later.
    BestEffort,
}

impl WitnessPolicy {
    /// The spelling used on the command line and in output.
    pub fn as_str(self) -> &'static str {
        match self {
            WitnessPolicy::Required => "required",
            WitnessPolicy::BestEffort => "best-effort",
        }
    }
}

fn policy_str<S: serde::Serializer>(p: &WitnessPolicy, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.as_str())
}

/// The scheme OMS's console (nginx) serves the health endpoint on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthScheme {
    /// Plain HTTP.
    Http,
    /// HTTPS (a certificate is mounted for nginx).
    Https,
}

/// How the health endpoint is reached and trusted (issue 12, item 2). `init` records it
/// after its probe of the old node passed; `run`, `rollback` and `ledger verify --live`
/// build their health client from it (`cli::healthtrust::client_for`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthTrust {
    /// Scheme of [`Plan::health_url`](super::Plan::health_url).
    pub scheme: HealthScheme,
    /// True when the operator gave the URL (`--health-url`) rather than it being derived.
    pub url_from_operator: bool,
    /// The old container's bind (`SOURCE:TARGET[:OPTIONS]`) that puts a certificate at
    /// `/etc/pki/nginx/oms_server.crt`, when one does: the evidence for HTTPS.
    pub detected_from: Option<String>,
    /// An operator-given CA file (absolute path), when HTTPS is checked against it.
    pub ca_file: Option<String>,
    /// BLAKE3 (hex) of that CA file's bytes as read at planning; every later use reads the
    /// file again and refuses other bytes.
    pub ca_blake3_hex: Option<String>,
}

/// The kind of server the metadata database runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerFlavour {
    /// MariaDB.
    MariaDb,
    /// MySQL.
    MySql,
    /// OceanBase (MySQL mode).
    OceanBase,
    /// Something else that speaks the MySQL protocol.
    Other,
}

/// The metadata server as it described itself at planning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetaServer {
    /// Flavour.
    pub flavour: ServerFlavour,
    /// Version string as the server reports it.
    pub version: String,
}

/// A Docker restart policy as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RestartPolicy {
    /// `no`, `always`, `unless-stopped` or `on-failure` (Docker's empty name is recorded
    /// as `no`).
    pub name: String,
    /// `on-failure`'s maximum retry count (0 otherwise).
    pub max_retries: i64,
}

impl RestartPolicy {
    /// `--restart no`.
    pub fn no() -> Self {
        RestartPolicy {
            name: "no".into(),
            max_retries: 0,
        }
    }

    /// True for `no` (however spelled).
    pub fn is_no(&self) -> bool {
        self.name.is_empty() || self.name == "no"
    }
}

impl std::fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.is_no(), self.name.as_str()) {
            (true, _) => f.write_str("no"),
            (false, "on-failure") if self.max_retries > 0 => {
                write!(f, "on-failure:{}", self.max_retries)
            }
            (false, name) => f.write_str(name),
        }
    }
}

/// One `--ulimit NAME=SOFT:HARD`: as the old container had it (recorded in the plan), as the
/// create step sets it, and as Docker reports it (`adapters::docker` uses this type too).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
pub struct Ulimit {
    /// Resource name, e.g. `nofile`.
    pub name: String,
    /// Soft limit.
    pub soft: i64,
    /// Hard limit.
    pub hard: i64,
}

/// Settings of the old container, recorded at `init`, that the new one inherits: what a
/// deployment chose and the runbook's `docker run` does not restate (docs/inheritance.md
/// says why each field is, or is not, carried over). Values that look secret are withheld
/// ([`crate::redact`]); the executor takes them from the old container itself, whose
/// configuration Docker never changes after creation, once it checked that everything it
/// can compare is as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerSettings {
    /// `--restart` of the old container: the new one gets it; the old one is set to `no`
    /// once stopped (step `old-restart-off`) and given it back on rollback.
    pub restart: RestartPolicy,
    /// `--net` (`host` on every node deployed by the book).
    pub network_mode: String,
    /// The environment the operator set (`Config.Env` minus what the old image gave
    /// unchanged), recorded form. `OMS_HOST_IP` and `IS_UPGRADE` are the runbook's.
    pub env: Vec<EnvVar>,
    /// `--ulimit`; the runbook's `nproc=65535:65535` replaces an `nproc` of the old one.
    pub ulimits: Vec<Ulimit>,
    /// `--log-driver` (empty: the engine's default).
    pub log_driver: String,
    /// `--log-opt`, recorded form (a value under a secret-looking key is withheld).
    pub log_opts: Vec<EnvVar>,
    /// `--add-host`.
    pub extra_hosts: Vec<String>,
    /// `--device HOST:CONTAINER:PERMS`.
    pub devices: Vec<String>,
    /// `--cap-add`.
    pub cap_add: Vec<String>,
    /// `--cap-drop`.
    pub cap_drop: Vec<String>,
    /// `--dns`.
    pub dns: Vec<String>,
    /// `--dns-search`.
    pub dns_search: Vec<String>,
    /// `--dns-option`.
    pub dns_options: Vec<String>,
    /// `--shm-size` in bytes.
    pub shm_size: Option<i64>,
    /// `--tmpfs PATH` with its options.
    pub tmpfs: BTreeMap<String, String>,
    /// `--security-opt`.
    pub security_opt: Vec<String>,
}
