//! The outgoing spool for everything a list sends (posts, confirmations, notices). A message is
//! written durably and its recipients recorded in one transaction before any SMTP is attempted; each
//! recipient's row is removed only once the outbound host accepted it (or refused it for good), so a
//! crash or a dead relay never loses mail and `correo list flush` resends only what is still pending.
//!
//! Fan-out runs several pipelined SMTP connections in threads; results come back over a channel to
//! the one thread that writes the database.

use super::model::{now, List};
use crate::config::Home;
use crate::message::error::{Error, Result};
use crate::message::{log, spool};
use crate::smtp::client::{Client, Outcome, Transaction};
use rusqlite::{params, Connection};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

pub fn out_dir(home: &Home) -> PathBuf {
    home.spool("lists/out")
}

/// What one message carries besides its bytes.
pub struct Envelope<'a> {
    pub list: Option<&'a List>,
    /// "post" gets per-recipient VERP senders and unsubscribe headers; anything else is a notice.
    pub kind: &'a str,
    /// Envelope sender (the list's -bounces address for list mail); per-recipient VERP is derived from it.
    pub sender: String,
    pub verp: bool,
    pub rcpts: Vec<String>,
}

/// Stores the message and its recipients durably; returns the outgoing id.
pub fn enqueue(home: &Home, conn: &mut Connection, env: &Envelope<'_>, data: &[u8]) -> Result<i64> {
    enqueue_with(home, conn, env, data, |_| Ok(()))
}

/// Like `enqueue`, running `also` in the same database transaction, so a state change that goes with
/// sending (a held post leaving the moderation queue) happens exactly when the message is spooled.
pub fn enqueue_with(
    home: &Home,
    conn: &mut Connection,
    env: &Envelope<'_>,
    data: &[u8],
    also: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<()>,
) -> Result<i64> {
    let name = format!("{}.eml", spool::unique_id());
    let path = spool::write_durable(&out_dir(home), &name, data)
        .map_err(|e| Error::from(e).context("outgoing spool"))?;
    let r = (|| -> Result<i64> {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO outgoing (list_id, file, kind, verp, sender, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![env.list.map(|l| l.id), name, env.kind, env.verp, env.sender, now()],
        )?;
        let id = tx.last_insert_rowid();
        {
            let mut st =
                tx.prepare("INSERT OR IGNORE INTO outgoing_rcpts (out_id, rcpt) VALUES (?1, ?2)")?;
            for r in &env.rcpts {
                st.execute(params![id, r])?;
            }
        }
        also(&tx)?;
        tx.commit()?;
        Ok(id)
    })();
    if r.is_err() {
        // Not recorded, so not accepted: remove the file so a retry by the MTA does not send twice.
        let _ = std::fs::remove_file(&path);
    }
    r
}

/// `NAME-bounces+LOCAL=DOMAIN@DOMAIN` (VERP): the bounce names the member without parsing DSNs.
pub fn verp_sender(bounces: &str, rcpt: &str) -> String {
    match (bounces.rsplit_once('@'), rcpt.rsplit_once('@')) {
        (Some((bl, bd)), Some((rl, rd))) => format!("{bl}+{rl}={rd}@{bd}"),
        _ => bounces.to_string(),
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    pub sent: usize,
    pub deferred: usize,
    pub failed: usize,
}

struct Loaded {
    id: i64,
    list: Option<List>,
    kind: String,
    verp: bool,
    sender: String,
    file: PathBuf,
    created: i64,
}

/// An exclusive, non-blocking lock on the spooled file: two `flush` runs (or a post and a cron flush)
/// never send the same message at once. Released when the file handle drops.
fn try_lock(path: &Path) -> Result<Option<std::fs::File>> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    // SAFETY: flock on a valid open descriptor has no memory effects.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    Ok(if r == 0 { Some(f) } else { None })
}

