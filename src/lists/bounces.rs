//! Bounces: a DSN arriving at `NAME-bounces+LOCAL=DOMAIN@DOMAIN` names the member in its envelope
//! recipient (VERP), so no DSN parsing guesswork is needed; without VERP we fall back to the RFC 3464
//! `Final-Recipient` fields. Each bounce is recorded against the member (scoring comes later).

use super::model::{now, List};
use crate::message::address::Address;
use crate::message::error::Result;
use rusqlite::{params, Connection};

pub fn record(conn: &Connection, list: &List, addr: &str, info: &str) -> Result<()> {
    let key = Address::parse(addr)
        .map(|a| a.key())
        .unwrap_or_else(|_| addr.to_ascii_lowercase());
    conn.execute(
        "INSERT INTO bounces (list_id, address, created, info) VALUES (?1, ?2, ?3, ?4)",
        params![list.id, key, now(), info],
    )?;
    conn.execute(
        "UPDATE members SET bounces = bounces + 1, last_bounce = ?3 WHERE list_id = ?1 AND key = ?2",
        params![list.id, key, now()],
    )?;
    Ok(())
}

/// Decodes `NAME-bounces+LOCAL=DOMAIN@DOMAIN` for this list; None when the address is not ours or
/// carries no member.
pub fn decode_verp(list: &List, rcpt: &str) -> Option<Address> {
    let rcpt = rcpt.trim().trim_start_matches('<').trim_end_matches('>');
    let (local, domain) = rcpt.rsplit_once('@')?;
    if !domain.eq_ignore_ascii_case(&list.domain) {
        return None;
    }
    let prefix = format!("{}-bounces+", list.name);
    if local.len() <= prefix.len() || !local[..prefix.len()].eq_ignore_ascii_case(&prefix) {
        return None;
    }
    let member = &local[prefix.len()..];
    let (ml, md) = member.rsplit_once('=')?;
    Address::parse(&format!("{ml}@{md}")).ok()
}

/// Recipients named by `Final-Recipient: rfc822; ADDR` in a DSN (RFC 3464 §2.3.2) whose Action is failed.
pub fn dsn_recipients(raw: &[u8]) -> Vec<Address> {
    let text = String::from_utf8_lossy(raw);
    let mut out = Vec::new();
    let mut current: Option<Address> = None;
    let mut failed = false;
    for line in text.lines().chain(std::iter::once("")) {
        let l = line.trim();
        if l.is_empty() {
            if let (Some(a), true) = (current.take(), failed) {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
            failed = false;
            continue;
        }
        let lower = l.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("final-recipient:") {
            let addr = v.split_once(';').map(|x| x.1).unwrap_or(v).trim();
            current = Address::parse(addr).ok();
        } else if let Some(v) = lower.strip_prefix("action:") {
            failed = v.trim() == "failed";
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lists::model::{List, Settings};

    fn list() -> List {
        List {
            id: 1,
            name: "dev".into(),
            domain: "lists.x.org".into(),
            settings: Settings::default(),
        }
    }

    #[test]
    fn verp_round_trip() {
        let a = decode_verp(&list(), "<dev-bounces+ann+tag=example.com@Lists.X.org>").unwrap();
        assert_eq!(a.to_string(), "ann+tag@example.com");
        assert!(decode_verp(&list(), "dev-bounces@lists.x.org").is_none());
        assert!(decode_verp(&list(), "other-bounces+a=b.c@lists.x.org").is_none());
        assert!(decode_verp(&list(), "dev-bounces+a=b.c@elsewhere.org").is_none());
    }

    #[test]
    fn dsn_final_recipients_that_failed() {
        let dsn = b"Reporting-MTA: dns; mx.x.org\n\nFinal-Recipient: rfc822; gone@example.com\nAction: failed\nStatus: 5.1.1\n\nFinal-Recipient: rfc822; slow@example.com\nAction: delayed\n";
        let v = dsn_recipients(dsn);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].to_string(), "gone@example.com");
    }
}
