//! Pure parsing and building of MySQL/MariaDB client/server protocol payloads: no I/O, so
//! every rule is unit-tested over byte slices. Framing (the 4-byte header, the 16 MiB
//! continuation rule, sequence ids) is in [`Frames`]; payload forms (length-encoded
//! integers and strings, OK/ERR, the v10 handshake, column definitions, text rows) are
//! separate functions.

use super::WireError;

/// Largest payload one packet carries; a payload of exactly this length is continued by the
/// next packet (a zero-length one when the payload is an exact multiple).
pub const MAX_PAYLOAD: usize = 0xFF_FFFF;

/// Capability flags (see the protocol docs' "Capabilities").
pub mod caps {
    pub const LONG_PASSWORD: u32 = 1;
    pub const PROTOCOL_41: u32 = 1 << 9;
    pub const SSL: u32 = 1 << 11;
    pub const TRANSACTIONS: u32 = 1 << 13;
    pub const SECURE_CONNECTION: u32 = 1 << 15;
    pub const MULTI_RESULTS: u32 = 1 << 17;
    pub const PLUGIN_AUTH: u32 = 1 << 19;
    pub const DEPRECATE_EOF: u32 = 1 << 24;
}

/// The capabilities this client asks for (all of them are required from the server).
pub const CLIENT_CAPS: u32 = caps::LONG_PASSWORD
    | caps::PROTOCOL_41
    | caps::TRANSACTIONS
    | caps::SECURE_CONNECTION
    | caps::MULTI_RESULTS
    | caps::PLUGIN_AUTH
    | caps::DEPRECATE_EOF;

/// utf8mb4_general_ci: the collation the session starts with (the dumper's session setup
/// runs `SET NAMES utf8mb4` in any case).
pub const UTF8MB4_GENERAL_CI: u8 = 45;

/// Server status flag: another result set follows this one.
pub const MORE_RESULTS_EXISTS: u16 = 0x0008;

/// The one authentication plugin this client speaks.
pub const NATIVE_PASSWORD: &str = "mysql_native_password";

/// A cursor over one payload; every read checks the length (a short payload is a
/// [`WireError::Protocol`], never a panic).
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn short(what: &str) -> WireError {
    WireError::Protocol(format!("packet too short reading {what}"))
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }
    /// Bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }
    /// Current offset into the payload.
    pub fn pos(&self) -> usize {
        self.pos
    }
    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }
    /// The next `n` bytes.
    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).ok_or_else(|| short(what))?;
        let s = self.buf.get(self.pos..end).ok_or_else(|| short(what))?;
        self.pos = end;
        Ok(s)
    }
    /// One byte.
    pub fn u8(&mut self, what: &str) -> Result<u8, WireError> {
        Ok(self.take(1, what)?[0])
    }
    /// A little-endian u16.
    pub fn u16(&mut self, what: &str) -> Result<u16, WireError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    /// A little-endian u32.
    pub fn u32(&mut self, what: &str) -> Result<u32, WireError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// A NUL-terminated string (without the NUL); the rest when there is no NUL.
    pub fn nul_str(&mut self) -> &'a [u8] {
        let rest = self.rest();
        match rest.iter().position(|&b| b == 0) {
            Some(i) => {
                self.pos += i + 1;
                &rest[..i]
            }
            None => {
                self.pos = self.buf.len();
                rest
            }
        }
    }
    /// A length-encoded integer. `0xFB` (NULL in rows) and `0xFF` are not integers.
    pub fn lenenc_int(&mut self, what: &str) -> Result<u64, WireError> {
        let first = self.u8(what)?;
        Ok(match first {
            0..=0xFA => first as u64,
            0xFC => self.u16(what)? as u64,
            0xFD => {
                let b = self.take(3, what)?;
                u32::from_le_bytes([b[0], b[1], b[2], 0]) as u64
            }
            0xFE => {
                let b = self.take(8, what)?;
                u64::from_le_bytes(b.try_into().expect("8 bytes"))
            }
            other => {
                return Err(WireError::Protocol(format!(
                    "byte {other:#04x} where a length-encoded integer ({what}) was expected"
                )));
            }
        })
    }
    /// A length-encoded string.
    pub fn lenenc_str(&mut self, what: &str) -> Result<&'a [u8], WireError> {
        let n = self.lenenc_int(what)?;
        let n = usize::try_from(n).map_err(|_| short(what))?;
        self.take(n, what)
    }
}

