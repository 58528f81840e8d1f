//! One SMTP session: the I/O loop and the state a transaction builds up. Commands are parsed with
//! `smtp-proto` and handed to one function per verb (the sibling files), each returning what to do next.
//!
//! Replies are buffered and flushed only when no further pipelined command is already waiting (RFC 2920
//! §3.2), so a pipelining client gets its replies in one packet. After STARTTLS anything the client sent
//! in the clear beyond the command is thrown away (RFC 3207 §4.2; the CVE-2011-0411 injection).

use super::{Ctx, Mode};
use crate::smtp::queue::Rcpt;
use crate::smtp::reply::Reply;
use smtp_proto::Request;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// RFC 5321 §4.5.3.1.4 says 512 octets for a command line; AUTH PLAIN responses and long EHLO
/// arguments need more in practice, so lines up to this are read and longer ones refused with 500 5.5.6.
pub const MAX_LINE: usize = 4096;
/// Errors tolerated before the session is dropped (a client speaking another protocol, or an attacker);
/// Postfix's smtpd_hard_error_limit is the same 20. Refused recipients count.
const MAX_ERRORS: usize = 20;

/// What the loop does after a command.
pub enum Next {
    Continue,
    Quit,
    StartTls,
    /// Read the message body after 354.
    Data,
}

/// Buffered I/O on the (plain or TLS) stream.
pub struct Io<S> {
    pub stream: S,
    pub inbuf: Vec<u8>,
    pub out: Vec<u8>,
    pub timeout: std::time::Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Io<S> {
    pub fn reply(&mut self, r: &Reply) {
        self.out.extend_from_slice(r.to_wire().as_bytes());
    }
    pub fn raw(&mut self, s: &str) {
        self.out.extend_from_slice(s.as_bytes());
    }
    pub async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            let out = std::mem::take(&mut self.out);
            tokio::time::timeout(self.timeout, self.stream.write_all(&out))
                .await
                .map_err(|_| std::io::ErrorKind::TimedOut)??;
            self.stream.flush().await?;
        }
        Ok(())
    }
    /// Reads more bytes; Ok(false) at end of stream.
    pub async fn fill(&mut self) -> std::io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        let n = tokio::time::timeout(self.timeout, self.stream.read(&mut chunk))
            .await
            .map_err(|_| std::io::ErrorKind::TimedOut)??;
        self.inbuf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }
    /// Takes one line (with its LF) from the buffer if a whole one is there. A line longer than MAX_LINE
    /// comes back as `Err(())`, with the buffer skipped up to its end.
    pub fn take_line(&mut self) -> Option<Result<Vec<u8>, ()>> {
        match memchr::memchr(b'\n', &self.inbuf) {
            Some(i) if i < MAX_LINE => Some(Ok(self.inbuf.drain(..=i).collect())),
            Some(i) => {
                self.inbuf.drain(..=i);
                Some(Err(()))
            }
            None if self.inbuf.len() > MAX_LINE => {
                // Keep discarding until the end of this overlong line.
                self.inbuf.clear();
                self.inbuf.extend_from_slice(b"\x00overlong");
                None
            }
            None => None,
        }
    }
    /// Reads one line, flushing pending replies first (used for AUTH continuations).
    pub async fn read_line(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        self.flush().await?;
        loop {
            match self.take_line() {
                Some(Ok(l)) => return Ok(Some(l)),
                Some(Err(())) => return Ok(None),
                None => {
                    if !self.fill().await? {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                }
            }
        }
    }
}

