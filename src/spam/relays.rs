//! Received-header parsing into relays, and the trust split SpamAssassin infers when `trusted_networks`
//! is not configured: relays from private addresses (or authenticated) at the top are trusted, the first
//! public one and everything below it are not. The result feeds the `X-Spam-Relays-*` pseudo-headers
//! that many stock rules (RDNS_NONE, HELO_*...) test. Covers the Postfix, Sendmail, Exim and qmail forms;
//! anything else with a `from` but no address counts as unparseable, as in SpamAssassin.

use std::net::IpAddr;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Relay {
    pub ip: String,
    pub rdns: String,
    pub helo: String,
    pub by: String,
    pub ident: String,
    pub envfrom: String,
    pub id: String,
    pub auth: String,
    pub private: bool,
}

impl Relay {
    /// SpamAssassin's make_relay_as_string.
    pub fn as_string(&self, intl: bool) -> String {
        format!(
            "[ ip={} rdns={} helo={} by={} ident={} envfrom={} intl={} id={} auth={} msa=0 ]",
            self.ip,
            self.rdns,
            self.helo,
            self.by,
            self.ident,
            self.envfrom,
            u8::from(intl),
            self.id,
            self.auth
        )
    }
}

#[derive(Debug, Clone, Default)]
pub struct Relays {
    pub trusted: Vec<Relay>,
    pub untrusted: Vec<Relay>,
    pub unparseable: usize,
    /// Index (0 = top) of the last Received field inside the trusted part, counting the fields that
    /// gave no relay while still trusted; -1 when none (Received.pm's last_trusted_relay_index, which
    /// also serves as the internal one when no networks are configured). ALL-TRUSTED, ALL-EXTERNAL
    /// and friends cut the header block there.
    pub last_trusted_index: i64,
}

impl Relays {
    pub fn trusted_str(&self) -> String {
        self.trusted
            .iter()
            .map(|r| r.as_string(true))
            .collect::<Vec<_>>()
            .join(" ")
    }
    pub fn untrusted_str(&self) -> String {
        self.untrusted
            .iter()
            .map(|r| r.as_string(false))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Parse outcome for one Received field.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    Relay(Relay),
    /// A local hand-off with no network hop ("from userid 0 by ..."), which SpamAssassin skips.
    Skip,
    /// A mail fetcher's hand-over (fetchmail, getmail: "with POP3"/"with IMAP"): no hop, but the
    /// relays above it were added by our own fetching, not by the path the mail took.
    Fetched,
    Unparseable,
}

/// Builds the relay list from the Received values (top first, already unfolded).
pub fn parse_all<'a>(received: impl Iterator<Item = &'a str>) -> Relays {
    let mut out = Relays {
        last_trusted_index: -1,
        ..Default::default()
    };
    let mut in_trusted = true;
    // Received.pm's allow_mailfetch_markers: a fetcher line restarts the trusted list only when the
    // hop above it was trusted (our own fetching), never from the untrusted part.
    let mut last_trusted = false;
    for line in received {
        let p = parse_line(line);
        match p {
            Parsed::Relay(r) => {
                if in_trusted && !r.private && r.auth.is_empty() {
                    in_trusted = false;
                }
                last_trusted = in_trusted;
                if in_trusted {
                    out.last_trusted_index += 1;
                    out.trusted.push(r);
                } else {
                    out.untrusted.push(r);
                }
            }
            Parsed::Fetched | Parsed::Skip | Parsed::Unparseable => {
                if in_trusted {
                    out.last_trusted_index += 1;
                }
                match p {
                    Parsed::Fetched if last_trusted => out.trusted.clear(),
                    Parsed::Unparseable => out.unparseable += 1,
                    _ => {}
                }
            }
        }
    }
    out
}

fn is_private(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => {
            let o = v.octets();
            v.is_private()
                || v.is_loopback()
                || v.is_link_local()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
        }
        IpAddr::V6(v) => {
            v.is_loopback()
                || (v.segments()[0] & 0xfe00) == 0xfc00
                || (v.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

fn find_ip(s: &str) -> Option<(usize, usize, IpAddr)> {
    // The first address in [brackets] or (parentheses), IPv4 or IPv6 (with an optional "IPv6:" tag).
    let b = s.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c != b'[' && c != b'(' {
            continue;
        }
        let close = if c == b'[' { b']' } else { b')' };
        let rest = &s[i + 1..];
        let end = rest
            .find(|ch: char| ch as u32 == close as u32 || ch.is_whitespace())
            .unwrap_or(rest.len());
        let cand = rest[..end]
            .trim_start_matches("IPv6:")
            .trim_start_matches("ipv6:");
        // An IPv6 address has several colons; otherwise drop a ":port" suffix.
        let cand = if cand.split(':').count() > 2 {
            cand
        } else {
            cand.split(':').next().unwrap_or(cand)
        };
        if let Ok(ip) = cand.parse::<IpAddr>() {
            return Some((i, i + 1 + end, ip));
        }
    }
    None
}

/// The first word after `key` (lower case) in `s`, found in `lower`, `s` lower-cased (ASCII, so at
/// the same offsets): the caller lower-cases the line once, not once per key.
fn word_after<'a>(s: &'a str, lower: &str, key: &str) -> Option<&'a str> {
    let p = lower.find(key)?;
    let rest = &s[p + key.len()..];
    rest.split(|c: char| c.is_whitespace() || c == ';' || c == ')' || c == '(')
        .find(|w| !w.is_empty())
}

fn clean(s: &str) -> String {
    s.trim_matches(|c: char| matches!(c, '[' | ']' | '(' | ')' | '<' | '>' | ';' | ',' | '"'))
        .chars()
        .map(|c| {
            if c.is_whitespace() || c == ']' || c == '[' || c == '(' || c == ')' || c == '=' {
                '!'
            } else {
                c
            }
        })
        .collect()
}

