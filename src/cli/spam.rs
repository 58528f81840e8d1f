//! `correo spam ...`: check (like `spamassassin -t`), lint (like `spamassassin --lint`), daemon (like
//! `spamd`). Bayes learning comes with issue 6.

use crate::config::Home;
use crate::message::error::{Error, Result};
use crate::message::sysexits::Exit;
use crate::spam::rules::RuleSet;
use std::io::{Read, Write};
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum SpamCmd {
    /// Score a message from stdin and print it with X-Spam headers (like `spamassassin -t`); exit 1 if spam.
    Check {
        /// Also print the report after the message, as `spamassassin -t` does.
        #[arg(long)]
        report: bool,
        /// Rule directory or file (repeatable); default: correo's own rules.
        #[arg(long = "rules", value_name = "DIR")]
        rules: Vec<PathBuf>,
        /// Print only the test names hit and the score (like `spamc -y` plus the score).
        #[arg(long)]
        symbols: bool,
    },
    /// Load the rules and report how many run, how many are skipped and why.
    Lint {
        #[arg(long = "rules", value_name = "DIR")]
        rules: Vec<PathBuf>,
        /// Name every skipped rule, not just the counts per reason.
        #[arg(long, short)]
        verbose: bool,
    },
    /// Serve the spamd protocol to spamc (TCP `host:port` or a unix socket path); SIGHUP reloads rules.
    Daemon {
        /// Listener (repeatable): `127.0.0.1:783` or `/run/correo/spamd.sock`.
        #[arg(long, value_name = "ADDR")]
        listen: Vec<String>,
        #[arg(long = "rules", value_name = "DIR")]
        rules: Vec<PathBuf>,
        /// Largest message scored, in bytes.
        #[arg(long)]
        max_size: Option<usize>,
    },
    /// Teach Bayes (like `sa-learn`): `--spam|--ham|--forget PATH...`, or `--dump` for the counts.
    Learn(crate::spam::bayes::cli::LearnArgs),
    /// Fit the rule scores to this site's labelled mail and write them as a .cf file.
    Rescore(crate::spam::bayes::cli::RescoreArgs),
    /// Show why a message from stdin scored what it did: rules hit and the Bayes tokens that weighed most.
    Explain(crate::spam::bayes::cli::ExplainArgs),
}

/// Loads and compiles the rules a command asked for; a missing rule directory is a config error.
pub fn load_rules(home: &Home, cli: &[PathBuf]) -> Result<RuleSet> {
    let paths = home.config.spam.rule_paths(cli);
    for p in &paths {
        if !p.exists() {
            return Err(Error::config(format!("rules not found: {}", p.display())));
        }
    }
    let loaded = crate::spam::load::load(&paths)
        .map_err(|e| Error::config(format!("loading rules: {e}")))?;
    let mut rs = crate::spam::rules::compile(loaded);
    if let Some(r) = home.config.spam.required_score {
        rs.settings.required_score = r;
    }
    Ok(rs)
}

pub fn run(home: &Home, cmd: SpamCmd) -> Result<()> {
    match cmd {
        SpamCmd::Check {
            report,
            rules,
            symbols,
        } => check(home, &rules, report, symbols),
        SpamCmd::Lint { rules, verbose } => lint(home, &rules, verbose),
        SpamCmd::Daemon {
            listen,
            rules,
            max_size,
        } => {
            let mut listen = listen;
            if listen.is_empty() {
                listen = home.config.spam.listen.clone();
            }
            if listen.is_empty() {
                listen.push("127.0.0.1:783".into());
            }
            let max = max_size.unwrap_or(home.config.spam.max_size);
            crate::spam::daemon::run(home, &listen, &rules, max)
        }
        SpamCmd::Learn(a) => crate::spam::bayes::cli::learn(home, a),
        SpamCmd::Rescore(a) => crate::spam::bayes::cli::rescore(home, a),
        SpamCmd::Explain(a) => crate::spam::bayes::cli::explain(home, a),
    }
}

