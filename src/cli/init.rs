//! `oms-upgrade init`: discover the old OMS node, run the preflight checks, record the plan.
//!
//! Everything the upgrade will need is discovered here, from `docker inspect` and the
//! config.yaml the old container mounts, and frozen into the `run.planned` record. A failed
//! preflight records only the failure (`preflight.failed`) and changes nothing else.

use std::path::PathBuf;
use std::process::ExitCode;

use super::metatls;
use super::shell::{self, config_bind, load_config};
use super::{CliError, CmdResult, Ctx, ExitKind};
use crate::adapters::fs::{existing_ancestor, free_space};
use crate::adapters::{BollardDocker, Docker, MetaDb, MysqlMetaDb, TlsState};
use crate::events::{
    Attestation, ContainerSnapshot, DbNames, Event, HaAfter, HaMode, MetaDbLocation, MetaServer,
    Plan, PlanExt, PlanInput, PreflightCheck, record_env,
};
use crate::refetch::{RefetchMode, RefetchPolicy, StoreRetention};
use crate::replay::Phase;
use crate::versions::{ImageVersion, VERSION_LABEL, Version, procedure_for};

/// HA toggling mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HaModeArg {
    /// Write `ha.config` in `oms_normal_config` directly, then read it back (default).
    Sql,
    /// Print the console instructions, wait until the stored value changes, record an attestation.
    Manual,
}

/// Arguments of `init`.
///
/// Discovers the running OMS container and its metadata database, checks that the upgrade
/// can run (supported version path, target image present, binds on disk, database reachable
/// with its three databases, `ha.config` readable, enough free disk for the dumps), and
/// records the plan in a new ledger. Nothing is changed in Docker or the databases.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Name of the running OMS container to upgrade.
    #[arg(long, value_name = "NAME")]
    pub container: String,
    /// The new OMS image (must already be loaded: `docker load -i ...`).
    #[arg(long, value_name = "IMAGE")]
    pub image: String,
    /// Host path of OMS's config.yaml (default: the file the container mounts at
    /// /home/admin/conf/config.yaml).
    #[arg(long, value_name = "FILE")]
    pub oms_config: Option<PathBuf>,
    /// Folder for the dumps (a subfolder per run is created, mode 700). Default:
    /// /var/lib/oms-upgrade/backups for root, else under $XDG_STATE_HOME (or
    /// ~/.local/state)/oms-upgrade.
    #[arg(long, value_name = "DIR", default_value_os_t = super::dirs::here().backups)]
    pub backup_dir: PathBuf,
    /// How HA is switched off and on.
    #[arg(long, value_enum, default_value = "sql")]
    pub ha_mode: HaModeArg,
    /// Host IP for `OMS_HOST_IP` (default: the old container's OMS_HOST_IP).
    #[arg(long, value_name = "IP")]
    pub host_ip: Option<String>,
    /// Start the new container without `--privileged` (only where the engine refuses it).
    #[arg(long)]
    pub no_privileged: bool,
    /// Version running now (default: read from the old image's tag, e.g. feature_3.3.0_ce).
    #[arg(long, value_name = "X.Y.Z")]
    pub from_version: Option<String>,
    /// Version to upgrade to (default: read from --image's tag).
    #[arg(long, value_name = "X.Y.Z")]
    pub to_version: Option<String>,
    /// New name of the old container (default: <name>-pre-<target version>).
    #[arg(long, value_name = "NAME")]
    pub rename_old_to: Option<String>,
    /// Set `perceiveStoreClientCheckpoint=true` when HA is re-enabled, instead of a refetch interval.
    #[arg(long)]
    pub perceive_checkpoint: bool,
    /// Refetch margin: percent of the downtime added on top of it.
    #[arg(long, value_name = "PERCENT", default_value_t = 50)]
    pub refetch_margin_percent: u32,
    /// Refetch margin: at least this many minutes.
    #[arg(long, value_name = "MINUTES", default_value_t = 30)]
    pub refetch_margin_min: u32,
    /// The Stores serve migration projects (120 h retention) rather than sync projects (24 h).
    #[arg(long)]
    pub migration_retention: bool,
    /// Leave `ha.config` `enable` as it was before the upgrade instead of switching HA on.
    #[arg(long)]
    pub keep_ha_as_before: bool,
    /// Read the metadata DB password from this file (default: OMS_META_PASSWORD, then config.yaml).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// TLS to the metadata database.
    #[command(flatten)]
    pub tls: super::metatls::MetaTlsArgs,
    /// `docker stop` timeout in seconds.
    #[arg(long, value_name = "SECS")]
    pub stop_timeout: Option<u32>,
    /// How long `docker_init.sh` may take, in seconds.
    #[arg(long, value_name = "SECS")]
    pub init_timeout: Option<u32>,
    /// How long to wait for OMS to report healthy, in seconds.
    #[arg(long, value_name = "SECS")]
    pub health_timeout: Option<u32>,
    /// How OMS's health endpoint is reached and trusted (HTTPS consoles).
    #[command(flatten)]
    pub health: super::healthtrust::HealthArgs,
}