/// The state of one session.
pub struct Session {
    pub ctx: Arc<Ctx>,
    pub mode: Mode,
    pub peer: SocketAddr,
    pub tls: bool,
    pub helo: Option<String>,
    pub esmtp: bool,
    pub auth_user: Option<String>,
    pub auth_failures: usize,
    /// Envelope sender of the transaction in progress ("" is the null sender).
    pub mail_from: Option<String>,
    /// MAIL FROM carried SMTPUTF8 (RFC 6531): UTF-8 paths are allowed and the next hop must offer it.
    pub smtputf8: bool,
    /// MAIL FROM carried BODY=8BITMIME (RFC 6152).
    pub body8bit: bool,
    pub rcpts: Vec<Rcpt>,
    /// RCPT TO addresses accepted so far (for the limit and the Received header).
    pub rcpt_addrs: Vec<String>,
    pub errors: usize,
    pub transactions: usize,
}

impl Session {
    pub fn new(ctx: Arc<Ctx>, peer: SocketAddr, mode: Mode) -> Session {
        Session {
            ctx,
            mode,
            peer,
            tls: mode == Mode::Smtps,
            helo: None,
            esmtp: false,
            auth_user: None,
            auth_failures: 0,
            mail_from: None,
            smtputf8: false,
            body8bit: false,
            rcpts: Vec::new(),
            rcpt_addrs: Vec::new(),
            errors: 0,
            transactions: 0,
        }
    }

    pub fn reset(&mut self) {
        self.mail_from = None;
        self.smtputf8 = false;
        self.body8bit = false;
        self.rcpts.clear();
        self.rcpt_addrs.clear();
    }

    /// May this session send to domains that are not ours?
    pub fn may_relay(&self) -> bool {
        self.auth_user.is_some() || self.ctx.is_trusted(self.peer.ip())
    }

    /// Handles one command line and queues its reply.
    pub async fn command<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut Io<S>,
        line: &[u8],
    ) -> Next {
        // RFC 5321 §4.1.1.3: "RCPT TO:<Postmaster>" without a domain must work; smtp-proto reads it as "".
        let trimmed = line.strip_suffix(b"\n").unwrap_or(line);
        let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
        let parsed = if trimmed.eq_ignore_ascii_case(b"RCPT TO:<postmaster>") {
            Ok(Request::Rcpt {
                to: smtp_proto::RcptTo {
                    address: "postmaster".to_string(),
                    orcpt: None,
                    rrvs: 0,
                    flags: 0,
                },
            })
        } else {
            parse_with_literal(line)
        };
        match parsed {
            Ok(req) => self.verb(io, req).await,
            Err(e) => {
                self.errors += 1;
                io.reply(&parse_error(&e));
                if self.errors >= MAX_ERRORS {
                    io.reply(&Reply::new(
                        421,
                        "4.7.0",
                        "Too many errors, closing connection",
                    ));
                    return Next::Quit;
                }
                Next::Continue
            }
        }
    }

    async fn verb<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut Io<S>,
        req: Request<String>,
    ) -> Next {
        let reply = match req {
            Request::Ehlo { host } => self.ehlo(&host, true),
            Request::Helo { host } => self.ehlo(&host, false),
            Request::Lhlo { .. } => Reply::new(500, "5.5.1", "LHLO is for LMTP"),
            Request::Mail { from } => self.mail(from),
            Request::Rcpt { to } => self.rcpt(to),
            Request::Data => match self.data_start() {
                Ok(()) => {
                    io.raw("354 End data with <CR><LF>.<CR><LF>\r\n");
                    return Next::Data;
                }
                Err(r) => r,
            },
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth(io, mechanism, initial_response).await,
            Request::StartTls => match self.starttls() {
                Ok(r) => {
                    io.reply(&r);
                    return Next::StartTls;
                }
                Err(r) => r,
            },
            Request::Rset => {
                self.reset();
                Reply::ok("Ok")
            }
            Request::Noop { .. } => Reply::ok("Ok"),
            Request::Quit => {
                io.reply(&Reply::new(221, "2.0.0", "Bye"));
                return Next::Quit;
            }
            Request::Vrfy { .. } => self.vrfy(),
            Request::Expn { .. } => Reply::new(502, "5.5.1", "EXPN is not available"),
            Request::Help { .. } => self.help(),
            Request::Bdat { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => Reply::new(502, "5.5.1", "Command not implemented"),
        };
        if !reply.is_positive() {
            self.errors += 1;
        }
        io.reply(&reply);
        if self.errors >= MAX_ERRORS {
            io.reply(&Reply::new(
                421,
                "4.7.0",
                "Too many errors, closing connection",
            ));
            return Next::Quit;
        }
        Next::Continue
    }
}

