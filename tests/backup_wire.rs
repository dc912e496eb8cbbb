//! The native dumper's wire client (issue 16): its dumps are byte-identical to mysql_async's,
//! also for a row larger than one 16 MiB packet, and a target it cannot serve (another auth
//! plugin, TLS) is refused by it, typed, so Auto falls back to mysql_async: the TLS case
//! runs in tests/metadb_tls.rs (a native `backup` over TLS: the workers fall back); the
//! auth-plugin switch is unit-tested in `dump::wire::packet` (an ed25519 user cannot be
//! used end to end: mysql_async, which the coordinator connection uses, panics on it).
//! `DumpOptions::wire` forces either path.

mod backup_helpers;
mod support;

use backup_helpers::*;
use mysql_async::prelude::Queryable;
use oms_upgrade::dump::{DumpOptions, WireUse};

fn opts(wire: WireUse, max_statement_bytes: usize) -> DumpOptions {
    DumpOptions {
        jobs: 2,
        wire,
        max_statement_bytes,
        ..DumpOptions::default()
    }
}

/// Dumps `db` with the wire client and with mysql_async; asserts equal bytes and facts.
async fn same_both_ways(db: &str, max_statement_bytes: usize) -> Vec<u8> {
    let (a, b) = (out_dir(), out_dir());
    let wire = dump_with(db, a.path(), &opts(WireUse::Only, max_statement_bytes)).await;
    let driver = dump_with(db, b.path(), &opts(WireUse::Never, max_statement_bytes)).await;
    let bytes = std::fs::read(&wire.file).unwrap();
    assert!(
        bytes == std::fs::read(&driver.file).unwrap(),
        "the wire client's dump differs from mysql_async's"
    );
    assert_eq!(wire.tables, driver.tables);
    assert_eq!(wire.blake3_hex, driver.blake3_hex);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wire_and_mysql_async_dump_the_awkward_types_to_the_same_bytes() {
    let db = support::TestDb::create("bk_wire").await;
    load_fixture(&db.name).await;
    // NULL vs '', 0x00 bytes, BIT, FLOAT, JSON, emoji: all in the fixture.
    same_both_ways(&db.name, 1 << 20).await;
    same_both_ways(&db.name, 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_over_16_mib_dumps_the_same_over_the_wire() {
    const BIG: usize = 17 << 20;
    // The row must fit the server's max_allowed_packet to be inserted at all (and read
    // back).
    allow_big_packets().await;
    let db = support::TestDb::create("bk_wire_big").await;
    exec(
        &db.name,
        // Two tables: one table would take the one-connection path, which is mysql_async's.
        "CREATE TABLE t (id INT PRIMARY KEY, b LONGBLOB, s LONGTEXT); \
         CREATE TABLE u (id INT PRIMARY KEY); INSERT INTO u VALUES (1), (2)",
    )
    .await;
    let mut c = conn(Some(&db.name)).await;
    // Bytes of every value (0x00 and 0xFE included), repeated past one packet; a row of
    // exactly one packet's payload and small rows around them reuse the same buffers.
    let blob: Vec<u8> = (0..BIG).map(|i| (i * 7 % 256) as u8).collect();
    c.exec_drop(
        "INSERT INTO t VALUES (1, 'a', NULL), (2, ?, 'x'), (4, '', '')",
        (blob,),
    )
    .await
    .expect("insert the big row");
    // A row whose payload is exactly 0xFFFFFF bytes: 1 (id) + 1 (NULL) + 4 + len.
    let exact = 0xFF_FFFF - 2 - 4 - 1;
    c.exec_drop(
        "INSERT INTO t VALUES (3, NULL, REPEAT('y', ?))",
        (exact as u64,),
    )
    .await
    .expect("insert the packet-sized row");
    c.disconnect().await.ok();
    let bytes = same_both_ways(&db.name, 1 << 20).await;
    // The blob is in the dump as an escaped `_binary'..'` literal, not as hex (twice the
    // bytes): 6 of its 256 byte values take two bytes; the text row adds 16 MiB.
    assert!(
        bytes.len() > BIG && bytes.len() < BIG + BIG / 16 + (17 << 20),
        "the blob is in the dump escaped: {} bytes",
        bytes.len()
    );
    assert!(bytes.windows(8).any(|w| w == b"_binary'"));
}