/// Runs `init`.
pub fn run(args: InitArgs, ctx: &Ctx) -> CmdResult {
    let rt = super::runtime()?;
    let mut journal = shell::open_journal(&ctx.ledger, true)?;
    let state = journal.state();
    if let Some(plan) = state.plan() {
        return Err(CliError::new(
            ExitKind::Refused,
            format!(
                "this ledger already holds run {} ({} -> {}, {})",
                plan.run_id,
                plan.source_version,
                plan.target_version,
                state.phase()
            ),
        )
        .hint(match state.phase() {
            Phase::Completed | Phase::RolledBack => "one ledger records one upgrade: pass a new --ledger for a new upgrade",
            _ => "continue it with `oms-upgrade run` (or `oms-upgrade rollback`); `oms-upgrade status` shows where it stands",
        }));
    }
    // Earlier failed preflights on this ledger keep their run id.
    let run_id = state.run_id().unwrap_or_else(uuid::Uuid::new_v4);
    let mut checks = Vec::new();
    let planned = rt.block_on(preflight(&args, run_id, &mut checks));
    let now = chrono::Utc::now();
    match planned {
        Ok((plan, tls)) if checks.iter().all(|c| c.ok) => {
            let summary = plan_summary(&plan);
            journal
                .record(run_id, now, Event::planned(plan))
                .map_err(CliError::from)?;
            // Whether the connection was encrypted: the plan's stored form has no field for
            // it, so it follows the plan as an attestation (see `metatls`).
            journal
                .record(
                    run_id,
                    now,
                    Event::Attestation(metatls::attestation(&tls, now)),
                )
                .map_err(CliError::from)?;
            // A version the operator stated is theirs, not the image's: the plan's stored
            // form has one version field each, so the statement follows it as an
            // attestation by the operator (the record also carries the OS user).
            let (operator, _) = shell::identity();
            for c in checks.iter().filter(|c| c.name == OPERATOR_VERSION_CHECK) {
                journal
                    .record(
                        run_id,
                        now,
                        Event::Attestation(Attestation {
                            by: operator.clone(),
                            statement: c.detail.clone(),
                            step: None,
                            observed_at: None,
                        }),
                    )
                    .map_err(CliError::from)?;
            }
            if ctx.json {
                println!(
                    "{}",
                    serde_json::json!({"ok": true, "ledger": ctx.ledger, "plan": summary, "checks": checks_json(&checks)})
                );
            } else {
                for c in &checks {
                    eprintln!("  ok  {}: {}", c.name, c.detail);
                }
                println!(
                    "Planned run {} in {}.",
                    summary["run_id"].as_str().unwrap_or(""),
                    ctx.ledger.display()
                );
                println!("Next: `oms-upgrade plan` to review the steps, then `oms-upgrade run`.");
            }
            Ok(ExitCode::SUCCESS)
        }
        other => {
            let fatal = other.err();
            if let Some(e) = &fatal {
                checks.push(PreflightCheck {
                    name: e.check.into(),
                    ok: false,
                    detail: e.err.message.clone(),
                });
            }
            journal
                .record(
                    run_id,
                    now,
                    Event::PreflightFailed {
                        checks: checks.clone(),
                    },
                )
                .map_err(CliError::from)?;
            let failed: Vec<_> = checks.iter().filter(|c| !c.ok).collect();
            let first = failed
                .first()
                .map(|c| format!("{}: {}", c.name, c.detail))
                .unwrap_or_default();
            let mut err = CliError::new(
                fatal
                    .as_ref()
                    .map(|f| f.err.kind)
                    .unwrap_or(ExitKind::Refused),
                format!(
                    "preflight failed ({} check(s)); nothing was changed. {first}",
                    failed.len()
                ),
            );
            err.hint = fatal.and_then(|f| f.err.hint).or_else(|| {
                Some("fix what the failed checks name, then run `oms-upgrade init` again".into())
            });
            if ctx.json {
                // One object, as the CLI edge prints for any failure, plus the checks.
                println!(
                    "{}",
                    serde_json::json!({
                        "ok": false,
                        "ledger": ctx.ledger,
                        "error": {"kind": format!("{:?}", err.kind), "message": err.message, "hint": err.hint},
                        "checks": checks_json(&checks),
                        "exit_code": err.kind.code(),
                    })
                );
                eprintln!("error: {}", err.message);
                if let Some(h) = &err.hint {
                    eprintln!("hint: {h}");
                }
                return Ok(ExitCode::from(err.kind.code()));
            }
            for c in &checks {
                eprintln!(
                    "  {}  {}: {}",
                    if c.ok { "ok  " } else { "FAIL" },
                    c.name,
                    c.detail
                );
            }
            Err(err)
        }
    }
}

