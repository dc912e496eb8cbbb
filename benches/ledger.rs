//! Ledger benchmarks; prints a table (run with `cargo bench --bench ledger`).
//!
//! 1. Durable append: latency (median, p99) and throughput of `Ledger::append` (sled
//!    insert + flush + fdatasync), against appending the same bytes to a plain file with
//!    `fdatasync` after each write. Goal: within 2x of the baseline.
//! 2. Verify: `verify_chain` (and `verify` with the event decoder) over a ledger of one
//!    million records, in records/s and MB/s of stored bytes, against BLAKE3 over the same
//!    bytes in memory: per record in derive-key mode (the same hashing work verify must do)
//!    and as one contiguous buffer (BLAKE3's best case). Goal: within 3x.
//!
//! The big ledger is built with `Ledger::append_batch` (10,000 records per durable batch):
//! fewer fsyncs, same bytes. Environment: `OMS_BENCH_DIR` (default: a temp folder under the
//! target directory, i.e. on the same disk as the build, not tmpfs), `OMS_BENCH_APPENDS`
//! (default 2000), `OMS_BENCH_RECORDS` (default 1,000,000).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use oms_upgrade::events::{self, Event, EventDecoder};
use oms_upgrade::ledger::record::{HASH_LEN, RecordHasher};
use oms_upgrade::ledger::{Ledger, LedgerReader, NewRecord, verify, verify_chain};
use uuid::Uuid;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn bench_root() -> tempfile::TempDir {
    let base = std::env::var_os("OMS_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    std::fs::create_dir_all(&base).unwrap();
    tempfile::Builder::new()
        .prefix("ledger-bench-")
        .tempdir_in(base)
        .unwrap()
}

/// A payload of realistic size: a step intent carries names, paths and ids, ~150 bytes.
fn payload(i: usize) -> events::Encoded {
    events::encode(&Event::Note {
        text: format!(
            "step stop_old_container intent {i:08}: container oms-3.3.0 image \
             reg.example/oms:3.3.0-ce binds /data/oms/logs,/data/oms/store"
        ),
    })
}

fn new_record(enc: &events::Encoded, i: usize) -> NewRecord<'_> {
    NewRecord {
        timestamp_micros: 1_795_600_800_000_000 + i as i64,
        operator: "alice",
        host: "oms-node-1",
        run_id: Uuid::from_u128(0xbe7c4),
        event_type: enc.event_type,
        schema_version: enc.schema_version,
        payload: &enc.payload,
    }
}

struct Lat {
    median: Duration,
    p99: Duration,
    per_sec: f64,
}

fn summarize(mut samples: Vec<Duration>, total: Duration) -> Lat {
    samples.sort();
    let n = samples.len();
    Lat {
        median: samples[n / 2],
        p99: samples[(n * 99 / 100).min(n - 1)],
        per_sec: n as f64 / total.as_secs_f64(),
    }
}

