//! AUTH PLAIN and LOGIN (RFC 4954, RFC 4616), only on submission listeners and only under TLS: in the
//! clear the reply is 538 5.7.11 (RFC 4954 §6) and the password is never read. Failures are slowed down
//! and counted; three end the session.

use super::session::{Io, Session};
use super::Mode;
use crate::smtp::reply::Reply;
use base64::Engine;
use smtp_proto::{AUTH_LOGIN, AUTH_PLAIN};
use tokio::io::{AsyncRead, AsyncWrite};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const MAX_AUTH_FAILURES: usize = 3;

impl Session {
    pub async fn auth<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut Io<S>,
        mechanism: u64,
        initial: String,
    ) -> Reply {
        if self.mode == Mode::Mx || self.ctx.passwd.is_none() {
            return Reply::new(502, "5.5.1", "AUTH not available on this port");
        }
        if !self.tls {
            return Reply::new(
                538,
                "5.7.11",
                "Encryption required for requested authentication mechanism",
            );
        }
        if self.helo.is_none() {
            return Reply::new(503, "5.5.1", "Send EHLO first");
        }
        if self.auth_user.is_some() {
            return Reply::new(503, "5.5.1", "Already authenticated");
        }
        if self.mail_from.is_some() {
            return Reply::new(503, "5.5.1", "AUTH not allowed during a transaction");
        }
        let creds = match mechanism {
            AUTH_PLAIN => self.plain(io, initial).await,
            AUTH_LOGIN => self.login(io, initial).await,
            _ => return Reply::new(504, "5.5.4", "Unrecognized authentication type"),
        };
        let (user, pass) = match creds {
            Ok(c) => c,
            Err(r) => return r,
        };
        let ok = self
            .ctx
            .passwd
            .as_ref()
            .map(|p| p.verify(&user, &pass))
            .unwrap_or(false);
        if ok {
            self.auth_user = Some(user.clone());
            crate::message::log::event(
                "smtpd",
                "AUTH",
                &[
                    ("client", &self.peer.to_string()),
                    ("sasl_username", &user),
                    ("status", "ok"),
                ],
            );
            return Reply::new(235, "2.7.0", "Authentication successful");
        }
        self.auth_failures += 1;
        crate::message::log::event(
            "smtpd",
            "AUTH",
            &[
                ("client", &self.peer.to_string()),
                ("sasl_username", &user),
                ("status", "failed"),
            ],
        );
        tokio::time::sleep(self.ctx.auth_delay * self.auth_failures as u32).await;
        if self.auth_failures >= MAX_AUTH_FAILURES {
            self.errors = usize::MAX / 2;
        }
        Reply::new(535, "5.7.8", "Authentication credentials invalid")
    }

    /// Reads one continuation line; "*" cancels (RFC 4954 §4).
    async fn continuation<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut Io<S>,
        challenge: &str,
    ) -> Result<Vec<u8>, Reply> {
        io.raw(&format!("334 {challenge}\r\n"));
        let line = match io.read_line().await {
            Ok(Some(l)) => l,
            _ => return Err(Reply::new(500, "5.5.6", "Authentication line too long")),
        };
        let text = String::from_utf8_lossy(&line)
            .trim_end_matches(['\r', '\n'])
            .to_string();
        if text == "*" {
            return Err(Reply::new(501, "5.0.0", "Authentication cancelled"));
        }
        B64.decode(text.as_bytes())
            .map_err(|_| Reply::new(501, "5.5.2", "Invalid base64 data"))
    }

    async fn plain<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut Io<S>,
        initial: String,
    ) -> Result<(String, String), Reply> {
        let raw = if initial.is_empty() {
            self.continuation(io, "").await?
        } else if initial == "=" {
            Vec::new()
        } else {
            B64.decode(initial.as_bytes())
                .map_err(|_| Reply::new(501, "5.5.2", "Invalid base64 data"))?
        };
        // RFC 4616 §2: [authzid] NUL authcid NUL passwd
        let parts: Vec<&[u8]> = raw.split(|&b| b == 0).collect();
        if parts.len() != 3 {
            return Err(Reply::new(501, "5.5.2", "Malformed PLAIN response"));
        }
        let user = String::from_utf8(parts[1].to_vec())
            .map_err(|_| Reply::new(501, "5.5.2", "Malformed PLAIN response"))?;
        let pass = String::from_utf8(parts[2].to_vec())
            .map_err(|_| Reply::new(501, "5.5.2", "Malformed PLAIN response"))?;
        if !parts[0].is_empty() && parts[0] != parts[1] {
            return Err(Reply::new(
                535,
                "5.7.8",
                "Authorization identity not allowed",
            ));
        }
        Ok((user, pass))
    }

    async fn login<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut Io<S>,
        initial: String,
    ) -> Result<(String, String), Reply> {
        let user = if initial.is_empty() {
            self.continuation(io, "VXNlcm5hbWU6").await?
        } else {
            B64.decode(initial.as_bytes())
                .map_err(|_| Reply::new(501, "5.5.2", "Invalid base64 data"))?
        };
        let pass = self.continuation(io, "UGFzc3dvcmQ6").await?;
        let user = String::from_utf8(user)
            .map_err(|_| Reply::new(501, "5.5.2", "Malformed LOGIN response"))?;
        let pass = String::from_utf8(pass)
            .map_err(|_| Reply::new(501, "5.5.2", "Malformed LOGIN response"))?;
        Ok((user, pass))
    }
}
