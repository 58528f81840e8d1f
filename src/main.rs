//! correo: mailing lists, procmail-style delivery, spam scoring and a durable SMTP relay in one binary.
//!
//! `main` only parses the command line and dispatches; every command returns a sysexits code so the MTA
//! that ran us always gets the code it expects.

use clap::Parser;

fn main() {
    let args = correo::cli::Cli::parse();
    let code = correo::cli::run(args);
    std::process::exit(code.code());
}
