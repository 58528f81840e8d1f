//! STARTTLS (RFC 3207): the reply is sent in the clear, then the session loop hands the stream to rustls
//! and starts over with a fresh session (§4.2), discarding anything pipelined after the command.

use super::session::Session;
use crate::smtp::reply::Reply;

impl Session {
    pub fn starttls(&mut self) -> Result<Reply, Reply> {
        if self.tls {
            return Err(Reply::new(503, "5.5.1", "TLS already active"));
        }
        if !self.offers_starttls() {
            return Err(Reply::new(502, "5.5.1", "STARTTLS not available"));
        }
        if self.mail_from.is_some() {
            return Err(Reply::new(
                503,
                "5.5.1",
                "STARTTLS not allowed during a transaction",
            ));
        }
        Ok(Reply::new(220, "2.0.0", "Ready to start TLS"))
    }
}
