//! The ledger under attack and accident.
//!
//! - Tamper matrix: each change is made through sled's own API after the writer is gone
//!   (so sled's CRCs stay valid and only our hash chain can notice), and each must be
//!   reported with the right first bad seq and kind by the library, by `oms-upgrade ledger
//!   verify --json`, and by the independent Python verifier on the binary's export.
//! - Crash safety: a child process appending as fast as it can is SIGKILLed at random
//!   moments; every append that returned to it must survive, and the chain must verify.
//! - Concurrency: two writers (threads and processes) on one ledger: exactly one proceeds.
//!
//! Child processes are this test binary re-executed with an environment variable naming
//! the role (see `crash_child` and `writer_child`).

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use oms_upgrade::events::{self, Event, EventDecoder};
use oms_upgrade::ledger::record::{self, HASH_LEN};
use oms_upgrade::ledger::{Anchor, Hash, Ledger, LedgerError, LedgerReader, NewRecord, verify};
use rand::Rng;
use uuid::Uuid;

/// sled settings of a ledger (RECORD.md: segment size 8 MiB); needed to open it directly.
const SEGMENT_SIZE: usize = 8 * 1024 * 1024;

const RUN: Uuid = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);

fn python() -> String {
    std::env::var("OMS_TEST_PYTHON").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/pyenv/bin/python").to_string()
    })
}

fn verifier_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("ledger-schema/verify_export.py")
}

/// Appends `n` `note` events (real vocabulary, so payloads decode) and returns their hashes.
fn append_notes(dir: &Path, n: u64, tag: &str) -> Vec<Hash> {
    let mut ledger = Ledger::open_writer(dir).expect("open the writer");
    (0..n)
        .map(|i| {
            let enc = events::encode(&Event::Note {
                text: format!("{tag} note {i}"),
            });
            let r = ledger
                .append(NewRecord {
                    timestamp_micros: 1_764_064_800_000_000 + i as i64,
                    operator: "alice",
                    host: "oms-node-1",
                    run_id: RUN,
                    event_type: enc.event_type,
                    schema_version: enc.schema_version,
                    payload: &enc.payload,
                })
                .expect("append");
            r.hash
        })
        .collect()
}

fn raw_db(dir: &Path) -> sled::Db {
    // sled locks its data file; a child forked by another test of this binary holds the
    // lock for a moment (until its exec closes the inherited descriptor), as the ledger's
    // own open allows for with a grace period. Do the same here.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match sled::Config::new()
            .path(dir)
            .segment_size(SEGMENT_SIZE)
            .open()
        {
            Ok(db) => return db,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => panic!("open the ledger's sled database directly: {e}"),
        }
    }
}

/// Changes the ledger through sled's own API (the writer must be closed).
fn tamper(dir: &Path, f: impl FnOnce(&sled::Tree)) {
    let db = raw_db(dir);
    let records = db.open_tree("records").unwrap();
    f(&records);
    db.flush().unwrap();
}

fn key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

fn get(t: &sled::Tree, seq: u64) -> Vec<u8> {
    t.get(key(seq)).unwrap().expect("record exists").to_vec()
}

fn fresh(n: u64) -> (tempfile::TempDir, PathBuf, Vec<Hash>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    let hashes = append_notes(&dir, n, "base");
    (tmp, dir, hashes)
}

type Verdict = Option<(u64, String)>;

fn lib_verdict(dir: &Path, anchor: Option<&Anchor>) -> Verdict {
    let reader = LedgerReader::open(dir).unwrap();
    let report = verify(reader.view(), anchor, &EventDecoder).unwrap();
    report.problem.map(|p| (p.seq, p.kind.as_str().to_string()))
}

fn json_verdict(v: &serde_json::Value) -> Verdict {
    let p = &v["problem"];
    if p.is_null() {
        assert_eq!(v["ok"], true, "{v}");
        None
    } else {
        assert_eq!(v["ok"], false, "{v}");
        Some((
            p["seq"].as_u64().unwrap(),
            p["kind"].as_str().unwrap().into(),
        ))
    }
}

