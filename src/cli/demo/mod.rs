//! `oms-upgrade demo`: its flags, its output, and its exit codes. The demo itself (Docker,
//! MariaDB, the emulator, the child commands) is [`crate::demo`]; this module only turns
//! the flags into [`demo::Options`], prints what the demo returns (text or one JSON
//! object) and maps a [`DemoError`] to an exit kind.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};

use super::{CliError, CmdResult, Ctx, ExitKind};
use crate::adapters::ContainerInfo;
use crate::demo::{self, CleanOptions, DemoError, ErrorKind, Options, Outcome};

/// Arguments of `demo`.
///
/// On a machine with Docker and MariaDB: builds the OMS emulator images 3.3.0 and 3.3.1,
/// creates three metadata databases and the host folders, starts an OMS 3.3.0 node the way
/// the runbook does, seeds its metadata, then upgrades it to 3.3.1 with `init`, `run --yes`
/// and `ledger verify --live`, and prints where everything is (`--from`/`--to` pick
/// another upgrade path the emulator plays, e.g. 4.2.1 -> 4.2.2). Nothing is removed
/// afterwards: `oms-upgrade demo --clean --ledger L` does that.
///
/// The metadata DB comes from OMS_DEMO_MYSQL_HOST/PORT/USER/PASSWORD, falling back to
/// OMS_TEST_MYSQL_* and then to 127.0.0.1:3306, user oms_test (what scripts/services.sh
/// creates). Needs the emulator built next to this binary: `cargo build --release
/// --example oms_emulator` (scripts/demo does all of it).
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Volume of metadata rows to seed: bytes, or with a K, M or G suffix (1024-based).
    #[arg(long, value_name = "BYTES", default_value = "16M", value_parser = crate::units::parse_size)]
    pub size: u64,
    /// Create the containers with --privileged=true, as the runbook does (many engines,
    /// e.g. rootless or nested ones, refuse it; the emulator does not need it).
    #[arg(long)]
    pub privileged: bool,
    /// Remove what the demo of --ledger created (its labelled containers, databases, folder
    /// and ledger) instead of running a demo; other demos, running or not, are left alone.
    /// Images are kept. Exits 6 when something could not be removed (each such thing is
    /// named).
    #[arg(long, conflicts_with = "privileged")]
    pub clean: bool,
    /// With --clean: every demo on this machine (those next to --ledger or in
    /// ./oms-upgrade-demo, and every container labelled oms-upgrade.demo), listed with what
    /// is removed before anything is.
    #[arg(long, requires = "clean")]
    pub all: bool,
    /// With --clean: list the demos and what would be removed; remove nothing.
    #[arg(long, requires = "clean")]
    pub dry_run: bool,
    /// The version the demo's old node runs (one the emulator plays).
    #[arg(long, value_name = "VERSION", default_value = demo::DEMO_FROM_VERSION, conflicts_with = "clean")]
    pub from: String,
    /// The version the demo upgrades to: a supported path from --from (e.g. `--from 4.2.1
    /// --to 4.2.2` follows the 4.2.x guide: supervisor and server checks).
    #[arg(long, value_name = "VERSION", default_value = demo::DEMO_TO_VERSION, conflicts_with = "clean")]
    pub to: String,
    /// Stop after setting up the node and recording the plan with `init`: nothing is
    /// upgraded. Prints the exact commands to `run` the upgrade, kill it, resume it, roll it
    /// back, check the ledger against the live node and clean up, so a person (or
    /// `scripts/soak`) can drive the node by hand.
    #[arg(long, conflicts_with = "clean")]
    pub plan_only: bool,
    /// Serve the node's console over HTTPS only, as OMS does with a certificate mounted at
    /// /etc/pki/nginx/oms_server.crt: a CA and a console certificate are generated into the
    /// demo folder (`tls/`), mounted into the container, the CA is given to `init` with
    /// `--health-ca`, and the demo ends with `ledger verify --live`.
    #[arg(long, conflicts_with = "clean")]
    pub tls: bool,
    /// Mirror the demo's ledger to a witness (`witness init` first; see docs/witness.md):
    /// `init` records it, `run` pushes every record, and the demo ends with `ledger verify
    /// --live --witness`. The password comes from OMS_WITNESS_PASSWORD or
    /// --witness-password-file, as for every command.
    #[command(flatten)]
    pub witness: super::witness::WitnessOpts,
    /// With --witness: what the run does when the witness cannot be reached.
    #[arg(
        long,
        value_enum,
        value_name = "POLICY",
        requires = "witness",
        conflicts_with = "clean"
    )]
    pub witness_policy: Option<super::init::WitnessPolicyArg>,
    /// Upgrade a deployment of this many nodes (issue 15, docs/deployment.md): one emulator
    /// container per node on the local engine, each on its own loopback address
    /// (127.0.0.2, ...) with its own OMS_HOST_IP, one config.yaml per region, all sharing
    /// one metadata DB; `init --inventory` plans them all, `run` upgrades them as one run in
    /// one ledger (stops, creations, starts and health checks side by side), and `ledger
    /// verify --live` checks every node.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(1..=i64::from(crate::demo::deployment::MAX_NODES)),
          conflicts_with_all = ["clean", "tls", "plan_only"])]
    pub nodes: u8,
    /// With --nodes: spread the nodes over this many regions (each its own heartbeat
    /// database and config.yaml).
    #[arg(long, value_name = "R", default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(1..=i64::from(crate::demo::deployment::MAX_REGIONS)),
          conflicts_with = "clean")]
    pub regions: u8,
    /// After the upgrade and its `ledger verify --live`: roll everything back with
    /// `rollback --yes`, and run `ledger verify --live` again.
    #[arg(long, conflicts_with_all = ["clean", "plan_only"])]
    pub rollback: bool,
}

