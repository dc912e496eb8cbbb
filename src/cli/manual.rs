//! `completions` and `man` (issue 17): shell completion and man pages generated from the
//! clap definitions of [`super::Cli`] at run time, so they cannot drift from the code.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::CommandFactory;

use super::{CliError, CmdResult, ExitKind};

/// A shell completion is written for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ShellArg {
    /// bash (`/usr/share/bash-completion/completions/oms-upgrade`).
    Bash,
    /// zsh (`/usr/share/zsh/vendor-completions/_oms-upgrade`).
    Zsh,
    /// fish (`/usr/share/fish/vendor_completions.d/oms-upgrade.fish`).
    Fish,
}

/// Arguments of `completions`.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: ShellArg,
}

/// Arguments of `man`.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write `oms-upgrade.1` and `oms-upgrade-<command>.1` for every command and
    /// subcommand into this folder (created if missing); without it, `oms-upgrade.1` is
    /// printed on stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Prints the completion script for the shell.
pub fn completions(args: &CompletionsArgs) -> CmdResult {
    use clap_complete::{Shell, generate};
    let shell = match args.shell {
        ShellArg::Bash => Shell::Bash,
        ShellArg::Zsh => Shell::Zsh,
        ShellArg::Fish => Shell::Fish,
    };
    let mut cmd = super::Cli::command();
    let mut out = Vec::new();
    generate(shell, &mut cmd, "oms-upgrade", &mut out);
    write_stdout(&out)
}

/// Writes the man pages (see [`ManArgs`]).
pub fn man(args: &ManArgs) -> CmdResult {
    let cmd = super::Cli::command();
    let Some(dir) = &args.out else {
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd)
            .render(&mut out)
            .map_err(|e| internal("render oms-upgrade(1)", e))?;
        return write_stdout(&out);
    };
    std::fs::create_dir_all(dir).map_err(|e| {
        CliError::new(
            ExitKind::Input,
            format!("cannot create the man page folder {}: {e}", dir.display()),
        )
        .hint("give --out a folder you may write")
    })?;
    let mut pages = Vec::new();
    collect(cmd, "oms-upgrade", &mut pages);
    for (name, page) in &pages {
        let path = dir.join(format!("{name}.1"));
        let mut out = Vec::new();
        clap_mangen::Man::new(page.clone())
            .render(&mut out)
            .map_err(|e| internal(&format!("render {name}(1)"), e))?;
        std::fs::write(&path, out).map_err(|e| {
            CliError::new(
                ExitKind::Input,
                format!("cannot write {}: {e}", path.display()),
            )
        })?;
    }
    eprintln!("wrote {} man pages to {}", pages.len(), dir.display());
    Ok(ExitCode::SUCCESS)
}

/// `cmd` and every subcommand below it, each named as its page (`oms-upgrade-ledger-verify`).
fn collect(cmd: clap::Command, name: &str, pages: &mut Vec<(String, clap::Command)>) {
    let cmd = cmd.name(name.to_string());
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        collect(sub.clone(), &format!("{name}-{}", sub.get_name()), pages);
    }
    pages.push((name.to_string(), cmd));
}

fn write_stdout(bytes: &[u8]) -> CmdResult {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // A closed pipe (`| head`) is not a failure of the command.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(internal("write to stdout", e)),
    }
}

fn internal(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::new(ExitKind::Internal, format!("cannot {what}: {e}"))
}
