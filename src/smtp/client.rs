//! A small synchronous SMTP client that pipelines whole transactions (RFC 2920): after the message body
//! and its final dot it sends the next MAIL/RCPT/DATA group at once, so a transaction costs one round
//! trip (waiting for 354) instead of one per command. The list fan-out and the queue runner use it.
//!
//! Replies are parsed with `smtp-proto`. Every outcome is classified per recipient as accepted,
//! temporary (4xx, connection trouble) or permanent (5xx).

use smtp_proto::response::parser::ResponseReceiver;
use smtp_proto::{EhloResponse, Response, EXT_PIPELINING, EXT_SIZE};
use std::io::{BufWriter, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

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
    reader: TcpStream,
    writer: BufWriter<TcpStream>,
    buf: Vec<u8>,
    pos: usize,
    pub capabilities: u32,
    pub max_size: usize,
}

/// RFC 5321 §4.5.3.2 timeouts are minutes; a loopback or LAN peer that is silent for this long is dead.
const TIMEOUT: Duration = Duration::from_secs(300);

impl Client {
    /// Connects, reads the greeting and says EHLO (falling back to HELO).
    pub fn connect(addr: &str, helo: &str) -> Result<Client, ClientError> {
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
        let writer = BufWriter::with_capacity(
            64 * 1024,
            stream.try_clone().map_err(|e| temp(e.to_string()))?,
        );
        let mut c = Client {
            reader: stream,
            writer,
            buf: Vec::with_capacity(8192),
            pos: 0,
            capabilities: 0,
            max_size: 0,
        };
        let greeting = c.read_reply()?;
        if greeting.code != 220 {
            return Err(c.refused("greeting", &greeting));
        }
        c.command(&format!("EHLO {helo}\r\n"))?;
        let ehlo = c.read_ehlo()?;
        match ehlo {
            Some(e) => {
                c.capabilities = e.capabilities;
                c.max_size = e.size;
            }
            None => {
                c.command(&format!("HELO {helo}\r\n"))?;
                let r = c.read_reply()?;
                if r.code != 250 {
                    return Err(c.refused("HELO", &r));
                }
            }
        }
        Ok(c)
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
        self.writer
            .write_all(line.as_bytes())
            .map_err(|e| temp(format!("write: {e}")))?;
        self.flush()
    }

    fn flush(&mut self) -> Result<(), ClientError> {
        self.writer.flush().map_err(|e| temp(format!("write: {e}")))
    }

    fn fill(&mut self) -> Result<(), ClientError> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut chunk = [0u8; 8192];
        let n = self
            .reader
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
        let mut results: Vec<Vec<Outcome>> = Vec::with_capacity(txs.len());
        // The dot of transaction i is acknowledged together with the envelope replies of i+1.
        let mut pending_dot: Option<(usize, Vec<Outcome>)> = None;
        let pipelining = self.pipelining();
        for (i, tx) in txs.iter().enumerate() {
            if self.max_size > 0 && tx.data.len() > self.max_size {
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
            let step = self.envelope(tx, pipelining, &mut pending_dot, &mut results);
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
                        return fill_rest(results, txs, &e.msg);
                    }
                    if pipelining && i + 1 < txs.len() {
                        pending_dot = Some((i, rcpt_outcomes));
                    } else {
                        results.push(self.finish_dot(rcpt_outcomes));
                    }
                }
                Ok(None) => {}
                Err(e) => return fill_rest(results, txs, &e.msg),
            }
        }
        if let Some((_, outcomes)) = pending_dot.take() {
            results.push(self.finish_dot(outcomes));
        }
        fill_rest(results, txs, "connection lost")
    }

    /// Sends MAIL, RCPTs and (if any recipient was accepted) DATA; returns the per-recipient outcomes to
    /// carry into the final reply, or None when the transaction ended early (already pushed to results).
    fn envelope(
        &mut self,
        tx: &Transaction<'_>,
        pipelining: bool,
        pending_dot: &mut Option<(usize, Vec<Outcome>)>,
        results: &mut Vec<Vec<Outcome>>,
    ) -> Result<Option<Vec<Outcome>>, ClientError> {
        let size = if self.capabilities & EXT_SIZE != 0 {
            format!(" SIZE={}", tx.data.len())
        } else {
            String::new()
        };
        let mut group = format!("MAIL FROM:<{}>{size}\r\n", tx.from);
        for r in &tx.rcpts {
            group.push_str(&format!("RCPT TO:<{r}>\r\n"));
        }
        if pipelining {
            group.push_str("DATA\r\n");
            self.writer
                .write_all(group.as_bytes())
                .map_err(|e| temp(format!("write: {e}")))?;
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
        let w = &mut self.writer;
        let mut at_line_start = true;
        let mut start = 0;
        let out = |w: &mut BufWriter<TcpStream>, b: &[u8]| {
            w.write_all(b).map_err(|e| temp(format!("write: {e}")))
        };
        let mut i = 0;
        while i < data.len() {
            let b = data[i];
            if at_line_start && b == b'.' {
                out(w, &data[start..i])?;
                out(w, b".")?;
                start = i;
            }
            if b == b'\n' {
                let cr = i > 0 && data[i - 1] == b'\r';
                if !cr {
                    out(w, &data[start..i])?;
                    out(w, b"\r")?;
                    start = i;
                }
                at_line_start = true;
            } else {
                at_line_start = false;
            }
            i += 1;
        }
        out(w, &data[start..])?;
        if !data.is_empty() && !data.ends_with(b"\n") {
            out(w, b"\r\n")?;
        }
        out(w, b".\r\n")
    }

    pub fn quit(mut self) {
        if self.command("QUIT\r\n").is_ok() {
            let _ = self.read_reply();
        }
    }
}

fn fill_rest(
    mut results: Vec<Vec<Outcome>>,
    txs: &[Transaction<'_>],
    why: &str,
) -> Vec<Vec<Outcome>> {
    for tx in &txs[results.len().min(txs.len())..] {
        results.push(vec![Outcome::Temporary(why.to_string()); tx.rcpts.len()]);
    }
    results
}
