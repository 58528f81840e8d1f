//! A small synchronous SMTP client that pipelines whole transactions (RFC 2920): after the message body
//! and its final dot it sends the next MAIL/RCPT/DATA group at once, so a transaction costs one round
//! trip (waiting for 354) instead of one per command. The list fan-out and the queue runner use it.
//!
//! Replies are parsed with `smtp-proto`. Every outcome is classified per recipient as accepted,
//! temporary (4xx, connection trouble) or permanent (5xx).
//!
//! `connect_with` adds STARTTLS (RFC 3207; opportunistic per RFC 7435, or required with the system's
//! roots verified) and AUTH PLAIN (RFC 4954), which is never sent outside TLS.

use smtp_proto::response::parser::ResponseReceiver;
use smtp_proto::{
    EhloResponse, Response, AUTH_PLAIN, EXT_8BIT_MIME, EXT_AUTH, EXT_PIPELINING, EXT_SIZE,
    EXT_SMTP_UTF8, EXT_START_TLS,
};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// When to use TLS towards the next hop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TlsPolicy {
    /// Plain text only (loopback list fan-out, tests).
    #[default]
    Never,
    /// STARTTLS when offered, any certificate accepted; plain text if not offered or the handshake fails.
    Opportunistic,
    /// STARTTLS must succeed and the certificate must verify against the system's roots for the host name.
    Required,
}

/// How to talk to the next hop beyond plain SMTP.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub tls: TlsPolicy,
    /// Name to verify the certificate against (and send as SNI); default: the host part of `addr`.
    pub server_name: Option<String>,
    /// AUTH PLAIN credentials (user, password), sent only under TLS.
    pub auth: Option<(String, String)>,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(b),
            Stream::Tls(s) => s.read(b),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(b),
            Stream::Tls(s) => s.write(b),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// What happened to one recipient of one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted(String),
    Temporary(String),
    Permanent(String),
}

impl Outcome {
    pub fn is_accepted(&self) -> bool {
        matches!(self, Outcome::Accepted(_))
    }
    fn from_reply(r: &Response<String>) -> Outcome {
        let text = format!("{} {}", r.code, r.message.trim_end());
        match r.code {
            200..=399 => Outcome::Accepted(text),
            400..=499 => Outcome::Temporary(text),
            _ => Outcome::Permanent(text),
        }
    }
}

/// One message to one or more recipients.
#[derive(Debug, Clone)]
pub struct Transaction<'a> {
    /// Envelope sender, empty for the null sender `<>`.
    pub from: String,
    pub rcpts: Vec<String>,
    /// The message as it should arrive, with CRLF or LF line ends (normalised on the wire).
    pub data: &'a [u8],
    /// The transaction needs SMTPUTF8 (RFC 6531): sent on MAIL FROM, and every recipient fails with
    /// 553 5.6.7 when the server does not offer it (§3.2; we never downgrade).
    pub smtputf8: bool,
    /// BODY=8BITMIME was declared (RFC 6152); it is also sent, when offered, for any body with 8-bit bytes.
    pub body8bit: bool,
}

#[derive(Debug)]
pub struct ClientError {
    pub temporary: bool,
    pub msg: String,
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

fn temp(msg: impl Into<String>) -> ClientError {
    ClientError {
        temporary: true,
        msg: msg.into(),
    }
}

pub struct Client {
    stream: Stream,
    /// Outgoing bytes not yet written (flushed before every read, and when it grows past 64 KiB).
    wbuf: Vec<u8>,
    buf: Vec<u8>,
    pos: usize,
    pub capabilities: u32,
    pub max_size: usize,
    auth_mechanisms: u64,
    /// True once STARTTLS succeeded.
    pub tls: bool,
    /// Send a message's final dot together with the next transaction's MAIL/RCPT/DATA (one round trip
    /// per message). Off by default: then the dot goes alone and its reply is read at once, so a
    /// message sits accepted-but-unrecorded on our side for as short a time as possible (RFC 1047).
    pub pipeline_dot: bool,
}

const WBUF_LIMIT: usize = 64 * 1024;

/// RFC 5321 §4.5.3.2 timeouts are minutes; a loopback or LAN peer that is silent for this long is dead.
const TIMEOUT: Duration = Duration::from_secs(300);

impl Client {
    /// Connects, reads the greeting and says EHLO (falling back to HELO). Plain text, no AUTH.
    pub fn connect(addr: &str, helo: &str) -> Result<Client, ClientError> {
        Self::connect_with(addr, helo, &Options::default())
    }

