//! Membership rows: who is on a list and how they get mail. Addresses are validated before they are
//! stored and compared case-insensitively (the `key` column).

use super::model::{now, List};
use crate::message::address::Address;
use crate::message::error::Result;
use rusqlite::{params, Connection, OptionalExtension};

#[derive(Debug, Clone)]
pub struct Member {
    pub address: String,
    pub delivery: bool,
    pub digest: bool,
    pub bounces: i64,
}

/// Adds a member; returns false when already there (nothing changes then).
pub fn add(conn: &Connection, list: &List, addr: &Address, digest: bool) -> Result<bool> {
    let n = conn.execute(
        "INSERT OR IGNORE INTO members (list_id, key, address, digest, created) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![list.id, addr.key(), addr.to_string(), digest, now()],
    )?;
    Ok(n == 1)
}

/// Removes a member; returns false when the address was not one.
pub fn remove(conn: &Connection, list: &List, addr: &Address) -> Result<bool> {
    Ok(conn.execute(
        "DELETE FROM members WHERE list_id = ?1 AND key = ?2",
        params![list.id, addr.key()],
    )? == 1)
}

pub fn get(conn: &Connection, list: &List, addr: &Address) -> Result<Option<Member>> {
    Ok(conn
        .query_row(
            "SELECT address, delivery, digest, bounces FROM members WHERE list_id = ?1 AND key = ?2",
            params![list.id, addr.key()],
            |r| Ok(Member { address: r.get(0)?, delivery: r.get(1)?, digest: r.get(2)?, bounces: r.get(3)? }),
        )
        .optional()?)
}

pub fn is_member(conn: &Connection, list: &List, addr: &Address) -> Result<bool> {
    Ok(get(conn, list, addr)?.is_some())
}

pub fn all(conn: &Connection, list: &List) -> Result<Vec<Member>> {
    let mut st = conn.prepare(
        "SELECT address, delivery, digest, bounces FROM members WHERE list_id = ?1 ORDER BY key",
    )?;
    let v = st
        .query_map([list.id], |r| {
            Ok(Member {
                address: r.get(0)?,
                delivery: r.get(1)?,
                digest: r.get(2)?,
                bounces: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(v)
}

/// The addresses a post goes to: members whose delivery is on. Digest members get regular posts too
/// until digests exist, so nobody silently stops receiving mail.
pub fn recipients(conn: &Connection, list: &List) -> Result<Vec<String>> {
    let mut st = conn
        .prepare("SELECT address FROM members WHERE list_id = ?1 AND delivery = 1 ORDER BY key")?;
    let v = st
        .query_map([list.id], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(v)
}

pub fn set_delivery(conn: &Connection, list: &List, addr: &Address, on: bool) -> Result<bool> {
    Ok(conn.execute(
        "UPDATE members SET delivery = ?3 WHERE list_id = ?1 AND key = ?2",
        params![list.id, addr.key(), on],
    )? == 1)
}

pub fn count(conn: &Connection, list: &List) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT count(*) FROM members WHERE list_id = ?1",
        [list.id],
        |r| r.get(0),
    )?)
}