pub fn parse_line(line: &str) -> Parsed {
    let l = line.trim();
    let lower = l.to_ascii_lowercase();
    if !lower.starts_with("from ") {
        // "(qmail 1234 invoked by uid 0)", "by host with local id ..." and friends carry no hop.
        return Parsed::Skip;
    }
    // Local submissions with no address at all.
    if lower.starts_with("from userid ")
        || lower.contains("invoked by uid")
        || lower.contains("(from ") && !lower.contains('[')
    {
        return Parsed::Skip;
    }
    if l.contains("with POP3") || l.contains("with IMAP") {
        return Parsed::Fetched;
    }
    let by_pos = lower.find(" by ").unwrap_or(l.len());
    let from_part = &l[5..by_pos];
    let from_lower = &lower[5..by_pos];
    let Some((ip_start, _ip_end, ip)) = find_ip(from_part) else {
        // SpamAssassin knows dozens of MTA formats; we know the common ones. A hop we cannot place is
        // skipped rather than called unparseable, so UNPARSEABLE_RELAY only fires on real garbage.
        if lower.len() < 12 || !lower.is_ascii() {
            return Parsed::Unparseable;
        }
        return Parsed::Skip;
    };
    let mut r = Relay {
        ip: ip.to_string(),
        private: is_private(&ip),
        ..Default::default()
    };
    let first = from_part.split_whitespace().next().unwrap_or("");
    let paren = &from_part[..ip_start];
    // Exim: "from RDNS ([IP] helo=HELO)" or "from [IP] (helo=HELO)".
    if let Some(h) = word_after(from_part, from_lower, "helo=") {
        r.helo = clean(h);
        if !first.starts_with('[') && !first.starts_with('(') {
            r.rdns = clean(first);
        }
    } else if let Some(h) = word_after(from_part, from_lower, "(helo ") {
        // qmail: "from RDNS (HELO helo) (IP)" / "from unknown (HELO helo) (IP)".
        r.helo = clean(h);
        if !first.eq_ignore_ascii_case("unknown") {
            r.rdns = clean(first);
        }
    } else {
        // Postfix / Sendmail: "from HELO (RDNS [IP])", "from HELO ([IP])", "from HELO (ident@RDNS [IP])".
        r.helo = clean(first);
        let inner = paren.rsplit('(').next().unwrap_or("").trim();
        let inner = match inner.split_once('@') {
            Some((ident, host)) => {
                r.ident = clean(ident);
                host
            }
            None => inner,
        };
        let inner = inner.trim();
        if !inner.is_empty() && !inner.eq_ignore_ascii_case("unknown") && !inner.starts_with('[') {
            r.rdns = clean(inner.split_whitespace().next().unwrap_or(""));
        }
        if r.helo.starts_with('[') || r.helo.is_empty() {
            r.helo = clean(&r.helo);
        }
    }
    if let Some(by) = word_after(&l[by_pos..], &lower[by_pos..], " by ") {
        r.by = clean(by);
    }
    if let Some(id) = word_after(&l[by_pos..], &lower[by_pos..], " id ") {
        r.id = clean(id);
    }
    if let Some(a) = word_after(l, &lower, "(authenticated") {
        r.auth = clean(a);
    } else if lower.contains(" with esmtpa") || lower.contains(" with esmtpsa") {
        r.auth = "ESMTPA".into();
    }
    if let Some(env) = word_after(l, &lower, "envelope-from ") {
        r.envfrom = clean(env);
    }
    Parsed::Relay(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postfix_form() {
        let Parsed::Relay(r) = parse_line("from europe.std.com (europe.std.com [199.172.62.20]) by mail.netnoteinc.com (Postfix) with ESMTP id 392E1114061 for <foo@foo.com>; Fri, 20 Apr 2001 21:34:46 +0000") else {
            panic!()
        };
        assert_eq!(r.as_string(false), "[ ip=199.172.62.20 rdns=europe.std.com helo=europe.std.com by=mail.netnoteinc.com ident= envfrom= intl=0 id=392E1114061 auth= msa=0 ]");
    }

    #[test]
    fn no_rdns_and_trust() {
        let rel = parse_all(
            [
                "from x (localhost [127.0.0.1]) by y id 1",
                "from helo.example (unknown [203.0.113.9]) by y id 2",
            ]
            .into_iter(),
        );
        assert_eq!(rel.trusted.len(), 1);
        assert_eq!(rel.untrusted.len(), 1);
        assert!(rel
            .untrusted_str()
            .starts_with("[ ip=203.0.113.9 rdns= helo=helo.example "));
        assert_eq!(parse_line("(qmail 1 invoked by uid 0)"), Parsed::Skip);
    }

    /// fetchmail's own hand-over is no hop, and the relays above it (our side) are forgotten.
    #[test]
    fn fetchmail_restarts_the_trusted_list() {
        let rel = parse_all(
            [
                "from localhost (localhost [127.0.0.1]) by phobos (Postfix) with ESMTP id 1",
                "from mail.webnote.net [193.120.211.219] by localhost with POP3 (fetchmail-5.9.0) for zzzz@localhost (single-drop)",
                "from dd_it7 ([210.97.77.167]) by webnote.net (8.9.3/8.9.3) with ESMTP id NAA04623",
            ]
            .into_iter(),
        );
        assert!(rel.trusted.is_empty());
        assert!(rel
            .untrusted_str()
            .starts_with("[ ip=210.97.77.167 rdns= helo=dd_it7 by=webnote.net "));
    }
}
