//! The delivered journal: narrows the window in which a crash makes us send a message twice.
//!
//! When the next hop answers 250 to the final dot, the recipient is done, but the SQLite commit that
//! deletes its row waits behind the writer thread's group commit and its fsync (milliseconds under
//! load). A SIGKILL in those milliseconds used to leave the row queued, and the restart sent it again.
//! So the worker that read the reply first appends one line, `QUEUE-ID ROW\n`, to this file with a
//! single `write()` on an O_APPEND descriptor, before logging or anything else. SIGKILL is not power
//! loss: a `write()` that returned is in the page cache and survives the process. At start-up the lines
//! are replayed (their rows deleted in one committed transaction) before the runner looks at the queue.
//!
//! The journal is never fsynced: it only ever removes rows the next hop already accepted, so losing it
//! (power loss) costs at worst a duplicate, as before, never a message. A line names the message as
//! well as the row because SQLite may reuse a deleted row's id; queue ids are never reused, so replaying
//! an old line is a no-op. What is left (RFC 1047) is the instant between the next hop's commit and
//! our `write()`: a kill there still repeats that one message.

use crate::message::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

/// Past this size the writer thread empties the journal (once every line in it is committed).
pub const TRIM_BYTES: u64 = 1 << 20;

pub struct Journal {
    path: PathBuf,
    /// Appenders hold the read side across "append the line, hand the result to the writer", so the
    /// writer, holding the write side, knows every line in the file has its result in its channel.
    file: RwLock<File>,
    /// Bytes appended since the last trim.
    size: AtomicU64,
}

/// The journal's path beside the database (`correo.db` → `correo.db-delivered`), like SQLite's `-wal`.
pub fn path_for(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push("-delivered");
    PathBuf::from(s)
}

/// Parses the journal: one `(queue id, row)` per well-formed line. A torn or garbled line (power loss
/// can leave zeros) is skipped: it can only cost a duplicate.
pub fn parse(text: &[u8]) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    // Only lines that end in '\n' were written whole.
    let whole = match memchr::memrchr(b'\n', text) {
        Some(i) => &text[..=i],
        None => return out,
    };
    for line in whole.split(|&b| b == b'\n') {
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        let mut f = line.split(' ');
        let (Some(id), Some(row), None) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            continue;
        }
        if let Ok(row) = row.parse::<i64>() {
            out.push((id.to_string(), row));
        }
    }
    out
}

impl Journal {
    /// Opens (creating) the journal for appending. Call `replay` before, not after.
    pub fn open(path: &Path) -> Result<Journal> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::temp(format!("{}: {e}", path.display())))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Journal {
            path: path.to_path_buf(),
            file: RwLock::new(file),
            size: AtomicU64::new(size),
        })
    }

    /// For a handle that only takes mail in and never appends: it must not trim either, because the
    /// lines belong to the courier process, which may still need them after a crash.
    pub(super) fn never_trim(&self) {
        self.size.store(0, Ordering::Relaxed);
    }

    /// Reads what a previous run left: the rows to delete before anything is delivered.
    pub fn pending(path: &Path) -> Result<Vec<(String, i64)>> {
        match std::fs::read(path) {
            Ok(text) => Ok(parse(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::temp(format!("{}: {e}", path.display()))),
        }
    }

    /// Appends one line per row with a single `write()`, then runs `then` (the hand-off to the writer
    /// thread) while appends are still held off from a trim. A failed append is logged and ignored:
    /// the SQLite commit that follows still records the delivery, only the crash window is wider.
    pub fn append<T>(&self, id: &str, rows: &[i64], then: impl FnOnce() -> T) -> T {
        let file = self.file.read().unwrap_or_else(|p| p.into_inner());
        if !rows.is_empty() {
            let mut line = String::with_capacity(rows.len() * (id.len() + 12));
            for r in rows {
                line.push_str(id);
                line.push(' ');
                line.push_str(&r.to_string());
                line.push('\n');
            }
            // One write(): O_APPEND makes concurrent appends from several workers land whole.
            match (&*file).write(line.as_bytes()) {
                Ok(n) => {
                    self.size.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) => crate::message::log::event(
                    "queue",
                    "journal",
                    &[("status", "error"), ("error", &e.to_string())],
                ),
            }
            if kill_after_write() {
                // Test hook: die exactly between this write and the SQLite commit.
                unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
            }
        }
        then()
    }

    /// True when the journal has grown enough to be worth emptying.
    pub fn wants_trim(&self) -> bool {
        self.size.load(Ordering::Relaxed) >= TRIM_BYTES
    }

    /// Empties the journal. `commit_pending` must commit every result already handed to the writer:
    /// it runs with appends held off, so afterwards no line in the file lacks its committed row delete.
    /// If it fails, the journal is kept (its lines are still needed after a crash).
    pub fn trim(&self, commit_pending: impl FnOnce() -> bool) {
        let file = self.file.write().unwrap_or_else(|p| p.into_inner());
        if !commit_pending() {
            return;
        }
        match file.set_len(0) {
            Ok(()) => self.size.store(0, Ordering::Relaxed),
            Err(e) => crate::message::log::event(
                "queue",
                "journal",
                &[
                    ("status", "error"),
                    ("error", &format!("{}: {e}", self.path.display())),
                ],
            ),
        }
    }
}

/// `CORREO_FAULT=journal-kill`, read once: the environment is fixed for the server's life, and this
/// runs for every delivery.
fn kill_after_write() -> bool {
    static KILL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *KILL.get_or_init(|| crate::message::spool::injected_fault("journal-kill"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_whole_lines_only() {
        let t = b"abc123 7\nabc123 8\n\0\0\0\nbad line here\nx -1\nlast 9";
        assert_eq!(
            parse(t),
            vec![
                ("abc123".to_string(), 7),
                ("abc123".to_string(), 8),
                ("x".to_string(), -1)
            ]
        );
        assert!(parse(b"").is_empty());
        assert!(parse(b"torn 1").is_empty());
    }

    #[test]
    fn appends_and_trims() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("j");
        let j = Journal::open(&p).unwrap();
        let got = j.append("m1", &[1, 2], || 5);
        assert_eq!(got, 5);
        j.append("m2", &[3], || ());
        assert_eq!(
            Journal::pending(&p).unwrap(),
            vec![("m1".into(), 1), ("m1".into(), 2), ("m2".into(), 3)]
        );
        j.trim(|| false);
        assert_eq!(Journal::pending(&p).unwrap().len(), 3);
        j.trim(|| true);
        assert!(Journal::pending(&p).unwrap().is_empty());
        j.append("m3", &[4], || ());
        assert_eq!(Journal::pending(&p).unwrap(), vec![("m3".into(), 4)]);
    }
}