/// Appends a packet header and `payload` split into packets by the continuation rule,
/// numbering them from `seq`; returns the next sequence id.
pub fn frame(out: &mut Vec<u8>, payload: &[u8], mut seq: u8) -> u8 {
    let mut rest = payload;
    loop {
        let n = rest.len().min(MAX_PAYLOAD);
        out.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
        out.push(seq);
        out.extend_from_slice(&rest[..n]);
        seq = seq.wrapping_add(1);
        rest = &rest[n..];
        if n < MAX_PAYLOAD {
            return seq;
        }
    }
}

/// Where [`Frames::next`] found a whole payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Not enough bytes yet: read more and call again.
    Need,
    /// One packet's payload in the input at `start..end`; `consumed` bytes were used.
    Single {
        start: usize,
        end: usize,
        consumed: usize,
    },
    /// A payload that spanned packets, now whole in [`Frames::joined`].
    Joined { consumed: usize },
    /// Whole continuation packets (`consumed` bytes) were taken into [`Frames::joined`]
    /// and the rest of the payload is not in the input yet: drop them, read more, call
    /// again. So the caller's buffer never has to hold more than one packet.
    Partial { consumed: usize },
}

/// Reassembles payloads from packets and checks their sequence ids. A payload that fits
/// one packet is returned as a range of the input (no copy); one that spans packets is
/// joined into one reusable buffer.
#[derive(Debug, Default)]
pub struct Frames {
    /// The sequence id the next packet must carry.
    pub seq: u8,
    /// The joined payload of the last [`Found::Joined`].
    pub joined: Vec<u8>,
    joining: bool,
}

impl Frames {
    /// Finds the next whole payload at the start of `input`.
    pub fn next(&mut self, input: &[u8]) -> Result<Found, WireError> {
        let mut pos = 0;
        if !self.joining {
            self.joined.clear();
        }
        loop {
            let Some(head) = input.get(pos..pos + 4) else {
                return Ok(Self::need(pos));
            };
            let len = u32::from_le_bytes([head[0], head[1], head[2], 0]) as usize;
            if head[3] != self.seq {
                return Err(WireError::Protocol(format!(
                    "packet sequence id {} where {} was expected",
                    head[3], self.seq
                )));
            }
            let Some(body) = input.get(pos + 4..pos + 4 + len) else {
                return Ok(Self::need(pos));
            };
            self.seq = self.seq.wrapping_add(1);
            let consumed = pos + 4 + len;
            if len < MAX_PAYLOAD && !self.joining {
                return Ok(Found::Single {
                    start: 4,
                    end: consumed,
                    consumed,
                });
            }
            self.joined.extend_from_slice(body);
            self.joining = true;
            pos = consumed;
            if len < MAX_PAYLOAD {
                self.joining = false;
                return Ok(Found::Joined { consumed });
            }
        }
    }

    /// The input ended inside a packet, after `pos` bytes of whole continuation packets.
    fn need(pos: usize) -> Found {
        if pos == 0 {
            Found::Need
        } else {
            Found::Partial { consumed: pos }
        }
    }
}

/// The first packet of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// The server's version string.
    pub server_version: String,
    /// The connection id (what `KILL` takes).
    pub connection_id: u32,
    /// The server's capabilities.
    pub capabilities: u32,
    /// The scramble (nonce) for the password hash, without the trailing NUL.
    pub scramble: Vec<u8>,
    /// The server's default auth plugin.
    pub auth_plugin: String,
}

