//! RCPT TO (RFC 5321 §4.1.1.3): the accept rules and alias expansion happen here, through `Router`, so
//! an unknown user or a relay attempt is refused while the client is still connected.

use super::session::Session;
use crate::message::address::Address;
use crate::smtp::path;
use crate::smtp::reply::Reply;
use smtp_proto::RcptTo;

impl Session {
    pub fn rcpt(&mut self, to: RcptTo<String>) -> Reply {
        if self.mail_from.is_none() {
            return Reply::new(503, "5.5.1", "Need MAIL before RCPT");
        }
        if self.rcpt_addrs.len() >= self.ctx.max_rcpts {
            // RFC 5321 §4.5.3.1.10: 452 tells the client to send the rest in another transaction.
            return Reply::new(452, "4.5.3", "Too many recipients");
        }
        if to.address.is_empty() {
            return Reply::new(501, "5.1.3", "Bad recipient address syntax");
        }
        // RFC 5321 §4.1.1.3: a bare "postmaster" (no domain) must be accepted.
        let raw = if to.address.eq_ignore_ascii_case("postmaster") {
            match self.ctx.router.get().local_domains.iter().next() {
                Some(d) => format!("postmaster@{d}"),
                None => return Reply::new(550, "5.1.1", "No local postmaster"),
            }
        } else {
            to.address.clone()
        };
        let router = self.ctx.router.get();
        let (shown, resolved) = match Address::parse(&raw) {
            Ok(a) => (a.to_string(), router.resolve(&a, self.may_relay())),
            Err(_) if raw.is_ascii() => {
                return Reply::new(501, "5.1.3", "Bad recipient address syntax")
            }
            // RFC 6531 §3.4: a UTF-8 address only in a transaction that announced SMTPUTF8.
            Err(_) if !self.smtputf8 => {
                return Reply::new(
                    553,
                    "5.6.7",
                    "Non-ASCII recipient address needs the SMTPUTF8 parameter",
                )
            }
            Err(_) => match path::parse_utf8(&raw) {
                // Only the domain is UTF-8: its A-label form is the same mailbox, needs no
                // SMTPUTF8 at the next hop and goes through the aliases like any other.
                Ok(m) => match m.to_ascii() {
                    Some(a) => (a.to_string(), router.resolve(&a, self.may_relay())),
                    None => (m.to_string(), router.resolve_utf8(&m, self.may_relay())),
                },
                Err(_) => return Reply::new(553, "5.1.3", "Bad recipient address syntax"),
            },
        };
        match resolved {
            Ok(rows) => {
                self.rcpt_addrs.push(shown);
                // Two recipients that expand to the same target get one delivery (sendmail does the same).
                for row in rows {
                    if !self
                        .rcpts
                        .iter()
                        .any(|r| r.kind == row.kind && r.target == row.target)
                    {
                        self.rcpts.push(row);
                    }
                }
                Reply::new(250, "2.1.5", "Ok")
            }
            Err(r) => {
                if r.status == "5.7.1" {
                    crate::message::log::event(
                        "smtpd",
                        "NOQUEUE",
                        &[
                            ("reject", "RCPT"),
                            ("client", &self.peer.to_string()),
                            (
                                "from",
                                &format!("<{}>", self.mail_from.as_deref().unwrap_or("")),
                            ),
                            ("to", &format!("<{shown}>")),
                            ("status", &r.to_string()),
                        ],
                    );
                }
                r
            }
        }
    }
}
