//! Recovery from what a killed process leaves in a ledger folder.

mod support;

use oms_upgrade::ledger::{LedgerReader, verify_chain};

/// Regression (seen in the SIGKILL rounds of `upgrade_crash.rs`): a process killed while
/// sled 0.34 was writing a snapshot leaves an empty `snap.<lsn>.generating`, and sled then
/// refused to open the ledger ("Read corrupted data"). The ledger must open, verify, and
/// still hold every record.
#[test]
fn unfinished_sled_snapshot_left_by_a_kill_does_not_lock_the_ledger_out() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, hashes) = support::ledger_with_notes(tmp.path(), 4);
    // Exactly what the killed process left: an empty snapshot under a later LSN.
    std::fs::write(dir.join("snap.0000000000ffffff.generating"), b"").unwrap();

    let reader = LedgerReader::open(&dir).expect("the ledger opens despite the partial snapshot");
    let report = verify_chain(reader.view(), None).unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.records, 4);
    assert_eq!(
        reader.head().unwrap().unwrap().hash,
        *hashes.last().unwrap()
    );
    drop(reader);
    assert!(
        !dir.join("snap.0000000000ffffff.generating").exists(),
        "the unfinished snapshot is removed"
    );
}
