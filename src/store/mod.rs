//! The shared SQLite store: one database file in the data directory, WAL mode, and versioned migrations
//! kept per part (lists, queue, bayes ...), so each part evolves its own tables without a central list.

use crate::message::error::Result;
use rusqlite::Connection;
use std::path::Path;
use std::time::Duration;

/// Opens the database with the settings every part relies on. `busy_timeout` lets concurrent pipe
/// deliveries queue up for the write lock rather than fail; past it, the error maps to EX_TEMPFAIL.
pub fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (part TEXT PRIMARY KEY, version INTEGER NOT NULL)")?;
    Ok(conn)
}

/// Applies the migrations of `part` that this database has not seen yet, each in its own transaction.
/// `steps[i]` takes the part from version i to i+1; never edit a step once released, append a new one.
pub fn migrate(conn: &mut Connection, part: &str, steps: &[&str]) -> Result<()> {
    let current: i64 = conn
        .query_row(
            "SELECT version FROM schema_version WHERE part = ?1",
            [part],
            |r| r.get(0),
        )
        .or_else(|e| {
            if e == rusqlite::Error::QueryReturnedNoRows {
                Ok(0)
            } else {
                Err(e)
            }
        })?;
    for (i, sql) in steps.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Another process may have migrated while we waited for the lock.
        let now: i64 = tx
            .query_row(
                "SELECT version FROM schema_version WHERE part = ?1",
                [part],
                |r| r.get(0),
            )
            .or_else(|e| {
                if e == rusqlite::Error::QueryReturnedNoRows {
                    Ok(0)
                } else {
                    Err(e)
                }
            })?;
        if now > i as i64 {
            tx.commit()?;
            continue;
        }
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_version (part, version) VALUES (?1, ?2)
             ON CONFLICT(part) DO UPDATE SET version = excluded.version",
            rusqlite::params![part, i as i64 + 1],
        )?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_append() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.db");
        let mut c = open(&p).unwrap();
        migrate(&mut c, "t", &["CREATE TABLE a (x)"]).unwrap();
        migrate(&mut c, "t", &["CREATE TABLE a (x)"]).unwrap();
        migrate(&mut c, "t", &["CREATE TABLE a (x)", "CREATE TABLE b (y)"]).unwrap();
        let v: i64 = c
            .query_row(
                "SELECT version FROM schema_version WHERE part='t'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(v, 2);
    }
}