fn cli_verdict(dir: &Path, anchor: Option<&Path>, extra: &[&str]) -> Verdict {
    let mut cmd = assert_cmd::cargo::cargo_bin_cmd!("oms-upgrade");
    cmd.env_remove("OMS_UPGRADE_LEDGER")
        .args(["ledger", "verify", "--json", "--ledger"])
        .arg(dir)
        .args(extra);
    if let Some(a) = anchor {
        cmd.arg("--anchor").arg(a);
    }
    let out = cmd.output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify --json printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let verdict = json_verdict(&v);
    let expected_code = if verdict.is_none() { 0 } else { 3 };
    assert_eq!(out.status.code(), Some(expected_code), "{v}");
    assert_eq!(v["exit_code"], expected_code);
    verdict
}

/// Exports with the binary, then checks the export with the Python verifier.
fn python_verdict(dir: &Path, anchor: Option<&Path>, extra: &[&str]) -> Verdict {
    let export = dir.with_extension("export.jsonl");
    assert_cmd::cargo::cargo_bin_cmd!("oms-upgrade")
        .env_remove("OMS_UPGRADE_LEDGER")
        .args(["ledger", "export", "--ledger"])
        .arg(dir)
        .arg("--out")
        .arg(&export)
        .assert()
        .success();
    python_on_export(&export, anchor, extra)
}

fn python_on_export(export: &Path, anchor: Option<&Path>, extra: &[&str]) -> Verdict {
    let mut cmd = Command::new(python());
    cmd.arg(verifier_script())
        .arg(export)
        .arg("--json")
        .args(extra);
    if let Some(a) = anchor {
        cmd.arg("--anchor").arg(a);
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!(
            "cannot run the Python verifier with {} ({e}); `scripts/test` sets up the venv \
             (or set OMS_TEST_PYTHON)",
            python()
        )
    });
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify_export.py printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let verdict = json_verdict(&v);
    assert_eq!(
        out.status.code(),
        Some(if verdict.is_none() { 0 } else { 3 }),
        "{v}"
    );
    verdict
}

/// The library, the CLI and the Python verifier all give `expected`.
fn assert_verdict(dir: &Path, anchor: Option<&Path>, expected: Option<(u64, &str)>) {
    let expected: Verdict = expected.map(|(s, k)| (s, k.to_string()));
    let parsed = anchor.map(|a| Anchor::read_file(a).unwrap());
    assert_eq!(lib_verdict(dir, parsed.as_ref()), expected, "library");
    assert_eq!(
        cli_verdict(dir, anchor, &[]),
        expected,
        "oms-upgrade ledger verify"
    );
    assert_eq!(
        python_verdict(dir, anchor, &[]),
        expected,
        "verify_export.py"
    );
}

fn checkpoint(dir: &Path, out: &Path) {
    assert_cmd::cargo::cargo_bin_cmd!("oms-upgrade")
        .env_remove("OMS_UPGRADE_LEDGER")
        .args(["ledger", "checkpoint", "--ledger"])
        .arg(dir)
        .arg("--out")
        .arg(out)
        .assert()
        .success();
}

use support::copy_dir;

// ---------------------------------------------------------------------------------------
// Tamper matrix.

#[test]
fn intact_ledger_verifies_everywhere() {
    let (_t, dir, hashes) = fresh(6);
    assert_verdict(&dir, None, None);
    let reader = LedgerReader::open(&dir).unwrap();
    let report = verify(reader.view(), None, &EventDecoder).unwrap();
    assert_eq!(report.records, 6);
    assert_eq!(report.head, Some((6, hashes[5])));
}

