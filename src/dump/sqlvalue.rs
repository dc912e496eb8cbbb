//! Exact SQL literals for values read over the text protocol.
//!
//! Over the text protocol every value arrives as the server's own text (or NULL), so
//! exactness comes down to quoting each column type right: numbers and DECIMAL verbatim,
//! binary strings and blobs as `_binary'..'` (below), geometry as `X'..'` hex, BIT as
//! `b'..'`, everything else as a quoted string with the same escapes `mysqldump` uses. The
//! session charset is utf8mb4, so multi-byte text (emoji included) passes through unchanged.
//!
//! **Binary values** are the raw bytes with mysqldump's six escapes (`\0 \' \\ \n \r \Z`),
//! behind the `_binary` introducer (issue 16: hex doubled the bytes the server parses, and
//! the bytes our restore hashes, scans and splits). The introducer keeps the bytes as they
//! are: without it, under `SET NAMES utf8mb4`, the server would read the literal as utf8mb4
//! and reject or convert what is not valid UTF-8 (the file sets the client charset to
//! binary for the tables, so the server lexes every byte as one character: see
//! `native::header`; literals still land in utf8mb4). Lexing is safe because no lexer can take
//! an escape's backslash or a quote for part of a multi-byte character: MariaDB's
//! `Lex_input_stream::get_text` (sql/sql_lex.cc) and `my_unescape` skip a multi-byte
//! character only where `my_ismbchar` says one starts, and the `mariadb` client's
//! `add_line` (client/mysql.cc) copies one only where `my_ismbchar` says so too; for
//! utf8mb4 (and for latin1, which has none) `my_ismbchar` accepts only well-formed
//! sequences, whose continuation bytes are 0x80..=0xBF, never 0x27 or 0x5C, so a stray
//! byte >= 0x80 before `\'` is one byte and the escape stays whole. (A client set to a
//! charset whose trail bytes include 0x5C, such as sjis or gbk, would not load this file,
//! nor mysqldump's, which writes binary the same way; the `mariadb` client's default is
//! `auto`, the locale's, utf8mb4 or latin1.) A raw NUL, which the
//! older client cut lines at (`strlen`), and raw line breaks never occur (they are escaped),
//! so every INSERT stays one line (what `sections`' scan relies on). Geometry keeps `X'..'`:
//! its values are not written as strings anywhere else and hex needs no such argument.
//! FLOAT is the one type whose text form loses precision; the dumper reads it through
//! `CAST(.. AS DOUBLE)` (see [`select_expr`]), and the double's text is exact.

use mysql_async::consts::{ColumnFlags, ColumnType};

/// The charset number the server uses for binary strings.
const BINARY_CHARSET: u16 = 63;

/// How a column's values are written as SQL literals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Literal {
    /// Written verbatim: integers, DECIMAL, FLOAT/DOUBLE (as read), YEAR.
    Number,
    /// `b'0101..'`.
    Bit,
    /// `X'..'` (geometry).
    Hex,
    /// `_binary'..'` with backslash escapes (binary strings and BLOBs).
    Binary,
    /// `'..'` with backslash escapes.
    Text,
}

/// Chooses the literal form from a result-set column's metadata.
pub fn literal_for(column: &mysql_async::Column) -> Literal {
    literal_from(column.column_type(), column.character_set(), column.flags())
}

/// [`literal_for`] for a column read by the wire client: the same decision over the same
/// metadata (type, charset, flags). A type number mysql_async would not know is text.
pub(crate) fn literal_for_wire(column: &super::wire::packet::ColumnDef) -> Literal {
    match ColumnType::try_from(column.column_type) {
        Ok(t) => literal_from(
            t,
            column.charset,
            ColumnFlags::from_bits_truncate(column.flags),
        ),
        Err(_) => Literal::Text,
    }
}

