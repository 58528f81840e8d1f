//! correo: mailing lists, procmail-style delivery, spam scoring and a durable SMTP relay in one binary.
//!
//! `main` only parses the command line, opens the data directory and dispatches; every command returns a
//! [`message::sysexits::Exit`] so the MTA that ran us always gets the sysexits code it expects.

mod cli;
mod config;
mod lists;
mod message;
mod recipe;
mod smtp;
mod spam;
mod store;
mod web;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    let code = cli::run(args);
    std::process::exit(code.code());
}