fn us(d: Duration) -> String {
    format!("{:.0} us", d.as_secs_f64() * 1e6)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without
    // it, and must not spend a minute building a million records.
    if !std::env::args().any(|a| a == "--bench") {
        println!("ledger bench: run with `cargo bench --bench ledger`");
        return;
    }
    let root = bench_root();
    let appends = env_usize("OMS_BENCH_APPENDS", 2000);
    let records = env_usize("OMS_BENCH_RECORDS", 1_000_000);
    println!("ledger benchmarks in {}", root.path().display());

    // --- 1. durable append vs write + fdatasync -----------------------------------------
    let dir = root.path().join("append");
    let mut ledger = Ledger::open_writer(&dir).unwrap();
    let mut samples = Vec::with_capacity(appends);
    let mut stored = Vec::with_capacity(appends);
    let start = Instant::now();
    for i in 0..appends {
        let enc = payload(i);
        let t = Instant::now();
        let r = ledger.append(new_record(&enc, i)).unwrap();
        samples.push(t.elapsed());
        stored.push(r.stored);
    }
    let ledger_lat = summarize(samples, start.elapsed());
    drop(ledger);
    let record_len = stored.iter().map(Vec::len).sum::<usize>() / stored.len();

    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.path().join("baseline.log"))
        .unwrap();
    let mut samples = Vec::with_capacity(appends);
    let start = Instant::now();
    for bytes in &stored {
        let t = Instant::now();
        file.write_all(bytes).unwrap();
        file.sync_data().unwrap();
        samples.push(t.elapsed());
    }
    let file_lat = summarize(samples, start.elapsed());

    println!();
    println!("durable append, {appends} records of ~{record_len} bytes");
    println!(
        "{:<36} {:>10} {:>10} {:>12}",
        "", "median", "p99", "appends/s"
    );
    for (name, l) in [
        ("ledger append (sled flush+fdatasync)", &ledger_lat),
        ("plain file write + fdatasync", &file_lat),
    ] {
        println!(
            "{:<36} {:>10} {:>10} {:>12.0}",
            name,
            us(l.median),
            us(l.p99),
            l.per_sec
        );
    }
    println!(
        "ratio ledger/baseline: median {:.2}x, throughput {:.2}x (goal <= 2x)",
        ledger_lat.median.as_secs_f64() / file_lat.median.as_secs_f64(),
        file_lat.per_sec / ledger_lat.per_sec
    );

    // --- 2. verify 1M records vs raw BLAKE3 --------------------------------------------
    let dir = root.path().join("big");
    let build = Instant::now();
    {
        let mut ledger = Ledger::open_writer(&dir).unwrap();
        let batch = 10_000;
        let mut i = 0;
        while i < records {
            let n = batch.min(records - i);
            let encs: Vec<_> = (i..i + n).map(payload).collect();
            let news: Vec<_> = encs
                .iter()
                .enumerate()
                .map(|(k, e)| new_record(e, i + k))
                .collect();
            ledger.append_batch(&news).unwrap();
            i += n;
        }
    }
    let build = build.elapsed();

    let open = Instant::now();
    let reader = LedgerReader::open(&dir).unwrap();
    let open = open.elapsed();

    // First pass right after opening: sled materialises its pages from disk.
    let t = Instant::now();
    let report = verify_chain(reader.view(), None).unwrap();
    let cold_time = t.elapsed();
    assert!(report.is_ok() && report.records == records as u64);
    let t = Instant::now();
    let report = verify_chain(reader.view(), None).unwrap();
    let chain_time = t.elapsed();
    assert!(report.is_ok());

    let t = Instant::now();
    let report = verify(reader.view(), None, &EventDecoder).unwrap();
    let full_time = t.elapsed();
    assert!(report.is_ok());

    // The same stored bytes, in memory.
    let t = Instant::now();
    let all: Vec<Vec<u8>> = reader
        .view()
        .entries()
        .map(|e| e.unwrap().1.to_vec())
        .collect();
    let read_time = t.elapsed();
    let total_bytes: usize = all.iter().map(Vec::len).sum();
    let mut hasher = RecordHasher::new();
    let t = Instant::now();
    let mut sink = 0u8;
    for v in &all {
        sink ^= hasher.hash(&v[..v.len() - HASH_LEN]).0[0];
    }
    let per_record_time = t.elapsed();
    let contiguous: Vec<u8> = all.concat();
    let t = Instant::now();
    let bulk = blake3::hash(&contiguous);
    let bulk_time = t.elapsed();
    std::hint::black_box((sink, bulk));

    let mb = total_bytes as f64 / 1e6;
    println!();
    println!(
        "verify, {records} records, {mb:.1} MB stored (built in {:.1} s with batches of 10,000; reader open {:.2} s)",
        build.as_secs_f64(),
        open.as_secs_f64()
    );
    println!(
        "{:<44} {:>9} {:>12} {:>9}",
        "", "seconds", "records/s", "MB/s"
    );
    let row = |name: &str, d: Duration| {
        let s = d.as_secs_f64();
        println!(
            "{:<44} {:>9.3} {:>12.0} {:>9.1}",
            name,
            s,
            records as f64 / s,
            mb / s
        );
    };
    row("verify_chain, first pass after open", cold_time);
    row("verify_chain, second pass", chain_time);
    row("verify with event decoder (second pass)", full_time);
    row("sled iteration only (copying values)", read_time);
    row("BLAKE3 derive-key per record, in memory", per_record_time);
    row("BLAKE3 one contiguous buffer, in memory", bulk_time);
    println!(
        "ratio verify_chain / BLAKE3 per record: {:.2}x first pass, {:.2}x second pass (goal <= 3x); \
         / contiguous: {:.2}x",
        cold_time.as_secs_f64() / per_record_time.as_secs_f64(),
        chain_time.as_secs_f64() / per_record_time.as_secs_f64(),
        chain_time.as_secs_f64() / bulk_time.as_secs_f64()
    );
}
