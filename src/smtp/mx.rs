//! Where remote mail goes: the smarthost, a static route, or the domain's MX hosts (RFC 5321 §5.1):
//! MX records by preference, at most 5 tried; no MX means the domain itself (implicit MX); a single MX of
//! "." means the domain takes no mail (null MX, RFC 7505) and is a permanent failure (5.1.10).

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;

/// RFC 5321 §5.1 lets a client give up after some MX hosts; we try this many, like Postfix's default.
pub const MAX_MX: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    Temporary(String),
    Permanent(String),
}

/// Builds the resolver: `[relay] dns = "IP[:PORT]"` or the system's resolv.conf.
pub fn resolver(dns: Option<&str>) -> Result<TokioResolver, String> {
    let provider = hickory_resolver::net::runtime::TokioRuntimeProvider::default();
    match dns {
        Some(spec) => {
            let (ip, port) = match spec.parse::<std::net::SocketAddr>() {
                Ok(sa) => (sa.ip(), sa.port()),
                Err(_) => (
                    spec.parse::<std::net::IpAddr>()
                        .map_err(|e| format!("[relay] dns '{spec}': {e}"))?,
                    53,
                ),
            };
            let mut udp = ConnectionConfig::udp();
            udp.port = port;
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = port;
            let ns = NameServerConfig::new(ip, true, vec![udp, tcp]);
            let cfg = ResolverConfig::from_parts(None, vec![], vec![ns]);
            TokioResolver::builder_with_config(cfg, provider)
                .build()
                .map_err(|e| e.to_string())
        }
        None => TokioResolver::builder(provider)
            .and_then(|b| b.build())
            .map_err(|e| format!("resolver: {e}")),
    }
}

/// The hosts to try for `domain`, best first, as (name, `ip:port`): MX names are resolved through the
/// same resolver, so tests can answer everything from a test DNS server.
pub async fn mx_hosts(
    resolver: &TokioResolver,
    domain: &str,
    port: u16,
) -> Result<Vec<(String, String)>, RouteError> {
    // Address literals (RFC 5321 §4.1.3) bypass DNS.
    if let Some(lit) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        let ip = lit.strip_prefix("IPv6:").unwrap_or(lit);
        return match ip.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(vec![(
                domain.to_string(),
                std::net::SocketAddr::new(ip, port).to_string(),
            )]),
            Err(_) => Err(RouteError::Permanent(format!(
                "5.1.2 bad address literal {domain}"
            ))),
        };
    }
    let fqdn = format!("{}.", domain.trim_end_matches('.'));
    let names: Vec<String> = match resolver.mx_lookup(fqdn.as_str()).await {
        Ok(lookup) => {
            let mut mx: Vec<(u16, String, bool)> = lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::MX(m) => {
                        Some((m.preference, m.exchange.to_ascii(), m.exchange.is_root()))
                    }
                    _ => None,
                })
                .collect();
            // RFC 7505 §3: a single MX of "." says the domain accepts no mail.
            if mx.iter().any(|(_, _, root)| *root) {
                return Err(RouteError::Permanent(format!(
                    "5.1.10 {domain} accepts no mail (null MX)"
                )));
            }
            if mx.is_empty() {
                vec![fqdn.clone()]
            } else {
                mx.sort_by_key(|(p, _, _)| *p);
                mx.into_iter().take(MAX_MX).map(|(_, h, _)| h).collect()
            }
        }
        Err(e) if e.is_nx_domain() => {
            return Err(RouteError::Permanent(format!(
                "5.1.2 domain {domain} does not exist"
            )))
        }
        // RFC 5321 §5.1: no MX records, the domain's address records act as an implicit MX.
        Err(e) if e.is_no_records_found() => vec![fqdn.clone()],
        Err(e) => {
            return Err(RouteError::Temporary(format!(
                "4.4.3 MX lookup for {domain} failed: {e}"
            )))
        }
    };
    let mut out = Vec::new();
    let mut last_err = String::new();
    for name in names {
        let fq = if name.ends_with('.') {
            name.clone()
        } else {
            format!("{name}.")
        };
        match resolver.lookup_ip(fq.as_str()).await {
            Ok(ips) => {
                for ip in ips.iter() {
                    out.push((
                        name.trim_end_matches('.').to_string(),
                        std::net::SocketAddr::new(ip, port).to_string(),
                    ));
                }
            }
            Err(e) => last_err = format!("{name}: {e}"),
        }
    }
    if out.is_empty() {
        return Err(RouteError::Temporary(format!(
            "4.4.3 no address for the mail hosts of {domain} ({last_err})"
        )));
    }
    Ok(out)
}
