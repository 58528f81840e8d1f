//! The token database in correo's SQLite file: one row per (user, token hash) with spam and ham counts
//! and a last-use serial; per-user totals; and the signatures of learned messages, so learning a message
//! twice counts once and `forget` can undo exactly what was learned. Writes are batched: a learning run
//! adds up the counts in memory and commits them in a few transactions, which is what makes it fast.
//!
//! Invariant: a token row exists only with spam + ham > 0, and `nspam`/`nham` equal the number of
//! `seen` rows of each class.

use super::classifier::Counts;
use crate::message::error::Result;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;

const MIGRATIONS: &[&str] = &["
CREATE TABLE bayes_users (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  nspam INTEGER NOT NULL DEFAULT 0,
  nham INTEGER NOT NULL DEFAULT 0,
  serial INTEGER NOT NULL DEFAULT 0,
  last_expire INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE bayes_tokens (
  uid INTEGER NOT NULL,
  token INTEGER NOT NULL,
  spam INTEGER NOT NULL,
  ham INTEGER NOT NULL,
  atime INTEGER NOT NULL,
  PRIMARY KEY (uid, token)
) WITHOUT ROWID;
CREATE TABLE bayes_seen (
  uid INTEGER NOT NULL,
  sig TEXT NOT NULL,
  class TEXT NOT NULL,
  PRIMARY KEY (uid, sig)
) WITHOUT ROWID;
"];

/// Rows per multi-row upsert in `Learner::flush`.
const UPSERT_ROWS: usize = 128;

/// `INSERT ... VALUES (?1, ?3, ?4, ?5, ?2), (?1, ?6, ?7, ?8, ?2) ... ON CONFLICT ...` for UPSERT_ROWS
/// tokens whose counts only grow (uid ?1, serial ?2, then token, spam, ham per row): for them it does
/// what the one-row upsert in `flush` does (counts are never negative, so the max(.., 0) are no-ops,
/// and a row with a positive count always takes the new atime).
static UPSERT_MANY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let rows: Vec<String> = (0..UPSERT_ROWS)
        .map(|i| format!("(?1, ?{}, ?{}, ?{}, ?2)", 3 + 3 * i, 4 + 3 * i, 5 + 3 * i))
        .collect();
    format!(
        "INSERT INTO bayes_tokens (uid, token, spam, ham, atime) VALUES {}
         ON CONFLICT (uid, token) DO UPDATE SET spam = spam + excluded.spam,
         ham = ham + excluded.ham, atime = excluded.atime",
        rows.join(", ")
    )
});

/// The database user for the site-wide store.
pub const GLOBAL: &str = "$GLOBAL";

pub fn migrate(conn: &mut Connection) -> Result<()> {
    crate::store::migrate(conn, "bayes", MIGRATIONS)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Spam,
    Ham,
}

impl Class {
    fn code(self) -> &'static str {
        match self {
            Class::Spam => "s",
            Class::Ham => "h",
        }
    }
    fn from_code(s: &str) -> Option<Class> {
        match s {
            "s" => Some(Class::Spam),
            "h" => Some(Class::Ham),
            _ => None,
        }
    }
}

/// What learning (or forgetting) one message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Did {
    Learned,
    /// Already learned as this class: nothing changed.
    Already,
    /// Learned before as the other class: moved.
    Relearned,
    Forgot,
    /// `forget` of a message never learned.
    NotLearned,
}

/// Totals for one user.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    pub uid: i64,
    pub nspam: u64,
    pub nham: u64,
    pub serial: i64,
}

/// Finds (or with `create`, makes) a user's row.
pub fn user(conn: &Connection, name: &str, create: bool) -> Result<Option<Totals>> {
    // Cached: the daemon asks this for every message it scores.
    let get = |c: &Connection| -> rusqlite::Result<Option<Totals>> {
        c.prepare_cached("SELECT id, nspam, nham, serial FROM bayes_users WHERE name = ?1")?
            .query_row([name], |r| {
                Ok(Totals {
                    uid: r.get(0)?,
                    nspam: r.get::<_, i64>(1)?.max(0) as u64,
                    nham: r.get::<_, i64>(2)?.max(0) as u64,
                    serial: r.get(3)?,
                })
            })
            .optional()
    };
    if let Some(t) = get(conn)? {
        return Ok(Some(t));
    }
    if !create {
        return Ok(None);
    }
    conn.execute(
        "INSERT OR IGNORE INTO bayes_users (name) VALUES (?1)",
        [name],
    )?;
    Ok(get(conn)?)
}

