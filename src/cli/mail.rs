//! `correo mail ACTION LIST`: the MDA pipe entry.

use crate::config::Home;
use crate::message::error::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    pub action: String,
    pub list: String,
}

pub fn run(_home: &Home, _args: Args) -> Result<()> {
    Ok(())
}