/// Parses a v10 handshake; an ERR packet (too many connections, host blocked) is the
/// server's error.
pub fn parse_handshake(p: &[u8]) -> Result<Handshake, WireError> {
    if p.first() == Some(&0xFF) {
        return Err(parse_err(p, false));
    }
    let mut c = Cursor::new(p);
    let version = c.u8("the protocol version")?;
    if version != 10 {
        return Err(WireError::Unsupported(format!(
            "handshake protocol version {version}"
        )));
    }
    let server_version = String::from_utf8_lossy(c.nul_str()).into_owned();
    let connection_id = c.u32("the connection id")?;
    let mut scramble = c.take(8, "the scramble")?.to_vec();
    c.u8("the filler")?;
    let mut capabilities = c.u16("the capabilities")? as u32;
    let mut auth_plugin = String::new();
    if !c.is_empty() {
        c.u8("the charset")?;
        c.u16("the status")?;
        capabilities |= (c.u16("the capabilities")? as u32) << 16;
        let data_len = c.u8("the scramble length")? as usize;
        c.take(10, "the reserved bytes")?;
        if capabilities & caps::SECURE_CONNECTION != 0 {
            let n = data_len.saturating_sub(8).max(13);
            let part2 = c.take(n.min(c.rest().len()), "the scramble")?;
            // The second part ends with a NUL that is not part of the scramble.
            let part2 = part2.strip_suffix(&[0]).unwrap_or(part2);
            scramble.extend_from_slice(part2);
        }
        if capabilities & caps::PLUGIN_AUTH != 0 {
            auth_plugin = String::from_utf8_lossy(c.nul_str()).into_owned();
        }
    }
    Ok(Handshake {
        server_version,
        connection_id,
        capabilities,
        scramble,
        auth_plugin,
    })
}

/// `mysql_native_password`'s answer: SHA1(pw) XOR SHA1(scramble + SHA1(SHA1(pw))); empty
/// for an empty password.
pub fn native_password(password: &[u8], scramble: &[u8]) -> Vec<u8> {
    use sha1::{Digest, Sha1};
    if password.is_empty() {
        return Vec::new();
    }
    let h1 = Sha1::digest(password);
    let h2 = Sha1::digest(h1);
    let mut s = Sha1::new();
    s.update(scramble.get(..20).unwrap_or(scramble));
    s.update(h2);
    let h3 = s.finalize();
    h1.iter().zip(h3.iter()).map(|(a, b)| a ^ b).collect()
}

/// The HandshakeResponse41 payload.
pub fn handshake_response(user: &str, auth: &[u8], plugin: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(64 + user.len());
    p.extend_from_slice(&CLIENT_CAPS.to_le_bytes());
    p.extend_from_slice(&(1u32 << 30).to_le_bytes());
    p.push(UTF8MB4_GENERAL_CI);
    p.extend_from_slice(&[0; 23]);
    p.extend_from_slice(user.as_bytes());
    p.push(0);
    p.push(auth.len() as u8);
    p.extend_from_slice(auth);
    p.extend_from_slice(plugin.as_bytes());
    p.push(0);
    p
}

/// What the server answered to the handshake response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthReply {
    /// Logged in.
    Ok,
    /// Switch to `plugin`, answering with a hash over `data`.
    Switch { plugin: String, data: Vec<u8> },
    /// More data for the current plugin (not used by `mysql_native_password`).
    More,
}

/// Parses the server's answer during authentication (an ERR is the server's error).
pub fn parse_auth_reply(p: &[u8]) -> Result<AuthReply, WireError> {
    match p.first() {
        Some(0x00) => Ok(AuthReply::Ok),
        Some(0xFF) => Err(parse_err(p, true)),
        Some(0xFE) => {
            let mut c = Cursor::new(&p[1..]);
            let plugin = String::from_utf8_lossy(c.nul_str()).into_owned();
            let data = c.rest();
            let data = data.strip_suffix(&[0]).unwrap_or(data).to_vec();
            Ok(AuthReply::Switch { plugin, data })
        }
        Some(0x01) => Ok(AuthReply::More),
        _ => Err(WireError::Protocol(
            "unexpected packet during authentication".into(),
        )),
    }
}

/// The client's next step after the server's answer `reply` during authentication: done
/// (`None`), or the packet to send (`Some`: the native hash over a switch's new scramble).
/// Any plugin but `mysql_native_password` is [`WireError::Unsupported`].
pub fn auth_step(reply: AuthReply, password: &[u8]) -> Result<Option<Vec<u8>>, WireError> {
    match reply {
        AuthReply::Ok => Ok(None),
        AuthReply::Switch { plugin, data } if plugin == NATIVE_PASSWORD => {
            Ok(Some(native_password(password, &data)))
        }
        AuthReply::Switch { plugin, .. } => {
            Err(WireError::Unsupported(format!("auth plugin {plugin}")))
        }
        AuthReply::More => Err(WireError::Unsupported(
            "auth plugin exchange beyond mysql_native_password".into(),
        )),
    }
}