/// Reads the counts of the given token hashes (missing tokens are zero).
pub fn counts(conn: &Connection, uid: i64, hashes: &[i64]) -> Result<Vec<Counts>> {
    let mut st =
        conn.prepare_cached("SELECT spam, ham FROM bayes_tokens WHERE uid = ?1 AND token = ?2")?;
    let mut out = Vec::with_capacity(hashes.len());
    for h in hashes {
        let c = st
            .query_row(params![uid, h], |r| {
                Ok(Counts {
                    spam: r.get::<_, i64>(0)?.max(0) as u64,
                    ham: r.get::<_, i64>(1)?.max(0) as u64,
                })
            })
            .optional()?
            .unwrap_or_default();
        out.push(c);
    }
    Ok(out)
}

/// A learning session for one user: changes pile up in memory and reach the database on `flush`.
pub struct Learner<'c> {
    conn: &'c mut Connection,
    pub totals: Totals,
    /// Count changes per token hash (the hashes are tokenizer output, so a fast seeded hash does).
    delta: foldhash::HashMap<i64, (i64, i64)>,
    /// Signatures changed in this batch: Some(class) learned, None forgotten.
    seen: HashMap<String, Option<Class>>,
    dspam: i64,
    dham: i64,
    pending: usize,
    /// A commit since the last one made with synchronous=FULL (see `durable`).
    committed: bool,
}

