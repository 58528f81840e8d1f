//! The queue's tables and the one writer thread that changes them.

use super::journal::Journal;
use super::{Kind, Op, Rcpt, RowResult};
use crate::message::error::Result;
use rusqlite::{params, Connection};
use std::sync::mpsc;

const MIGRATIONS: &[&str] = &[
    "CREATE TABLE queue_msg (
        id TEXT PRIMARY KEY,
        sender TEXT NOT NULL,
        created INTEGER NOT NULL,
        size INTEGER NOT NULL,
        client TEXT NOT NULL DEFAULT ''
     );
     CREATE TABLE queue_rcpt (
        id INTEGER PRIMARY KEY,
        msg TEXT NOT NULL REFERENCES queue_msg(id),
        orig TEXT NOT NULL,
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        sender TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at INTEGER NOT NULL,
        last_error TEXT
     );
     CREATE TABLE queue_body (
        id TEXT PRIMARY KEY REFERENCES queue_msg(id),
        data BLOB NOT NULL
     );
     CREATE INDEX queue_rcpt_due ON queue_rcpt(next_at);
     CREATE INDEX queue_rcpt_msg ON queue_rcpt(msg);",
    // Bit 1: MAIL FROM carried SMTPUTF8; bit 2: BODY=8BITMIME (what the next hop must be told).
    "ALTER TABLE queue_msg ADD COLUMN flags INTEGER NOT NULL DEFAULT 0;",
];

pub fn migrate(conn: &mut Connection) -> Result<()> {
    crate::store::migrate(conn, "queue", MIGRATIONS)
}

#[derive(Debug, Clone)]
pub struct MsgRow {
    pub sender: String,
    pub created: i64,
    pub size: i64,
    pub client: String,
    /// `FLAG_*` bits.
    pub flags: i64,
}

pub const FLAG_SMTPUTF8: i64 = 1;
pub const FLAG_8BITMIME: i64 = 2;

/// The message as queued, or None when it is gone (`queue rm`).
pub fn body(conn: &Connection, id: &str) -> Result<Option<Vec<u8>>> {
    let mut stmt = conn.prepare_cached("SELECT data FROM queue_body WHERE id = ?1")?;
    let mut rows = stmt.query([id])?;
    Ok(match rows.next()? {
        Some(r) => Some(r.get(0)?),
        None => None,
    })
}

/// Deletes a message, its rows and its body (`correo queue rm`); false if there was none.
pub fn remove(conn: &Connection, id: &str) -> Result<bool> {
    let tx = conn.unchecked_transaction()?;
    tx.execute("DELETE FROM queue_rcpt WHERE msg = ?1", [id])?;
    tx.execute("DELETE FROM queue_body WHERE id = ?1", [id])?;
    let n = tx.execute("DELETE FROM queue_msg WHERE id = ?1", [id])?;
    tx.commit()?;
    Ok(n > 0)
}

/// The writer loop: takes one operation, then everything else already waiting, and commits them together.
/// Between batches it empties the delivered journal once that has grown (see journal.rs).
pub(super) fn writer(mut conn: Connection, rx: mpsc::Receiver<Op>, journal: &Journal) {
    // A failed commit of results leaves rows whose journal lines are still needed after a crash.
    let mut failed = false;
    while let Ok(first) = rx.recv() {
        failed |= !run_batch(&mut conn, gather(first, &rx));
        if journal.wants_trim() {
            journal.trim(|| {
                // Appends are held off now: every line in the file has its result in the channel or
                // already committed. Commit what is in the channel, then the lines are not needed.
                while let Ok(op) = rx.try_recv() {
                    failed |= !run_batch(&mut conn, gather(op, &rx));
                }
                !std::mem::take(&mut failed)
            });
        }
    }
}

fn gather(first: Op, rx: &mpsc::Receiver<Op>) -> Vec<Op> {
    let mut batch = vec![first];
    while batch.len() < 512 {
        match rx.try_recv() {
            Ok(op) => batch.push(op),
            Err(_) => break,
        }
    }
    batch
}

