//! Every target's body on stable, without libFuzzer: over the committed corpus, then over
//! mutations of it (bit flips, byte edits, splices, tokens the parsers care about). This is
//! what CI runs; `scripts/fuzz` is the real fuzzing. `OMS_FUZZ_CASES` sets the number of
//! mutated inputs per target (default 2000), `OMS_FUZZ_SEED` the random seed (default
//! fixed, so a CI failure reproduces).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Bytes that start or end things in the formats fuzzed here.
const TOKENS: &[&[u8]] = &[
    b";",
    b"'",
    b"\"",
    b"`",
    b"``",
    b"\\",
    b"\n",
    b"\r\n",
    b"-- ",
    b"#",
    b"/*",
    b"*/",
    b"/*!",
    b"/*M!",
    b"-- Table `",
    b"-- Tables end\n",
    b"DELIMITER ;;\n",
    b": ",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b"null",
    b"true",
    b"&a",
    b"*a",
    b"!!binary ",
    b"\xff",
    b"\x00",
    b"\xc3\xa9",
];

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no seeds", dir.display());
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, bytes)
        })
        .collect()
}

/// A mutation of one seed: one to eight edits, some of them splices from another seed.
fn mutate(rng: &mut StdRng, seeds: &[(PathBuf, Vec<u8>)]) -> Vec<u8> {
    let mut v = seeds[rng.random_range(0..seeds.len())].1.clone();
    for _ in 0..rng.random_range(1..=8) {
        let len = v.len();
        let at = rng.random_range(0..=len);
        match rng.random_range(0..7) {
            0 if len > 0 => v[at.min(len - 1)] ^= 1 << rng.random_range(0..8),
            1 if len > 0 => v[at.min(len - 1)] = rng.random(),
            2 => {
                let n = rng.random_range(1..=8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                v.splice(at..at, bytes);
            }
            3 => {
                let end = rng.random_range(at..=len.min(at + 64));
                v.drain(at..end);
            }
            4 => {
                let t = TOKENS[rng.random_range(0..TOKENS.len())];
                v.splice(at..at, t.iter().copied());
            }
            5 => {
                let other = &seeds[rng.random_range(0..seeds.len())].1;
                let from = rng.random_range(0..=other.len());
                let to = rng.random_range(from..=other.len().min(from + 256));
                v.splice(at..at, other[from..to].iter().copied());
            }
            _ => v.truncate(at),
        }
    }
    v
}

/// Runs `target`'s body over its corpus and `OMS_FUZZ_CASES` mutations; a panic fails the
/// test, naming the seed file or the file the mutated input was saved to.
fn run(target: &str) {
    let body = crate::TARGETS
        .iter()
        .find(|(n, _)| *n == target)
        .unwrap_or_else(|| panic!("no target {target}"))
        .1;
    let seeds = corpus(target);
    for (path, bytes) in &seeds {
        if catch_unwind(|| body(bytes)).is_err() {
            panic!("{target} panicked on its seed {}", path.display());
        }
    }
    let seed = env_u64("OMS_FUZZ_SEED", 0x0f5e_ed00);
    let mut rng =
        StdRng::seed_from_u64(seed ^ blake3::hash(target.as_bytes()).as_bytes()[0] as u64);
    for i in 0..env_u64("OMS_FUZZ_CASES", 2000) {
        let input = mutate(&mut rng, &seeds);
        if catch_unwind(AssertUnwindSafe(|| body(&input))).is_err() {
            let dir = std::env::temp_dir().join("oms-upgrade-fuzz-failures");
            std::fs::create_dir_all(&dir).expect("create the failures folder");
            let path = dir.join(format!("{target}-seed{seed}-case{i}"));
            std::fs::write(&path, &input).expect("save the failing input");
            panic!(
                "{target} panicked on mutated input {i} (OMS_FUZZ_SEED={seed}); saved to {}; \
                 reproduce with `scripts/fuzz --repro {target} {}`",
                path.display(),
                path.display()
            );
        }
    }
}

macro_rules! corpus_tests {
    ($($name:ident),* $(,)?) => {
        $(#[test] fn $name() { run(stringify!($name)); })*

        #[test]
        fn every_target_has_a_test() {
            let tested = [$(stringify!($name)),*];
            for (name, _) in crate::TARGETS {
                assert!(tested.contains(name), "add {name} to corpus_tests!");
            }
        }
    };
}

corpus_tests!(
    ledger_record,
    ledger_record_roundtrip,
    ledger_verify,
    ledger_replay,
    event_decode,
    checkpoint,
    checkpoint_roundtrip,
    signing_keys,
    dump_splitter,
    dump_sections,
    manifest,
    omsconfig,
    omsconfig_roundtrip,
    haconfig,
);