fn literal_from(column_type: ColumnType, charset: u16, flags: ColumnFlags) -> Literal {
    use ColumnType::*;
    match column_type {
        MYSQL_TYPE_TINY
        | MYSQL_TYPE_SHORT
        | MYSQL_TYPE_LONG
        | MYSQL_TYPE_LONGLONG
        | MYSQL_TYPE_INT24
        | MYSQL_TYPE_DECIMAL
        | MYSQL_TYPE_NEWDECIMAL
        | MYSQL_TYPE_FLOAT
        | MYSQL_TYPE_DOUBLE
        | MYSQL_TYPE_YEAR => Literal::Number,
        MYSQL_TYPE_BIT => Literal::Bit,
        // Hex, not `_binary`: nothing else writes geometry as a string, and hex is proven.
        MYSQL_TYPE_GEOMETRY => Literal::Hex,
        MYSQL_TYPE_STRING
        | MYSQL_TYPE_VAR_STRING
        | MYSQL_TYPE_VARCHAR
        | MYSQL_TYPE_BLOB
        | MYSQL_TYPE_TINY_BLOB
        | MYSQL_TYPE_MEDIUM_BLOB
        | MYSQL_TYPE_LONG_BLOB
            if charset == BINARY_CHARSET
                && !flags.contains(ColumnFlags::ENUM_FLAG)
                && !flags.contains(ColumnFlags::SET_FLAG) =>
        {
            Literal::Binary
        }
        _ => Literal::Text,
    }
}

/// Appends `value` (the server's text for it, or `None` for NULL) as a literal.
pub fn push_literal(out: &mut Vec<u8>, kind: Literal, value: Option<&[u8]>) {
    let Some(v) = value else {
        out.extend_from_slice(b"NULL");
        return;
    };
    match kind {
        Literal::Number => out.extend_from_slice(v),
        Literal::Hex => push_hex(out, v),
        Literal::Binary => {
            out.extend_from_slice(b"_binary");
            push_quoted_binary(out, v);
        }
        Literal::Bit => push_bits(out, v),
        Literal::Text => push_quoted(out, v),
    }
}

fn push_hex(out: &mut Vec<u8>, v: &[u8]) {
    out.reserve(v.len() * 2 + 3);
    out.extend_from_slice(b"X'");
    let start = out.len();
    out.resize(start + v.len() * 2, 0);
    // One table load and one two-byte store per byte (the `hex` crate splits every byte
    // into nibbles): binary columns are a large share of the dumper's CPU.
    for (pair, &b) in out[start..].chunks_exact_mut(2).zip(v) {
        pair.copy_from_slice(&HEX_PAIRS[b as usize]);
    }
    out.push(b'\'');
}

/// Lower-case hex digits of every byte value.
static HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [DIGITS[i >> 4], DIGITS[i & 15]];
        i += 1;
    }
    t
};

fn push_bits(out: &mut Vec<u8>, v: &[u8]) {
    out.extend_from_slice(b"b'");
    if v.is_empty() {
        out.push(b'0');
    }
    for byte in v {
        for bit in (0..8).rev() {
            out.push(if byte >> bit & 1 == 1 { b'1' } else { b'0' });
        }
    }
    out.push(b'\'');
}

/// `'...'` with mysqldump's escapes; runs without special bytes are copied in one go.
pub fn push_quoted(out: &mut Vec<u8>, v: &[u8]) {
    push_escaped(out, v, may_need_escape);
}

/// [`push_quoted`] for binary values: the same bytes out, but words are tested for exactly
/// the six escaped bytes. Random bytes hold a control byte in most eight-byte words, so the
/// text test would send two words in three down the byte-by-byte path; this one sends one
/// in six.
fn push_quoted_binary(out: &mut Vec<u8>, v: &[u8]) {
    push_escaped(out, v, holds_escaped_byte);
}

#[inline(always)]
fn push_escaped(out: &mut Vec<u8>, v: &[u8], may_need: impl Fn(u64) -> bool) {
    out.reserve(v.len() + 2);
    out.push(b'\'');
    let mut run = 0;
    let mut i = 0;
    while i < v.len() {
        // Eight bytes at a time without branches per byte (this is the dumper's hottest
        // loop, and values rarely hold a byte to escape); a word that may hold one is
        // looked at byte by byte.
        if let Some(word) = v.get(i..i + 8) {
            let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
            if !may_need(word) {
                i += 8;
                continue;
            }
            for _ in 0..8 {
                if let Some(esc) = escape(v[i]) {
                    out.extend_from_slice(&v[run..i]);
                    out.extend_from_slice(esc);
                    run = i + 1;
                }
                i += 1;
            }
            continue;
        }
        if let Some(esc) = escape(v[i]) {
            out.extend_from_slice(&v[run..i]);
            out.extend_from_slice(esc);
            run = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&v[run..]);
    out.push(b'\'');
}

/// The escape for a byte that needs one.
fn escape(b: u8) -> Option<&'static [u8]> {
    match b {
        0 => Some(b"\\0"),
        b'\'' => Some(b"\\'"),
        b'\\' => Some(b"\\\\"),
        b'\n' => Some(b"\\n"),
        b'\r' => Some(b"\\r"),
        0x1a => Some(b"\\Z"),
        _ => None,
    }
}

