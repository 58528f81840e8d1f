//! The Bayes commands under `correo spam`: `learn` (sa-learn's job), `rescore` and `explain`. Argument
//! types live here so `cli/spam.rs` only names them.

use super::store::{self, Class};
use super::Bayes;
use crate::config::Home;
use crate::message::error::{Error, Result};
use std::io::{Read, Write};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["spam", "ham", "forget", "dump"])))]
pub struct LearnArgs {
    /// Learn the messages as spam.
    #[arg(long)]
    pub spam: bool,
    /// Learn the messages as ham (not spam).
    #[arg(long)]
    pub ham: bool,
    /// Forget the messages (undo an earlier learn).
    #[arg(long)]
    pub forget: bool,
    /// Show the counts of each database (spam, ham, tokens).
    #[arg(long)]
    pub dump: bool,
    /// Whose database (with `[spam.bayes] per_user = true`); default the site's.
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Files, directories, Maildirs or mbox files.
    pub paths: Vec<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct RescoreArgs {
    /// Spam to fit on (files, directories, Maildirs, mbox; repeatable).
    #[arg(long, required = true, num_args = 1..)]
    pub spam: Vec<PathBuf>,
    /// Ham to fit on (repeatable).
    #[arg(long, required = true, num_args = 1..)]
    pub ham: Vec<PathBuf>,
    #[arg(long = "rules", value_name = "DIR")]
    pub rules: Vec<PathBuf>,
    /// Where to write the scores; default HOME/spam/rescored.cf.
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// L2 regularisation: larger keeps scores small and rare rules near zero.
    #[arg(long, default_value_t = 1.0)]
    pub alpha: f64,
    /// Most ham (as a fraction of the training ham) the fitted scores may mark spam.
    #[arg(long, default_value_t = 0.001)]
    pub max_fpr: f64,
    /// No progress on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(clap::Args, Debug)]
pub struct ExplainArgs {
    #[arg(long = "rules", value_name = "DIR")]
    pub rules: Vec<PathBuf>,
    /// Whose Bayes database to read.
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// Tokens shown on each side.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
}

pub fn learn(home: &Home, a: LearnArgs) -> Result<()> {
    let mut conn = home.db()?;
    if a.dump {
        let lines = super::learn::dump_lines(&mut conn)?;
        let mut out = std::io::stdout().lock();
        for l in lines {
            if writeln!(out, "{l}").is_err() {
                break;
            }
        }
        return Ok(());
    }
    if a.paths.is_empty() {
        return Err(Error::usage(
            "learn: give the files, directories, Maildirs or mbox files to learn",
        ));
    }
    let class = if a.spam {
        Some(Class::Spam)
    } else if a.ham {
        Some(Class::Ham)
    } else {
        None
    };
    let cfg = &home.config.spam.bayes;
    let bayes = Bayes::open(home);
    let user = bayes.user_name(a.user.as_deref()).to_string();
    let s = super::learn::run(&mut conn, &user, &a.paths, class, cfg.max_tokens, a.quiet)?;
    let line = super::learn::summary_line(&s, class);
    eprintln!("{line}");
    crate::message::log::event(
        "bayes",
        &user,
        &[
            ("learn", line.split(':').next().unwrap_or("")),
            ("messages", &s.messages.to_string()),
            ("learned", &(s.learned + s.relearned + s.forgot).to_string()),
        ],
    );
    if s.unreadable > 0 && s.unreadable == s.messages {
        return Err(Error::data("no message could be read"));
    }
    Ok(())
}

pub fn rescore(home: &Home, a: RescoreArgs) -> Result<()> {
    let rs = crate::cli::spam::load_rules(home, &a.rules)?;
    let mut msgs = Vec::new();
    for (paths, spam) in [(&a.spam, true), (&a.ham, false)] {
        for s in super::learn::sources(paths)? {
            msgs.push((super::learn::read(&s)?, spam));
        }
    }
    // Interleave deterministically so the held-out fifth and the inner folds have both classes in
    // proportion.
    msgs.sort_by_key(|(m, _)| {
        super::tokenizer::hash(&String::from_utf8_lossy(&m[..m.len().min(4096)]))
    });
    if !a.quiet {
        eprintln!(
            "rescore: running {} rules over {} messages ...",
            rs.order.len() + rs.metas.len(),
            msgs.len()
        );
    }
    let seen = super::rescore::examine(&rs, &msgs, a.quiet);
    drop(msgs);
    let opts = super::rescore::Options {
        alpha: a.alpha,
        max_fpr: a.max_fpr,
        quiet: a.quiet,
    };
    let fit = super::rescore::run(&rs, &home.config.spam.bayes, &seen, &opts)?;
    let out = a
        .out
        .unwrap_or_else(|| home.dir.join("spam").join("rescored.cf"));
    super::rescore::write_cf(&out, &super::rescore::cf_text(&rs, &fit, seen.len()))?;
    let mut o = std::io::stdout().lock();
    let _ = writeln!(
        o,
        "fitted on {} messages, held out {} ({} with a Bayes verdict); scores written are fitted on all {}",
        fit.train,
        fit.held_out,
        fit.bayes_verdicts,
        seen.len()
    );
    for (name, c) in [
        ("score sets 0/1 (no Bayes)", fit.no_bayes),
        ("score sets 2/3 (Bayes)   ", fit.bayes),
    ] {
        let _ = writeln!(o, "{name} before: {}", c.before.line());
        let _ = writeln!(o, "{name} after:  {}", c.after.line());
    }
    let _ = writeln!(
        o,
        "wrote {} scores to {} (load it after the rules: --rules DIR --rules {})",
        fit.scores.len(),
        out.display(),
        out.display()
    );
    Ok(())
}

pub fn explain(home: &Home, a: ExplainArgs) -> Result<()> {
    let rs = crate::cli::spam::load_rules(home, &a.rules)?;
    let mut msg = Vec::new();
    std::io::stdin().read_to_end(&mut msg)?;
    let bayes = Bayes::open(home);
    let b = if bayes.cfg.enabled {
        Some(&bayes)
    } else {
        None
    };
    let text = super::explain::explain(&rs, b, a.user.as_deref(), &msg, a.top);
    let _ = std::io::stdout().write_all(text.as_bytes());
    Ok(())
}

/// Moderation labels: a discarded-as-spam post is spam, an approved post is ham. Failing to learn never
/// fails the moderation itself; it is logged.
pub fn learn_moderated(home: &Home, msg: &[u8], spam: bool) {
    let bayes = Bayes::open(home);
    if !bayes.cfg.enabled {
        return;
    }
    let class = if spam { Class::Spam } else { Class::Ham };
    let what = if spam { "spam" } else { "ham" };
    match bayes.learn_bytes(None, super::learn::strip_from_line(msg), Some(class)) {
        Ok(did) => crate::message::log::event(
            "bayes",
            store::GLOBAL,
            &[
                ("moderation", what),
                ("did", &format!("{did:?}").to_lowercase()),
            ],
        ),
        Err(e) => crate::message::log::event(
            "bayes",
            store::GLOBAL,
            &[
                ("moderation", what),
                ("status", "failed"),
                ("error", &e.msg),
            ],
        ),
    }
}
