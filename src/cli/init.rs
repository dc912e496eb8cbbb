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
use crate::adapters::{BollardDocker, ContainerInfo, Docker, MetaDb, MysqlMetaDb, TlsState};
use crate::events::{
    Attestation, ContainerSnapshot, DbNames, Deployment, Event, HaAfter, HaAtInit, HaMode,
    MetaDbLocation, MetaServer, NodeMeta, NodePlan, Plan, PlanExt, PlanInput, PreflightCheck,
    RegionIx, WitnessPlan, record_env,
};
use crate::preflight::{
    self, BindFacts, ContainerFacts, DiskFacts, Facts, Finding, ImageFacts, OPERATOR_VERSION_CHECK,
    ServerFacts, ServersListed, StopKind,
};
use crate::refetch::{RefetchMode, RefetchPolicy, StoreRetention};
use crate::replay::Phase;
use crate::witness::{WitnessPolicy, WitnessTarget};

mod deployment;
mod earlier;

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
    /// The deployment's nodes (YAML, docs/inventory.md): per node its IP, Docker endpoint,
    /// container and config.yaml. Required when the deployment has several nodes; every
    /// node is checked before anything changes, and the plan covers them all.
    #[arg(long, value_name = "FILE")]
    pub inventory: Option<PathBuf>,
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
    /// The witness (issue 14): recorded in the plan; every record of this run is pushed to
    /// it. It must not be one of OMS's three metadata databases.
    #[command(flatten)]
    pub witness: Box<super::witness::WitnessOpts>,
    /// What `run` and `rollback` do when the witness cannot be reached (recorded in the
    /// plan): `required` (default) stops before the next action, and nothing is done until
    /// the witness holds every record; `best-effort` warns and goes on (`oms-upgrade
    /// ledger push` catches the witness up). A fork stops the run under both.
    #[arg(long, value_enum, value_name = "POLICY")]
    pub witness_policy: Option<WitnessPolicyArg>,
}

/// `--witness-policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WitnessPolicyArg {
    /// No side effect until its intent is on the witness.
    Required,
    /// Go on without the witness; `ledger push` catches up.
    BestEffort,
}

impl From<WitnessPolicyArg> for WitnessPolicy {
    fn from(p: WitnessPolicyArg) -> Self {
        match p {
            WitnessPolicyArg::Required => WitnessPolicy::Required,
            WitnessPolicyArg::BestEffort => WitnessPolicy::BestEffort,
        }
    }
}

impl InitArgs {
    /// The policy recorded with a witness (`required` unless told otherwise).
    fn policy(&self) -> WitnessPolicy {
        self.witness_policy
            .map_or(WitnessPolicy::Required, WitnessPolicy::from)
    }
}

