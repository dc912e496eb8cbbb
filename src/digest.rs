//! What a file's bytes are: their number and their BLAKE3, always taken together in one
//! pass, and compared together.
//!
//! Why one place: a dump is checked at several moments (the writer hashes what it wrote, a
//! restore re-hashes the file it is about to execute, a rollback checks every recorded dump
//! before it starts, `ledger verify --artifacts` and the report look again). Each check
//! must mean the same: the size and the BLAKE3 the ledger recorded, both, and a report that
//! says which of the two differs. Pure apart from [`FileDigest::of_file`], which reads.

use std::fmt;
use std::io::{self, Read};
use std::path::Path;

/// Size and BLAKE3 of a sequence of bytes (a file's, as read or as written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    /// Number of bytes.
    pub size: u64,
    /// BLAKE3 of the bytes, lowercase hex.
    pub blake3_hex: String,
}

/// Bytes fed in pieces, counted and hashed as they come.
#[derive(Debug, Default, Clone)]
pub struct Digester {
    hasher: blake3::Hasher,
    size: u64,
}

impl Digester {
    /// A digester that has seen no byte.
    pub fn new() -> Digester {
        Digester::default()
    }

    /// Adds the next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
    }

    /// Bytes seen so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The digest of everything seen.
    pub fn finish(&self) -> FileDigest {
        FileDigest {
            size: self.size,
            blake3_hex: self.hasher.finalize().to_hex().to_string(),
        }
    }
}

/// How a file differs from what was recorded of it: its size, its BLAKE3, or both (a size
/// that differs is named even though a BLAKE3 that matched would be a collision: a record
/// whose size field was changed is as wrong as one whose hash was).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// What was found.
    pub found: FileDigest,
    /// What was recorded.
    pub recorded: FileDigest,
}

impl Mismatch {
    /// The size differs.
    pub fn size_differs(&self) -> bool {
        self.found.size != self.recorded.size
    }

    /// The BLAKE3 differs.
    pub fn blake3_differs(&self) -> bool {
        self.found.blake3_hex != self.recorded.blake3_hex
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.size_differs() {
            parts.push(format!(
                "is {} bytes, the ledger recorded {}",
                self.found.size, self.recorded.size
            ));
        }
        if self.blake3_differs() {
            parts.push(format!(
                "has BLAKE3 {}, the ledger recorded {}",
                self.found.blake3_hex, self.recorded.blake3_hex
            ));
        }
        f.write_str(&parts.join(" and "))
    }
}

impl FileDigest {
    /// Size and BLAKE3 of the file at `path`, read once to its end in 1 MiB blocks (memory
    /// stays bounded). Blocking: call it from `spawn_blocking` in async code.
    pub fn of_file(path: &Path) -> io::Result<FileDigest> {
        let mut f = std::fs::File::open(path)?;
        let mut d = Digester::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match f.read(&mut buf) {
                Ok(0) => return Ok(d.finish()),
                Ok(n) => d.update(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// `Ok` when this (found) digest equals the recorded size and BLAKE3, both; else how
    /// it differs.
    pub fn check(&self, recorded_size: u64, recorded_blake3_hex: &str) -> Result<(), Mismatch> {
        if self.size == recorded_size && self.blake3_hex == recorded_blake3_hex {
            return Ok(());
        }
        Err(Mismatch {
            found: self.clone(),
            recorded: FileDigest {
                size: recorded_size,
                blake3_hex: recorded_blake3_hex.to_string(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_digest_matches_the_in_memory_hash_across_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data: Vec<u8> = (0..(3 << 20) + 17).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let d = FileDigest::of_file(&p).unwrap();
        assert_eq!(d.size, data.len() as u64);
        assert_eq!(d.blake3_hex, blake3::hash(&data).to_hex().to_string());
        let mut pieces = Digester::new();
        for c in data.chunks(1000) {
            pieces.update(c);
        }
        assert_eq!(pieces.finish(), d);
    }

    #[test]
    fn a_mismatch_names_the_size_and_the_hash_apart() {
        let d = Digester::new().finish();
        assert!(d.check(0, &d.blake3_hex).is_ok());
        let m = d.check(7, &d.blake3_hex).unwrap_err();
        assert!(m.size_differs() && !m.blake3_differs());
        assert_eq!(m.to_string(), "is 0 bytes, the ledger recorded 7");
        let m = d.check(0, "ab").unwrap_err();
        assert!(!m.size_differs() && m.blake3_differs());
        assert!(m.to_string().starts_with("has BLAKE3 "), "{m}");
        let m = d.check(1, "ab").unwrap_err();
        assert!(m.to_string().contains(" bytes, ") && m.to_string().contains(" and has BLAKE3 "));
    }
}