/// Runs `demo` (or `demo --clean`).
pub fn run(args: DemoArgs, ctx: &Ctx) -> CmdResult {
    if args.clean {
        return clean(&args, ctx);
    }
    let witness = demo_witness(&args)?;
    if args.regions > args.nodes {
        return Err(CliError::new(
            ExitKind::Input,
            format!(
                "--regions {} is more than --nodes {}: every region needs at least one node",
                args.regions, args.nodes
            ),
        )
        .hint("give at most as many regions as nodes, e.g. `demo --nodes 3 --regions 2`"));
    }
    if args.nodes > 1 && witness.is_some() {
        return Err(CliError::new(
            ExitKind::Input,
            "--witness is not supported with --nodes yet (the single-node demo mirrors to a witness)",
        ));
    }
    let opts = Options {
        size: args.size,
        privileged: args.privileged,
        from: args.from,
        to: args.to,
        plan_only: args.plan_only,
        tls: args.tls,
        ledger: given_ledger(ctx),
        json: ctx.json,
        progress,
        witness,
        nodes: args.nodes,
        regions: args.regions,
        rollback: args.rollback,
    };
    match demo::run(opts)? {
        Outcome::Upgraded(u) => print_upgraded(&u, ctx.json),
        Outcome::Deployment(d) => print_deployment(&d, ctx.json),
        Outcome::Planned(p) => {
            print_planned(&p, ctx.json);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The witness the demo mirrors to, checked before anything is set up: the URL parses,
/// names no metadata database, and the password can be found (the server is first asked
/// by the demo's `init`).
fn demo_witness(args: &DemoArgs) -> Result<Option<demo::DemoWitness>, CliError> {
    let Some(url) = args.witness.witness.clone() else {
        return Ok(None);
    };
    // Opening checks the URL and the password without connecting.
    args.witness.open(&[])?;
    let policy: crate::witness::WitnessPolicy = args
        .witness_policy
        .unwrap_or(super::init::WitnessPolicyArg::Required)
        .into();
    Ok(Some(demo::DemoWitness {
        url,
        policy: policy.as_str(),
        password_file: args.witness.witness_password_file.clone(),
        tls: args.witness.witness_tls.to_string(),
        ca: args.witness.witness_ca.clone(),
    }))
}

/// A progress line for people, on stderr (with `--json`, stdout holds only the result).
fn progress(text: &str) {
    eprintln!("demo: {text}");
}

/// The ledger the user gave, if any (the global default names a production ledger, which a
/// demo must never use).
fn given_ledger(ctx: &Ctx) -> Option<PathBuf> {
    (ctx.ledger != super::dirs::here().ledger).then(|| demo::absolute(&ctx.ledger))
}

impl From<DemoError> for CliError {
    fn from(e: DemoError) -> Self {
        let kind = match e.kind {
            ErrorKind::Input => ExitKind::Input,
            ErrorKind::Refused => ExitKind::Refused,
            ErrorKind::Service => ExitKind::Service,
            ErrorKind::Internal => ExitKind::Internal,
            // A child command's own exit code, read back as its kind.
            ErrorKind::Child(code) => code
                .and_then(|c| u8::try_from(c).ok())
                .and_then(ExitKind::from_code)
                .unwrap_or(ExitKind::Internal),
        };
        CliError {
            kind,
            message: e.message,
            hint: e.hint,
            causes: Vec::new(),
        }
    }
}

/// The upgraded demo's summary; a failed `ledger verify --live` fails the command after it.
fn print_deployment(d: &demo::DeploymentRun, json: bool) -> CmdResult {
    if json {
        println!("{}", d.summary);
    } else {
        let t = |t: Option<DateTime<Utc>>| {
            t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_else(|| "-".into())
        };
        println!();
        println!(
            "Demo {}: {} nodes, upgrade {} -> {} {}; ledger {}.",
            d.id,
            d.nodes.len(),
            d.from,
            d.to,
            d.phase,
            if d.verify_failure.is_none() {
                "verified on every node"
            } else {
                "DID NOT VERIFY"
            }
        );
        println!("  ledger:       {}", d.ledger.display());
        println!("  demo folder:  {}", d.dir.display());
        println!("  inventory:    {}", d.inventory.display());
        for n in &d.nodes {
            println!(
                "  {:<6} {:<12} {:<10} {:<11} {} ({})",
                n.node,
                n.label,
                n.region,
                n.host_ip,
                n.serving,
                if n.healthy { "healthy" } else { "not healthy" }
            );
        }
        println!(
            "  T1 (first node stopped): {}   T2 (HA on): {}   downtime: {}",
            t(d.t1),
            t(d.t2),
            d.downtime_seconds
                .map(|s| format!("{s:.1} s"))
                .unwrap_or_else(|| "-".into())
        );
        for (c, ok) in &d.commands {
            println!("  {} oms-upgrade {c}", if *ok { "ok  " } else { "FAIL" });
        }
        println!("Look around:");
        for l in &d.look_around {
            println!("  {l}");
        }
    }
    match &d.verify_failure {
        None => Ok(ExitCode::SUCCESS),
        Some(e) => Err(e.clone().into()),
    }
}

fn print_upgraded(u: &demo::Upgraded, json: bool) -> CmdResult {
    if json {
        println!("{}", u.summary);
    } else {
        let c = |c: &Option<ContainerInfo>| demo::container_line(c.as_ref());
        let dbs = u
            .databases
            .as_ref()
            .map(|d| format!("{}, {}, {}", d.rm, d.cm, d.cm_hb))
            .unwrap_or_default();
        println!();
        println!(
            "Demo {}: upgrade {} -> {} {}; ledger {}.",
            u.id,
            u.from,
            u.to,
            u.phase,
            if u.verify_failure.is_none() {
                "verified"
            } else {
                "DID NOT VERIFY"
            }
        );
        println!("  ledger:         {}", u.ledger.display());
        println!("  demo folder:    {}", u.dir.display());
        println!("  config.yaml:    {}", u.config.display());
        println!("  metadata DB:    {} ({dbs})", u.metadb);
        println!("  new container:  {}", c(&u.new));
        println!("  old container:  {}", c(&u.old));
        println!(
            "  health:         {} ({})",
            u.health_url.as_deref().unwrap_or("-"),
            if u.healthy { "healthy" } else { "not healthy" }
        );
        let t = |t: Option<DateTime<Utc>>| {
            t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_else(|| "-".into())
        };
        println!(
            "  T1 (old stopped): {}   T2 (HA on): {}   downtime: {}",
            t(u.t1),
            t(u.t2),
            u.downtime_seconds
                .map(|d| format!("{d:.1} s"))
                .unwrap_or_else(|| "-".into())
        );
        if let Some(m) = u.refetch_minutes {
            println!("  refetchStoreIntervalMin: {m}");
        }
        println!("Everything is left in place. Look around:");
        for l in &u.look_around {
            println!("  {l}");
        }
    }
    match &u.verify_failure {
        None => Ok(ExitCode::SUCCESS),
        Some(e) => Err(e.clone().into()),
    }
}

/// `--plan-only`: the node and the recorded plan, and the commands to drive them.
fn print_planned(p: &demo::Planned, json: bool) {
    if json {
        println!("{}", p.summary);
        return;
    }
    println!();
    println!(
        "Demo {}: node {} ({}) is running; the upgrade {} -> {} is planned in {} and nothing else was done.",
        p.id,
        p.container,
        p.old_image,
        p.from,
        p.to,
        p.ledger.display()
    );
    println!("Drive it (paste into bash):");
    for (_, what, c) in &p.commands {
        println!("  # {what}");
        println!("  {c}");
    }
}

/// `demo --clean`: what was removed, what was kept and why. Something a demo made that is
/// still there exits 6 (Service), so scripts see it too, not only in words.
fn clean(args: &DemoArgs, ctx: &Ctx) -> CmdResult {
    let report = demo::clean(&CleanOptions {
        all: args.all,
        dry_run: args.dry_run,
        ledger: given_ledger(ctx),
        progress,
    })?;
    let done = &report.done;
    if ctx.json {
        let mut v = serde_json::to_value(&report).unwrap_or_default();
        v["ok"] = done.warnings.is_empty().into();
        println!("{v}");
    } else if args.dry_run {
        println!(
            "Would remove {} demo(s) and {} container(s); nothing was removed.",
            report.demos.len(),
            report.doomed
        );
        for w in &done.warnings {
            println!("  warning: {w}");
        }
    } else {
        println!(
            "Removed {} container(s), {} database(s), {} folder(s).",
            done.containers.len(),
            done.databases.len(),
            done.folders.len()
        );
        for w in &done.warnings {
            println!("  warning: {w}");
        }
    }
    Ok(if done.warnings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(ExitKind::Service.code())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ledger_is_never_the_demo_ledger() {
        let ctx = Ctx {
            ledger: crate::cli::dirs::here().ledger,
            json: false,
        };
        assert_eq!(given_ledger(&ctx), None);
        let ctx = Ctx {
            ledger: "/tmp/x/ledger".into(),
            json: false,
        };
        assert_eq!(given_ledger(&ctx), Some(PathBuf::from("/tmp/x/ledger")));
    }
}
