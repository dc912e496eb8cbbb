//! Restore's statement splitter: SQL text split into statements at `;` the way the
//! `mariadb` client reads a dump file, and the refusal of what a native restore does not
//! run (a `DELIMITER` command). Used by `restore` (the statements it executes) and by
//! `sections` (finding a format 2 or 3 dump's table sections); it knows bytes, not files.

use super::DumpError;

/// A statement and where it starts in the SQL stream.
pub(crate) struct Stmt {
    pub(crate) sql: Vec<u8>,
    pub(crate) offset: u64,
}

pub(crate) fn check_supported(sql: &[u8], offset: u64) -> Result<(), DumpError> {
    let head: Vec<u8> = sql
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take(10)
        .map(|b| b.to_ascii_uppercase())
        .collect();
    if head.starts_with(b"DELIMITER") {
        return Err(DumpError::Unsupported {
            what: format!(
                "a DELIMITER command at byte {offset}: dumps with triggers or routines are not \
                 restored natively (dump with --skip-triggers, or load it with the mariadb client)"
            ),
        });
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Normal,
    /// Saw `-`.
    Dash,
    /// Saw `--`: a comment if whitespace follows.
    DashDash,
    LineComment,
    /// Saw `/`.
    Slash,
    /// Saw `/*`.
    SlashStar,
    /// Saw `/*M`.
    SlashStarM,
    Block,
    BlockStar,
    /// Inside an executable comment, saw `*`.
    ExecStar,
    Quote(u8),
    QuoteEscape(u8),
}

/// Splits a stream of SQL text into statements at `;`, the way the `mariadb` client does for
/// dump files. Plain comments are dropped; executable comments (`/*! .. */`, `/*M! .. */`)
/// are kept, and a `;` inside them, or inside quotes, does not end a statement.
#[derive(Debug)]
pub struct Splitter {
    state: State,
    exec: bool,
    cur: Vec<u8>,
    content: bool,
    start: u64,
    /// Where the pending `-` or `/` (states `Dash`, `DashDash`, `Slash`, `SlashStar*`) was:
    /// when it turns out to start a statement, the statement starts there, not at the byte
    /// that decided it.
    mark: u64,
}

impl Default for Splitter {
    fn default() -> Self {
        Splitter {
            state: State::Normal,
            exec: false,
            cur: Vec::new(),
            content: false,
            start: 0,
            mark: 0,
        }
    }
}

/// Bytes that need a decision in the normal state; everything else is copied in runs.
const SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let s = b"'\"`-#/*;";
    let mut i = 0;
    while i < s.len() {
        t[s[i] as usize] = true;
        i += 1;
    }
    t
};