/// Applies and answers one batch; false if any op in it failed.
fn run_batch(conn: &mut Connection, batch: Vec<Op>) -> bool {
    match apply(conn, &batch) {
        Ok(finished) => {
            for (op, fin) in batch.into_iter().zip(finished) {
                reply_ok(op, fin);
            }
            true
        }
        Err(e) => {
            // One bad op must not fail its neighbours forever: retry them one by one.
            if batch.len() == 1 {
                for op in batch {
                    reply_err(op, &e);
                }
                return false;
            }
            let mut ok = true;
            for op in batch {
                match apply(conn, std::slice::from_ref(&op)) {
                    Ok(mut fin) => {
                        let fin = fin.pop().unwrap_or_default();
                        reply_ok(op, fin);
                    }
                    Err(e) => {
                        ok = false;
                        reply_err(op, &e)
                    }
                }
            }
            ok
        }
    }
}

/// Deletes the rows a crashed run journaled as accepted (each named by queue id and row id, as row ids
/// can be reused), and the messages left without rows; returns how many rows were still there (the
/// deliveries a restart would have repeated) and the finished messages' ids. One transaction.
pub fn replay(conn: &mut Connection, rows: &[(String, i64)]) -> Result<(usize, Vec<String>)> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut finished = Vec::new();
    let mut deleted = 0;
    {
        let mut del = tx.prepare_cached("DELETE FROM queue_rcpt WHERE id = ?1 AND msg = ?2")?;
        let mut left = tx.prepare_cached("SELECT 1 FROM queue_rcpt WHERE msg = ?1 LIMIT 1")?;
        let mut touched = std::collections::BTreeSet::new();
        for (msg, row) in rows {
            if del.execute(params![row, msg])? > 0 {
                deleted += 1;
                touched.insert(msg.as_str());
            }
        }
        for m in touched {
            if !left.exists([m])? {
                tx.execute("DELETE FROM queue_body WHERE id = ?1", [m])?;
                tx.execute("DELETE FROM queue_msg WHERE id = ?1", [m])?;
                finished.push(m.to_string());
            }
        }
    }
    tx.commit()?;
    Ok((deleted, finished))
}

fn reply_ok(op: Op, fin: Vec<String>) {
    match op {
        Op::Insert { done, .. } => {
            let _ = done.send(Ok(()));
        }
        Op::Results { done, .. } => {
            let _ = done.send(Ok(fin));
        }
        Op::Remove { done, .. } => {
            let _ = done.send(Ok(!fin.is_empty()));
        }
    }
}

fn reply_err(op: Op, e: &crate::message::error::Error) {
    let err = || crate::message::error::Error::new(e.exit, e.msg.clone());
    match op {
        Op::Insert { done, .. } => {
            let _ = done.send(Err(err()));
        }
        Op::Results { done, .. } => {
            let _ = done.send(Err(err()));
        }
        Op::Remove { done, .. } => {
            let _ = done.send(Err(err()));
        }
    }
}

