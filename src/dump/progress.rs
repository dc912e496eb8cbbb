//! Progress reporting for dumps and restores: bars on a terminal, silence otherwise.
//!
//! The engine calls a [`Progress`] once per written or executed chunk (about 1 MiB), never per
//! row, so reporting costs nothing measurable. [`for_terminal`] picks indicatif bars when
//! stderr is a terminal and [`Quiet`] when it is not (logs, CI, `--json`).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Receives progress of one or more databases being dumped or restored.
pub trait Progress: Send + Sync {
    /// Work on `database` starts; `estimated_bytes` is the server's size estimate (0 if unknown).
    fn begin(&self, database: &str, estimated_bytes: u64) {
        let _ = (database, estimated_bytes);
    }
    /// `bytes` more SQL bytes and `rows` more rows were handled for `database`.
    fn advance(&self, database: &str, bytes: u64, rows: u64) {
        let _ = (database, bytes, rows);
    }
    /// Work on `database` ended (successfully or not).
    fn finish(&self, database: &str) {
        let _ = database;
    }
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Quiet;

impl Progress for Quiet {}

/// One indicatif bar per database, showing bytes and rows.
pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, (ProgressBar, u64)>>,
    verb: &'static str,
}

impl Bars {
    /// Bars drawn on stderr; `verb` is "dump" or "restore".
    pub fn new(verb: &'static str) -> Bars {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
            verb,
        }
    }
}

impl Progress for Bars {
    fn begin(&self, database: &str, estimated_bytes: u64) {
        let bar = self.multi.add(ProgressBar::new(estimated_bytes.max(1)));
        let style = ProgressStyle::with_template(
            "{prefix:>14} {bar:30} {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} {msg}",
        )
        .expect("static template");
        bar.set_style(style);
        bar.set_prefix(format!("{} {database}", self.verb));
        self.bars
            .lock()
            .expect("progress lock")
            .insert(database.to_string(), (bar, 0));
    }

    fn advance(&self, database: &str, bytes: u64, rows: u64) {
        let mut bars = self.bars.lock().expect("progress lock");
        if let Some((bar, total_rows)) = bars.get_mut(database) {
            *total_rows += rows;
            if bar.position() + bytes > bar.length().unwrap_or(0) {
                bar.set_length(bar.position() + bytes);
            }
            bar.inc(bytes);
            bar.set_message(format!("{total_rows} rows"));
        }
    }

    fn finish(&self, database: &str) {
        if let Some((bar, _)) = self.bars.lock().expect("progress lock").get(database) {
            bar.finish();
        }
    }
}

/// Bars when stderr is a terminal, [`Quiet`] otherwise.
pub fn for_terminal(verb: &'static str) -> Arc<dyn Progress> {
    if std::io::stderr().is_terminal() {
        Arc::new(Bars::new(verb))
    } else {
        Arc::new(Quiet)
    }
}
