//! DATA (RFC 5321 §4.1.1.4): reads the body with smtp-proto's receiver, which ends it only at
//! CRLF.CRLF; a body with any bare LF is refused outright (RFC 5321 §2.3.8), which closes the
//! SMTP-smuggling hole of servers that treat LF.LF or LF.CRLF as the end. Then loop detection, our own
//! Received header (RFC 5321 §4.4), and the queue: the 250 is sent only after the queue returned Ok.

use super::session::{Io, Session};
use crate::smtp::queue::NewMessage;
use crate::smtp::reply::Reply;
use smtp_proto::request::receiver::DataReceiver;
use tokio::io::{AsyncRead, AsyncWrite};

impl Session {
    pub fn data_start(&mut self) -> Result<(), Reply> {
        if self.mail_from.is_none() {
            return Err(Reply::new(503, "5.5.1", "Need MAIL command"));
        }
        if self.rcpts.is_empty() {
            // RFC 2920 §3.1: with pipelining the client sends DATA even when every RCPT failed.
            return Err(Reply::new(554, "5.5.1", "No valid recipients"));
        }
        Ok(())
    }

    /// Reads the message after 354 and returns the final reply.
    pub async fn data<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut Io<S>,
    ) -> std::io::Result<Reply> {
        let mut rx = DataReceiver::new();
        let mut body = Vec::with_capacity(8192);
        let mut too_big = false;
        loop {
            let mut it = io.inbuf.iter();
            let done = rx.ingest(&mut it, &mut body);
            let consumed = io.inbuf.len() - it.len();
            io.inbuf.drain(..consumed);
            if body.len() > self.ctx.max_size {
                // Keep reading to the end so the session stays in step, but keep nothing.
                too_big = true;
                body.clear();
            }
            if done {
                break;
            }
            if !io.fill().await? {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        let reply = if too_big {
            Reply::new(
                552,
                "5.3.4",
                format!(
                    "Message size exceeds fixed limit of {} bytes",
                    self.ctx.max_size
                ),
            )
        } else {
            self.accept(body).await
        };
        self.reset();
        Ok(reply)
    }

    async fn accept(&mut self, body: Vec<u8>) -> Reply {
        if has_bare_lf(&body) {
            return Reply::new(
                550,
                "5.6.0",
                "Message contains bare LF line endings (RFC 5321 section 2.3.8)",
            );
        }
        if count_received(&body) > self.ctx.max_received {
            return Reply::new(554, "5.4.6", "Too many Received headers: mail loop");
        }
        let sender = self.mail_from.clone().unwrap_or_default();
        let mut data = self.received_header().into_bytes();
        data.extend_from_slice(&body);
        let size = data.len();
        let rcpts = std::mem::take(&mut self.rcpts);
        let nrcpt = rcpts.len();
        let client = format!(
            "{}[{}]",
            self.helo.as_deref().unwrap_or("unknown"),
            self.peer.ip()
        );
        let (smtputf8, body8bit) = (self.smtputf8, self.body8bit);
        let sink = self.ctx.sink.clone();
        let s2 = sender.clone();
        let c2 = client.clone();
        let result = tokio::task::spawn_blocking(move || {
            sink.enqueue(NewMessage {
                sender: s2,
                rcpts,
                data: &data,
                client: c2,
                smtputf8,
                body8bit,
            })
        })
        .await;
        match result {
            Ok(Ok(id)) => {
                self.transactions += 1;
                crate::message::log::event(
                    "smtpd",
                    &id,
                    &[
                        ("client", &client),
                        ("from", &format!("<{sender}>")),
                        ("size", &size.to_string()),
                        ("nrcpt", &nrcpt.to_string()),
                    ],
                );
                Reply::new(250, "2.0.0", format!("Ok: queued as {id}"))
            }
            Ok(Err(e)) => {
                crate::message::log::event(
                    "smtpd",
                    "NOQUEUE",
                    &[
                        ("client", &client),
                        ("from", &format!("<{sender}>")),
                        ("status", "refused"),
                        ("error", &e.msg),
                    ],
                );
                let m = e.msg.to_ascii_lowercase();
                if m.contains("space") || m.contains("full") || m.contains("quota") {
                    Reply::new(452, "4.3.1", "Insufficient system storage")
                } else {
                    Reply::new(451, "4.3.0", "Local error in processing, try again later")
                }
            }
            Err(_) => Reply::new(451, "4.3.0", "Local error in processing, try again later"),
        }
    }

    /// RFC 5321 §4.4 trace field; `with` per RFC 3848 (ESMTPS = TLS, ESMTPA = AUTH, ESMTPSA = both).
    fn received_header(&self) -> String {
        let mut proto = String::from(if self.esmtp { "ESMTP" } else { "SMTP" });
        if self.tls {
            proto.push('S');
        }
        if self.auth_user.is_some() {
            proto.push('A');
        }
        let helo: String = self
            .helo
            .as_deref()
            .unwrap_or("unknown")
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(100)
            .collect();
        let ip = self.peer.ip();
        let for_clause = if self.rcpt_addrs.len() == 1 {
            format!("\r\n\tfor <{}>", self.rcpt_addrs[0])
        } else {
            String::new()
        };
        let date = chrono::Local::now().to_rfc2822();
        format!("Received: from {helo} ([{ip}])\r\n\tby {} (correo) with {proto}{for_clause};\r\n\t{date}\r\n", self.ctx.hostname)
    }
}

/// True when some LF is not preceded by CR.
pub fn has_bare_lf(body: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', body).any(|i| i == 0 || body[i - 1] != b'\r')
}

/// Counts Received: fields in the header section (RFC 5321 §6.3 loop detection).
pub fn count_received(body: &[u8]) -> usize {
    let end = memchr::memmem::find(body, b"\r\n\r\n").unwrap_or(body.len());
    let head = &body[..end];
    let mut n = 0;
    let mut at_start = true;
    for (i, &b) in head.iter().enumerate() {
        if at_start && head.len() - i >= 9 && head[i..i + 9].eq_ignore_ascii_case(b"received:") {
            n += 1;
        }
        at_start = b == b'\n';
    }
    n
}

#[cfg(test)]
mod tests {
    #[test]
    fn bare_lf_and_loops() {
        assert!(super::has_bare_lf(b"a\nb"));
        assert!(!super::has_bare_lf(b"a\r\nb\r\n"));
        assert_eq!(
            super::count_received(b"Received: a\r\nreceived: b\r\nX: y\r\n\r\nReceived: body"),
            2
        );
    }
}
