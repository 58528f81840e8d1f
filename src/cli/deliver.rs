//! `correo deliver`: procmail's command line in front of the recipe engine (src/recipe).

use crate::message::sysexits::Exit;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// procmail-style arguments: flags, VAR=value assignments and the rcfile.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub rest: Vec<String>,
}

pub fn run(_args: Args) -> Exit {
    eprintln!("correo: deliver is not built yet");
    Exit::TempFail
}