/// Stands in for an address literal while smtp-proto parses the line (it knows no literals).
const LITERAL_STANDIN: &str = "address-literal.correo.invalid";

/// Parses a command line; a MAIL or RCPT path whose domain is an address literal (RFC 5321 §4.1.3,
/// `user@[192.0.2.1]`, `user@[IPv6:2001:db8::1]`) is parsed with a stand-in domain that is then put
/// back. Only digits, hex letters, '.', ':' and the `IPv6:` tag pass; `Address::parse` checks the IP.
fn parse_with_literal(line: &[u8]) -> Result<Request<String>, smtp_proto::Error> {
    let plain = || Request::parse(&mut line.iter()).map(|r| r.into_owned());
    let is_path_verb = line.len() > 8
        && (line[..5].eq_ignore_ascii_case(b"MAIL ") || line[..5].eq_ignore_ascii_case(b"RCPT "));
    let Some(at) = memchr::memmem::find(line, b"@[").filter(|_| is_path_verb) else {
        return plain();
    };
    let Some(len) = memchr::memchr(b']', &line[at..]) else {
        return plain();
    };
    let literal = &line[at + 1..at + len + 1];
    let inner = &literal[1..literal.len() - 1];
    let inner = inner.strip_prefix(b"IPv6:").unwrap_or(inner);
    if inner.is_empty()
        || line.get(at + len + 1) != Some(&b'>')
        || !inner
            .iter()
            .all(|b| b.is_ascii_hexdigit() || *b == b'.' || *b == b':')
    {
        return plain();
    }
    let mut edited = line[..at + 1].to_vec();
    edited.extend_from_slice(LITERAL_STANDIN.as_bytes());
    edited.extend_from_slice(&line[at + len + 1..]);
    let literal = String::from_utf8_lossy(literal).into_owned();
    let restore = |a: &mut String| {
        if let Some(local) = a.strip_suffix(LITERAL_STANDIN) {
            *a = format!("{local}{literal}");
        }
    };
    match Request::parse(&mut edited.iter()).map(|r| r.into_owned()) {
        Ok(Request::Mail { mut from }) => {
            restore(&mut from.address);
            Ok(Request::Mail { from })
        }
        Ok(Request::Rcpt { mut to }) => {
            restore(&mut to.address);
            Ok(Request::Rcpt { to })
        }
        _ => plain(),
    }
}

fn parse_error(e: &smtp_proto::Error) -> Reply {
    use smtp_proto::Error::*;
    match e {
        UnknownCommand => Reply::new(500, "5.5.2", "Syntax error, command unrecognized"),
        InvalidSenderAddress => Reply::new(501, "5.1.7", "Bad sender address syntax"),
        InvalidRecipientAddress => Reply::new(501, "5.1.3", "Bad recipient address syntax"),
        SyntaxError { syntax } => Reply::new(501, "5.5.4", format!("Syntax: {syntax}")),
        InvalidParameter { param } => {
            Reply::new(501, "5.5.4", format!("Invalid parameter {param}"))
        }
        UnsupportedParameter { param } => {
            let p: String = param
                .chars()
                .filter(|c| c.is_ascii_graphic())
                .take(40)
                .collect();
            Reply::new(555, "5.5.4", format!("Unsupported parameter {p}"))
        }
        _ => Reply::new(500, "5.5.2", "Syntax error"),
    }
}

