//! Facts `init` records in the plan that the first stored plan (`run.planned` v1) has no
//! field for. A plan with any of them is stored as `run.planned` v2 (the v1 fields, then a
//! list of [`PlanExt`]); a plan without any is stored as v1, byte for byte as before, so
//! ledgers written by earlier builds and by this one for the same input stay identical.
//!
//! Each kind appears at most once in a plan (checked when the plan is made and when it is
//! decoded), so the accessors on [`Plan`](super::Plan) can return the one value.

use serde::Serialize;

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
    Container(ContainerSettings),
}

impl PlanExt {
    /// The kind's name, as stored in JSON views and named in errors.
    pub fn kind(&self) -> &'static str {
        match self {
            PlanExt::Health(_) => "health",
            PlanExt::MetaServer(_) => "meta_server",
            PlanExt::Container(_) => "container",
        }
    }
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

/// Settings of the old container that the new one inherits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerSettings {
    /// Docker restart policy name (`no`, `always`, `unless-stopped`, `on-failure`).
    pub restart_policy: String,
    /// Maximum retry count of `on-failure`.
    pub restart_max_retries: i64,
}