impl Splitter {
    /// Feeds `chunk`, which starts at byte `offset` of the stream; calls `emit` with each
    /// complete statement (without its `;`) and the offset where it began.
    pub fn feed<E>(
        &mut self,
        chunk: &[u8],
        offset: u64,
        emit: &mut impl FnMut(Vec<u8>, u64) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut i = 0;
        while i < chunk.len() {
            let b = chunk[i];
            match self.state {
                State::Normal => {
                    let run_end = chunk[i..]
                        .iter()
                        .position(|&c| SPECIAL[c as usize])
                        .map_or(chunk.len(), |p| i + p);
                    if run_end > i {
                        self.push_run(&chunk[i..run_end], offset + i as u64);
                        i = run_end;
                        continue;
                    }
                    match b {
                        b'\'' | b'"' | b'`' => {
                            self.push_content(b, offset + i as u64);
                            self.state = State::Quote(b);
                        }
                        b'-' => {
                            self.mark = offset + i as u64;
                            self.state = State::Dash;
                        }
                        b'#' => self.state = State::LineComment,
                        b'/' => {
                            self.mark = offset + i as u64;
                            self.state = State::Slash;
                        }
                        b'*' if self.exec => self.state = State::ExecStar,
                        b';' if !self.exec => self.end(emit)?,
                        _ => self.push_content(b, offset + i as u64),
                    }
                    i += 1;
                }
                State::Quote(q) => {
                    let end = chunk[i..]
                        .iter()
                        .position(|&c| c == q || (c == b'\\' && q != b'`'))
                        .map_or(chunk.len(), |p| i + p);
                    self.cur.extend_from_slice(&chunk[i..end]);
                    i = end;
                    if i < chunk.len() {
                        let c = chunk[i];
                        self.cur.push(c);
                        self.state = if c == q {
                            State::Normal
                        } else {
                            State::QuoteEscape(q)
                        };
                        i += 1;
                    }
                }
                State::QuoteEscape(q) => {
                    self.cur.push(b);
                    self.state = State::Quote(q);
                    i += 1;
                }
                State::Dash => {
                    if b == b'-' {
                        self.state = State::DashDash;
                        i += 1;
                    } else {
                        self.push_content(b'-', self.mark);
                        self.state = State::Normal;
                    }
                }
                State::DashDash => {
                    if b <= b' ' {
                        self.state = State::LineComment;
                    } else {
                        self.push_content(b'-', self.mark);
                        self.cur.push(b'-');
                        self.state = State::Normal;
                    }
                }
                State::LineComment => match chunk[i..].iter().position(|&c| c == b'\n') {
                    Some(p) => {
                        i += p + 1;
                        self.cur.push(b'\n');
                        self.state = State::Normal;
                    }
                    None => i = chunk.len(),
                },
                State::Slash => {
                    if b == b'*' {
                        self.state = State::SlashStar;
                        i += 1;
                    } else {
                        self.push_content(b'/', self.mark);
                        self.state = State::Normal;
                    }
                }
                State::SlashStar => {
                    i += 1;
                    self.state = match b {
                        b'!' => {
                            self.push_content(b'/', self.mark);
                            self.cur.extend_from_slice(b"*!");
                            self.exec = true;
                            State::Normal
                        }
                        b'M' => State::SlashStarM,
                        b'*' => State::BlockStar,
                        _ => State::Block,
                    };
                }
                State::SlashStarM => {
                    if b == b'!' {
                        self.push_content(b'/', self.mark);
                        self.cur.extend_from_slice(b"*M!");
                        self.exec = true;
                        self.state = State::Normal;
                        i += 1;
                    } else {
                        self.state = State::Block;
                    }
                }
                State::Block => match chunk[i..].iter().position(|&c| c == b'*') {
                    Some(p) => {
                        i += p + 1;
                        self.state = State::BlockStar;
                    }
                    None => i = chunk.len(),
                },
                State::BlockStar => {
                    i += 1;
                    self.state = match b {
                        b'/' => {
                            self.cur.push(b' ');
                            State::Normal
                        }
                        b'*' => State::BlockStar,
                        _ => State::Block,
                    };
                }
                State::ExecStar => {
                    if b == b'/' {
                        self.cur.extend_from_slice(b"*/");
                        self.exec = false;
                        i += 1;
                    } else {
                        self.cur.push(b'*');
                    }
                    self.state = State::Normal;
                }
            }
        }
        Ok(())
    }

