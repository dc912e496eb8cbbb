//! The I/O half of `ledger verify --live` and `--artifacts`: gathers what reality says
//! (the container under the plan's name, `ha.config`, the schema version in rm, the dump
//! files) through the adapters, for the pure comparison in [`crate::drift`].
//!
//! Nothing here changes anything: the container is inspected, the database is read, the
//! dump files are hashed.

use std::path::Path;

use super::{CliError, ExitKind, metadb};
use crate::adapters::{BollardDocker, Docker, DockerError, MetaDb, MetaDbError, MysqlMetaDb};
use crate::drift::{Expectations, Observed, SchemaObservation};
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

/// Observes the world the end state `exp` is about: Docker and the metadata database
/// (password from `password_file`, `OMS_META_PASSWORD` or the config.yaml the old
/// container mounts), and the dump files. The metadata DB is reached with the TLS settings
/// `init` recorded, as `run` and `rollback` do: a verified connection is not traded for
/// `preferred` (which accepts any certificate) when the record is being checked.
pub fn observe(
    exp: &Expectations,
    state: &State,
    password_file: Option<&Path>,
) -> Result<Observed, CliError> {
    let db = metadb::db_target_for_run(state, password_file)?;
    let rt = super::runtime()?;
    let (container, old_container, ha_json, schema) = rt.block_on(async {
        let docker = BollardDocker::connect().await.map_err(docker_error)?;
        let container = docker
            .inspect(&exp.container.name)
            .await
            .map_err(docker_error)?;
        let old_container = match &exp.old_restart {
            Some(o) => docker.inspect(&o.id).await.map_err(docker_error)?,
            None => None,
        };
        let metadb = MysqlMetaDb::new(&db);
        let ha = metadb
            .read_ha_config(&exp.rm_db)
            .await
            .map_err(metadb_error)?;
        let schema = schema_version(&metadb, &exp.rm_db)
            .await
            .map_err(metadb_error)?;
        Ok::<_, CliError>((container, old_container, ha, schema))
    })?;
    Ok(Observed {
        container,
        old_container,
        ha_json,
        schema,
        dumps: check_dumps(&exp.dumps),
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
