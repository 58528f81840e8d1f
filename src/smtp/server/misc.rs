//! VRFY and HELP. VRFY never confirms a user (RFC 5321 §3.5.3 allows 252): address harvesting is not a
//! service we offer.

use super::session::Session;
use crate::smtp::reply::Reply;

impl Session {
    pub fn vrfy(&self) -> Reply {
        Reply::new(
            252,
            "2.5.0",
            "Cannot VRFY user, but will accept message and attempt delivery",
        )
    }
    pub fn help(&self) -> Reply {
        Reply::new(
            214,
            "2.0.0",
            "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY STARTTLS AUTH HELP",
        )
    }
}