/// `true` if any byte of `word` is below 0x20 (NUL, `\n`, `\r`, 0x1a and the other control
/// bytes, which merely take the slow path), a quote or a backslash. Exact as a presence
/// test: the borrow of the subtraction only ever marks bytes above one that matched.
fn may_need_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * b'\'' as u64);
    let backslash = word ^ (ONES * b'\\' as u64);
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x;
    (below_space | zero_byte(quote) | zero_byte(backslash)) & HIGH != 0
}

/// `true` exactly if some byte of `word` is one of the six that [`escape`] rewrites (the
/// same borrow argument as [`may_need_escape`]).
fn holds_escaped_byte(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x;
    let is = |b: u8| zero_byte(word ^ (ONES * b as u64));
    (zero_byte(word) | is(b'\'') | is(b'\\') | is(b'\n') | is(b'\r') | is(0x1a)) & HIGH != 0
}

/// `` `name` `` with backticks doubled.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A name as it may appear in a `--` comment of a dump: backtick-quoted like [`ident`], and
/// with every control character (newline and carriage return above all) and every Unicode
/// line or paragraph separator written as `\u{..}`, and backslashes doubled. A comment ends
/// at the first newline, so a raw one in a name would let the rest of the name run as SQL
/// in any loader (the mysqldump CVE-2016-5483 class); this form is always one line, and it
/// is injective, so [`parse_comment_name`] gives the name back exactly.
pub fn comment_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('`');
    for c in name.chars() {
        match c {
            '`' => out.push_str("``"),
            '\\' => out.push_str("\\\\"),
            c if needs_comment_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('`');
    out
}

fn needs_comment_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// The inverse of [`comment_name`]: `None` unless `text` is exactly one such form.
pub fn parse_comment_name(text: &str) -> Option<String> {
    let inner = text.strip_prefix('`')?.strip_suffix('`')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '`' => {
                if chars.next()? != '`' {
                    return None;
                }
                out.push('`');
            }
            '\\' => match chars.next()? {
                '\\' => out.push('\\'),
                'u' => {
                    let rest = chars.as_str().strip_prefix('{')?;
                    let close = rest.find('}')?;
                    let code = u32::from_str_radix(&rest[..close], 16).ok()?;
                    let decoded = char::from_u32(code).filter(|c| needs_comment_escape(*c))?;
                    out.push(decoded);
                    chars = rest[close + 1..].chars();
                }
                _ => return None,
            },
            c if needs_comment_escape(c) => return None,
            c => out.push(c),
        }
    }
    // Only the canonical form is accepted, so one name has one marker.
    (comment_name(&out) == text).then_some(out)
}

/// Text from outside (a server's version string) made safe for a `--` comment: control
/// characters and line separators become `?`.
pub fn comment_text(text: &str) -> String {
    text.chars()
        .map(|c| if needs_comment_escape(c) { '?' } else { c })
        .collect()
}

