//! Binary values in native dumps (issue 16): binary strings and BLOBs are written as
//! `_binary'..'` with mysqldump's escapes instead of `X'..'` hex. Every byte value (also
//! bytes that are not UTF-8, and a UTF-8 lead byte right before a quote or a backslash),
//! NULL against '' against x'00', a value of exactly 1 MiB and a 17 MiB LONGBLOB row give
//! the same bytes over both dump paths and with 1 or 4 jobs, restore natively and with the
//! stock `mariadb` client to identical tables and facts, and a file of the earlier form
//! (`X'..'`) still restores.

mod backup_helpers;
mod support;

use std::process::Stdio;

use backup_helpers::*;
use mysql_async::prelude::Queryable;
use oms_upgrade::dump::{self, DumpOptions, WireUse};

const MIB: usize = 1 << 20;
const BIG: usize = 17 << 20;

fn opts(jobs: usize, wire: WireUse) -> DumpOptions {
    DumpOptions {
        jobs,
        wire,
        ..DumpOptions::default()
    }
}

/// Every byte value, then every byte value followed by a quote and by a backslash (a UTF-8
/// lead byte before an escape must not swallow it in any lexer).
fn awkward_bytes() -> Vec<u8> {
    let mut v: Vec<u8> = (0..=255u8).collect();
    for b in 0..=255u8 {
        v.extend_from_slice(&[b, b'\'', b, b'\\']);
    }
    v
}

async fn seed(db: &str) {
    exec(
        db,
        // Two tables: one table would take the one-connection path, which is mysql_async's.
        "CREATE TABLE b (id INT PRIMARY KEY, bl BLOB, vb VARBINARY(2000), fb BINARY(4), \
         lb LONGBLOB, t TEXT); \
         CREATE TABLE u (id INT PRIMARY KEY, vb VARBINARY(16)); \
         INSERT INTO u VALUES (1, x'c35c'), (2, x'c327'), (3, x'e29c5c'), (4, x'f09f9827'), \
         (5, x'ff'), (6, NULL), (7, ''), (8, x'00'); \
         CREATE TABLE `ünï中文` (`é` VARCHAR(10) CHARACTER SET latin1 DEFAULT 'é' COMMENT '中文😀', \
         u VARCHAR(10), j JSON) COMMENT 'ünï 😀'; \
         INSERT INTO `ünï中文` VALUES ('àé\\'ÿ', 'é😀中', '{\"k\": \"中😀\"}'), (DEFAULT, '', NULL); \
         CREATE VIEW `vü` AS SELECT `é`, 'é😀' AS lit FROM `ünï中文`",
    )
    .await;
    let mut c = conn(Some(db)).await;
    let all: Vec<u8> = (0..=255u8).collect();
    let exact: Vec<u8> = (0..MIB).map(|i| (i * 7 % 256) as u8).collect();
    let big: Vec<u8> = (0..BIG).map(|i| (i * 13 % 256) as u8).collect();
    c.exec_drop(
        "INSERT INTO b VALUES (1, ?, ?, x'00ff275c', NULL, 'text \\' é'), \
         (2, NULL, '', x'00', x'00', NULL), (3, '', x'00', '', '', '')",
        (awkward_bytes(), all),
    )
    .await
    .expect("insert the awkward rows");
    c.exec_drop(
        "INSERT INTO b VALUES (4, NULL, NULL, NULL, ?, NULL)",
        (exact,),
    )
    .await
    .expect("insert the 1 MiB value");
    c.exec_drop(
        "INSERT INTO b VALUES (5, NULL, NULL, NULL, ?, NULL)",
        (big,),
    )
    .await
    .expect("insert the 17 MiB row");
    c.disconnect().await.ok();
}

