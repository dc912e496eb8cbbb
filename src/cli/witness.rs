//! The witness at the CLI edge: the `--witness` flags every witnessed command flattens in
//! ([`WitnessOpts`]), turning them into a target and a client ([`WitnessOpts::open`]), and
//! `oms-upgrade witness init`, which creates the tables and prints the grants a DBA runs.
//!
//! The password never travels in argv or the URL: it comes from `--witness-password-file`
//! or `OMS_WITNESS_PASSWORD`. The witness database must not be one of OMS's metadata
//! databases (a rollback restores those to an older state): callers pass the names they
//! know (the plan's), and `witness init` refuses OMS's default names.

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use super::metadb::password_from;
use super::metatls::tls_settings;
use super::output::emit;
use super::{CliError, CmdResult, Ctx, ExitKind};
use crate::dbconn::TlsMode;
use crate::witness::schema::{self, DEFAULT_AUDITOR, DEFAULT_WRITER};
use crate::witness::{MysqlWitness, WitnessTarget};

/// Environment variable naming the witness (`mysql://USER@HOST:PORT/DB`).
pub const WITNESS_ENV: &str = "OMS_UPGRADE_WITNESS";
/// Environment variable holding the witness user's password.
pub const WITNESS_PASSWORD_ENV: &str = "OMS_WITNESS_PASSWORD";
/// OMS's default metadata database names (`drc_rm_db`, `drc_cm_db`,
/// `drc_cm_heartbeat_db`), refused as a witness database even when no plan names others.
pub const DEFAULT_METADATA_DBS: [&str; 3] = ["oms_rm", "oms_cm", "oms_cm_hb"];

/// The witness flags, flattened into every command that can use a witness.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct WitnessOpts {
    /// The witness: an append-only copy of the ledger on a MySQL-protocol database,
    /// `mysql://USER@HOST:PORT/DB` (no password in it; see --witness-password-file).
    #[arg(long, value_name = "URL", env = WITNESS_ENV)]
    pub witness: Option<String>,
    /// File whose first line is the witness user's password (else OMS_WITNESS_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub witness_password_file: Option<PathBuf>,
    /// TLS to the witness: `required` (TLS with a verified certificate, or no connection),
    /// `preferred` (TLS when the server offers it; its certificate verified only against
    /// --witness-ca), `off`.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = TlsMode::Preferred)]
    pub witness_tls: TlsMode,
    /// CA certificate (PEM) the witness server's certificate must verify against.
    #[arg(long, value_name = "FILE")]
    pub witness_ca: Option<PathBuf>,
}

impl WitnessOpts {
    /// The witness named by the flags, checked and ready to connect (it connects on first
    /// use), or `None` when no witness is given. Refuses a URL with a password, a database
    /// in `metadata_dbs` (or OMS's default names), an unreadable password or CA file, and a
    /// missing password.
    pub fn open(
        &self,
        metadata_dbs: &[&str],
    ) -> Result<Option<(WitnessTarget, MysqlWitness)>, CliError> {
        let Some(url) = &self.witness else {
            return Ok(None);
        };
        let target = WitnessTarget::parse(url)?;
        target.refuse_metadata(&DEFAULT_METADATA_DBS)?;
        target.refuse_metadata(metadata_dbs)?;
        let password = password_from(self.witness_password_file.as_deref(), WITNESS_PASSWORD_ENV)?
            .ok_or_else(|| {
                CliError::new(
                    ExitKind::Input,
                    format!(
                        "no password is given for the witness user `{}`",
                        target.user
                    ),
                )
                .hint(format!(
                    "set {WITNESS_PASSWORD_ENV} or pass --witness-password-file FILE (never on \
                     the command line)"
                ))
            })?;
        let tls = tls_settings(self.witness_tls, self.witness_ca.as_deref(), "--witness")?;
        let witness = MysqlWitness::for_target(&target, password, tls);
        Ok(Some((target, witness)))
    }

    /// [`WitnessOpts::open`] for a command that cannot work without a witness.
    pub fn require(
        &self,
        metadata_dbs: &[&str],
    ) -> Result<(WitnessTarget, MysqlWitness), CliError> {
        self.open(metadata_dbs)?.ok_or_else(|| {
            CliError::new(ExitKind::Input, "no witness is given").hint(format!(
                "pass --witness mysql://USER@HOST:PORT/DB or set {WITNESS_ENV}"
            ))
        })
    }
}

/// `oms-upgrade witness ...`.
#[derive(Debug, clap::Subcommand)]
pub enum WitnessCommand {
    /// Create the witness tables (if missing) and print the GRANT statements for the writer
    /// (INSERT, SELECT) and a read-only auditor. Users are not created: a DBA does that.
    ///
    /// Run it as a user with CREATE on the witness database; the database must exist.
    Init(WitnessInitArgs),
}

/// Arguments of `witness init`.
#[derive(Debug, clap::Args)]
pub struct WitnessInitArgs {
    /// Where the witness is, and how to log in.
    #[command(flatten)]
    pub witness: WitnessOpts,
    /// The account the witnessed commands log in as (granted INSERT and SELECT only).
    #[arg(long, value_name = "USER", default_value = DEFAULT_WRITER)]
    pub writer_user: String,
    /// The read-only account for auditors and `fleet` (granted SELECT only).
    #[arg(long, value_name = "USER", default_value = DEFAULT_AUDITOR)]
    pub auditor_user: String,
    /// The host part of both accounts (`%`: any host).
    #[arg(long, value_name = "HOST", default_value = "%")]
    pub user_host: String,
}

/// What `witness init` did, as `--json` prints it.
#[derive(Debug, Serialize)]
struct InitOutput {
    witness: String,
    tables: Vec<&'static str>,
    writer_grant: String,
    auditor_grant: String,
}

/// Runs a `witness` subcommand.
pub fn run(cmd: WitnessCommand, ctx: &Ctx) -> CmdResult {
    match cmd {
        WitnessCommand::Init(args) => init(args, ctx),
    }
}

fn init(args: WitnessInitArgs, ctx: &Ctx) -> CmdResult {
    let account_error = |e: schema::AccountError| {
        CliError::new(ExitKind::Input, e.to_string())
            .hint("pass --writer-user, --auditor-user and --user-host as plain names")
    };
    let writer = schema::account(&args.writer_user, &args.user_host).map_err(account_error)?;
    let auditor = schema::account(&args.auditor_user, &args.user_host).map_err(account_error)?;
    let (target, witness) = args.witness.require(&[])?;
    let rt = super::runtime()?;
    rt.block_on(async {
        let r = witness.create_schema().await;
        witness.close().await;
        r
    })?;
    let out = InitOutput {
        witness: target.to_string(),
        tables: schema::TABLES.to_vec(),
        writer_grant: schema::writer_grant(&target.database, &writer),
        auditor_grant: schema::auditor_grant(&target.database, &auditor),
    };
    let text = if ctx.json {
        format!("{}\n", serde_json::to_string(&out).unwrap_or_default())
    } else {
        format!(
            "witness tables ready in {}: {}\n\
             This tool creates no users. A DBA creates them and grants (the writer needs \
             nothing more; it never updates or deletes a row):\n\n{};\n{};\n",
            out.witness,
            out.tables.join(", "),
            out.writer_grant,
            out.auditor_grant
        )
    };
    emit(&mut std::io::stdout(), &text)?;
    Ok(ExitCode::SUCCESS)
}