/// Runs `init`.
pub fn run(args: InitArgs, ctx: &Ctx) -> CmdResult {
    // The witness flags are checked before anything is recorded (the URL, its password,
    // OMS's default metadata names; the plan's own names are checked with the plan).
    let witness = args.witness.open(&[])?;
    if witness.is_none() && args.witness_policy.is_some() {
        return Err(CliError::new(
            ExitKind::Input,
            "--witness-policy is given without a witness",
        )
        .hint(format!(
            "add --witness mysql://USER@HOST:PORT/DB (or set {}), or leave --witness-policy out",
            super::witness::WITNESS_ENV
        )));
    }
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
    let planned = rt.block_on(preflight(&args, &ctx.ledger, run_id, &mut checks));
    let now = chrono::Utc::now();
    match planned {
        Ok((plan, tls)) if checks.iter().all(|c| c.ok) => {
            let summary = plan_summary(&plan);
            let plan_estimate = plan.estimate().cloned();
            // The witness gets the plan and everything after it; under `required` it must
            // take what this ledger already holds first (earlier failed preflights).
            if let Some(w) = witness {
                shell::mirror_into(&mut journal, w, args.policy())?;
            }
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
                if let Some(e) = plan_estimate {
                    for line in crate::estimate::lines(&e) {
                        println!("{line}");
                    }
                }
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

/// The preflight: gathers the facts step by step, stopping where a rule refused or the
/// world cannot be asked further, and lets [`preflight::evaluate`] judge them. `checks`
/// gets every check judged, in order; the error is the check that stopped it.
async fn preflight(
    args: &InitArgs,
    ledger: &std::path::Path,
    run_id: uuid::Uuid,
    checks: &mut Vec<PreflightCheck>,
) -> Result<(Plan, TlsState), Fatal> {
    let mut facts = Facts {
        container_name: args.container.clone(),
        image_ref: args.image.clone(),
        from_version: args.from_version.clone(),
        to_version: args.to_version.clone(),
        deployment: args.inventory.is_some(),
        ..Facts::default()
    };
    let gathered = gather(args, &mut facts).await;
    for finding in preflight::evaluate(&facts) {
        match finding {
            Finding::Check(c) => checks.push(c),
            Finding::Stop(s) => return Err(stopped(s)),
        }
    }
    let g = gathered?.ok_or_else(|| {
        fatal(
            "preflight",
            CliError::new(
                ExitKind::Internal,
                "the preflight stopped gathering without a rule stopping it",
            ),
        )
    })?;
    // The other nodes of a deployment, each through its own engine, judged against what
    // node 0 settled.
    let nodes = match &args.inventory {
        Some(file) => {
            let (from, _, _) = preflight::upgrade_path(&facts).ok_or_else(|| {
                fatal(
                    "versions",
                    CliError::new(ExitKind::Internal, "the preflight passed without versions"),
                )
            })?;
            let reference = preflight::deployment::Reference {
                source_version: from,
                old_image_id: g.old.image_id.clone(),
                target_ref: args.image.clone(),
                target_image_id: g.image_id.clone(),
            };
            deployment::gather(file, &g, &reference, checks).await?
        }
        None => None,
    };
    plan(args, ledger, run_id, &facts, g, nodes)
}

/// A stopping rule's finding as the CLI's error.
fn stopped(s: preflight::Stop) -> Fatal {
    let kind = match s.kind {
        StopKind::Input => ExitKind::Input,
        StopKind::Refused => ExitKind::Refused,
    };
    let mut err = CliError::new(kind, s.message);
    err.hint = s.hint;
    fatal(s.check, err)
}

/// What the plan is built from besides the facts: the handles gathering read.
struct Gathered {
    docker: BollardDocker,
    config: crate::omsconfig::OmsConfig,
    config_path: Option<PathBuf>,
    old: ContainerInfo,
    image_id: String,
    settings: crate::events::ContainerSettings,
    target: crate::dbconn::DbTarget,
    server: crate::adapters::metadb::ServerInfo,
    tls: TlsState,
    names: DbNames,
    backup_dir: PathBuf,
    host_ip: String,
    health: super::healthtrust::Planned,
    /// issue 16: the downtime estimate, when the measurements worked.
    estimate: Option<crate::estimate::Estimate>,
}

/// Gathers the facts in the order they are judged. `Ok(None)`: a rule stops the preflight
/// (nothing more is asked of the world); `Err`: the world could not be asked.
async fn gather(args: &InitArgs, facts: &mut Facts) -> Result<Option<Gathered>, Fatal> {
    let docker = BollardDocker::connect().await.map_err(|e| {
        fatal(
            "docker",
            CliError::new(
                ExitKind::Service,
                format!("cannot reach the Docker engine: {e}"),
            ),
        )
    })?;
    facts.docker = true;

    let old = docker
        .inspect(&args.container)
        .await
        .map_err(|e| fatal("container", CliError::new(ExitKind::Service, e.to_string())))?;
    facts.container = Some(old.as_ref().map(|c| ContainerFacts {
        name: c.name.clone(),
        id: c.id.clone(),
        image: c.image.clone(),
        running: c.status.is_running(),
        status: format!("{:?}", c.status),
        binds: c.binds.clone(),
    }));
    let Some(old) = old else { return Ok(None) };

    let image = docker
        .inspect_image(&args.image)
        .await
        .map_err(|e| fatal("image", CliError::new(ExitKind::Service, e.to_string())))?;
    facts.image = Some(image.as_ref().map(|i| ImageFacts {
        id: i.id.clone(),
        labels: i.labels.clone(),
    }));
    let Some(image) = image else { return Ok(None) };

    // The old container's image labels: read once, for its version and (below) to tell
    // the labels the operator set from those the image gave.
    let old_image = docker.inspect_image(&old.image_id).await.ok().flatten();
    facts.old_image_labels = old_image
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
    let Some((_, _, procedure)) = preflight::upgrade_path(facts) else {
        return Ok(None);
    };

    facts.binds = Some(
        old.binds
            .iter()
            .map(|b| BindFacts {
                bind: b.clone(),
                probe: preflight::bind_host_path(b).map(|p| std::fs::metadata(p).map(|_| ())),
            })
            .collect(),
    );

    let config_path = args.oms_config.clone().or_else(|| config_bind(&old.binds));
    facts.config_path = Some(config_path.clone());
    let Some(config_path) = config_path else {
        return Ok(None);
    };
    let config = load_config(&config_path).map_err(|e| fatal("config", e))?;
    facts.cm_nodes = Some(config.cm_nodes(&config_path).map_err(|e| e.to_string()));
    if preflight::stops(facts).is_some() {
        return Ok(None);
    }

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
    facts.server = Some(ServerFacts {
        url: target.display_url(),
        flavour: format!("{:?}", server.flavour),
        version: server.version.clone(),
        version_comment: server.version_comment.clone(),
    });
    let tls = metadb
        .tls_state()
        .await
        .map_err(|e| fatal("metadb-tls", CliError::from(e)))?;
    facts.tls = Some(tls.to_string());
    let dbs = config.databases();
    let names = DbNames {
        rm: dbs.rm.clone(),
        cm: dbs.cm.clone(),
        cm_hb: dbs.cm_hb.clone(),
    };
    facts.databases = Some(names.clone());
    facts.servers = Some(
        metadb
            .servers_listed(&dbs.cm)
            .await
            .map(|listed| {
                listed.map(|servers| ServersListed {
                    maybe_more: servers.len() >= crate::adapters::metadb::MAX_SERVERS_SHOWN,
                    servers,
                })
            })
            .map_err(|e| e.to_string()),
    );
    if preflight::stops(facts).is_some() {
        metadb.close().await;
        return Ok(None);
    }
    let all = vec![names.rm.clone(), names.cm.clone(), names.cm_hb.clone()];
    let mut exists = Vec::new();
    for d in &all {
        exists.push((
            d.clone(),
            metadb.database_exists(d).await.map_err(|e| e.to_string()),
        ));
    }
    facts.exists = Some(exists);
    if procedure.id.has_ha_steps() {
        facts.ha_config = Some(
            metadb
                .read_ha_config(&names.rm)
                .await
                .map_err(|e| e.to_string()),
        );
    }
    let sizes = metadb
        .database_sizes(&all)
        .await
        .map(|m| m.values().sum::<u64>())
        .map_err(|e| e.to_string());
    let backup_dir = absolute(&args.backup_dir);
    let probe = existing_ancestor(&backup_dir);
    facts.disk = Some(DiskFacts {
        sizes,
        free: free_space(&probe).map_err(|e| e.to_string()),
        probe,
    });
    let estimate = measure_for_estimate(&metadb, &all).await;
    metadb.close().await;

    let host_ip = args.host_ip.clone().or_else(|| {
        crate::adapters::docker::env_lookup(&old.env, "OMS_HOST_IP").map(str::to_string)
    });
    facts.host_ip = Some(host_ip.clone());
    let Some(host_ip) = host_ip else {
        return Ok(None);
    };
    // The health check the run will rely on, tried now on the old node: a scheme, port or
    // certificate trust that cannot work is found while nothing has changed, not after
    // docker_init.sh has migrated the schema.
    let health =
        super::healthtrust::plan(&args.health, &old.binds, &host_ip, config.nginx_server_port)
            .map_err(|e| fatal("health", e))?;
    facts.health = Some(if old.status.is_running() {
        let probed = super::healthtrust::probe(&health)
            .await
            .map_err(|e| fatal("health", e))?;
        Some(probed)
    } else {
        None
    });
    Ok(Some(Gathered {
        docker,
        config,
        config_path: Some(config_path),
        old,
        image_id: image.id,
        settings,
        target,
        server,
        tls,
        names,
        backup_dir,
        host_ip,
        health,
        estimate,
    }))
}

/// The probe's budget: at most this many bytes of values, and this long (issue 16: the
/// probe must not lengthen `init` noticeably nor load the server).
const PROBE_MAX_BYTES: u64 = 16 << 20;
const PROBE_MAX_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// issue 16: the downtime estimate from the databases' sizes and a short read probe
/// (reads only). A failure of either is said and leaves the plan without an estimate or
/// without its dump part; it never stops `init`, which has checked what it needs.
async fn measure_for_estimate(
    metadb: &MysqlMetaDb,
    all: &[String],
) -> Option<crate::estimate::Estimate> {
    let databases = match metadb.measure_databases(all).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("  warning: no downtime estimate: measuring the databases failed: {e}");
            return None;
        }
    };
    // `all` is rm, cm, cm_hb: the heartbeat database is the last.
    let heartbeat_rows = match all.last() {
        Some(hb) => match metadb.heartbeat_rows(hb).await {
            Ok(n) => n,
            Err(e) => {
                eprintln!(
                    "  warning: no downtime estimate: reading the heartbeat table's size failed: {e}"
                );
                return None;
            }
        },
        None => 0,
    };
    let probe = match metadb
        .read_probe(all, PROBE_MAX_BYTES, PROBE_MAX_TIME)
        .await
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("  warning: the read probe failed, so no dump time is estimated: {e}");
            None
        }
    };
    let jobs = crate::executor::ExecOptions::default().dump.jobs;
    Some(crate::estimate::estimate(
        databases,
        (
            all.last().map(String::as_str).unwrap_or_default(),
            heartbeat_rows,
        ),
        probe,
        u32::try_from(jobs).unwrap_or(u32::MAX),
    ))
}

