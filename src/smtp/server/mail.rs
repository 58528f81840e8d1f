//! MAIL FROM (RFC 5321 §4.1.1.2): starts a transaction. Submission listeners require AUTH first
//! (RFC 6409 §4.3); the SIZE parameter is checked against our limit up front (RFC 1870 §6.2).

use super::session::Session;
use super::Mode;
use crate::message::address::Address;
use crate::smtp::path;
use crate::smtp::reply::Reply;
use smtp_proto::{MailFrom, MAIL_BODY_8BITMIME, MAIL_SMTPUTF8};

impl Session {
    pub fn mail(&mut self, from: MailFrom<String>) -> Reply {
        if self.helo.is_none() {
            return Reply::new(503, "5.5.1", "Send HELO/EHLO first");
        }
        if self.mail_from.is_some() {
            return Reply::new(503, "5.5.1", "Nested MAIL command");
        }
        if self.mode != Mode::Mx && self.auth_user.is_none() {
            return Reply::new(530, "5.7.0", "Authentication required");
        }
        if from.size > self.ctx.max_size {
            return Reply::new(
                552,
                "5.3.4",
                format!(
                    "Message size exceeds fixed limit of {} bytes",
                    self.ctx.max_size
                ),
            );
        }
        let smtputf8 = from.flags & MAIL_SMTPUTF8 != 0;
        let sender = if from.address.is_empty() {
            String::new()
        } else {
            match Address::parse(&from.address) {
                Ok(a) => a.to_string(),
                // RFC 6531 §3.4: a UTF-8 address only in a transaction that announced SMTPUTF8.
                Err(_) if !from.address.is_ascii() && !smtputf8 => {
                    return Reply::new(
                        553,
                        "5.6.7",
                        "Non-ASCII sender address needs the SMTPUTF8 parameter",
                    )
                }
                Err(_) if !from.address.is_ascii() => match path::parse_utf8(&from.address) {
                    Ok(m) => match m.to_ascii() {
                        Some(a) => a.to_string(),
                        None => m.to_string(),
                    },
                    Err(_) => return Reply::new(553, "5.1.7", "Bad sender address"),
                },
                Err(_) => return Reply::new(553, "5.1.7", "Bad sender address"),
            }
        };
        self.smtputf8 = smtputf8;
        self.body8bit = from.flags & MAIL_BODY_8BITMIME != 0;
        self.mail_from = Some(sender);
        Reply::new(250, "2.1.0", "Ok")
    }
}
