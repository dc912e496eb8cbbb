//! Entry points for the fuzz targets in `fuzz/`: the section reader restore uses is
//! crate-private, and these wrappers reach it without widening its visibility. Not an API:
//! hidden from the docs, and free to change with the code they call.

use std::fs::File;
use std::path::Path;

use tokio::sync::mpsc;

use super::DumpError;
use super::artifact::DumpArtifact;
use super::sections::{self, SectionError};

/// A dump's layout as the parallel restore sees it: the header bytes, each table section
/// `(name, start, end)` and the tail `(start, end)`.
pub type Layout = (Vec<u8>, Vec<(String, u64, u64)>, (u64, u64));

/// Verifies `artifact`'s file and finds its table sections, as restore does before loading
/// in parallel. `Ok(None)`: verified, to be loaded in order.
pub fn find_sections(artifact: &DumpArtifact) -> Result<Option<Layout>, DumpError> {
    Ok(sections::verify_and_find(artifact)?.map(|s| {
        let tables = s.tables.into_iter().map(|t| (t.name, t.start, t.end));
        (s.header, tables.collect(), s.tail)
    }))
}

/// Reads `[start, end)` of `path` as restore loads one section (`table` given) or the tail
/// (`None`): the statements and their offsets, or why the range is not a loadable section.
pub fn read_section(
    path: &Path,
    range: (u64, u64),
    table: Option<&str>,
) -> Result<Vec<(Vec<u8>, u64)>, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    // Every statement but the last ends at a `;`, so one slot per byte (plus one) never
    // blocks the reader, which runs on this thread.
    let bytes = usize::try_from(range.1.saturating_sub(range.0)).unwrap_or(usize::MAX);
    let (tx, mut rx) = mpsc::channel(bytes.saturating_add(1).min(usize::MAX >> 4));
    let read = sections::read_range(&file, path, range, table, tx);
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
