//! Entry points for the fuzz targets in fuzz/ (cargo-fuzz) and for the randomized test that runs the
//! same code on every `cargo test`: an SMTP session fed arbitrary bytes, and the table parsers.
//!
//! The session runs with a null sink, an alias table, a password file and TLS marked active, so every
//! state is reachable: greeting, EHLO, MAIL/RCPT/DATA, AUTH PLAIN/LOGIN continuations, errors and quit.

use crate::smtp::aliases;
use crate::smtp::route::Router;
use crate::smtp::server::passwd::Passwd;
use crate::smtp::server::session::{Io, Session};
use crate::smtp::server::{Ctx, Mode, NullSink};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Input in small, uneven chunks (so pipelined and split commands both happen); output collected.
struct Mock {
    input: Vec<u8>,
    pos: usize,
    output: Vec<u8>,
}

impl AsyncRead for Mock {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let left = self.input.len() - self.pos;
        let step = 1 + (self.pos * 7 + 13) % 97;
        let n = left.min(step).min(buf.remaining());
        let start = self.pos;
        buf.put_slice(&self.input[start..start + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Mock {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.output.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn ctx() -> Arc<Ctx> {
    static CTX: OnceLock<Arc<Ctx>> = OnceLock::new();
    CTX.get_or_init(|| {
        let (table, _) = aliases::parse("postmaster: /dev/null\nlist: \"|/bin/true\", far@example.net\nowner-list: postmaster\n");
        let router = Router { local_domains: ["example.org".to_string()].into_iter().collect(), aliases: table, ..Router::default() };
        let hash = crate::smtp::server::passwd::hash("secret", 1);
        Arc::new(Ctx {
            hostname: "fuzz.example.org".into(),
            router: Arc::new(crate::smtp::route::Routes::fixed(router)),
            sink: Arc::new(NullSink),
            trusted: vec![],
            tls: None,
            passwd: Passwd::parse(&format!("ana:{hash}\n")).ok(),
            max_size: 4096,
            max_rcpts: 100,
            max_received: 5,
            timeout: std::time::Duration::from_secs(5),
            auth_delay: std::time::Duration::ZERO,
        })
    })
    .clone()
}

/// Runs one session over `data`; returns what the server wrote. Must never panic.
pub fn session(data: &[u8]) -> Vec<u8> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mode = if data.first().is_some_and(|b| b & 1 == 1) {
            Mode::Submission
        } else {
            Mode::Mx
        };
        let peer = "192.0.2.1:1234".parse().expect("addr");
        let mut s = Session::new(ctx(), peer, mode);
        s.tls = mode == Mode::Submission;
        let mut io = Io {
            stream: Mock {
                input: data.to_vec(),
                pos: 0,
                output: Vec::new(),
            },
            inbuf: Vec::new(),
            out: Vec::new(),
            timeout: std::time::Duration::from_secs(5),
        };
        let _ = s.run(&mut io).await;
        let _ = io.flush().await;
        io.stream.output
    })
}

/// Parses bytes as an aliases file, an :include: file and a virtusertable. Must never panic.
pub fn tables(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (t, errs) = aliases::parse(&text);
    for e in &errs {
        assert!(
            e.line >= 1 && e.line <= text.lines().count().max(1),
            "line number out of range"
        );
    }
    for entry in t.entries.values() {
        assert!(!entry.targets.is_empty());
    }
    let _ = aliases::parse_include(&text);
    let _ = aliases::parse_virtusers(&text);
}

#[cfg(test)]
mod tests {
    /// A few thousand pseudo-random sessions built from SMTP fragments, so `cargo test` exercises the
    /// fuzz entry points even where cargo-fuzz is not installed.
    #[test]
    fn random_sessions_never_panic() {
        const PIECES: &[&[u8]] = &[
            b"EHLO x\r\n",
            b"HELO x\r\n",
            b"MAIL FROM:<a@example.net>\r\n",
            b"MAIL FROM:<>\r\n",
            b"RCPT TO:<list@example.org>\r\n",
            b"RCPT TO:<postmaster>\r\n",
            b"RCPT TO:<x@far.net>\r\n",
            b"DATA\r\n",
            b"Subject: x\r\n\r\nbody\r\n.\r\n",
            b"\n.\n",
            b".\r\n",
            b"AUTH PLAIN\r\n",
            b"AUTH PLAIN AGFuYQBzZWNyZXQ=\r\n",
            b"AUTH LOGIN\r\n",
            b"YW5h\r\n",
            b"c2VjcmV0\r\n",
            b"*\r\n",
            b"STARTTLS\r\n",
            b"RSET\r\n",
            b"NOOP\r\n",
            b"VRFY x\r\n",
            b"BDAT 5\r\n",
            b"QUIT\r\n",
            b"\x00\xff\r\n",
            b"MAIL FROM:<a@b> SIZE=99999999\r\n",
            b"Received: x\r\n",
            b"RCPT TO:<\xc3\xa9@example.org>\r\n",
            b"MAIL FROM:<jos\xc3\xa9@b\xc3\xbccher.example> SMTPUTF8 BODY=8BITMIME\r\n",
            b"RCPT TO:<d\xc3\xb6rte@far.example.net>\r\n",
            b"RCPT TO:<u@[192.0.2.1]>\r\n",
            b"MAIL FROM:<u@[IPv6:2001:db8::1]>\r\n",
            b"RCPT TO:<u@[\r\n",
            b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ];
        let mut seed: u64 = std::env::var("CORREO_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x9e3779b97f4a7c15);
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // CORREO_FUZZ_ITERS scales the run (e.g. 100000 for a longer session without cargo-fuzz).
        let iters: usize = std::env::var("CORREO_FUZZ_ITERS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(2000);
        for _ in 0..iters {
            let mut input = Vec::new();
            for _ in 0..(next() % 24) {
                let p = PIECES[(next() % PIECES.len() as u64) as usize];
                if next() % 10 == 0 {
                    // Cut a piece or flip a byte.
                    let mut v = p.to_vec();
                    let i = (next() as usize) % v.len();
                    if next() % 2 == 0 {
                        v.truncate(i);
                    } else {
                        v[i] ^= (next() & 0xff) as u8;
                    }
                    input.extend_from_slice(&v);
                } else {
                    input.extend_from_slice(p);
                }
            }
            let out = super::session(&input);
            // Every reply line has a 3-digit code.
            for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                assert!(
                    line.len() >= 4 && line[..3].iter().all(u8::is_ascii_digit),
                    "bad reply line {:?} for {:?}",
                    String::from_utf8_lossy(line),
                    String::from_utf8_lossy(&input)
                );
            }
            super::tables(&input);
        }
        // And some bytes with no structure at all.
        for _ in 0..iters / 7 {
            let len = (next() % 600) as usize;
            let input: Vec<u8> = (0..len).map(|_| (next() & 0xff) as u8).collect();
            let _ = super::session(&input);
            super::tables(&input);
        }
    }
}