/// A check that stopped the preflight early (later checks need what it would have found).
struct Fatal {
    check: &'static str,
    err: CliError,
}

fn fatal(check: &'static str, err: CliError) -> Fatal {
    Fatal { check, err }
}

fn ok(checks: &mut Vec<PreflightCheck>, name: &str, detail: impl Into<String>) {
    checks.push(PreflightCheck {
        name: name.into(),
        ok: true,
        detail: detail.into(),
    });
}

fn failed(checks: &mut Vec<PreflightCheck>, name: &str, detail: impl Into<String>) {
    checks.push(PreflightCheck {
        name: name.into(),
        ok: false,
        detail: detail.into(),
    });
}

async fn preflight(
    args: &InitArgs,
    run_id: uuid::Uuid,
    checks: &mut Vec<PreflightCheck>,
) -> Result<(Plan, TlsState), Fatal> {
    let docker = BollardDocker::connect().await.map_err(|e| {
        fatal(
            "docker",
            CliError::new(
                ExitKind::Service,
                format!("cannot reach the Docker engine: {e}"),
            ),
        )
    })?;
    ok(checks, "docker", "engine reachable");

    let old = docker
        .inspect(&args.container)
        .await
        .map_err(|e| fatal("container", CliError::new(ExitKind::Service, e.to_string())))?
        .ok_or_else(|| {
            fatal(
                "container",
                CliError::new(
                    ExitKind::Input,
                    format!("no container named `{}`", args.container),
                )
                .hint("pass the OMS container's name as `docker ps` shows it"),
            )
        })?;
    if !old.status.is_running() {
        failed(
            checks,
            "container",
            format!("`{}` is not running ({:?})", old.name, old.status),
        );
    } else {
        ok(
            checks,
            "container",
            format!(
                "`{}` ({}) is running {}",
                old.name,
                short(&old.id),
                old.image
            ),
        );
    }

    let image = docker
        .inspect_image(&args.image)
        .await
        .map_err(|e| fatal("image", CliError::new(ExitKind::Service, e.to_string())))?
        .ok_or_else(|| {
            fatal(
                "image",
                CliError::new(ExitKind::Input, format!("image `{}` is not present locally", args.image))
                    .hint("load it first (`docker load -i oms_<version>.tar.gz`); oms-upgrade never pulls"),
            )
        })?;
    ok(
        checks,
        "image",
        format!("{} present ({})", args.image, short(&image.id)),
    );

    // The old container's image labels: read once, for its version and (below) to tell
    // the labels the operator set from those the image gave.
    let old_image = docker.inspect_image(&old.image_id).await.ok().flatten();
    let old_image_labels = old_image
        .as_ref()
        .map(|i| i.labels.clone())
        .unwrap_or_default();
    // What the operator set on the old container beyond its image's own env (issue 12.4):
    // the new container inherits it, and its restart policy (issue 12.3).
    let settings = crate::inherit::record(
        &old,
        &old_image
            .as_ref()
            .map(|i| i.env.clone())
            .unwrap_or_default(),
    );
    let from = image_version(
        &args.from_version,
        &old.image,
        &old_image_labels,
        "from",
        checks,
    )?;
    let to = image_version(&args.to_version, &args.image, &image.labels, "to", checks)?;
    let procedure = procedure_for(from, to).map_err(|e| {
        fatal(
            "versions",
            CliError::new(ExitKind::Refused, e.to_string())
                .hint("upgrade along a supported path, one hop at a time"),
        )
    })?;
    ok(
        checks,
        "versions",
        format!("{from} -> {to} is supported ({})", procedure.id.name()),
    );

    for b in &old.binds {
        checks.push(bind_check(b, |p| std::fs::metadata(p).map(|_| ())));
    }

    let config_path = args
        .oms_config
        .clone()
        .or_else(|| config_bind(&old.binds))
        .ok_or_else(|| {
            fatal(
                "config",
                CliError::new(
                    ExitKind::Input,
                    format!("`{}` mounts no {}", old.name, shell::CONTAINER_CONFIG_PATH),
                )
                .hint("pass the config.yaml's host path with --oms-config"),
            )
        })?;
    let config = load_config(&config_path).map_err(|e| fatal("config", e))?;
    ok(
        checks,
        "config",
        format!("{} names the metadata DB", config_path.display()),
    );

    let nodes = config.cm_nodes(&config_path).map_err(|e| {
        fatal(
            "nodes",
            CliError::new(ExitKind::Input, e.to_string())
                .hint("fix `cm_nodes` in config.yaml: a list of the region's node IPs"),
        )
    })?;
    if nodes.len() > 1 {
        return Err(several_nodes(format!(
            "{} lists {} nodes in `cm_nodes`: {}",
            config_path.display(),
            nodes.len(),
            nodes.join(", ")
        )));
    }
    ok(
        checks,
        "nodes",
        match nodes.first() {
            Some(n) => format!("one node in `cm_nodes` ({n})"),
            None => "no `cm_nodes` in config.yaml".to_string(),
        },
    );

    let mut target = config.db_target();
    target.tls = args.tls.settings().map_err(|e| fatal("metadb-tls", e))?;
    if let Some(p) =
        shell::password_override(args.password_file.as_deref()).map_err(|e| fatal("metadb", e))?
    {
        target.password = p;
    }
    let metadb = MysqlMetaDb::new(&target);
    let server = metadb.ping().await.map_err(|e| {
        use crate::adapters::MetaDbError as E;
        // The exit kind is the one error path's (`CliError::from`); the hints name
        // what `init` reads its settings from.
        let hint = match &e {
            E::AccessDenied { .. } => "fix oms_meta_user/oms_meta_password in config.yaml, or give the right password with OMS_META_PASSWORD or --password-file",
            E::Unreachable { .. } => "check oms_meta_host/oms_meta_port in config.yaml and that the metadata DB server is running",
            E::TlsUnavailable { .. } => "enable TLS on the metadata DB server, or pass --meta-tls preferred",
            E::Tls { .. } => "pass the CA of the server's certificate with --meta-ca, or --meta-tls preferred without --meta-ca to accept it unverified",
            _ => "check oms_meta_host/port/user/password in config.yaml (or OMS_META_PASSWORD)",
        };
        fatal("metadb", CliError::from(e).hint(hint))
    })?;
    ok(
        checks,
        "metadb",
        format!("{} reachable", target.display_url()),
    );
    // Recorded in the plan: the prune (and what `plan` shows for it) depends on it.
    ok(
        checks,
        "metadb-server",
        format!(
            "{:?} ({}{})",
            server.flavour,
            server.version,
            if server.version_comment.is_empty() {
                String::new()
            } else {
                format!(", {}", server.version_comment)
            }
        ),
    );
    let tls = metadb
        .tls_state()
        .await
        .map_err(|e| fatal("metadb-tls", CliError::from(e)))?;
    ok(checks, "metadb-tls", tls.to_string());
    let dbs = config.databases();
    match metadb.servers_listed(&dbs.cm).await {
        Ok(Some(servers)) if servers.len() > 1 => {
            return Err(several_nodes(format!(
                "the metadata DB's `{}`.`host` table lists {}{} servers: {}",
                dbs.cm,
                servers.len(),
                if servers.len() >= crate::adapters::metadb::MAX_SERVERS_SHOWN {
                    " or more"
                } else {
                    ""
                },
                servers.join("; ")
            )));
        }
        Ok(Some(servers)) => ok(
            checks,
            "nodes",
            format!(
                "`{}`.`host` lists {} server(s){}",
                dbs.cm,
                servers.len(),
                servers
                    .first()
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default()
            ),
        ),
        Ok(None) => ok(checks, "nodes", format!("no `host` table in `{}`", dbs.cm)),
        Err(e) => failed(
            checks,
            "nodes",
            format!("cannot read `{}`.`host`: {e}", dbs.cm),
        ),
    }
    let names = DbNames {
        rm: dbs.rm.clone(),
        cm: dbs.cm.clone(),
        cm_hb: dbs.cm_hb.clone(),
    };
    let all = vec![names.rm.clone(), names.cm.clone(), names.cm_hb.clone()];
    for d in &all {
        match metadb.database_exists(d).await {
            Ok(true) => ok(checks, "databases", format!("`{d}` exists")),
            Ok(false) => failed(
                checks,
                "databases",
                format!("database `{d}` does not exist"),
            ),
            Err(e) => failed(checks, "databases", format!("`{d}`: {e}")),
        }
    }
    if procedure.id.has_ha_steps() {
        match metadb.read_ha_config(&names.rm).await {
            Ok(Some(json)) => match crate::haconfig::HaConfig::parse(&json) {
                Ok(_) => ok(checks, "ha.config", "readable JSON"),
                Err(e) => failed(checks, "ha.config", format!("not usable: {e}")),
            },
            Ok(None) => failed(
                checks,
                "ha.config",
                format!("no `ha.config` row in {}.oms_normal_config", names.rm),
            ),
            Err(e) => failed(checks, "ha.config", e.to_string()),
        }
    }
    let sizes = metadb
        .database_sizes(&all)
        .await
        .map(|m| m.values().sum::<u64>())
        .map_err(|e| e.to_string());
    let backup_dir = absolute(&args.backup_dir);
    let probe = existing_ancestor(&backup_dir);
    checks.push(disk_check(
        sizes,
        free_space(&probe).map_err(|e| e.to_string()),
        &probe,
    ));
    metadb.close().await;

    let host_ip = args
        .host_ip
        .clone()
        .or_else(|| {
            crate::adapters::docker::env_lookup(&old.env, "OMS_HOST_IP").map(str::to_string)
        })
        .ok_or_else(|| {
            fatal(
                "host-ip",
                CliError::new(ExitKind::Input, "the old container has no OMS_HOST_IP")
                    .hint("pass --host-ip"),
            )
        })?;
    // The health check the run will rely on, tried now on the old node: a scheme, port or
    // certificate trust that cannot work is found while nothing has changed, not after
    // docker_init.sh has migrated the schema.
    let health =
        super::healthtrust::plan(&args.health, &old.binds, &host_ip, config.nginx_server_port)
            .map_err(|e| fatal("health", e))?;
    if old.status.is_running() {
        let probed = super::healthtrust::probe(&health)
            .await
            .map_err(|e| fatal("health", e))?;
        ok(checks, "health", probed);
    } else {
        // The `container` check already failed; a probe could only say "unreachable".
        failed(
            checks,
            "health",
            format!("not asked: `{}` is not running", old.name),
        );
    }
    // The old container's labels include its image's; only those the operator set are
    // carried over, so the new container shows its own image's labels (not 3.3.0's).
    let input = PlanInput {
        run_id,
        tool_version: env!("CARGO_PKG_VERSION").into(),
        source_version: from,
        target_version: to,
        old_container: ContainerSnapshot {
            id: old.id.clone(),
            name: old.name.clone(),
            image: old.image.clone(),
            image_id: old.image_id.clone(),
            binds: old.binds.clone(),
            env: record_env(&old.env),
            labels: crate::adapters::docker::user_labels(&old.labels, &old_image_labels),
        },
        target_image: args.image.clone(),
        target_image_id: Some(image.id.clone()),
        old_renamed_to: args.rename_old_to.clone(),
        privileged: !args.no_privileged,
        health_url: health.url,
        host_ip,
        metadb: MetaDbLocation {
            display_url: target.display_url(),
            host: target.host.clone(),
            port: target.port,
            user: target.user.clone(),
        },
        databases: names,
        backup_dir: backup_dir.display().to_string(),
        ha_mode: match args.ha_mode {
            HaModeArg::Sql => HaMode::Sql,
            HaModeArg::Manual => HaMode::Manual,
        },
        ha_after: if args.keep_ha_as_before {
            HaAfter::KeepPrevious
        } else {
            HaAfter::Enable
        },
        refetch: RefetchPolicy {
            mode: if args.perceive_checkpoint {
                RefetchMode::PerceiveCheckpoint
            } else {
                RefetchMode::Interval
            },
            margin_percent: args.refetch_margin_percent,
            margin_min_minutes: args.refetch_margin_min,
            retention: if args.migration_retention {
                StoreRetention::Migration
            } else {
                StoreRetention::Sync
            },
            ..RefetchPolicy::default()
        },
        stop_timeout_secs: args.stop_timeout,
        init_timeout_secs: args.init_timeout,
        health_timeout_secs: args.health_timeout,
        ext: vec![
            PlanExt::Health(health.trust),
            PlanExt::MetaServer(MetaServer {
                flavour: server.flavour,
                version: server.version.clone(),
            }),
            PlanExt::Container(Box::new(settings)),
        ],
    };
    Plan::new(input)
        .map(|plan| (plan, tls))
        .map_err(|e| fatal("plan", CliError::new(ExitKind::Input, e.to_string())))
}

