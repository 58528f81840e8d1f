//! The durable queue. Invariant: a message's bytes and its envelope (one row per final recipient) are
//! committed to SQLite in one transaction (WAL, synchronous=FULL, so fsynced) before anyone hears 250.
//! A row is deleted only after the next hop accepted it or it was bounced, and the message only after
//! its last row is gone; so a crash at any point loses nothing, and at worst repeats one in-flight delivery.
//!
//! Every write goes through one writer thread that commits whatever has piled up in one transaction
//! (group commit): with many concurrent clients one fsync covers many messages. This is why the body
//! lives in the database and not in a spool file (message/spool.rs): a file costs its own fsync per
//! message plus one for its directory, which made the queue slower than Postfix under load; in one
//! commit, body and envelope become durable together, with the same "durable before 250" order.

pub mod dsn;
pub mod journal;
pub mod runner;
pub mod store;

use crate::message::error::{Error, Result};
use crate::message::spool;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;

/// How a final recipient is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Smtp,
    Pipe,
    File,
    Mailbox,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Smtp => "smtp",
            Kind::Pipe => "pipe",
            Kind::File => "file",
            Kind::Mailbox => "mailbox",
        }
    }
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "smtp" => Kind::Smtp,
            "pipe" => Kind::Pipe,
            "file" => Kind::File,
            "mailbox" => Kind::Mailbox,
            _ => return None,
        })
    }
}

/// One final recipient as the router produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rcpt {
    /// The RCPT TO address the client gave (for logs and DSNs).
    pub orig: String,
    pub kind: Kind,
    /// Address, command, path or user name, by kind.
    pub target: String,
    /// Envelope sender override (owner-LIST), else the message's.
    pub sender: Option<String>,
}

/// A message ready to be queued.
pub struct NewMessage<'a> {
    pub sender: String,
    pub rcpts: Vec<Rcpt>,
    pub data: &'a [u8],
    /// Where it came from, for the log.
    pub client: String,
    /// MAIL FROM carried SMTPUTF8 (RFC 6531) / BODY=8BITMIME (RFC 6152): passed on to the next hop.
    pub smtputf8: bool,
    pub body8bit: bool,
}

/// The result of one delivery attempt for one row. It names the message as well as the row because
/// SQLite gives a deleted row's id to the next new row: a result must never land on another message's.
#[derive(Debug, Clone)]
pub enum RowResult {
    /// Delivered (or bounced, with its DSN already queued): delete the row.
    Done { msg: String, row: i64 },
    /// Try again at `next_at` (ms since the epoch).
    Defer {
        msg: String,
        row: i64,
        next_at: i64,
        error: String,
    },
}

pub(crate) enum Op {
    Insert {
        id: String,
        msg: store::MsgRow,
        data: Vec<u8>,
        rcpts: Vec<Rcpt>,
        done: mpsc::SyncSender<Result<()>>,
    },
    Results {
        results: Vec<RowResult>,
        done: mpsc::SyncSender<Result<Vec<String>>>,
    },
    /// Delete a message and its rows (`correo queue rm`).
    Remove {
        id: String,
        done: mpsc::SyncSender<Result<bool>>,
    },
}

