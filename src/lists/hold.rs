//! Moderation: held posts keep their reason and the exact bytes that arrived; moderators act by
//! replying to the notice or with the CLI, and an approved post goes out exactly once (the held row is
//! deleted in the same step that spools the post).

use super::model::{now, List};
use super::notice::{self, Notice};
use super::pending::{self, Kind};
use super::post::{self, Facts, Outcome};
use crate::config::Home;
use crate::message::error::{Error, Result};
use crate::message::{log, spool};
use rusqlite::{params, Connection, OptionalExtension};

pub fn held_dir(home: &Home) -> std::path::PathBuf {
    home.spool("lists/held")
}

#[derive(Debug)]
pub struct Held {
    pub id: i64,
    pub file: String,
    pub sender: String,
    pub subject: String,
    pub reason: String,
    pub created: i64,
}

pub fn hold(
    home: &Home,
    conn: &mut Connection,
    list: &List,
    raw: &[u8],
    f: &Facts,
    reason: &str,
) -> Result<Outcome> {
    let name = format!("{}.eml", spool::unique_id());
    spool::write_durable(&held_dir(home), &name, raw)
        .map_err(|e| Error::from(e).context("held spool"))?;
    conn.execute(
        "INSERT INTO held (list_id, file, sender, subject, reason, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![list.id, name, f.from.to_string(), f.subject, reason, now()],
    )?;
    let id = conn.last_insert_rowid();
    let token = pending::create(
        conn,
        list,
        Kind::Held,
        &f.from.to_string(),
        false,
        Some(id),
        home.config.lists.confirm_hours,
    )?;
    let vars = vec![
        ("sender", f.from.to_string()),
        ("subject", f.subject.clone()),
        ("reason", reason.to_string()),
        ("id", id.to_string()),
        ("token", token.clone()),
    ];
    // The notice's Subject carries the token, so a plain reply to -request or -confirm acts on it.
    notice::send(
        home,
        conn,
        list,
        Notice {
            template: "held-notice",
            to: list.staff(),
            vars: vars.clone(),
            reply_to: Some(format!("{}-confirm+{token}@{}", list.name, list.domain)),
            attach: Some(attachment_for_moderators(raw)),
            in_reply_to: None,
        },
    )
    .map(|_| ())
    .or_else(|e| {
        if e.exit.is_temporary() {
            Ok(())
        } else {
            Err(e)
        }
    })?;
    // Tell the poster (Mailman's respond_to_post_requests), never a robot.
    notice::send(
        home,
        conn,
        list,
        Notice {
            template: "held-poster",
            to: vec![f.from.to_string()],
            vars,
            reply_to: None,
            attach: None,
            in_reply_to: None,
        },
    )?;
    Ok(Outcome::Held {
        id,
        reason: reason.to_string(),
    })
}

/// Moderators get the held post attached, but not a 50 MB one: past this size only its header block
/// (like a DSN's text/rfc822-headers), which is what they need to decide.
const ATTACH_LIMIT: usize = 256 * 1024;

fn attachment_for_moderators(raw: &[u8]) -> Vec<u8> {
    if raw.len() <= ATTACH_LIMIT {
        return raw.to_vec();
    }
    let (h, _) = super::headers::split(raw);
    let mut v = h.to_vec();
    v.extend_from_slice(
        format!(
            "\n[body of {} bytes not attached; see `correo list held`]\n",
            raw.len()
        )
        .as_bytes(),
    );
    v
}

pub fn notify_rejected(
    home: &Home,
    conn: &mut Connection,
    list: &List,
    f: &Facts,
    reason: &str,
) -> Result<()> {
    notice::send(
        home,
        conn,
        list,
        Notice {
            template: "rejected",
            to: vec![f.from.to_string()],
            vars: vec![
                ("subject", f.subject.clone()),
                ("reason", reason.to_string()),
            ],
            reply_to: Some(list.service("owner")),
            attach: None,
            in_reply_to: None,
        },
    )
}

