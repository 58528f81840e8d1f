//! `correo list ...`: list administration.

use crate::config::Home;
use crate::message::error::Result;

#[derive(clap::Subcommand, Debug)]
pub enum ListCmd {
    /// Show all lists.
    Ls,
}

pub fn run(_home: &Home, _cmd: ListCmd) -> Result<()> {
    Ok(())
}