#[test]
fn every_single_byte_change_in_every_record_is_caught_at_that_record() {
    let (_t, dir, _) = fresh(4);
    let originals: Vec<Vec<u8>> = {
        let db = raw_db(&dir);
        let t = db.open_tree("records").unwrap();
        (1..=4).map(|s| get(&t, s)).collect()
    };
    // Every byte of every record, checked by the library's pure core over the same
    // (key, value) pairs sled would hand it; then a byte per field through sled itself.
    let id = LedgerReader::open(&dir).unwrap().ledger_id();
    for (i, original) in originals.iter().enumerate() {
        for pos in 0..original.len() {
            let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = originals
                .iter()
                .enumerate()
                .map(|(j, v)| (key(j as u64 + 1).to_vec(), v.clone()))
                .collect();
            pairs[i].1[pos] ^= 0x01;
            let report = oms_upgrade::ledger::verify_pairs(id, pairs, None, Some(&EventDecoder));
            let p = report.problem.expect("a flipped byte is detected");
            assert_eq!(p.seq, i as u64 + 1, "byte {pos} of record {}: {p:?}", i + 1);
        }
    }
    let len = originals[2].len();
    let cases: &[(usize, &str)] = &[
        (2, "malformed_record"),               // magic
        (5, "unknown_format_version"),         // format version
        (10, "hash_mismatch"),                 // seq
        (20, "hash_mismatch"),                 // ledger id
        (40, "hash_mismatch"),                 // prev hash
        (65, "hash_mismatch"),                 // timestamp
        (75, "hash_mismatch"),                 // run id
        (88, "hash_mismatch"),                 // operator text
        (len - HASH_LEN - 1, "hash_mismatch"), // payload
        (len - 1, "hash_mismatch"),            // stored hash
    ];
    for &(pos, kind) in cases {
        tamper(&dir, |t| {
            let mut v = originals[2].clone();
            v[pos] ^= 0x01;
            t.insert(key(3), v).unwrap();
        });
        assert_verdict(&dir, None, Some((3, kind)));
    }
    // Restored, it verifies again: the verdicts above came from the change, not the rig.
    tamper(&dir, |t| {
        t.insert(key(3), originals[2].clone()).unwrap();
    });
    assert_verdict(&dir, None, None);
}

#[test]
fn a_changed_first_or_last_record_is_caught_and_the_writer_refuses_a_damaged_head() {
    let (_t, dir, _) = fresh(5);
    tamper(&dir, |t| {
        let mut v = get(t, 5);
        v[70] ^= 0xff;
        t.insert(key(5), v).unwrap();
    });
    assert_verdict(&dir, None, Some((5, "hash_mismatch")));
    match Ledger::open_writer(&dir) {
        Err(LedgerError::DamagedHead { seq: 5, .. }) => {}
        other => panic!("expected DamagedHead at 5, got {other:?}"),
    }
    let (_t, dir, _) = fresh(5);
    tamper(&dir, |t| {
        let mut v = get(t, 1);
        v[64] ^= 0x80;
        t.insert(key(1), v).unwrap();
    });
    assert_verdict(&dir, None, Some((1, "hash_mismatch")));
}

#[test]
fn a_deleted_record_is_a_gap_at_its_seq() {
    let (_t, dir, _) = fresh(6);
    tamper(&dir, |t| {
        t.remove(key(4)).unwrap();
    });
    assert_verdict(&dir, None, Some((4, "gap")));
    let (_t, dir, _) = fresh(3);
    tamper(&dir, |t| {
        t.remove(key(1)).unwrap();
    });
    assert_verdict(&dir, None, Some((1, "gap")));
}

#[test]
fn swapped_records_are_reordered_at_the_lower_seq() {
    let (_t, dir, _) = fresh(7);
    tamper(&dir, |t| {
        let (a, b) = (get(t, 3), get(t, 6));
        t.insert(key(3), b).unwrap();
        t.insert(key(6), a).unwrap();
    });
    assert_verdict(&dir, None, Some((3, "reordered")));
}

#[test]
fn a_cut_tail_is_caught_only_with_an_anchor() {
    let (t, dir, _) = fresh(8);
    let anchor = t.path().join("checkpoint.txt");
    checkpoint(&dir, &anchor);
    assert_verdict(&dir, Some(&anchor), None);
    tamper(&dir, |t| {
        for s in 6..=8 {
            t.remove(key(s)).unwrap();
        }
    });
    // Without the anchor, a cut tail is a shorter but consistent chain.
    assert_verdict(&dir, None, None);
    assert_verdict(&dir, Some(&anchor), Some((6, "tail_shorter_than_anchor")));
}

