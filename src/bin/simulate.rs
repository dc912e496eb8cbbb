//! `oms-simulate`: the real executor under deterministic simulation (see
//! `docs/simulation.md`). Run through `scripts/simulate`.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use oms_upgrade::sim::driver::{SimConfig, run_seeds};
use oms_upgrade::versions::{Version, procedure_for, supported_paths};

/// Runs seeds of the simulator and prints what they did and any violation.
#[derive(Parser, Debug)]
#[command(name = "oms-simulate")]
struct Args {
    /// How many seeds to run (0, 1, ... N-1 from `--first`).
    #[arg(long, default_value_t = 1000)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    first: u64,
    /// Run only this seed, printing its ledger trace (reproduces a reported violation).
    #[arg(long)]
    seed: Option<u64>,
    /// The upgrade path, `SOURCE-TARGET` (e.g. `3.3.0-3.3.1`); `all` runs every supported
    /// path's lowest source.
    #[arg(long, default_value = "3.3.0-3.3.1")]
    path: String,
    /// Threads running seeds.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Mirror every record to an in-memory witness under this policy (`required` or
    /// `best-effort`), which goes away part-way through some process lives; the checks
    /// then include the witness's (docs/simulation.md).
    #[arg(long, value_name = "POLICY", value_parser = ["required", "best-effort"])]
    witness: Option<String>,
    /// Nodes of the deployment (issue 15): each its own simulated Docker engine, sharing
    /// the clock, the metadata DB and the faults; 1 is the single-node upgrade.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=9))]
    nodes: u8,
    /// Regions the nodes are spread over (node i in region i mod R), each with its own
    /// heartbeat database; at most `--nodes`.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=9))]
    regions: u8,
}

fn paths(arg: &str) -> Result<Vec<(Version, Version)>, String> {
    if arg == "all" {
        return Ok(supported_paths()
            .iter()
            .map(|p| {
                let source = match p.sources {
                    oms_upgrade::versions::Sources::Exact(v) => v,
                    oms_upgrade::versions::Sources::Range { from, .. } => from,
                };
                (source, p.target)
            })
            .collect());
    }
    let (a, b) = arg
        .split_once('-')
        .ok_or_else(|| format!("--path {arg}: expected SOURCE-TARGET, e.g. 3.3.0-3.3.1"))?;
    let v = |s: &str| {
        s.parse::<Version>()
            .map_err(|_| format!("--path {arg}: `{s}` is not a version like 3.3.1"))
    };
    let (a, b) = (v(a)?, v(b)?);
    procedure_for(a, b).map_err(|e| format!("--path {arg}: {e}"))?;
    Ok(vec![(a, b)])
}

fn main() -> ExitCode {
    let args = Args::parse();
    let paths = match paths(&args.path) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let seeds: Vec<u64> = match args.seed {
        Some(s) => vec![s],
        None => (args.first..args.first.saturating_add(args.seeds)).collect(),
    };
    let mut failed = false;
    for (source, target) in paths {
        if args.regions > args.nodes {
            eprintln!(
                "error: --regions {} is more than --nodes {}: every region needs a node; give at most as many regions as nodes",
                args.regions, args.nodes
            );
            return ExitCode::from(2);
        }
        let mut cfg = SimConfig::new(source, target).deployment(args.nodes, args.regions);
        cfg.witness = args.witness.as_deref().map(|p| match p {
            "required" => oms_upgrade::witness::WitnessPolicy::Required,
            _ => oms_upgrade::witness::WitnessPolicy::BestEffort,
        });
        let started = Instant::now();
        let totals = match run_seeds(&cfg, &seeds, args.threads) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: path {source}-{target}: the fault-free run failed: {e}");
                failed = true;
                continue;
            }
        };
        let secs = started.elapsed().as_secs_f64();
        println!("path {source}-{target}");
        println!(
            "  seeds run: {} in {secs:.1} s ({:.0} seeds/s, {} threads)",
            totals.seeds,
            totals.seeds as f64 / secs.max(1e-9),
            args.threads
        );
        let faults: u64 = totals.faults.values().sum();
        println!(
            "  faults injected: {faults} ({})",
            totals
                .faults
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "  faults by error kind: {}",
            totals
                .fault_kinds
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "  crashes: {}, restarts: {}, resolves: {}",
            totals.crashes, totals.restarts, totals.resolves
        );
        if args.nodes > 1 {
            println!(
                "  nodes: {} in {} regions; crashes inside a stage: {} (of them {} with several steps in doubt)",
                args.nodes, args.regions, totals.stage_crashes, totals.multi_doubt_crashes
            );
        }
        println!(
            "  ended: {}",
            totals
                .phases
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!("  violations: {}", totals.failed.len());
        let show_trace = args.seed.is_some();
        for r in &totals.failed {
            failed = true;
            println!(
                "  seed {} (reproduce: scripts/simulate --path {source}-{target}{} --seed {}):",
                r.seed,
                if args.nodes > 1 {
                    format!(" --nodes {} --regions {}", args.nodes, args.regions)
                } else {
                    String::new()
                },
                r.seed
            );
            for v in &r.violations {
                println!("    violation: {v}");
            }
            println!("    event trace:");
            for l in &r.trace {
                println!("      {l}");
            }
            for d in &r.diff {
                println!("    world diff: {d}");
            }
            if !show_trace && totals.failed.len() > 1 {
                println!("  {} more seeds failed:", totals.failed.len() - 1);
                for r in totals.failed.iter().skip(1) {
                    println!("    seed {}: {}", r.seed, r.violations.join("; "));
                    for d in &r.diff {
                        println!("      world diff: {d}");
                    }
                }
                break;
            }
        }
        if show_trace && totals.failed.is_empty() {
            // A single seed asked for: show what it did even when it held.
            if let Some(r) = &totals.last {
                println!("  event trace of seed {}:", r.seed);
                for l in &r.trace {
                    println!("    {l}");
                }
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