impl<'c> Learner<'c> {
    pub fn new(conn: &'c mut Connection, user_name: &str) -> Result<Learner<'c>> {
        migrate(conn)?;
        let totals = user(conn, user_name, true)?.unwrap_or_default();
        Ok(Learner {
            conn,
            totals,
            delta: Default::default(),
            seen: HashMap::new(),
            dspam: 0,
            dham: 0,
            pending: 0,
            committed: false,
        })
    }

    pub(crate) fn seen_class(&mut self, sig: &str) -> Result<Option<Class>> {
        if let Some(c) = self.seen.get(sig) {
            return Ok(*c);
        }
        let c: Option<String> = self
            .conn
            .prepare_cached("SELECT class FROM bayes_seen WHERE uid = ?1 AND sig = ?2")?
            .query_row(params![self.totals.uid, sig], |r| r.get(0))
            .optional()?;
        Ok(c.as_deref().and_then(Class::from_code))
    }

    fn apply(&mut self, hashes: &[i64], class: Class, sign: i64) {
        for &h in hashes {
            let e = self.delta.entry(h).or_insert((0, 0));
            match class {
                Class::Spam => e.0 += sign,
                Class::Ham => e.1 += sign,
            }
        }
        match class {
            Class::Spam => self.dspam += sign,
            Class::Ham => self.dham += sign,
        }
    }

    /// Learns one message (its token hashes and signature) as `class`; `None` forgets it.
    pub fn learn(&mut self, hashes: &[i64], sig: &str, class: Option<Class>) -> Result<Did> {
        let before = self.seen_class(sig)?;
        let did = match (before, class) {
            (Some(b), Some(c)) if b == c => return Ok(Did::Already),
            (None, None) => return Ok(Did::NotLearned),
            (Some(b), Some(c)) => {
                self.apply(hashes, b, -1);
                self.apply(hashes, c, 1);
                Did::Relearned
            }
            (None, Some(c)) => {
                self.apply(hashes, c, 1);
                Did::Learned
            }
            (Some(b), None) => {
                self.apply(hashes, b, -1);
                Did::Forgot
            }
        };
        self.seen.insert(sig.to_string(), class);
        self.pending += 1;
        if self.pending >= 2000 {
            self.flush()?;
        }
        Ok(did)
    }

    /// Commits the batch in one transaction.
    pub fn flush(&mut self) -> Result<()> {
        if self.pending == 0 {
            return Ok(());
        }
        let uid = self.totals.uid;
        let serial = self.totals.serial + self.pending as i64;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut up = tx.prepare_cached(
                "INSERT INTO bayes_tokens (uid, token, spam, ham, atime) VALUES (?1, ?2, max(?3, 0), max(?4, 0), ?5)
                 ON CONFLICT (uid, token) DO UPDATE SET spam = max(spam + ?3, 0), ham = max(ham + ?4, 0),
                 atime = CASE WHEN ?3 > 0 OR ?4 > 0 THEN ?5 ELSE atime END",
            )?;
            let mut del = tx.prepare_cached(
                "DELETE FROM bayes_tokens WHERE uid = ?1 AND token = ?2 AND spam = 0 AND ham = 0",
            )?;
            // In key order: the upserts then walk the table's B-tree front to back instead of jumping
            // to a random page for every token.
            let mut rows: Vec<(i64, i64, i64)> = self
                .delta
                .iter()
                .filter(|(_, &(s, hm))| s != 0 || hm != 0)
                .map(|(&h, &(s, hm))| (h, s, hm))
                .collect();
            rows.sort_unstable_by_key(|r| r.0);
            // Counts that only grow (all of a learning run, as opposed to forget or relearn) go in
            // statements of UPSERT_ROWS rows: the same upsert, with a statement step per 128 tokens
            // instead of one per token. The rest, and any tail, take the one-row statement.
            let (grow, rest): (Vec<_>, Vec<_>) =
                rows.into_iter().partition(|&(_, s, hm)| s >= 0 && hm >= 0);
            let mut many = tx.prepare_cached(&UPSERT_MANY)?;
            let mut chunks = grow.chunks_exact(UPSERT_ROWS);
            for chunk in &mut chunks {
                many.raw_bind_parameter(1, uid)?;
                many.raw_bind_parameter(2, serial)?;
                for (i, &(h, s, hm)) in chunk.iter().enumerate() {
                    many.raw_bind_parameter(3 + 3 * i, h)?;
                    many.raw_bind_parameter(4 + 3 * i, s)?;
                    many.raw_bind_parameter(5 + 3 * i, hm)?;
                }
                many.raw_execute()?;
            }
            for &(h, s, hm) in chunks.remainder().iter().chain(&rest) {
                up.execute(params![uid, h, s, hm, serial])?;
                if s < 0 || hm < 0 {
                    del.execute(params![uid, h])?;
                }
            }
            let mut ins = tx.prepare_cached(
                "INSERT OR REPLACE INTO bayes_seen (uid, sig, class) VALUES (?1, ?2, ?3)",
            )?;
            let mut rm = tx.prepare_cached("DELETE FROM bayes_seen WHERE uid = ?1 AND sig = ?2")?;
            for (sig, c) in &self.seen {
                match c {
                    Some(c) => ins.execute(params![uid, sig, c.code()])?,
                    None => rm.execute(params![uid, sig])?,
                };
            }
            tx.execute(
                "UPDATE bayes_users SET nspam = max(nspam + ?2, 0), nham = max(nham + ?3, 0), serial = ?4 WHERE id = ?1",
                params![uid, self.dspam, self.dham, serial],
            )?;
        }
        tx.commit()?;
        self.committed = true;
        self.totals.nspam = (self.totals.nspam as i64 + self.dspam).max(0) as u64;
        self.totals.nham = (self.totals.nham as i64 + self.dham).max(0) as u64;
        self.totals.serial = serial;
        self.delta.clear();
        self.seen.clear();
        self.dspam = 0;
        self.dham = 0;
        self.pending = 0;
        Ok(())
    }

    /// Ends a run whose earlier commits may have skipped their fsync (the caller set
    /// synchronous=NORMAL): commits what is pending with synchronous=FULL, which syncs the write-ahead
    /// log and with it every earlier commit; with nothing pending, a checkpoint does the same.
    pub fn durable(&mut self) -> Result<()> {
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        if self.pending > 0 {
            self.flush()?;
        } else if self.committed {
            self.conn
                .query_row("PRAGMA wal_checkpoint(FULL)", [], |_| Ok(()))?;
        }
        self.committed = false;
        Ok(())
    }

    /// Keeps the database bounded: past `max` tokens, drops the least recently learned (and, among
    /// equals, the rarest) until 75% of `max` remain, as SpamAssassin's expiry does by atime.
    pub fn expire(&mut self, max: u64) -> Result<u64> {
        self.flush()?;
        let uid = self.totals.uid;
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM bayes_tokens WHERE uid = ?1",
            [uid],
            |r| r.get(0),
        )?;
        if max == 0 || (n as u64) <= max {
            return Ok(0);
        }
        let drop = n - (max as i64 * 3 / 4);
        let gone = self.conn.execute(
            "DELETE FROM bayes_tokens WHERE uid = ?1 AND token IN (
               SELECT token FROM bayes_tokens WHERE uid = ?1 ORDER BY atime, spam + ham LIMIT ?2)",
            params![uid, drop],
        )?;
        self.conn.execute(
            "UPDATE bayes_users SET last_expire = ?2 WHERE id = ?1",
            params![uid, self.totals.serial],
        )?;
        Ok(gone as u64)
    }
}