/// A handle on the queue: cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct Queue {
    pub db_path: PathBuf,
    tx: mpsc::Sender<Op>,
    /// Rows the next hop accepted, written the instant its reply is read (see journal.rs).
    journal: Arc<journal::Journal>,
    /// Woken after each insert so the runner picks new mail up at once.
    pub notify: Arc<tokio::sync::Notify>,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Queue {
    /// Opens the queue (migrating its tables), replays the delivered journal a crash may have left,
    /// and starts the writer thread.
    pub fn open(db_path: PathBuf) -> Result<Queue> {
        Queue::open_with(db_path, true)
    }

    /// Opens the queue for taking mail in only (`correo serve`'s listeners, whose courier process
    /// delivers): the journal belongs to the courier, which may still be appending to it, so it is
    /// neither replayed nor trimmed here.
    pub fn open_intake(db_path: PathBuf) -> Result<Queue> {
        Queue::open_with(db_path, false)
    }

    fn open_with(db_path: PathBuf, replay: bool) -> Result<Queue> {
        let mut conn = crate::store::open(&db_path)?;
        store::migrate(&mut conn)?;
        let jpath = journal::path_for(&db_path);
        let pending = if replay {
            journal::Journal::pending(&jpath)?
        } else {
            Vec::new()
        };
        if !pending.is_empty() {
            // Committed (fsynced) before the journal is emptied below.
            let (deleted, finished) = store::replay(&mut conn, &pending)?;
            // `lines` counts every delivery since the last trim; `rows` those not yet committed,
            // which a restart without the journal would have sent again.
            crate::message::log::event(
                "queue",
                "journal",
                &[
                    ("status", "replayed"),
                    ("lines", &pending.len().to_string()),
                    ("rows", &deleted.to_string()),
                    ("finished", &finished.len().to_string()),
                ],
            );
            for id in &finished {
                crate::message::log::event("queue", id, &[("status", "removed")]);
            }
        }
        let journal = Arc::new(journal::Journal::open(&jpath)?);
        if !pending.is_empty() {
            journal.trim(|| true);
        }
        if !replay {
            journal.never_trim();
        }
        let (tx, rx) = mpsc::channel();
        let j = journal.clone();
        std::thread::Builder::new()
            .name("queue-writer".into())
            .spawn(move || store::writer(conn, rx, &j))
            .map_err(|e| Error::temp(format!("cannot start queue writer: {e}")))?;
        Ok(Queue {
            db_path,
            tx,
            journal,
            notify: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// Queues a message durably and returns its queue id. Blocking: call from a blocking thread.
    /// Errors are temporary (the client should retry) unless the message itself is bad.
    pub fn enqueue(&self, m: NewMessage<'_>) -> Result<String> {
        let id = spool::unique_id();
        // Test hook: behave exactly like a full disk (SQLITE_FULL).
        if spool::injected_fault("spool") {
            return Err(Error::temp(
                "queue: injected fault: database or disk is full",
            ));
        }
        let row = store::MsgRow {
            sender: m.sender.clone(),
            created: now_ms(),
            size: m.data.len() as i64,
            client: m.client.clone(),
            flags: if m.smtputf8 { store::FLAG_SMTPUTF8 } else { 0 }
                | if m.body8bit { store::FLAG_8BITMIME } else { 0 },
        };
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        let sent = self.tx.send(Op::Insert {
            id: id.clone(),
            msg: row,
            data: m.data.to_vec(),
            rcpts: m.rcpts.clone(),
            done: done_tx,
        });
        let r = match sent {
            Ok(()) => done_rx
                .recv()
                .unwrap_or_else(|_| Err(Error::temp("queue writer stopped"))),
            Err(_) => Err(Error::temp("queue writer stopped")),
        };
        r?;
        for r in &m.rcpts {
            let sender = r.sender.as_deref().unwrap_or(&m.sender);
            crate::message::log::event(
                "queue",
                &id,
                &[
                    ("from", &format!("<{sender}>")),
                    ("to", &format!("<{}>", r.orig)),
                    ("via", &format!("{}:{}", r.kind.as_str(), r.target)),
                    ("size", &m.data.len().to_string()),
                    ("client", &m.client),
                    ("status", "queued"),
                ],
            );
        }
        self.notify.notify_one();
        Ok(id)
    }

    /// Records delivery results; returns the ids of messages that are now finished (files removed).
    pub fn record(&self, results: Vec<RowResult>) -> Result<Vec<String>> {
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        self.tx
            .send(Op::Results {
                results,
                done: done_tx,
            })
            .map_err(|_| Error::temp("queue writer stopped"))?;
        done_rx
            .recv()
            .unwrap_or_else(|_| Err(Error::temp("queue writer stopped")))
    }

    /// Hands results to the writer without waiting; the receiver says when they are committed.
    pub fn record_start(&self, results: Vec<RowResult>) -> mpsc::Receiver<Result<Vec<String>>> {
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        if let Err(mpsc::SendError(Op::Results { done, .. })) = self.tx.send(Op::Results {
            results,
            done: done_tx,
        }) {
            let _ = done.send(Err(Error::temp("queue writer stopped")));
        }
        done_rx
    }

    /// Records rows of message `id` the next hop has just accepted: first one line in the journal (a
    /// single write(), which survives SIGKILL), then the row deletes handed to the writer like
    /// `record_start`. Call it the moment the reply is read, before logging.
    pub fn record_accepted(&self, id: &str, rows: &[i64]) -> mpsc::Receiver<Result<Vec<String>>> {
        self.journal.append(id, rows, || {
            self.record_start(
                rows.iter()
                    .map(|&row| RowResult::Done {
                        msg: id.to_string(),
                        row,
                    })
                    .collect(),
            )
        })
    }

    pub fn remove(&self, id: &str) -> Result<bool> {
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        self.tx
            .send(Op::Remove {
                id: id.to_string(),
                done: done_tx,
            })
            .map_err(|_| Error::temp("queue writer stopped"))?;
        done_rx
            .recv()
            .unwrap_or_else(|_| Err(Error::temp("queue writer stopped")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_message(q: &Queue) -> (String, i64) {
        let id = q
            .enqueue(NewMessage {
                sender: "a@example.org".into(),
                rcpts: vec![Rcpt {
                    orig: "b@far.example.net".into(),
                    kind: Kind::Smtp,
                    target: "b@far.example.net".into(),
                    sender: None,
                }],
                data: b"Subject: x\r\n\r\nbody\r\n",
                client: "test".into(),
                smtputf8: false,
                body8bit: false,
            })
            .unwrap();
        let conn = crate::store::open(&q.db_path).unwrap();
        let rows = store::all(&conn, Some(&id)).unwrap();
        (id, rows[0].row)
    }

    /// The writer empties a grown journal only after committing what was handed to it, so the row
    /// recorded just before the trim is deleted in SQLite and its line is no longer needed.
    #[test]
    fn a_grown_journal_is_trimmed_after_its_rows_are_committed() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::open(d.path().join("correo.db")).unwrap();
        let (id, row) = one_message(&q);
        // Lines of long-gone messages, enough to pass the trim size.
        let filler: Vec<i64> = (0..(journal::TRIM_BYTES as i64 / 8)).collect();
        q.journal.append("0gone", &filler, || ());
        assert!(q.journal.wants_trim());
        q.record_accepted(&id, &[row]).recv().unwrap().unwrap();
        let conn = crate::store::open(&q.db_path).unwrap();
        assert!(store::all(&conn, Some(&id)).unwrap().is_empty());
        // The trim runs right after that commit, on the writer thread.
        let jpath = journal::path_for(&q.db_path);
        let start = std::time::Instant::now();
        while std::fs::metadata(&jpath).unwrap().len() > 0 || q.journal.wants_trim() {
            assert!(start.elapsed().as_secs() < 10, "journal not trimmed");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// SQLite gives a deleted row's id to the next new row: a late result for the old message's row
    /// must leave the new message's row alone (it once deleted it, and the message was lost unsent).
    #[test]
    fn a_late_result_for_a_reused_row_id_leaves_the_new_message_alone() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::open(d.path().join("correo.db")).unwrap();
        let (old, row) = one_message(&q);
        let done = || RowResult::Done {
            msg: old.clone(),
            row,
        };
        q.record(vec![done()]).unwrap();
        let (new, reused) = one_message(&q);
        assert_eq!(reused, row, "SQLite reuses the id of the last row deleted");
        let late = RowResult::Defer {
            msg: old.clone(),
            row,
            next_at: i64::MAX,
            error: "late".into(),
        };
        assert!(q.record(vec![late, done()]).unwrap().is_empty());
        let conn = crate::store::open(&q.db_path).unwrap();
        let rows = store::all(&conn, Some(&new)).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].attempts, rows[0].last_error.as_deref()), (0, None));
        assert!(store::body(&conn, &new).unwrap().is_some());
    }

    /// A journal left by a crash is replayed when the queue opens: the row goes, the file is emptied.
    #[test]
    fn open_replays_the_journal() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("correo.db");
        let (id, row) = {
            let q = Queue::open(db.clone()).unwrap();
            one_message(&q)
        };
        std::fs::write(journal::path_for(&db), format!("{id} {row}\n")).unwrap();
        let q = Queue::open(db.clone()).unwrap();
        let conn = crate::store::open(&q.db_path).unwrap();
        assert!(store::all(&conn, None).unwrap().is_empty());
        assert!(store::body(&conn, &id).unwrap().is_none());
        assert_eq!(std::fs::metadata(journal::path_for(&db)).unwrap().len(), 0);
    }
}
