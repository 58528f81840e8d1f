//! The relay core: SMTP server and client, aliases, local delivery and the durable queue.
//!
//! Flow: `server` (one file per verb) → `route` (accept rules + `aliases`) → `queue` (fsync + SQLite
//! before 250) → `queue::runner` → `client` (remote, via `mx`) or `local` (pipes, files, mailboxes),
//! with `queue::dsn` for bounces.

pub mod aliases;
pub mod client;
pub mod config;
pub mod courier;
pub mod fuzzing;
pub mod local;
pub mod mx;
pub mod path;
pub mod queue;
pub mod reply;
pub mod route;
pub mod server;
