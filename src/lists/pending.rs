//! Pending requests that wait for a confirmation: subscriptions, unsubscriptions and held posts.
//! Tokens are unguessable (token.rs), expire, and are single-use (taken in the same transaction that
//! acts on them).

use super::model::{now, List};
use super::token;
use crate::message::error::{Error, Result};
use rusqlite::{params, Connection, OptionalExtension};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Subscribe,
    Unsubscribe,
    Held,
}

impl Kind {
    fn as_str(&self) -> &'static str {
        match self {
            Kind::Subscribe => "subscribe",
            Kind::Unsubscribe => "unsubscribe",
            Kind::Held => "held",
        }
    }
    fn parse(s: &str) -> Option<Kind> {
        match s {
            "subscribe" => Some(Kind::Subscribe),
            "unsubscribe" => Some(Kind::Unsubscribe),
            "held" => Some(Kind::Held),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Pending {
    pub token: String,
    pub list_id: i64,
    pub kind: Kind,
    pub address: String,
    pub digest: bool,
    pub held_id: Option<i64>,
}

pub fn create(
    conn: &Connection,
    list: &List,
    kind: Kind,
    address: &str,
    digest: bool,
    held_id: Option<i64>,
    ttl_hours: u64,
) -> Result<String> {
    let t = token::confirm_token();
    let created = now();
    conn.execute(
        "INSERT INTO pending (token, list_id, kind, address, digest, held_id, created, expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![t, list.id, kind.as_str(), address, digest, held_id, created, created + (ttl_hours as i64) * 3600],
    )?;
    Ok(t)
}

/// Takes a token: returns the request and deletes it. Expired tokens are deleted and refused.
pub fn take(conn: &Connection, list: &List, tok: &str) -> Result<Pending> {
    let tok = tok.to_ascii_lowercase();
    if !token::looks_like_token(&tok) {
        return Err(Error::usage("that is not a confirmation token"));
    }
    conn.execute("DELETE FROM pending WHERE expires < ?1", [now()])?;
    let p = conn
        .query_row(
            "SELECT token, list_id, kind, address, digest, held_id FROM pending WHERE token = ?1 AND list_id = ?2",
            params![tok, list.id],
            |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?, r.get::<_, bool>(4)?, r.get::<_, Option<i64>>(5)?))
            },
        )
        .optional()?;
    let Some((token, list_id, kind, address, digest, held_id)) = p else {
        return Err(Error::usage("unknown or expired confirmation token"));
    };
    conn.execute("DELETE FROM pending WHERE token = ?1", [&token])?;
    let kind =
        Kind::parse(&kind).ok_or_else(|| Error::software(format!("bad pending kind {kind}")))?;
    Ok(Pending {
        token,
        list_id,
        kind,
        address,
        digest,
        held_id,
    })
}

/// Mail-bomb guard: at most `per_day` confirmations to one address in 24 hours, across all lists.
pub fn may_send_confirmation(conn: &Connection, address: &str, per_day: u32) -> Result<bool> {
    let key = address.to_ascii_lowercase();
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM confirm_sent WHERE address = ?1 AND created > ?2",
        params![key, now() - 86_400],
        |r| r.get(0),
    )?;
    if n >= per_day as i64 {
        return Ok(false);
    }
    conn.execute(
        "DELETE FROM confirm_sent WHERE created <= ?1",
        [now() - 86_400],
    )?;
    conn.execute(
        "INSERT INTO confirm_sent (address, created) VALUES (?1, ?2)",
        params![key, now()],
    )?;
    Ok(true)
}

/// Finds a token in text: a `confirm TOKEN` Subject (possibly after Re:), or `+TOKEN@` in an address.
pub fn find_token(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_hexdigit())
        .find(|w| token::looks_like_token(w))
        .map(|w| w.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_tokens_in_subjects_and_addresses() {
        let t = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            super::find_token(&format!("Re: confirm {t}")).as_deref(),
            Some(t)
        );
        assert_eq!(
            super::find_token(&format!("dev-confirm+{t}@x.org")).as_deref(),
            Some(t)
        );
        assert_eq!(super::find_token("confirm 1234"), None);
    }
}
