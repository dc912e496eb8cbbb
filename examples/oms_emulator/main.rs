//! OMS CE emulator: one program that plays an OceanBase Migration Service Community Edition
//! node wherever the upgrade runbook touches one, so that oms-upgrade can be exercised end
//! to end against a real Docker engine and a real MariaDB server.
//!
//! Modes:
//! - `serve`: the container's main process (health endpoint, heartbeats, `ha.config`,
//!   mounted folders, clean SIGTERM);
//! - `init`: what `/root/docker_init.sh` runs (fresh install, `IS_UPGRADE=true` migration,
//!   failure knobs);
//! - `seed`: fills a metadata database with a realistic, awkward data set, on the host;
//! - `supervisorctl`: the `supervisorctl status` the 4.2.x runbook checks.
//!
//! The version played comes from `OMS_EMU_VERSION`, which the image sets. See
//! docs/emulator.md for what is and is not emulated.

mod common;
mod init;
mod schema;
mod seed;
mod server;
mod tls;

use clap::{Parser, Subcommand};

/// OMS CE emulator (for oms-upgrade's tests and demo).
#[derive(Debug, Parser)]
#[command(name = "oms_emulator")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Run as an OMS node (the container's CMD).
    Serve,
    /// Initialise or upgrade the metadata schema (what /root/docker_init.sh runs).
    Init,
    /// Fill the metadata databases with a realistic data set.
    Seed(seed::SeedArgs),
    /// Print program states like `supervisorctl status`.
    Supervisorctl {
        /// Ignored sub-arguments (`status`, program names).
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
}

fn main() {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds");
    let paths = common::Paths::from_env();
    let code = match cli.mode {
        Mode::Serve => rt.block_on(server::run(paths)),
        Mode::Init => rt.block_on(init::run(&paths)),
        Mode::Seed(args) => rt.block_on(seed::run(args)),
        Mode::Supervisorctl { .. } => server::supervisorctl(&paths),
    };
    // Exit without waiting for stray tasks (a hung query must not delay a stop).
    std::process::exit(code);
}