/// The plan, from what the preflight found and judged.
fn plan(
    args: &InitArgs,
    ledger: &std::path::Path,
    run_id: uuid::Uuid,
    facts: &Facts,
    g: Gathered,
    nodes: Option<deployment::DeploymentOut>,
) -> Result<(Plan, TlsState), Fatal> {
    let (from, to, _) = preflight::upgrade_path(facts).ok_or_else(|| {
        fatal(
            "versions",
            CliError::new(ExitKind::Internal, "the preflight passed without versions"),
        )
    })?;
    // The old container's labels include its image's; only those the operator set are
    // carried over, so the new container shows its own image's labels (not 3.3.0's).
    let mut input = PlanInput {
        run_id,
        // The exact build, so the report says which one acted.
        tool_version: crate::build_info::LONG_VERSION.into(),
        source_version: from,
        target_version: to,
        old_container: snapshot(&g.old, &facts.old_image_labels),
        target_image: args.image.clone(),
        target_image_id: Some(g.image_id),
        old_renamed_to: args.rename_old_to.clone(),
        privileged: !args.no_privileged,
        health_url: g.health.url,
        host_ip: g.host_ip,
        metadb: MetaDbLocation {
            display_url: g.target.display_url(),
            host: g.target.host.clone(),
            port: g.target.port,
            user: g.target.user.clone(),
        },
        databases: g.names,
        backup_dir: g.backup_dir.display().to_string(),
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
            PlanExt::Health(g.health.trust),
            PlanExt::MetaServer(MetaServer {
                flavour: g.server.flavour,
                version: g.server.version.clone(),
            }),
            PlanExt::Container(Box::new(g.settings)),
        ],
    };
    if let Some(url) = &args.witness.witness {
        let refused = |e: crate::witness::TargetError| fatal("witness", CliError::from(e));
        let target = WitnessTarget::parse(url).map_err(refused)?;
        let d = &input.databases;
        target
            .refuse_metadata(&[d.rm.as_str(), d.cm.as_str(), d.cm_hb.as_str()])
            .map_err(refused)?;
        input.ext.push(PlanExt::Witness(WitnessPlan {
            target: target.to_string(),
            policy: args.policy(),
        }));
    }
    if let Some(d) = nodes {
        input
            .ext
            .push(PlanExt::Deployment(Box::new(deployment_plan(d, to))));
    }
    if let Some(mut e) = g.estimate {
        // The assumed container and init figures give way to what earlier upgrades on this
        // host took (issue 16, second pass); read-only, and never a reason to stop.
        let (_, host) = shell::identity();
        e.learn(to, &earlier::earlier_runs(ledger, &host));
        input.ext.push(PlanExt::Estimate(Box::new(e)));
    }
    // Kept so that a crash between `disable-ha`'s write and its outcome does not lose
    // HA's earlier value (`PlanExt::HaAtInit`).
    if let Some(Ok(Some(json))) = &facts.ha_config {
        input
            .ext
            .push(PlanExt::HaAtInit(HaAtInit { json: json.clone() }));
    }
    Plan::new(input)
        .map(|plan| (plan, g.tls))
        .map_err(|e| fatal("plan", CliError::new(ExitKind::Input, e.to_string())))
}

