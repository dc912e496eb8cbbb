//! Entry points for the fuzz targets in `fuzz/`: the section reader restore uses is
//! crate-private, and these wrappers reach it without widening its visibility. Not an API:
//! hidden from the docs, and free to change with the code they call.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::DumpError;
use super::artifact::DumpArtifact;
use super::sections::{self, SectionError};

/// A dump's layout as the parallel restore sees it: the header bytes, each table section
/// `(name, start, end)` and the tail `(start, end)`.
pub type Layout = (Vec<u8>, Vec<(String, u64, u64)>, (u64, u64));

/// The verified file, for [`SectionReader::read`].
pub struct SectionReader(Arc<sections::Verified>, bool);

/// Verifies `artifact`'s file and finds its table sections, as restore does before loading
/// in parallel. `Ok(None)`: verified, to be loaded in order.
pub fn find_sections(
    artifact: &DumpArtifact,
) -> Result<Option<(Layout, SectionReader)>, DumpError> {
    let (verified, found) = sections::verify_and_find(artifact)?;
    Ok(found.map(|s| {
        let framed = s.framed;
        let tables = s.tables.into_iter().map(|t| (t.name, t.start, t.end));
        (
            (s.header, tables.collect(), s.tail),
            SectionReader(verified, framed),
        )
    }))
}

impl SectionReader {
    /// Reads `[start, end)` as restore loads one section (`table` given) or the tail
    /// (`None`): the statements and their offsets, or why the range is not a loadable
    /// section.
    pub fn read(
        &self,
        range: (u64, u64),
        table: Option<&str>,
    ) -> Result<Vec<(Vec<u8>, u64)>, String> {
        // Every statement but the last ends at a `;`, so one slot per byte (plus one) never
        // blocks the reader, which runs on this thread.
        let bytes = usize::try_from(range.1.saturating_sub(range.0)).unwrap_or(usize::MAX);
        let (tx, mut rx) = mpsc::channel(bytes.saturating_add(1).min(usize::MAX >> 4));
        let read = sections::read_range(&self.0, range, table, self.1, tx);
        let mut out = Vec::new();
        while let Ok(s) = rx.try_recv() {
            out.push((s.sql, s.offset));
        }
        match read {
            Ok(()) => Ok(out),
            Err(SectionError::NotASection(m)) => Err(m),
            Err(SectionError::Dump(e)) => Err(e.to_string()),
        }
    }
}