#[test]
fn a_ledger_replaced_by_an_older_copy_is_caught_with_an_anchor() {
    let (t, dir, _) = fresh(5);
    let old = t.path().join("old-copy");
    copy_dir(&dir, &old);
    append_notes(&dir, 3, "later");
    let anchor = t.path().join("checkpoint.txt");
    checkpoint(&dir, &anchor);
    assert_verdict(&dir, Some(&anchor), None);

    // The older copy put back in place of the ledger.
    let swapped = t.path().join("swapped");
    copy_dir(&old, &swapped);
    assert_verdict(&swapped, None, None);
    assert_verdict(
        &swapped,
        Some(&anchor),
        Some((6, "tail_shorter_than_anchor")),
    );

    // The older copy grown to the same length with a different history.
    let forked = t.path().join("forked");
    copy_dir(&old, &forked);
    append_notes(&forked, 3, "forked");
    assert_verdict(&forked, None, None);
    assert_verdict(&forked, Some(&anchor), Some((8, "head_mismatch_anchor")));

    // A checkpoint of another ledger.
    let (_t2, other, _) = fresh(8);
    assert_verdict(&other, Some(&anchor), Some((1, "anchor_ledger_mismatch")));
}

#[test]
fn a_record_appended_by_a_tool_that_does_not_know_the_hash_rule_is_caught() {
    let (_t, dir, hashes) = fresh(4);
    let id = LedgerReader::open(&dir).unwrap().ledger_id();
    let enc = events::encode(&Event::Note {
        text: "forged".into(),
    });
    let new = NewRecord {
        timestamp_micros: 1_764_064_900_000_000,
        operator: "mallory",
        host: "elsewhere",
        run_id: RUN,
        event_type: enc.event_type,
        schema_version: enc.schema_version,
        payload: &enc.payload,
    };
    // The layout and the link are right; the hash is plain BLAKE3, without the context.
    let (mut forged, _) = record::encode(5, id, hashes[3], &new).unwrap();
    let body_len = forged.len() - HASH_LEN;
    let plain = blake3::hash(&forged[..body_len]);
    forged[body_len..].copy_from_slice(plain.as_bytes());
    tamper(&dir, |t| {
        t.insert(key(5), forged.clone()).unwrap();
    });
    assert_verdict(&dir, None, Some((5, "hash_mismatch")));

    // A tool that copies the last record under the next key.
    let (_t, dir, _) = fresh(4);
    tamper(&dir, |t| {
        let last = get(t, 4);
        t.insert(key(5), last).unwrap();
    });
    assert_verdict(&dir, None, Some((5, "reordered")));

    // A valid record of another ledger, spliced in at the same position.
    let (_t, dir, _) = fresh(3);
    let (_t2, other, _) = fresh(3);
    let foreign = {
        let db = raw_db(&other);
        get(&db.open_tree("records").unwrap(), 1)
    };
    tamper(&dir, |t| {
        t.insert(key(1), foreign.clone()).unwrap();
    });
    assert_verdict(&dir, None, Some((1, "wrong_ledger_id")));
}

#[test]
fn a_payload_outside_the_vocabulary_is_undecodable_unless_chain_only() {
    let (_t, dir, _) = fresh(2);
    {
        let mut l = Ledger::open_writer(&dir).unwrap();
        l.append(NewRecord {
            timestamp_micros: 0,
            operator: "alice",
            host: "h",
            run_id: RUN,
            event_type: "test.not-in-the-vocabulary",
            schema_version: 1,
            payload: b"\x00",
        })
        .unwrap();
    }
    append_notes(&dir, 1, "after");
    assert_verdict(&dir, None, Some((3, "undecodable_payload")));
    assert_eq!(cli_verdict(&dir, None, &["--chain-only"]), None);
    assert_eq!(python_verdict(&dir, None, &["--chain-only"]), None);
}

