//! `--version`, `completions` and `man` as a user runs them (issue 17): the version names
//! the build (version, the commit built, the build date), and the completions and man pages
//! come from the clap definitions, so every command is in them.

mod support;

use support::upgrade::bin;

fn run(args: &[&str]) -> String {
    let out = std::process::Command::new(bin())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "oms-upgrade {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn version_names_the_version_the_commit_and_the_build_date() {
    let v = run(&["--version"]);
    let v = v.trim();
    let rest = v
        .strip_prefix(&format!(
            "oms-upgrade {} (commit ",
            env!("CARGO_PKG_VERSION")
        ))
        .unwrap_or_else(|| panic!("{v}"));
    let (commit, date) = rest
        .strip_suffix(')')
        .and_then(|r| r.split_once(", built "))
        .unwrap_or_else(|| panic!("{v}"));
    // The commit of this checkout, when there is one.
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match head {
        Some(h) => assert_eq!(commit, h, "{v}"),
        None => assert_eq!(commit, "unknown", "{v}"),
    }
    let parts: Vec<&str> = date.split('-').collect();
    assert_eq!(parts.len(), 3, "{v}");
    assert!(date.bytes().all(|b| b.is_ascii_digit() || b == b'-'), "{v}");
}

#[test]
fn completions_cover_every_command_and_new_flags() {
    for shell in ["bash", "zsh", "fish"] {
        let text = run(&["completions", shell]);
        for word in [
            "init",
            "rollback",
            "ledger",
            "demo",
            "fleet",
            "--inventory",
            "--nodes",
        ] {
            assert!(text.contains(word), "{shell} completion lacks {word}");
        }
    }
}

#[test]
fn man_pages_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin())
        .args(["man", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    for page in [
        "oms-upgrade.1",
        "oms-upgrade-init.1",
        "oms-upgrade-ledger-verify.1",
        "oms-upgrade-demo.1",
        "oms-upgrade-fleet-list.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page} is not a man page");
    }
    let init = std::fs::read_to_string(dir.path().join("oms-upgrade-init.1")).unwrap();
    assert!(init.contains("inventory"), "init(1) lacks --inventory");
    // Without --out: oms-upgrade(1) on stdout.
    assert!(run(&["man"]).contains(".TH oms-upgrade 1"));
}