fn load(home: &Home, conn: &Connection, id: i64) -> Result<Option<Loaded>> {
    let row = conn.query_row(
        "SELECT list_id, kind, verp, sender, file, created FROM outgoing WHERE id = ?1",
        [id],
        |r| {
            Ok((
                r.get::<_, Option<i64>>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, bool>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
            ))
        },
    );
    let (list_id, kind, verp, sender, file, created) = match row {
        Ok(r) => r,
        Err(rusqlite::Error::QueryReturnedNoRows) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let list = match list_id {
        Some(lid) => super::model::by_id(conn, lid)?,
        None => None,
    };
    Ok(Some(Loaded {
        id,
        list,
        kind,
        verp,
        sender,
        file: out_dir(home).join(file),
        created,
    }))
}

/// Per-recipient headers for a post: the RFC 8058 one-click unsubscribe needs a URL naming the member.
fn personal_headers(home: &Home, list: &List, rcpt: &str) -> Vec<u8> {
    let mut h = format!(
        "List-Unsubscribe: <mailto:{}?subject=unsubscribe>",
        list.service("request")
    );
    if let Some(url) = &home.config.web.url {
        let key = super::token::unsubscribe_key(&list.settings.secret, &list.address(), rcpt);
        let enc: String = rcpt
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"@.-_".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        h.push_str(&format!(",\n <{}/lists/{}/unsubscribe?address={enc}&key={key}>\nList-Unsubscribe-Post: List-Unsubscribe=One-Click", url.trim_end_matches('/'), list.address()));
    }
    h.push('\n');
    h.into_bytes()
}

/// Tries to send one outgoing message to its pending recipients. Returns what happened; the
/// message and its rows are removed once nobody is pending.
pub fn deliver(home: &Home, conn: &mut Connection, id: i64) -> Result<Summary> {
    let Some(m) = load(home, conn, id)? else {
        return Ok(Summary::default());
    };
    let Some(_lock) = try_lock(&m.file)? else {
        return Ok(Summary::default());
    };
    let data = std::fs::read(&m.file).map_err(|e| Error::from(e).context(m.file.display()))?;
    let rcpts: Vec<String> = {
        let mut st = conn.prepare("SELECT rcpt FROM outgoing_rcpts WHERE out_id = ?1 AND status = 'pending' ORDER BY rcpt")?;
        let v = st
            .query_map([id], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        v
    };
    let started = Instant::now();
    let (tx, rx) = mpsc::channel::<(Vec<String>, Outcome)>();
    let cfg = &home.config.outbound;
    let helo = cfg.helo.clone().unwrap_or_else(hostname);
    let personal = m.kind == "post" && m.verp;
    let threads = cfg
        .connections
        .clamp(1, 64)
        .min(rcpts.len().div_ceil(50).max(1));
    let per = rcpts.len().div_ceil(threads.max(1)).max(1);
    let mut summary = Summary::default();
    let mut last_error: Option<String> = None;
    std::thread::scope(|s| {
        for share in rcpts.chunks(per) {
            let tx = tx.clone();
            let (data, m, helo, home) = (&data, &m, &helo, home);
            s.spawn(move || send_share(home, m, data, share, personal, helo, tx));
        }
        drop(tx);
        // The database is written from this thread only, in batches.
        let mut batch: Vec<(Vec<String>, Outcome)> = Vec::with_capacity(512);
        let flush_batch = |conn: &mut Connection,
                           batch: &mut Vec<(Vec<String>, Outcome)>,
                           summary: &mut Summary,
                           last_error: &mut Option<String>|
         -> Result<()> {
            record(conn, &m, batch, summary, last_error)?;
            batch.clear();
            Ok(())
        };
        let mut res = Ok(());
        for item in rx {
            batch.push(item);
            if batch.len() >= 500 {
                if let Err(e) = flush_batch(conn, &mut batch, &mut summary, &mut last_error) {
                    res = Err(e);
                }
            }
        }
        if let Err(e) = flush_batch(conn, &mut batch, &mut summary, &mut last_error) {
            res = Err(e);
        }
        res
    })?;
    let pending: i64 = conn.query_row(
        "SELECT count(*) FROM outgoing_rcpts WHERE out_id = ?1 AND status = 'pending'",
        [id],
        |r| r.get(0),
    )?;
    if pending == 0 {
        conn.execute("DELETE FROM outgoing WHERE id = ?1", [id])?;
        let _ = std::fs::remove_file(&m.file);
    } else {
        conn.execute(
            "UPDATE outgoing SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
            params![id, last_error],
        )?;
    }
    let status = if pending == 0 {
        "sent".to_string()
    } else {
        format!("deferred ({})", last_error.as_deref().unwrap_or(""))
    };
    let list_name = m
        .list
        .as_ref()
        .map(|l| l.address())
        .unwrap_or_else(|| "-".into());
    log::event(
        "list",
        &list_name,
        &[
            ("out", &m.id.to_string()),
            ("kind", &m.kind),
            ("from", &m.sender),
            ("relay", &home.config.outbound_smtp()),
            ("sent", &summary.sent.to_string()),
            ("deferred", &summary.deferred.to_string()),
            ("failed", &summary.failed.to_string()),
            (
                "delay",
                &format!(
                    "{:.2}",
                    ((now() - m.created).max(0) as f64).max(started.elapsed().as_secs_f64())
                ),
            ),
            ("status", &status),
        ],
    );
    Ok(summary)
}

/// One connection's worth of a fan-out: transactions in chunks so memory stays flat however many
/// members the list has.
fn send_share(
    home: &Home,
    m: &Loaded,
    data: &[u8],
    share: &[String],
    personal: bool,
    helo: &str,
    tx: mpsc::Sender<(Vec<String>, Outcome)>,
) {
    let cfg = &home.config.outbound;
    let mut client = match Client::connect(&home.config.outbound_smtp(), helo) {
        Ok(c) => c,
        Err(e) => {
            let o = if e.temporary {
                Outcome::Temporary(e.msg)
            } else {
                Outcome::Permanent(e.msg)
            };
            let _ = tx.send((share.to_vec(), o));
            return;
        }
    };
    if m.verp {
        for chunk in share.chunks(200) {
            let bodies: Vec<Vec<u8>> = chunk
                .iter()
                .map(|r| match (&m.list, personal) {
                    (Some(list), true) => {
                        let mut v = personal_headers(home, list, r);
                        v.extend_from_slice(data);
                        v
                    }
                    _ => Vec::new(),
                })
                .collect();
            let txs: Vec<Transaction<'_>> = chunk
                .iter()
                .zip(&bodies)
                .map(|(r, b)| Transaction {
                    from: verp_sender(&m.sender, r),
                    rcpts: vec![r.clone()],
                    data: if personal && m.list.is_some() {
                        b
                    } else {
                        data
                    },
                    // List addresses are ASCII (message::address); 8-bit bodies are detected by the client.
                    smtputf8: false,
                    body8bit: false,
                })
                .collect();
            let results = client.send_all(&txs);
            let mut connection_lost = false;
            for (t, outcomes) in txs.iter().zip(results) {
                for (r, o) in t.rcpts.iter().zip(outcomes) {
                    connection_lost |= matches!(&o, Outcome::Temporary(s) if s.contains("connection") || s.starts_with("write") || s.starts_with("read"));
                    let _ = tx.send((vec![r.clone()], o));
                }
            }
            if connection_lost {
                return;
            }
        }
    } else {
        for chunk in share.chunks(cfg.max_rcpts.max(1)) {
            let t = Transaction {
                from: m.sender.clone(),
                rcpts: chunk.to_vec(),
                data,
                smtputf8: false,
                body8bit: false,
            };
            let results = client.send_all(std::slice::from_ref(&t));
            for outcomes in results {
                for (r, o) in t.rcpts.iter().zip(outcomes) {
                    let _ = tx.send((vec![r.clone()], o));
                }
            }
        }
    }
    client.quit();
}

fn record(
    conn: &mut Connection,
    m: &Loaded,
    batch: &[(Vec<String>, Outcome)],
    summary: &mut Summary,
    last_error: &mut Option<String>,
) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut done =
            tx.prepare_cached("DELETE FROM outgoing_rcpts WHERE out_id = ?1 AND rcpt = ?2")?;
        for (rcpts, outcome) in batch {
            for r in rcpts {
                match outcome {
                    Outcome::Accepted(_) => {
                        summary.sent += 1;
                        done.execute(params![m.id, r])?;
                    }
                    Outcome::Temporary(e) => {
                        summary.deferred += 1;
                        *last_error = Some(e.clone());
                    }
                    Outcome::Permanent(e) => {
                        summary.failed += 1;
                        done.execute(params![m.id, r])?;
                        if let Some(list) = &m.list {
                            super::bounces::record(
                                &tx,
                                list,
                                r,
                                &format!("refused by outbound host: {e}"),
                            )?;
                        }
                        log::event(
                            "list",
                            &m.list.as_ref().map(|l| l.address()).unwrap_or_default(),
                            &[
                                ("out", &m.id.to_string()),
                                ("to", r),
                                ("status", "failed"),
                                ("reply", e),
                            ],
                        );
                    }
                }
            }
        }
    }
    tx.commit()?;
    Ok(())
}

/// Retries everything in the outgoing spool (cron-friendly: quiet when there is nothing to do).
pub fn flush(home: &Home, conn: &mut Connection) -> Result<Summary> {
    let ids: Vec<i64> = {
        let mut st = conn.prepare("SELECT id FROM outgoing ORDER BY id")?;
        let v = st
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<i64>>>()?;
        v
    };
    let mut total = Summary::default();
    for id in ids {
        let s = deliver(home, conn, id)?;
        total.sent += s.sent;
        total.deferred += s.deferred;
        total.failed += s.failed;
    }
    Ok(total)
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn verp_encodes_the_member() {
        assert_eq!(
            super::verp_sender("dev-bounces@lists.x.org", "Ann+tag@example.com"),
            "dev-bounces+Ann+tag=example.com@lists.x.org"
        );
    }
}