/// issue 13: a dump recorded with a compression this version does not know (a newer
/// version's, or a changed record whose chain was rebuilt) is not read as "none": the
/// record is undecodable, and the report names its seq and the word.
#[test]
fn a_dump_word_this_version_does_not_know_is_undecodable_at_its_seq() {
    use oms_upgrade::events::v1::{DumpArtifactV1, StepDoneV1, StepFactsV1};
    use oms_upgrade::events::{
        ChecksumMethod, Compression, DumpArtifact, Dumper, FileFormat, MetaDb, StepKey, TableFact,
    };
    let (_t, dir, _) = fresh(2);
    let artifact = DumpArtifact {
        db: MetaDb::Rm,
        database: "oms_rm".into(),
        file: "/var/backups/oms/run/oms_rm.sql".into(),
        size: 4096,
        blake3_hex: "ab".repeat(32),
        format: FileFormat::Sql,
        compression: Compression::None,
        dumper: Dumper::Native,
        charset: "utf8mb4".into(),
        collation: "utf8mb4_bin".into(),
        tables: vec![TableFact {
            name: "t".into(),
            rows: 3,
            checksum: "cd".repeat(32),
            method: ChecksumMethod::Blake3Rows,
        }],
        views: vec![],
    };
    let mut stored = DumpArtifactV1::from(&artifact);
    stored.compression = "lz4".into();
    let payload = bincode::serde::encode_to_vec(
        StepDoneV1 {
            key: StepKey::Dump { db: MetaDb::Rm }.into(),
            facts: StepFactsV1::DumpWritten(stored),
        },
        bincode::config::standard(),
    )
    .unwrap();
    {
        let mut l = Ledger::open_writer(&dir).unwrap();
        l.append(NewRecord {
            timestamp_micros: 1_764_064_900_000_000,
            operator: "alice",
            host: "h",
            run_id: RUN,
            event_type: events::types::STEP_DONE,
            schema_version: 1,
            payload: &payload,
        })
        .unwrap();
    }
    let problem = {
        let reader = LedgerReader::open(&dir).unwrap();
        verify(reader.view(), None, &EventDecoder)
            .unwrap()
            .problem
            .expect("the record does not decode")
    };
    assert_eq!(
        (problem.seq, problem.kind.as_str()),
        (3, "undecodable_payload")
    );
    assert!(
        problem.detail.contains("dump compression `lz4`") && problem.detail.contains("oms_rm"),
        "{}",
        problem.detail
    );
    assert_verdict(&dir, None, Some((3, "undecodable_payload")));
}

#[test]
fn python_verifier_catches_an_export_edited_after_the_fact() {
    let (t, dir, _) = fresh(4);
    let export = t.path().join("export.jsonl");
    assert_cmd::cargo::cargo_bin_cmd!("oms-upgrade")
        .args(["ledger", "export", "--ledger"])
        .arg(&dir)
        .arg("--out")
        .arg(&export)
        .assert()
        .success();
    let text = std::fs::read_to_string(&export).unwrap();
    assert_eq!(python_on_export(&export, None, &[]), None);
    let mut lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    // A byte of record 2 changed, the base64 re-encoded and the convenience fields kept.
    let mut stored = b64.decode(lines[2]["stored"].as_str().unwrap()).unwrap();
    stored[100] ^= 1;
    lines[2]["stored"] = b64.encode(&stored).into();
    let edited = t.path().join("edited.jsonl");
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&edited, body).unwrap();
    assert_eq!(
        python_on_export(&edited, None, &[]),
        Some((2, "hash_mismatch".into()))
    );
    // A line dropped from the export.
    let dropped: String = text
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != 3)
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    std::fs::write(&edited, dropped).unwrap();
    assert_eq!(
        python_on_export(&edited, None, &[]),
        Some((3, "gap".into()))
    );
}

// ---------------------------------------------------------------------------------------
// Crash safety.

const CRASH_CHILD_ENV: &str = "OMS_LEDGER_TEST_CRASH_CHILD";

/// Child role: appends notes as fast as it can into the ledger named by the environment,
/// printing `APPENDED <seq> <hash>` after each append has returned. Does nothing as a
/// normal test.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CRASH_CHILD_ENV) else {
        return;
    };
    let mut ledger = Ledger::open_writer(&dir).expect("child: open the writer");
    let mut out = std::io::stdout().lock();
    for i in 0u64.. {
        let enc = events::encode(&Event::Note {
            text: format!("crash test append {i}"),
        });
        let r = ledger
            .append(NewRecord {
                timestamp_micros: i as i64,
                operator: "crash",
                host: "child",
                run_id: RUN,
                event_type: enc.event_type,
                schema_version: enc.schema_version,
                payload: &enc.payload,
            })
            .expect("child: append");
        // One write per line, well under PIPE_BUF: the parent never sees half a line.
        out.write_all(format!("APPENDED {} {}\n", r.seq, r.hash).as_bytes())
            .unwrap();
        out.flush().unwrap();
    }
}

