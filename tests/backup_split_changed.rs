//! A dump file changed after its verification while one table's rows are loaded over
//! several connections: the statements every connection sent are counted in the message,
//! and it is exactly what the database holds. The change is made at the `restore:verified`
//! failpoint; this binary holds one test, so the process-wide failpoint serves it alone.
#![cfg(feature = "failpoints")]

mod backup_helpers;
mod support;

use std::io::Write;

use backup_helpers::*;
use oms_upgrade::dump::{self, DumpError, DumpOptions, Quiet, RestoreOptions};

/// The verified file's pieces (`sections.rs`): a change is found at the piece holding it.
const PIECE: usize = 256 << 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_found_in_a_split_section_counts_every_connections_statements() {
    let _scenario = fail::FailScenario::setup();
    let db = support::TestDb::create("bk_splitchg").await;
    seed_big(&db.name, "big", 20_000).await;
    let dir = out_dir();
    let opts = DumpOptions {
        max_statement_bytes: 4096,
        ..DumpOptions::default()
    };
    let artifact = dump_with(&db.name, dir.path(), &opts).await;
    let stored = std::fs::read(&artifact.file).unwrap();
    assert!(stored.len() > 16 * PIECE, "the section spans many pieces");

    // One byte in the middle of the table's rows changes after the check: the statements
    // that end before its piece may run, the rest may not.
    let at = stored.len() / 2 + PIECE / 2;
    let piece = at - at % PIECE;
    let mut changed = stored.clone();
    changed[at] = if changed[at] == b'0' { b'1' } else { b'0' };
    let path = artifact.file.clone();
    fail::cfg_callback("restore:verified", move || {
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all(&changed).unwrap();
        f.sync_all().unwrap();
    })
    .unwrap();

    // Bytes, not text: binary values are written as escaped raw bytes (`_binary'..'`).
    let section = stored
        .windows(10)
        .position(|w| w == b"\n-- Table ")
        .unwrap();
    let mut sent: Vec<&[u8]> = Vec::new();
    let mut rest = &stored[section..piece];
    while let Some(end) = rest.windows(2).position(|w| w == b";\n") {
        sent.push(&rest[..end + 2]);
        rest = &rest[end + 2..];
    }
    let rows_sent: usize = sent
        .iter()
        .filter(|s| s.trim_ascii_start().starts_with(b"INSERT INTO `big`"))
        .map(|s| s.windows(3).filter(|w| *w == b"),(").count() + 1)
        .sum();

    let err = dump::restore_database(
        &support::mysql_target(),
        &artifact,
        &RestoreOptions {
            jobs: 3,
            split_bytes: 1,
        },
        &Quiet,
    )
    .await
    .expect_err("changed after the check");
    fail::remove("restore:verified");
    assert!(matches!(err, DumpError::FileChanged { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "`{}` was dropped and recreated and {} statements of its dump were executed",
            db.name,
            sent.len()
        )),
        "{msg}"
    );
    let rows = value(&db.name, "SELECT COUNT(*) FROM big").await.unwrap();
    assert_eq!(String::from_utf8(rows).unwrap(), rows_sent.to_string());
}
