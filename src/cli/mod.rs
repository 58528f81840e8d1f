//! The command-line surface: one file per command group, each with its own clap `Args` and `run`.

pub mod deliver;
pub mod list;
pub mod mail;
pub mod queue;
pub mod serve;
pub mod spam;

use crate::config::Home;
use crate::message::sysexits::Exit;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "correo",
    version,
    about = "Mail lists, recipes, spam scoring and an SMTP relay"
)]
pub struct Cli {
    /// Data directory: database, spools, logs and correo.toml (default ./var).
    #[arg(long, global = true, env = "CORREO_HOME")]
    pub home: Option<PathBuf>,
    /// Config file (default HOME/correo.toml when it exists).
    #[arg(long, global = true, env = "CORREO_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Mailing-list administration (the analogue of Mailman's bin/ tools).
    #[command(subcommand)]
    List(list::ListCmd),
    /// MDA pipe entry for list addresses, as the aliases file runs it: `correo mail post LIST`.
    Mail(mail::Args),
    /// Local delivery agent with procmail's command line and recipe language.
    Deliver(deliver::Args),
    /// Spam scoring, learning and the spamd-compatible daemon.
    #[command(subcommand)]
    Spam(spam::SpamCmd),
    /// Run the SMTP relay (listeners, queue runner, web).
    Serve(serve::Args),
    /// Inspect and manage the outbound queue (the analogue of `smtpctl show queue`).
    #[command(subcommand)]
    Queue(queue::QueueCmd),
    /// Check and compile the aliases tables, naming every bad line.
    Newaliases(serve::NewaliasesArgs),
}

/// Runs one command; every error is mapped to its sysexits code and reported on stderr here.
pub fn run(cli: Cli) -> Exit {
    // `deliver` must not need a data directory: procmail never did.
    if let Command::Deliver(args) = cli.command {
        return deliver::run(args);
    }
    let home = match Home::open(cli.home.as_deref(), cli.config.as_deref()) {
        Ok(h) => h,
        Err(e) => return e.report(),
    };
    let result = match cli.command {
        Command::List(cmd) => list::run(&home, cmd),
        Command::Mail(args) => mail::run(&home, args),
        Command::Spam(cmd) => spam::run(&home, cmd),
        Command::Serve(args) => serve::run(&home, args),
        Command::Queue(cmd) => queue::run(&home, cmd),
        Command::Newaliases(args) => serve::newaliases(&home, args),
        Command::Deliver(_) => unreachable!("handled above"),
    };
    match result {
        Ok(()) => Exit::Ok,
        Err(e) => e.report(),
    }
}