/// A container as the plan records it. Its labels include its image's; only those the
/// operator set are carried over, so the new container shows its own image's labels.
fn snapshot(
    old: &ContainerInfo,
    image_labels: &std::collections::BTreeMap<String, String>,
) -> ContainerSnapshot {
    ContainerSnapshot {
        id: old.id.clone(),
        name: old.name.clone(),
        image: old.image.clone(),
        image_id: old.image_id.clone(),
        binds: old.binds.clone(),
        env: record_env(&old.env),
        labels: crate::adapters::docker::user_labels(&old.labels, image_labels),
    }
}

/// The deployment extension from what the other nodes' preflight gathered; each node's
/// names follow node 0's defaults (`<name>-pre-<target>`, `<name>-failed-<target>`) on its
/// own engine.
fn deployment_plan(d: deployment::DeploymentOut, to: crate::versions::Version) -> Deployment {
    let meta = |id: crate::preflight::deployment::NodeId, region: usize, runs_init| NodeMeta {
        label: id.label,
        // At most 255 regions and nodes: `deployment::gather` refuses more.
        region: RegionIx(u8::try_from(region).unwrap_or(u8::MAX)),
        endpoint: id.endpoint,
        runs_init,
    };
    Deployment {
        node0: meta(d.node0, 0, true),
        regions: d.regions,
        nodes: d
            .nodes
            .into_iter()
            .map(|n| {
                let name = n.old.name.trim_start_matches('/').to_string();
                NodePlan {
                    old_container: snapshot(&n.old, &n.old_image_labels),
                    settings: Some(Box::new(n.settings)),
                    host_ip: n.id.ip.clone(),
                    health_url: n.health_url,
                    old_renamed_to: format!("{name}-pre-{to}"),
                    failed_name: format!("{name}-failed-{to}"),
                    new_name: name,
                    target_image_id: Some(n.target_image_id),
                    meta: meta(n.id, n.region, n.runs_init),
                }
            })
            .collect(),
    }
}

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
        "estimate": plan.estimate(),
        "nodes": plan.nodes().into_iter().map(|n| {
            let m = plan.node_meta(n);
            serde_json::json!({"node": n.0, "label": m.label, "endpoint": m.endpoint, "region": m.region.0, "runs_init": m.runs_init})
        }).collect::<Vec<_>>(),
    })
}

fn checks_json(checks: &[PreflightCheck]) -> serde_json::Value {
    serde_json::to_value(checks).unwrap_or_default()
}

fn absolute(p: &std::path::Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