/// The disk check: room for twice the databases at `probe` (the nearest existing folder of
/// the dump folder). Twice the data: the dumps themselves (SQL text is about the size of
/// the data) plus the spool files of a parallel dump, which hold sections waiting for
/// their turn and never exceed the uncompressed SQL of the one database being dumped
/// (docs/backup.md).
fn disk_check(
    sizes: Result<u64, String>,
    free: Result<u64, String>,
    probe: &std::path::Path,
) -> PreflightCheck {
    // Sizes that cannot be read are not zero: the check cannot pass without them.
    let size = match sizes {
        Ok(size) => size,
        Err(e) => {
            return PreflightCheck {
                name: "disk".into(),
                ok: false,
                detail: format!(
                    "cannot read the metadata databases' sizes ({e}), so the room the dumps \
                     need is unknown: give the metadata DB user SELECT on information_schema, \
                     or check the server"
                ),
            };
        }
    };
    let (ok, detail) = match free {
        Ok(free) if free >= size.saturating_mul(2) => (
            true,
            format!(
                "{} free at {}, databases take {}",
                crate::units::human_bytes(free),
                probe.display(),
                crate::units::human_bytes(size)
            ),
        ),
        Ok(free) => (
            false,
            format!(
                "only {} free at {}; need twice the databases' {}",
                crate::units::human_bytes(free),
                probe.display(),
                crate::units::human_bytes(size)
            ),
        ),
        Err(e) => (
            false,
            format!("cannot measure the free space at {}: {e}", probe.display()),
        ),
    };
    PreflightCheck {
        name: "disk".into(),
        ok,
        detail,
    }
}

