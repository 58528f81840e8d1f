//! `correo mail ACTION LIST`: the MDA pipe entry, exactly as an MTA's aliases file runs it (message on
//! stdin, no HOME, cwd /, an unprivileged user). The exit code is the whole conversation with the MTA:
//! 0 only once the message is on our disk, 75 for anything a retry can fix, 67 for an unknown list,
//! 65 for input we cannot read, 64 for a bad command line. A bug never loses the message: it is
//! shunted (kept on disk, re-runnable) and never panics out.

use crate::config::Home;
use crate::lists::model::{self, ACTIONS};
use crate::lists::service::{self, Incoming};
use crate::lists::shunt;
use crate::message::error::{Error, Result};
use crate::message::log;
use crate::message::sysexits::Exit;
use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// One of: post admin bounces confirm join leave owner request subscribe unsubscribe.
    pub action: String,
    /// The list's address (NAME@DOMAIN) or its bare name when unique.
    pub list: String,
}

/// Messages larger than this are refused as bad data rather than read into memory without end.
const MAX_INPUT: u64 = 256 * 1024 * 1024;

pub fn run(home: &Home, args: Args) -> Result<()> {
    let action = args.action.to_ascii_lowercase();
    if !ACTIONS.contains(&action.as_str()) {
        return Err(Error::usage(format!(
            "unknown action '{}'; actions are: {}",
            args.action,
            ACTIONS.join(" ")
        )));
    }
    let mut raw = Vec::new();
    std::io::stdin()
        .take(MAX_INPUT + 1)
        .read_to_end(&mut raw)
        .map_err(|e| Error::temp(format!("reading stdin: {e}")))?;
    if raw.len() as u64 > MAX_INPUT {
        return Err(Error::data(format!(
            "message larger than {MAX_INPUT} bytes"
        )));
    }
    if raw.iter().all(|b| b.is_ascii_whitespace()) {
        log::event(
            "list",
            &args.list,
            &[("action", &action), ("status", "refused (empty message)")],
        );
        return Err(Error::data("empty message on stdin"));
    }
    let mut conn = model::db(home)?;
    let list = match model::find(&conn, &args.list) {
        Ok(l) => l,
        Err(e) => {
            log::event(
                "list",
                &args.list,
                &[
                    ("action", &action),
                    ("status", &format!("refused ({})", e.msg)),
                ],
            );
            return Err(e);
        }
    };
    let inc = Incoming::new(raw);
    let path = shunt::save_incoming(home, &action, &list.address(), &inc)?;
    process(home, &mut conn, &list, &action, &inc, &path)
}

/// Runs one saved message through the list; decides what happens to the saved copy.
pub fn process(
    home: &Home,
    conn: &mut rusqlite::Connection,
    list: &model::List,
    action: &str,
    inc: &Incoming,
    path: &Path,
) -> Result<()> {
    let r = catch_unwind(AssertUnwindSafe(|| {
        service::handle(home, conn, list, action, inc)
    }));
    let err = match r {
        Ok(Ok(())) => {
            let _ = std::fs::remove_file(path);
            return Ok(());
        }
        Ok(Err(e)) => e,
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Error::software(format!("internal error: {what}"))
        }
    };
    match err.exit {
        Exit::DataErr | Exit::Usage | Exit::NoUser => {
            log::event(
                "list",
                &list.address(),
                &[
                    ("action", action),
                    ("from", inc.sender.as_deref().unwrap_or("-")),
                    ("status", &format!("refused ({})", err.msg)),
                ],
            );
            let _ = std::fs::remove_file(path);
            Err(Error::new(
                if err.exit == Exit::Usage {
                    Exit::DataErr
                } else {
                    err.exit
                },
                err.msg,
            ))
        }
        e if e.is_temporary() => {
            log::event(
                "list",
                &list.address(),
                &[
                    ("action", action),
                    ("status", &format!("deferred ({})", err.msg)),
                ],
            );
            let _ = std::fs::remove_file(path);
            Err(err)
        }
        _ => {
            let kept = shunt::shunt(home, path, &err.msg)?;
            log::event(
                "list",
                &list.address(),
                &[
                    ("action", action),
                    (
                        "status",
                        &format!("shunted ({}) file={}", err.msg, kept.display()),
                    ),
                ],
            );
            Ok(())
        }
    }
}