    /// Connects with a TLS policy and optional AUTH.
    pub fn connect_with(addr: &str, helo: &str, opts: &Options) -> Result<Client, ClientError> {
        let mut c = Self::open(addr, helo)?;
        let offered = c.capabilities & EXT_START_TLS != 0;
        match (opts.tls, offered) {
            (TlsPolicy::Never, _) | (TlsPolicy::Opportunistic, false) => {}
            (TlsPolicy::Required, false) => {
                return Err(temp(format!("{addr}: STARTTLS required but not offered")))
            }
            (policy, true) => {
                let name = opts.server_name.clone().unwrap_or_else(|| host_of(addr));
                match c.starttls(&name, policy == TlsPolicy::Required, helo) {
                    Ok(()) => {}
                    // RFC 7435 §1: opportunistic means falling back to the clear, on a new connection.
                    Err(_) if policy == TlsPolicy::Opportunistic => c = Self::open(addr, helo)?,
                    Err(e) => return Err(e),
                }
            }
        }
        if let Some((user, pass)) = &opts.auth {
            c.auth_plain(user, pass)?;
        }
        Ok(c)
    }

    fn open(addr: &str, helo: &str) -> Result<Client, ClientError> {
        let sockaddr = addr
            .to_socket_addrs()
            .map_err(|e| temp(format!("{addr}: {e}")))?
            .next()
            .ok_or_else(|| temp(format!("{addr}: no address")))?;
        let stream = TcpStream::connect_timeout(&sockaddr, Duration::from_secs(30))
            .map_err(|e| temp(format!("connect to {addr}: {e}")))?;
        stream.set_read_timeout(Some(TIMEOUT)).ok();
        stream.set_write_timeout(Some(TIMEOUT)).ok();
        stream.set_nodelay(true).ok();
        let mut c = Client {
            stream: Stream::Plain(stream),
            wbuf: Vec::with_capacity(8192),
            buf: Vec::with_capacity(8192),
            pos: 0,
            capabilities: 0,
            max_size: 0,
            auth_mechanisms: 0,
            tls: false,
            pipeline_dot: false,
        };
        let greeting = c.read_reply()?;
        if greeting.code != 220 {
            return Err(c.refused("greeting", &greeting));
        }
        c.hello(helo)?;
        Ok(c)
    }

    fn hello(&mut self, helo: &str) -> Result<(), ClientError> {
        self.command(&format!("EHLO {helo}\r\n"))?;
        match self.read_ehlo()? {
            Some(e) => {
                self.capabilities = e.capabilities;
                self.max_size = e.size;
                self.auth_mechanisms = e.auth_mechanisms;
            }
            None => {
                self.command(&format!("HELO {helo}\r\n"))?;
                let r = self.read_reply()?;
                if r.code != 250 {
                    return Err(self.refused("HELO", &r));
                }
                self.capabilities = 0;
            }
        }
        Ok(())
    }

    /// RFC 3207: STARTTLS, handshake, then EHLO again (everything learnt before is forgotten).
    fn starttls(&mut self, server_name: &str, verify: bool, helo: &str) -> Result<(), ClientError> {
        self.command("STARTTLS\r\n")?;
        let r = self.read_reply()?;
        if r.code != 220 {
            return Err(self.refused("STARTTLS", &r));
        }
        let cfg = tls_config(verify).map_err(temp)?;
        let name = rustls::pki_types::ServerName::try_from(server_name.to_string())
            .map_err(|e| temp(format!("TLS server name {server_name}: {e}")))?;
        let conn =
            rustls::ClientConnection::new(cfg, name).map_err(|e| temp(format!("TLS: {e}")))?;
        let Stream::Plain(sock) =
            std::mem::replace(&mut self.stream, Stream::Plain(dead_socket()?))
        else {
            return Err(temp("TLS already active"));
        };
        let mut tls = rustls::StreamOwned::new(conn, sock);
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .map_err(|e| temp(format!("TLS handshake: {e}")))?;
        }
        self.stream = Stream::Tls(Box::new(tls));
        self.buf.clear();
        self.pos = 0;
        self.tls = true;
        self.hello(helo)
    }

    /// AUTH PLAIN (RFC 4616), refused by us outside TLS so a password never crosses in the clear.
    fn auth_plain(&mut self, user: &str, pass: &str) -> Result<(), ClientError> {
        use base64::Engine;
        if !self.tls {
            return Err(temp("refusing to send AUTH without TLS"));
        }
        if self.capabilities & EXT_AUTH == 0 || self.auth_mechanisms & AUTH_PLAIN == 0 {
            return Err(temp("server does not offer AUTH PLAIN"));
        }
        let token = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{pass}"));
        self.command(&format!("AUTH PLAIN {token}\r\n"))?;
        let r = self.read_reply()?;
        if r.code != 235 {
            // Wrong credentials must keep the mail queued, not bounce it: the postmaster can fix them.
            return Err(temp(format!(
                "AUTH refused: {} {}",
                r.code,
                r.message.trim_end()
            )));
        }
        Ok(())
    }

