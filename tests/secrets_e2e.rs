//! Hostile input (issue 10): secrets in a container's environment and in `docker_init.sh`'s
//! output never reach the ledger, its export or the reports, whatever the variable's name.

mod support;

use support::emulator as emu;
use support::upgrade::{cli, init, ok};

/// The old container carries secrets under plain names, and the emulator's
/// `docker_init.sh` echoes its client command line with the metadata password (as OMS's
/// does). After a full upgrade, the export and every report form hold none of them, and
/// the masked forms are still readable.
#[tokio::test(flavor = "multi_thread")]
async fn upgrade_records_no_secret_values() {
    let node = emu::start_oms_with_env(
        emu::OLD_VERSION,
        &[
            "DB_URL=mysql://oms:url-pw-Kq2@10.0.0.9:3306/oms",
            "JAVA_OPTS=-Xmx1g -Dpassword=opts-pw-Zr7 -Duser.timezone=UTC",
            "OMS_META_PASSWORD=name-pw-Jm4",
        ],
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let ledger = tmp.path().join("ledger");
    init(&node, &ledger, &tmp.path().join("backups")).await;
    ok(cli(&ledger).args(["--json", "run", "--yes"]));

    let meta_pw = support::mysql_target().password.expose().to_string();
    let secrets = ["url-pw-Kq2", "opts-pw-Zr7", "name-pw-Jm4", meta_pw.as_str()];
    let mut shown = Vec::new();
    for args in [
        &["ledger", "export"][..],
        &["report", "--format", "json"],
        &["report", "--format", "md"],
        &["report", "--format", "html"],
        &["plan"],
        &["--json", "status"],
    ] {
        let text = String::from_utf8(ok(cli(&ledger).args(args)).stdout).unwrap();
        for s in secrets {
            assert!(!text.contains(s), "`{}` shows {s}:\n{text}", args.join(" "));
        }
        shown.push(text);
    }
    let export = &shown[0];
    assert!(
        export.contains("mysql://oms:***@10.0.0.9:3306/oms"),
        "{export}"
    );
    assert!(export.contains("-Dpassword=***"), "{export}");
    // docker_init.sh's output was recorded (masked), not dropped.
    assert!(export.contains("-p*** -e 'select 1'"), "{export}");
}
