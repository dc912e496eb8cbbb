//! The `oms-upgrade` binary: a thin shell over the library's CLI module.

fn main() -> std::process::ExitCode {
    // `oms-upgrade status | head` must end quietly, as Unix tools do, instead of panicking
    // in println! on a closed pipe: restore the default SIGPIPE action Rust turns off.
    // SAFETY: called before any thread exists; only resets a signal disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // The crash-matrix tests steer the executor's fault-injection points through the
    // FAILPOINTS environment variable, which `fail` reads only when a scenario is set up;
    // the scenario must live as long as the run.
    #[cfg(feature = "failpoints")]
    let _scenario = fail::FailScenario::setup();
    // Lets a test prove the binary it runs has the fault-injection points compiled in
    // (`FAILPOINTS=startup=return` aborts at once).
    #[cfg(feature = "failpoints")]
    fail::fail_point!("startup", |_| {
        eprintln!("failpoint startup: aborting");
        std::process::abort();
    });
    oms_upgrade::cli::main()
}
