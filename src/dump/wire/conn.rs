//! The connection: TCP, the handshake and `mysql_native_password`, COM_QUERY with its
//! result sets read in place out of one receive buffer, and COM_QUIT.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::WireError;
use super::packet::{
    self, CLIENT_CAPS, ColumnDef, Found, Frames, MORE_RESULTS_EXISTS, NATIVE_PASSWORD, NULL_SPAN,
    caps,
};
use crate::dbconn::{DbTarget, TlsMode};

/// Bytes asked of the socket at a time; the buffer grows only for a packet larger than this.
const READ_CHUNK: usize = 256 << 10;

/// One text-protocol connection to a MySQL/MariaDB server. Plain TCP only: a target whose
/// TLS settings would need TLS with this server is [`WireError::Unsupported`], so the
/// caller uses mysql_async (which owns the crate's TLS rules) instead.
pub struct WireConn {
    stream: TcpStream,
    /// Received bytes; `buf[start..end]` is not consumed yet.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    frames: Frames,
    /// Where the current payload is: `Some(range)` of `buf`, or `None` for `frames.joined`.
    current: Option<(usize, usize)>,
    out: Vec<u8>,
    id: u32,
    columns: Vec<ColumnDef>,
    spans: Vec<(u32, u32)>,
    /// Inside a result set whose rows are not all read.
    in_rows: bool,
    /// The connection can no longer be trusted (an I/O or protocol error mid-exchange).
    broken: bool,
}

/// One row of a result set: values borrowed from the receive buffer.
pub struct Row<'a> {
    payload: &'a [u8],
    spans: &'a [(u32, u32)],
}

impl<'a> Row<'a> {
    /// A row from a text-row payload kept elsewhere (a range reader's spool file, see
    /// `dump::ranges`): parsed by the same rule as a row read from the socket.
    pub fn parse(
        payload: &'a [u8],
        columns: usize,
        spans: &'a mut Vec<(u32, u32)>,
    ) -> Result<Row<'a>, WireError> {
        packet::parse_text_row(payload, columns, spans)?;
        Ok(Row { payload, spans })
    }

    /// The row's packet payload as the server sent it (what [`Row::parse`] reads back).
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// Value `i` as the server's text, `None` for NULL (or past the end).
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        let &(s, e) = self.spans.get(i)?;
        if (s, e) == NULL_SPAN {
            return None;
        }
        Some(&self.payload[s as usize..e as usize])
    }
}

impl WireConn {
    /// Connects and logs in. [`WireError::Unsupported`]: this client cannot serve the
    /// target (TLS needed, another auth plugin); the caller falls back.
    pub async fn connect(target: &DbTarget) -> Result<WireConn, WireError> {
        let stream = TcpStream::connect((target.host.as_str(), target.port)).await?;
        stream.set_nodelay(true)?;
        let mut c = WireConn {
            stream,
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            frames: Frames::default(),
            current: None,
            out: Vec::with_capacity(4096),
            id: 0,
            columns: Vec::new(),
            spans: Vec::new(),
            in_rows: false,
            broken: false,
        };
        c.login(target).await?;
        Ok(c)
    }

    async fn login(&mut self, target: &DbTarget) -> Result<(), WireError> {
        self.frames.seq = 0;
        self.read_payload().await?;
        let hs = packet::parse_handshake(self.payload())?;
        let offers_tls = hs.capabilities & caps::SSL != 0;
        let plain_ok = match target.tls.mode {
            TlsMode::Off => true,
            // The same rule as the driver: plain only when the server offers no TLS and
            // the settings allow falling back.
            TlsMode::Preferred => !offers_tls && target.tls.falls_back(),
            TlsMode::Required => false,
        };
        if !plain_ok {
            return Err(WireError::Unsupported(format!(
                "TLS mode {} with a server that {} TLS",
                target.tls.mode,
                if offers_tls { "offers" } else { "offers no" }
            )));
        }
        let missing = CLIENT_CAPS & !hs.capabilities & !caps::LONG_PASSWORD;
        if missing != 0 {
            return Err(WireError::Unsupported(format!(
                "server lacks capabilities {missing:#x}"
            )));
        }
        if hs.auth_plugin != NATIVE_PASSWORD && !hs.auth_plugin.is_empty() {
            // Answer for the native plugin anyway: the server then either accepts it or
            // asks to switch (to the user's own plugin), which is handled below.
            tracing::debug!(plugin = %hs.auth_plugin, "server default auth plugin is not native");
        }
        self.id = hs.connection_id;
        let password = target.password.expose().as_bytes();
        let auth = packet::native_password(password, &hs.scramble);
        let resp = packet::handshake_response(&target.user, &auth, NATIVE_PASSWORD);
        self.send(&resp).await?;
        loop {
            self.read_payload().await?;
            let reply = packet::parse_auth_reply(self.payload())?;
            match packet::auth_step(reply, password)? {
                None => return Ok(()),
                Some(answer) => self.send(&answer).await?,
            }
        }
    }

    /// The server's connection id.
    pub fn id(&self) -> u32 {
        self.id
    }

    fn payload(&self) -> &[u8] {
        match self.current {
            Some((s, e)) => &self.buf[s..e],
            None => &self.frames.joined,
        }
    }

    /// Reads the next whole payload (see [`Self::payload`]).
    async fn read_payload(&mut self) -> Result<(), WireError> {
        let r = self.read_payload_inner().await;
        if r.is_err() {
            self.broken = true;
        }
        r
    }

