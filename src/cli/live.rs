//! The I/O half of `ledger verify --live` and `--artifacts`: gathers what reality says
//! (on every node's engine the container under the plan's name, `ha.config`, the schema
//! version in rm, the dump files) through the adapters, for the pure comparison in
//! [`crate::drift`].
//!
//! Nothing here changes anything: the container is inspected, the database is read, the
//! dump files are hashed.

use std::path::Path;

use super::{CliError, ExitKind, metadb};
use crate::adapters::endpoint::{DockerEndpoint, EndpointError, SshSettings, TlsFiles};
use crate::adapters::{BollardDocker, Docker, DockerError, MetaDb, MetaDbError, MysqlMetaDb};
use crate::drift::{Expectations, NodeExpectations, NodeObserved, Observed, SchemaObservation};
use crate::events::DumpArtifact;
use crate::replay::State;
use crate::report::{DumpFileCheck, check_dump_file};

/// The table where the OMS emulator keeps its schema version (one row, `id = 1`). Real
/// OMS's own schema-version table is not documented, so without it nothing is compared.
pub const SCHEMA_VERSION_TABLE: &str = "oms_schema_version";

/// Re-hashes every recorded dump file.
pub fn check_dumps(dumps: &[DumpArtifact]) -> Vec<DumpFileCheck> {
    dumps.iter().map(check_dump_file).collect()
}

/// How nodes on remote engines are reached (issue 15): the files the plan's endpoints do
/// not carry, as `run` and `rollback` take them ([`super::remote::remote_settings`]). Paths
/// only; no key is read into a message.
#[derive(Debug, Clone, Default)]
pub struct NodeAccess {
    /// `ssh://` nodes: known_hosts, login key, ssh program.
    pub ssh: SshSettings,
    /// `tcp://` nodes: the CA, client certificate and key (`DOCKER_CERT_PATH`).
    pub tls: Option<TlsFiles>,
}

impl NodeAccess {
    /// The TLS files for a `tcp://` endpoint (none for the other forms, which refuse them).
    fn tls_for(&self, endpoint: &str) -> Option<TlsFiles> {
        self.tls.clone().filter(|_| endpoint.starts_with("tcp://"))
    }
}

/// Observes the world the end state `exp` is about: every node's Docker engine (reached
/// at the endpoint the plan records for it), the metadata database (password from
/// `password_file`, `OMS_META_PASSWORD` or the config.yaml the old container mounts), and
/// the dump files. The metadata DB is reached with the TLS settings `init` recorded, as
/// `run` and `rollback` do: a verified connection is not traded for `preferred` (which
/// accepts any certificate) when the record is being checked.
///
/// A single node's engine that cannot be reached fails the command (there is nothing to
/// compare); in a deployment, a node that cannot be reached is observed as such, named, and
/// the other nodes are still compared.
pub fn observe(
    exp: &Expectations,
    state: &State,
    password_file: Option<&Path>,
    access: &NodeAccess,
) -> Result<Observed, CliError> {
    let db = metadb::db_target_for_run(state, password_file)?;
    let rt = super::runtime()?;
    let deployment = exp.nodes.iter().any(|n| n.name.is_some());
    let (nodes, ha_json, schema) = rt.block_on(async {
        // The nodes are looked at side by side: N engines behind N ssh tunnels take about
        // as long as one.
        let seen =
            futures_util::future::join_all(exp.nodes.iter().map(|n| observe_node(n, access))).await;
        let mut nodes = Vec::with_capacity(seen.len());
        for (node, result) in exp.nodes.iter().zip(seen) {
            match result {
                Ok(found) => nodes.push(found),
                Err(NodeError::Docker(e)) if !deployment => return Err(docker_error(e)),
                Err(e) => nodes.push(NodeObserved::Unreachable {
                    error: e.describe(&node.endpoint),
                }),
            }
        }
        let metadb = MysqlMetaDb::new(&db);
        let ha = metadb
            .read_ha_config(&exp.rm_db)
            .await
            .map_err(metadb_error)?;
        let schema = schema_version(&metadb, &exp.rm_db)
            .await
            .map_err(metadb_error)?;
        Ok::<_, CliError>((nodes, ha, schema))
    })?;
    Ok(Observed {
        nodes,
        ha_json,
        schema,
        dumps: check_dumps(&exp.dumps),
    })
}

/// Why a node's engine was not observed.
enum NodeError {
    /// The recorded endpoint does not parse (with the files given).
    Endpoint(EndpointError),
    /// The engine could not be reached or answered with an error.
    Docker(DockerError),
}

