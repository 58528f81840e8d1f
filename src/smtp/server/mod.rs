//! The SMTP server: listeners and what a session may do on each (MX, submission, implicit TLS), the
//! shared context every session reads, and one file per verb beside `session.rs`, which owns the I/O loop.

pub mod auth;
pub mod data;
pub mod ehlo;
pub mod mail;
pub mod misc;
pub mod passwd;
pub mod rcpt;
pub mod session;
pub mod starttls;

use crate::message::error::Result;
use crate::smtp::queue::{NewMessage, Queue};
use std::net::IpAddr;
use std::sync::Arc;

/// What a listener is for; it decides AUTH and TLS requirements (RFC 6409, RFC 8314).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Port 25: mail for our domains from anyone, relaying only for trusted networks, never AUTH.
    Mx,
    /// Port 587: STARTTLS, then AUTH, then anything.
    Submission,
    /// Port 465: TLS from the first byte, then AUTH.
    Smtps,
}

/// Where accepted messages go. The queue in production; tests and the fuzzer plug in their own.
pub trait Sink: Send + Sync {
    /// Stores the message durably and returns its queue id. Only after Ok may the client hear 250.
    fn enqueue(&self, m: NewMessage<'_>) -> Result<String>;
}

impl Sink for Queue {
    fn enqueue(&self, m: NewMessage<'_>) -> Result<String> {
        Queue::enqueue(self, m)
    }
}

/// Accepts and forgets (fuzzing, protocol tests).
pub struct NullSink;
impl Sink for NullSink {
    fn enqueue(&self, _m: NewMessage<'_>) -> Result<String> {
        Ok("null".into())
    }
}

/// Everything a session needs, shared by all of them.
pub struct Ctx {
    pub hostname: String,
    pub router: Arc<crate::smtp::route::Routes>,
    pub sink: Arc<dyn Sink>,
    pub trusted: Vec<ipnet::IpNet>,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub passwd: Option<passwd::Passwd>,
    pub max_size: usize,
    pub max_rcpts: usize,
    pub max_received: usize,
    /// Read timeout for one command or data block (RFC 5321 §4.5.3.2 asks for minutes).
    pub timeout: std::time::Duration,
    /// Pause after a failed AUTH, times the failures so far (slows password guessing).
    pub auth_delay: std::time::Duration,
}

impl Ctx {
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        self.trusted.iter().any(|n| n.contains(&ip))
    }
}

/// Parses `[smtp] trusted_networks`: CIDR blocks or single addresses.
pub fn parse_networks(list: &[String]) -> std::result::Result<Vec<ipnet::IpNet>, String> {
    list.iter()
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("[smtp] trusted_networks: '{s}' is not a network"))
        })
        .collect()
}

/// Builds the rustls acceptor from PEM files (ring provider, TLS 1.2 and 1.3).
pub fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> std::result::Result<tokio_rustls::TlsAcceptor, String> {
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(cert).map_err(|e| format!("{}: {e}", cert.display()))?,
    ))
    .collect::<std::result::Result<Vec<_>, _>>()
    .map_err(|e| format!("{}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate", cert.display()));
    }
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(key).map_err(|e| format!("{}: {e}", key.display()))?,
    ))
    .map_err(|e| format!("{}: {e}", key.display()))?
    .ok_or_else(|| format!("{}: no private key", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("TLS certificate: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

/// Binds one listener and serves it forever. Logs one line when it is ready.
pub async fn listen(
    ctx: Arc<Ctx>,
    addr: String,
    mode: Mode,
    max_connections: usize,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let local = listener.local_addr()?;
    let kind = match mode {
        Mode::Mx => "smtp",
        Mode::Submission => "submission",
        Mode::Smtps => "smtps",
    };
    crate::message::log::event(
        "serve",
        kind,
        &[("listen", &local.to_string()), ("status", "ready")],
    );
    eprintln!("correo: {kind} listening on {local}");
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections.max(1)));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(_) => {
                // EMFILE and friends: back off instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let ctx = ctx.clone();
        let permit = slots.clone().try_acquire_owned();
        tokio::spawn(async move {
            let Ok(_permit) = permit else {
                use tokio::io::AsyncWriteExt;
                let mut s = stream;
                let _ = s
                    .write_all(b"421 4.7.0 Too many connections, try again later\r\n")
                    .await;
                return;
            };
            session::serve(ctx, stream, peer, mode).await;
        });
    }
}