/// The check of one bind of the old container (`SOURCE:TARGET[:OPTIONS]`); `probe` reads
/// a host path's metadata.
fn bind_check(
    bind: &str,
    probe: impl Fn(&std::path::Path) -> std::io::Result<()>,
) -> PreflightCheck {
    let host = bind.split(':').next().unwrap_or("");
    // Docker's `Binds` name a host path by an absolute path and a named volume by a bare
    // name; only a path can be checked on this host.
    if !host.starts_with('/') {
        return PreflightCheck {
            name: "binds".into(),
            ok: false,
            detail: format!(
                "bind source is the named Docker volume `{host}`, not a host path: \
                 oms-upgrade checks host-path binds only, so it cannot vouch for this one \
                 (bind it by host path, or see `docker volume inspect {host}`)"
            ),
        };
    }
    let (ok, detail) = match probe(std::path::Path::new(host)) {
        Ok(()) => (true, format!("{host} exists")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
            false,
            format!("bind source {host} does not exist on this host"),
        ),
        Err(e) => (
            false,
            format!(
                "bind source {host} cannot be read ({e}): run as root or as a user who may \
                 read it and its parent folders"
            ),
        ),
    };
    PreflightCheck {
        name: "binds".into(),
        ok,
        detail,
    }
}

/// The refusal of a deployment of several nodes: this tool upgrades one node, and the
/// official procedure for several stops every node before anything else.
fn several_nodes(found: String) -> Fatal {
    fatal(
        "nodes",
        CliError::new(
            ExitKind::Refused,
            format!("this OMS deployment has several nodes: {found}; oms-upgrade upgrades a single-node deployment only"),
        )
        .hint("upgrade a deployment of several nodes by the official multi-node procedure (every node stopped first, then each region's prune, dumps and docker_init.sh); oms-upgrade does not do it yet"),
    )
}

