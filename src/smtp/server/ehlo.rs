//! EHLO and HELO (RFC 5321 §4.1.1.1): greet, reset the transaction, list the extensions this listener
//! offers in this state (STARTTLS only before TLS; AUTH only after it and never on the MX port).

use super::session::Session;
use super::Mode;
use crate::smtp::reply::Reply;

impl Session {
    pub fn ehlo(&mut self, host: &str, esmtp: bool) -> Reply {
        if host.is_empty() || host.len() > 255 || !host.bytes().all(|b| b.is_ascii_graphic()) {
            return Reply::new(501, "5.5.4", "Syntax: EHLO hostname");
        }
        self.reset();
        self.helo = Some(host.to_string());
        self.esmtp = esmtp;
        let greeting = format!("{} Hello {} [{}]", self.ctx.hostname, host, self.peer.ip());
        if !esmtp {
            return Reply::new(250, "2.0.0", greeting);
        }
        let mut lines = vec![
            greeting,
            "PIPELINING".to_string(),
            format!("SIZE {}", self.ctx.max_size),
            "8BITMIME".to_string(),
            "SMTPUTF8".to_string(),
            "ENHANCEDSTATUSCODES".to_string(),
        ];
        if self.offers_starttls() {
            lines.push("STARTTLS".to_string());
        }
        if self.offers_auth() {
            lines.push("AUTH PLAIN LOGIN".to_string());
        }
        // No enhanced code in the EHLO reply: clients read each line as a keyword (Postfix does the same).
        Reply::new(250, "", lines.join("\n"))
    }

    pub fn offers_starttls(&self) -> bool {
        !self.tls && self.ctx.tls.is_some() && self.mode != Mode::Smtps
    }

    /// RFC 4954 §4 lets a server refuse AUTH without TLS; we never offer it in the clear.
    pub fn offers_auth(&self) -> bool {
        self.tls && self.mode != Mode::Mx && self.ctx.passwd.is_some() && self.auth_user.is_none()
    }
}