fn check(home: &Home, rules: &[PathBuf], report: bool, symbols: bool) -> Result<()> {
    let rs = load_rules(home, rules)?;
    let mut msg = Vec::new();
    std::io::stdin().read_to_end(&mut msg)?;
    let bayes = crate::spam::bayes::Bayes::open(home);
    let c = crate::spam::bayes::check(&rs, Some(&bayes), None, &msg);
    let (view, v) = (c.view, c.verdict);
    let m = crate::spam::markup::Marker {
        rules: &rs,
        view: &view,
        v: &v,
        host: crate::spam::markup::hostname(),
    };
    let mut out = std::io::stdout().lock();
    let res = if symbols {
        let names: Vec<&str> = v.hits.iter().map(|&i| rs.rules[i].name.as_str()).collect();
        writeln!(
            out,
            "{}/{} {}",
            m.score_str(),
            crate::spam::markup::f1(v.required),
            names.join(",")
        )
    } else {
        out.write_all(&m.rewrite()).and_then(|_| {
            if report {
                out.write_all(m.report().as_bytes())
            } else {
                Ok(())
            }
        })
    };
    // A closed stdout (`| head`) is not our failure.
    if let Err(e) = res {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e.into());
        }
    }
    let _ = out.flush();
    if v.is_spam {
        return Err(Error::new(
            Exit::One,
            format!(
                "spam, score {}/{}",
                m.score_str(),
                crate::spam::markup::f1(v.required)
            ),
        ));
    }
    Ok(())
}

fn lint(home: &Home, rules: &[PathBuf], verbose: bool) -> Result<()> {
    let rs = load_rules(home, rules)?;
    let mut out = std::io::stdout().lock();
    // Output errors (a closed pipe) end the listing quietly.
    macro_rules! w {
        ($($a:tt)*) => { if writeln!(out, $($a)*).is_err() { return Ok(()); } };
    }
    let total = rs.rules.len() + rs.skipped.len();
    let runs = rs.order.len() + rs.metas.len();
    w!("rules defined: {total}");
    w!(
        "rules that run: {runs} ({} with a score, {} sub-rules or zero-scored feeding metas)",
        rs.order
            .iter()
            .chain(rs.metas.iter())
            .filter(|&&i| rs.rules[i].scored_anywhere() && !rs.rules[i].is_sub())
            .count(),
        rs.order
            .iter()
            .chain(rs.metas.iter())
            .filter(|&&i| !rs.rules[i].scored_anywhere() || rs.rules[i].is_sub())
            .count()
    );
    w!(
        "rules loaded but not run (score 0, nothing reads them): {}",
        rs.rules.len() - runs
    );
    w!("rules skipped (score 0 here): {}", rs.skipped.len());
    let mut why: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
    for s in &rs.skipped {
        let reason = s.why.rsplit_once(": ").map(|x| x.1).unwrap_or(&s.why);
        let key = if reason.starts_with("regex:") {
            "regex the engines cannot compile".to_string()
        } else {
            reason.to_string()
        };
        why.entry(key).or_default().push(&s.name);
    }
    let mut reasons: Vec<_> = why.into_iter().collect();
    reasons.sort_by_key(|r| std::cmp::Reverse(r.1.len()));
    for (reason, names) in &reasons {
        if verbose {
            w!("  {:>4}  {reason}: {}", names.len(), names.join(" "));
        } else {
            let shown: Vec<&str> = names.iter().take(6).copied().collect();
            let more = if names.len() > 6 {
                format!(" ... (+{})", names.len() - 6)
            } else {
                String::new()
            };
            w!("  {:>4}  {reason}: {}{more}", names.len(), shown.join(" "));
        }
    }
    w!(
        "rules on the fallback regex engine (PCRE2: look-around, backreferences): {}",
        rs.fancy.len()
    );
    if verbose && !rs.fancy.is_empty() {
        w!("  {}", rs.fancy.join(" "));
    }
    let gated = rs.prefilter.lit_gated.iter().filter(|&&g| g).count();
    w!("regex rules behind the literal prefilter: {gated}");
    let hs = &rs.prefilter.hs;
    w!(
        "prefilter engine: {} ({} regex rules behind it, {} it could not take)",
        hs.engine_name(),
        hs.gated.iter().filter(|&&g| g).count(),
        hs.rejected.len()
    );
    if verbose {
        for (i, why) in &hs.rejected {
            w!("  {}: {why}", rs.rules[*i].name);
        }
    }
    w!(
        "header rules behind per-header Hyperscan scans: {} ({} headers)",
        rs.hdr_filter.gated(),
        rs.hdr_filter.spec_count()
    );
    let ign: usize = rs.ignored.values().sum();
    w!("settings read but not acted on (network, Bayes, lists): {ign}");
    if !rs.lint.is_empty() {
        w!("warnings: {}", rs.lint.len());
        for l in &rs.lint {
            w!("  {l}");
        }
    }
    Ok(())
}