/// Applies a batch in one transaction; returns, per op, the message ids that have no rows left.
fn apply(conn: &mut Connection, batch: &[Op]) -> Result<Vec<Vec<String>>> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut out = Vec::with_capacity(batch.len());
    {
        let mut ins_msg = tx.prepare_cached(
            "INSERT INTO queue_msg (id, sender, created, size, client, flags) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut ins_rcpt = tx.prepare_cached("INSERT INTO queue_rcpt (msg, orig, kind, target, sender, next_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
        let mut del_row =
            tx.prepare_cached("DELETE FROM queue_rcpt WHERE id = ?1 AND msg = ?2 RETURNING msg")?;
        let mut defer = tx.prepare_cached("UPDATE queue_rcpt SET attempts = attempts + 1, next_at = ?3, last_error = ?4 WHERE id = ?1 AND msg = ?2")?;
        let mut left = tx.prepare_cached("SELECT 1 FROM queue_rcpt WHERE msg = ?1 LIMIT 1")?;
        let mut del_msg = tx.prepare_cached("DELETE FROM queue_msg WHERE id = ?1")?;
        let mut ins_body =
            tx.prepare_cached("INSERT INTO queue_body (id, data) VALUES (?1, ?2)")?;
        let mut del_body = tx.prepare_cached("DELETE FROM queue_body WHERE id = ?1")?;
        for op in batch {
            let mut finished = Vec::new();
            match op {
                Op::Insert {
                    id,
                    msg,
                    data,
                    rcpts,
                    ..
                } => {
                    ins_msg.execute(params![
                        id,
                        msg.sender,
                        msg.created,
                        msg.size,
                        msg.client,
                        msg.flags
                    ])?;
                    ins_body.execute(params![id, data])?;
                    for r in rcpts {
                        ins_rcpt.execute(params![
                            id,
                            r.orig,
                            r.kind.as_str(),
                            r.target,
                            r.sender,
                            msg.created
                        ])?;
                    }
                }
                Op::Results { results, .. } => {
                    let mut touched = std::collections::BTreeSet::new();
                    for r in results {
                        match r {
                            RowResult::Done { msg, row } => {
                                let msg: Option<String> =
                                    del_row.query_row(params![row, msg], |r| r.get(0)).ok();
                                if let Some(m) = msg {
                                    touched.insert(m);
                                }
                            }
                            RowResult::Defer {
                                msg,
                                row,
                                next_at,
                                error,
                            } => {
                                defer.execute(params![row, msg, next_at, error])?;
                            }
                        }
                    }
                    for m in touched {
                        if !left.exists([&m])? {
                            del_body.execute([&m])?;
                            del_msg.execute([&m])?;
                            finished.push(m);
                        }
                    }
                }
                Op::Remove { id, .. } => {
                    tx.execute("DELETE FROM queue_rcpt WHERE msg = ?1", [id])?;
                    tx.execute("DELETE FROM queue_body WHERE id = ?1", [id])?;
                    if tx.execute("DELETE FROM queue_msg WHERE id = ?1", [id])? > 0 {
                        finished.push(id.clone());
                    }
                }
            }
            out.push(finished);
        }
    }
    tx.commit()?;
    Ok(out)
}

/// A queued recipient as the runner and `correo queue` see it.
#[derive(Debug, Clone)]
pub struct DueRow {
    pub row: i64,
    pub msg: String,
    pub orig: String,
    pub kind: Kind,
    pub target: String,
    /// The envelope sender to use (row override, else the message's).
    pub sender: String,
    pub attempts: i64,
    pub next_at: i64,
    pub created: i64,
    pub last_error: Option<String>,
    /// The message's `FLAG_*` bits.
    pub flags: i64,
}

fn due_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DueRow> {
    let kind: String = r.get(3)?;
    Ok(DueRow {
        row: r.get(0)?,
        msg: r.get(1)?,
        orig: r.get(2)?,
        kind: Kind::parse(&kind).unwrap_or(Kind::Smtp),
        target: r.get(4)?,
        sender: r.get(5)?,
        attempts: r.get(6)?,
        next_at: r.get(7)?,
        created: r.get(8)?,
        last_error: r.get(9)?,
        flags: r.get(10)?,
    })
}

const SELECT: &str = "SELECT r.id, r.msg, r.orig, r.kind, r.target, COALESCE(r.sender, m.sender), r.attempts, r.next_at, m.created, r.last_error, m.flags
     FROM queue_rcpt r JOIN queue_msg m ON m.id = r.msg";

/// Rows due at `now`, oldest first.
pub fn due(conn: &Connection, now: i64, limit: usize) -> Result<Vec<DueRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "{SELECT} WHERE r.next_at <= ?1 ORDER BY r.next_at, r.id LIMIT ?2"
    ))?;
    let rows = stmt
        .query_map(params![now, limit as i64], due_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Every queued row (for `correo queue ls`), or those of one message.
pub fn all(conn: &Connection, msg: Option<&str>) -> Result<Vec<DueRow>> {
    let rows = match msg {
        Some(m) => {
            let mut stmt = conn.prepare(&format!("{SELECT} WHERE r.msg = ?1 ORDER BY r.id"))?;
            let v = stmt
                .query_map([m], due_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            v
        }
        None => {
            let mut stmt = conn.prepare(&format!("{SELECT} ORDER BY m.created, r.id"))?;
            let v = stmt
                .query_map([], due_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            v
        }
    };
    Ok(rows)
}

/// Makes every row due now (`correo queue flush`).
pub fn flush(conn: &Connection) -> Result<usize> {
    Ok(conn.execute("UPDATE queue_rcpt SET next_at = 0", [])?)
}

/// Rows are `Rcpt`s once more when a test wants to compare.
impl From<&DueRow> for Rcpt {
    fn from(d: &DueRow) -> Rcpt {
        Rcpt {
            orig: d.orig.clone(),
            kind: d.kind,
            target: d.target.clone(),
            sender: Some(d.sender.clone()),
        }
    }
}