/// The version an image runs: the operator's `--from-version`/`--to-version` when given
/// (recorded as their statement, beside what the image says), else what the image's tag
/// and version label agree on. Never a number from the registry host or port.
fn image_version(
    given: &Option<String>,
    reference: &str,
    labels: &std::collections::BTreeMap<String, String>,
    what: &'static str,
    checks: &mut Vec<PreflightCheck>,
) -> Result<Version, Fatal> {
    let read = ImageVersion::read(reference, labels);
    if let Some(v) = given {
        let v = v.parse::<Version>().map_err(|e| {
            fatal(
                "versions",
                CliError::new(ExitKind::Input, format!("--{what}-version: {e}")),
            )
        })?;
        ok(
            checks,
            OPERATOR_VERSION_CHECK,
            format!(
                "--{what}-version {v} stated by the operator for `{reference}` (the image says: {})",
                read.describe()
            ),
        );
        return Ok(v);
    }
    match read.agreed() {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(fatal(
            "versions",
            CliError::new(
                ExitKind::Input,
                format!("cannot read a version from `{reference}` (no version in its tag, no {VERSION_LABEL} label)"),
            )
            .hint(format!("pass --{what}-version X.Y.Z")),
        )),
        Err((tag, label)) => Err(fatal(
            "versions",
            CliError::new(
                ExitKind::Input,
                format!("`{reference}`: its tag says {tag} but its {VERSION_LABEL} label says {label}"),
            )
            .hint(format!("pass --{what}-version X.Y.Z with the version it really is")),
        )),
    }
}