fn child(role_env: &str, name: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(role_env, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    cmd
}

#[test]
fn appends_that_returned_survive_sigkill_at_random_moments() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    let mut rng = rand::rng();
    let mut confirmed: Vec<(u64, String)> = Vec::new();
    let rounds = 25;
    for round in 0..rounds {
        let mut proc = child(CRASH_CHILD_ENV, "crash_child", &dir).spawn().unwrap();
        let stdout = proc.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| {
                    // libtest may print "test crash_child ... " on the same line.
                    let rest = &l[l.find("APPENDED ")? + "APPENDED ".len()..];
                    let (seq, hash) = rest.split_once(' ')?;
                    Some((seq.parse::<u64>().ok()?, hash.to_string()))
                })
                .collect::<Vec<_>>()
        });
        // Anywhere from before the ledger is open to well into a burst of appends.
        std::thread::sleep(Duration::from_millis(rng.random_range(0..400)));
        proc.kill().unwrap(); // SIGKILL
        proc.wait().unwrap();
        let reported = reader.join().unwrap();
        confirmed.extend(reported);

        let reader = match LedgerReader::open(&dir) {
            Ok(r) => r,
            // Killed while creating the ledger: nothing can have been confirmed yet, and the
            // next writer starts the creation over.
            Err(LedgerError::NotALedger { reason, .. })
                if reason.contains("creation was interrupted") && confirmed.is_empty() =>
            {
                continue;
            }
            Err(e) => panic!("round {round}: the ledger does not reopen: {e}"),
        };
        let report = verify(reader.view(), None, &EventDecoder).unwrap();
        assert!(report.is_ok(), "round {round}: {:?}", report.problem);
        let stored: std::collections::HashMap<u64, String> = reader
            .records()
            .map(|r| {
                let r = r.unwrap();
                (r.seq, r.hash.to_hex())
            })
            .collect();
        for (seq, hash) in &confirmed {
            assert_eq!(
                stored.get(seq),
                Some(hash),
                "round {round}: seq {seq} was confirmed to the child but is not stored"
            );
        }
    }
    eprintln!("{} appends confirmed over {rounds} rounds", confirmed.len());
    // The rounds did real work: appends were confirmed and then killed mid-stream.
    assert!(
        confirmed.len() as u64 >= rounds / 2,
        "only {} appends confirmed over {rounds} rounds",
        confirmed.len()
    );
}

// ---------------------------------------------------------------------------------------
// Concurrency.

#[test]
fn two_writer_threads_exactly_one_proceeds() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    let barrier = std::sync::Barrier::new(2);
    let (a, b) = std::thread::scope(|s| {
        let open = || {
            barrier.wait();
            Ledger::open_writer(&dir)
        };
        let a = s.spawn(open);
        let b = s.spawn(open);
        (a.join().unwrap(), b.join().unwrap())
    });
    let (mut winner, loser) = match (a, b) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
        (a, b) => panic!("expected exactly one writer, got {a:?} and {b:?}"),
    };
    assert!(matches!(loser, LedgerError::Busy { .. }), "{loser:?}");
    let msg = loser.to_string();
    assert!(msg.contains(&dir.display().to_string()), "{msg}");
    assert!(msg.contains("held by another run"), "{msg}");
    let enc = events::encode(&Event::Note { text: "x".into() });
    winner
        .append(NewRecord {
            timestamp_micros: 0,
            operator: "a",
            host: "h",
            run_id: RUN,
            event_type: enc.event_type,
            schema_version: enc.schema_version,
            payload: &enc.payload,
        })
        .unwrap();
    drop(winner);
    assert_verdict(&dir, None, None);
}

const WRITER_CHILD_ENV: &str = "OMS_LEDGER_TEST_WRITER_CHILD";