pub fn all(conn: &Connection, list: &List) -> Result<Vec<Held>> {
    let mut st = conn.prepare("SELECT id, file, sender, subject, reason, created FROM held WHERE list_id = ?1 ORDER BY id")?;
    let v = st
        .query_map([list.id], |r| {
            Ok(Held {
                id: r.get(0)?,
                file: r.get(1)?,
                sender: r.get(2)?,
                subject: r.get(3)?,
                reason: r.get(4)?,
                created: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(v)
}

fn get(conn: &Connection, list: &List, id: i64) -> Result<Held> {
    conn.query_row(
        "SELECT id, file, sender, subject, reason, created FROM held WHERE list_id = ?1 AND id = ?2",
        params![list.id, id],
        |r| Ok(Held { id: r.get(0)?, file: r.get(1)?, sender: r.get(2)?, subject: r.get(3)?, reason: r.get(4)?, created: r.get(5)? }),
    )
    .optional()?
    .ok_or_else(|| Error::usage(format!("no held message {id} on {}", list.address())))
}

/// The held post's bytes, for callers that learn from moderation (Bayes) before acting on it.
pub fn raw(home: &Home, conn: &Connection, list: &List, id: i64) -> Result<Vec<u8>> {
    read(home, &get(conn, list, id)?)
}

fn read(home: &Home, h: &Held) -> Result<Vec<u8>> {
    let path = held_dir(home).join(&h.file);
    std::fs::read(&path).map_err(|e| Error::from(e).context(path.display()))
}

/// Removes the held row; fails when another moderator got there first, so each post leaves once.
fn unhold(conn: &Connection, id: i64) -> Result<()> {
    if conn.execute("DELETE FROM held WHERE id = ?1", [id])? != 1 {
        return Err(Error::usage(format!(
            "held message {id} was already handled"
        )));
    }
    conn.execute("DELETE FROM pending WHERE held_id = ?1", [id])?;
    Ok(())
}

fn remove_file(home: &Home, h: &Held) {
    let _ = std::fs::remove_file(held_dir(home).join(&h.file));
}

pub fn approve(home: &Home, conn: &mut Connection, list: &List, id: i64) -> Result<Outcome> {
    let h = get(conn, list, id)?;
    let raw = read(home, &h)?;
    let outcome = post::accept_with(home, conn, list, &raw, |tx| unhold(tx, id))?;
    remove_file(home, &h);
    let n = match &outcome {
        Outcome::Sent { recipients, .. } => *recipients,
        _ => 0,
    };
    log::event(
        "list",
        &list.address(),
        &[
            ("held", &id.to_string()),
            ("from", &h.sender),
            ("action", "approved"),
            ("recipients", &n.to_string()),
        ],
    );
    Ok(outcome)
}

pub fn discard(home: &Home, conn: &mut Connection, list: &List, id: i64) -> Result<Held> {
    let h = get(conn, list, id)?;
    unhold(conn, id)?;
    remove_file(home, &h);
    log::event(
        "list",
        &list.address(),
        &[
            ("held", &id.to_string()),
            ("from", &h.sender),
            ("action", "discarded"),
        ],
    );
    Ok(h)
}

pub fn reject(
    home: &Home,
    conn: &mut Connection,
    list: &List,
    id: i64,
    reason: &str,
) -> Result<Held> {
    let h = get(conn, list, id)?;
    let raw = read(home, &h)?;
    let f = post::facts(&raw, None)?;
    unhold(conn, id)?;
    notify_rejected(home, conn, list, &f, reason)?;
    remove_file(home, &h);
    log::event(
        "list",
        &list.address(),
        &[
            ("held", &id.to_string()),
            ("from", &h.sender),
            ("action", "rejected"),
            ("reason", reason),
        ],
    );
    Ok(h)
}
