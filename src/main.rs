//! The `oms-upgrade` binary: a thin shell over the library's CLI module.

fn main() -> std::process::ExitCode {
    oms_upgrade::cli::main()
}