    async fn read_payload_inner(&mut self) -> Result<(), WireError> {
        loop {
            match self.frames.next(&self.buf[self.start..self.end])? {
                Found::Single {
                    start,
                    end,
                    consumed,
                } => {
                    self.current = Some((self.start + start, self.start + end));
                    self.start += consumed;
                    return Ok(());
                }
                Found::Joined { consumed } => {
                    self.current = None;
                    self.start += consumed;
                    return Ok(());
                }
                Found::Partial { consumed } => self.start += consumed,
                Found::Need => {}
            }
            self.fill().await?;
        }
    }

    /// Reads more bytes, first moving the unconsumed ones to the front (and growing the
    /// buffer when one packet is larger than it).
    async fn fill(&mut self) -> Result<(), WireError> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        // A packet whose header is in the buffer says how much room it needs.
        let need = if self.end >= 4 {
            4 + u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], 0]) as usize
        } else {
            4
        };
        if self.buf.len() < need {
            self.buf.resize(need, 0);
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            )
            .into());
        }
        self.end += n;
        Ok(())
    }

    /// Sends `payload` as a new command (sequence from 0) or as the next packet of an
    /// exchange (authentication).
    async fn send(&mut self, payload: &[u8]) -> Result<(), WireError> {
        self.out.clear();
        self.frames.seq = packet::frame(&mut self.out, payload, self.frames.seq);
        let r = self.stream.write_all(&self.out).await;
        if r.is_err() {
            self.broken = true;
        }
        Ok(r?)
    }

    async fn command(&mut self, cmd: u8, body: &[u8]) -> Result<(), WireError> {
        if self.broken || self.in_rows {
            return Err(WireError::Protocol(
                "the connection is not ready for a command".into(),
            ));
        }
        self.frames.seq = 0;
        let mut p = Vec::with_capacity(1 + body.len());
        p.push(cmd);
        p.extend_from_slice(body);
        self.send(&p).await
    }

    /// Runs `sql` and reads its first result set's header: the columns (none for a
    /// statement without rows). Rows follow with [`Self::next_row`].
    pub async fn query(&mut self, sql: &str) -> Result<&[ColumnDef], WireError> {
        self.command(0x03, sql.as_bytes()).await?;
        self.result_header().await?;
        Ok(&self.columns)
    }

    async fn result_header(&mut self) -> Result<(), WireError> {
        self.columns.clear();
        self.read_payload().await?;
        let p = self.payload();
        match p.first() {
            Some(0x00) => {
                let ok = packet::parse_ok(p)?;
                if ok.status & MORE_RESULTS_EXISTS != 0 {
                    return Box::pin(self.result_header()).await;
                }
                return Ok(());
            }
            Some(0xFF) => return Err(packet::parse_err(p, true)),
            Some(0xFB) => {
                self.broken = true;
                return Err(WireError::Unsupported("LOAD DATA LOCAL INFILE".into()));
            }
            _ => {}
        }
        let n = packet::Cursor::new(p).lenenc_int("the column count")?;
        for _ in 0..n {
            self.read_payload().await?;
            let col = packet::parse_column(self.payload())?;
            self.columns.push(col);
        }
        self.in_rows = true;
        Ok(())
    }

    /// The next row of the current result set, `None` after the last (further result
    /// sets of the statement are read and dropped). A server error mid-stream (the query
    /// killed) is returned as such.
    pub async fn next_row(&mut self) -> Result<Option<Row<'_>>, WireError> {
        if !self.in_rows {
            return Ok(None);
        }
        self.read_payload().await?;
        let p = self.payload();
        if packet::is_end_of_rows(p) {
            let ok = packet::parse_ok(p);
            self.in_rows = false;
            if ok?.status & MORE_RESULTS_EXISTS != 0 {
                Box::pin(self.drain_more()).await?;
            }
            return Ok(None);
        }
        if p.first() == Some(&0xFF) {
            let e = packet::parse_err(p, true);
            self.in_rows = false;
            return Err(e);
        }
        let n = self.columns.len();
        let mut spans = std::mem::take(&mut self.spans);
        let parsed = packet::parse_text_row(self.payload(), n, &mut spans);
        self.spans = spans;
        if let Err(e) = parsed {
            self.broken = true;
            return Err(e);
        }
        Ok(Some(Row {
            payload: match self.current {
                Some((s, e)) => &self.buf[s..e],
                None => &self.frames.joined,
            },
            spans: &self.spans,
        }))
    }

    async fn drain_more(&mut self) -> Result<(), WireError> {
        loop {
            self.result_header().await?;
            while self.next_row().await?.is_some() {}
            if !self.in_rows {
                return Ok(());
            }
        }
    }

    /// Runs `sql` and drops whatever it returns.
    pub async fn query_drop(&mut self, sql: &str) -> Result<(), WireError> {
        self.query(sql).await?;
        while self.next_row().await?.is_some() {}
        Ok(())
    }

    /// Column `index` of the first row of `sql`'s result as text (`None`: no row, or NULL);
    /// the other rows are read and dropped.
    pub async fn query_first_text(
        &mut self,
        sql: &str,
        index: usize,
    ) -> Result<Option<String>, WireError> {
        self.query(sql).await?;
        let first = match self.next_row().await? {
            Some(row) => row
                .get(index)
                .map(|v| String::from_utf8_lossy(v).into_owned()),
            None => return Ok(None),
        };
        while self.next_row().await?.is_some() {}
        Ok(first)
    }

    /// Sends COM_QUIT and closes the socket (best effort: the server may be gone).
    pub async fn disconnect(mut self) -> Result<(), WireError> {
        if !self.broken && !self.in_rows {
            self.frames.seq = 0;
            self.send(&[0x01]).await?;
        }
        self.stream.shutdown().await.ok();
        Ok(())
    }
}
