//! The recipe engine: procmailrc(5) and `.forward` with procmail 3.22's semantics, behind
//! `correo deliver`.
//!
//! Parsers (bytes to typed values, never acting, fuzzed): `rcfile` (procmailrc), `regex` (procmail's
//! egrep dialect), `cond` (one condition line), `forward` (.forward). Actors: `exec` (the executor),
//! `folder` (mbox, Maildir, MH deliveries), `program` (pipes, filters, $SENDMAIL), `lock` (dotlocks and
//! kernel locks), `vars` (variables and sh-style substitution), `mail` (the message), `cli` (procmail's
//! command line), `explain` (the dry-run report).

pub mod cli;
pub mod cond;
pub mod exec;
pub mod folder;
pub mod forward;
pub mod lock;
pub mod mail;
pub mod program;
pub mod rcfile;
pub mod regex;
pub mod vars;