/// An ERR packet as the server's typed error. `protocol41`: the SQL state follows a `#`.
pub fn parse_err(p: &[u8], protocol41: bool) -> WireError {
    let mut c = Cursor::new(p.get(1..).unwrap_or_default());
    let Ok(code) = c.u16("the error code") else {
        return WireError::Protocol("ERR packet without an error code".into());
    };
    let mut state = String::new();
    if protocol41 && c.rest().first() == Some(&b'#') && c.rest().len() >= 6 {
        let s = c.take(6, "the SQL state").unwrap_or_default();
        state = String::from_utf8_lossy(&s[1..]).into_owned();
    }
    WireError::Server {
        code,
        state,
        message: String::from_utf8_lossy(c.rest()).into_owned(),
    }
}

/// The parts of an OK packet the client uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OkPacket {
    /// Server status flags.
    pub status: u16,
}

/// Parses an OK packet (header `0x00`, or `0xFE` when it ends a result set).
pub fn parse_ok(p: &[u8]) -> Result<OkPacket, WireError> {
    let mut c = Cursor::new(p);
    c.u8("the OK header")?;
    c.lenenc_int("the affected rows")?;
    c.lenenc_int("the last insert id")?;
    let status = c.u16("the status")?;
    Ok(OkPacket { status })
}

/// Whether a packet inside a result set's rows ends it: `0xFE` in a payload shorter than
/// one whole packet (a row that starts with `0xFE`, an 8-byte length, is at least that
/// long).
pub fn is_end_of_rows(p: &[u8]) -> bool {
    p.first() == Some(&0xFE) && p.len() < MAX_PAYLOAD
}

/// What [`super::super::sqlvalue`] needs of a result column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnDef {
    /// The column type (`MYSQL_TYPE_*` number).
    pub column_type: u8,
    /// The column flags.
    pub flags: u16,
    /// The charset (collation) number; 63 is binary.
    pub charset: u16,
}

/// Parses a Protocol::ColumnDefinition41 payload.
pub fn parse_column(p: &[u8]) -> Result<ColumnDef, WireError> {
    let mut c = Cursor::new(p);
    for what in [
        "the catalog",
        "the schema",
        "the table",
        "the original table",
        "the column name",
        "the original column name",
    ] {
        c.lenenc_str(what)?;
    }
    c.lenenc_int("the fixed-fields length")?;
    let charset = c.u16("the charset")?;
    c.u32("the column length")?;
    let column_type = c.u8("the column type")?;
    let flags = c.u16("the column flags")?;
    Ok(ColumnDef {
        column_type,
        flags,
        charset,
    })
}

/// Marks NULL in [`parse_text_row`]'s output.
pub const NULL_SPAN: (u32, u32) = (u32::MAX, u32::MAX);