/// Runs a session to its end on a fresh connection (TLS first on an implicit-TLS listener).
pub async fn serve(ctx: Arc<Ctx>, stream: tokio::net::TcpStream, peer: SocketAddr, mode: Mode) {
    let mut session = Session::new(ctx.clone(), peer, mode);
    let timeout = ctx.timeout;
    if mode == Mode::Smtps {
        let Some(acceptor) = ctx.tls.clone() else {
            return;
        };
        let Ok(Ok(tls)) = tokio::time::timeout(timeout, acceptor.accept(stream)).await else {
            return;
        };
        let mut io = Io {
            stream: tls,
            inbuf: Vec::new(),
            out: Vec::new(),
            timeout,
        };
        greet(&session, &mut io);
        let _ = session.run(&mut io).await;
        return;
    }
    let mut io = Io {
        stream,
        inbuf: Vec::new(),
        out: Vec::new(),
        timeout,
    };
    greet(&session, &mut io);
    if let Ok(true) = session.run(&mut io).await {
        let Some(acceptor) = ctx.tls.clone() else {
            return;
        };
        let Ok(Ok(tls)) = tokio::time::timeout(timeout, acceptor.accept(io.stream)).await else {
            return;
        };
        // RFC 3207 §4.2: forget everything learnt before TLS, including the HELO.
        session = Session::new(ctx.clone(), peer, mode);
        session.tls = true;
        let mut io = Io {
            stream: tls,
            inbuf: Vec::new(),
            out: Vec::new(),
            timeout,
        };
        let _ = session.run(&mut io).await;
    }
}

fn greet<S: AsyncRead + AsyncWrite + Unpin>(s: &Session, io: &mut Io<S>) {
    io.raw(&format!("220 {} ESMTP correo\r\n", s.ctx.hostname));
}

impl Session {
    /// The command loop; returns Ok(true) when the client asked for STARTTLS and the caller should
    /// wrap the stream, Ok(false) at the end of the session.
    pub async fn run<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut Io<S>,
    ) -> std::io::Result<bool> {
        loop {
            while let Some(line) = io.take_line() {
                let next = match line {
                    Ok(l) => self.command(io, &l).await,
                    Err(()) => {
                        self.errors += 1;
                        io.reply(&Reply::new(500, "5.5.6", "Line too long"));
                        if self.errors >= MAX_ERRORS {
                            Next::Quit
                        } else {
                            Next::Continue
                        }
                    }
                };
                match next {
                    Next::Continue => {}
                    Next::Quit => {
                        io.flush().await?;
                        return Ok(false);
                    }
                    Next::StartTls => {
                        io.flush().await?;
                        io.inbuf.clear();
                        return Ok(true);
                    }
                    Next::Data => {
                        io.flush().await?;
                        let reply = self.data(io).await?;
                        io.reply(&reply);
                    }
                }
            }
            io.flush().await?;
            if !io.fill().await? {
                return Ok(false);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_with_literal;
    use smtp_proto::Request;

    #[test]
    fn address_literals_parse() {
        match parse_with_literal(b"RCPT TO:<u@[192.0.2.1]> NOTIFY=NEVER\r\n") {
            Ok(Request::Rcpt { to }) => assert_eq!(to.address, "u@[192.0.2.1]"),
            other => panic!("{other:?}"),
        }
        match parse_with_literal(b"MAIL FROM:<u@[IPv6:2001:db8::1]> SIZE=10\r\n") {
            Ok(Request::Mail { from }) => {
                assert_eq!(from.address, "u@[IPv6:2001:db8::1]");
                assert_eq!(from.size, 10);
            }
            other => panic!("{other:?}"),
        }
        for bad in [
            &b"RCPT TO:<u@[1.2.3.4;rm]>\r\n"[..],
            b"RCPT TO:<u@[]>\r\n",
            b"RCPT TO:<u@[1.2.3.4]x>\r\n",
            b"RCPT TO:<u@[\r\n",
            b"MAIL F@[\r\n",
        ] {
            assert!(parse_with_literal(bad).is_err(), "{bad:?}");
        }
    }
}