/// Child role: opens the writer; prints `BUSY <message>` and exits if it cannot, else
/// appends 20 notes, prints `ACQUIRED` and holds the ledger until a `release` file appears
/// next to it. Does nothing as a normal test.
#[test]
fn writer_child() {
    let Ok(dir) = std::env::var(WRITER_CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    match Ledger::open_writer(&dir) {
        Err(e) => println!("BUSY {e}"),
        Ok(ledger) => append_and_hold(ledger, &dir),
    }
}

fn append_and_hold(mut ledger: Ledger, dir: &Path) {
    for i in 0..20 {
        let enc = events::encode(&Event::Note {
            text: format!("writer child {i}"),
        });
        ledger
            .append(NewRecord {
                timestamp_micros: i,
                operator: "w",
                host: "h",
                run_id: RUN,
                event_type: enc.event_type,
                schema_version: enc.schema_version,
                payload: &enc.payload,
            })
            .unwrap();
    }
    println!("ACQUIRED {}", std::process::id());
    let release = dir.with_extension("release");
    while !release.exists() {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Lets the writer children go and waits for them; also on drop (a failing assertion).
struct Release {
    file: PathBuf,
    children: Vec<std::process::Child>,
}

impl Release {
    fn release(&mut self) {
        std::fs::write(&self.file, "").unwrap();
        for mut c in self.children.drain(..) {
            c.wait().unwrap();
        }
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.file, "");
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn two_writer_processes_exactly_one_proceeds_and_readers_are_told_why_not() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    let spawn = || {
        let mut p = child(WRITER_CHILD_ENV, "writer_child", &dir)
            .spawn()
            .unwrap();
        let out = BufReader::new(p.stdout.take().unwrap());
        (p, out)
    };
    let first_line = |out: &mut BufReader<std::process::ChildStdout>| loop {
        let mut l = String::new();
        assert!(out.read_line(&mut l).unwrap() > 0, "child ended silently");
        // libtest may print "test writer_child ... " on the same line.
        if let Some(at) = l.find("BUSY ").or_else(|| l.find("ACQUIRED ")) {
            return l[at..].trim().to_string();
        }
    };
    let (p1, mut o1) = spawn();
    let (p2, mut o2) = spawn();
    // Released (and reaped) even when an assertion below fails, so no child outlives us.
    let mut guard = Release {
        file: dir.with_extension("release"),
        children: vec![p1, p2],
    };
    let (l1, l2) = (first_line(&mut o1), first_line(&mut o2));
    let (acquired, busy) = match (l1.starts_with("ACQUIRED"), l2.starts_with("ACQUIRED")) {
        (true, false) => (l1, l2),
        (false, true) => (l2, l1),
        _ => panic!("expected exactly one writer: {l1:?} / {l2:?}"),
    };
    assert!(busy.contains(&dir.display().to_string()), "{busy}");
    assert!(busy.contains("held by another run"), "{busy}");
    let holder_pid = acquired.trim_start_matches("ACQUIRED ");
    assert!(busy.contains(&format!("pid {holder_pid}")), "{busy}");

    // While the writer runs, a command that needs the ledger to itself says why it cannot
    // open it; `ledger verify` reads a verified copy instead and says so (issue 14).
    let out = assert_cmd::cargo::cargo_bin_cmd!("oms-upgrade")
        .args(["ledger", "export", "--ledger"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("held by another run"), "{err}");
    assert!(err.contains("read-only"), "{err}");
    let out = assert_cmd::cargo::cargo_bin_cmd!("oms-upgrade")
        .args(["ledger", "verify", "--ledger"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("live read as of seq"), "{text}");
    assert!(text.contains(&format!("pid {holder_pid}")), "{text}");

    guard.release();
    let reader = LedgerReader::open(&dir).unwrap();
    let report = verify(reader.view(), None, &EventDecoder).unwrap();
    assert!(report.is_ok(), "{:?}", report.problem);
    assert_eq!(report.records, 20);
}

#[test]
fn an_interrupted_creation_is_reported_and_started_over() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    // What a kill between sled writing its `conf` and the ledger id being durable leaves.
    std::fs::create_dir_all(dir.join("blobs")).unwrap();
    std::fs::write(dir.join("conf"), b"half a config").unwrap();
    std::fs::write(dir.join("oms-upgrade.creating"), b"").unwrap();
    match LedgerReader::open(&dir) {
        Err(LedgerError::NotALedger { reason, .. }) => {
            assert!(reason.contains("creation was interrupted"), "{reason}")
        }
        other => panic!("expected NotALedger, got {other:?}"),
    }
    assert!(matches!(
        Ledger::open_existing_writer(&dir),
        Err(LedgerError::NotALedger { .. })
    ));
    append_notes(&dir, 2, "after restart");
    assert!(!dir.join("oms-upgrade.creating").exists());
    assert_verdict(&dir, None, None);
}