/// The file with every `_binary'..'` literal written back as `X'..'` (the form of earlier
/// versions); the artifact's size and hash follow the new bytes.
fn as_hex_file(artifact: &dump::DumpArtifact, dir: &std::path::Path) -> dump::DumpArtifact {
    const INTRO: &[u8] = b"_binary'";
    let src = std::fs::read(&artifact.file).unwrap();
    let mut out = Vec::with_capacity(src.len() * 2);
    let mut i = 0;
    while i < src.len() {
        if !src[i..].starts_with(INTRO) {
            out.push(src[i]);
            i += 1;
            continue;
        }
        i += INTRO.len();
        let mut value = Vec::new();
        loop {
            match src[i] {
                b'\'' => break,
                b'\\' => {
                    i += 1;
                    value.push(match src[i] {
                        b'0' => 0,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b'Z' => 0x1a,
                        other => other,
                    });
                }
                b => value.push(b),
            }
            i += 1;
        }
        i += 1;
        out.extend_from_slice(format!("X'{}'", hex::encode(&value)).as_bytes());
    }
    let file = dir.join(artifact.file.file_name().unwrap());
    std::fs::write(&file, &out).unwrap();
    dump::DumpArtifact {
        file,
        size_bytes: out.len() as u64,
        blake3_hex: blake3::hash(&out).to_hex().to_string(),
        ..artifact.clone()
    }
}

/// The client charset the view was created with (the file sets the client charset to
/// binary for the tables and back to utf8mb4 before the views).
async fn view_charset(db: &str) -> Vec<u8> {
    value(
        db,
        &format!(
            "SELECT CHARACTER_SET_CLIENT FROM information_schema.VIEWS \
             WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = 'vü'"
        ),
    )
    .await
    .expect("the view is there")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_values_are_escaped_literals_that_restore_exactly_everywhere() {
    allow_big_packets().await;
    let db = support::TestDb::create("bk_binlit").await;
    seed(&db.name).await;
    let before = snapshot(&db.name).await;

    // The same bytes over both paths and whatever the job count.
    let dirs = [out_dir(), out_dir(), out_dir()];
    let artifact = dump_with(&db.name, dirs[0].path(), &opts(4, WireUse::Only)).await;
    let bytes = std::fs::read(&artifact.file).unwrap();
    for (dir, o) in dirs[1..]
        .iter()
        .zip([opts(4, WireUse::Never), opts(1, WireUse::Never)])
    {
        let other = dump_with(&db.name, dir.path(), &o).await;
        assert!(
            std::fs::read(&other.file).unwrap() == bytes,
            "jobs {} / {:?} wrote other bytes",
            o.jobs,
            o.wire
        );
        assert_eq!(other.tables, artifact.tables);
    }
    // The facts are the live tables' facts: the literal form cannot change them.
    assert_eq!(artifact.tables, before.blake3_rows);
    assert_eq!(view_charset(&db.name).await, b"utf8mb4");

    // Escaped, not hex: the file is about as big as the values, not twice as big.
    let raw = awkward_bytes().len() + 256 + 4 + 1 + 1 + MIB + BIG + 8;
    assert!(
        bytes.windows(8).any(|w| w == b"_binary'"),
        "binary values are written as _binary'..' literals"
    );
    assert!(
        (bytes.len() as f64) < raw as f64 * 1.1,
        "the dump is {} bytes for {raw} bytes of binary values",
        bytes.len()
    );

    // The native restore gives the tables back exactly.
    drop_db(&db.name).await;
    let report = restore_quietly(&artifact).await.expect("native restore");
    assert_eq!(report.tables, before.blake3_rows);
    assert_eq!(snapshot(&db.name).await, before);
    assert_eq!(view_charset(&db.name).await, b"utf8mb4");

    // The stock client loads the same file to the same tables (a row over 16 MiB needs its
    // max_allowed_packet raised, as for any dump of such a row).
    recreate_db(&db.name).await;
    let out = client("mariadb")
        .arg("--max-allowed-packet=1G")
        .arg(&db.name)
        .stdin(std::fs::File::open(&artifact.file).unwrap())
        .stderr(Stdio::piped())
        .output()
        .expect("run the mariadb client (scripts/test installs mariadb-client)");
    assert!(
        out.status.success(),
        "mariadb client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(snapshot(&db.name).await, before);
    assert_eq!(view_charset(&db.name).await, b"utf8mb4");

    // A file of the earlier form (binary as X'..') still restores, to the same facts.
    let old_dir = out_dir();
    let old = as_hex_file(&artifact, old_dir.path());
    assert!(old.size_bytes > 2 * BIG as u64, "the rewritten file is hex");
    drop_db(&db.name).await;
    let report = restore_quietly(&old)
        .await
        .expect("restore of an X'..' file");
    assert_eq!(report.tables, before.blake3_rows);
    assert_eq!(snapshot(&db.name).await, before);
    assert_eq!(view_charset(&db.name).await, b"utf8mb4");
}