    /// True between statements: not inside a quote or comment, nothing pending.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Normal) && !self.content
    }

    /// Ends the stream: a last statement without `;` is emitted like the client does.
    pub fn finish<E>(
        &mut self,
        emit: &mut impl FnMut(Vec<u8>, u64) -> Result<(), E>,
    ) -> Result<(), E> {
        match self.state {
            State::Dash => self.push_content(b'-', self.mark),
            State::Slash => self.push_content(b'/', self.mark),
            State::ExecStar => self.cur.push(b'*'),
            _ => {}
        }
        self.state = State::Normal;
        self.end(emit)
    }

    fn push_run(&mut self, run: &[u8], at: u64) {
        if !self.content {
            if let Some(p) = run.iter().position(|b| !b.is_ascii_whitespace()) {
                self.content = true;
                self.start = at + p as u64;
                self.cur.clear();
                self.cur.extend_from_slice(&run[p..]);
            }
            return;
        }
        self.cur.extend_from_slice(run);
    }

    fn push_content(&mut self, b: u8, at: u64) {
        if !self.content {
            self.content = true;
            self.start = at;
            self.cur.clear();
        }
        self.cur.push(b);
    }

    fn end<E>(&mut self, emit: &mut impl FnMut(Vec<u8>, u64) -> Result<(), E>) -> Result<(), E> {
        let had = std::mem::take(&mut self.content);
        let mut stmt = std::mem::take(&mut self.cur);
        if had {
            while stmt.last().is_some_and(|b| b.is_ascii_whitespace()) {
                stmt.pop();
            }
            emit(stmt, self.start)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_start_where_their_first_byte_is() {
        let text =
            b"SELECT 1;\n-1;\n/2;\n/*!40101 SET a=1*/;\n/*M!100616 SET b=2*/;\n  -- c\nDO 3;\n-";
        let want: Vec<(Vec<u8>, u64)> = [
            ("SELECT 1", "SELECT 1"),
            ("-1", "-1"),
            ("/2", "/2"),
            ("/*!40101 SET a=1*/", "/*!40101 SET a=1*/"),
            ("/*M!100616 SET b=2*/", "/*M!100616 SET b=2*/"),
            ("DO 3", "DO 3"),
        ]
        .iter()
        .map(|(sql, find)| {
            let at = text
                .windows(find.len())
                .position(|w| w == find.as_bytes())
                .unwrap();
            (sql.as_bytes().to_vec(), at as u64)
        })
        .chain([(b"-".to_vec(), text.len() as u64 - 1)])
        .collect();
        for cut in 1..text.len() {
            let mut got = Vec::new();
            let mut emit = |s: Vec<u8>, at: u64| -> Result<(), ()> {
                got.push((s, at));
                Ok(())
            };
            let mut sp = Splitter::default();
            sp.feed(&text[..cut], 0, &mut emit).unwrap();
            sp.feed(&text[cut..], cut as u64, &mut emit).unwrap();
            sp.finish(&mut emit).unwrap();
            assert_eq!(got, want, "cut at {cut}");
        }
    }

    fn split(text: &str, chunk: usize) -> Vec<String> {
        let mut s = Splitter::default();
        let mut out = Vec::new();
        let mut emit = |v: Vec<u8>, _| -> Result<(), ()> {
            out.push(String::from_utf8(v).unwrap());
            Ok(())
        };
        let mut off = 0;
        for c in text.as_bytes().chunks(chunk) {
            s.feed(c, off, &mut emit).unwrap();
            off += c.len() as u64;
        }
        s.finish(&mut emit).unwrap();
        out
    }

    #[test]
    fn splits_like_the_client_at_any_chunk_size() {
        let text = "/*M!999999\\- enable the sandbox mode */ \n-- MariaDB dump\n\
            /*!40101 SET @A=@@B */;\n# hash comment;\nINSERT INTO `t;` VALUES ('a;\\'b', \"c;\"\"d\", 1--1, 2/3, 4*5);\n\
            /* plain; comment */ SELECT 1 /**/;\n/*!50001 VIEW `v` AS select ';' */;\nSELECT '--' -- tail;\n;\nSELECT 2";
        let want = vec![
            "/*M!999999\\- enable the sandbox mode */ \n\n/*!40101 SET @A=@@B */".to_string(),
            "INSERT INTO `t;` VALUES ('a;\\'b', \"c;\"\"d\", 1--1, 2/3, 4*5)".to_string(),
            "SELECT 1".to_string(),
            "/*!50001 VIEW `v` AS select ';' */".to_string(),
            "SELECT '--' \n".trim_end().to_string(),
            "SELECT 2".to_string(),
        ];
        for chunk in [1, 2, 3, 7, 1000] {
            assert_eq!(split(text, chunk), want, "chunk size {chunk}");
        }
    }

    #[test]
    fn delimiter_is_refused() {
        assert!(check_supported(b"\nDELIMITER ;;", 0).is_err());
        assert!(check_supported(b"INSERT INTO d VALUES (1)", 0).is_ok());
    }
}
