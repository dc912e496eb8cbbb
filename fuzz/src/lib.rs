//! The bodies of oms-upgrade's fuzz targets, one function per target, each taking the raw
//! input bytes. `fuzz_targets/<name>.rs` hands them to libFuzzer (`scripts/fuzz`, nightly);
//! `src/tests.rs` runs them over the committed corpus and mutations of
//! it on stable (`cargo test --manifest-path fuzz/Cargo.toml --no-default-features`).
//!
//! A body returns quietly on input the parser rejects; it panics (a finding) when a parser
//! panics, or when a property of what the parser accepted does not hold: a value read back
//! from what the program writes must equal the value written, and the program's own
//! output must be accepted. Time and memory are bounded by the runner (`-timeout`,
//! `-rss_limit_mb`, `-malloc_limit_mb`), not here.
//!
//! See `docs/fuzzing.md` for the targets, the corpus and how to run them.

use std::cell::OnceCell;
use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};
use chrono::{DateTime, Datelike, Utc};
use uuid::Uuid;

use oms_upgrade::dbconn::DbTarget;
use oms_upgrade::dump::fuzz_hooks;
use oms_upgrade::dump::{Compression, DumpArtifact, Dumper, Manifest, Splitter, TableFact};
use oms_upgrade::events::{self, EVENT_TYPES, EventDecoder, to_recorded};
use oms_upgrade::haconfig::{HaConfig, HaEdit};
use oms_upgrade::ledger::record::{
    self, EncodeError, HASH_LEN, MAX_RECORD_LEN, NewRecord, RecordRef,
};
use oms_upgrade::ledger::sign::{PublicKey, SigningKey, verify_checkpoint};
use oms_upgrade::ledger::{Anchor, Checkpoint, Hash, PayloadDecoder, Record, verify_pairs};
use oms_upgrade::omsconfig::{MetaDatabases, OmsConfig};
use oms_upgrade::replay::State;
use oms_upgrade::report::{self, Verification};
use oms_upgrade::secret::Secret;

/// A target's body: the raw input bytes in, a panic out when something is wrong.
pub type Body = fn(&[u8]);

/// Every target: its name (the corpus folder and the fuzz binary) and its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("ledger_record", ledger_record),
    ("ledger_record_roundtrip", ledger_record_roundtrip),
    ("ledger_verify", ledger_verify),
    ("ledger_replay", ledger_replay),
    ("event_decode", event_decode),
    ("checkpoint", checkpoint),
    ("checkpoint_roundtrip", checkpoint_roundtrip),
    ("signing_keys", signing_keys),
    ("dump_splitter", dump_splitter),
    ("dump_sections", dump_sections),
    ("manifest", manifest),
    ("omsconfig", omsconfig),
    ("omsconfig_roundtrip", omsconfig_roundtrip),
    ("haconfig", haconfig),
];

/// Statements as text, for assertion messages.
fn show(stmts: &[(Vec<u8>, u64)]) -> String {
    let lines = stmts
        .iter()
        .map(|(s, at)| format!("@{at}: {:?}", String::from_utf8_lossy(s)));
    lines.collect::<Vec<_>>().join("\n")
}