/// Splits a text-protocol row into `columns` value spans (offsets into `p`; [`NULL_SPAN`]
/// for NULL), reusing `out`. Offsets are u32: one payload is below 4 GiB (the server's
/// max_allowed_packet is at most 1 GiB).
pub fn parse_text_row(
    p: &[u8],
    columns: usize,
    out: &mut Vec<(u32, u32)>,
) -> Result<(), WireError> {
    out.clear();
    let mut c = Cursor::new(p);
    for _ in 0..columns {
        if c.rest().first() == Some(&0xFB) {
            c.u8("a NULL")?;
            out.push(NULL_SPAN);
            continue;
        }
        let v = c.lenenc_str("a value")?;
        let end = c.pos();
        out.push(((end - v.len()) as u32, end as u32));
    }
    if !c.is_empty() {
        return Err(WireError::Protocol(format!(
            "a row with bytes after its {columns} values"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenenc_ints_of_every_width() {
        let mut c = Cursor::new(&[
            0xFA, 0xFC, 0x34, 0x12, 0xFD, 1, 2, 3, 0xFE, 1, 0, 0, 0, 0, 0, 0, 0x80,
        ]);
        assert_eq!(c.lenenc_int("x").unwrap(), 0xFA);
        assert_eq!(c.lenenc_int("x").unwrap(), 0x1234);
        assert_eq!(c.lenenc_int("x").unwrap(), 0x030201);
        assert_eq!(c.lenenc_int("x").unwrap(), 0x8000_0000_0000_0001);
        assert!(c.is_empty());
        assert!(matches!(
            Cursor::new(&[0xFF]).lenenc_int("x"),
            Err(WireError::Protocol(_))
        ));
        assert!(matches!(
            Cursor::new(&[0xFC, 1]).lenenc_int("x"),
            Err(WireError::Protocol(_))
        ));
    }

    #[test]
    fn lenenc_strings_and_short_input() {
        let mut c = Cursor::new(b"\x03abc\x00\x05ab");
        assert_eq!(c.lenenc_str("s").unwrap(), b"abc");
        assert_eq!(c.lenenc_str("s").unwrap(), b"");
        assert!(matches!(c.lenenc_str("s"), Err(WireError::Protocol(_))));
    }

    #[test]
    fn text_rows_tell_null_from_empty() {
        let p = b"\xFB\x00\x02hi\x03\x00\x01\x02";
        let mut spans = Vec::new();
        parse_text_row(p, 4, &mut spans).unwrap();
        assert_eq!(spans[0], NULL_SPAN);
        assert_eq!(&p[spans[1].0 as usize..spans[1].1 as usize], b"");
        assert_ne!(spans[1], NULL_SPAN);
        assert_eq!(&p[spans[2].0 as usize..spans[2].1 as usize], b"hi");
        assert_eq!(
            &p[spans[3].0 as usize..spans[3].1 as usize],
            b"\x00\x01\x02"
        );
        assert!(parse_text_row(p, 3, &mut spans).is_err(), "trailing bytes");
        assert!(parse_text_row(p, 5, &mut spans).is_err(), "missing value");
    }

    fn packets(payload: &[u8], seq: u8) -> Vec<u8> {
        let mut out = Vec::new();
        frame(&mut out, payload, seq);
        out
    }

    #[test]
    fn single_packets_are_found_in_place() {
        let mut input = packets(b"hello", 0);
        input.extend(packets(b"x", 1));
        let mut f = Frames::default();
        assert_eq!(f.next(&input[..3]).unwrap(), Found::Need);
        assert_eq!(f.next(&input[..8]).unwrap(), Found::Need);
        let Found::Single {
            start,
            end,
            consumed,
        } = f.next(&input).unwrap()
        else {
            panic!()
        };
        assert_eq!(&input[start..end], b"hello");
        assert_eq!(
            f.next(&input[consumed..]).unwrap(),
            Found::Single {
                start: 4,
                end: 5,
                consumed: 5
            }
        );
    }

    #[test]
    fn continuation_packets_are_joined() {
        // Exactly one full packet: followed by an empty one.
        for len in [MAX_PAYLOAD, MAX_PAYLOAD + 10, 2 * MAX_PAYLOAD + 1] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let input = packets(&payload, 7);
            assert_eq!(input.len(), len + 4 * (len / MAX_PAYLOAD + 1));
            let mut f = Frames {
                seq: 7,
                ..Frames::default()
            };
            // Fed whole: joined at once.
            assert_eq!(
                f.next(&input).unwrap(),
                Found::Joined {
                    consumed: input.len()
                }
            );
            assert!(f.joined == payload, "payload of {len} bytes joined");
            // Fed in pieces: whole packets are taken as they come.
            let mut f = Frames {
                seq: 7,
                ..Frames::default()
            };
            let mut pos = 0;
            let mut end = 1000;
            loop {
                match f.next(&input[pos..end.min(input.len())]) {
                    Ok(Found::Need) => end += 1 << 20,
                    Ok(Found::Partial { consumed }) => pos += consumed,
                    Ok(Found::Joined { consumed }) => {
                        assert_eq!(pos + consumed, input.len());
                        break;
                    }
                    other => panic!("{other:?}"),
                }
            }
            assert!(
                f.joined == payload,
                "payload of {len} bytes joined in pieces"
            );
        }
    }

    #[test]
    fn wrong_sequence_ids_are_refused() {
        let input = packets(b"abc", 3);
        let mut f = Frames::default();
        assert!(matches!(f.next(&input), Err(WireError::Protocol(m)) if m.contains("sequence")));
    }

    #[test]
    fn err_packets_become_typed_server_errors() {
        let p = b"\xFF\x15\x04#28000Access denied for user 'x'";
        assert_eq!(
            parse_err(p, true),
            WireError::Server {
                code: 1045,
                state: "28000".into(),
                message: "Access denied for user 'x'".into()
            }
        );
        // Before the capabilities are agreed there is no SQL state.
        let p = b"\xFF\x10\x04Too many connections";
        assert!(
            matches!(parse_err(p, false), WireError::Server { code: 1040, ref state, .. } if state.is_empty())
        );
        assert!(matches!(
            parse_auth_reply(p),
            Err(WireError::Server { code: 1040, .. })
        ));
    }

    #[test]
    fn handshake_and_auth_switch() {
        let mut p = vec![10];
        p.extend_from_slice(b"11.4.2-MariaDB\0");
        p.extend_from_slice(&42u32.to_le_bytes());
        p.extend_from_slice(b"abcdefgh\0");
        let c = caps::PROTOCOL_41 | caps::SECURE_CONNECTION | caps::PLUGIN_AUTH | caps::SSL;
        p.extend_from_slice(&(c as u16).to_le_bytes());
        p.push(45);
        p.extend_from_slice(&2u16.to_le_bytes());
        p.extend_from_slice(&((c >> 16) as u16).to_le_bytes());
        p.push(21);
        p.extend_from_slice(&[0; 10]);
        p.extend_from_slice(b"ijklmnopqrst\0");
        p.extend_from_slice(b"mysql_native_password\0");
        let h = parse_handshake(&p).unwrap();
        assert_eq!(h.server_version, "11.4.2-MariaDB");
        assert_eq!(h.connection_id, 42);
        assert_eq!(h.scramble, b"abcdefghijklmnopqrst");
        assert_eq!(h.auth_plugin, NATIVE_PASSWORD);
        assert_ne!(h.capabilities & caps::SSL, 0);

        let switch = parse_auth_reply(b"\xFEclient_ed25519\0abc\0").unwrap();
        assert_eq!(
            switch,
            AuthReply::Switch {
                plugin: "client_ed25519".into(),
                data: b"abc".to_vec()
            }
        );
        assert_eq!(
            parse_auth_reply(b"\x00\x00\x00\x02\x00").unwrap(),
            AuthReply::Ok
        );
    }

    #[test]
    fn native_password_matches_the_documented_formula() {
        // Known answer: the server stores SHA1(SHA1(pw)); the client's answer XORed with
        // SHA1(scramble + stored) must give SHA1(pw) back, whose SHA1 is the stored hash.
        use sha1::{Digest, Sha1};
        let scramble = b"01234567890123456789";
        let answer = native_password(b"secret", scramble);
        let stored = Sha1::digest(Sha1::digest(b"secret"));
        let mut s = Sha1::new();
        s.update(scramble);
        s.update(stored);
        let mask = s.finalize();
        let h1: Vec<u8> = answer.iter().zip(mask.iter()).map(|(a, b)| a ^ b).collect();
        assert_eq!(Sha1::digest(&h1).as_slice(), stored.as_slice());
        assert!(native_password(b"", scramble).is_empty());
    }

    #[test]
    fn end_of_rows_versus_a_row_starting_with_fe() {
        assert!(is_end_of_rows(b"\xFE\x00\x00\x02\x00\x00\x00"));
        assert!(!is_end_of_rows(b"\x01a"));
        let big = vec![0xFE; MAX_PAYLOAD];
        assert!(!is_end_of_rows(&big));
        let ok = parse_ok(b"\xFE\x00\x00\x0A\x00\x00\x00").unwrap();
        assert_eq!(ok.status & MORE_RESULTS_EXISTS, MORE_RESULTS_EXISTS);
    }

    #[test]
    fn column_definitions_keep_type_flags_and_charset() {
        let mut p = Vec::new();
        for s in ["def", "db", "t", "t", "c", "c"] {
            p.push(s.len() as u8);
            p.extend_from_slice(s.as_bytes());
        }
        p.push(0x0C);
        p.extend_from_slice(&63u16.to_le_bytes());
        p.extend_from_slice(&255u32.to_le_bytes());
        p.push(252);
        p.extend_from_slice(&0x0090u16.to_le_bytes());
        p.extend_from_slice(&[0, 0, 0]);
        assert_eq!(
            parse_column(&p).unwrap(),
            ColumnDef {
                column_type: 252,
                flags: 0x0090,
                charset: 63
            }
        );
    }
}
