//! `correo queue ...`: the relay queue (src/smtp/queue).

use crate::config::Home;
use crate::message::error::{Error, Result};

#[derive(clap::Subcommand, Debug)]
pub enum QueueCmd {
    /// List queued messages.
    Ls,
}

pub fn run(_home: &Home, _cmd: QueueCmd) -> Result<()> {
    Err(Error::new(
        crate::message::sysexits::Exit::Unavailable,
        "queue is not built yet",
    ))
}
