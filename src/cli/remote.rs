//! How this machine reaches a deployment's other nodes (issue 15): the SSH and TLS
//! settings every command takes from the environment, and the connection to each node's
//! Docker engine at the endpoint the plan records. Used by `init` (the per-node preflight),
//! `run`/`rollback` (the executor's engines) and `ledger verify --live`.

use std::path::PathBuf;

use super::{CliError, ExitKind};
use crate::adapters::{BollardDocker, DockerEndpoint, SshSettings, TlsFiles};
use crate::events::Plan;

/// How this machine reaches the nodes' Docker engines over SSH and TLS (issue 15), the same
/// for every command: `OMS_UPGRADE_SSH_KNOWN_HOSTS` (the only `known_hosts` file that pins
/// the nodes' host keys; default: the operator's usual files, never auto-accepted),
/// `OMS_UPGRADE_SSH_IDENTITY` (the private key; default: agent and default keys) and, for
/// `tcp://` nodes, `DOCKER_CERT_PATH` (a folder holding `ca.pem`, `cert.pem`, `key.pem`,
/// Docker's own convention). Paths only: no secret goes through the environment.
pub fn remote_settings() -> (SshSettings, Option<TlsFiles>) {
    let path = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let ssh = SshSettings {
        known_hosts: path("OMS_UPGRADE_SSH_KNOWN_HOSTS"),
        identity: path("OMS_UPGRADE_SSH_IDENTITY"),
        program: None,
    };
    let tls = path("DOCKER_CERT_PATH").map(|d| TlsFiles {
        ca: d.join("ca.pem"),
        cert: d.join("cert.pem"),
        key: d.join("key.pem"),
    });
    (ssh, tls)
}

/// Connects to the Docker engine of every node of `plan` beyond node 0, in order (none for
/// a single-node plan), at the endpoint the plan records for it. A node that cannot be
/// reached stops the command before anything is recorded, naming the node.
pub async fn connect_nodes(plan: &Plan) -> Result<Vec<BollardDocker>, CliError> {
    let (ssh, tls) = remote_settings();
    let mut out = Vec::new();
    for n in plan.nodes().into_iter().skip(1) {
        let meta = plan.node_meta(n);
        let named = |what: String| {
            CliError::new(
                ExitKind::Service,
                format!(
                    "{n} ({}, {}): {what}; nothing was changed",
                    meta.label, meta.endpoint
                ),
            )
        };
        let tls_here = meta
            .endpoint
            .starts_with("tcp://")
            .then(|| tls.clone())
            .flatten();
        let endpoint =
            DockerEndpoint::parse(&meta.endpoint, tls_here).map_err(|e| named(e.to_string()))?;
        let docker = BollardDocker::connect_to_with(&endpoint, &ssh)
            .await
            .map_err(|e| named(format!("cannot reach its Docker engine: {e}")))?;
        out.push(docker);
    }
    Ok(out)
}
