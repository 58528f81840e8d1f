//! `[outbound]` and `[lists]` in correo.toml.

use serde::Deserialize;

/// Where list mail goes out, like Mailman's SMTPHOST/SMTPPORT.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundConfig {
    /// host:port of the SMTP server that takes list fan-out. Unset: correo serve's own first
    /// listener (its durable queue), so a fresh install works with nothing configured. With Postfix or
    /// OpenSMTPD in front, set it to their port, usually "127.0.0.1:25" (Mailman's SMTPHOST/SMTPPORT).
    pub smtp: Option<String>,
    /// Name we give in EHLO; default: the host name.
    pub helo: Option<String>,
    /// Parallel SMTP connections for a fan-out.
    pub connections: usize,
    /// Recipients per transaction when VERP is off (Mailman's SMTP_MAX_RCPTS).
    pub max_rcpts: usize,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            smtp: None,
            helo: None,
            connections: 4,
            max_rcpts: 100,
        }
    }
}

/// Site-wide defaults for the list manager.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListsConfig {
    /// How long a confirmation token stays valid, in hours (Mailman: PENDING_REQUEST_LIFE, 3 days).
    pub confirm_hours: u64,
    /// At most this many confirmation mails to one address per day (mail-bomb guard).
    pub confirm_per_day: u32,
}

impl Default for ListsConfig {
    fn default() -> Self {
        ListsConfig {
            confirm_hours: 72,
            confirm_per_day: 3,
        }
    }
}
