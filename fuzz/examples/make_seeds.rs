//! Writes the ledger seeds of the fuzz corpus from real ledgers, read through the public
//! API: each record's stored bytes (`ledger_record`), each payload with its type selector
//! (`event_decode`) and each whole ledger framed as `ledger_verify` and `ledger_replay`
//! read it. Event types no given ledger holds are added from `events::encode`, so every
//! decoder has a seed.
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --no-default-features --example make_seeds -- \
//!     fuzz/corpus LEDGER_DIR...
//! ```
//!
//! `docs/fuzzing.md` says how the committed ledgers were made (`oms-upgrade demo`, then a
//! note and a rollback).

use std::collections::BTreeSet;
use std::path::Path;

use chrono::DateTime;
use oms_upgrade::events::{self, Attestation, EVENT_TYPES, Event, Finding, StepKey};
use oms_upgrade::ledger::LedgerReader;

/// Writes `bytes` as `dir/<name>-<short BLAKE3>` (the same seed twice is one file).
fn write_seed(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("create the corpus folder");
    let hash = blake3::hash(bytes).to_hex();
    std::fs::write(dir.join(format!("{name}-{}", &hash[..12])), bytes).expect("write a seed");
}

/// The `event_decode` input for a payload: the type's index in `EVENT_TYPES`, then the bytes.
fn event_seed(event_type: &str, payload: &[u8]) -> Vec<u8> {
    let i = EVENT_TYPES
        .iter()
        .position(|(t, _)| *t == event_type)
        .unwrap_or_else(|| panic!("unknown event type {event_type}"));
    let mut v = vec![u8::try_from(i).expect("few event types")];
    v.extend_from_slice(payload);
    v
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [corpus, ledgers @ ..] = args.as_slice() else {
        panic!("usage: make_seeds CORPUS_DIR LEDGER_DIR...");
    };
    let corpus = Path::new(corpus);
    let mut seen_types = BTreeSet::new();
    for (n, dir) in ledgers.iter().enumerate() {
        let reader = LedgerReader::open(dir).unwrap_or_else(|e| panic!("{dir}: {e}"));
        let mut framed = Vec::new();
        for rec in reader.records() {
            let rec = rec.unwrap_or_else(|e| panic!("{dir}: {e}"));
            let name = format!("l{n}-{:03}-{}", rec.seq, rec.event_type);
            write_seed(&corpus.join("ledger_record"), &name, &rec.stored);
            let event = event_seed(&rec.event_type, &rec.payload);
            write_seed(&corpus.join("event_decode"), &name, &event);
            seen_types.insert(rec.event_type.clone());
            let len = u16::try_from(rec.stored.len()).expect("records fit the frame");
            framed.extend_from_slice(&len.to_be_bytes());
            framed.extend_from_slice(&rec.stored);
        }
        for target in ["ledger_verify", "ledger_replay"] {
            write_seed(&corpus.join(target), &format!("l{n}"), &framed);
        }
    }
    let t = DateTime::from_timestamp(1_764_230_400, 0).expect("a valid time");
    let extra = [
        Event::StepFailed {
            key: StepKey::RunDockerInit,
            error: "docker_init.sh exit code 1".into(),
            retryable: false,
            facts: None,
            kind: oms_upgrade::events::FailureKind::Service,
        },
        Event::StepReconciled {
            key: StepKey::PruneHeartbeat,
            finding: Finding::Failed {
                error: "cannot tell".into(),
                retryable: true,
                kind: oms_upgrade::events::FailureKind::Service,
            },
            evidence: "heatbeat_sequence unreadable".into(),
        },
        Event::StepReconciled {
            key: StepKey::StopOldContainer,
            finding: Finding::NotDone,
            evidence: "container running".into(),
        },
        Event::Attestation(Attestation {
            by: "dba on call".into(),
            statement: "HA disabled in the console".into(),
            step: Some(StepKey::DisableHa),
            observed_at: Some(t),
        }),
    ];
    for ev in extra {
        let enc = events::encode(&ev);
        if !seen_types.contains(enc.event_type) {
            let seed = event_seed(enc.event_type, &enc.payload);
            write_seed(
                &corpus.join("event_decode"),
                &format!("x-{}", enc.event_type),
                &seed,
            );
        }
    }
}