impl NodeError {
    fn describe(&self, endpoint: &str) -> String {
        match self {
            NodeError::Endpoint(e) => match e {
                EndpointError::TcpNeedsTls { .. } => format!(
                    "{e} (set DOCKER_CERT_PATH to the folder holding ca.pem, cert.pem and \
                     key.pem)"
                ),
                other => other.to_string(),
            },
            NodeError::Docker(e) => format!("{e} (engine {endpoint})"),
        }
    }
}

/// One node: its engine, the container under the expected name, and the renamed old
/// container when its restart policy is to be compared.
async fn observe_node(
    node: &NodeExpectations,
    access: &NodeAccess,
) -> Result<NodeObserved, NodeError> {
    let endpoint = DockerEndpoint::parse(&node.endpoint, access.tls_for(&node.endpoint))
        .map_err(NodeError::Endpoint)?;
    let docker = BollardDocker::connect_to_with(&endpoint, &access.ssh)
        .await
        .map_err(NodeError::Docker)?;
    let container = docker
        .inspect(&node.container.name)
        .await
        .map_err(NodeError::Docker)?;
    let old_container = match &node.old_restart {
        Some(o) => docker.inspect(&o.id).await.map_err(NodeError::Docker)?,
        None => None,
    };
    Ok(NodeObserved::Reached {
        container: container.map(Box::new),
        old_container: old_container.map(Box::new),
    })
}

/// The emulator-visible schema version: [`SCHEMA_VERSION_TABLE`]`.version` where `id = 1`,
/// when the table exists.
async fn schema_version(
    metadb: &impl MetaDb,
    rm_db: &str,
) -> Result<SchemaObservation, MetaDbError> {
    let exists = metadb
        .query_scalar(
            rm_db,
            &format!(
                "SELECT COUNT(*) FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{SCHEMA_VERSION_TABLE}'"
            ),
        )
        .await?;
    if exists.as_deref() != Some("1") {
        return Ok(SchemaObservation::NoTable);
    }
    let v = metadb
        .query_scalar(
            rm_db,
            &format!("SELECT version FROM {SCHEMA_VERSION_TABLE} WHERE id = 1"),
        )
        .await?;
    Ok(v.map_or(SchemaObservation::NoRow, SchemaObservation::Version))
}

fn docker_error(e: DockerError) -> CliError {
    CliError::new(
        ExitKind::Service,
        format!("cannot compare with the live container: {e}"),
    )
    .hint("`ledger verify --live` needs the Docker engine; without it, `ledger verify --artifacts` still checks the dumps")
}

fn metadb_error(e: MetaDbError) -> CliError {
    CliError::new(
        ExitKind::Service,
        format!("cannot compare with the metadata database: {e}"),
    )
    .hint(format!(
        "`ledger verify --live` reads ha.config and the schema version; the password comes \
         from --password-file, {} or the config.yaml the old container mounts",
        metadb::PASSWORD_ENV
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::{ContainerRole, ExpectedContainer};

    fn node(endpoint: &str) -> NodeExpectations {
        NodeExpectations {
            node: 1,
            name: Some("node1 (oms-b)".into()),
            endpoint: endpoint.into(),
            container: ExpectedContainer {
                role: ContainerRole::New,
                name: "oms".into(),
                id: "new".into(),
                image: "oms:3.3.1".into(),
                image_id: None,
                binds: vec![],
                env: vec![],
                settings: None,
            },
            old_restart: None,
        }
    }

    /// A node whose engine does not answer is an error naming its endpoint (the caller
    /// then reports it unreachable, by name), not an empty observation.
    #[tokio::test]
    async fn an_engine_that_does_not_answer_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = format!("unix://{}/docker.sock", dir.path().display());
        let err = match observe_node(&node(&endpoint), &NodeAccess::default()).await {
            Err(e) => e.describe(&endpoint),
            Ok(_) => panic!("a socket nobody listens on was reached"),
        };
        assert!(err.contains(&endpoint), "{err}");
    }

    /// A `tcp://` node without the TLS files says which flag gives them.
    #[tokio::test]
    async fn a_tcp_node_without_tls_files_says_how_to_give_them() {
        let endpoint = "tcp://127.0.0.1:1";
        let err = match observe_node(&node(endpoint), &NodeAccess::default()).await {
            Err(e) => e.describe(endpoint),
            Ok(_) => panic!("plain TCP was accepted"),
        };
        assert!(err.contains("DOCKER_CERT_PATH"), "{err}");
        let access = NodeAccess {
            tls: Some(TlsFiles {
                ca: "/certs/ca.pem".into(),
                cert: "/certs/cert.pem".into(),
                key: "/certs/key.pem".into(),
            }),
            ..NodeAccess::default()
        };
        assert!(access.tls_for(endpoint).is_some());
        assert!(access.tls_for("ssh://root@h").is_none());
    }
}