/// The preflight check that names a version the operator stated; `init` records its
/// detail as the operator's attestation right after `run.planned`.
pub const OPERATOR_VERSION_CHECK: &str = "versions-stated";

fn plan_summary(plan: &Plan) -> serde_json::Value {
    serde_json::json!({
        "run_id": plan.run_id.to_string(),
        "digest": plan.digest().to_string(),
        "from": plan.source_version.to_string(),
        "to": plan.target_version.to_string(),
        "procedure": plan.procedure.name(),
        "old_container": plan.old_container.name,
        "old_renamed_to": plan.old_renamed_to,
        "target_image": plan.target_image,
        "backup_dir": plan.dump_dir(),
        "metadb": plan.metadb.display_url,
        "health_url": plan.health_url,
        "health_trust": plan.health_trust(),
    })
}

fn checks_json(checks: &[PreflightCheck]) -> serde_json::Value {
    serde_json::to_value(checks).unwrap_or_default()
}

fn short(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}

fn absolute(p: &std::path::Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error, ErrorKind};
    use std::path::Path;

    #[test]
    fn disk_check_fails_when_the_sizes_cannot_be_read() {
        let probe = Path::new("/var/lib");
        let c = disk_check(Err("SELECT denied".into()), Ok(1 << 40), probe);
        assert!(!c.ok, "{c:?}");
        assert!(c.detail.contains("SELECT denied"), "{c:?}");
        assert!(
            c.detail
                .contains("cannot read the metadata databases' sizes"),
            "{c:?}"
        );
        let c = disk_check(Ok(10), Err("statvfs failed".into()), probe);
        assert!(!c.ok && c.detail.contains("statvfs failed"), "{c:?}");
        assert!(disk_check(Ok(10), Ok(20), probe).ok);
        assert!(!disk_check(Ok(10), Ok(19), probe).ok);
    }

    #[test]
    fn binds_tell_missing_unreadable_and_named_volumes_apart() {
        let probe = |p: &Path| match p.to_str() {
            Some("/data/logs") => Ok(()),
            Some("/secret/store") => Err(Error::from(ErrorKind::PermissionDenied)),
            _ => Err(Error::from(ErrorKind::NotFound)),
        };
        let c = bind_check("/data/logs:/home/admin/logs", probe);
        assert!(c.ok, "{c:?}");
        let c = bind_check("/gone/run:/home/ds/run:rw", probe);
        assert!(!c.ok && c.detail.contains("does not exist"), "{c:?}");
        let c = bind_check("/secret/store:/home/ds/store", probe);
        assert!(!c.ok, "{c:?}");
        assert!(c.detail.contains("cannot be read"), "{c:?}");
        assert!(!c.detail.contains("does not exist"), "{c:?}");
        let c = bind_check("oms_store:/home/ds/store", probe);
        assert!(!c.ok, "{c:?}");
        assert!(
            c.detail.contains("named Docker volume `oms_store`"),
            "{c:?}"
        );
        assert!(!c.detail.contains("does not exist"), "{c:?}");
    }
}
