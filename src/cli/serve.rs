//! `correo serve` and `correo newaliases` (src/smtp).

use crate::config::Home;
use crate::message::error::{Error, Result};

#[derive(clap::Args, Debug)]
pub struct Args {}

#[derive(clap::Args, Debug)]
pub struct NewaliasesArgs {}

pub fn run(_home: &Home, _args: Args) -> Result<()> {
    Err(Error::new(
        crate::message::sysexits::Exit::Unavailable,
        "serve is not built yet",
    ))
}

pub fn newaliases(_home: &Home, _args: NewaliasesArgs) -> Result<()> {
    Err(Error::new(
        crate::message::sysexits::Exit::Unavailable,
        "newaliases is not built yet",
    ))
}