    pub fn pipelining(&self) -> bool {
        self.capabilities & EXT_PIPELINING != 0
    }

    fn refused(&self, what: &str, r: &Response<String>) -> ClientError {
        ClientError {
            temporary: r.code < 500,
            msg: format!("{what} refused: {} {}", r.code, r.message.trim_end()),
        }
    }

    fn command(&mut self, line: &str) -> Result<(), ClientError> {
        self.wbuf.extend_from_slice(line.as_bytes());
        self.flush()
    }

    fn put(&mut self, b: &[u8]) -> Result<(), ClientError> {
        self.wbuf.extend_from_slice(b);
        if self.wbuf.len() > WBUF_LIMIT {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ClientError> {
        if !self.wbuf.is_empty() {
            let r = self
                .stream
                .write_all(&self.wbuf)
                .and_then(|_| self.stream.flush());
            self.wbuf.clear();
            r.map_err(|e| temp(format!("write: {e}")))?;
        }
        Ok(())
    }

    fn fill(&mut self) -> Result<(), ClientError> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut chunk = [0u8; 8192];
        self.flush()?;
        let n = self
            .stream
            .read(&mut chunk)
            .map_err(|e| temp(format!("read: {e}")))?;
        if n == 0 {
            return Err(temp("connection closed by peer"));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    fn read_reply(&mut self) -> Result<Response<String>, ClientError> {
        let mut rx = ResponseReceiver::default();
        loop {
            let mut it = self.buf[self.pos..].iter();
            let before = it.len();
            match rx.parse(&mut it) {
                Ok(r) => {
                    self.pos += before - it.len();
                    return Ok(r);
                }
                Err(smtp_proto::Error::NeedsMoreData { .. }) => {
                    self.pos += before - it.len();
                    self.fill()?;
                }
                Err(e) => return Err(temp(format!("bad reply: {e:?}"))),
            }
        }
    }

    /// Reads the EHLO reply; `None` means the server refused EHLO with 5xx (try HELO).
    fn read_ehlo(&mut self) -> Result<Option<EhloResponse<String>>, ClientError> {
        loop {
            let mut it = self.buf[self.pos..].iter();
            let before = it.len();
            if !self.buf[self.pos..].is_empty() && self.buf[self.pos] != b'2' {
                let r = self.read_reply()?;
                return if r.code >= 500 {
                    Ok(None)
                } else {
                    Err(self.refused("EHLO", &r))
                };
            }
            match EhloResponse::parse(&mut it) {
                Ok(r) => {
                    self.pos += before - it.len();
                    return Ok(Some(r));
                }
                Err(smtp_proto::Error::NeedsMoreData { .. }) => self.fill()?,
                Err(e) => return Err(temp(format!("bad EHLO reply: {e:?}"))),
            }
        }
    }

    /// Sends transactions in order, pipelined when the server offers PIPELINING, and returns one
    /// outcome per recipient of each. A connection failure marks every unfinished recipient temporary
    /// and stops; recipients already answered keep their outcome (so nothing is sent twice on retry).
    pub fn send_all(&mut self, txs: &[Transaction<'_>]) -> Vec<Vec<Outcome>> {
        self.send_all_with(txs, |_, _| {})
    }

    /// Like `send_all`, calling `done(i, outcomes)` the instant transaction i's outcome is known (for a
    /// message, right after its final reply is read, before any other reply), so the queue can record a
    /// delivery before anything else happens: the shorter that gap, the fewer messages a crash can send
    /// twice.
    pub fn send_all_with(
        &mut self,
        txs: &[Transaction<'_>],
        mut done: impl FnMut(usize, &[Outcome]),
    ) -> Vec<Vec<Outcome>> {
        let mut results = Outcomes {
            list: Vec::with_capacity(txs.len()),
            report: &mut done,
        };
        self.send_inner(txs, &mut results);
        results.list
    }

    fn send_inner(&mut self, txs: &[Transaction<'_>], results: &mut Outcomes<'_>) {
        // With `pipeline_dot`, the dot of transaction i is acknowledged together with the envelope
        // replies of i+1.
        let mut pending_dot: Option<(usize, Vec<Outcome>)> = None;
        let pipelining = self.pipelining();
        for (i, tx) in txs.iter().enumerate() {
            if self.max_size > 0 && tx.data.len() > self.max_size {
                // Results stay in transaction order: settle the previous dot first.
                if let Some((_, outcomes)) = pending_dot.take() {
                    results.push(self.finish_dot(outcomes));
                }
                results.push(vec![
                    Outcome::Permanent(format!(
                        "552 message size {} exceeds server limit {}",
                        tx.data.len(),
                        self.max_size
                    ));
                    tx.rcpts.len()
                ]);
                continue;
            }
            if tx.smtputf8 && self.capabilities & EXT_SMTP_UTF8 == 0 {
                if let Some((_, outcomes)) = pending_dot.take() {
                    results.push(self.finish_dot(outcomes));
                }
                results.push(vec![
                    Outcome::Permanent(
                        "553 5.6.7 next hop does not support SMTPUTF8 (RFC 6531 section 3.2)"
                            .into()
                    );
                    tx.rcpts.len()
                ]);
                continue;
            }
            let step = self.envelope(tx, pipelining, &mut pending_dot, results);
            match step {
                Ok(Some(rcpt_outcomes)) => {
                    if let Err(e) = self.body(tx.data) {
                        results.push(
                            rcpt_outcomes
                                .iter()
                                .map(|o| {
                                    if o.is_accepted() {
                                        Outcome::Temporary(e.msg.clone())
                                    } else {
                                        o.clone()
                                    }
                                })
                                .collect(),
                        );
                        return results.fill_rest(txs, &e.msg);
                    }
                    if pipelining && self.pipeline_dot && i + 1 < txs.len() {
                        pending_dot = Some((i, rcpt_outcomes));
                    } else {
                        results.push(self.finish_dot(rcpt_outcomes));
                    }
                }
                Ok(None) => {}
                Err(e) => return results.fill_rest(txs, &e.msg),
            }
        }
        if let Some((_, outcomes)) = pending_dot.take() {
            results.push(self.finish_dot(outcomes));
        }
        results.fill_rest(txs, "connection lost")
    }

    /// Sends MAIL, RCPTs and (if any recipient was accepted) DATA; returns the per-recipient outcomes to
    /// carry into the final reply, or None when the transaction ended early (already pushed to results).
    fn envelope(
        &mut self,
        tx: &Transaction<'_>,
        pipelining: bool,
        pending_dot: &mut Option<(usize, Vec<Outcome>)>,
        results: &mut Outcomes<'_>,
    ) -> Result<Option<Vec<Outcome>>, ClientError> {
        let mut size = if self.capabilities & EXT_SIZE != 0 {
            format!(" SIZE={}", tx.data.len())
        } else {
            String::new()
        };
        // RFC 6152: declare 8-bit content when the server takes it; without 8BITMIME the body goes as
        // it is (no conversion to 7 bit), as Postfix does by default.
        if self.capabilities & EXT_8BIT_MIME != 0 && (tx.body8bit || !tx.data.is_ascii()) {
            size.push_str(" BODY=8BITMIME");
        }
        if tx.smtputf8 && self.capabilities & EXT_SMTP_UTF8 != 0 {
            size.push_str(" SMTPUTF8");
        }
        let mut group = format!("MAIL FROM:<{}>{size}\r\n", tx.from);
        for r in &tx.rcpts {
            group.push_str(&format!("RCPT TO:<{r}>\r\n"));
        }
        if pipelining {
            group.push_str("DATA\r\n");
            self.put(group.as_bytes())?;
            self.flush()?;
            if let Some((_, outcomes)) = pending_dot.take() {
                results.push(self.finish_dot(outcomes));
            }
            let mail = self.read_reply()?;
            let mut outcomes = Vec::with_capacity(tx.rcpts.len());
            for _ in &tx.rcpts {
                let r = self.read_reply()?;
                outcomes.push(if mail.code == 250 {
                    Outcome::from_reply(&r)
                } else {
                    Outcome::from_reply(&mail)
                });
            }
            let data = self.read_reply()?;
            let any = mail.code == 250 && outcomes.iter().any(Outcome::is_accepted);
            if data.code == 354 && any {
                return Ok(Some(outcomes));
            }
            if data.code == 354 {
                // Nobody to send to but the server wants data: RFC 2920 §3.1 says send an empty message
                // ending the transaction; the server will refuse it.
                self.command(".\r\n")?;
                let _ = self.read_reply()?;
            }
            if mail.code == 250 && !any {
                results.push(outcomes);
            } else {
                let o = if mail.code != 250 {
                    Outcome::from_reply(&mail)
                } else {
                    Outcome::from_reply(&data)
                };
                results.push(vec![o; tx.rcpts.len()]);
            }
            self.rset()?;
            return Ok(None);
        }
        // Without PIPELINING: one command, one reply.
        self.command(&format!("MAIL FROM:<{}>{size}\r\n", tx.from))?;
        let mail = self.read_reply()?;
        if mail.code != 250 {
            results.push(vec![Outcome::from_reply(&mail); tx.rcpts.len()]);
            self.rset()?;
            return Ok(None);
        }
        let mut outcomes = Vec::with_capacity(tx.rcpts.len());
        for r in &tx.rcpts {
            self.command(&format!("RCPT TO:<{r}>\r\n"))?;
            outcomes.push(Outcome::from_reply(&self.read_reply()?));
        }
        if !outcomes.iter().any(Outcome::is_accepted) {
            results.push(outcomes);
            self.rset()?;
            return Ok(None);
        }
        self.command("DATA\r\n")?;
        let data = self.read_reply()?;
        if data.code != 354 {
            results.push(
                outcomes
                    .iter()
                    .map(|o| {
                        if o.is_accepted() {
                            Outcome::from_reply(&data)
                        } else {
                            o.clone()
                        }
                    })
                    .collect(),
            );
            self.rset()?;
            return Ok(None);
        }
        Ok(Some(outcomes))
    }

    fn rset(&mut self) -> Result<(), ClientError> {
        self.command("RSET\r\n")?;
        self.read_reply().map(|_| ())
    }

    /// Reads the reply to the final dot and applies it to the recipients accepted at RCPT time.
    fn finish_dot(&mut self, outcomes: Vec<Outcome>) -> Vec<Outcome> {
        let reply = self.flush().and_then(|_| self.read_reply());
        outcomes
            .into_iter()
            .map(|o| match (&o, &reply) {
                (Outcome::Accepted(_), Ok(r)) => Outcome::from_reply(r),
                (Outcome::Accepted(_), Err(e)) => Outcome::Temporary(e.msg.clone()),
                _ => o,
            })
            .collect()
    }

    /// Writes the body with CRLF line ends and dot-stuffing (RFC 5321 §4.5.2), then the final dot.
    fn body(&mut self, data: &[u8]) -> Result<(), ClientError> {
        let mut at_line_start = true;
        let mut start = 0;
        let mut i = 0;
        while i < data.len() {
            let b = data[i];
            if at_line_start && b == b'.' {
                self.put(&data[start..i])?;
                self.put(b".")?;
                start = i;
            }
            if b == b'\n' {
                let cr = i > 0 && data[i - 1] == b'\r';
                if !cr {
                    self.put(&data[start..i])?;
                    self.put(b"\r")?;
                    start = i;
                }
                at_line_start = true;
            } else {
                at_line_start = false;
            }
            i += 1;
        }
        self.put(&data[start..])?;
        if !data.is_empty() && !data.ends_with(b"\n") {
            self.put(b"\r\n")?;
        }
        self.put(b".\r\n")
    }

    pub fn quit(mut self) {
        if self.command("QUIT\r\n").is_ok() {
            let _ = self.read_reply();
        }
    }
}

fn host_of(addr: &str) -> String {
    let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_string()
}

/// A placeholder while the real socket is moved into the TLS stream.
fn dead_socket() -> Result<TcpStream, ClientError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| temp(e.to_string()))?;
    TcpStream::connect(l.local_addr().map_err(|e| temp(e.to_string()))?)
        .map_err(|e| temp(e.to_string()))
}

fn tls_config(verify: bool) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let cfg = if verify {
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(c);
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
            .with_no_client_auth()
    };
    Ok(Arc::new(cfg))
}

/// Opportunistic TLS (RFC 7435): encrypt against passive listeners without authenticating the peer, as
/// Postfix's `smtp_tls_security_level = may` does. Signatures are still checked, so the session keys
/// really belong to whoever holds the certificate.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The outcomes so far, each reported the moment it is pushed.
struct Outcomes<'r> {
    list: Vec<Vec<Outcome>>,
    report: &'r mut dyn FnMut(usize, &[Outcome]),
}

impl Outcomes<'_> {
    fn push(&mut self, o: Vec<Outcome>) {
        (self.report)(self.list.len(), &o);
        self.list.push(o);
    }

    /// Marks every transaction not yet answered temporary.
    fn fill_rest(&mut self, txs: &[Transaction<'_>], why: &str) {
        for tx in txs.iter().skip(self.list.len()) {
            self.push(vec![Outcome::Temporary(why.to_string()); tx.rcpts.len()]);
        }
    }
}
