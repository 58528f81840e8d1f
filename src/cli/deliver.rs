//! `correo deliver`: procmail's command line in front of the recipe engine (src/recipe).

use crate::message::sysexits::Exit;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// procmail-style arguments: flags, VAR=value assignments and the rcfile.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub rest: Vec<String>,
}

/// Runs the delivery. procmail's EXITCODE may ask for any number, which `Exit` cannot name; those exit
/// here directly, after flushing, so the MTA sees exactly the code the rcfile asked for.
pub fn run(args: Args) -> Exit {
    let code = crate::recipe::cli::main(&args.rest);
    for e in ALL {
        if e.code() == code {
            return e;
        }
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

const ALL: [Exit; 16] = [
    Exit::Ok,
    Exit::One,
    Exit::Usage,
    Exit::DataErr,
    Exit::NoInput,
    Exit::NoUser,
    Exit::NoHost,
    Exit::Unavailable,
    Exit::Software,
    Exit::OsErr,
    Exit::CantCreat,
    Exit::IoErr,
    Exit::TempFail,
    Exit::Protocol,
    Exit::NoPerm,
    Exit::Config,
];
