//! `correo queue ...`: the relay queue (src/smtp/queue), the analogue of `smtpctl show queue` / `mailq`.
//! Reads and small edits go straight to the database, so they work whether or not `serve` runs.

use crate::config::Home;
use crate::message::error::{Error, Result};
use crate::smtp::queue::{now_ms, store};

#[derive(clap::Subcommand, Debug)]
pub enum QueueCmd {
    /// List queued messages and their recipients.
    Ls,
    /// Show one message: envelope, recipients with their last error, and the message itself.
    Show { id: String },
    /// Make every queued recipient due now.
    Flush,
    /// Remove a message from the queue without delivering or bouncing it.
    Rm { id: String },
    /// Counts: messages, recipients, deferred, oldest.
    Stats,
}

fn open(home: &Home) -> Result<rusqlite::Connection> {
    let mut c = home.db()?;
    store::migrate(&mut c)?;
    Ok(c)
}

fn age(ms: i64) -> String {
    let s = (now_ms() - ms).max(0) / 1000;
    if s < 120 {
        format!("{s}s")
    } else if s < 7200 {
        format!("{}m", s / 60)
    } else {
        format!("{}h", s / 3600)
    }
}

pub fn run(home: &Home, cmd: QueueCmd) -> Result<()> {
    let conn = open(home)?;
    match cmd {
        QueueCmd::Ls => {
            let rows = store::all(&conn, None)?;
            let mut last = String::new();
            for r in &rows {
                if r.msg != last {
                    println!("{}  {:>5}  <{}>", r.msg, age(r.created), r.sender);
                    last = r.msg.clone();
                }
                let err = r
                    .last_error
                    .as_deref()
                    .map(|e| format!("  ({e})"))
                    .unwrap_or_default();
                println!(
                    "    {} {}  attempts={}{}",
                    r.kind.as_str(),
                    r.target,
                    r.attempts,
                    err
                );
            }
            Ok(())
        }
        QueueCmd::Show { id } => {
            let rows = store::all(&conn, Some(&id))?;
            if rows.is_empty() {
                return Err(Error::nouser(format!("no message {id} in the queue")));
            }
            println!(
                "id: {id}\nsender: <{}>\nage: {}",
                rows[0].sender,
                age(rows[0].created)
            );
            for r in &rows {
                let next = if r.next_at <= now_ms() {
                    "now".to_string()
                } else {
                    format!("in {}s", (r.next_at - now_ms()) / 1000)
                };
                println!(
                    "rcpt: <{}> -> {} {} attempts={} next={next} error={}",
                    r.orig,
                    r.kind.as_str(),
                    r.target,
                    r.attempts,
                    r.last_error.as_deref().unwrap_or("-")
                );
            }
            let data = store::body(&conn, &id)?.unwrap_or_default();
            println!();
            use std::io::Write;
            std::io::stdout().write_all(&data)?;
            Ok(())
        }
        QueueCmd::Flush => {
            let n = store::flush(&conn)?;
            println!("{n} recipient(s) due now");
            Ok(())
        }
        QueueCmd::Rm { id } => {
            if !store::remove(&conn, &id)? {
                return Err(Error::nouser(format!("no message {id} in the queue")));
            }
            crate::message::log::event("queue", &id, &[("status", "removed by admin")]);
            println!("removed {id}");
            Ok(())
        }
        QueueCmd::Stats => {
            let (msgs, oldest): (i64, Option<i64>) =
                conn.query_row("SELECT COUNT(*), MIN(created) FROM queue_msg", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
            let (rcpts, deferred): (i64, i64) = conn.query_row(
                "SELECT COUNT(*), COALESCE(SUM(attempts > 0), 0) FROM queue_rcpt",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            println!(
                "messages: {msgs}\nrecipients: {rcpts}\ndeferred: {deferred}\noldest: {}",
                oldest.map(age).unwrap_or_else(|| "-".into())
            );
            Ok(())
        }
    }
}
