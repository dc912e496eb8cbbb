//! The words that say what kind of file a dump is: which program wrote it, how its bytes are
//! encoded, and how its tables' checksums were taken.
//!
//! Why here: the backup engine writes them into `manifest.json` and the event vocabulary
//! records them in the ledger (`events::DumpArtifact`), and a rollback hands the recorded
//! value back to the engine. One type for each, below both, means a value cannot change on
//! the way, and a word neither side knows is refused where it is read instead of being
//! taken for a default (which would restore a zstd file as plain SQL, say).
//!
//! The words ([`Dumper::word`] and the others) are the ones stored in the ledger's frozen
//! `v1` form and in `manifest.json`; they never change. Pure: no I/O.

use serde::{Deserialize, Serialize};

/// A word read from a stored record that this version does not know: a newer version may
/// have written it, or the record is damaged. Nothing is assumed in its place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown {what} `{word}` (this oms-upgrade knows {known}); a newer oms-upgrade may have written it"
)]
pub struct UnknownWord {
    /// What the word was meant to name (e.g. "dump compression").
    pub what: &'static str,
    /// The word found.
    pub word: String,
    /// The words this version knows, comma separated.
    pub known: String,
}

/// Ties each variant of a kind to its stored word, both ways, from one table.
macro_rules! words {
    ($ty:ident, $what:literal, { $($variant:ident => $word:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The stored word (ledger `v1` form and `manifest.json`).
            pub fn word(self) -> &'static str {
                match self {
                    $($ty::$variant => $word),+
                }
            }

            /// The value a stored word names; an unknown word is an error naming it.
            pub fn from_word(word: &str) -> Result<$ty, UnknownWord> {
                match word {
                    $($word => Ok($ty::$variant),)+
                    _ => Err(UnknownWord {
                        what: $what,
                        word: word.to_string(),
                        known: [$($word),+].join(", "),
                    }),
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.word())
            }
        }
    };
}

/// Which program wrote a dump file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dumper {
    /// The built-in dumper over mysql_async.
    Native,
    /// `mariadb-dump` or `mysqldump`.
    Mysqldump,
}

words!(Dumper, "dumper", { Native => "native", Mysqldump => "mysqldump" });

/// How the bytes on disk are encoded. The BLAKE3 is always over the bytes on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Plain SQL text.
    None,
    /// A zstd frame holding the SQL text.
    Zstd,
}

words!(Compression, "dump compression", { None => "none", Zstd => "zstd" });

impl Compression {
    /// File name suffix for a dump with this compression.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => ".sql",
            Compression::Zstd => ".sql.zst",
        }
    }
}

/// What the (uncompressed) content of a dump file is. Every dump so far is SQL text; the
/// ledger records the word so a reader can refuse a file it would not understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// SQL statements.
    Sql,
}

words!(FileFormat, "dump file format", { Sql => "sql" });

/// How a table's content checksum was computed. Facts are only comparable when both sides
/// used the same method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChecksumMethod {
    /// The server's `CHECKSUM TABLE` (32 bits, computed over the stored rows).
    ChecksumTable,
    /// BLAKE3 over every row's column values as the server sends them (generated columns
    /// left out, FLOAT read at full precision), rows in primary-key order; for a table
    /// without a primary key, the rows' hashes are summed so their order does not matter.
    Blake3Rows,
}

words!(ChecksumMethod, "table checksum method", {
    ChecksumTable => "checksum-table",
    Blake3Rows => "blake3-rows",
});

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored word and the `manifest.json` (serde) name are one and the same, and each
    /// word reads back as its value.
    #[test]
    fn words_round_trip_and_match_the_manifest_names() {
        fn check<T>(
            all: &[T],
            word: fn(T) -> &'static str,
            back: fn(&str) -> Result<T, UnknownWord>,
        ) where
            T: Copy + PartialEq + std::fmt::Debug + Serialize,
        {
            for &v in all {
                assert_eq!(back(word(v)), Ok(v));
                assert_eq!(serde_json::to_value(v).unwrap(), word(v));
            }
        }
        check(Dumper::ALL, Dumper::word, Dumper::from_word);
        check(Compression::ALL, Compression::word, Compression::from_word);
        check(FileFormat::ALL, FileFormat::word, FileFormat::from_word);
        check(
            ChecksumMethod::ALL,
            ChecksumMethod::word,
            ChecksumMethod::from_word,
        );
    }

    #[test]
    fn an_unknown_word_is_an_error_naming_it_and_the_known_ones() {
        let e = Compression::from_word("lz4").unwrap_err();
        assert_eq!(e.word, "lz4");
        let msg = e.to_string();
        assert!(
            msg.contains("dump compression `lz4`") && msg.contains("none, zstd"),
            "{msg}"
        );
        // Case matters: the stored words were always written lower case.
        assert!(Dumper::from_word("Native").is_err());
        assert!(FileFormat::from_word("").is_err());
    }
}