/// The expression that reads a column exactly: FLOAT through a DOUBLE cast (its own text
/// form keeps only 6 significant digits), everything else as itself.
pub fn select_expr(column: &str, data_type: &str) -> String {
    if data_type.eq_ignore_ascii_case("float") {
        format!("CAST({} AS DOUBLE)", ident(column))
    } else {
        ident(column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(kind: Literal, v: Option<&[u8]>) -> String {
        let mut out = Vec::new();
        push_literal(&mut out, kind, v);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn literals() {
        assert_eq!(lit(Literal::Text, None), "NULL");
        assert_eq!(lit(Literal::Text, Some(b"")), "''");
        assert_eq!(
            lit(Literal::Text, Some(b"a'b\\c\n\r\0\x1az")),
            r"'a\'b\\c\n\r\0\Zz'"
        );
        assert_eq!(
            lit(Literal::Text, Some("héllo 😀".as_bytes())),
            "'héllo 😀'"
        );
        // Special bytes at every position around the 16-byte blocks, against the plain
        // byte-by-byte rule.
        let specials: [(u8, &str); 6] = [
            (0, r"\0"),
            (b'\'', r"\'"),
            (b'\\', r"\\"),
            (b'\n', r"\n"),
            (b'\r', r"\r"),
            (0x1a, r"\Z"),
        ];
        for len in [0, 1, 15, 16, 17, 31, 32, 33, 50] {
            for at in 0..len {
                for (b, _) in specials {
                    let mut v = vec![b'a'; len];
                    v[at] = b;
                    v[len - 1 - (at % 3).min(len - 1)] = b'\\';
                    let expected: String = v
                        .iter()
                        .map(|&c| match specials.iter().find(|(s, _)| *s == c) {
                            Some((_, e)) => e.to_string(),
                            None => (c as char).to_string(),
                        })
                        .collect();
                    assert_eq!(lit(Literal::Text, Some(&v)), format!("'{expected}'"));
                }
            }
        }
        // Every byte value at every position of the eight-byte words, against the plain
        // byte-by-byte rule (bytes below 0x20 that need no escape pass through unchanged).
        for b in 0..=255u8 {
            for at in 0..20 {
                let mut v = vec![b'x'; 20];
                v[at] = b;
                let mut expected = b"'".to_vec();
                for &c in &v {
                    match specials.iter().find(|(s, _)| *s == c) {
                        Some((_, e)) => expected.extend_from_slice(e.as_bytes()),
                        None => expected.push(c),
                    }
                }
                expected.push(b'\'');
                let mut out = Vec::new();
                push_literal(&mut out, Literal::Text, Some(&v));
                assert_eq!(out, expected, "byte {b:#x} at {at}");
            }
        }
        // Binary values: the same escapes behind `_binary`, every byte value at every
        // position of the words (bytes that are not UTF-8 included), NULL, '' and x'00'.
        for b in 0..=255u8 {
            for at in 0..20 {
                let mut v = vec![0x80 | b; 20];
                v[at] = b;
                let mut expected = b"_binary".to_vec();
                push_quoted(&mut expected, &v);
                let mut out = Vec::new();
                push_literal(&mut out, Literal::Binary, Some(&v));
                assert_eq!(out, expected, "byte {b:#x} at {at}");
            }
        }
        let mut out = Vec::new();
        push_literal(
            &mut out,
            Literal::Binary,
            Some(&[0xc3, b'\'', 0xe2, b'\\', 0, 0xff]),
        );
        assert_eq!(out, b"_binary'\xc3\\'\xe2\\\\\\0\xff'");
        assert_eq!(lit(Literal::Binary, None), "NULL");
        assert_eq!(lit(Literal::Binary, Some(b"")), "_binary''");
        assert_eq!(lit(Literal::Binary, Some(b"\0")), r"_binary'\0'");
        for word in 0..=u16::MAX {
            let w = u64::from(word) * 0x0001_0001_0001_0001;
            let exact = w.to_le_bytes().iter().any(|&b| escape(b).is_some());
            assert_eq!(holds_escaped_byte(w), exact, "{w:#x}");
        }
        let all: Vec<u8> = (0..=255u8).collect();
        assert_eq!(
            lit(Literal::Hex, Some(&all)),
            format!("X'{}'", hex::encode(&all))
        );
        assert_eq!(lit(Literal::Hex, Some(&[0, 0xff, 0x10])), "X'00ff10'");
        assert_eq!(lit(Literal::Hex, Some(b"")), "X''");
        assert_eq!(
            lit(Literal::Bit, Some(&[0x01, 0x02])),
            "b'0000000100000010'"
        );
        assert_eq!(lit(Literal::Number, Some(b"-12.3400")), "-12.3400");
        assert_eq!(ident("we`ird"), "`we``ird`");
        assert_eq!(comment_name("we`ird"), "`we``ird`");
        assert_eq!(
            comment_name("a\nb\rc\\d\u{2028}\u{85}é"),
            "`a\\u{a}b\\u{d}c\\\\d\\u{2028}\\u{85}é`"
        );
        for name in [
            "plain",
            "x\nCREATE DATABASE pwned;#",
            "\\u{a}",
            "a``b`",
            "tab\there\u{7f}",
            "ünï中文",
        ] {
            let c = comment_name(name);
            assert!(!c.contains(['\n', '\r']), "{c}");
            assert_eq!(parse_comment_name(&c).as_deref(), Some(name), "{c}");
        }
        // Non-canonical or malformed forms are refused.
        for bad in [
            "`a`b`",
            "`a\nb`",
            "`\\u{41}`",
            "`\\q`",
            "`\\u{a`",
            "a",
            "`\\u{0a}`",
        ] {
            assert_eq!(parse_comment_name(bad), None, "{bad:?}");
        }
        assert_eq!(comment_text("10.11\nx"), "10.11?x");
        assert_eq!(select_expr("f", "FLOAT"), "CAST(`f` AS DOUBLE)");
        assert_eq!(select_expr("d", "double"), "`d`");
    }
}
