//! `[smtp]` (the listeners and what they accept) and `[relay]` (how the queue delivers) in correo.toml.
//!
//! Defaults let a newcomer run `correo serve` on a loopback port with no TLS and no relaying except from
//! the host itself; every key that names a file is checked when the server starts, never on first use.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// MX listeners: no AUTH, relaying only for trusted networks (port 25 in production).
    pub listen: Vec<String>,
    /// Submission listeners (RFC 6409, port 587): STARTTLS then AUTH required before MAIL.
    pub submission: Vec<String>,
    /// Implicit-TLS submission listeners (RFC 8314 §3.3, port 465): AUTH required before MAIL.
    pub smtps: Vec<String>,
    /// Our name in the greeting, EHLO reply and Received header; default: the kernel host name.
    pub hostname: Option<String>,
    /// Domains we deliver locally (sendmail's local-host-names / OpenSMTPD `match for domain`).
    pub domains: Vec<String>,
    /// The aliases(5) file for `domains`.
    pub aliases: Option<PathBuf>,
    /// Per-domain alias tables for virtual domains: `"lists.example.org" = "/etc/correo/aliases.lists"`.
    pub domain_aliases: BTreeMap<String, PathBuf>,
    /// sendmail's virtusertable: `user@domain  target` lines; its domains are accepted too.
    pub virtusers: Option<PathBuf>,
    /// Networks allowed to relay without AUTH (OpenSMTPD's `match from local`).
    pub trusted_networks: Vec<String>,
    /// PEM certificate chain and key; without them STARTTLS is not offered and submission is refused.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// `user:$pbkdf2-sha256$ITER$SALT$HASH` lines (make one with `correo serve --hash-password`).
    pub passwd: Option<PathBuf>,
    /// SIZE limit in bytes (RFC 1870).
    pub max_size: usize,
    /// RFC 5321 §4.5.3.1.8 asks for at least 100; more per message are refused with 452 4.5.3.
    pub max_rcpts: usize,
    /// A message with more Received headers than this is looping (RFC 5321 §6.3).
    pub max_received: usize,
    /// Simultaneous connections per listener beyond which new clients get 421.
    pub max_connections: usize,
    /// User that alias pipes and /file deliveries run as when correo runs as root (sendmail's DefaultUser).
    /// Unset: the owner of the data directory, so `correo mail post` run from an alias can write the
    /// database it shares with `serve` (chown the data directory to a `correo` user in production).
    pub pipe_user: Option<String>,
    /// How mail for a local user is stored: "mbox" (in `mailbox_dir`), "maildir" (~/Maildir) or
    /// "deliver" (run `deliver_command` as the user, the recipe engine).
    pub local_delivery: String,
    pub mailbox_dir: PathBuf,
    pub deliver_command: String,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            listen: vec!["127.0.0.1:2525".into()],
            submission: vec![],
            smtps: vec![],
            hostname: None,
            domains: vec![],
            aliases: None,
            domain_aliases: BTreeMap::new(),
            virtusers: None,
            trusted_networks: vec!["127.0.0.0/8".into(), "::1/128".into()],
            tls_cert: None,
            tls_key: None,
            passwd: None,
            max_size: 35 * 1024 * 1024,
            max_rcpts: 100,
            max_received: 30,
            max_connections: 500,
            pipe_user: None,
            local_delivery: "mbox".into(),
            mailbox_dir: PathBuf::from("/var/mail"),
            deliver_command: "correo deliver".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    /// host:port to hand every remote message to; unset means MX lookup.
    pub smarthost: Option<String>,
    /// TLS towards the smarthost: "opportunistic" (STARTTLS when offered), "required" (STARTTLS and a
    /// certificate valid for the host name) or "never".
    pub smarthost_tls: String,
    /// TLS towards MX hosts: "opportunistic" (RFC 7435, the default) or "never".
    pub mx_tls: String,
    /// AUTH PLAIN credentials for the smarthost (sent only under TLS): user name and a file holding the password.
    pub smarthost_user: Option<String>,
    pub smarthost_password_file: Option<PathBuf>,
    /// Resolver to ask for MX records instead of /etc/resolv.conf, "IP" or "IP:PORT" (tests).
    pub dns: Option<String>,
    /// Static routes that bypass DNS: `"example.net" = "127.0.0.1:2526"` (tests, split-horizon hosts).
    pub routes: BTreeMap<String, String>,
    /// TCP port of remote MX hosts (25; tests point it elsewhere).
    pub port: u16,
    /// Give up and bounce after this many hours in the queue (RFC 5321 §4.5.4.1 suggests 4-5 days).
    pub expire_hours: f64,
    /// First retry after this many seconds, doubling up to `retry_max_secs`, with ±20% jitter.
    pub retry_secs: f64,
    pub retry_max_secs: f64,
    /// How long a destination that refused a connection is skipped (the failure cache).
    pub down_secs: f64,
    /// Connections per destination (domain or smarthost) open at once.
    pub connections: usize,
    /// Delivery threads (connections and local deliveries) in all, across destinations.
    pub max_workers: usize,
    /// Messages sent over one connection before it is closed and reopened.
    pub per_connection: usize,
    /// Name used in EHLO; default: [smtp] hostname.
    pub helo: Option<String>,
}

/// Reads a TLS policy name from the config.
pub fn tls_policy(key: &str, v: &str) -> Result<crate::smtp::client::TlsPolicy, String> {
    use crate::smtp::client::TlsPolicy;
    match v {
        "never" | "none" => Ok(TlsPolicy::Never),
        "opportunistic" | "may" => Ok(TlsPolicy::Opportunistic),
        "required" | "verify" => Ok(TlsPolicy::Required),
        _ => Err(format!(
            "[relay] {key} = \"{v}\": expected never, opportunistic or required"
        )),
    }
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            smarthost: None,
            smarthost_tls: "opportunistic".into(),
            mx_tls: "opportunistic".into(),
            smarthost_user: None,
            smarthost_password_file: None,
            dns: None,
            routes: BTreeMap::new(),
            port: 25,
            expire_hours: 120.0,
            retry_secs: 300.0,
            retry_max_secs: 3600.0,
            down_secs: 60.0,
            connections: 8,
            max_workers: 100,
            per_connection: 1000,
            helo: None,
        }
    }
}
