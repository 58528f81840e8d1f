//! `correo spam ...`: check, lint, daemon, learn (src/spam).

use crate::config::Home;
use crate::message::error::{Error, Result};

#[derive(clap::Subcommand, Debug)]
pub enum SpamCmd {
    /// Score a message from stdin and print it with X-Spam headers (like `spamassassin -t`).
    Check,
}

pub fn run(_home: &Home, _cmd: SpamCmd) -> Result<()> {
    Err(Error::new(
        crate::message::sysexits::Exit::Unavailable,
        "spam is not built yet",
    ))
}