fn utf8(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// A folder of this thread's own under `$TMPDIR`, for the parsers that read files.
fn scratch_dir() -> PathBuf {
    thread_local! {
        static DIR: OnceCell<PathBuf> = const { OnceCell::new() };
    }
    DIR.with(|d| {
        d.get_or_init(|| {
            static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("oms-upgrade-fuzz-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("create the scratch folder");
            dir
        })
        .clone()
    })
}

/// `ledger::record`: stored bytes as sled hands them back (a copied or altered ledger).
/// Whatever parses re-encodes to the same body, and the hash check agrees with `encode`.
pub fn ledger_record(data: &[u8]) {
    let Ok(r) = RecordRef::parse(data) else {
        assert!(record::Record::parse(data).is_err());
        return;
    };
    assert_eq!(r.stored, data);
    assert_eq!(r.body.len() + HASH_LEN, data.len());
    let owned = Record::parse(data).expect("Record::parse agrees with RecordRef::parse");
    assert_eq!(owned, r.to_owned_record());
    assert_eq!(owned.body(), r.body);
    let _ = owned.time_rfc3339();
    let new = NewRecord {
        timestamp_micros: r.timestamp_micros,
        operator: r.operator,
        host: r.host,
        run_id: r.run_id,
        event_type: r.event_type,
        schema_version: r.schema_version,
        payload: r.payload,
    };
    match record::encode(r.seq, r.ledger_id, r.prev_hash, &new) {
        Ok((stored, hash)) => {
            assert_eq!(
                &stored[..stored.len() - HASH_LEN],
                r.body,
                "one encoding per record"
            );
            assert_eq!(hash == r.hash, owned.hash_is_valid());
        }
        Err(EncodeError::EmptyEventType) => assert!(r.event_type.is_empty()),
        Err(EncodeError::TooLarge { .. }) => assert!(data.len() > MAX_RECORD_LEN),
        Err(e) => panic!("a parsed record does not encode: {e}"),
    }
}

/// `ledger::record`: any record the ledger may write parses back to exactly its fields.
pub fn ledger_record_roundtrip(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok((seq, ledger_id, prev, time, run_id)) =
        <(u64, u128, [u8; 32], i64, u128)>::arbitrary(&mut u)
    else {
        return;
    };
    let Ok((operator, host, event_type, schema_version)) =
        <(String, String, String, u16)>::arbitrary(&mut u)
    else {
        return;
    };
    let payload = u.take_rest();
    let new = NewRecord {
        timestamp_micros: time,
        operator: &operator,
        host: &host,
        run_id: Uuid::from_u128(run_id),
        event_type: &event_type,
        schema_version,
        payload,
    };
    let (ledger_id, prev) = (Uuid::from_u128(ledger_id), Hash(prev));
    let (stored, hash) = match record::encode(seq, ledger_id, prev, &new) {
        Ok(v) => v,
        Err(EncodeError::EmptyEventType) => return assert!(event_type.is_empty()),
        Err(e) => panic!("a small record does not encode: {e}"),
    };
    let r = RecordRef::parse(&stored).expect("what encode writes parses");
    assert_eq!(
        (
            r.seq,
            r.ledger_id,
            r.prev_hash,
            r.timestamp_micros,
            r.run_id
        ),
        (seq, ledger_id, prev, time, new.run_id)
    );
    assert_eq!(
        (r.operator, r.host, r.event_type),
        (new.operator, new.host, new.event_type)
    );
    assert_eq!(
        (r.schema_version, r.payload, r.hash),
        (schema_version, payload, hash)
    );
    assert!(Record::parse(&stored).expect("parses").hash_is_valid());
}

/// Records framed as the `ledger_verify` and `ledger_replay` corpora hold them: each after
/// its length as 2 big-endian bytes.
fn framed(data: &[u8]) -> Vec<&[u8]> {
    let mut records = Vec::new();
    let mut rest = data;
    while rest.len() >= 2 {
        let n = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        records.push(&rest[2..2 + n]);
        rest = &rest[2 + n..];
    }
    records
}

/// `replay` and `report`: a ledger whose chain an attacker recomputed (the hashes are not
/// keyed), replayed as `status`, `run` and `report` replay it. Whatever replays answers
/// what comes next and renders as a report, without panicking.
pub fn ledger_replay(data: &[u8]) {
    let stored = framed(data);
    let mut state = State::new();
    let mut recorded = Vec::new();
    for bytes in &stored {
        let Ok(rec) = Record::parse(bytes) else { break };
        let Ok(r) = to_recorded(&rec) else { break };
        if state.apply(&r).is_err() {
            break;
        }
        recorded.push(r);
    }
    let _ = (
        state.phase(),
        state.in_doubt(),
        state.next(),
        state.permitted(),
    );
    let _ = (
        state.remaining(),
        state.rollback_keys(),
        state.can_rollback(),
    );
    if recorded.is_empty() {
        return;
    }
    let keys = stored.iter().enumerate();
    let pairs = keys.map(|(i, r)| (oms_upgrade::ledger::store::seq_key(i as u64 + 1), *r));
    let ledger_id = RecordRef::parse(stored[0]).map_or(Uuid::nil(), |r| r.ledger_id);
    let verified = verify_pairs(ledger_id, pairs, None, Some(&EventDecoder));
    let verification = Verification::from_verify_report(&verified, vec![]);
    let report = report::build(&recorded, &state, verification);
    let _ = (report::to_json(&report), report::to_markdown(&report));
    let _ = report::to_html(&report);
}

/// `ledger::verify_pairs`: a whole ledger as a raw copy of its sled tree (records framed by
/// a 2-byte big-endian length here). The verdict is consistent with itself.
pub fn ledger_verify(data: &[u8]) {
    let records = framed(data);
    let ledger_id = records
        .first()
        .and_then(|r| RecordRef::parse(r).ok())
        .map_or(Uuid::nil(), |r| r.ledger_id);
    let pairs = || {
        records
            .iter()
            .enumerate()
            .map(|(i, r)| (oms_upgrade::ledger::store::seq_key(i as u64 + 1), *r))
    };
    let report = verify_pairs(ledger_id, pairs(), None, Some(&EventDecoder));
    let _ = report.to_json();
    assert!(report.records <= records.len() as u64);
    assert_eq!(
        report.head.map(|h| h.0),
        (report.records > 0).then_some(report.records)
    );
    if report.is_ok() {
        assert_eq!(report.records, records.len() as u64);
        // The head of an intact chain is a checkpoint the same chain passes.
        if let Some((seq, head)) = report.head {
            let anchor = Anchor {
                ledger_id,
                seq,
                head,
            };
            let again = verify_pairs(ledger_id, pairs(), Some(&anchor), Some(&EventDecoder));
            assert!(again.is_ok(), "{:?}", again.problem);
        }
    }
}

/// `events::decode`: a record's payload, its type chosen by the first byte (its high bit
/// also takes the schema version from the next two bytes). What decodes re-encodes to a
/// payload that decodes to the same event, and shows as JSON.
pub fn event_decode(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let (event_type, version) = EVENT_TYPES[usize::from(sel & 0x7f) % EVENT_TYPES.len()];
    let (version, payload) = match rest {
        [a, b, payload @ ..] if sel & 0x80 != 0 => (u16::from_le_bytes([*a, *b]), payload),
        _ => (version, rest),
    };
    let Ok(ev) = events::decode(event_type, version, payload) else {
        assert!(
            EventDecoder
                .decode_view(event_type, version, payload)
                .is_err()
        );
        return;
    };
    assert_eq!(ev.type_name(), event_type);
    let enc = events::encode(&ev);
    assert_eq!((enc.event_type, enc.schema_version), (event_type, version));
    let again = events::decode(enc.event_type, enc.schema_version, &enc.payload)
        .expect("an encoded event decodes");
    assert_eq!(again, ev);
    EventDecoder
        .decode_view(event_type, version, payload)
        .expect("a decoded event shows as JSON");
}

/// `ledger::anchor` and `ledger::sign`: checkpoint text as pasted from a ticket. What
/// parses prints to text that parses to the same checkpoint, signed lines included.
pub fn checkpoint(data: &[u8]) {
    let Some(text) = utf8(data) else { return };
    let parsed = Checkpoint::parse(text, "fuzz input");
    assert_eq!(
        Anchor::parse(text, "fuzz input").ok(),
        parsed.as_ref().ok().map(|c| *c.anchor())
    );
    let Ok(cp) = parsed else { return };
    let back = Checkpoint::parse(&cp.to_text(), "printed").expect("a printed checkpoint parses");
    assert_eq!(back, cp);
    let anchor = *cp.anchor();
    assert_eq!(
        Anchor::parse(&anchor.to_text(), "printed").expect("parses"),
        anchor
    );
    if let Checkpoint::Signed(s) = &cp {
        let key = seed_key();
        match verify_checkpoint(&cp, &key.public()) {
            // The signature covers the lines as they stand; printing keeps them.
            Ok(_) => assert!(verify_checkpoint(&back, &key.public()).is_ok()),
            Err(p) => assert!(!p.kind().is_empty()),
        }
        let Checkpoint::Signed(b) = &back else {
            panic!("a signed checkpoint printed and read back is unsigned")
        };
        assert_eq!(b.message(), s.message());
    }
}

/// The key that signed the checkpoint seeds (`fuzz/corpus/checkpoint`): fixed, so a seed's
/// signature verifies and mutations of it reach the code after the check.
fn seed_key() -> SigningKey {
    SigningKey::from_seed(&[7; 32])
}

/// `ledger::sign`: what the signer writes, damaged the way pasting damages text (CRLF,
/// indentation, blank and `#` lines), parses and verifies with the signer's key only.
pub fn checkpoint_roundtrip(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok((seed, id, seq, head, micros, damage)) =
        <([u8; 32], u128, u64, [u8; 32], i64, Vec<(u8, u8)>)>::arbitrary(&mut u)
    else {
        return;
    };
    let Some(time) = DateTime::<Utc>::from_timestamp_micros(micros) else {
        return;
    };
    let anchor = Anchor {
        ledger_id: Uuid::from_u128(id),
        seq: seq.max(1),
        head: Hash(head),
    };
    let key = SigningKey::from_seed(&seed);
    let text = key.sign_checkpoint(anchor, time).to_text();
    let pasted = paste_damage(&text, &damage);
    let parsed = Checkpoint::parse(&pasted, "pasted");
    if !(0..=9999).contains(&time.year()) {
        // RFC 3339 has four-digit years; such a time cannot come from the clock anyway.
        return assert!(parsed.is_err());
    }
    let cp = parsed.unwrap_or_else(|e| panic!("{e}\n{pasted:?}"));
    assert_eq!(*cp.anchor(), anchor);
    let Checkpoint::Signed(s) = &cp else {
        panic!("signed checkpoint read as unsigned")
    };
    assert_eq!(s.time, time);
    assert!(verify_checkpoint(&cp, &key.public()).is_ok());
    let other = SigningKey::from_seed(&blake3::hash(&seed).into());
    assert!(verify_checkpoint(&cp, &other.public()).is_err());
}

/// Damages text like a paste: each `(at, what)` picks a line and one kind of damage.
fn paste_damage(text: &str, damage: &[(u8, u8)]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for &(at, what) in damage.iter().take(16) {
        let i = usize::from(at) % (lines.len() + 1);
        match what % 5 {
            0 => lines.insert(i, String::new()),
            1 => lines.insert(i, format!("# {}", "comment ".repeat(usize::from(at % 3)))),
            2 if i < lines.len() => lines[i].insert_str(0, "  \t"),
            3 if i < lines.len() => lines[i].push_str(" \t"),
            _ if i < lines.len() => lines[i].push('\r'),
            _ => {}
        }
    }
    lines.join("\n")
}

/// `ledger::sign`: public key text (`--pubkey`, `.pub` files) and private key files.
pub fn signing_keys(data: &[u8]) {
    let Some(text) = utf8(data) else { return };
    if let Ok(pk) = PublicKey::parse(text, "fuzz input") {
        assert_eq!(
            PublicKey::parse(&pk.to_text(), "printed").expect("parses"),
            pk
        );
        assert_eq!(pk.key_id().len(), 16);
        if text.trim_start().starts_with("ed25519:") {
            // Only then is the argument key text rather than a file path.
            assert_eq!(PublicKey::from_arg(text).expect("the same text parses"), pk);
        }
    }
    if let Ok(key) = SigningKey::parse(text, "fuzz input") {
        let anchor = Anchor {
            ledger_id: Uuid::nil(),
            seq: 1,
            head: Hash([0; 32]),
        };
        let time = DateTime::<Utc>::UNIX_EPOCH;
        let cp = Checkpoint::Signed(key.sign_checkpoint(anchor, time));
        assert!(verify_checkpoint(&cp, &key.public()).is_ok());
    }
}

/// Splits `data` with `Splitter`, in chunks whose sizes come from `sizes` (cycled; empty:
/// one chunk), returning the statements with their offsets.
fn split(data: &[u8], sizes: &[u8]) -> Vec<(Vec<u8>, u64)> {
    let mut out = Vec::new();
    let mut emit = |sql: Vec<u8>, at: u64| -> Result<(), ()> {
        out.push((sql, at));
        Ok(())
    };
    let mut sp = Splitter::default();
    let mut at = 0;
    let mut sizes = sizes.iter().cycle().map(|&s| usize::from(s) + 1);
    while at < data.len() {
        let n = sizes.next().unwrap_or(data.len()).min(data.len() - at);
        sp.feed(&data[at..at + n], at as u64, &mut emit)
            .expect("emit never fails");
        at += n;
    }
    sp.finish(&mut emit).expect("emit never fails");
    out
}

/// `dump::Splitter`, restore's statement splitter, over dump text. The first byte says how
/// many of the next bytes are chunk sizes. The statements do not depend on how the stream
/// is cut into reads, start where they say, and are in order.
pub fn dump_splitter(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (sizes, sql) = rest.split_at(usize::from(n % 8).min(rest.len()));
    let whole = split(sql, &[]);
    let chunked = split(sql, sizes);
    assert!(
        chunked == whole,
        "chunks {sizes:?} give\n{}\nnot\n{}",
        show(&chunked),
        show(&whole)
    );
    let mut last = None;
    for (stmt, at) in &whole {
        assert!(!stmt.is_empty());
        assert!(
            last < Some(*at),
            "statements out of order:\n{}",
            show(&whole)
        );
        last = Some(*at);
        // Finding F3 (fixed): a statement that starts with `-`, `/`, `/*!` or `/*M!` was
        // reported 1 to 3 bytes after where it starts.
        assert_eq!(
            sql.get(*at as usize),
            stmt.first(),
            "offset of\n{}",
            show(&whole)
        );
    }
}

/// `dump::sections` (restore's parallel load): a native dump file whose markers name the
/// artifact's tables. A layout found covers the file exactly; each section either reads
/// as that table's statements or is refused, and when all of them read, they are the
/// statements of the file loaded in order.
pub fn dump_sections(data: &[u8]) {
    let dir = scratch_dir();
    let file = dir.join("dump.sql");
    std::fs::write(&file, data).expect("write the dump file");
    // Format 3 (native.rs) escapes control characters in marker names; format 2 does not.
    let format_3 = data.split(|&b| b == b'\n').nth(1) == Some(b"-- Format: 3 (sections)");
    let tables: Vec<TableFact> = data
        .split(|&b| b == b'\n')
        .filter_map(|l| l.strip_prefix(b"-- Table `")?.strip_suffix(b"`"))
        .filter_map(|n| Some(utf8(n)?.replace("``", "`")))
        .map(|n| if format_3 { unescape_marker(&n) } else { n })
        .map(|name| TableFact {
            name,
            rows: 0,
            checksum: String::new(),
            checksum_method: oms_upgrade::dump::ChecksumMethod::Blake3Rows,
        })
        .collect();
    let artifact = DumpArtifact {
        database: "fuzz".into(),
        file: file.clone(),
        size_bytes: data.len() as u64,
        blake3_hex: blake3::hash(data).to_hex().to_string(),
        format: Dumper::Native,
        compression: Compression::None,
        charset: "utf8mb4".into(),
        collation: "utf8mb4_general_ci".into(),
        tables,
        views: vec![],
        skipped_triggers: vec![],
        server_version: String::new(),
    };
    let found =
        fuzz_hooks::find_sections(&artifact).expect("a file that matches its hash verifies");
    let Some(((header, sections, tail), reader)) = found else {
        return;
    };
    let names: Vec<&str> = artifact.tables.iter().map(|t| t.name.as_str()).collect();
    let found_names: Vec<&str> = sections.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(found_names, names);
    let mut at = header.len() as u64;
    assert_eq!(header, data[..at as usize]);
    for (_, start, end) in &sections {
        assert_eq!(*start, at, "sections are contiguous");
        assert!(end >= start);
        at = *end;
    }
    assert_eq!(tail, (at, data.len() as u64));
    // Open finding F4: a header that ends inside a quote or comment is split on its own
    // (`split_small`) while the file loaded in order reads the sections as part of it.
    let mut sp = Splitter::default();
    sp.feed(&header, 0, &mut |_, _| Ok::<(), ()>(()))
        .expect("no error");
    // Finding F4 (fixed): restore shares a header only when it ends between statements.
    assert!(
        sp.is_idle(),
        "sections found behind a header that ends inside a statement"
    );
    // Restore runs the header on every connection, then each section, then the tail.
    let mut pieces = vec![split(&header, &[])];
    for (name, start, end) in &sections {
        match reader.read((*start, *end), Some(name)) {
            Ok(stmts) => pieces.push(stmts),
            Err(_) => return,
        }
    }
    match reader.read(tail, None) {
        Ok(stmts) => pieces.push(stmts),
        Err(_) => return,
    }
    let parallel: Vec<_> = pieces.concat();
    let in_order = split(data, &[]);
    assert!(
        parallel == in_order,
        "the sections load\n{}\nbut the file loaded in order is\n{}",
        show(&parallel),
        show(&in_order)
    );
}

/// A format 3 marker's name with its escapes (`\\`, `\u{..}`) undone; the text as it is
/// when an escape is malformed.
fn unescape_marker(name: &str) -> String {
    let mut out = String::new();
    let mut rest = name;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let esc = &rest[i + 1..];
        if let Some(after) = esc.strip_prefix('\\') {
            out.push('\\');
            rest = after;
        } else if let Some((hex, after)) = esc.strip_prefix("u{").and_then(|e| e.split_once('}'))
            && let Some(c) = u32::from_str_radix(hex, 16).ok().and_then(char::from_u32)
        {
            out.push(c);
            rest = after;
        } else {
            return name.to_string();
        }
    }
    out.push_str(rest);
    out
}

/// `dump::Manifest::load`: a backup folder's `manifest.json`. What loads stores and loads
/// back to the same manifest.
pub fn manifest(data: &[u8]) {
    let dir = scratch_dir().join("backup");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the backup folder");
    std::fs::write(dir.join(oms_upgrade::dump::MANIFEST_FILE), data).expect("write");
    let Ok(m) = Manifest::load(&dir) else { return };
    for a in &m.databases {
        assert!(a.file.is_absolute(), "{}", a.file.display());
        let _ = m.artifact(&a.database).expect("found by name");
    }
    m.store(&dir).expect("a loaded manifest stores");
    let back = Manifest::load(&dir).expect("a stored manifest loads");
    assert_eq!(back, m);
}

/// `omsconfig`: the `config.yaml` an OMS container mounts. What parses prints to YAML that
/// parses to the same config, and the password shows in no printout.
pub fn omsconfig(data: &[u8]) {
    let Some(text) = utf8(data) else { return };
    let path = Path::new("config.yaml");
    let c = match OmsConfig::parse(text, path) {
        Ok(c) => c,
        Err(e) => {
            if let Some(pw) = unique_password(text) {
                assert!(
                    !e.to_string().contains(pw),
                    "the password is in the error: {e}"
                );
            }
            return;
        }
    };
    let yaml = c.to_yaml();
    let back = OmsConfig::parse(&yaml, path).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(back, c, "{yaml}");
    let mut masked = c.clone();
    masked.oms_meta_password = Secret::new("x");
    assert_eq!(
        format!("{c:?}"),
        format!("{masked:?}"),
        "the password shows"
    );
    let _ = (c.db_target().display_url(), c.databases().all());
}

/// The `oms_meta_password` value of `text`, when it is long and occurs once in the text, so
/// that finding it in an error message means the error quotes it.
fn unique_password(text: &str) -> Option<&str> {
    let (_, rest) = text.split_once("oms_meta_password:")?;
    let value = rest.lines().next()?.trim().trim_matches(['"', '\'']);
    (value.len() >= 6 && text.matches(value).count() == 1).then_some(value)
}

/// `omsconfig`: a config the tool writes (the harness, the demo) reads back as written,
/// except that names are trimmed; a blank name or port 0 is refused, not misread.
pub fn omsconfig_roundtrip(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok((host, port, user, password, names, ports, extra)) = <(
        String,
        u16,
        String,
        String,
        [String; 3],
        [u16; 5],
        Vec<(String, String)>,
    )>::arbitrary(&mut u) else {
        return;
    };
    let target = DbTarget {
        host,
        port,
        user,
        password: Secret::new(password),
        tls: oms_upgrade::dbconn::TlsSettings::off(),
    };
    let [rm, cm, cm_hb] = names;
    let mut c = OmsConfig::new(&target, &MetaDatabases { rm, cm, cm_hb });
    [
        c.nginx_server_port,
        c.cm_server_port,
        c.ghana_server_port,
        c.supervisor_server_port,
        c.sshd_server_port,
    ] = ports;
    for (k, v) in extra {
        if !k.starts_with("oms_meta_") && !k.starts_with("drc_") && !k.ends_with("_port") {
            c.extra.insert(k.into(), v.into());
        }
    }
    let yaml = c.to_yaml();
    let parsed = OmsConfig::parse(&yaml, Path::new("config.yaml"));
    let mut want = c.clone();
    for s in [
        &mut want.oms_meta_host,
        &mut want.oms_meta_user,
        &mut want.drc_rm_db,
        &mut want.drc_cm_db,
        &mut want.drc_cm_heartbeat_db,
    ] {
        *s = s.trim().to_string();
    }
    let blank = [
        &want.oms_meta_host,
        &want.oms_meta_user,
        &want.drc_rm_db,
        &want.drc_cm_db,
        &want.drc_cm_heartbeat_db,
    ]
    .iter()
    .any(|s| s.is_empty());
    if blank || port == 0 || ports.contains(&0) {
        return assert!(parsed.is_err(), "{yaml}");
    }
    let back = parsed.unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(back, want, "{yaml}");
}

/// `haconfig`: the `ha.config` JSON stored in the metadata database. The first byte picks
/// an edit. Printing keeps every key and raw value; an edit applied changes exactly its
/// fields (keeping a quoted value quoted) and is then satisfied.
pub fn haconfig(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let Some(json) = utf8(rest) else { return };
    let Ok(mut c) = HaConfig::parse(json) else {
        return;
    };
    let printed = c.to_json();
    assert_eq!(HaConfig::parse(&printed).expect("printed JSON parses"), c);
    let before: serde_json::Value = serde_json::from_str(json).expect("valid JSON");
    let edit = HaEdit {
        enable: (sel & 1 != 0).then_some(sel & 2 != 0),
        perceive_checkpoint: (sel & 4 != 0).then_some(sel & 8 != 0),
        refetch_interval_min: (sel & 16 != 0).then_some(u64::from(sel >> 5) * 7),
    };
    let raw_before: Vec<(String, Option<String>)> = c
        .keys()
        .map(|k| (k.to_string(), c.get_raw(k).map(str::to_string)))
        .collect();
    if c.apply(&edit).is_err() {
        return;
    }
    assert!(c.satisfies(&edit).expect("the edited fields read"));
    let after: serde_json::Value =
        serde_json::from_str(&c.to_json()).expect("edited JSON is valid JSON");
    let edited = [
        ("enable", edit.enable.map(|b| b.to_string())),
        (
            "perceiveStoreClientCheckpoint",
            edit.perceive_checkpoint.map(|b| b.to_string()),
        ),
        (
            "refetchStoreIntervalMin",
            edit.refetch_interval_min.map(|n| n.to_string()),
        ),
    ];
    let mut want = before.as_object().expect("an object").clone();
    for (key, plain) in &edited {
        let Some(plain) = plain.clone() else { continue };
        let quoted = raw_before
            .iter()
            .any(|(k, v)| k == key && v.as_deref().is_some_and(|v| v.starts_with('"')));
        let value = if quoted {
            serde_json::Value::String(plain)
        } else {
            serde_json::from_str(&plain).expect("a number or a boolean")
        };
        want.insert(key.to_string(), value);
    }
    assert_eq!(after, serde_json::Value::Object(want));
    for (k, v) in &raw_before {
        if !edited.iter().any(|(e, p)| e == k && p.is_some()) {
            assert_eq!(c.get_raw(k), v.as_deref(), "untouched key {k} changed");
        }
    }
}

#[cfg(test)]
mod tests;