impl Drop for Learner<'_> {
    fn drop(&mut self) {
        // Callers flush and report errors; this only saves a batch an early return left behind.
        let _ = self.flush();
    }
}

/// One line of `learn --dump`.
#[derive(Debug, Clone)]
pub struct Dump {
    pub user: String,
    pub nspam: u64,
    pub nham: u64,
    pub ntokens: u64,
    pub last_expire: i64,
}

pub fn dump(conn: &mut Connection) -> Result<Vec<Dump>> {
    migrate(conn)?;
    let mut st = conn.prepare(
        "SELECT u.name, u.nspam, u.nham, (SELECT count(*) FROM bayes_tokens t WHERE t.uid = u.id), u.last_expire
         FROM bayes_users u ORDER BY u.name",
    )?;
    let rows = st
        .query_map([], |r| {
            Ok(Dump {
                user: r.get(0)?,
                nspam: r.get::<_, i64>(1)?.max(0) as u64,
                nham: r.get::<_, i64>(2)?.max(0) as u64,
                ntokens: r.get::<_, i64>(3)?.max(0) as u64,
                last_expire: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Connection) {
        let d = tempfile::tempdir().unwrap();
        let c = crate::store::open(&d.path().join("t.db")).unwrap();
        (d, c)
    }

    #[test]
    fn learn_twice_counts_once_and_forget_undoes() {
        let (_d, mut c) = db();
        {
            let mut l = Learner::new(&mut c, GLOBAL).unwrap();
            assert_eq!(
                l.learn(&[1, 2, 3], "sig1", Some(Class::Spam)).unwrap(),
                Did::Learned
            );
            assert_eq!(
                l.learn(&[1, 2, 3], "sig1", Some(Class::Spam)).unwrap(),
                Did::Already
            );
            l.flush().unwrap();
            assert_eq!(
                l.learn(&[1, 2, 3], "sig1", Some(Class::Spam)).unwrap(),
                Did::Already
            );
            assert_eq!(
                l.learn(&[3, 4], "sig2", Some(Class::Ham)).unwrap(),
                Did::Learned
            );
            l.flush().unwrap();
        }
        let t = user(&c, GLOBAL, false).unwrap().unwrap();
        assert_eq!((t.nspam, t.nham), (1, 1));
        assert_eq!(
            counts(&c, t.uid, &[3, 1, 9]).unwrap(),
            vec![
                Counts { spam: 1, ham: 1 },
                Counts { spam: 1, ham: 0 },
                Counts::default()
            ]
        );
        {
            let mut l = Learner::new(&mut c, GLOBAL).unwrap();
            assert_eq!(l.learn(&[1, 2, 3], "sig1", None).unwrap(), Did::Forgot);
            assert_eq!(l.learn(&[1, 2, 3], "sig1", None).unwrap(), Did::NotLearned);
            assert_eq!(
                l.learn(&[3, 4], "sig2", Some(Class::Spam)).unwrap(),
                Did::Relearned
            );
            l.flush().unwrap();
        }
        let t = user(&c, GLOBAL, false).unwrap().unwrap();
        assert_eq!((t.nspam, t.nham), (1, 0));
        assert_eq!(
            counts(&c, t.uid, &[1, 3]).unwrap(),
            vec![Counts::default(), Counts { spam: 1, ham: 0 }]
        );
        let n: i64 = c
            .query_row("SELECT count(*) FROM bayes_tokens", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2, "zero rows are deleted");
    }

    #[test]
    fn expiry_bounds_the_database() {
        let (_d, mut c) = db();
        let mut l = Learner::new(&mut c, GLOBAL).unwrap();
        for i in 0..100i64 {
            l.learn(&[i * 10, i * 10 + 1], &format!("s{i}"), Some(Class::Ham))
                .unwrap();
            l.flush().unwrap();
        }
        let gone = l.expire(100).unwrap();
        assert_eq!(gone, 200 - 75);
        drop(l);
        let n: i64 = c
            .query_row("SELECT count(*) FROM bayes_tokens", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 75);
        // The newest survive.
        assert_eq!(counts(&c, 1, &[990]).unwrap()[0].ham, 1);
    }
}
